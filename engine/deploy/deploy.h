/* engine/deploy/deploy.h - deploying an application's executors: the standalone cluster
 * manager (the master daemon tracks workers and applications and grants executors; the
 * worker daemon starts and watches `ember executor` processes), the driver's client of the
 * master, and spawning the executor processes of a local-cluster[E,C] driver.
 * docs/standalone.md has every message.
 *
 * LAYERING: deploy sits above engine/ui (the master's status page uses its HTTP server)
 * and below engine/cluster: its driver spawns executors with em_deploy_spawn_executor, and
 * the cluster backend asks an ember:// master for executors through the hook below
 * (em_deploy_master_ops).
 *
 * TRUST: every connection to a daemon authenticates with the cluster secret (engine/net:
 * HMAC challenge-response before any frame body is read). The application's own secret
 * (driver <-> executors) travels driver -> master -> worker inside those authenticated
 * connections and reaches the executor in its environment (EMBER_SECRET), never on a
 * command line. Daemons never load job code: the executor does, after checking its hash.
 *
 * THREADS: em_master_* bookkeeping functions lock the master's mutex and may be called from
 * any thread (the daemon calls them on its network thread, the status page on its HTTP
 * thread). em_master_run / em_worker_run block the calling thread until *stop is set. */
#ifndef EMBER_DEPLOY_H
#define EMBER_DEPLOY_H

#include <signal.h>
#include <sys/types.h>

#include "engine/base/base.h"

#define EM_STANDALONE_DEFAULT_PORT 7077
#define EM_STANDALONE_DEFAULT_UI_PORT 8080
#define EM_STANDALONE_MAX_MSG 65536u     /* bytes of one control message (JSON) */

/* Parses "ember://HOST:PORT" (PORT optional: 7077; an IPv6 HOST in brackets,
 * "ember://[::1]:7077") into host (cap bytes, without brackets) and *port.
 * EM_EINVAL naming the URL when it is not one. */
int em_standalone_parse_url(const char *url, char *host, size_t cap, uint16_t *port,
                            em_err *err);
/* Reads a secret: the file's contents (trailing newlines stripped) when path is set, else
 * $EMBER_SECRET, which is then removed from the environment (unsetenv: call before other
 * threads start). EM_EINVAL when neither, when shorter than 16 bytes, or when the file is
 * not this user's or group/other may access it (the message gives the chmod). Caller frees
 * with em_standalone_free_secret. Main thread. */
char *em_standalone_read_secret(const char *path, em_err *err);
/* Zeroes (OPENSSL_cleanse) and frees a secret string. NULL ok. Any thread. */
void em_standalone_free_secret(char *s);

/* ---------------------------------------------------------------- master bookkeeping
 * The master's whole state machine, free of I/O: feed it the frames and closes of its
 * connections; it answers through `send` (one JSON message to a connection).
 * Connections are opaque ids. The daemon (em_master_run) wires these to engine/net. */
typedef struct em_master em_master;
typedef struct em_master_io {
    int (*send)(void *ud, uint64_t conn, const char *json, size_t len);
    void *ud;
} em_master_io;

em_master *em_master_new(const em_master_io *io);
void em_master_free(em_master *m);                       /* NULL ok */
/* One RPC message from conn. <0 (err set) when the message is malformed or not allowed
 * from this peer: the caller closes the connection (the master forgets it first). */
int em_master_on_message(em_master *m, uint64_t conn, const uint8_t *p, size_t n,
                         em_err *err);
/* conn closed: a worker is lost (its executors with it), a driver is gone (its
 * application ends: its executors are killed). */
void em_master_on_close(em_master *m, uint64_t conn);
/* {"workers":[...],"apps":[...],"completed_apps":[...]} (em_free). */
char *em_master_json(em_master *m);
/* Counts, for tests and logs. */
uint32_t em_master_num_workers(em_master *m);
uint32_t em_master_num_apps(em_master *m);

/* ---------------------------------------------------------------- daemons */

typedef struct em_master_opts {
    const char *host;            /* bind address; NULL = 127.0.0.1 ("0.0.0.0", "::": all) */
    const char *advertise_host;  /* printed in the URL to give workers and drivers; NULL =
                                    host, or this machine's name when host is a wildcard */
    uint16_t port;               /* 0 = any (printed on stdout) */
    const char *ui_host;         /* NULL = 127.0.0.1 (the page needs no secret) */
    int ui_port;                 /* 0 = off, -1 = any free one */
    const char *secret;          /* cluster secret, >= 16 bytes */
    uint32_t peer_timeout_ms;    /* silent workers/drivers are dropped; 0 = 10000 */
} em_master_opts;

/* Serves until *stop becomes non-zero. Prints "master listening on ember://H:P" and
 * "master ui on http://H:P" on stdout once bound. */
int em_master_run(const em_master_opts *o, volatile sig_atomic_t *stop, em_err *err);

typedef struct em_worker_opts {
    const char *master_host;     /* required */
    uint16_t master_port;
    const char *host;            /* where executors listen; NULL = 127.0.0.1 ("0.0.0.0",
                                    "::": every interface) */
    const char *advertise_host;  /* what the driver and other executors are told (SPARK's
                                    advertised address); NULL = host, or this machine's
                                    name when host is a wildcard */
    uint32_t cores;              /* 0 = online CPUs */
    uint64_t memory;             /* bytes; 0 = 4 GiB */
    const char *work_dir;        /* NULL = $TMPDIR/ember-worker-<pid> (made, removed at exit) */
    const char *secret;          /* cluster secret */
    const char *ember_bin;       /* the ember command; NULL = $EMBER_BIN, else /proc/self/exe */
    uint32_t peer_timeout_ms;    /* 0 = 10000 */
} em_worker_opts;

