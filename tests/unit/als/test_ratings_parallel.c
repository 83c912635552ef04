/* tests/unit/als/test_ratings_parallel.c - the parallel rating reader: for every kind of
 * file, reading with EMBER_PARSE_THREADS=2, 3 and 7 gives exactly what the sequential
 * reader (EMBER_PARSE_THREADS=1) gives: rating arrays, id maps (sizes and every name),
 * line and skip counts, return codes and error messages, also for a test file read after a
 * training file into the same maps. Files are written into a temp dir; the forced thread
 * counts make even small files take the parallel path (checked with the test hook). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/als/als.h"

/* ---------------------------------------------------------------- helpers */

enum { MAXFILES = 3 };

/* Everything a sequence of em_ratings_read calls (one array per file, shared maps) left. */
typedef struct res {
    int rc;
    char msg[256];
    int nfiles;
    em_ratings r[MAXFILES];
    em_idmap *u, *i;
} res;

static char g_dir[] = "/tmp/em_rpar_XXXXXX";

static void setup(void)
{
    cr_assert(mkdtemp(g_dir));
}

static void teardown(void)
{
    em_err err = EM_ERR_INIT;
    em_rm_rf(g_dir, &err);
}

TestSuite(ratings_par, .init = setup, .fini = teardown, .timeout = 60);

/* Writes len bytes to g_dir/name; returns the path (caller frees). */
static char *put(const char *name, const char *text, size_t len)
{
    char *path = em_xasprintf("%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s", path);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    return path;
}

/* Reads paths[0..n) in order with EMBER_PARSE_THREADS=threads into x. */
static void load(res *x, char *const *paths, int n, const char *threads, bool skip,
                 em_ratings_format fmt)
{
    em_ratings_read_opts o = {.format = fmt, .skip_bad_lines = skip};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(setenv("EMBER_PARSE_THREADS", threads, 1), 0);
    memset(x, 0, sizeof *x);
    x->u = em_idmap_new();
    x->i = em_idmap_new();
    x->nfiles = n;
    for (int k = 0; k < n && x->rc == 0; k++)
        x->rc = em_ratings_read(paths[k], &o, x->u, x->i, &x->r[k], &err);
    snprintf(x->msg, sizeof x->msg, "%s", x->rc ? err.msg : "");
}

static void res_free(res *x)
{
    for (int k = 0; k < MAXFILES; k++)
        em_ratings_destroy(&x->r[k]);
    em_idmap_free(x->u);
    em_idmap_free(x->i);
}

static void same_map(const em_idmap *a, const em_idmap *b, const char *what, const char *t)
{
    char ba[24], bb[24];
    cr_assert_eq(em_idmap_size(a), em_idmap_size(b), "%s: %s map size %d vs %d", t, what,
                 em_idmap_size(a), em_idmap_size(b));
    for (int32_t k = 0; k < em_idmap_size(a); k++)
        cr_assert_str_eq(em_idmap_name(a, k, ba), em_idmap_name(b, k, bb),
                         "%s: %s index %d", t, what, k);
}

/* Asserts that x (read with `t` threads) equals the reference ref in every respect. */
static void same(const res *ref, const res *x, const char *t)
{
    cr_assert_eq(x->rc, ref->rc, "%s threads: rc %d vs %d (%s)", t, x->rc, ref->rc, x->msg);
    cr_assert_str_eq(x->msg, ref->msg, "%s threads", t);
    for (int k = 0; k < ref->nfiles; k++) {
        const em_ratings *a = &ref->r[k], *b = &x->r[k];
        cr_assert_eq(b->n, a->n, "%s threads, file %d: %zu vs %zu ratings", t, k, b->n, a->n);
        cr_assert_eq(b->lines, a->lines, "%s threads, file %d: lines", t, k);
        cr_assert_eq(b->skipped, a->skipped, "%s threads, file %d: skipped", t, k);
        if (a->n && memcmp(a->recs, b->recs, a->n * sizeof *a->recs) == 0)
            continue;
        for (size_t j = 0; j < a->n; j++)
            cr_assert(memcmp(&a->recs[j], &b->recs[j], sizeof *a->recs) == 0,
                      "%s threads, file %d, rating %zu: (%d,%d,%a) vs (%d,%d,%a)", t, k, j,
                      b->recs[j].user, b->recs[j].item, (double)b->recs[j].rating,
                      a->recs[j].user, a->recs[j].item, (double)a->recs[j].rating);
    }
    same_map(ref->u, x->u, "user", t);
    same_map(ref->i, x->i, "item", t);
}

