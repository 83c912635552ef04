/* engine/cluster/driver.c - the driver side of cluster mode: accepts executors, ships
 * stages and launches tasks to executors with free cores, collects their results, serves
 * their block and map-output requests, and handles lost executors.
 *
 * DESIGN
 *   Threads: the em_net loop thread decodes every frame and updates the executor table and
 *   the in-flight task sets under c->lock; each em_cluster_run_tasks caller (one per
 *   running job's stage) dispatches its own set's tasks and waits on c->cond. Nothing is
 *   sent while c->lock is held (em_net_send may block on backpressure, and the loop thread
 *   needs the lock to drain). Spawning and reaping executors, and the loop thread's look
 *   at how a lost one ended (describe_lost), are serialized by c->proc_lock (taken before
 *   c->lock, never while holding it).
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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/cluster/cluster_int.h"
#include "engine/deploy/deploy.h"

uint64_t em__cl_now_ms(void)
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

int em__cl_send_msg(em_cluster *c, em_conn_id to, const em__msg *m, em_err *err)
{
    em_vbuf v;
    em_vbuf_init(&v);
    int rc = em__msg_encode(m, &v, err);
    if (rc == 0)
        rc = em_net_send(c->net, to, EM_FRAME_RPC, v.data, v.len, err);
    em_vbuf_destroy(&v);
    return rc;
}

int em__cl_send_data(em_cluster *c, em_conn_id to, uint8_t kind, uint64_t id, const void *p,
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

/* Whether a task set in flight names slot i (its index must not change meaning while
 * one does; a queued task's slot is 0, so slot 0 counts as named: conservative). */
static bool slot_named(const em_cluster *c, size_t i)   /* lock held */
{
    for (const task_set *ts = c->sets; ts; ts = ts->next)
        for (size_t k = 0; k < ts->n; k++)
            if (ts->fl[k].slot == (int)i)
                return true;
    return false;
}

/* A slot to reuse for a new connection: one whose connection closed before registering,
 * or a lost executor's once its loss was handled and no task set in flight names it. So
 * the table holds one slot per open connection plus the recently lost, not one per
 * connection ever authenticated (issue 18). Lock held; NULL = none. */
static exec_slot *free_slot(em_cluster *c)
{
    for (size_t i = 0; i < c->nex; i++) {
        exec_slot *s = &c->ex[i];
        if (s->conn || s->alive || s->lost_pending || s->cause_until ||
            (s->registered && slot_named(c, i)))
            continue;
        em_free(s->stages);
        memset(s, 0, sizeof *s);
        return s;
    }
    return NULL;
}

static void d_on_open(void *ud, em_conn_id id, bool inbound)
{
    em_cluster *c = ud;
    if (!inbound)
        return;
    pthread_mutex_lock(&c->lock);
    exec_slot *s = free_slot(c);
    if (!s) {
        c->ex = em_xrealloc(c->ex, (c->nex + 1) * sizeof *c->ex);
        s = &c->ex[c->nex++];
        memset(s, 0, sizeof *s);
    }
    s->conn = id;
    pthread_mutex_unlock(&c->lock);
}

uint32_t em_cluster_num_slots(em_cluster *c)
{
    pthread_mutex_lock(&c->lock);
    uint32_t n = (uint32_t)c->nex;
    pthread_mutex_unlock(&c->lock);
    return n;
}

static void describe_end(pid_t pid, bool exited, int code, char *buf, size_t n)
{
    if (exited)
        snprintf(buf, n, "; process %d exited with status %d", (int)pid, code);
    else
        snprintf(buf, n, "; process %d was killed by signal %d (%s)", (int)pid, code,
                 em_deploy_signal_name(code));
}

/* How a lost executor of ours (local-cluster: our child) ended, into buf ("" when it is
 * not our child or still runs after 500 ms: a connection can close before the process
 * ends). waitid with WNOWAIT only looks: em__cl_reap still reaps it. Loop thread.
 * Under proc_lock, so that a child em__cl_reap (driver thread) reaped meanwhile is not
 * taken for "not ours": its kept status says how it ended (before, waitid's ECHILD lost
 * the cause, and under load an aborted task's error read only "connection closed"). */
