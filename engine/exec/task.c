/* engine/exec/task.c - running one task: decode the stage (cached per thread), build the
 * partition's pipeline, run the sink, fill the em_task_result.
 *
 * STAGE CACHE: the tasks of a stage share one JSON string, so each task thread keeps the
 * last decoded stage keyed by (string pointer, length, hash of the bytes); a hit skips JSON
 * parsing and function resolution. The hash guards against a new string reusing a freed
 * one's address. Slots are linked in a global list (g_slots, under g_slots_lock) so they
 * stay reachable, and freed by the thread-exit destructor. A decoded stage is read-only
 * while tasks run. */
#include <pthread.h>
#include <string.h>

#include "engine/exec/exec_int.h"

typedef struct stage_slot {
    const char *ptr;
    size_t len;
    uint64_t hash;
    bool valid;
    em_stage st;
    struct stage_slot *prev, *next;
} stage_slot;

/* Written by task threads when a slot is created or destroyed, under g_slots_lock. */
static pthread_mutex_t g_slots_lock = PTHREAD_MUTEX_INITIALIZER;
static stage_slot *g_slots;
static pthread_key_t g_slot_key;
static pthread_once_t g_slot_once = PTHREAD_ONCE_INIT;

static void slot_destroy(void *p)
{
    stage_slot *s = p;
    pthread_mutex_lock(&g_slots_lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        g_slots = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&g_slots_lock);
    if (s->valid)
        em__stage_destroy(&s->st);
    em_free(s);
}

static void slot_key_init(void)
{
    EM_ASSERT(pthread_key_create(&g_slot_key, slot_destroy) == 0);
}

static stage_slot *thread_slot(void)
{
    pthread_once(&g_slot_once, slot_key_init);
    stage_slot *s = pthread_getspecific(g_slot_key);
    if (s)
        return s;
    s = em_calloc(1, sizeof *s);
    if (!s || pthread_setspecific(g_slot_key, s) != 0) {
        em_free(s);
        return NULL;
    }
    pthread_mutex_lock(&g_slots_lock);
    s->next = g_slots;
    if (g_slots)
        g_slots->prev = s;
    g_slots = s;
    pthread_mutex_unlock(&g_slots_lock);
    return s;
}

/* The decoded stage for json: the thread's cached one, or *local (then the caller destroys
 * it) when there is no slot. Context blobs that travel beside the JSON are fetched once,
 * when the stage is decoded (exec.h, "blob_ref"). */
static int get_stage(em_task *t, const char *json, size_t len, em_stage *local,
                     em_stage **out, em_err *err)
{
    stage_slot *s = thread_slot();
    uint64_t h = em_hash64(json, len, 0);
    int rc;
    if (s && s->valid && s->ptr == json && s->len == len && s->hash == h) {
        *out = &s->st;
        return 0;
    }
    if (!s) {
        if ((rc = em__stage_decode(json, len, local, err)) < 0 ||
            (rc = em__stage_resolve(t, local, err)) < 0)
            return rc;
        *out = local;
        return 0;
    }
    if (s->valid)
        em__stage_destroy(&s->st);
    s->valid = false;
    if ((rc = em__stage_decode(json, len, &s->st, err)) < 0)
        return rc;
    if ((rc = em__stage_resolve(t, &s->st, err)) < 0) {
        em__stage_destroy(&s->st);
        return rc;
    }
    s->valid = true;
    s->ptr = json;
    s->len = len;
    s->hash = h;
    *out = &s->st;
    return 0;
}

static int run(em_task *t, const em_stage *st, em_task_result *out, em_err *err)
{
    const em_plan_node *node = st->map_side ? st->root->parents[0] : st->root;
    em_iter *in = NULL;
    int rc;
    if (t->partition >= node->nparts)
        return em_err_set(err, EM_EINVAL, "partition %u of %s (rdd %u) with %u partitions",
                          t->partition, em_op_name(node->op), node->id, node->nparts);
    if ((rc = em__exec_build(t, node, t->partition, &in, err)) < 0)
        return rc;
    if (st->map_side)
        rc = em__run_map_sink(t, st->root, in, out, err);
    else
        rc = em__run_result_sink(t, &st->res, st->root->width, in, out, err);
    em__iter_free(in);
    return rc;
}

int em_exec_run_task(const em_exec_env *env, const char *stage_json, size_t len,
                     uint32_t partition, uint32_t attempt, em_task_result *out, em_err *err)
{
    em_err lerr = EM_ERR_INIT;
    em_stage local = {0}, *st = NULL;
    uint64_t t0 = em_now_ns();
    if (!err)
        err = &lerr;
    memset(out, 0, sizeof *out);
    /* Unified memory: the task's budget is what the manager grants now (Spark's
     * acquireExecutionMemory), never below EM_TASK_MEM_MIN (or the ask, if smaller) so a
     * starved task still makes progress (the minimum is not accounted: tasks * 1 MiB is the
     * overshoot bound). */
    em_exec_env menv;
    size_t granted = 0;
    if (env->mem) {
        menv = *env;
        granted = em_memory_acquire_execution(env->mem, env->task_mem_budget);
        size_t floor = env->task_mem_budget < EM_TASK_MEM_MIN ? env->task_mem_budget
                                                              : EM_TASK_MEM_MIN;
        menv.task_mem_budget = granted > floor ? granted : floor;   /* never above the ask */
        env = &menv;
    }
    em_task t = {.env = env, .partition = partition, .attempt = attempt,
                 .metrics = &out->metrics};
    const atomic_bool *outer_cancel = em__tl_cancel;
    em__tl_cancel = env->cancel;
    int rc = get_stage(&t, stage_json, len, &local, &st, err);
    if (rc == 0)
        rc = em__task_canceled() ? em__cancel_err(err) : run(&t, st, out, err);
    if (rc == 0 && em__task_canceled())   /* an output made after the flag: dropped too */
        rc = em__cancel_err(err);
    em__tl_cancel = outer_cancel;
    em__stage_destroy(&local);
    for (size_t i = 0; i < t.nbcast; i++) {
        for (size_t j = 0; j < t.bcast[i].nbatches; j++)
            em_batch_unref(t.bcast[i].batches[j]);
        em_free(t.bcast[i].batches);
    }
    em_free(t.bcast);
    if (rc < 0) {
        /* Accumulator updates count only for successful tasks; partial output is dropped. */
        em_free(t.acc);
        em_map_status_destroy(&out->map_status);
        for (size_t i = 0; i < out->nbatches; i++)
            em_batch_unref(out->batches[i]);
        em_free(out->batches);
        out->batches = NULL;
        out->nbatches = 0;
        out->is_map = false;
        out->code = rc;
        em_err_copy(&out->err, err);
        if (t.fetch_failed && rc == EM_EFETCH) {
            out->fetch_failed = true;
            out->failed_shuffle = t.failed_shuffle;
            out->failed_map = t.failed_map;
        }
    } else {
        out->acc = t.acc;
        out->nacc = t.nacc;
    }
    if (env->mem)
        em_memory_release_execution(env->mem, granted);
    out->metrics.run_ns = em_now_ns() - t0;
    return rc;
}
