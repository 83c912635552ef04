/* engine/ui/status.c - the driver's status model, a listener on scheduler events, served as
 * an HTML page and a JSON API; it subscribes the event log and the progress bar beside it.
 *
 * DESIGN: the model is a few bounded arrays (the last MAX_JOBS jobs, MAX_STAGES stage
 * rounds, every executor and cached dataset) under one mutex: the scheduler's listeners
 * write it (model_listener), the HTTP thread reads it to render, the ticker thread reads the
 * progress counts. Nothing is held across I/O except the event log's line write and the
 * progress bar's stderr write, both short. A stage row is one round of a stage (stage id,
 * stage attempt): a fetch failure's re-run shows up as a new row, as in Spark's UI.
 *
 * ROUTES: /  (HTML), /api/jobs, /api/stages, /api/executors, /api/storage, /api/app. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/ui/ui_int.h"

#define MAX_JOBS 256
#define MAX_STAGES 1024
#define MAX_EXECS 1024
#define MAX_RDDS 1024

typedef struct job_row {
    uint32_t id, nstages, ntasks;
    double start_s, duration_s;
    int state;                   /* 0 running, 1 succeeded, 2 failed */
    char error[256];
} job_row;

typedef struct stage_row {
    uint32_t id, attempt, job_id, shuffle_id, ntasks, running, done, failed;
    bool is_map;
    int state;                   /* 0 running, 1 succeeded, 2 failed */
    double submit_s, duration_s, task_time_s, task_max_s;
} stage_row;

typedef struct exec_row {
    char id[64], addr[64], reason[128];
    uint32_t cores, running, done, failed;
    double task_time_s, added_s;
    bool removed;
} exec_row;

typedef struct rdd_row {
    uint32_t id, cached, nparts;
    uint64_t mem, disk;
    char name[64];
} rdd_row;

struct em_status {
    pthread_mutex_t lock;
    char *app_id, *app_name, *master;
    double start_s;
    time_t start_unix;
    job_row jobs[MAX_JOBS];      /* ring: job i at jobs[i % MAX_JOBS] when i >= njobs - MAX */
    uint32_t njobs;
    stage_row stages[MAX_STAGES];/* ring of rounds, same scheme */
    uint32_t nstages;
    exec_row *execs;
    uint32_t nexecs;
    rdd_row *rdds;
    uint32_t nrdds;
    em__eventlog log;
    em__progress bar;
    pthread_t ticker;
    pthread_cond_t tick_cv;
    bool ticking, stop;
    em_http_server *http;
    uint16_t ui_port;
};

/* ---------------------------------------------------------------- model updates */

static job_row *find_job(em_status *st, uint32_t id)
{
    for (uint32_t i = st->njobs; i > 0 && st->njobs - i < MAX_JOBS; i--)
        if (st->jobs[(i - 1) % MAX_JOBS].id == id)
            return &st->jobs[(i - 1) % MAX_JOBS];
    return NULL;
}

static stage_row *find_stage(em_status *st, uint32_t id, uint32_t attempt)
{
    for (uint32_t i = st->nstages; i > 0 && st->nstages - i < MAX_STAGES; i--) {
        stage_row *r = &st->stages[(i - 1) % MAX_STAGES];
        if (r->id == id && r->attempt == attempt)
            return r;
    }
    return NULL;
}

static exec_row *find_exec(em_status *st, const char *id, bool create)
{
    for (uint32_t i = 0; i < st->nexecs; i++)
        if (strcmp(st->execs[i].id, id) == 0)
            return &st->execs[i];
    if (!create || st->nexecs == MAX_EXECS)
        return NULL;
    st->execs = em_xrealloc(st->execs, (st->nexecs + 1) * sizeof *st->execs);
    exec_row *e = &st->execs[st->nexecs++];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->added_s = em_now_s();
    return e;
}

