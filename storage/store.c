/* storage/store.c - the per-executor block store: an LRU memory store under a byte budget in
 * front of a disk store of block files (disk.c).
 *
 * MEMORY MANAGER (optional, memory.c): with opts->mm the budget is not fixed but
 * em_memory_storage_limit() (total - execution used), read on every put; charge/uncharge
 * mirror the charged bytes into the manager, and evict_for_execution() is its evictor
 * (LRU victims as for a put, spills written by the calling task's thread).
 *
 * DESIGN
 *   One mutex (bs->lock) guards a hash map from em_block_id to an entry, the LRU list and
 *   the counters. An entry describes one block:
 *     - a memory copy (in_mem: batches[0..nbatches), nbytes of payload). When `charged`
 *       it is counted in bs->mem_bytes and linked in the LRU list; a memory copy that is
 *       being spilled is held (so readers still hit it) but no longer charged.
 *     - a disk copy (on_disk: <dir>/blocks/<name>.blk, disk_bytes, disk_nbatches).
 *     - a per-block lock: `busy` plus `waiters`. Every file operation on a block (write,
 *       read, unlink) happens outside bs->lock while holding the block's busy flag, so two
 *       threads never race on one file; bs->idle is broadcast when a busy flag clears.
 *       A thread holds at most one busy flag it waited for (eviction only marks entries
 *       that are not busy), so waiting cannot deadlock.
 *   An entry with neither copy, not busy and without waiters is removed from the map.
 *
 *   Memory used = sum of em_batch_nbytes of charged entries (batch headers and arrays are
 *   not counted). A put that would exceed mem_budget evicts least-recently used charged
 *   entries (em_block_store_get of a memory copy moves it to the front):
 *     MEMORY_ONLY, or already on disk:  dropped at once.
 *     MEMORY_AND_DISK not yet on disk:  uncharged and marked busy under the lock; after
 *       the lock is released the evicting thread writes the file and then drops the memory
 *       copy. Until then memory exceeds the budget by the blocks being spilled; the new
 *       block's bytes are charged before the lock is released, so two puts never both
 *       count on the same freed bytes. If the spill fails the block is dropped (logged;
 *       the reader recomputes it, as for a MEMORY_ONLY block).
 *   Eviction starts only if enough unbusy bytes can be freed; the inserted block is never
 *   a victim (it is uncharged while its put runs). A block larger than the whole budget,
 *   or that does not fit even after eviction, is not stored (MEMORY_ONLY, put returns 0)
 *   or goes straight to disk (MEMORY_AND_DISK). DISK_ONLY blocks never enter memory.
 *
 *   Reading a block back from disk verifies it (disk.c); a corrupt or unreadable file is
 *   an error naming the file, and the block is dropped so the caller recomputes it. A
 *   MEMORY_AND_DISK block read back is re-cached only if it fits in the free budget without
 *   evicting anything, and keeps its file, so a later eviction is free. WHY no eviction on
 *   read: iterative jobs scan a cached RDD in the same order every pass; evicting on read
 *   makes LRU miss on every block of such a scan, while keeping the resident blocks makes
 *   most of them hit.
 *
 * THREADS: every public function may be called from any thread. bs->lock is never held
 *   across file I/O or compression; batches are freed outside it where convenient.
 * FILES: <dir>/blocks/ holds the block files; <dir> is opts->dir or a fresh
 *   $TMPDIR/ember-<pid>-XXXXXX (mkdtemp). em_block_store_free removes blocks/, and <dir>
 *   too when the store created it. A directory must not be shared by two live stores. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/base/hmap.h"
#include "storage/storage_int.h"

#define DEFAULT_BUDGET ((size_t)256 << 20)
#define INITIAL_SLOTS 128

typedef struct entry {
    em_block_id id;
    em_storage_level level;     /* level of the last put */
    /* memory copy: batches owned (one reference each) while in_mem */
    bool in_mem;
    bool charged;               /* in bs->mem_bytes and the LRU list; implies in_mem */
    em_batch **batches;
    size_t nbatches;
    size_t nbytes;              /* payload bytes of the memory copy */
    /* disk copy */
    bool on_disk;
    uint64_t disk_bytes;        /* file size */
    size_t disk_nbatches;       /* batches in the file */
    /* per-block lock (see DESIGN) */
    bool busy;
    unsigned waiters;
    struct entry *lru_prev, *lru_next;   /* while charged; prev is more recent */
    struct entry *spill_next;            /* on an evicting thread's spill list */
} entry;

