/* mllib/linear/linear_int.h - what the files of mllib/linear share: the executors' loss and
 * gradient pass (grad.c), the label statistics pass, the driver's fitting core (fit.c) that
 * LR, SVM and least squares all run through, and the prediction task (model.c).
 *
 * GRADIENT TASK CONTEXT (blob of ml.linear.grad / ml.linear.grad_merge; 48 bytes LE):
 *   u32 magic "EMLG", u8 loss (lin_loss), u8 sparse, u8 intercept, u8 sampling (SGD),
 *   u32 dim, u32 k (coefficient rows), u32 broadcast id, u32 iteration, u64 seed,
 *   f64 fraction (SGD: the share of rows drawn), u64 reserved (0).
 * BROADCAST (gradient and prediction): the k x dim coefficients w (row-major doubles),
 *   then k intercepts.
 * ACCUMULATOR (8 * (LIN_ACC_HEAD + k * (dim + 1)) bytes): f64 loss sum, f64 rows counted,
 *   f64 rows seen by this task (the sampling counter), f64 0; then k x dim gradient sums
 *   d loss / d w, then k intercept gradient sums. Losses are per row and unweighted. */
#ifndef EMBER_MLLIB_LINEAR_LINEAR_INT_H
#define EMBER_MLLIB_LINEAR_LINEAR_INT_H

#include "mllib/linear/linear.h"

#define EM__LIN_MAGIC 0x474c4d45u   /* "EMLG" */
#define EM__LIN_CTX_SIZE 48
#define LIN_ACC_HEAD 4
#define EM__LIN_MAX_CLASSES 1000u

/* The per-row loss l(z, y) of a margin z (multinomial: k margins) and label y. */
typedef enum lin_loss {
    LIN_LOGISTIC = 1,     /* log(1 + e^z) - y z, y in {0, 1} */
    LIN_MULTINOMIAL = 2,  /* log sum_k e^{z_k} - z_y, y in {0..k-1} */
    LIN_HINGE = 3,        /* max(0, 1 - t z), t = 2y - 1, y in {0, 1} */
    LIN_SQHINGE = 4,      /* max(0, 1 - t z)^2 (liblinear -s 2's loss) */
    LIN_SQUARED = 5,      /* (z - y)^2 / 2, any finite y */
} lin_loss;

typedef struct lin_ctx {
    lin_loss loss;
    bool sparse, intercept, sampling;
    uint32_t dim, k, bcast, iter;
    uint64_t seed;
    double fraction;
} lin_ctx;

void em__lin_ctx_encode(const lin_ctx *c, uint8_t out[EM__LIN_CTX_SIZE]);
int em__lin_ctx_decode(em_slice b, lin_ctx *c, em_err *err);

/* Task functions (registered by em_linear_register). */
int em__lin_fn_grad(const em_fn_ctx *fc, void *acc, size_t size, const em_rec_batch *in,
                    em_err *err);
int em__lin_fn_sum(const em_fn_ctx *fc, void *acc, const void *other, size_t size,
                   em_err *err);
int em__lin_fn_labels(const em_fn_ctx *fc, void *acc, size_t size, const em_rec_batch *in,
                      em_err *err);
int em__lin_fn_labels_merge(const em_fn_ctx *fc, void *acc, const void *other, size_t size,
                            em_err *err);
int em__lin_fn_predict(const em_fn_ctx *fc, uint32_t index, em_iter *in, em_emitter *out,
                       em_err *err);

int em__lin_fn_moments(const em_fn_ctx *fc, void *acc, size_t size, const em_rec_batch *in,
                       em_err *err);
int em__lin_fn_moments_merge(const em_fn_ctx *fc, void *acc, const void *other, size_t size,
                             em_err *err);

/* Sparse-row kernels (sparse.c; AVX-512 when em_la_simd() >= 3). A labeled sparse point's
 * record split into its label and entries (views into rec); false when its size is not
 * the layout's. */
bool em__lin_sparse_rec(em_slice rec, double *label, uint32_t *nnz, const uint8_t **idx,
                        const uint8_t **val);
