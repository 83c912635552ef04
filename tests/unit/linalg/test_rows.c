/* tests/unit/linalg/test_rows.c - the row records and the loaders of mllib/linalg/rows.h:
 * LIBSVM and CSV/TSV files read into dense and sparse rows (values exact), comments and
 * blank lines, bad lines named by file:line or skipped and counted, splits coalesced into
 * one partition per task slot, and the writers read back to the same rows. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/linalg/linalg_int.h"
#include "mllib/linalg/rows.h"
#include "tests/support/ctx.h"

static char tmpdir[64];

static void remove_tmpdir(void)
{
    em_rm_rf(tmpdir, NULL);
}

static const char *write_tmp(const char *name, const char *text)
{
    static char path[128];
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/em_rowsXXXXXX");
        cr_assert_not_null(mkdtemp(tmpdir));
        atexit(remove_tmpdir);   /* each test's process removes what it made */
    }
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Collects the rows as a flat array of doubles (dense layout, label first). */
static double *collect_dense(const em_ml_data *d, size_t *n)
{
    em_records rs = {0};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(d->rows, &rs, &err), 0, "%s", err.msg);
    size_t w = d->dim + (d->labeled ? 1 : 0);
    double *out = calloc(rs.n * w + 1, sizeof *out);
    for (size_t i = 0; i < rs.n; i++) {
        em_ml_row row;
        cr_assert_eq(em_ml_row_view(d, rs.recs[i].val, &row, &err), 0, "%s", err.msg);
        double *o = out + i * w;
        if (d->labeled)
            *o++ = row.label;
        if (row.dense)
            memcpy(o, row.dense, 8 * (size_t)d->dim);
        else
            for (uint32_t k = 0; k < row.sp.nnz; k++)
                o[em_ml_sparse_idx(&row.sp, k)] = em_ml_sparse_val(&row.sp, k);
    }
    *n = rs.n;
    em_records_destroy(&rs);
    return out;
}

Test(rows, parse_double_matches_strtod)
{
    const char *good[] = {"0", "-0", "1", "+2.5", "3.", ".25", "1e3", "-1.5E-7", "0.1",
                          "123456789012345678901234", "1e-300", "2.2250738585072014e-308",
                          "0.30000000000000004", "9007199254740993", "-7.000001"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        double v = NAN;
        const char *s = good[i];
        cr_assert(em__ml_parse_double(s, s + strlen(s), &v), "%s", s);
        cr_assert_eq(v, strtod(s, NULL), "%s: %.17g", s, v);
    }
    const char *bad[] = {"", "-", ".", "e5", "1e", "1x", "nan", "inf", "1e999", "1,5", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        double v;
        cr_assert(!em__ml_parse_double(bad[i], bad[i] + strlen(bad[i]), &v), "%s", bad[i]);
    }
}

Test(rows, sparse_encode_view_round_trip)
{
    uint32_t idx[] = {0, 3, 9};
    double val[] = {1.5, -2, 1e-3};
    em_vbuf b;
    em_err err = EM_ERR_INIT;
    em_vbuf_init(&b);
    cr_assert_eq(em_ml_sparse_encode(3, idx, val, &b), 0);
    cr_assert_eq(b.len, em_ml_sparse_size(3));
    em_ml_sparse s;
    cr_assert_eq(em_ml_sparse_view(em_slice_make(b.data, b.len), 10, &s, &err), 0);
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(em_ml_sparse_idx(&s, i), idx[i]);
        cr_assert_eq(em_ml_sparse_val(&s, i), val[i]);
    }
    cr_assert_eq(em_ml_sparse_view(em_slice_make(b.data, b.len), 9, &s, &err), EM_ECORRUPT);
    cr_assert_eq(em_ml_sparse_view(em_slice_make(b.data, b.len - 1), 0, &s, &err),
                 EM_ECORRUPT);
    em_vbuf_destroy(&b);
}

static const char *LIBSVM = "# a comment line\n"
                            "1 1:0.5 3:-2\n"
                            "\n"
                            "0 2:1e2   4:7 # trailing comment\n"
                            "-1\n";

