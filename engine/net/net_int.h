/* engine/net/net_int.h - what the files of engine/net share and nobody else sees:
 * resolving a host for the loop thread (addr.c) and listening with the reason a port
 * failed (conn.c). */
#ifndef EMBER_NET_INT_H
#define EMBER_NET_INT_H

#include <uv.h>

#include "engine/net/net.h"

/* Called on the loop thread with the address to use (port set), or sa == NULL and why. */
typedef void (*em__net_resolved_fn)(void *ud, const struct sockaddr *sa, const em_err *why);
/* Resolves host ("" and "*": 0.0.0.0; literals at once, in the call; names through
 * uv_getaddrinfo on the thread pool, fn later on the loop thread). Loop thread. */
void em__net_resolve(uv_loop_t *loop, const char *host, uint16_t port, em__net_resolved_fn fn,
                     void *ud);
/* "ip" (ipn bytes) and "ip:port" / "[ip]:port" (n bytes) of an IPv4 or IPv6 socket address. */
void em__net_sockaddr_format(const struct sockaddr *sa, char *ip, size_t ipn, char *buf,
                             size_t n);
/* em_net_listen that also says whether the port was in use (*in_use), for port ranges. */
int em__net_listen(em_net *n, const char *host, uint16_t port, uint16_t *bound, bool *in_use,
                   em_err *err);

#endif /* EMBER_NET_INT_H */