/* Reads paths with 1 thread (the reference, returned in ref) and with 2, 3 and 7, comparing
 * each with it. npar: how many of the files the parallel reader must have taken (the others
 * fell back to the sequential reader). */
static void check(res *ref, char *const *paths, int n, bool skip, em_ratings_format fmt,
                  int npar)
{
    static const char *const threads[] = {"2", "3", "7"};
    uint64_t c0 = em__ratings_parallel_files();
    load(ref, paths, n, "1", skip, fmt);
    cr_assert_eq(em__ratings_parallel_files(), c0, "1 thread took the parallel path");
    for (int t = 0; t < 3; t++) {
        res x;
        uint64_t before = em__ratings_parallel_files();
        load(&x, paths, n, threads[t], skip, fmt);
        uint64_t got = em__ratings_parallel_files() - before;
        cr_assert_eq(got, (uint64_t)npar, "%s threads: %llu of %d files in parallel, not %d",
                     threads[t], (unsigned long long)got, n, npar);
        same(ref, &x, threads[t]);
        res_free(&x);
    }
}

/* A growable text buffer. */
typedef struct txt {
    char *p;
    size_t n, cap;
} txt;

static void add(txt *t, const char *s, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        t->cap = (t->n + n + 1) * 2;
        t->p = em_xrealloc(t->p, t->cap);
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = '\0';
}

static void adds(txt *t, const char *s)
{
    add(t, s, strlen(s));
}

static void addf(txt *t, const char *fmt, ...) EM_PRINTF(2, 3);
static void addf(txt *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof buf);
    add(t, buf, (size_t)n);
}

/* Deterministic pseudo-random numbers (xorshift64*). */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* n lines "user<sep>item<sep>rating[<sep>ts]"; ids drawn so that many first appear late in
 * the file (the id range widens as the file goes on). */
static void gen_lines(txt *t, uint64_t seed, int n, const char *sep, bool ts, const char *eol)
{
    static const char *const ratings[] = {"4", "3.5", "2.63", "5.000", "1.25", "0.5"};
    for (int k = 0; k < n; k++) {
        uint64_t u = rnd(&seed) % (uint64_t)(10 + k / 3), i = rnd(&seed) % (uint64_t)(5 + k / 7);
        const char *r = ratings[rnd(&seed) % 6];
        addf(t, "%llu%s%llu%s%s", (unsigned long long)u * 7919, sep,
             (unsigned long long)i * 104729 % 1000003, sep, r);
        if (ts)
            addf(t, "%s%llu", sep, (unsigned long long)(978300760 + k));
        add(t, eol, strlen(eol));
    }
}

/* ---------------------------------------------------------------- exact values */

Test(ratings_par, small_file_exact_values)
{
    const char *text = "10\t7\t4.5\n3 7  2\t99\r\n\n10\t8\t1e0\n20\t7\t.5\n3\t9\t5.";
    char *p = put("a.tsv", text, strlen(text));
    res ref;
    check(&ref, &p, 1, false, EM_RATINGS_AUTO, 1);
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    static const em_rating want[] = {{0, 0, 4.5f}, {1, 0, 2.0f}, {0, 1, 1.0f}, {2, 0, 0.5f},
                                     {1, 2, 5.0f}};
    cr_assert_eq(ref.r[0].n, 5);
    cr_assert_eq(ref.r[0].lines, 6);
    for (int k = 0; k < 5; k++)
        cr_assert(memcmp(&ref.r[0].recs[k], &want[k], sizeof want[k]) == 0, "rating %d", k);
    char b[24];
    cr_assert_str_eq(em_idmap_name(ref.u, 2, b), "20");
    cr_assert_str_eq(em_idmap_name(ref.i, 2, b), "9");
    res_free(&ref);
    em_free(p);
}

/* The fast path (canonical integer ids, plain decimals) and the general path (here forced
 * by a leading blank) give bit-identical ratings. */
