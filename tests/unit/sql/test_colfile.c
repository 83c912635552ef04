/* tests/unit/sql/test_colfile.c - ember tables (USING ember, sql/colfile.c): a table written
 * by CREATE TABLE ... USING ember AS SELECT answers every query as its source does, on the
 * local path (loaded) and on the distributed path (row groups scanned by tasks, comparisons
 * over vectors, min/max skipping, a broadcast join kept across chunks); bad files are
 * errors naming the file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/ember.h"
#include "sql/sql.h"
#include "tests/support/sql.h"

/* 100,000 rows (two row groups): integers, doubles, dates, text with NULLs, and a column
 * of mixed types (SQLite affinity lets an INTEGER column hold text). */
static const char *setup =
    "CREATE TABLE d (i INTEGER); INSERT INTO d VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9);"
    "CREATE TABLE big AS SELECT d1.i + 10 * d2.i + 100 * d3.i + 1000 * d4.i + 10000 * d5.i AS k,"
    " (d1.i * 7 + d2.i) % 13 AS q, (d3.i + d1.i) * 0.25 AS x,"
    " CASE WHEN d2.i = 3 THEN NULL ELSE CAST('1994-0' || (d1.i % 9 + 1) || '-1' || d4.i AS DATE) END AS day,"
    " CASE WHEN d1.i = 5 THEN NULL ELSE 'g' || d2.i END AS g,"
    " CASE WHEN d5.i = 9 AND d1.i = 1 THEN 'text' WHEN d1.i = 2 THEN NULL ELSE d3.i END AS m"
    " FROM d d1, d d2, d d3, d d4, d d5;"
    "CREATE TABLE small (q INTEGER, name TEXT);"
    "INSERT INTO small VALUES (0,'zero'),(1,'one'),(2,'two'),(3,'three'),(12,'twelve'),(NULL,'none');";

static const char *queries[] = {
    "SELECT count(*), sum(k), sum(q), sum(x), count(day), count(g), count(m) FROM T",
    "SELECT q, count(*), sum(x), min(day), max(g) FROM T GROUP BY q ORDER BY q",
    "SELECT count(*), sum(x) FROM T WHERE k >= 20000 AND k < 70000 AND x BETWEEN 0.5 AND 1.75 AND q < 6",
    "SELECT count(*) FROM T WHERE day >= DATE '1994-03-01' AND day < DATE '1994-06-01'",
    "SELECT count(*) FROM T WHERE x > 1 AND x <= 2 AND 3 > q",
    "SELECT count(*) FROM T WHERE k > 1000000",
    "SELECT count(*), sum(k) FROM T WHERE k = 99999 OR k = 5",
    "SELECT m, count(*) FROM T WHERE k < 100 OR m = 'text' GROUP BY m ORDER BY m",
    "SELECT g, count(*) FROM T WHERE g = 'g4' OR g IS NULL GROUP BY g ORDER BY g",
    "SELECT count(*) FROM T WHERE x = 1",
    "SELECT s.name, count(*), sum(T.x) FROM T, small s WHERE T.q = s.q AND T.k < 50000 "
    "GROUP BY s.name ORDER BY 1",
    "SELECT k, x, day, g, m FROM T ORDER BY k DESC LIMIT 5",
};

static void subst(char *out, size_t n, const char *q, const char *t)
{
    size_t o = 0;
    for (const char *p = q; *p && o + 8 < n; p++)
        if (*p == 'T' && (p == q || p[-1] == ' ' || p[-1] == ',' || p[-1] == '(') &&
            (p[1] == ' ' || p[1] == '\0' || p[1] == '.' || p[1] == ','))
            o += (size_t)snprintf(out + o, n - o, "%s", t);
        else
            out[o++] = *p;
    out[o] = '\0';
}

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/ember-sql-emc-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(const char *d)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    cr_assert_eq(system(cmd), 0);
}

static void compare_sessions(em_sql_session *src, em_sql_session *emc)
{
    em_vbuf x, y;
    char q1[1024], q2[1024];
    em_vbuf_init(&x);
    em_vbuf_init(&y);
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        subst(q1, sizeof q1, queries[i], "big");
        subst(q2, sizeof q2, queries[i], "e");
        em_test_sql_run(src, q1, &x);
        em_test_sql_run(emc, q2, &y);
        cr_assert_gt(x.len, 0);
        cr_expect(x.len == y.len && memcmp(x.data, y.data, x.len) == 0,
                  "%s\nsource:\n%.*s\nember table:\n%.*s", q2, (int)x.len, (char *)x.data,
                  (int)y.len, (char *)y.data);
    }
    em_vbuf_destroy(&x);
    em_vbuf_destroy(&y);
}

Test(colfile, local_path_round_trip)
{
    em_err err = EM_ERR_INIT;
    char sql[512];
    make_dir();
    em_sql_session *s = em_sql_session_new(&err);
    em_test_sql_run(s, setup, NULL);
    snprintf(sql, sizeof sql, "CREATE TABLE e USING ember OPTIONS (path '%s/e') AS SELECT * FROM big",
             dir);
    em_test_sql_run(s, sql, NULL);
    compare_sessions(s, s);
    /* attached again in another session, from the files alone */
    em_sql_session *t = em_sql_session_new(&err);
    em_test_sql_run(t, setup, NULL);
    snprintf(sql, sizeof sql, "CREATE TABLE e USING ember OPTIONS (path '%s/e')", dir);
    em_test_sql_run(t, sql, NULL);
    compare_sessions(t, t);
    em_vbuf b;
    em_vbuf_init(&b);
    em_test_sql_run(t, "DESCRIBE e", &b);
    cr_expect_not_null(strstr((char *)b.data, "day|DATE|"), "%.*s", (int)b.len, (char *)b.data);
    em_vbuf_destroy(&b);
    em_sql_session_free(t);
    em_sql_session_free(s);
    remove_dir(dir);
}

