/* tests/unit/api/test_aggregate_acc.c - in-place aggregation in local[2] (the comparison
 * with the old path on random inputs, in local[2] and local-cluster[2,1] and with an
 * executor killed, is examples/aggacc.c run by tests/integration/test_aggacc.sh):
 * accumulators are made on the executor (an 8 MB one costs nothing in the stage JSON),
 * batches are aligned, an empty dataset gives the initial accumulator, tree aggregations
 * with small partials run no shuffle (no file in the shuffle dir) and with large partials
 * still agree, by-key accumulators equal a sequential reference, a driver-side merge reads a
 * broadcast, and bad arguments are errors. */
#include <dirent.h>
#include <math.h>

#include "api_test_util.h"
#include "engine/api/api_int.h"

/* Test functions, registered from the table at the end of this file. */
int ta_init(const em_fn_ctx *c, void *acc, size_t size, em_err *err);
int ta_count(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in, em_err *err);
int ta_max(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err);
int ta_sum(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err);
int ta_add(const em_fn_ctx *c, void *acc, size_t size, const em_rec *in, em_err *err);
int ta_bsum(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err);
int ta_old_seq(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int ta_old_bcomb(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);

/* Accumulator: u64 records, u64 bytes, then (size - 16) bytes; init writes 0xAB into the
 * last byte (so "initial accumulator" is visible). */
int ta_init(const em_fn_ctx *c, void *acc, size_t size, em_err *err)
{
    (void)c;
    (void)err;
    ((uint8_t *)acc)[size - 1] = 0xAB;
    return 0;
}

/* Counts records and value bytes; checks alignment of the accumulator and FIXED batches. */
int ta_count(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in, em_err *err)
{
    (void)c;
    uint64_t *a = acc;
    if (size < 16 || ((uintptr_t)acc & 15) || in->nrecs == 0 ||
        (in->kind == EM_REC_FIXED && (((uintptr_t)in->data & 63) || in->nbytes != in->nrecs *
                                                                                  in->width)))
        return em_err_set(err, EM_EINVAL, "ta_count: bad accumulator or batch");
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &r)) {
        a[0]++;
        a[1] += r.val.n;
    }
    return 0;
}

/* Merge: sums the two counters; max of the rest bytewise (init's 0xAB survives). */
int ta_max(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err)
{
    (void)c;
    (void)err;
    uint64_t *a = acc;
    const uint8_t *o = other;
    a[0] += em_load_le64(o);
    a[1] += em_load_le64(o + 8);
    for (size_t i = 16; i < size; i++)
        if (o[i] > ((uint8_t *)acc)[i])
            ((uint8_t *)acc)[i] = o[i];
    return 0;
}

/* By key: u64 sum of em_enc_i64 values, u64 count. */
int ta_add(const em_fn_ctx *c, void *acc, size_t size, const em_rec *in, em_err *err)
{
    (void)c;
    uint64_t *a = acc;
    if (size != 16 || in->val.n != 8 || ((uintptr_t)acc & 15))
        return em_err_set(err, EM_EINVAL, "ta_add: bad accumulator or value");
    a[0] += (uint64_t)em_dec_i64(in->val.p);
    a[1]++;
    return 0;
}

int ta_sum(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err)
{
    (void)c;
    (void)err;
    uint64_t *a = acc;
    const uint8_t *o = other;
    for (size_t i = 0; i < size / 8; i++)
        a[i] += em_load_le64(o + 8 * i);
    return 0;
}

/* Merge that needs broadcast (u32 id in the blob) to hold "ok". */
static int need_ok(const em_fn_ctx *c, em_err *err)
{
    em_slice v;
    if (c->blob.n != 4)
        return em_err_set(err, EM_EINVAL, "no broadcast id");
    int rc = em_task_broadcast(c->task, em_load_le32(c->blob.p), &v, err);
    if (rc < 0)
        return rc;
    return v.n == 2 && memcmp(v.p, "ok", 2) == 0 ? 0 : em_err_set(err, EM_ECORRUPT, "value");
}

