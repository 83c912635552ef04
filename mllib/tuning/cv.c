/* mllib/tuning/cv.c - k-fold cross-validated searches of logistic regression and ALS: the
 * fold split, and the unit the search loop runs (one configuration fitted on the other
 * folds with the estimator's own distributed trainer, scored on its fold).
 *
 * FOLDS. Position pos goes to fold splitmix64(seed ^ pos) mod K: a seeded hash, so the K
 * folds are disjoint and cover the data, each about 1/K of it (Spark's MLUtils.kFold
 * samples cells of a seeded uniform draw in the same way: sizes are not exactly equal).
 * LR: pos = (partition << 40) | row within the partition, decided on the executors by
 * "ml.tune.fold" as the rows stream by (the rows stay cached once; a fold is a view).
 * ALS: pos = the rating's index in the input, decided on the driver, where the ratings are.
 *
 * WHY JOBS, NOT TASKS: a unit here is a distributed fit (every L-BFGS evaluation and every
 * ALS half-iteration is one pass on all executor cores), run one at a time; the MLP search
 * instead trains each trial inside one task (trial_mlp.c). linear.h and als.h offer no
 * single-threaded in-task trainer, and ALS allows one training per context at a time;
 * docs/mllib-tuning.md has the trade-off.
 *
 * FOLD CONTEXT BLOB (ml.tune.fold): u64 seed, u32 K, u32 fold, u8 mode (0: emit the rows
 * NOT in the fold, the training part; 1: emit the fold's rows). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/eval/eval.h"
#include "mllib/tuning/tuning_int.h"

#define FOLD_CTX 17

uint32_t em_tune_fold_of(uint64_t seed, uint64_t pos, uint32_t folds)
{
    uint64_t z = seed ^ pos;   /* splitmix64's finalizer (Steele, Lea & Flood 2014) */
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (uint32_t)(z % folds);
}

static int fn_fold(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                   em_err *err)
{
    if (c->blob.n != FOLD_CTX)
        return em_err_set(err, EM_ECORRUPT, "ml.tune.fold: context of %zu bytes", c->blob.n);
    uint64_t seed = em_load_le64(c->blob.p);
    uint32_t k = em_load_le32(c->blob.p + 8), fold = em_load_le32(c->blob.p + 12);
    bool want = c->blob.p[16] != 0;
    if (k < 2 || fold >= k)
        return em_err_set(err, EM_ECORRUPT, "ml.tune.fold: fold %u of %u", fold, k);
    em_rec r;
    int rc;
    for (uint64_t j = 0; (rc = em_iter_next(in, &r, err)) == 1; j++) {
        uint64_t pos = ((uint64_t)index << 40) | j;
        if ((em_tune_fold_of(seed, pos, k) == fold) == want &&
            (rc = em_emit_val(out, r.val, err)) < 0)
            return rc;
    }
    return rc;
}

static const em_fn_entry cv_fns[] = {
    {"ml.tune.fold", EM_FN_PARTITION, EM_FN(fn_fold)},
};

int em__tune_cv_register(void)
{
    return em_fn_register_table(cv_fns, sizeof cv_fns / sizeof cv_fns[0]);
}

static void no_model(void *m)
{
    (void)m;
}

/* ---------------------------------------------------------------- logistic regression */

typedef struct lr_est {
    em_context *sc;
    em_tune_lr_metric metric;
    uint64_t seed;
    em_ml_data train[EM_TUNE_MAX_FOLDS], valid[EM_TUNE_MAX_FOLDS];
} lr_est;

/* The rows of d in fold f (want) or out of it, as a lazy view of d's cached rows. */
static em_ml_data fold_view(const em_ml_data *d, uint64_t seed, uint32_t k, uint32_t f,
                            bool want)
{
    uint8_t b[FOLD_CTX];
    em_store_le64(b, seed);
    em_store_le32(b + 8, k);
    em_store_le32(b + 12, f);
    b[16] = want;
    em_ml_data v = *d;
    v.nrows = 0;
    v.skipped = 0;
    em_slice ctx = em_slice_make(b, sizeof b);
    v.rows = d->sparse ? em_rdd_map_partitions(d->rows, "ml.tune.fold", ctx, true)
                       : em_rdd_map_partitions_fixed(d->rows, "ml.tune.fold", ctx, true,
                                                     8 * (d->dim + 1));
    return v;
}

