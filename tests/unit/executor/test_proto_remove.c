/* tests/unit/executor/test_proto_remove.c - the `remove_shuffle` message (driver -> executor,
 * em_rdd_release of a shuffle's dataset): exact round trip of the shuffle id over its whole
 * range, and untrusted JSON with a missing, mistyped or out-of-range sid is EM_EPROTO
 * naming the field. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/executor/protocol.h"

Test(proto_remove, roundtrip_exact)
{
    const uint32_t sids[] = {0, 1, 7, 65536, UINT32_MAX};
    for (size_t i = 0; i < sizeof sids / sizeof *sids; i++) {
        em__msg in = {.type = EM__MSG_REMOVE_SHUFFLE, .sid = sids[i]}, out;
        em_vbuf v;
        em_err err = EM_ERR_INIT;
        em_vbuf_init(&v);
        cr_assert_eq(em__msg_encode(&in, &v, &err), 0, "%s", err.msg);
        cr_assert_eq(em__msg_decode(v.data, v.len, &out, &err), 0, "%s", err.msg);
        cr_assert_eq(out.type, EM__MSG_REMOVE_SHUFFLE);
        cr_assert_eq(out.sid, sids[i]);
        em__msg_destroy(&out);
        em_vbuf_destroy(&v);
    }
    /* the wire form docs/cluster.md shows */
    const char *s = "{\"t\":\"remove_shuffle\",\"id\":0,\"sid\":42}";
    em__msg m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em__msg_decode((const uint8_t *)s, strlen(s), &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m.sid, 42);
    em__msg_destroy(&m);
}

Test(proto_remove, bad_fields_are_protocol_errors)
{
    const char *bad[][2] = {
        {"{\"t\":\"remove_shuffle\",\"id\":0}", "'sid': missing"},
        {"{\"t\":\"remove_shuffle\",\"id\":0,\"sid\":\"3\"}", "'sid': not an integer"},
        {"{\"t\":\"remove_shuffle\",\"id\":0,\"sid\":-1}", "'sid': out of range"},
        {"{\"t\":\"remove_shuffle\",\"id\":0,\"sid\":4294967296}", "'sid': out of range"},
        {"{\"t\":\"remove_shuffle\",\"sid\":1}", "'id': missing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        em__msg m;
        em_err err = EM_ERR_INIT;
        int rc = em__msg_decode((const uint8_t *)bad[i][0], strlen(bad[i][0]), &m, &err);
        cr_assert_eq(rc, EM_EPROTO, "%s", bad[i][0]);
        cr_assert(strstr(err.msg, "message 'remove_shuffle'"), "%s", err.msg);
        cr_assert(strstr(err.msg, bad[i][1]), "%s: %s", bad[i][0], err.msg);
        em__msg_destroy(&m);
    }
}