static void on_task(em_status *st, const em_sched_event *ev)
{
    stage_row *s = find_stage(st, ev->stage_id, ev->stage_attempt);
    exec_row *e = find_exec(st, ev->executor ? ev->executor : "driver", true);
    bool start = ev->kind == EM_SCHED_TASK_START;
    if (s) {
        if (start) {
            s->running++;
        } else {
            s->running -= s->running > 0;
            s->done += ev->code == 0;
            s->failed += ev->code != 0;
            s->task_time_s += ev->duration_s;
            if (ev->duration_s > s->task_max_s)
                s->task_max_s = ev->duration_s;
        }
    }
    if (e) {
        if (start) {
            e->running++;
        } else {
            e->running -= e->running > 0;
            e->done += ev->code == 0;
            e->failed += ev->code != 0;
            e->task_time_s += ev->duration_s;
        }
    }
}

static void on_stage(em_status *st, const em_sched_event *ev)
{
    if (ev->kind == EM_SCHED_STAGE_SUBMITTED) {
        stage_row *s = &st->stages[st->nstages++ % MAX_STAGES];
        *s = (stage_row){.id = ev->stage_id, .attempt = ev->stage_attempt, .job_id = ev->job_id,
                         .shuffle_id = ev->shuffle_id, .ntasks = ev->ntasks,
                         .is_map = ev->is_map, .submit_s = ev->time_s};
        return;
    }
    stage_row *s = find_stage(st, ev->stage_id, ev->stage_attempt);
    if (s) {
        s->state = ev->code == 0 ? 1 : 2;
        s->duration_s = ev->duration_s;
        s->running = 0;
    }
}

static void on_job(em_status *st, const em_sched_event *ev)
{
    if (ev->kind == EM_SCHED_JOB_START) {
        job_row *j = &st->jobs[st->njobs++ % MAX_JOBS];
        *j = (job_row){.id = ev->job_id, .nstages = ev->nstages, .ntasks = ev->ntasks,
                       .start_s = ev->time_s};
        return;
    }
    job_row *j = find_job(st, ev->job_id);
    if (j) {
        j->state = ev->code == 0 ? 1 : 2;
        j->duration_s = ev->duration_s;
        snprintf(j->error, sizeof j->error, "%s", ev->error ? ev->error : "");
    }
}

/* Caller holds the lock. */
static void model_on_event(em_status *st, const em_sched_event *ev)
{
    switch (ev->kind) {
    case EM_SCHED_JOB_START:
    case EM_SCHED_JOB_END: on_job(st, ev); break;
    case EM_SCHED_STAGE_SUBMITTED:
    case EM_SCHED_STAGE_COMPLETED: on_stage(st, ev); break;
    case EM_SCHED_TASK_START:
    case EM_SCHED_TASK_END: on_task(st, ev); break;
    default: break;
    }
}

/* ---------------------------------------------------------------- listeners
 * Three consumers, each its own scheduler listener: the model (read by the HTTP thread),
 * the progress bar (read by the ticker) and the event log. All three take the status mutex,
 * which also orders them against em_status_free. */

static void model_listener(void *ud, const em_sched_event *ev)
{
    em_status *st = ud;
    pthread_mutex_lock(&st->lock);
    model_on_event(st, ev);
    pthread_mutex_unlock(&st->lock);
}

static void progress_listener(void *ud, const em_sched_event *ev)
{
    em_status *st = ud;
    pthread_mutex_lock(&st->lock);
    em__progress_on_event(&st->bar, ev);
    pthread_mutex_unlock(&st->lock);
}

static void eventlog_listener(void *ud, const em_sched_event *ev)
{
    em_status *st = ud;
    pthread_mutex_lock(&st->lock);
    em__eventlog_write(&st->log, ev);
    pthread_mutex_unlock(&st->lock);
}

int em_status_listen(em_status *st, em_sched *s, em_err *err)
{
    int rc = em_sched_add_listener(s, model_listener, st, err);
    if (rc == 0 && st->bar.on)
        rc = em_sched_add_listener(s, progress_listener, st, err);
    if (rc == 0 && st->log.f)
        rc = em_sched_add_listener(s, eventlog_listener, st, err);
    return rc;
}

