/* sql/catalog.c - the session: its tables, and the statements that read and change them
 * (CREATE TABLE [AS], INSERT, DROP, CREATE/DROP INDEX as no-ops, SHOW TABLES, DESCRIBE,
 * EXPLAIN, SELECT), and results.
 *
 * A statement runs in its own arena, which its result takes over. A failed statement leaves
 * the session as it was: INSERT converts every row before appending any, CREATE TABLE AS
 * builds the table before adding it. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/stat.h>
#include <unistd.h>

#include "engine/ember.h"
#include "sql/colfile.h"
#include "sql/sql_int.h"

struct sql_catalog {
    sql_table **tables;
    size_t n, cap;
    const char **names;   /* sorted copy for em_sql_session_tables */
};

struct em_sql_session {
    sql_catalog cat;
    struct em_context *sc;   /* for the distributed path; NULL = local only */
    struct em_rdd **want_rdd; /* em_sql_query_rdd: where the SELECT's dataset goes */
};

struct em_sql_result {
    em_arena arena;
    uint32_t ncols;
    const char **names;
    uint8_t *types;
    sql_rel *rel;
    uint64_t changes;
};

/* ---------------------------------------------------------------- tables */
sql_table *em__sql_catalog_find(sql_catalog *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcasecmp(c->tables[i]->name, name) == 0)
            return c->tables[i];
    return NULL;
}

const char *em__sql_catalog_suggest(sql_catalog *c, const char *name)
{
    int best = 3;
    const char *bn = NULL;
    for (size_t i = 0; i < c->n; i++) {
        int d = em__sql_edit_distance(name, c->tables[i]->name);
        if (d < best && (size_t)d < strlen(name)) {
            best = d;
            bn = c->tables[i]->name;
        }
    }
    return bn;
}

static void table_free(sql_table *t)
{
    if (t == NULL)
        return;
    for (uint32_t i = 0; i < t->ncols; i++) {
        em_free(t->cols[i]);
        em_free(t->type_text[i]);
    }
    em_free(t->cols);
    em_free(t->type_text);
    em_free(t->types);
    em_free(t->rows);
    em_arena_destroy(&t->strings);
    em_free(t->csv_path);
    em__sql_cf_list_free(t->emc_files, t->emc_nfiles);
    em_free(t->emc_nrg);
    em_free(t->name);
    em_free(t);
}

static sql_table *table_new(const char *name, uint32_t ncols)
{
    sql_table *t = em_calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    em_arena_init(&t->strings, 64 * 1024);
    t->loaded = true;
    t->ncols = ncols;
    t->name = em_strdup(name);
    t->cols = em_calloc(ncols, sizeof *t->cols);
    t->type_text = em_calloc(ncols, sizeof *t->type_text);
    t->types = em_calloc(ncols, 1);
    if (t->name == NULL || t->cols == NULL || t->type_text == NULL || t->types == NULL) {
        t->ncols = 0;
        table_free(t);
        return NULL;
    }
    return t;
}

static int set_col(sql_table *t, uint32_t i, const char *name, int type, const char *text)
{
    t->cols[i] = em_strdup(name);
    t->type_text[i] = em_strdup(text ? text : "");
    t->types[i] = (uint8_t)type;
    return t->cols[i] && t->type_text[i] ? 0 : EM_ENOMEM;
}

static int catalog_add(sql_catalog *c, sql_table *t)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        sql_table **nt = em_realloc(c->tables, nc * sizeof *nt);
        if (nt == NULL)
            return EM_ENOMEM;
        c->tables = nt;
        c->cap = nc;
    }
    c->tables[c->n++] = t;
    return 0;
}

/* Appends rows (ncols values each, already coerced, strings anywhere) to t, copying text
 * into the table's arena. Nothing is appended on failure. */
static int table_append(sql_table *t, const em_sql_value *vals, size_t nrows)
{
    size_t need = t->nrows + nrows, nvals;
    if (need > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        while (nc < need)
            nc *= 2;
        if (!em_size_mul(nc, t->ncols * sizeof *t->rows, &nvals))
            return EM_ENOMEM;
        em_sql_value *nr = em_realloc(t->rows, nvals);
        if (nr == NULL)
            return EM_ENOMEM;
        t->rows = nr;
        t->cap = nc;
    }
    for (size_t i = 0; i < nrows * t->ncols; i++)
        if (em__sql_value_dup(&t->strings, &vals[i], &t->rows[t->nrows * t->ncols + i]) < 0)
            return EM_ENOMEM;
    t->nrows += nrows;
    return 0;
}

