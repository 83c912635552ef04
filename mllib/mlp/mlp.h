/* mllib/mlp/mlp.h - fully-connected neural networks (multilayer perceptrons) on OpenBLAS:
 * dense layers whose forward and backward passes are SGEMMs, ReLU / leaky ReLU / sigmoid /
 * tanh hidden activations, softmax + cross-entropy (classification) or mean squared error
 * (regression), inverted dropout, mini-batch SGD with momentum or Adam, L2 weight decay,
 * step or cosine learning-rate schedules, early stopping on a validation split, seeded
 * He / Xavier initialization; predict, evaluate, save/load (mllib/linalg/model_dir.h,
 * class "ember.MLPModel"), Deep Compression (magnitude pruning with retraining, 8-bit
 * per-layer quantization) and data-parallel training on the engine (weights averaged each
 * epoch with tree_aggregate_acc).
 *
 * PRECISION: float32 throughout (cblas_sgemm). A 784-256-128-10 network trains about twice
 * as fast as in float64 and the test accuracy is the same to a tenth of a point (PyTorch
 * trains in float32 too); losses and metrics are summed in double. Weights are saved as
 * doubles (exactly the float values), so a round trip is bit-exact.
 * DATA (local training): X is n x d row-major floats, y n floats: the class 0..K-1
 * (classification) or the target (regression).
 * LAYOUT of the parameters: for layer l (0-based, nlayers dense layers, sizes[0] = inputs,
 * sizes[nlayers] = outputs) the weights W_l are sizes[l] x sizes[l+1] row-major (in x out:
 * Z = A W + b for a batch A of rows), then the bias b_l (sizes[l+1]); layers follow one
 * another in one float array of em_mlp_nparams entries.
 * THREADS: training and prediction are pure functions of their arguments (any thread;
 * em_mlp_train_local uses OpenBLAS, whose own threads the caller sets); the engine forms
 * (em_mlp_collect, em_mlp_train_dist) on the driver thread of their context. */
#ifndef EMBER_MLLIB_MLP_MLP_H
#define EMBER_MLLIB_MLP_MLP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mllib/linalg/rows.h"

#define EM_MLP_MAX_LAYERS 8     /* dense layers (hidden + output) */
#define EM_MLP_MAX_WIDTH 65536  /* units in any layer */

typedef enum em_mlp_act {
    EM_MLP_RELU = 0,
    EM_MLP_LEAKY = 1,      /* max(x, 0.01 x) */
    EM_MLP_SIGMOID = 2,
    EM_MLP_TANH = 3,
} em_mlp_act;

typedef enum em_mlp_optim {
    EM_MLP_ADAM = 0,       /* Kingma & Ba 2015, bias-corrected */
    EM_MLP_SGD = 1,        /* momentum (heavy ball): v = mu v - lr g; w += v */
} em_mlp_optim;

typedef enum em_mlp_sched {
    EM_MLP_CONST = 0,
    EM_MLP_STEP = 1,       /* lr * gamma^floor(epoch / step_epochs) */
    EM_MLP_COSINE = 2,     /* lr * (1 + cos(pi * epoch / epochs)) / 2 */
} em_mlp_sched;