void em_status_on_event(void *ud, const em_sched_event *ev)
{
    em_status *st = ud;
    pthread_mutex_lock(&st->lock);
    model_on_event(st, ev);
    em__progress_on_event(&st->bar, ev);
    em__eventlog_write(&st->log, ev);
    pthread_mutex_unlock(&st->lock);
}

void em_status_executor_add(em_status *st, const char *id, const char *addr, uint32_t cores)
{
    pthread_mutex_lock(&st->lock);
    exec_row *e = find_exec(st, id, true);
    if (e) {
        snprintf(e->addr, sizeof e->addr, "%s", addr ? addr : "");
        e->cores = cores;
        e->removed = false;
        e->reason[0] = '\0';
    }
    pthread_mutex_unlock(&st->lock);
}

void em_status_executor_remove(em_status *st, const char *id, const char *reason)
{
    pthread_mutex_lock(&st->lock);
    exec_row *e = find_exec(st, id, false);
    if (e) {
        e->removed = true;
        snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
    }
    pthread_mutex_unlock(&st->lock);
}

void em_status_storage_update(em_status *st, uint32_t rdd_id, const char *name,
                              uint32_t cached_parts, uint32_t nparts, uint64_t mem_bytes,
                              uint64_t disk_bytes)
{
    pthread_mutex_lock(&st->lock);
    rdd_row *r = NULL;
    for (uint32_t i = 0; i < st->nrdds && !r; i++)
        if (st->rdds[i].id == rdd_id)
            r = &st->rdds[i];
    if (!r && st->nrdds < MAX_RDDS) {
        st->rdds = em_xrealloc(st->rdds, (st->nrdds + 1) * sizeof *st->rdds);
        r = &st->rdds[st->nrdds++];
    }
    if (r) {
        *r = (rdd_row){.id = rdd_id, .cached = cached_parts, .nparts = nparts,
                       .mem = mem_bytes, .disk = disk_bytes};
        snprintf(r->name, sizeof r->name, "%s", name ? name : "");
    }
    pthread_mutex_unlock(&st->lock);
}

void em_status_storage_remove(em_status *st, uint32_t rdd_id)
{
    pthread_mutex_lock(&st->lock);
    for (uint32_t i = 0; i < st->nrdds; i++)
        if (st->rdds[i].id == rdd_id) {
            st->rdds[i] = st->rdds[--st->nrdds];
            break;
        }
    pthread_mutex_unlock(&st->lock);
}

/* ---------------------------------------------------------------- JSON */

static const char *state_name(int s)
{
    return s == 0 ? "running" : s == 1 ? "succeeded" : "failed";
}

