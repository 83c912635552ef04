/* sql/csv.c - the CSV reader behind `CREATE TABLE t (cols) USING csv OPTIONS (...)`.
 *
 * FORMAT: RFC 4180 records: fields separated by the delimiter (',' by default), records by
 * LF or CRLF; a field starting with '"' is quoted: it may hold delimiters, line breaks and
 * '""' for one '"', and must be followed by a delimiter or the end of the record. An empty
 * unquoted field is NULL; a quoted empty field is the empty string. With header 'true' the
 * first record names the columns (its count must match the table's).
 * Values are converted to the column types strictly: a field that is not a valid INTEGER,
 * DOUBLE, DATE or BOOLEAN is an error naming the file, the line and the column.
 * The bytes are untrusted (tests/fuzz/fuzz_sql_csv.c). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/sql_int.h"

/* The common record: no '"' before its line break. Copied into scratch whole in one go,
 * delimiters turned into NULs (memchr finds both), exactly as the byte-wise parser below
 * would split it. 0 done, 1 not such a record (or too many fields: the parser below
 * reports it), EM_ENOMEM. */
static int record_plain(const char *p, size_t n, size_t *off, char delim, em_vbuf *scratch,
                        em_sql_value *out, uint32_t maxf, uint32_t *nf, uint64_t *line)
{
    size_t i = *off;
    if (delim == '\n' || delim == '\r' || delim == '"')
        return 1;
    const char *nl = memchr(p + i, '\n', n - i);
    size_t lend = nl ? (size_t)(nl - p) : n, cend = lend;
    if (cend > i && p[cend - 1] == '\r')
        cend--;
    size_t len = cend - i;
    if (em_vbuf_reserve(scratch, len + 1) < 0)
        return EM_ENOMEM;
    char *d = (char *)scratch->data;
    memcpy(d, p + i, len);
    d[len] = delim;   /* a sentinel: the scan below stops at it */
    uint32_t lim = maxf < 1024 ? maxf : 1024, k = 0;
    for (size_t fs = 0;;) {
        size_t fe = fs;
        char c;
        while ((c = d[fe]) != delim && c != '"')
            fe++;
        if (c == '"' || k >= lim)
            return 1;   /* quotes, or too many fields: the byte-wise parser decides */
        d[fe] = '\0';
        out[k].u.s = d + fs;
        out[k].len = (uint32_t)(fe - fs);
        out[k].type = fe > fs ? EM_SQL_TEXT : EM_SQL_NULL;
        k++;
        if (fe == len)
            break;
        fs = fe + 1;
    }
    scratch->len = len + 1;
    *nf = k;
    *off = nl ? lend + 1 : n;
    if (nl)
        (*line)++;
    return 0;
}

/* Parses the record at p[*off..n): field i is out[i] (pointing into scratch, NUL-ended).
 * *nf = fields; *line advances past the record's line breaks. 0 on success, 1 at the end of
 * the input, EM_ECORRUPT on a malformed record (err names line), EM_EINVAL past maxf. */
