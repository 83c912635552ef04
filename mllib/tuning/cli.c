/* mllib/tuning/cli.c - `ember ml tune [mlp]`: a hyper-parameter search for an MLP, trials
 * as tasks (tuning.h); `ember ml tune lr|als` goes to cli_cv.c. Prints a row for each
 * trial as its result reaches the driver (the live table); with --json the last stdout
 * line is {"best": {params, valid_metric, test_accuracy|test_rmse}, "trials": [...],
 * "total_s", ...}; --results PREFIX writes PREFIX.csv and PREFIX.json; --save DIR saves
 * the best network (the trial's own weights: nothing is retrained). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/eval/eval.h"
#include "mllib/ml_cli.h"
#include "mllib/tuning/tuning_int.h"

#define FLAGS (EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM)

void em_tune_cli_help(FILE *f)
{
    em_ml_cli c;
    em_ml_cli_init(&c, "tune", FLAGS, EM_ML_LIBSVM, NULL);
    fputs("Usage: ember ml tune [mlp] --train PATH --space SPACE [--valid PATH] [options]\n"
          "       ember ml tune lr|als ...   (cross-validated searches: ember ml tune lr --help)\n"
          "\n"
          "Searches MLP hyper-parameters; every trial is a task on the executors.\n"
          "SPACE: key=v1,v2;key=... with keys hidden (\"256-128\" = two layers), lr, batch,\n"
          "wd, epochs, act, dropout, optim, momentum.\n"
          "\n",
          f);
    em_ml_cli_common_help(&c, f);
    fputs("  --valid PATH          validation set (else --valid-frac of --train, seeded)\n"
          "  --valid-frac F        held-out fraction when no --valid (default 0.2)\n"
          "  --space SPACE         the search space (required)\n"
          "  --search S            grid (default), random:N, halving or halving:ETA\n"
          "  --epochs E            epochs of keys the space leaves out (halving: of the\n"
          "                        last round; default 10)\n"
          "  --regression          MSE on one output; the metric is RMSE (lower is better)\n"
          "  --standardize         scale features to mean 0, sd 1 (training-set figures,\n"
          "                        folded into the saved model's first layer)\n"
          "  --seed S              trial seed and random search draws (default 1)\n"
          "  --results PREFIX      write PREFIX.csv and PREFIX.json (the trials table)\n"
          "  --trial-budget S      cancel a trial running longer than S seconds (its\n"
          "                        configuration is dropped; default: no budget)\n",
          f);
}

typedef struct tune_cli {
    em_ml_cli c;
    em_tune_opts o;
    const char *space, *valid, *results;
    double valid_frac;
    bool standardize;
} tune_cli;

static int own_opt(tune_cli *t, int argc, char **argv, int *i)
{
    em_ml_cli *c = &t->c;
    const char *a = argv[*i], *v;
    bool bad = false, ok = true;
    if (!strcmp(a, "--regression"))
        return t->o.base.regression = true, 1;
    if (!strcmp(a, "--standardize"))
        return t->standardize = true, 1;
    if ((v = em_ml_cli_value(c, "--space", argc, argv, i, &bad)))
        t->space = v;
    else if ((v = em_ml_cli_value(c, "--valid", argc, argv, i, &bad)))
        t->valid = v;
    else if ((v = em_ml_cli_value(c, "--results", argc, argv, i, &bad)))
        t->results = v;
    else if ((v = em_ml_cli_value(c, "--valid-frac", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--valid-frac", v, 0.01, 0.9, &t->valid_frac);
    else if ((v = em_ml_cli_value(c, "--epochs", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--epochs", v, 1, 100000, &t->o.base.epochs);
    else if ((v = em_ml_cli_value(c, "--seed", argc, argv, i, &bad)))
        ok = em_ml_cli_u64(c, "--seed", v, &t->o.seed);
    else
        v = em__tune_cli_search_opt(c, &t->o, argc, argv, i, &bad, &ok);
    if (bad || !ok)
        return 2;
    return v ? 1 : 0;
}

const char *em__tune_cli_search_opt(em_ml_cli *c, em_tune_opts *o, int argc, char **argv,
                                    int *i, bool *bad, bool *ok)
{
    const char *v;
    if ((v = em_ml_cli_value(c, "--trial-budget", argc, argv, i, bad)))
        *ok = em_ml_cli_f64(c, "--trial-budget", v, 0.001, 1e9, &o->trial_budget_s);
    else if ((v = em_ml_cli_value(c, "--search", argc, argv, i, bad))) {
        if (!strcmp(v, "grid"))
            o->method = EM_TUNE_GRID;
        else if (!strncmp(v, "random:", 7)) {
            o->method = EM_TUNE_RANDOM;
            *ok = em_ml_cli_u32(c, "--search random:N", v + 7, 1, EM_TUNE_MAX_TRIALS,
                                &o->random_trials);
        } else if (!strcmp(v, "halving"))
            o->method = EM_TUNE_HALVING;
        else if (!strncmp(v, "halving:", 8)) {
            o->method = EM_TUNE_HALVING;
            *ok = em_ml_cli_u32(c, "--search halving:ETA", v + 8, 2, 100, &o->eta);
        } else {
            em_ml_cli_usage(c, "--search: unknown '%s' (grid, random:N, halving[:ETA])", v);
            *ok = false;
        }
    }
    return v;
}

void em__tune_print_unit(void *ud, const em_tune_trial *t, const em_tune_unit *u)
{
    bool *header = ud;
    if (!*header) {
        printf("  %5s %5s %4s  %-40s %9s %10s %6s %9s  %s\n", "trial", "round", "fold",
               "params", "status", "metric", "epochs", "seconds", "executor");
        *header = true;
    }
    char fold[16] = "-";
    if (t->nfolds || u->fold)
        snprintf(fold, sizeof fold, "%u", u->fold);
    printf("  %5u %5u %4s  %-40s %9s ", u->trial, u->round, fold, t->desc,
           em_tune_status_name(u->status));
    if (u->status == EM_TUNE_OK)
        printf("%10.6f %6u %9.3f  %s\n", u->metric, u->epochs, u->seconds, u->executor);
    else
        printf("%10s %6s %9s  -\n", "-", "-", "-");
    fflush(stdout);
}

void em__tune_print_round(void *ud, uint32_t round, const em_tune_trial *t, size_t n)
{
    (void)ud;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += t[i].status == EM_TUNE_OK;
    printf("round %u done: %zu of %zu configurations finished\n", round, ok, n);
    fflush(stdout);
}

int em__tune_write_results(const em_tune_result *res, json_t *js, const char *prefix,
                           em_err *err)
{
    char *csv = em_xasprintf("%s.csv", prefix);
    char *jp = em_xasprintf("%s.json", prefix);
    int rc = em_tune_write_csv(res, csv, err);
    char *s = rc == 0 ? json_dumps(json_object_get(js, "trials"),
                                   JSON_INDENT(1) | JSON_REAL_PRECISION(17))
                      : NULL;
    if (s) {
        rc = em_write_file_atomic(jp, s, strlen(s), err);
        free(s);
    } else if (rc == 0) {
        rc = em_err_set(err, EM_ENOMEM, "%s: cannot format the trials", jp);
    }
    em_free(csv);
    em_free(jp);
    return rc;
}

json_t *em__tune_summary_json(const em_tune_result *res, json_t *best, double search_s)
{
    json_t *js = json_object();
    json_object_set_new(js, "best", best);
    json_object_set_new(js, "trials", em_tune_trials_json(res));
    json_object_set_new(js, "ntrials", json_integer((json_int_t)res->ntrials));
    json_object_set_new(js, "rounds", json_integer(res->rounds));
    json_object_set_new(js, "units_run", json_integer((json_int_t)res->units_run));
    json_object_set_new(js, "units_cancelled", json_integer((json_int_t)res->units_cancelled));
    json_object_set_new(js, "search_s", json_real(search_s));
    json_object_set_new(js, "train_s", json_real(search_s));
    return js;
}

static int run(tune_cli *t, em_context *sc, const em_tune_space *space, em_err *err)
{
    em_ml_cli *c = &t->c;
    em_ml_data train, test, valid = {0};
    int rc = em_ml_cli_load(c, sc, &train, &test, err);
    if (rc < 0)
        return rc;
    float *X = NULL, *y = NULL, *xv = NULL, *yv = NULL, *xt = NULL, *yt = NULL;
    size_t n = 0, nv = 0, nt = 0;
    em_tune_result res = {0};
    rc = em_mlp_collect(&train, &X, &y, &n, err);
    if (rc == 0 && t->valid) {
        em_ml_read_opts ro = c->ro;
        ro.dim = train.dim;
        rc = em_ml_read(sc, t->valid, &ro, &valid, err);
        if (rc == 0 && valid.dim != train.dim)
            rc = em_err_set(err, EM_EINVAL, "%s: %u features, the training set has %u",
                            t->valid, valid.dim, train.dim);
        if (rc == 0)
            rc = em_mlp_collect(&valid, &xv, &yv, &nv, err);
    } else if (rc == 0) {
        /* seeded split: a Fisher-Yates permutation, the last valid_frac rows validate */
        uint32_t d = train.dim;
        em_rng g;
        em_rng_seed(&g, t->o.seed ^ 0x76616c6964u);
        float *row = em_xmalloc(4 * (size_t)d);
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)em_rng_below(&g, i);
            memcpy(row, X + (i - 1) * d, 4 * (size_t)d);
            memcpy(X + (i - 1) * d, X + j * d, 4 * (size_t)d);
            memcpy(X + j * d, row, 4 * (size_t)d);
            float ty = y[i - 1];
            y[i - 1] = y[j];
            y[j] = ty;
        }
        em_free(row);
        nv = (size_t)((double)n * t->valid_frac);
        if (nv == 0 || nv >= n)
            rc = em_err_set(err, EM_EINVAL, "%s: %zu rows cannot be split for validation",
                            c->train, n);
        n -= nv;
        xv = em_xmalloc(4 * (nv ? nv : 1) * d);
        yv = em_xmalloc(4 * (nv ? nv : 1));
        memcpy(xv, X + n * d, 4 * nv * d);
        memcpy(yv, y + n, 4 * nv);
    }
    if (rc == 0 && test.rows)
        rc = em_mlp_collect(&test, &xt, &yt, &nt, err);
    float *mu = NULL, *sd = NULL;
    if (rc == 0 && t->standardize) {
        mu = em_xmalloc(4 * (size_t)train.dim);
        sd = em_xmalloc(4 * (size_t)train.dim);
        em_mlp_standardize_fit(X, n, train.dim, mu, sd);
        em_mlp_standardize_apply(X, n, train.dim, mu, sd);
        em_mlp_standardize_apply(xv, nv, train.dim, mu, sd);
        if (xt)
            em_mlp_standardize_apply(xt, nt, train.dim, mu, sd);
    }
    double t0 = em_now_s();
    bool header = false;
    if (rc == 0) {
        t->o.on_unit = em__tune_print_unit;
        t->o.on_round = em__tune_print_round;
        t->o.ud = &header;
        rc = em_tune_run(sc, space, &t->o, X, y, n, train.dim, xv, yv, nv, &res, err);
    }
    double search_s = em_now_s() - t0;
    if (rc == 0) {
        const em_tune_trial *b = &res.trials[res.best];
        const char *mname = t->o.base.regression ? "rmse" : "accuracy";
        printf("best: trial %u (%s): validation %s %.6f; %zu trials in %u round(s), %.3f s\n",
               b->index, b->desc, mname, b->metric, res.ntrials, res.rounds, search_s);
        json_t *best = json_object();
        json_object_set_new(best, "trial", json_integer(b->index));
        json_object_set_new(best, "params", json_string(b->desc));
        json_object_set_new(best, "valid_metric", json_real(b->metric));
        if (xt) {
            openblas_set_num_threads(2);
            /* the test figure through mllib/eval (the same as em_mlp_evaluate's) */
            float *pf = em_xmalloc(4 * nt);
            double *pd = em_xmalloc(8 * nt), *ld = em_xmalloc(8 * nt), tm = NAN;
            em_mlp_predict(res.model, xt, nt, pf, NULL);
            for (size_t i = 0; i < nt; i++) {
                pd[i] = pf[i];
                ld[i] = yt[i];
            }
            if (t->o.base.regression) {
                em_eval_regression r;
                if (em_eval_regression_local(pd, ld, nt, &r, err) == 0)
                    tm = r.rmse;
            } else {
                em_eval_multiclass mc;
                memset(&mc, 0, sizeof mc);
                if (em_eval_multiclass_local(pd, ld, nt, res.model->sizes[res.model->nlayers],
                                             &mc, err) == 0)
                    tm = mc.accuracy;
                em_eval_multiclass_destroy(&mc);
            }
            em_free(pf);
            em_free(pd);
            em_free(ld);
            printf("best model on %s: %s %.6f\n", c->test, mname, tm);
            json_object_set_new(best, t->o.base.regression ? "test_rmse" : "test_accuracy",
                                json_real(tm));
        }
        json_t *js = em__tune_summary_json(&res, best, search_s);
        if (t->results)
            rc = em__tune_write_results(&res, js, t->results, err);
        if (mu)
            em_mlp_fold_standardize(res.model, mu, sd);
        if (rc == 0 && c->save) {
            rc = em_mlp_model_save(res.model, c->save, false, err);
            if (rc == 0)
                printf("saved the best model to %s\n", c->save);
        }
        if (rc == 0)
            em_ml_cli_print_json(c, js);
        else
            json_decref(js);
    }
    em_tune_result_destroy(&res);
    em_free(mu);
    em_free(sd);
    em_free(X);
    em_free(y);
    em_free(xv);
    em_free(yv);
    em_free(xt);
    em_free(yt);
    em_ml_data_release(&valid);
    em_ml_data_release(&test);
    em_ml_data_release(&train);
    return rc;
}

