/* engine/plan/json.c - stage plans <-> JSON (jansson). Format: docs/plan-json.md.
 *
 * ENCODING collects the nodes reachable from the root without crossing a SHUFFLED node
 * (a SHUFFLED node is written as a leaf, without parents, unless it is the root of a map
 * stage), sorted by id, so the same stage always gives the same string.
 *
 * DECODING takes untrusted text (an executor process gets it from the network): every field
 * is type- and range-checked, parent ids must exist and form a DAG, arrays must have the
 * lengths their op implies, and every function name is resolved (EM_EPLAN otherwise).
 * What differs by op (its own fields, their encoding and checks) is in the op's descriptor
 * (ops.c); this file handles the fields every node has and calls the descriptor's
 * encode / decode / check. The em__pj_* helpers are shared with ops.c (plan_int.h).
 * Errors name the node id and the field: "plan node 4 (map): field 'fn': ...". */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/plan/plan_int.h"

#define MAX_NODES EM__PJ_MAX_NODES
#define MAX_PARTS EM__PJ_MAX_PARTS
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
    s->v = em_arr_xgrow(s->v, &s->cap, s->n + 1, sizeof *s->v);
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

char *em__pj_u64_str(uint64_t v, char buf[24])
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

/* blob_out: context blobs of at least this many bytes are left out (the caller ships them
 * beside the JSON: engine/exec's "blob_ref"). */
static bool enc_fns(json_t *o, const em_plan_node *n, size_t blob_out)
{
    bool ok = true;
    if (n->fn)
        ok = ok && json_object_set_new(o, "fn", json_string(n->fn)) == 0;
    if (n->fn_create)
        ok = ok && json_object_set_new(o, "fn_create", json_string(n->fn_create)) == 0;
    if (n->fn_merge)
        ok = ok && json_object_set_new(o, "fn_merge", json_string(n->fn_merge)) == 0;
    if (n->blob_len && n->blob_len < blob_out)
        ok = ok && set_b64(o, "blob", n->blob, n->blob_len);
    if (n->zero)
        ok = ok && set_b64(o, "zero", n->zero, n->zero_len);
    if (n->flags & EM_NODE_ACC)
        ok = ok && json_object_set_new(o, "acc_size", json_integer(n->acc_size)) == 0;
    return ok;
}

/* Sets obj[key] = a when a holds `expect` items (else drops a: an append failed). */
bool em__pj_set_arr(json_t *o, const char *key, json_t *a, size_t expect)
{
    if (!a)
        return false;
    if (json_array_size(a) != expect) {
        json_decref(a);
        return false;
    }
    return json_object_set_new(o, key, a) == 0;
}

static json_t *enc_node(const em_plan_node *n, bool leaf, size_t blob_out)
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
    const em_op_desc *d = em_op_desc_get(n->op);
    ok = ok && enc_part(o, &n->part) && enc_fns(o, n, blob_out) &&
         (!d->encode || d->encode(o, n));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *em_plan_to_json_value(const em_plan_node *root, bool map_side, em_err *err)
{
    return em_plan_to_json_value_ext(root, map_side, SIZE_MAX, err);
}

json_t *em_plan_to_json_value_ext(const em_plan_node *root, bool map_side, size_t blob_out,
                                  em_err *err)
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
        json_t *o = enc_node(s.v[i], leaf, blob_out);
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
int em__pj_ferr(em_err *err, int code, const em_plan_node *n, const char *field,
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
            return em__pj_ferr(err, EM_ECORRUPT, n, key, "missing");
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return em__pj_ferr(err, EM_ECORRUPT, n, key, "not an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return em__pj_ferr(err, EM_ECORRUPT, n, key, "out of range");
    *out = x;
    return 0;
}

int em__pj_get_u32(const json_t *o, const em_plan_node *n, const char *key, bool required,
                   uint32_t lo, uint32_t hi, uint32_t *out, em_err *err)
{
    int64_t x = lo;
    int rc = get_int(o, n, key, required, lo, hi, lo, &x, err);
    if (rc == 0)
        *out = (uint32_t)x;
    return rc;
}

/* A decimal uint64 in a string (64-bit values do not survive JSON numbers everywhere). */
int em__pj_parse_u64(const json_t *v, uint64_t *out)
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

int em__pj_get_u64s(const json_t *o, const em_plan_node *n, const char *key, uint64_t *out,
                    em_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return em__pj_ferr(err, EM_ECORRUPT, n, key, "missing");
    if (em__pj_parse_u64(v, out) < 0)
        return em__pj_ferr(err, EM_ECORRUPT, n, key, "not a decimal uint64 string");
    return 0;
}

/* Optional string without NUL bytes: *out = owned copy or NULL when absent. */
int em__pj_get_str(const json_t *o, const em_plan_node *n, const char *key, char **out,
                   em_err *err)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return em__pj_ferr(err, EM_ECORRUPT, n, key, "not a string");
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v) || !*s)
        return em__pj_ferr(err, EM_ECORRUPT, n, key, "empty or contains a NUL byte");
    if (!(*out = em_strdup(s)))
        return em__pj_ferr(err, EM_ENOMEM, n, key, "out of memory");
    return 0;
}

