/* tests/unit/exec/test_shuffle.c - shuffled stages (map tasks, then reduce tasks over the
 * collected map statuses), local reduce, cogroup/join, caching, fetch failures and the
 * result operations, against naive references. */
#include "tests/unit/exec/exec_test_util.h"

static em_plan_node *par_kv(tenv *te, em_plan_graph *g, const trecs *in, uint32_t np)
{
    em_plan_node *n = tn(g, EM_OP_PARALLELIZE, np, NULL, NULL);
    n->is_kv = true;
    for (uint32_t p = 0; p < np; p++) {
        size_t lo = in->n * p / np, hi = in->n * (p + 1) / np;
        em_rec *rs = calloc(hi - lo + 1, sizeof *rs);
        for (size_t i = lo; i < hi; i++)
            rs[i - lo] = (em_rec){em_slice_make(in->v[i].k, in->v[i].kn),
                                  em_slice_make(in->v[i].v, in->v[i].vn)};
        te_put_input(te, n->id, p, EM_REC_KV, 0, rs, hi - lo);
        free(rs);
    }
    return n;
}

/* n records (key in 0..nkeys-1 as text, value em_enc_i64 random small). */
static void gen_counts(uint64_t seed, size_t n, int nkeys, trecs *out)
{
    em_rng rng;
    em_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        char k[16];
        uint8_t v[8];
        int kn = snprintf(k, sizeof k, "k\xc3\xa9%d", (int)em_rng_below(&rng, (uint64_t)nkeys));
        trecs_add(out, true, k, (size_t)kn, enc64(v, (int64_t)em_rng_below(&rng, 100) - 50), 8);
    }
}

/* Naive sum by key (plus an optional zero added once per key). */
static void naive_sum(const trecs *in, int64_t zero, trecs *out)
{
    trecs s = {0};
    for (size_t i = 0; i < in->n; i++)
        trecs_add(&s, true, in->v[i].k, in->v[i].kn, in->v[i].v, in->v[i].vn);
    qsort(s.v, s.n, sizeof *s.v, trec_cmp);
    for (size_t i = 0; i < s.n;) {
        int64_t sum = zero;
        size_t j = i;
        for (; j < s.n && tr_cmp_bytes(s.v[j].k, s.v[j].kn, s.v[i].k, s.v[i].kn) == 0; j++)
            sum += em_dec_i64(s.v[j].v);
        uint8_t b[8];
        trecs_add(out, true, s.v[i].k, s.v[i].kn, enc64(b, sum), 8);
        i = j;
    }
    trecs_free(&s);
}

Test(shuffle, reduce_by_key_with_and_without_map_combine, .timeout = 30)
{
    for (int combine = 0; combine < 2; combine++) {
        tenv te;
        te_init(&te);
        trecs in = {0}, got = {0}, want = {0};
        gen_counts(3, 2000, 37, &in);
        em_plan_graph *g = em_plan_graph_new();
        em_plan_node *p = par_kv(&te, g, &in, 4);
        em_plan_node *s = tn_shuffle(g, p, 3, 7, EM_REDUCE_AGGREGATE,
                                     combine ? EM_NODE_MAP_COMBINE : 0);
        s->fn = em_xstrdup("em.sum_i64");
        te_run_shuffle(&te, s);
        cr_assert_eq(te.nst, 4);
        te_collect(&te, s, &got);
        naive_sum(&in, 0, &want);
        trecs_assert_eq(&got, &want, true, "reduce_by_key");
        trecs_free(&in);
        trecs_free(&got);
        trecs_free(&want);
        em_plan_graph_free(g);
        te_destroy(&te);
    }
}

/* The map sink's grouped adds (hash-partitioned combine): keys of 1..40 bytes and a few of
 * 5000 bytes (larger than the group buffer, added directly), 2 and 4 partitions (a mask) and
 * 3 (a division), and budgets small enough that the combine map drains and spills. */
