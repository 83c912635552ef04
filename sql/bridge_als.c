/* sql/bridge_als.c - a query's result as ALS's triple records (sql/sql_als.h).
 *
 * FORMAT of the task context of sql.als.triples (little-endian): u32 magic "SQAL", u32 skip
 * (rows with a NULL left out), u32 accumulator id (rows skipped). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sql/sql_als.h"
#include "sql/sql_ml.h"

#define SQAL_MAGIC 0x4c415153u   /* "SQAL" */

/* The text of an id value (INTEGER as decimal, TEXT as is) into buf/b; NULL for other types
 * (the driver checked the declared types; a NULL value is the caller's). */
static const char *id_text(const em_sql_value *v, char buf[32], size_t *n)
{
    if (v->type == EM_SQL_TEXT) {
        *n = v->len;
        return v->u.s;
    }
    if (v->type == EM_SQL_INT) {
        *n = (size_t)snprintf(buf, 32, "%lld", (long long)v->u.i);
        return buf;
    }
    return NULL;
}

static int fn_triples(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err)
{
    static const char *const what[3] = {"user id", "item id", "rating"};
    em_slice b = c->blob;
    em_rec rec;
    em_vbuf t;
    uint64_t row = 0, skipped = 0;
    int rc;
    if (b.n != 12 || em_load_le32(b.p) != SQAL_MAGIC)
        return em_err_set(err, EM_ECORRUPT, "sql.als.triples: context of %zu bytes", b.n);
    bool skip = em_load_le32(b.p + 4) != 0;
    uint32_t acc = em_load_le32(b.p + 8);
    em_vbuf_init(&t);
    while ((rc = em_iter_next(in, &rec, err)) == 1) {
        em_sql_value v[3];
        size_t used = 0, ul = 0, il = 0;
        char ub[32], ib[32];
        row++;
        if ((rc = em_sql_row_decode(rec.val.p, rec.val.n, v, 3, &used, err)) < 0)
            break;
        int bad = -1;
        for (int k = 0; k < 3 && bad < 0; k++)
            if (v[k].type == EM_SQL_NULL)
                bad = k;
        if (bad >= 0) {
            if (skip) {
                skipped++;
                continue;
            }
            rc = em_err_set(err, EM_EINVAL, "row %llu of partition %u: the %s is NULL (use "
                            "--skip-bad-lines to leave such rows out)",
                            (unsigned long long)row, index, what[bad]);
            break;
        }
        const char *u = id_text(&v[0], ub, &ul), *it = id_text(&v[1], ib, &il);
        double r = v[2].type == EM_SQL_DOUBLE ? v[2].u.d
                   : v[2].type == EM_SQL_INT || v[2].type == EM_SQL_BOOL ? (double)v[2].u.i
                                                                         : NAN;
        if (!u || !it || !isfinite(r) || fabs(r) > 3.4e38) {
            rc = em_err_set(err, EM_EINVAL, "row %llu of partition %u: %s", (unsigned long long)row,
                            index, !u ? "the user id is neither INTEGER nor TEXT"
                                  : !it ? "the item id is neither INTEGER nor TEXT"
                                        : "the rating is not a finite number");
            break;
        }
        em_vbuf_clear(&t);
        if ((rc = em_als_triple_encode(&t, u, ul, it, il, (float)r, err)) < 0) {
            em_err_prefix(err, "row %llu of partition %u", (unsigned long long)row, index);
            break;
        }
        if ((rc = em_emit_val(out, em_slice_make(t.data, t.len), err)) < 0)
            break;
    }
    em_vbuf_destroy(&t);
    if (rc == 0 && skipped)
        em_task_acc_add_i64(c->task, acc, (int64_t)skipped);
    return rc;
}

static const em_fn_entry als_fns[] = {
    {"sql.als.triples", EM_FN_PARTITION, EM_FN(fn_triples)},
};

int em_sql_als_register(void)
{
    return em_fn_register_table(als_fns, sizeof als_fns / sizeof als_fns[0]);
}

