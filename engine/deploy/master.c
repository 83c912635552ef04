/* engine/deploy/master.c - the standalone master: tracks workers and applications and
 * grants executors (cores and memory on workers) to applications. docs/standalone.md.
 *
 * DESIGN: em_master is a state machine without I/O (so unit tests drive it with fake
 * connection ids): every RPC message and every closed connection updates the tables below
 * and answers through io->send. A connection's role is fixed by its first message
 * (register_worker or register_app); anything else first, or a second registration, is a
 * protocol error and the connection is dropped. em_master_run wires the machine to engine/net
 * (authentication, heartbeats: a silent peer is closed by em_net and handled as a close)
 * and serves the status page.
 *
 * SCHEDULING (Spark's spread-out default): after any change, each application that wants
 * more cores gets, in registration order, at most one new executor per worker, on the
 * workers with the most free cores first, each executor taking executor_cores (or all the
 * worker's free cores, capped by what the application still wants) and executor_memory.
 *
 * MESSAGES (all JSON objects with "t"):
 *   worker -> master   register_worker {id, host, cores, memory}
 *                      executor_exited {app, exec, status}
 *   master -> worker   registered_worker {}, launch_executor {app, exec, driver, cores,
 *                      memory, secret, port?}, kill_executor {app, exec}
 *   driver -> master   register_app {name, driver, secret, total_cores, executor_cores,
 *                      executor_memory, executor_port?}, request_executor {},
 *                      unregister_app {}
 *   (driver: "HOST:PORT" or "[V6]:PORT", checked by em_net_addr_split; port: the
 *   executors' shuffle server port or range, ember.blockManager.port)
 *   master -> driver   registered_app {app, executors}, executor_added {exec, worker, host,
 *                      cores}, executor_removed {exec, reason}
 *   either way         error {message} (then the master closes) */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/ui/ui.h"
#include "engine/deploy/deploy.h"
#include "engine/net/net.h"

#define MAX_ID 63
#define MAX_WORKERS 4096
#define MAX_APPS 1024
#define MAX_DONE_APPS 64
#define MAX_EXEC_FAILS 16        /* executor failures of an app before it gets no more */

typedef struct mworker {
    uint64_t conn;
    char id[MAX_ID + 1], host[MAX_ID + 1];
    uint32_t cores, cores_used;
    uint64_t memory, mem_used;
    double since_s;
} mworker;

typedef struct mexec {
    char id[MAX_ID + 1], worker[MAX_ID + 1];
    uint32_t cores;
    uint64_t memory;
    char state[32];              /* past executors: how they ended ("exited", "killed") */
} mexec;
#define MAX_PAST_EXECS 32        /* ended executors an application remembers for /json */

typedef struct mapp {
    uint64_t conn;
    char id[MAX_ID + 1], name[MAX_ID + 1], driver[EM_NET_ADDR_MAX];
    char exec_port[16];          /* "" = any, else "P" or "LO-HI" */
    char *secret;                /* the application's secret (owned) */
    uint32_t total_cores;        /* 0 = unlimited */
    uint32_t exec_cores;         /* 0 = all free cores of a worker */
    uint64_t exec_memory;
    uint32_t cores_granted, next_exec, fails;
    mexec *execs;
    uint32_t nexecs;
    mexec past[MAX_PAST_EXECS];  /* ended executors, first MAX_PAST_EXECS (a finished app
                                    lists them: its execs are gone) */
    uint32_t npast;
    double since_s, ended_s;
    char end_reason[64];
} mapp;

struct em_master {
    em_master_io io;
    pthread_mutex_t lock;
    mworker *workers;
    uint32_t nworkers;
    mapp *apps;
    uint32_t napps;
    mapp done[MAX_DONE_APPS];    /* ring of finished applications (secret freed) */
    uint32_t ndone;
    uint32_t next_app;
    double start_s;
};

/* ---------------------------------------------------------------- helpers */

static void send_json(em_master *m, uint64_t conn, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s) {
        m->io.send(m->io.ud, conn, s, strlen(s));
        free(s);
    }
}

static mworker *worker_by_conn(em_master *m, uint64_t conn)
{
    for (uint32_t i = 0; i < m->nworkers; i++)
        if (m->workers[i].conn == conn)
            return &m->workers[i];
    return NULL;
}

