/* engine/exec/reduce.c - the reduce side: combiners made from plan nodes, LOCAL_REDUCE
 * (a reducer over the parent's partition) and SHUFFLED leaves (fetch the map outputs of
 * one reduce partition, then stream them or feed them to a reducer).
 *
 * COMBINER from a node: create = fn_create if named; else, when the node has a zero value
 * (fold_by_key, aggregate_by_key), create(v) = fn(zero, v); else none (the first value is
 * the combiner). merge_value = fn; merge_combiners = fn_merge (fn when not named). */
#include <string.h>

#include "engine/exec/exec_int.h"

static int nc_create(void *self, em_slice v, em_vbuf *out, em_err *err)
{
    em_node_combiner *c = self;
    if (c->create)
        return c->create(&c->ctx, v, out, err);
    return c->merge_value(&c->ctx, c->zero, v, out, err);
}

static int nc_merge_value(void *self, em_slice a, em_slice v, em_vbuf *out, em_err *err)
{
    em_node_combiner *c = self;
    return c->merge_value(&c->ctx, a, v, out, err);
}

static int nc_merge_combiners(void *self, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    em_node_combiner *c = self;
    return c->merge_combiners(&c->ctx, a, b, out, err);
}

static const em_combiner_ops nc_ops_create = {nc_create, nc_merge_value, nc_merge_combiners};
static const em_combiner_ops nc_ops_plain = {NULL, nc_merge_value, nc_merge_combiners};

int em__node_combiner_init(em_node_combiner *c, em_task *t, const em_plan_node *n,
                           em_err *err)
{
    em_any_fn f;
    int rc;
    memset(c, 0, sizeof *c);
    c->ctx = (em_fn_ctx){em_slice_make(n->blob, n->blob_len), t};
    if (n->flags & EM_NODE_ACC)
        return em__acc_combiner_init(c, n, err);
    if ((rc = em__node_fn(n, n->fn, EM_FN_REDUCE, &f, err)) < 0)
        return rc;
    c->merge_value = (em_reduce_fn)f;
    c->merge_combiners = c->merge_value;
    if (n->fn_merge) {
        if ((rc = em__node_fn(n, n->fn_merge, EM_FN_REDUCE, &f, err)) < 0)
            return rc;
        c->merge_combiners = (em_reduce_fn)f;
    }
    if (n->fn_create) {
        if ((rc = em__node_fn(n, n->fn_create, EM_FN_CREATE, &f, err)) < 0)
            return rc;
        c->create = (em_create_fn)f;
    }
    c->has_zero = n->zero != NULL;
    c->zero = em_slice_make(n->zero, n->zero_len);
    c->comb.ops = c->create || c->has_zero ? &nc_ops_create : &nc_ops_plain;
    c->comb.self = c;
    c->comb.merge_value8 = em_builtin_merge8((em_any_fn)c->merge_value);
    c->comb.merge_combiners8 = em_builtin_merge8((em_any_fn)c->merge_combiners);
    return 0;
}

void em__node_combiner_destroy(em_node_combiner *c)
{
    em_acc_buf_destroy(&c->tmp);
    em_acc_buf_destroy(&c->tmp2);
}

/* ---------------------------------------------------------------- reducer iterator */

typedef struct red_iter {
    em_iter base;
    em_task *t;
    const em_plan_node *n;
    em_iter *parent;          /* LOCAL_REDUCE input (NULL for SHUFFLED) */
    em_node_combiner comb;
    em_reducer *red;
    bool fed;                 /* input fully added and finished */
    bool stats_done;
    /* SHUFFLED streaming (NO_REDUCE): one source at a time */
    em_shuffle_src *srcs;
    uint32_t nsrcs, at;
    uint32_t part;            /* the reduce partition read (not the task's partition when
                                 a coalesce or union reads the shuffle) */
    em_iter *cur;
} red_iter;

static void red_stats(red_iter *x)
{
    if (x->stats_done || !x->red)
        return;
    em_reducer_stats st;
    em_reducer_stats_get(x->red, &st);
    x->t->metrics->spill_count += st.spill_count;
    x->t->metrics->spill_bytes += st.spill_bytes;
    x->stats_done = true;
}