int ta_bsum(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err)
{
    int rc = need_ok(c, err);
    return rc < 0 ? rc : ta_max(c, acc, other, size, err);
}

/* Old signature: acc (16 bytes: records, bytes) + one record. */
int ta_old_seq(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    uint8_t o[16];
    if (a.n != 16)
        return em_err_set(err, EM_EINVAL, "ta_old_seq: %zu bytes", a.n);
    em_store_le64(o, em_load_le64(a.p) + 1);
    em_store_le64(o + 8, em_load_le64(a.p + 8) + b.n);
    return em_vbuf_append(out, o, 16);
}

int ta_old_bcomb(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    uint8_t o[16];
    int rc = need_ok(c, err);
    if (rc < 0)
        return rc;
    em_store_le64(o, em_load_le64(a.p) + em_load_le64(b.p));
    em_store_le64(o + 8, em_load_le64(a.p + 8) + em_load_le64(b.p + 8));
    return em_vbuf_append(out, o, 16);
}

static const em_slice none = {NULL, 0};

/* n FIXED records of `width` bytes in nparts partitions (contents: byte i % 251). */
static em_rdd *fixed_rows(em_context *sc, size_t n, uint32_t width, uint32_t nparts)
{
    uint8_t *buf = malloc(n * width + 1);
    em_rec *recs = calloc(n + 1, sizeof *recs);
    for (size_t i = 0; i < n * width; i++)
        buf[i] = (uint8_t)(i % 251);
    for (size_t i = 0; i < n; i++)
        recs[i].val = em_slice_make(buf + i * width, width);
    em_rdd *r = em_parallelize(sc, EM_REC_FIXED, width, recs, n, nparts);
    free(recs);
    free(buf);
    return r;
}

static size_t files_in(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    cr_assert_not_null(d, "%s", dir);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void check_counts(const em_vbuf *out, size_t size, uint64_t recs, uint64_t bytes)
{
    cr_assert_eq(out->len, size);
    cr_assert_eq(em_load_le64(out->data), recs);
    cr_assert_eq(em_load_le64(out->data + 8), bytes);
    cr_assert_eq(out->data[size - 1], 0xAB, "init ran");
}

Test(aggregate_acc, fixed_rows_counted_in_aligned_batches, .timeout = 60)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_vbuf out;
    /* 3000 rows of 808 bytes: several ~1 MiB batches per partition, plus one row of
     * another size in a partition of its own is not possible with parallelize, so widths
     * 8 and 808 both run. */
    uint32_t widths[] = {8, 808, 4000};
    for (int w = 0; w < 3; w++) {
        em_rdd *r = fixed_rows(sc, 3000, widths[w], 5);
        em_agg a = {.size = 24, .init = "ta_init", .seq = "ta_count", .merge = "ta_max"};
        cr_assert_eq(em_rdd_aggregate_acc(r, &a, &out, &err), 0, "%s", err.msg);
        check_counts(&out, 24, 3000, 3000ull * widths[w]);
        em_vbuf_destroy(&out);
    }
    em_context_free(sc);
}

/* Runs change kind (FIXED, then KV, in one partition) and a record larger than a run
 * (3 MiB BYTES) gets a batch of its own: every record is counted once. */
