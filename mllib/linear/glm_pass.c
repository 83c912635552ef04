/* mllib/linear/glm_pass.c - the executors' half of linear regression and GLMs: the passes
 * of glm_int.h (least-squares Gramian, one IRLS iteration), the
 * family math, and the registration table of "ml.glm.*".
 *
 * DENSE BATCHES go to BLAS: a batch of n labeled rows is the row-major n x (d+1) matrix
 * [y X], so the least-squares Gramian is one DSYRK on the batch as it is; an IRLS batch
 * gets eta = X b + b0 by DGEMV, then the scaled rows sqrt(w_i) [1 x_i z_i] are written to a
 * scratch matrix and summed by one DSYRK. SPARSE rows are folded one at a time (O(nnz^2)
 * per row into the upper triangle).
 * LOG-LIKELIHOOD TERMS of the irls accumulator (statsmodels' loglike_obs, weights 1):
 *   poisson   llf_a = sum y log mu - mu - lgamma(y + 1)
 *   binomial  llf_a = sum lgamma(2) - lgamma(y+1) - lgamma(2-y) + y log mu + (1-y) log(1-mu)
 *   gamma     llf_a = sum log(y / mu) - y / mu, llf_b = sum log y
 *   gaussian  none: llf follows from the deviance (glm.c). */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "mllib/linalg/linalg.h"
#include "mllib/linear/glm_int.h"

static const em_fn_entry glm_fns[] = {
    {"ml.glm.ls_gram", EM_FN_ACC_SEQ, EM_FN(em__glm_fn_ls_gram)},
    {"ml.glm.irls", EM_FN_ACC_SEQ, EM_FN(em__glm_fn_irls)},
    {"ml.glm.sum", EM_FN_ACC_MERGE, EM_FN(em__glm_fn_sum)},
};

int em_glm_register(void)
{
    return em_fn_register_table(glm_fns, sizeof glm_fns / sizeof glm_fns[0]);
}

int em__glm_layout_decode(em_slice blob, em_ml_data *lay, em_err *err)
{
    int rc = em_ml_layout_decode(blob, lay, err);
    if (rc < 0)
        return rc;
    if (!lay->labeled)
        return em_err_set(err, EM_ECORRUPT, "ml.glm: bad context (unlabeled layout)");
    if (lay->dim == 0 || lay->dim > 65536)
        return em_err_set(err, EM_ECORRUPT, "ml.glm: bad context (dim %u)", lay->dim);
    return 0;
}

/* ---- family math ---------------------------------------------------------------------- */

/* exp(eta) capped so that mu and mu^2 stay finite (R's poisson()$linkinv clamps at
 * .Machine$double.eps below; above, a mean of e^700 means the fit has diverged anyway). */
static double exp_capped(double eta)
{
    return exp(fmin(eta, 700.0));
}

double em__glm_linkinv(em_glm_link l, double eta)
{
    switch (l) {
    case EM_GLM_IDENTITY:
        return eta;
    case EM_GLM_LOG:
        return fmax(exp_capped(eta), 2.220446049250313e-16);
    case EM_GLM_LOGIT: {
        /* R's binomial()$linkinv: thresholded so that mu stays in (eps, 1 - eps) */
        double e = exp_capped(fmax(fmin(eta, 30.0), -30.0));
        return e / (1 + e);
    }
    case EM_GLM_INVERSE:
        return 1 / eta;
    }
    return NAN;
}

double em__glm_linkfun(em_glm_link l, double mu)
{
    switch (l) {
    case EM_GLM_IDENTITY:
        return mu;
    case EM_GLM_LOG:
        return log(mu);
    case EM_GLM_LOGIT:
        return log(mu / (1 - mu));
    case EM_GLM_INVERSE:
        return 1 / mu;
    }
    return NAN;
}

double em__glm_dmu_deta(em_glm_link l, double eta, double mu)
{
    switch (l) {
    case EM_GLM_IDENTITY:
        return 1;
    case EM_GLM_LOG:
        return mu;
    case EM_GLM_LOGIT: {
        double e = exp(-fabs(eta)); /* R: pmax(exp(eta)/(1+exp(eta))^2, eps) */
        return fmax(e / ((1 + e) * (1 + e)), 2.220446049250313e-16);
    }
    case EM_GLM_INVERSE:
        return -1 / (eta * eta);
    }
    return NAN;
}

