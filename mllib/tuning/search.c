/* mllib/tuning/search.c - the search loop every estimator shares: configurations (grid
 * order or seeded random draws), rounds (one, or successive halving's), and the pool of
 * driver threads that runs a round's units, each as its own job group.
 *
 * DESIGN. A round has n configurations x K folds units. min(width, units) pool threads
 * take units in order (most costly first when the estimator estimates costs: see
 * unit_order); each sets its unit's job group ("ember.tune.rR.uU"), runs the
 * estimator's unit (whose actions are the unit's jobs), and queues the result. The calling
 * thread (the "driver" below) sleeps on the pool's condition variable, and for each result
 * that arrives prints it (on_unit), folds it into its configuration, and asks whether the
 * round is decided (halving rounds before the last) or a unit is over its time budget; it
 * then cancels the groups of the units still running and stops handing out new ones. A
 * unit whose group was cancelled returns EM_ECANCELED; a cancelled unit that finished
 * anyway keeps its result (it cannot change a decided round). Every result is taken once:
 * a unit is run by exactly one pool thread and its job's task retries are the engine's.
 * LOCKS: p->lock guards the units' state, the queue, next, stop and alive; the driver
 * calls em_cancel_job_group under it (the engine never calls back into the pool). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mllib/tuning/tuning_int.h"

/* ---------------------------------------------------------------- configurations */

static void make_trial(const em_tune_space *s, const uint32_t *choice, const em_tune_opts *o,
                       const em_tune_trial *base, uint32_t index, em_tune_trial *t)
{
    memset(t, 0, sizeof *t);
    t->index = index;
    if (base) {
        t->lr = base->lr;
        t->als = base->als;
    }
    t->p = o->base;
    t->p.seed = o->seed;
    t->p.progress = NULL;
    t->p.stop = NULL;
    t->p.stop_ud = NULL;
    t->p.progress_ud = NULL;
    t->p.valid_rows = NULL;
    t->p.valid_rows_ud = NULL;
    em_vbuf b;
    em_vbuf_init(&b);
    for (uint32_t i = 0; i < s->nkeys; i++) {
        const char *v = s->vals[i][choice[i]];
        em__tune_apply(s->est, s->key[i], v, t);   /* checked when the space was parsed */
        em_vbuf_printf(&b, "%s%s=%s", i ? ";" : "", em__tune_key_name(s->est, s->key[i]), v);
    }
    em_vbuf_append(&b, "", 1);
    t->desc = (char *)b.data;   /* the buffer's bytes become the string */
}

/* The configurations to try (grid order, last key fastest, or seeded random draws);
 * base (may be NULL) holds the LR/ALS values of keys the space leaves out. */
static em_tune_trial *configs(const em_tune_space *s, const em_tune_opts *o,
                              const em_tune_trial *base, size_t *n, em_err *err)
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
        for (uint32_t k = s->nkeys; k-- > 0;) {
            if (o->method == EM_TUNE_RANDOM) {
                choice[k] = (uint32_t)em_rng_below(&rng, s->nvals[k]);
            } else {
                choice[k] = (uint32_t)(rest % s->nvals[k]);
                rest /= s->nvals[k];
            }
        }
        make_trial(s, choice, o, base, (uint32_t)i, &t[i]);
    }
    *n = (size_t)total;
    return t;
}

/* ---------------------------------------------------------------- ranking */

/* a better than b under the estimator's direction; NaN is worse than anything. */
static bool better(const em__tune_est *e, double a, double b)
{
    if (isnan(a))
        return false;
    if (isnan(b))
        return true;
    return e->lower ? a < b : a > b;
}

typedef struct rank_item {
    double metric;
    uint32_t index;   /* configuration number: ties go to the lower */
    size_t i;         /* position in the round */
    bool lower;
} rank_item;

