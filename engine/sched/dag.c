/* engine/sched/dag.c - the DAG scheduler: cuts a job into stages at shuffle dependencies,
 * skips map stages whose outputs exist, runs task sets on the backend with retries, and
 * recovers from fetch failures by re-running the lost map outputs (docs/scheduling.md).
 *
 * DESIGN: a job is a list of map stages in dependency order (post-order walk from the final
 * node; a SHUFFLED node's map stage comes after the map stages its parent pipeline reads)
 * plus the result stage. Each round runs, in order, the missing map tasks of every map stage
 * and then the result tasks not yet done. A fetch failure unregisters the lost output and
 * starts a new round, which re-runs exactly the missing map ids (the tracker knows them) and
 * then the unfinished reduce tasks; at most EM_SCHED_MAX_STAGE_ATTEMPTS rounds. Ordinary
 * task failures are retried within the round up to max_failures attempts.
 * CACHE LOCALITY: each task carries the cached partition it reads first (em_sched_task_pref);
 * the cluster backend runs it where that partition was computed (docs/scheduling.md).
 * LISTENERS hear job, stage-round and task events (sched.h, listener section); emitting
 * them costs nothing when none is registered.
 * CONCURRENT JOBS: every job is on s->jobs while it runs (id = FIFO priority, group,
 * cancel flag). A map stage's run is a map_run on s->runs, owned by the job whose thread
 * runs its tasks; another job needing the same shuffle meanwhile waits on s->run_done
 * (recording the run in waiting_on) and then re-checks the tracker, so a shared stage
 * never runs twice. Waiting never happens while owning a run, so two jobs cannot wait
 * on each other.
 * CANCELLATION: em_sched_cancel sets the jobs' flags; a run's own flag (what its tasks
 * check) is set only when its owner and every job waiting for it are cancelled, so a
 * stage shared with a live job keeps running. Result tasks check their job's flag.
 * THREADS: em_sched_run_job* on any number of threads; s->lock guards stats, ids, jobs and
 * runs; listener callbacks are serialized by s->emit_lock. Tasks run on the backend's
 * threads. */
#include <pthread.h>
#include <string.h>

#include "engine/sched/sched.h"

typedef struct job job;

/* A map stage being run now for some job (s->runs, s->lock). */
typedef struct map_run {
    uint32_t sid;
    job *owner;                  /* the job whose thread runs it */
    atomic_bool cancel;          /* its tasks' flag: every job needing it is cancelled */
    struct map_run *next;
} map_run;

struct em_sched {
    em_task_backend backend;
    em_map_tracker *tracker;     /* borrowed */
    uint32_t max_failures;
    pthread_mutex_t lock;        /* guards the fields below up to emit_lock */
    pthread_cond_t run_done;     /* a map run ended or a job was cancelled */
    em_sched_stats stats;
    uint32_t next_stage_id;
    job *jobs;                   /* running jobs */
    map_run *runs;
    pthread_mutex_t emit_lock;   /* one listener call at a time */
    struct {
        em_sched_listener_fn fn;
        void *ud;
    } listeners[EM_SCHED_MAX_LISTENERS];
    uint32_t nlisteners;         /* set before jobs run */
};

/* One stage of a job: a map stage (shuffled != NULL) or the result stage. */
typedef struct stage {
    uint32_t id;
    const em_plan_node *shuffled;   /* map stage: the SHUFFLED node whose map side runs */
    const em_plan_node *root;       /* shuffled, or the job's final node (result stage) */
    char *json;
    size_t len;
    uint32_t rounds;                /* times submitted (listener's stage_attempt) */
    bool ran;                       /* this job ran map tasks of it (cancel cleanup) */
} stage;

struct job {
    uint32_t id;                    /* also its FIFO priority */
    char *group;                    /* owned; NULL = none */
    atomic_bool cancel;
    map_run *waiting_on;            /* another job's run it waits for (s->lock) */
    job *next;                      /* s->jobs */
    stage *maps;                    /* map stages, parents first (fixed once listed) */
    uint32_t nmaps;
    size_t cap;
    const em_plan_node **seen;      /* nodes visited by the walk */
    uint32_t nseen;
    size_t seen_cap;
    stage result;
    uint32_t *attempts;             /* result tasks: failed attempts per partition index */
    bool *done;                     /* result tasks finished */
    bool maps_only;                 /* no result stage (em_sched_run_map_stages) */
};