struct em_block_store {
    pthread_mutex_t lock;
    pthread_cond_t idle;        /* broadcast when some entry's busy flag clears */
    /* all below guarded by lock */
    em_hmap map;                /* em_hmap (engine/base/hmap.h) of map_slot: id -> entry */
    entry *lru_head, *lru_tail; /* most / least recently used charged entry */
    uint64_t mem_bytes, disk_bytes, nblocks_mem, nblocks_disk, evictions, disk_writes;
    /* immutable after new */
    size_t budget;              /* bytes (unused when mm is set) */
    em_memory_manager *mm;      /* optional unified memory manager (borrowed) */
    atomic_int zstd_level;      /* the one setting that may change: em_block_store_set_zstd_level */
    bool own_dir;               /* dir was created by the store: removed on free */
    char *dir;
    char *blocks_dir;
};

/* ---------------------------------------------------------------- map, LRU, accounting
 * Everything in this section runs with bs->lock held. */

/* A slot of bs->map. Entries are heap objects: they stay put while the table grows. */
typedef struct map_slot {
    uint32_t h32;
    uint32_t used;
    entry *e;
} map_slot;

static uint32_t id_hash(em_block_id id)
{
    uint64_t x = (uint64_t)id.type << 32 | id.a;
    uint64_t y = (uint64_t)id.b << 32 | id.c;
    return em_hmap_h32(em_mix64(x ^ em_mix64(y + 0x9e3779b97f4a7c15ULL)));
}

static bool id_eq(em_block_id x, em_block_id y)
{
    return x.type == y.type && x.a == y.a && x.b == y.b && x.c == y.c;
}

static bool slot_eq(const void *slot, const void *id)
{
    return id_eq(((const map_slot *)slot)->e->id, *(const em_block_id *)id);
}

static entry *map_find(em_block_store *bs, em_block_id id)
{
    const map_slot *s = em_hmap_find(&bs->map, id_hash(id), slot_eq, &id, NULL);
    return s ? s->e : NULL;
}

/* Finds the entry of id or adds an empty one; NULL on OOM. */
static entry *map_find_or_add(em_block_store *bs, em_block_id id)
{
    entry *e = map_find(bs, id);
    if (e)
        return e;
    if (em_hmap_needs_grow(&bs->map) && em_hmap_grow(&bs->map) < 0)
        return NULL;
    if ((e = em_calloc(1, sizeof *e)) == NULL)
        return NULL;
    e->id = id;
    void *hole = NULL;
    uint32_t h = id_hash(id);
    em_hmap_find(&bs->map, h, slot_eq, &id, &hole);
    *(map_slot *)hole = (map_slot){h, 1, e};
    bs->map.n++;
    return e;
}