static mworker *worker_by_id(em_master *m, const char *id)
{
    for (uint32_t i = 0; i < m->nworkers; i++)
        if (strcmp(m->workers[i].id, id) == 0)
            return &m->workers[i];
    return NULL;
}

static mapp *app_by_conn(em_master *m, uint64_t conn)
{
    for (uint32_t i = 0; i < m->napps; i++)
        if (m->apps[i].conn == conn)
            return &m->apps[i];
    return NULL;
}

static mapp *app_by_id(em_master *m, const char *id)
{
    for (uint32_t i = 0; i < m->napps; i++)
        if (strcmp(m->apps[i].id, id) == 0)
            return &m->apps[i];
    return NULL;
}

/* A string field of at most MAX_ID printable, non-space bytes (ids, hosts, addresses). */
static int get_id(json_t *o, const char *key, char *out, em_err *err)
{
    const char *v = json_string_value(json_object_get(o, key));
    size_t n = v ? strlen(v) : 0;
    if (!v || n == 0 || n > MAX_ID)
        return em_err_set(err, EM_EPROTO, "field '%s': expected a string of 1..%d bytes", key,
                          MAX_ID);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
            return em_err_set(err, EM_EPROTO, "field '%s': byte %zu is not printable", key, i);
    memcpy(out, v, n + 1);
    return 0;
}

static int get_uint(json_t *o, const char *key, uint64_t max, bool required, uint64_t *out,
                    em_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!v && !required) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > max)
        return em_err_set(err, EM_EPROTO, "field '%s': expected an integer in 0..%llu", key,
                          (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* ---------------------------------------------------------------- scheduling */

static uint32_t app_wants(const mapp *a)
{
    if (a->fails >= MAX_EXEC_FAILS)
        return 0;
    if (a->total_cores == 0)
        return UINT32_MAX;
    return a->total_cores > a->cores_granted ? a->total_cores - a->cores_granted : 0;
}

static bool app_has_exec_on(const mapp *a, const char *worker)
{
    for (uint32_t i = 0; i < a->nexecs; i++)
        if (strcmp(a->execs[i].worker, worker) == 0)
            return true;
    return false;
}

static void launch(em_master *m, mapp *a, mworker *w)
{
    uint32_t free_cores = w->cores - w->cores_used, want = app_wants(a);
    uint32_t cores = a->exec_cores ? a->exec_cores : (free_cores < want ? free_cores : want);
    mexec *e;

    a->execs = em_xrealloc(a->execs, (a->nexecs + 1) * sizeof *a->execs);
    e = &a->execs[a->nexecs++];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%.40s-%u", a->id, a->next_exec++);
    snprintf(e->worker, sizeof e->worker, "%s", w->id);
    e->cores = cores;
    e->memory = a->exec_memory;
    json_t *msg = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:s}", "t", "launch_executor",
                            "app", a->id, "exec", e->id, "driver", a->driver, "cores",
                            (json_int_t)cores, "memory", (json_int_t)a->exec_memory, "secret",
                            a->secret);
    if (msg && a->exec_port[0])
        json_object_set_new(msg, "port", json_string(a->exec_port));
    w->cores_used += cores;
    w->mem_used += a->exec_memory;
    a->cores_granted += cores;
    send_json(m, w->conn,
              msg);
    send_json(m, a->conn,
              json_pack("{s:s, s:s, s:s, s:s, s:i}", "t", "executor_added", "exec", e->id,
                        "worker", w->id, "host", w->host, "cores", (json_int_t)cores));
}

/* The worker with the most free cores that fits one more executor of a, or NULL. */
static mworker *best_worker(em_master *m, const mapp *a)
{
    mworker *best = NULL;
    for (uint32_t i = 0; i < m->nworkers; i++) {
        mworker *w = &m->workers[i];
        uint32_t free_cores = w->cores - w->cores_used;
        if (free_cores == 0 || free_cores < a->exec_cores ||
            w->memory - w->mem_used < a->exec_memory || app_has_exec_on(a, w->id))
            continue;
        if (!best || free_cores > best->cores - best->cores_used)
            best = w;
    }
    return best;
}

