/* mllib/linear/fit.c - the driver's fitting core shared by logistic regression, the linear
 * SVM and least squares: the objective of linear_int.h evaluated by one engine pass, and
 * minimized by L-BFGS / OWL-QN (mllib/optim) or by mini-batch SGD.
 *
 * STANDARDIZATION WITHOUT SCALED DATA (as Spark's LogisticRegression): the optimizer works
 * on beta_kj = w_kj * s_j, s_j the column's standard deviation. The engine pass gets the
 * original-scale w_kj = beta_kj / s_j, so the data is never rewritten; the gradient in
 * beta is d/d beta_kj = (1/s_j) (X^T r)_kj, one multiplication per coefficient on the
 * driver. The penalty is on beta (standardize) or on w = beta / s (not standardized: the
 * same objective as the unscaled problem, only better conditioned for L-BFGS). A column
 * with s_j = 0 is left out (coefficient 0; Spark does the same) unless there is no
 * intercept and the column is a non-zero constant, which then scales by 1/|mean|.
 * INTERCEPTS are the last k variables, never penalized.
 * SGD (Spark's GradientDescent with SquaredL2Updater / L1Updater): at iteration t the
 * sampled rows' mean gradient g and step a_t = step / sqrt(t):
 *   beta <- beta (1 - a_t reg (1 - alpha)) - a_t g, then soft-threshold by a_t reg alpha;
 * stops after max_iter iterations or when ||beta_t - beta_{t-1}|| < tol max(||beta_t||, 1)
 * (Spark's convergenceTol; tol 0 = 1e-3 for SGD). */
#include <math.h>
#include <string.h>

#include "mllib/linalg/matrix.h"
#include "mllib/linear/linear_int.h"
#include "mllib/optim/optim.h"

typedef struct fit_run {
    em_context *sc;
    const em_ml_data *d;
    const lin_fit_opts *o;
    lin_ctx c;
    uint32_t k, dim;
    size_t nw, nx;       /* k * dim; variables (nw + k with an intercept) */
    double *inv;         /* dim: 1 / s_j, or 0 for a left-out column */
    double *pen;         /* dim: weight of beta_kj^2 in the L2 term (1 or inv^2) */
    double *w, *b, *acc; /* scratch: original-scale w, intercepts, the pass result */
    double l2;           /* reg * (1 - alpha) */
    uint32_t passes;
    double t0;
} fit_run;

/* The feature scales from the columns' means and variances: em_ml_col_stats on dense data,
 * the lighter moments pass of sparse.c on sparse data (same figures to rounding). */
static int scales(fit_run *f, em_err *err)
{
    em_ml_colstats st = {0};
    double *mean, *var;
    int rc;
    if (f->d->sparse) {
        mean = em_calloc(2 * (size_t)f->dim, sizeof(double));
        if (!mean)
            return em_err_set(err, EM_ENOMEM, "%s: out of memory", f->o->what);
        var = mean + f->dim;
        rc = em__lin_sparse_moments(f->d, mean, var, err);
    } else {
        rc = em_ml_col_stats(f->d, &st, err);
        mean = st.mean;
        var = st.variance;
    }
    for (uint32_t j = 0; rc == 0 && j < f->dim; j++) {
        double s = sqrt(var[j] > 0 ? var[j] : 0);
        if (s > 0)
            f->inv[j] = 1 / s;
        else
            f->inv[j] = !f->o->intercept && mean[j] != 0 ? 1 / fabs(mean[j]) : 0;
        f->pen[j] = f->o->standardize ? 1 : f->inv[j] * f->inv[j];
    }
    if (f->d->sparse)
        em_free(mean);
    else
        em_ml_colstats_destroy(&st);
    return rc;
}

/* One pass at the variables x (beta, then intercepts): the raw sums into f->acc. */
static int pass(fit_run *f, const double *x, em_err *err)
{
    for (uint32_t r = 0; r < f->k; r++)
        for (uint32_t j = 0; j < f->dim; j++)
            f->w[(size_t)r * f->dim + j] = x[(size_t)r * f->dim + j] * f->inv[j];
    for (uint32_t r = 0; r < f->k; r++)
        f->b[r] = f->o->intercept ? x[f->nw + r] : 0;
    f->passes++;
    int rc = em__lin_pass(f->sc, f->d, &f->c, f->w, f->b, f->acc, err);
    if (rc == 0 && f->acc[1] <= 0 && !f->c.sampling)   /* an empty mini-batch is no error */
        rc = em_err_set(err, EM_EINVAL, "%s: no training row", f->o->what);
    return rc;
}

