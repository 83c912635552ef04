/* tests/unit/api/test_tagged.c - record kinds carried at run time (distinct and sort_by
 * after a user map that turns plain records into pairs) and fused narrow chains (several
 * MAP/FILTER nodes run as one iterator: results, error attribution, a function that
 * ignores em_emit's error), master local[2], against references computed here. */
#include <string.h>

#include "api_test_util.h"

TestSuite(tagged, .timeout = 60);

/* ---------------------------------------------------------------- test functions (registered at the end of the file) */

/* "k=v" -> (k, v); anything else stays a plain record. The planner cannot know. */
int tg_split_eq(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tg_split_eq(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    const uint8_t *eq = in->val.n ? memchr(in->val.p, '=', in->val.n) : NULL;
    if (!eq)
        return em_emit_val(out, in->val, err);
    size_t k = (size_t)(eq - in->val.p);
    return em_emit_kv(out, em_slice_make(in->val.p, k),
                      em_slice_make(eq + 1, in->val.n - k - 1), err);
}

/* Sort key: the value of a pair, the record of a plain one. */
int tg_sort_key(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tg_sort_key(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    return em_emit_val(out, in->val, err);
}

/* i64 x -> x, x + 1000 (two records). */
int tg_dup(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tg_dup(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    uint8_t b[8];
    int64_t x = em_dec_i64(in->val.p);
    int rc = em_emit_val(out, tu_i64(b, x), err);
    return rc < 0 ? rc : em_emit_val(out, tu_i64(b, x + 1000), err);
}

int tg_not_mult5(const em_fn_ctx *c, const em_rec *in, em_err *err);
int tg_not_mult5(const em_fn_ctx *c, const em_rec *in, em_err *err)
{
    (void)c;
    (void)err;
    return em_dec_i64(in->val.p) % 5 != 0;
}

/* key_by: the value mod 7. */
int tg_mod7(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tg_mod7(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    uint8_t b[8];
    return em_emit_val(out, tu_i64(b, em_dec_i64(in->val.p) % 7), err);
}

/* Fails on the value 1234. */
int tg_fail_1234(const em_fn_ctx *c, const em_rec *in, em_err *err);
int tg_fail_1234(const em_fn_ctx *c, const em_rec *in, em_err *err)
{
    (void)c;
    if (em_dec_i64(in->val.p) == 1234)
        return em_err_set(err, EM_EINVAL, "tg_fail_1234 saw 1234");
    return 1;
}

/* Emits its input and ignores what em_emit returns (a broken function). */
int tg_ignore_emit(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tg_ignore_emit(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    (void)em_emit(out, in, err);
    return 0;
}

/* ---------------------------------------------------------------- record kinds */

static em_rdd *words(em_context *sc, const char *const *w, size_t n, uint32_t nparts)
{
    em_rec recs[16];
    cr_assert(n <= 16);
    for (size_t i = 0; i < n; i++)
        recs[i] = (em_rec){{NULL, 0}, em_slice_str(w[i])};
    return em_parallelize(sc, EM_REC_BYTES, 0, recs, n, nparts);
}

Test(tagged, distinct_after_user_map_to_pairs)
{
    em_context *sc = tu_ctx(NULL);
    const char *w[] = {"a=1", "b=2", "a=1", "plain", "a=2", "plain", "=", "b=2", "x"};
    em_rdd *m = em_rdd_map(words(sc, w, 9, 3), "tg_split_eq", em_slice_make(NULL, 0));
    tu_list want = {0};
    tu_add_rec(&want, em_slice_str("a"), true, em_slice_str("1"));
    tu_add_rec(&want, em_slice_str("b"), true, em_slice_str("2"));
    tu_add_rec(&want, em_slice_str("a"), true, em_slice_str("2"));
    tu_add_rec(&want, em_slice_str(""), true, em_slice_str(""));
    tu_add_rec(&want, em_slice_make(NULL, 0), false, em_slice_str("plain"));
    tu_add_rec(&want, em_slice_make(NULL, 0), false, em_slice_str("x"));
    tu_check(em_rdd_distinct(m, 2), &want, false, "distinct of mixed kinds");
    em_context_free(sc);
}

Test(tagged, sort_by_after_user_map_to_pairs)
{
    em_context *sc = tu_ctx(NULL);
    const char *w[] = {"k=5", "j=3", "z", "a=9", "m=1", "b"};
    em_rdd *m = em_rdd_map(words(sc, w, 6, 2), "tg_split_eq", em_slice_make(NULL, 0));
    tu_list want = {0};
    /* sorted by value: "1" < "3" < "5" < "9" < "b" < "z" */
    tu_add_rec(&want, em_slice_str("m"), true, em_slice_str("1"));
    tu_add_rec(&want, em_slice_str("j"), true, em_slice_str("3"));
    tu_add_rec(&want, em_slice_str("k"), true, em_slice_str("5"));
    tu_add_rec(&want, em_slice_str("a"), true, em_slice_str("9"));
    tu_add_rec(&want, em_slice_make(NULL, 0), false, em_slice_str("b"));
    tu_add_rec(&want, em_slice_make(NULL, 0), false, em_slice_str("z"));
    tu_check(em_rdd_sort_by(m, "tg_sort_key", em_slice_make(NULL, 0), true, 2), &want, true,
             "sort_by of mixed kinds");
    /* user-facing key_by keeps its untagged value: the record as bytes */
    em_rdd *kb = em_rdd_key_by(words(sc, w + 2, 1, 1), "tg_sort_key", em_slice_make(NULL, 0));
    tu_list wk = {0};
    tu_add_rec(&wk, em_slice_str("z"), true, em_slice_str("z"));
    tu_check(kb, &wk, false, "key_by value");
    em_context_free(sc);
}

/* ---------------------------------------------------------------- fused chains */

Test(tagged, fused_chain_matches_reference)
{
    em_context *sc = tu_ctx(NULL);
    em_slice none = em_slice_make(NULL, 0);
    /* range -> flat_map dup -> filter (cached) -> key_by mod7 -> keys -> pair_with_one */
    em_rdd *r = em_range(sc, 0, 400, 1, 3);
    em_rdd *d = em_rdd_filter(em_rdd_flat_map(r, "tg_dup", none), "tg_not_mult5", none);
    em_rdd *k = em_rdd_key_by(em_rdd_cache(d), "tg_mod7", none);
    int64_t ref[7] = {0};
    int64_t cnt = 0;
    for (int64_t x = 0; x < 400; x++)
        for (int64_t y = x; y <= x + 1000; y += 1000)
            if (y % 5 != 0) {
                cnt++;
                ref[y % 7] += 1;
            }
    em_err err = EM_ERR_INIT;
    uint64_t n = 0;
    cr_assert_eq(em_rdd_count(k, &n, &err), 0, "%s", err.msg);
    cr_assert_eq((int64_t)n, cnt);
    /* records per key: keys -> pair_with_one -> reduce_by_key (map-side combine) */
    em_rdd *per_key = em_rdd_reduce_by_key(em_rdd_map(em_rdd_keys(k), "em.pair_with_one", none),
                                           "em.sum_i64", none, 3);
    tu_list want = {0};
    for (int64_t m = 0; m < 7; m++) {
        uint8_t kb[8], vb[8];
        tu_add_rec(&want, tu_i64(kb, m), true, tu_i64(vb, ref[m]));
    }
    tu_check(per_key, &want, false, "fused chain + combine");
    em_context_free(sc);
}

Test(tagged, fused_chain_error_names_the_failing_node)
{
    em_context *sc = tu_ctx(NULL);
    em_slice none = em_slice_make(NULL, 0);
    em_rdd *r = em_range(sc, 0, 2000, 1, 2);
    em_rdd *c = em_rdd_map(em_rdd_filter(em_rdd_flat_map(r, "tg_dup", none), "tg_fail_1234",
                                         none),
                           "em.pair_with_one", none);
    em_err err = EM_ERR_INIT;
    uint64_t n = 0;
    cr_assert_lt(em_rdd_count(c, &n, &err), 0);
    cr_assert_not_null(strstr(err.msg, "tg_fail_1234 saw 1234"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "filter 'tg_fail_1234'"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "tg_dup"), "only the failing node is named: %s", err.msg);
    /* the same through a map-side shuffle (the sink drains the chain) */
    em_err err2 = EM_ERR_INIT;
    em_rdd *red = em_rdd_reduce_by_key(c, "em.sum_i64", none, 2);
    cr_assert_lt(em_rdd_count(red, &n, &err2), 0);
    cr_assert_not_null(strstr(err2.msg, "filter 'tg_fail_1234'"), "%s", err2.msg);
    /* a function that ignores em_emit's error still fails the job */
    em_err err3 = EM_ERR_INIT;
    em_rdd *ig = em_rdd_filter(em_rdd_flat_map(r, "tg_ignore_emit", none), "tg_fail_1234",
                               none);
    cr_assert_lt(em_rdd_count(ig, &n, &err3), 0);
    cr_assert_not_null(strstr(err3.msg, "tg_fail_1234 saw 1234"), "%s", err3.msg);
    em_context_free(sc);
}

/* The test functions, registered by name from a table before any test runs (the engine
 * does not search the program's own symbols). */
static const em_fn_entry test_fns[] = {
    {"tg_split_eq", EM_FN_MAP, EM_FN(tg_split_eq)},
    {"tg_sort_key", EM_FN_MAP, EM_FN(tg_sort_key)},
    {"tg_dup", EM_FN_MAP, EM_FN(tg_dup)},
    {"tg_not_mult5", EM_FN_FILTER, EM_FN(tg_not_mult5)},
    {"tg_mod7", EM_FN_MAP, EM_FN(tg_mod7)},
    {"tg_fail_1234", EM_FN_FILTER, EM_FN(tg_fail_1234)},
    {"tg_ignore_emit", EM_FN_MAP, EM_FN(tg_ignore_emit)},
};

__attribute__((constructor)) static void register_test_fns(void)
{
    if (em_fn_register_table(test_fns, sizeof test_fns / sizeof test_fns[0]) != 0)
        abort();
}
