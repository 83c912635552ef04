/* mllib/decomp/decomp_int.h - what the files of mllib/decomp share and nobody else sees: the
 * context blob of the task functions, the accumulator layouts, the task functions of the
 * "ml.decomp.*" table and the driver-side steps (Gramian pass, eigen-decomposition,
 * Lanczos, the row map).
 *
 * CONTEXT BLOB (every ml.decomp.* function; little-endian, EM__DC_BLOB_SIZE bytes, built by
 * em__dc_blob_encode on the driver and checked by em__dc_blob_decode on the executors):
 *     0  u32  magic "EMDC"
 *     4  u8   sparse          rows are sparse (BYTES) records, else dense FIXED records
 *     5  u8   labeled         each row starts with a double label (skipped)
 *     6  u8   centre          project: subtract the broadcast mean first
 *     7  u8   reserved (0)
 *     8  u32  dim             d, 1..EM_DECOMP_MAX_DIM
 *    12  u32  nvec            op: vectors in the broadcast block (b); project: outputs (k)
 *    16  u32  bcast           broadcast id (op, project); 0 for the Gramian functions
 *    20  u32  reserved (0)
 *
 * ACCUMULATORS (doubles, host order; the engine zero-fills them):
 *   gram  [n, s (d), G (d x d)]: rows, column sums, A^T A (upper triangle, row-major; the
 *         strict lower triangle stays 0). Merge: element-wise sum.
 *   cov   [n, mu (d), M (d x d)]: rows, mean, co-moment sum (x - mu)(x - mu)^T (upper).
 *         Dense only. Merge: Chan et al.'s pairwise update.
 *   op    [n, W (d x b)]: rows, A^T (A V) for the broadcast V (d x b row-major). Merge: sum.
 *
 * BROADCASTS: op: V (d x b doubles). project: [mu (d) if centre] P (d x k) then scale (k):
 * each output row is ((x - mu) P) .* scale. */
#ifndef EMBER_MLLIB_DECOMP_INT_H
#define EMBER_MLLIB_DECOMP_INT_H

#include "mllib/decomp/decomp.h"

#define EM__DC_MAGIC 0x43444d45u   /* "EMDC" */
#define EM__DC_BLOB_SIZE 24

typedef struct em__dc_blob {
    bool sparse, labeled, centre;
    uint32_t dim, nvec, bcast;
} em__dc_blob;

void em__dc_blob_encode(const em__dc_blob *b, uint8_t out[EM__DC_BLOB_SIZE]);
int em__dc_blob_decode(em_slice blob, em__dc_blob *out, em_err *err);
/* The blob of the functions that read data set a (sparse, labeled, dim). */
em__dc_blob em__dc_blob_of(const em_ml_data *a);

/* Task functions (kernels.c). */
int em__dc_fn_gram(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                   em_err *err);
int em__dc_fn_cov(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                  em_err *err);
int em__dc_fn_cov_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                        em_err *err);
int em__dc_fn_op(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                 em_err *err);
int em__dc_fn_sum_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                        em_err *err);
int em__dc_fn_project(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err);

/* ---------------------------------------------------------------- driver steps */

/* One pass over a: the gram accumulator (centred = false) or the cov accumulator (centred,
 * dense rows only) as 1 + d + d*d doubles in *out (em_free). */
int em__dc_gram_pass(const em_ml_data *a, bool centred, uint32_t depth, double **out,
                     em_err *err);
/* The k largest eigenpairs of the d x d symmetric matrix g (upper triangle, row-major;
 * destroyed): vals descending (k), vecs d x k row-major (column j for vals[j]), each
 * column's largest-magnitude entry made positive. LAPACK dsyevr. */
int em__dc_eig_top(uint32_t d, double *g, uint32_t k, double *vals, double *vecs,
                   em_err *err);
/* Makes the largest-magnitude entry of each of the k columns of the d x k row-major
 * matrix v positive (a sign convention, so reruns and backends print the same vectors). */
void em__dc_fix_signs(uint32_t d, uint32_t k, double *v);

typedef struct em__dc_lanczos_stats {
    uint64_t nrows;
    uint32_t products, restarts;
} em__dc_lanczos_stats;
/* The k largest eigenpairs of A^T A by thick-restart Lanczos (lanczos.c); vals descending,
 * vecs d x k row-major. cut: eigenvalues below cut * theta_1 need not converge (they are
 * dropped by the caller). */
int em__dc_lanczos(em_context *sc, const em_ml_data *a, const em_svd_opts *o, uint32_t k,
                   double cut, double *vals, double *vecs, em__dc_lanczos_stats *st,
                   em_err *err);

/* Rows ((x - mu) P) .* scale of a (mu NULL: no centring; P d x k row-major; scale k) as
 * FIXED rows of k doubles, through a broadcast of mu, P, scale. */
int em__dc_project(em_context *sc, const em_ml_data *a, const double *mu, const double *p,
                   const double *scale, uint32_t k, em_decomp_rows *out, em_err *err);

/* A PCA model with its arrays allocated (zeroed), or NULL (pca.c). */
em_pca_model *em__dc_pca_alloc(uint32_t dim, uint32_t k);

/* Registers the module's functions and checks what every entry point needs of a data set. */
int em__dc_check_data(const em_ml_data *a, const char *what, em_err *err);

#endif /* EMBER_MLLIB_DECOMP_INT_H */
