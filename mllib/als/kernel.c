/* mllib/als/kernel.c - hand-written kernels of the ALS solve step (see kernel.h). */
#include "mllib/als/kernel.h"

#include <math.h>

#include "mllib/linalg/linalg.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define ALS_AVX512 __attribute__((target("avx512f")))
#define ALS_AVX2 __attribute__((target("avx2,fma")))

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

/* ---------------------------------------------------------------- AVX2 Gram kernel
 * gram_t for CPUs with AVX2 + FMA and no AVX-512 (em_la_simd() == 2), 1 <= k <= 15: eight
 * ratings in the lanes of each FMA, in single precision within a tile: col[c][s] =
 * scale[s] * rows[s][c] (c < k) and col[k][s] = last[s] as floats, each lane sums its
 * products of the tile (up to A_ROWS / 8 = 32) in float, and the lanes are widened to
 * double and added into ext once per tile. R (R + 1) / 2 FMAs per eight ratings (8.25
 * per rating at rank 10). Written for Zen 1 (16 ymm registers; a 256-bit FMA is two uops
 * on the two 128-bit FMA pipes, about one per cycle; one 256-bit load per cycle):
 *  - the transpose works on 4 x 4 floats (_MM_TRANSPOSE4_PS: eight 128-bit shuffles, one
 *    uop each; no 256-bit lane-crossing permute, several uops on Zen 1) for two groups of
 *    four ratings, joined by vinsertf128. A row's last k % 4 floats are read as such
 *    (load_tail): the rows may end at the end of a buffer;
 *  - the upper triangle goes in passes of two rows (i0, i0 + 1) by at most 6 columns (12
 *    accumulators, the two row operands and a column operand: 15 registers); the last
 *    <= 4 rows as one triangle (<= 10 accumulators). No spill in the passes (objdump -d:
 *    the only ymm accesses to the stack in gram_a3..gram_a16 load the last, partial
 *    group's copies of last and scale; gram_a2, k = 1, also parks two vectors).
 * WHY float within a tile: the factors are floats already (Spark's choice too), and in
 * double the FMAs were the floor of this kernel (16.5 per rating at rank 10, four
 * ratings per FMA). A lane's sum of at most 32 float products is within about 32 ulp of
 * float (2e-6 relative) of the double one, of the order of the factors' own rounding;
 * across tiles the sums stay double. Measured (issue 11, this Zen 1 machine, CPU ns per
 * rating, bench/als_kernel.c, rank 10): rows in L1 12.7 -> 8.9, the item side's reads
 * in 2 MiB chunks 13.3 -> 9.0, the user side (17.7k rows, 200 per entity) 18.5 -> 14.8;
 * scale 1, 10 iterations, local-cluster[2,1]: 1.92 -> 1.56 s per iteration, test RMSE
 * 0.73582693374 -> 0.73582693310. The double kernel it replaces (four ratings per FMA)
 * measured, CPU ns per rating in L1, k = 1 / 4 / 10 / 13 / 15: 4.8 / 5.6 / 14.6 / 21.0 /
 * 25.7. */
enum { A_ROWS = 256 };

ALS_AVX2 static inline __attribute__((always_inline)) double hsum_pd(__m256d v)
{
    __m128d a = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(a, _mm_unpackhi_pd(a, a)));
}

/* The last m = 1..3 floats of a row, zero-extended, without reading past them. Not
 * vmaskmovps: on this machine it made every k % 4 != 0 cost up to a fifth more (L1 rows:
 * k = 9 16.0 -> 13.1 ns per rating, k = 10 17.4 -> 14.6, k = 5 8.4 -> 6.4). */
ALS_AVX2 static inline __attribute__((always_inline)) __m128 load_tail(const float *p, int m)
{
    if (m == 1)
        return _mm_load_ss(p);
    __m128 lo = _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)p);
    return m == 2 ? lo : _mm_movelh_ps(lo, _mm_load_ss(p + 2));
}

/* The sum of eight float lanes, in double. */
ALS_AVX2 static inline __attribute__((always_inline)) double hsum_ps_d(__m256 v)
{
    __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                              _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    return hsum_pd(d);
}

/* One pass: rows i0..i0+nr-1 x columns j0..j0+nc-1 of the upper triangle (entries left of
 * the diagonal skipped), over ng groups of eight ratings. */
