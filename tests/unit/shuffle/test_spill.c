/* tests/unit/shuffle/test_spill.c - sort_by_key, reduce_by_key, group_by_key and join over data
 * 4x ember.executor.memory (and 64x ember.shuffle.memory): results identical to a run with
 * memory to spare, and the spill counter above zero for each operation (none in the
 * roomy run). */
#include "../api/api_test_util.h"

#define NREC 40000          /* ~4 MiB of 100-byte records */
#define NKEYS 5000

static em_context *ctx(const char *exec_mem, const char *shuffle_mem)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[2]");
    em_conf_set(c, "ember.executor.memory", exec_mem);
    em_conf_set(c, "ember.shuffle.memory", shuffle_mem);
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "context: %s", err.msg);
    return sc;
}

typedef struct data {
    em_rec *recs;
    char (*keys)[16];
    char (*vals)[84];
} data;

/* Keys "k%06u" (NKEYS of them; skewed: key 0 gets 1/8 of the records), 84-byte values. */
static data make(uint64_t seed, size_t n, bool skew)
{
    data d = {calloc(n, sizeof(em_rec)), calloc(n, 16), calloc(n, 84)};
    em_rng rng;
    em_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        uint32_t k = skew && em_rng_below(&rng, 8) == 0 ? 0 : (uint32_t)em_rng_below(&rng, NKEYS);
        int kl = snprintf(d.keys[i], 16, "k%06u", k);
        for (int j = 0; j < 84; j++)
            d.vals[i][j] = (char)('a' + em_rng_below(&rng, 26));
        d.recs[i].key = em_slice_make(d.keys[i], (size_t)kl);
        d.recs[i].val = em_slice_make(d.vals[i], 84);
    }
    return d;
}

static void data_free(data *d)
{
    free(d->recs);
    free(d->keys);
    free(d->vals);
}

/* Records as canonical strings; GROUP values (em_list) with their items sorted, since the
 * order of a key's values is arrival order, not a promise. */
static tu_list canon(em_rdd *r, bool group)
{
    em_records recs;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(r, &recs, &err), 0, "collect: %s", err.msg);
    tu_list l = {0};
    for (size_t i = 0; i < recs.n; i++) {
        em_slice v = recs.recs[i].val;
        if (!group) {
            tu_add_rec(&l, recs.recs[i].key, true, v);
            continue;
        }
        tu_list items = {0};
        em_list_iter it;
        em_slice item;
        cr_assert_eq(em_list_iter_init(&it, v, &err), 0);
        while (em_list_iter_next(&it, &item, &err) == 1)
            tu_add_rec(&items, em_slice_make(NULL, 0), false, item);
        qsort(items.s, items.n, sizeof *items.s, tu_cmp);
        size_t len = recs.recs[i].key.n + 2;
        for (size_t j = 0; j < items.n; j++)
            len += strlen(items.s[j]) + 1;
        char *s = malloc(len), *p = s;
        p += sprintf(p, "%.*s:", (int)recs.recs[i].key.n, (const char *)recs.recs[i].key.p);
        for (size_t j = 0; j < items.n; j++)
            p += sprintf(p, "%s,", items.s[j]);
        tu_add(&l, s);
        tu_free(&items);
    }
    em_records_destroy(&recs);
    return l;
}

typedef em_rdd *(*op_fn)(em_context *sc, em_rdd *a, em_rdd *b);

static em_rdd *op_sort(em_context *sc, em_rdd *a, em_rdd *b)
{
    (void)sc, (void)b;
    return em_rdd_sort_by_key(a, true, 4);
}
static em_rdd *op_reduce(em_context *sc, em_rdd *a, em_rdd *b)
{
    (void)sc, (void)b;
    return em_rdd_reduce_by_key(a, "em.min_bytes", em_slice_make(NULL, 0), 4);
}
static em_rdd *op_group(em_context *sc, em_rdd *a, em_rdd *b)
{
    (void)sc, (void)b;
    return em_rdd_group_by_key(a, 4);
}
static em_rdd *op_join(em_context *sc, em_rdd *a, em_rdd *b)
{
    (void)sc;
    return em_rdd_join(a, b, 4);
}

/* Runs op in a roomy and a tight context; compares; checks the spill counters. */
static void run(op_fn op, bool group, bool ordered, const char *what)
{
        /* b is not skewed: the hot key of a then meets ~1 record of b, not a cross product. */
    data a = make(1, NREC, true), b = make(2, NREC / 8, false);
    tu_list res[2];
    uint64_t spilled[2];
    for (int tight = 0; tight < 2; tight++) {
        em_context *sc = tight ? ctx("1m", "64k") : ctx("256m", "64m");
        em_rdd *ra = em_parallelize(sc, EM_REC_KV, 0, a.recs, NREC, 4);
        em_rdd *rb = em_parallelize(sc, EM_REC_KV, 0, b.recs, NREC / 8, 3);
        em_rdd *r = op(sc, ra, rb);
        res[tight] = canon(r, group);
        em_context_stats st;
        em_context_stats_get(sc, &st);
        spilled[tight] = st.spill_bytes;
        em_context_free(sc);
    }
    cr_assert_eq(spilled[0], 0, "%s: roomy run spilled %llu bytes", what,
                 (unsigned long long)spilled[0]);
    cr_assert_gt(spilled[1], 0, "%s: tight run did not spill", what);
    cr_assert_gt(res[0].n, 0);
    tu_expect(&res[1], &res[0], ordered, what);
    tu_free(&res[0]);
    tu_free(&res[1]);
    data_free(&a);
    data_free(&b);
}

TestSuite(spill, .timeout = 120);

Test(spill, sort_by_key)
{
    /* Ordered: equal keys keep arrival order in both runs (stable runs and merge). */
    run(op_sort, false, true, "sort_by_key");
}

Test(spill, reduce_by_key) { run(op_reduce, false, false, "reduce_by_key"); }

Test(spill, group_by_key) { run(op_group, true, false, "group_by_key"); }

Test(spill, join) { run(op_join, false, false, "join"); }
