/* engine/net/conn.c - authenticated, framed TCP connections on one libuv loop thread.
 *
 * DESIGN
 *   Threads: the loop thread owns the uv_loop, every uv handle and each conn's decoder and
 *   handshake state. Other threads push `cmd`s onto net->cmds (net->lock) and wake the
 *   loop with uv_async_send; blocking calls (listen, connect, stop) then wait on net->cond
 *   for cmd->done. The conn list and each conn's `queued` byte count are guarded by
 *   net->lock so senders can apply backpressure; a conn is unlinked and freed only on the
 *   loop thread, under the lock, after uv_close has finished with its handle.
 *   Handshake (client / server):  HELLO(cn, mode) ->  <- CHALLENGE(sn, mode)
 *                                 PROOF(client proof) ->  <- WELCOME(server proof)
 *                                                  or  <- DENIED(reason), then close
 *   The client proves itself first, so a stranger saying HELLO learns no proof to guess
 *   the secret against offline; the client checks the server's proof before it sends any
 *   other frame, so it never talks to an impostor. The server reads nothing but these
 *   capped frames before WELCOME. Both sides announce their link mode (crypto or plain)
 *   and the proofs cover it, so a relay cannot downgrade a link to plain.
 *   After WELCOME each side seals every frame it writes (conn_write_ext, on the loop
 *   thread, which orders the sequence numbers as the bytes go out; external bytes are
 *   sealed into reused pool chunks) and its decoder opens every frame it reads in place, as
 *   the bytes arrive (frame.c): em_aead in auth.c.
 *   Big bodies are read straight into the decoder's body buffer (on_alloc asks it for
 *   room), so a 4 MiB broadcast piece is not copied out of the 256 KiB read buffer.
 *   Pre-login limits: inbound connections not logged in are capped globally and per peer
 *   address, the oldest dropped for a new one; they read into a 512-byte buffer (the 256
 *   KiB one comes with login). Refused logins are logged with the peer's address, at most
 *   one line a second (the rest are counted in the next line).
 *   Liveness: a timer checks every conn; logins past login_timeout_ms and open peers silent
 *   past peer_timeout_ms are closed; open conns get a heartbeat every heartbeat_ms. */
#include "engine/net/net_int.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum conn_state { ST_CONNECTING, ST_WAIT_HELLO, ST_WAIT_CHALLENGE, ST_WAIT_PROOF,
                  ST_WAIT_WELCOME, ST_DENIED, ST_OPEN, ST_CLOSING };
enum { DENY_SECRET = 1, DENY_MODE = 2 };   /* DENIED frame reasons */
#define RBUF_OPEN (256u << 10)   /* read buffer after login: a 4 MiB broadcast piece in 16 reads */
enum cmd_kind { CMD_LISTEN = 1, CMD_CONNECT, CMD_SEND, CMD_CLOSE, CMD_STOP };

typedef struct cmd cmd;
struct cmd {
    int kind;
    em_net *net;         /* CMD_LISTEN, CMD_CONNECT: set by the loop while resolving */
    char host[EM_NET_HOST_MAX];
    uint16_t port, bound;
    bool in_use;         /* CMD_LISTEN: failed because the port is taken */
    em_conn_id id;
    uint8_t *buf;        /* CMD_SEND: encoded frame (owned until written) */
    size_t len;
    em_net_ext ext;      /* CMD_SEND: bytes written after buf, not copied (optional) */
    int rc;
    em_err err;
    bool done;
    bool waited;         /* a thread waits for done; else the loop frees the cmd */
    cmd *next;
};

typedef struct conn conn;
struct conn {
    em_net *net;
    uv_tcp_t tcp;
    em_conn_id id;
    bool inbound;
    enum conn_state st;
    bool was_open;
    bool paused;
    bool loopback;          /* the peer's address is 127.0.0.0/8 or ::1 (set at open) */
    uint8_t cnonce[32], snonce[32];
    char peer[64];          /* inbound: "ip:port" of the peer (for logs) */
    char peer_ip[48];       /* inbound: the peer's address, the per-peer cap's key */
    em_aead *tx, *rx;       /* after login on a crypto link: seal / open (loop thread) */
    em_frame_decoder dec;
    uint64_t start_ms, last_recv_ms, last_hb_ms;
    size_t queued;          /* bytes handed to uv_write, not yet written (net->lock) */
    cmd *waiter;            /* CMD_CONNECT waiting for the handshake */
    em_err why;             /* reason for closing */
    struct wreq *sq_head, *sq_tail;   /* frames waiting to be sealed, in order (loop) */
    bool sealing;           /* sq_head is being sealed on the libuv thread pool */
    bool dead;              /* on_closed ran while sealing: the job's end frees c */
    uint8_t *rbuf;          /* RBUF_OPEN bytes once open; before, `small` */
    uint8_t small[512];
    conn *next;
};

/* One frame being written: bufs[0] is the encoded frame (header and payload), then the
 * external bytes: as they are (ext, plain links) or sealed into pool chunks (crypto). */
typedef struct wreq {
    uv_write_t req;
    uv_work_t work;      /* sealing on the thread pool (big frames) */
    conn *c;
    struct wreq *next;   /* in c->sq */
    size_t len;          /* unsealed frame bytes + ext bytes: what `queued` counts */
    em_net_ext ext;      /* plain: written from where it is; sealed: read by the sealer */
    bool chunked;        /* bufs[1..] are seal-pool chunks */
    bool raw_tail;       /* PRESEALED: ext is written as it is, the tag ends bufs[0] */
    uint32_t aad_len;    /* bytes of bufs[0] that are the AAD: the frame header (and the
                            head length of a PRESEALED frame) */
    int rc;              /* the seal's result (and err) */
    em_err err;
    uint32_t nbufs;
    uv_buf_t bufs[];
} wreq;

/* Sealing a frame's external bytes (a broadcast piece, megabytes) writes the ciphertext
 * into chunks of SEAL_CHUNK bytes from a per-net pool, written with the frame in one
 * uv_write: the chunks are reused, so sealing megabytes costs no fresh pages (their first
 * touch, clear_page in the kernel, cost as much as the AES itself). */
