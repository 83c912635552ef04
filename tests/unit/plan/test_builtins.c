/* tests/unit/plan/test_builtins.c - every built-in function against hand-computed
 * expectations (run through a one-node pipeline), and registry resolution errors. */
#include "tests/unit/exec/exec_test_util.h"

int t_dup_target(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int t_dup_target(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    return em_emit(out, in, err);
}

/* Runs MAP/FILTER `fn` (blob) over the given records (one partition), into got. */
static void run_fn(em_op op, const char *fn, const char *blob, size_t blob_len, em_rec_kind kind,
                   const em_rec *recs, size_t n, trecs *got)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *p = tn(g, EM_OP_PARALLELIZE, 1, NULL, NULL);
    te_put_input(&te, p->id, 0, kind, 0, recs, n);
    em_plan_node *m = tn(g, op, 1, p, NULL);
    tn_fn(m, fn, blob, blob_len);
    te_collect(&te, m, got);
    em_plan_graph_free(g);
    te_destroy(&te);
}

#define S(x) em_slice_make(x, sizeof(x) - 1)
#define KV(k, v) {S(k), S(v)}
#define V(v) {{NULL, 0}, S(v)}

static const uint8_t ONE[8] = {0x80, 0, 0, 0, 0, 0, 0, 1};

Test(builtins, split_words)
{
    em_rec in[] = {V("  hello\tw\xc3\xb6rld\r\n x  "), V(""), V("one")};
    trecs got = {0}, want = {0};
    run_fn(EM_OP_MAP, "em.split_words", NULL, 0, EM_REC_BYTES, in, 3, &got);
    trecs_add(&want, false, NULL, 0, "hello", 5);
    trecs_add(&want, false, NULL, 0, "w\xc3\xb6rld", 6);
    trecs_add(&want, false, NULL, 0, "x", 1);
    trecs_add(&want, false, NULL, 0, "one", 3);
    trecs_assert_eq(&got, &want, false, "split_words");
    trecs_free(&got);
    trecs_free(&want);
}

Test(builtins, kv_maps)
{
    em_rec in[] = {KV("k1", "v1"), KV("", "v2")};
    trecs got = {0}, want = {0};
    run_fn(EM_OP_MAP, "em.keys", NULL, 0, EM_REC_KV, in, 2, &got);
    trecs_add(&want, false, NULL, 0, "k1", 2);
    trecs_add(&want, false, NULL, 0, "", 0);
    trecs_assert_eq(&got, &want, false, "keys");
    trecs_free(&got);
    trecs_free(&want);
    run_fn(EM_OP_MAP, "em.values", NULL, 0, EM_REC_KV, in, 2, &got);
    trecs_add(&want, false, NULL, 0, "v1", 2);
    trecs_add(&want, false, NULL, 0, "v2", 2);
    trecs_assert_eq(&got, &want, false, "values");
    trecs_free(&got);
    trecs_free(&want);
    run_fn(EM_OP_MAP, "em.swap", NULL, 0, EM_REC_KV, in, 2, &got);
    trecs_add(&want, true, "v1", 2, "k1", 2);
    trecs_add(&want, true, "v2", 2, "", 0);
    trecs_assert_eq(&got, &want, false, "swap");
    trecs_free(&got);
    trecs_free(&want);
    run_fn(EM_OP_MAP, "em.key_with_one", NULL, 0, EM_REC_KV, in, 2, &got);
    trecs_add(&want, true, "k1", 2, ONE, 8);
    trecs_add(&want, true, "", 0, ONE, 8);
    trecs_assert_eq(&got, &want, false, "key_with_one");
    trecs_free(&got);
    trecs_free(&want);
    run_fn(EM_OP_MAP, "em.identity", NULL, 0, EM_REC_KV, in, 2, &got);
    trecs_add(&want, true, "k1", 2, "v1", 2);
    trecs_add(&want, true, "", 0, "v2", 2);
    trecs_assert_eq(&got, &want, false, "identity");
    trecs_free(&got);
    trecs_free(&want);
    /* pair_with_one of a KV record: key is em_pair(k, v) */
    run_fn(EM_OP_MAP, "em.pair_with_one", NULL, 0, EM_REC_KV, in, 1, &got);
    static const uint8_t pk[] = {3, 2, 0, 0, 0, 'k', '1', 2, 0, 0, 0, 'v', '1'};
    trecs_add(&want, true, pk, sizeof pk, ONE, 8);
    trecs_assert_eq(&got, &want, false, "pair_with_one kv");
    trecs_free(&got);
    trecs_free(&want);
    /* record_from_key with "kv": the key holds a pair-encoded record */
    em_rec stored[] = {{em_slice_make(pk, sizeof pk), S("x")}};
    run_fn(EM_OP_MAP, "em.record_from_key", "kv", 2, EM_REC_KV, stored, 1, &got);
    trecs_add(&want, true, "k1", 2, "v1", 2);
    trecs_assert_eq(&got, &want, false, "record_from_key");
    trecs_free(&got);
    trecs_free(&want);
    run_fn(EM_OP_MAP, "em.record_from_value", NULL, 0, EM_REC_KV, stored, 1, &got);
    trecs_add(&want, false, NULL, 0, "x", 1);
    trecs_assert_eq(&got, &want, false, "record_from_value");
    trecs_free(&got);
    trecs_free(&want);
}

