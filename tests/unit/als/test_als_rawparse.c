/* tests/unit/als/test_als_rawparse.c - the RAW mode of the range parser (em__ratings_range.raw,
 * the executors' one pass ml.als.read_raw) against the mapped parse it replaces: for every
 * byte range, the same outcome, error message (FILE:LINE), line/skip/rating counts, and
 * ratings whose ids are rev[index] of the mapped parse's fresh maps (-1 for a string id).
 * The files mix fast-path lines with everything the general path takes: string ids,
 * integers at and past EM__IDMAP_DIRECT_MAX, 9-digit, negative, signed and zero-led ids,
 * quoted fields, CR LF, exponents, bad lines (skipped and strict), a CSV header, MovieLens
 * '::', a last line without LF; and one file long enough for several read blocks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/als/als_int.h"
#include "tests/support/tmpdir.h"

static char g_dir[64];

static void mkdir_tmp(void)
{
    em_test_tmpdir(g_dir, sizeof g_dir, "em_als_raw");
}

static void rm_tmp(void)
{
    em_test_tmpdir_remove(g_dir);
}

static const char *put_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
    return path;
}

/* Collects what the parser flushes (the way ml.als.read_raw emits it), so that the test
 * also crosses the flush after each block of lines. */
static int collect(void *ud, em_ratings *out, em_err *err)
{
    em_ratings *all = ud;
    for (size_t t = 0; t < out->n; t++)
        if (em_ratings_push(all, out->recs[t].user, out->recs[t].item, out->recs[t].rating,
                            err) < 0)
            return err->code;
    out->n = 0;
    return 0;
}

typedef struct outcome {
    int rc;
    em_err err;
    uint64_t lines, skipped;
    em_ratings all;   /* ids as RAW RATINGS carry them */
} outcome;

/* Parses [a, b) of path in one mode; mapped ids are turned into values through the maps. */
static void parse(const char *path, em_ratings_format fmt, bool skip, bool raw, uint64_t a,
                  uint64_t b, outcome *o)
{
    em__ratings_range rg = {.path = path, .fmt = fmt, .skip_bad = skip, .raw = raw,
                            .start = a, .end = b};
    em_idmap *u = raw ? NULL : em_idmap_new(), *i = raw ? NULL : em_idmap_new();
    em_ratings r;
    em_ratings_init(&r);
    em_ratings_init(&o->all);
    o->err = (em_err)EM_ERR_INIT;
    o->rc = em__ratings_parse_range(&rg, u, i, &r, collect, &o->all, &o->err);
    o->lines = r.lines;
    o->skipped = r.skipped;
    for (size_t t = 0; !raw && t < o->all.n; t++) {
        em_rating *q = &o->all.recs[t];
        q->user = u->rev[q->user] >= 0 ? (int32_t)u->rev[q->user] : -1;
        q->item = i->rev[q->item] >= 0 ? (int32_t)i->rev[q->item] : -1;
    }
    em_ratings_destroy(&r);
    em_idmap_free(u);
    em_idmap_free(i);
}

/* Both modes over [a, b): everything equal. Returns the raw outcome (caller destroys). */
static outcome same(const char *path, em_ratings_format fmt, bool skip, uint64_t a,
                    uint64_t b)
{
    outcome m, r;
    parse(path, fmt, skip, false, a, b, &m);
    parse(path, fmt, skip, true, a, b, &r);
    cr_assert_eq(m.rc, r.rc, "[%llu, %llu): mapped %d '%s', raw %d '%s'",
                 (unsigned long long)a, (unsigned long long)b, m.rc, m.err.msg, r.rc,
                 r.err.msg);
    cr_assert_str_eq(m.err.msg, r.err.msg);
    cr_assert_eq(m.lines, r.lines);
    cr_assert_eq(m.skipped, r.skipped);
    cr_assert_eq(m.all.n, r.all.n, "[%llu, %llu)", (unsigned long long)a,
                 (unsigned long long)b);
    for (size_t t = 0; t < m.all.n; t++)
        cr_assert(!memcmp(&m.all.recs[t], &r.all.recs[t], sizeof(em_rating)),
                  "[%llu, %llu) rating %zu: mapped (%d, %d), raw (%d, %d)",
                  (unsigned long long)a, (unsigned long long)b, t, m.all.recs[t].user,
                  m.all.recs[t].item, r.all.recs[t].user, r.all.recs[t].item);
    em_ratings_destroy(&m.all);
    return r;
}

