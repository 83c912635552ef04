/* tests/unit/linalg/test_matrix.c - the distributed matrices of mllib/linalg/matrix.h
 * against plain loops on the collected matrix: column statistics, Gramian and product with
 * a local matrix (dense, labeled dense and sparse rows; 1e-10 relative), and the round
 * trip rows -> indexed rows -> coordinate entries -> indexed rows -> rows. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/linalg/matrix.h"

enum { R = 500, C = 7, K = 3 };

static double A[R][C];

static em_context *ctx_new(void)
{
    em_conf *c = em_conf_new();
    em_conf_set(c, "ember.master", "local[2]");
    em_err err = EM_ERR_INIT;
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert(sc, "%s", err.msg);
    return sc;
}

/* A with about half its entries zero, as dense, labeled dense (label = row) or sparse. */
static em_ml_data make(em_context *sc, int kind)
{
    static uint8_t buf[R][8 + 8 + C * 12 + 8];
    static em_rec recs[R];
    em_rng g;
    em_rng_seed(&g, 5);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++)
            A[i][j] = em_rng_double(&g) < 0.5 ? 0 : 3 + em_rng_gaussian(&g);
    em_ml_data d = {.dim = C, .sparse = kind == 2, .labeled = kind == 1};
    for (int i = 0; i < R; i++) {
        size_t n = 0;
        if (kind == 1) {
            double l = i;
            memcpy(buf[i], &l, 8);
            n = 8;
        }
        if (kind < 2) {
            memcpy(buf[i] + n, A[i], sizeof A[i]);
            n += sizeof A[i];
        } else {
            uint32_t idx[C], m = 0;
            double val[C];
            for (int j = 0; j < C; j++)
                if (A[i][j] != 0) {
                    idx[m] = j;
                    val[m++] = A[i][j];
                }
            em_vbuf b;
            em_vbuf_init(&b);
            em_ml_sparse_encode(m, idx, val, &b);
            memcpy(buf[i], b.data, b.len);
            n = b.len;
            em_vbuf_destroy(&b);
        }
        recs[i].val = em_slice_make(buf[i], n);
    }
    d.rows = kind == 2 ? em_parallelize(sc, EM_REC_BYTES, 0, recs, R, 3)
                       : em_parallelize(sc, EM_REC_FIXED, (uint32_t)recs[0].val.n, recs, R, 3);
    return d;
}

static void near(double a, double b, const char *what, int i)
{
    cr_assert_leq(fabs(a - b), 1e-10 * fmax(1, fabs(b)), "%s %d: %.17g vs %.17g", what, i, a,
                  b);
}

