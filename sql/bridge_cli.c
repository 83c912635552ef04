/* sql/bridge_cli.c - what the commands need from the bridge: tables from files (--table
 * NAME=PATH with inferred types, --sql-init FILE), the SQL source of `ember ml ALGO --sql`
 * (mllib/ml_cli.h em_ml_cli_sql_ops) and `ember sql --export-libsvm`. docs/sql-ml.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/ml_cli.h"
#include "sql/bridge_int.h"
#include "sql/sql_int.h"

/* ---------------------------------------------------------------- tables */

/* Sets err from a statement's diagnostic: the message, the statement line and a caret. */
static int diag_err(const em_sql_diag *d, const char *sql, size_t len, const char *what,
                    em_err *err)
{
    em_vbuf b;
    em_vbuf_init(&b);
    em_sql_diag_format(&b, sql, len, d);
    while (b.len && b.data[b.len - 1] == '\n')
        b.len--;
    int rc = em_err_set(err, d->err.code ? d->err.code : EM_EINVAL, "%s: %.*s", what,
                        (int)b.len, b.data ? (const char *)b.data : "");
    em_vbuf_destroy(&b);
    return rc;
}

/* Runs every statement of text; errors say `what` (a file name or "--sql"). */
static int run_text(em_sql_session *s, const char *text, size_t len, const char *what,
                    em_err *err)
{
    size_t off = 0;
    while (off < len) {
        em_sql_result *r = NULL;
        em_sql_diag d;
        size_t used = 0;
        if (em_sql_exec(s, text + off, len - off, &used, &r, &d) < 0)
            return diag_err(&d, text + off, len - off, what, err);
        em_sql_result_free(r);
        off += used ? used : len - off;
    }
    return 0;
}

int em_sql_run_file(em_sql_session *s, const char *path, em_err *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = em_read_file(path, &buf, &len, err);
    if (rc < 0)
        return rc;
    rc = run_text(s, (const char *)buf, len, path, err);
    em_free(buf);
    return rc;
}

/* The narrowest type every value fits, as csv.c converts (strict strtoll / strtod). */
static uint8_t widen(uint8_t t, const em_sql_value *v)
{
    char *end;
    if (v->type == EM_SQL_NULL || t == EM_SQL_TEXT)
        return t;
    if (t <= EM_SQL_INT) {
        errno = 0;
        (void)strtoll(v->u.s, &end, 10);
        if (v->len > 0 && *end == 0 && errno == 0)
            return EM_SQL_INT;
    }
    (void)strtod(v->u.s, &end);
    return v->len > 0 && *end == 0 ? EM_SQL_DOUBLE : EM_SQL_TEXT;
}

/* Appends s as a quoted SQL token: q = '"' for names, '\'' for strings (doubled inside). */
static void put_quoted(em_vbuf *b, const char *s, size_t n, char q)
{
    em_vbuf_append(b, &q, 1);
    for (size_t i = 0; i < n; i++) {
        em_vbuf_append(b, &s[i], 1);
        if (s[i] == q)
            em_vbuf_append(b, &q, 1);
    }
    em_vbuf_append(b, &q, 1);
}

/* Reads the header and every row of path: the column names into *stmt as a CREATE TABLE
 * with the inferred types. */
