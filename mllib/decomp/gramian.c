/* mllib/decomp/gramian.c - the driver's side of the one-pass path: the Gramian (or
 * covariance) accumulation as a tree aggregation, the top-k eigen-decomposition of the
 * result with LAPACK's dsyevr, and the row map through a broadcast matrix (U, PCA
 * projections).
 *
 * WHY column-major LAPACK on row-major data: a symmetric matrix stored row-major with its
 * upper triangle filled is, byte for byte, the column-major matrix with its lower triangle
 * filled, so dsyevr runs with uplo 'L' in column-major order and nothing is transposed. */
#include <math.h>
#include <string.h>

#include <lapacke.h>

#include "mllib/decomp/decomp_int.h"
#include "mllib/linalg/linalg.h"

int em__dc_check_data(const em_ml_data *a, const char *what, em_err *err)
{
    if (em_decomp_register() < 0)
        return em_err_set(err, EM_EINVAL, "%s: a ml.decomp task function name is already "
                          "registered with another function", what);
    if (!a || !a->rows)
        return em_err_set(err, EM_EINVAL, "%s: no rows", what);
    const em_err *re = em_rdd_error(a->rows);
    if (re)
        return em_err_set(err, re->code, "%s: %s", what, re->msg);
    if (a->dim == 0 || a->dim > EM_DECOMP_MAX_DIM)
        return em_err_set(err, EM_EINVAL, "%s: %u columns (1..%u)", what, a->dim,
                          EM_DECOMP_MAX_DIM);
    return 0;
}

int em__dc_gram_pass(const em_ml_data *a, bool centred, uint32_t depth, double **out,
                     em_err *err)
{
    uint8_t blob[EM__DC_BLOB_SIZE];
    em__dc_blob b = em__dc_blob_of(a);
    size_t d = a->dim;
    *out = NULL;
    if (d > EM_DECOMP_MAX_GRAM_DIM)
        return em_err_set(err, EM_EINVAL, "gramian: %zu columns (at most %u: the d x d "
                          "matrix is accumulated in every task)", d, EM_DECOMP_MAX_GRAM_DIM);
    if (centred && a->sparse)
        return em_err_set(err, EM_EINVAL, "gramian: centred accumulation needs dense rows");
    em__dc_blob_encode(&b, blob);
    em_agg g = {.size = 8 * (1 + d + d * d),
                .seq = centred ? "ml.decomp.cov" : "ml.decomp.gram",
                .merge = centred ? "ml.decomp.cov_merge" : "ml.decomp.sum_merge",
                .ctx = em_slice_make(blob, sizeof blob)};
    em_vbuf v;
    em_vbuf_init(&v);
    int rc = em_rdd_tree_aggregate_acc(a->rows, &g, depth ? depth : 2, &v, err);
    if (rc == 0 && v.len != g.size)
        rc = em_err_set(err, EM_EINVAL, "gramian: result of %zu bytes, expected %zu", v.len,
                        g.size);
    if (rc < 0) {
        em_vbuf_destroy(&v);
        return em_err_prefix(err, "gramian");
    }
    size_t len;
    *out = (double *)(void *)em_vbuf_steal(&v, &len);   /* em_malloc'd: aligned */
    return 0;
}

void em__dc_fix_signs(uint32_t d, uint32_t k, double *v)
{
    for (uint32_t j = 0; j < k; j++) {
        double best = 0;
        for (uint32_t i = 0; i < d; i++)
            if (fabs(v[(size_t)i * k + j]) > fabs(best))
                best = v[(size_t)i * k + j];
        if (best < 0)
            for (uint32_t i = 0; i < d; i++)
                v[(size_t)i * k + j] = -v[(size_t)i * k + j];
    }
}

int em__dc_eig_top(uint32_t d, double *g, uint32_t k, double *vals, double *vecs,
                   em_err *err)
{
    if (k == 0 || k > d)
        return em_err_set(err, EM_EINVAL, "eigen: %u of %u eigenpairs", k, d);
    double *w = em_malloc((size_t)d * sizeof *w);
    double *z = em_malloc((size_t)d * k * sizeof *z);
    lapack_int *supp = em_malloc(2 * (size_t)k * sizeof *supp);
    lapack_int m = 0, info = -1;
    if (w && z && supp) {
        em_la_init();
        /* abstol = safe minimum: eigenvalues to high relative accuracy (dsyevr's notes). */
        info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'V', 'I', 'L', (lapack_int)d, g,
                              (lapack_int)d, 0.0, 0.0, (lapack_int)(d - k + 1), (lapack_int)d,
                              LAPACKE_dlamch('S'), &m, w, z, (lapack_int)d, supp);
    }
    int rc = 0;
    if (!w || !z || !supp)
        rc = em_err_set(err, EM_ENOMEM, "eigen: %u x %u", d, k);
    else if (info != 0 || m != (lapack_int)k)
        rc = em_err_set(err, EM_EINVAL, "eigen: dsyevr failed (info %d, %d of %u values); "
                        "is the input finite?", (int)info, (int)m, k);
    for (uint32_t j = 0; rc == 0 && j < k; j++) {   /* ascending -> descending */
        uint32_t src = k - 1 - j;
        vals[j] = w[src];
        for (uint32_t i = 0; i < d; i++)
            vecs[(size_t)i * k + j] = z[(size_t)src * d + i];
    }
    if (rc == 0)
        em__dc_fix_signs(d, k, vecs);
    em_free(w);
    em_free(z);
    em_free(supp);
    return rc;
}

void em_decomp_rows_release(em_context *sc, em_decomp_rows *r)
{
    if (!r)
        return;
    em_rdd_release(r->rows);
    if (r->bcast && sc)
        em_broadcast_destroy(sc, r->bcast);
    *r = (em_decomp_rows){0};
}

int em__dc_project(em_context *sc, const em_ml_data *a, const double *mu, const double *p,
                   const double *scale, uint32_t k, em_decomp_rows *out, em_err *err)
{
    size_t d = a->dim, nmu = mu ? d : 0, n = nmu + d * k + k;
    uint8_t blob[EM__DC_BLOB_SIZE];
    double *buf = em_malloc(n * 8);
    *out = (em_decomp_rows){0};
    if (!buf)
        return em_err_set(err, EM_ENOMEM, "project: %zu x %u broadcast", d, k);
    if (mu)
        memcpy(buf, mu, d * 8);
    memcpy(buf + nmu, p, d * k * 8);
    memcpy(buf + nmu + d * k, scale, (size_t)k * 8);
    uint32_t id = em_broadcast(sc, em_slice_make(buf, n * 8), err);
    em_free(buf);
    if (!id)
        return em_err_prefix(err, "project");
    em__dc_blob b = em__dc_blob_of(a);
    b.centre = mu != NULL;
    b.nvec = k;
    b.bcast = id;
    em__dc_blob_encode(&b, blob);
    em_rdd *r = em_rdd_map_partitions_fixed(a->rows, "ml.decomp.project",
                                            em_slice_make(blob, sizeof blob), true, 8 * k);
    const em_err *re = em_rdd_error(r);
    if (re) {
        int rc = em_err_set(err, re->code, "project: %s", re->msg);
        em_rdd_release(r);
        em_broadcast_destroy(sc, id);
        return rc;
    }
    *out = (em_decomp_rows){r, id, k};
    return 0;
}
