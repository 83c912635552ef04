/* tests/unit/shuffle/test_writer.c - map output round trips (writer -> files -> fetch ->
 * decode), spilling, map-side combine, and fetch failures on damaged files. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shuffle/remote.h"
#include "shuffle_test_util.h"
#include "shuffle/shuffle_int.h"

typedef struct trec {
    uint8_t *k, *v;
    size_t kn, vn;
    uint32_t part;
} trec;

typedef struct tset {
    trec *r;
    size_t n, cap;
} tset;

static void tset_add(tset *s, em_slice k, em_slice v, uint32_t part)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->r = realloc(s->r, s->cap * sizeof *s->r);
    }
    trec *t = &s->r[s->n++];
    t->kn = k.n;
    t->vn = v.n;
    t->k = malloc(k.n + 1);
    t->v = malloc(v.n + 1);
    if (k.n)
        memcpy(t->k, k.p, k.n);
    if (v.n)
        memcpy(t->v, v.p, v.n);
    t->part = part;
}

static void tset_free(tset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->r[i].k);
        free(s->r[i].v);
    }
    free(s->r);
    memset(s, 0, sizeof *s);
}

/* Random records; partitions only from `used` (others stay empty). */
static void gen(tset *s, uint64_t seed, size_t n, uint32_t nparts, bool sparse, bool i64vals)
{
    em_rng rng;
    uint8_t kb[64], vb[200];
    em_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        size_t kn = tu_rand_key(&rng, kb, 6), vn;
        uint32_t part = (uint32_t)em_rng_below(&rng, nparts);
        if (sparse)
            part -= part % 3;  /* partitions not divisible by 3 stay empty */
        if (i64vals) {
            em_enc_i64(vb, (int64_t)em_rng_below(&rng, 1000) - 500);
            vn = 8;
        } else {
            vn = (size_t)em_rng_below(&rng, sizeof vb);
            for (size_t j = 0; j < vn; j++)
                vb[j] = (uint8_t)em_rng_next(&rng);
        }
        tset_add(s, em_slice_make(kb, kn), em_slice_make(vb, vn), part);
    }
}

static bool add_hashed;   /* write_map: em_shuffle_writer_add_hashed instead of _add */

static em_map_status write_map(const char *dir, uint32_t sid, uint32_t mid, uint32_t nparts,
                               const tset *s, size_t budget, const em_combiner *comb)
{
    em_shuffle_writer_opts o = {.dir = dir, .shuffle_id = sid, .map_id = mid,
                                .nparts = nparts, .kind = EM_REC_KV, .combiner = comb,
                                .mem_budget = budget};
    em_err err = EM_ERR_INIT;
    em_map_status st;
    memset(&st, 0, sizeof st);
    em_shuffle_writer *w = em_shuffle_writer_new(&o, &err);
    cr_assert(w, "%s", err.msg);
    for (size_t i = 0; i < s->n; i++) {
        em_rec r = {em_slice_make(s->r[i].k, s->r[i].kn), em_slice_make(s->r[i].v, s->r[i].vn)};
        int rc = add_hashed ? em_shuffle_writer_add_hashed(w, s->r[i].part,
                                                           em_shuffle_key_hash(r.key), &r, &err)
                            : em_shuffle_writer_add(w, s->r[i].part, &r, &err);
        cr_assert_eq(rc, 0, "%s", err.msg);
    }
    cr_assert_eq(em_shuffle_writer_commit(w, &st, &err), 0, "%s", err.msg);
    em_shuffle_writer_free(w);
    return st;
}

static int collect(void *ud, em_batch *b, em_err *err)
{
    (void)err;
    tset *s = ud;
    em_batch_iter it;
    em_rec r;
    cr_assert_eq(em_batch_kind(b), EM_REC_KV);
    em_batch_iter_init(&it, b);
    while (em_batch_iter_next(&it, &r))
        tset_add(s, r.key, r.val, 0);
    em_batch_unref(b);
    return 0;
}