Test(aggregate_acc, mixed_kinds_and_huge_records, .timeout = 60)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_vbuf out;
    enum { NB = 5, HUGE = 3 << 20 };
    em_rec kv[3] = {{{(const uint8_t *)"a", 1}, {(const uint8_t *)"xyz", 3}},
                    {{(const uint8_t *)"b", 1}, {(const uint8_t *)"", 0}},
                    {{(const uint8_t *)"", 0}, {(const uint8_t *)"12345", 5}}};
    uint8_t *big = calloc(1, HUGE);
    em_rec by[NB];
    for (int i = 0; i < NB; i++)
        by[i].val = i == 2 ? em_slice_make(big, HUGE) : em_slice_make("hello", 5);
    em_rdd *f = fixed_rows(sc, 700, 16, 2);
    em_rdd *k = em_parallelize(sc, EM_REC_KV, 0, kv, 3, 1);
    em_rdd *b = em_parallelize(sc, EM_REC_BYTES, 0, by, NB, 2);
    em_rdd *u1 = em_rdd_union(f, k);
    em_rdd *u = em_rdd_union(u1, b);
    em_rdd *one = em_rdd_coalesce(u, 1, false);
    em_agg a = {.size = 32, .init = "ta_init", .seq = "ta_count", .merge = "ta_max"};
    cr_assert_eq(em_rdd_aggregate_acc(one, &a, &out, &err), 0, "%s", err.msg);
    check_counts(&out, 32, 700 + 3 + NB, 700 * 16 + 8 + 4 * 5 + HUGE);
    em_vbuf_destroy(&out);
    cr_assert_eq(em_rdd_aggregate_acc(u, &a, &out, &err), 0, "%s", err.msg);
    check_counts(&out, 32, 700 + 3 + NB, 700 * 16 + 8 + 4 * 5 + HUGE);
    em_vbuf_destroy(&out);
    free(big);
    em_context_free(sc);
}

Test(aggregate_acc, empty_dataset_gives_the_initial_accumulator, .timeout = 60)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_vbuf out;
    em_agg a = {.size = 40, .init = "ta_init", .seq = "ta_count", .merge = "ta_max"};
    /* no partition at all, and partitions without records */
    em_rdd *r0 = em_parallelize(sc, EM_REC_BYTES, 0, NULL, 0, 1);
    em_rdd *r1 = em_rdd_filter(fixed_rows(sc, 10, 8, 3), "em.key_equals", none);
    em_rdd *rs[] = {r0, r1};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(em_rdd_aggregate_acc(rs[i], &a, &out, &err), 0, "%s", err.msg);
        check_counts(&out, 40, 0, 0);
        em_vbuf_destroy(&out);
        cr_assert_eq(em_rdd_tree_aggregate_acc(rs[i], &a, 3, &out, &err), 0, "%s", err.msg);
        check_counts(&out, 40, 0, 0);
        em_vbuf_destroy(&out);
    }
    em_context_free(sc);
}

Test(aggregate_acc, an_8mb_accumulator_is_not_in_the_stage_json, .timeout = 60)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_vbuf out;
    size_t size = 8u << 20;
    em_rdd *r = fixed_rows(sc, 100, 16, 2);
    em_result_spec spec = {.op = EM_RESULT_AGGREGATE_ACC, .fn = "ta_count", .fn_init = "ta_init",
                           .acc_size = size};
    char *json = em_stage_encode(r->node, false, &spec, &err);
    cr_assert_not_null(json, "%s", err.msg);
    cr_assert_lt(strlen(json), 4096, "stage JSON of %zu bytes", strlen(json));
    em_free(json);
    em_agg a = {.size = size, .init = "ta_init", .seq = "ta_count", .merge = "ta_max"};
    cr_assert_eq(em_rdd_aggregate_acc(r, &a, &out, &err), 0, "%s", err.msg);
    check_counts(&out, size, 100, 1600);
    em_vbuf_destroy(&out);
    em_context_free(sc);
}

