/* mllib/optim/optim.h - driver-side quasi-Newton minimizers for MLlib's models: L-BFGS
 * (smooth objectives) and OWL-QN (smooth + a weighted L1 term), as Breeze's LBFGS / OWLQN
 * under Spark's LogisticRegression and LinearRegression.
 *
 * MODEL: the caller gives an objective callback that returns f(x) and its gradient; in
 * MLlib the callback runs one engine pass (a tree_aggregate of per-partition losses and
 * gradients), so every evaluation is a distributed job and the minimizer is written to
 * need few of them: a strong-Wolfe line search that accepts the unit step almost always
 * after the first iteration, and no evaluation that is not used.
 *   L-BFGS: Nocedal & Wright, "Numerical Optimization" (2nd ed.), alg. 7.4 (two-loop
 *   recursion, H0 = s'y / y'y), alg. 3.5/3.6 (strong-Wolfe bracketing and zoom with cubic
 *   interpolation; c1 = 1e-4, c2 = 0.9).
 *   OWL-QN: Andrew & Gao, "Scalable Training of L1-Regularized Log-Linear Models", ICML
 *   2007: the pseudo-gradient of f + sum l1_i |x_i|, the direction constrained to the
 *   orthant of -pseudo-gradient, a backtracking line search whose points are projected
 *   onto the orthant of the current point, and s, y pairs from the smooth part only.
 * CONVERGENCE (first of): the relative decrease of the objective over one iteration
 * |f_prev - f| / max(|f|, |f_prev|, 1e-12) <= tol (Spark's convergenceTol, default 1e-6);
 * ||pseudo-gradient||_inf <= gtol; optionally (grel > 0) the gradient norm reduced by
 * the factor grel from the start's, the rule liblinear stops on (its eps, scaled by
 * min(#pos, #neg) / n for logistic regression); max_iter iterations; or a line search that finds no
 * decrease (at a minimum to rounding: reported converged when the gradient is already
 * small, else as "line search failed", not an error, since x is still the best point).
 * THREADS: one thread per call (the callback runs on it); no shared state. */
#ifndef EMBER_MLLIB_OPTIM_H
#define EMBER_MLLIB_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/base/base.h"

/* The objective: *f = f(x) and g (n) = grad f(x), for the SMOOTH part only (the L1 term of
 * OWL-QN is added by the minimizer). x is borrowed for the call. Return 0 or a negative
 * EM_E* with err set: the minimizer stops and returns it. */
typedef int (*em_optim_fn)(void *ud, const double *x, double *f, double *g, em_err *err);

typedef struct em_optim_opts {
    uint32_t max_iter;        /* iterations (0 = 100) */
    uint32_t history;         /* m, pairs kept (0 = 10) */
    double tol;               /* relative objective decrease (0 = 1e-6; < 0: not used) */
    double gtol;              /* ||pseudo-gradient||_inf (0 = 1e-10; < 0: not used) */
    double grel;              /* ||pseudo-gradient||_2 <= grel ||pseudo-gradient(x0)||_2
                                 (liblinear's rule; 0 = not used) */
    const double *l1;         /* NULL: L-BFGS. Else n weights >= 0: OWL-QN minimizes
                                 f(x) + sum_i l1[i] |x_i| (a 0 weight leaves x_i free) */
    /* Optional: called after every iteration with the objective and ||pg||_inf. */
    void (*progress)(void *ud, uint32_t iter, double f, double gnorm);
    void *progress_ud;
} em_optim_opts;                   /* zero = defaults */

typedef struct em_optim_result {
    uint32_t iterations;      /* accepted steps */
    uint32_t evaluations;     /* calls of the objective */
    double f;                 /* objective at the returned x (L1 term included) */
    double gnorm;             /* ||pseudo-gradient||_inf there */
    bool converged;           /* tol or gtol met (else max_iter or a failed search) */
    const char *reason;       /* static text: "tol", "gtol", "grel", "max_iter",
                                 "line search" */
    double *history;          /* iterations + 1 objective values, f(x0) first (em_malloc;
                                 em_optim_result_destroy frees it) */
} em_optim_result;
void em_optim_result_destroy(em_optim_result *r);   /* NULL ok; zeroes it */

/* Minimizes from x (n values, updated in place to the best point found). 0, or the
 * callback's error, or EM_EINVAL for n = 0 / a negative or NaN l1 weight / a non-finite
 * objective at x0, or EM_ENOMEM. res is filled whenever 0 is returned. */
int em_optim_minimize(uint32_t n, double *x, em_optim_fn fn, void *ud,
                      const em_optim_opts *o, em_optim_result *res, em_err *err);

#endif /* EMBER_MLLIB_OPTIM_H */
