/* engine/exec/iter.c - the narrow part of a task's pipeline: one pull iterator per node
 * (sources, map, filter, sample, glom, zip_with_index, union, coalesce, cartesian, tag)
 * and caching (Spark's getOrCompute); cogroup_split and joins are in cogroup.c,
 * checkpoints in ckpt.c.
 *
 * Records handed out are borrowed until the next pull; an iterator that transforms keeps
 * its output in an em_emitter (MAP) or a scratch em_vbuf and hands out slices of it.
 * Which constructor builds which op: the table g_exec_ops near the end (the executor's half
 * of the operator descriptors, engine/plan/ops.c). map_partitions is in mappart.c, fused
 * map/filter chains in fuse.c, reduce sides in reduce.c, text sources in text.c. */
#include <string.h>

#include "engine/exec/exec_int.h"

/* Appends record r as bytes ("record as bytes": plain -> value, KV -> em_pair). */
static int rec_bytes(const em_rec *r, em_vbuf *out, em_err *err)
{
    int rc = r->key.p ? em_pair_append(out, &r->key, &r->val)
                      : em_vbuf_append(out, r->val.p, r->val.n);
    return rc < 0 ? em_err_set(err, EM_ENOMEM, "record as bytes: out of memory") : 0;
}

/* ---------------------------------------------------------------- parallelize, range */

static int input_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                     em_err *err)
{
    em_block_id id = {EM_BLOCK_INPUT, n->id, part, 0};
    em_batch **bs = NULL;
    size_t nb = 0;
    char name[48];
    int rc = em__task_get_block(t, id, &bs, &nb, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return em_err_set(err, EM_ENOTFOUND, "input block %s is not in the block store",
                          em_block_id_str(id, name, sizeof name));
    *out = em__batches_iter_new_counted(bs, nb, &t->metrics->records_read);
    return 0;
}

typedef struct range_iter {
    em_iter base;
    int64_t start, step;
    uint64_t i, end;      /* element indices [i, end) */
    uint64_t *counter;
    uint8_t buf[8];
} range_iter;

static int range_next(em_iter *it, em_rec *r, em_err *err)
{
    range_iter *ri = (range_iter *)it;
    (void)err;
    if (ri->i >= ri->end)
        return 0;
    /* start + i*step in wrapping arithmetic: exact because the true value fits int64. */
    uint64_t v = (uint64_t)ri->start + ri->i++ * (uint64_t)ri->step;
    em_enc_i64(ri->buf, (int64_t)v);
    (*ri->counter)++;
    r->key = em_slice_make(NULL, 0);
    r->val = em_slice_make(ri->buf, 8);
    return 1;
}

/* Drained (a sink consuming the whole range): one loop, no indirect call per element. */
static int range_drain(em_iter *it, em__push_fn fn, em__push_run_fn run, void *ud,
                       em_err *err)
{
    (void)run;   /* 8-byte records made one at a time: pushed one at a time */
    range_iter *ri = (range_iter *)it;
    uint64_t i = ri->i, step = (uint64_t)ri->step, v = (uint64_t)ri->start + i * step;
    em_rec r = {em_slice_make(NULL, 0), em_slice_make(ri->buf, 8)};
    int rc = 0;
    for (; i < ri->end; v += step) {
        em_enc_i64(ri->buf, (int64_t)v);
        i++;
        if ((rc = fn(ud, &r, err)) < 0)
            break;
    }
    *ri->counter += i - ri->i;   /* the failing element was read too, as with next() */
    ri->i = i;
    return rc < 0 ? rc : 0;
}

static void plain_free(em_iter *it)
{
    em_free(it);
}

/* Number of elements of start, start+step, ... < end (> end for step < 0). */
static uint64_t range_count(int64_t start, int64_t end, int64_t step)
{
    if ((step > 0 && start >= end) || (step < 0 && start <= end))
        return 0;
    __int128 span = step > 0 ? (__int128)end - start : (__int128)start - end;
    __int128 st = step > 0 ? (__int128)step : -(__int128)step;
    return (uint64_t)((span + st - 1) / st);
}

static int range_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                     em_err *err)
{
    (void)err;
    range_iter *ri = em_xcalloc(1, sizeof *ri);
    ri->counter = &t->metrics->records_read;
    uint64_t count = range_count(n->range_start, n->range_end, n->range_step);
    ri->base.next = range_next;
    ri->base.drain = range_drain;
    ri->base.free = plain_free;
    ri->start = n->range_start;
    ri->step = n->range_step;
    ri->i = (uint64_t)((unsigned __int128)count * part / n->nparts);
    ri->end = (uint64_t)((unsigned __int128)count * (part + 1) / n->nparts);
    *out = &ri->base;
    return 0;
}

