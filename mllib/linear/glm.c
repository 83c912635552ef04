/* mllib/linear/glm.c - the driver's half of GLM fitting: the IRLS loop (one engine pass per
 * iteration, glm_pass.c), the weighted least-squares solve on the driver, and the summary
 * (standard errors, deviance, null deviance, dispersion, log-likelihood, AIC).
 *
 * ITERATION (R's glm.fit, statsmodels' IRLS): pass 0 starts from mustart and yields the
 * deviance dev_0 and the weighted Gramian of [1 X z]; each following step solves
 *     (X^T W X + n lambda I') b = X^T W z
 * and makes one pass at b, which yields dev(b), and the Gramian for the next step. Stop when
 * |dev - dev_old| / (|dev| + 0.1) < tol (R's rule) and no coefficient moved by more than
 * sqrt(tol) max(1, ||b||_inf) in the last step: the deviance is flat to second order near
 * the optimum, so with a non-canonical link (linear convergence of Fisher scoring) R's rule
 * alone stops with coefficients off in the 7th digit.
 * STANDARD ERRORS: the pass at the final b also gives X^T W X at b: cov = dispersion
 * (X^T W X + n lambda I')^-1, inverted by Cholesky (dpotrf/dpotri).
 * NULL DEVIANCE: the deviance of the model with only the intercept, whose fitted mean is
 * the label mean for any link (its score equation is sum (y - mu) = 0 at a constant mu);
 * without an intercept, R's: mu = linkinv(0). Known after pass 0, summed from pass 1 on.
 * LLF (statsmodels' GLMResults.llf): gaussian with the identity link the concentrated
 * -n/2 (log(2 pi dev / n) + 1); gaussian with another link -dev/(2s) - n/2 log(2 pi s) at
 * the Pearson scale s; poisson and binomial llf_a; gamma with a = 1/s (Pearson scale):
 * n (a log a - lgamma(a)) + a llf_a - llf_b. AIC = -2 llf + 2 p. */
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "mllib/linalg/linalg.h"
#include "mllib/linear/glm_int.h"

static const char *const family_names[] = {NULL, "gaussian", "binomial", "poisson", "gamma"};
static const char *const link_names[] = {NULL, "identity", "log", "logit", "inverse"};

const char *em_glm_family_name(em_glm_family f)
{
    return f >= EM_GLM_GAUSSIAN && f <= EM_GLM_GAMMA ? family_names[f] : NULL;
}

const char *em_glm_link_name(em_glm_link l)
{
    return l >= EM_GLM_IDENTITY && l <= EM_GLM_INVERSE ? link_names[l] : NULL;
}

em_glm_link em_glm_canonical_link(em_glm_family f)
{
    switch (f) {
    case EM_GLM_GAUSSIAN:
        return EM_GLM_IDENTITY;
    case EM_GLM_BINOMIAL:
        return EM_GLM_LOGIT;
    case EM_GLM_POISSON:
        return EM_GLM_LOG;
    case EM_GLM_GAMMA:
        return EM_GLM_INVERSE;
    }
    return 0;
}

/* The links R's families take among ours (binomial: logit, log; poisson: log, identity;
 * gaussian and gamma: identity, log, inverse). */
bool em_glm_link_ok(em_glm_family f, em_glm_link l)
{
    switch (f) {
    case EM_GLM_GAUSSIAN:
    case EM_GLM_GAMMA:
        return l == EM_GLM_IDENTITY || l == EM_GLM_LOG || l == EM_GLM_INVERSE;
    case EM_GLM_BINOMIAL:
        return l == EM_GLM_LOGIT || l == EM_GLM_LOG;
    case EM_GLM_POISSON:
        return l == EM_GLM_LOG || l == EM_GLM_IDENTITY;
    }
    return false;
}

/* A fit in progress. */
typedef struct irls {
    const em_ml_data *d;
    const em_glm_params *p;
    em_glm_link link;
    uint32_t dim, np; /* features; coefficients solved for (dim + intercept) */
    size_t k, size;   /* Gramian order dim + 2; accumulator bytes */
    uint8_t *blob;
    size_t blob_len;
    double *acc;       /* the last pass's accumulator */
    double *beta;      /* b0, b1..bd (b0 = 0 without intercept) */
    double *a, *rhs;   /* np x np system and right-hand side */
    double step, bmax; /* the last solve: largest coefficient change, largest |b| */
} irls;

/* One pass at r->beta (start: from mustart) into r->acc. */
static int irls_pass(irls *r, bool start, double mu_null, em_err *err)
{
    uint8_t *p = r->blob + EM__GLM_LAYOUT;
    p[2] = start;
    memcpy(p + 4, &mu_null, 8);
    memcpy(p + 12, r->beta, 8 * ((size_t)r->dim + 1));
    return em__glm_aggregate(r->d, "ml.glm.irls", r->blob, r->blob_len, r->size, r->acc, err);
}

