/* sql/slt.c - the sqllogictest runner (em_sql_slt_run, sql/sql.h).
 *
 * FORMAT (SQLite's sqllogictest; ../shared/sqllogictest/README.md): records separated by
 * blank lines; '#' starts a comment line.
 *   statement ok|error            then the SQL up to a blank line
 *   query <types> [nosort|rowsort|valuesort] [label]
 *                                 then the SQL, a line "----", the expected values one per
 *                                 line (or "N values hashing to <md5>") up to a blank line
 *   hash-threshold N | halt | skipif <engine> | onlyif <engine> (guard the next record)
 * Values are rendered by the query's type letter, as the reference driver does:
 * I = integer (a double truncated; text by its leading number), R = "%.3f", T = text
 * ("(empty)" for "", control characters as '@'); NULL is "NULL". rowsort sorts rows by
 * their rendered values (strcmp column by column), valuesort sorts all values. A hash is the
 * MD5 of every rendered value followed by "\n", in order. */
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql_int.h"

typedef struct slt {
    const char *path;
    const em_sql_slt_opts *opts;
    em_sql_slt_stats *st;
    em_sql_session *s;
    char *buf;          /* the file, lines NUL-terminated in place */
    size_t len, pos;
    uint64_t line;      /* 1-based number of the next line */
    uint64_t rec_line;  /* first line of the record being run */
} slt;

/* Next line (NUL-terminated, no '\n' or '\r'), or NULL at the end. */
static char *next_line(slt *t)
{
    if (t->pos >= t->len)
        return NULL;
    char *l = t->buf + t->pos, *nl = memchr(l, '\n', t->len - t->pos);
    size_t n = nl ? (size_t)(nl - l) : t->len - t->pos;
    t->pos += n + (nl != NULL);
    if (n > 0 && l[n - 1] == '\r')
        n--;
    l[n] = '\0';
    t->line++;
    return l;
}

static bool blank(const char *l)
{
    return l == NULL || l[strspn(l, " \t")] == '\0';
}

