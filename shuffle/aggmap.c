/* shuffle/aggmap.c - combining hash map: (partition, key) -> combiner value.
 *
 * DESIGN: the hot loop of a combine_by_key (wordcount's map side) is "look the key up, merge
 * one value", and with a vocabulary larger than the caches its cost is cache misses. So a
 * lookup should touch one cache line:
 *   - slots is an open-addressing table (linear probing, at most 3/4 full) of 32-byte slots
 *     (shuffle_int.h FORMAT): the low 32 bits of the table hash, the partition, and either
 *     the record itself (key up to EM__AGG_INLINE_KEY bytes and an 8-byte value: ids, words,
 *     counts, sums) or a pointer to a slab entry (longer keys, other values);
 *   - a probe compares hash bits and partition, then for an inline slot the kind, length and
 *     padded key as two u64 compares against a probe image built once per lookup; only an
 *     entry slot with matching hash bits costs a second access;
 *   - a merge of two 8-byte values with a combiner that has an 8-byte kernel
 *     (em_combiner.merge_value8 / merge_combiners8, e.g. em.sum_i64) is done in place in the
 *     slot; any other merge goes through the scratch buffer, and a result that no longer fits
 *     the slot (not 8 bytes) moves the record to an entry;
 *   - an entry is one slab carving: header, key, value room. A merged value that fits the
 *     room (vcap) is written in place; a larger one re-carves the entry and repoints its
 *     slot; the old bytes are dropped until reset;
 *   - a combiner with an in-place path (em_combiner.acc_size: mutable fixed-size
 *     accumulators) always lives in an entry whose value room starts 16-byte aligned
 *     (vpad bytes after the key); it is made there (acc_create) and every later record or
 *     combiner of its key is folded into it there, with no scratch buffer and no copy;
 *   - the table is the code base's one open-addressing table (em_hmap, engine/base/hmap.h:
 *     its allocation, huge-page alignment, growth, clearing); the probe loop is this
 *     file's, inline, so the compare stays the probe image's two u64 compares;
 *   - growing moves the 32-byte slots by their stored hash bits, never touching entries;
 *   - the hot path (short key, hit in an inline slot, 8-byte kernel) is one function with
 *     no call but the kernel's: a miss, a long key, an entry slot with matching hash bits
 *     and a growing table go to out-of-line functions by tail call, so the hot function
 *     saves few registers; a key of 1..7 bytes is read with one load (engine/base/loadn.h);
 *   - the caller may pass the key's partitioning hash (em_shuffle_key_hash), so a map-side
 *     combine hashes each key once for both partitioning and the table, and may prefetch
 *     the home slot of a key it will add soon (em__aggmap_prefetch).
 * The table hash (em__agg_hash32) is the top half of one multiply of the key hash with a
 * seed and the partition mixed in: on the reduce side every key of a partition has the same
 * em_hash64(key, 0) mod nparts, so the low bits of the key hash cannot index the table,
 * but the top of the product depends on all of its bits (and em_hash64 already avalanches,
 * so a full em_mix64 again would only cost time). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/loadn.h"
#include "shuffle/shuffle_int.h"

#define SLAB_MIN_CHUNK 4096u
#define SLAB_MAX_CHUNK (1u << 20)

enum { SLOT_EMPTY = 0, SLOT_INLINE = 1, SLOT_ENTRY = 2 };

_Static_assert(sizeof(em__agg_slot) == 32, "a slot is half a cache line");

struct em__slab_chunk {
    em__slab_chunk *next;
    size_t size;
    size_t used;
    uint8_t data[];
};

void em__aggmap_init(em__aggmap *m, const em_combiner *comb, bool values_are_combiners)
{
    memset(m, 0, sizeof *m);
    m->comb = comb;
    m->values_are_combiners = values_are_combiners;
    em_hmap_init(&m->tab, sizeof(em__agg_slot), offsetof(em__agg_slot, kind), EM__AGG_MIN_SLOTS);
    em_vbuf_init(&m->scratch);
}

void em__aggmap_clear(em__aggmap *m)
{
    em__slab_chunk *c = m->chunks;
    while (c) {
        em__slab_chunk *next = c->next;
        em_free(c);
        c = next;
    }
    m->chunks = NULL;
    m->slab_used = 0;
    em_hmap_clear(&m->tab);   /* all SLOT_EMPTY */
    em_free(m->order);
    m->order = NULL;
}