#define SEAL_CHUNK ((size_t)256 << 10)
#define SEAL_POOL 64   /* chunks kept for reuse: 16 MiB */
#define ROOM_MIN ((size_t)64 << 10)   /* bodies this short are read into rbuf */
/* Frames this big are sealed on libuv's thread pool, not the loop thread: one job at a
 * time per connection (sequence numbers and byte order stay the frames' order), while the
 * loop goes on reading and writing, and the connections of a broadcast seal in parallel. */
#define SEAL_ASYNC_MIN ((size_t)256 << 10)

static void ext_release(em_net_ext *e)
{
    if (e->release)
        e->release(e->ud);
    e->release = NULL;
}

struct em_net {
    em_net_opts o;
    uint8_t *secret;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;
    uint64_t tick_ms;           /* when on_tick last ran (loop thread) */
    uv_thread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    cmd *cmds, *cmds_tail;      /* lock */
    conn *conns;                /* lock for list membership and `queued` */
    uv_tcp_t *servers[16];
    int nservers;
    uint64_t next_id;
    bool stopping;
    uint8_t mode;               /* EM_NET_MODE_* of this process */
    uint64_t log_ms;            /* last failed-login line (loop thread) */
    uint32_t log_suppressed;    /* failed logins not logged since */
    uint8_t *pool[SEAL_POOL];   /* free seal chunks (loop thread) */
    int npool;
};

static uint8_t *pool_get(em_net *n)   /* loop thread; NULL when out of memory */
{
    return n->npool ? n->pool[--n->npool] : em_malloc(SEAL_CHUNK + EM_AEAD_TAG_LEN);
}

static void pool_put(em_net *n, void *p)   /* loop thread */
{
    if (p && n->npool < SEAL_POOL)
        n->pool[n->npool++] = p;
    else
        em_free(p);
}

static void wreq_free(em_net *n, wreq *w)   /* loop thread */
{
    em_free(w->bufs[0].base);
    for (uint32_t i = 1; w->chunked && i < w->nbufs; i++)
        pool_put(n, w->bufs[i].base);
    ext_release(&w->ext);
    em_free(w);
}

static uint64_t now_ms(void)
{
    return em_now_ns() / 1000000u;
}

static bool on_loop_thread(em_net *n)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &n->thread);
}