int em_tune_cli_main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "lr") || !strcmp(argv[1], "als")))
        return em__tune_cv_cli_main(!strcmp(argv[1], "lr") ? EM_TUNE_EST_LR : EM_TUNE_EST_ALS,
                                    argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "mlp")) {
        argc--;
        argv++;
    }
    tune_cli t;
    memset(&t, 0, sizeof t);
    em_ml_cli *c = &t.c;
    em_ml_cli_init(c, "tune", FLAGS, EM_ML_LIBSVM, em_tune_cli_help);
    c->ro.dense = true;
    t.valid_frac = 0.2;
    t.o.seed = 1;
    t.o.base.nhidden = 1;
    t.o.base.hidden[0] = 128;
    for (int i = 1; i < argc; i++) {
        int r = em_ml_cli_opt(c, argc, argv, &i);
        if (r == 2)
            return c->status;
        if (r == 1)
            continue;
        r = own_opt(&t, argc, argv, &i);
        if (r == 2)
            return c->status;
        if (r == 0)
            return em_ml_cli_usage(c, "unknown option '%s'", argv[i]);
    }
    if (!t.space)
        return em_ml_cli_usage(c, "--space SPACE is required");
    if (em_ml_cli_finish(c) != 0)
        return c->status;
    em_err err = EM_ERR_INIT;
    em_tune_space space;
    if (em_tune_space_parse(t.space, &space, &err) < 0)
        return em_ml_cli_usage(c, "--%s", err.msg);
    em_context *sc = em_ml_cli_context_new(c, &err);
    int rc = sc ? run(&t, sc, &space, &err) : err.code;
    em_ml_cli_context_free(c, sc);
    em_tune_space_destroy(&space);
    return rc < 0 ? em_ml_cli_fail(c, &err) : 0;
}
