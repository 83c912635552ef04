/* mllib/linear/linreg.c - linear regression (glm.h): the normal-equation solver (one pass
 * for the Gramian of [y X], then Cholesky or coordinate descent on the driver) and the
 * L-BFGS / OWL-QN solver (gradient passes of the fitting core LR and SVM share, fit.c).
 *
 * NORMAL EQUATIONS in covariance form (Friedman, Hastie & Tibshirani, "Regularization Paths
 * for Generalized Linear Models via Coordinate Descent", JSS 2010, sec. 2.2): with an
 * intercept the data are centred through the sums, A = (X^T X - n xbar xbar^T) / n and
 * c = (X^T y - n ybar xbar) / n; without, A = X^T X / n, c = X^T y / n. The objective is
 *     1/2 b^T A b - c^T b + lambda (alpha sum s_j |b_j| + (1-alpha)/2 sum s_j^2 b_j^2)
 * (+ a constant), minimized by (A + lambda (1-alpha) S^2) b = c when alpha lambda = 0, else
 * by cyclic coordinate descent:
 *     b_j = soft(c_j - sum_{l != j} A_jl b_l, lambda alpha s_j) / (A_jj + lambda (1-alpha) s_j^2)
 * keeping q = A b up to date (covariance updates). Then b0 = ybar - xbar.b. A feature whose
 * centred variance is 0 gets the coefficient 0 (as Spark's; it cannot be told from the
 * intercept). */
#include <math.h>
#include <string.h>

#include "mllib/linalg/linalg.h"
#include "mllib/linear/glm_int.h"
#include "mllib/linear/linear_int.h"

/* The centred problem of one Gramian pass. */
typedef struct ls_problem {
    uint32_t d;
    double n, ybar, yy;       /* yy: c's counterpart for y, (y^T y - n ybar^2)/n or y^T y / n */
    double *xbar, *a, *c, *s; /* d, d x d (full), d, d (penalty scales) */
    bool *constant;           /* zero centred variance */
} ls_problem;

static void ls_problem_free(ls_problem *q)
{
    em_free(q->xbar);
    em_free(q->a);
    em_free(q->c);
    em_free(q->s);
    em_free(q->constant);
}

static int ls_problem_build(const em_ml_data *d, const em_linreg_params *p, ls_problem *q,
                            em_err *err)
{
    size_t k = (size_t)d->dim + 1, size = 8 * (1 + k + k * k);
    memset(q, 0, sizeof *q);
    double *acc = em_malloc(size);
    if (!acc)
        return em_err_set(err, EM_ENOMEM, "linreg: out of memory (%u features)", d->dim);
    uint8_t blob[EM__GLM_LAYOUT];
    em_ml_layout_encode(d, blob);
    int rc = em__glm_aggregate(d, "ml.glm.ls_gram", blob, sizeof blob, size, acc, err);
    if (rc < 0) {
        em_free(acc);
        return rc;
    }
    uint32_t dim = d->dim;
    double n = acc[0], *s = acc + 1, *g = s + k;
    em_la_symmetrize((int)k, g);
    if (n < 1) {
        em_free(acc);
        return em_err_set(err, EM_EINVAL, "linreg: no rows");
    }
    q->d = dim;
    q->n = n;
    q->xbar = em_xmalloc(8 * (size_t)dim);
    q->a = em_malloc(8 * (size_t)dim * dim);
    q->c = em_xmalloc(8 * (size_t)dim);
    q->s = em_xmalloc(8 * (size_t)dim);
    q->constant = em_xmalloc((size_t)dim);
    if (!q->a) {
        em_free(acc);
        ls_problem_free(q);
        return em_err_set(err, EM_ENOMEM, "linreg: out of memory (%u features)", dim);
    }
    bool icpt = !p->no_intercept;
    q->ybar = s[0] / n;
    q->yy = icpt ? (g[0] - n * q->ybar * q->ybar) / n : g[0] / n;
    for (uint32_t j = 0; j < dim; j++)
        q->xbar[j] = s[1 + j] / n;
    for (uint32_t j = 0; j < dim; j++) {
        const double *gr = g + (size_t)(1 + j) * k + 1;
        double mj = icpt ? q->xbar[j] : 0;
        for (uint32_t l = 0; l < dim; l++)
            q->a[(size_t)j * dim + l] = (gr[l] - n * mj * (icpt ? q->xbar[l] : 0)) / n;
        q->c[j] = (g[1 + j] - n * mj * (icpt ? q->ybar : 0)) / n;
        double var = (gr[j] - n * q->xbar[j] * q->xbar[j]) / (n > 1 ? n - 1 : 1);
        /* an all-zero column, or (with an intercept) a centred sum of squares below the
         * rounding of the raw one: the coefficient is pinned to 0 */
        q->constant[j] = gr[j] == 0 || (icpt && var <= 1e-13 * fmax(gr[j] / n, 1e-300));
        q->s[j] = p->standardize ? (q->constant[j] ? 0 : sqrt(var)) : 1;
    }
    em_free(acc);
    return 0;
}

