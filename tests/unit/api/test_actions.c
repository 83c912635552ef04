/* tests/unit/api/test_actions.c - actions, broadcast, accumulators, persistence and
 * save_as_text_file against sequential references, master local[2]. */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_test_util.h"

/* One timeout for the suite (see test_rdd.c). */
TestSuite(actions, .timeout = 60);

/* map: value + broadcast (i64); blob: u32 broadcast id. */
int tst_add_bcast(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tst_add_bcast(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em_slice v;
    int rc = em_task_broadcast(c->task, em_load_le32(c->blob.p), &v, err);
    if (rc < 0)
        return rc;
    uint8_t b[8];
    em_enc_i64(b, em_dec_i64(in->val.p) + em_dec_i64(v.p));
    return em_emit_val(out, em_slice_make(b, 8), err);
}

/* map: identity that adds 1 to accumulator (u32 id in the blob). */
int tst_acc_one(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tst_acc_one(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em_task_acc_add_i64(c->task, em_load_le32(c->blob.p), 1);
    return em_emit(out, in, err);
}

/* foreach: adds the partition's sum to accumulator (u32 id in the blob). */
int tst_acc_sum(const em_fn_ctx *c, uint32_t index, em_iter *in, em_err *err);
int tst_acc_sum(const em_fn_ctx *c, uint32_t index, em_iter *in, em_err *err)
{
    (void)index;
    em_rec r;
    int rc;
    while ((rc = em_iter_next(in, &r, err)) == 1)
        em_task_acc_add_i64(c->task, em_load_le32(c->blob.p), em_dec_i64(r.val.p));
    return rc;
}

/* reduce: a - b is not commutative: checks the driver merges in partition order. Here we
 * use concatenation of byte strings (associative, order-sensitive). */
int tst_concat(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int tst_concat(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    (void)err;
    if (em_vbuf_append(out, a.p, a.n) < 0 || em_vbuf_append(out, b.p, b.n) < 0)
        return EM_ENOMEM;
    return 0;
}

static em_rdd *letters(em_context *sc, uint32_t nparts)
{
    static const char *w[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    em_rec recs[10];
    for (int i = 0; i < 10; i++)
        recs[i] = (em_rec){{NULL, 0}, em_slice_str(w[i])};
    return em_parallelize(sc, EM_REC_BYTES, 0, recs, 10, nparts);
}

Test(actions, reduce_fold_aggregate_tree)
{
    em_context *sc = tu_ctx(NULL);
    em_slice none = em_slice_make(NULL, 0);
    em_err err = EM_ERR_INIT;
    em_vbuf out;
    em_rdd *r = em_range(sc, 1, 1001, 1, 16);
    cr_assert_eq(em_rdd_reduce(r, "em.sum_i64", none, &out, &err), 0, "%s", err.msg);
    cr_assert_eq(em_dec_i64(out.data), 500500);
    em_vbuf_destroy(&out);
    uint8_t z[8];
    cr_assert_eq(em_rdd_fold(r, tu_i64(z, 5), "em.sum_i64", none, &out, &err), 0);
    cr_assert_eq(em_dec_i64(out.data), 500500 + 5 * 17, "zero per partition + driver");
    em_vbuf_destroy(&out);
    cr_assert_eq(em_rdd_aggregate(r, tu_i64(z, 0), "em.max_i64", "em.sum_i64", none, &out, &err),
                 0, "%s", err.msg);
    int64_t want = 0;   /* sum of each partition's max */
    for (int i = 0; i < 16; i++)
        want += (int64_t)((i + 1) * 1000 / 16);
    cr_assert_eq(em_dec_i64(out.data), want);
    em_vbuf_destroy(&out);
    for (uint32_t depth = 1; depth <= 3; depth++) {
        cr_assert_eq(em_rdd_tree_aggregate(r, tu_i64(z, 0), "em.sum_i64", "em.sum_i64", none,
                                           depth, &out, &err),
                     0, "depth %u: %s", depth, err.msg);
        cr_assert_eq(em_dec_i64(out.data), 500500, "depth %u", depth);
        em_vbuf_destroy(&out);
    }
    cr_assert_eq(em_rdd_reduce(letters(sc, 4), "tst_concat", none, &out, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(out.len, 10);
    cr_assert(memcmp(out.data, "abcdefghij", 10) == 0, "partition order");
    em_vbuf_destroy(&out);
    em_rdd *empty = em_range(sc, 0, 0, 1, 3);
    cr_assert_eq(em_rdd_reduce(empty, "em.sum_i64", none, &out, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "empty"), "%s", err.msg);
    cr_assert_eq(em_rdd_reduce(r, "no_such_reduce", none, &out, &err), EM_EPLAN);
    em_context_free(sc);
}

Test(actions, take_first_top_take_ordered)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_records got;
    /* most partitions empty: take must scan on */
    em_rdd *r = em_range(sc, 0, 5, 1, 40);
    size_t ns[] = {0, 1, 3, 5, 9};
    for (int k = 0; k < 5; k++) {
        cr_assert_eq(em_rdd_take(r, ns[k], &got, &err), 0, "%s", err.msg);
        size_t want = ns[k] < 5 ? ns[k] : 5;
        cr_assert_eq(got.n, want);
        for (size_t i = 0; i < got.n; i++)
            cr_assert_eq(em_dec_i64(got.recs[i].val.p), (int64_t)i);
        em_records_destroy(&got);
    }
    cr_assert_eq(em_rdd_first(r, &got, &err), 0);
    cr_assert_eq(got.n, 1);
    em_records_destroy(&got);
    cr_assert_eq(em_rdd_first(em_range(sc, 0, 0, 1, 2), &got, &err), EM_EINVAL);
    em_rdd *l = letters(sc, 3);
    cr_assert_eq(em_rdd_top(l, 3, &got, &err), 0, "%s", err.msg);
    cr_assert_eq(got.n, 3);
    cr_assert(em_slice_eq(got.recs[0].val, em_slice_str("j")));
    cr_assert(em_slice_eq(got.recs[2].val, em_slice_str("h")));
    em_records_destroy(&got);
    cr_assert_eq(em_rdd_take_ordered(l, 20, &got, &err), 0, "%s", err.msg);
    cr_assert_eq(got.n, 10);
    cr_assert(em_slice_eq(got.recs[0].val, em_slice_str("a")));
    cr_assert(em_slice_eq(got.recs[9].val, em_slice_str("j")));
    em_records_destroy(&got);
    em_context_free(sc);
}

Test(actions, count_by_key_value_lookup)
{
    em_context *sc = tu_ctx(NULL);
    tu_kv d = tu_random_kv(500, 25, 11);
    em_rdd *r = em_parallelize(sc, EM_REC_KV, 0, d.recs, d.n, 4);
    em_records got;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_count_by_key(r, &got, &err), 0, "%s", err.msg);
    size_t total = 0;
    for (size_t i = 0; i < got.n; i++) {
        int64_t want = 0;
        for (size_t j = 0; j < d.n; j++)
            want += em_slice_eq(d.recs[j].key, got.recs[i].key);
        cr_assert_eq(em_dec_i64(got.recs[i].val.p), want);
        total += (size_t)want;
    }
    cr_assert_eq(total, d.n);
    em_records_destroy(&got);
    em_rdd *l = letters(sc, 3);
    cr_assert_eq(em_rdd_count_by_value(em_rdd_union(l, l), &got, &err), 0, "%s", err.msg);
    cr_assert_eq(got.n, 10);
    for (size_t i = 0; i < got.n; i++)
        cr_assert_eq(em_dec_i64(got.recs[i].val.p), 2);
    em_records_destroy(&got);
    /* lookup with and without a partitioner */
    em_rdd *hashed = em_rdd_partition_by(r, EM_PART_HASH, 5);
    for (int v = 0; v < 2; v++) {
        cr_assert_eq(em_rdd_lookup(v ? hashed : r, em_slice_str("key0"), &got, &err), 0, "%s",
                     err.msg);
        size_t want = 0;
        for (size_t j = 0; j < d.n; j++)
            want += strcmp(d.keys[j], "key0") == 0;
        cr_assert_eq(got.n, want);
        em_records_destroy(&got);
    }
    tu_kv_free(&d);
    em_context_free(sc);
}

Test(actions, take_sample_sizes_and_membership)
{
    em_context *sc = tu_ctx(NULL);
    em_rdd *r = em_range(sc, 0, 1000, 1, 4);
    em_records got;
    em_err err = EM_ERR_INIT;
    for (int wr = 0; wr < 2; wr++) {
        cr_assert_eq(em_rdd_take_sample(r, wr, 50, 7, &got, &err), 0, "%s", err.msg);
        cr_assert_eq(got.n, 50);
        bool seen[1000] = {0};
        for (size_t i = 0; i < got.n; i++) {
            int64_t v = em_dec_i64(got.recs[i].val.p);
            cr_assert(v >= 0 && v < 1000);
            if (!wr) {
                cr_assert(!seen[v], "duplicate without replacement");
                seen[v] = true;
            }
        }
        em_records_destroy(&got);
    }
    cr_assert_eq(em_rdd_take_sample(r, false, 5000, 1, &got, &err), 0);
    cr_assert_eq(got.n, 1000);
    em_records_destroy(&got);
    em_context_free(sc);
}

Test(actions, broadcast_and_accumulators_count_once)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    uint8_t v[8];
    uint32_t b = em_broadcast(sc, tu_i64(v, 1000), &err);
    cr_assert_gt(b, 0, "%s", err.msg);
    uint8_t blob[4];
    em_store_le32(blob, b);
    uint32_t acc = em_accumulator_new(sc, "records");
    uint8_t ab[4];
    em_store_le32(ab, acc);
    em_rdd *r = em_rdd_map(em_range(sc, 0, 100, 1, 3), "tst_acc_one", em_slice_make(ab, 4));
    em_rdd *m = em_rdd_map(r, "tst_add_bcast", em_slice_make(blob, 4));
    em_vbuf out;
    cr_assert_eq(em_rdd_reduce(m, "em.sum_i64", em_slice_make(NULL, 0), &out, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(em_dec_i64(out.data), 4950 + 100 * 1000);
    em_vbuf_destroy(&out);
    cr_assert_eq(em_accumulator_i64(sc, acc), 100);
    uint32_t acc2 = em_accumulator_new(sc, "sum");
    em_store_le32(ab, acc2);
    cr_assert_eq(em_rdd_foreach_partition(em_range(sc, 0, 10, 1, 4), "tst_acc_sum",
                                          em_slice_make(ab, 4), &err),
                 0, "%s", err.msg);
    cr_assert_eq(em_accumulator_i64(sc, acc2), 45);
    em_broadcast_destroy(sc, b);
    cr_assert_neq(em_rdd_reduce(m, "em.sum_i64", em_slice_make(NULL, 0), &out, &err), 0,
                  "a destroyed broadcast is gone");
    em_context_free(sc);
}

Test(actions, persist_levels_same_results_and_cache_reads)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_persist_level levels[] = {EM_PERSIST_MEMORY_ONLY, EM_PERSIST_MEMORY_AND_DISK,
                                 EM_PERSIST_DISK_ONLY};
    for (int i = 0; i < 3; i++) {
        uint32_t acc = em_accumulator_new(sc, "computed");
        uint8_t ab[4];
        em_store_le32(ab, acc);
        em_rdd *r = em_rdd_map(em_range(sc, 0, 300, 1, 3), "tst_acc_one", em_slice_make(ab, 4));
        cr_assert_eq(em_rdd_persist(r, levels[i]), r);
        uint64_t n1, n2;
        em_vbuf s1, s2;
        cr_assert_eq(em_rdd_count(r, &n1, &err), 0, "%s", err.msg);
        cr_assert_eq(em_rdd_reduce(r, "em.sum_i64", em_slice_make(NULL, 0), &s1, &err), 0);
        cr_assert_eq(em_rdd_count(r, &n2, &err), 0);
        cr_assert_eq(n1, 300);
        cr_assert_eq(n2, 300);
        cr_assert_eq(em_dec_i64(s1.data), 44850);
        cr_assert_eq(em_accumulator_i64(sc, acc), 300, "level %d: computed once, then read "
                     "from the cache", (int)levels[i]);
        em_rdd_unpersist(r);
        cr_assert_eq(em_rdd_reduce(r, "em.sum_i64", em_slice_make(NULL, 0), &s2, &err), 0);
        cr_assert_eq(em_dec_i64(s2.data), 44850);
        cr_assert_eq(em_accumulator_i64(sc, acc), 600, "recomputed after unpersist");
        em_vbuf_destroy(&s1);
        em_vbuf_destroy(&s2);
    }
    em_context_free(sc);
}

Test(actions, save_as_text_file_layout)
{
    char base[] = "/tmp/ember-api-save-XXXXXX";
    cr_assert_not_null(mkdtemp(base));
    char dir[300];
    snprintf(dir, sizeof dir, "%s/out", base);
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_rec recs[3] = {{em_slice_str("k1"), em_slice_str("v1")},
                      {em_slice_str("k2"), em_slice_str("vé")},
                      {em_slice_str("k3"), em_slice_str("v3")}};
    em_rdd *r = em_parallelize(sc, EM_REC_KV, 0, recs, 3, 2);
    cr_assert_eq(em_rdd_save_as_text_file(r, dir, &err), 0, "%s", err.msg);
    char p[400];
    struct stat st;
    snprintf(p, sizeof p, "%s/_SUCCESS", dir);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_size, 0);
    snprintf(p, sizeof p, "%s/_temporary", dir);
    cr_assert_neq(stat(p, &st), 0, "_temporary removed");
    snprintf(p, sizeof p, "%s/part-00000", dir);
    uint8_t *data;
    size_t len;
    cr_assert_eq(em_read_file(p, &data, &len, &err), 0, "%s", err.msg);
    cr_assert_eq(len, 6);
    cr_assert(memcmp(data, "k1\tv1\n", 6) == 0);
    em_free(data);
    snprintf(p, sizeof p, "%s/part-00001", dir);
    cr_assert_eq(em_read_file(p, &data, &len, &err), 0, "%s", err.msg);
    cr_assert(len == 13 && memcmp(data, "k2\tvé\nk3\tv3\n", 13) == 0);
    em_free(data);
    /* reading it back gives the lines */
    uint64_t n;
    cr_assert_eq(em_rdd_count(em_text_file(sc, dir, 0), &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_eq(em_rdd_save_as_text_file(r, dir, &err), EM_EINVAL);
    /* a failing job leaves nothing behind */
    char dir2[300];
    snprintf(dir2, sizeof dir2, "%s/failed", base);
    em_rdd *bad = em_rdd_map(em_range(sc, 0, 10, 1, 2), "em.keys", em_slice_make(NULL, 0));
    cr_assert_neq(em_rdd_save_as_text_file(bad, dir2, &err), 0);
    cr_assert_neq(stat(dir2, &st), 0, "failed output removed");
    em_context_free(sc);
    cr_assert_eq(em_rm_rf(base, &err), 0);
}

/* The test functions, registered by name from a table before any test runs (the engine
 * does not search the program's own symbols). */
static const em_fn_entry test_fns[] = {
    {"tst_add_bcast", EM_FN_MAP, EM_FN(tst_add_bcast)},
    {"tst_acc_one", EM_FN_MAP, EM_FN(tst_acc_one)},
    {"tst_acc_sum", EM_FN_FOREACH, EM_FN(tst_acc_sum)},
    {"tst_concat", EM_FN_REDUCE, EM_FN(tst_concat)},
};

__attribute__((constructor)) static void register_test_fns(void)
{
    if (em_fn_register_table(test_fns, sizeof test_fns / sizeof test_fns[0]) != 0)
        abort();
}