/* err from a statement's diagnostic, with the caret under the offending token. */
static int diag_err(const em_sql_diag *d, const char *sql, em_err *err)
{
    em_vbuf b;
    em_vbuf_init(&b);
    if (d->pos >= 0)
        em_sql_diag_format(&b, sql, strlen(sql), d);
    else
        em_vbuf_printf(&b, "%s", d->err.msg);
    while (b.len && b.data[b.len - 1] == '\n')
        b.len--;
    int rc = em_err_set(err, d->err.code ? d->err.code : EM_EINVAL, "%.*s", (int)b.len,
                        b.data ? (const char *)b.data : "");
    em_vbuf_destroy(&b);
    return rc;
}

static bool id_type(em_sql_type t)
{
    return t == EM_SQL_INT || t == EM_SQL_TEXT;
}

static int query(em_context *sc, const em_als_sql_query *q, em_rdd **out, uint64_t *skipped,
                 em_err *err)
{
    em_sql_dataset d = {0};
    em_sql_diag diag;
    em_rdd *t = NULL;
    int rc = 0;
    *out = NULL;
    *skipped = 0;
    if (em_sql_register() < 0 || em_sql_als_register() < 0)
        return em_err_set(err, EM_EINVAL, "sql: a task function name is taken");
    em_sql_session *s = em_sql_session_new(err);
    if (!s)
        return err->code ? err->code : em_err_set(err, EM_ENOMEM, "sql session");
    for (uint32_t i = 0; rc == 0 && i < q->ntables; i++) {
        const char *eq = strchr(q->tables[i], '=');
        char *name = em_xasprintf("%.*s", (int)(eq - q->tables[i]), q->tables[i]);
        rc = em_sql_attach_csv(s, name, eq + 1, err);
        em_free(name);
    }
    for (uint32_t i = 0; rc == 0 && i < q->ninit; i++)
        rc = em_sql_run_file(s, q->init[i], err);
    if (rc == 0 && (rc = em_sql_query_dataset(sc, s, q->query, 0, &d, &diag)) < 0)
        rc = diag_err(&diag, q->query, err);
    if (rc == 0 && d.ncols != 3)
        rc = em_err_set(err, EM_EINVAL, "the query returns %u columns; ALS takes three: user, "
                        "item, rating", d.ncols);
    for (uint32_t k = 0; rc == 0 && k < 2; k++)
        if (!id_type(d.types[k]))
            rc = em_err_set(err, EM_EINVAL, "column %u (%s) is %s: an id is INTEGER or TEXT",
                            k + 1, d.names[k], em_sql_type_name(d.types[k]));
    if (rc == 0 && (d.types[2] == EM_SQL_TEXT || d.types[2] == EM_SQL_DATE))
        rc = em_err_set(err, EM_EINVAL, "column 3 (%s) is %s: a rating is a number", d.names[2],
                        em_sql_type_name(d.types[2]));
    if (rc == 0) {
        uint32_t acc = em_accumulator_new(sc, "sql.als.null_rows");
        uint8_t blob[12];
        em_store_le32(blob, SQAL_MAGIC);
        em_store_le32(blob + 4, q->skip_bad ? 1 : 0);
        em_store_le32(blob + 8, acc);
        t = em_rdd_persist(em_rdd_map_partitions(d.rows, "sql.als.triples",
                                                 em_slice_make(blob, sizeof blob), false),
                           EM_PERSIST_MEMORY_AND_DISK);
        uint64_t n = 0;
        rc = em_rdd_error(t) ? em_err_copy(err, em_rdd_error(t)) : em_rdd_count(t, &n, err);
        *skipped = (uint64_t)em_accumulator_i64(sc, acc);
    }
    if (rc == 0) {
        *out = t;
        t = NULL;
    }
    em_rdd_release(t);
    em_sql_dataset_release(&d);
    em_sql_session_free(s);
    return rc;
}

static const em_als_sql_ops ops = {query};

const em_als_sql_ops *em_sql_als_cli_ops(void)
{
    return &ops;
}
