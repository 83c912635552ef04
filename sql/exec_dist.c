/* sql/exec_dist.c - the distributed path: a logical plan run as engine stages.
 *
 * Operators are pipelined: a chain of narrow nodes (scan, filter, project, the probe side of
 * a broadcast hash join, a partial aggregate, top-k) becomes one stage plan (sql/serial.c)
 * that one map_partitions task function (sql.stage, sql/dist_fns.c) runs over each
 * partition with the local executor's code, so both paths compute the same rows. Wide
 * nodes end the pipeline:
 *   - hash join: the right side, when its input is at most
 *     ember.sql.autoBroadcastJoinThreshold bytes, is computed, collected and broadcast, and
 *     the join runs in the left side's pipeline (INNER and LEFT); otherwise both sides are
 *     keyed by the hash of their join keys and cogrouped (shuffle hash join);
 *   - aggregate: a partial aggregate per partition, a shuffle by the hash of the group
 *     keys, a final aggregate merging the partial states (COUNT, SUM, AVG, MIN, MAX,
 *     TOTAL); with DISTINCT or GROUP_CONCAT the rows are shuffled by group and aggregated
 *     whole (two stages, no partial step); no GROUP BY: one final partition;
 *   - ORDER BY: sort_by on the bytewise key (sql.sort_key), range-partitioned; ORDER BY ...
 *     LIMIT n: each partition keeps its first offset + n rows (top-k), the driver merges;
 *   - anything else (DISTINCT, set operations, LIMIT without ORDER BY, nodes whose
 *     expressions hold correlated subqueries) runs on the driver over its inputs' rows.
 * Uncorrelated subqueries are run once on the driver and shipped as rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/ember.h"
#include "sql/sql_int.h"

#define CSV_SPLIT_BYTES ((uint64_t)32 << 20)

enum { SRC_ROWS = 0, SRC_COGROUP = 1, SRC_CSV = 2, SRC_EMC = 3 }; /* as sql/dist_fns.c */

/* ---------------------------------------------------------------- settings */
static int conf_u64(const em_conf *cf, const char *key, uint64_t def, uint64_t *out, em_err *err)
{
    const char *v = em_conf_get(cf, key);
    char *end;
    *out = def;
    if (v == NULL)
        return 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*v == '\0' || *v == '-' || *end != '\0')
        return em_err_set(err, EM_EINVAL, "%s: expected a number of bytes, got '%s'", key, v);
    *out = x;
    return 0;
}

int em__sql_dist_conf(em_context *sc, sql_dist_conf *c, em_err *err)
{
    const em_conf *cf = em_context_conf(sc);
    const char *f = em_conf_get(cf, "ember.sql.forceDistributed");
    int rc;
    memset(c, 0, sizeof *c);
    if (f != NULL && strcmp(f, "true") != 0 && strcmp(f, "false") != 0)
        return em_err_set(err, EM_EINVAL, "ember.sql.forceDistributed: expected true or false, "
                          "got '%s'", f);
    c->force = f != NULL && strcmp(f, "true") == 0;
    if ((rc = conf_u64(cf, "ember.sql.localThreshold", (uint64_t)64 << 20, &c->local_threshold,
                       err)) < 0)
        return rc;
    return conf_u64(cf, "ember.sql.autoBroadcastJoinThreshold", (uint64_t)10 << 20,
                    &c->bcast_threshold, err);
}

uint64_t em__sql_plan_input_bytes(const sql_plan *p)
{
    if (p == NULL)
        return 0;
    if (p->kind == P_SCAN) {
        if (!p->table->loaded && p->table->csv_path)
            return p->table->csv_bytes;
        return (uint64_t)p->table->nrows * p->table->ncols * 16;
    }
    return em__sql_plan_input_bytes(p->in) + em__sql_plan_input_bytes(p->right);
}

/* ---------------------------------------------------------------- values in flight */
typedef struct scan_need {  /* a scan's columns that the query reads (see mark_region) */
    const sql_plan *scan;
    uint8_t *need;
} scan_need;

typedef struct dist {
    scan_need *needs;     /* per P_SCAN whose read columns are known */
    size_t nneeds, capneeds;
    sql_exec *x;
    em_context *sc;
    const sql_dist_conf *c;
    uint32_t nparts;
    em_rdd **rdds;        /* every handle made, released at the end */
    size_t nrdds, caprdds;
    uint32_t bcasts[64];  /* broadcasts destroyed at the end (unless a dataset is returned) */
    size_t nbcasts;
    em_err err;
} dist;

/* A node's rows: local (rel), or a dataset whose partitions the pending narrow plan (over
 * P_REL input 0, and input 1 for cogrouped data) has yet to run over. */
typedef struct dval {
    sql_rel *rel;
    em_rdd *rdd;
    uint8_t src;
    uint32_t w0, w1;
    const sql_table *csv;
    const uint8_t *need;  /* SRC_CSV: the columns read (NULL: all) */
    sql_plan *pending;
} dval;

static int fail(dist *d, int code, const char *what)
{
    if (d->err.code == 0)
        em_err_set(&d->err, code, "%s", what);
    return em__sql_diag(d->x->diag, d->err.code, -1, "%s", d->err.msg);
}

