/* engine/api/pairs.c - pair operations: the combine_by_key family, group_by_key, distinct,
 * cogroup and joins, sort_by_key / sort_by and partition_by.
 *
 * SHUFFLE OR NOT: the reduce side of each is built by em__build_reduce (node.c): in place
 * (LOCAL_REDUCE) when the parent is already partitioned as the target, else a SHUFFLED
 * node that cuts a stage. Pair ops that need several nodes (distinct, cogroup and joins,
 * sort_by) build them through the transformations of transform.c and drop the internal
 * handles of the steps (release.c).
 *
 * RANGE BOUNDS (Spark's RangePartitioner): a SAMPLE_KEYS job takes up to
 * ceil(3 * min(20 * nparts, 1e6) / parent partitions) keys per partition by reservoir
 * sampling, each cut to EM_SAMPLE_KEY_MAX bytes (bounds travel in stage plans: exec.h);
 * each sampled key weighs (records in its partition / keys sampled there); the sorted
 * candidates are cut at every 1/nparts of the total weight, skipping bounds equal to
 * the previous one (so fewer partitions may result).
 * THREADS: any thread (nodes and handles are made through the locked helpers of node.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api/api_int.h"

/* The combine_by_key family: AGGREGATE with map-side combine. */
static em_rdd *agg_node(em_rdd *r, const char *create, const char *mv, const char *mc,
                        em_slice ctx, const em_slice *zero, uint32_t nparts, const char *name)
{
    em_part_spec t = em__hash_target(r->sc, r->node, nparts);
    em_plan_node *n =
        em__build_reduce(r->sc, r->node, &t, EM_REDUCE_AGGREGATE, EM_NODE_MAP_COMBINE, name);
    if (create)
        em_plan_node_set_fn(n, &n->fn_create, create, EM_FN_CREATE);
    em_plan_node_set_fn(n, &n->fn, mv, EM_FN_REDUCE);
    em_plan_node_set_fn(n, &n->fn_merge, mc, EM_FN_REDUCE);
    em_plan_node_set_blob(n, ctx);
    if (zero)
        em_plan_node_set_zero(n, *zero);
    return em__rdd_wrap(r->sc, n);
}

em_rdd *em_rdd_combine_by_key(em_rdd *r, const char *create_fn, const char *merge_value_fn,
                              const char *merge_combiners_fn, em_slice ctx, uint32_t nparts)
{
    return agg_node(r, create_fn, merge_value_fn, merge_combiners_fn, ctx, NULL, nparts,
                    "combine_by_key");
}

em_rdd *em_rdd_reduce_by_key(em_rdd *r, const char *fn, em_slice ctx, uint32_t nparts)
{
    return agg_node(r, NULL, fn, fn, ctx, NULL, nparts, "reduce_by_key");
}

em_rdd *em_rdd_fold_by_key(em_rdd *r, em_slice zero, const char *fn, em_slice ctx,
                           uint32_t nparts)
{
    return agg_node(r, NULL, fn, fn, ctx, &zero, nparts, "fold_by_key");
}

em_rdd *em_rdd_aggregate_by_key(em_rdd *r, em_slice zero, const char *seq_fn,
                                const char *comb_fn, em_slice ctx, uint32_t nparts)
{
    return agg_node(r, NULL, seq_fn, comb_fn, ctx, &zero, nparts, "aggregate_by_key");
}

em_rdd *em_rdd_aggregate_by_key_acc(em_rdd *r, const em_agg *a, uint32_t nparts)
{
    em_plan_node *n = em__acc_node(r, a, a ? a->seq : NULL, nparts, "aggregate_by_key_acc");
    if (a && !a->seq)
        em_plan_node_fail(n, EM_EINVAL, "aggregate_by_key_acc: missing seq (add) function");
    return em__rdd_wrap(r->sc, n);
}

em_rdd *em_rdd_group_by_key(em_rdd *r, uint32_t nparts)
{
    em_part_spec t = em__hash_target(r->sc, r->node, nparts);
    em_plan_node *n = em__build_reduce(r->sc, r->node, &t, EM_REDUCE_GROUP, 0, "group_by_key");
    return em__rdd_wrap(r->sc, n);
}

/* distinct and sort_by carry each record tagged with its kind (fn.h "tagged record"), so
 * the records come back as they went in whatever r->node->is_kv guessed (a user map may
 * turn plain records into pairs). is_kv of the result stays the guess, for planning. */
em_rdd *em_rdd_distinct(em_rdd *r, uint32_t nparts)
{
    em_slice none = em_slice_make(NULL, 0);
    em_rdd *m = em_rdd_map(r, "em.tag_with_empty", none);
    em_rdd *red = em_rdd_reduce_by_key(m, "em.first", none, nparts);
    em_rdd *o = em_rdd_map(red, "em.record_from_tagged_key", none);
    em__rdd_drop(m);
    em__rdd_drop(red);
    o->node->is_kv = r->node->is_kv;
    o->node->width = r->node->width;
    em_free(o->node->name);
    o->node->name = em_xstrdup("distinct");
    return o;
}

