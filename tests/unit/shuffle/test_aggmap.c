/* tests/unit/shuffle/test_aggmap.c - the combining hash map (shuffle/aggmap.c) against a
 * naive reference: inline slots (short keys, 8-byte values) and slab entries (long keys,
 * other value sizes), moves between the two, forced hash collisions, sorting, reset,
 * out-of-memory, and in-place accumulators (em_combiner.acc_*: aligned, folded in place). */
#include "shuffle_test_util.h"
#include "shuffle/shuffle_int.h"

#define MAXV 256

/* Reference: distinct (part, key) with their expected value, found by linear search. */
typedef struct ref_ent {
    uint32_t part;
    uint8_t key[256];
    size_t klen;
    uint8_t val[MAXV];
    size_t vlen;
} ref_ent;

typedef struct ref_map {
    ref_ent *e;
    size_t n;
} ref_map;

static ref_ent *ref_find(ref_map *r, uint32_t part, em_slice key)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->e[i].part == part && r->e[i].klen == key.n && !memcmp(r->e[i].key, key.p, key.n))
            return &r->e[i];
    return NULL;
}

/* Concatenation combiner (values grow, capped at MAXV by dropping the oldest bytes), with
 * an optional create that prefixes '<'. */
static void concat(em_slice a, em_slice b, uint8_t *out, size_t *n)
{
    uint8_t tmp[2 * MAXV];
    memcpy(tmp, a.p, a.n);
    memcpy(tmp + a.n, b.p, b.n);
    size_t t = a.n + b.n, skip = t > MAXV ? t - MAXV : 0;
    memcpy(out, tmp + skip, t - skip);
    *n = t - skip;
}
static int cat_mv(void *self, em_slice c, em_slice v, em_vbuf *out, em_err *err)
{
    (void)self;
    (void)err;
    uint8_t o[MAXV];
    size_t n;
    concat(c, v, o, &n);
    return em_vbuf_append(out, o, n);
}
static int cat_create(void *self, em_slice v, em_vbuf *out, em_err *err)
{
    (void)self;
    (void)err;
    uint8_t o[MAXV];
    size_t n;
    concat(em_slice_make("<", 1), v, o, &n);
    return em_vbuf_append(out, o, n);
}
static const em_combiner_ops cat_ops = {NULL, cat_mv, cat_mv};
static const em_combiner cat_combiner = {.ops = &cat_ops};
static const em_combiner_ops cat_create_ops = {cat_create, cat_mv, cat_mv};
static const em_combiner cat_create_combiner = {.ops = &cat_create_ops};

static void k8_sum(uint8_t *acc, const uint8_t *v)
{
    em_enc_i64(acc, em_dec_i64(acc) + em_dec_i64(v));
}
static const em_combiner sum8_combiner = {.ops = &tu_sum_ops, .merge_value8 = k8_sum, .merge_combiners8 = k8_sum};

/* Checks the map holds exactly the reference: by iteration, then sorted. */
static void check_same(em__aggmap *m, ref_map *r)
{
    em_err err = EM_ERR_INIT;
    size_t pos = 0, n = 0;
    uint32_t part;
    em_rec rec;
    cr_assert_eq(m->tab.n, r->n);
    while (em__aggmap_next(m, &pos, &part, &rec)) {
        ref_ent *e = ref_find(r, part, rec.key);
        cr_assert(e, "unexpected key of %zu bytes, part %u", rec.key.n, part);
        cr_assert_eq(rec.val.n, e->vlen, "value size %zu want %zu", rec.val.n, e->vlen);
        cr_assert(!memcmp(rec.val.p, e->val, e->vlen));
        n++;
    }
    cr_assert_eq(n, r->n);
    cr_assert_eq(em__aggmap_sort(m, &err), 0);
    em_rec prev = {{NULL, 0}, {NULL, 0}};
    uint32_t pprev = 0;
    for (size_t i = 0; i < m->tab.n; i++) {
        em__aggmap_at(m, i, &part, &rec);
        ref_ent *e = ref_find(r, part, rec.key);
        cr_assert(e && rec.val.n == e->vlen && !memcmp(rec.val.p, e->val, e->vlen));
        if (i) {
            int c = em_slice_cmp(prev.key, rec.key);
            cr_assert(c < 0 || (c == 0 && pprev < part), "sort order at %zu", i);
        }
        prev = rec;
        pprev = part;
    }
}