double em__glm_variance(em_glm_family f, double mu)
{
    switch (f) {
    case EM_GLM_GAUSSIAN:
        return 1;
    case EM_GLM_BINOMIAL:
        return mu * (1 - mu);
    case EM_GLM_POISSON:
        return mu;
    case EM_GLM_GAMMA:
        return mu * mu;
    }
    return NAN;
}

/* y log(y / mu), 0 at y = 0 (the limit). */
static double ylogy(double y, double mu)
{
    return y > 0 ? y * log(y / mu) : 0;
}

double em__glm_dev_resid(em_glm_family f, double y, double mu)
{
    switch (f) {
    case EM_GLM_GAUSSIAN:
        return (y - mu) * (y - mu);
    case EM_GLM_BINOMIAL:
        return 2 * (ylogy(y, mu) + ylogy(1 - y, 1 - mu));
    case EM_GLM_POISSON:
        return 2 * (ylogy(y, mu) - (y - mu));
    case EM_GLM_GAMMA:
        return -2 * (log(y / mu) - (y - mu) / mu);
    }
    return NAN;
}

double em__glm_mustart(em_glm_family f, double y)
{
    switch (f) {
    case EM_GLM_GAUSSIAN:
        return y;
    case EM_GLM_BINOMIAL:
        return (y + 0.5) / 2;
    case EM_GLM_POISSON:
        return y + 0.1;
    case EM_GLM_GAMMA:
        return y;
    }
    return NAN;
}

bool em__glm_y_ok(em_glm_family f, double y)
{
    switch (f) {
    case EM_GLM_GAUSSIAN:
        return isfinite(y);
    case EM_GLM_BINOMIAL:
        return y >= 0 && y <= 1;
    case EM_GLM_POISSON:
        return y >= 0 && isfinite(y);
    case EM_GLM_GAMMA:
        return y > 0 && isfinite(y);
    }
    return false;
}

bool em__glm_mu_ok(em_glm_family f, double mu)
{
    switch (f) {
    case EM_GLM_GAUSSIAN:
        return isfinite(mu);
    case EM_GLM_BINOMIAL:
        return mu > 0 && mu < 1;
    case EM_GLM_POISSON:
    case EM_GLM_GAMMA:
        return mu > 0 && isfinite(mu);
    }
    return false;
}

/* ---- passes ----------------------------------------------------------------------------- */

int em__glm_fn_sum(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err)
{
    (void)c, (void)err;
    double *a = acc;
    const double *b = other;
    for (size_t i = 0; i < size / 8; i++)
        a[i] += b[i];
    return 0;
}

/* The dense batch check shared by the passes. */
static int dense_ok(const em_ml_data *lay, const em_rec_batch *in, const char *fn, em_err *err)
{
    if (!lay->sparse && (in->kind != EM_REC_FIXED || in->width != 8 * ((size_t)lay->dim + 1)))
        return em_err_set(err, EM_EINVAL, "%s: rows are not the layout's", fn);
    return 0;
}

int em__glm_fn_ls_gram(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                       em_err *err)
{
    em_ml_data lay;
    int rc = em__glm_layout_decode(c->blob, &lay, err);
    if (rc < 0)
        return rc;
    size_t k = (size_t)lay.dim + 1;
    if (size != 8 * (1 + k + k * k))
        return em_err_set(err, EM_EINVAL, "ml.glm.ls_gram: accumulator of %zu bytes", size);
    if ((rc = dense_ok(&lay, in, "ml.glm.ls_gram", err)) < 0)
        return rc;
    double *a = acc, *s = a + 1, *g = s + k;
    if (!lay.sparse) {
        const double *x = (const double *)in->data;
        size_t n = (size_t)in->nrecs;
        em_la_init();
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)n, 1.0, x, (int)k, 1.0, g,
                    (int)k);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < k; j++)
                s[j] += x[i * k + j];
        a[0] += (double)n;
        return 0;
    }
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &r)) {
        em_ml_row row;
        if ((rc = em_ml_row_view(&lay, r.val, &row, err)) < 0)
            return rc;
        double y = row.label;
        a[0] += 1;
        s[0] += y;
        g[0] += y * y;
        for (uint32_t p = 0; p < row.sp.nnz; p++) {
            size_t jp = (size_t)em_ml_sparse_idx(&row.sp, p) + 1;
            double vp = em_ml_sparse_val(&row.sp, p);
            s[jp] += vp;
            g[jp] += y * vp; /* row 0 (y), column jp */
            double *gr = g + jp * k;
            for (uint32_t q = p; q < row.sp.nnz; q++)
                gr[(size_t)em_ml_sparse_idx(&row.sp, q) + 1] += vp * em_ml_sparse_val(&row.sp, q);
        }
    }
    return 0;
}

