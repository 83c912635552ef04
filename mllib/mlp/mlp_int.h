/* mllib/mlp/mlp_int.h - internals of mllib/mlp (this folder only): the work space of one
 * forward/backward pass, the optimizer state and one epoch of mini-batch steps, shared by
 * local training, data-parallel tasks and the tests. */
#ifndef EMBER_MLLIB_MLP_MLP_INT_H
#define EMBER_MLLIB_MLP_MLP_INT_H

#include "mllib/mlp/mlp.h"

/* Buffers for batches of up to `cap` rows. a[0] is the input (borrowed); a[l] (l >= 1)
 * the output of layer l after its activation and dropout; h[l] the activation before
 * dropout (== a[l] without dropout); mask[l] the dropout factors (0 or 1/(1-p)). The last
 * layer's a[] holds the softmax probabilities or the regression outputs. */
typedef struct mlp_ws {
    size_t cap;
    const float *a0;
    float *a[EM_MLP_MAX_LAYERS + 1];
    float *h[EM_MLP_MAX_LAYERS + 1];
    float *mask[EM_MLP_MAX_LAYERS + 1];
    float *d1, *d2;        /* cap x max width: deltas */
    float *grad;           /* nparams */
    bool dropout;
} mlp_ws;

void em__mlp_ws_init(mlp_ws *w, const em_mlp_model *m, size_t cap, bool dropout);
void em__mlp_ws_destroy(mlp_ws *w);

/* Forward pass of B <= cap rows; dropout > 0 draws masks from rng (training). */
void em__mlp_forward(const em_mlp_model *m, mlp_ws *w, const float *X, size_t B,
                     double dropout, em_rng *rng);
/* After em__mlp_forward: the objective on the batch (mean cross-entropy, or half the mean
 * squared error, plus wd/2 ||W||^2 over weights) and its gradient into w->grad. */
double em__mlp_backward(const em_mlp_model *m, mlp_ws *w, const float *y, size_t B,
                        double wd);

/* Optimizer state (Adam: m1, m2; SGD: m1 is the velocity). */
typedef struct mlp_opt {
    float *m1, *m2;
    uint64_t t;
} mlp_opt;
void em__mlp_opt_init(mlp_opt *o, size_t nparams);
void em__mlp_opt_destroy(mlp_opt *o);
void em__mlp_opt_step(const em_mlp_params *p, double lr, mlp_opt *o, float *w,
                      const float *g, size_t n);

/* One epoch over n rows in a random order (drawn from rng): mini-batches of p->batch, each
 * a forward, backward and optimizer step at rate lr; mask (optional) re-applied after each
 * step. Returns the mean training objective. */
double em__mlp_epoch(em_mlp_model *m, mlp_ws *w, mlp_opt *o, const em_mlp_params *p,
                     double lr, const float *X, const float *y, size_t n, const uint8_t *mask,
                     em_rng *rng, uint32_t *perm, float *xb, float *yb);

/* The learning rate of epoch e (0-based) under p's schedule. */
double em__mlp_lr(const em_mlp_params *p, uint32_t e);
/* Checks p against d inputs and K outputs; fills sizes (nlayers + 1). */
int em__mlp_shape(const em_mlp_params *p, uint32_t d, uint32_t k, uint32_t *sizes,
                  uint32_t *nlayers, em_err *err);
/* Classes in y (1 + the largest), checking every label is an integer >= 0. */
int em__mlp_classes(const float *y, size_t n, uint32_t *k, em_err *err);

#endif /* EMBER_MLLIB_MLP_MLP_INT_H */
