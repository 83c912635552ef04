/* tests/unit/decomp/test_pca.c - em_pca_fit against dgesvd of the centred matrix (explained
 * variance s^2 / (n - 1) and its ratio to 1e-9 relative, components up to sign) for dense
 * and sparse rows; a large mean offset does not cost accuracy (the pairwise covariance
 * update); the projection equals (x - mean) C^T; save/load round trip, corrupt files and
 * bad arguments are errors that leave nothing behind. */
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include "decomp_util.h"
#include "mllib/decomp/decomp_int.h"

/* The reference: dgesvd of a - column means. s (min), vt (min x d). */
static void centred_svd(const double *a, size_t n, size_t d, double *s, double *vt,
                        double *mean)
{
    double *c = em_xmalloc(n * d * sizeof *c);
    for (size_t j = 0; j < d; j++) {
        mean[j] = 0;
        for (size_t i = 0; i < n; i++)
            mean[j] += a[i * d + j];
        mean[j] /= (double)n;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            c[i * d + j] = a[i * d + j] - mean[j];
    dt_dgesvd(c, n, d, s, vt, NULL);
    em_free(c);
}

static void check_model(const em_pca_model *m, const double *a, size_t n, size_t d,
                        uint32_t k, double rtol)
{
    size_t mn = n < d ? n : d;
    double *s = em_xmalloc(mn * 8), *vt = em_xmalloc(mn * d * 8), *mean = em_xmalloc(d * 8);
    centred_svd(a, n, d, s, vt, mean);
    double tot = 0;
    for (size_t i = 0; i < mn; i++)
        tot += s[i] * s[i];
    cr_assert_eq(m->k, k);
    cr_assert_eq(m->dim, d);
    cr_expect_eq(m->nrows, n);
    cr_expect_lt(dt_rel(m->total_variance, tot / (double)(n - 1)), rtol);
    for (size_t j = 0; j < d; j++)
        cr_expect_lt(fabs(m->mean[j] - mean[j]), 1e-12 * (1 + fabs(mean[j])), "mean[%zu]", j);
    for (uint32_t i = 0; i < k; i++) {
        double ev = s[i] * s[i] / (double)(n - 1);
        cr_expect_lt(dt_rel(m->explained_variance[i], ev), rtol, "ev[%u] %.17g vs %.17g", i,
                     m->explained_variance[i], ev);
        cr_expect_lt(dt_rel(m->explained_variance_ratio[i], s[i] * s[i] / tot), rtol,
                     "ratio[%u]", i);
        double dv = dt_diff_up_to_sign(d, m->components + i * d, 1, vt + i * d, 1);
        cr_expect_lt(dv, 1e-7, "component %u differs by %g", i, dv);
    }
    em_free(s);
    em_free(vt);
    em_free(mean);
}

static void fit_case(bool sparse, double density, double offset)
{
    em_context *sc = em_test_ctx_new("local[2]");
    size_t n = 700, d = 15;
    uint32_t k = 4;
    double *a = dt_matrix(n, d, 0, density, 11);
    for (size_t i = 0; i < n * d; i++)
        if (a[i] != 0 || !sparse)
            a[i] += offset * (1 + (double)(i % d));
    em_ml_data data = dt_data(sc, a, n, d, sparse, false, 3);
    em_pca_model *m = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_pca_fit(sc, &data, k, NULL, &m, &err), 0, "%s", err.msg);
    check_model(m, a, n, d, k, 1e-9);
    em_pca_model_free(m);
    em_rdd_release(data.rows);
    em_context_free(sc);
    em_free(a);
}

Test(pca, dense_matches_centred_dgesvd, .timeout = 60)
{
    fit_case(false, 1, 0.5);
}

Test(pca, sparse_matches_centred_dgesvd, .timeout = 60)
{
    fit_case(true, 0.3, 0);
}

/* Columns around 1e5 with unit spread: A^T A - n mu mu^T would lose 10 of the 16 digits;
 * the pairwise update keeps them. */
Test(pca, large_mean_offset_keeps_accuracy, .timeout = 60)
{
    fit_case(false, 1, 1e5);
}

Test(pca, transform_projects_centred_rows, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[2]");
    size_t n = 200, d = 8;
    double *a = dt_matrix(n, d, 0, 0.6, 5);
    for (int sp = 0; sp < 2; sp++) {
        em_ml_data data = dt_data(sc, a, n, d, sp, sp, 3);
        em_pca_model *m = NULL;
        em_decomp_rows rows;
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_pca_fit(sc, &data, 3, NULL, &m, &err), 0, "%s", err.msg);
        cr_assert_eq(em_pca_transform(sc, m, &data, &rows, &err), 0, "%s", err.msg);
        cr_assert_eq(rows.width, 3);
        double *p = dt_collect(rows.rows, n, 3);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < 3; j++) {
                double want = 0;
                for (size_t q = 0; q < d; q++)
                    want += (a[i * d + q] - m->mean[q]) * m->components[j * d + q];
                cr_expect_lt(fabs(p[i * 3 + j] - want), 1e-12, "row %zu comp %zu", i, j);
            }
        em_free(p);
        em_decomp_rows_release(sc, &rows);
        em_pca_model_free(m);
        em_rdd_release(data.rows);
    }
    em_context_free(sc);
    em_free(a);
}

