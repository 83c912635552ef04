/* engine/cluster/driver.c - the driver side of cluster mode: accepts executors, ships
 * stages and launches tasks to executors with free cores, collects their results, serves
 * their block and map-output requests, and handles lost executors.
 *
 * DESIGN
 *   Threads: the em_net loop thread decodes every frame and updates the executor table and
 *   the in-flight task sets under c->lock; each em_cluster_run_tasks caller (one per
 *   running job's stage) dispatches its own set's tasks and waits on c->cond. Nothing is
 *   sent while c->lock is held (em_net_send may block on backpressure, and the loop thread
 *   needs the lock to drain). Spawning and reaping executors is serialized by
 *   c->proc_lock (taken before c->lock, never while holding it).
 *   Task sets: c->sets, ordered by priority (the job id) then arrival. A set launches on
 *   the cores left after the queued tasks of the sets ahead of it (FIFO between jobs).
 *   A set whose cancel flag is set fails its queued tasks at once (EM_ECANCELED) and sends
 *   `kill` for its running ones, then waits for their statuses.
 *   Task ids: each set takes ids base..base+n-1, so a status maps to its task in O(1); a
 *   status is accepted only from the executor the task was launched on while it is
 *   running there. Late messages of lost executors therefore fall on the floor.
 *   Lost executors (connection closed, or silent past the heartbeat timeout): the loop
 *   thread fails their running tasks at once; the driver thread then tells the owner
 *   (on_exec_lost: the tracker forgets their map outputs), turns this batch's finished map
 *   tasks of theirs into failures (their files are gone), and starts a replacement.
 *   Retries: the executor where a task's last attempt failed is remembered (c->fails, by
 *   stage, partition and kind); its next attempt goes to another executor with a free
 *   core, and waits for one while another is alive (a bad host does not eat every
 *   attempt). Only when that executor is the last one alive does the retry run there.
 *   Cache locality (Spark's delay scheduling, simply): c->locs maps (rdd, partition) of a
 *   cached block to the executor slot that last ran a successful task preferring it (the
 *   exec path caches a partition where it computes it). A task whose block's executor has
 *   a free core runs there first; while that executor is busy the task waits, as long as a
 *   task was launched where its block is within the locality wait (c->last_local_ms, reset
 *   at each batch start), then runs on any executor. A lost executor's entries are dropped. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/cluster/cluster_int.h"
#include "engine/cluster/spawn.h"
#include "engine/net/net.h"

typedef struct exec_slot {
    em_conn_id conn;
    bool registered, alive, lost_pending;
    char exec_id[EM__MAX_NAME + 1];
    char loc[128];
    uint32_t cores, running;
    pid_t pid;                   /* spawned by us (0 = not ours) */
    uint32_t *stages;            /* stage ids sent to it, oldest first (EM__STAGES_KEPT) */
    size_t nstages;
    uint64_t store_bytes;        /* its block store's size, from its last status */
} exec_slot;

typedef struct spawned {
    char exec_id[32];
    pid_t pid;
    bool reaped;
} spawned;

enum { T_QUEUED = 0, T_RUNNING, T_DONE };

/* Where the last attempt of a task failed, so that its retry goes elsewhere when it can. */
typedef struct failed_at {
    uint32_t stage, part;
    bool is_map;
    char exec_id[EM__MAX_NAME + 1];
} failed_at;
#define MAX_FAILED_AT 4096       /* remembered failures (oldest forgotten first) */

/* One known cached block: key = rdd << 32 | partition (rdd ids are >= 1, so never 0). */
typedef struct loc_ent {
    uint64_t key;                /* 0 = empty */
    int32_t slot;                /* executor slot holding it */
} loc_ent;
#define MAX_LOCS ((size_t)1 << 20)   /* past this, every entry is forgotten (hints only) */

typedef struct inflight {
    int state;
    int slot;                    /* exec slot it runs on */
    em_batch **batches;          /* received result batches */
    size_t nb;
    em_vbuf part;                /* chunks of the result block being received */
    size_t part_size;            /* its size from its header; 0 = not known yet */
} inflight;

/* One em_cluster_run_tasks call's tasks (c->sets, c->lock). */
typedef struct task_set {
    const em_task_desc *t;
    inflight *fl;
    em_task_result *res;
    size_t n;
    uint64_t base, prio;
    bool canceled;               /* its cancel was acted on */
    struct task_set *next;
} task_set;
/* Broadcast values the loop thread serves pieces of (a few, most recent first), so that a
 * piece request does not look the block up (or read it from disk) each time, nor compute a
 * piece's crc32c again for every executor. */
typedef struct bcast_ent {
    uint32_t id;                 /* 0 = empty */
    em_batch *batch;             /* reference */
    em_slice value;              /* borrowed from batch */
    uint64_t *crcs;              /* per piece: crc | 1 << 32 once computed; NULL = none yet */
} bcast_ent;
#define BCAST_CACHE 4

struct em_cluster {
    em_cluster_opts o;
    char *secret, *library, *listen_host, *memory, *work_dir, *bin;
    char sha[65];
    char addr[96];
    em_net *net;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    exec_slot *ex;               /* lock */
    size_t nex;
    spawned *sp;                 /* driver thread */
    size_t nsp;
    uint32_t next_exec;
    pthread_mutex_t proc_lock;   /* sp, nsp, next_exec once running (see DESIGN) */
    task_set *sets;              /* in flight (lock) */
    uint64_t next_id;            /* lock */
    failed_at *fails;            /* driver thread */
    size_t nfails;
    bool closing;                /* em_cluster_free runs: losses are expected */
    loc_ent *locs;               /* cached block -> slot, open addressing (lock) */
    size_t loc_cap, nlocs;
    uint64_t wait_ms;            /* locality wait; 0 = none */
    uint64_t last_local_ms;      /* last launch on a task's block executor (lock) */
    uint64_t nlocal, nmissed;    /* locality counters (lock) */
    bcast_ent bcache[BCAST_CACHE];   /* loop thread (drop: lock) */
    uint64_t bcast_fetches;      /* piece-0 requests served (lock) */
};

static uint64_t now_ms(void)
{
    return em_now_ns() / 1000000u;
}

static exec_slot *slot_of(em_cluster *c, em_conn_id id)   /* lock held */
{
    for (size_t i = 0; i < c->nex; i++)
        if (c->ex[i].conn == id)
            return &c->ex[i];
    return NULL;
}

static int send_msg(em_cluster *c, em_conn_id to, const em__msg *m, em_err *err)
{
    em_vbuf v;
    em_vbuf_init(&v);
    int rc = em__msg_encode(m, &v, err);
    if (rc == 0)
        rc = em_net_send(c->net, to, EM_FRAME_RPC, v.data, v.len, err);
    em_vbuf_destroy(&v);
    return rc;
}

static int send_data(em_cluster *c, em_conn_id to, uint8_t kind, uint64_t id, const void *p,
                     size_t n, em_err *err)
{
    uint8_t hdr[EM__DATA_HDR];
    em__data_hdr(hdr, kind, 0, id);
    em_slice parts[2] = {{hdr, sizeof hdr}, {p, n}};
    return em_net_sendv(c->net, to, EM_FRAME_DATA, parts, 2, err);
}

/* ---------------------------------------------------------------- loop thread */

