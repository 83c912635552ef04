/* mllib/clustering/kmeans_kernel.c - the fused assignment kernel of k-means for AVX-512:
 * distances to every centre and their argmin for a block of dense rows, in registers.
 *
 * WHY: with the k of clustering (tens of centres), a GEMM of n x d by d x k spends as long
 * packing its operands (dgemm_oncopy) as multiplying, and the argmin afterwards reads the
 * n x k product back from memory: profiled at 1M x 50, k = 20, the GEMM kernel was 18% of a
 * Lloyd iteration, packing 17% and the scalar argmin 17%. Here the centres are laid out
 * once per block as a d x kp panel (kp = k rounded up to 8, the lanes of a zmm register),
 * four rows are multiplied against it at a time (4 x kp/8 accumulators, at most 16 of the
 * 32 zmm registers, the panel's rows streamed from L1), and each row's value
 *     v_c = bias_c + scale * x.c      (euclidean: bias |c|^2, scale -2; cosine: 0, -1)
 * is reduced to its minimum and first index without leaving registers. Padding centres
 * get bias +inf, so they never win. Ties go to the lowest index, as in the GEMM path.
 * Products are summed over d in order, so a row's dots may differ from dgemm's in the last
 * bits; the distances reported are recomputed from them exactly as the GEMM path does.
 * The register arrays are only registers when their loops are unrolled completely, which
 * GCC does not do at -O2 unasked: hence the unroll pragmas (without them the accumulators
 * lived on the stack and the kernel was slower than dgemm).
 * DISPATCH: em__km_fused_ok says when it applies (AVX-512F at run time, k <= 32);
 * otherwise kmeans.c uses the GEMM path. */
#include <math.h>
#include <string.h>

#include "mllib/clustering/kmeans_int.h"
#include "mllib/linalg/linalg.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KM_AVX512 __attribute__((target("avx512f")))
#define KM_X86 1
#endif

enum { KM_FUSED_MAX_K = 32 };

bool em__km_fused_ok(uint32_t k)
{
#ifdef KM_X86
    return k >= 1 && k <= KM_FUSED_MAX_K && em_la_simd() >= 3;
#else
    (void)k;
    return false;
#endif
}

size_t em__km_fused_panel_size(uint32_t k, uint32_t d)
{
    size_t kp = ((size_t)k + 7) & ~(size_t)7;
    return kp * ((size_t)d + 1);
}

#ifdef KM_X86

/* One row group: R rows (1..4) against NV vectors of 8 centres; writes best[] and the
 * minimum value vmin[] (bias + scale * dot) of each row. */
#define KM_DEFINE_GROUP(NV)                                                                \
    KM_AVX512 static void group_##NV(const double *x, size_t ldx, int R, const double *pan, \
                                     uint32_t d, double scale, const double *bias,         \
                                     uint32_t *best, double *vmin)                         \
    {                                                                                      \
        __m512d acc[4][NV], vscale = _mm512_set1_pd(scale);                                \
        _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)                                \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                           \
                acc[r][v] = _mm512_setzero_pd();                                           \
        const double *x0 = x, *x1 = x + (R > 1 ? ldx : 0), *x2 = x + (R > 2 ? 2 * ldx : 0), \
                     *x3 = x + (R > 3 ? 3 * ldx : 0);                                      \
        for (uint32_t t = 0; t < d; t++) {                                                 \
            const double *p = pan + (size_t)t * (NV * 8);                                  \
            __m512d c[NV];                                                                 \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                           \
                c[v] = _mm512_loadu_pd(p + 8 * v);                                         \
            __m512d b0 = _mm512_set1_pd(x0[t]), b1 = _mm512_set1_pd(x1[t]),                \
                    b2 = _mm512_set1_pd(x2[t]), b3 = _mm512_set1_pd(x3[t]);                \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                         \
                acc[0][v] = _mm512_fmadd_pd(b0, c[v], acc[0][v]);                          \
                acc[1][v] = _mm512_fmadd_pd(b1, c[v], acc[1][v]);                          \
                acc[2][v] = _mm512_fmadd_pd(b2, c[v], acc[2][v]);                          \
                acc[3][v] = _mm512_fmadd_pd(b3, c[v], acc[3][v]);                          \
            }                                                                              \
        }                                                                                  \
        for (int r = 0; r < R; r++) {                                                      \
            __m512d val[NV], m;                                                            \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                           \
                val[v] = _mm512_fmadd_pd(vscale, acc[r][v], _mm512_loadu_pd(bias + 8 * v)); \
            m = val[0];                                                                    \
            for (int v = 1; v < NV; v++)                                                   \
                m = _mm512_min_pd(m, val[v]);                                              \
            double mv = _mm512_reduce_min_pd(m);                                           \
            __m512d bm = _mm512_set1_pd(mv);                                               \
            uint32_t b = 0;                                                                \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                         \
                __mmask8 eq = _mm512_cmp_pd_mask(val[v], bm, _CMP_EQ_OQ);                  \
                if (eq) {                                                                  \
                    b = (uint32_t)(8 * v + __builtin_ctz(eq));                             \
                    break;                                                                 \
                }                                                                          \
            }                                                                              \
            best[r] = b;                                                                   \
            vmin[r] = mv;                                                                  \
        }                                                                                  \
    }

