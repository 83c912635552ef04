/* engine/base/alloc.c - the allocator every module goes through, with a test hook that fails
 * the Nth allocation (STYLE.md section 10: OOM loops), aborting x-variants for small
 * control structures, and em_malloc_big for buffers of megabytes (huge pages).
 * THREADS: any thread. The hook is set before threads start, but the countdown is atomic so
 * that a test running a thread pool still sees exactly one "first failure". */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef __GLIBC__ /* defined by the headers above */
#include <malloc.h>
#endif

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

/* ---------------------------------------------------------------- big buffers
 * Buffers of EM_BIG_MIN bytes or more (broadcast values, assembled task results) come from
 * their own anonymous mapping whose start is 2 MiB aligned and which is madvise'd
 * MADV_HUGEPAGE, so that where transparent huge pages are on ("always" or "madvise" in
 * /sys/kernel/mm/transparent_hugepage/enabled) first touching it takes one page fault per
 * 2 MiB instead of one per 4 KiB: on the VM we measured on a 4 KiB fault costs ~11 us, so
 * copying 256 MiB into fresh small pages took ~750 ms against 35-110 ms with huge pages
 * (docs/cluster.md, "Memory reuse"). The mapping is as long as the buffer rounded up to
 * 4 KiB (only its whole 2 MiB stretches become huge pages, the tail stays small pages).
 *
 * Layout: a 64-byte header at the start of the region, the caller's bytes after it, so
 * they are 64-byte aligned (EM_BATCH_ALIGN) and em_free_big needs no size. Smaller
 * buffers, kernels without THP, a failed mmap and em_test_big_force_fallback() take
 * em_malloc_aligned with the same header: em_malloc_big fails only where malloc would. */
#define BIG_HDR 64u
#define BIG_MAGIC_MAP 0x454d424947504d41ull   /* "EMBIGPMA" */
#define BIG_MAGIC_HEAP 0x454d424947484541ull  /* "EMBIGHEA" */
#define HUGE_2M ((size_t)2 << 20)
#define PAGE_4K ((size_t)4096)

typedef struct big_hdr {
    uint64_t magic;      /* BIG_MAGIC_MAP or BIG_MAGIC_HEAP */
    size_t map_len;      /* bytes of the mapping (MAP only) */
    size_t n;            /* the caller's size */
} big_hdr;

/* Written once under g_thp_once; the test hook before threads start. */
static pthread_once_t g_thp_once = PTHREAD_ONCE_INIT;
static bool g_thp_on;
static atomic_bool g_big_fallback;
static atomic_long g_big_live;   /* live mapped big buffers, for tests */

/* Transparent huge pages usable through madvise: the file says "[always]" or "[madvise]". */
static void thp_probe(void)
{
    char line[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f)
        return;
    if (fgets(line, sizeof line, f))
        g_thp_on = strstr(line, "[always]") || strstr(line, "[madvise]");
    fclose(f);
}

void em_test_big_force_fallback(bool on)
{
    atomic_store(&g_big_fallback, on);
}

long em_test_big_live(void)
{
    return atomic_load(&g_big_live);
}

bool em_big_hugepages(void)
{
    pthread_once(&g_thp_once, thp_probe);
    return g_thp_on && !atomic_load(&g_big_fallback);
}

/* A 2 MiB aligned mapping of len bytes (a multiple of 4 KiB), advised huge; NULL if mmap
 * failed. Over-maps by 2 MiB and unmaps the unaligned head and the tail. */
static void *map_aligned(size_t len)
{
    size_t over = len + HUGE_2M;
    uint8_t *m = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)m + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1);
    uint8_t *p = (uint8_t *)a;
    if (p > m)
        munmap(m, (size_t)(p - m));
    if (m + over > p + len)
        munmap(p + len, (size_t)(m + over - (p + len)));
    (void)madvise(p, len, MADV_HUGEPAGE);   /* advice only: small pages if refused */
    return p;
}

/* ---- reuse: freed mappings are kept (at most BIG_CACHE_SLOTS, BIG_CACHE_MAX bytes) and
 * handed out again to a request they fit without wasting more than half of them, because
 * on the VM we measured on even huge pages cost ~0.6 ms per MiB to clear the first time
 * (the hypervisor backs fresh guest memory lazily) while touched pages cost nothing.
 * A request the cache cannot serve unmaps at least its own size of it before mapping
 * anew, so that kept memory never adds to a process's peak beyond the buffers it had live
 * before. */
/* 256 slots, 1 GiB: the 4 MiB batches of a cached FIXED dataset of GBs, once it is
 * unpersisted, are all kept for the next buffers of that size (the next dataset's
 * batches), or make room for a larger one (ALS's block records, after it dropped its
 * ratings). */
#define BIG_CACHE_SLOTS 256
#define BIG_CACHE_MAX ((size_t)1 << 30)

static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static big_hdr *g_cache[BIG_CACHE_SLOTS];   /* g_cache_lock */
static size_t g_cache_bytes;                /* g_cache_lock */