typedef struct irls_ctx {
    em_ml_data lay;
    em_glm_family family;
    em_glm_link link;
    bool start, intercept;
    double mu_null;
    const uint8_t *beta; /* d + 1 unaligned doubles */
} irls_ctx;

static int irls_decode(em_slice blob, irls_ctx *x, em_err *err)
{
    int rc = em__glm_layout_decode(blob, &x->lay, err);
    if (rc < 0)
        return rc;
    size_t k = (size_t)x->lay.dim + 1;
    if (blob.n != EM__GLM_LAYOUT + 4 + 8 + 8 * k)
        return em_err_set(err, EM_ECORRUPT, "ml.glm.irls: bad context");
    const uint8_t *p = blob.p + EM__GLM_LAYOUT;
    x->family = p[0];
    x->link = p[1];
    x->start = p[2];
    x->intercept = p[3];
    if (!em_glm_link_ok(x->family, x->link) || p[2] > 1 || p[3] > 1)
        return em_err_set(err, EM_ECORRUPT, "ml.glm.irls: bad context (family/link)");
    memcpy(&x->mu_null, p + 4, 8);
    x->beta = p + 12;
    return 0;
}

/* The statistics of one observation at linear predictor eta (or, in the start pass, from
 * mustart): folds dev, pearson, llf terms into h; returns sqrt(w) and z in *sw, *z. */
static int irls_obs(const irls_ctx *x, double y, double eta, double *h, double *sw, double *z,
                    em_err *err)
{
    em_glm_family f = x->family;
    if (!em__glm_y_ok(f, y))
        return em_err_set(err, EM_EINVAL,
                          "label %g is outside the range of family %s (binomial: 0..1, "
                          "poisson: >= 0, gamma: > 0)",
                          y, em_glm_family_name(f));
    double mu;
    if (x->start) {
        mu = em__glm_mustart(f, y);
        eta = em__glm_linkfun(x->link, mu);
        if (!isfinite(eta))
            return em_err_set(err, EM_EINVAL,
                              "cannot find valid starting values: link %s of the label %g "
                              "(family %s)",
                              em_glm_link_name(x->link), y, em_glm_family_name(f));
        mu = em__glm_linkinv(x->link, eta);
    } else {
        mu = em__glm_linkinv(x->link, eta);
    }
    if (!em__glm_mu_ok(f, mu))
        return em_err_set(err, EM_EINVAL,
                          "IRLS: no valid set of coefficients (the mean %g is outside family "
                          "%s's range with link %s)",
                          mu, em_glm_family_name(f), em_glm_link_name(x->link));
    double v = em__glm_variance(f, mu), g = em__glm_dmu_deta(x->link, eta, mu);
    h[0] += 1;
    h[1] += em__glm_dev_resid(f, y, mu);
    h[2] += (y - mu) * (y - mu) / v;
    switch (f) {
    case EM_GLM_POISSON:
        h[3] += (y > 0 ? y * log(mu) : 0) - mu - lgamma(y + 1);
        break;
    case EM_GLM_BINOMIAL:
        h[3] += -lgamma(y + 1) - lgamma(2 - y) + (y > 0 ? y * log(mu) : 0) +
                (y < 1 ? (1 - y) * log(1 - mu) : 0);
        break;
    case EM_GLM_GAMMA:
        h[3] += log(y / mu) - y / mu;
        h[4] += log(y);
        break;
    case EM_GLM_GAUSSIAN:
        break;
    }
    if (!isnan(x->mu_null))
        h[5] += em__glm_dev_resid(f, y, x->mu_null);
    h[6] += y;
    *sw = sqrt(g * g / v);
    *z = eta + (y - mu) / g;
    return 0;
}

