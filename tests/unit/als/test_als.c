/* tests/unit/als/test_als.c - blocked ALS on the engine against a plain dense reference
 * written here (same initial factors), objective decrease, non-negativity, model metrics,
 * recommendations, save/load and cold start.
 * Tolerance: factors are stored as float, so 1e-6 relative to their scale (1e-5 absolute on
 * factors of order 1). */
#define _XOPEN_SOURCE 700   /* nftw */
#include <criterion/criterion.h>
#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/als/als.h"
#include "mllib/als/als_int.h"
#include "mllib/linalg/linalg.h"
#include "tests/support/ctx.h"

enum { NU = 40, NI = 25, K = 3 };

/* A random sparse problem in which every user and item has at least one rating. */
static size_t make_ratings(em_rating *r, uint64_t seed, bool with_zero)
{
    em_rng g;
    size_t n = 0;
    em_rng_seed(&g, seed);
    for (int u = 0; u < NU; u++)
        for (int i = 0; i < NI; i++)
            if (i == u % NI || em_rng_double(&g) < 0.25)
                r[n++] = (em_rating){u, i, (float)(with_zero && em_rng_double(&g) < 0.2
                                                       ? 0.0
                                                       : 1 + (int)em_rng_below(&g, 5))};
    return n;
}

/* Dense reference for one half-step: solves every row of `side` from the other side's
 * factors `y` exactly as the paper writes it, with naive Gaussian elimination. */
static void ref_half(const em_rating *r, size_t n, int side, const float *y, float *x,
                     const em_als_params *p)
{
    int nrows = side == 0 ? NU : NI, ny = side == 0 ? NI : NU;
    double yty[K * K] = {0};
    for (int j = 0; j < ny; j++)
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++)
                yty[a * K + b] += (double)y[j * K + a] * y[j * K + b];
    for (int row = 0; row < nrows; row++) {
        double A[K][K + 1] = {{0}};
        int cnt = 0;
        for (int a = 0; a < K && p->implicit; a++)
            for (int b = 0; b < K; b++)
                A[a][b] = yty[a * K + b];
        for (size_t t = 0; t < n; t++) {
            int me = side == 0 ? r[t].user : r[t].item, other = side == 0 ? r[t].item : r[t].user;
            if (me != row)
                continue;
            const float *v = y + other * K;
            double w = 1, c = r[t].rating;
            if (p->implicit) {
                w = p->alpha * fabs(r[t].rating);
                c = r[t].rating > 0 ? 1 + w : 0;
            }
            for (int a = 0; a < K; a++) {
                for (int b = 0; b < K; b++)
                    A[a][b] += w * v[a] * v[b];
                A[a][K] += c * v[a];
            }
            cnt++;
        }
        for (int a = 0; a < K; a++)
            A[a][a] += p->lambda * cnt;
        for (int c = 0; c < K; c++)   /* Gauss-Jordan, SPD so no pivoting needed */
            for (int rr = 0; rr < K; rr++) {
                if (rr == c)
                    continue;
                double f = A[rr][c] / A[c][c];
                for (int q = c; q <= K; q++)
                    A[rr][q] -= f * A[c][q];
            }
        for (int a = 0; a < K; a++)
            x[row * K + a] = (float)(A[a][K] / A[a][a]);
    }
}

static em_als_model *train(em_context *sc, const em_rating *r, size_t n, em_als_params *p)
{
    em_als_model *m = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_als_train(sc, r, n, NU, NI, p, &m, &err), 0, "%s", err.msg);
    return m;
}