static void check_libsvm(const char *master)
{
    em_context *sc = em_test_ctx_new(master);
    const char *p = write_tmp("a.libsvm", LIBSVM);
    em_ml_read_opts o = {.format = EM_ML_LIBSVM};
    em_ml_data d;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_ml_read(sc, p, &o, &d, &err), 0, "%s", err.msg);
    cr_assert(d.sparse && d.labeled);
    cr_assert_eq(d.dim, 4);
    cr_assert_eq(d.nrows, 3);
    size_t n;
    double *v = collect_dense(&d, &n);
    double want[] = {1, 0.5, 0, -2, 0, 0, 0, 100, 0, 7, -1, 0, 0, 0, 0};
    cr_assert_eq(n, 3);
    for (int i = 0; i < 15; i++)
        cr_assert_eq(v[i], want[i], "%d: %g", i, v[i]);
    free(v);
    em_ml_data_release(&d);
    /* dense with a given feature count */
    o.dense = true;
    o.dim = 5;
    cr_assert_eq(em_ml_read(sc, p, &o, &d, &err), 0, "%s", err.msg);
    cr_assert(!d.sparse && d.dim == 5 && d.nrows == 3);
    v = collect_dense(&d, &n);
    cr_assert_eq(v[8], 100);
    cr_assert_eq(v[10], 7);
    free(v);
    em_ml_data_release(&d);
    /* dense without one: the largest index */
    o.dim = 0;
    cr_assert_eq(em_ml_read(sc, p, &o, &d, &err), 0, "%s", err.msg);
    cr_assert(!d.sparse && d.dim == 4 && d.nrows == 3);
    em_ml_data_release(&d);
    em_context_free(sc);
}

Test(rows, libsvm_local)
{
    check_libsvm("local[2]");
}

Test(rows, libsvm_cluster, .timeout = 120)
{
    check_libsvm("local-cluster[2,1]");
}

Test(rows, csv_label_column_and_tsv)
{
    em_context *sc = em_test_ctx_new("local[2]");
    const char *p = write_tmp("a.csv", "x, y ,\"class\"\r\n1,2,0\r\n3.5,-4,1\r\n\r\n5,6e1,1\r\n");
    em_ml_read_opts o = {.format = EM_ML_CSV, .label = "class"};
    em_ml_data d;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_ml_read(sc, p, &o, &d, &err), 0, "%s", err.msg);
    cr_assert(!d.sparse && d.labeled && d.dim == 2 && d.nrows == 3);
    size_t n;
    double *v = collect_dense(&d, &n);
    double want[] = {0, 1, 2, 1, 3.5, -4, 1, 5, 60};
    for (int i = 0; i < 9; i++)
        cr_assert_eq(v[i], want[i], "%d: %g", i, v[i]);
    free(v);
    em_ml_data_release(&d);
    o.label = NULL;
    cr_assert_eq(em_ml_read(sc, p, &o, &d, &err), 0, "%s", err.msg);
    cr_assert(!d.labeled && d.dim == 3);
    em_ml_data_release(&d);
    o.label = "nope";
    cr_assert_eq(em_ml_read(sc, p, &o, &d, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "no column named 'nope'"), "%s", err.msg);
    p = write_tmp("a.tsv", "a\tb\n1\t2\n");
    o = (em_ml_read_opts){.format = EM_ML_TSV};
    cr_assert_eq(em_ml_read(sc, p, &o, &d, &err), 0, "%s", err.msg);
    cr_assert(d.dim == 2 && d.nrows == 1);
    em_ml_data_release(&d);
    em_context_free(sc);
}

/* A file large enough for several splits with one bad line deep inside: the error names
 * the file and the exact line. */
