/* engine/cluster/placement.c - where a task runs: the executor with a free core that holds
 * its cached block, away from the executor where its previous attempt failed, within the
 * FIFO budget of its task set.
 *
 * DESIGN
 *   Retries: the executor where a task's last attempt failed is remembered (c->fails, by
 *   stage, partition and kind); its next attempt goes to another executor with a free
 *   core, and waits for one while another is alive (a bad host does not eat every
 *   attempt). Only when that executor is the last one alive does the retry run there.
 *   Cache locality (Spark's delay scheduling, simply): c->locs maps (rdd, partition) of a
 *   cached block to the executor slot that last ran a successful task preferring it (the
 *   exec path caches a partition where it computes it). A task whose block's executor has
 *   a free core runs there first; while that executor is busy the task waits, as long as a
 *   task was launched where its block is within the locality wait (c->last_local_ms, reset
 *   at each batch start), then runs on any executor. A lost executor's entries are dropped.
 * WHY HERE AND NOT IN engine/sched: the decision needs the executor table (free cores,
 *   liveness, which executor ran what) that only the driver's backend keeps, and it runs on
 *   every launch pass under c->lock; the scheduler names each task's preferred block
 *   (em_sched_task_pref -> em_task_desc.pref_rdd/pref_part) and the backend places it.
 *   Moving the decision up means the backend offering slots to the scheduler on every
 *   pass (Spark's resourceOffers); that is a larger change than issue 10 had time for, so
 *   placement is kept in this one file.
 * THREADS: every function runs with c->lock held. */
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

/* ---------------------------------------------------------------- cache locations */

static uint64_t loc_key(uint32_t rdd, uint32_t part)
{
    return (uint64_t)rdd << 32 | part;
}

static uint32_t loc_hash(uint64_t key)
{
    return em_hmap_h32(em_mix64(key));
}

static bool loc_eq(const void *slot, const void *key)
{
    return ((const loc_ent *)slot)->key == *(const uint64_t *)key;
}

static int loc_get(const em_cluster *c, uint64_t key)   /* lock held; -1 = unknown */
{
    if (c->locs.cap == 0)
        return -1;
    const loc_ent *e = em_hmap_find(&c->locs, loc_hash(key), loc_eq, &key, NULL);
    return e ? e->slot : -1;
}

/* Drops the entries of executor slot `slot` (-1: none) and of rdd `rdd` (0: none). Removing
 * shifts later slots of a chain back into position i, so i is looked at again; a slot the
 * wrap-around moves from the front to the end was seen already and is kept. Lock held. */
void em__cl_loc_drop(em_cluster *c, int slot, uint32_t rdd)
{
    for (size_t i = 0; i < c->locs.cap && c->locs.n > 0;) {
        loc_ent *e = em_hmap_at(&c->locs, i);
        if (e->used && (e->slot == slot || (rdd && (uint32_t)(e->key >> 32) == rdd)))
            em_hmap_remove(&c->locs, e);
        else
            i++;
    }
}

static void loc_put(em_cluster *c, uint64_t key, int32_t slot)   /* lock held */
{
    if (c->locs.n >= MAX_LOCS) {
        em_log(EM_LOG_INFO, "driver: %zu cached block locations known; forgetting them",
               c->locs.n);
        em_hmap_destroy(&c->locs);   /* its memory too: start small again */
        em_hmap_init(&c->locs, sizeof(loc_ent), offsetof(loc_ent, used), 64);
    }
    if (em_hmap_needs_grow(&c->locs) && em_hmap_grow(&c->locs) < 0)
        return;   /* out of memory: a hint not kept */
    uint32_t h = loc_hash(key);
    void *hole = NULL;
    loc_ent *e = em_hmap_find(&c->locs, h, loc_eq, &key, &hole);
    if (e) {
        e->slot = slot;
        return;
    }
    *(loc_ent *)hole = (loc_ent){.h32 = h, .used = 1, .slot = slot, .key = key};
    c->locs.n++;
}