static json_t *jobs_json(em_status *st)
{
    json_t *a = json_array();
    uint32_t first = st->njobs > MAX_JOBS ? st->njobs - MAX_JOBS : 0;
    for (uint32_t i = first; i < st->njobs; i++) {
        job_row *j = &st->jobs[i % MAX_JOBS];
        json_t *o = json_pack("{s:i, s:s, s:i, s:i, s:f, s:f}", "job", (json_int_t)j->id,
                              "status", state_name(j->state), "stages", (json_int_t)j->nstages,
                              "tasks", (json_int_t)j->ntasks, "submitted",
                              j->start_s - st->start_s, "duration",
                              j->state ? j->duration_s : em_now_s() - j->start_s);
        if (j->state == 2)
            json_object_set_new(o, "error", json_string(j->error));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *stages_json(em_status *st)
{
    json_t *a = json_array();
    uint32_t first = st->nstages > MAX_STAGES ? st->nstages - MAX_STAGES : 0;
    for (uint32_t i = first; i < st->nstages; i++) {
        stage_row *s = &st->stages[i % MAX_STAGES];
        uint32_t ended = s->done + s->failed;
        json_array_append_new(
            a, json_pack("{s:i, s:i, s:i, s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f}",
                         "stage", (json_int_t)s->id, "attempt", (json_int_t)s->attempt, "job",
                         (json_int_t)s->job_id, "kind", s->is_map ? "map" : "result", "status",
                         state_name(s->state), "tasks", (json_int_t)s->ntasks, "running",
                         (json_int_t)s->running, "succeeded", (json_int_t)s->done, "failed",
                         (json_int_t)s->failed, "submitted", s->submit_s - st->start_s,
                         "duration", s->state ? s->duration_s : em_now_s() - s->submit_s,
                         "task_time_mean", ended ? s->task_time_s / ended : 0.0,
                         "task_time_max", s->task_max_s));
    }
    return a;
}

static json_t *executors_json(em_status *st)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < st->nexecs; i++) {
        exec_row *e = &st->execs[i];
        json_t *o = json_pack("{s:s, s:s, s:i, s:b, s:i, s:i, s:i, s:f}", "id", e->id, "address",
                              e->addr, "cores", (json_int_t)e->cores, "active", !e->removed,
                              "running", (json_int_t)e->running, "succeeded",
                              (json_int_t)e->done, "failed", (json_int_t)e->failed,
                              "task_time", e->task_time_s);
        if (e->removed)
            json_object_set_new(o, "removed_reason", json_string(e->reason));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *storage_json(em_status *st)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < st->nrdds; i++) {
        rdd_row *r = &st->rdds[i];
        json_array_append_new(a, json_pack("{s:i, s:s, s:i, s:i, s:I, s:I}", "rdd",
                                           (json_int_t)r->id, "name", r->name, "cached_partitions",
                                           (json_int_t)r->cached, "partitions",
                                           (json_int_t)r->nparts, "memory_bytes",
                                           (json_int_t)r->mem, "disk_bytes", (json_int_t)r->disk));
    }
    return a;
}

static json_t *app_json(em_status *st)
{
    return json_pack("{s:s, s:s, s:s?, s:I, s:f, s:i, s:s?}", "app_id", st->app_id, "app_name",
                     st->app_name, "master", st->master, "start_unix",
                     (json_int_t)st->start_unix, "uptime", em_now_s() - st->start_s, "pid",
                     (json_int_t)getpid(), "event_log", st->log.f ? st->log.path : NULL);
}

/* Caller holds the lock. */
static json_t *model_json(em_status *st, const char *which)
{
    if (strcmp(which, "jobs") == 0)
        return jobs_json(st);
    if (strcmp(which, "stages") == 0)
        return stages_json(st);
    if (strcmp(which, "executors") == 0)
        return executors_json(st);
    if (strcmp(which, "storage") == 0)
        return storage_json(st);
    if (strcmp(which, "app") == 0)
        return app_json(st);
    return NULL;
}

static char *dump(json_t *j)
{
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    json_decref(j);
    char *out = s ? em_strdup(s) : NULL;
    free(s);
    return out;
}

char *em_status_json(em_status *st, const char *which)
{
    pthread_mutex_lock(&st->lock);
    json_t *j = model_json(st, which);
    pthread_mutex_unlock(&st->lock);
    return dump(j);
}

/* ---------------------------------------------------------------- HTML */

/* Renders a JSON array of flat objects as a table (header from the first object). */
static void table(em_vbuf *b, const char *title, json_t *rows)
{
    em_vbuf_printf(b, "<h2>%s</h2>\n", title);
    if (json_array_size(rows) == 0) {
        em_vbuf_printf(b, "<p>none</p>\n");
        return;
    }
    const char *k;
    json_t *v;
    em_vbuf_printf(b, "<table><tr>");
    json_object_foreach(json_array_get(rows, 0), k, v)
    {
        em_vbuf_printf(b, "<th>");
        em_html_escape(b, k);
        em_vbuf_printf(b, "</th>");
    }
    em_vbuf_printf(b, "</tr>\n");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        em_vbuf_printf(b, "<tr>");
        json_object_foreach(json_array_get(rows, i), k, v)
        {
            char num[64];
            if (json_is_string(v))
                snprintf(num, sizeof num, "%s", "");
            else if (json_is_real(v) && (strstr(k, "duration") || strstr(k, "time")))
                em_html_duration(num, sizeof num, json_real_value(v));
            else if (json_is_real(v))
                snprintf(num, sizeof num, "%.3f", json_real_value(v));
            else if (json_is_integer(v))
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            else
                snprintf(num, sizeof num, "%s", json_is_true(v) ? "yes" : "no");
            em_vbuf_printf(b, "<td>");
            em_html_escape(b, json_is_string(v) ? json_string_value(v) : num);
            em_vbuf_printf(b, "</td>");
        }
        em_vbuf_printf(b, "</tr>\n");
    }
    em_vbuf_printf(b, "</table>\n");
}

