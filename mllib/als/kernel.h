/* mllib/als/kernel.h - hand-written kernels of the ALS solve step (kernel.c). */
#ifndef EMBER_MLLIB_ALS_KERNEL_H
#define EMBER_MLLIB_ALS_KERNEL_H

#include "engine/base/base.h"

/* Solves A x = b for the k x k SPD matrix a (row-major, UPPER triangle read; its contents
 * are unspecified afterwards); b is overwritten with x. The contract of em_la_chol_solve
 * (mllib/linalg/linalg.h), error message included. In chol.c:
 * For 24 < k <= 64 on CPUs with AVX-512F: a blocked Cholesky (8-row blocks: the diagonal
 * block in registers, the panel by forward elimination, the trailing rows by rank-8
 * updates) on a padded copy that carries b as an extra column, so the forward solve comes
 * with the factorization (rank 50: 2.0-2.8 us per solve against 5.0-5.3 us for the
 * unblocked AVX-512 version it replaced and about 7 us for LAPACK dposv; CPU time on the
 * loaded machine, bench/als_kernel.c MODE 2). Otherwise em_la_chol_solve_small (k <= 24,
 * already faster than both) or dposv.
 * For 9 < k <= 64 on CPUs with AVX2 + FMA but no AVX-512: the same in 4-row blocks with
 * rank-4 updates (rank 50 on a Zen 1 core: 5.7-5.8 us per solve against 16.1-16.5 for
 * dposv; rank 10: 0.37-0.38 against 0.53 for em_la_chol_solve_small, which keeps k <= 9).
 * Results equal dposv's to rounding (the same operations in another order). */
int em__als_chol_solve(int k, double *a, double *b, em_err *err);

/* ext (k + 1) x (k + 1), row-major upper triangle) += the upper triangle of T^T T, T the
 * n x (k + 1) tile whose row s is [scale[s] * rows[s][0..k-1], last[s]] (scale NULL: 1):
 * em_la_syrk_rows_f32's contract. Each rows[s] is read as exactly k floats (no padding
 * assumed: a row may be the last one of a buffer).
 * Kernels with the ratings in the lanes of each FMA (kernel.c gram_t, gram_a): for
 * 8 <= k <= 13 on CPUs with AVX-512F, eight ratings per FMA in double (8.25 FMAs per
 * rating at rank 10 instead of 14); for 1 <= k <= 15 on CPUs with AVX2 + FMA and no
 * AVX-512, eight per FMA in float within a tile of 256 ratings, then in double (8.25 FMAs
 * per rating at rank 10 instead of 24; 8.9 against 22.3 ns per rating on L1 rows on a Zen
 * 1 class machine); for 16 <= k <= 64 and n >= 24 on the same CPUs, the same in passes of
 * two rows by up to six columns with R = k + 1 a run-time value (kernel.c gram_b: 165.75
 * FMAs of eight floats per rating at rank 50 instead of 364 of four doubles; 96-107
 * against 168-197 ns per rating on L1 rows). Their sums equal em_la_syrk_rows_f32's to
 * rounding (AVX2: within 38 float roundings, 2.3e-6, of the sum of the products'
 * magnitudes: a lane adds at most 32 products; derivation in tests/unit/als/
 * test_als_gram.c), not bit for bit, and are the same for the same arguments. Otherwise
 * em_la_syrk_rows_f32 (ld and tile: its scratch tile), bit for bit. Any thread
 * (thread-local scratch). */
void em__als_gram_rows(int k, int n, const float *const *rows, const double *scale,
                       const double *last, int ld, double *tile, double *ext);

/* Asks for every cache line of the factor row of b bytes at p, each once. The solve's
 * gather (solve.c) runs a tile (256 ratings) ahead of the kernel, so the random reads of
 * factor rows (the item side reads 15-30 MB of user factors per block at 100M ratings)
 * overlap instead of each stalling the kernel. A rank-50 row spans 4-5 lines: prefetching
 * only the first left the others as misses (item side at 480k users: rank 10 16 -> 10 ns
 * per rating, rank 50 140 -> 77 ns, CPU time). A padded row (rank <= 16) sits in one
 * line: asking for it twice (its first and last byte, as before) cost 0.03-0.1 s per
 * iteration at scale 1, rank 10, where the gather waits on the prefetches themselves. */
static inline void em__als_prefetch_row(const float *p, size_t b)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)63, end = (uintptr_t)p + b;
    for (; a < end; a += 64)
        __builtin_prefetch((const void *)a, 0, 3);
}

#endif /* EMBER_MLLIB_ALS_KERNEL_H */
