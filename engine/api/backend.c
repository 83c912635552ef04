/* engine/api/backend.c - the local task backend of the scheduler: a pool of task threads
 * running tasks in this process with em_exec_run_task (master local[N]). It lives in api/
 * because the scheduler and the executor are on one level and may not include each other:
 * api wires them together through the scheduler's backend ops table.
 *
 * DESIGN: each run_tasks call (one per running job's stage) is a task set on lb->sets,
 * ordered by priority (the job id: FIFO scheduling as Spark's default, older jobs first)
 * and then by arrival. Task threads take the next unstarted task of the first set that
 * has one, run it without holding the lock and count the set down; run_tasks waits until
 * its set's `left` is zero. A task whose cancel flag is set is not started (its result
 * is EM_ECANCELED); a running one sees the flag through its env (em_exec_env.cancel) and
 * stops at its next check. Back on the caller's thread, each em_task_result is turned into
 * an em_sched_result (the full result becomes the payload of result tasks) and the
 * accumulator updates of successful attempts are applied, once. Map outputs are written
 * under env.shuffle_dir, which is also their location (em_fetcher_local reads the
 * directory named by the location). Big stage blobs are borrowed, not copied (LOCAL_BLOBS).
 * THREADS: run_tasks may be called by several threads at once; lb->lock guards the sets. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api/api_int.h"
#include "engine/cluster/cluster.h"

/* ---------------------------------------------------------------- blob cache
 * Big context blobs and result values of stages (exec.h, em_stage_blob_sink) in cluster
 * mode: kept as broadcast values in the driver's store under ids from BLOB_BCAST_BASE up
 * (user broadcasts count from 1). The same bytes get the same id, so a blob that several
 * jobs share (an iteration's unchanged context) is stored and reaches each executor once;
 * past BLOB_KEEP blobs or BLOB_KEEP_BYTES bytes the least recently used one is dropped
 * from the driver and the executors (a stage still running that needs it then fails
 * naming the broadcast: it takes BLOB_KEEP newer big blobs in between). Executors' tasks
 * borrow the fetched bytes (em__stage_resolve). Local mode needs no copy at all (below). */
#define BLOB_BCAST_BASE 0x80000000u
#define BLOB_KEEP 16
#define BLOB_KEEP_BYTES ((size_t)512 << 20)
typedef struct blob_ent {
    uint32_t id;
    uint32_t crc;                /* crc32c of the bytes: the lookup key (memcmp confirms) */
    size_t len;
} blob_ent;

typedef struct blob_cache {
    em_block_store *store;       /* the driver's (borrowed); NULL: no cache */
    em_cluster *cl;              /* executors to drop blobs from (set once it exists) */
    pthread_mutex_t lock;        /* the fields below */
    blob_ent blobs[BLOB_KEEP + 1];   /* least recently used first */
    size_t nblobs, bytes;
    uint32_t next;
} blob_cache;

static void blob_cache_init(blob_cache *bc, em_block_store *store)
{
    memset(bc, 0, sizeof *bc);
    bc->store = store;
    pthread_mutex_init(&bc->lock, NULL);
}

static void blob_drop_oldest(blob_cache *bc)   /* lock held */
{
    blob_ent e = bc->blobs[0];
    memmove(bc->blobs, bc->blobs + 1, (bc->nblobs - 1) * sizeof e);
    bc->nblobs--;
    bc->bytes -= e.len;
    em_block_store_remove(bc->store, (em_block_id){EM_BLOCK_BROADCAST, e.id, 0, 0});
    if (bc->cl)
        em_cluster_drop_blocks(bc->cl, EM_BLOCK_BROADCAST, e.id);
}

static void blob_cache_destroy(blob_cache *bc)
{
    pthread_mutex_destroy(&bc->lock);
}

/* Whether the store's broadcast id holds exactly the bytes b. */
static bool blob_is(blob_cache *bc, uint32_t id, em_slice b)
{
    em_batch **bs = NULL;
    size_t n = 0;
    em_err err = EM_ERR_INIT;
    em_block_id bid = {EM_BLOCK_BROADCAST, id, 0, 0};
    bool same = em_block_store_get(bc->store, bid, &bs, &n, &err) == 1 && n == 1 &&
                em_batch_nbytes(bs[0]) == b.n + 4 &&
                (b.n == 0 || memcmp(em_batch_payload(bs[0]) + 4, b.p, b.n) == 0);
    for (size_t i = 0; i < n; i++)
        em_batch_unref(bs[i]);
    em_free(bs);
    return same;
}

