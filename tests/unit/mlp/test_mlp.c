/* tests/unit/mlp/test_mlp.c - the MLP: gradients of every layer, activation and loss
 * against central finite differences (dropout with a fixed mask, weight decay included),
 * XOR and a generated two-arm spiral learnt, SGD and Adam, schedules, early stopping keeps
 * the best epoch, determinism, save/load round trips (float and int8), corrupt files
 * rejected, pruning + quantization, and data-parallel training on the engine (local[2] and
 * local-cluster[2,1]). */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/mlp/mlp_int.h"
#include "tests/support/ctx.h"

/* Objective of model m on (X, y) with a dropout mask drawn from a fixed seed. */
static double objective(const em_mlp_model *m, const float *X, const float *y, size_t B,
                        double dropout, double wd, mlp_ws *w)
{
    em_rng rng;
    em_rng_seed(&rng, 99);
    em__mlp_forward(m, w, X, B, dropout, &rng);
    return em__mlp_backward(m, w, y, B, wd);
}

static void gradcheck(em_mlp_act act, bool regression, double dropout, double wd)
{
    uint32_t sizes[4] = {5, 7, 6, regression ? 1 : 4};
    em_mlp_model *m = em_mlp_model_new(sizes, 3, act, regression, 7);
    enum { B = 6 };
    float X[B * 5], y[B];
    em_rng g;
    em_rng_seed(&g, 3);
    for (int i = 0; i < B * 5; i++)
        X[i] = (float)em_rng_gaussian(&g);
    for (int i = 0; i < B; i++)
        y[i] = regression ? (float)em_rng_gaussian(&g) : (float)(i % 4);
    /* biases away from zero so ReLU kinks are not straddled by the differences */
    size_t np = em_mlp_nparams(m);
    for (uint32_t l = 0; l < 3; l++) {
        float *b = m->params + em_mlp_layer_offset(m, l) + (size_t)sizes[l] * sizes[l + 1];
        for (uint32_t j = 0; j < sizes[l + 1]; j++)
            b[j] = (float)(0.1 * em_rng_gaussian(&g));
    }
    mlp_ws w;
    em__mlp_ws_init(&w, m, B, dropout > 0);
    objective(m, X, y, B, dropout, wd, &w);
    float *ana = malloc(4 * np);
    memcpy(ana, w.grad, 4 * np);
    const float h = 2e-3f;
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < np; i++) {
        float keep = m->params[i];
        m->params[i] = keep + h;
        double fp = objective(m, X, y, B, dropout, wd, &w);
        m->params[i] = keep - h;
        double fm = objective(m, X, y, B, dropout, wd, &w);
        m->params[i] = keep;
        double num = (fp - fm) / (2 * (double)h);
        double e = fabs(num - ana[i]) / fmax(1e-2, fabs(num) + fabs(ana[i]));
        if (e > 2e-2)
            bad++;
        worst = fmax(worst, e);
    }
    /* A kink of ReLU inside +-h may spoil a difference or two; never more. */
    cr_assert(bad <= (act == EM_MLP_RELU || act == EM_MLP_LEAKY ? 2 : 0),
              "%s %s dropout %g wd %g: %zu of %zu gradients off (worst %g)",
              em_mlp_act_name(act), regression ? "mse" : "softmax-ce", dropout, wd, bad, np,
              worst);
    free(ana);
    em__mlp_ws_destroy(&w);
    em_mlp_model_free(m);
}

Test(mlp, gradients_every_activation_and_loss)
{
    for (int a = EM_MLP_RELU; a <= EM_MLP_TANH; a++) {
        gradcheck((em_mlp_act)a, false, 0, 0);
        gradcheck((em_mlp_act)a, true, 0, 0);
    }
}

Test(mlp, gradients_with_dropout_and_weight_decay)
{
    gradcheck(EM_MLP_TANH, false, 0.3, 0.05);
    gradcheck(EM_MLP_SIGMOID, true, 0.2, 0.1);
}

