/* tests/unit/tuning/test_tuning_cv.c - cross-validated searches and the round machinery:
 * seeded, disjoint folds (the hash and the engine's fold views), a k-fold LR search that
 * picks the known-best regularization in local[2] and local-cluster[2,1], an ALS search
 * that picks the known-best rank and lambda, every trial's result reaching the live table
 * once, and a successive-halving round that ends early by cancelling its undecided
 * trials, keeping every kept result exactly once. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "mllib/tuning/tuning.h"
#include "tests/support/ctx.h"

Test(tuning_cv, fold_hash_seeded_and_balanced)
{
    enum { N = 20000, K = 5 };
    uint32_t cnt[K] = {0}, same = 0;
    for (uint64_t i = 0; i < N; i++) {
        uint32_t f = em_tune_fold_of(7, i, K);
        cr_assert_lt(f, K);
        cr_assert_eq(f, em_tune_fold_of(7, i, K));
        cnt[f]++;
        same += f == em_tune_fold_of(8, i, K);
    }
    for (int f = 0; f < K; f++)
        cr_assert(cnt[f] > N / K * 0.9 && cnt[f] < N / K * 1.1, "fold %d: %u", f, cnt[f]);
    /* another seed is another split (about 1/K of the rows agree by chance) */
    cr_assert(same < N / K * 1.2, "%u rows in the same fold under seeds 7 and 8", same);
}

/* ---------------------------------------------------------------- LR data */

enum { LN = 120, LD = 30 };

/* 120 rows, 30 features of which 2 carry the label: with 80 training rows a fold is
 * separable, so no regularization overfits (held-out log-loss large), heavy regularization
 * predicts 1/2 (log-loss ln 2), a moderate one does best. */
static em_ml_data lr_data(em_context *sc, double *rows)
{
    em_rng g;
    em_rng_seed(&g, 11);
    em_rec *recs = em_xcalloc(LN, sizeof *recs);
    for (size_t i = 0; i < LN; i++) {
        double *r = rows + i * (LD + 1);
        for (int j = 0; j < LD; j++)
            r[1 + j] = em_rng_gaussian(&g);
        double z = 1.5 * r[1] - 1.5 * r[2] + 0.7 * em_rng_gaussian(&g);
        r[0] = z > 0;
        recs[i].val = em_slice_make(r, 8 * (LD + 1));
    }
    em_ml_data d = {.rows = em_parallelize(sc, EM_REC_FIXED, 8 * (LD + 1), recs, LN, 2),
                    .labeled = true, .dim = LD, .nrows = LN};
    em_free(recs);
    return d;
}

typedef struct seen {
    uint32_t units[64][EM_TUNE_MAX_FOLDS];
    uint32_t n;
} seen;

static void count_unit(void *ud, const em_tune_trial *t, const em_tune_unit *u)
{
    seen *s = ud;
    cr_assert_eq(u->trial, t->index);
    cr_assert_lt(u->trial, 64);
    s->units[u->trial][u->fold]++;
    s->n++;
}

static void lr_search(const char *master, em_tune_result *r, seen *s)
{
    em_context *sc = em_test_ctx_new(master);
    double *rows = em_xcalloc(LN * (LD + 1), 8);
    em_ml_data d = lr_data(sc, rows);
    em_tune_space sp;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_tune_space_parse_est(EM_TUNE_EST_LR, "reg=0,0.1,30", &sp, &err), 0, "%s",
                 err.msg);
    em_tune_opts o = {.seed = 3, .on_unit = count_unit, .ud = s};
    em_linear_params base = {.max_iter = 200};
    cr_assert_eq(em_tune_lr_cv(sc, &sp, &o, &base, EM_TUNE_LOGLOSS, 3, &d, r, &err), 0, "%s",
                 err.msg);
    em_tune_space_destroy(&sp);
    em_ml_data_release(&d);
    em_free(rows);
    em_context_free(sc);
}

