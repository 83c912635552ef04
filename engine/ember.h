/* engine/ember.h - the user API of ember: contexts, lazy partitioned datasets (RDDs),
 * transformations, actions, persistence, broadcast variables and accumulators.
 *
 * MODEL. As in Spark, transformations only record lineage; an action hands the final
 * dataset to the DAG scheduler, which cuts stages at shuffle boundaries and runs tasks
 * (threads in local[N], executor processes in local-cluster/standalone mode).
 *
 * RECORDS are bytes (engine/data/data.h): a dataset holds plain records (BYTES, or FIXED of
 * a known width) or key-value pairs (KV). Keys compare bytewise; int64 values in records use
 * the order-preserving em_enc_i64 encoding everywhere (ranges, counts, built-ins), doubles
 * em_enc_f64. "A record as bytes" (cartesian, zip_with_index, glom, distinct of pairs,
 * take_ordered) is the value of a plain record and em_pair(key, value) of a KV record.
 *
 * FUNCTIONS given to transformations are named, never passed as pointers: a name resolves
 * to a function registered with em_fn_register() or em_fn_register_table() (ember's
 * built-ins are "em.*") or to an exported symbol of the job library (dlsym), so the same
 * plan runs in another process. Each call gets the transformation's serialized context blob (its
 * "closure"). A name that resolves to nothing is an error when the plan is built.
 *
 * ERRORS. A transformation always returns a dataset handle; when the plan is invalid (bad
 * function name, bad argument) the handle carries the error (em_rdd_error) and every
 * dataset derived from it and every action on it reports it. Actions return 0 or a negative
 * EM_E* code and fill `err`.
 *
 * OWNERSHIP. Dataset handles belong to their context and stay valid memory until
 * em_context_free(); never free them. em_rdd_release() says a handle is garbage, so that
 * what only it kept (shuffle files, cached partitions) is freed at once rather than at
 * em_context_free(). Results (em_records, em_vbuf) belong to the caller.
 * THREADS. Any number of threads may build plans and run actions on one context at once
 * (see "concurrent jobs" below); em_context_new/free on one thread while no other uses
 * the context. User functions run on task threads and must not touch the context. */
#ifndef EMBER_H
#define EMBER_H

#include "engine/base/base.h"
#include "engine/data/data.h"
#include "engine/plan/fn.h"

typedef struct em_context em_context;
typedef struct em_rdd em_rdd;
typedef struct em_conf em_conf;

/* ---------------------------------------------------------------- configuration
 * Keys (Spark's names with "ember."):
 *   ember.master                 local | local[N] | local[*] | local-cluster[E,C]  (local[*])
 *   ember.app.name               application name                                  (ember)
 *   ember.default.parallelism    partitions when none is given       (task threads, >= 2)
 *   ember.executor.memory        memory budget per executor, e.g. 512m, 2g          (1g)
 *   ember.shuffle.memory         per-task buffer before a shuffle spills  (executor/4/threads)
 *   ember.local.dir              directory for shuffle files and spills     ($TMPDIR or /tmp)
 *   ember.task.maxFailures       attempts per task before the job fails                (4)
 *   ember.shuffle.compress.level zstd level for shuffle files, spills and disk blocks:
 *                                1..22, or -1..-100 for zstd's fast levels           (1)
 *   ember.shuffle.sync           true: fsync map outputs before they count as written;
 *                                false: leave them to the kernel, as Spark does  (false)
 *   ember.checkpoint.dir         root of reliable checkpoints (em_rdd_checkpoint)  (unset)
 *   ember.checkpoint.cleanup     true: remove checkpoint files at context end      (false)
 *   ember.memory.storageFraction storage floor execution cannot evict              (0.5)
 *   ember.net.compress           zstd on the wire for blocks and results: auto (not on
 *                                loopback links), true, false                       (auto)
 * Unknown keys under "ember." are rejected (em_conf_check_key). Each application gets
 * a directory <ember.local.dir>/ember-app-XXXXXX, removed when the context is freed; one
 * left by a process that died is removed by the next em_context_new in the same dir.
 * Sources, later ones winning: defaults (em_conf_set_default) < conf file (EMBER_CONF_FILE or em_conf_load_file)
 * < EMBER_* environment variables (EMBER_MASTER, EMBER_EXECUTOR_MEMORY: the key without
 * "ember.", upper-cased, dots as underscores) < em_conf_set. */