void em__aggmap_reset(em__aggmap *m)
{
    em_hmap_destroy(&m->tab);   /* first: clear then has no table to zero */
    em__aggmap_clear(m);
}

void em__aggmap_destroy(em__aggmap *m)
{
    em__aggmap_reset(m);
    em_vbuf_destroy(&m->scratch);
}

/* Carves n bytes (rounded up to 8, entries hold a u64) from the slab; NULL on OOM. */
static void *slab_alloc(em__aggmap *m, size_t n)
{
    em__slab_chunk *c = m->chunks;

    n = (n + 7) & ~(size_t)7;
    if (!c || c->size - c->used < n) {
        size_t size = c ? c->size * 2 : SLAB_MIN_CHUNK;
        if (size > SLAB_MAX_CHUNK)
            size = SLAB_MAX_CHUNK;
        if (size < n)
            size = n;
        c = em_malloc(sizeof *c + size);
        if (!c)
            return NULL;
        c->size = size;
        c->used = 0;
        c->next = m->chunks;
        m->chunks = c;
    }
    uint8_t *p = c->data + c->used;
    c->used += n;
    m->slab_used += n;
    return p;
}


/* Key equality; short keys (the common case: words, ids) without a call to memcmp. */
static inline bool key_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
    if (n <= 8) {
        if (n >= 4)
            return em_load_le32(a) == em_load_le32(b) &&
                   em_load_le32(a + n - 4) == em_load_le32(b + n - 4);
        for (size_t i = 0; i < n; i++)
            if (a[i] != b[i])
                return false;
        return true;
    }
    if (n <= 16)
        return em_load_le64(a) == em_load_le64(b) &&
               em_load_le64(a + n - 8) == em_load_le64(b + n - 8);
    return memcmp(a, b, n) == 0;
}

static inline em_slice slot_key(const em__agg_slot *s)
{
    return s->kind == SLOT_INLINE ? em_slice_make(s->key, s->klen)
                                  : em_slice_make(s->u.e->kv, s->u.e->klen);
}

static inline em_slice slot_val(const em__agg_slot *s)
{
    return s->kind == SLOT_INLINE ? em_slice_make(s->u.v8, 8)
                                  : em_slice_make(s->u.e->kv + s->u.e->klen + s->u.e->vpad,
                                                  s->u.e->vlen);
}

/* Moves slot s's record to a new entry holding val (an inline slot whose value stops being 8
 * bytes, or an entry whose value outgrew its room). */
static int to_entry(em__aggmap *m, em__agg_slot *s, em_slice val)
{
    em_slice key = slot_key(s);
    em__agg_entry *e = slab_alloc(m, sizeof *e + key.n + val.n);
    if (!e)
        return EM_ENOMEM;
    e->klen = (uint32_t)key.n;
    e->vlen = e->vcap = (uint32_t)val.n;
    e->vpad = 0;
    if (key.n)
        memcpy(e->kv, key.p, key.n);
    if (val.n)
        memcpy(e->kv + key.n, val.p, val.n);
    s->kind = SLOT_ENTRY;
    s->klen = 0;
    memset(s->key, 0, sizeof s->key);
    s->u.e = e;
    return 0;
}

/* Stores val as the value of slot s: in place when it fits, else in a (new) entry. */
static int set_value(em__aggmap *m, em__agg_slot *s, em_slice val)
{
    if (s->kind == SLOT_INLINE) {
        if (val.n == 8) {
            memcpy(s->u.v8, val.p, 8);
            return 0;
        }
        return to_entry(m, s, val);
    }
    em__agg_entry *e = s->u.e;
    if (val.n <= e->vcap) {
        if (val.n)
            memcpy(e->kv + e->klen + e->vpad, val.p, val.n);
        e->vlen = (uint32_t)val.n;
        return 0;
    }
    return to_entry(m, s, val);
}

