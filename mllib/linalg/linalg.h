/* mllib/linalg/linalg.h - small dense linear algebra for MLlib over CBLAS and LAPACKE:
 * Gram accumulation (syrk), matrix products, Cholesky solves of symmetric positive
 * definite systems and non-negative least squares on normal equations.
 *
 * LAYOUT: matrices are row-major with a leading dimension equal to the column count unless
 * stated. A "k x k symmetric" argument is a full k*k array of which only the UPPER triangle
 * (row-major; i <= j) is read or written; the lower triangle is scratch.
 * THREADS: every function may be called from any thread on distinct arguments. BLAS runs
 * single-threaded inside ember tasks (em_la_init), since tasks already use every core. */
#ifndef EMBER_MLLIB_LINALG_H
#define EMBER_MLLIB_LINALG_H

#include <stddef.h>

#include "engine/base/base.h"

/* Makes OpenBLAS single-threaded (idempotent, any thread). Every function below calls it. */
void em_la_init(void);
/* The widest SIMD the CPU offers for hand-written kernels, probed once at run time (calls
 * em_la_init): 3 AVX-512F, 2 AVX2 + FMA, 0 neither (or not x86-64). Any thread. */
int em_la_simd(void);

/* ata (k x k symmetric, upper) += alpha * A^T A for the row-major n x k matrix a (dsyrk). */
void em_la_syrk_acc(int k, int n, double alpha, const double *a, double *ata);
/* atb (k) += A^T v for the row-major n x k matrix a (dgemv). */
void em_la_gemv_t_acc(int k, int n, const double *a, const double *v, double *atb);
/* Fused kernel: ata += w * y y^T (upper) and atb += c * y, for one float vector y of
 * length k, accumulated in double. The hot loop of ALS for small ranks. */
void em_la_rank1_acc(int k, const float *y, double w, double c, double *ata, double *atb);
/* Gram accumulation on a gathered tile, the hot loop of ALS: ata (k x k symmetric, upper)
 * += T^T T for the row-major n x k tile t with leading dimension ld (ld >= k; columns k..ld-1
 * are ignored). Register-blocked AVX2/FMA kernel when the CPU has it and ld % 4 == 0 (the
 * padding columns must then be finite), portable loops otherwise; same result to rounding. */
void em_la_syrk_tile(int k, int n, const double *t, int ld, double *ata);
/* Gathers n float vectors of length k into a row-major double tile (leading dimension
 * ld >= k + 1): tile[s][q] = scale[s] * rows[s][q] (scale NULL: 1) and tile[s][k] =
 * last[s]; columns k+1..ld-1 are set to 0 (em_la_syrk_tile's AVX2 kernel reads them: left
 * uninitialized they held heap garbage, and subnormal garbage made the FMAs take microcode
 * assists, one block of 50M ratings solving 4x slower). With last = the ratings, em_la_syrk_tile
 * of k + 1 columns yields Y^T Y and, in column k, Y^T r in one pass. */
void em_la_gather_f32(int k, int n, const float *const *rows, const double *scale,
                      const double *last, int ld, double *tile);
/* The two above in one pass, the hot loop of ALS: ext ((k+1) x (k+1) symmetric, upper,
 * row-major) += V^T V for the n rows v_s = [scale[s] * rows[s][0..k), last[s]] (scale NULL:
 * 1). On CPUs with AVX-512 and k + 1 <= 16 a fused kernel reads the float rows directly;
 * otherwise the rows are gathered into tile (caller's scratch of n x ld doubles, ld >=
 * round_up(k + 1, 4)) and em_la_syrk_tile runs on it. Same result to rounding. */
void em_la_syrk_rows_f32(int k, int n, const float *const *rows, const double *scale,
                         const double *last, int ld, double *tile, double *ext);
/* Copies the upper triangle of the k x k matrix a into its lower triangle. */
void em_la_symmetrize(int k, double *a);

/* C (m x n, float) = A (m x k, float) * B^T (n x k, float) (sgemm). */
void em_la_sgemm_nt(int m, int n, int k, const float *a, const float *b, float *c);

/* Solves A x = b for the k x k SPD matrix a (upper triangle used; destroyed: it holds the
 * Cholesky factor afterwards); b is overwritten with x. LAPACK dposv.
 * EM_EINVAL when a is not positive definite (naming the failing minor). */
int em_la_chol_solve(int k, double *a, double *b, em_err *err);
/* As em_la_chol_solve, inlined (no LAPACK call, no NaN scan): for the small ranks of ALS,
 * where LAPACKE's per-call overhead is most of the cost. Any k >= 1; same error contract. */
int em_la_chol_solve_small(int k, double *a, double *b, em_err *err);
/* As em_la_chol_solve for a packed upper triangle ap (k(k+1)/2 doubles, row-major upper =
 * column-major lower order, as LAPACK's dppsv 'L' with column-major storage). */
int em_la_chol_solve_packed(int k, double *ap, double *b, em_err *err);

/* Non-negative least squares in normal-equation form:
 *     minimise 1/2 x^T A x - b^T x  subject to x >= 0,
 * for a k x k SPD a (upper triangle used, not modified) and b (k). This is
 * min ||M x - y||^2 with A = M^T M, b = M^T y. Lawson & Hanson's active-set method
 * ("Solving Least Squares Problems", 1974, ch. 23), working on A and b directly: the
 * passive set grows by the most violated KKT multiplier and each inner step solves the
 * unconstrained problem on the passive set by Cholesky, stepping back to the boundary
 * when a component would turn negative. Finite termination; capped at 3k outer steps.
 * work: at least em_la_nnls_work_size(k) doubles. x: output (k). EM_EINVAL if the
 * passive-set systems are not positive definite. */
size_t em_la_nnls_work_size(int k);
int em_la_nnls(int k, const double *a, const double *b, double *x, double *work, em_err *err);

#endif /* EMBER_MLLIB_LINALG_H */
