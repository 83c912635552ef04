/* mllib/als/chol.c - the Cholesky solve of the ALS solve step (em__als_chol_solve, see
 * kernel.h): blocked kernels for AVX-512 (24 < k <= 64) and AVX2 (9 < k <= 64), the rest
 * to mllib/linalg. */
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

#define ALS_AVX2 __attribute__((target("avx2,fma")))

/* The AVX2 + FMA version (chol_avx2, CPUs without AVX-512) for CHOL_AVX2_MIN < k <= 64,
 * built for 16 ymm registers of four doubles on a core (Zen 1) that issues one 256-bit FMA
 * and one 256-bit load per cycle but needs two cycles per broadcast from memory (measured
 * here). The layout of chol_blocked with ld = round_up(k + 1, 4), b as column k; rows go
 * four at a time (a block P, only the last one short):
 *  1. the 4 x 4 diagonal block in four registers; on the chain per row a lane broadcast, a
 *     vector division (1 / w_jj in every lane) and one FMA (row i -= (w_ji w_j) / w_jj, the
 *     product taken while the division runs); square root and scaling off it;
 *  2. the rest of P's rows, one 4-column vector at a time (forward elimination);
 *  3. the trailing rows: rank-4 updates two rows at a time, their eight broadcasts hoisted
 *     out of the loop over column vectors and P's four vectors held in registers: six
 *     loads per eight FMAs. The flat alternative, one 4 x 4 tile per step (16 broadcasts
 *     per 16 FMAs), took 9.8 us per solve at rank 50 against 7.4 for this loop (both before
 *     the copy, the back substitution and the buffers' addresses were reworked).
 *     Updating the next block's rows first and factoring that block before the other
 *     rows' update (lookahead, to run step 1 beside step 3's FMAs) was slower: 6.1
 *     against 5.7 us at rank 50 (the update's loops split in two).
 * Then U x = y backwards, block by block: dot products right of the block (walked right to
 * left, so the x just found comes last), the block itself with x in registers and each
 * row's 1 / u_jj applied off the chain. Lanes left of the diagonal and the padding rows (the
 * last block's, updated with the others) hold finite garbage that is never read as data;
 * the padding columns stay zero. Rank 50 on this machine, CPU time
 * (bench/als_kernel.c MODE 2): 5.7-5.8 us per solve against 16.1-16.5 for dposv (rank 30:
 * 1.9-2.0 against 6.3-6.4; rank 64: 11.1-11.4 against 22.6-23.3). It also beats
 * em_la_chol_solve_small from k = 10 (0.37-0.38 against 0.53 us; equal at 9): the k <= 9
 * systems stay there. */
enum { CHOL_AVX2_MIN = 9 };

/* lane masks: ch_below(n) loads lanes < n set, ch_from(n) lanes >= n (0 <= n <= 4) */
static const int64_t chol_lanes[12] = {-1, -1, -1, -1, 0, 0, 0, 0, -1, -1, -1, -1};

/* v in a register: GCC would otherwise fold each use of a loaded vector into its FMA as a
 * memory operand, one load per use, and this core loads one ymm per cycle */
#define CH_REG(v) __asm__("" : "+x"(v))

/* lane l of v in all four lanes (l a literal: the -O0 build needs the immediate) */
#define CH_BC(v, l) _mm256_permute4x64_pd((v), (l) * 0x55)

ALS_AVX2 static inline __attribute__((always_inline)) __m256i ch_below(int n)
{
    return _mm256_loadu_si256((const __m256i *)(chol_lanes + 4 - n));
}

ALS_AVX2 static inline __attribute__((always_inline)) __m256i ch_from(int n)
{
    return _mm256_loadu_si256((const __m256i *)(chol_lanes + 8 - n));
}

/* Rows [ia, ib) (whole row tiles of 4, padding rows included) -= U_P^T U_P (rank 4), P the
 * four rows at up, two rows at a time from their diagonal vector rightwards. */
