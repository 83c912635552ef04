/* tests/unit/linear/test_linreg.c - linear regression (mllib/linear/glm.h) against closed
 * forms the test computes itself: ordinary least squares by the normal equations of [1 X]
 * (dense and sparse rows, with and without an intercept), ridge by its centred closed form,
 * lasso and elastic net by the KKT conditions of their objective, standardization by the
 * rescaled problem; the L-BFGS solver against the normal solver; bad parameters. */
#include "glm_util.h"

#define N 600
#define D 6

/* y = 0.7 + x.b + noise, b_j = (j + 1) / 4 with alternating signs. */
static double *make_labels(const double *x, size_t n, size_t d, uint64_t seed)
{
    em_rng g;
    em_rng_seed(&g, seed);
    double *y = em_xmalloc(8 * n);
    for (size_t i = 0; i < n; i++) {
        double v = 0.7 + 0.5 * em_rng_gaussian(&g);
        for (size_t j = 0; j < d; j++)
            v += (j % 2 ? -1.0 : 1.0) * (double)(j + 1) / 4 * x[i * d + j];
        y[i] = v;
    }
    return y;
}

/* The centred (intercept) or raw moments: a = X^T X / n, c = X^T y / n, xbar, ybar. */
static void moments(const double *x, const double *y, size_t n, size_t d, bool icpt, double *a,
                    double *c, double *xbar, double *ybar)
{
    *ybar = 0;
    memset(xbar, 0, 8 * d);
    for (size_t i = 0; i < n; i++) {
        *ybar += y[i] / (double)n;
        for (size_t j = 0; j < d; j++)
            xbar[j] += x[i * d + j] / (double)n;
    }
    memset(a, 0, 8 * d * d);
    memset(c, 0, 8 * d);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double xj = x[i * d + j] - (icpt ? xbar[j] : 0);
            c[j] += xj * (y[i] - (icpt ? *ybar : 0)) / (double)n;
            for (size_t l = 0; l < d; l++)
                a[j * d + l] += xj * (x[i * d + l] - (icpt ? xbar[l] : 0)) / (double)n;
        }
}

static em_linear_model *fit(em_context *sc, const em_ml_data *d, const em_linreg_params *p)
{
    em_linear_model *m = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_linreg_train(sc, d, p, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m->kind, EM_LINEAR_REGRESSION);
    return m;
}

/* OLS and ridge: (A + l2 I) b = c, b0 = ybar - xbar.b. */
static void check_closed_form(bool sparse, bool icpt, double l2)
{
    em_context *sc = em_test_ctx_new("local[2]");
    double *x = gt_features(N, D, sparse ? 0.4 : 1, 11), *y = make_labels(x, N, D, 12);
    em_ml_data d = gt_data(sc, x, y, N, D, sparse, 3);
    em_linreg_params p = {.reg_param = l2, .no_intercept = !icpt, .solver = EM_LINREG_NORMAL};
    em_linear_model *m = fit(sc, &d, &p);
    double a[D * D], c[D], xbar[D], ybar, b[D];
    moments(x, y, N, D, icpt, a, c, xbar, &ybar);
    for (int j = 0; j < D; j++)
        a[j * D + j] += l2;
    gt_solve(D, a, c, b);
    double b0 = ybar;
    for (int j = 0; j < D; j++) {
        cr_assert_lt(gt_rel(m->coef[j], b[j]), 1e-10, "coef %d: %.17g vs %.17g", j, m->coef[j],
                     b[j]);
        b0 -= xbar[j] * b[j];
    }
    if (icpt)
        cr_assert_lt(fabs(m->intercept[0] - b0), 1e-10, "intercept %.17g vs %.17g", m->intercept[0],
                     b0);
    else
        cr_assert_eq(m->intercept[0], 0);
    em_linear_model_free(m);
    em_ml_data_release(&d);
    em_free(x);
    em_free(y);
    em_context_free(sc);
}

Test(linreg, ols_dense_normal_equations)
{
    check_closed_form(false, true, 0);
}
Test(linreg, ols_sparse_normal_equations)
{
    check_closed_form(true, true, 0);
}
Test(linreg, ols_no_intercept)
{
    check_closed_form(false, false, 0);
}
Test(linreg, ridge_closed_form)
{
    check_closed_form(false, true, 0.3);
}
Test(linreg, ridge_sparse_no_intercept)
{
    check_closed_form(true, false, 0.05);
}

