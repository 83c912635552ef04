/* sql/bridge_task.c - the bridge's bytes and tasks: the encoding's binary form (task
 * contexts), the task-context header, and the task functions that count TEXT values
 * (sql.ml.values) and turn result rows into labeled points (sql.ml.encode).
 *
 * FORMAT of an encoding (little-endian; em_sql_ml_encoding_encode/_decode):
 *   4   magic "SQML"
 *   4   version = 1
 *   1   labeled, 1 sparse, 1 nulls (em_sql_ml_nulls), 1 drop_last
 *   4   dim
 *   4   nfeat
 *   then the label column (when labeled) and nfeat feature columns, each:
 *   4   name length L, L bytes
 *   1   type (em_sql_type), 1 text (0/1)
 *   4   nvals (0 unless text), then per value: 4 length, bytes
 * dim must equal the sum of the feature widths (1, or nvals for a TEXT column, nvals - 1
 * with drop_last: the least frequent value gets no feature). The bytes
 * come from a plan: every length is checked against what is left before use. */
#include <math.h>
#include <string.h>

#include "sql/bridge_int.h"

#define SML_MAGIC 0x4c4d5153u /* "SQML" */
#define SML_VERSION 1

/* ---------------------------------------------------------------- values */

int em__sml_text(const em_sql_value *v, em_vbuf *b, const uint8_t **p, size_t *n)
{
    if (v->type == EM_SQL_TEXT) {
        *p = (const uint8_t *)v->u.s;
        *n = v->len;
        return 0;
    }
    em_vbuf_clear(b);
    if (em_sql_value_format(b, v) < 0)
        return EM_ENOMEM;
    *p = b->data;
    *n = b->len;
    return 0;
}

bool em__sml_number(const em_sql_value *v, double *out)
{
    switch (v->type) {
    case EM_SQL_BOOL:
    case EM_SQL_INT:
    case EM_SQL_DATE: *out = (double)v->u.i; return true;
    case EM_SQL_DOUBLE: *out = v->u.d; return true;
    default: return false;
    }
}

bool em__sml_is_test(uint64_t idx, double fraction, uint64_t seed)
{
    uint8_t b[8];
    em_store_le64(b, idx);
    /* 53 high bits of the hash as a uniform number in [0, 1) */
    double u = (double)(em_hash64(b, 8, seed) >> 11) * 0x1p-53;
    return u < fraction;
}

/* ---------------------------------------------------------------- lookup */

static int cmp_val(const sml_col *c, uint32_t a, em_slice key)
{
    return em_slice_cmp(em_slice_make(c->vals[a], c->lens[a]), key);
}

int em__sml_col_index(sml_col *c)
{
    em_free(c->sorted);
    c->sorted = em_malloc(((size_t)c->nvals + 1) * sizeof *c->sorted);
    if (!c->sorted)
        return EM_ENOMEM;
    for (uint32_t i = 0; i < c->nvals; i++)
        c->sorted[i] = i;
    /* A shell sort rather than qsort, which has no context argument (and tasks sort on
     * several threads at once, so a global comparison context would race). */
    for (uint32_t gap = c->nvals / 2 > 0 ? c->nvals / 2 : 1;; gap = gap / 2 ? gap / 2 : 0) {
        for (uint32_t i = gap; i < c->nvals; i++) {
            uint32_t x = c->sorted[i], j = i;
            em_slice kx = em_slice_make(c->vals[x], c->lens[x]);
            while (j >= gap && cmp_val(c, c->sorted[j - gap], kx) > 0) {
                c->sorted[j] = c->sorted[j - gap];
                j -= gap;
            }
            c->sorted[j] = x;
        }
        if (gap == 1)
            break;
    }
    return 0;
}