static void lru_unlink(em_block_store *bs, entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        bs->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        bs->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(em_block_store *bs, entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = bs->lru_head;
    if (bs->lru_head)
        bs->lru_head->lru_prev = e;
    else
        bs->lru_tail = e;
    bs->lru_head = e;
}

static void charge(em_block_store *bs, entry *e)
{
    EM_ASSERT(e->in_mem && !e->charged);
    e->charged = true;
    bs->mem_bytes += e->nbytes;
    if (bs->mm)
        em__memory_storage_delta(bs->mm, e->nbytes, 0);
    bs->nblocks_mem++;
    lru_push_front(bs, e);
}

static void uncharge(em_block_store *bs, entry *e)
{
    if (!e->charged)
        return;
    e->charged = false;
    bs->mem_bytes -= e->nbytes;
    if (bs->mm)
        em__memory_storage_delta(bs->mm, 0, e->nbytes);
    bs->nblocks_mem--;
    lru_unlink(bs, e);
}

/* Detaches the memory copy; the caller drops the returned batches (outside the lock). */
static em_batch **take_mem(em_block_store *bs, entry *e, size_t *n)
{
    em_batch **v = e->batches;

    uncharge(bs, e);
    *n = e->in_mem ? e->nbatches : 0;
    e->in_mem = false;
    e->batches = NULL;
    e->nbatches = 0;
    e->nbytes = 0;
    return v;
}

/* Forgets the disk copy in the accounts; returns true if the caller must unlink the file
 * (it holds the block's busy flag, so nobody else touches the file meanwhile). */
static bool forget_disk(em_block_store *bs, entry *e)
{
    if (!e->on_disk)
        return false;
    e->on_disk = false;
    bs->disk_bytes -= e->disk_bytes;
    bs->nblocks_disk--;
    e->disk_bytes = 0;
    e->disk_nbatches = 0;
    return true;
}

static void note_disk(em_block_store *bs, entry *e, uint64_t bytes, size_t nbatches)
{
    e->on_disk = true;
    e->disk_bytes = bytes;
    e->disk_nbatches = nbatches;
    bs->disk_bytes += bytes;
    bs->nblocks_disk++;
    bs->disk_writes++;
}

static void maybe_free_entry(em_block_store *bs, entry *e)
{
    if (e->busy || e->waiters || e->in_mem || e->on_disk)
        return;
    em_hmap_remove(&bs->map, em_hmap_find(&bs->map, id_hash(e->id), slot_eq, &e->id, NULL));
    em_free(e);
}

/* Takes the block's busy flag, waiting while another thread holds it. e stays valid. */
static void acquire(em_block_store *bs, entry *e)
{
    e->waiters++;
    while (e->busy)
        pthread_cond_wait(&bs->idle, &bs->lock);
    e->waiters--;
    e->busy = true;
}

/* Drops the busy flag; e may be freed (do not use it afterwards). */
static void release(em_block_store *bs, entry *e)
{
    e->busy = false;
    pthread_cond_broadcast(&bs->idle);
    maybe_free_entry(bs, e);
}

/* ---------------------------------------------------------------- helpers without lock */

static void unref_all(em_batch **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        em_batch_unref(v[i]);
}

static void block_path(const em_block_store *bs, em_block_id id, char *buf, size_t n)
{
    char name[64];
    snprintf(buf, n, "%s/%s.blk", bs->blocks_dir, em_block_id_str(id, name, sizeof name));
}

static void unlink_block(const em_block_store *bs, em_block_id id)
{
    char path[EM__STORAGE_PATH_MAX];

    block_path(bs, id, path, sizeof path);
    if (unlink(path) < 0 && errno != ENOENT && errno != ENOTDIR)
        em_log(EM_LOG_WARN, "storage: cannot remove %s: %s", path, strerror(errno));
}

/* A new array of new references to v[0..n); NULL on OOM. */
static em_batch **dup_refs(em_batch *const *v, size_t n)
{
    em_batch **out = em_malloc((n ? n : 1) * sizeof *out);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = em_batch_ref(v[i]);
    return out;
}

/* ---------------------------------------------------------------- eviction */

/* Makes room for nbytes more charged bytes by evicting LRU victims (lock held). Victims to
 * spill are marked busy and pushed on *spills; the caller runs spill_list() after
 * unlocking. Returns false, evicting nothing, if not enough can be freed. */
/* The byte budget now: fixed, or what the memory manager leaves to storage (lock held). */
static size_t store_limit(em_block_store *bs)
{
    return bs->mm ? em_memory_storage_limit(bs->mm) : bs->budget;
}

/* Evicts non-busy LRU victims until `need` bytes are uncharged or none is left (lock held;
 * spills as make_room). Returns the bytes uncharged. */
static uint64_t evict_lru(em_block_store *bs, uint64_t need, entry **spills)
{
    uint64_t freed = 0;
    entry *v = bs->lru_tail;
    while (freed < need && v) {
        if (v->busy) {
            v = v->lru_prev;
            continue;
        }
        entry *prev = v->lru_prev;
        freed += v->nbytes;
        uncharge(bs, v);
        bs->evictions++;
        if (v->level == EM_STORAGE_MEMORY_AND_DISK && !v->on_disk) {
            v->busy = true;           /* spill_list() writes it, then drops the memory */
            v->spill_next = *spills;
            *spills = v;
        } else {
            size_t n;
            em_batch **old = take_mem(bs, v, &n);
            unref_all(old, n);
            em_free(old);
            maybe_free_entry(bs, v);
        }
        v = prev;
    }
    return freed;
}

static bool make_room(em_block_store *bs, size_t nbytes, entry **spills)
{
    size_t limit = store_limit(bs);
    if (nbytes > limit)
        return false;
    if (bs->mem_bytes + nbytes <= limit)
        return true;
    uint64_t need = bs->mem_bytes + nbytes - limit, avail = 0;
    for (entry *v = bs->lru_tail; v && avail < need; v = v->lru_prev)
        if (!v->busy)
            avail += v->nbytes;
    if (avail < need)
        return false;
    evict_lru(bs, need, spills);
    return true;
}

static int zstd_level(em_block_store *bs)
{
    return atomic_load_explicit(&bs->zstd_level, memory_order_relaxed);
}

/* Writes each victim (busy, in memory, uncharged) to disk, then drops its memory copy.
 * Called without the lock. A failed spill drops the block (the reader recomputes it). */
static void spill_list(em_block_store *bs, entry *v)
{
    char path[EM__STORAGE_PATH_MAX];

    while (v) {
        entry *next = v->spill_next;
        em_err err = EM_ERR_INIT;
        uint64_t bytes = 0;
        size_t n;

        block_path(bs, v->id, path, sizeof path);
        int rc = em__storage_write_file(path, v->batches, v->nbatches, zstd_level(bs), &bytes,
                                        &err);
        if (rc < 0)
            em_log(EM_LOG_WARN, "storage: spill failed, block dropped: %s", err.msg);
        pthread_mutex_lock(&bs->lock);
        if (rc == 0)
            note_disk(bs, v, bytes, v->nbatches);
        em_batch **old = take_mem(bs, v, &n);
        v->spill_next = NULL;
        release(bs, v);
        pthread_mutex_unlock(&bs->lock);
        unref_all(old, n);
        em_free(old);
        v = next;
    }
}

/* The memory manager's evictor: execution needs `bytes` of what cached blocks hold. */
static size_t evict_for_execution(void *ud, size_t bytes)
{
    em_block_store *bs = ud;
    entry *spills = NULL;
    pthread_mutex_lock(&bs->lock);
    uint64_t freed = evict_lru(bs, bytes, &spills);
    pthread_mutex_unlock(&bs->lock);
    spill_list(bs, spills);
    return (size_t)freed;
}

/* ---------------------------------------------------------------- lifecycle */

static int make_dir(em_block_store *bs, const char *dir, em_err *err)
{
    if (dir != NULL && dir[0] != '\0') {
        if ((bs->dir = em_strdup(dir)) == NULL)
            return em_err_set(err, EM_ENOMEM, "block store: out of memory");
        return em_mkdir_p(bs->dir, err);
    }
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    size_t n = strlen(tmp) + 64;
    if ((bs->dir = em_malloc(n)) == NULL)
        return em_err_set(err, EM_ENOMEM, "block store: out of memory");
    snprintf(bs->dir, n, "%s/ember-%ld-XXXXXX", tmp, (long)getpid());
    if (mkdtemp(bs->dir) == NULL)
        return em_err_set(err, EM_EIO, "%s: cannot create block store directory: %s", bs->dir,
                          strerror(errno));
    bs->own_dir = true;
    return 0;
}

em_block_store *em_block_store_new(const em_store_opts *opts, em_err *err)
{
    em_store_opts o = {0};
    em_block_store *bs;

    if (opts)
        o = *opts;
    if ((bs = em_calloc(1, sizeof *bs)) == NULL) {
        em_err_set(err, EM_ENOMEM, "block store: out of memory");
        return NULL;
    }
    bs->budget = o.mem_budget ? o.mem_budget : DEFAULT_BUDGET;
    atomic_init(&bs->zstd_level, o.zstd_level);   /* 0 = 1: em_block_encode */
    em_hmap_init(&bs->map, sizeof(map_slot), offsetof(map_slot, used), INITIAL_SLOTS);
    if (em_hmap_grow(&bs->map) < 0) {
        em_err_set(err, EM_ENOMEM, "block store: out of memory");
        goto fail;
    }
    if (make_dir(bs, o.dir, err) < 0)
        goto fail;
    /* Room for "/<name>.blk" (< 64) and the ".tmp.<pid>.<n>" suffix of em_file. */
    size_t len = strlen(bs->dir) + sizeof "/blocks";
    if (len + 128 > EM__STORAGE_PATH_MAX) {
        em_err_set(err, EM_EINVAL, "%s: block store directory path too long", bs->dir);
        goto fail;
    }
    if ((bs->blocks_dir = em_malloc(len)) == NULL) {
        em_err_set(err, EM_ENOMEM, "block store: out of memory");
        goto fail;
    }
    snprintf(bs->blocks_dir, len, "%s/blocks", bs->dir);
    if (em_mkdir_p(bs->blocks_dir, err) < 0)
        goto fail;
    pthread_mutex_init(&bs->lock, NULL);
    pthread_cond_init(&bs->idle, NULL);
    if (o.mm) {
        bs->mm = o.mm;
        em__memory_set_evictor(bs->mm, evict_for_execution, bs);
    }
    return bs;
fail:
    if (bs->own_dir)
        rmdir(bs->dir);
    em_free(bs->blocks_dir);
    em_free(bs->dir);
    em_hmap_destroy(&bs->map);
    em_free(bs);
    return NULL;
}

void em_block_store_set_zstd_level(em_block_store *bs, int level)
{
    atomic_store_explicit(&bs->zstd_level, level, memory_order_relaxed);
}

void em_block_store_free(em_block_store *bs)
{
    if (bs == NULL)
        return;
    if (bs->mm) {
        em__memory_set_evictor(bs->mm, NULL, NULL);
        em__memory_storage_delta(bs->mm, 0, bs->mem_bytes);
    }
    map_slot *ms;
    for (size_t pos = 0; (ms = em_hmap_iter(&bs->map, &pos));) {
        entry *e = ms->e;
        if (e->in_mem)
            unref_all(e->batches, e->nbatches);
        em_free(e->batches);
        em_free(e);
    }
    em_err err = EM_ERR_INIT;
    if (em_rm_rf(bs->blocks_dir, &err) < 0)
        em_log(EM_LOG_WARN, "storage: %s", err.msg);
    if (bs->own_dir && rmdir(bs->dir) < 0 && errno != ENOENT)
        em_log(EM_LOG_WARN, "storage: cannot remove %s: %s", bs->dir, strerror(errno));
    pthread_cond_destroy(&bs->idle);
    pthread_mutex_destroy(&bs->lock);
    em_free(bs->blocks_dir);
    em_free(bs->dir);
    em_hmap_destroy(&bs->map);
    em_free(bs);
}

const char *em_block_store_dir(const em_block_store *bs)
{
    return bs->dir;
}

/* ---------------------------------------------------------------- put */

/* Places the new block (arr, taken) of entry e, whose busy flag the caller holds and whose
 * old copies are already detached. Called and returns with the lock held, dropping it
 * around file I/O. *stored tells whether arr was adopted. */
static int place_block(em_block_store *bs, entry *e, em_batch **arr, size_t n, size_t nbytes,
                       bool *stored, entry **spills, em_err *err)
{
    char path[EM__STORAGE_PATH_MAX];
    uint64_t bytes = 0;

    if (e->level != EM_STORAGE_DISK_ONLY && make_room(bs, nbytes, spills)) {
        e->batches = arr;
        e->nbatches = n;
        e->nbytes = nbytes;
        e->in_mem = true;
        charge(bs, e);
        *stored = true;
        return 0;
    }
    if (e->level == EM_STORAGE_MEMORY_ONLY)
        return 0;   /* does not fit: not stored, the reader recomputes it */
    pthread_mutex_unlock(&bs->lock);
    block_path(bs, e->id, path, sizeof path);
    int rc = em__storage_write_file(path, arr, n, zstd_level(bs), &bytes, err);
    pthread_mutex_lock(&bs->lock);
    if (rc == 0)
        note_disk(bs, e, bytes, n);
    return rc;
}

int em_block_store_put_take(em_block_store *bs, em_block_id id, em_batch **batches, size_t n,
                            em_storage_level level, em_err *err)
{
    char name[64];
    em_batch **arr = NULL, **old = NULL;
    entry *spills = NULL;
    size_t bytes, nbytes = 0, nold = 0;
    bool stored = false, had_disk;
    int rc;

    em_block_id_str(id, name, sizeof name);
    if (level < EM_STORAGE_MEMORY_ONLY || level > EM_STORAGE_DISK_ONLY || (n && !batches)) {
        rc = em_err_set(err, EM_EINVAL, "block %s: invalid put (level %d)", name, (int)level);
        goto out;
    }
    if (!em_size_mul(n ? n : 1, sizeof *arr, &bytes) || (arr = em_malloc(bytes)) == NULL) {
        rc = em_err_set(err, EM_ENOMEM, "block %s: out of memory", name);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        arr[i] = batches[i];
        nbytes += em_batch_nbytes(arr[i]);
    }
    pthread_mutex_lock(&bs->lock);
    entry *e = map_find_or_add(bs, id);
    if (e == NULL) {
        pthread_mutex_unlock(&bs->lock);
        rc = em_err_set(err, EM_ENOMEM, "block %s: out of memory", name);
        goto out;
    }
    acquire(bs, e);
    old = take_mem(bs, e, &nold);
    had_disk = forget_disk(bs, e);
    e->level = level;
    rc = place_block(bs, e, arr, n, nbytes, &stored, &spills, err);
    /* A new file replaced the old one by rename; otherwise the old file is stale (and a
     * failed commit may have left a new one behind after its rename). */
    bool unlink_old = !e->on_disk && (had_disk || rc < 0);
    pthread_mutex_unlock(&bs->lock);
    if (unlink_old)
        unlink_block(bs, id);
    pthread_mutex_lock(&bs->lock);
    release(bs, e);
    pthread_mutex_unlock(&bs->lock);
    spill_list(bs, spills);
out:
    unref_all(old, nold);
    em_free(old);
    if (!stored) {
        if (arr == NULL && batches != NULL)
            unref_all(batches, n);
        else
            unref_all(arr, n);
        em_free(arr);
    }
    return rc;
}

/* ---------------------------------------------------------------- get */

/* Serves the memory copy of e (lock held): new references, LRU touched. */
static int serve_mem(em_block_store *bs, entry *e, em_batch ***out, size_t *n, em_err *err)
{
    char name[64];
    em_batch **v = dup_refs(e->batches, e->nbatches);

    if (v == NULL)
        return em_err_set(err, EM_ENOMEM, "block %s: out of memory",
                          em_block_id_str(e->id, name, sizeof name));
    if (e->charged) {
        lru_unlink(bs, e);
        lru_push_front(bs, e);
    }
    *out = v;
    *n = e->nbatches;
    return 1;
}

/* Re-caches a MEMORY_AND_DISK block just read back if it fits without evicting (lock held;
 * see DESIGN for why no eviction). Best effort: skipped on OOM. */
static void maybe_recache(em_block_store *bs, entry *e, em_batch **v, size_t n)
{
    size_t nbytes = 0;

    if (e->level != EM_STORAGE_MEMORY_AND_DISK || e->in_mem)
        return;
    for (size_t i = 0; i < n; i++)
        nbytes += em_batch_nbytes(v[i]);
    size_t limit = store_limit(bs);
    if (nbytes > limit || bs->mem_bytes + nbytes > limit)
        return;
    if ((e->batches = dup_refs(v, n)) == NULL)
        return;
    e->nbatches = n;
    e->nbytes = nbytes;
    e->in_mem = true;
    charge(bs, e);
}

/* Reads e's file (busy flag held by the caller, lock held and dropped around the I/O). A
 * block whose file cannot be read back is dropped, file and all. */
static int read_back(em_block_store *bs, entry *e, em_batch ***out, size_t *n, em_err *err)
{
    char path[EM__STORAGE_PATH_MAX];
    uint64_t bytes = e->disk_bytes;
    size_t nb = e->disk_nbatches;

    block_path(bs, e->id, path, sizeof path);
    pthread_mutex_unlock(&bs->lock);
    int rc = em__storage_read_file(path, bytes, nb, out, n, err);
    if (rc < 0 && rc != EM_ENOMEM && unlink(path) < 0 && errno != ENOENT)
        em_log(EM_LOG_WARN, "storage: cannot remove %s: %s", path, strerror(errno));
    pthread_mutex_lock(&bs->lock);
    if (rc == 0) {
        maybe_recache(bs, e, *out, *n);
        return 1;
    }
    if (rc != EM_ENOMEM)
        forget_disk(bs, e);
    return rc;
}

int em_block_store_get(em_block_store *bs, em_block_id id, em_batch ***out, size_t *n,
                       em_err *err)
{
    int rc = 0;

    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&bs->lock);
    entry *e = map_find(bs, id);
    if (e == NULL)
        goto unlock;
    if (e->in_mem) {
        rc = serve_mem(bs, e, out, n, err);
        goto unlock;
    }
    acquire(bs, e);   /* a put, spill or remove may be changing the block */
    if (e->in_mem)
        rc = serve_mem(bs, e, out, n, err);
    else if (e->on_disk)
        rc = read_back(bs, e, out, n, err);
    release(bs, e);
unlock:
    pthread_mutex_unlock(&bs->lock);
    return rc;
}

