/* mllib/linear/logistic.c - logistic regression (Spark's ml LogisticRegression): binary
 * (sigmoid) and multinomial (softmax) on the fitting core of fit.c.
 *
 * START: with an intercept, the intercepts begin at the log-odds of the labels (binary:
 * log(n1 / n0); multinomial: log(1 + n_k) centred), which is the optimum of the model
 * without features, so the first L-BFGS steps go to the coefficients (Spark does the same).
 * MULTINOMIAL without regularization is over-parametrized (adding a vector to every class
 * changes nothing); as Spark, the coefficients and intercepts are then centred across
 * classes, which leaves every prediction unchanged. */
#include <math.h>
#include <string.h>

#include "mllib/linear/linear_int.h"

/* The number of classes and the family from the labels. */
static int classes(const lin_labels *ls, const em_linear_params *p, uint32_t *k, em_err *err)
{
    if (ls->count == 0)
        return em_err_set(err, EM_EINVAL, "logistic regression: no training row");
    if (ls->non_integer > 0 || ls->min < 0)
        return em_err_set(err, EM_EINVAL, "logistic regression: labels must be class numbers "
                          "0, 1, ... (found %g .. %g%s)", ls->min, ls->max,
                          ls->non_integer > 0 ? ", not all integers" : "");
    if (ls->max >= EM__LIN_MAX_CLASSES)
        return em_err_set(err, EM_EINVAL, "logistic regression: label %g (at most %u classes)",
                          ls->max, EM__LIN_MAX_CLASSES);
    uint32_t n = (uint32_t)ls->max + 1;
    if (n < 2)
        n = 2;
    if (p->family == EM_LOGISTIC_BINOMIAL && n > 2)
        return em_err_set(err, EM_EINVAL, "logistic regression: family binomial needs labels 0 "
                          "and 1 (found label %g)", ls->max);
    *k = p->family == EM_LOGISTIC_MULTINOMIAL || n > 2 ? n : 1;
    return 0;
}

static void initial_intercepts(const lin_labels *ls, uint32_t k, double *b)
{
    if (k == 1) {
        double n1 = ls->hist[1], n0 = ls->hist[0];
        b[0] = n1 > 0 && n0 > 0 ? log(n1 / n0) : 0;
        return;
    }
    double mean = 0;
    for (uint32_t r = 0; r < k; r++)
        mean += (b[r] = log1p(ls->hist[r])) / k;
    for (uint32_t r = 0; r < k; r++)
        b[r] -= mean;
}

static void center(em_linear_model *m)
{
    for (uint32_t j = 0; j <= m->dim; j++) {
        double s = 0;
        for (uint32_t r = 0; r < m->rows; r++)
            s += j < m->dim ? m->coef[(size_t)r * m->dim + j] : m->intercept[r];
        s /= m->rows;
        for (uint32_t r = 0; r < m->rows; r++)
            if (j < m->dim)
                m->coef[(size_t)r * m->dim + j] -= s;
            else
                m->intercept[r] -= s;
    }
}

int em_logistic_train(em_context *sc, const em_ml_data *d, const em_linear_params *p,
                      em_linear_model **out, em_err *err)
{
    static const em_linear_params defaults;
    lin_labels *ls = em_xcalloc(1, sizeof *ls);
    double t0 = em_now_s(), b0[EM__LIN_MAX_CLASSES];
    uint32_t k = 1;
    *out = NULL;
    if (!p)
        p = &defaults;
    int rc = em_linear_register();
    if (rc < 0)
        rc = em_err_set(err, rc, "logistic regression: a task function name is taken");
    else if (!d || !d->rows || !d->labeled)
        rc = em_err_set(err, EM_EINVAL, "logistic regression: needs labeled data");
    else if (!(p->threshold >= 0 && p->threshold < 1))
        rc = em_err_set(err, EM_EINVAL, "logistic regression: threshold %g (want [0, 1))",
                        p->threshold);
    if (rc == 0 && (rc = em__lin_label_stats(d, ls, err)) == 0)
        rc = classes(ls, p, &k, err);
    if (rc < 0) {
        em_free(ls);
        return rc;
    }
    initial_intercepts(ls, k, b0);
    lin_fit_opts o = {.loss = k == 1 ? LIN_LOGISTIC : LIN_MULTINOMIAL, .k = k,
                      .intercept = !p->no_intercept, .standardize = !p->no_standardize,
                      .reg = p->reg_param, .alpha = p->elastic_net, .max_iter = p->max_iter,
                      .history = p->history, .tol = p->tol,
                      .grad_tol = p->grad_tol, .sgd = p->solver == EM_LINEAR_SGD,
                      .step = p->step_size, .fraction = p->batch_fraction, .seed = p->seed,
                      .init_b = b0, .progress = p->progress, .progress_ud = p->progress_ud,
                      .what = "logistic regression"};
    em_linear_model *m = em_linear_model_new(k == 1 ? EM_LINEAR_LOGISTIC
                                                    : EM_LINEAR_MULTINOMIAL, d->dim, k);
    m->threshold = p->threshold > 0 ? p->threshold : 0.5;
    lin_fit_out f;
    em_free(ls);
    if ((rc = em__lin_fit(sc, d, &o, m, &f, err)) < 0) {
        em_linear_model_free(m);
        return rc;
    }
    if (k > 1 && p->reg_param == 0)
        center(m);
    m->summary = em__lin_fit_summary(&f);
    json_object_set_new(m->summary, "train_s", json_real(em_now_s() - t0));
    json_object_set_new(m->summary, "family", json_string(k == 1 ? "binomial" : "multinomial"));
    json_object_set_new(m->summary, "solver",
                        json_string(o.sgd ? "sgd" : p->elastic_net > 0 ? "owlqn" : "lbfgs"));
    json_decref(f.history);
    *out = m;
    return 0;
}
