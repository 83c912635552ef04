/* engine/exec/runtime.c - the runtime half of the function ABI (engine/plan/fn.h): emitters,
 * the running task's partition, broadcasts and accumulators; plus small pieces the pipeline
 * shares (record batching, node error context). Iterators (em_iter_next,
 * em_iter_next_batch, batch lists as iterators) are in iterio.c. */
#include <string.h>

#include "engine/exec/exec_int.h"

/* ---------------------------------------------------------------- cancellation */

_Thread_local const atomic_bool *em__tl_cancel;

int em__cancel_err(em_err *err)
{
    return em_err_set(err, EM_ECANCELED, "task canceled");
}

/* ---------------------------------------------------------------- emitters */

void em__emitter_init(em_emitter *e)
{
    em_vbuf_init(&e->buf);
    e->n = 0;
    e->push = NULL;
    e->push_run = NULL;
    e->push_ud = NULL;
    e->ticks = 0;
}

void em__emitter_destroy(em_emitter *e)
{
    em_vbuf_destroy(&e->buf);
    e->n = 0;
}

void em__emitter_reset(em_emitter *e)
{
    em_vbuf_clear(&e->buf);
    e->n = 0;
}

/* A KV record with an empty key still needs key.p != NULL. */
static const uint8_t empty_key[1];

static int emit_parts(em_emitter *e, bool kv, em_slice key, em_slice val, em_err *err)
{
    if (EM_UNLIKELY(++e->ticks % EM__CANCEL_EVERY == 0) && em__task_canceled())
        return em__cancel_err(err);
    if (EM_UNLIKELY(key.n >= EM_BATCH_MAX_REC_LEN || val.n > EM_BATCH_MAX_REC_LEN))
        return em_err_set(err, EM_EINVAL, "emit: record part of %zu bytes is too large",
                          key.n > val.n ? key.n : val.n);
    if (e->push) {
        /* Same record shape as em__emitter_read hands out: set pointers, kind from kv. */
        em_rec r = {kv ? em_slice_make(key.p ? key.p : empty_key, key.n)
                       : em_slice_make(NULL, 0),
                    em_slice_make(val.p ? val.p : empty_key, val.n)};
        e->n++;
        return e->push(e->push_ud, &r, err);
    }
    if (em_vbuf_reserve(&e->buf, 8 + key.n + val.n) < 0)
        return em_err_set(err, EM_ENOMEM, "emit: out of memory (%zu bytes buffered)",
                          e->buf.len);
    uint8_t *p = e->buf.data + e->buf.len;
    em_store_le32(p, kv ? (uint32_t)key.n + 1 : 0);
    em_store_le32(p + 4, (uint32_t)val.n);
    if (key.n)
        memcpy(p + 8, key.p, key.n);
    if (val.n)
        memcpy(p + 8 + key.n, val.p, val.n);
    e->buf.len += 8 + key.n + val.n;
    e->n++;
    return 0;
}

int em_emit(em_emitter *e, const em_rec *r, em_err *err)
{
    return emit_parts(e, r->key.p != NULL, r->key, r->val, err);
}

int em_emit_kv(em_emitter *e, em_slice key, em_slice val, em_err *err)
{
    return emit_parts(e, true, key, val, err);
}

int em_emit_val(em_emitter *e, em_slice val, em_err *err)
{
    return emit_parts(e, false, em_slice_make(NULL, 0), val, err);
}