ALS_AVX2 static inline __attribute__((always_inline)) void
gram_a_pass(const int R, const int nr, const int i0, const int j0, const int nc, int ng,
            const float (*col)[A_ROWS], double *ext)
{
    __m256 acc[4][6];
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)
        _Pragma("GCC unroll 6") for (int c = 0; c < 6; c++)
            acc[r][c] = _mm256_setzero_ps();
    for (int g = 0; g < ng; g++) {
        const int s0 = 8 * g;
        __m256 ci[4];
        _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)
            if (r < nr)
                ci[r] = _mm256_load_ps(col[i0 + r] + s0);
        _Pragma("GCC unroll 6") for (int c = 0; c < 6; c++) {
            const int j = j0 + c;
            if (c >= nc)
                break;
            __m256 cj = j < i0 + nr ? ci[j - i0] : _mm256_load_ps(col[j] + s0);
            _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)
                if (r < nr && j >= i0 + r)
                    acc[r][c] = _mm256_fmadd_ps(ci[r], cj, acc[r][c]);
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)
        _Pragma("GCC unroll 6") for (int c = 0; c < 6; c++)
            if (r < nr && c < nc && j0 + c >= i0 + r)
                ext[(i0 + r) * R + j0 + c] += hsum_ps_d(acc[r][c]);
}

/* Columns of up to A_ROWS ratings: col[c][s] = scale[s] * rows[s][c] (c < k), col[k][s] =
 * last[s], in float, zero past n up to a multiple of eight. */
ALS_AVX2 static inline __attribute__((always_inline)) void
gram_a_cols(int k, int n, const float *const *rows, const double *scale, const double *last,
            float (*col)[A_ROWS])
{
    static const float zero[64];   /* the rows past n: k <= 64 (gram_a, gram_b) */
    for (int s0 = 0; s0 < n; s0 += 8) {
        const float *p[8];
        _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++)
            p[q] = s0 + q < n ? rows[s0 + q] : zero;
        __m256 sc = _mm256_set1_ps(1.0f), la;
        if (s0 + 8 <= n) {
            la = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(last + s0 + 4)),
                                 _mm256_cvtpd_ps(_mm256_loadu_pd(last + s0)));
            if (scale)
                sc = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(scale + s0 + 4)),
                                     _mm256_cvtpd_ps(_mm256_loadu_pd(scale + s0)));
        } else {
            float lf[8], sf[8];
            for (int q = 0; q < 8; q++) {
                lf[q] = s0 + q < n ? (float)last[s0 + q] : 0.0f;
                sf[q] = scale && s0 + q < n ? (float)scale[s0 + q] : 1.0f;
            }
            la = _mm256_loadu_ps(lf);
            sc = _mm256_loadu_ps(sf);
        }
        for (int c0 = 0; c0 < k; c0 += 4) {
            __m128 r[8];
            if (c0 + 4 <= k) {
                _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++)
                    r[q] = _mm_loadu_ps(p[q] + c0);
            } else {
                _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++)
                    r[q] = load_tail(p[q] + c0, k & 3);
            }
            _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
            _MM_TRANSPOSE4_PS(r[4], r[5], r[6], r[7]);
            _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) {
                if (c0 + m >= k)
                    break;
                __m256 d = _mm256_set_m128(r[4 + m], r[m]);
                if (scale)
                    d = _mm256_mul_ps(sc, d);
                _mm256_store_ps(col[c0 + m] + s0, d);
            }
        }
        _mm256_store_ps(col[k] + s0, la);
    }
}

ALS_AVX2 static inline __attribute__((always_inline)) void
gram_a(const int R, int n, const float *const *rows, const double *scale, const double *last,
       double *ext)
{
    static _Thread_local float col[16][A_ROWS] __attribute__((aligned(64)));
    const int ng = (n + 7) >> 3;
    gram_a_cols(R - 1, n, rows, scale, last, col);
    _Pragma("GCC unroll 8") for (int i0 = 0; i0 < 16; i0 += 2) {
        if (i0 >= R)
            break;
        const int w = R - i0;
        if (w <= 4) {
            gram_a_pass(R, w, i0, i0, w, ng, (const float (*)[A_ROWS])col, ext);
            break;
        }
        const int nch = (w + 5) / 6, cw = (w + nch - 1) / nch;
        _Pragma("GCC unroll 3") for (int ch = 0; ch < 3; ch++) {
            if (ch >= nch)
                break;
            const int j0 = i0 + ch * cw, nc = R - j0 < cw ? R - j0 : cw;
            gram_a_pass(R, 2, i0, j0, nc, ng, (const float (*)[A_ROWS])col, ext);
        }
    }
}