em_sched *em_sched_new(const em_sched_opts *opts, em_err *err)
{
    if (!opts->backend.ops || !opts->tracker) {
        if (opts->backend.ops && opts->backend.ops->free)
            opts->backend.ops->free(opts->backend.self);
        em_err_set(err, EM_EINVAL, "scheduler: a backend and a tracker are required");
        return NULL;
    }
    em_sched *s = em_xcalloc(1, sizeof *s);
    s->backend = opts->backend;
    s->tracker = opts->tracker;
    s->max_failures = opts->max_failures ? opts->max_failures : 4;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->run_done, NULL);
    pthread_mutex_init(&s->emit_lock, NULL);
    return s;
}

void em_sched_free(em_sched *s)
{
    if (!s)
        return;
    if (s->backend.ops && s->backend.ops->free)
        s->backend.ops->free(s->backend.self);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->run_done);
    pthread_mutex_destroy(&s->emit_lock);
    em_free(s);
}

void em_sched_stats_get(const em_sched *s, em_sched_stats *out)
{
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    *out = s->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
}

int em_sched_add_listener(em_sched *s, em_sched_listener_fn fn, void *ud, em_err *err)
{
    if (!fn || s->nlisteners == EM_SCHED_MAX_LISTENERS)
        return em_err_set(err, EM_EINVAL, "scheduler: %s", fn ? "too many listeners (max 8)"
                                                              : "listener without a function");
    s->listeners[s->nlisteners].fn = fn;
    s->listeners[s->nlisteners].ud = ud;
    s->nlisteners++;
    return 0;
}

static void emit(em_sched *s, const job *j, em_sched_event *ev)
{
    if (s->nlisteners == 0)
        return;
    ev->job_id = j->id;
    if (ev->time_s == 0)
        ev->time_s = em_now_s();
    pthread_mutex_lock(&s->emit_lock);
    for (uint32_t i = 0; i < s->nlisteners; i++)
        s->listeners[i].fn(s->listeners[i].ud, ev);
    pthread_mutex_unlock(&s->emit_lock);
}

/* Stage events share their identity fields. */
static em_sched_event stage_event(em_sched_event_kind kind, const stage *st, bool is_map)
{
    return (em_sched_event){.kind = kind,
                            .stage_id = st->id,
                            .stage_attempt = st->rounds ? st->rounds - 1 : 0,
                            .is_map = is_map,
                            .shuffle_id = is_map ? st->shuffled->shuffle_id : 0};
}

/* TASK_START when the backend starts a task (em_task_desc.on_start), so that the event
 * carries its executor and a task queued behind busy cores is not "running" yet. */
typedef struct start_ctx {
    em_sched *s;
    const job *j;
    const stage *st;
    const em_task_desc *tasks;   /* the batch handed to run_tasks */
    uint32_t k;
    bool *ended;                 /* [k]: TASK_END already emitted by on_task_end */
    double t0;                   /* when the batch was handed over */
} start_ctx;

static void on_task_start(void *ud, const em_task_desc *t, const char *exec_id)
{
    start_ctx *x = ud;
    em_sched_event ev = stage_event(EM_SCHED_TASK_START, x->st, t->is_map);
    ev.partition = t->partition;
    ev.attempt = t->attempt;
    ev.executor = exec_id;
    emit(x->s, x->j, &ev);
}

static void emit_task_end_at(em_sched *s, const job *j, const stage *st,
                             const em_task_desc *t, const em_task_result *r, double span_s,
                             const char *exec_id)
{
    if (s->nlisteners == 0)
        return;
    em_sched_event ev = stage_event(EM_SCHED_TASK_END, st, t->is_map);
    ev.partition = t->partition;
    ev.attempt = t->attempt;
    ev.duration_s = r->metrics.run_ns ? (double)r->metrics.run_ns / 1e9 : span_s;
    ev.code = r->code;
    ev.fetch_failed = r->fetch_failed;
    ev.error = r->code ? r->err.msg : NULL;
    ev.executor = r->exec_id[0] ? r->exec_id : exec_id && *exec_id ? exec_id : NULL;
    emit(s, j, &ev);
}

