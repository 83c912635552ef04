/* tests/unit/als/test_model_crc.c - issue 16 items 7, 10, 12: a saved model carries a crc32c
 * per file and a flipped byte anywhere is refused naming the file (not recommended from with
 * score inf); a rating beyond a float's range is a bad value of its line (skippable); the
 * command line's integer parser refuses what strtod used to truncate. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/als/als.h"
#include "mllib/als/als_int.h"

static void flip(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "%s", path);
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
}

Test(model_crc, flipped_bytes_are_refused_naming_the_file)
{
    char dir[] = "/tmp/em_als_crcXXXXXX";
    cr_assert(mkdtemp(dir));
    em_als_model *m = em_als_model_new(3, 4, 5);
    for (int i = 0; i < 12; i++)
        m->user_factors[i] = (float)i * 0.25f;
    for (int i = 0; i < 15; i++)
        m->item_factors[i] = 1.0f - (float)i * 0.125f;
    em_idmap *u = em_idmap_new(), *it = em_idmap_new();
    em_err err = EM_ERR_INIT;
    int32_t idx;
    const char *names[5] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(em_idmap_intern(it, names[i], 1, &idx, &err), 0);
        if (i < 4)
            cr_assert_eq(em_idmap_intern(u, names[i], 1, &idx, &err), 0);
    }
    const char *files[4] = {"user_factors.bin", "item_factors.bin", "user_ids.txt",
                            "item_ids.txt"};
    for (int f = 0; f < 4; f++) {
        char *md = em_xasprintf("%s/m%d", dir, f), *p = em_xasprintf("%s/%s", md, files[f]);
        cr_assert_eq(em_als_model_save(m, md, u, it, &err), 0, "%s", err.msg);
        em_als_model *l = NULL;
        em_idmap *lu = NULL, *li = NULL;
        cr_assert_eq(em_als_model_load(md, &l, &lu, &li, &err), 0, "%s", err.msg);
        em_als_model_free(l);
        em_idmap_free(lu);
        em_idmap_free(li);
        flip(p, 2);
        l = NULL;
        cr_assert_eq(em_als_model_load(md, &l, &lu, &li, &err), EM_ECORRUPT, "%s: %s",
                     files[f], err.msg);
        cr_assert(strstr(err.msg, files[f]) && strstr(err.msg, "checksum mismatch"), "%s",
                  err.msg);
        cr_assert_null(l);
        em_free(p);
        em_free(md);
    }
    em_als_model_free(m);
    em_idmap_free(u);
    em_idmap_free(it);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(model_crc, version_1_loads_and_infinite_factors_do_not)
{
    const char *meta = "{\"class\":\"ember.als\",\"version\":1,\"rank\":1,\"n_users\":1,"
                       "\"n_items\":1}";
    float one = 1.0f, inf = INFINITY;
    em_als_model *m = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_als_model_decode("x", (const uint8_t *)meta, strlen(meta),
                                     (const uint8_t *)&one, 4, (const uint8_t *)&one, 4, &m,
                                     &err), 0, "%s", err.msg);
    em_als_model_free(m);
    cr_assert_eq(em_als_model_decode("x", (const uint8_t *)meta, strlen(meta),
                                     (const uint8_t *)&one, 4, (const uint8_t *)&inf, 4, &m,
                                     &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "item_factors.bin") && strstr(err.msg, "infinite"), "%s",
              err.msg);
    const char *v2 = "{\"class\":\"ember.als\",\"version\":2,\"rank\":1,\"n_users\":1,"
                     "\"n_items\":1}";
    cr_assert_eq(em_als_model_decode("x", (const uint8_t *)v2, strlen(v2),
                                     (const uint8_t *)&one, 4, (const uint8_t *)&one, 4, &m,
                                     &err), EM_ECORRUPT, "version 2 without checksums");
}

Test(model_crc, rating_overflowing_a_float_names_file_and_line)
{
    const char *text = "1\t2\t3.5\n5\t465\t1e308\n7\t8\t-1e39\n9\t9\t4\n";
    em_idmap *u = em_idmap_new(), *it = em_idmap_new();
    em_ratings r;
    em_ratings_init(&r);
    em_err err = EM_ERR_INIT;
    em_ratings_read_opts o = {.format = EM_RATINGS_TSV};
    cr_assert_eq(em_ratings_parse("in.tsv", (const uint8_t *)text, strlen(text), &o, u, it,
                                  &r, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "in.tsv:2: column 3: rating '1e308' overflows a float"), "%s",
              err.msg);
    em_ratings_destroy(&r);
    em_ratings_init(&r);
    o.skip_bad_lines = true;
    cr_assert_eq(em_ratings_parse("in.tsv", (const uint8_t *)text, strlen(text), &o, u, it,
                                  &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.skipped, 2);
    for (size_t i = 0; i < r.n; i++)
        cr_assert(isfinite(r.recs[i].rating));
    em_ratings_destroy(&r);
    em_idmap_free(u);
    em_idmap_free(it);
}

Test(model_crc, integer_flags_are_strict)
{
    uint64_t v = 7;
    const char *bad[] = {"1.5", "0x10", "1e0", "-1", "+3", " 3", "3 ", "", "18446744073709551616"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert(!em__als_parse_count(bad[i], 0, UINT64_MAX, &v), "'%s' accepted", bad[i]);
    cr_assert_eq(v, 7);
    cr_assert(em__als_parse_count("16", 1, 512, &v) && v == 16);
    cr_assert(!em__als_parse_count("513", 1, 512, &v));
    cr_assert(em__als_parse_count("18446744073709551615", 0, UINT64_MAX, &v) && v == UINT64_MAX);
}