static void describe_lost(em_cluster *c, pid_t pid, char *buf, size_t n)
{
    buf[0] = '\0';
    for (int i = 0; pid > 0 && i < 100; i++) {
        bool done = false;
        pthread_mutex_lock(&c->proc_lock);
        const spawned *sp = NULL;
        for (size_t k = 0; k < c->nsp && !sp; k++)
            if (c->sp[k].pid == pid)
                sp = &c->sp[k];
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (sp && sp->status_kept) {
            describe_end(pid, WIFEXITED(sp->status),
                         WIFEXITED(sp->status) ? WEXITSTATUS(sp->status) : WTERMSIG(sp->status),
                         buf, n);
            done = true;
        } else if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
            done = true;   /* ECHILD: not ours (standalone), or reaped by a kill */
        } else if (si.si_pid == pid) {
            describe_end(pid, si.si_code == CLD_EXITED, si.si_status, buf, n);
            done = true;
        }
        pthread_mutex_unlock(&c->proc_lock);
        if (done)
            return;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void d_on_close(void *ud, em_conn_id id, const em_err *why)
{
    em_cluster *c = ud;
    pid_t pid = 0;
    pthread_mutex_lock(&c->lock);
    exec_slot *s = slot_of(c, id);
    if (s && s->registered && s->alive && !c->closing)
        pid = s->pid;
    pthread_mutex_unlock(&c->lock);
    char how[96], msg[EM_ERR_MSG_MAX + 96];
    describe_lost(c, pid, how, sizeof how);   /* without c->lock: it may wait */
    snprintf(msg, sizeof msg, "%s%s", why->code ? why->msg : "connection closed", how);
    pthread_mutex_lock(&c->lock);
    s = slot_of(c, id);
    if (s) {
        if (s->registered && s->alive && !c->closing) {
            snprintf(s->lost_msg, sizeof s->lost_msg, "%s", msg);
            if (c->o.mode == EM_CLUSTER_ACCEPT && !s->exit_cause[0]) {
                /* The worker reports how the process ended through the master a moment
                 * later: its tasks wait for that (bounded), so their error carries it. */
                em_log(EM_LOG_INFO, "driver: executor %s (%s) lost: %s; waiting up to %u ms "
                       "for its exit report", s->exec_id, s->loc, msg, EM__CL_CAUSE_WAIT_MS);
                s->cause_until = em__cl_now_ms() + EM__CL_CAUSE_WAIT_MS;
            } else {
                em__cl_lost_now(c, s, s->exit_cause[0] ? s->exit_cause : NULL);
            }
        }
        s->alive = false;
        s->conn = 0;
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
}

/* Fails the running tasks of lost executor s with its loss and, when known, how its
 * process ended (cause), and queues the loss for the driver thread. Lock held. */
void em__cl_lost_now(em_cluster *c, exec_slot *s, const char *cause)
{
    char msg[sizeof s->lost_msg + EM_ERR_MSG_MAX + 8];
    snprintf(msg, sizeof msg, "%s%s%s", s->lost_msg, cause ? "; " : "", cause ? cause : "");
    em_log(EM_LOG_WARN, "driver: executor %s (%s) lost: %s", s->exec_id, s->loc, msg);
    s->cause_until = 0;
    s->lost_pending = true;
    fail_running(c, (int)(s - c->ex), msg);
    pthread_cond_broadcast(&c->cond);
}

void em_cluster_executor_exited(em_cluster *c, const char *exec_id, const char *cause)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nex; i++) {
        exec_slot *s = &c->ex[i];
        if (!s->registered || strcmp(s->exec_id, exec_id) != 0)
            continue;
        if (s->cause_until)
            em__cl_lost_now(c, s, cause);
        else if (s->alive)   /* the report came before the connection closed */
            snprintf(s->exit_cause, sizeof s->exit_cause, "%s", cause);
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
        em_net_addr_format(s->loc, sizeof s->loc, m->host, m->port);
        s->cores = m->cores;
        /* Its pid, to describe its end when it is lost: trusted only as far as waitid
         * finds it among our children (local-cluster); WNOWAIT never reaps a stranger. */
        s->pid = c->o.mode == EM_CLUSTER_ACCEPT ? 0 : (pid_t)m->pid;
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
                 .shuffle_sync = c->o.shuffle_sync,
                 .zstd_level = c->o.zstd_level ? c->o.zstd_level : 1};
    memcpy(r.sha256, c->sha, sizeof r.sha256);
    rc = em__cl_send_msg(c, id, &r, err);
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
    }
    pthread_mutex_unlock(&c->lock);
    /* After unlocking: the woken driver thread would otherwise block on c->lock at once
     * (a second context switch per task). */
    if (f)
        pthread_cond_broadcast(&c->cond);
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
            (rc = em__cl_send_data(c, id, EM__DATA_BLOCK, m->id, v.data, v.len, &err)) < 0) {
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
    em__cl_send_msg(c, id, &r, &err);
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
    em__cl_send_msg(c, id, &r, &err);
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
        int rc = em_block_peek_size_net(h, sizeof h, &f->part_size, err);
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
        rc = em_block_decode_net(body.p, body.n, &b, &berr);
    } else if ((rc = add_chunk(f, body, last, &berr)) == 0 && last) {
        rc = em_block_decode_net(f->part.data, f->part.len, &b, &berr);
        em_vbuf_destroy(&f->part);
        f->part_size = 0;
    }
    em_batch **grown = rc == 0 && b ? em_realloc(f->batches, (f->nb + 1) * sizeof *grown) : NULL;
    if (rc == 0 && b && !grown) {
        em_batch_unref(b);
        rc = em_err_set(&berr, EM_ENOMEM, "out of memory for result batch %zu", f->nb + 1);
    }
    if (rc == 0 && b) {
        f->batches = grown;
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
        em__cl_on_bcast(c, id, &m);
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

int em__cl_spawn_one(em_cluster *c, em_err *err)
{
    if (c->nsp >= (size_t)c->o.nexec * 8 + 8)
        return em_err_set(err, EM_EIO, "driver: %zu executors started already; not starting "
                                       "more", c->nsp);
    spawned s = {.pid = 0};
    snprintf(s.exec_id, sizeof s.exec_id, "exec-%u", ++c->next_exec);
    em_deploy_spawn_args a = {.bin = c->bin, .driver = c->addr, .exec_id = s.exec_id,
                        .cores = c->o.cores, .memory = c->memory, .work_dir = c->work_dir,
                        .secret = c->secret, .crypto = c->o.crypto, .port = c->exec_port};
    int rc = em_deploy_spawn_executor(&a, &s.pid, err);
    if (rc < 0)
        return rc;
    c->sp = em_xrealloc(c->sp, (c->nsp + 1) * sizeof *c->sp);
    c->sp[c->nsp++] = s;
    return 0;
}

/* Reaps exited children. A child that died before registering: killed by a signal (an
 * operator, the OOM killer) is replaced; one that exited on its own (bad secret, library
 * mismatch) is described into why and true returned. */
bool em__cl_reap(em_cluster *c, char *why, size_t n)
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
        if (reg) {   /* its loss is reported by the loop thread (describe_lost) */
            s->status = st;
            s->status_kept = true;
            continue;
        }
        char d[64], id[32];
        em_deploy_describe_exit(st, d, sizeof d);
        memcpy(id, s->exec_id, sizeof id);
        em_err err = EM_ERR_INIT;
        if (WIFSIGNALED(st) && em__cl_spawn_one(c, &err) == 0) {
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

void em__cl_kill_spawned(em_cluster *c, const char *exec_id)
{
    for (size_t i = 0; i < c->nsp; i++)
        if (!c->sp[i].reaped && strcmp(c->sp[i].exec_id, exec_id) == 0) {
            kill(c->sp[i].pid, SIGKILL);   /* it may be stopped rather than dead */
            waitpid(c->sp[i].pid, NULL, 0);
            c->sp[i].reaped = true;
        }
}

uint32_t em__cl_alive_count(em_cluster *c, uint32_t *cores)   /* lock held */
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
    uint32_t n = em__cl_alive_count(c, NULL);
    pthread_mutex_unlock(&c->lock);
    return n;
}

uint32_t em_cluster_total_cores(em_cluster *c)
{
    uint32_t k;
    pthread_mutex_lock(&c->lock);
    em__cl_alive_count(c, &k);
    pthread_mutex_unlock(&c->lock);
    return k;
}

void em__cl_timed_wait(em_cluster *c, uint32_t ms)   /* lock held */
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

/* Executors lost while the driver waits for the others (an executor that registered and
 * died before all had come) are replaced as in a job (em__cl_process_losses: same spawn limit in
 * SPAWN mode, the master's failure limit in ACCEPT mode); those that died before
 * registering are replaced by em__cl_reap (SPAWN; the standalone master replaces exited ones). */
int em_cluster_wait_executors(em_cluster *c, uint32_t n, uint32_t timeout_ms, em_err *err)
{
    uint64_t t0 = em__cl_now_ms();
    char why[256] = "";
    for (;;) {
        pthread_mutex_lock(&c->lock);
        em__cl_process_losses(c);
        uint32_t have = em__cl_alive_count(c, NULL);
        if (have < n)
            em__cl_timed_wait(c, 100);
        pthread_mutex_unlock(&c->lock);
        if (have >= n)
            return 0;
        if (c->o.mode == EM_CLUSTER_SPAWN && em__cl_reap(c, why, sizeof why))
            return em_err_set(err, EM_EIO, "local-cluster: %s (%u of %u executors registered; "
                              "its stderr says why)", why, have, n);
        if (em__cl_now_ms() - t0 > timeout_ms)
            return em_err_set(err, EM_ETIMEDOUT, "driver %s: %u of %u executors registered "
                              "within %u ms", c->addr, have, n, timeout_ms);
    }
}

/* Sends m to every registered, live executor; `what` names it in the log when a send
 * fails. Returns how many it was sent to. */
/* The connections of the registered, live executors (*n of them; em_free the array). They
 * are collected under the lock and written to without it (sending may block on
 * backpressure while the loop thread needs the lock). */
static em_conn_id *live_conns(em_cluster *c, size_t *n)
{
    pthread_mutex_lock(&c->lock);
    em_conn_id *to = em_xcalloc(c->nex ? c->nex : 1, sizeof *to);
    *n = 0;
    for (size_t i = 0; i < c->nex; i++)
        if (c->ex[i].registered && c->ex[i].alive)
            to[(*n)++] = c->ex[i].conn;
    pthread_mutex_unlock(&c->lock);
    return to;
}

static uint32_t send_all(em_cluster *c, const em__msg *m, const char *what)
{
    size_t n;
    em_conn_id *to = live_conns(c, &n);
    uint32_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        em_err err = EM_ERR_INIT;
        if (em__cl_send_msg(c, to[i], m, &err) < 0)
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
                em__bcast_sealed_unref(c->bcache[i].sealed);
                memmove(&c->bcache[i], &c->bcache[i + 1],
                        (size_t)(BCAST_CACHE - 1 - i) * sizeof c->bcache[0]);
                c->bcache[BCAST_CACHE - 1] = (bcast_ent){0};
                break;
            }
        pthread_mutex_unlock(&c->lock);
    }
    char what[64];
    em__msg m = {.type = EM__MSG_DROP, .block = {btype, a, 0, 0}};
    snprintf(what, sizeof what, "dropping block type %u id %u", btype, a);
    return send_all(c, &m, what);
}

