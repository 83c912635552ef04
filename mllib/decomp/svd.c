/* mllib/decomp/svd.c - em_svd: picks the path (Gramian + dsyevr, or Lanczos), turns
 * eigenvalues of A^T A into singular values, applies the reciprocal condition cut and
 * builds U = A V Sigma^-1 as a map over the rows on request (decomp.h). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "mllib/decomp/decomp_int.h"

int em_svd_mode_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strcmp(s, "auto"))
        return EM_SVD_AUTO;
    if (!strcmp(s, "gramian"))
        return EM_SVD_GRAMIAN;
    if (!strcmp(s, "lanczos"))
        return EM_SVD_LANCZOS;
    return -1;
}

const char *em_svd_mode_name(em_svd_mode m)
{
    switch (m) {
    case EM_SVD_AUTO: return "auto";
    case EM_SVD_GRAMIAN: return "gramian";
    case EM_SVD_LANCZOS: return "lanczos";
    }
    return "?";
}

void em_svd_result_destroy(em_context *sc, em_svd_result *r)
{
    if (!r)
        return;
    em_free(r->s);
    em_free(r->v);
    em_decomp_rows_release(sc, &r->u);
    *r = (em_svd_result){0};
}

/* Eigenvalues (descending, k) -> singular values; returns how many survive the cut. */
static uint32_t cut_values(double *vals, uint32_t k, double rcond)
{
    for (uint32_t i = 0; i < k; i++)
        vals[i] = sqrt(fmax(vals[i], 0.0));
    uint32_t kept = 0;
    while (kept < k && vals[0] > 0 && vals[kept] >= rcond * vals[0])
        kept++;
    return kept;
}

/* The first kept columns of the d x k row-major v, in place, as a d x kept matrix. */
static void keep_columns(double *v, size_t d, uint32_t k, uint32_t kept)
{
    for (size_t i = 0; i < d; i++)
        memmove(v + i * kept, v + i * k, kept * sizeof *v);
}

static int run_path(em_context *sc, const em_ml_data *a, const em_svd_opts *o,
                    em_svd_result *r, em_err *err)
{
    uint32_t k = o->k;
    if (r->mode == EM_SVD_GRAMIAN) {
        double *acc = NULL;
        int rc = em__dc_gram_pass(a, false, o->depth, &acc, err);
        if (rc == 0) {
            r->nrows = (uint64_t)acc[0];
            r->products = 1;
            rc = em__dc_eig_top(a->dim, acc + 1 + a->dim, k, r->s, r->v, err);
        }
        em_free(acc);
        return rc;
    }
    em__dc_lanczos_stats st = {0};
    int rc = em__dc_lanczos(sc, a, o, k, r->rcond * r->rcond, r->s, r->v, &st, err);
    r->nrows = st.nrows;
    r->products = st.products;
    r->restarts = st.restarts;
    return rc;
}

int em_svd(em_context *sc, const em_ml_data *a, const em_svd_opts *o, em_svd_result *out,
           em_err *err)
{
    *out = (em_svd_result){0};
    int rc = em__dc_check_data(a, "svd", err);
    if (rc < 0)
        return rc;
    uint32_t d = a->dim, k = o->k;
    if (k == 0 || k > d)
        return em_err_set(err, EM_EINVAL, "svd: k = %u, expected 1..%u (the column count)", k,
                          d);
    if (o->rcond < 0 || o->tol < 0 || !isfinite(o->rcond) || !isfinite(o->tol))
        return em_err_set(err, EM_EINVAL, "svd: rcond and tol must be finite and >= 0");
    em_svd_result r = {.dim = d, .mode = o->mode};
    if (r.mode == EM_SVD_AUTO)
        r.mode = d <= EM_SVD_GRAMIAN_MAX_DIM ? EM_SVD_GRAMIAN : EM_SVD_LANCZOS;
    r.rcond = fmax(o->rcond > 0 ? o->rcond : 1e-9, sqrt((double)d * DBL_EPSILON));
    r.s = em_malloc(k * sizeof *r.s);
    r.v = em_malloc((size_t)d * k * sizeof *r.v);
    if (!r.s || !r.v)
        rc = em_err_set(err, EM_ENOMEM, "svd: %u x %u vectors", d, k);
    if (rc == 0)
        rc = run_path(sc, a, o, &r, err);
    if (rc == 0) {
        r.k = cut_values(r.s, k, r.rcond);
        keep_columns(r.v, d, k, r.k);
    }
    if (rc == 0 && o->compute_u && r.k > 0) {
        double *inv = em_malloc(r.k * sizeof *inv);
        if (!inv)
            rc = em_err_set(err, EM_ENOMEM, "svd: U");
        for (uint32_t i = 0; inv && i < r.k; i++)
            inv[i] = 1 / r.s[i];
        if (inv)
            rc = em__dc_project(sc, a, NULL, r.v, inv, r.k, &r.u, err);
        em_free(inv);
    }
    if (rc < 0) {
        em_svd_result_destroy(sc, &r);
        return rc;
    }
    *out = r;
    return 0;
}
