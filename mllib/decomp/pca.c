/* mllib/decomp/pca.c - principal component analysis: the centred covariance in one pass
 * (decomp.h says how), its top-k eigenpairs, explained variance, and the projection of a
 * data set onto the components. */
#include <math.h>
#include <string.h>

#include "mllib/decomp/decomp_int.h"

void em_pca_model_free(em_pca_model *m)
{
    if (!m)
        return;
    em_free(m->mean);
    em_free(m->components);
    em_free(m->explained_variance);
    em_free(m->explained_variance_ratio);
    em_free(m);
}

em_pca_model *em__dc_pca_alloc(uint32_t dim, uint32_t k)
{
    em_pca_model *m = em_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->dim = dim;
    m->k = k;
    m->mean = em_calloc(dim, sizeof *m->mean);
    m->components = em_calloc((size_t)dim * k, sizeof *m->components);
    m->explained_variance = em_calloc(k, sizeof *m->explained_variance);
    m->explained_variance_ratio = em_calloc(k, sizeof *m->explained_variance_ratio);
    if (!m->mean || !m->components || !m->explained_variance || !m->explained_variance_ratio) {
        em_pca_model_free(m);
        return NULL;
    }
    return m;
}

/* From the accumulator of the pass (dense: cov layout; sparse: gram layout) to the mean and
 * the covariance C (upper triangle, in place of the second-moment block). */
static void covariance(const em_ml_data *a, double *acc, double *mean)
{
    size_t d = a->dim;
    double n = acc[0], *g = acc + 1 + d;
    for (size_t j = 0; j < d; j++)
        mean[j] = a->sparse ? acc[1 + j] / n : acc[1 + j];
    for (size_t i = 0; i < d; i++)
        for (size_t j = i; j < d; j++) {
            double mij = g[i * d + j];
            if (a->sparse)   /* sum (x - mu)(x - mu)^T = sum x x^T - n mu mu^T */
                mij -= n * mean[i] * mean[j];
            g[i * d + j] = mij / (n - 1);
        }
}

static int fit_model(const em_ml_data *a, uint32_t k, double *acc, em_pca_model **out,
                     em_err *err)
{
    uint32_t d = a->dim;
    double *vecs = em_malloc((size_t)d * k * sizeof *vecs);
    em_pca_model *m = em__dc_pca_alloc(d, k);
    int rc = 0;
    if (!vecs || !m) {
        rc = em_err_set(err, EM_ENOMEM, "pca: %u x %u components", k, d);
        goto out;
    }
    m->nrows = (uint64_t)acc[0];
    covariance(a, acc, m->mean);
    double *c = acc + 1 + d;
    for (uint32_t i = 0; i < d; i++)
        m->total_variance += c[(size_t)i * d + i];
    if ((rc = em__dc_eig_top(d, c, k, m->explained_variance, vecs, err)) < 0)
        goto out;
    for (uint32_t j = 0; j < k; j++) {
        double ev = fmax(m->explained_variance[j], 0.0);
        m->explained_variance[j] = ev;
        m->explained_variance_ratio[j] = m->total_variance > 0 ? ev / m->total_variance : 0;
        for (uint32_t i = 0; i < d; i++)
            m->components[(size_t)j * d + i] = vecs[(size_t)i * k + j];
    }
    *out = m;
    m = NULL;
out:
    em_pca_model_free(m);
    em_free(vecs);
    return rc;
}

int em_pca_fit(em_context *sc, const em_ml_data *a, uint32_t k, const em_pca_opts *o,
               em_pca_model **out, em_err *err)
{
    (void)sc;   /* the rows know their context; kept for symmetry with em_svd */
    *out = NULL;
    int rc = em__dc_check_data(a, "pca", err);
    if (rc < 0)
        return rc;
    if (a->dim > EM_DECOMP_MAX_GRAM_DIM)
        return em_err_set(err, EM_EINVAL, "pca: %u columns (at most %u: the covariance is "
                          "accumulated in every task)", a->dim, EM_DECOMP_MAX_GRAM_DIM);
    if (k == 0 || k > a->dim)
        return em_err_set(err, EM_EINVAL, "pca: k = %u, expected 1..%u (the column count)", k,
                          a->dim);
    double *acc = NULL;
    rc = em__dc_gram_pass(a, !a->sparse, o ? o->depth : 0, &acc, err);
    if (rc == 0 && acc[0] < 2)
        rc = em_err_set(err, EM_EINVAL, "pca: %.0f rows (at least 2 are needed)", acc[0]);
    if (rc == 0)
        rc = fit_model(a, k, acc, out, err);
    em_free(acc);
    return rc;
}

int em_pca_transform(em_context *sc, const em_pca_model *m, const em_ml_data *a,
                     em_decomp_rows *out, em_err *err)
{
    *out = (em_decomp_rows){0};
    int rc = em__dc_check_data(a, "pca transform", err);
    if (rc < 0)
        return rc;
    if (!m || a->dim != m->dim)
        return em_err_set(err, EM_EINVAL, "pca transform: data of %u columns, model of %u",
                          a->dim, m ? m->dim : 0);
    size_t d = m->dim, k = m->k;
    double *p = em_malloc(d * k * sizeof *p), *ones = em_malloc(k * sizeof *ones);
    if (!p || !ones)
        rc = em_err_set(err, EM_ENOMEM, "pca transform: %zu x %zu", d, k);
    for (size_t i = 0; rc == 0 && i < d; i++)
        for (size_t j = 0; j < k; j++)
            p[i * k + j] = m->components[j * d + i];
    for (size_t j = 0; rc == 0 && j < k; j++)
        ones[j] = 1;
    if (rc == 0)
        rc = em__dc_project(sc, a, m->mean, p, ones, m->k, out, err);
    em_free(p);
    em_free(ones);
    return rc;
}
