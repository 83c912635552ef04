/* engine/exec/local.c - the local task backend (master local[N]): a pool of task threads
 * running tasks in this process with em_exec_run_task, behind the backend interface of
 * engine/task that the scheduler calls. engine/api picks it for a local context.
 *
 * DESIGN: each run_tasks call (one per running job's stage) is a task set on lb->sets,
 * ordered by priority (the job id: FIFO scheduling as Spark's default, older jobs first)
 * and then by arrival. Task threads take the next unstarted task of the first set that
 * has one, run it without holding the lock (straight into the caller's em_task_result)
 * and count the set down; run_tasks waits until its set's `left` is zero. A task whose
 * cancel flag is set is not started (its result is EM_ECANCELED); a running one sees the
 * flag through its env (em_exec_env.cancel) and stops at its next check. Back on the
 * caller's thread, each result is stamped with where it ran and where its map output lies,
 * and the accumulator updates of successful attempts are applied, once. Map outputs are
 * written under env.shuffle_dir, which is also their location (em_fetcher_local reads the
 * directory named by the location). Big stage blobs are borrowed, not copied (LOCAL_BLOBS).
 * THREADS: run_tasks may be called by several threads at once; lb->lock guards the sets.
 * ALLOCATOR: the tasks run in this process, so it gets the executor's malloc policy
 * (em_task_process_malloc_policy, engine/base/alloc.c; docs/cluster.md "Memory reuse"). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine/exec/exec.h"

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
        if (s->tasks[i].on_start)
            s->tasks[i].on_start(s->tasks[i].start_ud, &s->tasks[i], "driver");
        run_one(lb, &s->tasks[i], &s->results[i]);
        if (s->tasks[i].on_end)
            s->tasks[i].on_end(s->tasks[i].start_ud, &s->tasks[i], &s->results[i], "driver");
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

int em_exec_local_backend_new(const em_exec_env *env, uint32_t nthreads,
                              em_task_acc_fn apply_acc, void *acc_ud, em_task_backend *out,
                              em_err *err)
{
    if (nthreads == 0)
        return em_err_set(err, EM_EINVAL, "local backend: 0 task threads");
    em_task_process_malloc_policy();   /* in local[N] this process is the executor */
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