typedef struct run_opts {
    const em_combiner *comb;
    bool sum;             /* 8-byte em_enc_i64 values summed; else concatenated */
    bool create;          /* cat_create: first value gets a '<' prefix */
    bool collide;         /* every key gets the same key hash */
    size_t maxkey;        /* tu_rand_key max length (chars, up to 4 bytes each) */
    uint32_t nparts;
    size_t nadds;
} run_opts;

static void run_case(const run_opts *o, uint64_t seed)
{
    em__aggmap m;
    ref_map r = {calloc(o->nadds, sizeof(ref_ent)), 0};
    em_err err = EM_ERR_INIT;
    em_rng rng;
    em_rng_seed(&rng, seed);
    em__aggmap_init(&m, o->comb, false);
    for (size_t i = 0; i < o->nadds; i++) {
        uint8_t key[256], val[16];
        size_t kn = tu_rand_key(&rng, key, o->maxkey), vn;
        uint32_t part = (uint32_t)em_rng_below(&rng, o->nparts);
        if (o->sum) {
            em_enc_i64(val, (int64_t)em_rng_below(&rng, 1000) - 500);
            vn = 8;
        } else {
            vn = (size_t)em_rng_below(&rng, 12);   /* 0..11 bytes, 8 among them */
            for (size_t k = 0; k < vn; k++)
                val[k] = (uint8_t)('a' + em_rng_below(&rng, 26));
        }
        em_slice ks = em_slice_make(key, kn), vs = em_slice_make(val, vn);
        uint64_t h = o->collide ? 42 : em_hash64(key, kn, 0);
        em_rec rec = {ks, vs};
        cr_assert_eq(em__aggmap_add_hashed(&m, part, h, &rec, &err), 0, "%s", err.msg);
        ref_ent *e = ref_find(&r, part, ks);
        if (!e) {
            e = &r.e[r.n++];
            e->part = part;
            memcpy(e->key, key, kn);
            e->klen = kn;
            if (o->create)
                concat(em_slice_make("<", 1), vs, e->val, &e->vlen);
            else {
                memcpy(e->val, val, vn);
                e->vlen = vn;
            }
        } else if (o->sum) {
            em_enc_i64(e->val, em_dec_i64(e->val) + em_dec_i64(val));
        } else {
            concat(em_slice_make(e->val, e->vlen), vs, e->val, &e->vlen);
        }
    }
    cr_assert_gt(em__aggmap_mem(&m), 0);
    check_same(&m, &r);
    /* Reset, then the map is usable again (a drain). */
    em__aggmap_reset(&m);
    cr_assert_eq(m.tab.n, 0);
    size_t pos = 0;
    uint32_t part;
    em_rec rec;
    cr_assert_eq(em__aggmap_next(&m, &pos, &part, &rec), 0);
    cr_assert_eq(em__aggmap_add(&m, 3, em_slice_make("k", 1), em_slice_make("12345678", 8),
                                &err), 0);
    cr_assert_eq(m.tab.n, 1);
    em__aggmap_destroy(&m);
    free(r.e);
}

Test(aggmap, short_keys_8byte_kernel)
{
    run_opts o = {&sum8_combiner, true, false, false, 3, 2, 20000};
    run_case(&o, 1);
}