em_conf *em_conf_new(void);
void em_conf_free(em_conf *c);                               /* NULL ok */
int em_conf_set(em_conf *c, const char *key, const char *value);   /* 0 or EM_ENOMEM */
/* Borrowed until the key is set again or c is freed; NULL if unset. */
const char *em_conf_get(const em_conf *c, const char *key);
/* "key = value" or "key value" lines, '#' comments. EM_EIO/EM_ECORRUPT naming file:line. */
int em_conf_load_file(em_conf *c, const char *path, em_err *err);
/* Applies EMBER_* environment variables (called by em_context_new too). */
void em_conf_load_env(em_conf *c);

/* Sets key as a default only: the conf file, EMBER_* variables and em_conf_set all win
 * over it (em_conf_set itself wins over them). Commands use it for their own defaults
 * (e.g. ember.master local[2]) so that EMBER_MASTER and the conf file still apply.
 * 0 or EM_ENOMEM. Any thread owning c. */
int em_conf_set_default(em_conf *c, const char *key, const char *value);
/* Checks a key name: keys under "ember." must be ones the engine reads (the
 * "ember.sql." and "ember.ml." namespaces excepted); others are the user's. EM_EINVAL
 * "unknown configuration key 'K' (did you mean 'K2'?)". Any thread. */
int em_conf_check_key(const char *key, em_err *err);
/* Checks what em_context_new would run with (conf merged with the conf file and the
 * environment): every key name set by a file or em_conf_set, every engine setting's
 * value (master, sizes and their minimums, numbers) and that ember.local.dir or its
 * parent exists. Creates nothing. EM_EINVAL naming the key and value; EM_EIO/EM_ECORRUPT
 * for the conf file. Commands call it before any work, to report bad usage at once. */
int em_conf_check(const em_conf *conf, em_err *err);
/* The smallest budgets em_context_new accepts: below them nearly every record spills. */
#define EM_MIN_EXECUTOR_MEMORY ((size_t)1 << 20)   /* ember.executor.memory >= 1m */
#define EM_MIN_SHUFFLE_MEMORY  ((size_t)4 << 10)   /* ember.shuffle.memory >= 4k */

/* Creates a context (starting task threads or executor processes). conf may be NULL.
 * Errors: EM_EINVAL for a bad master or setting, naming it. */
em_context *em_context_new(const em_conf *conf, em_err *err);
void em_context_free(em_context *sc);                        /* NULL ok; stops everything */
uint32_t em_context_default_parallelism(const em_context *sc);
/* Borrowed: the effective configuration, valid until em_context_free. */
const em_conf *em_context_conf(const em_context *sc);

/* What the context's scheduler has done so far (counters since em_context_new). */
typedef struct em_context_stats {
    uint64_t jobs;              /* jobs run (actions and the sampling/count jobs of
                                   sort_by_key, partition_by RANGE, zip_with_index) */
    uint64_t stages_run;        /* stages that ran tasks */
    uint64_t stages_skipped;    /* map stages whose shuffle outputs already existed */
    uint64_t tasks_run;         /* task attempts, failed ones included */
    uint64_t map_tasks_run;     /* of which shuffle-map tasks */
    uint64_t task_failures;     /* failed attempts (fetch failures included) */
    uint64_t fetch_failures;    /* reduce tasks that found a map output missing or corrupt */
    uint64_t spill_bytes;       /* bytes spilled by shuffle writers and reducers */
    /* Cluster modes (0 in local mode): */
    uint64_t executors;             /* executors registered and alive now */
    uint64_t broadcast_fetches;     /* broadcast values fetched by executors from the
                                       driver (one per executor and value it needed) */
    uint64_t executor_store_bytes;  /* bytes in the executors' block stores (memory and
                                       disk) as each reported with its last task status */
} em_context_stats;
void em_context_stats_get(const em_context *sc, em_context_stats *out);
/* Borrowed: the application directory (shuffle/, spill/, blocks/), removed on free. */
const char *em_context_app_dir(const em_context *sc);

/* ---------------------------------------------------------------- sources */

/* n records copied into the plan's input blocks, split into nparts (0 = default) slices of
 * consecutive records. kind BYTES/FIXED use r->val; KV uses both. */
em_rdd *em_parallelize(em_context *sc, em_rec_kind kind, uint32_t width, const em_rec *recs,
                       size_t n, uint32_t nparts);