KM_DEFINE_GROUP(1)
KM_DEFINE_GROUP(2)
KM_DEFINE_GROUP(3)
KM_DEFINE_GROUP(4)

KM_AVX512 static double sqnorm(const double *x, uint32_t d)
{
    __m512d s = _mm512_setzero_pd();
    uint32_t j = 0;
    for (; j + 8 <= d; j += 8) {
        __m512d v = _mm512_loadu_pd(x + j);
        s = _mm512_fmadd_pd(v, v, s);
    }
    if (j < d) {
        __mmask8 m = (__mmask8)((1u << (d - j)) - 1);
        __m512d v = _mm512_maskz_loadu_pd(m, x + j);
        s = _mm512_fmadd_pd(v, v, s);
    }
    return _mm512_reduce_add_pd(s);
}

KM_AVX512 int em__km_assign_fused(const km_centers *C, const double *x, size_t ldx, size_t n,
                                  double *panel, uint32_t *best, double *dist, double *xn,
                                  size_t *bad)
{
    uint32_t k = C->k, d = C->dim, nv = (k + 7) / 8, kp = 8 * nv;
    bool cos = C->distance == EM_KMEANS_COSINE;
    /* panel: d rows of kp centre coordinates, then the kp biases. */
    double *bias = panel + (size_t)d * kp;
    for (uint32_t t = 0; t < d; t++)
        for (uint32_t c = 0; c < kp; c++)
            panel[(size_t)t * kp + c] = c < k ? C->c[(size_t)c * d + t] : 0.0;
    for (uint32_t c = 0; c < kp; c++)
        bias[c] = c < k ? (cos ? 0.0 : C->cn[c]) : INFINITY;
    double scale = cos ? -1.0 : -2.0;
    double vmin[4];
    for (size_t i = 0; i < n; i += 4) {
        int R = n - i < 4 ? (int)(n - i) : 4;
        const double *xi = x + i * ldx;
        switch (nv) {
        case 1: group_1(xi, ldx, R, panel, d, scale, bias, best + i, vmin); break;
        case 2: group_2(xi, ldx, R, panel, d, scale, bias, best + i, vmin); break;
        case 3: group_3(xi, ldx, R, panel, d, scale, bias, best + i, vmin); break;
        default: group_4(xi, ldx, R, panel, d, scale, bias, best + i, vmin); break;
        }
        for (int r = 0; r < R; r++) {
            double s = sqnorm(xi + (size_t)r * ldx, d);
            xn[i + r] = s;
            double e;
            if (!cos)
                e = s + vmin[r];
            else {
                if (s <= 0) {
                    *bad = i + (size_t)r;
                    return EM_EINVAL;
                }
                e = 1 + vmin[r] / sqrt(s);   /* vmin = -x.c of the best centre */
            }
            dist[i + r] = e > 0 ? e : 0;
        }
    }
    return 0;
}

KM_AVX512 void em__km_fold_fused(double *sums, uint32_t d, const double *x, size_t ldx,
                                size_t n, const uint32_t *best, const double *xn)
{
    __mmask8 tail = (__mmask8)((1u << (d & 7)) - 1);
    for (size_t i = 0; i < n; i++) {
        double *s = sums + (size_t)best[i] * d;
        const double *xi = x + i * ldx;
        __m512d f = _mm512_set1_pd(xn ? 1 / sqrt(xn[i]) : 1.0);
        uint32_t j = 0;
        for (; j + 8 <= d; j += 8)
            _mm512_storeu_pd(s + j, _mm512_fmadd_pd(f, _mm512_loadu_pd(xi + j),
                                                    _mm512_loadu_pd(s + j)));
        if (tail)
            _mm512_mask_storeu_pd(s + j, tail,
                                  _mm512_fmadd_pd(f, _mm512_maskz_loadu_pd(tail, xi + j),
                                                  _mm512_maskz_loadu_pd(tail, s + j)));
    }
}

#else

void em__km_fold_fused(double *sums, uint32_t d, const double *x, size_t ldx, size_t n,
                       const uint32_t *best, const double *xn)
{
    (void)sums, (void)d, (void)x, (void)ldx, (void)n, (void)best, (void)xn;
}

int em__km_assign_fused(const km_centers *C, const double *x, size_t ldx, size_t n,
                        double *panel, uint32_t *best, double *dist, double *xn, size_t *bad)
{
    (void)C, (void)x, (void)ldx, (void)n, (void)panel, (void)best, (void)dist, (void)xn;
    (void)bad;
    return EM_EINVAL;   /* never called: em__km_fused_ok is false */
}

#endif
