/* tests/unit/linalg/test_linalg.c - BLAS/LAPACK wrappers and NNLS against naive references.
 * Tolerances: 1e-10 relative for double kernels, 1e-4 for float sgemm, 1e-8 for NNLS. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "mllib/linalg/linalg.h"

static void fill(em_rng *r, double *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = em_rng_double(r) * 2.0 - 1.0;
}

/* A random SPD matrix M^T M + k I (full, both triangles). */
static void make_spd(em_rng *r, int k, double *a)
{
    double m[64 * 64];
    fill(r, m, (size_t)k * k);
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            double s = i == j ? 0.5 : 0.0;
            for (int t = 0; t < k; t++)
                s += m[t * k + i] * m[t * k + j];
            a[i * k + j] = s;
        }
}

Test(linalg, syrk_gemv_rank1_match_naive)
{
    em_rng r;
    em_rng_seed(&r, 1);
    enum { K = 7, N = 13 };
    double a[N * K], v[N], ata[K * K] = {0}, atb[K] = {0}, ref[K * K] = {0}, refb[K] = {0};
    double f_ata[K * K] = {0}, f_atb[K] = {0};
    fill(&r, a, N * K);
    fill(&r, v, N);
    em_la_syrk_acc(K, N, 1.0, a, ata);
    em_la_gemv_t_acc(K, N, a, v, atb);
    for (int t = 0; t < N; t++) {
        float y[K];
        for (int i = 0; i < K; i++)
            y[i] = (float)a[t * K + i];
        em_la_rank1_acc(K, y, 1.0, v[t], f_ata, f_atb);
        for (int i = 0; i < K; i++) {
            refb[i] += a[t * K + i] * v[t];
            for (int j = 0; j < K; j++)
                ref[i * K + j] += a[t * K + i] * a[t * K + j];
        }
    }
    for (int i = 0; i < K; i++) {
        cr_assert_float_eq(atb[i], refb[i], 1e-10);
        cr_assert_float_eq(f_atb[i], refb[i], 1e-6);
        for (int j = i; j < K; j++) {
            cr_assert_float_eq(ata[i * K + j], ref[i * K + j], 1e-10, "(%d,%d)", i, j);
            cr_assert_float_eq(f_ata[i * K + j], ref[i * K + j], 1e-6, "(%d,%d)", i, j);
        }
    }
    em_la_symmetrize(K, ata);
    cr_assert_float_eq(ata[5 * K + 2], ref[5 * K + 2], 1e-10);
}

Test(linalg, sgemm_nt_matches_naive)
{
    em_rng r;
    em_rng_seed(&r, 2);
    enum { M = 5, N = 9, K = 4 };
    float a[M * K], b[N * K], c[M * N];
    for (int i = 0; i < M * K; i++)
        a[i] = (float)em_rng_double(&r);
    for (int i = 0; i < N * K; i++)
        b[i] = (float)em_rng_double(&r);
    em_la_sgemm_nt(M, N, K, a, b, c);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0;
            for (int t = 0; t < K; t++)
                s += a[i * K + t] * b[j * K + t];
            cr_assert_float_eq(c[i * N + j], s, 1e-4);
        }
}

Test(linalg, cholesky_solves_spd_full_and_packed)
{
    em_rng r;
    em_rng_seed(&r, 3);
    for (int k = 1; k <= 20; k += 3) {
        double a[400], a2[400], ap[210], x[20], xp[20], b[20];
        em_err err = EM_ERR_INIT;
        make_spd(&r, k, a);
        fill(&r, b, (size_t)k);
        memcpy(a2, a, sizeof a);
        memcpy(x, b, sizeof b);
        memcpy(xp, b, sizeof b);
        int p = 0;
        for (int i = 0; i < k; i++)
            for (int j = i; j < k; j++)
                ap[p++] = a[i * k + j];
        for (int i = 0; i < k; i++)   /* garbage in the lower triangle must be ignored */
            for (int j = 0; j < i; j++)
                a2[i * k + j] = 1e9;
        cr_assert_eq(em_la_chol_solve(k, a2, x, &err), 0, "%s", err.msg);
        cr_assert_eq(em_la_chol_solve_packed(k, ap, xp, &err), 0, "%s", err.msg);
        for (int i = 0; i < k; i++) {   /* residual of A x = b with the original A */
            double s = 0, sp = 0;
            for (int j = 0; j < k; j++) {
                s += a[i * k + j] * x[j];
                sp += a[i * k + j] * xp[j];
            }
            cr_assert_float_eq(s, b[i], 1e-9, "k=%d row %d", k, i);
            cr_assert_float_eq(sp, b[i], 1e-9, "k=%d row %d", k, i);
        }
    }
}