static void fail_running(em_cluster *c, int slot, const char *why)   /* lock held */
{
    for (task_set *ts = c->sets; ts; ts = ts->next)
    for (size_t i = 0; i < ts->n; i++) {
        inflight *f = &ts->fl[i];
        if (f->state != T_RUNNING || f->slot != slot)
            continue;
        em_task_result *r = &ts->res[i];
        em_task_result_destroy(r);
        r->code = em_err_set(&r->err, EM_EIO, "executor %s lost: %s", c->ex[slot].exec_id, why);
        snprintf(r->exec_id, sizeof r->exec_id, "%s", c->ex[slot].exec_id);
        f->state = T_DONE;
        em_vbuf_destroy(&f->part);
        f->part_size = 0;
    }
    c->ex[slot].running = 0;
}

static void d_on_open(void *ud, em_conn_id id, bool inbound)
{
    em_cluster *c = ud;
    if (!inbound)
        return;
    pthread_mutex_lock(&c->lock);
    c->ex = em_xrealloc(c->ex, (c->nex + 1) * sizeof *c->ex);
    memset(&c->ex[c->nex], 0, sizeof c->ex[0]);
    c->ex[c->nex++].conn = id;
    pthread_mutex_unlock(&c->lock);
}

static void d_on_close(void *ud, em_conn_id id, const em_err *why)
{
    em_cluster *c = ud;
    pthread_mutex_lock(&c->lock);
    exec_slot *s = slot_of(c, id);
    if (s) {
        if (s->registered && s->alive && !c->closing) {
            em_log(EM_LOG_WARN, "driver: executor %s (%s) lost: %s", s->exec_id, s->loc,
                   why->code ? why->msg : "connection closed");
            s->lost_pending = true;
            fail_running(c, (int)(s - c->ex), why->code ? why->msg : "connection closed");
        }
        s->alive = false;
        s->conn = 0;
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
}

static int on_register(em_cluster *c, em_conn_id id, const em__msg *m, em_err *err)
{
    pthread_mutex_lock(&c->lock);
    exec_slot *s = slot_of(c, id);
    int rc = 0;
    if (!s || s->registered) {
        rc = em_err_set(err, EM_EPROTO, "executor registered twice");
    } else {
        for (size_t i = 0; i < c->nex; i++)
            if (c->ex[i].alive && strcmp(c->ex[i].exec_id, m->exec_id) == 0)
                rc = em_err_set(err, EM_EPROTO, "executor id '%s' is already registered",
                                m->exec_id);
    }
    if (rc == 0) {
        s->registered = s->alive = true;
        snprintf(s->exec_id, sizeof s->exec_id, "%s", m->exec_id);
        snprintf(s->loc, sizeof s->loc, "%s:%u", m->host, m->port);
        s->cores = m->cores;
        em_log(EM_LOG_INFO, "driver: executor %s registered (pid %u, %u cores, shuffle %s)",
               s->exec_id, m->pid, s->cores, s->loc);
    }
    pthread_mutex_unlock(&c->lock);
    if (rc < 0)
        return rc;
    double f = c->o.storage_fraction;
    em__msg r = {.type = EM__MSG_REGISTERED, .library = c->library,
                 .storage_permille = (uint32_t)(f >= 0 && f <= 1 ? f * 1000 + 0.5 : 500),
                 .shuffle_mem = c->o.shuffle_memory, .compress = c->o.net_compress,
                 .shuffle_sync = c->o.shuffle_sync};
    memcpy(r.sha256, c->sha, sizeof r.sha256);
    rc = send_msg(c, id, &r, err);
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* Finds the running task `tid` launched on connection id (its set in *set); NULL when it
 * is not (late). Lock held. */
static inflight *task_of(em_cluster *c, em_conn_id id, uint64_t tid, task_set **set,
                         size_t *idx)
{
    task_set *ts = c->sets;
    while (ts && (tid < ts->base || tid - ts->base >= ts->n))
        ts = ts->next;
    if (!ts)
        return NULL;
    inflight *f = &ts->fl[tid - ts->base];
    if (f->state != T_RUNNING || c->ex[f->slot].conn != id)
        return NULL;
    *set = ts;
    *idx = (size_t)(tid - ts->base);
    return f;
}

static void on_status(em_cluster *c, em_conn_id id, em__msg *m)
{
    pthread_mutex_lock(&c->lock);
    size_t i;
    task_set *ts;
    inflight *f = task_of(c, id, m->id, &ts, &i);
    if (f) {
        em_task_result *r = &ts->res[i];
        *r = m->res;
        memset(&m->res, 0, sizeof m->res);
        exec_slot *s = &c->ex[f->slot];
        snprintf(r->exec_id, sizeof r->exec_id, "%s", s->exec_id);
        s->store_bytes = m->store_bytes;
        if (r->code == 0 && f->part.len) {
            em_task_result_destroy(r);
            r->code = em_err_set(&r->err, EM_EPROTO, "executor %s: status before the last "
                                 "chunk of a result block", s->exec_id);
        }
        em_vbuf_destroy(&f->part);
        f->part_size = 0;
        if (r->code == 0 && f->nb != m->nbatches) {
            em_task_result_destroy(r);
            r->code = em_err_set(&r->err, EM_EPROTO, "executor %s: %zu result batches, %u "
                                 "announced", s->exec_id, f->nb, m->nbatches);
        }
        if (r->code == 0) {
            r->batches = f->batches;
            r->nbatches = f->nb;
            f->batches = NULL;
            f->nb = 0;
            if (r->is_map)
                snprintf(r->map_status.loc, sizeof r->map_status.loc, "%s", s->loc);
        }
        f->state = T_DONE;
        if (s->running)
            s->running--;
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
}

static void on_block(em_cluster *c, em_conn_id id, const em__msg *m)
{
    em_batch **b = NULL;
    size_t n = 0;
    em_err err = EM_ERR_INIT;
    em__msg r = {.type = EM__MSG_BLOCK_REPLY, .id = m->id};
    int rc = c->o.store ? em_block_store_get(c->o.store, m->block, &b, &n, &err) : 0;
    if (rc < 0) {
        r.code = rc;
        r.err = err;
    }
    r.found = rc == 1;
    em_vbuf v;
    em_vbuf_init(&v);
    for (size_t i = 0; r.found && i < n; i++) {
        em_vbuf_clear(&v);
        em_codec codec = em__wire_codec(c->o.net_compress, em_net_is_loopback(c->net, id));
        if ((rc = em_block_encode(b[i], codec, 1, &v, &err)) < 0 ||
            (rc = send_data(c, id, EM__DATA_BLOCK, m->id, v.data, v.len, &err)) < 0) {
            r.found = false;
            r.code = rc;
            r.err = err;
            break;
        }
        r.nbatches++;
    }
    em_vbuf_destroy(&v);
    for (size_t i = 0; i < n; i++)
        em_batch_unref(b[i]);
    em_free(b);
    send_msg(c, id, &r, &err);
}

/* The value of broadcast id from the cache, else from the store (then cached), with a
 * reference to its batch in *ref (em_cluster_drop_blocks may drop the cache's meanwhile).
 * Loop thread. 1 found, 0 absent, <0 error. */
static int bcast_value(em_cluster *c, uint32_t id, em_slice *out, em_batch **ref, em_err *err)
{
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < BCAST_CACHE; i++)
        if (c->bcache[i].id == id) {
            bcast_ent e = c->bcache[i];   /* move it to the front */
            memmove(&c->bcache[1], &c->bcache[0], (size_t)i * sizeof e);
            c->bcache[0] = e;
            *out = e.value;
            *ref = em_batch_ref(e.batch);
            pthread_mutex_unlock(&c->lock);
            return 1;
        }
    pthread_mutex_unlock(&c->lock);
    em_batch **b = NULL;
    size_t n = 0;
    em_block_id bid = {EM_BLOCK_BROADCAST, id, 0, 0};
    int rc = c->o.store ? em_block_store_get(c->o.store, bid, &b, &n, err) : 0;
    if (rc == 1 && (n != 1 || em_batch_kind(b[0]) != EM_REC_BYTES || em_batch_nrecs(b[0]) != 1))
        rc = em_err_set(err, EM_ECORRUPT, "broadcast %u: not one BYTES record", id);
    if (rc == 1) {
        em_batch_iter it;
        em_rec r;
        em_batch_iter_init(&it, b[0]);
        em_batch_iter_next(&it, &r);
        pthread_mutex_lock(&c->lock);
        em_batch_unref(c->bcache[BCAST_CACHE - 1].batch);
        em_free(c->bcache[BCAST_CACHE - 1].crcs);
        memmove(&c->bcache[1], &c->bcache[0], (BCAST_CACHE - 1) * sizeof c->bcache[0]);
        c->bcache[0] = (bcast_ent){id, em_batch_ref(b[0]), r.val, NULL};
        pthread_mutex_unlock(&c->lock);
        *out = r.val;
        *ref = em_batch_ref(b[0]);
    }
    for (size_t i = 0; i < n; i++)
        em_batch_unref(b[i]);
    em_free(b);
    return rc;
}

/* The crc32c of piece i (len bytes at p) of broadcast id: computed once per value and
 * kept in its cache entry, so the second executor's fetch costs no checksum. Loop thread;
 * the entry is looked up under the lock each time (a drop may free it meanwhile). */
static uint32_t piece_crc(em_cluster *c, uint32_t id, uint32_t i, const uint8_t *p,
                          size_t len)
{
    bcast_ent *e = NULL;
    pthread_mutex_lock(&c->lock);
    for (int k = 0; k < BCAST_CACHE && !e; k++)
        if (c->bcache[k].id == id)
            e = &c->bcache[k];
    uint64_t have = e && e->crcs ? e->crcs[i] : 0;
    pthread_mutex_unlock(&c->lock);
    if (have >> 32)
        return (uint32_t)have;
    uint32_t crc = em_crc32c(0, p, len);
    pthread_mutex_lock(&c->lock);
    e = NULL;
    for (int k = 0; k < BCAST_CACHE && !e; k++)
        if (c->bcache[k].id == id)
            e = &c->bcache[k];
    if (e && !e->crcs)   /* OOM: no cache, every fetch computes it */
        e->crcs = em_calloc(em__piece_count(e->value.n, EM__PIECE_SIZE), sizeof *e->crcs);
    if (e && e->crcs)
        e->crcs[i] = crc | (uint64_t)1 << 32;
    pthread_mutex_unlock(&c->lock);
    return crc;
}

static void release_batch(void *ud)
{
    em_batch_unref(ud);
}

/* Sends pieces [first, first + count) of a broadcast (those that exist), each as one PIECE
 * frame copied once from the value; a missing value or an error is a block_reply. */
static void on_bcast(em_cluster *c, em_conn_id id, const em__msg *m)
{
    em_err err = EM_ERR_INIT;
    em_slice v = {NULL, 0};
    em_batch *ref = NULL;
    int rc = bcast_value(c, m->block.a, &v, &ref, &err);
    if (rc == 1) {
        uint32_t np = em__piece_count(v.n, EM__PIECE_SIZE);
        uint64_t end = (uint64_t)m->first + m->count;
        if (m->first == 0) {
            pthread_mutex_lock(&c->lock);
            c->bcast_fetches++;
            pthread_mutex_unlock(&c->lock);
        }
        for (uint64_t i = m->first; i < end && i < np; i++) {
            size_t off = (size_t)i * EM__PIECE_SIZE;
            size_t len = v.n - off < EM__PIECE_SIZE ? v.n - off : EM__PIECE_SIZE;
            uint8_t hdr[EM__DATA_HDR + EM__PIECE_HDR];
            em__data_hdr(hdr, EM__DATA_PIECE, 0, m->id);
            em__piece_hdr(hdr + EM__DATA_HDR, v.n, EM__PIECE_SIZE, (uint32_t)i,
                          piece_crc(c, m->block.a, (uint32_t)i, v.p + off, len));
            /* zero copy: the frame's tail is the value itself, kept by a batch reference */
            em_slice head = {hdr, sizeof hdr};
            em_net_ext ext = {v.p + off, len, release_batch, em_batch_ref(ref)};
            if ((rc = em_net_send_ext(c->net, id, EM_FRAME_DATA, &head, 1, &ext, &err)) < 0)
                break;
        }
        em_batch_unref(ref);
        if (rc >= 0)
            return;
    }
    em__msg r = {.type = EM__MSG_BLOCK_REPLY, .id = m->id, .code = rc < 0 ? rc : 0,
                 .err = err, .found = false};
    send_msg(c, id, &r, &err);
}

static void on_map_outputs(em_cluster *c, em_conn_id id, const em__msg *m)
{
    em__msg r = {.type = EM__MSG_MAP_OUTPUTS_REPLY, .id = m->id};
    em_shuffle_src *srcs = NULL;
    uint32_t n = 0;
    em_err err = EM_ERR_INIT;
    int rc = c->o.map_outputs ? c->o.map_outputs(c->o.map_ud, m->sid, m->reduce, &srcs, &n, &err)
                              : em_err_set(&err, EM_EFETCH, "no map output tracker");
    if (rc < 0) {
        r.code = rc;
        r.err = err;
    } else {
        r.srcs = srcs;
        r.nsrcs = n;
        r.locs = em_xcalloc(n ? n : 1, sizeof *r.locs);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t k = 0;
            while (k < r.nlocs && strcmp(r.locs[k], srcs[i].loc) != 0)
                k++;
            if (k == r.nlocs)
                r.locs[r.nlocs++] = (char *)srcs[i].loc;
        }
    }
    send_msg(c, id, &r, &err);
    em_free(r.locs);
    em_free(srcs);
}

/* Appends a chunk of task tid's current result block to f->part; the block's size comes
 * from its header, so the driver buffers at most one block per task besides the decoded
 * batches, and a chunk beyond the announced size is an error. Lock held. */
static int add_chunk(inflight *f, em_slice body, bool last, em_err *err)
{
    if (f->part_size == 0 && f->part.len + body.n >= EM_BLOCK_HEADER_SIZE) {
        uint8_t h[EM_BLOCK_HEADER_SIZE];
        size_t have = f->part.len;
        if (have)
            memcpy(h, f->part.data, have);
        memcpy(h + have, body.p, EM_BLOCK_HEADER_SIZE - have);
        int rc = em_block_peek_size(h, sizeof h, &f->part_size, err);
        if (rc < 0)
            return rc;
        if (em_vbuf_reserve(&f->part, f->part_size - f->part.len) < 0)
            return em_err_set(err, EM_ENOMEM, "result block of %zu bytes", f->part_size);
    }
    if ((f->part_size && f->part.len + body.n > f->part_size) ||
        (last && f->part.len + body.n != f->part_size))
        return em_err_set(err, EM_EPROTO, "result block chunks do not add up to its size %zu",
                          f->part_size);
    if (em_vbuf_append(&f->part, body.p, body.n) < 0)
        return em_err_set(err, EM_ENOMEM, "result block of %zu bytes", f->part_size);
    return 0;
}

/* A RESULT DATA frame: one chunk of a result block (flags bit 0: its last). A bad chunk or
 * block fails the task, not the connection (the frames themselves were well formed). */
static int on_result_chunk(em_cluster *c, em_conn_id id, em_slice p, em_err *err)
{
    uint8_t kind, flags;
    uint64_t tid;
    em_slice body;
    int rc;
    if ((rc = em__data_parse(p, &kind, &flags, &tid, &body, err)) < 0)
        return rc;
    if (kind != EM__DATA_RESULT)
        return em_err_set(err, EM_EPROTO, "unexpected DATA frame kind %u", kind);
    pthread_mutex_lock(&c->lock);
    size_t i;
    task_set *ts;
    inflight *f = task_of(c, id, tid, &ts, &i);
    if (!f) {
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    em_err berr = EM_ERR_INIT;
    em_batch *b = NULL;
    bool last = flags & 1;
    if (last && f->part.len == 0) {   /* a block in one frame: decoded in place */
        rc = em_block_decode(body.p, body.n, &b, &berr);
    } else if ((rc = add_chunk(f, body, last, &berr)) == 0 && last) {
        rc = em_block_decode(f->part.data, f->part.len, &b, &berr);
        em_vbuf_destroy(&f->part);
        f->part_size = 0;
    }
    if (rc == 0 && b) {
        f->batches = em_xrealloc(f->batches, (f->nb + 1) * sizeof *f->batches);
        f->batches[f->nb++] = b;
    } else if (rc < 0) {
        /* The task fails here; its later frames and status find it done and are dropped. */
        em_task_result *r = &ts->res[i];
        exec_slot *s = &c->ex[f->slot];
        em_task_result_destroy(r);
        r->code = em_err_copy(&r->err, &berr);
        em_err_prefix(&r->err, "result of task %llu from executor %s",
                      (unsigned long long)tid, s->exec_id);
        snprintf(r->exec_id, sizeof r->exec_id, "%s", s->exec_id);
        em_vbuf_destroy(&f->part);
        f->part_size = 0;
        f->state = T_DONE;
        if (s->running)
            s->running--;
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static int d_on_frame(void *ud, em_conn_id id, uint8_t type, em_slice p, em_err *err)
{
    em_cluster *c = ud;
    int rc;
    pthread_mutex_lock(&c->lock);
    exec_slot *s = slot_of(c, id);
    bool registered = s && s->registered;
    pthread_mutex_unlock(&c->lock);
    if (type == EM_FRAME_DATA) {
        if (!registered)
            return em_err_set(err, EM_EPROTO, "DATA frame before registration");
        return on_result_chunk(c, id, p, err);
    }
    if (type != EM_FRAME_RPC)
        return em_err_set(err, EM_EPROTO, "unexpected frame type %u", type);
    em__msg m;
    if ((rc = em__msg_decode(p.p, p.n, &m, err)) < 0)
        goto out;
    if (!registered && m.type != EM__MSG_REGISTER) {
        rc = em_err_set(err, EM_EPROTO, "message before registration");
        goto out;
    }
    switch (m.type) {
    case EM__MSG_REGISTER:
        rc = on_register(c, id, &m, err);
        break;
    case EM__MSG_STATUS:
        on_status(c, id, &m);
        break;
    case EM__MSG_BLOCK:
        on_block(c, id, &m);
        break;
    case EM__MSG_MAP_OUTPUTS:
        on_map_outputs(c, id, &m);
        break;
    case EM__MSG_BCAST:
        on_bcast(c, id, &m);
        break;
    default:
        rc = em_err_set(err, EM_EPROTO, "executor sent an unexpected message type %d", m.type);
    }
out:
    em__msg_destroy(&m);
    return rc;
}

static const em_net_ops d_net_ops = {.on_open = d_on_open, .on_frame = d_on_frame,
                                     .on_close = d_on_close};

/* ---------------------------------------------------------------- processes */

static int spawn_one(em_cluster *c, em_err *err)
{
    if (c->nsp >= (size_t)c->o.nexec * 8 + 8)
        return em_err_set(err, EM_EIO, "driver: %zu executors started already; not starting "
                                       "more", c->nsp);
    spawned s = {.pid = 0};
    snprintf(s.exec_id, sizeof s.exec_id, "exec-%u", ++c->next_exec);
    em__spawn_args a = {.bin = c->bin, .driver = c->addr, .exec_id = s.exec_id,
                        .cores = c->o.cores, .memory = c->memory, .work_dir = c->work_dir,
                        .secret = c->secret};
    int rc = em__spawn_executor(&a, &s.pid, err);
    if (rc < 0)
        return rc;
    c->sp = em_xrealloc(c->sp, (c->nsp + 1) * sizeof *c->sp);
    c->sp[c->nsp++] = s;
    return 0;
}

/* Reaps exited children. A child that died before registering: killed by a signal (an
 * operator, the OOM killer) is replaced; one that exited on its own (bad secret, library
 * mismatch) is described into why and true returned. */
static bool reap(em_cluster *c, char *why, size_t n)
{
    pthread_mutex_lock(&c->proc_lock);
    bool found = false;
    size_t nsp = c->nsp;
    for (size_t i = 0; i < nsp; i++) {
        spawned *s = &c->sp[i];
        int st;
        if (s->reaped || waitpid(s->pid, &st, WNOHANG) != s->pid)
            continue;
        s->reaped = true;
        pthread_mutex_lock(&c->lock);
        bool reg = false;
        for (size_t k = 0; k < c->nex; k++)
            if (strcmp(c->ex[k].exec_id, s->exec_id) == 0)
                reg = true;
        pthread_mutex_unlock(&c->lock);
        if (reg)
            continue;
        char d[64], id[32];
        em__describe_exit(st, d, sizeof d);
        memcpy(id, s->exec_id, sizeof id);
        em_err err = EM_ERR_INIT;
        if (WIFSIGNALED(st) && spawn_one(c, &err) == 0) {
            em_log(EM_LOG_WARN, "driver: executor %s %s before registering; replaced", id, d);
            s = &c->sp[i];
            continue;
        }
        if (!found && why) {
            snprintf(why, n, "executor %s (pid %d) %s before registering", id,
                     (int)c->sp[i].pid, d);
            found = true;
        }
    }
    pthread_mutex_unlock(&c->proc_lock);
    return found;
}

static void kill_spawned(em_cluster *c, const char *exec_id)
{
    for (size_t i = 0; i < c->nsp; i++)
        if (!c->sp[i].reaped && strcmp(c->sp[i].exec_id, exec_id) == 0) {
            kill(c->sp[i].pid, SIGKILL);   /* it may be stopped rather than dead */
            waitpid(c->sp[i].pid, NULL, 0);
            c->sp[i].reaped = true;
        }
}

static uint32_t alive_count(em_cluster *c, uint32_t *cores)   /* lock held */
{
    uint32_t n = 0, k = 0;
    for (size_t i = 0; i < c->nex; i++)
        if (c->ex[i].registered && c->ex[i].alive) {
            n++;
            k += c->ex[i].cores;
        }
    if (cores)
        *cores = k;
    return n;
}

uint32_t em_cluster_num_executors(em_cluster *c)
{
    pthread_mutex_lock(&c->lock);
    uint32_t n = alive_count(c, NULL);
    pthread_mutex_unlock(&c->lock);
    return n;
}

uint32_t em_cluster_total_cores(em_cluster *c)
{
    uint32_t k;
    pthread_mutex_lock(&c->lock);
    alive_count(c, &k);
    pthread_mutex_unlock(&c->lock);
    return k;
}

static void timed_wait(em_cluster *c, uint32_t ms)   /* lock held */
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

static void process_losses(em_cluster *c);

/* Executors lost while the driver waits for the others (an executor that registered and
 * died before all had come) are replaced as in a job (process_losses: same spawn limit in
 * SPAWN mode, the master's failure limit in ACCEPT mode); those that died before
 * registering are replaced by reap (SPAWN; the standalone master replaces exited ones). */
int em_cluster_wait_executors(em_cluster *c, uint32_t n, uint32_t timeout_ms, em_err *err)
{
    uint64_t t0 = now_ms();
    char why[256] = "";
    for (;;) {
        pthread_mutex_lock(&c->lock);
        process_losses(c);
        uint32_t have = alive_count(c, NULL);
        if (have < n)
            timed_wait(c, 100);
        pthread_mutex_unlock(&c->lock);
        if (have >= n)
            return 0;
        if (c->o.mode == EM_CLUSTER_SPAWN && reap(c, why, sizeof why))
            return em_err_set(err, EM_EIO, "local-cluster: %s (%u of %u executors registered; "
                              "its stderr says why)", why, have, n);
        if (now_ms() - t0 > timeout_ms)
            return em_err_set(err, EM_ETIMEDOUT, "driver %s: %u of %u executors registered "
                              "within %u ms", c->addr, have, n, timeout_ms);
    }
}

/* ---------------------------------------------------------------- cache locations */

static uint64_t loc_key(uint32_t rdd, uint32_t part)
{
    return (uint64_t)rdd << 32 | part;
}

static size_t loc_hash(uint64_t k, size_t cap)
{
    k ^= k >> 31;
    k *= 0xbf58476d1ce4e5b9ull;
    k ^= k >> 29;
    return (size_t)k & (cap - 1);
}

/* Sets key -> slot in table t (cap a power of two with a free entry); true when new. */
static bool loc_set(loc_ent *t, size_t cap, uint64_t key, int32_t slot)
{
    size_t h = loc_hash(key, cap);
    while (t[h].key != 0 && t[h].key != key)
        h = (h + 1) & (cap - 1);
    bool added = t[h].key == 0;
    t[h] = (loc_ent){key, slot};
    return added;
}

static int loc_get(const em_cluster *c, uint64_t key)   /* lock held; -1 = unknown */
{
    if (c->loc_cap == 0)
        return -1;
    for (size_t h = loc_hash(key, c->loc_cap);; h = (h + 1) & (c->loc_cap - 1)) {
        if (c->locs[h].key == key)
            return c->locs[h].slot;
        if (c->locs[h].key == 0)
            return -1;
    }
}

/* Rebuilds the table with capacity cap, dropping entries of slot `slot` (-1: none) and of
 * rdd `rdd` (0: none). Lock held. */
static void loc_rebuild(em_cluster *c, size_t cap, int slot, uint32_t rdd)
{
    loc_ent *t = em_xcalloc(cap, sizeof *t);
    size_t n = 0;
    for (size_t i = 0; i < c->loc_cap; i++) {
        const loc_ent *e = &c->locs[i];
        if (e->key == 0 || e->slot == slot || (rdd && (uint32_t)(e->key >> 32) == rdd))
            continue;
        n += loc_set(t, cap, e->key, e->slot);
    }
    em_free(c->locs);
    c->locs = t;
    c->loc_cap = cap;
    c->nlocs = n;
}

static void loc_put(em_cluster *c, uint64_t key, int32_t slot)   /* lock held */
{
    if (c->nlocs >= MAX_LOCS) {
        em_log(EM_LOG_INFO, "driver: %zu cached block locations known; forgetting them",
               c->nlocs);
        em_free(c->locs);
        c->locs = NULL;
        c->loc_cap = c->nlocs = 0;
    }
    if ((c->nlocs + 1) * 2 > c->loc_cap)
        loc_rebuild(c, c->loc_cap ? 2 * c->loc_cap : 64, -1, 0);
    c->nlocs += loc_set(c->locs, c->loc_cap, key, slot);
}

void em_cluster_forget_rdd(em_cluster *c, uint32_t rdd)
{
    pthread_mutex_lock(&c->lock);
    if (c->nlocs && rdd)
        loc_rebuild(c, c->loc_cap, -1, rdd);
    pthread_mutex_unlock(&c->lock);
}

/* Sends m to every registered, live executor; `what` names it in the log when a send
 * fails. Returns how many it was sent to. */
static uint32_t send_all(em_cluster *c, const em__msg *m, const char *what)
{
    /* The connections are collected under the lock and written to without it (sending
     * may block on backpressure while the loop thread needs the lock). */
    pthread_mutex_lock(&c->lock);
    em_conn_id *to = em_xcalloc(c->nex ? c->nex : 1, sizeof *to);
    size_t n = 0;
    for (size_t i = 0; i < c->nex; i++)
        if (c->ex[i].registered && c->ex[i].alive)
            to[n++] = c->ex[i].conn;
    pthread_mutex_unlock(&c->lock);
    uint32_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        em_err err = EM_ERR_INIT;
        if (send_msg(c, to[i], m, &err) < 0)
            em_log(EM_LOG_DEBUG, "driver: %s: %s", what, err.msg);
        else
            sent++;
    }
    em_free(to);
    return sent;
}

uint32_t em_cluster_drop_blocks(em_cluster *c, uint32_t btype, uint32_t a)
{
    if (btype == EM_BLOCK_BROADCAST) {
        pthread_mutex_lock(&c->lock);
        for (int i = 0; i < BCAST_CACHE; i++)
            if (c->bcache[i].id == a) {
                em_batch_unref(c->bcache[i].batch);
                em_free(c->bcache[i].crcs);
                memmove(&c->bcache[i], &c->bcache[i + 1],
                        (size_t)(BCAST_CACHE - 1 - i) * sizeof c->bcache[0]);
                c->bcache[BCAST_CACHE - 1] = (bcast_ent){0, NULL, {NULL, 0}, NULL};
                break;
            }
        pthread_mutex_unlock(&c->lock);
    }
    char what[64];
    em__msg m = {.type = EM__MSG_DROP, .block = {btype, a, 0, 0}};
    snprintf(what, sizeof what, "dropping block type %u id %u", btype, a);
    return send_all(c, &m, what);
}

uint32_t em_cluster_remove_shuffle(em_cluster *c, uint32_t sid)
{
    /* Ordering: this goes out before the LAUNCH messages of any later job on the same
     * connection, and the executor's loop thread handles frames in order, so the files
     * are gone before a later task could run there. */
    char what[64];
    em__msg m = {.type = EM__MSG_REMOVE_SHUFFLE, .sid = sid};
    snprintf(what, sizeof what, "removing shuffle %u", sid);
    return send_all(c, &m, what);
}

void em_cluster_bcast_stats(em_cluster *c, uint64_t *fetches, uint64_t *store_bytes)
{
    pthread_mutex_lock(&c->lock);
    *fetches = c->bcast_fetches;
    uint64_t sum = 0;
    for (size_t i = 0; i < c->nex; i++)
        if (c->ex[i].registered && c->ex[i].alive)
            sum += c->ex[i].store_bytes;
    *store_bytes = sum;
    pthread_mutex_unlock(&c->lock);
}

void em_cluster_locality_stats(em_cluster *c, uint64_t *local, uint64_t *missed,
                               uint64_t *known)
{
    pthread_mutex_lock(&c->lock);
    *local = c->nlocal;
    *missed = c->nmissed;
    *known = c->nlocs;
    pthread_mutex_unlock(&c->lock);
}

/* Remembers where this batch's successful tasks with a preference ran. Lock held. */
static void note_locations(em_cluster *c, const em_task_desc *t, size_t n,
                           const inflight *fl, const em_task_result *res)
{
    for (size_t i = 0; i < n; i++) {
        if (!t[i].pref_rdd || res[i].code != 0 || fl[i].slot < 0 ||
            (size_t)fl[i].slot >= c->nex || !c->ex[fl[i].slot].alive)
            continue;
        loc_put(c, loc_key(t[i].pref_rdd, t[i].pref_part), fl[i].slot);
    }
}

/* ---------------------------------------------------------------- running tasks */

/* Handles executors the loop thread found lost. Lock held on entry and exit. */
static void process_losses(em_cluster *c)
{
    for (size_t i = 0; i < c->nex; i++) {
        exec_slot *s = &c->ex[i];
        if (!s->lost_pending)
            continue;
        s->lost_pending = false;
        char loc[128], id[EM__MAX_NAME + 1];
        memcpy(loc, s->loc, sizeof loc);
        memcpy(id, s->exec_id, sizeof id);
        /* Map outputs it wrote in the sets in flight are gone with it. */
        for (task_set *ts = c->sets; ts; ts = ts->next)
        for (size_t k = 0; k < ts->n; k++) {
            em_task_result *r = &ts->res[k];
            if (ts->fl[k].state == T_DONE && ts->fl[k].slot == (int)i && r->code == 0 &&
                r->is_map) {
                em_task_result_destroy(r);
                r->code = em_err_set(&r->err, EM_EIO, "executor %s lost with this map output",
                                     id);
                snprintf(r->exec_id, sizeof r->exec_id, "%s", id);
            }
        }
        if (c->nlocs)   /* its cached blocks are gone with it */
            loc_rebuild(c, c->loc_cap, (int)i, 0);
        pthread_mutex_unlock(&c->lock);
        if (c->o.on_exec_lost)
            c->o.on_exec_lost(c->o.lost_ud, loc);
        em_err err = EM_ERR_INIT;
        if (c->o.mode == EM_CLUSTER_SPAWN) {
            pthread_mutex_lock(&c->proc_lock);
            kill_spawned(c, id);
            if (spawn_one(c, &err) < 0)
                em_log(EM_LOG_WARN, "driver: no replacement for executor %s: %s", id, err.msg);
            pthread_mutex_unlock(&c->proc_lock);
        } else if (c->o.request_executor) {
            c->o.request_executor(c->o.request_ud);
        }
        pthread_mutex_lock(&c->lock);
    }
}

typedef struct launch {
    size_t task;
    em_conn_id conn;
    bool send_stage;
} launch;

static bool has_stage(const exec_slot *s, uint32_t id)
{
    for (size_t i = 0; i < s->nstages; i++)
        if (s->stages[i] == id)
            return true;
    return false;
}

/* The executor where the previous attempt of t failed, or NULL (driver thread). */
static const char *failed_on(const em_cluster *c, const em_task_desc *t)
{
    if (t->attempt == 0)
        return NULL;
    for (size_t i = 0; i < c->nfails; i++)
        if (c->fails[i].stage == t->stage_id && c->fails[i].part == t->partition &&
            c->fails[i].is_map == t->is_map)
            return c->fails[i].exec_id;
    return NULL;
}

/* Remembers where each failed task of a finished batch ran, forgets succeeded ones. */
static void note_failures(em_cluster *c, const em_task_desc *t, size_t n,
                          const em_task_result *res)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < c->nfails && !(c->fails[k].stage == t[i].stage_id &&
                                  c->fails[k].part == t[i].partition &&
                                  c->fails[k].is_map == t[i].is_map))
            k++;
        if (res[i].code == 0 || !res[i].exec_id[0]) {
            if (k < c->nfails)
                c->fails[k] = c->fails[--c->nfails];
            continue;
        }
        if (k == c->nfails) {
            if (c->nfails == MAX_FAILED_AT) {
                c->nfails--;
                memmove(c->fails, c->fails + 1, c->nfails * sizeof *c->fails);
            }
            c->fails = em_xrealloc(c->fails, (c->nfails + 1) * sizeof *c->fails);
            k = c->nfails++;
        }
        c->fails[k] = (failed_at){t[i].stage_id, t[i].partition, t[i].is_map, ""};
        snprintf(c->fails[k].exec_id, sizeof c->fails[k].exec_id, "%s", res[i].exec_id);
    }
}

