/* mllib/als/kernel.c - hand-written kernels of the ALS solve step (see kernel.h). */
#include "mllib/als/kernel.h"

#include <math.h>

#include "mllib/linalg/linalg.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define ALS_AVX512 __attribute__((target("avx512f")))

enum { T_ROWS = 256 };   /* ratings per column tile of gram_t (32 KiB of columns) */

/* The Gram kernel of em__als_gram_rows for 8 <= k <= 13 (R = k + 1 columns; see kernel.h),
 * with the ratings in the lanes: a tile of up to T_ROWS ratings is first turned into
 * columns (col[c][s] = scale[s] * rows[s][c] widened to double, col[k][s] = last[s]; eight
 * rows at a time by an in-register transpose: unpack, shuffle and one two-source permute
 * per pair of columns), then entry (i, j) of the upper triangle is the lane-wise sum of
 * col[i] * col[j], eight ratings per FMA, reduced across the lanes into ext once per
 * tile. That is R (R + 1) / 2 FMAs per eight ratings (66 at rank 10, 8.25 per rating)
 * where the row-by-row kernel needs 14 to 19 per rating, and no store-to-load round trip
 * per rating (measured on L1-resident rows, rank 10, loaded machine: 3.5 against 5.7 ns
 * per rating; bench/als_kernel.c). The upper triangle is walked two rows at a time, so
 * at most 2 R - 1 accumulators (27 at k = 13) and three operands live in registers. The
 * sums are taken in another order than em_la_syrk_rows_f32 (lanes, then a tree across
 * them): equal to rounding, and the same for the same rows in the same order. */