Test(linalg, cholesky_rejects_indefinite)
{
    double a[4] = {1, 2, 2, 1}, b[2] = {1, 1};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_la_chol_solve(2, a, b, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "not positive definite"), "%s", err.msg);
}

static double quad(int k, const double *a, const double *b, const double *x)
{
    double f = 0;
    for (int i = 0; i < k; i++) {
        f -= b[i] * x[i];
        for (int j = 0; j < k; j++)
            f += 0.5 * x[i] * a[i * k + j] * x[j];
    }
    return f;
}

/* Exhaustive reference: the optimum is the unconstrained optimum on some support set that
 * is feasible; take the best feasible one over all 2^k supports. */
static double brute_nnls(int k, const double *a, const double *b, double *best)
{
    double bestf = 0.0;
    memset(best, 0, (size_t)k * sizeof *best);
    for (unsigned mask = 1; mask < (1u << k); mask++) {
        int idx[8], n = 0;
        double sub[64], rhs[8], x[8] = {0};
        for (int i = 0; i < k; i++)
            if (mask >> i & 1)
                idx[n++] = i;
        for (int i = 0; i < n; i++) {
            rhs[i] = b[idx[i]];
            for (int j = 0; j < n; j++)
                sub[i * n + j] = a[idx[i] * k + idx[j]];
        }
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_la_chol_solve(n, sub, rhs, &err), 0);
        bool ok = true;
        for (int i = 0; i < n; i++) {
            ok = ok && rhs[i] >= 0;
            x[idx[i]] = rhs[i];
        }
        double f = quad(k, a, b, x);
        if (ok && f < bestf) {
            bestf = f;
            memcpy(best, x, (size_t)k * sizeof *x);
        }
    }
    return bestf;
}

Test(linalg, nnls_matches_exhaustive_search)
{
    em_rng r;
    em_rng_seed(&r, 4);
    for (int trial = 0; trial < 200; trial++) {
        int k = 1 + (int)em_rng_below(&r, 6);
        double a[64], b[8], x[8], ref[8], work[128];
        em_err err = EM_ERR_INIT;
        make_spd(&r, k, a);
        fill(&r, b, (size_t)k);
        cr_assert_geq(sizeof work / sizeof *work, em_la_nnls_work_size(k));
        cr_assert_eq(em_la_nnls(k, a, b, x, work, &err), 0, "%s", err.msg);
        double fref = brute_nnls(k, a, b, ref);
        for (int i = 0; i < k; i++) {
            cr_assert_geq(x[i], 0.0);
            cr_assert_float_eq(x[i], ref[i], 1e-8, "trial %d k=%d x[%d]", trial, k, i);
        }
        cr_assert_float_eq(quad(k, a, b, x), fref, 1e-10);
    }
}

Test(linalg, nnls_kkt_rank_50)
{
    em_rng r;
    em_rng_seed(&r, 5);
    enum { K = 50 };
    static double a[K * K], work[K * K + 4 * K];
    double b[K], x[K];
    em_err err = EM_ERR_INIT;
    make_spd(&r, K, a);
    fill(&r, b, K);
    cr_assert_eq(em_la_nnls(K, a, b, x, work, &err), 0, "%s", err.msg);
    int active = 0;
    for (int i = 0; i < K; i++) {
        double g = -b[i];
        for (int j = 0; j < K; j++)
            g += a[i * K + j] * x[j];
        cr_assert_geq(x[i], 0.0);
        if (x[i] > 0)
            cr_assert_float_eq(g, 0.0, 1e-8, "free %d", i);
        else {
            cr_assert_geq(g, -1e-8, "bound %d", i);
            active++;
        }
    }
    cr_assert(active > 0 && active < K, "both kinds of constraints exercised (%d)", active);
}

Test(linalg, nnls_unconstrained_optimum_when_feasible)
{
    double a[4] = {2, 0, 0, 4}, b[2] = {2, 8}, x[2], work[16];
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_la_nnls(2, a, b, x, work, &err), 0);
    cr_assert_float_eq(x[0], 1.0, 1e-12);
    cr_assert_float_eq(x[1], 2.0, 1e-12);
    double bneg[2] = {-1, -1};
    cr_assert_eq(em_la_nnls(2, a, bneg, x, work, &err), 0);
    cr_assert(x[0] == 0.0 && x[1] == 0.0);
}