Test(shuffle, map_combine_grouped_adds_mixed_keys_and_budgets, .timeout = 60)
{
    static const uint32_t nparts[] = {2, 3, 4};
    static const size_t budgets[] = {8u << 20, 64u << 10, 4u << 10};
    for (size_t pi = 0; pi < 3; pi++)
        for (size_t bi = 0; bi < 3; bi++) {
            tenv te;
            te_init(&te);
            te.env.task_mem_budget = budgets[bi];
            trecs in = {0}, got = {0}, want = {0};
            em_rng rng;
            em_rng_seed(&rng, 100 + pi * 3 + bi);
            static uint8_t big[5000];
            for (size_t i = 0; i < 3000; i++) {
                uint8_t k[48], v[8];
                size_t kn = 1 + (size_t)em_rng_below(&rng, 40);
                uint64_t id = em_rng_below(&rng, 300);
                for (size_t j = 0; j < kn; j++)
                    k[j] = (uint8_t)('a' + (id * 7 + j * (id % 5 + 1)) % 26);
                k[0] = (uint8_t)('A' + id % 26);
                enc64(v, (int64_t)em_rng_below(&rng, 100) - 50);
                if (i % 500 == 7) {
                    memset(big, 'B', sizeof big);
                    big[0] = (uint8_t)('0' + (i / 500) % 2);
                    trecs_add(&in, true, big, sizeof big, v, 8);
                } else {
                    trecs_add(&in, true, k, kn, v, 8);
                }
            }
            em_plan_graph *g = em_plan_graph_new();
            em_plan_node *p = par_kv(&te, g, &in, 2);
            em_plan_node *sh = tn_shuffle(g, p, nparts[pi], 9, EM_REDUCE_AGGREGATE,
                                          EM_NODE_MAP_COMBINE);
            sh->fn = em_xstrdup("em.sum_i64");
            te_run_shuffle(&te, sh);
            te_collect(&te, sh, &got);
            naive_sum(&in, 0, &want);
            trecs_assert_eq(&got, &want, true, "grouped map-side combine");
            trecs_free(&in);
            trecs_free(&got);
            trecs_free(&want);
            em_plan_graph_free(g);
            te_destroy(&te);
        }
}

/* Naive em.first by key: each distinct key with its first value in input order. */
static void naive_first(const trecs *in, trecs *out)
{
    for (size_t i = 0; i < in->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < out->n && !seen; j++)
            seen = tr_cmp_bytes(out->v[j].k, out->v[j].kn, in->v[i].k, in->v[i].kn) == 0;
        if (!seen)
            trecs_add(out, true, in->v[i].k, in->v[i].kn, in->v[i].v, in->v[i].vn);
    }
}

/* The map sink's grouped adds keep arrival order: em.first (order-sensitive) over one map
 * task must give each key's first value. Records of 2 bytes (empty value) up to ~3 KiB fill
 * the group buffer by bytes as well as by count, and the largest go past it; small budgets
 * drain and spill the map. */
