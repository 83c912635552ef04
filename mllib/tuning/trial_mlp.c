/* mllib/tuning/trial_mlp.c - the MLP search (em_tune_run): the data broadcasts, the trial
 * task, and the unit the search loop runs: one trial as a one-partition job.
 *
 * WIRE FORMATS (task records; driver and executors run the same build, so the structs
 * travel bytewise, checked by magic and size):
 *   trial record   trial_rec: magic, index, round, then em_mlp_params (callbacks NULL)
 *   result record  result_hdr, then nparams floats of weights
 *   context blob   two u32 broadcast ids (training set, validation set) */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/tuning/tuning_int.h"

#define TRIAL_MAGIC 0x4c525454u    /* "TTRL" */
#define RESULT_MAGIC 0x53455254u   /* "TRES" */

/* ---------------------------------------------------------------- the trial task */

typedef struct trial_rec {
    uint32_t magic, index, round, pad;
    em_mlp_params p;
} trial_rec;

typedef struct result_hdr {
    uint32_t magic, index, round, epochs_run;
    double metric, loss, seconds;
    char executor[64];
    uint32_t nlayers, sizes[EM_MLP_MAX_LAYERS + 1], act, regression;
    uint64_t nparams;
} result_hdr;

/* A broadcast data set as float views; *own is a copy when the bytes are misaligned. */
static int data_view(em_task *task, uint32_t id, const float **X, const float **y, size_t *n,
                     uint32_t *d, float **own, em_err *err)
{
    em_slice v;
    int rc = em_task_broadcast(task, id, &v, err);
    if (rc < 0)
        return rc;
    if (v.n < 16)
        return em_err_set(err, EM_ECORRUPT, "ml.tune: data broadcast of %zu bytes", v.n);
    uint64_t nn = em_load_le64(v.p);
    uint32_t dd = em_load_le32(v.p + 8);
    if (dd == 0 || nn > (v.n - 16) / 4 || (v.n - 16) / 4 / ((uint64_t)dd + 1) != nn ||
        (v.n - 16) != 4 * nn * ((uint64_t)dd + 1))
        return em_err_set(err, EM_ECORRUPT, "ml.tune: data broadcast does not hold %llu x %u",
                          (unsigned long long)nn, dd);
    const uint8_t *p = v.p + 16;
    *own = NULL;
    if ((uintptr_t)p % 4) {
        *own = em_xmalloc(v.n - 16);
        memcpy(*own, p, v.n - 16);
        p = (const uint8_t *)*own;
    }
    *X = (const float *)p;
    *y = (const float *)p + nn * dd;
    *n = (size_t)nn;
    *d = dd;
    return 0;
}

/* The trial's em_mlp_params.stop: its task was cancelled (the round was decided, or the
 * trial ran past its budget). */
static bool task_stop(void *task)
{
    return em_task_canceled(task);
}