static void schedule(em_master *m)
{
    for (uint32_t i = 0; i < m->napps; i++) {
        mapp *a = &m->apps[i];
        mworker *w;
        while (app_wants(a) > 0 && (w = best_worker(m, a)) != NULL)
            launch(m, a, w);
    }
}

/* Forgets executor k of a (its worker's resources come back). */
static void exec_drop(em_master *m, mapp *a, uint32_t k, const char *reason, bool tell_worker)
{
    mexec *e = &a->execs[k];
    mworker *w = worker_by_id(m, e->worker);
    if (w) {
        w->cores_used -= e->cores <= w->cores_used ? e->cores : w->cores_used;
        w->mem_used -= e->memory <= w->mem_used ? e->memory : w->mem_used;
        if (tell_worker)
            send_json(m, w->conn, json_pack("{s:s, s:s, s:s}", "t", "kill_executor", "app",
                                            a->id, "exec", e->id));
    }
    a->cores_granted -= e->cores <= a->cores_granted ? e->cores : a->cores_granted;
    if (a->npast < MAX_PAST_EXECS) {
        mexec *p = &a->past[a->npast++];
        *p = *e;
        snprintf(p->state, sizeof p->state, "%s", !reason ? "killed at the app's end"
                                                  : strstr(reason, "exited") ? "exited"
                                                                             : "lost");
    }
    if (reason && a->conn)
        send_json(m, a->conn, json_pack("{s:s, s:s, s:s}", "t", "executor_removed", "exec",
                                        e->id, "reason", reason));
    a->execs[k] = a->execs[--a->nexecs];
}

/* Ends application i: kills its executors, moves it to the finished ring. */
static void app_end(em_master *m, uint32_t i, const char *reason)
{
    mapp *a = &m->apps[i];
    em_log(EM_LOG_INFO, "master: application %s (%s) ended: %s", a->id, a->name, reason);
    a->conn = 0;
    while (a->nexecs)
        exec_drop(m, a, a->nexecs - 1, NULL, true);
    em_free(a->execs);
    em_standalone_free_secret(a->secret);
    a->execs = NULL;
    a->secret = NULL;
    a->ended_s = em_now_s();
    snprintf(a->end_reason, sizeof a->end_reason, "%s", reason);
    m->done[m->ndone++ % MAX_DONE_APPS] = *a;
    m->apps[i] = m->apps[--m->napps];
}

/* ---------------------------------------------------------------- messages */

static int on_register_worker(em_master *m, uint64_t conn, json_t *o, em_err *err)
{
    mworker w = {.conn = conn, .since_s = em_now_s()};
    uint64_t cores, mem;
    if (get_id(o, "id", w.id, err) < 0 || get_id(o, "host", w.host, err) < 0 ||
        get_uint(o, "cores", 1u << 16, true, &cores, err) < 0 ||
        get_uint(o, "memory", (uint64_t)1 << 50, true, &mem, err) < 0)
        return em_err_prefix(err, "register_worker");
    if (cores == 0)
        return em_err_set(err, EM_EPROTO, "register_worker: 0 cores");
    if (worker_by_id(m, w.id))
        return em_err_set(err, EM_EPROTO, "register_worker: worker id '%s' is taken", w.id);
    if (m->nworkers == MAX_WORKERS)
        return em_err_set(err, EM_EPROTO, "register_worker: too many workers (%d)",
                          MAX_WORKERS);
    w.cores = (uint32_t)cores;
    w.memory = mem;
    m->workers = em_xrealloc(m->workers, (m->nworkers + 1) * sizeof *m->workers);
    m->workers[m->nworkers++] = w;
    em_log(EM_LOG_INFO, "master: worker %s (%s) registered with %u cores, %llu MiB", w.id,
           w.host, w.cores, (unsigned long long)(mem >> 20));
    send_json(m, conn, json_pack("{s:s}", "t", "registered_worker"));
    schedule(m);
    return 0;
}