Test(shuffle, map_combine_groups_keep_arrival_order, .timeout = 60)
{
    static const uint32_t nparts[] = {2, 3};
    static const size_t budgets[] = {8u << 20, 4u << 10};
    for (size_t pi = 0; pi < 2; pi++)
        for (size_t bi = 0; bi < 2; bi++) {
            tenv te;
            te_init(&te);
            te.env.task_mem_budget = budgets[bi];
            trecs in = {0}, got = {0}, want = {0};
            em_rng rng;
            em_rng_seed(&rng, 700 + pi * 2 + bi);
            static uint8_t v[3100];
            for (size_t i = 0; i < 2500; i++) {
                uint8_t k[8];
                uint64_t id = em_rng_below(&rng, 150);
                size_t kn = 1 + id % 8, vn;   /* an empty key reads back as no key */
                uint64_t sz = em_rng_below(&rng, 10);
                vn = id == 0 ? 0 : sz < 6 ? (size_t)em_rng_below(&rng, 16)
                               : sz < 9 ? (size_t)em_rng_below(&rng, 1500)
                                        : 2040 + (size_t)em_rng_below(&rng, 1000);
                for (size_t j = 0; j < kn; j++)
                    k[j] = (uint8_t)('a' + (id + j * 3) % 26);
                k[0] = (uint8_t)id;
                for (size_t j = 0; j < vn; j++)
                    v[j] = (uint8_t)(i + j * 13);
                if (vn >= 2)
                    em_store_le16(v, (uint16_t)i);   /* every value distinct */
                trecs_add(&in, true, k, kn, v, vn);
            }
            em_plan_graph *g = em_plan_graph_new();
            em_plan_node *p = par_kv(&te, g, &in, 1);
            em_plan_node *sh = tn_shuffle(g, p, nparts[pi], 9, EM_REDUCE_AGGREGATE,
                                          EM_NODE_MAP_COMBINE);
            sh->fn = em_xstrdup("em.first");
            te_run_shuffle(&te, sh);
            te_collect(&te, sh, &got);
            naive_first(&in, &want);
            trecs_assert_eq(&got, &want, true, "grouped map-side combine, em.first");
            trecs_free(&in);
            trecs_free(&got);
            trecs_free(&want);
            em_plan_graph_free(g);
            te_destroy(&te);
        }
}

/* A range drained by a map task (range -> fused map -> combining map sink) produces every
 * element once: (v, 1) summed by key gives each v with count 1, and the map tasks' read
 * counts add up to the range's size. Steps of both signs, empty ranges, edges of int64. */
