/* tests/unit/net/test_resolve_ip.c - em_net_resolve_ip, the blocking resolution of a host to
 * an address literal (ember slurm resolves its nodes with it): literals come back as they
 * are, "localhost" as a loopback address, IPv6 is refused when only IPv4 is wanted, and
 * names that cannot resolve or do not fit fail with EM_EIO naming the host. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/net/net.h"

Test(resolve_ip, literals_come_back_unchanged)
{
    char ip[64];
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_net_resolve_ip("10.213.0.7", true, ip, sizeof ip, &err), 0, "%s", err.msg);
    cr_assert_str_eq(ip, "10.213.0.7");
    cr_assert_eq(em_net_resolve_ip("fd00:213::1", false, ip, sizeof ip, &err), 0, "%s", err.msg);
    cr_assert_str_eq(ip, "fd00:213::1");
}

Test(resolve_ip, names_resolve_ipv4_first)
{
    char ip[64];
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_net_resolve_ip("localhost", true, ip, sizeof ip, &err), 0, "%s", err.msg);
    cr_assert_eq(strncmp(ip, "127.", 4), 0, "localhost -> %s", ip);
}

Test(resolve_ip, failures_name_the_host)
{
    char ip[64];
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_net_resolve_ip("::1", true, ip, sizeof ip, &err), EM_EIO);
    cr_assert(strstr(err.msg, "'::1'") && strstr(err.msg, "IPv4"), "%s", err.msg);
    em_err_clear(&err);
    cr_assert_eq(em_net_resolve_ip("no-such-host.invalid", false, ip, sizeof ip, &err), EM_EIO);
    cr_assert(strstr(err.msg, "'no-such-host.invalid'"), "%s", err.msg);
    em_err_clear(&err);
    cr_assert_eq(em_net_resolve_ip("bad host", false, ip, sizeof ip, &err), EM_EIO);
    cr_assert(strstr(err.msg, "'bad host'"), "%s", err.msg);
    em_err_clear(&err);
    char tiny[4];
    cr_assert_eq(em_net_resolve_ip("10.213.0.7", true, tiny, sizeof tiny, &err), EM_EIO);
    cr_assert(strstr(err.msg, "does not fit"), "%s", err.msg);
}