/* LOCAL_REDUCE: adds the whole input to the reducer and finishes it (once). */
static int red_feed(red_iter *x, em_err *err)
{
    em_rec in;
    int rc;
    if (x->fed)
        return 0;
    while ((rc = em_iter_next(x->parent, &in, err)) == 1) {
        if (!in.key.p)
            return em_err_set(err, EM_EINVAL, "local_reduce (rdd %u): input record is "
                              "not a pair", x->n->id);
        if ((rc = em_reducer_add(x->red, &in, err)) < 0)
            return em__node_err(x->n, err);
    }
    if (rc < 0)
        return rc;
    if ((rc = em_reducer_finish(x->red, err)) < 0)
        return em__node_err(x->n, err);
    x->fed = true;
    return 0;
}

/* em_iter.group_stream: a GROUP reducer, fed, for a consumer that streams groups. */
static int red_group_stream(em_iter *it, em_reducer **out, em_err *err)
{
    red_iter *x = (red_iter *)it;
    int rc;
    *out = NULL;
    if (!x->red || x->n->mode != EM_REDUCE_GROUP)
        return 0;
    if ((rc = red_feed(x, err)) < 0)
        return rc;
    *out = x->red;
    return 0;
}

static int red_next(em_iter *it, em_rec *r, em_err *err)
{
    red_iter *x = (red_iter *)it;
    int rc;
    if ((rc = red_feed(x, err)) < 0)
        return rc;
    rc = em_reducer_next(x->red, r, err);
    if (rc < 0)
        return em__node_err(x->n, err);
    if (rc == 0)
        red_stats(x);
    return rc;
}

static void red_free(em_iter *it)
{
    red_iter *x = (red_iter *)it;
    red_stats(x);
    em__iter_free(x->parent);
    em__iter_free(x->cur);
    em_reducer_free(x->red);
    em__node_combiner_destroy(&x->comb);
    em_free(x->srcs);
    em_free(x);
}

static int reducer_make(red_iter *x, bool inputs_are_combiners, bool descending, em_err *err)
{
    const em_exec_env *env = x->t->env;
    const em_plan_node *n = x->n;
    int rc;
    if (n->mode == EM_REDUCE_AGGREGATE && (rc = em__node_combiner_init(&x->comb, x->t, n,
                                                                       err)) < 0)
        return rc;
    em_reducer_opts o = {
        .mode = n->mode,
        .kind = EM_REC_KV,
        .combiner = n->mode == EM_REDUCE_AGGREGATE ? &x->comb.comb : NULL,
        .inputs_are_combiners = inputs_are_combiners,
        .descending = descending,
        .mem_budget = env->task_mem_budget,
        .spill_dir = env->spill_dir,
        .zstd_level = env->zstd_level,
    };
    x->red = em_reducer_new(&o, err);
    return x->red ? 0 : em__node_err(n, err);
}

static red_iter *red_alloc(em_task *t, const em_plan_node *n)
{
    red_iter *x = em_xcalloc(1, sizeof *x);
    x->base.next = red_next;
    x->base.free = red_free;
    x->base.group_stream = red_group_stream;
    x->t = t;
    x->n = n;
    return x;
}

int em__local_reduce_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                         em_iter **out, em_err *err)
{
    (void)part;
    red_iter *x = red_alloc(t, n);
    int rc = reducer_make(x, false, (n->flags & EM_NODE_DESCENDING) != 0, err);
    if (rc < 0) {
        em_free(x);   /* the parent stays with the caller on failure */
        return rc;
    }
    x->parent = parent;
    *out = &x->base;
    return 0;
}

/* ---------------------------------------------------------------- shuffled */

typedef struct batch_list {
    em_batch **v;
    size_t n, cap;
    em_task *t;
} batch_list;

static int collect_batch(void *ud, em_batch *b, em_err *err)
{
    batch_list *l = ud;
    l->t->metrics->shuffle_read_bytes += em_batch_nbytes(b);
    em_batch **nv = em_arr_grow(l->v, &l->cap, l->n + 1, sizeof *nv);
    if (!nv) {
        em_batch_unref(b);
        return em_err_set(err, EM_ENOMEM, "shuffle read: out of memory");
    }
    l->v = nv;
    l->v[l->n++] = b;
    return 0;
}

