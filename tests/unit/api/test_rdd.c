/* tests/unit/api/test_rdd.c - transformations against sequential references computed here,
 * on seeded random inputs (skewed keys, empty partitions, more partitions than records,
 * non-ASCII text, a 2 MiB record), master local[2]. */
#include <unistd.h>

#include "api_test_util.h"

/* One timeout for the suite: per-test .timeout makes Criterion 2.4's parent leak a timer
 * entry under ASan when tests run in parallel. */
TestSuite(rdd, .timeout = 60);

/* ---------------------------------------------------------------- test functions (registered at the end of the file) */

int tst_double(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tst_double(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    uint8_t b[8];
    em_enc_i64(b, 2 * em_dec_i64(in->val.p));
    return em_emit_val(out, em_slice_make(b, 8), err);
}

int tst_is_even(const em_fn_ctx *c, const em_rec *in, em_err *err);
int tst_is_even(const em_fn_ctx *c, const em_rec *in, em_err *err)
{
    (void)c;
    (void)err;
    return em_dec_i64(in->val.p) % 2 == 0;
}

int tst_neg(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tst_neg(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    uint8_t b[8];
    em_enc_i64(b, -em_dec_i64(in->val.p));
    return em_emit_val(out, em_slice_make(b, 8), err);
}

int tst_mod3(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tst_mod3(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    uint8_t b[8];
    em_enc_i64(b, em_dec_i64(in->val.p) % 3);
    return em_emit_val(out, em_slice_make(b, 8), err);
}

int tst_count_part(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                   em_err *err);
int tst_count_part(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                   em_err *err)
{
    (void)c;
    (void)index;
    em_rec r;
    int rc;
    int64_t n = 0;
    while ((rc = em_iter_next(in, &r, err)) == 1)
        n++;
    if (rc < 0)
        return rc;
    uint8_t b[8];
    return em_emit_val(out, tu_i64(b, n), err);
}

/* ---------------------------------------------------------------- helpers */

static em_rdd *kv_rdd(em_context *sc, const tu_kv *d, uint32_t nparts)
{
    return em_parallelize(sc, EM_REC_KV, 0, d->recs, d->n, nparts);
}

/* Reference reduce_by_key with sum over d. */
static tu_list ref_sum_by_key(const tu_kv *d)
{
    tu_list l = {0};
    char **keys = calloc(d->n + 1, sizeof *keys);
    int64_t *sums = calloc(d->n + 1, sizeof *sums);
    size_t nk = 0;
    for (size_t i = 0; i < d->n; i++) {
        size_t k;
        for (k = 0; k < nk && strcmp(keys[k], d->keys[i]) != 0; k++)
            ;
        if (k == nk)
            keys[nk++] = d->keys[i];
        sums[k] += em_dec_i64(d->vals[i]);
    }
    for (size_t k = 0; k < nk; k++) {
        uint8_t b[8];
        tu_add_rec(&l, em_slice_str(keys[k]), true, tu_i64(b, sums[k]));
    }
    free(keys);
    free(sums);
    return l;
}

/* ---------------------------------------------------------------- narrow */

Test(rdd, map_filter_range)
{
    em_context *sc = tu_ctx(NULL);
    em_slice none = em_slice_make(NULL, 0);
    em_rdd *r = em_range(sc, -50, 950, 3, 7);
    em_rdd *m = em_rdd_filter(em_rdd_map(r, "tst_double", none), "tst_is_even", none);
    tu_list want = {0};
    for (int64_t v = -50; v < 950; v += 3) {
        uint8_t b[8];
        tu_add_rec(&want, none, false, tu_i64(b, 2 * v));
    }
    tu_check(m, &want, true, "map+filter");
    em_context_free(sc);
}

Test(rdd, parallelize_more_parts_than_records_keeps_order)
{
    em_context *sc = tu_ctx(NULL);
    const char *words[] = {"héllo", "wörld", "日本語", "", "x"};
    em_rec recs[5];
    tu_list want = {0};
    for (int i = 0; i < 5; i++) {
        recs[i] = (em_rec){{NULL, 0}, em_slice_str(words[i])};
        tu_add_rec(&want, recs[i].key, false, recs[i].val);
    }
    em_rdd *r = em_parallelize(sc, EM_REC_BYTES, 0, recs, 5, 9);
    cr_assert_eq(em_rdd_num_partitions(r), 9);
    tu_check(r, &want, true, "parallelize");
    em_rdd *e = em_parallelize(sc, EM_REC_BYTES, 0, NULL, 0, 3);
    uint64_t n = 99;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_count(e, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 0);
    em_context_free(sc);
}

Test(rdd, union_coalesce_repartition_glom)
{
    em_context *sc = tu_ctx(NULL);
    em_rdd *a = em_range(sc, 0, 100, 1, 4), *b = em_range(sc, 100, 130, 1, 3);
    em_rdd *u = em_rdd_union(a, b);
    cr_assert_eq(em_rdd_num_partitions(u), 7);
    tu_list want = {0};
    for (int64_t v = 0; v < 130; v++) {
        uint8_t x[8];
        tu_add_rec(&want, em_slice_make(NULL, 0), false, tu_i64(x, v));
    }
    tu_list w2 = {0}, w3 = {0};
    for (size_t i = 0; i < want.n; i++) {
        tu_add(&w2, strdup(want.s[i]));
        tu_add(&w3, strdup(want.s[i]));
    }
    tu_check(u, &want, true, "union");
    em_rdd *c = em_rdd_coalesce(u, 3, false);
    cr_assert_eq(em_rdd_num_partitions(c), 3);
    cr_assert_eq(em_rdd_coalesce(u, 10, false), u);
    tu_check(c, &w2, true, "coalesce keeps order");
    em_rdd *rp = em_rdd_repartition(u, 5);
    cr_assert_eq(em_rdd_num_partitions(rp), 5);
    tu_check(rp, &w3, false, "repartition");
    em_records g;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(em_rdd_glom(u), &g, &err), 0, "%s", err.msg);
    cr_assert_eq(g.n, 7);
    em_list_iter it;
    cr_assert_eq(em_list_iter_init(&it, g.recs[4].val, &err), 0);
    cr_assert_eq(it.left, 10, "partition 4 of the union is b's partition 0 (10 records)");
    em_records_destroy(&g);
    em_context_free(sc);
}

Test(rdd, zip_with_index_and_cartesian)
{
    em_context *sc = tu_ctx(NULL);
    em_rdd *r = em_range(sc, 10, 30, 1, 4);
    em_records z;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(em_rdd_zip_with_index(r), &z, &err), 0, "%s", err.msg);
    cr_assert_eq(z.n, 20);
    for (size_t i = 0; i < z.n; i++) {
        cr_assert_eq(em_dec_i64(z.recs[i].val.p), (int64_t)i);
        cr_assert_eq(em_dec_i64(z.recs[i].key.p), (int64_t)i + 10);
    }
    em_records_destroy(&z);
    em_rdd *a = em_range(sc, 0, 3, 1, 2), *b = em_range(sc, 5, 9, 1, 3);
    em_rdd *cart = em_rdd_cartesian(a, b);
    cr_assert_eq(em_rdd_num_partitions(cart), 6);
    tu_list want = {0};
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 5; j < 9; j++) {
            uint8_t x[8], y[8];
            tu_add_rec(&want, tu_i64(x, i), true, tu_i64(y, j));
        }
    tu_check(cart, &want, false, "cartesian");
    em_context_free(sc);
}

