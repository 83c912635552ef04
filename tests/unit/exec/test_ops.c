/* tests/unit/exec/test_ops.c - every narrow op of the task pipeline against a naive
 * reference on random data (empty partitions, more partitions than records, non-ASCII). */
#include "tests/unit/exec/exec_test_util.h"

/* Test functions, registered from the table at the end of this file. */
int t_upper(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int t_first_byte(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int t_count_part(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                 em_err *err);
int t_fail(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

int t_upper(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    uint8_t buf[256];
    size_t n = in->val.n < sizeof buf ? in->val.n : sizeof buf;
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(in->val.p[i] >= 'a' && in->val.p[i] <= 'z' ? in->val.p[i] - 32
                                                                       : in->val.p[i]);
    cr_assert_null(in->key.p, "values-only fn must not see the key");
    /* Emits twice: flat_map_values. */
    int rc = em_emit_val(out, em_slice_make(buf, n), err);
    return rc < 0 ? rc : em_emit_val(out, em_slice_make(buf, n), err);
}

int t_first_byte(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    return em_emit_val(out, em_slice_make(in->val.p, in->val.n ? 1 : 0), err);
}

int t_count_part(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                 em_err *err)
{
    em_rec r;
    int rc;
    uint8_t b[8], k[8];
    int64_t n = 0;
    cr_assert_eq(em_task_partition(c->task), index);
    while ((rc = em_iter_next(in, &r, err)) == 1)
        n++;
    if (rc < 0)
        return rc;
    return em_emit_kv(out, em_slice_make(enc64(k, index), 8), em_slice_make(enc64(b, n), 8),
                      err);
}

int t_fail(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    (void)in;
    (void)out;
    return em_err_set(err, EM_EINVAL, "boom");
}

/* Random KV or plain records; keys from a small alphabet with multi-byte UTF-8. */
static void gen(em_rng *rng, size_t n, bool kv, trecs *out)
{
    static const char *alpha[] = {"a", "b", "c", "\xc3\xa9", "\xe2\x82\xac", " ", "z"};
    for (size_t i = 0; i < n; i++) {
        char k[64], v[64];
        size_t kn = 0, vn = 0, kl = em_rng_below(rng, 4), vl = em_rng_below(rng, 12);
        for (size_t j = 0; j < kl; j++) {
            const char *s = alpha[em_rng_below(rng, 7)];
            memcpy(k + kn, s, strlen(s));
            kn += strlen(s);
        }
        for (size_t j = 0; j < vl; j++) {
            const char *s = alpha[em_rng_below(rng, 7)];
            memcpy(v + vn, s, strlen(s));
            vn += strlen(s);
        }
        trecs_add(out, kv, k, kv ? kn : 0, v, vn);
    }
}

/* Puts recs as a parallelize node's input, split into nparts consecutive slices (the
 * slice bounds are i*n/nparts). Returns the node. */
static em_plan_node *par(tenv *te, em_plan_graph *g, const trecs *recs, uint32_t nparts)
{
    em_plan_node *n = tn(g, EM_OP_PARALLELIZE, nparts, NULL, NULL);
    n->is_kv = recs->n && recs->v[0].kv;
    for (uint32_t p = 0; p < nparts; p++) {
        size_t lo = recs->n * p / nparts, hi = recs->n * (p + 1) / nparts;
        em_rec *rs = calloc(hi - lo + 1, sizeof *rs);
        for (size_t i = lo; i < hi; i++) {
            rs[i - lo].key = recs->v[i].kv ? em_slice_make(recs->v[i].k, recs->v[i].kn)
                                           : em_slice_make(NULL, 0);
            rs[i - lo].val = em_slice_make(recs->v[i].v, recs->v[i].vn);
        }
        te_put_input(te, n->id, p, n->is_kv ? EM_REC_KV : EM_REC_BYTES, 0, rs, hi - lo);
        free(rs);
    }
    return n;
}

static void rec_bytes(const trec *r, em_vbuf *out)
{
    em_slice k = em_slice_make(r->k, r->kn), v = em_slice_make(r->v, r->vn);
    if (r->kv)
        cr_assert_eq(em_pair_append(out, &k, &v), 0);
    else
        cr_assert_eq(em_vbuf_append(out, r->v, r->vn), 0);
}

Test(ops, parallelize_identity_more_parts_than_records)
{
    for (size_t n = 0; n < 12; n += 3) {
        tenv te;
        te_init(&te);
        em_rng rng;
        em_rng_seed(&rng, n);
        trecs in = {0}, got = {0};
        gen(&rng, n, n % 2, &in);
        em_plan_graph *g = em_plan_graph_new();
        em_plan_node *m = tn(g, EM_OP_MAP, 7, par(&te, g, &in, 7), NULL);
        tn_fn(m, "em.identity", NULL, 0);
        te_collect(&te, m, &got);
        trecs_assert_eq(&got, &in, false, "identity");
        trecs_free(&in);
        trecs_free(&got);
        em_plan_graph_free(g);
        te_destroy(&te);
    }
}

Test(ops, missing_input_block_is_enotfound)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *p = tn(g, EM_OP_PARALLELIZE, 2, NULL, NULL);
    em_result_spec spec = {.op = EM_RESULT_COUNT};
    em_err err = EM_ERR_INIT;
    char *js = em_stage_encode(p, false, &spec, &err);
    em_task_result res;
    cr_assert_eq(em_exec_run_task(&te.env, js, strlen(js), 1, 0, &res, &err), EM_ENOTFOUND);
    cr_assert_eq(res.code, EM_ENOTFOUND);
    cr_assert(strstr(res.err.msg, "input_1_1"), "%s", res.err.msg);
    em_task_result_destroy(&res);
    em_free(js);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(ops, range_matches_naive)
{
    static const int64_t cases[][3] = {
        {0, 10, 1}, {0, 10, 3}, {5, -7, -2}, {0, 0, 1}, {3, 1, 1}, {-5, 5, 4},
        {INT64_MAX - 10, INT64_MAX, 3}, {INT64_MIN, INT64_MIN + 5, 2}, {10, 0, -3}};
    tenv te;
    te_init(&te);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (uint32_t np = 1; np <= 6; np += 2) {
            em_plan_graph *g = em_plan_graph_new();
            em_plan_node *r = tn(g, EM_OP_RANGE, np, NULL, NULL);
            r->range_start = cases[c][0];
            r->range_end = cases[c][1];
            r->range_step = cases[c][2];
            r->width = 8;
            trecs got = {0}, want = {0};
            te_collect(&te, r, &got);
            for (__int128 v = cases[c][0];
                 cases[c][2] > 0 ? v < cases[c][1] : v > cases[c][1]; v += cases[c][2]) {
                uint8_t b[8];
                trecs_add(&want, false, NULL, 0, enc64(b, (int64_t)v), 8);
            }
            trecs_assert_eq(&got, &want, false, "range");
            trecs_free(&got);
            trecs_free(&want);
            em_plan_graph_free(g);
        }
    te_destroy(&te);
}

Test(ops, values_only_and_key_by)
{
    tenv te;
    te_init(&te);
    em_rng rng;
    em_rng_seed(&rng, 7);
    trecs in = {0}, got = {0}, want = {0};
    gen(&rng, 300, true, &in);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *p = par(&te, g, &in, 3);
    em_plan_node *mv = tn(g, EM_OP_MAP, 3, p, NULL);
    tn_fn(mv, "t_upper", NULL, 0);
    mv->flags = EM_NODE_VALUES_ONLY;
    te_collect(&te, mv, &got);
    for (size_t i = 0; i < in.n; i++) {
        uint8_t up[64];
        for (size_t j = 0; j < in.v[i].vn; j++)
            up[j] = (uint8_t)(in.v[i].v[j] >= 'a' && in.v[i].v[j] <= 'z' ? in.v[i].v[j] - 32
                                                                           : in.v[i].v[j]);
        trecs_add(&want, true, in.v[i].k, in.v[i].kn, up, in.v[i].vn);
        trecs_add(&want, true, in.v[i].k, in.v[i].kn, up, in.v[i].vn);
    }
    trecs_assert_eq(&got, &want, false, "flat_map_values");
    trecs_free(&got);
    trecs_free(&want);

    em_plan_node *kb = tn(g, EM_OP_MAP, 3, p, NULL);
    tn_fn(kb, "t_first_byte", NULL, 0);
    kb->flags = EM_NODE_KEY_BY;
    te_collect(&te, kb, &got);
    for (size_t i = 0; i < in.n; i++) {
        em_vbuf b;
        em_vbuf_init(&b);
        rec_bytes(&in.v[i], &b);
        trecs_add(&want, true, in.v[i].v, in.v[i].vn ? 1 : 0, b.data, b.len);
        em_vbuf_destroy(&b);
    }
    trecs_assert_eq(&got, &want, false, "key_by");
    trecs_free(&got);
    trecs_free(&want);
    trecs_free(&in);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(ops, map_error_names_the_node)
{
    tenv te;
    te_init(&te);
    trecs in = {0};
    trecs_add(&in, false, NULL, 0, "x", 1);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *m = tn(g, EM_OP_MAP, 1, par(&te, g, &in, 1), NULL);
    tn_fn(m, "t_fail", NULL, 0);
    em_result_spec spec = {.op = EM_RESULT_COLLECT};
    em_err err = EM_ERR_INIT;
    char *js = em_stage_encode(m, false, &spec, &err);
    em_task_result res;
    cr_assert_eq(em_exec_run_task(&te.env, js, strlen(js), 0, 0, &res, &err), EM_EINVAL);
    cr_assert_str_eq(res.err.msg, "map 't_fail' (rdd 2): boom");
    cr_assert_eq(res.nbatches, 0);
    em_task_result_destroy(&res);
    em_free(js);
    trecs_free(&in);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(ops, map_partitions_sample_glom_zip)
{
    tenv te;
    te_init(&te);
    em_rng rng;
    em_rng_seed(&rng, 11);
    trecs in = {0}, got = {0}, want = {0};
    gen(&rng, 500, false, &in);
    em_plan_graph *g = em_plan_graph_new();
    const uint32_t np = 4;
    em_plan_node *p = par(&te, g, &in, np);

    em_plan_node *mp = tn(g, EM_OP_MAP_PARTITIONS, np, p, NULL);
    tn_fn(mp, "t_count_part", NULL, 0);
    te_collect(&te, mp, &got);
    for (uint32_t i = 0; i < np; i++) {
        uint8_t k[8], v[8];
        trecs_add(&want, true, enc64(k, i), 8,
                  enc64(v, (int64_t)(in.n * (i + 1) / np - in.n * i / np)), 8);
    }
    trecs_assert_eq(&got, &want, false, "map_partitions");
    trecs_free(&got);
    trecs_free(&want);

    for (int wr = 0; wr < 2; wr++) {
        em_plan_node *s = tn(g, EM_OP_SAMPLE, np, p, NULL);
        s->sample_fraction = wr ? 1.5 : 0.3;
        s->sample_with_replacement = wr;
        s->seed = 99;
        te_collect(&te, s, &got);
        for (uint32_t i = 0; i < np; i++) {
            em_rng r2;
            em_rng_seed(&r2, em_mix64(99 ^ em_mix64((uint64_t)i + 1)));
            for (size_t j = in.n * i / np; j < in.n * (i + 1) / np; j++) {
                uint32_t k = wr ? em_rng_poisson(&r2, 1.5) : em_rng_double(&r2) < 0.3;
                while (k--)
                    trecs_add(&want, false, NULL, 0, in.v[j].v, in.v[j].vn);
            }
        }
        cr_assert_gt(want.n, 50);
        trecs_assert_eq(&got, &want, false, "sample");
        trecs_free(&got);
        trecs_free(&want);
    }

    em_plan_node *gl = tn(g, EM_OP_GLOM, np, p, NULL);
    te_collect(&te, gl, &got);
    cr_assert_eq(got.n, np);
    for (uint32_t i = 0; i < np; i++) {
        em_list_iter li;
        em_slice item;
        em_err err = EM_ERR_INIT;
        size_t j = in.n * i / np;
        cr_assert_eq(em_list_iter_init(&li, em_slice_make(got.v[i].v, got.v[i].vn), &err), 0);
        while (em_list_iter_next(&li, &item, &err) == 1) {
            cr_assert(em_slice_eq(item, em_slice_make(in.v[j].v, in.v[j].vn)));
            j++;
        }
        cr_assert_eq(j, in.n * (i + 1) / np);
    }
    trecs_free(&got);

    em_plan_node *z = tn(g, EM_OP_ZIP_WITH_INDEX, np, p, NULL);
    z->zip_starts = em_xcalloc(np, 8);
    for (uint32_t i = 0; i < np; i++)
        z->zip_starts[i] = in.n * i / np;
    te_collect(&te, z, &got);
    for (size_t j = 0; j < in.n; j++) {
        uint8_t v[8];
        trecs_add(&want, true, in.v[j].v, in.v[j].vn, enc64(v, (int64_t)j), 8);
    }
    trecs_assert_eq(&got, &want, false, "zip_with_index");
    trecs_free(&got);
    trecs_free(&want);
    trecs_free(&in);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(ops, union_coalesce_cartesian)
{
    tenv te;
    te_init(&te);
    em_rng rng;
    em_rng_seed(&rng, 5);
    trecs a = {0}, b = {0}, got = {0}, want = {0};
    gen(&rng, 40, false, &a);
    gen(&rng, 25, true, &b);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *pa = par(&te, g, &a, 3), *pb = par(&te, g, &b, 2);
    em_plan_node *u = tn(g, EM_OP_UNION, 5, pa, pb);
    te_collect(&te, u, &got);
    for (size_t i = 0; i < a.n; i++)
        trecs_add(&want, false, NULL, 0, a.v[i].v, a.v[i].vn);
    for (size_t i = 0; i < b.n; i++)
        trecs_add(&want, true, b.v[i].k, b.v[i].kn, b.v[i].v, b.v[i].vn);
    trecs_assert_eq(&got, &want, false, "union");
    trecs_free(&got);

    /* zipped union: partition i = a_i then a'_i */
    em_plan_node *pa2 = par(&te, g, &b, 3);
    em_plan_node *uz = tn(g, EM_OP_UNION, 3, pa, pa2);
    uz->flags = EM_NODE_ZIP_PARTS;
    te_collect(&te, uz, &got);
    trecs_free(&want);
    for (uint32_t i = 0; i < 3; i++) {
        for (size_t j = a.n * i / 3; j < a.n * (i + 1) / 3; j++)
            trecs_add(&want, false, NULL, 0, a.v[j].v, a.v[j].vn);
        for (size_t j = b.n * i / 3; j < b.n * (i + 1) / 3; j++)
            trecs_add(&want, true, b.v[j].k, b.v[j].kn, b.v[j].v, b.v[j].vn);
    }
    trecs_assert_eq(&got, &want, false, "zipped union");
    trecs_free(&got);
    trecs_free(&want);

    em_plan_node *c = tn(g, EM_OP_COALESCE, 2, u, NULL);
    c->coalesce_starts = em_xcalloc(3, 4);
    c->coalesce_starts[1] = 4;
    c->coalesce_starts[2] = 5;
    te_collect(&te, c, &got);
    te_collect(&te, u, &want);
    trecs_assert_eq(&got, &want, false, "coalesce");
    trecs_free(&got);
    trecs_free(&want);

    em_plan_node *x = tn(g, EM_OP_CARTESIAN, 6, pa, pb);
    te_collect(&te, x, &got);
    for (uint32_t p = 0; p < 6; p++) {
        uint32_t i = p / 2, j = p % 2;
        for (size_t s = a.n * i / 3; s < a.n * (i + 1) / 3; s++)
            for (size_t t = b.n * j / 2; t < b.n * (j + 1) / 2; t++) {
                em_vbuf bb;
                em_vbuf_init(&bb);
                rec_bytes(&b.v[t], &bb);
                trecs_add(&want, true, a.v[s].v, a.v[s].vn, bb.data, bb.len);
                em_vbuf_destroy(&bb);
            }
    }
    trecs_assert_eq(&got, &want, false, "cartesian");
    trecs_free(&got);
    trecs_free(&want);
    trecs_free(&a);
    trecs_free(&b);
    em_plan_graph_free(g);
    te_destroy(&te);
}

/* The test functions, registered by name from a table before any test runs (the engine
 * does not search the program's own symbols). */
static const em_fn_entry test_fns[] = {
    {"t_upper", EM_FN_MAP, EM_FN(t_upper)},
    {"t_first_byte", EM_FN_MAP, EM_FN(t_first_byte)},
    {"t_count_part", EM_FN_PARTITION, EM_FN(t_count_part)},
    {"t_fail", EM_FN_MAP, EM_FN(t_fail)},
};

__attribute__((constructor)) static void register_test_fns(void)
{
    if (em_fn_register_table(test_fns, sizeof test_fns / sizeof test_fns[0]) != 0)
        abort();
}