/* The file cut in two around every line start s (at s - 1, s and s + 1: a range owns the
 * lines starting in it), each range alone (fresh maps per range, as on the executors),
 * with and without skipping bad lines. Not at every byte: a mapped parse of an id near
 * EM__IDMAP_DIRECT_MAX allocates a direct table of 256 MiB, slow under ASan. */
static void every_cut(const char *path, em_ratings_format fmt, const char *text, size_t len)
{
    for (int skip = 0; skip < 2; skip++)
        for (size_t s = 0; s <= len; s++) {
            if (s > 0 && text[s - 1] != '\n')
                continue;
            for (uint64_t cut = s ? s - 1 : 0; cut <= s + 1 && cut <= len; cut++) {
                outcome o = same(path, fmt, skip, 0, cut);
                em_ratings_destroy(&o.all);
                o = same(path, fmt, skip, cut, len);
                em_ratings_destroy(&o.all);
            }
        }
}

static const char TSV[] = "1\t2\t3.5\t100\n"      /* fast path */
                          "67108863\t5\t4\n"      /* 8 digits, the largest direct id */
                          "67108864\t5\t4\n"      /* = EM__IDMAP_DIRECT_MAX: a string */
                          "123456789\t7\t1\n"     /* 9 digits: a string */
                          "-3\t4\t2\n"            /* signed: a string */
                          "+3\t4\t2\n"
                          "007\t4\t2\n"           /* zero-led: a string */
                          "0\t0\t1\n"
                          "alice\t9\t5\n"
                          "12\t13\t2.5\r\n"       /* CR LF, fast path */
                          "14 15  3e0\r\n"        /* CR LF, general path (exponent) */
                          "oops this is bad\n"    /* bad rating: skipped or fatal */
                          "16\t17\t4.25\t1e3\n"   /* timestamp not digits: general path */
                          "\"18\"\t19\t1\n"       /* quotes are part of a TSV id */
                          "\n"
                          "20\t99999999\t3\n"     /* 8 digits past the limit */
                          "22\t23\t1";            /* no LF at the end */

static const int32_t TSV_IDS[][2] = {{1, 2},   {67108863, 5}, {-1, 5},  {-1, 7},  {-1, 4},
                                     {-1, 4},  {-1, 4},       {0, 0},   {-1, 9},  {12, 13},
                                     {14, 15}, {16, 17},      {-1, 19}, {20, -1}, {22, 23}};

Test(als_rawparse, raw_ids_are_the_mapped_values, .timeout = 120)
{
    mkdir_tmp();
    const char *p = put_file("mixed.tsv", TSV);
    outcome o = same(p, EM_RATINGS_TSV, true, 0, sizeof TSV - 1);
    cr_assert_eq(o.rc, 0, "%s", o.err.msg);
    cr_assert_eq(o.skipped, 1u);
    cr_assert_eq(o.lines, 17u);
    size_t n = sizeof TSV_IDS / sizeof TSV_IDS[0];
    cr_assert_eq(o.all.n, n);
    for (size_t t = 0; t < n; t++)
        cr_assert(o.all.recs[t].user == TSV_IDS[t][0] && o.all.recs[t].item == TSV_IDS[t][1],
                  "rating %zu: (%d, %d)", t, o.all.recs[t].user, o.all.recs[t].item);
    em_ratings_destroy(&o.all);
    o = same(p, EM_RATINGS_TSV, false, 0, sizeof TSV - 1);
    cr_assert_eq(o.rc, EM_ECORRUPT);
    cr_assert(strstr(o.err.msg, "mixed.tsv:12: column 3: bad rating 'is'"), "%s", o.err.msg);
    em_ratings_destroy(&o.all);
    every_cut(p, EM_RATINGS_TSV, TSV, sizeof TSV - 1);
    rm_tmp();
}

