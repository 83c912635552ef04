/* tests/unit/shuffle/test_reducer.c - AGGREGATE, GROUP and SORT against naive references,
 * in memory and with budgets that force several spilled runs. */
#include <sys/resource.h>

#include "shuffle_test_util.h"

typedef struct kv {
    uint8_t k[64];
    size_t kn;
    uint8_t v[64];
    size_t vn;
    size_t seq;
} kv;

/* Symbols per generated key (1-4 bytes each): 3 mixes keys of up to 12 bytes (the
 * reducer's comparison sort), 2 keeps every key within 8 bytes (its radix sort), with
 * zero bytes, trailing ones included, and many records per key. */
static size_t key_syms = 3;

static kv *gen(uint64_t seed, size_t n, bool i64vals)
{
    kv *a = calloc(n, sizeof *a);
    em_rng rng;
    em_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        a[i].kn = tu_rand_key(&rng, a[i].k, key_syms);
        if (i64vals) {
            em_enc_i64(a[i].v, (int64_t)em_rng_below(&rng, 2001) - 1000);
            a[i].vn = 8;
        } else {
            a[i].vn = (size_t)em_rng_below(&rng, 40);
            for (size_t j = 0; j < a[i].vn; j++)
                a[i].v[j] = (uint8_t)em_rng_next(&rng);
        }
        a[i].seq = i;
    }
    return a;
}