/* ---------------------------------------------------------------- one parent */

/* Frees an iterator whose only owned resource is a parent at `parent`. */
typedef struct one_parent_iter {
    em_iter base;
    const em_plan_node *n;
    em_iter *parent;
} one_parent_iter;

static void one_parent_free(em_iter *it)
{
    em__iter_free(((one_parent_iter *)it)->parent);
    em_free(it);
}

/* ---------------------------------------------------------------- sample */

typedef struct sample_iter {
    em_iter base;
    const em_plan_node *n;
    em_iter *parent;
    em_rng rng;
    em_rec cur;
    uint32_t left;      /* with replacement: copies of cur still to emit */
} sample_iter;

static int sample_next(em_iter *it, em_rec *r, em_err *err)
{
    sample_iter *s = (sample_iter *)it;
    int rc;
    if (s->left) {
        s->left--;
        *r = s->cur;
        return 1;
    }
    while ((rc = em_iter_next(s->parent, r, err)) == 1) {
        if (!s->n->sample_with_replacement) {
            if (em_rng_double(&s->rng) < s->n->sample_fraction)
                return 1;
            continue;
        }
        uint32_t k = em_rng_poisson(&s->rng, s->n->sample_fraction);
        if (k) {
            s->cur = *r;       /* borrowed from the parent until its next pull */
            s->left = k - 1;
            return 1;
        }
    }
    return rc;
}

static int sample_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                      em_iter **out, em_err *err)
{
    (void)t;
    (void)err;
    sample_iter *s = em_xcalloc(1, sizeof *s);
    s->base.next = sample_next;
    s->base.free = one_parent_free;
    s->n = n;
    s->parent = parent;
    em_rng_seed(&s->rng, em_mix64(n->seed ^ em_mix64((uint64_t)part + 1)));
    *out = &s->base;
    return 0;
}

/* ---------------------------------------------------------------- glom, zip_with_index */

typedef struct glom_iter {
    em_iter base;
    const em_plan_node *n;
    em_iter *parent;
    bool done;
    em_vbuf list, tmp;
} glom_iter;

static int glom_next(em_iter *it, em_rec *r, em_err *err)
{
    glom_iter *g = (glom_iter *)it;
    em_rec in;
    int rc;
    uint32_t count = 0;
    if (g->done)
        return 0;
    g->done = true;
    int64_t off = em_list_begin(&g->list);
    if (off < 0)
        return em_err_set(err, EM_ENOMEM, "glom: out of memory");
    while ((rc = em_iter_next(g->parent, &in, err)) == 1) {
        em_vbuf_clear(&g->tmp);
        if ((rc = rec_bytes(&in, &g->tmp, err)) < 0)
            return rc;
        if (count == UINT32_MAX || em_list_append(&g->list, em_slice_make(g->tmp.data,
                                                                          g->tmp.len)) < 0)
            return em_err_set(err, EM_ENOMEM, "glom (rdd %u): partition too large",
                              g->n->id);
        count++;
    }
    if (rc < 0)
        return rc;
    em_list_end(&g->list, off, count);
    r->key = em_slice_make(NULL, 0);
    r->val = em_slice_make(g->list.data, g->list.len);
    return 1;
}

static void glom_free(em_iter *it)
{
    glom_iter *g = (glom_iter *)it;
    em__iter_free(g->parent);
    em_vbuf_destroy(&g->list);
    em_vbuf_destroy(&g->tmp);
    em_free(g);
}

typedef struct zip_iter {
    em_iter base;
    const em_plan_node *n;
    em_iter *parent;
    uint64_t next_index;
    em_vbuf bytes;
    uint8_t idx[8];
} zip_iter;

