/* engine/executor/executor_int.h - internals shared by the files of engine/executor: the
 * executor's state (executor.c has the DESIGN: threads, locks, files) and the requests
 * task threads make (requests.c). */
#ifndef EMBER_EXECUTOR_INT_H
#define EMBER_EXECUTOR_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/exec/exec.h"
#include "engine/executor/protocol.h"
#include "engine/net/net.h"
#include "engine/plan/plan.h"
#include "shuffle/remote.h"

typedef struct pending {
    uint64_t req;
    em_conn_id conn;
    bool done;
    int code;
    em_err err;
    em__msg reply;               /* block_reply / map_outputs_reply */
    em_batch **batches;          /* block batches received so far */
    size_t nb;
    em_vbuf *seg;                /* segment bytes go here */
    uint64_t seg_max;            /* ... up to this length (the told size), else an error */
    /* bcast requests: the value being assembled; pieces asked for so far */
    bool is_bcast;
    uint32_t bcast_id, asked;
    em__bcast_asm as;
    struct pending *next;
} pending;

/* A stage's JSON, shared by the queued and running tasks of the stage (refs under
 * x->lock); its address stays the same for all of them, so a task thread's decoded-stage
 * cache (engine/exec/task.c) hits for every task after the first. */
typedef struct stage_ent {
    uint32_t id;
    char *json;
    size_t len;
    uint32_t refs;
} stage_ent;

typedef struct task_item {
    uint64_t id;
    uint32_t stage, part, attempt;
    bool is_map;
    bool killed;                 /* a kill came while it was queued */
    stage_ent *st;               /* reference taken when the launch arrived; NULL = unknown */
} task_item;

/* What a task thread runs now (x->slots, x->lock). */
typedef struct run_slot {
    bool busy;
    uint64_t id;                 /* task id while busy */
    atomic_bool cancel;          /* the task's cancel flag (em_exec_env.cancel) */
} run_slot;

/* A broadcast some task thread is fetching: later readers wait for it (one fetch per
 * executor and value) and take their reference from it. */
typedef struct bcast_fetch {
    uint32_t id;
    bool done;
    int code;                    /* 1 found, 0 absent, <0 error */
    em_err err;
    em_batch *batch;             /* the value, when found */
    uint32_t refs;               /* the fetcher and each waiter */
    struct bcast_fetch *next;
} bcast_fetch;

typedef struct executor {
    const em_executor_opts *o;
    em_net *net;
    em_conn_id driver;
    pthread_mutex_t lock;
    /* Three conditions, so that a frame wakes only the thread it concerns (one shared
     * condition woke the main thread and every task thread on every frame: 4-5 context
     * switches a task, half of the cluster's overhead on small tasks):
     *   cond   requests' answers, registration, broadcast fetches, x->running for stop
     *   qcond  the task queue (task threads wait for a launch or stop)
     *   gone   driver_gone (the main thread's only wait) */
    pthread_cond_t cond, qcond, gone;
    bool got_registered, driver_gone, stop;
    em__msg reg;                 /* the registered reply */
    em_codec wire_codec;         /* for result batches to the driver (ember.net.compress) */
    stage_ent **stages;          /* oldest first; at most EM__STAGES_KEPT (docs/cluster.md) */
    size_t nstages;
    bcast_fetch *bfetch;         /* broadcast fetches under way */
    task_item *queue;
    size_t qhead, qtail, qcap;
    pending *pend;
    uint64_t next_req;
    em_shuffle_remote *remote;   /* peers' shuffle servers (shuffle/remote.c) */
    char **locs;                 /* interned */
    size_t nlocs;
    uint32_t running;
    char loc[128];
    char *work, *shuffle_dir, *spill_dir;
    em_shuffle_cleaner *cleaner; /* deletes dead shuffles' files off the loop thread */
    em_memory_manager *mm;       /* shares o->memory between tasks and cached blocks */
    em_block_store *store;
    em_exec_env env;             /* what every task sees of the executor */
    pthread_t *threads;
    uint32_t nthreads;
    run_slot *slots;             /* one per task thread (lock) */
} executor;

/* ---------------------------------------------------------------- requests.c
 * Sending (any thread: em_net queues the frame for the loop thread). */
int em__x_send_msg(executor *x, em_conn_id c, const em__msg *m, em_err *err);
int em__x_send_data(executor *x, em_conn_id c, uint8_t kind, uint8_t flags, uint64_t id,
                    const void *p, size_t n, em_err *err);
/* Requests: a task thread's pending request (x->lock for the list). */
pending *em__x_find_pending(executor *x, uint64_t req, em_conn_id c);   /* lock held */
int em__x_start_request(executor *x, em_conn_id c, em__msg *m, pending *p, em_vbuf *seg,
                        em_err *err);
/* As em__x_start_request, the segment's bytes bounded: seg->len never passes seg_max. */
int em__x_start_request_seg(executor *x, em_conn_id c, em__msg *m, pending *p, em_vbuf *seg,
                            uint64_t seg_max, em_err *err);
void em__x_pending_free(pending *p);
/* Fails the pending requests on connection c (it closed). Lock held. */
void em__x_fail_pending(executor *x, em_conn_id c, int code, const char *why);
/* em_exec_env callbacks (ud = the executor): map outputs and blocks from the driver. */
int em__x_map_outputs(void *ud, uint32_t sid, uint32_t reduce, em_shuffle_src **srcs,
                      uint32_t *n, em_err *err);
int em__x_fetch_block(void *ud, em_block_id id, em_batch ***out, size_t *n, em_err *err);
/* em_shuffle_remote's request (ud = the executor): a `fetch` to a peer's shuffle server. */
int em__x_request_segment(void *ud, em_conn_id conn, uint32_t sid, uint32_t mid,
                          uint32_t reduce, uint64_t size, em_vbuf *out, em_err *err);

#endif /* EMBER_EXECUTOR_INT_H */
