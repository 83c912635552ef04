/* shuffle/remote.c - fetching shuffle segments from other processes and serving this
 * process's (shuffle/remote.h has the split of work with the executor).
 *
 * DESIGN: one connection per peer location, in r->peers under r->lock; r->connect_lock
 * serializes connecting so that two task threads that want the same new peer make one
 * connection (the second finds the first's). A connection that closes is forgotten by the
 * network thread (em_shuffle_remote_forget); requests in flight on it fail through the
 * owner's request function, and the next fetch connects again. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shuffle/remote.h"

typedef struct peer {
    char loc[128];
    em_conn_id conn;
} peer;

struct em_shuffle_remote {
    em_shuffle_remote_opts o;    /* strings below are owned copies */
    char *self_loc, *dir;
    pthread_mutex_t lock;        /* peers */
    pthread_mutex_t connect_lock;
    peer *peers;
    size_t npeers;
};

em_shuffle_remote *em_shuffle_remote_new(const em_shuffle_remote_opts *o)
{
    em_shuffle_remote *r = em_xcalloc(1, sizeof *r);
    r->o = *o;
    r->self_loc = em_xstrdup(o->self_loc ? o->self_loc : "");
    r->dir = em_xstrdup(o->dir ? o->dir : "");
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->connect_lock, NULL);
    return r;
}

void em_shuffle_remote_free(em_shuffle_remote *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->connect_lock);
    em_free(r->peers);
    em_free(r->self_loc);
    em_free(r->dir);
    em_free(r);
}

void em_shuffle_remote_forget(em_shuffle_remote *r, em_conn_id conn)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i].conn == conn) {
            r->peers[i] = r->peers[--r->npeers];
            break;
        }
    pthread_mutex_unlock(&r->lock);
}

/* The connection to peer loc ("host:port"), made on first use. */
static int peer_conn(em_shuffle_remote *r, const char *loc, em_conn_id *out, em_err *err)
{
    pthread_mutex_lock(&r->connect_lock);
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->npeers; i++)
        if (strcmp(r->peers[i].loc, loc) == 0) {
            *out = r->peers[i].conn;
            pthread_mutex_unlock(&r->lock);
            pthread_mutex_unlock(&r->connect_lock);
            return 0;
        }
    pthread_mutex_unlock(&r->lock);
    char host[128];
    snprintf(host, sizeof host, "%s", loc);
    char *colon = strrchr(host, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    int rc;
    if (!colon || *end || port < 1 || port > 65535) {
        rc = em_err_set(err, EM_EFETCH, "bad shuffle location '%s'", loc);
    } else {
        *colon = '\0';
        rc = em_net_connect(r->o.net, host, (uint16_t)port, out, err);
    }
    if (rc == 0) {
        pthread_mutex_lock(&r->lock);
        r->peers = em_xrealloc(r->peers, (r->npeers + 1) * sizeof *r->peers);
        snprintf(r->peers[r->npeers].loc, sizeof r->peers[0].loc, "%s", loc);
        r->peers[r->npeers++].conn = *out;
        pthread_mutex_unlock(&r->lock);
    }
    pthread_mutex_unlock(&r->connect_lock);
    return rc;
}

static int remote_fetch(void *self, const char *loc, uint32_t sid, uint32_t mid, uint32_t reduce,
                        uint64_t size, em_vbuf *out, em_err *err)
{
    em_shuffle_remote *r = self;
    int rc;
    if (strcmp(loc, r->self_loc) == 0) {
        rc = em_shuffle_fetch_local(r->dir, sid, mid, reduce, out, err);
    } else {
        em_conn_id c;
        size_t before = out->len;
        if ((rc = peer_conn(r, loc, &c, err)) == 0)
            rc = r->o.request(r->o.ud, c, sid, mid, reduce, size, out, err);
        if (rc < 0)
            out->len = before;
    }
    if (rc < 0 && rc != EM_ENOMEM) {
        em_err_prefix(err, "shuffle %u map %u reduce %u at %s", sid, mid, reduce, loc);
        err->code = rc = EM_EFETCH;
    }
    return rc;
}

static const em_fetcher_ops remote_ops = {.fetch = remote_fetch};

em_fetcher em_shuffle_remote_fetcher(em_shuffle_remote *r)
{
    return (em_fetcher){&remote_ops, r};
}

int em_shuffle_serve_segment(const char *dir, uint32_t sid, uint32_t mid, uint32_t reduce,
                             size_t chunk, em_shuffle_chunk_fn fn, void *ud, em_err *err)
{
    em_vbuf seg;
    em_vbuf_init(&seg);
    int rc = em_shuffle_fetch_local(dir, sid, mid, reduce, &seg, err);
    size_t off = 0;
    while (rc == 0) {
        size_t k = seg.len - off < chunk ? seg.len - off : chunk;
        bool last = off + k == seg.len;
        rc = fn(ud, seg.data + off, k, last, err);
        off += k;
        if (last)
            break;
    }
    em_vbuf_destroy(&seg);
    return rc;
}