Test(mlp, learns_xor)
{
    float X[8] = {0, 0, 0, 1, 1, 0, 1, 1}, y[4] = {0, 1, 1, 0};
    em_mlp_params p = {.nhidden = 1, .hidden = {8}, .act = EM_MLP_TANH, .lr = 0.05,
                       .batch = 4, .epochs = 600, .seed = 1};
    em_mlp_model *m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_mlp_train_local(X, y, 4, 2, NULL, NULL, 0, &p, NULL, &m, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(em_mlp_evaluate(m, X, y, 4, NULL), 1.0);
    em_mlp_model_free(m);
}

/* Two interleaved spiral arms (class 0 and 1), n points, noise 0.1. */
static void spiral(size_t n, float *X, float *y, uint64_t seed)
{
    em_rng g;
    em_rng_seed(&g, seed);
    for (size_t i = 0; i < n; i++) {
        double t = 0.25 + 3.0 * em_rng_double(&g) * M_PI;
        int c = (int)(i % 2);
        double r = t / (3 * M_PI);
        X[2 * i] = (float)(r * cos(t + c * M_PI) + 0.02 * em_rng_gaussian(&g));
        X[2 * i + 1] = (float)(r * sin(t + c * M_PI) + 0.02 * em_rng_gaussian(&g));
        y[i] = (float)c;
    }
}

Test(mlp, learns_spiral_adam_and_sgd)
{
    enum { N = 2000, NT = 1000 };
    static float X[2 * N], y[N], Xt[2 * NT], yt[NT];
    spiral(N, X, y, 1);
    spiral(NT, Xt, yt, 2);
    em_err err = EM_ERR_INIT;
    em_mlp_params p = {.nhidden = 2, .hidden = {64, 64}, .act = EM_MLP_RELU, .lr = 0.01,
                       .batch = 32, .epochs = 60, .seed = 5, .sched = EM_MLP_COSINE};
    em_mlp_model *m;
    cr_assert_eq(em_mlp_train_local(X, y, N, 2, NULL, NULL, 0, &p, NULL, &m, &err), 0, "%s",
                 err.msg);
    double acc = em_mlp_evaluate(m, Xt, yt, NT, NULL);
    cr_assert(acc > 0.95, "adam spiral accuracy %g", acc);
    em_mlp_model_free(m);
    p.optim = EM_MLP_SGD;
    p.lr = 0.05;
    p.sched = EM_MLP_STEP;
    p.epochs = 90;
    cr_assert_eq(em_mlp_train_local(X, y, N, 2, NULL, NULL, 0, &p, NULL, &m, &err), 0, "%s",
                 err.msg);
    acc = em_mlp_evaluate(m, Xt, yt, NT, NULL);
    cr_assert(acc > 0.9, "sgd spiral accuracy %g", acc);
    em_mlp_model_free(m);
}

/* Blobs: K Gaussian clusters in D dims. */
static void blobs(size_t n, uint32_t d, uint32_t k, float *X, float *y, uint64_t seed)
{
    em_rng g;
    em_rng_seed(&g, 11);
    float c[16][16];
    for (uint32_t i = 0; i < k; i++)
        for (uint32_t j = 0; j < d; j++)
            c[i][j] = (float)(4 * em_rng_double(&g) - 2);
    em_rng_seed(&g, seed);
    for (size_t i = 0; i < n; i++) {
        uint32_t cl = (uint32_t)(i % k);
        for (uint32_t j = 0; j < d; j++)
            X[i * d + j] = c[cl][j] + (float)(0.6 * em_rng_gaussian(&g));
        y[i] = (float)cl;
    }
}

Test(mlp, blobs_early_stopping_regression_determinism)
{
    enum { N = 3000, D = 8, K = 5 };
    static float X[N * D], y[N];
    blobs(N, D, K, X, y, 3);
    em_err err = EM_ERR_INIT;
    em_mlp_params p = {.nhidden = 1, .hidden = {32}, .act = EM_MLP_LEAKY, .epochs = 30,
                       .valid_frac = 0.2, .patience = 3, .seed = 9, .dropout = 0.1,
                       .weight_decay = 1e-4};
    em_mlp_model *a, *b;
    cr_assert_eq(em_mlp_train_local(X, y, N, D, NULL, NULL, 0, &p, NULL, &a, &err), 0, "%s",
                 err.msg);
    cr_assert(a->valid_metric > 0.9, "valid accuracy %g", a->valid_metric);
    cr_assert(a->best_epoch >= 1 && a->best_epoch <= a->epochs_run);
    cr_assert(a->epochs_run < 30 || a->best_epoch > 27);
    cr_assert_eq(em_mlp_train_local(X, y, N, D, NULL, NULL, 0, &p, NULL, &b, &err), 0);
    cr_assert(!memcmp(a->params, b->params, 4 * em_mlp_nparams(a)), "same seed, same model");
    em_mlp_model_free(b);
    /* regression: y = sum of features; RMSE far below the target's spread */
    float *t = malloc(4 * N);
    for (size_t i = 0; i < N; i++) {
        t[i] = 0;
        for (int j = 0; j < D; j++)
            t[i] += X[i * D + j];
    }
    em_mlp_params pr = {.nhidden = 1, .hidden = {16}, .act = EM_MLP_TANH, .regression = true,
                        .epochs = 40, .seed = 2, .lr = 0.01};
    cr_assert_eq(em_mlp_train_local(X, t, N, D, NULL, NULL, 0, &pr, NULL, &b, &err), 0, "%s",
                 err.msg);
    double rmse = em_mlp_evaluate(b, X, t, N, NULL);
    cr_assert(rmse < 0.3, "regression rmse %g", rmse);
    em_mlp_model_free(b);
    free(t);
    /* bad labels and parameters */
    y[7] = 1.5f;
    cr_assert_eq(em_mlp_train_local(X, y, N, D, NULL, NULL, 0, &p, NULL, &b, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "row 8"), "%s", err.msg);
    y[7] = 2;
    p.dropout = 1;
    cr_assert_eq(em_mlp_train_local(X, y, N, D, NULL, NULL, 0, &p, NULL, &b, &err), EM_EINVAL);
    em_mlp_model_free(a);
}

static char *tmpdir(void)
{
    char *t = strdup("/tmp/ember-mlp-test-XXXXXX");
    cr_assert(mkdtemp(t));
    return t;
}

static void rm_rf(const char *p)
{
    em_err err = EM_ERR_INIT;
    em_rm_rf(p, &err);
}

Test(mlp, save_load_compress_and_corruption)
{
    enum { N = 2000, D = 8, K = 4 };
    static float X[N * D], y[N];
    blobs(N, D, K, X, y, 4);
    em_err err = EM_ERR_INIT;
    em_mlp_params p = {.nhidden = 2, .hidden = {128, 64}, .epochs = 15, .seed = 4};
    em_mlp_model *m, *l;
    cr_assert_eq(em_mlp_train_local(X, y, N, D, NULL, NULL, 0, &p, NULL, &m, &err), 0);
    double acc = em_mlp_evaluate(m, X, y, N, NULL);
    char *t = tmpdir(), *dir = em_xasprintf("%s/m", t), *cdir = em_xasprintf("%s/c", t);
    cr_assert_eq(em_mlp_model_save(m, dir, false, &err), 0, "%s", err.msg);
    cr_assert_eq(em_mlp_model_load(dir, &l, &err), 0, "%s", err.msg);
    cr_assert_eq(l->nlayers, 3);
    cr_assert(!memcmp(m->params, l->params, 4 * em_mlp_nparams(m)), "bit-exact round trip");
    em_mlp_model_free(l);
    cr_assert_eq(em_mlp_model_save(m, dir, false, &err), EM_EINVAL, "existing dir refused");

    /* prune 90%, retrain, quantize: sparsity exact, accuracy kept, file much smaller */
    uint8_t *mask = malloc(em_mlp_nparams(m));
    em_mlp_prune(m, 0.9, mask);
    cr_assert(fabs(em_mlp_sparsity(m) - 0.9) < 0.01, "sparsity %g", em_mlp_sparsity(m));
    p.epochs = 10;
    cr_assert_eq(em_mlp_retrain_masked(m, mask, X, y, N, NULL, NULL, 0, &p, &err), 0);
    cr_assert(em_mlp_sparsity(m) >= 0.899, "mask held: %g", em_mlp_sparsity(m));
    em_mlp_quantize(m);
    double acc2 = em_mlp_evaluate(m, X, y, N, NULL);
    cr_assert(acc2 > acc - 0.05, "accuracy %g -> %g", acc, acc2);
    cr_assert_eq(em_mlp_model_save(m, cdir, true, &err), 0, "%s", err.msg);
    cr_assert(em_mlp_dir_bytes(cdir) * 6 < em_mlp_dir_bytes(dir), "%llu vs %llu bytes",
              (unsigned long long)em_mlp_dir_bytes(cdir),
              (unsigned long long)em_mlp_dir_bytes(dir));
    cr_assert_eq(em_mlp_model_load(cdir, &l, &err), 0, "%s", err.msg);
    cr_assert(!memcmp(m->params, l->params, 4 * em_mlp_nparams(m)), "int8 round trip exact");
    em_mlp_model_free(l);

    /* corruption: a flipped byte in either file, a truncated array, a lying layer size */
    const char *files[] = {"m/params.bin", "m/metadata.json", "c/packed.bin"};
    for (int f = 0; f < 3; f++) {
        char *path = em_xasprintf("%s/%s", t, files[f]);
        uint8_t *b;
        size_t n;
        cr_assert_eq(em_read_file(path, &b, &n, &err), 0);
        b[n / 2] ^= 0x10;
        cr_assert_eq(em_write_file_atomic(path, b, n, &err), 0);
        cr_assert_lt(em_mlp_model_load(f == 2 ? cdir : dir, &l, &err), 0, "%s", files[f]);
        cr_assert_null(l);
        b[n / 2] ^= 0x10;
        cr_assert_eq(em_write_file_atomic(path, b, n - 8, &err), 0);
        cr_assert_lt(em_mlp_model_load(f == 2 ? cdir : dir, &l, &err), 0, "%s", files[f]);
        em_free(b);
        em_free(path);
    }
    rm_rf(t);
    free(mask);
    em_mlp_model_free(m);
    em_free(dir);
    em_free(cdir);
    free(t);
}

/* Data-parallel training on blobs held as dense labeled points in 4 partitions. */
static void dist_run(const char *master, float **params, size_t *np, double *acc)
{
    enum { N = 2400, D = 6, K = 3 };
    static float X[N * D], y[N];
    static double rows[N][D + 1];
    static em_rec recs[N];
    blobs(N, D, K, X, y, 8);
    for (size_t i = 0; i < N; i++) {
        rows[i][0] = y[i];
        for (int j = 0; j < D; j++)
            rows[i][j + 1] = X[i * D + j];
        recs[i].val = em_slice_make(rows[i], sizeof rows[i]);
    }
    em_context *sc = em_test_ctx_new(master);
    em_ml_data d = {.labeled = true, .dim = D, .nrows = N,
                    .rows = em_parallelize(sc, EM_REC_FIXED, 8 * (D + 1), recs, N, 4)};
    em_mlp_params p = {.nhidden = 1, .hidden = {16}, .epochs = 8, .seed = 3, .batch = 32};
    em_mlp_model *m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_mlp_train_dist(sc, &d, 0, X, y, N, &p, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m->epochs_run, 8);
    *acc = em_mlp_evaluate(m, X, y, N, NULL);
    *np = em_mlp_nparams(m);
    *params = malloc(4 * *np);
    memcpy(*params, m->params, 4 * *np);
    em_mlp_model_free(m);
    em_rdd_release(d.rows);
    em_context_free(sc);
}

Test(mlp, data_parallel_local_and_cluster, .timeout = 120)
{
    float *a, *b;
    size_t na, nb;
    double acc_a, acc_b;
    dist_run("local[2]", &a, &na, &acc_a);
    cr_assert(acc_a > 0.9, "data-parallel accuracy %g", acc_a);
    dist_run("local-cluster[2,1]", &b, &nb, &acc_b);
    cr_assert_eq(na, nb);
    cr_assert(!memcmp(a, b, 4 * na), "same seed: same weights in local[2] and local-cluster");
    free(a);
    free(b);
}

Test(mlp, standardize_folds_into_the_first_layer)
{
    enum { N = 500, D = 6, K = 3 };
    static float X[N * D], Z[N * D], y[N], a[N * K], b[N * K], pa[N], pb[N];
    blobs(N, D, K, X, y, 6);
    for (size_t i = 0; i < N * D; i++)
        X[i] = X[i] * 30 + 100;   /* far from unit scale */
    memcpy(Z, X, sizeof X);
    float mu[D], sd[D];
    em_mlp_standardize_fit(X, N, D, mu, sd);
    em_mlp_standardize_apply(Z, N, D, mu, sd);
    em_mlp_params p = {.nhidden = 1, .hidden = {16}, .epochs = 5, .seed = 2};
    em_mlp_model *m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_mlp_train_local(Z, y, N, D, NULL, NULL, 0, &p, NULL, &m, &err), 0);
    em_mlp_predict(m, Z, N, pa, a);
    em_mlp_fold_standardize(m, mu, sd);
    em_mlp_predict(m, X, N, pb, b);
    for (size_t i = 0; i < N * K; i++)
        cr_assert(fabsf(a[i] - b[i]) < 1e-3f, "prob %zu: %g vs %g", i, a[i], b[i]);
    em_mlp_model_free(m);
}

