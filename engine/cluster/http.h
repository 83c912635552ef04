/* engine/cluster/http.h - the tiny HTTP/1.x server behind the status pages (driver UI,
 * master UI): a request parser for untrusted bytes, a libuv server on its own thread, and
 * HTML helpers. Internal to engine/cluster (em__ names).
 *
 * SCOPE: GET (and HEAD) only, one request per connection (every response closes it), no
 * request bodies, requests of at most EM__HTTP_MAX_REQUEST bytes. Anything else that is
 * malformed is answered 400 and the connection closed. The server binds 127.0.0.1 unless
 * told otherwise: the pages show paths and job names, nothing that needs a secret, but
 * nothing a stranger should browse either.
 *
 * THREADS: em__http_parse is pure. The server runs one libuv loop on its own thread; the
 * handler is called on that thread and must lock whatever state it reads. */
#ifndef EMBER_CLUSTER_HTTP_H
#define EMBER_CLUSTER_HTTP_H

#include "engine/base/base.h"

#define EM__HTTP_MAX_REQUEST 8192u   /* request line + headers, bytes */
#define EM__HTTP_MAX_TARGET 512u     /* request target, bytes */
#define EM__HTTP_MAX_HEADERS 64u
#define EM__HTTP_MAX_CONNS 64u       /* connections served at once; more are closed */
#define EM__HTTP_TIMEOUT_MS 5000u    /* a request must arrive whole within this */

typedef struct em__http_req {
    bool head;                       /* HEAD: same headers, no body */
    char path[EM__HTTP_MAX_TARGET];  /* target without the query string, NUL-terminated */
    char query[EM__HTTP_MAX_TARGET]; /* after '?', "" when none */
} em__http_req;

/* Parses the bytes received so far on one connection (p[0..n)). Returns 0 when the request
 * is incomplete (read more), 1 when it is complete (*req filled), or an HTTP status >= 400
 * for a request to refuse: 400 malformed or too large (n > EM__HTTP_MAX_REQUEST without the
 * end of the headers, a target over EM__HTTP_MAX_TARGET, a request body), 405 a well-formed
 * method other than GET/HEAD, 505 an HTTP version other than 1.0/1.1. Never reads past n. */
int em__http_parse(const uint8_t *p, size_t n, em__http_req *req);

/* What a handler answers: status 200/404/..., a static content type and a body (owned:
 * em_free; NULL = empty). */
typedef struct em__http_resp {
    int status;
    const char *ctype;
    char *body;
    size_t len;
} em__http_resp;

typedef void (*em__http_handler)(void *ud, const em__http_req *req, em__http_resp *out);

/* Formats the response head + body into out (headers Content-Type, Content-Length,
 * Connection: close, Cache-Control: no-store). */
int em__http_format(em_vbuf *out, const em__http_resp *r, bool head);
const char *em__http_reason(int status);

typedef struct em__http_server em__http_server;

/* Starts a server on host (NULL = 127.0.0.1) and port (0 = any free one; *bound gets the
 * port). Handler and ud are borrowed until em__http_server_stop. Any thread. */
em__http_server *em__http_server_start(const char *host, uint16_t port, uint16_t *bound,
                                       em__http_handler fn, void *ud, em_err *err);
/* Closes every connection and joins the loop thread. NULL ok. Not from a handler. */
void em__http_server_stop(em__http_server *s);

/* ---------------------------------------------------------------- HTML helpers (ui.c) */

/* Appends s with & < > " ' escaped. */
int em__html_escape(em_vbuf *b, const char *s);
/* Page head (title escaped, a small style sheet, a 2 s refresh) and tail. */
int em__html_begin(em_vbuf *b, const char *title);
int em__html_end(em_vbuf *b);
/* Formats a duration in seconds as "850 ms", "12.3 s" or "4.2 min". */
void em__fmt_duration(char *out, size_t cap, double s);

#endif /* EMBER_CLUSTER_HTTP_H */