static void check_half_steps(bool implicit, uint32_t blocks)
{
    static em_rating r[NU * NI];
    size_t n = make_ratings(r, 11, implicit);
    em_context *sc = em_test_ctx_new("local[2]");
    em_als_params p = {.rank = K, .lambda = 0.1, .implicit = implicit, .alpha = 2.0,
                       .seed = 5, .user_blocks = blocks, .item_blocks = blocks + 1};
    float y0[NI * K], x1[NU * K], y1[NI * K];
    for (int i = 0; i < NI; i++)
        em_als_init_factor(5, 1, i, K, false, y0 + i * K);
    ref_half(r, n, 0, y0, x1, &p);
    ref_half(r, n, 1, x1, y1, &p);
    for (int halves = 1; halves <= 2; halves++) {
        p.half_iterations = halves;
        em_als_model *m = train(sc, r, n, &p);
        for (int u = 0; u < NU * K; u++)
            cr_assert_float_eq(m->user_factors[u], x1[u], 1e-5 * (1 + fabsf(x1[u])),
                               "user factor %d: %g vs %g", u, m->user_factors[u], x1[u]);
        const float *want = halves == 1 ? y0 : y1;
        for (int i = 0; i < NI * K; i++)
            cr_assert_float_eq(m->item_factors[i], want[i], 1e-5 * (1 + fabsf(want[i])),
                               "item factor %d (halves %d)", i, halves);
        em_als_model_free(m);
    }
    em_context_free(sc);
}

Test(als, explicit_half_iterations_match_dense_reference, .timeout = 120)
{
    check_half_steps(false, 2);
}

Test(als, implicit_half_iterations_match_dense_reference, .timeout = 120)
{
    check_half_steps(true, 3);
}

Test(als, single_block_matches_too, .timeout = 120)
{
    check_half_steps(false, 1);
}

static void count_done(void *ud)
{
    (*(int *)ud)++;
}

/* The training metrics computed on the executors equal em_als_evaluate on the driver's
 * ratings, and ratings_done is called exactly once. */
Test(als, train_metrics_match_driver_evaluation, .timeout = 120)
{
    static em_rating r[NU * NI];
    size_t n = make_ratings(r, 13, false);
    em_context *sc = em_test_ctx_new("local[2]");
    em_als_metrics tm = {0}, want;
    int done = 0;
    em_als_params p = {.rank = K, .lambda = 0.1, .seed = 3, .iterations = 2,
                       .user_blocks = 3, .item_blocks = 2, .train_metrics = &tm,
                       .ratings_done = count_done, .progress_ud = &done};
    em_als_model *m = train(sc, r, n, &p);
    em_als_evaluate(m, r, n, EM_COLD_DROP, &want);
    cr_assert_eq(done, 1);
    cr_assert_eq(tm.n, (uint64_t)n);
    cr_assert_eq(tm.cold, 0u);
    cr_assert_float_eq(tm.rmse, want.rmse, 1e-6 * want.rmse, "%g vs %g", tm.rmse, want.rmse);
    cr_assert_float_eq(tm.mae, want.mae, 1e-6 * want.mae, "%g vs %g", tm.mae, want.mae);
    em_als_model_free(m);
    em_context_free(sc);
}

static void check_decrease(bool implicit, bool nonneg)
{
    static em_rating r[NU * NI];
    size_t n = make_ratings(r, 12, implicit);
    em_context *sc = em_test_ctx_new("local[2]");
    em_als_params p = {.rank = K, .lambda = 0.05, .implicit = implicit, .alpha = 1.5,
                       .nonnegative = nonneg, .seed = 9, .checkpoint_interval = 2};
    double prev = INFINITY;
    for (int it = 1; it <= 5; it++) {
        p.iterations = it;
        em_als_model *m = train(sc, r, n, &p);
        double obj = em_als_objective(m, r, n, &p);
        cr_assert(obj <= prev * (1 + 1e-6), "iteration %d: objective %g after %g", it, obj,
                  prev);
        prev = obj;
        for (int q = 0; nonneg && q < NU * K; q++)
            cr_assert_geq(m->user_factors[q], 0.0f);
        em_als_model_free(m);
    }
    em_context_free(sc);
}

