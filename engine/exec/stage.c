/* engine/exec/stage.c - stage task JSON (docs/plan-json.md):
 *   {"version":1,"plan":<plan object>,"map_side":bool,"result":{...}}
 * "result" (result stages only): {"op":"collect"|..., "fn":name, "blob":b64,
 * "has_zero":bool, "zero":b64, "n":int, "descending":bool, "seed":"uint64", "path":str,
 * "fn_init":name, "acc_size":int} (the last two for "aggregate_acc" only: the accumulator
 * is made on the executor from its size, never shipped). With a blob sink, a "blob" or
 * "zero" of EM_STAGE_BLOB_OUT bytes or more becomes "blob_ref"/"zero_ref": [id, bytes,
 * crc32c], like a node's context blob (exec.h, "BIG CONTEXT BLOBS").
 * Decoding takes untrusted text: every field is checked; the result function is resolved. */
#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/exec/exec_int.h"

static const char *const result_names[] = {
    [EM_RESULT_COLLECT] = "collect",     [EM_RESULT_COUNT] = "count",
    [EM_RESULT_FOLD] = "fold",           [EM_RESULT_AGGREGATE] = "aggregate",
    [EM_RESULT_TAKE] = "take",           [EM_RESULT_TOP] = "top",
    [EM_RESULT_SAVE_TEXT] = "save_text", [EM_RESULT_FOREACH] = "foreach",
    [EM_RESULT_SAMPLE_KEYS] = "sample_keys", [EM_RESULT_AGGREGATE_ACC] = "aggregate_acc",
};
#define NRESULT ((int)(sizeof result_names / sizeof result_names[0]))

/* Test hook counters (em__stage_blob_stats_get); relaxed atomics, written only here. */
static atomic_uint_least64_t g_shipped, g_decoded, g_borrowed;

void em__stage_blob_stats_get(em__stage_blob_stats *out)
{
    out->shipped = atomic_load_explicit(&g_shipped, memory_order_relaxed);
    out->decoded = atomic_load_explicit(&g_decoded, memory_order_relaxed);
    out->borrowed = atomic_load_explicit(&g_borrowed, memory_order_relaxed);
}