/* The least loaded executor with a free core for a task whose last attempt failed on
 * `avoid` (NULL = none): another executor is preferred. When only `avoid` has a free core
 * but another executor is alive, the task waits for that one (-2) rather than failing
 * again where it failed; -1 when no executor has a free core. Lock held. */
static int pick_executor(em_cluster *c, const char *avoid)
{
    int best = -1, fallback = -1;
    bool other_alive = false;
    for (size_t e = 0; e < c->nex; e++) {
        exec_slot *s = &c->ex[e];
        if (!s->registered || !s->alive)
            continue;
        bool avoided = avoid && strcmp(s->exec_id, avoid) == 0;
        other_alive |= !avoided;
        if (s->running >= s->cores)
            continue;
        if (avoided) {
            fallback = (int)e;
            continue;
        }
        if (best < 0 || s->running * c->ex[best].cores < c->ex[best].running * s->cores)
            best = (int)e;
    }
    if (best >= 0)
        return best;
    if (fallback >= 0)
        return other_alive ? -2 : fallback;
    return -1;
}

/* The slot holding task t's cached block when it is alive and not where t's previous
 * attempt failed (`avoid`); -1 otherwise. Lock held. */
static int preferred_slot(const em_cluster *c, const em_task_desc *t, const char *avoid)
{
    if (!t->pref_rdd)
        return -1;
    int e = loc_get(c, loc_key(t->pref_rdd, t->pref_part));
    if (e < 0 || (size_t)e >= c->nex || !c->ex[e].registered || !c->ex[e].alive ||
        (avoid && strcmp(c->ex[e].exec_id, avoid) == 0))
        return -1;
    return e;
}

