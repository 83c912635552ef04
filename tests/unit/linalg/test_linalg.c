/* tests/unit/linalg/test_linalg.c - BLAS/LAPACK wrappers and NNLS against naive references.
 * Tolerances: 1e-10 relative for double kernels, 1e-4 for float sgemm, 1e-8 for NNLS. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
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

/* em_la_syrk_tile against the naive triple loop: every rank shape the blocked kernel
 * distinguishes (k below, at and above multiples of 4 and 12; 50 as in the rank-50
 * benchmark), short and long tiles, ld a multiple of 4 (the AVX2 kernel when the CPU has
 * it) and not (the portable loops); the lower triangle and padding must stay untouched. */
Test(linalg, syrk_tile_matches_naive)
{
    static const int ks[] = {1, 3, 4, 5, 8, 10, 11, 12, 13, 24, 50};
    static const int ns[] = {0, 1, 2, 3, 7, 300};
    em_rng r;
    em_rng_seed(&r, 11);
    for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (int pad = 0; pad < 3; pad++) {
                int k = ks[ki], n = ns[ni];
                int ld = pad == 0 ? k : pad == 1 ? (k + 3) / 4 * 4 : (k + 3) / 4 * 4 + 4;
                double *t = malloc(sizeof(double) * (size_t)(n ? n : 1) * (size_t)ld);
                double *a = malloc(sizeof(double) * (size_t)k * (size_t)k);
                double *ref = malloc(sizeof(double) * (size_t)k * (size_t)k);
                fill(&r, t, (size_t)n * (size_t)ld);
                fill(&r, a, (size_t)k * (size_t)k);
                memcpy(ref, a, sizeof(double) * (size_t)k * (size_t)k);
                for (int s = 0; s < n; s++)
                    for (int i = 0; i < k; i++)
                        for (int j = i; j < k; j++)
                            ref[i * k + j] += t[s * ld + i] * t[s * ld + j];
                em_la_syrk_tile(k, n, t, ld, a);
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++)
                        cr_assert_float_eq(a[i * k + j], ref[i * k + j], 1e-10,
                                           "k=%d n=%d ld=%d (%d,%d)", k, n, ld, i, j);
                free(t);
                free(a);
                free(ref);
            }
}

Test(linalg, gather_f32_scales_and_appends)
{
    em_rng r;
    em_rng_seed(&r, 12);
    enum { N = 9 };
    for (int k = 1; k <= 13; k++) {
        float src[N][16];
        const float *rows[N];
        double sc[N], last[N], tile[N * 20], ref[N * 20];
        int ld = (k + 4) / 4 * 4;
        for (int s = 0; s < N; s++) {
            for (int q = 0; q < 16; q++)
                src[s][q] = (float)(em_rng_double(&r) - 0.5);
            rows[s] = src[N - 1 - s];   /* any order */
            sc[s] = em_rng_double(&r);
            last[s] = em_rng_double(&r) * 5;
        }
        for (int with_scale = 0; with_scale < 2; with_scale++) {
            for (int i = 0; i < N * ld; i++)
                tile[i] = -7.0;   /* garbage: the padding columns past k must be zeroed */
            for (int s = 0; s < N; s++) {
                for (int q = 0; q < k; q++)
                    ref[s * ld + q] = (with_scale ? sc[s] : 1.0) * (double)rows[s][q];
                ref[s * ld + k] = last[s];
                for (int q = k + 1; q < ld; q++)
                    ref[s * ld + q] = 0.0;
            }
            em_la_gather_f32(k, N, rows, with_scale ? sc : NULL, last, ld, tile);
            for (int i = 0; i < N * ld; i++)
                cr_assert_eq(tile[i], ref[i], "k=%d scale=%d at %d: %g vs %g", k, with_scale,
                             i, tile[i], ref[i]);
        }
    }
}

/* em_la_syrk_rows_f32 (the fused AVX-512 kernel for k + 1 <= 16 where the CPU has it, the
 * gather + tile path otherwise) against the naive sum: every width class of the fused
 * kernel (k + 1 <= 8, <= 12, <= 16) and past it, rows at any address and stride (stride 8
 * for k <= 7 reads past the row with a masked load only), garbage after each row's k
 * floats, with and without scale, accumulating onto a non-zero ext. */
