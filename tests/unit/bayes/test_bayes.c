/* tests/unit/bayes/test_bayes.c - naive Bayes: the model of a tiny data set against tables
 * computed by hand (multinomial and Bernoulli, lambda 1), dense and sparse rows giving the
 * same model, predictions and probabilities, prediction pairs evaluated on the engine,
 * local[2] and local-cluster[2,1] giving bitwise the same model, save/load round trip,
 * corrupt model files and bad rows rejected with errors naming them. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/bayes/bayes.h"
#include "mllib/eval/eval.h"
#include "tests/support/ctx.h"

#define close_to(a, b) cr_assert(fabs((a) - (b)) < 1e-12, "%s = %.17g, want %.17g", #a, (a), (b))

/* label, then 3 features */
static const double MULTI[3][4] = {{0, 2, 1, 0}, {0, 1, 0, 1}, {1, 0, 1, 3}};
static const double BERN[3][4] = {{0, 1, 1, 0}, {0, 1, 0, 1}, {1, 0, 1, 1}};

static uint8_t g_sp[64][128];
static em_rec g_recs[64];

/* n labeled points of 3 features, dense FIXED or sparse BYTES, in np partitions. */
static em_ml_data points(em_context *sc, const double (*x)[4], size_t n, bool sparse,
                         uint32_t np)
{
    for (size_t i = 0; i < n; i++) {
        g_recs[i].key = em_slice_make(NULL, 0);
        if (!sparse) {
            g_recs[i].val = em_slice_make(x[i], 32);
            continue;
        }
        uint32_t idx[3], nnz = 0;
        double val[3];
        for (uint32_t j = 0; j < 3; j++)
            if (x[i][j + 1] != 0) {
                idx[nnz] = j;
                val[nnz++] = x[i][j + 1];
            }
        em_vbuf b;
        em_vbuf_init(&b);
        em_vbuf_append(&b, &x[i][0], 8);
        cr_assert_eq(em_ml_sparse_encode(nnz, idx, val, &b), 0);
        memcpy(g_sp[i], b.data, b.len);
        g_recs[i].val = em_slice_make(g_sp[i], b.len);
        em_vbuf_destroy(&b);
    }
    em_ml_data d = {.sparse = sparse, .labeled = true, .dim = 3, .nrows = n};
    d.rows = sparse ? em_parallelize(sc, EM_REC_BYTES, 0, g_recs, n, np)
                    : em_parallelize(sc, EM_REC_FIXED, 32, g_recs, n, np);
    return d;
}

static em_nb_model *train(em_context *sc, const double (*x)[4], size_t n, bool sparse,
                          em_nb_type type)
{
    em_ml_data d = points(sc, x, n, sparse, 2);
    em_nb_params p;
    em_nb_params_init(&p);
    p.type = type;
    em_nb_model *m = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_nb_train(&d, &p, &m, &err), 0, "%s", err.msg);
    em_ml_data_release(&d);
    return m;
}

/* n = 3, K = 2: pi = log(3/5), log(2/5). Class 0 sums (3, 1, 1), total 5: theta0 =
 * log((4, 2, 2) / 8); class 1 sums (0, 1, 3), total 4: theta1 = log((1, 2, 4) / 7). */
static void check_multinomial(const em_nb_model *m)
{
    cr_assert_eq(m->k, 2);
    cr_assert_eq(m->dim, 3);
    close_to(m->labels[0], 0.0);
    close_to(m->labels[1], 1.0);
    close_to(m->pi[0], log(3.0 / 5));
    close_to(m->pi[1], log(2.0 / 5));
    const double t[6] = {log(0.5), log(0.25), log(0.25), log(1 / 7.), log(2 / 7.), log(4 / 7.)};
    for (int i = 0; i < 6; i++)
        close_to(m->theta[i], t[i]);
}

Test(bayes, multinomial_hand_table, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[2]");
    for (int sparse = 0; sparse < 2; sparse++) {
        em_nb_model *m = train(sc, MULTI, 3, sparse, EM_NB_MULTINOMIAL);
        check_multinomial(m);
        /* x = (1,0,0): 0.6 * 0.5 = 0.3 vs 0.4 / 7; x = (0,0,2): 0.6 / 16 vs 0.4 * 16 / 49. */
        const double x1[3] = {1, 0, 0}, x2[3] = {0, 0, 2};
        double l, pr[2];
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_nb_predict(m, x1, &l, pr, &err), 0);
        close_to(l, 0.0);
        close_to(pr[0], 0.3 / (0.3 + 0.4 / 7));
        cr_assert_eq(em_nb_predict(m, x2, &l, pr, &err), 0);
        close_to(l, 1.0);
        close_to(pr[1], (0.4 * 16 / 49) / (0.4 * 16 / 49 + 0.6 / 16));
        uint32_t idx[1] = {2};
        double val[1] = {2};
        cr_assert_eq(em_nb_predict_sparse(m, 1, idx, val, &l, NULL, &err), 0);
        close_to(l, 1.0);
        em_nb_model_free(m);
    }
    em_context_free(sc);
}

