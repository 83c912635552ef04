/* sql/serial.c - stage plans as bytes: the driver encodes the part of a logical plan that
 * one distributed stage runs (sql/exec_dist.c) into the context blob of a task function,
 * and executors decode it (sql/dist_fns.c) and run it with the local executor over their
 * partition's rows.
 *
 * FORMAT (little-endian). A plan node:
 *   u8 kind, u8 join, u8 setop, u8 agg_mode, u32 width, off, slice, nkeep, input,
 *   u32 nslices then nslices x (u32 off, u32 len),
 *   u32 nsort then nsort x (u32 col, u8 desc),
 *   expr pred, u32 nkeys then 2 x nkeys exprs (left, right), u32 nexprs then exprs,
 *   u32 naggs then exprs, expr limit, expr offset, u8 has_in [node], u8 has_right [node].
 * An expression: u8 0 (absent) or u8 1, then u8 kind, op, neg, distinct, cast_type,
 *   u32 pos, i32 col, value (one value in the row codec; E_LIT), exprs a, b, c,
 *   u32 nargs then exprs, and for subqueries (run once on the driver before encoding) u32
 *   width, u32 nrows, then the rows in the row codec.
 * Plans hold only what runs on rows: no table (scans become P_SUBQ over an input), no
 * correlated subquery. The decoder takes untrusted bytes: every count is checked against the
 * bytes left, nesting is bounded, and every column a node reads is checked against the width
 * of the row it reads (tests/fuzz/fuzz_sql_stage.c). */
#include <string.h>

#include "sql/sql_int.h"

#define MAX_DEPTH 256

/* ---------------------------------------------------------------- encoding */
static int put_u8(em_vbuf *b, uint8_t v) { return em_vbuf_append(b, &v, 1); }

/* Whether e can run on an executor: no correlated subquery, no unbound name. */
bool em__sql_expr_portable(const sql_expr *e)
{
    if (e == NULL)
        return true;
    switch (e->kind) {
    case E_NAME:
    case E_STAR: return false;
    case E_COL:
        if (e->level != 0)
            return false;
        break;
    case E_INSUB:
    case E_EXISTS:
    case E_SUBQ:
        if (e->correlated)
            return false;
        break;
    default: break;
    }
    if (!em__sql_expr_portable(e->a) || !em__sql_expr_portable(e->b) ||
        !em__sql_expr_portable(e->c))
        return false;
    for (uint32_t i = 0; i < e->nargs; i++)
        if (!em__sql_expr_portable(e->args[i]))
            return false;
    return true;
}

static int put_rel(em_vbuf *b, const sql_rel *r)
{
    int rc = em_vbuf_append_u32le(b, r->width);
    if (rc == 0)
        rc = em_vbuf_append_u32le(b, (uint32_t)r->n);
    for (size_t i = 0; i < r->n && rc == 0; i++)
        rc = em_sql_row_encode(b, &r->v[i * r->width], r->width);
    return rc;
}

static int put_expr(sql_exec *x, em_vbuf *b, const sql_expr *e)
{
    int rc;
    if (e == NULL)
        return put_u8(b, 0);
    uint8_t hdr[6] = {1, e->kind, e->op, e->neg, e->distinct, e->cast_type};
    if ((rc = em_vbuf_append(b, hdr, sizeof hdr)) < 0 ||
        (rc = em_vbuf_append_u32le(b, e->pos)) < 0 ||
        (rc = em_vbuf_append_u32le(b, (uint32_t)e->col)) < 0 ||
        (rc = em_sql_row_encode(b, e->kind == E_LIT ? &e->v : &(em_sql_value){0}, 1)) < 0 ||
        (rc = put_expr(x, b, e->a)) < 0 || (rc = put_expr(x, b, e->b)) < 0 ||
        (rc = put_expr(x, b, e->c)) < 0 || (rc = em_vbuf_append_u32le(b, e->nargs)) < 0)
        return rc;
    for (uint32_t i = 0; i < e->nargs; i++)
        if ((rc = put_expr(x, b, e->args[i])) < 0)
            return rc;
    if (e->kind == E_INSUB || e->kind == E_EXISTS || e->kind == E_SUBQ) {
        sql_expr *m = (sql_expr *)e; /* the cache is the node's mutable part */
        if (!m->cached) {
            sql_rel *rel;
            if ((rc = em__sql_run(x, m->plan, NULL, &rel)) < 0)
                return rc;
            m->cache_rel = rel;
            m->cached = true;
        }
        return put_rel(b, m->cache_rel);
    }
    return 0;
}