static int on_register_app(em_master *m, uint64_t conn, json_t *o, em_err *err)
{
    mapp a = {.conn = conn, .since_s = em_now_s()};
    uint64_t tc, ec, em;
    const char *secret = json_string_value(json_object_get(o, "secret"));
    const char *drv = json_string_value(json_object_get(o, "driver"));
    const char *xp = json_string_value(json_object_get(o, "executor_port"));
    char h[EM_NET_HOST_MAX];
    uint16_t port, lo, hi;
    if (!drv || strlen(drv) >= sizeof a.driver ||
        em_net_addr_split(drv, h, sizeof h, &port, 0, err) < 0)
        return em_err_prefix(err, "register_app: field 'driver' (HOST:PORT)");
    snprintf(a.driver, sizeof a.driver, "%s", drv);
    if (xp && (strlen(xp) >= sizeof a.exec_port ||
               em_net_port_range_parse(xp, "executor_port", &lo, &hi, err) < 0))
        return em_err_prefix(err, "register_app");
    snprintf(a.exec_port, sizeof a.exec_port, "%s", xp ? xp : "");
    if (get_id(o, "name", a.name, err) < 0 ||
        get_uint(o, "total_cores", 1u << 20, false, &tc, err) < 0 ||
        get_uint(o, "executor_cores", 1u << 16, false, &ec, err) < 0 ||
        get_uint(o, "executor_memory", (uint64_t)1 << 50, false, &em, err) < 0)
        return em_err_prefix(err, "register_app");
    if (!secret || strlen(secret) < 16 || strlen(secret) > 1024)
        return em_err_set(err, EM_EPROTO, "register_app: field 'secret': 16..1024 bytes");
    if (m->napps == MAX_APPS)
        return em_err_set(err, EM_EPROTO, "register_app: too many applications");
    snprintf(a.id, sizeof a.id, "app-%lld-%04u", (long long)time(NULL), m->next_app++);
    a.secret = em_xstrdup(secret);
    a.total_cores = (uint32_t)tc;
    a.exec_cores = (uint32_t)ec;
    a.exec_memory = em ? em : (uint64_t)1 << 30;
    m->apps = em_xrealloc(m->apps, (m->napps + 1) * sizeof *m->apps);
    m->apps[m->napps++] = a;
    em_log(EM_LOG_INFO, "master: application %s (%s) registered, driver %s", a.id, a.name,
           a.driver);
    /* Grants go out first, so the driver knows how many executors to wait for. */
    schedule(m);
    mapp *p = app_by_conn(m, conn);
    send_json(m, conn, json_pack("{s:s, s:s, s:i}", "t", "registered_app", "app", p->id,
                                 "executors", (json_int_t)p->nexecs));
    return 0;
}

static int on_executor_exited(em_master *m, mworker *w, json_t *o, em_err *err)
{
    char app[MAX_ID + 1], exec[MAX_ID + 1], reason[1200];
    uint64_t status;
    if (get_id(o, "app", app, err) < 0 || get_id(o, "exec", exec, err) < 0 ||
        get_uint(o, "status", 255, false, &status, err) < 0)
        return em_err_prefix(err, "executor_exited");
    /* Optional: how it ended and the last lines of its stderr (the worker's words). */
    const char *detail = json_string_value(json_object_get(o, "detail"));
    mapp *a = app_by_id(m, app);
    for (uint32_t k = 0; a && k < a->nexecs; k++) {
        if (strcmp(a->execs[k].id, exec) != 0 || strcmp(a->execs[k].worker, w->id) != 0)
            continue;
        snprintf(reason, sizeof reason, "executor exited with status %u%s%.1100s",
                 (unsigned)status, detail ? ": " : "", detail ? detail : "");
        a->fails++;
        exec_drop(m, a, k, reason, false);
        schedule(m);
        break;
    }
    return 0;   /* an executor we no longer track (app ended) is not an error */
}

static int dispatch(em_master *m, uint64_t conn, const char *t, json_t *o, em_err *err)
{
    mworker *w = worker_by_conn(m, conn);
    mapp *a = app_by_conn(m, conn);
    bool fresh = !w && !a;

    if (strcmp(t, "register_worker") == 0 && fresh)
        return on_register_worker(m, conn, o, err);
    if (strcmp(t, "register_app") == 0 && fresh)
        return on_register_app(m, conn, o, err);
    if (strcmp(t, "executor_exited") == 0 && w)
        return on_executor_exited(m, w, o, err);
    if (strcmp(t, "request_executor") == 0 && a) {
        schedule(m);
        return 0;
    }
    if (strcmp(t, "unregister_app") == 0 && a) {
        app_end(m, (uint32_t)(a - m->apps), "finished");
        return 0;
    }
    return em_err_set(err, EM_EPROTO, "message '%.32s' not allowed from a %s connection", t,
                      w ? "worker" : a ? "driver" : "new");
}

