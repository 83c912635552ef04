/* engine/plan/json.c - stage plans <-> JSON (jansson). Format: docs/plan-json.md.
 *
 * ENCODING collects the nodes reachable from the root without crossing a SHUFFLED node
 * (a SHUFFLED node is written as a leaf, without parents, unless it is the root of a map
 * stage), sorted by id, so the same stage always gives the same string.
 *
 * DECODING takes untrusted text (an executor process gets it from the network): every field
 * is type- and range-checked, parent ids must exist and form a DAG, arrays must have the
 * lengths their op implies, and every function name is resolved (EM_EPLAN otherwise).
 * Errors name the node id and the field: "plan node 4 (map): field 'fn': ...". */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/plan/plan_int.h"

#define MAX_NODES (1u << 16)
#define MAX_PARTS (1u << 20)
#define KNOWN_FLAGS 0xfffu

/* ---------------------------------------------------------------- encoding */

typedef struct node_set {
    const em_plan_node **v;
    size_t n, cap;
} node_set;

static bool set_has(const node_set *s, const em_plan_node *n)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i] == n)
            return true;
    return false;
}

static void collect(node_set *s, const em_plan_node *n, const em_plan_node *root, bool map_side)
{
    if (set_has(s, n))
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = em_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = n;
    if (n->op == EM_OP_SHUFFLED && !(map_side && n == root))
        return;
    for (uint32_t i = 0; i < n->nparents; i++)
        collect(s, n->parents[i], root, map_side);
}

static int cmp_node_id(const void *a, const void *b)
{
    uint32_t x = (*(const em_plan_node *const *)a)->id;
    uint32_t y = (*(const em_plan_node *const *)b)->id;
    return x < y ? -1 : x > y;
}

/* Sets obj[key] = base64(p, n); false on OOM. */
static bool set_b64(json_t *obj, const char *key, const uint8_t *p, size_t n)
{
    char *s = em_base64_encode(p, n);
    if (!s)
        return false;
    int rc = json_object_set_new(obj, key, json_string(s));
    em_free(s);
    return rc == 0;
}

static char *u64_str(uint64_t v, char buf[24])
{
    snprintf(buf, 24, "%llu", (unsigned long long)v);
    return buf;
}

static bool enc_part(json_t *o, const em_part_spec *ps)
{
    if (ps->kind == EM_PART_NONE)
        return true;
    json_t *p = json_pack("{s:i,s:I,s:b}", "kind", (int)ps->kind, "nparts",
                          (json_int_t)ps->nparts, "descending", ps->descending);
    json_t *b = json_array();
    bool ok = p && b;
    for (uint32_t i = 0; ok && i < ps->nbounds; i++) {
        char *s = em_base64_encode(ps->bounds[i].p, ps->bounds[i].n);
        ok = s && json_array_append_new(b, json_string(s)) == 0;
        em_free(s);
    }
    if (ok)
        ok = json_object_set_new(p, "bounds", b) == 0;
    else
        json_decref(b);
    return ok && json_object_set_new(o, "part", p) == 0;
}

static bool enc_fns(json_t *o, const em_plan_node *n)
{
    bool ok = true;
    if (n->fn)
        ok = ok && json_object_set_new(o, "fn", json_string(n->fn)) == 0;
    if (n->fn_create)
        ok = ok && json_object_set_new(o, "fn_create", json_string(n->fn_create)) == 0;
    if (n->fn_merge)
        ok = ok && json_object_set_new(o, "fn_merge", json_string(n->fn_merge)) == 0;
    if (n->blob_len)
        ok = ok && set_b64(o, "blob", n->blob, n->blob_len);
    if (n->zero)
        ok = ok && set_b64(o, "zero", n->zero, n->zero_len);
    if (n->flags & EM_NODE_ACC)
        ok = ok && json_object_set_new(o, "acc_size", json_integer(n->acc_size)) == 0;
    return ok;
}

/* Sets obj[key] = a when a holds `expect` items (else drops a: an append failed). */
static bool set_arr(json_t *o, const char *key, json_t *a, size_t expect)
{
    if (!a)
        return false;
    if (json_array_size(a) != expect) {
        json_decref(a);
        return false;
    }
    return json_object_set_new(o, key, a) == 0;
}

