/* engine/exec/accum.c - in-place aggregation on the executor (fn.h em_acc_*_fn): accumulator
 * buffers, folding a partition into one a batch of records at a time, the AGGREGATE_ACC
 * result sink, and the combiner of by-key nodes with mutable accumulators (EM_NODE_ACC).
 *
 * DESIGN. An accumulator is `size` bytes made where it is used (zero-filled, 16-byte
 * aligned, then the init function when named); seq/add/merge update it in place, so folding
 * a record costs what the user's function does with it, never a copy of the accumulator.
 * A result task returns its accumulator as one FIXED record of width `size`; nothing of
 * `size` bytes is in the stage JSON.
 *
 * BATCHES. The seq function gets records in em_rec_batch runs from em_iter_next_batch: a
 * cached or shuffled FIXED partition's own batches without a copy, else runs of one kind
 * and width of about 1 MiB gathered in a 64-byte aligned scratch buffer (iterio.c); a
 * FIXED run is a row-major matrix BLAS can take as is.
 * THREADS: one task thread per call (as the task). */
#include <stdint.h>
#include <string.h>

#include "engine/exec/exec_int.h"

#define ACC_ALIGN 64u

/* ---------------------------------------------------------------- accumulator buffers */

int em_acc_buf_init(em_acc_buf *a, size_t size, em_err *err)
{
    memset(a, 0, sizeof *a);
    if (size == 0 || size > EM_BATCH_MAX_REC_LEN)
        return em_err_set(err, EM_EINVAL, "accumulator of %zu bytes (1 .. %u)", size,
                          EM_BATCH_MAX_REC_LEN);
    /* The allocator's own block when it is 16-byte aligned (glibc's always are), so that a
     * task can hand the accumulator over as its result without a copy; else padding. */
    a->raw = em_calloc(1, size);
    if (a->raw && ((uintptr_t)a->raw & 15u) != 0) {
        em_free(a->raw);
        a->raw = em_calloc(1, size + ACC_ALIGN);
    }
    if (!a->raw)
        return em_err_set(err, EM_ENOMEM, "accumulator of %zu bytes: out of memory", size);
    a->p = (uint8_t *)(((uintptr_t)a->raw + 15u) & ~(uintptr_t)15u);
    a->size = size;
    return 0;
}

/* A FIXED batch of one record holding the accumulator; takes its memory when it can (the
 * buffer is then empty), else copies. NULL on OOM. */
static em_batch *acc_buf_to_batch(em_acc_buf *a)
{
    if (a->p != a->raw)
        return em_batch_new_copy(EM_REC_FIXED, (uint32_t)a->size, 1, a->p, a->size);
    em_batch *b = em_batch_new_take(EM_REC_FIXED, (uint32_t)a->size, 1, a->raw, a->size);
    memset(a, 0, sizeof *a);   /* taken, also on failure */
    return b;
}

void em_acc_buf_destroy(em_acc_buf *a)
{
    if (!a)
        return;
    em_free(a->raw);
    memset(a, 0, sizeof *a);
}

int em_acc_buf_start(em_acc_buf *a, size_t size, em_acc_init_fn init, const em_fn_ctx *c,
                     em_err *err)
{
    int rc = em_acc_buf_init(a, size, err);
    if (rc == 0 && init && (rc = init(c, a->p, size, err)) < 0) {
        em_acc_buf_destroy(a);
        em_err_prefix(err, "accumulator init");
    }
    return rc;
}

int em_acc_merge_any(em_acc_merge_fn merge, const em_fn_ctx *c, em_acc_buf *acc,
                     const void *other, em_acc_buf *scratch, em_err *err)
{
    /* The contract promises 16-byte aligned accumulators: a misaligned `other` (a value
     * inside a shuffle or result batch) is copied into scratch first. */
    if (((uintptr_t)other & 15u) != 0) {
        int rc;
        if (!scratch->p && (rc = em_acc_buf_init(scratch, acc->size, err)) < 0)
            return rc;
        memcpy(scratch->p, other, acc->size);
        other = scratch->p;
    }
    return merge(c, acc->p, other, acc->size, err);
}