/* The smooth objective (loss mean + L2 term) and its gradient in x. */
static int objective(void *ud, const double *x, double *fx, double *g, em_err *err)
{
    fit_run *f = ud;
    int rc = pass(f, x, err);
    if (rc < 0)
        return rc;
    double n = f->acc[1], pen = 0;
    const double *G = f->acc + LIN_ACC_HEAD;
    for (size_t i = 0; i < f->nw; i++) {
        uint32_t j = (uint32_t)(i % f->dim);
        pen += f->pen[j] * x[i] * x[i];
        g[i] = G[i] * f->inv[j] / n + f->l2 * f->pen[j] * x[i];
    }
    if (f->o->intercept)
        for (uint32_t r = 0; r < f->k; r++)
            g[f->nw + r] = G[f->nw + r] / n;
    *fx = f->acc[0] / n + 0.5 * f->l2 * pen;
    return 0;
}

static void on_iter(void *ud, uint32_t it, double fx, double gnorm)
{
    fit_run *f = ud;
    (void)gnorm;
    if (f->o->progress)
        f->o->progress(f->o->progress_ud, it, fx, em_now_s() - f->t0);
}

static int run_qn(fit_run *f, double *x, lin_fit_out *out, em_err *err)
{
    double *l1 = NULL, l1c = f->o->reg * f->o->alpha;
    if (l1c > 0) {
        l1 = em_xcalloc(f->nx, sizeof(double));
        for (size_t i = 0; i < f->nw; i++) {
            uint32_t j = (uint32_t)(i % f->dim);
            l1[i] = f->o->standardize ? l1c : l1c * f->inv[j];
        }
    }
    em_optim_opts oo = {.max_iter = f->o->max_iter, .history = f->o->history,
                        .tol = f->o->tol, .grel = f->o->grad_tol, .l1 = l1,
                        .progress = on_iter, .progress_ud = f};
    em_optim_result res;
    int rc = em_optim_minimize((uint32_t)f->nx, x, objective, f, &oo, &res, err);
    em_free(l1);
    if (rc < 0)
        return rc;
    out->iterations = res.iterations;
    out->loss = res.f;
    out->converged = res.converged;
    out->reason = res.reason;
    for (uint32_t i = 0; i <= res.iterations; i++)
        json_array_append_new(out->history, json_real(res.history[i]));
    em_optim_result_destroy(&res);
    return 0;
}

/* One SGD update of x from the pass in f->acc; returns ||x_new - x_old||^2. */
static double sgd_update(fit_run *f, double *x, double a)
{
    double n = f->acc[1], moved = 0, l1 = a * f->o->reg * f->o->alpha;
    const double *G = f->acc + LIN_ACC_HEAD;
    if (n <= 0)
        return 0;   /* an empty mini-batch: no step (Spark logs and skips it too) */
    for (size_t i = 0; i < f->nx; i++) {
        bool coef = i < f->nw;
        uint32_t j = coef ? (uint32_t)(i % f->dim) : 0;
        double g = coef ? G[i] * f->inv[j] / n : G[i] / n;
        double v = coef ? x[i] * (1 - a * f->l2 * f->pen[j]) - a * g : x[i] - a * g;
        if (coef && l1 > 0) {
            double t = l1 * (f->o->standardize ? 1 : f->inv[j]);
            v = fabs(v) > t ? copysign(fabs(v) - t, v) : 0;
        }
        moved += (v - x[i]) * (v - x[i]);
        x[i] = v;
    }
    return moved;
}