static int read_part(const char *dir, uint32_t sid, uint32_t reduce, const em_map_status *sts,
                     uint32_t nmaps, tset *out, uint32_t *failed, em_err *err)
{
    em_shuffle_src srcs[8];
    em_fetcher f = em_fetcher_local();
    for (uint32_t m = 0; m < nmaps; m++)
        srcs[m] = (em_shuffle_src){sts[m].map_id, dir, sts[m].sizes[reduce]};
    return em_shuffle_read(&f, sid, reduce, srcs, nmaps, collect, out, failed, err);
}

/* The records of partition p in s, in order, must equal got. */
static void expect_part(const tset *s, uint32_t p, const tset *got)
{
    size_t j = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->r[i].part != p)
            continue;
        cr_assert_lt(j, got->n, "partition %u: too few records", p);
        cr_assert_eq(got->r[j].kn, s->r[i].kn);
        cr_assert_eq(got->r[j].vn, s->r[i].vn);
        cr_assert(!memcmp(got->r[j].k, s->r[i].k, s->r[i].kn));
        cr_assert(!memcmp(got->r[j].v, s->r[i].v, s->r[i].vn));
        j++;
    }
    cr_assert_eq(j, got->n, "partition %u: %zu extra records", p, got->n - j);
}

static void round_trip(size_t budget, bool expect_spill)
{
    char *dir = tu_mkdtemp();
    tset s = {0};
    uint32_t nparts = 37;
    em_err err = EM_ERR_INIT;

    gen(&s, 42, 3000, nparts, true, false);
    em_map_status st = write_map(dir, 3, 7, nparts, &s, budget, NULL);
    cr_assert_eq(st.shuffle_id, 3);
    cr_assert_eq(st.map_id, 7);
    cr_assert_eq(st.nparts, nparts);
    cr_assert_eq(st.records_written, 3000);
    if (expect_spill)
        cr_assert_gt(st.spill_count, 0);
    else
        cr_assert_eq(st.spill_count, 0);
    uint64_t total = 0;
    for (uint32_t p = 0; p < nparts; p++) {
        tset got = {0};
        em_vbuf seg;
        em_vbuf_init(&seg);
        cr_assert_eq(em_shuffle_fetch_local(dir, 3, 7, p, &seg, &err), 0, "%s", err.msg);
        cr_assert_eq(seg.len, st.sizes[p]);
        if (p % 3)
            cr_assert_eq(st.sizes[p], 0, "partition %u should be empty", p);
        em_vbuf_destroy(&seg);
        total += st.sizes[p];
        cr_assert_eq(read_part(dir, 3, p, &st, 1, &got, NULL, &err), 0, "%s", err.msg);
        expect_part(&s, p, &got);
        tset_free(&got);
    }
    cr_assert_eq(total, st.bytes_written);
    cr_assert_eq(tu_count_files(dir), 2, "only data and index remain");
    em_map_status_destroy(&st);
    tset_free(&s);
    tu_rmdir(dir);
}

Test(writer, round_trip_many_partitions)
{
    round_trip(0, false);
}

Test(writer, tiny_budget_spills_same_result)
{
    round_trip(4096, true);
}

/* Several MiB per partition: with room in the budget every encoded block is held in
 * memory and written once, at commit (no spill); with a budget of a few blocks they are
 * spilled as it fills; both read back every record in order. */