uint32_t em_cluster_push_broadcast(em_cluster *c, uint32_t id, em_slice value)
{
    if (value.n > EM__BPUSH_MAX) {   /* fetched in pieces: sealed ahead on sealed links */
        if (em_net_sealed(c->net))
            em__cl_preseal(c, id);
        return 0;
    }
    /* The frame body is one PIECE of the whole value (protocol.h): a sealed link's tag
     * proves the bytes, a plain one carries their crc32c. */
    uint8_t hdr[EM__DATA_HDR + EM__PIECE_HDR];
    em__data_hdr(hdr, EM__DATA_BPUSH, 0, id);
    uint32_t crc = em_net_sealed(c->net) ? 0 : em_crc32c(0, value.p, value.n);
    em__piece_hdr(hdr + EM__DATA_HDR, value.n, EM__PIECE_SIZE, 0, crc);
    em_slice parts[2] = {{hdr, sizeof hdr}, value};
    size_t n;
    em_conn_id *to = live_conns(c, &n);
    uint32_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        em_err err = EM_ERR_INIT;
        if (em_net_sendv(c->net, to[i], EM_FRAME_DATA, parts, 2, &err) < 0)
            em_log(EM_LOG_DEBUG, "driver: pushing broadcast %u: %s", id, err.msg);
        else
            sent++;
    }
    em_free(to);
    return sent;
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
    c->prefetch = !o->no_prefetch;
    pthread_mutex_init(&c->lock, NULL);
    em_hmap_init(&c->locs, sizeof(loc_ent), offsetof(loc_ent, used), 64);
    pthread_cond_init(&c->cond, NULL);
    pthread_mutex_init(&c->proc_lock, NULL);
    c->listen_host = em_xstrdup(o->listen_host ? o->listen_host : "127.0.0.1");
    c->memory = o->memory ? em_xstrdup(o->memory) : NULL;
    c->exec_port = o->exec_port ? em_xstrdup(o->exec_port) : NULL;
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
    if (o->mode == EM_CLUSTER_SPAWN && !(c->bin = em_deploy_ember_bin(o->ember_bin))) {
        em_err_set(err, EM_ENOTFOUND, "local-cluster: cannot find the ember command to start "
                                      "executors (set EMBER_BIN)");
        goto fail;
    }
    em_net_opts no = {.secret = c->secret, .secret_len = strlen(c->secret), .ops = &d_net_ops,
                      .ud = c, .heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : 500,
                      .peer_timeout_ms = o->peer_timeout_ms, .crypto = o->crypto};
    if (!(c->net = em_net_new(&no, err)))
        goto fail;
    uint16_t port;
    if (em_net_listen_range(c->net, c->listen_host, o->listen_port,
                            o->listen_port_hi > o->listen_port ? o->listen_port_hi
                                                               : o->listen_port,
                            &port, err) < 0)
        goto fail;
    char adv[EM_NET_HOST_MAX];
    em_net_advertised(c->listen_host, o->advertise_host, adv, sizeof adv);
    em_net_addr_format(c->addr, sizeof c->addr, adv, port);
    /* under proc_lock: the loop thread runs already, and describe_lost reads c->sp */
    pthread_mutex_lock(&c->proc_lock);
    int rc = 0;
    for (uint32_t i = 0; o->mode == EM_CLUSTER_SPAWN && i < o->nexec && rc == 0; i++)
        rc = em__cl_spawn_one(c, err);
    pthread_mutex_unlock(&c->proc_lock);
    if (rc < 0)
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
    uint64_t t0 = em__cl_now_ms();
    for (size_t i = 0; i < c->nsp; i++) {
        spawned *s = &c->sp[i];
        while (!s->reaped) {
            if (waitpid(s->pid, NULL, WNOHANG) == s->pid || errno == ECHILD) {
                s->reaped = true;
            } else if (em__cl_now_ms() - t0 > 10000) {
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
    em__cl_sealer_free(c->sealer);
    for (int i = 0; i < BCAST_CACHE; i++) {
        em_batch_unref(c->bcache[i].batch);
        em_free(c->bcache[i].crcs);
        em__bcast_sealed_unref(c->bcache[i].sealed);
    }
    em_free(c->ex);
    em_free(c->sp);
    em_free(c->fails);
    em_hmap_destroy(&c->locs);
    if (c->secret)
        em_secure_zero(c->secret, strlen(c->secret));
    em_free(c->secret);
    free(c->library);
    em_free(c->listen_host);
    em_free(c->exec_port);
    em_free(c->memory);
    em_free(c->work_dir);
    em_free(c->bin);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->proc_lock);
    em_free(c);
}
