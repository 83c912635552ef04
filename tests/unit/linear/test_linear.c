/* tests/unit/linear/test_linear.c - the linear models on the engine: the executors' losses
 * and gradients against finite differences (every loss, dense and sparse); logistic
 * regression against a direct Newton solve; standardization leaves the unregularized
 * optimum unchanged; L1 (OWL-QN) meets the KKT conditions; multinomial; sparse rows give
 * the dense model; SVM by L-BFGS and SGD; prediction pairs against em_linear_score; save /
 * load round trip and corrupt files refused; local[2] against local-cluster[2,1]. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/linalg/linalg.h"
#include "mllib/linear/linear_int.h"
#include "tests/support/ctx.h"

enum { D = 5, N = 800 };

static em_context *ctx_new(const char *master)
{
    cr_assert_eq(em_linear_register(), 0);
    return em_test_ctx_new(master);
}

static double g_x[N][D + 1];          /* label, features */
static uint8_t g_sp[N][8 + 8 + 4 * D + 4 + 8 * D];
static em_rec g_recs[N];

/* n labeled rows: features gaussian (column j scaled by 1 + 3j and shifted by j, so that
 * standardization matters), labels from a logistic model (classes > 2: argmax of noisy
 * linear scores). Column 3 is zero in every third row (sparse rows leave it out). */
static em_ml_data make_data(em_context *sc, size_t n, uint32_t classes, bool sparse)
{
    static const double w[3][D] = {{1.5, -0.7, 0.3, 0, 0.25},
                                   {-0.5, 0.9, 0, 0.4, -0.2},
                                   {0.2, 0.1, -0.6, -0.3, 0.1}};
    em_rng g;
    em_rng_seed(&g, 7);
    for (size_t i = 0; i < n; i++) {
        double *x = g_x[i] + 1;
        for (int j = 0; j < D; j++)
            x[j] = (1 + 3 * j) * em_rng_gaussian(&g) + j;
        if (i % 3 == 0)
            x[3] = 0;
        if (classes <= 2) {
            double z = 0.3;
            for (int j = 0; j < D; j++)
                z += w[0][j] * x[j] / (1 + 3 * j);
            g_x[i][0] = em_rng_double(&g) < 1 / (1 + exp(-z)) ? 1 : 0;
        } else {
            int best = 0;
            double bz = -INFINITY;
            for (uint32_t c = 0; c < classes; c++) {
                double z = em_rng_gaussian(&g);
                for (int j = 0; j < D; j++)
                    z += 2 * w[c % 3][j] * x[j] / (1 + 3 * j);
                if (z > bz) {
                    bz = z;
                    best = (int)c;
                }
            }
            g_x[i][0] = best;
        }
        g_recs[i].val = em_slice_make(g_x[i], sizeof g_x[i]);
        if (sparse) {
            uint32_t idx[D], nnz = 0;
            double val[D];
            for (uint32_t j = 0; j < D; j++)
                if (x[j] != 0) {
                    idx[nnz] = j;
                    val[nnz++] = x[j];
                }
            em_vbuf b;
            em_vbuf_init(&b);
            em_vbuf_append(&b, &g_x[i][0], 8);
            cr_assert_eq(em_ml_sparse_encode(nnz, idx, val, &b), 0);
            memcpy(g_sp[i], b.data, b.len);
            g_recs[i].val = em_slice_make(g_sp[i], b.len);
            em_vbuf_destroy(&b);
        }
    }
    em_ml_data d = {.sparse = sparse, .labeled = true, .dim = D, .nrows = n};
    d.rows = sparse ? em_parallelize(sc, EM_REC_BYTES, 0, g_recs, n, 4)
                    : em_parallelize(sc, EM_REC_FIXED, 8 * (D + 1), g_recs, n, 4);
    return d;
}

/* ---------------------------------------------------------------- gradients */

