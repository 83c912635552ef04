/* mllib/eval/eval.h - evaluation metrics on the engine (Spark MLlib's
 * BinaryClassificationMetrics, MulticlassMetrics and RegressionMetrics).
 *
 * INPUT: a dataset of PREDICTION PAIRS, FIXED 16-byte records: f64 score (binary: the
 * probability of class 1 or a raw margin; multiclass: the predicted class as a double;
 * regression: the prediction), then f64 label (little-endian, as the host). Every model's
 * "predict pairs" returns this layout, so one evaluator serves every algorithm. The _local
 * forms take the same figures from arrays (tests, small data).
 * BINARY labels are 0 or 1 (anything else is EM_EINVAL naming the value). AUC-ROC and AUC-PR
 * are exact (ties grouped by score, as Spark's with numBins = 0): a sort of the scores on
 * the engine, then a pass of cumulative counts. log_loss needs probabilities: it is NaN when
 * `probabilities` is false (raw margins), clipped to [1e-15, 1 - 1e-15] as scikit-learn.
 * MULTICLASS labels and predictions are integers in [0, nclasses); weighted figures weight
 * each class by its share of true labels (Spark's weightedPrecision etc.).
 * REGRESSION: mse, rmse, mae, r2 = 1 - SSE/SST (SST about the label mean).
 * THREADS: the _rdd forms on the driver thread of the pairs' context; _local forms anywhere. */
#ifndef EMBER_MLLIB_EVAL_EVAL_H
#define EMBER_MLLIB_EVAL_EVAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/ember.h"

typedef struct em_eval_binary {
    uint64_t count, positives;
    double auc_roc, auc_pr;
    double log_loss;               /* NaN unless probabilities */
    double threshold;              /* predicted 1 when score > threshold */
    double accuracy, precision, recall, f1;   /* at threshold; precision 0 when no
                                                 positive predictions */
} em_eval_binary;

int em_eval_binary_rdd(em_rdd *pairs, double threshold, bool probabilities,
                       em_eval_binary *out, em_err *err);
int em_eval_binary_local(const double *score, const double *label, size_t n,
                         double threshold, bool probabilities, em_eval_binary *out,
                         em_err *err);

typedef struct em_eval_multiclass {
    uint64_t count;
    uint32_t nclasses;
    double accuracy;
    double weighted_precision, weighted_recall, weighted_f1;
    uint64_t *confusion;           /* nclasses x nclasses, row = true label, column =
                                      prediction; em_eval_multiclass_destroy frees it */
} em_eval_multiclass;

/* nclasses 0 = one more than the largest label or prediction seen. */
int em_eval_multiclass_rdd(em_rdd *pairs, uint32_t nclasses, em_eval_multiclass *out,
                           em_err *err);
int em_eval_multiclass_local(const double *pred, const double *label, size_t n,
                             uint32_t nclasses, em_eval_multiclass *out, em_err *err);
void em_eval_multiclass_destroy(em_eval_multiclass *m);

typedef struct em_eval_regression {
    uint64_t count;
    double mse, rmse, mae, r2;
} em_eval_regression;

int em_eval_regression_rdd(em_rdd *pairs, em_eval_regression *out, em_err *err);
int em_eval_regression_local(const double *pred, const double *label, size_t n,
                             em_eval_regression *out, em_err *err);

/* Adds the figures to obj under the names the `ember ml` commands print: binary
 * "accuracy", "auc", "auc_pr", "log_loss" (only when not NaN), "precision", "recall",
 * "f1", "test_count"; multiclass "accuracy", "weighted_precision", "weighted_recall",
 * "weighted_f1", "confusion" (array of rows), "test_count"; regression "rmse", "mse",
 * "mae", "r2", "test_count". */
void em_eval_binary_json(const em_eval_binary *m, json_t *obj);
void em_eval_multiclass_json(const em_eval_multiclass *m, json_t *obj);
void em_eval_regression_json(const em_eval_regression *m, json_t *obj);

/* Registers the "ml.eval.*" task functions (idempotent; every _rdd form calls it). */
int em_eval_register(void);

#endif /* EMBER_MLLIB_EVAL_EVAL_H */
