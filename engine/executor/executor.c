/* engine/executor/executor.c - an executor process: registers with the driver, loads the job
 * library (after checking its sha256), runs launched tasks on C task threads with
 * engine/exec (em_exec_run_task), serves its shuffle segments to other executors, and
 * answers the driver's messages on the loop thread. Exits when the driver connection
 * closes. What task threads ask of the driver and of other executors (blocks, broadcasts,
 * map-output locations, remote shuffle segments) is engine/executor/requests.c.
 *
 * DESIGN
 *   One em_net (loop thread) carries the driver connection, the shuffle server (inbound
 *   connections of other executors' fetchers) and outbound fetch connections (one per
 *   peer "host:port", made on first use by shuffle/remote.c's fetcher). Task threads block on requests: a `pending`
 *   record (request id, connection) in a list under x->lock that the loop thread fills and
 *   marks done; a connection that closes fails its pending requests, so nothing waits
 *   forever (a stopped peer is closed by the heartbeat timeout).
 *   Serving a segment reads the local files on the loop thread (page cache, small reads)
 *   and sends it in EM__SEG_CHUNK pieces.
 *   Location strings handed to tasks (map outputs) are interned for the process's life.
 *   Cancellation: each task thread has a run slot (task id + cancel flag) under x->lock; a
 *   `kill` from the driver sets the flag of the slot running that task (the task stops at
 *   its next check, engine/exec) or marks the queued task so that it is never started.
 *   Stopping (the driver went away) sets every running task's flag.
 * FILES: <work-dir>/ember-exec-XXXXXX/{shuffle,spill,blocks}, removed whole on exit; a
 * shuffle's files are deleted earlier when the driver says `remove_shuffle` (its dataset
 * died: the cleaner thread deletes them, so the loop thread never waits for unlinks), and
 * spill files by the task that wrote them when it ends. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/executor/executor_int.h"

/* ---------------------------------------------------------------- loop thread */

/* Serving shuffle segments (shuffle/remote.c queues a peer's fetches and calls these). */
static int serve_send(void *ud, em_conn_id c, uint64_t id, const uint8_t *p, size_t n,
                      bool last, em_err *err)
{
    return em__x_send_data(ud, c, EM__DATA_SEGMENT, last ? 1 : 0, id, p, n, err);
}

static void serve_fail(void *ud, em_conn_id c, uint64_t id, const em_err *why)
{
    em__msg e = {.type = EM__MSG_FETCH_ERROR, .id = id, .code = why->code, .err = *why};
    em_err serr = EM_ERR_INIT;
    em__x_send_msg(ud, c, &e, &serr);
}

/* A peer's `fetch`: queued with the shuffle server, which sends the segment as SEGMENT
 * frames while the connection's send queue allows (bounded per connection), or a
 * fetch_error. <0 (too many in flight) closes the connection. */
static int serve_fetch(executor *x, em_conn_id c, const em__msg *m, em_err *err)
{
    pthread_mutex_lock(&x->lock);
    em_shuffle_remote *r = x->remote;
    pthread_mutex_unlock(&x->lock);
    if (!r) {
        em_err e = EM_ERR_INIT;
        em_err_set(&e, EM_EFETCH, "executor not registered yet");
        serve_fail(x, c, m->id, &e);
        return 0;
    }
    return em_shuffle_serve_request(r, c, m->id, m->sid, m->mid, m->reduce, err);
}

static void x_on_drain(void *ud, em_conn_id c)
{
    executor *x = ud;
    pthread_mutex_lock(&x->lock);
    em_shuffle_remote *r = x->remote;
    pthread_mutex_unlock(&x->lock);
    if (r)
        em_shuffle_serve_drain(r, c);
}

/* A `kill` for task id: its running slot's flag, or its queue entry. Lock held. Unknown
 * ids (finished, never launched) are ignored. */
