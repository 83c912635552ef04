/* tests/unit/ui/test_http.c - the status pages' HTTP request parser (untrusted
 * bytes) and server: every malformed request is a 400 and a closed connection. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/ui/ui_int.h"

static int parse(const char *s, em_http_req *r)
{
    return em__http_parse((const uint8_t *)s, strlen(s), r);
}

Test(http, parses_get_with_query_and_headers)
{
    em_http_req r;
    cr_assert_eq(parse("GET /api/jobs?x=1&y HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n", &r), 1);
    cr_assert_str_eq(r.path, "/api/jobs");
    cr_assert_str_eq(r.query, "x=1&y");
    cr_assert(!r.head);
    cr_assert_eq(parse("HEAD / HTTP/1.0\r\n\r\n", &r), 1);
    cr_assert_str_eq(r.path, "/");
    cr_assert(r.head);
    cr_assert_eq(parse("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r), 1);
}

Test(http, incomplete_requests_wait_for_more)
{
    em_http_req r;
    const char *full = "GET /api/stages HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t n = 0; n < strlen(full); n++)
        cr_assert_eq(em__http_parse((const uint8_t *)full, n, &r), 0, "prefix %zu", n);
    cr_assert_eq(em__http_parse((const uint8_t *)full, strlen(full), &r), 1);
}

Test(http, malformed_requests_are_400)
{
    static const char *const bad[] = {
        "get / HTTP/1.1\r\n\r\n",            /* lower-case is a valid token: 405 below */
        "GET  / HTTP/1.1\r\n\r\n",           /* two spaces */
        "GET / HTTP/1.1\n\r\n",              /* bare LF */
        "GET / HTTP/1.1\r\r\n\r\n",          /* bare CR */
        "GET x HTTP/1.1\r\n\r\n",            /* target not starting with / */
        "GET / HTTP/1.1 \r\n\r\n",           /* trailing space */
        "GET / HTTX/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nNo-Colon\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n",
        "\r\n\r\n",
        "GET",                               /* not malformed yet: checked separately */
    };
    em_http_req r;
    for (size_t i = 1; i + 1 < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(parse(bad[i], &r), 400, "case %zu: %s", i, bad[i]);
    cr_assert_eq(parse(bad[0], &r), 405);
    cr_assert_eq(parse("POST / HTTP/1.1\r\n\r\n", &r), 405);
    cr_assert_eq(parse("GET / HTTP/2.0\r\n\r\n", &r), 505);
    cr_assert_eq(parse("GET", &r), 0);
    uint8_t nul[] = "GET /\0 HTTP/1.1\r\n\r\n";
    cr_assert_eq(em__http_parse(nul, sizeof nul - 1, &r), 400);
}

Test(http, oversized_requests_are_400)
{
    em_http_req r;
    size_t n = EM__HTTP_MAX_REQUEST + 10;
    char *big = malloc(n + 1);
    /* A long but valid-looking header block that never ends. */
    strcpy(big, "GET / HTTP/1.1\r\n");
    for (size_t i = strlen(big); i < n; i++)
        big[i] = (i % 40 == 39) ? '\n' : (i % 40 == 38) ? '\r' : (i % 40 == 0) ? 'X' : 'a';
    big[n] = '\0';
    cr_assert_eq(em__http_parse((uint8_t *)big, n, &r), 400);
    /* A request target over the cap, even before the line ends. */
    memset(big, 'a', n);
    memcpy(big, "GET /", 5);
    cr_assert_eq(em__http_parse((uint8_t *)big, EM_HTTP_MAX_TARGET + 64, &r), 400);
    free(big);
}

/* ---------------------------------------------------------------- the server */

