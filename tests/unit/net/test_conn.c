/* Authenticated connections over loopback: the handshake, frames both ways, a wrong
 * secret refused, garbage and oversized pre-login frames dropped while the server keeps
 * serving, and silent peers found by the heartbeat timeout. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/net/net.h"

typedef struct box {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int opened, closed, frames;
    int last_close_code;
    em_vbuf last;
    uint8_t last_type;
} box;

static void box_init(box *b)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    em_vbuf_init(&b->last);
}

static void on_open(void *ud, em_conn_id c, bool inbound)
{
    (void)c;
    (void)inbound;
    box *b = ud;
    pthread_mutex_lock(&b->lock);
    b->opened++;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static int on_frame(void *ud, em_conn_id c, uint8_t type, em_slice p, em_err *err)
{
    (void)c;
    (void)err;
    box *b = ud;
    pthread_mutex_lock(&b->lock);
    b->frames++;
    b->last_type = type;
    em_vbuf_clear(&b->last);
    em_vbuf_append(&b->last, p.p, p.n);
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

static void on_close(void *ud, em_conn_id c, const em_err *why)
{
    (void)c;
    box *b = ud;
    pthread_mutex_lock(&b->lock);
    b->closed++;
    b->last_close_code = why->code;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static const em_net_ops ops = {on_open, on_frame, on_close, NULL};

static void wait_for(box *b, int *field, int value)
{
    pthread_mutex_lock(&b->lock);
    while (*field < value)
        pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
}

static em_net *make_net(box *b, const char *secret, uint32_t hb, uint32_t timeout)
{
    em_net_opts o = {.secret = secret, .secret_len = strlen(secret), .ops = &ops, .ud = b,
                     .heartbeat_ms = hb, .peer_timeout_ms = timeout, .login_timeout_ms = 500};
    em_err err = EM_ERR_INIT;
    em_net *n = em_net_new(&o, &err);
    cr_assert_not_null(n, "%s", err.msg);
    return n;
}

static const char *SECRET = "0123456789abcdef-shared";

Test(conn, handshake_and_frames_both_ways, .timeout = 20)
{
    box sb, cb;
    box_init(&sb);
    box_init(&cb);
    em_net *srv = make_net(&sb, SECRET, 0, 0), *cli = make_net(&cb, SECRET, 0, 0);
    em_err err = EM_ERR_INIT;
    uint16_t port = 0;
    cr_assert_eq(em_net_listen(srv, NULL, 0, &port, &err), 0, "%s", err.msg);
    cr_assert_gt(port, 0);
    em_conn_id c;
    cr_assert_eq(em_net_connect(cli, "127.0.0.1", port, &c, &err), 0, "%s", err.msg);
    wait_for(&sb, &sb.opened, 1);
    cr_assert_eq(em_net_send(cli, c, EM_FRAME_RPC, "{\"hello\":1}", 11, &err), 0);
    wait_for(&sb, &sb.frames, 1);
    cr_assert_eq(sb.last_type, EM_FRAME_RPC);
    cr_assert_eq(sb.last.len, 11);
    cr_assert_eq(memcmp(sb.last.data, "{\"hello\":1}", 11), 0);
    /* a large frame arrives whole */
    size_t big = 3u << 20;
    uint8_t *p = em_xmalloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (uint8_t)(i % 251);
    cr_assert_eq(em_net_send(cli, c, EM_FRAME_DATA, p, big, &err), 0);
    wait_for(&sb, &sb.frames, 2);
    cr_assert_eq(sb.last.len, big);
    cr_assert_eq(memcmp(sb.last.data, p, big), 0);
    em_free(p);
    em_net_close(cli, c);
    wait_for(&sb, &sb.closed, 1);
    em_net_free(cli);
    em_net_free(srv);
    em_vbuf_destroy(&sb.last);
    em_vbuf_destroy(&cb.last);
}