/* Marks queued task i of ts as running on slot e and fills the launch. Lock held. A stage
 * is marked as sent to the executor here; both sides keep the EM__STAGES_KEPT most recent
 * (docs/cluster.md), and a stage whose sending fails is unmarked by send_launches. */
static launch launch_on(em_cluster *c, task_set *ts, size_t i, int e)
{
    exec_slot *s = &c->ex[e];
    const em_task_desc *t = ts->t;
    s->running++;
    ts->fl[i].state = T_RUNNING;
    ts->fl[i].slot = e;
    launch l = {i, s->conn, !has_stage(s, t[i].stage_id)};
    if (l.send_stage) {
        if (s->nstages == EM__STAGES_KEPT) {
            memmove(s->stages, s->stages + 1, (s->nstages - 1) * sizeof *s->stages);
            s->nstages--;
        }
        s->stages = em_xrealloc(s->stages, (s->nstages + 1) * sizeof *s->stages);
        s->stages[s->nstages++] = t[i].stage_id;
    }
    return l;
}

/* How many of ts's tasks may start now: the free cores left after the queued tasks of the
 * sets ahead of it (FIFO between jobs). Lock held. */
static size_t launch_budget(em_cluster *c, const task_set *ts)
{
    uint32_t cores;
    alive_count(c, &cores);
    size_t busy = 0, ahead = 0;
    for (size_t i = 0; i < c->nex; i++)
        if (c->ex[i].registered && c->ex[i].alive)
            busy += c->ex[i].running;
    for (const task_set *o = c->sets; o && o != ts; o = o->next)
        for (size_t i = 0; !o->canceled && i < o->n; i++)
            ahead += o->fl[i].state == T_QUEUED;
    size_t free_cores = cores > busy ? cores - busy : 0;
    return free_cores > ahead ? free_cores - ahead : 0;
}

