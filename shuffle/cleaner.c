/* shuffle/cleaner.c - deletes the files of dead shuffles on a thread of its own, off the
 * path of the job that released them.
 *
 * DESIGN
 *   Deleting a shuffle means a scan of the shuffle directory and one unlink per file (two
 *   per map task); on a disk each unlink of a freshly written file costs about a millisecond,
 *   which a small job used to pay on the driver thread (local mode) or on the executor's
 *   loop thread (cluster mode) when a dataset died. Here the caller only appends the
 *   shuffle id to a queue; one thread per cleaner takes everything queued at once, scans
 *   the directory once for the whole batch and unlinks what matches.
 *   Shuffle ids are never reused, so deleting a dead shuffle's files while later jobs write
 *   others in the same directory is safe: no name of a living shuffle matches.
 *   `done` counts the ids whose files are gone; em_shuffle_cleaner_wait waits until it
 *   reaches the number queued when it was called.
 *   If the thread cannot be started, removals run synchronously in the caller (slower,
 *   never wrong).
 * THREADS: every function but _free may be called from any thread; the cleaner's lock is a
 * leaf (no other lock is taken under it, no I/O is done under it). */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shuffle/shuffle_int.h"

struct em_shuffle_cleaner {
    char *dir;
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* work queued, stop asked, or `done` advanced */
    uint32_t *queue;           /* ids queued and not yet taken (lock) */
    size_t nqueue, cap;
    uint64_t queued, done;     /* ids queued / deleted since creation (lock) */
    bool stop;                 /* _free was called (lock) */
    bool threaded;             /* the thread runs; false: removals are synchronous */
    pthread_t thread;
};

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Parses "shuffle_<sid>_..." (decimal, no sign, no leading '+'); false for any other name. */
static bool name_sid(const char *name, uint32_t *sid)
{
    if (strncmp(name, "shuffle_", 8) != 0)
        return false;
    const char *p = name + 8;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((v = v * 10 + (uint64_t)(*p - '0')) > UINT32_MAX)
            return false;
    if (*p != '_')
        return false;
    *sid = (uint32_t)v;
    return true;
}

void em__shuffle_remove_many(const char *dir, uint32_t *sids, size_t n)
{
    char path[4096];
    struct dirent *e;
    DIR *d;
    uint32_t sid;

    if (n == 0 || !(d = opendir(dir)))
        return;
    qsort(sids, n, sizeof *sids, cmp_u32);
    while ((e = readdir(d)) != NULL) {
        if (!name_sid(e->d_name, &sid) || !bsearch(&sid, sids, n, sizeof *sids, cmp_u32))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
            unlink(path);
    }
    closedir(d);
}

static void *cleaner_main(void *arg)
{
    em_shuffle_cleaner *c = arg;
    uint32_t *batch = NULL;
    size_t n = 0;

    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->nqueue && !c->stop)
            pthread_cond_wait(&c->cond, &c->lock);
        if (!c->nqueue)
            break;                      /* stop asked and nothing left */
        batch = c->queue;               /* take the whole queue */
        n = c->nqueue;
        c->queue = NULL;
        c->nqueue = c->cap = 0;
        pthread_mutex_unlock(&c->lock);
        em__shuffle_remove_many(c->dir, batch, n);
        em_free(batch);
        pthread_mutex_lock(&c->lock);
        c->done += n;
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

em_shuffle_cleaner *em_shuffle_cleaner_new(const char *dir)
{
    em_shuffle_cleaner *c = em_xcalloc(1, sizeof *c);
    c->dir = em_xstrdup(dir);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->threaded = pthread_create(&c->thread, NULL, cleaner_main, c) == 0;
    if (!c->threaded)
        em_log(EM_LOG_WARN, "shuffle cleaner: no thread; %s is cleaned synchronously", dir);
    return c;
}

void em_shuffle_cleaner_remove(em_shuffle_cleaner *c, uint32_t sid)
{
    if (!c->threaded) {
        em__shuffle_remove_many(c->dir, &sid, 1);
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->queue = em_arr_xgrow(c->queue, &c->cap, c->nqueue + 1, sizeof *c->queue);
    c->queue[c->nqueue++] = sid;
    c->queued++;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

void em_shuffle_cleaner_wait(em_shuffle_cleaner *c)
{
    pthread_mutex_lock(&c->lock);
    uint64_t want = c->queued;
    while (c->done < want)
        pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

void em_shuffle_cleaner_free(em_shuffle_cleaner *c)
{
    if (!c)
        return;
    if (c->threaded) {
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
    }
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    em_free(c->queue);
    em_free(c->dir);
    em_free(c);
}
