/* engine/cluster/cluster_int.h - internals of engine/cluster (the driver's backend over
 * executor processes), shared by its files: the em_cluster state (driver.c has the DESIGN:
 * threads, locks, task sets, lost executors), the protocol it speaks with executors
 * (engine/executor/protocol.h), and the functions one file offers the others.
 *   driver.c       the cluster's life, the executor table, the loop thread's frames
 *   bcast_serve.c  serving broadcast pieces to executors
 *   placement.c    where a task runs: cache locality, retries away from failed executors
 *   launch.c       task sets: launching, cancelling, lost executors, em_cluster_run_tasks
 *   backend.c      the engine/task backend over all of it */
#ifndef EMBER_CLUSTER_INT_H
#define EMBER_CLUSTER_INT_H

#include <pthread.h>
#include <sys/types.h>

#include "engine/base/hmap.h"
#include "engine/cluster/cluster.h"
#include "engine/executor/protocol.h"
#include "engine/net/net.h"

typedef struct exec_slot {
    em_conn_id conn;
    bool registered, alive, lost_pending;
    char exec_id[EM__MAX_NAME + 1];
    char loc[128];
    uint32_t cores, running;
    pid_t pid;                   /* spawned by us (0 = not ours) */
    uint32_t *stages;            /* stage ids sent to it, oldest first (EM__STAGES_KEPT) */
    size_t nstages;
    uint64_t store_bytes;        /* its block store's size, from its last status */
    /* LOST, CAUSE PENDING (standalone): its connection closed; its running tasks stay
     * running until the master's report of how the process ended comes (em_cluster_
     * executor_exited) or cause_until (ms) passes, then fail with both reasons. */
    uint64_t cause_until;        /* 0 = not waiting */
    char lost_msg[EM_ERR_MSG_MAX + 96];
    char exit_cause[EM_ERR_MSG_MAX];   /* the report, when it came before the close */
} exec_slot;
#define EM__CL_CAUSE_WAIT_MS 2000   /* how long a lost executor's tasks wait for its cause */

typedef struct spawned {
    char exec_id[32];
    pid_t pid;
    bool reaped;
    bool status_kept;   /* reaped by em__cl_reap after it registered: status is its end */
    int status;         /* waitpid's */
} spawned;

enum { T_QUEUED = 0, T_RUNNING, T_DONE };

/* Where the last attempt of a task failed, so that its retry goes elsewhere when it can. */
typedef struct failed_at {
    uint32_t stage, part;
    bool is_map;
    char exec_id[EM__MAX_NAME + 1];
} failed_at;
#define MAX_FAILED_AT 4096       /* remembered failures (oldest forgotten first) */

/* One known cached block, a slot of c->locs (engine/base/hmap.h). */
typedef struct loc_ent {
    uint32_t h32;                /* em_hmap hash of key */
    uint8_t used;                /* 0 = empty slot */
    int32_t slot;                /* executor slot holding it */
    uint64_t key;                /* rdd << 32 | partition */
} loc_ent;
#define MAX_LOCS ((size_t)1 << 20)   /* past this, every entry is forgotten (hints only) */

typedef struct inflight {
    int state;
    int slot;                    /* exec slot it runs on */
    em_batch **batches;          /* received result batches */
    size_t nb;
    em_vbuf part;                /* chunks of the result block being received */
    size_t part_size;            /* its size from its header; 0 = not known yet */
    bool end_told;               /* em_task_desc.on_end called */
    bool start_pending;          /* queued behind a running task (PREFETCH): on_start
                                  * waits until a core of its executor is its own */
} inflight;

/* One em_cluster_run_tasks call's tasks (c->sets, c->lock). */
typedef struct task_set {
    const em_task_desc *t;
    inflight *fl;
    em_task_result *res;
    size_t n;
    uint64_t base, prio;
    bool canceled;               /* its cancel was acted on */
    struct task_set *next;
} task_set;
/* Broadcast values the loop thread serves pieces of (a few, most recent first), so that a
 * piece request does not look the block up (or read it from disk) each time, nor compute a
 * piece's crc32c again for every executor. */
typedef struct bcast_ent {
    uint32_t id;                 /* 0 = empty */
    em_batch *batch;             /* reference */
    em_slice value;              /* borrowed from batch */
    uint64_t *crcs;              /* per piece: crc | 1 << 32 once computed; NULL = none yet */
    struct em__bcast_sealed *sealed;   /* sealed links: the pieces sealed once (reference) */
} bcast_ent;
/* Drops a reference to a broadcast's sealed pieces (bcast_serve.c); NULL ok, any thread. */
struct em__bcast_sealer;
void em__bcast_sealed_unref(struct em__bcast_sealed *s);
/* Starts sealing broadcast id's pieces on the sealer thread (sealed links, a value fetched
 * in pieces), ahead of the requests (bcast_serve.c). Any thread; failures only log. */
