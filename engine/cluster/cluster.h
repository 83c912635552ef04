/* engine/cluster/cluster.h - cluster mode, the driver's side: runs tasks in executor
 * processes (engine/executor; spawned by the driver for local-cluster[E,C], or started by a
 * standalone worker and connecting in). The wire protocol between them is docs/cluster.md
 * (engine/executor/protocol.h).
 *
 * LAYERING: cluster (level 9) sits above engine/sched, engine/exec and engine/task: it is
 * a task backend of engine/task (backend.c) over executor processes, and engine/api only
 * picks it for a context. Tasks and results are engine/task's types; nothing is mirrored.
 *
 * SECRETS: a secret is a byte string (>= 16 bytes). Executors read it from the
 * EMBER_SECRET environment variable or a --secret-file (contents, trailing newline
 * stripped); the driver generates a random one per application (64 hex characters) unless
 * one is given. Every connection (driver-executor, executor-executor) authenticates with
 * it (engine/net).
 *
 * THREADS: em_cluster_* driver functions may be called from any thread (concurrent jobs
 * run their task sets at once), except where noted. Callbacks in em_cluster_opts are called on the network thread
 * (map_outputs, store) or on the driver thread inside em_cluster_run_tasks (on_exec_lost,
 * request_executor). */
#ifndef EMBER_CLUSTER_H
#define EMBER_CLUSTER_H

#include <stdatomic.h>

#include "engine/base/base.h"
#include "engine/data/data.h"
#include "engine/executor/executor.h"
#include "engine/sched/sched.h"
#include "engine/task/task.h"
#include "shuffle/shuffle.h"
#include "storage/storage.h"

/* Tasks are em_task_desc and their results em_task_result (engine/task/task.h). A task's
 * pref_rdd/pref_part pick its executor: the one that last ran a successful task with the
 * same preference (it holds the block) when that one has a free core, waiting up to
 * locality_wait_ms for it while it is busy, and otherwise any. Tasks of sets with a lower
 * prio take free cores first (FIFO by job). cancel (NULL = none): once set, queued tasks
 * fail with EM_ECANCELED without running and running ones are sent `kill`. */

/* ---------------------------------------------------------------- driver */

typedef enum em_cluster_mode {
    EM_CLUSTER_SPAWN = 1,        /* start nexec `ember executor` processes (local-cluster) */
    EM_CLUSTER_ACCEPT = 2,       /* executors are started by someone else and connect in */
} em_cluster_mode;

