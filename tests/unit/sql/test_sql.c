/* tests/unit/sql/test_sql.c - the SQL front end end to end through em_sql_exec: values and
 * three-valued logic, joins, aggregates, ordering, errors with carets, and the row codec and
 * sortable keys (sql/sql.h). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sql/sql.h"

/* Runs every statement of sql; returns the last result (caller frees). Fails on error. */
static em_sql_result *run(em_sql_session *s, const char *sql)
{
    size_t off = 0, len = strlen(sql);
    em_sql_result *last = NULL;
    while (off < len) {
        em_sql_result *r = NULL;
        em_sql_diag d;
        size_t used;
        int rc = em_sql_exec(s, sql + off, len - off, &used, &r, &d);
        cr_assert_eq(rc, 0, "%s: %s", sql + off, d.err.msg);
        off += used;
        if (r != NULL) {
            em_sql_result_free(last);
            last = r;
        }
    }
    return last;
}

/* The text of cell (row, col). */
static const char *cell(const em_sql_result *r, size_t row, uint32_t col, char *buf, size_t n)
{
    em_vbuf b;
    em_vbuf_init(&b);
    em_sql_value_format(&b, &em_sql_result_row(r, row)[col]);
    snprintf(buf, n, "%.*s", (int)b.len, (const char *)b.data);
    em_vbuf_destroy(&b);
    return buf;
}

static void expect_row(const char *sql, const char *const *want, uint32_t n)
{
    em_sql_session *s = em_sql_session_new(NULL);
    em_sql_result *r = run(s, sql);
    char buf[128];
    cr_assert_not_null(r);
    cr_assert_eq(em_sql_result_ncols(r), n);
    cr_assert_eq(em_sql_result_nrows(r), 1);
    for (uint32_t c = 0; c < n; c++)
        cr_expect_str_eq(cell(r, 0, c, buf, sizeof buf), want[c], "%s: column %u", sql, c);
    em_sql_result_free(r);
    em_sql_session_free(s);
}

Test(sql, integer_arithmetic_follows_sqlite)
{
    const char *want[] = {"3", "-3", "NULL", "NULL", "1", "9.22337203685478e+18", "2.5"};
    expect_row("SELECT 7/2, -7/2, 7/0, 7%0, 7%-3, 9223372036854775807+1, 5/2.0", want, 7);
}

Test(sql, three_valued_logic)
{
    const char *want[] = {"0", "NULL", "1", "NULL", "NULL", "1", "0", "1"};
    expect_row("SELECT NULL AND 0, NULL AND 1, NULL OR 1, NOT NULL, 1 IN (2, NULL), "
               "1 IN (1, NULL), NULL IN (), NULL IS NULL", want, 8);
}

Test(sql, functions)
{
    const char *want[] = {"ell", "AB", "3", "5", "1995", "x", "NULL", "1"};
    expect_row("SELECT substr('hello', 2, 3), upper('ab'), length('abc'), abs(-5), "
               "EXTRACT(YEAR FROM DATE '1995-03-15'), COALESCE(NULL, 'x'), NULLIF(1, 1), "
               "'Abc' LIKE 'a_c'", want, 8);
}

Test(sql, group_order_nulls_first)
{
    em_sql_session *s = em_sql_session_new(NULL);
    em_sql_result *r = run(s, "CREATE TABLE t (k TEXT, v INTEGER);"
                              "INSERT INTO t VALUES ('a', 1), ('b', NULL), (NULL, 3), ('a', 1);"
                              "SELECT k, count(*), sum(v), count(DISTINCT v) FROM t "
                              "GROUP BY k ORDER BY k");
    char buf[64];
    cr_assert_eq(em_sql_result_nrows(r), 3);
    cr_expect_str_eq(cell(r, 0, 0, buf, sizeof buf), "NULL");
    cr_expect_str_eq(cell(r, 1, 0, buf, sizeof buf), "a");
    cr_expect_str_eq(cell(r, 1, 1, buf, sizeof buf), "2");
    cr_expect_str_eq(cell(r, 1, 3, buf, sizeof buf), "1");
    cr_expect_str_eq(cell(r, 2, 2, buf, sizeof buf), "NULL");
    em_sql_result_free(r);
    em_sql_session_free(s);
}

