/* tests/unit/als/test_ratings.c - rating readers (formats, ids, errors) and the generator
 * (determinism across thread counts, shape, test-split property). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/als/als.h"

typedef struct fx {
    em_idmap *u, *i;
    em_ratings r;
} fx;

static void fx_init(fx *f)
{
    f->u = em_idmap_new();
    f->i = em_idmap_new();
    em_ratings_init(&f->r);
}

static void fx_free(fx *f)
{
    em_idmap_free(f->u);
    em_idmap_free(f->i);
    em_ratings_destroy(&f->r);
}

static int parse(fx *f, const char *name, const char *text, em_ratings_format fmt, bool skip,
                 em_err *err)
{
    em_ratings_read_opts o = {.format = fmt, .skip_bad_lines = skip};
    return em_ratings_parse(name, (const uint8_t *)text, strlen(text), &o, f->u, f->i, &f->r,
                            err);
}

static const char *uname(fx *f, int32_t idx)
{
    static char buf[24];
    return em_idmap_name(f->u, idx, buf);
}

Test(ratings, tsv_with_and_without_timestamps)
{
    fx f;
    em_err err = EM_ERR_INIT;
    fx_init(&f);
    cr_assert_eq(parse(&f, "a.tsv", "10\t7\t4.5\n3 7  2\t99\r\n\n10\t8\t1e0\n", 0, false, &err),
                 0, "%s", err.msg);
    cr_assert_eq(f.r.n, 3);
    cr_assert_eq(f.r.recs[0].user, 0);
    cr_assert_eq(f.r.recs[1].user, 1);
    cr_assert_eq(f.r.recs[2].user, 0);
    cr_assert_eq(f.r.recs[2].item, 1);
    cr_assert_float_eq(f.r.recs[0].rating, 4.5f, 1e-6);
    cr_assert_float_eq(f.r.recs[2].rating, 1.0f, 1e-6);
    cr_assert_str_eq(uname(&f, 1), "3");
    fx_free(&f);
}

Test(ratings, csv_header_movielens_and_string_ids)
{
    fx f;
    em_err err = EM_ERR_INIT;
    fx_init(&f);
    cr_assert_eq(parse(&f, "ratings.csv", "userId,movieId,rating,timestamp\nalice,m1,3.5,1\n"
                       "bob,m1,-2,2\n007,m2,4,3\n", 0, false, &err), 0, "%s", err.msg);
    cr_assert_eq(f.r.n, 3);
    cr_assert_str_eq(uname(&f, 0), "alice");
    cr_assert_str_eq(uname(&f, 2), "007");   /* leading zero: a string id, kept verbatim */
    cr_assert_float_eq(f.r.recs[1].rating, -2.0f, 1e-6);
    cr_assert_eq(em_idmap_find(f.u, "bob", 3), 1);
    cr_assert_eq(em_idmap_find(f.u, "7", 1), -1);
    cr_assert_eq(parse(&f, "ratings.dat", "1::1193::5::978300760\n2::m1::3::1\n", 0, false,
                       &err), 0, "%s", err.msg);
    cr_assert_eq(f.r.n, 5);
    cr_assert_eq(f.r.recs[4].item, 0, "string item id shared with the csv file");
    fx_free(&f);
}

Test(ratings, netflix_layout)
{
    fx f;
    em_err err = EM_ERR_INIT;
    fx_init(&f);
    cr_assert_eq(parse(&f, "combined_data_1.txt", "1:\n1488844,3,2005-09-06\n822109,5,2005-05-13\n"
                       "2:\n1488844,4,2005-09-06\n", 0, false, &err), 0, "%s", err.msg);
    cr_assert_eq(f.r.n, 3);
    cr_assert_eq(f.r.recs[2].user, 0);
    cr_assert_eq(f.r.recs[2].item, 1);
    cr_assert_float_eq(f.r.recs[1].rating, 5.0f, 1e-6);
    cr_assert_neq(parse(&f, "x.txt", "5,3,2005\n", EM_RATINGS_NETFLIX, false, &err), 0);
    cr_assert(strstr(err.msg, "x.txt:1:"), "%s", err.msg);
    fx_free(&f);
}

