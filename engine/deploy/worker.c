/* engine/deploy/worker.c - the standalone worker: registers its cores and memory with the
 * master, starts `ember executor` processes when the master says so, reports their exits,
 * and kills them when the master (on the driver's exit) says so or when it loses the
 * master. docs/standalone.md.
 *
 * DESIGN: the network thread (em_net) only queues the master's orders (mutex); the worker's
 * own thread does everything that blocks or touches processes: spawning, reaping
 * (waitpid WNOHANG every 100 ms), killing (SIGTERM to the executor's process group, SIGKILL
 * after KILL_GRACE_S), removing directories, reconnecting. Each executor runs in its own
 * process group, in <work>/<app>/<exec>/ with its stdout and stderr there. When it exits,
 * its directory is kept (the last KEEP_EXEC_DIRS of them; the oldest goes first, with its
 * app's dir once empty) so that its logs outlive it, and a failure's report to the master
 * carries the exit (status or signal) and the last lines of its stderr; the whole work
 * dir (made with mkdtemp) goes when the worker stops.
 * The application's secret reaches the executor in EMBER_SECRET (environment), so it never
 * shows in `ps`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/deploy/deploy.h"
#include "engine/net/net.h"

extern char **environ;

#define KILL_GRACE_S 3.0
#define MAX_ORDERS 1024
/* Directories (stdout, stderr) of exited executors kept for a post-mortem, as Spark's
 * worker keeps its work dir: the oldest goes when one more would pass this bound. */
#define KEEP_EXEC_DIRS 16
#define TAIL_LINES 8             /* stderr lines of a failed executor reported */

typedef struct wexec {
    char app[64], id[64];
    char *dir;                   /* owned */
    pid_t pid;
    double kill_s;               /* when SIGTERM went out; 0 = not being killed */
} wexec;

typedef struct order {
    bool launch;                 /* else kill */
    char app[64], exec[64], driver[EM_NET_ADDR_MAX];
    char port[16];               /* the executor's --port; "" = any */
    uint32_t cores;
    uint64_t memory;
    char *secret;                /* owned */
} order;

typedef struct worker {
    const em_worker_opts *o;
    char *root;                  /* our work dir (owned) */
    char id[64];
    char adv[EM_NET_HOST_MAX];   /* the host its executors are reached at (advertised) */
    em_net *net;
    pthread_mutex_t lock;
    order orders[MAX_ORDERS];    /* lock */
    uint32_t norders;            /* lock */
    bool lost;                   /* lock: the master connection closed */
    em_conn_id conn;
    wexec *execs;
    uint32_t nexecs;
    char *kept[KEEP_EXEC_DIRS];  /* exited executors' dirs, oldest first (owned) */
    char *kept_app[KEEP_EXEC_DIRS];
    uint32_t nkept;
} worker;

/* ---------------------------------------------------------------- network thread */

/* Ids name directories under the worker's root (removed at reap): only [A-Za-z0-9_-], so
 * ".", "..", "a/b" and anything else a path could make of them are refused. */
static bool is_id(const char *v)
{
    return *v && strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
                     strlen(v);
}

static int copy_str(json_t *o, const char *key, char *out, size_t cap)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (!v || !*v || strlen(v) >= cap ||
        strchr(v, '/') || strstr(v, "..") ||
        ((strcmp(key, "app") == 0 || strcmp(key, "exec") == 0) && !is_id(v)))
        return -1;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

