/* tests/unit/sql/test_tpch.c - the TPC-H-shaped generator (sql/tpch.c): the bytes do not
 * depend on the thread count, the row counts follow the scale factor, schema.sql loads in
 * a session and agrees with the files, and bad options and unwritable directories fail
 * cleanly, leaving no temporary file. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sql/sql.h"
#include "sql/tpch.h"

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    cr_assert_eq(fread(p, 1, (size_t)len, f), (size_t)len);
    p[len] = '\0';
    fclose(f);
    *n = (size_t)len;
    return p;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    while (d != NULL && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    return n;
}

Test(sql_tpch, same_bytes_with_any_thread_count, .timeout = 60)
{
    char a[] = "/tmp/ember-tpch-a.XXXXXX", b[] = "/tmp/ember-tpch-b.XXXXXX";
    cr_assert_not_null(mkdtemp(a));
    cr_assert_not_null(mkdtemp(b));
    em_err err = EM_ERR_INIT;
    em_sql_tpch_stats sa, sb;
    em_sql_tpch_opts o = {.sf = 0.002, .seed = 7, .threads = 1, .out_dir = a};
    cr_assert_eq(em_sql_tpch_generate(&o, &sa, &err), 0, "%s", err.msg);
    o.threads = 5;
    o.out_dir = b;
    cr_assert_eq(em_sql_tpch_generate(&o, &sb, &err), 0, "%s", err.msg);
    const uint64_t want[] = {5, 25, 20, 300, 400, 1600, 3000};
    for (unsigned t = 0; t < EM_SQL_TPCH_NTABLES; t++) {
        char pa[256], pb[256];
        size_t na, nb;
        snprintf(pa, sizeof pa, "%s/%s.tbl", a, em_sql_tpch_table_name(t));
        snprintf(pb, sizeof pb, "%s/%s.tbl", b, em_sql_tpch_table_name(t));
        char *x = read_all(pa, &na), *y = read_all(pb, &nb);
        cr_expect(na == nb && memcmp(x, y, na) == 0, "%s differs between 1 and 5 threads",
                  em_sql_tpch_table_name(t));
        size_t lines = 0;
        for (size_t i = 0; i < na; i++)
            lines += x[i] == '\n';
        cr_expect_eq(lines, sa.rows[t], "%s: %zu lines, stats say %llu",
                     em_sql_tpch_table_name(t), lines, (unsigned long long)sa.rows[t]);
        if (t < 7)
            cr_expect_eq(sa.rows[t], want[t], "%s: %llu rows", em_sql_tpch_table_name(t),
                         (unsigned long long)sa.rows[t]);
        free(x);
        free(y);
    }
    cr_expect(sa.rows[7] >= 3000 && sa.rows[7] <= 21000);
    cr_expect_eq(sa.bytes, sb.bytes);
    cr_expect_eq(count_entries(a), EM_SQL_TPCH_NTABLES + 1, "no temporary file left");
    rm_dir(a);
    rm_dir(b);
}

/* schema.sql runs in a session; the counts it sees match the generator's. */
Test(sql_tpch, schema_loads_in_a_session, .timeout = 60)
{
    char d[] = "/tmp/ember-tpch-s.XXXXXX";
    cr_assert_not_null(mkdtemp(d));
    em_err err = EM_ERR_INIT;
    em_sql_tpch_stats st;
    em_sql_tpch_opts o = {.sf = 0.001, .delim = ',', .out_dir = d};
    cr_assert_eq(em_sql_tpch_generate(&o, &st, &err), 0, "%s", err.msg);
    char path[256];
    size_t n, off = 0;
    snprintf(path, sizeof path, "%s/schema.sql", d);
    char *schema = read_all(path, &n);
    em_sql_session *s = em_sql_session_new(&err);
    cr_assert_not_null(s);
    while (off < n) {
        em_sql_result *r = NULL;
        em_sql_diag diag;
        size_t used = 0;
        cr_assert_eq(em_sql_exec(s, schema + off, n - off, &used, &r, &diag), 0, "%s",
                     diag.err.msg);
        em_sql_result_free(r);
        if (used == 0)
            break;
        off += used;
    }
    const char *q = "SELECT count(*), sum(CASE WHEN l_returnflag = 'N' THEN 1 ELSE 0 END) "
                    "FROM lineitem WHERE l_receiptdate > l_shipdate";
    em_sql_result *r = NULL;
    em_sql_diag diag;
    size_t used;
    cr_assert_eq(em_sql_exec(s, q, strlen(q), &used, &r, &diag), 0, "%s", diag.err.msg);
    cr_assert_eq(em_sql_result_nrows(r), 1);
    const em_sql_value *v = em_sql_result_row(r, 0);
    cr_expect_eq(v[0].u.i, (int64_t)st.rows[7], "every receipt date follows its ship date");
    cr_expect(v[1].u.i > 0 && v[1].u.i < v[0].u.i);
    em_sql_result_free(r);
    em_sql_session_free(s);
    free(schema);
    rm_dir(d);
}

Test(sql_tpch, bad_options_and_directories_fail_cleanly, .timeout = 30)
{
    char d[] = "/tmp/ember-tpch-e.XXXXXX";
    cr_assert_not_null(mkdtemp(d));
    em_err err = EM_ERR_INIT;
    em_sql_tpch_opts o = {.sf = 0.0001, .out_dir = d};
    cr_expect_eq(em_sql_tpch_generate(&o, NULL, &err), EM_EINVAL);
    cr_expect(strstr(err.msg, "scale factor") != NULL, "%s", err.msg);
    o.sf = 0.001;
    o.delim = ';';
    cr_expect_eq(em_sql_tpch_generate(&o, NULL, &err), EM_EINVAL);
    o.delim = 0;
    char file[300];
    snprintf(file, sizeof file, "%s/plain", d);
    FILE *f = fopen(file, "w");
    fclose(f);
    o.out_dir = file;   /* a file, not a directory */
    cr_expect_eq(em_sql_tpch_generate(&o, NULL, &err), EM_EIO);
    cr_expect(strstr(err.msg, "cannot create the directory") != NULL, "%s", err.msg);
    if (geteuid() != 0) {   /* root writes anywhere: the read-only case needs a user */
        chmod(d, 0500);
        o.out_dir = d;
        cr_expect_eq(em_sql_tpch_generate(&o, NULL, &err), EM_EIO);
        chmod(d, 0700);
    }
    cr_expect_eq(count_entries(d), 1, "only the plain file is left");
    rm_dir(d);
}
