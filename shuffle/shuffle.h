/* shuffle/shuffle.h - moving keyed records between stages through real files.
 *
 * MAP SIDE: a map task hands every output record, with its reduce partition already chosen
 * (by a partitioner below, or round-robin), to an em_shuffle_writer. The writer keeps one
 * batch builder per reduce partition (or, with a combiner, one combining hash map); when a
 * builder reaches the block size or the task's memory budget is exceeded, it encodes the
 * partition's records as one zstd block and appends it to a spill file. Commit writes
 *   <dir>/shuffle_<sid>_<mid>.data   per reduce partition: its blocks, back to back
 *   <dir>/shuffle_<sid>_<mid>.index  offsets (FORMAT in shuffle/index.c)
 * each to a temporary name, renamed into place (fsynced first only with `sync`: a lost map
 * output is recomputed anyway, so by default, as in Spark, nothing waits for the disk), and
 * reports an em_map_status.
 *
 * REDUCE SIDE: em_shuffle_read fetches, map output by map output (so at most one segment is
 * in flight per reader), the byte range of one reduce partition, verifies every block's
 * checksums and hands the decoded batches on. A missing, short or corrupt segment is
 * EM_EFETCH naming shuffle, map and reduce ids; the scheduler then re-runs that map task.
 * An em_reducer aggregates (hash map), groups or sorts the records within a memory budget,
 * spilling sorted runs to disk beyond it and merging them at the end.
 *
 * ORDER: keys compare bytewise (memcmp, shorter first on a tie). Numeric keys use the
 * order-preserving encodings of engine/data (em_enc_i64).
 *
 * THREADS: writers, readers and reducers are one thread per object. Partitioners are
 * immutable after creation and may be shared. */
#ifndef EMBER_SHUFFLE_H
#define EMBER_SHUFFLE_H

#include "engine/base/base.h"
#include "engine/data/data.h"

#define EM_SHUFFLE_MAX_PARTS 65536u

/* ---------------------------------------------------------------- partitioners */

typedef struct em_partitioner_ops {
    const char *name;                                        /* "hash", "range" */
    uint32_t (*partition)(const void *self, em_slice key);   /* < nparts */
    void (*free)(void *self);                                /* optional: NULL if static */
} em_partitioner_ops;

typedef struct em_partitioner {
    const em_partitioner_ops *ops;
    void *self;
    uint32_t nparts;
} em_partitioner;

/* Hash partitioner: em_hash64(key, seed 0) mod nparts (nparts >= 1). */
void em_partitioner_hash_init(em_partitioner *p, uint32_t nparts);
/* True for a partitioner made by em_partitioner_hash_init (its partition of a key is
 * em_shuffle_key_hash(key) % nparts, so a caller may hash once and reuse the hash). */
bool em_partitioner_is_hash(const em_partitioner *p);
/* Range partitioner over nbounds sorted upper bounds (copied): partition i holds keys
 * k with bounds[i-1] < k <= bounds[i]; nparts = nbounds + 1. descending reverses the
 * partition order (partition 0 holds the largest keys). EM_EINVAL if bounds are unsorted. */
int em_partitioner_range_init(em_partitioner *p, const em_slice *bounds, uint32_t nbounds,
                              bool descending, em_err *err);
void em_partitioner_destroy(em_partitioner *p);    /* frees self via ops->free */
static inline uint32_t em_partitioner_part(const em_partitioner *p, em_slice key)
{
    return p->ops->partition(p->self, key);
}

/* ---------------------------------------------------------------- combiners
 * combine_by_key's three functions. Results are appended to `out` (passed empty). */
typedef struct em_combiner_ops {
    /* value -> combiner; optional: NULL means the combiner is the value itself */
    int (*create)(void *self, em_slice v, em_vbuf *out, em_err *err);
    int (*merge_value)(void *self, em_slice c, em_slice v, em_vbuf *out, em_err *err);
    int (*merge_combiners)(void *self, em_slice a, em_slice b, em_vbuf *out, em_err *err);
} em_combiner_ops;

/* In-place merge of two 8-byte values: acc = merge(acc, v). Cannot fail. */
typedef void (*em_merge8_fn)(uint8_t *acc, const uint8_t *v);

