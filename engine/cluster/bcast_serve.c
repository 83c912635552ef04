/* engine/cluster/bcast_serve.c - the driver serves broadcast values to executors in pieces
 * (engine/executor/protocol.h, "broadcast pieces"; docs/cluster.md): each `bcast` request
 * names a window of pieces, sent as PIECE frames copied once from the value in the
 * driver's block store; a small cache (c->bcast, BCAST_CACHE) keeps the values being
 * served and their pieces' checksums.
 * SEALED LINKS: each piece is sealed ONCE for every executor (docs/security.md, "pre-sealed
 * broadcast pieces"): a fresh random key per cached value for the cipher of
 * ember.network.crypto.cipher (default AES-128-OCB), the piece index as nonce and its PIECE
 * header (whose crc field names the cipher) as AAD; the sealed piece goes out as the opaque
 * tail of a PRESEALED frame whose link-sealed head carries the PIECE header and the key.
 * Pieces are sealed on first request into a few reused buffers (struct em__bcast_sealed),
 * so the second executor's fetch costs no AES pass on the driver. A value dropped from the cache
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
 * already, and the memory is a few pieces, not a second copy of the value (whose fresh
 * pages cost as much to clear as the AES pass).
 * WHO SEALS: the cluster's sealer thread (struct em__bcast_sealer), from the moment the
 * value is made (em__cl_preseal, while the job that reads it is still being planned) and
 * then at most SEAL_AHEAD pieces beyond the highest piece requested, so sealing piece i + 1
 * overlaps sending piece i and the loop thread only copies sealed bytes out. A piece the
 * sealer has not reached is sealed by the loop thread itself on request (the slot is
 * claimed either way, so no piece is sealed twice into it); a piece the sealer is sealing
 * right now is waited for (at most one piece's AES pass).
 * A lagging executor's piece whose slot moved on is sealed again, into a buffer of its own:
 * the same key, nonce, AAD and bytes give the same ciphertext and tag, so nothing new is
 * revealed (GCM forbids one nonce for two DIFFERENT messages; the value is immutable).
 * Frames in flight hold references to their buffers; references are added under the
 * sealer's mutex only, so a claimer that sees 1 knows no frame is writing from it, and a
 * slot whose buffer is still being written gets a new buffer. */
#define SEALED_SLOTS 8
#define SEAL_AHEAD 2   /* a lagger up to SLOTS - AHEAD = 6 pieces behind the leader finds its
                           pieces sealed (before the sealer thread: 8) */
#define NO_PIECE UINT32_MAX
typedef struct sealed_buf {
    atomic_int refs;
    uint8_t data[];   /* EM__PIECE_SIZE + EM_AEAD_TAG_LEN */
} sealed_buf;

/* The cluster's sealing thread and the mutex of every sealed value's slots. */
typedef struct em__bcast_sealer {
    pthread_mutex_t mu;
    pthread_cond_t work;      /* the thread waits: a value queued, a request, stop */
    pthread_cond_t sealed;    /* the loop thread waits: a slot it needs is sealed */
    pthread_t th;
    bool started, stop;
    struct em__bcast_sealed *queue;   /* values with pieces left to seal (a reference each) */
} em__bcast_sealer;

