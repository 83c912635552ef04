/* sql/exec_local.c - the local executor: runs a logical plan on the calling thread over
 * in-memory tables, materializing each node's rows in the statement arena.
 *
 * This is the path for small inputs (docs/sql.md): no scheduler, no stages, no files, so a
 * query over a few rows costs microseconds. Operators: scans with pushed-down filters,
 * filter, project, hash join (nested loops when there is no equality key), LEFT join,
 * hash aggregation with DISTINCT aggregates, DISTINCT, a stable merge sort (NULLs first
 * ascending), LIMIT/OFFSET and the set operations.
 * Hash tables here are chained over entry indices (head per bucket, next per entry) and
 * freed when their operator ends; rows stay in the arena. */
#include <math.h>
#include <string.h>

#include "sql/sql_int.h"

static int oom(sql_exec *x)
{
    return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
}

static sql_rel *rel_new(sql_exec *x, uint32_t width)
{
    sql_rel *r = em_arena_alloc(x->arena, sizeof *r);
    if (r == NULL) {
        oom(x);
        return NULL;
    }
    memset(r, 0, sizeof *r);
    r->width = width;
    return r;
}

/* Appends an uninitialised row; NULL on OOM. */
static em_sql_value *rel_add(sql_exec *x, sql_rel *r)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        size_t w = r->width ? r->width : 1;
        em_sql_value *nv = em_arena_alloc(x->arena, nc * w * sizeof *nv);
        if (nv == NULL) {
            oom(x);
            return NULL;
        }
        if (r->n)
            memcpy(nv, r->v, r->n * w * sizeof *nv);
        r->v = nv;
        r->cap = nc;
    }
    return &r->v[r->n++ * (r->width ? r->width : 1)];
}

int em__sql_rel_push(sql_exec *x, sql_rel *r, const em_sql_value *row)
{
    em_sql_value *d = rel_add(x, r);
    if (d == NULL)
        return EM_ENOMEM;
    if (r->width)
        memcpy(d, row, r->width * sizeof *d);
    return 0;
}

static const em_sql_value *rel_row(const sql_rel *r, size_t i)
{
    return &r->v[i * (r->width ? r->width : 1)];
}

/* ---------------------------------------------------------------- chained hash index */
typedef struct hindex {
    int32_t *head;     /* cap buckets: first entry or -1 */
    int32_t *next;     /* per entry */
    uint64_t *hash;    /* per entry */
    size_t cap, n, ecap;
} hindex;

static void hindex_free(hindex *h)
{
    em_free(h->head);
    em_free(h->next);
    em_free(h->hash);
}

static int hindex_grow(hindex *h)
{
    size_t nc = h->cap ? h->cap * 2 : 64;
    int32_t *nh = em_malloc(nc * sizeof *nh);
    if (nh == NULL)
        return EM_ENOMEM;
    for (size_t i = 0; i < nc; i++)
        nh[i] = -1;
    for (size_t e = 0; e < h->n; e++) {
        size_t b = h->hash[e] & (nc - 1);
        h->next[e] = nh[b];
        nh[b] = (int32_t)e;
    }
    em_free(h->head);
    h->head = nh;
    h->cap = nc;
    return 0;
}

/* Adds entry h->n with hash hv. */
static int hindex_add(hindex *h, uint64_t hv)
{
    if (h->n == h->ecap) {
        size_t nc = h->ecap ? h->ecap * 2 : 64;
        int32_t *nn = em_realloc(h->next, nc * sizeof *nn);
        if (nn == NULL)
            return EM_ENOMEM;
        h->next = nn;
        uint64_t *nh = em_realloc(h->hash, nc * sizeof *nh);
        if (nh == NULL)
            return EM_ENOMEM;
        h->hash = nh;
        h->ecap = nc;
    }
    if (h->n + 1 > h->cap && hindex_grow(h) < 0)
        return EM_ENOMEM;
    size_t b = hv & (h->cap - 1);
    h->hash[h->n] = hv;
    h->next[h->n] = h->head[b];
    h->head[b] = (int32_t)h->n;
    h->n++;
    return 0;
}

static int32_t hindex_first(const hindex *h, uint64_t hv)
{
    if (h->cap == 0)
        return -1;
    int32_t e = h->head[hv & (h->cap - 1)];
    while (e >= 0 && h->hash[e] != hv)
        e = h->next[e];
    return e;
}

static int32_t hindex_next(const hindex *h, int32_t e)
{
    uint64_t hv = h->hash[e];
    e = h->next[e];
    while (e >= 0 && h->hash[e] != hv)
        e = h->next[e];
    return e;
}

static uint64_t hash_vals(const em_sql_value *v, uint32_t n)
{
    uint64_t h = 0x12345;
    for (uint32_t i = 0; i < n; i++)
        h = em__sql_hash(&v[i], h);
    return h;
}

static bool eq_total(const em_sql_value *a, const em_sql_value *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (em__sql_cmp_total(&a[i], &b[i]) != 0)
            return false;
    return true;
}