/* Picks executors for queued tasks of ts (lock held); returns how many launches were made.
 * First every task whose cached block's executor has a free core runs there; then the
 * others, except those whose block's executor is busy while the locality wait lasts. */
static size_t assign(em_cluster *c, task_set *ts, launch *out)
{
    size_t k = 0, budget = launch_budget(c, ts);
    const em_task_desc *t = ts->t;
    uint64_t now = now_ms();
    for (size_t i = 0; i < ts->n && k < budget; i++) {
        if (ts->fl[i].state != T_QUEUED)
            continue;
        int e = preferred_slot(c, &t[i], failed_on(c, &t[i]));
        if (e < 0 || c->ex[e].running >= c->ex[e].cores)
            continue;
        out[k++] = launch_on(c, ts, i, e);
        c->last_local_ms = now;
        c->nlocal++;
    }
    bool wait = now - c->last_local_ms < c->wait_ms;
    for (size_t i = 0; i < ts->n && k < budget; i++) {
        if (ts->fl[i].state != T_QUEUED)
            continue;
        const char *avoid = failed_on(c, &t[i]);
        if (wait && preferred_slot(c, &t[i], avoid) >= 0)
            continue;            /* waits for the busy executor holding its block */
        int best = pick_executor(c, avoid);
        if (best == -2)
            continue;            /* waits for an executor other than where it failed */
        if (best < 0)
            break;
        if (avoid)
            em_log(EM_LOG_INFO, "driver: stage %u task %u attempt %u runs on %s (attempt %u "
                   "failed on %s)", t[i].stage_id, t[i].partition, t[i].attempt,
                   c->ex[best].exec_id, t[i].attempt - 1, avoid);
        if (t[i].pref_rdd) {
            int at = loc_get(c, loc_key(t[i].pref_rdd, t[i].pref_part));
            if (at == best)
                c->nlocal++;
            else if (at >= 0)
                c->nmissed++;
        }
        out[k++] = launch_on(c, ts, i, best);
    }
    return k;
}

