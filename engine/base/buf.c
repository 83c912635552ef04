/* engine/base/buf.c - byte slices, growable buffers (em_vbuf), refcounted immutable buffers
 * (em_buf) and the arena.
 * THREADS: em_buf refcounting is atomic (any thread); vbufs and arenas are one thread per
 * object. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "engine/base/base.h"

/* ---------------------------------------------------------------- slices */

em_slice em_slice_str(const char *s)
{
    return em_slice_make(s, strlen(s));
}

int em_slice_cmp(em_slice a, em_slice b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c != 0)
        return c < 0 ? -1 : 1;
    return a.n < b.n ? -1 : a.n > b.n ? 1 : 0;
}

bool em_slice_eq(em_slice a, em_slice b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* ---------------------------------------------------------------- growable arrays */

void *em_arr_grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap && (p || need == 0))
        return p;
    size_t c = *cap < 8 ? 8 : *cap;
    while (c < need) {
        if (c > SIZE_MAX / 2) {
            c = need;
            break;
        }
        c *= 2;
    }
    size_t bytes;
    if (!em_size_mul(c, elem ? elem : 1, &bytes))
        return NULL;
    void *g = em_realloc(p, bytes);
    if (!g)
        return NULL;
    *cap = c;
    return g;
}

void *em_arr_xgrow(void *p, size_t *cap, size_t need, size_t elem)
{
    void *g = em_arr_grow(p, cap, need, elem);
    if (!g)
        em_panic("out of memory growing an array to %zu elements of %zu bytes", need, elem);
    return g;
}

/* ---------------------------------------------------------------- vbuf */