/* ---------------------------------------------------------------- cogroup and joins */

static em_plan_node *tag_node(em_rdd *r, uint32_t tag)
{
    em_plan_node *n = em__node_new(r->sc, EM_OP_TAG, &r->node, 1, "tag");
    n->tag = tag;
    n->is_kv = true;
    n->width = 0;
    em_plan_node_set_part(n, &r->node->part);
    return n;
}

static em_rdd *cogroup_node(em_rdd *a, em_rdd *b, uint32_t nparts, uint32_t flags,
                            const char *name)
{
    em_context *sc = a->sc;
    em_rdd *ta = em__rdd_wrap(sc, tag_node(a, 0));
    em_rdd *tb = em__rdd_wrap(sc, tag_node(b, 1));
    em_rdd *u = em_rdd_union(ta, tb);
    em_part_spec t = {.kind = EM_PART_HASH, .nparts = nparts};
    if (!nparts)
        t.nparts = a->node->part.kind != EM_PART_NONE   ? a->node->part.nparts
                   : b->node->part.kind != EM_PART_NONE ? b->node->part.nparts
                                                        : sc->default_par;
    em_plan_node *g = em__build_reduce(sc, u->node, &t, EM_REDUCE_GROUP, 0, "cogroup_group");
    em_plan_node *n = em__node_new(sc, EM_OP_COGROUP_SPLIT, &g, 1, name);
    n->flags = flags;
    n->is_kv = true;
    em_plan_node_set_part(n, &t);
    em_rdd *o = em__rdd_wrap(sc, n);
    em__rdd_drop(ta);
    em__rdd_drop(tb);
    em__rdd_drop(u);
    return o;
}

em_rdd *em_rdd_cogroup(em_rdd *a, em_rdd *b, uint32_t nparts)
{
    return cogroup_node(a, b, nparts, 0, "cogroup");
}

em_rdd *em_rdd_join(em_rdd *a, em_rdd *b, uint32_t nparts)
{
    return cogroup_node(a, b, nparts, EM_NODE_JOIN_INNER, "join");
}

em_rdd *em_rdd_left_outer_join(em_rdd *a, em_rdd *b, uint32_t nparts)
{
    return cogroup_node(a, b, nparts, EM_NODE_JOIN_INNER | EM_NODE_JOIN_LEFT,
                        "left_outer_join");
}

em_rdd *em_rdd_right_outer_join(em_rdd *a, em_rdd *b, uint32_t nparts)
{
    return cogroup_node(a, b, nparts, EM_NODE_JOIN_INNER | EM_NODE_JOIN_RIGHT,
                        "right_outer_join");
}

em_rdd *em_rdd_full_outer_join(em_rdd *a, em_rdd *b, uint32_t nparts)
{
    return cogroup_node(a, b, nparts,
                        EM_NODE_JOIN_INNER | EM_NODE_JOIN_LEFT | EM_NODE_JOIN_RIGHT,
                        "full_outer_join");
}

/* ---------------------------------------------------------------- range partitioning */

typedef struct cand {
    em_slice key;
    double weight;
} cand;

static int cmp_cand(const void *a, const void *b)
{
    return em_slice_cmp(((const cand *)a)->key, ((const cand *)b)->key);
}

/* Collects the weighted candidates of a SAMPLE_KEYS job's results. */
static cand *candidates(em_task_result *res, uint32_t np, size_t *n)
{
    cand *c = NULL;
    size_t k = 0;
    for (uint32_t i = 0; i < np; i++) {
        uint64_t sampled = 0;
        for (size_t b = 0; b < res[i].nbatches; b++)
            sampled += em_batch_nrecs(res[i].batches[b]);
        if (sampled == 0)
            continue;
        double w = (double)res[i].count / (double)sampled;
        for (size_t b = 0; b < res[i].nbatches; b++) {
            em_batch_iter it;
            em_rec rec;
            em_batch_iter_init(&it, res[i].batches[b]);
            while (em_batch_iter_next(&it, &rec)) {
                c = em_xrealloc(c, (k + 1) * sizeof *c);
                c[k++] = (cand){rec.key.p ? rec.key : rec.val, w};
            }
        }
    }
    *n = k;
    return c;
}

/* Spark's RangePartitioner.determineBounds over sorted candidates. */
static uint32_t determine_bounds(cand *c, size_t n, uint32_t nparts, em_slice *bounds)
{
    double sum = 0, cum = 0;
    uint32_t nb = 0;
    for (size_t i = 0; i < n; i++)
        sum += c[i].weight;
    double step = sum / nparts, target = step;
    for (size_t i = 0; i < n && nb + 1 < nparts; i++) {
        cum += c[i].weight;
        if (cum >= target && (nb == 0 || em_slice_cmp(c[i].key, bounds[nb - 1]) > 0)) {
            bounds[nb++] = c[i].key;
            target += step;
        }
    }
    return nb;
}

