/* engine/cluster/bcast_serve.c - the driver serves broadcast values to executors in pieces
 * (engine/executor/protocol.h, "broadcast pieces"; docs/cluster.md): each `bcast` request
 * names a window of pieces, sent as PIECE frames copied once from the value in the
 * driver's block store; a small cache (c->bcast, BCAST_CACHE) keeps the values being
 * served and their pieces' checksums.
 * SEALED LINKS: each piece is sealed ONCE for every executor (docs/security.md, "pre-sealed
 * broadcast pieces"): a fresh random AES-256-GCM key per cached value, the piece index as
 * nonce and its PIECE header as AAD; the sealed piece goes out as the opaque tail of a
 * PRESEALED frame whose link-sealed head carries the PIECE header and the key. Pieces are
 * sealed on first request into a few reused buffers (struct em__bcast_sealed), so the
 * second executor's fetch costs no AES pass on the driver. A value dropped from the cache
 * and served again gets a new key.
 * THREADS: the loop thread (d_on_frame in driver.c); c->lock for the cache. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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
        em__bcast_sealed_unref(c->bcache[BCAST_CACHE - 1].sealed);
        memmove(&c->bcache[1], &c->bcache[0], (BCAST_CACHE - 1) * sizeof c->bcache[0]);
        c->bcache[0] = (bcast_ent){id, em_batch_ref(b[0]), r.val, NULL, NULL};
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

/* A value's pieces sealed once (sealed links). The key is the value's for as long as it is
 * cached; sealed pieces live in SEALED_SLOTS reusable buffers (piece i in slot i % SLOTS),
 * so executors fetching in step (each asks for a few pieces ahead) find each piece sealed
 * by the first one's request, and the memory is a few pieces, not a second copy of the
 * value (whose fresh pages cost as much to clear as the AES pass). A lagging executor's
 * piece whose slot moved on is sealed again: the same key, nonce, AAD and bytes give the
 * same ciphertext and tag, so nothing new is revealed (GCM forbids one nonce for two
 * DIFFERENT messages; the value is immutable). Slots are used on the loop thread only;
 * frames in flight hold references to their buffers, so a slot whose buffer is still
 * being written gets a new buffer. */
#define SEALED_SLOTS 8
typedef struct sealed_buf {
    atomic_int refs;
    uint8_t data[];   /* EM__PIECE_SIZE + EM_AEAD_TAG_LEN */
} sealed_buf;

struct em__bcast_sealed {
    atomic_int refs;
    uint8_t key[EM_AEAD_KEY_LEN];
    struct {
        sealed_buf *buf;   /* reference; NULL = empty */
        uint32_t idx;      /* the piece it holds */
    } slot[SEALED_SLOTS];
};

/* Free sealed buffers kept for reuse, process-wide (any thread, free_lock): a buffer still
 * being written when its slot moves on is replaced, and without reuse every replacement
 * would be 4 MiB of fresh pages to fault in and clear (measured: as much kernel time as
 * the AES pass). At most FREE_MAX are kept (48 MiB). */
#define FREE_MAX 12
static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static sealed_buf *free_bufs[FREE_MAX];
static int nfree;

static sealed_buf *sealed_buf_new(void)
{
    pthread_mutex_lock(&free_lock);
    sealed_buf *b = nfree ? free_bufs[--nfree] : NULL;
    pthread_mutex_unlock(&free_lock);
    if (!b)
        b = em_malloc(sizeof *b + EM__PIECE_SIZE + EM_AEAD_TAG_LEN);
    if (b)
        atomic_init(&b->refs, 1);
    return b;
}

static void sealed_buf_unref(void *ud)   /* any thread */
{
    sealed_buf *b = ud;
    if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    pthread_mutex_lock(&free_lock);
    if (nfree < FREE_MAX) {
        free_bufs[nfree++] = b;
        b = NULL;
    }
    pthread_mutex_unlock(&free_lock);
    em_free(b);
}

void em__bcast_sealed_unref(struct em__bcast_sealed *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    em_secure_zero(s->key, sizeof s->key);
    for (int i = 0; i < SEALED_SLOTS; i++)
        sealed_buf_unref(s->slot[i].buf);
    em_free(s);
}