Test(rdd, plan_errors_at_build_time)
{
    em_context *sc = tu_ctx(NULL);
    em_rdd *r = em_range(sc, 0, 10, 1, 2);
    em_rdd *bad = em_rdd_map(r, "no_such_function_anywhere", em_slice_make(NULL, 0));
    const em_err *e = em_rdd_error(bad);
    cr_assert_not_null(e);
    cr_assert_eq(e->code, EM_EPLAN, "code %d: %s", e->code, e->msg);
    cr_assert(strstr(e->msg, "no_such_function_anywhere"), "%s", e->msg);
    em_rdd *derived = em_rdd_reduce_by_key(em_rdd_key_by(bad, "tst_mod3", em_slice_make(NULL, 0)),
                                           "em.sum_i64", em_slice_make(NULL, 0), 3);
    cr_assert_not_null(em_rdd_error(derived));
    uint64_t n;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_count(derived, &n, &err), EM_EPLAN);
    cr_assert(strstr(err.msg, "no_such_function_anywhere"), "%s", err.msg);
    cr_assert_null(em_rdd_error(r));
    /* A reduce function of the wrong kind is a plan error too. */
    cr_assert_not_null(em_rdd_error(em_rdd_filter(r, "em.sum_i64", em_slice_make(NULL, 0))));
    cr_assert_eq(em_rdd_error(em_range(sc, 0, 10, 0, 2))->code, EM_EINVAL);
    cr_assert_not_null(em_rdd_error(em_text_file(sc, "/nonexistent/ember/*.txt", 0)));
    em_context_free(sc);
}