static void held_case(size_t budget, bool expect_spill)
{
    char *dir = tu_mkdtemp();
    tset s = {0};
    em_err err = EM_ERR_INIT;
    uint32_t nparts = 3;
    uint8_t v[1000];
    char key[32];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint32_t i = 0; i < 18000; i++) {   /* ~6 MB of values per partition */
        for (size_t j = 0; j < sizeof v; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            v[j] = (uint8_t)(j % 4 ? x : i);   /* compressible in part */
        }
        snprintf(key, sizeof key, "k%u", i);
        tset_add(&s, em_slice_str(key), em_slice_make(v, sizeof v), (i * 7u) % nparts);
    }
    em_map_status st = write_map(dir, 5, 2, nparts, &s, budget, NULL);
    cr_assert_eq(st.records_written, 18000);
    if (expect_spill)
        cr_assert_gt(st.spill_count, 0, "budget %zu: nothing spilled", budget);
    else
        cr_assert_eq(st.spill_count, 0, "budget %zu: %llu blocks spilled", budget,
                     (unsigned long long)st.spill_count);
    for (uint32_t p = 0; p < nparts; p++) {
        tset got = {0};
        cr_assert_eq(read_part(dir, 5, p, &st, 1, &got, NULL, &err), 0, "%s", err.msg);
        expect_part(&s, p, &got);
        tset_free(&got);
    }
    cr_assert_eq(tu_count_files(dir), 2, "only data and index remain");
    em_map_status_destroy(&st);
    tset_free(&s);
    tu_rmdir(dir);
}

Test(writer, blocks_are_held_within_the_budget_and_spilled_past_it)
{
    held_case((size_t)256 << 20, false);
    held_case((size_t)4 << 20, true);
}

/* Held blocks take memory as they arrive, not the budget's share at once: with a budget no
 * machine has (2^62 bytes) the ~18 MB of blocks are still held, not spilled. (A writer that
 * reserved half its budget up front fails here; at an executor's GB budgets that reservation
 * was trimmed back to the kernel after every map task and faulted in again by the next.) */
Test(writer, held_blocks_grow_as_they_come)
{
    held_case((size_t)1 << 62, false);
}

typedef struct served {
    em_vbuf bytes;
    size_t calls, lasts, most;
    bool last_seen_last;
} served;

static int take_chunk(void *ud, const uint8_t *p, size_t n, bool last, em_err *err)
{
    served *s = ud;
    (void)err;
    cr_assert_eq(em_vbuf_append(&s->bytes, p, n), 0);
    s->calls++;
    s->lasts += last;
    s->most = n > s->most ? n : s->most;
    s->last_seen_last = last;
    return 0;
}

/* The shuffle server's side: a segment goes out in chunks of at most the chunk size, the
 * last one flagged, together the bytes a local fetch reads; an empty segment is one empty
 * last chunk; a missing map output is a fetch failure naming it. */
Test(writer, served_segments_are_the_fetched_bytes_in_chunks)
{
    char *dir = tu_mkdtemp();
    tset s = {0};
    em_err err = EM_ERR_INIT;
    uint8_t v[1000];
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (uint32_t i = 0; i < 6000; i++) {   /* ~3 MB of random values per used partition */
        for (size_t j = 0; j < sizeof v; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            v[j] = (uint8_t)x;
        }
        tset_add(&s, em_slice_str("k"), em_slice_make(v, sizeof v), i % 2 ? 2 : 0);
    }
    em_map_status st = write_map(dir, 5, 9, 3, &s, 0, NULL);
    for (uint32_t p = 0; p < 3; p++) {
        em_vbuf want;
        served got = {0};
        em_vbuf_init(&want);
        em_vbuf_init(&got.bytes);
        cr_assert_eq(em_shuffle_fetch_local(dir, 5, 9, p, &want, &err), 0, "%s", err.msg);
        cr_assert_eq(em_shuffle_serve_segment(dir, 5, 9, p, (size_t)1 << 20, take_chunk, &got,
                                              &err), 0, "%s", err.msg);
        cr_assert_eq(got.bytes.len, want.len, "partition %u", p);
        cr_assert(got.bytes.len == 0 || !memcmp(got.bytes.data, want.data, want.len));
        cr_assert_eq(got.lasts, 1);
        cr_assert(got.last_seen_last);
        cr_assert_leq(got.most, (size_t)1 << 20);
        if (p == 1)
            cr_assert_eq(got.calls, 1, "an empty segment is one empty last chunk");
        else
            cr_assert_gt(got.calls, 1, "partition %u: %zu bytes in one chunk", p, want.len);
        em_vbuf_destroy(&want);
        em_vbuf_destroy(&got.bytes);
    }
    served none = {0};
    em_vbuf_init(&none.bytes);
    cr_assert_eq(em_shuffle_serve_segment(dir, 5, 8, 0, (size_t)1 << 20, take_chunk, &none,
                                          &err), EM_EFETCH);
    cr_assert_not_null(strstr(err.msg, "shuffle 5 map 8 reduce 0"), "%s", err.msg);
    cr_assert_eq(none.calls, 0);
    em_vbuf_destroy(&none.bytes);
    em_map_status_destroy(&st);
    tset_free(&s);
    tu_rmdir(dir);
}

