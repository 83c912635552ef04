/* engine/exec/exec.h - running one task: rebuild a stage's narrow pipeline from its JSON,
 * stream one partition's records through it and deliver them to the task's sink (a shuffle
 * writer for shuffle-map tasks, a result operation for result tasks).
 *
 * DATA PATH: sources (input blocks, ranges, text splits, cached blocks, shuffle reads) ->
 * pull iterators, one per node (map, filter, union, coalesce, cartesian, sample, local
 * reduce, ...) -> sink. A node with a storage level is read from the block store when
 * cached, otherwise computed and cached on the way (Spark's getOrCompute).
 *
 * STAGE JSON: {"version":1,"plan":<em_plan_to_json>,"map_side":bool,"result":{...}}
 * (docs/plan-json.md). The same string runs in a local task thread and, in cluster mode,
 * in an executor process; untrusted there, so decoding checks every field.
 *
 * THREADS: em_exec_run_task may run on many task threads at once with the same env; the
 * env's callbacks must be thread-safe. */
#ifndef EMBER_EXEC_H
#define EMBER_EXEC_H

#include <stdatomic.h>

#include "engine/base/base.h"
#include "engine/data/data.h"
#include "engine/plan/plan.h"
#include "engine/task/task.h"
#include "shuffle/shuffle.h"
#include "storage/storage.h"

/* What a result task computes from its partition. */
typedef enum em_result_op {
    EM_RESULT_COLLECT = 1,    /* every record, as batches */
    EM_RESULT_COUNT,          /* result.count = records */
    EM_RESULT_FOLD,           /* fold values with fn (EM_FN_REDUCE), starting from zero if
                                 has_zero, else from the first value (reduce); one BYTES
                                 record in the result batch, none for an empty partition
                                 without zero */
    EM_RESULT_AGGREGATE,      /* seq fn (EM_FN_REDUCE: acc, value) from zero: one record */
    EM_RESULT_TAKE,           /* the first n records */
    EM_RESULT_TOP,            /* the n smallest records as bytes (largest if descending),
                                 as BYTES records in order */
    EM_RESULT_SAVE_TEXT,      /* writes path/part-NNNNN (tmp name + rename); lines as
                                 ember.h describes; result.count = lines */
    EM_RESULT_FOREACH,        /* fn (EM_FN_FOREACH) over the partition */
    EM_RESULT_SAMPLE_KEYS,    /* up to n keys (KV: key; plain: record bytes) sampled
                                 uniformly with seed + partition (reservoir), each cut to
                                 its first EM_SAMPLE_KEY_MAX bytes; result.count = records
                                 in the partition */
    EM_RESULT_AGGREGATE_ACC,  /* in-place aggregation: an accumulator of acc_size bytes
                                 (zeroed, then fn_init if named) folded with fn
                                 (EM_FN_ACC_SEQ) a batch at a time; one FIXED record of
                                 width acc_size, also for an empty partition */
} em_result_op;

/* Sampled keys become range bounds, which travel in every stage plan: a whole 50 MiB
 * record there overflows the launch frame. A prefix of a key is as good a bound: bounds
 * stay sorted, and "first bound >= key" stays monotone in the key, so every key still
 * lands in order (a key longer than its bound's prefix just goes one partition up). */
#define EM_SAMPLE_KEY_MAX 1024

typedef struct em_result_spec {
    em_result_op op;
    const char *fn;          /* FOLD/AGGREGATE seq/FOREACH function name */
    em_slice blob;           /* its context */
    bool has_zero;
    em_slice zero;
    uint64_t n;              /* TAKE/TOP/SAMPLE_KEYS */
    bool descending;         /* TOP */
    uint64_t seed;           /* SAMPLE_KEYS */
    const char *path;        /* SAVE_TEXT: directory for part files */
    const char *fn_init;     /* AGGREGATE_ACC: EM_FN_ACC_INIT function, or NULL */
    uint64_t acc_size;       /* AGGREGATE_ACC: accumulator bytes, 1..EM_BATCH_MAX_REC_LEN */
} em_result_spec;