static int w_on_frame(void *ud, em_conn_id c, uint8_t type, em_slice p, em_err *err)
{
    worker *w = ud;
    order od = {0};
    json_t *o = type == EM_FRAME_RPC ? json_loadb((const char *)p.p, p.n, 0, NULL) : NULL;
    const char *t = json_string_value(json_object_get(o, "t"));
    int rc = 0;

    (void)c;
    if (!t) {
        rc = em_err_set(err, EM_EPROTO, "master sent a frame that is not an RPC message");
    } else if (strcmp(t, "registered_worker") == 0) {
        em_log(EM_LOG_INFO, "worker %s: registered with the master", w->id);
    } else if (strcmp(t, "launch_executor") == 0 || strcmp(t, "kill_executor") == 0) {
        od.launch = t[0] == 'l';
        const char *sec = json_string_value(json_object_get(o, "secret"));
        json_int_t cores = json_integer_value(json_object_get(o, "cores"));
        json_int_t mem = json_integer_value(json_object_get(o, "memory"));
        const char *xp = json_string_value(json_object_get(o, "port"));
        char h[EM_NET_HOST_MAX];
        uint16_t dp, lo, hi;
        em_err e2 = EM_ERR_INIT;
        if (copy_str(o, "app", od.app, sizeof od.app) < 0 ||
            copy_str(o, "exec", od.exec, sizeof od.exec) < 0 ||
            (od.launch && (copy_str(o, "driver", od.driver, sizeof od.driver) < 0 || !sec ||
                           strlen(sec) < 16 || cores < 1 || cores > 65536 || mem < 0 ||
                           em_net_addr_split(od.driver, h, sizeof h, &dp, 0, &e2) < 0 ||
                           (xp && (strlen(xp) >= sizeof od.port ||
                                   em_net_port_range_parse(xp, "port", &lo, &hi, &e2) < 0)))))
            rc = em_err_set(err, EM_EPROTO, "master: malformed %s%s%s", t, e2.code ? ": " : "",
                            e2.msg);
        if (rc == 0 && od.launch && xp)
            snprintf(od.port, sizeof od.port, "%s", xp);
        od.cores = (uint32_t)cores;
        od.memory = (uint64_t)mem;
        pthread_mutex_lock(&w->lock);
        if (rc == 0 && w->norders < MAX_ORDERS) {
            od.secret = od.launch ? em_xstrdup(sec) : NULL;
            w->orders[w->norders++] = od;
        }
        pthread_mutex_unlock(&w->lock);
    } else {
        em_log(EM_LOG_WARN, "worker %s: ignoring master message '%.32s'", w->id, t);
    }
    json_decref(o);
    return rc;
}

static void w_on_close(void *ud, em_conn_id c, const em_err *why)
{
    worker *w = ud;
    pthread_mutex_lock(&w->lock);
    if (c == w->conn) {
        w->lost = true;
        em_log(EM_LOG_WARN, "worker %s: lost the master: %s", w->id,
               why->code ? why->msg : "closed");
    }
    pthread_mutex_unlock(&w->lock);
}

static void w_on_open(void *ud, em_conn_id c, bool inbound)
{
    (void)ud;
    (void)c;
    (void)inbound;
}

static const em_net_ops worker_net_ops = {
    .on_open = w_on_open, .on_frame = w_on_frame, .on_close = w_on_close};

/* ---------------------------------------------------------------- executors */

static void send_msg(worker *w, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    em_err err = EM_ERR_INIT;
    json_decref(o);
    if (s && w->conn && em_net_send(w->net, w->conn, EM_FRAME_RPC, s, strlen(s), &err) < 0)
        em_log(EM_LOG_WARN, "worker %s: %s", w->id, err.msg);
    free(s);
}

/* The command executors run: the option, else $EMBER_BIN (as the driver of local-cluster
 * honours it), else this process's own executable. */
static const char *ember_bin(const worker *w, char *buf, size_t cap)
{
    if (w->o->ember_bin)
        return w->o->ember_bin;
    const char *env = getenv("EMBER_BIN");
    if (env && *env)
        return env;
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0)
        return "ember";
    buf[n] = '\0';
    return buf;
}

/* An environment equal to ours with EMBER_SECRET replaced (caller frees the array and
 * the one string it made: env[n-2]). */
