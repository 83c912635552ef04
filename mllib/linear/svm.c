/* mllib/linear/svm.c - linear support vector machine on the fitting core of fit.c.
 *
 * LOSSES. SGD minimizes the hinge loss max(0, 1 - t z), t = 2y - 1, with its subgradient
 * (-t where the margin is violated, else 0): Spark's SVMWithSGD (HingeGradient). The hinge
 * is not differentiable at t z = 1, so L-BFGS on it stalls; for the quasi-Newton solver we
 * use the squared hinge max(0, 1 - t z)^2, which is continuously differentiable and has the
 * same separating behaviour: the L2-loss SVC that liblinear solves with -s 2 (primal,
 * trust-region Newton) and -s 1 (dual). Its gradient is -2 t max(0, 1 - t z). L1 goes
 * through OWL-QN (elastic_net > 0), as liblinear -s 5 (L1-regularized L2-loss SVC).
 * Either way the model's score is the raw margin w.x + b and the class is margin >
 * threshold (0 by default). */
#include <math.h>

#include "mllib/linear/linear_int.h"

int em_svm_train(em_context *sc, const em_ml_data *d, const em_linear_params *p,
                 em_linear_model **out, em_err *err)
{
    static const em_linear_params defaults;
    double t0 = em_now_s();
    *out = NULL;
    if (!p)
        p = &defaults;
    if (!d || !d->rows || !d->labeled)
        return em_err_set(err, EM_EINVAL, "linear SVM: needs labeled data");
    if (!isfinite(p->threshold))
        return em_err_set(err, EM_EINVAL, "linear SVM: threshold %g", p->threshold);
    bool sgd = p->solver == EM_LINEAR_SGD;
    lin_fit_opts o = {.loss = sgd ? LIN_HINGE : LIN_SQHINGE, .k = 1,
                      .intercept = !p->no_intercept, .standardize = !p->no_standardize,
                      .reg = p->reg_param, .alpha = p->elastic_net, .max_iter = p->max_iter,
                      .history = p->history, .tol = p->tol,
                      .grad_tol = p->grad_tol, .sgd = sgd, .step = p->step_size,
                      .fraction = p->batch_fraction, .seed = p->seed,
                      .progress = p->progress, .progress_ud = p->progress_ud,
                      .what = "linear SVM"};
    em_linear_model *m = em_linear_model_new(EM_LINEAR_SVM, d->dim, 1);
    m->threshold = p->threshold;
    lin_fit_out f;
    int rc = em__lin_fit(sc, d, &o, m, &f, err);
    if (rc < 0) {
        em_linear_model_free(m);
        return rc;
    }
    m->summary = em__lin_fit_summary(&f);
    json_object_set_new(m->summary, "train_s", json_real(em_now_s() - t0));
    json_object_set_new(m->summary, "loss", json_string(sgd ? "hinge" : "squared_hinge"));
    json_object_set_new(m->summary, "solver",
                        json_string(sgd ? "sgd" : p->elastic_net > 0 ? "owlqn" : "lbfgs"));
    json_decref(f.history);
    *out = m;
    return 0;
}
