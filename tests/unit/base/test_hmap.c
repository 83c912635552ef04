/* tests/unit/base/test_hmap.c - the open-addressing table (engine/base/hmap.h): growth keeps
 * every key, deletion (backward shift) against a reference array, a bad hash (everything
 * collides), clear, iteration, OOM leaving the table usable; and em_arr_grow (overflow and
 * OOM leave the array valid). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/hmap.h"

typedef struct slot {
    uint32_t h32;
    uint8_t used;
    uint8_t pad[3];
    uint32_t key;
    uint32_t val;
} slot;

static uint32_t g_hash_bits = 32;   /* keep this many bits of the hash (bad hash: few) */

static uint32_t hash_of(uint32_t k)
{
    uint32_t h = em_hmap_h32(em_mix64(k));
    return g_hash_bits >= 32 ? h : h & ((1u << g_hash_bits) - 1);
}

static bool eq(const void *s, const void *key)
{
    return ((const slot *)s)->key == *(const uint32_t *)key;
}

static slot *find(em_hmap *m, uint32_t k)
{
    return m->cap ? em_hmap_find(m, hash_of(k), eq, &k, NULL) : NULL;
}

/* Sets k -> v; 0 or EM_ENOMEM. */
static int put(em_hmap *m, uint32_t k, uint32_t v)
{
    slot *s = find(m, k);
    if (!s) {
        if (em_hmap_needs_grow(m) && em_hmap_grow(m) < 0)
            return EM_ENOMEM;
        void *hole = NULL;
        uint32_t h = hash_of(k);
        cr_assert_null(em_hmap_find(m, h, eq, &k, &hole));
        s = hole;
        s->h32 = h;
        s->used = 1;
        s->key = k;
        m->n++;
    }
    s->val = v;
    return 0;
}

static void init(em_hmap *m)
{
    em_hmap_init(m, sizeof(slot), offsetof(slot, used), 0);
}

Test(hmap, growth_keeps_every_key)
{
    em_hmap m;
    init(&m);
    for (uint32_t k = 0; k < 20000; k++)
        cr_assert_eq(put(&m, k * 7919u, k), 0);
    cr_assert_eq(m.n, 20000);
    cr_assert_eq(m.cap & (m.cap - 1), 0, "power of two");
    cr_assert_leq(m.n * 4, m.cap * 3, "at most 3/4 full");
    for (uint32_t k = 0; k < 20000; k++) {
        slot *s = find(&m, k * 7919u);
        cr_assert_not_null(s);
        cr_assert_eq(s->val, k);
    }
    cr_assert_null(find(&m, 3));
    size_t pos = 0, seen = 0;
    while (em_hmap_iter(&m, &pos))
        seen++;
    cr_assert_eq(seen, 20000);
    em_hmap_clear(&m);
    cr_assert_eq(m.n, 0);
    cr_assert_null(find(&m, 7919u));
    em_hmap_destroy(&m);
}

/* Random puts and removes checked against a plain array, with hash bits hb. */
static void churn(uint32_t hb)
{
    enum { K = 512 };
    static int32_t ref[K];
    em_hmap m;
    em_rng r;
    g_hash_bits = hb;
    init(&m);
    em_rng_seed(&r, 42 + hb);
    for (int i = 0; i < K; i++)
        ref[i] = -1;
    for (int step = 0; step < 20000; step++) {
        uint32_t k = (uint32_t)em_rng_below(&r, K);
        if (em_rng_below(&r, 3) == 0) {
            slot *s = find(&m, k);
            cr_assert_eq(s != NULL, ref[k] >= 0);
            if (s)
                em_hmap_remove(&m, s);
            ref[k] = -1;
        } else {
            cr_assert_eq(put(&m, k, (uint32_t)step), 0);
            ref[k] = step;
        }
        if (step % 997 == 0)
            for (uint32_t j = 0; j < K; j++) {
                slot *s = find(&m, j);
                cr_assert_eq(s != NULL, ref[j] >= 0, "key %u step %d", j, step);
                if (s)
                    cr_assert_eq((int32_t)s->val, ref[j]);
            }
    }
    size_t live = 0;
    for (int i = 0; i < K; i++)
        live += ref[i] >= 0;
    cr_assert_eq(m.n, live);
    em_hmap_destroy(&m);
    g_hash_bits = 32;
}

Test(hmap, deletion_matches_a_reference) { churn(32); }

Test(hmap, bad_hash_collides_everything)
{
    churn(0);   /* every key hashes to 0: one long run, wrapping around the table */
    churn(2);
}

Test(hmap, oom_leaves_the_table_usable)
{
    em_hmap m;
    init(&m);
    em_test_fail_alloc_after(0);
    cr_assert_eq(put(&m, 1, 1), EM_ENOMEM);
    em_test_alloc_reset();
    cr_assert_eq(m.cap, 0);
    uint32_t k = 0;
    for (; !em_hmap_needs_grow(&m) || m.cap == 0; k++)
        cr_assert_eq(put(&m, k, k), 0);
    size_t cap = m.cap;
    em_test_fail_alloc_after(0);
    cr_assert_eq(put(&m, k, k), EM_ENOMEM);
    em_test_alloc_reset();
    cr_assert_eq(m.cap, cap);
    for (uint32_t j = 0; j < k; j++)
        cr_assert_not_null(find(&m, j));
    cr_assert_eq(put(&m, k, k), 0);
    cr_assert_not_null(find(&m, k));
    em_hmap_destroy(&m);
}

Test(arr_grow, doubles_and_keeps_contents)
{
    size_t cap = 0;
    uint64_t *a = NULL;
    for (uint64_t i = 0; i < 1000; i++) {
        uint64_t *g = em_arr_grow(a, &cap, i + 1, sizeof *a);
        cr_assert_not_null(g);
        a = g;
        a[i] = i;
        cr_assert_geq(cap, i + 1);
    }
    cr_assert_eq(cap, 1024);
    for (uint64_t i = 0; i < 1000; i++)
        cr_assert_eq(a[i], i);
    cr_assert_eq(em_arr_grow(a, &cap, 10, sizeof *a), a, "no shrink, no copy");
    em_free(a);
}

Test(arr_grow, overflow_and_oom_leave_the_array_valid)
{
    size_t cap = 0;
    uint32_t *a = em_arr_grow(NULL, &cap, 3, sizeof *a);
    cr_assert_not_null(a);
    cr_assert_eq(cap, 8);
    a[0] = 7;
    cr_assert_null(em_arr_grow(a, &cap, SIZE_MAX / 2, sizeof *a), "size overflow");
    cr_assert_eq(cap, 8);
    em_test_fail_alloc_after(0);
    cr_assert_null(em_arr_grow(a, &cap, 100, sizeof *a));
    em_test_alloc_reset();
    cr_assert_eq(cap, 8);
    cr_assert_eq(a[0], 7);
    a = em_arr_grow(a, &cap, 100, sizeof *a);
    cr_assert_not_null(a);
    cr_assert_eq(cap, 128);
    cr_assert_eq(a[0], 7);
    em_free(a);
}