static void check_bad_line(const char *master)
{
    em_context *sc = em_test_ctx_new(master);
    em_vbuf b;
    em_vbuf_init(&b);
    em_vbuf_printf(&b, "a,b,c\n");
    for (int i = 2; i <= 20000; i++)
        em_vbuf_printf(&b, i == 15077 ? "1,2,oops\n" : "%d,%d.25,-%d\n", i, i, i);
    const char *p = write_tmp("bad.csv", (const char *)b.data);
    char path[128];
    strcpy(path, p);
    em_vbuf_destroy(&b);
    em_ml_read_opts o = {.format = EM_ML_CSV, .min_partitions = 7};
    em_ml_data d;
    em_err err = EM_ERR_INIT;
    cr_assert_lt(em_ml_read(sc, path, &o, &d, &err), 0);
    char want[200];
    snprintf(want, sizeof want, "%s:15077: bad number: '1,2,oops'", path);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    o.skip_bad_lines = true;
    cr_assert_eq(em_ml_read(sc, path, &o, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(d.nrows, 19998);
    cr_assert_eq(d.skipped, 1);
    em_ml_data_release(&d);
    em_context_free(sc);
}

/* coalesce: the splits of a file joined into one partition per task slot, without a
 * shuffle: the same rows in the same order, and a bad line still named by file:line. */
static void check_coalesced(const char *master)
{
    em_context *sc = em_test_ctx_new(master);
    em_vbuf b;
    em_vbuf_init(&b);
    em_vbuf_printf(&b, "a,b,c\n");
    for (int i = 2; i <= 20000; i++)
        em_vbuf_printf(&b, "%d,%d.25,-%d\n", i, i, i);
    char path[128];
    strcpy(path, write_tmp("co.csv", (const char *)b.data));
    em_vbuf_destroy(&b);
    em_ml_read_opts o = {.format = EM_ML_CSV, .min_partitions = 7};
    em_ml_data d, e;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_ml_read(sc, path, &o, &d, &err), 0, "%s", err.msg);
    cr_assert_geq(em_rdd_num_partitions(d.rows), 7);
    o.coalesce = true;
    cr_assert_eq(em_ml_read(sc, path, &o, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(em_rdd_num_partitions(e.rows), em_context_default_parallelism(sc));
    cr_assert_eq(e.nrows, 19999);
    size_t n, m;
    double *x = collect_dense(&d, &n), *y = collect_dense(&e, &m);
    cr_assert_eq(n, m);
    cr_assert_eq(memcmp(x, y, n * 3 * sizeof *x), 0, "coalesced rows differ");
    free(x);
    free(y);
    em_ml_data_release(&d);
    em_ml_data_release(&e);
    /* a bad line deep inside a joined partition */
    em_vbuf_init(&b);
    em_vbuf_printf(&b, "a,b,c\n");
    for (int i = 2; i <= 20000; i++)
        em_vbuf_printf(&b, i == 17001 ? "1,x,2\n" : "%d,%d.25,-%d\n", i, i, i);
    strcpy(path, write_tmp("cobad.csv", (const char *)b.data));
    em_vbuf_destroy(&b);
    cr_assert_lt(em_ml_read(sc, path, &o, &e, &err), 0);
    char want[200];
    snprintf(want, sizeof want, "%s:17001: bad number: '1,x,2'", path);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    em_context_free(sc);
}

Test(rows, coalesced_local)
{
    check_coalesced("local[2]");
}

Test(rows, coalesced_cluster, .timeout = 120)
{
    check_coalesced("local-cluster[2,1]");
}

Test(rows, bad_line_named_local)
{
    check_bad_line("local[2]");
}

Test(rows, bad_line_named_cluster, .timeout = 120)
{
    check_bad_line("local-cluster[2,1]");
}

Test(rows, libsvm_bad_lines)
{
    em_context *sc = em_test_ctx_new("local[2]");
    const char *cases[][2] = {
        {"1 1:1\n1 3:1 2:1\n", ":2: indices not strictly ascending"},
        {"1 0:1\n", ":1: index out of range"},
        {"x 1:1\n", ":1: bad label"},
        {"1 1:1\n\n1 2\n", ":3: expected index:value"},
        {"1 1:z\n", ":1: bad value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *p = write_tmp("bad.libsvm", cases[i][0]);
        em_ml_read_opts o = {.format = EM_ML_LIBSVM};
        em_ml_data d;
        em_err err = EM_ERR_INIT;
        cr_assert_lt(em_ml_read(sc, p, &o, &d, &err), 0, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i][1]), "case %zu: %s", i, err.msg);
    }
    const char *p = write_tmp("dim.libsvm", "1 7:1\n");
    em_ml_read_opts o = {.format = EM_ML_LIBSVM, .dim = 5, .dense = true};
    em_ml_data d;
    em_err err = EM_ERR_INIT;
    cr_assert_lt(em_ml_read(sc, p, &o, &d, &err), 0);
    cr_assert(strstr(err.msg, "index above the feature count"), "%s", err.msg);
    em_context_free(sc);
}

Test(rows, write_and_read_back)
{
    em_context *sc = em_test_ctx_new("local[2]");
    const char *p = write_tmp("w.libsvm", "1 1:0.1 3:-2.5e-300\n0 2:3\n2 4:0.30000000000000004\n");
    em_ml_read_opts o = {.format = EM_ML_LIBSVM};
    em_ml_data d, e;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_ml_read(sc, p, &o, &d, &err), 0, "%s", err.msg);
    size_t n, m;
    double *v = collect_dense(&d, &n);
    const char *fmts[] = {"libsvm", "csv", "tsv"};
    em_ml_format f[] = {EM_ML_LIBSVM, EM_ML_CSV, EM_ML_TSV};
    for (int i = 0; i < 3; i++) {
        char dir[160];
        snprintf(dir, sizeof dir, "%s/out-%s", tmpdir, fmts[i]);
        cr_assert_eq(em_ml_write(&d, dir, f[i], &err), 0, "%s", err.msg);
        em_ml_read_opts o2 = {.format = f[i], .label = i ? "label" : NULL, .dim = 4};
        cr_assert_eq(em_ml_read(sc, dir, &o2, &e, &err), 0, "%s: %s", fmts[i], err.msg);
        cr_assert_eq(e.dim, 4);
        double *w = collect_dense(&e, &m);
        cr_assert_eq(m, n);
        cr_assert_eq(memcmp(v, w, n * 5 * sizeof *v), 0, "%s", fmts[i]);
        free(w);
        em_ml_data_release(&e);
    }
    free(v);
    em_ml_data_release(&d);
    em_context_free(sc);
}