/* Encodes the stage task JSON (plan of the stage rooted at root, map side or result spec).
 * Caller frees with em_free. res is NULL for map stages. */
char *em_stage_encode(const em_plan_node *root, bool map_side, const em_result_spec *res,
                      em_err *err);

/* BIG CONTEXT BLOBS. A plan node's context blob of at least EM_STAGE_BLOB_OUT bytes can
 * travel beside the stage instead of inside its JSON (base64 through JSON costs ~30 ns a
 * byte on both ends, once per stage and task thread): `put` stores it as a broadcast
 * value in the driver's block store and returns its id (0 and err on failure), and the
 * node's JSON gets "blob_ref": [id, bytes, crc32c] instead of "blob". A task resolves the
 * reference once per task thread and stage from its block store (env->store, then
 * env->fetch_block: one fetch per executor), checking size and checksum, and borrows the
 * broadcast's bytes (holds its batch) for as long as it keeps the decoded stage. Who calls
 * put owns the broadcasts and drops them when no stage can need them any more. In one
 * process (local mode) put need not copy anything: it names the bytes it was given (the
 * plan node's blob, the action's result spec), which live as long as the job, and
 * env->borrow_blob hands them to the tasks (engine/exec/local.c). The result spec's
 * "blob" and "zero" of EM_STAGE_BLOB_OUT bytes or more travel the same way. */
#define EM_STAGE_BLOB_OUT ((size_t)64 << 10)
typedef struct em_stage_blob_sink {
    uint32_t (*put)(void *ud, em_slice blob, em_err *err);
    void *ud;
} em_stage_blob_sink;
char *em_stage_encode_ext(const em_plan_node *root, bool map_side, const em_result_spec *res,
                          const em_stage_blob_sink *sink, em_err *err);
/* TEST HOOK: bytes of big blobs and result values this process has handed to a blob sink
 * (encode side), context blobs and result values base64-decoded from stage JSON, and bytes
 * borrowed when resolving references, since it started (relaxed atomic counters written
 * only by engine/exec/stage.c). Any thread. */
typedef struct em__stage_blob_stats {
    uint64_t shipped, decoded, borrowed;
} em__stage_blob_stats;
void em__stage_blob_stats_get(em__stage_blob_stats *out);

/* em_acc_update, em_task_metrics and em_task_result: engine/task/task.h. */

/* Where a task finds what lies outside its pipeline. All callbacks thread-safe. */
typedef struct em_exec_env {
    em_block_store *store;       /* input blocks, cached partitions, broadcasts */
    const char *shuffle_dir;     /* where map outputs are written (exists) */
    const char *spill_dir;       /* where reducers spill (exists) */
    const char *exec_id;         /* location written into map statuses */
    em_fetcher fetcher;          /* reads segments at a map status's location */
    /* The map outputs of shuffle sid for reduce partition `reduce`: *srcs is a new array
     * (caller em_free's it; loc strings stay valid until the job ends), one per map. */
    int (*map_outputs)(void *ud, uint32_t sid, uint32_t reduce, em_shuffle_src **srcs,
                       uint32_t *n, em_err *err);
    void *ud;
    /* Optional: fetches a block this process's store lacks (cluster mode: parallelized
     * input and broadcasts live in the driver's store). Same contract as
     * em_block_store_get (1 found, 0 absent, <0 error); the callback caches what it
     * fetches if it wants to. NULL = the local store is all there is. Thread-safe. */
    int (*fetch_block)(void *ud, em_block_id id, em_batch ***out, size_t *n, em_err *err);
    size_t task_mem_budget;      /* bytes per task for shuffle buffers and reducers */
    int zstd_level;
    bool shuffle_sync;           /* fsync map outputs before renaming them (ember.shuffle.sync) */
    /* Addition (out-of-core), optional: the executor's memory manager. When set, each task
     * acquires task_mem_budget bytes of execution memory from it (evicting cached blocks
     * above the storage floor if needed), runs with what was granted (at least
     * EM_TASK_MEM_MIN) as its budget, and releases it at the end. */
    em_memory_manager *mem;
    /* Optional: the task's cancel flag (NULL = none). Once it is set, the task stops at its
     * next check (each record a user function emits or pulls, each batch a source hands
     * out, each record a sink takes) with EM_ECANCELED, dropping its partial output as any
     * failed task does (no shuffle file stays behind). */
    const atomic_bool *cancel;
    /* Optional (local mode): the bytes of stage blob `id` ("blob_ref", see BIG CONTEXT
     * BLOBS), borrowed from the process that encoded the stage: they stay valid and
     * unchanged while the job that encoded it runs. 0, or EM_ENOTFOUND when id is unknown.
     * When set, blob references are resolved only through it. Thread-safe. */
    int (*borrow_blob)(void *ud, uint32_t id, em_slice *out, em_err *err);
    void *blob_ud;
} em_exec_env;

