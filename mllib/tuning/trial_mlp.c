/* mllib/tuning/trial_mlp.c - the MLP search (em_tune_run): the data broadcasts, the trial
 * task, and the unit the search loop runs: one trial as a one-partition job.
 *
 * DATA. Four broadcasts: the training rows X (n x d floats, row-major), their labels y
 * (n floats), and the validation set's (xv, yv). Each is the caller's array itself (the
 * broadcast copies it once, no staging copy on the driver); the labels (a few KiB) are
 * pushed to the executors at once, the rows are fetched by each executor with its first
 * trial and kept for the rest. A trial waits for X only: xv comes on a helper thread
 * while it trains, and it is validated once, after its last epoch (valid_at_end: the
 * figure it reports, the same as validating every epoch and keeping the last).
 * WIRE FORMATS (driver and executors run the same build, so the structs travel bytewise,
 * checked by magic and size):
 *   context blob   trial_ctx: magic, the four broadcast ids, n, nv, d, then the trial
 *                  (trial_rec: magic, index, round, em_mlp_params with callbacks NULL);
 *                  the trial travels in the task itself, so a trial's job reads no input
 *                  block (its input is em_range's one record, made on the executor)
 *   result record  result_hdr, then nparams floats of weights */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
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

#define CTX_MAGIC 0x58544354u      /* "TCTX" */

typedef struct trial_ctx {
    uint32_t magic, bx, by, bxv, byv, d;   /* broadcast ids: X, y, xv, yv; features */
    uint64_t n, nv;                        /* training and validation rows */
    trial_rec t;
} trial_ctx;

typedef struct result_hdr {
    uint32_t magic, index, round, epochs_run;
    double metric, loss, seconds;
    char executor[64];
    uint32_t nlayers, sizes[EM_MLP_MAX_LAYERS + 1], act, regression;
    uint64_t nparams;
} result_hdr;

/* Broadcast id as nf floats; *own is a copy when the bytes are misaligned. */
static int float_view(em_task *task, uint32_t id, uint64_t nf, const float **out, float **own,
                      em_err *err)
{
    em_slice v;
    int rc = em_task_broadcast(task, id, &v, err);
    if (rc < 0)
        return rc;
    if (v.n / 4 != nf || v.n % 4)
        return em_err_set(err, EM_ECORRUPT, "ml.tune: data broadcast %u of %zu bytes, not "
                          "%llu floats", id, v.n, (unsigned long long)nf);
    *own = NULL;
    if ((uintptr_t)v.p % 4) {
        *own = em_xmalloc(v.n ? v.n : 1);
        memcpy(*own, v.p, v.n);
        *out = *own;
    } else {
        *out = (const float *)(const void *)v.p;
    }
    return 0;
}

/* The trial's em_mlp_params.stop: its task was cancelled (the round was decided, or the
 * trial ran past its budget). */
static bool task_stop(void *task)
{
    return em_task_canceled(task);
}

/* The validation rows, fetched on a thread of their own while the first epoch trains
 * (training reads them first at that epoch's end): the first trial on an executor waits
 * for the training rows only, and the rest of the data comes in behind its computation.
 * Until it is joined the helper is the only user of the task's broadcast table (em_task
 * is not thread-safe); the training thread meanwhile reads only the task's cancel flag. */
typedef struct late_rows {
    em_task *task;
    uint32_t id;
    uint64_t nf;
    const float *xv;
    float *own;
    int rc;
    em_err err;
    bool started;
    pthread_t th;
} late_rows;

static void *late_main(void *arg)
{
    late_rows *l = arg;
    l->rc = float_view(l->task, l->id, l->nf, &l->xv, &l->own, &l->err);
    return NULL;
}

/* Starts the fetch (on this thread if no thread can be had). */
static void late_start(late_rows *l)
{
    l->started = pthread_create(&l->th, NULL, late_main, l) == 0;
    if (!l->started)
        late_main(l);
}

/* Waits for the fetch; 0, or its error copied into err. Idempotent. */
static int late_join(late_rows *l, em_err *err)
{
    if (l->started) {
        pthread_join(l->th, NULL);
        l->started = false;
    }
    return l->rc < 0 ? em_err_copy(err, &l->err) : 0;
}