/* start, start+step, ... < end (> end for step < 0): FIXED width-8 em_enc_i64 records. */
em_rdd *em_range(em_context *sc, int64_t start, int64_t end, int64_t step, uint32_t nparts);
/* Lines (without the newline, CR LF or LF) of a file, a glob or a directory (files whose
 * name starts with '_' or '.' skipped). Files larger than a split are split at line
 * boundaries, as Hadoop's line reader does. min_parts 0 = default parallelism (max 2). */
em_rdd *em_text_file(em_context *sc, const char *path, uint32_t min_parts);
/* (path, content) pairs, one per file. */
em_rdd *em_whole_text_files(em_context *sc, const char *path, uint32_t min_parts);

/* ---------------------------------------------------------------- transformations
 * fn: a function name; ctx: its context blob (copied; em_slice_make(NULL, 0) for none).
 * nparts 0 = the parent's partitioner size if any, else default parallelism. */
em_rdd *em_rdd_map(em_rdd *r, const char *fn, em_slice ctx);        /* one out per in */
em_rdd *em_rdd_flat_map(em_rdd *r, const char *fn, em_slice ctx);
em_rdd *em_rdd_filter(em_rdd *r, const char *fn, em_slice ctx);
em_rdd *em_rdd_map_partitions(em_rdd *r, const char *fn, em_slice ctx,
                              bool preserves_partitioning);
/* As map, flat_map and map_partitions, declaring that every output record is a plain
 * record of exactly `width` bytes (width >= 1): the output is EM_REC_FIXED, so it is
 * cached, shuffled and spilled as a row-major matrix and em_iter_next_batch hands it out
 * as one. A record of another size (or a KV record) fails the task with EM_EINVAL naming
 * the node. */
em_rdd *em_rdd_map_fixed(em_rdd *r, const char *fn, em_slice ctx, uint32_t width);
em_rdd *em_rdd_flat_map_fixed(em_rdd *r, const char *fn, em_slice ctx, uint32_t width);
em_rdd *em_rdd_map_partitions_fixed(em_rdd *r, const char *fn, em_slice ctx,
                                    bool preserves_partitioning, uint32_t width);
em_rdd *em_rdd_map_values(em_rdd *r, const char *fn, em_slice ctx);  /* keeps partitioner */
em_rdd *em_rdd_flat_map_values(em_rdd *r, const char *fn, em_slice ctx);
em_rdd *em_rdd_key_by(em_rdd *r, const char *fn, em_slice ctx);
em_rdd *em_rdd_keys(em_rdd *r);
em_rdd *em_rdd_values(em_rdd *r);
em_rdd *em_rdd_union(em_rdd *a, em_rdd *b);
em_rdd *em_rdd_distinct(em_rdd *r, uint32_t nparts);
em_rdd *em_rdd_sample(em_rdd *r, bool with_replacement, double fraction, uint64_t seed);
em_rdd *em_rdd_glom(em_rdd *r);                    /* one em_list record per partition */
em_rdd *em_rdd_cartesian(em_rdd *a, em_rdd *b);    /* (a record, b record) pairs */
/* (record as bytes, em_enc_i64 index); runs a job to count partitions when called, as
 * Spark does. */
em_rdd *em_rdd_zip_with_index(em_rdd *r);
em_rdd *em_rdd_repartition(em_rdd *r, uint32_t nparts);   /* round-robin shuffle */
em_rdd *em_rdd_coalesce(em_rdd *r, uint32_t nparts, bool shuffle);

/* Pair operations (KV datasets). */
em_rdd *em_rdd_reduce_by_key(em_rdd *r, const char *fn, em_slice ctx, uint32_t nparts);
em_rdd *em_rdd_fold_by_key(em_rdd *r, em_slice zero, const char *fn, em_slice ctx,
                           uint32_t nparts);
em_rdd *em_rdd_aggregate_by_key(em_rdd *r, em_slice zero, const char *seq_fn,
                                const char *comb_fn, em_slice ctx, uint32_t nparts);
/* create_fn may be NULL (the combiner is the first value). */
em_rdd *em_rdd_combine_by_key(em_rdd *r, const char *create_fn, const char *merge_value_fn,
                              const char *merge_combiners_fn, em_slice ctx, uint32_t nparts);
