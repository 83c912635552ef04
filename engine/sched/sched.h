/* engine/sched/sched.h - the driver's DAG scheduler, task retries, the map-output tracker
 * and the interface of the task backends that run tasks (threads now, processes later).
 *
 * MODEL (docs/scheduling.md). A job is (final plan node, result spec, partitions). The DAG
 * scheduler walks back from the final node through narrow parents; every EM_OP_SHUFFLED
 * node met is a shuffle dependency whose map stage runs the SHUFFLED node's parent
 * pipeline. Stages run parents first; a map stage whose every map output is registered in
 * the tracker is skipped (stage reuse). A failed task is retried up to max_failures
 * attempts; a fetch failure unregisters the lost map output, re-runs the missing map tasks
 * and then the failed reduce tasks (at most EM_SCHED_MAX_STAGE_ATTEMPTS rounds per job).
 *
 * BACKENDS. The scheduler hands task sets (em_task_desc) to an em_task_backend
 * (engine/task/task.h) and never runs a task itself: engine/exec sits on the same level and
 * is not included here. The local backend (engine/exec/local.c: task threads calling
 * em_exec_run_task) and the cluster backend (engine/cluster: executor processes) implement
 * it; engine/api picks one for a context. A backend fills each attempt's em_task_result
 * and, for map tasks, the location the tracker serves to reducers (map_status.loc). Result
 * specs are opaque to the scheduler; a result task's em_task_result becomes the payload.
 *
 * CONCURRENT JOBS AND CANCELLATION (docs/scheduling.md). Any number of driver threads may
 * run jobs on one scheduler at once. Each job gets an id (its FIFO priority: tasks of an
 * older job go first) and an optional group. A map stage two jobs need at once runs once:
 * the second job waits for the first one's run of it and then re-checks what is missing.
 * em_sched_cancel marks the group's jobs cancelled and sets the cancel flag their tasks
 * carry (em_task_desc.cancel); a map stage being run for a cancelled job keeps running
 * while a job that is not cancelled waits for it. A cancelled job returns EM_ECANCELED
 * once its running tasks have ended, and removes the shuffles it wrote that no other
 * running job uses (tracker entries and, through the backend, files).
 * THREADS: em_sched_run_job* may be called by several threads at once; em_sched_cancel,
 * em_sched_stats_get from any thread. The tracker is thread-safe (its own mutex). A
 * backend's run_tasks is called concurrently by the jobs' threads; it may run tasks on
 * any threads.
 * OWNERSHIP: the scheduler takes the backend; the tracker is borrowed (the caller frees it
 * after the scheduler). */
#ifndef EMBER_SCHED_H
#define EMBER_SCHED_H

#include <stdatomic.h>

#include "engine/base/base.h"
#include "engine/plan/plan.h"
#include "shuffle/shuffle.h"   /* map outputs (em_map_status, em_shuffle_src) */
#include "storage/storage.h"   /* storage levels of cached partitions (em_sched_task_pref) */
#include "engine/task/task.h"

#define EM_SCHED_MAX_STAGE_ATTEMPTS 4   /* fetch-failure recovery rounds per job */

/* ---------------------------------------------------------------- map-output tracker */

typedef struct em_map_tracker em_map_tracker;

em_map_tracker *em_map_tracker_new(void);          /* aborts on OOM (control structure) */
void em_map_tracker_free(em_map_tracker *t);       /* NULL ok */
/* Declares shuffle sid with nmaps map outputs (idempotent when nmaps is unchanged). */
void em_map_tracker_add_shuffle(em_map_tracker *t, uint32_t sid, uint32_t nmaps);
/* Registers map output (sid, mid): loc (copied; interned for the tracker's lifetime, so
 * strings handed to tasks never dangle) and nparts segment sizes (copied). */
int em_map_tracker_register(em_map_tracker *t, uint32_t sid, uint32_t mid, const char *loc,
                            const uint64_t *sizes, uint32_t nparts, em_err *err);
void em_map_tracker_unregister(em_map_tracker *t, uint32_t sid, uint32_t mid);  /* absent ok */
/* Map ids of shuffle sid without a registered output, ascending, into out (nmaps entries,
 * may be NULL to count only). Returns how many. An unknown shuffle has none missing: 0. */
