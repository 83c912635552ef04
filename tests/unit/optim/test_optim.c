/* tests/unit/optim/test_optim.c - the driver-side minimizers: L-BFGS reaches the minimum of
 * Rosenbrock's function and of an ill-conditioned quadratic with few evaluations; OWL-QN
 * reaches the soft-threshold solution of separable L1 problems and a lasso solved by
 * coordinate descent; bad arguments and callback errors come back as errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "mllib/optim/optim.h"

static int rosen(void *ud, const double *x, double *f, double *g, em_err *err)
{
    (void)ud;
    (void)err;
    double a = 1 - x[0], b = x[1] - x[0] * x[0];
    *f = a * a + 100 * b * b;
    g[0] = -2 * a - 400 * x[0] * b;
    g[1] = 200 * b;
    return 0;
}

Test(optim, rosenbrock)
{
    double x[2] = {-1.2, 1};
    em_optim_result r;
    em_err err = EM_ERR_INIT;
    em_optim_opts o = {.max_iter = 200, .tol = 1e-15, .gtol = 1e-9};
    cr_assert_eq(em_optim_minimize(2, x, rosen, NULL, &o, &r, &err), 0, "%s", err.msg);
    cr_assert(fabs(x[0] - 1) < 1e-6 && fabs(x[1] - 1) < 1e-6, "x = %g %g (%s, %u it)", x[0],
              x[1], r.reason, r.iterations);
    cr_assert(r.evaluations < 200, "%u evaluations", r.evaluations);
    cr_assert(r.history[0] > r.history[r.iterations]);
    em_optim_result_destroy(&r);
}

/* f = 1/2 sum a_i (x_i - c_i)^2 + a coupling term sum_i (x_i - x_{i+1})^2 / 4 */
typedef struct quad {
    int n;
    const double *a, *c;
    double coupling;
} quad;

static int quad_fn(void *ud, const double *x, double *f, double *g, em_err *err)
{
    const quad *q = ud;
    (void)err;
    *f = 0;
    for (int i = 0; i < q->n; i++) {
        double t = x[i] - q->c[i];
        *f += 0.5 * q->a[i] * t * t;
        g[i] = q->a[i] * t;
    }
    for (int i = 0; i + 1 < q->n; i++) {
        double t = x[i] - x[i + 1];
        *f += q->coupling * t * t / 4;
        g[i] += q->coupling * t / 2;
        g[i + 1] -= q->coupling * t / 2;
    }
    return 0;
}

Test(optim, ill_conditioned_quadratic)
{
    enum { N = 50 };
    double a[N], c[N], x[N];
    for (int i = 0; i < N; i++) {
        a[i] = pow(10, 4.0 * i / (N - 1));   /* condition number 1e4 */
        c[i] = sin(i + 1.0);
    }
    quad q = {N, a, c, 0};
    /* scipy's L-BFGS-B needs 578 (m = 50) and 1061 (m = 10) iterations here */
    uint32_t hist[2] = {N, 10}, maxit[2] = {3000, 5000};
    for (int t = 0; t < 2; t++) {
        em_optim_result r;
        em_err err = EM_ERR_INIT;
        em_optim_opts o = {.max_iter = maxit[t], .history = hist[t], .tol = -1, .gtol = 1e-9};
        memset(x, 0, sizeof x);
        cr_assert_eq(em_optim_minimize(N, x, quad_fn, &q, &o, &r, &err), 0, "%s", err.msg);
        for (int i = 0; i < N; i++)
            cr_assert(fabs(x[i] - c[i]) < 1e-8, "m %u: x[%d] = %.12g, want %.12g (%s after %u)",
                      hist[t], i, x[i], c[i], r.reason, r.iterations);
        cr_assert(r.converged);
        cr_assert(r.evaluations < 1.3 * r.iterations + 20, "%u evaluations for %u iterations",
                  r.evaluations, r.iterations);
        em_optim_result_destroy(&r);
    }
}

/* grel stops once ||g||_2 <= grel ||g(x0)||_2, and not before: the same run with a
 * tighter grel goes further, and the point it stops at meets the bound. */