/* r->a, r->rhs = the penalized weighted normal equations from r->acc's Gramian. */
static void irls_system(irls *r)
{
    const double *g = r->acc + EM__GLM_NHDR;
    uint32_t off = r->p->no_intercept ? 1 : 0, np = r->np;
    double pen = r->p->reg_param * r->acc[0];
    for (uint32_t i = 0; i < np; i++) {
        for (uint32_t j = i; j < np; j++)
            r->a[(size_t)i * np + j] = g[(size_t)(i + off) * r->k + j + off];
        r->rhs[i] = g[(size_t)(i + off) * r->k + r->k - 1];
        if (i + off > 0)
            r->a[(size_t)i * np + i] += pen;
    }
}

static int irls_solve(irls *r, uint32_t iter, em_err *err)
{
    irls_system(r);
    int rc = em_la_chol_solve((int)r->np, r->a, r->rhs, err);
    if (rc < 0)
        return em_err_prefix(err,
                             "IRLS iteration %u: X^T W X is singular (collinear or "
                             "constant features?)",
                             iter);
    uint32_t off = r->p->no_intercept ? 1 : 0;
    r->step = r->bmax = 0;
    for (uint32_t j = 0; j < r->np; j++) {
        r->step = fmax(r->step, fabs(r->rhs[j] - r->beta[j + off]));
        r->bmax = fmax(r->bmax, fabs(r->rhs[j]));
    }
    r->beta[0] = 0;
    memcpy(r->beta + off, r->rhs, 8 * (size_t)r->np);
    return 0;
}

/* Standard errors from the final pass: sqrt(disp * diag(A^-1)). */
static int irls_std_errors(irls *r, double disp, double *se, em_err *err)
{
    irls_system(r);
    int np = (int)r->np;
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', np, r->a, np);
    if (info == 0)
        info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'U', np, r->a, np);
    if (info != 0)
        return em_err_set(err, EM_EINVAL,
                          "IRLS: X^T W X is singular at the solution "
                          "(LAPACK info %d)",
                          (int)info);
    for (int i = 0; i < np; i++)
        se[i] = sqrt(disp * r->a[(size_t)i * np + i]);
    return 0;
}

static double glm_llf(em_glm_family f, em_glm_link l, const double *h, double pearson_scale)
{
    double n = h[0], dev = h[1];
    switch (f) {
    case EM_GLM_GAUSSIAN:
        if (l == EM_GLM_IDENTITY)
            return -n / 2 * (log(2 * M_PI * dev / n) + 1);
        return -dev / (2 * pearson_scale) - n / 2 * log(2 * M_PI * pearson_scale);
    case EM_GLM_POISSON:
    case EM_GLM_BINOMIAL:
        return h[3];
    case EM_GLM_GAMMA: {
        double a = 1 / pearson_scale;
        return n * (a * log(a) - lgamma(a)) + a * h[3] - h[4];
    }
    }
    return NAN;
}

