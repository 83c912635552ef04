/* shuffle/aggmap.c - combining hash map: (partition, key) -> combiner value.
 *
 * DESIGN: the hot loop of a combine_by_key (wordcount's map side) is "look the key up, merge
 * one value", and with a vocabulary larger than the caches its cost is cache misses. So:
 *   - slots is an open-addressing table (linear probing, at most half full) of (hash, entry
 *     pointer) pairs: a probe compares the full hash before it touches an entry;
 *   - an entry is one slab carving: header, key, value room. A hit costs two misses (slot,
 *     entry), with no per-record allocation;
 *   - a merged value that fits the entry's room (vcap) is written in place; a larger one
 *     re-carves the entry (key copied along) and repoints its slot and ents[] cell; the old
 *     bytes are dropped until reset;
 *   - ents[] lists the entries in insertion order, for iteration and sorting.
 *   - a merge of two 8-byte values with a combiner that has an 8-byte kernel
 *     (em_combiner.merge_value8 / merge_combiners8, e.g. em.sum_i64) is done in place in the
 *     entry: no call through the scratch buffer, no copy;
 *   - the caller may pass the key's partitioning hash (em_shuffle_key_hash), so a map-side
 *     combine hashes each key once for both partitioning and the table.
 * The table hash is em_mix64 of the key hash with a seed and the partition: on the reduce
 * side every key of a partition has the same em_hash64(key, 0) mod nparts, and the full
 * avalanche of em_mix64 keeps those keys from crowding the table's low bits. */
#include <stdlib.h>
#include <string.h>

#include "shuffle/shuffle_int.h"

#define AGG_SEED 0x2545f4914f6cdd1dULL
#define SLAB_MIN_CHUNK 4096u
#define SLAB_MAX_CHUNK (1u << 20)

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
    em_vbuf_init(&m->scratch);
}

void em__aggmap_reset(em__aggmap *m)
{
    em__slab_chunk *c = m->chunks;
    while (c) {
        em__slab_chunk *next = c->next;
        em_free(c);
        c = next;
    }
    m->chunks = NULL;
    m->slab_used = 0;
    em_free(m->slots);
    m->slots = NULL;
    m->nslots = 0;
    em_free(m->ents);
    m->ents = NULL;
    m->nents = m->cap_ents = 0;
}

void em__aggmap_destroy(em__aggmap *m)
{
    em__aggmap_reset(m);
    em_vbuf_destroy(&m->scratch);
}