Test(ratings, errors_name_file_line_and_column)
{
    fx f;
    em_err err = EM_ERR_INIT;
    fx_init(&f);
    cr_assert_eq(parse(&f, "in.tsv", "1\t2\t3\n1\t2\tfive\n", EM_RATINGS_TSV, false, &err),
                 EM_ECORRUPT);
    cr_assert(strstr(err.msg, "in.tsv:2: column 3: bad rating 'five'"), "%s", err.msg);
    cr_assert_eq(parse(&f, "in.tsv", "1\t2\n", EM_RATINGS_TSV, false, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "in.tsv:1:"), "%s", err.msg);
    cr_assert_eq(parse(&f, "in.csv", "1,2,3\n,2,3\n", EM_RATINGS_CSV, false, &err),
                 EM_ECORRUPT);
    cr_assert(strstr(err.msg, "in.csv:2: column 1: empty user id"), "%s", err.msg);
    cr_assert_eq(parse(&f, "in.tsv", "1 2 3 4 5\n", EM_RATINGS_TSV, false, &err), EM_ECORRUPT);
    cr_assert_eq(parse(&f, "in.tsv", "1 2 nan\n", EM_RATINGS_TSV, false, &err), EM_ECORRUPT);
    cr_assert_eq(parse(&f, "in.tsv", "1 2 1e999\n", EM_RATINGS_TSV, false, &err), EM_ECORRUPT);
    fx_free(&f);
}

Test(ratings, skip_bad_lines_counts)
{
    fx f;
    em_err err = EM_ERR_INIT;
    fx_init(&f);
    cr_assert_eq(parse(&f, "in.tsv", "1 2 3\nx\n1 2 z\n4 5 1\n", EM_RATINGS_TSV, true, &err), 0);
    cr_assert_eq(f.r.n, 2);
    cr_assert_eq(f.r.skipped, 2);
    fx_free(&f);
}

Test(ratings, read_file_and_directory)
{
    char dir[] = "/tmp/em_als_readXXXXXX";
    cr_assert(mkdtemp(dir));
    char *p1 = em_xasprintf("%s/a.txt", dir), *p2 = em_xasprintf("%s/b.txt", dir);
    FILE *f1 = fopen(p1, "w"), *f2 = fopen(p2, "w");
    fputs("1:\n5,3,2005-01-01\n", f1);
    fputs("2:\n5,4,2005-01-01\n6,1,2005-01-01", f2);   /* no final newline */
    fclose(f1);
    fclose(f2);
    fx f;
    em_err err = EM_ERR_INIT;
    fx_init(&f);
    cr_assert_eq(em_ratings_read(dir, NULL, f.u, f.i, &f.r, &err), 0, "%s", err.msg);
    cr_assert_eq(f.r.n, 3);
    cr_assert_eq(em_idmap_size(f.u), 2);
    cr_assert_eq(em_idmap_size(f.i), 2);
    char *missing = em_xasprintf("%s/none.tsv", dir);
    cr_assert_eq(em_ratings_read(missing, NULL, f.u, f.i, &f.r, &err), EM_EIO);
    cr_assert(strstr(err.msg, "none.tsv"), "%s", err.msg);
    fx_free(&f);
    em_rm_rf(dir, &err);
    em_free(p1);
    em_free(p2);
    em_free(missing);
}

/* ---------------------------------------------------------------- generator */

static char *gen_to(const char *dir, const char *name, unsigned threads, uint64_t seed,
                    em_gen_ratings_info *info)
{
    char *prefix = em_xasprintf("%s/%s", dir, name);
    em_gen_ratings_opts o = {.scale = 0.0005, .seed = seed, .out_prefix = prefix,
                             .threads = threads};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_gen_ratings(&o, info, &err), 0, "%s", err.msg);
    return prefix;
}