static conn *find_conn(em_net *n, em_conn_id id)   /* lock held */
{
    for (conn *c = n->conns; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static void finish_cmd(em_net *n, cmd *k, int rc, const em_err *err)
{
    pthread_mutex_lock(&n->lock);
    k->rc = rc;
    if (err)
        em_err_copy(&k->err, err);
    k->done = true;
    bool waited = k->waited;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    if (!waited) {
        em_free(k->buf);
        em_free(k);
    }
}

/* ---------------------------------------------------------------- closing */

/* An inbound connection closed before login: a wrong secret, garbage, a timeout or a drop
 * by the pre-login cap. One line a second at most, so a flood cannot flood the log. */
static void log_failed_login(em_net *n, conn *c)
{
    uint64_t now = now_ms();
    if (n->log_ms && now - n->log_ms < 1000) {
        n->log_suppressed++;
        return;
    }
    char more[64] = "";
    if (n->log_suppressed)
        snprintf(more, sizeof more, " (%u more failed logins not logged)", n->log_suppressed);
    em_log(c->why.code == EM_EAUTH ? EM_LOG_WARN : EM_LOG_INFO,
           "network: login from %s failed: %s%s", c->peer[0] ? c->peer : "?", c->why.msg,
           more);
    n->log_ms = now;
    n->log_suppressed = 0;
}

static void on_closed(uv_handle_t *h)
{
    conn *c = h->data;
    em_net *n = c->net;
    pthread_mutex_lock(&n->lock);
    for (conn **pp = &n->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    if (c->waiter) {
        em_err e = c->why;
        if (e.code == 0)
            em_err_set(&e, EM_EIO, "connection closed during the handshake");
        finish_cmd(n, c->waiter, e.code, &e);
    }
    if (c->inbound && !c->was_open && c->why.code != 0)
        log_failed_login(n, c);
    if (c->was_open && n->o.ops->on_close)
        n->o.ops->on_close(n->o.ud, c->id, &c->why);
    /* Frames still waiting for the sealer are dropped; one being sealed is seal_done's. */
    wreq **rest = c->sealing ? &c->sq_head->next : &c->sq_head;
    while (*rest) {
        wreq *w = *rest;
        *rest = w->next;
        wreq_free(n, w);
    }
    c->sq_tail = c->sealing ? c->sq_head : NULL;
    em_frame_decoder_destroy(&c->dec);
    em_aead_free(c->rx);
    em_free(c->rbuf);
    c->rbuf = NULL;
    if (c->sealing) {   /* the thread pool still seals with c->tx: seal_done frees c */
        c->dead = true;
        return;
    }
    em_aead_free(c->tx);
    em_free(c);
}

static void conn_close(conn *c, int code, const char *fmt, const char *detail)
{
    if (c->st == ST_CLOSING)
        return;
    c->st = ST_CLOSING;
    if (code)
        em_err_set(&c->why, code, fmt, detail ? detail : "");
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void start_read(conn *c);

/* ---------------------------------------------------------------- writing */

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    conn *c = w->c;
    em_net *n = c->net;
    size_t mark = em_net_drain_mark(n);
    pthread_mutex_lock(&n->lock);
    c->queued -= w->len;
    bool resume = c->paused && c->queued <= n->o.send_queue_max / 2;
    bool drained = c->queued + w->len > mark && c->queued <= mark;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    wreq_free(n, w);
    if (status < 0) {
        conn_close(c, EM_EIO, "write failed: %s", uv_strerror(status));
        return;
    }
    if (c->st == ST_DENIED) {   /* DENIED is out: now close (c->why says why) */
        conn_close(c, 0, "%s", "");
        return;
    }
    if (resume && c->st != ST_CLOSING) {
        c->paused = false;
        start_read(c);
    }
    if (drained && c->st == ST_OPEN && n->o.ops->on_drain)
        n->o.ops->on_drain(n->o.ud, c->id);
}

/* Seals w's frame for the wire (any thread; one at a time per connection): the payload is
 * encrypted in place, the external bytes into the pool chunks prepare_seal reserved
 * (bufs[1..]; the tag ends the last), or the tag ends bufs[0]. */
static int seal_frame(em_aead *tx, wreq *w, em_err *err)
{
    size_t hl = w->aad_len;
    uint8_t *b = (uint8_t *)w->bufs[0].base, *tag;
    size_t n = w->bufs[0].len - (w->nbufs == 1 || w->raw_tail ? EM_AEAD_TAG_LEN : 0);
    int rc;
    if ((rc = em_aead_begin(tx, b, hl, err)) < 0 ||
        (rc = em_aead_update(tx, b + hl, b + hl, n - hl, err)) < 0)
        return rc;
    tag = b + n;
    for (uint32_t i = 1; !w->raw_tail && i < w->nbufs; i++) {
        size_t k = w->bufs[i].len - (i + 1 == w->nbufs ? EM_AEAD_TAG_LEN : 0);
        const uint8_t *src = (const uint8_t *)w->ext.p + (size_t)(i - 1) * SEAL_CHUNK;
        if ((rc = em_aead_update(tx, src, (uint8_t *)w->bufs[i].base, k, err)) < 0)
            return rc;
        tag = (uint8_t *)w->bufs[i].base + k;
    }
    return em_aead_finish(tx, tag, err);
}

/* Loop thread: makes room for the seal (the tag; pool chunks for the external bytes) and
 * grows the header's length by the tag. */
static int prepare_seal(em_net *n, wreq *w, em_err *err)
{
    uint8_t *b = (uint8_t *)w->bufs[0].base;
    size_t blen = w->bufs[0].len;
    if (!w->ext.n || w->raw_tail) {
        uint8_t *g = em_realloc(b, blen + EM_AEAD_TAG_LEN);
        if (!g)
            return em_err_set(err, EM_ENOMEM, "sealing a frame of %zu bytes: out of memory",
                              blen);
        w->bufs[0] = uv_buf_init((char *)g, (unsigned)(blen + EM_AEAD_TAG_LEN));
        b = g;
    }
    em_store_le32(b + 4, em_load_le32(b + 4) + EM_AEAD_TAG_LEN);
    if (w->raw_tail) {   /* a PRESEALED tail: written from where it is */
        if (w->ext.n)
            w->bufs[w->nbufs++] = uv_buf_init((char *)w->ext.p, (unsigned)w->ext.n);
        return 0;
    }
    w->chunked = true;
    for (size_t off = 0; off < w->ext.n; off += SEAL_CHUNK) {
        size_t k = w->ext.n - off < SEAL_CHUNK ? w->ext.n - off : SEAL_CHUNK;
        uint8_t *ch = pool_get(n);
        if (!ch)
            return em_err_set(err, EM_ENOMEM, "sealing %zu bytes: out of memory", w->ext.n);
        w->bufs[w->nbufs++] = uv_buf_init((char *)ch, (unsigned)k);
    }
    if (w->nbufs > 1)
        w->bufs[w->nbufs - 1].len += EM_AEAD_TAG_LEN;
    return 0;
}

/* Hands a ready frame to libuv (takes w). */
static void write_wreq(conn *c, wreq *w)
{
    em_net *n = c->net;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, w->nbufs, on_written);
    if (rc < 0) {
        on_written(&w->req, rc);
        return;
    }
    pthread_mutex_lock(&n->lock);
    bool over = c->queued > n->o.send_queue_max;
    pthread_mutex_unlock(&n->lock);
    if (over && !c->paused) {   /* stop reading from a peer we cannot write to fast enough */
        c->paused = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

/* A sealed (or failed) frame: written, or the connection closes. */
static void sealed(conn *c, wreq *w)
{
    if (!w->raw_tail)
        ext_release(&w->ext);   /* its bytes are in the chunks now */
    if (w->rc < 0 && c->st != ST_CLOSING)
        conn_close(c, w->rc, "%s", w->err.msg);
    if (w->rc < 0 || c->st == ST_CLOSING) {
        on_written(&w->req, w->rc < 0 ? UV_ENOMEM : UV_ECANCELED);
        return;
    }
    write_wreq(c, w);
}

static void seal_pump(conn *c);

static void seal_work(uv_work_t *req)   /* thread pool */
{
    wreq *w = req->data;
    w->rc = seal_frame(w->c->tx, w, &w->err);
}

static void seal_done(uv_work_t *req, int status)   /* loop thread */
{
    wreq *w = req->data;
    conn *c = w->c;
    c->sealing = false;
    c->sq_head = w->next;
    if (!c->sq_head)
        c->sq_tail = NULL;
    if (status < 0 && w->rc == 0)
        w->rc = em_err_set(&w->err, EM_EIO, "sealing a frame: %s", uv_strerror(status));
    if (c->dead) {   /* the connection closed meanwhile: on_closed left c to us */
        wreq_free(c->net, w);
        em_aead_free(c->tx);
        em_free(c);
        return;
    }
    sealed(c, w);
    seal_pump(c);
}

/* Seals and writes the queued frames in order: small ones here, a big one on the thread
 * pool (then the rest wait for seal_done). */
static void seal_pump(conn *c)
{
    while (!c->sealing && c->sq_head) {
        wreq *w = c->sq_head;
        if (w->len - (w->raw_tail ? w->ext.n : 0) >= SEAL_ASYNC_MIN && c->st != ST_CLOSING) {
            c->sealing = true;
            w->work.data = w;
            if (uv_queue_work(&c->net->loop, &w->work, seal_work, seal_done) == 0)
                return;
            c->sealing = false;
        }
        c->sq_head = w->next;
        if (!c->sq_head)
            c->sq_tail = NULL;
        if (c->st != ST_CLOSING)
            w->rc = seal_frame(c->tx, w, &w->err);
        sealed(c, w);
    }
}

/* Writes an encoded frame (takes buf, and the external bytes ext, released once written
 * or dropped). `counted`: the bytes were already added to queued. On a sealed link the
 * frame joins the connection's seal queue. */
static void conn_write_ext(conn *c, uint8_t *buf, size_t blen, em_net_ext ext, bool counted)
{
    em_net *n = c->net;
    size_t len = blen + ext.n;
    if (c->st == ST_CLOSING) {
        if (counted) {
            pthread_mutex_lock(&n->lock);
            c->queued -= len;
            pthread_cond_broadcast(&n->cond);
            pthread_mutex_unlock(&n->lock);
        }
        em_free(buf);
        ext_release(&ext);
        return;
    }
    bool raw = blen > EM_FRAME_HEADER_SIZE && buf[8] == EM_FRAME_PRESEALED;
    size_t nbufs = 1 + (c->tx && !raw ? (ext.n + SEAL_CHUNK - 1) / SEAL_CHUNK : ext.n ? 1 : 0);
    wreq *w = em_xcalloc(1, sizeof *w + nbufs * sizeof(uv_buf_t));
    w->c = c;
    w->raw_tail = raw;
    w->aad_len = EM_FRAME_HEADER_SIZE + (raw ? 4 : 0);
    w->len = len;   /* what `queued` counts, sealed or not */
    w->bufs[0] = uv_buf_init((char *)buf, (unsigned)blen);
    w->nbufs = 1;
    w->ext = ext;
    if (!counted) {
        pthread_mutex_lock(&n->lock);
        c->queued += len;
        pthread_mutex_unlock(&n->lock);
    }
    if (!c->tx) {
        if (ext.n)
            w->bufs[w->nbufs++] = uv_buf_init((char *)ext.p, (unsigned)ext.n);
        write_wreq(c, w);
        return;
    }
    if ((w->rc = prepare_seal(n, w, &w->err)) < 0) {
        sealed(c, w);
        return;
    }
    if (c->sq_tail)
        c->sq_tail->next = w;
    else
        c->sq_head = w;
    c->sq_tail = w;
    seal_pump(c);
}

static void conn_write_take(conn *c, uint8_t *buf, size_t len, bool counted)
{
    conn_write_ext(c, buf, len, (em_net_ext){0}, counted);
}

static void conn_send_frame(conn *c, uint8_t type, const void *p, size_t len)
{
    em_vbuf v;
    em_err err = EM_ERR_INIT;
    em_vbuf_init(&v);
    if (em_frame_encode(&v, type, p, len, &err) < 0) {
        em_vbuf_destroy(&v);
        conn_close(c, err.code, "%s", err.msg);
        return;
    }
    size_t n;
    uint8_t *buf = em_vbuf_steal(&v, &n);
    conn_write_take(c, buf, n, false);
}

/* ---------------------------------------------------------------- handshake and frames */

/* Whether the peer is on this host: 127.0.0.0/8 or ::1. */
static bool peer_is_loopback(uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) < 0)
        return false;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6) {
        static const uint8_t one[16] = {[15] = 1};
        return memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr, one, 16) == 0;
    }
    return false;
}