static int cmp_rank(const void *pa, const void *pb)
{
    const rank_item *a = pa, *b = pb;
    em__tune_est e = {.lower = a->lower};
    if (better(&e, a->metric, b->metric))
        return -1;
    if (better(&e, b->metric, a->metric))
        return 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* The round's configurations with a metric, best first; returns how many. */
static size_t ranked(const em__tune_est *e, const em_tune_trial *c, const uint32_t *nok,
                     size_t n, rank_item *rk)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (nok[i] == e->nfolds && c[i].status == EM_TUNE_OK)
            rk[m++] = (rank_item){c[i].metric, c[i].index, i, e->lower};
    qsort(rk, m, sizeof *rk, cmp_rank);
    return m;
}

/* ---------------------------------------------------------------- the pool */

typedef struct unit_slot {
    uint32_t cfg, fold;   /* position of the configuration in the round; fold */
    int state;            /* 0 waiting, 1 running, 2 done */
    bool cancel;          /* the driver cancelled its group */
    em_tune_status why;   /* CANCELLED or BUDGET when cancel */
    double start_s;
    int rc;
    em_err err;
    em_tune_unit u;
    void *model;
} unit_slot;

typedef struct pool {
    em_context *sc;
    const em__tune_est *e;
    em_tune_trial *cand;
    uint32_t round;
    unit_slot *units;
    size_t *order;                 /* units in the order they start */
    size_t nunits, next;
    size_t *queue, qhead, qtail;   /* finished units, in order of arrival */
    bool stop;
    uint32_t alive;
    pthread_mutex_t lock;
    pthread_cond_t cond;
} pool;

static void group_name(const pool *p, size_t i, char g[48])
{
    snprintf(g, 48, "ember.tune.r%u.u%zu", p->round, i);
}

static void *worker(void *arg)
{
    pool *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stop && p->next < p->nunits) {
        size_t i = p->order[p->next++];
        unit_slot *s = &p->units[i];
        s->state = 1;
        s->start_s = em_now_s();
        pthread_mutex_unlock(&p->lock);
        char g[48];
        group_name(p, i, g);
        em_set_job_group(p->sc, g);
        em_err err = EM_ERR_INIT;
        void *model = NULL;
        em_tune_unit u = {.trial = p->cand[s->cfg].index, .round = p->round,
                          .fold = s->fold};
        int rc = p->e->run(p->e->self, &p->cand[s->cfg], s->fold, &u, &model, &err);
        em_set_job_group(p->sc, NULL);
        pthread_mutex_lock(&p->lock);
        s->rc = rc;
        s->err = err;
        s->u = u;
        s->model = model;
        s->state = 2;
        p->queue[p->qtail++] = i;
        pthread_cond_broadcast(&p->cond);
    }
    p->alive--;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Cancels unit i's group (p->lock held). Cancelling again is harmless: the driver repeats
 * it until the unit ends, which also catches a job started just after a cancel. */
static void cancel_unit(pool *p, size_t i, em_tune_status why)
{
    unit_slot *s = &p->units[i];
    if (!s->cancel) {
        s->cancel = true;
        s->why = why;
    }
    char g[48];
    group_name(p, i, g);
    em_cancel_job_group(p->sc, g);
}

/* Stops the round (p->lock held): no new unit starts, every running one is cancelled. */
static void stop_round(pool *p)
{
    p->stop = true;
    for (size_t i = 0; i < p->nunits; i++)
        if (p->units[i].state == 1)
            cancel_unit(p, i, EM_TUNE_CANCELLED);
}

/* ---------------------------------------------------------------- one round */

typedef struct round_state {
    uint32_t *nok;        /* per configuration: folds finished */
    double *sum;          /* per configuration: sum of fold metrics */
    void **model;         /* per configuration: fold 0's model */
    size_t keep;          /* halving: configurations kept (0: no early decision) */
    int rc;
    em_err err;
    uint64_t cancelled;
} round_state;

