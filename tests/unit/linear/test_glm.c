/* tests/unit/linear/test_glm.c - GLMs by IRLS (mllib/linear/glm.h): against a direct
 * Newton solve of the log-likelihood written in the test (observed information, so also
 * for the non-canonical gamma/log), against statsmodels' numbers for a small fixed data set
 * (coefficients, standard errors, deviance, null deviance, AIC, dispersion; computed once
 * with statsmodels 0.14 GLM(...).fit(tol=1e-12)), dense = sparse rows, local[2] =
 * local-cluster[2,1], save/load round trip and corrupt files rejected, bad input. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "glm_util.h"

static em_linear_model *fit(em_context *sc, const em_ml_data *d, const em_glm_params *p)
{
    em_linear_model *m = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_glm_train(sc, d, p, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m->kind, EM_LINEAR_GLM);
    return m;
}

static double summary_num(const em_linear_model *m, const char *key)
{
    json_t *v = json_object_get(m->summary, key);
    cr_assert(json_is_number(v), "summary has no number '%s'", key);
    return json_number_value(v);
}

/* ---- the statsmodels fixture: n = 20, x1 = i/10 - 1, x2 = ((7 i) mod 11)/5 - 1 ---------- */

#define FN 20
static const double fx_poisson[FN] = {2, 0, 1, 3, 1, 4, 2, 2, 5, 3, 1, 6, 4, 3, 7, 5, 4, 8, 6, 9};
static const double fx_binomial[FN] = {0, 0, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1};
static const double fx_gamma[FN] = {2.1, 1.3, 0.8, 1.9, 2.7, 1.1, 0.6, 1.5, 2.2, 0.9,
                                    1.7, 3.1, 1.2, 0.7, 2.4, 1.8, 1.0, 2.9, 1.4, 0.5};

typedef struct sm_case {
    const char *name;
    em_glm_family family;
    em_glm_link link;
    const double *y;
    double params[3], bse[3], deviance, null_deviance, aic, scale;
} sm_case;

static const sm_case sm_cases[] = {
    {"poisson",
     EM_GLM_POISSON,
     0,
     fx_poisson,
     {1.2427694959900073, 0.92084603882158311, -0.030467800699631731},
     {0.12596523050972688, 0.21589554186149271, 0.1799392142138522},
     13.819764349652935,
     33.698524542166041,
     78.508995851939744,
     1},
    {"binomial",
     EM_GLM_BINOMIAL,
     0,
     fx_binomial,
     {0.29851475915579467, 1.3874550572709992, -0.44876215176998902},
     {0.49329306430558495, 0.89765656562362517, 0.7581506322479491},
     24.507896923395222,
     27.525552548543544,
     30.507896923395222,
     1},
    {"gamma",
     EM_GLM_GAMMA,
     0,
     fx_gamma,
     {0.62966883361271275, 0.013286970110038474, -0.029025350746391929},
     {0.073941269096299708, 0.127904560430491, 0.11322131140207484},
     5.0319880748512436,
     5.0528038560126314,
     49.629468257377411,
     0.27311737746429499},
    {"gamma/log",
     EM_GLM_GAMMA,
     EM_GLM_LOG,
     fx_gamma,
     {0.46245668933244755, -0.032585107516377013, 0.045020501543117056},
     {0.117505436230325, 0.20292826424189195, 0.18064278727065494},
     5.0308645938231855,
     5.0528038560126314,
     49.631969525251108,
     0.27383835358356745},
    {"gaussian",
     EM_GLM_GAUSSIAN,
     0,
     fx_gamma,
     {1.5897950011826856, -0.033525191200819926, 0.073563037136324061},
     {0.18505002716443084, 0.31957568956032489, 0.28448005270130938},
     11.545309627059844,
     11.598000000000001,
     51.768481088997113,
     0.67913586041528495},
};

