/* engine/data/batch.c - refcounted immutable batches, the builder, the iterator and the
 * validator for untrusted payload bytes. Payload formats: engine/data/data.h and
 * docs/data-format.md.
 * Copies of EM_BIG_MIN bytes or more go to em_malloc_big (huge pages, reused mappings).
 * ALIGNMENT: every non-empty FIXED payload starts on a 64-byte boundary (EM_BATCH_ALIGN):
 * inline payloads are placed there, adopted ones are copied there when they are not, and
 * the builder grows FIXED buffers with aligned allocations, so the common paths (builders,
 * block decoding) never copy for it. A FIXED batch is then a row-major matrix that SIMD
 * code and BLAS take without realigning (em_iter_next_batch in engine/plan/fn.h).
 * THREADS: a finished batch may be shared by any threads (atomic refcount); builders and
 * iterators are one thread per object. */
#include <stdatomic.h>
#include <string.h>

#include "engine/data/data.h"

struct em_batch {
    atomic_size_t refs;
    em_rec_kind kind;
    uint32_t width;   /* FIXED only, else 0 */
    uint64_t nrecs;
    size_t nbytes;
    uint8_t *payload; /* inline (INLINE_OFF bytes after the struct), or adopted
                         (em_batch_new_take), or NULL when empty */
    bool owns_separate;
    bool payload_big; /* adopted from em_malloc_big: freed with em_free_big */
};

/* Inline payloads start this far into the allocation (itself EM_BATCH_ALIGN-aligned). */
#define INLINE_OFF ((sizeof(em_batch) + EM_BATCH_ALIGN - 1) & ~(size_t)(EM_BATCH_ALIGN - 1))

/* What em_batch_payload returns for an empty batch, so callers never see NULL. */
static const uint8_t g_empty_payload[16];

em_rec_kind em_batch_kind(const em_batch *b)
{
    return b->kind;
}

uint32_t em_batch_width(const em_batch *b)
{
    return b->width;
}

uint64_t em_batch_nrecs(const em_batch *b)
{
    return b->nrecs;
}

const uint8_t *em_batch_payload(const em_batch *b)
{
    return b->payload ? b->payload : g_empty_payload;
}

size_t em_batch_nbytes(const em_batch *b)
{
    return b->nbytes;
}

