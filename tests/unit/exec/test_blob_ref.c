/* tests/unit/exec/test_blob_ref.c - context blobs that travel beside the stage JSON
 * (exec.h, "BIG CONTEXT BLOBS"): with a sink, a blob of EM_STAGE_BLOB_OUT bytes or more
 * leaves the JSON ("blob_ref") and the task sees the same bytes, read from its block
 * store; a small blob stays inside; a reference whose broadcast is missing, or whose size
 * or checksum differs, fails the task with an error, not a crash. */
#include "exec_test_util.h"

int t_blob_sum(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

/* Emits (record, crc32c of the blob, blob length) for each record. */
int t_blob_sum(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    uint8_t v[12];
    uint32_t crc = em_crc32c(0, c->blob.p, c->blob.n);
    uint64_t n = c->blob.n;
    memcpy(v, &crc, 4);
    memcpy(v + 4, &n, 8);
    return em_emit_kv(out, in->val, em_slice_make(v, 12), err);
}

typedef struct sink_ud {
    em_block_store *store;
    uint32_t next, puts;
} sink_ud;

static uint32_t put_blob(void *ud, em_slice blob, em_err *err)
{
    sink_ud *s = ud;
    em_batch_builder bb;
    em_batch_builder_init(&bb, EM_REC_BYTES, 0);
    cr_assert_eq(em_batch_builder_add_val(&bb, blob, err), 0);
    em_batch *b = em_batch_builder_finish(&bb, err);
    em_batch_builder_destroy(&bb);
    uint32_t id = s->next++;
    em_block_id bid = {EM_BLOCK_BROADCAST, id, 0, 0};
    cr_assert_eq(em_block_store_put_take(s->store, bid, &b, 1, EM_STORAGE_MEMORY_ONLY, err), 0);
    s->puts++;
    return id;
}

/* Runs the stage on partition 0 and checks every record saw a blob of n bytes, crc want. */
static int run_one(tenv *te, const char *js, size_t n, uint32_t want, em_err *err)
{
    em_task_result res;
    int rc = em_exec_run_task(&te->env, js, strlen(js), 0, 0, &res, err);
    for (size_t i = 0; rc == 0 && i < res.nbatches; i++) {
        em_batch_iter it;
        em_rec r;
        em_batch_iter_init(&it, res.batches[i]);
        while (em_batch_iter_next(&it, &r)) {
            uint32_t crc;
            uint64_t len;
            memcpy(&crc, r.val.p, 4);
            memcpy(&len, r.val.p + 4, 8);
            cr_assert(crc == want && len == n, "blob of %llu bytes seen", (unsigned long long)len);
        }
    }
    em_task_result_destroy(&res);
    return rc;
}

Test(blob_ref, big_blobs_travel_beside_the_json)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *r = tn(g, EM_OP_RANGE, 2, NULL, NULL);
    r->range_end = 10;
    r->range_step = 1;
    r->width = 8;
    em_plan_node *m = tn(g, EM_OP_MAP, 2, r, NULL);
    size_t n = EM_STAGE_BLOB_OUT + 3;
    uint8_t *blob = em_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        blob[i] = (uint8_t)(i * 7 + 1);
    tn_fn(m, "t_blob_sum", blob, n);
    em_result_spec col = {.op = EM_RESULT_COLLECT};
    sink_ud s = {te.store, 100, 0};
    em_stage_blob_sink sink = {put_blob, &s};
    em_err err = EM_ERR_INIT;
    char *js = em_stage_encode_ext(m, false, &col, &sink, &err);
    cr_assert_not_null(js, "%s", err.msg);
    cr_assert_eq(s.puts, 1);
    cr_assert(strstr(js, "\"blob_ref\""), "%s", js);
    cr_assert(strlen(js) < 4096, "the blob stayed in the JSON (%zu bytes)", strlen(js));
    cr_assert_eq(run_one(&te, js, n, em_crc32c(0, blob, n), &err), 0, "%s", err.msg);

    em_free(js);
    /* (new stages, new ids: a task thread keeps a decoded stage with its blobs resolved) */
    /* the broadcast holds other bytes of the same size: a checksum mismatch */
    s.next = 300;
    js = em_stage_encode_ext(m, false, &col, &sink, &err);
    em_block_id bid = {EM_BLOCK_BROADCAST, 300, 0, 0};
    em_block_store_remove(te.store, bid);
    blob[5] ^= 1;
    s.next = 300;
    put_blob(&s, em_slice_make(blob, n), &err);
    blob[5] ^= 1;
    cr_assert_eq(run_one(&te, js, n, 0, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "checksum"), "%s", err.msg);
    em_free(js);
    /* gone: not found, naming the broadcast */
    s.next = 400;
    js = em_stage_encode_ext(m, false, &col, &sink, &err);
    em_block_store_remove(te.store, (em_block_id){EM_BLOCK_BROADCAST, 400, 0, 0});
    cr_assert_eq(run_one(&te, js, n, 0, &err), EM_ENOTFOUND);
    cr_assert(strstr(err.msg, "broadcast 400"), "%s", err.msg);
    em_free(js);

    /* a small blob stays inside the JSON, sink or not */
    em_plan_node *m2 = tn(g, EM_OP_MAP, 2, r, NULL);
    tn_fn(m2, "t_blob_sum", blob, 10);
    js = em_stage_encode_ext(m2, false, &col, &sink, &err);
    cr_assert(js && !strstr(js, "blob_ref") && s.puts == 4);
    cr_assert_eq(run_one(&te, js, 10, em_crc32c(0, blob, 10), &err), 0, "%s", err.msg);
    em_free(js);
    em_free(blob);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(blob_ref, bad_references_are_errors)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *r = tn(g, EM_OP_RANGE, 1, NULL, NULL);
    r->range_end = 3;
    r->range_step = 1;
    r->width = 8;
    em_plan_node *m = tn(g, EM_OP_MAP, 1, r, NULL);
    size_t n = EM_STAGE_BLOB_OUT;
    uint8_t *blob = em_xcalloc(n, 1);
    tn_fn(m, "t_blob_sum", blob, n);
    em_result_spec col = {.op = EM_RESULT_COLLECT};
    sink_ud s = {te.store, 7, 0};
    em_stage_blob_sink sink = {put_blob, &s};
    em_err err = EM_ERR_INIT;
    char *js = em_stage_encode_ext(m, false, &col, &sink, &err);
    cr_assert_not_null(js, "%s", err.msg);
    char *at = strstr(js, "\"blob_ref\":[");
    cr_assert_not_null(at);
    char *end = strchr(at, ']');
    const char *bad[] = {
        "[7]", "[0,65536,1]", "[7,-1,1]", "[7,65536,4294967296]", "\"x\"",
        "[7,3000000000,1]", "[7,65536,1],\"blob\":\"\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char buf[8192];
        snprintf(buf, sizeof buf, "%.*s\"blob_ref\":%s%s", (int)(at - js), js, bad[i], end + 1);
        em_task_result res;
        int rc = em_exec_run_task(&te.env, buf, strlen(buf), 0, 0, &res, &err);
        cr_assert_eq(rc, EM_ECORRUPT, "%s: %d %s", bad[i], rc, err.msg);
        cr_assert(strstr(err.msg, "blob_ref"), "%s: %s", bad[i], err.msg);
        em_task_result_destroy(&res);
    }
    em_free(js);
    em_free(blob);
    em_plan_graph_free(g);
    te_destroy(&te);
}

