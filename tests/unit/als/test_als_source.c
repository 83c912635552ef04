/* tests/unit/als/test_als_source.c - rating files read on the executors
 * (em_als_read_ratings) against the driver's reader (em_ratings_read): the same ratings in
 * the same order, the same id numbering (train and test sharing the maps), the same counts
 * and the same error messages (FILE:LINE from the start of the file, also for a bad line
 * in a later byte range), for tsv with integer ids, csv with a header and string ids,
 * MovieLens '::', directories; test metrics on the executors equal em_als_evaluate's. Files
 * of a few MiB so that they are cut into several ranges (1 MiB at least each). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/als/als.h"
#include "tests/support/ctx.h"
#include "tests/support/tmpdir.h"

static char g_dir[64];

static void mkdir_tmp(void)
{
    em_test_tmpdir(g_dir, sizeof g_dir, "em_als_src");
}

static void rm_tmp(void)
{
    em_test_tmpdir_remove(g_dir);
}

/* Writes n lines in the style `style` (0 tsv ints, 1 csv strings + header, 2 movielens,
 * 3 tsv dense ids: users 0..4999, items 1..900);
 * bad_at > 0 makes that line (1-based) malformed. Returns the path (static buffer). */
static const char *write_file(const char *name, int style, size_t n, uint64_t seed,
                              size_t bad_at)
{
    static char path[128];
    em_rng g;
    em_rng_seed(&g, seed);
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    size_t line = 1;
    if (style == 1) {
        fputs("userId,movieId,rating,timestamp\n", f);
        line++;
    }
    for (size_t i = 0; i < n; i++, line++) {
        unsigned u = (unsigned)em_rng_below(&g, 5000), it = (unsigned)em_rng_below(&g, 900);
        unsigned r = 1 + (unsigned)em_rng_below(&g, 9);
        if (line == bad_at)
            fputs("oops\tthis is not a rating\n", f);
        else if (style == 0)
            fprintf(f, "%u\t%u\t%u.%u\t%u\n", u * 7 + 3, it, r / 2, r % 2 * 5, 1000 + r);
        else if (style == 1)
            fprintf(f, "user%u,m%u,%u,%u\n", u, it, r, 17);
        else if (style == 3)
            fprintf(f, "%u\t%u\t%u\n", u, it + 1, r);
        else
            fprintf(f, "%u::%u::%u::%u\n", u, it, r, 5);
    }
    fclose(f);
    return path;
}

/* Reads train (and test, may be NULL) both ways and compares everything; with dense, both
 * read with dense_ids (the driver's reader renumbered as `ember als --driver-read` does)
 * and the training read must find both sides dense. */
static void compare_opts(em_context *sc, const char *train, const char *test, bool skip,
                         bool dense)
{
    em_ratings_read_opts o = {.skip_bad_lines = skip, .dense_ids = dense};
    em_idmap *u0 = em_idmap_new(), *i0 = em_idmap_new(), *u1 = em_idmap_new(),
             *i1 = em_idmap_new();
    em_ratings r0[2];
    em_als_ratings x[2] = {{0}};
    const char *paths[2] = {train, test};
    em_err err = EM_ERR_INIT;
    for (int k = 0; k < 2 && paths[k]; k++) {
        em_ratings_init(&r0[k]);
        cr_assert_eq(em_ratings_read(paths[k], &o, u0, i0, &r0[k], &err), 0, "%s", err.msg);
        uint32_t d0 = 0;
        if (dense && k == 0)
            cr_assert_eq(em_ratings_dense_renumber(&r0[k], u0, i0, &d0, &err), 0, "%s",
                         err.msg);
        cr_assert_eq(em_als_read_ratings(sc, paths[k], &o, u1, i1, &x[k], &err), 0, "%s",
                     err.msg);
        cr_assert_eq(x[k].dense, d0);
        cr_assert_eq(d0, dense && k == 0 ? 3u : 0u);
        cr_assert_eq(x[k].n, r0[k].n);
        cr_assert_eq(x[k].lines, r0[k].lines);
        cr_assert_eq(x[k].skipped, r0[k].skipped);
        em_records recs = {0};
        cr_assert_eq(em_rdd_collect(x[k].ratings, &recs, &err), 0, "%s", err.msg);
        cr_assert_eq(recs.n, r0[k].n);
        for (size_t t = 0; t < recs.n; t++)
            cr_assert(recs.recs[t].val.n == 12 &&
                      !memcmp(recs.recs[t].val.p, &r0[k].recs[t], 12), "rating %zu", t);
        em_records_destroy(&recs);
        if (d0 & 2) {   /* items from 1: the ratings are a shift of the cached raw ratings */
            em_context_stats st0, st1;
            uint64_t c;
            cr_assert_not_null(x[k].cached);
            cr_assert_eq(em_rdd_count(x[k].ratings, &c, &err), 0, "%s", err.msg);
            em_context_stats_get(sc, &st0);
            em_als_ratings_unpersist(&x[k]);   /* drops the raw ratings, not the shift */
            cr_assert_eq(em_rdd_count(x[k].ratings, &c, &err), 0, "%s", err.msg);
            em_context_stats_get(sc, &st1);
            cr_assert_geq(st0.executor_store_bytes, st1.executor_store_bytes + 11 * c,
                          "the executors' stores went %llu -> %llu bytes for %llu ratings",
                          (unsigned long long)st0.executor_store_bytes,
                          (unsigned long long)st1.executor_store_bytes,
                          (unsigned long long)c);
        }
    }
    cr_assert_eq(em_idmap_size(u0), em_idmap_size(u1));
    cr_assert_eq(em_idmap_size(i0), em_idmap_size(i1));
    char a[24], b[24];
    for (int32_t q = 0; q < em_idmap_size(u0); q++)
        cr_assert_str_eq(em_idmap_name(u0, q, a), em_idmap_name(u1, q, b));
    for (int32_t q = 0; q < em_idmap_size(i0); q++)
        cr_assert_str_eq(em_idmap_name(i0, q, a), em_idmap_name(i1, q, b));
    for (int k = 0; k < 2 && paths[k]; k++) {
        em_ratings_destroy(&r0[k]);
        em_als_ratings_release(sc, &x[k]);
    }
    em_idmap_free(u0);
    em_idmap_free(i0);
    em_idmap_free(u1);
    em_idmap_free(i1);
}

