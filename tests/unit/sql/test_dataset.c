/* tests/unit/sql/test_dataset.c - a query's result as an engine dataset
 * (em_sql_result_to_rdd): collected records decode back to the result's rows. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/ember.h"
#include "sql/sql.h"

Test(sql_dataset, result_rows_round_trip_through_the_engine, .timeout = 60)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[2]");
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "%s", err.msg);

    em_sql_session *s = em_sql_session_new(&err);
    const char *sql[] = {"CREATE TABLE t (id INTEGER, name TEXT, score DOUBLE)",
                         "INSERT INTO t VALUES (1, 'a', 0.5), (2, NULL, 1.5), (3, 'c', NULL)",
                         "SELECT id, name, score * 2 FROM t ORDER BY id"};
    em_sql_result *r = NULL;
    for (int i = 0; i < 3; i++) {
        em_sql_diag d;
        size_t used;
        em_sql_result_free(r);
        cr_assert_eq(em_sql_exec(s, sql[i], strlen(sql[i]), &used, &r, &d), 0, "%s", d.err.msg);
    }
    em_rdd *rdd = em_sql_result_to_rdd(sc, r, 2, &err);
    cr_assert_not_null(rdd, "%s", err.msg);
    em_records recs = {0};
    cr_assert_eq(em_rdd_collect(rdd, &recs, &err), 0, "%s", err.msg);
    cr_assert_eq(recs.n, 3);
    for (size_t i = 0; i < recs.n; i++) {
        em_sql_value row[3];
        size_t used;
        cr_assert_eq(em_sql_row_decode(recs.recs[i].val.p, recs.recs[i].val.n, row, 3, &used,
                                       &err), 0, "%s", err.msg);
        cr_expect_eq(used, recs.recs[i].val.n);
        const em_sql_value *want = em_sql_result_row(r, i);
        for (int c2 = 0; c2 < 3; c2++) {
            cr_expect_eq(row[c2].type, want[c2].type, "row %zu col %d", i, c2);
            if (want[c2].type == EM_SQL_TEXT)
                cr_expect(row[c2].len == want[c2].len &&
                          memcmp(row[c2].u.s, want[c2].u.s, want[c2].len) == 0);
            else if (want[c2].type != EM_SQL_NULL)
                cr_expect_eq(row[c2].u.i, want[c2].u.i);
        }
    }
    em_records_destroy(&recs);
    em_rdd_release(rdd);
    em_sql_result_free(r);
    em_sql_session_free(s);
    em_context_free(sc);
}

Test(sql_dataset, query_rdd_gives_rows_and_schema, .timeout = 60)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[2]");
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "%s", err.msg);
    em_sql_session *s = em_sql_session_new(&err);
    const char *setup[] = {"CREATE TABLE t (id INTEGER, name TEXT)",
                           "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, NULL)"};
    for (int i = 0; i < 2; i++) {
        em_sql_diag d;
        em_sql_result *r = NULL;
        size_t used;
        cr_assert_eq(em_sql_exec(s, setup[i], strlen(setup[i]), &used, &r, &d), 0, "%s",
                     d.err.msg);
        em_sql_result_free(r);
    }
    em_sql_diag d;
    em_sql_result *schema = NULL;
    const char *q = "SELECT id * 10 AS x, name FROM t WHERE id >= 2";
    em_rdd *rdd = em_sql_query_rdd(s, sc, q, strlen(q), &schema, &d);
    cr_assert_not_null(rdd, "%s", d.err.msg);
    cr_assert_eq(em_sql_result_ncols(schema), 2);
    cr_expect_str_eq(em_sql_result_col_name(schema, 0), "x");
    cr_expect_eq(em_sql_result_col_type(schema, 1), EM_SQL_TEXT);
    em_records recs = {0};
    cr_assert_eq(em_rdd_collect(rdd, &recs, &err), 0, "%s", err.msg);
    cr_assert_eq(recs.n, 2);
    int64_t sum = 0;
    for (size_t i = 0; i < recs.n; i++) {
        em_sql_value row[2];
        size_t used;
        cr_assert_eq(em_sql_row_decode(recs.recs[i].val.p, recs.recs[i].val.n, row, 2, &used,
                                       &err), 0, "%s", err.msg);
        sum += row[0].u.i;
    }
    cr_expect_eq(sum, 50);
    em_records_destroy(&recs);
    em_rdd_release(rdd);
    em_sql_result_free(schema);

    const char *notq = "DROP TABLE t";
    cr_expect_null(em_sql_query_rdd(s, sc, notq, strlen(notq), &schema, &d));
    cr_expect_null(schema);
    cr_expect_eq(d.err.code, EM_EINVAL);
    em_sql_session_free(s);
    em_context_free(sc);
}
