/* engine/ui/eventlog.c - the application's event log: one JSON object per line, one
 * file per application, written as things happen (docs/standalone.md lists every event).
 *
 * WHY JSON lines: a reader can follow a running application with `tail -f`, a crash loses at
 * most the line being written, and any tool (jq, Python) reads it without a schema. Times
 * are seconds since the application started (monotonic clock), so runs compare directly;
 * app_start also records the wall-clock start ("unix_time"). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/ui/ui_int.h"

static const char *kind_name(int kind)
{
    switch (kind) {
    case EM_SCHED_JOB_START: return "job_start";
    case EM_SCHED_JOB_END: return "job_end";
    case EM_SCHED_STAGE_SUBMITTED: return "stage_submitted";
    case EM_SCHED_STAGE_COMPLETED: return "stage_completed";
    case EM_SCHED_TASK_START: return "task_start";
    case EM_SCHED_TASK_END: return "task_end";
    default: return NULL;
    }
}

static double round3(double x)
{
    return (double)(int64_t)(x * 1000 + (x < 0 ? -0.5 : 0.5)) / 1000;
}

static void add_result(json_t *o, int code, const char *error, bool fetch_failed)
{
    json_object_set_new(o, "result", json_string(code == 0 ? "success"
                                                 : fetch_failed ? "fetch_failed" : "failed"));
    if (code != 0) {
        json_object_set_new(o, "code", json_string(em_errname(code)));
        json_object_set_new(o, "error", json_string(error ? error : ""));
    }
}

static void add_stage(json_t *o, const em_sched_event *ev)
{
    json_object_set_new(o, "stage", json_integer(ev->stage_id));
    json_object_set_new(o, "stage_attempt", json_integer(ev->stage_attempt));
    json_object_set_new(o, "kind", json_string(ev->is_map ? "map" : "result"));
}

char *em_status_event_json(const em_sched_event *ev, double app_start_s)
{
    const char *name = kind_name(ev->kind);
    if (!name)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string(name));
    json_object_set_new(o, "time", json_real(round3(ev->time_s - app_start_s)));
    json_object_set_new(o, "job", json_integer(ev->job_id));
    switch (ev->kind) {
    case EM_SCHED_JOB_START:
        json_object_set_new(o, "stages", json_integer(ev->nstages));
        json_object_set_new(o, "tasks", json_integer(ev->ntasks));
        break;
    case EM_SCHED_JOB_END:
        json_object_set_new(o, "duration", json_real(round3(ev->duration_s)));
        add_result(o, ev->code, ev->error, false);
        break;
    case EM_SCHED_STAGE_SUBMITTED:
    case EM_SCHED_STAGE_COMPLETED:
        add_stage(o, ev);
        if (ev->is_map)
            json_object_set_new(o, "shuffle", json_integer(ev->shuffle_id));
        json_object_set_new(o, "tasks", json_integer(ev->ntasks));
        if (ev->kind == EM_SCHED_STAGE_COMPLETED) {
            json_object_set_new(o, "duration", json_real(round3(ev->duration_s)));
            add_result(o, ev->code, ev->error, ev->code == EM_EFETCH);
        }
        break;
    default: /* task events */
        add_stage(o, ev);
        json_object_set_new(o, "partition", json_integer(ev->partition));
        json_object_set_new(o, "attempt", json_integer(ev->attempt));
        json_object_set_new(o, "executor", ev->executor ? json_string(ev->executor)
                                                        : json_null());
        if (ev->kind == EM_SCHED_TASK_END) {
            json_object_set_new(o, "duration", json_real(round3(ev->duration_s)));
            add_result(o, ev->code, ev->error, ev->fetch_failed);
        }
        break;
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    json_decref(o);
    if (!s)
        return NULL;
    char *out = em_strdup(s);    /* json_dumps' memory is jansson's allocator's */
    free(s);
    return out;
}

static void write_line(em__eventlog *l, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    if (s && !l->failed) {
        if (fprintf(l->f, "%s\n", s) < 0 || fflush(l->f) != 0) {
            l->failed = true;
            em_log(EM_LOG_WARN, "event log %s: write failed: %s; no more events are logged",
                   l->tmp_path, strerror(errno));
        }
    }
    free(s);
}

/* The default event log directory, $TMPDIR/ember-events-<uid> (else /tmp): this user's
 * alone, created 0700; an existing one must be ours and closed to group and others, or a
 * local user could read (or plant) another's event logs. */
static int default_dir(char *out, size_t cap, em_err *err)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, cap, "%s/ember-events-%u", tmp && *tmp ? tmp : "/tmp", (unsigned)getuid());
    struct stat st;
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        return em_err_set(err, EM_EIO, "event log: cannot create %s: %s", out, strerror(errno));
    if (lstat(out, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 077))
        return em_err_set(err, EM_EIO, "event log: %s is not a directory of this user closed "
                          "to others (set ember.eventLog.dir, or: chmod 700 %s)", out, out);
    return 0;
}

int em__eventlog_open(em__eventlog *l, const char *dir, const char *app_id,
                      const char *app_name, const char *master, double start_s, em_err *err)
{
    char def[4096];
    memset(l, 0, sizeof *l);
    if (!dir) {
        if (default_dir(def, sizeof def, err) < 0)
            return err->code;
        dir = def;
    } else if (em_mkdir_p(dir, err) < 0) {
        return em_err_prefix(err, "ember.eventLog.dir");
    }
    l->path = em_xasprintf("%s/%s.jsonl", dir, app_id);
    l->tmp_path = em_xasprintf("%s.inprogress", l->path);
    /* 0600: the log names the job's paths and functions; others have no business there. */
    int fd = open(l->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || !(l->f = fdopen(fd, "w"))) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        em_free(l->path);
        em_free(l->tmp_path);
        memset(l, 0, sizeof *l);
        return em_err_set(err, EM_EIO, "event log: cannot create %s/%s.jsonl.inprogress: %s",
                          dir, app_id, strerror(e));
    }
    l->start_s = start_s;
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("app_start"));
    json_object_set_new(o, "time", json_real(0));
    json_object_set_new(o, "app_id", json_string(app_id));
    json_object_set_new(o, "app_name", json_string(app_name));
    json_object_set_new(o, "master", master ? json_string(master) : json_null());
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "unix_time", json_integer((json_int_t)time(NULL)));
    write_line(l, o);
    json_decref(o);
    return 0;
}

void em__eventlog_write(em__eventlog *l, const em_sched_event *ev)
{
    if (!l->f || l->failed)
        return;
    char *s = em_status_event_json(ev, l->start_s);
    if (!s)
        return;
    if (fprintf(l->f, "%s\n", s) < 0 || fflush(l->f) != 0) {
        l->failed = true;
        em_log(EM_LOG_WARN, "event log %s: write failed: %s; no more events are logged",
               l->tmp_path, strerror(errno));
    }
    em_free(s);
}

void em__eventlog_close(em__eventlog *l)
{
    if (!l->f)
        return;
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("app_end"));
    json_object_set_new(o, "time", json_real(round3(em_now_s() - l->start_s)));
    write_line(l, o);
    json_decref(o);
    if (fclose(l->f) != 0 && !l->failed)
        em_log(EM_LOG_WARN, "event log %s: close failed: %s", l->tmp_path, strerror(errno));
    else if (rename(l->tmp_path, l->path) != 0)
        em_log(EM_LOG_WARN, "event log: rename %s: %s", l->tmp_path, strerror(errno));
    em_free(l->path);
    em_free(l->tmp_path);
    memset(l, 0, sizeof *l);
}