em_rdd *em_rdd_group_by_key(em_rdd *r, uint32_t nparts);  /* values: em_list */
/* Joins: values are em_pair(left, right); outer joins mark the missing side absent. */
em_rdd *em_rdd_join(em_rdd *a, em_rdd *b, uint32_t nparts);
em_rdd *em_rdd_left_outer_join(em_rdd *a, em_rdd *b, uint32_t nparts);
em_rdd *em_rdd_right_outer_join(em_rdd *a, em_rdd *b, uint32_t nparts);
em_rdd *em_rdd_full_outer_join(em_rdd *a, em_rdd *b, uint32_t nparts);
/* (key, em_pair(em_list of a's values, em_list of b's values)). */
em_rdd *em_rdd_cogroup(em_rdd *a, em_rdd *b, uint32_t nparts);
/* Range-partitions by sampled key bounds (runs a sampling job when called, as Spark does),
 * then sorts each partition. */
em_rdd *em_rdd_sort_by_key(em_rdd *r, bool ascending, uint32_t nparts);
/* Sorts records by the key fn emits (an em_map_fn emitting one value per record). */
em_rdd *em_rdd_sort_by(em_rdd *r, const char *key_fn, em_slice ctx, bool ascending,
                       uint32_t nparts);
em_rdd *em_rdd_partition_by(em_rdd *r, em_partitioner_kind kind, uint32_t nparts);

/* ---------------------------------------------------------------- inspection */

const em_err *em_rdd_error(const em_rdd *r);     /* NULL when the plan is valid */
uint32_t em_rdd_id(const em_rdd *r);
uint32_t em_rdd_num_partitions(const em_rdd *r);
em_partitioner_kind em_rdd_partitioner(const em_rdd *r);
/* Lineage as text, one node per line, indented by depth (Spark's toDebugString).
 * Caller frees with em_free. */
char *em_rdd_debug_string(const em_rdd *r);

/* ---------------------------------------------------------------- persistence */

typedef enum em_persist_level {
    EM_PERSIST_NONE = 0,
    EM_PERSIST_MEMORY_ONLY = 1,
    EM_PERSIST_MEMORY_AND_DISK = 2,
    EM_PERSIST_DISK_ONLY = 3,
} em_persist_level;
em_rdd *em_rdd_persist(em_rdd *r, em_persist_level level);   /* returns r itself */
em_rdd *em_rdd_cache(em_rdd *r);                              /* MEMORY_ONLY; returns r */
void em_rdd_unpersist(em_rdd *r);

/* Releases a dataset handle: the caller will not use r again (in Spark, the RDD object
 * became garbage and the ContextCleaner noticed). Release each handle a call returned once
 * per return: coalesce (no shuffle, to as many partitions or more) and partition_by (to the
 * partitioning r already has) return r itself, as Spark does, and then r needs one more
 * release before it is released. em_rdd_persist/em_rdd_cache return their argument without
 * that (no extra release); em_rdd_checkpoint returns a new, independent dataset.
 * A dataset lives while an unreleased handle names it or a living dataset was derived from
 * it. When it dies (this call, or a later release that frees its last dependant):
 *   - if it is the reduce side of a shuffle (reduce_by_key, group_by_key, join, sort_by_key,
 *     repartition, partition_by, distinct ...), that shuffle's map outputs are removed: the
 *     map-output tracker forgets them and every executor deletes their files (local mode:
 *     the context deletes them); a later job needing them cannot exist;
 *   - if it is persisted, it is unpersisted (em_rdd_unpersist); parallelized input and the
 *     blocks of a local checkpoint are dropped too.
 * So releasing `ranks` after building `next` from it frees nothing yet (next needs it), but
 * after `c = em_rdd_checkpoint(next)` releasing every older handle frees all their
 * shuffles: the pattern that keeps ALS or PageRank at a bounded number of shuffle files.
 * Releasing NULL or an already released handle is a no-op. Any other use of a released
 * handle is an error, never a crash: transformations return a dataset carrying EM_EINVAL
 * "dataset released ...", actions and checkpoints fail with it, em_rdd_error returns it,
 * em_rdd_id and em_rdd_num_partitions return 0, persist/unpersist do nothing.
 * Driver thread, between actions (actions are synchronous, so any time the program runs). */
void em_rdd_release(em_rdd *r);

/* Addition (out-of-core). Checkpoints are EAGER (Spark's are written by the next action):
 * a job runs now and a NEW dataset is returned whose lineage is one source node reading
 * what was written (em_rdd_lineage_depth 1); r itself is unchanged. The partitioner is
 * kept. NULL + err on failure (nothing is left behind).
 * checkpoint: part files <ember.checkpoint.dir>/<app>/rdd-<id>/part-NNNNN (block files:
 * zstd, checksummed, atomic), readable after the executor that wrote them is gone; kept
 * after the context ends unless ember.checkpoint.cleanup=true (Spark's default keeps them).
 * EM_EINVAL when ember.checkpoint.dir is unset; a missing or corrupt part is an error
 * naming the file, at checkpoint time and when read.
 * local_checkpoint: the partitions go to the executors' block stores (MEMORY_AND_DISK);
 * faster, but lost with their executor (reading then fails with EM_ENOTFOUND).
 * docs/out-of-core.md. */