#define ALS_GRAM_A(R)                                                                        \
    ALS_AVX2 static void gram_a##R(int k, int n, const float *const *rows,                  \
                                   const double *scale, const double *last, double *ext)     \
    {                                                                                        \
        (void)k;                                                                             \
        for (int s = 0; s < n; s += A_ROWS)                                                  \
            gram_a(R, n - s < A_ROWS ? n - s : A_ROWS, rows + s, scale ? scale + s : NULL,   \
                   last + s, ext);                                                           \
    }
ALS_GRAM_A(2)
ALS_GRAM_A(3)
ALS_GRAM_A(4)
ALS_GRAM_A(5)
ALS_GRAM_A(6)
ALS_GRAM_A(7)
ALS_GRAM_A(8)
ALS_GRAM_A(9)
ALS_GRAM_A(10)
ALS_GRAM_A(11)
ALS_GRAM_A(12)
ALS_GRAM_A(13)
ALS_GRAM_A(14)
ALS_GRAM_A(15)
ALS_GRAM_A(16)
#undef ALS_GRAM_A
enum { A_KMIN = 1, A_KMAX = 15 };   /* the k range of gram_a (dispatched) */
static const als_gram_fn gram_as[A_KMAX - A_KMIN + 1] = {
    gram_a2, gram_a3, gram_a4, gram_a5,  gram_a6,  gram_a7,  gram_a8,  gram_a9,  gram_a10,
    gram_a11, gram_a12, gram_a13, gram_a14, gram_a15, gram_a16};

/* ---------------------------------------------------------------- AVX2, 16 <= k <= 64
 * The same lanes layout and float-within-a-tile sums as gram_a for R = k + 1 = 17..65
 * columns (rank 50: R = 51), with R a run-time value: gram_a unrolls the whole triangle
 * per R, which at R = 51 would be 25 row pairs x 9 column chunks of straight-line code.
 * Here one column tile (gram_a_cols: up to A_ROWS = 256 ratings, col[c][s] in float) is
 * swept by passes of two rows (i0, i0 + 1) x up to six columns, each pass a small
 * function instantiated per width (gram_b_pass: nc = 1..6, on or off the diagonal), so
 * every FMA does eight useful products: R (R + 1) / 2 FMAs per eight ratings (165.75 per
 * rating at rank 50, against 364 four-double FMAs in em_la_syrk_rows_f32's 4 x 12 blocks
 * on the widened tile), two row loads and up to six column loads per twelve FMAs, twelve
 * accumulators + three operands in the 16 ymm registers; the lanes of a tile are summed
 * four entries at a time (hsum4_ps_d).
 * The tile (R x 256 floats: 51 KiB at rank 50) is larger than L1D (32 KiB) on purpose: a
 * pass streams 8 columns (8 KiB) in order, which the L2 and its prefetcher feed at a
 * fraction of their bandwidth, while a shorter tile would add lane reductions (R (R + 1)
 * / 2 per tile: 1326 at rank 50). Measured, L1 rows, rank 50, CPU ns per rating: tiles of
 * 256 / 192 / 128 ratings 101-113 / 105-115 / 106-115 (rank 64: 160-173 / - / 167-177).
 * Precision: a lane sums at most A_ROWS / 8 = 32 products in float (FMAs, one rounding
 * each), lanes are added in float in pairs and quadruples, then in double into ext; with
 * the inputs' roundings in float (scale * y: two, last: one), within 38 roundings of the
 * sum of the products' magnitudes (tests/unit/als/test_als_gram.c derives it; random
 * factors in [-1, 1) and [0, 1) show at most 2.8 at k = 16, 33, 50). */