Test(ratings_par, fast_and_general_paths_agree)
{
    static const char *const r[] = {"3.14159265358979", "0.1", "4.999999999", "2.63", "7",
                                    "1.", "0.30000000000000004", "123456789.125"};
    txt a = {0}, b = {0};
    for (int k = 0; k < 8; k++) {
        addf(&a, "%d\t%d\t%s\n", k, k + 1, r[k]);
        addf(&b, " %d\t%d\t%s\n", k, k + 1, r[k]);
    }
    em_idmap *u = em_idmap_new(), *i = em_idmap_new();
    em_ratings ra, rb;
    em_ratings_read_opts o = {.format = EM_RATINGS_TSV};
    em_err err = EM_ERR_INIT;
    em_ratings_init(&ra);
    em_ratings_init(&rb);
    cr_assert_eq(em_ratings_parse("a", (const uint8_t *)a.p, a.n, &o, u, i, &ra, &err), 0);
    cr_assert_eq(em_ratings_parse("b", (const uint8_t *)b.p, b.n, &o, u, i, &rb, &err), 0);
    cr_assert_eq(ra.n, 8);
    cr_assert_eq(rb.n, 8);
    for (int k = 0; k < 8; k++) {
        cr_assert(memcmp(&ra.recs[k], &rb.recs[k], sizeof ra.recs[k]) == 0, "%s", r[k]);
        cr_assert_float_eq(ra.recs[k].rating, (float)strtod(r[k], NULL), 1e-6, "%s", r[k]);
    }
    em_ratings_destroy(&ra);
    em_ratings_destroy(&rb);
    em_idmap_free(u);
    em_idmap_free(i);
    em_free(a.p);
    em_free(b.p);
}

/* The same lines through the fast path and (a leading blank defeats it) the general path:
 * identical ids, indices and ratings, for tokens on both sides of every fast-path rule
 * (leading zeros, 8 and 9 digits, 2^26, signs, suffixes, separators, line ends). */
Test(ratings_par, fast_and_general_paths_agree_on_tokens)
{
    static const char *const ids[] = {"0", "00", "007", "7", "12345678", "123456789",
                                      "67108863", "67108864", "99999999", "-5", "+5", "5a",
                                      "1.5", "x", "12:4", "7/3", "3;", "1234567"};
    static const char *const rs[] = {"4", "4.", ".5", "-1", "+2", "1e1", "3.25", "0", "x",
                                     "2.5", "0.05", "9.99", "2.50", "1.234", "5.5.5", "3.2."};
    static const char *const tails[] = {"\n", "\r\n", "\t1234\n", " 12 \n", "\t\n",
                                        "\t12\r\n", " abc\n", "\r\r\n", " 1 2\n"};
    txt a = {0}, b = {0};
    int k = 0;
    for (int u = 0; u < 18; u++)
        for (int i = 17; i >= 0; i -= 3, k++) {
            char line[96];
            snprintf(line, sizeof line, "%s\t%s %s%s", ids[u], ids[i], rs[k % 16],
                     tails[(k + k / 16) % 9]);
            adds(&a, line);
            adds(&b, " ");
            adds(&b, line);
        }
    em_idmap *ua = em_idmap_new(), *ia = em_idmap_new(), *ub = em_idmap_new(),
             *ib = em_idmap_new();
    em_ratings ra, rb;
    em_ratings_read_opts o = {.format = EM_RATINGS_TSV, .skip_bad_lines = true};
    em_err err = EM_ERR_INIT;
    em_ratings_init(&ra);
    em_ratings_init(&rb);
    cr_assert_eq(em_ratings_parse("a", (const uint8_t *)a.p, a.n, &o, ua, ia, &ra, &err), 0);
    cr_assert_eq(em_ratings_parse("b", (const uint8_t *)b.p, b.n, &o, ub, ib, &rb, &err), 0);
    cr_assert_eq(ra.n, rb.n);
    cr_assert_eq(ra.skipped, rb.skipped);
    cr_assert(ra.n > 20 && ra.skipped > 10, "%zu ok, %llu skipped", ra.n,
              (unsigned long long)ra.skipped);
    cr_assert(memcmp(ra.recs, rb.recs, ra.n * sizeof *ra.recs) == 0);
    same_map(ua, ub, "user", "fast/general");
    same_map(ia, ib, "item", "fast/general");
    cr_assert_eq(em_idmap_size(ua), 18);
    char buf[24];
    cr_assert_str_eq(em_idmap_name(ua, 2, buf), "007");
    em_ratings_destroy(&ra);
    em_ratings_destroy(&rb);
    em_idmap_free(ua);
    em_idmap_free(ia);
    em_idmap_free(ub);
    em_idmap_free(ib);
    em_free(a.p);
    em_free(b.p);
}

