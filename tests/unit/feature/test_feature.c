/* tests/unit/feature/test_feature.c - feature transformers: standard scaler (against the
 * unbiased mean/std computed here), min-max scaler (constant column -> middle of the
 * range), one-hot encoder (a hand-written table, dense and sparse input, drop_last, bad
 * category named), MurmurHash3 against SMHasher's published vectors and the hasher's
 * column sums, random split (disjoint, complete, the same in local[2] and
 * local-cluster[2,1]), and save/load round trips with corruption rejected. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/feature/feature.h"
#include "tests/support/ctx.h"

#define close_to(a, b) cr_assert(fabs((a) - (b)) < 1e-12, "%s = %.17g, want %.17g", #a, (a), (b))

/* label, 3 features; column 2 (index 1) is a category in {0, 1, 2}. */
static const double X[4][4] = {{0, 1, 0, 2}, {1, 3, 1, 0}, {0, 5, 2, 4}, {1, 7, 0, 6}};

static uint8_t g_sp[8][128];
static em_rec g_recs[8];

static em_ml_data data(em_context *sc, bool sparse)
{
    for (size_t i = 0; i < 4; i++) {
        if (!sparse) {
            g_recs[i].val = em_slice_make(X[i], 32);
            continue;
        }
        uint32_t idx[3], nnz = 0;
        double val[3];
        for (uint32_t j = 0; j < 3; j++)
            if (X[i][j + 1] != 0) {
                idx[nnz] = j;
                val[nnz++] = X[i][j + 1];
            }
        em_vbuf b;
        em_vbuf_init(&b);
        em_vbuf_append(&b, &X[i][0], 8);
        em_ml_sparse_encode(nnz, idx, val, &b);
        memcpy(g_sp[i], b.data, b.len);
        g_recs[i].val = em_slice_make(g_sp[i], b.len);
        em_vbuf_destroy(&b);
    }
    em_ml_data d = {.sparse = sparse, .labeled = true, .dim = 3, .nrows = 4};
    d.rows = sparse ? em_parallelize(sc, EM_REC_BYTES, 0, g_recs, 4, 2)
                    : em_parallelize(sc, EM_REC_FIXED, 32, g_recs, 4, 2);
    return d;
}

/* The rows of a data set as dense arrays (label first), in order. */
static void collect_dense(const em_ml_data *d, double (*out)[16], size_t *n)
{
    em_records r = {0};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(d->rows, &r, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < r.n; i++) {
        em_ml_row v;
        cr_assert_eq(em_ml_row_view(d, r.recs[i].val, &v, &err), 0, "%s", err.msg);
        memset(out[i], 0, sizeof out[i]);
        out[i][0] = v.label;
        if (v.dense)
            memcpy(&out[i][1], v.dense, 8 * (size_t)d->dim);
        else
            for (uint32_t k = 0; k < v.sp.nnz; k++)
                out[i][1 + em_ml_sparse_idx(&v.sp, k)] = em_ml_sparse_val(&v.sp, k);
    }
    *n = r.n;
    em_records_destroy(&r);
}

Test(feature, standard_scaler, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_ml_data d = data(sc, false), o;
    em_ml_std_scaler s;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_ml_std_scaler_fit(&d, true, true, &s, &err), 0, "%s", err.msg);
    double mean[3] = {0}, sd[3] = {0};
    for (int j = 0; j < 3; j++) {
        for (int i = 0; i < 4; i++)
            mean[j] += X[i][j + 1] / 4;
        for (int i = 0; i < 4; i++)
            sd[j] += (X[i][j + 1] - mean[j]) * (X[i][j + 1] - mean[j]) / 3;
        sd[j] = sqrt(sd[j]);
        close_to(s.mean[j], mean[j]);
        close_to(s.std[j], sd[j]);
    }
    cr_assert_eq(em_ml_std_scaler_transform(&s, &d, &o, &err), 0, "%s", err.msg);
    double rows[8][16];
    size_t n;
    collect_dense(&o, rows, &n);
    cr_assert_eq(n, 4);
    for (int i = 0; i < 4; i++) {
        close_to(rows[i][0], X[i][0]);
        for (int j = 0; j < 3; j++)
            close_to(rows[i][j + 1], (X[i][j + 1] - mean[j]) / sd[j]);
    }
    em_ml_data_release(&o);
    /* sparse rows: with_mean refused, scaling only keeps the zeros */
    em_ml_data sp = data(sc, true);
    cr_assert_eq(em_ml_std_scaler_transform(&s, &sp, &o, &err), EM_EINVAL);
    s.with_mean = false;
    cr_assert_eq(em_ml_std_scaler_transform(&s, &sp, &o, &err), 0, "%s", err.msg);
    cr_assert(o.sparse);
    collect_dense(&o, rows, &n);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            close_to(rows[i][j + 1], X[i][j + 1] / sd[j]);
    /* save / load */
    char tmpl[] = "/tmp/fttestXXXXXX";
    cr_assert(mkdtemp(tmpl));
    char *dir = em_xasprintf("%s/std", tmpl);
    cr_assert_eq(em_ml_std_scaler_save(&s, dir, &err), 0, "%s", err.msg);
    em_ml_std_scaler l;
    cr_assert_eq(em_ml_std_scaler_load(dir, &l, &err), 0, "%s", err.msg);
    cr_assert(!l.with_mean && l.with_std && l.dim == 3);
    cr_assert_eq(memcmp(l.std, s.std, 24), 0);
    em_ml_std_scaler_destroy(&l);
    char *f = em_xasprintf("%s/std.bin", dir);
    FILE *fp = fopen(f, "r+b");
    fputc(0x55, fp);
    fclose(fp);
    cr_assert_eq(em_ml_std_scaler_load(dir, &l, &err), EM_ECORRUPT);
    char *cmd = em_xasprintf("rm -rf %s", tmpl);
    cr_assert_eq(system(cmd), 0);
    em_free(cmd);
    em_free(f);
    em_free(dir);
    em_ml_std_scaler_destroy(&s);
    em_ml_data_release(&o);
    em_ml_data_release(&sp);
    em_ml_data_release(&d);
    em_context_free(sc);
}