em_rdd *em_rdd_checkpoint(em_rdd *r, em_err *err);
em_rdd *em_rdd_local_checkpoint(em_rdd *r, em_err *err);
/* Path of part file `part` of a reliable checkpoint dataset (borrowed), else NULL. */
const char *em_rdd_checkpoint_part(const em_rdd *r, uint32_t part);
/* Longest chain of lineage nodes from r to a source, r included (a source: 1). */
uint32_t em_rdd_lineage_depth(const em_rdd *r);

/* ---------------------------------------------------------------- shared variables */

/* Ships value (copied; any size) to every task; tasks read it with em_task_broadcast.
 * Each executor fetches it once, in pieces with several in flight, and shares its copy
 * among its tasks; functions that run on the driver (a result merge) may read it too.
 * Returns an id > 0, or 0 with err set. */
uint32_t em_broadcast(em_context *sc, em_slice value, em_err *err);
/* Drops the driver's value and every executor's cached copy; the id must not be used
 * again (Spark's Broadcast.destroy). */
void em_broadcast_destroy(em_context *sc, uint32_t id);
/* Drops the executors' cached copies only (Spark's Broadcast.unpersist): a task that reads
 * the broadcast later fetches it from the driver again. For a value each executor needs
 * once (ALS's block records) this frees its memory on the executors at once. Local mode
 * has no copies to drop: a no-op. */
void em_broadcast_unpersist(em_context *sc, uint32_t id);
/* Accumulators: ids > 0; tasks add, the driver reads. */
uint32_t em_accumulator_new(em_context *sc, const char *name);
int64_t em_accumulator_i64(em_context *sc, uint32_t id);
double em_accumulator_f64(em_context *sc, uint32_t id);

/* ---------------------------------------------------------------- actions */

/* Collected records: recs[i] point into batches, all owned by the struct. */
typedef struct em_records {
    em_rec *recs;
    size_t n;
    em_batch **batches;
    size_t nbatches;
} em_records;
void em_records_destroy(em_records *r);   /* zeroes it; a zeroed struct is a no-op */

int em_rdd_collect(em_rdd *r, em_records *out, em_err *err);
int em_rdd_count(em_rdd *r, uint64_t *out, em_err *err);
/* Computes the shuffles r reads (the map stages of its lineage whose outputs are missing)
 * and none of r's own partitions, as Spark's submitMapStage: a later action on r, or on
 * anything else reading those shuffles, starts from their outputs. What it gives: the
 * inputs of a shuffle can be unpersisted between its two sides (ALS drops its ratings once
 * they are routed, before the blocks are built, so the build reuses their memory). */
int em_rdd_run_map_stages(em_rdd *r, em_err *err);
/* Keys (or plain records) with their counts: (key, em_enc_i64 count) records. */
int em_rdd_count_by_key(em_rdd *r, em_records *out, em_err *err);
int em_rdd_count_by_value(em_rdd *r, em_records *out, em_err *err);
/* Reduce/fold/aggregate see record values (r->val). reduce of nothing is EM_EINVAL. */
int em_rdd_reduce(em_rdd *r, const char *fn, em_slice ctx, em_vbuf *out, em_err *err);
int em_rdd_fold(em_rdd *r, em_slice zero, const char *fn, em_slice ctx, em_vbuf *out,
                em_err *err);
int em_rdd_aggregate(em_rdd *r, em_slice zero, const char *seq_fn, const char *comb_fn,
                     em_slice ctx, em_vbuf *out, em_err *err);
/* As aggregate, combining partition results in a tree of the given depth (>= 1) on the
 * executors before the driver sees them; when partitions x zero.n <= 4 MiB (the zero's size
 * standing for a partial result's) the driver merges them at once, as aggregate does. */
int em_rdd_tree_aggregate(em_rdd *r, em_slice zero, const char *seq_fn, const char *comb_fn,
                          em_slice ctx, uint32_t depth, em_vbuf *out, em_err *err);
/* In-place aggregation (fn.h: em_acc_*_fn). Each task makes its own accumulator(s) of
 * `size` bytes (zero-filled, then `init` if named), folds its records into them in place
 * and merges accumulators in place; nothing of size `size` travels in the plan. The
 * result (out, appended) is the merge of every partition's accumulator; an empty dataset
 * gives the initial accumulator. */