Test(linalg, syrk_rows_f32_matches_naive)
{
    static const int ks[] = {1, 2, 7, 8, 10, 11, 12, 15, 16, 20};
    static const int ns[] = {0, 1, 5, 13, 40};
    em_rng r;
    em_rng_seed(&r, 14);
    enum { NMAX = 40, STRIDE = 24 };
    float *src = malloc(sizeof(float) * NMAX * STRIDE + 64);
    for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (int with_scale = 0; with_scale < 2; with_scale++) {
                int k = ks[ki], n = ns[ni], k1 = k + 1, ld = (k1 + 3) / 4 * 4;
                const float *rows[NMAX];
                double sc[NMAX], last[NMAX], ext[21 * 21], ref[21 * 21];
                double *tile = malloc(sizeof(double) * NMAX * (size_t)ld);
                for (int i = 0; i < NMAX * STRIDE + 16; i++)
                    src[i] = (float)(em_rng_double(&r) * 4 - 2);   /* garbage past k too */
                for (int s = 0; s < n; s++) {
                    rows[s] = src + 1 + (size_t)((s * 7) % NMAX) * STRIDE;   /* unaligned */
                    sc[s] = em_rng_double(&r) + 0.1;
                    last[s] = em_rng_double(&r) * 5;
                }
                fill(&r, ext, (size_t)k1 * (size_t)k1);
                memcpy(ref, ext, sizeof(double) * (size_t)k1 * (size_t)k1);
                for (int s = 0; s < n; s++) {
                    double v[21];
                    for (int q = 0; q < k; q++)
                        v[q] = (with_scale ? sc[s] : 1.0) * (double)rows[s][q];
                    v[k] = last[s];
                    for (int i = 0; i < k1; i++)
                        for (int j = i; j < k1; j++)
                            ref[i * k1 + j] += v[i] * v[j];
                }
                em_la_syrk_rows_f32(k, n, rows, with_scale ? sc : NULL, last, ld, tile, ext);
                for (int i = 0; i < k1; i++)
                    for (int j = 0; j < k1; j++)   /* the lower triangle stays untouched */
                        cr_assert_float_eq(ext[i * k1 + j], ref[i * k1 + j], 1e-9,
                                           "k=%d n=%d scale=%d (%d,%d): %.17g vs %.17g", k, n,
                                           with_scale, i, j, ext[i * k1 + j], ref[i * k1 + j]);
                free(tile);
            }
    free(src);
}

/* The inlined Cholesky against LAPACK's on the same systems, with garbage in the lower
 * triangle; an indefinite matrix names the same leading minor as dposv. */
Test(linalg, cholesky_small_matches_lapack)
{
    em_rng r;
    em_rng_seed(&r, 13);
    for (int k = 1; k <= 40; k += 3) {
        double a[1600], a1[1600], a2[1600], x1[40], x2[40];
        em_err err = EM_ERR_INIT;
        make_spd(&r, k, a);
        fill(&r, x1, (size_t)k);
        memcpy(x2, x1, sizeof x1);
        for (int i = 0; i < k; i++)
            for (int j = 0; j < i; j++)
                a[i * k + j] = 1e9;
        memcpy(a1, a, sizeof a);
        memcpy(a2, a, sizeof a);
        cr_assert_eq(em_la_chol_solve(k, a1, x1, &err), 0, "%s", err.msg);
        cr_assert_eq(em_la_chol_solve_small(k, a2, x2, &err), 0, "%s", err.msg);
        for (int i = 0; i < k; i++) {
            cr_assert_float_eq(x2[i], x1[i], 1e-9 * (1 + fabs(x1[i])), "k=%d x[%d]", k, i);
            for (int j = i; j < k; j++)   /* the same factor, where LAPACK leaves it */
                cr_assert_float_eq(a2[i * k + j], a1[i * k + j], 1e-9, "k=%d U(%d,%d)", k, i,
                                   j);
        }
    }
    /* minor 3 fails: diag(1, 1, -1, 1) */
    double d[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1}, d2[16], b[4] = {1, 1, 1, 1};
    double b2[4] = {1, 1, 1, 1};
    em_err e1 = EM_ERR_INIT, e2 = EM_ERR_INIT;
    memcpy(d2, d, sizeof d);
    cr_assert_eq(em_la_chol_solve(4, d, b, &e1), EM_EINVAL);
    cr_assert_eq(em_la_chol_solve_small(4, d2, b2, &e2), EM_EINVAL);
    cr_assert_str_eq(e2.msg, e1.msg);
    double nan_a[1] = {NAN}, nb[1] = {1};
    cr_assert_eq(em_la_chol_solve_small(1, nan_a, nb, &e2), EM_EINVAL);
}