Test(als_rawparse, csv_header_quotes_and_movielens, .timeout = 120)
{
    static const char CSV[] = "userId,movieId,rating,timestamp\r\n"
                              "1,2,3.5,111\n"
                              "\"u1\",10,4,5\n"
                              "5,67108864,2\n"
                              "x,y,z\n"
                              "7,8,1.5\r\n"
                              ",8,1\n"
                              "9,10,2,3,4\n"
                              "11,12,5e-1\n";
    static const char ML[] = "1::2::5::978300760\n"
                             "3::4::3::978302109\r\n"
                             "abc::5::4::1\n"
                             "6::99999999::2::1\n"
                             "7::8::bad::1\n"
                             "8:9::10::1\n"
                             "0::0::0.25\n";
    mkdir_tmp();
    const char *p = put_file("m.csv", CSV);
    outcome o = same(p, EM_RATINGS_CSV, true, 0, sizeof CSV - 1);
    cr_assert_eq(o.rc, 0, "%s", o.err.msg);
    cr_assert_eq(o.all.n, 5u);   /* header, 'z', empty user and 5 fields left out */
    cr_assert_eq(o.skipped, 3u);
    cr_assert(o.all.recs[1].user == -1 && o.all.recs[1].item == 10);
    cr_assert(o.all.recs[2].user == 5 && o.all.recs[2].item == -1);
    em_ratings_destroy(&o.all);
    every_cut(p, EM_RATINGS_CSV, CSV, sizeof CSV - 1);
    p = put_file("r.dat", ML);
    o = same(p, EM_RATINGS_MOVIELENS, true, 0, sizeof ML - 1);
    cr_assert_eq(o.rc, 0, "%s", o.err.msg);
    cr_assert_eq(o.all.n, 6u);
    cr_assert(o.all.recs[2].user == -1 && o.all.recs[3].item == -1 &&
              o.all.recs[4].user == -1 && o.all.recs[5].user == 0);
    em_ratings_destroy(&o.all);
    every_cut(p, EM_RATINGS_MOVIELENS, ML, sizeof ML - 1);
    rm_tmp();
}

/* Several read blocks (4 MiB each) and flushes; lines of every kind at random, a bad line
 * deep in the file; cut at a few places. */
Test(als_rawparse, long_file_over_many_blocks, .timeout = 300)
{
    mkdir_tmp();
    char path[128];
    snprintf(path, sizeof path, "%s/long.tsv", g_dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    em_rng g;
    em_rng_seed(&g, 5);
    for (int k = 0; k < 600000; k++) {
        unsigned u = (unsigned)em_rng_below(&g, 100000), it = (unsigned)em_rng_below(&g, 5000);
        switch (em_rng_below(&g, 40)) {
        case 0: fprintf(f, "u%u\t%u\t3\n", u, it); break;
        case 1: fprintf(f, "%u\t%u\t4.5\r\n", u, it); break;
        case 2: fprintf(f, "%u\t%u\t4\n", 67108860 + u % 8, it); break;
        case 3: fprintf(f, "0%u\t%u\t4\n", u, it); break;
        case 4: fprintf(f, "%u\t%u\t2e0\t17\n", u, it); break;
        default: fprintf(f, "%u\t%u\t%u.%u\t%u\n", u, it, u % 5, it % 10, 880000000 + k);
        }
        if (k == 550000)
            fputs("1\t2\n", f);
    }
    long len = ftell(f);
    fclose(f);
    for (int skip = 0; skip < 2; skip++)
        for (int cut = 0; cut < 4; cut++) {
            uint64_t c = (uint64_t)len / 4 * (uint64_t)cut + (uint64_t)cut * 7;
            outcome o = same(path, EM_RATINGS_TSV, skip, 0, c);
            em_ratings_destroy(&o.all);
            o = same(path, EM_RATINGS_TSV, skip, c, (uint64_t)len);
            cr_assert_eq(o.rc, skip ? 0 : EM_ECORRUPT, "%s", o.err.msg);
            if (!skip)   /* counted from the file's start though the range starts later */
                cr_assert(strstr(o.err.msg, "long.tsv:550002: line '1\t2'"), "%s",
                          o.err.msg);
            em_ratings_destroy(&o.all);
        }
    rm_tmp();
}

Test(als_rawparse, netflix_and_auto_are_refused)
{
    em_ratings r;
    em_ratings_init(&r);
    for (int fmt = EM_RATINGS_AUTO; fmt <= EM_RATINGS_NETFLIX; fmt += EM_RATINGS_NETFLIX) {
        em__ratings_range rg = {.path = "/nonexistent", .fmt = (em_ratings_format)fmt,
                                .raw = true, .start = 0, .end = 10};
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em__ratings_parse_range(&rg, NULL, NULL, &r, NULL, NULL, &err), EM_EINVAL);
    }
    em_ratings_destroy(&r);
}
