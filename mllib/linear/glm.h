/* mllib/linear/glm.h - linear regression (least squares with ridge, lasso and elastic net)
 * and generalized linear models (gaussian, binomial, poisson, gamma) on the engine, as
 * Spark's LinearRegression and GeneralizedLinearRegression, R's glm and statsmodels' GLM.
 * Both return an em_linear_model (mllib/linear/linear.h): kind REGRESSION or GLM.
 *
 * LINEAR REGRESSION minimizes (glmnet's and scikit-learn's Lasso/ElasticNet objective)
 *     1/(2n) ||y - b0 - X b||^2 + lambda (alpha sum_j s_j |b_j| + (1-alpha)/2 sum_j s_j^2 b_j^2)
 * with lambda = reg_param, alpha = elastic_net, the intercept b0 not penalized, and s_j = 1,
 * or, with standardize, the (unbiased) standard deviation of column j: the penalty then
 * falls on the coefficients of the standardized features, as Spark's, while the returned
 * coefficients are on the original scale. Solvers:
 *   NORMAL   one pass computing n, the column sums of [y X] and the Gramian [y X]^T [y X]
 *            (SYRK per dense batch, summed by tree_aggregate_acc), then on the driver:
 *            alpha = 0 (or lambda = 0) a Cholesky solve of the centred normal equations;
 *            alpha > 0 cyclic coordinate descent on the Gramian (glmnet's covariance
 *            updates; Friedman, Hastie & Tibshirani 2010) until no coefficient moves by more
 *            than tol (relative to the largest). dim <= 65536 (memory: 8 (d+1)^2 bytes).
 *   LBFGS    gradient passes on the engine (mllib/optim's L-BFGS; OWL-QN when alpha > 0).
 *   AUTO     NORMAL when dim <= 4096, else LBFGS.
 * GLM is fitted by IRLS: each iteration is ONE pass over the data computing, at the current
 * coefficients, the weighted Gramian [1 X z]^T W [1 X z] (so X^T W X and X^T W z), the
 * deviance, the Pearson statistic and the log-likelihood terms; the driver then solves
 * (X^T W X + n lambda I') b = X^T W z (I' = identity except the intercept) by Cholesky.
 * Convergence as R's glm.fit: |dev - dev_old| / (|dev| + 0.1) < tol (1e-8), and also the
 * last step moved no coefficient by more than sqrt(tol) max(1, ||b||_inf); at most
 * max_iter (25) iterations; the first pass starts from R's mustart (gaussian y, binomial
 * (y + 1/2)/2, poisson y + 1/10, gamma y). The returned coefficients are those at which the
 * last pass was made, so their deviance, dispersion and standard errors
 * (sqrt diag(dispersion (X^T W X + n lambda I')^-1)) belong to them exactly.
 * Dispersion: 1 for binomial and poisson, Pearson chi^2 / (n - p) for gaussian and gamma.
 * AIC as statsmodels: -2 llf + 2 p (p = coefficients with the intercept; llf per family,
 * gaussian with the ML scale deviance / n, gamma with the Pearson dispersion); docs/mllib-glm.md.
 * SUMMARY (the model's summary JSON): linreg "solver", "iterations", "objective";
 * glm "family", "link", "iterations", "converged", "deviance", "null_deviance",
 * "dispersion", "aic", "llf", "df_residual", "std_errors" (intercept first when fitted).
 * THREADS: the driver thread of the data's context. */
#ifndef EMBER_MLLIB_LINEAR_GLM_H
#define EMBER_MLLIB_LINEAR_GLM_H

#include <stdio.h>

#include "mllib/linear/linear.h"

typedef enum em_linreg_solver {
    EM_LINREG_AUTO = 0,
    EM_LINREG_NORMAL = 1,
    EM_LINREG_LBFGS = 2,
} em_linreg_solver;

typedef struct em_linreg_params { /* zero = defaults */
    double reg_param;             /* lambda >= 0 */
    double elastic_net;           /* alpha in [0, 1]: 0 ridge, 1 lasso */
    em_linreg_solver solver;
    bool no_intercept; /* fit through the origin */
    bool standardize;  /* penalize standardized coefficients */
    uint32_t max_iter; /* 0 = 100 (L-BFGS iterations, CD sweeps x 10) */
    double tol;        /* 0 = 1e-6 (L-BFGS) / 1e-10 (coordinate descent) */
} em_linreg_params;

/* Fits d (labeled, dense or sparse; its rows belong to sc) into *out (new model, kind
 * REGRESSION). */
int em_linreg_train(em_context *sc, const em_ml_data *d, const em_linreg_params *p,
                    em_linear_model **out, em_err *err);

typedef struct em_glm_params { /* zero = defaults, except family */
    em_glm_family family;      /* required */
    em_glm_link link;          /* 0 = the canonical link */
    double reg_param;          /* L2 lambda >= 0 (penalty n lambda/2 ||b||^2 on the
                                  deviance/2 scale; intercept not penalized) */
    bool no_intercept;
    uint32_t max_iter; /* 0 = 25 */
    double tol;        /* 0 = 1e-8 (relative deviance change) */
} em_glm_params;

/* EM_EINVAL when link is not one this family takes (docs/mllib-glm.md lists them), or a
 * label is outside the family's range (binomial [0, 1], poisson >= 0, gamma > 0). */
int em_glm_train(em_context *sc, const em_ml_data *d, const em_glm_params *p, em_linear_model **out,
                 em_err *err);

/* Names: "gaussian", "binomial", "poisson", "gamma"; "identity", "log", "logit",
 * "inverse". Static strings; NULL for an unknown value. */
const char *em_glm_family_name(em_glm_family f);
const char *em_glm_link_name(em_glm_link l);
em_glm_link em_glm_canonical_link(em_glm_family f);
/* Whether family f takes link l. */
bool em_glm_link_ok(em_glm_family f, em_glm_link l);

/* Registers the "ml.glm.*" task functions (idempotent; fitting calls it). */
int em_glm_register(void);

/* `ember ml linreg` and `ember ml glm` (mllib/ml_cli.c's table): argv[0] = the algorithm. */
int em_linreg_cli_main(int argc, char **argv);
void em_linreg_cli_help(FILE *f);
int em_glm_cli_main(int argc, char **argv);
void em_glm_cli_help(FILE *f);

/* `ember gen regression` (argv[0] = "regression"): rows x = N(0,1)^D, y drawn from the
 * family with mean inverse-link(b0 + x.b) for fixed coefficients; see docs/mllib-glm.md.
 * Exit status 0 ok, 1 failure, 2 bad usage. */
int em_gen_regression_cli_main(int argc, char **argv);
void em_gen_regression_cli_help(FILE *f);

#endif /* EMBER_MLLIB_LINEAR_GLM_H */