Test(matrix, stats_gramian_multiply_every_layout)
{
    em_context *sc = ctx_new();
    double B[C][K];
    for (int j = 0; j < C; j++)
        for (int t = 0; t < K; t++)
            B[j][t] = j - 2.0 * t;
    for (int kind = 0; kind < 3; kind++) {
        em_ml_data d = make(sc, kind);
        em_err err = EM_ERR_INIT;
        em_ml_colstats s;
        cr_assert_eq(em_ml_col_stats(&d, &s, &err), 0, "%s", err.msg);
        cr_assert_eq(s.count, R);
        for (int j = 0; j < C; j++) {
            double mean = 0, var = 0, mn = INFINITY, mx = -INFINITY;
            uint64_t nz = 0;
            for (int i = 0; i < R; i++) {
                mean += A[i][j] / R;
                mn = fmin(mn, A[i][j]);
                mx = fmax(mx, A[i][j]);
                nz += A[i][j] != 0;
            }
            for (int i = 0; i < R; i++)
                var += (A[i][j] - mean) * (A[i][j] - mean) / (R - 1);
            near(s.mean[j], mean, "mean", j);
            near(s.variance[j], var, "variance", j);
            cr_assert_eq(s.min[j], mn);
            cr_assert_eq(s.max[j], mx);
            cr_assert_eq(s.nnz[j], nz);
        }
        em_ml_colstats_destroy(&s);
        double g[C * C];
        cr_assert_eq(em_ml_gramian(&d, g, &err), 0, "%s", err.msg);
        for (int p = 0; p < C; p++)
            for (int q = 0; q < C; q++) {
                double want = 0;
                for (int i = 0; i < R; i++)
                    want += A[i][p] * A[i][q];
                near(g[p * C + q], want, "gram", p * C + q);
            }
        em_ml_data y;
        cr_assert_eq(em_ml_multiply(&d, &B[0][0], K, &y, &err), 0, "%s", err.msg);
        em_records rs = {0};
        cr_assert_eq(em_rdd_collect(y.rows, &rs, &err), 0, "%s", err.msg);
        cr_assert_eq(rs.n, R);
        size_t lab = kind == 1 ? 1 : 0;
        for (size_t i = 0; i < R; i++) {
            double row[K + 1];
            cr_assert_eq(rs.recs[i].val.n, 8 * (K + lab));
            memcpy(row, rs.recs[i].val.p, rs.recs[i].val.n);
            if (lab)
                cr_assert_eq(row[0], (double)i);
            for (int t = 0; t < K; t++) {
                double want = 0;
                for (int j = 0; j < C; j++)
                    want += A[i][j] * B[j][t];
                near(row[lab + t], want, "product", (int)i);
            }
        }
        em_records_destroy(&rs);
        em_ml_data_release(&y);
        em_ml_data_release(&d);
    }
    em_context_free(sc);
}

Test(matrix, indexed_and_coordinate_round_trip)
{
    em_context *sc = ctx_new();
    for (int kind = 0; kind < 3; kind++) {
        em_ml_data d = make(sc, kind), back;
        em_ml_matrix ix, co, ix2;
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_ml_to_indexed(&d, &ix, &err), 0, "%s", err.msg);
        cr_assert_eq(em_ml_indexed_to_coordinate(&ix, &co, &err), 0, "%s", err.msg);
        uint64_t n = 0, nz = 0;
        for (int i = 0; i < R; i++)
            for (int j = 0; j < C; j++)
                nz += A[i][j] != 0;
        cr_assert_eq(em_rdd_count(co.rdd, &n, &err), 0, "%s", err.msg);
        cr_assert_eq(n, nz);
        cr_assert_eq(em_ml_coordinate_to_indexed(&co, &ix2, &err), 0, "%s", err.msg);
        em_records rs = {0};
        cr_assert_eq(em_rdd_collect(ix2.rdd, &rs, &err), 0, "%s", err.msg);
        double got[R][C];
        memset(got, 0, sizeof got);
        for (size_t r = 0; r < rs.n; r++) {
            int64_t i = em_dec_i64(rs.recs[r].key.p);
            em_ml_row row;
            cr_assert(i >= 0 && i < R);
            cr_assert_eq(em_ml_row_view(&ix2.layout, rs.recs[r].val, &row, &err), 0, "%s",
                         err.msg);
            for (uint32_t q = 0; q < row.sp.nnz; q++)
                got[i][em_ml_sparse_idx(&row.sp, q)] = em_ml_sparse_val(&row.sp, q);
        }
        cr_assert_eq(memcmp(got, A, sizeof A), 0, "layout %d", kind);
        em_records_destroy(&rs);
        cr_assert_eq(em_ml_indexed_to_rows(&ix, &back, &err), 0, "%s", err.msg);
        cr_assert_eq(em_rdd_count(back.rows, &n, &err), 0, "%s", err.msg);
        cr_assert_eq(n, R);
        em_ml_data_release(&back);
        em_ml_matrix_release(&ix);
        em_ml_matrix_release(&co);
        em_ml_matrix_release(&ix2);
        em_ml_data_release(&d);
    }
    em_context_free(sc);
}