Test(feature, minmax_scaler, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_ml_data d = data(sc, true), o;   /* sparse in, dense out */
    em_ml_minmax_scaler s;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_ml_minmax_scaler_fit(&d, -1, 1, &s, &err), 0, "%s", err.msg);
    close_to(s.data_min[0], 1.0);
    close_to(s.data_max[0], 7.0);
    close_to(s.data_min[2], 0.0);
    cr_assert_eq(em_ml_minmax_scaler_transform(&s, &d, &o, &err), 0, "%s", err.msg);
    cr_assert(!o.sparse);
    double rows[8][16];
    size_t n;
    collect_dense(&o, rows, &n);
    close_to(rows[0][1], -1.0);      /* (1 - 1) / 6 * 2 - 1 */
    close_to(rows[1][1], -1.0 / 3);  /* (3 - 1) / 6 * 2 - 1 */
    close_to(rows[2][2], 1.0);
    close_to(rows[3][3], 1.0);
    s.data_max[1] = s.data_min[1];   /* a constant column maps to the middle */
    em_ml_data_release(&o);
    cr_assert_eq(em_ml_minmax_scaler_transform(&s, &d, &o, &err), 0);
    collect_dense(&o, rows, &n);
    close_to(rows[2][2], 0.0);
    em_ml_data_release(&o);
    em_ml_minmax_scaler_destroy(&s);
    em_ml_data_release(&d);
    em_context_free(sc);
}

Test(feature, onehot_table, .timeout = 60)
{
    /* column 2 in {0,1,2}, drop_last: out = (f1, f3, [cat 0], [cat 1]). */
    static const double want[4][5] = {
        {0, 1, 2, 1, 0}, {1, 3, 0, 0, 1}, {0, 5, 4, 0, 0}, {1, 7, 6, 1, 0}};
    em_context *sc = em_test_ctx_new("local[2]");
    for (int sparse = 0; sparse < 2; sparse++) {
        em_ml_data d = data(sc, sparse), o;
        em_ml_onehot e;
        em_err err = EM_ERR_INIT;
        uint32_t cols[1] = {1};
        cr_assert_eq(em_ml_onehot_fit(&d, cols, 1, true, &e, &err), 0, "%s", err.msg);
        cr_assert_eq(e.sizes[0], 3);
        cr_assert_eq(e.out_dim, 4);
        cr_assert_eq(em_ml_onehot_transform(&e, &d, &o, &err), 0, "%s", err.msg);
        double rows[8][16];
        size_t n;
        collect_dense(&o, rows, &n);
        cr_assert_eq(n, 4);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 5; j++)
                close_to(rows[i][j], want[i][j]);
        em_ml_data_release(&o);
        /* a category unseen at fit time is an error naming the column and value */
        e.sizes[0] = 2;
        cr_assert_eq(em_ml_onehot_transform(&e, &d, &o, &err), 0);
        em_records r = {0};
        cr_assert_lt(em_rdd_collect(o.rows, &r, &err), 0);
        cr_assert(strstr(err.msg, "column 2 is 2"), "%s", err.msg);
        em_ml_data_release(&o);
        e.sizes[0] = 3;
        if (sparse) {
            char tmpl[] = "/tmp/fttestXXXXXX";
            cr_assert(mkdtemp(tmpl));
            char *dir = em_xasprintf("%s/oh", tmpl);
            cr_assert_eq(em_ml_onehot_save(&e, dir, &err), 0, "%s", err.msg);
            em_ml_onehot l;
            cr_assert_eq(em_ml_onehot_load(dir, &l, &err), 0, "%s", err.msg);
            cr_assert(l.drop_last && l.ncols == 1 && l.cols[0] == 1 && l.sizes[0] == 3 &&
                      l.out_dim == 4);
            em_ml_onehot_destroy(&l);
            char *cmd = em_xasprintf("rm -rf %s", tmpl);
            cr_assert_eq(system(cmd), 0);
            em_free(cmd);
            em_free(dir);
        }
        em_ml_onehot_destroy(&e);
        em_ml_data_release(&d);
    }
    em_context_free(sc);
}

