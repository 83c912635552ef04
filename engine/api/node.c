/* engine/api/node.c - making plan nodes and the handles that name them: the one place that
 * adds a node to the context's graph (taking references on its parents) and wraps it in a
 * handle, plus the nodes more than one kind of API call builds: a shuffle with a fresh id,
 * the reduce side of a pair operation (shuffled or in place) and the in-place by-key
 * aggregation of mutable accumulators. Setting a node's functions, blobs, partitioning and
 * error is plan business (engine/plan/build.c).
 *
 * Nothing here runs a job or calls another file of engine/api: sources, transformations,
 * pair operations and aggregations all build on this file (api_int.h, "FILES").
 * ERRORS: a node records the first error met, the parent's included (copied by
 * em__node_new, so derived datasets report the root cause); the scheduler refuses to run
 * such a node.
 * THREADS: any thread; the graph, node references and the handle list change under
 * sc->lock. */
#include "engine/api/api_int.h"

em_rdd *em__rdd_wrap(em_context *sc, em_plan_node *n)
{
    em_rdd *r = em_xmalloc(sizeof *r);
    r->sc = sc;
    r->node = n;
    r->holds = 1;
    pthread_mutex_lock(&sc->lock);
    n->refs++;
    sc->rdds = em_arr_xgrow(sc->rdds, &sc->rdds_cap, sc->nrdds + 1, sizeof *sc->rdds);
    sc->rdds[sc->nrdds++] = r;
    pthread_mutex_unlock(&sc->lock);
    return r;
}

em_plan_node *em__node_new(em_context *sc, em_op op, em_plan_node *const *parents,
                           uint32_t np, const char *name)
{
    pthread_mutex_lock(&sc->lock);
    em_plan_node *n = em_plan_node_new(sc->graph, op);
    em_plan_node_set_parents(n, parents, np);
    for (uint32_t i = 0; i < np; i++)
        parents[i]->refs++;   /* dropped when n dies (release.c) */
    pthread_mutex_unlock(&sc->lock);
    if (name)
        n->name = em_xstrdup(name);
    for (uint32_t i = 0; i < np; i++)
        if (parents[i]->err.code != 0 && n->err.code == 0)
            em_err_copy(&n->err, &parents[i]->err);
    if (np > 0) {
        n->nparts = parents[0]->nparts;
        n->is_kv = parents[0]->is_kv;
        n->width = parents[0]->width;
    }
    return n;
}

em_plan_node *em__node_shuffled(em_context *sc, em_plan_node *parent, uint32_t nparts,
                                const char *name)
{
    em_plan_node *n = em__node_new(sc, EM_OP_SHUFFLED, &parent, 1, name);
    n->shuffle_id = sc->next_shuffle_id++;
    n->nparts = nparts;
    if (nparts == 0 || nparts > EM_SHUFFLE_MAX_PARTS)
        em_plan_node_fail(n, EM_EINVAL, "%u partitions (1..%u)", nparts, EM_SHUFFLE_MAX_PARTS);
    return n;
}

/* ---------------------------------------------------------------- reduce sides
 * SHUFFLE OR NOT: a pair op's target partitioning is HASH(nparts) (RANGE for sorts). When
 * the parent is already partitioned exactly so (em_part_spec_equal), the reduce side runs
 * in place as a LOCAL_REDUCE node and nothing is shuffled (Spark's narrow dependency on a
 * co-partitioned parent); otherwise a SHUFFLED node cuts a stage. */

em_part_spec em__hash_target(em_context *sc, const em_plan_node *parent, uint32_t nparts)
{
    em_part_spec s = {.kind = EM_PART_HASH};
    if (nparts)
        s.nparts = nparts;
    else if (parent->part.kind != EM_PART_NONE)
        s.nparts = parent->part.nparts;
    else
        s.nparts = sc->default_par;
    return s;
}

em_plan_node *em__build_reduce(em_context *sc, em_plan_node *parent, const em_part_spec *target,
                               em_reduce_mode mode, uint32_t flags, const char *name)
{
    em_plan_node *n;
    if (em_part_spec_equal(&parent->part, target)) {
        n = em__node_new(sc, EM_OP_LOCAL_REDUCE, &parent, 1, name);
        n->flags = flags & EM_NODE_DESCENDING;
        n->nparts = parent->nparts;
    } else {
        n = em__node_shuffled(sc, parent, target->nparts, name);
        n->flags = flags;
        n->map_part = target->kind == EM_PART_RANGE ? EM_MAP_PART_RANGE : EM_MAP_PART_HASH;
    }
    n->mode = mode;
    n->is_kv = true;
    n->width = 0;
    em_plan_node_set_part(n, target);
    return n;
}

em_plan_node *em__acc_node(em_rdd *r, const em_agg *a, const char *add, uint32_t nparts,
                           const char *name)
{
    em_part_spec t = em__hash_target(r->sc, r->node, nparts);
    em_plan_node *n = em__build_reduce(r->sc, r->node, &t, EM_REDUCE_AGGREGATE,
                                       EM_NODE_MAP_COMBINE, name);
    n->flags |= EM_NODE_ACC;   /* em__build_reduce keeps only DESCENDING for a local one */
    if (!a) {
        em_plan_node_fail(n, EM_EINVAL, "%s: no em_agg", name);
        return n;
    }
    if (a->size == 0 || a->size > EM_BATCH_MAX_REC_LEN) {
        em_plan_node_fail(n, EM_EINVAL, "%s: accumulator size %zu (1 .. %u)", name, a->size,
                          EM_BATCH_MAX_REC_LEN);
        return n;
    }
    n->acc_size = (uint32_t)a->size;
    if (add)
        em_plan_node_set_fn(n, &n->fn, add, EM_FN_ACC_ADD);
    if (a->init)
        em_plan_node_set_fn(n, &n->fn_create, a->init, EM_FN_ACC_INIT);
    em_plan_node_set_fn(n, &n->fn_merge, a->merge, EM_FN_ACC_MERGE);
    em_plan_node_set_blob(n, a->ctx);
    return n;
}
