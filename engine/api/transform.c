/* engine/api/transform.c - the narrow transformations: map, flat_map, filter,
 * map_partitions (and their _fixed variants, which declare their output width: the node's
 * width, checked record by record by the executor, keeps the records FIXED), map_values,
 * key_by, keys, values, union, sample, glom, cartesian, zip_with_index, coalesce and
 * repartition. Each makes one node over its parents (node.c); zip_with_index runs a COUNT
 * job first (job.c) for its partitions' start indices.
 *
 * HANDLES: a transformation returns a new handle, except where Spark returns the RDD itself
 * (coalesce to as many partitions or more): then r comes back with one more hold, so that
 * each returned handle is released once (release.c).
 * ERRORS: a transformation always returns a handle. Its node records the first error met:
 * the parent's, a function name that em_registry_resolve rejects, or a bad argument.
 * THREADS: any thread (nodes and handles are made through the locked helpers of node.c). */
#include <string.h>

#include "engine/api/api_int.h"

/* Whether a map function's output is pairs: known built-ins, else as the input. */
static bool map_fn_is_kv(const char *fn, em_slice blob, bool in_kv)
{
    static const char *const kv[] = {"em.pair_with_one", "em.key_with_one", "em.pair_with_empty",
                                     "em.lines_to_pairs", "em.swap", "em.tag_with_empty",
                                     "em.split_word_pairs"};
    static const char *const plain[] = {"em.keys", "em.values", "em.split_words"};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        if (strcmp(fn, kv[i]) == 0)
            return true;
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        if (strcmp(fn, plain[i]) == 0)
            return false;
    if (strcmp(fn, "em.record_from_key") == 0 || strcmp(fn, "em.record_from_value") == 0)
        return blob.n == 2 && memcmp(blob.p, "kv", 2) == 0;
    return in_kv;
}

/* A one-function node over r. */
static em_rdd *fn_node(em_rdd *r, em_op op, uint32_t flags, const char *fn, em_fn_kind kind,
                       em_slice ctx, const char *name)
{
    em_plan_node *n = em__node_new(r->sc, op, &r->node, 1, name);
    n->flags = flags;
    if (em_plan_node_set_fn(n, &n->fn, fn, kind))
        em_plan_node_set_blob(n, ctx);
    return em__rdd_wrap(r->sc, n);
}

em_rdd *em_rdd_map(em_rdd *r, const char *fn, em_slice ctx)
{
    em_rdd *o = fn_node(r, EM_OP_MAP, 0, fn, EM_FN_MAP, ctx, "map");
    o->node->is_kv = fn && map_fn_is_kv(fn, ctx, r->node->is_kv);
    o->node->width = 0;
    return o;
}

em_rdd *em_rdd_flat_map(em_rdd *r, const char *fn, em_slice ctx)
{
    em_rdd *o = fn_node(r, EM_OP_MAP, 0, fn, EM_FN_MAP, ctx, "flat_map");
    o->node->is_kv = fn && map_fn_is_kv(fn, ctx, r->node->is_kv);
    o->node->width = 0;
    return o;
}

em_rdd *em_rdd_filter(em_rdd *r, const char *fn, em_slice ctx)
{
    em_rdd *o = fn_node(r, EM_OP_FILTER, 0, fn, EM_FN_FILTER, ctx, "filter");
    em_plan_node_set_part(o->node, &r->node->part);
    return o;
}

em_rdd *em_rdd_map_partitions(em_rdd *r, const char *fn, em_slice ctx,
                              bool preserves_partitioning)
{
    em_rdd *o = fn_node(r, EM_OP_MAP_PARTITIONS, 0, fn, EM_FN_PARTITION, ctx, "map_partitions");
    o->node->width = 0;
    if (preserves_partitioning)
        em_plan_node_set_part(o->node, &r->node->part);
    return o;
}

/* The _fixed variants: plain records of exactly `width` bytes (checked by the executor). */
static em_rdd *fixed(em_rdd *o, uint32_t width)
{
    if (width == 0)
        em_plan_node_fail(o->node, EM_EINVAL, "declared record width 0 (must be >= 1)");
    if (width > EM_BATCH_MAX_REC_LEN)
        em_plan_node_fail(o->node, EM_EINVAL, "declared record width %u is too large", width);
    o->node->is_kv = false;
    o->node->width = width;
    return o;
}