typedef struct em_cluster_opts {
    em_cluster_mode mode;
    uint32_t nexec;              /* executors to spawn / to wait for; >= 1 */
    uint32_t cores;              /* SPAWN: --cores of each executor; >= 1 */
    const char *memory;          /* SPAWN: --memory of each executor ("1g"); NULL = default */
    const char *secret;          /* NUL-terminated, >= 16 bytes; NULL = a random one */
    const char *listen_host;     /* NULL = 127.0.0.1 (ember.driver.bindAddress) */
    uint16_t listen_port;        /* 0 = any (ember.driver.port) */
    uint16_t listen_port_hi;     /* > listen_port: a range, the first free port is taken */
    const char *advertise_host;  /* what executors are told (ember.driver.host); NULL =
                                    listen_host, or this machine's name when that is a
                                    wildcard (0.0.0.0, ::) */
    const char *exec_port;       /* SPAWN: executors' shuffle server port or range
                                    (ember.blockManager.port); NULL = any */
    const char *ember_bin;       /* SPAWN: the ember command; NULL = EMBER_BIN, else
                                    /proc/self/exe when named ember, else the build's */
    const char *work_dir;        /* SPAWN: parent of executors' work dirs; NULL = TMPDIR */
    const char *job_library;     /* path of the job library executors load (its sha256 is
                                    checked by them first); NULL = none */
    uint32_t register_timeout_ms;    /* wait for executors; 0 = 60000 */
    uint32_t heartbeat_ms;           /* 0 = 500 */
    uint32_t peer_timeout_ms;        /* silence that loses an executor; 0 = 10000 */
    /* ember.network.crypto for the driver's links and (SPAWN) its executors': EM_NET_CRYPTO_*
     * (engine/net/net.h); 0 = $EMBER_NETWORK_CRYPTO, else on. */
    int crypto;
    /* ember.network.crypto.cipher: the AEAD of pre-sealed broadcast pieces (em_cipher,
     * engine/net/net.h); 0 = EM_CIPHER_DEFAULT (AES-128-OCB). */
    int bcast_cipher;
    /* How long a task with a cached partition waits for the busy executor holding it
     * (ember.locality.wait) after the last task launched where its block is; 0 = 3000
     * (Spark's 3s); EM_CLUSTER_NO_LOCALITY_WAIT = never wait. */
    uint32_t locality_wait_ms;
    /* ember.locality.prefetch=false: no task is queued on a busy executor holding its
     * cached block (engine/cluster/cluster_int.h, PREFETCH); true (default) = up to three
     * per core. */
    bool no_prefetch;
    /* Settings every executor takes at registration: ember.memory.storageFraction (the
     * storage floor, 0..1), ember.shuffle.memory (per-task budget; 0 = executor memory /
     * 4 / cores), ember.net.compress (0 auto, 1 always, 2 never; engine/executor/protocol.h),
     * ember.shuffle.sync (fsync shuffle files) and ember.shuffle.compress.level (the zstd
     * level of shuffle files, spills and disk blocks; 0 = 1). */
    double storage_fraction;
    size_t shuffle_memory;
    uint32_t net_compress;
    bool shuffle_sync;
    int zstd_level;
    /* Serves executors' block requests (parallelized input, broadcasts). Borrowed. */
    em_block_store *store;
    /* Serves executors' map-output requests (the map-output tracker). Network thread. */
    int (*map_outputs)(void *ud, uint32_t sid, uint32_t reduce, em_shuffle_src **srcs,
                       uint32_t *n, em_err *err);
    void *map_ud;
    /* Driver thread, inside em_cluster_run_tasks: an executor whose shuffle server was
     * `loc` is gone; its map outputs are lost. */
    void (*on_exec_lost)(void *ud, const char *loc);
    void *lost_ud;
    /* ACCEPT mode: an executor was lost; ask for a replacement (NULL = none). SPAWN mode
     * starts one itself. Driver thread. */
    void (*request_executor)(void *ud);
    void *request_ud;
} em_cluster_opts;

#define EM_CLUSTER_NO_LOCALITY_WAIT UINT32_MAX

typedef struct em_cluster em_cluster;

/* Starts the listener and (SPAWN) the executor processes; does not wait for them. */
em_cluster *em_cluster_new(const em_cluster_opts *o, em_err *err);
/* "host:port" the driver listens on (for executors' --driver). Valid until free. */
const char *em_cluster_address(const em_cluster *c);
/* The application's secret (NUL-terminated; give it to executors as EMBER_SECRET). */
const char *em_cluster_secret(const em_cluster *c);
/* Waits until n executors have registered: 0, or EM_ETIMEDOUT naming how many came (and,
 * in SPAWN mode, how the executors that died exited). */
int em_cluster_wait_executors(em_cluster *c, uint32_t n, uint32_t timeout_ms, em_err *err);
uint32_t em_cluster_num_executors(em_cluster *c);   /* registered and alive; any thread */
uint32_t em_cluster_total_cores(em_cluster *c);     /* of those */
/* Slots of the executor table: open connections (registered or not) and lost executors
 * not yet reused; a closed connection's slot is reused by the next one. Any thread. */
uint32_t em_cluster_num_slots(em_cluster *c);
/* Runs n tasks on the executors and returns when each has a result in results[i] (passed
 * zeroed). A task whose executor is lost fails with EM_EIO "executor <id> lost"; a map
 * task's success is turned into such a failure when its executor is lost before this call
 * returns. <0 only when the cluster itself cannot continue (no executor for too long).
 * Several threads may call it at once (one task set each): the sets share the executors'
 * cores, lower tasks[].prio first. When tasks[i].cancel is set, the call returns once
 * none of its tasks runs any more (killed ones report EM_ECANCELED). Any thread. */
int em_cluster_run_tasks(em_cluster *c, const em_task_desc *tasks, size_t n,
                         em_task_result *results, em_err *err);
/* How executor exec_id's process ended (standalone: the worker's report through the
 * master, with the last lines of its stderr). When its connection closed first, its
 * running tasks were held for at most 2 s waiting for this, and fail now with both the
 * loss and this cause; when it comes first, the loss uses it. Any thread. */
