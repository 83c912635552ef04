/* tests/unit/als/test_als_gram.c - the solve's Gram kernel (em__als_gram_rows,
 * mllib/als/kernel.c) against the linalg one (em_la_syrk_rows_f32), whatever the CPU
 * dispatches to: ratings in the lanes (AVX2 + FMA: 1 <= k <= 15, and 16 <= k <= 64 from 24
 * ratings per call on, eight per FMA, float within a tile; AVX-512: 8 <= k <= 13, eight
 * per FMA, double) or the linalg kernel itself. For every k from 1 to 24 and a spread of k
 * up to 64, with and without the implicit scale, n from 1 to past two of the kernels'
 * column tiles (every n % 8 and both sides of 24), from a non-zero starting triangle: the
 * same sums to 1e-13 relative in double, within F32_TOL of the sum of the products'
 * magnitudes in float (bit for bit where the fallback runs), bit for bit the same on a
 * second call, the lower triangle untouched. Each row ends its own allocation, 4 bytes past
 * an aligned start, so it is not 8- or 16-byte aligned and the address sanitizer catches a
 * read past its k floats.
 * F32_TOL: entry (i, j) is the sum of p_s = x_si x_sj over the ratings, x = [scale * y,
 * last]. The float kernels take x_i as fl(fl(scale) y_i) (two roundings) and last as
 * fl(last) (one), so a product they use is p_s (1 + d), |d| <= 4u + O(u^2) (u = 2^-24,
 * float's unit roundoff). A lane adds at most 32 products (a tile of 256 ratings over
 * eight lanes), each FMA rounding once: at most 32u of the sum of their magnitudes
 * (Higham, "Accuracy and Stability of Numerical Algorithms", 2002, eq. 4.4, recursive
 * summation). The lanes are added in double (k <= 15), or in pairs and quadruples in float
 * and then in double (16 <= k <= 64: two more roundings). Total 4u + 32u + 2u = 38u; the
 * test allows 40u (2.4e-6) of the sum of |p_s|, which it computes in double from |y|,
 * scale and |last|, plus the double path's 1e-13. A kernel summing more than 32 products
 * per lane would still be bounded by about (ratings / 8)u, 4e-6 at 64 per lane: this
 * tolerance would let that pass on some entries, not the bugs it is for (a lost tile or
 * group, a lost scale or column, a wrong entry), which are off by whole products.
 * (Replaces test_als_solve.c's gram_kernel_equals_linalg, rows 1-18 from one buffer.) */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/als/kernel.h"
#include "mllib/linalg/linalg.h"

enum { N = 530, KMAX = 65 };
#define F32_TOL (40 * 0x1p-24)

static float *rows_buf[N];

/* n rows of k floats each in its own malloc; values in [-1, 1) with a few exact zeros. */
static void make_rows(int k, uint64_t seed, const float **rows, double *scale, double *last)
{
    em_rng g;
    em_rng_seed(&g, seed);
    for (int s = 0; s < N; s++) {
        rows_buf[s] = malloc((size_t)(k + 1) * sizeof(float));
        cr_assert_not_null(rows_buf[s]);
        float *row = rows_buf[s] + 1;   /* 4 bytes past malloc's alignment */
        for (int q = 0; q < k; q++)
            row[q] = s % 17 == 3 ? 0.0f : (float)(em_rng_double(&g) * 2 - 1);
        rows[s] = row;
        scale[s] = 0.5 + em_rng_double(&g);
        last[s] = 1 + 4 * em_rng_double(&g);
    }
}

static void free_rows(void)
{
    for (int s = 0; s < N; s++)
        free(rows_buf[s]);
}

