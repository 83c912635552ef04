/* mllib/tuning/cli_cv.c - `ember ml tune lr` and `ember ml tune als` (also spelled `ember
 * tune lr|als`): k-fold cross-validated searches (cv.c). The same live table, --results
 * files and --json line as the MLP search; the best configuration is then refitted on the
 * whole training set, scored on --test when given, and saved with --save. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/eval/eval.h"
#include "mllib/tuning/tuning_int.h"

typedef struct cv_cli {
    em_ml_cli c;
    em_tune_estimator est;
    em_tune_opts o;
    const char *space, *results, *ratings, *rtest;
    uint32_t folds;
    int metric;                  /* em_tune_lr_metric */
    em_linear_params lr;         /* LR base values */
    em_als_params als;           /* ALS base values */
    em_ratings_read_opts rro;
} cv_cli;

static const char *const metric_names[] = {"accuracy", "logloss", "auc", NULL};

void em__tune_cv_cli_help(em_tune_estimator est, FILE *f)
{
    em_ml_cli c;
    bool lr = est == EM_TUNE_EST_LR;
    em_ml_cli_init(&c, lr ? "tune lr" : "tune als",
                   lr ? EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM
                      : EM_ML_CLI_SAVE,
                   EM_ML_AUTO, NULL);
    if (lr)
        fputs("Usage: ember ml tune lr --train PATH --space SPACE [--folds K] [options]\n"
              "\n"
              "Cross-validated search of logistic regression: every (configuration, fold)\n"
              "is one distributed fit (em_logistic_train) on the other folds, scored on\n"
              "the fold; the metric is the mean over the folds. The best configuration is\n"
              "refitted on all of --train, scored on --test and saved with --save.\n"
              "SPACE: key=v1,v2;key=... with keys reg (regularization), elastic (0 = L2,\n"
              "1 = L1) and iter (L-BFGS iterations).\n"
              "\n",
              f);
    else
        fputs("Usage: ember ml tune als --ratings PATH --space SPACE [--folds K] [options]\n"
              "\n"
              "Cross-validated search of ALS: every (configuration, fold) is one\n"
              "distributed ALS training on the other folds' ratings, scored by the RMSE\n"
              "of the fold's ratings (pairs with an unseen user or item left out); the\n"
              "metric is the mean over the folds. The best configuration is retrained on\n"
              "all ratings, scored on --test and saved with --save.\n"
              "SPACE: key=v1,v2;key=... with keys rank, lambda, iter and alpha.\n"
              "\n"
              "  --ratings PATH        the ratings (tsv, csv, movielens or netflix layout)\n"
              "  --test PATH           held-out ratings scored by the refitted model\n"
              "  --format F            ratings layout: auto (default), tsv, csv, movielens,\n"
              "                        netflix\n"
              "  --implicit            implicit feedback (Hu, Koren & Volinsky)\n",
              f);
    if (lr)
        em_ml_cli_common_help(&c, f);
    else
        fputs("  --master M            local[N], local-cluster[E,C] or ember://HOST:PORT\n"
              "  --save DIR            save the refitted best model (DIR must not exist)\n"
              "  --json                print a JSON summary as the last line of stdout\n",
              f);
    fputs("  --space SPACE         the search space (required)\n"
          "  --folds K             cross-validation folds, 2..20 (default 3)\n"
          "  --search S            grid (default), random:N, halving or halving:ETA\n"
          "                        (halving sets iter itself: leave it out of the space)\n"
          "  --trial-budget S      cancel a fit running longer than S seconds (its\n"
          "                        configuration is dropped; default: no budget)\n"
          "  --iter N              iterations of configurations without an iter key\n"
          "                        (halving: of the last round; default 100 LR, 10 ALS)\n"
          "  --seed S              fold split and random search draws (default 1)\n"
          "  --results PREFIX      write PREFIX.csv and PREFIX.json (the trials table)\n",
          f);
    if (lr)
        fputs("  --metric M            accuracy (default), logloss or auc (binary labels)\n"
              "  --reg R, --elastic A  values of configurations without those keys (0)\n",
              f);
    else
        fputs("  --rank R, --lambda L  values of configurations without those keys (10, 0.1)\n",
              f);
}