int64_t em__sml_lookup(const sml_col *c, const uint8_t *p, size_t n)
{
    em_slice key = em_slice_make(p, n);
    uint32_t lo = 0, hi = c->nvals;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int r = cmp_val(c, c->sorted[mid], key);
        if (r == 0)
            return c->sorted[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

void em__sml_col_destroy(sml_col *c)
{
    for (uint32_t i = 0; c->vals && i < c->nvals; i++)
        em_free(c->vals[i]);
    em_free(c->vals);
    em_free(c->lens);
    em_free(c->sorted);
    em_free(c->name);
    memset(c, 0, sizeof *c);
}

void em_sql_ml_encoding_free(em_sql_ml_encoding *e)
{
    if (!e)
        return;
    em__sml_col_destroy(&e->label);
    for (uint32_t i = 0; e->feat && i < e->nfeat; i++)
        em__sml_col_destroy(&e->feat[i]);
    em_free(e->feat);
    for (uint32_t i = 0; e->fnames && i < e->dim; i++)
        em_free(e->fnames[i]);
    em_free(e->fnames);
    em_free(e);
}

int em__sml_finish(em_sql_ml_encoding *e)
{
    uint32_t at = 0;
    for (uint32_t i = 0; i < e->nfeat; i++) {
        sml_col *c = &e->feat[i];
        c->first = at;
        c->width = !c->text ? 1 : c->nvals - (e->drop_last && c->nvals > 0);
        at += c->width;
    }
    e->dim = at;
    e->fnames = em_calloc((size_t)at + 1, sizeof *e->fnames);
    if (!e->fnames)
        return EM_ENOMEM;
    for (uint32_t i = 0; i < e->nfeat; i++) {
        const sml_col *c = &e->feat[i];
        for (uint32_t k = 0; k < c->width; k++)
            e->fnames[c->first + k] = c->text ? em_xasprintf("%s=%s", c->name, c->vals[k])
                                              : em_xstrdup(c->name);
    }
    return 0;
}

/* ---------------------------------------------------------------- encoding bytes */

static int put_bytes(em_vbuf *b, const void *p, uint32_t n)
{
    return em_vbuf_append_u32le(b, n) < 0 || em_vbuf_append(b, p, n) < 0 ? EM_ENOMEM : 0;
}

static int put_col(em_vbuf *b, const sml_col *c)
{
    uint8_t tt[2] = {c->type, c->text};
    if (put_bytes(b, c->name, (uint32_t)strlen(c->name)) < 0 || em_vbuf_append(b, tt, 2) < 0 ||
        em_vbuf_append_u32le(b, c->text ? c->nvals : 0) < 0)
        return EM_ENOMEM;
    for (uint32_t i = 0; c->text && i < c->nvals; i++)
        if (put_bytes(b, c->vals[i], c->lens[i]) < 0)
            return EM_ENOMEM;
    return 0;
}

int em_sql_ml_encoding_encode(const em_sql_ml_encoding *e, em_vbuf *out)
{
    uint8_t h[12] = {e->labeled, e->sparse, e->nulls, e->drop_last};
    if (em_vbuf_append_u32le(out, SML_MAGIC) < 0 || em_vbuf_append_u32le(out, SML_VERSION) < 0)
        return EM_ENOMEM;
    em_store_le32(h + 4, e->dim);
    em_store_le32(h + 8, e->nfeat);
    if (em_vbuf_append(out, h, sizeof h) < 0)
        return EM_ENOMEM;
    if (e->labeled && put_col(out, &e->label) < 0)
        return EM_ENOMEM;
    for (uint32_t i = 0; i < e->nfeat; i++)
        if (put_col(out, &e->feat[i]) < 0)
            return EM_ENOMEM;
    return 0;
}

typedef struct rd {
    const uint8_t *p;
    size_t n, off;
    em_err *err;
} rd;

static int rd_need(rd *r, size_t k, const char *what)
{
    if (r->n - r->off < k)
        return em_err_set(r->err, EM_ECORRUPT, "sql.ml encoding: %s truncated at byte %zu", what,
                          r->off);
    return 0;
}

static int rd_u32(rd *r, uint32_t *v, const char *what)
{
    if (rd_need(r, 4, what) < 0)
        return EM_ECORRUPT;
    *v = em_load_le32(r->p + r->off);
    r->off += 4;
    return 0;
}

/* A length-prefixed string as a new NUL-terminated copy. */
static int rd_str(rd *r, char **s, uint32_t *len, const char *what)
{
    uint32_t n;
    if (rd_u32(r, &n, what) < 0 || rd_need(r, n, what) < 0)
        return EM_ECORRUPT;
    if (!(*s = em_malloc((size_t)n + 1)))
        return em_err_set(r->err, EM_ENOMEM, "sql.ml encoding: out of memory");
    memcpy(*s, r->p + r->off, n);
    (*s)[n] = 0;
    r->off += n;
    if (len)
        *len = n;
    return 0;
}

static int rd_col(rd *r, sml_col *c)
{
    uint32_t nv;
    if (rd_str(r, &c->name, NULL, "column name") < 0 || rd_need(r, 2, "column type") < 0)
        return r->err->code;
    c->type = r->p[r->off];
    c->text = r->p[r->off + 1] != 0;
    r->off += 2;
    if (c->type > EM_SQL_TEXT || r->p[r->off - 1] > 1)
        return em_err_set(r->err, EM_ECORRUPT, "sql.ml encoding: column '%s': bad type bytes",
                          c->name);
    if (rd_u32(r, &nv, "value count") < 0)
        return EM_ECORRUPT;
    if (nv > (r->n - r->off) / 4 || (nv && !c->text))
        return em_err_set(r->err, EM_ECORRUPT, "sql.ml encoding: column '%s': %u values",
                          c->name, nv);
    c->vals = em_calloc((size_t)nv + 1, sizeof *c->vals);
    c->lens = em_calloc((size_t)nv + 1, sizeof *c->lens);
    if (!c->vals || !c->lens)
        return em_err_set(r->err, EM_ENOMEM, "sql.ml encoding: out of memory");
    for (; c->nvals < nv; c->nvals++)
        if (rd_str(r, &c->vals[c->nvals], &c->lens[c->nvals], "value") < 0)
            return r->err->code;
    if (em__sml_col_index(c) < 0)
        return em_err_set(r->err, EM_ENOMEM, "sql.ml encoding: out of memory");
    return 0;
}

int em_sql_ml_encoding_decode(const uint8_t *p, size_t n, em_sql_ml_encoding **out,
                              em_err *err)
{
    rd r = {p, n, 0, err};
    uint32_t magic, version, dim;
    em_sql_ml_encoding *e = em_calloc(1, sizeof *e);
    if (!e)
        return em_err_set(err, EM_ENOMEM, "sql.ml encoding: out of memory");
    int rc = EM_ECORRUPT;
    if (rd_u32(&r, &magic, "magic") < 0 || rd_u32(&r, &version, "version") < 0)
        goto fail;
    if (magic != SML_MAGIC || version != SML_VERSION) {
        em_err_set(err, EM_ECORRUPT, "sql.ml encoding: bad magic or version %u", version);
        goto fail;
    }
    if (rd_need(&r, 12, "header") < 0)
        goto fail;
    e->labeled = p[r.off] != 0;
    e->sparse = p[r.off + 1] != 0;
    e->nulls = p[r.off + 2];
    uint8_t drop = p[r.off + 3];
    e->drop_last = drop != 0;
    dim = em_load_le32(p + r.off + 4);
    e->nfeat = em_load_le32(p + r.off + 8);
    r.off += 12;
    if (e->nulls > EM_SQL_ML_NULL_NAN || drop > 1 || e->nfeat > (n - r.off) / 10) {
        em_err_set(err, EM_ECORRUPT, "sql.ml encoding: %u features or nulls %u", e->nfeat,
                   e->nulls);
        goto fail;
    }
    if (e->labeled && (rc = rd_col(&r, &e->label)) < 0)
        goto fail;
    if (!(e->feat = em_calloc((size_t)e->nfeat + 1, sizeof *e->feat))) {
        rc = em_err_set(err, EM_ENOMEM, "sql.ml encoding: out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < e->nfeat; i++)
        if ((rc = rd_col(&r, &e->feat[i])) < 0) {
            e->nfeat = i + 1;   /* free what was read */
            goto fail;
        }
    uint64_t sum = 0;
    for (uint32_t i = 0; i < e->nfeat; i++)
        sum += !e->feat[i].text ? 1 : e->feat[i].nvals - (e->drop_last && e->feat[i].nvals);
    if (sum != dim || r.off != n) {
        rc = em_err_set(err, EM_ECORRUPT, "sql.ml encoding: dim %u for %llu features, %zu "
                        "bytes left", dim, (unsigned long long)sum, n - r.off);
        goto fail;
    }
    if ((rc = em__sml_finish(e)) < 0) {
        em_err_set(err, EM_ENOMEM, "sql.ml encoding: out of memory");
        goto fail;
    }
    *out = e;
    return 0;
fail:
    em_sql_ml_encoding_free(e);
    return rc < 0 ? rc : EM_ECORRUPT;
}

/* ---------------------------------------------------------------- task header */

int em__sml_task_encode(const sml_task *t, const uint32_t *cols, em_vbuf *out)
{
    uint8_t h[36] = {0};
    uint64_t fb;
    em_store_le32(h, t->ncols);
    h[4] = t->side;
    memcpy(&fb, &t->fraction, 8);
    em_store_le64(h + 12, fb);
    em_store_le64(h + 20, t->seed);
    em_store_le32(h + 28, t->acc);
    em_store_le32(h + 32, t->n);
    if (em_vbuf_append(out, h, sizeof h) < 0)
        return EM_ENOMEM;
    for (uint32_t i = 0; i < t->n; i++)
        if (em_vbuf_append_u32le(out, cols[i]) < 0)
            return EM_ENOMEM;
    return 0;
}

int em__sml_task_decode(em_slice blob, sml_task *t, em_err *err)
{
    if (blob.n < 36)
        return em_err_set(err, EM_ECORRUPT, "sql.ml task context: %zu bytes", blob.n);
    uint64_t fb = em_load_le64(blob.p + 12);
    t->ncols = em_load_le32(blob.p);
    t->side = blob.p[4];
    memcpy(&t->fraction, &fb, 8);
    t->seed = em_load_le64(blob.p + 20);
    t->acc = em_load_le32(blob.p + 28);
    t->n = em_load_le32(blob.p + 32);
    if (t->side > EM_SQL_ML_TEST || t->n > (blob.n - 36) / 4 || t->ncols > (1u << 20))
        return em_err_set(err, EM_ECORRUPT, "sql.ml task context: side %u, %u columns",
                          t->side, t->n);
    t->cols = blob.p + 36;
    t->rest = em_slice_make(blob.p + 36 + (size_t)4 * t->n, blob.n - 36 - (size_t)4 * t->n);
    for (uint32_t i = 0; i < t->n; i++)
        if (em_load_le32(t->cols + 4 * (size_t)i) >= t->ncols)
            return em_err_set(err, EM_ECORRUPT, "sql.ml task context: column %u of %u",
                              em_load_le32(t->cols + 4 * (size_t)i), t->ncols);
    return 0;
}

/* Decodes a numbered row (KV: row bytes, em_enc_i64 number); false when it is on the
 * other side of the split. */
static int row_of(const sml_task *t, const em_rec *in, em_sql_value *vals, uint64_t *idx,
                  em_err *err)
{
    size_t used;
    if (in->val.n != 8)
        return em_err_set(err, EM_ECORRUPT, "sql.ml: a row without its number");
    *idx = (uint64_t)em_dec_i64(in->val.p);
    if (t->side != EM_SQL_ML_ALL &&
        em__sml_is_test(*idx, t->fraction, t->seed) != (t->side == EM_SQL_ML_TEST))
        return 0;
    int rc = em_sql_row_decode(in->key.p, in->key.n, vals, t->ncols, &used, err);
    if (rc < 0)
        return em_err_prefix(err, "sql.ml: result row %llu", (unsigned long long)*idx + 1), rc;
    return 1;
}

/* ---------------------------------------------------------------- sql.ml.values */

/* Emits (u32 position in the column list, value text) for every non-NULL value of the
 * listed TEXT columns of each row (counted by count_by_value on the driver). */
static int fn_values(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    sml_task t;
    em_rec r;
    uint64_t idx;
    int rc = em__sml_task_decode(c->blob, &t, err);
    if (rc < 0)
        return rc;
    (void)index;
    em_sql_value *vals = em_malloc(((size_t)t.ncols + 1) * sizeof *vals);
    em_vbuf txt, rec;
    em_vbuf_init(&txt);
    em_vbuf_init(&rec);
    if (!vals)
        return em_err_set(err, EM_ENOMEM, "sql.ml.values: out of memory");
    while ((rc = em_iter_next(in, &r, err)) > 0) {
        if ((rc = row_of(&t, &r, vals, &idx, err)) <= 0) {
            if (rc < 0)
                break;
            continue;
        }
        for (uint32_t k = 0; k < t.n && rc >= 0; k++) {
            const em_sql_value *v = &vals[em_load_le32(t.cols + 4 * (size_t)k)];
            const uint8_t *p;
            size_t n;
            if (v->type == EM_SQL_NULL)
                continue;
            em_vbuf_clear(&rec);
            if (em__sml_text(v, &txt, &p, &n) < 0 || em_vbuf_append_u32le(&rec, k) < 0 ||
                em_vbuf_append(&rec, p, n) < 0)
                rc = em_err_set(err, EM_ENOMEM, "sql.ml.values: out of memory");
            else
                rc = em_emit_val(out, em_slice_make(rec.data, rec.len), err);
        }
        if (rc < 0)
            break;
    }
    em_vbuf_destroy(&txt);
    em_vbuf_destroy(&rec);
    em_free(vals);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- sql.ml.encode */

typedef struct enc_state {
    const sml_task *t;
    const em_sql_ml_encoding *e;
    em_sql_value *vals;
    double *x;             /* label + dim values (dense) */
    uint32_t *idx;         /* sparse indexes */
    double *val;           /* sparse values */
    em_vbuf txt, rec;
} enc_state;

static int null_error(const char *col, uint64_t idx, em_err *err)
{
    return em_err_set(err, EM_EINVAL,
                      "column '%s': NULL in result row %llu (the NULL policy is error: "
                      "skip the row or keep NaN to accept NULLs)",
                      col, (unsigned long long)idx + 1);
}

/* The label of the row into *y: 1 done, 0 skip the row, <0 error. */
static int label_of(enc_state *s, const em_sql_value *v, uint64_t idx, double *y, em_err *err)
{
    const sml_col *c = &s->e->label;
    if (v->type == EM_SQL_NULL)
        return s->e->nulls == EM_SQL_ML_NULL_SKIP ? 0 : em_err_set(err, EM_EINVAL,
                   "label column '%s': NULL in result row %llu (skip NULL rows to accept it)",
                   c->name, (unsigned long long)idx + 1);
    if (c->text) {
        const uint8_t *p;
        size_t n;
        if (em__sml_text(v, &s->txt, &p, &n) < 0)
            return em_err_set(err, EM_ENOMEM, "sql.ml.encode: out of memory");
        int64_t k = em__sml_lookup(c, p, n);
        if (k < 0)
            return em_err_set(err, EM_EINVAL, "label column '%s': value '%.*s' in result row "
                              "%llu was not seen when fitting", c->name, (int)(n > 64 ? 64 : n),
                              (const char *)p, (unsigned long long)idx + 1);
        *y = (double)k;
    } else if (!em__sml_number(v, y))
        return em_err_set(err, EM_EINVAL, "label column '%s': text '%.*s' in result row %llu "
                          "of a numeric column", c->name, (int)(v->len > 64 ? 64 : v->len),
                          v->u.s, (unsigned long long)idx + 1);
    return 1;
}

/* Fills s->x[1..dim] from the features: 1 done, 0 skip the row, <0 error. */
static int features_of(enc_state *s, uint64_t idx, em_err *err)
{
    const em_sql_ml_encoding *e = s->e;
    double *x = s->x + 1;
    memset(x, 0, (size_t)e->dim * sizeof *x);
    for (uint32_t i = 0; i < e->nfeat; i++) {
        const sml_col *c = &e->feat[i];
        uint32_t col = em_load_le32(s->t->cols + 4 * ((size_t)i + e->labeled));
        const em_sql_value *v = &s->vals[col];
        if (v->type == EM_SQL_NULL) {
            if (e->nulls == EM_SQL_ML_NULL_SKIP)
                return 0;
            if (e->nulls == EM_SQL_ML_NULL_ERROR)
                return null_error(c->name, idx, err);
            for (uint32_t k = 0; k < c->width; k++)
                x[c->first + k] = NAN;
        } else if (c->text) {
            const uint8_t *p;
            size_t n;
            if (em__sml_text(v, &s->txt, &p, &n) < 0)
                return em_err_set(err, EM_ENOMEM, "sql.ml.encode: out of memory");
            int64_t k = em__sml_lookup(c, p, n);
            if (k >= 0 && k < c->width) /* unseen (or dropped): none of the column's */
                x[c->first + (uint32_t)k] = 1;
        } else if (!em__sml_number(v, &x[c->first]))
            return em_err_set(err, EM_EINVAL, "column '%s': text '%.*s' in result row %llu of "
                              "a numeric column", c->name, (int)(v->len > 64 ? 64 : v->len),
                              v->u.s, (unsigned long long)idx + 1);
    }
    return 1;
}

/* Emits the row in the encoding's layout. */
static int emit_point(enc_state *s, em_emitter *out, em_err *err)
{
    const em_sql_ml_encoding *e = s->e;
    if (!e->sparse) {
        const double *p = e->labeled ? s->x : s->x + 1;
        return em_emit_val(out, em_slice_make(p, 8 * ((size_t)e->dim + e->labeled)), err);
    }
    uint32_t nnz = 0;
    for (uint32_t j = 0; j < e->dim; j++)
        if (s->x[1 + j] != 0) {
            s->idx[nnz] = j;
            s->val[nnz++] = s->x[1 + j];
        }
    em_vbuf_clear(&s->rec);
    if ((e->labeled && em_vbuf_append(&s->rec, &s->x[0], 8) < 0) ||
        em_ml_sparse_encode(nnz, s->idx, s->val, &s->rec) < 0)
        return em_err_set(err, EM_ENOMEM, "sql.ml.encode: out of memory");
    return em_emit_val(out, em_slice_make(s->rec.data, s->rec.len), err);
}

static int fn_encode(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    sml_task t;
    em_sql_ml_encoding *e = NULL;
    enc_state s = {.t = &t};
    em_rec r;
    uint64_t idx, skipped = 0;
    int rc = em__sml_task_decode(c->blob, &t, err);
    (void)index;
    if (rc < 0 || (rc = em_sql_ml_encoding_decode(t.rest.p, t.rest.n, &e, err)) < 0)
        return rc;
    if (t.n != e->nfeat + e->labeled) {
        em_sql_ml_encoding_free(e);
        return em_err_set(err, EM_ECORRUPT, "sql.ml.encode: %u columns for %u", t.n,
                          e->nfeat + e->labeled);
    }
    s.e = e;
    s.vals = em_malloc(((size_t)t.ncols + 1) * sizeof *s.vals);
    s.x = em_malloc(((size_t)e->dim + 1) * sizeof *s.x);
    s.idx = em_malloc(((size_t)e->dim + 1) * sizeof *s.idx);
    s.val = em_malloc(((size_t)e->dim + 1) * sizeof *s.val);
    em_vbuf_init(&s.txt);
    em_vbuf_init(&s.rec);
    if (!s.vals || !s.x || !s.idx || !s.val)
        rc = em_err_set(err, EM_ENOMEM, "sql.ml.encode: out of memory");
    while (rc >= 0 && (rc = em_iter_next(in, &r, err)) > 0) {
        if ((rc = row_of(&t, &r, s.vals, &idx, err)) <= 0)
            continue;
        s.x[0] = 0;
        if (e->labeled) {
            uint32_t lc = em_load_le32(t.cols);
            rc = label_of(&s, &s.vals[lc], idx, &s.x[0], err);
        }
        if (rc > 0)
            rc = features_of(&s, idx, err);
        if (rc > 0)
            rc = emit_point(&s, out, err);
        else if (rc == 0)
            skipped++;
    }
    if (rc >= 0 && t.acc && skipped)
        em_task_acc_add_i64(c->task, t.acc, (int64_t)skipped);
    em_vbuf_destroy(&s.txt);
    em_vbuf_destroy(&s.rec);
    em_free(s.vals);
    em_free(s.x);
    em_free(s.idx);
    em_free(s.val);
    em_sql_ml_encoding_free(e);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- registration */

static const em_fn_entry bridge_fns[] = {
    {"sql.ml.values", EM_FN_PARTITION, EM_FN(fn_values)},
    {"sql.ml.encode", EM_FN_PARTITION, EM_FN(fn_encode)},
};

int em_sql_ml_register(void)
{
    return em_fn_register_table(bridge_fns, sizeof bridge_fns / sizeof bridge_fns[0]);
}
