/* tests/unit/decomp/test_svd.c - em_svd against LAPACK's dgesvd on the collected matrix
 * (singular values to 1e-9 relative, vectors up to sign) for tall-skinny, wide, sparse,
 * labeled and rank-deficient inputs, through both paths; Lanczos and the Gramian agree;
 * U = A V Sigma^-1 as distributed rows; local[2] and local-cluster[2,1] give the same
 * values; bad arguments are errors. */
#include "decomp_util.h"

/* Runs em_svd on a (n x d) as the given layout and checks it against dgesvd: `want`
 * values (after the cut), values to 1e-9 relative, V to vtol up to sign, U too when
 * asked. */
typedef struct svd_case {
    const char *master;
    size_t n, d, rank;
    double density;
    uint32_t k, want;
    bool sparse, labeled, u;
    em_svd_mode mode, expect_mode;
    double vtol;
} svd_case;

static void check_u(const svd_case *t, const em_svd_result *r, const double *uref)
{
    size_t mn = t->n < t->d ? t->n : t->d;
    double *u = dt_collect(r->u.rows, t->n, r->k);
    for (uint32_t j = 0; j < r->k; j++) {
        double du = dt_diff_up_to_sign(t->n, u + j, r->k, uref + j, mn);
        cr_expect_lt(du, t->vtol, "U column %u differs by %g", j, du);
    }
    em_free(u);
}

static void run_case(const svd_case *t)
{
    em_context *sc = em_test_ctx_new(t->master ? t->master : "local[2]");
    double *a = dt_matrix(t->n, t->d, t->rank, t->density, 7 + t->n + t->d);
    size_t mn = t->n < t->d ? t->n : t->d;
    double *s = em_xmalloc(mn * 8), *vt = em_xmalloc(mn * t->d * 8);
    double *uref = t->u ? em_xmalloc(t->n * mn * 8) : NULL;
    dt_dgesvd(a, t->n, t->d, s, vt, uref);
    em_ml_data data = dt_data(sc, a, t->n, t->d, t->sparse, t->labeled, 3);
    em_svd_opts o = {.k = t->k, .mode = t->mode, .compute_u = t->u};
    em_svd_result r;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_svd(sc, &data, &o, &r, &err), 0, "%s", err.msg);
    cr_expect_eq(r.mode, t->expect_mode);
    cr_expect_eq(r.nrows, t->n);
    cr_assert_eq(r.k, t->want, "kept %u values, expected %u (s[want] = %g, s0 = %g)", r.k,
                 t->want, t->want < mn ? s[t->want] : 0.0, s[0]);
    for (uint32_t j = 0; j < r.k; j++) {
        cr_expect_lt(dt_rel(r.s[j], s[j]), 1e-9, "s[%u] = %.17g, dgesvd %.17g", j, r.s[j], s[j]);
        double dv = dt_diff_up_to_sign(t->d, r.v + j, r.k, vt + j * t->d, 1);
        cr_expect_lt(dv, t->vtol, "v[%u] differs by %g", j, dv);
    }
    if (t->u)
        check_u(t, &r, uref);
    em_svd_result_destroy(sc, &r);
    em_rdd_release(data.rows);
    em_context_free(sc);
    em_free(a);
    em_free(s);
    em_free(vt);
    em_free(uref);
}

Test(svd, gramian_tall_skinny_dense, .timeout = 60)
{
    run_case(&(svd_case){.n = 500, .d = 12, .density = 1, .k = 5, .want = 5, .u = true,
                         .expect_mode = EM_SVD_GRAMIAN, .vtol = 1e-8});
}

Test(svd, gramian_sparse_labeled, .timeout = 60)
{
    run_case(&(svd_case){.n = 400, .d = 40, .density = 0.3, .k = 6, .want = 6, .sparse = true,
                         .labeled = true, .u = true, .expect_mode = EM_SVD_GRAMIAN,
                         .vtol = 1e-8});
}

Test(svd, gramian_dense_labeled_all_values, .timeout = 60)
{
    run_case(&(svd_case){.n = 300, .d = 9, .density = 1, .k = 9, .want = 9, .labeled = true,
                         .expect_mode = EM_SVD_GRAMIAN, .vtol = 1e-8});
}

