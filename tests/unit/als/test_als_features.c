/* tests/unit/als/test_als_features.c - the inputs and outputs of issue 11 added to ALS:
 *  - dense integer ids numbered by value on the executors (no id lists) and by the driver's
 *    reader with em_ratings_dense_renumber: the same ratings; sparse integer ids and
 *    string ids keep the first-appearance numbering; one side dense, the other not;
 *  - ratings from a dataset of triple records (the input of `ember als --sql`): the maps
 *    and ratings of the same lines read from a file, bad records named or skipped;
 *  - ranking metrics on the executors equal the driver's, recommend-for-all on the
 *    executors equals em_als_recommend_all (items for users) and the per-item top users. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/als/als.h"
#include "mllib/als/als_int.h"
#include "tests/support/ctx.h"
#include "tests/support/tmpdir.h"

static char g_dir[64];

static void mkdir_tmp(void)
{
    em_test_tmpdir(g_dir, sizeof g_dir, "em_als_feat");
}

static void rm_tmp(void)
{
    em_test_tmpdir_remove(g_dir);
}

/* A directory of 3 files (3 ranges) of n lines each: users from ubase with stride ustep
 * (every one of nu appearing at least once), items ids "ITEMPFX<k>" (ipfx NULL: integers
 * ibase..ibase+ni-1), in a scrambled order. */
static const char *write_dir(const char *name, int nu, int ubase, int ustep, int ni, int ibase,
                             const char *ipfx, uint64_t seed)
{
    static char dir[128];
    em_rng g;
    em_rng_seed(&g, seed);
    snprintf(dir, sizeof dir, "%s/%s", g_dir, name);
    cr_assert_eq(mkdir(dir, 0700), 0);
    int n = 3 * (nu > ni ? nu : ni);
    for (int f = 0; f < 3; f++) {
        char path[192];
        snprintf(path, sizeof path, "%s/part-%d.tsv", dir, f);
        FILE *fp = fopen(path, "w");
        cr_assert(fp);
        for (int i = f; i < n; i += 3) {
            int u = (int)((i * 7919u + (unsigned)em_rng_below(&g, 3)) % (unsigned)nu);
            int it = (int)((i * 104729u + (unsigned)em_rng_below(&g, 5)) % (unsigned)ni);
            if (i < nu)
                u = nu - 1 - i;   /* every user at least once */
            if (i < ni)
                it = i;   /* every item at least once */
            unsigned r = 1 + (unsigned)em_rng_below(&g, 5);
            if (ipfx)
                fprintf(fp, "%d\t%s%d\t%u\n", ubase + u * ustep, ipfx, it, r);
            else
                fprintf(fp, "%d\t%d\t%u\n", ubase + u * ustep, ibase + it, r);
        }
        fclose(fp);
    }
    return dir;
}

static void collect_ratings(em_rdd *r, em_rating **out, size_t *n)
{
    em_records recs = {0};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(r, &recs, &err), 0, "%s", err.msg);
    *out = malloc(recs.n * sizeof **out + 1);
    for (size_t i = 0; i < recs.n; i++) {
        cr_assert_eq(recs.recs[i].val.n, sizeof(em_rating));
        memcpy(&(*out)[i], recs.recs[i].val.p, sizeof(em_rating));
    }
    *n = recs.n;
    em_records_destroy(&recs);
}

/* The dataset r holds exactly want's ratings, in want's order. */
static void assert_same_ratings(em_rdd *r, const em_ratings *want)
{
    em_rating *got;
    size_t n;
    collect_ratings(r, &got, &n);
    cr_assert_eq(n, want->n);
    for (size_t i = 0; i < n; i++)
        cr_assert(got[i].user == want->recs[i].user && got[i].item == want->recs[i].item &&
                      got[i].rating == want->recs[i].rating,
                  "rating %zu: (%d,%d) vs (%d,%d)", i, got[i].user, got[i].item,
                  want->recs[i].user, want->recs[i].item);
    free(got);
}