static void check_fd(em_context *sc, const em_ml_data *d, lin_loss loss, uint32_t k)
{
    size_t nw = (size_t)k * D, size = LIN_ACC_HEAD + nw + k;
    double w[3 * D], b[3], acc[LIN_ACC_HEAD + 3 * D + 3], a2[LIN_ACC_HEAD + 3 * D + 3];
    em_err err = EM_ERR_INIT;
    for (size_t i = 0; i < nw; i++)
        w[i] = 0.05 * sin(1.0 + (double)i);
    for (uint32_t r = 0; r < k; r++)
        b[r] = 0.1 * r - 0.05;
    lin_ctx c = {.loss = loss, .sparse = d->sparse, .intercept = true, .dim = D, .k = k,
                 .fraction = 1};
    cr_assert_eq(em__lin_pass(sc, d, &c, w, b, acc, &err), 0, "%s", err.msg);
    cr_assert_eq(acc[1], N);
    for (size_t i = 0; i < nw + k; i++) {
        double *v = i < nw ? &w[i] : &b[i - nw], h = 1e-6, fp, fm;
        *v += h;
        cr_assert_eq(em__lin_pass(sc, d, &c, w, b, a2, &err), 0, "%s", err.msg);
        fp = a2[0];
        *v -= 2 * h;
        cr_assert_eq(em__lin_pass(sc, d, &c, w, b, a2, &err), 0, "%s", err.msg);
        fm = a2[0];
        *v += h;
        double fd = (fp - fm) / (2 * h), an = acc[LIN_ACC_HEAD + i];
        cr_assert(fabs(fd - an) <= 1e-5 * fmax(1, fabs(an)),
                  "loss %d, variable %zu: finite difference %.9g, gradient %.9g", loss, i, fd,
                  an);
    }
    (void)size;
}

Test(linear, gradients_match_finite_differences, .timeout = 120)
{
    em_context *sc = ctx_new("local[2]");
    for (int sp = 0; sp < 2; sp++) {
        em_ml_data d = make_data(sc, N, 2, sp);
        check_fd(sc, &d, LIN_LOGISTIC, 1);
        check_fd(sc, &d, LIN_SQHINGE, 1);
        check_fd(sc, &d, LIN_SQUARED, 1);
        em_ml_data_release(&d);
        d = make_data(sc, N, 3, sp);
        check_fd(sc, &d, LIN_MULTINOMIAL, 3);
        em_ml_data_release(&d);
    }
    em_context_free(sc);
}

Test(linear, bad_labels_are_errors, .timeout = 60)
{
    em_context *sc = ctx_new("local[2]");
    em_ml_data d = make_data(sc, N, 3, false);   /* labels 0..2 */
    em_linear_model *m = NULL;
    em_err err = EM_ERR_INIT;
    em_linear_params p = {.family = EM_LOGISTIC_BINOMIAL};
    cr_assert_eq(em_logistic_train(sc, &d, &p, &m, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "binomial"), "%s", err.msg);
    cr_assert_eq(em_svm_train(sc, &d, NULL, &m, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "label 2"), "%s", err.msg);
    cr_assert_null(m);
    em_ml_data_release(&d);
    em_context_free(sc);
}

/* ---------------------------------------------------------------- logistic regression */

/* Newton's method on (1/n) sum softplus(z) - y z + reg/2 sum_j pen_j w_j^2 (intercept
 * free; pen NULL: all 1). */
static void newton_pen(size_t n, double reg, const double *pen, double *wb)
{
    enum { P = D + 1 };
    memset(wb, 0, sizeof(double) * P);
    for (int it = 0; it < 50; it++) {
        double H[P * P] = {0}, g[P] = {0};
        for (size_t i = 0; i < n; i++) {
            double xi[P], z = 0;
            memcpy(xi, g_x[i] + 1, sizeof(double) * D);
            xi[D] = 1;
            for (int j = 0; j < P; j++)
                z += xi[j] * wb[j];
            double p = 1 / (1 + exp(-z)), r = p - g_x[i][0], s = p * (1 - p);
            for (int j = 0; j < P; j++) {
                g[j] += r * xi[j] / n;
                for (int l = 0; l < P; l++)
                    H[j * P + l] += s * xi[j] * xi[l] / n;
            }
        }
        for (int j = 0; j < D; j++) {
            double pj = pen ? pen[j] : 1;
            g[j] += reg * pj * wb[j];
            H[j * P + j] += reg * pj;
        }
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_la_chol_solve(P, H, g, &err), 0, "%s", err.msg);
        for (int j = 0; j < P; j++)
            wb[j] -= g[j];
    }
}