typedef struct em_agg {
    size_t size;          /* accumulator bytes, >= 1 */
    const char *init;     /* EM_FN_ACC_INIT, or NULL: the zero-filled accumulator */
    const char *seq;      /* EM_FN_ACC_SEQ for (tree_)aggregate_acc, EM_FN_ACC_ADD by key */
    const char *merge;    /* EM_FN_ACC_MERGE */
    em_slice ctx;         /* context blob of all three (copied) */
} em_agg;
int em_rdd_aggregate_acc(em_rdd *r, const em_agg *a, em_vbuf *out, em_err *err);
/* depth >= 1. Partial results that are small in total (partitions x size <= 4 MiB) are
 * merged on the driver at once, with no shuffle and no file; larger ones are merged on the
 * executors in a tree of the given depth first (Spark's treeAggregate). The merges that run
 * on the driver get a task (em_fn_ctx.task) whose em_task_broadcast reads the driver's
 * copy; partition 0, its accumulator updates are dropped. */
int em_rdd_tree_aggregate_acc(em_rdd *r, const em_agg *a, uint32_t depth, em_vbuf *out,
                              em_err *err);
/* (key, accumulator) per key: Spark's aggregateByKey / combineByKey with mutable
 * combiners. Map-side combining in place; the values of `a->seq` are EM_FN_ACC_ADD. */
em_rdd *em_rdd_aggregate_by_key_acc(em_rdd *r, const em_agg *a, uint32_t nparts);
/* The first n records in partition order, scanning as few partitions as it can. */
int em_rdd_take(em_rdd *r, size_t n, em_records *out, em_err *err);
int em_rdd_first(em_rdd *r, em_records *out, em_err *err);   /* EM_EINVAL when empty */
/* The n smallest (take_ordered) or largest (top) records as bytes, in that order. */
int em_rdd_take_ordered(em_rdd *r, size_t n, em_records *out, em_err *err);
int em_rdd_top(em_rdd *r, size_t n, em_records *out, em_err *err);
int em_rdd_take_sample(em_rdd *r, bool with_replacement, size_t n, uint64_t seed,
                       em_records *out, em_err *err);
/* Values of `key` (KV datasets); uses the partitioner to scan one partition when known. */
int em_rdd_lookup(em_rdd *r, em_slice key, em_records *out, em_err *err);
/* Writes dir/part-00000... (plain records: the bytes; pairs: key TAB value; one per line)
 * and dir/_SUCCESS last. EM_EINVAL if dir exists. Nothing is left behind on failure. */
int em_rdd_save_as_text_file(em_rdd *r, const char *dir, em_err *err);
int em_rdd_foreach_partition(em_rdd *r, const char *fn, em_slice ctx, em_err *err);

/* ---------------------------------------------------------------- concurrent jobs
 * Any number of threads may run actions on one context at once; their tasks share the
 * executors (FIFO by job start). A thread's jobs belong to the group it last set (NULL
 * clears it; Spark's setJobGroup). Cancelling ends the group's running tasks and makes
 * its actions return EM_ECANCELED (within about a second), leaving no shuffle file of a
 * cancelled job behind. Any thread; cancelling a group with no job is a no-op. */
void em_set_job_group(em_context *sc, const char *group);
void em_cancel_job_group(em_context *sc, const char *group);
void em_cancel_all_jobs(em_context *sc);

/* ---------------------------------------------------------------- cluster processes
 * `ember executor` runs this process as an executor of a cluster-mode application until
 * its driver goes away: the engine's functions are registered and o->run is set to the
 * engine's task runner (options: engine/cluster/cluster.h, em_executor_opts). The job
 * library named by the driver is loaded only after its sha256 matches. 0 or <0 + err. */
struct em_executor_opts;
int em_executor_serve(struct em_executor_opts *o, em_err *err);

/* ---------------------------------------------------------------- jobs
 * A job library exports `int ember_main(em_context *sc, int argc, char **argv)`; `ember
 * run-example` and `ember submit` create the context from --master and the conf and call it.
 * Functions named in its plans are exported symbols of the library, or functions its
 * optional em_job_register (engine/plan/fn.h) registers from a table; the driver and every
 * executor call em_job_register after loading the library. */
typedef int (*em_job_main_fn)(em_context *sc, int argc, char **argv);

#endif /* EMBER_H */