Test(optim, relative_gradient_rule)
{
    enum { N = 30 };
    double a[N], c[N], x[N], g[N], g0[N], f;
    for (int i = 0; i < N; i++) {
        a[i] = pow(10, 3.0 * i / (N - 1));
        c[i] = cos(i + 0.5);
    }
    quad q = {N, a, c, 0.5};
    em_err err = EM_ERR_INIT;
    memset(x, 0, sizeof x);
    quad_fn(&q, x, &f, g0, &err);
    double n0 = 0;
    for (int i = 0; i < N; i++)
        n0 += g0[i] * g0[i];
    uint32_t its[2];
    const double grel[2] = {1e-2, 1e-5};
    for (int t = 0; t < 2; t++) {
        em_optim_result r;
        em_optim_opts o = {.max_iter = 1000, .tol = -1, .gtol = -1, .grel = grel[t]};
        memset(x, 0, sizeof x);
        cr_assert_eq(em_optim_minimize(N, x, quad_fn, &q, &o, &r, &err), 0, "%s", err.msg);
        cr_assert_str_eq(r.reason, "grel");
        cr_assert(r.converged);
        quad_fn(&q, x, &f, g, &err);
        double n = 0;
        for (int i = 0; i < N; i++)
            n += g[i] * g[i];
        cr_assert(sqrt(n) <= grel[t] * sqrt(n0) * (1 + 1e-12), "%g > %g x %g", sqrt(n),
                  grel[t], sqrt(n0));
        its[t] = r.iterations;
        em_optim_result_destroy(&r);
    }
    cr_assert(its[0] < its[1], "%u then %u iterations", its[0], its[1]);
}

Test(optim, owlqn_soft_threshold)
{
    enum { N = 8 };
    double a[N] = {1, 2, 0.5, 4, 1, 3, 1, 10}, c[N] = {3, -2, 0.1, -0.05, 0, 1.5, -4, 0.2};
    double l1[N] = {1, 1, 1, 1, 1, 1, 0, 1}, x[N] = {0};
    quad q = {N, a, c, 0};
    em_optim_result r;
    em_err err = EM_ERR_INIT;
    em_optim_opts o = {.max_iter = 200, .tol = -1, .gtol = 1e-10, .l1 = l1};
    cr_assert_eq(em_optim_minimize(N, x, quad_fn, &q, &o, &r, &err), 0, "%s", err.msg);
    for (int i = 0; i < N; i++) {
        double t = fabs(c[i]) - l1[i] / a[i];
        double want = t > 0 ? copysign(t, c[i]) : 0;
        cr_assert(fabs(x[i] - want) < 1e-8, "x[%d] = %.12g, want %.12g", i, x[i], want);
        if (want == 0)
            cr_assert_eq(x[i], 0.0, "x[%d] must be exactly 0", i);
    }
    em_optim_result_destroy(&r);
}

/* Coupled lasso: checks OWL-QN's result against coordinate descent on the same problem. */
Test(optim, owlqn_coupled_vs_coordinate_descent)
{
    enum { N = 20 };
    double a[N], c[N], l1[N], x[N] = {0}, z[N] = {0};
    for (int i = 0; i < N; i++) {
        a[i] = 1 + (i % 5);
        c[i] = 2 * cos(1.7 * i);
        l1[i] = 0.8;
    }
    quad q = {N, a, c, 1.0};
    em_optim_result r;
    em_err err = EM_ERR_INIT;
    em_optim_opts o = {.max_iter = 500, .tol = -1, .gtol = 1e-11, .l1 = l1};
    cr_assert_eq(em_optim_minimize(N, x, quad_fn, &q, &o, &r, &err), 0, "%s", err.msg);
    /* coordinate descent: d f / d z_i = a_i (z_i - c_i) + (coupling/2) * sum over the
     * neighbours of (z_i - z_j) */
    for (int sweep = 0; sweep < 20000; sweep++)
        for (int i = 0; i < N; i++) {
            double h = a[i], b = a[i] * c[i];
            if (i > 0) {
                h += 0.5;
                b += 0.5 * z[i - 1];
            }
            if (i + 1 < N) {
                h += 0.5;
                b += 0.5 * z[i + 1];
            }
            double t = fabs(b) - l1[i];
            z[i] = t > 0 ? copysign(t, b) / h : 0;
        }
    for (int i = 0; i < N; i++)
        cr_assert(fabs(x[i] - z[i]) < 1e-7, "x[%d] = %.12g, cd %.12g", i, x[i], z[i]);
    em_optim_result_destroy(&r);
}

static int failing(void *ud, const double *x, double *f, double *g, em_err *err)
{
    int *calls = ud;
    if (++*calls == 3)
        return em_err_set(err, EM_EIO, "pass %d failed", *calls);
    return rosen(NULL, x, f, g, err);
}

Test(optim, errors)
{
    double x[2] = {-1.2, 1}, l1[2] = {1, -1};
    em_optim_result r;
    em_err err = EM_ERR_INIT;
    int calls = 0;
    cr_assert_eq(em_optim_minimize(2, x, failing, &calls, NULL, &r, &err), EM_EIO);
    cr_assert(strstr(err.msg, "pass 3 failed"));
    cr_assert_null(r.history);
    em_optim_opts o = {.l1 = l1};
    cr_assert_eq(em_optim_minimize(2, x, rosen, NULL, &o, &r, &err), EM_EINVAL);
    cr_assert_eq(em_optim_minimize(0, x, rosen, NULL, NULL, &r, &err), EM_EINVAL);
}