ALS_AVX2 static inline __attribute__((always_inline)) void
ch_rows(double *u, int ld, const double *up, int ia, int ib)
{
    for (int i = ia; i < ib; i += 2) {
        double *u0 = u + (size_t)i * ld, *u1 = u0 + ld;
        const __m256d a0 = _mm256_set1_pd(up[i]), a1 = _mm256_set1_pd(up[ld + i]),
                      a2 = _mm256_set1_pd(up[2 * ld + i]), a3 = _mm256_set1_pd(up[3 * ld + i]);
        const __m256d b0 = _mm256_set1_pd(up[i + 1]), b1 = _mm256_set1_pd(up[ld + i + 1]),
                      b2 = _mm256_set1_pd(up[2 * ld + i + 1]),
                      b3 = _mm256_set1_pd(up[3 * ld + i + 1]);
        for (int c = i & ~3; c < ld; c += 4) {
            __m256d v0 = _mm256_load_pd(up + c), v1 = _mm256_load_pd(up + ld + c),
                    v2 = _mm256_load_pd(up + 2 * ld + c), v3 = _mm256_load_pd(up + 3 * ld + c);
            CH_REG(v0);
            CH_REG(v1);
            CH_REG(v2);
            CH_REG(v3);
            __m256d x0 = _mm256_load_pd(u0 + c), x1 = _mm256_load_pd(u1 + c);
            x0 = _mm256_fnmadd_pd(a0, v0, x0);
            x1 = _mm256_fnmadd_pd(b0, v0, x1);
            x0 = _mm256_fnmadd_pd(a1, v1, x0);
            x1 = _mm256_fnmadd_pd(b1, v1, x1);
            x0 = _mm256_fnmadd_pd(a2, v2, x0);
            x1 = _mm256_fnmadd_pd(b2, v2, x1);
            x0 = _mm256_fnmadd_pd(a3, v3, x0);
            x1 = _mm256_fnmadd_pd(b3, v3, x1);
            _mm256_store_pd(u0 + c, x0);
            _mm256_store_pd(u1 + c, x1);
        }
    }
}

/* The 4 x 4 diagonal block at row r0 (nr <= 4 rows), unblocked in four registers. */
ALS_AVX2 static inline __attribute__((always_inline)) int
ch_diag(int k, int r0, int nr, double *up, int ld, double *dinv, em_err *err)
{
    __m256d d0 = _mm256_load_pd(up + r0), d1 = _mm256_load_pd(up + ld + r0),
            d2 = _mm256_load_pd(up + 2 * ld + r0), d3 = _mm256_load_pd(up + 3 * ld + r0);
#define CH_UPD(I, J) d##I = _mm256_fnmadd_pd(_mm256_mul_pd(CH_BC(d##J, I), d##J), rs, d##I)
#define CH_STEP(J, ...)                                                                   \
    if (nr > (J)) {                                                                       \
        const __m256d sv = CH_BC(d##J, J);                                                \
        const double s = _mm256_cvtsd_f64(sv);                                            \
        if (!(s > 0.0))                                                                   \
            return em_err_set(err, EM_EINVAL, "cholesky: leading minor %d of %d x %d is " \
                              "not positive definite", r0 + (J) + 1, k, k);               \
        const __m256d rs = _mm256_div_pd(_mm256_set1_pd(1.0), sv);                       \
        __VA_ARGS__;                                                                      \
        const double sq = sqrt(s), inv = 1.0 / sq;                                        \
        dinv[r0 + (J)] = inv;                                                             \
        d##J = _mm256_blend_pd(_mm256_mul_pd(d##J, _mm256_set1_pd(inv)),                  \
                               _mm256_set1_pd(sq), 1 << (J));                             \
    }
    CH_STEP(0, CH_UPD(1, 0); CH_UPD(2, 0); CH_UPD(3, 0))
    CH_STEP(1, CH_UPD(2, 1); CH_UPD(3, 1))
    CH_STEP(2, CH_UPD(3, 2))
    CH_STEP(3, (void)rs)
#undef CH_STEP
#undef CH_UPD
    _mm256_store_pd(up + r0, d0);
    _mm256_store_pd(up + ld + r0, d1);
    _mm256_store_pd(up + 2 * ld + r0, d2);
    _mm256_store_pd(up + 3 * ld + r0, d3);
    return 0;
}