/* em_mlp_params.valid_rows: rows handed over late, once; or an error. */
typedef struct late_src {
    const float *rows;
    int calls;
    bool fail;
} late_src;

static const float *late_rows_cb(void *ud, em_err *err)
{
    late_src *s = ud;
    s->calls++;
    if (s->fail) {
        em_err_set(err, EM_EIO, "validation rows: fetch failed");
        return NULL;
    }
    return s->rows;
}

/* A search trial's way (late validation rows, validated once at the end) gives the same
 * network and the same figure as validating every epoch with the rows at hand. */
Test(mlp, late_validation_rows_and_valid_at_end)
{
    enum { N = 2000, NV = 500, D = 8, K = 5 };
    static float X[N * D], y[N], xv[NV * D], yv[NV];
    blobs(N, D, K, X, y, 3);
    blobs(NV, D, K, xv, yv, 4);
    em_err err = EM_ERR_INIT;
    em_mlp_params p = {.nhidden = 1, .hidden = {16}, .act = EM_MLP_TANH, .epochs = 4,
                       .seed = 5, .batch = 64};
    em_mlp_model *a, *b;
    cr_assert_eq(em_mlp_train_local(X, y, N, D, xv, yv, NV, &p, NULL, &a, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(a->best_epoch > 0, true, "every epoch validated");
    late_src src = {.rows = xv};
    em_mlp_params q = p;
    q.valid_rows = late_rows_cb;
    q.valid_rows_ud = &src;
    q.valid_at_end = true;
    cr_assert_eq(em_mlp_train_local(X, y, N, D, NULL, yv, NV, &q, NULL, &b, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(src.calls, 1);
    cr_assert_eq(b->best_epoch, 0u, "validated once, after the loop");
    cr_assert(!memcmp(a->params, b->params, 4 * em_mlp_nparams(a)), "same network");
    cr_assert_eq(a->valid_metric, b->valid_metric);
    cr_assert_eq(a->valid_metric, em_mlp_evaluate(b, xv, yv, NV, NULL));
    em_mlp_model_free(b);
    /* late rows, every epoch: asked for once, at the first epoch's end */
    src.calls = 0;
    q.valid_at_end = false;
    cr_assert_eq(em_mlp_train_local(X, y, N, D, NULL, yv, NV, &q, NULL, &b, &err), 0);
    cr_assert_eq(src.calls, 1);
    cr_assert_eq(b->best_epoch, a->best_epoch);
    cr_assert_eq(a->valid_metric, b->valid_metric);
    em_mlp_model_free(b);
    /* patience needs every epoch's figure: valid_at_end gives way */
    q.valid_at_end = true;
    q.patience = 2;
    p.patience = 2;
    src.calls = 0;
    em_mlp_model_free(a);
    cr_assert_eq(em_mlp_train_local(X, y, N, D, xv, yv, NV, &p, NULL, &a, &err), 0);
    cr_assert_eq(em_mlp_train_local(X, y, N, D, NULL, yv, NV, &q, NULL, &b, &err), 0);
    cr_assert_eq(b->best_epoch, a->best_epoch);
    cr_assert(b->best_epoch > 0);
    cr_assert(!memcmp(a->params, b->params, 4 * em_mlp_nparams(a)));
    em_mlp_model_free(b);
    /* a failed fetch fails the training with its error, no model */
    src.fail = true;
    b = NULL;
    cr_assert_eq(em_mlp_train_local(X, y, N, D, NULL, yv, NV, &q, NULL, &b, &err), EM_EIO);
    cr_assert(strstr(err.msg, "fetch failed"), "%s", err.msg);
    cr_assert_null(b);
    /* no rows at all (xv NULL, no callback): an error, not a crash */
    q.valid_rows = NULL;
    cr_assert_eq(em_mlp_train_local(X, y, N, D, NULL, yv, NV, &q, NULL, &b, &err), EM_EINVAL);
    em_mlp_model_free(a);
}