static int insert(em__aggmap *m, em__agg_slot *s, uint32_t h32, uint32_t part, em_slice key,
                  em_slice val, em_err *err)
{
    if (key.n <= EM__AGG_INLINE_KEY && val.n == 8) {
        memset(s, 0, sizeof *s);
        s->kind = SLOT_INLINE;
        s->klen = (uint8_t)key.n;
        if (key.n)
            memcpy(s->key, key.p, key.n);
        memcpy(s->u.v8, val.p, 8);
    } else {
        em__agg_entry *e = slab_alloc(m, sizeof *e + key.n + val.n);
        if (!e)
            return em_err_set(err, EM_ENOMEM, "combine map: out of memory for a %zu-byte "
                              "record", key.n + val.n);
        e->klen = (uint32_t)key.n;
        e->vlen = e->vcap = (uint32_t)val.n;
        e->vpad = 0;
        if (key.n)
            memcpy(e->kv, key.p, key.n);
        if (val.n)
            memcpy(e->kv + key.n, val.p, val.n);
        memset(s, 0, sizeof *s);
        s->kind = SLOT_ENTRY;
        s->u.e = e;
    }
    s->h32 = h32;
    s->part = part;
    m->tab.n++;
    return 0;
}

/* In-place combiners (em_combiner.acc_size): always an entry, its value 16-byte aligned and
 * made in place, from the incoming combiner or by acc_create from the first record. */
static int insert_acc(em__aggmap *m, em__agg_slot *s, uint32_t h32, uint32_t part,
                      const em_rec *r, em_err *err)
{
    const em_combiner *c = m->comb;
    size_t size = c->acc_size;
    if (m->values_are_combiners && r->val.n != size)
        return em_err_set(err, EM_ECORRUPT, "combine map: a %zu-byte accumulator where %zu "
                          "bytes are expected", r->val.n, size);
    em__agg_entry *e = slab_alloc(m, sizeof *e + r->key.n + 15 + size);
    if (!e)
        return em_err_set(err, EM_ENOMEM, "combine map: out of memory for a %zu-byte "
                          "accumulator", size);
    e->klen = (uint32_t)r->key.n;
    e->vlen = e->vcap = (uint32_t)size;
    e->vpad = (uint32_t)(-(uintptr_t)(e->kv + r->key.n) & 15u);
    if (r->key.n)
        memcpy(e->kv, r->key.p, r->key.n);
    uint8_t *acc = e->kv + e->klen + e->vpad;
    int rc = 0;
    if (m->values_are_combiners) {
        memcpy(acc, r->val.p, size);
    } else {
        memset(acc, 0, size);
        rc = c->acc_create(c->self, acc, r, err);
    }
    /* A failed create leaves the carving unused (dropped at reset), the slot empty. */
    if (rc < 0)
        return rc;
    memset(s, 0, sizeof *s);
    s->kind = SLOT_ENTRY;
    s->u.e = e;
    s->h32 = h32;
    s->part = part;
    m->tab.n++;
    return 0;
}

__attribute__((noinline)) static int merge(em__aggmap *m, em__agg_slot *s, const em_rec *r,
                                            em_err *err)
{
    const em_combiner *c = m->comb;
    em_slice cur = slot_val(s);
    em_slice val = em_slice_make(r->val.p, r->val.n);
    int rc;

    if (c->acc_size && cur.n == c->acc_size) {
        void *acc = (void *)cur.p;   /* the entry's own 16-byte aligned room */
        if (m->values_are_combiners) {
            if (val.n != c->acc_size)
                return em_err_set(err, EM_ECORRUPT, "combine map: a %zu-byte accumulator "
                                  "where %zu bytes are expected", val.n, c->acc_size);
            return c->acc_merge_combiners(c->self, acc, val.p, err);
        }
        return c->acc_merge_value(c->self, acc, r, err);
    }

    em_merge8_fn k8 = m->values_are_combiners ? c->merge_combiners8 : c->merge_value8;
    if (k8 && cur.n == 8 && val.n == 8) {
        k8((uint8_t *)cur.p, val.p);
        return 0;
    }

    em_vbuf_clear(&m->scratch);
    if (m->values_are_combiners)
        rc = c->ops->merge_combiners(c->self, cur, val, &m->scratch, err);
    else
        rc = c->ops->merge_value(c->self, cur, val, &m->scratch, err);
    if (rc < 0)
        return rc;
    if (m->scratch.len > EM_BATCH_MAX_REC_LEN)
        return em_err_set(err, EM_EINVAL, "combine map: combined value of %zu bytes is too large",
                          m->scratch.len);
    if (set_value(m, s, em_slice_make(m->scratch.data, m->scratch.len)) < 0)
        return em_err_set(err, EM_ENOMEM, "combine map: out of memory for a %zu-byte value",
                          m->scratch.len);
    return 0;
}