Test(shuffle, range_drained_into_map_sink, .timeout = 30)
{
    static const int64_t cases[][3] = {
        {0, 1000, 1}, {0, 1000, 7}, {5, -700, -2}, {0, 0, 1}, {3, 1, 1},
        {INT64_MAX - 100, INT64_MAX, 3}, {INT64_MIN, INT64_MIN + 50, 2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tenv te;
        te_init(&te);
        em_plan_graph *g = em_plan_graph_new();
        em_plan_node *r = tn(g, EM_OP_RANGE, 3, NULL, NULL);
        r->range_start = cases[c][0];
        r->range_end = cases[c][1];
        r->range_step = cases[c][2];
        r->width = 8;
        em_plan_node *m = tn(g, EM_OP_MAP, 3, r, NULL);
        tn_fn(m, "em.pair_with_one", NULL, 0);
        m->is_kv = true;
        em_plan_node *sh = tn_shuffle(g, m, 2, 4, EM_REDUCE_AGGREGATE, EM_NODE_MAP_COMBINE);
        sh->fn = em_xstrdup("em.sum_i64");
        te_run_shuffle(&te, sh);
        trecs got = {0}, want = {0};
        te_collect(&te, sh, &got);
        uint64_t n = 0;
        for (__int128 v = cases[c][0];
             cases[c][2] > 0 ? v < cases[c][1] : v > cases[c][1]; v += cases[c][2], n++) {
            uint8_t k[8], one[8];
            trecs_add(&want, true, enc64(k, (int64_t)v), 8, enc64(one, 1), 8);
        }
        trecs_assert_eq(&got, &want, true, "range through a combining map sink");
        uint64_t written = 0;
        for (size_t i = 0; i < te.nst; i++)
            written += te.st[i].records_written;
        cr_assert_eq(written, n, "case %zu: %llu records written", c,
                     (unsigned long long)written);
        trecs_free(&got);
        trecs_free(&want);
        em_plan_graph_free(g);
        te_destroy(&te);
    }
}

Test(shuffle, fold_by_key_uses_zero_once_per_key_per_map, .timeout = 30)
{
    tenv te;
    te_init(&te);
    trecs in = {0}, got = {0}, want = {0};
    gen_counts(4, 300, 5, &in);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *p = par_kv(&te, g, &in, 1);
    em_plan_node *s = tn_shuffle(g, p, 2, 1, EM_REDUCE_AGGREGATE, 0);
    s->fn = em_xstrdup("em.sum_i64");
    s->zero = em_xmalloc(8);
    s->zero_len = 8;
    em_enc_i64(s->zero, 1000);
    te_run_shuffle(&te, s);
    te_collect(&te, s, &got);
    naive_sum(&in, 1000, &want);   /* one map partition: zero added once per key */
    trecs_assert_eq(&got, &want, true, "fold_by_key");
    trecs_free(&in);
    trecs_free(&got);
    trecs_free(&want);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(shuffle, group_sort_and_round_robin, .timeout = 30)
{
    tenv te;
    te_init(&te);
    trecs in = {0}, got = {0}, want = {0};
    gen_counts(5, 500, 20, &in);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *p = par_kv(&te, g, &in, 3);

    em_plan_node *gr = tn_shuffle(g, p, 4, 1, EM_REDUCE_GROUP, 0);
    te_run_shuffle(&te, gr);
    te_collect(&te, gr, &got);
    for (size_t i = 0; i < got.n; i++) {
        em_list_iter li;
        em_slice item;
        em_err err = EM_ERR_INIT;
        em_list_iter_init(&li, em_slice_make(got.v[i].v, got.v[i].vn), &err);
        while (em_list_iter_next(&li, &item, &err) == 1) {
            trecs_add(&want, true, got.v[i].k, got.v[i].kn, item.p, item.n);
        }
    }
    trecs_assert_eq(&want, &in, true, "group_by_key flattened");
    trecs_free(&got);
    trecs_free(&want);

    for (int desc = 0; desc < 2; desc++) {
        em_plan_node *so = tn_shuffle(g, p, 1, 2 + desc, EM_REDUCE_SORT,
                                      desc ? EM_NODE_DESCENDING : 0);
        te_run_shuffle(&te, so);
        te_collect(&te, so, &got);
        cr_assert_eq(got.n, in.n);
        for (size_t i = 1; i < got.n; i++) {
            int c = tr_cmp_bytes(got.v[i - 1].k, got.v[i - 1].kn, got.v[i].k, got.v[i].kn);
            cr_assert(desc ? c >= 0 : c <= 0, "sort order at %zu", i);
        }
        trecs_free(&got);
    }

    em_plan_node *rr = tn_shuffle(g, p, 5, 9, EM_REDUCE_AGGREGATE, EM_NODE_NO_REDUCE);
    rr->map_part = EM_MAP_PART_ROUND_ROBIN;
    rr->part.kind = EM_PART_NONE;
    rr->seed = 42;
    te_run_shuffle(&te, rr);
    em_result_spec cnt = {.op = EM_RESULT_COUNT};
    uint64_t n = te_run_result(&te, rr, &cnt, NULL);
    cr_assert_eq(n, in.n);
    te_collect(&te, rr, &got);
    trecs_assert_eq(&got, &in, true, "repartition");
    trecs_free(&got);
    trecs_free(&in);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(shuffle, local_reduce_and_cogroup_join, .timeout = 30)
{
    tenv te;
    te_init(&te);
    trecs a = {0}, b = {0}, got = {0}, want = {0};
    gen_counts(8, 200, 15, &a);
    gen_counts(9, 100, 25, &b);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *pa = par_kv(&te, g, &a, 2), *pb = par_kv(&te, g, &b, 3);

    em_plan_node *lr = tn(g, EM_OP_LOCAL_REDUCE, 1, par_kv(&te, g, &a, 1), NULL);
    lr->mode = EM_REDUCE_AGGREGATE;
    lr->fn = em_xstrdup("em.sum_i64");
    te_collect(&te, lr, &got);
    naive_sum(&a, 0, &want);
    trecs_assert_eq(&got, &want, true, "local_reduce");
    trecs_free(&got);
    trecs_free(&want);

    for (int mode = 0; mode < 3; mode++) {
        em_plan_node *ta = tn(g, EM_OP_TAG, 2, pa, NULL), *tb = tn(g, EM_OP_TAG, 3, pb, NULL);
        tb->tag = 1;
        em_plan_node *u = tn(g, EM_OP_UNION, 5, ta, tb);
        em_plan_node *s = tn_shuffle(g, u, 4, 20 + mode, EM_REDUCE_GROUP, 0);
        em_plan_node *cg = tn(g, EM_OP_COGROUP_SPLIT, 4, s, NULL);
        cg->flags = mode == 0 ? 0 : mode == 1 ? EM_NODE_JOIN_INNER
                                              : EM_NODE_JOIN_INNER | EM_NODE_JOIN_LEFT |
                                                    EM_NODE_JOIN_RIGHT;
        te_run_shuffle(&te, s);
        te_collect(&te, cg, &got);
        if (mode == 0) {
            /* every key once; lists hold all values of each side */
            size_t na = 0, nb = 0;
            for (size_t i = 0; i < got.n; i++) {
                em_slice l, r, it;
                bool hl, hr;
                em_err err = EM_ERR_INIT;
                em_list_iter li;
                cr_assert_eq(em_pair_decode(em_slice_make(got.v[i].v, got.v[i].vn), &l, &hl, &r,
                                            &hr, &err), 0);
                cr_assert(hl && hr);
                em_list_iter_init(&li, l, &err);
                while (em_list_iter_next(&li, &it, &err) == 1)
                    na++;
                em_list_iter_init(&li, r, &err);
                while (em_list_iter_next(&li, &it, &err) == 1)
                    nb++;
            }
            cr_assert_eq(na, a.n);
            cr_assert_eq(nb, b.n);
        } else {
            for (size_t i = 0; i < a.n; i++) {
                bool matched = false;
                for (size_t j = 0; j < b.n; j++)
                    if (tr_cmp_bytes(a.v[i].k, a.v[i].kn, b.v[j].k, b.v[j].kn) == 0) {
                        em_vbuf pv;
                        em_slice l = {a.v[i].v, 8}, r = {b.v[j].v, 8};
                        em_vbuf_init(&pv);
                        em_pair_append(&pv, &l, &r);
                        trecs_add(&want, true, a.v[i].k, a.v[i].kn, pv.data, pv.len);
                        em_vbuf_destroy(&pv);
                        matched = true;
                    }
                if (!matched && mode == 2) {
                    em_vbuf pv;
                    em_slice l = {a.v[i].v, 8};
                    em_vbuf_init(&pv);
                    em_pair_append(&pv, &l, NULL);
                    trecs_add(&want, true, a.v[i].k, a.v[i].kn, pv.data, pv.len);
                    em_vbuf_destroy(&pv);
                }
            }
            for (size_t j = 0; mode == 2 && j < b.n; j++) {
                bool matched = false;
                for (size_t i = 0; i < a.n; i++)
                    matched |= tr_cmp_bytes(a.v[i].k, a.v[i].kn, b.v[j].k, b.v[j].kn) == 0;
                if (!matched) {
                    em_vbuf pv;
                    em_slice r = {b.v[j].v, 8};
                    em_vbuf_init(&pv);
                    em_pair_append(&pv, NULL, &r);
                    trecs_add(&want, true, b.v[j].k, b.v[j].kn, pv.data, pv.len);
                    em_vbuf_destroy(&pv);
                }
            }
            trecs_assert_eq(&got, &want, true, mode == 1 ? "join" : "full outer join");
        }
        trecs_free(&got);
        trecs_free(&want);
    }
    trecs_free(&a);
    trecs_free(&b);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(shuffle, corrupt_data_file_is_fetch_failure, .timeout = 30)
{
    tenv te;
    te_init(&te);
    trecs in = {0};
    gen_counts(10, 400, 30, &in);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *p = par_kv(&te, g, &in, 3);
    em_plan_node *s = tn_shuffle(g, p, 2, 77, EM_REDUCE_GROUP, 0);
    te_run_shuffle(&te, s);
    char path[512];
    em_shuffle_data_path(te.shuffle_dir, 77, 1, path, sizeof path);
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    for (long off = 0; off < 400; off += 7) {
        fseek(f, off, SEEK_SET);
        fputc(0x5a, f);
    }
    fclose(f);
    em_result_spec spec = {.op = EM_RESULT_COUNT};
    em_err err = EM_ERR_INIT;
    char *js = em_stage_encode(s, false, &spec, &err);
    for (uint32_t r = 0; r < 2; r++) {
        em_task_result res;
        int rc = em_exec_run_task(&te.env, js, strlen(js), r, 1, &res, &err);
        cr_assert_eq(rc, EM_EFETCH, "reduce %u: rc %d %s", r, rc, err.msg);
        cr_assert(res.fetch_failed);
        cr_assert_eq(res.failed_shuffle, 77);
        cr_assert_eq(res.failed_map, 1);
        em_task_result_destroy(&res);
    }
    em_free(js);
    trecs_free(&in);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(shuffle, caching_puts_and_reuses_blocks)
{
    tenv te;
    te_init(&te);
    trecs in = {0}, got = {0}, again = {0};
    gen_counts(12, 100, 10, &in);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *p = par_kv(&te, g, &in, 2);
    em_plan_node *m = tn(g, EM_OP_MAP, 2, p, NULL);
    tn_fn(m, "em.swap", NULL, 0);
    m->level = EM_STORAGE_MEMORY_ONLY;
    em_plan_node *c = tn(g, EM_OP_MAP, 2, m, NULL);
    tn_fn(c, "em.identity", NULL, 0);
    te_collect(&te, c, &got);
    for (uint32_t i = 0; i < 2; i++)
        cr_assert(em_block_store_contains(te.store, (em_block_id){EM_BLOCK_RDD, m->id, i, 0}));
    /* Drop the input: the second run must read the cached blocks. */
    em_block_store_remove_all(te.store, EM_BLOCK_INPUT, p->id);
    te_collect(&te, c, &again);
    trecs_assert_eq(&again, &got, false, "cached rerun");
    cr_assert_eq(got.n, in.n);
    for (size_t i = 0; i < in.n; i++)
        cr_assert(tr_cmp_bytes(got.v[i].k, got.v[i].kn, in.v[i].v, in.v[i].vn) == 0);
    trecs_free(&in);
    trecs_free(&got);
    trecs_free(&again);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(shuffle, big_record_through_map_and_shuffle, .timeout = 60)
{
    tenv te;
    te_init(&te);
    trecs in = {0}, got = {0};
    size_t big = 2u << 20;
    uint8_t *v = malloc(big);
    for (size_t i = 0; i < big; i++)
        v[i] = (uint8_t)(i * 131 + 7);
    trecs_add(&in, true, "big", 3, v, big);
    trecs_add(&in, true, "small", 5, "x", 1);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *p = par_kv(&te, g, &in, 1);
    em_plan_node *m = tn(g, EM_OP_MAP, 1, p, NULL);
    tn_fn(m, "em.identity", NULL, 0);
    em_plan_node *s = tn_shuffle(g, m, 2, 3, EM_REDUCE_SORT, 0);
    te_run_shuffle(&te, s);
    te_collect(&te, s, &got);
    trecs_assert_eq(&got, &in, true, "2 MiB record");
    free(v);
    trecs_free(&in);
    trecs_free(&got);
    em_plan_graph_free(g);
    te_destroy(&te);
}
