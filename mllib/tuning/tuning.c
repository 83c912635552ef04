/* mllib/tuning/tuning.c - search spaces, trial generation (grid, random, successive
 * halving), the trial task, and the result table (header comment of tuning.h).
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

#include "mllib/tuning/tuning.h"

#define TRIAL_MAGIC 0x4c525454u    /* "TTRL" */
#define RESULT_MAGIC 0x53455254u   /* "TRES" */

static const char *const key_names[EM_TUNE_NKEYS] = {
    "hidden", "lr", "batch", "wd", "epochs", "act", "dropout", "optim", "momentum"};

/* ---------------------------------------------------------------- the space */

/* Sets p's field for key from the value text; EM_EINVAL when it does not parse. */
static int apply(em_tune_key k, const char *v, em_mlp_params *p)
{
    char *e;
    double x;
    unsigned long u;
    switch (k) {
    case EM_TUNE_HIDDEN: {
        p->nhidden = 0;
        if (!strcmp(v, "0"))
            return 0;
        const char *s = v;
        for (;;) {
            if (*s < '0' || *s > '9')
                return EM_EINVAL;
            u = strtoul(s, &e, 10);
            if (u == 0 || u > EM_MLP_MAX_WIDTH || p->nhidden >= EM_MLP_MAX_LAYERS - 1)
                return EM_EINVAL;
            p->hidden[p->nhidden++] = (uint32_t)u;
            if (*e == 0)
                return 0;
            if (*e != '-')
                return EM_EINVAL;
            s = e + 1;
        }
    }
    case EM_TUNE_BATCH:
    case EM_TUNE_EPOCHS:
        if (*v < '0' || *v > '9')
            return EM_EINVAL;
        u = strtoul(v, &e, 10);
        if (*e || u == 0 || u > (k == EM_TUNE_BATCH ? (1ul << 20) : 100000ul))
            return EM_EINVAL;
        if (k == EM_TUNE_BATCH)
            p->batch = (uint32_t)u;
        else
            p->epochs = (uint32_t)u;
        return 0;
    case EM_TUNE_ACT:
        return em_mlp_act_parse(v, &p->act);
    case EM_TUNE_OPTIM:
        if (!strcmp(v, "adam") || !strcmp(v, "sgd")) {
            p->optim = !strcmp(v, "sgd") ? EM_MLP_SGD : EM_MLP_ADAM;
            return 0;
        }
        return EM_EINVAL;
    default:
        x = strtod(v, &e);
        if (!*v || *e || !isfinite(x) || x < 0)
            return EM_EINVAL;
        if (k == EM_TUNE_LR && x > 0)
            p->lr = x;
        else if (k == EM_TUNE_WD)
            p->weight_decay = x;
        else if (k == EM_TUNE_DROPOUT && x < 1)
            p->dropout = x;
        else if (k == EM_TUNE_MOMENTUM && x < 1)
            p->momentum = x;
        else
            return EM_EINVAL;
        return 0;
    }
}

void em_tune_space_destroy(em_tune_space *s)
{
    for (uint32_t i = 0; i < s->nkeys; i++)
        for (uint32_t j = 0; j < s->nvals[i]; j++)
            em_free(s->vals[i][j]);
    memset(s, 0, sizeof *s);
}

int em_tune_space_parse(const char *text, em_tune_space *s, em_err *err)
{
    memset(s, 0, sizeof *s);
    char *dup = em_xstrdup(text), *save = NULL;
    int rc = 0;
    for (char *part = strtok_r(dup, ";", &save); part && rc == 0;
         part = strtok_r(NULL, ";", &save)) {
        while (*part == ' ')
            part++;
        if (!*part)
            continue;
        char *eq = strchr(part, '=');
        if (!eq) {
            rc = em_err_set(err, EM_EINVAL, "space: '%s' is not key=v1,v2,...", part);
            break;
        }
        *eq = 0;
        int k = -1;
        for (int i = 0; i < EM_TUNE_NKEYS; i++)
            if (!strcmp(part, key_names[i]))
                k = i;
        if (k < 0) {
            rc = em_err_set(err, EM_EINVAL, "space: unknown key '%s' (hidden, lr, batch, wd, "
                            "epochs, act, dropout, optim, momentum)", part);
            break;
        }
        for (uint32_t i = 0; i < s->nkeys; i++)
            if (s->key[i] == (em_tune_key)k)
                rc = em_err_set(err, EM_EINVAL, "space: key '%s' given twice", part);
        if (rc < 0)
            break;
        uint32_t slot = s->nkeys++;
        s->key[slot] = (em_tune_key)k;
        char *vs = NULL;
        for (char *v = strtok_r(eq + 1, ",", &vs); v; v = strtok_r(NULL, ",", &vs)) {
            em_mlp_params tmp = {0};
            if (s->nvals[slot] == EM_TUNE_MAX_VALUES) {
                rc = em_err_set(err, EM_EINVAL, "space: more than %d values for '%s'",
                                EM_TUNE_MAX_VALUES, part);
                break;
            }
            if (apply((em_tune_key)k, v, &tmp) < 0) {
                rc = em_err_set(err, EM_EINVAL, "space: bad value '%s' for '%s'", v, part);
                break;
            }
            s->vals[slot][s->nvals[slot]++] = em_xstrdup(v);
        }
        if (rc == 0 && s->nvals[slot] == 0)
            rc = em_err_set(err, EM_EINVAL, "space: no values for '%s'", part);
    }
    if (rc == 0 && s->nkeys == 0)
        rc = em_err_set(err, EM_EINVAL, "space: empty (want key=v1,v2;key=...)");
    em_free(dup);
    if (rc < 0)
        em_tune_space_destroy(s);
    return rc;
}

