/* tests/unit/shuffle/test_hotkey_join.c - hot keys through the engine (the reducer's
 * spilled groups, seen from the API; test_hotkey.c drives the reducer directly): one key
 * holding most records of both sides of a join (output = the product of its value
 * counts), outer joins with hot keys on one side only, and group_by_key with a hot key, in
 * local[2] with ember.executor.memory=1m and ember.shuffle.memory=64k. Each result equals a reference
 * computed here (as a multiset) and a roomy run's (in order), and the tight run spills. */
#include "../api/api_test_util.h"

#define BIG 2000          /* bytes of a hot key's value */
#define SMALL 100         /* bytes of a cold key's value */

static em_context *ctx(bool tight)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[2]");
    em_conf_set(c, "ember.executor.memory", tight ? "1m" : "256m");
    em_conf_set(c, "ember.shuffle.memory", tight ? "64k" : "64m");
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "context: %s", err.msg);
    return sc;
}

typedef struct side {
    em_rec *recs;
    char (*keys)[16];
    uint8_t (*vals)[BIG];
    size_t n, cap;
    em_rng rng;
} side;

static void side_init(side *s, size_t cap, uint64_t seed)
{
    s->recs = calloc(cap, sizeof *s->recs);
    s->keys = calloc(cap, 16);
    s->vals = calloc(cap, BIG);
    s->n = 0;
    s->cap = cap;
    em_rng_seed(&s->rng, seed);
}

/* Adds `count` records of key k with random values of `len` bytes. */
static void side_add(side *s, const char *k, size_t count, size_t len)
{
    for (size_t i = 0; i < count; i++) {
        cr_assert_lt(s->n, s->cap);
        size_t j = s->n++;
        snprintf(s->keys[j], 16, "%s", k);
        for (size_t b = 0; b < len; b++)
            s->vals[j][b] = (uint8_t)em_rng_next(&s->rng);
        s->recs[j].key = em_slice_make(s->keys[j], strlen(k));
        s->recs[j].val = em_slice_make(s->vals[j], len);
    }
}

/* Shuffles the records (so hot and cold keys are mixed in every partition). */
static void side_shuffle(side *s)
{
    for (size_t i = s->n; i > 1; i--) {
        size_t j = (size_t)em_rng_below(&s->rng, i);
        em_rec t = s->recs[i - 1];
        s->recs[i - 1] = s->recs[j];
        s->recs[j] = t;
    }
}

static void side_free(side *s)
{
    free(s->recs);
    free(s->keys);
    free(s->vals);
}

/* "key|<hash of left or ->|<hash of right or ->" */
static char *pair_str(em_slice k, const em_slice *l, const em_slice *r)
{
    char *s = malloc(k.n + 48);
    int n = sprintf(s, "%.*s|", (int)k.n, (const char *)k.p);
    n += l ? sprintf(s + n, "%016llx|", (unsigned long long)em_hash64(l->p, l->n, 1))
           : sprintf(s + n, "-|");
    if (r)
        sprintf(s + n, "%016llx", (unsigned long long)em_hash64(r->p, r->n, 1));
    else
        sprintf(s + n, "-");
    return s;
}

/* Join results as strings, in output order. */
static tu_list canon_pairs(const em_records *recs)
{
    tu_list l = {0};
    em_err err = EM_ERR_INIT;
    for (size_t i = 0; i < recs->n; i++) {
        em_slice a, b;
        bool ha, hb;
        cr_assert_eq(em_pair_decode(recs->recs[i].val, &a, &ha, &b, &hb, &err), 0, "%s",
                     err.msg);
        tu_add(&l, pair_str(recs->recs[i].key, ha ? &a : NULL, hb ? &b : NULL));
    }
    return l;
}