static int conn_opened(conn *c, em_err *err)
{
    em_net *n = c->net;
    if (n->mode == EM_NET_MODE_CRYPTO) {
        /* Server: seals with s2c, opens c2s; client the other way round. */
        c->tx = em_aead_new(n->secret, n->o.secret_len, c->cnonce, c->snonce, !c->inbound, true,
                            err);
        c->rx = c->tx ? em_aead_new(n->secret, n->o.secret_len, c->cnonce, c->snonce,
                                    c->inbound, false, err)
                      : NULL;
        if (!c->rx)
            return err->code;
    }
    uint8_t *rb = em_malloc(RBUF_OPEN);
    if (!rb)
        return em_err_set(err, EM_ENOMEM, "read buffer: out of memory");
    bool lo = peer_is_loopback(&c->tcp);
    pthread_mutex_lock(&n->lock);   /* read by em_net_is_loopback on other threads */
    c->loopback = lo;
    pthread_mutex_unlock(&n->lock);
    c->rbuf = rb;
    c->st = ST_OPEN;
    c->was_open = true;
    c->dec.cap = n->o.max_frame + (c->rx ? EM_AEAD_TAG_LEN : 0);
    c->dec.open = c->rx;   /* frames after WELCOME are opened as their bytes arrive */
    c->last_recv_ms = c->last_hb_ms = now_ms();
    if (n->o.ops->on_open)
        n->o.ops->on_open(n->o.ud, c->id, c->inbound);
    if (c->waiter) {
        c->waiter->id = c->id;
        cmd *k = c->waiter;
        c->waiter = NULL;
        finish_cmd(n, k, 0, NULL);
    }
    return 0;
}

static const char *mode_name(uint8_t mode)
{
    return mode == EM_NET_MODE_CRYPTO ? "true" : "false";
}

/* Server: refuses the login for good. DENIED goes out, then the connection closes once it
 * is written (on_written) or at the login timeout; nothing more is read. */