static bool enc_op_fields(json_t *o, const em_plan_node *n)
{
    char buf[24];
    json_t *a;
    switch (n->op) {
    case EM_OP_SHUFFLED:
        return json_object_set_new(o, "shuffle_id", json_integer(n->shuffle_id)) == 0 &&
               json_object_set_new(o, "map_part", json_integer(n->map_part)) == 0 &&
               json_object_set_new(o, "mode", json_integer(n->mode)) == 0 &&
               json_object_set_new(o, "seed", json_string(u64_str(n->seed, buf))) == 0;
    case EM_OP_LOCAL_REDUCE:
        return json_object_set_new(o, "mode", json_integer(n->mode)) == 0;
    case EM_OP_RANGE:
        return json_object_set_new(o, "range", json_pack("[I,I,I]", (json_int_t)n->range_start,
                                                         (json_int_t)n->range_end,
                                                         (json_int_t)n->range_step)) == 0;
    case EM_OP_CHECKPOINT_WRITE:
    case EM_OP_CHECKPOINT_FILE:
        if (json_object_set_new(o, "ckpt_rdd", json_integer(n->ckpt_rdd)) != 0)
            return false;
        /* fallthrough */
    case EM_OP_TEXT_FILE:
    case EM_OP_WHOLE_TEXT_FILES:
        a = json_array();
        for (uint32_t i = 0; a && i < n->nsplits; i++) {
            const em_split *s = &n->splits[i];
            char lb[24];
            if (json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:I}", "path", s->path,
                                                   "start", u64_str(s->start, buf), "len",
                                                   u64_str(s->len, lb), "part",
                                                   (json_int_t)s->part)) < 0)
                break;
        }
        return set_arr(o, "splits", a, n->nsplits);
    case EM_OP_SAMPLE:
        return json_object_set_new(o, "sample", json_pack("{s:f,s:b}", "fraction",
                                                          n->sample_fraction,
                                                          "with_replacement",
                                                          n->sample_with_replacement)) == 0 &&
               json_object_set_new(o, "seed", json_string(u64_str(n->seed, buf))) == 0;
    case EM_OP_ZIP_WITH_INDEX:
        a = json_array();
        for (uint32_t i = 0; a && i < n->nparts && n->zip_starts; i++)
            json_array_append_new(a, json_string(u64_str(n->zip_starts[i], buf)));
        return set_arr(o, "zip_starts", a, n->zip_starts ? n->nparts : 0);
    case EM_OP_COALESCE:
        a = json_array();
        for (uint32_t i = 0; a && i <= n->nparts && n->coalesce_starts; i++)
            json_array_append_new(a, json_integer(n->coalesce_starts[i]));
        return set_arr(o, "coalesce_starts", a, n->coalesce_starts ? n->nparts + 1u : 0);
    case EM_OP_TAG:
        return json_object_set_new(o, "tag", json_integer(n->tag)) == 0;
    default:
        return true;
    }
}

static json_t *enc_node(const em_plan_node *n, bool leaf)
{
    json_t *o = json_pack("{s:I,s:s,s:I,s:I,s:I,s:b,s:i}", "id", (json_int_t)n->id, "op",
                          em_op_name(n->op), "flags", (json_int_t)n->flags, "nparts",
                          (json_int_t)n->nparts, "width", (json_int_t)n->width, "is_kv",
                          n->is_kv, "level", (int)n->level);
    if (!o)
        return NULL;
    json_t *ps = json_array();
    bool ok = ps != NULL;
    for (uint32_t i = 0; ok && !leaf && i < n->nparents; i++)
        ok = json_array_append_new(ps, json_integer(n->parents[i]->id)) == 0;
    ok = ok && json_object_set_new(o, "parents", ps) == 0;
    if (!ok && ps)
        json_decref(ps);
    ok = ok && (!n->name || json_object_set_new(o, "name", json_string(n->name)) == 0);
    ok = ok && enc_part(o, &n->part) && enc_fns(o, n) && enc_op_fields(o, n);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *em_plan_to_json_value(const em_plan_node *root, bool map_side, em_err *err)
{
    node_set s = {0};
    if (map_side && root->op != EM_OP_SHUFFLED) {
        em_err_set(err, EM_EPLAN, "plan node %u (%s): a map stage's root must be shuffled",
                   root->id, em_op_name(root->op));
        return NULL;
    }
    collect(&s, root, root, map_side);
    qsort(s.v, s.n, sizeof *s.v, cmp_node_id);
    json_t *nodes = json_array();
    json_t *doc = json_pack("{s:i,s:I}", "version", 1, "root", (json_int_t)root->id);
    bool ok = nodes && doc;
    for (size_t i = 0; ok && i < s.n; i++) {
        bool leaf = s.v[i]->op == EM_OP_SHUFFLED && !(map_side && s.v[i] == root);
        json_t *o = enc_node(s.v[i], leaf);
        ok = o && json_array_append_new(nodes, o) == 0;
    }
    em_free(s.v);
    if (ok && json_object_set_new(doc, "nodes", nodes) == 0)
        return doc;
    if (!ok)
        json_decref(nodes);
    json_decref(doc);
    em_err_set(err, EM_ENOMEM, "plan to JSON: out of memory");
    return NULL;
}

char *em_plan_to_json(const em_plan_node *root, bool map_side, em_err *err)
{
    json_t *doc = em_plan_to_json_value(root, map_side, err);
    if (!doc)
        return NULL;
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!s) {
        em_err_set(err, EM_ENOMEM, "plan to JSON: out of memory");
        return NULL;
    }
    /* json_dumps allocates with malloc; callers free with em_free. */
    char *out = em_strdup(s);
    free(s);
    if (!out)
        em_err_set(err, EM_ENOMEM, "plan to JSON: out of memory");
    return out;
}

