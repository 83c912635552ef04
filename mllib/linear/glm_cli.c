/* mllib/linear/glm_cli.c - `ember ml linreg` and `ember ml glm`: load (mllib/ml_cli.h),
 * fit (linreg.c, glm.c), evaluate the predictions on --test (else --train) with
 * mllib/eval's regression metrics, print the coefficients (GLM: with standard errors and z
 * or t values, as R's summary.glm), save with --save; with --json the last stdout line is
 * {rmse, mse, mae, r2, test_count, coefficients, intercept, train_s, total_s, ...} and, for
 * glm, deviance, null_deviance, aic, dispersion, std_errors, iterations, converged. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mllib/eval/eval.h"
#include "mllib/linear/glm.h"
#include "mllib/ml_cli.h"

/* Coefficients printed in the text summary (all of them go to --json and --save). */
#define PRINT_MAX 50

void em_linreg_cli_help(FILE *f)
{
    em_ml_cli c;
    em_ml_cli_init(&c, "linreg", EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM,
                   EM_ML_LIBSVM, NULL);
    fputs("Usage: ember ml linreg --train PATH [options]\n"
          "\n"
          "Least-squares linear regression on the engine (Spark's LinearRegression):\n"
          "minimizes 1/(2n) ||y - b0 - Xb||^2 + lambda (alpha ||b||_1 + (1-alpha)/2 ||b||^2).\n"
          "\n",
          f);
    em_ml_cli_common_help(&c, f);
    fputs("  --reg-param L         lambda >= 0 (default 0)\n"
          "  --elastic-net A       alpha in [0, 1]: 0 ridge (default), 1 lasso\n"
          "  --solver S            auto (default: normal up to 4096 features), normal\n"
          "                        (Gramian + Cholesky / coordinate descent) or l-bfgs\n"
          "  --fit-intercept       fit an intercept (default)\n"
          "  --no-intercept        fit through the origin\n"
          "  --standardize         penalize the coefficients of standardized features\n"
          "  --max-iter N          l-bfgs iterations / 10 x coordinate-descent sweeps (100)\n"
          "  --tol T               l-bfgs relative decrease (1e-6) / coordinate descent\n"
          "                        largest relative move (1e-10)\n",
          f);
}

void em_glm_cli_help(FILE *f)
{
    em_ml_cli c;
    em_ml_cli_init(&c, "glm", EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM,
                   EM_ML_LIBSVM, NULL);
    fputs("Usage: ember ml glm --train PATH --family F [options]\n"
          "\n"
          "Generalized linear model fitted by IRLS on the engine (R's glm, statsmodels' GLM):\n"
          "coefficients, standard errors, deviance, AIC.\n"
          "\n",
          f);
    em_ml_cli_common_help(&c, f);
    fputs("  --family F            gaussian, binomial, poisson or gamma\n"
          "  --link L              identity, log, logit or inverse (default: canonical;\n"
          "                        gaussian/gamma: identity, log, inverse; binomial: logit,\n"
          "                        log; poisson: log, identity)\n"
          "  --reg-param L         L2 penalty lambda >= 0 (default 0)\n"
          "  --fit-intercept       fit an intercept (default)\n"
          "  --no-intercept        fit through the origin\n"
          "  --max-iter N          IRLS iterations at most (default 25)\n"
          "  --tol T               relative deviance change to stop (default 1e-8); the\n"
          "                        last step must also move no coefficient by more than\n"
          "                        sqrt(T) max(1, largest |coefficient|)\n",
          f);
}

/* Prediction pairs on eval (the test set, else the training set) into the JSON. */
static int evaluate(em_context *sc, const em_linear_model *m, const em_ml_data *eval, json_t *js,
                    em_eval_regression *ev, em_err *err)
{
    em_rdd *pairs = NULL;
    int rc = em_linear_predict_pairs(sc, m, eval, &pairs, err);
    if (rc == 0)
        rc = em_eval_regression_rdd(pairs, ev, err);
    if (pairs)
        em_rdd_release(pairs);
    if (rc == 0)
        em_eval_regression_json(ev, js);
    return rc;
}

