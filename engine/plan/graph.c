/* engine/plan/graph.c - the lineage graph: node allocation, lookup, parent links and
 * partitioning specs (what each operation is: ops.c).
 *
 * DESIGN: a graph owns an array of node pointers sorted by id, so lookup is a binary search.
 * Nodes made by em_plan_node_new get increasing ids from 1 and are appended; a decoder that
 * sets ids itself inserts in place (encoded plans list nodes by increasing id, so that is
 * an append too). */
#include <string.h>
#include <unistd.h>

#include "engine/plan/plan_int.h"

struct em_plan_graph {
    em_plan_node **nodes;   /* owned nodes, nnodes entries */
    uint32_t nnodes;
    size_t cap;             /* of nodes (em_arr_grow) */
    uint32_t next_id;       /* id of the next em_plan_node_new */
};

em_plan_graph *em_plan_graph_new(void)
{
    em_plan_graph *g = em_xcalloc(1, sizeof *g);
    g->next_id = 1;
    return g;
}

void em__plan_node_clear(em_plan_node *n)
{
    em_free(n->parents);
    for (uint32_t i = 0; i < n->part.nbounds; i++)
        em_free((void *)n->part.bounds[i].p);
    em_free(n->part.bounds);
    em_free(n->fn);
    em_free(n->fn_create);
    em_free(n->fn_merge);
    em_free(n->blob);
    em_free(n->zero);
    for (uint32_t i = 0; i < n->nsplits; i++)
        em_free(n->splits[i].path);
    em_free(n->splits);
    em_free(n->zip_starts);
    em_free(n->coalesce_starts);
    em_free(n->name);
    if (n->ckpt_cleanup_dir) {
        /* A reliable checkpoint whose context asked for cleanup (driver graph only: the
         * field is never encoded into stage JSON). The parent <app> directory goes too when
         * this was its last checkpoint. */
        em_err err = EM_ERR_INIT;
        if (em_rm_rf(n->ckpt_cleanup_dir, &err) < 0)
            em_log(EM_LOG_WARN, "checkpoint cleanup: %s", err.msg);
        char *slash = strrchr(n->ckpt_cleanup_dir, '/');
        if (slash && slash != n->ckpt_cleanup_dir) {
            *slash = '\0';
            rmdir(n->ckpt_cleanup_dir);   /* fails harmlessly while other checkpoints live */
        }
        em_free(n->ckpt_cleanup_dir);
    }
}

void em_plan_graph_free(em_plan_graph *g)
{
    if (!g)
        return;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        em__plan_node_clear(g->nodes[i]);
        em_free(g->nodes[i]);
    }
    em_free(g->nodes);
    em_free(g);
}

/* Index of the first node whose id is >= id. */
static uint32_t lower_bound(const em_plan_graph *g, uint32_t id)
{
    uint32_t lo = 0, hi = g->nnodes;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (g->nodes[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

em_plan_node *em__plan_node_new_id(em_plan_graph *g, em_op op, uint32_t id)
{
    em_plan_node *n = em_xcalloc(1, sizeof *n);
    n->id = id;
    n->op = op;
    g->nodes = em_arr_xgrow(g->nodes, &g->cap, (size_t)g->nnodes + 1, sizeof *g->nodes);
    uint32_t at = lower_bound(g, id);
    memmove(g->nodes + at + 1, g->nodes + at, (g->nnodes - at) * sizeof *g->nodes);
    g->nodes[at] = n;
    g->nnodes++;
    if (id >= g->next_id)
        g->next_id = id + 1;
    return n;
}

void em_plan_graph_remove(em_plan_graph *g, em_plan_node *n)
{
    uint32_t at = lower_bound(g, n->id);
    EM_ASSERT(at < g->nnodes && g->nodes[at] == n);
    memmove(g->nodes + at, g->nodes + at + 1, (g->nnodes - at - 1) * sizeof *g->nodes);
    g->nnodes--;
    em__plan_node_clear(n);
    em_free(n);
}

em_plan_node *em_plan_node_new(em_plan_graph *g, em_op op)
{
    return em__plan_node_new_id(g, op, g->next_id);
}

em_plan_node *em_plan_graph_find(const em_plan_graph *g, uint32_t id)
{
    if (!g)
        return NULL;
    uint32_t at = lower_bound(g, id);
    return at < g->nnodes && g->nodes[at]->id == id ? g->nodes[at] : NULL;
}

void em_plan_node_set_parents(em_plan_node *n, em_plan_node *const *parents, uint32_t np)
{
    em_free(n->parents);
    n->parents = NULL;
    n->nparents = np;
    if (np) {
        n->parents = em_xmalloc(np * sizeof *parents);
        memcpy(n->parents, parents, np * sizeof *parents);
    }
}

bool em_part_spec_equal(const em_part_spec *a, const em_part_spec *b)
{
    if (a->kind == EM_PART_NONE || b->kind == EM_PART_NONE)
        return false;
    if (a->kind != b->kind || a->nparts != b->nparts)
        return false;
    if (a->kind != EM_PART_RANGE)
        return true;
    if (a->descending != b->descending || a->nbounds != b->nbounds)
        return false;
    for (uint32_t i = 0; i < a->nbounds; i++)
        if (!em_slice_eq(a->bounds[i], b->bounds[i]))
            return false;
    return true;
}

int em_part_spec_partitioner(const em_part_spec *s, em_partitioner *out, em_err *err)
{
    switch (s->kind) {
    case EM_PART_HASH:
        if (s->nparts == 0)
            return em_err_set(err, EM_EPLAN, "hash partitioning with 0 partitions");
        em_partitioner_hash_init(out, s->nparts);
        return 0;
    case EM_PART_RANGE:
        if (s->nbounds + 1 != s->nparts)
            return em_err_set(err, EM_EPLAN, "range partitioning: %u bounds for %u partitions",
                              s->nbounds, s->nparts);
        return em_partitioner_range_init(out, s->bounds, s->nbounds, s->descending, err);
    case EM_PART_NONE:
    default:
        return em_err_set(err, EM_EPLAN, "no partitioner (kind %d)", (int)s->kind);
    }
}