Test(als, explicit_objective_decreases, .timeout = 120)
{
    check_decrease(false, false);
}

Test(als, implicit_objective_decreases, .timeout = 120)
{
    check_decrease(true, false);
}

Test(als, nonnegative_objective_decreases_and_factors_nonnegative, .timeout = 120)
{
    check_decrease(false, true);
}

/* ---------------------------------------------------------------- model (no engine) */

static em_als_model *random_model(int32_t nu, int32_t ni, int k, uint64_t seed)
{
    em_als_model *m = em_als_model_new(k, nu, ni);
    em_rng g;
    em_rng_seed(&g, seed);
    for (size_t i = 0; i < (size_t)nu * k; i++)
        m->user_factors[i] = (float)em_rng_gaussian(&g);
    for (size_t i = 0; i < (size_t)ni * k; i++)
        m->item_factors[i] = (float)em_rng_gaussian(&g);
    return m;
}

Test(model, cold_start_nan_and_drop)
{
    em_als_model *m = random_model(3, 3, 2, 1);
    for (int a = 0; a < 2; a++)
        m->user_factors[2 * 2 + a] = NAN;   /* user 2 is cold */
    em_rating t[3] = {{0, 0, 1}, {2, 1, 2}, {1, 2, 3}};
    em_als_metrics a, b;
    em_als_evaluate(m, t, 3, EM_COLD_NAN, &a);
    em_als_evaluate(m, t, 3, EM_COLD_DROP, &b);
    cr_assert(isnan(a.rmse));
    cr_assert_eq(b.n, 2);
    cr_assert_eq(b.cold, 1);
    double e0 = 1 - em_als_predict(m, 0, 0), e2 = 3 - em_als_predict(m, 1, 2);
    cr_assert_float_eq(b.rmse, sqrt((e0 * e0 + e2 * e2) / 2), 1e-6);
    float out[3];
    uint8_t keep[3];
    size_t no;
    em_als_predict_pairs(m, t, 3, EM_COLD_DROP, out, &no, keep);
    cr_assert_eq(no, 2);
    cr_assert(keep[0] && !keep[1] && keep[2]);
    cr_assert(isnan(em_als_predict(m, 5, 0)), "out of range is cold");
    cr_assert_eq(em_als_recommend_items(m, 2, 3, NULL, 0, (int32_t[3]){0}, (float[3]){0}), 0);
    em_als_model_free(m);
}

Test(model, recommendations_match_brute_force)
{
    enum { U = 37, I = 300, KK = 4, TOP = 7 };
    em_als_model *m = random_model(U, I, KK, 2);
    static int32_t all_ids[U * TOP];
    static float all_sc[U * TOP];
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_als_recommend_all(m, TOP, all_ids, all_sc, &err), 0);
    for (int u = 0; u < U; u++) {
        int32_t ids[TOP], ex[2] = {3, 10};
        float sc[TOP];
        cr_assert_eq(em_als_recommend_items(m, u, TOP, NULL, 0, ids, sc), TOP);
        float prev = INFINITY;
        for (int t = 0; t < TOP; t++) {
            int better = 0;
            for (int i = 0; i < I; i++)
                better += em_als_predict(m, u, i) > sc[t];
            cr_assert_eq(better, t, "user %d rank %d", u, t);
            cr_assert(sc[t] <= prev);
            prev = sc[t];
            cr_assert_eq(all_ids[u * TOP + t], ids[t]);
            cr_assert_float_eq(all_sc[u * TOP + t], sc[t], 1e-4);
        }
        cr_assert_eq(em_als_recommend_items(m, u, TOP, ex, 2, ids, sc), TOP);
        for (int t = 0; t < TOP; t++)
            cr_assert(ids[t] != 3 && ids[t] != 10);
    }
    int32_t us[3];
    float uss[3];
    cr_assert_eq(em_als_recommend_users(m, 5, 3, us, uss), 3);
    for (int u = 0; u < U; u++)
        cr_assert(em_als_predict(m, u, 5) <= uss[0]);
    em_als_model_free(m);
}