static void kill_task(executor *x, uint64_t id)
{
    for (uint32_t i = 0; x->slots && i < x->nthreads; i++)
        if (x->slots[i].busy && x->slots[i].id == id) {
            atomic_store(&x->slots[i].cancel, true);
            return;
        }
    for (size_t i = x->qhead; i < x->qtail; i++)
        if (x->queue[i].id == id)
            x->queue[i].killed = true;
}

/* The newest copy of stage id with a new reference, or NULL. Lock held. */
static stage_ent *find_stage(executor *x, uint32_t id)
{
    for (size_t i = x->nstages; i-- > 0;)
        if (x->stages[i]->id == id) {
            x->stages[i]->refs++;
            return x->stages[i];
        }
    return NULL;
}

static int on_driver_rpc(executor *x, const em__msg *m0, em__msg *m, em_err *err)
{
    (void)m0;
    pending *p;
    switch (m->type) {
    case EM__MSG_REGISTERED:
        x->reg = *m;
        memset(m, 0, sizeof *m);
        x->got_registered = true;
        pthread_cond_broadcast(&x->cond);
        break;
    case EM__MSG_LAUNCH:
        if (x->qtail == x->qcap) {
            if (x->qhead > 0) {
                memmove(x->queue, x->queue + x->qhead, (x->qtail - x->qhead) * sizeof *x->queue);
                x->qtail -= x->qhead;
                x->qhead = 0;
            } else {
                x->queue = em_arr_xgrow(x->queue, &x->qcap, x->qtail + 1, sizeof *x->queue);
            }
        }
        x->queue[x->qtail++] = (task_item){m->id, m->stage, m->part, m->attempt, m->is_map,
                                           false, find_stage(x, m->stage)};
        pthread_cond_signal(&x->qcond);   /* one task thread takes it */
        break;
    case EM__MSG_KILL:
        kill_task(x, m->id);
        break;
    case EM__MSG_DROP:
        /* em_broadcast_destroy / em_rdd_unpersist on the driver: every block of that
         * (type, a) goes; a task still reading one keeps its own references. */
        em_log(EM_LOG_DEBUG, "executor: dropping blocks type %u id %u", m->block.type,
               m->block.a);
        em_block_store_remove_all(x->store, m->block.type, m->block.a);
        break;
    case EM__MSG_REMOVE_SHUFFLE:
        /* The dataset that produced it died on the driver (em_rdd_release), or a
         * cancelled job wrote it: no running job and no job to come reads it, so its
         * data, index and any leftover writer spill files go. The cleaner's thread scans
         * and unlinks; the loop thread only queues the id. */
        em_log(EM_LOG_DEBUG, "executor: removing shuffle %u", m->sid);
        if (x->cleaner)
            em_shuffle_cleaner_remove(x->cleaner, m->sid);
        break;
    case EM__MSG_BLOCK_REPLY:
    case EM__MSG_MAP_OUTPUTS_REPLY:
        if ((p = em__x_find_pending(x, m->id, x->driver))) {
            p->reply = *m;
            memset(m, 0, sizeof *m);
            p->done = true;
            pthread_cond_broadcast(&x->cond);
        }
        break;
    default:
        return em_err_set(err, EM_EPROTO, "driver sent an unexpected message type %d", m->type);
    }
    return 0;
}

static void stage_unref(stage_ent *st)   /* x->lock held */
{
    if (st && --st->refs == 0) {
        em_free(st->json);
        em_free(st);
    }
}

/* Keeps a stage's JSON, dropping the oldest past EM__STAGES_KEPT (the driver forgets them
 * in the same order). Lock held. */
static void add_stage(executor *x, uint32_t id, em_slice body)
{
    stage_ent *st = em_xcalloc(1, sizeof *st);
    st->id = id;
    st->json = em_xmalloc(body.n + 1);
    memcpy(st->json, body.p, body.n);
    st->json[body.n] = '\0';
    st->len = body.n;
    st->refs = 1;
    if (x->nstages > EM__STAGES_KEPT) {   /* extra old ones after a failed send */
        stage_unref(x->stages[0]);
        memmove(x->stages, x->stages + 1, (x->nstages - 1) * sizeof *x->stages);
        x->nstages--;
    }
    if (x->nstages == EM__STAGES_KEPT) {
        stage_unref(x->stages[0]);
        memmove(x->stages, x->stages + 1, (x->nstages - 1) * sizeof *x->stages);
        x->nstages--;
    }
    x->stages = em_xrealloc(x->stages, (x->nstages + 1) * sizeof *x->stages);
    x->stages[x->nstages++] = st;
}

