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

static const em_net_ops ops = {on_open, on_frame, on_close};

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

Test(conn, silent_open_peer_is_closed_by_heartbeat_timeout, .timeout = 20)
{
    box sb;
    box_init(&sb);
    em_net *srv = make_net(&sb, SECRET, 100, 400);
    em_err err = EM_ERR_INIT;
    uint16_t port = 0;
    cr_assert_eq(em_net_listen(srv, NULL, 0, &port, &err), 0);
    /* A hand-made client: completes the handshake, then never sends again (like a stopped
     * process whose socket stays open). */
    int fd = raw_connect(port);
    uint8_t cn[32], frame[EM_FRAME_HEADER_SIZE + 64], proof[32];
    em_random_bytes(cn, 32, &err);
    em_vbuf v;
    em_vbuf_init(&v);
    em_frame_encode(&v, EM_FRAME_HELLO, cn, 32, &err);
    cr_assert_eq(write(fd, v.data, v.len), (ssize_t)v.len);
    read_exact(fd, frame, sizeof frame);
    cr_assert_eq(frame[8], EM_FRAME_CHALLENGE);
    em_auth_proof(SECRET, strlen(SECRET), true, cn, frame + 9, proof);
    cr_assert(em_ct_equal(proof, frame + 9 + 32, 32), "server proof must verify");
    em_auth_proof(SECRET, strlen(SECRET), false, cn, frame + 9, proof);
    em_vbuf_clear(&v);
    em_frame_encode(&v, EM_FRAME_PROOF, proof, 32, &err);
    cr_assert_eq(write(fd, v.data, v.len), (ssize_t)v.len);
    wait_for(&sb, &sb.opened, 1);
    wait_for(&sb, &sb.closed, 1);
    cr_assert_eq(sb.last_close_code, EM_ETIMEDOUT);
    size_t got = read_to_eof(fd);
    cr_assert_geq(got, EM_FRAME_HEADER_SIZE, "WELCOME and heartbeats were sent");
    close(fd);
    em_vbuf_destroy(&v);
    em_net_free(srv);
    em_vbuf_destroy(&sb.last);
}