/* Exact ids through the fast path of the csv and movielens formats. */
Test(ratings_par, fast_path_keeps_leading_zero_ids)
{
    static const char *const text[] = {"007,08,1\n7,8,2\n0,0,0,99\n",
                                       "007::08::1\n7::8::2\n0::0::0::99\n"};
    for (int f = 0; f < 2; f++) {
        em_idmap *u = em_idmap_new(), *i = em_idmap_new();
        em_ratings r;
        em_ratings_read_opts o = {.format = f ? EM_RATINGS_MOVIELENS : EM_RATINGS_CSV};
        em_err err = EM_ERR_INIT;
        char buf[24];
        em_ratings_init(&r);
        cr_assert_eq(em_ratings_parse("z", (const uint8_t *)text[f], strlen(text[f]), &o, u,
                                      i, &r, &err), 0, "%s", err.msg);
        cr_assert_eq(r.n, 3);
        cr_assert_eq(em_idmap_size(u), 3);
        cr_assert_eq(em_idmap_size(i), 3);
        cr_assert_str_eq(em_idmap_name(u, 0, buf), "007");
        cr_assert_str_eq(em_idmap_name(u, 1, buf), "7");
        cr_assert_str_eq(em_idmap_name(i, 0, buf), "08");
        cr_assert_str_eq(em_idmap_name(i, 2, buf), "0");
        cr_assert_eq(r.recs[2].user, 2);
        cr_assert_float_eq(r.recs[1].rating, 2.0f, 0);
        em_ratings_destroy(&r);
        em_idmap_free(u);
        em_idmap_free(i);
    }
}

/* ---------------------------------------------------------------- formats */

Test(ratings_par, integer_ids_tsv)
{
    txt t = {0};
    gen_lines(&t, 1, 3000, "\t", false, "\n");
    char *p = put("int.tsv", t.p, t.n);
    res ref;
    check(&ref, &p, 1, false, EM_RATINGS_AUTO, 1);
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    cr_assert_eq(ref.r[0].n, 3000);
    /* independent reference: the in-memory parser on the same bytes */
    em_idmap *u = em_idmap_new(), *i = em_idmap_new();
    em_ratings r;
    em_err err = EM_ERR_INIT;
    em_ratings_init(&r);
    cr_assert_eq(em_ratings_parse("int.tsv", (const uint8_t *)t.p, t.n, NULL, u, i, &r, &err),
                 0);
    cr_assert_eq(r.n, ref.r[0].n);
    cr_assert(memcmp(r.recs, ref.r[0].recs, r.n * sizeof *r.recs) == 0);
    cr_assert_eq(em_idmap_size(u), em_idmap_size(ref.u));
    em_ratings_destroy(&r);
    em_idmap_free(u);
    em_idmap_free(i);
    res_free(&ref);
    em_free(p);
    em_free(t.p);
}

Test(ratings_par, string_and_mixed_ids)
{
    txt t = {0};
    uint64_t s = 5;
    for (int k = 0; k < 2000; k++) {
        uint64_t a = rnd(&s) % (uint64_t)(20 + k / 4), b = rnd(&s) % 50;
        switch (a % 6) {
        case 5: addf(&t, "%llu", (unsigned long long)a + 5000000); break;   /* > 2^22 */
        case 0: addf(&t, "user%llu", (unsigned long long)a); break;
        case 1: addf(&t, "0%llu", (unsigned long long)a); break;          /* leading zero */
        case 2: addf(&t, "%llu", (unsigned long long)a + 900000000); break; /* 9 digits */
        case 3: addf(&t, "%llu", (unsigned long long)a + 67108860); break;  /* around 2^26 */
        default: addf(&t, "%llu", (unsigned long long)a); break;
        }
        addf(&t, " %s%llu\t%d.%d\n", b % 2 ? "m" : "", (unsigned long long)b, (int)(b % 5),
             (int)(a % 10));
    }
    char *p = put("mixed.tsv", t.p, t.n);
    res ref;
    check(&ref, &p, 1, false, EM_RATINGS_AUTO, 1);
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    cr_assert_eq(ref.r[0].n, 2000);
    char b[24];
    int zeros = 0, long_ints = 0;
    for (int32_t k = 0; k < em_idmap_size(ref.u); k++) {   /* names round-trip */
        const char *name = em_idmap_name(ref.u, k, b);
        cr_assert_eq(em_idmap_find(ref.u, name, strlen(name)), k, "%s", name);
        zeros += name[0] == '0' && name[1];
        long_ints += strlen(name) == 9 && name[0] == '9';
    }
    cr_assert(zeros > 0 && long_ints > 0, "%d ids with a leading zero, %d of 9 digits", zeros,
              long_ints);
    res_free(&ref);
    em_free(p);
    em_free(t.p);
}

