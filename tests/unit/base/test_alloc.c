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
