/* engine/base/hmap.h - the one open-addressing hash table of the code base: power-of-two
 * capacity, linear probing, at most 3/4 full, slots of a type the user chooses.
 *
 * DESIGN: the table owns an array of fixed-size slots and knows two things about each: the
 * 32 stored hash bits in its first 4 bytes (uint32_t, the home slot is h32 & mask; growing
 * moves slots by these bits and never rehashes a key or touches what a slot points to), and
 * one byte at used_off that is 0 exactly in empty slots. Everything else in a slot (inline
 * key and value, a pointer to an entry, an index) is the user's. Lookups are written by
 * the user, inline, over em_hmap_home / em_hmap_next (or em_hmap_find with an equality
 * callback the compiler inlines), so each table keeps its own fast key compare: the combine
 * map (shuffle/aggmap.c) compares a 16-byte probe image, the function registry a string.
 * Deletion is backward-shift (no tombstones), so probe chains stay short.
 * Tables of 2 MiB or more are 2 MiB aligned and advised MADV_HUGEPAGE (a lookup is a
 * random access; with 4 KiB pages a large table misses the TLB too), smaller ones 64-byte
 * aligned (a slot of 32 bytes never straddles a cache line).
 *
 * THREADS: one thread per table, or the user's lock. OWNERSHIP: the table owns its slot
 * array only; a slot pointer is valid until the next em_hmap_grow, em_hmap_remove, clear or
 * destroy. */
#ifndef EMBER_BASE_HMAP_H
#define EMBER_BASE_HMAP_H

#include "engine/base/base.h"

typedef struct em_hmap {
    uint8_t *slots;       /* cap slots of slot_size bytes (aligned start of raw) */
    void *raw;            /* the allocation */
    size_t cap;           /* 0 (nothing allocated yet) or a power of two */
    size_t n;             /* used slots, at most 3/4 of cap */
    uint32_t slot_size;   /* bytes per slot, >= 5, a multiple of 4 */
    uint32_t used_off;    /* offset of the byte that is 0 in empty slots (>= 4) */
    size_t min_cap;       /* first capacity (a power of two) */
} em_hmap;

/* Prepares an empty table (nothing allocated until the first grow). min_cap: first
 * capacity, rounded up to a power of two (0 = 16). */
void em_hmap_init(em_hmap *m, size_t slot_size, size_t used_off, size_t min_cap);
void em_hmap_destroy(em_hmap *m);   /* frees the slots; init again to reuse */
/* Empties the table but keeps its slots (no regrowing from scratch after a drain). */
void em_hmap_clear(em_hmap *m);
/* Doubles the table (or makes the first), moving every used slot by its stored hash.
 * EM_ENOMEM (table unchanged) on OOM or past 2^32 slots (h32 has 32 bits of home slot). */
int em_hmap_grow(em_hmap *m);
/* Removes used slot s, shifting later slots of its probe chain back (their addresses
 * change). n decreases. */
void em_hmap_remove(em_hmap *m, void *s);

/* True when one more used slot would make the table more than 3/4 full (or it has none):
 * call em_hmap_grow before probing for an insert. */
static inline bool em_hmap_needs_grow(const em_hmap *m)
{
    return (m->n + 1) * 4 > m->cap * 3;
}
/* Bytes em_hmap_grow would allocate now. */
static inline size_t em_hmap_grow_bytes(const em_hmap *m)
{
    return (m->cap ? m->cap * 2 : m->min_cap) * m->slot_size;
}
static inline void *em_hmap_at(const em_hmap *m, size_t i)
{
    return m->slots + i * m->slot_size;
}
static inline size_t em_hmap_home(const em_hmap *m, uint32_t h32)
{
    return h32 & (m->cap - 1);
}
static inline size_t em_hmap_next(const em_hmap *m, size_t i)
{
    return (i + 1) & (m->cap - 1);
}
static inline bool em_hmap_used(const em_hmap *m, const void *s)
{
    return ((const uint8_t *)s)[m->used_off] != 0;
}
static inline uint32_t em_hmap_slot_h32(const void *s)
{
    uint32_t h;
    __builtin_memcpy(&h, s, 4);
    return h;
}
/* 32 table-hash bits of a 64-bit key hash (em_hash64): its top half, which depends on all
 * of its bits. */
static inline uint32_t em_hmap_h32(uint64_t h64)
{
    return (uint32_t)(h64 >> 32) ^ (uint32_t)h64;
}

/* The used slot with hash h32 for which eq(slot, key) holds, else NULL with *hole (when not
 * NULL) set to the empty slot where such a key goes. The table must have slots (cap > 0).
 * Inline: a static eq is inlined into the probe loop. */
static inline void *em_hmap_find(const em_hmap *m, uint32_t h32,
                                 bool (*eq)(const void *slot, const void *key),
                                 const void *key, void **hole)
{
    for (size_t i = em_hmap_home(m, h32);; i = em_hmap_next(m, i)) {
        void *s = em_hmap_at(m, i);
        if (!em_hmap_used(m, s)) {
            if (hole)
                *hole = s;
            return NULL;
        }
        if (em_hmap_slot_h32(s) == h32 && eq(s, key))
            return s;
    }
}

/* Iterates the used slots in table order: start with *pos = 0; NULL at the end. */
static inline void *em_hmap_iter(const em_hmap *m, size_t *pos)
{
    for (size_t i = *pos; i < m->cap; i++) {
        uint8_t *s = m->slots + i * m->slot_size;
        if (s[m->used_off]) {
            *pos = i + 1;
            return s;
        }
    }
    *pos = m->cap;
    return NULL;
}

#endif /* EMBER_BASE_HMAP_H */