Test(sql, left_join_keeps_unmatched)
{
    em_sql_session *s = em_sql_session_new(NULL);
    em_sql_result *r = run(s, "CREATE TABLE a (x INTEGER); CREATE TABLE b (y INTEGER, z TEXT);"
                              "INSERT INTO a VALUES (1), (2); INSERT INTO b VALUES (1, 'one');"
                              "SELECT x, z FROM a LEFT JOIN b ON a.x = b.y ORDER BY x");
    char buf[64];
    cr_assert_eq(em_sql_result_nrows(r), 2);
    cr_expect_str_eq(cell(r, 0, 1, buf, sizeof buf), "one");
    cr_expect_str_eq(cell(r, 1, 1, buf, sizeof buf), "NULL");
    em_sql_result_free(r);
    em_sql_session_free(s);
}

Test(sql, error_has_caret_and_suggestion)
{
    em_sql_session *s = em_sql_session_new(NULL);
    em_sql_result *r = run(s, "CREATE TABLE users (name TEXT, age INTEGER)");
    const char *q = "SELECT name,\n       agee FROM users";
    em_sql_diag d;
    size_t used;
    em_vbuf b;
    em_sql_result_free(r);
    cr_assert_lt(em_sql_exec(s, q, strlen(q), &used, &r, &d), 0);
    cr_expect_eq(d.err.code, EM_EPLAN);
    em_vbuf_init(&b);
    em_sql_diag_format(&b, q, strlen(q), &d);
    em_vbuf_append(&b, "", 1);
    cr_expect_str_eq((const char *)b.data, "unknown column 'agee' (did you mean 'age'?)\n"
                                           "LINE 2:        agee FROM users\n"
                                           "               ^\n");
    em_vbuf_destroy(&b);
    em_sql_session_free(s);
}

Test(sql, failed_insert_changes_nothing)
{
    em_sql_session *s = em_sql_session_new(NULL);
    em_sql_result *r = run(s, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)");
    const char *bad = "INSERT INTO t VALUES (2), (3, 4)";
    em_sql_diag d;
    size_t used;
    em_sql_result_free(r);
    cr_assert_lt(em_sql_exec(s, bad, strlen(bad), &used, &r, &d), 0);
    r = run(s, "SELECT count(*) FROM t");
    char buf[16];
    cr_expect_str_eq(cell(r, 0, 0, buf, sizeof buf), "1");
    em_sql_result_free(r);
    em_sql_session_free(s);
}

Test(sql, row_codec_round_trip_and_truncation)
{
    em_sql_value in[6] = {
        {.type = EM_SQL_NULL}, {.type = EM_SQL_INT, .u.i = -5}, {.type = EM_SQL_DOUBLE, .u.d = 2.5},
        {.type = EM_SQL_TEXT, .len = 3, .u.s = "abc"}, {.type = EM_SQL_DATE, .u.i = 9000},
        {.type = EM_SQL_BOOL, .u.i = 1}};
    em_sql_value out[6];
    em_vbuf b;
    em_err err = EM_ERR_INIT;
    size_t used;
    em_vbuf_init(&b);
    cr_assert_eq(em_sql_row_encode(&b, in, 6), 0);
    cr_assert_eq(em_sql_row_decode(b.data, b.len, out, 6, &used, &err), 0, "%s", err.msg);
    cr_expect_eq(used, b.len);
    cr_expect_eq(out[1].u.i, -5);
    cr_expect_eq(out[2].u.d, 2.5);
    cr_expect_eq(out[3].len, 3);
    cr_expect_eq(memcmp(out[3].u.s, "abc", 3), 0);
    cr_expect_eq(out[4].u.i, 9000);
    for (size_t n = 0; n < b.len; n++)
        cr_expect_eq(em_sql_row_decode(b.data, n, out, 6, &used, &err), EM_ECORRUPT, "n=%zu", n);
    em_vbuf_destroy(&b);
}

static int key_cmp(const em_sql_value *a, const em_sql_value *b, bool desc)
{
    em_vbuf ka, kb;
    em_vbuf_init(&ka);
    em_vbuf_init(&kb);
    em_sql_key_encode(&ka, a, desc);
    em_sql_key_encode(&kb, b, desc);
    size_t n = ka.len < kb.len ? ka.len : kb.len;
    int c = memcmp(ka.data, kb.data, n);
    if (c == 0)
        c = (ka.len > kb.len) - (ka.len < kb.len);
    em_vbuf_destroy(&ka);
    em_vbuf_destroy(&kb);
    return c < 0 ? -1 : c > 0;
}

