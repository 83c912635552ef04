/* mllib/als/idmap.c - external ids (text tokens) to dense indices and back, in order of
 * first appearance (em_idmap, als.h). Canonical integer ids below EM__IDMAP_DIRECT_MAX go
 * through a direct table, everything else through the code base's open-addressing table
 * (em_hmap) of indices of strings kept in an arena, each slot with the string's hash bits. The parallel rating reader (ratings.c) uses the internals declared in
 * als_int.h: a direct-table limit for its per-range maps, interning another map's id, and
 * truncation to undo a failed parallel read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/als/als_int.h"

/* A slot of m->strs: the string's table hash and its index. */
typedef struct idmap_slot {
    uint32_t h32;
    int32_t idx;
    uint8_t used;
    uint8_t pad[3];
} idmap_slot;

em_idmap *em_idmap_new(void)
{
    em_idmap *m = em_calloc(1, sizeof(em_idmap));
    if (m)
        em_hmap_init(&m->strs, sizeof(idmap_slot), offsetof(idmap_slot, used), 1024);
    return m;
}

void em_idmap_free(em_idmap *m)
{
    if (!m)
        return;
    em_free(m->direct);
    em_free(m->rev);
    em_hmap_destroy(&m->strs);
    em_free(m->arena);
    em_free(m);
}

int32_t em_idmap_size(const em_idmap *m)
{
    return m->n;
}

static const char *str_of(const em_idmap *m, int32_t idx)
{
    return m->arena + (size_t)(-m->rev[idx] - 1);
}

static uint32_t str_hash(const char *t, size_t n)
{
    return em_hmap_h32(em_hash64(t, n, 7));
}

typedef struct str_key {
    const em_idmap *m;
    const char *t;
    size_t n;
} str_key;

static bool str_eq(const void *slot, const void *key)
{
    const str_key *k = key;
    const char *s = str_of(k->m, ((const idmap_slot *)slot)->idx);
    return strncmp(s, k->t, k->n) == 0 && s[k->n] == '\0';
}

/* The index of string id t[0..n), else -1 (and *hole, when the table has slots, where it
 * goes). */
static int32_t str_find(const em_idmap *m, const char *t, size_t n, idmap_slot **hole)
{
    if (!m->strs.cap)
        return -1;
    str_key k = {m, t, n};
    void *h = NULL;
    const idmap_slot *s = em_hmap_find(&m->strs, str_hash(t, n), str_eq, &k, &h);
    if (hole)
        *hole = h;
    return s ? s->idx : -1;
}

int32_t em_idmap_find(const em_idmap *m, const char *tok, size_t n)
{
    uint32_t v;
    if (em__idmap_token_int(tok, n, &v) && (!m->direct_lim || v < m->direct_lim))
        return v < m->direct_cap ? m->direct[v] - 1 : -1;
    return str_find(m, tok, n, NULL);
}

static int grow_rev(em_idmap *m, em_err *err)
{
    if ((size_t)m->n < m->rev_cap)
        return 0;
    if (m->n == INT32_MAX)
        return em_err_set(err, EM_EINVAL, "more than %d distinct ids", INT32_MAX);
    int64_t *r = em_arr_grow(m->rev, &m->rev_cap, (size_t)m->n + 1, sizeof *r);
    if (!r)
        return em_err_set(err, EM_ENOMEM, "id map: %zu ids", (size_t)m->n + 1);
    m->rev = r;
    return 0;
}

/* Puts every string id of m into the (empty) table, which has room for them. */
static void fill_slots(em_idmap *m)
{
    for (int32_t i = 0; i < m->n; i++) {
        if (m->rev[i] >= 0)
            continue;
        const char *str = str_of(m, i);
        uint32_t h = str_hash(str, strlen(str));
        size_t j = em_hmap_home(&m->strs, h);
        while (em_hmap_used(&m->strs, em_hmap_at(&m->strs, j)))
            j = em_hmap_next(&m->strs, j);
        *(idmap_slot *)em_hmap_at(&m->strs, j) = (idmap_slot){h, i, 1, {0}};
        m->strs.n++;
    }
}

static int intern_str(em_idmap *m, const char *t, size_t n, int32_t *out, em_err *err)
{
    idmap_slot *slot = NULL;
    int32_t idx = str_find(m, t, n, &slot);
    if (idx >= 0) {
        *out = idx;
        return 0;
    }
    if (em_hmap_needs_grow(&m->strs)) {
        if (em_hmap_grow(&m->strs) < 0)
            return em_err_set(err, EM_ENOMEM, "id map: hash of %zu slots",
                              em_hmap_grow_bytes(&m->strs) / sizeof(idmap_slot));
        str_find(m, t, n, &slot);
    }
    if (grow_rev(m, err) < 0)
        return err->code;
    char *a = em_arr_grow(m->arena, &m->acap, m->alen + n + 1, 1);
    if (!a)
        return em_err_set(err, EM_ENOMEM, "id map: %zu bytes of ids", m->alen + n + 1);
    m->arena = a;
    memcpy(m->arena + m->alen, t, n);
    m->arena[m->alen + n] = '\0';
    m->rev[m->n] = -(int64_t)m->alen - 1;
    m->alen += n + 1;
    *slot = (idmap_slot){str_hash(t, n), m->n, 1, {0}};
    m->strs.n++;
    m->nstr++;
    *out = m->n++;
    return 0;
}