typedef struct em_mlp_params {
    uint32_t nhidden;                      /* hidden layers (0: a linear model) */
    uint32_t hidden[EM_MLP_MAX_LAYERS - 1];
    em_mlp_act act;
    bool regression;                       /* MSE on one output; else softmax + CE */
    uint32_t nclasses;                     /* 0 = 1 + the largest training label */
    em_mlp_optim optim;
    double lr;                             /* 0 = 1e-3 (Adam) or 0.01 (SGD) */
    double momentum;                       /* SGD; 0.9 when 0 and sgd */
    double beta1, beta2, eps;              /* Adam; 0 = 0.9, 0.999, 1e-8 */
    double weight_decay;                   /* L2 on weights (not biases): g += wd * w */
    double dropout;                        /* drop probability of hidden units, [0, 1) */
    uint32_t batch;                        /* 0 = 128 */
    uint32_t epochs;                       /* 0 = 10 */
    em_mlp_sched sched;
    uint32_t step_epochs;                  /* STEP: 0 = max(1, epochs / 3) */
    double gamma;                          /* STEP: 0 = 0.1 */
    double valid_frac;                     /* held out of the training rows for early
                                              stopping when no validation set is given */
    uint32_t patience;                     /* stop after this many epochs without a better
                                              validation metric (0 = never stop early);
                                              the best epoch's weights are kept */
    uint64_t seed;                         /* init, shuffling, dropout, split */
    bool valid_at_end;                     /* validate once, after the last epoch, unless
                                              patience or progress needs every epoch's
                                              figure (valid_metric is the same; best_epoch
                                              stays 0): a search trial's setting */
    /* optional: after each epoch (train loss, validation metric or NaN, seconds so far) */
    void (*progress)(void *ud, uint32_t epoch, double loss, double valid, double secs);
    void *progress_ud;
    /* optional: polled before every mini-batch; once it returns true, training stops and
     * em_mlp_train_local / em_mlp_retrain_masked return EM_ECANCELED (a trial whose task
     * was cancelled polls em_task_canceled through it) */
    bool (*stop)(void *ud);
    void *stop_ud;
    /* optional: the validation rows come late. When set, em_mlp_train_local may be given
     * xv = NULL (with nv and yv as usual): before its first validation pass it calls
     * valid_rows once, which returns the nv x d rows (borrowed until training returns) or
     * NULL with err set (training then fails with that error). A search trial's task
     * fetches its validation rows while the first epoch trains (mllib/tuning/trial_mlp.c).
     * Called on the training thread. */
    const float *(*valid_rows)(void *ud, em_err *err);
    void *valid_rows_ud;
} em_mlp_params;

/* Fills the defaults above into a zeroed or partly set params struct. */
void em_mlp_params_defaults(em_mlp_params *p);

typedef struct em_mlp_model {
    uint32_t nlayers;                      /* dense layers, 1..EM_MLP_MAX_LAYERS */
    uint32_t sizes[EM_MLP_MAX_LAYERS + 1];
    em_mlp_act act;
    bool regression;
    float *params;                         /* em_mlp_nparams(m) floats (layout above) */
    /* training summary (not saved): */
    uint32_t epochs_run, best_epoch;
    double train_loss, valid_metric, train_s;
} em_mlp_model;

size_t em_mlp_nparams(const em_mlp_model *m);
/* The offset of layer l's weights in m->params (its bias follows sizes[l]*sizes[l+1] on). */
size_t em_mlp_layer_offset(const em_mlp_model *m, uint32_t l);
void em_mlp_model_free(em_mlp_model *m);   /* NULL ok */
em_mlp_model *em_mlp_model_clone(const em_mlp_model *m);
/* A model of the given shape, initialized (He for ReLU/leaky, Xavier otherwise; biases 0). */
em_mlp_model *em_mlp_model_new(const uint32_t *sizes, uint32_t nlayers, em_mlp_act act,
                               bool regression, uint64_t seed);

/* Trains on n rows (X, y); xv/yv/nv an optional validation set (NULL/0: valid_frac of the
 * training rows are held out, or none when 0). init (optional) is the starting model (its
 * shape must match), else a seeded new one. *out owned by the caller. EM_EINVAL names bad
 * parameters or labels. */
int em_mlp_train_local(const float *X, const float *y, size_t n, uint32_t d,
                       const float *xv, const float *yv, size_t nv, const em_mlp_params *p,
                       const em_mlp_model *init, em_mlp_model **out, em_err *err);

/* Outputs for n rows: classification: out[i] = the predicted class (probs, optional,
 * n x K softmax); regression: out[i] = the prediction. */
void em_mlp_predict(const em_mlp_model *m, const float *X, size_t n, float *out,
                    float *probs);
/* Accuracy (classification) or RMSE (regression) on n rows; loss (optional): mean
 * cross-entropy or mean squared error. */
double em_mlp_evaluate(const em_mlp_model *m, const float *X, const float *y, size_t n,
                       double *loss);
/* The metric's direction: higher is better for accuracy, lower for RMSE. */
bool em_mlp_better(const em_mlp_model *m, double a, double b);

/* ---------------------------------------------------------------- standardization
 * Inputs of very different scales train badly; as scikit-learn's StandardScaler: fit
 * takes per-feature means and standard deviations (sd 1 for a constant feature), apply
 * maps rows to (x - mu) / sd in place, and fold rewrites the first layer so the model
 * takes raw rows again (W'_ij = W_ij / sd_i, b'_j = b_j - sum_i mu_i W'_ij): a saved model
 * needs no scaler beside it. */
void em_mlp_standardize_fit(const float *X, size_t n, uint32_t d, float *mu, float *sd);
void em_mlp_standardize_apply(float *X, size_t n, uint32_t d, const float *mu, const float *sd);
void em_mlp_fold_standardize(em_mlp_model *m, const float *mu, const float *sd);

