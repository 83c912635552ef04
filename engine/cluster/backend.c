/* engine/cluster/backend.c - the cluster task backend: the backend interface of
 * engine/task (what the scheduler calls) over executor processes (em_cluster). It encodes
 * stages with their big blobs as broadcasts in the driver's store (the blob cache), runs
 * task sets with em_cluster_run_tasks, applies the accumulator updates of successful
 * attempts once, and unregisters a lost executor's map outputs from the map-output
 * tracker (for a ROUND_ROBIN shuffle, whose output order is not repeatable, every output
 * of it). Results arrive from the wire already as em_task_result (engine/task): the
 * scheduler and the actions get them as they are, whatever backend ran the task.
 * THREADS: run_tasks and encode_stage may be called by several job threads at once
 * (bc->lock, cb->rr_lock). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cluster/cluster.h"
#include "engine/deploy/deploy.h"
#include "engine/exec/exec.h"

/* ---------------------------------------------------------------- blob cache
 * Big context blobs and result values of stages (exec.h, em_stage_blob_sink) in cluster
 * mode: kept as broadcast values in the driver's store under ids from BLOB_BCAST_BASE up
 * (user broadcasts count from 1). The same bytes get the same id, so a blob that several
 * jobs share (an iteration's unchanged context) is stored and reaches each executor once;
 * past BLOB_KEEP blobs or BLOB_KEEP_BYTES bytes the least recently used one is dropped
 * from the driver and the executors (a stage still running that needs it then fails
 * naming the broadcast: it takes BLOB_KEEP newer big blobs in between). Executors' tasks
 * borrow the fetched bytes (em__stage_resolve). Local mode needs no copy at all
 * (engine/exec/local.c). */
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
    void (*watch_exits)(void *ud, em_deploy_exit_fn fn, void *fn_ud);   /* NULL = none */
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

static void cl_exec_exited(void *ud, const char *exec_id, const char *reason)
{
    em_cluster_executor_exited(ud, exec_id, reason);
}

static void cl_free(void *self)
{
    cluster_backend *cb = self;
    if (!cb)
        return;
    if (cb->watch_exits)
        cb->watch_exits(cb->free_ud, NULL, NULL);
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
int em_cluster_parse_locality_wait(const char *v, uint32_t *ms, em_err *err)
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

int em_cluster_backend_new(const em_cluster_backend_cfg *cfg, em_task_backend *out,
                           em_err *err)
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
    const em_deploy_master_ops *mo = em_deploy_master_ops_get();
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
            rc = em_err_set(err, EM_EINVAL, "master '%s': this command does not talk to a "
                            "standalone master; run the job with 'ember submit --master %s "
                            "JOB.so'", cfg->master_url ? cfg->master_url : "?",
                            cfg->master_url ? cfg->master_url : "URL");
            goto fail;
        }
        if ((rc = mo->app_start(mo->ud, cfg->master_url, em_cluster_address(cb->cl),
                                em_cluster_secret(cb->cl), &want, err)) < 0)
            goto fail;
        cb->on_free = mo->app_end;
        cb->free_ud = mo->ud;
        if ((cb->watch_exits = mo->watch_exits))
            cb->watch_exits(mo->ud, cl_exec_exited, cb->cl);
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
