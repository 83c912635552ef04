/* sql/bridge.c - the driver side of the SQL-to-MLlib bridge (sql/sql_ml.h): a query's
 * result as a dataset, fitting the feature mapping (TEXT values counted on the engine,
 * then indexed by frequency), applying it as a job, the mapping as JSON, the LIBSVM
 * export. The tasks and the bytes they read are in bridge_task.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sql/bridge_int.h"
#include "sql/sql_int.h"

/* ---------------------------------------------------------------- datasets */

/* Fills out's schema from r (a result; its rows are not read). */
static void take_schema(const em_sql_result *r, em_sql_dataset *out)
{
    uint32_t n = em_sql_result_ncols(r);
    out->ncols = n;
    out->names = em_xcalloc((size_t)n + 1, sizeof *out->names);
    out->types = em_xcalloc((size_t)n + 1, sizeof *out->types);
    for (uint32_t i = 0; i < n; i++) {
        out->names[i] = em_xstrdup(em_sql_result_col_name(r, i));
        out->types[i] = em_sql_result_col_type(r, i);
    }
}

/* Runs the query statement sql[0..len) and makes its rows a dataset: the one place a
 * result becomes rows on the engine. em_sql_query_rdd picks the path (sql/sql.h "what runs
 * where"): small inputs run on the driver and are parallelized, large ones stay on the
 * executors as the query's last stage. nparts > 0 (--partitions) repartitions a result
 * with another partition count. */
static int query_rows(em_context *sc, em_sql_session *s, const char *sql, size_t len,
                      uint32_t nparts, em_sql_dataset *out, em_sql_diag *diag)
{
    em_sql_result *schema = NULL;
    em_rdd *rows = em_sql_query_rdd(s, sc, sql, len, &schema, diag);
    if (!rows)
        return diag->err.code ? diag->err.code : EM_ENOMEM;
    out->sc = sc;
    take_schema(schema, out);
    em_sql_result_free(schema);
    if (nparts > 0 && em_rdd_num_partitions(rows) != nparts) {
        em_rdd *re = em_rdd_repartition(rows, nparts);
        em_rdd_release(rows);
        rows = re;
    }
    out->rows = rows;
    const em_err *re = em_rdd_error(out->rows);
    if (re) {
        diag->err = *re;
        return re->code;
    }
    return 0;
}

/* Whether nothing but blanks, comments and ';' follows the statement at sql[0..len):
 * *end = the statement's bytes. */
static bool is_last(const char *sql, size_t len, size_t *end)
{
    em_arena a;
    em_sql_diag d;
    size_t ntok = 0, e2 = 0;
    bool last = false;
    em_arena_init(&a, 4096);
    *end = len;
    if (em__sql_lex(&a, sql, len, &ntok, end, &d) != NULL) {
        last = true;
        for (size_t off = *end; last && off < len; off += e2) {
            em_arena_reset(&a);   /* reusable: reset keeps the chunk size */
            sql_tok *t = em__sql_lex(&a, sql + off, len - off, &ntok, &e2, &d);
            last = t && (t[0].kind == TK_EOF || (t[0].kind == TK_OP && !strcmp(t[0].text, ";")));
            if (e2 == 0)
                break;
        }
    }
    em_arena_reset(&a);
    return last;
}

int em_sql_query_dataset(em_context *sc, em_sql_session *s, const char *sql, uint32_t nparts,
                         em_sql_dataset *out, em_sql_diag *diag)
{
    size_t len = strlen(sql), off = 0, end;
    memset(out, 0, sizeof *out);
    memset(diag, 0, sizeof *diag);
    diag->pos = -1;
    while (off < len) {
        int rc;
        if (is_last(sql + off, len - off, &end))
            rc = query_rows(sc, s, sql + off, len - off, nparts, out, diag);
        else {   /* a statement before the query: CREATE TABLE ... */
            em_sql_result *r = NULL;
            size_t used = 0;
            rc = em_sql_exec(s, sql + off, len - off, &used, &r, diag);
            em_sql_result_free(r);
            end = used ? used : len - off;
        }
        if (rc < 0) {
            if (diag->pos >= 0)
                diag->pos += (int64_t)off;
            em_sql_dataset_release(out);
            return rc;
        }
        if (out->rows)
            return 0;
        off += end;
    }
    return em_err_set(&diag->err, EM_EINVAL, "no query (a SELECT is expected)");
}