Test(conn, wrong_secret_is_refused, .timeout = 20)
{
    box sb, cb;
    box_init(&sb);
    box_init(&cb);
    em_net *srv = make_net(&sb, SECRET, 0, 0);
    em_net *cli = make_net(&cb, "another-secret-of-16+", 0, 0);
    em_err err = EM_ERR_INIT;
    uint16_t port = 0;
    cr_assert_eq(em_net_listen(srv, NULL, 0, &port, &err), 0);
    em_conn_id c;
    cr_assert_eq(em_net_connect(cli, "127.0.0.1", port, &c, &err), EM_EAUTH, "%s", err.msg);
    cr_assert_eq(sb.opened, 0);
    cr_assert_eq(cb.opened, 0);
    em_net_free(cli);
    em_net_free(srv);
    em_vbuf_destroy(&sb.last);
    em_vbuf_destroy(&cb.last);
}

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Reads until EOF (the server dropped us); returns bytes read. */
static size_t read_to_eof(int fd)
{
    char buf[4096];
    size_t total = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        total += (size_t)r;
    return total;
}

Test(conn, garbage_and_oversized_prelogin_frames_are_dropped, .timeout = 20)
{
    box sb, cb;
    box_init(&sb);
    box_init(&cb);
    em_net *srv = make_net(&sb, SECRET, 0, 0);
    em_err err = EM_ERR_INIT;
    uint16_t port = 0;
    cr_assert_eq(em_net_listen(srv, NULL, 0, &port, &err), 0);

    int fd = raw_connect(port);
    const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(fd, junk, sizeof junk - 1), (ssize_t)(sizeof junk - 1));
    read_to_eof(fd);
    close(fd);

    fd = raw_connect(port);
    uint8_t hdr[EM_FRAME_HEADER_SIZE] = {'E', 'M', 'F', 'R', 0, 0, 0, 0, EM_FRAME_HELLO};
    em_store_le32(hdr + 4, 1u << 30);
    cr_assert_eq(write(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);
    read_to_eof(fd);
    close(fd);

    /* one byte at a time: a valid-looking RPC frame before login is refused too */
    fd = raw_connect(port);
    em_vbuf v;
    em_vbuf_init(&v);
    em_frame_encode(&v, EM_FRAME_RPC, "{}", 2, &err);
    for (size_t i = 0; i < v.len; i++)
        if (write(fd, v.data + i, 1) != 1)
            break;
    read_to_eof(fd);
    close(fd);
    em_vbuf_destroy(&v);

    /* the server still serves a real client */
    em_net *cli = make_net(&cb, SECRET, 0, 0);
    em_conn_id c;
    cr_assert_eq(em_net_connect(cli, "127.0.0.1", port, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(sb.frames, 0);
    em_net_free(cli);
    em_net_free(srv);
    em_vbuf_destroy(&sb.last);
    em_vbuf_destroy(&cb.last);
}

Test(conn, silent_login_times_out, .timeout = 20)
{
    box sb;
    box_init(&sb);
    em_net *srv = make_net(&sb, SECRET, 0, 0);
    em_err err = EM_ERR_INIT;
    uint16_t port = 0;
    cr_assert_eq(em_net_listen(srv, NULL, 0, &port, &err), 0);
    int fd = raw_connect(port);
    read_to_eof(fd);   /* returns once the 500 ms login timeout drops us */
    close(fd);
    em_net_free(srv);
    em_vbuf_destroy(&sb.last);
}

Test(conn, send_to_closed_connection_fails, .timeout = 20)
{
    box sb;
    box_init(&sb);
    em_net *srv = make_net(&sb, SECRET, 0, 0);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_net_send(srv, 42, EM_FRAME_RPC, "x", 1, &err), EM_ENOTFOUND);
    em_net_free(srv);
    em_vbuf_destroy(&sb.last);
}

/* Reads exactly n bytes. */
static void read_exact(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        cr_assert_gt(r, 0);
        p += r;
        n -= (size_t)r;
    }
}