/* A launch that could not be sent (the stage or launch frame is over the frame cap, or the
 * connection is gone) fails its task with the reason, so nothing waits for it. Lock held. */
static void launch_failed(em_cluster *c, task_set *ts, const launch *l, const em_err *why)
{
    const em_task_desc *t = &ts->t[l->task];
    inflight *f = &ts->fl[l->task];
    exec_slot *s = &c->ex[f->slot];
    if (l->send_stage)
        for (size_t i = s->nstages; i-- > 0;)
            if (s->stages[i] == t->stage_id) {
                memmove(s->stages + i, s->stages + i + 1,
                        (s->nstages - i - 1) * sizeof *s->stages);
                s->nstages--;
                break;
            }
    if (f->state != T_RUNNING)
        return;                  /* the connection closed and on_close failed it */
    em_task_result *r = &ts->res[l->task];
    em_task_result_destroy(r);
    r->code = em_err_copy(&r->err, why);
    em_err_prefix(&r->err, "launching stage %u task %u on executor %s", t->stage_id,
                  t->partition, s->exec_id);
    snprintf(r->exec_id, sizeof r->exec_id, "%s", s->exec_id);
    f->state = T_DONE;
    if (s->running)
        s->running--;
}

static void send_launches(em_cluster *c, task_set *ts, const launch *l, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const em_task_desc *x = &ts->t[l[k].task];
        em_err err = EM_ERR_INIT;
        int rc = 0;
        if (l[k].send_stage)
            rc = send_data(c, l[k].conn, EM__DATA_STAGE, x->stage_id, x->stage_json, x->len,
                           &err);
        em__msg m = {.type = EM__MSG_LAUNCH, .id = ts->base + l[k].task, .stage = x->stage_id,
                     .part = x->partition, .attempt = x->attempt, .is_map = x->is_map};
        if (rc == 0)
            rc = send_msg(c, l[k].conn, &m, &err);
        if (rc < 0) {
            em_log(EM_LOG_DEBUG, "driver: launching task %llu: %s", (unsigned long long)m.id,
                   err.msg);
            pthread_mutex_lock(&c->lock);
            launch_failed(c, ts, &l[k], &err);
            pthread_cond_broadcast(&c->cond);
            pthread_mutex_unlock(&c->lock);
        }
    }
}

