/* tests/unit/shuffle/shuffle_test_util.h - helpers shared by the shuffle unit tests:
 * temporary directories, a sum combiner over em_enc_i64 values, random keys. */
#ifndef EMBER_SHUFFLE_TEST_UTIL_H
#define EMBER_SHUFFLE_TEST_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shuffle/shuffle.h"

static inline char *tu_mkdtemp(void)
{
    char *p = strdup("/tmp/ember-shuffle-test-XXXXXX");
    cr_assert(p && mkdtemp(p), "mkdtemp");
    return p;
}

/* Number of directory entries besides . and .. */
static inline int tu_count_files(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    cr_assert(d, "opendir %s", dir);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static inline void tu_rmdir(char *dir)
{
    em_err err = EM_ERR_INIT;
    em_rm_rf(dir, &err);
    free(dir);
}

/* Sum combiner: values and combiners are 8-byte em_enc_i64. */
static inline int tu_sum2(em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    if (a.n != 8 || b.n != 8)
        return em_err_set(err, EM_EINVAL, "sum: values must be 8 bytes");
    uint8_t o[8];
    em_enc_i64(o, em_dec_i64(a.p) + em_dec_i64(b.p));
    return em_vbuf_append(out, o, 8);
}
static inline int tu_sum_mv(void *self, em_slice c, em_slice v, em_vbuf *out, em_err *err)
{
    (void)self;
    return tu_sum2(c, v, out, err);
}
static inline int tu_sum_mc(void *self, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)self;
    return tu_sum2(a, b, out, err);
}
static const em_combiner_ops tu_sum_ops = {NULL, tu_sum_mv, tu_sum_mc};
static const em_combiner tu_sum_combiner = {.ops = &tu_sum_ops};

/* A random key of 0..maxlen bytes over a small alphabet including multi-byte UTF-8, so keys
 * repeat and some are non-ASCII. Writes into buf (>= 4 * maxlen bytes), returns its length. */
static inline size_t tu_rand_key(em_rng *rng, uint8_t *buf, size_t maxlen)
{
    static const char *alpha[] = {"a", "b", "c", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                  "z", "\x00"};
    size_t len = (size_t)em_rng_below(rng, maxlen + 1), n = 0;
    for (size_t i = 0; i < len; i++) {
        const char *s = alpha[em_rng_below(rng, 8)];
        size_t sl = s[0] ? strlen(s) : 1;
        memcpy(buf + n, s, sl);
        n += sl;
    }
    return n;
}

#endif