static void check_k(int k)
{
    const float *rows[N];
    double scale[N], last[N], *tile = malloc((size_t)N * (KMAX + 4) * sizeof(double));
    make_rows(k, 1000 + (uint64_t)k, rows, scale, last);
    int k1 = k + 1, ld = (k1 + 3) & ~3;
    /* the lanes kernels sum in another order, the AVX2 ones in float within a tile; the
     * fallback is em_la_syrk_rows_f32 (AVX2 and k >= 16: also below 24 ratings per call) */
    bool f32k = em_la_simd() == 2 && k <= 64, f64k = k >= 8 && k <= 13 && em_la_simd() == 3;
    const float *arows[N];   /* |rows|, |last|: the sums of the products' magnitudes */
    double alast[N];
    static float abuf[N][KMAX];
    for (int s = 0; s < N; s++) {
        for (int q = 0; q < k; q++)
            abuf[s][q] = fabsf(rows[s][q]);
        arows[s] = abuf[s];
        alast[s] = fabs(last[s]);
    }
    for (int sc = 0; sc < 2; sc++)
        for (int n = 1; n <= N; n += n < 40 ? 1 : n < 250 ? 37 : 53) {
            bool f32 = f32k && (k <= 15 || n >= 24), lanes = f32 || f64k;
            double a[(KMAX + 1) * (KMAX + 1)], b[(KMAX + 1) * (KMAX + 1)],
                c[(KMAX + 1) * (KMAX + 1)], m[(KMAX + 1) * (KMAX + 1)] = {0};
            for (int i = 0; i < k1 * k1; i++)   /* lower triangle of a: -0.0 (+= 0 flips it) */
                a[i] = b[i] = c[i] = i / k1 > i % k1 ? -0.0 : 0.25 * i;
            em_la_syrk_rows_f32(k, n, arows, sc ? scale : NULL, alast, ld, tile, m);
            em__als_gram_rows(k, n, rows, sc ? scale : NULL, last, ld, tile, a);
            em__als_gram_rows(k, n, rows, sc ? scale : NULL, last, ld, tile, c);
            em_la_syrk_rows_f32(k, n, rows, sc ? scale : NULL, last, ld, tile, b);
            for (int i = 0; i < k1; i++)
                for (int j = i; j < k1; j++) {
                    double x = a[i * k1 + j], y = b[i * k1 + j];
                    cr_assert(memcmp(&a[i * k1 + j], &c[i * k1 + j], 8) == 0,
                              "k %d scale %d n %d: entry (%d, %d) differs between calls", k,
                              sc, n, i, j);
                    double tol = f32 ? F32_TOL * m[i * k1 + j] + 1e-13 * (fabs(y) + 1)
                                     : 1e-13 * (fabs(y) + 1);
                    cr_assert(lanes ? fabs(x - y) <= tol : memcmp(&x, &y, 8) == 0,
                              "k %d scale %d n %d: entry (%d, %d) %.17g != %.17g", k, sc, n,
                              i, j, x, y);
                }
            /* the lower triangle is never written, not even with a zero */
            for (int i = 0; i < k1; i++)
                for (int j = 0; j < i; j++)
                    cr_assert(signbit(a[i * k1 + j]) && a[i * k1 + j] == 0.0,
                              "k %d n %d: lower entry (%d, %d) written", k, n, i, j);
        }
    free_rows();
    free(tile);
}

Test(als_gram, every_k_matches_linalg, .timeout = 120)
{
    for (int k = 1; k <= 24; k++)
        check_k(k);
}

/* Past 24, the k that change how the AVX2 float kernel cuts the triangle (R = k + 1 even
 * or odd, the last row pair's width around multiples of 6), its last k (64) and the first
 * past it (65: the fallback, bit for bit). */
Test(als_gram, large_k_matches_linalg, .timeout = 120)
{
    static const int ks[] = {29, 30, 31, 32, 33, 40, 47, 48, 49, 50, 51, 63, 64, 65};
    for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++)
        check_k(ks[q]);
}

/* A wrong kernel fails: one changed float of one row changes the sums past the tolerance
 * (the comparison above is not vacuous), in the lanes' range and out of it. */
Test(als_gram, detects_a_changed_row)
{
    for (int k = 4; k <= 52; k += k < 16 ? 6 : 34) {   /* 4, 10, 16, 50 */
        const float *rows[N];
        double scale[N], last[N], tile[64 * (KMAX + 4)];
        make_rows(k, 7, rows, scale, last);
        int k1 = k + 1, ld = (k1 + 3) & ~3;
        double a[(KMAX + 1) * (KMAX + 1)] = {0}, b[(KMAX + 1) * (KMAX + 1)] = {0};
        em__als_gram_rows(k, 61, rows, NULL, last, ld, tile, a);
        rows_buf[60][k] += 0.5f;   /* the row's float k - 1: it starts at rows_buf + 1 */
        em_la_syrk_rows_f32(k, 61, rows, NULL, last, ld, tile, b);
        cr_assert(fabs(a[(k - 1) * k1 + k - 1] - b[(k - 1) * k1 + k - 1]) > 1e-3, "k %d", k);
        free_rows();
    }
}

/* n = 0 adds nothing. */
Test(als_gram, empty_tile)
{
    const float *rows[N];
    double scale[N], last[N], tile[24];
    make_rows(10, 9, rows, scale, last);
    double a[121] = {0};
    em__als_gram_rows(10, 0, rows, NULL, last, 12, tile, a);
    for (int i = 0; i < 121; i++)
        cr_assert_eq(a[i], 0.0);
    free_rows();
}
