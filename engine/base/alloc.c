/* engine/base/alloc.c - the allocator every module goes through, with a test hook that fails
 * the Nth allocation (STYLE.md section 10: OOM loops) and aborting x-variants for small
 * control structures.
 * THREADS: any thread. The hook is set before threads start, but the countdown is atomic so
 * that a test running a thread pool still sees exactly one "first failure". */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/base.h"

/* Test-only hook state, written by em_test_fail_alloc_after()/em_test_alloc_reset() before
 * threads start; g_alloc_left is decremented by every hooked allocation while armed. */
static atomic_bool g_alloc_armed;
static atomic_long g_alloc_left;

void em_test_fail_alloc_after(long n)
{
    if (n < 0) {
        atomic_store(&g_alloc_armed, false);
        return;
    }
    atomic_store(&g_alloc_left, n);
    atomic_store(&g_alloc_armed, true);
}

void em_test_alloc_reset(void)
{
    atomic_store(&g_alloc_armed, false);
    atomic_store(&g_alloc_left, 0);
}

/* True when this allocation must fail: after n successes every later one fails. */
static bool alloc_should_fail(void)
{
    if (EM_LIKELY(!atomic_load_explicit(&g_alloc_armed, memory_order_relaxed)))
        return false;
    long prev = atomic_fetch_sub(&g_alloc_left, 1);
    if (prev > 0)
        return false;
    atomic_store(&g_alloc_left, 0); /* keep it from wandering towards LONG_MIN */
    return true;
}

void *em_malloc(size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *em_calloc(size_t count, size_t size)
{
    if (alloc_should_fail())
        return NULL;
    if (count == 0 || size == 0)
        count = size = 1;
    return calloc(count, size);
}

void *em_realloc(void *p, size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void *em_malloc_aligned(size_t align, size_t n)
{
    void *p = NULL;
    if (alloc_should_fail())
        return NULL;
    return posix_memalign(&p, align, n ? n : 1) == 0 ? p : NULL;
}

void em_free(void *p)
{
    free(p);
}

char *em_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = em_malloc(len + 1);
    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *em_strdup(const char *s)
{
    return em_strndup(s, strlen(s));
}

void *em_xmalloc(size_t n)
{
    void *p = em_malloc(n);
    if (!p)
        em_panic("out of memory allocating %zu bytes", n);
    return p;
}

void *em_xcalloc(size_t count, size_t size)
{
    void *p = em_calloc(count, size);
    if (!p)
        em_panic("out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *em_xrealloc(void *p, size_t n)
{
    void *q = em_realloc(p, n);
    if (!q)
        em_panic("out of memory reallocating to %zu bytes", n);
    return q;
}

char *em_xstrdup(const char *s)
{
    char *d = em_strdup(s);
    if (!d)
        em_panic("out of memory duplicating a string");
    return d;
}

char *em_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0)
        em_panic("em_xasprintf: bad format \"%s\"", fmt);
    char *s = em_xmalloc((size_t)k + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)k + 1, fmt, ap);
    va_end(ap);
    return s;
}