uint64_t em_tune_space_size(const em_tune_space *s)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < s->nkeys; i++) {
        if (n > UINT64_MAX / s->nvals[i])
            return UINT64_MAX;
        n *= s->nvals[i];
    }
    return n;
}

/* Trial from a choice of value per key. */
static void make_trial(const em_tune_space *s, const uint32_t *choice, const em_tune_opts *o,
                       uint32_t index, em_tune_trial *t)
{
    memset(t, 0, sizeof *t);
    t->index = index;
    t->p = o->base;
    t->p.seed = o->seed;
    t->p.progress = NULL;
    t->p.progress_ud = NULL;
    em_vbuf b;
    em_vbuf_init(&b);
    for (uint32_t i = 0; i < s->nkeys; i++) {
        const char *v = s->vals[i][choice[i]];
        apply(s->key[i], v, &t->p);
        em_vbuf_printf(&b, "%s%s=%s", i ? ";" : "", key_names[s->key[i]], v);
    }
    em_vbuf_append(&b, "", 1);
    t->desc = (char *)b.data;   /* the buffer's bytes become the string */
}

void em_tune_result_destroy(em_tune_result *r)
{
    for (size_t i = 0; i < r->ntrials; i++)
        em_free(r->trials[i].desc);
    em_free(r->trials);
    em_mlp_model_free(r->model);
    memset(r, 0, sizeof *r);
}

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
    return em_fn_register_table(tune_fns, sizeof tune_fns / sizeof tune_fns[0]);
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

/* Runs trials t[0..n) as one job; fills their results; *models[i] gets trial i's network. */
static int run_round(em_context *sc, uint32_t bt, uint32_t bv, em_tune_trial *t, size_t n,
                     em_mlp_model **models, em_err *err)
{
    trial_rec *tr = em_xcalloc(n, sizeof *tr);
    em_rec *recs = em_xcalloc(n, sizeof *recs);
    for (size_t i = 0; i < n; i++) {
        tr[i] = (trial_rec){.magic = TRIAL_MAGIC, .index = t[i].index, .round = t[i].round,
                            .p = t[i].p};
        recs[i].val = em_slice_make(&tr[i], sizeof tr[i]);
    }
    uint8_t blob[8];
    em_store_le32(blob, bt);
    em_store_le32(blob + 4, bv);
    em_rdd *cfg = em_parallelize(sc, EM_REC_BYTES, 0, recs, n, (uint32_t)n);
    em_rdd *res = em_rdd_map_partitions(cfg, "ml.tune.trial", em_slice_make(blob, 8), false);
    em_records out = {0};
    int rc = em_rdd_collect(res, &out, err);
    em_rdd_release(res);
    em_rdd_release(cfg);
    em_free(tr);
    em_free(recs);
    if (rc < 0)
        return rc;
    bool *seen = em_xcalloc(n ? n : 1, 1);
    if (out.n != n)
        rc = em_err_set(err, EM_ECORRUPT, "ml.tune: %zu results for %zu trials", out.n, n);
    for (size_t k = 0; k < out.n && rc == 0; k++) {
        result_hdr h;
        em_slice v = out.recs[k].val;
        if (v.n < sizeof h) {
            rc = em_err_set(err, EM_ECORRUPT, "ml.tune: result of %zu bytes", v.n);
            break;
        }
        memcpy(&h, v.p, sizeof h);
        size_t i = 0;
        while (i < n && t[i].index != h.index)
            i++;
        if (h.magic != RESULT_MAGIC || i == n || seen[i] || h.nlayers == 0 ||
            h.nlayers > EM_MLP_MAX_LAYERS || v.n != sizeof h + 4 * h.nparams) {
            rc = em_err_set(err, EM_ECORRUPT, "ml.tune: bad or duplicate result");
            break;
        }
        seen[i] = true;
        t[i].metric = h.metric;
        t[i].train_loss = h.loss;
        t[i].seconds = h.seconds;
        t[i].epochs_run = h.epochs_run;
        memcpy(t[i].executor, h.executor, sizeof t[i].executor);
        t[i].executor[sizeof t[i].executor - 1] = 0;
        em_mlp_model *m = em_xcalloc(1, sizeof *m);
        m->nlayers = h.nlayers;
        memcpy(m->sizes, h.sizes, sizeof m->sizes);
        m->act = (em_mlp_act)h.act;
        m->regression = h.regression != 0;
        if (em_mlp_nparams(m) != h.nparams) {
            em_free(m);
            rc = em_err_set(err, EM_ECORRUPT, "ml.tune: result shape mismatch");
            break;
        }
        m->params = em_xmalloc(4 * (h.nparams ? h.nparams : 1));
        memcpy(m->params, v.p + sizeof h, 4 * h.nparams);
        m->valid_metric = h.metric;
        m->epochs_run = h.epochs_run;
        models[i] = m;
    }
    em_free(seen);
    em_records_destroy(&out);
    return rc;
}

