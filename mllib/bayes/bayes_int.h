/* mllib/bayes/bayes_int.h - what the files of mllib/bayes share: the context blob of the
 * task functions and the task functions themselves. */
#ifndef EMBER_MLLIB_BAYES_BAYES_INT_H
#define EMBER_MLLIB_BAYES_BAYES_INT_H

#include "mllib/bayes/bayes.h"

/* Context blob of ml.bayes.key/add/predict (little-endian, 12 bytes):
 *   u8 sparse, u8 model type, u16 pad (0), u32 dim, u32 broadcast id (predict; else 0). */
#define EM__NB_CTX_SIZE 12
typedef struct nb_ctx {
    em_ml_data layout;      /* labeled, sparse, dim (rows unused) */
    em_nb_type type;
    uint32_t bcast;
} nb_ctx;
void em__nb_ctx_encode(const nb_ctx *c, uint8_t out[EM__NB_CTX_SIZE]);
int em__nb_ctx_decode(em_slice blob, nb_ctx *c, em_err *err);

/* Checks one labeled point (label a non-negative integer below 2^31; features finite,
 * >= 0 for multinomial, 0 or 1 for Bernoulli); part/row name it in errors. */
int em__nb_check_row(const nb_ctx *c, const em_ml_row *r, uint32_t part, uint64_t row,
                     em_err *err);

/* The broadcast form of a model: u32 type, u32 k, u32 dim, u32 pad, then f64 labels[k],
 * bias[k], wt[dim * k]. */
int em__nb_model_encode(const em_nb_model *m, em_vbuf *out, em_err *err);

int em__nb_fn_key(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                  em_err *err);
int em__nb_fn_add(const em_fn_ctx *c, void *acc, size_t size, const em_rec *in, em_err *err);
int em__nb_fn_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                    em_err *err);
int em__nb_fn_predict(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err);
int em__nb_fn_logloss(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err);
int em__nb_fn_pair_text(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

#endif /* EMBER_MLLIB_BAYES_BAYES_INT_H */