/* A piece of the broadcast of request req: assembled into its value; a bad piece fails the
 * request (the task sees the error), not the connection, except a sealed piece that fails
 * its tag (EM_EAUTH: tampering, the link closes as for any failed frame). While pieces
 * are missing, one more is asked for per piece received, so EM__PIECE_WINDOW stay in
 * flight. Lock held. */
static int on_piece(executor *x, em_conn_id c, uint64_t req, em_slice body, em_err *cerr)
{
    pending *p = em__x_find_pending(x, req, c);
    if (!p)
        return 0;
    em_err err = EM_ERR_INIT;
    p->as.sealed = em_net_sealed(x->net);   /* the tag proved the piece: no crc pass */
    int rc = p->is_bcast ? em__bcast_asm_add(&p->as, body, &err)
                         : em_err_set(&err, EM_EPROTO, "broadcast piece for another request");
    if (rc == 0 && p->asked < p->as.npieces) {
        em__msg m = {.type = EM__MSG_BCAST, .id = req, .block = {EM_BLOCK_BROADCAST,
                     p->bcast_id, 0, 0}, .first = p->asked, .count = 1};
        p->asked++;
        rc = em__x_send_msg(x, c, &m, &err);   /* the loop thread: never blocks */
    }
    if (rc < 0 || em__bcast_asm_done(&p->as)) {
        p->done = true;
        p->code = rc;
        if (rc < 0) {
            em_err_copy(&p->err, &err);
            em_err_prefix(&p->err, "broadcast %u", p->bcast_id);
        }
        pthread_cond_broadcast(&x->cond);
    }
    return rc == EM_EAUTH ? em_err_copy(cerr, &p->err) : 0;
}

static int on_data(executor *x, em_conn_id c, bool from_driver, em_slice payload, em_err *err)
{
    uint8_t kind, flags;
    uint64_t id;
    em_slice body;
    int rc = em__data_parse(payload, &kind, &flags, &id, &body, err);
    if (rc < 0)
        return rc;
    if (from_driver && kind == EM__DATA_STAGE) {
        if (id > UINT32_MAX)
            return em_err_set(err, EM_EPROTO, "stage id %llu out of range",
                              (unsigned long long)id);
        add_stage(x, (uint32_t)id, body);
        return 0;
    }
    if (from_driver && kind == EM__DATA_PIECE)
        return on_piece(x, c, id, body, err);
    if (from_driver && kind == EM__DATA_BLOCK) {
        pending *p = em__x_find_pending(x, id, c);
        if (!p)
            return 0;
        em_batch *b;
        if ((rc = em_block_decode_net(body.p, body.n, &b, err)) < 0)
            return rc;
        p->batches = em_xrealloc(p->batches, (p->nb + 1) * sizeof *p->batches);
        p->batches[p->nb++] = b;
        return 0;
    }
    if (!from_driver && kind == EM__DATA_SEGMENT) {
        pending *p = em__x_find_pending(x, id, c);
        if (!p)
            return 0;
        if (!p->seg) {
            p->done = true;
            p->code = em_err_set(&p->err, EM_EPROTO, "segment for a non-fetch request");
        } else if (body.n > p->seg_max - p->seg->len) {   /* seg->len <= seg_max holds */
            p->done = true;
            p->code = em_err_set(&p->err, EM_EPROTO, "segment grows past the %llu bytes its "
                                 "map status told", (unsigned long long)p->seg_max);
        } else if (em_vbuf_append(p->seg, body.p, body.n) < 0) {
            p->done = true;
            p->code = em_err_set(&p->err, EM_ENOMEM, "segment of %zu bytes", p->seg->len);
        } else if (flags & 1) {
            p->done = true;
        }
        pthread_cond_broadcast(&x->cond);
        return 0;
    }
    return em_err_set(err, EM_EPROTO, "unexpected DATA frame kind %u", kind);
}