void em_vbuf_init(em_vbuf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void em_vbuf_destroy(em_vbuf *b)
{
    em_free(b->data);
    em_vbuf_init(b);
}

int em_vbuf_reserve(em_vbuf *b, size_t extra)
{
    size_t need;
    if (!em_size_add(b->len, extra, &need))
        return EM_ENOMEM;
    if (need <= b->cap && b->data)
        return 0;
    /* Geometric growth (x1.5, at least 64) keeps appends amortised O(1). */
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need) {
        size_t next = cap + cap / 2;
        if (next <= cap) { /* overflow: take exactly what is needed */
            cap = need;
            break;
        }
        cap = next;
    }
    uint8_t *p = em_realloc(b->data, cap);
    if (!p)
        return EM_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int em_vbuf_reserve_aligned(em_vbuf *b, size_t extra, size_t align)
{
    size_t need;
    if (!em_size_add(b->len, extra, &need))
        return EM_ENOMEM;
    if (need <= b->cap && b->data)
        return 0;
    /* Doubling (at least 256): realloc would lose the alignment, so every growth copies. */
    size_t cap = b->cap < 256 ? 256 : b->cap;
    while (cap < need)
        cap = cap * 2 > cap ? cap * 2 : need;
    uint8_t *p = em_malloc_aligned(align, cap);
    if (!p)
        return EM_ENOMEM;
    if (b->len)
        memcpy(p, b->data, b->len);
    em_free(b->data);
    b->data = p;
    b->cap = cap;
    return 0;
}

int em_vbuf_append(em_vbuf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (b->cap - b->len < n || !b->data) {
        int rc = em_vbuf_reserve(b, n);
        if (rc < 0)
            return rc;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int em_vbuf_append_u32le(em_vbuf *b, uint32_t v)
{
    uint8_t t[4];
    em_store_le32(t, v);
    return em_vbuf_append(b, t, 4);
}

int em_vbuf_append_u64le(em_vbuf *b, uint64_t v)
{
    uint8_t t[8];
    em_store_le64(t, v);
    return em_vbuf_append(b, t, 8);
}

int em_vbuf_printf(em_vbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0)
        return EM_EINVAL;
    int rc = em_vbuf_reserve(b, (size_t)k + 1);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)k;
    return 0;
}

uint8_t *em_vbuf_steal(em_vbuf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    em_vbuf_init(b);
    return p;
}

/* ---------------------------------------------------------------- em_buf */

struct em_buf {
    atomic_size_t refs;
    size_t len;
    uint8_t *data;      /* points at inline storage or at an adopted allocation */
    bool owns_separate; /* data was adopted with em_buf_new_take */
    _Alignas(16) uint8_t inline_data[];
};

em_buf *em_buf_new(size_t len)
{
    size_t total;
    if (!em_size_add(sizeof(em_buf), len, &total))
        return NULL;
    em_buf *b = em_malloc(total);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    b->data = b->inline_data;
    b->owns_separate = false;
    return b;
}

em_buf *em_buf_new_copy(const void *p, size_t len)
{
    em_buf *b = em_buf_new(len);
    if (b && len)
        memcpy(b->data, p, len);
    return b;
}

em_buf *em_buf_new_take(void *p, size_t len)
{
    em_buf *b = em_malloc(sizeof(em_buf));
    if (!b) {
        em_free(p);
        return NULL;
    }
    atomic_init(&b->refs, 1);
    b->len = len;
    b->data = p;
    b->owns_separate = true;
    return b;
}

em_buf *em_buf_ref(em_buf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void em_buf_unref(em_buf *b)
{
    if (!b)
        return;
    /* acq_rel: the last owner must see every write made before the other unrefs. */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (b->owns_separate)
        em_free(b->data);
    em_free(b);
}

uint8_t *em_buf_data(em_buf *b)
{
    return b->data;
}

size_t em_buf_len(const em_buf *b)
{
    return b->len;
}

/* ---------------------------------------------------------------- arena */

/* A chunk: header then `size` usable bytes, of which `used` are handed out. Chunks form a
 * list, newest first; only the head is bumped into. */
struct em_arena_chunk {
    em_arena_chunk *next;
    size_t size;
    size_t used;
    size_t pad_;
    _Alignas(16) uint8_t data[];
};

#define EM_ARENA_ALIGN 16
#define EM_ARENA_DEFAULT_CHUNK ((size_t)64 * 1024)

void em_arena_init(em_arena *a, size_t chunk_size)
{
    a->head = NULL;
    a->chunk_size = chunk_size;
    a->total = 0;
}

static em_arena_chunk *arena_chunk_new(size_t size)
{
    size_t total;
    if (!em_size_add(sizeof(em_arena_chunk), size, &total))
        return NULL;
    em_arena_chunk *c = em_malloc(total);
    if (!c)
        return NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void *em_arena_alloc(em_arena *a, size_t n)
{
    size_t rounded;
    if (!em_size_add(n ? n : 1, EM_ARENA_ALIGN - 1, &rounded))
        return NULL;
    rounded &= ~(size_t)(EM_ARENA_ALIGN - 1);

    em_arena_chunk *h = a->head;
    if (h && h->size - h->used >= rounded) {
        void *p = h->data + h->used;
        h->used += rounded;
        return p;
    }
    size_t csize = a->chunk_size ? a->chunk_size : EM_ARENA_DEFAULT_CHUNK;
    if (rounded > csize / 4) {
        /* Big allocation: its own chunk, linked behind the head so the head keeps its
         * free space for later small allocations. */
        em_arena_chunk *c = arena_chunk_new(rounded);
        if (!c)
            return NULL;
        c->used = rounded;
        if (h) {
            c->next = h->next;
            h->next = c;
        } else {
            c->next = NULL;
            a->head = c;
        }
        a->total += rounded;
        return c->data;
    }
    em_arena_chunk *c = arena_chunk_new(csize);
    if (!c)
        return NULL;
    c->next = h;
    a->head = c;
    a->total += csize;
    c->used = rounded;
    return c->data;
}

void *em_arena_memdup(em_arena *a, const void *p, size_t n)
{
    void *d = em_arena_alloc(a, n);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

void em_arena_reset(em_arena *a)
{
    em_arena_chunk *c = a->head;
    while (c) {
        em_arena_chunk *next = c->next;
        em_free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}