static int run_sgd(fit_run *f, double *x, lin_fit_out *out, em_err *err)
{
    uint32_t maxit = f->o->max_iter ? f->o->max_iter : 100;
    double step = f->o->step > 0 ? f->o->step : 1, tol = f->o->tol > 0 ? f->o->tol : 1e-3;
    f->c.sampling = f->o->fraction > 0 && f->o->fraction < 1;
    f->c.fraction = f->c.sampling ? f->o->fraction : 1;
    f->c.seed = f->o->seed;
    out->reason = "max_iter";
    for (uint32_t it = 1; it <= maxit; it++) {
        f->c.iter = it;
        int rc = pass(f, x, err);
        if (rc < 0)
            return rc;
        double n = f->acc[1], pen = 0;
        for (size_t i = 0; i < f->nw; i++)
            pen += f->pen[i % f->dim] * x[i] * x[i];
        double fx = n > 0 ? f->acc[0] / n + 0.5 * f->l2 * pen : NAN;
        double moved = sqrt(sgd_update(f, x, step / sqrt((double)it))), xn = 0;
        for (size_t i = 0; i < f->nx; i++)
            xn += x[i] * x[i];
        out->iterations = it;
        out->loss = fx;
        json_array_append_new(out->history, n > 0 ? json_real(fx) : json_null());
        on_iter(f, it, fx, 0);
        if (n > 0 && moved < tol * fmax(sqrt(xn), 1)) {
            out->converged = true;
            out->reason = "tol";
            break;
        }
    }
    return 0;
}

static int check(const em_ml_data *d, const lin_fit_opts *o, em_err *err)
{
    if (!d || !d->rows || !d->labeled)
        return em_err_set(err, EM_EINVAL, "%s: needs labeled data", o->what);
    if (d->dim == 0)
        return em_err_set(err, EM_EINVAL, "%s: rows have no feature", o->what);
    if (o->k == 0 || o->k > EM__LIN_MAX_CLASSES || (uint64_t)o->k * d->dim > (1u << 28))
        return em_err_set(err, EM_EINVAL, "%s: %u x %u coefficients is too many", o->what,
                          o->k, d->dim);
    if (!(o->reg >= 0) || !isfinite(o->reg) || !(o->alpha >= 0 && o->alpha <= 1))
        return em_err_set(err, EM_EINVAL, "%s: regParam %g, elasticNetParam %g (want >= 0 "
                          "and [0, 1])", o->what, o->reg, o->alpha);
    return 0;
}

int em__lin_fit(em_context *sc, const em_ml_data *d, const lin_fit_opts *o,
                em_linear_model *m, lin_fit_out *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = em_linear_register();
    if (rc < 0)
        return em_err_set(err, rc, "%s: a task function name is taken", o->what);
    if ((rc = check(d, o, err)) < 0)
        return rc;
    fit_run f = {.sc = sc, .d = d, .o = o, .k = o->k, .dim = d->dim, .t0 = em_now_s()};
    f.nw = (size_t)f.k * f.dim;
    f.nx = f.nw + (o->intercept ? f.k : 0);
    f.l2 = o->reg * (1 - o->alpha);
    f.c = (lin_ctx){.loss = o->loss, .sparse = d->sparse, .intercept = o->intercept,
                    .dim = f.dim, .k = f.k, .fraction = 1};
    double *mem = em_calloc(2 * (size_t)f.dim + 2 * f.nw + 2 * (size_t)f.k + LIN_ACC_HEAD +
                                f.nx, sizeof(double));
    if (!mem)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory for %zu coefficients", o->what,
                          f.nw);
    f.inv = mem;
    f.pen = f.inv + f.dim;
    f.w = f.pen + f.dim;
    f.b = f.w + f.nw;
    f.acc = f.b + f.k;
    double *x = f.acc + LIN_ACC_HEAD + f.nw + f.k;
    if (o->intercept && o->init_b)
        memcpy(x + f.nw, o->init_b, sizeof(double) * f.k);
    out->history = json_array();
    if ((rc = scales(&f, err)) == 0)
        rc = o->sgd ? run_sgd(&f, x, out, err) : run_qn(&f, x, out, err);
    out->passes = f.passes;
    if (rc == 0) {
        for (size_t i = 0; i < f.nw; i++)
            m->coef[i] = x[i] * f.inv[i % f.dim];
        for (uint32_t r = 0; r < f.k; r++)
            m->intercept[r] = o->intercept ? x[f.nw + r] : 0;
    } else {
        json_decref(out->history);
        out->history = NULL;
    }
    em_free(mem);
    return rc;
}

json_t *em__lin_fit_summary(const lin_fit_out *f)
{
    return json_pack("{s:I, s:I, s:f, s:b, s:s, s:O}", "iterations", (json_int_t)f->iterations,
                     "passes", (json_int_t)f->passes, "objective",
                     isfinite(f->loss) ? f->loss : 0.0, "converged", f->converged, "reason",
                     f->reason ? f->reason : "", "objective_history",
                     f->history ? f->history : json_null());
}