/* The rest of block r0's four rows: U_PP^T X = A_P, one 4-column vector at a time. */
ALS_AVX2 static inline __attribute__((always_inline)) void
ch_panel(int r0, double *up, int ld, const double *dinv)
{
    const double *d = up + r0;
    const __m256d i0 = _mm256_set1_pd(dinv[r0]), i1 = _mm256_set1_pd(dinv[r0 + 1]),
                  i2 = _mm256_set1_pd(dinv[r0 + 2]), i3 = _mm256_set1_pd(dinv[r0 + 3]);
    const __m256d u01 = _mm256_set1_pd(d[1]), u02 = _mm256_set1_pd(d[2]),
                  u03 = _mm256_set1_pd(d[3]), u12 = _mm256_set1_pd(d[ld + 2]),
                  u13 = _mm256_set1_pd(d[ld + 3]), u23 = _mm256_set1_pd(d[2 * ld + 3]);
    for (int c = r0 + 4; c < ld; c += 4) {
        __m256d v0 = _mm256_mul_pd(_mm256_load_pd(up + c), i0);
        __m256d v1 = _mm256_fnmadd_pd(u01, v0, _mm256_load_pd(up + ld + c));
        __m256d v2 = _mm256_fnmadd_pd(u02, v0, _mm256_load_pd(up + 2 * ld + c));
        __m256d v3 = _mm256_fnmadd_pd(u03, v0, _mm256_load_pd(up + 3 * ld + c));
        v1 = _mm256_mul_pd(v1, i1);
        v2 = _mm256_fnmadd_pd(u12, v1, v2);
        v3 = _mm256_fnmadd_pd(u13, v1, v3);
        v2 = _mm256_mul_pd(v2, i2);
        v3 = _mm256_mul_pd(_mm256_fnmadd_pd(u23, v2, v3), i3);
        _mm256_store_pd(up + c, v0);
        _mm256_store_pd(up + ld + c, v1);
        _mm256_store_pd(up + 2 * ld + c, v2);
        _mm256_store_pd(up + 3 * ld + c, v3);
    }
}