Test(sql, keys_sort_bytewise_in_sql_order)
{
    /* ascending SQL order */
    em_sql_value v[] = {
        {.type = EM_SQL_NULL},
        {.type = EM_SQL_DOUBLE, .u.d = -INFINITY},
        {.type = EM_SQL_INT, .u.i = INT64_MIN},
        {.type = EM_SQL_DOUBLE, .u.d = -2.5},
        {.type = EM_SQL_INT, .u.i = -1},
        {.type = EM_SQL_INT, .u.i = 0},
        {.type = EM_SQL_DOUBLE, .u.d = 0.5},
        {.type = EM_SQL_INT, .u.i = 9007199254740992},
        {.type = EM_SQL_INT, .u.i = 9007199254740993},
        {.type = EM_SQL_INT, .u.i = INT64_MAX},
        {.type = EM_SQL_DATE, .u.i = -3},
        {.type = EM_SQL_DATE, .u.i = 7},
        {.type = EM_SQL_TEXT, .len = 0, .u.s = ""},
        {.type = EM_SQL_TEXT, .len = 2, .u.s = "a\0"},
        {.type = EM_SQL_TEXT, .len = 2, .u.s = "ab"},
        {.type = EM_SQL_TEXT, .len = 1, .u.s = "b"},
    };
    size_t n = sizeof v / sizeof v[0];
    for (size_t i = 0; i + 1 < n; i++) {
        cr_expect_eq(key_cmp(&v[i], &v[i + 1], false), -1, "asc %zu", i);
        cr_expect_eq(key_cmp(&v[i], &v[i + 1], true), 1, "desc %zu", i);
    }
}