static json_t *array_of(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

/* The coefficient table: name, estimate and (GLM) std. error and z/t value. */
static void print_coefs(const em_linear_model *m, const json_t *se, bool intercept)
{
    bool t =
        m->kind == EM_LINEAR_GLM && (m->family == EM_GLM_GAUSSIAN || m->family == EM_GLM_GAMMA);
    if (se)
        printf("  %-12s %15s %15s %10s\n", "", "estimate", "std. error", t ? "t" : "z");
    size_t row = 0;
    if (intercept) {
        double e = se ? json_real_value(json_array_get(se, 0)) : NAN;
        if (se)
            printf("  %-12s %15.8g %15.8g %10.4f\n", "(intercept)", m->intercept[0], e,
                   m->intercept[0] / e);
        else
            printf("  %-12s %15.8g\n", "(intercept)", m->intercept[0]);
        row = 1;
    }
    for (uint32_t j = 0; j < m->dim && j < PRINT_MAX; j++) {
        char name[24];
        snprintf(name, sizeof name, "x%u", j + 1);
        double e = se ? json_real_value(json_array_get(se, row + j)) : NAN;
        if (se)
            printf("  %-12s %15.8g %15.8g %10.4f\n", name, m->coef[j], e, m->coef[j] / e);
        else
            printf("  %-12s %15.8g\n", name, m->coef[j]);
    }
    if (m->dim > PRINT_MAX)
        printf("  ... %u more (--json or --save for all)\n", m->dim - PRINT_MAX);
}

/* Copies the summary's figures a command prints under its own names. */
static void copy_fields(json_t *js, const json_t *s, const char *const *keys)
{
    for (; *keys; keys++) {
        json_t *v = json_object_get(s, *keys);
        if (v)
            json_object_set(js, *keys, v);
    }
}

typedef struct run_args {
    em_ml_cli *c;
    bool glm;
    em_linreg_params lp;
    em_glm_params gp;
} run_args;

static int run(run_args *a)
{
    em_ml_cli *c = a->c;
    em_err err = EM_ERR_INIT;
    em_ml_data train, test;
    em_linear_model *m = NULL;
    int st = 1;
    em_context *sc = em_ml_cli_context_new(c, &err);
    if (!sc)
        return em_ml_cli_fail(c, &err);
    if (em_ml_cli_load(c, sc, &train, &test, &err) < 0) {
        em_ml_cli_context_free(c, sc);
        return em_ml_cli_fail(c, &err);
    }
    double t0 = em_now_s();
    int rc = a->glm ? em_glm_train(sc, &train, &a->gp, &m, &err)
                    : em_linreg_train(sc, &train, &a->lp, &m, &err);
    double train_s = em_now_s() - t0;
    json_t *js = json_object();
    em_eval_regression ev;
    if (rc == 0)
        rc = evaluate(sc, m, test.rows ? &test : &train, js, &ev, &err);
    if (rc == 0 && c->save)
        rc = em_linear_model_save(m, c->save, &err);
    if (rc < 0) {
        st = em_ml_cli_fail(c, &err);
        json_decref(js);
        goto out;
    }
    const json_t *s = m->summary;
    bool icpt = json_is_true(json_object_get(s, "fit_intercept"));
    printf("%s: %llu rows, %u features, %s, %s%s in %.3f s\n", c->algo,
           (unsigned long long)train.nrows, train.dim,
           a->glm ? json_string_value(json_object_get(s, "family"))
                  : json_string_value(json_object_get(s, "solver")),
           a->glm ? "link " : "", a->glm ? json_string_value(json_object_get(s, "link")) : "",
           train_s);
    print_coefs(m, json_object_get(s, "std_errors"), icpt);
    if (a->glm) {
        printf("deviance %.10g on %.0f degrees of freedom (null deviance %.10g), dispersion "
               "%.8g\nAIC %.10g, IRLS iterations %lld%s\n",
               json_real_value(json_object_get(s, "deviance")),
               json_real_value(json_object_get(s, "df_residual")),
               json_real_value(json_object_get(s, "null_deviance")),
               json_real_value(json_object_get(s, "dispersion")),
               json_real_value(json_object_get(s, "aic")),
               (long long)json_integer_value(json_object_get(s, "iterations")),
               json_is_true(json_object_get(s, "converged")) ? "" : " (NOT converged)");
        if (!json_is_true(json_object_get(s, "converged")))
            fprintf(stderr,
                    "ember ml glm: warning: IRLS did not converge in %lld "
                    "iterations\n",
                    (long long)json_integer_value(json_object_get(s, "iterations")));
    }
    printf("%s: rmse %.6g, mae %.6g, r2 %.6f (%llu rows)\n", test.rows ? "test" : "train", ev.rmse,
           ev.mae, ev.r2, (unsigned long long)ev.count);
    if (c->save)
        printf("model saved to %s\n", c->save);
    static const char *const lin_keys[] = {"solver", "iterations", "converged", "objective", NULL};
    static const char *const glm_keys[] = {"family",   "link",          "iterations", "converged",
                                           "deviance", "null_deviance", "dispersion", "aic",
                                           "llf",      "df_residual",   "std_errors", NULL};
    copy_fields(js, s, a->glm ? glm_keys : lin_keys);
    json_object_set_new(js, "coefficients", array_of(m->coef, m->dim));
    json_object_set_new(js, "intercept", json_real(m->intercept[0]));
    json_object_set_new(js, "train_rows", json_integer((json_int_t)train.nrows));
    json_object_set_new(js, "train_s", json_real(train_s));
    em_ml_cli_print_json(c, js);
    st = 0;
out:
    em_linear_model_free(m);
    em_ml_data_release(&train);
    em_ml_data_release(&test);
    em_ml_cli_context_free(c, sc);
    return st;
}

/* The flags both commands take; 1 taken, 0 not ours, 2 exit. */
static int shared_opt(run_args *a, int argc, char **argv, int *i, double *reg, uint32_t *iters,
                      double *tol, bool *no_icpt)
{
    em_ml_cli *c = a->c;
    const char *v;
    bool bad = false;
    if (!strcmp(argv[*i], "--fit-intercept"))
        return *no_icpt = false, 1;
    if (!strcmp(argv[*i], "--no-intercept"))
        return *no_icpt = true, 1;
    if ((v = em_ml_cli_value(c, "--reg-param", argc, argv, i, &bad)))
        return em_ml_cli_f64(c, "--reg-param", v, 0, 1e300, reg) ? 1 : 2;
    if (!bad && (v = em_ml_cli_value(c, "--max-iter", argc, argv, i, &bad)))
        return em_ml_cli_u32(c, "--max-iter", v, 1, 1000000, iters) ? 1 : 2;
    if (!bad && (v = em_ml_cli_value(c, "--tol", argc, argv, i, &bad)))
        return em_ml_cli_f64(c, "--tol", v, 1e-300, 1, tol) ? 1 : 2;
    return bad ? 2 : 0;
}

int em_linreg_cli_main(int argc, char **argv)
{
    em_ml_cli c;
    em_ml_cli_init(&c, "linreg", EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM,
                   EM_ML_LIBSVM, em_linreg_cli_help);
    run_args a = {.c = &c};
    static const char *const solvers[] = {"auto", "normal", "l-bfgs", NULL};
    for (int i = 1; i < argc; i++) {
        int r = em_ml_cli_opt(&c, argc, argv, &i);
        if (r == 0)
            r = shared_opt(&a, argc, argv, &i, &a.lp.reg_param, &a.lp.max_iter, &a.lp.tol,
                           &a.lp.no_intercept);
        if (r == 1)
            continue;
        if (r == 2)
            return c.status;
        const char *v;
        bool bad = false;
        int ch;
        if (!strcmp(argv[i], "--standardize"))
            a.lp.standardize = true;
        else if ((v = em_ml_cli_value(&c, "--elastic-net", argc, argv, &i, &bad))) {
            if (!em_ml_cli_f64(&c, "--elastic-net", v, 0, 1, &a.lp.elastic_net))
                return c.status;
        } else if (!bad && (v = em_ml_cli_value(&c, "--solver", argc, argv, &i, &bad))) {
            if (!em_ml_cli_choice(&c, "--solver", v, solvers, &ch))
                return c.status;
            a.lp.solver = ch == 0 ? EM_LINREG_AUTO : ch == 1 ? EM_LINREG_NORMAL : EM_LINREG_LBFGS;
        } else if (bad)
            return c.status;
        else
            return em_ml_cli_usage(&c, "unknown option '%s'", argv[i]);
    }
    if (em_ml_cli_finish(&c) != 0)
        return c.status;
    return run(&a);
}

int em_glm_cli_main(int argc, char **argv)
{
    em_ml_cli c;
    em_ml_cli_init(&c, "glm", EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM,
                   EM_ML_LIBSVM, em_glm_cli_help);
    run_args a = {.c = &c, .glm = true};
    static const char *const families[] = {"gaussian", "binomial", "poisson", "gamma", NULL};
    static const char *const links[] = {"identity", "log", "logit", "inverse", NULL};
    for (int i = 1; i < argc; i++) {
        int r = em_ml_cli_opt(&c, argc, argv, &i);
        if (r == 0)
            r = shared_opt(&a, argc, argv, &i, &a.gp.reg_param, &a.gp.max_iter, &a.gp.tol,
                           &a.gp.no_intercept);
        if (r == 1)
            continue;
        if (r == 2)
            return c.status;
        const char *v;
        bool bad = false;
        int ch;
        if ((v = em_ml_cli_value(&c, "--family", argc, argv, &i, &bad))) {
            if (!em_ml_cli_choice(&c, "--family", v, families, &ch))
                return c.status;
            a.gp.family = (em_glm_family)(ch + 1);
        } else if (!bad && (v = em_ml_cli_value(&c, "--link", argc, argv, &i, &bad))) {
            if (!em_ml_cli_choice(&c, "--link", v, links, &ch))
                return c.status;
            a.gp.link = (em_glm_link)(ch + 1);
        } else if (bad)
            return c.status;
        else
            return em_ml_cli_usage(&c, "unknown option '%s'", argv[i]);
    }
    if (!a.gp.family)
        return em_ml_cli_usage(&c, "--family is required (gaussian, binomial, poisson, gamma)");
    if (a.gp.link && !em_glm_link_ok(a.gp.family, a.gp.link))
        return em_ml_cli_usage(&c, "family %s does not take link %s",
                               em_glm_family_name(a.gp.family), em_glm_link_name(a.gp.link));
    if (em_ml_cli_finish(&c) != 0)
        return c.status;
    return run(&a);
}