static int cmp_metric_desc(const void *a, const void *b, bool lower)
{
    double x = *(const double *)a, y = *(const double *)b;
    if (lower)
        return (x > y) - (x < y);
    return (x < y) - (x > y);
}

typedef struct rank_item {
    double metric;
    size_t i;
} rank_item;

static int cmp_hi(const void *a, const void *b)
{
    int c = cmp_metric_desc(a, b, false);
    return c ? c : (((const rank_item *)a)->i > ((const rank_item *)b)->i) - (((const rank_item *)a)->i < ((const rank_item *)b)->i);
}

static int cmp_lo(const void *a, const void *b)
{
    int c = cmp_metric_desc(a, b, true);
    return c ? c : (((const rank_item *)a)->i > ((const rank_item *)b)->i) - (((const rank_item *)a)->i < ((const rank_item *)b)->i);
}

/* The configurations to try (grid order, or seeded random draws). */
static em_tune_trial *configs(const em_tune_space *s, const em_tune_opts *o, size_t *n,
                              em_err *err)
{
    uint64_t total = o->method == EM_TUNE_RANDOM ? o->random_trials : em_tune_space_size(s);
    if (total == 0 || total > EM_TUNE_MAX_TRIALS) {
        em_err_set(err, EM_EINVAL, "tune: %llu trials (1..%d)", (unsigned long long)total,
                   EM_TUNE_MAX_TRIALS);
        return NULL;
    }
    em_tune_trial *t = em_xcalloc(total, sizeof *t);
    em_rng rng;
    em_rng_seed(&rng, o->seed ^ 0x72616e64u);
    for (uint64_t i = 0; i < total; i++) {
        uint32_t choice[EM_TUNE_NKEYS];
        uint64_t rest = i;
        for (uint32_t k = s->nkeys; k-- > 0;) {   /* last key varies fastest */
            if (o->method == EM_TUNE_RANDOM) {
                choice[k] = (uint32_t)em_rng_below(&rng, s->nvals[k]);
            } else {
                choice[k] = (uint32_t)(rest % s->nvals[k]);
                rest /= s->nvals[k];
            }
        }
        make_trial(s, choice, o, (uint32_t)i, &t[i]);
    }
    *n = (size_t)total;
    return t;
}

