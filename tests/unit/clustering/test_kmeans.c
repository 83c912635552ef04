/* tests/unit/clustering/test_kmeans.c - k-means on the engine: well-separated blobs give
 * back their true centres (every initialization), the cost never increases across Lloyd
 * iterations, degenerate input (fewer distinct points than k), cosine distance, sparse rows
 * equal to dense ones, predict, save/load (corrupt files rejected), and local[2] against
 * local-cluster[2,1] for one seed (bitwise equal centres). */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/clustering/kmeans.h"
#include "tests/support/ctx.h"

enum { D = 3, KT = 4, N = 4000 };

static const double TRUE_C[KT][D] = {{10, 10, 0}, {-10, 10, 5}, {10, -10, -5}, {-10, -10, 0}};

/* n rows of blob data (row i from blob i % KT, std 0.5), dense FIXED, in 4 partitions. */
static em_ml_data blobs(em_context *sc, size_t n, bool sparse)
{
    static double x[N][D];
    static uint8_t sp[N][64];
    static em_rec recs[N];
    em_rng g;
    em_rng_seed(&g, 42);
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < D; j++)
            x[i][j] = TRUE_C[i % KT][j] + 0.5 * em_rng_gaussian(&g);
        recs[i].val = em_slice_make(x[i], sizeof x[i]);
        if (sparse) {
            uint32_t idx[D] = {0, 1, 2};
            em_vbuf b;
            em_vbuf_init(&b);
            cr_assert_eq(em_ml_sparse_encode(D, idx, x[i], &b), 0);
            memcpy(sp[i], b.data, b.len);
            recs[i].val = em_slice_make(sp[i], b.len);
            em_vbuf_destroy(&b);
        }
    }
    em_ml_data d = {.sparse = sparse, .dim = D, .nrows = n};
    d.rows = sparse ? em_parallelize(sc, EM_REC_BYTES, 0, recs, n, 4)
                    : em_parallelize(sc, EM_REC_FIXED, 8 * D, recs, n, 4);
    return d;
}

static em_kmeans_model *train(em_context *sc, const em_ml_data *d, em_kmeans_params *p)
{
    em_kmeans_model *m = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_kmeans_train(sc, d, p, &m, &err), 0, "%s", err.msg);
    return m;
}

static void check_recovers(const em_kmeans_model *m)
{
    cr_assert_eq(m->k, KT);
    for (int t = 0; t < KT; t++) {
        double best = INFINITY;
        for (uint32_t c = 0; c < m->k; c++) {
            double s = 0;
            for (int j = 0; j < D; j++)
                s += pow(m->centers[c * D + j] - TRUE_C[t][j], 2);
            best = fmin(best, sqrt(s));
        }
        cr_assert_lt(best, 0.1, "true centre %d is %g from every centre found", t, best);
    }
}

Test(kmeans, blobs_recover_true_centres_every_init)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_ml_data d = blobs(sc, N, false);
    em_kmeans_init inits[] = {EM_KMEANS_INIT_PARALLEL, EM_KMEANS_INIT_PLUSPLUS};
    for (int i = 0; i < 2; i++) {
        em_kmeans_params p = {.k = KT, .seed = 5, .tol = 1e-6, .init = inits[i]};
        em_kmeans_model *m = train(sc, &d, &p);
        check_recovers(m);
        /* every row is 0.5 * N(0, I_3) from its centre: cost ~ N * 3 * 0.25 */
        cr_assert(m->cost > 0.8 * N * 0.75 && m->cost < 1.2 * N * 0.75, "cost %g", m->cost);
        cr_assert(m->converged);
        em_kmeans_model_free(m);
    }
    em_ml_data_release(&d);
    em_context_free(sc);
}

static double costs[64];
static uint32_t ncosts;

static void record(void *ud, uint32_t it, double cost, double secs)
{
    (void)ud, (void)secs;
    cr_assert_eq(it, ncosts + 1);
    if (ncosts < 64)
        costs[ncosts++] = cost;
}