static int deny(conn *c, uint8_t reason, const em_err *why)
{
    em_err_copy(&c->why, why);
    conn_send_frame(c, EM_FRAME_DENIED, &reason, 1);
    if (c->st != ST_CLOSING) {
        c->st = ST_DENIED;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    return 0;
}

/* Client: the server sent DENIED. */
static int denied(conn *c, em_slice p, em_err *err)
{
    if (p.n == 1 && p.p[0] == DENY_MODE)
        return em_err_set(err, EM_EAUTH,
                          "the server refused the link mode: this process has "
                          "ember.network.crypto=%s and the server has not; set the same on "
                          "both sides",
                          mode_name(c->net->mode));
    return em_err_set(err, EM_EAUTH, "the server refused our secret (wrong secret)");
}

static int handshake_frame(conn *c, uint8_t type, em_slice p, em_err *err)
{
    em_net *n = c->net;
    uint8_t proof[EM_SHA256_LEN], buf[33];
    em_err why = EM_ERR_INIT;
    switch (c->st) {
    case ST_WAIT_HELLO:   /* server */
        if (type != EM_FRAME_HELLO || p.n != 33)
            return em_err_set(err, EM_EAUTH, "expected HELLO, got frame type %u", type);
        memcpy(c->cnonce, p.p, 32);
        if (p.p[32] != n->mode) {
            em_err_set(&why, EM_EAUTH,
                       "peer has ember.network.crypto=%s, this process %s (set the same on "
                       "both sides)",
                       mode_name(p.p[32]), mode_name(n->mode));
            return deny(c, DENY_MODE, &why);
        }
        if (em_random_bytes(c->snonce, 32, err) < 0)
            return err->code;
        memcpy(buf, c->snonce, 32);
        buf[32] = n->mode;
        conn_send_frame(c, EM_FRAME_CHALLENGE, buf, 33);
        c->st = ST_WAIT_PROOF;
        return 0;
    case ST_WAIT_CHALLENGE:   /* client */
        if (type == EM_FRAME_DENIED)
            return denied(c, p, err);
        if (type != EM_FRAME_CHALLENGE || p.n != 33)
            return em_err_set(err, EM_EAUTH, "expected CHALLENGE, got frame type %u", type);
        if (p.p[32] != n->mode)
            return em_err_set(err, EM_EAUTH,
                              "the server has ember.network.crypto=%s, this process %s (set "
                              "the same on both sides)",
                              mode_name(p.p[32]), mode_name(n->mode));
        memcpy(c->snonce, p.p, 32);
        em_auth_proof(n->secret, n->o.secret_len, false, c->cnonce, c->snonce, n->mode, proof);
        conn_send_frame(c, EM_FRAME_PROOF, proof, 32);
        c->st = ST_WAIT_WELCOME;
        return 0;
    case ST_WAIT_PROOF:   /* server */
        if (type != EM_FRAME_PROOF || p.n != 32)
            return em_err_set(err, EM_EAUTH, "expected PROOF, got frame type %u", type);
        em_auth_proof(n->secret, n->o.secret_len, false, c->cnonce, c->snonce, n->mode, proof);
        if (!em_ct_equal(proof, p.p, 32)) {
            em_err_set(&why, EM_EAUTH, "the client failed to prove the shared secret");
            return deny(c, DENY_SECRET, &why);
        }
        em_auth_proof(n->secret, n->o.secret_len, true, c->cnonce, c->snonce, n->mode, proof);
        conn_send_frame(c, EM_FRAME_WELCOME, proof, 32);   /* the last frame in clear */
        return conn_opened(c, err);
    case ST_WAIT_WELCOME:   /* client */
        if (type == EM_FRAME_DENIED)
            return denied(c, p, err);
        if (type != EM_FRAME_WELCOME || p.n != 32)
            return em_err_set(err, EM_EAUTH, "expected WELCOME, got frame type %u", type);
        em_auth_proof(n->secret, n->o.secret_len, true, c->cnonce, c->snonce, n->mode, proof);
        if (!em_ct_equal(proof, p.p, 32))
            return em_err_set(err, EM_EAUTH, "the server failed to prove the shared secret");
        return conn_opened(c, err);
    case ST_DENIED:
        return 0;
    default:
        return em_err_set(err, EM_EPROTO, "frame in state %d", (int)c->st);
    }
}

static int on_frame(void *ud, uint8_t type, em_slice p, em_err *err)
{
    conn *c = ud;
    em_net *n = c->net;
    if (c->st == ST_CLOSING)
        return 0;
    c->last_recv_ms = now_ms();
    if (c->st != ST_OPEN)
        return handshake_frame(c, type, p, err);
    if (type == EM_FRAME_HEARTBEAT)
        return 0;
    if (type < EM_FRAME_RPC)
        return em_err_set(err, EM_EPROTO, "handshake frame type %u after login", type);
    return n->o.ops->on_frame ? n->o.ops->on_frame(n->o.ud, c->id, type, p, err) : 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn *c = h->data;
    uint8_t *room;
    size_t k = c->rbuf ? em_frame_decoder_room(&c->dec, ROOM_MIN, &room) : 0;
    if (k)   /* the rest of a big body: read straight into the decoder's body buffer */
        *buf = uv_buf_init((char *)room, (unsigned)(k < (1u << 30) ? k : (1u << 30)));
    else
        *buf = c->rbuf ? uv_buf_init((char *)c->rbuf, RBUF_OPEN)
                       : uv_buf_init((char *)c->small, sizeof c->small);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (nread == UV_EOF) {
        conn_close(c, c->st == ST_OPEN ? 0 : EM_EIO, "peer closed the connection%s", "");
        return;
    }
    if (nread < 0) {
        conn_close(c, EM_EIO, "read failed: %s", uv_strerror((int)nread));
        return;
    }
    em_err err = EM_ERR_INIT;
    if (em_frame_decoder_feed(&c->dec, (const uint8_t *)buf->base, (size_t)nread, on_frame, c,
                              &err) < 0)
        conn_close(c, err.code, "%s", err.msg);
}

static void start_read(conn *c)
{
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0)
        conn_close(c, EM_EIO, "read start failed: %s", uv_strerror(rc));
}

static conn *conn_new(em_net *n, bool inbound)
{
    conn *c = em_xcalloc(1, sizeof *c);
    c->net = n;
    c->inbound = inbound;
    c->start_ms = now_ms();
    em_frame_decoder_init(&c->dec, EM_FRAME_PRELOGIN_MAX);
    uv_tcp_init(&n->loop, &c->tcp);
    c->tcp.data = c;
    pthread_mutex_lock(&n->lock);
    c->id = ++n->next_id;
    c->next = n->conns;
    n->conns = c;
    pthread_mutex_unlock(&n->lock);
    return c;
}

/* ---------------------------------------------------------------- listen and connect */

static void peer_name(conn *c)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) < 0)
        return;
    em__net_sockaddr_format((struct sockaddr *)&ss, c->peer_ip, sizeof c->peer_ip, c->peer,
                            sizeof c->peer);
}

static bool prelogin_inbound(const conn *c)
{
    return c->inbound && (c->st == ST_WAIT_HELLO || c->st == ST_WAIT_PROOF ||
                          c->st == ST_DENIED);
}

/* Makes room for the new inbound connection `fresh`: when the connections not logged in
 * exceed the global or the per-address cap, the oldest of them goes. Dropping the oldest
 * (not refusing the newest) means a flood of idle sockets cannot keep a real client out:
 * its login completes in a round trip, long before it becomes the oldest. */
static void enforce_prelogin_caps(em_net *n, conn *fresh)
{
    uint32_t all = 0, same = 0;
    conn *oldest = NULL, *oldest_same = NULL;
    /* The list is newest first and only the loop thread unlinks: walk it without the lock. */
    for (conn *c = n->conns; c; c = c->next) {
        if (c == fresh || !prelogin_inbound(c))
            continue;
        all++;
        oldest = c;
        if (strcmp(c->peer_ip, fresh->peer_ip) == 0) {
            same++;
            oldest_same = c;
        }
    }
    if (same >= n->o.max_prelogin_peer && oldest_same)
        conn_close(oldest_same, EM_EIO, "dropped: too many connections from one address are "
                                        "not logged in%s", "");
    else if (all >= n->o.max_prelogin && oldest)
        conn_close(oldest, EM_EIO, "dropped: too many connections are not logged in%s", "");
}