Test(ratings_par, csv_with_header_and_timestamps)
{
    txt t = {0};
    adds(&t, "userId,movieId,rating,timestamp\n");
    gen_lines(&t, 2, 2500, ",", true, "\n");
    char *p = put("ratings.csv", t.p, t.n);
    res ref;
    check(&ref, &p, 1, false, EM_RATINGS_AUTO, 1);
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    cr_assert_eq(ref.r[0].n, 2500);
    cr_assert_eq(ref.r[0].lines, 2501);
    cr_assert_eq(ref.r[0].skipped, 0);
    res_free(&ref);
    em_free(p);
    em_free(t.p);
}

/* A header-like line after line 1 is a bad line: an error, or a skip. */
Test(ratings_par, csv_header_only_on_line_one)
{
    txt t = {0};
    gen_lines(&t, 3, 800, ",", false, "\n");
    adds(&t, "userId,movieId,rating\n");
    gen_lines(&t, 4, 800, ",", false, "\n");
    char *p = put("late_header.csv", t.p, t.n);
    res ref;
    check(&ref, &p, 1, true, EM_RATINGS_AUTO, 1);
    cr_assert_eq(ref.rc, 0);
    cr_assert_eq(ref.r[0].skipped, 1);
    cr_assert_eq(ref.r[0].n, 1600);
    res_free(&ref);
    check(&ref, &p, 1, false, EM_RATINGS_AUTO, 0);
    cr_assert_eq(ref.rc, EM_ECORRUPT);
    cr_assert(strstr(ref.msg, "late_header.csv:801: column 3: bad rating 'rating'"), "%s",
              ref.msg);
    cr_assert_eq(ref.r[0].n, 800, "the ratings before the bad line stay appended");
    res_free(&ref);
    em_free(p);
    em_free(t.p);
}

/* Bad csv lines at the start of later ranges are bad lines, not headers (only the file's
 * first line can be a header). */
Test(ratings_par, csv_bad_lines_at_range_starts_are_not_headers)
{
    txt t = {0};
    adds(&t, "u,i,r\n");
    for (int k = 0; k < 400; k++)
        addf(&t, k % 2 ? "%d,%d,3\n" : "%d,%d,bad\n", k, k % 17);
    char *p = put("alt.csv", t.p, t.n);
    res ref;
    check(&ref, &p, 1, true, EM_RATINGS_AUTO, 1);
    cr_assert_eq(ref.r[0].n, 200);
    cr_assert_eq(ref.r[0].skipped, 200);
    cr_assert_eq(ref.r[0].lines, 401);
    res_free(&ref);
    em_free(p);
    em_free(t.p);
}

Test(ratings_par, movielens_double_colon)
{
    txt t = {0};
    gen_lines(&t, 5, 2000, "::", true, "\n");
    adds(&t, "7::m1::3::1\n1:::2::3::4\n");   /* string item; odd colons */
    char *p = put("ratings.dat", t.p, t.n);
    res ref;
    check(&ref, &p, 1, true, EM_RATINGS_AUTO, 1);
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    cr_assert_eq(ref.r[0].lines, 2002);
    res_free(&ref);
    em_free(p);
    em_free(t.p);
}

Test(ratings_par, crlf_blank_lines_and_no_final_newline)
{
    txt t = {0};
    adds(&t, "\r\n\n");
    gen_lines(&t, 6, 700, " ", false, "\r\n");
    adds(&t, "\n\n\r\n");
    gen_lines(&t, 7, 700, "\t \t", true, "\r\n");
    adds(&t, "1 2 3 \r\n4\t5\t6\t7\t\n8 9 1\r\r\n");   /* trailing blanks, stray CR */
    adds(&t, "5 6 7");
    char *p = put("crlf.tsv", t.p, t.n);
    res ref;
    check(&ref, &p, 1, true, EM_RATINGS_TSV, 1);
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    cr_assert_eq(ref.r[0].skipped, 1, "the line ending in CR CR LF: %llu skipped, %zu ok",
                 (unsigned long long)ref.r[0].skipped, ref.r[0].n);
    cr_assert_eq(ref.r[0].n, 1403);
    res_free(&ref);
    em_free(p);
    em_free(t.p);
}

/* Lines longer than a range and than the reader's block (4 MiB): ranges collapse, buffers
 * grow. */