int em_master_on_message(em_master *m, uint64_t conn, const uint8_t *p, size_t n, em_err *err)
{
    json_error_t jerr;
    json_t *o;
    int rc;

    if (n > EM_STANDALONE_MAX_MSG)
        return em_err_set(err, EM_EPROTO, "message of %zu bytes (max %u)", n,
                          EM_STANDALONE_MAX_MSG);
    o = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return em_err_set(err, EM_EPROTO, "message is not a JSON object (%s at byte %d)",
                          o ? "not an object" : jerr.text, o ? 0 : jerr.position);
    }
    const char *t = json_string_value(json_object_get(o, "t"));
    pthread_mutex_lock(&m->lock);
    rc = t ? dispatch(m, conn, t, o, err)
           : em_err_set(err, EM_EPROTO, "message without a \"t\" string");
    pthread_mutex_unlock(&m->lock);
    json_decref(o);
    if (rc < 0)
        em_master_on_close(m, conn);
    return rc;
}

void em_master_on_close(em_master *m, uint64_t conn)
{
    pthread_mutex_lock(&m->lock);
    mapp *a = app_by_conn(m, conn);
    if (a)
        app_end(m, (uint32_t)(a - m->apps), "driver disconnected");
    mworker *w = worker_by_conn(m, conn);
    if (w) {
        em_log(EM_LOG_WARN, "master: worker %s (%s) lost", w->id, w->host);
        char id[MAX_ID + 1];
        memcpy(id, w->id, sizeof id);
        for (uint32_t i = 0; i < m->napps; i++)
            for (uint32_t k = m->apps[i].nexecs; k > 0; k--)
                if (strcmp(m->apps[i].execs[k - 1].worker, id) == 0)
                    exec_drop(m, &m->apps[i], k - 1, "worker lost", false);
        *w = m->workers[--m->nworkers];
        schedule(m);
    }
    pthread_mutex_unlock(&m->lock);
}

/* ---------------------------------------------------------------- life cycle and views */

em_master *em_master_new(const em_master_io *io)
{
    em_master *m = em_xcalloc(1, sizeof *m);
    m->io = *io;
    m->start_s = em_now_s();
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void em_master_free(em_master *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < m->napps; i++) {
        em_free(m->apps[i].execs);
        em_standalone_free_secret(m->apps[i].secret);
    }
    em_free(m->apps);
    em_free(m->workers);
    pthread_mutex_destroy(&m->lock);
    em_free(m);
}

uint32_t em_master_num_workers(em_master *m)
{
    pthread_mutex_lock(&m->lock);
    uint32_t n = m->nworkers;
    pthread_mutex_unlock(&m->lock);
    return n;
}

uint32_t em_master_num_apps(em_master *m)
{
    pthread_mutex_lock(&m->lock);
    uint32_t n = m->napps;
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* "executors": the running ones, then those that ended (with "state"), so that a
 * finished application still shows where it ran. */
static json_t *app_json(const mapp *a, double now)
{
    json_t *ex = json_array();
    for (uint32_t k = 0; k < a->nexecs; k++)
        json_array_append_new(ex, json_pack("{s:s, s:s, s:i, s:s}", "id", a->execs[k].id,
                                            "worker", a->execs[k].worker, "cores",
                                            (json_int_t)a->execs[k].cores, "state",
                                            "running"));
    for (uint32_t k = 0; k < a->npast; k++)
        json_array_append_new(ex, json_pack("{s:s, s:s, s:i, s:s}", "id", a->past[k].id,
                                            "worker", a->past[k].worker, "cores",
                                            (json_int_t)a->past[k].cores, "state",
                                            a->past[k].state));
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:f, s:o}", "id", a->id, "name",
                          a->name, "driver", a->driver, "cores_granted",
                          (json_int_t)a->cores_granted, "total_cores",
                          (json_int_t)a->total_cores, "executor_memory",
                          (json_int_t)a->exec_memory,
                          "duration", (a->ended_s ? a->ended_s : now) - a->since_s,
                          "executors", ex);
    if (a->ended_s)
        json_object_set_new(o, "end_reason", json_string(a->end_reason));
    return o;
}

