/* tests/unit/tuning/test_tuning.c - hyper-parameter search: space parsing (and its errors),
 * grid order and size, seeded random draws, successive halving's rounds and budgets, and
 * a search run as tasks in local[2] and in local-cluster[2,1] giving the same table (every
 * trial once, the same metrics bit for bit, the best model the best trial's). */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "mllib/tuning/tuning.h"
#include "tests/support/ctx.h"

Test(tuning, space_parse)
{
    em_tune_space s;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_tune_space_parse("hidden=64,128-32;lr=0.1,0.01;act=relu,tanh;batch=32",
                                     &s, &err), 0, "%s", err.msg);
    cr_assert_eq(s.nkeys, 4);
    cr_assert_eq(em_tune_space_size(&s), 8);
    em_tune_space_destroy(&s);
    const char *bad[] = {"", "hidden", "hidden=", "hidden=0-", "hidden=a", "lr=0", "lr=x",
                         "batch=0", "act=softmax", "dropout=1", "lr=0.1;lr=0.2", "foo=1",
                         "optim=rmsprop", "epochs=1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(em_tune_space_parse(bad[i], &s, &err), EM_EINVAL, "'%s' accepted", bad[i]);
        cr_assert(strstr(err.msg, "space"), "%s", err.msg);
    }
}

enum { N = 1200, NV = 300, D = 4 };
static float X[N * D], Y[N], XV[NV * D], YV[NV];

static void data(void)
{
    em_rng g;
    em_rng_seed(&g, 5);
    for (size_t i = 0; i < N + NV; i++) {
        float *x = i < N ? X + i * D : XV + (i - N) * D;
        float s = 0;
        for (int j = 0; j < D; j++)
            s += (x[j] = (float)em_rng_gaussian(&g)) * (j % 2 ? 1.0f : -1.0f);
        (i < N ? Y : YV)[i < N ? i : i - N] = (float)(s > 0) + (float)(x[0] > 1);
    }
}

static void search(const char *master, em_tune_method m, em_tune_result *r)
{
    em_context *sc = em_test_ctx_new(master);
    em_tune_space s;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_tune_space_parse("hidden=8,16;lr=0.01,0.003;act=relu,tanh", &s, &err), 0);
    em_tune_opts o = {.method = m, .seed = 3, .random_trials = 5,
                      .base = {.epochs = 6, .batch = 32}};
    cr_assert_eq(em_tune_run(sc, &s, &o, X, Y, N, D, XV, YV, NV, r, &err), 0, "%s", err.msg);
    em_tune_space_destroy(&s);
    em_context_free(sc);
}

Test(tuning, grid_local_and_cluster_same_table, .timeout = 180)
{
    data();
    em_tune_result a, b;
    search("local[2]", EM_TUNE_GRID, &a);
    cr_assert_eq(a.ntrials, 8);
    cr_assert_eq(a.rounds, 1);
    cr_assert_str_eq(a.trials[0].desc, "hidden=8;lr=0.01;act=relu");
    cr_assert_str_eq(a.trials[7].desc, "hidden=16;lr=0.003;act=tanh");
    search("local-cluster[2,1]", EM_TUNE_GRID, &b);
    cr_assert_eq(b.ntrials, 8);
    for (size_t i = 0; i < 8; i++) {
        cr_assert_eq(a.trials[i].index, i);
        cr_assert_eq(b.trials[i].index, i);
        cr_assert_eq(a.trials[i].metric, b.trials[i].metric, "trial %zu: %g vs %g", i,
                     a.trials[i].metric, b.trials[i].metric);
        cr_assert(a.trials[a.best].metric >= a.trials[i].metric);
    }
    cr_assert_eq(a.best, b.best);
    cr_assert(a.trials[a.best].metric > 0.7, "best %g", a.trials[a.best].metric);
    /* the returned model is the best trial's: it scores the same on the validation set */
    cr_assert_eq(em_mlp_evaluate(b.model, XV, YV, NV, NULL), b.trials[b.best].metric);
    em_tune_result_destroy(&a);
    em_tune_result_destroy(&b);
}

Test(tuning, random_and_halving, .timeout = 180)
{
    data();
    em_tune_result r;
    search("local[2]", EM_TUNE_RANDOM, &r);
    cr_assert_eq(r.ntrials, 5);
    em_tune_result_destroy(&r);
    search("local[2]", EM_TUNE_HALVING, &r);
    /* 8 configurations, eta 3: 8 -> 3 -> 1, epochs 6/9 -> 0 (1), 6/3 = 2, 6 */
    cr_assert_eq(r.rounds, 3);
    cr_assert_eq(r.ntrials, 8 + 3 + 1);
    cr_assert_eq(r.trials[0].epochs_run, 1);
    cr_assert_eq(r.trials[8].epochs_run, 2);
    cr_assert_eq(r.trials[11].epochs_run, 6);
    cr_assert_eq(r.trials[11].round, 2);
    em_tune_result_destroy(&r);
}

/* Units start most costly first (longest processing time first), ties in grid order; the
 * table stays in grid order. With one unit at a time, on_unit sees the start order. */
typedef struct seen {
    uint32_t n, idx[16];
} seen;

static void note_unit(void *ud, const em_tune_trial *t, const em_tune_unit *u)
{
    (void)u;
    seen *s = ud;
    if (s->n < 16)
        s->idx[s->n++] = t->index;
}

Test(tuning, longest_first, .timeout = 180)
{
    data();
    em_context *sc = em_test_ctx_new("local[2]");
    em_tune_space s;
    em_err err = EM_ERR_INIT;
    /* grid order: 0-3 hidden 4, 4-7 hidden 32; act (relu, tanh) fastest */
    cr_assert_eq(em_tune_space_parse("hidden=4,32;lr=0.01,0.003;act=relu,tanh", &s, &err), 0);
    seen sn = {0};
    em_tune_opts o = {.method = EM_TUNE_GRID, .seed = 3, .width = 1, .on_unit = note_unit,
                      .ud = &sn, .base = {.epochs = 2, .batch = 32}};
    em_tune_result r;
    cr_assert_eq(em_tune_run(sc, &s, &o, X, Y, N, D, XV, YV, NV, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(sn.n, 8);
    for (uint32_t i = 0; i < 8; i++) {
        cr_assert_eq(r.trials[i].index, i);   /* the table: grid order */
        if (i < 4)
            cr_assert_geq(sn.idx[i], 4, "unit %u started %u-th, before a wider one", sn.idx[i],
                          i);
    }
    /* tanh costs more than ReLU at the same width; equal costs (lr) keep grid order */
    cr_assert_eq(sn.idx[0], 5);
    cr_assert_eq(sn.idx[1], 7);
    for (uint32_t i = 0; i + 1 < 8; i++)
        if (sn.idx[i] / 4 == sn.idx[i + 1] / 4 && sn.idx[i] % 2 == sn.idx[i + 1] % 2)
            cr_assert_lt(sn.idx[i], sn.idx[i + 1]);
    em_tune_result_destroy(&r);
    em_tune_space_destroy(&s);
    em_context_free(sc);
}