static int zip_next(em_iter *it, em_rec *r, em_err *err)
{
    zip_iter *z = (zip_iter *)it;
    em_rec in;
    int rc = em_iter_next(z->parent, &in, err);
    if (rc <= 0)
        return rc;
    em_vbuf_clear(&z->bytes);
    if ((rc = rec_bytes(&in, &z->bytes, err)) < 0)
        return rc;
    em_enc_i64(z->idx, (int64_t)z->next_index++);
    r->key = em_slice_make(z->bytes.data ? z->bytes.data : (const uint8_t *)"", z->bytes.len);
    r->val = em_slice_make(z->idx, 8);
    return 1;
}

static void zip_free(em_iter *it)
{
    zip_iter *z = (zip_iter *)it;
    em__iter_free(z->parent);
    em_vbuf_destroy(&z->bytes);
    em_free(z);
}

/* ---------------------------------------------------------------- concatenations */

/* Reads a list of (node, partition) inputs one after the other (union, coalesce). The
 * parent iterators are built lazily, so only one is open at a time. */
typedef struct concat_iter {
    em_iter base;
    em_task *t;
    const em_plan_node **nodes;
    uint32_t *parts;
    uint32_t n, at;
    em_iter *cur;
} concat_iter;

/* Opens the next part (em__iter_open_fn). */
static int concat_open(void *ud, em_iter **cur, em_err *err)
{
    concat_iter *c = ud;
    if (c->at >= c->n)
        return 0;
    int rc = em__exec_build(c->t, c->nodes[c->at], c->parts[c->at], cur, err);
    c->at++;
    return rc < 0 ? rc : 1;
}

static int concat_next(em_iter *it, em_rec *r, em_err *err)
{
    concat_iter *c = (concat_iter *)it;
    return em__iter_chain_pull(&c->cur, false, r, concat_open, c, err);
}

/* A union or coalesce of stored batches hands them out whole too. */
static int concat_next_batch(em_iter *it, em_rec_batch *b, em_err *err)
{
    concat_iter *c = (concat_iter *)it;
    return em__iter_chain_pull(&c->cur, true, b, concat_open, c, err);
}

static void concat_free(em_iter *it)
{
    concat_iter *c = (concat_iter *)it;
    em__iter_free(c->cur);
    em_free(c->nodes);
    em_free(c->parts);
    em_free(c);
}

static concat_iter *concat_alloc(em_task *t, uint32_t n)
{
    concat_iter *c = em_xcalloc(1, sizeof *c);
    c->base.next = concat_next;
    c->base.next_batch = concat_next_batch;
    c->base.free = concat_free;
    c->t = t;
    c->nodes = em_xcalloc(n ? n : 1, sizeof *c->nodes);
    c->parts = em_xcalloc(n ? n : 1, sizeof *c->parts);
    return c;
}

static int union_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                     em_err *err)
{
    concat_iter *c;
    if (n->flags & EM_NODE_ZIP_PARTS) {
        c = concat_alloc(t, n->nparents);
        for (uint32_t j = 0; j < n->nparents; j++) {
            c->nodes[c->n] = n->parents[j];
            c->parts[c->n++] = part;
        }
        *out = &c->base;
        return 0;
    }
    uint32_t off = 0;
    for (uint32_t j = 0; j < n->nparents; j++) {
        if (part - off < n->parents[j]->nparts) {
            c = concat_alloc(t, 1);
            c->nodes[0] = n->parents[j];
            c->parts[0] = part - off;
            c->n = 1;
            *out = &c->base;
            return 0;
        }
        off += n->parents[j]->nparts;
    }
    return em_err_set(err, EM_EPLAN, "union (rdd %u): partition %u beyond its parents", n->id,
                      part);
}

static int coalesce_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                        em_err *err)
{
    (void)err;
    uint32_t lo = n->coalesce_starts[part], hi = n->coalesce_starts[part + 1];
    concat_iter *c = concat_alloc(t, hi - lo);
    for (uint32_t p = lo; p < hi; p++) {
        c->nodes[c->n] = n->parents[0];
        c->parts[c->n++] = p;
    }
    *out = &c->base;
    return 0;
}

/* ---------------------------------------------------------------- cartesian */

typedef struct cart_iter {
    em_iter base;
    const em_plan_node *n;
    em_iter *left;
    em_batch **right;       /* parent 1's partition, buffered once */
    size_t nright;
    em_iter *rit;           /* over right, restarted per left record */
    bool have_left;
    em_vbuf a, b;           /* current left record as bytes; scratch for the right one */
} cart_iter;