static char *page(em_status *st, size_t *len)
{
    em_vbuf b;
    em_vbuf_init(&b);
    pthread_mutex_lock(&st->lock);
    char *title = em_xasprintf("ember application %s", st->app_name);
    em_html_begin(&b, title);
    em_free(title);
    em_vbuf_printf(&b, "<p>id ");
    em_html_escape(&b, st->app_id);
    em_vbuf_printf(&b, " &middot; master ");
    em_html_escape(&b, st->master ? st->master : "?");
    em_vbuf_printf(&b, " &middot; JSON: <a href=\"/api/jobs\">jobs</a> "
                       "<a href=\"/api/stages\">stages</a> <a href=\"/api/executors\">"
                       "executors</a> <a href=\"/api/storage\">storage</a></p>\n");
    static const char *const parts[][2] = {{"jobs", "Jobs"}, {"stages", "Stages"},
                                           {"executors", "Executors"}, {"storage", "Storage"}};
    for (size_t i = 0; i < 4; i++) {
        json_t *rows = model_json(st, parts[i][0]);
        table(&b, parts[i][1], rows);
        json_decref(rows);
    }
    pthread_mutex_unlock(&st->lock);
    em_html_end(&b);
    return (char *)em_vbuf_steal(&b, len);
}

static void handle(void *ud, const em_http_req *req, em_http_resp *out)
{
    em_status *st = ud;
    if (strcmp(req->path, "/") == 0 || strcmp(req->path, "/index.html") == 0) {
        out->status = 200;
        out->ctype = "text/html; charset=utf-8";
        out->body = page(st, &out->len);
        return;
    }
    if (strncmp(req->path, "/api/", 5) == 0 && (out->body = em_status_json(st, req->path + 5))) {
        out->status = 200;
        out->ctype = "application/json";
        out->len = strlen(out->body);
        return;
    }
    out->status = 404;
    out->body = em_xstrdup("not found\n");
    out->len = strlen(out->body);
}

/* ---------------------------------------------------------------- life cycle */