static em_pca_model *small_model(void)
{
    em_pca_model *m = em__dc_pca_alloc(4, 2);
    for (uint32_t i = 0; i < 4; i++)
        m->mean[i] = i * 0.25;
    for (uint32_t i = 0; i < 8; i++)
        m->components[i] = 0.1 * i - 0.3;
    m->explained_variance[0] = 2.5;
    m->explained_variance[1] = 0.5;
    m->total_variance = 4;
    m->explained_variance_ratio[0] = 2.5 / 4;
    m->explained_variance_ratio[1] = 0.5 / 4;
    m->nrows = 123;
    return m;
}

static bool dir_has_tmp(const char *parent)
{
    DIR *d = opendir(parent);
    bool found = false;
    for (struct dirent *e; d && (e = readdir(d));)
        found |= strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return found;
}

Test(pca, save_load_round_trip_and_corruption, .timeout = 30)
{
    char base[] = "/tmp/ember_pca_XXXXXX";
    cr_assert(mkdtemp(base));
    char *dir = em_xasprintf("%s/model", base);
    em_pca_model *m = small_model(), *back = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_pca_model_save(m, dir, &err), 0, "%s", err.msg);
    cr_expect_eq(em_pca_model_save(m, dir, &err), EM_EINVAL, "an existing dir is refused");
    cr_expect_not(dir_has_tmp(base));
    cr_assert_eq(em_pca_model_load(dir, &back, &err), 0, "%s", err.msg);
    cr_expect_eq(back->dim, 4);
    cr_expect_eq(back->k, 2);
    cr_expect_eq(back->nrows, 123);
    cr_expect_eq(memcmp(back->mean, m->mean, 4 * 8), 0);
    cr_expect_eq(memcmp(back->components, m->components, 8 * 8), 0);
    cr_expect_eq(back->explained_variance_ratio[0], m->explained_variance_ratio[0]);
    em_pca_model_free(back);
    /* Flip one byte of the arrays: the checksum catches it. */
    char *ap = em_xasprintf("%s/arrays.bin", dir);
    FILE *f = fopen(ap, "r+b");
    cr_assert(f);
    fseek(f, 9, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    cr_expect_eq(em_pca_model_load(dir, &back, &err), EM_ECORRUPT);
    cr_expect(strstr(err.msg, "checksum"), "%s", err.msg);
    cr_expect_null(back);
    /* Truncated file: the size check names it. */
    cr_assert_eq(truncate(ap, 16), 0);
    cr_expect_eq(em_pca_model_load(dir, &back, &err), EM_ECORRUPT);
    cr_expect(strstr(err.msg, "arrays.bin"), "%s", err.msg);
    em_free(ap);
    /* Metadata that lies about k. */
    const char *meta = "{\"class\":\"ember.pca\",\"version\":1,\"dim\":4,\"k\":5,\"nrows\":1,"
                       "\"total_variance\":1,\"arrays_crc32c\":0}";
    cr_expect_eq(em_pca_model_decode("x", (const uint8_t *)meta, strlen(meta), NULL, 0, &back,
                                     &err),
                 EM_ECORRUPT);
    em_err ignore = EM_ERR_INIT;
    em_rm_rf(base, &ignore);
    em_free(dir);
    em_pca_model_free(m);
}

Test(pca, bad_arguments_are_errors, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[2]");
    double *a = dt_matrix(1, 4, 0, 1, 3);
    em_ml_data one = dt_data(sc, a, 1, 4, false, false, 1);
    em_pca_model *m = NULL;
    em_decomp_rows rows;
    em_err err = EM_ERR_INIT;
    cr_expect_eq(em_pca_fit(sc, &one, 2, NULL, &m, &err), EM_EINVAL);
    cr_expect(strstr(err.msg, "at least 2"), "%s", err.msg);
    cr_expect_eq(em_pca_fit(sc, &one, 5, NULL, &m, &err), EM_EINVAL);
    cr_expect_eq(em_pca_fit(sc, &one, 0, NULL, &m, &err), EM_EINVAL);
    cr_expect_null(m);
    em_pca_model *s = small_model();
    em_ml_data wrong = one;
    wrong.dim = 5;
    cr_expect_eq(em_pca_transform(sc, s, &wrong, &rows, &err), EM_EINVAL);
    cr_expect_null(rows.rows);
    em_pca_model_free(s);
    em_rdd_release(one.rows);
    em_context_free(sc);
    em_free(a);
}