Test(ratings_par, very_long_lines)
{
    txt t = {0};
    gen_lines(&t, 8, 300, "\t", false, "\n");
    size_t big = 5u << 20;
    char *id = em_xmalloc(big);
    memset(id, 'x', big);
    add(&t, id, big);
    adds(&t, "\t1\t2.5\n");
    gen_lines(&t, 9, 300, "\t", false, "\n");
    add(&t, id, 100000);
    adds(&t, "\t2\t1\n");
    char *p = put("long.tsv", t.p, t.n);
    res ref;
    check(&ref, &p, 1, false, EM_RATINGS_AUTO, 1);
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    cr_assert_eq(ref.r[0].n, 602);
    cr_assert_eq(em_idmap_find(ref.u, id, big), ref.r[0].recs[300].user);
    res_free(&ref);
    em_free(id);
    em_free(p);
    em_free(t.p);
}

/* A first line longer than the detection window: the sequential reader takes the file. */
Test(ratings_par, long_first_line_falls_back)
{
    txt t = {0};
    char *id = em_xmalloc(200000);
    memset(id, 'y', 200000);
    add(&t, id, 200000);
    adds(&t, ",3,4\n");
    gen_lines(&t, 10, 500, ",", false, "\n");
    char *p = put("first_long.txt", t.p, t.n);
    res ref;
    check(&ref, &p, 1, false, EM_RATINGS_AUTO, 0);
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    cr_assert_eq(ref.r[0].n, 501);
    res_free(&ref);
    /* with the format given, no detection is needed: parallel */
    check(&ref, &p, 1, false, EM_RATINGS_CSV, 1);
    cr_assert_eq(ref.r[0].n, 501);
    res_free(&ref);
    em_free(id);
    em_free(p);
    em_free(t.p);
}

/* ---------------------------------------------------------------- errors */

Test(ratings_par, bad_lines_in_a_later_range)
{
    txt t = {0};
    gen_lines(&t, 11, 1500, "\t", false, "\n");
    adds(&t, "1\t2\tfive\n");
    gen_lines(&t, 12, 300, "\t", false, "\n");
    adds(&t, "1\t2\n");
    add(&t, "1\t2\t3\0\n", 7);   /* NUL byte */
    adds(&t, "x y 1e999\n\t\t\n9 9 9 9 9\n");
    gen_lines(&t, 13, 300, "\t", false, "\n");
    char *p = put("bad.tsv", t.p, t.n);
    res ref;
    check(&ref, &p, 1, true, EM_RATINGS_AUTO, 1);
    cr_assert_eq(ref.rc, 0);
    cr_assert_eq(ref.r[0].skipped, 6);
    cr_assert_eq(ref.r[0].n, 2100);
    cr_assert_eq(ref.r[0].lines, 2106);
    res_free(&ref);
    check(&ref, &p, 1, false, EM_RATINGS_AUTO, 0);
    cr_assert_eq(ref.rc, EM_ECORRUPT);
    cr_assert(strstr(ref.msg, "bad.tsv:1501: column 3: bad rating 'five'"), "%s", ref.msg);
    cr_assert_eq(ref.r[0].n, 1500);
    res_free(&ref);
    em_free(p);
    em_free(t.p);
}

/* An error in the test file after a good training file: the maps keep what the sequential
 * reader leaves (training ids plus the test ids before the bad line), not the parallel
 * reader's partial work. */
Test(ratings_par, error_after_shared_maps_leaves_sequential_state)
{
    txt a = {0}, b = {0};
    gen_lines(&a, 14, 1200, "\t", false, "\n");
    gen_lines(&b, 15, 600, "\t", false, "\n");
    adds(&b, "user_new\titem_new\t1\n");
    gen_lines(&b, 16, 400, "\t", false, "\n");
    adds(&b, "5\t5\tbad\n");
    adds(&b, "str_after\t99999\t1\n");
    gen_lines(&b, 17, 900, "\t", false, "\n");
    char *p[2] = {put("a.train.tsv", a.p, a.n), put("a.test.tsv", b.p, b.n)};
    res ref;
    check(&ref, p, 1, false, EM_RATINGS_AUTO, 1);   /* train alone: parallel */
    res_free(&ref);
    uint64_t c0 = em__ratings_parallel_files();
    check(&ref, p, 2, false, EM_RATINGS_AUTO, 1);
    cr_assert_eq(em__ratings_parallel_files() - c0, 3, "the training files were parallel");
    cr_assert_eq(ref.rc, EM_ECORRUPT);
    cr_assert(strstr(ref.msg, "a.test.tsv:1002: column 3: bad rating 'bad'"), "%s", ref.msg);
    cr_assert_eq(ref.r[1].n, 1001);
    cr_assert(em_idmap_find(ref.u, "user_new", 8) >= 0);
    cr_assert_eq(em_idmap_find(ref.u, "str_after", 9), -1);
    res_free(&ref);
    em_free(p[0]);
    em_free(p[1]);
    em_free(a.p);
    em_free(b.p);
}