static void lr_budget(em_tune_trial *t, uint32_t b)
{
    t->lr.max_iter = b;
}

/* Fits t's configuration on the other folds and scores it on fold f. */
static int lr_run(void *self, const em_tune_trial *t, uint32_t f, em_tune_unit *u,
                  void **model, em_err *err)
{
    (void)model;
    lr_est *le = self;
    double t0 = em_now_s();
    em_linear_params p = t->lr;
    p.progress = NULL;
    p.progress_ud = NULL;
    p.seed = le->seed;
    em_linear_model *m = NULL;
    em_rdd *pairs = NULL;
    int rc = em_logistic_train(le->sc, &le->train[f], &p, &m, err);
    if (rc == 0)
        rc = em_linear_predict_pairs(le->sc, m, &le->valid[f], &pairs, err);
    if (rc == 0 && m->kind == EM_LINEAR_LOGISTIC) {
        em_eval_binary eb;
        rc = em_eval_binary_rdd(pairs, m->threshold, true, &eb, err);
        u->metric = le->metric == EM_TUNE_AUC       ? eb.auc_roc
                    : le->metric == EM_TUNE_LOGLOSS ? eb.log_loss
                                                    : eb.accuracy;
    } else if (rc == 0 && le->metric != EM_TUNE_ACCURACY) {
        rc = em_err_set(err, EM_EINVAL, "tune lr: log-loss and AUC need labels 0/1 "
                        "(%u classes found); use --metric accuracy", m->rows);
    } else if (rc == 0) {
        em_eval_multiclass mc;
        memset(&mc, 0, sizeof mc);
        rc = em_eval_multiclass_rdd(pairs, m->rows, &mc, err);
        u->metric = mc.accuracy;
        em_eval_multiclass_destroy(&mc);
    }
    json_t *it = m && m->summary ? json_object_get(m->summary, "iterations") : NULL;
    u->epochs = json_is_integer(it) ? (uint32_t)json_integer_value(it) : 0;
    u->seconds = em_now_s() - t0;
    snprintf(u->executor, sizeof u->executor, "distributed");
    em_rdd_release(pairs);
    em_linear_model_free(m);
    return rc;
}

int em_tune_lr_cv(em_context *sc, const em_tune_space *s, const em_tune_opts *o,
                  const em_linear_params *base, em_tune_lr_metric metric, uint32_t folds,
                  const em_ml_data *d, em_tune_result *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    int rc;
    if ((rc = em_tune_register()) < 0 || (rc = em_linear_register()) < 0)
        return em_err_set(err, rc, "tune: a task function name is taken");
    if (s->est != EM_TUNE_EST_LR)
        return em_err_set(err, EM_EINVAL, "tune lr: the space is not a logistic regression "
                          "space");
    if (folds < 2 || folds > EM_TUNE_MAX_FOLDS)
        return em_err_set(err, EM_EINVAL, "tune lr: %u folds (2..%d)", folds,
                          EM_TUNE_MAX_FOLDS);
    if (!d->labeled)
        return em_err_set(err, EM_EINVAL, "tune lr: the data set has no labels");
    lr_est *le = em_xcalloc(1, sizeof *le);
    le->sc = sc;
    le->metric = metric;
    le->seed = o->seed;
    for (uint32_t f = 0; f < folds; f++) {
        le->train[f] = fold_view(d, o->seed, folds, f, false);
        le->valid[f] = fold_view(d, o->seed, folds, f, true);
    }
    em_tune_trial b;
    memset(&b, 0, sizeof b);
    b.lr = *base;
    em__tune_est e = {.nfolds = folds, .lower = metric == EM_TUNE_LOGLOSS,
                      .bound = metric == EM_TUNE_LOGLOSS ? 0.0 : 1.0,
                      .budget_key = EM_TUNE_LR_ITER,
                      .max_budget = base->max_iter ? base->max_iter : 100,
                      .width = o->width ? o->width : 1, .base = &b, .set_budget = lr_budget,
                      .run = lr_run, .model_free = no_model, .self = le};
    void *none = NULL;
    rc = em__tune_search(sc, s, o, &e, out, &none, err);
    for (uint32_t f = 0; f < folds; f++) {
        em_ml_data_release(&le->train[f]);
        em_ml_data_release(&le->valid[f]);
    }
    em_free(le);
    return rc;
}

