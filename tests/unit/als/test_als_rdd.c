/* tests/unit/als/test_als_rdd.c - em_als_train_rdd (blocks built on the executors from a
 * ratings dataset) against em_als_train (blocks built on the driver) on the same ratings:
 * the factors must agree to 1e-9 (they are bit-identical by design: route.c ORDER) for
 * ratings grouped by user, grouped by item and in random order, explicit and implicit, in
 * local[2] and local-cluster[2,1]; and bad ids are errors naming the rating. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/als/als.h"
#include "tests/support/ctx.h"

enum { NU = 300, NI = 120 };

typedef enum order { BY_USER, BY_ITEM, RANDOM } order;

/* A sparse problem (every user and item rated at least once) in the requested order; a few
 * (user, item) pairs appear twice with different ratings, as real files can have. */
static size_t make_ratings(em_rating *r, order o, uint64_t seed)
{
    em_rng g;
    size_t n = 0;
    em_rng_seed(&g, seed);
    for (int u = 0; u < NU; u++)
        for (int i = 0; i < NI; i++)
            if (i == u % NI || em_rng_double(&g) < 0.08) {
                r[n++] = (em_rating){u, i, (float)(1 + (int)em_rng_below(&g, 5))};
                if (em_rng_double(&g) < 0.01)
                    r[n++] = (em_rating){u, i, (float)(1 + (int)em_rng_below(&g, 5))};
            }
    if (o == BY_ITEM) {   /* stable: grouped by item, users ascending within an item */
        em_rating *tmp = malloc(n * sizeof *tmp);
        size_t k = 0;
        for (int i = 0; i < NI; i++)
            for (size_t t = 0; t < n; t++)
                if (r[t].item == i)
                    tmp[k++] = r[t];
        memcpy(r, tmp, n * sizeof *tmp);
        free(tmp);
    } else if (o == RANDOM) {
        for (size_t t = n - 1; t > 0; t--) {
            size_t j = em_rng_below(&g, t + 1);
            em_rating x = r[t];
            r[t] = r[j];
            r[j] = x;
        }
    }
    return n;
}

static em_rdd *ratings_rdd(em_context *sc, const em_rating *r, size_t n, uint32_t nparts)
{
    em_rec *recs = malloc(n * sizeof *recs);
    for (size_t t = 0; t < n; t++)
        recs[t] = (em_rec){.val = em_slice_make(&r[t], sizeof r[t])};
    em_rdd *d = em_parallelize(sc, EM_REC_FIXED, sizeof(em_rating), recs, n, nparts);
    free(recs);
    return d;
}

static void same_rows(const float *a, const float *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) {
            cr_assert(isnan(a[i]) && isnan(b[i]), "%s %zu: %g vs %g", what, i, a[i], b[i]);
            continue;
        }
        cr_assert(fabs((double)a[i] - b[i]) <= 1e-9, "%s %zu: %.9g vs %.9g", what, i, a[i],
                  b[i]);
    }
}

static void compare_paths(const char *master, bool implicit)
{
    static em_rating r[NU * NI * 2];
    em_context *sc = em_test_ctx_new(master);
    for (order o = BY_USER; o <= RANDOM; o++) {
        size_t n = make_ratings(r, o, 17);
        em_als_metrics m0 = {0}, m1 = {0};
        em_als_params p = {.rank = 4, .iterations = 3, .lambda = 0.05, .implicit = implicit,
                           .alpha = 2.0, .seed = 9, .user_blocks = 3, .item_blocks = 2,
                           .train_metrics = &m0};
        em_als_model *a = NULL, *b = NULL;
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_als_train(sc, r, n, NU, NI, &p, &a, &err), 0, "%s", err.msg);
        em_rdd *d = ratings_rdd(sc, r, n, 5);
        p.train_metrics = &m1;
        cr_assert_eq(em_als_train_rdd(sc, d, NU, NI, &p, &b, &err), 0, "%s", err.msg);
        em_rdd_release(d);
        same_rows(a->user_factors, b->user_factors, (size_t)NU * 4, "user factor");
        same_rows(a->item_factors, b->item_factors, (size_t)NI * 4, "item factor");
        if (!implicit) {
            cr_assert_eq(m0.n, m1.n);
            cr_assert(fabs(m0.rmse - m1.rmse) <= 1e-12, "rmse %.17g vs %.17g", m0.rmse,
                      m1.rmse);
        }
        em_als_model_free(a);
        em_als_model_free(b);
    }
    em_context_free(sc);
}