Test(tuning_cv, lr_kfold_picks_known_best_reg, .timeout = 300)
{
    em_tune_result a, b;
    seen sa = {0}, sb = {0};
    lr_search("local[2]", &a, &sa);
    cr_assert_eq(a.ntrials, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(a.trials[i].status, EM_TUNE_OK);
        cr_assert_eq(a.trials[i].nfolds, 3);
        double m = 0;
        for (int f = 0; f < 3; f++) {
            m += a.trials[i].fold_metric[f];
            cr_assert_eq(sa.units[i][f], 1, "unit %zu/%d seen %u times", i, f, sa.units[i][f]);
        }
        cr_assert_float_eq(a.trials[i].metric, m / 3, 1e-12);
    }
    cr_assert_eq(sa.n, 9);
    cr_assert_str_eq(a.trials[a.best].desc, "reg=0.1", "best %s (%g %g %g)",
                     a.trials[a.best].desc, a.trials[0].metric, a.trials[1].metric,
                     a.trials[2].metric);
    /* heavy regularization: about ln 2; none: worse than the best */
    cr_assert(fabs(a.trials[2].metric - log(2.0)) < 0.1, "%g", a.trials[2].metric);
    cr_assert(a.trials[0].metric > a.trials[1].metric);
    lr_search("local-cluster[2,1]", &b, &sb);
    cr_assert_eq(b.ntrials, 3);
    cr_assert_eq(b.best, a.best);
    for (size_t i = 0; i < 3; i++)
        for (int f = 0; f < 3; f++)
            cr_assert_float_eq(a.trials[i].fold_metric[f], b.trials[i].fold_metric[f], 1e-9,
                               "trial %zu fold %d: %.17g vs %.17g", i, f,
                               a.trials[i].fold_metric[f], b.trials[i].fold_metric[f]);
    em_tune_result_destroy(&a);
    em_tune_result_destroy(&b);
}

/* The engine's fold views: over K folds every row is in exactly one fold's part and in the
 * other K-1 training parts. */
static void fold_views(const char *master)
{
    em_context *sc = em_test_ctx_new(master);
    cr_assert_eq(em_tune_register(), 0);
    double *rows = em_xcalloc(LN * (LD + 1), 8);
    em_ml_data d = lr_data(sc, rows);
    enum { K = 4 };
    uint32_t in[LN] = {0}, out[LN] = {0};
    for (uint32_t f = 0; f < K; f++)
        for (int want = 0; want < 2; want++) {
            uint8_t b[17];
            em_store_le64(b, 9);
            em_store_le32(b + 8, K);
            em_store_le32(b + 12, f);
            b[16] = (uint8_t)want;
            em_rdd *v = em_rdd_map_partitions_fixed(d.rows, "ml.tune.fold",
                                                    em_slice_make(b, 17), true, 8 * (LD + 1));
            em_records rs = {0};
            em_err err = EM_ERR_INIT;
            cr_assert_eq(em_rdd_collect(v, &rs, &err), 0, "%s", err.msg);
            for (size_t k = 0; k < rs.n; k++) {
                size_t i = 0;
                while (i < LN && memcmp(rows + i * (LD + 1), rs.recs[k].val.p, 8 * (LD + 1)))
                    i++;
                cr_assert_lt(i, LN);
                (want ? in : out)[i]++;
            }
            em_records_destroy(&rs);
            em_rdd_release(v);
        }
    for (size_t i = 0; i < LN; i++) {
        cr_assert_eq(in[i], 1, "row %zu in %u folds", i, in[i]);
        cr_assert_eq(out[i], K - 1, "row %zu in %u training parts", i, out[i]);
    }
    em_ml_data_release(&d);
    em_free(rows);
    em_context_free(sc);
}

Test(tuning_cv, fold_views_disjoint_local, .timeout = 120)
{
    fold_views("local[2]");
}

Test(tuning_cv, fold_views_disjoint_cluster, .timeout = 180)
{
    fold_views("local-cluster[2,1]");
}

/* ---------------------------------------------------------------- ALS */