typedef struct em_combiner {
    const em_combiner_ops *ops;
    void *self;
    /* Optional fixed-width fast paths (NULL = none): when the current value and the
     * incoming one are both 8 bytes, merge_value8 / merge_combiners8 give exactly the
     * result of ops->merge_value / ops->merge_combiners (an 8-byte value), in place and
     * without a call through a buffer. Combine maps use them for built-in reducers such as
     * em.sum_i64; any other size goes through ops. */
    em_merge8_fn merge_value8, merge_combiners8;
    /* Optional in-place path for combiners of one fixed size (mutable accumulators,
     * em_rdd_aggregate_by_key_acc); acc_size 0 = none. With it every combiner is acc_size
     * bytes and a combine map keeps each one 16-byte aligned in its own memory and updates
     * it there: acc_create fills a zeroed combiner from the first record of its key,
     * acc_merge_value folds a further record into it, acc_merge_combiners folds another
     * combiner (acc_size bytes, any alignment) into it. ops stays required (the reducer's
     * merge of spilled runs uses ops->merge_combiners). A combiner value of another size
     * is an error of the hooks. */
    size_t acc_size;
    int (*acc_create)(void *self, void *acc, const em_rec *r, em_err *err);
    int (*acc_merge_value)(void *self, void *acc, const em_rec *r, em_err *err);
    int (*acc_merge_combiners)(void *self, void *acc, const void *other, em_err *err);
} em_combiner;

/* ---------------------------------------------------------------- map side */

typedef struct em_map_status {
    uint32_t shuffle_id;
    uint32_t map_id;
    uint32_t nparts;
    uint64_t *sizes;          /* nparts entries: bytes of each reduce partition's segment;
                                 owned, free with em_map_status_destroy */
    char loc[128];            /* where the files are: set by the caller (executor id) */
    uint64_t records_written;
    uint64_t bytes_written;   /* data file size */
    uint64_t spill_count;     /* blocks written to the spill file before commit */
    uint64_t spill_bytes;
} em_map_status;
void em_map_status_destroy(em_map_status *st);

typedef struct em_shuffle_writer_opts {
    const char *dir;              /* shuffle directory of this executor (must exist) */
    uint32_t shuffle_id;
    uint32_t map_id;
    uint32_t nparts;              /* reduce partitions, 1..EM_SHUFFLE_MAX_PARTS */
    em_rec_kind kind;             /* kind of the records written */
    uint32_t width;               /* FIXED width */
    const em_combiner *combiner;  /* optional: map-side combine of KV records by key */
    size_t mem_budget;            /* bytes buffered before spilling; 0 = 64 MiB */
    int zstd_level;               /* 0 = 1; negative: a fast level */
    bool sync;                    /* fsync data and index before the rename
                                     (ember.shuffle.sync); false = leave it to the kernel */
} em_shuffle_writer_opts;

typedef struct em_shuffle_writer em_shuffle_writer;

em_shuffle_writer *em_shuffle_writer_new(const em_shuffle_writer_opts *opts, em_err *err);
/* Adds one record bound for reduce partition `part` (< nparts). With a combiner, records
 * of equal keys are merged (create / merge_value). A failed writer is poisoned. */
int em_shuffle_writer_add(em_shuffle_writer *w, uint32_t part, const em_rec *r, em_err *err);
/* The hash behind hash partitioning: a hash partitioner sends key to
 * em_shuffle_key_hash(key) % nparts. */
static inline uint64_t em_shuffle_key_hash(em_slice key)
{
    return em_hash64(key.p, key.n, 0);
}
/* As em_shuffle_writer_add, given key_hash == em_shuffle_key_hash(r->key) (computed once by
 * the caller for partitioning; the combine map reuses it instead of hashing again). */
int em_shuffle_writer_add_hashed(em_shuffle_writer *w, uint32_t part, uint64_t key_hash,
                                 const em_rec *r, em_err *err);
/* Hint: a record with this partition and key hash will be added soon. With a combiner it
 * prefetches the combine map's slot, so a caller that buffers a few records (hash, hint,
 * then add) overlaps their cache misses. No effect on results; never fails. */
void em_shuffle_writer_prefetch(em_shuffle_writer *w, uint32_t part, uint64_t key_hash);
/* Writes the data and index files atomically and fills *st (caller destroys it). */
int em_shuffle_writer_commit(em_shuffle_writer *w, em_map_status *st, em_err *err);
void em_shuffle_writer_free(em_shuffle_writer *w);   /* NULL ok; removes temp/spill files */

/* Paths of a map output's files into buf; returns buf. */
const char *em_shuffle_data_path(const char *dir, uint32_t sid, uint32_t mid, char *buf,
                                 size_t n);
const char *em_shuffle_index_path(const char *dir, uint32_t sid, uint32_t mid, char *buf,
                                  size_t n);