/* ---------------------------------------------------------------- leaves */
static int run_leaf(sql_exec *x, const sql_plan *p, const sql_env *outer, sql_rel **out)
{
    sql_rel *r = rel_new(x, p->width), *sub = NULL;
    size_t n;
    int rc;
    if (r == NULL)
        return EM_ENOMEM;
    if (p->kind == P_SUBQ) {
        if ((rc = em__sql_run(x, p->in, outer, &sub)) < 0)
            return rc;
        n = sub->n;
    } else {
        if (!p->table->loaded && p->table->csv_path) { /* left to executors at CREATE */
            em_err err = EM_ERR_INIT;
            if (em__sql_csv_load(p->table, &err) < 0)
                return em__sql_diag(x->diag, err.code, -1, "%s", err.msg);
        }
        n = p->table->nrows;
    }
    for (size_t i = 0; i < n; i++) {
        em_sql_value *row = rel_add(x, r);
        if (row == NULL)
            return EM_ENOMEM;
        for (uint32_t c = 0; c < p->width; c++)
            row[c] = em__sql_null();
        const em_sql_value *src = sub ? rel_row(sub, i) : &p->table->rows[i * p->slice];
        memcpy(row + p->off, src, p->slice * sizeof *row);
        if (p->pred != NULL) {
            sql_env env = {.row = row, .outer = outer};
            em_sql_value t;
            if ((rc = em__sql_eval(x, p->pred, &env, &t)) < 0)
                return rc;
            if (em__sql_truth(&t) != 1)
                r->n--;
        }
    }
    *out = r;
    return 0;
}

/* ---------------------------------------------------------------- joins */
typedef struct join_ctx {
    sql_exec *x;
    const sql_plan *p;
    const sql_env *outer;
    sql_rel *out;
    em_sql_value *keys;   /* scratch: nkeys values */
} join_ctx;

/* Emits left row l joined with right row r if the residual holds; *hit set when emitted. */
static int join_emit(join_ctx *j, const em_sql_value *l, const em_sql_value *r, bool *hit)
{
    const sql_plan *p = j->p;
    em_sql_value *row = rel_add(j->x, j->out);
    int rc;
    if (row == NULL)
        return EM_ENOMEM;
    memcpy(row, l, p->width * sizeof *row);
    for (uint32_t i = 0; i < p->nslices; i++)
        memcpy(row + p->slice_off[i], r + p->slice_off[i], p->slice_len[i] * sizeof *row);
    if (p->pred != NULL) {
        sql_env env = {.row = row, .outer = j->outer};
        em_sql_value t;
        if ((rc = em__sql_eval(j->x, p->pred, &env, &t)) < 0)
            return rc;
        if (em__sql_truth(&t) != 1) {
            j->out->n--;
            return 0;
        }
    }
    *hit = true;
    return 0;
}

/* Evaluates keys over row; false when a key is NULL (it matches nothing). */
static int eval_keys(join_ctx *j, sql_expr *const *keys, const em_sql_value *row, bool *ok)
{
    sql_env env = {.row = row, .outer = j->outer};
    *ok = true;
    for (uint32_t k = 0; k < j->p->nkeys; k++) {
        int rc = em__sql_eval(j->x, keys[k], &env, &j->keys[k]);
        if (rc < 0)
            return rc;
        if (j->keys[k].type == EM_SQL_NULL)
            *ok = false;
    }
    return 0;
}

/* The hash table of a join's right side: built per run, or kept on the plan node
 * (p->jcache) while the right side is the same rows (a broadcast in a chunked stage, whose
 * rows outlive the chunks): its keys are then the right rows' own values (bare columns). */
struct sql_join_cache {
    const sql_rel *R;
    hindex h;
    em_sql_value *rk;
    int32_t *rows;
    /* R still encoded (R->enc): each entry's row at byte offs[e] of R->enc, its text keys
     * copied into text; scratch holds a decoded row */
    size_t *offs;
    em_arena text;
    bool have_text;
    em_sql_value *scratch;
    /* a blocked Bloom filter of the entries' hashes (2 bits in one word of bmask + 1, 8 bits
     * per entry): most probes that match nothing stop at one word that stays in cache,
     * not at the bucket and hash arrays */
    uint64_t *bloom, bmask;
};

static uint64_t bloom_bits(uint64_t hv)
{
    return ((uint64_t)1 << ((hv >> 20) & 63)) | ((uint64_t)1 << ((hv >> 26) & 63));
}

static int join_bloom_build(struct sql_join_cache *c)
{
    size_t words = 1;
    while (words < c->h.n / 8 + 1)
        words *= 2;
    if ((c->bloom = em_calloc(words, sizeof *c->bloom)) == NULL)
        return EM_ENOMEM;
    c->bmask = words - 1;
    for (size_t e = 0; e < c->h.n; e++)
        c->bloom[(c->h.hash[e] >> 32) & c->bmask] |= bloom_bits(c->h.hash[e]);
    return 0;
}

/* The first entry of c with hash hv, or -1. */
static int32_t join_first(const struct sql_join_cache *c, uint64_t hv)
{
    uint64_t b = bloom_bits(hv);
    if (c->bloom != NULL && (c->bloom[(hv >> 32) & c->bmask] & b) != b)
        return -1;
    return hindex_first(&c->h, hv);
}

/* Entry e's keys equal keys (nkeys of them). */
static bool join_keys_eq(const struct sql_join_cache *c, uint32_t nkeys,
                         const em_sql_value *keys, int32_t e)
{
    for (uint32_t k = 0; k < nkeys; k++)
        if (em__sql_cmp_sql(&keys[k], &c->rk[(size_t)e * nkeys + k]) != 0)
            return false;
    return true;
}