static void emit_task_end(em_sched *s, const job *j, const stage *st, const em_task_desc *t,
                          const em_task_result *r, double span_s)
{
    emit_task_end_at(s, j, st, t, r, span_s, NULL);
}

/* TASK_END as soon as the backend has the attempt's result (em_task_desc.on_end), so that a
 * stage never shows more running tasks than there are cores. */
static void on_task_end(void *ud, const em_task_desc *t, const em_task_result *r,
                        const char *exec_id)
{
    start_ctx *x = ud;
    size_t i = (size_t)(t - x->tasks);
    if (i >= x->k || x->ended[i])
        return;
    x->ended[i] = true;
    emit_task_end_at(x->s, x->j, x->st, t, r, em_now_s() - x->t0, exec_id);
}

static bool seen_add(job *j, const em_plan_node *n)
{
    for (uint32_t i = 0; i < j->nseen; i++)
        if (j->seen[i] == n)
            return false;
    j->seen = em_arr_xgrow(j->seen, &j->seen_cap, (size_t)j->nseen + 1, sizeof *j->seen);
    j->seen[j->nseen++] = n;
    return true;
}

/* Post-order walk: the map stages a node's pipeline depends on, parents first. s->lock
 * held (stage ids). */
static void walk(em_sched *s, job *j, const em_plan_node *n)
{
    if (!seen_add(j, n))
        return;
    for (uint32_t i = 0; i < n->nparents; i++)
        walk(s, j, n->parents[i]);
    if (n->op != EM_OP_SHUFFLED || n->nparents != 1)
        return;
    j->maps = em_arr_xgrow(j->maps, &j->cap, (size_t)j->nmaps + 1, sizeof *j->maps);
    stage *st = &j->maps[j->nmaps++];
    memset(st, 0, sizeof *st);
    st->shuffled = n;
    st->root = n;
    st->id = s->next_stage_id++;
    em_map_tracker_add_shuffle(s->tracker, n->shuffle_id, n->parents[0]->nparts);
}

static void job_destroy(job *j)
{
    for (uint32_t i = 0; i < j->nmaps; i++)
        em_free(j->maps[i].json);
    em_free(j->maps);
    em_free(j->seen);
    em_free(j->result.json);
    em_free(j->attempts);
    em_free(j->done);
    em_free(j->group);
}

void em_sched_free_payload(em_sched *s, void *payload)
{
    (void)s;
    em_task_result_free(payload);
}

/* Handles one finished attempt (the caller destroys *r afterwards; a result task's payload
 * is moved into *slot). Returns 0 on success, 1 on a fetch failure, 2 when the task is to be
 * retried, or <0 when it has failed max_failures times (err set). */
static int on_result(em_sched *s, const stage *st, const em_task_desc *t, em_task_result *r,
                     uint32_t *attempts, void **slot, em_err *err)
{
    pthread_mutex_lock(&s->lock);
    s->stats.tasks_run++;
    if (t->is_map)
        s->stats.map_tasks_run++;
    s->stats.spill_bytes += r->metrics.spill_bytes;
    if (r->code != 0)
        s->stats.task_failures++;
    if (r->code != 0 && r->fetch_failed)
        s->stats.fetch_failures++;
    pthread_mutex_unlock(&s->lock);
    if (r->code == 0) {
        if (t->is_map)
            return em_map_tracker_register(s->tracker, st->shuffled->shuffle_id, t->partition,
                                           r->map_status.loc, r->map_status.sizes,
                                           r->map_status.nparts, err);
        em_task_result_free(*slot);
        *slot = em_task_result_take(r);
        return 0;
    }
    if (r->fetch_failed) {
        em_map_tracker_unregister(s->tracker, r->failed_shuffle, r->failed_map);
        em_log(EM_LOG_WARN, "stage %u task %u: fetch failure (shuffle %u map %u): %s", st->id,
               t->partition, r->failed_shuffle, r->failed_map, r->err.msg);
        em_err_copy(err, &r->err);
        return 1;
    }
    /* Permission denied does not pass by retrying (Spark retries every failure; we know
     * better for this one): the job fails at the first attempt. Other codes are retried,
     * EM_ENOTFOUND and EM_ECORRUPT included, since lost blocks, broadcasts and damaged
     * cached blocks use them too and do pass on another attempt. */
    if (r->code == EM_EACCES) {
        ++*attempts;
        em_err_set(err, r->code, "task %u in stage %u failed (not retried: permission "
                   "denied): %s", t->partition, st->id, r->err.msg);
        return r->code;
    }
    if (++*attempts >= s->max_failures) {
        em_err_set(err, r->code, "task %u in stage %u failed %u times; last error: %s",
                   t->partition, st->id, *attempts, r->err.msg);
        return r->code < 0 ? r->code : EM_ETASK;
    }
    em_log(EM_LOG_WARN, "stage %u task %u attempt %u failed: %s", st->id, t->partition,
           *attempts - 1, r->err.msg);
    return 2;
}

