/* mllib/als/kernel.c - hand-written kernels of the ALS solve step (see kernel.h). */
#include "mllib/als/kernel.h"

#include <math.h>

#include "mllib/linalg/linalg.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define ALS_AVX512 __attribute__((target("avx512f")))

enum { CHOL_MAX = 64 };   /* the AVX-512 path's largest k (64 KiB of thread-local buffers) */

/* A = U^T U, U^T y = b, U x = y in a zero-padded copy whose rows are 8-double aligned
 * (ld = round_up(k, 8)), so every vector access is a full, unmasked, aligned load or store:
 * AMD cores do not forward a masked store to a later load, and each step of the
 * factorization and of the solves reads what the step before wrote. Lanes a vector must
 * not change (below the diagonal, before l) get a zero multiplier through masked LOADS.
 * The backward solve runs on ut = U^T (row j = column j of U, kept as U is formed), so
 * both solves are row axpys; no dot-product reductions on the critical path. */
ALS_AVX512 static int chol_avx512(int k, double *a, double *b, em_err *err)
{
    static _Thread_local double u[CHOL_MAX * CHOL_MAX] __attribute__((aligned(64)));
    static _Thread_local double ut[CHOL_MAX * CHOL_MAX] __attribute__((aligned(64)));
    static _Thread_local double y[CHOL_MAX] __attribute__((aligned(64)));
    size_t kk = (size_t)k, ld = (kk + 7) & ~(size_t)7;
    for (size_t i = 0; i < kk; i++) {
        double *ui = u + i * ld;
        size_t l0 = i & ~(size_t)7;
        for (size_t l = l0; l < ld; l++)
            ui[l] = l >= i && l < kk ? a[i * kk + l] : 0.0;
    }
    for (size_t j = 0; j < kk; j++) {
        double *uj = u + j * ld;
        double s = uj[j];
        if (!(s > 0.0))
            return em_err_set(err, EM_EINVAL, "cholesky: leading minor %zu of %d x %d is not "
                              "positive definite", j + 1, k, k);
        double d = sqrt(s);
        __m512d inv = _mm512_set1_pd(1.0 / d);
        size_t j0 = j & ~(size_t)7;
        /* row j: lanes > j scaled, lane j = d, lanes < j (zero) kept */
        for (size_t l = j0; l < ld; l += 8) {
            __m512d v = _mm512_mul_pd(_mm512_load_pd(uj + l), inv);
            if (l == j0)
                v = _mm512_mask_mov_pd(v, (__mmask8)(1u << (j - j0)), _mm512_set1_pd(d));
            _mm512_store_pd(uj + l, v);
        }
        for (size_t l = j; l < kk; l++)
            ut[l * ld + j] = uj[l];
        for (size_t i = j + 1; i < kk; i++) {
            __m512d m = _mm512_set1_pd(uj[i]);
            double *ui = u + i * ld;
            size_t i0 = i & ~(size_t)7;
            __mmask8 head = (__mmask8)(0xffu << (i - i0));
            _mm512_store_pd(ui + i0, _mm512_fnmadd_pd(m, _mm512_maskz_load_pd(head, uj + i0),
                                                      _mm512_load_pd(ui + i0)));
            for (size_t l = i0 + 8; l < ld; l += 8)
                _mm512_store_pd(ui + l, _mm512_fnmadd_pd(m, _mm512_load_pd(uj + l),
                                                         _mm512_load_pd(ui + l)));
        }
    }
    for (size_t l = 0; l < ld; l++)
        y[l] = l < kk ? b[l] : 0.0;
    for (size_t j = 0; j < kk; j++) {   /* U^T y = b: y_j, then y_l -= y_j u_jl for l > j */
        const double *uj = u + j * ld;
        double yj = y[j] / uj[j];
        __m512d yv = _mm512_set1_pd(yj);
        size_t j0 = j & ~(size_t)7;
        __mmask8 head = (__mmask8)(0xfeu << (j - j0));
        for (size_t l = j0; l < ld; l += 8) {
            __m512d row = l == j0 ? _mm512_maskz_load_pd(head, uj + l) : _mm512_load_pd(uj + l);
            _mm512_store_pd(y + l, _mm512_fnmadd_pd(yv, row, _mm512_load_pd(y + l)));
        }
        b[j] = yj;   /* y_j, final for the forward solve; y[j] itself was left unchanged */
    }
    for (size_t l = 0; l < ld; l++)
        y[l] = l < kk ? b[l] : 0.0;
    for (size_t j = kk; j-- > 0;) {   /* U x = y: x_j, then y_l -= x_j u_lj for l < j */
        const double *tj = ut + j * ld;
        double xj = y[j] / tj[j];
        __m512d xv = _mm512_set1_pd(xj);
        size_t j0 = j & ~(size_t)7;
        for (size_t l = 0; l <= j0; l += 8) {
            __m512d col = l == j0 ? _mm512_maskz_load_pd((__mmask8)((1u << (j - j0)) - 1), tj + l)
                                  : _mm512_load_pd(tj + l);
            _mm512_store_pd(y + l, _mm512_fnmadd_pd(xv, col, _mm512_load_pd(y + l)));
        }
        b[j] = xj;
    }
    return 0;
}

