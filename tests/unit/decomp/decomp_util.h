/* tests/unit/decomp/decomp_util.h - what the SVD and PCA tests share: contexts, generated
 * matrices with a known spread of singular values, data sets made with em_parallelize
 * (dense FIXED rows or sparse BYTES rows, labeled or not, in the layouts of
 * mllib/linalg/rows.h), the LAPACK dgesvd reference on the collected matrix, and
 * comparisons of vectors up to sign. */
#ifndef EMBER_TESTS_DECOMP_UTIL_H
#define EMBER_TESTS_DECOMP_UTIL_H

#include <criterion/criterion.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "mllib/decomp/decomp.h"
#include "tests/support/ctx.h"

/* n x d row-major: X W with X uniform in [-1, 1] (entries zeroed with probability
 * 1 - density) and column weights w_j = 1 / (1 + j)^0.7, so that the singular values are
 * distinct and spread. rank > 0: the matrix is B C with B n x rank and C rank x d instead,
 * so its rank is `rank`. */
static inline double *dt_matrix(size_t n, size_t d, size_t rank, double density,
                                uint64_t seed)
{
    em_rng g;
    em_rng_seed(&g, seed);
    double *a = em_xcalloc(n * d, sizeof *a);
    if (rank == 0) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++)
                if (em_rng_double(&g) < density)
                    a[i * d + j] = (2 * em_rng_double(&g) - 1) / pow(1.0 + (double)j, 0.7);
        return a;
    }
    double *b = em_xmalloc(n * rank * sizeof *b), *c = em_xmalloc(rank * d * sizeof *c);
    for (size_t i = 0; i < n * rank; i++)
        b[i] = (2 * em_rng_double(&g) - 1) * (1 + (double)(i % rank));
    for (size_t i = 0; i < rank * d; i++)
        c[i] = 2 * em_rng_double(&g) - 1;
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < rank; r++)
            for (size_t j = 0; j < d; j++)
                a[i * d + j] += b[i * rank + r] * c[r * d + j];
    em_free(b);
    em_free(c);
    return a;
}

/* Appends the sparse encoding of row x (d values; zeros skipped), optionally after a
 * label, to v (layout: mllib/linalg/rows.h). */
static inline void dt_sparse_row(em_vbuf *v, const double *x, size_t d, bool labeled,
                                 double label)
{
    uint32_t nnz = 0;
    for (size_t j = 0; j < d; j++)
        nnz += x[j] != 0;
    uint8_t b8[8];
    if (labeled) {
        em_enc_f64(b8, label);
        em_vbuf_append(v, b8, 8);
    }
    em_vbuf_append_u32le(v, nnz);
    em_vbuf_append_u32le(v, 0);
    for (size_t j = 0; j < d; j++)
        if (x[j] != 0)
            em_vbuf_append_u32le(v, (uint32_t)j);
    if (nnz % 2)
        em_vbuf_append_u32le(v, 0);
    for (size_t j = 0; j < d; j++)
        if (x[j] != 0) {
            em_enc_f64(b8, x[j]);
            em_vbuf_append(v, b8, 8);
        }
}

/* The n x d matrix a as a data set of nparts partitions. */
static inline em_ml_data dt_data(em_context *sc, const double *a, size_t n, size_t d,
                                 bool sparse, bool labeled, uint32_t nparts)
{
    em_rec *recs = em_xcalloc(n, sizeof *recs);
    em_vbuf *bufs = em_xcalloc(n, sizeof *bufs);
    size_t w = 8 * (d + labeled);
    for (size_t i = 0; i < n; i++) {
        em_vbuf_init(&bufs[i]);
        if (sparse) {
            dt_sparse_row(&bufs[i], a + i * d, d, labeled, (double)i);
        } else {
            uint8_t b8[8];
            if (labeled) {
                em_enc_f64(b8, (double)i);
                em_vbuf_append(&bufs[i], b8, 8);
            }
            em_vbuf_append(&bufs[i], a + i * d, 8 * d);
        }
        recs[i].val = em_slice_make(bufs[i].data, bufs[i].len);
    }
    em_rdd *r = em_parallelize(sc, sparse ? EM_REC_BYTES : EM_REC_FIXED,
                               sparse ? 0 : (uint32_t)w, recs, n, nparts);
    for (size_t i = 0; i < n; i++)
        em_vbuf_destroy(&bufs[i]);
    em_free(bufs);
    em_free(recs);
    cr_assert_null(em_rdd_error(r));
    return (em_ml_data){.rows = em_rdd_cache(r), .sparse = sparse, .labeled = labeled,
                        .dim = (uint32_t)d};
}

/* LAPACK dgesvd of the n x d matrix a (copied): s (min(n, d)), vt (min x d, rows are the
 * right singular vectors), u (n x min) when not NULL. */
static inline void dt_dgesvd(const double *a, size_t n, size_t d, double *s, double *vt,
                             double *u)
{
    size_t mn = n < d ? n : d;
    double *c = em_xmalloc(n * d * sizeof *c), *superb = em_xmalloc(mn * sizeof *superb);
    double *uu = u ? u : em_xmalloc(n * mn * sizeof *uu);
    memcpy(c, a, n * d * sizeof *c);
    lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'S', 'S', (lapack_int)n, (lapack_int)d,
                                     c, (lapack_int)d, s, uu, (lapack_int)mn, vt,
                                     (lapack_int)d, superb);
    cr_assert_eq(info, 0, "dgesvd info %d", (int)info);
    if (!u)
        em_free(uu);
    em_free(c);
    em_free(superb);
}

/* max_i |x_i - sign y_i| over the n entries x[i * sx], y[i * sy], with the sign that
 * matches best. */
static inline double dt_diff_up_to_sign(size_t n, const double *x, size_t sx,
                                        const double *y, size_t sy)
{
    double dp = 0, dm = 0;
    for (size_t i = 0; i < n; i++) {
        dp = fmax(dp, fabs(x[i * sx] - y[i * sy]));
        dm = fmax(dm, fabs(x[i * sx] + y[i * sy]));
    }
    return fmin(dp, dm);
}

static inline double dt_rel(double a, double b)
{
    return fabs(a - b) / fmax(fabs(b), 1e-300);
}

/* The collected FIXED rows of width doubles of r (n x width, em_free). */
static inline double *dt_collect(em_rdd *r, size_t n, size_t width)
{
    em_records recs = {0};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(r, &recs, &err), 0, "%s", err.msg);
    cr_assert_eq(recs.n, n);
    double *out = em_xmalloc(n * width * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(recs.recs[i].val.n, 8 * width);
        memcpy(out + i * width, recs.recs[i].val.p, 8 * width);
    }
    em_records_destroy(&recs);
    return out;
}

#endif /* EMBER_TESTS_DECOMP_UTIL_H */