/* A result's big zero value and context travel as "zero_ref" / "blob_ref" of "result";
 * bad or doubled references are errors naming the field. */
Test(blob_ref, result_values_beside_the_json)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *r = tn(g, EM_OP_RANGE, 1, NULL, NULL);
    r->range_end = 3;
    r->range_step = 1;
    r->width = 8;
    size_t n = EM_STAGE_BLOB_OUT + 8;
    uint8_t *big = em_xcalloc(n, 1);
    em_result_spec fold = {.op = EM_RESULT_FOLD, .fn = "em.sum_i64", .has_zero = true,
                           .zero = em_slice_make(big, n), .blob = em_slice_make(big, n)};
    sink_ud s = {te.store, 50, 0};
    em_stage_blob_sink sink = {put_blob, &s};
    em_err err = EM_ERR_INIT;
    char *js = em_stage_encode_ext(r, false, &fold, &sink, &err);
    cr_assert_not_null(js, "%s", err.msg);
    cr_assert_eq(s.puts, 2);
    cr_assert(strstr(js, "\"zero_ref\":[") && strstr(js, "\"blob_ref\":[") &&
              strlen(js) < 4096, "%s", js);
    /* resolved: em.sum_i64 then sees a zero of n bytes (not 8) and says so */
    em_task_result res;
    int rc = em_exec_run_task(&te.env, js, strlen(js), 0, 0, &res, &err);
    cr_assert(rc < 0 && strstr(err.msg, "8-byte"), "%d %s", rc, err.msg);
    em_task_result_destroy(&res);
    char *at = strstr(js, "\"zero_ref\":[");
    char *end = strchr(at, ']');
    const char *bad[] = {"[50]", "[0,65544,1]", "\"x\"", "[50,65544,1],\"zero\":\"\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char buf[8192];
        snprintf(buf, sizeof buf, "%.*s\"zero_ref\":%s%s", (int)(at - js), js, bad[i], end + 1);
        rc = em_exec_run_task(&te.env, buf, strlen(buf), 0, 0, &res, &err);
        cr_assert_eq(rc, EM_ECORRUPT, "%s: %d %s", bad[i], rc, err.msg);
        cr_assert(strstr(err.msg, "zero_ref"), "%s: %s", bad[i], err.msg);
        em_task_result_destroy(&res);
    }
    em_free(js);
    em_free(big);
    em_plan_graph_free(g);
    te_destroy(&te);
}

/* The test functions, registered by name from a table before any test runs (the engine
 * does not search the program's own symbols). */
static const em_fn_entry test_fns[] = {
    {"t_blob_sum", EM_FN_MAP, EM_FN(t_blob_sum)},
};

__attribute__((constructor)) static void register_test_fns(void)
{
    if (em_fn_register_table(test_fns, sizeof test_fns / sizeof test_fns[0]) != 0)
        abort();
}
