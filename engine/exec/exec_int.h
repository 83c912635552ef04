/* engine/exec/exec_int.h - internals shared by the files of engine/exec only.
 *
 * PIPELINE: one pull iterator (struct em_iter) per plan node instance; a node's iterator
 * owns its parents' iterators. Records (and batches, em_iter_next_batch) handed out are
 * borrowed until the next pull. */
#ifndef EMBER_EXEC_INT_H
#define EMBER_EXEC_INT_H

#include "engine/exec/exec.h"

/* Where a pushed record goes: the record is borrowed for the call only. Returns 0 or <0
 * (an error already in err). */
typedef int (*em__push_fn)(void *ud, const em_rec *r, em_err *err);
/* Where a run of n >= 1 FIXED records goes, n x width bytes back to back (borrowed for the
 * call): em_emit_fixed's path to a consumer that stores runs whole (the batcher), instead
 * of one push per record. 0 or <0 as em__push_fn. */
typedef int (*em__push_run_fn)(void *ud, const uint8_t *p, uint32_t width, size_t n,
                               em_err *err);

typedef struct em__iter_scratch em__iter_scratch;

/* Every iterator starts with this header; em_iter_next calls next. */
struct em_iter {
    int (*next)(em_iter *it, em_rec *r, em_err *err);   /* 1 + *r, 0 at end, <0 error */
    void (*free)(em_iter *it);                          /* frees it and its parents */
    /* Optional: pushes every remaining record to fn, then returns 0 (or <0 on an error,
     * fn's included). Lets a fused narrow chain hand its records to the consumer without
     * buffering them (fuse.c). run, when not NULL, takes runs of FIXED records instead of
     * fn (each run still counts as its records); an iterator may ignore it and push every
     * record to fn. NULL: em__iter_drain pulls with next. */
    int (*drain)(em_iter *it, em__push_fn fn, em__push_run_fn run, void *ud, em_err *err);
    /* Optional, for an iterator whose records are GROUP records (key, em_list of values)
     * made by an em_reducer (reduce.c): feeds the reducer its whole input if that has not
     * happened yet and sets *out to it (borrowed, lives as long as the iterator), so a
     * consumer can take each group value by value (em_reducer_next_group / _value) instead
     * of as one record holding all of a key's values (cogroup.c: joins). *out = NULL: the
     * iterator has no reducer, pull records. After asking, never call next. NULL: pull. */
    int (*group_stream)(em_iter *it, em_reducer **out, em_err *err);
    /* Optional: em_iter_next_batch for an iterator over stored batches (cached blocks,
     * input blocks, shuffle segments, checkpoint files): hands out the rest of the current
     * batch, or the next one, without copying (iterio.c em__iter_align copies a FIXED run
     * that does not start on a 64-byte boundary). Must honour the mixing rule of fn.h with
     * its own next. NULL: em_iter_next_batch gathers records pulled with next. */
    int (*next_batch)(em_iter *it, em_rec_batch *b, em_err *err);

    /* Set by the engine, not by constructors (zero from em_xcalloc): */
    uint32_t width;          /* the node's FIXED width when known (em__exec_build), else 0:
                                the gathering em_iter_next_batch calls plain records of this
                                size FIXED */
    bool has_pend;           /* a record pulled by a gathering next_batch that did not fit
                                its batch; the next pull hands it out first */
    em_rec pend;             /* borrowed from next (valid: next is not called meanwhile) */
    em__iter_scratch *scratch;   /* next_batch scratch (iterio.c); freed by em__iter_free */
    uint32_t ticks;          /* records pulled through em_iter_next: the cancel flag is read
                                every EM__CANCEL_EVERY of them (a thread-local read in a
                                shared library costs a call, too much per record) */
};
void em__iter_free(em_iter *it);                        /* NULL ok */
/* Makes b (a run from a stored batch) 64-byte aligned if it is FIXED and is not: copies
 * it into the iterator's scratch buffer. 0 or EM_ENOMEM. */
int em__iter_align(em_iter *it, em_rec_batch *b, em_err *err);
/* For next_batch slots: hands out the `*left` (>= 1) records of a stored batch not handed
 * out yet, bi's position onwards, as *out (aligned as above); empties bi. 1 or <0. */