/* ---------------------------------------------------------------- ALS */

typedef struct als_est {
    em_context *sc;
    const em_rating *r;
    size_t n;
    int32_t nu, ni;
    uint8_t *fold;     /* fold of every rating */
    uint64_t seed;
} als_est;

static void als_budget(em_tune_trial *t, uint32_t b)
{
    t->als.iterations = (int)b;
}

static int als_run(void *self, const em_tune_trial *t, uint32_t f, em_tune_unit *u,
                   void **model, em_err *err)
{
    (void)model;
    als_est *ae = self;
    double t0 = em_now_s();
    size_t ntr = 0, nte = 0;
    for (size_t i = 0; i < ae->n; i++)
        nte += ae->fold[i] == f;
    ntr = ae->n - nte;
    em_rating *tr = em_xmalloc((ntr ? ntr : 1) * sizeof *tr);
    em_rating *te = em_xmalloc((nte ? nte : 1) * sizeof *te);
    ntr = nte = 0;
    for (size_t i = 0; i < ae->n; i++) {
        if (ae->fold[i] == f)
            te[nte++] = ae->r[i];
        else
            tr[ntr++] = ae->r[i];
    }
    em_als_params p = t->als;
    p.seed = ae->seed;
    p.progress = NULL;
    p.ratings_done = NULL;
    p.phase = NULL;
    p.progress_ud = NULL;
    p.train_metrics = NULL;
    em_als_model *m = NULL;
    int rc = em_als_train(ae->sc, tr, ntr, ae->nu, ae->ni, &p, &m, err);
    if (rc == 0) {
        em_als_metrics met;
        em_als_evaluate(m, te, nte, EM_COLD_DROP, &met);
        u->metric = met.n ? met.rmse : NAN;
    }
    u->epochs = (uint32_t)(p.iterations ? p.iterations : 10);
    u->seconds = em_now_s() - t0;
    snprintf(u->executor, sizeof u->executor, "distributed");
    em_als_model_free(m);
    em_free(tr);
    em_free(te);
    return rc;
}

int em_tune_als_cv(em_context *sc, const em_tune_space *s, const em_tune_opts *o,
                   const em_als_params *base, uint32_t folds, const em_rating *r, size_t n,
                   int32_t n_users, int32_t n_items, em_tune_result *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    if (s->est != EM_TUNE_EST_ALS)
        return em_err_set(err, EM_EINVAL, "tune als: the space is not an ALS space");
    if (folds < 2 || folds > EM_TUNE_MAX_FOLDS)
        return em_err_set(err, EM_EINVAL, "tune als: %u folds (2..%d)", folds,
                          EM_TUNE_MAX_FOLDS);
    if (n < folds)
        return em_err_set(err, EM_EINVAL, "tune als: %zu ratings for %u folds", n, folds);
    als_est ae = {.sc = sc, .r = r, .n = n, .nu = n_users, .ni = n_items, .seed = o->seed};
    ae.fold = em_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        ae.fold[i] = (uint8_t)em_tune_fold_of(o->seed, i, folds);
    em_tune_trial b;
    memset(&b, 0, sizeof b);
    b.als = *base;
    em__tune_est e = {.nfolds = folds, .lower = true, .bound = 0.0,
                      .budget_key = EM_TUNE_ALS_ITER,
                      .max_budget = base->iterations > 0 ? (uint32_t)base->iterations : 10,
                      .width = 1, .base = &b, .set_budget = als_budget,
                      .run = als_run, .model_free = no_model, .self = &ae};
    void *none = NULL;
    int rc = em__tune_search(sc, s, o, &e, out, &none, err);
    em_free(ae.fold);
    return rc;
}
