/* tests/unit/api/test_long_keys.c - sort_by_key of records whose keys are longer than
 * EM_SAMPLE_KEY_MAX: the range bounds that go into the stage plan are key prefixes (a
 * 50 MiB line used to travel whole, past the 64 MiB launch frame cap), and the output is
 * still in order, also for keys that share a prefix longer than the bound. */
#include "engine/api/api_int.h"
#include "engine/exec/exec.h"
#include "tests/unit/api/api_test_util.h"

enum { NREC = 400, KEYLEN = 3 * EM_SAMPLE_KEY_MAX };

/* Key i: `shared` bytes of 'p', then a 4-digit number scrambled from i, then filler. */
static uint8_t *make_key(uint32_t i, size_t shared)
{
    uint8_t *k = malloc(KEYLEN);
    memset(k, 'p', shared);
    char num[8];
    snprintf(num, sizeof num, "%04u", (i * 7919u) % 10000u);
    memcpy(k + shared, num, 4);
    memset(k + shared + 4, 'z' - (int)(i % 3), KEYLEN - shared - 4);
    return k;
}

static void sort_long(size_t shared)
{
    em_context *sc = tu_ctx(NULL);
    em_rec *recs = calloc(NREC, sizeof *recs);
    for (uint32_t i = 0; i < NREC; i++)
        recs[i] = (em_rec){em_slice_make(make_key(i, shared), KEYLEN),
                           em_slice_make((const uint8_t *)"v", 1)};
    em_rdd *in = em_parallelize(sc, EM_REC_KV, 0, recs, NREC, 4);
    em_rdd *sorted = em_rdd_sort_by_key(in, true, 4);
    const em_part_spec *ps = &sorted->node->part;
    for (uint32_t b = 0; b < ps->nbounds; b++)
        cr_assert_leq(ps->bounds[b].n, EM_SAMPLE_KEY_MAX, "bound %u has %zu bytes", b,
                      ps->bounds[b].n);
    if (shared == 0)
        cr_assert_geq(ps->nbounds, 1, "distinct prefixes must still split the range");
    em_records out = {0};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(sorted, &out, &err), 0, "%s", err.msg);
    cr_assert_eq(out.n, NREC);
    for (size_t i = 1; i < out.n; i++)
        cr_assert_leq(em_slice_cmp(out.recs[i - 1].key, out.recs[i].key), 0,
                      "record %zu out of order", i);
    em_records_destroy(&out);
    for (uint32_t i = 0; i < NREC; i++)
        free((void *)recs[i].key.p);
    free(recs);
    em_context_free(sc);
}

Test(long_keys, bounds_are_prefixes_and_order_holds)
{
    sort_long(0);
}

Test(long_keys, shared_prefix_longer_than_bound)
{
    sort_long(EM_SAMPLE_KEY_MAX + 100);
}