Test(sql, shortest_double_reads_back)
{
    double ds[] = {0.1, 1.0 / 3.0, 1e300, -2.5, 123456789.125, 5e-324};
    char buf[32];
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        em_sql_double_shortest(buf, ds[i]);
        cr_expect_eq(strtod(buf, NULL), ds[i], "%s", buf);
    }
    em_sql_double_shortest(buf, 0.1);
    cr_expect_str_eq(buf, "0.1");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(sql, csv_source_quotes_newlines_and_bad_rows)
{
    char dir[] = "/tmp/ember-sql-csv-XXXXXX", path[64], sql[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.csv", dir);
    write_file(path, "id,name,score\n1,\"a, b\",2.5\n2,\"two\nlines \"\"q\"\"\",\n");
    em_sql_session *s = em_sql_session_new(NULL);
    snprintf(sql, sizeof sql, "CREATE TABLE t (id INTEGER, name TEXT, score DOUBLE) USING csv "
                              "OPTIONS (path '%s', header 'true'); SELECT * FROM t ORDER BY id", path);
    em_sql_result *r = run(s, sql);
    char buf[64];
    cr_assert_eq(em_sql_result_nrows(r), 2);
    cr_expect_str_eq(cell(r, 0, 1, buf, sizeof buf), "a, b");
    cr_expect_str_eq(cell(r, 1, 1, buf, sizeof buf), "two\nlines \"q\"");
    cr_expect_str_eq(cell(r, 1, 2, buf, sizeof buf), "NULL");
    em_sql_result_free(r);

    write_file(path, "1,x\n2,3\nbad,4\n");
    snprintf(sql, sizeof sql, "CREATE TABLE u (a INTEGER, b TEXT) USING csv OPTIONS (path '%s')",
             path);
    em_sql_diag d;
    size_t used;
    cr_assert_lt(em_sql_exec(s, sql, strlen(sql), &used, &r, &d), 0);
    cr_expect_not_null(strstr(d.err.msg, "line 3: column a: 'bad' is not an INTEGER"), "%s",
                       d.err.msg);
    r = run(s, "SHOW TABLES");
    cr_expect_eq(em_sql_result_nrows(r), 1, "the failed table must not exist");
    em_sql_result_free(r);
    em_sql_session_free(s);
    unlink(path);
    rmdir(dir);
}

/* Records without quotes take sql/csv.c's one-pass splitter and the numbers its fast
 * conversions; the edge cases must read as the byte-wise parser and strtoll/strtod do. */
Test(sql, csv_fast_path_edges)
{
    char dir[] = "/tmp/ember-sql-csvf-XXXXXX", path[64], sql[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.csv", dir);
    write_file(path, "1,a\"b,\r\n,,\r\n-7,x\ry,1.\n"
                     "123456789012345678,z,0.1234567890123456789\n\n+4, w ,.5e1\n3,,-0.125");
    em_sql_session *s = em_sql_session_new(NULL);
    snprintf(sql, sizeof sql, "CREATE TABLE t (a INTEGER, b TEXT, c DOUBLE) USING csv "
                              "OPTIONS (path '%s'); SELECT a, b, c, length(b) FROM t", path);
    em_sql_result *r = run(s, sql);
    static const char *const want[][4] = {
        {"1", "a\"b", "NULL", "3"},      /* a quote inside a field is a character */
        {"NULL", "NULL", "NULL", "NULL"}, /* CRLF */
        {"-7", "x\ry", "1.0", "3"},      /* a lone CR is a character */
        {"123456789012345678", "z", "0.123456789012346", "1"},
        {"4", " w ", "5.0", "3"},         /* after the blank line: strtoll, strtod forms */
        {"3", "NULL", "-0.125", "NULL"},  /* no line break at the end */
    };
    char buf[64];
    cr_assert_eq(em_sql_result_nrows(r), 6);
    for (size_t i = 0; i < 6; i++)
        for (uint32_t c = 0; c < 4; c++)
            cr_expect_str_eq(cell(r, i, c, buf, sizeof buf), want[i][c], "row %zu column %u", i, c);
    em_sql_result_free(r);
    em_sql_session_free(s);
    unlink(path);
    rmdir(dir);
}

Test(sql, or_branches_sharing_a_join_condition_hash_join)
{
    em_sql_session *s = em_sql_session_new(NULL);
    em_sql_result *r = run(s, "CREATE TABLE p (pk INTEGER, brand TEXT);"
                              "CREATE TABLE l (lk INTEGER, qty INTEGER);"
                              "INSERT INTO p VALUES (1, 'a'), (2, 'b');"
                              "INSERT INTO l VALUES (1, 5), (2, 15), (1, 30);"
                              "EXPLAIN SELECT sum(qty) FROM l, p WHERE (pk = lk AND brand = 'a' "
                              "AND qty < 10) OR (lk = pk AND brand = 'b' AND qty > 10)");
    bool hash = false;
    char buf[512];
    for (size_t i = 0; i < em_sql_result_nrows(r); i++)
        hash |= strstr(cell(r, i, 0, buf, sizeof buf), "HashJoin") != NULL;
    cr_expect(hash, "the shared pk = lk must become a hash-join key");
    em_sql_result_free(r);
    r = run(s, "SELECT sum(qty) FROM l, p WHERE (pk = lk AND brand = 'a' AND qty < 10) OR "
               "(lk = pk AND brand = 'b' AND qty > 10)");
    cr_expect_str_eq(cell(r, 0, 0, buf, sizeof buf), "20");
    em_sql_result_free(r);
    em_sql_session_free(s);
}

Test(sql, bit_operators_and_sum_overflow_as_sqlite)
{
    const char *want[] = {"-9223372036854775808", "0", "-4", "1", "7", "-1", "14"};
    expect_row("SELECT 1 << 63, 1 << 64, -8 >> 1, 5 & 3, 5 | 3, ~0, 3 + 4 << 1", want, 7);
    em_sql_session *s = em_sql_session_new(NULL);
    em_sql_result *r = run(s, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES "
                              "(9223372036854775807), (1)");
    const char *q = "SELECT sum(x) FROM t";
    em_sql_diag d;
    size_t used;
    em_sql_result_free(r);
    cr_expect_lt(em_sql_exec(s, q, strlen(q), &used, &r, &d), 0);
    cr_expect_not_null(strstr(d.err.msg, "integer overflow"));
    r = run(s, "SELECT total(x), avg(x) FROM t");
    cr_expect_eq(em_sql_result_row(r, 0)[0].type, EM_SQL_DOUBLE);
    em_sql_result_free(r);
    em_sql_session_free(s);
}