static int fn_trial(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err)
{
    (void)index;
    if (c->blob.n != 8)
        return em_err_set(err, EM_ECORRUPT, "ml.tune.trial: bad context");
    /* The executor's cores run one trial each: no BLAS threads inside a trial. */
    openblas_set_num_threads(1);
    const float *X, *y, *xv, *yv;
    size_t n, nv;
    uint32_t d, dv;
    float *own = NULL, *ownv = NULL;
    int rc = data_view(c->task, em_load_le32(c->blob.p), &X, &y, &n, &d, &own, err);
    if (rc == 0)
        rc = data_view(c->task, em_load_le32(c->blob.p + 4), &xv, &yv, &nv, &dv, &ownv, err);
    if (rc == 0 && dv != d)
        rc = em_err_set(err, EM_ECORRUPT, "ml.tune: validation set has %u features, not %u",
                        dv, d);
    em_rec r;
    while (rc == 0 && (rc = em_iter_next(in, &r, err)) == 1) {
        rc = 0;
        trial_rec t;
        if (r.val.n != sizeof t) {
            rc = em_err_set(err, EM_ECORRUPT, "ml.tune.trial: record of %zu bytes", r.val.n);
            break;
        }
        memcpy(&t, r.val.p, sizeof t);
        if (t.magic != TRIAL_MAGIC) {
            rc = em_err_set(err, EM_ECORRUPT, "ml.tune.trial: bad record");
            break;
        }
        em_mlp_model *m = NULL;
        double t0 = em_now_s();
        t.p.progress = NULL;
        t.p.stop = task_stop;
        t.p.stop_ud = c->task;
        if ((rc = em_mlp_train_local(X, y, n, d, xv, yv, nv, &t.p, NULL, &m, err)) < 0) {
            em_err_prefix(err, "trial %u", t.index);
            break;
        }
        result_hdr h = {.magic = RESULT_MAGIC, .index = t.index, .round = t.round,
                        .epochs_run = m->epochs_run, .loss = m->train_loss,
                        .nlayers = m->nlayers, .act = m->act, .regression = m->regression,
                        .nparams = em_mlp_nparams(m)};
        h.metric = em_mlp_evaluate(m, xv, yv, nv, NULL);
        h.seconds = em_now_s() - t0;
        char host[32] = "";
        gethostname(host, sizeof host - 1);
        snprintf(h.executor, sizeof h.executor, "%s:%d", host, (int)getpid());
        memcpy(h.sizes, m->sizes, sizeof h.sizes);
        em_vbuf b;
        em_vbuf_init(&b);
        em_vbuf_append(&b, &h, sizeof h);
        em_vbuf_append(&b, m->params, 4 * h.nparams);
        rc = em_emit_val(out, em_slice_make(b.data, b.len), err);
        em_vbuf_destroy(&b);
        em_mlp_model_free(m);
    }
    em_free(own);
    em_free(ownv);
    return rc < 0 ? rc : 0;
}

static const em_fn_entry tune_fns[] = {
    {"ml.tune.trial", EM_FN_PARTITION, EM_FN(fn_trial)},
};

int em_tune_register(void)
{
    int rc = em_fn_register_table(tune_fns, sizeof tune_fns / sizeof tune_fns[0]);
    return rc < 0 ? rc : em__tune_cv_register();
}


/* ---------------------------------------------------------------- the driver */

static uint32_t data_bcast(em_context *sc, const float *X, const float *y, size_t n,
                           uint32_t d, em_err *err)
{
    size_t bytes = 16 + 4 * n * ((size_t)d + 1);
    uint8_t *b = em_xmalloc(bytes);
    em_store_le64(b, n);
    em_store_le32(b + 8, d);
    em_store_le32(b + 12, 0);
    memcpy(b + 16, X, 4 * n * d);
    memcpy(b + 16 + 4 * n * d, y, 4 * n);
    uint32_t id = em_broadcast(sc, em_slice_make(b, bytes), err);
    em_free(b);
    return id;
}

typedef struct mlp_est {
    em_context *sc;
    uint32_t bt, bv;   /* broadcast ids: training and validation sets */
} mlp_est;

/* The network of a result record, checked against its header. */
static int result_model(em_slice v, const em_tune_trial *t, em_tune_unit *u,
                        em_mlp_model **out, em_err *err)
{
    result_hdr h;
    if (v.n < sizeof h)
        return em_err_set(err, EM_ECORRUPT, "ml.tune: result of %zu bytes", v.n);
    memcpy(&h, v.p, sizeof h);
    if (h.magic != RESULT_MAGIC || h.index != t->index || h.nlayers == 0 ||
        h.nlayers > EM_MLP_MAX_LAYERS || (v.n - sizeof h) / 4 != h.nparams ||
        v.n != sizeof h + 4 * h.nparams)
        return em_err_set(err, EM_ECORRUPT, "ml.tune: bad result for trial %u", t->index);
    em_mlp_model *m = em_xcalloc(1, sizeof *m);
    m->nlayers = h.nlayers;
    memcpy(m->sizes, h.sizes, sizeof m->sizes);
    m->act = (em_mlp_act)h.act;
    m->regression = h.regression != 0;
    if (em_mlp_nparams(m) != h.nparams) {
        em_free(m);
        return em_err_set(err, EM_ECORRUPT, "ml.tune: result shape mismatch");
    }
    m->params = em_xmalloc(4 * (h.nparams ? h.nparams : 1));
    memcpy(m->params, v.p + sizeof h, 4 * h.nparams);
    m->valid_metric = h.metric;
    m->epochs_run = h.epochs_run;
    u->metric = h.metric;
    u->seconds = h.seconds;
    u->epochs = h.epochs_run;
    memcpy(u->executor, h.executor, sizeof u->executor);
    u->executor[sizeof u->executor - 1] = 0;
    *out = m;
    return 0;
}