/* group_by_key results: "key|h1,h2,..." with the values in list order. */
static tu_list canon_groups(const em_records *recs)
{
    tu_list l = {0};
    em_err err = EM_ERR_INIT;
    for (size_t i = 0; i < recs->n; i++) {
        em_list_iter li;
        em_slice v, k = recs->recs[i].key;
        cr_assert_eq(em_list_iter_init(&li, recs->recs[i].val, &err), 0);
        size_t cap = k.n + 2, len = 0;
        char *s = malloc(cap);
        len = (size_t)sprintf(s, "%.*s|", (int)k.n, (const char *)k.p);
        while (em_list_iter_next(&li, &v, &err) == 1) {
            s = realloc(s, (cap += 17));
            len += (size_t)sprintf(s + len, "%016llx,",
                                   (unsigned long long)em_hash64(v.p, v.n, 1));
        }
        tu_add(&l, s);
    }
    return l;
}

/* The reference join of a and b: inner product per key, plus the unmatched records of a
 * (left) and of b (right) as asked. */
static tu_list ref_join(const side *a, const side *b, bool left, bool right)
{
    tu_list l = {0};
    for (size_t i = 0; i < a->n; i++) {
        bool matched = false;
        for (size_t j = 0; j < b->n; j++)
            if (em_slice_eq(a->recs[i].key, b->recs[j].key)) {
                tu_add(&l, pair_str(a->recs[i].key, &a->recs[i].val, &b->recs[j].val));
                matched = true;
            }
        if (left && !matched)
            tu_add(&l, pair_str(a->recs[i].key, &a->recs[i].val, NULL));
    }
    for (size_t j = 0; right && j < b->n; j++) {
        bool matched = false;
        for (size_t i = 0; i < a->n && !matched; i++)
            matched = em_slice_eq(a->recs[i].key, b->recs[j].key);
        if (!matched)
            tu_add(&l, pair_str(b->recs[j].key, NULL, &b->recs[j].val));
    }
    return l;
}

typedef em_rdd *(*join_fn)(em_rdd *a, em_rdd *b, uint32_t nparts);

/* Runs op over a and b in a roomy and a tight context: returns the two results in output
 * order; checks the tight run spilled and the roomy one did not. */
static void run_both(const side *a, const side *b, join_fn op, bool group, tu_list out[2])
{
    for (int tight = 0; tight < 2; tight++) {
        em_context *sc = ctx(tight);
        em_err err = EM_ERR_INIT;
        em_records recs;
        em_rdd *ra = em_parallelize(sc, EM_REC_KV, 0, a->recs, a->n, 4);
        em_rdd *r = group ? em_rdd_group_by_key(ra, 3)
                          : op(ra, em_parallelize(sc, EM_REC_KV, 0, b->recs, b->n, 3), 3);
        cr_assert_eq(em_rdd_collect(r, &recs, &err), 0, "collect: %s", err.msg);
        out[tight] = group ? canon_groups(&recs) : canon_pairs(&recs);
        em_records_destroy(&recs);
        em_context_stats st;
        em_context_stats_get(sc, &st);
        if (tight)
            cr_assert_gt(st.spill_bytes, 0, "the tight run did not spill");
        else
            cr_assert_eq(st.spill_bytes, 0, "the roomy run spilled %llu bytes",
                         (unsigned long long)st.spill_bytes);
        em_context_free(sc);
    }
}

/* a: "hot" 40 x 2000 B, "hotA" 60 x 2000 B (not in b), cold keys c000..c059;
 * b: "hot" 30 x 2000 B, "hotB" 50 x 2000 B (not in a), cold keys c030..c089. */
static void make_sides(side *a, side *b)
{
    char k[16];
    side_init(a, 400, 1);
    side_init(b, 400, 2);
    side_add(a, "hot", 40, BIG);
    side_add(a, "hotA", 60, BIG);
    side_add(b, "hot", 30, BIG);
    side_add(b, "hotB", 50, BIG);
    for (unsigned i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "c%03u", i % 60);
        side_add(a, k, 1, SMALL);
    }
    for (unsigned i = 0; i < 150; i++) {
        snprintf(k, sizeof k, "c%03u", 30 + i % 60);
        side_add(b, k, 1, SMALL);
    }
    side_shuffle(a);
    side_shuffle(b);
}

/* The records of l whose key is k, in order (strings borrowed from l). */
static tu_list only_key(const tu_list *l, const char *k)
{
    tu_list o = {0};
    size_t n = strlen(k);
    for (size_t i = 0; i < l->n; i++)
        if (strncmp(l->s[i], k, n) == 0 && l->s[i][n] == '|')
            tu_add(&o, l->s[i]);
    return o;
}