static void newton(size_t n, double reg, double *wb)
{
    newton_pen(n, reg, NULL, wb);
}

static void assert_model_near(const em_linear_model *m, const double *wb, double tol)
{
    for (int j = 0; j < D; j++)
        cr_assert(fabs(m->coef[j] - wb[j]) <= tol * fmax(1, fabs(wb[j])),
                  "coef %d: %.10g, want %.10g", j, m->coef[j], wb[j]);
    cr_assert(fabs(m->intercept[0] - wb[D]) <= tol * fmax(1, fabs(wb[D])),
              "intercept: %.10g, want %.10g", m->intercept[0], wb[D]);
}

Test(linear, logistic_matches_newton, .timeout = 120)
{
    em_context *sc = ctx_new("local[2]");
    double wb[D + 1];
    for (int sp = 0; sp < 2; sp++) {
        em_ml_data d = make_data(sc, N, 2, sp);
        for (int std = 0; std < 2; std++) {
            em_linear_params p = {.reg_param = 0.01, .no_standardize = !std, .tol = 1e-12,
                                  .max_iter = 500};
            em_linear_model *m;
            em_err err = EM_ERR_INIT;
            cr_assert_eq(em_logistic_train(sc, &d, &p, &m, &err), 0, "%s", err.msg);
            cr_assert_eq(m->kind, EM_LINEAR_LOGISTIC);
            if (!std) {
                newton(N, 0.01, wb);
                assert_model_near(m, wb, 1e-6);
            } else {
                /* standardized: the penalty is on w_j s_j (s_j the sample std) */
                double pen[D];
                for (int j = 0; j < D; j++) {
                    double mu = 0, v = 0;
                    for (size_t i = 0; i < N; i++)
                        mu += g_x[i][j + 1] / N;
                    for (size_t i = 0; i < N; i++)
                        v += (g_x[i][j + 1] - mu) * (g_x[i][j + 1] - mu) / (N - 1);
                    pen[j] = v;
                }
                newton_pen(N, 0.01, pen, wb);
                assert_model_near(m, wb, 1e-6);
                /* reg 0: the same optimum either way */
                em_linear_model *m0, *m1;
                em_linear_params q = {.tol = 1e-12, .max_iter = 500};
                cr_assert_eq(em_logistic_train(sc, &d, &q, &m0, &err), 0, "%s", err.msg);
                q.no_standardize = true;
                cr_assert_eq(em_logistic_train(sc, &d, &q, &m1, &err), 0, "%s", err.msg);
                newton(N, 0, wb);
                assert_model_near(m0, wb, 1e-5);
                assert_model_near(m1, wb, 1e-5);
                em_linear_model_free(m0);
                em_linear_model_free(m1);
            }
            em_linear_model_free(m);
        }
        em_ml_data_release(&d);
    }
    em_context_free(sc);
}

/* L1: at the solution, |g_j| <= lambda where w_j = 0 and g_j = -lambda sign(w_j) elsewhere
 * (g the gradient of the smooth part, no standardization). */
