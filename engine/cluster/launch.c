/* engine/cluster/launch.c - task sets on the executors: em_cluster_run_tasks queues a set,
 * launches what placement.c assigns (shipping a stage to an executor the first time),
 * cancels and kills, handles lost executors (process_losses) and waits until every task
 * of the set has its em_task_result (filled by the loop thread, driver.c).
 * THREADS: each em_cluster_run_tasks caller runs its own set; c->lock guards the sets and
 * the executor table; nothing is sent with it held. */
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

/* ---------------------------------------------------------------- running tasks */

/* Handles executors the loop thread found lost. Lock held on entry and exit. */
void em__cl_process_losses(em_cluster *c)
{
    uint64_t now = em__cl_now_ms();
    for (size_t i = 0; i < c->nex; i++) {
        exec_slot *s = &c->ex[i];
        if (s->cause_until && now >= s->cause_until)
            em__cl_lost_now(c, s, "no exit report from its worker within 2 s");
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
        em__cl_loc_drop(c, (int)i, 0);   /* its cached blocks are gone with it */
        pthread_mutex_unlock(&c->lock);
        if (c->o.on_exec_lost)
            c->o.on_exec_lost(c->o.lost_ud, loc);
        em_err err = EM_ERR_INIT;
        if (c->o.mode == EM_CLUSTER_SPAWN) {
            pthread_mutex_lock(&c->proc_lock);
            em__cl_kill_spawned(c, id);
            if (em__cl_spawn_one(c, &err) < 0)
                em_log(EM_LOG_WARN, "driver: no replacement for executor %s: %s", id, err.msg);
            pthread_mutex_unlock(&c->proc_lock);
        } else if (c->o.request_executor) {
            c->o.request_executor(c->o.request_ud);
        }
        pthread_mutex_lock(&c->lock);
    }
}

static bool has_stage(const exec_slot *s, uint32_t id)
{
    for (size_t i = 0; i < s->nstages; i++)
        if (s->stages[i] == id)
            return true;
    return false;
}

/* Marks queued task i of ts as running on slot e and fills the launch. Lock held. A stage
 * is marked as sent to the executor here; both sides keep the EM__STAGES_KEPT most recent
 * (docs/cluster.md), and a stage whose sending fails is unmarked by send_launches. */
launch em__cl_launch_on(em_cluster *c, task_set *ts, size_t i, int e, bool queued)
{
    exec_slot *s = &c->ex[e];
    const em_task_desc *t = ts->t;
    s->running++;
    ts->fl[i].state = T_RUNNING;
    ts->fl[i].slot = e;
    ts->fl[i].start_pending = queued;
    if (!queued && t[i].on_start)   /* the status page's task_start, with where it runs */
        t[i].on_start(t[i].start_ud, &t[i], s->exec_id);
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
            rc = em__cl_send_data(c, l[k].conn, EM__DATA_STAGE, x->stage_id, x->stage_json, x->len,
                           &err);
        em__msg m = {.type = EM__MSG_LAUNCH, .id = ts->base + l[k].task, .stage = x->stage_id,
                     .part = x->partition, .attempt = x->attempt, .is_map = x->is_map};
        if (rc == 0)
            rc = em__cl_send_msg(c, l[k].conn, &m, &err);
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
        if (em__cl_send_msg(c, l[k].conn, &m, &err) < 0)   /* gone: on_close fails the task */
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

/* Tasks queued on an executor behind running ones (PREFETCH) are told started (the status
 * page's task_start) once their executor runs fewer told tasks than it has cores, in
 * launch order as far as the index order tells it; one that ended first is told now. Lock
 * held. */
static void tell_starts(em_cluster *c, task_set *ts)
{
    uint32_t pend[64] = {0};   /* per slot, for the first 64 slots; others told at once */
    bool any = false;
    for (size_t i = 0; i < ts->n; i++)
        if (ts->fl[i].start_pending && ts->fl[i].state == T_RUNNING) {
            any = true;
            if (ts->fl[i].slot < 64)
                pend[ts->fl[i].slot]++;
        }
    for (size_t i = 0; i < ts->n; i++) {
        inflight *f = &ts->fl[i];
        if (!f->start_pending)
            continue;
        exec_slot *s = &c->ex[f->slot];
        bool ended = f->state != T_RUNNING;
        if (!ended && any && f->slot < 64 && s->running - pend[f->slot] >= s->cores)
            continue;
        f->start_pending = false;
        if (!ended && f->slot < 64)
            pend[f->slot]--;
        if (ts->t[i].on_start)
            ts->t[i].on_start(ts->t[i].start_ud, &ts->t[i], s->exec_id);
    }
}

/* One pass of the run loop of ts: 1 when every task is done, 0 to wait, <0 (err) when
 * no executor was alive for too long. Lock held (released around sends). */
static int run_pass(em_cluster *c, task_set *ts, launch *ls, uint64_t *idle_since,
                    em_err *err)
{
    em__cl_process_losses(c);
    const atomic_bool *cancel = ts->n ? ts->t[0].cancel : NULL;
    if (cancel && !ts->canceled && atomic_load(cancel)) {
        size_t k = cancel_set(c, ts, ls);
        pthread_mutex_unlock(&c->lock);
        send_kills(c, ts, ls, k);
        pthread_mutex_lock(&c->lock);
    }
    tell_starts(c, ts);
    size_t done = 0;
    for (size_t i = 0; i < ts->n; i++) {
        inflight *f = &ts->fl[i];
        done += f->state == T_DONE;
        if (f->state == T_DONE && !f->end_told && ts->t[i].on_end) {   /* the status page */
            f->end_told = true;
            ts->t[i].on_end(ts->t[i].start_ud, &ts->t[i], &ts->res[i], ts->res[i].exec_id);
        }
    }
    if (done == ts->n)
        return 1;
    size_t k = ts->canceled ? 0 : em__cl_assign(c, ts, ls);
    if (k) {
        pthread_mutex_unlock(&c->lock);
        send_launches(c, ts, ls, k);
        pthread_mutex_lock(&c->lock);
    }
    if (em__cl_alive_count(c, NULL) > 0) {
        *idle_since = em__cl_now_ms();
    } else if (em__cl_now_ms() - *idle_since > c->o.register_timeout_ms) {
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
    c->last_local_ms = em__cl_now_ms();
    uint64_t idle_since = em__cl_now_ms();
    while ((rc = run_pass(c, &ts, ls, &idle_since, err)) == 0) {
        em__cl_timed_wait(c, 200);
        if (c->o.mode == EM_CLUSTER_SPAWN) {
            pthread_mutex_unlock(&c->lock);
            em__cl_reap(c, NULL, 0);
            pthread_mutex_lock(&c->lock);
        }
    }
    rc = rc < 0 ? rc : 0;
    set_remove(c, &ts);
    em__cl_note_failures(c, tasks, n, results);
    em__cl_note_locations(c, tasks, n, ts.fl, results);
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