static int infer_table(const char *name, const char *path, char delim, em_vbuf *stmt,
                       em_err *err)
{
    uint8_t *buf = NULL;
    size_t len = 0, off = 0;
    uint64_t line = 1;
    uint32_t ncols = 0, nf;
    char **cols = NULL;
    uint8_t *types = NULL;
    em_sql_value f[1024];
    em_vbuf scratch;
    em_vbuf_init(&scratch);
    int rc = em_read_file(path, &buf, &len, err);
    for (bool first = true; rc == 0; first = false) {
        uint64_t at = line;
        rc = em__sql_csv_record((const char *)buf, len, &off, delim, &scratch, f, 1024, &nf,
                                &line, err);
        if (rc == 1 && first)
            rc = em_err_set(err, EM_EINVAL, "%s: empty file (a header line is expected)",
                            path);
        if (rc != 0)
            break;
        if (first) {
            ncols = nf;
            cols = em_xcalloc(nf, sizeof *cols);
            types = em_xcalloc(nf, sizeof *types);
            for (uint32_t c = 0; c < nf; c++)
                cols[c] = em_xstrdup(f[c].type == EM_SQL_NULL ? "" : f[c].u.s);
        } else if (nf == 1 && f[0].type == EM_SQL_NULL)
            continue;   /* blank line */
        else if (nf != ncols)
            rc = em_err_set(err, EM_ECORRUPT, "line %llu: %u fields, the header has %u",
                            (unsigned long long)at, nf, ncols);
        else
            for (uint32_t c = 0; c < nf; c++)
                types[c] = widen(types[c], &f[c]);
    }
    if (rc == 1)
        rc = 0;
    if (rc < 0 && strncmp(err->msg, path, strlen(path)) != 0)
        em_err_prefix(err, "%s", path);
    if (rc == 0) {
        em_vbuf_printf(stmt, "CREATE TABLE ");
        put_quoted(stmt, name, strlen(name), '"');
        em_vbuf_append(stmt, " (", 2);
        for (uint32_t c = 0; c < ncols; c++) {
            if (c)
                em_vbuf_append(stmt, ", ", 2);
            put_quoted(stmt, cols[c], strlen(cols[c]), '"');
            /* a column of NULLs only: TEXT, the type that takes anything */
            em_vbuf_printf(stmt, " %s", types[c] == EM_SQL_INT      ? "INTEGER"
                                        : types[c] == EM_SQL_DOUBLE ? "DOUBLE"
                                                                    : "TEXT");
        }
        em_vbuf_printf(stmt, ") USING csv OPTIONS (path ");
        put_quoted(stmt, path, strlen(path), '\'');
        em_vbuf_printf(stmt, ", header 'true', delimiter '%s')", delim == '\t' ? "\\t" : ",");
    }
    for (uint32_t c = 0; cols && c < ncols; c++)
        em_free(cols[c]);
    em_free(cols);
    em_free(types);
    em_free(buf);
    em_vbuf_destroy(&scratch);
    return rc;
}

int em_sql_attach_csv(em_sql_session *s, const char *name, const char *path, em_err *err)
{
    size_t n = strlen(path);
    char delim = n > 4 && strcmp(path + n - 4, ".tsv") == 0 ? '\t' : ',';
    em_vbuf stmt;
    em_vbuf_init(&stmt);
    int rc = infer_table(name, path, delim, &stmt, err);
    if (rc == 0) {
        char *what = em_xasprintf("--table %s=%s", name, path);
        rc = run_text(s, (const char *)stmt.data, stmt.len, what, err);
        em_free(what);
    }
    em_vbuf_destroy(&stmt);
    return rc;
}

/* A session with the --table and --sql-init tables. */
static em_sql_session *session_with(const char *const *tables, uint32_t ntables,
                                    const char *const *init, uint32_t ninit, em_err *err)
{
    em_sql_session *s = em_sql_session_new(err);
    for (uint32_t i = 0; s && i < ntables; i++) {
        const char *eq = strchr(tables[i], '=');
        char *name = em_xasprintf("%.*s", (int)(eq - tables[i]), tables[i]);
        int rc = em_sql_attach_csv(s, name, eq + 1, err);
        em_free(name);
        if (rc < 0) {
            em_sql_session_free(s);
            return NULL;
        }
    }
    for (uint32_t i = 0; s && i < ninit; i++)
        if (em_sql_run_file(s, init[i], err) < 0) {
            em_sql_session_free(s);
            return NULL;
        }
    return s;
}

static int query(em_context *sc, em_sql_session *s, const char *sql, const char *what,
                 uint32_t nparts, em_sql_dataset *out, em_err *err)
{
    em_sql_diag d;
    int rc = em_sql_query_dataset(sc, s, sql, nparts, out, &d);
    if (rc < 0) {
        if (d.pos >= 0)
            return diag_err(&d, sql, strlen(sql), what, err);
        *err = d.err;
        em_err_prefix(err, "%s", what);
    }
    return rc;
}

