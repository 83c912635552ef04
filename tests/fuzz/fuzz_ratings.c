/* tests/fuzz/fuzz_ratings.c - the text rating readers on arbitrary bytes. The first byte
 * picks the format (mod 5: auto, tsv, csv, movielens, netflix) and bit 7 skip-bad-lines;
 * the rest is the file. Any outcome but a crash, a sanitizer report or an out-of-range
 * index is fine. The same bytes are also written to a file and read as two byte ranges
 * split at a point drawn from the input (em__ratings_parse_range, the executors' reader):
 * for the Netflix layout, whose second range finds its movie by looking back, the two
 * ranges must give exactly the whole file's ratings (or, strict, fail when it fails).
 * For tsv, csv and movielens, each of the two ranges and the whole file are also parsed in
 * RAW mode (the executors' one pass): the outcome, message, counts and ratings must be
 * those of the mapped parse into fresh maps, with each id replaced by rev[index] of its
 * map (-1 for a string id), as the one pass emitted them before RAW mode existed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/als/als_int.h"

/* Both ranges of the file at path into one pair of maps (the numbering of a whole read). */
static int two_ranges(const char *path, em_ratings_format fmt, bool skip, uint64_t split,
                      uint64_t len, em_idmap *u, em_idmap *i, em_ratings *r)
{
    em_err err = EM_ERR_INIT;
    for (int k = 0; k < 2; k++) {
        em__ratings_range rg = {.path = path, .fmt = fmt, .skip_bad = skip,
                                .start = k ? split : 0, .end = k ? len : split};
        if (em__ratings_parse_range(&rg, u, i, r, NULL, NULL, &err) < 0)
            return -1;
    }
    return 0;
}

/* Byte range [a, b) of path parsed mapped (fresh maps) and raw: the same result. */
static void raw_check(const char *path, em_ratings_format fmt, bool skip, uint64_t a,
                      uint64_t b)
{
    em__ratings_range rg = {.path = path, .fmt = fmt, .skip_bad = skip, .start = a, .end = b};
    em_idmap *u = em_idmap_new(), *i = em_idmap_new();
    em_ratings m, r;
    em_err em = EM_ERR_INIT, er = EM_ERR_INIT;
    em_ratings_init(&m);
    em_ratings_init(&r);
    if (!u || !i)
        abort();
    int rcm = em__ratings_parse_range(&rg, u, i, &m, NULL, NULL, &em);
    rg.raw = true;
    int rcr = em__ratings_parse_range(&rg, NULL, NULL, &r, NULL, NULL, &er);
    if (rcm != rcr || strcmp(em.msg, er.msg) || m.lines != r.lines ||
        m.skipped != r.skipped || m.n != r.n)
        abort();
    for (size_t t = 0; rcm == 0 && t < m.n; t++) {
        em_rating q = {u->rev[m.recs[t].user] >= 0 ? (int32_t)u->rev[m.recs[t].user] : -1,
                       i->rev[m.recs[t].item] >= 0 ? (int32_t)i->rev[m.recs[t].item] : -1,
                       m.recs[t].rating};
        if (memcmp(&q, &r.recs[t], sizeof q))
            abort();
    }
    em_ratings_destroy(&m);
    em_ratings_destroy(&r);
    em_idmap_free(u);
    em_idmap_free(i);
}

static void ranges_check(const uint8_t *data, size_t size, const em_ratings_read_opts *o,
                         int rc0, const em_ratings *whole)
{
    char path[] = "/tmp/fuzz_ratings_XXXXXX.txt";
    int fd = mkstemps(path, 4);
    if (fd < 0)
        return;
    size_t len = size - 1;
    bool ok = write(fd, data + 1, len) == (ssize_t)len;
    close(fd);
    em_ratings_format fmt = ok && len ? em__ratings_detect(path, o->format) : EM_RATINGS_AUTO;
    if (fmt == EM_RATINGS_NETFLIX) {
        uint64_t split = ((uint64_t)data[size - 1] * 2654435761u + size) % (len + 1);
        em_idmap *u = em_idmap_new(), *i = em_idmap_new();
        em_ratings r;
        em_ratings_init(&r);
        int rc1 = two_ranges(path, fmt, o->skip_bad_lines, split, len, u, i, &r);
        if ((rc0 == 0) != (rc1 == 0))
            abort();
        if (rc0 == 0) {
            if (r.n != whole->n || r.skipped != whole->skipped)
                abort();
            for (size_t t = 0; t < r.n; t++)
                if (memcmp(&r.recs[t], &whole->recs[t], sizeof r.recs[t]))
                    abort();
        }
        em_ratings_destroy(&r);
        em_idmap_free(u);
        em_idmap_free(i);
    } else if (fmt != EM_RATINGS_AUTO) {
        uint64_t split = ((uint64_t)data[size - 1] * 2654435761u + size) % (len + 1);
        raw_check(path, fmt, o->skip_bad_lines, 0, len);
        raw_check(path, fmt, o->skip_bad_lines, 0, split);
        raw_check(path, fmt, o->skip_bad_lines, split, len);
    }
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    em_ratings_read_opts o = {.format = (em_ratings_format)(data[0] % 5),
                              .skip_bad_lines = (data[0] & 0x80) != 0};
    em_idmap *u = em_idmap_new(), *i = em_idmap_new();
    em_ratings r;
    em_err err = EM_ERR_INIT;
    em_ratings_init(&r);
    int rc0 = u && i ? em_ratings_parse("fuzz.txt", data + 1, size - 1, &o, u, i, &r, &err)
                     : EM_ENOMEM;
    if (rc0 == 0) {
        for (size_t t = 0; t < r.n; t++)
            if (r.recs[t].user < 0 || r.recs[t].user >= em_idmap_size(u) ||
                r.recs[t].item < 0 || r.recs[t].item >= em_idmap_size(i))
                abort();
        char buf[24];
        for (int32_t k = 0; k < em_idmap_size(u); k++)
            if (!em_idmap_name(u, k, buf))
                abort();
    }
    if (u && i && size > 1)
        ranges_check(data, size, &o, rc0, &r);
    em_ratings_destroy(&r);
    em_idmap_free(u);
    em_idmap_free(i);
    return 0;
}