void em_sql_dataset_release(em_sql_dataset *d)
{
    for (uint32_t i = 0; d->names && i < d->ncols; i++)
        em_free(d->names[i]);
    em_free(d->names);
    em_free(d->types);
    em_rdd_release(d->numbered);
    em_rdd_release(d->rows);
    memset(d, 0, sizeof *d);
}

int em_sql_dataset_col(const em_sql_dataset *d, const char *name)
{
    for (uint32_t i = 0; i < d->ncols; i++)
        if (strcasecmp(d->names[i], name) == 0)
            return (int)i;
    return -1;
}

/* The rows with their numbers (made once: zip_with_index runs a job). */
static em_rdd *numbered(em_sql_dataset *d, em_err *err)
{
    if (!d->numbered) {
        d->numbered = em_rdd_zip_with_index(d->rows);
        const em_err *re = em_rdd_error(d->numbered);
        if (re) {
            *err = *re;
            em_rdd_release(d->numbered);
            d->numbered = NULL;
        }
    }
    return d->numbered;
}

/* ---------------------------------------------------------------- fit */

static int unknown_column(const em_sql_dataset *d, const char *name, em_err *err)
{
    em_vbuf b;
    em_vbuf_init(&b);
    for (uint32_t i = 0; i < d->ncols; i++)
        em_vbuf_printf(&b, "%s%s", i ? ", " : "", d->names[i]);
    int rc = em_err_set(err, EM_EPLAN, "unknown column '%s' (the query's columns: %s)", name,
                        b.data ? (const char *)b.data : "");
    em_vbuf_destroy(&b);
    return rc;
}

static void col_init(sml_col *c, const em_sql_dataset *d, int col)
{
    c->name = em_xstrdup(d->names[col]);
    c->type = (uint8_t)d->types[col];
    c->text = d->types[col] == EM_SQL_TEXT;
}

/* Resolves the label and feature columns into e (no values yet) and cols[]. */
static int bind_columns(const em_sql_dataset *d, const em_sql_ml_opts *o, em_sql_ml_encoding *e,
                        uint32_t *cols, em_err *err)
{
    int lc = -1;
    if (o->label) {
        if ((lc = em_sql_dataset_col(d, o->label)) < 0)
            return unknown_column(d, o->label, err);
        e->labeled = true;
        col_init(&e->label, d, lc);
        cols[0] = (uint32_t)lc;
    }
    uint32_t want = o->features ? o->nfeatures : d->ncols - (lc >= 0);
    e->feat = em_xcalloc((size_t)want + 1, sizeof *e->feat);
    for (uint32_t i = 0, k = 0; i < (o->features ? o->nfeatures : d->ncols); i++) {
        int c = o->features ? em_sql_dataset_col(d, o->features[i]) : (int)i;
        if (c < 0)
            return unknown_column(d, o->features[i], err);
        if (c == lc) {
            if (o->features)
                return em_err_set(err, EM_EINVAL, "column '%s' is the label and a feature",
                                  d->names[c]);
            continue;
        }
        col_init(&e->feat[k], d, c);
        cols[e->labeled + k] = (uint32_t)c;
        e->nfeat = ++k;
    }
    if (e->nfeat == 0)
        return em_err_set(err, EM_EINVAL, "no feature columns (the query returns %u column%s)",
                          d->ncols, d->ncols == 1 ? "" : "s");
    return 0;
}

typedef struct vcount {
    uint32_t slot;
    int64_t count;
    em_slice v;
} vcount;

static int vcount_cmp(const void *pa, const void *pb)
{
    const vcount *a = pa, *b = pb;
    if (a->slot != b->slot)
        return a->slot < b->slot ? -1 : 1;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;   /* most frequent first */
    return em_slice_cmp(a->v, b->v);           /* ties by the value's bytes */
}