Test(kmeans, cost_never_increases)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_ml_data d = blobs(sc, N, false);
    for (uint64_t seed = 1; seed <= 4; seed++) {
        em_kmeans_params p = {.k = 7, .seed = seed, .init = EM_KMEANS_INIT_RANDOM,
                              .max_iter = 50, .progress = record};
        ncosts = 0;
        em_kmeans_model *m = train(sc, &d, &p);
        cr_assert_gt(ncosts, 1);
        for (uint32_t i = 1; i < ncosts; i++)
            cr_assert_leq(costs[i], costs[i - 1] * (1 + 1e-12), "seed %llu iteration %u: %.17g "
                          "after %.17g", (unsigned long long)seed, i + 1, costs[i],
                          costs[i - 1]);
        /* the exact final cost equals the last assignment's when converged */
        if (m->converged)
            cr_assert_lt(fabs(m->cost - costs[ncosts - 1]), 1e-9 * m->cost);
        em_kmeans_model_free(m);
    }
    em_ml_data_release(&d);
    em_context_free(sc);
}

Test(kmeans, fewer_distinct_points_than_k)
{
    em_context *sc = em_test_ctx_new("local[2]");
    double pts[3][2] = {{1, 2}, {3, 4}, {-5, 0}};
    em_rec recs[30];
    for (int i = 0; i < 30; i++)
        recs[i].val = em_slice_make(pts[i % 3], 16);
    em_ml_data d = {.dim = 2, .rows = em_parallelize(sc, EM_REC_FIXED, 16, recs, 30, 3)};
    em_kmeans_init inits[] = {EM_KMEANS_INIT_PARALLEL, EM_KMEANS_INIT_PLUSPLUS,
                              EM_KMEANS_INIT_RANDOM};
    for (int i = 0; i < 3; i++) {
        em_kmeans_params p = {.k = 5, .seed = 3, .init = inits[i]};
        em_kmeans_model *m = train(sc, &d, &p);
        cr_assert_leq(m->k, 3, "init %d: %u centres", i, m->k);
        if (i < 2) {
            cr_assert_eq(m->k, 3, "init %d", i);
            cr_assert_eq(m->cost, 0);
        }
        em_kmeans_model_free(m);
    }
    em_ml_data_release(&d);
    em_context_free(sc);
}

Test(kmeans, sparse_rows_equal_dense_rows)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_ml_data d = blobs(sc, N, false), s = blobs(sc, N, true);
    double init[KT * D];
    for (int i = 0; i < KT * D; i++)
        init[i] = TRUE_C[i / D][i % D] + 1.0;
    em_kmeans_params p = {.k = KT, .init_centers = init, .init_k = KT, .max_iter = 10};
    em_kmeans_model *a = train(sc, &d, &p), *b = train(sc, &s, &p);
    cr_assert_eq(a->iterations, b->iterations);
    for (int i = 0; i < KT * D; i++)
        cr_assert_lt(fabs(a->centers[i] - b->centers[i]), 1e-9);
    cr_assert_lt(fabs(a->cost - b->cost), 1e-9 * a->cost);
    /* predict: one vector and the data set agree */
    em_rdd *pr = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_kmeans_predict_data(sc, a, &d, &pr, &err), 0, "%s", err.msg);
    em_records rs = {0};
    cr_assert_eq(em_rdd_collect(pr, &rs, &err), 0, "%s", err.msg);
    cr_assert_eq(rs.n, N);
    for (size_t i = 0; i < rs.n; i++) {
        double x[D];
        em_records xs = {0};
        (void)xs;
        uint32_t c = em_load_le32(rs.recs[i].val.p);
        cr_assert_lt(c, KT);
        if (i < 8) {
            for (int j = 0; j < D; j++)
                x[j] = TRUE_C[i % KT][j];
            uint32_t c1 = em_kmeans_predict(a, x);
            cr_assert_eq(c, c1, "row %zu", i);
        }
    }
    em_records_destroy(&rs);
    em_rdd_release(pr);
    em_kmeans_model_free(a);
    em_kmeans_model_free(b);
    em_ml_data_release(&d);
    em_ml_data_release(&s);
    em_context_free(sc);
}

