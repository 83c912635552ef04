/* tests/unit/api/api_test_util.h - helpers shared by the api and sched unit tests: contexts,
 * canonical record strings (so results compare against a sequential reference regardless of
 * order) and random inputs. Header-only: each test file is its own executable. */
#ifndef EMBER_API_TEST_UTIL_H
#define EMBER_API_TEST_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ember.h"

static inline em_context *tu_ctx(const char *shuffle_mem)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[2]");
    em_conf_set(c, "ember.executor.memory", "64m");
    if (shuffle_mem)
        em_conf_set(c, "ember.shuffle.memory", shuffle_mem);
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "context: %s", err.msg);
    return sc;
}

/* "k:<hex key>|v:<hex val>" or "v:<hex>" for plain records; caller frees. */
static inline char *tu_rec_str(em_slice key, bool kv, em_slice val)
{
    size_t n = 8 + 2 * (key.n + val.n);
    char *s = malloc(n), *p = s;
    if (kv) {
        p += sprintf(p, "k:");
        for (size_t i = 0; i < key.n; i++)
            p += sprintf(p, "%02x", key.p[i]);
        *p++ = '|';
    }
    p += sprintf(p, "v:");
    for (size_t i = 0; i < val.n; i++)
        p += sprintf(p, "%02x", val.p[i]);
    return s;
}

typedef struct tu_list {
    char **s;
    size_t n, cap;
} tu_list;

static inline void tu_add(tu_list *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->s = realloc(l->s, l->cap * sizeof *l->s);
    }
    l->s[l->n++] = s;
}

static inline void tu_add_rec(tu_list *l, em_slice key, bool kv, em_slice val)
{
    tu_add(l, tu_rec_str(key, kv, val));
}

static inline int tu_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline void tu_free(tu_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof *l);
}

static inline tu_list tu_from_records(const em_records *r)
{
    tu_list l = {0};
    for (size_t i = 0; i < r->n; i++)
        tu_add_rec(&l, r->recs[i].key, r->recs[i].key.p != NULL, r->recs[i].val);
    return l;
}

/* Asserts equal multisets (sorts both) or equal sequences. */
static inline void tu_expect(tu_list *got, tu_list *want, bool ordered, const char *what)
{
    if (!ordered) {
        qsort(got->s, got->n, sizeof *got->s, tu_cmp);
        qsort(want->s, want->n, sizeof *want->s, tu_cmp);
    }
    cr_assert_eq(got->n, want->n, "%s: %zu records, want %zu", what, got->n, want->n);
    for (size_t i = 0; i < got->n; i++)
        cr_assert_str_eq(got->s[i], want->s[i], "%s: record %zu", what, i);
}

/* Collects r and compares with want (then frees want). */
static inline void tu_check(em_rdd *r, tu_list *want, bool ordered, const char *what)
{
    em_records recs;
    em_err err = EM_ERR_INIT;
    int rc = em_rdd_collect(r, &recs, &err);
    cr_assert_eq(rc, 0, "%s: collect: %s", what, err.msg);
    tu_list got = tu_from_records(&recs);
    tu_expect(&got, want, ordered, what);
    tu_free(&got);
    tu_free(want);
    em_records_destroy(&recs);
}

static inline em_slice tu_i64(uint8_t buf[8], int64_t v)
{
    em_enc_i64(buf, v);
    return em_slice_make(buf, 8);
}

/* n KV records: keys "key<k>" with k skewed (half the records share key 0), values
 * em_enc_i64 in [-1000, 1000). Storage for the bytes in *store (free with free()). */
typedef struct tu_kv {
    em_rec *recs;
    char (*keys)[16];
    uint8_t (*vals)[8];
    size_t n;
} tu_kv;

static inline tu_kv tu_random_kv(size_t n, uint32_t nkeys, uint64_t seed)
{
    tu_kv d = {calloc(n + 1, sizeof(em_rec)), calloc(n + 1, 16), calloc(n + 1, 8), n};
    em_rng rng;
    em_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        uint32_t k = em_rng_below(&rng, 2) ? 0 : (uint32_t)em_rng_below(&rng, nkeys);
        int len = snprintf(d.keys[i], 16, "key%u", k);
        em_enc_i64(d.vals[i], (int64_t)em_rng_below(&rng, 2000) - 1000);
        d.recs[i].key = em_slice_make(d.keys[i], (size_t)len);
        d.recs[i].val = em_slice_make(d.vals[i], 8);
    }
    return d;
}

static inline void tu_kv_free(tu_kv *d)
{
    free(d->recs);
    free(d->keys);
    free(d->vals);
}

#endif