Test(writer, record_larger_than_a_block)
{
    char *dir = tu_mkdtemp();
    tset s = {0};
    em_err err = EM_ERR_INIT;
    size_t big = 2u << 20;
    uint8_t *v = malloc(big);
    for (size_t i = 0; i < big; i++)
        v[i] = (uint8_t)(i * 2654435761u >> 13);
    tset_add(&s, em_slice_str("small"), em_slice_str("1"), 1);
    tset_add(&s, em_slice_str("big"), em_slice_make(v, big), 1);
    tset_add(&s, em_slice_str("after"), em_slice_str("2"), 1);
    tset_add(&s, em_slice_str("other"), em_slice_str("3"), 0);
    em_map_status st = write_map(dir, 1, 0, 2, &s, 0, NULL);
    for (uint32_t p = 0; p < 2; p++) {
        tset got = {0};
        cr_assert_eq(read_part(dir, 1, p, &st, 1, &got, NULL, &err), 0, "%s", err.msg);
        expect_part(&s, p, &got);
        tset_free(&got);
    }
    em_map_status_destroy(&st);
    tset_free(&s);
    free(v);
    tu_rmdir(dir);
}

Test(writer, several_maps_one_reader)
{
    char *dir = tu_mkdtemp();
    tset s[3] = {{0}};
    em_map_status st[3];
    em_err err = EM_ERR_INIT;

    for (uint32_t m = 0; m < 3; m++) {
        gen(&s[m], 100 + m, 500, 4, false, false);
        st[m] = write_map(dir, 2, m, 4, &s[m], m == 1 ? 2048 : 0, NULL);
    }
    for (uint32_t p = 0; p < 4; p++) {
        tset got = {0}, want = {0};
        for (uint32_t m = 0; m < 3; m++)
            for (size_t i = 0; i < s[m].n; i++)
                if (s[m].r[i].part == p)
                    tset_add(&want, em_slice_make(s[m].r[i].k, s[m].r[i].kn),
                             em_slice_make(s[m].r[i].v, s[m].r[i].vn), p);
        cr_assert_eq(read_part(dir, 2, p, st, 3, &got, NULL, &err), 0, "%s", err.msg);
        expect_part(&want, p, &got);
        tset_free(&got);
        tset_free(&want);
    }
    for (uint32_t m = 0; m < 3; m++) {
        em_map_status_destroy(&st[m]);
        tset_free(&s[m]);
    }
    em_shuffle_remove_files(dir, 2);
    cr_assert_eq(tu_count_files(dir), 0);
    tu_rmdir(dir);
}

/* Sums of the i64 values per (partition, key) over the reference set. */
static int64_t ref_sum(const tset *s, uint32_t p, const uint8_t *k, size_t kn)
{
    int64_t sum = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->r[i].part == p && s->r[i].kn == kn && !memcmp(s->r[i].k, k, kn))
            sum += em_dec_i64(s->r[i].v);
    return sum;
}

