/* tests/unit/linalg/test_syrk_tile512.c - the AVX-512 Gram tile kernel (em_la_syrk_tile for
 * k > 16 columns; the path of ALS ranks 16-64 through em_la_syrk_rows_f32) against a plain
 * reference at every column count 17..66: the kernel splits k = m8 + m (m = k % 8) into
 * 8-row blocks over the first m8 columns and m tail rows over all columns, stored
 * transposed left of the tail, so every m and every block width is covered, for tiles of
 * 1..9 rows, 17, 64 and 300 (past the gather tile of the solve), from a non-zero triangle.
 * Each entry is one product chain over the tile rows in order, as the reference's: equal to
 * 1e-13 relative; the lower triangle stays untouched. Where the CPU lacks AVX-512 the
 * AVX2/portable kernels run the same checks. */
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

Test(syrk_tile512, every_width_17_to_66_matches_reference)
{
    static const int ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 64, 300};
    em_rng r;
    em_rng_seed(&r, 21);
    for (int k = 17; k <= 66; k++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
            int n = ns[ni], ld = (k + 3) & ~3;
            double *t = malloc(sizeof(double) * (size_t)n * (size_t)ld);
            double *a = malloc(sizeof(double) * (size_t)k * (size_t)k);
            double *ref = malloc(sizeof(double) * (size_t)k * (size_t)k);
            fill(&r, t, (size_t)n * (size_t)ld);
            for (int s = 0; s < n; s++)   /* finite padding, as em_la_gather_f32 leaves */
                for (int q = k; q < ld; q++)
                    t[s * ld + q] = 0.0;
            fill(&r, a, (size_t)k * (size_t)k);
            memcpy(ref, a, sizeof(double) * (size_t)k * (size_t)k);
            for (int i = 0; i < k; i++)
                for (int j = i; j < k; j++) {
                    double sum = 0;
                    for (int s = 0; s < n; s++)
                        sum += t[s * ld + i] * t[s * ld + j];
                    ref[i * k + j] += sum;
                }
            em_la_syrk_tile(k, n, t, ld, a);
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) {
                    double x = a[i * k + j], y = ref[i * k + j];
                    if (j < i)
                        cr_assert(memcmp(&x, &y, 8) == 0, "k %d n %d: lower (%d, %d) changed",
                                  k, n, i, j);
                    else
                        cr_assert(fabs(x - y) <= 1e-13 * (fabs(y) + n),
                                  "k %d n %d: (%d, %d) %.17g != %.17g", k, n, i, j, x, y);
                }
            free(t);
            free(a);
            free(ref);
        }
}

/* The path ALS takes for ranks 16..64 (gather into the double tile, then the tile kernel):
 * float rows at unaligned addresses with garbage after each row's k floats, with and
 * without scale, the solve's ld = round_up(k + 1, 4), onto a non-zero triangle. */
Test(syrk_tile512, rows_f32_ranks_16_to_64_match_reference)
{
    enum { NMAX = 70, STRIDE = 67 };
    static const int ns[] = {1, 3, 8, 9, 70};
    em_rng r;
    em_rng_seed(&r, 22);
    float *src = malloc(sizeof(float) * NMAX * STRIDE + 64);
    double *tile = malloc(sizeof(double) * NMAX * 68);
    for (int i = 0; i < NMAX * STRIDE + 16; i++)
        src[i] = (float)(em_rng_double(&r) * 4 - 2);
    for (int k = 16; k <= 64; k++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (int with_scale = 0; with_scale < 2; with_scale++) {
                int n = ns[ni], k1 = k + 1, ld = (k1 + 3) & ~3;
                const float *rows[NMAX];
                double sc[NMAX], last[NMAX], ext[65 * 65], ref[65 * 65];
                for (int s = 0; s < n; s++) {
                    rows[s] = src + 1 + (size_t)((s * 11) % NMAX) * STRIDE;
                    sc[s] = em_rng_double(&r) + 0.1;
                    last[s] = em_rng_double(&r) * 5;
                }
                fill(&r, ext, (size_t)k1 * (size_t)k1);
                memcpy(ref, ext, sizeof(double) * (size_t)k1 * (size_t)k1);
                for (int i = 0; i < k1; i++)
                    for (int j = i; j < k1; j++) {
                        double sum = 0;
                        for (int s = 0; s < n; s++) {
                            double w = with_scale ? sc[s] : 1.0;
                            double vi = i < k ? w * (double)rows[s][i] : last[s];
                            double vj = j < k ? w * (double)rows[s][j] : last[s];
                            sum += vi * vj;
                        }
                        ref[i * k1 + j] += sum;
                    }
                em_la_syrk_rows_f32(k, n, rows, with_scale ? sc : NULL, last, ld, tile, ext);
                for (int i = 0; i < k1; i++)
                    for (int j = 0; j < k1; j++) {
                        double x = ext[i * k1 + j], y = ref[i * k1 + j];
                        cr_assert(j < i ? memcmp(&x, &y, 8) == 0
                                        : fabs(x - y) <= 1e-12 * (fabs(y) + n),
                                  "k %d n %d scale %d: (%d, %d) %.17g != %.17g", k, n,
                                  with_scale, i, j, x, y);
                    }
            }
    free(tile);
    free(src);
}