/* ---------------------------------------------------------------- pairs */

static void check_sum_by_key(const char *shuffle_mem)
{
    em_context *sc = tu_ctx(shuffle_mem);
    tu_kv d = tu_random_kv(3000, 200, 42);
    em_rdd *r = kv_rdd(sc, &d, 5);
    em_rdd *s = em_rdd_reduce_by_key(r, "em.sum_i64", em_slice_make(NULL, 0), 4);
    cr_assert_eq(em_rdd_partitioner(s), EM_PART_HASH);
    tu_list want = ref_sum_by_key(&d);
    tu_check(s, &want, false, "reduce_by_key");
    /* fold_by_key from zero 0 gives the same sums. */
    uint8_t z[8];
    want = ref_sum_by_key(&d);
    tu_check(em_rdd_fold_by_key(r, tu_i64(z, 0), "em.sum_i64", em_slice_make(NULL, 0), 3), &want,
             false, "fold_by_key");
    if (shuffle_mem) {
        em_context_stats st;
        em_context_stats_get(sc, &st);
        cr_assert_gt(st.spill_bytes, 0, "a 4k shuffle budget spills");
    }
    tu_kv_free(&d);
    em_context_free(sc);
}

Test(rdd, reduce_by_key_skewed)
{
    check_sum_by_key(NULL);
}

Test(rdd, reduce_by_key_spills_under_tiny_budget)
{
    check_sum_by_key("4k");
}

/* Canonical string of a (key, em_list) record with the list items sorted. */
static char *group_str(em_slice key, em_slice list)
{
    em_list_iter it;
    em_slice item;
    em_err err = EM_ERR_INIT;
    tu_list items = {0};
    cr_assert_eq(em_list_iter_init(&it, list, &err), 0);
    while (em_list_iter_next(&it, &item, &err) == 1)
        tu_add_rec(&items, em_slice_make(NULL, 0), false, item);
    qsort(items.s, items.n, sizeof *items.s, tu_cmp);
    size_t len = 64 + 2 * key.n;
    for (size_t i = 0; i < items.n; i++)
        len += strlen(items.s[i]) + 1;
    char *s = malloc(len), *p = s;
    char *k = tu_rec_str(em_slice_make(NULL, 0), false, key);
    p += sprintf(p, "%s=", k);
    free(k);
    for (size_t i = 0; i < items.n; i++)
        p += sprintf(p, "%s,", items.s[i]);
    tu_free(&items);
    return s;
}

Test(rdd, group_by_key_and_combine_by_key)
{
    em_context *sc = tu_ctx(NULL);
    tu_kv d = tu_random_kv(1000, 30, 7);
    em_rdd *r = kv_rdd(sc, &d, 4);
    for (int variant = 0; variant < 2; variant++) {
        em_rdd *g = variant == 0 ? em_rdd_group_by_key(r, 3)
                                 : em_rdd_combine_by_key(r, "em.to_list", "tst_append_list",
                                                         "em.concat_list",
                                                         em_slice_make(NULL, 0), 3);
        cr_assert_null(em_rdd_error(g), "%s", em_rdd_error(g) ? em_rdd_error(g)->msg : "");
        em_records got;
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_rdd_collect(g, &got, &err), 0, "%s", err.msg);
        tu_list gl = {0}, want = {0};
        for (size_t i = 0; i < got.n; i++)
            tu_add(&gl, group_str(got.recs[i].key, got.recs[i].val));
        /* reference: group sequentially */
        for (size_t i = 0; i < d.n; i++) {
            bool first = true;
            for (size_t j = 0; j < i; j++)
                if (strcmp(d.keys[i], d.keys[j]) == 0)
                    first = false;
            if (!first)
                continue;
            em_vbuf b;
            em_vbuf_init(&b);
            int64_t off = em_list_begin(&b);
            uint32_t cnt = 0;
            for (size_t j = i; j < d.n; j++)
                if (strcmp(d.keys[i], d.keys[j]) == 0) {
                    em_list_append(&b, em_slice_make(d.vals[j], 8));
                    cnt++;
                }
            em_list_end(&b, off, cnt);
            tu_add(&want, group_str(em_slice_str(d.keys[i]), em_slice_make(b.data, b.len)));
            em_vbuf_destroy(&b);
        }
        tu_expect(&gl, &want, false, variant ? "combine_by_key" : "group_by_key");
        tu_free(&gl);
        tu_free(&want);
        em_records_destroy(&got);
    }
    tu_kv_free(&d);
    em_context_free(sc);
}

