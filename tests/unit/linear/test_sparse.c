/* tests/unit/linear/test_sparse.c - the sparse-row kernels of mllib/linear/sparse.c (the
 * AVX-512 path on CPUs that have it, else the scalar loops) against plain loops for every
 * row length around the 8-lane groups; indices out of range or not ascending refused at
 * every position (first lane, group boundary, tail); records of a wrong size refused; the
 * moments pass against em_ml_col_stats on sparse rows. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "mllib/linalg/matrix.h"
#include "mllib/linear/linear_int.h"

enum { DIM = 300, MAXNNZ = 40 };

/* A record of nnz entries at ascending random columns (label 1), into b. */
static void make_row(em_rng *g, uint32_t nnz, em_vbuf *b, uint32_t *idx, double *val)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < nnz; i++) {
        j += 1 + (uint32_t)em_rng_below(g, (DIM - j - (nnz - i)) / (nnz - i) + 1);
        idx[i] = j - 1;
        val[i] = em_rng_gaussian(g);
    }
    double label = 1;
    em_vbuf_clear(b);
    em_vbuf_append(b, &label, 8);
    cr_assert_eq(em_ml_sparse_encode(nnz, idx, val, b), 0);
}

Test(sparse, kernels_match_plain_loops)
{
    em_rng g;
    em_rng_seed(&g, 3);
    double w[DIM], gk[DIM], gp[DIM];
    for (int j = 0; j < DIM; j++)
        w[j] = em_rng_gaussian(&g);
    em_vbuf b;
    em_vbuf_init(&b);
    for (uint32_t nnz = 0; nnz <= MAXNNZ; nnz++)
        for (int rep = 0; rep < 5; rep++) {
            uint32_t idx[MAXNNZ], n2;
            double val[MAXNNZ], y, z, zp = 0;
            const uint8_t *pi, *pv;
            make_row(&g, nnz, &b, idx, val);
            cr_assert(em__lin_sparse_rec(em_slice_make(b.data, b.len), &y, &n2, &pi, &pv));
            cr_assert_eq(n2, nnz);
            cr_assert_eq(y, 1);
            for (uint32_t i = 0; i < nnz; i++)
                zp += val[i] * w[idx[i]];
            cr_assert(em__lin_sparse_dot(nnz, pi, pv, w, DIM, &z), "nnz %u", nnz);
            cr_assert(fabs(z - zp) <= 1e-12 * (1 + fabs(zp)), "nnz %u: %.17g vs %.17g", nnz,
                      z, zp);
            for (int j = 0; j < DIM; j++)
                gk[j] = gp[j] = 0.5 * j;
            em__lin_sparse_axpy(nnz, pi, pv, -1.25, gk);
            for (uint32_t i = 0; i < nnz; i++)
                gp[idx[i]] += -1.25 * val[i];
            for (int j = 0; j < DIM; j++)
                cr_assert(fabs(gk[j] - gp[j]) <= 1e-12 * (1 + fabs(gp[j])),
                          "nnz %u, column %d: %g vs %g", nnz, j, gk[j], gp[j]);
        }
    em_vbuf_destroy(&b);
}