void em_cluster_executor_exited(em_cluster *c, const char *exec_id, const char *cause);
/* Wakes every em_cluster_run_tasks call so that it acts on cancel flags now. Any thread. */
void em_cluster_wake(em_cluster *c);
/* Forgets where the partitions of rdd are cached (em_rdd_unpersist). Driver thread. */
void em_cluster_forget_rdd(em_cluster *c, uint32_t rdd);
/* Tells every live executor to drop the blocks of type btype (EM_BLOCK_*) whose first id is
 * a from its block store (a `drop` message; no reply): em_broadcast_destroy (BROADCAST, id)
 * and em_rdd_unpersist (RDD, rdd id). Best effort: a lost connection is only logged.
 * Returns the number of executors it was sent to. Driver thread. */
uint32_t em_cluster_drop_blocks(em_cluster *c, uint32_t btype, uint32_t a);
/* Sends broadcast `id` (value, as em_broadcast made it) to every live executor ahead of any
 * task that reads it, when it has at most 256 KiB (EM__BPUSH_MAX; a BPUSH frame:
 * docs/cluster.md), so that its tasks find it in their executor's store instead of asking
 * the driver for it (one round trip per executor and value, on the first task's path: an
 * iterative job broadcasts new small values every iteration). A bigger value, or an
 * executor registering later, goes the on-demand way; on sealed links its first pieces
 * are sealed now on a thread of their own, while the job that reads it is planned
 * (docs/security.md). Best effort: a failed send is only logged (the executor fetches the
 * value when a task needs it). Returns the number of executors it was sent to. Driver
 * thread (the caller of em_broadcast). */
uint32_t em_cluster_push_broadcast(em_cluster *c, uint32_t id, em_slice value);
/* Tells every live executor to delete the files of shuffle sid from its shuffle directory
 * (a `remove_shuffle` message; no reply), when the dataset that produced it dies
 * (em_rdd_release). The caller has already made the map-output tracker forget the shuffle,
 * and no job running or to come reads it. Executors that are gone are skipped (their
 * directories went with them); a lost connection is only logged. Returns the number of
 * executors it was sent to. Driver thread. */
uint32_t em_cluster_remove_shuffle(em_cluster *c, uint32_t sid);
/* Cache locality counters since em_cluster_new: tasks with a preference that ran on the
 * executor holding their block (local), that ran elsewhere although a holder was known
 * (missed: it was busy past the wait, lost, or where the previous attempt failed), and
 * (rdd, partition) locations known now. Any thread. */
/* Broadcast fetches served (requests for a value's first piece, one per executor that
 * needed the value) and the bytes in the live executors' block stores as each reported
 * with its last task status. Any thread. */
void em_cluster_bcast_stats(em_cluster *c, uint64_t *fetches, uint64_t *store_bytes);
void em_cluster_locality_stats(em_cluster *c, uint64_t *local, uint64_t *missed,
                               uint64_t *known);
/* Closes every connection (executors exit and remove their work dirs), reaps spawned
 * processes (SIGKILL after a grace period). NULL ok. */
void em_cluster_free(em_cluster *c);

/* ---------------------------------------------------------------- the task backend
 * (backend.c) The cluster backend of the scheduler: starts an em_cluster with cfg->opts
 * (its callbacks are set here: the tracker serves map outputs, lost executors' outputs are
 * unregistered), for ACCEPT mode asks the standalone client (em_deploy_master_ops) for
 * executors, and waits for them. Successful attempts' accumulator updates go to apply_acc
 * (NULL = dropped). Big stage blobs become broadcasts in opts.store. */
typedef struct em_cluster_backend_cfg {
    em_cluster_opts opts;
    const char *master_url;      /* ACCEPT: ember://host:port */
    em_map_tracker *tracker;     /* borrowed; outlives the backend */
    em_task_acc_fn apply_acc;
    void *acc_ud;
    em_cluster **cluster_out;    /* NULL, or set to the cluster (owned by the backend) */
} em_cluster_backend_cfg;
int em_cluster_backend_new(const em_cluster_backend_cfg *cfg, em_task_backend *out,
                           em_err *err);
/* ember.locality.wait as Spark writes it ("3s", "500ms", "1m", "1h", or ms; "0" = never
 * wait) into *ms (EM_CLUSTER_NO_LOCALITY_WAIT for 0). EM_EINVAL naming the value. */
int em_cluster_parse_locality_wait(const char *v, uint32_t *ms, em_err *err);

#endif /* EMBER_CLUSTER_H */