/* Registers with the master and runs executors on its orders until *stop; reconnects
 * (every second) when the master goes away, killing its executors meanwhile. Kills every
 * executor and removes every directory it made before returning. */
int em_worker_run(const em_worker_opts *o, volatile sig_atomic_t *stop, em_err *err);

/* ---------------------------------------------------------------- the driver's client */

typedef struct em_standalone_app {
    const char *name;            /* application name shown by the master */
    uint32_t total_cores;        /* --total-executor-cores; 0 = as many as there are */
    uint32_t executor_cores;     /* cores per executor; 0 = all free cores of a worker */
    uint64_t executor_memory;    /* bytes per executor; 0 = 1 GiB */
    const char *cluster_secret;  /* to authenticate with the master (copied) */
    uint32_t wait_ms;            /* for the first executor grant; 0 = 30000 */
    const char *executor_port;   /* executors' shuffle server port or range
                                    (ember.blockManager.port); NULL = any */
} em_standalone_app;

/* Installs the ember:// master hook (em_deploy_set_master_ops): when a context is created
 * with master ember://HOST:PORT, it registers the application with the master, which has
 * workers start the executors. Call before em_context_new; free the client (which
 * uninstalls the hook) after the context is freed. Main thread. */
typedef struct em_standalone_client em_standalone_client;
em_standalone_client *em_standalone_install(const em_standalone_app *app, em_err *err);
void em_standalone_client_free(em_standalone_client *c);     /* NULL ok */

/* ---------------------------------------------------------------- the ember:// master hook
 * Masters "ember://HOST:PORT": em_context_new starts an ACCEPT-mode em_cluster (listening on
 * conf ember.driver.host, default 127.0.0.1), then calls app_start so that the standalone
 * client registers the application with the master (which has workers start `ember
 * executor --driver <driver_addr>` with EMBER_SECRET=<secret>); then it waits for *nexec
 * executors. request_executor is called when one is lost; app_end when the context ends.
 * Register once per process, before creating contexts (NULL ops = none); main thread. */
/* watch_exits: from now on, how each executor of the application ended (the master's
 * executor_removed: exit status or signal and the last lines of its stderr) goes to
 * fn(fn_ud, exec_id, reason), on the client's network thread; fn NULL stops it (before
 * fn_ud goes away). Optional (NULL = no reports). */
typedef void (*em_deploy_exit_fn)(void *fn_ud, const char *exec_id, const char *reason);
typedef struct em_deploy_master_ops {
    int (*app_start)(void *ud, const char *master_url, const char *driver_addr,
                     const char *secret, uint32_t *nexec, em_err *err);
    void (*request_executor)(void *ud);
    void (*app_end)(void *ud);
    void (*watch_exits)(void *ud, em_deploy_exit_fn fn, void *fn_ud);
    void *ud;
} em_deploy_master_ops;
void em_deploy_set_master_ops(const em_deploy_master_ops *ops);
const em_deploy_master_ops *em_deploy_master_ops_get(void);    /* NULL when unset */

/* ---------------------------------------------------------------- spawning executors (spawn.c) */

typedef struct em_deploy_spawn_args {
    const char *bin;         /* the ember command */
    const char *driver;      /* "host:port" */
    const char *exec_id;
    uint32_t cores;
    const char *memory;      /* NULL = default */
    const char *work_dir;    /* NULL = default */
    const char *secret;      /* passed as EMBER_SECRET in the environment */
    int crypto;              /* EM_NET_CRYPTO_*: ON/OFF set EMBER_NETWORK_CRYPTO for the
                                child, ENV (0) leaves it inherited */
    const char *port;        /* --port of its shuffle server ("7100-7110"); NULL = any */
} em_deploy_spawn_args;

/* The ember command: given, else $EMBER_BIN, else /proc/self/exe when it is named ember,
 * else the build's then the install's path. NULL when none exists. Caller frees. */
char *em_deploy_ember_bin(const char *given);
/* posix_spawns `bin executor --driver ... --exec-id ... --cores ...` with the secret in its
 * environment; *pid gets the child. EM_EIO naming the executor when it cannot start. */
int em_deploy_spawn_executor(const em_deploy_spawn_args *a, pid_t *pid, em_err *err);
/* "exited with status 1", "was killed by signal 9" for a waitpid status. */
void em_deploy_describe_exit(int status, char *buf, size_t n);
/* "SIGKILL", "SIGSEGV", ... for the usual signals, "signal" otherwise. Any thread. */
const char *em_deploy_signal_name(int sig);
/* The last lines of a log file (at most max_lines lines and n - 1 bytes, whole lines when
 * they fit; control bytes other than '\n' shown as '?') into buf; "" when the file is
 * missing or empty. Reads only the file's last n bytes. Any thread. */
void em_deploy_log_tail(const char *path, int max_lines, char *buf, size_t n);

#endif /* EMBER_DEPLOY_H */