/* KKT of 1/2 b^T A b - c^T b + lam (alpha s|b| + (1-alpha)/2 s^2 b^2) at m's coefficients:
 * g_j = c_j - (A b)_j - lam (1-alpha) s_j^2 b_j equals lam alpha s_j sign(b_j) where b_j != 0,
 * and |g_j| <= lam alpha s_j where b_j = 0. Returns the number of zero coefficients. */
static int check_kkt(const em_linear_model *m, const double *x, const double *y, double lam,
                     double alpha, bool standardize)
{
    double a[D * D], c[D], xbar[D], ybar, s[D];
    moments(x, y, N, D, true, a, c, xbar, &ybar);
    for (int j = 0; j < D; j++)
        s[j] = standardize ? sqrt(a[j * D + j] * N / (N - 1)) : 1;
    int zeros = 0;
    for (int j = 0; j < D; j++) {
        double g = c[j] - lam * (1 - alpha) * s[j] * s[j] * m->coef[j];
        for (int l = 0; l < D; l++)
            g -= a[j * D + l] * m->coef[l];
        double bound = lam * alpha * s[j];
        if (m->coef[j] == 0) {
            zeros++;
            cr_assert_leq(fabs(g), bound + 1e-9, "KKT at zero coef %d: |%g| > %g", j, g, bound);
        } else {
            cr_assert_lt(fabs(g - bound * (m->coef[j] > 0 ? 1 : -1)), 1e-8,
                         "KKT at coef %d = %g: gradient %.12g vs %.12g", j, m->coef[j], g, bound);
        }
    }
    double b0 = ybar;
    for (int j = 0; j < D; j++)
        b0 -= xbar[j] * m->coef[j];
    cr_assert_lt(fabs(m->intercept[0] - b0), 1e-10);
    return zeros;
}

Test(linreg, lasso_and_elastic_net_kkt)
{
    em_context *sc = em_test_ctx_new("local[2]");
    double *x = gt_features(N, D, 1, 21), *y = make_labels(x, N, D, 22);
    em_ml_data d = gt_data(sc, x, y, N, D, false, 4);
    /* lambda 0.6 zeroes the small coefficients (|b_j| = 0.25, 0.5), keeps the others */
    static const struct {
        double lam, alpha;
        bool std;
    } cases[] = {{0.6, 1, false}, {0.3, 0.5, false}, {0.4, 1, true}, {0.05, 0.9, true}};
    int zeros_lasso = 0;
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        em_linreg_params p = {
            .reg_param = cases[t].lam, .elastic_net = cases[t].alpha, .standardize = cases[t].std};
        em_linear_model *m = fit(sc, &d, &p);
        int z = check_kkt(m, x, y, cases[t].lam, cases[t].alpha, cases[t].std);
        if (t == 0)
            zeros_lasso = z;
        em_linear_model_free(m);
    }
    cr_assert_geq(zeros_lasso, 1, "lasso at lambda 0.6 keeps every coefficient");
    cr_assert_leq(zeros_lasso, D - 1);
    em_ml_data_release(&d);
    em_free(x);
    em_free(y);
    em_context_free(sc);
}

/* Standardized ridge = ridge on X / s with the coefficients divided by s. */
Test(linreg, standardized_ridge)
{
    em_context *sc = em_test_ctx_new("local[2]");
    double *x = gt_features(N, D, 1, 31), *y = make_labels(x, N, D, 32);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < D; j++)
            x[i * D + j] *= (double)(j + 1); /* columns of different scales */
    em_ml_data d = gt_data(sc, x, y, N, D, false, 2);
    em_linreg_params p = {.reg_param = 0.2, .standardize = true};
    em_linear_model *m = fit(sc, &d, &p);
    double a[D * D], c[D], xbar[D], ybar, b[D], s[D];
    moments(x, y, N, D, true, a, c, xbar, &ybar);
    for (int j = 0; j < D; j++)
        s[j] = sqrt(a[j * D + j] * N / (N - 1));
    for (int j = 0; j < D; j++)
        a[j * D + j] += 0.2 * s[j] * s[j];
    gt_solve(D, a, c, b);
    for (int j = 0; j < D; j++)
        cr_assert_lt(gt_rel(m->coef[j], b[j]), 1e-10);
    em_linear_model_free(m);
    em_ml_data_release(&d);
    em_free(x);
    em_free(y);
    em_context_free(sc);
}