/* *out = w . x; false (and *out meaningless) unless the indices are strictly ascending
 * and below dim. w holds dim doubles. */
bool em__lin_sparse_dot(uint32_t nnz, const uint8_t *idx, const uint8_t *val, const double *w,
                        uint32_t dim, double *out);
/* g[idx_i] += a val_i; the indices must have passed em__lin_sparse_dot. */
void em__lin_sparse_axpy(uint32_t nnz, const uint8_t *idx, const uint8_t *val, double a,
                         double *g);
/* Column means and variances (n - 1 in the denominator) of a labeled sparse data set in one
 * pass (ml.linear.moments); mean and var hold d->dim doubles. */
int em__lin_sparse_moments(const em_ml_data *d, double *mean, double *var, em_err *err);

/* Labels of a labeled data set, in one pass: count, min, max, whether all are integers,
 * and the counts of the integer labels 0..EM__LIN_MAX_CLASSES-1. */
typedef struct lin_labels {
    double count, min, max, non_integer;
    double hist[EM__LIN_MAX_CLASSES];
} lin_labels;
int em__lin_label_stats(const em_ml_data *d, lin_labels *out, em_err *err);

/* One engine pass: acc (8 * (LIN_ACC_HEAD + k (dim + 1)) bytes, filled) = the sums of
 * losses and gradients over the data at coefficients w (k x dim) and intercepts b (k). */
int em__lin_pass(em_context *sc, const em_ml_data *d, const lin_ctx *c, const double *w,
                 const double *b, double *acc, em_err *err);

/* ---------------------------------------------------------------- the fitting core */

/* What a fit minimizes (Spark's objective):
 *     (1/n) sum_i l(x_i . w + b, y_i) + reg * ((1 - alpha)/2 ||w||^2 + alpha ||w||_1)
 * over w (k x dim) and b (k, not regularized). With standardize, features are divided by
 * their standard deviation inside the loss and the penalty applies to the scaled
 * coefficients; either way the model returned is on the original scale. Solvers: L-BFGS
 * (alpha = 0) or OWL-QN (alpha > 0) on the driver, one engine pass per evaluation; or
 * mini-batch SGD (Spark's GradientDescent: step / sqrt(t), SquaredL2 or L1 updater). */
typedef struct lin_fit_opts {
    lin_loss loss;
    uint32_t k;                 /* coefficient rows (1, or K classes) */
    bool intercept;
    bool standardize;
    double reg, alpha;          /* regParam, elasticNetParam */
    uint32_t max_iter;          /* 0 = 100 */
    uint32_t history;           /* L-BFGS m (0 = 10) */
    double tol;                 /* 0 = 1e-6 */
    double grad_tol;            /* em_linear_params.grad_tol (0 = off) */
    bool sgd;                   /* mini-batch SGD instead of L-BFGS/OWL-QN */
    double step, fraction;      /* SGD: initial step (0 = 1), mini-batch share (0 = 1) */
    uint64_t seed;
    const double *init_b;       /* k starting intercepts, or NULL (0) */
    /* Optional: called on the driver after each iteration (objective, seconds so far). */
    void (*progress)(void *ud, uint32_t iter, double f, double secs);
    void *progress_ud;
    const char *what;           /* "logistic regression": messages */
} lin_fit_opts;

typedef struct lin_fit_out {
    uint32_t iterations, passes;
    double loss;                /* final objective */
    bool converged;
    const char *reason;
    json_t *history;            /* objective per iteration (owned) */
} lin_fit_out;

/* Fits w (k x dim) and b (k) into m->coef and m->intercept (m sized by the caller). */
int em__lin_fit(em_context *sc, const em_ml_data *d, const lin_fit_opts *o,
                em_linear_model *m, lin_fit_out *out, em_err *err);

/* Summary JSON of a fit: iterations, passes, objective, converged, reason, history. */
json_t *em__lin_fit_summary(const lin_fit_out *f);

#endif /* EMBER_MLLIB_LINEAR_LINEAR_INT_H */