Test(linear, l1_meets_kkt, .timeout = 120)
{
    em_context *sc = ctx_new("local[2]");
    em_ml_data d = make_data(sc, N, 2, false);
    double lam = 0.2;
    em_linear_params p = {.reg_param = lam, .elastic_net = 1, .no_standardize = true,
                          .tol = 1e-12, .max_iter = 1000};
    em_linear_model *m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_logistic_train(sc, &d, &p, &m, &err), 0, "%s", err.msg);
    double acc[LIN_ACC_HEAD + D + 1];
    lin_ctx c = {.loss = LIN_LOGISTIC, .intercept = true, .dim = D, .k = 1, .fraction = 1};
    cr_assert_eq(em__lin_pass(sc, &d, &c, m->coef, m->intercept, acc, &err), 0, "%s", err.msg);
    int zeros = 0;
    for (int j = 0; j < D; j++) {
        double g = acc[LIN_ACC_HEAD + j] / N;
        if (m->coef[j] == 0) {
            zeros++;
            cr_assert(fabs(g) <= lam + 1e-6, "w[%d] = 0 but |g| = %g > %g", j, fabs(g), lam);
        } else
            cr_assert(fabs(g + lam * (m->coef[j] > 0 ? 1 : -1)) < 1e-5,
                      "w[%d] = %g: g = %g", j, m->coef[j], g);
    }
    cr_assert(zeros >= 1, "L1 of %g zeroed no coefficient", lam);
    cr_assert(fabs(acc[LIN_ACC_HEAD + D] / N) < 1e-6, "intercept gradient %g",
              acc[LIN_ACC_HEAD + D] / N);
    em_linear_model_free(m);
    em_ml_data_release(&d);
    em_context_free(sc);
}

Test(linear, multinomial_and_sparse_equals_dense, .timeout = 120)
{
    em_context *sc = ctx_new("local[2]");
    em_linear_model *m[2];
    em_err err = EM_ERR_INIT;
    for (int sp = 0; sp < 2; sp++) {
        em_ml_data d = make_data(sc, N, 3, sp);
        em_linear_params p = {.reg_param = 0.001, .tol = 1e-12, .max_iter = 500};
        cr_assert_eq(em_logistic_train(sc, &d, &p, &m[sp], &err), 0, "%s", err.msg);
        cr_assert_eq(m[sp]->kind, EM_LINEAR_MULTINOMIAL);
        cr_assert_eq(m[sp]->rows, 3);
        /* stationary: the gradient of the penalized objective in the scaled space is ~0,
         * checked here through accuracy and the optimizer's own report */
        cr_assert(json_is_true(json_object_get(m[sp]->summary, "converged")));
        size_t right = 0;
        for (size_t i = 0; i < N; i++) {
            em_ml_row row = {.dense = (const uint8_t *)(g_x[i] + 1)};
            right += em_linear_predict(m[sp], &row) == g_x[i][0];
        }
        cr_assert(right > 0.7 * N, "accuracy %zu / %d", right, N);
        em_ml_data_release(&d);
    }
    for (size_t i = 0; i < 3 * D; i++)
        cr_assert(fabs(m[0]->coef[i] - m[1]->coef[i]) < 1e-6, "coef %zu: %g vs %g", i,
                  m[0]->coef[i], m[1]->coef[i]);
    em_linear_model_free(m[0]);
    em_linear_model_free(m[1]);
    em_context_free(sc);
}

/* ---------------------------------------------------------------- SVM */