/* ---------------------------------------------------------------- the rest */

bool em_block_store_contains(em_block_store *bs, em_block_id id)
{
    pthread_mutex_lock(&bs->lock);
    entry *e = map_find(bs, id);
    bool r = e && (e->in_mem || e->on_disk);
    pthread_mutex_unlock(&bs->lock);
    return r;
}

void em_block_store_remove(em_block_store *bs, em_block_id id)
{
    em_batch **old = NULL;
    size_t nold = 0;

    pthread_mutex_lock(&bs->lock);
    entry *e = map_find(bs, id);
    if (e == NULL) {
        pthread_mutex_unlock(&bs->lock);
        return;
    }
    acquire(bs, e);
    old = take_mem(bs, e, &nold);
    bool had_disk = forget_disk(bs, e);
    pthread_mutex_unlock(&bs->lock);
    unref_all(old, nold);
    em_free(old);
    if (had_disk)
        unlink_block(bs, id);
    pthread_mutex_lock(&bs->lock);
    release(bs, e);
    pthread_mutex_unlock(&bs->lock);
}

/* The id of a present block of (type, a) at or after slot *i (lock held); *i is its slot. */
static bool find_from(em_block_store *bs, size_t *i, uint32_t type, uint32_t a,
                      em_block_id *id)
{
    for (; *i < bs->map.cap; ++*i) {
        const map_slot *s = em_hmap_at(&bs->map, *i);
        if (!em_hmap_used(&bs->map, s))
            continue;
        const entry *e = s->e;
        if (e->id.type == type && e->id.a == a && (e->in_mem || e->on_disk)) {
            *id = e->id;
            return true;
        }
    }
    return false;
}

