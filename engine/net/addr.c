/* engine/net/addr.c - peer addresses: parsing and printing "HOST:PORT" (IPv6 literals in
 * brackets), port ranges, and resolving a host for the loop thread.
 *
 * DESIGN
 *   Parsing and printing are pure (net.h). Resolution (em__net_resolve, net_int.h) runs on
 *   the loop thread's behalf: a literal is converted at once, a name goes to
 *   uv_getaddrinfo, which calls getaddrinfo on libuv's thread pool, so a slow DNS server
 *   never stalls the loop (the heartbeats of every other connection keep going); the
 *   callback comes back on the loop thread. Of a name's addresses the first IPv4 one is
 *   taken, else the first IPv6 one: ember's listeners default to IPv4 (127.0.0.1), and
 *   "localhost" usually resolves to ::1 first, where nothing listens. */
#include "engine/net/net_int.h"

#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- parsing and printing */

bool em_net_host_is_v6(const char *host)
{
    return host && strchr(host, ':') != NULL;
}

bool em_net_host_is_any(const char *host)
{
    return !host || !*host || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 ||
           strcmp(host, "::") == 0;
}

bool em_net_host_valid(const char *host)
{
    size_t n = host ? strlen(host) : 0;
    if (n == 0 || n >= EM_NET_HOST_MAX)
        return false;
    if (em_net_host_is_v6(host)) {
        /* hex digits, ':' and '.' (an embedded IPv4 tail), then "%zone" of name chars */
        const char *pct = strchr(host, '%');
        size_t an = pct ? (size_t)(pct - host) : n;
        if (an < 2)
            return false;
        for (size_t i = 0; i < an; i++)
            if (!isxdigit((unsigned char)host[i]) && host[i] != ':' && host[i] != '.')
                return false;
        if (pct && !pct[1])
            return false;
        for (const char *z = pct ? pct + 1 : host + n; *z; z++)
            if (!isalnum((unsigned char)*z) && *z != '_' && *z != '-' && *z != '.')
                return false;
        return true;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)host[i]) && host[i] != '.' && host[i] != '-' &&
            host[i] != '_')
            return false;
    return true;
}

static int parse_port(const char *p, const char *s, uint16_t *port, em_err *err)
{
    unsigned long v = 0;
    size_t i = 0;
    for (; p[i]; i++) {
        if (p[i] < '0' || p[i] > '9' || i == 5)
            return em_err_set(err, EM_EINVAL, "address '%s': bad port '%s' (1..65535)", s, p);
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (i == 0 || v == 0 || v > 65535)
        return em_err_set(err, EM_EINVAL, "address '%s': bad port '%s' (1..65535)", s, p);
    *port = (uint16_t)v;
    return 0;
}

static int put_host(const char *h, size_t hn, const char *s, char *host, size_t cap,
                    em_err *err)
{
    if (hn == 0)
        return em_err_set(err, EM_EINVAL, "address '%s': no host", s);
    if (hn >= cap || hn >= EM_NET_HOST_MAX)
        return em_err_set(err, EM_EINVAL, "address '%s': host longer than %zu bytes", s,
                          (cap < EM_NET_HOST_MAX ? cap : EM_NET_HOST_MAX) - 1);
    char tmp[EM_NET_HOST_MAX];
    memcpy(tmp, h, hn);
    tmp[hn] = '\0';
    if (!em_net_host_valid(tmp))
        return em_err_set(err, EM_EINVAL, "address '%s': bad host (a name, an IPv4 address "
                          "or an IPv6 one in brackets: [::1]:7077)", s);
    memcpy(host, tmp, hn + 1);
    return 0;
}

int em_net_addr_split(const char *s, char *host, size_t cap, uint16_t *port, uint16_t def_port,
                      em_err *err)
{
    if (!s || !*s)
        return em_err_set(err, EM_EINVAL, "address '': expected HOST:PORT");
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return em_err_set(err, EM_EINVAL, "address '%s': '[' without ']'", s);
        size_t hn = (size_t)(close - s - 1);
        int rc = put_host(s + 1, hn, s, host, cap, err);
        if (rc < 0)
            return rc;
        if (!em_net_host_is_v6(host))
            return em_err_set(err, EM_EINVAL, "address '%s': brackets hold an IPv6 address",
                              s);
        if (close[1] == '\0') {
            if (!def_port)
                return em_err_set(err, EM_EINVAL, "address '%s': no port", s);
            *port = def_port;
            return 0;
        }
        if (close[1] != ':')
            return em_err_set(err, EM_EINVAL, "address '%s': expected ':PORT' after ']'", s);
        return parse_port(close + 2, s, port, err);
    }
    const char *colon = strchr(s, ':');
    if (colon && strchr(colon + 1, ':')) {
        /* more than one ':': an IPv6 literal, which cannot carry a port unbracketed */
        if (!def_port)
            return em_err_set(err, EM_EINVAL, "address '%s': an IPv6 address with a port is "
                              "written in brackets: [%s]:PORT", s, s);
        int rc = put_host(s, strlen(s), s, host, cap, err);
        if (rc == 0)
            *port = def_port;
        return rc;
    }
    int rc = put_host(s, colon ? (size_t)(colon - s) : strlen(s), s, host, cap, err);
    if (rc < 0)
        return rc;
    if (!colon) {
        if (!def_port)
            return em_err_set(err, EM_EINVAL, "address '%s': no port (HOST:PORT)", s);
        *port = def_port;
        return 0;
    }
    return parse_port(colon + 1, s, port, err);
}