static int cart_next(em_iter *it, em_rec *r, em_err *err)
{
    cart_iter *c = (cart_iter *)it;
    em_rec in;
    int rc;
    for (;;) {
        if (c->have_left && (rc = em_iter_next(c->rit, &in, err)) != 0) {
            if (rc < 0)
                return rc;
            em_vbuf_clear(&c->b);
            if ((rc = rec_bytes(&in, &c->b, err)) < 0)
                return rc;
            r->key = em_slice_make(c->a.data ? c->a.data : (const uint8_t *)"", c->a.len);
            r->val = em_slice_make(c->b.data ? c->b.data : (const uint8_t *)"", c->b.len);
            return 1;
        }
        if ((rc = em_iter_next(c->left, &in, err)) <= 0)
            return rc;
        em_vbuf_clear(&c->a);
        if ((rc = rec_bytes(&in, &c->a, err)) < 0)
            return rc;
        em__iter_free(c->rit);
        /* A fresh iterator over the same batches: it takes references and a copy. */
        em_batch **copy = em_malloc((c->nright ? c->nright : 1) * sizeof *copy);
        if (!copy)
            return em_err_set(err, EM_ENOMEM, "cartesian: out of memory");
        for (size_t i = 0; i < c->nright; i++)
            copy[i] = em_batch_ref(c->right[i]);
        c->rit = em__batches_iter_new(copy, c->nright);
        c->have_left = true;
    }
}

static void cart_free(em_iter *it)
{
    cart_iter *c = (cart_iter *)it;
    em__iter_free(c->left);
    em__iter_free(c->rit);
    for (size_t i = 0; i < c->nright; i++)
        em_batch_unref(c->right[i]);
    em_free(c->right);
    em_vbuf_destroy(&c->a);
    em_vbuf_destroy(&c->b);
    em_free(c);
}

static int batcher_push(void *ud, const em_rec *r, em_err *err)
{
    return em__batcher_add(ud, r, err);
}

static int batcher_push_run(void *ud, const uint8_t *p, uint32_t width, size_t n, em_err *err)
{
    return em__batcher_add_run(ud, p, width, n, err);
}

/* Drains `in` (freed) into batches; pushed, so fused chains and map_partitions hand their
 * records over without buffering them first. */
static int drain(em_iter *in, uint32_t width, em_batch ***out, size_t *n, em_err *err)
{
    em_batcher b;
    int rc;
    em__batcher_init(&b, width);
    rc = em__iter_drain_runs(in, batcher_push, batcher_push_run, &b, err);
    em__iter_free(in);
    if (rc == 0)
        rc = em__batcher_finish(&b, out, n, err);
    em__batcher_destroy(&b);
    return rc;
}

static int cart_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                    em_err *err)
{
    uint32_t n2 = n->parents[1]->nparts;
    em_iter *left = NULL, *right = NULL;
    int rc = em__exec_build(t, n->parents[1], part % n2, &right, err);
    if (rc < 0)
        return rc;
    cart_iter *c = em_xcalloc(1, sizeof *c);
    c->base.next = cart_next;
    c->base.free = cart_free;
    c->n = n;
    if ((rc = drain(right, n->parents[1]->width, &c->right, &c->nright, err)) < 0 ||
        (rc = em__exec_build(t, n->parents[0], part / n2, &left, err)) < 0) {
        cart_free(&c->base);
        return rc;
    }
    c->left = left;
    *out = &c->base;
    return 0;
}

/* ---------------------------------------------------------------- tag */

/* Expands each input record into zero or more output records through an emitter. */
typedef struct expand_iter {
    em_iter base;
    const em_plan_node *n;
    em_iter *parent;
    int (*expand)(struct expand_iter *x, const em_rec *in, em_err *err);
    em_emitter out;
    size_t off;
    em_vbuf tmp;
} expand_iter;

static int expand_next(em_iter *it, em_rec *r, em_err *err)
{
    expand_iter *x = (expand_iter *)it;
    em_rec in;
    int rc;
    while (!em__emitter_read(&x->out, &x->off, r)) {
        em__emitter_reset(&x->out);
        x->off = 0;
        if ((rc = em_iter_next(x->parent, &in, err)) <= 0)
            return rc;
        if (!in.key.p)
            return em_err_set(err, EM_EINVAL, "%s (rdd %u): input record is not a pair",
                              em_op_name(x->n->op), x->n->id);
        if ((rc = x->expand(x, &in, err)) < 0)
            return em__node_err(x->n, err);
    }
    return 1;
}