/* A new broadcast holding one copy of blob; 0 and err on failure. Lock held. */
static uint32_t blob_store(blob_cache *bc, em_slice blob, uint32_t crc, em_err *err)
{
    uint8_t *p = em_malloc(blob.n + 4);
    em_batch *b = NULL;
    if (p) {
        em_store_le32(p, (uint32_t)blob.n);
        memcpy(p + 4, blob.p, blob.n);
        b = em_batch_new_take(EM_REC_BYTES, 0, 1, p, blob.n + 4);
    }
    uint32_t id = BLOB_BCAST_BASE + (bc->next++ & 0x7fffffffu);
    em_block_id bid = {EM_BLOCK_BROADCAST, id, 0, 0};
    if (!b) {
        em_err_set(err, EM_ENOMEM, "context blob of %zu bytes", blob.n);
        return 0;
    }
    if (em_block_store_put_take(bc->store, bid, &b, 1, EM_STORAGE_MEMORY_AND_DISK, err) < 0)
        return 0;
    bc->blobs[bc->nblobs++] = (blob_ent){id, crc, blob.n};
    bc->bytes += blob.n;
    while (bc->nblobs > 1 && (bc->nblobs > BLOB_KEEP || bc->bytes > BLOB_KEEP_BYTES))
        blob_drop_oldest(bc);
    return id;
}

/* em_stage_blob_sink.put: the id of a broadcast holding blob. */
static uint32_t put_blob(void *ud, em_slice blob, em_err *err)
{
    blob_cache *bc = ud;
    uint32_t crc = em_crc32c(0, blob.p, blob.n), id = 0;
    pthread_mutex_lock(&bc->lock);
    for (size_t i = 0; i < bc->nblobs; i++)
        if (bc->blobs[i].crc == crc && bc->blobs[i].len == blob.n &&
            blob_is(bc, bc->blobs[i].id, blob)) {
            blob_ent e = bc->blobs[i];   /* most recently used: to the end */
            memmove(bc->blobs + i, bc->blobs + i + 1, (bc->nblobs - i - 1) * sizeof e);
            bc->blobs[bc->nblobs - 1] = e;
            id = e.id;
            break;
        }
    if (!id)
        id = blob_store(bc, blob, crc, err);
    pthread_mutex_unlock(&bc->lock);
    return id;
}

static char *encode_with(blob_cache *bc, const em_plan_node *root, bool map_side,
                         const void *res, em_err *err)
{
    em_stage_blob_sink sink = {put_blob, bc};
    return em_stage_encode_ext(root, map_side, res, bc->store ? &sink : NULL, err);
}

/* One run_tasks call's tasks (lb->sets, lb->lock). */
typedef struct task_set {
    const em_task_desc *tasks;
    em_task_result *results;     /* the caller's, one per task */
    size_t n, next;              /* tasks [next, n) are not started yet */
    size_t left;                 /* tasks not finished */
    uint64_t prio;
    struct task_set *link;
} task_set;

/* Big stage blobs in local mode (exec.h, "BIG CONTEXT BLOBS"): the stage's "blob_ref" ids
 * name the bytes the encoder was given (a plan node's blob, the action's result spec), which
 * stay valid while the job runs, and tasks borrow them through env.borrow_blob: no copy,
 * no base64, whatever the task count. The last LOCAL_BLOBS names are kept; a stage still
 * running after that many newer big blobs fails naming its blob (never reads freed bytes).
 * Ids are never reused (before 2^32 puts), so a task thread's cached decoded stage of an
 * ended job (engine/exec/task.c) is never matched by a later stage. */
#define LOCAL_BLOBS 4096