/* An 8-byte kernel for the sum combiner that counts its calls. */
static uint64_t k8_calls;
static void k8_sum(uint8_t *acc, const uint8_t *v)
{
    k8_calls++;
    em_enc_i64(acc, em_dec_i64(acc) + em_dec_i64(v));
}
static const em_combiner sum8_combiner = {.ops = &tu_sum_ops, .merge_value8 = k8_sum, .merge_combiners8 = k8_sum};

static void combine_case_with(size_t budget, const em_combiner *comb)
{
    char *dir = tu_mkdtemp();
    tset s = {0};
    em_err err = EM_ERR_INIT;

    gen(&s, 7, 5000, 5, false, true);
    em_map_status st = write_map(dir, 4, 1, 5, &s, budget, comb);
    cr_assert_lt(st.records_written, 5000, "combining must shrink the output");
    for (uint32_t p = 0; p < 5; p++) {
        tset got = {0};
        cr_assert_eq(read_part(dir, 4, p, &st, 1, &got, NULL, &err), 0, "%s", err.msg);
        /* Fold the output per key (a key may leave several times under a small budget). */
        for (size_t i = 0; i < got.n; i++) {
            int64_t sum = 0;
            size_t seen = 0;
            for (size_t j = 0; j < got.n; j++)
                if (got.r[j].kn == got.r[i].kn && !memcmp(got.r[j].k, got.r[i].k, got.r[i].kn)) {
                    sum += em_dec_i64(got.r[j].v);
                    seen++;
                }
            if (budget == 0)
                cr_assert_eq(seen, 1, "one record per key without spills");
            cr_assert_eq(sum, ref_sum(&s, p, got.r[i].k, got.r[i].kn));
        }
        /* Every reference key of the partition is present. */
        for (size_t i = 0; i < s.n; i++) {
            if (s.r[i].part != p)
                continue;
            bool found = false;
            for (size_t j = 0; j < got.n && !found; j++)
                found = got.r[j].kn == s.r[i].kn && !memcmp(got.r[j].k, s.r[i].k, s.r[i].kn);
            cr_assert(found);
        }
        tset_free(&got);
    }
    em_map_status_destroy(&st);
    tset_free(&s);
    tu_rmdir(dir);
}

static void combine_case(size_t budget)
{
    combine_case_with(budget, &tu_sum_combiner);
}

Test(writer, map_side_combine_sum)
{
    combine_case(0);
}

Test(writer, map_side_combine_8byte_kernel_and_shared_hash)
{
    k8_calls = 0;
    combine_case_with(0, &sum8_combiner);
    cr_assert_gt(k8_calls, 0, "the 8-byte kernel must be used for 8-byte values");
    uint64_t first = k8_calls;
    add_hashed = true;
    combine_case_with(4096, &sum8_combiner);
    add_hashed = false;
    cr_assert_gt(k8_calls, first);
}

Test(writer, map_side_combine_tiny_budget)
{
    combine_case(4096);
}

/* Budgets where the map's table would outgrow the budget (drained before growing) and where
 * a drained map keeps its table (at most half the budget) for the records after it. */
Test(writer, map_side_combine_drains_before_growing_and_keeps_table)
{
    combine_case(12u << 10);
    combine_case(40u << 10);
    combine_case(160u << 10);
}

/* ---------------------------------------------------------------- failures */

static void three_maps(const char *dir, em_map_status st[3], tset s[3])
{
    for (uint32_t m = 0; m < 3; m++) {
        gen(&s[m], 200 + m, 400, 3, false, false);
        st[m] = write_map(dir, 5, m + 1, 3, &s[m], 0, NULL);
    }
}

static void free_three(em_map_status st[3], tset s[3])
{
    for (int m = 0; m < 3; m++) {
        em_map_status_destroy(&st[m]);
        tset_free(&s[m]);
    }
}

