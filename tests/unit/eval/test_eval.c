/* tests/unit/eval/test_eval.c - evaluation metrics: hand-computed small cases (tie groups
 * in the areas), figures computed offline with scikit-learn 1.2.1 on the same arrays
 * (roc_auc_score, log_loss, precision/recall/f1, precision_recall_fscore_support
 * weighted, confusion_matrix, mean_squared_error, mean_absolute_error, r2_score; AUC-PR
 * by Spark's trapezoid rule in numpy), the engine's forms equal to the _local ones in
 * local[2] and local-cluster[2,1] with several partitions, and bad labels rejected. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "mllib/eval/eval.h"
#include "tests/support/ctx.h"

#define NB 20
static const double BS[NB] = {0.9, 0.8, 0.8, 0.7, 0.6, 0.6, 0.6, 0.55, 0.5, 0.4,
                              0.4, 0.3, 0.2, 0.2, 0.1, 0.05, 0.95, 0.35, 0.65, 0.45};
static const double BL[NB] = {1, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0};
#define NM 15
static const double ML[NM] = {0, 1, 2, 2, 1, 0, 0, 2, 1, 1, 2, 0, 3, 3, 2};
static const double MP[NM] = {0, 2, 2, 2, 1, 0, 1, 1, 1, 0, 2, 0, 3, 2, 2};
#define NR 8
static const double RL[NR] = {3.0, -0.5, 2.0, 7.0, 1.5, 4.25, 0.0, -2.0};
static const double RP[NR] = {2.5, 0.0, 2.0, 8.0, 1.0, 4.0, 0.5, -1.0};

#define close_to(a, b) cr_assert(fabs((a) - (b)) < 1e-12, "%s = %.17g, want %.17g", #a, (a), (b))

static em_rdd *pairs(em_context *sc, const double *s, const double *l, size_t n, uint32_t np)
{
    static double buf[64][2];
    static em_rec recs[64];
    for (size_t i = 0; i < n; i++) {
        buf[i][0] = s[i];
        buf[i][1] = l[i];
        recs[i].key = em_slice_make(NULL, 0);
        recs[i].val = em_slice_make(buf[i], 16);
    }
    return em_parallelize(sc, EM_REC_FIXED, 16, recs, n, np);
}

Test(eval, binary_hand_computed_ties)
{
    /* groups 0.8:(1+,0-), 0.4:(1+,1-), 0.1:(0+,1-); P = N = 2.
     * ROC = (0 + 1 * (1 + 1/2) + 1 * 2) / 4 = 0.875.
     * PR points (0,1) (1/2,1) (1,2/3) (1,1/2): 1/2 + 1/2 * (1 + 2/3) / 2 = 11/12. */
    const double s[] = {0.4, 0.8, 0.1, 0.4}, l[] = {1, 1, 0, 0};
    em_eval_binary m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_eval_binary_local(s, l, 4, 0.5, true, &m, &err), 0, "%s", err.msg);
    close_to(m.auc_roc, 0.875);
    close_to(m.auc_pr, 11.0 / 12);
    cr_assert_eq(m.count, 4);
    cr_assert_eq(m.positives, 2);
    close_to(m.accuracy, 0.75);   /* only 0.8 > 0.5 predicted 1 */
    close_to(m.precision, 1.0);
    close_to(m.recall, 0.5);
}

static void check_binary(const em_eval_binary *m)
{
    close_to(m->auc_roc, 0.7272727272727273);
    close_to(m->auc_pr, 0.7349358244095086);
    close_to(m->log_loss, 0.6592560153341069);
    close_to(m->accuracy, 0.65);
    close_to(m->precision, 0.6);
    close_to(m->recall, 0.6666666666666666);
    close_to(m->f1, 0.631578947368421);
    cr_assert_eq(m->count, NB);
    cr_assert_eq(m->positives, 9);
}

Test(eval, binary_local_vs_sklearn)
{
    em_eval_binary m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_eval_binary_local(BS, BL, NB, 0.5, true, &m, &err), 0, "%s", err.msg);
    check_binary(&m);
    cr_assert_eq(em_eval_binary_local(BS, BL, NB, 0.5, false, &m, &err), 0);
    cr_assert(isnan(m.log_loss));
}

Test(eval, binary_bad_label)
{
    const double s[] = {0.1, 0.2}, l[] = {1, 2};
    em_eval_binary m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_eval_binary_local(s, l, 2, 0.5, true, &m, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "label 2"), "%s", err.msg);
}