Test(model, ranking_metrics_perfect_and_empty)
{
    /* Item scores equal to the item index for every user: the top-1 is the largest item. */
    em_als_model *m = em_als_model_new(1, 2, 4);
    for (int u = 0; u < 2; u++)
        m->user_factors[u] = 1;
    for (int i = 0; i < 4; i++)
        m->item_factors[i] = (float)i;
    em_rating train[1] = {{0, 3, 1}}, test[2] = {{0, 2, 1}, {1, 0, 1}};
    em_rank_metrics rk;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_als_ranking_metrics(m, train, 1, test, 2, 1, &rk, &err), 0);
    cr_assert_eq(rk.users, 2);
    cr_assert_float_eq(rk.precision_at_k, 0.5, 1e-12);  /* user 0 hit (3 excluded), user 1 not */
    cr_assert_float_eq(rk.map, 0.5, 1e-12);
    cr_assert_float_eq(rk.ndcg_at_k, 0.5, 1e-12);
    em_als_model_free(m);
}

Test(model, save_load_round_trip_and_corruption)
{
    char dir[] = "/tmp/em_als_modelXXXXXX";
    cr_assert(mkdtemp(dir));
    char *md = em_xasprintf("%s/m", dir);
    em_als_model *m = random_model(5, 4, 3, 3), *l = NULL;
    m->user_factors[3] = NAN;
    m->implicit = true;
    em_idmap *u = em_idmap_new(), *i = em_idmap_new(), *lu = NULL, *li = NULL;
    const char *un[5] = {"a", "b", "17", "c", "d"};
    int32_t idx;
    em_err err = EM_ERR_INIT;
    for (int q = 0; q < 5; q++)
        em_idmap_intern(u, un[q], strlen(un[q]), &idx, &err);
    for (int q = 0; q < 4; q++)
        em_idmap_intern(i, (char[]){(char)('w' + q)}, 1, &idx, &err);
    cr_assert_eq(em_als_model_save(m, md, u, i, &err), 0, "%s", err.msg);
    cr_assert_eq(em_als_model_save(m, md, u, i, &err), EM_EINVAL, "existing dir refused");
    cr_assert_eq(em_als_model_load(md, &l, &lu, &li, &err), 0, "%s", err.msg);
    cr_assert(l->rank == 3 && l->n_users == 5 && l->n_items == 4 && l->implicit);
    cr_assert(isnan(l->user_factors[3]));
    cr_assert_eq(memcmp(l->item_factors, m->item_factors, 4 * 3 * 4), 0);
    cr_assert_eq(memcmp(l->user_factors + 6, m->user_factors + 6, 9 * 4), 0);
    char buf[24];
    cr_assert_str_eq(em_idmap_name(lu, 2, buf), "17");
    cr_assert_eq(em_idmap_find(li, "y", 1), 2);
    /* Truncate a factor file: the load names it. */
    char *uf = em_xasprintf("%s/user_factors.bin", md);
    cr_assert_eq(truncate(uf, 10), 0);
    em_als_model *bad = NULL;
    cr_assert_eq(em_als_model_load(md, &bad, NULL, NULL, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "user_factors.bin"), "%s", err.msg);
    cr_assert_null(bad);
    const char *meta = "{\"class\":\"ember.als\",\"version\":1,\"rank\":0,\"n_users\":1,"
                       "\"n_items\":1}";
    cr_assert_eq(em_als_model_decode("x", (const uint8_t *)meta, strlen(meta), NULL, 0, NULL,
                                     0, &bad, &err), EM_ECORRUPT);
    em_als_model_free(m);
    em_als_model_free(l);
    em_idmap_free(u);
    em_idmap_free(i);
    em_idmap_free(lu);
    em_idmap_free(li);
    em_rm_rf(dir, &err);
    em_free(md);
    em_free(uf);
}