int em__glm_fn_irls(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in, em_err *err)
{
    irls_ctx x;
    int rc = irls_decode(c->blob, &x, err);
    if (rc < 0)
        return rc;
    size_t d = x.lay.dim, k = d + 2;
    if (size != 8 * (EM__GLM_NHDR + k * k))
        return em_err_set(err, EM_EINVAL, "ml.glm.irls: accumulator of %zu bytes", size);
    if ((rc = dense_ok(&x.lay, in, "ml.glm.irls", err)) < 0)
        return rc;
    double *h = acc, *g = h + EM__GLM_NHDR;
    double *b = em_malloc(8 * (d + 1));
    if (!b)
        return em_err_set(err, EM_ENOMEM, "ml.glm.irls: out of memory");
    memcpy(b, x.beta, 8 * (d + 1));
    if (!x.intercept)
        b[0] = 0;
    if (!x.lay.sparse) {
        const double *xs = (const double *)in->data;
        size_t n = (size_t)in->nrecs;
        double *eta = em_malloc(8 * n), *m = em_malloc(8 * n * k);
        if (!eta || !m) {
            rc = em_err_set(err, EM_ENOMEM, "ml.glm.irls: out of memory (%zu rows)", n);
            goto dense_out;
        }
        for (size_t i = 0; i < n; i++)
            eta[i] = b[0];
        em_la_init();
        if (!x.start)
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0, xs + 1, (int)(d + 1),
                        b + 1, 1, 1.0, eta, 1);
        for (size_t i = 0; i < n && rc == 0; i++) {
            double sw, z;
            const double *row = xs + i * (d + 1);
            if ((rc = irls_obs(&x, row[0], eta[i], h, &sw, &z, err)) < 0)
                break;
            double *mr = m + i * k;
            mr[0] = sw;
            for (size_t j = 0; j < d; j++)
                mr[1 + j] = sw * row[1 + j];
            mr[d + 1] = sw * z;
        }
        if (rc == 0)
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)n, 1.0, m, (int)k, 1.0,
                        g, (int)k);
    dense_out:
        em_free(eta);
        em_free(m);
        em_free(b);
        return rc;
    }
    em_batch_iter it;
    em_rec rec;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &rec)) {
        em_ml_row row;
        if ((rc = em_ml_row_view(&x.lay, rec.val, &row, err)) < 0)
            break;
        double eta = b[0], sw, z;
        for (uint32_t q = 0; q < row.sp.nnz; q++)
            eta += b[1 + em_ml_sparse_idx(&row.sp, q)] * em_ml_sparse_val(&row.sp, q);
        if ((rc = irls_obs(&x, row.label, eta, h, &sw, &z, err)) < 0)
            break;
        double w = sw * sw, wz = w * z;
        g[0] += w;
        g[d + 1] += wz;
        g[(d + 1) * k + d + 1] += wz * z;
        for (uint32_t p = 0; p < row.sp.nnz; p++) {
            size_t jp = (size_t)em_ml_sparse_idx(&row.sp, p) + 1;
            double vp = em_ml_sparse_val(&row.sp, p), wv = w * vp;
            g[jp] += wv;                 /* row 0 (intercept) */
            g[jp * k + d + 1] += wv * z; /* column z */
            double *gr = g + jp * k;
            for (uint32_t q = p; q < row.sp.nnz; q++)
                gr[(size_t)em_ml_sparse_idx(&row.sp, q) + 1] += wv * em_ml_sparse_val(&row.sp, q);
        }
    }
    em_free(b);
    return rc < 0 ? rc : 0;
}

int em__glm_aggregate(const em_ml_data *d, const char *seq, const void *blob, size_t blob_len,
                      size_t size, double *out, em_err *err)
{
    int rc = em_glm_register();
    if (rc < 0)
        return em_err_set(err, rc, "ml.glm: a task function name is taken");
    if (!d->labeled)
        return em_err_set(err, EM_EINVAL, "regression needs labeled data (--label)");
    em_vbuf res;
    em_agg a = {
        .size = size, .seq = seq, .merge = "ml.glm.sum", .ctx = em_slice_make(blob, blob_len)};
    em_vbuf_init(&res);
    rc = em_rdd_tree_aggregate_acc(d->rows, &a, 2, &res, err);
    if (rc == 0 && res.len != size)
        rc = em_err_set(err, EM_ECORRUPT, "ml.glm: result of %zu bytes", res.len);
    if (rc == 0)
        memcpy(out, res.data, size);
    em_vbuf_destroy(&res);
    return rc;
}