/* The L-BFGS and OWL-QN solvers reach the normal solver's minimum. */
Test(linreg, lbfgs_matches_normal)
{
    em_context *sc = em_test_ctx_new("local[2]");
    double *x = gt_features(N, D, 1, 41), *y = make_labels(x, N, D, 42);
    em_ml_data d = gt_data(sc, x, y, N, D, false, 3);
    static const double alphas[] = {0, 1};
    for (int t = 0; t < 2; t++) {
        em_linreg_params p = {
            .reg_param = 0.1, .elastic_net = alphas[t], .solver = EM_LINREG_NORMAL};
        em_linear_model *a = fit(sc, &d, &p);
        p.solver = EM_LINREG_LBFGS;
        p.tol = 1e-12;
        p.max_iter = 500;
        em_linear_model *b = fit(sc, &d, &p);
        for (int j = 0; j < D; j++)
            cr_assert_lt(fabs(a->coef[j] - b->coef[j]), 1e-5, "alpha %g coef %d: %g vs %g",
                         alphas[t], j, a->coef[j], b->coef[j]);
        cr_assert_lt(fabs(a->intercept[0] - b->intercept[0]), 1e-5);
        em_linear_model_free(a);
        em_linear_model_free(b);
    }
    em_ml_data_release(&d);
    em_free(x);
    em_free(y);
    em_context_free(sc);
}

/* A constant feature gets 0 (it cannot be told from the intercept); collinear features
 * without a penalty are an error naming the cause. */
Test(linreg, constant_and_collinear_features)
{
    em_context *sc = em_test_ctx_new("local[2]");
    double *x = gt_features(N, D, 1, 51), *y = make_labels(x, N, D, 52);
    for (size_t i = 0; i < N; i++)
        x[i * D + 2] = 3.5;
    em_ml_data d = gt_data(sc, x, y, N, D, false, 2);
    em_linreg_params p = {0};
    em_linear_model *m = fit(sc, &d, &p);
    cr_assert_eq(m->coef[2], 0);
    em_linear_model_free(m);
    em_ml_data_release(&d);
    /* an all-zero column (a LIBSVM feature never seen), no intercept, lasso: 0, not NaN */
    for (size_t i = 0; i < N; i++)
        x[i * D + 2] = 0;
    d = gt_data(sc, x, y, N, D, true, 2);
    em_linreg_params pz = {.reg_param = 0.01, .elastic_net = 1, .no_intercept = true};
    m = fit(sc, &d, &pz);
    cr_assert_eq(m->coef[2], 0);
    for (int j = 0; j < D; j++)
        cr_assert(isfinite(m->coef[j]));
    em_linear_model_free(m);
    pz.elastic_net = 0;
    pz.reg_param = 0;
    m = fit(sc, &d, &pz);
    cr_assert_eq(m->coef[2], 0);
    em_linear_model_free(m);
    em_ml_data_release(&d);
    for (size_t i = 0; i < N; i++)
        x[i * D + 2] = 2 * x[i * D + 1];
    d = gt_data(sc, x, y, N, D, false, 2);
    em_err err = EM_ERR_INIT;
    cr_assert_lt(em_linreg_train(sc, &d, &p, &m, &err), 0);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, "singular"), "%s", err.msg);
    p.reg_param = 0.01; /* ridge makes it solvable: the fit depends on b1 + 2 b2 only, and
                           the smallest ||b|| for it has b2 = 2 b1 */
    m = fit(sc, &d, &p);
    cr_assert_lt(fabs(m->coef[2] - 2 * m->coef[1]), 1e-9, "%g vs 2 x %g", m->coef[2], m->coef[1]);
    em_linear_model_free(m);
    p = (em_linreg_params){.reg_param = -1};
    cr_assert_eq(em_linreg_train(sc, &d, &p, &m, &err), EM_EINVAL);
    p = (em_linreg_params){.elastic_net = 1.5};
    cr_assert_eq(em_linreg_train(sc, &d, &p, &m, &err), EM_EINVAL);
    em_ml_data_release(&d);
    em_free(x);
    em_free(y);
    em_context_free(sc);
}