int tst_append_list(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int tst_append_list(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    if (a.n < 4)
        return em_err_set(err, EM_ECORRUPT, "short list");
    uint32_t n = em_load_le32(a.p);
    int64_t off = em_list_begin(out);
    if (off < 0 || em_vbuf_append(out, a.p + 4, a.n - 4) < 0 || em_list_append(out, b) < 0)
        return EM_ENOMEM;
    em_list_end(out, off, n + 1);
    return 0;
}

Test(rdd, joins_match_reference)
{
    em_context *sc = tu_ctx(NULL);
    tu_kv a = tu_random_kv(120, 40, 1), b = tu_random_kv(90, 60, 2);
    em_rdd *ra = kv_rdd(sc, &a, 3), *rb = kv_rdd(sc, &b, 2);
    const uint32_t flags[4] = {0, 1, 2, 3};   /* inner, left, right, full */
    for (int f = 0; f < 4; f++) {
        em_rdd *j = f == 0 ? em_rdd_join(ra, rb, 4)
                    : f == 1 ? em_rdd_left_outer_join(ra, rb, 4)
                    : f == 2 ? em_rdd_right_outer_join(ra, rb, 0)
                             : em_rdd_full_outer_join(ra, rb, 5);
        tu_list want = {0};
        for (int side = 0; side < 2; side++) {
            const tu_kv *x = side ? &b : &a, *y = side ? &a : &b;
            for (size_t i = 0; i < x->n; i++) {
                bool match = false;
                for (size_t k = 0; k < y->n; k++) {
                    if (strcmp(x->keys[i], y->keys[k]) != 0)
                        continue;
                    match = true;
                    if (side == 1)
                        continue;   /* inner rows once, from a's side */
                    em_vbuf v;
                    em_vbuf_init(&v);
                    em_slice l = em_slice_make(x->vals[i], 8), r = em_slice_make(y->vals[k], 8);
                    em_pair_append(&v, &l, &r);
                    tu_add_rec(&want, x->recs[i].key, true, em_slice_make(v.data, v.len));
                    em_vbuf_destroy(&v);
                }
                bool outer = side == 0 ? (flags[f] & 1) : (flags[f] & 2);
                if (!match && outer) {
                    em_vbuf v;
                    em_vbuf_init(&v);
                    em_slice s = em_slice_make(x->vals[i], 8);
                    em_pair_append(&v, side ? NULL : &s, side ? &s : NULL);
                    tu_add_rec(&want, x->recs[i].key, true, em_slice_make(v.data, v.len));
                    em_vbuf_destroy(&v);
                }
            }
        }
        tu_check(j, &want, false, "join");
    }
    /* co-partitioned inputs: cogroup shuffles nothing more */
    em_rdd *pa = em_rdd_partition_by(ra, EM_PART_HASH, 4);
    em_rdd *pb = em_rdd_partition_by(rb, EM_PART_HASH, 4);
    cr_assert_eq(em_rdd_partition_by(pa, EM_PART_HASH, 4), pa);
    uint64_t n1, n2;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_count(em_rdd_join(ra, rb, 4), &n1, &err), 0, "%s", err.msg);
    cr_assert_eq(em_rdd_count(pa, &n2, &err), 0);
    cr_assert_eq(em_rdd_count(pb, &n2, &err), 0);
    em_context_stats s0, s1;
    em_context_stats_get(sc, &s0);
    cr_assert_eq(em_rdd_count(em_rdd_join(pa, pb, 4), &n2, &err), 0, "%s", err.msg);
    em_context_stats_get(sc, &s1);
    cr_assert_eq(n1, n2);
    cr_assert_eq(s1.map_tasks_run, s0.map_tasks_run, "co-partitioned join ran map tasks");
    tu_kv_free(&a);
    tu_kv_free(&b);
    em_context_free(sc);
}