static void fixture_x(double *x)
{
    for (int i = 0; i < FN; i++) {
        x[2 * i] = i / 10.0 - 1;
        x[2 * i + 1] = ((i * 7) % 11) / 5.0 - 1;
    }
}

Test(glm, statsmodels_fixture)
{
    em_context *sc = em_test_ctx_new("local[2]");
    double x[2 * FN];
    fixture_x(x);
    for (size_t t = 0; t < sizeof sm_cases / sizeof sm_cases[0]; t++) {
        const sm_case *c = &sm_cases[t];
        for (int sparse = 0; sparse < 2; sparse++) {
            em_ml_data d = gt_data(sc, x, c->y, FN, 2, sparse, 3);
            em_glm_params p = {.family = c->family, .link = c->link, .tol = 1e-14};
            em_linear_model *m = fit(sc, &d, &p);
            double got[3] = {m->intercept[0], m->coef[0], m->coef[1]};
            json_t *se = json_object_get(m->summary, "std_errors");
            cr_assert_eq(json_array_size(se), 3);
            for (int j = 0; j < 3; j++) {
                /* gamma/log: Fisher scoring converges linearly (non-canonical link) */
                double ptol = c->link == EM_GLM_LOG ? 1e-6 : 1e-8;
                cr_assert_lt(gt_rel(got[j], c->params[j]), ptol, "%s param %d: %.17g vs %.17g",
                             c->name, j, got[j], c->params[j]);
                double s = json_number_value(json_array_get(se, (size_t)j));
                cr_assert_lt(gt_rel(s, c->bse[j]), ptol * 10, "%s bse %d: %.17g vs %.17g", c->name,
                             j, s, c->bse[j]);
            }
            cr_assert_lt(gt_rel(summary_num(m, "deviance"), c->deviance), 1e-10, "%s", c->name);
            cr_assert_lt(gt_rel(summary_num(m, "null_deviance"), c->null_deviance), 1e-10, "%s",
                         c->name);
            cr_assert_lt(gt_rel(summary_num(m, "aic"), c->aic), 1e-9, "%s aic %.17g vs %.17g",
                         c->name, summary_num(m, "aic"), c->aic);
            cr_assert_lt(gt_rel(summary_num(m, "dispersion"), c->scale), 1e-8, "%s", c->name);
            cr_assert(json_is_true(json_object_get(m->summary, "converged")));
            em_linear_model_free(m);
            em_ml_data_release(&d);
        }
    }
    em_context_free(sc);
}

/* ---- IRLS against Newton's method on the log-likelihood ------------------------------- */

/* d l / d eta and d^2 l / d eta^2 of one observation (up to the dispersion). */
static void derivs(em_glm_family f, em_glm_link l, double y, double eta, double *d1, double *d2)
{
    if (f == EM_GLM_POISSON && l == EM_GLM_LOG) { /* l = y eta - e^eta */
        *d1 = y - exp(eta);
        *d2 = -exp(eta);
    } else if (f == EM_GLM_BINOMIAL && l == EM_GLM_LOGIT) { /* l = y eta - log(1+e^eta) */
        double mu = 1 / (1 + exp(-eta));
        *d1 = y - mu;
        *d2 = -mu * (1 - mu);
    } else if (f == EM_GLM_GAMMA && l == EM_GLM_LOG) { /* l = -y e^-eta - eta */
        *d1 = y * exp(-eta) - 1;
        *d2 = -y * exp(-eta);
    } else { /* gaussian identity */
        *d1 = y - eta;
        *d2 = -1;
    }
}