/* A broadcast the driver pushed (BPUSH, id = broadcast id) goes into the block store, where
 * its tasks find it; one that does not decode is dropped with a warning (a task that needs
 * it then asks the driver for it in pieces). Loop thread, x->lock not held. */
static void on_push(executor *x, em_slice payload)
{
    uint8_t kind, flags;
    uint64_t id;
    em_slice body;
    em_batch *b = NULL;
    em_err err = EM_ERR_INIT;
    int rc = em__data_parse(payload, &kind, &flags, &id, &body, &err);
    if (rc == 0 && id > UINT32_MAX)
        rc = em_err_set(&err, EM_EPROTO, "pushed broadcast id %llu out of range",
                        (unsigned long long)id);
    if (rc == 0)
        rc = em__bpush_decode(body, em_net_sealed(x->net), &b, &err);
    if (rc == 0) {
        em_block_id bid = {EM_BLOCK_BROADCAST, (uint32_t)id, 0, 0};
        rc = em_block_store_put_take(x->store, bid, &b, 1, EM_STORAGE_MEMORY_AND_DISK, &err);
    }
    if (rc < 0)
        em_log(EM_LOG_WARN, "executor %s: driver DATA frame (BPUSH, %zu bytes) dropped: %s",
               x->o->exec_id, payload.n, err.msg);
}

static int x_on_frame(void *ud, em_conn_id c, uint8_t type, em_slice payload, em_err *err)
{
    executor *x = ud;
    pthread_mutex_lock(&x->lock);
    bool from_driver = c == x->driver;
    int rc = 0;
    if (type == EM_FRAME_DATA && from_driver && payload.n && payload.p[0] == EM__DATA_BPUSH) {
        pthread_mutex_unlock(&x->lock);
        on_push(x, payload);
        return 0;
    }
    if (type == EM_FRAME_DATA) {
        rc = on_data(x, c, from_driver, payload, err);
        pthread_mutex_unlock(&x->lock);
        return rc;
    }
    pthread_mutex_unlock(&x->lock);
    if (type != EM_FRAME_RPC)
        return em_err_set(err, EM_EPROTO, "unexpected frame type %u", type);
    em__msg m;
    if ((rc = em__msg_decode(payload.p, payload.n, &m, err)) < 0) {
        em__msg_destroy(&m);
        return rc;
    }
    if (!from_driver && m.type == EM__MSG_FETCH) {
        rc = serve_fetch(x, c, &m, err);
    } else {
        pthread_mutex_lock(&x->lock);
        if (from_driver) {
            rc = on_driver_rpc(x, NULL, &m, err);
        } else if (m.type == EM__MSG_FETCH_ERROR) {
            pending *p = em__x_find_pending(x, m.id, c);
            if (p) {
                p->done = true;
                p->code = em_err_set(&p->err, EM_EFETCH, "peer: %s", m.err.msg);
                pthread_cond_broadcast(&x->cond);
            }
        } else {
            rc = em_err_set(err, EM_EPROTO, "peer sent an unexpected message type %d", m.type);
        }
        pthread_mutex_unlock(&x->lock);
    }
    em__msg_destroy(&m);
    return rc;
}

static void x_on_close(void *ud, em_conn_id c, const em_err *why)
{
    executor *x = ud;
    pthread_mutex_lock(&x->lock);
    if (c == x->driver) {
        x->driver_gone = true;
        pthread_cond_broadcast(&x->gone);
        pthread_cond_broadcast(&x->cond);   /* registration and requests to the driver */
        em_log(why->code ? EM_LOG_WARN : EM_LOG_INFO, "executor %s: driver connection closed%s%s",
               x->o->exec_id, why->code ? ": " : "", why->msg);
    }
    if (x->remote)
        em_shuffle_remote_forget(x->remote, c);
    em__x_fail_pending(x, c, EM_EFETCH, why->code ? why->msg : "connection closed");
    pthread_mutex_unlock(&x->lock);
}

