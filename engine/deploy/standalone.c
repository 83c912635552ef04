/* engine/deploy/standalone.c - the driver's side of standalone mode (the client of the
 * master) plus helpers shared by the daemons: master URLs and secrets.
 *
 * DESIGN: em_standalone_install registers em_deploy_master_ops (deploy.h). When the
 * context starts an ACCEPT-mode cluster for an ember:// master, app_start connects to the
 * master with the cluster secret, sends register_app (with the driver's address and the
 * application's secret) and waits for registered_app and, when no executor was granted at
 * once (no free worker yet), for the first executor_added. The connection stays open for
 * the application's life: its closing is how the master learns the driver is gone, even
 * when the driver is killed (heartbeats find a stopped one). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/deploy/deploy.h"
#include "engine/net/net.h"

int em_standalone_parse_url(const char *url, char *host, size_t cap, uint16_t *port,
                            em_err *err)
{
    if (!url || strncmp(url, "ember://", 8) != 0)
        return em_err_set(err, EM_EINVAL, "master '%s': expected ember://HOST:PORT",
                          url ? url : "");
    em_err e2 = EM_ERR_INIT;
    if (em_net_addr_split(url + 8, host, cap, port, EM_STANDALONE_DEFAULT_PORT, &e2) < 0)
        return em_err_set(err, EM_EINVAL, "master '%s': %s", url, e2.msg);
    return 0;
}

/* Reads a secret file through one fd, refusing a file that is not a regular file owned by
 * this user or that its group or others may read: a secret anyone on the host can read
 * lets them run code on every worker. The message says the chmod to run. */
static int read_secret_file(const char *path, uint8_t **out, size_t *n, em_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return em_err_set(err, EM_EIO, "--secret-file %s: %s", path, strerror(e));
    }
    int rc = 0;
    if (!S_ISREG(st.st_mode))
        rc = em_err_set(err, EM_EINVAL, "--secret-file %s: not a regular file", path);
    else if (st.st_uid != geteuid())
        rc = em_err_set(err, EM_EINVAL, "--secret-file %s: owned by uid %u, not by this user "
                        "(uid %u); refusing a secret another user controls", path,
                        (unsigned)st.st_uid, (unsigned)geteuid());
    else if (st.st_mode & 077)
        rc = em_err_set(err, EM_EINVAL, "--secret-file %s: readable or writable by group or "
                        "others (mode %03o); run: chmod 600 %s", path,
                        (unsigned)(st.st_mode & 0777), path);
    else if (st.st_size > 4096)
        rc = em_err_set(err, EM_EINVAL, "--secret-file %s: %lld bytes, a secret has at most "
                        "4096", path, (long long)st.st_size);
    if (rc == 0) {
        uint8_t *buf = em_malloc((size_t)st.st_size + 1);
        ssize_t got = buf ? read(fd, buf, (size_t)st.st_size + 1) : -1;
        if (got < 0 || (size_t)got > (size_t)st.st_size) {
            rc = em_err_set(err, EM_EIO, "--secret-file %s: %s", path,
                            got < 0 ? strerror(errno) : "changed while read");
            em_free(buf);
        } else {
            *out = buf;
            *n = (size_t)got;
        }
    }
    close(fd);
    return rc;
}

void em_standalone_free_secret(char *s)
{
    if (s)
        em_secure_zero(s, strlen(s));
    em_free(s);
}