/* Sets the rows and columns of constant features to the identity and their c to 0, so that
 * their coefficients come out 0. */
static void pin_constants(ls_problem *q, double *a, double *c)
{
    uint32_t d = q->d;
    for (uint32_t j = 0; j < d; j++) {
        if (!q->constant[j])
            continue;
        for (uint32_t l = 0; l < d; l++)
            a[(size_t)j * d + l] = a[(size_t)l * d + j] = 0;
        a[(size_t)j * d + j] = 1;
        c[j] = 0;
    }
}

static int solve_ridge(ls_problem *q, double l2, double *b, em_err *err)
{
    uint32_t d = q->d;
    double *a = em_malloc(8 * (size_t)d * d);
    if (!a)
        return em_err_set(err, EM_ENOMEM, "linreg: out of memory");
    memcpy(a, q->a, 8 * (size_t)d * d);
    memcpy(b, q->c, 8 * (size_t)d);
    for (uint32_t j = 0; j < d; j++)
        a[(size_t)j * d + j] += l2 * q->s[j] * q->s[j];
    pin_constants(q, a, b);
    int rc = em_la_chol_solve((int)d, a, b, err);
    em_free(a);
    if (rc < 0)
        return em_err_prefix(err, "linreg: the normal equations are singular (collinear "
                                  "features? try --reg-param > 0)");
    return 0;
}

static double soft(double z, double g)
{
    return z > g ? z - g : z < -g ? z + g : 0;
}

/* Coordinate descent; returns the sweeps made (or -1 when it did not converge). */
static int solve_cd(ls_problem *q, double lambda, double alpha, uint32_t max_sweeps, double tol,
                    double *b, uint32_t *sweeps)
{
    uint32_t d = q->d;
    double *qa = em_xmalloc(8 * (size_t)d); /* A b */
    memset(b, 0, 8 * (size_t)d);
    memset(qa, 0, 8 * (size_t)d);
    int conv = -1;
    uint32_t t;
    for (t = 1; t <= max_sweeps; t++) {
        double dmax = 0, bmax = 0;
        for (uint32_t j = 0; j < d; j++) {
            if (q->constant[j])
                continue;
            const double *aj = q->a + (size_t)j * d;
            double ajj = aj[j];
            double r = q->c[j] - qa[j] + ajj * b[j];
            double nb = soft(r, lambda * alpha * q->s[j]) /
                        (ajj + lambda * (1 - alpha) * q->s[j] * q->s[j]);
            double delta = nb - b[j];
            if (delta != 0) {
                for (uint32_t l = 0; l < d; l++)
                    qa[l] += delta * aj[l];
                b[j] = nb;
            }
            dmax = fmax(dmax, fabs(delta) * sqrt(ajj));
            bmax = fmax(bmax, fabs(nb) * sqrt(ajj));
        }
        if (dmax <= tol * fmax(bmax, 1e-300)) {
            conv = 0;
            break;
        }
    }
    *sweeps = t > max_sweeps ? max_sweeps : t;
    em_free(qa);
    return conv;
}

static double objective(const ls_problem *q, double lambda, double alpha, const double *b)
{
    uint32_t d = q->d;
    double v = q->yy / 2, pen = 0;
    for (uint32_t j = 0; j < d; j++) {
        double ab = 0;
        for (uint32_t l = 0; l < d; l++)
            ab += q->a[(size_t)j * d + l] * b[l];
        v += 0.5 * b[j] * ab - q->c[j] * b[j];
        pen += alpha * q->s[j] * fabs(b[j]) + (1 - alpha) / 2 * q->s[j] * q->s[j] * b[j] * b[j];
    }
    return v + lambda * pen;
}