uint32_t em_map_tracker_missing(em_map_tracker *t, uint32_t sid, uint32_t *out);
bool em_map_tracker_has_shuffle(em_map_tracker *t, uint32_t sid);
/* Forgets shuffle sid (its files are the caller's to remove). */
void em_map_tracker_remove_shuffle(em_map_tracker *t, uint32_t sid);
/* The executor env's map_outputs callback (engine/exec) with ud = the tracker: one
 * source per map of shuffle sid for reduce partition `reduce`. EM_EFETCH naming the map when one is not registered
 * (*srcs NULL). Any thread. */
int em_map_tracker_outputs(void *ud, uint32_t sid, uint32_t reduce, em_shuffle_src **srcs,
                           uint32_t *n, em_err *err);

/* Cluster mode: unregisters every map output located at loc (a lost executor). Writes the
 * ids of the shuffles that lost an output into sids (up to max; may be NULL) and returns
 * how many shuffles lost one. Driver thread. */
uint32_t em_map_tracker_unregister_loc(em_map_tracker *t, const char *loc, uint32_t *sids,
                                       uint32_t max);
/* Unregisters every map output of shuffle sid (a lost output of a shuffle whose map output
 * order is not repeatable: all of it is recomputed). Driver thread. */
void em_map_tracker_unregister_all(em_map_tracker *t, uint32_t sid);
/* As em_map_tracker_outputs, but a missing map output is a source at location
 * EM_MAP_LOC_LOST with size 1, so that reading it is a fetch failure naming the map (the
 * scheduler then recomputes it) rather than a plain task failure. Any thread. */
#define EM_MAP_LOC_LOST "lost:0"
int em_map_tracker_outputs_lenient(void *ud, uint32_t sid, uint32_t reduce,
                                   em_shuffle_src **srcs, uint32_t *n, em_err *err);

/* ---------------------------------------------------------------- backends */

/* A task is an em_task_desc, its outcome an em_task_result, and the backend an
 * em_task_backend (engine/task/task.h). */

/* The preferred partition of task `part` of the stage rooted at root (map_side: root is a
 * SHUFFLED node whose map side runs): walking from the root through narrow one-to-one
 * parents (map, filter, map_partitions, sample, glom, zip_with_index, local_reduce, tag,
 * cogroup_split, checkpoint_write, unions: ZIP_PARTS tries each parent in order, a plain
 * union follows the parent holding the partition) to the first node with a storage level
 * (its id) or a local checkpoint (EM_NODE_LOCAL_CKPT write or source: its ckpt_rdd). Fills
 * *rdd and *rpart and returns true, or false (*rdd = 0) when the walk meets a source, a
 * shuffle, coalesce or cartesian first. */
bool em_sched_task_pref(const em_plan_node *root, bool map_side, uint32_t part, uint32_t *rdd,
                        uint32_t *rpart);

/* ---------------------------------------------------------------- scheduler */

typedef struct em_sched_stats {
    uint64_t jobs;
    uint64_t stages_run;         /* stages that ran at least one task */
    uint64_t stages_skipped;     /* map stages whose outputs all existed */
    uint64_t tasks_run;          /* task attempts, failed ones included */
    uint64_t map_tasks_run;      /* of which map tasks */
    uint64_t task_failures;      /* attempts that failed (fetch failures included) */
    uint64_t fetch_failures;
    uint64_t spill_bytes;        /* spill bytes reported by task metrics */
} em_sched_stats;

typedef struct em_sched_opts {
    em_task_backend backend;     /* taken (also on failure) */
    em_map_tracker *tracker;     /* borrowed; outlives the scheduler */
    uint32_t max_failures;       /* attempts per task; 0 = 4 */
} em_sched_opts;

typedef struct em_sched em_sched;

em_sched *em_sched_new(const em_sched_opts *opts, em_err *err);
void em_sched_free(em_sched *s);                   /* NULL ok; frees the backend */

/* Runs a job: computes partitions parts[0..nparts) of `final` (parts NULL = partitions
 * 0..nparts-1) with the result spec `res` (opaque: handed to the backend's encode_stage),
 * running the map stages it needs first. payloads[i] (nparts entries, caller-provided,
 * zeroed) receives the successful result of parts[i] (an em_task_result taken from the
 * backend's result); the caller owns them (free with em_sched_free_payload), also when the
 * job fails. Errors: the plan error of the node,
 * a task that failed max_failures times ("task <p> in stage <s> failed <n> times; last
 * error: ..." with the task's code), unrecoverable fetch failures (EM_EFETCH). */