struct em__bcast_sealed {
    atomic_int refs;
    uint8_t key[EM_AEAD_KEY_LEN];
    em_cipher cipher;         /* c->o.bcast_cipher; sent in the crc field (the AAD) */
    em__bcast_sealer *sr;     /* the cluster's (outlives every use); sr->mu guards below */
    em_batch *batch;          /* reference: the value's bytes */
    em_slice value;           /* borrowed from batch */
    uint32_t npieces;
    uint32_t hi;              /* highest piece requested + 1 */
    uint32_t next;            /* the sealer thread's next piece */
    struct em__bcast_sealed *qnext;
    struct {
        sealed_buf *buf;      /* reference; NULL = none yet */
        uint32_t idx;         /* the piece it holds or is being sealed into it; NO_PIECE */
        bool ready;           /* sealed (else being sealed when idx != NO_PIECE) */
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
    em_batch_unref(s->batch);
    em_free(s);
}

/* Piece i's bytes and its PIECE header (the AAD). */
static size_t piece_of(const struct em__bcast_sealed *s, uint32_t i, const uint8_t **p,
                       uint8_t hdr[EM__PIECE_HDR])
{
    size_t off = (size_t)i * EM__PIECE_SIZE;
    size_t len = s->value.n - off < EM__PIECE_SIZE ? s->value.n - off : EM__PIECE_SIZE;
    *p = s->value.p + off;
    em__piece_hdr(hdr, s->value.n, EM__PIECE_SIZE, i, (uint32_t)s->cipher);
    return len;
}

/* Seals piece i into b->data (ciphertext, then tag). Any thread. */
static int seal_piece(const struct em__bcast_sealed *s, uint32_t i, sealed_buf *b,
                      size_t *len, em_err *err)
{
    uint8_t hdr[EM__PIECE_HDR];
    const uint8_t *p;
    *len = piece_of(s, i, &p, hdr);
    return em_aead_seal_once(s->cipher, s->key, i, hdr, EM__PIECE_HDR, p, b->data, *len, b->data + *len,
                             err);
}

/* Claims slot k for piece i (sr->mu held; the slot is not being sealed): its buffer, or a
 * new one when frames still write from the old one. NULL on OOM. */
static sealed_buf *claim_slot(struct em__bcast_sealed *s, int k, uint32_t i)
{
    sealed_buf *b = s->slot[k].buf;
    if (b && atomic_load(&b->refs) != 1) {
        sealed_buf_unref(b);
        b = s->slot[k].buf = NULL;
    }
    if (!b && !(b = s->slot[k].buf = sealed_buf_new()))
        return NULL;
    s->slot[k].idx = i;
    s->slot[k].ready = false;
    return b;
}

/* Seals piece i into claimed slot k (sr->mu held; dropped while sealing). */
static int seal_slot(struct em__bcast_sealed *s, int k, uint32_t i, sealed_buf *b, em_err *err)
{
    size_t len;
    pthread_mutex_unlock(&s->sr->mu);
    int rc = seal_piece(s, i, b, &len, err);
    pthread_mutex_lock(&s->sr->mu);
    if (rc < 0)
        s->slot[k].idx = NO_PIECE;
    else
        s->slot[k].ready = true;
    pthread_cond_broadcast(&s->sr->sealed);
    return rc;
}

/* The sealer thread: seals, round robin over the queued values, the next piece of each
 * that is at most SEAL_AHEAD beyond its highest request; drops a value once every piece
 * is sealed or nothing but the queue holds it (its cache entry went). */
static void *sealer_main(void *ud)
{
    em__bcast_sealer *sr = ud;
    pthread_mutex_lock(&sr->mu);
    while (!sr->stop) {
        bool did = false;
        for (struct em__bcast_sealed **pp = &sr->queue, *s; !did && (s = *pp);) {
            if (atomic_load(&s->refs) == 1 || s->next >= s->npieces) {
                *pp = s->qnext;
                em__bcast_sealed_unref(s);
                continue;
            }
            if (s->next >= s->hi + SEAL_AHEAD) {
                pp = &s->qnext;
                continue;
            }
            uint32_t i = s->next++;
            int k = (int)(i % SEALED_SLOTS);
            bool busy = s->slot[k].idx != NO_PIECE && !s->slot[k].ready;
            if (busy || (s->slot[k].idx != NO_PIECE && s->slot[k].idx >= i))
                continue;   /* the loop thread has it, or the slot moved on */
            sealed_buf *b = claim_slot(s, k, i);
            em_err err = EM_ERR_INIT;
            if (b && seal_slot(s, k, i, b, &err) < 0)   /* the loop thread will say why */
                em_log(EM_LOG_DEBUG, "driver: sealing broadcast piece %u: %s", i, err.msg);
            did = true;
        }
        if (!did && !sr->stop)
            pthread_cond_wait(&sr->work, &sr->mu);
    }
    pthread_mutex_unlock(&sr->mu);
    return NULL;
}

static em__bcast_sealer *sealer_new(void)
{
    em__bcast_sealer *sr = em_calloc(1, sizeof *sr);
    if (!sr)
        return NULL;
    pthread_mutex_init(&sr->mu, NULL);
    pthread_cond_init(&sr->work, NULL);
    pthread_cond_init(&sr->sealed, NULL);
    /* without the thread the loop thread seals every piece on request, as it may anyway */
    sr->started = pthread_create(&sr->th, NULL, sealer_main, sr) == 0;
    return sr;
}

void em__cl_sealer_free(struct em__bcast_sealer *sr)
{
    if (!sr)
        return;
    pthread_mutex_lock(&sr->mu);
    sr->stop = true;
    pthread_cond_signal(&sr->work);
    pthread_mutex_unlock(&sr->mu);
    if (sr->started)
        pthread_join(sr->th, NULL);
    while (sr->queue) {
        struct em__bcast_sealed *s = sr->queue;
        sr->queue = s->qnext;
        em__bcast_sealed_unref(s);
    }
    pthread_mutex_destroy(&sr->mu);
    pthread_cond_destroy(&sr->work);
    pthread_cond_destroy(&sr->sealed);
    em_free(sr);
}

static bcast_ent *cache_find(em_cluster *c, uint32_t id)   /* c->lock held */
{
    for (int k = 0; k < BCAST_CACHE; k++)
        if (c->bcache[k].id == id)
            return &c->bcache[k];
    return NULL;
}

/* The sealing state of broadcast id (value v, kept by batch ref), made on first use with
 * a fresh random key and queued for the sealer thread: a new reference, or NULL with err
 * set. Any thread. */
static struct em__bcast_sealed *bcast_sealed(em_cluster *c, uint32_t id, em_slice v,
                                             em_batch *ref, em_err *err)
{
    pthread_mutex_lock(&c->lock);
    bcast_ent *e = cache_find(c, id);
    struct em__bcast_sealed *s = e ? e->sealed : NULL;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    if (!s && !c->sealer)
        c->sealer = sealer_new();
    em__bcast_sealer *sr = c->sealer;
    pthread_mutex_unlock(&c->lock);
    if (s)
        return s;
    if (!sr || !(s = em_calloc(1, sizeof *s))) {
        em_err_set(err, EM_ENOMEM, "broadcast %u: out of memory", id);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->sr = sr;
    s->cipher = c->o.bcast_cipher ? (em_cipher)c->o.bcast_cipher : EM_CIPHER_DEFAULT;
    s->batch = em_batch_ref(ref);
    s->value = v;
    s->npieces = em__piece_count(v.n, EM__PIECE_SIZE);
    for (int k = 0; k < SEALED_SLOTS; k++)
        s->slot[k].idx = NO_PIECE;
    if (em_random_bytes(s->key, sizeof s->key, err) < 0) {
        em__bcast_sealed_unref(s);
        return NULL;
    }
    pthread_mutex_lock(&c->lock);   /* keep it with the entry (unless it went meanwhile) */
    e = cache_find(c, id);
    struct em__bcast_sealed *had = e ? e->sealed : NULL;
    if (had) {   /* another thread made one meanwhile: use that (one key per value) */
        atomic_fetch_add(&had->refs, 1);
        pthread_mutex_unlock(&c->lock);
        em__bcast_sealed_unref(s);
        return had;
    }
    if (e) {
        atomic_fetch_add(&s->refs, 1);
        e->sealed = s;
    }
    pthread_mutex_unlock(&c->lock);
    if (e && sr->started) {
        pthread_mutex_lock(&sr->mu);
        atomic_fetch_add(&s->refs, 1);
        s->qnext = sr->queue;
        sr->queue = s;
        pthread_cond_signal(&sr->work);
        pthread_mutex_unlock(&sr->mu);
    }
    return s;
}

/* Piece i of s sealed: a new reference to its buffer (the slot's, or one of its own for a
 * lagging executor), with the sealed length in *len. Loop thread. */
static sealed_buf *sealed_piece(struct em__bcast_sealed *s, uint32_t i, size_t *len,
                                em_err *err)
{
    em__bcast_sealer *sr = s->sr;
    int k = (int)(i % SEALED_SLOTS), rc;
    uint8_t hdr[EM__PIECE_HDR];
    const uint8_t *p;
    *len = piece_of(s, i, &p, hdr);
    pthread_mutex_lock(&sr->mu);
    if (i + 1 > s->hi) {   /* the sealer may go SEAL_AHEAD beyond */
        s->hi = i + 1;
        pthread_cond_signal(&sr->work);
    }
    while (s->slot[k].idx == i && !s->slot[k].ready)   /* the sealer is on it */
        pthread_cond_wait(&sr->sealed, &sr->mu);
    sealed_buf *b = s->slot[k].buf;
    if (s->slot[k].idx == i) {
        atomic_fetch_add(&b->refs, 1);
        pthread_mutex_unlock(&sr->mu);
        return b;
    }
    bool busy = s->slot[k].idx != NO_PIECE && !s->slot[k].ready;
    if (!busy && (s->slot[k].idx == NO_PIECE || s->slot[k].idx < i)) {
        if (!(b = claim_slot(s, k, i))) {
            pthread_mutex_unlock(&sr->mu);
            em_err_set(err, EM_ENOMEM, "broadcast piece %u: out of memory", i);
            return NULL;
        }
        if ((rc = seal_slot(s, k, i, b, err)) == 0)
            atomic_fetch_add(&b->refs, 1);
        pthread_mutex_unlock(&sr->mu);
        return rc < 0 ? NULL : b;
    }
    pthread_mutex_unlock(&sr->mu);
    if (!(b = sealed_buf_new())) {   /* a lagger: its slot moved on */
        em_err_set(err, EM_ENOMEM, "broadcast piece %u: out of memory", i);
        return NULL;
    }
    if (seal_piece(s, i, b, len, err) < 0) {
        sealed_buf_unref(b);
        return NULL;
    }
    return b;
}

/* Sends piece i of s for request rid as a PRESEALED frame. Loop thread. */
static int send_sealed_piece(em_cluster *c, em_conn_id to, struct em__bcast_sealed *s,
                             uint64_t rid, uint32_t i, em_err *err)
{
    size_t len;
    sealed_buf *b = sealed_piece(s, i, &len, err);
    if (!b)
        return err->code < 0 ? err->code : EM_EIO;
    uint8_t hdr[EM__DATA_HDR + EM__PIECE_HDR];
    em__data_hdr(hdr, EM__DATA_PIECE, 0, rid);
    em__piece_hdr(hdr + EM__DATA_HDR, s->value.n, EM__PIECE_SIZE, i, (uint32_t)s->cipher);
    em_slice head[2] = {{hdr, sizeof hdr}, {s->key, sizeof s->key}};
    em_net_ext tail = {b->data, len + EM_AEAD_TAG_LEN, sealed_buf_unref, b};
    return em_net_send_presealed(c->net, to, head, 2, &tail, err);
}

void em__cl_preseal(em_cluster *c, uint32_t id)
{
    em_err err = EM_ERR_INIT;
    em_slice v = {NULL, 0};
    em_batch *ref = NULL;
    struct em__bcast_sealed *s = NULL;
    if (bcast_value(c, id, &v, &ref, &err) == 1)
        s = bcast_sealed(c, id, v, ref, &err);
    if (err.code < 0)   /* the request path will meet it again and report it */
        em_log(EM_LOG_DEBUG, "driver: presealing broadcast %u: %s", id, err.msg);
    em__bcast_sealed_unref(s);
    em_batch_unref(ref);
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
            !(s = bcast_sealed(c, m->block.a, v, ref, &err)))
            rc = err.code;
        for (uint64_t i = m->first; rc >= 0 && i < end && i < np; i++) {
            size_t off = (size_t)i * EM__PIECE_SIZE;
            size_t len = v.n - off < EM__PIECE_SIZE ? v.n - off : EM__PIECE_SIZE;
            if (s) {
                if ((rc = send_sealed_piece(c, id, s, m->id, (uint32_t)i, &err)) < 0)
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
