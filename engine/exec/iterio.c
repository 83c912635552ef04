/* engine/exec/iterio.c - the iterator half of the function ABI (engine/plan/fn.h):
 * em_iter_next, em_iter_next_batch, draining, and iterators over lists of stored batches.
 *
 * BATCHES (em_iter_next_batch). Two ways to hand out a run of records:
 *   - an iterator over stored batches (next_batch slot: batch lists here, checkpoint files,
 *     shuffle segments, unions of those) hands out the rest of its current batch in place:
 *     a FIXED payload is 64-byte aligned (engine/data/batch.c), so a batch taken whole
 *     is zero-copy; a FIXED run that starts mid-batch (after em_iter_next calls) and so
 *     off the boundary is copied once into the iterator's aligned scratch (em__iter_align);
 *   - any other iterator is gathered: records pulled with next are encoded into the
 *     aligned scratch (payload format of docs/data-format.md) while they have the kind of
 *     the first one (KV; FIXED: plain of the iterator's width; else BYTES), up to about
 *     EM_BATCH_TARGET_BYTES. The first record that does not fit stays pending (it->pend,
 *     still borrowed from next, which is not called again before it is handed out) and is
 *     the first of the next pull, em_iter_next or em_iter_next_batch alike.
 * So a batch always starts at the first record not yet handed out, as fn.h promises.
 * THREADS: one thread per iterator (the task's). */
#include <string.h>

#include "engine/exec/exec_int.h"

struct em__iter_scratch {
    em_vbuf v;           /* EM_BATCH_ALIGN-aligned (grown by em_vbuf_reserve_aligned) */
};

/* A KV record with an empty key still needs key.p != NULL. */
static const uint8_t empty_key[1];

/* ---------------------------------------------------------------- pulls */

int em_iter_next(em_iter *it, em_rec *r, em_err *err)
{
    if (EM_UNLIKELY(++it->ticks % EM__CANCEL_EVERY == 0) && em__task_canceled())
        return em__cancel_err(err);
    if (EM_UNLIKELY(it->has_pend)) {
        it->has_pend = false;
        *r = it->pend;
        return 1;
    }
    return it->next(it, r, err);
}

void em__iter_free(em_iter *it)
{
    if (!it)
        return;
    if (it->scratch) {
        em_vbuf_destroy(&it->scratch->v);
        em_free(it->scratch);
    }
    it->free(it);
}

int em__iter_drain_runs(em_iter *it, em__push_fn fn, em__push_run_fn run, void *ud,
                        em_err *err)
{
    em_rec r;
    int rc;
    if (it->has_pend) {
        it->has_pend = false;
        if ((rc = fn(ud, &it->pend, err)) < 0)
            return rc;
    }
    if (it->drain)
        return it->drain(it, fn, run, ud, err);
    while ((rc = it->next(it, &r, err)) == 1) {
        if (EM_UNLIKELY(++it->ticks % EM__CANCEL_EVERY == 0) && em__task_canceled())
            return em__cancel_err(err);
        if ((rc = fn(ud, &r, err)) < 0)
            return rc;
    }
    return rc;
}

int em__iter_drain(em_iter *it, em__push_fn fn, void *ud, em_err *err)
{
    return em__iter_drain_runs(it, fn, NULL, ud, err);
}

int em__iter_chain_pull(em_iter **cur, bool batch, void *out, em__iter_open_fn next, void *ud,
                        em_err *err)
{
    for (;;) {
        if (*cur) {
            int rc = batch ? em_iter_next_batch(*cur, out, err) : em_iter_next(*cur, out, err);
            if (rc != 0)
                return rc;
            em__iter_free(*cur);
            *cur = NULL;
        }
        int rc = next(ud, cur, err);
        if (rc <= 0)
            return rc;
    }
}

/* ---------------------------------------------------------------- scratch */

/* Ensures the scratch holds len + extra bytes, keeping its contents. */
static int scratch_reserve(em_iter *it, size_t extra, em_err *err)
{
    if (!it->scratch && !(it->scratch = em_calloc(1, sizeof *it->scratch)))
        return em_err_set(err, EM_ENOMEM, "batch scratch: out of memory");
    if (em_vbuf_reserve_aligned(&it->scratch->v, extra, EM_BATCH_ALIGN) < 0)
        return em_err_set(err, EM_ENOMEM, "batch scratch: out of memory for %zu more bytes",
                          extra);
    return 0;
}

int em__iter_align(em_iter *it, em_rec_batch *b, em_err *err)
{
    if (b->kind != EM_REC_FIXED || ((uintptr_t)b->data & (EM_BATCH_ALIGN - 1)) == 0)
        return 0;
    if (it->scratch)
        it->scratch->v.len = 0;
    int rc = scratch_reserve(it, b->nbytes, err);
    if (rc < 0)
        return rc;
    memcpy(it->scratch->v.data, b->data, b->nbytes);
    b->data = it->scratch->v.data;
    return 0;
}

/* ---------------------------------------------------------------- gathering */

static em_rec_kind kind_of(const em_iter *it, const em_rec *r)
{
    if (r->key.p)
        return EM_REC_KV;
    return it->width && r->val.n == it->width ? EM_REC_FIXED : EM_REC_BYTES;
}

