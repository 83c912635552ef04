/* tests/unit/als/test_als_kernel.c - the solve's Cholesky (em__als_chol_solve,
 * mllib/als/chol.c: with AVX-512 in 8-row blocks for 24 < k <= 64, with AVX2 only in 4-row
 * blocks for 9 < k <= 64, inlined below, dposv above; the tests run whichever this CPU
 * takes) at every k from 1 to 80 against LAPACK dposv (em_la_chol_solve); in the blocked
 * ranges: the last block of 1..8 (1..4) rows, b in the last block's diagonal vector
 * (k % 8 != 0, k % 4 != 0) or in a vector of its own.
 * Normal-equation-like systems (condition below 1e3): solutions equal to 1e-12 relative
 * (max-norm). Only the upper triangle may be read (the lower one holds NaN). An indefinite
 * leading minor is named as dposv names it, wherever it falls in the blocks. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/als/kernel.h"
#include "mllib/linalg/linalg.h"

enum { KMAX = 80 };

/* G^T G of 3k random rows plus 0.1 n I, and a random b (full, both triangles). */
static void spd(int k, uint64_t seed, double *a, double *b)
{
    em_rng g;
    em_rng_seed(&g, seed);
    int n = 3 * k;
    memset(a, 0, (size_t)k * k * sizeof *a);
    for (int r = 0; r < n; r++) {
        double v[KMAX];
        for (int q = 0; q < k; q++)
            v[q] = em_rng_double(&g) - 0.5;
        for (int q = 0; q < k; q++)
            for (int s = 0; s < k; s++)
                a[q * k + s] += v[q] * v[s];
    }
    for (int q = 0; q < k; q++) {
        a[q * k + q] += 0.1 * n;
        b[q] = 4 * em_rng_double(&g) - 2;
    }
}

Test(als_kernel, cholesky_every_k_1_to_80_matches_dposv)
{
    for (int k = 1; k <= KMAX; k++)
        for (uint64_t seed = 1; seed <= 3; seed++) {
            double a[KMAX * KMAX], a2[KMAX * KMAX], b[KMAX], x[KMAX], want[KMAX];
            spd(k, seed * 1000 + (uint64_t)k, a, b);
            memcpy(a2, a, sizeof a);
            memcpy(x, b, sizeof b);
            memcpy(want, b, sizeof b);
            for (int i = 0; i < k; i++)
                for (int j = 0; j < i; j++)
                    a[i * k + j] = NAN;
            em_err err = EM_ERR_INIT;
            cr_assert_eq(em__als_chol_solve(k, a, x, &err), 0, "k %d: %s", k, err.msg);
            cr_assert_eq(em_la_chol_solve(k, a2, want, &err), 0, "k %d: %s", k, err.msg);
            double scale = 0, diff = 0;
            for (int q = 0; q < k; q++) {
                scale = fmax(scale, fabs(want[q]));
                diff = fmax(diff, fabs(x[q] - want[q]));
            }
            cr_assert(diff <= 1e-12 * scale, "k %d seed %d: max |x - x_dposv| %g of %g", k,
                      (int)seed, diff, scale);
        }
}

Test(als_kernel, cholesky_names_the_indefinite_minor_in_every_block_position)
{
    /* every k % 4 in the AVX2 range, k % 8 in 0-3 and 7 in the AVX-512 one; m - 1 takes
     * every residue mod 8 */
    static const int ks[] = {3, 9, 10, 11, 24, 25, 27, 32, 33, 50, 57, 63, 64, 65};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++)
        for (int m = 1; m <= ks[t]; m += 1 + m / 4) {   /* minor m: first, mid-block, last */
            int k = ks[t];
            double a[KMAX * KMAX], b[KMAX], a2[KMAX * KMAX], b2[KMAX];
            spd(k, 7, a, b);
            a[(m - 1) * k + (m - 1)] = -1.0;
            memcpy(a2, a, sizeof a);
            memcpy(b2, b, sizeof b);
            em_err err = EM_ERR_INIT, e2 = EM_ERR_INIT;
            cr_assert_eq(em__als_chol_solve(k, a, b, &err), EM_EINVAL, "k %d minor %d", k, m);
            cr_assert_eq(em_la_chol_solve(k, a2, b2, &e2), EM_EINVAL, "k %d minor %d", k, m);
            char want[64];
            snprintf(want, sizeof want, "leading minor %d of %d x %d", m, k, k);
            cr_assert(strstr(err.msg, want), "k %d: %s", k, err.msg);
            cr_assert(strstr(e2.msg, want), "dposv, k %d: %s", k, e2.msg);
        }
}

Test(als_kernel, cholesky_rejects_nan)
{
    for (int k = 10; k <= 64; k += 9) {
        double a[KMAX * KMAX], b[KMAX];
        spd(k, 9, a, b);
        a[(k / 2) * k + k / 2] = NAN;
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em__als_chol_solve(k, a, b, &err), EM_EINVAL, "k %d", k);
    }
}
