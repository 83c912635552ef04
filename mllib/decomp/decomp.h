/* mllib/decomp/decomp.h - matrix decompositions of a distributed row matrix: the truncated
 * singular value decomposition (SVD) and principal component analysis (PCA), and the
 * `ember ml svd` / `ember ml pca` commands. docs/decomp.md describes the algorithms.
 *
 * INPUT is an em_ml_data (mllib/linalg/rows.h): dense or sparse rows, labeled or not (the
 * label is ignored); the rows are read once per distributed pass, so a caller persists
 * them (em_ml_read does). A data set of n rows and d = dim columns is the n x d matrix A.
 *
 * SVD PATHS. A = U Sigma V^T; the top k singular values come from the eigenvalues of the
 * Gramian A^T A (sigma_i = sqrt(lambda_i)), V from its eigenvectors:
 *   gramian  one pass: A^T A by dsyrk per dense batch (sparse rows: outer products of
 *            each row's entries), summed by tree aggregation, then LAPACK's dsyevr on the
 *            d x d matrix on the driver. O(n d^2) work, d^2 doubles of memory per task.
 *   lanczos  thick-restart Lanczos on the operator x -> A^T (A x), each application one
 *            distributed pass (the vector broadcast, dgemv per dense batch or a sparse
 *            loop per row, tree aggregation of d doubles), with full reorthogonalisation
 *            and the Ritz problem (dsyevr) on the driver. O(d) memory per task; for wide
 *            matrices whose d x d Gramian does not fit.
 *   auto     gramian when d <= EM_SVD_GRAMIAN_MAX_DIM, lanczos otherwise.
 * Both square the condition number: sigma_i is determined only to about
 * eps * sigma_1^2 / sigma_i, so values below sqrt(d eps) sigma_1 are numerically zero.
 * The cut drops every sigma_i < max(rcond, sqrt(d eps)) * sigma_1 (Spark's rCond, made
 * honest about the squaring); fewer than k values may come back.
 *
 * THREADS: the entry points run jobs on their context from the calling (driver) thread;
 * any number of threads may call them on distinct results. Results and models are plain
 * memory owned by the caller. */
#ifndef EMBER_MLLIB_DECOMP_H
#define EMBER_MLLIB_DECOMP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/ember.h"
#include "mllib/linalg/rows.h"

#define EM_SVD_GRAMIAN_MAX_DIM 2048u   /* auto: the Gramian path up to this many columns */
#define EM_DECOMP_MAX_GRAM_DIM 16384u  /* a forced Gramian (or PCA) beyond this is refused:
                                          its d x d accumulator would be over 2 GiB a task */
#define EM_DECOMP_MAX_DIM (1u << 28)   /* columns of any input (Lanczos vectors: 2 GiB) */

typedef enum em_svd_mode {
    EM_SVD_AUTO = 0,
    EM_SVD_GRAMIAN = 1,
    EM_SVD_LANCZOS = 2,
} em_svd_mode;

/* Parses "auto", "gramian", "lanczos"; -1 when unknown. */
int em_svd_mode_parse(const char *s);
const char *em_svd_mode_name(em_svd_mode m);

typedef struct em_svd_opts {
    uint32_t k;          /* singular values wanted, 1..d */
    em_svd_mode mode;    /* AUTO (zero) picks by d */
    double rcond;        /* reciprocal condition cut; 0 = 1e-9 */
    bool compute_u;      /* also U = A V Sigma^-1 as a distributed row matrix */
    uint32_t depth;      /* tree aggregation depth; 0 = 2 */
    /* Lanczos only: */
    double tol;          /* Ritz residual ||A^T A y - theta y|| <= tol * theta_1; 0 = 1e-10 */
    uint32_t ncv;        /* basis vectors kept between restarts; 0 = max(2k + 1, k + 20),
                            at most d */
    uint32_t max_products;   /* distributed A^T A x products; 0 = max(300, 30 * ncv) */
    uint64_t seed;       /* start vector */
} em_svd_opts;

/* Rows computed from a data set by a map over its rows with a broadcast matrix (U of an
 * SVD, a PCA projection): FIXED records of `width` doubles, in the order of the input rows
 * and with its partitioning. The broadcast lives as long as the rows may be computed. */
typedef struct em_decomp_rows {
    em_rdd *rows;        /* owned reference; NULL when none */
    uint32_t bcast;      /* the broadcast the map reads; 0 when none */
    uint32_t width;      /* doubles per row */
} em_decomp_rows;
/* Releases the rows and destroys their broadcast; zeroes r (a zeroed r is a no-op).
 * Driver thread of sc. */
void em_decomp_rows_release(em_context *sc, em_decomp_rows *r);