void em_cluster_forget_rdd(em_cluster *c, uint32_t rdd)
{
    pthread_mutex_lock(&c->lock);
    if (rdd)
        em__cl_loc_drop(c, -1, rdd);
    pthread_mutex_unlock(&c->lock);
}

void em_cluster_locality_stats(em_cluster *c, uint64_t *local, uint64_t *missed,
                               uint64_t *known)
{
    pthread_mutex_lock(&c->lock);
    *local = c->nlocal;
    *missed = c->nmissed;
    *known = c->locs.n;
    pthread_mutex_unlock(&c->lock);
}

/* Remembers where this batch's successful tasks with a preference ran. Lock held. */
void em__cl_note_locations(em_cluster *c, const em_task_desc *t, size_t n,
                           const inflight *fl, const em_task_result *res)
{
    for (size_t i = 0; i < n; i++) {
        if (!t[i].pref_rdd || res[i].code != 0 || fl[i].slot < 0 ||
            (size_t)fl[i].slot >= c->nex || !c->ex[fl[i].slot].alive)
            continue;
        loc_put(c, loc_key(t[i].pref_rdd, t[i].pref_part), fl[i].slot);
    }
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
void em__cl_note_failures(em_cluster *c, const em_task_desc *t, size_t n,
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

/* How many of ts's tasks may start now: the free cores left after the queued tasks of the
 * sets ahead of it (FIFO between jobs). Lock held. */
static size_t launch_budget(em_cluster *c, const task_set *ts, bool *first)
{
    uint32_t cores;
    em__cl_alive_count(c, &cores);
    size_t busy = 0, ahead = 0;
    for (size_t i = 0; i < c->nex; i++)
        if (c->ex[i].registered && c->ex[i].alive)
            busy += c->ex[i].running;
    for (const task_set *o = c->sets; o && o != ts; o = o->next)
        for (size_t i = 0; !o->canceled && i < o->n; i++)
            ahead += o->fl[i].state == T_QUEUED;
    size_t free_cores = cores > busy ? cores - busy : 0;
    *first = ahead == 0;
    return free_cores > ahead ? free_cores - ahead : 0;
}

/* Whether a task may go to slot e now: to a free core (counted against the set's budget),
 * or, when prefetch is allowed, into the executor's own queue behind the task(s) its
 * cores run. Lock held. */
static bool slot_takes(const exec_slot *s, size_t used, size_t budget, bool prefetch,
                       bool *queued)
{
    *queued = false;
    if (s->running < s->cores)
        return used < budget;
    if (!prefetch || s->running >= s->cores * (1 + EM__CL_PREFETCH_PER_CORE))
        return false;
    *queued = true;
    return true;
}

/* Picks executors for queued tasks of ts (lock held); returns how many launches were made.
 * First every task whose cached block's executor has a free core runs there (or, for the
 * set at the head of the FIFO, queues there behind the running task: PREFETCH in
 * cluster_int.h); then the others, except those whose block's executor is busy while the
 * locality wait lasts. */
size_t em__cl_assign(em_cluster *c, task_set *ts, launch *out)
{
    bool first;
    size_t k = 0, used = 0, budget = launch_budget(c, ts, &first);
    const em_task_desc *t = ts->t;
    uint64_t now = em__cl_now_ms();
    bool prefetch = first && c->prefetch;
    for (size_t i = 0; i < ts->n && (used < budget || prefetch); i++) {
        if (ts->fl[i].state != T_QUEUED)
            continue;
        int e = preferred_slot(c, &t[i], failed_on(c, &t[i]));
        bool queued;
        if (e < 0 || !slot_takes(&c->ex[e], used, budget, prefetch, &queued))
            continue;
        out[k++] = em__cl_launch_on(c, ts, i, e, queued);
        used += !queued;
        c->last_local_ms = now;
        c->nlocal++;
    }
    bool wait = now - c->last_local_ms < c->wait_ms;
    for (size_t i = 0; i < ts->n && used < budget; i++) {
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
        out[k++] = em__cl_launch_on(c, ts, i, best, false);
        used++;
    }
    return k;
}
