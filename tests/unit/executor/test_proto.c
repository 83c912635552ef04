/* tests/unit/executor/test_proto.c - the driver-executor message codecs: every message type
 * round-trips with exact field values; untrusted JSON with a missing, mistyped, out of
 * range or malformed field is EM_EPROTO naming the field; DATA frame headers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/executor/protocol.h"

static void roundtrip(const em__msg *in, em__msg *out)
{
    em_vbuf v;
    em_err err = EM_ERR_INIT;
    em_vbuf_init(&v);
    cr_assert_eq(em__msg_encode(in, &v, &err), 0, "%s", err.msg);
    int rc = em__msg_decode(v.data, v.len, out, &err);
    cr_assert_eq(rc, 0, "%s: %.*s", err.msg, (int)v.len, (const char *)v.data);
    em_vbuf_destroy(&v);
    cr_assert_eq(out->type, in->type);
}

static int decode_str(const char *s, em__msg *m, em_err *err)
{
    return em__msg_decode((const uint8_t *)s, strlen(s), m, err);
}

Test(proto, register_launch_roundtrip)
{
    em__msg in = {.type = EM__MSG_REGISTER, .cores = 3, .pid = 4242, .port = 6553};
    strcpy(in.exec_id, "exec-7");
    strcpy(in.host, "10.0.0.2");
    em__msg out;
    roundtrip(&in, &out);
    cr_assert_str_eq(out.exec_id, "exec-7");
    cr_assert_str_eq(out.host, "10.0.0.2");
    cr_assert_eq(out.cores, 3);
    cr_assert_eq(out.pid, 4242);
    cr_assert_eq(out.port, 6553);
    em__msg_destroy(&out);

    em__msg l = {.type = EM__MSG_LAUNCH, .id = 1234567890123ull, .stage = 9, .part = 77,
                 .attempt = 2, .is_map = true};
    roundtrip(&l, &out);
    cr_assert_eq(out.id, 1234567890123ull);
    cr_assert_eq(out.stage, 9);
    cr_assert_eq(out.part, 77);
    cr_assert_eq(out.attempt, 2);
    cr_assert(out.is_map);
    em__msg_destroy(&out);
}

Test(proto, registered_with_and_without_library)
{
    em__msg in = {.type = EM__MSG_REGISTERED, .library = "/x/lib.so"};
    memset(in.sha256, 'a', 64);
    in.sha256[64] = '\0';
    em__msg out;
    roundtrip(&in, &out);
    cr_assert_str_eq(out.library, "/x/lib.so");
    cr_assert_eq(strlen(out.sha256), 64);
    cr_assert_eq(out.zstd_level, 1, "0 in the message means level 1");
    em__msg_destroy(&out);
    cr_assert(!out.shuffle_sync);
    em__msg none = {.type = EM__MSG_REGISTERED, .storage_permille = 250,
                    .shuffle_mem = (uint64_t)5 << 32, .compress = EM__WIRE_NEVER,
                    .shuffle_sync = true, .zstd_level = -3};
    roundtrip(&none, &out);
    cr_assert_null(out.library);
    cr_assert_eq(out.storage_permille, 250);
    cr_assert_eq(out.shuffle_mem, (uint64_t)5 << 32);
    cr_assert_eq(out.compress, EM__WIRE_NEVER);
    cr_assert(out.shuffle_sync);
    cr_assert_eq(out.zstd_level, -3);
    em__msg_destroy(&out);
    em_err err = EM_ERR_INIT;
    /* shuffle_sync and zstd_level are optional (absent = false, 1) but must be a boolean
     * and a level when present */
    cr_assert_eq(decode_str("{\"t\":\"registered\",\"library\":null,\"sha256\":null,"
                            "\"storage_permille\":500,\"shuffle_memory\":0,\"compress\":0}",
                            &out, &err), 0, "%s", err.msg);
    cr_assert(!out.shuffle_sync);
    cr_assert_eq(out.zstd_level, 1);
    em__msg_destroy(&out);
    static const struct {
        const char *extra, *field;
    } wrong[] = {{"\"zstd_level\":23", "zstd_level"},
                 {"\"zstd_level\":\"fast\"", "zstd_level"},
                 {"\"shuffle_sync\":1", "shuffle_sync"}};
    for (size_t w = 0; w < sizeof wrong / sizeof wrong[0]; w++) {
        char msg[256];
        snprintf(msg, sizeof msg, "{\"t\":\"registered\",\"library\":null,\"sha256\":null,"
                 "\"storage_permille\":500,\"shuffle_memory\":0,\"compress\":0,%s}",
                 wrong[w].extra);
        err = (em_err)EM_ERR_INIT;
        cr_assert_eq(decode_str(msg, &out, &err), EM_EPROTO, "%s", msg);
        cr_assert(strstr(err.msg, wrong[w].field), "%s", err.msg);
        em__msg_destroy(&out);
    }
    err = (em_err)EM_ERR_INIT;
    cr_assert_eq(decode_str("{\"t\":\"registered\",\"library\":\"/a\",\"sha256\":\"XYZ\","
                            "\"storage_permille\":500,\"shuffle_memory\":0,\"compress\":0}",
                            &out, &err), EM_EPROTO);
    cr_assert(strstr(err.msg, "sha256"), "%s", err.msg);
    em__msg_destroy(&out);
    /* the settings are required and range-checked */
    static const char *const bad[] = {
        "{\"t\":\"registered\",\"library\":null,\"sha256\":null}",
        "{\"t\":\"registered\",\"library\":null,\"sha256\":null,\"storage_permille\":1001,"
        "\"shuffle_memory\":0,\"compress\":0}",
        "{\"t\":\"registered\",\"library\":null,\"sha256\":null,\"storage_permille\":5,"
        "\"shuffle_memory\":-1,\"compress\":0}",
        "{\"t\":\"registered\",\"library\":null,\"sha256\":null,\"storage_permille\":5,"
        "\"shuffle_memory\":0,\"compress\":3}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        em_err e2 = EM_ERR_INIT;
        cr_assert_eq(decode_str(bad[i], &out, &e2), EM_EPROTO, "%s", bad[i]);
        em__msg_destroy(&out);
    }
}