/* em_mlp_params.valid_rows */
static const float *late_get(void *ud, em_err *err)
{
    late_rows *l = ud;
    return late_join(l, err) < 0 ? NULL : l->xv;
}

static int fn_trial(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err)
{
    (void)index;
    trial_ctx x;
    if (c->blob.n != sizeof x)
        return em_err_set(err, EM_ECORRUPT, "ml.tune.trial: context of %zu bytes", c->blob.n);
    memcpy(&x, c->blob.p, sizeof x);
    if (x.magic != CTX_MAGIC || x.t.magic != TRIAL_MAGIC || x.d == 0 || x.n == 0 || x.nv == 0 ||
        x.n > UINT64_MAX / 4 / x.d || x.nv > UINT64_MAX / 4 / x.d)
        return em_err_set(err, EM_ECORRUPT, "ml.tune.trial: bad context");
    /* The executor's cores run one trial each: no BLAS threads inside a trial. */
    openblas_set_num_threads(1);
    const float *X = NULL, *y = NULL, *yv = NULL;
    float *own[3] = {NULL, NULL, NULL};
    late_rows lv = {.task = c->task, .id = x.bxv, .nf = x.nv * x.d};
    /* the labels first (pushed: in the executor's store already), then the rows */
    int rc = float_view(c->task, x.by, x.n, &y, &own[0], err);
    if (rc == 0)
        rc = float_view(c->task, x.byv, x.nv, &yv, &own[1], err);
    if (rc == 0)
        rc = float_view(c->task, x.bx, x.n * x.d, &X, &own[2], err);
    if (rc == 0)
        late_start(&lv);
    size_t n = (size_t)x.n, nv = (size_t)x.nv;
    uint32_t d = x.d;
    em_rec r;
    /* the input is one record (em_range's): one trial, one result */
    while (rc == 0 && (rc = em_iter_next(in, &r, err)) == 1) {
        rc = 0;
        trial_rec t = x.t;
        em_mlp_model *m = NULL;
        double t0 = em_now_s();
        t.p.progress = NULL;
        t.p.progress_ud = NULL;
        t.p.stop = task_stop;
        t.p.stop_ud = c->task;
        t.p.valid_rows = late_get;
        t.p.valid_rows_ud = &lv;
        t.p.valid_at_end = true;   /* the trial reports the last epoch's figure only */
        rc = em_mlp_train_local(X, y, n, d, NULL, yv, nv, &t.p, NULL, &m, err);
        if (rc == 0)
            rc = late_join(&lv, err);
        if (rc < 0) {
            em_mlp_model_free(m);
            em_err_prefix(err, "trial %u", t.index);
            break;
        }
        result_hdr h = {.magic = RESULT_MAGIC, .index = t.index, .round = t.round,
                        .epochs_run = m->epochs_run, .loss = m->train_loss,
                        .nlayers = m->nlayers, .act = m->act, .regression = m->regression,
                        .nparams = em_mlp_nparams(m)};
        /* training's last validation pass: the final (or best kept) network's */
        h.metric = isnan(m->valid_metric) ? em_mlp_evaluate(m, lv.xv, yv, nv, NULL)
                                          : m->valid_metric;
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
    em_err ignored = EM_ERR_INIT;
    late_join(&lv, &ignored);   /* an error, or no record: the helper may still run */
    em_free(lv.own);
    for (int i = 0; i < 3; i++)
        em_free(own[i]);
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

typedef struct mlp_est {
    em_context *sc;
    uint32_t bx, by, bxv, byv;   /* broadcast ids: training and validation rows, labels */
    uint32_t d, nout;            /* features; outputs (classes, or 1) */
    size_t n, nv;                /* training and validation rows */
} mlp_est;

/* A trial's estimated cost (search.c starts the most costly first), in multiply-adds of
 * its training: per row and epoch, forward and both backward GEMMs touch each of the P
 * parameters once (3 P), and a mini-batch costs about as much again as 24 rows (the
 * optimizer's pass over the parameters, thinner GEMMs: a batch of 64 is ~15% slower per
 * row than one of 128); each hidden unit adds its activation (tanh/sigmoid ~256
 * multiply-adds' time with the derivative, ReLU ~8; dropout's draw ~32); the validation
 * pass is a forward pass, once a trial (valid_at_end; every epoch with patience).
 * Calibrated on bench/ml_mlp.sh's grid; only the order it gives matters. */
static double mlp_cost(void *self, const em_tune_trial *t)
{
    const mlp_est *me = self;
    const em_mlp_params *p = &t->p;
    double P = 0, H = 0, in = me->d;
    uint32_t nh = p->nhidden < EM_MLP_MAX_LAYERS ? p->nhidden : EM_MLP_MAX_LAYERS - 1;
    for (uint32_t l = 0; l <= nh; l++) {
        double out = l < nh ? p->hidden[l] : me->nout;
        P += (in + 1) * out;
        if (l < nh)
            H += out;
        in = out;
    }
    double act = p->act == EM_MLP_TANH || p->act == EM_MLP_SIGMOID ? 256 : 8;
    if (p->dropout > 0)
        act += 32;
    double batch = p->batch ? p->batch : 128, epochs = p->epochs ? p->epochs : 10;
    double passes = p->patience ? epochs : 1;
    return epochs * (double)me->n * (3 * P * (1 + 24 / batch) + act * H) +
           passes * (double)me->nv * (P + act / 3 * H);
}

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

/* One trial: a job of one task whose context carries the trial; exactly one result. */
static int mlp_run(void *self, const em_tune_trial *t, uint32_t fold, em_tune_unit *u,
                   void **model, em_err *err)
{
    (void)fold;
    mlp_est *me = self;
    trial_ctx x;
    memset(&x, 0, sizeof x);   /* the padding travels too: set field by field */
    x.magic = CTX_MAGIC;
    x.bx = me->bx;
    x.by = me->by;
    x.bxv = me->bxv;
    x.byv = me->byv;
    x.d = me->d;
    x.n = me->n;
    x.nv = me->nv;
    x.t.magic = TRIAL_MAGIC;
    x.t.index = t->index;
    x.t.round = t->round;
    memcpy(&x.t.p, &t->p, sizeof x.t.p);
    x.t.p.progress = NULL;
    x.t.p.progress_ud = NULL;
    x.t.p.stop = NULL;
    x.t.p.stop_ud = NULL;
    x.t.p.valid_rows = NULL;
    x.t.p.valid_rows_ud = NULL;
    em_rdd *one = em_range(me->sc, 0, 1, 1, 1);
    em_rdd *res = em_rdd_map_partitions(one, "ml.tune.trial", em_slice_make(&x, sizeof x),
                                        false);
    em_records out = {0};
    int rc = em_rdd_collect(res, &out, err);
    em_rdd_release(res);
    em_rdd_release(one);
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
    if (d == 0)
        return em_err_set(err, EM_EINVAL, "tune: no features");
    mlp_est me = {.sc = sc, .d = d, .n = n, .nv = nv, .nout = 1};
    if (!o->base.regression) {
        float k = 0;
        for (size_t i = 0; i < n; i++)
            k = y[i] > k ? y[i] : k;
        me.nout = o->base.nclasses ? o->base.nclasses
                  : k < EM_MLP_MAX_WIDTH ? (uint32_t)k + 1 : EM_MLP_MAX_WIDTH;
    }
    /* the labels first: small, they are pushed to the executors at once */
    uint32_t *ids[4] = {&me.by, &me.byv, &me.bx, &me.bxv};
    em_slice vals[4] = {em_slice_make(y, 4 * n), em_slice_make(yv, 4 * nv),
                        em_slice_make(X, 4 * n * (size_t)d),
                        em_slice_make(xv, 4 * nv * (size_t)d)};
    for (int i = 0; i < 4; i++)
        if (!(*ids[i] = em_broadcast(sc, vals[i], err))) {
            while (i-- > 0)
                em_broadcast_destroy(sc, *ids[i]);
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
                      .model_free = mlp_free, .cost = mlp_cost, .self = &me};
    void *best = NULL;
    rc = em__tune_search(sc, s, o, &e, out, &best, err);
    out->model = best;
    for (int i = 0; i < 4; i++)
        em_broadcast_destroy(sc, *ids[i]);
    return rc;
}