/* The set's cancel flag is set: its queued tasks fail now; its running ones are to be
 * killed (their ids and connections into l, with l[k].task the index). Lock held. Returns
 * how many kills to send. */
static size_t cancel_set(em_cluster *c, task_set *ts, launch *l)
{
    size_t k = 0;
    ts->canceled = true;
    for (size_t i = 0; i < ts->n; i++) {
        inflight *f = &ts->fl[i];
        if (f->state == T_QUEUED) {
            ts->res[i].code = em_err_set(&ts->res[i].err, EM_ECANCELED, "task canceled "
                                         "before it started");
            f->state = T_DONE;
        } else if (f->state == T_RUNNING) {
            l[k++] = (launch){i, c->ex[f->slot].conn, false};
        }
    }
    pthread_cond_broadcast(&c->cond);   /* fewer queued tasks ahead of other sets */
    return k;
}

static void send_kills(em_cluster *c, const task_set *ts, const launch *l, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        em_err err = EM_ERR_INIT;
        em__msg m = {.type = EM__MSG_KILL, .id = ts->base + l[k].task};
        if (send_msg(c, l[k].conn, &m, &err) < 0)   /* gone: on_close fails the task */
            em_log(EM_LOG_DEBUG, "driver: killing task %llu: %s", (unsigned long long)m.id,
                   err.msg);
    }
}

