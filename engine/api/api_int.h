/* engine/api/api_int.h - internals shared by the files of engine/api only: the context and
 * dataset handle structs and the helpers that build plan nodes and run jobs.
 *
 * FILES, one concern each, bottom-up: a file calls only files on lines above its own
 * (tests/check_calls.sh checks the object files: no circle).
 *   conf.c release.c fns.c node.c   configuration; handle lifetimes (release, what dies with
 *                                   a node); the API's own task functions; making nodes
 *   job.c persist.c inspect.c       running a job (and job groups); persist/cache;
 *                                   what a dataset tells about itself
 *   sources.c transform.c           parallelize, range, text files; narrow transformations
 *   pairs.c                         by-key operations, joins, sorts, partition_by
 *   actions.c save.c checkpoint.c   actions; save_as_text_file; checkpoints
 *   aggregate.c                     reduce, fold, aggregate, tree and in-place aggregation
 *   backend.c                       the local and cluster task backends
 *   context.c                       the context: settings, runtime, broadcasts, accumulators
 * Setting a node's functions, blobs, partitioning and error is engine/plan's
 * (em_plan_node_set_*, em_plan_node_fail: engine/plan/build.c).
 * THREADS (engine/ember.h): any number of threads may build plans and run actions on one
 * context. sc->lock (recursive) guards the plan graph, the handle list, node reference
 * counts, accumulators and job groups; it is held only for such bookkeeping, never across
 * a job. Counters that only grow are atomics. */
#ifndef EMBER_API_INT_H
#define EMBER_API_INT_H

#include <pthread.h>

#include "engine/ember.h"
#include "engine/cluster/cluster.h"
#include "engine/exec/exec.h"
#include "engine/plan/plan.h"
#include "engine/sched/sched.h"
#include "storage/storage.h"

/* A dataset handle: the context and the plan node it names (node->id is the RDD id). The
 * handle holds one reference on the node (em_plan_node.refs) until its last hold is
 * released; em_rdd_release then points it at sc->released, so a released handle stays safe
 * to pass in. Several handles may name one node. */
struct em_rdd {
    em_context *sc;
    em_plan_node *node;
    uint32_t holds;              /* times the API returned this handle and the program has
                                  * not released it yet (coalesce / partition_by may return
                                  * their argument); 0 once released */
};

typedef struct em__acc {
    char *name;
    int64_t i64;
    double f64;
} em__acc;

struct em_context {
    em_conf *conf;               /* effective configuration (owned) */
    char *app_dir;               /* ember-app-XXXXXX (removed on free) */
    char *shuffle_dir, *spill_dir;
    uint32_t nthreads;           /* task threads (local) or E * C (local-cluster[E,C]) */
    uint32_t nexec;              /* local-cluster[E,C]: E; 0 otherwise */
    bool remote;                 /* ember://host:port */
    uint32_t default_par;
    size_t executor_mem, shuffle_mem;
    int zstd_level;
    bool shuffle_sync;           /* ember.shuffle.sync */
    uint32_t max_failures;
    em_memory_manager *mm;       /* execution + storage memory of the driver's tasks (owned) */
    double storage_fraction;     /* ember.memory.storageFraction */
    uint32_t net_compress;       /* ember.net.compress: 0 auto, 1 true, 2 false */
    em_block_store *store;
    em_map_tracker *tracker;
    em_shuffle_cleaner *cleaner; /* local mode: deletes dead shuffles' files under
                                    shuffle_dir off the driver thread (owned); NULL in
                                    cluster mode, where each executor has its own */
    em_cluster *cluster;         /* cluster mode: borrowed from the scheduler's backend, for
                                    dropping executors' blocks; NULL in local mode */
    em_sched *sched;
    struct em_status *status;    /* status page, event log, progress bar (owned) */
    em_plan_graph *graph;
    em_plan_node *released;      /* what released handles name: a node of the graph with the
                                    error "dataset released" (made on the first release;
                                    holds a reference of its own, so it never dies) */
    em_rdd **rdds;               /* every handle made (owned), freed with the context */
    size_t nrdds, rdds_cap;
    _Atomic uint32_t next_shuffle_id;
    _Atomic uint32_t next_broadcast_id;
    _Atomic uint64_t seed_counter;   /* fresh seeds for round-robin shuffles */
    em__acc *accs;               /* accumulator id i is accs[i - 1] (lock) */
    uint32_t naccs;
    pthread_mutex_t lock;        /* recursive; see THREADS above */
    struct em__group *groups;    /* job group per driver thread (lock) */
    size_t ngroups;
};

/* A driver thread's job group (em_set_job_group): threads are told apart by a serial
 * number each thread draws once (pthread_t values are reused after a thread exits). */
typedef struct em__group {
    uint64_t thread;
    char *name;                  /* owned */
} em__group;