Test(builtins, plain_maps_and_filter)
{
    em_rec in[] = {V("a\tb\tc"), V("plain"), V("")};
    trecs got = {0}, want = {0};
    run_fn(EM_OP_MAP, "em.lines_to_pairs", NULL, 0, EM_REC_BYTES, in, 3, &got);
    trecs_add(&want, true, "a", 1, "b\tc", 3);
    trecs_add(&want, true, "plain", 5, "", 0);
    trecs_add(&want, true, "", 0, "", 0);
    trecs_assert_eq(&got, &want, false, "lines_to_pairs");
    trecs_free(&got);
    trecs_free(&want);
    run_fn(EM_OP_MAP, "em.pair_with_one", NULL, 0, EM_REC_BYTES, in, 2, &got);
    trecs_add(&want, true, "a\tb\tc", 5, ONE, 8);
    trecs_add(&want, true, "plain", 5, ONE, 8);
    trecs_assert_eq(&got, &want, false, "pair_with_one");
    trecs_free(&got);
    trecs_free(&want);
    run_fn(EM_OP_MAP, "em.pair_with_empty", NULL, 0, EM_REC_BYTES, in, 1, &got);
    trecs_add(&want, true, "a\tb\tc", 5, "", 0);
    trecs_assert_eq(&got, &want, false, "pair_with_empty");
    trecs_free(&got);
    trecs_free(&want);
    em_rec kv[] = {KV("x", "1"), KV("y", "2"), KV("x", "3")};
    run_fn(EM_OP_FILTER, "em.key_equals", "x", 1, EM_REC_KV, kv, 3, &got);
    trecs_add(&want, true, "x", 1, "1", 1);
    trecs_add(&want, true, "x", 1, "3", 1);
    trecs_assert_eq(&got, &want, false, "key_equals");
    trecs_free(&got);
    trecs_free(&want);
}

static em_reduce_fn reducer(const char *name)
{
    em_any_fn f;
    em_err err = EM_ERR_INIT;
    em_registry_init_builtins();
    cr_assert_eq(em_registry_resolve(name, EM_FN_REDUCE, &f, &err), 0, "%s", err.msg);
    return (em_reduce_fn)f;
}

static int64_t red_i64(const char *name, int64_t a, int64_t b)
{
    uint8_t x[8], y[8];
    em_vbuf out;
    em_err err = EM_ERR_INIT;
    em_fn_ctx c = {{NULL, 0}, NULL};
    em_vbuf_init(&out);
    cr_assert_eq(reducer(name)(&c, em_slice_make(enc64(x, a), 8), em_slice_make(enc64(y, b), 8),
                               &out, &err), 0);
    cr_assert_eq(out.len, 8);
    int64_t r = em_dec_i64(out.data);
    em_vbuf_destroy(&out);
    return r;
}

