/* mllib/linear/linear.h - generalized linear models on the engine: logistic regression
 * (binary and multinomial), linear SVM, linear regression (least squares, ridge, lasso,
 * elastic net) and GLMs (gaussian, binomial, poisson, gamma), as Spark MLlib's.
 *
 * ONE MODEL TYPE: every fitted linear model is an em_linear_model: coefficient rows on the
 * ORIGINAL feature scale (standardization, when used in training, is undone before the
 * model is returned), an intercept per row, and what kind of model it is, which decides
 * how a margin becomes a prediction:
 *   LOGISTIC      1 row; score = P(y=1) = sigmoid(margin); class = score > threshold
 *   MULTINOMIAL   K rows; class = argmax margin; probabilities = softmax(margins)
 *   SVM           1 row; score = margin; class = margin > threshold (default 0)
 *   REGRESSION    1 row; prediction = margin
 *   GLM           1 row; prediction = mean = inverse link(margin)
 * DATA: any labeled em_ml_data (mllib/linalg/rows.h), dense or sparse. Binary labels are 0/1
 * (SVM included, as Spark); multinomial labels are 0..K-1.
 * SAVE/LOAD: mllib/linalg/model_dir.h, class "ember.LinearModel": metadata (kind, dim,
 * rows, threshold, family, link, summary) + arrays "coef" (rows x dim) and "intercept".
 * THREADS: fitting on the driver thread of the data's context; a model is immutable after
 * fitting and readable from any thread. */
#ifndef EMBER_MLLIB_LINEAR_LINEAR_H
#define EMBER_MLLIB_LINEAR_LINEAR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mllib/linalg/rows.h"

typedef enum em_linear_kind {
    EM_LINEAR_LOGISTIC = 1,
    EM_LINEAR_MULTINOMIAL = 2,
    EM_LINEAR_SVM = 3,
    EM_LINEAR_REGRESSION = 4,
    EM_LINEAR_GLM = 5,
} em_linear_kind;

typedef enum em_glm_family {
    EM_GLM_GAUSSIAN = 1,
    EM_GLM_BINOMIAL = 2,
    EM_GLM_POISSON = 3,
    EM_GLM_GAMMA = 4,
} em_glm_family;

typedef enum em_glm_link {
    EM_GLM_IDENTITY = 1,
    EM_GLM_LOG = 2,
    EM_GLM_LOGIT = 3,
    EM_GLM_INVERSE = 4,
} em_glm_link;

typedef struct em_linear_model {
    em_linear_kind kind;
    uint32_t dim;            /* features */
    uint32_t rows;           /* coefficient rows: K for MULTINOMIAL, else 1 */
    double *coef;            /* rows x dim, row-major (em_malloc) */
    double *intercept;       /* rows (0 when fitted without an intercept) */
    double threshold;        /* LOGISTIC (probability, default 0.5), SVM (margin, 0) */
    em_glm_family family;    /* GLM only */
    em_glm_link link;        /* GLM only */
    json_t *summary;         /* owned, may be NULL: training facts (iterations, loss
                                history, standard errors, deviance, aic, ...) saved and
                                printed as they are */
} em_linear_model;

em_linear_model *em_linear_model_new(em_linear_kind kind, uint32_t dim, uint32_t rows);
void em_linear_model_free(em_linear_model *m);   /* NULL ok */

/* Margin of row r (0 <= r < rows) for one feature row (dense or sparse view). */
double em_linear_margin(const em_linear_model *m, const em_ml_row *x, uint32_t r);
/* The model's score for one row: LOGISTIC P(1), MULTINOMIAL the class, SVM the margin,
 * REGRESSION the prediction, GLM the mean. */
double em_linear_score(const em_linear_model *m, const em_ml_row *x);
/* The predicted class (classifiers) or value (regressors) for one row. */
double em_linear_predict(const em_linear_model *m, const em_ml_row *x);

/* Prediction pairs (mllib/eval/eval.h layout: f64 score, f64 label) for a labeled data set,
 * lazily: the model travels in a broadcast, each partition is scored in batches (GEMV/GEMM
 * on dense batches). *out is a new handle. The broadcast (rows x (dim + 1) doubles) lives
 * until the context ends, since *out may be evaluated any number of times. */
int em_linear_predict_pairs(em_context *sc, const em_linear_model *m, const em_ml_data *d,
                            em_rdd **out, em_err *err);

int em_linear_model_save(const em_linear_model *m, const char *dir, em_err *err);
int em_linear_model_load(const char *dir, em_linear_model **out, em_err *err);
/* What em_linear_model_load checks, on bytes (untrusted: fuzzed by
 * tests/fuzz/fuzz_linear_model.c): metadata.json, coef.bin and intercept.bin. */