static const em_net_ops x_net_ops = {.on_frame = x_on_frame, .on_close = x_on_close,
                                     .on_drain = x_on_drain};

/* ---------------------------------------------------------------- task threads */

/* Sends one encoded result block in RESULT frames of at most EM__SEG_CHUNK bytes (flags
 * bit 0 on the last), so a block of any size fits under the frame cap. */
static int send_block_chunks(executor *x, uint64_t id, const em_vbuf *v, em_err *err)
{
    size_t off = 0;
    do {
        size_t k = v->len - off < EM__SEG_CHUNK ? v->len - off : EM__SEG_CHUNK;
        uint8_t hdr[EM__DATA_HDR];
        em__data_hdr(hdr, EM__DATA_RESULT, off + k == v->len ? 1 : 0, id);
        em_slice parts[2] = {{hdr, sizeof hdr}, {v->data + off, k}};
        int rc = em_net_sendv(x->net, x->driver, EM_FRAME_DATA, parts, 2, err);
        if (rc < 0)
            return rc;
        off += k;
    } while (off < v->len);
    return 0;
}

/* Sends the result batches (DATA frames) and then the status of task id, which also
 * reports the size of this executor's block store. */
static void send_result(executor *x, uint64_t id, em_task_result *r)
{
    em_err err = EM_ERR_INIT;
    em_vbuf v;
    em_vbuf_init(&v);
    uint32_t sent = 0;
    for (size_t i = 0; r->code == 0 && i < r->nbatches; i++) {
        em_vbuf_clear(&v);
        int rc = em_block_encode(r->batches[i], x->wire_codec, 1, &v, &err);
        if (rc == 0)
            rc = send_block_chunks(x, id, &v, &err);
        if (rc < 0) {
            em_task_result_destroy(r);
            r->code = rc;
            em_err_copy(&r->err, &err);
            em_err_prefix(&r->err, "sending result batch %zu", i);
            break;
        }
        sent++;
    }
    em_vbuf_destroy(&v);
    em_store_stats ss;
    em_block_store_stats(x->store, &ss);
    em__msg m = {.type = EM__MSG_STATUS, .id = id, .nbatches = r->code == 0 ? sent : 0,
                 .store_bytes = ss.mem_bytes + ss.disk_bytes};
    m.res = *r;
    em_vbuf out;
    em_vbuf_init(&out);
    if (em__msg_encode(&m, &out, &err) == 0)
        em_net_send(x->net, x->driver, EM_FRAME_RPC, out.data, out.len, &err);
    em_vbuf_destroy(&out);
}

static void run_one(executor *x, const task_item *t, run_slot *slot)
{
    em_task_result r;
    memset(&r, 0, sizeof r);
    if (!t->st) {
        r.code = em_err_set(&r.err, EM_EPROTO, "task %llu: stage %u was never sent",
                            (unsigned long long)t->id, t->stage);
    } else if (t->killed) {
        r.code = em_err_set(&r.err, EM_ECANCELED, "task %llu canceled before it started",
                            (unsigned long long)t->id);
    } else {
        em_exec_env env = x->env;
        em_err err = EM_ERR_INIT;
        env.cancel = &slot->cancel;
        /* The JSON is passed in place (the reference keeps it): every task of the stage
         * hands the task thread the same address, so it decodes the stage once. */
        em_exec_run_task(&env, t->st->json, t->st->len, t->part, t->attempt, &r, &err);
        if (r.code == 0 && err.code != 0) {
            /* Defensive: a runner that returned an error without filling the result. */
            r.code = err.code;
            em_err_copy(&r.err, &err);
        }
        if (r.code == 0 && r.err.code != 0)
            r.code = r.err.code;
        /* An input this host cannot read (a path the driver could read: not shared, not
         * mounted here) is named with the host, or the driver's report would not say
         * which machine lacks it. */
        if (r.code == EM_EIO || r.code == EM_ENOTFOUND || r.code == EM_EACCES)
            em_err_prefix(&r.err, "on the executor at %s", x->loc);
    }
    r.is_map = t->is_map;
    send_result(x, t->id, &r);
    em_task_result_destroy(&r);
    pthread_mutex_lock(&x->lock);
    stage_unref(t->st);
    pthread_mutex_unlock(&x->lock);
}

