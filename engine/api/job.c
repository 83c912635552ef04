/* engine/api/job.c - running a job for the API: the calling thread's job group, the job
 * through the scheduler, and the records of its results on the driver. Every action,
 * checkpoint, save and the sampling steps of transformations (zip_with_index's counts,
 * sort_by_key's bounds) run their jobs through em__run_job.
 *
 * JOB GROUPS: sc->groups maps a driver thread (a serial number drawn once per thread) to
 * its group; em__run_job runs the thread's jobs in it; cancelling goes to the scheduler.
 * SAFETY: em__run_job holds a reference on the dataset's node while the job runs
 * (release.c), so a handle released by another thread meanwhile frees nothing the job
 * reads.
 * THREADS: any thread; concurrent jobs on one context run concurrently (the scheduler);
 * sc->groups is guarded by sc->lock. */
#include <string.h>

#include "engine/api/api_int.h"

/* This thread's serial number (drawn on first use; never 0, never reused). */
static uint64_t thread_serial(void)
{
    static _Atomic uint64_t next = 1;   /* written only by this fetch-add */
    static _Thread_local uint64_t mine;
    if (!mine)
        mine = next++;
    return mine;
}

void em_set_job_group(em_context *sc, const char *group)
{
    uint64_t me = thread_serial();
    pthread_mutex_lock(&sc->lock);
    size_t i = 0;
    while (i < sc->ngroups && sc->groups[i].thread != me)
        i++;
    if (i < sc->ngroups) {
        em_free(sc->groups[i].name);
        sc->groups[i] = sc->groups[--sc->ngroups];
    }
    if (group) {
        sc->groups = em_xrealloc(sc->groups, (sc->ngroups + 1) * sizeof *sc->groups);
        sc->groups[sc->ngroups++] = (em__group){me, em_xstrdup(group)};
    }
    pthread_mutex_unlock(&sc->lock);
}

/* The calling thread's job group as a new string, or NULL. */
static char *job_group_dup(em_context *sc)
{
    uint64_t me = thread_serial();
    char *g = NULL;
    pthread_mutex_lock(&sc->lock);
    for (size_t i = 0; i < sc->ngroups && !g; i++)
        if (sc->groups[i].thread == me)
            g = em_xstrdup(sc->groups[i].name);
    pthread_mutex_unlock(&sc->lock);
    return g;
}

void em_cancel_job_group(em_context *sc, const char *group)
{
    if (group)
        em_sched_cancel(sc->sched, group);
}

void em_cancel_all_jobs(em_context *sc)
{
    em_sched_cancel(sc->sched, NULL);
}

/* ---------------------------------------------------------------- jobs */

int em__run_job(em_rdd *r, const em_result_spec *res, const uint32_t *parts, uint32_t nparts,
                em_task_result *results, em_err *err)
{
    em_plan_node *node = em__rdd_hold(r);   /* r may be released by another thread */
    if (node->err.code != 0) {
        int code = em_err_copy(err, &node->err);
        em__node_unhold(r->sc, node);
        return code;
    }
    void **payloads = em_xcalloc(nparts ? nparts : 1, sizeof *payloads);
    char *group = job_group_dup(r->sc);
    int rc = em_sched_run_job_in_group(r->sc->sched, group, node, res, parts, nparts, payloads,
                                       err);
    em__node_unhold(r->sc, node);
    em_free(group);
    /* The local backend's payloads are em_task_result structs: move them out. */
    for (uint32_t i = 0; i < nparts; i++) {
        if (!payloads[i])
            continue;
        em_task_result *tr = payloads[i];
        results[i] = *tr;
        memset(tr, 0, sizeof *tr);
        em_sched_free_payload(r->sc->sched, tr);
    }
    em_free(payloads);
    return rc;
}

int em_rdd_run_map_stages(em_rdd *r, em_err *err)
{
    em_plan_node *node = em__rdd_hold(r);   /* r may be released by another thread */
    char *group = job_group_dup(r->sc);
    int rc = em_sched_run_map_stages(r->sc->sched, group, node, err);
    em__node_unhold(r->sc, node);
    em_free(group);
    return rc;
}

em_task_result *em__run_all(em_rdd *r, const em_result_spec *res, int *rc, em_err *err)
{
    uint32_t np = r->node->nparts;
    em_task_result *out = em_xcalloc(np ? np : 1, sizeof *out);
    *rc = em__run_job(r, res, NULL, np, out, err);
    return out;
}

void em__results_free(em_task_result *res, uint32_t n)
{
    for (uint32_t i = 0; res && i < n; i++)
        em_task_result_destroy(&res[i]);
    em_free(res);
}

/* ---------------------------------------------------------------- result records */

void em_records_destroy(em_records *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nbatches; i++)
        em_batch_unref(r->batches[i]);
    em_free(r->batches);
    em_free(r->recs);
    memset(r, 0, sizeof *r);
}

int em__records_add(em_records *out, em_batch **b, size_t n, size_t limit, em_err *err)
{
    for (size_t i = 0; i < n && out->n < limit; i++) {
        uint64_t nr = em_batch_nrecs(b[i]);
        size_t want = nr < limit - out->n ? (size_t)nr : limit - out->n;
        em_rec *recs = em_realloc(out->recs, (out->n + want + 1) * sizeof *recs);
        em_batch **bs = em_realloc(out->batches, (out->nbatches + 1) * sizeof *bs);
        if (recs)
            out->recs = recs;
        if (bs)
            out->batches = bs;
        if (!recs || !bs)
            return em_err_set(err, EM_ENOMEM, "collecting %zu records", out->n + want);
        out->batches[out->nbatches++] = em_batch_ref(b[i]);
        em_batch_iter it;
        em_batch_iter_init(&it, b[i]);
        for (size_t k = 0; k < want && em_batch_iter_next(&it, &out->recs[out->n]); k++)
            out->n++;
    }
    return 0;
}

int em__records_add_batches(em_records *out, em_batch **b, size_t n, em_err *err)
{
    return em__records_add(out, b, n, SIZE_MAX, err);
}