static void help_lr(FILE *f)
{
    em__tune_cv_cli_help(EM_TUNE_EST_LR, f);
}

static void help_als(FILE *f)
{
    em__tune_cv_cli_help(EM_TUNE_EST_ALS, f);
}

/* ALS's own data flags, taken before the common ones (--test and --format mean ratings). */
static int als_data_opt(cv_cli *t, int argc, char **argv, int *i)
{
    em_ml_cli *c = &t->c;
    bool bad = false;
    const char *v;
    if (!strcmp(argv[*i], "--implicit"))
        return t->als.implicit = true, 1;
    if ((v = em_ml_cli_value(c, "--ratings", argc, argv, i, &bad)))
        t->ratings = c->train = v;
    else if ((v = em_ml_cli_value(c, "--test", argc, argv, i, &bad)))
        t->rtest = v;
    else if ((v = em_ml_cli_value(c, "--format", argc, argv, i, &bad))) {
        int f = em_ratings_format_parse(v);
        if (f < 0) {
            em_ml_cli_usage(c, "--format: unknown '%s' (auto, tsv, csv, movielens, netflix)",
                            v);
            return 2;
        }
        t->rro.format = (em_ratings_format)f;
    } else if ((v = em_ml_cli_value(c, "--rank", argc, argv, i, &bad))) {
        uint32_t r;
        if (!em_ml_cli_u32(c, "--rank", v, 1, 1024, &r))
            return 2;
        t->als.rank = (int)r;
    } else if ((v = em_ml_cli_value(c, "--lambda", argc, argv, i, &bad))) {
        if (!em_ml_cli_f64(c, "--lambda", v, 1e-12, 1e6, &t->als.lambda))
            return 2;
    }
    return bad ? 2 : v ? 1 : 0;
}