void em_cluster_wake(em_cluster *c)
{
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Lists ts in c->sets by priority, after the sets of equal priority. Lock held. */
static void set_insert(em_cluster *c, task_set *ts)
{
    task_set **p = &c->sets;
    while (*p && (*p)->prio <= ts->prio)
        p = &(*p)->next;
    ts->next = *p;
    *p = ts;
    ts->base = c->next_id;
    c->next_id += ts->n;
}

static void set_remove(em_cluster *c, task_set *ts)   /* lock held */
{
    for (task_set **p = &c->sets; *p; p = &(*p)->next)
        if (*p == ts) {
            *p = ts->next;
            break;
        }
    pthread_cond_broadcast(&c->cond);
}

/* One pass of the run loop of ts: 1 when every task is done, 0 to wait, <0 (err) when
 * no executor was alive for too long. Lock held (released around sends). */
static int run_pass(em_cluster *c, task_set *ts, launch *ls, uint64_t *idle_since,
                    em_err *err)
{
    process_losses(c);
    const atomic_bool *cancel = ts->n ? ts->t[0].cancel : NULL;
    if (cancel && !ts->canceled && atomic_load(cancel)) {
        size_t k = cancel_set(c, ts, ls);
        pthread_mutex_unlock(&c->lock);
        send_kills(c, ts, ls, k);
        pthread_mutex_lock(&c->lock);
    }
    size_t done = 0;
    for (size_t i = 0; i < ts->n; i++)
        done += ts->fl[i].state == T_DONE;
    if (done == ts->n)
        return 1;
    size_t k = ts->canceled ? 0 : assign(c, ts, ls);
    if (k) {
        pthread_mutex_unlock(&c->lock);
        send_launches(c, ts, ls, k);
        pthread_mutex_lock(&c->lock);
    }
    if (alive_count(c, NULL) > 0) {
        *idle_since = now_ms();
    } else if (now_ms() - *idle_since > c->o.register_timeout_ms) {
        for (size_t i = 0; i < ts->n; i++)
            if (ts->fl[i].state != T_DONE) {
                ts->res[i].code = em_err_set(&ts->res[i].err, EM_EIO, "no executor");
                ts->fl[i].state = T_DONE;
            }
        return em_err_set(err, EM_EIO, "driver: no executor alive for %u ms",
                          c->o.register_timeout_ms);
    }
    return 0;
}

int em_cluster_run_tasks(em_cluster *c, const em_task_desc *tasks, size_t n,
                         em_task_result *results, em_err *err)
{
    if (n == 0)
        return 0;
    task_set ts = {.t = tasks, .fl = em_xcalloc(n, sizeof *ts.fl), .res = results, .n = n,
                   .prio = tasks[0].prio};
    launch *ls = em_xcalloc(n, sizeof *ls);
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    set_insert(c, &ts);
    c->last_local_ms = now_ms();
    uint64_t idle_since = now_ms();
    while ((rc = run_pass(c, &ts, ls, &idle_since, err)) == 0) {
        timed_wait(c, 200);
        if (c->o.mode == EM_CLUSTER_SPAWN) {
            pthread_mutex_unlock(&c->lock);
            reap(c, NULL, 0);
            pthread_mutex_lock(&c->lock);
        }
    }
    rc = rc < 0 ? rc : 0;
    set_remove(c, &ts);
    note_failures(c, tasks, n, results);
    note_locations(c, tasks, n, ts.fl, results);
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < n; i++) {
        for (size_t b = 0; b < ts.fl[i].nb; b++)
            em_batch_unref(ts.fl[i].batches[b]);
        em_free(ts.fl[i].batches);
        em_vbuf_destroy(&ts.fl[i].part);
    }
    em_free(ts.fl);
    em_free(ls);
    return rc;
}

/* ---------------------------------------------------------------- life cycle */

em_cluster *em_cluster_new(const em_cluster_opts *o, em_err *err)
{
    if (!o || (o->mode != EM_CLUSTER_SPAWN && o->mode != EM_CLUSTER_ACCEPT) || o->nexec == 0 ||
        (o->mode == EM_CLUSTER_SPAWN && o->cores == 0)) {
        em_err_set(err, EM_EINVAL, "cluster: a mode, executors >= 1 and cores >= 1 are needed");
        return NULL;
    }
    if (o->secret && strlen(o->secret) < 16) {
        em_err_set(err, EM_EINVAL, "cluster: the secret needs at least 16 bytes");
        return NULL;
    }
    em_cluster *c = em_xcalloc(1, sizeof *c);
    c->o = *o;
    if (!c->o.register_timeout_ms)
        c->o.register_timeout_ms = 60000;
    c->wait_ms = o->locality_wait_ms == EM_CLUSTER_NO_LOCALITY_WAIT ? 0
                 : o->locality_wait_ms ? o->locality_wait_ms : 3000;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    pthread_mutex_init(&c->proc_lock, NULL);
    c->listen_host = em_xstrdup(o->listen_host ? o->listen_host : "127.0.0.1");
    c->memory = o->memory ? em_xstrdup(o->memory) : NULL;
    c->work_dir = o->work_dir ? em_xstrdup(o->work_dir) : NULL;
    if (o->secret) {
        c->secret = em_xstrdup(o->secret);
    } else {
        uint8_t raw[32];
        if (em_random_bytes(raw, sizeof raw, err) < 0)
            goto fail;
        c->secret = em_xmalloc(65);
        for (int i = 0; i < 32; i++)
            snprintf(c->secret + 2 * i, 3, "%02x", raw[i]);
    }
    if (o->job_library) {
        c->library = realpath(o->job_library, NULL);
        if (!c->library) {
            em_err_set(err, EM_ENOTFOUND, "job library %s: %s", o->job_library, strerror(errno));
            goto fail;
        }
        if (em_executor_file_sha256(c->library, c->sha, err) < 0)
            goto fail;
    }
    if (o->mode == EM_CLUSTER_SPAWN && !(c->bin = em__ember_bin(o->ember_bin))) {
        em_err_set(err, EM_ENOTFOUND, "local-cluster: cannot find the ember command to start "
                                      "executors (set EMBER_BIN)");
        goto fail;
    }
    em_net_opts no = {.secret = c->secret, .secret_len = strlen(c->secret), .ops = &d_net_ops,
                      .ud = c, .heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : 500,
                      .peer_timeout_ms = o->peer_timeout_ms};
    if (!(c->net = em_net_new(&no, err)))
        goto fail;
    uint16_t port;
    if (em_net_listen(c->net, c->listen_host, o->listen_port, &port, err) < 0)
        goto fail;
    snprintf(c->addr, sizeof c->addr, "%s:%u", c->listen_host, port);
    for (uint32_t i = 0; o->mode == EM_CLUSTER_SPAWN && i < o->nexec; i++)
        if (spawn_one(c, err) < 0)
            goto fail;
    return c;
fail:
    em_cluster_free(c);
    return NULL;
}

const char *em_cluster_address(const em_cluster *c)
{
    return c->addr;
}

const char *em_cluster_secret(const em_cluster *c)
{
    return c->secret;
}

void em_cluster_free(em_cluster *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->closing = true;
    if (c->nlocal || c->nmissed)
        em_log(EM_LOG_INFO, "driver: cache locality: %llu tasks ran where their cached block "
               "was, %llu elsewhere", (unsigned long long)c->nlocal,
               (unsigned long long)c->nmissed);
    pthread_mutex_unlock(&c->lock);
    em_net_free(c->net);   /* executors see the driver go and exit */
    uint64_t t0 = now_ms();
    for (size_t i = 0; i < c->nsp; i++) {
        spawned *s = &c->sp[i];
        while (!s->reaped) {
            if (waitpid(s->pid, NULL, WNOHANG) == s->pid || errno == ECHILD) {
                s->reaped = true;
            } else if (now_ms() - t0 > 10000) {
                em_log(EM_LOG_WARN, "driver: executor %s (pid %d) did not exit; killing it",
                       s->exec_id, (int)s->pid);
                kill(s->pid, SIGKILL);
                waitpid(s->pid, NULL, 0);
                s->reaped = true;
            } else {
                usleep(5000);
            }
        }
    }
    for (size_t i = 0; i < c->nex; i++)
        em_free(c->ex[i].stages);
    for (int i = 0; i < BCAST_CACHE; i++) {
        em_batch_unref(c->bcache[i].batch);
        em_free(c->bcache[i].crcs);
    }
    em_free(c->ex);
    em_free(c->sp);
    em_free(c->fails);
    em_free(c->locs);
    em_free(c->secret);
    free(c->library);
    em_free(c->listen_host);
    em_free(c->memory);
    em_free(c->work_dir);
    em_free(c->bin);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->proc_lock);
    em_free(c);
}

/* ---------------------------------------------------------------- standalone hook */

static em_cluster_master_ops g_master_ops;
static bool g_master_set;

void em_cluster_set_master_ops(const em_cluster_master_ops *ops)
{
    g_master_set = ops != NULL;
    if (ops)
        g_master_ops = *ops;
}

const em_cluster_master_ops *em_cluster_master_ops_get(void)
{
    return g_master_set ? &g_master_ops : NULL;
}