/* Removes every file of shuffle sid under dir. */
void em_shuffle_remove_files(const char *dir, uint32_t sid);

/* A background thread deleting the files of dead shuffles under one directory, so that the
 * thread that learns a shuffle died (the driver thread in local mode, an executor's loop
 * thread in cluster mode) does not wait for the disk (shuffle/cleaner.c). Never fails:
 * without a thread it deletes synchronously. `dir` is copied. */
typedef struct em_shuffle_cleaner em_shuffle_cleaner;
em_shuffle_cleaner *em_shuffle_cleaner_new(const char *dir);
/* Queues the files of shuffle sid for deletion and returns at once. Any thread. The
 * shuffle's id must never be written again (ids are not reused). */
void em_shuffle_cleaner_remove(em_shuffle_cleaner *c, uint32_t sid);
/* Returns when every removal queued before the call is done. Any thread. */
void em_shuffle_cleaner_wait(em_shuffle_cleaner *c);
/* Finishes the queued removals, stops the thread, frees c. NULL ok. Not concurrently with
 * the other calls on c. */
void em_shuffle_cleaner_free(em_shuffle_cleaner *c);

/* ---------------------------------------------------------------- fetching */

/* Where a reducer gets segments from: local files now, remote executors in cluster mode.
 * fetch appends the segment bytes of (sid, mid, reduce) found at `loc` to out; `size` is
 * the segment's size as its map status told it, and a remote fetcher refuses a reply that
 * grows past it (a peer cannot make a reducer buffer more than it expects). */
typedef struct em_fetcher_ops {
    int (*fetch)(void *self, const char *loc, uint32_t sid, uint32_t mid, uint32_t reduce,
                 uint64_t size, em_vbuf *out, em_err *err);
} em_fetcher_ops;

typedef struct em_fetcher {
    const em_fetcher_ops *ops;
    void *self;
} em_fetcher;

/* Reads segment (sid, mid, reduce) from the index and data files under dir and appends it
 * to out. Errors are EM_EFETCH naming ids and path (missing file, bad index, short read). */
int em_shuffle_fetch_local(const char *dir, uint32_t sid, uint32_t mid, uint32_t reduce,
                           em_vbuf *out, em_err *err);
/* A fetcher whose `loc` is the shuffle directory itself (local mode). Static; no free. */
em_fetcher em_fetcher_local(void);

typedef struct em_shuffle_src {
    uint32_t map_id;
    const char *loc;       /* borrowed for the call */
    uint64_t size;         /* expected segment bytes from the map status (0 = skip fetch) */
} em_shuffle_src;

/* Fetches and decodes reduce partition `reduce` of shuffle sid from each source in order,
 * passing each batch to on_batch (which takes the reference). A missing, short or corrupt
 * segment returns EM_EFETCH with *failed_map set to the map id (message names shuffle, map
 * and reduce). on_batch's error is passed through unchanged, and so is EM_ENOMEM (running
 * out of memory here is not the map output's fault; *failed_map untouched). */
int em_shuffle_read(const em_fetcher *f, uint32_t sid, uint32_t reduce,
                    const em_shuffle_src *srcs, uint32_t nsrcs,
                    int (*on_batch)(void *ud, em_batch *b, em_err *err), void *ud,
                    uint32_t *failed_map, em_err *err);

/* ---------------------------------------------------------------- reduce side */

typedef enum em_reduce_mode {
    EM_REDUCE_AGGREGATE = 1,  /* KV in; KV out: one record per key, value = combiner */
    EM_REDUCE_GROUP = 2,      /* KV in; KV out: one record per key, value = em_list of values */
    EM_REDUCE_SORT = 3,       /* any kind with keys (KV) in; same records out, sorted by key */
} em_reduce_mode;

typedef struct em_reducer_opts {
    em_reduce_mode mode;
    em_rec_kind kind;              /* input kind (KV for every mode now) */
    uint32_t width;
    const em_combiner *combiner;   /* AGGREGATE */
    bool inputs_are_combiners;     /* AGGREGATE: values are already combiners (map-side
                                      combine ran): use merge_combiners, not create/merge_value */
    bool descending;               /* SORT */
    size_t mem_budget;             /* bytes before spilling a sorted run; 0 = 64 MiB */
    const char *spill_dir;         /* must exist */
    int zstd_level;                /* 0 = 1; negative: a fast level */
    uint32_t max_fan_in;           /* runs one merge opens at once; 0 = from the open-file
                                      limit (reducer.c: merge_fan_in) */
} em_reducer_opts;