static char **exec_env(const char *secret)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    char **env = em_xcalloc(n + 2, sizeof *env);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "EMBER_SECRET=", 13) != 0)
            env[k++] = environ[i];
    env[k] = em_xasprintf("EMBER_SECRET=%s", secret);
    return env;
}

static int spawn_exec(worker *w, const order *od, wexec *e, em_err *err)
{
    char bin[PATH_MAX], cores[16], mem[32];
    const char *b = ember_bin(w, bin, sizeof bin);
    char *out = em_xasprintf("%s/stdout", e->dir), *errp = em_xasprintf("%s/stderr", e->dir);
    snprintf(cores, sizeof cores, "%u", od->cores);
    snprintf(mem, sizeof mem, "%llum", (unsigned long long)(od->memory >> 20 ? od->memory >> 20 : 1));
    /* The executor command line of cli/cmd_executor.c. */
    const char *bind = w->o->host ? w->o->host : "127.0.0.1";
    char *argv[20] = {(char *)b, "executor", "--driver", (char *)od->driver, "--exec-id",
                      (char *)od->exec, "--cores", cores, "--memory", mem, "--work-dir", e->dir,
                      "--host", (char *)bind, "--advertise-host", (char *)w->adv, NULL};
    if (od->port[0]) {
        argv[16] = "--port";
        argv[17] = (char *)od->port;
    }
    char **env = exec_env(od->secret);
    size_t envn = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc;

    while (env[envn])
        envn++;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    rc = posix_spawn(&e->pid, b, &fa, &at, argv, env);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    em_free(env[envn - 1]);
    em_free(env);
    em_free(out);
    em_free(errp);
    if (rc != 0)
        return em_err_set(err, EM_EIO, "cannot start %s executor: %s", b, strerror(rc));
    return 0;
}

static void launch(worker *w, order *od)
{
    em_err err = EM_ERR_INIT;
    wexec e = {0};
    snprintf(e.app, sizeof e.app, "%s", od->app);
    snprintf(e.id, sizeof e.id, "%s", od->exec);
    e.dir = em_xasprintf("%s/%s/%s", w->root, od->app, od->exec);
    if (em_mkdir_p(e.dir, &err) < 0 || spawn_exec(w, od, &e, &err) < 0) {
        em_log(EM_LOG_ERROR, "worker %s: executor %s: %s", w->id, od->exec, err.msg);
        send_msg(w, json_pack("{s:s, s:s, s:s, s:i}", "t", "executor_exited", "app", od->app,
                              "exec", od->exec, "status", 127));
        em_rm_rf(e.dir, &err);
        em_free(e.dir);
        return;
    }
    em_log(EM_LOG_INFO, "worker %s: started executor %s (pid %d) for %s", w->id, e.id,
           (int)e.pid, e.app);
    w->execs = em_xrealloc(w->execs, (w->nexecs + 1) * sizeof *w->execs);
    w->execs[w->nexecs++] = e;
}

static void kill_exec(wexec *e)
{
    if (e->kill_s == 0) {
        e->kill_s = em_now_s();
        kill(-e->pid, SIGTERM);
    }
}

/* Keeps an exited executor's directory with its logs only (what a killed executor left,
 * shuffle files and blocks, can be large and goes now), dropping the oldest kept one (and
 * its app's dir when that is empty) past KEEP_EXEC_DIRS. Takes dir. */
static void keep_dir(worker *w, char *dir, const char *app)
{
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            !strcmp(de->d_name, "stdout") || !strcmp(de->d_name, "stderr"))
            continue;
        char *p = em_xasprintf("%s/%s", dir, de->d_name);
        em_err err = EM_ERR_INIT;
        em_rm_rf(p, &err);
        em_free(p);
    }
    if (d)
        closedir(d);
    if (w->nkept == KEEP_EXEC_DIRS) {
        em_err err = EM_ERR_INIT;
        em_rm_rf(w->kept[0], &err);
        rmdir(w->kept_app[0]);         /* fails while the app has other dirs */
        em_free(w->kept[0]);
        em_free(w->kept_app[0]);
        memmove(w->kept, w->kept + 1, (KEEP_EXEC_DIRS - 1) * sizeof *w->kept);
        memmove(w->kept_app, w->kept_app + 1, (KEEP_EXEC_DIRS - 1) * sizeof *w->kept_app);
        w->nkept--;
    }
    w->kept[w->nkept] = dir;
    w->kept_app[w->nkept++] = em_xasprintf("%s/%s", w->root, app);
}

