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
#include <unistd.h>

#include "shuffle/remote.h"
#include "shuffle/shuffle_int.h"

typedef struct peer {
    char loc[128];
    em_conn_id conn;
} peer;

/* One connection's fetch requests waiting to be served (a ring of EM_SHUFFLE_SERVE_MAX). */
typedef struct serve_req {
    uint64_t id;
    uint32_t sid, mid, reduce;
} serve_req;
typedef struct serve_q {
    em_conn_id conn;
    uint32_t head, n;
    serve_req *ring;
} serve_q;

struct em_shuffle_remote {
    em_shuffle_remote_opts o;    /* strings below are owned copies */
    char *self_loc, *dir;
    pthread_mutex_t lock;        /* peers */
    pthread_mutex_t connect_lock;
    peer *peers;
    size_t npeers;
    serve_q *serving;            /* network thread only */
    size_t nserving;
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
    for (size_t i = 0; i < r->nserving; i++)
        em_free(r->serving[i].ring);
    em_free(r->serving);
    em_free(r->self_loc);
    em_free(r->dir);
    em_free(r);
}

static serve_q *find_serving(em_shuffle_remote *r, em_conn_id conn)
{
    for (size_t i = 0; i < r->nserving; i++)
        if (r->serving[i].conn == conn)
            return &r->serving[i];
    return NULL;
}

void em_shuffle_remote_forget(em_shuffle_remote *r, em_conn_id conn)
{
    serve_q *q = find_serving(r, conn);
    if (q) {
        em_free(q->ring);
        *q = r->serving[--r->nserving];
    }
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
    char host[EM_NET_HOST_MAX];
    uint16_t port;
    em_err e2 = EM_ERR_INIT;
    int rc;
    if (em_net_addr_split(loc, host, sizeof host, &port, 0, &e2) < 0)
        rc = em_err_set(err, EM_EFETCH, "bad shuffle location: %s", e2.msg);
    else
        rc = em_net_connect(r->o.net, host, port, out, err);
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
    /* The segment goes out a chunk at a time through one chunk-sized buffer: read whole
     * (tens of MB for a big map output) it was a fresh buffer per request, first touched
     * and then copied again into the send queue. */
    char dpath[4096];
    uint64_t start = 0, end = 0;
    int fd, rc = em__shuffle_segment_open(dir, sid, mid, reduce, &fd, &start, &end, dpath,
                                          sizeof dpath, err);
    if (rc < 0)
        return em__shuffle_fetch_fail(rc, sid, mid, reduce, err);
    size_t cap = chunk && end - start > chunk ? chunk : (size_t)(end - start);
    uint8_t *buf = em_malloc(cap ? cap : 1);
    if (!buf)
        rc = em_err_set(err, EM_ENOMEM, "shuffle %u map %u reduce %u: out of memory for a "
                        "%zu-byte chunk", sid, mid, reduce, cap);
    for (uint64_t off = start; rc == 0;) {
        size_t k = end - off < cap ? (size_t)(end - off) : cap;
        bool last = off + k == end;
        if ((rc = em_pread_full(fd, buf, k, off, dpath, err)) < 0) {
            rc = em__shuffle_fetch_fail(rc, sid, mid, reduce, err);
            break;
        }
        rc = fn(ud, buf, k, last, err);
        off += k;
        if (last)
            break;
    }
    em_free(buf);
    close(fd);
    return rc;
}

/* ---------------------------------------------------------------- serving */

typedef struct send_ctx {
    em_shuffle_remote *r;
    em_conn_id conn;
    uint64_t id;
    bool sent;
} send_ctx;

static int send_chunk(void *ud, const uint8_t *p, size_t n, bool last, em_err *err)
{
    send_ctx *sc = ud;
    sc->sent = true;
    return sc->r->o.send(sc->r->o.ud, sc->conn, sc->id, p, n, last, err);
}

/* Serves conn's waiting requests in order while its send queue is under the drain mark. */
static void serve_some(em_shuffle_remote *r, em_conn_id conn)
{
    serve_q *q;
    size_t mark = em_net_drain_mark(r->o.net);
    while ((q = find_serving(r, conn)) && q->n > 0 && em_net_queued(r->o.net, conn) < mark) {
        serve_req rq = q->ring[q->head];
        q->head = (q->head + 1) % EM_SHUFFLE_SERVE_MAX;
        q->n--;
        em_err err = EM_ERR_INIT;
        send_ctx sc = {r, conn, rq.id, false};
        int rc = em_shuffle_serve_segment(r->dir, rq.sid, rq.mid, rq.reduce, r->o.chunk,
                                          send_chunk, &sc, &err);
        if (rc < 0 && !sc.sent)
            r->o.fail(r->o.ud, conn, rq.id, &err);
    }
}

int em_shuffle_serve_request(em_shuffle_remote *r, em_conn_id conn, uint64_t id, uint32_t sid,
                             uint32_t mid, uint32_t reduce, em_err *err)
{
    serve_q *q = find_serving(r, conn);
    if (!q) {
        serve_req *ring = em_calloc(EM_SHUFFLE_SERVE_MAX, sizeof *ring);
        serve_q *grown = ring ? em_realloc(r->serving, (r->nserving + 1) * sizeof *grown) : NULL;
        if (!grown) {
            em_free(ring);
            return em_err_set(err, EM_ENOMEM, "serving fetches: out of memory");
        }
        r->serving = grown;
        q = &r->serving[r->nserving++];
        *q = (serve_q){.conn = conn, .ring = ring};
    }
    if (q->n == EM_SHUFFLE_SERVE_MAX)
        return em_err_set(err, EM_EPROTO, "peer has more than %u shuffle fetches in flight",
                          EM_SHUFFLE_SERVE_MAX);
    q->ring[(q->head + q->n) % EM_SHUFFLE_SERVE_MAX] = (serve_req){id, sid, mid, reduce};
    q->n++;
    serve_some(r, conn);
    return 0;
}

void em_shuffle_serve_drain(em_shuffle_remote *r, em_conn_id conn)
{
    serve_some(r, conn);
}

uint32_t em_shuffle_serve_waiting(em_shuffle_remote *r, em_conn_id conn)
{
    serve_q *q = find_serving(r, conn);
    return q ? q->n : 0;
}
