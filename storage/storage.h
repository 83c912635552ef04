/* storage/storage.h - the per-executor block store: a memory store with a byte budget and
 * LRU eviction, and a disk store of zstd-compressed, checksummed blocks (engine/data block
 * format), for cached RDD partitions, broadcast values, parallelized input and spills.
 *
 * A stored block is a sequence of batches (one partition of a dataset is usually several
 * batches). Levels follow Spark: MEMORY_ONLY blocks that do not fit are dropped (the reader
 * recomputes them from lineage); MEMORY_AND_DISK blocks go to disk when evicted or when
 * they do not fit; DISK_ONLY blocks never stay in memory.
 *
 * THREADS: every em_block_store_* function may be called from any thread (one mutex guards
 * the maps and the LRU list; disk I/O happens outside it).
 * FILES: disk blocks live under <dir>/blocks/<name>.blk, written to a temporary name and
 * renamed, so a half-written block is never read back as valid. em_block_store_free removes
 * the directory's blocks/ subtree. */
#ifndef EMBER_STORAGE_H
#define EMBER_STORAGE_H

#include "engine/base/base.h"
#include "engine/data/data.h"

typedef enum em_block_type {
    EM_BLOCK_RDD = 1,       /* a = rdd id, b = partition */
    EM_BLOCK_BROADCAST = 2, /* a = broadcast id */
    EM_BLOCK_INPUT = 3,     /* a = rdd id, b = partition: parallelized driver data */
    EM_BLOCK_TEMP = 4,      /* a, b, c free for the owner */
} em_block_type;

typedef struct em_block_id {
    uint32_t type;   /* em_block_type */
    uint32_t a, b, c;
} em_block_id;

/* "rdd_3_7", "broadcast_2", "input_4_0", "temp_1_2_3" into buf (>= 48 bytes). */
const char *em_block_id_str(em_block_id id, char *buf, size_t n);

typedef enum em_storage_level {
    EM_STORAGE_NONE = 0,
    EM_STORAGE_MEMORY_ONLY = 1,
    EM_STORAGE_MEMORY_AND_DISK = 2,
    EM_STORAGE_DISK_ONLY = 3,
} em_storage_level;

typedef struct em_store_opts {
    size_t mem_budget;      /* bytes for cached blocks; 0 = 256 MiB */
    const char *dir;        /* directory for disk blocks (created if missing; only its
                               blocks/ subtree is removed on free); NULL = a new
                               $TMPDIR/ember-<pid>-XXXXXX, removed whole on free */
    int zstd_level;         /* 0 = 1; negative: a fast level */
    struct em_memory_manager *mm;   /* addition: optional; when set the budget is the
                                       manager's storage limit, mem_budget is ignored */
} em_store_opts;

typedef struct em_block_store em_block_store;

typedef struct em_store_stats {
    uint64_t mem_bytes;       /* bytes of blocks held in memory */
    uint64_t disk_bytes;      /* bytes of block files on disk */
    uint64_t nblocks_mem;
    uint64_t nblocks_disk;
    uint64_t evictions;       /* blocks dropped or moved out of memory */
    uint64_t disk_writes;     /* blocks written to disk */
} em_store_stats;

/* Fails (NULL, err naming the path) if the directory or its blocks/ cannot be created. */
em_block_store *em_block_store_new(const em_store_opts *opts, em_err *err);
/* NULL ok; removes its disk blocks. Must not run concurrently with other calls on bs. */
void em_block_store_free(em_block_store *bs);
/* The zstd level of blocks written to disk from now on (0 = 1): an executor's store exists
 * before the driver's settings arrive at registration. Any thread. */
void em_block_store_set_zstd_level(em_block_store *bs, int level);

/* Stores `n` batches under id at `level` (replacing an existing block). Takes one reference
 * to each batch, also on failure. A MEMORY_ONLY block larger than the whole budget is not
 * stored (returns 0: the reader recomputes). EM_EIO/EM_ENOSPC on disk failures (naming the
 * file; no partial file is left and the block is absent), EM_EINVAL for a bad level,
 * EM_ENOMEM. Other blocks evicted to make room are dropped (MEMORY_ONLY) or written to disk
 * (MEMORY_AND_DISK; dropped and logged if that write fails). docs/storage.md has the rules. */
int em_block_store_put_take(em_block_store *bs, em_block_id id, em_batch **batches, size_t n,
                            em_storage_level level, em_err *err);
/* Returns 1 and a new array of new references (*out, *n; free each with em_batch_unref and
 * the array with em_free) when the block is present (memory, or disk: read back, verified
 * and, for MEMORY_AND_DISK, re-cached if it fits); 0 when absent; <0 on error (a corrupt
 * disk block is EM_ECORRUPT naming the file, and is dropped; so is a block whose file cannot
 * be read, e.g. EM_ENOTFOUND if it was deleted; EM_ENOMEM keeps the block). *out = NULL and
 * *n = 0 unless 1 is returned. Touches the LRU. */