Test(svd, lanczos_wide_dense, .timeout = 60)
{
    run_case(&(svd_case){.n = 60, .d = 400, .density = 1, .k = 6, .want = 6, .u = true,
                         .mode = EM_SVD_LANCZOS, .expect_mode = EM_SVD_LANCZOS,
                         .vtol = 1e-7});
}

Test(svd, gramian_wide_dense, .timeout = 60)
{
    run_case(&(svd_case){.n = 60, .d = 400, .density = 1, .k = 6, .want = 6,
                         .mode = EM_SVD_GRAMIAN, .expect_mode = EM_SVD_GRAMIAN,
                         .vtol = 1e-7});
}

/* More columns than EM_SVD_GRAMIAN_MAX_DIM: auto takes the Lanczos path. */
Test(svd, lanczos_auto_wide_sparse, .timeout = 120)
{
    run_case(&(svd_case){.n = 300, .d = 2500, .density = 0.01, .k = 5, .want = 5,
                         .sparse = true, .u = true, .expect_mode = EM_SVD_LANCZOS,
                         .vtol = 1e-7});
}

Test(svd, lanczos_tall_skinny_sparse_labeled, .timeout = 60)
{
    run_case(&(svd_case){.n = 500, .d = 30, .density = 0.4, .k = 4, .want = 4, .sparse = true,
                         .labeled = true, .mode = EM_SVD_LANCZOS,
                         .expect_mode = EM_SVD_LANCZOS, .vtol = 1e-7});
}

/* Rank 4, 8 values asked: the cut keeps 4, on both paths. */
Test(svd, rank_deficient_gramian, .timeout = 60)
{
    run_case(&(svd_case){.n = 200, .d = 30, .rank = 4, .k = 8, .want = 4, .u = true,
                         .expect_mode = EM_SVD_GRAMIAN, .vtol = 1e-7});
}

Test(svd, rank_deficient_lanczos, .timeout = 60)
{
    run_case(&(svd_case){.n = 200, .d = 30, .rank = 4, .k = 8, .want = 4,
                         .mode = EM_SVD_LANCZOS, .expect_mode = EM_SVD_LANCZOS,
                         .vtol = 1e-7});
}

Test(svd, rank_deficient_wide_sparse_lanczos, .timeout = 60)
{
    run_case(&(svd_case){.n = 40, .d = 300, .rank = 3, .k = 6, .want = 3, .sparse = true,
                         .mode = EM_SVD_LANCZOS, .expect_mode = EM_SVD_LANCZOS,
                         .vtol = 1e-7});
}

/* k = d with the basis the whole space: Lanczos is exact after d products. */
Test(svd, lanczos_all_values_small, .timeout = 60)
{
    run_case(&(svd_case){.n = 50, .d = 7, .density = 1, .k = 7, .want = 7,
                         .mode = EM_SVD_LANCZOS, .expect_mode = EM_SVD_LANCZOS,
                         .vtol = 1e-7});
}

/* The same data set through both paths and both backends: the same values. */
static void both_paths(const char *master, double out[2][5])
{
    em_context *sc = em_test_ctx_new(master);
    size_t n = 300, d = 50;
    double *a = dt_matrix(n, d, 0, 0.5, 99);
    em_ml_data dense = dt_data(sc, a, n, d, false, false, 4);
    em_ml_data sparse = dt_data(sc, a, n, d, true, false, 4);
    em_svd_mode modes[2] = {EM_SVD_GRAMIAN, EM_SVD_LANCZOS};
    for (int m = 0; m < 2; m++)
        for (int sp = 0; sp < 2; sp++) {
            em_svd_opts o = {.k = 5, .mode = modes[m]};
            em_svd_result r;
            em_err err = EM_ERR_INIT;
            cr_assert_eq(em_svd(sc, sp ? &sparse : &dense, &o, &r, &err), 0, "%s: %s", master,
                         err.msg);
            cr_assert_eq(r.k, 5);
            for (int j = 0; j < 5; j++) {
                if (sp)
                    cr_expect_lt(dt_rel(r.s[j], out[m][j]), 1e-12, "sparse vs dense s[%d]", j);
                else
                    out[m][j] = r.s[j];
            }
            em_svd_result_destroy(sc, &r);
        }
    em_rdd_release(dense.rows);
    em_rdd_release(sparse.rows);
    em_context_free(sc);
    em_free(a);
}