char *em_standalone_read_secret(const char *path, em_err *err)
{
    char *s = NULL;
    if (path) {
        uint8_t *buf = NULL;
        size_t n = 0, n0;
        if (read_secret_file(path, &buf, &n, err) < 0)
            return NULL;
        n0 = n;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        s = em_strndup((const char *)buf, n);
        em_secure_zero(buf, n0);
        em_free(buf);
        if (s && strlen(s) != n) {
            em_free(s);
            em_err_set(err, EM_EINVAL, "--secret-file %s: contains a NUL byte", path);
            return NULL;
        }
    } else if (getenv("EMBER_SECRET")) {
        /* Read once, then out of the environment: processes this one starts (a job's
         * subprocesses, a shell) must not inherit it. */
        s = em_strdup(getenv("EMBER_SECRET"));
        unsetenv("EMBER_SECRET");
    } else {
        em_err_set(err, EM_EINVAL, "no secret: give --secret-file FILE or set EMBER_SECRET");
        return NULL;
    }
    if (!s) {
        em_err_set(err, EM_ENOMEM, "secret: out of memory");
        return NULL;
    }
    if (strlen(s) < 16) {
        em_err_set(err, EM_EINVAL, "%s: the secret has %zu bytes (min 16)",
                   path ? path : "EMBER_SECRET", strlen(s));
        em_standalone_free_secret(s);
        return NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- client */

struct em_standalone_client {
    em_standalone_app app;       /* strings below are owned copies */
    char exec_port[16];          /* app.executor_port ("" = any) */
    char *name, *cluster_secret;
    em_net *net;
    em_conn_id conn;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool registered, lost;       /* lock */
    bool ending;                 /* lock: app_end is closing the connection on purpose */
    uint32_t granted, added;     /* lock: executors in registered_app / executor_added */
    em_deploy_exit_fn on_exit;   /* lock: watch_exits */
    void *exit_ud;
    char app_id[64];             /* lock */
};

static int c_on_frame(void *ud, em_conn_id conn, uint8_t type, em_slice p, em_err *err)
{
    em_standalone_client *c = ud;
    json_t *o = type == EM_FRAME_RPC ? json_loadb((const char *)p.p, p.n, 0, NULL) : NULL;
    const char *t = json_string_value(json_object_get(o, "t"));
    (void)conn;
    if (!t) {
        json_decref(o);
        return em_err_set(err, EM_EPROTO, "master sent a frame that is not an RPC message");
    }
    pthread_mutex_lock(&c->lock);
    if (strcmp(t, "registered_app") == 0) {
        const char *id = json_string_value(json_object_get(o, "app"));
        snprintf(c->app_id, sizeof c->app_id, "%s", id ? id : "?");
        c->granted = (uint32_t)json_integer_value(json_object_get(o, "executors"));
        c->registered = true;
        em_log(EM_LOG_INFO, "standalone: registered as %s, %u executor(s) granted", c->app_id,
               c->granted);
    } else if (strcmp(t, "executor_added") == 0) {
        c->added++;
        em_log(EM_LOG_INFO, "standalone: executor %s granted on %s",
               json_string_value(json_object_get(o, "exec")),
               json_string_value(json_object_get(o, "host")));
    } else if (strcmp(t, "executor_removed") == 0) {
        const char *ex = json_string_value(json_object_get(o, "exec"));
        const char *why = json_string_value(json_object_get(o, "reason"));
        em_log(EM_LOG_WARN, "standalone: executor %s removed: %s", ex, why);
        if (c->on_exit && ex && why)   /* under c->lock: watch_exits(NULL) waits for it */
            c->on_exit(c->exit_ud, ex, why);
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    json_decref(o);
    return 0;
}

static void c_on_close(void *ud, em_conn_id conn, const em_err *why)
{
    em_standalone_client *c = ud;
    (void)conn;
    pthread_mutex_lock(&c->lock);
    c->lost = true;
    bool ending = c->ending;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    /* Our own goodbye at the application's end is no loss worth a warning. */
    em_log(ending ? EM_LOG_DEBUG : EM_LOG_WARN, "standalone: %s the master: %s",
           ending ? "disconnected from" : "lost", why->code ? why->msg : "closed");
}

static void c_on_open(void *ud, em_conn_id conn, bool inbound)
{
    (void)ud;
    (void)conn;
    (void)inbound;
}

static const em_net_ops client_net_ops = {
    .on_open = c_on_open, .on_frame = c_on_frame, .on_close = c_on_close};

static int send_msg(em_standalone_client *c, json_t *o, em_err *err)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return em_err_set(err, EM_ENOMEM, "standalone: message");
    int rc = em_net_send(c->net, c->conn, EM_FRAME_RPC, s, strlen(s), err);
    free(s);
    return rc;
}

/* Waits (lock held) until registered and at least one executor is known, or lost/timeout. */
static int wait_grant(em_standalone_client *c, const char *url, em_err *err)
{
    uint32_t ms = c->app.wait_ms ? c->app.wait_ms : 30000;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (!c->lost && !(c->registered && c->added > 0))
        if (pthread_cond_timedwait(&c->cond, &c->lock, &dl) != 0)
            break;
    if (c->registered && c->added > 0)
        return 0;
    if (c->lost)
        return em_err_set(err, EM_EIO, "master %s closed the connection while registering "
                          "(wrong secret or refused application)", url);
    return em_err_set(err, EM_ETIMEDOUT, "master %s: %s within %u ms", url,
                      c->registered ? "no worker with free cores and memory"
                                    : "no answer to register_app", ms);
}

static int app_start(void *ud, const char *url, const char *driver_addr, const char *secret,
                     uint32_t *nexec, em_err *err)
{
    em_standalone_client *c = ud;
    char host[EM_NET_HOST_MAX];
    uint16_t port;
    int rc;

    if ((rc = em_standalone_parse_url(url, host, sizeof host, &port, err)) < 0)
        return rc;
    em_net_opts no = {.secret = c->cluster_secret, .secret_len = strlen(c->cluster_secret),
                      .ops = &client_net_ops, .ud = c, .max_frame = EM_STANDALONE_MAX_MSG};
    if (!c->net && !(c->net = em_net_new(&no, err)))
        return err->code;
    if ((rc = em_net_connect(c->net, host, port, &c->conn, err)) < 0)
        return em_err_prefix(err, "master %s", url);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:I}", "t", "register_app", "name",
                          c->name, "driver", driver_addr, "secret", secret, "total_cores",
                          (json_int_t)c->app.total_cores, "executor_cores",
                          (json_int_t)c->app.executor_cores, "executor_memory",
                          (json_int_t)c->app.executor_memory);
    if (o && c->exec_port[0])
        json_object_set_new(o, "executor_port", json_string(c->exec_port));
    if ((rc = send_msg(c, o, err)) < 0)
        return rc;
    pthread_mutex_lock(&c->lock);
    rc = wait_grant(c, url, err);
    *nexec = c->granted > c->added ? c->granted : c->added;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static void request_executor(void *ud)
{
    em_standalone_client *c = ud;
    em_err err = EM_ERR_INIT;
    if (c->conn && send_msg(c, json_pack("{s:s}", "t", "request_executor"), &err) < 0)
        em_log(EM_LOG_WARN, "standalone: request_executor: %s", err.msg);
}

static void watch_exits(void *ud, em_deploy_exit_fn fn, void *fn_ud)
{
    em_standalone_client *c = ud;
    pthread_mutex_lock(&c->lock);
    c->on_exit = fn;
    c->exit_ud = fn_ud;
    pthread_mutex_unlock(&c->lock);
}

static void app_end(void *ud)
{
    em_standalone_client *c = ud;
    em_err err = EM_ERR_INIT;
    pthread_mutex_lock(&c->lock);
    c->ending = true;
    pthread_mutex_unlock(&c->lock);
    if (c->conn)
        send_msg(c, json_pack("{s:s}", "t", "unregister_app"), &err);
    em_net_free(c->net);     /* flushes nothing more; the close tells the master anyway */
    c->net = NULL;
    c->conn = 0;
}

em_standalone_client *em_standalone_install(const em_standalone_app *app, em_err *err)
{
    if (!app->cluster_secret || strlen(app->cluster_secret) < 16) {
        em_err_set(err, EM_EINVAL, "standalone: the cluster secret must have >= 16 bytes");
        return NULL;
    }
    em_standalone_client *c = em_xcalloc(1, sizeof *c);
    c->app = *app;
    uint16_t lo, hi;
    if (app->executor_port && *app->executor_port) {
        if (strlen(app->executor_port) >= sizeof c->exec_port ||
            em_net_port_range_parse(app->executor_port, "ember.blockManager.port", &lo, &hi,
                                    err) < 0) {
            if (!err->code)
                em_err_set(err, EM_EINVAL, "ember.blockManager.port: '%s' is too long",
                           app->executor_port);
            em_free(c);
            return NULL;
        }
        snprintf(c->exec_port, sizeof c->exec_port, "%s", app->executor_port);
    }
    c->app.executor_port = NULL;
    c->name = em_xstrdup(app->name && *app->name ? app->name : "ember-app");
    for (char *p = c->name; *p; p++)      /* the master wants a printable token */
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            *p = '_';
    if (strlen(c->name) > 63)
        c->name[63] = '\0';
    c->cluster_secret = em_xstrdup(app->cluster_secret);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    em_deploy_master_ops ops = {.app_start = app_start, .request_executor = request_executor,
                                .app_end = app_end, .watch_exits = watch_exits, .ud = c};
    em_deploy_set_master_ops(&ops);
    return c;
}

void em_standalone_client_free(em_standalone_client *c)
{
    if (!c)
        return;
    em_deploy_set_master_ops(NULL);
    em_net_free(c->net);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    em_free(c->name);
    em_standalone_free_secret(c->cluster_secret);
    em_free(c);
}

/* ---------------------------------------------------------------- the ember:// master hook */

/* Written only by em_deploy_set_master_ops, on the main thread before contexts are created
 * or after they are freed; read by em_context_new. */
static em_deploy_master_ops g_master_ops;
static bool g_master_set;

void em_deploy_set_master_ops(const em_deploy_master_ops *ops)
{
    g_master_set = ops != NULL;
    if (ops)
        g_master_ops = *ops;
}

const em_deploy_master_ops *em_deploy_master_ops_get(void)
{
    return g_master_set ? &g_master_ops : NULL;
}