/* The index of canonical integer id v (< EM__IDMAP_DIRECT_MAX), whose text is tok[0..n), adding it
 * when new. */
int em__idmap_intern_int(em_idmap *m, uint32_t v, const char *tok, size_t n, int32_t *out,
                          em_err *err)
{
    if (v < m->direct_cap && m->direct[v]) {
        *out = m->direct[v] - 1;
        return 0;
    }
    if (m->direct_lim && v >= m->direct_lim)   /* keeps T local tables small */
        return intern_str(m, tok, n, out, err);
    if (v >= m->direct_cap) {
        size_t old = m->direct_cap;
        int32_t *d = em_arr_grow(m->direct, &m->direct_cap, (size_t)v + 1, sizeof *d);
        if (!d)
            return em_err_set(err, EM_ENOMEM, "id map: direct table of %zu", (size_t)v + 1);
        memset(d + old, 0, (m->direct_cap - old) * sizeof *d);
        m->direct = d;
    }
    if (grow_rev(m, err) < 0)
        return err->code;
    m->rev[m->n] = v;
    m->direct[v] = m->n + 1;
    *out = m->n++;
    return 0;
}

int em_idmap_intern(em_idmap *m, const char *tok, size_t n, int32_t *out, em_err *err)
{
    uint32_t v;
    if (n == 0)
        return em_err_set(err, EM_EINVAL, "empty id");
    if (!em__idmap_token_int(tok, n, &v))
        return intern_str(m, tok, n, out, err);
    return em__idmap_intern_int(m, v, tok, n, out, err);
}

/* Interns the id of index idx of map `from` into m (no direct_lim): the merge step of the
 * parallel reader. A string of `from` may be a large canonical integer (direct_lim). */
int em__idmap_intern_from(em_idmap *m, const em_idmap *from, int32_t idx, int32_t *out,
                          em_err *err)
{
    if (from->rev[idx] >= 0)
        return em__idmap_intern_int(m, (uint32_t)from->rev[idx], NULL, 0, out, err);
    const char *s = str_of(from, idx);
    return em_idmap_intern(m, s, strlen(s), out, err);
}

/* Forgets every id of index >= n0 (m had n0 ids before them). Cannot fail: the tables keep
 * their size. Strings sit in the arena in index order, so the arena is cut where the first
 * forgotten string starts. */
void em__idmap_truncate(em_idmap *m, int32_t n0)
{
    bool strs = false;
    for (int32_t i = n0; i < m->n; i++) {
        if (m->rev[i] >= 0) {
            m->direct[m->rev[i]] = 0;
            continue;
        }
        if (!strs)
            m->alen = (size_t)(-m->rev[i] - 1);
        strs = true;
        m->nstr--;
    }
    m->n = n0;
    if (strs) {
        em_hmap_clear(&m->strs);
        fill_slots(m);
    }
}

const char *em_idmap_name(const em_idmap *m, int32_t idx, char buf[24])
{
    if (idx < 0 || idx >= m->n)
        return NULL;
    if (m->rev[idx] < 0)
        return str_of(m, idx);
    snprintf(buf, 24, "%lld", (long long)m->rev[idx]);
    return buf;
}


/* ---------------------------------------------------------------- dense integer ids */

int em__idmap_dense_base(const em_idmap *m)
{
    if (m->n == 0 || m->nstr)
        return -1;
    int64_t lo = INT64_MAX, hi = -1;
    for (int32_t i = 0; i < m->n; i++) {
        if (m->rev[i] < 0)
            return -1;
        lo = m->rev[i] < lo ? m->rev[i] : lo;
        hi = m->rev[i] > hi ? m->rev[i] : hi;
    }
    /* n distinct ids within lo..hi: dense exactly when hi - lo + 1 == n */
    if (hi - lo + 1 != (int64_t)m->n || lo > 1)
        return -1;
    return (int)lo;
}

int em__idmap_fill_dense(em_idmap *m, int base, int32_t n, em_err *err)
{
    for (int32_t i = 0; i < n; i++) {
        int32_t idx;
        if (em__idmap_intern_int(m, (uint32_t)(i + base), NULL, 0, &idx, err) < 0)
            return err->code;
        if (idx != m->n - 1 || idx != i)
            return em_err_set(err, EM_EINVAL, "id map: dense fill into a map that is not "
                              "empty");
    }
    return 0;
}

int em__idmap_renumber_dense(em_idmap *m, int32_t **perm, em_err *err)
{
    *perm = NULL;
    int base = em__idmap_dense_base(m);
    if (base < 0)
        return 0;
    int32_t n = m->n;
    int32_t *p = em_malloc((size_t)n * sizeof *p);
    if (!p)
        return em_err_set(err, EM_ENOMEM, "id map: renumbering %d ids", n);
    for (int32_t i = 0; i < n; i++) {
        p[i] = (int32_t)(m->rev[i] - base);
        m->direct[m->rev[i]] = 0;
    }
    m->n = 0;
    if (em__idmap_fill_dense(m, base, n, err) < 0) {
        em_free(p);
        return err->code;
    }
    *perm = p;
    return 1;
}
