/* mllib/linear/cli.c - `ember ml lr` and `ember ml svm`: load (mllib/ml_cli.h), fit on the
 * engine, evaluate on --test (else --train) with mllib/eval, print a summary and, with
 * --json, one JSON line; optionally save the model. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mllib/eval/eval.h"
#include "mllib/linear/linear.h"
#include "mllib/ml_cli.h"
#include "mllib/mllib.h"

static void algo_help(FILE *f, bool svm)
{
    fprintf(f, "  --reg-param R         regularization strength (default %s)\n"
               "  --elastic-net A       0 = L2 (default), 1 = L1 (OWL-QN), between: both\n"
               "  --max-iter N          iterations at most (default 100)\n"
               "  --tol T               L-BFGS: relative objective decrease to stop (default\n"
               "                        1e-6); SGD: relative coefficient change (1e-3)\n"
               "  --grad-tol G          L-BFGS: also stop once the gradient's norm is G times\n"
               "                        its norm at the start (liblinear's rule; default off)\n"
               "  --no-intercept        fit no intercept (--fit-intercept: the default)\n"
               "  --no-standardize      do not scale features by their standard deviation\n"
               "                        (--standardize: the default, as Spark)\n"
               "  --threshold T         %s\n"
               "  --solver S            lbfgs (default; OWL-QN with L1) or sgd\n"
               "  --step-size S         sgd: initial step (default 1; step / sqrt(t))\n"
               "  --batch-fraction F    sgd: share of rows per iteration (default 1)\n"
               "  --seed S              sgd: sampling seed (default 1)\n",
            svm ? "0.01" : "0",
            svm ? "predict 1 when the margin is above T (default 0)"
                : "predict 1 when P(1) is above T (default 0.5)");
    if (!svm)
        fputs("  --family F            auto (default), binomial or multinomial\n", f);
}

void em_lr_cli_help(FILE *f)
{
    fputs("Usage: ember ml lr --train PATH [--test PATH] [options]\n"
          "\n"
          "Logistic regression (binary or multinomial) on the engine: L-BFGS on the driver,\n"
          "losses and gradients of every partition by BLAS, summed by tree aggregation.\n"
          "JSON: accuracy, auc, log_loss (binary), train_s, total_s, iterations, ...\n"
          "\n",
          f);
    em_ml_cli c;
    em_ml_cli_init(&c, "lr", EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM,
                   EM_ML_LIBSVM, NULL);
    em_ml_cli_common_help(&c, f);
    algo_help(f, false);
}

void em_svm_cli_help(FILE *f)
{
    fputs("Usage: ember ml svm --train PATH [--test PATH] [options]\n"
          "\n"
          "Linear SVM on the engine, labels 0/1: squared hinge loss by L-BFGS (liblinear's\n"
          "L2-loss SVC, -s 2) or hinge loss by mini-batch SGD (--solver sgd, Spark's\n"
          "SVMWithSGD). Scores are raw margins. JSON: accuracy, auc, train_s, total_s, ...\n"
          "\n",
          f);
    em_ml_cli c;
    em_ml_cli_init(&c, "svm", EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM,
                   EM_ML_LIBSVM, NULL);
    em_ml_cli_common_help(&c, f);
    algo_help(f, true);
}

/* The command's own flags: 1 taken, 0 unknown, 2 bad value (printed). */
static int own_opt(em_ml_cli *c, em_linear_params *p, bool *thr_set, int argc, char **argv,
                   int *i)
{
    static const char *const solvers[] = {"lbfgs", "sgd", NULL};
    static const char *const families[] = {"auto", "binomial", "multinomial", NULL};
    const char *a = argv[*i], *v;
    bool bad = false, ok = true;
    int ch;
    if (!strcmp(a, "--no-intercept") || !strcmp(a, "--fit-intercept"))
        return p->no_intercept = !strcmp(a, "--no-intercept"), 1;
    if (!strcmp(a, "--no-standardize") || !strcmp(a, "--standardize"))
        return p->no_standardize = !strcmp(a, "--no-standardize"), 1;
    if ((v = em_ml_cli_value(c, "--reg-param", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--reg-param", v, 0, 1e300, &p->reg_param);
    else if (!bad && (v = em_ml_cli_value(c, "--elastic-net", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--elastic-net", v, 0, 1, &p->elastic_net);
    else if (!bad && (v = em_ml_cli_value(c, "--max-iter", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--max-iter", v, 1, 1000000, &p->max_iter);
    else if (!bad && (v = em_ml_cli_value(c, "--tol", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--tol", v, 1e-300, 1, &p->tol);
    else if (!bad && (v = em_ml_cli_value(c, "--grad-tol", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--grad-tol", v, 0, 1, &p->grad_tol);
    else if (!bad && (v = em_ml_cli_value(c, "--threshold", argc, argv, i, &bad)))
        ok = *thr_set = em_ml_cli_f64(c, "--threshold", v, !strcmp(c->algo, "lr") ? 0 : -1e300,
                           !strcmp(c->algo, "lr") ? 0.999999999 : 1e300, &p->threshold);
    else if (!bad && (v = em_ml_cli_value(c, "--solver", argc, argv, i, &bad))) {
        if ((ok = em_ml_cli_choice(c, "--solver", v, solvers, &ch)))
            p->solver = ch ? EM_LINEAR_SGD : EM_LINEAR_LBFGS;
    } else if (!bad && !strcmp(c->algo, "lr") &&
               (v = em_ml_cli_value(c, "--family", argc, argv, i, &bad))) {
        if ((ok = em_ml_cli_choice(c, "--family", v, families, &ch)))
            p->family = (em_logistic_family)ch;
    } else if (!bad && (v = em_ml_cli_value(c, "--step-size", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--step-size", v, 1e-300, 1e300, &p->step_size);
    else if (!bad && (v = em_ml_cli_value(c, "--batch-fraction", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--batch-fraction", v, 1e-9, 1, &p->batch_fraction);
    else if (!bad && (v = em_ml_cli_value(c, "--seed", argc, argv, i, &bad)))
        ok = em_ml_cli_u64(c, "--seed", v, &p->seed);
    else if (!bad)
        return 0;
    return bad || !ok ? 2 : 1;
}

static void progress(void *ud, uint32_t it, double f, double secs)
{
    const em_ml_cli *c = ud;
    fprintf(stderr, "ember ml %s: iteration %u: objective %.10g, %.3f s\n", c->algo, it, f,
            secs);
}

/* Quality figures of m on d into obj. */
static int evaluate(em_context *sc, const em_linear_model *m, const em_ml_data *d, json_t *obj,
                    em_err *err)
{
    em_rdd *pairs;
    int rc = em_linear_predict_pairs(sc, m, d, &pairs, err);
    if (rc < 0)
        return rc;
    if (m->kind == EM_LINEAR_MULTINOMIAL) {
        em_eval_multiclass mc = {0};
        if ((rc = em_eval_multiclass_rdd(pairs, m->rows, &mc, err)) == 0)
            em_eval_multiclass_json(&mc, obj);
        em_eval_multiclass_destroy(&mc);
    } else {
        em_eval_binary b;
        bool prob = m->kind == EM_LINEAR_LOGISTIC;
        if ((rc = em_eval_binary_rdd(pairs, m->threshold, prob, &b, err)) == 0)
            em_eval_binary_json(&b, obj);
    }
    em_rdd_release(pairs);
    return rc;
}

static void print_model(const em_ml_cli *c, const em_linear_model *m, const em_ml_data *tr,
                        json_t *obj)
{
    json_t *s = m->summary;
    printf("%s: %u x %u coefficients, %llu training rows, %lld iterations (%lld passes), "
           "objective %.10g%s, %.3f s\n", c->algo, m->rows, m->dim,
           (unsigned long long)tr->nrows,
           (long long)json_integer_value(json_object_get(s, "iterations")),
           (long long)json_integer_value(json_object_get(s, "passes")),
           json_number_value(json_object_get(s, "objective")),
           json_is_true(json_object_get(s, "converged")) ? " (converged)" : "",
           json_number_value(json_object_get(s, "train_s")));
    json_t *a = json_object_get(obj, "accuracy"), *u = json_object_get(obj, "auc");
    printf("%s: accuracy %.6f", c->test ? "test" : "train", json_number_value(a));
    if (u)
        printf(", auc %.6f", json_number_value(u));
    if (json_object_get(obj, "log_loss"))
        printf(", log_loss %.6f", json_number_value(json_object_get(obj, "log_loss")));
    printf("\n");
}

/* Summary JSON: the model's training facts, sizes, and (small models) coefficients. */
static json_t *summary_json(const em_linear_model *m, const em_ml_data *tr)
{
    json_t *o = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(m->summary, k, v) if (strcmp(k, "objective_history"))
        json_object_set(o, k, v);
    json_object_set_new(o, "rows", json_integer((json_int_t)tr->nrows));
    json_object_set_new(o, "features", json_integer(m->dim));
    json_object_set_new(o, "classes", json_integer(m->rows == 1 ? 2 : m->rows));
    if ((size_t)m->rows * m->dim <= 100) {
        json_t *cf = json_array(), *ic = json_array();
        for (size_t i = 0; i < (size_t)m->rows * m->dim; i++)
            json_array_append_new(cf, json_real(m->coef[i]));
        for (uint32_t r = 0; r < m->rows; r++)
            json_array_append_new(ic, json_real(m->intercept[r]));
        json_object_set_new(o, "coefficients", cf);
        json_object_set_new(o, m->rows == 1 ? "intercept" : "intercepts",
                            m->rows == 1 ? json_real(m->intercept[0]) : ic);
        if (m->rows == 1)
            json_decref(ic);
    }
    return o;
}

/* thr_set: --threshold was given (0 is a valid LR threshold, but 0 in the parameters means
 * the default 0.5), so the model takes p->threshold as it is. */
static int run(em_ml_cli *c, em_context *sc, const em_linear_params *p, bool svm,
               bool thr_set, em_err *err)
{
    em_ml_data tr, te;
    em_linear_model *m = NULL;
    int rc = em_ml_cli_load(c, sc, &tr, &te, err);
    if (rc < 0)
        return rc;
    rc = svm ? em_svm_train(sc, &tr, p, &m, err) : em_logistic_train(sc, &tr, p, &m, err);
    if (rc == 0 && thr_set)
        m->threshold = p->threshold;
    json_t *obj = rc == 0 ? summary_json(m, &tr) : NULL;
    if (rc == 0)
        rc = evaluate(sc, m, te.rows ? &te : &tr, obj, err);
    if (rc == 0 && c->save)
        rc = em_linear_model_save(m, c->save, err);
    if (rc == 0) {
        print_model(c, m, &tr, obj);
        em_ml_cli_print_json(c, obj);
    } else
        json_decref(obj);
    em_linear_model_free(m);
    em_ml_data_release(&tr);
    em_ml_data_release(&te);
    return rc;
}

static int cli_main(int argc, char **argv, bool svm)
{
    em_ml_cli c;
    em_linear_params p = {.reg_param = svm ? 0.01 : 0, .seed = 1};
    bool thr_set = false;
    em_ml_cli_init(&c, svm ? "svm" : "lr",
                   EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM,
                   EM_ML_LIBSVM, svm ? em_svm_cli_help : em_lr_cli_help);
    for (int i = 1; i < argc; i++) {
        int r = em_ml_cli_opt(&c, argc, argv, &i);
        if (r == 1)
            continue;
        if (r == 2)
            return c.status;
        if ((r = own_opt(&c, &p, &thr_set, argc, argv, &i)) == 1)
            continue;
        if (r == 2)
            return c.status;
        return em_ml_cli_usage(&c, "unknown option '%s'", argv[i]);
    }
    if (em_ml_cli_finish(&c) != 0)
        return c.status;
    if (c.verbose) {
        p.progress = progress;
        p.progress_ud = &c;
    }
    em_err err = EM_ERR_INIT;
    em_context *sc = em_ml_cli_context_new(&c, &err);
    if (!sc)
        return em_ml_cli_fail(&c, &err);
    int rc = run(&c, sc, &p, svm, thr_set, &err);
    em_ml_cli_context_free(&c, sc);
    return rc < 0 ? em_ml_cli_fail(&c, &err) : 0;
}

int em_lr_cli_main(int argc, char **argv)
{
    return cli_main(argc, argv, false);
}

int em_svm_cli_main(int argc, char **argv)
{
    return cli_main(argc, argv, true);
}
