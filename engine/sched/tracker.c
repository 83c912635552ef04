/* engine/sched/tracker.c - the map-output tracker: where each map output of each shuffle
 * lives and how big its segments are (Spark's MapOutputTracker, driver side).
 *
 * DESIGN: an array of shuffles (few per context, linear search), each with nmaps slots.
 * Location strings are interned in a list that lives as long as the tracker, so the
 * em_shuffle_src.loc pointers handed to running tasks stay valid even when a map output is
 * unregistered after a fetch failure while other tasks still hold them.
 * THREADS: one mutex guards everything; em_map_tracker_outputs runs on task threads. */
#include <pthread.h>
#include <string.h>

#include "engine/sched/sched.h"

typedef struct map_slot {
    bool registered;
    const char *loc;        /* interned */
    uint64_t *sizes;        /* nparts entries (owned) */
    uint32_t nparts;
} map_slot;

typedef struct shuffle_ent {
    uint32_t sid;
    uint32_t nmaps;
    map_slot *maps;         /* nmaps entries */
} shuffle_ent;

struct em_map_tracker {
    pthread_mutex_t lock;
    shuffle_ent *shuffles;  /* nshuffles entries; guarded by lock */
    uint32_t nshuffles;
    size_t cap;
    char **locs;            /* interned location strings; guarded by lock */
    uint32_t nlocs;
};

em_map_tracker *em_map_tracker_new(void)
{
    em_map_tracker *t = em_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

static void clear_shuffle(shuffle_ent *e)
{
    for (uint32_t i = 0; i < e->nmaps; i++)
        em_free(e->maps[i].sizes);
    em_free(e->maps);
}

void em_map_tracker_free(em_map_tracker *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->nshuffles; i++)
        clear_shuffle(&t->shuffles[i]);
    em_free(t->shuffles);
    for (uint32_t i = 0; i < t->nlocs; i++)
        em_free(t->locs[i]);
    em_free(t->locs);
    pthread_mutex_destroy(&t->lock);
    em_free(t);
}

static shuffle_ent *find(em_map_tracker *t, uint32_t sid)
{
    for (uint32_t i = 0; i < t->nshuffles; i++)
        if (t->shuffles[i].sid == sid)
            return &t->shuffles[i];
    return NULL;
}

void em_map_tracker_add_shuffle(em_map_tracker *t, uint32_t sid, uint32_t nmaps)
{
    pthread_mutex_lock(&t->lock);
    shuffle_ent *e = find(t, sid);
    if (e && e->nmaps != nmaps) {
        /* Should not happen (a node's partition count is fixed); start over if it does. */
        clear_shuffle(e);
        e->maps = em_xcalloc(nmaps ? nmaps : 1, sizeof *e->maps);
        e->nmaps = nmaps;
    } else if (!e) {
        t->shuffles = em_arr_xgrow(t->shuffles, &t->cap, (size_t)t->nshuffles + 1,
                                   sizeof *t->shuffles);
        e = &t->shuffles[t->nshuffles++];
        e->sid = sid;
        e->nmaps = nmaps;
        e->maps = em_xcalloc(nmaps ? nmaps : 1, sizeof *e->maps);
    }
    pthread_mutex_unlock(&t->lock);
}

static const char *intern(em_map_tracker *t, const char *loc)
{
    for (uint32_t i = 0; i < t->nlocs; i++)
        if (strcmp(t->locs[i], loc) == 0)
            return t->locs[i];
    t->locs = em_xrealloc(t->locs, (t->nlocs + 1) * sizeof *t->locs);
    t->locs[t->nlocs] = em_xstrdup(loc);
    return t->locs[t->nlocs++];
}

