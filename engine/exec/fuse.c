/* engine/exec/fuse.c - fused narrow pipelines: a chain of consecutive MAP/FILTER nodes runs
 * as one iterator.
 *
 * DESIGN: with one iterator per node, every MAP re-encodes each output record into its
 * emitter buffer and the next node decodes it again (wordcount: line -> words -> pairs is
 * two copies and two indirect pulls per word). Here each stage's emitter is in push mode:
 * em_emit hands the record (borrowed) straight to the next stage's function, and the last
 * stage hands it to the consumer:
 *   - pulled (next): into one buffered emitter, read back a record at a time, so the
 *     whole chain costs one copy per output record instead of one per node;
 *   - drained (em__iter_drain, used by sinks): to the sink's push function, no copy at all.
 * A stage's function sees exactly what the unfused iterator gave it (VALUES_ONLY: the value
 * only; KEY_BY: the record unchanged) and its outputs are re-keyed the same way.
 *
 * ERRORS: the first failing stage (or the consumer) owns the error: a stage prefixes err
 * with its node only when the failure did not come from further down the chain. The
 * failure is sticky: a function that ignores em_emit's error still fails the chain. */
#include <string.h>

#include "engine/exec/exec_int.h"

typedef struct fused_iter fused_iter;

typedef struct fstage {
    fused_iter *f;
    uint32_t idx;
    const em_plan_node *n;
    em_map_fn map;            /* MAP */
    em_filter_fn filter;      /* FILTER */
    em_fn_ctx ctx;
    em_emitter out;           /* push mode: to stage_out */
    em_slice key;             /* VALUES_ONLY: the input key during the call */
    em_vbuf bytes;            /* KEY_BY: the input record as bytes */
} fstage;

struct fused_iter {
    em_iter base;
    em_iter *parent;
    fstage *st;               /* st[0] is the lowest node */
    uint32_t nst;
    em__push_fn sink;         /* consumer while draining; NULL: into buf */
    void *sink_ud;
    em_emitter buf;           /* pulled records of the last stage */
    size_t off;
    int failed;               /* sticky error code, 0 while fine */
};

static int stage_in(fused_iter *f, uint32_t i, const em_rec *in, em_err *err);

/* The end of the chain: the consumer, or the pull buffer. */
static int chain_end(fused_iter *f, const em_rec *r, em_err *err)
{
    int rc = f->sink ? f->sink(f->sink_ud, r, err) : em_emit(&f->buf, r, err);
    if (rc < 0 && !f->failed)
        f->failed = rc;   /* the consumer's error, already described */
    return rc;
}

static int stage_fail(fused_iter *f, fstage *s, int rc, em_err *err)
{
    if (!f->failed) {
        f->failed = rc;
        em__node_err(s->n, err);
    }
    return f->failed;
}

/* Push target of stage s's emitter: re-keys the output as the node's flags say and passes
 * it on. */
static int stage_out(void *ud, const em_rec *o, em_err *err)
{
    fstage *s = ud;
    fused_iter *f = s->f;
    em_rec r;
    const em_rec *p = &r;
    if (EM_UNLIKELY(f->failed))
        return f->failed;
    /* A plain stage passes the record on as is: copying it would read back, 16 bytes at a
     * time, what the emitter has just stored 8 bytes at a time (a store-forwarding stall
     * on every record). */
    if (s->n->flags & EM_NODE_VALUES_ONLY) {
        r.key = s->key;
        r.val = o->val;
    } else if (s->n->flags & EM_NODE_KEY_BY) {
        r.key = o->val;
        r.val = em_slice_make(s->bytes.data ? s->bytes.data : (const uint8_t *)"",
                              s->bytes.len);
    } else {
        p = o;
        if (s->n->width) {   /* map_fixed / flat_map_fixed: the declared width */
            int rc = em__check_width(s->n, o, err);
            if (rc < 0)
                return stage_fail(f, s, rc, err);
        }
    }
    return s->idx + 1 == f->nst ? chain_end(f, p, err) : stage_in(f, s->idx + 1, p, err);
}

