/* engine/base/hmap.c - the out-of-line half of the open-addressing table (hmap.h): making,
 * growing, clearing, iterating, and backward-shift deletion. Probing is inline in hmap.h. */
#include <string.h>
#include <sys/mman.h>

#include "engine/base/hmap.h"

/* Tables of HUGE_MIN bytes or more are aligned for transparent huge pages. */
#define HUGE_MIN ((size_t)1 << 21)
#define HUGE_ALIGN ((size_t)1 << 21)

/* Copies one slot; the common sizes as fixed-size moves (no memcpy call per slot when a
 * table of millions grows). */
static inline void copy_slot(uint8_t *d, const uint8_t *s, size_t sz)
{
    switch (sz) {
    case 8: memcpy(d, s, 8); break;
    case 12: memcpy(d, s, 12); break;
    case 16: memcpy(d, s, 16); break;
    case 24: memcpy(d, s, 24); break;
    case 32: memcpy(d, s, 32); break;
    default: memcpy(d, s, sz); break;
    }
}

void em_hmap_init(em_hmap *m, size_t slot_size, size_t used_off, size_t min_cap)
{
    EM_ASSERT(slot_size >= 5 && slot_size % 4 == 0 && used_off >= 4 && used_off < slot_size);
    memset(m, 0, sizeof *m);
    m->slot_size = (uint32_t)slot_size;
    m->used_off = (uint32_t)used_off;
    size_t c = 16;
    while (c < min_cap)
        c *= 2;
    m->min_cap = c;
}

void em_hmap_destroy(em_hmap *m)
{
    em_free(m->raw);
    m->raw = NULL;
    m->slots = NULL;
    m->cap = m->n = 0;
}

void em_hmap_clear(em_hmap *m)
{
    if (m->slots)
        memset(m->slots, 0, m->cap * m->slot_size);
    m->n = 0;
}

/* Moves every used slot of m into the zeroed table s of mask + 1 slots of sz bytes. */
__attribute__((always_inline)) static inline void move_all(const em_hmap *m, uint8_t *s,
                                                           size_t mask, size_t sz)
{
    size_t uo = m->used_off;
    for (size_t i = 0; i < m->cap; i++) {
        const uint8_t *o = m->slots + i * sz;
        if (!o[uo])
            continue;
        size_t j = em_hmap_slot_h32(o) & mask;
        while (s[j * sz + uo])
            j = (j + 1) & mask;
        copy_slot(s + j * sz, o, sz);
    }
}

int em_hmap_grow(em_hmap *m)
{
    size_t n = m->cap ? m->cap * 2 : m->min_cap, bytes;
    if (n > ((size_t)1 << 32) || !em_size_mul(n, m->slot_size, &bytes))
        return EM_ENOMEM;
    size_t align = bytes >= HUGE_MIN ? HUGE_ALIGN : 64;
    void *raw = em_calloc(1, bytes + align);
    if (!raw)
        return EM_ENOMEM;
    uint8_t *s = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
#ifdef MADV_HUGEPAGE
    /* Best effort: fails harmlessly without transparent huge pages. */
    if (align == HUGE_ALIGN)
        (void)madvise(s, bytes, MADV_HUGEPAGE);
#endif
    size_t mask = n - 1;
    switch (m->slot_size) {   /* constant slot sizes: no multiply or memcpy call per slot */
    case 12: move_all(m, s, mask, 12); break;
    case 16: move_all(m, s, mask, 16); break;
    case 32: move_all(m, s, mask, 32); break;
    default: move_all(m, s, mask, m->slot_size); break;
    }
    em_free(m->raw);
    m->raw = raw;
    m->slots = s;
    m->cap = n;
    return 0;
}

/* Backward-shift deletion (Knuth 6.4, algorithm R): after emptying slot i, each later slot
 * j of the run whose home h is not cyclically in (i, j] moves back into the hole. */
void em_hmap_remove(em_hmap *m, void *slot)
{
    size_t sz = m->slot_size, mask = m->cap - 1;
    size_t i = (size_t)((uint8_t *)slot - m->slots) / sz;
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        uint8_t *sj = m->slots + j * sz;
        if (!sj[m->used_off])
            break;
        size_t h = em_hmap_slot_h32(sj) & mask;
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (stays)
            continue;
        copy_slot(m->slots + i * sz, sj, sz);
        i = j;
    }
    memset(m->slots + i * sz, 0, sz);
    m->n--;
}
