/* mllib/bayes/bayes.h - naive Bayes on the engine (Spark MLlib's NaiveBayes, modelType
 * "multinomial" and "bernoulli"), its `ember ml nb` command and the `ember gen counts`
 * generator of its benchmark data.
 *
 * TRAINING is one pass: every labeled point is keyed by its label and the points are
 * folded per label by aggregate_by_key_acc into (per-feature sums, count), combined in
 * place map-side, so a shuffle moves one accumulator per (map task, label). The driver
 * turns the K sums into the model (Spark's formulas, additive smoothing lambda):
 *   log prior      pi_c      = log(n_c + lambda) - log(n + K lambda)
 *   multinomial    theta_c,j = log(S_c,j + lambda) - log(sum_j S_c,j + d lambda)
 *   bernoulli      theta_c,j = log(S_c,j + lambda) - log(n_c + 2 lambda)
 * where n_c counts the points of class c and S_c,j sums feature j over them.
 * PREDICTION: the class with the largest log posterior; for multinomial it is
 * pi_c + theta_c . x, for Bernoulli pi_c + sum_j log(1 - e^theta_c,j) + x . (theta_c,j -
 * log(1 - e^theta_c,j)) (x in {0, 1}). Both are b_c + W_c . x, so the model keeps that
 * linear form (W stored d x K, so a sparse row adds K contiguous weights per entry and a
 * dense batch is one GEMM). Probabilities are the normalized exponentials of the scores.
 * INPUT RULES (errors name the partition and row within it): labels are non-negative
 * integers (below 2^31), features non-negative (multinomial) or 0/1 (Bernoulli), finite.
 * MODEL FILES: mllib/linalg/model_dir.h, class "ember.NaiveBayesModel", version 1:
 *   metadata: "model_type" ("multinomial" | "bernoulli"), "smoothing", "num_classes" K,
 *             "num_features" d;
 *   arrays:   labels (K, ascending), pi (K), theta (K x d, row-major by class).
 * THREADS: training, predict_pairs, save and load on the driver thread of the data's
 * context; em_nb_predict* on any thread (the model is read-only). */
#ifndef EMBER_MLLIB_BAYES_BAYES_H
#define EMBER_MLLIB_BAYES_BAYES_H

#include <stdio.h>

#include "mllib/linalg/rows.h"

typedef enum em_nb_type {
    EM_NB_MULTINOMIAL = 0,
    EM_NB_BERNOULLI = 1,
} em_nb_type;

typedef struct em_nb_params {
    em_nb_type type;
    double smoothing;     /* lambda >= 0 (em_nb_params_init: 1) */
} em_nb_params;
void em_nb_params_init(em_nb_params *p);

typedef struct em_nb_model {
    em_nb_type type;
    double smoothing;
    uint32_t k, dim;      /* classes, features */
    double *labels;       /* k class labels, ascending */
    double *pi;           /* k log priors */
    double *theta;        /* k x dim log likelihoods (row-major by class) */
    double *bias;         /* k: pi (+ sum_j log(1 - e^theta) for Bernoulli) */
    double *wt;           /* dim x k: the weights of the linear form, transposed */
} em_nb_model;

/* Trains on labeled points (dense or sparse). *out (em_nb_model_free) on success. */
int em_nb_train(const em_ml_data *d, const em_nb_params *p, em_nb_model **out,
                em_err *err);
void em_nb_model_free(em_nb_model *m);   /* NULL ok */

/* Builds a model from its parameters (labels, pi and theta copied): what load and
 * training end with. EM_EINVAL for non-finite or unordered values. */
int em_nb_model_new(em_nb_type type, double smoothing, uint32_t k, uint32_t dim,
                    const double *labels, const double *pi, const double *theta,
                    em_nb_model **out, em_err *err);

/* The predicted class label of one dense vector (dim doubles) or sparse row; probs (k
 * doubles, may be NULL) receives the posterior probabilities in the order of m->labels.
 * Bernoulli with a feature not 0 or 1 is EM_EINVAL. */
int em_nb_predict(const em_nb_model *m, const double *x, double *label, double *probs,
                  em_err *err);
int em_nb_predict_sparse(const em_nb_model *m, uint32_t nnz, const uint32_t *idx,
                         const double *val, double *label, double *probs, em_err *err);

/* Prediction pairs of a labeled data set (mllib/eval/eval.h layout: FIXED 16-byte records
 * f64 predicted label, f64 true label, in the data's order), lazily: *out is a new handle.
 * The model is broadcast; *bcast receives its id (destroy it with em_broadcast_destroy
 * after the last action on *out). */
int em_nb_predict_pairs(em_context *sc, const em_nb_model *m, const em_ml_data *d,
                        em_rdd **out, uint32_t *bcast, em_err *err);

/* Mean log-loss of the model's posteriors on a labeled data set (scikit-learn's log_loss:
 * -log p(true label), p clipped to [1e-15, 1 - 1e-15]; a label the model has no class for
 * counts as p = 0). One job; NaN for an empty data set. */
int em_nb_log_loss(em_context *sc, const em_nb_model *m, const em_ml_data *d, double *out,
                   em_err *err);

int em_nb_model_save(const em_nb_model *m, const char *dir, em_err *err);
int em_nb_model_load(const char *dir, em_nb_model **out, em_err *err);

/* Registers the "ml.bayes.*" task functions (idempotent; training calls it). */
int em_bayes_register(void);

/* `ember ml nb` (argv[0] = "nb"). */
int em_nb_cli_main(int argc, char **argv);
void em_nb_cli_help(FILE *f);

/* `ember gen counts` (argv[0] = "counts"): LIBSVM rows of non-negative integer counts drawn
 * from class-dependent multinomials (mllib/bayes/gen.c). */
int em_nb_gen_counts_main(int argc, char **argv);
void em_nb_gen_counts_help(FILE *f);

#endif /* EMBER_MLLIB_BAYES_BAYES_H */