/* The sealing state of broadcast id, made on first use: a new reference, or NULL with err
 * set. Loop thread. */
static struct em__bcast_sealed *bcast_sealed(em_cluster *c, uint32_t id, em_err *err)
{
    pthread_mutex_lock(&c->lock);
    bcast_ent *e = NULL;
    for (int k = 0; k < BCAST_CACHE && !e; k++)
        if (c->bcache[k].id == id)
            e = &c->bcache[k];
    struct em__bcast_sealed *s = e ? e->sealed : NULL;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&c->lock);
    if (s)
        return s;
    if (!(s = em_calloc(1, sizeof *s))) {
        em_err_set(err, EM_ENOMEM, "broadcast %u: out of memory", id);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    if (em_random_bytes(s->key, sizeof s->key, err) < 0) {
        em__bcast_sealed_unref(s);
        return NULL;
    }
    pthread_mutex_lock(&c->lock);   /* keep it with the entry (unless it went meanwhile) */
    e = NULL;
    for (int k = 0; k < BCAST_CACHE && !e; k++)
        if (c->bcache[k].id == id)
            e = &c->bcache[k];
    if (e && !e->sealed) {
        atomic_fetch_add(&s->refs, 1);
        e->sealed = s;
    }
    pthread_mutex_unlock(&c->lock);
    return s;
}

/* Sends piece i (len bytes at p, of a value of total bytes) of request rid as a PRESEALED
 * frame, sealed first unless its slot holds it already. Loop thread. */
static int send_sealed_piece(em_cluster *c, em_conn_id to, struct em__bcast_sealed *s,
                             uint64_t rid, uint64_t total, uint32_t i, const uint8_t *p,
                             size_t len, em_err *err)
{
    uint8_t hdr[EM__DATA_HDR + EM__PIECE_HDR];
    em__data_hdr(hdr, EM__DATA_PIECE, 0, rid);
    em__piece_hdr(hdr + EM__DATA_HDR, total, EM__PIECE_SIZE, i, 0);
    int k = (int)(i % SEALED_SLOTS), rc;
    sealed_buf *b = s->slot[k].buf;
    if (!b || s->slot[k].idx != i) {
        /* only this thread adds references: 1 means no frame is writing from it */
        if (b && atomic_load(&b->refs) != 1) {
            sealed_buf_unref(b);
            b = s->slot[k].buf = NULL;
        }
        if (!b) {
            if (!(b = sealed_buf_new()))
                return em_err_set(err, EM_ENOMEM, "broadcast piece %u: out of memory", i);
            s->slot[k].buf = b;
        }
        s->slot[k].idx = UINT32_MAX;   /* holds nothing until sealed */
        if ((rc = em_aead_seal_once(s->key, i, hdr + EM__DATA_HDR, EM__PIECE_HDR, p, b->data,
                                    len, b->data + len, err)) < 0)
            return rc;
        s->slot[k].idx = i;
    }
    em_slice head[2] = {{hdr, sizeof hdr}, {s->key, sizeof s->key}};
    atomic_fetch_add(&b->refs, 1);
    em_net_ext tail = {b->data, len + EM_AEAD_TAG_LEN, sealed_buf_unref, b};
    return em_net_send_presealed(c->net, to, head, 2, &tail, err);
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
        struct em__bcast_sealed *s = NULL;
        if (em_net_sealed(c->net) && m->first < np &&
            !(s = bcast_sealed(c, m->block.a, &err)))
            rc = err.code;
        for (uint64_t i = m->first; rc >= 0 && i < end && i < np; i++) {
            size_t off = (size_t)i * EM__PIECE_SIZE;
            size_t len = v.n - off < EM__PIECE_SIZE ? v.n - off : EM__PIECE_SIZE;
            if (s) {
                if ((rc = send_sealed_piece(c, id, s, m->id, v.n, (uint32_t)i, v.p + off, len,
                                            &err)) < 0)
                    break;
                continue;
            }
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
        em__bcast_sealed_unref(s);
        em_batch_unref(ref);
        if (rc >= 0)
            return;
    }
    em__msg r = {.type = EM__MSG_BLOCK_REPLY, .id = m->id, .code = rc < 0 ? rc : 0,
                 .err = err, .found = false};
    em__cl_send_msg(c, id, &r, &err);
}