Test(builtins, reduces)
{
    cr_assert_eq(red_i64("em.sum_i64", -5, 12), 7);
    cr_assert_eq(red_i64("em.min_i64", -5, 12), -5);
    cr_assert_eq(red_i64("em.max_i64", -5, 12), 12);
    cr_assert_eq(red_i64("em.first", -5, 12), -5);
    em_fn_ctx c = {{NULL, 0}, NULL};
    em_err err = EM_ERR_INIT;
    em_vbuf out;
    em_vbuf_init(&out);
    uint8_t a[8], b[8];
    em_enc_f64(a, 1.25);
    em_enc_f64(b, -0.5);
    cr_assert_eq(reducer("em.sum_f64")(&c, em_slice_make(a, 8), em_slice_make(b, 8), &out,
                                       &err), 0);
    cr_assert_eq(em_dec_f64(out.data), 0.75);
    em_vbuf_clear(&out);
    cr_assert_eq(reducer("em.min_bytes")(&c, S("ab"), S("a"), &out, &err), 0);
    cr_assert(out.len == 1 && out.data[0] == 'a');
    em_vbuf_clear(&out);
    cr_assert_eq(reducer("em.max_bytes")(&c, S("ab"), S("b"), &out, &err), 0);
    cr_assert(out.len == 1 && out.data[0] == 'b');
    em_vbuf_clear(&out);
    cr_assert_eq(reducer("em.sum_i64")(&c, S("abc"), S("abcdefgh"), &out, &err), EM_ECORRUPT);
    /* to_list + concat_list */
    em_any_fn f;
    cr_assert_eq(em_registry_resolve("em.to_list", EM_FN_CREATE, &f, &err), 0);
    em_vbuf l1, l2;
    em_vbuf_init(&l1);
    em_vbuf_init(&l2);
    cr_assert_eq(((em_create_fn)f)(&c, S("x"), &l1, &err), 0);
    cr_assert_eq(((em_create_fn)f)(&c, S("yz"), &l2, &err), 0);
    em_vbuf_clear(&out);
    cr_assert_eq(reducer("em.concat_list")(&c, em_slice_make(l1.data, l1.len),
                                           em_slice_make(l2.data, l2.len), &out, &err), 0);
    static const uint8_t want[] = {2, 0, 0, 0, 1, 0, 0, 0, 'x', 2, 0, 0, 0, 'y', 'z'};
    cr_assert(out.len == sizeof want && memcmp(out.data, want, sizeof want) == 0);
    em_vbuf_clear(&out);
    cr_assert_eq(reducer("em.concat_list")(&c, S("\x05\0\0\0"), em_slice_make(l2.data, l2.len),
                                           &out, &err), EM_ECORRUPT);
    em_vbuf_destroy(&l1);
    em_vbuf_destroy(&l2);
    em_vbuf_destroy(&out);
}

Test(builtins, aggregate_partition)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *r = tn(g, EM_OP_RANGE, 3, NULL, NULL);
    r->range_end = 30;
    r->range_step = 1;
    em_plan_node *m = tn(g, EM_OP_MAP_PARTITIONS, 3, r, NULL);
    em_vbuf blob;
    em_vbuf_init(&blob);
    uint8_t zero[8];
    em_vbuf_append_u32le(&blob, 10);
    em_vbuf_append(&blob, "em.sum_i64", 10);
    em_vbuf_append_u32le(&blob, 8);
    em_vbuf_append(&blob, enc64(zero, 100), 8);
    em_vbuf_append_u32le(&blob, 0);
    em_vbuf_append_u32le(&blob, 2);
    tn_fn(m, "em.aggregate_partition", blob.data, blob.len);
    trecs got = {0}, want = {0};
    te_collect(&te, m, &got);
    static const int64_t sums[3] = {100 + 45, 100 + 145, 100 + 245};
    for (int i = 0; i < 3; i++) {
        uint8_t k[8], v[8];
        trecs_add(&want, true, enc64(k, i % 2), 8, enc64(v, sums[i]), 8);
    }
    trecs_assert_eq(&got, &want, false, "aggregate_partition");
    trecs_free(&got);
    trecs_free(&want);
    em_vbuf_destroy(&blob);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(registry, resolve_errors_and_duplicates)
{
    em_any_fn f;
    em_err err = EM_ERR_INIT;
    em_registry_init_builtins();
    em_registry_init_builtins();   /* idempotent */
    cr_assert_eq(em_registry_resolve("em.sum_i64", EM_FN_MAP, &f, &err), EM_EPLAN);
    cr_assert_str_eq(err.msg, "function 'em.sum_i64' is a reduce function, not a map function");
    cr_assert_eq(em_registry_resolve("nope_nothing", EM_FN_MAP, &f, &err), EM_EPLAN);
    cr_assert_str_eq(err.msg, "function 'nope_nothing' is not registered and no loaded job "
                              "library exports it");
    cr_assert_eq(em_fn_register("em.identity", EM_FN_MAP, (em_any_fn)t_dup_target), EM_EINVAL);
    cr_assert_eq(em_fn_register("t.mine", EM_FN_MAP, (em_any_fn)t_dup_target), 0);
    cr_assert_eq(em_registry_resolve("t.mine", EM_FN_MAP, &f, &err), 0);
    cr_assert(f == (em_any_fn)t_dup_target);
    /* the program's own symbols are not searched, exported or not */
    cr_assert_eq(em_registry_resolve("t_dup_target", EM_FN_MAP, &f, &err), EM_EPLAN);
}

/* ---------------------------------------------------------------- tagged records */