Test(aggmap, mixed_key_lengths_sum_through_ops)
{
    /* up to 40 chars (up to 160 bytes): inline and entry slots side by side */
    run_opts o = {&tu_sum_combiner, true, false, false, 40, 3, 5000};
    run_case(&o, 2);
}

Test(aggmap, values_change_size_inline_to_entry)
{
    /* 8-byte values start inline; concatenation moves them to entries and grows them */
    run_opts o = {&cat_combiner, false, false, false, 5, 2, 4000};
    run_case(&o, 3);
}

Test(aggmap, create_then_merge)
{
    run_opts o = {&cat_create_combiner, false, true, false, 20, 1, 3000};
    run_case(&o, 4);
}

Test(aggmap, forced_collisions_one_cluster)
{
    /* the same key hash for every key: one probe cluster, equal stored hash bits */
    run_opts o = {&sum8_combiner, true, false, true, 20, 2, 1500};
    run_case(&o, 5);
    run_opts c = {&cat_combiner, false, false, true, 4, 2, 1500};
    run_case(&c, 6);
}

Test(aggmap, inline_boundary_lengths)
{
    /* keys of exactly 13, 14, 15 and 16 bytes that share their first 13 bytes, and the
     * empty key: the inline image must tell them apart */
    em__aggmap m;
    em_err err = EM_ERR_INIT;
    uint8_t v[8];
    em__aggmap_init(&m, &sum8_combiner, true);
    for (int round = 0; round < 3; round++)
        for (size_t n = 0; n <= 17; n++) {
            em_enc_i64(v, (int64_t)n);
            cr_assert_eq(em__aggmap_add(&m, 0, em_slice_make("abcdefghijklmnopq", n),
                                        em_slice_make(v, 8), &err), 0);
        }
    cr_assert_eq(m.tab.n, 18);
    cr_assert_eq(em__aggmap_sort(&m, &err), 0);
    for (size_t i = 0; i < 18; i++) {
        uint32_t part;
        em_rec r;
        em__aggmap_at(&m, i, &part, &r);
        cr_assert_eq(r.key.n, i);   /* prefixes sort shorter first */
        cr_assert_eq(r.val.n, 8);
        cr_assert_eq(em_dec_i64(r.val.p), 3 * (int64_t)i);
    }
    em__aggmap_destroy(&m);
}

Test(aggmap, survives_oom)
{
    /* every allocation failure is reported as EM_ENOMEM and leaves a consistent map */
    for (long k = 0; k < 200; k++) {
        em__aggmap m;
        em_err err = EM_ERR_INIT;
        int failed = 0;
        em__aggmap_init(&m, &cat_combiner, false);
        em_test_fail_alloc_after(k);
        for (int i = 0; i < 300; i++) {
            char key[32];
            int n = snprintf(key, sizeof key, i % 3 ? "k%d" : "a-long-key-number-%d", i % 150);
            int rc = em__aggmap_add(&m, (uint32_t)(i % 2), em_slice_make(key, (size_t)n),
                                    em_slice_make("12345678", 8 + (size_t)(i % 5 == 0)), &err);
            if (rc < 0) {
                cr_assert_eq(rc, EM_ENOMEM);
                failed++;
            }
        }
        em_test_alloc_reset();
        size_t pos = 0, seen = 0;
        uint32_t part;
        em_rec r;
        while (em__aggmap_next(&m, &pos, &part, &r))
            seen++;
        cr_assert_eq(seen, m.tab.n);
        em__aggmap_destroy(&m);
        if (!failed)
            break;
    }
}

/* grow_bytes predicts exactly what the next add adds to the table; clear empties the map
 * but keeps the table, and the map then combines correctly again (the writer's drains). */