int em__aggmap_add(em__aggmap *m, uint32_t part, em_slice key, em_slice val, em_err *err)
{
    em_rec r = {key, val};
    return em__aggmap_add_hashed(m, part, em_hash64(key.p, key.n, 0), &r, err);
}

/* The probe image of a key of n <= EM__AGG_INLINE_KEY bytes: what bytes 8..23 of its inline
 * slot hold, as two little-endian u64, assembled in registers from loads that stay inside
 * the key (an image built in memory byte by byte and read back whole would stall on store
 * forwarding on every lookup). */
__attribute__((always_inline)) static inline void probe_image(const uint8_t *p, size_t n,
                                                            uint64_t want[2])
{
    uint64_t lo = 0, hi = 0;   /* key bytes 0..7 and 8..13 */
    if (n >= 8) {
        lo = em_load_le64(p);
        if (n > 8)
            hi = em_load_le64(p + n - 8) >> (8 * (16 - n));
    } else {
        lo = em_load_le_n(p, n);   /* one load for most words (engine/base/loadn.h) */
    }
    want[0] = SLOT_INLINE | (uint64_t)n << 8 | lo << 16;
    want[1] = lo >> 48 | hi << 16;
}

/* A key not in the map: its record goes into the empty slot s. Out of line: the hot
 * function (a hit) then needs few registers saved. */
__attribute__((noinline)) static int add_new(em__aggmap *m, em__agg_slot *s, uint32_t h32,
                                             uint32_t part, const em_rec *r, em_err *err)
{
    const em_slice key = em_slice_make(r->key.p, r->key.n);
    em_slice val = em_slice_make(r->val.p, r->val.n);
    if (m->comb->acc_size)
        return insert_acc(m, s, h32, part, r, err);
    if (m->values_are_combiners || !m->comb->ops->create)
        return insert(m, s, h32, part, key, val, err);
    em_vbuf_clear(&m->scratch);
    int rc = m->comb->ops->create(m->comb->self, val, &m->scratch, err);
    if (rc < 0)
        return rc;
    return insert(m, s, h32, part, key, em_slice_make(m->scratch.data, m->scratch.len), err);
}

/* The lookup from slot j on, for any key: the hot loop below hands over to it for a key
 * longer than EM__AGG_INLINE_KEY bytes and at an entry slot whose hash bits match. */
__attribute__((noinline)) static int add_from(em__aggmap *m, uint32_t part, uint32_t h32,
                                              size_t j, const em_rec *r, em_err *err)
{
    const em_slice key = em_slice_make(r->key.p, r->key.n);
    uint64_t want[2] = {0, 0};
    bool inl = key.n <= EM__AGG_INLINE_KEY;
    size_t mask = m->tab.cap - 1;
    if (inl)
        probe_image(key.p, key.n, want);
    for (;; j = (j + 1) & mask) {
        em__agg_slot *s = &em__aggmap_slots(m)[j];
        if (s->kind == SLOT_EMPTY)
            return add_new(m, s, h32, part, r, err);
        if (s->h32 != h32 || s->part != part)
            continue;
        if (s->kind == SLOT_INLINE) {
            const uint8_t *img = (const uint8_t *)s + offsetof(em__agg_slot, kind);
            if (inl && em_load_le64(img) == want[0] && em_load_le64(img + 8) == want[1])
                return merge(m, s, r, err);
        } else if (s->u.e->klen == key.n && key_eq(s->u.e->kv, key.p, key.n)) {
            return merge(m, s, r, err);
        }
    }
}