static void reap(worker *w, bool report)
{
    for (uint32_t i = 0; i < w->nexecs;) {
        wexec *e = &w->execs[i];
        int st;
        pid_t r = waitpid(e->pid, &st, WNOHANG);
        if (r == 0) {
            if (e->kill_s && em_now_s() - e->kill_s > KILL_GRACE_S)
                kill(-e->pid, SIGKILL);
            i++;
            continue;
        }
        int status = r < 0 ? 255 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        bool failed = status && !e->kill_s;
        char how[64], tail[1024] = "", *errp = em_xasprintf("%s/stderr", e->dir);
        if (r < 0)
            snprintf(how, sizeof how, "could not be waited for");
        else if (WIFSIGNALED(st))
            snprintf(how, sizeof how, "was killed by signal %d (%s)", WTERMSIG(st),
                     em_deploy_signal_name(WTERMSIG(st)));
        else
            em_deploy_describe_exit(st, how, sizeof how);
        if (failed)
            em_deploy_log_tail(errp, TAIL_LINES, tail, sizeof tail);
        em_free(errp);
        em_log(failed ? EM_LOG_WARN : EM_LOG_INFO, "worker %s: executor %s %s; its logs are in "
               "%s%s%s", w->id, e->id, how, e->dir, *tail ? "; stderr ends:\n" : "", tail);
        if (report && !e->kill_s) {
            char *detail = em_xasprintf("%s%s%s", how, *tail ? "; its stderr ends: " : "", tail);
            send_msg(w, json_pack("{s:s, s:s, s:s, s:i, s:s}", "t", "executor_exited", "app",
                                  e->app, "exec", e->id, "status", status, "detail", detail));
            em_free(detail);
        }
        kill(-e->pid, SIGKILL);        /* anything the executor left in its group */
        keep_dir(w, e->dir, e->app);
        w->execs[i] = w->execs[--w->nexecs];
    }
}

static void run_orders(worker *w)
{
    order local[MAX_ORDERS];
    uint32_t n;
    pthread_mutex_lock(&w->lock);
    n = w->norders;
    memcpy(local, w->orders, n * sizeof *local);
    w->norders = 0;
    pthread_mutex_unlock(&w->lock);
    for (uint32_t i = 0; i < n; i++) {
        if (local[i].launch) {
            launch(w, &local[i]);
            em_standalone_free_secret(local[i].secret);
            continue;
        }
        for (uint32_t k = 0; k < w->nexecs; k++)
            if (!strcmp(w->execs[k].id, local[i].exec) && !strcmp(w->execs[k].app, local[i].app))
                kill_exec(&w->execs[k]);
    }
}

static void kill_all(worker *w)
{
    for (uint32_t i = 0; i < w->nexecs; i++)
        kill_exec(&w->execs[i]);
    while (w->nexecs) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        reap(w, false);
    }
}

/* ---------------------------------------------------------------- main loop */

static int connect_master(worker *w, em_err *err)
{
    int rc = em_net_connect(w->net, w->o->master_host, w->o->master_port, &w->conn, err);
    if (rc < 0) {
        w->conn = 0;
        return rc;
    }
    pthread_mutex_lock(&w->lock);
    w->lost = false;
    pthread_mutex_unlock(&w->lock);
    send_msg(w, json_pack("{s:s, s:s, s:s, s:i, s:I}", "t", "register_worker", "id", w->id,
                          "host", w->adv, "cores",
                          (json_int_t)w->o->cores, "memory", (json_int_t)w->o->memory));
    return 0;
}