static int cmp_slice_rec(const void *x, const void *y)
{
    return em_slice_cmp(((const em_rec *)x)->key, ((const em_rec *)y)->key);
}

Test(rdd, sort_by_key_both_directions)
{
    em_context *sc = tu_ctx(NULL);
    tu_kv d = tu_random_kv(2000, 500, 9);
    em_rdd *r = kv_rdd(sc, &d, 6);
    for (int asc = 0; asc < 2; asc++) {
        em_rdd *s = em_rdd_sort_by_key(r, asc, 4);
        cr_assert_null(em_rdd_error(s));
        cr_assert_eq(em_rdd_partitioner(s), EM_PART_RANGE);
        em_records got;
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_rdd_collect(s, &got, &err), 0, "%s", err.msg);
        cr_assert_eq(got.n, d.n);
        for (size_t i = 1; i < got.n; i++) {
            int c = em_slice_cmp(got.recs[i - 1].key, got.recs[i].key);
            cr_assert(asc ? c <= 0 : c >= 0, "record %zu out of order", i);
        }
        /* same multiset of records */
        tu_list gl = tu_from_records(&got), want = {0};
        for (size_t i = 0; i < d.n; i++)
            tu_add_rec(&want, d.recs[i].key, true, d.recs[i].val);
        tu_expect(&gl, &want, false, "sort_by_key content");
        tu_free(&gl);
        tu_free(&want);
        em_records_destroy(&got);
    }
    (void)cmp_slice_rec;
    /* sort_by over plain records with a key function */
    em_rdd *p = em_range(sc, 0, 60, 1, 3);
    em_rdd *sb = em_rdd_sort_by(p, "tst_neg", em_slice_make(NULL, 0), true, 2);
    tu_list want = {0};
    for (int64_t v = 59; v >= 0; v--) {
        uint8_t x[8];
        tu_add_rec(&want, em_slice_make(NULL, 0), false, tu_i64(x, v));
    }
    tu_check(sb, &want, true, "sort_by");
    tu_kv_free(&d);
    em_context_free(sc);
}

Test(rdd, distinct_values_keys_map_values)
{
    em_context *sc = tu_ctx(NULL);
    const char *w[] = {"a", "ß", "a", "日本", "b", "ß", "a", ""};
    em_rec recs[8];
    for (int i = 0; i < 8; i++)
        recs[i] = (em_rec){{NULL, 0}, em_slice_str(w[i])};
    em_rdd *r = em_parallelize(sc, EM_REC_BYTES, 0, recs, 8, 3);
    tu_list want = {0};
    const char *u[] = {"a", "ß", "日本", "b", ""};
    for (int i = 0; i < 5; i++)
        tu_add_rec(&want, em_slice_make(NULL, 0), false, em_slice_str(u[i]));
    tu_check(em_rdd_distinct(r, 2), &want, false, "distinct");

    tu_kv d = tu_random_kv(300, 20, 3);
    em_rdd *kv = kv_rdd(sc, &d, 3);
    tu_list wk = {0}, wv = {0}, wm = {0};
    for (size_t i = 0; i < d.n; i++) {
        uint8_t x[8];
        tu_add_rec(&wk, em_slice_make(NULL, 0), false, d.recs[i].key);
        tu_add_rec(&wv, em_slice_make(NULL, 0), false, d.recs[i].val);
        tu_add_rec(&wm, d.recs[i].key, true, tu_i64(x, -em_dec_i64(d.vals[i])));
    }
    tu_check(em_rdd_keys(kv), &wk, true, "keys");
    tu_check(em_rdd_values(kv), &wv, true, "values");
    em_rdd *grouped = em_rdd_partition_by(kv, EM_PART_HASH, 3);
    em_rdd *mv = em_rdd_map_values(grouped, "tst_neg", em_slice_make(NULL, 0));
    cr_assert_eq(em_rdd_partitioner(mv), EM_PART_HASH, "map_values keeps the partitioner");
    tu_check(mv, &wm, false, "map_values");
    /* distinct of pairs keeps them pairs */
    tu_list wd = {0};
    em_records all;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(em_rdd_distinct(kv, 0), &all, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < all.n; i++)
        cr_assert_not_null(all.recs[i].key.p, "distinct of pairs gives pairs");
    em_records_destroy(&all);
    tu_free(&wd);
    tu_kv_free(&d);
    em_context_free(sc);
}