int em__iter_batch_rest(em_iter *it, em_batch_iter *bi, uint64_t *left, em_rec_batch *out,
                        em_err *err);
/* Reads a sequence of sub-iterators one after the other (union and coalesce parts, a
 * shuffle's segments): pulls a record (batch false: out is an em_rec) or a batch (batch
 * true: out is an em_rec_batch) from *cur; when *cur ends it is freed and next(ud, cur,
 * err) opens the following one (1, *cur set or NULL to skip; 0 when there is none; <0 on
 * error). Returns what em_iter_next / em_iter_next_batch return. */
typedef int (*em__iter_open_fn)(void *ud, em_iter **cur, em_err *err);
int em__iter_chain_pull(em_iter **cur, bool batch, void *out, em__iter_open_fn next, void *ud,
                        em_err *err);
/* Pushes every remaining record of it to fn (it->drain, or a loop over next). */
int em__iter_drain(em_iter *it, em__push_fn fn, void *ud, em_err *err);
/* The same, with runs of FIXED records that a user function emits with em_emit_fixed
 * handed to run whole where the iterator can (map_partitions drained), to fn otherwise. */
int em__iter_drain_runs(em_iter *it, em__push_fn fn, em__push_run_fn run, void *ud,
                        em_err *err);

/* Output records of a user function. Buffered (push == NULL): encoded back to back,
 * FORMAT per record: u32 (klen + 1, or 0 for a plain record), u32 vlen, key, val.
 * Push mode (push != NULL): each emitted record goes straight to push (fused pipelines);
 * nothing is buffered and em_emit returns what push returns. */
struct em_emitter {
    em_vbuf buf;
    uint64_t n;     /* records in buf */
    em__push_fn push;
    em__push_run_fn push_run;   /* optional with push: runs of FIXED records (em_emit_fixed) */
    void *push_ud;
    uint32_t ticks; /* records ever emitted (never reset): cancel checked every
                       EM__CANCEL_EVERY */
};
void em__emitter_init(em_emitter *e);
void em__emitter_destroy(em_emitter *e);
void em__emitter_reset(em_emitter *e);
/* Reads the record at *off of e and advances *off; false at the end. */
bool em__emitter_read(const em_emitter *e, size_t *off, em_rec *r);

typedef struct em_bcast_entry {
    uint32_t id;
    em_batch **batches;   /* owned references */
    size_t nbatches;
    em_slice value;       /* borrowed from batches */
} em_bcast_entry;

/* The running task (em_task in fn.h). One thread. */
struct em_task {
    const em_exec_env *env;
    uint32_t partition, attempt;
    em_task_metrics *metrics;      /* the result's metrics */
    bool fetch_failed;             /* set by a SHUFFLED reader on EM_EFETCH */
    uint32_t failed_shuffle, failed_map;
    em_bcast_entry *bcast;         /* broadcast values read so far */
    size_t nbcast;
    em_acc_update *acc;            /* accumulator updates so far */
    uint32_t nacc;
    size_t acc_cap;
};

/* CANCELLATION: the cancel flag of the task running on this thread (em_exec_env.cancel),
 * set by em_exec_run_task for the task's duration; NULL when none. Thread-local rather
 * than in em_task because the hot checks (em_emit, em_iter_next) see only an emitter or an
 * iterator. Written only by em_exec_run_task on its own thread. */
extern _Thread_local const atomic_bool *em__tl_cancel;
static inline bool em__task_canceled(void)
{
    const atomic_bool *c = em__tl_cancel;
    return c && EM_UNLIKELY(atomic_load_explicit(c, memory_order_relaxed));
}
/* Per-record paths (em_emit, em_iter_next, draining) read the flag once every this many
 * records; per-batch and per-task paths read it every time. */
#define EM__CANCEL_EVERY 256u
/* Sets err to EM_ECANCELED ("task canceled") and returns it. */
int em__cancel_err(em_err *err);

/* A block from the task's store, or through env->fetch_block when the store lacks it
 * (same contract as em_block_store_get). */
int em__task_get_block(em_task *t, em_block_id id, em_batch ***out, size_t *n, em_err *err);