/* Optional base64 field: *out owned (non-NULL when present, even for 0 bytes). */
static int get_b64(const json_t *v, const em_plan_node *n, const char *key, uint8_t **out,
                   size_t *len, em_err *err)
{
    if (!json_is_string(v))
        return em__pj_ferr(err, EM_ECORRUPT, n, key, "not a base64 string");
    em_err e2 = EM_ERR_INIT;
    if (em_base64_decode(json_string_value(v), json_string_length(v), out, len, &e2) < 0)
        return em__pj_ferr(err, e2.code, n, key, e2.msg);
    return 0;
}

static int dec_part(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *p = json_object_get(o, "part");
    if (!p)
        return 0;
    if (!json_is_object(p))
        return em__pj_ferr(err, EM_ECORRUPT, n, "part", "not an object");
    uint32_t kind;
    int rc;
    if ((rc = em__pj_get_u32(p, n, "kind", true, EM_PART_HASH, EM_PART_RANGE, &kind, err)) < 0 ||
        (rc = em__pj_get_u32(p, n, "nparts", true, 1, MAX_PARTS, &n->part.nparts, err)) < 0)
        return em_err_prefix(err, "part");
    n->part.kind = (em_partitioner_kind)kind;
    json_t *d = json_object_get(p, "descending");
    if (d && !json_is_boolean(d))
        return em__pj_ferr(err, EM_ECORRUPT, n, "part.descending", "not a boolean");
    n->part.descending = d && json_is_true(d);
    json_t *b = json_object_get(p, "bounds");
    size_t nb = b ? json_array_size(b) : 0;
    if (b && !json_is_array(b))
        return em__pj_ferr(err, EM_ECORRUPT, n, "part.bounds", "not an array");
    if (kind == EM_PART_RANGE ? nb != n->part.nparts - 1 : nb != 0)
        return em__pj_ferr(err, EM_EPLAN, n, "part.bounds", "wrong number of bounds");
    if (nb) {
        n->part.bounds = em_calloc(nb, sizeof *n->part.bounds);
        if (!n->part.bounds)
            return em__pj_ferr(err, EM_ENOMEM, n, "part.bounds", "out of memory");
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
    if ((rc = em__pj_get_str(o, n, "fn", &n->fn, err)) < 0 ||
        (rc = em__pj_get_str(o, n, "fn_create", &n->fn_create, err)) < 0 ||
        (rc = em__pj_get_str(o, n, "fn_merge", &n->fn_merge, err)) < 0)
        return rc;
    if ((v = json_object_get(o, "blob")) &&
        (rc = get_b64(v, n, "blob", &n->blob, &n->blob_len, err)) < 0)
        return rc;
    if ((v = json_object_get(o, "zero")) &&
        (rc = get_b64(v, n, "zero", &n->zero, &n->zero_len, err)) < 0)
        return rc;
    if ((n->flags & EM_NODE_ACC) &&
        (rc = em__pj_get_u32(o, n, "acc_size", true, 1, EM_BATCH_MAX_REC_LEN, &n->acc_size, err)) < 0)
        return rc;
    return 0;
}

/* Decodes the fields of one node except parents. */
static int dec_node(const json_t *o, em_plan_node *n, em_err *err)
{
    uint32_t lvl;
    int rc;
    json_t *kv = json_object_get(o, "is_kv");
    if ((rc = em__pj_get_u32(o, n, "flags", true, 0, KNOWN_FLAGS, &n->flags, err)) < 0 ||
        (rc = em__pj_get_u32(o, n, "nparts", true, 1, MAX_PARTS, &n->nparts, err)) < 0 ||
        (rc = em__pj_get_u32(o, n, "width", true, 0, UINT32_MAX, &n->width, err)) < 0 ||
        (rc = em__pj_get_u32(o, n, "level", true, 0, EM_STORAGE_DISK_ONLY, &lvl, err)) < 0)
        return rc;
    n->level = (em_storage_level)lvl;
    if (!json_is_boolean(kv))
        return em__pj_ferr(err, EM_ECORRUPT, n, "is_kv", "missing or not a boolean");
    n->is_kv = json_is_true(kv);
    if ((rc = em__pj_get_str(o, n, "name", &n->name, err)) < 0 || (rc = dec_part(o, n, err)) < 0 ||
        (rc = dec_fns(o, n, err)) < 0)
        return rc;
    const em_op_desc *d = em_op_desc_get(n->op);
    return d->decode ? d->decode(o, n, err) : 0;
}

static int link_parents(const json_t *o, em_plan_graph *g, em_plan_node *n, em_err *err)
{
    json_t *a = json_object_get(o, "parents");
    if (!json_is_array(a))
        return em__pj_ferr(err, EM_ECORRUPT, n, "parents", "missing or not an array");
    size_t np = json_array_size(a);
    if (np > MAX_NODES)
        return em__pj_ferr(err, EM_ECORRUPT, n, "parents", "too many parents");
    em_plan_node **ps = np ? em_calloc(np, sizeof *ps) : NULL;
    if (np && !ps)
        return em__pj_ferr(err, EM_ENOMEM, n, "parents", "out of memory");
    for (size_t i = 0; i < np; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > UINT32_MAX ||
            !(ps[i] = em_plan_graph_find(g, (uint32_t)json_integer_value(v)))) {
            em_free(ps);
            return em__pj_ferr(err, EM_EPLAN, n, "parents", "unknown parent id");
        }
        /* Lineage only points back in time (a parent is created before its child), so
         * requiring smaller parent ids rules out cycles without a graph search. */
        if (ps[i]->id >= n->id) {
            em_free(ps);
            return em__pj_ferr(err, EM_EPLAN, n, "parents", "parent id not smaller than the node's "
                        "(cycle)");
        }
    }
    n->parents = ps;
    n->nparents = (uint32_t)np;
    return 0;
}