/* ---------------------------------------------------------------- cache locality */

/* Ops whose partition i is computed from their only parent's partition i. */
static bool one_to_one(const em_plan_node *n)
{
    return em_op_one_to_one(n->op) && n->nparents == 1;
}

/* The walk of em_sched_task_pref from node n, partition part. Chains are followed in a loop;
 * only ZIP_PARTS unions recurse (depth-limited: a preference is a hint, never needed). */
static bool pref_walk(const em_plan_node *n, uint32_t part, uint32_t depth, uint32_t *rdd,
                      uint32_t *rpart)
{
    while (n && part < n->nparts) {
        if (n->level != EM_STORAGE_NONE) {
            *rdd = n->id;
            *rpart = part;
            return true;
        }
        if ((n->flags & EM_NODE_LOCAL_CKPT) && n->ckpt_rdd != 0 &&
            (n->op == EM_OP_CHECKPOINT_WRITE || n->op == EM_OP_CHECKPOINT_FILE)) {
            *rdd = n->ckpt_rdd;     /* the block rdd_<ckpt_rdd>_<part> the task writes/reads */
            *rpart = part;
            return true;
        }
        if (one_to_one(n)) {
            n = n->parents[0];
            continue;
        }
        if (n->op != EM_OP_UNION)
            return false;
        if (n->flags & EM_NODE_ZIP_PARTS) {
            for (uint32_t i = 0; depth < 64 && i < n->nparents; i++)
                if (pref_walk(n->parents[i], part, depth + 1, rdd, rpart))
                    return true;
            return false;
        }
        uint32_t i = 0;   /* plain union: parent i holds partitions [off_i, off_i + nparts_i) */
        while (i < n->nparents && part >= n->parents[i]->nparts)
            part -= n->parents[i++]->nparts;
        n = i < n->nparents ? n->parents[i] : NULL;
    }
    return false;
}

bool em_sched_task_pref(const em_plan_node *root, bool map_side, uint32_t part, uint32_t *rdd,
                        uint32_t *rpart)
{
    *rdd = 0;
    *rpart = 0;
    if (map_side)   /* the map side computes the SHUFFLED node's parent partition */
        root = root->op == EM_OP_SHUFFLED && root->nparents == 1 ? root->parents[0] : NULL;
    if (root && pref_walk(root, part, 0, rdd, rpart))
        return true;
    *rdd = 0;
    *rpart = 0;
    return false;
}

/* What run_stage runs: a stage of job j, map or result side, and the flag its tasks stop
 * on (the map run's, or the job's for result tasks). */
typedef struct stage_ctx {
    job *j;
    const stage *st;
    bool is_map;
    const atomic_bool *cancel;
} stage_ctx;

static int canceled(const job *j, em_err *err)
{
    return em_err_set(err, EM_ECANCELED, "job %u%s%s%s canceled", j->id,
                      j->group ? " (group " : "", j->group ? j->group : "",
                      j->group ? ")" : "");
}

/* Fills tasks[] with the unfinished partitions of the stage; returns how many (idx[k] =
 * the partition index of tasks[k]). */
static uint32_t make_tasks(const stage_ctx *c, const uint32_t *parts, uint32_t n,
                           const bool *done, const uint32_t *attempts, em_task_desc *tasks,
                           uint32_t *idx)
{
    const stage *st = c->st;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        tasks[k] = (em_task_desc){.stage_json = st->json, .len = st->len, .stage_id = st->id,
                                   .partition = parts[i], .attempt = attempts[i],
                                   .is_map = c->is_map, .prio = c->j->id, .cancel = c->cancel};
        em_sched_task_pref(st->root, c->is_map, parts[i], &tasks[k].pref_rdd,
                           &tasks[k].pref_part);
        idx[k++] = i;
    }
    return k;
}