/* Removes matches one at a time (the lock is dropped for each removal's file I/O), so no
 * allocation is needed. A removal shifts later slots back (possibly across the table's
 * wrap), and others may add or remove meanwhile: the scan goes on at the removed slot, and
 * passes repeat until one removes nothing. */
void em_block_store_remove_all(em_block_store *bs, uint32_t type, uint32_t a)
{
    em_block_id id;
    bool removed = true;

    pthread_mutex_lock(&bs->lock);
    while (removed) {
        removed = false;
        for (size_t i = 0; find_from(bs, &i, type, a, &id);) {
            pthread_mutex_unlock(&bs->lock);
            em_block_store_remove(bs, id);
            pthread_mutex_lock(&bs->lock);
            removed = true;
        }
    }
    pthread_mutex_unlock(&bs->lock);
}

void em_block_store_stats(em_block_store *bs, em_store_stats *out)
{
    pthread_mutex_lock(&bs->lock);
    out->mem_bytes = bs->mem_bytes;
    out->disk_bytes = bs->disk_bytes;
    out->nblocks_mem = bs->nblocks_mem;
    out->nblocks_disk = bs->nblocks_disk;
    out->evictions = bs->evictions;
    out->disk_writes = bs->disk_writes;
    pthread_mutex_unlock(&bs->lock);
}