static int own_opt(cv_cli *t, int argc, char **argv, int *i)
{
    em_ml_cli *c = &t->c;
    const char *v;
    bool bad = false, ok = true;
    uint32_t it = 0;
    if ((v = em_ml_cli_value(c, "--space", argc, argv, i, &bad)))
        t->space = v;
    else if ((v = em_ml_cli_value(c, "--results", argc, argv, i, &bad)))
        t->results = v;
    else if ((v = em_ml_cli_value(c, "--folds", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--folds", v, 2, EM_TUNE_MAX_FOLDS, &t->folds);
    else if ((v = em_ml_cli_value(c, "--seed", argc, argv, i, &bad)))
        ok = em_ml_cli_u64(c, "--seed", v, &t->o.seed);
    else if ((v = em_ml_cli_value(c, "--iter", argc, argv, i, &bad))) {
        ok = em_ml_cli_u32(c, "--iter", v, 1, 100000, &it);
        t->lr.max_iter = it;
        t->als.iterations = (int)it;
    } else if (t->est == EM_TUNE_EST_LR &&
               (v = em_ml_cli_value(c, "--metric", argc, argv, i, &bad)))
        ok = em_ml_cli_choice(c, "--metric", v, metric_names, &t->metric);
    else if (t->est == EM_TUNE_EST_LR && (v = em_ml_cli_value(c, "--reg", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--reg", v, 0, 1e6, &t->lr.reg_param);
    else if (t->est == EM_TUNE_EST_LR &&
             (v = em_ml_cli_value(c, "--elastic", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--elastic", v, 0, 1, &t->lr.elastic_net);
    else
        v = em__tune_cli_search_opt(c, &t->o, argc, argv, i, &bad, &ok);
    if (bad || !ok)
        return 2;
    return v ? 1 : 0;
}

static json_t *best_json(const em_tune_result *res)
{
    const em_tune_trial *b = &res->trials[res->best];
    json_t *best = json_object();
    json_object_set_new(best, "trial", json_integer(b->index));
    json_object_set_new(best, "params", json_string(b->desc));
    json_object_set_new(best, "valid_metric", json_real(b->metric));
    return best;
}

/* Refits the best LR configuration on all of train; scores test; saves. */
static int lr_refit(cv_cli *t, em_context *sc, const em_tune_trial *b, const em_ml_data *train,
                    const em_ml_data *test, json_t *best, em_err *err)
{
    em_linear_params p = b->lr;
    p.seed = t->o.seed;
    em_linear_model *m = NULL;
    int rc = em_logistic_train(sc, train, &p, &m, err);
    if (rc == 0 && test->rows) {
        em_rdd *pairs = NULL;
        rc = em_linear_predict_pairs(sc, m, test, &pairs, err);
        if (rc == 0 && m->kind == EM_LINEAR_LOGISTIC) {
            em_eval_binary eb;
            if ((rc = em_eval_binary_rdd(pairs, m->threshold, true, &eb, err)) == 0) {
                json_object_set_new(best, "test_accuracy", json_real(eb.accuracy));
                json_object_set_new(best, "test_auc", json_real(eb.auc_roc));
                json_object_set_new(best, "test_log_loss", json_real(eb.log_loss));
                printf("best model on %s: accuracy %.6f, AUC %.6f, log-loss %.6f\n",
                       t->c.test, eb.accuracy, eb.auc_roc, eb.log_loss);
            }
        } else if (rc == 0) {
            em_eval_multiclass mc;
            memset(&mc, 0, sizeof mc);
            if ((rc = em_eval_multiclass_rdd(pairs, m->rows, &mc, err)) == 0) {
                json_object_set_new(best, "test_accuracy", json_real(mc.accuracy));
                printf("best model on %s: accuracy %.6f\n", t->c.test, mc.accuracy);
            }
            em_eval_multiclass_destroy(&mc);
        }
        em_rdd_release(pairs);
    }
    if (rc == 0 && t->c.save && (rc = em_linear_model_save(m, t->c.save, err)) == 0)
        printf("saved the refitted best model to %s\n", t->c.save);
    em_linear_model_free(m);
    return rc;
}

static int run_lr(cv_cli *t, em_context *sc, const em_tune_space *space, em_tune_result *res,
                  json_t **best, em_err *err)
{
    em_ml_data train = {0}, test = {0};
    int rc = em_ml_cli_load(&t->c, sc, &train, &test, err);
    if (rc == 0)
        rc = em_tune_lr_cv(sc, space, &t->o, &t->lr, (em_tune_lr_metric)t->metric, t->folds,
                           &train, res, err);
    if (rc == 0) {
        const em_tune_trial *b = &res->trials[res->best];
        printf("best: trial %u (%s): %d-fold %s %.6f\n", b->index, b->desc, (int)t->folds,
               metric_names[t->metric], b->metric);
        *best = best_json(res);
        rc = lr_refit(t, sc, b, &train, &test, *best, err);
    }
    em_ml_data_release(&test);
    em_ml_data_release(&train);
    return rc;
}

static int run_als(cv_cli *t, em_context *sc, const em_tune_space *space, em_tune_result *res,
                   json_t **best, em_err *err)
{
    em_idmap *users = em_idmap_new(), *items = em_idmap_new();
    em_ratings tr, te;
    em_ratings_init(&tr);
    em_ratings_init(&te);
    int rc = users && items ? 0 : em_err_set(err, EM_ENOMEM, "tune als: id maps");
    if (rc == 0)
        rc = em_ratings_read(t->ratings, &t->rro, users, items, &tr, err);
    if (rc == 0 && t->rtest)
        rc = em_ratings_read(t->rtest, &t->rro, users, items, &te, err);
    int32_t nu = users ? em_idmap_size(users) : 0, ni = items ? em_idmap_size(items) : 0;
    if (rc == 0)
        rc = em_tune_als_cv(sc, space, &t->o, &t->als, t->folds, tr.recs, tr.n, nu, ni, res,
                            err);
    em_als_model *m = NULL;
    if (rc == 0) {
        const em_tune_trial *b = &res->trials[res->best];
        printf("best: trial %u (%s): %d-fold RMSE %.6f\n", b->index, b->desc, (int)t->folds,
               b->metric);
        *best = best_json(res);
        em_als_params p = b->als;
        p.seed = t->o.seed;
        rc = em_als_train(sc, tr.recs, tr.n, nu, ni, &p, &m, err);
    }
    if (rc == 0 && te.n) {
        em_als_metrics met;
        em_als_evaluate(m, te.recs, te.n, EM_COLD_DROP, &met);
        json_object_set_new(*best, "test_rmse", json_real(met.rmse));
        json_object_set_new(*best, "test_pairs", json_integer((json_int_t)met.n));
        printf("best model on %s: RMSE %.6f (%llu pairs, %llu cold)\n", t->rtest, met.rmse,
               (unsigned long long)met.n, (unsigned long long)met.cold);
    }
    if (rc == 0 && t->c.save && (rc = em_als_model_save(m, t->c.save, users, items, err)) == 0)
        printf("saved the retrained best model to %s\n", t->c.save);
    em_als_model_free(m);
    em_ratings_destroy(&tr);
    em_ratings_destroy(&te);
    em_idmap_free(users);
    em_idmap_free(items);
    return rc;
}

static int parse(cv_cli *t, int argc, char **argv)
{
    em_ml_cli *c = &t->c;
    for (int i = 1; i < argc; i++) {
        int r = t->est == EM_TUNE_EST_ALS ? als_data_opt(t, argc, argv, &i) : 0;
        if (r == 0)
            r = em_ml_cli_opt(c, argc, argv, &i);
        if (r == 0)
            r = own_opt(t, argc, argv, &i);
        if (r == 2)
            return c->status ? c->status : -1;   /* -1: --help printed */
        if (r == 0)
            return em_ml_cli_usage(c, "unknown option '%s'", argv[i]);
    }
    if (!t->space)
        return em_ml_cli_usage(c, "--space SPACE is required");
    if (t->est == EM_TUNE_EST_ALS && !t->ratings)
        return em_ml_cli_usage(c, "--ratings PATH is required");
    return em_ml_cli_finish(c) != 0 ? c->status : 0;
}

int em__tune_cv_cli_main(em_tune_estimator est, int argc, char **argv)
{
    cv_cli t;
    memset(&t, 0, sizeof t);
    em_ml_cli *c = &t.c;
    bool lr = est == EM_TUNE_EST_LR;
    em_ml_cli_init(c, lr ? "tune lr" : "tune als",
                   lr ? EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM
                      : EM_ML_CLI_SAVE,
                   lr ? EM_ML_AUTO : EM_ML_LIBSVM, lr ? help_lr : help_als);
    t.est = est;
    t.folds = 3;
    t.o.seed = 1;
    t.als.rank = 10;
    t.als.lambda = 0.1;
    int st = parse(&t, argc, argv);
    if (st != 0)
        return st < 0 ? 0 : st;
    em_err err = EM_ERR_INIT;
    em_tune_space space;
    if (em_tune_space_parse_est(est, t.space, &space, &err) < 0)
        return em_ml_cli_usage(c, "--%s", err.msg);
    em_context *sc = em_ml_cli_context_new(c, &err);
    em_tune_result res = {0};
    json_t *best = NULL;
    bool header = false;
    t.o.on_unit = em__tune_print_unit;
    t.o.on_round = em__tune_print_round;
    t.o.ud = &header;
    double t0 = em_now_s();
    int rc = !sc ? err.code
             : lr ? run_lr(&t, sc, &space, &res, &best, &err)
                  : run_als(&t, sc, &space, &res, &best, &err);
    if (rc == 0) {
        json_t *js = em__tune_summary_json(&res, best, em_now_s() - t0);
        best = NULL;
        json_object_set_new(js, "folds", json_integer(t.folds));
        if (t.results)
            rc = em__tune_write_results(&res, js, t.results, &err);
        if (rc == 0)
            em_ml_cli_print_json(c, js);
        else
            json_decref(js);
    }
    json_decref(best);
    em_tune_result_destroy(&res);
    em_ml_cli_context_free(c, sc);
    em_tune_space_destroy(&space);
    return rc < 0 ? em_ml_cli_fail(c, &err) : 0;
}