/* Every allocation failure inside a parallel read either is invisible (the result equals
 * the reference) or comes back as EM_ENOMEM with out and the maps as before the call (the
 * hook fails every allocation after the Nth, so the sequential rerun fails at once). */
Test(ratings_par, allocation_failures, .timeout = 120)
{
    txt a = {0}, b = {0};
    gen_lines(&a, 50, 300, "\t", false, "\n");
    for (int k = 0; k < 300; k++)
        addf(&b, k % 3 ? "%d\t%d\t4\n" : "s%d\tm%d\t2.5\n", k % 53 + 40, k % 31);
    char *p[2] = {put("o.train.tsv", a.p, a.n), put("o.test.tsv", b.p, b.n)};
    res ref;
    load(&ref, p, 2, "1", false, EM_RATINGS_AUTO);
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    for (long n = 0;; n++) {
        res x;
        load(&x, p, 1, "3", false, EM_RATINGS_AUTO);
        cr_assert_eq(x.rc, 0, "%s", x.msg);
        int32_t nu = em_idmap_size(x.u), ni = em_idmap_size(x.i);
        em_err err = EM_ERR_INIT;
        em_test_fail_alloc_after(n);
        int rc = em_ratings_read(p[1], NULL, x.u, x.i, &x.r[1], &err);
        em_test_alloc_reset();
        x.nfiles = 2;
        if (rc == 0) {
            same(&ref, &x, "3 (allocation loop)");
            res_free(&x);
            cr_assert(n > 10, "only %ld allocations", n);
            break;
        }
        cr_assert_eq(rc, EM_ENOMEM, "allocation %ld: %s", n, err.msg);
        cr_assert_eq(x.r[1].n, 0, "allocation %ld", n);
        cr_assert_eq(x.r[1].lines, 0, "allocation %ld", n);
        cr_assert_eq(em_idmap_size(x.u), nu, "allocation %ld: users", n);
        cr_assert_eq(em_idmap_size(x.i), ni, "allocation %ld: items", n);
        for (int32_t k = 0; k < nu; k++) {   /* the string hash still finds every id */
            char buf[24];
            const char *name = em_idmap_name(x.u, k, buf);
            cr_assert_eq(em_idmap_find(x.u, name, strlen(name)), k);
        }
        cr_assert_eq(em_idmap_find(x.u, "s40", 3), -1);
        res_free(&x);
    }
    em_free(p[0]);
    em_free(p[1]);
    em_free(a.p);
    em_free(b.p);
}

/* ---------------------------------------------------------------- range boundaries */

/* Shifting the content byte by byte moves every range boundary across every position
 * around the newlines (on, just before, just after, inside short lines). */
Test(ratings_par, boundaries_at_and_around_newlines)
{
    for (int pad = 0; pad < 24; pad++) {
        txt t = {0};
        for (int k = 0; k < pad; k++)
            add(&t, k % 3 ? "\n" : "1 1 1\n", k % 3 ? 1 : 6);
        gen_lines(&t, 18 + (uint64_t)pad, 40, "\t", false, pad % 2 ? "\n" : "\r\n");
        add(&t, "1\t1\t1", pad % 4 ? 5 : 0);
        char name[32];
        snprintf(name, sizeof name, "shift%d.tsv", pad);
        char *p = put(name, t.p, t.n);
        res ref;
        check(&ref, &p, 1, false, EM_RATINGS_TSV, 1);
        cr_assert_eq(ref.rc, 0, "%s", ref.msg);
        res_free(&ref);
        em_free(p);
        em_free(t.p);
    }
}