/* memcmp that accepts NULL pointers for empty ranges (empty keys are NULL slices). */
static bool memeq(const void *a, const void *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

static int cmp_key(const kv *a, const kv *b)
{
    size_t m = a->kn < b->kn ? a->kn : b->kn;
    int c = memcmp(a->k, b->k, m);
    if (c)
        return c;
    return a->kn < b->kn ? -1 : a->kn > b->kn;
}

static int cmp_asc_stable(const void *x, const void *y)
{
    const kv *a = x, *b = y;
    int c = cmp_key(a, b);
    return c ? c : (a->seq < b->seq ? -1 : 1);
}

static int cmp_desc_stable(const void *x, const void *y)
{
    const kv *a = x, *b = y;
    int c = cmp_key(b, a);
    return c ? c : (a->seq < b->seq ? -1 : 1);
}

static em_reducer *make(em_reduce_mode mode, const char *dir, size_t budget, bool desc,
                        bool inputs_are_combiners)
{
    em_reducer_opts o = {.mode = mode, .kind = EM_REC_KV, .mem_budget = budget,
                         .spill_dir = dir, .descending = desc,
                         .inputs_are_combiners = inputs_are_combiners};
    if (mode == EM_REDUCE_AGGREGATE)
        o.combiner = &tu_sum_combiner;
    em_err err = EM_ERR_INIT;
    em_reducer *r = em_reducer_new(&o, &err);
    cr_assert(r, "%s", err.msg);
    return r;
}

/* Feeds a[] half record by record, half as batches. */
static void feed(em_reducer *r, const kv *a, size_t n)
{
    em_err err = EM_ERR_INIT;
    em_batch_builder bb;
    size_t i = 0;
    for (; i < n / 2; i++) {
        em_rec rec = {em_slice_make(a[i].k, a[i].kn), em_slice_make(a[i].v, a[i].vn)};
        cr_assert_eq(em_reducer_add(r, &rec, &err), 0, "%s", err.msg);
    }
    em_batch_builder_init(&bb, EM_REC_KV, 0);
    for (; i < n; i++) {
        cr_assert_eq(em_batch_builder_add_kv(&bb, em_slice_make(a[i].k, a[i].kn),
                                             em_slice_make(a[i].v, a[i].vn), &err), 0);
        if (bb.nrecs == 97 || i + 1 == n) {
            em_batch *b = em_batch_builder_finish(&bb, &err);
            cr_assert(b);
            cr_assert_eq(em_reducer_add_batch(r, b, &err), 0, "%s", err.msg);
            em_batch_unref(b);
        }
    }
    em_batch_builder_destroy(&bb);
    cr_assert_eq(em_reducer_finish(r, &err), 0, "%s", err.msg);
}

static void check_spills(em_reducer *r, size_t budget, size_t min_runs)
{
    em_reducer_stats st;
    em_reducer_stats_get(r, &st);
    if (budget)
        cr_assert_geq(st.spill_count, min_runs, "spills %llu",
                      (unsigned long long)st.spill_count);
    else
        cr_assert_eq(st.spill_count, 0);
}

static void sort_case(size_t budget, bool desc)
{
    char *dir = tu_mkdtemp();
    size_t n = 3000;
    kv *a = gen(11, n, false);
    em_reducer *r = make(EM_REDUCE_SORT, dir, budget, desc, false);
    em_err err = EM_ERR_INIT;
    em_rec out;
    size_t i = 0;
    int rc;

    feed(r, a, n);
    check_spills(r, budget, 3);
    qsort(a, n, sizeof *a, desc ? cmp_desc_stable : cmp_asc_stable);
    while ((rc = em_reducer_next(r, &out, &err)) == 1) {
        cr_assert_lt(i, n);
        cr_assert_eq(out.key.n, a[i].kn, "record %zu", i);
        cr_assert(memeq(out.key.p, a[i].k, a[i].kn));
        cr_assert_eq(out.val.n, a[i].vn, "record %zu", i);
        cr_assert(out.val.n == 0 || !memcmp(out.val.p, a[i].v, a[i].vn), "record %zu", i);
        i++;
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(i, n);
    em_reducer_stats st;
    em_reducer_stats_get(r, &st);
    cr_assert_eq(st.records_in, n);
    cr_assert_eq(st.records_out, n);
    em_reducer_free(r);
    cr_assert_eq(tu_count_files(dir), 0, "run files left behind");
    free(a);
    tu_rmdir(dir);
}

Test(reducer, sort_in_memory) { sort_case(0, false); }
Test(reducer, sort_spilled) { sort_case(4096, false); }
Test(reducer, sort_descending_in_memory) { sort_case(0, true); }
Test(reducer, sort_descending_spilled) { sort_case(4096, true); }

/* Key-ordered distinct keys of the (ascending, stably sorted) reference. */
static size_t distinct(const kv *a, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || cmp_key(&a[i - 1], &a[i]))
            d++;
    return d;
}

/* Finds the first index of key k in sorted a (or n). */
static size_t find_key(const kv *a, size_t n, em_slice k)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].kn == k.n && memeq(a[i].k, k.p, k.n))
            return i;
    return n;
}

static void check_ascending(em_slice *prev, bool *have, em_slice key, em_vbuf *keep)
{
    if (*have)
        cr_assert_lt(em_slice_cmp(*prev, key), 0, "keys out of order");
    em_vbuf_clear(keep);
    em_vbuf_append(keep, key.p, key.n);
    *prev = em_slice_make(keep->data, keep->len);
    *have = true;
}