static void on_connection(uv_stream_t *server, int status)
{
    em_net *n = server->data;
    if (status < 0 || n->stopping)
        return;
    conn *c = conn_new(n, true);
    c->st = ST_WAIT_HELLO;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c, EM_EIO, "accept failed%s", "");
        return;
    }
    peer_name(c);
    enforce_prelogin_caps(n, c);
    uv_tcp_nodelay(&c->tcp, 1);
    start_read(c);
}

/* The host resolved (addr.c): bind and listen there. Loop thread. */
static void listen_resolved(void *ud, const struct sockaddr *sa, const em_err *why)
{
    cmd *k = ud;
    em_net *n = k->net;
    em_err err = EM_ERR_INIT;
    int rc;
    if (!sa || n->stopping || n->nservers == 16) {
        if (sa)
            em_err_set(&err, EM_EINVAL, "listen on %s:%u: %s", k->host, k->port,
                       n->stopping ? "the network is stopping" : "too many listeners");
        else
            em_err_set(&err, why->code, "listen on %s:%u: %s", k->host, k->port, why->msg);
        finish_cmd(n, k, err.code, &err);
        return;
    }
    uv_tcp_t *s = em_xcalloc(1, sizeof *s);
    uv_tcp_init(&n->loop, s);
    s->data = n;
    if ((rc = uv_tcp_bind(s, sa, 0)) == 0)
        rc = uv_listen((uv_stream_t *)s, 128, on_connection);
    if (rc < 0) {
        char a[EM_NET_ADDR_MAX];
        em_net_addr_format(a, sizeof a, k->host, k->port);
        em_err_set(&err, EM_EIO, "listen on %s: %s", a, uv_strerror(rc));
        k->in_use = rc == UV_EADDRINUSE;
        uv_close((uv_handle_t *)s, (uv_close_cb)em_free);
        finish_cmd(n, k, err.code, &err);
        return;
    }
    struct sockaddr_storage got;
    int len = sizeof got;
    uv_tcp_getsockname(s, (struct sockaddr *)&got, &len);
    k->bound = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                               : ((struct sockaddr_in *)&got)->sin_port);
    n->servers[n->nservers++] = s;
    finish_cmd(n, k, 0, NULL);
}

static void do_listen(em_net *n, cmd *k)
{
    k->net = n;
    em__net_resolve(&n->loop, k->host, k->port, listen_resolved, k);
}