typedef struct local_backend {
    em_exec_env env;             /* strings below are owned copies */
    char *shuffle_dir, *spill_dir, *exec_id;
    em_task_acc_fn apply_acc;
    void *acc_ud;
    pthread_mutex_t blob_lock;   /* blob_names, blob_next */
    struct blob_name {
        uint32_t id;             /* 0: unused */
        em_slice bytes;          /* borrowed from the job that encoded the stage */
    } blob_names[LOCAL_BLOBS];   /* id i at i % LOCAL_BLOBS */
    uint32_t blob_next;
    pthread_t *threads;
    uint32_t nthreads;
    pthread_mutex_t lock;
    pthread_cond_t wake;         /* a set has unstarted tasks, or stopping */
    pthread_cond_t done;         /* some set's left reached 0 */
    task_set *sets;              /* guarded by lock: by prio, then arrival */
    bool stop;                   /* guarded by lock */
} local_backend;

/* The first set with an unstarted task, or NULL. Lock held. */
static task_set *next_set(local_backend *lb)
{
    for (task_set *s = lb->sets; s; s = s->link)
        if (s->next < s->n)
            return s;
    return NULL;
}

static void run_one(local_backend *lb, const em_task_desc *t, em_task_result *res)
{
    em_err err = EM_ERR_INIT;
    if (t->cancel && atomic_load(t->cancel)) {
        res->code = em_err_set(&res->err, EM_ECANCELED, "task %u of stage %u canceled "
                               "before it started", t->partition, t->stage_id);
        return;
    }
    em_exec_env env = lb->env;
    env.cancel = t->cancel;
    em_exec_run_task(&env, t->stage_json, t->len, t->partition, t->attempt, res, &err);
    if (res->code == 0 && err.code != 0) {
        /* Defensive: a runner that returned an error without filling the result. */
        res->code = err.code;
        em_err_copy(&res->err, &err);
    }
}

static void *thread_main(void *arg)
{
    local_backend *lb = arg;
    task_set *s;
    pthread_mutex_lock(&lb->lock);
    for (;;) {
        while (!lb->stop && !(s = next_set(lb)))
            pthread_cond_wait(&lb->wake, &lb->lock);
        if (lb->stop)
            break;
        size_t i = s->next++;
        pthread_mutex_unlock(&lb->lock);
        run_one(lb, &s->tasks[i], &s->results[i]);
        pthread_mutex_lock(&lb->lock);
        if (--s->left == 0)
            pthread_cond_broadcast(&lb->done);
    }
    pthread_mutex_unlock(&lb->lock);
    return NULL;
}

/* Finishes a task's result on the caller's thread: where it ran, where its map output
 * lies, and its accumulator updates applied once. */
static void finish(local_backend *lb, const em_task_desc *t, em_task_result *tr)
{
    snprintf(tr->exec_id, sizeof tr->exec_id, "driver");
    if (tr->code == 0 && lb->apply_acc && tr->nacc)
        lb->apply_acc(lb->acc_ud, tr->acc, tr->nacc);
    if (tr->code == 0 && t->is_map)
        snprintf(tr->map_status.loc, sizeof tr->map_status.loc, "%s", lb->shuffle_dir);
}

static int run_tasks(void *self, const em_task_desc *tasks, size_t n, em_task_result *results,
                     em_err *err)
{
    (void)err;
    local_backend *lb = self;
    if (n == 0)
        return 0;
    task_set set = {.tasks = tasks, .results = results, .n = n, .left = n,
                    .prio = tasks[0].prio};
    pthread_mutex_lock(&lb->lock);
    task_set **p = &lb->sets;
    while (*p && (*p)->prio <= set.prio)
        p = &(*p)->link;
    set.link = *p;
    *p = &set;
    pthread_cond_broadcast(&lb->wake);
    while (set.left > 0)
        pthread_cond_wait(&lb->done, &lb->lock);
    for (p = &lb->sets; *p != &set; p = &(*p)->link)
        ;
    *p = set.link;
    pthread_mutex_unlock(&lb->lock);
    for (size_t i = 0; i < n; i++)
        finish(lb, &tasks[i], &results[i]);
    return 0;
}

/* Cancelled tasks of the local backend stop by themselves (em_exec_env.cancel). */
static void local_remove_shuffle(void *self, uint32_t sid)
{
    local_backend *lb = self;
    em_shuffle_remove_files(lb->shuffle_dir, sid);
}