Test(als_rdd, same_factors_as_driver_path_local, .timeout = 240)
{
    compare_paths("local[2]", false);
    compare_paths("local[2]", true);
}

Test(als_rdd, same_factors_as_driver_path_cluster, .timeout = 300)
{
    compare_paths("local-cluster[2,1]", false);
}

Test(als_rdd, bad_ids_fail_naming_the_rating, .timeout = 120)
{
    em_rating r[3] = {{0, 0, 1}, {1, 7, 2}, {1, 1, 3}};
    em_context *sc = em_test_ctx_new("local[2]");
    em_rdd *d = ratings_rdd(sc, r, 3, 2);
    em_als_params p = {.rank = 2, .iterations = 1, .lambda = 0.1};
    em_als_model *m = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_als_train_rdd(sc, d, 2, 2, &p, &m, &err), EM_EINVAL, "%d %s", err.code,
                 err.msg);
    cr_assert(strstr(err.msg, "(1, 7, 2) out of range"), "%s", err.msg);
    cr_assert_null(m);
    em_rdd_release(d);
    /* a dataset of the wrong width is refused by the route task */
    em_rec bad = {.val = em_slice_make("12345678", 8)};
    d = em_parallelize(sc, EM_REC_FIXED, 8, &bad, 1, 1);
    cr_assert_lt(em_als_train_rdd(sc, d, 2, 2, &p, &m, &err), 0);
    cr_assert(strstr(err.msg, "FIXED 12-byte"), "%s", err.msg);
    em_rdd_release(d);
    em_context_free(sc);
}

/* Trains r with p on the driver's path and on the executors' (a dataset of 3 partitions)
 * and checks the factors are the same. */
static void same_model_both_paths(em_context *sc, const em_rating *r, size_t n, int32_t nu,
                                  int32_t ni, const em_als_params *p)
{
    em_als_model *a = NULL, *b = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_als_train(sc, r, n, nu, ni, p, &a, &err), 0, "%s", err.msg);
    em_rdd *d = ratings_rdd(sc, r, n, 3);
    cr_assert_eq(em_als_train_rdd(sc, d, nu, ni, p, &b, &err), 0, "%s", err.msg);
    em_rdd_release(d);
    same_rows(a->user_factors, b->user_factors, (size_t)nu * (size_t)p->rank, "user factor");
    same_rows(a->item_factors, b->item_factors, (size_t)ni * (size_t)p->rank, "item factor");
    em_als_model_free(a);
    em_als_model_free(b);
}

/* Over 256 user blocks: the route's block table of that side is 16 bits wide (route.c:
 * 8 bits up to 256 blocks); the factors are still the driver path's. */
Test(als_rdd, more_than_256_blocks_same_factors, .timeout = 300)
{
    static em_rating r[NU * NI * 2];
    em_context *sc = em_test_ctx_new("local[2]");
    size_t n = make_ratings(r, RANDOM, 23);
    em_als_params p = {.rank = 2, .iterations = 1, .lambda = 0.05, .seed = 4,
                       .user_blocks = 300, .item_blocks = 2};
    same_model_both_paths(sc, r, n, NU, NI, &p);
    em_context_free(sc);
}

/* One block per side holding more ratings than one gather chunk (route.c GATHER_CHUNK,
 * about 350k ratings since the chunks are 4 MiB): the executors' build concatenates
 * chunks, and a routed value (byte planes) is split across two of them; the factors must
 * still be the driver path's. */
Test(als_rdd, block_larger_than_a_gather_chunk, .timeout = 600)
{
    enum { BU = 36000, BI = 200, PER = 120 };   /* 4.32M ratings: a dozen chunks */
    size_t n = (size_t)BU * PER;
    em_rating *r = malloc(n * sizeof *r);
    cr_assert(r);
    em_rng g;
    em_rng_seed(&g, 5);
    for (size_t t = 0; t < n; t++) {
        int32_t u = (int32_t)(t / PER), k = (int32_t)(t % PER);
        r[t] = (em_rating){u, (int32_t)((u * 7 + k * 13 + (k > 100 ? 1 : 0)) % BI),
                           (float)(1 + (int)em_rng_below(&g, 5))};
    }
    em_context *sc = em_test_ctx_new("local[2]");
    em_als_params p = {.rank = 2, .iterations = 1, .lambda = 0.05, .seed = 3,
                       .user_blocks = 1, .item_blocks = 1};
    same_model_both_paths(sc, r, n, BU, BI, &p);
    em_context_free(sc);
    free(r);
}