/* ---------------------------------------------------------------- decoding */

/* Names the node and field of a decoding error. */
static int ferr(em_err *err, int code, const em_plan_node *n, const char *field,
                const char *what)
{
    return em_err_set(err, code, "plan node %u (%s): field '%s': %s", n->id,
                      em_op_name(n->op), field, what);
}

/* Reads an optional integer field in [lo, hi]; absent -> *out = def. */
static int get_int(const json_t *o, const em_plan_node *n, const char *key, bool required,
                   int64_t lo, int64_t hi, int64_t def, int64_t *out, em_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            return ferr(err, EM_ECORRUPT, n, key, "missing");
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return ferr(err, EM_ECORRUPT, n, key, "not an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return ferr(err, EM_ECORRUPT, n, key, "out of range");
    *out = x;
    return 0;
}

static int get_u32(const json_t *o, const em_plan_node *n, const char *key, bool required,
                   uint32_t lo, uint32_t hi, uint32_t *out, em_err *err)
{
    int64_t x = lo;
    int rc = get_int(o, n, key, required, lo, hi, lo, &x, err);
    if (rc == 0)
        *out = (uint32_t)x;
    return rc;
}

/* A decimal uint64 in a string (64-bit values do not survive JSON numbers everywhere). */
static int parse_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_string(v))
        return -1;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0 || len > 20)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

static int get_u64s(const json_t *o, const em_plan_node *n, const char *key, uint64_t *out,
                    em_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return ferr(err, EM_ECORRUPT, n, key, "missing");
    if (parse_u64(v, out) < 0)
        return ferr(err, EM_ECORRUPT, n, key, "not a decimal uint64 string");
    return 0;
}

/* Optional string without NUL bytes: *out = owned copy or NULL when absent. */
static int get_str(const json_t *o, const em_plan_node *n, const char *key, char **out,
                   em_err *err)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return ferr(err, EM_ECORRUPT, n, key, "not a string");
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v) || !*s)
        return ferr(err, EM_ECORRUPT, n, key, "empty or contains a NUL byte");
    if (!(*out = em_strdup(s)))
        return ferr(err, EM_ENOMEM, n, key, "out of memory");
    return 0;
}

/* Optional base64 field: *out owned (non-NULL when present, even for 0 bytes). */
static int get_b64(const json_t *v, const em_plan_node *n, const char *key, uint8_t **out,
                   size_t *len, em_err *err)
{
    if (!json_is_string(v))
        return ferr(err, EM_ECORRUPT, n, key, "not a base64 string");
    em_err e2 = EM_ERR_INIT;
    if (em_base64_decode(json_string_value(v), json_string_length(v), out, len, &e2) < 0)
        return ferr(err, e2.code, n, key, e2.msg);
    return 0;
}