/* ---------------------------------------------------------------- compression
 * Han, Mao & Dally, "Deep Compression" (ICLR 2016): prune the weights (not biases) of
 * each layer whose magnitude is below the layer's sparsity quantile, then retrain with the
 * pruned weights held at zero (the mask is re-applied after every step); quantize each
 * layer's weights to int8 with one scale per layer (max |w| / 127, symmetric). */
/* Zeroes the smallest-magnitude fraction `sparsity` of each layer's weights; mask (optional,
 * em_mlp_nparams bytes) gets 1 for kept entries (biases always 1). Returns entries zeroed. */
size_t em_mlp_prune(em_mlp_model *m, double sparsity, uint8_t *mask);
/* Retrains m in place for p->epochs with the mask held (as em_mlp_train_local). */
int em_mlp_retrain_masked(em_mlp_model *m, const uint8_t *mask, const float *X, const float *y,
                          size_t n, const float *xv, const float *yv, size_t nv,
                          const em_mlp_params *p, em_err *err);
/* Rounds every layer's weights to int8 levels of its scale (the model then holds exactly
 * the values the compressed file stores). */
void em_mlp_quantize(em_mlp_model *m);
/* Fraction of zero weights (biases excluded). */
double em_mlp_sparsity(const em_mlp_model *m);

/* ---------------------------------------------------------------- save / load
 * DIR (mllib/linalg/model_dir.h): metadata.json {"class": "ember.MLPModel", "version": 1,
 * "layers": [sizes...], "activation": "relu"|"leaky_relu"|"sigmoid"|"tanh", "task":
 * "classification"|"regression", "encoding": "float"|"int8"} and one array:
 *   float: params.bin, em_mlp_nparams doubles (the float values).
 *   int8 (compressed): packed.bin, bytes packed 8 to a double (the last one zero-padded,
 *     "packed_bytes" in the metadata says how many): per layer, f32 scale, u32 nnz, a
 *     bitmap of in*out bits (1 = non-zero weight, row-major), nnz int8 values in bitmap
 *     order, then the out biases as f32. A pruned, quantized layer thus takes about
 *     in*out/8 + nnz bytes instead of 8*in*out. */
int em_mlp_model_save(const em_mlp_model *m, const char *dir, bool compressed, em_err *err);
int em_mlp_model_load(const char *dir, em_mlp_model **out, em_err *err);
/* The decoder under load, on bytes (fuzzing): metadata then the array file. */
int em_mlp_model_decode(const char *name, const uint8_t *meta, size_t meta_n,
                        const uint8_t *bin, size_t bin_n, em_mlp_model **out, em_err *err);
/* Bytes of the files in dir (metadata + arrays): the model's size on disk. */
uint64_t em_mlp_dir_bytes(const char *dir);

/* ---------------------------------------------------------------- on the engine */

/* A dense float copy of a labeled data set on the driver (one job): *X n x d, *y n, both
 * em_malloc'ed (caller frees). Sparse rows are densified. */
int em_mlp_collect(const em_ml_data *d, float **X, float **y, size_t *n, em_err *err);

/* Data-parallel training: each epoch the weights are broadcast, every partition of d runs
 * the epoch's mini-batch steps on its own rows from them, and the resulting weights are
 * averaged (weighted by rows) with tree_aggregate_acc (McDonald et al. 2010's iterative
 * parameter mixing; Zinkevich et al.'s parallel SGD). Optimizer state is reset each epoch.
 * Validation/early stopping as em_mlp_train_local with the given validation set (on the
 * driver). *out owned by the caller. */
int em_mlp_train_dist(em_context *sc, const em_ml_data *d, uint32_t nclasses,
                      const float *xv, const float *yv, size_t nv, const em_mlp_params *p,
                      em_mlp_model **out, em_err *err);

/* Registers the "ml.mlp.*" task functions (idempotent). */
int em_mlp_register(void);

/* `ember ml mlp` (argv[0] = "mlp"). */
int em_mlp_cli_main(int argc, char **argv);
void em_mlp_cli_help(FILE *f);

/* Parsers shared with the tuning module: "relu", "leaky_relu", "sigmoid", "tanh"; names
 * for em_mlp_act values. */
int em_mlp_act_parse(const char *s, em_mlp_act *out);
const char *em_mlp_act_name(em_mlp_act a);

#endif /* EMBER_MLLIB_MLP_MLP_H */