static int put_exprs(sql_exec *x, em_vbuf *b, sql_expr *const *es, uint32_t n)
{
    int rc = em_vbuf_append_u32le(b, n);
    for (uint32_t i = 0; i < n && rc == 0; i++)
        rc = put_expr(x, b, es[i]);
    return rc;
}

int em__sql_plan_encode(sql_exec *x, const sql_plan *p, em_vbuf *b)
{
    uint8_t hdr[4] = {p->kind, p->join, p->setop, p->agg_mode};
    uint32_t u[5] = {p->width, p->off, p->slice, p->nkeep, p->input};
    int rc = em_vbuf_append(b, hdr, 4);
    for (int i = 0; i < 5 && rc == 0; i++)
        rc = em_vbuf_append_u32le(b, u[i]);
    if (rc == 0)
        rc = em_vbuf_append_u32le(b, p->nslices);
    for (uint32_t i = 0; i < p->nslices && rc == 0; i++)
        if ((rc = em_vbuf_append_u32le(b, p->slice_off[i])) == 0)
            rc = em_vbuf_append_u32le(b, p->slice_len[i]);
    if (rc == 0)
        rc = em_vbuf_append_u32le(b, p->nsort);
    for (uint32_t i = 0; i < p->nsort && rc == 0; i++)
        if ((rc = em_vbuf_append_u32le(b, p->sort_cols[i])) == 0)
            rc = put_u8(b, p->sort_desc ? p->sort_desc[i] : 0);
    if (rc == 0 && (rc = put_expr(x, b, p->pred)) == 0 &&
        (rc = em_vbuf_append_u32le(b, p->nkeys)) == 0)
        for (uint32_t i = 0; i < p->nkeys && rc == 0; i++)
            if ((rc = put_expr(x, b, p->lkeys[i])) == 0)
                rc = put_expr(x, b, p->rkeys[i]);
    if (rc == 0 && (rc = put_exprs(x, b, p->exprs, p->nexprs)) == 0 &&
        (rc = put_exprs(x, b, p->aggs, p->naggs)) == 0 && (rc = put_expr(x, b, p->limit)) == 0)
        rc = put_expr(x, b, p->offset);
    if (rc == 0 && (rc = put_u8(b, p->in != NULL)) == 0 && p->in)
        rc = em__sql_plan_encode(x, p->in, b);
    if (rc == 0 && (rc = put_u8(b, p->right != NULL)) == 0 && p->right)
        rc = em__sql_plan_encode(x, p->right, b);
    return rc;
}

/* ---------------------------------------------------------------- decoding */
typedef struct rd {
    const uint8_t *p;
    size_t n, off;
    em_arena *a;
    em_err *err;
    int depth;
} rd;

static int bad(rd *r, const char *what)
{
    return em_err_set(r->err, EM_ECORRUPT, "sql stage plan: %s at byte %zu", what, r->off);
}

static int get_u8(rd *r, uint8_t *v)
{
    *v = 0;   /* written on every path: -O2's -Wmaybe-uninitialized in the callers */
    if (r->n - r->off < 1)
        return bad(r, "truncated");
    *v = r->p[r->off++];
    return 0;
}

static int get_u32(rd *r, uint32_t *v)
{
    *v = 0;
    if (r->n - r->off < 4)
        return bad(r, "truncated");
    memcpy(v, r->p + r->off, 4); /* little-endian hosts only, as the rest of ember */
    r->off += 4;
    return 0;
}

/* A count of items of at least `min` bytes each: no more than the bytes left allow. */
static int get_count(rd *r, uint32_t *v, size_t min)
{
    int rc = get_u32(r, v);
    if (rc == 0 && (size_t)*v > (r->n - r->off) / min)
        return bad(r, "count larger than the bytes left");
    return rc;
}

static void *alloc(rd *r, size_t n)
{
    void *p = em_arena_alloc(r->a, n ? n : 1);
    if (p == NULL)
        em_err_set(r->err, EM_ENOMEM, "sql stage plan: out of memory");
    return p;
}