static uint8_t *slurp(const char *prefix, const char *suffix, size_t *len)
{
    char *p = em_xasprintf("%s%s", prefix, suffix);
    uint8_t *b = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_read_file(p, &b, len, &err), 0, "%s", err.msg);
    em_free(p);
    return b;
}

Test(gen, deterministic_across_thread_counts, .timeout = 60)
{
    char dir[] = "/tmp/em_als_genXXXXXX";
    cr_assert(mkdtemp(dir));
    em_gen_ratings_info a, b, c;
    char *pa = gen_to(dir, "a", 1, 7, &a), *pb = gen_to(dir, "b", 3, 7, &b);
    char *pc = gen_to(dir, "c", 2, 8, &c);
    const char *sfx[] = {".train.tsv", ".test.tsv", ".meta.json"};
    for (int i = 0; i < 3; i++) {
        size_t la, lb, lc;
        uint8_t *x = slurp(pa, sfx[i], &la), *y = slurp(pb, sfx[i], &lb);
        uint8_t *z = slurp(pc, sfx[i], &lc);
        cr_assert(la == lb && memcmp(x, y, la) == 0, "%s differs between 1 and 3 threads",
                  sfx[i]);
        if (i < 2)
            cr_assert(la != lc || memcmp(x, z, la) != 0, "another seed, other data");
        em_free(x);
        em_free(y);
        em_free(z);
    }
    cr_assert_eq(a.n_users, 240);
    cr_assert_eq(a.n_items, 397);
    cr_assert(a.n_ratings > 45000 && a.n_ratings < 55000, "%lld", (long long)a.n_ratings);
    cr_assert(a.noise_floor_rmse > 0.6 && a.noise_floor_rmse < a.global_mean_rmse);
    em_err err = EM_ERR_INIT;
    em_rm_rf(dir, &err);
    em_free(pa);
    em_free(pb);
    em_free(pc);
}

Test(gen, split_users_items_in_train_no_duplicates, .timeout = 60)
{
    char dir[] = "/tmp/em_als_genXXXXXX";
    cr_assert(mkdtemp(dir));
    em_gen_ratings_info info;
    char *p = gen_to(dir, "s", 2, 3, &info);
    char *tr = em_xasprintf("%s.train.tsv", p), *te = em_xasprintf("%s.test.tsv", p);
    fx f;
    em_err err = EM_ERR_INIT;
    fx_init(&f);
    cr_assert_eq(em_ratings_read(tr, NULL, f.u, f.i, &f.r, &err), 0, "%s", err.msg);
    size_t ntr = f.r.n;
    int32_t nu = em_idmap_size(f.u), ni = em_idmap_size(f.i);
    cr_assert_eq(em_ratings_read(te, NULL, f.u, f.i, &f.r, &err), 0, "%s", err.msg);
    cr_assert_eq(em_idmap_size(f.u), nu, "a test user missing from train");
    cr_assert_eq(em_idmap_size(f.i), ni, "a test item missing from train");
    cr_assert_eq((int64_t)ntr, info.n_train);
    cr_assert_eq((int64_t)(f.r.n - ntr), info.n_test);
    double frac = (double)info.n_test / (double)info.n_ratings;
    cr_assert(frac > 0.01 && frac < 0.018, "test fraction %g", frac);
    uint8_t *seen = em_xcalloc((size_t)nu * ni, 1);
    for (size_t t = 0; t < f.r.n; t++) {
        size_t k = (size_t)f.r.recs[t].user * ni + f.r.recs[t].item;
        cr_assert(!seen[k], "duplicate pair at %zu", t);
        seen[k] = 1;
        cr_assert(f.r.recs[t].rating >= 1.0f && f.r.recs[t].rating <= 5.0f);
    }
    em_free(seen);
    fx_free(&f);
    em_rm_rf(dir, &err);
    em_free(p);
    em_free(tr);
    em_free(te);
}