enum { B_KMIN = 16, B_KMAX = 64 };   /* the k range of gram_b (dispatched) */
/* gram_b's cost per call is about (R (R + 1) / 2) / 4 hsum4_ps_d and R^2 / 12 passes
 * whatever n (2-3 us at rank 50), where em_la_syrk_rows_f32's is mostly per rating: below
 * about 24 ratings the latter is faster, so calls with fewer (small entities, a tile's
 * remainder) stay there. bench/als_kernel.c 50 17700 17700 0 NR (NR ratings per call,
 * CPU ns per rating including the bench's per-entity work), em_la_syrk_rows_f32 / gram_b:
 * NR 16 552-636 / 606-654, 20 550-553 / 564-567, 24 501-502 / 483-487, 32 424-433 /
 * 389-398. */
enum { B_NMIN = 24 };

/* The sums of the eight lanes of a, b, c and d, in double: pairs and then quadruples of
 * lanes added in float (two more roundings), the two halves widened and added in double.
 * Thirteen instructions for four sums where hsum_ps_d takes about eight for one: at rank
 * 50 a tile ends with R (R + 1) / 2 = 1326 sums, which one at a time took a sixth of the
 * kernel's time (rank 50, L1 rows, CPU ns per rating: 124 with hsum_ps_d, 104 with no
 * sums at all, 116-119 with this). */
ALS_AVX2 static inline __attribute__((always_inline)) __m256d hsum4_ps_d(__m256 a, __m256 b,
                                                                         __m256 c, __m256 d)
{
    __m256 ab = _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
    __m256 cd = _mm256_add_ps(_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
    __m256 x = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, 0x44), _mm256_shuffle_ps(ab, cd, 0xEE));
    return _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)),
                         _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)));
}

/* Rows i0, i0 + 1 x columns j0 .. j0 + nc - 1 over ng groups of eight ratings; diag: j0 ==
 * i0 (entry (i0 + 1, i0) is left of the diagonal: skipped), else j0 >= i0 + 2. */
ALS_AVX2 static inline __attribute__((always_inline)) void
gram_b_pass(const int nc, const int diag, int R, int i0, int j0, int ng,
            const float (*col)[A_ROWS], double *ext)
{
    __m256 acc[2][8];   /* [r][6..7]: zero, the padding of the second hsum4_ps_d */
    _Pragma("GCC unroll 2") for (int r = 0; r < 2; r++)
        _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++)
            acc[r][c] = _mm256_setzero_ps();
    const float *p0 = col[i0], *p1 = col[i0 + 1], *pc = col[j0];
    for (int s0 = 0; s0 < 8 * ng; s0 += 8) {
        __m256 c0 = _mm256_load_ps(p0 + s0), c1 = _mm256_load_ps(p1 + s0);
        _Pragma("GCC unroll 6") for (int c = 0; c < 6; c++) {
            if (c >= nc)
                break;
            __m256 cj = diag && c < 2 ? (c ? c1 : c0) : _mm256_load_ps(pc + c * A_ROWS + s0);
            /* One load for both FMAs: left to itself gcc folds a load into each (14 loads
             * per 12 FMAs; rank 50, L1 rows: 104-110 -> 101 ns per rating). */
            __asm__("" : "+x"(cj));
            acc[0][c] = _mm256_fmadd_ps(c0, cj, acc[0][c]);
            if (!diag || c > 0)
                acc[1][c] = _mm256_fmadd_ps(c1, cj, acc[1][c]);
        }
    }
    _Pragma("GCC unroll 2") for (int r = 0; r < 2; r++) {
        double *e = ext + (i0 + r) * R + j0;
        const int c0 = r == 1 && diag;   /* the first entry right of the diagonal */
        _Pragma("GCC unroll 2") for (int q = 0; q < 6; q += 4) {
            if (q >= nc)
                break;
            __m256d d = hsum4_ps_d(acc[r][q], acc[r][q + 1], acc[r][q + 2], acc[r][q + 3]);
            if (q >= c0 && q + 4 <= nc) {
                _mm256_storeu_pd(e + q, _mm256_add_pd(_mm256_loadu_pd(e + q), d));
                continue;
            }
            double t[4];
            _mm256_storeu_pd(t, d);
            _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++)
                if (q + c >= c0 && q + c < nc)
                    e[q + c] += t[c];
        }
    }
}

typedef void (*als_pass_fn)(int, int, int, int, const float (*)[A_ROWS], double *);
#define ALS_GRAM_B_PASS(NC, NAME, DIAG)                                                      \
    ALS_AVX2 static void NAME##NC(int R, int i0, int j0, int ng, const float (*col)[A_ROWS], \
                                  double *ext)                                               \
    {                                                                                        \
        gram_b_pass(NC, DIAG, R, i0, j0, ng, col, ext);                                      \
    }
