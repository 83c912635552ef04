/* mllib/feature/feature.h - the feature transformers Spark users chain before a model
 * (Spark ML's StandardScaler, MinMaxScaler, OneHotEncoder, FeatureHasher and
 * Dataset.randomSplit), as lazy transformations of em_ml_data -> em_ml_data.
 *
 * FIT then TRANSFORM: a fitted transformer (scaler, encoder) is computed by one pass over
 * the data (em_ml_col_stats: count, mean, variance, min, max in one aggregation) and kept
 * on the driver; _transform returns a NEW data set (out->rows a new handle; the input's
 * labels carried over, out->nrows copied) whose rows are computed only when an action runs
 * (a map whose context blob carries the fitted parameters). Stateless ones (hasher, split)
 * only transform. Fitted transformers save and load through mllib/linalg/model_dir.h.
 * LAYOUTS: standard scaler keeps the layout (with_mean on sparse rows is EM_EINVAL, as in
 * Spark: centring would make every entry non-zero); min-max scaler writes dense rows
 * (zeros map to non-zero values); one-hot encoder and hasher write sparse rows.
 * MODEL FILES (class, version 1):
 *   "ember.StandardScalerModel"  meta with_mean, with_std, num_features; arrays mean, std
 *   "ember.MinMaxScalerModel"    meta min, max (the output range), num_features;
 *                                arrays data_min, data_max
 *   "ember.OneHotEncoderModel"   meta drop_last, num_features; arrays columns (the
 *                                encoded column indices, ascending), sizes (categories of each)
 * THREADS: fit, transform, split, save and load on the driver thread of the data's
 * context; the structs are read-only after fit/load. */
#ifndef EMBER_MLLIB_FEATURE_FEATURE_H
#define EMBER_MLLIB_FEATURE_FEATURE_H

#include <stdbool.h>

#include "mllib/linalg/rows.h"

/* ---------------------------------------------------------------- standard scaler
 * x'_j = (x_j - mean_j) / std_j, each part only when asked; std_j is the unbiased
 * standard deviation (Spark's), and a column of std 0 becomes 0 (Spark's rule). */
typedef struct em_ml_std_scaler {
    uint32_t dim;
    bool with_mean, with_std;
    double *mean, *std;    /* dim each */
} em_ml_std_scaler;
int em_ml_std_scaler_fit(const em_ml_data *d, bool with_mean, bool with_std,
                         em_ml_std_scaler *out, em_err *err);
int em_ml_std_scaler_transform(const em_ml_std_scaler *s, const em_ml_data *in,
                               em_ml_data *out, em_err *err);
void em_ml_std_scaler_destroy(em_ml_std_scaler *s);
int em_ml_std_scaler_save(const em_ml_std_scaler *s, const char *dir, em_err *err);
int em_ml_std_scaler_load(const char *dir, em_ml_std_scaler *out, em_err *err);

/* ---------------------------------------------------------------- min-max scaler
 * x'_j = (x_j - min_j) / (max_j - min_j) * (hi - lo) + lo; a constant column becomes
 * (lo + hi) / 2 (Spark's rule). Output rows are dense. */
typedef struct em_ml_minmax_scaler {
    uint32_t dim;
    double lo, hi;
    double *data_min, *data_max;   /* dim each */
} em_ml_minmax_scaler;
int em_ml_minmax_scaler_fit(const em_ml_data *d, double lo, double hi,
                            em_ml_minmax_scaler *out, em_err *err);
int em_ml_minmax_scaler_transform(const em_ml_minmax_scaler *s, const em_ml_data *in,
                                  em_ml_data *out, em_err *err);
void em_ml_minmax_scaler_destroy(em_ml_minmax_scaler *s);
int em_ml_minmax_scaler_save(const em_ml_minmax_scaler *s, const char *dir, em_err *err);
int em_ml_minmax_scaler_load(const char *dir, em_ml_minmax_scaler *out, em_err *err);

/* ---------------------------------------------------------------- one-hot encoder
 * The given columns hold category indices (non-negative integers); each becomes a block
 * of indicator columns, one per category (the last dropped with drop_last, Spark's
 * default, so the blocks are linearly independent). Output row: the other columns in
 * their order, then the blocks in column order; sparse. fit finds each column's category
 * count (its maximum + 1, one pass); a value that is not a category of the fitted column
 * at transform time is EM_EINVAL naming the column and value (Spark's handleInvalid =
 * "error"). */
typedef struct em_ml_onehot {
    uint32_t dim;           /* input features */
    uint32_t ncols;
    uint32_t *cols;         /* ncols encoded columns (0-based), ascending */
    uint32_t *sizes;        /* categories of each */
    bool drop_last;
    uint32_t out_dim;       /* output features */
} em_ml_onehot;
int em_ml_onehot_fit(const em_ml_data *d, const uint32_t *cols, uint32_t ncols,
                     bool drop_last, em_ml_onehot *out, em_err *err);
int em_ml_onehot_transform(const em_ml_onehot *e, const em_ml_data *in, em_ml_data *out,
                           em_err *err);
void em_ml_onehot_destroy(em_ml_onehot *e);
int em_ml_onehot_save(const em_ml_onehot *e, const char *dir, em_err *err);
int em_ml_onehot_load(const char *dir, em_ml_onehot *out, em_err *err);

/* ---------------------------------------------------------------- feature hasher
 * The hashing trick: feature j (its 0-based index as 4 little-endian bytes) goes to column
 * murmur3_32(j, seed 42) mod num_features (Spark's HashingTF/FeatureHasher hash and seed,
 * non-negative modulo); with alternate_sign the value is negated when the hash's sign bit
 * is set (scikit-learn's FeatureHasher(alternate_sign=True)), so collisions cancel in
 * expectation. Values that land on one column are summed. Output rows are sparse. */
int em_ml_feature_hash(const em_ml_data *in, uint32_t num_features, bool alternate_sign,
                       em_ml_data *out, em_err *err);
/* MurmurHash3_x86_32 (Austin Appleby, public domain), the hash of the hasher. */
uint32_t em_ml_murmur3_32(const void *key, size_t n, uint32_t seed);

/* ---------------------------------------------------------------- random split
 * Splits rows into train (fraction train_fraction in expectation) and test: row i of
 * partition p goes to train when u(seed, p, i) < train_fraction, u a uniform double from a
 * hash of the three, so a row's side depends only on (seed, its partition, its place in
 * it): the same on every master and every run, and each row lands in exactly one side. */
int em_ml_random_split(const em_ml_data *in, double train_fraction, uint64_t seed,
                       em_ml_data *train, em_ml_data *test, em_err *err);

/* Registers the "ml.feature.*" task functions (idempotent; every transform calls it). */
int em_feature_register(void);

#endif /* EMBER_MLLIB_FEATURE_FEATURE_H */
