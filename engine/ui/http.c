/* engine/ui/http.c - HTTP/1.x request parser (untrusted bytes) and the status pages'
 * server: one libuv loop on its own thread, one request per connection.
 *
 * GRAMMAR ACCEPTED (RFC 9112, the subset a browser or curl sends for a GET):
 *   request-line = method SP request-target SP "HTTP/1." ("0" / "1") CRLF
 *   header-line  = token ":" *(VCHAR / SP / HTAB) CRLF        (no obs-fold)
 *   end          = CRLF
 * Bytes < 0x20 other than CR, LF and HTAB, and 0x7f, are refused wherever they appear, and
 * so is a bare CR or LF: the parser rejects as soon as it can rather than waiting for the
 * 8 KiB cap or the timeout. A Content-Length other than 0 or any Transfer-Encoding is
 * refused: GET has no body, and not reading one means no request smuggling questions.
 *
 * SERVER DESIGN: the loop thread owns the listener, every connection and its timer. A
 * connection has a fixed buffer of EM__HTTP_MAX_REQUEST + 1 bytes; each read re-parses the
 * bytes so far (cheap at this size) and the first verdict wins: a response is written and
 * the connection closed once the write completes. At most EM__HTTP_MAX_CONNS connections
 * (EM__HTTP_MAX_CONNS_PEER from one address) are held: the oldest unanswered one goes for
 * a new one; a request must be complete within EM__HTTP_TIMEOUT_MS; a Host header naming
 * neither an IP literal, localhost, the bound host nor this machine is answered 403. Stopping goes
 * through a uv_async: the loop closes every handle and returns; the caller joins it. */
#include "engine/net/net.h"
#include "engine/ui/ui_int.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>
#include <uv.h>

/* ---------------------------------------------------------------- parser */

static bool is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ctl(uint8_t c)
{
    return (c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f;
}

/* Case-insensitive compare of a header name p[0..n) with lower-case name. */
static bool name_is(const uint8_t *p, size_t n, const char *name)
{
    if (strlen(name) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != (uint8_t)name[i])
            return false;
    }
    return true;
}

/* Checks the request line p[0..n) (CRLF excluded). Returns 1 (GET/HEAD), or 400/405/505. */
static int parse_request_line(const uint8_t *p, size_t n, em_http_req *req)
{
    size_t i = 0, m, t0, tn;

    while (i < n && is_tchar(p[i]))
        i++;
    m = i;
    if (m == 0 || m > 16 || i >= n || p[i] != ' ')
        return 400;
    t0 = ++i;
    while (i < n && p[i] > 0x20 && p[i] < 0x7f)
        i++;
    tn = i - t0;
    if (tn == 0 || tn >= EM_HTTP_MAX_TARGET || i >= n || p[i] != ' ' || p[t0] != '/')
        return 400;
    i++;
    if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 6] != '.' || p[i + 5] < '0' ||
        p[i + 5] > '9' || p[i + 7] < '0' || p[i + 7] > '9')
        return 400;
    if (p[i + 5] != '1' || (p[i + 7] != '0' && p[i + 7] != '1'))
        return 505;
    bool get = m == 3 && memcmp(p, "GET", 3) == 0;
    bool head = m == 4 && memcmp(p, "HEAD", 4) == 0;
    if (!get && !head)
        return 405;
    memset(req, 0, sizeof *req);
    req->head = head;
    size_t q = 0;
    while (q < tn && p[t0 + q] != '?')
        q++;
    memcpy(req->path, p + t0, q);
    if (q < tn)
        memcpy(req->query, p + t0 + q + 1, tn - q - 1);
    return 1;
}

/* Checks one header line p[0..n) (CRLF excluded): 1 ok, 400 bad. */
/* Copies a Host value v[0..vn) without its port into out; false when it cannot be one. */
static bool copy_host(const uint8_t *v, size_t vn, char *out, size_t cap)
{
    size_t end = vn;
    if (vn > 0 && v[0] == '[') {   /* [v6]:port */
        const uint8_t *rb = memchr(v, ']', vn);
        if (!rb)
            return false;
        end = (size_t)(rb - v) + 1;
    } else {
        for (size_t i = 0; i < vn; i++)
            if (v[i] == ':') {
                end = i;
                break;
            }
    }
    if (end == 0 || end >= cap)
        return false;
    memcpy(out, v, end);
    out[end] = '\0';
    return true;
}