/* An add that first grows the table (out of line: a call in the hot function would have
 * it save registers on every add). */
__attribute__((noinline)) static int grow_and_add(em__aggmap *m, uint32_t part, uint32_t h32,
                                                  const em_rec *r, em_err *err)
{
    if (em_hmap_grow(&m->tab) < 0)
        return em_err_set(err, EM_ENOMEM, "combine map: out of memory growing the table");
    return add_from(m, part, h32, h32 & (m->tab.cap - 1), r, err);
}

/* The hot path (a short key, a hit in an inline slot, an 8-byte kernel) makes no call but
 * the kernel's; everything else is a tail call, so few registers need saving. */
int em__aggmap_add_hashed(em__aggmap *m, uint32_t part, uint64_t key_hash, const em_rec *r,
                          em_err *err)
{
    /* Fields one at a time: the caller has just stored them 8 bytes at a time. */
    const em_slice key = em_slice_make(r->key.p, r->key.n);
    uint32_t h32 = em__agg_hash32(key_hash, part);
    uint64_t want[2];

    if (EM_UNLIKELY(em__aggmap_grow_bytes(m)))
        return grow_and_add(m, part, h32, r, err);
    size_t mask = m->tab.cap - 1, j = h32 & mask;
    if (EM_UNLIKELY(key.n > EM__AGG_INLINE_KEY))
        return add_from(m, part, h32, j, r, err);
    probe_image(key.p, key.n, want);
    for (;; j = (j + 1) & mask) {
        em__agg_slot *s = &em__aggmap_slots(m)[j];
        if (s->kind == SLOT_EMPTY)
            return add_new(m, s, h32, part, r, err);
        if (s->h32 != h32 || s->part != part)
            continue;
        if (EM_UNLIKELY(s->kind != SLOT_INLINE))
            return add_from(m, part, h32, j, r, err);
        const uint8_t *img = (const uint8_t *)s + offsetof(em__agg_slot, kind);
        if (em_load_le64(img) == want[0] && em_load_le64(img + 8) == want[1]) {
            /* An 8-byte value in the slot and an 8-byte kernel (an in-place combiner never
             * has an inline slot). */
            const em_combiner *c = m->comb;
            em_merge8_fn k8 = m->values_are_combiners ? c->merge_combiners8 : c->merge_value8;
            if (EM_UNLIKELY(!k8 || r->val.n != 8))
                return merge(m, s, r, err);
            k8(s->u.v8, r->val.p);
            return 0;
        }
    }
}

int em__aggmap_next(const em__aggmap *m, size_t *pos, uint32_t *part, em_rec *r)
{
    const em__agg_slot *s = em_hmap_iter(&m->tab, pos);
    if (!s)
        return 0;
    *part = s->part;
    r->key = slot_key(s);
    r->val = slot_val(s);
    return 1;
}

static int cmp_slot(const void *a, const void *b)
{
    const em__agg_slot *x = *(em__agg_slot *const *)a, *y = *(em__agg_slot *const *)b;
    int c = em_slice_cmp(slot_key(x), slot_key(y));
    if (c)
        return c;
    return x->part < y->part ? -1 : x->part > y->part;
}

int em__aggmap_sort(em__aggmap *m, em_err *err)
{
    em__agg_slot **order, *s;
    size_t k = 0;

    if (m->order)
        return 0;
    order = em_malloc((m->tab.n ? m->tab.n : 1) * sizeof *order);
    if (!order)
        return em_err_set(err, EM_ENOMEM, "combine map: out of memory sorting %zu records",
                          m->tab.n);
    for (size_t pos = 0; (s = em_hmap_iter(&m->tab, &pos));)
        order[k++] = s;
    if (k > 1)
        qsort(order, k, sizeof *order, cmp_slot);
    m->order = order;
    return 0;
}

void em__aggmap_at(const em__aggmap *m, size_t i, uint32_t *part, em_rec *r)
{
    const em__agg_slot *s = m->order[i];
    *part = s->part;
    r->key = slot_key(s);
    r->val = slot_val(s);
}
