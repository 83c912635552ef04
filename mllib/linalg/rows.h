/* mllib/linalg/rows.h - the record layouts every MLlib estimator takes, and the loaders and
 * distributed matrices built on them (the contract shared by k-means, SVD/PCA, the linear
 * models and the SQL bridge).
 *
 * RECORD LAYOUTS (plain records; all numbers little-endian, as the host):
 *   dense row        FIXED record of 8*d bytes: d doubles. A partition's batch of n dense
 *                    rows (em_iter_next_batch) is a row-major n x d matrix, 64-byte aligned,
 *                    handed to BLAS as it is.
 *   sparse row       BYTES record: u32 nnz, u32 pad (0), then nnz u32 column indices
 *                    (0-based, strictly ascending), then (at offset 8 + 4*nnz rounded up
 *                    to 8) nnz doubles. Readers never assume alignment (memcpy or unaligned
 *                    loads); writers use em_ml_sparse_encode.
 *   labeled point    dense: FIXED record of 8*(d+1) bytes, the label first, then the d
 *                    features. sparse: BYTES record: a double label, then a sparse row.
 * A data set carries its layout in em_ml_data, so an estimator knows d and density without
 * a pass over the data.
 *
 * LOADERS parse on the executors, partition by partition (text splits of the file, then a
 * registered partition function per split): LIBSVM/SVMlight (1-based ascending indices,
 * '#' comments) and CSV/TSV with a header line and a named label column. A bad line is an
 * error naming the file and line, or a counted skip with skip_bad_lines.
 * em_ml_read is EAGER: it persists the parsed rows (MEMORY_AND_DISK) and runs one job to
 * count them, so every estimator iterates over parsed rows, and a bad line is reported by
 * em_ml_read itself (docs/mllib-linalg.md). */
#ifndef EMBER_MLLIB_LINALG_ROWS_H
#define EMBER_MLLIB_LINALG_ROWS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/ember.h"

typedef enum em_ml_format {
    EM_ML_AUTO = 0,     /* commands only (mllib/ml_cli.h): by the file name */
    EM_ML_CSV = 1,      /* comma separated, header line */
    EM_ML_TSV = 2,      /* tab separated, header line */
    EM_ML_LIBSVM = 3,   /* label idx:val idx:val ... */
} em_ml_format;

typedef struct em_ml_data {
    em_rdd *rows;       /* owned reference: records in the layout below */
    bool sparse;        /* sparse rows (else dense FIXED rows) */
    bool labeled;       /* labeled points (else plain rows) */
    uint32_t dim;       /* features per row (sparse: the column count) */
    uint64_t nrows;     /* rows, when known (em_ml_read fills it); else 0 */
    uint64_t skipped;   /* bad lines skipped by em_ml_read (skip_bad_lines) */
} em_ml_data;

typedef struct em_ml_read_opts {
    em_ml_format format;
    const char *label;       /* CSV/TSV: label column name; NULL = unlabeled rows */
    uint32_t dim;            /* LIBSVM: feature count; 0 = the largest index seen (one pass) */
    bool dense;              /* LIBSVM: produce dense rows (else sparse) */
    bool skip_bad_lines;     /* count and skip bad lines instead of failing */
    uint32_t min_partitions; /* 0 = the context's default parallelism */
    bool coalesce;           /* join the parsed splits (no shuffle) into the context's
                              * default parallelism partitions, one per task slot: fewer,
                              * larger tasks for many-pass work whose cost per task and per
                              * partial result is fixed (Lanczos: one job per product, a
                              * partial of 8 d bytes per partition) */
} em_ml_read_opts;

/* Reads a file (or a directory of part files) into *out. Errors name file:line and why. */
int em_ml_read(em_context *sc, const char *path, const em_ml_read_opts *o, em_ml_data *out,
               em_err *err);
void em_ml_data_release(em_ml_data *d);   /* drops the rows reference; NULL-safe fields */

/* Encodes a sparse row (indices strictly ascending) into out (appended). */
int em_ml_sparse_encode(uint32_t nnz, const uint32_t *idx, const double *val, em_vbuf *out);

/* A decoded sparse row: borrowed views into the record (valid as long as its bytes). val
 * is not necessarily aligned: read it with em_ml_sparse_val. */
typedef struct em_ml_sparse {
    uint32_t nnz;
    const uint8_t *idx;    /* nnz little-endian u32 */
    const uint8_t *val;    /* nnz little-endian doubles */
} em_ml_sparse;
/* Bytes of the encoding of a sparse row of nnz entries. */
static inline size_t em_ml_sparse_size(uint32_t nnz)
{
    return 8 + (((size_t)4 * nnz + 7) & ~(size_t)7) + (size_t)8 * nnz;
}
/* Checks and views a sparse row record (untrusted bytes: the exact size, indices strictly
 * ascending and < dim when dim > 0). EM_ECORRUPT naming what is wrong. */
int em_ml_sparse_view(em_slice rec, uint32_t dim, em_ml_sparse *out, em_err *err);
static inline uint32_t em_ml_sparse_idx(const em_ml_sparse *s, uint32_t i)
{
    return em_load_le32(s->idx + (size_t)4 * i);
}
static inline double em_ml_sparse_val(const em_ml_sparse *s, uint32_t i)
{
    double v;
    __builtin_memcpy(&v, s->val + (size_t)8 * i, 8);
    return v;
}

/* The features of one record of a data set, whatever its layout: dense rows point into the
 * record (features: d doubles, possibly unaligned when read from a BYTES record), sparse
 * rows are viewed. label is 0 for unlabeled rows. */
typedef struct em_ml_row {
    double label;
    const uint8_t *dense;   /* dense: d doubles; NULL for sparse */
    em_ml_sparse sp;        /* sparse: the entries */
} em_ml_row;
int em_ml_row_view(const em_ml_data *layout, em_slice rec, em_ml_row *out, em_err *err);

/* Writes a data set as text: dir/part-NNNNN and dir/_SUCCESS (em_rdd_save_as_text_file;
 * EM_EINVAL if dir exists). LIBSVM: "label i:v ..." with 1-based indices (zeros of dense
 * rows omitted; unlabeled rows get label 0). CSV/TSV: a header line in every part file
 * ("label,f1,...,fd"; unlabeled: "f1,...,fd"), then one row a line, sparse rows densified.
 * Numbers are written with 17 significant digits, so reading them back is exact. */
int em_ml_write(const em_ml_data *d, const char *dir, em_ml_format format, em_err *err);

/* A data set's layout in task contexts: 6 bytes (u8 sparse, u8 labeled, u32 dim LE), so a
 * task function knows the records it reads. decode checks the bytes (untrusted): EM_ECORRUPT
 * naming what is wrong; layout->rows is NULL. */
#define EM_ML_LAYOUT_SIZE 6
void em_ml_layout_encode(const em_ml_data *d, uint8_t out[EM_ML_LAYOUT_SIZE]);
int em_ml_layout_decode(em_slice blob, em_ml_data *layout, em_err *err);

/* Registers the "ml.linalg.*" task functions (idempotent; em_ml_read calls it). */
int em_linalg_register(void);

#endif /* EMBER_MLLIB_LINALG_ROWS_H */