char *em_master_json(em_master *m)
{
    double now = em_now_s();
    json_t *ws = json_array(), *as = json_array(), *ds = json_array();
    pthread_mutex_lock(&m->lock);
    for (uint32_t i = 0; i < m->nworkers; i++) {
        mworker *w = &m->workers[i];
        json_array_append_new(ws, json_pack("{s:s, s:s, s:i, s:i, s:I, s:I, s:f}", "id", w->id,
                                            "host", w->host, "cores", (json_int_t)w->cores,
                                            "cores_used", (json_int_t)w->cores_used, "memory",
                                            (json_int_t)w->memory, "memory_used",
                                            (json_int_t)w->mem_used, "uptime",
                                            now - w->since_s));
    }
    for (uint32_t i = 0; i < m->napps; i++)
        json_array_append_new(as, app_json(&m->apps[i], now));
    uint32_t first = m->ndone > MAX_DONE_APPS ? m->ndone - MAX_DONE_APPS : 0;
    for (uint32_t i = first; i < m->ndone; i++)
        json_array_append_new(ds, app_json(&m->done[i % MAX_DONE_APPS], now));
    pthread_mutex_unlock(&m->lock);
    json_t *o = json_pack("{s:o, s:o, s:o}", "workers", ws, "apps", as, "completed_apps", ds);
    char *s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    json_decref(o);
    char *out = s ? em_xstrdup(s) : NULL;
    free(s);
    return out;
}

/* ---------------------------------------------------------------- the daemon */

typedef struct daemon {
    em_net *net;
    em_master *m;
} daemon;

static int d_send(void *ud, uint64_t conn, const char *json, size_t len)
{
    daemon *d = ud;
    em_err err = EM_ERR_INIT;
    /* Called on the loop thread (inside on_frame / on_close): never blocks. */
    return em_net_send(d->net, conn, EM_FRAME_RPC, json, len, &err);
}

static int d_on_frame(void *ud, em_conn_id c, uint8_t type, em_slice p, em_err *err)
{
    daemon *d = ud;
    if (type != EM_FRAME_RPC)
        return em_err_set(err, EM_EPROTO, "connection %llu: frame type %u (want RPC)",
                          (unsigned long long)c, type);
    int rc = em_master_on_message(d->m, c, p.p, p.n, err);
    if (rc < 0)
        em_log(EM_LOG_WARN, "master: dropping connection %llu: %s", (unsigned long long)c,
               err->msg);
    return rc;
}

static void d_on_close(void *ud, em_conn_id c, const em_err *why)
{
    daemon *d = ud;
    (void)why;
    em_master_on_close(d->m, c);
}

static void d_on_open(void *ud, em_conn_id c, bool inbound)
{
    (void)ud;
    (void)c;
    (void)inbound;
}

static const em_net_ops master_net_ops = {
    .on_open = d_on_open, .on_frame = d_on_frame, .on_close = d_on_close};

static void ui_table(em_vbuf *b, json_t *rows, const char *const *cols, size_t ncols)
{
    if (json_array_size(rows) == 0) {
        em_vbuf_printf(b, "<p>none</p>\n");
        return;
    }
    em_vbuf_printf(b, "<table><tr>");
    for (size_t c = 0; c < ncols; c++)
        em_vbuf_printf(b, "<th>%s</th>", cols[c]);
    em_vbuf_printf(b, "</tr>\n");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        em_vbuf_printf(b, "<tr>");
        for (size_t c = 0; c < ncols; c++) {
            json_t *v = json_object_get(json_array_get(rows, i), cols[c]);
            char num[64] = "";
            if (json_is_integer(v))
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            else if (json_is_real(v))
                em_html_duration(num, sizeof num, json_real_value(v));
            else if (json_is_array(v))
                snprintf(num, sizeof num, "%zu", json_array_size(v));
            em_vbuf_printf(b, "<td>");
            em_html_escape(b, json_is_string(v) ? json_string_value(v) : num);
            em_vbuf_printf(b, "</td>");
        }
        em_vbuf_printf(b, "</tr>\n");
    }
    em_vbuf_printf(b, "</table>\n");
}