void em__cl_preseal(em_cluster *c, uint32_t id);
/* Stops and joins the sealer thread, frees it (NULL ok). Once the loop thread is gone. */
void em__cl_sealer_free(struct em__bcast_sealer *sr);
#define BCAST_CACHE 4

struct em_cluster {
    em_cluster_opts o;
    char *secret, *library, *listen_host, *memory, *work_dir, *bin, *exec_port;
    char sha[65];
    char addr[EM_NET_ADDR_MAX];
    em_net *net;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    exec_slot *ex;               /* lock */
    size_t nex;
    spawned *sp;                 /* driver thread */
    size_t nsp;
    uint32_t next_exec;
    pthread_mutex_t proc_lock;   /* sp, nsp, next_exec once running (see DESIGN) */
    task_set *sets;              /* in flight (lock) */
    uint64_t next_id;            /* lock */
    failed_at *fails;            /* driver thread */
    size_t nfails;
    bool closing;                /* em_cluster_free runs: losses are expected */
    em_hmap locs;                /* of loc_ent: cached block -> executor slot (lock) */
    uint64_t wait_ms;            /* locality wait; 0 = none */
    bool prefetch;               /* PREFETCH below (ember.cluster.prefetch) */
    uint64_t last_local_ms;      /* last launch on a task's block executor (lock) */
    uint64_t nlocal, nmissed;    /* locality counters (lock) */
    bcast_ent bcache[BCAST_CACHE];   /* loop thread (drop: lock) */
    uint64_t bcast_fetches;      /* piece-0 requests served (lock) */
    struct em__bcast_sealer *sealer;   /* sealed links: seals pieces ahead (made under lock) */
};

/* PREFETCH. A task whose cached block is on a busy executor is launched there anyway, up to
 * this many per core beyond the running ones: the executor queues it and starts it the
 * moment its core frees, instead of idling for a round trip (status to the driver, the
 * driver's thread waking, the launch back), which costs 0.3-0.6 ms a task on a loaded
 * 2-core host: 15 tasks of 5 ms each lost 8 ms an iteration in k-means. Only tasks with a
 * known cache location are queued (they would wait for that executor anyway, the locality
 * wait), and only for the set at the head of the FIFO. Three per core, not one: on a host
 * where the driver's threads wait behind busy cores, one round trip can outlast a task
 * (the executor then idled with its one queued task done), and a deeper queue takes no
 * task away from another executor that the locality wait would have given it. */
#define EM__CL_PREFETCH_PER_CORE 3

typedef struct launch {
    size_t task;
    em_conn_id conn;
    bool send_stage;
} launch;

/* ---------------------------------------------------------------- driver.c */
/* Milliseconds on the monotonic clock. */
uint64_t em__cl_now_ms(void);
int em__cl_send_msg(em_cluster *c, em_conn_id to, const em__msg *m, em_err *err);
int em__cl_send_data(em_cluster *c, em_conn_id to, uint8_t kind, uint64_t id, const void *p,
                     size_t n, em_err *err);
int em__cl_spawn_one(em_cluster *c, em_err *err);
bool em__cl_reap(em_cluster *c, char *why, size_t n);
void em__cl_kill_spawned(em_cluster *c, const char *exec_id);
uint32_t em__cl_alive_count(em_cluster *c, uint32_t *cores);
void em__cl_timed_wait(em_cluster *c, uint32_t ms);

/* ---------------------------------------------------------------- bcast_serve.c */
/* Loop thread: a `bcast` request (pieces of a broadcast value, or a block_reply error). */
void em__cl_on_bcast(em_cluster *c, em_conn_id id, const em__msg *m);

/* ---------------------------------------------------------------- placement.c
 * All with c->lock held. */
void em__cl_loc_drop(em_cluster *c, int slot, uint32_t rdd);
void em__cl_note_locations(em_cluster *c, const em_task_desc *t, size_t n,
                           const inflight *fl, const em_task_result *res);
void em__cl_note_failures(em_cluster *c, const em_task_desc *t, size_t n,
                          const em_task_result *res);
size_t em__cl_assign(em_cluster *c, task_set *ts, launch *out);

void em__cl_lost_now(em_cluster *c, exec_slot *s, const char *cause);   /* lock held */

/* ---------------------------------------------------------------- launch.c */
void em__cl_process_losses(em_cluster *c);
launch em__cl_launch_on(em_cluster *c, task_set *ts, size_t i, int e, bool queued);

#endif /* EMBER_CLUSTER_INT_H */