static void group_case(size_t budget)
{
    char *dir = tu_mkdtemp();
    size_t n = 2500;
    kv *a = gen(23, n, false);
    em_reducer *r = make(EM_REDUCE_GROUP, dir, budget, false, false);
    em_err err = EM_ERR_INIT;
    em_rec out;
    size_t groups = 0;
    em_slice prev;
    bool have = false;
    em_vbuf keep;
    int rc;

    em_vbuf_init(&keep);
    feed(r, a, n);
    check_spills(r, budget, 3);
    qsort(a, n, sizeof *a, cmp_asc_stable);
    while ((rc = em_reducer_next(r, &out, &err)) == 1) {
        size_t i = find_key(a, n, out.key);
        em_list_iter it;
        em_slice item;
        cr_assert_lt(i, n, "unknown key");
        if (budget)
            check_ascending(&prev, &have, out.key, &keep);
        cr_assert_eq(em_list_iter_init(&it, out.val, &err), 0);
        /* Values in arrival order: the stable sort of the reference keeps them so. */
        while ((rc = em_list_iter_next(&it, &item, &err)) == 1) {
            cr_assert_lt(i, n);
            cr_assert(a[i].kn == out.key.n && memeq(a[i].k, out.key.p, out.key.n),
                      "group has too many values");
            cr_assert_eq(item.n, a[i].vn);
            cr_assert(item.n == 0 || !memcmp(item.p, a[i].v, item.n));
            i++;
        }
        cr_assert_eq(rc, 0);
        cr_assert(i == n || cmp_key(&a[i - 1], &a[i]) != 0, "group has too few values");
        groups++;
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(groups, distinct(a, n));
    em_reducer_free(r);
    cr_assert_eq(tu_count_files(dir), 0);
    em_vbuf_destroy(&keep);
    free(a);
    tu_rmdir(dir);
}

Test(reducer, group_in_memory) { group_case(0); }
Test(reducer, group_spilled) { group_case(4096); }

/* Keys of at most 8 bytes (the radix sort): the same orders, ties in arrival order. */
static void short_keys(void)
{
    key_syms = 2;
}
Test(reducer, sort_short_keys_in_memory, .init = short_keys) { sort_case(0, false); }
Test(reducer, sort_short_keys_spilled, .init = short_keys) { sort_case(4096, false); }
Test(reducer, sort_short_keys_descending, .init = short_keys) { sort_case(0, true); }
Test(reducer, sort_short_keys_descending_spilled, .init = short_keys) { sort_case(4096, true); }
Test(reducer, group_short_keys_in_memory, .init = short_keys) { group_case(0); }
Test(reducer, group_short_keys_spilled, .init = short_keys) { group_case(4096); }

static void aggregate_case(size_t budget, bool combiners)
{
    char *dir = tu_mkdtemp();
    size_t n = 4000;
    kv *a = gen(31, n, true);
    em_reducer *r = make(EM_REDUCE_AGGREGATE, dir, budget, false, combiners);
    em_err err = EM_ERR_INIT;
    em_rec out;
    size_t keys = 0;
    em_slice prev;
    bool have = false;
    em_vbuf keep;
    int rc;

    em_vbuf_init(&keep);
    feed(r, a, n);
    check_spills(r, budget, 2);
    qsort(a, n, sizeof *a, cmp_asc_stable);
    while ((rc = em_reducer_next(r, &out, &err)) == 1) {
        size_t i = find_key(a, n, out.key);
        int64_t sum = 0;
        cr_assert_lt(i, n, "unknown key");
        if (budget)
            check_ascending(&prev, &have, out.key, &keep);
        for (; i < n && a[i].kn == out.key.n && memeq(a[i].k, out.key.p, out.key.n); i++)
            sum += em_dec_i64(a[i].v);
        cr_assert_eq(out.val.n, 8);
        cr_assert_eq(em_dec_i64(out.val.p), sum);
        keys++;
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(keys, distinct(a, n));
    em_reducer_free(r);
    cr_assert_eq(tu_count_files(dir), 0);
    em_vbuf_destroy(&keep);
    free(a);
    tu_rmdir(dir);
}

Test(reducer, aggregate_in_memory) { aggregate_case(0, false); }
Test(reducer, aggregate_spilled) { aggregate_case(2048, false); }
Test(reducer, aggregate_combiners_spilled) { aggregate_case(2048, true); }

Test(reducer, empty_input)
{
    char *dir = tu_mkdtemp();
    em_err err = EM_ERR_INIT;
    em_rec out;
    for (int m = EM_REDUCE_AGGREGATE; m <= EM_REDUCE_SORT; m++) {
        em_reducer *r = make((em_reduce_mode)m, dir, 0, false, false);
        cr_assert_eq(em_reducer_finish(r, &err), 0);
        cr_assert_eq(em_reducer_next(r, &out, &err), 0);
        em_reducer_free(r);
    }
    tu_rmdir(dir);
}

Test(reducer, big_group_beyond_budget)
{
    char *dir = tu_mkdtemp();
    em_reducer *r = make(EM_REDUCE_GROUP, dir, 1024, false, false);
    em_err err = EM_ERR_INIT;
    em_rec out;
    uint8_t v[8];
    for (int i = 0; i < 1000; i++) {
        em_enc_i64(v, i);
        em_rec rec = {em_slice_str("same"), em_slice_make(v, 8)};
        cr_assert_eq(em_reducer_add(r, &rec, &err), 0);
    }
    cr_assert_eq(em_reducer_finish(r, &err), 0, "%s", err.msg);
    cr_assert_eq(em_reducer_next(r, &out, &err), 1, "%s", err.msg);
    em_list_iter it;
    em_slice item;
    int64_t want = 0;
    cr_assert_eq(em_list_iter_init(&it, out.val, &err), 0);
    while (em_list_iter_next(&it, &item, &err) == 1)
        cr_assert_eq(em_dec_i64(item.p), want++);
    cr_assert_eq(want, 1000);
    cr_assert_eq(em_reducer_next(r, &out, &err), 0);
    em_reducer_free(r);
    cr_assert_eq(tu_count_files(dir), 0);
    tu_rmdir(dir);
}

/* Concatenation combiner: values grow, so the map re-carves entries (not in place). */
static int cat2(void *self, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)self;
    (void)err;
    if (em_vbuf_append(out, a.p, a.n) < 0 || em_vbuf_append(out, b.p, b.n) < 0)
        return EM_ENOMEM;
    return 0;
}
static const em_combiner_ops cat_ops = {NULL, cat2, cat2};
static const em_combiner cat_combiner = {.ops = &cat_ops};

static void concat_case(size_t budget)
{
    char *dir = tu_mkdtemp();
    size_t n = 1500;
    kv *a = gen(77, n, false);
    em_reducer_opts o = {.mode = EM_REDUCE_AGGREGATE, .kind = EM_REC_KV, .mem_budget = budget,
                         .spill_dir = dir, .combiner = &cat_combiner};
    em_err err = EM_ERR_INIT;
    em_reducer *r = em_reducer_new(&o, &err);
    em_rec out;
    em_vbuf want;
    size_t keys = 0;
    int rc;

    cr_assert(r);
    em_vbuf_init(&want);
    for (size_t i = 0; i < n; i++) {
        /* Short values, so a key's concatenation stays small while values vary. */
        a[i].vn %= 5;
        em_rec rec = {em_slice_make(a[i].k, a[i].kn), em_slice_make(a[i].v, a[i].vn)};
        cr_assert_eq(em_reducer_add(r, &rec, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(em_reducer_finish(r, &err), 0, "%s", err.msg);
    check_spills(r, budget, 2);
    qsort(a, n, sizeof *a, cmp_asc_stable);
    while ((rc = em_reducer_next(r, &out, &err)) == 1) {
        size_t i = find_key(a, n, out.key);
        cr_assert_lt(i, n);
        em_vbuf_clear(&want);
        for (; i < n && a[i].kn == out.key.n && memeq(a[i].k, out.key.p, out.key.n); i++)
            em_vbuf_append(&want, a[i].v, a[i].vn);
        cr_assert_eq(out.val.n, want.len);
        cr_assert(memeq(out.val.p, want.data, want.len), "concatenation out of arrival order");
        keys++;
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(keys, distinct(a, n));
    em_reducer_free(r);
    cr_assert_eq(tu_count_files(dir), 0);
    em_vbuf_destroy(&want);
    free(a);
    tu_rmdir(dir);
}

Test(reducer, aggregate_growing_values_in_memory) { concat_case(0); }
Test(reducer, aggregate_growing_values_spilled) { concat_case(4096); }

Test(reducer, group_survives_every_oom)
{
    char *dir = tu_mkdtemp();
    size_t n = 300;
    kv *a = gen(5, n, false);
    for (long k = 0;; k++) {
        em_reducer_opts o = {.mode = EM_REDUCE_GROUP, .kind = EM_REC_KV, .mem_budget = 2048,
                             .spill_dir = dir};
        em_err err = EM_ERR_INIT;
        em_rec out;
        size_t got = 0;
        int rc = 0;
        em_test_fail_alloc_after(k);
        em_reducer *r = em_reducer_new(&o, &err);
        if (!r)
            rc = err.code;
        for (size_t i = 0; r && rc == 0 && i < n; i++) {
            em_rec rec = {em_slice_make(a[i].k, a[i].kn), em_slice_make(a[i].v, a[i].vn)};
            rc = em_reducer_add(r, &rec, &err);
        }
        if (r && rc == 0)
            rc = em_reducer_finish(r, &err);
        if (r && rc == 0) {
            while ((rc = em_reducer_next(r, &out, &err)) == 1)
                got++;
        }
        em_reducer_free(r);
        em_test_alloc_reset();
        cr_assert_eq(tu_count_files(dir), 0, "allocation %ld left files", k);
        if (rc == 0) {
            qsort(a, n, sizeof *a, cmp_asc_stable);
            cr_assert_eq(got, distinct(a, n));
            break;
        }
        cr_assert_eq(rc, EM_ENOMEM, "allocation %ld: rc=%d %s", k, rc, err.msg);
    }
    free(a);
    tu_rmdir(dir);
}

/* More runs than a small open-file limit allows at once: with RLIMIT_NOFILE at 40 the
 * fan-in is 2, and a 256-byte budget spills hundreds of runs, which a one-pass merge
 * could not open ("Too many open files"). The results still match the references. (Each
 * Criterion test runs in its own process, so the limit stays with this test.) */
static void low_fd_limit(void)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = 40;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

Test(reducer, sort_more_runs_than_fds) { low_fd_limit(); sort_case(256, false); }
Test(reducer, sort_descending_more_runs_than_fds) { low_fd_limit(); sort_case(256, true); }
Test(reducer, group_more_runs_than_fds) { low_fd_limit(); group_case(256); }
Test(reducer, aggregate_more_runs_than_fds) { low_fd_limit(); aggregate_case(256, false); }

Test(reducer, fan_in_option_merges_in_levels)
{
    char *dir = tu_mkdtemp();
    em_reducer_opts o = {.mode = EM_REDUCE_SORT, .kind = EM_REC_KV, .mem_budget = 256,
                         .spill_dir = dir, .max_fan_in = 3};
    em_err err = EM_ERR_INIT;
    em_reducer *r = em_reducer_new(&o, &err);
    size_t n = 2000;
    kv *a = gen(5, n, false);
    em_rec out;
    int rc;
    size_t i = 0;
    feed(r, a, n);
    qsort(a, n, sizeof *a, cmp_asc_stable);
    while ((rc = em_reducer_next(r, &out, &err)) == 1) {
        cr_assert(out.key.n == a[i].kn && memeq(out.key.p, a[i].k, a[i].kn), "record %zu", i);
        cr_assert(out.val.n == a[i].vn && memeq(out.val.p, a[i].v, a[i].vn), "record %zu", i);
        i++;
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(i, n);
    em_reducer_stats st;
    em_reducer_stats_get(r, &st);
    cr_assert_geq(st.merge_passes, 3, "levels %llu", (unsigned long long)st.merge_passes);
    em_reducer_free(r);
    cr_assert_eq(tu_count_files(dir), 0, "run files left behind");
    free(a);
    tu_rmdir(dir);
}
