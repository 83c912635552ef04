/* engine/api/release.c - em_rdd_release: reference-counted datasets and what dies with them
 * (Spark's ContextCleaner, without a garbage collector: the program says when a handle is
 * garbage).
 *
 * DESIGN: em_plan_node.refs counts the unreleased handles naming a node plus the parent
 * links of living nodes naming it (em__rdd_wrap and em__node_new take them). Releasing a
 * handle drops its reference; a node whose count reaches 0 dies, which drops the
 * references it held on its parents, and so on down the lineage (an explicit stack, so a
 * lineage thousands of nodes deep needs no deep recursion). A dying node
 *   - SHUFFLED: its shuffle is removed: the map-output tracker forgets it, then local mode
 *     queues shuffle_<sid>_* under the context's shuffle dir for the context's cleaner
 *     thread (em_shuffle_cleaner: the action that released it does not wait for the
 *     unlinks) and cluster mode sends every live executor `remove_shuffle`
 *     (em_cluster_remove_shuffle), whose cleaner deletes them there;
 *   - persisted: its cached partitions are dropped (as em_rdd_unpersist);
 *   - PARALLELIZE: its input blocks are dropped (driver store and executors' copies);
 *   - CHECKPOINT_FILE of a local checkpoint: the checkpoint's blocks are dropped (a reliable
 *     checkpoint's directory goes only with ember.checkpoint.cleanup=true, when the node is
 *     freed: engine/plan/graph.c);
 * and is then freed (em_plan_graph_remove), so a long iterative program keeps a bounded
 * graph as well as bounded files.
 * SAFETY: a job needs exactly the nodes reachable from its final node; em__run_job holds a
 * reference on that node while the job runs (em__node_hold), so a handle released by
 * another thread meanwhile cannot free anything a running job reads. Shuffle ids are never reused,
 * so a removed shuffle can never be mistaken for a later one.
 * HOLDS: coalesce and partition_by return their argument when they change nothing (as
 * Spark does); such a handle counts one hold per return, and only its last release drops
 * the node reference, so `b = coalesce(a, ...); release(a); use(b)` stays correct.
 * RELEASED HANDLES keep their struct (owned by the context until em_context_free) and name
 * sc->released, a node carrying the error "dataset released": every API call through them
 * then behaves as on any invalid dataset (an error, never a crash).
 * THREADS: any thread, under sc->lock (recursive: a death may drop blocks). */
#include <string.h>

#include "engine/api/api_int.h"

/* The node released handles name, made on first use. Its own reference keeps it alive. */
static em_plan_node *released_node(em_context *sc)
{
    if (!sc->released) {
        em_plan_node *n = em_plan_node_new(sc->graph, EM_OP_RANGE);
        n->name = em_xstrdup("released");
        n->range_step = 1;       /* an empty range, were it ever decoded */
        n->refs = 1;
        em_err_set(&n->err, EM_EINVAL, "dataset released: em_rdd_release was called on this "
                   "handle, which cannot be used any more");
        sc->released = n;
    }
    return sc->released;
}

bool em__rdd_is_released(const em_rdd *r)
{
    return r->sc->released && r->node == r->sc->released;
}

void em__drop_rdd_blocks(em_context *sc, uint32_t rdd)
{
    em_block_store_remove_all(sc->store, EM_BLOCK_RDD, rdd);
    /* Cluster mode: the cached partitions live in the executors' stores. */
    if (sc->cluster) {
        em_cluster_forget_rdd(sc->cluster, rdd);
        em_cluster_drop_blocks(sc->cluster, EM_BLOCK_RDD, rdd);
    }
}

static void remove_shuffle(em_context *sc, uint32_t sid)
{
    /* A shuffle no job ever walked has no files and no tracker entry. */
    if (!em_map_tracker_has_shuffle(sc->tracker, sid))
        return;
    em_map_tracker_remove_shuffle(sc->tracker, sid);
    if (sc->cluster) {
        uint32_t n = em_cluster_remove_shuffle(sc->cluster, sid);
        em_log(EM_LOG_DEBUG, "release: shuffle %u removed (%u executors told)", sid, n);
    } else {
        if (sc->cleaner)
            em_shuffle_cleaner_remove(sc->cleaner, sid);   /* returns at once */
        else
            em_shuffle_remove_files(sc->shuffle_dir, sid);
        em_log(EM_LOG_DEBUG, "release: shuffle %u queued for removal", sid);
    }
}