ALS_AVX512 static inline __attribute__((always_inline)) void
gram_t(const int R, int k, int n, const float *const *rows, const double *scale,
       const double *last, double *ext)
{
    static _Thread_local double col[16][T_ROWS] __attribute__((aligned(64)));
    static const float zero[16] __attribute__((aligned(64)));
    const __mmask16 ymask = (__mmask16)((1u << k) - 1);
    const int ng = (n + 7) >> 3;   /* n <= T_ROWS */
    /* lanes: vpermt2ps indices taking 128-bit lane L of a (rows 0..3) then of b (rows 4..7),
     * for L = 0, 1 (cols m, 4 + m) and L = 2, 3 (cols 8 + m, 12 + m) */
    const __m512i p01 = _mm512_set_epi32(16 + 7, 16 + 6, 16 + 5, 16 + 4, 7, 6, 5, 4,
                                         16 + 3, 16 + 2, 16 + 1, 16 + 0, 3, 2, 1, 0);
    const __m512i p23 = _mm512_set_epi32(16 + 15, 16 + 14, 16 + 13, 16 + 12, 15, 14, 13, 12,
                                         16 + 11, 16 + 10, 16 + 9, 16 + 8, 11, 10, 9, 8);
    for (int g = 0; g < ng; g++) {
        const int s0 = g * 8;
        __m512 r[8];
        _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++)
            r[q] = _mm512_maskz_loadu_ps(ymask, s0 + q < n ? rows[s0 + q] : zero);
        __m512 t0 = _mm512_unpacklo_ps(r[0], r[1]), t1 = _mm512_unpackhi_ps(r[0], r[1]);
        __m512 t2 = _mm512_unpacklo_ps(r[2], r[3]), t3 = _mm512_unpackhi_ps(r[2], r[3]);
        __m512 t4 = _mm512_unpacklo_ps(r[4], r[5]), t5 = _mm512_unpackhi_ps(r[4], r[5]);
        __m512 t6 = _mm512_unpacklo_ps(r[6], r[7]), t7 = _mm512_unpackhi_ps(r[6], r[7]);
        __m512 u[8];
        u[0] = _mm512_shuffle_ps(t0, t2, 0x44);
        u[1] = _mm512_shuffle_ps(t0, t2, 0xEE);
        u[2] = _mm512_shuffle_ps(t1, t3, 0x44);
        u[3] = _mm512_shuffle_ps(t1, t3, 0xEE);
        u[4] = _mm512_shuffle_ps(t4, t6, 0x44);
        u[5] = _mm512_shuffle_ps(t4, t6, 0xEE);
        u[6] = _mm512_shuffle_ps(t5, t7, 0x44);
        u[7] = _mm512_shuffle_ps(t5, t7, 0xEE);
        const __mmask8 in = s0 + 8 <= n ? (__mmask8)0xff : (__mmask8)((1u << (n - s0)) - 1);
        __m512d sc = scale ? _mm512_maskz_loadu_pd(in, scale + s0) : _mm512_set1_pd(1.0);
        _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) {
            __m512 w = _mm512_permutex2var_ps(u[m], p01, u[4 + m]);
            __m512d c0 = _mm512_cvtps_pd(_mm512_castps512_ps256(w));
            __m512d c1 = _mm512_cvtps_pd(
                _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w), 1)));
            if (scale) {
                c0 = _mm512_mul_pd(c0, sc);
                c1 = _mm512_mul_pd(c1, sc);
            }
            if (m < k)
                _mm512_store_pd(col[m] + s0, c0);
            if (4 + m < k)
                _mm512_store_pd(col[4 + m] + s0, c1);
            if (8 + m < k || 12 + m < k) {
                __m512 w2 = _mm512_permutex2var_ps(u[m], p23, u[4 + m]);
                __m512d c2 = _mm512_cvtps_pd(_mm512_castps512_ps256(w2));
                if (scale)
                    c2 = _mm512_mul_pd(c2, sc);
                if (8 + m < k)
                    _mm512_store_pd(col[8 + m] + s0, c2);
                if (12 + m < k) {
                    __m512d c3 = _mm512_cvtps_pd(
                        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w2), 1)));
                    if (scale)
                        c3 = _mm512_mul_pd(c3, sc);
                    _mm512_store_pd(col[12 + m] + s0, c3);
                }
            }
        }
        _mm512_store_pd(col[k] + s0, _mm512_maskz_loadu_pd(in, last + s0));
    }
    /* passes over row pairs (i0, i0 + 1): accumulators (i, j) for j >= i in registers */
    _Pragma("GCC unroll 8") for (int i0 = 0; i0 < 16; i0 += 2) {
        if (i0 >= R)
            break;
        __m512d acc0[16], acc1[16];
        _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) {
            acc0[j] = _mm512_setzero_pd();
            acc1[j] = _mm512_setzero_pd();
        }
        for (int g = 0; g < ng; g++) {
            const int s0 = g * 8;
            __m512d ci0 = _mm512_load_pd(col[i0] + s0);
            __m512d ci1 = i0 + 1 < R ? _mm512_load_pd(col[i0 + 1] + s0) : ci0;
            _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) {
                if (j < i0 || j >= R)
                    continue;
                __m512d cj = _mm512_load_pd(col[j] + s0);
                acc0[j] = _mm512_fmadd_pd(ci0, cj, acc0[j]);
                if (j > i0)
                    acc1[j] = _mm512_fmadd_pd(ci1, cj, acc1[j]);
            }
        }
        _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) {
            if (j < i0 || j >= R)
                continue;
            ext[i0 * R + j] += _mm512_reduce_add_pd(acc0[j]);
            if (j > i0)
                ext[(i0 + 1) * R + j] += _mm512_reduce_add_pd(acc1[j]);
        }
    }
}

#define ALS_GRAM_KERN(R)                                                                     \
    ALS_AVX512 static void gram_kern##R(int k, int n, const float *const *rows,             \
                                        const double *scale, const double *last, double *ext) \
    {                                                                                        \
        for (int s = 0; s < n; s += T_ROWS)                                                  \
            gram_t(R, k, n - s < T_ROWS ? n - s : T_ROWS, rows + s, scale ? scale + s : NULL, \
                   last + s, ext);                                                           \
    }
ALS_GRAM_KERN(9)
ALS_GRAM_KERN(10)
ALS_GRAM_KERN(11)
ALS_GRAM_KERN(12)
ALS_GRAM_KERN(13)
ALS_GRAM_KERN(14)
#undef ALS_GRAM_KERN

typedef void (*als_gram_fn)(int, int, const float *const *, const double *, const double *,
                            double *);
static const als_gram_fn gram_kerns[6] = {gram_kern9,  gram_kern10, gram_kern11,
                                          gram_kern12, gram_kern13, gram_kern14};
#endif

void em__als_gram_rows(int k, int n, const float *const *rows, const double *scale,
                       const double *last, int ld, double *tile, double *ext)
{
    if (n <= 0 || k <= 0)
        return;
#if defined(__x86_64__) && defined(__GNUC__)
    if (k >= 8 && k <= 13 && em_la_simd() >= 3) {
        gram_kerns[k - 8](k, n, rows, scale, last, ext);
        return;
    }
#endif
    em_la_syrk_rows_f32(k, n, rows, scale, last, ld, tile, ext);
}