int em_emit_fixed(em_emitter *e, const void *recs, uint32_t width, size_t n, em_err *err)
{
    const uint8_t *p = recs;
    if (n == 0)
        return 0;
    if (width == 0)
        return em_err_set(err, EM_EINVAL, "emit: a run of %zu records of width 0", n);
    if (!e->push_run) {   /* one record at a time, as em_emit_val */
        for (size_t i = 0; i < n; i++) {
            int rc = emit_parts(e, false, em_slice_make(NULL, 0),
                                em_slice_make(p + i * width, width), err);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    /* The cancel flag is read as often as em_emit_val reads it: whenever the record count
     * passes a multiple of EM__CANCEL_EVERY. */
    uint32_t before = e->ticks;
    e->ticks += (uint32_t)n;
    if (EM_UNLIKELY(n >= EM__CANCEL_EVERY || e->ticks / EM__CANCEL_EVERY !=
                                                 before / EM__CANCEL_EVERY) &&
        em__task_canceled())
        return em__cancel_err(err);
    if (EM_UNLIKELY(width > EM_BATCH_MAX_REC_LEN))
        return em_err_set(err, EM_EINVAL, "emit: record part of %u bytes is too large", width);
    e->n += n;
    return e->push_run(e->push_ud, p, width, n, err);
}

/* ---- zero-copy emit of big pairs. Layout of the buffer: the KV batch payload of one
 * record (u32 klen, u32 vlen, key, value), so a batcher can adopt it whole as its batch.
 * The offer lives on em_emit_big_kv's stack while the record is pushed on this thread
 * (push mode runs the consumer synchronously); the batcher takes it only when the record
 * it is handed is that very buffer (pointers and lengths equal), so any stage between
 * them that makes a new record (a fused map, a width check failing) just copies. */
typedef struct big_offer {
    uint8_t *base;
    const uint8_t *key, *val;
    size_t klen, vlen;
    bool taken;
} big_offer;
static _Thread_local big_offer *tl_offer;

void *em_emit_big_alloc(size_t klen, size_t vcap)
{
    size_t n;
    if (klen >= EM_BATCH_MAX_REC_LEN || !em_size_add(8 + klen, vcap, &n))
        return NULL;
    uint8_t *b = em_malloc_big(n);
    return b ? b + 8 + klen : NULL;
}

void em_emit_big_free(void *val, size_t klen)
{
    if (val)
        em_free_big((uint8_t *)val - 8 - klen);
}

int em_emit_big_kv(em_emitter *e, em_slice key, void *val, size_t vlen, em_err *err)
{
    uint8_t *base = (uint8_t *)val - 8 - key.n;
    if (vlen > EM_BATCH_MAX_REC_LEN) {
        em_free_big(base);
        return em_err_set(err, EM_EINVAL, "emit: record part of %zu bytes is too large", vlen);
    }
    em_store_le32(base, (uint32_t)key.n);
    em_store_le32(base + 4, (uint32_t)vlen);
    if (key.n)
        memcpy(base + 8, key.p, key.n);
    big_offer o = {base, base + 8, val, key.n, vlen, false}, *prev = tl_offer;
    tl_offer = &o;
    int rc = emit_parts(e, true, em_slice_make(base + 8, key.n), em_slice_make(val, vlen), err);
    tl_offer = prev;
    if (!o.taken)
        em_free_big(base);
    return rc;
}

/* The buffer of the big pair being emitted on this thread when r is that pair (taken
 * over: the caller makes it a batch), else NULL. */
static uint8_t *take_offer(const em_rec *r, size_t *n)
{
    big_offer *o = tl_offer;
    if (!o || o->taken || r->key.p != o->key || r->key.n != o->klen || r->val.p != o->val ||
        r->val.n != o->vlen)
        return NULL;
    o->taken = true;
    *n = 8 + o->klen + o->vlen;
    return o->base;
}

bool em__emitter_read(const em_emitter *e, size_t *off, em_rec *r)
{
    if (*off >= e->buf.len)
        return false;
    const uint8_t *p = e->buf.data + *off;
    uint32_t k = em_load_le32(p), v = em_load_le32(p + 4);
    size_t klen = k ? k - 1 : 0;
    r->key = k ? em_slice_make(klen ? p + 8 : empty_key, klen) : em_slice_make(NULL, 0);
    r->val = em_slice_make(p + 8 + klen, v);
    *off += 8 + klen + v;
    return true;
}

/* ---------------------------------------------------------------- batching */

void em__batcher_init(em_batcher *b, uint32_t width)
{
    memset(b, 0, sizeof *b);
    b->width = width;
}

static int batcher_push_batch(em_batcher *b, em_batch *batch, em_err *err)
{
    em_batch **nb = em_arr_grow(b->batches, &b->cap, b->n + 1, sizeof *nb);
    if (!nb) {
        em_batch_unref(batch);
        return em_err_set(err, EM_ENOMEM, "out of memory collecting batches");
    }
    b->batches = nb;
    b->batches[b->n++] = batch;
    return 0;
}

/* Finishes the open big FIXED batch (fx), if any. */
static int fixed_close(em_batcher *b, em_err *err)
{
    if (!b->fx)
        return 0;
    uint8_t *p = b->fx;
    size_t len = b->fx_len;
    uint64_t n = b->fx_n;
    b->fx = NULL;
    b->fx_len = b->fx_cap = 0;
    b->fx_n = 0;
    b->last = len;
    em_batch *batch = em_batch_new_take_big(EM_REC_FIXED, b->width, n, p, len);
    if (!batch)
        return em_err_set(err, EM_ENOMEM, "out of memory finishing %llu records",
                          (unsigned long long)n);
    return batcher_push_batch(b, batch, err);
}

static int batcher_close(em_batcher *b, em_err *err)
{
    int rc = fixed_close(b, err);
    if (rc < 0 || !b->open)
        return rc;
    b->open = false;
    if (b->bb.nrecs == 0) {
        em_batch_builder_destroy(&b->bb);
        return 0;
    }
    b->last = em_batch_builder_nbytes(&b->bb);
    em_batch *batch = em_batch_builder_finish(&b->bb, err);
    em_batch_builder_destroy(&b->bb);
    if (!batch)
        return err && err->code ? err->code : EM_ENOMEM;
    return batcher_push_batch(b, batch, err);
}

/* Adds a FIXED record to the big batch, opening one (or the next) as needed. 1 when the
 * record was taken, 0 when no big buffer could be had (the builder takes the record). */
static int fixed_add(em_batcher *b, const em_rec *r, em_err *err)
{
    int rc;
    if (b->fx && b->fx_cap - b->fx_len < r->val.n && (rc = fixed_close(b, err)) < 0)
        return rc;
    if (!b->fx) {
        if ((rc = batcher_close(b, err)) < 0)
            return rc;
        size_t want = r->val.n > EM_BIG_MIN ? r->val.n : EM_BIG_MIN;
        if (!(b->fx = em_malloc_big(want)))
            return 0;
        b->fx_cap = want / r->val.n * r->val.n;
    }
    memcpy(b->fx + b->fx_len, r->val.p, r->val.n);
    b->fx_len += r->val.n;
    b->fx_n++;
    return 1;
}

/* A record of EM_BIG_MIN bytes or more (an ALS block record: hundreds of MB) as a batch of
 * its own, copied once into an exactly sized em_malloc_big buffer. Through the builder it
 * would be copied up a chain of x1.5 heap reallocations (about twice its size in copies,
 * and with the task processes' malloc policy every one into fresh 4 KiB pages). */
static int batcher_add_big(em_batcher *b, em_rec_kind kind, const em_rec *r, em_err *err)
{
    int rc = batcher_close(b, err);
    if (rc < 0)
        return rc;
    size_t hdr = kind == EM_REC_KV ? 8 : 4, n = hdr + r->key.n + r->val.n;
    /* em_emit_big_kv's buffer is already this batch's payload; anything else is copied */
    uint8_t *p = kind == EM_REC_KV ? take_offer(r, &n) : NULL;
    if (!p) {
        if (!(p = em_malloc_big(n)))
            return em_err_set(err, EM_ENOMEM, "out of memory batching a record of %zu bytes",
                              n);
        if (kind == EM_REC_KV) {   /* the builders' payload formats (docs/data-format.md) */
            em_store_le32(p, (uint32_t)r->key.n);
            em_store_le32(p + 4, (uint32_t)r->val.n);
            if (r->key.n)
                memcpy(p + 8, r->key.p, r->key.n);
        } else {
            em_store_le32(p, (uint32_t)r->val.n);
        }
        memcpy(p + hdr + r->key.n, r->val.p, r->val.n);
    }
    em_batch *batch = em_batch_new_take_big(kind, 0, 1, p, n);
    if (!batch)   /* p freed by em_batch_new_take_big */
        return em_err_set(err, EM_ENOMEM, "out of memory batching a record of %zu bytes", n);
    return batcher_push_batch(b, batch, err);
}

int em__batcher_add(em_batcher *b, const em_rec *r, em_err *err)
{
    em_rec_kind kind = r->key.p ? EM_REC_KV
                                : (b->width && r->val.n == b->width ? EM_REC_FIXED : EM_REC_BYTES);
    int rc;
    if (EM_UNLIKELY(r->val.n >= EM_BIG_MIN) && kind != EM_REC_FIXED &&
        r->val.n <= EM_BATCH_MAX_REC_LEN && r->key.n <= EM_BATCH_MAX_REC_LEN)
        return batcher_add_big(b, kind, r, err);
    if (kind == EM_REC_FIXED && r->val.n &&
        (b->fx || b->last >= EM_BATCH_TARGET_BYTES ||
         (b->open && em_batch_builder_nbytes(&b->bb) >= EM_BATCH_TARGET_BYTES))) {
        if ((rc = fixed_add(b, r, err)) != 0)
            return rc < 0 ? rc : 0;
    } else if (b->fx && (rc = fixed_close(b, err)) < 0) {
        return rc;
    }
    if (b->open && (b->bb.kind != kind || em_batch_builder_nbytes(&b->bb) >= EM_BATCH_TARGET_BYTES))
        if ((rc = batcher_close(b, err)) < 0)
            return rc;
    if (!b->open) {
        em_batch_builder_init(&b->bb, kind, kind == EM_REC_FIXED ? b->width : 0);
        b->open = true;
        /* The previous batch was cut at the target size: this one will be too, so it gets
         * its whole buffer at once instead of doubling (and copying) its way up. Small
         * partitions never reach the target and keep growing from small. */
        if (b->last >= EM_BATCH_TARGET_BYTES)
            em_batch_builder_reserve(&b->bb, b->last + (size_t)b->last / 16);
    }
    return em_batch_builder_add(&b->bb, r, err);
}

int em__batcher_add_run(em_batcher *b, const uint8_t *p, uint32_t width, size_t n,
                        em_err *err)
{
    int rc;
    while (n) {
        if (width != b->width || !b->fx || b->fx_cap - b->fx_len < width) {
            /* Until a big FIXED batch is open (the first ~1 MiB of a partition, another
             * width, no big buffer to be had), or when it is full: as single records,
             * which open the next one. */
            em_rec r = {em_slice_make(NULL, 0), em_slice_make(p, width)};
            if ((rc = em__batcher_add(b, &r, err)) < 0)
                return rc;
            p += width;
            n--;
            continue;
        }
        size_t k = (b->fx_cap - b->fx_len) / width;
        k = k < n ? k : n;
        memcpy(b->fx + b->fx_len, p, k * width);
        b->fx_len += k * width;
        b->fx_n += k;
        p += k * width;
        n -= k;
    }
    return 0;
}

int em__batcher_finish(em_batcher *b, em_batch ***out, size_t *n, em_err *err)
{
    int rc = batcher_close(b, err);
    if (rc < 0)
        return rc;
    *out = b->batches;
    *n = b->n;
    b->batches = NULL;
    b->n = b->cap = 0;
    return 0;
}

void em__batcher_destroy(em_batcher *b)
{
    em_free_big(b->fx);
    b->fx = NULL;
    b->fx_len = b->fx_cap = 0;
    b->fx_n = 0;
    if (b->open)
        em_batch_builder_destroy(&b->bb);
    b->open = false;
    for (size_t i = 0; i < b->n; i++)
        em_batch_unref(b->batches[i]);
    em_free(b->batches);
    b->batches = NULL;
    b->n = b->cap = 0;
}

/* ---------------------------------------------------------------- node context */

int em__node_err(const em_plan_node *n, em_err *err)
{
    if (n->fn)
        return em_err_prefix(err, "%s '%s' (rdd %u)", em_op_name(n->op), n->fn, n->id);
    return em_err_prefix(err, "%s (rdd %u)", em_op_name(n->op), n->id);
}

int em__node_fn(const em_plan_node *n, const char *name, em_fn_kind kind, em_any_fn *out,
                em_err *err)
{
    if (!name)
        return em_err_set(err, EM_EPLAN, "%s (rdd %u): no function", em_op_name(n->op), n->id);
    if (em_registry_resolve(name, kind, out, err) < 0)
        return em_err_prefix(err, "%s (rdd %u)", em_op_name(n->op), n->id);
    return 0;
}

/* ---------------------------------------------------------------- task API */

uint32_t em_task_partition(const em_task *t)
{
    return t->partition;
}

uint32_t em_task_attempt(const em_task *t)
{
    return t->attempt;
}

bool em_task_canceled(const em_task *t)
{
    /* The task's own flag, not the thread's: a map_partitions function may run on its
     * producer thread (mappart.c), which has no em__tl_cancel. */
    const atomic_bool *c = t && t->env ? t->env->cancel : em__tl_cancel;
    return c && atomic_load_explicit(c, memory_order_relaxed);
}

int em__task_get_block(em_task *t, em_block_id id, em_batch ***out, size_t *n, em_err *err)
{
    const em_exec_env *env = t->env;
    int rc = env->store ? em_block_store_get(env->store, id, out, n, err) : 0;
    if (rc == 0 && env->fetch_block)
        rc = env->fetch_block(env->ud, id, out, n, err);
    return rc;
}

int em_task_broadcast(em_task *t, uint32_t id, em_slice *value, em_err *err)
{
    for (size_t i = 0; i < t->nbcast; i++)
        if (t->bcast[i].id == id) {
            *value = t->bcast[i].value;
            return 0;
        }
    em_block_id bid = {EM_BLOCK_BROADCAST, id, 0, 0};
    em_batch **bs = NULL;
    size_t nb = 0;
    int rc = em__task_get_block(t, bid, &bs, &nb, err);
    if (rc < 0)
        return em_err_prefix(err, "broadcast %u", id);
    if (rc == 0)
        return em_err_set(err, EM_ENOTFOUND, "broadcast %u: not found in the block store", id);
    em_batch_iter bi;
    em_rec r;
    if (nb != 1 || em_batch_kind(bs[0]) != EM_REC_BYTES || em_batch_nrecs(bs[0]) != 1) {
        rc = em_err_set(err, EM_ECORRUPT, "broadcast %u: expected one BYTES batch with one "
                        "record", id);
        goto fail;
    }
    em_bcast_entry *ne = em_realloc(t->bcast, (t->nbcast + 1) * sizeof *ne);
    if (!ne) {
        rc = em_err_set(err, EM_ENOMEM, "broadcast %u: out of memory", id);
        goto fail;
    }
    t->bcast = ne;
    em_batch_iter_init(&bi, bs[0]);
    em_batch_iter_next(&bi, &r);
    t->bcast[t->nbcast++] = (em_bcast_entry){id, bs, nb, r.val};
    *value = r.val;
    return 0;
fail:
    for (size_t i = 0; i < nb; i++)
        em_batch_unref(bs[i]);
    em_free(bs);
    return rc;
}

static em_acc_update *acc_slot(em_task *t, uint32_t id, bool is_f64)
{
    for (uint32_t i = 0; i < t->nacc; i++)
        if (t->acc[i].id == id && t->acc[i].is_f64 == is_f64)
            return &t->acc[i];
    t->acc = em_arr_xgrow(t->acc, &t->acc_cap, t->nacc + 1, sizeof *t->acc); /* tiny table */
    t->acc[t->nacc] = (em_acc_update){.id = id, .is_f64 = is_f64};
    return &t->acc[t->nacc++];
}

void em_task_acc_add_i64(em_task *t, uint32_t id, int64_t delta)
{
    em_acc_update *a = acc_slot(t, id, false);
    a->i64 = (int64_t)((uint64_t)a->i64 + (uint64_t)delta);
}

void em_task_acc_add_f64(em_task *t, uint32_t id, double delta)
{
    em_acc_update *a = acc_slot(t, id, true);
    a->f64 += delta;
}

/* ---------------------------------------------------------------- driver-side task */

typedef struct driver_task {
    em_task t;                   /* first: the em_task pointer is the struct's */
    em_exec_env env;
    em_task_metrics metrics;
} driver_task;

em_task *em_exec_driver_task_new(em_block_store *store)
{
    driver_task *d = em_xcalloc(1, sizeof *d);
    d->env.store = store;
    d->t.env = &d->env;
    d->t.metrics = &d->metrics;
    return &d->t;
}

void em_exec_driver_task_free(em_task *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nbcast; i++) {
        for (size_t j = 0; j < t->bcast[i].nbatches; j++)
            em_batch_unref(t->bcast[i].batches[j]);
        em_free(t->bcast[i].batches);
    }
    em_free(t->bcast);
    em_free(t->acc);
    em_free((driver_task *)t);
}
