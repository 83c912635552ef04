/* tests/unit/base/test_alloc.c - the allocation failure hook and string helpers. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "engine/base/base.h"

Test(alloc, fail_after_n)
{
    em_test_fail_alloc_after(2);
    void *a = em_malloc(10);
    void *b = em_calloc(2, 8);
    void *c = em_malloc(10);
    void *d = em_realloc(NULL, 4);
    em_test_alloc_reset();
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_null(c);
    cr_assert_null(d, "failures persist until reset");
    void *e = em_malloc(10);
    cr_assert_not_null(e);
    em_free(a);
    em_free(b);
    em_free(e);
}

Test(alloc, fail_first_and_disable)
{
    em_test_fail_alloc_after(0);
    cr_assert_null(em_malloc(1));
    cr_assert_null(em_strdup("x"));
    em_test_fail_alloc_after(-1);
    char *s = em_strdup("x");
    cr_assert_str_eq(s, "x");
    em_free(s);
}

Test(alloc, strndup_and_asprintf)
{
    char *s = em_strndup("hello world", 5);
    cr_assert_str_eq(s, "hello");
    em_free(s);
    s = em_strndup("hi", 10);
    cr_assert_str_eq(s, "hi");
    em_free(s);
    s = em_xasprintf("%s-%d", "part", 7);
    cr_assert_str_eq(s, "part-7");
    em_free(s);
}

Test(alloc, x_variant_panics_on_oom, .signal = SIGABRT)
{
    em_test_fail_alloc_after(0);
    (void)em_xmalloc(16);
}

Test(alloc, size_checks)
{
    size_t out = 7;
    cr_assert(!em_size_mul(SIZE_MAX / 2 + 1, 2, &out));
    cr_assert_eq(out, 7);
    cr_assert(em_size_mul(3, 5, &out) && out == 15);
    cr_assert(!em_size_add(SIZE_MAX, 1, &out));
    cr_assert(em_size_add(3, 5, &out) && out == 8);
}

/* ---------------------------------------------------------------- em_malloc_big */

static void fill_and_check(uint8_t *p, size_t n)
{
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % 64, 0, "64-byte aligned");
    memset(p, 0xab, n);
    cr_assert_eq(p[0], 0xab);
    cr_assert_eq(p[n - 1], 0xab);
}

Test(alloc_big, sizes_around_threshold)
{
    size_t sizes[] = {1, 4096, EM_BIG_MIN - 1, EM_BIG_MIN, EM_BIG_MIN + 1,
                      ((size_t)2 << 20) * 3 + 4, (size_t)9 << 20};
    long live0 = em_test_big_live();
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *p = em_malloc_big(sizes[i]);
        fill_and_check(p, sizes[i]);
        long mapped = em_test_big_live() - live0;
        if (sizes[i] < EM_BIG_MIN)
            cr_assert_eq(mapped, 0, "%zu bytes come from the heap", sizes[i]);
        else
            cr_assert_eq(mapped, em_big_hugepages() ? 1 : 0, "%zu bytes", sizes[i]);
        em_free_big(p);
        cr_assert_eq(em_test_big_live(), live0, "freed");
    }
    em_free_big(NULL);
}

Test(alloc_big, zero_bytes)
{
    uint8_t *p = em_malloc_big(0);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % 64, 0);
    em_free_big(p);
}

Test(alloc_big, mapped_start_is_huge_aligned)
{
    if (!em_big_hugepages())
        cr_skip_test("no transparent huge pages here");
    uint8_t *p = em_malloc_big((size_t)8 << 20);
    fill_and_check(p, (size_t)8 << 20);
    /* the header sits at the 2 MiB boundary, the bytes 64 bytes after it */
    cr_assert_eq(((uintptr_t)p - 64) % ((size_t)2 << 20), 0);
    em_free_big(p);
}

Test(alloc_big, forced_fallback_uses_heap)
{
    long live0 = em_test_big_live();
    em_test_big_force_fallback(true);
    cr_assert(!em_big_hugepages());
    uint8_t *p = em_malloc_big((size_t)6 << 20);
    em_test_big_force_fallback(false);
    fill_and_check(p, (size_t)6 << 20);
    cr_assert_eq(em_test_big_live(), live0, "heap, not a mapping");
    em_free_big(p);   /* freed through the heap path even with the hook off */
}

