/* engine/executor/proto.c - the driver-executor protocol messages <-> JSON, DATA frame
 * headers, task results. docs/cluster.md lists every message and field.
 *
 * DECODING takes untrusted bytes: the object must carry exactly the fields its type needs
 * with the right JSON types and ranges (unknown extra fields are ignored so that a newer
 * peer can add optional ones); strings have length caps; arrays have size caps. Errors are
 * EM_EPROTO "message '<type>': field '<name>': <why>". */
#include <jansson.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

#include "engine/executor/protocol.h"
#include "engine/net/net.h"

#define MAX_INT ((uint64_t)INT64_MAX)
#define MAX_SIZES EM_SHUFFLE_MAX_PARTS
#define MAX_ACC 65536u
#define MAX_SRCS (1u << 20)

static const char *const type_names[] = {
    [EM__MSG_REGISTER] = "register",       [EM__MSG_REGISTERED] = "registered",
    [EM__MSG_LAUNCH] = "launch",           [EM__MSG_STATUS] = "status",
    [EM__MSG_BLOCK] = "block",             [EM__MSG_BLOCK_REPLY] = "block_reply",
    [EM__MSG_MAP_OUTPUTS] = "map_outputs", [EM__MSG_MAP_OUTPUTS_REPLY] = "map_outputs_reply",
    [EM__MSG_FETCH] = "fetch",             [EM__MSG_FETCH_ERROR] = "fetch_error",
    [EM__MSG_DROP] = "drop",               [EM__MSG_REMOVE_SHUFFLE] = "remove_shuffle",
    [EM__MSG_KILL] = "kill",
    [EM__MSG_BCAST] = "bcast",
};
#define NTYPES (sizeof type_names / sizeof type_names[0])

/* The task metrics travel as the status's "metrics" array, in this order (docs/cluster.md).
 * The table names each position, so neither end indexes the numbers by hand. */
static const size_t metric_off[] = {
    offsetof(em_task_metrics, records_read),       offsetof(em_task_metrics, records_written),
    offsetof(em_task_metrics, shuffle_read_bytes), offsetof(em_task_metrics, shuffle_write_bytes),
    offsetof(em_task_metrics, spill_bytes),        offsetof(em_task_metrics, spill_count),
    offsetof(em_task_metrics, run_ns),
};
#define NMETRICS (sizeof metric_off / sizeof metric_off[0])
_Static_assert(NMETRICS * sizeof(uint64_t) == sizeof(em_task_metrics),
               "every em_task_metrics field has a place on the wire");

static uint64_t *metric_at(em_task_metrics *m, size_t i)
{
    return (uint64_t *)((char *)m + metric_off[i]);
}

