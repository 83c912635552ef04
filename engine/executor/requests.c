/* engine/executor/requests.c - what an executor's task threads ask of others: the driver
 * (blocks, broadcast pieces, map-output locations) and other executors (shuffle segments:
 * the request under shuffle/remote.c's fetcher). A task thread blocks on a `pending` record that the loop
 * thread fills (executor.c, on_data and on_driver_rpc) and marks done; a connection that
 * closes fails its pending requests (em__x_fail_pending), so nothing waits forever.
 * THREADS: task threads; x->lock guards the pending list and interned locations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/executor/executor_int.h"

/* ---------------------------------------------------------------- sending */

int em__x_send_msg(executor *x, em_conn_id c, const em__msg *m, em_err *err)
{
    em_vbuf v;
    em_vbuf_init(&v);
    int rc = em__msg_encode(m, &v, err);
    if (rc == 0)
        rc = em_net_send(x->net, c, EM_FRAME_RPC, v.data, v.len, err);
    em_vbuf_destroy(&v);
    return rc;
}

int em__x_send_data(executor *x, em_conn_id c, uint8_t kind, uint8_t flags, uint64_t id,
                     const void *p, size_t n, em_err *err)
{
    /* header and payload go into the frame in one copy (a shuffle segment is served in
     * 4 MiB chunks: assembling them first copied every served byte twice) */
    uint8_t hdr[EM__DATA_HDR];
    em__data_hdr(hdr, kind, flags, id);
    em_slice parts[2] = {em_slice_make(hdr, sizeof hdr), em_slice_make(p, n)};
    return em_net_sendv(x->net, c, EM_FRAME_DATA, parts, n ? 2 : 1, err);
}

/* ---------------------------------------------------------------- requests */

pending *em__x_find_pending(executor *x, uint64_t req, em_conn_id c)   /* lock held */
{
    for (pending *p = x->pend; p; p = p->next)
        if (p->req == req && p->conn == c && !p->done)
            return p;
    return NULL;
}

/* Sends m (type set by the caller) on c as a new request and waits for its answer. The
 * caller removes *p with finish_request. */
int em__x_start_request(executor *x, em_conn_id c, em__msg *m, pending *p, em_vbuf *seg,
                         em_err *err)
{
    return em__x_start_request_seg(x, c, m, p, seg, SIZE_MAX, err);
}

