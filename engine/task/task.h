/* engine/task/task.h - what every layer says about a task: the description the scheduler
 * hands a backend (em_task_desc), the result a task attempt produces (em_task_result, with
 * its metrics as one named struct and its accumulator updates), and the backend interface
 * (em_task_backend: ops + self) through which the scheduler runs tasks.
 *
 * WHY A LAYER OF ITS OWN. The scheduler (engine/sched), the task runner (engine/exec), the
 * executor process (engine/executor) and the driver's cluster backend (engine/cluster)
 * all speak of the same task and the same result. They sit on different levels, and the
 * two on one level may not include each other, so the types live one level below all of
 * them: one set, no mirrors, no converters. A result made by em_exec_run_task in a task
 * thread of local[N], or in an executor process and decoded by the driver from the wire
 * (engine/executor/proto.c encodes this struct), is the same em_task_result the scheduler
 * reads and the action takes as its payload.
 *
 * THE PATH OF A TASK (docs/architecture.md): engine/sched builds em_task_desc values and
 * calls backend.ops->run_tasks; the local backend (engine/exec/local.c) runs each with
 * em_exec_run_task on its threads; the cluster backend (engine/cluster) ships it to an
 * executor process (engine/executor), which runs em_exec_run_task and sends the result
 * back. Either way results[i] comes back filled, and the scheduler moves result tasks'
 * results to the job's payloads.
 *
 * THREADS: the types are plain data; em_task_result_* functions touch only their argument
 * (one thread per object). A backend's ops say which threads call them. */
#ifndef EMBER_TASK_H
#define EMBER_TASK_H

#include <stdatomic.h>

#include "engine/base/base.h"
#include "engine/data/data.h"
#include "engine/plan/plan.h"
#include "shuffle/shuffle.h"

/* ---------------------------------------------------------------- description */

/* One task attempt as the scheduler hands it to a backend. */
struct em_task_result;
typedef struct em_task_desc {
    const char *stage_json;      /* the stage (engine/exec/exec.h, STAGE JSON); borrowed
                                    until run_tasks returns */
    size_t len;
    uint32_t stage_id;           /* stages with equal ids have equal JSON */
    uint32_t partition;          /* map id for map stages */
    uint32_t attempt;            /* 0 for the first */
    bool is_map;
    /* Cache locality (em_sched_task_pref): the cached partition the task reads first,
     * (rdd id, partition); pref_rdd 0 = none. The cluster backend runs the task on the
     * executor that last ran a successful task with the same preference (it holds the
     * block) when it can (engine/cluster/placement.c). */
    uint32_t pref_rdd, pref_part;
    uint64_t prio;               /* FIFO priority: the id of the job the stage runs for
                                    (smaller = older = first) */
    const atomic_bool *cancel;   /* set when the task is to stop (EM_ECANCELED); never NULL
                                    from the scheduler; valid until run_tasks returns */
    /* Optional (NULL = none): the backend calls it once per attempt when the task really
     * starts (a thread or an executor core takes it, not when it is queued), with where it
     * runs ("driver" for the local backend, else the executor id; borrowed for the call).
     * Any thread, possibly with the backend's lock held: it must not call the backend. */
    void (*on_start)(void *ud, const struct em_task_desc *t, const char *exec_id);
    /* Optional, same rules: the attempt has ended and r (borrowed for the call) holds its
     * result; at most once per attempt. A backend that does not call it (or misses a path)
     * loses nothing: the scheduler reports the end when run_tasks returns. */
    void (*on_end)(void *ud, const struct em_task_desc *t, const struct em_task_result *r,
                   const char *exec_id);
    void *start_ud;
} em_task_desc;

/* ---------------------------------------------------------------- result */

/* An accumulator update a task made (em_acc_add*): applied on the driver once per
 * successful attempt. */
typedef struct em_acc_update {
    uint32_t id;
    bool is_f64;
    int64_t i64;
    double f64;
} em_acc_update;

/* What one attempt measured. The wire (docs/cluster.md, "status") carries these seven
 * numbers as the array "metrics" in this field order. */