/* Counts the values of the indexed columns (slots[k] is the k-th: the label or a feature)
 * and stores them in frequency order. */
static int index_values(em_sql_dataset *d, const em_sql_ml_opts *o, sml_col **slots,
                        const uint32_t *cols, uint32_t nslots, em_err *err)
{
    em_rdd *num = numbered(d, err);
    if (!num)
        return err->code;
    if (em_sql_ml_register() < 0)
        return em_err_set(err, EM_EINVAL, "sql.ml: a task function name is taken");
    sml_task t = {.ncols = d->ncols, .side = o->split_fraction > 0 ? EM_SQL_ML_TRAIN : 0,
                  .fraction = o->split_fraction, .seed = o->split_seed, .n = nslots};
    em_vbuf blob;
    em_vbuf_init(&blob);
    if (em__sml_task_encode(&t, cols, &blob) < 0) {
        em_vbuf_destroy(&blob);
        return em_err_set(err, EM_ENOMEM, "sql.ml fit: out of memory");
    }
    em_rdd *vals = em_rdd_map_partitions(num, "sql.ml.values",
                                         em_slice_make(blob.data, blob.len), false);
    em_vbuf_destroy(&blob);
    em_records recs = {0};
    int rc = em_rdd_count_by_value(vals, &recs, err);
    em_rdd_release(vals);
    if (rc < 0)
        return em_err_prefix(err, "counting the TEXT values"), rc;
    vcount *vc = em_xcalloc(recs.n + 1, sizeof *vc);
    for (size_t i = 0; i < recs.n; i++) {
        const em_rec *r = &recs.recs[i];
        if (r->key.n < 4 || r->val.n != 8 || em_load_le32(r->key.p) >= nslots) {
            rc = em_err_set(err, EM_ECORRUPT, "sql.ml fit: a bad value count record");
            goto out;
        }
        vc[i] = (vcount){em_load_le32(r->key.p), em_dec_i64(r->val.p),
                         em_slice_make(r->key.p + 4, r->key.n - 4)};
    }
    qsort(vc, recs.n, sizeof *vc, vcount_cmp);
    for (size_t i = 0; i < recs.n; i++) {
        sml_col *c = slots[vc[i].slot];
        if (!c->vals) {
            size_t n = 0;
            while (i + n < recs.n && vc[i + n].slot == vc[i].slot)
                n++;
            c->vals = em_xcalloc(n + 1, sizeof *c->vals);
            c->lens = em_xcalloc(n + 1, sizeof *c->lens);
        }
        c->vals[c->nvals] = em_xmalloc(vc[i].v.n + 1);
        memcpy(c->vals[c->nvals], vc[i].v.p, vc[i].v.n);
        c->vals[c->nvals][vc[i].v.n] = 0;
        c->lens[c->nvals++] = (uint32_t)vc[i].v.n;
    }
    for (uint32_t k = 0; k < nslots; k++)
        if (em__sml_col_index(slots[k]) < 0) {
            rc = em_err_set(err, EM_ENOMEM, "sql.ml fit: out of memory");
            goto out;
        }
out:
    em_free(vc);
    em_records_destroy(&recs);
    return rc;
}

