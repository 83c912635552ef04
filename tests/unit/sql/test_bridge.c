/* tests/unit/sql/test_bridge.c - query results to labeled points (sql/sql_ml.h): the order
 * TEXT values are indexed in, one-hot features, dense and sparse layouts, the NULL
 * policies and their errors, the mapping applied to a test set, the encoding's bytes, the
 * LIBSVM export read back, and CSV tables with inferred types. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sql/sql_ml.h"

static em_context *g_sc;
static em_sql_session *g_s;

static void setup(void)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[2]");
    cr_assert_eq(em_sql_ml_register(), 0);
    g_sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(g_sc, "%s", err.msg);
    g_s = em_sql_session_new(&err);
    em_sql_dataset d;
    em_sql_diag dg;
    /* city counts: b 3, a 2, c 2, d 1 -> indexes b 0, a 1, c 2, d 3 */
    const char *init =
        "CREATE TABLE t (id INTEGER, y INTEGER, age DOUBLE, city TEXT, ok BOOLEAN);"
        "INSERT INTO t VALUES (1, 0, 20.5, 'c', 1), (2, 1, 30, 'b', 0), (3, 1, 40, 'a', 1),"
        " (4, 0, 50, 'b', 0), (5, 1, 60, 'd', 1), (6, 0, 70, 'a', 0), (7, 1, 80, 'b', 1),"
        " (8, 0, 90, 'c', 0);"
        "CREATE TABLE n (id INTEGER, y INTEGER, age DOUBLE, city TEXT);"
        "INSERT INTO n VALUES (1, 1, 1.5, 'x'), (2, 0, NULL, 'x'), (3, 1, 3, NULL),"
        " (4, NULL, 4, 'y');"
        "SELECT 1";
    cr_assert_eq(em_sql_query_dataset(g_sc, g_s, init, 0, &d, &dg), 0, "%s", dg.err.msg);
    em_sql_dataset_release(&d);
}

static void teardown(void)
{
    em_sql_session_free(g_s);
    em_context_free(g_sc);
}

static void query(const char *sql, uint32_t nparts, em_sql_dataset *d)
{
    em_sql_diag dg;
    cr_assert_eq(em_sql_query_dataset(g_sc, g_s, sql, nparts, d, &dg), 0, "%s", dg.err.msg);
}

/* The rows of a data set as dense label + dim values (recs in order). */
static double *collect_dense(const em_ml_data *m, size_t *n)
{
    em_records recs = {0};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(m->rows, &recs, &err), 0, "%s", err.msg);
    size_t w = (size_t)m->dim + 1;
    double *out = calloc(recs.n * w + 1, sizeof *out);
    for (size_t i = 0; i < recs.n; i++) {
        em_ml_row row;
        cr_assert_eq(em_ml_row_view(m, recs.recs[i].val, &row, &err), 0, "%s", err.msg);
        out[i * w] = row.label;
        if (row.dense)
            memcpy(&out[i * w + 1], row.dense, 8 * (size_t)m->dim);
        else
            for (uint32_t k = 0; k < row.sp.nnz; k++)
                out[i * w + 1 + em_ml_sparse_idx(&row.sp, k)] = em_ml_sparse_val(&row.sp, k);
    }
    *n = recs.n;
    em_records_destroy(&recs);
    return out;
}