/* Decodes one value and copies its text into the arena (NUL-terminated). */
int em__sql_value_read(em_arena *a, const uint8_t *p, size_t n, em_sql_value *v, size_t *used,
                       em_err *err)
{
    if (em_sql_row_decode(p, n, v, 1, used, err) < 0)
        return err->code;
    if (v->type == EM_SQL_TEXT && em__sql_text(a, v->u.s, v->len, v) < 0)
        return em_err_set(err, EM_ENOMEM, "out of memory");
    return 0;
}

static int get_rel(rd *r, sql_rel **out)
{
    uint32_t w, n;
    int rc;
    if ((rc = get_u32(r, &w)) < 0 || (rc = get_count(r, &n, 1)) < 0)
        return rc;
    if (w == 0 || w > 4096)
        return bad(r, "bad subquery width");
    sql_rel *rel = alloc(r, sizeof *rel);
    if (rel == NULL || (rel->v = alloc(r, (size_t)n * w * sizeof *rel->v)) == NULL)
        return EM_ENOMEM;
    rel->width = w;
    rel->n = rel->cap = n;
    for (size_t i = 0; i < (size_t)n * w; i++) {
        size_t used;
        if ((rc = em__sql_value_read(r->a, r->p + r->off, r->n - r->off, &rel->v[i], &used,
                                     r->err)) < 0)
            return rc;
        r->off += used;
    }
    *out = rel;
    return 0;
}

static int get_expr(rd *r, sql_expr **out);

static int get_exprs(rd *r, sql_expr ***out, uint32_t *n)
{
    int rc = get_count(r, n, 1);
    if (rc < 0)
        return rc;
    if ((*out = alloc(r, *n * sizeof **out)) == NULL)
        return EM_ENOMEM;
    for (uint32_t i = 0; i < *n && rc == 0; i++)
        if ((rc = get_expr(r, &(*out)[i])) == 0 && (*out)[i] == NULL)
            rc = bad(r, "missing expression");
    return rc;
}

static int get_expr(rd *r, sql_expr **out)
{
    uint8_t has, h[5];
    uint32_t pos, col;
    size_t used;
    int rc;
    *out = NULL;
    if ((rc = get_u8(r, &has)) < 0 || has == 0)
        return rc;
    if (has != 1)
        return bad(r, "bad expression tag");
    if (++r->depth > MAX_DEPTH)
        return bad(r, "expressions nested too deep");
    sql_expr *e = alloc(r, sizeof *e);
    if (e == NULL)
        return EM_ENOMEM;
    memset(e, 0, sizeof *e);
    for (int i = 0; i < 5; i++)
        if ((rc = get_u8(r, &h[i])) < 0)
            return rc;
    if ((rc = get_u32(r, &pos)) < 0 || (rc = get_u32(r, &col)) < 0)
        return rc;
    e->kind = h[0];
    e->op = h[1];
    e->neg = h[2] != 0;
    e->distinct = h[3] != 0;
    e->cast_type = h[4];
    e->pos = pos;
    e->col = (int32_t)col;
    if (e->kind > E_LIKE || e->kind == E_NAME || e->kind == E_STAR || e->cast_type > EM_SQL_TEXT)
        return bad(r, "bad expression kind");
    if ((e->kind == E_BINARY && e->op > OP_GE) ||
        ((e->kind == E_FUNC || e->kind == E_AGG) && e->op > AG_GROUP_CONCAT))
        return bad(r, "bad operator");
    if ((rc = em__sql_value_read(r->a, r->p + r->off, r->n - r->off, &e->v, &used, r->err)) < 0)
        return rc;
    r->off += used;
    if ((rc = get_expr(r, &e->a)) < 0 || (rc = get_expr(r, &e->b)) < 0 ||
        (rc = get_expr(r, &e->c)) < 0 || (rc = get_exprs(r, &e->args, &e->nargs)) < 0)
        return rc;
    if (e->kind == E_INSUB || e->kind == E_EXISTS || e->kind == E_SUBQ) {
        if ((rc = get_rel(r, &e->cache_rel)) < 0)
            return rc;
        e->cached = true;
    }
    r->depth--;
    *out = e;
    return 0;
}

