/* mllib/linalg/linalg.c - BLAS/LAPACK wrappers, the fused rank-1 kernel, and NNLS.
 *
 * WHY column-major LAPACK calls on row-major data: a symmetric matrix stored row-major with
 * its upper triangle filled is the same bytes as column-major with the lower triangle
 * filled, so dposv/dppsv run with uplo 'L' in column-major order and LAPACKE copies
 * nothing (its row-major entry points transpose into a temporary). */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "mllib/linalg/linalg.h"

static pthread_once_t la_once = PTHREAD_ONCE_INIT;

static void la_init_once(void)
{
    /* Tasks already occupy every core; nested BLAS threads only oversubscribe them. */
    openblas_set_num_threads(1);
}

void em_la_init(void)
{
    pthread_once(&la_once, la_init_once);
}

void em_la_syrk_acc(int k, int n, double alpha, const double *a, double *ata)
{
    if (n <= 0 || k <= 0)
        return;
    em_la_init();
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, k, n, alpha, a, k, 1.0, ata, k);
}

void em_la_gemv_t_acc(int k, int n, const double *a, const double *v, double *atb)
{
    if (n <= 0 || k <= 0)
        return;
    em_la_init();
    cblas_dgemv(CblasRowMajor, CblasTrans, n, k, 1.0, a, k, v, 1, 1.0, atb, 1);
}

void em_la_rank1_acc(int k, const float *y, double w, double c, double *ata, double *atb)
{
    for (int i = 0; i < k; i++) {
        double wy = w * (double)y[i];
        double *row = ata + (size_t)i * (size_t)k;
        for (int j = i; j < k; j++)
            row[j] += wy * (double)y[j];
        atb[i] += c * (double)y[i];
    }
}

void em_la_symmetrize(int k, double *a)
{
    for (int i = 0; i < k; i++)
        for (int j = i + 1; j < k; j++)
            a[(size_t)j * (size_t)k + (size_t)i] = a[(size_t)i * (size_t)k + (size_t)j];
}

void em_la_sgemm_nt(int m, int n, int k, const float *a, const float *b, float *c)
{
    if (m <= 0 || n <= 0)
        return;
    em_la_init();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c,
                n);
}

int em_la_chol_solve(int k, double *a, double *b, em_err *err)
{
    em_la_init();
    lapack_int info = LAPACKE_dposv(LAPACK_COL_MAJOR, 'L', k, 1, a, k, b, k);
    if (info > 0)
        return em_err_set(err, EM_EINVAL, "cholesky: leading minor %d of %d x %d is not "
                          "positive definite", (int)info, k, k);
    if (info < 0)
        return em_err_set(err, EM_EINVAL, "cholesky: dposv argument %d invalid", (int)-info);
    return 0;
}

int em_la_chol_solve_packed(int k, double *ap, double *b, em_err *err)
{
    em_la_init();
    lapack_int info = LAPACKE_dppsv(LAPACK_COL_MAJOR, 'L', k, 1, ap, b, k);
    if (info > 0)
        return em_err_set(err, EM_EINVAL, "cholesky: leading minor %d of %d x %d (packed) is "
                          "not positive definite", (int)info, k, k);
    if (info < 0)
        return em_err_set(err, EM_EINVAL, "cholesky: dppsv argument %d invalid", (int)-info);
    return 0;
}

/* ---------------------------------------------------------------- NNLS */

size_t em_la_nnls_work_size(int k)
{
    size_t kk = (size_t)(k > 0 ? k : 1);
    return kk * kk + 4 * kk;
}

/* Solves the unconstrained problem restricted to the passive set: A_PP z_P = b_P,
 * z_i = 0 outside P. sub is k*k scratch, rhs k scratch. */
static int solve_passive(int k, const double *a, const double *b, const unsigned char *pas,
                         double *z, double *sub, double *rhs, em_err *err)
{
    int idx[512];
    int np = 0;
    for (int i = 0; i < k; i++)
        if (pas[i])
            idx[np++] = i;
    for (int r = 0; r < np; r++) {
        for (int c = r; c < np; c++)
            sub[(size_t)r * (size_t)np + (size_t)c] =
                a[(size_t)idx[r] * (size_t)k + (size_t)idx[c]];
        rhs[r] = b[idx[r]];
    }
    int rc = np ? em_la_chol_solve(np, sub, rhs, err) : 0;
    if (rc < 0)
        return em_err_prefix(err, "nnls passive set of %d", np);
    memset(z, 0, (size_t)k * sizeof *z);
    for (int r = 0; r < np; r++)
        z[idx[r]] = rhs[r];
    return 0;
}

/* w = b - A x with A symmetric, upper triangle stored. */
static void neg_gradient(int k, const double *a, const double *b, const double *x, double *w)
{
    for (int i = 0; i < k; i++) {
        double s = b[i];
        for (int j = 0; j < k; j++) {
            double aij = i <= j ? a[(size_t)i * (size_t)k + (size_t)j]
                                : a[(size_t)j * (size_t)k + (size_t)i];
            s -= aij * x[j];
        }
        w[i] = s;
    }
}

/* Inner loop of Lawson-Hanson: moves x toward the passive-set optimum z, dropping
 * components that would turn negative, until z is strictly feasible. */
static int nnls_inner(int k, const double *a, const double *b, double *x, unsigned char *pas,
                      double *z, double *sub, double *rhs, em_err *err)
{
    for (int guard = 0; guard < 3 * k + 3; guard++) {
        int rc = solve_passive(k, a, b, pas, z, sub, rhs, err);
        if (rc < 0)
            return rc;
        double alpha = 2.0;
        int drop = -1;
        for (int i = 0; i < k; i++)
            if (pas[i] && z[i] <= 0.0) {
                double t = x[i] / (x[i] - z[i]);
                if (t < alpha) {
                    alpha = t;
                    drop = i;
                }
            }
        if (drop < 0) {
            memcpy(x, z, (size_t)k * sizeof *x);
            return 0;
        }
        for (int i = 0; i < k; i++) {
            x[i] += alpha * (z[i] - x[i]);
            if (pas[i] && (i == drop || x[i] <= 1e-15)) {
                pas[i] = 0;
                x[i] = 0.0;
            }
        }
    }
    return 0;
}

int em_la_nnls(int k, const double *a, const double *b, double *x, double *work, em_err *err)
{
    if (k <= 0 || k > 512)
        return em_err_set(err, EM_EINVAL, "nnls: dimension %d (1..512)", k);
    double *sub = work, *z = work + (size_t)k * (size_t)k, *w = z + k, *rhs = w + k;
    unsigned char pas[512];
    double bmax = 0.0;
    for (int i = 0; i < k; i++)
        bmax = fmax(bmax, fabs(b[i]));
    double tol = 1e-12 * (bmax + 1.0);
    memset(pas, 0, sizeof pas);
    memset(x, 0, (size_t)k * sizeof *x);
    for (int outer = 0; outer < 3 * k; outer++) {
        neg_gradient(k, a, b, x, w);
        int t = -1;
        for (int i = 0; i < k; i++)
            if (!pas[i] && w[i] > tol && (t < 0 || w[i] > w[t]))
                t = i;
        if (t < 0)
            break;
        pas[t] = 1;
        int rc = nnls_inner(k, a, b, x, pas, z, sub, rhs, err);
        if (rc < 0)
            return rc;
        if (!pas[t]) /* the new index was dropped at once: nothing more to gain */
            break;
    }
    return 0;
}