static void compare(em_context *sc, const char *train, const char *test, bool skip)
{
    compare_opts(sc, train, test, skip, false);
}

Test(als_source, same_ratings_and_ids_as_driver_reader, .timeout = 300)
{
    mkdir_tmp();
    em_context *sc = em_test_ctx_new("local[2]");
    char train[128], test[128];
    snprintf(train, sizeof train, "%s", write_file("a.tsv", 0, 400000, 1, 0));
    snprintf(test, sizeof test, "%s", write_file("b.tsv", 0, 20000, 2, 0));
    compare(sc, train, test, false);
    snprintf(train, sizeof train, "%s", write_file("c.csv", 1, 200000, 3, 0));
    compare(sc, train, NULL, false);
    snprintf(train, sizeof train, "%s", write_file("d.dat", 2, 200000, 4, 0));
    compare(sc, train, NULL, false);
    /* a directory of two files, one with a bad line, skipped and counted */
    char sub[128];
    snprintf(sub, sizeof sub, "%s/dir", g_dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    write_file("dir/p1.tsv", 0, 150000, 5, 0);
    write_file("dir/p2.tsv", 0, 150000, 6, 140000);
    compare(sc, sub, NULL, true);
    em_context_free(sc);
    rm_tmp();
}

Test(als_source, bad_line_names_file_and_line_in_a_later_range, .timeout = 300)
{
    mkdir_tmp();
    em_context *sc = em_test_ctx_new("local-cluster[2,1]");
    const char *p = write_file("bad.tsv", 0, 300000, 7, 250001);
    em_idmap *u = em_idmap_new(), *i = em_idmap_new(), *u1 = em_idmap_new(),
             *i1 = em_idmap_new();
    em_ratings r;
    em_als_ratings x;
    em_err e0 = EM_ERR_INIT, e1 = EM_ERR_INIT;
    em_ratings_init(&r);
    cr_assert_eq(em_ratings_read(p, NULL, u, i, &r, &e0), EM_ECORRUPT);
    cr_assert(strstr(e0.msg, ":250001:"), "%s", e0.msg);
    cr_assert_lt(em_als_read_ratings(sc, p, NULL, u1, i1, &x, &e1), 0);
    cr_assert(strstr(e1.msg, "bad.tsv:250001: line 'oops"), "executor error '%s', driver's "
              "'%s'", e1.msg, e0.msg);
    em_idmap_free(u1);
    em_idmap_free(i1);
    em_ratings_destroy(&r);
    em_idmap_free(u);
    em_idmap_free(i);
    em_context_free(sc);
    rm_tmp();
}

/* Dense ids (users from 0, items from 1) over several ranges and files: the one pass
 * (RAW RATINGS, source.c) gives the driver reader's ratings, numbering and counts, with a
 * bad line skipped and counted; without skipping, the bad line is named by FILE:LINE. */
Test(als_source, dense_ids_in_one_pass_match_driver_reader, .timeout = 300)
{
    mkdir_tmp();
    em_context *sc = em_test_ctx_new("local-cluster[2,1]");
    char train[128], test[128], sub[128];
    snprintf(train, sizeof train, "%s", write_file("dense.tsv", 3, 400000, 11, 0));
    snprintf(test, sizeof test, "%s", write_file("dense-test.tsv", 3, 5000, 12, 0));
    compare_opts(sc, train, test, false, true);
    snprintf(sub, sizeof sub, "%s/ddir", g_dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    write_file("ddir/p1.tsv", 3, 200000, 13, 0);
    write_file("ddir/p2.tsv", 3, 200000, 14, 190000);
    compare_opts(sc, sub, NULL, true, true);
    em_ratings_read_opts o = {.dense_ids = true};
    em_idmap *u = em_idmap_new(), *i = em_idmap_new();
    em_als_ratings x;
    em_err err = EM_ERR_INIT;
    cr_assert_lt(em_als_read_ratings(sc, sub, &o, u, i, &x, &err), 0);
    cr_assert(strstr(err.msg, "p2.tsv:190000: line 'oops"), "%s", err.msg);
    em_idmap_free(u);
    em_idmap_free(i);
    em_context_free(sc);
    rm_tmp();
}

/* The Netflix layout is read on the executors now (test_als_features.c compares it with the
 * driver's reader over ranges cut inside movies' sections); a file whose first line is
 * longer than the 64 KiB detection window is still left to the driver. */
Test(als_source, netflix_layout_on_the_executors, .timeout = 60)
{
    mkdir_tmp();
    char path[128];
    snprintf(path, sizeof path, "%s/n.txt", g_dir);
    FILE *f = fopen(path, "w");
    fputs("1:\n5,3,2005-01-01\n6,4,2005-01-02\n", f);
    fclose(f);
    em_context *sc = em_test_ctx_new("local[2]");
    em_idmap *u = em_idmap_new(), *i = em_idmap_new();
    em_als_ratings x;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_als_read_ratings(sc, path, NULL, u, i, &x, &err), 0, "%s", err.msg);
    cr_assert_eq(x.n, 2u);
    cr_assert_eq(em_idmap_size(u), 2);
    cr_assert_eq(em_idmap_size(i), 1);
    em_als_ratings_release(sc, &x);
    em_idmap_free(u);
    em_idmap_free(i);
    u = em_idmap_new();
    i = em_idmap_new();
    f = fopen(path, "w");
    for (int k = 0; k < 70000; k++)
        fputc('7', f);
    fputs("\t1\t2\n", f);
    fclose(f);
    cr_assert_eq(em_als_read_ratings(sc, path, NULL, u, i, &x, &err), 1, "%s", err.msg);
    cr_assert_eq(em_idmap_size(u), 0);
    em_idmap_free(u);
    em_idmap_free(i);
    em_context_free(sc);
    rm_tmp();
}

Test(als_source, test_metrics_on_executors_match_driver, .timeout = 120)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_als_model *m = em_als_model_new(3, 50, 40);
    em_rng g;
    em_rng_seed(&g, 3);
    for (int32_t q = 0; q < 45 * 3; q++)   /* users 45.. and items 40.. stay cold */
        m->user_factors[q] = (float)em_rng_gaussian(&g);
    for (int32_t q = 0; q < 40 * 3; q++)
        m->item_factors[q] = (float)em_rng_gaussian(&g);
    em_rating r[2000];
    em_rec recs[2000];
    for (int t = 0; t < 2000; t++) {
        r[t] = (em_rating){(int32_t)em_rng_below(&g, 50), (int32_t)em_rng_below(&g, 40),
                           (float)(1 + em_rng_below(&g, 5))};
        recs[t] = (em_rec){.val = em_slice_make(&r[t], 12)};
    }
    em_rdd *d = em_parallelize(sc, EM_REC_FIXED, 12, recs, 2000, 3);
    for (int cold = 0; cold < 2; cold++) {
        em_als_metrics a, b;
        em_err err = EM_ERR_INIT;
        em_als_evaluate(m, r, 2000, (em_cold_start)cold, &a);
        cr_assert_eq(em_als_evaluate_rdd(sc, m, d, (em_cold_start)cold, &b, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(a.n, b.n);
        cr_assert_eq(a.cold, b.cold);
        cr_assert(a.cold > 0);
        if (cold == EM_COLD_NAN) {
            cr_assert(isnan(b.rmse));
        } else {
            cr_assert(fabs(a.rmse - b.rmse) <= 1e-12 * a.rmse, "%.17g %.17g", a.rmse, b.rmse);
            cr_assert(fabs(a.mae - b.mae) <= 1e-12 * a.mae);
        }
    }
    em_rdd_release(d);
    em_als_model_free(m);
    em_context_free(sc);
}