/* A hand-made client: logs in with `secret` over a raw socket, as the protocol says
 * (net.h); fills the session's sealing and opening directions. Returns the fd. */
static int raw_login(uint16_t port, const char *secret, em_aead **tx, em_aead **rx)
{
    em_err err = EM_ERR_INIT;
    int fd = raw_connect(port);
    uint8_t hello[33], frame[EM_FRAME_HEADER_SIZE + 33], proof[32], cn[32];
    em_random_bytes(cn, 32, &err);
    memcpy(hello, cn, 32);
    hello[32] = EM_NET_MODE_CRYPTO;
    em_vbuf v;
    em_vbuf_init(&v);
    em_frame_encode(&v, EM_FRAME_HELLO, hello, 33, &err);
    cr_assert_eq(write(fd, v.data, v.len), (ssize_t)v.len);
    read_exact(fd, frame, sizeof frame);
    cr_assert_eq(frame[8], EM_FRAME_CHALLENGE);
    const uint8_t *sn = frame + 9;
    em_auth_proof(secret, strlen(secret), false, cn, sn, EM_NET_MODE_CRYPTO, proof);
    em_vbuf_clear(&v);
    em_frame_encode(&v, EM_FRAME_PROOF, proof, 32, &err);
    cr_assert_eq(write(fd, v.data, v.len), (ssize_t)v.len);
    uint8_t welcome[EM_FRAME_HEADER_SIZE + 32];
    read_exact(fd, welcome, sizeof welcome);
    cr_assert_eq(welcome[8], EM_FRAME_WELCOME);
    em_auth_proof(secret, strlen(secret), true, cn, sn, EM_NET_MODE_CRYPTO, proof);
    cr_assert(em_ct_equal(proof, welcome + 9, 32), "server proof must verify");
    *tx = em_aead_new(secret, strlen(secret), cn, sn, true, true, &err);
    *rx = em_aead_new(secret, strlen(secret), cn, sn, false, false, &err);
    cr_assert(*tx && *rx);
    em_vbuf_destroy(&v);
    return fd;
}

/* A sealed frame as conn.c writes it. */
static void seal(em_aead *tx, uint8_t type, const void *p, size_t n, em_vbuf *out)
{
    em_err err = EM_ERR_INIT;
    em_vbuf_clear(out);
    em_frame_encode(out, type, p, n, &err);
    em_store_le32(out->data + 4, em_load_le32(out->data + 4) + EM_AEAD_TAG_LEN);
    em_aead_begin(tx, out->data, EM_FRAME_HEADER_SIZE, &err);
    em_aead_update(tx, out->data + 9, out->data + 9, n, &err);
    uint8_t tag[EM_AEAD_TAG_LEN];
    em_aead_finish(tx, tag, &err);
    em_vbuf_append(out, tag, sizeof tag);
}

Test(conn, silent_open_peer_is_closed_by_heartbeat_timeout, .timeout = 20)
{
    box sb;
    box_init(&sb);
    em_net *srv = make_net(&sb, SECRET, 100, 400);
    em_err err = EM_ERR_INIT;
    uint16_t port = 0;
    cr_assert_eq(em_net_listen(srv, NULL, 0, &port, &err), 0);
    /* Completes the handshake, then never sends again (like a stopped process whose socket
     * stays open). */
    em_aead *tx, *rx;
    int fd = raw_login(port, SECRET, &tx, &rx);
    wait_for(&sb, &sb.opened, 1);
    wait_for(&sb, &sb.closed, 1);
    cr_assert_eq(sb.last_close_code, EM_ETIMEDOUT);
    size_t got = read_to_eof(fd);
    cr_assert_geq(got, EM_FRAME_HEADER_SIZE + EM_AEAD_TAG_LEN, "heartbeats were sent");
    close(fd);
    em_aead_free(tx);
    em_aead_free(rx);
    em_net_free(srv);
    em_vbuf_destroy(&sb.last);
}

/* After login every frame is sealed: one that is sealed right arrives; a flipped bit, a
 * replay, a frame in clear or one sealed under another key closes the link. */
