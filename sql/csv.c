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
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (v->len == 0 || *end != '\0' || errno != 0)
            return false;
        *out = em__sql_int(x);
        return true;
    }
    case EM_SQL_DOUBLE: {
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

int em__sql_csv_load(sql_table *t, const char *path, char delim, bool header, em_err *err)
{
    uint8_t *buf = NULL;
    size_t len, off = 0;
    uint64_t line = 1;
    em_vbuf scratch;
    int rc;
    em_sql_value *fields = em_calloc(t->ncols + 1, sizeof *fields), *row = NULL;
    if (fields == NULL || (row = em_calloc(t->ncols, sizeof *row)) == NULL) {
        em_free(fields);
        return em_err_set(err, EM_ENOMEM, "out of memory");
    }
    em_vbuf_init(&scratch);
    if ((rc = em_read_file(path, &buf, &len, err)) < 0)
        goto out;
    for (bool first = true;; first = false) {
        uint32_t nf;
        uint64_t rec_line = line;
        rc = em__sql_csv_record((const char *)buf, len, &off, delim, &scratch, fields,
                                t->ncols + 1, &nf, &line, err);
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc < 0) {
            em_err_prefix(err, "%s", path);
            goto out;
        }
        if (nf == 1 && fields[0].type == EM_SQL_NULL)
            continue; /* blank line */
        if (nf != t->ncols) {
            rc = em_err_set(err, EM_ECORRUPT, "%s: line %llu: %u fields, table '%s' has %u columns",
                            path, (unsigned long long)rec_line, nf, t->name, t->ncols);
            goto out;
        }
        if (first && header)
            continue;
        for (uint32_t c = 0; c < t->ncols; c++)
            if (!convert(&t->strings, t->types[c], &fields[c], &row[c])) {
                rc = em_err_set(err, EM_ECORRUPT, "%s: line %llu: column %s: '%.40s' is not %s %s",
                                path, (unsigned long long)rec_line, t->cols[c], fields[c].u.s,
                                t->types[c] == EM_SQL_INT ? "an" : "a",
                                em_sql_type_name(t->types[c]));
                goto out;
            }
        if (t->nrows == t->cap) {
            size_t nc = t->cap ? t->cap * 2 : 64, bytes;
            if (!em_size_mul(nc, t->ncols * sizeof *t->rows, &bytes)) {
                rc = em_err_set(err, EM_ENOMEM, "%s: too many rows", path);
                goto out;
            }
            em_sql_value *nr = em_realloc(t->rows, bytes);
            if (nr == NULL) {
                rc = em_err_set(err, EM_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            t->rows = nr;
            t->cap = nc;
        }
        memcpy(&t->rows[t->nrows++ * t->ncols], row, t->ncols * sizeof *row);
    }
out:
    em_vbuf_destroy(&scratch);
    em_free(buf);
    em_free(fields);
    em_free(row);
    return rc;
}
