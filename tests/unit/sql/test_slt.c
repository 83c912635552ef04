/* tests/unit/sql/test_slt.c - the sqllogictest runner (em_sql_slt_run): statements, sort
 * modes, type letters, hashed results, skipif/onlyif, and that wrong expectations fail. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sql/sql.h"

static char g_path[64];

static void write_script(const char *text)
{
    strcpy(g_path, "/tmp/ember-slt-XXXXXX");
    int fd = mkstemp(g_path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
}

static em_sql_slt_stats run_script(const char *text, const char *engine)
{
    em_sql_slt_stats st = {0};
    em_sql_slt_opts o = {.engine = engine};
    em_err err = EM_ERR_INIT;
    write_script(text);
    cr_assert_eq(em_sql_slt_run(g_path, &o, &st, &err), 0, "%s", err.msg);
    unlink(g_path);
    return st;
}

static const char setup[] =
    "statement ok\nCREATE TABLE t1(a INTEGER, b TEXT, c REAL)\n\n"
    "statement ok\nINSERT INTO t1 VALUES(3,'x',1.5),(1,'',NULL),(2,'y',-0.25)\n\n";

Test(slt, passing_records)
{
    char script[2048];
    snprintf(script, sizeof script,
             "%s"
             "statement error\nSELECT nope FROM t1\n\n"
             "query ITR rowsort\nSELECT a, b, c FROM t1\n----\n1\n(empty)\nNULL\n2\ny\n-0.250\n3\nx\n1.500\n\n"
             "query I valuesort\nSELECT a FROM t1 UNION ALL SELECT 10\n----\n1\n10\n2\n3\n\n"
             "hash-threshold 2\n\n"
             "query I nosort\nSELECT a FROM t1 ORDER BY a\n----\n3 values hashing to %s\n\n"
             "onlyif mysql\nquery I nosort\nSELECT 1 DIV 2\n----\n0\n\n"
             "skipif mysql # comment\nquery I nosort\nSELECT 7/2\n----\n3\n\n",
             setup, "c0710d6b4f15dfa88f600b0e6b624077");
    em_sql_slt_stats st = run_script(script, NULL);
    cr_expect_eq(st.failed, 0);
    cr_expect_eq(st.passed, 7);
    cr_expect_eq(st.skipped, 1);
}

Test(slt, wrong_expectations_fail)
{
    char script[2048];
    snprintf(script, sizeof script,
             "%s"
             "statement ok\nSELECT nope FROM t1\n\n"
             "query I nosort\nSELECT a FROM t1 ORDER BY a\n----\n1\n2\n4\n\n"
             "query II nosort\nSELECT a FROM t1\n----\n1\n\n"
             "query I nosort\nSELECT a FROM t1 ORDER BY a\n----\n3 values hashing to 00000000000000000000000000000000\n\n",
             setup);
    em_sql_slt_stats st = run_script(script, NULL);
    cr_expect_eq(st.passed, 2);
    cr_expect_eq(st.failed, 4);
}

Test(slt, engine_name_selects_guarded_records)
{
    const char *script = "onlyif sqlite\nquery I nosort\nSELECT 1\n----\n1\n\n"
                         "skipif sqlite\nquery I nosort\nSELECT 1\n----\n2\n\n";
    em_sql_slt_stats st = run_script(script, "sqlite");
    cr_expect_eq(st.passed, 1);
    cr_expect_eq(st.failed, 0);
    cr_expect_eq(st.skipped, 1);
}
