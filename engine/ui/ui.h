/* engine/ui/ui.h - what a user sees of a running application: the driver's status page and
 * JSON API (jobs, stages, executors, cached datasets), the event log (JSON lines, one file
 * per application) and the console progress bar, all listeners on the scheduler's events;
 * and the small HTTP server and HTML helpers that serve the pages (the driver's here, the
 * standalone master's in engine/deploy).
 *
 * LAYERING: ui sits above engine/sched and consumes its event type (em_sched_event)
 * directly: em_status_listen subscribes the status model, the event log and the progress
 * bar to a scheduler, each as a listener of its own (engine/api does it when a context
 * starts). Nothing in ui knows how tasks run.
 *
 * CONFIGURATION arrives as the strings of the configuration keys (ui cannot see em_conf,
 * which lives in engine/api): ember.ui.port (default 4040; 0 = no server; a busy port tries
 * the next 16), ember.ui.host (default 127.0.0.1), ember.eventLog.enabled (default false),
 * ember.eventLog.dir (default /tmp/ember-events), ember.ui.showConsoleProgress (default
 * true; the bar is drawn only when stderr is a terminal).
 *
 * THREADS: the listeners run on a job's thread inside em_sched_run_job, one at a time;
 * em_status_executor_* and em_status_storage_* from any thread; the HTTP server reads the
 * model on its own thread under the status mutex. */
#ifndef EMBER_UI_H
#define EMBER_UI_H

#include "engine/base/base.h"
#include "engine/sched/sched.h"

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

/* Subscribes st to the scheduler s: the status model, and the event log and the progress
 * bar when they are on, each as a listener (em_sched_add_listener: EM_EINVAL when s has no
 * room left). st must outlive s's jobs. Driver thread, before or between jobs. */
int em_status_listen(em_status *st, em_sched *s, em_err *err);
/* Feeds one event to every consumer of st (the model, the event log, the progress bar) in
 * that order, as the listeners of em_status_listen do one after the other; an
 * em_sched_listener_fn (ud = the em_status) for callers that feed events themselves
 * (tests, replaying a log). */
void em_status_on_event(void *ud, const em_sched_event *ev);

/* The UI port actually bound, 0 when there is no server. */
uint16_t em_status_ui_port(const em_status *st);
const char *em_status_app_id(const em_status *st);
/* The event log's path, NULL when off. Valid until free. */
const char *em_status_event_log_path(const em_status *st);

/* Executors' addresses, cores and removal. Task events alone fill the executors table (by
 * the executor each task ran on, "driver" in local mode); these add what events do not
 * say. Nothing calls them yet (TODO(#10): executor added/removed as scheduler events). */
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
char *em_status_event_json(const em_sched_event *ev, double app_start_s);

/* ---------------------------------------------------------------- progress bar */

/* Renders the bar of one stage into out (NUL-terminated, at most cap-1 bytes), e.g.
 * "[Stage 3:=====>          (12 + 2) / 40]" (done + running) / total, `width` columns wide
 * in all (at least the text without the bar; the bar takes what is left). */
void em_status_progress_render(char *out, size_t cap, uint32_t stage_id, uint32_t done,
                               uint32_t running, uint32_t total, uint32_t width);

/* ---------------------------------------------------------------- HTTP server (http.c)
 * A tiny HTTP/1.x server for status pages: GET (and HEAD) only, one request per connection
 * (every response closes it), no request bodies, requests of at most 8 KiB; anything else
 * is answered 400 and closed. It binds 127.0.0.1 unless told otherwise: the pages show
 * paths and job names, nothing that needs a secret, but nothing a stranger should browse
 * either. One libuv loop on its own thread; the handler is called on that thread and must
 * lock whatever state it reads. */

#define EM_HTTP_MAX_TARGET 512u      /* request target, bytes */

typedef struct em_http_req {
    bool head;                       /* HEAD: same headers, no body */
    char path[EM_HTTP_MAX_TARGET];   /* target without the query string, NUL-terminated */
    char query[EM_HTTP_MAX_TARGET];  /* after '?', "" when none */
    char host[256];                  /* the Host header without its port; "" when none */
} em_http_req;

/* What a handler answers: status 200/404/..., a static content type and a body (owned:
 * em_free; NULL = empty). */
typedef struct em_http_resp {
    int status;
    const char *ctype;
    char *body;
    size_t len;
} em_http_resp;

typedef void (*em_http_handler)(void *ud, const em_http_req *req, em_http_resp *out);

typedef struct em_http_server em_http_server;

/* Starts a server on host (NULL = 127.0.0.1) and port (0 = any free one; *bound gets the
 * port). Handler and ud are borrowed until em_http_server_stop. Any thread. */
em_http_server *em_http_server_start(const char *host, uint16_t port, uint16_t *bound,
                                     em_http_handler fn, void *ud, em_err *err);
/* Closes every connection and joins the loop thread. NULL ok. Not from a handler. */
void em_http_server_stop(em_http_server *s);

/* ---------------------------------------------------------------- HTML helpers (ui.c) */

/* Appends s with & < > " ' escaped. */
int em_html_escape(em_vbuf *b, const char *s);
/* Page head (title escaped, a small style sheet, a 2 s refresh) and tail. */
int em_html_begin(em_vbuf *b, const char *title);
int em_html_end(em_vbuf *b);
/* Formats a duration in seconds as "850 ms", "12.3 s" or "4.2 min". */
void em_html_duration(char *out, size_t cap, double s);

#endif /* EMBER_UI_H */
