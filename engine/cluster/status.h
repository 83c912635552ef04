/* engine/cluster/status.h - what a user sees of a running application: the driver's status
 * page and JSON API (jobs, stages, executors, cached datasets), the event log (JSON lines,
 * one file per application) and the console progress bar, all fed by the scheduler's
 * events.
 *
 * LAYERING: engine/cluster may not include engine/sched (same level), so the scheduler's
 * em_sched_event is mirrored here as em_status_event (same fields, same kind numbers) and
 * engine/api forwards one to the other:
 *
 *     static void status_listener(void *ud, const em_sched_event *e)
 *     {
 *         em_status_event se = EM_STATUS_EVENT_FROM_SCHED(e);
 *         em_status_on_event(ud, &se);
 *     }
 *     ...
 *     em_sched_add_listener(sc->sched, status_listener, sc->status, err);
 *
 * CONFIGURATION arrives as the strings of the configuration keys (engine/cluster cannot see
 * em_conf either): ember.ui.port (default 4040; 0 = no server; a busy port tries the next
 * 16), ember.ui.host (default 127.0.0.1), ember.eventLog.enabled (default false),
 * ember.eventLog.dir (default /tmp/ember-events), ember.ui.showConsoleProgress (default
 * true; the bar is drawn only when stderr is a terminal).
 *
 * THREADS: em_status_on_event on the driver thread (the scheduler's listener thread);
 * em_status_executor_* and em_status_storage_* from any thread; the HTTP server reads the
 * model on its own thread under the status mutex. */
#ifndef EMBER_CLUSTER_STATUS_H
#define EMBER_CLUSTER_STATUS_H

#include "engine/base/base.h"

/* Same numbering as em_sched_event_kind (engine/sched/sched.h). */
typedef enum em_status_event_kind {
    EM_STATUS_JOB_START = 1,
    EM_STATUS_JOB_END,
    EM_STATUS_STAGE_SUBMITTED,
    EM_STATUS_STAGE_COMPLETED,
    EM_STATUS_TASK_START,
    EM_STATUS_TASK_END,
} em_status_event_kind;

/* Mirror of em_sched_event; see there for each field. Strings borrowed for the call. */
typedef struct em_status_event {
    int kind;
    double time_s;
    uint32_t job_id, stage_id, stage_attempt;
    bool is_map;
    uint32_t shuffle_id, ntasks, nstages, partition, attempt;
    double duration_s;
    int code;
    bool fetch_failed;
    const char *error;
    const char *executor;
} em_status_event;

#define EM_STATUS_EVENT_FROM_SCHED(e)                                                      \
    ((em_status_event){.kind = (int)(e)->kind, .time_s = (e)->time_s,                      \
                       .job_id = (e)->job_id, .stage_id = (e)->stage_id,                   \
                       .stage_attempt = (e)->stage_attempt, .is_map = (e)->is_map,         \
                       .shuffle_id = (e)->shuffle_id, .ntasks = (e)->ntasks,               \
                       .nstages = (e)->nstages, .partition = (e)->partition,               \
                       .attempt = (e)->attempt, .duration_s = (e)->duration_s,             \
                       .code = (e)->code, .fetch_failed = (e)->fetch_failed,               \
                       .error = (e)->error, .executor = (e)->executor})

typedef struct em_status_opts {
    const char *app_name;        /* shown on the page and in the log; NULL = "ember" */
    const char *app_id;          /* NULL = "app-<unix time>-<pid>" */
    const char *master;          /* ember.master, shown on the page */
    /* Values of the configuration keys named above (NULL = default). */
    const char *ui_port;
    const char *ui_host;
    const char *event_log_enabled;
    const char *event_log_dir;
    const char *show_progress;
    bool quiet;                  /* no progress bar whatever show_progress says */
} em_status_opts;

typedef struct em_status em_status;

/* Starts what the options ask for: the HTTP server (a port that cannot be bound is logged,
 * not fatal), the event log file (<dir>/<app_id>.jsonl, its "app_start" line written; an
 * unwritable dir is EM_EIO) and the progress bar. Bad values are EM_EINVAL naming the key.
 * Any thread. */
em_status *em_status_new(const em_status_opts *o, em_err *err);
/* Writes the "app_end" line, closes the log, erases the bar, stops the server. NULL ok. */
void em_status_free(em_status *st);

/* The scheduler listener (ud = the em_status). */
void em_status_on_event(void *ud, const em_status_event *ev);

/* The UI port actually bound, 0 when there is no server. */
uint16_t em_status_ui_port(const em_status *st);
const char *em_status_app_id(const em_status *st);
/* The event log's path, NULL when off. Valid until free. */
const char *em_status_event_log_path(const em_status *st);

/* Executors (cluster backends call these; local mode adds one "driver" executor). */
void em_status_executor_add(em_status *st, const char *id, const char *addr, uint32_t cores);
void em_status_executor_remove(em_status *st, const char *id, const char *reason);
/* A cached dataset: rdd id, name, partitions cached of nparts, bytes in memory / on disk.
 * Calling again updates it; em_status_storage_remove forgets it (unpersist). */
void em_status_storage_update(em_status *st, uint32_t rdd_id, const char *name,
                              uint32_t cached_parts, uint32_t nparts, uint64_t mem_bytes,
                              uint64_t disk_bytes);
void em_status_storage_remove(em_status *st, uint32_t rdd_id);

/* The JSON documents the server answers, as new strings (em_free): which = "jobs",
 * "stages", "executors", "storage" or "app". NULL for an unknown name. Any thread. */
char *em_status_json(em_status *st, const char *which);

/* ---------------------------------------------------------------- event log lines
 * Exposed for tests and for tools that read logs. One JSON object per line, with "event"
 * (app_start, app_end, job_start, job_end, stage_submitted, stage_completed, task_start,
 * task_end), "time" (seconds since the application started, 3 decimals) and the event's
 * fields (docs/standalone.md). Returns a new string without the newline (em_free). */
char *em_status_event_json(const em_status_event *ev, double app_start_s);

/* ---------------------------------------------------------------- progress bar */

/* Renders the bar of one stage into out (NUL-terminated, at most cap-1 bytes), e.g.
 * "[Stage 3:=====>          (12 + 2) / 40]" (done + running) / total, `width` columns wide
 * in all (at least the text without the bar; the bar takes what is left). */
void em_status_progress_render(char *out, size_t cap, uint32_t stage_id, uint32_t done,
                               uint32_t running, uint32_t total, uint32_t width);

#endif /* EMBER_CLUSTER_STATUS_H */