/* a diagonal chunk is at least 4 wide (w >= 5 columns in ceil(w / 6) nearly equal chunks) */
ALS_GRAM_B_PASS(4, gram_b_diag, 1)
ALS_GRAM_B_PASS(5, gram_b_diag, 1)
ALS_GRAM_B_PASS(6, gram_b_diag, 1)
ALS_GRAM_B_PASS(1, gram_b_off, 0)
ALS_GRAM_B_PASS(2, gram_b_off, 0)
ALS_GRAM_B_PASS(3, gram_b_off, 0)
ALS_GRAM_B_PASS(4, gram_b_off, 0)
ALS_GRAM_B_PASS(5, gram_b_off, 0)
ALS_GRAM_B_PASS(6, gram_b_off, 0)
#undef ALS_GRAM_B_PASS
static const als_pass_fn gram_b_diags[7] = {NULL, NULL, NULL, NULL, gram_b_diag4, gram_b_diag5,
                                            gram_b_diag6};
static const als_pass_fn gram_b_offs[7] = {NULL, gram_b_off1, gram_b_off2, gram_b_off3,
                                           gram_b_off4, gram_b_off5, gram_b_off6};

/* The last w = 3 or 4 rows of the triangle (R odd or even), one pass. */
ALS_AVX2 static void gram_b_last3(int R, int i0, int ng, const float (*col)[A_ROWS],
                                  double *ext)
{
    gram_a_pass(R, 3, i0, i0, 3, ng, col, ext);
}
ALS_AVX2 static void gram_b_last4(int R, int i0, int ng, const float (*col)[A_ROWS],
                                  double *ext)
{
    gram_a_pass(R, 4, i0, i0, 4, ng, col, ext);
}

/* Row pairs (i0, i0 + 1) while more than four rows remain, each over its w = R - i0
 * columns in nch = ceil(w / 6) chunks of nearly equal width (the first on the diagonal),
 * then the last three or four rows as one triangle. */
ALS_AVX2 static void gram_b(int k, int n, const float *const *rows, const double *scale,
                            const double *last, double *ext)
{
    static _Thread_local float col[B_KMAX + 1][A_ROWS] __attribute__((aligned(64)));
    const int R = k + 1;
    for (int s = 0; s < n; s += A_ROWS) {
        const int nt = n - s < A_ROWS ? n - s : A_ROWS, ng = (nt + 7) >> 3;
        gram_a_cols(k, nt, rows + s, scale ? scale + s : NULL, last + s, col);
        const float (*cc)[A_ROWS] = (const float (*)[A_ROWS])col;
        int i0 = 0;
        for (; R - i0 > 4; i0 += 2) {
            const int w = R - i0, nch = (w + 5) / 6, cw = (w + nch - 1) / nch;
            gram_b_diags[cw](R, i0, i0, ng, cc, ext);
            for (int j0 = i0 + cw; j0 < R; j0 += cw)
                gram_b_offs[R - j0 < cw ? R - j0 : cw](R, i0, j0, ng, cc, ext);
        }
        (R - i0 == 3 ? gram_b_last3 : gram_b_last4)(R, i0, ng, cc, ext);
    }
}
#endif

void em__als_gram_rows(int k, int n, const float *const *rows, const double *scale,
                       const double *last, int ld, double *tile, double *ext)
{
    if (n <= 0 || k <= 0)
        return;
#if defined(__x86_64__) && defined(__GNUC__)
    int simd = em_la_simd();
    if (k >= 8 && k <= 13 && simd >= 3) {
        gram_kerns[k - 8](k, n, rows, scale, last, ext);
        return;
    }
    if (k >= A_KMIN && k <= A_KMAX && simd == 2) {
        gram_as[k - A_KMIN](k, n, rows, scale, last, ext);
        return;
    }
    if (k >= B_KMIN && k <= B_KMAX && n >= B_NMIN && simd == 2) {
        gram_b(k, n, rows, scale, last, ext);
        return;
    }
#endif
    em_la_syrk_rows_f32(k, n, rows, scale, last, ld, tile, ext);
}