/* Files shorter than the thread count, empty files, blank files. */
Test(ratings_par, tiny_and_empty_files)
{
    static const char *const texts[] = {"", "\n", "\n\n\n\n\n\n\n\n", "1 2 3", "1 2 3\n",
                                        "1\t2\t3\n4\t5\t6"};
    for (int k = 0; k < 6; k++) {
        char name[32];
        snprintf(name, sizeof name, "tiny%d.tsv", k);
        char *p = put(name, texts[k], strlen(texts[k]));
        res ref;
        check(&ref, &p, 1, false, EM_RATINGS_AUTO, k > 0);
        cr_assert_eq(ref.rc, 0, "%s", ref.msg);
        res_free(&ref);
        em_free(p);
    }
}

/* ---------------------------------------------------------------- shared maps, layouts */

Test(ratings_par, test_file_shares_the_maps)
{
    txt a = {0}, b = {0};
    gen_lines(&a, 19, 2000, "\t", false, "\n");
    gen_lines(&b, 20, 2600, "\t", false, "\n");   /* more ids: some new to the test file */
    adds(&b, "newuser\tnewitem\t3\n");
    char *p[2] = {put("s.train.tsv", a.p, a.n), put("s.test.tsv", b.p, b.n)};
    res ref;
    check(&ref, p, 2, false, EM_RATINGS_AUTO, 2);
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    cr_assert_eq(ref.r[0].n, 2000);
    cr_assert_eq(ref.r[1].n, 2601);
    cr_assert_eq(em_idmap_find(ref.u, "newuser", 7), em_idmap_size(ref.u) - 1);
    res_free(&ref);
    em_free(p[0]);
    em_free(p[1]);
    em_free(a.p);
    em_free(b.p);
}

/* The Netflix layout stays sequential (its lines carry state); a directory is read file by
 * file, each of them in parallel. */
Test(ratings_par, netflix_sequential_directory_per_file)
{
    txt nf = {0};
    for (int m = 1; m <= 30; m++) {
        addf(&nf, "%d:\n", m);
        for (int k = 0; k < 20; k++)
            addf(&nf, "%d,%d,2005-09-06\n", (m * 37 + k * 11) % 97, 1 + (m + k) % 5);
    }
    char *p = put("combined_data_1.txt", nf.p, nf.n);
    res ref;
    check(&ref, &p, 1, false, EM_RATINGS_AUTO, 0);
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    cr_assert_eq(ref.r[0].n, 600);
    res_free(&ref);

    char *dir = em_xasprintf("%s/set", g_dir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    for (int f = 0; f < 3; f++) {
        txt t = {0};
        gen_lines(&t, 30 + (uint64_t)f, 500 + 100 * f, "\t", false, "\n");
        char *name = em_xasprintf("set/part-%d.tsv", 2 - f);   /* name order != write order */
        em_free(put(name, t.p, t.n));
        em_free(name);
        em_free(t.p);
    }
    em_free(put("set/_SUCCESS", "", 0));
    uint64_t c0 = em__ratings_parallel_files();
    check(&ref, &dir, 1, false, EM_RATINGS_AUTO, 3);
    cr_assert_eq(em__ratings_parallel_files() - c0, 9, "3 files x 3 thread counts");
    cr_assert_eq(ref.rc, 0, "%s", ref.msg);
    cr_assert_eq(ref.r[0].n, 1800);
    res_free(&ref);
    em_free(dir);
    em_free(p);
    em_free(nf.p);
}

/* Without EMBER_PARSE_THREADS (or with a value out of range), small files stay on the
 * calling thread. */
Test(ratings_par, small_files_sequential_by_default)
{
    txt t = {0};
    gen_lines(&t, 40, 1000, "\t", false, "\n");
    char *p = put("small.tsv", t.p, t.n);
    static const char *const env[] = {NULL, "0", "abc", "65", ""};
    for (int k = 0; k < 5; k++) {
        if (env[k])
            setenv("EMBER_PARSE_THREADS", env[k], 1);
        else
            unsetenv("EMBER_PARSE_THREADS");
        em_idmap *u = em_idmap_new(), *i = em_idmap_new();
        em_ratings r;
        em_err err = EM_ERR_INIT;
        em_ratings_init(&r);
        uint64_t c0 = em__ratings_parallel_files();
        cr_assert_eq(em_ratings_read(p, NULL, u, i, &r, &err), 0, "%s", err.msg);
        cr_assert_eq(r.n, 1000);
        cr_assert_eq(em__ratings_parallel_files(), c0, "env %s", env[k] ? env[k] : "unset");
        em_ratings_destroy(&r);
        em_idmap_free(u);
        em_idmap_free(i);
    }
    em_free(p);
    em_free(t.p);
}