Test(als, bad_parameters_and_ids_are_errors, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_rating r[2] = {{0, 0, 1}, {1, 5, 2}};
    em_als_params p = {.rank = 2, .iterations = 1, .lambda = 0.1};
    em_als_model *m = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_als_train(sc, r, 2, 2, 3, &p, &m, &err), EM_EINVAL, "item 5 of 3");
    cr_assert(strstr(err.msg, "out of range"), "%s", err.msg);
    p.rank = 100000;
    cr_assert_eq(em_als_train(sc, r, 2, 2, 6, &p, &m, &err), EM_EINVAL);
    cr_assert_null(m);
    em_context_free(sc);
}

/* ---------------------------------------------------------------- shuffle files
 * Each half-iteration makes one shuffle. Training releases every intermediate dataset
 * (em_rdd_release), so a checkpoint every 2 iterations keeps the shuffle files of at most
 * a few iterations on disk during a long run, and none are left when training returns. */
static const char *shuffle_root;
static int max_files, iterations_seen;

static int count_shuffle_file(const char *path, const struct stat *st, int type,
                              struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    const char *base = strrchr(path, '/');
    if (type == FTW_F && base && strncmp(base + 1, "shuffle_", 8) == 0)
        max_files++;   /* counted into the running total, compared below */
    return 0;
}

static int shuffle_files_now(void)
{
    int before = max_files;
    nftw(shuffle_root, count_shuffle_file, 16, FTW_PHYS);
    int n = max_files - before;
    max_files = before;
    return n;
}

static int peak_files;
static void count_progress(void *ud, int it, double secs)
{
    (void)ud;
    (void)secs;
    iterations_seen = it;
    int n = shuffle_files_now();
    peak_files = n > peak_files ? n : peak_files;
}

static void check_shuffles_released(const char *master)
{
    static em_rating r[NU * NI];
    size_t n = make_ratings(r, 17, false);
    char dir[] = "/tmp/em_als_shufXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    shuffle_root = dir;
    em_conf *c = em_conf_new();
    em_conf_set(c, "ember.master", master);
    em_conf_set(c, "ember.local.dir", dir);
    em_err err = EM_ERR_INIT;
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert(sc, "%s", err.msg);
    /* 2 blocks a side: each shuffle has 2 map outputs of 2 files each */
    em_als_params p = {.rank = K, .lambda = 0.1, .seed = 3, .iterations = 12,
                       .checkpoint_interval = 2, .user_blocks = 2, .item_blocks = 2,
                       .progress = count_progress};
    peak_files = 0;
    iterations_seen = 0;
    em_als_model *m = train(sc, r, n, &p);
    cr_assert_eq(iterations_seen, 12);
    /* Alive at an iteration's end: the two block-key shuffles (the lineage of the block
     * records), the last checkpoint's, and at most 2 iterations of 2 half-iteration
     * shuffles: 7 x 4 files; with slack for the cleaner threads, which delete dead
     * shuffles off the job's path and may lag a few shuffles behind on a busy machine, 48.
     * Without the releases all 27 shuffles of the run (108 files) stay until the context
     * ends. */
    cr_assert(peak_files > 0 && peak_files <= 48, "%s: %d shuffle files at an iteration's end",
              master, peak_files);
    /* executors delete on a message from the driver: allow them a moment */
    int left = shuffle_files_now();
    for (int w = 0; w < 250 && left > 0; w++) {
        usleep(20 * 1000);
        left = shuffle_files_now();
    }
    cr_assert_eq(left, 0, "%s: %d shuffle files left after training", master, left);
    em_als_model_free(m);
    em_context_free(sc);
    rmdir(dir);
}

Test(als, shuffle_files_are_deleted_during_training, .timeout = 120)
{
    check_shuffles_released("local[2]");
    check_shuffles_released("local-cluster[2,1]");
}