Test(builtins, tagged_records_round_trip_and_corrupt_tags)
{
    /* tag_with_empty of a plain and a KV record */
    em_rec plain[] = {V("ab")};
    em_rec kv[] = {KV("k1", "v1")};
    trecs got = {0}, want = {0};
    run_fn(EM_OP_MAP, "em.tag_with_empty", NULL, 0, EM_REC_BYTES, plain, 1, &got);
    trecs_add(&want, true, "\0ab", 3, "", 0);
    trecs_assert_eq(&got, &want, false, "tag plain");
    trecs_free(&got);
    trecs_free(&want);
    run_fn(EM_OP_MAP, "em.tag_with_empty", NULL, 0, EM_REC_KV, kv, 1, &got);
    static const uint8_t tk[] = {1, 3, 2, 0, 0, 0, 'k', '1', 2, 0, 0, 0, 'v', '1'};
    trecs_add(&want, true, tk, sizeof tk, "", 0);
    trecs_assert_eq(&got, &want, false, "tag kv");
    trecs_free(&got);
    trecs_free(&want);
    /* and back, from the key and from the value */
    em_rec stored[] = {{em_slice_make(tk, sizeof tk), S("\0xy")}};
    run_fn(EM_OP_MAP, "em.record_from_tagged_key", NULL, 0, EM_REC_KV, stored, 1, &got);
    trecs_add(&want, true, "k1", 2, "v1", 2);
    trecs_assert_eq(&got, &want, false, "record_from_tagged_key");
    trecs_free(&got);
    trecs_free(&want);
    run_fn(EM_OP_MAP, "em.record_from_tagged_value", NULL, 0, EM_REC_KV, stored, 1, &got);
    trecs_add(&want, false, NULL, 0, "xy", 2);
    trecs_assert_eq(&got, &want, false, "record_from_tagged_value");
    trecs_free(&got);
    trecs_free(&want);
    /* untrusted bytes: empty, unknown tag, broken pair, not a pair (fail before emitting) */
    em_any_fn f;
    em_err err = EM_ERR_INIT;
    em_registry_init_builtins();
    cr_assert_eq(em_registry_resolve("em.record_from_tagged_key", EM_FN_MAP, &f, &err), 0);
    em_fn_ctx c = {{NULL, 0}, NULL};
    const em_rec bad[] = {{S(""), S("")}, {S("\x02x"), S("")}, {S("\x01\x03\x09"), S("")},
                          {{NULL, 0}, S("\0x")}};
    const int code[] = {EM_ECORRUPT, EM_ECORRUPT, EM_ECORRUPT, EM_EINVAL};
    for (int i = 0; i < 4; i++) {
        em_err e = EM_ERR_INIT;
        cr_assert_eq(((em_map_fn)f)(&c, &bad[i], NULL, &e), code[i], "case %d: %s", i, e.msg);
        cr_assert_not_null(strstr(e.msg, "em.record_from_tagged_key"), "%s", e.msg);
    }
}

Test(builtins, merge8_kernels_match_the_reducers)
{
    const char *names[] = {"em.sum_i64", "em.min_i64", "em.max_i64", "em.first",
                           "em.sum_f64"};
    em_rng rng;
    em_rng_seed(&rng, 42);
    em_fn_ctx c = {{NULL, 0}, NULL};
    for (size_t f = 0; f < 5; f++) {
        em_reduce_fn fn = reducer(names[f]);
        em_merge8_fn k = em_builtin_merge8((em_any_fn)fn);
        cr_assert_not_null(k, "%s has a kernel", names[f]);
        for (int i = 0; i < 200; i++) {
            uint8_t a[8], b[8];
            if (f == 4) {
                em_enc_f64(a, (double)(int64_t)em_rng_next(&rng) / 1e9);
                em_enc_f64(b, (double)(int64_t)em_rng_next(&rng) / 1e9);
            } else {
                /* includes overflow: the wrapping sum must agree */
                em_enc_i64(a, i < 4 ? INT64_MAX - i : (int64_t)em_rng_next(&rng));
                em_enc_i64(b, i < 4 ? i + 1 : (int64_t)em_rng_next(&rng));
            }
            em_vbuf out;
            em_err err = EM_ERR_INIT;
            em_vbuf_init(&out);
            cr_assert_eq(fn(&c, em_slice_make(a, 8), em_slice_make(b, 8), &out, &err), 0);
            k(a, b);
            cr_assert_eq(out.len, 8);
            cr_assert_eq(memcmp(out.data, a, 8), 0, "%s case %d", names[f], i);
            em_vbuf_destroy(&out);
        }
    }
    cr_assert_null(em_builtin_merge8((em_any_fn)reducer("em.min_bytes")));
    cr_assert_null(em_builtin_merge8((em_any_fn)reducer("em.concat_list")));
}
