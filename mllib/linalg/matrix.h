/* mllib/linalg/matrix.h - distributed matrices over the row records of rows.h (Spark's
 * RowMatrix, IndexedRowMatrix and CoordinateMatrix).
 *
 * ROW MATRIX: an em_ml_data (labels, if any, are ignored). Column statistics in one pass;
 * the Gramian A^T A by SYRK per partition batch summed with tree_aggregate_acc; A B for a
 * local B by GEMM per batch.
 * INDEXED ROW MATRIX: KV records (key em_enc_i64 row index, value a row in the layout of
 * `layout`, unlabeled). COORDINATE MATRIX: FIXED 24-byte records (u64 i, u64 j, f64 value,
 * little-endian). Conversions between the three are lazy transformations; the returned
 * em_ml_matrix owns its dataset handle (em_ml_matrix_release).
 * THREADS: driver thread of the data's context. */
#ifndef EMBER_MLLIB_LINALG_MATRIX_H
#define EMBER_MLLIB_LINALG_MATRIX_H

#include "mllib/linalg/rows.h"

typedef struct em_ml_colstats {
    uint64_t count;
    uint32_t dim;
    double *mean, *variance;   /* variance: unbiased (n - 1), 0 when count < 2 */
    double *min, *max;         /* sparse rows: implicit zeros count */
    uint64_t *nnz;             /* non-zero entries per column */
} em_ml_colstats;

/* Count, mean, variance, min, max and nnz of every column in one pass. Free the arrays
 * with em_ml_colstats_destroy. Dense batches use a two-pass mean/M2 per batch and Chan et
 * al.'s pairwise merge ("Updating formulae and a pairwise algorithm for computing sample
 * variances", 1979); sparse rows accumulate sums of squares per batch. */
int em_ml_col_stats(const em_ml_data *d, em_ml_colstats *out, em_err *err);
void em_ml_colstats_destroy(em_ml_colstats *s);

/* g (dim x dim, row-major, both triangles filled) = A^T A. */
int em_ml_gramian(const em_ml_data *d, double *g, em_err *err);

/* out = A B for the row-major dim x k matrix b: dense FIXED rows of k doubles (labeled
 * like d, the label carried over), in d's order. out->rows is a new handle. */
int em_ml_multiply(const em_ml_data *d, const double *b, uint32_t k, em_ml_data *out,
                   em_err *err);

typedef enum em_ml_matrix_kind {
    EM_ML_INDEXED_ROWS = 1,
    EM_ML_COORDINATE = 2,
} em_ml_matrix_kind;

typedef struct em_ml_matrix {
    em_ml_matrix_kind kind;
    em_rdd *rdd;              /* owned handle */
    em_ml_data layout;        /* INDEXED_ROWS: the rows' layout (rows unused) */
    uint64_t nrows;           /* 0 = unknown */
    uint32_t ncols;
} em_ml_matrix;
void em_ml_matrix_release(em_ml_matrix *m);

/* Row matrix -> indexed rows numbered 0.. in order (zip_with_index: runs a counting job). */
int em_ml_to_indexed(const em_ml_data *d, em_ml_matrix *out, em_err *err);
/* Indexed rows -> coordinate entries (zeros of dense rows left out). */
int em_ml_indexed_to_coordinate(const em_ml_matrix *m, em_ml_matrix *out, em_err *err);
/* Coordinate entries -> indexed sparse rows (one per row index that has entries; entries
 * of one (i, j) are summed). */
int em_ml_coordinate_to_indexed(const em_ml_matrix *m, em_ml_matrix *out, em_err *err);
/* Indexed rows -> a row matrix (the indices dropped, as Spark's toRowMatrix). */
int em_ml_indexed_to_rows(const em_ml_matrix *m, em_ml_data *out, em_err *err);

#endif /* EMBER_MLLIB_LINALG_MATRIX_H */