/* Whether no configuration still running or waiting could enter the best `keep`. */
static bool decided(const em__tune_est *e, const em_tune_trial *c, size_t n, round_state *st)
{
    if (st->keep == 0 || isnan(e->bound))
        return false;
    rank_item *rk = em_xmalloc((n ? n : 1) * sizeof *rk);
    size_t m = ranked(e, c, st->nok, n, rk);
    bool yes = m >= st->keep;
    if (yes) {
        rank_item last = rk[st->keep - 1];
        for (size_t i = 0; i < n && yes; i++) {
            if (c[i].status != EM_TUNE_OK || st->nok[i] == e->nfolds)
                continue;   /* dropped, or finished and ranked */
            if (better(e, e->bound, last.metric) ||
                (e->bound == last.metric && c[i].index < last.index))
                yes = false;
        }
    }
    em_free(rk);
    return yes;
}

/* Folds unit s's result into its configuration and calls on_unit (no lock held). */
static void take_unit(pool *p, const em_tune_opts *o, unit_slot *s, round_state *st)
{
    em_tune_trial *t = &p->cand[s->cfg];
    if (s->rc == EM_ECANCELED && s->cancel) {
        s->u.status = s->why;
        if (t->status == EM_TUNE_OK || s->why == EM_TUNE_BUDGET)
            t->status = s->why;
        st->cancelled++;
    } else if (s->rc < 0) {
        if (st->rc == 0) {
            st->rc = s->rc;
            st->err = s->err;
            em_err_prefix(&st->err, "trial %u fold %u", t->index, s->fold);
        }
        return;
    } else {
        s->u.status = EM_TUNE_OK;
        st->nok[s->cfg]++;
        st->sum[s->cfg] += s->u.metric;
        t->seconds += s->u.seconds;
        if (s->fold == 0) {
            t->epochs_run = s->u.epochs;
            memcpy(t->executor, s->u.executor, sizeof t->executor);
            st->model[s->cfg] = s->model;
            s->model = NULL;
        }
        if (p->e->nfolds > 1 && s->fold < EM_TUNE_MAX_FOLDS) {
            t->fold_metric[s->fold] = s->u.metric;
            t->nfolds = p->e->nfolds;
        }
        if (st->nok[s->cfg] == p->e->nfolds)
            t->metric = st->sum[s->cfg] / p->e->nfolds;
    }
    if (o->on_unit)
        o->on_unit(o->ud, t, &s->u);
}

/* Units over the time budget get cancelled (p->lock held); flagged units still running
 * are cancelled again. */
static void police(pool *p, const em_tune_opts *o)
{
    double now = em_now_s();
    for (size_t i = 0; i < p->nunits; i++) {
        unit_slot *s = &p->units[i];
        if (s->state != 1)
            continue;
        if (s->cancel)
            cancel_unit(p, i, s->why);
        else if (o->trial_budget_s > 0 && now - s->start_s > o->trial_budget_s)
            cancel_unit(p, i, EM_TUNE_BUDGET);
    }
}

static void wait_a_little(pool *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&p->cond, &p->lock, &ts);
}

/* The order in which the round's units start. Longest processing time first: with the
 * estimator's cost estimates, the most costly units start first (ties and equal costs in
 * unit order), so the round ends with short units filling the slots that free up instead
 * of one long unit running on alone (grid order puts the widest networks last). Results
 * are unaffected: every unit still runs once, the table and the best configuration are
 * kept in configuration order, ties to the lower configuration. Not in a successive
 * halving round that keeps the best few (every round but the last): there the round ends
 * as soon as it is decided (decided()), and grid order lets the cheap configurations
 * decide it before the costly ones have run. */
typedef struct order_item {
    double cost;
    size_t i;
} order_item;