/* The best-fitting cached mapping of at least len bytes and at most 2 * len, or NULL. */
static big_hdr *cache_take(size_t len)
{
    pthread_mutex_lock(&g_cache_lock);
    int best = -1;
    for (int i = 0; i < BIG_CACHE_SLOTS; i++) {
        big_hdr *h = g_cache[i];
        if (h && h->map_len >= len && h->map_len / 2 <= len &&
            (best < 0 || h->map_len < g_cache[best]->map_len))
            best = i;
    }
    big_hdr *h = best < 0 ? NULL : g_cache[best];
    if (h) {
        g_cache[best] = NULL;
        g_cache_bytes -= h->map_len;
    }
    pthread_mutex_unlock(&g_cache_lock);
    return h;
}

/* Keeps h for reuse when it fits the cache; false when the caller must unmap it. */
static bool cache_put(big_hdr *h)
{
    bool kept = false;
    pthread_mutex_lock(&g_cache_lock);
    for (int i = 0; i < BIG_CACHE_SLOTS && !kept; i++)
        if (!g_cache[i] && g_cache_bytes + h->map_len <= BIG_CACHE_MAX) {
            g_cache[i] = h;
            g_cache_bytes += h->map_len;
            kept = true;
        }
    pthread_mutex_unlock(&g_cache_lock);
    return kept;
}

/* Unmaps kept mappings until at least len bytes are gone (or none is left), so that a
 * request the cache cannot serve does not add to what the process had mapped before. */
static void cache_shed(size_t len)
{
    size_t gone = 0;
    pthread_mutex_lock(&g_cache_lock);
    for (int i = 0; i < BIG_CACHE_SLOTS && gone < len; i++)
        if (g_cache[i]) {
            gone += g_cache[i]->map_len;
            g_cache_bytes -= g_cache[i]->map_len;
            munmap(g_cache[i], g_cache[i]->map_len);
            g_cache[i] = NULL;
        }
    pthread_mutex_unlock(&g_cache_lock);
}

void em_big_trim(void)
{
    pthread_mutex_lock(&g_cache_lock);
    for (int i = 0; i < BIG_CACHE_SLOTS; i++)
        if (g_cache[i]) {
            munmap(g_cache[i], g_cache[i]->map_len);
            g_cache[i] = NULL;
        }
    g_cache_bytes = 0;
    pthread_mutex_unlock(&g_cache_lock);
}

size_t em_big_cached_bytes(void)
{
    pthread_mutex_lock(&g_cache_lock);
    size_t n = g_cache_bytes;
    pthread_mutex_unlock(&g_cache_lock);
    return n;
}

void *em_malloc_big(size_t n)
{
    size_t total;
    if (!em_size_add(n, BIG_HDR + PAGE_4K - 1, &total))
        return NULL;
    if (n >= EM_BIG_MIN && em_big_hugepages()) {
        if (alloc_should_fail())
            return NULL;
        size_t len = total & ~(PAGE_4K - 1);
        big_hdr *h = cache_take(len);
        size_t map_len = h ? h->map_len : len;   /* a reused mapping keeps its length */
        if (!h) {
            cache_shed(len);   /* what is kept fits no request of this size: as much of
                                  it as the new mapping goes first (the rest may fit the
                                  next requests of its own size) */
            h = map_aligned(len);
        }
        if (h) {
            *h = (big_hdr){.magic = BIG_MAGIC_MAP, .map_len = map_len, .n = n};
            atomic_fetch_add(&g_big_live, 1);
            return (uint8_t *)h + BIG_HDR;
        }
    }
    big_hdr *h = em_malloc_aligned(BIG_HDR, n + BIG_HDR);
    if (!h)
        return NULL;
    *h = (big_hdr){.magic = BIG_MAGIC_HEAP, .map_len = 0, .n = n};
    return (uint8_t *)h + BIG_HDR;
}

void em_free_big(void *p)
{
    if (!p)
        return;
    big_hdr *h = (big_hdr *)((uint8_t *)p - BIG_HDR);
    if (h->magic == BIG_MAGIC_MAP) {
        h->magic = 0;
        atomic_fetch_sub(&g_big_live, 1);
        if (!cache_put(h))
            munmap(h, h->map_len);
        return;
    }
    if (h->magic != BIG_MAGIC_HEAP)
        em_panic("em_free_big(%p): not from em_malloc_big", p);
    h->magic = 0;
    em_free(h);
}

/* ---------------------------------------------------------------- task processes
 * A process that runs tasks allocates and frees large buffers all the time (frames, result
 * blocks, a SQL stage's rows, a partition's records), and first-touching fresh pages costs
 * 5-8 ms per MiB on the VMs we measured on (docs/cluster.md, "Memory reuse"); a reused page
 * costs nothing. With glibc's defaults every task thread gets its own arena, and a thread
 * arena mmaps each chunk above its 64 MiB heaps (whatever M_MMAP_MAX says) and unmaps it on
 * free, so the big buffers come back as fresh pages task after task: TPC-H Q3 at scale 1 took
 * 2.48 million page faults and 44.7 CPU s in local[2] against 0.35 million and 11.8 CPU s in
 * local-cluster[2,1], whose executors had this policy; with it, local[2] takes 0.41 million
 * and about 12 CPU s. Small allocations stay per thread in the tcache. The cost: freed memory
 * stays with the process (trimmed above 1 GiB). */
static void task_malloc_policy(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 64 << 20);   /* capped by glibc (32 MiB on 64-bit) */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_ARENA_MAX, 1);   /* one arena: the one that obeys the lines above */
#endif
}

void em_task_process_malloc_policy(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, task_malloc_policy);
}