int em_map_tracker_register(em_map_tracker *t, uint32_t sid, uint32_t mid, const char *loc,
                            const uint64_t *sizes, uint32_t nparts, em_err *err)
{
    uint64_t *copy = em_malloc((nparts ? nparts : 1) * sizeof *copy);
    if (!copy)
        return em_err_set(err, EM_ENOMEM, "map output %u of shuffle %u: %u sizes", mid, sid,
                          nparts);
    if (nparts)
        memcpy(copy, sizes, nparts * sizeof *copy);
    pthread_mutex_lock(&t->lock);
    shuffle_ent *e = find(t, sid);
    if (!e || mid >= e->nmaps) {
        pthread_mutex_unlock(&t->lock);
        em_free(copy);
        return em_err_set(err, EM_EINVAL, "map output %u of shuffle %u: unknown shuffle or map",
                          mid, sid);
    }
    map_slot *m = &e->maps[mid];
    em_free(m->sizes);
    m->sizes = copy;
    m->nparts = nparts;
    m->loc = intern(t, loc);
    m->registered = true;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

void em_map_tracker_unregister(em_map_tracker *t, uint32_t sid, uint32_t mid)
{
    pthread_mutex_lock(&t->lock);
    shuffle_ent *e = find(t, sid);
    if (e && mid < e->nmaps)
        e->maps[mid].registered = false;
    pthread_mutex_unlock(&t->lock);
}

uint32_t em_map_tracker_missing(em_map_tracker *t, uint32_t sid, uint32_t *out)
{
    uint32_t n = 0;
    pthread_mutex_lock(&t->lock);
    shuffle_ent *e = find(t, sid);
    for (uint32_t i = 0; e && i < e->nmaps; i++)
        if (!e->maps[i].registered) {
            if (out)
                out[n] = i;
            n++;
        }
    pthread_mutex_unlock(&t->lock);
    return n;
}

bool em_map_tracker_has_shuffle(em_map_tracker *t, uint32_t sid)
{
    pthread_mutex_lock(&t->lock);
    bool has = find(t, sid) != NULL;
    pthread_mutex_unlock(&t->lock);
    return has;
}

void em_map_tracker_remove_shuffle(em_map_tracker *t, uint32_t sid)
{
    pthread_mutex_lock(&t->lock);
    shuffle_ent *e = find(t, sid);
    if (e) {
        clear_shuffle(e);
        *e = t->shuffles[--t->nshuffles];
    }
    pthread_mutex_unlock(&t->lock);
}

uint32_t em_map_tracker_unregister_loc(em_map_tracker *t, const char *loc, uint32_t *sids,
                                       uint32_t max)
{
    uint32_t hit = 0;
    pthread_mutex_lock(&t->lock);
    for (uint32_t i = 0; i < t->nshuffles; i++) {
        shuffle_ent *e = &t->shuffles[i];
        bool lost = false;
        for (uint32_t m = 0; m < e->nmaps; m++)
            if (e->maps[m].registered && e->maps[m].loc && strcmp(e->maps[m].loc, loc) == 0) {
                e->maps[m].registered = false;
                lost = true;
            }
        if (lost) {
            if (sids && hit < max)
                sids[hit] = e->sid;
            hit++;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return hit;
}

void em_map_tracker_unregister_all(em_map_tracker *t, uint32_t sid)
{
    pthread_mutex_lock(&t->lock);
    shuffle_ent *e = find(t, sid);
    for (uint32_t m = 0; e && m < e->nmaps; m++)
        e->maps[m].registered = false;
    pthread_mutex_unlock(&t->lock);
}

static int outputs(em_map_tracker *t, uint32_t sid, uint32_t reduce, bool lenient,
                   em_shuffle_src **srcs, uint32_t *n, em_err *err)
{
    int rc = 0;

    *srcs = NULL;
    *n = 0;
    pthread_mutex_lock(&t->lock);
    shuffle_ent *e = find(t, sid);
    if (!e) {
        rc = em_err_set(err, EM_EFETCH, "shuffle %u: no map outputs known", sid);
        goto out;
    }
    em_shuffle_src *a = em_malloc((e->nmaps ? e->nmaps : 1) * sizeof *a);
    if (!a) {
        rc = em_err_set(err, EM_ENOMEM, "shuffle %u: %u map sources", sid, e->nmaps);
        goto out;
    }
    for (uint32_t i = 0; i < e->nmaps; i++) {
        const map_slot *m = &e->maps[i];
        if (lenient && !m->registered) {
            a[i] = (em_shuffle_src){i, EM_MAP_LOC_LOST, 1};
            continue;
        }
        if (!m->registered || reduce >= m->nparts) {
            em_free(a);
            rc = em_err_set(err, EM_EFETCH, "shuffle %u: map output %u for reduce %u is %s",
                            sid, i, reduce, m->registered ? "out of range" : "missing");
            goto out;
        }
        a[i].map_id = i;
        a[i].loc = m->loc;
        a[i].size = m->sizes[reduce];
    }
    *srcs = a;
    *n = e->nmaps;
out:
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int em_map_tracker_outputs(void *ud, uint32_t sid, uint32_t reduce, em_shuffle_src **srcs,
                           uint32_t *n, em_err *err)
{
    return outputs(ud, sid, reduce, false, srcs, n, err);
}

int em_map_tracker_outputs_lenient(void *ud, uint32_t sid, uint32_t reduce,
                                   em_shuffle_src **srcs, uint32_t *n, em_err *err)
{
    return outputs(ud, sid, reduce, true, srcs, n, err);
}