Test(tuning_cv, als_kfold_picks_known_best, .timeout = 300)
{
    /* 80 users x 60 items of a rank-3 matrix, 40% observed, noise sd 0.1: rank 3 with a
     * small lambda fits; lambda 5 shrinks everything; rank 1 cannot. */
    enum { U = 80, I = 60, R = 3 };
    em_rng g;
    em_rng_seed(&g, 21);
    float uf[U * R], itf[I * R];
    for (int i = 0; i < U * R; i++)
        uf[i] = (float)em_rng_gaussian(&g);
    for (int i = 0; i < I * R; i++)
        itf[i] = (float)em_rng_gaussian(&g);
    em_rating *rt = em_xcalloc(U * I, sizeof *rt);
    size_t n = 0;
    for (int u = 0; u < U; u++)
        for (int i = 0; i < I; i++) {
            if (em_rng_double(&g) > 0.4)
                continue;
            float s = 0;
            for (int k = 0; k < R; k++)
                s += uf[u * R + k] * itf[i * R + k];
            rt[n++] = (em_rating){u, i, s + 0.1f * (float)em_rng_gaussian(&g)};
        }
    em_context *sc = em_test_ctx_new("local[2]");
    em_tune_space sp;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_tune_space_parse_est(EM_TUNE_EST_ALS, "rank=1,3;lambda=5,0.01", &sp, &err),
                 0, "%s", err.msg);
    seen s = {0};
    em_tune_opts o = {.seed = 5, .on_unit = count_unit, .ud = &s};
    em_als_params base = {.iterations = 8};
    em_tune_result r;
    cr_assert_eq(em_tune_als_cv(sc, &sp, &o, &base, 3, rt, n, U, I, &r, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(r.ntrials, 4);
    cr_assert_eq(s.n, 12);
    cr_assert_str_eq(r.trials[r.best].desc, "rank=3;lambda=0.01", "best %s",
                     r.trials[r.best].desc);
    cr_assert(r.trials[r.best].metric < 0.3, "rmse %g", r.trials[r.best].metric);
    em_tune_result_destroy(&r);
    em_tune_space_destroy(&sp);
    em_free(rt);
    em_context_free(sc);
}

/* ---------------------------------------------------------------- early decisions */

enum { EN = 1500, ENV = 300, ED = 8 };
static float EX[EN * ED], EY[EN], EXV[ENV * ED], EYV[ENV];

/* Separable with a wide margin: any network reaches accuracy 1 within an epoch. */
static void easy(void)
{
    em_rng g;
    em_rng_seed(&g, 2);
    for (size_t i = 0; i < EN + ENV; i++) {
        float *x = i < EN ? EX + i * ED : EXV + (i - EN) * ED;
        for (int j = 0; j < ED; j++)
            x[j] = (float)em_rng_gaussian(&g) * 0.3f;
        bool pos = em_rng_double(&g) < 0.5;
        x[0] = pos ? 3.0f : -3.0f;
        (i < EN ? EY : EYV)[i < EN ? i : i - EN] = pos;
    }
}

Test(tuning_cv, halving_round_decided_early_cancels_the_rest, .timeout = 300)
{
    easy();
    em_context *sc = em_test_ctx_new("local[2]");
    em_tune_space sp;
    em_err err = EM_ERR_INIT;
    /* 9 configurations: the first three are tiny, the other six wide (slow); eta 3 keeps
     * three. Once trials 0, 1, 2 reach accuracy 1, no other can be kept (ties go to the
     * lower index): the round is decided and the wide trials are cancelled. */
    cr_assert_eq(em_tune_space_parse("hidden=2,3,4,2048-2048,2049-2048,2050-2048,2051-2048,"
                                     "2052-2048,2053-2048",
                                     &sp, &err), 0, "%s", err.msg);
    seen s = {0};
    em_tune_opts o = {.method = EM_TUNE_HALVING, .seed = 1, .on_unit = count_unit, .ud = &s,
                      .base = {.epochs = 3, .batch = 16, .lr = 0.05}};
    em_tune_result r;
    cr_assert_eq(em_tune_run(sc, &sp, &o, EX, EY, EN, ED, EXV, EYV, ENV, &r, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(r.rounds, 3);
    size_t ok0 = 0, cancelled0 = 0;
    for (size_t i = 0; i < 9; i++) {
        const em_tune_trial *t = &r.trials[i];
        cr_assert_eq(t->round, 0);
        if (t->index < 3) {
            cr_assert_eq(t->status, EM_TUNE_OK, "trial %u", t->index);
            cr_assert_eq(t->metric, 1.0, "trial %u: %g", t->index, t->metric);
        }
        ok0 += t->status == EM_TUNE_OK;
        cancelled0 += t->status == EM_TUNE_CANCELLED;
    }
    /* at most the two slots' worth of wide trials got started, none finished */
    cr_assert_eq(ok0, 3, "%zu trials of round 0 finished", ok0);
    cr_assert_eq(cancelled0, 6);
    cr_assert_geq(r.units_cancelled, 6);
    /* rounds 1 and 2: the kept trials, each exactly once; trial 0 decides round 1 as
     * soon as it reaches accuracy 1 (the others cannot beat it), and wins */
    cr_assert_eq(r.ntrials, 9 + 3 + 1);
    bool kept[3] = {false, false, false};
    for (size_t i = 9; i < 12; i++) {
        cr_assert_eq(r.trials[i].round, 1);
        cr_assert_lt(r.trials[i].index, 3);
        cr_assert(!kept[r.trials[i].index], "trial %u kept twice", r.trials[i].index);
        kept[r.trials[i].index] = true;
    }
    cr_assert_eq(r.trials[9].index, 0);
    cr_assert_eq(r.trials[9].status, EM_TUNE_OK);
    cr_assert_eq(r.trials[12].index, 0);
    cr_assert_eq(r.trials[12].round, 2);
    cr_assert_eq(r.trials[12].status, EM_TUNE_OK);
    cr_assert_str_eq(r.trials[r.best].desc, "hidden=2");
    /* the live table saw each finished unit once: trial 0 in all three rounds */
    cr_assert_eq(s.units[0][0], 3);
    for (int i = 3; i < 9; i++)
        cr_assert_leq(s.units[i][0], 1, "trial %d reported %u times", i, s.units[i][0]);
    em_tune_result_destroy(&r);
    em_tune_space_destroy(&sp);
    em_context_free(sc);
}