int em_sql_ml_fit(const em_sql_dataset *d, const em_sql_ml_opts *o, em_sql_ml_encoding **out,
                  em_err *err)
{
    em_sql_ml_encoding *e = em_xcalloc(1, sizeof *e);
    uint32_t *cols = em_xcalloc((size_t)d->ncols + 1, sizeof *cols);
    sml_col **slots = em_xcalloc((size_t)d->ncols + 1, sizeof *slots);
    uint32_t *scols = em_xcalloc((size_t)d->ncols + 1, sizeof *scols), ns = 0;
    bool any_text = false;
    e->nulls = (uint8_t)o->nulls;
    e->drop_last = o->drop_last;
    e->split_fraction = o->split_fraction;
    e->split_seed = o->split_seed;
    int rc = bind_columns(d, o, e, cols, err);
    for (uint32_t k = 0; rc == 0 && k < e->labeled + e->nfeat; k++) {
        sml_col *c = k < e->labeled ? &e->label : &e->feat[k - e->labeled];
        if (!c->text)
            continue;
        any_text |= k >= e->labeled;
        slots[ns] = c;
        scols[ns++] = cols[k];
    }
    /* The dataset handle is const to callers; numbering it once is an internal cache. */
    if (rc == 0 && ns > 0)
        rc = index_values((em_sql_dataset *)d, o, slots, scols, ns, err);
    if (rc == 0 && e->labeled && e->label.text && e->label.nvals == 0)
        rc = em_err_set(err, EM_EINVAL, "label column '%s': no values", e->label.name);
    if (rc == 0 && (rc = em__sml_finish(e)) < 0)
        em_err_set(err, EM_ENOMEM, "sql.ml fit: out of memory");
    if (rc == 0 && e->dim == 0)
        rc = em_err_set(err, EM_EINVAL, "no features: the TEXT feature columns have no values");
    e->sparse = o->layout == EM_SQL_ML_SPARSE || (o->layout == EM_SQL_ML_AUTO && any_text);
    em_free(cols);
    em_free(slots);
    em_free(scols);
    if (rc < 0) {
        em_sql_ml_encoding_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

uint32_t em_sql_ml_encoding_dim(const em_sql_ml_encoding *e)
{
    return e->dim;
}

const char *em_sql_ml_encoding_feature(const em_sql_ml_encoding *e, uint32_t i)
{
    return i < e->dim ? e->fnames[i] : NULL;
}

/* ---------------------------------------------------------------- transform */

int em_sql_ml_transform(const em_sql_dataset *d, const em_sql_ml_encoding *e,
                        em_sql_ml_side side, em_ml_data *out, em_err *err)
{
    uint32_t n = e->labeled + e->nfeat, *cols = em_xcalloc((size_t)n + 1, sizeof *cols);
    em_vbuf blob;
    em_rdd *pts = NULL;
    int rc = 0;
    memset(out, 0, sizeof *out);
    em_vbuf_init(&blob);
    if (em_sql_ml_register() < 0)
        rc = em_err_set(err, EM_EINVAL, "sql.ml: a task function name is taken");
    for (uint32_t k = 0; k < n && rc == 0; k++) {
        const sml_col *c = k < e->labeled ? &e->label : &e->feat[k - e->labeled];
        int col = em_sql_dataset_col(d, c->name);
        if (col < 0)
            rc = unknown_column(d, c->name, err);
        cols[k] = (uint32_t)col;
    }
    if (side != EM_SQL_ML_ALL && !(e->split_fraction > 0))
        side = side == EM_SQL_ML_TRAIN ? EM_SQL_ML_ALL : side;
    em_rdd *num = rc == 0 ? numbered((em_sql_dataset *)d, err) : NULL;
    if (!num)
        rc = rc ? rc : err->code;
    sml_task t = {.ncols = d->ncols, .side = (uint8_t)side, .fraction = e->split_fraction,
                  .seed = e->split_seed, .n = n};
    if (rc == 0)
        t.acc = em_accumulator_new(d->sc, "sql.ml.skipped");
    if (rc == 0 && (em__sml_task_encode(&t, cols, &blob) < 0 ||
                    em_sql_ml_encoding_encode(e, &blob) < 0))
        rc = em_err_set(err, EM_ENOMEM, "sql.ml transform: out of memory");
    if (rc == 0) {
        em_slice ctx = em_slice_make(blob.data, blob.len);
        pts = e->sparse ? em_rdd_map_partitions(num, "sql.ml.encode", ctx, false)
                        : em_rdd_map_partitions_fixed(num, "sql.ml.encode", ctx, false,
                                                      8 * (e->dim + e->labeled));
        em_rdd_persist(pts, EM_PERSIST_MEMORY_AND_DISK);
        rc = em_rdd_count(pts, &out->nrows, err);
    }
    if (rc == 0) {
        out->rows = pts;
        out->sparse = e->sparse;
        out->labeled = e->labeled;
        out->dim = e->dim;
        out->skipped = (uint64_t)em_accumulator_i64(d->sc, t.acc);
    } else
        em_rdd_release(pts);
    em_vbuf_destroy(&blob);
    em_free(cols);
    return rc;
}

int em_sql_ml_points(const em_sql_dataset *d, const em_sql_ml_opts *o, em_ml_data *out,
                     em_sql_ml_encoding **enc, em_err *err)
{
    em_sql_ml_encoding *e = NULL;
    int rc = em_sql_ml_fit(d, o, &e, err);
    if (rc == 0)
        rc = em_sql_ml_transform(d, e, o->split_fraction > 0 ? EM_SQL_ML_TRAIN : EM_SQL_ML_ALL,
                                 out, err);
    if (rc == 0 && enc)
        *enc = e;
    else
        em_sql_ml_encoding_free(e);
    return rc;
}

/* ---------------------------------------------------------------- the mapping as JSON */

static json_t *vals_json(const sml_col *c)
{
    json_t *v = json_array();
    for (uint32_t k = 0; k < c->nvals; k++)
        json_array_append_new(v, json_stringn(c->vals[k], c->lens[k]));
    return v;
}

static json_t *col_json(const sml_col *c, bool feature)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "type", json_string(em_sql_type_name((em_sql_type)c->type)));
    if (feature) {
        json_object_set_new(o, "first", json_integer(c->first));
        json_object_set_new(o, "width", json_integer(c->width));
    }
    if (c->text)
        json_object_set_new(o, "values", vals_json(c));
    return o;
}