static int dec_part(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *p = json_object_get(o, "part");
    if (!p)
        return 0;
    if (!json_is_object(p))
        return ferr(err, EM_ECORRUPT, n, "part", "not an object");
    uint32_t kind;
    int rc;
    if ((rc = get_u32(p, n, "kind", true, EM_PART_HASH, EM_PART_RANGE, &kind, err)) < 0 ||
        (rc = get_u32(p, n, "nparts", true, 1, MAX_PARTS, &n->part.nparts, err)) < 0)
        return em_err_prefix(err, "part");
    n->part.kind = (em_partitioner_kind)kind;
    json_t *d = json_object_get(p, "descending");
    if (d && !json_is_boolean(d))
        return ferr(err, EM_ECORRUPT, n, "part.descending", "not a boolean");
    n->part.descending = d && json_is_true(d);
    json_t *b = json_object_get(p, "bounds");
    size_t nb = b ? json_array_size(b) : 0;
    if (b && !json_is_array(b))
        return ferr(err, EM_ECORRUPT, n, "part.bounds", "not an array");
    if (kind == EM_PART_RANGE ? nb != n->part.nparts - 1 : nb != 0)
        return ferr(err, EM_EPLAN, n, "part.bounds", "wrong number of bounds");
    if (nb) {
        n->part.bounds = em_calloc(nb, sizeof *n->part.bounds);
        if (!n->part.bounds)
            return ferr(err, EM_ENOMEM, n, "part.bounds", "out of memory");
    }
    for (size_t i = 0; i < nb; i++) {
        uint8_t *bp;
        size_t bl;
        if ((rc = get_b64(json_array_get(b, i), n, "part.bounds", &bp, &bl, err)) < 0)
            return rc;
        n->part.bounds[i] = em_slice_make(bp, bl);
        n->part.nbounds = (uint32_t)i + 1;
    }
    return 0;
}

static int dec_fns(const json_t *o, em_plan_node *n, em_err *err)
{
    int rc;
    json_t *v;
    if ((rc = get_str(o, n, "fn", &n->fn, err)) < 0 ||
        (rc = get_str(o, n, "fn_create", &n->fn_create, err)) < 0 ||
        (rc = get_str(o, n, "fn_merge", &n->fn_merge, err)) < 0)
        return rc;
    if ((v = json_object_get(o, "blob")) &&
        (rc = get_b64(v, n, "blob", &n->blob, &n->blob_len, err)) < 0)
        return rc;
    if ((v = json_object_get(o, "zero")) &&
        (rc = get_b64(v, n, "zero", &n->zero, &n->zero_len, err)) < 0)
        return rc;
    if ((n->flags & EM_NODE_ACC) &&
        (rc = get_u32(o, n, "acc_size", true, 1, EM_BATCH_MAX_REC_LEN, &n->acc_size, err)) < 0)
        return rc;
    return 0;
}

static int dec_splits(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *a = json_object_get(o, "splits");
    if (!json_is_array(a))
        return ferr(err, EM_ECORRUPT, n, "splits", "missing or not an array");
    size_t ns = json_array_size(a);
    if (ns > MAX_PARTS * 16u)
        return ferr(err, EM_ECORRUPT, n, "splits", "too many splits");
    if (ns && !(n->splits = em_calloc(ns, sizeof *n->splits)))
        return ferr(err, EM_ENOMEM, n, "splits", "out of memory");
    for (size_t i = 0; i < ns; i++) {
        json_t *s = json_array_get(a, i);
        em_split *sp = &n->splits[i];
        int rc;
        if (!json_is_object(s))
            return ferr(err, EM_ECORRUPT, n, "splits", "item is not an object");
        n->nsplits = (uint32_t)i + 1;
        if ((rc = get_str(s, n, "path", &sp->path, err)) < 0)
            return rc;
        if (!sp->path)
            return ferr(err, EM_ECORRUPT, n, "splits.path", "missing");
        if ((rc = get_u64s(s, n, "start", &sp->start, err)) < 0 ||
            (rc = get_u64s(s, n, "len", &sp->len, err)) < 0 ||
            (rc = get_u32(s, n, "part", true, 0, n->nparts - 1, &sp->part, err)) < 0)
            return em_err_prefix(err, "split %zu", i);
        if (sp->start + sp->len < sp->start)
            return ferr(err, EM_ECORRUPT, n, "splits", "start + len overflows");
    }
    return 0;
}

static int dec_sample(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *s = json_object_get(o, "sample");
    json_t *f = s ? json_object_get(s, "fraction") : NULL;
    json_t *w = s ? json_object_get(s, "with_replacement") : NULL;
    if (!json_is_object(s) || !json_is_number(f) || !json_is_boolean(w))
        return ferr(err, EM_ECORRUPT, n, "sample", "needs fraction (number) and "
                    "with_replacement (boolean)");
    n->sample_fraction = json_number_value(f);
    n->sample_with_replacement = json_is_true(w);
    if (!isfinite(n->sample_fraction) || n->sample_fraction < 0 ||
        (!n->sample_with_replacement && n->sample_fraction > 1))
        return ferr(err, EM_EPLAN, n, "sample.fraction", "out of range");
    return get_u64s(o, n, "seed", &n->seed, err);
}

