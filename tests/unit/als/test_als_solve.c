/* tests/unit/als/test_als_solve.c - the solve step of blocked ALS (mllib/als/solve.c) at
 * the ranks where its kernels change: rank 10 (the fused AVX-512 rows kernel, k + 1 <= 16,
 * inlined Cholesky), 17 (the gathered double tile and the AVX-512/AVX2 tile kernel) and 50
 * (tile kernel, LAPACK Cholesky for k > 24), explicit and implicit, against a dense
 * reference written here: one and two half-iterations from the same initial item factors.
 * Item 0 is rated by every user (more ratings than one gathered tile of 256 rows, so an
 * entity spans several tiles and prefetch rounds), the other items by a few. 600 users,
 * and 9000 / 40000 at ranks 50 / 10: more than one read chunk of the item side.
 * Tolerance: the engine sums the normal equations in another order and stores factors as
 * float; the reference is double throughout: 2e-5 relative to the factor scale (1 + |x|).
 * The kernels alone: test_als_gram.c (Gram sums) and test_als_kernel.c (Cholesky). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/als/als.h"
#include "tests/support/ctx.h"

enum { NI = 40, KMAX = 50, NUMAX = 40000 };
static int n_users = 600;   /* users of the current check (at most NUMAX) */

static size_t make_ratings(em_rating *r, uint64_t seed, bool implicit)
{
    em_rng g;
    size_t n = 0;
    em_rng_seed(&g, seed);
    for (int u = 0; u < n_users; u++)
        for (int i = 0; i < NI; i++)
            if (i == 0 || i == 1 + u % (NI - 1) || em_rng_double(&g) < 0.15) {
                float v = (float)(1 + (int)em_rng_below(&g, 5));
                if (implicit && em_rng_double(&g) < 0.2)
                    v = 0;   /* an observed non-positive: weight alpha |r| = 0 */
                r[n++] = (em_rating){u, i, v};
            }
    return n;
}

/* Dense Cholesky solve of the k x k SPD a (full, row-major) in place: b becomes x. */
static void chol(int k, double *a, double *b)
{
    for (int j = 0; j < k; j++) {
        double s = a[j * k + j];
        for (int p = 0; p < j; p++)
            s -= a[j * k + p] * a[j * k + p];
        cr_assert(s > 0, "reference system not SPD at %d", j);
        a[j * k + j] = sqrt(s);
        for (int i = j + 1; i < k; i++) {
            double t = a[i * k + j];
            for (int p = 0; p < j; p++)
                t -= a[i * k + p] * a[j * k + p];
            a[i * k + j] = t / a[j * k + j];
        }
    }
    for (int i = 0; i < k; i++) {
        for (int p = 0; p < i; p++)
            b[i] -= a[i * k + p] * b[p];
        b[i] /= a[i * k + i];
    }
    for (int i = k; i-- > 0;) {
        for (int p = i + 1; p < k; p++)
            b[i] -= a[p * k + i] * b[p];
        b[i] /= a[i * k + i];
    }
}

/* One half-step: every row of `side` from the other side's factors y (rank k). */
static void ref_half(const em_rating *r, size_t n, int side, int k, const float *y, float *x,
                     const em_als_params *p)
{
    int nrows = side == 0 ? n_users : NI, ny = side == 0 ? NI : n_users;
    static double yty[KMAX * KMAX], a[KMAX * KMAX];
    double b[KMAX];
    memset(yty, 0, sizeof yty);
    for (int j = 0; j < ny; j++)
        for (int q = 0; q < k; q++)
            for (int s = 0; s < k; s++)
                yty[q * k + s] += (double)y[j * k + q] * y[j * k + s];
    /* the ratings of each row, in input order: rows[first[row] .. first[row + 1]) */
    size_t *first = calloc((size_t)nrows + 1, sizeof *first), *fill = malloc(nrows * sizeof *fill);
    size_t *rows = malloc(n * sizeof *rows + 1);
    for (size_t t = 0; t < n; t++)
        first[(side == 0 ? r[t].user : r[t].item) + 1]++;
    for (int row = 0; row < nrows; row++)
        first[row + 1] += first[row];
    memcpy(fill, first, nrows * sizeof *fill);
    for (size_t t = 0; t < n; t++)
        rows[fill[side == 0 ? r[t].user : r[t].item]++] = t;
    for (int row = 0; row < nrows; row++) {
        int cnt = 0;
        for (int q = 0; q < k * k; q++)
            a[q] = p->implicit ? yty[q] : 0.0;
        memset(b, 0, sizeof b);
        for (size_t i = first[row]; i < first[row + 1]; i++) {
            size_t t = rows[i];
            int other = side == 0 ? r[t].item : r[t].user;
            const float *v = y + (size_t)other * k;
            double w = 1, c = r[t].rating;
            if (p->implicit) {
                w = p->alpha * fabs(r[t].rating);
                c = r[t].rating > 0 ? 1 + w : 0;
            }
            for (int q = 0; q < k; q++) {
                for (int s = 0; s < k; s++)
                    a[q * k + s] += w * v[q] * v[s];
                b[q] += c * v[q];
            }
            cnt++;
        }
        for (int q = 0; q < k; q++)
            a[q * k + q] += p->lambda * cnt;
        chol(k, a, b);
        for (int q = 0; q < k; q++)
            x[(size_t)row * k + q] = (float)b[q];
    }
    free(first);
    free(fill);
    free(rows);
}