/* ---------------------------------------------------------------- sessions */
em_sql_session *em_sql_session_new(em_err *err)
{
    em_sql_session *s = em_calloc(1, sizeof *s);
    if (s == NULL)
        em_err_set(err, EM_ENOMEM, "sql session: out of memory");
    return s;
}

void em_sql_session_free(em_sql_session *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->cat.n; i++)
        table_free(s->cat.tables[i]);
    em_free(s->cat.tables);
    em_free(s->cat.names);
    em_free(s);
}

static int cmp_name(const void *a, const void *b)
{
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

const char *const *em_sql_session_tables(em_sql_session *s, size_t *n)
{
    const char **nn = em_realloc(s->cat.names, (s->cat.n + 1) * sizeof *nn);
    *n = 0;
    if (nn == NULL)
        return NULL;
    s->cat.names = nn;
    for (size_t i = 0; i < s->cat.n; i++)
        nn[i] = s->cat.tables[i]->name;
    qsort(nn, s->cat.n, sizeof *nn, cmp_name);
    *n = s->cat.n;
    return nn;
}

int em_sql_session_schema(em_sql_session *s, const char *name, em_vbuf *out, em_err *err)
{
    sql_table *t = em__sql_catalog_find(&s->cat, name);
    int rc;
    if (t == NULL)
        return em_err_set(err, EM_EPLAN, "unknown table '%s'", name);
    if ((rc = em_vbuf_printf(out, "CREATE TABLE %s (", t->name)) < 0)
        return rc;
    for (uint32_t i = 0; i < t->ncols; i++)
        if ((rc = em_vbuf_printf(out, "%s%s %s", i ? ", " : "", t->cols[i],
                                 t->type_text[i][0] ? t->type_text[i]
                                                    : em_sql_type_name(t->types[i]))) < 0)
            return rc;
    return em_vbuf_printf(out, ");\n");
}

/* ---------------------------------------------------------------- results */
void em_sql_result_free(em_sql_result *r)
{
    if (r == NULL)
        return;
    em_arena_destroy(&r->arena);
    em_free(r);
}

uint32_t em_sql_result_ncols(const em_sql_result *r) { return r->ncols; }
const char *em_sql_result_col_name(const em_sql_result *r, uint32_t col)
{
    return r->names[col] ? r->names[col] : "?column?";
}
em_sql_type em_sql_result_col_type(const em_sql_result *r, uint32_t col)
{
    return (em_sql_type)r->types[col];
}
size_t em_sql_result_nrows(const em_sql_result *r) { return r->rel ? r->rel->n : 0; }
const em_sql_value *em_sql_result_row(const em_sql_result *r, size_t i)
{
    return &r->rel->v[i * r->rel->width];
}
uint64_t em_sql_result_changes(const em_sql_result *r) { return r->changes; }

/* A result of one text column (SHOW TABLES, DESCRIBE, EXPLAIN) */
static int text_result(em_sql_result *r, sql_exec *x, uint32_t ncols, const char **names)
{
    r->ncols = ncols;
    r->names = em_arena_alloc(&r->arena, ncols * sizeof *r->names);
    r->types = em_arena_alloc(&r->arena, ncols);
    r->rel = em_arena_alloc(&r->arena, sizeof *r->rel);
    if (r->names == NULL || r->types == NULL || r->rel == NULL)
        return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    memset(r->rel, 0, sizeof *r->rel);
    r->rel->width = ncols;
    for (uint32_t i = 0; i < ncols; i++) {
        r->names[i] = names[i];
        r->types[i] = EM_SQL_TEXT;
    }
    return 0;
}

static int push_texts(sql_exec *x, sql_rel *rel, const char **vals)
{
    em_sql_value row[4];
    for (uint32_t i = 0; i < rel->width; i++)
        if (em__sql_text(x->arena, vals[i], strlen(vals[i]), &row[i]) < 0)
            return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    return em__sql_rel_push(x, rel, row);
}

/* ---------------------------------------------------------------- statements */
/* Whether p runs on the distributed path (*c filled then): a context, and the input larger
 * than ember.sql.localThreshold or ember.sql.forceDistributed set. */
static int choose_dist(em_sql_session *s, sql_exec *x, const sql_plan *p, sql_dist_conf *c,
                       bool *dist)
{
    em_err err = EM_ERR_INIT;
    *dist = false;
    if (s->sc == NULL)
        return 0;
    if (em__sql_dist_conf(s->sc, c, &err) < 0)
        return em__sql_diag(x->diag, err.code, -1, "%s", err.msg);
    *dist = c->force || em__sql_plan_input_bytes(p) > c->local_threshold;
    return 0;
}

/* Runs a SELECT; with rdd set, the rows stay a dataset (*rdd) and r gets no rows. */
static int run_select_to(em_sql_session *s, sql_exec *x, sql_select *sel, em_sql_result *r,
                         struct em_rdd **rdd)
{
    sql_plan *p = em__sql_plan_select(x->arena, &s->cat, sel, NULL, x->diag);
    sql_dist_conf c;
    bool dist;
    int rc;
    if (p == NULL)
        return x->diag->err.code;
    if ((rc = choose_dist(s, x, p, &c, &dist)) < 0)
        return rc;
    if (dist)
        rc = em__sql_dist_run(x, s->sc, &c, p, &r->rel, rdd);
    else if ((rc = em__sql_run(x, p, NULL, &r->rel)) == 0 && rdd != NULL) {
        em_err err = EM_ERR_INIT;
        r->ncols = p->width;
        if ((*rdd = em_sql_result_to_rdd(s->sc, r, 0, &err)) == NULL)
            rc = em__sql_diag(x->diag, err.code, -1, "%s", err.msg);
        r->rel = NULL;
    }
    if (rc < 0)
        return rc;
    r->ncols = p->width;
    r->names = p->names;
    r->types = p->types;
    return 0;
}

static int run_select(em_sql_session *s, sql_exec *x, sql_select *sel, em_sql_result *r)
{
    return run_select_to(s, x, sel, r, NULL);
}

static int check_new_table(em_sql_session *s, sql_exec *x, const sql_stmt *st, bool *skip)
{
    *skip = false;
    if (em__sql_catalog_find(&s->cat, st->table) == NULL)
        return 0;
    if (st->if_not_exists) {
        *skip = true;
        return 0;
    }
    return em__sql_diag(x->diag, EM_EINVAL, st->table_pos, "table '%s' already exists",
                        st->table);
}

/* Whether a table of csv_bytes bytes of input is left to executors (distributed path on,
 * and larger than the local threshold or forced). */
static int leave_to_executors(em_sql_session *s, sql_exec *x, uint64_t bytes, bool *dist)
{
    em_err err = EM_ERR_INIT;
    sql_dist_conf c;
    *dist = false;
    if (s->sc == NULL)
        return 0;
    if (em__sql_dist_conf(s->sc, &c, &err) < 0)
        return em__sql_diag(x->diag, err.code, -1, "%s", err.msg);
    *dist = c.force || bytes > c.local_threshold;
    return 0;
}

/* Registers the ember table in directory dir (sql/colfile.c): columns from its first part
 * file, the others checked against them; read now unless left to executors. */
static int add_ember_table(em_sql_session *s, sql_exec *x, const char *name, const char *dir)
{
    em_err err = EM_ERR_INIT;
    char **files;
    uint32_t nf;
    sql_cf f;
    sql_table *t = NULL;
    bool dist;
    int rc;
    if ((rc = em__sql_cf_list(dir, &files, &nf, &err)) < 0)
        return em__sql_diag(x->diag, rc, -1, "%s", err.msg);
    if (nf == 0) {
        em__sql_cf_list_free(files, nf);
        return em__sql_diag(x->diag, EM_EINVAL, -1, "%s: no part files (part-*.emc): not an "
                            "ember table", dir);
    }
    if ((rc = em__sql_cf_open(&f, files[0], &err)) < 0) {
        em__sql_cf_list_free(files, nf);
        return em__sql_diag(x->diag, rc, -1, "%s", err.msg);
    }
    if ((t = table_new(name, f.ncols)) != NULL)
        for (uint32_t i = 0; i < f.ncols && t != NULL; i++)
            if (set_col(t, i, f.names[i], f.types[i], em_sql_type_name(f.types[i])) < 0) {
                table_free(t);
                t = NULL;
            }
    em__sql_cf_close(&f);
    if (t == NULL || (t->csv_path = em_strdup(dir)) == NULL) {
        em__sql_cf_list_free(files, nf);
        table_free(t);
        return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    }
    t->emc = true;
    t->emc_files = files;
    t->emc_nfiles = nf;
    t->loaded = false;
    if ((rc = em__sql_emc_attach(t, &err)) < 0 ||
        (rc = leave_to_executors(s, x, t->csv_bytes, &dist)) < 0 ||
        (!dist && (rc = em__sql_emc_load(t, &err)) < 0)) {
        table_free(t);
        return err.code ? em__sql_diag(x->diag, rc, -1, "%s", err.msg) : rc;
    }
    if (catalog_add(&s->cat, t) < 0) {
        table_free(t);
        return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    }
    return 0;
}

static int write_ember_rdd(em_sql_session *s, sql_exec *x, const char *dir, em_sql_result *r,
                           struct em_rdd *rdd, uint64_t *rows);

/* CREATE TABLE t USING ember OPTIONS (path 'DIR') AS SELECT: the result's rows as part
 * files in DIR (one per partition of the result, written by the tasks on the distributed
 * path), then the table is DIR's. */
static int run_create_ember_as(em_sql_session *s, sql_exec *x, const sql_stmt *st,
                               em_sql_result *r)
{
    em_err err = EM_ERR_INIT;
    char **files;
    uint32_t nf = 0;
    uint64_t rows = 0;
    struct em_rdd *rdd = NULL;
    int rc;
    if (em__sql_cf_list(st->csv_path, &files, &nf, &err) == 0)
        em__sql_cf_list_free(files, nf);
    if (nf > 0)
        return em__sql_diag(x->diag, EM_EINVAL, st->table_pos, "%s already holds part files: "
                            "attach it with CREATE TABLE %s USING ember OPTIONS (path '...')",
                            st->csv_path, st->table);
    struct stat sb;
    bool made = stat(st->csv_path, &sb) != 0;
    if (em_mkdir_p(st->csv_path, &err) < 0)
        return em__sql_diag(x->diag, err.code, -1, "%s", err.msg);
    rc = run_select_to(s, x, st->select, r, s->sc != NULL ? &rdd : NULL);
    if (rc == 0 && rdd != NULL)
        rc = write_ember_rdd(s, x, st->csv_path, r, rdd, &rows);
    else if (rc == 0) {
        const char **names = em_arena_alloc(x->arena, (r->ncols + 1) * sizeof *names);
        for (uint32_t c = 0; names != NULL && c < r->ncols; c++)
            names[c] = em_sql_result_col_name(r, c);
        if (names == NULL)
            rc = em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
        else if ((rc = em__sql_emc_write_rel(st->csv_path, 0, r->ncols, r->types, names,
                                             r->rel->v, r->rel->n, &rows, &err)) < 0)
            rc = em__sql_diag(x->diag, rc, -1, "%s", err.msg);
    }
    if (rc == 0)
        rc = add_ember_table(s, x, st->table, st->csv_path);
    if (rc < 0) { /* no table: the part files written (the directory held none) go */
        if (em__sql_cf_list(st->csv_path, &files, &nf, &err) == 0) {
            for (uint32_t i = 0; i < nf; i++)
                unlink(files[i]);
            em__sql_cf_list_free(files, nf);
        }
        if (made)
            rmdir(st->csv_path);
        return rc;
    }
    r->changes = rows;
    r->ncols = 0;
    r->rel = NULL;
    return 0;
}

static int write_ember_rdd(em_sql_session *s, sql_exec *x, const char *dir, em_sql_result *r,
                           struct em_rdd *rdd, uint64_t *rows)
{
    em_err err = EM_ERR_INIT;
    em_vbuf b;
    em_records got = {0};
    int rc = 0;
    (void)s;
    em_vbuf_init(&b); /* blob: str dir, u32 ncols, ncols x (u8 type, str name) */
    if (em_vbuf_append_u32le(&b, (uint32_t)strlen(dir)) < 0 || em_vbuf_append(&b, dir, strlen(dir)) < 0 ||
        em_vbuf_append_u32le(&b, r->ncols) < 0)
        rc = EM_ENOMEM;
    for (uint32_t c = 0; c < r->ncols && rc == 0; c++) {
        const char *nm = em_sql_result_col_name(r, c);
        if (em_vbuf_append(&b, &r->types[c], 1) < 0 ||
            em_vbuf_append_u32le(&b, (uint32_t)strlen(nm)) < 0 ||
            em_vbuf_append(&b, nm, strlen(nm)) < 0)
            rc = EM_ENOMEM;
    }
    struct em_rdd *w = rc == 0 ? em_rdd_map_partitions(rdd, "sql.emc_write",
                                                       em_slice_make(b.data, b.len), false)
                               : NULL;
    if (rc == 0 && w == NULL)
        rc = EM_ENOMEM;
    if (rc == EM_ENOMEM)
        rc = em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    else if ((rc = em_rdd_collect(w, &got, &err)) < 0)
        rc = em__sql_diag(x->diag, rc, -1, "%s", err.msg);
    for (size_t i = 0; i < got.n && rc == 0; i++)
        if (got.recs[i].val.n == 8)
            *rows += (uint64_t)em_dec_i64(got.recs[i].val.p);
    em_records_destroy(&got);
    if (w != NULL)
        em_rdd_release(w);
    em_rdd_release(rdd);
    em_vbuf_destroy(&b);
    return rc;
}

static int run_create(em_sql_session *s, sql_exec *x, const sql_stmt *st)
{
    bool skip;
    int rc = check_new_table(s, x, st, &skip);
    if (rc < 0 || skip)
        return rc;
    if (st->ember)
        return add_ember_table(s, x, st->table, st->csv_path);
    for (uint32_t i = 0; i < st->ncols; i++)
        for (uint32_t j = 0; j < i; j++)
            if (strcasecmp(st->cols[i].name, st->cols[j].name) == 0)
                return em__sql_diag(x->diag, EM_EINVAL, st->cols[i].pos,
                                    "duplicate column name '%s'", st->cols[i].name);
    sql_table *t = table_new(st->table, st->ncols);
    if (t == NULL)
        return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    for (uint32_t i = 0; i < st->ncols; i++)
        if (set_col(t, i, st->cols[i].name, st->cols[i].type, st->cols[i].type_text) < 0) {
            table_free(t);
            return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
        }
    if (st->csv_path != NULL) {
        /* Read now on the driver, unless the distributed path is on and the file is larger
         * than the local threshold (or the path is forced): then executors scan it. */
        em_err err = EM_ERR_INIT;
        struct stat sb;
        sql_dist_conf c;
        bool dist = false;
        t->csv_path = em_strdup(st->csv_path);
        t->csv_delim = st->csv_delim;
        t->csv_header = st->csv_header;
        t->csv_multiline = st->csv_multiline;
        t->csv_skip_bad = st->csv_skip_bad;
        if (t->csv_path == NULL) {
            table_free(t);
            return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
        }
        if (stat(st->csv_path, &sb) == 0)
            t->csv_bytes = (uint64_t)sb.st_size;
        if (s->sc != NULL) {
            if (em__sql_dist_conf(s->sc, &c, &err) < 0) {
                table_free(t);
                return em__sql_diag(x->diag, err.code, -1, "%s", err.msg);
            }
            dist = (c.force || t->csv_bytes > c.local_threshold) && S_ISREG(sb.st_mode);
        }
        t->loaded = false;
        if (!dist && em__sql_csv_load(t, &err) < 0) {
            table_free(t);
            return em__sql_diag(x->diag, err.code, -1, "%s", err.msg);
        }
    }
    if (catalog_add(&s->cat, t) < 0) {
        table_free(t);
        return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    }
    return 0;
}

static int run_create_as(em_sql_session *s, sql_exec *x, const sql_stmt *st, em_sql_result *r)
{
    bool skip;
    int rc = check_new_table(s, x, st, &skip);
    if (rc < 0 || skip)
        return rc;
    if (st->ember)
        return run_create_ember_as(s, x, st, r);
    if ((rc = run_select(s, x, st->select, r)) < 0)
        return rc;
    sql_table *t = table_new(st->table, r->ncols);
    if (t == NULL)
        return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    for (uint32_t i = 0; i < r->ncols && rc == 0; i++) {
        uint8_t ty = r->types[i];
        if (ty == EM_SQL_NULL && r->rel->n > 0) /* no declared type: take the first value's */
            ty = r->rel->v[i].type;
        rc = set_col(t, i, em_sql_result_col_name(r, i), ty, em_sql_type_name(ty));
    }
    if (rc == 0)
        rc = table_append(t, r->rel->v, r->rel->n);
    if (rc == 0)
        rc = catalog_add(&s->cat, t);
    if (rc < 0) {
        table_free(t);
        return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    }
    r->changes = r->rel->n;
    r->ncols = 0;
    r->rel = NULL;
    return 0;
}

/* Maps the INSERT column list to table columns: map[i] = source value index or -1. */
static int insert_map(sql_exec *x, const sql_stmt *st, sql_table *t, int32_t *map,
                      uint32_t *nsrc)
{
    if (st->nicols == 0) {
        for (uint32_t c = 0; c < t->ncols; c++)
            map[c] = (int32_t)c;
        *nsrc = t->ncols;
        return 0;
    }
    for (uint32_t c = 0; c < t->ncols; c++)
        map[c] = -1;
    for (uint32_t i = 0; i < st->nicols; i++) {
        uint32_t c;
        for (c = 0; c < t->ncols && strcasecmp(t->cols[c], st->icols[i]) != 0; c++)
            ;
        if (c == t->ncols)
            return em__sql_diag(x->diag, EM_EPLAN, st->icol_pos[i],
                                "table '%s' has no column '%s'", t->name, st->icols[i]);
        if (map[c] >= 0)
            return em__sql_diag(x->diag, EM_EINVAL, st->icol_pos[i],
                                "column '%s' given twice", st->icols[i]);
        map[c] = (int32_t)i;
    }
    *nsrc = st->nicols;
    return 0;
}

static int run_insert(em_sql_session *s, sql_exec *x, const sql_stmt *st, em_sql_result *r)
{
    sql_table *t = em__sql_catalog_find(&s->cat, st->table);
    uint32_t nsrc = 0;
    int rc;
    if (t == NULL) {
        const char *sg = em__sql_catalog_suggest(&s->cat, st->table);
        return em__sql_diag(x->diag, EM_EPLAN, st->table_pos, "unknown table '%s'%s%s%s",
                            st->table, sg ? " (did you mean '" : "", sg ? sg : "", sg ? "'?)" : "");
    }
    if (t->emc) /* its rows are its files' */
        return em__sql_diag(x->diag, EM_EINVAL, st->table_pos, "table '%s' is an ember table "
                            "(files in %s): INSERT is not supported; CREATE TABLE ... USING ember "
                            "AS SELECT writes a new one", t->name, t->csv_path);
    int32_t *map = em_arena_alloc(x->arena, t->ncols * sizeof *map);
    if (map == NULL)
        return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    if ((rc = insert_map(x, st, t, map, &nsrc)) < 0)
        return rc;
    sql_rel *src = NULL;
    size_t nrows = st->nrows;
    if (st->select != NULL) {
        em_sql_result tmp = {0};
        if ((rc = run_select(s, x, st->select, &tmp)) < 0)
            return rc;
        src = tmp.rel;
        nrows = src->n;
        if (tmp.ncols != nsrc)
            return em__sql_diag(x->diag, EM_EINVAL, st->select->pos,
                                "INSERT into %u columns from a SELECT of %u", nsrc, tmp.ncols);
    } else if (st->rowlen != nsrc)
        return em__sql_diag(x->diag, EM_EINVAL, st->pos, "INSERT of %u values into %u columns",
                            st->rowlen, nsrc);
    em_sql_value *vals = em_arena_alloc(x->arena, (nrows * t->ncols + 1) * sizeof *vals);
    if (vals == NULL)
        return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    for (size_t i = 0; i < nrows; i++)
        for (uint32_t c = 0; c < t->ncols; c++) {
            em_sql_value v = em__sql_null();
            if (map[c] >= 0 && src != NULL)
                v = src->v[i * src->width + (uint32_t)map[c]];
            else if (map[c] >= 0) {
                sql_expr *e = st->rows[i][map[c]];
                sql_env env = {0};
                em__sql_fold(x->arena, e);
                if (e->kind != E_LIT && (rc = em__sql_eval(x, e, &env, &v)) < 0)
                    return rc;
                if (e->kind == E_LIT)
                    v = e->v;
            }
            if (em__sql_coerce(x->arena, t->types[c], &v, &vals[i * t->ncols + c]) < 0)
                return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
        }
    if (table_append(t, vals, nrows) < 0)
        return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    r->changes = nrows;
    return 0;
}

static int run_drop(em_sql_session *s, sql_exec *x, const sql_stmt *st)
{
    for (size_t i = 0; i < s->cat.n; i++)
        if (strcasecmp(s->cat.tables[i]->name, st->table) == 0) {
            table_free(s->cat.tables[i]);
            memmove(&s->cat.tables[i], &s->cat.tables[i + 1],
                    (s->cat.n - i - 1) * sizeof *s->cat.tables);
            s->cat.n--;
            return 0;
        }
    if (st->if_exists)
        return 0;
    return em__sql_diag(x->diag, EM_EPLAN, st->table_pos, "unknown table '%s'", st->table);
}

static int run_describe(em_sql_session *s, sql_exec *x, const sql_stmt *st, em_sql_result *r)
{
    static const char *names[] = {"column", "type"};
    sql_table *t = em__sql_catalog_find(&s->cat, st->table);
    int rc;
    if (t == NULL)
        return em__sql_diag(x->diag, EM_EPLAN, st->table_pos, "unknown table '%s'", st->table);
    if ((rc = text_result(r, x, 2, names)) < 0)
        return rc;
    for (uint32_t c = 0; c < t->ncols; c++) {
        const char *row[2] = {t->cols[c], em_sql_type_name(t->types[c])};
        if ((rc = push_texts(x, r->rel, row)) < 0)
            return rc;
    }
    return 0;
}

static int run_show(em_sql_session *s, sql_exec *x, em_sql_result *r)
{
    static const char *names[] = {"table"};
    size_t n;
    int rc;
    const char *const *tabs = em_sql_session_tables(s, &n);
    if ((rc = text_result(r, x, 1, names)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const char *row[1] = {tabs[i]};
        if ((rc = push_texts(x, r->rel, row)) < 0)
            return rc;
    }
    return 0;
}

static int run_explain(em_sql_session *s, sql_exec *x, const sql_stmt *st, em_sql_result *r)
{
    static const char *names[] = {"plan"};
    sql_plan *p = em__sql_plan_select(x->arena, &s->cat, st->select, NULL, x->diag);
    em_vbuf b;
    int rc;
    if (p == NULL)
        return x->diag->err.code;
    if ((rc = text_result(r, x, 1, names)) < 0)
        return rc;
    sql_dist_conf c;
    bool dist;
    if ((rc = choose_dist(s, x, p, &c, &dist)) < 0)
        return rc;
    em_vbuf_init(&b);
    if ((dist && (em_vbuf_printf(&b, "Distributed path\n") < 0 ||
                  em__sql_dist_explain(&c, p, &b) < 0 ||
                  em_vbuf_printf(&b, "Logical plan\n") < 0)) ||
        em__sql_plan_explain(p, &b) < 0) {
        em_vbuf_destroy(&b);
        return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
    }
    /* one row per line */
    char *line = (char *)b.data, *end = line + b.len;
    while (line < end && rc == 0) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (nl == NULL)
            nl = end;
        *nl = '\0';
        const char *row[1] = {line};
        rc = push_texts(x, r->rel, row);
        line = nl + 1;
    }
    em_vbuf_destroy(&b);
    return rc;
}

static int run_stmt(em_sql_session *s, sql_exec *x, const sql_stmt *st, em_sql_result *r)
{
    switch (st->kind) {
    case S_SELECT: return run_select_to(s, x, st->select, r, s->want_rdd);
    case S_CREATE: return run_create(s, x, st);
    case S_CREATE_AS: return run_create_as(s, x, st, r);
    case S_INSERT: return run_insert(s, x, st, r);
    case S_DROP: return run_drop(s, x, st);
    case S_CREATE_INDEX:
        if (em__sql_catalog_find(&s->cat, st->table) == NULL)
            return em__sql_diag(x->diag, EM_EPLAN, st->table_pos, "unknown table '%s'",
                                st->table);
        return 0; /* accepted, no index is built (docs/sql.md) */
    case S_DROP_INDEX: return 0;
    case S_SHOW_TABLES: return run_show(s, x, r);
    case S_DESCRIBE: return run_describe(s, x, st, r);
    default: return run_explain(s, x, st, r);
    }
}

/* End of the statement starting at sql (past its ';'), for skipping a bad statement. */
static size_t skip_statement(const char *sql, size_t len)
{
    char q = 0;
    for (size_t i = 0; i < len; i++) {
        if (q) {
            if (sql[i] == q)
                q = 0;
        } else if (sql[i] == '\'' || sql[i] == '"')
            q = sql[i];
        else if (sql[i] == ';')
            return i + 1;
    }
    return len;
}

/* One statement of sql[0..len); with query set, only a SELECT is accepted. */
static int exec_one(em_sql_session *s, const char *sql, size_t len, size_t *consumed,
                    em_sql_result **out, em_sql_diag *diag, bool query)
{
    em_sql_result *r = em_calloc(1, sizeof *r);
    size_t ntok, end = 0;
    int rc;
    *out = NULL;
    *consumed = 0;
    diag->err.code = 0;
    diag->err.msg[0] = '\0';
    diag->pos = -1;
    if (r == NULL)
        return em__sql_diag(diag, EM_ENOMEM, -1, "out of memory");
    em_arena_init(&r->arena, 16 * 1024);
    sql_exec x = {.arena = &r->arena, .diag = diag};
    sql_tok *toks = em__sql_lex(&r->arena, sql, len, &ntok, &end, diag);
    if (toks == NULL) {
        *consumed = skip_statement(sql, len);
        em_sql_result_free(r);
        return diag->err.code;
    }
    *consumed = end;
    if (ntok == 1 || (ntok == 2 && toks[0].kind == TK_OP)) { /* blanks, comments or ';' */
        em_sql_result_free(r);
        return query ? em__sql_diag(diag, EM_EINVAL, -1, "no query given") : 0;
    }
    sql_stmt *st = em__sql_parse(&r->arena, sql, toks, ntok, diag);
    if (st != NULL && query && st->kind != S_SELECT) {
        em__sql_diag(diag, EM_EINVAL, st->pos, "not a query: a SELECT was expected");
        st = NULL;
    }
    if (st == NULL || (rc = run_stmt(s, &x, st, r)) < 0) {
        em_sql_result_free(r);
        return diag->err.code ? diag->err.code : EM_EINVAL;
    }
    *out = r;
    return 0;
}

int em_sql_exec(em_sql_session *s, const char *sql, size_t len, size_t *consumed,
                em_sql_result **out, em_sql_diag *diag)
{
    return exec_one(s, sql, len, consumed, out, diag, false);
}

void em_sql_session_set_context(em_sql_session *s, struct em_context *sc)
{
    s->sc = sc;
}

struct em_rdd *em_sql_query_rdd(em_sql_session *s, struct em_context *sc, const char *sql,
                                size_t len, em_sql_result **schema, em_sql_diag *diag)
{
    em_sql_result *r;
    size_t used;
    *schema = NULL;
    if (s->sc == NULL)
        s->sc = sc;
    struct em_rdd *out = NULL;
    s->want_rdd = &out;
    int rc = exec_one(s, sql, len, &used, &r, diag, true);
    s->want_rdd = NULL;
    if (rc < 0)
        return NULL;
    if (r->ncols == 0 || out == NULL) {
        em_sql_result_free(r);
        em_rdd_release(out);
        em__sql_diag(diag, EM_EINVAL, -1, "the query returns no columns");
        return NULL;
    }
    r->rel = NULL; /* the schema keeps no rows */
    *schema = r;
    return out;
}