static int dec_range(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *a = json_object_get(o, "range");
    if (!json_is_array(a) || json_array_size(a) != 3)
        return ferr(err, EM_ECORRUPT, n, "range", "needs [start, end, step]");
    for (int i = 0; i < 3; i++)
        if (!json_is_integer(json_array_get(a, i)))
            return ferr(err, EM_ECORRUPT, n, "range", "not an integer");
    n->range_start = json_integer_value(json_array_get(a, 0));
    n->range_end = json_integer_value(json_array_get(a, 1));
    n->range_step = json_integer_value(json_array_get(a, 2));
    if (n->range_step == 0)
        return ferr(err, EM_EPLAN, n, "range", "step is 0");
    return 0;
}

static int dec_zip(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *a = json_object_get(o, "zip_starts");
    if (!json_is_array(a) || json_array_size(a) != n->nparts)
        return ferr(err, EM_ECORRUPT, n, "zip_starts", "needs nparts entries");
    if (!(n->zip_starts = em_calloc(n->nparts, sizeof *n->zip_starts)))
        return ferr(err, EM_ENOMEM, n, "zip_starts", "out of memory");
    for (uint32_t i = 0; i < n->nparts; i++)
        if (parse_u64(json_array_get(a, i), &n->zip_starts[i]) < 0 ||
            (i && n->zip_starts[i] < n->zip_starts[i - 1]))
            return ferr(err, EM_ECORRUPT, n, "zip_starts", "bad or decreasing entry");
    return 0;
}

static int dec_coalesce(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *a = json_object_get(o, "coalesce_starts");
    if (!json_is_array(a) || json_array_size(a) != (size_t)n->nparts + 1)
        return ferr(err, EM_ECORRUPT, n, "coalesce_starts", "needs nparts + 1 entries");
    if (!(n->coalesce_starts = em_calloc((size_t)n->nparts + 1, sizeof(uint32_t))))
        return ferr(err, EM_ENOMEM, n, "coalesce_starts", "out of memory");
    for (uint32_t i = 0; i <= n->nparts; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > MAX_PARTS)
            return ferr(err, EM_ECORRUPT, n, "coalesce_starts", "bad entry");
        n->coalesce_starts[i] = (uint32_t)json_integer_value(v);
        if (i && n->coalesce_starts[i] < n->coalesce_starts[i - 1])
            return ferr(err, EM_EPLAN, n, "coalesce_starts", "not monotone");
    }
    return 0;
}

static int dec_op_fields(const json_t *o, em_plan_node *n, em_err *err)
{
    uint32_t x;
    int rc = 0;
    switch (n->op) {
    case EM_OP_SHUFFLED:
        if ((rc = get_u32(o, n, "shuffle_id", true, 0, UINT32_MAX, &n->shuffle_id, err)) < 0 ||
            (rc = get_u32(o, n, "map_part", true, EM_MAP_PART_HASH, EM_MAP_PART_ROUND_ROBIN, &x,
                          err)) < 0)
            return rc;
        n->map_part = (em_map_part)x;
        if ((rc = get_u32(o, n, "mode", true, (n->flags & EM_NODE_NO_REDUCE) ? 0 : 1, 3, &x,
                          err)) < 0)
            return rc;
        n->mode = (em_reduce_mode)x;
        return get_u64s(o, n, "seed", &n->seed, err);
    case EM_OP_LOCAL_REDUCE:
        if ((rc = get_u32(o, n, "mode", true, 1, 3, &x, err)) < 0)
            return rc;
        n->mode = (em_reduce_mode)x;
        return 0;
    case EM_OP_RANGE: return dec_range(o, n, err);
    case EM_OP_TEXT_FILE:
    case EM_OP_WHOLE_TEXT_FILES: return dec_splits(o, n, err);
    case EM_OP_CHECKPOINT_WRITE:
    case EM_OP_CHECKPOINT_FILE:
        if ((rc = get_u32(o, n, "ckpt_rdd", true, 0, UINT32_MAX, &n->ckpt_rdd, err)) < 0)
            return rc;
        return dec_splits(o, n, err);
    case EM_OP_SAMPLE: return dec_sample(o, n, err);
    case EM_OP_ZIP_WITH_INDEX: return dec_zip(o, n, err);
    case EM_OP_COALESCE: return dec_coalesce(o, n, err);
    case EM_OP_TAG: return get_u32(o, n, "tag", true, 0, 1, &n->tag, err);
    default: return 0;
    }
}