static int parse_header(const uint8_t *p, size_t n, em_http_req *req)
{
    size_t i = 0;
    while (i < n && is_tchar(p[i]))
        i++;
    if (i == 0 || i >= n || p[i] != ':')
        return 400;
    size_t name_len = i++;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    const uint8_t *v = p + i;
    size_t vn = n - i;
    while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
        vn--;
    if (name_is(p, name_len, "transfer-encoding"))
        return 400;
    if (name_is(p, name_len, "host") &&
        (req->host[0] || !copy_host(v, vn, req->host, sizeof req->host)))
        return 400;   /* two Host headers, or one that names no host */
    if (name_is(p, name_len, "content-length")) {
        /* Only an explicit empty body is tolerated. */
        size_t z = 0;
        while (z < vn && v[z] == '0')
            z++;
        if (vn == 0 || z != vn)
            return 400;
    }
    return 1;
}

int em__http_parse(const uint8_t *p, size_t n, em_http_req *req)
{
    size_t lim = n < EM__HTTP_MAX_REQUEST ? n : EM__HTTP_MAX_REQUEST;
    size_t line = 0, nlines = 0;
    em_http_req tmp;
    tmp.host[0] = '\0';
    int verdict = 0;

    for (size_t i = 0; i < lim; i++) {
        uint8_t c = p[i];
        if (is_ctl(c) || (c == '\n' && (i == 0 || p[i - 1] != '\r')))
            return 400;
        if (c == '\r' && i + 1 < lim && p[i + 1] != '\n')
            return 400;
        if (c != '\n')
            continue;
        size_t len = i - 1 - line;   /* without CRLF */
        if (nlines == 0) {
            if ((verdict = parse_request_line(p + line, len, &tmp)) != 1)
                return verdict;
        } else if (len == 0) {
            *req = tmp;
            return 1;
        } else if (p[line] == ' ' || p[line] == '\t' || nlines > EM__HTTP_MAX_HEADERS ||
                   parse_header(p + line, len, &tmp) != 1) {
            return 400;
        }
        nlines++;
        line = i + 1;
    }
    if (n >= EM__HTTP_MAX_REQUEST)
        return 400;
    /* An incomplete request line longer than any valid one is refused now. */
    if (nlines == 0 && lim > 16 + 1 + EM_HTTP_MAX_TARGET + 1 + 8 + 2)
        return 400;
    return 0;
}

bool em__http_host_allowed(const char *host, const char *bind_host)
{
    if (!host[0] || host[0] == '[' || strcasecmp(host, "localhost") == 0)
        return true;
    if (strspn(host, "0123456789.") == strlen(host))
        return true;
    if (bind_host && strcasecmp(host, bind_host) == 0)
        return true;
    char me[256];
    if (gethostname(me, sizeof me) == 0) {
        me[sizeof me - 1] = '\0';
        size_t n = strcspn(me, ".");
        if (strcasecmp(host, me) == 0 || (strlen(host) == n && strncasecmp(host, me, n) == 0))
            return true;
    }
    return false;
}

const char *em__http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

int em__http_format(em_vbuf *out, const em_http_resp *r, bool head)
{
    int rc = em_vbuf_printf(out,
                            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                            "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                            r->status, em__http_reason(r->status),
                            r->ctype ? r->ctype : "text/plain; charset=utf-8", r->len,
                            r->status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (rc == 0 && !head && r->len)
        rc = em_vbuf_append(out, r->body, r->len);
    return rc;
}

/* ---------------------------------------------------------------- server */

typedef struct hconn hconn;
struct hconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    em_http_server *srv;
    char ip[48];             /* the peer's address (per-address cap) */
    uint8_t buf[EM__HTTP_MAX_REQUEST + 1];
    size_t len;
    em_vbuf out;
    bool answered;
    int nclosing;            /* handles whose close callback is pending */
    hconn *prev, *next;
};

struct em_http_server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    uv_thread_t thread;
    em_http_handler fn;
    void *ud;
    hconn *conns;
    uint32_t nconns;
    char bind_host[256];     /* the host given to em_http_server_start (Host allow-list) */
};

static void conn_free_cb(uv_handle_t *h)
{
    hconn *c = h->data;
    if (--c->nclosing > 0)
        return;
    em_vbuf_destroy(&c->out);
    em_free(c);
}

static void conn_close(hconn *c)
{
    if (c->nclosing)
        return;
    em_http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    c->nclosing = 2;
    uv_close((uv_handle_t *)&c->tcp, conn_free_cb);
    uv_close((uv_handle_t *)&c->timer, conn_free_cb);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    conn_close(w->data);
}

