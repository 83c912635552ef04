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
#endif

int em__als_chol_solve(int k, double *a, double *b, em_err *err)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (k > 24 && k <= CHOL_MAX && em_la_simd() >= 3)
        return chol_avx512(k, a, b, err);
#endif
    return k <= 24 ? em_la_chol_solve_small(k, a, b, err) : em_la_chol_solve(k, a, b, err);
}