static void expand_free(em_iter *it)
{
    expand_iter *x = (expand_iter *)it;
    em__iter_free(x->parent);
    em__emitter_destroy(&x->out);
    em_vbuf_destroy(&x->tmp);
    em_free(x);
}

/* Emits KV(key, em_pair(left, right)); NULL = absent. */
static int emit_pair(expand_iter *x, em_slice key, const em_slice *l, const em_slice *r,
                     em_err *err)
{
    em_vbuf_clear(&x->tmp);
    if (em_pair_append(&x->tmp, l, r) < 0)
        return em_err_set(err, EM_ENOMEM, "out of memory");
    return em_emit_kv(&x->out, key, em_slice_make(x->tmp.data, x->tmp.len), err);
}

static int tag_expand(expand_iter *x, const em_rec *in, em_err *err)
{
    return x->n->tag == 0 ? emit_pair(x, in->key, &in->val, NULL, err)
                          : emit_pair(x, in->key, NULL, &in->val, err);
}

static em_iter *expand_new(const em_plan_node *n, em_iter *parent,
                           int (*expand)(expand_iter *, const em_rec *, em_err *))
{
    expand_iter *x = em_xcalloc(1, sizeof *x);
    x->base.next = expand_next;
    x->base.free = expand_free;
    x->n = n;
    x->parent = parent;
    x->expand = expand;
    em__emitter_init(&x->out);
    return &x->base;
}

static em_iter *simple_new(size_t size, const em_plan_node *n, em_iter *parent,
                           int (*next)(em_iter *, em_rec *, em_err *), void (*free_fn)(em_iter *))
{
    one_parent_iter *it = em_xcalloc(1, size);
    it->base.next = next;
    it->base.free = free_fn;
    it->n = n;
    it->parent = parent;
    return &it->base;
}

static int glom_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                    em_iter **out, em_err *err)
{
    (void)t, (void)part, (void)err;
    *out = simple_new(sizeof(glom_iter), n, parent, glom_next, glom_free);
    return 0;
}

static int zip_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                   em_iter **out, em_err *err)
{
    (void)t, (void)err;
    *out = simple_new(sizeof(zip_iter), n, parent, zip_next, zip_free);
    ((zip_iter *)*out)->next_index = n->zip_starts[part];
    return 0;
}

static int tag_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                   em_iter **out, em_err *err)
{
    (void)t, (void)part, (void)err;
    *out = expand_new(n, parent, tag_expand);
    return 0;
}

/* MAP and FILTER: a chain of one (build_on_parent adds the fusable nodes below). */
static int fused_one(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                     em_iter **out, em_err *err)
{
    (void)part;
    return em__fused_new(t, n, 1, parent, out, err);
}

/* ---------------------------------------------------------------- the table
 * The executor's half of each operator descriptor (engine/plan/ops.c has the rest): how
 * the iterator of one partition is built. One-to-one ops get their parent's iterator of
 * the same partition (build_on); the others build what they read themselves (build). */
static const em__exec_op g_exec_ops[EM_OP__COUNT] = {
    [EM_OP_PARALLELIZE] = {.build = input_new},
    [EM_OP_RANGE] = {.build = range_new},
    [EM_OP_TEXT_FILE] = {.build = em__text_file_new},
    [EM_OP_WHOLE_TEXT_FILES] = {.build = em__whole_text_new},
    [EM_OP_CHECKPOINT_FILE] = {.build = em__ckpt_file_new},
    [EM_OP_MAP] = {.build_on = fused_one, .fuse = true},
    [EM_OP_FILTER] = {.build_on = fused_one, .fuse = true},
    [EM_OP_MAP_PARTITIONS] = {.build_on = em__map_partitions_new},
    [EM_OP_SAMPLE] = {.build_on = sample_new},
    [EM_OP_GLOM] = {.build_on = glom_new},
    [EM_OP_ZIP_WITH_INDEX] = {.build_on = zip_new},
    [EM_OP_LOCAL_REDUCE] = {.build_on = em__local_reduce_new},
    [EM_OP_TAG] = {.build_on = tag_new},
    [EM_OP_COGROUP_SPLIT] = {.build_on = em__cogroup_split_new},
    [EM_OP_CHECKPOINT_WRITE] = {.build_on = em__ckpt_write_new},
    [EM_OP_UNION] = {.build = union_new},
    [EM_OP_COALESCE] = {.build = coalesce_new},
    [EM_OP_CARTESIAN] = {.build = cart_new},
    [EM_OP_SHUFFLED] = {.build = em__shuffled_new},
};