Test(kmeans, cosine_distance)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_ml_data d = blobs(sc, N, false);
    em_kmeans_params p = {.k = KT, .seed = 2, .distance = EM_KMEANS_COSINE, .tol = 1e-9};
    em_kmeans_model *m = train(sc, &d, &p);
    for (uint32_t c = 0; c < m->k; c++) {
        double s = 0;
        for (int j = 0; j < D; j++)
            s += m->centers[c * D + j] * m->centers[c * D + j];
        cr_assert_lt(fabs(s - 1), 1e-12, "centre %u has norm^2 %g", c, s);
    }
    cr_assert(m->cost >= 0 && m->cost < 0.05 * N, "cost %g", m->cost);
    em_kmeans_model_free(m);
    em_ml_data_release(&d);
    em_context_free(sc);
}

Test(kmeans, save_load_round_trip_and_corruption)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_ml_data d = blobs(sc, N, false);
    em_kmeans_params p = {.k = KT, .seed = 9};
    em_kmeans_model *m = train(sc, &d, &p), *l = NULL;
    char dir[] = "/tmp/em_kmXXXXXX", path[64], file[96];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model", dir);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_kmeans_model_save(m, path, &err), 0, "%s", err.msg);
    cr_assert_eq(em_kmeans_model_save(m, path, &err), EM_EINVAL);
    cr_assert_eq(em_kmeans_model_load(path, &l, &err), 0, "%s", err.msg);
    cr_assert_eq(l->k, m->k);
    cr_assert_eq(memcmp(l->centers, m->centers, 8 * (size_t)m->k * D), 0);
    cr_assert_eq(l->cost, m->cost);
    em_kmeans_model_free(l);
    /* flip one byte of the centres: the checksum catches it */
    snprintf(file, sizeof file, "%s/centers.bin", path);
    FILE *f = fopen(file, "r+b");
    fseek(f, 5, SEEK_SET);
    fputc(0x55, f);
    fclose(f);
    cr_assert_eq(em_kmeans_model_load(path, &l, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "checksum"), "%s", err.msg);
    const char *bad = "{\"class\": \"ember.KMeansModel\", \"version\": 2}";
    cr_assert_eq(em_kmeans_model_decode("x", (const uint8_t *)bad, strlen(bad), NULL, 0, &l,
                                        &err), EM_ECORRUPT);
    em_kmeans_model_free(m);
    em_ml_data_release(&d);
    em_context_free(sc);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static em_kmeans_model *train_on(const char *master, em_kmeans_init init)
{
    em_context *sc = em_test_ctx_new(master);
    em_ml_data d = blobs(sc, N, false);
    em_kmeans_params p = {.k = 6, .seed = 11, .init = init, .max_iter = 30};
    em_kmeans_model *m = train(sc, &d, &p);
    em_ml_data_release(&d);
    em_context_free(sc);
    return m;
}

Test(kmeans, local_and_cluster_agree, .timeout = 240)
{
    em_kmeans_init inits[] = {EM_KMEANS_INIT_PARALLEL, EM_KMEANS_INIT_PLUSPLUS,
                              EM_KMEANS_INIT_RANDOM};
    for (int i = 0; i < 3; i++) {
        em_kmeans_model *a = train_on("local[2]", inits[i]);
        em_kmeans_model *b = train_on("local-cluster[2,1]", inits[i]);
        cr_assert_eq(a->k, b->k, "init %d", i);
        cr_assert_eq(a->iterations, b->iterations, "init %d", i);
        cr_assert_eq(memcmp(a->init_centers, b->init_centers, 8 * (size_t)a->k * D), 0,
                     "init %d: initial centres differ", i);
        for (size_t j = 0; j < (size_t)a->k * D; j++)
            cr_assert_lt(fabs(a->centers[j] - b->centers[j]), 1e-9, "init %d", i);
        cr_assert_lt(fabs(a->cost - b->cost), 1e-9 * a->cost);
        em_kmeans_model_free(a);
        em_kmeans_model_free(b);
    }
}

Test(kmeans, bad_parameters)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_ml_data d = blobs(sc, 100, false);
    em_kmeans_model *m = NULL;
    em_err err = EM_ERR_INIT;
    em_kmeans_params p = {.k = 0};
    cr_assert_eq(em_kmeans_train(sc, &d, &p, &m, &err), EM_EINVAL);
    p.k = 3;
    p.tol = -1;
    cr_assert_eq(em_kmeans_train(sc, &d, &p, &m, &err), EM_EINVAL);
    cr_assert_null(m);
    em_ml_data_release(&d);
    em_context_free(sc);
}