Test(rdd, huge_record_through_shuffle)
{
    em_context *sc = tu_ctx(NULL);
    size_t big = 2u << 20;
    uint8_t *v = malloc(big);
    for (size_t i = 0; i < big; i++)
        v[i] = (uint8_t)(i * 31);
    em_rec recs[3] = {{em_slice_str("big"), em_slice_make(v, big)},
                      {em_slice_str("small"), em_slice_str("x")},
                      {em_slice_str("big"), em_slice_str("y")}};
    em_rdd *r = em_parallelize(sc, EM_REC_KV, 0, recs, 3, 2);
    em_records got;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(em_rdd_group_by_key(r, 2), &got, &err), 0, "%s", err.msg);
    cr_assert_eq(got.n, 2);
    bool seen = false;
    for (size_t i = 0; i < got.n; i++) {
        if (!em_slice_eq(got.recs[i].key, em_slice_str("big")))
            continue;
        em_list_iter it;
        em_slice item;
        cr_assert_eq(em_list_iter_init(&it, got.recs[i].val, &err), 0);
        while (em_list_iter_next(&it, &item, &err) == 1)
            if (item.n == big)
                seen = memcmp(item.p, v, big) == 0;
    }
    cr_assert(seen, "the 2 MiB value came through intact");
    em_records_destroy(&got);
    free(v);
    em_context_free(sc);
}

Test(rdd, text_file_and_whole_text_files)
{
    char dir[] = "/tmp/ember-api-text-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char p[256];
    snprintf(p, sizeof p, "%s/a.txt", dir);
    FILE *f = fopen(p, "w");
    fputs("héllo wörld\r\nline two\n\nlast", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/b.txt", dir);
    f = fopen(p, "w");
    fclose(f);
    snprintf(p, sizeof p, "%s/_SUCCESS", dir);
    f = fopen(p, "w");
    fputs("ignored\n", f);
    fclose(f);
    em_context *sc = tu_ctx(NULL);
    em_rdd *t = em_text_file(sc, dir, 3);
    cr_assert_null(em_rdd_error(t), "%s", em_rdd_error(t) ? em_rdd_error(t)->msg : "");
    tu_list want = {0};
    const char *lines[] = {"héllo wörld", "line two", "", "last"};
    for (int i = 0; i < 4; i++)
        tu_add_rec(&want, em_slice_make(NULL, 0), false, em_slice_str(lines[i]));
    tu_check(t, &want, true, "text_file");
    em_rdd *w = em_whole_text_files(sc, dir, 0);
    em_records got;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(w, &got, &err), 0, "%s", err.msg);
    cr_assert_eq(got.n, 2);
    cr_assert_eq(got.recs[1].val.n, 0, "b.txt is empty");
    em_records_destroy(&got);
    em_context_free(sc);
    cr_assert_eq(em_rm_rf(dir, &err), 0);
}

/* The test functions, registered by name from a table before any test runs (the engine
 * does not search the program's own symbols). */
static const em_fn_entry test_fns[] = {
    {"tst_double", EM_FN_MAP, EM_FN(tst_double)},
    {"tst_is_even", EM_FN_FILTER, EM_FN(tst_is_even)},
    {"tst_neg", EM_FN_MAP, EM_FN(tst_neg)},
    {"tst_mod3", EM_FN_MAP, EM_FN(tst_mod3)},
    {"tst_count_part", EM_FN_PARTITION, EM_FN(tst_count_part)},
    {"tst_append_list", EM_FN_REDUCE, EM_FN(tst_append_list)},
};

__attribute__((constructor)) static void register_test_fns(void)
{
    if (em_fn_register_table(test_fns, sizeof test_fns / sizeof test_fns[0]) != 0)
        abort();
}