/* Decodes the fields of one node except parents. */
static int dec_node(const json_t *o, em_plan_node *n, em_err *err)
{
    uint32_t lvl;
    int rc;
    json_t *kv = json_object_get(o, "is_kv");
    if ((rc = get_u32(o, n, "flags", true, 0, KNOWN_FLAGS, &n->flags, err)) < 0 ||
        (rc = get_u32(o, n, "nparts", true, 1, MAX_PARTS, &n->nparts, err)) < 0 ||
        (rc = get_u32(o, n, "width", true, 0, UINT32_MAX, &n->width, err)) < 0 ||
        (rc = get_u32(o, n, "level", true, 0, EM_STORAGE_DISK_ONLY, &lvl, err)) < 0)
        return rc;
    n->level = (em_storage_level)lvl;
    if (!json_is_boolean(kv))
        return ferr(err, EM_ECORRUPT, n, "is_kv", "missing or not a boolean");
    n->is_kv = json_is_true(kv);
    if ((rc = get_str(o, n, "name", &n->name, err)) < 0 || (rc = dec_part(o, n, err)) < 0 ||
        (rc = dec_fns(o, n, err)) < 0)
        return rc;
    return dec_op_fields(o, n, err);
}

static int link_parents(const json_t *o, em_plan_graph *g, em_plan_node *n, em_err *err)
{
    json_t *a = json_object_get(o, "parents");
    if (!json_is_array(a))
        return ferr(err, EM_ECORRUPT, n, "parents", "missing or not an array");
    size_t np = json_array_size(a);
    if (np > MAX_NODES)
        return ferr(err, EM_ECORRUPT, n, "parents", "too many parents");
    em_plan_node **ps = np ? em_calloc(np, sizeof *ps) : NULL;
    if (np && !ps)
        return ferr(err, EM_ENOMEM, n, "parents", "out of memory");
    for (size_t i = 0; i < np; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > UINT32_MAX ||
            !(ps[i] = em_plan_graph_find(g, (uint32_t)json_integer_value(v)))) {
            em_free(ps);
            return ferr(err, EM_EPLAN, n, "parents", "unknown parent id");
        }
        /* Lineage only points back in time (a parent is created before its child), so
         * requiring smaller parent ids rules out cycles without a graph search. */
        if (ps[i]->id >= n->id) {
            em_free(ps);
            return ferr(err, EM_EPLAN, n, "parents", "parent id not smaller than the node's "
                        "(cycle)");
        }
    }
    n->parents = ps;
    n->nparents = (uint32_t)np;
    return 0;
}

static int want_parents(const em_plan_node *n, uint32_t lo, uint32_t hi, em_err *err)
{
    if (n->nparents < lo || n->nparents > hi)
        return ferr(err, EM_EPLAN, n, "parents", "wrong number of parents for the op");
    return 0;
}

static int resolve(const em_plan_node *n, const char *field, const char *name, em_fn_kind kind,
                   bool required, em_err *err)
{
    em_any_fn f;
    em_err e2 = EM_ERR_INIT;
    if (!name)
        return required ? ferr(err, EM_EPLAN, n, field, "missing function name") : 0;
    if (em_registry_resolve(name, kind, &f, &e2) < 0)
        return ferr(err, EM_EPLAN, n, field, e2.msg);
    return 0;
}

static int check_reduce_fns(const em_plan_node *n, bool needed, em_err *err)
{
    int rc;
    if (n->flags & EM_NODE_ACC) {
        if (!needed)
            return ferr(err, EM_EPLAN, n, "flags", "accumulators need aggregate mode");
        if ((rc = resolve(n, "fn", n->fn, EM_FN_ACC_ADD, false, err)) < 0 ||
            (rc = resolve(n, "fn_create", n->fn_create, EM_FN_ACC_INIT, false, err)) < 0)
            return rc;
        return resolve(n, "fn_merge", n->fn_merge, EM_FN_ACC_MERGE, true, err);
    }
    if ((rc = resolve(n, "fn", n->fn, EM_FN_REDUCE, needed, err)) < 0 ||
        (rc = resolve(n, "fn_create", n->fn_create, EM_FN_CREATE, false, err)) < 0)
        return rc;
    return resolve(n, "fn_merge", n->fn_merge, EM_FN_REDUCE, false, err);
}