static void respond(hconn *c, em_http_resp *r, bool head)
{
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    if (em__http_format(&c->out, r, head) < 0) {
        conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        conn_close(c);
}

static void respond_error(hconn *c, int status)
{
    em_http_resp r = {.status = status, .ctype = "text/plain; charset=utf-8"};
    char msg[64];
    r.len = (size_t)snprintf(msg, sizeof msg, "%d %s\n", status, em__http_reason(status));
    r.body = msg;
    respond(c, &r, false);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    hconn *c = h->data;
    (void)hint;
    *b = uv_buf_init((char *)c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    hconn *c = st->data;
    em_http_req req;
    (void)b;
    if (c->answered || c->nclosing)
        return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    int v = em__http_parse(c->buf, c->len, &req);
    if (v == 0 && c->len < sizeof c->buf)
        return;
    if (v != 1) {
        respond_error(c, v == 0 ? 400 : v);
        return;
    }
    if (!em__http_host_allowed(req.host, c->srv->bind_host)) {
        respond_error(c, 403);
        return;
    }
    em_http_resp r = {.status = 404};
    c->srv->fn(c->srv->ud, &req, &r);
    respond(c, &r, req.head);
    em_free(r.body);
}

static void on_timeout(uv_timer_t *t)
{
    hconn *c = t->data;
    if (!c->answered)
        respond_error(c, 408);
}

/* The peer's address of a connection, for the per-address cap ("" when unknown). */
static void peer_ip(hconn *c)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    c->ip[0] = '\0';
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, c->ip, sizeof c->ip);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, c->ip, sizeof c->ip);
}

/* Over EM__HTTP_MAX_CONNS connections, or EM__HTTP_MAX_CONNS_PEER from fresh's address, the
 * oldest unanswered one goes (not the new one): idle sockets cannot lock the page out, as
 * a real request is answered long before it becomes the oldest. */
static void make_room(em_http_server *s, hconn *fresh)
{
    peer_ip(fresh);
    uint32_t same = 0;
    hconn *oldest = NULL, *oldest_same = NULL;
    for (hconn *c = s->conns; c; c = c->next) {   /* newest first */
        if (c == fresh || c->answered)
            continue;
        oldest = c;
        if (strcmp(c->ip, fresh->ip) == 0) {
            same++;
            oldest_same = c;
        }
    }
    if (same >= EM__HTTP_MAX_CONNS_PEER && oldest_same)
        conn_close(oldest_same);
    else if (s->nconns > EM__HTTP_MAX_CONNS && oldest)
        conn_close(oldest);
}

static void on_connection(uv_stream_t *ls, int status)
{
    em_http_server *s = ls->data;
    if (status < 0)
        return;
    hconn *c = em_calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = s;
    em_vbuf_init(&c->out);
    uv_tcp_init(&s->loop, &c->tcp);
    uv_timer_init(&s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    make_room(s, c);
    uv_timer_start(&c->timer, on_timeout, EM__HTTP_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void on_stop(uv_async_t *a)
{
    em_http_server *s = a->data;
    while (s->conns)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->stop, NULL);
}

static void loop_main(void *arg)
{
    em_http_server *s = arg;
    em_net_block_sigpipe();
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

/* Resolves host (IPv4 literal or name) into *addr with port. */
static int resolve(const char *host, uint16_t port, struct sockaddr_storage *addr, em_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0 || !ai)
        return em_err_set(err, EM_EINVAL, "http: cannot resolve '%s': %s", host,
                          gai_strerror(rc));
    memcpy(addr, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

em_http_server *em_http_server_start(const char *host, uint16_t port, uint16_t *bound,
                                       em_http_handler fn, void *ud, em_err *err)
{
    struct sockaddr_storage addr;
    em_http_server *s;
    int rc, len = sizeof addr;

    if (resolve(host ? host : "127.0.0.1", port, &addr, err) < 0)
        return NULL;
    s = em_xcalloc(1, sizeof *s);
    s->fn = fn;
    s->ud = ud;
    snprintf(s->bind_host, sizeof s->bind_host, "%s", host ? host : "127.0.0.1");
    if ((rc = uv_loop_init(&s->loop)) != 0) {
        em_free(s);
        em_err_set(err, EM_EIO, "http: loop: %s", uv_strerror(rc));
        return NULL;
    }
    uv_tcp_init(&s->loop, &s->listener);
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->listener.data = s->stop.data = s;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 64, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &len);
    if (rc == 0)
        rc = uv_thread_create(&s->thread, loop_main, s);
    if (rc != 0) {
        em_err_set(err, EM_EIO, "http: listen on %s:%u: %s", host ? host : "127.0.0.1", port,
                   uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_close((uv_handle_t *)&s->stop, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        em_free(s);
        return NULL;
    }
    if (bound)
        *bound = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                  : ((struct sockaddr_in *)&addr)->sin_port);
    return s;
}

void em_http_server_stop(em_http_server *s)
{
    if (!s)
        return;
    uv_async_send(&s->stop);
    uv_thread_join(&s->thread);
    uv_loop_close(&s->loop);
    em_free(s);
}