static void *task_main(void *arg)
{
    executor *x = arg;
    pthread_mutex_lock(&x->lock);
    for (;;) {
        while (!x->stop && x->qhead == x->qtail)
            pthread_cond_wait(&x->qcond, &x->lock);
        if (x->stop)
            break;
        task_item t = x->queue[x->qhead++];
        x->running++;
        run_slot *slot = &x->slots[0];
        while (slot->busy)   /* a free one exists: at most nthreads tasks run */
            slot++;
        slot->busy = true;
        slot->id = t.id;
        atomic_store(&slot->cancel, false);
        pthread_mutex_unlock(&x->lock);
        run_one(x, &t, slot);
        pthread_mutex_lock(&x->lock);
        slot->busy = false;
        x->running--;
        if (x->stop)   /* stop_threads waits for the running ones */
            pthread_cond_broadcast(&x->cond);
    }
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

/* ---------------------------------------------------------------- main */

static int make_dirs(executor *x, em_err *err)
{
    const char *base = x->o->work_dir;
    if (!base || !*base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    int rc = em_mkdir_p(base, err);
    if (rc < 0)
        return em_err_prefix(err, "executor work dir");
    char *tmpl = em_xasprintf("%s/ember-exec-XXXXXX", base);
    if (!mkdtemp(tmpl)) {
        rc = em_err_set(err, EM_EIO, "%s: cannot create the work directory: %s", tmpl,
                        strerror(errno));
        em_free(tmpl);
        return rc;
    }
    x->work = tmpl;
    x->shuffle_dir = em_xasprintf("%s/shuffle", tmpl);
    x->spill_dir = em_xasprintf("%s/spill", tmpl);
    if ((rc = em_mkdir_p(x->shuffle_dir, err)) == 0)
        rc = em_mkdir_p(x->spill_dir, err);
    if (rc == 0)
        x->cleaner = em_shuffle_cleaner_new(x->shuffle_dir);
    return rc;
}

/* Checks the library's sha256 against the driver's, then loads it. The file is opened once
 * and both the hash and dlopen go through that descriptor (/proc/self/fd/N), so swapping
 * the file between the check and the load cannot get other code loaded. */
static int load_library(executor *x, em_err *err)
{
    if (!x->reg.library)
        return 0;
    int fd = open(x->reg.library, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return em_err_set(err, EM_ENOTFOUND, "job library %s: %s", x->reg.library,
                          strerror(errno));
    char via[64], hex[65];
    snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
    int rc = em_executor_file_sha256(via, hex, err);
    if (rc < 0) {
        rc = em_err_prefix(err, "job library %s", x->reg.library);
        goto out;
    }
    if (!em_ct_equal(hex, x->reg.sha256, 64)) {
        rc = em_err_set(err, EM_EAUTH, "job library %s: sha256 %s differs from the driver's %s; "
                        "not loading it", x->reg.library, hex, x->reg.sha256);
        goto out;
    }
    void *h = dlopen(via, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        rc = em_err_set(err, EM_EIO, "job library %s: %s", x->reg.library, dlerror());
        goto out;
    }
    if ((rc = em_registry_add_library(h, err)) < 0)
        rc = em_err_prefix(err, "job library %s", x->reg.library);
out:
    close(fd);
    return rc;
}

static int start(executor *x, em_err *err)
{
    const em_executor_opts *o = x->o;
    int rc;
    if ((rc = make_dirs(x, err)) < 0)
        return rc;
    size_t mem = o->memory ? o->memory : (size_t)1 << 30;
    /* Spark's unified memory: tasks may evict cached blocks down to half the memory, and
     * cached blocks never push out task memory (docs/out-of-core.md). */
    x->mm = em_memory_manager_new(mem, 0.5);   /* the driver's fraction comes at registration */
    em_store_opts so = {.mem_budget = mem, .dir = x->work, .zstd_level = 1, .mm = x->mm};
    if (!(x->store = em_block_store_new(&so, err)))
        return err->code ? err->code : EM_EIO;
    em_net_opts no = {.secret = o->secret, .secret_len = strlen(o->secret), .ops = &x_net_ops,
                      .ud = x, .heartbeat_ms = 500};
    if (!(x->net = em_net_new(&no, err)))
        return err->code;
    uint16_t port;
    const char *host = o->host ? o->host : "127.0.0.1";
    if ((rc = em_net_listen_range(x->net, host, o->port_lo, o->port_hi, &port, err)) < 0)
        return em_err_prefix(err, "executor %s: shuffle server", o->exec_id);
    char adv[EM_NET_HOST_MAX];
    em_net_advertised(host, o->advertise_host, adv, sizeof adv);
    host = adv;
    if (strlen(host) > EM__MAX_NAME)
        return em_err_set(err, EM_EINVAL, "executor %s: advertised host '%s' is longer than "
                          "%d bytes", o->exec_id, host, EM__MAX_NAME);
    em_net_addr_format(x->loc, sizeof x->loc, host, port);
    em_conn_id d;
    if ((rc = em_net_connect(x->net, o->driver_host, o->driver_port, &d, err)) < 0)
        return em_err_prefix(err, "executor %s: driver", o->exec_id);
    pthread_mutex_lock(&x->lock);
    x->driver = d;
    pthread_mutex_unlock(&x->lock);
    em__msg m = {.type = EM__MSG_REGISTER, .cores = o->cores, .pid = (uint32_t)getpid(),
                 .port = port};
    snprintf(m.exec_id, sizeof m.exec_id, "%s", o->exec_id);
    memcpy(m.host, host, strlen(host) + 1);   /* <= EM__MAX_NAME bytes: checked above */
    if ((rc = em__x_send_msg(x, d, &m, err)) < 0)
        return rc;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&x->lock);
    while (!x->got_registered && !x->driver_gone &&
           pthread_cond_timedwait(&x->cond, &x->lock, &until) != ETIMEDOUT)
        ;
    bool ok = x->got_registered;
    pthread_mutex_unlock(&x->lock);
    if (!ok)
        return em_err_set(err, EM_ETIMEDOUT, "executor %s: the driver did not accept the "
                                             "registration", o->exec_id);
    if ((rc = load_library(x, err)) < 0)
        return rc;
    em_memory_manager_set_storage_fraction(x->mm, x->reg.storage_permille / 1000.0);
    em_block_store_set_zstd_level(x->store, x->reg.zstd_level);
    x->wire_codec = em__wire_codec(x->reg.compress, em_net_is_loopback(x->net, d));
    em_shuffle_remote_opts ro = {.net = x->net, .self_loc = x->loc, .dir = x->shuffle_dir,
                                 .request = em__x_request_segment, .send = serve_send,
                                 .fail = serve_fail, .chunk = EM__SEG_CHUNK, .ud = x};
    em_shuffle_remote *remote = em_shuffle_remote_new(&ro);
    pthread_mutex_lock(&x->lock);   /* x_on_close reads it on the loop thread */
    x->remote = remote;
    pthread_mutex_unlock(&x->lock);
    x->env = (em_exec_env){
        .store = x->store, .shuffle_dir = x->shuffle_dir, .spill_dir = x->spill_dir,
        .exec_id = x->loc, .fetcher = em_shuffle_remote_fetcher(remote),
        .map_outputs = em__x_map_outputs,
        .ud = x, .fetch_block = em__x_fetch_block,
        .task_mem_budget = x->reg.shuffle_mem ? x->reg.shuffle_mem : mem / 4 / o->cores,
        .zstd_level = x->reg.zstd_level, .shuffle_sync = x->reg.shuffle_sync, .mem = x->mm,
    };
    x->threads = em_xcalloc(o->cores, sizeof *x->threads);
    x->slots = em_xcalloc(o->cores, sizeof *x->slots);
    for (uint32_t i = 0; i < o->cores; i++) {
        if (pthread_create(&x->threads[i], NULL, task_main, x) != 0)
            return em_err_set(err, EM_ENOMEM, "executor %s: cannot start task thread %u",
                              o->exec_id, i);
        x->nthreads = i + 1;
    }
    em_log(EM_LOG_INFO, "executor %s: %u task threads, shuffle server %s, work dir %s, "
           "zstd level %d", o->exec_id, o->cores, x->loc, x->work, (int)x->reg.zstd_level);
    return 0;
}

/* Stops task threads; false when some task did not finish within the grace period. */
static bool stop_threads(executor *x)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 3;
    pthread_mutex_lock(&x->lock);
    x->stop = true;
    for (uint32_t i = 0; x->slots && i < x->nthreads; i++)
        if (x->slots[i].busy)   /* nobody waits for their results any more */
            atomic_store(&x->slots[i].cancel, true);
    pthread_cond_broadcast(&x->cond);
    pthread_cond_broadcast(&x->qcond);
    while (x->running > 0 && pthread_cond_timedwait(&x->cond, &x->lock, &until) != ETIMEDOUT)
        ;
    bool idle = x->running == 0;
    pthread_mutex_unlock(&x->lock);
    if (!idle)
        return false;
    for (uint32_t i = 0; i < x->nthreads; i++)
        pthread_join(x->threads[i], NULL);
    return true;
}

int em_executor_run(const em_executor_opts *o, em_err *err)
{
    if (!o || !o->driver_host || !o->driver_port || !o->exec_id || !*o->exec_id ||
        strlen(o->exec_id) > EM__MAX_NAME || o->cores == 0 || !o->secret ||
        strlen(o->secret) < 16)
        return em_err_set(err, EM_EINVAL, "executor: driver, exec id (1..63 bytes), cores "
                                          "and a secret of >= 16 bytes are required");
    em_task_process_malloc_policy();   /* freed memory kept for reuse, one arena */
    executor *x = em_xcalloc(1, sizeof *x);
    x->o = o;
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->cond, NULL);
    pthread_cond_init(&x->qcond, NULL);
    pthread_cond_init(&x->gone, NULL);
    int rc = start(x, err);
    if (rc == 0) {
        pthread_mutex_lock(&x->lock);
        while (!x->driver_gone)
            pthread_cond_wait(&x->gone, &x->lock);
        pthread_mutex_unlock(&x->lock);
    }
    /* Losing the driver ends the application. */
    if (!stop_threads(x)) {
        /* A task is stuck in user code: remove our files and leave without joining it. */
        em_err e2 = EM_ERR_INIT;
        if (x->work)
            em_rm_rf(x->work, &e2);
        _exit(0);
    }
    em_net_free(x->net);
    em_shuffle_cleaner_free(x->cleaner);   /* before the work dir goes */
    em_block_store_free(x->store);
    em_memory_manager_free(x->mm);
    if (x->work) {
        em_err e2 = EM_ERR_INIT;
        em_rm_rf(x->work, &e2);
    }
    em_free(x->threads);
    em_free(x->slots);
    for (size_t i = 0; i < x->nstages; i++)
        stage_unref(x->stages[i]);
    em_free(x->stages);
    for (size_t i = x->qhead; i < x->qtail; i++)
        stage_unref(x->queue[i].st);
    em_free(x->queue);
    em_shuffle_remote_free(x->remote);
    for (size_t i = 0; i < x->nlocs; i++)
        em_free(x->locs[i]);
    em_free(x->locs);
    em__msg_destroy(&x->reg);
    em_free(x->work);
    em_free(x->shuffle_dir);
    em_free(x->spill_dir);
    pthread_mutex_destroy(&x->lock);
    pthread_cond_destroy(&x->cond);
    pthread_cond_destroy(&x->qcond);
    pthread_cond_destroy(&x->gone);
    em_free(x);
    return rc;
}