static void join_cache_clear(struct sql_join_cache *c)
{
    hindex_free(&c->h);
    em_free(c->rk);
    em_free(c->rows);
    em_free(c->offs);
    em_free(c->scratch);
    em_free(c->bloom);
    if (c->have_text)
        em_arena_destroy(&c->text);
}

static void join_cache_free(struct sql_join_cache *c)
{
    if (c == NULL)
        return;
    join_cache_clear(c);
    em_free(c);
}

void em__sql_plan_free_caches(sql_plan *p)
{
    if (p == NULL)
        return;
    join_cache_free(p->jcache);
    p->jcache = NULL;
    em__sql_plan_free_caches(p->in);
    em__sql_plan_free_caches(p->right);
}

static bool keys_are_columns(const sql_plan *p)
{
    for (uint32_t k = 0; k < p->nkeys; k++)
        if (p->rkeys[k]->kind != E_COL || p->rkeys[k]->level != 0)
            return false;
    return true;
}

/* join_build over rows still encoded: each row decoded into a scratch row (text left in
 * R->enc) for its keys, which are kept (text copied) with the row's offset. */
static int join_build_enc(join_ctx *j, const sql_rel *R, struct sql_join_cache *c)
{
    const sql_plan *p = j->p;
    size_t off = 0, cap = 0;
    em_err err = EM_ERR_INIT;
    bool ok;
    int rc;
    c->R = R;
    em_arena_init(&c->text, 0);
    c->have_text = true;
    if ((c->scratch = em_malloc(((size_t)R->width + 1) * sizeof *c->scratch)) == NULL)
        return oom(j->x);
    while (off < R->enc_n) {
        size_t used;
        if (em_sql_row_decode(R->enc + off, R->enc_n - off, c->scratch, R->width, &used,
                              &err) < 0)
            return em__sql_diag(j->x->diag, err.code, -1, "broadcast rows: %s", err.msg);
        if ((rc = eval_keys(j, p->rkeys, c->scratch, &ok)) < 0)
            return rc;
        if (ok) {
            if (c->h.n == cap) {
                size_t nc = cap ? cap * 2 : 1024;
                em_sql_value *nk = em_realloc(c->rk, (nc * p->nkeys + 1) * sizeof *nk);
                if (nk == NULL)
                    return oom(j->x);
                c->rk = nk;
                size_t *no = em_realloc(c->offs, nc * sizeof *no);
                if (no == NULL)
                    return oom(j->x);
                c->offs = no;
                cap = nc;
            }
            em_sql_value *k = &c->rk[c->h.n * p->nkeys];
            memcpy(k, j->keys, p->nkeys * sizeof *k);
            for (uint32_t i = 0; i < p->nkeys; i++)
                if (k[i].type == EM_SQL_TEXT && em__sql_text(&c->text, k[i].u.s, k[i].len, &k[i]) < 0)
                    return oom(j->x);
            c->offs[c->h.n] = off;
            if (hindex_add(&c->h, hash_vals(j->keys, p->nkeys)) < 0)
                return oom(j->x);
        }
        off += used;
    }
    return 0;
}

/* Row e of the build side: R's row, or (R encoded) the row decoded into the scratch row,
 * its text copied into the statement's arena (it may go into output rows). */
static int join_build_row(join_ctx *j, const sql_rel *R, struct sql_join_cache *c, int32_t e,
                          const em_sql_value **row)
{
    em_err err = EM_ERR_INIT;
    size_t used;
    if (R->enc == NULL) {
        *row = rel_row(R, (size_t)c->rows[e]);
        return 0;
    }
    if (em_sql_row_decode(R->enc + c->offs[e], R->enc_n - c->offs[e], c->scratch, R->width,
                          &used, &err) < 0)
        return em__sql_diag(j->x->diag, err.code, -1, "broadcast rows: %s", err.msg);
    for (uint32_t i = 0; i < R->width; i++)
        if (c->scratch[i].type == EM_SQL_TEXT &&
            em__sql_text(j->x->arena, c->scratch[i].u.s, c->scratch[i].len, &c->scratch[i]) < 0)
            return oom(j->x);
    *row = c->scratch;
    return 0;
}

static int join_build_rows(join_ctx *j, const sql_rel *R, struct sql_join_cache *c);

static int join_build(join_ctx *j, const sql_rel *R, struct sql_join_cache *c)
{
    int rc = R->enc != NULL ? join_build_enc(j, R, c) : join_build_rows(j, R, c);
    if (rc == 0 && join_bloom_build(c) < 0)
        return oom(j->x);
    return rc;
}

static int join_build_rows(join_ctx *j, const sql_rel *R, struct sql_join_cache *c)
{
    const sql_plan *p = j->p;
    bool ok;
    int rc;
    c->R = R;
    c->rk = em_malloc((R->n * p->nkeys + 1) * sizeof *c->rk);
    c->rows = em_malloc((R->n + 1) * sizeof *c->rows);
    if (c->rk == NULL || c->rows == NULL)
        return oom(j->x);
    for (size_t i = 0; i < R->n; i++) {
        if ((rc = eval_keys(j, p->rkeys, rel_row(R, i), &ok)) < 0)
            return rc;
        if (!ok)
            continue;
        memcpy(&c->rk[c->h.n * p->nkeys], j->keys, p->nkeys * sizeof *c->rk);
        c->rows[c->h.n] = (int32_t)i;
        if (hindex_add(&c->h, hash_vals(j->keys, p->nkeys)) < 0)
            return oom(j->x);
    }
    return 0;
}