int em_exec_acc_fold(em_acc_seq_fn seq, const em_fn_ctx *c, void *acc, size_t size,
                     uint32_t width, em_iter *in, uint64_t *nrecs, em_err *err)
{
    em_rec_batch b;
    uint64_t n = 0;
    int rc;
    if (in->width == 0)
        in->width = width;   /* what the plan knows of the input's records */
    while ((rc = em_iter_next_batch(in, &b, err)) == 1) {
        n += b.nrecs;
        if ((rc = seq(c, acc, size, &b, err)) < 0)
            break;
    }
    if (nrecs)
        *nrecs = n;
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- result sink */

int em__sink_aggregate_acc(em_task *t, const em_result_spec *res, uint32_t width, em_iter *in,
                           em_task_result *out, em_err *err)
{
    em_any_fn f;
    em_acc_init_fn init = NULL;
    em_acc_buf acc;
    uint64_t n = 0;
    int rc;
    if ((rc = em_registry_resolve(res->fn, EM_FN_ACC_SEQ, &f, err)) < 0)
        return em_err_prefix(err, "aggregate_acc");
    em_acc_seq_fn seq = (em_acc_seq_fn)f;
    if (res->fn_init) {
        if ((rc = em_registry_resolve(res->fn_init, EM_FN_ACC_INIT, &f, err)) < 0)
            return em_err_prefix(err, "aggregate_acc");
        init = (em_acc_init_fn)f;
    }
    em_fn_ctx ctx = {res->blob, t};
    if ((rc = em_acc_buf_start(&acc, (size_t)res->acc_size, init, &ctx, err)) < 0)
        return rc;
    rc = em_exec_acc_fold(seq, &ctx, acc.p, acc.size, width, in, &n, err);
    t->metrics->records_written += n;
    if (rc < 0) {
        em_err_prefix(err, "aggregate_acc '%s'", res->fn);
        goto out;
    }
    em_batch *b = acc_buf_to_batch(&acc);
    out->batches = b ? em_malloc(sizeof *out->batches) : NULL;
    if (!out->batches) {
        em_batch_unref(b);
        rc = em_err_set(err, EM_ENOMEM, "aggregate_acc: out of memory for the result");
        goto out;
    }
    out->batches[0] = b;
    out->nbatches = 1;
out:
    em_acc_buf_destroy(&acc);
    return rc;
}

/* ---------------------------------------------------------------- by-key combiner
 * An EM_NODE_ACC node's combiner. In place (what combine maps use): create = init + add of
 * the first record; merge_value = add (or, when the values are accumulators already, as in
 * tree_aggregate_acc's tree, a merge); merge_combiners = merge. The copying ops are what the
 * reducer's merge of spilled runs calls: they copy one accumulator into aligned scratch,
 * fold into it and append it to out. */

static int size_err(const em_node_combiner *c, size_t n, em_err *err)
{
    return em_err_set(err, EM_ECORRUPT, "accumulator of %zu bytes where %zu are expected", n,
                      c->comb.acc_size);
}

static int acc_create(void *self, void *acc, const em_rec *r, em_err *err)
{
    em_node_combiner *c = self;
    size_t size = c->comb.acc_size;
    int rc;
    if (!c->acc_add) {                    /* the value is an accumulator */
        if (r->val.n != size)
            return size_err(c, r->val.n, err);
        memcpy(acc, r->val.p, size);
        return 0;
    }
    if (c->acc_init && (rc = c->acc_init(&c->ctx, acc, size, err)) < 0)
        return em_err_prefix(err, "accumulator init");
    return c->acc_add(&c->ctx, acc, size, r, err);
}

static int acc_merge_combiners(void *self, void *acc, const void *other, em_err *err)
{
    em_node_combiner *c = self;
    em_acc_buf a = {NULL, acc, c->comb.acc_size};
    return em_acc_merge_any(c->acc_merge, &c->ctx, &a, other, &c->tmp2, err);
}

static int acc_merge_value(void *self, void *acc, const em_rec *r, em_err *err)
{
    em_node_combiner *c = self;
    if (c->acc_add)
        return c->acc_add(&c->ctx, acc, c->comb.acc_size, r, err);
    if (r->val.n != c->comb.acc_size)
        return size_err(c, r->val.n, err);
    return acc_merge_combiners(self, acc, r->val.p, err);
}

/* Copies accumulator a into c->tmp (made on first use). */
static int load_tmp(em_node_combiner *c, em_slice a, em_err *err)
{
    int rc;
    if (a.n != c->comb.acc_size)
        return size_err(c, a.n, err);
    if (!c->tmp.p && (rc = em_acc_buf_init(&c->tmp, c->comb.acc_size, err)) < 0)
        return rc;
    memcpy(c->tmp.p, a.p, a.n);
    return 0;
}

static int put_tmp(em_node_combiner *c, em_vbuf *out, em_err *err)
{
    if (em_vbuf_append(out, c->tmp.p, c->tmp.size) < 0)
        return em_err_set(err, EM_ENOMEM, "accumulator: out of memory");
    return 0;
}

static int accop_create(void *self, em_slice v, em_vbuf *out, em_err *err)
{
    em_node_combiner *c = self;
    em_rec r = {em_slice_make(NULL, 0), v};
    int rc;
    if (!c->tmp.p && (rc = em_acc_buf_init(&c->tmp, c->comb.acc_size, err)) < 0)
        return rc;
    memset(c->tmp.p, 0, c->tmp.size);
    if ((rc = acc_create(c, c->tmp.p, &r, err)) < 0)
        return rc;
    return put_tmp(c, out, err);
}

static int accop_merge_value(void *self, em_slice a, em_slice v, em_vbuf *out, em_err *err)
{
    em_node_combiner *c = self;
    em_rec r = {em_slice_make(NULL, 0), v};
    int rc;
    if ((rc = load_tmp(c, a, err)) < 0 || (rc = acc_merge_value(c, c->tmp.p, &r, err)) < 0)
        return rc;
    return put_tmp(c, out, err);
}

static int accop_merge_combiners(void *self, em_slice a, em_slice b, em_vbuf *out,
                                 em_err *err)
{
    em_node_combiner *c = self;
    int rc;
    if (b.n != c->comb.acc_size)
        return size_err(c, b.n, err);
    if ((rc = load_tmp(c, a, err)) < 0 || (rc = acc_merge_combiners(c, c->tmp.p, b.p, err)) < 0)
        return rc;
    return put_tmp(c, out, err);
}

static const em_combiner_ops acc_ops = {accop_create, accop_merge_value,
                                        accop_merge_combiners};

int em__acc_combiner_init(em_node_combiner *c, const em_plan_node *n, em_err *err)
{
    em_any_fn f;
    int rc;
    if (n->acc_size == 0 || n->acc_size > EM_BATCH_MAX_REC_LEN)
        return em_err_set(err, EM_EPLAN, "%s (rdd %u): accumulator size %u",
                          em_op_name(n->op), n->id, n->acc_size);
    if ((rc = em__node_fn(n, n->fn_merge, EM_FN_ACC_MERGE, &f, err)) < 0)
        return rc;
    c->acc_merge = (em_acc_merge_fn)f;
    if (n->fn) {
        if ((rc = em__node_fn(n, n->fn, EM_FN_ACC_ADD, &f, err)) < 0)
            return rc;
        c->acc_add = (em_acc_add_fn)f;
    }
    if (n->fn_create) {
        if ((rc = em__node_fn(n, n->fn_create, EM_FN_ACC_INIT, &f, err)) < 0)
            return rc;
        c->acc_init = (em_acc_init_fn)f;
    }
    c->comb.ops = &acc_ops;
    c->comb.self = c;
    c->comb.acc_size = n->acc_size;
    c->comb.acc_create = acc_create;
    c->comb.acc_merge_value = acc_merge_value;
    c->comb.acc_merge_combiners = acc_merge_combiners;
    return 0;
}