Test(feature, murmur3_vectors)
{
    /* SMHasher / the reference implementation's published values. */
    cr_assert_eq(em_ml_murmur3_32("", 0, 0), 0u);
    cr_assert_eq(em_ml_murmur3_32("", 0, 1), 0x514E28B7u);
    cr_assert_eq(em_ml_murmur3_32("", 0, 0xffffffffu), 0x81F16F39u);
    cr_assert_eq(em_ml_murmur3_32("\0\0\0\0", 4, 0), 0x2362F9DEu);
    cr_assert_eq(em_ml_murmur3_32("aaaa", 4, 0x9747b28cu), 0x5A97808Au);
    cr_assert_eq(em_ml_murmur3_32("abc", 3, 0), 0xB3DD93FAu);
    cr_assert_eq(em_ml_murmur3_32("Hello, world!", 13, 0x9747b28cu), 0x24884CBAu);
    cr_assert_eq(em_ml_murmur3_32("The quick brown fox jumps over the lazy dog", 43, 0x9747b28cu),
                 0x2FA826CDu);
}

Test(feature, hasher_sums, .timeout = 60)
{
    em_context *sc = em_test_ctx_new("local[2]");
    em_ml_data d = data(sc, false), o;
    em_err err = EM_ERR_INIT;
    for (int sign = 0; sign < 2; sign++) {
        cr_assert_eq(em_ml_feature_hash(&d, 4, sign, &o, &err), 0, "%s", err.msg);
        cr_assert(o.sparse && o.dim == 4);
        double rows[8][16];
        size_t n;
        collect_dense(&o, rows, &n);
        for (int i = 0; i < 4; i++) {
            double want[4] = {0};
            for (uint32_t j = 0; j < 3; j++) {
                uint8_t kb[4] = {(uint8_t)j, 0, 0, 0};
                uint32_t h = em_ml_murmur3_32(kb, 4, 42);
                int64_t s = (int32_t)h;
                want[((s % 4) + 4) % 4] += (sign && (h >> 31)) ? -X[i][j + 1] : X[i][j + 1];
            }
            for (int c = 0; c < 4; c++)
                close_to(rows[i][c + 1], want[c]);
        }
        em_ml_data_release(&o);
    }
    em_ml_data_release(&d);
    em_context_free(sc);
}

/* The row ids (labels) on each side of a 0.7 split of 1000 rows in 4 partitions. */
static void split_ids(const char *master, uint8_t *side)
{
    em_context *sc = em_test_ctx_new(master);
    static double x[1000][2];
    static em_rec recs[1000];
    for (int i = 0; i < 1000; i++) {
        x[i][0] = i;
        x[i][1] = i * 0.5;
        recs[i].val = em_slice_make(x[i], 16);
    }
    em_ml_data d = {.labeled = true, .dim = 1, .nrows = 1000}, tr, te;
    d.rows = em_parallelize(sc, EM_REC_FIXED, 16, recs, 1000, 4);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_ml_random_split(&d, 0.7, 11, &tr, &te, &err), 0, "%s", err.msg);
    memset(side, 0, 1000);
    em_ml_data *sides[2] = {&te, &tr};
    for (int s = 0; s < 2; s++) {
        em_records r = {0};
        cr_assert_eq(em_rdd_collect(sides[s]->rows, &r, &err), 0, "%s", err.msg);
        for (size_t i = 0; i < r.n; i++) {
            double id;
            memcpy(&id, r.recs[i].val.p, 8);
            cr_assert_eq(side[(int)id], 0, "row %g on both sides", id);
            side[(int)id] = (uint8_t)(s + 1);
        }
        em_records_destroy(&r);
    }
    em_ml_data_release(&tr);
    em_ml_data_release(&te);
    em_ml_data_release(&d);
    em_context_free(sc);
}

Test(feature, random_split, .timeout = 120)
{
    uint8_t a[1000], b[1000];
    split_ids("local[2]", a);
    int ntrain = 0;
    for (int i = 0; i < 1000; i++) {
        cr_assert(a[i] != 0, "row %d lost", i);
        ntrain += a[i] == 2;
    }
    cr_assert(ntrain > 640 && ntrain < 760, "%d train rows", ntrain);
    split_ids("local-cluster[2,1]", b);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
}