void em_net_addr_format(char *buf, size_t n, const char *host, uint16_t port)
{
    if (em_net_host_is_v6(host))
        snprintf(buf, n, "[%s]:%u", host, port);
    else
        snprintf(buf, n, "%s:%u", host ? host : "", port);
}

void em_net_advertised(const char *bind, const char *adv, char *out, size_t n)
{
    char me[EM_NET_HOST_MAX];
    if (adv && *adv)
        snprintf(out, n, "%s", adv);
    else if (!em_net_host_is_any(bind ? bind : "127.0.0.1"))
        snprintf(out, n, "%s", bind ? bind : "127.0.0.1");
    else if (gethostname(me, sizeof me) == 0 && (me[sizeof me - 1] = '\0', *me))
        snprintf(out, n, "%s", me);
    else
        snprintf(out, n, "localhost");
}

static bool num_u16(const char *p, size_t len, uint16_t *out)
{
    unsigned long v = 0;
    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

int em_net_port_range_parse(const char *v, const char *what, uint16_t *lo, uint16_t *hi,
                            em_err *err)
{
    const char *dash = v ? strchr(v, '-') : NULL;
    uint16_t a = 0, b = 0;
    bool ok;
    if (!v || !*v)
        ok = false;
    else if (!dash)
        ok = num_u16(v, strlen(v), &a) && (b = a, true);
    else
        ok = num_u16(v, (size_t)(dash - v), &a) && num_u16(dash + 1, strlen(dash + 1), &b) &&
             a >= 1 && a <= b;
    if (!ok)
        return em_err_set(err, EM_EINVAL, "%s: expected a port (0 = any) or a range LO-HI "
                          "within 1..65535, got '%s'", what, v ? v : "");
    *lo = a;
    *hi = b;
    return 0;
}

int em_net_listen_range(em_net *n, const char *host, uint16_t lo, uint16_t hi,
                        uint16_t *bound, em_err *err)
{
    if (lo == 0 || hi < lo)
        return em_net_listen(n, host, 0, bound, err);
    em_err last = EM_ERR_INIT;
    for (uint32_t p = lo; p <= hi; p++) {
        bool in_use = false;
        em_err_clear(&last);
        int rc = em__net_listen(n, host, (uint16_t)p, bound, &in_use, &last);
        if (rc == 0)
            return 0;
        if (!in_use) {          /* not "address in use": another port will not help */
            em_err_copy(err, &last);
            return rc;
        }
    }
    return em_err_set(err, EM_EIO, "listen on %s: every port of %u-%u is in use (%s)",
                      host ? host : "127.0.0.1", lo, hi, last.msg);
}

/* ---------------------------------------------------------------- resolution */

typedef struct resolving {
    uv_getaddrinfo_t req;
    em__net_resolved_fn fn;
    void *ud;
    uint16_t port;
    char host[EM_NET_HOST_MAX];
} resolving;

/* The first IPv4 address, else (unless ipv4_only) the first IPv6 one. */
static const struct addrinfo *pick(const struct addrinfo *ai, bool ipv4_only)
{
    for (const struct addrinfo *a = ai; a; a = a->ai_next)
        if (a->ai_family == AF_INET)
            return a;
    for (const struct addrinfo *a = ai; a && !ipv4_only; a = a->ai_next)
        if (a->ai_family == AF_INET6)
            return a;
    return NULL;
}

int em_net_resolve_ip(const char *host, bool ipv4_only, char *ip, size_t cap, em_err *err)
{
    struct addrinfo hints = {.ai_family = ipv4_only ? AF_INET : AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = em_net_host_valid(host) ? getaddrinfo(host, NULL, &hints, &ai) : EAI_NONAME;
    const struct addrinfo *a = rc == 0 ? pick(ai, ipv4_only) : NULL;
    int ok = a && (a->ai_family == AF_INET
                       ? uv_ip4_name((const struct sockaddr_in *)a->ai_addr, ip, cap)
                       : uv_ip6_name((const struct sockaddr_in6 *)a->ai_addr, ip, cap)) == 0;
    if (ai)
        freeaddrinfo(ai);
    if (ok)
        return 0;
    return em_err_set(err, EM_EIO, "cannot resolve host '%s' to an %s address: %s",
                      host ? host : "", ipv4_only ? "IPv4" : "IPv4 or IPv6",
                      rc ? gai_strerror(rc) : a ? "address does not fit" : "no address");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    resolving *r = req->data;
    const struct addrinfo *a = status == 0 ? pick(ai, false) : NULL;
    em_err err = EM_ERR_INIT;
    if (!a) {
        em_err_set(&err, EM_EIO, "cannot resolve host '%s': %s", r->host,
                   status < 0 ? uv_strerror(status) : "no IPv4 or IPv6 address");
        r->fn(r->ud, NULL, &err);
    } else {
        struct sockaddr_storage ss;
        memcpy(&ss, a->ai_addr, a->ai_addrlen);
        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons(r->port);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons(r->port);
        r->fn(r->ud, (const struct sockaddr *)&ss, NULL);
    }
    uv_freeaddrinfo(ai);
    em_free(r);
}

void em__net_resolve(uv_loop_t *loop, const char *host, uint16_t port, em__net_resolved_fn fn,
                     void *ud)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    em_err err = EM_ERR_INIT;
    if (!host || !*host || strcmp(host, "*") == 0)
        host = "0.0.0.0";
    else if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
        fn(ud, (const struct sockaddr *)&ss, NULL);
        return;
    }
    if (!em_net_host_valid(host)) {
        em_err_set(&err, EM_EINVAL, "bad host '%s'", host);
        fn(ud, NULL, &err);
        return;
    }
    resolving *r = em_xcalloc(1, sizeof *r);
    r->fn = fn;
    r->ud = ud;
    r->port = port;
    r->req.data = r;
    snprintf(r->host, sizeof r->host, "%s", host);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(loop, &r->req, on_resolved, r->host, NULL, &hints);
    if (rc < 0) {
        em_err_set(&err, EM_EIO, "cannot resolve host '%s': %s", host, uv_strerror(rc));
        em_free(r);
        fn(ud, NULL, &err);
    }
}

void em__net_sockaddr_format(const struct sockaddr *sa, char *ip, size_t ipn, char *buf,
                             size_t n)
{
    int port = 0;
    ip[0] = '\0';
    if (sa->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)sa, ip, ipn);
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)sa, ip, ipn);
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    }
    em_net_addr_format(buf, n, ip, (uint16_t)port);
}