/* Newton on [1 X] until the step is below 1e-14. */
static void newton(em_glm_family f, em_glm_link l, const double *x, const double *y, size_t n,
                   size_t d, double *b)
{
    size_t k = d + 1;
    double *h = em_xmalloc(8 * k * k), *g = em_xmalloc(8 * k), *step = em_xmalloc(8 * k);
    memset(b, 0, 8 * k);
    for (int it = 0; it < 100; it++) {
        memset(h, 0, 8 * k * k);
        memset(g, 0, 8 * k);
        for (size_t i = 0; i < n; i++) {
            double eta = b[0], d1, d2;
            for (size_t j = 0; j < d; j++)
                eta += b[1 + j] * x[i * d + j];
            derivs(f, l, y[i], eta, &d1, &d2);
            for (size_t p = 0; p < k; p++) {
                double xp = p ? x[i * d + p - 1] : 1;
                g[p] += d1 * xp;
                for (size_t q = 0; q < k; q++)
                    h[p * k + q] -= d2 * xp * (q ? x[i * d + q - 1] : 1);
            }
        }
        gt_solve((int)k, h, g, step);
        double smax = 0;
        for (size_t p = 0; p < k; p++) {
            b[p] += step[p];
            smax = fmax(smax, fabs(step[p]));
        }
        if (smax < 1e-14)
            break;
    }
    em_free(h);
    em_free(g);
    em_free(step);
}

Test(glm, irls_matches_newton)
{
    em_context *sc = em_test_ctx_new("local[2]");
    enum { n = 400, d = 4 };
    double *x = gt_features(n, d, 1, 7), y[n];
    static const struct {
        em_glm_family f;
        em_glm_link l;
    } cases[] = {{EM_GLM_POISSON, EM_GLM_LOG},
                 {EM_GLM_BINOMIAL, EM_GLM_LOGIT},
                 {EM_GLM_GAMMA, EM_GLM_LOG},
                 {EM_GLM_GAUSSIAN, EM_GLM_IDENTITY}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        em_rng g;
        em_rng_seed(&g, 100 + t);
        for (size_t i = 0; i < n; i++) {
            double eta = 0.3 + 0.4 * x[i * d] - 0.2 * x[i * d + 1] + 0.1 * x[i * d + 3];
            switch (cases[t].f) {
            case EM_GLM_POISSON:
                y[i] = em_rng_poisson(&g, exp(eta));
                break;
            case EM_GLM_BINOMIAL:
                y[i] = em_rng_double(&g) < 1 / (1 + exp(-eta));
                break;
            case EM_GLM_GAMMA:
                y[i] = exp(eta) * (0.2 + 1.6 * em_rng_double(&g));
                break;
            default:
                y[i] = eta + em_rng_gaussian(&g);
                break;
            }
        }
        em_ml_data dd = gt_data(sc, x, y, n, d, false, 4);
        em_glm_params p = {.family = cases[t].f, .link = cases[t].l, .tol = 1e-14};
        em_linear_model *m = fit(sc, &dd, &p);
        double b[d + 1];
        newton(cases[t].f, cases[t].l, x, y, n, d, b);
        cr_assert_lt(fabs(m->intercept[0] - b[0]), 1e-9, "case %zu intercept %.17g vs %.17g", t,
                     m->intercept[0], b[0]);
        for (int j = 0; j < d; j++)
            cr_assert_lt(fabs(m->coef[j] - b[1 + j]), 1e-9, "case %zu coef %d: %.17g vs %.17g", t,
                         j, m->coef[j], b[1 + j]);
        cr_assert_leq(summary_num(m, "iterations"), 25);
        em_linear_model_free(m);
        em_ml_data_release(&dd);
    }
    em_free(x);
    em_context_free(sc);
}

/* With L2, IRLS solves (X^T W X + n lambda I') b = X^T W z: at the optimum the penalized
 * score X^T (y - mu) - n lambda b' vanishes (poisson/log: canonical, so d l/d eta = y - mu). */