Test(aggregate_acc, small_partials_tree_runs_no_shuffle, .timeout = 60)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_context_stats st;
    em_vbuf out;
    em_rdd *r = fixed_rows(sc, 6400, 8, 32);
    em_agg a = {.size = 24, .init = "ta_init", .seq = "ta_count", .merge = "ta_max"};
    cr_assert_eq(em_rdd_tree_aggregate_acc(r, &a, 2, &out, &err), 0, "%s", err.msg);
    check_counts(&out, 24, 6400, 6400 * 8);
    em_vbuf_destroy(&out);
    /* the old signature with a small zero too */
    uint8_t zero[16] = {0};
    cr_assert_eq(em_rdd_tree_aggregate(r, em_slice_make(zero, 16), "ta_old_seq", "em.first",
                                       none, 2, &out, &err), 0, "%s", err.msg);
    em_vbuf_destroy(&out);
    em_context_stats_get(sc, &st);
    cr_assert_eq(st.map_tasks_run, 0, "no shuffle ran");
    cr_assert_eq(files_in(sc->shuffle_dir), 0, "no shuffle file in %s", sc->shuffle_dir);
    em_context_free(sc);
}

Test(aggregate_acc, large_partials_tree_on_the_executors_equals, .timeout = 120)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_context_stats st;
    em_vbuf direct, tree;
    em_rdd *r = fixed_rows(sc, 3200, 24, 32);
    /* 32 x 1.25 MiB = 40 MiB of partials > TREE_DIRECT_BYTES (32 MiB): a tree of depth 2
     * on the executors */
    em_agg a = {.size = 1280u << 10, .init = "ta_init", .seq = "ta_count", .merge = "ta_max"};
    cr_assert_eq(em_rdd_aggregate_acc(r, &a, &direct, &err), 0, "%s", err.msg);
    cr_assert_eq(em_rdd_tree_aggregate_acc(r, &a, 2, &tree, &err), 0, "%s", err.msg);
    em_context_stats_get(sc, &st);
    cr_assert_gt(st.map_tasks_run, 0, "the tree shuffled");
    check_counts(&tree, a.size, 3200, 3200 * 24);
    cr_assert_eq(direct.len, tree.len);
    cr_assert(memcmp(direct.data, tree.data, tree.len) == 0);
    em_vbuf_destroy(&direct);
    em_vbuf_destroy(&tree);
    em_context_free(sc);
}

Test(aggregate_acc, by_key_equals_a_sequential_reference, .timeout = 60)
{
    em_context *sc = tu_ctx("1m");   /* small budget: map-side spills too */
    em_err err = EM_ERR_INIT;
    enum { N = 20000, K = 300 };
    em_rec *recs = calloc(N, sizeof *recs);
    uint8_t (*kb)[24] = calloc(N, 24);
    int64_t sum[K] = {0}, cnt[K] = {0};
    em_rng g;
    em_rng_seed(&g, 3);
    for (int i = 0; i < N; i++) {
        int k = (int)em_rng_below(&g, K), v = (int)em_rng_below(&g, 1000) - 500;
        int kl = snprintf((char *)kb[i], 16, "key-%d", k);
        em_enc_i64(kb[i] + 16, v);
        recs[i].key = em_slice_make(kb[i], (size_t)kl);
        recs[i].val = em_slice_make(kb[i] + 16, 8);
        sum[k] += v;
        cnt[k]++;
    }
    em_rdd *r = em_parallelize(sc, EM_REC_KV, 0, recs, N, 6);
    em_agg a = {.size = 16, .seq = "ta_add", .merge = "ta_sum"};
    for (int pass = 0; pass < 2; pass++) {
        /* pass 1: already partitioned as wanted, so the reduce runs locally */
        em_rdd *in = pass ? em_rdd_partition_by(r, EM_PART_HASH, 4) : r;
        em_rdd *b = em_rdd_aggregate_by_key_acc(in, &a, 4);
        em_records out;
        cr_assert_eq(em_rdd_collect(b, &out, &err), 0, "%s", err.msg);
        size_t seen = 0;
        for (size_t i = 0; i < out.n; i++) {
            char kbuf[24] = {0};
            cr_assert_lt(out.recs[i].key.n, sizeof kbuf);
            memcpy(kbuf, out.recs[i].key.p, out.recs[i].key.n);
            int k = atoi(kbuf + 4);
            cr_assert(k >= 0 && k < K, "%s", kbuf);
            cr_assert_eq(out.recs[i].val.n, 16);
            cr_assert_eq((int64_t)em_load_le64(out.recs[i].val.p), sum[k], "key %d", k);
            cr_assert_eq((int64_t)em_load_le64(out.recs[i].val.p + 8), cnt[k], "key %d", k);
            seen++;
        }
        size_t keys = 0;
        for (int k = 0; k < K; k++)
            keys += cnt[k] > 0;
        cr_assert_eq(seen, keys);
        em_records_destroy(&out);
    }
    free(recs);
    free(kb);
    em_context_free(sc);
}