static void handler(void *ud, const em_http_req *req, em_http_resp *out)
{
    (void)ud;
    if (strcmp(req->path, "/hello") == 0) {
        out->status = 200;
        out->ctype = "text/plain";
        out->body = em_xstrdup("hi <there>\n");
        out->len = strlen(out->body);
    }
}

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Sends req (byte by byte when slow), reads until the server closes. */
static char *exchange(uint16_t port, const char *req, size_t n, bool slow)
{
    int fd = dial(port);
    for (size_t i = 0; i < n; i += slow ? 1 : n)
        cr_assert_eq(write(fd, req + i, slow ? 1 : n), (ssize_t)(slow ? 1 : n));
    static char buf[65536];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fd);
    return buf;
}

Test(http, server_answers_and_survives_garbage, .timeout = 20)
{
    em_err err = EM_ERR_INIT;
    uint16_t port;
    em_http_server *s = em_http_server_start(NULL, 0, &port, handler, NULL, &err);
    cr_assert_not_null(s, "%s", err.msg);
    const char *ok = "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n";
    char *resp = exchange(port, ok, strlen(ok), false);
    cr_assert(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", resp);
    cr_assert(strstr(resp, "Connection: close\r\n"));
    cr_assert(strstr(resp, "\r\n\r\nhi <there>\n"));
    resp = exchange(port, ok, strlen(ok), true);
    cr_assert(strncmp(resp, "HTTP/1.1 200 OK", 15) == 0, "%s", resp);
    resp = exchange(port, "GET /nope HTTP/1.1\r\n\r\n", 22, false);
    cr_assert(strncmp(resp, "HTTP/1.1 404", 12) == 0, "%s", resp);
    resp = exchange(port, "\x16\x03\x01garbage\r\n\r\n", 14, false);
    cr_assert(strncmp(resp, "HTTP/1.1 400", 12) == 0, "%s", resp);
    resp = exchange(port, "DELETE / HTTP/1.1\r\n\r\n", 21, false);
    cr_assert(strncmp(resp, "HTTP/1.1 405", 12) == 0, "%s", resp);
    char *big = malloc(20000);
    memset(big, 'A', 20000);
    resp = exchange(port, big, 20000, false);
    cr_assert(strncmp(resp, "HTTP/1.1 400", 12) == 0, "%s", resp);
    free(big);
    /* Still serving. */
    resp = exchange(port, ok, strlen(ok), false);
    cr_assert(strncmp(resp, "HTTP/1.1 200 OK", 15) == 0, "%s", resp);
    em_http_server_stop(s);
}

Test(http, html_escape)
{
    em_vbuf b;
    em_vbuf_init(&b);
    cr_assert_eq(em_html_escape(&b, "<a href=\"x\">&'"), 0);
    cr_assert_eq(b.len, strlen("&lt;a href=&quot;x&quot;&gt;&amp;&#39;"));
    cr_assert(memcmp(b.data, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;", b.len) == 0);
    em_vbuf_destroy(&b);
}

/* The Host header: kept without its port; one naming a stranger's domain is not served
 * (DNS rebinding), IP literals, localhost and the bound host are. */
Test(http, host_header_and_allow_list)
{
    em_http_req r;
    cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n", &r), 1);
    cr_assert_str_eq(r.host, "localhost");
    cr_assert(em__http_host_allowed(r.host, "127.0.0.1"));
    cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", &r), 1);
    cr_assert_str_eq(r.host, "[::1]");
    cr_assert(em__http_host_allowed(r.host, "127.0.0.1"));
    cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n", &r), 1);
    cr_assert(em__http_host_allowed(r.host, "127.0.0.1"));
    cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: evil.example.com\r\n\r\n", &r), 1);
    cr_assert(!em__http_host_allowed(r.host, "127.0.0.1"));
    cr_assert(em__http_host_allowed("master.lan", "master.lan"));
    cr_assert_eq(parse("GET / HTTP/1.0\r\n\r\n", &r), 1);
    cr_assert(em__http_host_allowed(r.host, NULL), "no Host: an HTTP/1.0 client");
    cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &r), 400);
    cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: :80\r\n\r\n", &r), 400);
}