Test(proto, status_roundtrip)
{
    em__msg in = {.type = EM__MSG_STATUS, .id = 5, .nbatches = 2};
    uint64_t sizes[3] = {10, 0, 99999999999ull};
    in.res.is_map = true;
    in.res.count = 31;
    in.res.map_status = (em_map_status){.shuffle_id = 4, .map_id = 6, .nparts = 3,
                                        .sizes = sizes, .records_written = 8};
    em_acc_update acc[2] = {{1, false, -5, 0}, {2, true, 0, 2.5}};
    in.res.acc = acc;
    in.res.nacc = 2;
    in.res.metrics = (em_task_metrics){0, 1000, 2000, 3000, 4000, 5000, 6000};
    em__msg out;
    roundtrip(&in, &out);
    cr_assert_eq(out.nbatches, 2);
    cr_assert_eq(out.res.code, 0);
    cr_assert(out.res.is_map);
    cr_assert_eq(out.res.count, 31);
    cr_assert_eq(out.res.map_status.shuffle_id, 4);
    cr_assert_eq(out.res.map_status.map_id, 6);
    cr_assert_eq(out.res.map_status.nparts, 3);
    cr_assert_eq(out.res.map_status.sizes[2], 99999999999ull);
    cr_assert_eq(out.res.map_status.records_written, 8);
    cr_assert_eq(out.res.nacc, 2);
    cr_assert_eq(out.res.acc[0].i64, -5);
    cr_assert(out.res.acc[1].is_f64);
    cr_assert_float_eq(out.res.acc[1].f64, 2.5, 1e-12);
    cr_assert_eq(out.res.metrics.run_ns, 6000);
    cr_assert_eq(out.res.metrics.spill_bytes, 4000);
    em__msg_destroy(&out);

    em__msg f = {.type = EM__MSG_STATUS, .id = 6};
    f.res.code = EM_EFETCH;
    f.res.fetch_failed = true;
    f.res.failed_shuffle = 3;
    f.res.failed_map = 11;
    em_err_set(&f.res.err, EM_EFETCH, "segment gone");
    roundtrip(&f, &out);
    cr_assert_eq(out.res.code, EM_EFETCH);
    cr_assert(out.res.fetch_failed);
    cr_assert_eq(out.res.failed_map, 11);
    cr_assert_str_eq(out.res.err.msg, "segment gone");
    em__msg_destroy(&out);
}

