/* Addresses (engine/net/addr.c): HOST:PORT with IPv6 literals in brackets, printing, port
 * ranges, and listening / connecting by name and over IPv6 through a real em_net. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/net/net.h"

static int split(const char *s, uint16_t def, char *host, uint16_t *port)
{
    em_err err = EM_ERR_INIT;
    return em_net_addr_split(s, host, EM_NET_HOST_MAX, port, def, &err);
}

Test(addr, splits_names_ipv4_and_bracketed_ipv6)
{
    char h[EM_NET_HOST_MAX];
    uint16_t p = 0;
    cr_assert_eq(split("node7.example.org:7077", 0, h, &p), 0);
    cr_assert_str_eq(h, "node7.example.org");
    cr_assert_eq(p, 7077);
    cr_assert_eq(split("10.213.0.1:1", 0, h, &p), 0);
    cr_assert_str_eq(h, "10.213.0.1");
    cr_assert_eq(p, 1);
    cr_assert_eq(split("[::1]:65535", 0, h, &p), 0);
    cr_assert_str_eq(h, "::1");
    cr_assert_eq(p, 65535);
    cr_assert_eq(split("[fe80::1%eth0]:80", 0, h, &p), 0);
    cr_assert_str_eq(h, "fe80::1%eth0");
    cr_assert_eq(split("[::ffff:10.0.0.1]:80", 0, h, &p), 0);
    cr_assert_str_eq(h, "::ffff:10.0.0.1");
}

Test(addr, default_port_only_when_given)
{
    char h[EM_NET_HOST_MAX];
    uint16_t p = 0;
    cr_assert_eq(split("master", 7077, h, &p), 0);
    cr_assert_eq(p, 7077);
    cr_assert_eq(split("[::1]", 7077, h, &p), 0);
    cr_assert_str_eq(h, "::1");
    cr_assert_eq(split("::1", 7077, h, &p), 0);   /* bare literal, no port */
    cr_assert_str_eq(h, "::1");
    cr_assert_eq(p, 7077);
    cr_assert_lt(split("master", 0, h, &p), 0);
    cr_assert_lt(split("[::1]", 0, h, &p), 0);
}

Test(addr, refuses_malformed_addresses_with_a_reason)
{
    const char *bad[] = {"", ":7077", "h:", "h:0", "h:65536", "h:12x", "h:-1", "h:+1",
                         "h: 1", "[::1", "[]:1", "[::1]7077", "[::1]:", "[host]:1",
                         "::1:7077", "a b:1", "a/b:1", "h:1:2", "h:123456", "[::1%]:1",
                         "[:x:]:1", "h@x:1"};
    char h[EM_NET_HOST_MAX];
    uint16_t p;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        em_err err = EM_ERR_INIT;
        cr_assert_lt(em_net_addr_split(bad[i], h, sizeof h, &p, 0, &err), 0, "%s", bad[i]);
        cr_assert_eq(err.code, EM_EINVAL);
        cr_assert_neq(strstr(err.msg, "address '"), NULL, "%s: %s", bad[i], err.msg);
    }
    em_err err = EM_ERR_INIT;
    cr_assert_lt(em_net_addr_split("::1:7077", h, sizeof h, &p, 0, &err), 0);
    cr_assert_neq(strstr(err.msg, "brackets"), NULL, "%s", err.msg);
    char longh[300];
    memset(longh, 'a', sizeof longh);
    strcpy(longh + 290, ":1");
    cr_assert_lt(em_net_addr_split(longh, h, sizeof h, &p, 0, &err), 0);
    cr_assert_lt(em_net_addr_split("abcdef:1", h, 4, &p, 0, &err), 0);   /* over cap */
}

Test(addr, formats_and_round_trips)
{
    const char *hosts[] = {"node7", "10.0.0.1", "::1", "fe80::1%eth0", "2001:db8::7"};
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) {
        char buf[EM_NET_ADDR_MAX], h[EM_NET_HOST_MAX];
        uint16_t p;
        em_net_addr_format(buf, sizeof buf, hosts[i], 7100);
        cr_assert_eq(buf[0] == '[', strchr(hosts[i], ':') != NULL, "%s", buf);
        cr_assert_eq(split(buf, 0, h, &p), 0, "%s", buf);
        cr_assert_str_eq(h, hosts[i]);
        cr_assert_eq(p, 7100);
    }
}