static void on_connected(uv_connect_t *req, int status)
{
    conn *c = req->data;
    em_free(req);
    if (c->st == ST_CLOSING)
        return;
    if (status < 0) {
        conn_close(c, EM_EIO, "connect failed: %s", uv_strerror(status));
        return;
    }
    em_err err = EM_ERR_INIT;
    if (em_random_bytes(c->cnonce, 32, &err) < 0) {
        conn_close(c, err.code, "%s", err.msg);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->st = ST_WAIT_CHALLENGE;
    start_read(c);
    uint8_t hello[33];
    memcpy(hello, c->cnonce, 32);
    hello[32] = c->net->mode;
    conn_send_frame(c, EM_FRAME_HELLO, hello, sizeof hello);
}

/* The host resolved (addr.c): open the connection. Loop thread. */
static void connect_resolved(void *ud, const struct sockaddr *sa, const em_err *why)
{
    cmd *k = ud;
    em_net *n = k->net;
    if (!sa || n->stopping) {
        em_err err = EM_ERR_INIT;
        em_err_set(&err, sa ? EM_EIO : why->code, "%s",
                   sa ? "the network is stopping" : why->msg);
        finish_cmd(n, k, err.code, &err);
        return;
    }
    conn *c = conn_new(n, false);
    c->st = ST_CONNECTING;
    c->waiter = k;
    uv_connect_t *req = em_xcalloc(1, sizeof *req);
    req->data = c;
    int rc = uv_tcp_connect(req, &c->tcp, sa, on_connected);
    if (rc < 0) {
        em_free(req);
        conn_close(c, EM_EIO, "connect failed: %s", uv_strerror(rc));
    }
}

static void do_connect(em_net *n, cmd *k)
{
    k->net = n;
    em__net_resolve(&n->loop, k->host, k->port, connect_resolved, k);
}

/* ---------------------------------------------------------------- the loop */

/* The liveness timer's period: half a heartbeat, at least 1 ms. */
static uint64_t tick_period(const em_net *n)
{
    return n->o.heartbeat_ms / 2 ? n->o.heartbeat_ms / 2 : 1;
}

static void on_tick(uv_timer_t *t)
{
    em_net *n = t->data;
    uint64_t now = now_ms();
    /* A tick later than a heartbeat means this loop thread was kept from running (a long
     * frame handler, a process starved of CPU on a loaded machine), and libuv runs timers
     * before it polls: the peers' frames of that time still wait unread in the sockets.
     * Their silence is counted without the stall (each tick still adds its own period, so
     * a loop late at every tick still finds a dead peer), so a busy loop never drops the
     * peers it was not listening to (it used to, after any stall past peer_timeout_ms). */
    uint64_t period = tick_period(n);
    uint64_t stall = n->tick_ms && now - n->tick_ms > n->o.heartbeat_ms
                         ? now - n->tick_ms - period : 0;
    n->tick_ms = now;
    pthread_mutex_lock(&n->lock);
    conn *list = n->conns;
    pthread_mutex_unlock(&n->lock);
    /* Only the loop thread unlinks conns, so walking the list here is safe. */
    for (conn *c = list; c; c = c->next) {
        if (c->st == ST_CLOSING)
            continue;
        if (stall) {
            c->start_ms = c->start_ms + stall < now ? c->start_ms + stall : now;
            c->last_recv_ms = c->last_recv_ms + stall < now ? c->last_recv_ms + stall : now;
        }
        if (c->st != ST_OPEN) {
            if (now - c->start_ms > n->o.login_timeout_ms)
                conn_close(c, EM_ETIMEDOUT, "login timed out%s", "");
            continue;
        }
        if (now - c->last_recv_ms > n->o.peer_timeout_ms) {
            conn_close(c, EM_ETIMEDOUT, "peer silent past the heartbeat timeout%s", "");
            continue;
        }
        if (now - c->last_hb_ms >= n->o.heartbeat_ms) {
            c->last_hb_ms = now;
            conn_send_frame(c, EM_FRAME_HEARTBEAT, NULL, 0);
        }
    }
}

static void close_all(em_net *n)
{
    pthread_mutex_lock(&n->lock);
    n->stopping = true;
    pthread_mutex_unlock(&n->lock);
    for (int i = 0; i < n->nservers; i++)
        uv_close((uv_handle_t *)n->servers[i], (uv_close_cb)em_free);
    n->nservers = 0;
    pthread_mutex_lock(&n->lock);
    conn *list = n->conns;
    pthread_mutex_unlock(&n->lock);
    for (conn *c = list; c; c = c->next)
        conn_close(c, 0, "%s", "");
    uv_close((uv_handle_t *)&n->tick, NULL);
    uv_close((uv_handle_t *)&n->wake, NULL);
}

static void on_wake(uv_async_t *a)
{
    em_net *n = a->data;
    for (;;) {
        pthread_mutex_lock(&n->lock);
        cmd *k = n->cmds;
        if (k) {
            n->cmds = k->next;
            if (!n->cmds)
                n->cmds_tail = NULL;
        }
        conn *c = k && (k->kind == CMD_SEND || k->kind == CMD_CLOSE) ? find_conn(n, k->id) : NULL;
        pthread_mutex_unlock(&n->lock);
        if (!k)
            return;
        switch (k->kind) {
        case CMD_LISTEN:
            do_listen(n, k);
            break;
        case CMD_CONNECT:
            do_connect(n, k);
            break;
        case CMD_SEND:
            if (c) {
                conn_write_ext(c, k->buf, k->len - k->ext.n, k->ext, true);
                k->buf = NULL;
                k->ext.release = NULL;
            }
            em_free(k->buf);
            ext_release(&k->ext);
            em_free(k);
            break;
        case CMD_CLOSE:
            if (c)
                conn_close(c, 0, "%s", "");
            em_free(k);
            break;
        case CMD_STOP:
            close_all(n);
            finish_cmd(n, k, 0, NULL);
            return;
        }
    }
}

void em_net_block_sigpipe(void)
{
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
}

static void loop_main(void *arg)
{
    em_net *n = arg;
    em_net_block_sigpipe();
    uv_run(&n->loop, UV_RUN_DEFAULT);
}

static void push_cmd(em_net *n, cmd *k)   /* lock held */
{
    k->next = NULL;
    if (n->cmds_tail)
        n->cmds_tail->next = k;
    else
        n->cmds = k;
    n->cmds_tail = k;
}

static int run_cmd(em_net *n, cmd *k, em_err *err)
{
    k->waited = true;
    pthread_mutex_lock(&n->lock);
    push_cmd(n, k);
    pthread_mutex_unlock(&n->lock);
    uv_async_send(&n->wake);
    pthread_mutex_lock(&n->lock);
    while (!k->done)
        pthread_cond_wait(&n->cond, &n->lock);
    pthread_mutex_unlock(&n->lock);
    if (k->rc < 0)
        em_err_copy(err, &k->err);
    return k->rc;
}

/* ---------------------------------------------------------------- public API */

em_net *em_net_new(const em_net_opts *opts, em_err *err)
{
    if (!opts || !opts->ops || !opts->secret || opts->secret_len < 16) {
        em_err_set(err, EM_EINVAL, "network: a shared secret of at least 16 bytes is required");
        return NULL;
    }
    int crypto = opts->crypto;
    if (crypto == EM_NET_CRYPTO_ENV &&
        em_net_crypto_parse(getenv("EMBER_NETWORK_CRYPTO"), "EMBER_NETWORK_CRYPTO", &crypto,
                            err) < 0)
        return NULL;
    em_net *n = em_xcalloc(1, sizeof *n);
    n->o = *opts;
    n->mode = crypto == EM_NET_CRYPTO_OFF ? EM_NET_MODE_PLAIN : EM_NET_MODE_CRYPTO;
    n->o.max_prelogin = opts->max_prelogin ? opts->max_prelogin : 64;
    n->o.max_prelogin_peer = opts->max_prelogin_peer ? opts->max_prelogin_peer : 16;
    n->o.heartbeat_ms = opts->heartbeat_ms ? opts->heartbeat_ms : 1000;
    n->o.peer_timeout_ms = opts->peer_timeout_ms ? opts->peer_timeout_ms : 10000;
    n->o.login_timeout_ms = opts->login_timeout_ms ? opts->login_timeout_ms : 5000;
    n->o.max_frame = opts->max_frame ? opts->max_frame : EM_FRAME_MAX_BODY;
    n->o.send_queue_max = opts->send_queue_max ? opts->send_queue_max : (64u << 20);
    n->secret = em_xmalloc(opts->secret_len);
    memcpy(n->secret, opts->secret, opts->secret_len);
    n->o.secret = n->secret;
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->cond, NULL);
    uv_loop_init(&n->loop);
    uv_async_init(&n->loop, &n->wake, on_wake);
    n->wake.data = n;
    uv_timer_init(&n->loop, &n->tick);
    n->tick.data = n;
    uint64_t period = tick_period(n);
    uv_timer_start(&n->tick, on_tick, period, period);
    if (uv_thread_create(&n->thread, loop_main, n) != 0) {
        em_err_set(err, EM_EIO, "network: cannot start the loop thread");
        uv_close((uv_handle_t *)&n->wake, NULL);
        uv_close((uv_handle_t *)&n->tick, NULL);
        uv_run(&n->loop, UV_RUN_DEFAULT);
        uv_loop_close(&n->loop);
        em_secure_zero(n->secret, n->o.secret_len);
        em_free(n->secret);
        em_free(n);
        return NULL;
    }
    return n;
}

void em_net_free(em_net *n)
{
    if (!n)
        return;
    cmd k = {.kind = CMD_STOP};
    em_err err = EM_ERR_INIT;
    run_cmd(n, &k, &err);
    uv_thread_join(&n->thread);
    uv_loop_close(&n->loop);
    pthread_mutex_lock(&n->lock);
    cmd *rest = n->cmds;
    n->cmds = n->cmds_tail = NULL;
    pthread_mutex_unlock(&n->lock);
    while (rest) {
        cmd *next = rest->next;
        em_free(rest->buf);
        ext_release(&rest->ext);
        if (!rest->waited)
            em_free(rest);
        rest = next;
    }
    while (n->npool)
        em_free(n->pool[--n->npool]);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    em_secure_zero(n->secret, n->o.secret_len);
    em_free(n->secret);
    em_free(n);
}