Test(glm, l2_penalized_score_vanishes)
{
    em_context *sc = em_test_ctx_new("local[2]");
    enum { n = 300, d = 3 };
    double *x = gt_features(n, d, 1, 9), y[n];
    em_rng g;
    em_rng_seed(&g, 5);
    for (size_t i = 0; i < n; i++)
        y[i] = em_rng_poisson(&g, exp(0.5 + 0.6 * x[i * d] - 0.3 * x[i * d + 2]));
    em_ml_data dd = gt_data(sc, x, y, n, d, false, 2);
    em_glm_params p = {.family = EM_GLM_POISSON, .reg_param = 0.05, .tol = 1e-14};
    em_linear_model *m = fit(sc, &dd, &p);
    double score[d + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        double eta = m->intercept[0];
        for (int j = 0; j < d; j++)
            eta += m->coef[j] * x[i * d + j];
        double r = y[i] - exp(eta);
        score[0] += r;
        for (int j = 0; j < d; j++)
            score[1 + j] += r * x[i * d + j];
    }
    cr_assert_lt(fabs(score[0]), 1e-8);
    for (int j = 0; j < d; j++)
        cr_assert_lt(fabs(score[1 + j] - n * 0.05 * m->coef[j]), 1e-8, "coef %d", j);
    cr_assert_gt(fabs(m->coef[0]), 0.1);
    em_linear_model_free(m);
    em_ml_data_release(&dd);
    em_free(x);
    em_context_free(sc);
}

/* ---- engines, persistence, bad input --------------------------------------------------- */

static em_linear_model *fit_on(const char *master, const double *x, const double *y, size_t n,
                               size_t d)
{
    em_context *sc = em_test_ctx_new(master);
    em_ml_data dd = gt_data(sc, x, y, n, d, false, 4);
    em_glm_params p = {.family = EM_GLM_POISSON};
    em_linear_model *m = fit(sc, &dd, &p);
    em_ml_data_release(&dd);
    em_context_free(sc);
    return m;
}

Test(glm, local_and_local_cluster_same_model, .timeout = 120)
{
    enum { n = 2000, d = 5 };
    double *x = gt_features(n, d, 1, 3), y[n];
    em_rng g;
    em_rng_seed(&g, 4);
    for (size_t i = 0; i < n; i++)
        y[i] = em_rng_poisson(&g, exp(0.2 + 0.3 * x[i * d] - 0.5 * x[i * d + 4]));
    em_linear_model *a = fit_on("local[2]", x, y, n, d);
    em_linear_model *b = fit_on("local-cluster[2,1]", x, y, n, d);
    cr_assert_lt(gt_rel(a->intercept[0], b->intercept[0]), 1e-12);
    for (int j = 0; j < d; j++)
        cr_assert_lt(gt_rel(a->coef[j], b->coef[j]), 1e-12, "coef %d: %.17g vs %.17g", j,
                     a->coef[j], b->coef[j]);
    cr_assert_lt(gt_rel(summary_num(a, "deviance"), summary_num(b, "deviance")), 1e-12);
    cr_assert_eq(summary_num(a, "iterations"), summary_num(b, "iterations"));
    em_linear_model_free(a);
    em_linear_model_free(b);
    em_free(x);
}

