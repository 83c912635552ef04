/* engine/plan/fn.h - the function ABI shared by user code and the engine: what a named
 * function passed to a transformation receives and returns. engine/ember.h includes it
 * (users see it there); engine/plan and engine/exec include it directly, so the user API
 * header stays at the top of the include stack (docs/architecture.md).
 * THREADS: user functions run on task threads; em_emit/em_iter_next/em_task_* are one
 * thread per task. */
#ifndef EMBER_PLAN_FN_H
#define EMBER_PLAN_FN_H

#include "engine/base/base.h"
#include "engine/data/data.h"

/* ---------------------------------------------------------------- user functions */

typedef struct em_task em_task;           /* the running task (opaque) */
typedef struct em_emitter em_emitter;     /* where a function's output records go */
typedef struct em_iter em_iter;           /* a partition's input records */

/* What every user function receives. blob: the transformation's context bytes (borrowed
 * for the call). task: the running task (partition index, broadcasts, accumulators). */
typedef struct em_fn_ctx {
    em_slice blob;
    em_task *task;
} em_fn_ctx;

/* Emits a record; the bytes are copied. A record with key.p != NULL is a pair (KV).
 * Returns 0 or a negative code that the function must return. */
int em_emit(em_emitter *e, const em_rec *r, em_err *err);
int em_emit_kv(em_emitter *e, em_slice key, em_slice val, em_err *err);
int em_emit_val(em_emitter *e, em_slice val, em_err *err);
/* Emits n plain records of `width` bytes each, stored back to back at recs (copied): the
 * same records as n em_emit_val calls, in one call. Where the output is stored as it is
 * made (a persisted or cached map_partitions_fixed) the run is copied into the stored
 * batch whole; elsewhere it goes record by record. width 0 is EM_EINVAL. */
int em_emit_fixed(em_emitter *e, const void *recs, uint32_t width, size_t n, em_err *err);
/* Emitting a large pair without copying it: em_emit_big_alloc gives room for a value of up
 * to vcap bytes behind a key of klen bytes (huge pages, em_malloc_big; NULL on OOM); the
 * function writes the value there and em_emit_big_kv emits it with a key of exactly klen
 * bytes, taking the buffer in every case. Where the records are cached (a persisted
 * map_partitions) a value of EM_BIG_MIN bytes or more becomes its batch as it is, with no
 * copy; any other consumer copies it as from em_emit_kv and the buffer is freed. A buffer
 * that is not emitted goes back with em_emit_big_free(val, klen). */
void *em_emit_big_alloc(size_t klen, size_t vcap);
int em_emit_big_kv(em_emitter *e, em_slice key, void *val, size_t vlen, em_err *err);
void em_emit_big_free(void *val, size_t klen);
/* 1 and *r (borrowed until the next call), 0 at the end, <0 on error (return it). */
int em_iter_next(em_iter *it, em_rec *r, em_err *err);

/* A run of consecutive records of one partition, handed out whole so that a function can
 * give a partition of dense vectors to BLAS as a matrix. Borrowed until the next pull on
 * the iterator (em_iter_next or em_iter_next_batch; the two may be mixed: a batch starts
 * at the first record not yet handed out). data holds the records in the payload format
 * of docs/data-format.md: for EM_REC_FIXED that is nrecs x width bytes, row-major, with
 * data 64-byte aligned (a row-major matrix as BLAS takes it); BYTES and KV batches are
 * walked with em_batch_iter_init_raw. A batch never mixes kinds or widths and is never
 * empty (nrecs >= 1). */
typedef struct em_rec_batch {
    em_rec_kind kind;
    uint32_t width;          /* FIXED: bytes per record; 0 otherwise */
    uint64_t nrecs;
    const uint8_t *data;
    size_t nbytes;
} em_rec_batch;
/* 1 and *b, 0 at the end, <0 on error (return it). */
int em_iter_next_batch(em_iter *it, em_rec_batch *b, em_err *err);

uint32_t em_task_partition(const em_task *t);
uint32_t em_task_attempt(const em_task *t);
/* Whether the task has been asked to stop (its job was cancelled): a function that computes
 * for long without pulling records (the engine's iterators check for it) polls this and
 * returns EM_ECANCELED. The task's own thread. */