Test(svd, lanczos_agrees_with_gramian_local_and_cluster, .timeout = 180)
{
    double loc[2][5], clu[2][5];
    both_paths("local[2]", loc);
    both_paths("local-cluster[2,1]", clu);
    for (int j = 0; j < 5; j++) {
        cr_expect_lt(dt_rel(loc[1][j], loc[0][j]), 1e-10, "lanczos vs gramian s[%d]", j);
        cr_expect_lt(dt_rel(clu[0][j], loc[0][j]), 1e-12, "cluster vs local gramian s[%d]", j);
        cr_expect_lt(dt_rel(clu[1][j], loc[1][j]), 1e-10, "cluster vs local lanczos s[%d]", j);
    }
}

Test(svd, bad_arguments_are_errors, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[2]");
    double *a = dt_matrix(20, 5, 0, 1, 3);
    em_ml_data data = dt_data(sc, a, 20, 5, false, false, 2);
    em_svd_result r;
    em_err err = EM_ERR_INIT;
    cr_expect_eq(em_svd(sc, &data, &(em_svd_opts){.k = 0}, &r, &err), EM_EINVAL);
    cr_expect_eq(em_svd(sc, &data, &(em_svd_opts){.k = 6}, &r, &err), EM_EINVAL);
    cr_expect(strstr(err.msg, "1..5"), "%s", err.msg);
    cr_expect_eq(em_svd(sc, &data, &(em_svd_opts){.k = 2, .rcond = -1}, &r, &err), EM_EINVAL);
    em_ml_data wide = data;
    wide.dim = EM_DECOMP_MAX_GRAM_DIM + 1;
    cr_expect_eq(em_svd(sc, &wide, &(em_svd_opts){.k = 2, .mode = EM_SVD_GRAMIAN}, &r, &err),
                 EM_EINVAL);
    em_ml_data none = {0};
    cr_expect_eq(em_svd(sc, &none, &(em_svd_opts){.k = 2}, &r, &err), EM_EINVAL);
    /* A layout that does not match the records: the task fails, naming the cause. */
    em_ml_data lie = data;
    lie.dim = 4;
    cr_expect_lt(em_svd(sc, &lie, &(em_svd_opts){.k = 2}, &r, &err), 0);
    cr_expect(strstr(err.msg, "dense rows"), "%s", err.msg);
    cr_expect_null(r.s);
    /* Lanczos with a product budget too small to converge. */
    cr_expect_eq(em_svd(sc, &data, &(em_svd_opts){.k = 2, .mode = EM_SVD_LANCZOS, .ncv = 3,
                                                  .max_products = 3},
                        &r, &err),
                 EM_EINVAL);
    cr_expect(strstr(err.msg, "not converged"), "%s", err.msg);
    cr_expect_eq(em_svd_mode_parse("lanczos"), EM_SVD_LANCZOS);
    cr_expect_eq(em_svd_mode_parse("fast"), -1);
    em_rdd_release(data.rows);
    em_context_free(sc);
    em_free(a);
}

/* Corrupt sparse rows (indices out of order) are an error, never a crash. */
Test(svd, corrupt_sparse_rows_are_errors, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[2]");
    uint8_t rec[8 + 8 + 16];
    memset(rec, 0, sizeof rec);
    em_store_le32(rec, 2);
    em_store_le32(rec + 8, 3);
    em_store_le32(rec + 12, 1);   /* 3 then 1: not ascending */
    em_rec r = {.val = em_slice_make(rec, sizeof rec)};
    em_rdd *rows = em_parallelize(sc, EM_REC_BYTES, 0, &r, 1, 1);
    em_ml_data data = {.rows = rows, .sparse = true, .dim = 5};
    em_svd_result res;
    em_err err = EM_ERR_INIT;
    cr_expect_eq(em_svd(sc, &data, &(em_svd_opts){.k = 1}, &res, &err), EM_ECORRUPT, "%s",
                 err.msg);
    cr_expect(strstr(err.msg, "ascend"), "%s", err.msg);
    cr_expect_eq(em_svd(sc, &data, &(em_svd_opts){.k = 1, .mode = EM_SVD_LANCZOS}, &res, &err),
                 EM_ECORRUPT, "%s", err.msg);
    em_rdd_release(rows);
    em_context_free(sc);
}
