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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LA_X86 1
#define LA_AVX2 __attribute__((target("avx2,fma")))
#define LA_AVX512 __attribute__((target("avx512f")))
#endif

static pthread_once_t la_once = PTHREAD_ONCE_INIT;
static int la_have_avx2, la_have_avx512;

static void la_init_once(void)
{
    /* Tasks already occupy every core; nested BLAS threads only oversubscribe them. */
    openblas_set_num_threads(1);
#ifdef LA_X86
    __builtin_cpu_init();
    la_have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    la_have_avx512 = __builtin_cpu_supports("avx512f");
#endif
}

void em_la_init(void)
{
    pthread_once(&la_once, la_init_once);
}

int em_la_simd(void)
{
    em_la_init();
    return la_have_avx512 ? 3 : la_have_avx2 ? 2 : 0;
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

/* ---------------------------------------------------------------- Gram of a tile
 * WHY not dsyrk: for ALS ranks (10..50) and rows of tens to thousands of ratings, BLAS
 * spends more time packing (dgemm_otcopy) and dispatching than multiplying. The kernel
 * below keeps a 4 x 12 block of T^T T in 12 AVX2 registers while streaming the tile rows:
 * per row 3 loads, 4 broadcasts, 12 FMAs. Blocks below the diagonal are skipped; entries of
 * a diagonal block below the diagonal and of padding rows/columns are computed and dropped,
 * so entry (i, j) only ever reads columns i and j. */

/* Adds the upper-triangle entries of the 4 x w block at (i0, j0) of acc into ata. */
static void tile_store(int k, int i0, int j0, int w, const double acc[4][12], double *ata)
{
    int cend = k - j0 < w ? k - j0 : w;
    for (int r = 0; r < 4 && i0 + r < k; r++) {
        double *dst = ata + (size_t)(i0 + r) * (size_t)k + (size_t)j0;
        for (int c = i0 + r > j0 ? i0 + r - j0 : 0; c < cend; c++)
            dst[c] += acc[r][c];
    }
}

#ifdef LA_X86
/* One micro-kernel per block width (4, 8, 12 columns), written out with named
 * accumulators: gcc -O2 neither unrolls the generic loops nor keeps an accumulator array
 * in registers, and spilling them made the kernel 15x slower. */
#define LA_ROW(r) __m256d a##r = _mm256_broadcast_sd(row + i0 + r)
#define LA_FMA(r, v) c##r##v = _mm256_fmadd_pd(a##r, y##v, c##r##v)
#define LA_OUT(r, v) _mm256_storeu_pd(out[r] + 4 * v, c##r##v)

LA_AVX2 static void tile_kern12(int n, const double *t, int ld, int i0, int j0,
                                double out[4][12])
{
    __m256d c00 = _mm256_setzero_pd(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m256d c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    for (int s = 0; s < n; s++) {
        const double *row = t + (size_t)s * (size_t)ld;
        __m256d y0 = _mm256_loadu_pd(row + j0), y1 = _mm256_loadu_pd(row + j0 + 4);
        __m256d y2 = _mm256_loadu_pd(row + j0 + 8);
        LA_ROW(0); LA_FMA(0, 0); LA_FMA(0, 1); LA_FMA(0, 2);
        LA_ROW(1); LA_FMA(1, 0); LA_FMA(1, 1); LA_FMA(1, 2);
        LA_ROW(2); LA_FMA(2, 0); LA_FMA(2, 1); LA_FMA(2, 2);
        LA_ROW(3); LA_FMA(3, 0); LA_FMA(3, 1); LA_FMA(3, 2);
    }
    LA_OUT(0, 0); LA_OUT(0, 1); LA_OUT(0, 2); LA_OUT(1, 0); LA_OUT(1, 1); LA_OUT(1, 2);
    LA_OUT(2, 0); LA_OUT(2, 1); LA_OUT(2, 2); LA_OUT(3, 0); LA_OUT(3, 1); LA_OUT(3, 2);
}

LA_AVX2 static void tile_kern8(int n, const double *t, int ld, int i0, int j0,
                               double out[4][12])
{
    __m256d c00 = _mm256_setzero_pd(), c01 = c00, c10 = c00, c11 = c00;
    __m256d c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    for (int s = 0; s < n; s++) {
        const double *row = t + (size_t)s * (size_t)ld;
        __m256d y0 = _mm256_loadu_pd(row + j0), y1 = _mm256_loadu_pd(row + j0 + 4);
        LA_ROW(0); LA_FMA(0, 0); LA_FMA(0, 1);
        LA_ROW(1); LA_FMA(1, 0); LA_FMA(1, 1);
        LA_ROW(2); LA_FMA(2, 0); LA_FMA(2, 1);
        LA_ROW(3); LA_FMA(3, 0); LA_FMA(3, 1);
    }
    LA_OUT(0, 0); LA_OUT(0, 1); LA_OUT(1, 0); LA_OUT(1, 1);
    LA_OUT(2, 0); LA_OUT(2, 1); LA_OUT(3, 0); LA_OUT(3, 1);
}

/* Four columns: two rows per step into separate accumulators, so 8 FMA chains hide the
 * FMA latency that 4 chains would expose. */
LA_AVX2 static void tile_kern4(int n, const double *t, int ld, int i0, int j0,
                               double out[4][12])
{
    __m256d c00 = _mm256_setzero_pd(), c10 = c00, c20 = c00, c30 = c00;
    __m256d c01 = c00, c11 = c00, c21 = c00, c31 = c00;
    int s = 0;
    for (; s + 1 < n; s += 2) {
        const double *row = t + (size_t)s * (size_t)ld;
        __m256d y0 = _mm256_loadu_pd(row + j0);
        LA_ROW(0); LA_FMA(0, 0); LA_ROW(1); LA_FMA(1, 0);
        LA_ROW(2); LA_FMA(2, 0); LA_ROW(3); LA_FMA(3, 0);
        const double *nx = row + ld;
        __m256d y1 = _mm256_loadu_pd(nx + j0);
        c01 = _mm256_fmadd_pd(_mm256_broadcast_sd(nx + i0), y1, c01);
        c11 = _mm256_fmadd_pd(_mm256_broadcast_sd(nx + i0 + 1), y1, c11);
        c21 = _mm256_fmadd_pd(_mm256_broadcast_sd(nx + i0 + 2), y1, c21);
        c31 = _mm256_fmadd_pd(_mm256_broadcast_sd(nx + i0 + 3), y1, c31);
    }
    if (s < n) {
        const double *row = t + (size_t)s * (size_t)ld;
        __m256d y0 = _mm256_loadu_pd(row + j0);
        LA_ROW(0); LA_FMA(0, 0); LA_ROW(1); LA_FMA(1, 0);
        LA_ROW(2); LA_FMA(2, 0); LA_ROW(3); LA_FMA(3, 0);
    }
    c00 = _mm256_add_pd(c00, c01);
    c10 = _mm256_add_pd(c10, c11);
    c20 = _mm256_add_pd(c20, c21);
    c30 = _mm256_add_pd(c30, c31);
    LA_OUT(0, 0); LA_OUT(1, 0); LA_OUT(2, 0); LA_OUT(3, 0);
}
#undef LA_ROW
#undef LA_FMA
#undef LA_OUT

LA_AVX2 static void syrk_tile_avx2(int k, int n, const double *t, int ld, double *ata)
{
    double out[4][12];
    for (int i0 = 0; i0 < k; i0 += 4)
        for (int j0 = i0; j0 < k; j0 += 12) {
            /* columns j0 .. j0 + w - 1 stay below round_up(k, 4) <= ld */
            int w = k - j0 >= 12 ? 12 : (k - j0 + 3) & ~3;
            if (w == 12)
                tile_kern12(n, t, ld, i0, j0, out);
            else if (w == 8)
                tile_kern8(n, t, ld, i0, j0, out);
            else
                tile_kern4(n, t, ld, i0, j0, out);
            tile_store(k, i0, j0, w, (const double (*)[12])out, ata);
        }
}
#endif

#ifdef LA_X86
/* The AVX-512 tile kernel for ranks past the fused one: a block of nr rows (i0..) x up to
 * 24 columns (j0..; nv = 1..3 vectors) of T^T T in nr x nv registers (nr and nv constants
 * per instance), so each FMA does 8 products (the AVX2 4 x 12 block: 4). The last vector's
 * columns past the tile's width are loaded masked (zero) and their sums dropped.
 * The k columns are split as k = m8 + m, m8 a multiple of 8 and m = k % 8: the upper
 * triangle of the first m8 columns by 8-row blocks from the diagonal on (full vectors
 * only), and the last m columns as ROWS: blocks of m rows (m8..k-1) x every column, whose
 * entry (i, j < m8) is stored at (j, i). The usual layout (8-row blocks over all k
 * columns) would spend a whole vector per 8-row block on those m columns: at rank 50
 * (k = 51, m = 3) 224 FMAs per tile row against 189 here. Every entry is still one FMA
 * chain over the tile rows in order (a * b = b * a exactly), so the sums are the same
 * bits as with the usual layout. */
LA_AVX512 static inline __attribute__((always_inline)) void
tile512(const int nr, const int nv, int k, int cend, int n, const double *t, int ld, int i0,
        int j0, __mmask8 lastm, double *ata)
{
    __m512d c[8][8];
    _Pragma("GCC unroll 8") for (int r = 0; r < nr; r++)
        _Pragma("GCC unroll 8") for (int v = 0; v < nv; v++)
            c[r][v] = _mm512_setzero_pd();
    for (int s = 0; s < n; s++) {
        const double *row = t + (size_t)s * (size_t)ld;
        __m512d y[8];
        _Pragma("GCC unroll 8") for (int v = 0; v < nv; v++)
            y[v] = v == nv - 1 ? _mm512_maskz_loadu_pd(lastm, row + j0 + 8 * v)
                               : _mm512_loadu_pd(row + j0 + 8 * v);
        _Pragma("GCC unroll 8") for (int r = 0; r < nr; r++) {
            __m512d a = _mm512_set1_pd(row[i0 + r]);
            _Pragma("GCC unroll 8") for (int v = 0; v < nv; v++)
                c[r][v] = _mm512_fmadd_pd(a, y[v], c[r][v]);
        }
    }
    double out[8][64] __attribute__((aligned(64)));
    _Pragma("GCC unroll 8") for (int r = 0; r < nr; r++)
        _Pragma("GCC unroll 8") for (int v = 0; v < nv; v++)
            _mm512_store_pd(out[r] + 8 * v, c[r][v]);
    int w = cend - j0 < 8 * nv ? cend - j0 : 8 * nv;
    for (int r = 0; r < nr; r++) {
        int i = i0 + r;
        double *dst = ata + (size_t)i * (size_t)k;
        for (int q = 0; q < w; q++) {
            int j = j0 + q;
            if (j >= i)
                dst[j] += out[r][q];
            else if (nr < 8 && j < k - nr)   /* a tail row's entry left of the tail */
                ata[(size_t)j * (size_t)k + (size_t)i] += out[r][q];
        }
    }
}

typedef void (*la_tile512_fn)(int, int, int, const double *, int, int, int, __mmask8,
                              double *);
#define LA_TILE512(NR, NV)                                                                   \
    LA_AVX512 static void tile512_##NR##_##NV(int k, int cend, int n, const double *t,      \
                                              int ld, int i0, int j0, __mmask8 m,          \
                                              double *ata)                                 \
    {                                                                                        \
        tile512(NR, NV, k, cend, n, t, ld, i0, j0, m, ata);                                  \
    }
/* instances: nr x nv <= 24 accumulators (8 rows: nv <= 3; tail rows: nv <= 8) */
#define LA_TILE512_3(NR) LA_TILE512(NR, 1) LA_TILE512(NR, 2) LA_TILE512(NR, 3)
#define LA_TILE512_4(NR) LA_TILE512_3(NR) LA_TILE512(NR, 4)
#define LA_TILE512_6(NR) LA_TILE512_4(NR) LA_TILE512(NR, 5) LA_TILE512(NR, 6)
#define LA_TILE512_8(NR) LA_TILE512_6(NR) LA_TILE512(NR, 7) LA_TILE512(NR, 8)
LA_TILE512_8(1)
LA_TILE512_8(2)
LA_TILE512_8(3)
LA_TILE512_6(4)
LA_TILE512_4(5)
LA_TILE512_4(6)
LA_TILE512_3(7)
LA_TILE512_3(8)
#undef LA_TILE512_3
#undef LA_TILE512_4
#undef LA_TILE512_6
#undef LA_TILE512_8
#undef LA_TILE512
#define LA_T3(NR) tile512_##NR##_1, tile512_##NR##_2, tile512_##NR##_3
#define LA_T4(NR) LA_T3(NR), tile512_##NR##_4
#define LA_T6(NR) LA_T4(NR), tile512_##NR##_5, tile512_##NR##_6
#define LA_T8(NR) LA_T6(NR), tile512_##NR##_7, tile512_##NR##_8
static const la_tile512_fn la_tile512[9][8] = {
    {0},       {LA_T8(1)}, {LA_T8(2)}, {LA_T8(3)}, {LA_T6(4)},
    {LA_T4(5)}, {LA_T4(6)}, {LA_T3(7)}, {LA_T3(8)}};
/* the widest block (vectors) per row count */
static const int la_tile512_nv[9] = {0, 8, 8, 8, 6, 4, 4, 3, 3};
#undef LA_T3
#undef LA_T4
#undef LA_T6
#undef LA_T8

/* Runs the blocks of nr rows from i0 over columns j0..cend-1, the widest first. */
static void syrk_tile_blocks(int k, int cend, int n, const double *t, int ld, int nr, int i0,
                             int j0, double *ata)
{
    const int bw = 8 * la_tile512_nv[nr];
    for (; j0 < cend; j0 += bw) {
        int w = cend - j0 >= bw ? bw : cend - j0, nv = (w + 7) / 8, tail = w - 8 * (nv - 1);
        la_tile512[nr][nv - 1](k, cend, n, t, ld, i0, j0, (__mmask8)((1u << tail) - 1), ata);
    }
}

static void syrk_tile_avx512(int k, int n, const double *t, int ld, double *ata)
{
    int m = k % 8, m8 = k - m;
    for (int i0 = 0; i0 < m8; i0 += 8)
        syrk_tile_blocks(k, m8, n, t, ld, 8, i0, i0, ata);
    if (m)
        syrk_tile_blocks(k, k, n, t, ld, m, m8, 0, ata);
}
#endif

void em_la_syrk_tile(int k, int n, const double *t, int ld, double *ata)
{
    if (n <= 0 || k <= 0)
        return;
    em_la_init();
#ifdef LA_X86
    if (la_have_avx512 && k > 16) {   /* small k: the 4-wide blocks waste fewer lanes */
        syrk_tile_avx512(k, n, t, ld, ata);
        return;
    }
    if (la_have_avx2 && ld % 4 == 0) {
        syrk_tile_avx2(k, n, t, ld, ata);
        return;
    }
#endif
    for (int s = 0; s < n; s++) {
        const double *row = t + (size_t)s * (size_t)ld;
        for (int i = 0; i < k; i++) {
            double yi = row[i];
            double *a = ata + (size_t)i * (size_t)k;
            for (int j = i; j < k; j++)
                a[j] += yi * row[j];
        }
    }
}

#ifdef LA_X86
LA_AVX2 static void gather_avx2(int k, int n, const float *const *rows, const double *scale,
                                const double *last, int ld, double *tile)
{
    for (int s = 0; s < n; s++) {
        const float *y = rows[s];
        double *row = tile + (size_t)s * (size_t)ld;
        __m256d sc = _mm256_set1_pd(scale ? scale[s] : 1.0);
        int q = 0;
        for (; q + 4 <= k; q += 4)
            _mm256_storeu_pd(row + q, _mm256_mul_pd(sc, _mm256_cvtps_pd(_mm_loadu_ps(y + q))));
        for (; q < k; q++)
            row[q] = (scale ? scale[s] : 1.0) * (double)y[q];
        row[k] = last[s];
        for (q = k + 1; q < ld; q++)
            row[q] = 0.0;
    }
}
#endif

void em_la_gather_f32(int k, int n, const float *const *rows, const double *scale,
                      const double *last, int ld, double *tile)
{
    em_la_init();
#ifdef LA_X86
    if (la_have_avx2) {
        gather_avx2(k, n, rows, scale, last, ld, tile);
        return;
    }
#endif
    for (int s = 0; s < n; s++) {
        double *row = tile + (size_t)s * (size_t)ld, sc = scale ? scale[s] : 1.0;
        for (int q = 0; q < k; q++)
            row[q] = sc * (double)rows[s][q];
        row[k] = last[s];
        for (int q = k + 1; q < ld; q++)
            row[q] = 0.0;
    }
}

#ifdef LA_X86
/* The fused Gram kernel for k + 1 <= nrows columns (nrows 8..16, a constant at each call
 * site so the accumulators live in registers): per row, v = [scale * y, last] as two
 * 8-double vectors, and for every row i of the upper triangle the FMA acc[i] += v[i] * v.
 * Rows 0..7 keep columns 0..7 in lo[i] and 8..15 in hi[i]; rows 8.. only need hi[i]. At
 * rank 10 that is 20 FMAs on 512-bit registers per rating, read straight from the float
 * factors: no double tile is written and read back. The factor rows are random reads from
 * megabytes; each is prefetched LA_PREFETCH rows ahead. */
enum { LA_PREFETCH = 12 };

LA_AVX512 static inline __attribute__((always_inline)) void
rows_kern(const int nrows, int k, int n, const float *const *rows, const double *scale,
          const double *last, double *ext)
{
    __m512d lo[8], hi[16];
    double v[16] __attribute__((aligned(64)));
    const __mmask16 ymask = (__mmask16)((1u << k) - 1);
    const __mmask8 lastbit = (__mmask8)(1u << (k & 7));
    _Pragma("GCC unroll 16") for (int i = 0; i < 8; i++)
        lo[i] = _mm512_setzero_pd();
    _Pragma("GCC unroll 16") for (int i = 0; i < nrows; i++)
        hi[i] = _mm512_setzero_pd();
    for (int s = 0; s < n; s++) {
        if (s + LA_PREFETCH < n)
            _mm_prefetch((const char *)rows[s + LA_PREFETCH], _MM_HINT_T0);
        __m512 y = _mm512_maskz_loadu_ps(ymask, rows[s]);
        __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(y));
        __m512d b = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(y), 1)));
        if (scale) {
            __m512d sc = _mm512_set1_pd(scale[s]);
            a = _mm512_mul_pd(a, sc);
            b = _mm512_mul_pd(b, sc);
        }
        __m512d l = _mm512_set1_pd(last[s]);
        if (k < 8)
            a = _mm512_mask_mov_pd(a, lastbit, l);
        else
            b = _mm512_mask_mov_pd(b, lastbit, l);
        _mm512_store_pd(v, a);
        _mm512_store_pd(v + 8, b);
        /* v[i] is broadcast from memory (a load-port operation): left to itself gcc
         * broadcasts from the registers with vpermpd, which competes with the FMAs for
         * port 5 and cost a third of the kernel's time. */
        __asm__ volatile("" : "+m"(v));
        _Pragma("GCC unroll 16") for (int i = 0; i < 8; i++) {
            __m512d vi = _mm512_set1_pd(v[i]);
            lo[i] = _mm512_fmadd_pd(vi, a, lo[i]);
            if (nrows > 8)
                hi[i] = _mm512_fmadd_pd(vi, b, hi[i]);
        }
        _Pragma("GCC unroll 16") for (int i = 8; i < nrows; i++)
            hi[i] = _mm512_fmadd_pd(_mm512_set1_pd(v[i]), b, hi[i]);
    }
    /* Out of the registers with constant indices only (a variable index would keep the
     * accumulator arrays in memory through the loop), then the upper triangle. */
    double acc[16][16] __attribute__((aligned(64)));
    _Pragma("GCC unroll 16") for (int i = 0; i < 8; i++)
        _mm512_store_pd(acc[i], lo[i]);
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
        _mm512_store_pd(acc[i] + 8, i < nrows ? hi[i] : _mm512_setzero_pd());
    int k1 = k + 1;
    for (int i = 0; i < k1; i++) {
        double *e = ext + (size_t)i * (size_t)k1;
        for (int j = i; j < k1; j++)
            e[j] += acc[i][j];
    }
}