Test(colfile, distributed_scan_matches_the_source)
{
    cr_assert_eq(em_sql_register(), 0);
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    char sql[512];
    em_conf_set(c, "ember.master", "local[2]");
    em_conf_set(c, "ember.sql.forceDistributed", "true");
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "%s", err.msg);
    make_dir();
    em_sql_session *loc = em_sql_session_new(&err), *dis = em_sql_session_new(&err);
    em_sql_session_set_context(dis, sc);
    em_test_sql_run(loc, setup, NULL);
    em_test_sql_run(dis, setup, NULL);
    /* written by the tasks, one part file per partition */
    snprintf(sql, sizeof sql, "CREATE TABLE e USING ember OPTIONS (path '%s/e') AS SELECT * FROM big",
             dir);
    em_test_sql_run(dis, sql, NULL);
    snprintf(sql, sizeof sql, "CREATE TABLE e USING ember OPTIONS (path '%s/e')", dir);
    em_test_sql_run(loc, sql, NULL);
    compare_sessions(loc, dis);
    em_vbuf b;
    em_vbuf_init(&b);
    em_test_sql_run(dis, "EXPLAIN SELECT count(*) FROM e WHERE k < 5", &b);
    cr_expect_not_null(strstr((char *)b.data, "ColumnarScan"), "%.*s", (int)b.len, (char *)b.data);
    em_vbuf_destroy(&b);
    em_sql_session_free(loc);
    em_sql_session_free(dis);
    em_context_free(sc);
    remove_dir(dir);
}

Test(colfile, bad_files_and_statements_are_errors)
{
    em_err err = EM_ERR_INIT;
    em_sql_diag d;
    char sql[512], path[128];
    make_dir();
    em_sql_session *s = em_sql_session_new(&err);
    em_test_sql_run(s, "CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, NULL)", NULL);
    snprintf(sql, sizeof sql, "CREATE TABLE e USING ember OPTIONS (path '%s/e') AS SELECT * FROM t",
             dir);
    em_test_sql_run(s, sql, NULL);
    /* the directory holds a table already */
    snprintf(sql, sizeof sql, "CREATE TABLE f USING ember OPTIONS (path '%s/e') AS SELECT * FROM t",
             dir);
    cr_expect_lt(em_test_sql_exec_all(s, sql, NULL, &d), 0);
    cr_expect_not_null(strstr(d.err.msg, "already holds part files"), "%s", d.err.msg);
    /* a failed query leaves no directory behind */
    snprintf(sql, sizeof sql, "CREATE TABLE f USING ember OPTIONS (path '%s/new') AS "
             "SELECT * FROM no_such_table", dir);
    cr_expect_lt(em_test_sql_exec_all(s, sql, NULL, &d), 0);
    snprintf(path, sizeof path, "%s/new", dir);
    struct stat nst;
    cr_expect_neq(stat(path, &nst), 0, "%s was left behind", path);
    /* columns are the files' */
    snprintf(sql, sizeof sql, "CREATE TABLE g (a INTEGER) USING ember OPTIONS (path '%s/e')", dir);
    cr_expect_lt(em_test_sql_exec_all(s, sql, NULL, &d), 0);
    cr_expect_not_null(strstr(d.err.msg, "takes its columns from its files"), "%s", d.err.msg);
    /* an empty directory, then a truncated file */
    snprintf(sql, sizeof sql, "CREATE TABLE h USING ember OPTIONS (path '%s')", dir);
    cr_expect_lt(em_test_sql_exec_all(s, sql, NULL, &d), 0);
    cr_expect_not_null(strstr(d.err.msg, "no part files"), "%s", d.err.msg);
    snprintf(path, sizeof path, "%s/e/part-00000.emc", dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size - 3), 0);
    snprintf(sql, sizeof sql, "CREATE TABLE h USING ember OPTIONS (path '%s/e')", dir);
    cr_expect_lt(em_test_sql_exec_all(s, sql, NULL, &d), 0);
    cr_expect_not_null(strstr(d.err.msg, "part-00000.emc: not an ember table file"), "%s",
                       d.err.msg);
    em_sql_session_free(s);
    remove_dir(dir);
}

Test(colfile, insert_into_an_ember_table_is_an_error)
{
    em_err err = EM_ERR_INIT;
    em_sql_diag d;
    char sql[512];
    make_dir();
    em_sql_session *s = em_sql_session_new(&err);
    snprintf(sql, sizeof sql, "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);"
             "CREATE TABLE e USING ember OPTIONS (path '%s/e') AS SELECT * FROM t", dir);
    em_test_sql_run(s, sql, NULL);
    cr_expect_lt(em_test_sql_exec_all(s, "INSERT INTO e VALUES (2)", NULL, &d), 0);
    cr_expect_not_null(strstr(d.err.msg, "is an ember table"), "%s", d.err.msg);
    em_sql_session_free(s);
    remove_dir(dir);
}