em_batch *em_batch_ref(em_batch *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void em_batch_unref(em_batch *b)
{
    if (!b)
        return;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (b->payload_big)
        em_free_big(b->payload);
    else if (b->owns_separate)
        em_free(b->payload);
    em_free(b);
}

static void batch_fill(em_batch *b, em_rec_kind kind, uint32_t width, uint64_t nrecs,
                       size_t nbytes)
{
    atomic_init(&b->refs, 1);
    b->kind = kind;
    b->width = kind == EM_REC_FIXED ? width : 0;
    b->nrecs = nrecs;
    b->nbytes = nbytes;
}

em_batch *em_batch_new_copy(em_rec_kind kind, uint32_t width, uint64_t nrecs,
                            const void *payload, size_t nbytes)
{
    if (nbytes >= EM_BIG_MIN) {   /* huge pages, reused mappings: docs/cluster.md */
        uint8_t *big = em_malloc_big(nbytes);
        if (!big)
            return NULL;
        memcpy(big, payload, nbytes);
        return em_batch_new_take_big(kind, width, nrecs, big, nbytes);
    }
    size_t total;
    if (!em_size_add(INLINE_OFF, nbytes, &total))
        return NULL;
    em_batch *b = em_malloc_aligned(EM_BATCH_ALIGN, total);
    if (!b)
        return NULL;
    batch_fill(b, kind, width, nrecs, nbytes);
    b->payload = (uint8_t *)b + INLINE_OFF;
    b->owns_separate = false;
    b->payload_big = false;
    if (nbytes)
        memcpy(b->payload, payload, nbytes);
    return b;
}

em_batch *em_batch_new_take(em_rec_kind kind, uint32_t width, uint64_t nrecs, void *payload,
                            size_t nbytes)
{
    if (kind == EM_REC_FIXED && nbytes && ((uintptr_t)payload & (EM_BATCH_ALIGN - 1))) {
        em_batch *c = em_batch_new_copy(kind, width, nrecs, payload, nbytes);
        em_free(payload);
        return c;
    }
    em_batch *b = em_malloc(sizeof(em_batch));
    if (!b) {
        em_free(payload);
        return NULL;
    }
    batch_fill(b, kind, width, nrecs, nbytes);
    b->payload = payload;
    b->owns_separate = true;
    b->payload_big = false;
    return b;
}

em_batch *em_batch_new_take_big(em_rec_kind kind, uint32_t width, uint64_t nrecs,
                                void *payload, size_t nbytes)
{
    EM_ASSERT(((uintptr_t)payload & (EM_BATCH_ALIGN - 1)) == 0);   /* em_malloc_big's */
    em_batch *b = em_malloc(sizeof(em_batch));
    if (!b) {
        em_free_big(payload);
        return NULL;
    }
    batch_fill(b, kind, width, nrecs, nbytes);
    b->payload = payload;
    b->owns_separate = true;
    b->payload_big = true;
    return b;
}

/* ---------------------------------------------------------------- validation */

static int validate_fixed(uint32_t width, uint64_t nrecs, size_t n, em_err *err)
{
    uint64_t want;
    if (width == 0)
        return em_err_set(err, EM_ECORRUPT, "FIXED batch with width 0");
    if (__builtin_mul_overflow(nrecs, (uint64_t)width, &want))
        return em_err_set(err, EM_ECORRUPT, "FIXED batch: %llu records of width %u overflow",
                          (unsigned long long)nrecs, width);
    if (want != (uint64_t)n)
        return em_err_set(err, EM_ECORRUPT,
                          "FIXED batch: %llu records of width %u need %llu bytes, have %zu",
                          (unsigned long long)nrecs, width, (unsigned long long)want, n);
    return 0;
}

int em_batch_validate(em_rec_kind kind, uint32_t width, uint64_t nrecs, const uint8_t *p,
                      size_t n, em_err *err)
{
    if (kind == EM_REC_FIXED)
        return validate_fixed(width, nrecs, n, err);
    if (kind != EM_REC_BYTES && kind != EM_REC_KV)
        return em_err_set(err, EM_ECORRUPT, "unknown record kind %d", (int)kind);
    size_t hdr = kind == EM_REC_KV ? 8 : 4;
    size_t off = 0;
    for (uint64_t i = 0; i < nrecs; i++) {
        size_t left = n - off;
        if (left < hdr)
            return em_err_set(err, EM_ECORRUPT,
                              "record %llu at offset %zu: header truncated (%zu bytes left)",
                              (unsigned long long)i, off, left);
        uint64_t a = em_load_le32(p + off);
        uint64_t b = kind == EM_REC_KV ? em_load_le32(p + off + 4) : 0;
        if (a > EM_BATCH_MAX_REC_LEN || b > EM_BATCH_MAX_REC_LEN)
            return em_err_set(err, EM_ECORRUPT, "record %llu at offset %zu: length too large",
                              (unsigned long long)i, off);
        if (a + b > left - hdr)
            return em_err_set(err, EM_ECORRUPT,
                              "record %llu at offset %zu: needs %llu bytes, %zu left",
                              (unsigned long long)i, off, (unsigned long long)(a + b),
                              left - hdr);
        off += hdr + (size_t)(a + b);
    }
    if (off != n)
        return em_err_set(err, EM_ECORRUPT, "%zu trailing bytes after %llu records at offset %zu",
                          n - off, (unsigned long long)nrecs, off);
    return 0;
}

/* ---------------------------------------------------------------- builder */

void em_batch_builder_init(em_batch_builder *bb, em_rec_kind kind, uint32_t width)
{
    bb->kind = kind;
    bb->width = kind == EM_REC_FIXED ? width : 0;
    bb->nrecs = 0;
    em_vbuf_init(&bb->buf);
}

void em_batch_builder_reserve(em_batch_builder *bb, size_t bytes)
{
    if (bytes > bb->buf.len)
        (void)em_vbuf_reserve_aligned(&bb->buf, bytes - bb->buf.len, EM_BATCH_ALIGN);
}

void em_batch_builder_destroy(em_batch_builder *bb)
{
    em_vbuf_destroy(&bb->buf);
    bb->nrecs = 0;
}

static int builder_oom(em_err *err)
{
    return em_err_set(err, EM_ENOMEM, "batch builder: out of memory");
}

int em_batch_builder_add_kv(em_batch_builder *bb, em_slice key, em_slice val, em_err *err)
{
    if (bb->kind != EM_REC_KV)
        return em_err_set(err, EM_EINVAL, "add_kv on a batch of kind %d", (int)bb->kind);
    if (key.n > EM_BATCH_MAX_REC_LEN || val.n > EM_BATCH_MAX_REC_LEN)
        return em_err_set(err, EM_EINVAL, "record too large (key %zu, value %zu bytes)", key.n,
                          val.n);
    /* Reserve first so that a failed add leaves the builder unchanged. */
    if (em_vbuf_reserve(&bb->buf, 8 + key.n + val.n) < 0)
        return builder_oom(err);
    uint8_t h[8];
    em_store_le32(h, (uint32_t)key.n);
    em_store_le32(h + 4, (uint32_t)val.n);
    em_vbuf_append(&bb->buf, h, 8);
    em_vbuf_append(&bb->buf, key.p, key.n);
    em_vbuf_append(&bb->buf, val.p, val.n);
    bb->nrecs++;
    return 0;
}

int em_batch_builder_add_val(em_batch_builder *bb, em_slice val, em_err *err)
{
    if (bb->kind == EM_REC_KV)
        return em_batch_builder_add_kv(bb, em_slice_make(NULL, 0), val, err);
    if (bb->kind == EM_REC_FIXED) {
        if (val.n != bb->width)
            return em_err_set(err, EM_EINVAL, "FIXED record of %zu bytes, width is %u", val.n,
                              bb->width);
        if (em_vbuf_reserve_aligned(&bb->buf, val.n, EM_BATCH_ALIGN) < 0)
            return builder_oom(err);
        memcpy(bb->buf.data + bb->buf.len, val.p, val.n);
        bb->buf.len += val.n;
        bb->nrecs++;
        return 0;
    }
    if (bb->kind != EM_REC_BYTES)
        return em_err_set(err, EM_EINVAL, "unknown record kind %d", (int)bb->kind);
    if (val.n > EM_BATCH_MAX_REC_LEN)
        return em_err_set(err, EM_EINVAL, "record too large (%zu bytes)", val.n);
    if (em_vbuf_reserve(&bb->buf, 4 + val.n) < 0)
        return builder_oom(err);
    em_vbuf_append_u32le(&bb->buf, (uint32_t)val.n);
    em_vbuf_append(&bb->buf, val.p, val.n);
    bb->nrecs++;
    return 0;
}

int em_batch_builder_add(em_batch_builder *bb, const em_rec *r, em_err *err)
{
    if (bb->kind == EM_REC_KV)
        return em_batch_builder_add_kv(bb, r->key, r->val, err);
    return em_batch_builder_add_val(bb, r->val, err);
}

em_batch *em_batch_builder_finish(em_batch_builder *bb, em_err *err)
{
    size_t n;
    uint64_t nrecs = bb->nrecs;
    uint8_t *p = em_vbuf_steal(&bb->buf, &n);
    bb->nrecs = 0;
    /* The builder is reset either way; on OOM the records are lost with it. */
    em_batch *b = em_batch_new_take(bb->kind, bb->width, nrecs, p, n);
    if (!b)
        em_err_set(err, EM_ENOMEM, "batch builder: out of memory finishing %llu records",
                   (unsigned long long)nrecs);
    return b;
}

/* ---------------------------------------------------------------- iterator */

void em_batch_iter_init_raw(em_batch_iter *it, em_rec_kind kind, uint32_t width,
                            const uint8_t *p, size_t n)
{
    it->kind = kind;
    it->width = width;
    it->p = p ? p : g_empty_payload;
    it->end = it->p + (p ? n : 0);
}

void em_batch_iter_init(em_batch_iter *it, const em_batch *b)
{
    em_batch_iter_init_raw(it, b->kind, b->width, em_batch_payload(b), b->nbytes);
}

/* Out-of-line twin of the inline iterator in data.h (parenthesised name: no macro). */
bool(em_batch_iter_next)(em_batch_iter *it, em_rec *r)
{
    return em__batch_iter_next(it, r);
}

size_t em_rec_encoded_size(em_rec_kind kind, const em_rec *r)
{
    switch (kind) {
    case EM_REC_BYTES:
        return 4 + r->val.n;
    case EM_REC_KV:
        return 8 + r->key.n + r->val.n;
    case EM_REC_FIXED:
        return r->val.n;
    }
    return 0;
}