/* Two id maps with the same names at the same indices. */
static void assert_same_names(const em_idmap *a, const em_idmap *b)
{
    cr_assert_eq(em_idmap_size(a), em_idmap_size(b));
    for (int32_t k = 0; k < em_idmap_size(a); k++) {
        char ba[24], bb[24];
        cr_assert_str_eq(em_idmap_name(a, k, ba), em_idmap_name(b, k, bb), "index %d", k);
    }
}

/* Reads path on the executors and on the driver (+ renumbering) with dense_ids: the same
 * ratings in the same order, the same maps; returns the dense bits. */
static uint32_t read_both(em_context *sc, const char *path)
{
    em_ratings_read_opts o = {.dense_ids = true};
    em_idmap *u0 = em_idmap_new(), *i0 = em_idmap_new(), *u1 = em_idmap_new(),
             *i1 = em_idmap_new();
    em_ratings r0;
    em_als_ratings x = {0};
    em_err err = EM_ERR_INIT;
    uint32_t d0 = 0;
    em_ratings_init(&r0);
    cr_assert_eq(em_ratings_read(path, &o, u0, i0, &r0, &err), 0, "%s", err.msg);
    cr_assert_eq(em_ratings_dense_renumber(&r0, u0, i0, &d0, &err), 0, "%s", err.msg);
    cr_assert_eq(em_als_read_ratings(sc, path, &o, u1, i1, &x, &err), 0, "%s", err.msg);
    cr_assert_eq(x.dense, d0, "dense sides: executors %u, driver %u", x.dense, d0);
    cr_assert_eq(x.n, r0.n);
    assert_same_ratings(x.ratings, &r0);
    assert_same_names(u0, u1);
    assert_same_names(i0, i1);
    em_als_ratings_release(sc, &x);
    em_ratings_destroy(&r0);
    em_idmap_free(u0);
    em_idmap_free(i0);
    em_idmap_free(u1);
    em_idmap_free(i1);
    return d0;
}

Test(als_features, dense_ids_by_value, .init = mkdir_tmp, .fini = rm_tmp)
{
    em_context *sc = em_test_ctx_new("local[2]");
    /* users 0..299, items 1..120: both dense, numbered by value */
    const char *d = write_dir("dense", 300, 0, 1, 120, 1, NULL, 1);
    cr_assert_eq(read_both(sc, d), 3u);
    em_idmap *u = em_idmap_new(), *i = em_idmap_new();
    em_als_ratings x = {0};
    em_err err = EM_ERR_INIT;
    em_ratings_read_opts o = {.dense_ids = true};
    cr_assert_eq(em_als_read_ratings(sc, d, &o, u, i, &x, &err), 0, "%s", err.msg);
    char b[24];
    for (int32_t k = 0; k < em_idmap_size(u); k++)
        cr_assert_eq(atoi(em_idmap_name(u, k, b)), k);
    for (int32_t k = 0; k < em_idmap_size(i); k++)
        cr_assert_eq(atoi(em_idmap_name(i, k, b)), k + 1);
    /* the test read into the filled maps maps as usual (no detection) */
    em_als_ratings t = {0};
    cr_assert_eq(em_als_read_ratings(sc, d, &o, u, i, &t, &err), 0, "%s", err.msg);
    cr_assert_eq(t.dense, 0u);
    cr_assert_eq(t.n, x.n);
    em_als_ratings_release(sc, &t);
    em_als_ratings_release(sc, &x);
    em_idmap_free(u);
    em_idmap_free(i);
    /* sparse integer users (stride 3), dense items: users by first appearance */
    cr_assert_eq(read_both(sc, write_dir("sparse", 200, 5, 3, 50, 0, NULL, 2)), 2u);
    /* string items, dense users from 1 */
    cr_assert_eq(read_both(sc, write_dir("strings", 150, 1, 1, 40, 0, "m", 3)), 1u);
    /* without dense_ids nothing is renumbered: the existing numbering */
    em_ratings_read_opts plain = {0};
    u = em_idmap_new();
    i = em_idmap_new();
    cr_assert_eq(em_als_read_ratings(sc, d, &plain, u, i, &x, &err), 0, "%s", err.msg);
    cr_assert_eq(x.dense, 0u);
    cr_assert_neq(atoi(em_idmap_name(u, 0, b)), 0, "first appearance: user 299 first");
    em_als_ratings_release(sc, &x);
    em_idmap_free(u);
    em_idmap_free(i);
    em_context_free(sc);
}