static int check_shuffled(const em_plan_node *n, bool is_root, em_err *err)
{
    if (n->nparents > (is_root ? 1u : 0u))
        return ferr(err, EM_EPLAN, n, "parents", "a shuffled node has a parent only as the "
                    "root of a map stage");
    if (n->map_part != EM_MAP_PART_ROUND_ROBIN &&
        (n->part.kind != (n->map_part == EM_MAP_PART_HASH ? EM_PART_HASH : EM_PART_RANGE) ||
         n->part.nparts != n->nparts))
        return ferr(err, EM_EPLAN, n, "part", "does not match map_part and nparts");
    if (n->nparts > EM_SHUFFLE_MAX_PARTS)
        return ferr(err, EM_EPLAN, n, "nparts", "more than the shuffle's maximum");
    bool agg = !(n->flags & EM_NODE_NO_REDUCE) && n->mode == EM_REDUCE_AGGREGATE;
    if ((n->flags & EM_NODE_MAP_COMBINE) && !agg)
        return ferr(err, EM_EPLAN, n, "flags", "map-side combine needs aggregate mode");
    return check_reduce_fns(n, agg, err);
}

/* Checkpoint nodes: a reliable one has exactly one split per partition, in order. */
static int check_checkpoint(const em_plan_node *n, em_err *err)
{
    bool write = n->op == EM_OP_CHECKPOINT_WRITE;
    int rc;
    if ((rc = want_parents(n, write ? 1 : 0, write ? 1 : 0, err)) < 0)
        return rc;
    if (write && n->parents[0]->nparts != n->nparts)
        return ferr(err, EM_EPLAN, n, "nparts", "differs from the parent's");
    if (n->flags & EM_NODE_LOCAL_CKPT)
        return n->nsplits == 0 ? 0 : ferr(err, EM_ECORRUPT, n, "splits", "local checkpoint");
    if (n->nsplits != n->nparts)
        return ferr(err, EM_ECORRUPT, n, "splits", "not one per partition");
    for (uint32_t i = 0; i < n->nsplits; i++)
        if (n->splits[i].part != i)
            return ferr(err, EM_ECORRUPT, n, "splits.part", "out of order");
    return 0;
}

/* Op-specific checks once parents are linked. */
static int check_node(const em_plan_node *n, bool is_root, em_err *err)
{
    const em_plan_node *p0 = n->nparents ? n->parents[0] : NULL;
    uint64_t sum = 0;
    int rc;
    switch (n->op) {
    case EM_OP_PARALLELIZE:
    case EM_OP_RANGE:
    case EM_OP_TEXT_FILE:
    case EM_OP_WHOLE_TEXT_FILES:
        return want_parents(n, 0, 0, err);
    case EM_OP_UNION:
        if ((rc = want_parents(n, 1, MAX_NODES, err)) < 0)
            return rc;
        for (uint32_t i = 0; i < n->nparents; i++) {
            sum += n->parents[i]->nparts;
            if ((n->flags & EM_NODE_ZIP_PARTS) && n->parents[i]->nparts != n->nparts)
                return ferr(err, EM_EPLAN, n, "nparts", "zipped union of unequal parents");
        }
        if (!(n->flags & EM_NODE_ZIP_PARTS) && sum != n->nparts)
            return ferr(err, EM_EPLAN, n, "nparts", "not the sum of the parents'");
        return 0;
    case EM_OP_COALESCE:
        if ((rc = want_parents(n, 1, 1, err)) < 0)
            return rc;
        if (n->coalesce_starts[n->nparts] > p0->nparts)
            return ferr(err, EM_EPLAN, n, "coalesce_starts", "beyond the parent's partitions");
        return 0;
    case EM_OP_CARTESIAN:
        if ((rc = want_parents(n, 2, 2, err)) < 0)
            return rc;
        if ((uint64_t)p0->nparts * n->parents[1]->nparts != n->nparts)
            return ferr(err, EM_EPLAN, n, "nparts", "not the product of the parents'");
        return 0;
    case EM_OP_SHUFFLED:
        return check_shuffled(n, is_root, err);
    case EM_OP_CHECKPOINT_WRITE:
    case EM_OP_CHECKPOINT_FILE:
        return check_checkpoint(n, err);
    default:
        break;
    }
    if (!em_op_one_to_one(n->op))
        return ferr(err, EM_EPLAN, n, "op", "unknown op");
    if ((rc = want_parents(n, 1, 1, err)) < 0)
        return rc;
    if (p0->nparts != n->nparts)
        return ferr(err, EM_EPLAN, n, "nparts", "differs from the parent's");
    if (n->op == EM_OP_MAP)
        return resolve(n, "fn", n->fn, EM_FN_MAP, true, err);
    if (n->op == EM_OP_FILTER)
        return resolve(n, "fn", n->fn, EM_FN_FILTER, true, err);
    if (n->op == EM_OP_MAP_PARTITIONS)
        return resolve(n, "fn", n->fn, EM_FN_PARTITION, true, err);
    if (n->op == EM_OP_LOCAL_REDUCE)
        return check_reduce_fns(n, n->mode == EM_REDUCE_AGGREGATE, err);
    return 0;
}

