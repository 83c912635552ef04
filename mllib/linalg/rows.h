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
 * error naming the file and line, or a counted skip with skip_bad_lines. */
#ifndef EMBER_MLLIB_LINALG_ROWS_H
#define EMBER_MLLIB_LINALG_ROWS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/ember.h"

typedef enum em_ml_format {
    EM_ML_CSV = 1,      /* comma separated, header line */
    EM_ML_TSV = 2,      /* tab separated, header line */
    EM_ML_LIBSVM = 3,   /* label idx:val idx:val ... */
} em_ml_format;

typedef struct em_ml_data {
    em_rdd *rows;       /* owned reference: records in the layout below */
    bool sparse;        /* sparse rows (else dense FIXED rows) */
    bool labeled;       /* labeled points (else plain rows) */
    uint32_t dim;       /* features per row (sparse: the column count) */
} em_ml_data;

typedef struct em_ml_read_opts {
    em_ml_format format;
    const char *label;       /* CSV/TSV: label column name; NULL = unlabeled rows */
    uint32_t dim;            /* LIBSVM: feature count; 0 = the largest index seen (one pass) */
    bool dense;              /* LIBSVM: produce dense rows (else sparse) */
    bool skip_bad_lines;     /* count and skip bad lines instead of failing */
    uint32_t min_partitions; /* 0 = the context's default parallelism */
} em_ml_read_opts;

/* Reads a file (or a directory of part files) into *out. Errors name file:line and why. */
int em_ml_read(em_context *sc, const char *path, const em_ml_read_opts *o, em_ml_data *out,
               em_err *err);
void em_ml_data_release(em_ml_data *d);   /* drops the rows reference; NULL-safe fields */

/* Encodes a sparse row (indices strictly ascending) into out (appended). */
int em_ml_sparse_encode(uint32_t nnz, const uint32_t *idx, const double *val, em_vbuf *out);

#endif /* EMBER_MLLIB_LINALG_ROWS_H */