Test(linear, svm_lbfgs_and_sgd, .timeout = 120)
{
    em_context *sc = ctx_new("local[2]");
    em_ml_data d = make_data(sc, N, 2, false);
    em_linear_model *a, *b, *c;
    em_err err = EM_ERR_INIT;
    em_linear_params p = {.reg_param = 0.01};
    cr_assert_eq(em_svm_train(sc, &d, &p, &a, &err), 0, "%s", err.msg);
    em_linear_params q = {.reg_param = 0.01, .solver = EM_LINEAR_SGD, .batch_fraction = 0.5,
                          .seed = 3, .max_iter = 200};
    cr_assert_eq(em_svm_train(sc, &d, &q, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(em_svm_train(sc, &d, &q, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(b->coef, c->coef, sizeof(double) * D), 0, "SGD with one seed differs");
    size_t ra = 0, rb = 0;
    for (size_t i = 0; i < N; i++) {
        em_ml_row row = {.dense = (const uint8_t *)(g_x[i] + 1)};
        ra += em_linear_predict(a, &row) == g_x[i][0];
        rb += em_linear_predict(b, &row) == g_x[i][0];
    }
    cr_assert(ra > 0.7 * N && rb > 0.7 * N, "accuracy %zu, %zu of %d", ra, rb, N);
    em_linear_model_free(a);
    em_linear_model_free(b);
    em_linear_model_free(c);
    em_ml_data_release(&d);
    em_context_free(sc);
}

/* ---------------------------------------------------------------- predict, save, load */

Test(linear, predict_pairs_save_load, .timeout = 120)
{
    em_context *sc = ctx_new("local[2]");
    em_ml_data d = make_data(sc, N, 2, false);
    em_linear_model *m, *l;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_logistic_train(sc, &d, NULL, &m, &err), 0, "%s", err.msg);
    em_rdd *pairs;
    cr_assert_eq(em_linear_predict_pairs(sc, m, &d, &pairs, &err), 0, "%s", err.msg);
    em_records r = {0};
    cr_assert_eq(em_rdd_collect(pairs, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.n, N);
    for (size_t i = 0; i < N; i++) {
        double pr[2];
        memcpy(pr, r.recs[i].val.p, 16);
        em_ml_row row = {.dense = (const uint8_t *)(g_x[i] + 1)};
        cr_assert(fabs(pr[0] - em_linear_score(m, &row)) < 1e-12);
        cr_assert_eq(pr[1], g_x[i][0]);
    }
    em_records_destroy(&r);
    char root[] = "/tmp/ember-test-linear-XXXXXX";
    cr_assert(mkdtemp(root));
    char *dir = em_xasprintf("%s/m", root), *bin = em_xasprintf("%s/m/coef.bin", root);
    cr_assert_eq(em_linear_model_save(m, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(em_linear_model_save(m, dir, &err), EM_EINVAL);
    cr_assert_eq(em_linear_model_load(dir, &l, &err), 0, "%s", err.msg);
    cr_assert_eq(l->kind, m->kind);
    cr_assert_eq(l->threshold, m->threshold);
    cr_assert_eq(memcmp(l->coef, m->coef, sizeof(double) * D), 0);
    cr_assert_eq(l->intercept[0], m->intercept[0]);
    cr_assert(json_is_integer(json_object_get(l->summary, "iterations")));
    em_linear_model_free(l);
    FILE *f = fopen(bin, "r+b");
    cr_assert(f);
    fseek(f, 11, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 11, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
    cr_assert_eq(em_linear_model_load(dir, &l, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "coef"), "%s", err.msg);
    cr_assert_null(l);
    em_rm_rf(root, NULL);
    em_free(dir);
    em_free(bin);
    em_linear_model_free(m);
    em_ml_data_release(&d);
    em_context_free(sc);
}

Test(linear, local_equals_local_cluster, .timeout = 180)
{
    em_linear_model *m[2];
    const char *masters[2] = {"local[2]", "local-cluster[2,1]"};
    for (int i = 0; i < 2; i++) {
        em_context *sc = ctx_new(masters[i]);
        em_ml_data d = make_data(sc, N, 2, true);
        em_err err = EM_ERR_INIT;
        em_linear_params p = {.reg_param = 0.01, .elastic_net = 0.5};
        cr_assert_eq(em_logistic_train(sc, &d, &p, &m[i], &err), 0, "%s: %s", masters[i],
                     err.msg);
        em_ml_data_release(&d);
        em_context_free(sc);
    }
    for (int j = 0; j < D; j++)
        cr_assert(fabs(m[0]->coef[j] - m[1]->coef[j]) <= 1e-9 * fmax(1, fabs(m[0]->coef[j])),
                  "coef %d: %.17g vs %.17g", j, m[0]->coef[j], m[1]->coef[j]);
    em_linear_model_free(m[0]);
    em_linear_model_free(m[1]);
}