/* One trial: a job of one partition holding the trial record; exactly one result. */
static int mlp_run(void *self, const em_tune_trial *t, uint32_t fold, em_tune_unit *u,
                   void **model, em_err *err)
{
    (void)fold;
    mlp_est *me = self;
    trial_rec tr = {.magic = TRIAL_MAGIC, .index = t->index, .round = t->round, .p = t->p};
    em_rec rec = {.val = em_slice_make(&tr, sizeof tr)};
    uint8_t blob[8];
    em_store_le32(blob, me->bt);
    em_store_le32(blob + 4, me->bv);
    em_rdd *cfg = em_parallelize(me->sc, EM_REC_BYTES, 0, &rec, 1, 1);
    em_rdd *res = em_rdd_map_partitions(cfg, "ml.tune.trial", em_slice_make(blob, 8), false);
    em_records out = {0};
    int rc = em_rdd_collect(res, &out, err);
    em_rdd_release(res);
    em_rdd_release(cfg);
    if (rc == 0 && out.n != 1)
        rc = em_err_set(err, EM_ECORRUPT, "ml.tune: %zu results for trial %u", out.n,
                        t->index);
    em_mlp_model *m = NULL;
    if (rc == 0)
        rc = result_model(out.recs[0].val, t, u, &m, err);
    em_records_destroy(&out);
    if (rc == 0) {
        u->metric = m->valid_metric;
        *model = m;
    }
    return rc;
}

static void mlp_budget(em_tune_trial *t, uint32_t b)
{
    t->p.epochs = b;
}

static void mlp_free(void *m)
{
    em_mlp_model_free(m);
}

int em_tune_run(em_context *sc, const em_tune_space *s, const em_tune_opts *o, const float *X,
                const float *y, size_t n, uint32_t d, const float *xv, const float *yv,
                size_t nv, em_tune_result *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    int rc;
    if ((rc = em_tune_register()) < 0 || (rc = em_mlp_register()) < 0)
        return em_err_set(err, rc, "tune: a task function name is taken");
    if (s->est != EM_TUNE_EST_MLP)
        return em_err_set(err, EM_EINVAL, "tune: the space is not an MLP space");
    if (n == 0 || nv == 0)
        return em_err_set(err, EM_EINVAL, "tune: empty training or validation set");
    mlp_est me = {.sc = sc};
    me.bt = data_bcast(sc, X, y, n, d, err);
    me.bv = me.bt ? data_bcast(sc, xv, yv, nv, d, err) : 0;
    if (!me.bt || !me.bv) {
        if (me.bt)
            em_broadcast_destroy(sc, me.bt);
        return err->code;
    }
    /* Two units per core: while a trial runs, the next one's job (its partition, stage and
     * launch) is made and waits in the scheduler's queue, so a core starts its next trial
     * as soon as the status of the last one reaches the driver instead of after the pool
     * thread has handled that result and set up a new job (in local-cluster every trial
     * otherwise left its executor idle for a round trip plus the job's setup). Not with a
     * trial budget: a unit's clock starts when a pool thread takes it, queued or not. */
    uint32_t par = em_context_default_parallelism(sc);
    uint32_t width = o->width ? o->width : o->trial_budget_s > 0 ? par : 2 * par;
    em__tune_est e = {.nfolds = 1, .lower = o->base.regression,
                      .bound = o->base.regression ? 0.0 : 1.0, .budget_key = EM_TUNE_EPOCHS,
                      .max_budget = o->base.epochs ? o->base.epochs : 10,
                      .width = width ? width : 1, .set_budget = mlp_budget, .run = mlp_run,
                      .model_free = mlp_free, .self = &me};
    void *best = NULL;
    rc = em__tune_search(sc, s, o, &e, out, &best, err);
    out->model = best;
    em_broadcast_destroy(sc, me.bt);
    em_broadcast_destroy(sc, me.bv);
    return rc;
}
