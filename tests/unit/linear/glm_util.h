/* tests/unit/linear/glm_util.h - what the linear regression and GLM tests share: contexts,
 * labeled data sets made with em_parallelize (dense FIXED rows or sparse BYTES rows, in the
 * layouts of mllib/linalg/rows.h), generated problems, and a small dense solver for the
 * closed forms the tests compute themselves. */
#ifndef EMBER_TESTS_GLM_UTIL_H
#define EMBER_TESTS_GLM_UTIL_H

#include <criterion/criterion.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "mllib/linear/glm.h"
#include "tests/support/ctx.h"

/* The n x d matrix x with labels y as a labeled data set of nparts partitions. */
static inline em_ml_data gt_data(em_context *sc, const double *x, const double *y, size_t n,
                                 size_t d, bool sparse, uint32_t nparts)
{
    em_rec *recs = em_xcalloc(n, sizeof *recs);
    em_vbuf *bufs = em_xcalloc(n, sizeof *bufs);
    for (size_t i = 0; i < n; i++) {
        em_vbuf_init(&bufs[i]);
        uint8_t b8[8];
        em_enc_f64(b8, y[i]);
        em_vbuf_append(&bufs[i], b8, 8);
        if (sparse) {
            uint32_t nnz = 0, idx[256];
            double val[256];
            cr_assert(d <= 256);
            for (size_t j = 0; j < d; j++)
                if (x[i * d + j] != 0) {
                    idx[nnz] = (uint32_t)j;
                    val[nnz++] = x[i * d + j];
                }
            em_ml_sparse_encode(nnz, idx, val, &bufs[i]);
        } else {
            em_vbuf_append(&bufs[i], x + i * d, 8 * d);
        }
        recs[i].val = em_slice_make(bufs[i].data, bufs[i].len);
    }
    em_rdd *r = em_parallelize(sc, sparse ? EM_REC_BYTES : EM_REC_FIXED,
                               sparse ? 0 : (uint32_t)(8 * (d + 1)), recs, n, nparts);
    for (size_t i = 0; i < n; i++)
        em_vbuf_destroy(&bufs[i]);
    em_free(bufs);
    em_free(recs);
    cr_assert_null(em_rdd_error(r));
    return (em_ml_data){
        .rows = em_rdd_cache(r), .sparse = sparse, .labeled = true, .dim = (uint32_t)d, .nrows = n};
}

/* x: n x d, N(0,1) entries, zeroed with probability 1 - density. */
static inline double *gt_features(size_t n, size_t d, double density, uint64_t seed)
{
    em_rng g;
    em_rng_seed(&g, seed);
    double *x = em_xcalloc(n * d, sizeof *x);
    for (size_t i = 0; i < n * d; i++)
        if (em_rng_double(&g) < density)
            x[i] = em_rng_gaussian(&g);
    return x;
}

/* Solves the k x k system a b = rhs (a full, row-major; both copied) by LU (dgesv). */
static inline void gt_solve(int k, const double *a, const double *rhs, double *b)
{
    double *c = em_xmalloc(8 * (size_t)k * k);
    lapack_int *piv = em_xmalloc(sizeof *piv * (size_t)k);
    memcpy(c, a, 8 * (size_t)k * k);
    memcpy(b, rhs, 8 * (size_t)k);
    lapack_int info = LAPACKE_dgesv(LAPACK_ROW_MAJOR, k, 1, c, k, piv, b, 1);
    cr_assert_eq(info, 0, "dgesv info %d", (int)info);
    em_free(c);
    em_free(piv);
}

static inline double gt_rel(double a, double b)
{
    return fabs(a - b) / fmax(fabs(b), 1e-12);
}

#endif /* EMBER_TESTS_GLM_UTIL_H */