Test(eval, binary_one_class_is_nan)
{
    const double s[] = {0.1, 0.2}, l[] = {1, 1};
    em_eval_binary m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_eval_binary_local(s, l, 2, 0.5, true, &m, &err), 0);
    cr_assert(isnan(m.auc_roc));
    json_t *o = json_object();
    em_eval_binary_json(&m, o);
    cr_assert_null(json_object_get(o, "auc"));
    cr_assert_not_null(json_object_get(o, "accuracy"));
    json_decref(o);
}

static void check_multi(const em_eval_multiclass *m)
{
    static const uint64_t want[16] = {3, 1, 0, 0, 1, 2, 1, 0, 0, 1, 4, 0, 0, 0, 1, 1};
    cr_assert_eq(m->nclasses, 4);
    cr_assert_eq(m->count, NM);
    close_to(m->accuracy, 0.6666666666666666);
    close_to(m->weighted_precision, 0.6888888888888888);
    close_to(m->weighted_recall, 0.6666666666666666);
    close_to(m->weighted_f1, 0.6646464646464647);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(m->confusion[i], want[i], "cell %d", i);
}

Test(eval, multiclass_local_vs_sklearn)
{
    em_eval_multiclass m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_eval_multiclass_local(MP, ML, NM, 0, &m, &err), 0, "%s", err.msg);
    check_multi(&m);
    json_t *o = json_object();
    em_eval_multiclass_json(&m, o);
    cr_assert_eq(json_array_size(json_object_get(o, "confusion")), 4);
    json_decref(o);
    em_eval_multiclass_destroy(&m);
    const double bad[] = {0, 1.5};
    cr_assert_eq(em_eval_multiclass_local(bad, ML, 2, 4, &m, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "1.5"), "%s", err.msg);
}

Test(eval, regression_local_vs_sklearn)
{
    em_eval_regression m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_eval_regression_local(RP, RL, NR, &m, &err), 0, "%s", err.msg);
    close_to(m.mse, 0.3828125);
    close_to(m.rmse, sqrt(0.3828125));
    close_to(m.mae, 0.53125);
    close_to(m.r2, 0.9467318929202337);
    cr_assert_eq(m.count, NR);
}

static void rdd_all(const char *master)
{
    em_context *sc = em_test_ctx_new(master);
    em_err err = EM_ERR_INIT;
    for (uint32_t np = 1; np <= 5; np += 2) {
        em_eval_binary b;
        cr_assert_eq(em_eval_binary_rdd(pairs(sc, BS, BL, NB, np), 0.5, true, &b, &err), 0,
                     "%s", err.msg);
        check_binary(&b);
        em_eval_multiclass m;
        cr_assert_eq(em_eval_multiclass_rdd(pairs(sc, MP, ML, NM, np), 0, &m, &err), 0, "%s",
                     err.msg);
        check_multi(&m);
        em_eval_multiclass_destroy(&m);
        em_eval_regression r;
        cr_assert_eq(em_eval_regression_rdd(pairs(sc, RP, RL, NR, np), &r, &err), 0, "%s",
                     err.msg);
        close_to(r.mse, 0.3828125);
        close_to(r.r2, 0.9467318929202337);
    }
    const double l2[] = {0, 3};
    em_eval_binary b;
    cr_assert_lt(em_eval_binary_rdd(pairs(sc, BS, l2, 2, 2), 0.5, true, &b, &err), 0);
    cr_assert(strstr(err.msg, "label 3"), "%s", err.msg);
    em_context_free(sc);
}

Test(eval, rdd_local, .timeout = 60)
{
    rdd_all("local[2]");
}

Test(eval, rdd_local_cluster, .timeout = 120)
{
    rdd_all("local-cluster[2,1]");
}

Test(eval, rdd_many_ties_across_partitions, .timeout = 60)
{
    /* 60 pairs with 4 distinct scores over 6 partitions: the sort keeps each tie group
     * in one partition, so the areas equal the local computation. */
    double s[60], l[60];
    for (int i = 0; i < 60; i++) {
        s[i] = (i * 7 % 4) * 0.25;
        l[i] = (i % 3 == 0 || i % 4 == 3) ? 1 : 0;
    }
    em_eval_binary a, b;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_eval_binary_local(s, l, 60, 0.3, true, &a, &err), 0);
    em_context *sc = em_test_ctx_new("local[2]");
    cr_assert_eq(em_eval_binary_rdd(pairs(sc, s, l, 60, 6), 0.3, true, &b, &err), 0, "%s",
                 err.msg);
    close_to(b.auc_roc, a.auc_roc);
    close_to(b.auc_pr, a.auc_pr);
    close_to(b.log_loss, a.log_loss);
    close_to(b.f1, a.f1);
    em_context_free(sc);
}