static void *ticker_main(void *arg)
{
    em_status *st = arg;
    pthread_mutex_lock(&st->lock);
    while (!st->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&st->tick_cv, &st->lock, &ts);
        if (!st->stop)
            em__progress_tick(&st->bar, em_now_s());
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* "true"/"false"/"1"/"0"/"yes"/"no"; NULL = dflt. -1 when unrecognised. */
static int parse_bool(const char *v, bool dflt)
{
    if (!v || !*v)
        return dflt;
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
        return 1;
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
        return 0;
    return -1;
}

/* Serves the status page on ember.ui.port or, when taken, one of the 16 ports after it.
 * Where goes to stderr once at the default log level: a moved port as a warning (nobody
 * must read a stranger's page), else, when `announce` (the console is not quiet:
 * ember.ui.showConsoleProgress, which --quiet turns off), as Spark's "Web UI available
 * at" line; the address is always logged at info level. */
static int start_ui(em_status *st, const em_status_opts *o, bool announce, em_err *err)
{
    uint64_t port = 4040;
    if (o->ui_port && *o->ui_port) {
        char *end;
        unsigned long long v = strtoull(o->ui_port, &end, 10);
        if (*end || o->ui_port[0] == '-' || v > 65535)
            return em_err_set(err, EM_EINVAL, "ember.ui.port: expected 0..65535, got '%s'",
                              o->ui_port);
        port = v;
    }
    if (port == 0)
        return 0;
    for (uint64_t p = port; p < port + 17 && p <= 65535; p++) {
        em_err e = EM_ERR_INIT;
        st->http = em_http_server_start(o->ui_host, (uint16_t)p, &st->ui_port, handle, st, &e);
        if (st->http) {
            /* Another application may hold the port asked for: say where this one is, so
             * nobody reads a stranger's status page. */
            const char *host = o->ui_host && *o->ui_host ? o->ui_host : "127.0.0.1";
            const char *moved = p == port ? "" : " (the port asked for was taken)";
            em_log(p == port ? EM_LOG_INFO : EM_LOG_WARN, "status page at http://%s:%u/%s",
                   host, (unsigned)st->ui_port, moved);
            if (announce && p == port)   /* a moved port is the warning's line already */
                fprintf(stderr, "ember: Web UI available at http://%s:%u/\n", host,
                        (unsigned)st->ui_port);
            return 0;
        }
        if (p == port + 16 || p == 65535)
            em_log(EM_LOG_WARN, "status page off: %s", e.msg);
    }
    return 0;
}

em_status *em_status_new(const em_status_opts *o, em_err *err)
{
    int ev_on = parse_bool(o->event_log_enabled, false);
    int bar_on = parse_bool(o->show_progress, true);
    if (ev_on < 0 || bar_on < 0) {
        em_err_set(err, EM_EINVAL, "%s: expected true or false, got '%s'",
                   ev_on < 0 ? "ember.eventLog.enabled" : "ember.ui.showConsoleProgress",
                   ev_on < 0 ? o->event_log_enabled : o->show_progress);
        return NULL;
    }
    em_status *st = em_xcalloc(1, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->tick_cv, NULL);
    st->start_s = em_now_s();
    st->start_unix = time(NULL);
    st->app_name = em_xstrdup(o->app_name ? o->app_name : "ember");
    st->master = o->master ? em_xstrdup(o->master) : NULL;
    st->app_id = o->app_id ? em_xstrdup(o->app_id)
                           : em_xasprintf("app-%lld-%d", (long long)st->start_unix, (int)getpid());
    if (ev_on && em__eventlog_open(&st->log, o->event_log_dir && *o->event_log_dir
                                                 ? o->event_log_dir : NULL,
                                   st->app_id, st->app_name, st->master, st->start_s, err) < 0)
        goto fail;
    em__progress_init(&st->bar, bar_on && !o->quiet);
    if (st->bar.on && pthread_create(&st->ticker, NULL, ticker_main, st) == 0)
        st->ticking = true;
    if (start_ui(st, o, bar_on && !o->quiet, err) < 0)
        goto fail;
    return st;
fail:
    em_status_free(st);
    return NULL;
}

void em_status_free(em_status *st)
{
    if (!st)
        return;
    em_http_server_stop(st->http);
    pthread_mutex_lock(&st->lock);
    st->stop = true;
    pthread_cond_signal(&st->tick_cv);
    pthread_mutex_unlock(&st->lock);
    if (st->ticking)
        pthread_join(st->ticker, NULL);
    em__progress_clear(&st->bar);
    em__eventlog_close(&st->log);
    pthread_cond_destroy(&st->tick_cv);
    pthread_mutex_destroy(&st->lock);
    em_free(st->execs);
    em_free(st->rdds);
    em_free(st->app_id);
    em_free(st->app_name);
    em_free(st->master);
    em_free(st);
}

uint16_t em_status_ui_port(const em_status *st)
{
    return st->http ? st->ui_port : 0;
}

const char *em_status_app_id(const em_status *st)
{
    return st->app_id;
}

const char *em_status_event_log_path(const em_status *st)
{
    return st->log.path;
}