/* Runs the partitions parts[i] with !done[i] of one stage until all succeed (0), a fetch
 * failure (1), a task gives up or the tasks' cancel flag is set (<0). Result tasks'
 * results go to slots[i]. */
static int run_stage(em_sched *s, const stage_ctx *c, const uint32_t *parts, uint32_t n,
                     bool *done, uint32_t *attempts, void **slots, em_err *err)
{
    em_task_desc *tasks = em_xcalloc(n ? n : 1, sizeof *tasks);
    em_task_result *res = em_xcalloc(n ? n : 1, sizeof *res);
    uint32_t *idx = em_xcalloc(n ? n : 1, sizeof *idx);
    bool *ended = em_xcalloc(n ? n : 1, sizeof *ended);
    start_ctx sx = {.s = s, .j = c->j, .st = c->st, .ended = ended};
    int rc = 0;

    for (;;) {
        uint32_t k = make_tasks(c, parts, n, done, attempts, tasks, idx);
        if (k == 0)
            break;
        memset(res, 0, k * sizeof *res);
        sx.tasks = tasks;
        sx.k = k;
        sx.t0 = em_now_s();
        memset(ended, 0, k * sizeof *ended);
        for (uint32_t i = 0; s->nlisteners && i < k; i++) {
            tasks[i].on_start = on_task_start;
            tasks[i].on_end = on_task_end;
            tasks[i].start_ud = &sx;
        }
        double t0 = em_now_s();
        if ((rc = s->backend.ops->run_tasks(s->backend.self, tasks, k, res, err)) < 0) {
            for (uint32_t i = 0; i < k; i++)
                em_task_result_destroy(&res[i]);
            break;
        }
        bool fetch = false, stop = atomic_load(c->cancel);
        double span = em_now_s() - t0;
        for (uint32_t i = 0; i < k; i++) {
            uint32_t p = idx[i];
            em_err terr = EM_ERR_INIT;
            if (!ended[i])   /* a backend that did not report it as it happened */
                emit_task_end(s, c->j, c->st, &tasks[i], &res[i], span);
            /* Once cancelled, nothing of the round counts (no output is registered). */
            int trc = stop ? 2 : on_result(s, c->st, &tasks[i], &res[i], &attempts[p],
                                           slots ? &slots[p] : NULL, &terr);
            em_task_result_destroy(&res[i]);
            if (trc == 0)
                done[p] = true;
            else if (trc == 1 && !fetch) {
                fetch = true;
                em_err_copy(err, &terr);
            } else if (trc < 0 && rc >= 0) {
                rc = trc;
                em_err_copy(err, &terr);
            }
        }
        if (stop) {
            rc = canceled(c->j, err);
            break;
        }
        if (rc < 0)
            break;
        if (fetch) {
            rc = 1;
            break;
        }
    }
    em_free(tasks);
    em_free(res);
    em_free(idx);
    em_free(ended);
    return rc;
}

/* Runs the missing map tasks of map stage st: 0 (all outputs registered), 1, or <0. */
static int run_map_stage(em_sched *s, job *j, const stage *st, const map_run *run, em_err *err)
{
    uint32_t sid = st->shuffled->shuffle_id;
    uint32_t nmaps = st->shuffled->parents[0]->nparts;
    uint32_t *missing = em_xcalloc(nmaps ? nmaps : 1, sizeof *missing);
    uint32_t n = em_map_tracker_missing(s->tracker, sid, missing);
    bool *done = em_xcalloc(n ? n : 1, sizeof *done);
    uint32_t *attempts = em_xcalloc(n ? n : 1, sizeof *attempts);
    stage_ctx c = {j, st, true, &run->cancel};
    int rc = run_stage(s, &c, missing, n, done, attempts, NULL, err);
    em_free(missing);
    em_free(done);
    em_free(attempts);
    return rc;
}

