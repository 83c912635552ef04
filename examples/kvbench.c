/* examples/kvbench.c - reduce_by_key benchmark: `ember run-example kvbench NPAIRS NKEYS`.
 *
 * range(0, NPAIRS) -> (key = em_enc_i64(mix64(i mod NKEYS)), value = em_enc_i64(1))
 * -> reduce_by_key em.sum_i64 -> count. mix64 is a bijection, so there are exactly
 * min(NPAIRS, NKEYS) distinct keys, scattered over the whole 64-bit space so that their
 * order says nothing about i. Prints "seconds<TAB>S", "keys<TAB>K" and "check<TAB>ok" (or
 * "check<TAB>FAILED" and exit 1 when K != min(NPAIRS, NKEYS)). */
#include <stdio.h>
#include <stdlib.h>

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);
int kv_key(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

/* blob: u64 nkeys (little-endian) */
int kv_key(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    uint8_t key[8], one[8];
    uint64_t nkeys;

    if (c->blob.n != 8 || in->val.n != 8)
        return em_err_set(err, EM_EINVAL, "kv_key: bad blob or record");
    nkeys = em_load_le64(c->blob.p);
    em_enc_i64(key, (int64_t)em_mix64((uint64_t)em_dec_i64(in->val.p) % nkeys));
    em_enc_i64(one, 1);
    return em_emit_kv(out, em_slice_make(key, 8), em_slice_make(one, 8), err);
}

static bool parse_pos(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (*s < '0' || *s > '9')
        return false;
    v = strtoll(s, &end, 10);
    if (*end != '\0' || v <= 0 || v > ((long long)1 << 40))
        return false;
    *out = v;
    return true;
}

int ember_main(em_context *sc, int argc, char **argv)
{
    int64_t npairs, nkeys;
    uint8_t blob[8];
    uint64_t keys = 0, want;
    em_err err = EM_ERR_INIT;
    em_rdd *r;
    double t0;

    if (argc != 3) {
        fprintf(stderr, "usage: kvbench NPAIRS NKEYS\n");
        return 2;
    }
    if (!parse_pos(argv[1], &npairs) || !parse_pos(argv[2], &nkeys)) {
        fprintf(stderr, "ember: kvbench: NPAIRS and NKEYS must be positive integers\n");
        return 2;
    }
    em_store_le64(blob, (uint64_t)nkeys);
    t0 = em_now_s();
    r = em_rdd_map(em_range(sc, 0, npairs, 1, 0), "kv_key", em_slice_make(blob, 8));
    r = em_rdd_reduce_by_key(r, "em.sum_i64", em_slice_make(NULL, 0), 0);
    if (em_rdd_count(r, &keys, &err) < 0) {
        fprintf(stderr, "ember: kvbench: %s\n", err.msg);
        return 1;
    }
    want = (uint64_t)(npairs < nkeys ? npairs : nkeys);
    printf("seconds\t%.3f\nkeys\t%llu\ncheck\t%s\n", em_now_s() - t0, (unsigned long long)keys,
           keys == want ? "ok" : "FAILED");
    return keys == want ? 0 : 1;
}