int em_block_store_get(em_block_store *bs, em_block_id id, em_batch ***out, size_t *n,
                       em_err *err);
bool em_block_store_contains(em_block_store *bs, em_block_id id);
void em_block_store_remove(em_block_store *bs, em_block_id id);           /* absent ok */
/* Removes every block of the given type whose `a` equals a (an RDD's partitions). */
void em_block_store_remove_all(em_block_store *bs, uint32_t type, uint32_t a);
void em_block_store_stats(em_block_store *bs, em_store_stats *out);
/* Borrowed: the directory that holds disk blocks, valid until em_block_store_free. */
const char *em_block_store_dir(const em_block_store *bs);

/* ---------------------------------------------------------------- additions: block files
 * Self-describing files of engine/data blocks with a checksummed trailer (FORMAT in
 * storage/blockfile.c), read back by any process: reliable checkpoints' part files. Both
 * sides stream one batch at a time. Errors name the file. Any thread, one object each. */
typedef struct em_block_file_writer em_block_file_writer;
/* Creates "<path>.tmp.<pid>.<n>"; nothing appears under path before commit. */
int em_block_file_writer_open(const char *path, int zstd_level, em_block_file_writer **out,
                              em_err *err);
int em_block_file_writer_add(em_block_file_writer *w, const em_batch *b, em_err *err);
/* Writes the trailer, fsyncs and renames onto path; consumes w also on failure (then the
 * temporary file is removed: EM_ENOSPC / EM_EIO naming it). *nrecs (NULL ok) = records. */
int em_block_file_writer_commit(em_block_file_writer *w, uint64_t *nrecs, em_err *err);
void em_block_file_writer_abort(em_block_file_writer *w);   /* NULL ok; removes the tmp */

typedef struct em_block_file_reader em_block_file_reader;
/* Opens path and verifies its trailer: EM_ENOTFOUND (missing), EM_EIO, EM_ECORRUPT
 * ("checkpoint file <path>: ..."). */
int em_block_file_reader_open(const char *path, em_block_file_reader **out, em_err *err);
uint64_t em_block_file_reader_nrecs(const em_block_file_reader *r);  /* from the trailer */
/* 1 and a new batch (caller unrefs), 0 at the end (after checking the block and record
 * counts against the trailer), <0 on error (EM_ECORRUPT naming the file and offset). */
int em_block_file_reader_next(em_block_file_reader *r, em_batch **out, em_err *err);
void em_block_file_reader_close(em_block_file_reader *r);          /* NULL ok */

/* ---------------------------------------------------------------- additions: memory manager
 * One per executor, shared by execution (task buffers: shuffle writers, reducers) and
 * storage (the block store's memory copies): Spark's unified memory model.
 *   - total = ember.executor.memory;
 *   - storage may use whatever execution does not (the store's budget becomes
 *     total - execution used, so cached blocks never push out execution memory);
 *   - execution may take memory from storage by evicting cached blocks (LRU; MEMORY_AND_DISK
 *     blocks are spilled), but never below the protected storage floor
 *     total * storage_fraction (ember.memory.storageFraction, default 0.5);
 *   - execution memory is never evicted: a task gets what is free (+ what eviction frees)
 *     and spills earlier when granted less than it asked for.
 * A store created with em_store_opts.mm registers itself as the manager's evictor (one
 * store per manager) and ignores mem_budget. Thread-safe. docs/out-of-core.md. */
typedef struct em_memory_manager em_memory_manager;
/* total 0 = 256 MiB; storage_fraction outside [0, 1] is clamped. NULL on OOM. */
em_memory_manager *em_memory_manager_new(size_t total, double storage_fraction);
void em_memory_manager_free(em_memory_manager *mm);   /* NULL ok; after its store */
/* Changes the storage floor (an executor learns the driver's fraction at registration). */
void em_memory_manager_set_storage_fraction(em_memory_manager *mm, double storage_fraction);
/* Grants up to `want` bytes of execution memory (possibly fewer, possibly 0), evicting
 * cached blocks above the storage floor when free memory is short. */
size_t em_memory_acquire_execution(em_memory_manager *mm, size_t want);
void em_memory_release_execution(em_memory_manager *mm, size_t bytes);
/* What the store may hold now: total - execution used. */
size_t em_memory_storage_limit(em_memory_manager *mm);

typedef struct em_memory_stats {
    size_t total, storage_floor;
    size_t execution_used, storage_used;
    uint64_t storage_evicted_bytes;   /* bytes of cached blocks evicted for execution */
} em_memory_stats;
void em_memory_stats_get(em_memory_manager *mm, em_memory_stats *out);

#endif /* EMBER_STORAGE_H */