typedef struct em_task_metrics {
    uint64_t records_read;       /* records read from sources and shuffles */
    uint64_t records_written;    /* records given to the sink */
    uint64_t shuffle_read_bytes;
    uint64_t shuffle_write_bytes;
    uint64_t spill_bytes;        /* map-side and reduce-side spills */
    uint64_t spill_count;
    uint64_t run_ns;             /* the attempt's own run time where it ran; 0 = unknown */
} em_task_metrics;

/* One finished attempt. Owns its map status sizes, batches and accumulator updates. */
typedef struct em_task_result {
    int code;                    /* 0, or the task's error code */
    em_err err;                  /* message when code != 0 */
    bool fetch_failed;           /* code == EM_EFETCH: parent map output (failed_shuffle,
                                    failed_map) is missing or corrupt */
    uint32_t failed_shuffle, failed_map;
    bool is_map;
    em_map_status map_status;    /* map tasks: sizes owned; loc is where reducers fetch
                                    from (a directory in local mode, an executor's shuffle
                                    server "host:port" in cluster mode) */
    em_batch **batches;          /* result tasks: output batches (owned references) */
    size_t nbatches;
    uint64_t count;              /* COUNT, SAVE_TEXT, SAMPLE_KEYS */
    em_acc_update *acc;          /* accumulator updates (owned) */
    uint32_t nacc;
    em_task_metrics metrics;
    char exec_id[64];            /* where it ran ("driver" for the local backend); "" =
                                    unknown */
} em_task_result;

/* Frees what r owns and zeroes it (a zeroed struct is fine). */
void em_task_result_destroy(em_task_result *r);
/* A heap copy of *r that takes what r owned (r is zeroed): the payload form of a result
 * task's result. Aborts on OOM (a control structure). */
em_task_result *em_task_result_take(em_task_result *r);
/* em_task_result_destroy, then frees r (NULL ok). */
void em_task_result_free(em_task_result *r);
/* Fills r as a failure: code (< 0) and the message of err; what r held is freed first. */
void em_task_result_fail(em_task_result *r, const em_err *err);

/* Applies accumulator updates on the driver (the context's accumulators). */
typedef void (*em_task_acc_fn)(void *ud, const em_acc_update *u, uint32_t n);

/* ---------------------------------------------------------------- backends */

typedef struct em_task_backend_ops {
    const char *name;            /* "local", "cluster", ... */
    /* Encodes the stage task JSON for root: its map side, or the result stage computing the
     * result spec `res` (an em_result_spec of engine/exec, opaque here). Caller frees with
     * em_free. NULL + err on failure. */
    char *(*encode_stage)(void *self, const em_plan_node *root, bool map_side,
                          const void *res, em_err *err);
    /* Runs n tasks (concurrently as it can) and returns when every one has finished,
     * having filled results[i] (passed zeroed) for tasks[i]; a failed task is a result
     * with code != 0, not an error of run_tasks. The backend applies the side effects of
     * successful attempts (accumulator updates) exactly once. Returns 0, or <0 when the
     * backend itself failed (results are then destroyed by the caller as they are).
     * Several threads may call it at once (one task set each); the backend shares its
     * cores between the sets, lower tasks[].prio first. A task whose *cancel is set is
     * not started, and a running one is told to stop (EM_ECANCELED); run_tasks still
     * returns only when none of its tasks runs any more. */
    int (*run_tasks)(void *self, const em_task_desc *tasks, size_t n, em_task_result *results,
                     em_err *err);
    void (*free)(void *self);    /* stops threads / processes */
    /* Optional: some task's cancel flag was set; wake the run_tasks calls so that they act
     * on it now (NULL: the backend notices by itself). Any thread. */
    void (*wake)(void *self);
    /* Optional: deletes the files of shuffle sid (a cancelled job's output, or a dead
     * dataset's; the tracker has forgotten it and no job reads it). Any thread. */
    void (*remove_shuffle)(void *self, uint32_t sid);
} em_task_backend_ops;

typedef struct em_task_backend {
    const em_task_backend_ops *ops;
    void *self;
} em_task_backend;

#endif /* EMBER_TASK_H */