/* em_stage_blob_sink.put of local mode: a name for the caller's bytes (no copy). */
static uint32_t local_put_blob(void *ud, em_slice blob, em_err *err)
{
    (void)err;
    local_backend *lb = ud;
    pthread_mutex_lock(&lb->blob_lock);
    if (++lb->blob_next == 0)
        lb->blob_next = 1;
    uint32_t id = lb->blob_next;
    lb->blob_names[id % LOCAL_BLOBS] = (struct blob_name){id, blob};
    pthread_mutex_unlock(&lb->blob_lock);
    return id;
}

/* em_exec_env.borrow_blob of local mode. */
static int local_borrow_blob(void *ud, uint32_t id, em_slice *out, em_err *err)
{
    local_backend *lb = ud;
    pthread_mutex_lock(&lb->blob_lock);
    struct blob_name e = lb->blob_names[id % LOCAL_BLOBS];
    pthread_mutex_unlock(&lb->blob_lock);
    if (e.id != id)
        return em_err_set(err, EM_ENOTFOUND, "stage blob %u: forgotten (more than %d newer "
                          "big blobs since its stage was encoded)", id, LOCAL_BLOBS);
    *out = e.bytes;
    return 0;
}

static char *encode_stage(void *self, const em_plan_node *root, bool map_side, const void *res,
                          em_err *err)
{
    em_stage_blob_sink sink = {local_put_blob, self};
    return em_stage_encode_ext(root, map_side, res, &sink, err);
}

static void local_free(void *self)
{
    local_backend *lb = self;
    if (!lb)
        return;
    pthread_mutex_lock(&lb->lock);
    lb->stop = true;
    pthread_cond_broadcast(&lb->wake);
    pthread_mutex_unlock(&lb->lock);
    for (uint32_t i = 0; i < lb->nthreads; i++)
        pthread_join(lb->threads[i], NULL);
    em_free(lb->threads);
    pthread_cond_destroy(&lb->wake);
    pthread_cond_destroy(&lb->done);
    pthread_mutex_destroy(&lb->lock);
    pthread_mutex_destroy(&lb->blob_lock);
    em_free(lb->shuffle_dir);
    em_free(lb->spill_dir);
    em_free(lb->exec_id);
    em_free(lb);
}

static const em_task_backend_ops local_ops = {
    .name = "local",
    .encode_stage = encode_stage,
    .run_tasks = run_tasks,
    .remove_shuffle = local_remove_shuffle,
    .free = local_free,
};

int em__local_backend_new(const em_exec_env *env, uint32_t nthreads, em_task_acc_fn apply_acc,
                          void *acc_ud, em_task_backend *out, em_err *err)
{
    if (nthreads == 0)
        return em_err_set(err, EM_EINVAL, "local backend: 0 task threads");
    local_backend *lb = em_xcalloc(1, sizeof *lb);
    lb->env = *env;
    lb->shuffle_dir = em_xstrdup(env->shuffle_dir ? env->shuffle_dir : "");
    lb->spill_dir = em_xstrdup(env->spill_dir ? env->spill_dir : "");
    lb->exec_id = em_xstrdup(env->exec_id ? env->exec_id : "driver");
    lb->env.shuffle_dir = lb->shuffle_dir;
    lb->env.spill_dir = lb->spill_dir;
    lb->env.exec_id = lb->exec_id;
    lb->apply_acc = apply_acc;
    lb->acc_ud = acc_ud;
    lb->env.borrow_blob = local_borrow_blob;
    lb->env.blob_ud = lb;
    pthread_mutex_init(&lb->blob_lock, NULL);
    pthread_mutex_init(&lb->lock, NULL);
    pthread_cond_init(&lb->wake, NULL);
    pthread_cond_init(&lb->done, NULL);
    lb->threads = em_xcalloc(nthreads, sizeof *lb->threads);
    for (uint32_t i = 0; i < nthreads; i++) {
        if (pthread_create(&lb->threads[i], NULL, thread_main, lb) != 0) {
            local_free(lb);
            return em_err_set(err, EM_ENOMEM, "local backend: cannot start task thread %u of %u",
                              i, nthreads);
        }
        lb->nthreads = i + 1;
    }
    out->ops = &local_ops;
    out->self = lb;
    return 0;
}