bool em_task_canceled(const em_task *t);
/* The value of broadcast `id`, borrowed for the rest of the task. EM_ENOTFOUND if unknown. */
int em_task_broadcast(em_task *t, uint32_t id, em_slice *value, em_err *err);
/* Adds to accumulator `id`; counted once, only when this task succeeds. */
void em_task_acc_add_i64(em_task *t, uint32_t id, int64_t delta);
void em_task_acc_add_f64(em_task *t, uint32_t id, double delta);

typedef enum em_fn_kind {
    EM_FN_MAP = 1,        /* em_map_fn: map, flat_map, map_values, flat_map_values, key_by */
    EM_FN_FILTER = 2,     /* em_filter_fn */
    EM_FN_PARTITION = 3,  /* em_partition_fn: map_partitions */
    EM_FN_REDUCE = 4,     /* em_reduce_fn: reduce, fold, merge_value, merge_combiners */
    EM_FN_CREATE = 5,     /* em_create_fn: create_combiner */
    EM_FN_FOREACH = 6,    /* em_foreach_fn: foreach_partition */
    EM_FN_ACC_INIT = 7,   /* em_acc_init_fn: in-place aggregation, accumulator init */
    EM_FN_ACC_SEQ = 8,    /* em_acc_seq_fn: aggregate_acc / tree_aggregate_acc, a batch */
    EM_FN_ACC_ADD = 9,    /* em_acc_add_fn: aggregate_by_key_acc, one value */
    EM_FN_ACC_MERGE = 10, /* em_acc_merge_fn: merges two accumulators in place */
} em_fn_kind;

/* Emits zero or more records for one input record. For map_values/flat_map_values `in`
 * holds only the value (in->val) and emitted values are re-keyed by the engine; for key_by
 * the function emits the key (as a value) and the engine pairs it with the record. */