/* The kept hash table of p (cache_build, keys on columns) over R, built if not yet. */
static int join_cache_get(join_ctx *j, const sql_rel *R, struct sql_join_cache **out)
{
    sql_plan *p = (sql_plan *)j->p;
    *out = NULL;
    if (p->jcache != NULL && p->jcache->R == R) {
        *out = p->jcache;
        return 0;
    }
    join_cache_free(p->jcache);
    if ((p->jcache = em_calloc(1, sizeof *p->jcache)) == NULL)
        return oom(j->x);
    int rc = join_build(j, R, p->jcache);
    if (rc < 0) {
        join_cache_free(p->jcache);
        p->jcache = NULL;
        return rc;
    }
    *out = p->jcache;
    return 0;
}

bool em__sql_join_keeps_build(const sql_plan *p)
{
    return p->kind == P_JOIN && p->cache_build && p->nkeys > 0 && keys_are_columns(p);
}

int em__sql_join_prebuild(sql_exec *x, sql_plan *p)
{
    sql_rel *R;
    int rc;
    struct sql_join_cache *c;
    if ((rc = em__sql_run(x, p->right, NULL, &R)) < 0)
        return rc;
    join_ctx j = {.x = x, .p = p};
    if ((j.keys = em_arena_alloc(x->arena, (p->nkeys + 1) * sizeof *j.keys)) == NULL)
        return oom(x);
    return join_cache_get(&j, R, &c);
}

bool em__sql_join_may_match(const sql_plan *p, const em_sql_value *keys)
{
    const struct sql_join_cache *c = p->jcache;
    if (c == NULL)
        return true;
    for (uint32_t k = 0; k < p->nkeys; k++)
        if (keys[k].type == EM_SQL_NULL)
            return false;
    for (int32_t e = join_first(c, hash_vals(keys, p->nkeys)); e >= 0;
         e = hindex_next(&c->h, e))
        if (join_keys_eq(c, p->nkeys, keys, e))
            return true;
    return false;
}

static int hash_join(join_ctx *j, const sql_rel *L, const sql_rel *R)
{
    sql_plan *p = (sql_plan *)j->p;
    struct sql_join_cache local = {0}, *c = &local;
    bool keep = p->cache_build && keys_are_columns(p);
    int rc = 0;
    bool ok;
    if (keep) {
        if ((rc = join_cache_get(j, R, &c)) < 0)
            return rc;
    } else if ((rc = join_build(j, R, c)) < 0)
        goto out;
    for (size_t i = 0; i < L->n; i++) {
        const em_sql_value *l = rel_row(L, i);
        bool hit = false;
        if ((rc = eval_keys(j, p->lkeys, l, &ok)) < 0)
            goto out;
        for (int32_t e = ok ? join_first(c, hash_vals(j->keys, p->nkeys)) : -1; e >= 0;
             e = hindex_next(&c->h, e)) {
            if (!join_keys_eq(c, p->nkeys, j->keys, e))
                continue;
            const em_sql_value *r = NULL;
            if ((rc = join_build_row(j, R, c, e, &r)) < 0 || (rc = join_emit(j, l, r, &hit)) < 0)
                goto out;
        }
        if (!hit && p->join == J_LEFT && (rc = em__sql_rel_push(j->x, j->out, l)) < 0)
            goto out;
    }
out:
    if (c == &local)
        join_cache_clear(&local);
    return rc;
}

