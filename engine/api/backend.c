/* engine/api/backend.c - the local task backend of the scheduler: a pool of task threads
 * running tasks in this process with em_exec_run_task (master local[N]). It lives in api/
 * because the scheduler and the executor are on one level and may not include each other:
 * api wires them together through the scheduler's backend ops table.
 *
 * DESIGN: run_tasks pushes one work item per task onto a queue (mutex + condvar) and waits
 * until the batch's `left` counter drops to zero. Threads pop items, run the task without
 * holding the lock and signal the batch. Back on the driver thread, each em_task_result is
 * turned into an em_sched_result (the full result becomes the payload of result tasks) and
 * the accumulator updates of successful attempts are applied, once. Map outputs are written
 * under env.shuffle_dir, which is also their location (em_fetcher_local reads the directory
 * named by the location).
 * THREADS: run_tasks is called by the driver thread only; one batch is in flight at a time. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine/api/api_int.h"

typedef struct work {
    const em_sched_task *task;
    em_task_result *result;      /* heap, one per task */
} work;

typedef struct local_backend {
    em_exec_env env;             /* strings below are owned copies */
    char *shuffle_dir, *spill_dir, *exec_id;
    em__acc_fn apply_acc;
    void *acc_ud;
    pthread_t *threads;
    uint32_t nthreads;
    pthread_mutex_t lock;
    pthread_cond_t wake;         /* queue not empty or stopping */
    pthread_cond_t done;         /* the batch's left reached 0 */
    work *queue;                 /* guarded by lock: items [head, tail) */
    size_t head, tail;
    size_t left;                 /* tasks of the batch not finished; guarded by lock */
    bool stop;                   /* guarded by lock */
} local_backend;

static void *thread_main(void *arg)
{
    local_backend *lb = arg;
    pthread_mutex_lock(&lb->lock);
    for (;;) {
        while (!lb->stop && lb->head == lb->tail)
            pthread_cond_wait(&lb->wake, &lb->lock);
        if (lb->stop)
            break;
        work w = lb->queue[lb->head++];
        pthread_mutex_unlock(&lb->lock);
        em_err err = EM_ERR_INIT;
        em_exec_run_task(&lb->env, w.task->stage_json, w.task->len, w.task->partition,
                         w.task->attempt, w.result, &err);
        if (w.result->code == 0 && err.code != 0) {
            /* Defensive: a runner that returned an error without filling the result. */
            w.result->code = err.code;
            em_err_copy(&w.result->err, &err);
        }
        pthread_mutex_lock(&lb->lock);
        if (--lb->left == 0)
            pthread_cond_signal(&lb->done);
    }
    pthread_mutex_unlock(&lb->lock);
    return NULL;
}

static void free_payload(void *self, void *payload)
{
    (void)self;
    if (!payload)
        return;
    em_task_result_destroy(payload);
    em_free(payload);
}

/* Moves what the scheduler needs from tr into out; tr becomes out's payload for successful
 * result tasks and is freed otherwise. */
static void convert(local_backend *lb, const em_sched_task *t, em_task_result *tr,
                    em_sched_result *out)
{
    out->code = tr->code;
    em_err_copy(&out->err, &tr->err);
    out->fetch_failed = tr->fetch_failed;
    out->failed_shuffle = tr->failed_shuffle;
    out->failed_map = tr->failed_map;
    out->spill_bytes = tr->metrics.spill_bytes;
    if (tr->code == 0 && lb->apply_acc && tr->nacc)
        lb->apply_acc(lb->acc_ud, tr->acc, tr->nacc);
    if (tr->code == 0 && t->is_map) {
        out->map_status = tr->map_status;
        memset(&tr->map_status, 0, sizeof tr->map_status);
        snprintf(out->map_status.loc, sizeof out->map_status.loc, "%s", lb->shuffle_dir);
    }
    if (tr->code == 0 && !t->is_map) {
        out->payload = tr;
        return;
    }
    free_payload(lb, tr);
}

static int run_tasks(void *self, const em_sched_task *tasks, size_t n, em_sched_result *results,
                     em_err *err)
{
    local_backend *lb = self;
    if (n == 0)
        return 0;
    work *q = em_malloc(n * sizeof *q);
    if (!q)
        return em_err_set(err, EM_ENOMEM, "local backend: queue of %zu tasks", n);
    for (size_t i = 0; i < n; i++) {
        q[i].task = &tasks[i];
        q[i].result = em_xcalloc(1, sizeof *q[i].result);
    }
    pthread_mutex_lock(&lb->lock);
    lb->queue = q;
    lb->head = 0;
    lb->tail = n;
    lb->left = n;
    pthread_cond_broadcast(&lb->wake);
    while (lb->left > 0)
        pthread_cond_wait(&lb->done, &lb->lock);
    lb->queue = NULL;
    lb->head = lb->tail = 0;
    pthread_mutex_unlock(&lb->lock);
    for (size_t i = 0; i < n; i++)
        convert(lb, &tasks[i], q[i].result, &results[i]);
    em_free(q);
    return 0;
}

static char *encode_stage(void *self, const em_plan_node *root, bool map_side, const void *res,
                          em_err *err)
{
    (void)self;
    return em_stage_encode(root, map_side, res, err);
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
    em_free(lb->shuffle_dir);
    em_free(lb->spill_dir);
    em_free(lb->exec_id);
    em_free(lb);
}

static const em_sched_backend_ops local_ops = {
    .name = "local",
    .encode_stage = encode_stage,
    .run_tasks = run_tasks,
    .free_payload = free_payload,
    .free = local_free,
};

int em__local_backend_new(const em_exec_env *env, uint32_t nthreads, em__acc_fn apply_acc,
                          void *acc_ud, em_sched_backend *out, em_err *err)
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