/* Samples r's keys and builds the range-partitioned node: SORT reduce (sort_by_key) or
 * NO_REDUCE (partition_by). Returns the parent itself for partition_by when it is already
 * so partitioned. */
static em_plan_node *range_node(em_rdd *r, uint32_t nparts, bool ascending, bool no_reduce,
                                const char *name)
{
    em_context *sc = r->sc;
    uint32_t P = r->node->nparts;
    em_part_spec spec = {.kind = EM_PART_RANGE, .nparts = 1, .descending = !ascending};
    em_task_result *res = NULL;
    cand *c = NULL;
    em_slice *bounds = NULL;
    em_err err = EM_ERR_INIT;
    int rc = 0;

    if (nparts > 1 && P > 0 && r->node->err.code == 0) {
        double size = fmin(20.0 * nparts, 1e6);
        em_result_spec rs = {.op = EM_RESULT_SAMPLE_KEYS,
                             .n = (uint64_t)ceil(3.0 * size / P),
                             .seed = em_mix64(r->node->id * 0x9e3779b97f4a7c15ULL)};
        res = em_xcalloc(P, sizeof *res);
        if ((rc = em__run_job(r, &rs, NULL, P, res, &err)) == 0) {
            size_t n;
            c = candidates(res, P, &n);
            if (n)
                qsort(c, n, sizeof *c, cmp_cand);
            bounds = em_xcalloc(nparts, sizeof *bounds);
            spec.nbounds = determine_bounds(c, n, nparts, bounds);
            spec.bounds = bounds;
            spec.nparts = spec.nbounds + 1;
        }
    }
    em_plan_node *out;
    if (no_reduce && em_part_spec_equal(&r->node->part, &spec)) {
        out = r->node;
    } else if (no_reduce) {
        out = em__node_shuffled(sc, r->node, spec.nparts, name);
        out->flags |= EM_NODE_NO_REDUCE;
        out->map_part = EM_MAP_PART_RANGE;
        em_plan_node_set_part(out, &spec);
    } else {
        out = em__build_reduce(sc, r->node, &spec, EM_REDUCE_SORT,
                               ascending ? 0 : EM_NODE_DESCENDING, name);
    }
    if (rc < 0)
        em_plan_node_fail(out, err.code, "sampling keys: %s", err.msg);
    for (uint32_t i = 0; res && i < P; i++)
        em_task_result_destroy(&res[i]);
    em_free(res);
    em_free(c);
    em_free(bounds);
    return out;
}

em_rdd *em_rdd_sort_by_key(em_rdd *r, bool ascending, uint32_t nparts)
{
    em_plan_node *n = range_node(r, nparts ? nparts : r->node->nparts, ascending, false,
                                 "sort_by_key");
    return em__rdd_wrap(r->sc, n);
}

em_rdd *em_rdd_sort_by(em_rdd *r, const char *key_fn, em_slice ctx, bool ascending,
                       uint32_t nparts)
{
    em_rdd *k = em_rdd_key_by(r, key_fn, ctx);
    k->node->flags |= EM_NODE_TAGGED;
    em_rdd *s = em_rdd_sort_by_key(k, ascending, nparts ? nparts : r->node->nparts);
    em_rdd *o = em_rdd_map(s, "em.record_from_tagged_value", em_slice_make(NULL, 0));
    em__rdd_drop(k);
    em__rdd_drop(s);
    o->node->is_kv = r->node->is_kv;
    o->node->width = r->node->width;
    em_free(o->node->name);
    o->node->name = em_xstrdup("sort_by");
    return o;
}

em_rdd *em_rdd_partition_by(em_rdd *r, em_partitioner_kind kind, uint32_t nparts)
{
    em_context *sc = r->sc;
    if (kind == EM_PART_RANGE) {
        em_plan_node *n = range_node(r, nparts ? nparts : r->node->nparts, true, true,
                                     "partition_by");
        return n == r->node ? em__rdd_again(r) : em__rdd_wrap(sc, n);
    }
    em_part_spec t = em__hash_target(sc, r->node, nparts);
    if (kind == EM_PART_HASH && em_part_spec_equal(&r->node->part, &t))
        return em__rdd_again(r);
    em_plan_node *n = em__node_shuffled(sc, r->node, t.nparts, "partition_by");
    n->flags |= EM_NODE_NO_REDUCE;
    n->map_part = EM_MAP_PART_HASH;
    em_plan_node_set_part(n, &t);
    if (kind != EM_PART_HASH)
        em_plan_node_fail(n, EM_EINVAL, "partitioner kind %d (HASH or RANGE)", (int)kind);
    return em__rdd_wrap(sc, n);
}