static int track(dist *d, em_rdd *r)
{
    if (r == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    if (d->nrdds == d->caprdds) {
        size_t nc = d->caprdds ? d->caprdds * 2 : 16;
        em_rdd **n = em_realloc(d->rdds, nc * sizeof *n);
        if (n == NULL) {
            em_rdd_release(r);
            return fail(d, EM_ENOMEM, "out of memory");
        }
        d->rdds = n;
        d->caprdds = nc;
    }
    d->rdds[d->nrdds++] = r;
    const em_err *e = em_rdd_error(r);
    if (e != NULL) {
        d->err = *e;
        return fail(d, e->code, e->msg);
    }
    return 0;
}

static sql_plan *node_copy(dist *d, const sql_plan *p)
{
    sql_plan *n = em_arena_alloc(d->x->arena, sizeof *n);
    if (n != NULL)
        *n = *p;
    return n;
}

static sql_plan *rel_leaf(dist *d, uint32_t width, uint32_t input, sql_rel *rel)
{
    sql_plan *n = em_arena_alloc(d->x->arena, sizeof *n);
    if (n != NULL) {
        memset(n, 0, sizeof *n);
        n->kind = P_REL;
        n->width = width;
        n->input = input;
        n->rel = rel;
    }
    return n;
}

/* The plan reading v's rows in a stage: its pending plan, or input 0 as it is. */
static sql_plan *pending_of(dist *d, const dval *v)
{
    return v->pending ? v->pending : rel_leaf(d, v->w0, 0, NULL);
}

/* need: NULL, or per column 0 for a column no one reads (encoded as NULL). */
static int encode_rows(dist *d, const sql_rel *r, const uint8_t *need, em_vbuf *b, size_t *ends)
{
    em_sql_value *tmp = need ? em_arena_alloc(d->x->arena, (r->width + 1) * sizeof *tmp) : NULL;
    if (need != NULL && tmp == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    for (size_t i = 0; i < r->n; i++) {
        const em_sql_value *row = &r->v[i * r->width];
        if (need != NULL) {
            for (uint32_t c = 0; c < r->width; c++)
                tmp[c] = need[c] ? row[c] : em__sql_null();
            row = tmp;
        }
        if (em_sql_row_encode(b, row, r->width) < 0)
            return fail(d, EM_ENOMEM, "out of memory");
        if (ends)
            ends[i] = b->len;
    }
    return 0;
}

/* Local rows as a dataset (parallelized). */
static int rel_to_rdd(dist *d, const sql_rel *r, const uint8_t *need, em_rdd **out)
{
    em_vbuf b;
    size_t *ends = em_malloc((r->n + 1) * sizeof *ends);
    em_rec *recs = em_calloc(r->n + 1, sizeof *recs);
    int rc = 0;
    em_vbuf_init(&b);
    if (ends == NULL || recs == NULL)
        rc = fail(d, EM_ENOMEM, "out of memory");
    if (rc == 0)
        rc = encode_rows(d, r, need, &b, ends);
    for (size_t i = 0; i < r->n && rc == 0; i++)
        recs[i].val = em_slice_make(b.data + (i ? ends[i - 1] : 0), ends[i] - (i ? ends[i - 1] : 0));
    if (rc == 0) {
        *out = em_parallelize(d->sc, EM_REC_BYTES, 0, recs, r->n, d->nparts);
        rc = track(d, *out);
    }
    em_vbuf_destroy(&b);
    em_free(ends);
    em_free(recs);
    return rc;
}

/* Runs v's pending plan as a stage: a dataset of rows, or with nkeys >= 0 KV records
 * keyed by the hash of the keys (no keys: one constant key) whose values are the rows. */
static int materialize(dist *d, const dval *v, sql_expr *const *keys, int32_t nkeys,
                       em_rdd **out)
{
    if (v->rel != NULL) {
        dval t = {.w0 = v->rel->width};
        int rc = rel_to_rdd(d, v->rel, NULL, &t.rdd);
        return rc < 0 ? rc : materialize(d, &t, keys, nkeys, out);
    }
    if (v->pending == NULL && nkeys < 0 && v->src == SRC_ROWS) {
        *out = v->rdd;
        return 0;
    }
    em_vbuf b;
    uint8_t src = v->src;
    int rc = 0;
    em_vbuf_init(&b);
    if (em_vbuf_append(&b, &src, 1) < 0 || em_vbuf_append_u32le(&b, v->w0) < 0 ||
        em_vbuf_append_u32le(&b, v->w1) < 0)
        rc = fail(d, EM_ENOMEM, "out of memory");
    if (rc == 0 && (src == SRC_CSV || src == SRC_EMC)) {
        sql_csv_spec sp;
        char name[300];
        em__sql_csv_spec_of(v->csv, &sp);
        sp.multiline = v->csv->csv_multiline;
        sp.need = v->need;
        snprintf(name, sizeof name, "sql.csv.%s.badRows", v->csv->name);
        uint32_t acc = v->csv->csv_skip_bad ? em_accumulator_new(d->sc, name) : 0;
        if (em__sql_csv_spec_encode(&b, &sp, acc) < 0)
            rc = fail(d, EM_ENOMEM, "out of memory");
    }
    if (rc == 0 && em_vbuf_append_u32le(&b, (uint32_t)(nkeys + 1)) < 0)
        rc = fail(d, EM_ENOMEM, "out of memory");
    for (int32_t k = 0; k < nkeys && rc == 0; k++)
        rc = em__sql_expr_encode(d->x, keys[k], &b);
    sql_plan *pl = pending_of(d, v);
    if (rc == 0 && pl == NULL)
        rc = fail(d, EM_ENOMEM, "out of memory");
    if (rc == 0)
        rc = em__sql_plan_encode(d->x, pl, &b);
    if (rc == 0) {
        *out = em_rdd_map_partitions(v->rdd, "sql.stage", em_slice_make(b.data, b.len),
                                     false);
        rc = track(d, *out);
    } else if (d->x->diag->err.code == 0)
        rc = fail(d, EM_ENOMEM, "out of memory");
    em_vbuf_destroy(&b);
    return rc;
}

/* v's rows on the driver. */
/* v's rows (a dataset) collected as encoded records of width *w. */
static int collect_recs(dist *d, const dval *v, em_records *recs, uint32_t *w)
{
    em_rdd *r;
    int rc = materialize(d, v, NULL, -1, &r);
    memset(recs, 0, sizeof *recs);
    *w = v->pending ? v->pending->width : v->w0;
    if (rc < 0)
        return rc;
    if (em_rdd_collect(r, recs, &d->err) < 0)
        return fail(d, d->err.code, d->err.msg);
    return 0;
}

/* The records' rows decoded into *out (text copied into the statement's arena); recs
 * destroyed. */
static int recs_to_rel(dist *d, em_records *recs, uint32_t w, sql_rel **out);

static int collect(dist *d, const dval *v, sql_rel **out)
{
    if (v->rel != NULL) {
        *out = v->rel;
        return 0;
    }
    em_records recs;
    uint32_t w;
    int rc = collect_recs(d, v, &recs, &w);
    if (rc < 0)
        return rc;
    return recs_to_rel(d, &recs, w, out);
}

static int recs_to_rel(dist *d, em_records *recs_, uint32_t w, sql_rel **out)
{
    em_records recs = *recs_;
    int rc = 0;
    sql_rel *rel = em_arena_alloc(d->x->arena, sizeof *rel);
    em_sql_value *row = em_arena_alloc(d->x->arena, (w + 1) * sizeof *row);
    if (rel == NULL || row == NULL) {
        em_records_destroy(&recs);
        return fail(d, EM_ENOMEM, "out of memory");
    }
    memset(rel, 0, sizeof *rel);
    rel->width = w;
    size_t bytes; /* all rows in one allocation: no copies as the rows grow */
    if (recs.n > 0 && em_size_mul(recs.n, (size_t)(w ? w : 1) * sizeof *rel->v, &bytes) &&
        (rel->v = em_arena_alloc(d->x->arena, bytes)) != NULL)
        rel->cap = recs.n;
    for (size_t i = 0; i < recs.n && rc == 0; i++) {
        size_t off = 0, used;
        for (uint32_t c = 0; c < w && rc == 0; c++, off += used)
            if ((rc = em__sql_value_read(d->x->arena, recs.recs[i].val.p + off,
                                         recs.recs[i].val.n - off, &row[c], &used, &d->err)) < 0)
                rc = fail(d, d->err.code, d->err.msg);
        if (rc == 0 && em__sql_rel_push(d->x, rel, row) < 0)
            rc = fail(d, EM_ENOMEM, "out of memory");
    }
    em_records_destroy(&recs);
    *out = rel;
    return rc;
}

/* ---------------------------------------------------------------- nodes */
static bool exprs_portable(sql_expr *const *es, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (!em__sql_expr_portable(es[i]))
            return false;
    return true;
}

static bool node_portable(const sql_plan *p)
{
    return em__sql_expr_portable(p->pred) && exprs_portable(p->lkeys, p->nkeys) &&
           exprs_portable(p->rkeys, p->nkeys) && exprs_portable(p->exprs, p->nexprs) &&
           exprs_portable(p->aggs, p->naggs);
}

static bool aggs_mergeable(const sql_plan *p)
{
    for (uint32_t i = 0; i < p->naggs; i++) {
        const sql_expr *a = p->aggs[i];
        if (a->distinct || a->op == AG_GROUP_CONCAT)
            return false;
    }
    return true;
}

static bool lit_int(const sql_expr *e)
{
    return e == NULL || (e->kind == E_LIT && e->v.type == EM_SQL_INT && e->v.u.i >= 0);
}

static bool broadcast_right(const dist *d, const sql_plan *p)
{
    return p->nkeys == 0 || em__sql_plan_input_bytes(p->right) <= d->c->bcast_threshold;
}

static int run_node(dist *d, const sql_plan *p, dval *out);

/* The node run on the driver over its inputs' rows. */
static int run_here(dist *d, const sql_plan *p, dval *out)
{
    sql_plan *n = node_copy(d, p);
    dval a = {0}, b = {0};
    int rc;
    if (n == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    if (p->kind != P_SCAN && p->in) {
        if ((rc = run_node(d, p->in, &a)) < 0 || (rc = collect(d, &a, &a.rel)) < 0)
            return rc;
        n->in = rel_leaf(d, a.rel->width, 0, a.rel);
    }
    if (p->right) {
        if ((rc = run_node(d, p->right, &b)) < 0 || (rc = collect(d, &b, &b.rel)) < 0)
            return rc;
        n->right = rel_leaf(d, b.rel->width, 0, b.rel);
    }
    memset(out, 0, sizeof *out);
    return em__sql_run(d->x, n, NULL, &out->rel);
}

/* A narrow node over its input's pipeline. */
static int narrow(dist *d, const sql_plan *p, dval *out)
{
    dval in;
    int rc = run_node(d, p->in, &in);
    if (rc < 0)
        return rc;
    sql_plan *n = node_copy(d, p);
    if (n == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    if (in.rel != NULL) { /* small rows already here: stay local */
        n->in = rel_leaf(d, in.rel->width, 0, in.rel);
        memset(out, 0, sizeof *out);
        return em__sql_run(d->x, n, NULL, &out->rel);
    }
    if ((n->in = pending_of(d, &in)) == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    *out = in;
    out->pending = n;
    return 0;
}

/* The rows of loaded table scan p (*r, all its rows) that its pushed-down filter keeps,
 * found here so that only they are encoded and shipped (the tasks apply the filter again). */
static int prefilter(dist *d, const sql_plan *p, sql_rel *r)
{
    if (p->pred == NULL || r->n == 0 || p->slice != r->width || p->off > p->width ||
        p->slice > p->width - p->off || !em__sql_expr_portable(p->pred))
        return 0;
    em_sql_value *wide = em_arena_alloc(d->x->arena, ((size_t)p->width + 1) * sizeof *wide);
    size_t bytes, n = 0;
    em_sql_value *kept = NULL;
    if (wide == NULL || !em_size_mul(r->n, (size_t)r->width * sizeof *kept, &bytes) ||
        (kept = em_arena_alloc(d->x->arena, bytes + sizeof *kept)) == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    for (uint32_t c = 0; c < p->width; c++)
        wide[c] = em__sql_null();
    for (size_t i = 0; i < r->n; i++) {
        const em_sql_value *row = &r->v[i * r->width];
        memcpy(wide + p->off, row, r->width * sizeof *row);
        sql_env env = {.row = wide};
        em_sql_value t;
        int rc = em__sql_eval(d->x, p->pred, &env, &t);
        if (rc < 0)
            return rc;
        if (em__sql_truth(&t) == 1)
            memcpy(&kept[n++ * r->width], row, r->width * sizeof *row);
    }
    r->v = kept;
    r->n = n;
    return 0;
}

static int run_scan(dist *d, const sql_plan *p, dval *out)
{
    const sql_table *t = p->table;
    sql_plan *s = node_copy(d, p);
    int rc;
    memset(out, 0, sizeof *out);
    if (s == NULL || (s->in = rel_leaf(d, t->ncols, 0, NULL)) == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    s->kind = P_SUBQ;
    s->table = NULL;
    out->w0 = t->ncols;
    out->pending = s;
    const uint8_t *need = NULL;
    for (size_t i = 0; i < d->nneeds; i++)
        if (d->needs[i].scan == p)
            need = d->needs[i].need;
    if (!t->loaded && t->emc) { /* row groups of the part files, scanned by the tasks */
        uint64_t n = 0, i = 0;
        for (uint32_t f = 0; f < t->emc_nfiles; f++)
            n += t->emc_nrg[f];
        em_rec *recs = em_calloc(n + 1, sizeof *recs);
        em_vbuf b;
        size_t *at = em_calloc(n + 1, sizeof *at);
        em_vbuf_init(&b);
        rc = recs == NULL || at == NULL ? EM_ENOMEM : 0;
        for (uint32_t f = 0; f < t->emc_nfiles && rc == 0; f++)
            for (uint32_t g = 0; g < t->emc_nrg[f] && rc == 0; g++, i++) {
                at[i] = b.len;
                if (em_vbuf_append(&b, &g, 4) < 0 ||
                    em_vbuf_append(&b, t->emc_files[f], strlen(t->emc_files[f])) < 0)
                    rc = EM_ENOMEM;
            }
        for (i = 0; i < n && rc == 0; i++)
            recs[i].val = em_slice_make(b.data + at[i], (i + 1 < n ? at[i + 1] : b.len) - at[i]);
        /* one task per core: a broadcast's rows are decoded (and hashed) once per task */
        uint64_t np = n < (uint64_t)d->nparts ? n : (uint64_t)d->nparts;
        if (rc == 0)
            out->rdd = em_parallelize(d->sc, EM_REC_BYTES, 0, recs, n, (uint32_t)(np ? np : 1));
        em_free(recs);
        em_free(at);
        em_vbuf_destroy(&b);
        if (rc < 0)
            return fail(d, EM_ENOMEM, "out of memory");
        out->src = SRC_EMC;
        out->csv = t;
        out->need = need;
        return track(d, out->rdd);
    }
    if (!t->loaded && t->csv_path) { /* byte ranges of the file, parsed by the tasks */
        uint64_t size = t->csv_bytes, n = 1;
        if (!t->csv_multiline) {
            n = (size + CSV_SPLIT_BYTES - 1) / CSV_SPLIT_BYTES;
            if (n < d->nparts)
                n = d->nparts;
        }
        em_rec *recs = em_calloc(n, sizeof *recs);
        uint8_t *rng = em_malloc(n * 16);
        if (recs == NULL || rng == NULL) {
            em_free(recs);
            em_free(rng);
            return fail(d, EM_ENOMEM, "out of memory");
        }
        for (uint64_t i = 0; i < n; i++) {
            em_enc_i64(rng + i * 16, (int64_t)(size * i / n));
            em_enc_i64(rng + i * 16 + 8, (int64_t)(size * (i + 1) / n));
            recs[i].val = em_slice_make(rng + i * 16, 16);
        }
        /* ranges grouped into one task per core: a broadcast's rows are decoded (and
         * hashed) once per task */
        out->rdd = em_parallelize(d->sc, EM_REC_BYTES, 0, recs, n,
                                  (uint32_t)(n < d->nparts ? n : d->nparts));
        em_free(recs);
        em_free(rng);
        out->src = SRC_CSV;
        out->csv = t;
        out->need = need;
        return track(d, out->rdd);
    }
    sql_rel r = {.width = t->ncols, .n = t->nrows, .v = t->rows};
    if ((rc = prefilter(d, p, &r)) < 0 || (rc = rel_to_rdd(d, &r, need, &out->rdd)) < 0)
        return rc;
    return 0;
}

/* The slices of the wide row that the FROM subtree p fills (its scans and subqueries);
 * false when p is not made of such nodes, filters and joins only. */
static bool from_slices(dist *d, const sql_plan *p, uint32_t **off, uint32_t **len, uint32_t *n,
                        uint32_t *cap)
{
    switch (p->kind) {
    case P_SCAN:
    case P_SUBQ:
        if (*n == *cap) {
            uint32_t nc = *cap ? *cap * 2 : 8;
            uint32_t *o = em_arena_alloc(d->x->arena, nc * sizeof *o);
            uint32_t *l = em_arena_alloc(d->x->arena, nc * sizeof *l);
            if (o == NULL || l == NULL)
                return false;
            if (*n) {
                memcpy(o, *off, *n * sizeof *o);
                memcpy(l, *len, *n * sizeof *l);
            }
            *off = o;
            *len = l;
            *cap = nc;
        }
        (*off)[*n] = p->off;
        (*len)[*n] = p->slice;
        (*n)++;
        return true;
    case P_FILTER:
        return from_slices(d, p->in, off, len, n, cap);
    case P_JOIN:
        return from_slices(d, p->in, off, len, n, cap) &&
               from_slices(d, p->right, off, len, n, cap);
    default:
        return false;
    }
}

/* p (an INNER join) with its sides swapped: the left side becomes the one built and
 * broadcast. Rows are wide rows with a fixed slice per FROM item, so the joined rows are
 * the same (in another order). NULL when the left side's slices are not known. */
static sql_plan *join_swapped(dist *d, const sql_plan *p)
{
    sql_plan *n = node_copy(d, p);
    uint32_t *off = NULL, *len = NULL, k = 0, cap = 0;
    if (n == NULL || !from_slices(d, p->in, &off, &len, &k, &cap))
        return NULL;
    n->in = p->right;
    n->right = p->in;
    n->lkeys = p->rkeys;
    n->rkeys = p->lkeys;
    n->slice_off = off;
    n->slice_len = len;
    n->nslices = k;
    return n;
}

/* A side of a shuffle join whose input is at most this many bytes is computed first (the
 * left one when it is the smaller of an INNER join, else the right one); if its values
 * turn out at most ember.sql.autoBroadcastJoinThreshold bytes (filters, unread columns),
 * it is broadcast instead (a left side by swapping the sides); else its rows are
 * shuffled from the driver. */
#define ADAPTIVE_JOIN_BYTES ((uint64_t)256 << 20)

static int run_join(dist *d, const sql_plan *p, dval *out)
{
    dval l, r;
    int rc;
    if ((rc = run_node(d, p->in, &l)) < 0 || (rc = run_node(d, p->right, &r)) < 0)
        return rc;
    sql_plan *n = node_copy(d, p);
    if (n == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    bool bcast = r.rel != NULL || broadcast_right(d, p);
    em_vbuf pre; /* the broadcast's rows when they came encoded (have_pre) */
    bool have_pre = false;
    uint32_t pre_width = 0;
    em_vbuf_init(&pre);
    if (!bcast && l.rel == NULL) { /* a shuffle join by the estimates: look at the rows */
        uint64_t lb = em__sql_plan_input_bytes(p->in), rb = em__sql_plan_input_bytes(p->right);
        bool left = p->join == J_INNER && lb < rb && lb <= ADAPTIVE_JOIN_BYTES;
        dval *side = left ? &l : &r;
        if (left || rb <= ADAPTIVE_JOIN_BYTES) {
            em_records recs;
            uint32_t w;
            if ((rc = collect_recs(d, side, &recs, &w)) < 0)
                return rc;
            side->pending = NULL;
            uint64_t bytes = 0;   /* of the values (a wide row's other slices are NULL) */
            em_sql_value *row = em_arena_alloc(d->x->arena, ((size_t)w + 1) * sizeof *row);
            rc = row == NULL ? fail(d, EM_ENOMEM, "out of memory") : 0;
            for (size_t i = 0; i < recs.n && rc == 0; i++) {
                size_t used;
                if (em_sql_row_decode(recs.recs[i].val.p, recs.recs[i].val.n, row, w, &used,
                                      &d->err) < 0)
                    rc = fail(d, d->err.code, d->err.msg);
                else if (used != recs.recs[i].val.n)
                    rc = fail(d, EM_ECORRUPT, "sql: bytes after a collected row");
                for (uint32_t c = 0; c < w && rc == 0; c++) {
                    const em_sql_value *v = &row[c];
                    bytes += v->type == EM_SQL_TEXT ? 4 + (uint64_t)v->len : v->type ? 8 : 0;
                }
            }
            sql_plan *sw = NULL;
            if (rc == 0 && bytes <= d->c->bcast_threshold && (sw = left ? join_swapped(d, p) : n) != NULL) {
                /* the records are the broadcast's rows already: no decoding, no encoding */
                for (size_t i = 0; i < recs.n && rc == 0; i++)
                    if (em_vbuf_append(&pre, recs.recs[i].val.p, recs.recs[i].val.n) < 0)
                        rc = fail(d, EM_ENOMEM, "out of memory");
                em_records_destroy(&recs);
                if (rc < 0)
                    return rc;
                have_pre = true;
                pre_width = w;
                if (left) {
                    dval t = l;
                    l = r;
                    r = t;
                }
                n = sw;
                bcast = true;
            } else if (rc < 0) {
                em_records_destroy(&recs);
                return rc;
            } else if ((rc = recs_to_rel(d, &recs, w, &side->rel)) < 0)
                return rc;
        }
    }
    if (bcast) {
        sql_rel *rows = NULL;
        uint32_t width = pre_width;
        if (!have_pre) {
            if ((rc = collect(d, &r, &rows)) < 0)
                return rc;
            width = rows->width;
        }
        if (l.rel != NULL) { /* both sides here (l is never so with have_pre) */
            n->in = rel_leaf(d, l.rel->width, 0, l.rel);
            n->right = rel_leaf(d, rows->width, 0, rows);
            memset(out, 0, sizeof *out);
            return em__sql_run(d->x, n, NULL, &out->rel);
        }
        if (!have_pre)
            rc = encode_rows(d, rows, NULL, &pre, NULL);
        uint32_t id = rc == 0 ? em_broadcast(d->sc, em_slice_make(pre.data, pre.len), &d->err) : 0;
        em_vbuf_destroy(&pre);
        if (rc < 0)
            return rc;
        if (id == 0)
            return fail(d, d->err.code, d->err.msg);
        if (d->nbcasts < sizeof d->bcasts / sizeof d->bcasts[0])
            d->bcasts[d->nbcasts++] = id;
        n->in = pending_of(d, &l);
        n->right = rel_leaf(d, width, 2 + id, NULL);
        *out = l;
        out->pending = n;
        return 0;
    }
    em_rdd *lk, *rk;
    if ((rc = materialize(d, &l, p->lkeys, (int32_t)p->nkeys, &lk)) < 0 ||
        (rc = materialize(d, &r, p->rkeys, (int32_t)p->nkeys, &rk)) < 0)
        return rc;
    memset(out, 0, sizeof *out);
    out->rdd = em_rdd_cogroup(lk, rk, d->nparts);
    if ((rc = track(d, out->rdd)) < 0)
        return rc;
    out->src = SRC_COGROUP;
    out->w0 = p->in->width;
    out->w1 = p->right->width;
    n->in = rel_leaf(d, out->w0, 0, NULL);
    n->right = rel_leaf(d, out->w1, 1, NULL);
    out->pending = n;
    return 0;
}

/* Rows keyed by the hash of keys, shuffled into nparts partitions; then `top` runs over
 * them (its input: P_REL of width w). */
static int shuffle_then(dist *d, const dval *in, sql_expr *const *keys, uint32_t nkeys,
                        uint32_t nparts, uint32_t w, sql_plan *top, dval *out)
{
    em_rdd *kv, *sh;
    int rc = materialize(d, in, keys, (int32_t)nkeys, &kv);
    if (rc < 0)
        return rc;
    sh = em_rdd_partition_by(kv, EM_PART_HASH, nparts);
    if ((rc = track(d, sh)) < 0)
        return rc;
    memset(out, 0, sizeof *out);
    out->rdd = sh;
    out->w0 = w;
    if ((top->in = rel_leaf(d, w, 0, NULL)) == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    out->pending = top;
    return 0;
}

static int run_agg(dist *d, const sql_plan *p, dval *out)
{
    dval in;
    int rc = run_node(d, p->in, &in);
    if (rc < 0)
        return rc;
    sql_plan *fin = node_copy(d, p);
    uint32_t parts = p->nexprs ? d->nparts : 1;
    if (fin == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    if (in.rel != NULL) {
        fin->in = rel_leaf(d, in.rel->width, 0, in.rel);
        memset(out, 0, sizeof *out);
        return em__sql_run(d->x, fin, NULL, &out->rel);
    }
    if (!aggs_mergeable(p)) /* whole groups meet in one partition */
        return shuffle_then(d, &in, p->exprs, p->nexprs, parts, p->in->width, fin, out);
    sql_plan *part = node_copy(d, p);
    if (part == NULL || (part->in = pending_of(d, &in)) == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    part->agg_mode = AGG_PARTIAL;
    part->width = p->in->width + p->naggs * AGG_STATE_VALS;
    in.pending = part;
    fin->agg_mode = AGG_FINAL;
    return shuffle_then(d, &in, p->exprs, p->nexprs, parts, part->width, fin, out);
}

static int run_sort(dist *d, const sql_plan *p, dval *out)
{
    dval in;
    em_rdd *rows, *sorted;
    em_vbuf b;
    int rc = run_node(d, p->in, &in);
    if (rc < 0)
        return rc;
    if (in.rel != NULL) {
        sql_plan *n = node_copy(d, p);
        if (n == NULL)
            return fail(d, EM_ENOMEM, "out of memory");
        n->in = rel_leaf(d, in.rel->width, 0, in.rel);
        memset(out, 0, sizeof *out);
        return em__sql_run(d->x, n, NULL, &out->rel);
    }
    if ((rc = materialize(d, &in, NULL, -1, &rows)) < 0)
        return rc;
    em_vbuf_init(&b);
    rc = em_vbuf_append_u32le(&b, p->width) | em_vbuf_append_u32le(&b, p->nsort);
    for (uint32_t i = 0; i < p->nsort && rc == 0; i++) {
        uint8_t desc = p->sort_desc ? p->sort_desc[i] : 0;
        rc = em_vbuf_append_u32le(&b, p->sort_cols[i]) | em_vbuf_append(&b, &desc, 1);
    }
    sorted = rc == 0 ? em_rdd_sort_by(rows, "sql.sort_key", em_slice_make(b.data, b.len), true,
                                      d->nparts) : NULL;
    em_vbuf_destroy(&b);
    memset(out, 0, sizeof *out);
    out->rdd = sorted;
    out->w0 = p->width;
    return track(d, sorted);
}

/* ORDER BY ... LIMIT n [OFFSET m] with constant n, m: top-k per partition, merged here. */
static int run_topk(dist *d, const sql_plan *p, dval *out)
{
    const sql_plan *s = p->in;
    dval in;
    int rc = run_node(d, s->in, &in);
    if (rc < 0)
        return rc;
    sql_plan *lim = node_copy(d, p), *srt = node_copy(d, s), *k = node_copy(d, p),
             *ks = node_copy(d, s);
    sql_expr *kl = em_arena_alloc(d->x->arena, sizeof *kl);
    if (lim == NULL || srt == NULL || k == NULL || ks == NULL || kl == NULL)
        return fail(d, EM_ENOMEM, "out of memory");
    int64_t n = p->limit ? p->limit->v.u.i : -1, off = p->offset ? p->offset->v.u.i : 0;
    if (in.rel == NULL && n >= 0) {
        memset(kl, 0, sizeof *kl);
        kl->kind = E_LIT;
        kl->v = em__sql_int(n + off);
        k->limit = kl;
        k->offset = NULL;
        if ((ks->in = pending_of(d, &in)) == NULL)
            return fail(d, EM_ENOMEM, "out of memory");
        k->in = ks;
        in.pending = k;
    }
    if ((rc = collect(d, &in, &in.rel)) < 0)
        return rc;
    srt->in = rel_leaf(d, in.rel->width, 0, in.rel);
    lim->in = srt;
    memset(out, 0, sizeof *out);
    return em__sql_run(d->x, lim, NULL, &out->rel);
}

/* ---------------------------------------------------------------- columns read
 * A CSV scan run by executors parses every field (a bad value is an error whatever the
 * query reads) but keeps only the columns some expression reads: the others are NULL in
 * its rows, so text is not copied and shuffles carry less. The columns a SELECT core reads
 * of its FROM clause's wide row are those its FROM nodes, aggregate and projection name at
 * level 0; above the projection, nodes name projected columns. A region is left alone
 * (all columns read) when it is not shaped so, or holds a subquery (which may read the
 * row as an outer one). */
typedef struct region {
    uint8_t *used;        /* per column of the wide row */
    uint32_t width;
    bool all;             /* give up: every column is read */
} region;

static void mark_expr(region *g, const sql_expr *e)
{
    if (e == NULL)
        return;
    switch (e->kind) {
    case E_COL:
        if (e->level == 0 && e->col >= 0 && (uint32_t)e->col < g->width)
            g->used[e->col] = 1;
        else if (e->level == 0)
            g->all = true;
        break;
    case E_NAME:
    case E_STAR:
    case E_INSUB:
    case E_EXISTS:
    case E_SUBQ:
        g->all = true;
        break;
    default:
        break;
    }
    mark_expr(g, e->a);
    mark_expr(g, e->b);
    mark_expr(g, e->c);
    for (uint32_t i = 0; i < e->nargs; i++)
        mark_expr(g, e->args[i]);
}

static void mark_exprs(region *g, sql_expr *const *es, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        mark_expr(g, es[i]);
}

static int mark_plan(dist *d, const sql_plan *p);

/* The nodes of one SELECT core below its projection: marks what they read, then records
 * the scans' columns (second pass, record = true). */
static int mark_from(dist *d, region *g, const sql_plan *p, bool record)
{
    if (p == NULL)
        return 0;
    switch (p->kind) {
    case P_SCAN:
        if (!record) {
            mark_expr(g, p->pred);
            return 0;
        }
        if (g->all || p->off + p->slice > g->width || p->slice != p->table->ncols)
            return 0;
        if (d->nneeds == d->capneeds) {
            size_t nc = d->capneeds ? d->capneeds * 2 : 8;
            scan_need *n = em_arena_alloc(d->x->arena, nc * sizeof *n);
            if (n == NULL)
                return fail(d, EM_ENOMEM, "out of memory");
            if (d->nneeds)
                memcpy(n, d->needs, d->nneeds * sizeof *n);
            d->needs = n;
            d->capneeds = nc;
        }
        uint8_t *need = em_arena_alloc(d->x->arena, p->slice + 1);
        if (need == NULL)
            return fail(d, EM_ENOMEM, "out of memory");
        memcpy(need, g->used + p->off, p->slice);
        d->needs[d->nneeds++] = (scan_need){.scan = p, .need = need};
        return 0;
    case P_SUBQ:   /* its own SELECT: a region of its own */
        if (!record)
            mark_expr(g, p->pred);
        return record ? mark_plan(d, p->in) : 0;
    case P_FILTER:
    case P_JOIN:
    case P_AGG:
        if (!record) {
            mark_expr(g, p->pred);
            mark_exprs(g, p->lkeys, p->nkeys);
            mark_exprs(g, p->rkeys, p->nkeys);
            mark_exprs(g, p->exprs, p->nexprs);
            mark_exprs(g, p->aggs, p->naggs);
        }
        int rc = mark_from(d, g, p->in, record);
        return rc < 0 ? rc : mark_from(d, g, p->right, record);
    case P_ONEROW:
        return 0;
    default:
        g->all = true;
        return 0;
    }
}

/* Finds the SELECT cores of p (through the nodes above a projection and set operations)
 * and records the columns their CSV scans read. */
static int mark_plan(dist *d, const sql_plan *p)
{
    if (p == NULL)
        return 0;
    switch (p->kind) {
    case P_SORT:
    case P_LIMIT:
    case P_TRIM:
    case P_DISTINCT:
        return mark_plan(d, p->in);
    case P_SETOP: {
        int rc = mark_plan(d, p->in);
        return rc < 0 ? rc : mark_plan(d, p->right);
    }
    case P_PROJECT: {
        const sql_plan *in = p->in;
        region g = {.width = in ? in->width : 0};
        if (in == NULL || (g.used = em_arena_alloc(d->x->arena, g.width + 1)) == NULL)
            return in == NULL ? 0 : fail(d, EM_ENOMEM, "out of memory");
        memset(g.used, 0, g.width + 1);
        mark_exprs(&g, p->exprs, p->nexprs);
        int rc = mark_from(d, &g, in, false);
        return rc < 0 ? rc : mark_from(d, &g, in, true);
    }
    default:
        return 0;   /* not a SELECT core's shape: its scans read every column */
    }
}

static int run_node(dist *d, const sql_plan *p, dval *out)
{
    if (!node_portable(p))
        return run_here(d, p, out);
    switch (p->kind) {
    case P_SCAN: return run_scan(d, p, out);
    case P_SUBQ:
    case P_FILTER:
    case P_PROJECT:
    case P_TRIM: return narrow(d, p, out);
    case P_JOIN: return run_join(d, p, out);
    case P_AGG: return run_agg(d, p, out);
    case P_SORT: return run_sort(d, p, out);
    case P_LIMIT:
        if (p->in->kind == P_SORT && node_portable(p->in) && lit_int(p->limit) &&
            lit_int(p->offset))
            return run_topk(d, p, out);
        return run_here(d, p, out);
    default: return run_here(d, p, out);
    }
}

int em__sql_dist_run(sql_exec *x, em_context *sc, const sql_dist_conf *c, const sql_plan *p,
                     sql_rel **out, em_rdd **rdd_out)
{
    dist d = {.x = x, .sc = sc, .c = c, .nparts = em_context_default_parallelism(sc)};
    dval v;
    int rc;
    if (d.nparts == 0)
        d.nparts = 2;
    rc = mark_plan(&d, p);
    if (rc == 0)
        rc = run_node(&d, p, &v);
    if (rc == 0 && rdd_out == NULL)
        rc = collect(&d, &v, out);
    if (rc == 0 && rdd_out != NULL) {
        if ((rc = materialize(&d, &v, NULL, 0, rdd_out)) == 0) {
            for (size_t i = 0; i < d.nrdds; i++) /* the result keeps its handle */
                if (d.rdds[i] == *rdd_out)
                    d.rdds[i] = NULL;
            d.nbcasts = 0; /* the dataset may read its broadcasts whenever it runs */
        }
    }
    for (size_t i = 0; i < d.nrdds; i++)
        em_rdd_release(d.rdds[i]);
    em_free(d.rdds);
    for (size_t i = 0; i < d.nbcasts; i++)
        em_broadcast_destroy(sc, d.bcasts[i]);
    if (rc < 0 && x->diag->err.code == 0)
        em__sql_diag(x->diag, rc, -1, "distributed execution failed");
    return rc < 0 ? x->diag->err.code : 0;
}

/* ---------------------------------------------------------------- EXPLAIN */
static int ex(const dist *d, const sql_plan *p, em_vbuf *b, int depth);

static int ex_line(em_vbuf *b, int depth, const char *what, const char *extra)
{
    return em_vbuf_printf(b, "%*s%s%s\n", 2 * depth, "", what, extra ? extra : "");
}

static int ex_children(const dist *d, const sql_plan *p, em_vbuf *b, int depth)
{
    int rc = 0;
    if (p->kind != P_SCAN && p->in)
        rc = ex(d, p->in, b, depth);
    if (rc == 0 && p->right)
        rc = ex(d, p->right, b, depth);
    return rc;
}

static int ex(const dist *d, const sql_plan *p, em_vbuf *b, int depth)
{
    char t[160];
    int rc;
    if (!node_portable(p)) {
        snprintf(t, sizeof t, "(node %d: correlated subquery)", p->kind);
        return (rc = ex_line(b, depth, "OnDriver ", t)) < 0 ? rc : ex_children(d, p, b, depth + 1);
    }
    switch (p->kind) {
    case P_SCAN:
        snprintf(t, sizeof t, "%s%s", p->table->name, p->pred ? " with filter" : "");
        return ex_line(b, depth, !p->table->loaded && p->table->emc
                                     ? "ColumnarScan(row groups) "
                                 : !p->table->loaded && p->table->csv_path
                                     ? (p->table->csv_multiline ? "CsvScan(whole files) "
                                                                 : "CsvScan(byte ranges) ")
                                     : "Scan(parallelized) ", t);
    case P_SUBQ: rc = ex_line(b, depth, "SubqueryScan", NULL); break;
    case P_FILTER: rc = ex_line(b, depth, "Filter", NULL); break;
    case P_PROJECT: rc = ex_line(b, depth, "Project", NULL); break;
    case P_TRIM: rc = ex_line(b, depth, "Trim", NULL); break;
    case P_JOIN:
        snprintf(t, sizeof t, "(%s, %u keys)", p->join == J_LEFT ? "LEFT" : "INNER", p->nkeys);
        rc = ex_line(b, depth, broadcast_right(d, p) ? "BroadcastHashJoin" : "ShuffleHashJoin",
                     t);
        if (rc == 0 && !broadcast_right(d, p))
            rc = ex_line(b, depth + 1, "Exchange(cogroup by key hash)", NULL);
        break;
    case P_AGG:
        if (aggs_mergeable(p)) {
            rc = ex_line(b, depth, "HashAggregate(final)", NULL);
            if (rc == 0)
                rc = ex_line(b, depth + 1, p->nexprs ? "Exchange(hash of group keys)"
                                                     : "Exchange(single partition)", NULL);
            if (rc == 0)
                rc = ex_line(b, depth + 2, "HashAggregate(partial)", NULL);
            return rc < 0 ? rc : ex_children(d, p, b, depth + 3);
        }
        rc = ex_line(b, depth, "HashAggregate(complete: DISTINCT or GROUP_CONCAT)", NULL);
        if (rc == 0)
            rc = ex_line(b, depth + 1, p->nexprs ? "Exchange(hash of group keys)"
                                                 : "Exchange(single partition)", NULL);
        return rc < 0 ? rc : ex_children(d, p, b, depth + 2);
    case P_SORT: rc = ex_line(b, depth, "Sort(range-partitioned, bytewise key)", NULL); break;
    case P_LIMIT:
        if (p->in->kind == P_SORT && node_portable(p->in) && lit_int(p->limit) &&
            lit_int(p->offset)) {
            rc = ex_line(b, depth, "TakeOrdered(top-k per partition, merged on the driver)",
                         NULL);
            return rc < 0 ? rc : ex_children(d, p->in, b, depth + 1);
        }
        rc = ex_line(b, depth, "OnDriver Limit", NULL);
        break;
    default:
        snprintf(t, sizeof t, "%s",
                 p->kind == P_DISTINCT ? "Distinct" : p->kind == P_SETOP ? "SetOp" : "OneRow");
        rc = ex_line(b, depth, "OnDriver ", t);
    }
    return rc < 0 ? rc : ex_children(d, p, b, depth + 1);
}

int em__sql_dist_explain(const sql_dist_conf *c, const sql_plan *p, em_vbuf *out)
{
    dist d = {.c = c};
    return ex(&d, p, out, 1);
}