static int run_join(sql_exec *x, const sql_plan *p, const sql_env *outer, sql_rel **out)
{
    sql_rel *L, *R;
    int rc;
    if ((rc = em__sql_run(x, p->in, outer, &L)) < 0 || (rc = em__sql_run(x, p->right, outer, &R)) < 0)
        return rc;
    join_ctx j = {.x = x, .p = p, .outer = outer, .out = rel_new(x, p->width)};
    if (j.out == NULL ||
        (j.keys = em_arena_alloc(x->arena, (p->nkeys + 1) * sizeof *j.keys)) == NULL)
        return oom(x);
    *out = j.out;
    if (p->nkeys > 0)
        return hash_join(&j, L, R);
    for (size_t i = 0; i < L->n; i++) {
        bool hit = false;
        for (size_t k = 0; k < R->n; k++)
            if ((rc = join_emit(&j, rel_row(L, i), rel_row(R, k), &hit)) < 0)
                return rc;
        if (!hit && p->join == J_LEFT && (rc = em__sql_rel_push(x, j.out, rel_row(L, i))) < 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- aggregation */
typedef struct agg_state {
    int64_t count;
    int64_t isum;
    double dsum;
    bool is_double, overflow;
    em_sql_value best;     /* MIN/MAX */
    em_vbuf text;          /* GROUP_CONCAT */
    hindex seen;           /* DISTINCT: hashes of values seen */
    em_sql_value *seen_v;  /* DISTINCT: the values (grows with seen.n) */
    size_t seen_cap;
} agg_state;

/* DISTINCT: true when v was seen before in this state, else records it. */
static int distinct_seen(sql_exec *x, agg_state *s, const em_sql_value *v, bool *dup)
{
    uint64_t hv = em__sql_hash(v, 7);
    for (int32_t e = hindex_first(&s->seen, hv); e >= 0; e = hindex_next(&s->seen, e))
        if (em__sql_cmp_total(&s->seen_v[e], v) == 0) {
            *dup = true;
            return 0;
        }
    *dup = false;
    if (s->seen.n == s->seen_cap) {
        size_t nc = s->seen_cap ? s->seen_cap * 2 : 16;
        em_sql_value *nv = em_arena_alloc(x->arena, nc * sizeof *nv);
        if (nv == NULL)
            return oom(x);
        if (s->seen.n)
            memcpy(nv, s->seen_v, s->seen.n * sizeof *nv);
        s->seen_v = nv;
        s->seen_cap = nc;
    }
    s->seen_v[s->seen.n] = *v;
    return hindex_add(&s->seen, hv) < 0 ? oom(x) : 0;
}

static int agg_step(sql_exec *x, const sql_expr *a, agg_state *s, const sql_env *env)
{
    em_sql_value v;
    int rc;
    if (a->a == NULL) { /* COUNT(*) */
        s->count++;
        return 0;
    }
    if ((rc = em__sql_eval(x, a->a, env, &v)) < 0)
        return rc;
    if (v.type == EM_SQL_NULL)
        return 0;
    if (a->distinct) {
        bool dup;
        if ((rc = distinct_seen(x, s, &v, &dup)) < 0)
            return rc;
        if (dup)
            return 0;
    }
    s->count++;
    switch (a->op) {
    case AG_SUM:
    case AG_AVG:
    case AG_TOTAL: {
        em_sql_value n = v;
        if (n.type == EM_SQL_TEXT)
            n = em__sql_text_num(n.u.s, n.len);
        if (n.type == EM_SQL_DOUBLE) {
            s->is_double = true;
            s->dsum += n.u.d;
        } else {
            s->dsum += (double)n.u.i;
            if (!s->overflow && __builtin_add_overflow(s->isum, n.u.i, &s->isum))
                s->overflow = true;
        }
        return 0;
    }
    case AG_MIN:
    case AG_MAX: {
        int c = s->count == 1 ? 0 : em__sql_cmp_total(&v, &s->best);
        if (s->count == 1 || (a->op == AG_MIN ? c < 0 : c > 0))
            s->best = v;
        return 0;
    }
    case AG_GROUP_CONCAT: {
        if (s->count > 1) { /* separator: the second argument, ',' by default */
            em_sql_value sep = {.type = EM_SQL_TEXT, .len = 1, .u.s = ","};
            if (a->nargs > 1 && (rc = em__sql_eval(x, a->args[1], env, &sep)) < 0)
                return rc;
            if (sep.type != EM_SQL_NULL && em_sql_value_format(&s->text, &sep) < 0)
                return oom(x);
        }
        return em_sql_value_format(&s->text, &v) < 0 ? oom(x) : 0;
    }
    default:
        return 0;
    }
}

static int agg_final(sql_exec *x, const sql_expr *a, agg_state *s, em_sql_value *out)
{
    switch (a->op) {
    case AG_COUNT: *out = em__sql_int(s->count); break;
    case AG_SUM:
        if (s->overflow && !s->is_double) /* SQLite: all-integer sums do not overflow silently */
            return em__sql_diag(x->diag, EM_EINVAL, a->pos, "integer overflow in sum()");
        if (s->count == 0)
            *out = em__sql_null();
        else if (s->is_double)
            *out = em__sql_dbl(s->dsum);
        else
            *out = em__sql_int(s->isum);
        break;
    case AG_TOTAL: *out = em__sql_dbl(s->dsum); break;
    case AG_AVG:
        *out = s->count ? em__sql_dbl((s->is_double || s->overflow ? s->dsum : (double)s->isum) /
                                      (double)s->count)
                        : em__sql_null();
        break;
    case AG_MIN:
    case AG_MAX: *out = s->count ? s->best : em__sql_null(); break;
    default:
        if (s->count == 0)
            *out = em__sql_null();
        else if (em__sql_text(x->arena, (const char *)s->text.data, s->text.len, out) < 0)
            return oom(x);
    }
    return 0;
}

typedef struct agg_run {
    sql_exec *x;
    const sql_plan *p;
    const sql_env *outer;
    sql_rel *groups;       /* group rows (width p->width): first wide row + agg values */
    sql_rel *keys;         /* group keys (width nexprs) */
    agg_state *st;         /* ngroups * naggs */
    size_t st_cap;
    hindex h;
} agg_run;

/* Width of the wide rows an aggregate groups (a final one reads partial rows: wide row,
 * then AGG_STATE_VALS values per aggregate). */
static uint32_t agg_base(const sql_plan *p)
{
    return p->agg_mode == AGG_FINAL ? p->in->width - p->naggs * AGG_STATE_VALS : p->in->width;
}

/* Partial state as values: count, integer sum, double sum, flags, best. */
static void agg_state_out(const agg_state *s, em_sql_value *v)
{
    v[0] = em__sql_int(s->count);
    v[1] = em__sql_int(s->isum);
    v[2] = em__sql_dbl(s->dsum);
    v[3] = em__sql_int((s->is_double ? 1 : 0) | (s->overflow ? 2 : 0));
    v[4] = s->count ? s->best : em__sql_null();
}

/* Folds a partial state (values as agg_state_out) into s. */
static void agg_merge(const sql_expr *a, agg_state *s, const em_sql_value *v)
{
    int64_t cnt = v[0].u.i, flags = v[3].u.i;
    if (v[0].type != EM_SQL_INT || cnt == 0)
        return;
    if (a->op == AG_MIN || a->op == AG_MAX) {
        int c = s->count == 0 ? 0 : em__sql_cmp_total(&v[4], &s->best);
        if (s->count == 0 || (a->op == AG_MIN ? c < 0 : c > 0))
            s->best = v[4];
    }
    s->count += cnt;
    s->dsum += v[2].type == EM_SQL_DOUBLE ? v[2].u.d : 0;
    s->is_double |= (flags & 1) != 0;
    s->overflow |= (flags & 2) != 0;
    if (!s->overflow && v[1].type == EM_SQL_INT &&
        __builtin_add_overflow(s->isum, v[1].u.i, &s->isum))
        s->overflow = true;
}

static int agg_new_group(agg_run *g, const em_sql_value *row, const em_sql_value *key)
{
    const sql_plan *p = g->p;
    em_sql_value *gr = rel_add(g->x, g->groups);
    if (gr == NULL || (p->nexprs && em__sql_rel_push(g->x, g->keys, key) < 0))
        return EM_ENOMEM;
    uint32_t w = agg_base(p);
    if (row != NULL)
        memcpy(gr, row, w * sizeof *gr);
    else
        for (uint32_t c = 0; c < w; c++)
            gr[c] = em__sql_null();
    if (p->naggs == 0)
        return 0;
    if (g->groups->n * p->naggs > g->st_cap) {
        size_t nc = g->st_cap ? g->st_cap * 2 : 64;
        while (nc < g->groups->n * p->naggs)
            nc *= 2;
        agg_state *ns = em_realloc(g->st, nc * sizeof *ns);
        if (ns == NULL)
            return oom(g->x);
        g->st = ns;
        g->st_cap = nc;
    }
    agg_state *s = &g->st[(g->groups->n - 1) * p->naggs];
    memset(s, 0, p->naggs * sizeof *s);
    for (uint32_t a = 0; a < p->naggs; a++)
        em_vbuf_init(&s[a].text);
    return 0;
}

static int agg_rows(agg_run *g, const sql_rel *in, em_sql_value *key)
{
    const sql_plan *p = g->p;
    int rc;
    for (size_t i = 0; i < in->n; i++) {
        const em_sql_value *row = rel_row(in, i);
        sql_env env = {.row = row, .outer = g->outer};
        size_t gi = 0;
        if (p->nexprs > 0) {
            for (uint32_t k = 0; k < p->nexprs; k++)
                if ((rc = em__sql_eval(g->x, p->exprs[k], &env, &key[k])) < 0)
                    return rc;
            uint64_t hv = hash_vals(key, p->nexprs);
            int32_t e = hindex_first(&g->h, hv);
            while (e >= 0 && !eq_total(rel_row(g->keys, (size_t)e), key, p->nexprs))
                e = hindex_next(&g->h, e);
            if (e < 0) {
                if ((rc = agg_new_group(g, row, key)) < 0 || (rc = hindex_add(&g->h, hv)) < 0)
                    return oom(g->x);
                e = (int32_t)(g->groups->n - 1);
            }
            gi = (size_t)e;
        } else if (g->groups->n == 0 && (rc = agg_new_group(g, row, NULL)) < 0)
            return rc;
        for (uint32_t a = 0; a < p->naggs; a++)
            if (p->agg_mode == AGG_FINAL)
                agg_merge(p->aggs[a], &g->st[gi * p->naggs + a],
                          row + agg_base(p) + a * AGG_STATE_VALS);
            else if ((rc = agg_step(g->x, p->aggs[a], &g->st[gi * p->naggs + a], &env)) < 0)
                return rc;
    }
    return 0;
}

static int run_agg(sql_exec *x, const sql_plan *p, const sql_env *outer, sql_rel **out)
{
    sql_rel *in;
    int rc;
    if ((rc = em__sql_run(x, p->in, outer, &in)) < 0)
        return rc;
    agg_run g = {.x = x, .p = p, .outer = outer, .groups = rel_new(x, p->width),
                 .keys = rel_new(x, p->nexprs)};
    em_sql_value *key = em_arena_alloc(x->arena, (p->nexprs + 1) * sizeof *key);
    if (g.groups == NULL || g.keys == NULL || key == NULL)
        return oom(x);
    rc = agg_rows(&g, in, key);
    if (rc == 0 && g.groups->n == 0 && p->nexprs == 0)
        rc = agg_new_group(&g, NULL, NULL); /* aggregates over no rows: one row */
    for (size_t gi = 0; gi < g.groups->n; gi++)
        for (uint32_t a = 0; a < p->naggs; a++) {
            agg_state *s = &g.st[gi * p->naggs + a];
            if (p->agg_mode == AGG_PARTIAL)
                agg_state_out(s, &g.groups->v[gi * p->width + p->in->width + a * AGG_STATE_VALS]);
            else if (rc == 0)
                rc = agg_final(x, p->aggs[a], s, &g.groups->v[gi * p->width + agg_base(p) + a]);
            em_vbuf_destroy(&s->text);
            hindex_free(&s->seen);
        }
    hindex_free(&g.h);
    em_free(g.st);
    *out = g.groups;
    return rc;
}

/* ---------------------------------------------------------------- sort, distinct, setops */
typedef struct sort_keys {
    const sql_rel *r;
    const uint32_t *cols;
    const bool *desc;
    uint32_t n;
} sort_keys;

static int row_cmp(const sort_keys *k, size_t a, size_t b)
{
    const em_sql_value *ra = rel_row(k->r, a), *rb = rel_row(k->r, b);
    for (uint32_t i = 0; i < k->n; i++) {
        int c = em__sql_cmp_total(&ra[k->cols[i]], &rb[k->cols[i]]);
        if (c != 0)
            return k->desc && k->desc[i] ? -c : c;
    }
    return 0;
}

/* Stable merge sort of idx[0..n) with tmp as scratch. */
static void merge_sort(const sort_keys *k, size_t *idx, size_t *tmp, size_t n)
{
    if (n < 2)
        return;
    if (n <= 8) { /* insertion sort: stable */
        for (size_t i = 1; i < n; i++) {
            size_t v = idx[i], j = i;
            while (j > 0 && row_cmp(k, idx[j - 1], v) > 0) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = v;
        }
        return;
    }
    size_t h = n / 2;
    merge_sort(k, idx, tmp, h);
    merge_sort(k, idx + h, tmp, n - h);
    size_t i = 0, j = h, o = 0;
    while (i < h && j < n)
        tmp[o++] = row_cmp(k, idx[j], idx[i]) < 0 ? idx[j++] : idx[i++];
    while (i < h)
        tmp[o++] = idx[i++];
    while (j < n)
        tmp[o++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

static int sort_rel(sql_exec *x, sql_rel *in, const sort_keys *k, sql_rel **out)
{
    size_t *idx = em_malloc((in->n + 1) * sizeof *idx), *tmp = em_malloc((in->n + 1) * sizeof *tmp);
    sql_rel *r = rel_new(x, in->width);
    int rc = 0;
    if (idx == NULL || tmp == NULL || r == NULL) {
        rc = oom(x);
        goto out;
    }
    for (size_t i = 0; i < in->n; i++)
        idx[i] = i;
    merge_sort(k, idx, tmp, in->n);
    for (size_t i = 0; i < in->n && rc == 0; i++)
        rc = em__sql_rel_push(x, r, rel_row(in, idx[i]));
    *out = r;
out:
    em_free(idx);
    em_free(tmp);
    return rc;
}

/* Rows of in whose first n columns are distinct (first kept); with `probe`, keeps only rows
 * that are (want=true) or are not (want=false) in probe. */
static int distinct_rows(sql_exec *x, const sql_rel *in, uint32_t n, const sql_rel *probe,
                         bool want, sql_rel **out)
{
    hindex h = {0}, hp = {0};
    sql_rel *r = rel_new(x, in->width);
    int rc = 0;
    if (r == NULL)
        return EM_ENOMEM;
    for (size_t i = 0; probe != NULL && i < probe->n && rc == 0; i++)
        rc = hindex_add(&hp, hash_vals(rel_row(probe, i), n));
    for (size_t i = 0; i < in->n && rc == 0; i++) {
        const em_sql_value *row = rel_row(in, i);
        uint64_t hv = hash_vals(row, n);
        int32_t e = hindex_first(&h, hv);
        while (e >= 0 && !eq_total(rel_row(r, (size_t)e), row, n))
            e = hindex_next(&h, e);
        if (e >= 0)
            continue;
        if (probe != NULL) {
            int32_t pe = hindex_first(&hp, hv);
            while (pe >= 0 && !eq_total(rel_row(probe, (size_t)pe), row, n))
                pe = hindex_next(&hp, pe);
            if ((pe >= 0) != want)
                continue;
        }
        if ((rc = em__sql_rel_push(x, r, row)) == 0)
            rc = hindex_add(&h, hv);
    }
    hindex_free(&h);
    hindex_free(&hp);
    *out = r;
    return rc < 0 ? oom(x) : 0;
}

static int run_setop(sql_exec *x, const sql_plan *p, const sql_env *outer, sql_rel **out)
{
    sql_rel *L, *R, *r;
    int rc;
    if ((rc = em__sql_run(x, p->in, outer, &L)) < 0 || (rc = em__sql_run(x, p->right, outer, &R)) < 0)
        return rc;
    if (p->setop == SET_UNION || p->setop == SET_UNION_ALL) {
        sql_rel *u = rel_new(x, p->width);
        if (u == NULL)
            return EM_ENOMEM;
        for (size_t i = 0; i < L->n; i++)
            if (em__sql_rel_push(x, u, rel_row(L, i)) < 0)
                return EM_ENOMEM;
        for (size_t i = 0; i < R->n; i++)
            if (em__sql_rel_push(x, u, rel_row(R, i)) < 0)
                return EM_ENOMEM;
        if (p->setop == SET_UNION_ALL) {
            *out = u;
            return 0;
        }
        rc = distinct_rows(x, u, p->width, NULL, true, &r);
    } else
        rc = distinct_rows(x, L, p->width, R, p->setop == SET_INTERSECT, &r);
    if (rc < 0)
        return rc;
    /* SQLite returns these results in sorted order; so do we (nosort tests rely on it) */
    uint32_t *cols = em_arena_alloc(x->arena, (p->width + 1) * sizeof *cols);
    if (cols == NULL)
        return oom(x);
    for (uint32_t c = 0; c < p->width; c++)
        cols[c] = c;
    sort_keys k = {.r = r, .cols = cols, .desc = NULL, .n = p->width};
    return sort_rel(x, r, &k, out);
}

/* ---------------------------------------------------------------- the rest */
static int run_project(sql_exec *x, const sql_plan *p, const sql_env *outer, sql_rel **out)
{
    sql_rel *in, *r;
    int rc;
    if ((rc = em__sql_run(x, p->in, outer, &in)) < 0)
        return rc;
    if ((r = rel_new(x, p->width)) == NULL)
        return EM_ENOMEM;
    for (size_t i = 0; i < in->n; i++) {
        sql_env env = {.row = rel_row(in, i), .outer = outer};
        em_sql_value *row = rel_add(x, r);
        if (row == NULL)
            return EM_ENOMEM;
        for (uint32_t c = 0; c < p->nexprs; c++)
            if ((rc = em__sql_eval(x, p->exprs[c], &env, &row[c])) < 0)
                return rc;
    }
    *out = r;
    return 0;
}

static int run_filter(sql_exec *x, const sql_plan *p, const sql_env *outer, sql_rel **out)
{
    sql_rel *in, *r;
    int rc;
    if ((rc = em__sql_run(x, p->in, outer, &in)) < 0)
        return rc;
    if ((r = rel_new(x, in->width)) == NULL)
        return EM_ENOMEM;
    for (size_t i = 0; i < in->n; i++) {
        sql_env env = {.row = rel_row(in, i), .outer = outer};
        em_sql_value t;
        if ((rc = em__sql_eval(x, p->pred, &env, &t)) < 0)
            return rc;
        if (em__sql_truth(&t) == 1 && (rc = em__sql_rel_push(x, r, env.row)) < 0)
            return rc;
    }
    *out = r;
    return 0;
}

static int limit_value(sql_exec *x, const sql_expr *e, const sql_env *outer, int64_t *v)
{
    em_sql_value t, n;
    int rc = em__sql_eval(x, e, outer, &t);
    if (rc < 0)
        return rc;
    if (em__sql_cast(x->arena, &t, EM_SQL_INT, &n) < 0)
        return oom(x);
    if (t.type == EM_SQL_NULL || (t.type == EM_SQL_TEXT && n.u.i == 0 && t.len > 0 &&
                                  t.u.s[0] != '0'))
        return em__sql_diag(x->diag, EM_EINVAL, e->pos, "LIMIT/OFFSET must be an integer");
    *v = n.u.i;
    return 0;
}

static int run_limit_trim(sql_exec *x, const sql_plan *p, const sql_env *outer, sql_rel **out)
{
    sql_rel *in, *r;
    int rc;
    int64_t lim = -1, off = 0;
    if ((rc = em__sql_run(x, p->in, outer, &in)) < 0)
        return rc;
    if ((r = rel_new(x, p->width)) == NULL)
        return EM_ENOMEM;
    if (p->kind == P_LIMIT) {
        if ((p->limit && (rc = limit_value(x, p->limit, outer, &lim)) < 0) ||
            (p->offset && (rc = limit_value(x, p->offset, outer, &off)) < 0))
            return rc;
        if (off < 0)
            off = 0;
    }
    for (size_t i = (size_t)off; i < in->n && (lim < 0 || i < (size_t)off + (size_t)lim); i++) {
        em_sql_value *row = rel_add(x, r);
        if (row == NULL)
            return EM_ENOMEM;
        memcpy(row, rel_row(in, i), p->width * sizeof *row);
    }
    *out = r;
    return 0;
}

int em__sql_run(sql_exec *x, const sql_plan *p, const sql_env *outer, sql_rel **out)
{
    sql_rel *in;
    int rc;
    switch (p->kind) {
    case P_ONEROW: {
        sql_rel *r = rel_new(x, p->width);
        em_sql_value *row;
        if (r == NULL || (row = rel_add(x, r)) == NULL)
            return EM_ENOMEM;
        for (uint32_t c = 0; c < p->width; c++)
            row[c] = em__sql_null();
        *out = r;
        return 0;
    }
    case P_SCAN:
    case P_SUBQ: return run_leaf(x, p, outer, out);
    case P_FILTER: return run_filter(x, p, outer, out);
    case P_JOIN: return run_join(x, p, outer, out);
    case P_AGG: return run_agg(x, p, outer, out);
    case P_PROJECT: return run_project(x, p, outer, out);
    case P_DISTINCT:
        if ((rc = em__sql_run(x, p->in, outer, &in)) < 0)
            return rc;
        return distinct_rows(x, in, p->nkeep, NULL, true, out);
    case P_SORT: {
        if ((rc = em__sql_run(x, p->in, outer, &in)) < 0)
            return rc;
        sort_keys k = {.r = in, .cols = p->sort_cols, .desc = p->sort_desc, .n = p->nsort};
        return sort_rel(x, in, &k, out);
    }
    case P_LIMIT:
    case P_TRIM: return run_limit_trim(x, p, outer, out);
    case P_SETOP: return run_setop(x, p, outer, out);
    case P_REL: *out = p->rel; return 0;
    default: return em__sql_diag(x->diag, EM_EPLAN, -1, "unknown plan node %d", p->kind);
    }
}
