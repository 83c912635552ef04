/* tests/unit/executor/test_proto_kill.c - the `kill` message (driver -> executor: stop task
 * id, its job was cancelled): exact round trip of the task id, and untrusted JSON with a
 * missing, mistyped or negative id is EM_EPROTO naming the field. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/executor/protocol.h"

Test(proto_kill, roundtrip_exact)
{
    const uint64_t ids[] = {0, 1, 4096, UINT32_MAX, (uint64_t)INT64_MAX};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        em__msg in = {.type = EM__MSG_KILL, .id = ids[i]}, out;
        em_vbuf v;
        em_err err = EM_ERR_INIT;
        em_vbuf_init(&v);
        cr_assert_eq(em__msg_encode(&in, &v, &err), 0, "%s", err.msg);
        cr_assert_eq(em__msg_decode(v.data, v.len, &out, &err), 0, "%s", err.msg);
        cr_assert_eq(out.type, EM__MSG_KILL);
        cr_assert_eq(out.id, ids[i]);
        em__msg_destroy(&out);
        em_vbuf_destroy(&v);
    }
    const char *s = "{\"t\":\"kill\",\"id\":17}";   /* the wire form docs/cluster.md shows */
    em__msg m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em__msg_decode((const uint8_t *)s, strlen(s), &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m.id, 17);
    em__msg_destroy(&m);
}

Test(proto_kill, bad_ids_are_protocol_errors)
{
    const char *bad[][2] = {
        {"{\"t\":\"kill\"}", "'id': missing"},
        {"{\"t\":\"kill\",\"id\":\"3\"}", "'id': not an integer"},
        {"{\"t\":\"kill\",\"id\":-1}", "'id': out of range"},
        {"{\"t\":\"kill\",\"id\":1.5}", "'id'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        em__msg m;
        em_err err = EM_ERR_INIT;
        int rc = em__msg_decode((const uint8_t *)bad[i][0], strlen(bad[i][0]), &m, &err);
        cr_assert_eq(rc, EM_EPROTO, "%s", bad[i][0]);
        cr_assert(strstr(err.msg, "message 'kill'"), "%s", err.msg);
        cr_assert(strstr(err.msg, bad[i][1]), "%s: %s", bad[i][0], err.msg);
        em__msg_destroy(&m);
    }
}