static void count(atomic_uint_least64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Hands b to the sink and sets o[key] = [id, bytes, crc32c]. */
static int put_ref(json_t *o, const char *key, em_slice b, const em_stage_blob_sink *sink,
                   em_err *err)
{
    uint32_t id = sink->put(sink->ud, b, err);
    if (!id)
        return err->code ? err->code : em_err_set(err, EM_ENOMEM, "stage blob");
    count(&g_shipped, b.n);
    json_t *ref = json_pack("[I,I,I]", (json_int_t)id, (json_int_t)b.n,
                            (json_int_t)em_crc32c(0, b.p, b.n));
    if (!ref || json_object_set_new(o, key, ref) < 0)
        return em_err_set(err, EM_ENOMEM, "stage encode: out of memory");
    return 0;
}

static bool set_b64(json_t *o, const char *key, em_slice s)
{
    char *b = em_base64_encode(s.p, s.n);
    if (!b)
        return false;
    bool ok = json_object_set_new(o, key, json_string(b)) == 0;
    em_free(b);
    return ok;
}

/* A binary result field: inline base64 (key), or through the sink (key_ref) when big. */
static bool set_bin(json_t *o, const char *key, const char *key_ref, em_slice s,
                    const em_stage_blob_sink *sink, em_err *err)
{
    if (sink && s.n >= EM_STAGE_BLOB_OUT)
        return put_ref(o, key_ref, s, sink, err) == 0;
    return set_b64(o, key, s);
}

static json_t *enc_result(const em_result_spec *r, const em_stage_blob_sink *sink, em_err *err)
{
    char seed[24];
    if ((int)r->op < 1 || (int)r->op >= NRESULT)
        return NULL;
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->seed);
    json_t *o = json_pack("{s:s,s:b,s:I,s:b,s:s}", "op", result_names[r->op], "has_zero",
                          r->has_zero, "n",
                          (json_int_t)(r->n > INT64_MAX ? INT64_MAX : r->n), "descending",
                          r->descending, "seed", seed);
    bool ok = o != NULL;
    if (ok && r->fn)
        ok = json_object_set_new(o, "fn", json_string(r->fn)) == 0;
    if (ok && r->path)
        ok = json_object_set_new(o, "path", json_string(r->path)) == 0;
    if (ok && r->fn_init)
        ok = json_object_set_new(o, "fn_init", json_string(r->fn_init)) == 0;
    if (ok && r->op == EM_RESULT_AGGREGATE_ACC)
        ok = json_object_set_new(o, "acc_size", json_integer((json_int_t)r->acc_size)) == 0;
    ok = ok && set_bin(o, "blob", "blob_ref", r->blob, sink, err) &&
         (!r->has_zero || set_bin(o, "zero", "zero_ref", r->zero, sink, err));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The node with id `id` in the graph above n, or NULL. */
static const em_plan_node *find_node(const em_plan_node *n, uint32_t id, uint32_t depth)
{
    if (n->id == id)
        return n;
    for (uint32_t i = 0; depth < 4096 && i < n->nparents; i++) {
        const em_plan_node *f = find_node(n->parents[i], id, depth + 1);
        if (f)
            return f;
    }
    return NULL;
}

/* Moves the big context blobs of the plan's nodes out of the JSON through sink. */
static int move_blobs(json_t *plan, const em_plan_node *root, const em_stage_blob_sink *sink,
                      em_err *err)
{
    json_t *nodes = json_object_get(plan, "nodes"), *o;
    size_t i;
    json_array_foreach(nodes, i, o) {
        json_t *id = json_object_get(o, "id");
        const em_plan_node *n = json_is_integer(id) && !json_object_get(o, "blob")
                                    ? find_node(root, (uint32_t)json_integer_value(id), 0)
                                    : NULL;
        if (!n || n->blob_len < EM_STAGE_BLOB_OUT)
            continue;   /* no blob, or a small one inside the JSON */
        int rc = put_ref(o, "blob_ref", em_slice_make(n->blob, n->blob_len), sink, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

char *em_stage_encode(const em_plan_node *root, bool map_side, const em_result_spec *res,
                      em_err *err)
{
    return em_stage_encode_ext(root, map_side, res, NULL, err);
}

char *em_stage_encode_ext(const em_plan_node *root, bool map_side, const em_result_spec *res,
                          const em_stage_blob_sink *sink, em_err *err)
{
    if (!map_side && !res) {
        em_err_set(err, EM_EINVAL, "stage encode: a result stage needs a result spec");
        return NULL;
    }
    json_t *plan = em_plan_to_json_value_ext(root, map_side,
                                             sink ? EM_STAGE_BLOB_OUT : SIZE_MAX, err);
    if (!plan)
        return NULL;
    if (sink && move_blobs(plan, root, sink, err) < 0) {
        json_decref(plan);
        return NULL;
    }
    json_t *doc = json_pack("{s:i,s:o,s:b}", "version", 1, "plan", plan, "map_side", map_side);
    json_t *r = !map_side && doc ? enc_result(res, sink, err) : NULL;
    char *s = NULL, *out = NULL;
    if (doc && (map_side || (r && json_object_set_new(doc, "result", r) == 0)))
        s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (s)
        out = em_strdup(s);
    free(s);   /* jansson allocates with malloc */
    if (!out && err->code)
        return NULL;   /* the sink's error */
    if (!out)
        em_err_set(err, res && (int)res->op >= 1 && (int)res->op < NRESULT ? EM_ENOMEM
                                                                            : EM_EINVAL,
                   "stage encode: out of memory or bad result op");
    return out;
}

/* ---------------------------------------------------------------- decoding */

static int rerr(em_err *err, const char *field, const char *what)
{
    return em_err_set(err, EM_ECORRUPT, "stage result: field '%s': %s", field, what);
}

static int dec_str(const json_t *o, const char *key, char **out, em_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return rerr(err, key, "not a string (or has a NUL byte)");
    if (!(*out = em_strdup(json_string_value(v))))
        return em_err_set(err, EM_ENOMEM, "stage result: out of memory");
    return 0;
}

static int dec_b64(const json_t *o, const char *key, uint8_t **buf, em_slice *out, em_err *err)
{
    json_t *v = json_object_get(o, key);
    size_t n = 0;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return rerr(err, key, "not a base64 string");
    if (em_base64_decode(json_string_value(v), json_string_length(v), buf, &n, err) < 0)
        return em_err_prefix(err, "stage result: field '%s'", key);
    count(&g_decoded, n);
    *out = em_slice_make(*buf, n);
    return 0;
}

/* Checks r = [broadcast id, bytes, crc32c] (untrusted) and appends it to st->refs. */
static int add_ref(em_stage *st, const json_t *r, const char *key, em_plan_node *node,
                   uint8_t field, em_err *err)
{
    json_t *b = json_array_get(r, 0), *n = json_array_get(r, 1), *c = json_array_get(r, 2);
    if (!json_is_array(r) || json_array_size(r) != 3 || !json_is_integer(b) ||
        !json_is_integer(n) || !json_is_integer(c) || json_integer_value(b) < 1 ||
        json_integer_value(b) > UINT32_MAX || json_integer_value(n) < 0 ||
        json_integer_value(n) >= EM_BATCH_MAX_REC_LEN || json_integer_value(c) < 0 ||
        json_integer_value(c) > UINT32_MAX)
        return em_err_set(err, EM_ECORRUPT, "stage: bad \"%s\" (not [id, bytes, crc32c] "
                          "in range)", key);
    struct em_stage_ref *nr = em_arr_grow(st->refs, &st->cap_refs, st->nrefs + 1, sizeof *nr);
    if (!nr)
        return em_err_set(err, EM_ENOMEM, "stage: out of memory");
    st->refs = nr;
    st->refs[st->nrefs++] = (struct em_stage_ref){
        node, field, (uint32_t)json_integer_value(b), (uint64_t)json_integer_value(n),
        (uint32_t)json_integer_value(c), NULL, 0, false};
    return 0;
}

/* "blob_ref" / "zero_ref" of the result object: never together with "blob" / "zero". */
static int dec_res_refs(const json_t *o, em_stage *st, em_err *err)
{
    json_t *br = json_object_get(o, "blob_ref"), *zr = json_object_get(o, "zero_ref");
    int rc;
    if ((br && json_object_get(o, "blob")) || (zr && json_object_get(o, "zero")))
        return rerr(err, br && json_object_get(o, "blob") ? "blob_ref" : "zero_ref",
                    "given with the inline value");
    if (br && (rc = add_ref(st, br, "blob_ref", NULL, EM__STAGE_REF_RES_BLOB, err)) < 0)
        return rc;
    if (zr && (rc = add_ref(st, zr, "zero_ref", NULL, EM__STAGE_REF_RES_ZERO, err)) < 0)
        return rc;
    return 0;
}

static int dec_bool(const json_t *o, const char *key, bool *out, em_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_boolean(v))
        return rerr(err, key, "missing or not a boolean");
    *out = json_is_true(v);
    return 0;
}

/* AGGREGATE_ACC: acc_size in range, seq (and init when named) resolve. */
static int dec_acc(const json_t *o, em_result_spec *r, em_err *err)
{
    json_t *sz = json_object_get(o, "acc_size");
    em_any_fn f;
    if (!json_is_integer(sz) || json_integer_value(sz) < 1 ||
        json_integer_value(sz) > (json_int_t)EM_BATCH_MAX_REC_LEN)
        return rerr(err, "acc_size", "missing or not in 1 .. 2^31-1");
    r->acc_size = (uint64_t)json_integer_value(sz);
    if (!r->fn)
        return rerr(err, "fn", "missing");
    if (em_registry_resolve(r->fn, EM_FN_ACC_SEQ, &f, err) < 0 ||
        (r->fn_init && em_registry_resolve(r->fn_init, EM_FN_ACC_INIT, &f, err) < 0))
        return em_err_prefix(err, "stage result");
    return 0;
}

static int dec_result(const json_t *o, em_stage *st, em_err *err)
{
    em_result_spec *r = &st->res;
    json_t *op = json_object_get(o, "op"), *n = json_object_get(o, "n");
    json_t *seed = json_object_get(o, "seed");
    int rc;
    if (!json_is_object(o))
        return em_err_set(err, EM_ECORRUPT, "stage: 'result' missing or not an object");
    for (int i = 1; json_is_string(op) && i < NRESULT; i++)
        if (strcmp(json_string_value(op), result_names[i]) == 0)
            r->op = (em_result_op)i;
    if (!r->op)
        return rerr(err, "op", "missing or unknown");
    if (!json_is_integer(n) || json_integer_value(n) < 0)
        return rerr(err, "n", "missing or not a non-negative integer");
    r->n = (uint64_t)json_integer_value(n);
    const char *sv = json_is_string(seed) ? json_string_value(seed) : NULL;
    char *end = NULL;
    if (!sv || !*sv || *sv < '0' || *sv > '9')
        return rerr(err, "seed", "missing or not a decimal string");
    r->seed = strtoull(sv, &end, 10);
    if (*end)
        return rerr(err, "seed", "not a decimal string");
    if ((rc = dec_bool(o, "has_zero", &r->has_zero, err)) < 0 ||
        (rc = dec_bool(o, "descending", &r->descending, err)) < 0 ||
        (rc = dec_str(o, "fn", &st->res_fn, err)) < 0 ||
        (rc = dec_str(o, "path", &st->res_path, err)) < 0 ||
        (rc = dec_str(o, "fn_init", &st->res_fn_init, err)) < 0 ||
        (rc = dec_b64(o, "blob", &st->res_blob, &r->blob, err)) < 0 ||
        (rc = dec_b64(o, "zero", &st->res_zero, &r->zero, err)) < 0 ||
        (rc = dec_res_refs(o, st, err)) < 0)
        return rc;
    r->fn = st->res_fn;
    r->path = st->res_path;
    r->fn_init = st->res_fn_init;
    if (r->op == EM_RESULT_AGGREGATE_ACC)
        return dec_acc(o, r, err);
    if (r->has_zero && !st->res_zero && !json_object_get(o, "zero_ref"))
        return rerr(err, "zero", "missing although has_zero");
    em_fn_kind kind = r->op == EM_RESULT_FOREACH ? EM_FN_FOREACH : EM_FN_REDUCE;
    bool needs_fn = r->op == EM_RESULT_FOLD || r->op == EM_RESULT_AGGREGATE ||
                    r->op == EM_RESULT_FOREACH;
    em_any_fn f;
    if (needs_fn && !r->fn)
        return rerr(err, "fn", "missing");
    if (needs_fn && em_registry_resolve(r->fn, kind, &f, err) < 0)
        return em_err_prefix(err, "stage result");
    if (r->op == EM_RESULT_SAVE_TEXT && !r->path)
        return rerr(err, "path", "missing");
    return 0;
}

/* Records the nodes' "blob_ref" (untrusted: checked) and counts the inline blobs. */
static int dec_refs(json_t *nodes, em_stage *st, em_err *err)
{
    json_t *o;
    size_t i;
    json_array_foreach(nodes, i, o) {
        json_t *r = json_object_get(o, "blob_ref"), *id = json_object_get(o, "id");
        em_plan_node *node = json_is_integer(id) && json_integer_value(id) >= 0 &&
                                     json_integer_value(id) <= UINT32_MAX
                                 ? em_plan_graph_find(st->graph, (uint32_t)json_integer_value(id))
                                 : NULL;
        if (!r) {
            if (node && json_object_get(o, "blob"))
                count(&g_decoded, node->blob_len);
            continue;
        }
        if (json_object_get(o, "blob") || !node)
            return em_err_set(err, EM_ECORRUPT, "stage: node %zu: \"blob_ref\" of an unknown "
                              "node or beside \"blob\"", i);
        int rc = add_ref(st, r, "blob_ref", node, EM__STAGE_REF_NODE, err);
        if (rc < 0)
            return em_err_prefix(err, "node %zu", i);
    }
    return 0;
}

/* The bytes of broadcast id as one BYTES record, with references to its batches taken
 * into *bs / *nbs (kept by the caller). */
static int borrow(em_task *t, uint32_t id, em_slice *v, em_batch ***bs, size_t *nbs,
                  em_err *err)
{
    em_block_id bid = {EM_BLOCK_BROADCAST, id, 0, 0};
    int rc = em__task_get_block(t, bid, bs, nbs, err);
    if (rc < 0)
        return em_err_prefix(err, "broadcast %u", id);
    if (rc == 0)
        return em_err_set(err, EM_ENOTFOUND, "broadcast %u: not found in the block store", id);
    if (*nbs != 1 || em_batch_kind((*bs)[0]) != EM_REC_BYTES ||
        em_batch_nrecs((*bs)[0]) != 1)
        return em_err_set(err, EM_ECORRUPT, "broadcast %u: expected one BYTES batch with one "
                          "record", id);
    em_batch_iter bi;
    em_rec r = {0};
    em_batch_iter_init(&bi, (*bs)[0]);
    em_batch_iter_next(&bi, &r);
    *v = r.val;
    return 0;
}

int em__stage_resolve(em_task *t, em_stage *st, em_err *err)
{
    for (size_t i = 0; i < st->nrefs; i++) {
        struct em_stage_ref *r = &st->refs[i];
        em_slice v = {0};
        if (r->resolved)
            continue;
        const em_exec_env *env = t->env;
        int rc = env->borrow_blob ? env->borrow_blob(env->blob_ud, r->bcast, &v, err)
                                  : borrow(t, r->bcast, &v, &r->bs, &r->nbs, err);
        if (rc == 0 && (v.n != r->len || em_crc32c(0, v.p, v.n) != r->crc))
            rc = em_err_set(err, EM_ECORRUPT, "%zu bytes or their checksum differ from the "
                            "stage's reference", v.n);
        if (rc < 0 && r->node)
            return em_err_prefix(err, "context blob of rdd %u", r->node->id);
        if (rc < 0)
            return em_err_prefix(err, "stage result %s",
                                 r->field == EM__STAGE_REF_RES_BLOB ? "blob" : "zero value");
        count(&g_borrowed, v.n);
        r->resolved = true;
        if (r->field == EM__STAGE_REF_RES_BLOB) {
            st->res.blob = v;
        } else if (r->field == EM__STAGE_REF_RES_ZERO) {
            st->res.zero = v;
        } else {
            /* Borrowed: the stage never writes a blob; em__stage_destroy gives it back
             * before the graph frees its nodes. */
            em_free(r->node->blob);
            r->node->blob = (uint8_t *)(uintptr_t)v.p;
            r->node->blob_len = v.n;
        }
    }
    return 0;
}

int em__stage_decode(const char *json, size_t len, em_stage *st, em_err *err)
{
    json_error_t je;
    int rc;
    memset(st, 0, sizeof *st);
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return em_err_set(err, EM_ECORRUPT, "stage: JSON error at line %d column %d: %s",
                          je.line, je.column, je.text);
    json_t *ver = json_object_get(doc, "version"), *ms = json_object_get(doc, "map_side");
    if (!json_is_integer(ver) || json_integer_value(ver) != 1 || !json_is_boolean(ms)) {
        rc = em_err_set(err, EM_ECORRUPT, "stage: needs \"version\": 1 and \"map_side\"");
        goto out;
    }
    st->map_side = json_is_true(ms);
    if ((rc = em_plan_from_json_value(json_object_get(doc, "plan"), &st->graph, &st->root,
                                      err)) < 0)
        goto out;
    if (st->map_side && (st->root->op != EM_OP_SHUFFLED || st->root->nparents != 1)) {
        rc = em_err_set(err, EM_EPLAN, "stage: map stage root (rdd %u) is not a shuffle "
                        "with its parent", st->root->id);
        goto out;
    }
    if (!st->map_side)
        rc = dec_result(json_object_get(doc, "result"), st, err);
    if (rc == 0)
        rc = dec_refs(json_object_get(json_object_get(doc, "plan"), "nodes"), st, err);
out:
    json_decref(doc);
    if (rc < 0)
        em__stage_destroy(st);
    return rc;
}

void em__stage_destroy(em_stage *st)
{
    for (size_t i = 0; i < st->nrefs; i++) {
        struct em_stage_ref *r = &st->refs[i];
        if (r->resolved && r->node) {   /* borrowed (em__stage_resolve): not the graph's to free */
            r->node->blob = NULL;
            r->node->blob_len = 0;
        }
        for (size_t j = 0; j < r->nbs; j++)
            em_batch_unref(r->bs[j]);
        em_free(r->bs);
    }
    em_plan_graph_free(st->graph);
    em_free(st->res_fn);
    em_free(st->res_path);
    em_free(st->res_fn_init);
    em_free(st->res_blob);
    em_free(st->res_zero);
    em_free(st->refs);
    memset(st, 0, sizeof *st);
}