int em__x_start_request_seg(executor *x, em_conn_id c, em__msg *m, pending *p, em_vbuf *seg,
                            uint64_t seg_max, em_err *err)
{
    memset(p, 0, sizeof *p);
    p->seg = seg;
    p->seg_max = seg_max;
    p->is_bcast = m->type == EM__MSG_BCAST;
    p->bcast_id = m->block.a;
    p->asked = m->first + m->count;
    pthread_mutex_lock(&x->lock);
    p->req = m->id = ++x->next_req;
    p->conn = c;
    p->next = x->pend;
    x->pend = p;
    pthread_mutex_unlock(&x->lock);
    int rc = em__x_send_msg(x, c, m, err);
    pthread_mutex_lock(&x->lock);
    if (rc < 0) {
        p->done = true;
        p->code = rc;
        em_err_copy(&p->err, err);
    }
    while (!p->done && !(c == x->driver && x->driver_gone))
        pthread_cond_wait(&x->cond, &x->lock);
    if (!p->done) {
        p->done = true;
        p->code = em_err_set(&p->err, EM_EIO, "the driver connection closed");
    }
    for (pending **pp = &x->pend; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    pthread_mutex_unlock(&x->lock);
    if (p->code < 0)
        return em_err_copy(err, &p->err);
    return 0;
}

void em__x_pending_free(pending *p)
{
    em__bcast_asm_destroy(&p->as);
    em__msg_destroy(&p->reply);
    for (size_t i = 0; i < p->nb; i++)
        em_batch_unref(p->batches[i]);
    em_free(p->batches);
}

void em__x_fail_pending(executor *x, em_conn_id c, int code, const char *why)  /* lock held */
{
    for (pending *p = x->pend; p; p = p->next)
        if (p->conn == c && !p->done) {
            p->done = true;
            p->code = em_err_set(&p->err, code, "%s", why);
        }
    pthread_cond_broadcast(&x->cond);
}

static const char *intern(executor *x, const char *s)   /* lock held */
{
    for (size_t i = 0; i < x->nlocs; i++)
        if (strcmp(x->locs[i], s) == 0)
            return x->locs[i];
    x->locs = em_xrealloc(x->locs, (x->nlocs + 1) * sizeof *x->locs);
    x->locs[x->nlocs] = em_xstrdup(s);
    return x->locs[x->nlocs++];
}

/* env.map_outputs: asks the driver. */
int em__x_map_outputs(void *ud, uint32_t sid, uint32_t reduce, em_shuffle_src **srcs,
                       uint32_t *n, em_err *err)
{
    executor *x = ud;
    em__msg m = {.type = EM__MSG_MAP_OUTPUTS, .sid = sid, .reduce = reduce};
    pending p;
    *srcs = NULL;
    *n = 0;
    int rc = em__x_start_request(x, x->driver, &m, &p, NULL, err);
    if (rc == 0 && p.reply.code < 0)
        rc = em_err_copy(err, &p.reply.err);
    if (rc == 0) {
        em_shuffle_src *a = em_malloc((p.reply.nsrcs ? p.reply.nsrcs : 1) * sizeof *a);
        if (!a) {
            rc = em_err_set(err, EM_ENOMEM, "shuffle %u: %u sources", sid, p.reply.nsrcs);
        } else {
            pthread_mutex_lock(&x->lock);
            for (uint32_t i = 0; i < p.reply.nsrcs; i++) {
                a[i] = p.reply.srcs[i];
                a[i].loc = intern(x, p.reply.srcs[i].loc);
            }
            pthread_mutex_unlock(&x->lock);
            *srcs = a;
            *n = p.reply.nsrcs;
        }
    }
    em__x_pending_free(&p);
    return rc;
}

/* Fetches broadcast id from the driver in pieces: asks for a window of EM__PIECE_WINDOW,
 * and the loop thread asks for one more as each arrives (on_piece). 1 and *out, 0 when the
 * driver has no such broadcast, <0 on error. */
static int fetch_bcast_pieces(executor *x, uint32_t id, em_batch **out, em_err *err)
{
    em__msg m = {.type = EM__MSG_BCAST, .block = {EM_BLOCK_BROADCAST, id, 0, 0}, .first = 0,
                 .count = EM__PIECE_WINDOW};
    pending p;
    int rc = em__x_start_request(x, x->driver, &m, &p, NULL, err);
    if (rc == 0 && p.reply.code < 0)
        rc = em_err_copy(err, &p.reply.err);
    if (rc == 0 && em__bcast_asm_done(&p.as)) {
        if (!(*out = em__bcast_asm_finish(&p.as)))
            rc = em_err_set(err, EM_ENOMEM, "broadcast %u: out of memory", id);
        else
            rc = 1;
    }
    em__x_pending_free(&p);
    return rc;
}

/* env.fetch_block for broadcasts: one fetch per executor and value; concurrent readers
 * wait for it and share its batch, which the block store keeps until `drop`. */
static int fetch_bcast(executor *x, em_block_id id, em_batch ***out, size_t *n, em_err *err)
{
    pthread_mutex_lock(&x->lock);
    bcast_fetch *f = x->bfetch;
    while (f && f->id != id.a)
        f = f->next;
    bool mine = !f;
    if (mine) {
        f = em_xcalloc(1, sizeof *f);
        f->id = id.a;
        f->next = x->bfetch;
        x->bfetch = f;
    }
    f->refs++;
    pthread_mutex_unlock(&x->lock);
    if (mine) {
        /* A fetch that ended just before this one was linked has put its value in the
         * store (before unlinking): look there first. */
        em_batch **have = NULL;
        size_t nhave = 0;
        em_batch *b = NULL;
        em_err ferr = EM_ERR_INIT;
        int rc = em_block_store_get(x->store, id, &have, &nhave, &ferr);
        if (rc == 1 && nhave == 1) {
            b = em_batch_ref(have[0]);
        } else {
            rc = fetch_bcast_pieces(x, id.a, &b, &ferr);
            if (rc == 1) {
                em_err perr = EM_ERR_INIT;
                em_batch *sb = em_batch_ref(b);
                if (em_block_store_put_take(x->store, id, &sb, 1, EM_STORAGE_MEMORY_AND_DISK,
                                            &perr) < 0)
                    em_log(EM_LOG_WARN, "executor: caching broadcast %u: %s", id.a, perr.msg);
            }
        }
        for (size_t i = 0; i < nhave; i++)
            em_batch_unref(have[i]);
        em_free(have);
        pthread_mutex_lock(&x->lock);
        f->done = true;
        f->code = rc;
        f->batch = b;
        em_err_copy(&f->err, &ferr);
        for (bcast_fetch **pp = &x->bfetch; *pp; pp = &(*pp)->next)
            if (*pp == f) {
                *pp = f->next;   /* later readers find it in the store */
                break;
            }
        pthread_cond_broadcast(&x->cond);
    } else {
        pthread_mutex_lock(&x->lock);
        while (!f->done)
            pthread_cond_wait(&x->cond, &x->lock);
    }
    int rc = f->code;
    if (rc < 0)
        em_err_copy(err, &f->err);
    if (rc == 1) {
        *out = em_xmalloc(sizeof **out);
        (*out)[0] = em_batch_ref(f->batch);
        *n = 1;
    }
    bool last = --f->refs == 0;
    pthread_mutex_unlock(&x->lock);
    if (last) {
        em_batch_unref(f->batch);
        em_free(f);
    }
    return rc;
}

/* env.fetch_block: asks the driver, caches what it gets. */
int em__x_fetch_block(void *ud, em_block_id id, em_batch ***out, size_t *n, em_err *err)
{
    executor *x = ud;
    if (id.type == EM_BLOCK_BROADCAST) {
        *out = NULL;
        *n = 0;
        return fetch_bcast(x, id, out, n, err);
    }
    em__msg m = {.type = EM__MSG_BLOCK, .block = id};
    pending p;
    char name[48];
    *out = NULL;
    *n = 0;
    int rc = em__x_start_request(x, x->driver, &m, &p, NULL, err);
    if (rc == 0 && p.reply.code < 0)
        rc = em_err_copy(err, &p.reply.err);
    if (rc == 0 && p.reply.found && p.nb != p.reply.nbatches)
        rc = em_err_set(err, EM_EPROTO, "block %s: %zu batches received, %u announced",
                        em_block_id_str(id, name, sizeof name), p.nb, p.reply.nbatches);
    if (rc == 0 && p.reply.found) {
        for (size_t i = 0; i < p.nb; i++)
            em_batch_ref(p.batches[i]);
        em_err perr = EM_ERR_INIT;
        if (em_block_store_put_take(x->store, id, p.batches, p.nb, EM_STORAGE_MEMORY_AND_DISK,
                                    &perr) < 0)
            em_log(EM_LOG_WARN, "executor: caching block %s: %s",
                   em_block_id_str(id, name, sizeof name), perr.msg);
        *out = p.batches;
        *n = p.nb;
        p.batches = NULL;
        p.nb = 0;
        rc = 1;
    }
    em__x_pending_free(&p);
    return rc;
}

/* ---------------------------------------------------------------- shuffle segments */

int em__x_request_segment(void *ud, em_conn_id conn, uint32_t sid, uint32_t mid,
                          uint32_t reduce, uint64_t size, em_vbuf *out, em_err *err)
{
    executor *x = ud;
    em__msg m = {.type = EM__MSG_FETCH, .sid = sid, .mid = mid, .reduce = reduce};
    pending p;
    int rc = em__x_start_request_seg(x, conn, &m, &p, out, out->len + size, err);
    em__x_pending_free(&p);
    return rc;
}