/* The triples of a file's lines in 3 partitions: the same maps and ratings as the file. */
Test(als_features, triples_match_file, .init = mkdir_tmp, .fini = rm_tmp)
{
    em_context *sc = em_test_ctx_new("local[2]");
    char path[128];
    snprintf(path, sizeof path, "%s/r.tsv", g_dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    em_vbuf b;
    em_vbuf_init(&b);
    size_t n = 500;
    em_rec *recs = calloc(n, sizeof *recs);
    size_t *off = calloc(n + 1, sizeof *off);
    em_err err = EM_ERR_INIT;
    for (size_t k = 0; k < n; k++) {
        char u[32], it[32];
        snprintf(u, sizeof u, "user%zu", (k * 37) % 91);
        snprintf(it, sizeof it, "%zu", (k * 13) % 57 + 100);
        float r = (float)(k % 5) + 0.5f;
        fprintf(f, "%s\t%s\t%g\n", u, it, (double)r);
        off[k] = b.len;
        cr_assert_eq(em_als_triple_encode(&b, u, strlen(u), it, strlen(it), r, &err), 0);
    }
    off[n] = b.len;
    fclose(f);
    for (size_t k = 0; k < n; k++)
        recs[k].val = em_slice_make(b.data + off[k], off[k + 1] - off[k]);
    em_rdd *t = em_parallelize(sc, EM_REC_BYTES, 0, recs, n, 3);
    em_idmap *u0 = em_idmap_new(), *i0 = em_idmap_new(), *u1 = em_idmap_new(),
             *i1 = em_idmap_new();
    em_ratings r0;
    em_ratings_init(&r0);
    cr_assert_eq(em_ratings_read(path, NULL, u0, i0, &r0, &err), 0, "%s", err.msg);
    em_als_ratings x = {0};
    cr_assert_eq(em_als_ratings_from_triples(sc, t, NULL, u1, i1, &x, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(x.n, n);
    assert_same_ratings(x.ratings, &r0);
    assert_same_names(u0, u1);
    assert_same_names(i0, i1);
    em_als_ratings_release(sc, &x);
    em_rdd_release(t);

    /* a malformed record: named, or skipped and counted */
    static const uint8_t bad[] = {'u', '1', 0, 'i', 0, 1, 2};   /* a 2-byte rating */
    recs[7].val = em_slice_make(bad, sizeof bad);
    t = em_parallelize(sc, EM_REC_BYTES, 0, recs, n, 3);
    em_idmap *u2 = em_idmap_new(), *i2 = em_idmap_new();
    cr_assert_lt(em_als_ratings_from_triples(sc, t, NULL, u2, i2, &x, &err), 0);
    cr_assert(strstr(err.msg, "rating record 8 of partition 0: the rating is not 4 bytes"),
              "%s", err.msg);
    em_idmap_free(u2);
    em_idmap_free(i2);
    u2 = em_idmap_new();
    i2 = em_idmap_new();
    err = (em_err)EM_ERR_INIT;
    em_ratings_read_opts skipo = {.skip_bad_lines = true};
    cr_assert_eq(em_als_ratings_from_triples(sc, t, &skipo, u2, i2, &x, &err), 0, "%s", err.msg);
    cr_assert_eq(x.skipped, 1u);
    cr_assert_eq(x.n, n - 1);
    em_als_ratings_release(sc, &x);
    em_rdd_release(t);
    em_idmap_free(u2);
    em_idmap_free(i2);
    /* encoding refuses what it could not decode */
    cr_assert_lt(em_als_triple_encode(&b, "", 0, "x", 1, 1.0f, &err), 0);
    cr_assert_lt(em_als_triple_encode(&b, "a\0b", 3, "x", 1, 1.0f, &err), 0);
    em_ratings_destroy(&r0);
    em_idmap_free(u0);
    em_idmap_free(i0);
    em_idmap_free(u1);
    em_idmap_free(i1);
    em_vbuf_destroy(&b);
    free(recs);
    free(off);
    em_context_free(sc);
}

/* A random model with some cold rows, and random train/test ratings. */
static em_als_model *random_model(int32_t nu, int32_t ni, int k, uint64_t seed)
{
    em_als_model *m = em_als_model_new(k, nu, ni);
    em_rng g;
    em_rng_seed(&g, seed);
    for (int32_t u = 0; u < nu; u++)
        for (int q = 0; q < k; q++)
            m->user_factors[(size_t)u * k + q] =
                u % 17 == 5 ? NAN : (float)em_rng_double(&g) - 0.3f;
    for (int32_t i = 0; i < ni; i++)
        for (int q = 0; q < k; q++)
            m->item_factors[(size_t)i * k + q] =
                i % 23 == 7 ? NAN : (float)em_rng_double(&g) - 0.3f;
    return m;
}

static em_rating *random_ratings(size_t n, int32_t nu, int32_t ni, uint64_t seed)
{
    em_rating *r = malloc(n * sizeof *r);
    em_rng g;
    em_rng_seed(&g, seed);
    for (size_t i = 0; i < n; i++)
        r[i] = (em_rating){(int32_t)em_rng_below(&g, (uint64_t)nu),
                           (int32_t)em_rng_below(&g, (uint64_t)ni),
                           (float)em_rng_below(&g, 3)};   /* 0: not relevant */
    return r;
}

static em_rdd *ratings_rdd(em_context *sc, const em_rating *r, size_t n, uint32_t parts)
{
    em_rec *recs = calloc(n + 1, sizeof *recs);
    for (size_t i = 0; i < n; i++)
        recs[i].val = em_slice_make(&r[i], sizeof *r);
    em_rdd *d = em_parallelize(sc, EM_REC_FIXED, sizeof(em_rating), recs, n, parts);
    free(recs);
    return d;
}

/* The ranking metrics' top k (items in panels of eight, scored eight at a time) is
 * em_als_recommend_items's, ids and score bits, whatever the rank and item count (not a
 * multiple of 8, fewer than k), with exclusions, cold items (NaN rows, never chosen) and
 * ties (duplicate item rows: the lower id first). */
Test(als_rank, panel_top_k_is_recommend_items_bit_for_bit)
{
    const int ranks[] = {1, 6, 10, 17}, tops[] = {1, 5, 10, 400};
    const int32_t nitems[] = {1, 7, 8, 301};
    long listed = 0;   /* ids compared: the comparison is not vacuous */
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 4; b++) {
            int k = ranks[a];
            int32_t nu = 40, ni = nitems[b];
            em_als_model *m = random_model(nu, ni, k, 100 + a * 4 + b);
            for (int32_t i = 11; i < ni; i += 13)   /* ties: copies of row i - 8 */
                memcpy(m->item_factors + (size_t)i * k, m->item_factors + (size_t)(i - 8) * k,
                       (size_t)k * sizeof(float));
            em__als_panels items;
            cr_assert_eq(em__als_panels_init(&items, m->item_factors, ni, k), 0);
            em_rng g;
            em_rng_seed(&g, 7 + a + b);
            for (int32_t u = 0; u < nu; u++) {
                if (!em_als_model_has_user(m, u))
                    continue;
                int32_t ex[64];
                size_t nex = 0;
                for (int32_t i = 0; i < ni && nex < 64; i++)
                    if (em_rng_below(&g, 5) == 0)
                        ex[nex++] = i;
                em_rating te = {u, 0, 1.0f};
                for (size_t t = 0; t < 4; t++) {
                    int top = tops[t];
                    int32_t ids[400], ids2[400];
                    float sc[400], sc2[400];
                    double acc[3] = {0};
                    for (int q = 0; q < top; q++) {
                        ids[q] = ids2[q] = -7;
                        sc[q] = sc2[q] = -7.0f;
                    }
                    em__als_rank_user(m, &items, u, ex, nex, &te, 1, top, ids, sc, acc);
                    listed += em_als_recommend_items(m, u, top, ex, nex, ids2, sc2);
                    cr_assert(memcmp(ids, ids2, (size_t)top * 4) == 0 &&
                                  memcmp(sc, sc2, (size_t)top * 4) == 0,
                              "rank %d, %d items, user %d, top %d: another list", k, ni, u,
                              top);
                }
            }
            em__als_panels_free(&items);
            em_als_model_free(m);
        }
    cr_assert_gt(listed, 10000);
}

static void ranking_on(const char *master)
{
    em_context *sc = em_test_ctx_new(master);
    em_err err = EM_ERR_INIT;
    int32_t nu = 400, ni = 300;
    em_als_model *m = random_model(nu, ni, 6, 11);
    em_rating *tr = random_ratings(4000, nu, ni, 12), *te = random_ratings(1500, nu, ni, 13);
    em_rank_metrics a, b;
    cr_assert_eq(em_als_ranking_metrics(m, tr, 4000, te, 1500, 10, &a, &err), 0, "%s", err.msg);
    em_rdd *rtr = ratings_rdd(sc, tr, 4000, 4), *rte = ratings_rdd(sc, te, 1500, 3);
    cr_assert_eq(em_als_ranking_metrics_rdd(sc, m, rtr, rte, 10, &b, &err), 0, "%s", err.msg);
    cr_assert_gt(a.users, 100u);
    cr_assert_eq(a.users, b.users);
    cr_assert_float_eq(a.precision_at_k, b.precision_at_k, 1e-12);
    cr_assert_float_eq(a.map, b.map, 1e-12);
    cr_assert_float_eq(a.ndcg_at_k, b.ndcg_at_k, 1e-12);
    cr_assert_lt(em_als_ranking_metrics_rdd(sc, m, rtr, rte, 0, &b, &err), 0);

    /* recommend for all, items for users: em_als_recommend_all's lists exactly */
    int k = 7;
    int32_t *ids = malloc((size_t)nu * k * 4);
    float *sc0 = malloc((size_t)nu * k * 4);
    cr_assert_eq(em_als_recommend_all(m, k, ids, sc0, &err), 0);
    for (int side = 0; side < 2; side++) {
        em_als_recs rr;
        em_records lines = {0};
        cr_assert_eq(em_als_recommend_all_rdd(sc, m, side, k, NULL, NULL, &rr, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(em_rdd_collect(rr.lines, &lines, &err), 0, "%s", err.msg);
        int32_t nsrc = side ? ni : nu, ndst = side ? nu : ni;
        int32_t prev = -1;
        int q = 0;
        size_t expect = 0;
        for (int32_t s = 0; s < nsrc; s++) {
            bool cold = side ? !em_als_model_has_item(m, s) : !em_als_model_has_user(m, s);
            int cnt = 0;
            for (int32_t d = 0; d < ndst && !cold; d++)
                cnt += side ? em_als_model_has_user(m, d) : em_als_model_has_item(m, d);
            expect += (size_t)(cnt < k ? cnt : k);
        }
        cr_assert_eq(lines.n, expect, "side %d: %zu lines, expected %zu", side, lines.n, expect);
        for (size_t l = 0; l < lines.n; l++) {
            char buf[128];
            int32_t s, d;
            float v;
            snprintf(buf, sizeof buf, "%.*s", (int)lines.recs[l].val.n,
                     (const char *)lines.recs[l].val.p);
            cr_assert_eq(sscanf(buf, "%d\t%d\t%g", &s, &d, &v), 3, "%s", buf);
            q = s == prev ? q + 1 : 0;
            prev = s;
            if (side == 0) {
                cr_assert_eq(d, ids[(size_t)s * k + q], "user %d rank %d", s, q);
                cr_assert_eq(v, sc0[(size_t)s * k + q]);
            } else {
                int32_t top[16];
                float ts[16];
                int got = em_als_recommend_users(m, s, k, top, ts);
                cr_assert_lt(q, got);
                cr_assert_float_eq(v, ts[q], 1e-5, "item %d rank %d", s, q);
            }
        }
        em_records_destroy(&lines);
        em_als_recs_release(sc, &rr);
    }
    free(ids);
    free(sc0);
    em_rdd_release(rtr);
    em_rdd_release(rte);
    free(tr);
    free(te);
    em_als_model_free(m);
    em_context_free(sc);
}

/* A user's top k (em_als_recommend_items: four rows' dot products at a time) against a
 * reference made here from em_als_predict's one-at-a-time scores: the same ids and the
 * same score bits, best first (ties: lower id), excluded items and items without factors
 * left out; 301 items, so the last group of four is partial. */
Test(als_features, top_k_equals_scores_one_at_a_time)
{
    enum { K = 12 };
    int32_t nu = 40, ni = 301;
    em_als_model *m = random_model(nu, ni, 7, 31);
    int32_t ex[3] = {4, 150, 300};
    for (int32_t u = 0; u < nu; u++) {
        if (!em_als_model_has_user(m, u))
            continue;
        int32_t ids[K], want[K];
        float sc[K], ws[K];
        int got = em_als_recommend_items(m, u, K, ex, 3, ids, sc);
        int n = 0;   /* reference: insertion into the best K by (score desc, id asc) */
        for (int32_t i = 0; i < ni; i++) {
            float p = em_als_predict(m, u, i);
            if (isnan(p) || i == 4 || i == 150 || i == 300)
                continue;
            int at = n < K ? n : K;
            while (at > 0 && ws[at - 1] < p)
                at--;
            if (at >= K)
                continue;
            for (int q = (n < K ? n : K - 1); q > at; q--) {
                ws[q] = ws[q - 1];
                want[q] = want[q - 1];
            }
            ws[at] = p;
            want[at] = i;
            n += n < K;
        }
        cr_assert_eq(got, K);
        for (int q = 0; q < K; q++) {
            cr_assert_eq(ids[q], want[q], "user %d rank %d", u, q);
            cr_assert(memcmp(&sc[q], &ws[q], sizeof(float)) == 0, "user %d rank %d", u, q);
        }
    }
    em_als_model_free(m);
}

Test(als_features, ranking_and_recommend_all_local)
{
    ranking_on("local[2]");
}

Test(als_features, ranking_and_recommend_all_cluster, .timeout = 120)
{
    ranking_on("local-cluster[2,1]");
}

/* External ids in the lines, and the save that writes them. */
Test(als_features, recommend_all_save_names, .init = mkdir_tmp, .fini = rm_tmp)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_err err = EM_ERR_INIT;
    em_als_model *m = random_model(30, 20, 4, 5);
    em_idmap *u = em_idmap_new(), *i = em_idmap_new();
    for (int k = 0; k < 30; k++) {
        char b[16];
        int32_t x;
        snprintf(b, sizeof b, "u%d", k);
        cr_assert_eq(em_idmap_intern(u, b, strlen(b), &x, &err), 0);
    }
    for (int k = 0; k < 20; k++) {
        char b[16];
        int32_t x;
        snprintf(b, sizeof b, "%d", k);   /* dense: shipped as a flag */
        cr_assert_eq(em_idmap_intern(i, b, strlen(b), &x, &err), 0);
    }
    char dir[128], part[256];
    snprintf(dir, sizeof dir, "%s/recs", g_dir);
    cr_assert_eq(em_als_recommend_all_save(sc, m, 0, 3, u, i, dir, &err), 0, "%s", err.msg);
    snprintf(part, sizeof part, "cat %s/part-* | head -1 | grep -q '^u0\t[0-9]*\t'", dir);
    cr_assert_eq(system(part), 0);
    cr_assert_lt(em_als_recommend_all_save(sc, m, 0, 3, u, i, dir, &err), 0, "dir exists");
    em_idmap *small = em_idmap_new();
    cr_assert_lt(em_als_recommend_all_save(sc, m, 0, 3, small, i, dir, &err), 0);
    cr_assert(strstr(err.msg, "do not fit"), "%s", err.msg);
    em_idmap_free(small);
    em_idmap_free(u);
    em_idmap_free(i);
    em_als_model_free(m);
    em_context_free(sc);
}

/* Triples with dense integer ids are numbered by value too (the file reader's rule); a
 * sparse side keeps the first-appearance numbering. */
Test(als_features, triples_dense_ids)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_err err = EM_ERR_INIT;
    for (int sparse = 0; sparse < 2; sparse++) {
        em_vbuf b;
        em_vbuf_init(&b);
        size_t n = 300, off[301];
        em_rec recs[300];
        for (size_t k = 0; k < n; k++) {
            char u[16], it[16];
            snprintf(u, sizeof u, "%zu", (49 - k % 50) * (sparse ? 2 : 1));
            snprintf(it, sizeof it, "%zu", 1 + (k * 7) % 20);
            off[k] = b.len;
            cr_assert_eq(em_als_triple_encode(&b, u, strlen(u), it, strlen(it), 1.0f, &err), 0);
        }
        off[n] = b.len;
        for (size_t k = 0; k < n; k++)
            recs[k].val = em_slice_make(b.data + off[k], off[k + 1] - off[k]);
        em_rdd *t = em_parallelize(sc, EM_REC_BYTES, 0, recs, n, 4);
        em_idmap *u = em_idmap_new(), *i = em_idmap_new();
        em_als_ratings x = {0};
        em_ratings_read_opts o = {.dense_ids = true};
        cr_assert_eq(em_als_ratings_from_triples(sc, t, &o, u, i, &x, &err), 0, "%s", err.msg);
        cr_assert_eq(x.dense, sparse ? 2u : 3u);
        em_rating *got;
        size_t ng;
        collect_ratings(x.ratings, &got, &ng);
        cr_assert_eq(ng, n);
        for (size_t k = 0; k < n; k++) {
            cr_assert_eq(got[k].item, (int32_t)((k * 7) % 20));
            /* users appear 49, 48, ...: by value when dense, by appearance when sparse */
            cr_assert_eq(got[k].user, sparse ? (int32_t)(k % 50) : (int32_t)(49 - k % 50));
        }
        free(got);
        em_als_ratings_release(sc, &x);
        em_rdd_release(t);
        em_idmap_free(u);
        em_idmap_free(i);
        em_vbuf_destroy(&b);
    }
    em_context_free(sc);
}

/* A Netflix Prize layout file of about 3 MiB (3 ranges, cut inside movies' sections):
 * movies 1..nm, each followed by its user,rating,date lines; bad_at > 0 replaces that
 * (1-based) line by a malformed one (a rating line when bad_movie is false, a movie line
 * with a comma otherwise). */
static const char *write_netflix(const char *name, int nm, size_t bad_at, bool bad_movie)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    size_t line = 0;
    em_rng g;
    em_rng_seed(&g, 77);
    for (int m = 1; m <= nm; m++) {
        if (++line == bad_at && bad_movie)
            fprintf(f, "%d,9:\n", m);
        else
            fprintf(f, "%d:%s\n", m, m % 7 == 3 ? "\r" : "");
        int n = 200 + (int)em_rng_below(&g, 400);
        for (int k = 0; k < n; k++) {
            if (++line == bad_at && !bad_movie)
                fputs("123;oops\n", f);
            else
                fprintf(f, "%u,%u,2005-0%u-1%u\n", (unsigned)em_rng_below(&g, 20000) * 3 + 6,
                        1 + (unsigned)em_rng_below(&g, 5), 1 + (unsigned)em_rng_below(&g, 9),
                        (unsigned)em_rng_below(&g, 10));
        }
    }
    fclose(f);
    return path;
}

/* Driver reader vs executors on path: the same result (ratings, maps) or the same error. */
static void netflix_compare(em_context *sc, const char *path, bool skip, bool fails)
{
    em_ratings_read_opts o = {.skip_bad_lines = skip, .dense_ids = true};
    em_idmap *u0 = em_idmap_new(), *i0 = em_idmap_new(), *u1 = em_idmap_new(),
             *i1 = em_idmap_new();
    em_ratings r0;
    em_als_ratings x = {0};
    em_err e0 = EM_ERR_INIT, e1 = EM_ERR_INIT;
    em_ratings_init(&r0);
    int rc0 = em_ratings_read(path, &o, u0, i0, &r0, &e0);
    uint32_t d0 = 0;
    if (rc0 == 0)
        cr_assert_eq(em_ratings_dense_renumber(&r0, u0, i0, &d0, &e0), 0);
    int rc1 = em_als_read_ratings(sc, path, &o, u1, i1, &x, &e1);
    cr_assert_eq(rc0 < 0, fails, "driver: %d %s", rc0, e0.msg);
    cr_assert_eq(rc1 < 0, fails, "executors: %d %s", rc1, e1.msg);
    if (fails) {
        cr_assert(strstr(e1.msg, e0.msg), "executors '%s', driver '%s'", e1.msg, e0.msg);
    } else {
        cr_assert_eq(x.dense, d0);
        /* movies 1..n are dense (unless a movie line was skipped) */
        cr_assert_eq(d0 & 2, em_idmap_size(i0) == 400 ? 2u : 0u, "%d items", em_idmap_size(i0));
        cr_assert_eq(x.skipped, r0.skipped);
        cr_assert_eq(x.lines, r0.lines);
        assert_same_ratings(x.ratings, &r0);
        assert_same_names(u0, u1);
        assert_same_names(i0, i1);
    }
    em_als_ratings_release(sc, &x);
    em_ratings_destroy(&r0);
    em_idmap_free(u0);
    em_idmap_free(i0);
    em_idmap_free(u1);
    em_idmap_free(i1);
}

Test(als_features, netflix_on_the_executors, .init = mkdir_tmp, .fini = rm_tmp, .timeout = 240)
{
    em_context *sc = em_test_ctx_new("local-cluster[2,1]");
    const char *p = write_netflix("nf.txt", 400, 0, false);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_gt(st.st_size, 2 << 20, "more than one range");
    netflix_compare(sc, p, false, false);
    /* a bad rating line late in the file: the same FILE:LINE message */
    netflix_compare(sc, write_netflix("bad.txt", 400, 150000, false), false, true);
    /* skipped: counted the same; a bad movie line skipped keeps the previous movie */
    netflix_compare(sc, write_netflix("bad2.txt", 400, 150000, false), true, false);
    size_t movie_line = 0;
    {   /* the line number of a movie line in the last third */
        FILE *f = fopen(p, "r");
        char buf[128];
        size_t ln = 0;
        while (fgets(buf, sizeof buf, f)) {
            ln++;
            if (ln > 120000 && strchr(buf, ':')) {
                movie_line = ln;
                break;
            }
        }
        fclose(f);
    }
    cr_assert_gt(movie_line, 0u);
    netflix_compare(sc, write_netflix("bad3.txt", 400, movie_line, true), true, false);
    netflix_compare(sc, write_netflix("bad4.txt", 400, movie_line, true), false, true);
    em_context_free(sc);
}