static int train_normal(const em_ml_data *d, const em_linreg_params *p, em_linear_model *m,
                        json_t *s, em_err *err)
{
    ls_problem q;
    int rc = ls_problem_build(d, p, &q, err);
    if (rc < 0)
        return rc;
    double lambda = p->reg_param, alpha = p->elastic_net;
    uint32_t sweeps = 0;
    bool converged = true;
    if (lambda * alpha == 0) {
        rc = solve_ridge(&q, lambda * (1 - alpha), m->coef, err);
    } else {
        uint32_t max_sweeps = p->max_iter ? 10 * p->max_iter : 1000;
        converged = solve_cd(&q, lambda, alpha, max_sweeps, p->tol > 0 ? p->tol : 1e-10, m->coef,
                             &sweeps) == 0;
    }
    if (rc == 0) {
        double b0 = q.ybar;
        for (uint32_t j = 0; j < q.d; j++)
            b0 -= q.xbar[j] * m->coef[j];
        m->intercept[0] = p->no_intercept ? 0 : b0;
        json_object_set_new(s, "solver", json_string("normal"));
        json_object_set_new(s, "iterations", json_integer(sweeps));
        json_object_set_new(s, "converged", json_boolean(converged));
        json_object_set_new(s, "objective", json_real(objective(&q, lambda, alpha, m->coef)));
        json_object_set_new(s, "nobs", json_integer((json_int_t)q.n));
    }
    ls_problem_free(&q);
    return rc;
}

/* L-BFGS (OWL-QN when alpha lambda > 0) through the fitting core LR and SVM share
 * (linear_int.h), with the squared loss (z - y)^2 / 2: the same objective. */
static int train_lbfgs(em_context *sc, const em_ml_data *d, const em_linreg_params *p,
                       em_linear_model *m, json_t *s, em_err *err)
{
    lin_fit_opts o = {.loss = LIN_SQUARED,
                      .k = 1,
                      .intercept = !p->no_intercept,
                      .standardize = p->standardize,
                      .reg = p->reg_param,
                      .alpha = p->elastic_net,
                      .max_iter = p->max_iter,
                      .tol = p->tol,
                      .what = "linreg"};
    lin_fit_out f;
    int rc = em__lin_fit(sc, d, &o, m, &f, err);
    if (rc == 0) {
        json_object_set_new(s, "solver", json_string("l-bfgs"));
        json_object_set_new(s, "iterations", json_integer(f.iterations));
        json_object_set_new(s, "passes", json_integer(f.passes));
        json_object_set_new(s, "converged", json_boolean(f.converged));
        json_object_set_new(s, "objective", json_real(f.loss));
        json_object_set_new(s, "objective_history", f.history);
        f.history = NULL;
        json_object_set_new(s, "nobs", json_integer((json_int_t)d->nrows));
    }
    json_decref(f.history);
    return rc;
}

int em_linreg_train(em_context *sc, const em_ml_data *d, const em_linreg_params *p,
                    em_linear_model **out, em_err *err)
{
    *out = NULL;
    if (!(p->reg_param >= 0) || !isfinite(p->reg_param))
        return em_err_set(err, EM_EINVAL, "linreg: reg_param %g (wants >= 0)", p->reg_param);
    if (!(p->elastic_net >= 0 && p->elastic_net <= 1))
        return em_err_set(err, EM_EINVAL, "linreg: elastic_net %g (wants 0..1)", p->elastic_net);
    if (d->dim == 0)
        return em_err_set(err, EM_EINVAL, "linreg: no features");
    em_linreg_solver solver = p->solver;
    if (solver == EM_LINREG_AUTO)
        solver = d->dim <= 4096 ? EM_LINREG_NORMAL : EM_LINREG_LBFGS;
    if (solver == EM_LINREG_NORMAL && d->dim > 65536)
        return em_err_set(err, EM_EINVAL,
                          "linreg: the normal solver takes up to 65536 "
                          "features (%u): use l-bfgs",
                          d->dim);
    em_linear_model *m = em_linear_model_new(EM_LINEAR_REGRESSION, d->dim, 1);
    if (!m)
        return em_err_set(err, EM_ENOMEM, "linreg: out of memory");
    json_t *s = json_object();
    int rc = solver == EM_LINREG_NORMAL ? train_normal(d, p, m, s, err)
                                        : train_lbfgs(sc, d, p, m, s, err);
    if (rc < 0) {
        json_decref(s);
        em_linear_model_free(m);
        return rc;
    }
    json_object_set_new(s, "reg_param", json_real(p->reg_param));
    json_object_set_new(s, "elastic_net", json_real(p->elastic_net));
    json_object_set_new(s, "standardize", json_boolean(p->standardize));
    json_object_set_new(s, "fit_intercept", json_boolean(!p->no_intercept));
    m->summary = s;
    *out = m;
    return 0;
}