static int map_stage(fused_iter *f, fstage *s, const em_rec *in, em_err *err)
{
    /* A plain map gets the record as is (no copy: see stage_out). */
    const em_rec *argp = in;
    em_rec arg;
    int rc;
    if (s->n->flags & EM_NODE_VALUES_ONLY) {
        if (!in->key.p)
            return stage_fail(f, s, em_err_set(err, EM_EINVAL, "values-only map of a record "
                                               "that is not a pair"), err);
        s->key = in->key;
        arg.key = em_slice_make(NULL, 0);
        arg.val = in->val;
        argp = &arg;
    } else if (s->n->flags & EM_NODE_KEY_BY) {
        em_vbuf_clear(&s->bytes);
        uint8_t tag = in->key.p ? 1 : 0;   /* fn.h "tagged record" */
        rc = (s->n->flags & EM_NODE_TAGGED) ? em_vbuf_append(&s->bytes, &tag, 1) : 0;
        if (rc == 0)
            rc = in->key.p ? em_pair_append(&s->bytes, &in->key, &in->val)
                           : em_vbuf_append(&s->bytes, in->val.p, in->val.n);
        if (rc < 0)
            return stage_fail(f, s, em_err_set(err, EM_ENOMEM, "record as bytes: out of "
                                               "memory"), err);
    }
    rc = s->map(&s->ctx, argp, &s->out, err);
    if (rc < 0)
        return stage_fail(f, s, rc, err);
    return f->failed;   /* a downstream failure the function did not pass back */
}

/* Runs record `in` through stages i.. of the chain. */
static int stage_in(fused_iter *f, uint32_t i, const em_rec *in, em_err *err)
{
    fstage *s = &f->st[i];
    if (s->map)
        return map_stage(f, s, in, err);
    int keep = s->filter(&s->ctx, in, err);
    if (keep < 0)
        return stage_fail(f, s, keep, err);
    if (!keep)
        return 0;
    return i + 1 == f->nst ? chain_end(f, in, err) : stage_in(f, i + 1, in, err);
}

static int from_parent(void *ud, const em_rec *r, em_err *err)
{
    return stage_in(ud, 0, r, err);
}

static int fused_next(em_iter *it, em_rec *r, em_err *err)
{
    fused_iter *f = (fused_iter *)it;
    em_rec in;
    int rc;
    if (f->failed)
        return f->failed;
    while (!em__emitter_read(&f->buf, &f->off, r)) {
        em__emitter_reset(&f->buf);
        f->off = 0;
        if ((rc = em_iter_next(f->parent, &in, err)) <= 0)
            return rc;
        if ((rc = stage_in(f, 0, &in, err)) < 0)
            return rc;
    }
    return 1;
}

static int fused_drain(em_iter *it, em__push_fn fn, em__push_run_fn run, void *ud,
                       em_err *err)
{
    (void)run;   /* the fused functions see (and may change) every record */
    fused_iter *f = (fused_iter *)it;
    em_rec r;
    int rc;
    if (f->failed)
        return f->failed;
    /* Records already pulled into the buffer go first. */
    while (em__emitter_read(&f->buf, &f->off, &r))
        if ((rc = fn(ud, &r, err)) < 0)
            return rc;
    em__emitter_reset(&f->buf);
    f->off = 0;
    f->sink = fn;
    f->sink_ud = ud;
    rc = em__iter_drain(f->parent, from_parent, f, err);
    f->sink = NULL;
    f->sink_ud = NULL;
    return rc;
}

static void fused_free(em_iter *it)
{
    fused_iter *f = (fused_iter *)it;
    em__iter_free(f->parent);
    for (uint32_t i = 0; i < f->nst; i++) {
        em__emitter_destroy(&f->st[i].out);
        em_vbuf_destroy(&f->st[i].bytes);
    }
    em_free(f->st);
    em__emitter_destroy(&f->buf);
    em_free(f);
}

int em__fused_new(em_task *t, const em_plan_node *top, uint32_t nstages, em_iter *parent,
                  em_iter **out, em_err *err)
{
    fused_iter *f = em_xcalloc(1, sizeof *f);
    f->base.next = fused_next;
    f->base.free = fused_free;
    f->base.drain = fused_drain;
    f->st = em_xcalloc(nstages, sizeof *f->st);
    f->nst = nstages;
    em__emitter_init(&f->buf);
    const em_plan_node *n = top;
    for (uint32_t k = nstages; k-- > 0; n = n->parents[0]) {
        fstage *s = &f->st[k];
        em_any_fn fn;
        s->f = f;
        s->idx = k;
        s->n = n;
        s->ctx = (em_fn_ctx){em_slice_make(n->blob, n->blob_len), t};
        em__emitter_init(&s->out);
        s->out.push = stage_out;
        s->out.push_ud = s;
        em_vbuf_init(&s->bytes);
        bool is_map = n->op == EM_OP_MAP;
        int rc = em__node_fn(n, n->fn, is_map ? EM_FN_MAP : EM_FN_FILTER, &fn, err);
        if (rc < 0) {
            fused_free(&f->base);   /* parent not attached yet: the caller still owns it */
            return rc;
        }
        if (is_map)
            s->map = (em_map_fn)fn;
        else
            s->filter = (em_filter_fn)fn;
    }
    f->parent = parent;
    *out = &f->base;
    return 0;
}