#define EM_TASK_MEM_MIN ((size_t)1 << 20)

/* ---------------------------------------------------------------- in-place aggregation
 * (accum.c) Accumulator memory: `size` bytes at p, 16-byte aligned (raw is the
 * allocation; p == raw whenever the allocator's alignment allows). One thread per object. */
typedef struct em_acc_buf {
    void *raw;
    uint8_t *p;
    size_t size;
} em_acc_buf;
/* Zero-filled accumulator. EM_EINVAL for size 0 or above EM_BATCH_MAX_REC_LEN, EM_ENOMEM. */
int em_acc_buf_init(em_acc_buf *a, size_t size, em_err *err);
/* As em_acc_buf_init, then init(c, ...) when init != NULL (its error passes through, the
 * buffer freed). */
int em_acc_buf_start(em_acc_buf *a, size_t size, em_acc_init_fn init, const em_fn_ctx *c,
                     em_err *err);
void em_acc_buf_destroy(em_acc_buf *a);            /* zeroed struct ok */
/* merge(c, acc->p, other): other (acc->size bytes) is copied into *scratch first (made on
 * first use, same size; destroy it after) when it is not 16-byte aligned. */
int em_acc_merge_any(em_acc_merge_fn merge, const em_fn_ctx *c, em_acc_buf *acc,
                     const void *other, em_acc_buf *scratch, em_err *err);
/* Folds every remaining record of `in` into acc with seq, a batch (em_rec_batch, about
 * 1 MiB, one kind and width) at a time. width: FIXED width of the input records when
 * known, else 0 (plain records then come as BYTES). *nrecs (optional): records folded.
 * The function's or the iterator's error passes through. */
int em_exec_acc_fold(em_acc_seq_fn seq, const em_fn_ctx *c, void *acc, size_t size,
                     uint32_t width, em_iter *in, uint64_t *nrecs, em_err *err);

/* A task for functions that run on the driver (merging results): em_task_broadcast reads
 * the driver's own values from `store` (borrowed; outlives the task); partition and attempt
 * are 0; accumulator updates made through it are dropped. Free with
 * em_exec_driver_task_free (NULL ok). Driver thread. */
em_task *em_exec_driver_task_new(em_block_store *store);
void em_exec_driver_task_free(em_task *t);

/* Runs one task and fills *out (always: on failure out->code/err say why, and the
 * function returns that code too). partition: the partition of the stage root to compute
 * (for a map stage, of the SHUFFLED root's parent: the map id). */
int em_exec_run_task(const em_exec_env *env, const char *stage_json, size_t len,
                     uint32_t partition, uint32_t attempt, em_task_result *out, em_err *err);

/* ---------------------------------------------------------------- the local backend
 * (local.c) The task backend of master local[N]: nthreads task threads calling
 * em_exec_run_task with a copy of *env (strings copied; store and callbacks borrowed until
 * the backend is freed). Its encode_stage names big blobs instead of copying them, and
 * tasks borrow them (env.borrow_blob is set by the backend). Successful attempts'
 * accumulator updates go to apply_acc (NULL = dropped) on the thread that called
 * run_tasks; results say exec_id "driver" and map outputs lie at env->shuffle_dir. */
int em_exec_local_backend_new(const em_exec_env *env, uint32_t nthreads,
                              em_task_acc_fn apply_acc, void *acc_ud, em_task_backend *out,
                              em_err *err);

#endif /* EMBER_EXEC_H */