/* One instance per row count, so that no FMA is spent on rows past k + 1. */
#define LA_ROWS_KERN(R)                                                                      \
    LA_AVX512 static void rows_kern##R(int k, int n, const float *const *rows,              \
                                       const double *scale, const double *last, double *ext) \
    {                                                                                        \
        rows_kern(R, k, n, rows, scale, last, ext);                                          \
    }
LA_ROWS_KERN(8)
LA_ROWS_KERN(9)
LA_ROWS_KERN(10)
LA_ROWS_KERN(11)
LA_ROWS_KERN(12)
LA_ROWS_KERN(13)
LA_ROWS_KERN(14)
LA_ROWS_KERN(15)
LA_ROWS_KERN(16)
#undef LA_ROWS_KERN

typedef void (*la_rows_fn)(int, int, const float *const *, const double *, const double *,
                           double *);
static const la_rows_fn la_rows_kern[17] = {
    rows_kern8,  rows_kern8,  rows_kern8,  rows_kern8,  rows_kern8,  rows_kern8,
    rows_kern8,  rows_kern8,  rows_kern8,  rows_kern9,  rows_kern10, rows_kern11,
    rows_kern12, rows_kern13, rows_kern14, rows_kern15, rows_kern16,
};
#endif

void em_la_syrk_rows_f32(int k, int n, const float *const *rows, const double *scale,
                         const double *last, int ld, double *tile, double *ext)
{
    if (n <= 0 || k <= 0)
        return;
    em_la_init();
#ifdef LA_X86
    if (la_have_avx512 && k + 1 <= 16) {
        la_rows_kern[k + 1](k, n, rows, scale, last, ext);
        return;
    }
#endif
    em_la_gather_f32(k, n, rows, scale, last, ld, tile);
    em_la_syrk_tile(k + 1, n, tile, ld, ext);
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

/* Right-looking Cholesky A = U^T U on the row-major upper triangle (rows stay contiguous),
 * then U^T y = b and U x = y. Same factor layout as dposv 'L' column-major. */
int em_la_chol_solve_small(int k, double *a, double *b, em_err *err)
{
    size_t kk = (size_t)(k > 0 ? k : 0);
    for (size_t j = 0; j < kk; j++) {
        double *aj = a + j * kk;
        double s = aj[j];
        if (!(s > 0.0))
            return em_err_set(err, EM_EINVAL, "cholesky: leading minor %zu of %d x %d is not "
                              "positive definite", j + 1, k, k);
        double d = sqrt(s), inv = 1.0 / d;
        aj[j] = d;
        for (size_t i = j + 1; i < kk; i++)
            aj[i] *= inv;
        for (size_t i = j + 1; i < kk; i++) {
            double u = aj[i], *ai = a + i * kk;
            for (size_t l = i; l < kk; l++)
                ai[l] -= u * aj[l];
        }
    }
    for (size_t j = 0; j < kk; j++) {
        double v = b[j];
        for (size_t p = 0; p < j; p++)
            v -= a[p * kk + j] * b[p];
        b[j] = v / a[j * kk + j];
    }
    for (size_t j = kk; j-- > 0;) {
        const double *aj = a + j * kk;
        double v = b[j];
        for (size_t i = j + 1; i < kk; i++)
            v -= aj[i] * b[i];
        b[j] = v / aj[j];
    }
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
    int rc = np ? em_la_chol_solve_small(np, sub, rhs, err) : 0;
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
