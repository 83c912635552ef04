/* storage/memory.c - the executor's unified memory manager (Spark's UnifiedMemoryManager).
 *
 * One pool of `total` bytes shared by execution (task buffers) and storage (the block
 * store's charged memory copies):
 *
 *   |<------------------------------- total ------------------------------->|
 *   |  execution used  |   free   |  storage used (LRU blocks)              |
 *                                 |<-- evictable -->|<-- storage floor ---->|
 *
 * - Storage's limit is total - execution used: the store evicts its own LRU blocks to stay
 *   under it, so a cached block never pushes out execution memory.
 * - Execution takes free memory first; when that is short it asks the store (the evictor
 *   callback) to evict up to storage used - floor bytes, then takes what is free.
 * - Execution memory is never taken back: a task granted less spills earlier.
 * The store mirrors its charged bytes here through em__memory_storage_delta.
 *
 * LOCKING: mm->lock is a leaf lock. The store calls in with its own lock held; the evictor
 * is called with mm->lock released, so the order is always store lock -> mm lock. */
#include <pthread.h>

#include "storage/storage_int.h"

#define DEFAULT_TOTAL ((size_t)256 << 20)

struct em_memory_manager {
    pthread_mutex_t lock;
    size_t total, floor;
    size_t exec_used, storage_used;
    uint64_t evicted;
    size_t (*evict)(void *ud, size_t bytes);   /* set once by the store */
    void *evict_ud;
};

em_memory_manager *em_memory_manager_new(size_t total, double storage_fraction)
{
    em_memory_manager *mm = em_calloc(1, sizeof *mm);
    if (!mm)
        return NULL;
    mm->total = total ? total : DEFAULT_TOTAL;
    pthread_mutex_init(&mm->lock, NULL);
    em_memory_manager_set_storage_fraction(mm, storage_fraction);
    return mm;
}

void em_memory_manager_set_storage_fraction(em_memory_manager *mm, double storage_fraction)
{
    if (!(storage_fraction >= 0.0))
        storage_fraction = 0.0;
    if (storage_fraction > 1.0)
        storage_fraction = 1.0;
    pthread_mutex_lock(&mm->lock);
    mm->floor = (size_t)((double)mm->total * storage_fraction);
    pthread_mutex_unlock(&mm->lock);
}

void em_memory_manager_free(em_memory_manager *mm)
{
    if (!mm)
        return;
    pthread_mutex_destroy(&mm->lock);
    em_free(mm);
}

static size_t free_bytes(const em_memory_manager *mm)
{
    size_t used = mm->exec_used + mm->storage_used;
    return used >= mm->total ? 0 : mm->total - used;
}

size_t em_memory_acquire_execution(em_memory_manager *mm, size_t want)
{
    pthread_mutex_lock(&mm->lock);
    size_t fr = free_bytes(mm);
    if (fr < want && mm->evict && mm->storage_used > mm->floor) {
        size_t short_by = want - fr, evictable = mm->storage_used - mm->floor;
        size_t ask = short_by < evictable ? short_by : evictable;
        size_t (*evict)(void *, size_t) = mm->evict;
        void *ud = mm->evict_ud;
        /* Reserve what is free now so a concurrent storage put cannot take it while the
         * evictor runs without our lock. */
        mm->exec_used += fr;
        pthread_mutex_unlock(&mm->lock);
        size_t got = evict(ud, ask);
        pthread_mutex_lock(&mm->lock);
        mm->evicted += got;
        mm->exec_used -= fr;
        fr = free_bytes(mm);
    }
    size_t grant = fr < want ? fr : want;
    mm->exec_used += grant;
    pthread_mutex_unlock(&mm->lock);
    return grant;
}

void em_memory_release_execution(em_memory_manager *mm, size_t bytes)
{
    pthread_mutex_lock(&mm->lock);
    mm->exec_used -= bytes <= mm->exec_used ? bytes : mm->exec_used;
    pthread_mutex_unlock(&mm->lock);
}

size_t em_memory_storage_limit(em_memory_manager *mm)
{
    pthread_mutex_lock(&mm->lock);
    size_t lim = mm->exec_used >= mm->total ? 0 : mm->total - mm->exec_used;
    pthread_mutex_unlock(&mm->lock);
    return lim;
}

void em_memory_stats_get(em_memory_manager *mm, em_memory_stats *out)
{
    pthread_mutex_lock(&mm->lock);
    out->total = mm->total;
    out->storage_floor = mm->floor;
    out->execution_used = mm->exec_used;
    out->storage_used = mm->storage_used;
    out->storage_evicted_bytes = mm->evicted;
    pthread_mutex_unlock(&mm->lock);
}

void em__memory_storage_delta(em_memory_manager *mm, size_t add, size_t sub)
{
    pthread_mutex_lock(&mm->lock);
    mm->storage_used += add;
    mm->storage_used -= sub <= mm->storage_used ? sub : mm->storage_used;
    pthread_mutex_unlock(&mm->lock);
}

void em__memory_set_evictor(em_memory_manager *mm, size_t (*fn)(void *ud, size_t bytes),
                            void *ud)
{
    pthread_mutex_lock(&mm->lock);
    mm->evict = fn;
    mm->evict_ud = ud;
    pthread_mutex_unlock(&mm->lock);
}