int em__sql_csv_record(const char *p, size_t n, size_t *off, char delim, em_vbuf *scratch,
                       em_sql_value *out, uint32_t maxf, uint32_t *nf, uint64_t *line,
                       em_err *err)
{
    size_t i = *off;
    uint64_t start_line = *line;
    size_t starts[1024];
    uint32_t k = 0;
    if (i >= n)
        return 1;
    em_vbuf_clear(scratch);
    if (p[i] != '"') {
        int rc = record_plain(p, n, off, delim, scratch, out, maxf, nf, line);
        if (rc <= 0)
            return rc < 0 ? em_err_set(err, EM_ENOMEM, "out of memory") : 0;
    }
    for (;;) {
        bool quoted = false;
        size_t fstart = scratch->len;
        if (k >= maxf || k >= 1024)
            return em_err_set(err, EM_EINVAL, "line %llu: more than %u fields",
                              (unsigned long long)start_line, maxf < 1024 ? maxf : 1024);
        if (i < n && p[i] == '"') {
            quoted = true;
            for (i++;; i++) {
                if (i >= n)
                    return em_err_set(err, EM_ECORRUPT, "line %llu: unterminated quoted field",
                                      (unsigned long long)start_line);
                if (p[i] == '"') {
                    if (i + 1 < n && p[i + 1] == '"') {
                        i++;
                    } else {
                        i++;
                        break;
                    }
                }
                if (p[i] == '\n')
                    (*line)++;
                if (em_vbuf_append(scratch, &p[i], 1) < 0)
                    return em_err_set(err, EM_ENOMEM, "out of memory");
            }
            if (i < n && p[i] != delim && p[i] != '\n' && !(p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') &&
                !(p[i] == '\r' && i + 1 == n))
                return em_err_set(err, EM_ECORRUPT,
                                  "line %llu: unexpected '%c' after a closing quote",
                                  (unsigned long long)*line, p[i]);
        } else {
            while (i < n && p[i] != delim && p[i] != '\n') {
                if (p[i] == '\r' && (i + 1 == n || p[i + 1] == '\n'))
                    break;
                if (em_vbuf_append(scratch, &p[i], 1) < 0)
                    return em_err_set(err, EM_ENOMEM, "out of memory");
                i++;
            }
        }
        if (em_vbuf_append(scratch, "", 1) < 0)
            return em_err_set(err, EM_ENOMEM, "out of memory");
        starts[k] = fstart;
        out[k].len = (uint32_t)(scratch->len - 1 - fstart);
        out[k].type = (quoted || out[k].len > 0) ? EM_SQL_TEXT : EM_SQL_NULL;
        k++;
        if (i < n && p[i] == delim) {
            i++;
            continue;
        }
        if (i < n && p[i] == '\r')
            i++;
        if (i < n && p[i] == '\n') {
            i++;
            (*line)++;
        }
        break;
    }
    for (uint32_t f = 0; f < k; f++) /* scratch may have moved while growing */
        out[f].u.s = (const char *)scratch->data + starts[f];
    *nf = k;
    *off = i;
    return 0;
}

/* [-]digits, at most 18 of them: the value strtoll gives. false: leave it to strtoll. */
static bool fast_int(const char *s, uint32_t n, em_sql_value *out)
{
    uint32_t i = s[0] == '-';
    if (n == i || n - i > 18)
        return false;
    int64_t x = 0;
    for (; i < n; i++) {
        unsigned dg = (unsigned)(s[i] - '0');
        if (dg > 9)
            return false;
        x = x * 10 + dg;
    }
    *out = em__sql_int(s[0] == '-' ? -x : x);
    return true;
}

/* [-]digits[.digits] with at most 15 digits in all: the mantissa and 10^fraction digits
 * are exact doubles, so their quotient is the correctly rounded value, as strtod's.
 * false: leave it to strtod. */
static bool fast_double(const char *s, uint32_t n, em_sql_value *out)
{
    static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                 1e11, 1e12, 1e13, 1e14, 1e15};
    uint32_t i = s[0] == '-', nd = 0, frac = 0;
    bool dot = false;
    int64_t m = 0;
    if (n == i || n - i > 16)
        return false;
    for (; i < n; i++) {
        if (s[i] == '.' && !dot) {
            dot = true;
            continue;
        }
        unsigned dg = (unsigned)(s[i] - '0');
        if (dg > 9)
            return false;
        m = m * 10 + dg;
        nd++;
        frac += dot;
    }
    if (nd == 0 || nd > 15)
        return false;
    double d = (double)m / p10[frac];
    *out = em__sql_dbl(s[0] == '-' ? -d : d);
    return true;
}

/* Converts field text v to column type t, strictly. */
static bool convert(em_arena *a, int t, const em_sql_value *v, em_sql_value *out)
{
    const char *s = v->u.s;
    char *end;
    if (v->type == EM_SQL_NULL) {
        *out = *v;
        return true;
    }
    switch (t) {
    case EM_SQL_INT: {
        if (fast_int(s, v->len, out))
            return true;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (v->len == 0 || *end != '\0' || errno != 0)
            return false;
        *out = em__sql_int(x);
        return true;
    }
    case EM_SQL_DOUBLE: {
        if (fast_double(s, v->len, out))
            return true;
        double d = strtod(s, &end);
        if (v->len == 0 || *end != '\0')
            return false;
        *out = em__sql_dbl(d);
        return true;
    }
    case EM_SQL_DATE: {
        int64_t days;
        if (!em__sql_parse_date(s, v->len, &days))
            return false;
        *out = (em_sql_value){.type = EM_SQL_DATE, .u.i = days};
        return true;
    }
    case EM_SQL_BOOL:
        if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
            *out = em__sql_bool(true);
        else if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
            *out = em__sql_bool(false);
        else
            return false;
        return true;
    default:
        return em__sql_text(a, s, v->len, out) == 0;
    }
}

/* Line number of byte `off` of p (1-based), for errors of ranges that start mid-file. */
static uint64_t line_at(const char *p, size_t off)
{
    uint64_t line = 1;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + off - q))) != NULL; q++)
        line++;
    return line;
}