Test(alloc_big, failure_hook_and_overflow)
{
    em_test_fail_alloc_after(0);
    void *a = em_malloc_big(EM_BIG_MIN);
    void *b = em_malloc_big(10);
    em_test_alloc_reset();
    cr_assert_null(a);
    cr_assert_null(b);
    cr_assert_null(em_malloc_big(SIZE_MAX - 10), "size overflow fails cleanly");
    em_test_big_force_fallback(true);
    em_test_fail_alloc_after(0);
    void *c = em_malloc_big(EM_BIG_MIN * 2);
    em_test_alloc_reset();
    em_test_big_force_fallback(false);
    cr_assert_null(c);
}

/* A freed mapping is handed out again to a request it fits (touched pages, no faults), not
 * to one it would waste more than half of; em_big_trim unmaps what is kept. */
Test(alloc_big, freed_mappings_are_reused)
{
    if (!em_big_hugepages())
        cr_skip_test("no transparent huge pages here");
    em_big_trim();
    size_t n = (size_t)12 << 20;
    uint8_t *p = em_malloc_big(n);
    fill_and_check(p, n);
    em_free_big(p);
    cr_assert_geq(em_big_cached_bytes(), n, "kept for reuse");
    uint8_t *q = em_malloc_big(n - 100);
    cr_assert_eq(q, p, "the same mapping again");
    cr_assert_eq(q[0], 0xab, "its pages are the touched ones");
    cr_assert_eq(em_big_cached_bytes(), 0);
    em_free_big(q);
    uint8_t *small = em_malloc_big(EM_BIG_MIN);   /* 12 MiB would waste over half */
    cr_assert_neq(small, p);
    cr_assert_eq(em_big_cached_bytes(), 0, "a miss releases what is kept");
    em_free_big(small);
    cr_assert_geq(em_big_cached_bytes(), EM_BIG_MIN);
    em_big_trim();
    cr_assert_eq(em_big_cached_bytes(), 0);
}

/* A request no kept mapping fits unmaps about its own size of them, not all: the rest
 * still serves the requests they fit (the 4 MiB batches of dropped ratings becoming an ALS
 * build's gather chunks after its record took a new mapping). */
Test(alloc_big, a_miss_sheds_only_its_size)
{
    if (!em_big_hugepages())
        cr_skip_test("no transparent huge pages here");
    em_big_trim();
    enum { N = 40 };
    uint8_t *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = em_malloc_big(EM_BIG_MIN);
        fill_and_check(b[i], EM_BIG_MIN);
    }
    for (int i = 0; i < N; i++)
        em_free_big(b[i]);
    size_t kept = em_big_cached_bytes();
    cr_assert_geq(kept, (size_t)N * EM_BIG_MIN, "all %d kept", N);
    size_t big = (size_t)20 << 20;
    uint8_t *p = em_malloc_big(big);   /* fits none of them */
    cr_assert_not_null(p);
    size_t shed = kept - em_big_cached_bytes();
    cr_assert_geq(shed, big, "at least its size unmapped first");
    cr_assert_lt(shed, big + EM_BIG_MIN + ((size_t)64 << 10), "not more: %zu bytes", shed);
    int reused = 0;
    for (int i = 0; em_big_cached_bytes() > 0; i++) {
        cr_assert_lt(i, N);
        b[i] = em_malloc_big(EM_BIG_MIN);
        reused += b[i][0] == 0xab && b[i][EM_BIG_MIN - 1] == 0xab;
        if (i + 1 < N)
            b[i + 1] = NULL;
    }
    cr_assert_eq(reused, N - 5, "the 35 mappings left were handed out again");
    for (int i = 0; i < N && b[i]; i++)
        em_free_big(b[i]);
    em_free_big(p);
    em_big_trim();
}

/* The cache keeps at most 1 GiB: a bigger buffer is unmapped when freed. */
Test(alloc_big, cache_is_bounded)
{
    if (!em_big_hugepages())
        cr_skip_test("no transparent huge pages here");
    em_big_trim();
    uint8_t *p = em_malloc_big((size_t)1100 << 20);   /* never touched: costs no memory */
    cr_assert_not_null(p);
    em_free_big(p);
    cr_assert_eq(em_big_cached_bytes(), 0);
}