Test(bayes, bernoulli_hand_table, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[2]");
    for (int sparse = 0; sparse < 2; sparse++) {
        em_nb_model *m = train(sc, BERN, 3, sparse, EM_NB_BERNOULLI);
        /* class 0: sums (2,1,1), n 2: theta = log((3,2,2)/4); class 1: sums (0,1,1), n 1:
         * theta = log((1,2,2)/3). */
        const double t[6] = {log(0.75), log(0.5), log(0.5), log(1 / 3.), log(2 / 3.), log(2 / 3.)};
        for (int i = 0; i < 6; i++)
            close_to(m->theta[i], t[i]);
        close_to(m->pi[0], log(3.0 / 5));
        /* x = (0,1,1): p0 = 0.6 * 0.25 * 0.5 * 0.5, p1 = 0.4 * (2/3)^3. */
        const double x[3] = {0, 1, 1}, bad[3] = {0, 2, 1};
        double l, pr[2], p0 = 0.6 * 0.25 * 0.25, p1 = 0.4 * 8 / 27.;
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_nb_predict(m, x, &l, pr, &err), 0);
        close_to(l, 1.0);
        close_to(pr[1], p1 / (p0 + p1));
        cr_assert_eq(em_nb_predict(m, bad, &l, pr, &err), EM_EINVAL);
        cr_assert(strstr(err.msg, "feature 2"), "%s", err.msg);
        em_nb_model_free(m);
    }
    em_context_free(sc);
}

Test(bayes, bad_rows_named, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[1]");
    const double neg[2][4] = {{0, 1, 1, 0}, {1, 0, -1, 1}};
    const double lab[2][4] = {{0, 1, 1, 0}, {2.5, 0, 1, 1}};
    em_nb_params p;
    em_nb_params_init(&p);
    em_nb_model *m = NULL;
    em_err err = EM_ERR_INIT;
    em_ml_data d = points(sc, neg, 2, false, 1);
    cr_assert_lt(em_nb_train(&d, &p, &m, &err), 0);
    cr_assert(strstr(err.msg, "row 2: feature 2 is -1"), "%s", err.msg);
    em_ml_data_release(&d);
    d = points(sc, lab, 2, true, 1);
    cr_assert_lt(em_nb_train(&d, &p, &m, &err), 0);
    cr_assert(strstr(err.msg, "row 2: label 2.5"), "%s", err.msg);
    em_ml_data_release(&d);
    p.smoothing = 0;
    d = points(sc, MULTI, 3, false, 1);
    cr_assert_eq(em_nb_train(&d, &p, &m, &err), EM_EINVAL);
    em_ml_data_release(&d);
    em_context_free(sc);
}

static void pairs_eval(const char *master, double *theta_out)
{
    em_context *sc = em_test_ctx_new(master);
    em_ml_data d = points(sc, MULTI, 3, true, 2);
    em_nb_params p;
    em_nb_params_init(&p);
    em_nb_model *m = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_nb_train(&d, &p, &m, &err), 0, "%s", err.msg);
    memcpy(theta_out, m->theta, 6 * sizeof(double));
    em_rdd *pairs;
    uint32_t bc;
    cr_assert_eq(em_nb_predict_pairs(sc, m, &d, &pairs, &bc, &err), 0, "%s", err.msg);
    em_records r = {0};
    cr_assert_eq(em_rdd_collect(pairs, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.n, 3);
    for (size_t i = 0; i < 3; i++) {
        double v[2];
        memcpy(v, r.recs[i].val.p, 16);
        close_to(v[1], MULTI[i][0]);   /* the training rows are classified right */
        close_to(v[0], MULTI[i][0]);
    }
    em_records_destroy(&r);
    em_eval_multiclass e;
    cr_assert_eq(em_eval_multiclass_rdd(pairs, 0, &e, &err), 0, "%s", err.msg);
    close_to(e.accuracy, 1.0);
    em_eval_multiclass_destroy(&e);
    /* log-loss: the mean of -log p(true label) from em_nb_predict's probabilities */
    double ll, want = 0;
    cr_assert_eq(em_nb_log_loss(sc, m, &d, &ll, &err), 0, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        double l, pr[2];
        cr_assert_eq(em_nb_predict(m, &MULTI[i][1], &l, pr, &err), 0);
        want -= log(pr[(int)MULTI[i][0]]) / 3;
    }
    close_to(ll, want);
    em_broadcast_destroy(sc, bc);
    em_nb_model_free(m);
    em_ml_data_release(&d);
    em_context_free(sc);
}

Test(bayes, local_and_cluster_same_model, .timeout = 120)
{
    double a[6], b[6];
    pairs_eval("local[2]", a);
    pairs_eval("local-cluster[2,1]", b);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
}

static void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
}

Test(bayes, save_load_round_trip_and_corruption, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_nb_model *m = train(sc, MULTI, 3, false, EM_NB_MULTINOMIAL), *l = NULL;
    char tmpl[] = "/tmp/nbtestXXXXXX";
    cr_assert(mkdtemp(tmpl));
    char *dir = em_xasprintf("%s/model", tmpl);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_nb_model_save(m, dir, &err), 0, "%s", err.msg);
    cr_assert_lt(em_nb_model_save(m, dir, &err), 0);   /* exists */
    cr_assert_eq(em_nb_model_load(dir, &l, &err), 0, "%s", err.msg);
    check_multinomial(l);
    cr_assert_eq(memcmp(l->wt, m->wt, 6 * 8), 0);
    em_nb_model_free(l);
    char *theta = em_xasprintf("%s/theta.bin", dir);
    flip_byte(theta, 13);
    cr_assert_eq(em_nb_model_load(dir, &l, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "theta"), "%s", err.msg);
    cr_assert_null(l);
    char *cmd = em_xasprintf("rm -rf %s", tmpl);
    cr_assert_eq(system(cmd), 0);
    em_free(cmd);
    em_free(theta);
    em_free(dir);
    em_nb_model_free(m);
    em_context_free(sc);
}