/* Prefixes err with the node ("map 'fn' (rdd 4)") and returns err->code. */
int em__node_err(const em_plan_node *n, em_err *err);
/* The node's function resolved as `kind` (EM_EPLAN naming the node if not found). */
int em__node_fn(const em_plan_node *n, const char *name, em_fn_kind kind, em_any_fn *out,
                em_err *err);

/* The executor's half of an operator descriptor (engine/plan/plan.h em_op_desc): how the
 * iterator of one partition is built. The table is in iter.c, indexed by em_op. */
typedef struct em__exec_op {
    /* Sources and ops that read several partitions or parents: builds what it reads. */
    int (*build)(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                 em_err *err);
    /* One-to-one ops: on the parent's iterator of the same partition (taken on success
     * only; the caller frees it on failure). */
    int (*build_on)(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                    em_iter **out, em_err *err);
    bool fuse;    /* consecutive fusable nodes run as one iterator (fuse.c: map, filter) */
} em__exec_op;

/* Builds the iterator of partition `part` of node n (with caching when n->level != NONE).
 * A SHUFFLED node is read as a leaf (its reduce side). */
int em__exec_build(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                   em_err *err);

/* Iterator over a list of batches (takes the references and the array). */
em_iter *em__batches_iter_new(em_batch **batches, size_t n);
/* As above, adding every record handed out to *counter (metrics). */
em_iter *em__batches_iter_new_counted(em_batch **batches, size_t n, uint64_t *counter);

/* Collects records into batches: KV records into KV batches, plain records into FIXED
 * batches when width != 0 and val.n == width, else BYTES; a new batch when the kind changes
 * or at EM_BATCH_TARGET_BYTES. */
typedef struct em_batcher {
    uint32_t width;
    em_batch_builder bb;
    bool open;
    em_batch **batches;
    size_t n, cap;
    size_t last;   /* payload bytes of the batch closed last: the next one's reservation */
    /* FIXED records once a batch has reached EM_BATCH_TARGET_BYTES: filled straight into
     * an em_malloc_big buffer of EM_BIG_MIN bytes (huge pages: a cached dataset of GBs
     * costs one page fault per 2 MiB instead of per 4 KiB), taken by the batch whole.
     * Open (fx != NULL) only while the builder is closed. */
    uint8_t *fx;
    size_t fx_len, fx_cap;
    uint64_t fx_n;
} em_batcher;
void em__batcher_init(em_batcher *b, uint32_t width);
int em__batcher_add(em_batcher *b, const em_rec *r, em_err *err);
/* n FIXED records of `width` bytes, as n em__batcher_add calls would add them (the same
 * batches), copied into the open big FIXED batch a run at a time once there is one. */
int em__batcher_add_run(em_batcher *b, const uint8_t *p, uint32_t width, size_t n,
                        em_err *err);
/* Finishes the open batch; the caller takes *out (array + references). */
int em__batcher_finish(em_batcher *b, em_batch ***out, size_t *n, em_err *err);
void em__batcher_destroy(em_batcher *b);

/* Combiner (em_combiner) made from a node's fn / fn_create / fn_merge / zero, or for an
 * EM_NODE_ACC node from its accumulator functions (accum.c: in-place hooks plus copying
 * ops for the reducer's merge of spilled runs). Destroy it after its last use. */
typedef struct em_node_combiner {
    em_combiner comb;
    em_fn_ctx ctx;
    em_reduce_fn merge_value, merge_combiners;
    em_create_fn create;
    em_slice zero;
    bool has_zero;
    /* EM_NODE_ACC */
    em_acc_init_fn acc_init;       /* optional */
    em_acc_add_fn acc_add;         /* NULL: values are accumulators (merged with acc_merge) */
    em_acc_merge_fn acc_merge;
    em_acc_buf tmp, tmp2;          /* aligned scratch of acc_size bytes, made when needed */
} em_node_combiner;
int em__node_combiner_init(em_node_combiner *c, em_task *t, const em_plan_node *n,
                           em_err *err);
void em__node_combiner_destroy(em_node_combiner *c);   /* zeroed struct ok */
/* The EM_NODE_ACC part of em__node_combiner_init (accum.c). */
int em__acc_combiner_init(em_node_combiner *c, const em_plan_node *n, em_err *err);