static void expect_fetch_fail(const char *dir, em_map_status *st, uint32_t want_map)
{
    tset got = {0};
    em_err err = EM_ERR_INIT;
    uint32_t failed = 999;
    char want[64];

    int rc = read_part(dir, 5, 1, st, 3, &got, &failed, &err);
    cr_assert_eq(rc, EM_EFETCH, "rc=%d %s", rc, err.msg);
    cr_assert_eq(err.code, EM_EFETCH);
    cr_assert_eq(failed, want_map);
    snprintf(want, sizeof want, "shuffle 5 map %u reduce 1", want_map);
    cr_assert(strstr(err.msg, want), "message '%s' lacks '%s'", err.msg, want);
    tset_free(&got);
}

Test(writer, corrupt_segment_is_fetch_failure)
{
    char *dir = tu_mkdtemp();
    em_map_status st[3];
    tset s[3] = {{0}};
    char path[4096];

    three_maps(dir, st, s);
    em_shuffle_data_path(dir, 5, 2, path, sizeof path);
    /* Flip a byte in the middle of reduce partition 1's segment of map 2. */
    uint64_t off = st[1].sizes[0] + st[1].sizes[1] / 2;
    int fd = open(path, O_RDWR);
    uint8_t c;
    cr_assert_eq(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x40;
    cr_assert_eq(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
    expect_fetch_fail(dir, st, 2);
    free_three(st, s);
    tu_rmdir(dir);
}

Test(writer, truncated_data_is_fetch_failure)
{
    char *dir = tu_mkdtemp();
    em_map_status st[3];
    tset s[3] = {{0}};
    char path[4096];

    three_maps(dir, st, s);
    em_shuffle_data_path(dir, 5, 3, path, sizeof path);
    cr_assert_eq(truncate(path, (off_t)(st[2].sizes[0] + st[2].sizes[1] - 3)), 0);
    expect_fetch_fail(dir, st, 3);
    free_three(st, s);
    tu_rmdir(dir);
}

Test(writer, missing_index_is_fetch_failure)
{
    char *dir = tu_mkdtemp();
    em_map_status st[3];
    tset s[3] = {{0}};
    char path[4096];

    three_maps(dir, st, s);
    em_shuffle_index_path(dir, 5, 1, path, sizeof path);
    cr_assert_eq(unlink(path), 0);
    expect_fetch_fail(dir, st, 1);
    free_three(st, s);
    tu_rmdir(dir);
}

Test(writer, wrong_expected_size_is_fetch_failure)
{
    char *dir = tu_mkdtemp();
    em_map_status st[3];
    tset s[3] = {{0}};

    three_maps(dir, st, s);
    st[1].sizes[1] += 1;
    expect_fetch_fail(dir, st, 2);
    free_three(st, s);
    tu_rmdir(dir);
}

static int fail_batch(void *ud, em_batch *b, em_err *err)
{
    (void)ud;
    em_batch_unref(b);
    return em_err_set(err, EM_ECANCELED, "consumer says stop");
}

Test(writer, on_batch_error_passes_through)
{
    char *dir = tu_mkdtemp();
    em_map_status st[3];
    tset s[3] = {{0}};
    em_shuffle_src srcs[3];
    em_fetcher f = em_fetcher_local();
    em_err err = EM_ERR_INIT;
    uint32_t failed = 999;

    three_maps(dir, st, s);
    for (uint32_t m = 0; m < 3; m++)
        srcs[m] = (em_shuffle_src){st[m].map_id, dir, st[m].sizes[0]};
    int rc = em_shuffle_read(&f, 5, 0, srcs, 3, fail_batch, NULL, &failed, &err);
    cr_assert_eq(rc, EM_ECANCELED);
    cr_assert_str_eq(err.msg, "consumer says stop");
    cr_assert_eq(failed, 999);
    free_three(st, s);
    tu_rmdir(dir);
}

Test(writer, index_rejects_damage)
{
    uint64_t offs[4] = {0, 5, 5, 9};
    em_vbuf b;
    em__shuffle_index ix;
    em_err err = EM_ERR_INIT;

    em_vbuf_init(&b);
    cr_assert_eq(em__shuffle_index_encode(&b, 9, 8, 3, offs, &err), 0);
    cr_assert_eq(b.len, EM__SHUFFLE_INDEX_SIZE(3));
    cr_assert_eq(em__shuffle_index_decode(b.data, b.len, &ix, &err), 0, "%s", err.msg);
    cr_assert_eq(ix.shuffle_id, 9);
    cr_assert_eq(ix.map_id, 8);
    cr_assert_eq(ix.nparts, 3);
    for (uint32_t i = 0; i <= 3; i++)
        cr_assert_eq(em__shuffle_index_off(&ix, i), offs[i]);
    for (size_t i = 0; i < b.len; i++) {   /* every single-byte flip is detected */
        b.data[i] ^= 0x10;
        cr_assert_eq(em__shuffle_index_decode(b.data, b.len, &ix, &err), EM_ECORRUPT, "%zu", i);
        b.data[i] ^= 0x10;
    }
    cr_assert_eq(em__shuffle_index_decode(b.data, b.len - 1, &ix, &err), EM_ECORRUPT);
    em_vbuf_destroy(&b);
}

Test(writer, bad_partition_poisons)
{
    char *dir = tu_mkdtemp();
    em_shuffle_writer_opts o = {.dir = dir, .shuffle_id = 1, .map_id = 1, .nparts = 2,
                                .kind = EM_REC_KV};
    em_err err = EM_ERR_INIT;
    em_map_status st;
    em_rec r = {em_slice_str("k"), em_slice_str("v")};
    em_shuffle_writer *w = em_shuffle_writer_new(&o, &err);

    cr_assert(w);
    cr_assert_eq(em_shuffle_writer_add(w, 2, &r, &err), EM_EINVAL);
    cr_assert_eq(em_shuffle_writer_add(w, 0, &r, &err), EM_EINVAL);
    cr_assert_eq(em_shuffle_writer_commit(w, &st, &err), EM_EINVAL);
    em_shuffle_writer_free(w);
    cr_assert_eq(tu_count_files(dir), 0);
    tu_rmdir(dir);
}

Test(writer, survives_every_oom)
{
    char *dir = tu_mkdtemp();
    tset s = {0};
    gen(&s, 5, 200, 4, false, false);
    em_shuffle_writer_opts o = {.dir = dir, .shuffle_id = 6, .map_id = 0, .nparts = 4,
                                .kind = EM_REC_KV, .mem_budget = 1024};
    for (long n = 0;; n++) {
        em_err err = EM_ERR_INIT;
        em_map_status st;
        int rc = 0;
        memset(&st, 0, sizeof st);
        em_test_fail_alloc_after(n);
        em_shuffle_writer *w = em_shuffle_writer_new(&o, &err);
        if (!w)
            rc = err.code;
        for (size_t i = 0; w && rc == 0 && i < s.n; i++) {
            em_rec r = {em_slice_make(s.r[i].k, s.r[i].kn), em_slice_make(s.r[i].v, s.r[i].vn)};
            rc = em_shuffle_writer_add(w, s.r[i].part, &r, &err);
        }
        if (w && rc == 0)
            rc = em_shuffle_writer_commit(w, &st, &err);
        em_shuffle_writer_free(w);
        em_test_alloc_reset();
        if (rc == 0) {
            em_map_status_destroy(&st);
            break;
        }
        cr_assert_eq(rc, EM_ENOMEM, "allocation %ld: rc=%d %s", n, rc, err.msg);
        cr_assert_eq(tu_count_files(dir), 0, "allocation %ld left files", n);
    }
    tset_free(&s);
    tu_rmdir(dir);
}