static const em__exec_op *exec_op(em_op op)
{
    return (int)op > 0 && op < EM_OP__COUNT ? &g_exec_ops[op] : NULL;
}

static bool fusable(const em_plan_node *n)
{
    const em__exec_op *x = exec_op(n->op);
    return x && x->fuse;
}

/* A one-to-one op on its parent's partition of the same index. A fusable node (MAP,
 * FILTER) takes the uncached fusable nodes below it into one fused iterator (fuse.c). */
static int build_on_parent(em_task *t, const em_plan_node *n, const em__exec_op *x,
                           uint32_t part, em_iter **out, em_err *err)
{
    em_iter *p = NULL;
    const em_plan_node *low = n;
    uint32_t nst = 1;
    if (x->fuse)
        while (fusable(low->parents[0]) &&
               (low->parents[0]->level == EM_STORAGE_NONE || !t->env->store)) {
            low = low->parents[0];
            nst++;
        }
    int rc = em__exec_build(t, low->parents[0], part, &p, err);
    if (rc < 0)
        return rc;
    rc = nst > 1 ? em__fused_new(t, n, nst, p, out, err) : x->build_on(t, n, part, p, out, err);
    if (rc < 0)
        em__iter_free(p);
    return rc;
}

static int build_node(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                      em_err *err)
{
    const em__exec_op *x = exec_op(n->op);
    if (part >= n->nparts)
        return em_err_set(err, EM_EPLAN, "%s (rdd %u): partition %u of %u", em_op_name(n->op),
                          n->id, part, n->nparts);
    if (x && x->build)
        return x->build(t, n, part, out, err);
    if (x && x->build_on && em_op_one_to_one(n->op) && n->nparents == 1)
        return build_on_parent(t, n, x, part, out, err);
    return em_err_set(err, EM_EPLAN, "%s (rdd %u): no iterator for op %d", em_op_name(n->op),
                      n->id, (int)n->op);
}

/* Spark's getOrCompute: read the cached block, or compute the partition into batches,
 * store them at the node's level and iterate them. */
static int cached_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                      em_err *err)
{
    em_block_id id = {EM_BLOCK_RDD, n->id, part, 0};
    em_batch **bs = NULL;
    size_t nb = 0;
    em_err gerr = EM_ERR_INIT;
    int rc = em_block_store_get(t->env->store, id, &bs, &nb, &gerr);
    if (rc == 1) {
        *out = em__batches_iter_new(bs, nb);
        return 0;
    }
    if (rc < 0)   /* a bad cached copy is dropped by the store; recompute from lineage */
        em_log(EM_LOG_WARN, "rdd %u partition %u: cached block unreadable (%s); recomputing",
               n->id, part, gerr.msg);
    em_iter *in = NULL;
    if ((rc = build_node(t, n, part, &in, err)) < 0 ||
        (rc = drain(in, n->width, &bs, &nb, err)) < 0)
        return rc;
    em_batch **put = em_malloc((nb ? nb : 1) * sizeof *put);
    if (!put) {
        *out = em__batches_iter_new(bs, nb);
        return 0;   /* not cached, still correct */
    }
    for (size_t i = 0; i < nb; i++)
        put[i] = em_batch_ref(bs[i]);
    if (em_block_store_put_take(t->env->store, id, put, nb, n->level, &gerr) < 0)
        em_log(EM_LOG_WARN, "rdd %u partition %u: not cached: %s", n->id, part, gerr.msg);
    em_free(put);
    *out = em__batches_iter_new(bs, nb);
    return 0;
}

int em__exec_build(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                   em_err *err)
{
    *out = NULL;
    int rc = n->level != EM_STORAGE_NONE && t->env->store ? cached_new(t, n, part, out, err)
                                                          : build_node(t, n, part, out, err);
    if (rc == 0)
        (*out)->width = n->width;
    return rc;
}