/* Every column e reads is below width, and operands the evaluator needs are present. */
static bool expr_ok(const sql_expr *e, uint32_t width)
{
    if (e == NULL)
        return true;
    switch (e->kind) {
    case E_COL:
    case E_AGG:
        if (e->kind == E_COL && (e->col < 0 || (uint32_t)e->col >= width))
            return false;
        if (e->kind == E_AGG && (e->col < 0 || (uint32_t)e->col >= width))
            return false;   /* evaluated, it reads its slot of the row */
        break;
    case E_UNARY:
    case E_ISNULL:
    case E_CAST:
    case E_INLIST:
    case E_INSUB:
        if (e->a == NULL)
            return false;
        break;
    case E_BINARY:
    case E_AND:
    case E_OR:
    case E_IS:
    case E_LIKE:
        if (e->a == NULL || e->b == NULL)
            return false;
        break;
    case E_BETWEEN:
        if (e->a == NULL || e->b == NULL || e->c == NULL)
            return false;
        break;
    case E_CASE:
        if (e->nargs % 2 != 0)
            return false;
        break;
    case E_FUNC:
        if (e->op != FN_COALESCE && e->op != FN_IFNULL && (e->nargs == 0 || e->nargs > 3))
            return false;
        for (uint32_t i = 0; i < e->nargs; i++)
            if (e->args[i] == NULL)
                return false;
        break;
    default: break;
    }
    if (!expr_ok(e->a, width) || !expr_ok(e->b, width) || !expr_ok(e->c, width))
        return false;
    for (uint32_t i = 0; i < e->nargs; i++)
        if (!expr_ok(e->args[i], width))
            return false;
    return true;
}

static bool exprs_ok(sql_expr *const *es, uint32_t n, uint32_t width)
{
    for (uint32_t i = 0; i < n; i++)
        if (es[i] == NULL || !expr_ok(es[i], width))   /* lists hold no empty slot */
            return false;
    return true;
}

/* The node's shape: children present, columns within the widths of the rows read. */
static bool node_ok(const sql_plan *p)
{
    const sql_plan *in = p->in, *rt = p->right;
    uint32_t iw = in ? in->width : 0;
    if (p->width == 0 || p->width > 65536)
        return false;
    switch (p->kind) {
    case P_REL: return in == NULL && rt == NULL;
    case P_SUBQ:
        return in && !rt && (uint64_t)p->off + p->slice <= p->width && iw == p->slice &&
               expr_ok(p->pred, p->width);
    case P_FILTER: return in && !rt && iw == p->width && p->pred && expr_ok(p->pred, iw);
    case P_PROJECT:
        return in && !rt && p->nexprs == p->width && exprs_ok(p->exprs, p->nexprs, iw);
    case P_JOIN:
        if (!in || !rt || iw != p->width || rt->width != p->width || !expr_ok(p->pred, p->width))
            return false;
        for (uint32_t i = 0; i < p->nslices; i++)
            if ((uint64_t)p->slice_off[i] + p->slice_len[i] > p->width)
                return false;
        return exprs_ok(p->lkeys, p->nkeys, iw) && exprs_ok(p->rkeys, p->nkeys, iw);
    case P_AGG: {
        uint32_t base = p->agg_mode == AGG_FINAL ? iw - p->naggs * AGG_STATE_VALS : iw;
        if (!in || rt || p->agg_mode > AGG_FINAL ||
            (p->agg_mode == AGG_FINAL && iw < p->naggs * AGG_STATE_VALS))
            return false;
        if (p->width != base + (p->agg_mode == AGG_PARTIAL ? p->naggs * AGG_STATE_VALS : p->naggs))
            return false;
        for (uint32_t i = 0; i < p->naggs; i++)
            if (p->aggs[i]->kind != E_AGG || !expr_ok(p->aggs[i]->a, base) ||
                p->aggs[i]->nargs > 2 || !exprs_ok(p->aggs[i]->args, p->aggs[i]->nargs, base))
                return false;
        return exprs_ok(p->exprs, p->nexprs, base);
    }
    case P_DISTINCT: return in && !rt && iw == p->width && p->nkeep <= iw;
    case P_SORT:
        if (!in || rt || iw != p->width)
            return false;
        for (uint32_t i = 0; i < p->nsort; i++)
            if (p->sort_cols[i] >= iw)
                return false;
        return true;
    case P_LIMIT:
        return in && !rt && iw == p->width && expr_ok(p->limit, 0) && expr_ok(p->offset, 0);
    case P_TRIM: return in && !rt && p->nkeep == p->width && p->width <= iw;
    default: return false;
    }
}

