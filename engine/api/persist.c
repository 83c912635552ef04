/* engine/api/persist.c - persist, cache and unpersist: marking a dataset's partitions to
 * be kept (Spark's StorageLevel) in the block store of whichever executor computes them.
 *
 * Persisting only sets the node's storage level; nothing runs. The next job that computes
 * a partition of the node stores it as block rdd_<id>_<part> at that level
 * (engine/exec/iter.c), and later jobs read the block instead of the lineage (the
 * scheduler prefers the executor that holds it). unpersist, and the node's death
 * (release.c), drop the blocks everywhere. Persisting returns r itself (no new hold).
 * THREADS: any thread, under sc->lock. */
#include "engine/api/api_int.h"

em_rdd *em_rdd_persist(em_rdd *r, em_persist_level level)
{
    static const em_storage_level map[] = {
        [EM_PERSIST_NONE] = EM_STORAGE_NONE,
        [EM_PERSIST_MEMORY_ONLY] = EM_STORAGE_MEMORY_ONLY,
        [EM_PERSIST_MEMORY_AND_DISK] = EM_STORAGE_MEMORY_AND_DISK,
        [EM_PERSIST_DISK_ONLY] = EM_STORAGE_DISK_ONLY,
    };
    pthread_mutex_lock(&r->sc->lock);
    if (!em__rdd_is_released(r)) {   /* the shared "released" node is left alone */
        if ((unsigned)level <= EM_PERSIST_DISK_ONLY)
            r->node->level = map[level];
        if (level == EM_PERSIST_NONE)
            em__drop_rdd_blocks(r->sc, r->node->id);
    }
    pthread_mutex_unlock(&r->sc->lock);
    return r;
}

em_rdd *em_rdd_cache(em_rdd *r)
{
    return em_rdd_persist(r, EM_PERSIST_MEMORY_ONLY);
}

void em_rdd_unpersist(em_rdd *r)
{
    em_rdd_persist(r, EM_PERSIST_NONE);
}