int em_linear_model_decode(const char *name, const uint8_t *meta, size_t meta_n,
                           const uint8_t *coef, size_t coef_n, const uint8_t *icpt,
                           size_t icpt_n, em_linear_model **out, em_err *err);

/* ---------------------------------------------------------------- fitting (LR, SVM)
 * The objective (Spark's):
 *     (1/n) sum_i loss(x_i . w + b, y_i) + reg_param * ((1 - a)/2 ||w||^2 + a ||w||_1),
 * a = elastic_net, the intercept b not penalized. Solvers: L-BFGS (a = 0) or OWL-QN
 * (a > 0) on the driver, each evaluation one engine pass (losses and gradients of every
 * partition, GEMV/GEMM on dense batches, summed in place by tree_aggregate_acc); or
 * mini-batch SGD (Spark's GradientDescent: step_size / sqrt(t), a batch_fraction of rows
 * drawn per iteration from `seed`). With standardization (the default, as Spark) features
 * are scaled by their standard deviation inside the loss, never in the data, and the
 * penalty applies to the scaled coefficients; the model is returned on the original scale.
 * docs/mllib-linear.md. */
typedef enum em_linear_solver {
    EM_LINEAR_LBFGS = 0,      /* L-BFGS, or OWL-QN when elastic_net > 0 */
    EM_LINEAR_SGD = 1,        /* mini-batch (sub)gradient descent */
} em_linear_solver;

typedef enum em_logistic_family {
    EM_LOGISTIC_AUTO = 0,     /* binomial for labels in {0, 1}, else multinomial */
    EM_LOGISTIC_BINOMIAL = 1,
    EM_LOGISTIC_MULTINOMIAL = 2,
} em_logistic_family;

typedef struct em_linear_params {
    double reg_param;         /* >= 0 (0: none) */
    double elastic_net;       /* [0, 1]: 0 = L2, 1 = L1 */
    uint32_t max_iter;        /* 0 = 100 */
    double tol;               /* 0 = 1e-6 (L-BFGS: relative objective decrease), SGD 1e-3 */
    double grad_tol;          /* L-BFGS: also stop once ||gradient||_2 <= grad_tol times
                                 its norm at the start (liblinear's rule); 0 = off */
    uint32_t history;         /* L-BFGS pairs (0 = 10) */
    bool no_intercept;        /* zero value: fit an intercept */
    bool no_standardize;      /* zero value: standardize (Spark's default) */
    double threshold;         /* LR: probability (0 = 0.5); SVM: margin (0) */
    em_logistic_family family;                /* LR only */
    em_linear_solver solver;
    double step_size;         /* SGD: initial step (0 = 1) */
    double batch_fraction;    /* SGD: share of rows per iteration (0 = 1) */
    uint64_t seed;            /* SGD sampling */
    /* Optional: driver-thread progress after each iteration. */
    void (*progress)(void *ud, uint32_t iter, double objective, double secs);
    void *progress_ud;
} em_linear_params;                /* zero = defaults */

/* Logistic regression on labeled data (binary labels 0/1; multinomial 0..K-1). *out is a
 * new model (LOGISTIC or MULTINOMIAL) whose summary holds iterations, passes, objective,
 * objective_history, converged, train_s. Errors: EM_EINVAL for bad parameters or labels
 * (naming the value), the engine's errors otherwise. Driver thread of sc. */
int em_logistic_train(em_context *sc, const em_ml_data *d, const em_linear_params *p,
                      em_linear_model **out, em_err *err);
/* Linear SVM (labels 0/1, as Spark's SVMWithSGD): solver SGD minimizes the hinge loss
 * max(0, 1 - t z), t = 2y - 1 (Spark's SVMWithSGD); solver L-BFGS minimizes the squared
 * hinge max(0, 1 - t z)^2, the smooth loss of liblinear -s 2 (L2-loss SVC), with OWL-QN
 * for L1. *out is an SVM model (raw margins; class = margin > threshold). */
int em_svm_train(em_context *sc, const em_ml_data *d, const em_linear_params *p,
                 em_linear_model **out, em_err *err);

/* `ember ml lr` and `ember ml svm` (argv[0] = "lr" / "svm"; mllib/ml_cli.h). Main thread. */
int em_lr_cli_main(int argc, char **argv);
void em_lr_cli_help(FILE *f);
int em_svm_cli_main(int argc, char **argv);
void em_svm_cli_help(FILE *f);
/* `ember gen classif` (mllib/linear/gen.c; argv[0] = "classif"): 0, 1 failure, 2 usage. */
int em_gen_classif_cli_main(int argc, char **argv);
void em_gen_classif_cli_help(FILE *f);

/* Registers the "ml.linear.*" task functions (idempotent; fitting and predicting call it). */
int em_linear_register(void);

#endif /* EMBER_MLLIB_LINEAR_LINEAR_H */