/* Until *stop, or an authentication failure: a master that refuses our secret (or our
 * link mode) will refuse it every time, so that is final (EM_EAUTH), unlike an unreachable
 * master, which is retried every second. */
static int serve(worker *w, volatile sig_atomic_t *stop, em_err *out)
{
    double next_try = 0;
    bool warned = false;
    while (!*stop) {
        pthread_mutex_lock(&w->lock);
        bool lost = w->lost || !w->conn;
        pthread_mutex_unlock(&w->lock);
        if (lost && w->conn) {
            kill_all(w);          /* no master: nobody could stop them later */
            w->conn = 0;
        }
        if (!w->conn && em_now_s() >= next_try) {
            em_err err = EM_ERR_INIT;
            if (connect_master(w, &err) < 0) {
                if (err.code == EM_EAUTH) {
                    em_err_copy(out, &err);
                    return em_err_prefix(out, "worker %s: authentication with the master "
                                              "failed (final, not retried)", w->id);
                }
                if (!warned)
                    em_log(EM_LOG_WARN, "worker %s: cannot reach the master (%s); retrying",
                           w->id, err.msg);
                warned = true;
                next_try = em_now_s() + 1;
            } else {
                warned = false;
            }
        }
        run_orders(w);
        reap(w, true);
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

int em_worker_run(const em_worker_opts *o, volatile sig_atomic_t *stop, em_err *err)
{
    worker w = {.o = o};
    char host[256];
    int rc = 0;

    const char *tmp = o->work_dir ? o->work_dir : getenv("TMPDIR");
    if ((rc = em_mkdir_p(tmp && *tmp ? tmp : "/tmp", err)) < 0)
        return em_err_prefix(err, "worker: --work-dir");
    w.root = em_xasprintf("%s/ember-worker-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(w.root)) {
        rc = em_err_set(err, EM_EIO, "worker: cannot create %s: %s", w.root, strerror(errno));
        em_free(w.root);
        return rc;
    }
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    snprintf(w.id, sizeof w.id, "worker-%.20s-%d", host, (int)getpid());
    /* What the driver and other executors are told: --advertise-host, else --host, else
     * (listening on every interface) this machine's name. */
    em_net_advertised(o->host, o->advertise_host, w.adv, sizeof w.adv);
    if (strlen(w.adv) > 63) {
        em_free(w.root);
        return em_err_set(err, EM_EINVAL, "worker: advertised host '%s' is longer than 63 "
                          "bytes", w.adv);
    }
    pthread_mutex_init(&w.lock, NULL);
    em_net_opts no = {.secret = o->secret, .secret_len = strlen(o->secret),
                      .ops = &worker_net_ops, .ud = &w, .peer_timeout_ms = o->peer_timeout_ms,
                      .max_frame = EM_STANDALONE_MAX_MSG};
    if (!(w.net = em_net_new(&no, err))) {
        rc = err->code;
        goto out;
    }
    char ma[EM_NET_ADDR_MAX];
    em_net_addr_format(ma, sizeof ma, o->master_host, o->master_port);
    printf("worker %s: %u cores, %llu MiB, work dir %s, master %s, executors at %s\n", w.id,
           o->cores, (unsigned long long)(o->memory >> 20), w.root, ma, w.adv);
    fflush(stdout);
    rc = serve(&w, stop, err);
    kill_all(&w);
out:
    em_net_free(w.net);
    for (uint32_t i = 0; i < w.norders; i++)
        em_standalone_free_secret(w.orders[i].secret);
    em_free(w.execs);
    for (uint32_t i = 0; i < w.nkept; i++) {
        em_free(w.kept[i]);
        em_free(w.kept_app[i]);
    }
    em_err e2 = EM_ERR_INIT;
    em_rm_rf(w.root, &e2);
    em_free(w.root);
    pthread_mutex_destroy(&w.lock);
    return rc;
}