Test(sparse, bad_indices_refused)
{
    em_rng g;
    em_rng_seed(&g, 5);
    double w[DIM] = {0}, z;
    em_vbuf b;
    em_vbuf_init(&b);
    const uint32_t lens[] = {1, 7, 8, 9, 16, 17, 33};
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        uint32_t nnz = lens[t], idx[MAXNNZ];
        double val[MAXNNZ];
        for (uint32_t at = 0; at < nnz; at++) {
            make_row(&g, nnz, &b, idx, val);
            uint8_t *pi = b.data + 16;
            const uint8_t *pv = b.data + b.len - (size_t)8 * nnz;
            uint32_t keep = em_load_le32(pi + 4 * at);
            em_store_le32(pi + 4 * at, DIM);   /* one past the last column */
            cr_assert(!em__lin_sparse_dot(nnz, pi, pv, w, DIM, &z), "nnz %u at %u", nnz, at);
            em_store_le32(pi + 4 * at, 0xffffffffu);
            cr_assert(!em__lin_sparse_dot(nnz, pi, pv, w, DIM, &z), "nnz %u at %u", nnz, at);
            em_store_le32(pi + 4 * at, keep);
            cr_assert(em__lin_sparse_dot(nnz, pi, pv, w, DIM, &z));
            if (at > 0) {   /* a repeat of the previous index: not strictly ascending */
                em_store_le32(pi + 4 * at, em_load_le32(pi + 4 * (at - 1)));
                cr_assert(!em__lin_sparse_dot(nnz, pi, pv, w, DIM, &z), "nnz %u at %u", nnz,
                          at);
            }
        }
    }
    /* Records whose size does not match their entry count. */
    uint32_t idx[3] = {1, 2, 3}, nnz;
    double val[3] = {1, 2, 3}, y;
    const uint8_t *pi, *pv;
    make_row(&g, 3, &b, idx, val);
    cr_assert(!em__lin_sparse_rec(em_slice_make(b.data, b.len - 8), &y, &nnz, &pi, &pv));
    cr_assert(!em__lin_sparse_rec(em_slice_make(b.data, 12), &y, &nnz, &pi, &pv));
    em_store_le32(b.data + 8, 1000000);
    cr_assert(!em__lin_sparse_rec(em_slice_make(b.data, b.len), &y, &nnz, &pi, &pv));
    em_vbuf_destroy(&b);
}

Test(sparse, moments_match_col_stats, .timeout = 120)
{
    enum { N = 500, D = 12 };
    static uint8_t rows[N][8 + 8 + 4 * D + 4 + 8 * D];
    em_rec recs[N];
    em_rng g;
    em_rng_seed(&g, 11);
    em_vbuf b;
    em_vbuf_init(&b);
    for (int i = 0; i < N; i++) {
        uint32_t idx[D], nnz = 0;
        double val[D], label = i % 2;
        for (uint32_t j = 0; j < D; j++)   /* column j: non-zero with probability j / D */
            if (em_rng_double(&g) < (double)j / D) {
                idx[nnz] = j;
                val[nnz++] = 100 + j * em_rng_gaussian(&g);   /* large mean, some spread */
            }
        em_vbuf_clear(&b);
        em_vbuf_append(&b, &label, 8);
        cr_assert_eq(em_ml_sparse_encode(nnz, idx, val, &b), 0);
        memcpy(rows[i], b.data, b.len);
        recs[i].key = em_slice_make(NULL, 0);
        recs[i].val = em_slice_make(rows[i], b.len);
    }
    em_vbuf_destroy(&b);
    cr_assert_eq(em_linear_register(), 0);
    em_conf *c = em_conf_new();
    em_conf_set(c, "ember.master", "local[2]");
    em_err err = EM_ERR_INIT;
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert(sc, "%s", err.msg);
    em_ml_data d = {.sparse = true, .labeled = true, .dim = D, .nrows = N};
    d.rows = em_parallelize(sc, EM_REC_BYTES, 0, recs, N, 3);
    double mean[D], var[D];
    em_ml_colstats st;
    cr_assert_eq(em__lin_sparse_moments(&d, mean, var, &err), 0, "%s", err.msg);
    cr_assert_eq(em_ml_col_stats(&d, &st, &err), 0, "%s", err.msg);
    for (int j = 0; j < D; j++) {
        cr_assert(fabs(mean[j] - st.mean[j]) <= 1e-12 * (1 + fabs(st.mean[j])),
                  "column %d: mean %.17g vs %.17g", j, mean[j], st.mean[j]);
        cr_assert(fabs(var[j] - st.variance[j]) <= 1e-9 * (1 + st.variance[j]),
                  "column %d: variance %.17g vs %.17g", j, var[j], st.variance[j]);
    }
    cr_assert_eq(mean[0], 0);
    cr_assert_eq(var[0], 0);
    em_ml_colstats_destroy(&st);
    em_rdd_release(d.rows);
    em_context_free(sc);
}