size_t em__aggmap_mem(const em__aggmap *m)
{
    return m->slab_used + m->nslots * sizeof(em__agg_slot) + m->cap_ents * sizeof(em__agg_entry *);
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

static uint64_t slot_hash(uint64_t key_hash, uint32_t part)
{
    return em_mix64(key_hash ^ AGG_SEED ^ ((uint64_t)part * 0x9e3779b97f4a7c15ULL));
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

static int grow_slots(em__aggmap *m)
{
    size_t n = m->nslots ? m->nslots * 2 : 64;
    em__agg_slot *s = em_calloc(n, sizeof *s);
    if (!s)
        return EM_ENOMEM;
    for (size_t i = 0; i < m->nents; i++) {
        uint64_t h = m->ents[i]->hash;
        size_t j = (size_t)h & (n - 1);
        while (s[j].e)
            j = (j + 1) & (n - 1);
        s[j].hash = h;
        s[j].e = m->ents[i];
    }
    em_free(m->slots);
    m->slots = s;
    m->nslots = n;
    return 0;
}

/* Stores val as the value of the entry in slot s, in place when it fits, else re-carved. */
static int set_value(em__aggmap *m, em__agg_slot *s, em_slice val)
{
    em__agg_entry *e = s->e;

    if (val.n <= e->vcap) {
        if (val.n)
            memcpy(e->kv + e->klen, val.p, val.n);
        e->vlen = (uint32_t)val.n;
        return 0;
    }
    em__agg_entry *ne = slab_alloc(m, sizeof *ne + (size_t)e->klen + val.n);
    if (!ne)
        return EM_ENOMEM;
    *ne = *e;
    memcpy(ne->kv, e->kv, e->klen);
    memcpy(ne->kv + e->klen, val.p, val.n);   /* val.n > vcap >= 0, so val.p is set */
    ne->vlen = ne->vcap = (uint32_t)val.n;
    s->e = ne;
    m->ents[ne->idx] = ne;
    return 0;
}

static int insert(em__aggmap *m, size_t slot, uint64_t h, uint32_t part, em_slice key,
                  em_slice val, em_err *err)
{
    if (m->nents == m->cap_ents) {
        size_t cap = m->cap_ents ? m->cap_ents * 2 : 32;
        em__agg_entry **ents = em_realloc(m->ents, cap * sizeof *ents);
        if (!ents)
            return em_err_set(err, EM_ENOMEM, "combine map: out of memory (%zu entries)", cap);
        m->ents = ents;
        m->cap_ents = cap;
    }
    em__agg_entry *e = slab_alloc(m, sizeof *e + key.n + val.n);
    if (!e)
        return em_err_set(err, EM_ENOMEM, "combine map: out of memory for a %zu-byte record",
                          key.n + val.n);
    e->hash = h;
    e->part = part;
    e->klen = (uint32_t)key.n;
    e->vlen = e->vcap = (uint32_t)val.n;
    e->idx = (uint32_t)m->nents;
    if (key.n)
        memcpy(e->kv, key.p, key.n);
    if (val.n)
        memcpy(e->kv + key.n, val.p, val.n);
    m->slots[slot].hash = h;
    m->slots[slot].e = e;
    m->ents[m->nents++] = e;
    return 0;
}

static int merge(em__aggmap *m, em__agg_slot *s, em_slice val, em_err *err)
{
    const em_combiner *c = m->comb;
    em_slice cur = em_slice_make(s->e->kv + s->e->klen, s->e->vlen);
    int rc;

    em_merge8_fn k8 = m->values_are_combiners ? c->merge_combiners8 : c->merge_value8;
    if (k8 && cur.n == 8 && val.n == 8) {
        k8(s->e->kv + s->e->klen, val.p);
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
    return em__aggmap_add_hashed(m, part, em_hash64(key.p, key.n, 0), key, val, err);
}

int em__aggmap_add_hashed(em__aggmap *m, uint32_t part, uint64_t key_hash, em_slice key,
                          em_slice val, em_err *err)
{
    uint64_t h = slot_hash(key_hash, part);
    size_t mask, j;

    if (EM_UNLIKELY((m->nents + 1) * 2 > m->nslots) && grow_slots(m) < 0)
        return em_err_set(err, EM_ENOMEM, "combine map: out of memory growing the table");
    mask = m->nslots - 1;
    for (j = (size_t)h & mask; m->slots[j].e; j = (j + 1) & mask) {
        const em__agg_entry *e = m->slots[j].e;
        if (m->slots[j].hash == h && e->part == part && e->klen == key.n &&
            key_eq(e->kv, key.p, key.n))
            return merge(m, &m->slots[j], val, err);
    }
    if (m->values_are_combiners || !m->comb->ops->create)
        return insert(m, j, h, part, key, val, err);
    em_vbuf_clear(&m->scratch);
    int rc = m->comb->ops->create(m->comb->self, val, &m->scratch, err);
    if (rc < 0)
        return rc;
    return insert(m, j, h, part, key, em_slice_make(m->scratch.data, m->scratch.len), err);
}

static int cmp_entry(const void *a, const void *b)
{
    const em__agg_entry *x = *(em__agg_entry *const *)a, *y = *(em__agg_entry *const *)b;
    int c = em_slice_cmp(em_slice_make(x->kv, x->klen), em_slice_make(y->kv, y->klen));
    if (c)
        return c;
    return x->part < y->part ? -1 : x->part > y->part;
}

void em__aggmap_sort(em__aggmap *m)
{
    if (m->nents > 1)
        qsort(m->ents, m->nents, sizeof *m->ents, cmp_entry);
    for (size_t i = 0; i < m->nents; i++)
        m->ents[i]->idx = (uint32_t)i;
    /* The table would still find entries, but drop it: after a sort only iteration and
     * reset are allowed, and the memory is better returned. */
    em_free(m->slots);
    m->slots = NULL;
    m->nslots = 0;
}