Test(conn, tampered_replayed_and_injected_frames_close_the_link, .timeout = 30)
{
    for (int attack = 0; attack < 4; attack++) {
        box sb;
        box_init(&sb);
        em_net *srv = make_net(&sb, SECRET, 0, 0);
        em_err err = EM_ERR_INIT;
        uint16_t port = 0;
        cr_assert_eq(em_net_listen(srv, NULL, 0, &port, &err), 0);
        em_aead *tx, *rx;
        int fd = raw_login(port, SECRET, &tx, &rx);
        wait_for(&sb, &sb.opened, 1);
        em_vbuf f, g;
        em_vbuf_init(&f);
        em_vbuf_init(&g);
        seal(tx, EM_FRAME_RPC, "{\"ok\":1}", 8, &f);
        cr_assert_eq(write(fd, f.data, f.len), (ssize_t)f.len);
        wait_for(&sb, &sb.frames, 1);
        cr_assert_eq(sb.last.len, 8);
        cr_assert_eq(memcmp(sb.last.data, "{\"ok\":1}", 8), 0);
        if (attack == 0) {   /* flip one ciphertext bit of the next frame */
            seal(tx, EM_FRAME_RPC, "{\"no\":1}", 8, &g);
            g.data[10] ^= 4;
        } else if (attack == 1) {   /* replay the first frame */
            em_vbuf_append(&g, f.data, f.len);
        } else if (attack == 2) {   /* inject a frame in clear */
            em_frame_encode(&g, EM_FRAME_RPC, "{\"launch\":1}", 12, &err);
        } else {   /* a frame sealed under a key of another session */
            em_aead *other = em_aead_new(SECRET, strlen(SECRET), (uint8_t[32]){1},
                                         (uint8_t[32]){2}, true, true, &err);
            seal(other, EM_FRAME_RPC, "{\"no\":1}", 8, &g);
            em_aead_free(other);
        }
        cr_assert_eq(write(fd, g.data, g.len), (ssize_t)g.len);
        wait_for(&sb, &sb.closed, 1);
        cr_assert_eq(sb.frames, 1, "attack %d: nothing more was delivered", attack);
        cr_assert(sb.last_close_code == EM_EAUTH || sb.last_close_code == EM_EPROTO,
                  "attack %d: closed with %d", attack, sb.last_close_code);
        close(fd);
        em_aead_free(tx);
        em_aead_free(rx);
        em_vbuf_destroy(&f);
        em_vbuf_destroy(&g);
        em_net_free(srv);
        em_vbuf_destroy(&sb.last);
    }
}

/* The server says nothing a guesser could use before the client proved the secret. */
Test(conn, hello_yields_no_server_proof, .timeout = 20)
{
    box sb;
    box_init(&sb);
    em_net *srv = make_net(&sb, SECRET, 0, 0);
    em_err err = EM_ERR_INIT;
    uint16_t port = 0;
    cr_assert_eq(em_net_listen(srv, NULL, 0, &port, &err), 0);
    int fd = raw_connect(port);
    uint8_t hello[33] = {[32] = EM_NET_MODE_CRYPTO};
    em_vbuf v;
    em_vbuf_init(&v);
    em_frame_encode(&v, EM_FRAME_HELLO, hello, 33, &err);
    cr_assert_eq(write(fd, v.data, v.len), (ssize_t)v.len);
    uint8_t frame[EM_FRAME_HEADER_SIZE + 33];
    read_exact(fd, frame, sizeof frame);
    cr_assert_eq(frame[8], EM_FRAME_CHALLENGE);
    cr_assert_eq(em_load_le32(frame + 4), 34u, "nonce and mode only");
    uint8_t bad[32] = {0};
    em_vbuf_clear(&v);
    em_frame_encode(&v, EM_FRAME_PROOF, bad, 32, &err);
    cr_assert_eq(write(fd, v.data, v.len), (ssize_t)v.len);
    uint8_t denied[EM_FRAME_HEADER_SIZE + 1];
    read_exact(fd, denied, sizeof denied);
    cr_assert_eq(denied[8], EM_FRAME_DENIED);
    cr_assert_eq(read_to_eof(fd), 0u, "then the server closes");
    close(fd);
    em_vbuf_destroy(&v);
    em_net_free(srv);
    em_vbuf_destroy(&sb.last);
}