/* The Gram kernel of em__als_gram_rows for 9 <= nrows = k + 1 <= 14 (see kernel.h). With
 * v = [scale * y, last] split as a = v[0..7], b = v[8..15], the upper triangle of v v^T
 * is three parts: rows 0..7 x columns 0..7 (lo[i] += v[i] a: 8 FMAs), rows 0..7 x columns
 * 8.. (held transposed: cr[c] += v[8 + c] a, one FMA per column past 7) and rows 8.. x
 * columns 8.. (br[c] += v[8 + c] b, one per row past 7): 2 nrows - 8 FMAs per rating
 * where the row-by-row kernel (em_la_syrk_rows_f32: every row i of 0..7 times both a and
 * b) spends nrows + 8; at rank 10 that is 14 instead of 19. Every entry is the same fused
 * multiply-add of the same two doubles in the same order as there (a product is
 * commutative), so the sums are bit-identical. */
ALS_AVX512 static inline __attribute__((always_inline)) void
gram_kern(const int nrows, int k, int n, const float *const *rows, const double *scale,
          const double *last, double *ext)
{
    enum { PF = 12 };   /* rows prefetched ahead, as the row-by-row kernel */
    const int nx = nrows - 8;
    __m512d lo[8], cr[8], br[8];
    double v[16] __attribute__((aligned(64)));
    const __mmask16 ymask = (__mmask16)((1u << k) - 1);
    const __mmask8 lastbit = (__mmask8)(1u << (k & 7));
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
        lo[i] = _mm512_setzero_pd();
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
        cr[i] = _mm512_setzero_pd();
        br[i] = _mm512_setzero_pd();
    }
    for (int s = 0; s < n; s++) {
        if (s + PF < n)
            _mm_prefetch((const char *)rows[s + PF], _MM_HINT_T0);
        __m512 y = _mm512_maskz_loadu_ps(ymask, rows[s]);
        __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(y));
        __m512d b = _mm512_cvtps_pd(
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(y), 1)));
        if (scale) {
            __m512d sc = _mm512_set1_pd(scale[s]);
            a = _mm512_mul_pd(a, sc);
            b = _mm512_mul_pd(b, sc);
        }
        b = _mm512_mask_mov_pd(b, lastbit, _mm512_set1_pd(last[s]));
        _mm512_store_pd(v, a);
        _mm512_store_pd(v + 8, b);
        /* broadcasts from memory (load ports), not vpermpd from registers (see linalg.c) */
        __asm__ volatile("" : "+m"(v));
        _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
            lo[i] = _mm512_fmadd_pd(_mm512_set1_pd(v[i]), a, lo[i]);
        _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++)
            if (c < nx) {
                __m512d vc = _mm512_set1_pd(v[8 + c]);
                cr[c] = _mm512_fmadd_pd(vc, a, cr[c]);
                br[c] = _mm512_fmadd_pd(vc, b, br[c]);
            }
    }
    double l[8][8] __attribute__((aligned(64))), x[8][8] __attribute__((aligned(64)));
    double r[8][8] __attribute__((aligned(64)));
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
        _mm512_store_pd(l[i], lo[i]);
        _mm512_store_pd(x[i], cr[i]);
        _mm512_store_pd(r[i], br[i]);
    }
    for (int i = 0; i < nrows; i++) {
        double *e = ext + (size_t)i * (size_t)nrows;
        for (int j = i; j < nrows; j++)
            e[j] += i < 8 ? (j < 8 ? l[i][j] : x[j - 8][i]) : r[i - 8][j - 8];
    }
}

#define ALS_GRAM_KERN(R)                                                                     \
    ALS_AVX512 static void gram_kern##R(int k, int n, const float *const *rows,             \
                                        const double *scale, const double *last, double *ext) \
    {                                                                                        \
        gram_kern(R, k, n, rows, scale, last, ext);                                          \
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

int em__als_chol_solve(int k, double *a, double *b, em_err *err)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (k > 24 && k <= CHOL_MAX && em_la_simd() >= 3)
        return chol_avx512(k, a, b, err);
#endif
    return k <= 24 ? em_la_chol_solve_small(k, a, b, err) : em_la_chol_solve(k, a, b, err);
}