em_rdd *em_rdd_map_fixed(em_rdd *r, const char *fn, em_slice ctx, uint32_t width)
{
    return fixed(fn_node(r, EM_OP_MAP, 0, fn, EM_FN_MAP, ctx, "map_fixed"), width);
}

em_rdd *em_rdd_flat_map_fixed(em_rdd *r, const char *fn, em_slice ctx, uint32_t width)
{
    return fixed(fn_node(r, EM_OP_MAP, 0, fn, EM_FN_MAP, ctx, "flat_map_fixed"), width);
}

em_rdd *em_rdd_map_partitions_fixed(em_rdd *r, const char *fn, em_slice ctx,
                                    bool preserves_partitioning, uint32_t width)
{
    em_rdd *o = em_rdd_map_partitions(r, fn, ctx, preserves_partitioning);
    em_free(o->node->name);
    o->node->name = em_xstrdup("map_partitions_fixed");
    return fixed(o, width);
}

static em_rdd *values_node(em_rdd *r, const char *fn, em_slice ctx, const char *name)
{
    em_rdd *o = fn_node(r, EM_OP_MAP, EM_NODE_VALUES_ONLY, fn, EM_FN_MAP, ctx, name);
    o->node->is_kv = true;
    o->node->width = 0;
    em_plan_node_set_part(o->node, &r->node->part);
    return o;
}

em_rdd *em_rdd_map_values(em_rdd *r, const char *fn, em_slice ctx)
{
    return values_node(r, fn, ctx, "map_values");
}

em_rdd *em_rdd_flat_map_values(em_rdd *r, const char *fn, em_slice ctx)
{
    return values_node(r, fn, ctx, "flat_map_values");
}

em_rdd *em_rdd_key_by(em_rdd *r, const char *fn, em_slice ctx)
{
    em_rdd *o = fn_node(r, EM_OP_MAP, EM_NODE_KEY_BY, fn, EM_FN_MAP, ctx, "key_by");
    o->node->is_kv = true;
    o->node->width = 0;
    return o;
}

em_rdd *em_rdd_keys(em_rdd *r)
{
    em_rdd *o = fn_node(r, EM_OP_MAP, 0, "em.keys", EM_FN_MAP, em_slice_make(NULL, 0), "keys");
    o->node->is_kv = false;
    o->node->width = 0;
    return o;
}

em_rdd *em_rdd_values(em_rdd *r)
{
    em_rdd *o =
        fn_node(r, EM_OP_MAP, 0, "em.values", EM_FN_MAP, em_slice_make(NULL, 0), "values");
    o->node->is_kv = false;
    o->node->width = 0;
    return o;
}

em_rdd *em_rdd_union(em_rdd *a, em_rdd *b)
{
    em_plan_node *ps[2] = {a->node, b->node};
    em_plan_node *n = em__node_new(a->sc, EM_OP_UNION, ps, 2, "union");
    if (a->sc != b->sc)
        em_plan_node_fail(n, EM_EINVAL, "union of datasets of two contexts");
    n->is_kv = a->node->is_kv && b->node->is_kv;
    n->width = a->node->width == b->node->width ? a->node->width : 0;
    if (em_part_spec_equal(&a->node->part, &b->node->part)) {
        n->flags |= EM_NODE_ZIP_PARTS;
        n->nparts = a->node->nparts;
        em_plan_node_set_part(n, &a->node->part);
    } else {
        uint64_t sum = (uint64_t)a->node->nparts + b->node->nparts;
        if (sum > UINT32_MAX)
            em_plan_node_fail(n, EM_EINVAL, "%llu partitions", (unsigned long long)sum);
        n->nparts = (uint32_t)sum;
    }
    return em__rdd_wrap(a->sc, n);
}