int em_net_crypto_parse(const char *v, const char *what, int *out, em_err *err)
{
    if (!v || !*v || strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "on") == 0) {
        *out = EM_NET_CRYPTO_ON;
        return 0;
    }
    if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "off") == 0) {
        *out = EM_NET_CRYPTO_OFF;
        return 0;
    }
    return em_err_set(err, EM_EINVAL, "%s: expected true or false, got '%s'", what, v);
}

int em__net_listen(em_net *n, const char *host, uint16_t port, uint16_t *bound, bool *in_use,
                   em_err *err)
{
    cmd k = {.kind = CMD_LISTEN, .port = port};
    snprintf(k.host, sizeof k.host, "%s", host ? host : "127.0.0.1");
    int rc = run_cmd(n, &k, err);
    if (rc == 0 && bound)
        *bound = k.bound;
    if (in_use)
        *in_use = k.in_use;
    return rc;
}

int em_net_listen(em_net *n, const char *host, uint16_t port, uint16_t *bound, em_err *err)
{
    return em__net_listen(n, host, port, bound, NULL, err);
}

int em_net_connect(em_net *n, const char *host, uint16_t port, em_conn_id *out, em_err *err)
{
    cmd k = {.kind = CMD_CONNECT, .port = port};
    snprintf(k.host, sizeof k.host, "%s", host ? host : "127.0.0.1");
    int rc = run_cmd(n, &k, err);
    if (rc < 0) {
        char a[EM_NET_ADDR_MAX];
        em_net_addr_format(a, sizeof a, k.host, port);
        return em_err_prefix(err, "connect to %s", a);
    }
    *out = k.id;
    return 0;
}

bool em_net_is_loopback(em_net *n, em_conn_id id)
{
    pthread_mutex_lock(&n->lock);
    conn *c = find_conn(n, id);
    bool lo = c && c->loopback;
    pthread_mutex_unlock(&n->lock);
    return lo;
}

int em_net_send(em_net *n, em_conn_id id, uint8_t type, const void *p, size_t len, em_err *err)
{
    em_slice part = {p, len};
    return em_net_sendv(n, id, type, &part, 1, err);
}

int em_net_sendv(em_net *n, em_conn_id id, uint8_t type, const em_slice *parts, size_t nparts,
                 em_err *err)
{
    return em_net_send_ext(n, id, type, parts, nparts, NULL, err);
}

int em_net_send_ext(em_net *n, em_conn_id id, uint8_t type, const em_slice *parts,
                    size_t nparts, const em_net_ext *ext, em_err *err)
{
    em_net_ext e = ext ? *ext : (em_net_ext){0};
    em_vbuf v;
    em_vbuf_init(&v);
    int rc = em_frame_encode_head(&v, type, parts, nparts, e.n, err);
    cmd *k = rc == 0 ? em_calloc(1, sizeof *k) : NULL;
    if (rc == 0 && !k)
        rc = em_err_set(err, EM_ENOMEM, "send: out of memory");
    if (rc < 0) {
        em_vbuf_destroy(&v);
        ext_release(&e);
        return rc;
    }
    k->kind = CMD_SEND;
    k->id = id;
    k->buf = em_vbuf_steal(&v, &k->len);
    k->len += e.n;
    k->ext = e;
    bool loop = on_loop_thread(n);
    pthread_mutex_lock(&n->lock);
    conn *c = find_conn(n, id);
    while (!loop && c && c->st != ST_CLOSING && c->queued > n->o.send_queue_max) {
        pthread_cond_wait(&n->cond, &n->lock);
        c = find_conn(n, id);
    }
    if (!c || n->stopping) {
        pthread_mutex_unlock(&n->lock);
        em_free(k->buf);
        ext_release(&k->ext);
        em_free(k);
        return em_err_set(err, EM_ENOTFOUND, "send: connection %llu is closed",
                          (unsigned long long)id);
    }
    c->queued += k->len;
    push_cmd(n, k);
    pthread_mutex_unlock(&n->lock);
    uv_async_send(&n->wake);
    return 0;
}

int em_net_send_presealed(em_net *n, em_conn_id id, const em_slice *head, size_t nhead,
                          const em_net_ext *tail, em_err *err)
{
    em_net_ext e = tail ? *tail : (em_net_ext){0};
    size_t h = 0;
    for (size_t i = 0; i < nhead; i++)
        h += head[i].n;
    em_slice parts[8];
    if (n->mode != EM_NET_MODE_CRYPTO || !e.n || h == 0 || h > EM_PRESEALED_HEAD_MAX ||
        nhead >= sizeof parts / sizeof parts[0]) {
        ext_release(&e);
        return em_err_set(err, EM_EINVAL, "send: a presealed frame needs a sealed link, a "
                          "tail and a head of 1..%u bytes in at most %zu parts (got %zu in "
                          "%zu)", EM_PRESEALED_HEAD_MAX, sizeof parts / sizeof parts[0] - 1, h,
                          nhead);
    }
    uint8_t hl[4];
    em_store_le32(hl, (uint32_t)h);
    parts[0] = em_slice_make(hl, sizeof hl);
    memcpy(parts + 1, head, nhead * sizeof *head);
    return em_net_send_ext(n, id, EM_FRAME_PRESEALED, parts, nhead + 1, &e, err);
}

size_t em_net_queued(em_net *n, em_conn_id id)
{
    pthread_mutex_lock(&n->lock);
    conn *c = find_conn(n, id);
    size_t q = c ? c->queued : SIZE_MAX;
    pthread_mutex_unlock(&n->lock);
    return q;
}

size_t em_net_drain_mark(const em_net *n)
{
    return n->o.send_queue_max / 4;
}

bool em_net_sealed(const em_net *n)
{
    return n->mode == EM_NET_MODE_CRYPTO;   /* set once by em_net_new */
}

void em_net_close(em_net *n, em_conn_id id)
{
    cmd *k = em_xcalloc(1, sizeof *k);
    k->kind = CMD_CLOSE;
    k->id = id;
    pthread_mutex_lock(&n->lock);
    push_cmd(n, k);
    pthread_mutex_unlock(&n->lock);
    uv_async_send(&n->wake);
}