ALS_AVX2 static int chol_avx2_in(int k, const double *a, double *b, em_err *err, double *u,
                                 double *dinv, double *x)
{
    const int ld = (k + 4) & ~3, nb = (k + 3) >> 2;
    const int t = ld - 4;   /* the last vector: columns k & ~3.., b at lane k - t */
    for (int i = 0; i < k; i++) {
        double *ui = u + (size_t)i * ld;
        const double *ai = a + (size_t)i * k;
        const int c0 = i & ~3;
        if (c0 < t) {   /* full vectors: the first without the lanes left of the diagonal */
            _mm256_store_pd(ui + c0, _mm256_and_pd(_mm256_loadu_pd(ai + c0),
                                                   _mm256_castsi256_pd(ch_from(i - c0))));
            for (int c = c0 + 4; c < t; c += 4)
                _mm256_store_pd(ui + c, _mm256_loadu_pd(ai + c));
        }
        const int lo = i > t ? i - t : 0;
        _mm256_store_pd(ui + t, _mm256_maskload_pd(ai + t, _mm256_andnot_si256(ch_below(lo),
                                                                              ch_below(k - t))));
        ui[k] = b[i];
    }
    for (int i = k; i < nb * 4; i++)   /* padding rows (k % 4 != 0: only the last vector) */
        _mm256_store_pd(u + (size_t)i * ld + t, _mm256_setzero_pd());
    int rc = ch_diag(k, 0, k < 4 ? k : 4, u, ld, dinv, err);
    if (rc < 0)
        return rc;
    if (k >= 4)
        ch_panel(0, u, ld, dinv);
    for (int p = 0; p + 1 < nb; p++) {
        const int r0 = 4 * p, r1 = r0 + 4, nr1 = k - r1 < 4 ? k - r1 : 4;
        double *up = u + (size_t)r0 * ld, *up1 = up + (size_t)4 * ld;
        ch_rows(u, ld, up, r1, 4 * nb);
        if ((rc = ch_diag(k, r1, nr1, up1, ld, dinv, err)) < 0)
            return rc;
        if (nr1 == 4)
            ch_panel(r1, up1, ld, dinv);
    }
    for (int l = 0; l < ld; l++)
        x[l] = 0.0;
    for (int p = nb - 1; p >= 0; p--) {
        const int r0 = 4 * p, nr = k - r0 < 4 ? k - r0 : 4;
        const double *up = u + (size_t)r0 * ld;
        double rhs[4] __attribute__((aligned(32)));
        __m256d acc0 = _mm256_setzero_pd(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        for (int c = ld - 4; c >= r0 + 4; c -= 4) {
            const __m256d xv = _mm256_load_pd(x + c);
            acc0 = _mm256_fmadd_pd(_mm256_load_pd(up + c), xv, acc0);
            acc1 = _mm256_fmadd_pd(_mm256_load_pd(up + ld + c), xv, acc1);
            acc2 = _mm256_fmadd_pd(_mm256_load_pd(up + 2 * ld + c), xv, acc2);
            acc3 = _mm256_fmadd_pd(_mm256_load_pd(up + 3 * ld + c), xv, acc3);
        }
        const __m256d h01 = _mm256_hadd_pd(acc0, acc1), h23 = _mm256_hadd_pd(acc2, acc3);
        _mm256_store_pd(rhs, _mm256_add_pd(_mm256_permute2f128_pd(h01, h23, 0x20),
                                           _mm256_permute2f128_pd(h01, h23, 0x31)));
        if (nr < 4) {
            for (int j = nr - 1; j >= 0; j--) {
                const double *uj = up + (size_t)j * ld + r0;
                double y = up[(size_t)j * ld + k] - rhs[j];
                for (int l = nr - 1; l > j; l--)
                    y -= uj[l] * x[r0 + l];
                x[r0 + j] = y * dinv[r0 + j];
            }
            continue;
        }
        /* scaled by 1 / u_jj off the chain: one FMA per row on it, x in registers */
        const double *d = up + r0, *i = dinv + r0;
        const double x3 = (d[3 * ld + k - r0] - rhs[3]) * i[3];
        const double x2 = (d[2 * ld + k - r0] - rhs[2]) * i[2] - d[2 * ld + 3] * i[2] * x3;
        const double x1 = (d[ld + k - r0] - rhs[1]) * i[1] - d[ld + 3] * i[1] * x3 -
                          d[ld + 2] * i[1] * x2;
        const double x0 = (d[k - r0] - rhs[0]) * i[0] - d[3] * i[0] * x3 - d[2] * i[0] * x2 -
                          d[1] * i[0] * x1;
        x[r0] = x0;
        x[r0 + 1] = x1;
        x[r0 + 2] = x2;
        x[r0 + 3] = x3;
    }
    for (int j = 0; j < k; j++)
        b[j] = x[j];
    return 0;
}

/* The thread-local buffers' addresses taken once, out of GCC's sight: inside the kernel
 * each access cost a call of __tls_get_addr (the library is position-independent) and the
 * calls made GCC keep ymm values on the stack (rank 50: 6.6 us per solve, 6.1 without). */
ALS_AVX2 static int chol_avx2(int k, const double *a, double *b, em_err *err)
{
    static _Thread_local double u[CHOL_MAX * CHOL_LD] __attribute__((aligned(32)));
    static _Thread_local double dinv[CHOL_MAX], x[CHOL_LD] __attribute__((aligned(32)));
    double *pu = u, *pd = dinv, *px = x;
    __asm__("" : "+r"(pu), "+r"(pd), "+r"(px));   /* opaque: no clone with them inside */
    return chol_avx2_in(k, a, b, err, pu, pd, px);
}
#endif

int em__als_chol_solve(int k, double *a, double *b, em_err *err)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (k > 24 && k <= CHOL_MAX && em_la_simd() >= 3)
        return chol_blocked(k, a, b, err);
    if (k > CHOL_AVX2_MIN && k <= CHOL_MAX && em_la_simd() == 2)
        return chol_avx2(k, a, b, err);
#endif
    return k <= 24 ? em_la_chol_solve_small(k, a, b, err) : em_la_chol_solve(k, a, b, err);
}