int em__sql_csv_parse(const sql_csv_spec *sp, const char *p, size_t n, size_t start,
                      size_t end, em_arena *strings, sql_csv_row_fn fn, void *ud,
                      uint64_t *bad, em_err *err)
{
    size_t off = start;
    uint64_t line = 1;  /* relative to start until an error needs the absolute number */
    em_vbuf scratch;
    int rc = 0;
    em_sql_value *fields = em_calloc(sp->ncols + 1, sizeof *fields), *row = NULL;
    if (fields == NULL || (row = em_calloc(sp->ncols + 1, sizeof *row)) == NULL) {
        em_free(fields);
        return em_err_set(err, EM_ENOMEM, "out of memory");
    }
    em_vbuf_init(&scratch);
    if (start > 0 && p[start - 1] != '\n') { /* the record under way belongs to the range before */
        const char *nl = memchr(p + start, '\n', n - start);
        off = nl ? (size_t)(nl - p) + 1 : n;
    }
    const size_t off0 = off;
    uint64_t base = start > 0 ? 0 : 1; /* line of off0, 0 until counted */
    for (bool first = start == 0; off < end; first = false) {
        uint32_t nf;
        uint64_t rec_line = line;
        size_t rec_off = off;
        rc = em__sql_csv_record(p, n, &off, sp->delim, &scratch, fields, sp->ncols + 1, &nf,
                                &line, err);
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc == 0 && !sp->multiline &&
            line - rec_line > (off > rec_off && p[off - 1] == '\n' ? 1u : 0u)) {
            /* a quoted line break: ranges split at line breaks would cut such records */
            if (base == 0)
                base = line_at(p, off0);
            rc = em_err_set(err, EM_ECORRUPT,
                            "%s: line %llu: a quoted field holds a line break; add OPTIONS "
                            "(multiline 'true') to read this file whole",
                            sp->path, (unsigned long long)(base + rec_line - 1));
            break;
        }
        if (rc < 0) {
            if (base == 0) { /* redo the record with its absolute line number in the error */
                uint64_t abs = line_at(p, rec_off);
                em_err_clear(err);
                off = rec_off;
                em__sql_csv_record(p, n, &off, sp->delim, &scratch, fields, sp->ncols + 1, &nf,
                                   &abs, err);
            }
            em_err_prefix(err, "%s", sp->path);
            break;
        }
        if (nf == 1 && fields[0].type == EM_SQL_NULL)
            continue; /* blank line */
        if (first && sp->header)
            continue;
        int bad_col = -1;
        if (nf == sp->ncols) {
            for (uint32_t c = 0; c < sp->ncols && bad_col < 0; c++) {
                if (sp->need != NULL && !sp->need[c]) { /* checked, not kept */
                    if (sp->types[c] != EM_SQL_TEXT && sp->types[c] != EM_SQL_NULL &&
                        !convert(strings, sp->types[c], &fields[c], &row[c]))
                        bad_col = (int)c;
                    row[c] = em__sql_null();
                } else if (!convert(strings, sp->types[c], &fields[c], &row[c])) {
                    bad_col = (int)c;
                }
            }
        }
        if (nf != sp->ncols || bad_col >= 0) {
            if (sp->skip_bad) {
                (*bad)++;
                continue;
            }
            if (base == 0)
                base = line_at(p, off0);
            uint64_t at = base + rec_line - 1;
            if (nf != sp->ncols)
                rc = em_err_set(err, EM_ECORRUPT, "%s: line %llu: %u fields, table '%s' has %u columns",
                                sp->path, (unsigned long long)at, nf, sp->table, sp->ncols);
            else
                rc = em_err_set(err, EM_ECORRUPT, "%s: line %llu: column %s: '%.40s' is not %s %s",
                                sp->path, (unsigned long long)at, sp->cols[bad_col],
                                fields[bad_col].u.s, sp->types[bad_col] == EM_SQL_INT ? "an" : "a",
                                em_sql_type_name(sp->types[bad_col]));
            break;
        }
        if ((rc = fn(ud, row)) < 0) {
            em_err_set(err, rc, "%s: out of memory", sp->path);
            break;
        }
    }
    em_vbuf_destroy(&scratch);
    em_free(fields);
    em_free(row);
    return rc;
}

/* Appends one row (ncols values) to the in-memory table ud (a sql_table *); EM_ENOMEM. */
int em__sql_table_append_row(void *ud, const em_sql_value *row)
{
    sql_table *t = ud;
    if (t->nrows == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64, bytes;
        if (!em_size_mul(nc, t->ncols * sizeof *t->rows, &bytes))
            return EM_ENOMEM;
        em_sql_value *nr = em_realloc(t->rows, bytes);
        if (nr == NULL)
            return EM_ENOMEM;
        t->rows = nr;
        t->cap = nc;
    }
    memcpy(&t->rows[t->nrows++ * t->ncols], row, t->ncols * sizeof *row);
    return 0;
}

void em__sql_csv_spec_of(const sql_table *t, sql_csv_spec *sp)
{
    *sp = (sql_csv_spec){.path = t->csv_path, .table = t->name, .ncols = t->ncols,
                         .types = t->types, .cols = (const char *const *)t->cols,
                         .delim = t->csv_delim, .header = t->csv_header,
                         .multiline = true, .skip_bad = t->csv_skip_bad};
}

int em__sql_csv_load(sql_table *t, em_err *err)
{
    uint8_t *buf = NULL;
    size_t len;
    sql_csv_spec sp;
    int rc;
    if (t->emc)
        return em__sql_emc_load(t, err);
    em__sql_csv_spec_of(t, &sp);
    t->bad_rows = 0;
    if ((rc = em_read_file(t->csv_path, &buf, &len, err)) < 0)
        return rc;
    rc = em__sql_csv_parse(&sp, (const char *)buf, len, 0, len, &t->strings,
                           em__sql_table_append_row, t, &t->bad_rows, err);
    em_free(buf);
    if (rc == 0)
        t->loaded = true;
    return rc;
}