int em__pj_want_parents(const em_plan_node *n, uint32_t lo, uint32_t hi, em_err *err)
{
    if (n->nparents < lo || n->nparents > hi)
        return em__pj_ferr(err, EM_EPLAN, n, "parents", "wrong number of parents for the op");
    return 0;
}

int em__pj_resolve(const em_plan_node *n, const char *field, const char *name, em_fn_kind kind,
                   bool required, em_err *err)
{
    em_any_fn f;
    em_err e2 = EM_ERR_INIT;
    if (!name)
        return required ? em__pj_ferr(err, EM_EPLAN, n, field, "missing function name") : 0;
    if (em_registry_resolve(name, kind, &f, &e2) < 0)
        return em__pj_ferr(err, EM_EPLAN, n, field, e2.msg);
    return 0;
}

/* Checks every op shares (the descriptor's arity, one-to-one partition counts, its main
 * function), then the op's own check. */
static int check_node(const em_plan_node *n, bool is_root, em_err *err)
{
    const em_op_desc *d = em_op_desc_get(n->op);
    int rc;
    if ((rc = em__pj_want_parents(n, d->min_parents, d->max_parents, err)) < 0)
        return rc;
    if (d->one_to_one && n->parents[0]->nparts != n->nparts)
        return em__pj_ferr(err, EM_EPLAN, n, "nparts", "differs from the parent's");
    if (d->fn_kind && (rc = em__pj_resolve(n, "fn", n->fn, d->fn_kind, true, err)) < 0)
        return rc;
    return d->check ? d->check(n, is_root, err) : 0;
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