/* Appends r to the scratch in the payload format of `kind`. */
static int scratch_add(em_iter *it, em_rec_kind kind, const em_rec *r, em_err *err)
{
    size_t hdr = kind == EM_REC_KV ? 8 : kind == EM_REC_BYTES ? 4 : 0;
    int rc = scratch_reserve(it, hdr + r->key.n + r->val.n, err);
    if (rc < 0)
        return rc;
    em__iter_scratch *s = it->scratch;
    uint8_t *p = s->v.data + s->v.len;
    if (kind == EM_REC_KV) {
        em_store_le32(p, (uint32_t)r->key.n);
        em_store_le32(p + 4, (uint32_t)r->val.n);
        if (r->key.n)
            memcpy(p + 8, r->key.p, r->key.n);
    } else if (kind == EM_REC_BYTES) {
        em_store_le32(p, (uint32_t)r->val.n);
    }
    if (r->val.n)
        memcpy(p + hdr + r->key.n, r->val.p, r->val.n);
    s->v.len += hdr + r->key.n + r->val.n;
    return 0;
}

/* The generic next_batch: gathers records of one kind (file comment). */
static int gather(em_iter *it, em_rec_batch *b, em_err *err)
{
    em_rec r;
    uint64_t n = 0;
    em_rec_kind kind = EM_REC_BYTES;
    int rc;
    if (it->scratch)
        it->scratch->v.len = 0;
    for (;;) {
        if (n && it->scratch->v.len >= EM_BATCH_TARGET_BYTES)
            break;
        if (it->has_pend) {
            it->has_pend = false;
            r = it->pend;
        } else if ((rc = it->next(it, &r, err)) <= 0) {
            if (rc < 0)
                return rc;
            break;
        }
        em_rec_kind k = kind_of(it, &r);
        if (n && k != kind) {
            it->pend = r;
            it->has_pend = true;
            break;
        }
        if ((rc = scratch_add(it, k, &r, err)) < 0)
            return rc;
        kind = k;
        n++;
    }
    if (n == 0)
        return 0;
    *b = (em_rec_batch){kind, kind == EM_REC_FIXED ? it->width : 0, n, it->scratch->v.data,
                        it->scratch->v.len};
    return 1;
}

int em_iter_next_batch(em_iter *it, em_rec_batch *b, em_err *err)
{
    if (em__task_canceled())
        return em__cancel_err(err);
    if (it->next_batch && !it->has_pend)
        return it->next_batch(it, b, err);
    return gather(it, b, err);
}

/* ---------------------------------------------------------------- batch lists */

typedef struct batches_iter {
    em_iter base;
    em_batch **batches;
    size_t n, at;
    em_batch_iter bi;
    uint64_t left;        /* records of the current batch not handed out yet */
    uint64_t *counter;    /* optional: records handed out are added here */
} batches_iter;

static int batches_next(em_iter *it, em_rec *r, em_err *err)
{
    batches_iter *b = (batches_iter *)it;
    for (;;) {
        if (b->left && em_batch_iter_next(&b->bi, r)) {
            b->left--;
            if (r->key.p == NULL && b->bi.kind == EM_REC_KV)
                r->key = em_slice_make(empty_key, 0);
            if (b->counter)
                (*b->counter)++;
            return 1;
        }
        if (b->at >= b->n)
            return 0;
        if (em__task_canceled())   /* once per batch */
            return em__cancel_err(err);
        em_batch_iter_init(&b->bi, b->batches[b->at]);
        b->left = em_batch_nrecs(b->batches[b->at++]);
    }
}

int em__iter_batch_rest(em_iter *it, em_batch_iter *bi, uint64_t *left, em_rec_batch *out,
                        em_err *err)
{
    *out = (em_rec_batch){bi->kind, bi->kind == EM_REC_FIXED ? bi->width : 0, *left, bi->p,
                          (size_t)(bi->end - bi->p)};
    *left = 0;
    bi->p = bi->end;
    int rc = em__iter_align(it, out, err);
    return rc < 0 ? rc : 1;
}

static int batches_next_batch(em_iter *it, em_rec_batch *out, em_err *err)
{
    batches_iter *b = (batches_iter *)it;
    while (b->left == 0) {
        if (b->at >= b->n)
            return 0;
        em_batch_iter_init(&b->bi, b->batches[b->at]);
        b->left = em_batch_nrecs(b->batches[b->at++]);
    }
    if (b->counter)
        *b->counter += b->left;
    return em__iter_batch_rest(it, &b->bi, &b->left, out, err);
}

static void batches_free(em_iter *it)
{
    batches_iter *b = (batches_iter *)it;
    for (size_t i = 0; i < b->n; i++)
        em_batch_unref(b->batches[i]);
    em_free(b->batches);
    em_free(b);
}

em_iter *em__batches_iter_new_counted(em_batch **batches, size_t n, uint64_t *counter)
{
    batches_iter *b = (batches_iter *)em__batches_iter_new(batches, n);
    b->counter = counter;
    return &b->base;
}

em_iter *em__batches_iter_new(em_batch **batches, size_t n)
{
    batches_iter *b = em_xcalloc(1, sizeof *b);
    b->base.next = batches_next;
    b->base.next_batch = batches_next_batch;
    b->base.free = batches_free;
    b->batches = batches;
    b->n = n;
    return &b->base;
}