static int feed_batch(void *ud, em_batch *b, em_err *err)
{
    red_iter *x = ud;
    x->t->metrics->shuffle_read_bytes += em_batch_nbytes(b);
    x->t->metrics->records_read += em_batch_nrecs(b);
    int rc = em_reducer_add_batch(x->red, b, err);
    em_batch_unref(b);
    return rc;
}

/* em_shuffle_read of srcs; an EM_EFETCH marks the task's fetch failure. */
static int read_srcs(red_iter *x, const em_shuffle_src *srcs, uint32_t n,
                     int (*on_batch)(void *, em_batch *, em_err *), void *ud, em_err *err)
{
    const em_exec_env *env = x->t->env;
    uint32_t failed = 0;
    int rc = em_shuffle_read(&env->fetcher, x->n->shuffle_id, x->part, srcs, n,
                             on_batch, ud, &failed, err);
    if (rc == EM_EFETCH) {
        x->t->fetch_failed = true;
        x->t->failed_shuffle = x->n->shuffle_id;
        x->t->failed_map = failed;
    }
    return rc;
}

/* NO_REDUCE: reads the next map output's segment into x->cur (x->at < x->nsrcs). */
static int open_segment(red_iter *x, em_err *err)
{
    batch_list l = {.t = x->t};
    int rc = read_srcs(x, &x->srcs[x->at++], 1, collect_batch, &l, err);
    if (rc < 0) {
        for (size_t i = 0; i < l.n; i++)
            em_batch_unref(l.v[i]);
        em_free(l.v);
        return rc;
    }
    x->cur = em__batches_iter_new_counted(l.v, l.n, &x->t->metrics->records_read);
    x->cur->width = x->n->width;
    return 0;
}

/* Opens the next map output's segment (em__iter_open_fn). */
static int segment_open(void *ud, em_iter **cur, em_err *err)
{
    red_iter *x = ud;
    (void)cur;   /* open_segment sets x->cur, which is *cur */
    if (x->at >= x->nsrcs)
        return 0;
    int rc = open_segment(x, err);
    return rc < 0 ? rc : 1;
}

/* NO_REDUCE: streams map output after map output, so one segment is in memory at once. */
static int stream_next(em_iter *it, em_rec *r, em_err *err)
{
    red_iter *x = (red_iter *)it;
    return em__iter_chain_pull(&x->cur, false, r, segment_open, x, err);
}

/* NO_REDUCE: a segment's batches are handed out whole (iterio.c). */
static int stream_next_batch(em_iter *it, em_rec_batch *b, em_err *err)
{
    red_iter *x = (red_iter *)it;
    return em__iter_chain_pull(&x->cur, true, b, segment_open, x, err);
}

int em__shuffled_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                     em_err *err)
{
    const em_exec_env *env = t->env;
    red_iter *x = red_alloc(t, n);
    int rc;
    x->part = part;
    if (!env->map_outputs) {
        rc = em_err_set(err, EM_EPLAN, "shuffled (rdd %u): no map output tracker", n->id);
        goto fail;
    }
    if ((rc = env->map_outputs(env->ud, n->shuffle_id, part, &x->srcs, &x->nsrcs, err)) < 0) {
        em_err_prefix(err, "shuffle %u reduce %u", n->shuffle_id, part);
        goto fail;
    }
    if (n->flags & EM_NODE_NO_REDUCE) {
        x->base.next = stream_next;
        x->base.next_batch = stream_next_batch;
        *out = &x->base;
        return 0;
    }
    if ((rc = reducer_make(x, (n->flags & EM_NODE_MAP_COMBINE) != 0,
                           (n->flags & EM_NODE_DESCENDING) != 0, err)) < 0)
        goto fail;
    if ((rc = read_srcs(x, x->srcs, x->nsrcs, feed_batch, x, err)) < 0)
        goto fail;
    if ((rc = em_reducer_finish(x->red, err)) < 0) {
        em__node_err(n, err);
        goto fail;
    }
    x->fed = true;
    *out = &x->base;
    return 0;
fail:
    red_free(&x->base);
    return rc;
}