static void report(slt *t, const char *fmt, ...) EM_PRINTF(2, 3);
static void report(slt *t, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (t->opts == NULL || t->opts->report == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t->opts->report(t->opts->ud, t->path, t->rec_line, msg);
}

/* Reads SQL lines up to a blank line or (for queries) "----" into sql. */
static int read_sql(slt *t, em_vbuf *sql, bool *has_results)
{
    char *l;
    *has_results = false;
    em_vbuf_clear(sql);
    while ((l = next_line(t)) != NULL && !blank(l)) {
        if (strcmp(l, "----") == 0) {
            *has_results = true;
            break;
        }
        if (em_vbuf_printf(sql, "%s%s", sql->len ? "\n" : "", l) < 0)
            return EM_ENOMEM;
    }
    return 0;
}

/* "%.3f" as SQLite's printf does it: at most 16 significant digits, so beyond 1e16 the
 * integer part is 16 rounded digits followed by zeros (-9223372036854776000.000). */
static void render_real(double d, em_vbuf *out)
{
    char m[40];
    int e;
    if (!isfinite(d) || fabs(d) < 1e16) {
        em_vbuf_printf(out, "%.3f", d);
        return;
    }
    snprintf(m, sizeof m, "%.15e", fabs(d)); /* d.ddddddddddddddde+XX */
    e = atoi(strchr(m, 'e') + 1);
    em_vbuf_printf(out, "%s%c%.15s", d < 0 ? "-" : "", m[0], m + 2);
    for (int i = 16; i <= e; i++)
        em_vbuf_printf(out, "0");
    em_vbuf_printf(out, ".000");
}

/* Renders v by type letter c into out (NUL-terminated). */
static void render(char c, const em_sql_value *v, em_vbuf *out)
{
    em_vbuf_clear(out);
    if (v->type == EM_SQL_NULL) {
        em_vbuf_printf(out, "NULL");
        return;
    }
    em_sql_value n = *v;
    if (c == 'I' || c == 'R') {
        if (n.type == EM_SQL_TEXT)
            n = em__sql_text_num(n.u.s, n.len);
        if (c == 'I') {
            int64_t i = n.u.i;
            if (n.type == EM_SQL_DOUBLE)
                i = isnan(n.u.d) ? 0 : n.u.d >= 9223372036854775807.0 ? INT64_MAX
                    : n.u.d <= -9223372036854775808.0 ? INT64_MIN : (int64_t)n.u.d;
            em_vbuf_printf(out, "%lld", (long long)i);
        } else
            render_real(n.type == EM_SQL_DOUBLE ? n.u.d : (double)n.u.i, out);
        return;
    }
    em_sql_value_format(out, v);
    if (out->len == 0)
        em_vbuf_printf(out, "(empty)");
    for (size_t i = 0; i < out->len; i++)
        if (out->data[i] < ' ' || out->data[i] > '~')
            out->data[i] = '@';
    em_vbuf_append(out, "", 1);
    out->len--;
}

typedef struct row_ref {
    char **vals;
    size_t ncols;
} row_ref;

static int cmp_rows(const void *a, const void *b)
{
    const row_ref *x = a, *y = b;
    for (size_t i = 0; i < x->ncols; i++) {
        int c = strcmp(x->vals[i], y->vals[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the rendered values as the sort mode says. */
static int sort_values(char **vals, size_t nvals, size_t ncols, const char *mode)
{
    if (mode == NULL || strcmp(mode, "nosort") == 0 || nvals == 0)
        return 0;
    if (strcmp(mode, "valuesort") == 0) {
        qsort(vals, nvals, sizeof *vals, cmp_str);
        return 0;
    }
    size_t nrows = nvals / ncols;
    row_ref *rows = em_malloc(nrows * sizeof *rows);
    char **copy = em_malloc(nvals * sizeof *copy);
    if (rows == NULL || copy == NULL) {
        em_free(rows);
        em_free(copy);
        return EM_ENOMEM;
    }
    for (size_t r = 0; r < nrows; r++)
        rows[r] = (row_ref){.vals = &vals[r * ncols], .ncols = ncols};
    qsort(rows, nrows, sizeof *rows, cmp_rows);
    for (size_t r = 0; r < nrows; r++)
        memcpy(&copy[r * ncols], rows[r].vals, ncols * sizeof *copy);
    memcpy(vals, copy, nvals * sizeof *copy);
    em_free(rows);
    em_free(copy);
    return 0;
}

static void md5_hex(char **vals, size_t n, char hex[33])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    hex[0] = '\0';
    if (ctx == NULL)
        return;
    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    for (size_t i = 0; i < n; i++) {
        EVP_DigestUpdate(ctx, vals[i], strlen(vals[i]));
        EVP_DigestUpdate(ctx, "\n", 1);
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < mdlen && i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Compares a query's rendered values with the expected lines; true on a match. */
static bool compare(slt *t, char **vals, size_t n, char **exp, size_t nexp)
{
    unsigned long long hn;
    char hash[64];
    if (nexp == 1 && sscanf(exp[0], "%llu values hashing to %63s", &hn, hash) == 2) {
        char got[33];
        md5_hex(vals, n, got);
        if (hn != n || strcmp(got, hash) != 0) {
            report(t, "got %zu values hashing to %s, expected %llu hashing to %s", n, got, hn,
                   hash);
            return false;
        }
        return true;
    }
    for (size_t i = 0; i < n && i < nexp; i++)
        if (strcmp(vals[i], exp[i]) != 0) {
            report(t, "value %zu: got '%s', expected '%s'", i + 1, vals[i], exp[i]);
            return false;
        }
    if (n != nexp) {
        report(t, "got %zu values, expected %zu", n, nexp);
        return false;
    }
    return true;
}

/* Runs one query record whose header words are w[0..nw). */
static int run_query(slt *t, const char *types, const char *mode, const char *sql,
                     char **exp, size_t nexp, bool *pass)
{
    em_sql_result *r = NULL;
    em_sql_diag d;
    size_t used;
    *pass = false;
    if (em_sql_exec(t->s, sql, strlen(sql), &used, &r, &d) < 0) {
        report(t, "query failed: %s", d.err.msg);
        return 0;
    }
    if (r == NULL || em_sql_result_ncols(r) != strlen(types)) {
        report(t, "query returns %u columns, the record says %zu", r ? em_sql_result_ncols(r) : 0,
               strlen(types));
        em_sql_result_free(r);
        return 0;
    }
    size_t ncols = strlen(types), nrows = em_sql_result_nrows(r), nvals = nrows * ncols;
    char **vals = em_calloc(nvals + 1, sizeof *vals);
    em_vbuf b;
    int rc = 0;
    em_vbuf_init(&b);
    for (size_t i = 0; i < nvals && vals != NULL; i++) {
        render(types[i % ncols], &em_sql_result_row(r, i / ncols)[i % ncols], &b);
        if ((vals[i] = em_strndup((const char *)b.data, b.len)) == NULL) {
            rc = EM_ENOMEM;
            break;
        }
    }
    if (vals == NULL)
        rc = EM_ENOMEM;
    if (rc == 0 && (rc = sort_values(vals, nvals, ncols, mode)) == 0)
        *pass = compare(t, vals, nvals, exp, nexp);
    for (size_t i = 0; vals != NULL && i < nvals; i++)
        em_free(vals[i]);
    em_free(vals);
    em_vbuf_destroy(&b);
    em_sql_result_free(r);
    return rc;
}

static bool guard_skips(slt *t, const char *kind, const char *engine)
{
    const char *me = t->opts && t->opts->engine ? t->opts->engine : "ember";
    size_t n = strcspn(engine, " \t#");   /* "onlyif mysql # comment" */
    bool match = strlen(me) == n && strncmp(engine, me, n) == 0;
    return strcmp(kind, "skipif") == 0 ? match : !match;
}

/* Reads the expected lines of a query up to a blank line. */
static int read_expected(slt *t, char ***exp, size_t *n, size_t *cap)
{
    char *l;
    *n = 0;
    while ((l = next_line(t)) != NULL && !blank(l)) {
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            char **ne = em_realloc(*exp, nc * sizeof *ne);
            if (ne == NULL)
                return EM_ENOMEM;
            *exp = ne;
            *cap = nc;
        }
        (*exp)[(*n)++] = l;
    }
    return 0;
}

static int run_record(slt *t, char *head, bool skip, em_vbuf *sql, char ***exp, size_t *cap)
{
    char *w[4] = {0};
    size_t nw = 0, nexp = 0;
    bool has_results, pass = false;
    int rc;
    for (char *tok = strtok(head, " \t"); tok != NULL && nw < 4; tok = strtok(NULL, " \t"))
        w[nw++] = tok;
    bool is_query = strcmp(w[0], "query") == 0;
    if ((rc = read_sql(t, sql, &has_results)) < 0)
        return rc;
    if (has_results && (rc = read_expected(t, exp, &nexp, cap)) < 0)
        return rc;
    if (skip) {
        t->st->skipped++;
        return 0;
    }
    if (em_vbuf_append(sql, "", 1) < 0)
        return EM_ENOMEM;
    if (is_query) {
        if (nw < 2) {
            report(t, "query record without types");
            t->st->failed++;
            return 0;
        }
        if ((rc = run_query(t, w[1], nw > 2 ? w[2] : NULL, (const char *)sql->data, *exp,
                            nexp, &pass)) < 0)
            return rc;
    } else {
        em_sql_result *r = NULL;
        em_sql_diag d;
        size_t used;
        bool want_ok = nw > 1 && strcmp(w[1], "ok") == 0;
        rc = em_sql_exec(t->s, (const char *)sql->data, sql->len - 1, &used, &r, &d);
        em_sql_result_free(r);
        pass = (rc == 0) == want_ok;
        if (!pass)
            report(t, rc == 0 ? "statement succeeded, expected an error"
                              : "statement failed: %s", d.err.msg);
    }
    if (pass)
        t->st->passed++;
    else
        t->st->failed++;
    return 0;
}

static int run_all(slt *t)
{
    em_vbuf sql;
    char **exp = NULL, *l;
    size_t cap = 0;
    bool skip = false;
    int rc = 0;
    em_vbuf_init(&sql);
    while (rc == 0 && (l = next_line(t)) != NULL) {
        if (blank(l) || l[0] == '#')
            continue;
        t->rec_line = t->line - 1;
        if (strncmp(l, "skipif ", 7) == 0 || strncmp(l, "onlyif ", 7) == 0) {
            l[6] = '\0';
            skip |= guard_skips(t, l, l + 7 + strspn(l + 7, " \t"));
            continue;
        }
        if (strcmp(l, "halt") == 0) {
            if (skip) {
                skip = false;
                continue;
            }
            break;
        }
        if (strncmp(l, "hash-threshold", 14) == 0)
            continue; /* expected results say themselves whether they are hashed */
        if (strncmp(l, "statement", 9) == 0 || strncmp(l, "query", 5) == 0) {
            rc = run_record(t, l, skip, &sql, &exp, &cap);
            skip = false;
            continue;
        }
        report(t, "unknown record '%s'", l);
        t->st->failed++;
        while ((l = next_line(t)) != NULL && !blank(l)) /* skip the record */
            ;
    }
    em_free(exp);
    em_vbuf_destroy(&sql);
    return rc;
}

int em_sql_slt_run(const char *path, const em_sql_slt_opts *opts, em_sql_slt_stats *st,
                   em_err *err)
{
    slt t = {.path = path, .opts = opts, .st = st, .line = 1};
    uint8_t *buf;
    size_t len;
    int rc;
    if ((rc = em_read_file(path, &buf, &len, err)) < 0)
        return rc;
    /* one spare byte so the last line can be NUL-terminated in place */
    char *b = em_realloc(buf, len + 1);
    if (b == NULL) {
        em_free(buf);
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", path);
    }
    b[len] = '\0';
    t.buf = b;
    t.len = len;
    if ((t.s = em_sql_session_new(err)) == NULL) {
        em_free(b);
        return EM_ENOMEM;
    }
    if (opts != NULL)
        em_sql_session_set_context(t.s, opts->sc);
    if ((rc = run_all(&t)) < 0)
        em_err_set(err, rc, "%s: out of memory", path);
    em_sql_session_free(t.s);
    em_free(b);
    return rc;
}