Test(glm, save_load_round_trip_and_corruption)
{
    em_context *sc = em_test_ctx_new("local[2]");
    double x[2 * FN];
    fixture_x(x);
    em_ml_data d = gt_data(sc, x, fx_gamma, FN, 2, false, 2);
    em_glm_params p = {.family = EM_GLM_GAMMA, .link = EM_GLM_LOG};
    em_linear_model *m = fit(sc, &d, &p);
    char dir[] = "/tmp/ember-glm-test-XXXXXX";
    cr_assert(mkdtemp(dir));
    char *path = em_xasprintf("%s/model", dir);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_linear_model_save(m, path, &err), 0, "%s", err.msg);
    em_linear_model *l = NULL;
    cr_assert_eq(em_linear_model_load(path, &l, &err), 0, "%s", err.msg);
    cr_assert_eq(l->kind, EM_LINEAR_GLM);
    cr_assert_eq(l->family, EM_GLM_GAMMA);
    cr_assert_eq(l->link, EM_GLM_LOG);
    cr_assert_eq(l->intercept[0], m->intercept[0]);
    for (int j = 0; j < 2; j++)
        cr_assert_eq(l->coef[j], m->coef[j]);
    cr_assert(json_equal(json_object_get(l->summary, "std_errors"),
                         json_object_get(m->summary, "std_errors")));
    /* predictions: the gamma/log mean */
    double row[2] = {0.5, -0.25};
    em_ml_row r = {.dense = (const uint8_t *)row};
    double want = exp(m->intercept[0] + 0.5 * m->coef[0] - 0.25 * m->coef[1]);
    cr_assert_lt(gt_rel(em_linear_predict(l, &r), want), 1e-14);
    /* a flipped byte in the coefficients is rejected, naming the file */
    char *coef = em_xasprintf("%s/coef.bin", path);
    FILE *f = fopen(coef, "r+b");
    cr_assert(f);
    fseek(f, 3, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 3, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    em_linear_model_free(l);
    l = NULL;
    cr_assert_eq(em_linear_model_load(path, &l, &err), EM_ECORRUPT);
    cr_assert_null(l);
    cr_assert(strstr(err.msg, "coef"), "%s", err.msg);
    /* a truncated file too */
    f = fopen(coef, "r+b");
    fseek(f, 3, SEEK_SET);
    fputc(c, f);
    fclose(f);
    cr_assert_eq(truncate(coef, 8), 0);
    cr_assert_eq(em_linear_model_load(path, &l, &err), EM_ECORRUPT);
    cr_assert_null(l);
    char *cmd = em_xasprintf("rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    em_free(cmd);
    em_free(coef);
    em_free(path);
    em_linear_model_free(m);
    em_ml_data_release(&d);
    em_context_free(sc);
}

Test(glm, bad_labels_links_and_singular)
{
    em_context *sc = em_test_ctx_new("local[2]");
    double x[2 * FN], y[FN];
    fixture_x(x);
    memcpy(y, fx_poisson, sizeof y);
    y[7] = -1;
    em_ml_data d = gt_data(sc, x, y, FN, 2, false, 2);
    em_linear_model *m = NULL;
    em_err err = EM_ERR_INIT;
    em_glm_params p = {.family = EM_GLM_POISSON};
    cr_assert_lt(em_glm_train(sc, &d, &p, &m, &err), 0);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, "label -1") && strstr(err.msg, "poisson"), "%s", err.msg);
    p = (em_glm_params){.family = EM_GLM_BINOMIAL}; /* -1 and 2..9 are not 0..1 */
    cr_assert_lt(em_glm_train(sc, &d, &p, &m, &err), 0);
    p = (em_glm_params){.family = EM_GLM_POISSON, .link = EM_GLM_LOGIT};
    cr_assert_eq(em_glm_train(sc, &d, &p, &m, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "does not take link logit"), "%s", err.msg);
    p = (em_glm_params){.family = 9};
    cr_assert_eq(em_glm_train(sc, &d, &p, &m, &err), EM_EINVAL);
    em_ml_data_release(&d);
    /* a duplicated column: X^T W X singular, an error naming the cause */
    double x3[3 * FN];
    for (int i = 0; i < FN; i++) {
        x3[3 * i] = x[2 * i];
        x3[3 * i + 1] = x[2 * i + 1];
        x3[3 * i + 2] = x[2 * i];
    }
    d = gt_data(sc, x3, fx_poisson, FN, 3, false, 2);
    p = (em_glm_params){.family = EM_GLM_POISSON};
    cr_assert_lt(em_glm_train(sc, &d, &p, &m, &err), 0);
    cr_assert(strstr(err.msg, "singular"), "%s", err.msg);
    em_ml_data_release(&d);
    em_context_free(sc);
}