int em_sched_run_job(em_sched *s, const em_plan_node *final, const void *res,
                     const uint32_t *parts, uint32_t nparts, void **payloads, em_err *err);
/* As em_sched_run_job, as a job of `group` (NULL = none; copied for the job's life). A
 * job cancelled by em_sched_cancel returns EM_ECANCELED ("job <id> (group <g>) canceled"),
 * its payloads freed. */
int em_sched_run_job_in_group(em_sched *s, const char *group, const em_plan_node *final,
                              const void *res, const uint32_t *parts, uint32_t nparts,
                              void **payloads, em_err *err);
/* Runs the map stages `final` depends on whose outputs are missing (Spark's
 * submitMapStage), as a job of `group`, and none of final's own tasks: a later job
 * reading those shuffles skips them. 0, or the errors of em_sched_run_job_in_group. */
int em_sched_run_map_stages(em_sched *s, const char *group, const em_plan_node *final,
                            em_err *err);
/* Cancels the running jobs of `group` (NULL: every running job): their tasks are told to
 * stop and the jobs return EM_ECANCELED. Returns how many jobs it cancelled (0 when the
 * group has none: a no-op). Jobs started later are not affected. Any thread. */
uint32_t em_sched_cancel(em_sched *s, const char *group);
/* em_task_result_free of a payload (NULL ok). */
void em_sched_free_payload(em_sched *s, void *payload);
void em_sched_stats_get(const em_sched *s, em_sched_stats *out);

/* ---------------------------------------------------------------- listener
 * A listener hears what the scheduler does: jobs, stages and task attempts. The driver's
 * status page, event log and console progress bar (engine/ui/ui.h, em_status_listen) are
 * three; they read em_sched_event as it is (the one event type: no layer above copies it).
 * Callbacks run on the job's thread inside em_sched_run_job, one at a time (the scheduler
 * serializes them when jobs run concurrently), in the order things happen within a job;
 * they must be quick and must not call back into the scheduler. The event is borrowed for
 * the call (strings included).
 * TASK TIMES: run_tasks is one blocking call per task set, so the scheduler sees a set
 * start and end, not each task's: TASK_START comes for every task when the set is handed
 * to the backend, TASK_END for every task when the set returns, with duration_s the task's
 * own run time as its executor measured it (em_task_result.metrics.run_ns), or the set's span (an
 * upper bound) when the backend did not report one (e.g. the executor was lost). */
typedef enum em_sched_event_kind {
    EM_SCHED_JOB_START = 1,
    EM_SCHED_JOB_END,
    EM_SCHED_STAGE_SUBMITTED,    /* a round of the stage starts with ntasks tasks to run */
    EM_SCHED_STAGE_COMPLETED,    /* that round ended: code 0, EM_EFETCH or the task error */
    EM_SCHED_TASK_START,
    EM_SCHED_TASK_END,
} em_sched_event_kind;

typedef struct em_sched_event {
    em_sched_event_kind kind;
    double time_s;               /* em_now_s() when it happened (monotonic) */
    uint32_t job_id;             /* 0, 1, ... per scheduler */
    uint32_t stage_id;           /* stage and task events */
    uint32_t stage_attempt;      /* stage and task events: 0 for the first round */
    bool is_map;                 /* stage and task events */
    uint32_t shuffle_id;         /* map stages: the shuffle they write */
    uint32_t ntasks;             /* JOB_START: result partitions; STAGE_*: tasks of the round */
    uint32_t nstages;            /* JOB_START: map stages + 1 */
    uint32_t partition, attempt; /* task events (partition = map id for map tasks) */
    double duration_s;           /* TASK_END (see TASK TIMES), JOB_END, STAGE_COMPLETED */
    int code;                    /* *_END, STAGE_COMPLETED: 0 or an EM_E* code */
    bool fetch_failed;           /* TASK_END */
    const char *error;           /* NULL when code == 0 */
    const char *executor;        /* task events; NULL when the backend did not say */
} em_sched_event;

typedef void (*em_sched_listener_fn)(void *ud, const em_sched_event *ev);
#define EM_SCHED_MAX_LISTENERS 8
/* Adds a listener (fn, ud borrowed for the scheduler's life). EM_EINVAL when there are
 * already EM_SCHED_MAX_LISTENERS. Driver thread, before or between jobs. */
int em_sched_add_listener(em_sched *s, em_sched_listener_fn fn, void *ud, em_err *err);

#endif /* EMBER_SCHED_H */