/* "a,b,c" into a new array of new strings (*n set). */
static char **split_list(const char *s, uint32_t *n)
{
    uint32_t k = 1;
    for (const char *p = s; *p; p++)
        k += *p == ',';
    char **v = em_xcalloc(k, sizeof *v);
    *n = 0;
    for (const char *p = s;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ')) p++, len--;
        while (len && p[len - 1] == ' ') len--;
        if (len)
            v[(*n)++] = em_xasprintf("%.*s", (int)len, p);
        if (!e)
            break;
        p = e + 1;
    }
    return v;
}

static void free_list(char **v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        em_free(v[i]);
    em_free(v);
}

/* ---------------------------------------------------------------- ember ml --sql */

static int cli_load(em_ml_cli *c, em_context *sc, em_ml_data *train, em_ml_data *test,
                    em_err *err)
{
    const em_ml_cli_sql *q = &c->sql;
    em_sql_dataset tr = {0}, te = {0};
    em_sql_ml_encoding *e = NULL;
    uint32_t nf = 0;
    char **feats = q->features ? split_list(q->features, &nf) : NULL;
    em_sql_ml_opts o = {.label = c->ro.label, .features = (const char *const *)feats,
                        .nfeatures = nf, .nulls = (em_sql_ml_nulls)q->nulls,
                        .layout = c->ro.dense ? EM_SQL_ML_DENSE : EM_SQL_ML_AUTO,
                        .drop_last = q->drop_last,
                        .split_fraction = test ? q->split : 0, .split_seed = q->split_seed};
    int rc = 0;
    if (em_sql_ml_register() < 0)
        return em_err_set(err, EM_EINVAL, "sql.ml: a task function name is taken");
    em_sql_session *s = session_with(q->tables, q->ntables, q->init, q->ninit, err);
    if (!s)
        rc = err->code ? err->code : EM_ENOMEM;
    if (rc == 0)
        rc = query(sc, s, q->query, "--sql", c->ro.min_partitions, &tr, err);
    if (rc == 0 && test && q->test_query)
        rc = query(sc, s, q->test_query, "--test-sql", c->ro.min_partitions, &te, err);
    if (rc == 0)
        rc = em_sql_ml_fit(&tr, &o, &e, err);
    if (rc == 0)
        rc = em_sql_ml_transform(&tr, e, q->split > 0 ? EM_SQL_ML_TRAIN : EM_SQL_ML_ALL, train,
                                 err);
    if (rc == 0 && test && (q->test_query || q->split > 0)) {
        rc = em_sql_ml_transform(q->test_query ? &te : &tr, e,
                                 q->test_query ? EM_SQL_ML_ALL : EM_SQL_ML_TEST, test, err);
        if (rc < 0)
            em_ml_data_release(train);
    }
    if (rc == 0) {
        for (int k = 0; k < 2; k++) {
            const em_ml_data *d = k ? test : train;
            if (d && d->rows && d->skipped)
                fprintf(stderr, "ember ml %s: %s: skipped %llu rows with a NULL\n", c->algo,
                        k ? "--test-sql" : "--sql", (unsigned long long)d->skipped);
        }
        c->sql.state = e;
        e = NULL;
    }
    em_sql_ml_encoding_free(e);
    em_sql_dataset_release(&tr);
    em_sql_dataset_release(&te);
    em_sql_session_free(s);
    free_list(feats, nf);
    return rc;
}

static json_t *cli_mapping(const em_ml_cli *c)
{
    return c->sql.state ? em_sql_ml_encoding_json(c->sql.state) : NULL;
}

static void cli_release(em_ml_cli *c)
{
    em_sql_ml_encoding_free(c->sql.state);
    c->sql.state = NULL;
}

static const em_ml_cli_sql_ops cli_ops = {cli_load, cli_mapping, cli_release};

const em_ml_cli_sql_ops *em_sql_ml_cli_ops(void)
{
    return &cli_ops;
}