static json_t *json_array_of(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

static int build_model(irls *r, uint32_t iter, bool converged, double null_dev,
                       em_linear_model **out, em_err *err)
{
    const double *h = r->acc;
    double n = h[0], df_resid = n - r->np;
    bool scaled = r->p->family == EM_GLM_GAUSSIAN || r->p->family == EM_GLM_GAMMA;
    double pearson_scale = df_resid > 0 ? h[2] / df_resid : NAN;
    double disp = scaled ? pearson_scale : 1;
    double *se = em_xmalloc(8 * (size_t)r->np);
    int rc = irls_std_errors(r, disp, se, err);
    if (rc < 0) {
        em_free(se);
        return rc;
    }
    double llf = glm_llf(r->p->family, r->link, h, pearson_scale);
    em_linear_model *m = em_linear_model_new(EM_LINEAR_GLM, r->dim, 1);
    if (!m) {
        em_free(se);
        return em_err_set(err, EM_ENOMEM, "GLM: out of memory");
    }
    m->family = r->p->family;
    m->link = r->link;
    memcpy(m->coef, r->beta + 1, 8 * (size_t)r->dim);
    m->intercept[0] = r->p->no_intercept ? 0 : r->beta[0];
    json_t *s = json_object();
    json_object_set_new(s, "family", json_string(em_glm_family_name(r->p->family)));
    json_object_set_new(s, "link", json_string(em_glm_link_name(r->link)));
    json_object_set_new(s, "iterations", json_integer(iter));
    json_object_set_new(s, "converged", json_boolean(converged));
    json_object_set_new(s, "nobs", json_integer((json_int_t)n));
    json_object_set_new(s, "deviance", json_real(h[1]));
    json_object_set_new(s, "null_deviance", json_real(null_dev));
    json_object_set_new(s, "pearson_chi2", json_real(h[2]));
    json_object_set_new(s, "dispersion", json_real(disp));
    json_object_set_new(s, "df_residual", json_real(df_resid));
    json_object_set_new(s, "llf", json_real(llf));
    json_object_set_new(s, "aic", json_real(-2 * llf + 2 * r->np));
    json_object_set_new(s, "reg_param", json_real(r->p->reg_param));
    json_object_set_new(s, "fit_intercept", json_boolean(!r->p->no_intercept));
    json_object_set_new(s, "std_errors", json_array_of(se, r->np));
    m->summary = s;
    em_free(se);
    *out = m;
    return 0;
}

int em_glm_train(em_context *sc, const em_ml_data *d, const em_glm_params *p, em_linear_model **out,
                 em_err *err)
{
    (void)sc; /* the passes run on d's context */
    *out = NULL;
    if (!em_glm_family_name(p->family))
        return em_err_set(err, EM_EINVAL, "GLM: unknown family %d", (int)p->family);
    em_glm_link link = p->link ? p->link : em_glm_canonical_link(p->family);
    if (!em_glm_link_name(link) || !em_glm_link_ok(p->family, link))
        return em_err_set(err, EM_EINVAL, "GLM: family %s does not take link %s",
                          em_glm_family_name(p->family),
                          em_glm_link_name(link) ? em_glm_link_name(link) : "?");
    if (!(p->reg_param >= 0) || !isfinite(p->reg_param))
        return em_err_set(err, EM_EINVAL, "GLM: reg_param %g (wants >= 0)", p->reg_param);
    if (d->dim == 0 || d->dim > 8192)
        return em_err_set(err, EM_EINVAL, "GLM: %u features (IRLS takes 1..8192)", d->dim);
    uint32_t max_iter = p->max_iter ? p->max_iter : 25;
    double tol = p->tol > 0 ? p->tol : 1e-8;
    irls r = {.d = d, .p = p, .link = link, .dim = d->dim};
    r.np = d->dim + (p->no_intercept ? 0 : 1);
    r.k = (size_t)d->dim + 2;
    r.size = 8 * (EM__GLM_NHDR + r.k * r.k);
    r.blob_len = EM__GLM_LAYOUT + 12 + 8 * ((size_t)d->dim + 1);
    r.blob = em_xmalloc(r.blob_len);
    em_ml_layout_encode(d, r.blob);
    r.blob[EM__GLM_LAYOUT] = (uint8_t)p->family;
    r.blob[EM__GLM_LAYOUT + 1] = (uint8_t)link;
    r.blob[EM__GLM_LAYOUT + 3] = !p->no_intercept;
    r.acc = em_malloc(r.size);
    r.beta = em_xmalloc(8 * ((size_t)d->dim + 1));
    r.a = em_malloc(8 * (size_t)r.np * r.np);
    r.rhs = em_xmalloc(8 * (size_t)r.np);
    memset(r.beta, 0, 8 * ((size_t)d->dim + 1));
    int rc = 0;
    if (!r.acc || !r.a) {
        rc = em_err_set(err, EM_ENOMEM, "GLM: out of memory (%u features)", d->dim);
        goto out;
    }
    if ((rc = irls_pass(&r, true, NAN, err)) < 0)
        goto out;
    if (r.acc[0] <= r.np) {
        rc = em_err_set(err, EM_EINVAL, "GLM: %.0f rows for %u coefficients", r.acc[0], r.np);
        goto out;
    }
    double mu_null = p->no_intercept ? em__glm_linkinv(link, 0) : r.acc[6] / r.acc[0];
    double dev_old = r.acc[1], null_dev = NAN;
    uint32_t iter = 0;
    bool converged = false;
    while (iter < max_iter) {
        iter++;
        if ((rc = irls_solve(&r, iter, err)) < 0 || (rc = irls_pass(&r, false, mu_null, err)) < 0)
            goto out;
        null_dev = r.acc[5];
        double dev = r.acc[1];
        if (!isfinite(dev)) {
            rc = em_err_set(err, EM_EINVAL, "IRLS iteration %u: the deviance is not finite", iter);
            goto out;
        }
        if (fabs(dev - dev_old) / (fabs(dev) + 0.1) < tol &&
            r.step <= sqrt(tol) * fmax(1, r.bmax)) {
            converged = true;
            break;
        }
        dev_old = dev;
    }
    rc = build_model(&r, iter, converged, null_dev, out, err);
out:
    em_free(r.blob);
    em_free(r.acc);
    em_free(r.beta);
    em_free(r.a);
    em_free(r.rhs);
    return rc;
}
