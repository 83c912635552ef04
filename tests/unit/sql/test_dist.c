/* tests/unit/sql/test_dist.c - the distributed path (sql/exec_dist.c) against the local
 * path: the same statements give the same rows with ember.sql.forceDistributed in local[2],
 * with broadcast and shuffle joins, and em_sql_query_rdd returns the last stage. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/ember.h"
#include "sql/sql.h"
#include "tests/support/sql.h"

static em_context *context(const char *bcast)
{
    cr_assert_eq(em_sql_register(), 0);
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[2]");
    em_conf_set(c, "ember.sql.forceDistributed", "true");
    em_conf_set(c, "ember.sql.autoBroadcastJoinThreshold", bcast);
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "%s", err.msg);
    return sc;
}

static const char *setup =
    "CREATE TABLE a (k INTEGER, g TEXT, x DOUBLE);"
    "INSERT INTO a VALUES (1,'p',1.5),(2,'q',NULL),(3,'p',2.5),(4,NULL,4.0),(5,'q',-1.0),"
    "(6,'r',0.25),(7,'p',9.0),(8,'q',3.0);"
    "CREATE TABLE b (k INTEGER, name TEXT);"
    "INSERT INTO b VALUES (1,'one'),(3,'three'),(3,'tres'),(5,'five'),(9,'nine'),(NULL,'none');"
    "CREATE TABLE c AS SELECT k * 2 AS k2, g FROM a WHERE x > 0;";

static const char *queries[] = {
    "SELECT a.k, b.name FROM a JOIN b ON a.k = b.k ORDER BY 1, 2",
    "SELECT a.k, b.name FROM a LEFT JOIN b ON a.k = b.k ORDER BY 1, 2",
    "SELECT g, count(*), sum(x), avg(x), min(k), max(x), total(x) FROM a GROUP BY g ORDER BY g",
    "SELECT count(*), sum(k), count(DISTINCT g), group_concat(g) FROM a WHERE k < 0",
    "SELECT count(*), sum(k), count(DISTINCT g) FROM a",
    "SELECT k, x FROM a ORDER BY x DESC, k LIMIT 3 OFFSET 1",
    "SELECT k FROM a WHERE k IN (SELECT k FROM b) AND x > (SELECT min(x) FROM a) ORDER BY k",
    "SELECT DISTINCT g FROM a ORDER BY 1",
    "SELECT c.g, k2 FROM c, a WHERE c.k2 = a.k + 1 ORDER BY 2",
    "SELECT k, (SELECT count(*) FROM b WHERE b.k = a.k) FROM a ORDER BY 1",
    "SELECT g FROM a UNION SELECT name FROM b ORDER BY 1",
};

static void compare(const char *bcast)
{
    em_err err = EM_ERR_INIT;
    em_context *sc = context(bcast);
    em_sql_session *loc = em_sql_session_new(&err), *dis = em_sql_session_new(&err);
    em_sql_session_set_context(dis, sc);
    em_vbuf x, y;
    em_vbuf_init(&x);
    em_vbuf_init(&y);
    em_test_sql_run(loc, setup, &x);
    em_test_sql_run(dis, setup, &y);
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        em_test_sql_run(loc, queries[i], &x);
        em_test_sql_run(dis, queries[i], &y);
        cr_expect(x.len == y.len && memcmp(x.data, y.data, x.len) == 0,
                  "%s\nlocal:\n%.*s\ndistributed:\n%.*s", queries[i], (int)x.len,
                  (const char *)x.data, (int)y.len, (const char *)y.data);
    }
    em_test_sql_run(dis, "EXPLAIN SELECT count(*) FROM a JOIN b ON a.k = b.k", &y);
    cr_expect(strstr((const char *)y.data, strcmp(bcast, "0") ? "BroadcastHashJoin"
                                                              : "ShuffleHashJoin") != NULL,
              "%.*s", (int)y.len, (const char *)y.data);
    em_vbuf_destroy(&x);
    em_vbuf_destroy(&y);
    em_sql_session_free(loc);
    em_sql_session_free(dis);
    em_context_free(sc);
}

Test(sql_dist, broadcast_joins_match_the_local_path, .timeout = 120) { compare("10485760"); }
Test(sql_dist, shuffle_joins_match_the_local_path, .timeout = 120) { compare("0"); }

Test(sql_dist, query_rdd_is_the_last_stage, .timeout = 60)
{
    em_err err = EM_ERR_INIT;
    em_context *sc = context("0");
    em_sql_session *s = em_sql_session_new(&err);
    em_vbuf v;
    em_vbuf_init(&v);
    em_sql_session_set_context(s, sc);
    em_test_sql_run(s, setup, &v);
    em_sql_result *schema = NULL;
    em_sql_diag d;
    const char *q = "SELECT g, sum(k) FROM a GROUP BY g";
    em_rdd *rdd = em_sql_query_rdd(s, sc, q, strlen(q), &schema, &d);
    cr_assert_not_null(rdd, "%s", d.err.msg);
    cr_expect_eq(em_sql_result_ncols(schema), 2);
    uint64_t n = 0;
    cr_assert_eq(em_rdd_count(rdd, &n, &err), 0, "%s", err.msg);
    cr_expect_eq(n, 4);
    em_rdd_release(rdd);
    em_sql_result_free(schema);
    em_vbuf_destroy(&v);
    em_sql_session_free(s);
    em_context_free(sc);
}