Test(proto, requests_and_replies_roundtrip)
{
    em__msg b = {.type = EM__MSG_BLOCK, .id = 3, .block = {EM_BLOCK_INPUT, 5, 6, 0}};
    em__msg out;
    roundtrip(&b, &out);
    cr_assert_eq(out.block.type, EM_BLOCK_INPUT);
    cr_assert_eq(out.block.b, 6);
    em__msg_destroy(&out);

    char *locs[2] = {"h1:1", "h2:2"};
    em_shuffle_src srcs[3] = {{0, "h1:1", 5}, {1, "h2:2", 0}, {2, "h1:1", 7}};
    em__msg r = {.type = EM__MSG_MAP_OUTPUTS_REPLY, .id = 8, .srcs = srcs, .nsrcs = 3,
                 .locs = locs, .nlocs = 2};
    em_vbuf v;
    em_err err = EM_ERR_INIT;
    em_vbuf_init(&v);
    cr_assert_eq(em__msg_encode(&r, &v, &err), 0);
    cr_assert_eq(em__msg_decode(v.data, v.len, &out, &err), 0, "%s", err.msg);
    em_vbuf_destroy(&v);
    cr_assert_eq(out.nsrcs, 3);
    cr_assert_str_eq(out.srcs[1].loc, "h2:2");
    cr_assert_str_eq(out.srcs[2].loc, "h1:1");
    cr_assert_eq(out.srcs[2].size, 7);
    em__msg_destroy(&out);

    em__msg fe = {.type = EM__MSG_FETCH_ERROR, .id = 2, .code = EM_EFETCH};
    em_err_set(&fe.err, EM_EFETCH, "no file");
    roundtrip(&fe, &out);
    cr_assert_eq(out.code, EM_EFETCH);
    cr_assert_str_eq(out.err.msg, "no file");
    em__msg_destroy(&out);
}