Test(aggregate_acc, driver_side_merge_reads_a_broadcast, .timeout = 60)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_vbuf out;
    uint32_t id = em_broadcast(sc, em_slice_make("ok", 2), &err);
    cr_assert_gt(id, 0, "%s", err.msg);
    uint8_t blob[4];
    em_store_le32(blob, id);
    em_rdd *r = fixed_rows(sc, 500, 8, 4);
    em_agg a = {.size = 24, .init = "ta_init", .seq = "ta_count", .merge = "ta_bsum",
                .ctx = em_slice_make(blob, 4)};
    cr_assert_eq(em_rdd_aggregate_acc(r, &a, &out, &err), 0, "%s", err.msg);
    check_counts(&out, 24, 500, 4000);
    em_vbuf_destroy(&out);
    /* the old path's driver-side combine */
    uint8_t zero[16] = {0};
    cr_assert_eq(em_rdd_aggregate(r, em_slice_make(zero, 16), "ta_old_seq", "ta_old_bcomb",
                                  em_slice_make(blob, 4), &out, &err), 0, "%s", err.msg);
    cr_assert_eq(em_load_le64(out.data), 500);
    em_vbuf_destroy(&out);
    em_context_free(sc);
}

Test(aggregate_acc, bad_arguments_are_errors, .timeout = 60)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_vbuf out;
    em_rdd *r = fixed_rows(sc, 10, 8, 2);
    em_agg a = {.size = 0, .seq = "ta_count", .merge = "ta_max"};
    cr_assert_eq(em_rdd_aggregate_acc(r, &a, &out, &err), EM_EINVAL);
    a.size = 16;
    a.seq = "em.sum_i64";   /* a registered reduce function where a seq one is needed */
    cr_assert_eq(em_rdd_aggregate_acc(r, &a, &out, &err), EM_EPLAN);
    a.seq = "ta_count";
    cr_assert_eq(em_rdd_tree_aggregate_acc(r, &a, 0, &out, &err), EM_EINVAL);
    a.seq = NULL;
    em_rdd *b = em_rdd_aggregate_by_key_acc(r, &a, 2);
    cr_assert_not_null(em_rdd_error(b));
    em_context_free(sc);
}

/* The test functions, registered by name from a table before any test runs (the engine
 * does not search the program's own symbols). */
static const em_fn_entry test_fns[] = {
    {"ta_init", EM_FN_ACC_INIT, EM_FN(ta_init)},
    {"ta_count", EM_FN_ACC_SEQ, EM_FN(ta_count)},
    {"ta_max", EM_FN_ACC_MERGE, EM_FN(ta_max)},
    {"ta_sum", EM_FN_ACC_MERGE, EM_FN(ta_sum)},
    {"ta_add", EM_FN_ACC_ADD, EM_FN(ta_add)},
    {"ta_bsum", EM_FN_ACC_MERGE, EM_FN(ta_bsum)},
    {"ta_old_seq", EM_FN_REDUCE, EM_FN(ta_old_seq)},
    {"ta_old_bcomb", EM_FN_REDUCE, EM_FN(ta_old_bcomb)},
};

__attribute__((constructor)) static void register_test_fns(void)
{
    if (em_fn_register_table(test_fns, sizeof test_fns / sizeof test_fns[0]) != 0)
        abort();
}