Test(aggmap, grow_bytes_and_clear_keeps_table)
{
    em__aggmap m;
    em_err err = EM_ERR_INIT;
    em__aggmap_init(&m, &sum8_combiner, false);
    cr_assert_eq(em__aggmap_grow_bytes(&m), 64 * sizeof(em__agg_slot));
    size_t grows = 0;
    for (uint64_t i = 0; i < 3000; i++) {
        uint8_t k[8], v[8];
        em_store_le64(k, i * 0x9e3779b97f4a7c15ULL);
        em_enc_i64(v, 1);
        size_t g = em__aggmap_grow_bytes(&m), before = m.tab.cap;
        cr_assert_eq(em__aggmap_add(&m, 0, em_slice_make(k, 8), em_slice_make(v, 8), &err), 0);
        cr_assert_eq((m.tab.cap - before) * sizeof(em__agg_slot), g, "key %llu",
                     (unsigned long long)i);
        grows += g != 0;
        /* The same for a key already there (the table grows before the lookup). */
        g = em__aggmap_grow_bytes(&m);
        before = m.tab.cap;
        cr_assert_eq(em__aggmap_add(&m, 0, em_slice_make(k, 8), em_slice_make(v, 8), &err), 0);
        cr_assert_eq((m.tab.cap - before) * sizeof(em__agg_slot), g);
        grows += g != 0;
    }
    cr_assert_eq(grows, 7, "0 -> 64 -> ... -> 4096 slots");
    cr_assert_eq(m.tab.n, 3000);
    size_t nslots = m.tab.cap;
    cr_assert_eq(em__aggmap_sort(&m, &err), 0);
    em__aggmap_clear(&m);
    cr_assert_eq(m.tab.cap, nslots);
    cr_assert_eq(m.tab.n, 0);
    cr_assert_eq(em__aggmap_mem(&m), nslots * sizeof(em__agg_slot));
    size_t pos = 0;
    uint32_t part;
    em_rec rec;
    cr_assert_eq(em__aggmap_next(&m, &pos, &part, &rec), 0);
    /* Adds are valid again after clear (even after a sort); long keys use the slab. */
    ref_map r = {calloc(500, sizeof(ref_ent)), 0};
    em_rng rng;
    em_rng_seed(&rng, 77);
    for (size_t i = 0; i < 2000; i++) {
        uint8_t key[256], val[8];
        size_t kn = tu_rand_key(&rng, key, 8);
        if (i % 3 == 0)
            kn = 20 + (size_t)em_rng_below(&rng, 10);   /* past the inline size */
        for (size_t j = 0; i % 3 == 0 && j < kn; j++)
            key[j] = (uint8_t)('a' + (i / 3 % 97 + j) % 26);
        if (r.n == 500 && !ref_find(&r, 1, em_slice_make(key, kn)))
            continue;
        em_enc_i64(val, (int64_t)i);
        cr_assert_eq(em__aggmap_add(&m, 1, em_slice_make(key, kn), em_slice_make(val, 8),
                                    &err), 0, "%s", err.msg);
        ref_ent *e = ref_find(&r, 1, em_slice_make(key, kn));
        if (!e) {
            e = &r.e[r.n++];
            e->part = 1;
            memcpy(e->key, key, kn);
            e->klen = kn;
            memcpy(e->val, val, 8);
            e->vlen = 8;
        } else {
            em_enc_i64(e->val, em_dec_i64(e->val) + (int64_t)i);
        }
    }
    cr_assert_eq(m.tab.cap, nslots, "fewer keys than before: no growth");
    check_same(&m, &r);
    em__aggmap_destroy(&m);
    free(r.e);
}

/* ---------------------------------------------------------------- in-place combiners */

/* Accumulator: u64 sum of em_enc_i64 values, u64 count, u64 key length (from the record,
 * so create and add see the key). Every hook checks the accumulator is 16-byte aligned. */