static int cmp_order(const void *pa, const void *pb)
{
    const order_item *a = pa, *b = pb;
    if (a->cost != b->cost)
        return a->cost > b->cost ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static void unit_order(const em__tune_est *e, const em_tune_trial *cand, bool early, pool *p)
{
    for (size_t i = 0; i < p->nunits; i++)
        p->order[i] = i;
    if (!e->cost || early || p->nunits < 2)
        return;
    order_item *it = em_xmalloc(p->nunits * sizeof *it);
    for (size_t i = 0; i < p->nunits; i++) {
        double c = e->cost(e->self, &cand[p->units[i].cfg]);
        it[i] = (order_item){isfinite(c) ? c : 0.0, i};
    }
    qsort(it, p->nunits, sizeof *it, cmp_order);
    for (size_t i = 0; i < p->nunits; i++)
        p->order[i] = it[i].i;
    em_free(it);
}

/* Runs the round's n configurations (all folds); fills their results, st->model. */
static int run_round(em_context *sc, const em__tune_est *e, const em_tune_opts *o,
                     uint32_t round, em_tune_trial *cand, size_t n, round_state *st,
                     uint64_t *units_run, em_err *err)
{
    pool p = {.sc = sc, .e = e, .cand = cand, .round = round, .nunits = n * e->nfolds};
    p.units = em_xcalloc(p.nunits, sizeof *p.units);
    p.queue = em_xcalloc(p.nunits, sizeof *p.queue);
    p.order = em_xcalloc(p.nunits, sizeof *p.order);
    for (size_t i = 0; i < p.nunits; i++) {
        p.units[i].cfg = (uint32_t)(i / e->nfolds);
        p.units[i].fold = (uint32_t)(i % e->nfolds);
    }
    for (size_t i = 0; i < n; i++) {
        cand[i].status = EM_TUNE_OK;
        cand[i].metric = NAN;
        cand[i].seconds = 0;
        cand[i].nfolds = 0;
        cand[i].round = round;
        snprintf(cand[i].executor, sizeof cand[i].executor, "-");
    }
    unit_order(e, cand, st->keep > 0, &p);
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    uint32_t nthreads = e->width < p.nunits ? e->width : (uint32_t)p.nunits;
    pthread_t *th = em_xcalloc(nthreads, sizeof *th);
    pthread_mutex_lock(&p.lock);
    for (uint32_t i = 0; i < nthreads; i++)
        if (pthread_create(&th[i], NULL, worker, &p) == 0)
            p.alive++;
    if (p.alive == 0 && st->rc == 0) {
        st->rc = em_err_set(&st->err, EM_ENOMEM, "tune: cannot start a pool thread");
        p.stop = true;
    }
    while (p.alive > 0 || p.qhead < p.qtail) {
        if (p.qhead == p.qtail) {
            wait_a_little(&p);
            police(&p, o);
            continue;
        }
        unit_slot *s = &p.units[p.queue[p.qhead++]];
        pthread_mutex_unlock(&p.lock);
        take_unit(&p, o, s, st);
        e->model_free(s->model);
        s->model = NULL;
        (*units_run)++;
        pthread_mutex_lock(&p.lock);
        if (!p.stop && (st->rc < 0 || decided(e, cand, n, st)))
            stop_round(&p);
    }
    pthread_mutex_unlock(&p.lock);
    for (uint32_t i = 0; i < nthreads; i++)
        if (th[i])
            pthread_join(th[i], NULL);
    /* units never started: their configurations are cancelled */
    for (size_t i = 0; i < p.nunits; i++)
        if (p.units[i].state == 0) {
            st->cancelled++;
            if (cand[p.units[i].cfg].status == EM_TUNE_OK)
                cand[p.units[i].cfg].status = EM_TUNE_CANCELLED;
        }
    for (size_t i = 0; i < n; i++)
        if (st->nok[i] != e->nfolds && cand[i].status == EM_TUNE_OK)
            cand[i].status = EM_TUNE_CANCELLED;
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    em_free(th);
    em_free(p.queue);
    em_free(p.order);
    em_free(p.units);
    if (st->rc < 0) {
        *err = st->err;
        return st->rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- the search */

static void free_trials(em_tune_trial *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        em_free(t[i].desc);
    em_free(t);
}

/* The survivors of a round: its best `keep` configurations, best first (cand is freed). */
static em_tune_trial *survivors(const em__tune_est *e, em_tune_trial *cand, size_t n,
                                const uint32_t *nok, size_t keep, size_t *live)
{
    rank_item *rk = em_xmalloc((n ? n : 1) * sizeof *rk);
    size_t m = ranked(e, cand, nok, n, rk);
    if (keep > m)
        keep = m;
    em_tune_trial *next = em_xcalloc(keep ? keep : 1, sizeof *next);
    for (size_t i = 0; i < keep; i++) {
        next[i] = cand[rk[i].i];
        cand[rk[i].i].desc = NULL;
    }
    free_trials(cand, n);
    em_free(rk);
    *live = keep;
    return next;
}

int em__tune_search(em_context *sc, const em_tune_space *s, const em_tune_opts *o,
                    const em__tune_est *e, em_tune_result *out, void **best_model,
                    em_err *err)
{
    memset(out, 0, sizeof *out);
    *best_model = NULL;
    for (uint32_t k = 0; k < s->nkeys; k++)
        if (o->method == EM_TUNE_HALVING && s->key[k] == e->budget_key)
            return em_err_set(err, EM_EINVAL, "tune: successive halving sets '%s' itself "
                              "(leave it out of the space)",
                              em__tune_key_name(s->est, e->budget_key));
    size_t live;
    em_tune_trial *cand = configs(s, o, e->base, &live, err);
    if (!cand)
        return err->code;
    uint32_t eta = o->eta ? o->eta : 3, rounds = 1;
    if (o->method == EM_TUNE_HALVING)
        for (size_t k = live; k > 1; k = (k + eta - 1) / eta)
            rounds++;
    em_tune_trial *all = NULL;
    size_t nall = 0, besti = 0;
    double bestm = NAN;
    bool have_best = false;
    int rc = 0;
    for (uint32_t r = 0; r < rounds && rc == 0; r++) {
        if (o->method == EM_TUNE_HALVING) {
            double f = pow((double)eta, (double)r - (double)(rounds - 1));
            uint32_t bud = (uint32_t)floor(e->max_budget * f);
            for (size_t i = 0; i < live; i++)
                e->set_budget(&cand[i], bud ? bud : 1);
        }
        round_state st = {.nok = em_xcalloc(live, sizeof *st.nok),
                          .sum = em_xcalloc(live, sizeof *st.sum),
                          .model = em_xcalloc(live, sizeof *st.model),
                          .err = EM_ERR_INIT};
        if (o->method == EM_TUNE_HALVING && r + 1 < rounds)
            st.keep = (live + eta - 1) / eta;
        rc = run_round(sc, e, o, r, cand, live, &st, &out->units_run, err);
        out->units_cancelled += st.cancelled;
        if (rc == 0 && o->on_round)
            o->on_round(o->ud, r, cand, live);
        all = em_xrealloc(all, (nall + live) * sizeof *all);
        for (size_t i = 0; i < live; i++) {
            all[nall + i] = cand[i];
            all[nall + i].desc = em_xstrdup(cand[i].desc);
            if (rc == 0 && cand[i].status == EM_TUNE_OK && st.nok[i] == e->nfolds &&
                (!have_best || better(e, cand[i].metric, bestm))) {
                have_best = true;
                e->model_free(*best_model);
                *best_model = st.model[i];
                st.model[i] = NULL;
                bestm = cand[i].metric;
                besti = nall + i;
            }
            e->model_free(st.model[i]);
        }
        nall += live;
        if (rc == 0 && r + 1 < rounds) {
            cand = survivors(e, cand, live, st.nok, st.keep ? st.keep : live, &live);
            if (live == 0)
                rc = em_err_set(err, EM_ECANCELED, "tune: no configuration of round %u "
                                "finished (trial budget %g s)", r, o->trial_budget_s);
        }
        em_free(st.nok);
        em_free(st.sum);
        em_free(st.model);
    }
    free_trials(cand, live);
    if (rc == 0 && !have_best)
        rc = em_err_set(err, EM_ECANCELED, "tune: no configuration finished (trial budget "
                        "%g s)", o->trial_budget_s);
    out->trials = all;
    out->ntrials = nall;
    out->best = besti;
    out->rounds = rounds;
    if (rc < 0) {
        e->model_free(*best_model);
        *best_model = NULL;
        em_tune_result_destroy(out);
    }
    return rc;
}
