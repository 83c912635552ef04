/* mllib/mlp/cli.c - `ember ml mlp`: load labeled data (mllib/ml_cli.h), train one network
 * on the driver (OpenBLAS threads: --threads) or data-parallel on the executors
 * (--data-parallel), report the test accuracy (or RMSE), optionally prune + quantize it
 * (--prune S, --quantize: accuracy before/after and size on disk), save it. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/eval/eval.h"
#include "mllib/ml_cli.h"
#include "mllib/mlp/mlp.h"

void em_mlp_cli_help(FILE *f)
{
    em_ml_cli c;
    em_ml_cli_init(&c, "mlp", EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM,
                   EM_ML_LIBSVM, NULL);
    fputs("Usage: ember ml mlp --train PATH [--test PATH] [options]\n"
          "\n"
          "Trains a fully-connected neural network (float32 SGEMM layers). Labels are the\n"
          "classes 0..K-1 (softmax + cross-entropy), or targets with --regression (MSE).\n"
          "\n",
          f);
    em_ml_cli_common_help(&c, f);
    fputs("  --valid PATH          validation set for early stopping (else --valid-frac)\n"
          "  --hidden H1,H2,...    hidden layer sizes (default 128; 0 = none)\n"
          "  --act A               relu (default), leaky_relu, sigmoid, tanh\n"
          "  --regression          one output, mean squared error\n"
          "  --optim O             adam (default) or sgd (with --momentum, default 0.9)\n"
          "  --lr R                learning rate (default 1e-3 adam, 0.01 sgd)\n"
          "  --momentum M          sgd momentum\n"
          "  --batch B             mini-batch rows (default 128)\n"
          "  --epochs E            passes over the data (default 10)\n"
          "  --weight-decay W      L2 penalty on the weights (default 0)\n"
          "  --dropout P           drop probability of hidden units (default 0)\n"
          "  --schedule S          const (default), step (x0.1 every epochs/3), cosine\n"
          "  --valid-frac F        training rows held out for validation (default 0)\n"
          "  --patience N          stop after N epochs without a better validation metric\n"
          "  --seed S              initialization, shuffling, dropout (default 1)\n"
          "  --standardize         scale features to mean 0, sd 1 (training-set figures;\n"
          "                        folded into the first layer, so the model takes raw rows)\n"
          "  --threads T           OpenBLAS threads on the driver (default: all cores)\n"
          "  --data-parallel       train on the executors, weights averaged each epoch\n"
          "  --prune S             after training: prune to sparsity S in [0,1), retrain\n"
          "                        --retrain-epochs (default 3) with the mask held\n"
          "  --quantize            after training: int8 weights, one scale per layer; --save\n"
          "                        then writes the compressed encoding\n",
          f);
}

typedef struct mlp_cli {
    em_ml_cli c;
    em_mlp_params p;
    const char *valid;
    uint32_t threads, retrain;
    double prune;
    bool dist, quantize, standardize;
} mlp_cli;

static bool parse_hidden(em_ml_cli *c, const char *v, em_mlp_params *p)
{
    p->nhidden = 0;
    if (!strcmp(v, "0"))
        return true;
    char *dup = em_xstrdup(v), *save = NULL;
    bool ok = true;
    for (char *t = strtok_r(dup, ",", &save); t && ok; t = strtok_r(NULL, ",", &save)) {
        if (p->nhidden == EM_MLP_MAX_LAYERS - 1) {
            em_ml_cli_usage(c, "--hidden: at most %d hidden layers", EM_MLP_MAX_LAYERS - 1);
            ok = false;
        } else {
            ok = em_ml_cli_u32(c, "--hidden", t, 1, EM_MLP_MAX_WIDTH, &p->hidden[p->nhidden++]);
        }
    }
    em_free(dup);
    return ok;
}

/* 1 taken, 0 unknown, 2 exit. */
static int own_opt(mlp_cli *o, int argc, char **argv, int *i)
{
    em_ml_cli *c = &o->c;
    em_mlp_params *p = &o->p;
    const char *a = argv[*i], *v;
    bool bad = false;
    static const char *const optims[] = {"adam", "sgd", NULL};
    static const char *const scheds[] = {"const", "step", "cosine", NULL};
    static const char *const acts[] = {"relu", "leaky_relu", "sigmoid", "tanh", NULL};
    int k;
    if (!strcmp(a, "--regression"))
        return p->regression = true, 1;
    if (!strcmp(a, "--data-parallel"))
        return o->dist = true, 1;
    if (!strcmp(a, "--quantize"))
        return o->quantize = true, 1;
    if (!strcmp(a, "--standardize"))
        return o->standardize = true, 1;
    bool ok = true;
    if ((v = em_ml_cli_value(c, "--valid", argc, argv, i, &bad)))
        o->valid = v;
    else if ((v = em_ml_cli_value(c, "--hidden", argc, argv, i, &bad)))
        ok = parse_hidden(c, v, p);
    else if ((v = em_ml_cli_value(c, "--act", argc, argv, i, &bad)))
        ok = em_ml_cli_choice(c, "--act", v, acts, &k) && (p->act = (em_mlp_act)k, true);
    else if ((v = em_ml_cli_value(c, "--optim", argc, argv, i, &bad)))
        ok = em_ml_cli_choice(c, "--optim", v, optims, &k) && (p->optim = (em_mlp_optim)k, true);
    else if ((v = em_ml_cli_value(c, "--schedule", argc, argv, i, &bad)))
        ok = em_ml_cli_choice(c, "--schedule", v, scheds, &k) && (p->sched = (em_mlp_sched)k, true);
    else if ((v = em_ml_cli_value(c, "--lr", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--lr", v, 1e-12, 1e6, &p->lr);
    else if ((v = em_ml_cli_value(c, "--momentum", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--momentum", v, 0, 0.999999, &p->momentum);
    else if ((v = em_ml_cli_value(c, "--weight-decay", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--weight-decay", v, 0, 1e6, &p->weight_decay);
    else if ((v = em_ml_cli_value(c, "--dropout", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--dropout", v, 0, 0.99, &p->dropout);
    else if ((v = em_ml_cli_value(c, "--valid-frac", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--valid-frac", v, 0, 0.9, &p->valid_frac);
    else if ((v = em_ml_cli_value(c, "--prune", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--prune", v, 0, 0.999, &o->prune);
    else if ((v = em_ml_cli_value(c, "--batch", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--batch", v, 1, 1u << 20, &p->batch);
    else if ((v = em_ml_cli_value(c, "--epochs", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--epochs", v, 1, 100000, &p->epochs);
    else if ((v = em_ml_cli_value(c, "--retrain-epochs", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--retrain-epochs", v, 0, 100000, &o->retrain);
    else if ((v = em_ml_cli_value(c, "--patience", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--patience", v, 0, 100000, &p->patience);
    else if ((v = em_ml_cli_value(c, "--threads", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--threads", v, 1, 1024, &o->threads);
    else if ((v = em_ml_cli_value(c, "--seed", argc, argv, i, &bad)))
        ok = em_ml_cli_u64(c, "--seed", v, &p->seed);
    if (bad || !ok)
        return 2;
    return v ? 1 : 0;
}

static void progress(void *ud, uint32_t epoch, double loss, double valid, double secs)
{
    const mlp_cli *o = ud;
    if (!o->c.verbose)
        return;
    fprintf(stderr, "ember ml mlp: epoch %u: loss %.6f, validation %.6f, %.3f s\n", epoch,
            loss, valid, secs);
}

/* The figures of mllib/eval for m on n rows (accuracy, weighted precision/recall/F1 and the
 * confusion matrix, or rmse/mse/mae/r2) into js; they replace this file's own "accuracy"
 * or "rmse". */
static int eval_json(const em_mlp_model *m, const float *X, const float *y, size_t n,
                     json_t *js, em_err *err)
{
    float *pf = em_xmalloc(4 * (n ? n : 1));
    double *pred = em_xmalloc(8 * (n ? n : 1)), *lab = em_xmalloc(8 * (n ? n : 1));
    em_mlp_predict(m, X, n, pf, NULL);
    for (size_t i = 0; i < n; i++) {
        pred[i] = pf[i];
        lab[i] = y[i];
    }
    int rc;
    if (m->regression) {
        em_eval_regression r;
        if ((rc = em_eval_regression_local(pred, lab, n, &r, err)) == 0)
            em_eval_regression_json(&r, js);
    } else {
        em_eval_multiclass mc;
        memset(&mc, 0, sizeof mc);
        if ((rc = em_eval_multiclass_local(pred, lab, n, m->sizes[m->nlayers], &mc, err)) == 0)
            em_eval_multiclass_json(&mc, js);
        em_eval_multiclass_destroy(&mc);
    }
    em_free(pf);
    em_free(pred);
    em_free(lab);
    return rc;
}

static json_t *metric_json(const em_mlp_model *m, double v)
{
    (void)m;
    return isfinite(v) ? json_real(v) : json_null();
}

static int run(mlp_cli *o, em_context *sc, em_err *err)
{
    em_ml_cli *c = &o->c;
    em_ml_data train, test, valid = {0};
    int rc = em_ml_cli_load(c, sc, &train, &test, err);
    if (rc < 0)
        return rc;
    float *X = NULL, *y = NULL, *xt = NULL, *yt = NULL, *xv = NULL, *yv = NULL;
    size_t n = 0, nt = 0, nv = 0;
    em_mlp_model *m = NULL;
    json_t *js = json_object();
    if (o->valid) {
        em_ml_read_opts ro = c->ro;
        ro.dim = train.dim;
        rc = em_ml_read(sc, o->valid, &ro, &valid, err);
        if (rc == 0 && valid.dim != train.dim)
            rc = em_err_set(err, EM_EINVAL, "%s: %u features, the training set has %u",
                            o->valid, valid.dim, train.dim);
        if (rc == 0)
            rc = em_mlp_collect(&valid, &xv, &yv, &nv, err);
    }
    if (rc == 0 && test.rows)
        rc = em_mlp_collect(&test, &xt, &yt, &nt, err);
    float *mu = NULL, *sd = NULL;
    uint32_t d = train.dim;
    if (rc == 0 && !o->dist)
        rc = em_mlp_collect(&train, &X, &y, &n, err);
    if (rc == 0 && o->standardize) {
        /* train, prune and retrain on standardized rows; fold before quantizing */
        mu = em_xmalloc(4 * (size_t)d);
        sd = em_xmalloc(4 * (size_t)d);
        em_mlp_standardize_fit(X, n, d, mu, sd);
        em_mlp_standardize_apply(X, n, d, mu, sd);
        if (xv)
            em_mlp_standardize_apply(xv, nv, d, mu, sd);
        if (xt)
            em_mlp_standardize_apply(xt, nt, d, mu, sd);
    }
    o->p.progress = progress;
    o->p.progress_ud = o;
    double t0 = em_now_s();
    if (rc == 0 && o->dist) {
        rc = em_mlp_train_dist(sc, &train, 0, xv, yv, nv, &o->p, &m, err);
    } else if (rc == 0) {
        openblas_set_num_threads((int)(o->threads ? o->threads : sysconf(_SC_NPROCESSORS_ONLN)));
        rc = em_mlp_train_local(X, y, n, d, xv, yv, nv, &o->p, NULL, &m, err);
    }
    double train_s = em_now_s() - t0;
    const char *mname = o->p.regression ? "rmse" : "accuracy";
    const float *ex = xt ? xt : X, *ey = xt ? yt : y;
    size_t en = xt ? nt : n;
    double before = NAN, after = NAN;
    if (rc == 0) {
        if (ex)
            before = em_mlp_evaluate(m, ex, ey, en, NULL);
        printf("mlp: %u layers (", m->nlayers);
        for (uint32_t l = 0; l <= m->nlayers; l++)
            printf("%s%u", l ? "-" : "", m->sizes[l]);
        printf("), %u epochs in %.3f s (%.3f s/epoch); %s %s %.6f\n", m->epochs_run, train_s,
               m->epochs_run ? train_s / m->epochs_run : 0.0, xt ? "test" : "train", mname,
               before);
        json_object_set_new(js, mname, metric_json(m, before));
        json_object_set_new(js, "train_s", json_real(train_s));
        json_object_set_new(js, "epoch_s",
                            json_real(m->epochs_run ? train_s / m->epochs_run : 0.0));
        json_object_set_new(js, "epochs", json_integer(m->epochs_run));
        json_object_set_new(js, "best_epoch", json_integer(m->best_epoch));
        json_object_set_new(js, "valid_metric", metric_json(m, m->valid_metric));
        json_object_set_new(js, "parameters", json_integer((json_int_t)em_mlp_nparams(m)));
        json_object_set_new(js, "train_rows", json_integer((json_int_t)train.nrows));
        json_object_set_new(js, "data_parallel", json_boolean(o->dist));
    }
    if (rc == 0 && o->prune > 0) {
        if (!X)
            rc = em_mlp_collect(&train, &X, &y, &n, err);
        uint8_t *mask = em_xmalloc(em_mlp_nparams(m));
        em_mlp_prune(m, o->prune, mask);
        json_object_set_new(js, "metric_pruned_no_retrain",
                            metric_json(m, em_mlp_evaluate(m, ex ? ex : X, ex ? ey : y,
                                                           ex ? en : n, NULL)));
        em_mlp_params rp = o->p;
        rp.epochs = o->retrain;
        rp.patience = 0;
        rp.progress = NULL;
        if (rc == 0 && rp.epochs)
            rc = em_mlp_retrain_masked(m, mask, X, y, n, xv, yv, nv, &rp, err);
        em_free(mask);
    }
    if (mu) {
        /* the model takes raw rows from here on, and so do the data */
        if (m)
            em_mlp_fold_standardize(m, mu, sd);
        float *sets[3] = {X, xv, xt};
        size_t cnt[3] = {n, nv, nt};
        for (int k = 0; k < 3; k++)
            for (size_t i = 0; sets[k] && i < cnt[k] * d; i++)
                sets[k][i] = sets[k][i] * sd[i % d] + mu[i % d];
    }
    if (rc == 0 && (o->prune > 0 || o->quantize)) {
        if (o->quantize)
            em_mlp_quantize(m);
        ex = xt ? xt : X;
        ey = xt ? yt : y;
        en = xt ? nt : n;
        after = ex ? em_mlp_evaluate(m, ex, ey, en, NULL) : NAN;
        char tmp[] = "/tmp/ember-mlp-size-XXXXXX";
        uint64_t full = 0, small = 0;
        if (mkdtemp(tmp)) {
            char *a = em_xasprintf("%s/f", tmp), *b = em_xasprintf("%s/c", tmp);
            em_err e2 = EM_ERR_INIT;
            if (em_mlp_model_save(m, a, false, &e2) == 0)
                full = em_mlp_dir_bytes(a);
            if (o->quantize && em_mlp_model_save(m, b, true, &e2) == 0)
                small = em_mlp_dir_bytes(b);
            em_rm_rf(tmp, &e2);
            em_free(a);
            em_free(b);
        }
        printf("compressed: sparsity %.3f%s; %s %.6f -> %.6f; %llu bytes on disk "
               "(float: %llu)\n", em_mlp_sparsity(m), o->quantize ? ", int8" : "", mname,
               before, after, (unsigned long long)(small ? small : full),
               (unsigned long long)full);
        json_object_set_new(js, "sparsity", json_real(em_mlp_sparsity(m)));
        json_object_set_new(js, "metric_before_compression", metric_json(m, before));
        json_object_set_new(js, "metric_after_compression", metric_json(m, after));
        json_object_set_new(js, mname, metric_json(m, after));
        json_object_set_new(js, "model_bytes", json_integer((json_int_t)(small ? small : full)));
        json_object_set_new(js, "model_bytes_float", json_integer((json_int_t)full));
    }
    em_free(mu);
    em_free(sd);
    if (rc == 0 && xt)
        rc = eval_json(m, xt, yt, nt, js, err);
    if (rc == 0) {
        if (rc == 0 && c->save) {
            rc = em_mlp_model_save(m, c->save, o->quantize, err);
            if (rc == 0)
                printf("saved to %s (%llu bytes)\n", c->save,
                       (unsigned long long)em_mlp_dir_bytes(c->save));
        }
    }
    if (rc == 0)
        em_ml_cli_print_json(c, js);
    else
        json_decref(js);
    em_mlp_model_free(m);
    em_free(X);
    em_free(y);
    em_free(xt);
    em_free(yt);
    em_free(xv);
    em_free(yv);
    em_ml_data_release(&valid);
    em_ml_data_release(&test);
    em_ml_data_release(&train);
    return rc;
}

int em_mlp_cli_main(int argc, char **argv)
{
    mlp_cli o;
    memset(&o, 0, sizeof o);
    em_ml_cli *c = &o.c;
    em_ml_cli_init(c, "mlp", EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM,
                   EM_ML_LIBSVM, em_mlp_cli_help);
    c->ro.dense = true;   /* networks take dense rows */
    o.p.nhidden = 1;
    o.p.hidden[0] = 128;
    o.p.seed = 1;
    o.retrain = 3;
    for (int i = 1; i < argc; i++) {
        int r = em_ml_cli_opt(c, argc, argv, &i);
        if (r == 2)
            return c->status;
        if (r == 1)
            continue;
        r = own_opt(&o, argc, argv, &i);
        if (r == 2)
            return c->status;
        if (r == 0)
            return em_ml_cli_usage(c, "unknown option '%s'", argv[i]);
    }
    if (em_ml_cli_finish(c) != 0)
        return c->status;
    if (o.dist && (o.standardize || o.prune > 0 || o.p.valid_frac > 0))
        return em_ml_cli_usage(c, "--data-parallel takes neither --standardize, --prune nor "
                                  "--valid-frac (give a --valid set)");
    em_err err = EM_ERR_INIT;
    em_context *sc = em_ml_cli_context_new(c, &err);
    if (!sc)
        return em_ml_cli_fail(c, &err);
    int rc = run(&o, sc, &err);
    em_ml_cli_context_free(c, sc);
    return rc < 0 ? em_ml_cli_fail(c, &err) : 0;
}