/* What node n's death frees besides the node itself. */
static void on_death(em_context *sc, em_plan_node *n)
{
    if (n->op == EM_OP_SHUFFLED)
        remove_shuffle(sc, n->shuffle_id);
    if (n->level != EM_STORAGE_NONE) {
        n->level = EM_STORAGE_NONE;
        em__drop_rdd_blocks(sc, n->id);
    }
    if (n->op == EM_OP_PARALLELIZE) {
        /* Executors cache the input blocks they fetched (MEMORY_AND_DISK). */
        em_block_store_remove_all(sc->store, EM_BLOCK_INPUT, n->id);
        if (sc->cluster)
            em_cluster_drop_blocks(sc->cluster, EM_BLOCK_INPUT, n->id);
    }
    if (n->op == EM_OP_CHECKPOINT_FILE && (n->flags & EM_NODE_LOCAL_CKPT) && n->ckpt_rdd)
        em__drop_rdd_blocks(sc, n->ckpt_rdd);
}

/* Drops one reference on n; frees every node that dies as a result. */
static void node_unref(em_context *sc, em_plan_node *n)
{
    EM_ASSERT(n->refs > 0);
    if (--n->refs > 0)
        return;
    em_plan_node **stack = em_xmalloc(16 * sizeof *stack);
    size_t depth = 0, cap = 16;
    stack[depth++] = n;
    while (depth > 0) {
        em_plan_node *d = stack[--depth];
        on_death(sc, d);
        for (uint32_t i = 0; i < d->nparents; i++) {
            em_plan_node *p = d->parents[i];
            EM_ASSERT(p->refs > 0);
            if (--p->refs > 0)
                continue;
            stack = em_arr_xgrow(stack, &cap, depth + 1, sizeof *stack);
            stack[depth++] = p;
        }
        em_plan_graph_remove(sc->graph, d);
    }
    em_free(stack);
}

em_rdd *em__rdd_again(em_rdd *r)
{
    pthread_mutex_lock(&r->sc->lock);
    if (!em__rdd_is_released(r))
        r->holds++;
    pthread_mutex_unlock(&r->sc->lock);
    return r;
}

em_plan_node *em__rdd_hold(em_rdd *r)
{
    pthread_mutex_lock(&r->sc->lock);
    em_plan_node *n = r->node;
    n->refs++;
    pthread_mutex_unlock(&r->sc->lock);
    return n;
}

void em__node_unhold(em_context *sc, em_plan_node *n)
{
    pthread_mutex_lock(&sc->lock);
    node_unref(sc, n);
    pthread_mutex_unlock(&sc->lock);
}

void em_rdd_release(em_rdd *r)
{
    if (!r)
        return;
    em_context *sc = r->sc;
    pthread_mutex_lock(&sc->lock);
    if (!em__rdd_is_released(r) && --r->holds == 0) {
        em_plan_node *n = r->node;
        r->node = released_node(sc);
        r->node->refs++;
        node_unref(sc, n);
    }
    pthread_mutex_unlock(&sc->lock);
}

void em__rdd_drop(em_rdd *r)
{
    if (!r)
        return;
    em_context *sc = r->sc;
    EM_ASSERT(r->holds <= 1);   /* internal handles are never handed out twice */
    em_rdd_release(r);
    pthread_mutex_lock(&sc->lock);
    sc->released->refs--;    /* the handle goes, and its reference with it */
    /* Internal handles are dropped soon after they are made: search from the end. */
    for (size_t i = sc->nrdds; i-- > 0;)
        if (sc->rdds[i] == r) {
            memmove(sc->rdds + i, sc->rdds + i + 1, (sc->nrdds - i - 1) * sizeof *sc->rdds);
            sc->nrdds--;
            break;
        }
    pthread_mutex_unlock(&sc->lock);
    em_free(r);
}