Test(sql_bridge, text_values_indexed_by_frequency_then_value, .init = setup, .fini = teardown,
     .timeout = 60)
{
    em_sql_dataset d;
    em_sql_ml_encoding *e = NULL;
    em_err err = EM_ERR_INIT;
    query("SELECT y, age, city FROM t", 3, &d);
    em_sql_ml_opts o = {.label = "y"};
    cr_assert_eq(em_sql_ml_fit(&d, &o, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(em_sql_ml_encoding_dim(e), 5);
    const char *want[] = {"age", "city=b", "city=a", "city=c", "city=d"};
    for (uint32_t i = 0; i < 5; i++)
        cr_expect_str_eq(em_sql_ml_encoding_feature(e, i), want[i]);
    cr_expect_null(em_sql_ml_encoding_feature(e, 5));
    json_t *j = em_sql_ml_encoding_json(e);
    char *s = json_dumps(j, JSON_COMPACT);
    cr_expect(strstr(s, "\"values\":[\"b\",\"a\",\"c\",\"d\"]") != NULL, "%s", s);
    cr_expect(strstr(s, "\"layout\":\"sparse\"") != NULL, "%s", s);
    free(s);
    json_decref(j);
    em_sql_ml_encoding_free(e);
    em_sql_dataset_release(&d);
}

Test(sql_bridge, one_hot_rows_in_the_sparse_layout, .init = setup, .fini = teardown,
     .timeout = 60)
{
    em_sql_dataset d;
    em_ml_data m;
    em_err err = EM_ERR_INIT;
    query("SELECT city, y, age FROM t ORDER BY id", 2, &d);
    em_sql_ml_opts o = {.label = "y"};
    cr_assert_eq(em_sql_ml_points(&d, &o, &m, NULL, &err), 0, "%s", err.msg);
    cr_assert(m.sparse && m.labeled);
    cr_assert_eq(m.dim, 5);   /* city (4 values) first, then age */
    cr_assert_eq(m.nrows, 8);
    size_t n;
    double *x = collect_dense(&m, &n);
    const char *city = "cbabdabc";
    const double age[] = {20.5, 30, 40, 50, 60, 70, 80, 90};
    const double y[] = {0, 1, 1, 0, 1, 0, 1, 0};
    for (size_t i = 0; i < n; i++) {
        const double *r = &x[i * 6];
        int hot = city[i] == 'b' ? 0 : city[i] == 'a' ? 1 : city[i] == 'c' ? 2 : 3;
        cr_expect_eq(r[0], y[i], "row %zu label", i);
        for (int k = 0; k < 4; k++)
            cr_expect_eq(r[1 + k], k == hot ? 1.0 : 0.0, "row %zu city %d", i, k);
        cr_expect_eq(r[5], age[i], "row %zu age", i);
    }
    free(x);
    em_ml_data_release(&m);
    em_sql_dataset_release(&d);
}

Test(sql_bridge, numeric_columns_give_dense_rows, .init = setup, .fini = teardown,
     .timeout = 60)
{
    em_sql_dataset d;
    em_ml_data m;
    em_err err = EM_ERR_INIT;
    query("SELECT age, ok, y FROM t ORDER BY id", 0, &d);
    const char *feats[] = {"ok", "AGE"};
    em_sql_ml_opts o = {.label = "y", .features = feats, .nfeatures = 2};
    cr_assert_eq(em_sql_ml_points(&d, &o, &m, NULL, &err), 0, "%s", err.msg);
    cr_assert(!m.sparse && m.labeled && m.dim == 2 && m.nrows == 8);
    size_t n;
    double *x = collect_dense(&m, &n);
    cr_expect(x[0] == 0 && x[1] == 1 && x[2] == 20.5);   /* id 1: y 0, ok 1, age 20.5 */
    cr_expect(x[3] == 1 && x[4] == 0 && x[5] == 30);
    free(x);
    em_ml_data_release(&m);
    em_sql_dataset_release(&d);
}

Test(sql_bridge, null_is_an_error_naming_column_and_row, .init = setup, .fini = teardown,
     .timeout = 60)
{
    em_sql_dataset d;
    em_ml_data m;
    em_err err = EM_ERR_INIT;
    query("SELECT y, age FROM n ORDER BY id", 2, &d);
    em_sql_ml_opts o = {.label = "y"};
    cr_assert_lt(em_sql_ml_points(&d, &o, &m, NULL, &err), 0);
    cr_expect(strstr(err.msg, "column 'age'") && strstr(err.msg, "row 2"), "%s", err.msg);
    cr_expect_null(m.rows);
    em_sql_dataset_release(&d);
}

Test(sql_bridge, null_policies_skip_and_nan, .init = setup, .fini = teardown, .timeout = 60)
{
    em_sql_dataset d;
    em_ml_data m;
    em_err err = EM_ERR_INIT;
    query("SELECT y, age, city FROM n ORDER BY id", 2, &d);
    em_sql_ml_opts o = {.label = "y", .nulls = EM_SQL_ML_NULL_SKIP};
    cr_assert_eq(em_sql_ml_points(&d, &o, &m, NULL, &err), 0, "%s", err.msg);
    cr_expect_eq(m.nrows, 1);     /* only row 1 has no NULL */
    cr_expect_eq(m.skipped, 3);
    em_ml_data_release(&m);

    /* nan: features NaN (all of a TEXT column's), a NULL label is still an error */
    o.nulls = EM_SQL_ML_NULL_NAN;
    cr_assert_lt(em_sql_ml_points(&d, &o, &m, NULL, &err), 0);
    cr_expect(strstr(err.msg, "label column 'y'") && strstr(err.msg, "row 4"), "%s", err.msg);
    em_sql_dataset_release(&d);
    query("SELECT y, age, city FROM n WHERE y IS NOT NULL ORDER BY id", 1, &d);
    cr_assert_eq(em_sql_ml_points(&d, &o, &m, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(m.nrows, 3);
    cr_assert_eq(m.dim, 2);       /* age, city=x */
    size_t n;
    double *x = collect_dense(&m, &n);
    cr_expect(x[1] == 1.5 && x[2] == 1);
    cr_expect(isnan(x[4]) && x[5] == 1);
    cr_expect(x[7] == 3 && isnan(x[8]));
    free(x);
    em_ml_data_release(&m);
    em_sql_dataset_release(&d);
}

Test(sql_bridge, errors_name_the_columns, .init = setup, .fini = teardown, .timeout = 60)
{
    em_sql_dataset d;
    em_sql_ml_encoding *e = NULL;
    em_err err = EM_ERR_INIT;
    query("SELECT y, age FROM t", 0, &d);
    em_sql_ml_opts o = {.label = "why"};
    cr_expect_eq(em_sql_ml_fit(&d, &o, &e, &err), EM_EPLAN);
    cr_expect(strstr(err.msg, "unknown column 'why'") && strstr(err.msg, "y, age"), "%s",
              err.msg);
    const char *f[] = {"y"};
    em_sql_ml_opts o2 = {.label = "y", .features = f, .nfeatures = 1};
    cr_expect_eq(em_sql_ml_fit(&d, &o2, &e, &err), EM_EINVAL);
    cr_expect(strstr(err.msg, "label and a feature"), "%s", err.msg);
    em_sql_dataset_release(&d);
    query("SELECT y FROM t", 0, &d);
    em_sql_ml_opts o3 = {.label = "y"};
    cr_expect_eq(em_sql_ml_fit(&d, &o3, &e, &err), EM_EINVAL);
    cr_expect(strstr(err.msg, "no feature columns"), "%s", err.msg);
    em_sql_dataset_release(&d);
    em_sql_diag dg;
    cr_expect_lt(em_sql_query_dataset(g_sc, g_s, "CREATE TABLE z (a INTEGER)", 0, &d, &dg), 0);
    cr_expect(strstr(dg.err.msg, "a SELECT was expected"), "%s", dg.err.msg);
}

Test(sql_bridge, the_mapping_applies_to_a_test_set, .init = setup, .fini = teardown,
     .timeout = 60)
{
    em_sql_dataset tr, te;
    em_sql_ml_encoding *e = NULL;
    em_ml_data m;
    em_err err = EM_ERR_INIT;
    query("SELECT y, city FROM t", 2, &tr);
    /* other column order, an unseen city, a TEXT label value in a numeric column is fine */
    query("SELECT 'a' AS city, 1 AS y UNION ALL SELECT 'zz', 0", 1, &te);
    em_sql_ml_opts o = {.label = "y"};
    cr_assert_eq(em_sql_ml_fit(&tr, &o, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(em_sql_ml_transform(&te, e, EM_SQL_ML_ALL, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m.dim, 4);
    size_t n;
    double *x = collect_dense(&m, &n);
    cr_assert_eq(n, 2);
    cr_expect(x[0] == 1 && x[1] == 0 && x[2] == 1 && x[3] == 0 && x[4] == 0); /* a = 1 */
    cr_expect(x[5] == 0 && x[6] == 0 && x[7] == 0 && x[8] == 0 && x[9] == 0); /* unseen */
    free(x);
    em_ml_data_release(&m);
    em_sql_ml_encoding_free(e);
    em_sql_dataset_release(&tr);
    em_sql_dataset_release(&te);
}

Test(sql_bridge, a_split_is_disjoint_and_complete, .init = setup, .fini = teardown,
     .timeout = 60)
{
    em_sql_dataset d;
    em_sql_ml_encoding *e = NULL;
    em_ml_data a, b;
    em_err err = EM_ERR_INIT;
    query("SELECT id AS y, age FROM t", 3, &d);
    em_sql_ml_opts o = {.label = "y", .split_fraction = 0.4, .split_seed = 7};
    cr_assert_eq(em_sql_ml_fit(&d, &o, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(em_sql_ml_transform(&d, e, EM_SQL_ML_TRAIN, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(em_sql_ml_transform(&d, e, EM_SQL_ML_TEST, &b, &err), 0, "%s", err.msg);
    cr_expect_eq(a.nrows + b.nrows, 8);
    size_t na, nb;
    double *xa = collect_dense(&a, &na), *xb = collect_dense(&b, &nb);
    int seen = 0;
    for (size_t i = 0; i < na; i++)
        seen |= 1 << (int)xa[i * 2];
    for (size_t i = 0; i < nb; i++) {
        cr_expect_eq(seen & (1 << (int)xb[i * 2]), 0, "id %g on both sides", xb[i * 2]);
        seen |= 1 << (int)xb[i * 2];
    }
    cr_expect_eq(seen, 0x1fe);
    free(xa);
    free(xb);
    em_ml_data_release(&a);
    em_ml_data_release(&b);
    em_sql_ml_encoding_free(e);
    em_sql_dataset_release(&d);
}

Test(sql_bridge, encoding_bytes_round_trip_and_reject_corruption, .init = setup,
     .fini = teardown, .timeout = 60)
{
    em_sql_dataset d;
    em_sql_ml_encoding *e = NULL, *e2 = NULL;
    em_err err = EM_ERR_INIT;
    query("SELECT city AS label, age, city FROM t", 0, &d);
    em_sql_ml_opts o = {.label = "label", .nulls = EM_SQL_ML_NULL_NAN};
    cr_assert_eq(em_sql_ml_fit(&d, &o, &e, &err), 0, "%s", err.msg);
    em_vbuf b, b2;
    em_vbuf_init(&b);
    em_vbuf_init(&b2);
    cr_assert_eq(em_sql_ml_encoding_encode(e, &b), 0);
    cr_assert_eq(em_sql_ml_encoding_decode(b.data, b.len, &e2, &err), 0, "%s", err.msg);
    cr_assert_eq(em_sql_ml_encoding_encode(e2, &b2), 0);
    cr_expect(b.len == b2.len && memcmp(b.data, b2.data, b.len) == 0);
    em_sql_ml_encoding_free(e2);
    for (size_t cut = 0; cut < b.len; cut++) {
        e2 = NULL;
        cr_expect_eq(em_sql_ml_encoding_decode(b.data, cut, &e2, &err), EM_ECORRUPT, "cut %zu",
                     cut);
        cr_expect_null(e2);
    }
    b.data[b.len - 1] ^= 0; /* still valid */
    b.data[20] = 0xff;      /* the label name's length */
    cr_expect_eq(em_sql_ml_encoding_decode(b.data, b.len, &e2, &err), EM_ECORRUPT);
    em_vbuf_destroy(&b);
    em_vbuf_destroy(&b2);
    em_sql_ml_encoding_free(e);
    em_sql_dataset_release(&d);
}

Test(sql_bridge, libsvm_export_reads_back_the_same_points, .init = setup, .fini = teardown,
     .timeout = 60)
{
    char dir[] = "/tmp/em_sqlml_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *out = em_xasprintf("%s/svm", dir), *map = em_xasprintf("%s/map.json", dir);
    em_sql_dataset d;
    em_ml_data m, back;
    em_err err = EM_ERR_INIT;
    query("SELECT y, age, city FROM t ORDER BY id", 2, &d);
    em_sql_ml_opts o = {.label = "y"};
    cr_assert_eq(em_sql_ml_export_libsvm(&d, &o, out, map, &err), 0, "%s", err.msg);
    cr_assert_eq(em_sql_ml_points(&d, &o, &m, NULL, &err), 0, "%s", err.msg);
    em_ml_read_opts ro = {.format = EM_ML_LIBSVM, .dim = m.dim, .min_partitions = 1};
    cr_assert_eq(em_ml_read(g_sc, out, &ro, &back, &err), 0, "%s", err.msg);
    size_t n1, n2;
    double *x1 = collect_dense(&m, &n1), *x2 = collect_dense(&back, &n2);
    cr_assert_eq(n1, n2);
    cr_expect(memcmp(x1, x2, n1 * 6 * sizeof(double)) == 0);
    cr_expect_eq(access(map, R_OK), 0);
    free(x1);
    free(x2);
    em_ml_data_release(&m);
    em_ml_data_release(&back);
    em_sql_dataset_release(&d);
    char *cmd = em_xasprintf("rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
    em_free(cmd);
    em_free(out);
    em_free(map);
}

Test(sql_bridge, csv_tables_get_inferred_types, .init = setup, .fini = teardown,
     .timeout = 60)
{
    char path[] = "/tmp/em_sqlml_XXXXXX.csv";
    int fd = mkstemps(path, 4);
    cr_assert_geq(fd, 0);
    const char *text = "id,score,name,\"odd \"\"col\"\"\"\n1,2.5,a,\n2,3,\"b,c\",x\n\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    em_err err = EM_ERR_INIT;
    int rc = em_sql_attach_csv(g_s, "people", path, &err);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", err.msg);
    em_sql_dataset d;
    query("SELECT * FROM people ORDER BY id", 1, &d);
    cr_assert_eq(d.ncols, 4);
    cr_expect_eq(d.types[0], EM_SQL_INT);
    cr_expect_eq(d.types[1], EM_SQL_DOUBLE);
    cr_expect_eq(d.types[2], EM_SQL_TEXT);
    cr_expect_eq(d.types[3], EM_SQL_TEXT);
    cr_expect_str_eq(d.names[3], "odd \"col\"");
    em_sql_dataset_release(&d);
    cr_expect_lt(em_sql_attach_csv(g_s, "nope", "/nonexistent/x.csv", &err), 0);
    cr_expect(strstr(err.msg, "/nonexistent/x.csv") != NULL, "%s", err.msg);
}

Test(sql_bridge, drop_last_leaves_out_the_rarest_value, .init = setup, .fini = teardown,
     .timeout = 60)
{
    em_sql_dataset d;
    em_ml_data m;
    em_sql_ml_encoding *e = NULL;
    em_err err = EM_ERR_INIT;
    query("SELECT y, city FROM t ORDER BY id", 2, &d);
    em_sql_ml_opts o = {.label = "y", .drop_last = true};
    cr_assert_eq(em_sql_ml_points(&d, &o, &m, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(m.dim, 3);       /* b, a, c; d (1 row) has no feature */
    cr_expect_str_eq(em_sql_ml_encoding_feature(e, 2), "city=c");
    size_t n;
    double *x = collect_dense(&m, &n);
    cr_assert_eq(n, 8);
    cr_expect(x[4 * 4 + 1] == 0 && x[4 * 4 + 2] == 0 && x[4 * 4 + 3] == 0); /* id 5: d */
    cr_expect(x[1 * 4 + 1] == 1);                                          /* id 2: b */
    em_vbuf b;
    em_sql_ml_encoding *e2 = NULL;
    em_vbuf_init(&b);
    cr_assert_eq(em_sql_ml_encoding_encode(e, &b), 0);
    cr_assert_eq(em_sql_ml_encoding_decode(b.data, b.len, &e2, &err), 0, "%s", err.msg);
    cr_expect_eq(em_sql_ml_encoding_dim(e2), 3);
    em_vbuf_destroy(&b);
    em_sql_ml_encoding_free(e2);
    free(x);
    em_ml_data_release(&m);
    em_sql_ml_encoding_free(e);
    em_sql_dataset_release(&d);
}