/* The map stages' encodings, and the result stage's unless the job has none. */
static int encode_stages(em_sched *s, job *j, const em_plan_node *final, const void *res,
                         em_err *err)
{
    const em_task_backend *b = &s->backend;
    for (uint32_t i = 0; i < j->nmaps; i++) {
        stage *st = &j->maps[i];
        if (!(st->json = b->ops->encode_stage(b->self, st->shuffled, true, NULL, err)))
            return em_err_prefix(err, "map stage %u (shuffle %u)", st->id,
                                 st->shuffled->shuffle_id);
        st->len = strlen(st->json);
    }
    if (j->maps_only)
        return 0;
    if (!(j->result.json = b->ops->encode_stage(b->self, final, false, res, err)))
        return em_err_prefix(err, "result stage %u", j->result.id);
    j->result.len = strlen(j->result.json);
    return 0;
}

/* STAGE_SUBMITTED for a new round of st with ntasks tasks to run. */
static double stage_begin(em_sched *s, job *j, stage *st, bool is_map, uint32_t ntasks)
{
    st->rounds++;
    em_sched_event ev = stage_event(EM_SCHED_STAGE_SUBMITTED, st, is_map);
    ev.ntasks = ntasks;
    emit(s, j, &ev);
    return em_now_s();
}

/* STAGE_COMPLETED for the round of st that run_stage ended with rc (0, 1 or <0). */
static void stage_end(em_sched *s, job *j, const stage *st, bool is_map, uint32_t ntasks,
                      double t0, int rc, const em_err *err)
{
    em_sched_event ev = stage_event(EM_SCHED_STAGE_COMPLETED, st, is_map);
    ev.ntasks = ntasks;
    ev.duration_s = em_now_s() - t0;
    ev.code = rc == 0 ? 0 : rc == 1 ? EM_EFETCH : rc;
    ev.error = rc ? err->msg : NULL;
    emit(s, j, &ev);
}

/* ---------------------------------------------------------------- shared map stages */

static map_run *find_run(em_sched *s, uint32_t sid)   /* s->lock held */
{
    for (map_run *r = s->runs; r; r = r->next)
        if (r->sid == sid)
            return r;
    return NULL;
}

/* Claims map stage st for j: waits while another job runs it, then 1 and *out (a new run
 * j owns) when map outputs are missing (*nmissing of them), 0 when none is, or
 * EM_ECANCELED (err set) when j is cancelled meanwhile. */
static int map_run_begin(em_sched *s, job *j, const stage *st, map_run **out,
                         uint32_t *nmissing, em_err *err)
{
    uint32_t sid = st->shuffled->shuffle_id;
    map_run *r;
    pthread_mutex_lock(&s->lock);
    while (!atomic_load(&j->cancel) && (r = find_run(s, sid)) != NULL) {
        j->waiting_on = r;
        pthread_cond_wait(&s->run_done, &s->lock);
        j->waiting_on = NULL;
    }
    if (atomic_load(&j->cancel)) {
        pthread_mutex_unlock(&s->lock);
        return canceled(j, err);
    }
    uint32_t n = em_map_tracker_missing(s->tracker, sid, NULL);
    if (n) {
        r = em_xcalloc(1, sizeof *r);
        r->sid = sid;
        r->owner = j;
        atomic_init(&r->cancel, false);
        r->next = s->runs;
        s->runs = r;
        *out = r;
        s->stats.stages_run++;
    }
    *nmissing = n;
    pthread_mutex_unlock(&s->lock);
    return n ? 1 : 0;
}

static void map_run_end(em_sched *s, map_run *run)
{
    pthread_mutex_lock(&s->lock);
    for (map_run **p = &s->runs; *p; p = &(*p)->next)
        if (*p == run) {
            *p = run->next;
            break;
        }
    pthread_cond_broadcast(&s->run_done);
    pthread_mutex_unlock(&s->lock);
    em_free(run);
}

/* The missing map outputs of j's map stages, parents first: 0, 1 on a fetch failure
 * (the round starts again), <0. */