Test(proto, drop_roundtrip)
{
    /* em_broadcast_destroy: (BROADCAST, id); em_rdd_unpersist: (RDD, rdd id). */
    em__msg d = {.type = EM__MSG_DROP, .block = {EM_BLOCK_BROADCAST, 4000000000u, 7, 8}};
    em__msg out;
    roundtrip(&d, &out);
    cr_assert_eq(out.block.type, EM_BLOCK_BROADCAST);
    cr_assert_eq(out.block.a, 4000000000u);
    cr_assert_eq(out.block.b, 0, "b is not part of a drop");
    cr_assert_eq(out.block.c, 0);
    em__msg_destroy(&out);

    em_err err = EM_ERR_INIT;
    cr_assert_eq(decode_str("{\"t\":\"drop\",\"id\":0,\"btype\":1,\"a\":12}", &out, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(out.type, EM__MSG_DROP);
    cr_assert_eq(out.block.type, EM_BLOCK_RDD);
    cr_assert_eq(out.block.a, 12);
    em__msg_destroy(&out);
}

Test(proto, untrusted_input_rejected)
{
    static const struct {
        const char *json, *field;
    } bad[] = {
        {"[1,2]", "(root)"},
        {"{\"t\":5}", "'t'"},
        {"{\"t\":\"nope\"}", "'t'"},
        {"{\"t\":\"launch\",\"id\":1,\"stage\":1,\"part\":1,\"attempt\":1}", "'map'"},
        {"{\"t\":\"launch\",\"id\":-1,\"stage\":1,\"part\":1,\"attempt\":1,\"map\":true}", "'id'"},
        {"{\"t\":\"launch\",\"id\":1,\"stage\":\"1\",\"part\":1,\"attempt\":1,\"map\":true}",
         "'stage'"},
        {"{\"t\":\"launch\",\"id\":1,\"stage\":4294967296,\"part\":1,\"attempt\":1,\"map\":1}",
         "'stage'"},
        {"{\"t\":\"register\",\"exec_id\":\"\",\"cores\":1,\"pid\":1,\"host\":\"h\",\"port\":1}",
         "'exec_id'"},
        {"{\"t\":\"register\",\"exec_id\":\"a\",\"cores\":0,\"pid\":1,\"host\":\"h\",\"port\":1}",
         "'cores'"},
        {"{\"t\":\"register\",\"exec_id\":\"a\",\"cores\":1,\"pid\":1,\"host\":\"h\",\"port\":0}",
         "'port'"},
        {"{\"t\":\"register\",\"exec_id\":\"a\\u0000b\",\"cores\":1,\"pid\":1,\"host\":\"h\","
         "\"port\":1}", "JSON"},
        {"{\"t\":\"fetch\",\"id\":1,\"sid\":1,\"mid\":1,\"reduce\":65536}", "'reduce'"},
        {"{\"t\":\"block\",\"id\":1,\"btype\":9,\"a\":1,\"b\":1,\"c\":1}", "'btype'"},
        {"{\"t\":\"drop\",\"id\":0,\"btype\":0,\"a\":1}", "'btype'"},
        {"{\"t\":\"drop\",\"id\":0,\"btype\":5,\"a\":1}", "'btype'"},
        {"{\"t\":\"drop\",\"id\":0,\"btype\":2}", "'a'"},
        {"{\"t\":\"drop\",\"btype\":2,\"a\":1}", "'id'"},
        {"{\"t\":\"drop\",\"id\":0,\"btype\":2,\"a\":-1}", "'a'"},
        {"{\"t\":\"map_outputs_reply\",\"id\":1,\"code\":0,\"msg\":\"\",\"locs\":[\"a:1\"],"
         "\"srcs\":[[0,5,1]]}", "'srcs'"},
        {"{\"t\":\"map_outputs_reply\",\"id\":1,\"code\":0,\"msg\":\"\",\"locs\":[],"
         "\"srcs\":[[0,5,0]]}", "'locs'"},
        {"{\"t\":\"status\",\"id\":1,\"code\":-2,\"msg\":\"x\",\"fetch_failed\":true,"
         "\"fshuffle\":0,\"fmap\":0,\"count\":0,\"nbatches\":0,\"metrics\":[0,0,0,0,0,0,0],"
         "\"acc\":[]}", "'fetch_failed'"},
        {"{\"t\":\"status\",\"id\":1,\"code\":0,\"msg\":\"\",\"fetch_failed\":false,"
         "\"fshuffle\":0,\"fmap\":0,\"count\":0,\"nbatches\":0,\"metrics\":[0,0,0],"
         "\"acc\":[]}", "'metrics'"},
        {"{\"t\":\"status\",\"id\":1,\"code\":0,\"msg\":\"\",\"fetch_failed\":false,"
         "\"fshuffle\":0,\"fmap\":0,\"count\":0,\"nbatches\":0,\"metrics\":[0,0,0,0,0,0,0],"
         "\"acc\":[[1,0,1.5]]}", "'acc'"},
        {"{\"t\":\"status\",\"id\":1,\"code\":0,\"msg\":\"\",\"fetch_failed\":false,"
         "\"fshuffle\":0,\"fmap\":0,\"count\":0,\"nbatches\":0,\"metrics\":[0,0,0,0,0,0,0],"
         "\"acc\":[],\"map\":{\"sid\":1,\"mid\":1,\"sizes\":[],\"records\":0,\"bytes\":0,"
         "\"spill_count\":0,\"spill_bytes\":0}}", "'map.sizes'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        em__msg m;
        em_err err = EM_ERR_INIT;
        int rc = decode_str(bad[i].json, &m, &err);
        cr_assert_eq(rc, EM_EPROTO, "case %zu accepted: %s", i, bad[i].json);
        cr_assert(strstr(err.msg, bad[i].field), "case %zu: '%s' lacks %s", i, err.msg,
                  bad[i].field);
        em__msg_destroy(&m);
    }
    em__msg m;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em__msg_decode((const uint8_t *)"{\"t\":", 5, &m, &err), EM_EPROTO);
    em__msg_destroy(&m);
    const char *dup = "{\"t\":\"fetch\",\"t\":\"fetch\",\"id\":1,\"sid\":1,\"mid\":1,\"reduce\":0}";
    cr_assert_eq(decode_str(dup, &m, &err), EM_EPROTO);
    em__msg_destroy(&m);
}

Test(proto, data_header)
{
    uint8_t f[EM__DATA_HDR + 3];
    em__data_hdr(f, EM__DATA_SEGMENT, 1, 0x0102030405060708ull);
    memcpy(f + EM__DATA_HDR, "abc", 3);
    uint8_t kind, flags;
    uint64_t id;
    em_slice body;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em__data_parse((em_slice){f, sizeof f}, &kind, &flags, &id, &body, &err), 0);
    cr_assert_eq(kind, EM__DATA_SEGMENT);
    cr_assert_eq(flags, 1);
    cr_assert_eq(id, 0x0102030405060708ull);
    cr_assert_eq(body.n, 3);
    cr_assert_eq(memcmp(body.p, "abc", 3), 0);
    cr_assert_eq(em__data_parse((em_slice){f, 9}, &kind, &flags, &id, &body, &err), EM_EPROTO);
    f[0] = 9;
    cr_assert_eq(em__data_parse((em_slice){f, sizeof f}, &kind, &flags, &id, &body, &err),
                 EM_EPROTO);
    f[0] = EM__DATA_STAGE;
    f[1] = 2;
    cr_assert_eq(em__data_parse((em_slice){f, sizeof f}, &kind, &flags, &id, &body, &err),
                 EM_EPROTO);
}