em_rdd *em_rdd_sample(em_rdd *r, bool with_replacement, double fraction, uint64_t seed)
{
    em_plan_node *n = em__node_new(r->sc, EM_OP_SAMPLE, &r->node, 1, "sample");
    if (!(fraction >= 0.0) || (!with_replacement && fraction > 1.0))
        em_plan_node_fail(n, EM_EINVAL, "fraction %g (0..1 without replacement, >= 0 with)",
                      fraction);
    n->sample_fraction = fraction;
    n->sample_with_replacement = with_replacement;
    n->seed = seed;
    em_plan_node_set_part(n, &r->node->part);
    return em__rdd_wrap(r->sc, n);
}

em_rdd *em_rdd_glom(em_rdd *r)
{
    em_plan_node *n = em__node_new(r->sc, EM_OP_GLOM, &r->node, 1, "glom");
    n->is_kv = false;
    n->width = 0;
    return em__rdd_wrap(r->sc, n);
}

em_rdd *em_rdd_cartesian(em_rdd *a, em_rdd *b)
{
    em_plan_node *ps[2] = {a->node, b->node};
    em_plan_node *n = em__node_new(a->sc, EM_OP_CARTESIAN, ps, 2, "cartesian");
    uint64_t np = (uint64_t)a->node->nparts * b->node->nparts;
    if (a->sc != b->sc)
        em_plan_node_fail(n, EM_EINVAL, "cartesian of datasets of two contexts");
    if (np > (1u << 24))
        em_plan_node_fail(n, EM_EINVAL, "%u x %u partitions is too many", a->node->nparts,
                      b->node->nparts);
    n->nparts = (uint32_t)np;
    n->is_kv = true;
    n->width = 0;
    return em__rdd_wrap(a->sc, n);
}

em_rdd *em_rdd_zip_with_index(em_rdd *r)
{
    em_context *sc = r->sc;
    em_plan_node *n = em__node_new(sc, EM_OP_ZIP_WITH_INDEX, &r->node, 1, "zip_with_index");
    uint32_t np = r->node->nparts;
    n->is_kv = true;
    n->width = 0;
    n->zip_starts = em_xcalloc(np ? np : 1, sizeof *n->zip_starts);
    if (n->err.code != 0)
        return em__rdd_wrap(sc, n);
    em_task_result *res = em_xcalloc(np ? np : 1, sizeof *res);
    em_result_spec spec = {.op = EM_RESULT_COUNT};
    em_err err = EM_ERR_INIT;
    if (em__run_job(r, &spec, NULL, np, res, &err) < 0) {
        em_plan_node_fail(n, err.code, "counting partitions: %s", err.msg);
    } else {
        uint64_t start = 0;
        for (uint32_t i = 0; i < np; i++) {
            n->zip_starts[i] = start;
            start += res[i].count;
        }
    }
    for (uint32_t i = 0; i < np; i++)
        em_task_result_destroy(&res[i]);
    em_free(res);
    return em__rdd_wrap(sc, n);
}

em_rdd *em_rdd_coalesce(em_rdd *r, uint32_t nparts, bool shuffle)
{
    em_context *sc = r->sc;
    if (shuffle) {
        em_plan_node *n = em__node_shuffled(sc, r->node, nparts, "repartition");
        n->flags |= EM_NODE_NO_REDUCE;
        n->map_part = EM_MAP_PART_ROUND_ROBIN;
        n->seed = em_mix64(sc->seed_counter++);
        return em__rdd_wrap(sc, n);
    }
    uint32_t p = r->node->nparts;
    if (nparts >= p && nparts > 0)
        return em__rdd_again(r);   /* Spark returns the RDD itself; one more release owed */
    em_plan_node *n = em__node_new(sc, EM_OP_COALESCE, &r->node, 1, "coalesce");
    if (nparts == 0) {
        em_plan_node_fail(n, EM_EINVAL, "coalesce to 0 partitions");
        nparts = 1;
    }
    n->nparts = nparts;
    n->coalesce_starts = em_xcalloc(nparts + 1, sizeof *n->coalesce_starts);
    for (uint32_t i = 0; i <= nparts; i++)
        n->coalesce_starts[i] = (uint32_t)((uint64_t)i * p / nparts);
    return em__rdd_wrap(sc, n);
}

em_rdd *em_rdd_repartition(em_rdd *r, uint32_t nparts)
{
    return em_rdd_coalesce(r, nparts ? nparts : r->sc->default_par, true);
}