Test(conn, crypto_mode_mismatch_is_refused_and_plain_links_work, .timeout = 20)
{
    box sb, cb;
    box_init(&sb);
    box_init(&cb);
    em_net_opts o = {.secret = SECRET, .secret_len = strlen(SECRET), .ops = &ops, .ud = &sb,
                     .crypto = EM_NET_CRYPTO_OFF};
    em_err err = EM_ERR_INIT;
    em_net *srv = em_net_new(&o, &err);
    o.ud = &cb;
    o.crypto = EM_NET_CRYPTO_ON;
    em_net *cli = em_net_new(&o, &err);
    uint16_t port = 0;
    cr_assert_eq(em_net_listen(srv, NULL, 0, &port, &err), 0);
    em_conn_id c;
    cr_assert_eq(em_net_connect(cli, "127.0.0.1", port, &c, &err), EM_EAUTH);
    cr_assert(strstr(err.msg, "ember.network.crypto"), "%s", err.msg);
    em_net_free(cli);
    o.crypto = EM_NET_CRYPTO_OFF;
    cli = em_net_new(&o, &err);
    cr_assert_eq(em_net_connect(cli, "127.0.0.1", port, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(em_net_send(cli, c, EM_FRAME_RPC, "{}", 2, &err), 0);
    wait_for(&sb, &sb.frames, 1);
    cr_assert_eq(sb.last.len, 2);
    em_net_free(cli);
    em_net_free(srv);
    em_vbuf_destroy(&sb.last);
    em_vbuf_destroy(&cb.last);
}

/* Idle sockets that never log in cannot lock a correct client out (the oldest are dropped
 * past the pre-login caps). */
Test(conn, idle_connections_do_not_block_a_login, .timeout = 30)
{
    box sb, cb;
    box_init(&sb);
    box_init(&cb);
    em_net *srv = make_net(&sb, SECRET, 0, 0);
    em_net *cli = make_net(&cb, SECRET, 0, 0);
    em_err err = EM_ERR_INIT;
    uint16_t port = 0;
    cr_assert_eq(em_net_listen(srv, NULL, 0, &port, &err), 0);
    enum { IDLE = 300 };
    int fds[IDLE];
    for (int i = 0; i < IDLE; i++)
        fds[i] = raw_connect(port);
    em_conn_id c;
    cr_assert_eq(em_net_connect(cli, "127.0.0.1", port, &c, &err), 0, "%s", err.msg);
    for (int i = 0; i < IDLE; i++)
        close(fds[i]);
    em_net_free(cli);
    em_net_free(srv);
    em_vbuf_destroy(&sb.last);
    em_vbuf_destroy(&cb.last);
}

/* Frames in order across the sealing paths: small frames sealed on the loop thread, big
 * ones and frames with external bytes (chunked, an exact multiple of the chunk size or
 * not) on the thread pool, interleaved; byte-identical and in order on the other side,
 * every external buffer released, with crypto on and off. */
typedef struct seq_box {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;
    uint32_t crc[16];
    size_t len[16];
} seq_box;

static int seq_frame(void *ud, em_conn_id c, uint8_t type, em_slice p, em_err *err)
{
    (void)c, (void)type, (void)err;
    seq_box *s = ud;
    pthread_mutex_lock(&s->lock);
    if (s->n < 16) {
        s->crc[s->n] = em_crc32c(0, p.p, p.n);
        s->len[s->n] = p.n;
        s->n++;
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void count_release(void *ud)
{
    __atomic_add_fetch((int *)ud, 1, __ATOMIC_SEQ_CST);
}

static void frames_in_order(int crypto)
{
    seq_box s = {.n = 0};
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    static const em_net_ops sops = {.on_frame = seq_frame};
    box cb;
    box_init(&cb);
    em_net_opts so = {.secret = SECRET, .secret_len = strlen(SECRET), .ops = &sops, .ud = &s,
                      .crypto = crypto};
    em_net_opts co = {.secret = SECRET, .secret_len = strlen(SECRET), .ops = &ops, .ud = &cb,
                      .crypto = crypto};
    em_err err = EM_ERR_INIT;
    em_net *srv = em_net_new(&so, &err), *cli = em_net_new(&co, &err);
    cr_assert(srv && cli, "%s", err.msg);
    uint16_t port = 0;
    cr_assert_eq(em_net_listen(srv, NULL, 0, &port, &err), 0, "%s", err.msg);
    em_conn_id c;
    cr_assert_eq(em_net_connect(cli, "127.0.0.1", port, &c, &err), 0, "%s", err.msg);
    size_t sizes[] = {5, (1u << 20) + 3, 7, 512u << 10, 0, (2u << 20) + 1, 9, 300u << 10};
    int nf = (int)(sizeof sizes / sizeof *sizes), released = 0;
    uint8_t *p = em_xmalloc(3u << 20);
    for (size_t i = 0; i < (3u << 20); i++)
        p[i] = (uint8_t)(i * 131 + (i >> 9));
    uint32_t want[8];
    for (int i = 0; i < nf; i++) {
        uint8_t head[4] = {(uint8_t)i, 1, 2, 3};
        em_slice part = {head, sizeof head};
        const uint8_t *body = p + (size_t)i * 4099;
        want[i] = em_crc32c(em_crc32c(0, head, 4), body, sizes[i]);
        if (i % 4 == 3 && crypto == EM_NET_CRYPTO_ON) {
            /* a presealed tail: the link seals the head only, the peer sees DATA */
            em_net_ext ext = {body, sizes[i], count_release, &released};
            cr_assert_eq(em_net_send_presealed(cli, c, &part, 1, &ext, &err), 0, "%s",
                         err.msg);
        } else if (i % 2) {   /* external bytes, written from where they are */
            em_net_ext ext = {body, sizes[i], count_release, &released};
            cr_assert_eq(em_net_send_ext(cli, c, EM_FRAME_DATA, &part, 1, &ext, &err), 0,
                         "%s", err.msg);
        } else {
            em_slice parts[2] = {part, {body, sizes[i]}};
            cr_assert_eq(em_net_sendv(cli, c, EM_FRAME_DATA, parts, 2, &err), 0, "%s",
                         err.msg);
        }
    }
    pthread_mutex_lock(&s.lock);
    while (s.n < nf)
        pthread_cond_wait(&s.cond, &s.lock);
    pthread_mutex_unlock(&s.lock);
    for (int i = 0; i < nf; i++) {
        cr_assert_eq(s.len[i], sizes[i] + 4, "frame %d", i);
        cr_assert_eq(s.crc[i], want[i], "frame %d", i);
    }
    if (crypto == EM_NET_CRYPTO_OFF) {   /* presealed frames need a sealed link */
        uint8_t head[1] = {1};
        em_slice part = {head, 1};
        em_net_ext ext = {p, 10, count_release, &released};
        cr_assert_eq(em_net_send_presealed(cli, c, &part, 1, &ext, &err), EM_EINVAL);
        released--;   /* released on failure too */
    }
    em_net_free(cli);
    em_net_free(srv);
    cr_assert_eq(released, nf / 2);
    em_free(p);
    em_vbuf_destroy(&cb.last);
}

Test(conn, sealed_frames_keep_their_order, .timeout = 30)
{
    frames_in_order(EM_NET_CRYPTO_ON);
}

Test(conn, plain_frames_keep_their_order, .timeout = 30)
{
    frames_in_order(EM_NET_CRYPTO_OFF);
}