json_t *em_sql_ml_encoding_json(const em_sql_ml_encoding *e)
{
    static const char *const nulls[] = {"error", "skip", "nan"};
    json_t *o = json_object(), *cols = json_array();
    if (e->labeled) {
        json_object_set_new(o, "label", json_string(e->label.name));
        if (e->label.text)
            json_object_set_new(o, "label_values", vals_json(&e->label));
    }
    json_object_set_new(o, "dim", json_integer(e->dim));
    json_object_set_new(o, "layout", json_string(e->sparse ? "sparse" : "dense"));
    json_object_set_new(o, "nulls", json_string(nulls[e->nulls % 3]));
    if (e->drop_last)
        json_object_set_new(o, "drop_last", json_true());
    if (e->split_fraction > 0) {
        json_object_set_new(o, "split_fraction", json_real(e->split_fraction));
        json_object_set_new(o, "split_seed", json_integer((json_int_t)e->split_seed));
    }
    for (uint32_t i = 0; i < e->nfeat; i++)
        json_array_append_new(cols, col_json(&e->feat[i], true));
    json_object_set_new(o, "columns", cols);
    return o;
}

int em_sql_ml_encoding_save(const em_sql_ml_encoding *e, const char *path, em_err *err)
{
    json_t *j = em_sql_ml_encoding_json(e);
    char *tmp = em_xasprintf("%s.tmp", path);
    int rc = json_dump_file(j, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (rc != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        rc = em_err_set(err, EM_EIO, "%s: cannot write the feature mapping", path);
    }
    em_free(tmp);
    return rc;
}

/* ---------------------------------------------------------------- LIBSVM export */

int em_sql_ml_export_libsvm(const em_sql_dataset *d, const em_sql_ml_opts *o, const char *dir,
                            const char *mapping, em_err *err)
{
    em_sql_ml_encoding *e = NULL;
    em_ml_data pts;
    if (!o->label)
        return em_err_set(err, EM_EINVAL, "LIBSVM export: a label column is required");
    int rc = em_sql_ml_points(d, o, &pts, &e, err);
    if (rc < 0)
        return rc;
    rc = em_ml_write(&pts, dir, EM_ML_LIBSVM, err);
    if (rc == 0 && mapping)
        rc = em_sql_ml_encoding_save(e, mapping, err);
    em_ml_data_release(&pts);
    em_sql_ml_encoding_free(e);
    return rc;
}