static int get_plan(rd *r, sql_plan **out)
{
    uint8_t h[4], has;
    uint32_t u[5];
    int rc;
    if (++r->depth > MAX_DEPTH)
        return bad(r, "plan nested too deep");
    sql_plan *p = alloc(r, sizeof *p);
    if (p == NULL)
        return EM_ENOMEM;
    memset(p, 0, sizeof *p);
    for (int i = 0; i < 4; i++)
        if ((rc = get_u8(r, &h[i])) < 0)
            return rc;
    for (int i = 0; i < 5; i++)
        if ((rc = get_u32(r, &u[i])) < 0)
            return rc;
    p->kind = h[0];
    p->join = h[1];
    p->setop = h[2];
    p->agg_mode = h[3];
    p->width = u[0];
    p->off = u[1];
    p->slice = u[2];
    p->nkeep = u[3];
    p->input = u[4];
    if ((rc = get_count(r, &p->nslices, 8)) < 0)
        return rc;
    if ((p->slice_off = alloc(r, p->nslices * 4)) == NULL ||
        (p->slice_len = alloc(r, p->nslices * 4)) == NULL)
        return EM_ENOMEM;
    for (uint32_t i = 0; i < p->nslices; i++)
        if ((rc = get_u32(r, &p->slice_off[i])) < 0 || (rc = get_u32(r, &p->slice_len[i])) < 0)
            return rc;
    if ((rc = get_count(r, &p->nsort, 5)) < 0)
        return rc;
    if ((p->sort_cols = alloc(r, p->nsort * 4)) == NULL ||
        (p->sort_desc = alloc(r, p->nsort * sizeof *p->sort_desc)) == NULL)
        return EM_ENOMEM;
    for (uint32_t i = 0; i < p->nsort; i++) {
        uint8_t d;
        if ((rc = get_u32(r, &p->sort_cols[i])) < 0 || (rc = get_u8(r, &d)) < 0)
            return rc;
        p->sort_desc[i] = d != 0;
    }
    if ((rc = get_expr(r, &p->pred)) < 0 || (rc = get_count(r, &p->nkeys, 2)) < 0)
        return rc;
    if ((p->lkeys = alloc(r, p->nkeys * sizeof *p->lkeys)) == NULL ||
        (p->rkeys = alloc(r, p->nkeys * sizeof *p->rkeys)) == NULL)
        return EM_ENOMEM;
    for (uint32_t i = 0; i < p->nkeys; i++)
        if ((rc = get_expr(r, &p->lkeys[i])) < 0 || (rc = get_expr(r, &p->rkeys[i])) < 0)
            return rc;
        else if (p->lkeys[i] == NULL || p->rkeys[i] == NULL)
            return bad(r, "missing join key");
    if ((rc = get_exprs(r, &p->exprs, &p->nexprs)) < 0 ||
        (rc = get_exprs(r, &p->aggs, &p->naggs)) < 0 || (rc = get_expr(r, &p->limit)) < 0 ||
        (rc = get_expr(r, &p->offset)) < 0)
        return rc;
    if ((rc = get_u8(r, &has)) < 0 || (has && (rc = get_plan(r, &p->in)) < 0))
        return rc;
    if ((rc = get_u8(r, &has)) < 0 || (has && (rc = get_plan(r, &p->right)) < 0))
        return rc;
    if (p->kind == P_JOIN && p->join != J_INNER && p->join != J_LEFT)
        return bad(r, "bad join kind");
    if (!node_ok(p))
        return bad(r, "inconsistent plan node");
    r->depth--;
    *out = p;
    return 0;
}

int em__sql_plan_decode(em_arena *a, const uint8_t *p, size_t n, size_t *used, sql_plan **out,
                        em_err *err)
{
    rd r = {.p = p, .n = n, .a = a, .err = err};
    int rc = get_plan(&r, out);
    *used = r.off;
    return rc;
}

int em__sql_expr_encode(sql_exec *x, const sql_expr *e, em_vbuf *b) { return put_expr(x, b, e); }

int em__sql_expr_decode(em_arena *a, const uint8_t *p, size_t n, size_t *used, uint32_t width,
                        sql_expr **out, em_err *err)
{
    rd r = {.p = p, .n = n, .a = a, .err = err};
    int rc = get_expr(&r, out);
    *used = r.off;
    if (rc == 0 && !expr_ok(*out, width))
        rc = bad(&r, "expression reads past its row");
    return rc;
}