typedef int (*em_map_fn)(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
/* 1 keeps the record, 0 drops it, <0 is an error. */
typedef int (*em_filter_fn)(const em_fn_ctx *c, const em_rec *in, em_err *err);
typedef int (*em_partition_fn)(const em_fn_ctx *c, uint32_t index, em_iter *in,
                               em_emitter *out, em_err *err);
/* Appends the merge of a and b to out (passed empty). Must be associative (and commutative
 * where Spark requires it: reduce, reduce_by_key, fold, aggregate). */
typedef int (*em_reduce_fn)(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out,
                            em_err *err);
typedef int (*em_create_fn)(const em_fn_ctx *c, em_slice v, em_vbuf *out, em_err *err);
typedef int (*em_foreach_fn)(const em_fn_ctx *c, uint32_t index, em_iter *in, em_err *err);

/* In-place aggregation (em_rdd_aggregate_acc, em_rdd_tree_aggregate_acc,
 * em_rdd_aggregate_by_key_acc in ember.h): an accumulator is `size` bytes of mutable memory
 * (16-byte aligned) made where it is used, never shipped in the plan: zero-filled, then
 * passed to the init function when one is named. seq/add update it in place, merge folds
 * `other` (same size, read-only) into `acc`. Only acc and the context blob are visible;
 * return 0 or <0 with err set. */
typedef int (*em_acc_init_fn)(const em_fn_ctx *c, void *acc, size_t size, em_err *err);
/* Folds a batch of records (record values for plain records; KV records whole). */
typedef int (*em_acc_seq_fn)(const em_fn_ctx *c, void *acc, size_t size,
                             const em_rec_batch *in, em_err *err);
/* Folds one record's value (by-key aggregation: in->key is the key, in->val the value). */
typedef int (*em_acc_add_fn)(const em_fn_ctx *c, void *acc, size_t size, const em_rec *in,
                             em_err *err);
typedef int (*em_acc_merge_fn)(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                               em_err *err);

/* Registers a named function (any thread, before em_context_new). Names are unique;
 * EM_EINVAL for a duplicate. Built-ins registered by ember itself ("record as bytes" is the
 * value of a plain record and em_pair(key, value) of a KV record):
 *   EM_FN_MAP       em.identity; em.keys, em.values (KV -> plain key / value); em.swap;
 *                   em.split_words (one plain record per maximal run of bytes other than
 *                   space, tab, CR, LF); em.split_word_pairs (the same words as pairs
 *                   (word, em_enc_i64 1)); em.pair_with_one (-> (record as bytes,
 *                   em_enc_i64 1)); em.key_with_one (KV -> (key, em_enc_i64 1));
 *                   em.pair_with_empty (-> (record as bytes, "")); em.lines_to_pairs
 *                   ("k<TAB>v" -> (k, v); no tab: (line, "")); em.record_from_key and
 *                   em.record_from_value (KV -> the record stored in the key / value as
 *                   bytes: blob "kv" means it is an em_pair-encoded KV record, empty blob
 *                   means a plain record); em.tag_with_empty (-> (record tagged, ""));
 *                   em.record_from_tagged_key and em.record_from_tagged_value (KV -> the
 *                   record stored tagged in the key / value). A "tagged record" carries its
 *                   kind at run time: one byte 0 then the value (plain record), or one byte
 *                   1 then em_pair(key, value) (KV record); any other first byte, or an
 *                   empty string, is EM_ECORRUPT. distinct and sort_by use them, so a map
 *                   that turns plain records into pairs (or back) keeps its records' kind.
 *   EM_FN_FILTER    em.key_equals (keeps KV records whose key equals the blob)
 *   EM_FN_REDUCE    em.sum_i64, em.min_i64, em.max_i64 (em_enc_i64 values), em.sum_f64
 *                   (em_enc_f64), em.min_bytes, em.max_bytes, em.first (keeps a),
 *                   em.concat_list (concatenates two em_lists)
 *   EM_FN_CREATE    em.to_list (value -> one-item em_list)
 *   EM_FN_PARTITION em.aggregate_partition: folds a partition's values with a named
 *                   EM_FN_REDUCE seq function from a zero and emits one KV record
 *                   (em_enc_i64(partition index % scale), aggregate). Blob: u32 name len,
 *                   name, u32 zero len, zero, u32 ctx len, ctx (the seq function's blob),
 *                   u32 scale (little-endian); used by tree_aggregate. (engine/api also
 *                   registers em.tree_rekey and em.aggregate_acc_partition, the in-place
 *                   counterpart tree_aggregate_acc uses.) */
int em_fn_register(const char *name, em_fn_kind kind, void (*fn)(void));

/* Registration tables: how a library (mllib, sql, a user's job library) makes its task
 * functions known by name on the driver and on every executor, instead of relying on dlsym
 * of exported symbols. Each entry is registered as by em_fn_register; an entry whose name
 * is already registered with the same kind and pointer is accepted (so a library may
 * register its table from every entry point, idempotently), a name registered with a
 * different kind or pointer is EM_EINVAL. Returns 0 or the first error (entries before it
 * stay registered). Example:
 *     static const em_fn_entry fns[] = {{"ml.kmeans.assign", EM_FN_ACC_SEQ, EM_FN(assign)}};
 *     em_fn_register_table(fns, sizeof fns / sizeof fns[0]); */
typedef struct em_fn_entry {
    const char *name;
    em_fn_kind kind;
    void (*fn)(void);
} em_fn_entry;
#define EM_FN(f) ((void (*)(void))(f))
int em_fn_register_table(const em_fn_entry *tab, size_t n);

/* A job library's registration hook (optional). When a job library exports
 *     int em_job_register(void);
 * `ember run-example`, `ember submit` and every executor call it right after loading the
 * library (after ember's built-ins are registered, before any plan is decoded), so the
 * library can register its functions from a table (em_fn_register_table) and keep them
 * static. Return 0, or a negative EM_E* code: the driver then fails to start, an executor
 * exits. Functions of a job library that registers nothing are still found by name as its
 * exported symbols (dlsym in the library). */
int em_job_register(void);
typedef int (*em_job_register_fn)(void);

typedef enum em_partitioner_kind {
    EM_PART_NONE = 0,
    EM_PART_HASH = 1,
    EM_PART_RANGE = 2,
} em_partitioner_kind;

#endif /* EMBER_PLAN_FN_H */