static int ip_calls;
static int ip_create(void *self, void *acc, const em_rec *r, em_err *err)
{
    (void)self;
    uint64_t *a = acc;
    cr_assert_eq((uintptr_t)acc & 15, 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(a[i], 0, "zeroed");
    a[0] = (uint64_t)em_dec_i64(r->val.p);
    a[1] = 1;
    a[2] = r->key.n;
    (void)err;
    return 0;
}
static int ip_add(void *self, void *acc, const em_rec *r, em_err *err)
{
    (void)self;
    (void)err;
    uint64_t *a = acc;
    cr_assert_eq((uintptr_t)acc & 15, 0);
    cr_assert_eq(a[2], r->key.n);
    a[0] += (uint64_t)em_dec_i64(r->val.p);
    a[1]++;
    ip_calls++;
    return 0;
}
static int ip_merge(void *self, void *acc, const void *other, em_err *err)
{
    (void)self;
    (void)err;
    uint64_t *a = acc;
    uint64_t o[3];
    cr_assert_eq((uintptr_t)acc & 15, 0);
    memcpy(o, other, 24);
    a[0] += o[0];
    a[1] += o[1];
    ip_calls++;
    return 0;
}
static int ip_never(void *self, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)self, (void)a, (void)b, (void)out;
    return em_err_set(err, EM_EINVAL, "the in-place path must be taken");
}
static const em_combiner_ops ip_ops = {NULL, ip_never, ip_never};
static const em_combiner ip_combiner = {.ops = &ip_ops, .acc_size = 24, .acc_create = ip_create,
                                        .acc_merge_value = ip_add,
                                        .acc_merge_combiners = ip_merge};

Test(aggmap, in_place_accumulators_by_key)
{
    em_err err = EM_ERR_INIT;
    em__aggmap m, c;
    em__aggmap_init(&m, &ip_combiner, false);
    em__aggmap_init(&c, &ip_combiner, true);
    enum { N = 5000, K = 97 };
    int64_t sum[K] = {0}, cnt[K] = {0};
    for (int i = 0; i < N; i++) {
        char key[40];
        int k = (i * 7919) % K;
        /* keys of 1..39 bytes: inline-length ones too, they must still go to entries */
        int kl = snprintf(key, sizeof key, "%.*s-%d", k % 30, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", k);
        uint8_t v[8];
        em_enc_i64(v, i - N / 2);
        sum[k] += i - N / 2;
        cnt[k]++;
        cr_assert_eq(em__aggmap_add(&m, 0, em_slice_make(key, (size_t)kl), em_slice_make(v, 8),
                                    &err), 0, "%s", err.msg);
    }
    cr_assert_eq(m.tab.n, K);
    cr_assert_eq(ip_calls, N - K, "one in-place add per record after the first of its key");
    /* values are accumulators: fold m's records into c twice */
    size_t pos = 0;
    uint32_t part;
    em_rec r;
    for (int pass = 0; pass < 2; pass++)
        for (pos = 0; em__aggmap_next(&m, &pos, &part, &r);)
            cr_assert_eq(em__aggmap_add(&c, 0, r.key, r.val, &err), 0, "%s", err.msg);
    cr_assert_eq(c.tab.n, K);
    for (pos = 0; em__aggmap_next(&c, &pos, &part, &r);) {
        char key[40] = {0};
        memcpy(key, r.key.p, r.key.n);
        int k = atoi(strchr(key, '-') + 1);
        uint64_t a[3];
        cr_assert_eq(r.val.n, 24);
        cr_assert_eq((uintptr_t)r.val.p & 15, 0);
        memcpy(a, r.val.p, 24);
        cr_assert_eq((int64_t)a[0], 2 * sum[k], "key %s", key);
        cr_assert_eq((int64_t)a[1], 2 * cnt[k], "key %s", key);
    }
    /* a combiner of the wrong size is an error, not a crash */
    uint8_t small[8] = {0};
    cr_assert_eq(em__aggmap_add(&c, 0, em_slice_make("x", 1), em_slice_make(small, 8), &err),
                 EM_ECORRUPT);
    em__aggmap_destroy(&m);
    em__aggmap_destroy(&c);
}