/* AGGREGATE_ACC result: folds `in` into a fresh accumulator (res->acc_size bytes, init
 * res->fn_init, seq res->fn) and returns it as one FIXED record. width: the input node's
 * FIXED width (0 if unknown). */
int em__sink_aggregate_acc(em_task *t, const em_result_spec *res, uint32_t width, em_iter *in,
                           em_task_result *out, em_err *err);

/* A fused chain of narrow MAP/FILTER nodes (fuse.c): top is the last node, nstages nodes
 * down through parents[0]; parent is the input of the lowest one (taken). Records pass
 * from function to function through push-mode emitters. */
int em__fused_new(em_task *t, const em_plan_node *top, uint32_t nstages, em_iter *parent,
                  em_iter **out, em_err *err);

/* MAP_PARTITIONS (mappart.c): streams the function's output; takes parent on success. */
int em__map_partitions_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                           em_iter **out, em_err *err);
/* 0 if r is a plain record of n->width bytes (n declares a width), else EM_EINVAL saying
 * what r is (the caller adds the node). */
int em__check_width(const em_plan_node *n, const em_rec *r, em_err *err);

/* COGROUP_SPLIT of a cogroup or a join (cogroup.c); takes parent on success only. */
int em__cogroup_split_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                          em_iter **out, em_err *err);

/* Reduce-side iterators (reduce.c). */
int em__local_reduce_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                         em_iter **out, em_err *err);
int em__shuffled_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                     em_err *err);
/* Text sources (text.c). */
int em__text_file_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                      em_err *err);
int em__whole_text_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                       em_err *err);

/* Checkpoints (ckpt.c): write (takes parent on success) and file sources. */
int em__ckpt_write_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                       em_iter **out, em_err *err);
int em__ckpt_file_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                      em_err *err);

/* Decoded stage (stage.c). */
typedef struct em_stage {
    em_plan_graph *graph;
    em_plan_node *root;
    bool map_side;
    em_result_spec res;          /* strings and slices point into owned copies below */
    char *res_fn, *res_path, *res_fn_init;
    uint8_t *res_blob, *res_zero;
    /* Binary values that travel beside the JSON (exec.h, "BIG CONTEXT BLOBS"): a node's
     * context blob ("blob_ref"), the result's blob or zero value ("blob_ref"/"zero_ref" of
     * "result"). em__stage_resolve points them at the broadcast's bytes and keeps the
     * broadcast's batches (bs) referenced until em__stage_destroy: borrowed, never copied. */
    struct em_stage_ref {
        em_plan_node *node;      /* NULL: a field of res */
        uint8_t field;           /* EM__STAGE_REF_NODE, _RES_BLOB or _RES_ZERO */
        uint32_t bcast;
        uint64_t len;
        uint32_t crc;
        em_batch **bs;           /* the broadcast's batches, held after resolve */
        size_t nbs;
        bool resolved;           /* the target points at borrowed bytes */
    } *refs;
    size_t nrefs, cap_refs;
} em_stage;
enum { EM__STAGE_REF_NODE, EM__STAGE_REF_RES_BLOB, EM__STAGE_REF_RES_ZERO };
int em__stage_decode(const char *json, size_t len, em_stage *st, em_err *err);
void em__stage_destroy(em_stage *st);
/* Points the values that travel beside the JSON at the bytes of their broadcasts, from the
 * task's block store (or its env->fetch_block), holding a reference to each broadcast's
 * batch, or through env->borrow_blob when set; EM_ECORRUPT when one differs from its
 * reference. Once per decode. */
int em__stage_resolve(em_task *t, em_stage *st, em_err *err);

/* Sinks (sink.c). */
int em__run_map_sink(em_task *t, const em_plan_node *root, em_iter *in, em_task_result *out,
                     em_err *err);
/* width: the stage root's FIXED width (node->width), 0 when unknown. */
int em__run_result_sink(em_task *t, const em_result_spec *res, uint32_t width, em_iter *in,
                        em_task_result *out, em_err *err);

#endif /* EMBER_EXEC_INT_H */
