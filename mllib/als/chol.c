/* mllib/als/chol.c - the Cholesky solve of the ALS solve step (em__als_chol_solve, see
 * kernel.h): blocked kernels for 24 < k <= 64, the rest to mllib/linalg. */
#include "mllib/als/kernel.h"

#include <math.h>

#include "mllib/linalg/linalg.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define ALS_AVX512 __attribute__((target("avx512f")))

enum { CHOL_MAX = 64 };   /* the AVX-512 path's largest k (37 KiB of thread-local buffers) */

/* The blocked Cholesky of em__als_chol_solve for 24 < k <= 64 (see kernel.h). The system
 * is copied into u, row-major with ld = round_up(k + 1, 8) and b as column k: factoring the
 * augmented rows [A b] as A = U^T U leaves y = U^-T b in column k (forward substitution
 * for free). Rows go eight at a time (a block P of nr <= 8 rows, only the last one short):
 *  1. the 8 x 8 diagonal block in eight registers, unblocked (the latency-bound part: per
 *     row one lane extract, a division and a multiply on the chain; the square root and
 *     the row's scaling are off it);
 *  2. the rest of P's rows, one 8-column vector at a time (independent of each other):
 *     U_PP^T X = A_P by forward elimination with the stored diagonal block;
 *  3. the trailing rows: A_ii.. -= U_P,i^T U_P,i.., a rank-8 update per 8-column vector
 *     with U_P's vector in eight registers and one load and one store of A per eight FMAs
 *     (the unblocked version loaded and stored A's vector once per FMA).
 * Lanes left of a row's diagonal are never read as data, so the updates write garbage
 * (finite: products of finite values) there. Then U x = y backwards, block by block: the
 * part of row j right of its block as dot products (eight accumulators per block), the
 * block itself by scalar back substitution. Full-width stores only (AMD cores do not
 * forward a masked store to a later load). */
enum { CHOL_LD = CHOL_MAX + 8 };

ALS_AVX512 static int chol_blocked(int k, const double *a, double *b, em_err *err)
{
    static _Thread_local double u[CHOL_MAX * CHOL_LD] __attribute__((aligned(64)));
    static _Thread_local double dinv[CHOL_MAX], x[CHOL_LD] __attribute__((aligned(64)));
    const int ld = (k + 8) & ~7, nb = (k + 7) >> 3;
    for (int i = 0; i < nb * 8; i++) {   /* rows k..round_up(k, 8) - 1: zero */
        double *ui = u + (size_t)i * ld;
        for (int c = i & ~7; c < ld; c += 8) {
            __m512d v = _mm512_setzero_pd();
            if (i < k) {
                int lo = i > c ? i - c : 0, hi = k - c < 8 ? k - c : 8;
                if (hi > lo)
                    v = _mm512_maskz_loadu_pd((__mmask8)(((1u << hi) - 1) & (0xffu << lo)),
                                              a + (size_t)i * k + c);
                if (k >= c && k < c + 8)
                    v = _mm512_mask_mov_pd(v, (__mmask8)(1u << (k - c)), _mm512_set1_pd(b[i]));
            }
            _mm512_store_pd(ui + c, v);
        }
    }
    for (int p = 0; p < nb; p++) {
        const int r0 = 8 * p, nr = k - r0 < 8 ? k - r0 : 8;
        double *up = u + (size_t)r0 * ld;
        __m512d d[8];
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)
            d[r] = _mm512_load_pd(up + (size_t)r * ld + r0);
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
            if (j >= nr)
                break;
            double s = _mm512_cvtsd_f64(_mm512_permutexvar_pd(_mm512_set1_epi64(j), d[j]));
            if (!(s > 0.0))
                return em_err_set(err, EM_EINVAL, "cholesky: leading minor %d of %d x %d is "
                                  "not positive definite", r0 + j + 1, k, k);
            /* row i -= (w_ji / s) w_j, w_j the unscaled row: u_ji u_j without waiting
             * for the square root */
            __m512d f = _mm512_mul_pd(d[j], _mm512_set1_pd(1.0 / s));
            double sq = sqrt(s), inv = 1.0 / sq;
            dinv[r0 + j] = inv;
            _Pragma("GCC unroll 8") for (int i = j + 1; i < 8; i++)
                if (i < nr)
                    d[i] = _mm512_fnmadd_pd(_mm512_permutexvar_pd(_mm512_set1_epi64(i), f), d[j],
                                            d[i]);
            d[j] = _mm512_mask_mov_pd(_mm512_mul_pd(d[j], _mm512_set1_pd(inv)),
                                      (__mmask8)(1u << j), _mm512_set1_pd(sq));
        }
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)
            _mm512_store_pd(up + (size_t)r * ld + r0, d[r]);
        if (nr < 8)   /* the last block: nothing right of it but column k, done above */
            continue;
        for (int c = r0 + 8; c < ld; c += 8) {
            __m512d v[8];
            _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)
                v[r] = _mm512_load_pd(up + (size_t)r * ld + c);
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
                v[j] = _mm512_mul_pd(v[j], _mm512_set1_pd(dinv[r0 + j]));
                _Pragma("GCC unroll 8") for (int i = j + 1; i < 8; i++)
                    v[i] = _mm512_fnmadd_pd(_mm512_set1_pd(up[(size_t)j * ld + r0 + i]), v[j],
                                            v[i]);
            }
            _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)
                _mm512_store_pd(up + (size_t)r * ld + c, v[r]);
        }
        for (int c = r0 + 8; c < ld; c += 8) {
            __m512d v[8];
            _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)
                v[r] = _mm512_load_pd(up + (size_t)r * ld + c);
            int iend = c + 8 < k ? c + 8 : k;
            for (int i = r0 + 8; i < iend; i++) {
                double *ui = u + (size_t)i * ld + c;
                __m512d acc = _mm512_load_pd(ui);
                _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)
                    acc = _mm512_fnmadd_pd(_mm512_set1_pd(up[(size_t)r * ld + i]), v[r], acc);
                _mm512_store_pd(ui, acc);
            }
        }
    }
    for (int l = 0; l < ld; l++)
        x[l] = 0.0;
    for (int p = nb - 1; p >= 0; p--) {
        const int r0 = 8 * p, nr = k - r0 < 8 ? k - r0 : 8;
        const double *up = u + (size_t)r0 * ld;
        double rhs[8];
        __m512d acc[8];
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)
            acc[r] = _mm512_setzero_pd();
        for (int c = r0 + 8; c < ld; c += 8) {
            __m512d xv = _mm512_load_pd(x + c);
            _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)
                acc[r] = _mm512_fmadd_pd(_mm512_load_pd(up + (size_t)r * ld + c), xv, acc[r]);
        }
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)
            rhs[r] = r < nr ? up[(size_t)r * ld + k] - _mm512_reduce_add_pd(acc[r]) : 0.0;
        for (int j = nr - 1; j >= 0; j--) {
            const double *uj = up + (size_t)j * ld + r0;
            double t = rhs[j];
            for (int l = nr - 1; l > j; l--)
                t -= uj[l] * x[r0 + l];
            x[r0 + j] = t * dinv[r0 + j];
        }
    }
    for (int j = 0; j < k; j++)
        b[j] = x[j];
    return 0;
}
#endif

int em__als_chol_solve(int k, double *a, double *b, em_err *err)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (k > 24 && k <= CHOL_MAX && em_la_simd() >= 3)
        return chol_blocked(k, a, b, err);
#endif
    return k <= 24 ? em_la_chol_solve_small(k, a, b, err) : em_la_chol_solve(k, a, b, err);
}
