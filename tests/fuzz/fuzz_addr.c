/* Fuzz harness for peer addresses read from the wire (a driver's address in register_app
 * and launch_executor, an executor's shuffle location): em_net_addr_split with and without
 * a default port, em_net_port_range_parse, and a format/split round trip of what parsed. */
#include <string.h>

#include "engine/net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[600];
    if (size >= sizeof s)
        size = sizeof s - 1;
    memcpy(s, data, size);
    s[size] = '\0';
    char host[EM_NET_HOST_MAX], again[EM_NET_HOST_MAX], buf[EM_NET_ADDR_MAX];
    uint16_t port, p2, lo, hi;
    em_err err = EM_ERR_INIT;
    for (int def = 0; def < 2; def++) {
        if (em_net_addr_split(s, host, sizeof host, &port, def ? 7077 : 0, &err) == 0) {
            em_net_addr_format(buf, sizeof buf, host, port);
            if (em_net_addr_split(buf, again, sizeof again, &p2, 0, &err) != 0 ||
                strcmp(host, again) != 0 || p2 != port)
                __builtin_trap();   /* what parses must print back to itself */
        }
    }
    (void)em_net_port_range_parse(s, "fuzz", &lo, &hi, &err);
    return 0;
}