void em__msg_destroy(em__msg *m)
{
    if (!m)
        return;
    em_free(m->library);
    em_task_result_destroy(&m->res);
    em_free(m->srcs);
    for (uint32_t i = 0; i < m->nlocs; i++)
        em_free(m->locs[i]);
    em_free(m->locs);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- DATA headers */

void em__data_hdr(uint8_t out[EM__DATA_HDR], uint8_t kind, uint8_t flags, uint64_t id)
{
    out[0] = kind;
    out[1] = flags;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(id >> (8 * i));
}

int em__data_parse(em_slice f, uint8_t *kind, uint8_t *flags, uint64_t *id, em_slice *body,
                   em_err *err)
{
    if (f.n < EM__DATA_HDR)
        return em_err_set(err, EM_EPROTO, "DATA frame of %zu bytes: shorter than its header",
                          f.n);
    if (f.p[0] < EM__DATA_RESULT || f.p[0] > EM__DATA_KIND_MAX)
        return em_err_set(err, EM_EPROTO, "DATA frame: unknown kind %u", f.p[0]);
    if (f.p[1] & ~1u)
        return em_err_set(err, EM_EPROTO, "DATA frame: unknown flags 0x%x", f.p[1]);
    *kind = f.p[0];
    *flags = f.p[1];
    *id = em_load_le64(f.p + 2);
    *body = (em_slice){f.p + EM__DATA_HDR, f.n - EM__DATA_HDR};
    return 0;
}

int em__bpush_decode(em_slice body, bool sealed, em_batch **out, em_err *err)
{
    *out = NULL;
    uint64_t total = body.n >= EM__PIECE_HDR ? em_load_le64(body.p) : 0;
    int rc = 0;
    if (body.n < EM__PIECE_HDR)
        rc = em_err_set(err, EM_EPROTO, "%zu bytes: shorter than a piece header", body.n);
    else if (total > EM__BPUSH_MAX || em_load_le32(body.p + 12) != 0 ||
             body.n - EM__PIECE_HDR != total)
        rc = em_err_set(err, EM_EPROTO, "not one piece holding a whole value of at most %zu "
                        "bytes (%llu bytes, %zu in the frame)", EM__BPUSH_MAX,
                        (unsigned long long)total, body.n - EM__PIECE_HDR);
    /* A BPUSH body is a plain PIECE body on every link (never pre-sealed): on a sealed link
     * the frame's own tag proved its bytes. */
    em__bcast_asm a = {.link_proved = sealed};
    if (rc == 0)
        rc = em__bcast_asm_add(&a, body, err);   /* piece size and checksum checks */
    if (rc == 0 && !em__bcast_asm_done(&a))
        rc = em_err_set(err, EM_EPROTO, "more than one piece");
    if (rc == 0 && !(*out = em__bcast_asm_finish(&a)))
        rc = em_err_set(err, EM_ENOMEM, "%llu bytes: out of memory", (unsigned long long)total);
    em__bcast_asm_destroy(&a);
    return rc < 0 ? em_err_prefix(err, "pushed broadcast") : 0;
}

/* ---------------------------------------------------------------- encoding */

static json_t *enc_result(const em_task_result *r, uint32_t nbatches, uint64_t store_bytes)
{
    json_t *o = json_object();
    json_object_set_new(o, "code", json_integer(r->code));
    json_object_set_new(o, "msg", json_string(r->code ? r->err.msg : ""));
    json_object_set_new(o, "fetch_failed", json_boolean(r->fetch_failed));
    json_object_set_new(o, "fshuffle", json_integer(r->failed_shuffle));
    json_object_set_new(o, "fmap", json_integer(r->failed_map));
    json_object_set_new(o, "count", json_integer((json_int_t)(r->count & MAX_INT)));
    json_object_set_new(o, "nbatches", json_integer(nbatches));
    json_t *mt = json_array();
    em_task_metrics mv = r->metrics;
    for (size_t i = 0; i < NMETRICS; i++)
        json_array_append_new(mt, json_integer((json_int_t)(*metric_at(&mv, i) & MAX_INT)));
    json_object_set_new(o, "metrics", mt);
    json_t *acc = json_array();
    for (uint32_t i = 0; i < r->nacc; i++) {
        const em_acc_update *a = &r->acc[i];
        json_array_append_new(acc, a->is_f64 ? json_pack("[i,i,f]", (int)a->id, 1, a->f64)
                                             : json_pack("[i,i,I]", (int)a->id, 0,
                                                         (json_int_t)a->i64));
    }
    json_object_set_new(o, "acc", acc);
    if (store_bytes)
        json_object_set_new(o, "store_bytes", json_integer((json_int_t)(store_bytes & MAX_INT)));
    if (r->is_map && r->code == 0) {
        const em_map_status *s = &r->map_status;
        json_t *sz = json_array();
        for (uint32_t i = 0; i < s->nparts; i++)
            json_array_append_new(sz, json_integer((json_int_t)(s->sizes[i] & MAX_INT)));
        json_t *m = json_pack("{s:i,s:i,s:o,s:I,s:I,s:I,s:I}", "sid", (int)s->shuffle_id, "mid",
                              (int)s->map_id, "sizes", sz, "records",
                              (json_int_t)(s->records_written & MAX_INT), "bytes",
                              (json_int_t)(s->bytes_written & MAX_INT), "spill_count",
                              (json_int_t)(s->spill_count & MAX_INT), "spill_bytes",
                              (json_int_t)(s->spill_bytes & MAX_INT));
        json_object_set_new(o, "map", m);
    }
    return o;
}

static json_t *enc_body(const em__msg *m)
{
    switch (m->type) {
    case EM__MSG_REGISTER:
        return json_pack("{s:s,s:i,s:i,s:s,s:i}", "exec_id", m->exec_id, "cores", (int)m->cores,
                         "pid", (int)m->pid, "host", m->host, "port", (int)m->port);
    case EM__MSG_REGISTERED:
        return m->library
                   ? json_pack("{s:s,s:s,s:i,s:I,s:i,s:b,s:i}", "library", m->library,
                               "sha256", m->sha256, "storage_permille",
                               (int)m->storage_permille, "shuffle_memory",
                               (json_int_t)m->shuffle_mem, "compress", (int)m->compress,
                               "shuffle_sync", m->shuffle_sync, "zstd_level",
                               (int)m->zstd_level)
                   : json_pack("{s:n,s:n,s:i,s:I,s:i,s:b,s:i}", "library", "sha256",
                               "storage_permille", (int)m->storage_permille, "shuffle_memory",
                               (json_int_t)m->shuffle_mem, "compress", (int)m->compress,
                               "shuffle_sync", m->shuffle_sync, "zstd_level",
                               (int)m->zstd_level);
    case EM__MSG_LAUNCH:
        return json_pack("{s:i,s:i,s:i,s:b}", "stage", (int)m->stage, "part", (int)m->part,
                         "attempt", (int)m->attempt, "map", m->is_map);
    case EM__MSG_STATUS:
        return enc_result(&m->res, m->nbatches, m->store_bytes);
    case EM__MSG_BLOCK:
        return json_pack("{s:i,s:I,s:I,s:I}", "btype", (int)m->block.type, "a",
                         (json_int_t)m->block.a, "b", (json_int_t)m->block.b, "c",
                         (json_int_t)m->block.c);
    case EM__MSG_BLOCK_REPLY:
        return json_pack("{s:i,s:s,s:b,s:i}", "code", m->code, "msg", m->err.msg, "found",
                         m->found, "nbatches", (int)m->nbatches);
    case EM__MSG_MAP_OUTPUTS:
        return json_pack("{s:i,s:i}", "sid", (int)m->sid, "reduce", (int)m->reduce);
    case EM__MSG_MAP_OUTPUTS_REPLY: {
        json_t *locs = json_array(), *srcs = json_array();
        for (uint32_t i = 0; i < m->nlocs; i++)
            json_array_append_new(locs, json_string(m->locs[i]));
        for (uint32_t i = 0; i < m->nsrcs; i++) {
            uint32_t li = 0;
            for (uint32_t k = 0; k < m->nlocs; k++)
                if (m->srcs[i].loc == m->locs[k] || strcmp(m->srcs[i].loc, m->locs[k]) == 0) {
                    li = k;
                    break;
                }
            json_array_append_new(srcs, json_pack("[i,I,i]", (int)m->srcs[i].map_id,
                                                  (json_int_t)(m->srcs[i].size & MAX_INT),
                                                  (int)li));
        }
        return json_pack("{s:i,s:s,s:o,s:o}", "code", m->code, "msg", m->err.msg, "locs", locs,
                         "srcs", srcs);
    }
    case EM__MSG_FETCH:
        return json_pack("{s:i,s:i,s:i}", "sid", (int)m->sid, "mid", (int)m->mid, "reduce",
                         (int)m->reduce);
    case EM__MSG_FETCH_ERROR:
        return json_pack("{s:i,s:s}", "code", m->code, "msg", m->err.msg);
    case EM__MSG_DROP:
        return json_pack("{s:i,s:I}", "btype", (int)m->block.type, "a", (json_int_t)m->block.a);
    case EM__MSG_REMOVE_SHUFFLE:
        return json_pack("{s:I}", "sid", (json_int_t)m->sid);
    case EM__MSG_KILL:
        return json_object();   /* the task id is the message id */
    case EM__MSG_BCAST:
        return json_pack("{s:I,s:I,s:I}", "bcast", (json_int_t)m->block.a, "first",
                         (json_int_t)m->first, "count", (json_int_t)m->count);
    default:
        return NULL;
    }
}

int em__msg_encode(const em__msg *m, em_vbuf *out, em_err *err)
{
    if (m->type < 1 || (size_t)m->type >= NTYPES)
        return em_err_set(err, EM_EINVAL, "message: unknown type %d", m->type);
    json_t *o = enc_body(m);
    if (!o)
        return em_err_set(err, EM_ENOMEM, "message '%s': encoding", type_names[m->type]);
    json_object_set_new(o, "t", json_string(type_names[m->type]));
    if (m->type != EM__MSG_REGISTER && m->type != EM__MSG_REGISTERED)
        json_object_set_new(o, "id", json_integer((json_int_t)(m->id & MAX_INT)));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return em_err_set(err, EM_ENOMEM, "message '%s': encoding", type_names[m->type]);
    int rc = em_vbuf_append(out, s, strlen(s));
    free(s);
    return rc < 0 ? em_err_set(err, EM_ENOMEM, "message '%s': encoding", type_names[m->type])
                  : 0;
}

/* ---------------------------------------------------------------- decoding */

typedef struct dctx {
    const char *type;
    em_err *err;
} dctx;

static int bad(dctx *d, const char *field, const char *why)
{
    return em_err_set(d->err, EM_EPROTO, "message '%s': field '%s': %s", d->type, field, why);
}

static int get_int(dctx *d, json_t *o, const char *k, int64_t lo, int64_t hi, int64_t *out)
{
    json_t *v = json_object_get(o, k);
    if (!v)
        return bad(d, k, "missing");
    if (!json_is_integer(v))
        return bad(d, k, "not an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return bad(d, k, "out of range");
    *out = x;
    return 0;
}

static int get_u32(dctx *d, json_t *o, const char *k, uint32_t hi, uint32_t *out)
{
    int64_t x = 0;
    int rc = get_int(d, o, k, 0, hi, &x);
    if (rc == 0)
        *out = (uint32_t)x;
    return rc;
}

static int get_u64(dctx *d, json_t *o, const char *k, uint64_t *out)
{
    int64_t x = 0;
    int rc = get_int(d, o, k, 0, INT64_MAX, &x);
    if (rc == 0)
        *out = (uint64_t)x;
    return rc;
}

static int get_bool(dctx *d, json_t *o, const char *k, bool *out)
{
    json_t *v = json_object_get(o, k);
    if (!v)
        return bad(d, k, "missing");
    if (!json_is_boolean(v))
        return bad(d, k, "not a boolean");
    *out = json_is_true(v);
    return 0;
}

/* A string of 0..cap bytes without NUL into buf (cap + 1 bytes). */
static int get_str(dctx *d, json_t *o, const char *k, size_t minlen, size_t cap, char *buf)
{
    json_t *v = json_object_get(o, k);
    if (!v)
        return bad(d, k, "missing");
    if (!json_is_string(v))
        return bad(d, k, "not a string");
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n < minlen || n > cap)
        return bad(d, k, "bad length");
    if (memchr(s, '\0', n))
        return bad(d, k, "contains a NUL byte");
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

static int get_code_msg(dctx *d, json_t *o, int *code, em_err *e)
{
    int64_t c;
    int rc = get_int(d, o, "code", -1000, 0, &c);
    if (rc == 0)
        rc = get_str(d, o, "msg", 0, EM_ERR_MSG_MAX - 1, e->msg);
    if (rc == 0) {
        *code = (int)c;
        e->code = (int)c;
        if (c == 0)
            e->msg[0] = '\0';
        else if (!e->msg[0])
            snprintf(e->msg, sizeof e->msg, "remote error %d", (int)c);
    }
    return rc;
}

static int dec_map_status(dctx *d, json_t *m, em_map_status *s)
{
    int rc;
    if (!json_is_object(m))
        return bad(d, "map", "not an object");
    if ((rc = get_u32(d, m, "sid", UINT32_MAX, &s->shuffle_id)) ||
        (rc = get_u32(d, m, "mid", UINT32_MAX, &s->map_id)) ||
        (rc = get_u64(d, m, "records", &s->records_written)) ||
        (rc = get_u64(d, m, "bytes", &s->bytes_written)) ||
        (rc = get_u64(d, m, "spill_count", &s->spill_count)) ||
        (rc = get_u64(d, m, "spill_bytes", &s->spill_bytes)))
        return rc;
    json_t *sz = json_object_get(m, "sizes");
    if (!json_is_array(sz))
        return bad(d, "map.sizes", "not an array");
    size_t n = json_array_size(sz);
    if (n == 0 || n > MAX_SIZES)
        return bad(d, "map.sizes", "bad length");
    if (!(s->sizes = em_malloc(n * sizeof *s->sizes)))
        return em_err_set(d->err, EM_ENOMEM, "message '%s': %zu sizes", d->type, n);
    s->nparts = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(sz, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return bad(d, "map.sizes", "not a non-negative integer");
        s->sizes[i] = (uint64_t)json_integer_value(v);
    }
    return 0;
}

static int dec_acc(dctx *d, json_t *a, em_task_result *r)
{
    if (!json_is_array(a))
        return bad(d, "acc", "not an array");
    size_t n = json_array_size(a);
    if (n > MAX_ACC)
        return bad(d, "acc", "too many updates");
    if (n && !(r->acc = em_calloc(n, sizeof *r->acc)))
        return em_err_set(d->err, EM_ENOMEM, "message '%s': %zu updates", d->type, n);
    for (size_t i = 0; i < n; i++) {
        json_t *u = json_array_get(a, i);
        json_t *id = json_array_get(u, 0), *kind = json_array_get(u, 1), *v = json_array_get(u, 2);
        if (!json_is_array(u) || json_array_size(u) != 3 || !json_is_integer(id) ||
            json_integer_value(id) < 1 || json_integer_value(id) > UINT32_MAX ||
            !json_is_integer(kind) || (json_integer_value(kind) & ~(json_int_t)1))
            return bad(d, "acc", "not an [id, kind, value] triple");
        em_acc_update *x = &r->acc[i];
        x->id = (uint32_t)json_integer_value(id);
        x->is_f64 = json_integer_value(kind) == 1;
        if (x->is_f64 && json_is_number(v))
            x->f64 = json_number_value(v);
        else if (!x->is_f64 && json_is_integer(v))
            x->i64 = json_integer_value(v);
        else
            return bad(d, "acc", "value of the wrong type");
        r->nacc = (uint32_t)i + 1;
    }
    return 0;
}

static int dec_status(dctx *d, json_t *o, em__msg *m)
{
    em_task_result *r = &m->res;
    int rc;
    if ((rc = get_code_msg(d, o, &r->code, &r->err)) || (rc = get_bool(d, o, "fetch_failed",
                                                                        &r->fetch_failed)) ||
        (rc = get_u32(d, o, "fshuffle", UINT32_MAX, &r->failed_shuffle)) ||
        (rc = get_u32(d, o, "fmap", UINT32_MAX, &r->failed_map)) ||
        (rc = get_u64(d, o, "count", &r->count)) ||
        (rc = get_u32(d, o, "nbatches", 1u << 24, &m->nbatches)))
        return rc;
    if (r->fetch_failed && r->code != EM_EFETCH)
        return bad(d, "fetch_failed", "set on a code other than EM_EFETCH");
    json_t *mt = json_object_get(o, "metrics");
    if (!json_is_array(mt) || json_array_size(mt) != NMETRICS)
        return bad(d, "metrics", "not an array of 7 integers");
    for (size_t i = 0; i < NMETRICS; i++) {
        json_t *v = json_array_get(mt, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return bad(d, "metrics", "not an array of 7 integers");
        *metric_at(&r->metrics, i) = (uint64_t)json_integer_value(v);
    }
    if ((rc = dec_acc(d, json_object_get(o, "acc"), r)))
        return rc;
    if (json_object_get(o, "store_bytes") &&
        (rc = get_u64(d, o, "store_bytes", &m->store_bytes)))
        return rc;
    json_t *map = json_object_get(o, "map");
    if (map) {
        if (r->code != 0)
            return bad(d, "map", "present on a failed task");
        r->is_map = true;
        if ((rc = dec_map_status(d, map, &r->map_status)))
            return rc;
    }
    return 0;
}

static int dec_registered(dctx *d, json_t *o, em__msg *m)
{
    json_t *lib = json_object_get(o, "library"), *sha = json_object_get(o, "sha256");
    int rc;
    if (!lib || !sha)
        return bad(d, lib ? "sha256" : "library", "missing");
    if ((rc = get_u32(d, o, "storage_permille", 1000, &m->storage_permille)) ||
        (rc = get_u64(d, o, "shuffle_memory", &m->shuffle_mem)) ||
        (rc = get_u32(d, o, "compress", EM__WIRE_NEVER, &m->compress)))
        return rc;
    /* Optional (absent = false), so a message without it stays valid. */
    if (json_object_get(o, "shuffle_sync") && (rc = get_bool(d, o, "shuffle_sync",
                                                             &m->shuffle_sync)))
        return rc;
    int64_t level = 1;   /* optional too (absent or 0 = 1) */
    if (json_object_get(o, "zstd_level") &&
        (rc = get_int(d, o, "zstd_level", EM_ZSTD_LEVEL_MIN, EM_ZSTD_LEVEL_MAX, &level)))
        return rc;
    m->zstd_level = level ? (int32_t)level : 1;
    if (json_is_null(lib) && json_is_null(sha))
        return 0;
    char tmp[4097];
    if ((rc = get_str(d, o, "library", 1, 4096, tmp)) || (rc = get_str(d, o, "sha256", 64, 64,
                                                                        m->sha256)))
        return rc;
    for (int i = 0; i < 64; i++)
        if (!((m->sha256[i] >= '0' && m->sha256[i] <= '9') ||
              (m->sha256[i] >= 'a' && m->sha256[i] <= 'f')))
            return bad(d, "sha256", "not 64 lowercase hex digits");
    m->library = em_xstrdup(tmp);
    return 0;
}

static int dec_map_reply(dctx *d, json_t *o, em__msg *m)
{
    int rc = get_code_msg(d, o, &m->code, &m->err);
    if (rc)
        return rc;
    json_t *locs = json_object_get(o, "locs"), *srcs = json_object_get(o, "srcs");
    if (!json_is_array(locs) || json_array_size(locs) > 4096)
        return bad(d, "locs", "not an array of at most 4096 strings");
    if (!json_is_array(srcs) || json_array_size(srcs) > MAX_SRCS)
        return bad(d, "srcs", "not an array");
    size_t nl = json_array_size(locs), ns = json_array_size(srcs);
    if (ns && !nl)
        return bad(d, "locs", "empty while srcs is not");
    m->locs = em_xcalloc(nl ? nl : 1, sizeof *m->locs);
    for (size_t i = 0; i < nl; i++) {
        json_t *s = json_array_get(locs, i);
        if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > 127 ||
            memchr(json_string_value(s), '\0', json_string_length(s)))
            return bad(d, "locs", "not a string of 1..127 bytes");
        m->locs[i] = em_xstrdup(json_string_value(s));
        m->nlocs = (uint32_t)i + 1;
    }
    if (!(m->srcs = em_calloc(ns ? ns : 1, sizeof *m->srcs)))
        return em_err_set(d->err, EM_ENOMEM, "message '%s': %zu sources", d->type, ns);
    for (size_t i = 0; i < ns; i++) {
        json_t *s = json_array_get(srcs, i);
        json_t *mid = json_array_get(s, 0), *sz = json_array_get(s, 1), *li = json_array_get(s, 2);
        if (!json_is_array(s) || json_array_size(s) != 3 || !json_is_integer(mid) ||
            !json_is_integer(sz) || !json_is_integer(li) || json_integer_value(mid) < 0 ||
            json_integer_value(mid) > UINT32_MAX || json_integer_value(sz) < 0 ||
            json_integer_value(li) < 0 || json_integer_value(li) >= (json_int_t)nl)
            return bad(d, "srcs", "not a [map id, size, loc index] triple");
        m->srcs[i] = (em_shuffle_src){(uint32_t)json_integer_value(mid),
                                      m->locs[json_integer_value(li)],
                                      (uint64_t)json_integer_value(sz)};
        m->nsrcs = (uint32_t)i + 1;
    }
    return 0;
}

static int dec_body(dctx *d, json_t *o, em__msg *m)
{
    int rc = 0;
    int64_t x = 0;
    switch (m->type) {
    case EM__MSG_REGISTER:
        if ((rc = get_str(d, o, "exec_id", 1, EM__MAX_NAME, m->exec_id)) ||
            (rc = get_u32(d, o, "cores", 1024, &m->cores)) ||
            (rc = get_u32(d, o, "pid", INT32_MAX, &m->pid)) ||
            (rc = get_str(d, o, "host", 1, EM__MAX_NAME, m->host)) ||
            (rc = get_int(d, o, "port", 1, 65535, &x)))
            return rc;
        if (m->cores == 0)
            return bad(d, "cores", "zero");
        m->port = (uint16_t)x;
        return 0;
    case EM__MSG_REGISTERED:
        return dec_registered(d, o, m);
    case EM__MSG_LAUNCH:
        if ((rc = get_u32(d, o, "stage", UINT32_MAX, &m->stage)) ||
            (rc = get_u32(d, o, "part", UINT32_MAX, &m->part)) ||
            (rc = get_u32(d, o, "attempt", UINT32_MAX, &m->attempt)))
            return rc;
        return get_bool(d, o, "map", &m->is_map);
    case EM__MSG_STATUS:
        return dec_status(d, o, m);
    case EM__MSG_BLOCK:
        if ((rc = get_u32(d, o, "btype", EM_BLOCK_TEMP, &m->block.type)) ||
            (rc = get_u32(d, o, "a", UINT32_MAX, &m->block.a)) ||
            (rc = get_u32(d, o, "b", UINT32_MAX, &m->block.b)) ||
            (rc = get_u32(d, o, "c", UINT32_MAX, &m->block.c)))
            return rc;
        return m->block.type == 0 ? bad(d, "btype", "zero") : 0;
    case EM__MSG_BLOCK_REPLY:
        if ((rc = get_code_msg(d, o, &m->code, &m->err)) || (rc = get_bool(d, o, "found",
                                                                            &m->found)))
            return rc;
        return get_u32(d, o, "nbatches", 1u << 24, &m->nbatches);
    case EM__MSG_MAP_OUTPUTS:
        if ((rc = get_u32(d, o, "sid", UINT32_MAX, &m->sid)))
            return rc;
        return get_u32(d, o, "reduce", EM_SHUFFLE_MAX_PARTS - 1, &m->reduce);
    case EM__MSG_MAP_OUTPUTS_REPLY:
        return dec_map_reply(d, o, m);
    case EM__MSG_FETCH:
        if ((rc = get_u32(d, o, "sid", UINT32_MAX, &m->sid)) ||
            (rc = get_u32(d, o, "mid", UINT32_MAX, &m->mid)))
            return rc;
        return get_u32(d, o, "reduce", EM_SHUFFLE_MAX_PARTS - 1, &m->reduce);
    case EM__MSG_FETCH_ERROR:
        return get_code_msg(d, o, &m->code, &m->err);
    case EM__MSG_DROP:
        if ((rc = get_u32(d, o, "btype", EM_BLOCK_TEMP, &m->block.type)) ||
            (rc = get_u32(d, o, "a", UINT32_MAX, &m->block.a)))
            return rc;
        return m->block.type == 0 ? bad(d, "btype", "zero") : 0;
    case EM__MSG_REMOVE_SHUFFLE:
        return get_u32(d, o, "sid", UINT32_MAX, &m->sid);
    case EM__MSG_KILL:
        return 0;   /* the id (checked by the caller) is all it carries */
    case EM__MSG_BCAST:
        m->block.type = EM_BLOCK_BROADCAST;
        if ((rc = get_u32(d, o, "bcast", UINT32_MAX, &m->block.a)) ||
            (rc = get_u32(d, o, "first", UINT32_MAX, &m->first)))
            return rc;
        if ((rc = get_u32(d, o, "count", 1024, &m->count)))
            return rc;
        return m->count == 0 ? bad(d, "count", "zero") : 0;
    }
    return bad(d, "t", "unknown type");
}

int em__msg_decode(const uint8_t *p, size_t n, em__msg *m, em_err *err)
{
    memset(m, 0, sizeof *m);
    json_error_t je;
    json_t *o = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return em_err_set(err, EM_EPROTO, "message: bad JSON at byte %d: %s", je.position,
                          je.text);
    dctx d = {"?", err};
    int rc;
    if (!json_is_object(o)) {
        rc = bad(&d, "(root)", "not an object");
        goto out;
    }
    json_t *t = json_object_get(o, "t");
    if (!json_is_string(t)) {
        rc = bad(&d, "t", "missing or not a string");
        goto out;
    }
    for (size_t i = 1; i < NTYPES; i++)
        if (strcmp(json_string_value(t), type_names[i]) == 0)
            m->type = (int)i;
    if (m->type == 0) {
        rc = bad(&d, "t", "unknown type");
        goto out;
    }
    d.type = type_names[m->type];
    if (m->type != EM__MSG_REGISTER && m->type != EM__MSG_REGISTERED &&
        (rc = get_u64(&d, o, "id", &m->id)))
        goto out;
    rc = dec_body(&d, o, m);
out:
    json_decref(o);
    return rc;
}

/* ---------------------------------------------------------------- secrets, hashes */

int em__read_secret_file(const char *path, char **out, em_err *err)
{
    uint8_t *buf;
    size_t n;
    int rc = em_read_file(path, &buf, &n, err);
    if (rc < 0)
        return em_err_prefix(err, "secret file");
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n < 16 || memchr(buf, '\0', n)) {
        em_free(buf);
        return em_err_set(err, EM_EINVAL, "secret file %s: needs at least 16 bytes of text",
                          path);
    }
    char *s = em_xmalloc(n + 1);
    memcpy(s, buf, n);
    s[n] = '\0';
    em_free(buf);
    *out = s;
    return 0;
}

int em_executor_file_sha256(const char *path, char hex[65], em_err *err)
{
    uint8_t *buf;
    size_t n;
    int rc = em_read_file(path, &buf, &n, err);
    if (rc < 0)
        return rc;
    uint8_t h[EM_SHA256_LEN];
    em_sha256(buf, n, h);
    em_free(buf);
    for (int i = 0; i < EM_SHA256_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    return 0;
}