static void join_case(join_fn op, bool left, bool right, size_t want_n, const char *what)
{
    side a, b;
    tu_list res[2];
    make_sides(&a, &b);
    tu_list ref = ref_join(&a, &b, left, right);
    cr_assert_eq(ref.n, want_n, "%s: reference has %zu records", what, ref.n);
    run_both(&a, &b, op, false, res);
    tu_expect(&res[1], &res[0], true, what);   /* tight = roomy, order included */
    /* Within a key the pairs are left-major over the values in arrival order, which here is
     * input order (parallelize keeps it; map outputs are read in map order), as in ref. */
    tu_list got_hot = only_key(&res[1], "hot"), want_hot = only_key(&ref, "hot");
    tu_expect(&got_hot, &want_hot, true, "hot key, in order");
    free(got_hot.s);
    free(want_hot.s);
    tu_expect(&res[1], &ref, false, what);     /* = the reference, as multisets */
    tu_free(&res[0]);
    tu_free(&res[1]);
    tu_free(&ref);
    side_free(&a);
    side_free(&b);
}

TestSuite(hotkey, .timeout = 60);

/* hot: 40 x 30 = 1200 pairs. Cold: a's 200 records give c000..c019 4 each and c020..c059 3
 * each; b's 150 give c030..c059 3 each and c060..c089 2 each; so the 30 shared keys make
 * 30 x 3 x 3 = 270 pairs. */
#define COLD_INNER 270u

Test(hotkey, join_hot_key_both_sides)
{
    join_case(em_rdd_join, false, false, 1200 + COLD_INNER, "join");
}

Test(hotkey, left_outer_join_hot_keys)
{
    /* + hotA's 60 records and a's records of c000..c029 (20 x 4 + 10 x 3). */
    join_case(em_rdd_left_outer_join, true, false, 1200 + COLD_INNER + 60 + 110,
              "left_outer_join");
}

Test(hotkey, full_outer_join_hot_keys)
{
    /* + hotB's 50 records and b's records of c060..c089 (30 x 2). */
    join_case(em_rdd_full_outer_join, true, true, 1200 + COLD_INNER + 60 + 110 + 50 + 60,
              "full_outer_join");
}

Test(hotkey, group_by_key_hot_key)
{
    side a;
    char k[16];
    tu_list res[2];
    side_init(&a, 600, 3);
    side_add(&a, "hot", 250, BIG);   /* 500 KB under one key: 8x the budget */
    for (unsigned i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "c%03u", i % 97);
        side_add(&a, k, 1, SMALL);
    }
    side_shuffle(&a);
    run_both(&a, NULL, NULL, true, res);
    tu_expect(&res[1], &res[0], true, "group_by_key");   /* lists in the same order too */
    /* Reference: each key's values in input order (parallelize keeps it, and a reducer
     * keeps arrival order), compared as a multiset of groups. */
    tu_list ref = {0};
    for (size_t i = 0; i < a.n; i++) {
        size_t j = 0;
        while (j < i && !em_slice_eq(a.recs[j].key, a.recs[i].key))
            j++;
        if (j < i)
            continue;   /* not the first record of its key */
        em_slice key = a.recs[i].key;
        size_t cap = key.n + 2, len = 0;
        char *s = malloc(cap);
        len = (size_t)sprintf(s, "%.*s|", (int)key.n, (const char *)key.p);
        for (size_t m = i; m < a.n; m++)
            if (em_slice_eq(a.recs[m].key, key)) {
                s = realloc(s, (cap += 17));
                len += (size_t)sprintf(s + len, "%016llx,", (unsigned long long)em_hash64(
                                           a.recs[m].val.p, a.recs[m].val.n, 1));
            }
        tu_add(&ref, s);
    }
    cr_assert_eq(ref.n, 98);
    tu_expect(&res[1], &ref, false, "group_by_key");
    tu_free(&res[0]);
    tu_free(&res[1]);
    tu_free(&ref);
    side_free(&a);
}
