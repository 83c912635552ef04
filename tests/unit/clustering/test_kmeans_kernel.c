/* tests/unit/clustering/test_kmeans_kernel.c - the fused AVX-512 assignment kernel against
 * a brute-force nearest centre, for every k it takes (1..32), odd dimensions and row counts
 * that leave partial groups, both distances, exact ties (lowest index wins) and a zero row
 * under cosine, and the SIMD fold of Lloyd's sums. Skipped (passing) on CPUs without
 * AVX-512F, where neither is called. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "mllib/clustering/kmeans_int.h"

static uint64_t g_s = 88172645463325252ull;
static double rnd(void)
{
    g_s ^= g_s << 13, g_s ^= g_s >> 7, g_s ^= g_s << 17;
    return (double)(g_s >> 11) / 9007199254740992.0 - 0.5;
}

static void check(uint32_t k, uint32_t d, size_t n, size_t ldx, em_kmeans_distance dist)
{
    double *c = em_xmalloc(8 * (size_t)k * d), *cn = em_xmalloc(8 * k);
    double *x = em_xmalloc(8 * n * ldx);
    for (size_t i = 0; i < (size_t)k * d; i++)
        c[i] = rnd();
    if (k > 2)   /* an exact tie: centre 2 repeats centre 1 */
        memcpy(c + 2 * (size_t)d, c + d, 8 * (size_t)d);
    for (uint32_t j = 0; j < k; j++) {
        double s = 0;
        for (uint32_t t = 0; t < d; t++)
            s += c[(size_t)j * d + t] * c[(size_t)j * d + t];
        if (dist == EM_KMEANS_COSINE) {
            for (uint32_t t = 0; t < d; t++)
                c[(size_t)j * d + t] /= sqrt(s);
            s = 1;
        }
        cn[j] = s;
    }
    for (size_t i = 0; i < n * ldx; i++)
        x[i] = rnd();
    if (k > 2 && n > 3)   /* a row sitting on the tied centres */
        memcpy(x + 3 * ldx, c + d, 8 * (size_t)d);
    km_centers C = {.k = k, .dim = d, .distance = dist, .c = c, .cn = cn};
    double *panel = em_xmalloc(8 * em__km_fused_panel_size(k, d));
    uint32_t *best = em_xmalloc(4 * n);
    double *dd = em_xmalloc(8 * n), *xn = em_xmalloc(8 * n);
    size_t bad = 0;
    cr_assert_eq(em__km_assign_fused(&C, x, ldx, n, panel, best, dd, xn, &bad), 0);
    for (size_t i = 0; i < n; i++) {
        const double *xi = x + i * ldx;
        double s = 0, bv = INFINITY, dots[32];
        for (uint32_t t = 0; t < d; t++)
            s += xi[t] * xi[t];
        for (uint32_t j = 0; j < k; j++) {
            double dot = 0;
            for (uint32_t t = 0; t < d; t++)
                dot += xi[t] * c[(size_t)j * d + t];
            dots[j] = dot;
            double v = dist == EM_KMEANS_EUCLIDEAN ? cn[j] - 2 * dot : -dot;
            bv = v < bv ? v : bv;
        }
        /* best must reach the minimum up to rounding; with an exact tie, the first. */
        double vb = dist == EM_KMEANS_EUCLIDEAN ? cn[best[i]] - 2 * dots[best[i]]
                                                : -dots[best[i]];
        cr_assert(vb <= bv + 1e-12 * (1 + fabs(bv)), "k=%u d=%u row %zu: best %u (%g vs %g)",
                  k, d, i, best[i], vb, bv);
        if (k > 2 && i == 3)
            cr_assert_neq(best[i], 2, "the tie went to the later centre");
        cr_assert_float_eq(xn[i], s, 1e-12 * (1 + s));
        double e = dist == EM_KMEANS_EUCLIDEAN ? s + bv : 1 + bv / sqrt(s);
        cr_assert_float_eq(dd[i], e > 0 ? e : 0, 1e-9 * (1 + s));
    }
    em_free(c), em_free(cn), em_free(x), em_free(panel), em_free(best), em_free(dd);
    em_free(xn);
}

Test(kmeans_kernel, matches_brute_force)
{
    if (!em__km_fused_ok(1))
        return;
    static const uint32_t dims[] = {1, 3, 7, 8, 9, 50, 67};
    for (uint32_t k = 1; k <= 32; k++)
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
            for (int cosine = 0; cosine < 2; cosine++) {
                uint32_t d = dims[di];
                check(k, d, 1 + (k * 7 + d) % 23, d + (size_t)(k & 1),
                      cosine ? EM_KMEANS_COSINE : EM_KMEANS_EUCLIDEAN);
            }
    cr_assert(!em__km_fused_ok(33));
}

Test(kmeans_kernel, zero_row_under_cosine)
{
    if (!em__km_fused_ok(1))
        return;
    double c[4] = {1, 0, 0, 1}, cn[2] = {1, 1}, x[6] = {1, 2, 0, 0, 3, 4};
    km_centers C = {.k = 2, .dim = 2, .distance = EM_KMEANS_COSINE, .c = c, .cn = cn};
    double panel[64], dd[3], xn[3];
    uint32_t best[3];
    size_t bad = 99;
    cr_assert_eq(em__km_assign_fused(&C, x, 2, 3, panel, best, dd, xn, &bad), EM_EINVAL);
    cr_assert_eq(bad, 1);
}

Test(kmeans_kernel, fold_matches_scalar)
{
    if (!em__km_fused_ok(1))
        return;
    enum { D = 13, LD = 14, N = 37, K = 5 };
    double x[N * LD], xn[N], a[K * D] = {0}, b[K * D] = {0};
    uint32_t best[N];
    for (size_t i = 0; i < N * LD; i++)
        x[i] = rnd();
    for (size_t i = 0; i < N; i++) {
        best[i] = (uint32_t)((i * 7) % K);
        xn[i] = 0.5 + (double)i;
    }
    for (int cosine = 0; cosine < 2; cosine++) {
        memset(a, 0, sizeof a), memset(b, 0, sizeof b);
        em__km_fold_fused(a, D, x, LD, N, best, cosine ? xn : NULL);
        for (size_t i = 0; i < N; i++)
            for (size_t j = 0; j < D; j++)
                b[best[i] * D + j] += (cosine ? 1 / sqrt(xn[i]) : 1.0) * x[i * LD + j];
        for (size_t j = 0; j < K * D; j++)
            cr_assert_float_eq(a[j], b[j], 1e-12, "sum %zu: %g vs %g", j, a[j], b[j]);
    }
}