static char *master_page(em_master *m, size_t *len)
{
    static const char *const wcols[] = {"id", "host", "cores", "cores_used", "memory",
                                        "memory_used", "uptime"};
    static const char *const acols[] = {"id", "name", "driver", "cores_granted", "executors",
                                        "duration"};
    static const char *const dcols[] = {"id", "name", "driver", "duration", "end_reason"};
    char *js = em_master_json(m);
    json_t *o = json_loads(js, 0, NULL);
    em_vbuf b;
    em_free(js);
    em_vbuf_init(&b);
    em_html_begin(&b, "ember master");
    em_vbuf_printf(&b, "<p>JSON: <a href=\"/json\">/json</a></p><h2>Workers</h2>\n");
    ui_table(&b, json_object_get(o, "workers"), wcols, 7);
    em_vbuf_printf(&b, "<h2>Running applications</h2>\n");
    ui_table(&b, json_object_get(o, "apps"), acols, 6);
    em_vbuf_printf(&b, "<h2>Completed applications</h2>\n");
    ui_table(&b, json_object_get(o, "completed_apps"), dcols, 5);
    em_html_end(&b);
    json_decref(o);
    return (char *)em_vbuf_steal(&b, len);
}

static void master_http(void *ud, const em_http_req *req, em_http_resp *out)
{
    em_master *m = ud;
    if (strcmp(req->path, "/") == 0) {
        out->status = 200;
        out->ctype = "text/html; charset=utf-8";
        out->body = master_page(m, &out->len);
    } else if (strcmp(req->path, "/json") == 0 || strcmp(req->path, "/json/") == 0) {
        out->status = 200;
        out->ctype = "application/json";
        out->body = em_master_json(m);
        out->len = out->body ? strlen(out->body) : 0;
    } else {
        out->status = 404;
        out->body = em_xstrdup("not found\n");
        out->len = strlen(out->body);
    }
}

int em_master_run(const em_master_opts *o, volatile sig_atomic_t *stop, em_err *err)
{
    const char *host = o->host ? o->host : "127.0.0.1";
    em_master_io io = {.send = d_send};
    daemon d = {0};
    em_http_server *http = NULL;
    uint16_t port = 0, ui_port = 0;
    int rc;

    io.ud = &d;
    d.m = em_master_new(&io);
    em_net_opts no = {.secret = o->secret, .secret_len = strlen(o->secret),
                      .ops = &master_net_ops, .ud = &d, .peer_timeout_ms = o->peer_timeout_ms,
                      .max_frame = EM_STANDALONE_MAX_MSG};
    if (!(d.net = em_net_new(&no, err))) {
        rc = err->code;
        goto out;
    }
    if ((rc = em_net_listen(d.net, host, o->port, &port, err)) < 0)
        goto out;
    /* The URL to give workers and drivers: the advertised host, else the bind address,
     * else (listening everywhere) this machine's name. */
    char adv[EM_NET_HOST_MAX], url[EM_NET_ADDR_MAX];
    em_net_advertised(host, o->advertise_host, adv, sizeof adv);
    em_net_addr_format(url, sizeof url, adv, port);
    printf("master listening on ember://%s\n", url);
    if (o->ui_port != 0) {
        /* The page binds loopback unless told (--ui-host): it answers without a secret. */
        const char *ui_host = o->ui_host ? o->ui_host : "127.0.0.1";
        http = em_http_server_start(ui_host,
                                     o->ui_port < 0 ? 0 : (uint16_t)o->ui_port, &ui_port,
                                     master_http, d.m, err);
        if (!http) {
            rc = err->code;
            goto out;
        }
        em_net_addr_format(url, sizeof url, ui_host, ui_port);
        printf("master ui on http://%s\n", url);
    }
    fflush(stdout);
    while (!*stop) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    rc = 0;
out:
    em_http_server_stop(http);
    em_net_free(d.net);      /* closes every connection: drivers and workers see it */
    em_master_free(d.m);
    return rc;
}