typedef struct em_svd_result {
    uint32_t k;          /* singular values kept after the cut (<= opts.k) */
    uint32_t dim;        /* d */
    uint64_t nrows;      /* n */
    double *s;           /* k singular values, descending (em_malloc'd) */
    double *v;           /* d x k row-major: column j is the right singular vector of s[j],
                            its largest-magnitude component positive (em_malloc'd) */
    em_svd_mode mode;    /* the path taken (GRAMIAN or LANCZOS) */
    double rcond;        /* the effective cut: max(opts rcond, sqrt(d eps)) */
    uint32_t products;   /* distributed passes over the rows (gramian: 1) */
    uint32_t restarts;   /* lanczos restarts */
    em_decomp_rows u;    /* compute_u: U (n x k rows of k doubles), else zero */
} em_svd_result;

/* Truncated SVD of the rows of a. 0, or: EM_EINVAL (k not in 1..d, d too large for the
 * path, Lanczos not converged within max_products), errors of the jobs. On failure *out is
 * zeroed. */
int em_svd(em_context *sc, const em_ml_data *a, const em_svd_opts *o, em_svd_result *out,
           em_err *err);
/* Frees s and v and releases u; zeroes r. NULL-safe fields; driver thread of sc. */
void em_svd_result_destroy(em_context *sc, em_svd_result *r);

/* ---------------------------------------------------------------- PCA
 * Centred covariance C = (A - 1 mu^T)^T (A - 1 mu^T) / (n - 1) in one pass: dense batches
 * are centred on their own mean and merged pairwise (Chan, Golub & LeVeque, "Updating
 * formulae and a pairwise algorithm for computing sample variances", 1979), so no
 * A^T A - n mu mu^T cancellation; sparse rows accumulate A^T A and the column sums and
 * subtract n mu mu^T on the driver (centring would densify them). The top k eigenpairs of C
 * (dsyevr) are the components; explained variance ratio = lambda_i / trace(C), as
 * scikit-learn's PCA. */
typedef struct em_pca_model {
    uint32_t dim, k;
    uint64_t nrows;                 /* rows the model was fitted on */
    double total_variance;          /* trace(C) */
    double *mean;                   /* dim */
    double *components;             /* k x dim row-major: row i is component i, unit norm,
                                       its largest-magnitude entry positive */
    double *explained_variance;     /* k: eigenvalues of C, descending */
    double *explained_variance_ratio;   /* k: explained_variance / total_variance */
} em_pca_model;

typedef struct em_pca_opts {
    uint32_t depth;      /* tree aggregation depth; 0 = 2 */
} em_pca_opts;                      /* zero = defaults; NULL ok */

/* Fits k components (1 <= k <= d <= EM_DECOMP_MAX_GRAM_DIM, n >= 2). *out is a new model
 * (em_pca_model_free) or NULL on failure. */
int em_pca_fit(em_context *sc, const em_ml_data *a, uint32_t k, const em_pca_opts *o,
               em_pca_model **out, em_err *err);
/* The projections (x - mean) . component_i of every row: rows of k doubles (lazy: computed
 * when an action runs on out->rows). m is copied into a broadcast; it may be freed after. */
int em_pca_transform(em_context *sc, const em_pca_model *m, const em_ml_data *a,
                     em_decomp_rows *out, em_err *err);
void em_pca_model_free(em_pca_model *m);   /* NULL ok */

/* A model directory (mllib/linalg/model_dir.h): metadata.json (class "ember.pca", version
 * 1, "dim", "k", "nrows", "total_variance", "explained_variance_ratio": [...]
 * (informative), "arrays") and arrays.bin (the array "arrays", checksummed: little-endian
 * doubles mean (dim), components (k x dim), explained variance (k)). Written to a
 * temporary directory and renamed: a failed save leaves nothing. EM_EINVAL if dir exists. */
int em_pca_model_save(const em_pca_model *m, const char *dir, em_err *err);
int em_pca_model_load(const char *dir, em_pca_model **out, em_err *err);
/* The decoder behind load, on untrusted bytes (fuzz target tests/fuzz/fuzz_pca_model.c):
 * EM_ECORRUPT naming name and what is wrong; *out NULL then. */
int em_pca_model_decode(const char *name, const uint8_t *meta, size_t meta_len,
                        const uint8_t *arrays, size_t arrays_len, em_pca_model **out,
                        em_err *err);

/* ---------------------------------------------------------------- registration, commands */

/* Registers the "ml.decomp.*" task functions (idempotent, any thread). */
int em_decomp_register(void);

/* `ember ml svd ...` and `ember ml pca ...` (argv[0] = "svd" / "pca"): 0, 1 failure,
 * 2 bad usage. */
int em_svd_cli_main(int argc, char **argv);
void em_svd_cli_help(FILE *f);
int em_pca_cli_main(int argc, char **argv);
void em_pca_cli_help(FILE *f);

#endif /* EMBER_MLLIB_DECOMP_H */