/* ---------------------------------------------------------------- conf.c */
/* Copies every entry of src into dst keeping sources' priorities. */
int em__conf_merge(em_conf *dst, const em_conf *src);
/* em_conf_check_key on every key set by a file, a default or em_conf_set (conf.c). */
int em__conf_check_keys(const em_conf *c, em_err *err);

/* ---------------------------------------------------------------- save.c */
/* path made absolute against the working directory (as is when absolute, or when the
 * directory is unknown); caller frees. The driver's paths go to executors in this form. */
char *em__api_abs_path(const char *path);

/* ---------------------------------------------------------------- appdir.c */
/* Writes app_dir/owner ("<pid> <host>"), which marks the directory as this process's. */
int em__app_dir_claim(const char *app_dir, em_err *err);
/* Removes base/ember-app-* directories of this user whose owner process (on this host) is
 * gone; returns how many. Never fails: what cannot be removed is logged and left. */
int em__app_dirs_sweep(const char *base);

/* ---------------------------------------------------------------- release.c */
/* Returns r itself to the program once more (one more hold). */
em_rdd *em__rdd_again(em_rdd *r);
/* Releases an internal handle (one the user never saw: the steps of distinct, cogroup,
 * count_by_key, ...) and frees the handle itself. NULL ok. Never pass a user's handle. */
void em__rdd_drop(em_rdd *r);
/* Takes a reference on the node r names (atomically with reading it) for a running job,
 * so that r released by another thread meanwhile cannot free what the job reads
 * (em__run_job); em__node_unhold drops it. */
em_plan_node *em__rdd_hold(em_rdd *r);
void em__node_unhold(em_context *sc, em_plan_node *n);
/* Whether r was released (it names sc->released). */
bool em__rdd_is_released(const em_rdd *r);
/* Drops the cached partitions of rdd id everywhere (driver store, executors' stores and the
 * cluster's locality table): em_rdd_unpersist and a persisted node's death. */
void em__drop_rdd_blocks(em_context *sc, uint32_t rdd);

/* ---------------------------------------------------------------- fns.c */
/* Registers the API's own functions (em.tree_rekey, em.aggregate_acc_partition); once per
 * process. */
void em__api_register_fns(void);

/* ---------------------------------------------------------------- node.c */
/* Wraps node in a new handle owned by sc (taking a reference on the node). */
em_rdd *em__rdd_wrap(em_context *sc, em_plan_node *n);
/* New node with parents (taking a reference on each); copies the first parent error into
 * the node. */
em_plan_node *em__node_new(em_context *sc, em_op op, em_plan_node *const *parents,
                           uint32_t np, const char *name);
/* A SHUFFLED node over parent with a fresh shuffle id; the caller sets map_part, mode,
 * flags and part spec. */
em_plan_node *em__node_shuffled(em_context *sc, em_plan_node *parent, uint32_t nparts,
                                const char *name);
/* Target HASH spec of a pair op: nparts, else parent's spec size, else default. */
em_part_spec em__hash_target(em_context *sc, const em_plan_node *parent, uint32_t nparts);
/* Builds the reduce side of a pair op on parent with the target spec: LOCAL_REDUCE when the
 * parent is already so partitioned, SHUFFLED otherwise. */
em_plan_node *em__build_reduce(em_context *sc, em_plan_node *parent, const em_part_spec *target,
                               em_reduce_mode mode, uint32_t flags, const char *name);
/* The reduce side of an in-place by-key aggregation of r (EM_NODE_ACC, map-side combine):
 * add (EM_FN_ACC_ADD) folds values, or NULL when the values are accumulators already
 * (merged with a->merge). Plan errors go into the node. */
em_plan_node *em__acc_node(em_rdd *r, const em_agg *a, const char *add, uint32_t nparts,
                           const char *name);

/* ---------------------------------------------------------------- job.c */
/* Runs a job over parts (NULL = 0..nparts-1) of r in the calling thread's job group;
 * results[nparts] zeroed by the caller, destroyed by the caller also on failure. A plan
 * error of r is returned as is. */
int em__run_job(em_rdd *r, const em_result_spec *res, const uint32_t *parts, uint32_t nparts,
                em_task_result *results, em_err *err);
/* A job over every partition; returns the results array (node->nparts entries; free with
 * em__results_free also on failure) and the job's code in *rc. */
em_task_result *em__run_all(em_rdd *r, const em_result_spec *res, int *rc, em_err *err);
void em__results_free(em_task_result *res, uint32_t n);
/* Appends the records of batches to out (taking new references) until out->n == limit. */
int em__records_add(em_records *out, em_batch **b, size_t n, size_t limit, em_err *err);
int em__records_add_batches(em_records *out, em_batch **b, size_t n, em_err *err);

#endif /* EMBER_API_INT_H */