static int run_maps(em_sched *s, job *j, uint32_t round, em_err *err)
{
    int rc;
    uint32_t n = 0;
    double t0;
    for (uint32_t i = 0; i < j->nmaps; i++) {
        stage *st = &j->maps[i];
        map_run *run = NULL;
        if ((rc = map_run_begin(s, j, st, &run, &n, err)) < 0)
            return rc;
        if (rc == 0) {
            if (round == 0) {
                pthread_mutex_lock(&s->lock);
                s->stats.stages_skipped++;
                pthread_mutex_unlock(&s->lock);
            }
            continue;
        }
        st->ran = true;
        t0 = stage_begin(s, j, st, true, n);
        rc = run_map_stage(s, j, st, run, err);
        stage_end(s, j, st, true, n, t0, rc, err);
        map_run_end(s, run);
        if (rc == 0 && atomic_load(&j->cancel))   /* a shared stage ran on for others */
            rc = canceled(j, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* One round: missing map outputs, then unfinished result tasks. 0 done, 1 fetch failure. */
static int run_round(em_sched *s, job *j, uint32_t round, const uint32_t *parts,
                     uint32_t nparts, void **results, em_err *err)
{
    int rc = run_maps(s, j, round, err);
    uint32_t n = 0;
    double t0;
    if (rc != 0 || j->maps_only)
        return rc;
    pthread_mutex_lock(&s->lock);
    s->stats.stages_run++;
    pthread_mutex_unlock(&s->lock);
    for (uint32_t i = 0; i < nparts; i++)
        n += !j->done[i];
    t0 = stage_begin(s, j, &j->result, false, n);
    stage_ctx c = {j, &j->result, false, &j->cancel};
    rc = atomic_load(&j->cancel) ? canceled(j, err)
                                 : run_stage(s, &c, parts, nparts, j->done, j->attempts,
                                             results, err);
    stage_end(s, j, &j->result, false, n, t0, rc, err);
    return rc;
}

/* ---------------------------------------------------------------- jobs */

static void job_begin(em_sched *s, job *j, uint32_t nparts)
{
    em_sched_event ev = {.kind = EM_SCHED_JOB_START, .ntasks = nparts,
                         .nstages = j->nmaps + (j->maps_only ? 0 : 1)};
    emit(s, j, &ev);
}

static void job_end(em_sched *s, job *j, double t0, int rc, const em_err *err)
{
    em_sched_event ev = {.kind = EM_SCHED_JOB_END, .duration_s = em_now_s() - t0,
                         .code = rc < 0 ? rc : 0, .error = rc < 0 ? err->msg : NULL};
    emit(s, j, &ev);
}

/* Lists j as running: id, stages (walk) and the tracker's shuffles, under s->lock. */
static void job_list(em_sched *s, job *j, const char *group, const em_plan_node *final)
{
    pthread_mutex_lock(&s->lock);
    j->id = (uint32_t)s->stats.jobs++;
    j->group = group ? em_xstrdup(group) : NULL;
    atomic_init(&j->cancel, false);
    walk(s, j, final);
    j->result.id = s->next_stage_id++;
    j->result.root = final;
    j->next = s->jobs;
    s->jobs = j;
    pthread_mutex_unlock(&s->lock);
}

/* Whether a running job other than j has a map stage writing shuffle sid. s->lock held. */
static bool shuffle_in_use(em_sched *s, const job *j, uint32_t sid)
{
    for (const job *o = s->jobs; o; o = o->next)
        for (uint32_t i = 0; o != j && i < o->nmaps; i++)
            if (o->maps[i].shuffled->shuffle_id == sid)
                return true;
    return find_run(s, sid) != NULL;
}

/* Takes j off the running list. A job that ended cancelled (rc) first removes the
 * shuffles it wrote that no other running job uses (tracker entries and files), still
 * under s->lock so that no job can start using them meanwhile. (A job whose cancel came
 * after its last task keeps its result and its shuffles.) */
static void job_unlist(em_sched *s, job *j, int rc)
{
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; rc == EM_ECANCELED && i < j->nmaps; i++) {
        uint32_t sid = j->maps[i].shuffled->shuffle_id;
        if (!j->maps[i].ran || shuffle_in_use(s, j, sid))
            continue;
        em_map_tracker_remove_shuffle(s->tracker, sid);
        if (s->backend.ops->remove_shuffle)
            s->backend.ops->remove_shuffle(s->backend.self, sid);
    }
    for (job **p = &s->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    pthread_mutex_unlock(&s->lock);
}

uint32_t em_sched_cancel(em_sched *s, const char *group)
{
    uint32_t n = 0;
    pthread_mutex_lock(&s->lock);
    for (job *j = s->jobs; j; j = j->next)
        if ((!group || (j->group && strcmp(j->group, group) == 0)) &&
            !atomic_exchange(&j->cancel, true))
            n++;
    /* A run stops only when no job that is not cancelled needs it. */
    for (map_run *r = s->runs; n && r; r = r->next) {
        bool live = !atomic_load(&r->owner->cancel);
        for (job *j = s->jobs; j && !live; j = j->next)
            live = j->waiting_on == r && !atomic_load(&j->cancel);
        if (!live)
            atomic_store(&r->cancel, true);
    }
    pthread_cond_broadcast(&s->run_done);
    pthread_mutex_unlock(&s->lock);
    if (n && s->backend.ops->wake)
        s->backend.ops->wake(s->backend.self);
    if (n)
        em_log(EM_LOG_INFO, "scheduler: %u job%s of %s%s%s canceled", n, n == 1 ? "" : "s",
               group ? "group '" : "every group", group ? group : "", group ? "'" : "");
    return n;
}

/* The rounds of a listed job (stages encoded): 0 or <0. */
static int run_rounds(em_sched *s, job *j, const uint32_t *parts, uint32_t nparts,
                      void **results, const em_plan_node *final, em_err *err)
{
    for (uint32_t round = 0;; round++) {
        int rc = run_round(s, j, round, parts, nparts, results, err);
        if (rc <= 0)
            return rc;
        if (round + 1 >= EM_SCHED_MAX_STAGE_ATTEMPTS)
            return em_err_prefix(err, "job on node %u: fetch failures in %u stage attempts",
                                 final->id, EM_SCHED_MAX_STAGE_ATTEMPTS);
    }
}

/* A job: result partitions parts[0..nparts) of final after its map stages, or (maps_only,
 * nparts 0) its map stages alone. */
static int run_job(em_sched *s, const char *group, const em_plan_node *final, const void *res,
                   const uint32_t *parts, uint32_t nparts, void **results, bool maps_only,
                   em_err *err)
{
    job j;
    uint32_t *seq = NULL;
    int rc = 0;

    if (final->err.code != 0)
        return em_err_copy(err, &final->err);
    if (nparts == 0 && !maps_only) {
        pthread_mutex_lock(&s->lock);
        s->stats.jobs++;
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    double t0 = em_now_s();
    memset(&j, 0, sizeof j);
    j.maps_only = maps_only;
    job_list(s, &j, group, final);
    job_begin(s, &j, nparts);
    if (!parts) {
        seq = em_xcalloc(nparts ? nparts : 1, sizeof *seq);
        for (uint32_t i = 0; i < nparts; i++)
            seq[i] = i;
        parts = seq;
    }
    for (uint32_t i = 0; i < nparts; i++)
        if (parts[i] >= final->nparts) {
            rc = em_err_set(err, EM_EINVAL, "job on node %u: partition %u of %u", final->id,
                            parts[i], final->nparts);
            goto out;
        }
    j.attempts = em_xcalloc(nparts ? nparts : 1, sizeof *j.attempts);
    j.done = em_xcalloc(nparts ? nparts : 1, sizeof *j.done);
    if ((rc = encode_stages(s, &j, final, res, err)) < 0)
        goto out;
    rc = run_rounds(s, &j, parts, nparts, results, final, err);
    if (rc < 0 && atomic_load(&j.cancel) && rc != EM_ECANCELED)
        rc = canceled(&j, err);   /* a task's failure caused by the cancel */
out:
    job_end(s, &j, t0, rc, err);
    job_unlist(s, &j, rc);
    if (rc == EM_ECANCELED)
        for (uint32_t i = 0; i < nparts; i++) {
            em_sched_free_payload(s, results[i]);
            results[i] = NULL;
        }
    job_destroy(&j);
    em_free(seq);
    return rc;
}

int em_sched_run_job_in_group(em_sched *s, const char *group, const em_plan_node *final,
                              const void *res, const uint32_t *parts, uint32_t nparts,
                              void **results, em_err *err)
{
    return run_job(s, group, final, res, parts, nparts, results, false, err);
}

int em_sched_run_map_stages(em_sched *s, const char *group, const em_plan_node *final,
                            em_err *err)
{
    return run_job(s, group, final, NULL, NULL, 0, NULL, true, err);
}

int em_sched_run_job(em_sched *s, const em_plan_node *final, const void *res,
                     const uint32_t *parts, uint32_t nparts, void **results, em_err *err)
{
    return em_sched_run_job_in_group(s, NULL, final, res, parts, nparts, results, err);
}
