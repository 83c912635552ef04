/* tests/unit/exec/test_local_blob.c - big context blobs and result values in local[2]
 * (exec.h, "BIG CONTEXT BLOBS"; engine/exec/local.c): an 8 MB blob reaches
 * every task of a 32-task stage intact, is handed to the blob sink once per stage and is
 * never base64-decoded nor copied on the task side (each task thread borrows the job's
 * bytes once per stage); a fold's big zero value and big function context travel the same
 * way. Observed through the stage.c test counters (em__stage_blob_stats_get), not timing. */
#include "../api/api_test_util.h"
#include "engine/exec/exec.h"
#include "engine/plan/fn.h"

/* Test functions, registered from the table at the end of this file. */
int tlb_crc(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tlb_longer(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);

/* Emits (crc32c of the context blob, its length) as 12 bytes. */
int tlb_crc(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)in;
    uint8_t v[12];
    uint32_t crc = em_crc32c(0, c->blob.p, c->blob.n);
    uint64_t n = c->blob.n;
    memcpy(v, &crc, 4);
    memcpy(v + 4, &n, 8);
    return em_emit_val(out, em_slice_make(v, 12), err);
}

/* Fold function: the longer of a and b (a on a tie); fails unless its context is the
 * 100000-byte pattern (so a lost context blob is seen). */
int tlb_longer(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    if (c->blob.n != 100000 || c->blob.p[99999] != (uint8_t)(99999 * 13))
        return em_err_set(err, EM_EINVAL, "tlb_longer: context of %zu bytes", c->blob.n);
    em_slice w = b.n > a.n ? b : a;
    if (em_vbuf_reserve(out, w.n) < 0)
        return em_err_set(err, EM_ENOMEM, "tlb_longer");
    memcpy(out->data + out->len, w.p, w.n);
    out->len += w.n;
    return 0;
}

static uint8_t *pattern(size_t n, unsigned mul)
{
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * mul);
    return b;
}

Test(local_blob, an_8mb_blob_reaches_every_task_once_per_stage, .timeout = 240)
{
    em_context *sc = tu_ctx(NULL);
    size_t n = (size_t)8 << 20;
    uint8_t *blob = pattern(n, 7);
    uint32_t want = em_crc32c(0, blob, n);
    em_err err = EM_ERR_INIT;
    em_rdd *m = em_rdd_map(em_range(sc, 0, 32, 1, 32), "tlb_crc", em_slice_make(blob, n));
    for (int round = 0; round < 2; round++) {
        em__stage_blob_stats s0, s1;
        em_records rs = {0};
        blob[n - 1] ^= 1;   /* the API copied the blob: this changes nothing in m */
        em__stage_blob_stats_get(&s0);
        cr_assert_eq(em_rdd_collect(m, &rs, &err), 0, "%s", err.msg);
        em__stage_blob_stats_get(&s1);
        cr_assert_eq(rs.n, 32);
        for (size_t i = 0; i < rs.n; i++) {
            uint32_t crc;
            uint64_t len;
            cr_assert_eq(rs.recs[i].val.n, 12);
            memcpy(&crc, rs.recs[i].val.p, 4);
            memcpy(&len, rs.recs[i].val.p + 4, 8);
            cr_assert(crc == want && len == n, "task %zu saw %llu bytes, crc %08x", i,
                      (unsigned long long)len, crc);
        }
        em_records_destroy(&rs);
        cr_assert_eq(s1.shipped - s0.shipped, n, "shipped %llu bytes",
                     (unsigned long long)(s1.shipped - s0.shipped));
        cr_assert_eq(s1.decoded, s0.decoded, "the blob went through base64");
        /* one borrow per task thread that ran a task of the stage: 1 or 2, never 32 */
        uint64_t b = s1.borrowed - s0.borrowed;
        cr_assert(b == n || b == 2 * n, "borrowed %llu bytes", (unsigned long long)b);
    }
    free(blob);
    em_context_free(sc);
}

Test(local_blob, a_big_fold_zero_and_context_travel_beside_the_json, .timeout = 120)
{
    em_context *sc = tu_ctx(NULL);
    size_t zn = 200000, cn = 100000;
    uint8_t *zero = pattern(zn, 5), *ctx = pattern(cn, 13);
    em_err err = EM_ERR_INIT;
    em_vbuf out;
    em_vbuf_init(&out);
    em__stage_blob_stats s0, s1;
    em__stage_blob_stats_get(&s0);
    em_rdd *r = em_range(sc, 0, 100, 1, 8);
    cr_assert_eq(em_rdd_fold(r, em_slice_make(zero, zn), "tlb_longer", em_slice_make(ctx, cn),
                             &out, &err),
                 0, "%s", err.msg);
    em__stage_blob_stats_get(&s1);
    cr_assert(out.len == zn && memcmp(out.data, zero, zn) == 0, "fold result of %zu bytes",
              out.len);
    cr_assert_eq(s1.shipped - s0.shipped, zn + cn);
    cr_assert_eq(s1.decoded, s0.decoded);
    cr_assert_geq(s1.borrowed - s0.borrowed, zn + cn);
    em_vbuf_destroy(&out);
    free(zero);
    free(ctx);
    em_context_free(sc);
}

/* The test functions, registered by name from a table before any test runs (the engine
 * does not search the program's own symbols). */
static const em_fn_entry test_fns[] = {
    {"tlb_crc", EM_FN_MAP, EM_FN(tlb_crc)},
    {"tlb_longer", EM_FN_REDUCE, EM_FN(tlb_longer)},
};

__attribute__((constructor)) static void register_test_fns(void)
{
    if (em_fn_register_table(test_fns, sizeof test_fns / sizeof test_fns[0]) != 0)
        abort();
}
