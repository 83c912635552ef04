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
 * on dense batches). *out is a new handle. */
int em_linear_predict_pairs(em_context *sc, const em_linear_model *m, const em_ml_data *d,
                            em_rdd **out, em_err *err);

int em_linear_model_save(const em_linear_model *m, const char *dir, em_err *err);
int em_linear_model_load(const char *dir, em_linear_model **out, em_err *err);

/* Registers the "ml.linear.*" task functions (idempotent; fitting and predicting call it). */
int em_linear_register(void);

#endif /* EMBER_MLLIB_LINEAR_LINEAR_H */