/* ---------------------------------------------------------------- cluster backend
 * Executor processes through engine/cluster (which may not include the scheduler or the
 * executor: this is where they meet). Results come back as em_cluster_result and become
 * the same heap em_task_result payloads the local backend makes, so actions do not care
 * where tasks ran. A lost executor's map outputs are unregistered from the tracker; for a
 * ROUND_ROBIN shuffle (output order not repeatable) every output of it is. */

typedef struct cluster_backend {
    em_cluster *cl;
    blob_cache blobs;            /* big blobs of stages, in the driver's store */
    em_map_tracker *tracker;
    em_task_acc_fn apply_acc;
    void *acc_ud;
    pthread_mutex_t rr_lock;     /* jobs encode stages concurrently */
    uint32_t *rr;                /* ids of ROUND_ROBIN shuffles seen in encode_stage (rr_lock) */
    size_t nrr;
    void (*on_free)(void *ud);
    void *free_ud;
} cluster_backend;

static char *cl_encode_stage(void *self, const em_plan_node *root, bool map_side,
                             const void *res, em_err *err)
{
    cluster_backend *cb = self;
    if (map_side && root->op == EM_OP_SHUFFLED && root->map_part == EM_MAP_PART_ROUND_ROBIN) {
        bool seen = false;
        pthread_mutex_lock(&cb->rr_lock);
        for (size_t i = 0; i < cb->nrr; i++)
            seen |= cb->rr[i] == root->shuffle_id;
        if (!seen) {
            cb->rr = em_xrealloc(cb->rr, (cb->nrr + 1) * sizeof *cb->rr);
            cb->rr[cb->nrr++] = root->shuffle_id;
        }
        pthread_mutex_unlock(&cb->rr_lock);
    }
    return encode_with(&cb->blobs, root, map_side, res, err);
}

static void cl_on_exec_lost(void *ud, const char *loc)
{
    cluster_backend *cb = ud;
    uint32_t sids[256];
    uint32_t n = em_map_tracker_unregister_loc(cb->tracker, loc, sids, 256);
    pthread_mutex_lock(&cb->rr_lock);
    for (uint32_t i = 0; i < n && i < 256; i++)
        for (size_t k = 0; k < cb->nrr; k++)
            if (cb->rr[k] == sids[i]) {
                em_log(EM_LOG_WARN, "shuffle %u (round-robin) lost an output at %s: "
                       "recomputing all of it", sids[i], loc);
                em_map_tracker_unregister_all(cb->tracker, sids[i]);
            }
    pthread_mutex_unlock(&cb->rr_lock);
}

static int cl_run_tasks(void *self, const em_task_desc *tasks, size_t n,
                        em_task_result *results, em_err *err)
{
    cluster_backend *cb = self;
    if (n == 0)
        return 0;
    int rc = em_cluster_run_tasks(cb->cl, tasks, n, results, err);
    for (size_t i = 0; i < n; i++) {
        em_task_result *r = &results[i];
        r->fetch_failed = r->fetch_failed && r->code == EM_EFETCH;
        if (r->code == 0 && cb->apply_acc && r->nacc)
            cb->apply_acc(cb->acc_ud, r->acc, r->nacc);
    }
    return rc;
}

static void cl_free(void *self)
{
    cluster_backend *cb = self;
    if (!cb)
        return;
    em_cluster_free(cb->cl);
    blob_cache_destroy(&cb->blobs);
    if (cb->on_free)
        cb->on_free(cb->free_ud);
    em_free(cb->rr);
    pthread_mutex_destroy(&cb->rr_lock);
    em_free(cb);
}

static void cl_wake(void *self)
{
    cluster_backend *cb = self;
    em_cluster_wake(cb->cl);
}

static void cl_remove_shuffle(void *self, uint32_t sid)
{
    cluster_backend *cb = self;
    em_cluster_remove_shuffle(cb->cl, sid);
}

static const em_task_backend_ops cluster_ops = {
    .name = "cluster",
    .encode_stage = cl_encode_stage,
    .run_tasks = cl_run_tasks,
    .free = cl_free,
    .wake = cl_wake,
    .remove_shuffle = cl_remove_shuffle,
};

/* ember.locality.wait as Spark writes it: "3s", "500ms", "1m", "1h", or a number of ms; "0" =
 * never wait for the executor holding a task's cached block. */