int em_tune_run(em_context *sc, const em_tune_space *s, const em_tune_opts *o, const float *X,
                const float *y, size_t n, uint32_t d, const float *xv, const float *yv,
                size_t nv, em_tune_result *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    int rc;
    if ((rc = em_tune_register()) < 0 || (rc = em_mlp_register()) < 0)
        return em_err_set(err, rc, "tune: a task function name is taken");
    if (n == 0 || nv == 0)
        return em_err_set(err, EM_EINVAL, "tune: empty training or validation set");
    for (uint32_t k = 0; k < s->nkeys; k++)
        if (o->method == EM_TUNE_HALVING && s->key[k] == EM_TUNE_EPOCHS)
            return em_err_set(err, EM_EINVAL, "tune: successive halving sets the epochs "
                              "itself (leave 'epochs' out of the space)");
    size_t nc;
    em_tune_trial *cand = configs(s, o, &nc, err);
    if (!cand)
        return err->code;
    uint32_t bt = data_bcast(sc, X, y, n, d, err), bv = bt ? data_bcast(sc, xv, yv, nv, d, err) : 0;
    if (!bt || !bv) {
        if (bt)
            em_broadcast_destroy(sc, bt);
        for (size_t i = 0; i < nc; i++)
            em_free(cand[i].desc);
        em_free(cand);
        return err->code;
    }
    uint32_t eta = o->eta ? o->eta : 3, rounds = 1;
    if (o->method == EM_TUNE_HALVING)
        for (size_t k = nc; k > 1; k = (k + eta - 1) / eta)
            rounds++;
    uint32_t max_epochs = o->base.epochs ? o->base.epochs : 10;
    em_tune_trial *all = NULL;
    size_t nall = 0;
    em_mlp_model *best = NULL;
    double bestm = NAN;
    size_t besti = 0;
    bool lower = o->base.regression;
    size_t live = nc;
    for (uint32_t r = 0; r < rounds && rc == 0; r++) {
        if (o->method == EM_TUNE_HALVING) {
            double f = pow((double)eta, (double)r - (double)(rounds - 1));
            uint32_t e = (uint32_t)floor(max_epochs * f);
            for (size_t i = 0; i < live; i++) {
                cand[i].round = r;
                cand[i].p.epochs = e ? e : 1;
            }
        }
        em_mlp_model **models = em_xcalloc(live, sizeof *models);
        rc = run_round(sc, bt, bv, cand, live, models, err);
        if (rc == 0 && o->on_round)
            o->on_round(o->ud, r, cand, live);
        all = em_xrealloc(all, (nall + live) * sizeof *all);
        for (size_t i = 0; i < live; i++) {
            all[nall + i] = cand[i];
            all[nall + i].desc = em_xstrdup(cand[i].desc);
            if (rc == 0 && (isnan(bestm) || (lower ? cand[i].metric < bestm
                                                   : cand[i].metric > bestm))) {
                em_mlp_model_free(best);
                best = models[i];
                models[i] = NULL;
                bestm = cand[i].metric;
                besti = nall + i;
            }
            em_mlp_model_free(models[i]);
        }
        nall += live;
        em_free(models);
        if (rc < 0 || r + 1 == rounds)
            break;
        /* keep the best ceil(live / eta), in the order of their metric */
        rank_item *rk = em_xmalloc(live * sizeof *rk);
        for (size_t i = 0; i < live; i++)
            rk[i] = (rank_item){cand[i].metric, i};
        qsort(rk, live, sizeof *rk, lower ? cmp_lo : cmp_hi);
        size_t keep = (live + eta - 1) / eta;
        em_tune_trial *next = em_xcalloc(keep, sizeof *next);
        for (size_t i = 0; i < keep; i++) {
            next[i] = cand[rk[i].i];
            cand[rk[i].i].desc = NULL;
        }
        for (size_t i = 0; i < live; i++)
            em_free(cand[i].desc);
        em_free(cand);
        em_free(rk);
        cand = next;
        live = keep;
    }
    for (size_t i = 0; i < live; i++)
        em_free(cand[i].desc);
    em_free(cand);
    em_broadcast_destroy(sc, bt);
    em_broadcast_destroy(sc, bv);
    out->trials = all;
    out->ntrials = nall;
    out->best = besti;
    out->model = best;
    out->rounds = rounds;
    if (rc < 0)
        em_tune_result_destroy(out);
    return rc;
}

/* ---------------------------------------------------------------- the table */

int em_tune_write_csv(const em_tune_result *r, const char *path, em_err *err)
{
    em_vbuf b;
    em_vbuf_init(&b);
    em_vbuf_printf(&b, "trial,round,params,metric,train_loss,epochs,seconds,executor\n");
    for (size_t i = 0; i < r->ntrials; i++) {
        const em_tune_trial *t = &r->trials[i];
        em_vbuf_printf(&b, "%u,%u,\"%s\",%.17g,%.17g,%u,%.6f,%s\n", t->index, t->round,
                       t->desc, t->metric, t->train_loss, t->epochs_run, t->seconds,
                       t->executor);
    }
    int rc = em_write_file_atomic(path, b.data, b.len, err);
    em_vbuf_destroy(&b);
    return rc;
}

json_t *em_tune_trials_json(const em_tune_result *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->ntrials; i++) {
        const em_tune_trial *t = &r->trials[i];
        json_t *o = json_object();
        json_object_set_new(o, "trial", json_integer(t->index));
        json_object_set_new(o, "round", json_integer(t->round));
        json_object_set_new(o, "params", json_string(t->desc));
        json_object_set_new(o, "metric", json_real(t->metric));
        json_object_set_new(o, "epochs", json_integer(t->epochs_run));
        json_object_set_new(o, "seconds", json_real(t->seconds));
        json_object_set_new(o, "executor", json_string(t->executor));
        json_array_append_new(a, o);
    }
    return a;
}
