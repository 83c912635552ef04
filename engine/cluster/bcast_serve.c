/* engine/cluster/bcast_serve.c - the driver serves broadcast values to executors in pieces
 * (engine/executor/protocol.h, "broadcast pieces"; docs/cluster.md): each `bcast` request
 * names a window of pieces, sent as PIECE frames copied once from the value in the
 * driver's block store; a small cache (c->bcast, BCAST_CACHE) keeps the values being
 * served and their pieces' checksums.
 * THREADS: the loop thread (d_on_frame in driver.c); c->lock for the cache. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/cluster/cluster_int.h"

/* The value of broadcast id from the cache, else from the store (then cached), with a
 * reference to its batch in *ref (em_cluster_drop_blocks may drop the cache's meanwhile).
 * Loop thread. 1 found, 0 absent, <0 error. */
static int bcast_value(em_cluster *c, uint32_t id, em_slice *out, em_batch **ref, em_err *err)
{
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < BCAST_CACHE; i++)
        if (c->bcache[i].id == id) {
            bcast_ent e = c->bcache[i];   /* move it to the front */
            memmove(&c->bcache[1], &c->bcache[0], (size_t)i * sizeof e);
            c->bcache[0] = e;
            *out = e.value;
            *ref = em_batch_ref(e.batch);
            pthread_mutex_unlock(&c->lock);
            return 1;
        }
    pthread_mutex_unlock(&c->lock);
    em_batch **b = NULL;
    size_t n = 0;
    em_block_id bid = {EM_BLOCK_BROADCAST, id, 0, 0};
    int rc = c->o.store ? em_block_store_get(c->o.store, bid, &b, &n, err) : 0;
    if (rc == 1 && (n != 1 || em_batch_kind(b[0]) != EM_REC_BYTES || em_batch_nrecs(b[0]) != 1))
        rc = em_err_set(err, EM_ECORRUPT, "broadcast %u: not one BYTES record", id);
    if (rc == 1) {
        em_batch_iter it;
        em_rec r;
        em_batch_iter_init(&it, b[0]);
        em_batch_iter_next(&it, &r);
        pthread_mutex_lock(&c->lock);
        em_batch_unref(c->bcache[BCAST_CACHE - 1].batch);
        em_free(c->bcache[BCAST_CACHE - 1].crcs);
        memmove(&c->bcache[1], &c->bcache[0], (BCAST_CACHE - 1) * sizeof c->bcache[0]);
        c->bcache[0] = (bcast_ent){id, em_batch_ref(b[0]), r.val, NULL};
        pthread_mutex_unlock(&c->lock);
        *out = r.val;
        *ref = em_batch_ref(b[0]);
    }
    for (size_t i = 0; i < n; i++)
        em_batch_unref(b[i]);
    em_free(b);
    return rc;
}

/* The crc32c of piece i (len bytes at p) of broadcast id: computed once per value and
 * kept in its cache entry, so the second executor's fetch costs no checksum. Loop thread;
 * the entry is looked up under the lock each time (a drop may free it meanwhile). */
static uint32_t piece_crc(em_cluster *c, uint32_t id, uint32_t i, const uint8_t *p,
                          size_t len)
{
    bcast_ent *e = NULL;
    pthread_mutex_lock(&c->lock);
    for (int k = 0; k < BCAST_CACHE && !e; k++)
        if (c->bcache[k].id == id)
            e = &c->bcache[k];
    uint64_t have = e && e->crcs ? e->crcs[i] : 0;
    pthread_mutex_unlock(&c->lock);
    if (have >> 32)
        return (uint32_t)have;
    uint32_t crc = em_crc32c(0, p, len);
    pthread_mutex_lock(&c->lock);
    e = NULL;
    for (int k = 0; k < BCAST_CACHE && !e; k++)
        if (c->bcache[k].id == id)
            e = &c->bcache[k];
    if (e && !e->crcs)   /* OOM: no cache, every fetch computes it */
        e->crcs = em_calloc(em__piece_count(e->value.n, EM__PIECE_SIZE), sizeof *e->crcs);
    if (e && e->crcs)
        e->crcs[i] = crc | (uint64_t)1 << 32;
    pthread_mutex_unlock(&c->lock);
    return crc;
}

static void release_batch(void *ud)
{
    em_batch_unref(ud);
}

/* Sends pieces [first, first + count) of a broadcast (those that exist), each as one PIECE
 * frame copied once from the value; a missing value or an error is a block_reply. */
void em__cl_on_bcast(em_cluster *c, em_conn_id id, const em__msg *m)
{
    em_err err = EM_ERR_INIT;
    em_slice v = {NULL, 0};
    em_batch *ref = NULL;
    int rc = bcast_value(c, m->block.a, &v, &ref, &err);
    if (rc == 1) {
        uint32_t np = em__piece_count(v.n, EM__PIECE_SIZE);
        uint64_t end = (uint64_t)m->first + m->count;
        if (m->first == 0) {
            pthread_mutex_lock(&c->lock);
            c->bcast_fetches++;
            pthread_mutex_unlock(&c->lock);
        }
        for (uint64_t i = m->first; i < end && i < np; i++) {
            size_t off = (size_t)i * EM__PIECE_SIZE;
            size_t len = v.n - off < EM__PIECE_SIZE ? v.n - off : EM__PIECE_SIZE;
            uint8_t hdr[EM__DATA_HDR + EM__PIECE_HDR];
            em__data_hdr(hdr, EM__DATA_PIECE, 0, m->id);
            /* a sealed link's AES-GCM tag proves the piece: no crc (protocol.h) */
            uint32_t crc = em_net_sealed(c->net) ? 0
                           : piece_crc(c, m->block.a, (uint32_t)i, v.p + off, len);
            em__piece_hdr(hdr + EM__DATA_HDR, v.n, EM__PIECE_SIZE, (uint32_t)i, crc);
            /* zero copy: the frame's tail is the value itself, kept by a batch reference */
            em_slice head = {hdr, sizeof hdr};
            em_net_ext ext = {v.p + off, len, release_batch, em_batch_ref(ref)};
            if ((rc = em_net_send_ext(c->net, id, EM_FRAME_DATA, &head, 1, &ext, &err)) < 0)
                break;
        }
        em_batch_unref(ref);
        if (rc >= 0)
            return;
    }
    em__msg r = {.type = EM__MSG_BLOCK_REPLY, .id = m->id, .code = rc < 0 ? rc : 0,
                 .err = err, .found = false};
    em__cl_send_msg(c, id, &r, &err);
}