int em__parse_locality_wait(const char *v, uint32_t *ms, em_err *err)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    double unit = strcmp(end, "") == 0 || strcmp(end, "ms") == 0 ? 1
                  : strcmp(end, "s") == 0                         ? 1000
                  : strcmp(end, "m") == 0 || strcmp(end, "min") == 0 ? 60000
                  : strcmp(end, "h") == 0                         ? 3600000
                                                                  : -1;
    if (errno || end == v || unit < 0 || !(x >= 0) || x * unit > 3600000)
        return em_err_set(err, EM_EINVAL, "ember.locality.wait: bad value '%s' (a duration "
                          "such as 3s or 500ms, at most 1 hour)", v);
    uint32_t w = (uint32_t)(x * unit + 0.5);
    *ms = w ? w : EM_CLUSTER_NO_LOCALITY_WAIT;
    return 0;
}

int em__cluster_backend_new(const em__cluster_cfg *cfg, em_task_backend *out, em_err *err)
{
    cluster_backend *cb = em_xcalloc(1, sizeof *cb);
    pthread_mutex_init(&cb->rr_lock, NULL);
    blob_cache_init(&cb->blobs, cfg->opts.store);
    cb->tracker = cfg->tracker;
    cb->apply_acc = cfg->apply_acc;
    cb->acc_ud = cfg->acc_ud;
    em_cluster_opts o = cfg->opts;
    o.map_outputs = em_map_tracker_outputs_lenient;
    o.map_ud = cfg->tracker;
    o.on_exec_lost = cl_on_exec_lost;
    o.lost_ud = cb;
    const em_cluster_master_ops *mo = em_cluster_master_ops_get();
    if (o.mode == EM_CLUSTER_ACCEPT && mo) {
        o.request_executor = mo->request_executor;
        o.request_ud = mo->ud;
    }
    int rc = 0;
    if (!(cb->cl = em_cluster_new(&o, err))) {
        rc = err->code ? err->code : EM_EIO;
        goto fail;
    }
    cb->blobs.cl = cb->cl;
    uint32_t want = o.nexec;
    if (o.mode == EM_CLUSTER_ACCEPT) {
        if (!mo || !mo->app_start) {
            rc = em_err_set(err, EM_EINVAL, "master '%s': no standalone client is linked in",
                            cfg->master_url ? cfg->master_url : "?");
            goto fail;
        }
        if ((rc = mo->app_start(mo->ud, cfg->master_url, em_cluster_address(cb->cl),
                                em_cluster_secret(cb->cl), &want, err)) < 0)
            goto fail;
        cb->on_free = mo->app_end;
        cb->free_ud = mo->ud;
    }
    if ((rc = em_cluster_wait_executors(cb->cl, want ? want : 1,
                                        o.register_timeout_ms ? o.register_timeout_ms : 60000,
                                        err)) < 0)
        goto fail;
    out->ops = &cluster_ops;
    out->self = cb;
    if (cfg->cluster_out)
        *cfg->cluster_out = cb->cl;
    return 0;
fail:
    cl_free(cb);
    return rc;
}

/* ---------------------------------------------------------------- executor runner */

static int exec_runner(void *ud, const em_cluster_env *ce, const char *json, size_t len,
                       uint32_t partition, uint32_t attempt, em_task_result *out)
{
    (void)ud;
    em_exec_env env = {
        .store = ce->store, .shuffle_dir = ce->shuffle_dir, .spill_dir = ce->spill_dir,
        .exec_id = ce->exec_id, .fetcher = ce->fetcher, .map_outputs = ce->map_outputs,
        .ud = ce->ud, .fetch_block = ce->fetch_block, .task_mem_budget = ce->task_mem_budget,
        .mem = ce->mem,
        .zstd_level = ce->zstd_level,
        .cancel = ce->cancel,
        .shuffle_sync = ce->shuffle_sync,
    };
    em_err err = EM_ERR_INIT;
    em_exec_run_task(&env, json, len, partition, attempt, out, &err);
    if (out->code == 0 && err.code != 0) {
        out->code = err.code;
        em_err_copy(&out->err, &err);
    }
    return out->code;
}

int em_executor_serve(struct em_executor_opts *o, em_err *err)
{
    em_registry_init_builtins();
    em__api_register_fns();
    o->run = exec_runner;
    o->run_ud = NULL;
    return em_executor_run(o, err);
}
