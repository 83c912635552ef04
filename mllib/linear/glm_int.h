/* mllib/linear/glm_int.h - what linreg.c, glm.c, glm_pass.c and glm_cli.c share: the task
 * functions of "ml.glm.*", their context blobs and accumulators, and the GLM family math.
 *
 * CONTEXT BLOBS (little-endian, built on the driver, validated on the executors):
 *   ml.glm.ls_gram   the layout (6 bytes, em__ml_layout-style: u8 sparse, u8 labeled, u32
 *                    dim).
 *   ml.glm.irls      the layout, u8 family, u8 link, u8 start (1: first pass, eta from R's
 *                    mustart; 0: eta = b0 + x.b), u8 intercept, f64 mu_null (the mean of the
 *                    null model, for the null deviance; NaN: not yet known), then d + 1
 *                    doubles: b0, b1..bd.
 * ACCUMULATORS (doubles):
 *   ls_gram   [n, s_0..s_d, G] with s the column sums of [y X] and G the (d+1) x (d+1)
 *             Gramian of [y X] (upper triangle, row-major; column 0 is y).
 *   irls      [n, dev, pearson, llf_a, llf_b, null_dev, sum_y, 0] (EM__GLM_NHDR) then the
 *             (d+2) x (d+2) Gramian of sqrt(w) [1 X z] (upper, row-major: column 0 the
 *             intercept, 1..d the features, d+1 the working response z). llf_a and llf_b are
 *             the per-family log-likelihood sums glm.c turns into llf (glm_pass.c says
 *             which). */
#ifndef EMBER_MLLIB_LINEAR_GLM_INT_H
#define EMBER_MLLIB_LINEAR_GLM_INT_H

#include "mllib/linear/glm.h"

#define EM__GLM_NHDR   8
#define EM__GLM_LAYOUT EM_ML_LAYOUT_SIZE   /* the layout bytes: em_ml_layout_encode */

/* em_ml_layout_decode plus what the GLM passes need: labeled rows of 1..65536 features. */
int em__glm_layout_decode(em_slice blob, em_ml_data *lay, em_err *err);

/* Family math at one observation (weights 1). */
double em__glm_linkinv(em_glm_link l, double eta);
double em__glm_linkfun(em_glm_link l, double mu);
double em__glm_dmu_deta(em_glm_link l, double eta, double mu);
double em__glm_variance(em_glm_family f, double mu);
double em__glm_dev_resid(em_glm_family f, double y, double mu);
/* R's mustart for the first pass. */
double em__glm_mustart(em_glm_family f, double y);
/* Whether y is in the family's range; whether mu is a valid mean. */
bool em__glm_y_ok(em_glm_family f, double y);
bool em__glm_mu_ok(em_glm_family f, double mu);

/* Runs one pass: out (size bytes) = the accumulator over d's rows. */
int em__glm_aggregate(const em_ml_data *d, const char *seq, const void *blob, size_t blob_len,
                      size_t size, double *out, em_err *err);

int em__glm_fn_ls_gram(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                       em_err *err);
int em__glm_fn_irls(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                    em_err *err);
int em__glm_fn_sum(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err);

/* The upper triangle of the k x k row-major a copied into its lower one. */

#endif /* EMBER_MLLIB_LINEAR_GLM_INT_H */
