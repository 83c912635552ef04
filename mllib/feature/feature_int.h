/* mllib/feature/feature_int.h - what the files of mllib/feature share: the one task
 * function that applies a transformer to a row ("ml.feature.map"), its context blob, and
 * the per-transformer row kernels.
 *
 * CONTEXT BLOB of ml.feature.map (little-endian):
 *   0   u8   op (FT_*)
 *   1   u8   sparse input
 *   2   u8   labeled
 *   3   u8   flags (std: 1 with_mean, 2 with_std; onehot: 1 drop_last; hash: 1 alternate
 *            sign)
 *   4   u32  input dim
 *   8   u32  output dim
 *  12   ...  the transformer's parameters (std: mean[dim], std[dim] f64; minmax: lo, hi,
 *            min[dim], max[dim] f64; onehot: u32 ncols, cols[ncols], sizes[ncols]; hash:
 *            nothing). Read with unaligned loads. */
#ifndef EMBER_MLLIB_FEATURE_FEATURE_INT_H
#define EMBER_MLLIB_FEATURE_FEATURE_INT_H

#include "mllib/feature/feature.h"

enum { FT_STD = 1, FT_MINMAX = 2, FT_ONEHOT = 3, FT_HASH = 4 };
#define FT_HDR 12

typedef struct ft_ctx {
    int op;
    em_ml_data in;          /* the input layout (rows unused) */
    uint32_t out_dim;
    unsigned flags;
    const uint8_t *par;     /* parameters (into the blob) */
    size_t npar;            /* their bytes */
} ft_ctx;

/* A row's features as (index, value) entries, whatever the layout: a scratch array the
 * kernels fill and read (grown as needed). */
typedef struct ft_ent {
    uint32_t idx;
    double val;
} ft_ent;

/* Header of a context blob. */
void em__ft_hdr(uint8_t out[FT_HDR], int op, const em_ml_data *in, unsigned flags,
                uint32_t out_dim);
/* The transformed data set: a map (dense: map_fixed) of in's rows with the blob. */
int em__ft_apply(const em_ml_data *in, const em_vbuf *blob, bool sparse_out, uint32_t out_dim,
                 em_ml_data *out, em_err *err);

/* Kernels: write the output row's features. Dense output: out_dense (out_dim doubles).
 * Sparse output: ents/n (ascending, no duplicates), in *ents (grown with em_arr_grow). */
int em__ft_onehot_row(const ft_ctx *c, const em_ml_row *r, ft_ent **ents, size_t *cap,
                      size_t *n, em_err *err);
int em__ft_hash_row(const ft_ctx *c, const em_ml_row *r, ft_ent **ents, size_t *cap,
                    size_t *n, em_err *err);

int em__ft_fn_map(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int em__ft_fn_split(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err);

static inline double em__ft_f64(const uint8_t *p)
{
    double v;
    __builtin_memcpy(&v, p, 8);
    return v;
}

#endif /* EMBER_MLLIB_FEATURE_FEATURE_INT_H */