static void check(int k, bool implicit, const char *master, int nu)
{
    cr_assert_leq(nu, NUMAX);
    n_users = nu;
    static em_rating r[NUMAX * NI];
    static float y0[NI * KMAX], x1[NUMAX * KMAX], y1[NI * KMAX];
    size_t n = make_ratings(r, 7 + (uint64_t)k, implicit);
    em_context *sc = em_test_ctx_new(master);
    em_als_params p = {.rank = k, .lambda = 0.1, .implicit = implicit, .alpha = 3.0,
                       .seed = 9, .user_blocks = 2, .item_blocks = 3};
    for (int i = 0; i < NI; i++)
        em_als_init_factor(9, 1, i, k, false, y0 + (size_t)i * k);
    ref_half(r, n, 0, k, y0, x1, &p);
    ref_half(r, n, 1, k, x1, y1, &p);
    for (int halves = 1; halves <= 2; halves++) {
        em_als_model *m = NULL;
        em_err err = EM_ERR_INIT;
        p.half_iterations = halves;
        cr_assert_eq(em_als_train(sc, r, n, n_users, NI, &p, &m, &err), 0, "%s", err.msg);
        for (size_t u = 0; u < (size_t)n_users * k; u++)
            cr_assert_float_eq(m->user_factors[u], x1[u], 2e-5 * (1 + fabsf(x1[u])),
                               "rank %d: user factor %zu: %.9g vs %.9g", k, u,
                               m->user_factors[u], x1[u]);
        const float *want = halves == 1 ? y0 : y1;
        for (size_t i = 0; i < (size_t)NI * k; i++)
            cr_assert_float_eq(m->item_factors[i], want[i], 2e-5 * (1 + fabsf(want[i])),
                               "rank %d: item factor %zu (halves %d): %.9g vs %.9g", k, i,
                               halves, m->item_factors[i], want[i]);
        em_als_model_free(m);
    }
    em_context_free(sc);
}

Test(als_solve, rank10_explicit_matches_dense_reference, .timeout = 120)
{
    check(10, false, "local[2]", 600);
}

Test(als_solve, rank10_implicit_matches_dense_reference, .timeout = 120)
{
    check(10, true, "local[2]", 600);
}

Test(als_solve, rank17_explicit_matches_dense_reference, .timeout = 120)
{
    check(17, false, "local[2]", 600);
}

Test(als_solve, rank50_explicit_matches_dense_reference, .timeout = 180)
{
    check(50, false, "local[2]", 600);
}

Test(als_solve, rank50_implicit_matches_dense_reference, .timeout = 180)
{
    check(50, true, "local[2]", 600);
}

/* More users than one read chunk of the item side's solve (als_int.h: 8192 rows at rank
 * 50, 32768 at rank 10), so the item blocks are solved chunk by chunk (solve.c
 * solve_chunked), with some items' sums spread over every chunk. */
Test(als_solve, rank50_chunked_item_side_matches_dense_reference, .timeout = 300)
{
    check(50, false, "local[2]", 9000);
}

Test(als_solve, rank10_chunked_implicit_matches_dense_reference, .timeout = 300)
{
    check(10, true, "local[2]", 40000);
}