/* Creates the nodes of array `a` in g with their own fields (parents come later). */
static int dec_nodes(const json_t *a, em_plan_graph *g, em_err *err)
{
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *o = json_array_get(a, i), *id = json_object_get(o, "id");
        json_t *op = json_object_get(o, "op");
        if (!json_is_object(o) || !json_is_integer(id) || json_integer_value(id) < 1 ||
            json_integer_value(id) > UINT32_MAX)
            return em_err_set(err, EM_ECORRUPT, "plan: node %zu: missing or bad 'id'", i);
        uint32_t nid = (uint32_t)json_integer_value(id);
        if (em_plan_graph_find(g, nid))
            return em_err_set(err, EM_ECORRUPT, "plan: node id %u appears twice", nid);
        em_op k = json_is_string(op) ? em_op_from_name(json_string_value(op)) : (em_op)0;
        if (!k)
            return em_err_set(err, EM_ECORRUPT, "plan node %u: field 'op': missing or unknown",
                              nid);
        em_plan_node *n = em__plan_node_new_id(g, k, nid);
        int rc = dec_node(o, n, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int dec_graph(const json_t *a, em_plan_graph *g, em_plan_node *root, em_err *err)
{
    size_t nn = json_array_size(a);
    em_plan_node **nodes = em_calloc(nn, sizeof *nodes);
    int rc = 0;
    if (!nodes) {
        rc = em_err_set(err, EM_ENOMEM, "plan: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nn && rc == 0; i++) {
        json_t *o = json_array_get(a, i);
        nodes[i] = em_plan_graph_find(g, (uint32_t)json_integer_value(json_object_get(o, "id")));
        rc = link_parents(o, g, nodes[i], err);
    }
    for (size_t i = 0; i < nn && rc == 0; i++)
        rc = check_node(nodes[i], nodes[i] == root, err);
out:
    em_free(nodes);
    return rc;
}

int em_plan_from_json_value(const json_t *doc, em_plan_graph **out, em_plan_node **root,
                            em_err *err)
{
    json_t *ver = json_object_get(doc, "version"), *r = json_object_get(doc, "root");
    json_t *a = json_object_get(doc, "nodes");
    if (!json_is_object(doc) || !json_is_integer(ver) || json_integer_value(ver) != 1)
        return em_err_set(err, EM_ECORRUPT, "plan: not an object with \"version\": 1");
    if (!json_is_integer(r) || !json_is_array(a) || json_array_size(a) == 0 ||
        json_array_size(a) > MAX_NODES)
        return em_err_set(err, EM_ECORRUPT, "plan: needs \"root\" (id) and \"nodes\" "
                          "(1..%u items)", MAX_NODES);
    em_plan_graph *g = em_plan_graph_new();
    int rc = dec_nodes(a, g, err);
    em_plan_node *rn = NULL;
    if (rc == 0 && (json_integer_value(r) < 1 || json_integer_value(r) > UINT32_MAX ||
                    !(rn = em_plan_graph_find(g, (uint32_t)json_integer_value(r)))))
        rc = em_err_set(err, EM_EPLAN, "plan: root %lld is not a node",
                        (long long)json_integer_value(r));
    if (rc == 0)
        rc = dec_graph(a, g, rn, err);
    if (rc < 0) {
        em_plan_graph_free(g);
        return rc;
    }
    *out = g;
    *root = rn;
    return 0;
}

int em_plan_from_json(const char *json, size_t len, em_plan_graph **out, em_plan_node **root,
                      em_err *err)
{
    json_error_t je;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return em_err_set(err, EM_ECORRUPT, "plan: JSON error at line %d column %d: %s",
                          je.line, je.column, je.text);
    int rc = em_plan_from_json_value(doc, out, root, err);
    json_decref(doc);
    return rc;
}
