/* tests/unit/exec/test_results.c - result operations (count, fold, aggregate, take, top,
 * save_text, foreach, sample_keys), broadcasts and accumulators. */
#include <unistd.h>

#include "tests/unit/exec/exec_test_util.h"

int t_foreach(const em_fn_ctx *c, uint32_t index, em_iter *in, em_err *err);
int t_bcast_map(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

int t_foreach(const em_fn_ctx *c, uint32_t index, em_iter *in, em_err *err)
{
    em_rec r;
    int rc;
    while ((rc = em_iter_next(in, &r, err)) == 1)
        em_task_acc_add_i64(c->task, 3, em_dec_i64(r.val.p));
    em_task_acc_add_f64(c->task, 4, 0.5 * index);
    return rc;
}

int t_bcast_map(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em_slice v;
    int rc = em_task_broadcast(c->task, 9, &v, err);
    if (rc < 0)
        return rc;
    return em_emit_kv(out, v, in->val, err);
}

/* A range 0..n-1 over np partitions. */
static em_plan_node *range(em_plan_graph *g, int64_t n, uint32_t np)
{
    em_plan_node *r = tn(g, EM_OP_RANGE, np, NULL, NULL);
    r->range_end = n;
    r->range_step = 1;
    r->width = 8;
    return r;
}

Test(results, count_fold_aggregate_take)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *r = range(g, 100, 4);
    em_result_spec cnt = {.op = EM_RESULT_COUNT};
    cr_assert_eq(te_run_result(&te, r, &cnt, NULL), 100);

    trecs got = {0};
    em_result_spec fold = {.op = EM_RESULT_FOLD, .fn = "em.sum_i64"};
    te_run_result(&te, r, &fold, &got);
    cr_assert_eq(got.n, 4);
    int64_t sum = 0;
    for (size_t i = 0; i < got.n; i++)
        sum += em_dec_i64(got.v[i].v);
    cr_assert_eq(sum, 4950);
    trecs_free(&got);

    uint8_t z[8];
    em_result_spec agg = {.op = EM_RESULT_AGGREGATE, .fn = "em.sum_i64", .has_zero = true,
                          .zero = em_slice_make(enc64(z, 1), 8)};
    em_plan_node *r8 = range(g, 3, 8);   /* empty partitions still give the zero */
    te_run_result(&te, r8, &agg, &got);
    cr_assert_eq(got.n, 8);
    sum = 0;
    for (size_t i = 0; i < got.n; i++)
        sum += em_dec_i64(got.v[i].v);
    cr_assert_eq(sum, 3 + 8);
    trecs_free(&got);
    te_run_result(&te, r8, &fold, &got);
    cr_assert_eq(got.n, 3, "reduce of empty partitions gives nothing");
    trecs_free(&got);

    em_result_spec take = {.op = EM_RESULT_TAKE, .n = 5};
    te_run_result(&te, r, &take, &got);
    cr_assert_eq(got.n, 20);
    cr_assert_eq(em_dec_i64(got.v[5].v), 25);
    trecs_free(&got);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(results, top_and_take_ordered)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *r = tn(g, EM_OP_RANGE, 1, NULL, NULL);
    r->range_start = 50;
    r->range_end = -50;
    r->range_step = -3;
    for (int desc = 0; desc < 2; desc++) {
        em_result_spec top = {.op = EM_RESULT_TOP, .n = 7, .descending = desc};
        trecs got = {0};
        te_run_result(&te, r, &top, &got);
        cr_assert_eq(got.n, 7);
        for (size_t i = 0; i < 7; i++)
            cr_assert_eq(em_dec_i64(got.v[i].v), desc ? 50 - 3 * (int64_t)i
                                                      : -49 + 3 * (int64_t)i);
        trecs_free(&got);
    }
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(results, save_text_writes_part_files)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *p = tn(g, EM_OP_PARALLELIZE, 2, NULL, NULL);
    em_rec recs[2] = {{em_slice_str("k1"), em_slice_str("v\xc3\xa9")},
                      {em_slice_str(""), em_slice_str("v2")}};
    te_put_input(&te, p->id, 0, EM_REC_KV, 0, recs, 2);
    em_rec plain[1] = {{em_slice_make(NULL, 0), em_slice_str("line")}};
    te_put_input(&te, p->id, 1, EM_REC_BYTES, 0, plain, 1);
    char out[300];
    snprintf(out, sizeof out, "%s/out", te.dir);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_mkdir_p(out, &err), 0);
    em_result_spec save = {.op = EM_RESULT_SAVE_TEXT, .path = out};
    cr_assert_eq(te_run_result(&te, p, &save, NULL), 3);
    char path[400];
    uint8_t *data;
    size_t len;
    snprintf(path, sizeof path, "%s/part-00000", out);
    cr_assert_eq(em_read_file(path, &data, &len, &err), 0, "%s", err.msg);
    cr_assert_eq(len, strlen("k1\tv\xc3\xa9\n\tv2\n"));
    cr_assert(memcmp(data, "k1\tv\xc3\xa9\n\tv2\n", len) == 0);
    em_free(data);
    snprintf(path, sizeof path, "%s/part-00001", out);
    cr_assert_eq(em_read_file(path, &data, &len, &err), 0, "%s", err.msg);
    cr_assert(len == 5 && memcmp(data, "line\n", 5) == 0);
    em_free(data);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(results, foreach_accumulators_and_broadcast)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *r = range(g, 10, 2);
    em_result_spec fe = {.op = EM_RESULT_FOREACH, .fn = "t_foreach"};
    em_err err = EM_ERR_INIT;
    char *js = em_stage_encode(r, false, &fe, &err);
    em_task_result res;
    cr_assert_eq(em_exec_run_task(&te.env, js, strlen(js), 1, 0, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(res.nacc, 2);
    cr_assert(res.acc[0].id == 3 && !res.acc[0].is_f64 && res.acc[0].i64 == 5 + 6 + 7 + 8 + 9);
    cr_assert(res.acc[1].id == 4 && res.acc[1].is_f64 && res.acc[1].f64 == 0.5);
    em_task_result_destroy(&res);
    em_free(js);

    em_plan_node *m = tn(g, EM_OP_MAP, 2, r, NULL);
    tn_fn(m, "t_bcast_map", NULL, 0);
    em_result_spec cnt = {.op = EM_RESULT_COLLECT};
    js = em_stage_encode(m, false, &cnt, &err);
    cr_assert_eq(em_exec_run_task(&te.env, js, strlen(js), 0, 0, &res, &err), EM_ENOTFOUND);
    em_task_result_destroy(&res);
    em_batch_builder bb;
    em_batch_builder_init(&bb, EM_REC_BYTES, 0);
    em_batch_builder_add_val(&bb, em_slice_str("B"), &err);
    em_batch *b = em_batch_builder_finish(&bb, &err);
    em_batch_builder_destroy(&bb);
    cr_assert_eq(em_block_store_put_take(te.store, (em_block_id){EM_BLOCK_BROADCAST, 9, 0, 0},
                                         &b, 1, EM_STORAGE_MEMORY_ONLY, &err), 0);
    trecs got = {0};
    te_collect(&te, m, &got);
    cr_assert_eq(got.n, 10);
    cr_assert(got.v[3].kv && got.v[3].kn == 1 && got.v[3].k[0] == 'B');
    trecs_free(&got);
    em_free(js);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(results, sample_keys_reservoir)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *r = range(g, 1000, 2);
    em_result_spec sk = {.op = EM_RESULT_SAMPLE_KEYS, .n = 20, .seed = 5};
    trecs got = {0}, again = {0};
    cr_assert_eq(te_run_result(&te, r, &sk, &got), 1000);
    cr_assert_eq(got.n, 40);
    for (size_t i = 0; i < got.n; i++) {
        int64_t v = em_dec_i64(got.v[i].v);
        cr_assert(i < 20 ? v >= 0 && v < 500 : v >= 500 && v < 1000);
    }
    te_run_result(&te, r, &sk, &again);
    trecs_assert_eq(&again, &got, false, "same seed, same sample");
    /* Reference: algorithm R with the same generator. */
    em_rng rng;
    em_rng_seed(&rng, em_mix64(5 ^ 0));
    int64_t res[20];
    for (int64_t i = 0; i < 500; i++) {
        uint64_t j = i < 20 ? (uint64_t)i : em_rng_below(&rng, (uint64_t)i + 1);
        if (j < 20)
            res[j] = i;
    }
    for (int i = 0; i < 20; i++)
        cr_assert_eq(em_dec_i64(got.v[i].v), res[i]);
    trecs_free(&got);
    trecs_free(&again);
    em_plan_graph_free(g);
    te_destroy(&te);
}

/* The test functions, registered by name from a table before any test runs (the engine
 * does not search the program's own symbols). */
static const em_fn_entry test_fns[] = {
    {"t_foreach", EM_FN_FOREACH, EM_FN(t_foreach)},
    {"t_bcast_map", EM_FN_MAP, EM_FN(t_bcast_map)},
};

__attribute__((constructor)) static void register_test_fns(void)
{
    if (em_fn_register_table(test_fns, sizeof test_fns / sizeof test_fns[0]) != 0)
        abort();
}