typedef struct em_reducer em_reducer;

typedef struct em_reducer_stats {
    uint64_t records_in;
    uint64_t records_out;
    uint64_t spill_count;          /* files written: sorted runs and hot GROUP groups */
    uint64_t spill_bytes;          /* their compressed bytes */
    uint64_t hot_groups;           /* GROUP groups that outgrew the budget while merging and
                                      went to a temporary file (also counted above) */
    uint64_t merge_passes;         /* levels of intermediate merging (more runs than the
                                      fan-in); each merged run also counts as a spill */
} em_reducer_stats;

em_reducer *em_reducer_new(const em_reducer_opts *opts, em_err *err);
int em_reducer_add(em_reducer *r, const em_rec *rec, em_err *err);
int em_reducer_add_batch(em_reducer *r, const em_batch *b, em_err *err);
/* Ends the input; afterwards only em_reducer_next. */
int em_reducer_finish(em_reducer *r, em_err *err);
/* 1 and *out (borrowed until the next call or free), 0 at the end, <0 on error.
 * AGGREGATE and GROUP emit keys in ascending byte order once anything spilled, and in
 * unspecified order otherwise; SORT in the requested order.
 * GROUP: the value is one em_list of the key's values in arrival order, so one key's values
 * must fit in memory once (as in Spark's groupByKey). While runs are merged, a group whose
 * list passes the budget goes on into a temporary file instead of memory, and the list is
 * assembled once, at its exact size, when it is emitted (the file is removed then). */
int em_reducer_next(em_reducer *r, em_rec *out, em_err *err);
/* GROUP only, in place of em_reducer_next (do not mix the two on one reducer): streams a
 * group's values without assembling them. em_reducer_next_group moves to the next group:
 * 1 and *key (borrowed until the next em_reducer_next_group or free), 0 at the end, <0 on
 * error; values of the previous group not taken are skipped. em_reducer_next_value then
 * gives the group's values in arrival order: 1 and *val (borrowed until the next call of
 * either function), 0 after the last one. Key order as for em_reducer_next. Memory: the
 * merge's buffers only, whatever the size of a group. */
int em_reducer_next_group(em_reducer *r, em_slice *key, em_err *err);
int em_reducer_next_value(em_reducer *r, em_slice *val, em_err *err);
void em_reducer_stats_get(const em_reducer *r, em_reducer_stats *st);
void em_reducer_free(em_reducer *r);   /* NULL ok; removes its spill files */

/* Spill list: an append-only sequence of byte strings (one key's values of one join side,
 * one hot group) kept in memory up to a budget and appended to a temporary file beyond it
 * (zstd blocks, checksummed: the reducer's run format), then read back, in order, any number
 * of times, one block at a time. The file is removed by reset, free and any failed add.
 * One thread per object. */
typedef struct em_spill_list em_spill_list;

/* mem_budget: bytes of values held in memory before the file is used (0 = none: every value
 * goes to the file); spill_dir must exist (copied); zstd_level 0 = 1 (negative: a fast
 * level). NULL + EM_ENOMEM. */
em_spill_list *em_spill_list_new(const char *spill_dir, size_t mem_budget, int zstd_level,
                                 em_err *err);
/* Appends a copy of v. EM_EINVAL once reading started (until reset); EM_EIO / EM_ENOSPC
 * naming the file, EM_ENOMEM. After a failed add the file is removed and every call but
 * reset and free fails with the first error. */
int em_spill_list_add(em_spill_list *l, em_slice v, em_err *err);
uint64_t em_spill_list_count(const em_spill_list *l);       /* values added since reset */
bool em_spill_list_is_spilled(const em_spill_list *l);      /* some value is in the file */
/* Ends the adds (first call) and restarts reading at the first value. */
int em_spill_list_rewind(em_spill_list *l, em_err *err);
/* 1 and *v (borrowed until the next call on l), 0 after the last value, <0 on error
 * (EM_ECORRUPT / EM_EIO naming the file). Only after em_spill_list_rewind. */
int em_spill_list_next(em_spill_list *l, em_slice *v, em_err *err);
/* Empties the list and removes its file; the list takes adds again. */
void em_spill_list_reset(em_spill_list *l);
/* Files written and their bytes since the list was made (all resets included). */
void em_spill_list_spills(const em_spill_list *l, uint64_t *count, uint64_t *bytes);
void em_spill_list_free(em_spill_list *l);   /* NULL ok; removes the file */

#endif /* EMBER_SHUFFLE_H */