Test(addr, port_ranges)
{
    uint16_t lo, hi;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_net_port_range_parse("0", "k", &lo, &hi, &err), 0);
    cr_assert(lo == 0 && hi == 0);
    cr_assert_eq(em_net_port_range_parse("7100", "k", &lo, &hi, &err), 0);
    cr_assert(lo == 7100 && hi == 7100);
    cr_assert_eq(em_net_port_range_parse("7100-7110", "k", &lo, &hi, &err), 0);
    cr_assert(lo == 7100 && hi == 7110);
    const char *bad[] = {"", "-", "7100-", "-7110", "7110-7100", "0-5", "65536", "1-70000",
                         "a", "1-2-3", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_lt(em_net_port_range_parse(bad[i], "ember.driver.port", &lo, &hi, &err), 0,
                     "%s", bad[i]);
        cr_assert_neq(strstr(err.msg, "ember.driver.port"), NULL);
    }
}

Test(addr, wildcards_and_advertised_host)
{
    cr_assert(em_net_host_is_any("0.0.0.0"));
    cr_assert(em_net_host_is_any("::"));
    cr_assert(!em_net_host_is_any("127.0.0.1"));
    char out[EM_NET_HOST_MAX];
    em_net_advertised("0.0.0.0", "node7", out, sizeof out);
    cr_assert_str_eq(out, "node7");
    em_net_advertised("10.0.0.2", NULL, out, sizeof out);
    cr_assert_str_eq(out, "10.0.0.2");
    em_net_advertised(NULL, "", out, sizeof out);
    cr_assert_str_eq(out, "127.0.0.1");
    em_net_advertised("::", NULL, out, sizeof out);
    cr_assert(*out && !em_net_host_is_any(out));   /* this machine's name */
}

/* ---------------------------------------------------------------- through a real em_net */

static void on_open(void *ud, em_conn_id c, bool inbound)
{
    (void)ud, (void)c, (void)inbound;
}
static int on_frame(void *ud, em_conn_id c, uint8_t type, em_slice p, em_err *err)
{
    (void)ud, (void)c, (void)type, (void)p, (void)err;
    return 0;
}
static void on_close(void *ud, em_conn_id c, const em_err *why)
{
    (void)ud, (void)c, (void)why;
}
static const em_net_ops ops = {.on_open = on_open, .on_frame = on_frame, .on_close = on_close};

static em_net *net(void)
{
    em_err err = EM_ERR_INIT;
    em_net_opts o = {.secret = "0123456789abcdef0123", .secret_len = 20, .ops = &ops};
    em_net *n = em_net_new(&o, &err);
    cr_assert_not_null(n, "%s", err.msg);
    return n;
}

Test(addr, connects_by_name_and_over_ipv6)
{
    em_net *srv = net(), *cli = net();
    em_err err = EM_ERR_INIT;
    uint16_t port;
    cr_assert_eq(em_net_listen(srv, "localhost", 0, &port, &err), 0, "%s", err.msg);
    em_conn_id id;
    cr_assert_eq(em_net_connect(cli, "localhost", port, &id, &err), 0, "%s", err.msg);
    cr_assert(em_net_is_loopback(cli, id));
    /* IPv6 when the machine has ::1 (a container may have no IPv6 at all) */
    uint16_t p6;
    if (em_net_listen(srv, "::1", 0, &p6, &err) == 0) {
        cr_assert_eq(em_net_connect(cli, "::1", p6, &id, &err), 0, "%s", err.msg);
        cr_assert(em_net_is_loopback(cli, id));
    }
    em_net_free(cli);
    em_net_free(srv);
}

Test(addr, unresolvable_names_and_taken_ports_fail_clearly)
{
    em_net *srv = net(), *cli = net();
    em_err err = EM_ERR_INIT;
    em_conn_id id;
    /* .invalid never resolves (RFC 6761) */
    cr_assert_lt(em_net_connect(cli, "no-such-host.invalid", 7077, &id, &err), 0);
    cr_assert_neq(strstr(err.msg, "no-such-host.invalid"), NULL, "%s", err.msg);
    uint16_t a, b;
    cr_assert_eq(em_net_listen(srv, "127.0.0.1", 0, &a, &err), 0, "%s", err.msg);
    /* a range whose first port is taken gets the next free one */
    int rc = em_net_listen_range(cli, "127.0.0.1", a, a == 65535 ? a : (uint16_t)(a + 1), &b,
                                 &err);
    if (a < 65535 && rc == 0)
        cr_assert_eq(b, a + 1);
    /* a range of one taken port fails naming the range */
    cr_assert_lt(em_net_listen_range(cli, "127.0.0.1", a, a, &b, &err), 0);
    cr_assert_neq(strstr(err.msg, "in use"), NULL, "%s", err.msg);
    cr_assert_lt(em_net_listen(cli, "bad host!", 0, &b, &err), 0);
    em_net_free(cli);
    em_net_free(srv);
}
