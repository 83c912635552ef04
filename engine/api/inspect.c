/* engine/api/inspect.c - what a program may ask of a dataset without running anything: its
 * plan error, id, partition count and partitioner, a debug string of its lineage, and the
 * lineage's depth (when to checkpoint). A released handle answers as the invalid dataset it
 * names (release.c): an error, id 0.
 * THREADS: any thread; the answers read the node the handle names, which only
 * em_rdd_release (another thread) may change. */
#include "engine/api/api_int.h"

const em_err *em_rdd_error(const em_rdd *r)
{
    return r->node->err.code != 0 ? &r->node->err : NULL;
}

uint32_t em_rdd_id(const em_rdd *r)
{
    return em__rdd_is_released(r) ? 0 : r->node->id;
}

uint32_t em_rdd_num_partitions(const em_rdd *r)
{
    return r->node->nparts;
}

em_partitioner_kind em_rdd_partitioner(const em_rdd *r)
{
    return r->node->part.kind;
}

static void debug_node(em_vbuf *b, const em_plan_node *n, int depth)
{
    static const char *const levels[] = {"", " [memory]", " [memory+disk]", " [disk]"};
    for (int i = 0; i < depth; i++)
        em_vbuf_append(b, i + 1 == depth ? " +-" : " | ", 3);
    em_vbuf_printf(b, "(%u) %s [%u] %s%s%s%s\n", n->nparts, n->name ? n->name : em_op_name(n->op),
                   n->id, em_op_name(n->op), n->fn ? " " : "", n->fn ? n->fn : "",
                   (unsigned)n->level < 4 ? levels[n->level] : "");
    for (uint32_t i = 0; i < n->nparents && depth < 64; i++)
        debug_node(b, n->parents[i], depth + 1);
}

char *em_rdd_debug_string(const em_rdd *r)
{
    em_vbuf b;
    em_vbuf_init(&b);
    debug_node(&b, r->node, 0);
    if (em_vbuf_append(&b, "", 1) < 0) {
        em_vbuf_destroy(&b);
        return NULL;
    }
    size_t len;
    return (char *)em_vbuf_steal(&b, &len);
}

/* Longest chain of nodes from n down to a source, memoized by node id (ids of parents are
 * smaller than their children's, so `memo` has room for all of them). */
static uint32_t depth_of(const em_plan_node *n, uint32_t *memo, uint32_t cap)
{
    if (n->id < cap && memo[n->id])
        return memo[n->id];
    uint32_t d = 0;
    for (uint32_t i = 0; i < n->nparents; i++) {
        uint32_t pd = depth_of(n->parents[i], memo, cap);
        if (pd > d)
            d = pd;
    }
    if (n->id < cap)
        memo[n->id] = d + 1;
    return d + 1;
}

uint32_t em_rdd_lineage_depth(const em_rdd *r)
{
    uint32_t cap = r->node->id + 1;
    uint32_t *memo = em_xcalloc(cap, sizeof *memo);
    uint32_t d = depth_of(r->node, memo, cap);
    em_free(memo);
    return d;
}
