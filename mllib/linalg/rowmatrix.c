/* mllib/linalg/rowmatrix.c - the row matrix operations of matrix.h: column statistics,
 * the Gramian, and the product with a local matrix, each one pass over the rows with a BLAS
 * call per dense batch.
 *
 * STATS ACCUMULATOR (doubles): n, then per column mean[d], m2[d] (sum of squared
 * deviations), min[d], max[d], nnz[d]; blob: the layout (em_ml_layout_encode).
 * GRAMIAN ACCUMULATOR: d x d doubles, upper triangle (row-major), the lower left alone.
 * MULTIPLY BLOB: the layout, u32 k, then B (d x k doubles, row-major). */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "mllib/linalg/linalg.h"
#include "mllib/linalg/linalg_int.h"
#include "mllib/linalg/matrix.h"

int em__ml_fn_stats_init(const em_fn_ctx *c, void *acc, size_t size, em_err *err)
{
    em_ml_data lay;
    int rc = em_ml_layout_decode(c->blob, &lay, err);
    if (rc < 0)
        return rc;
    if (size != 8 * (1 + 5 * (size_t)lay.dim))
        return em_err_set(err, EM_EINVAL, "ml.linalg.stats: accumulator of %zu bytes", size);
    double *a = acc;
    for (uint32_t j = 0; j < lay.dim; j++) {
        a[1 + 2 * (size_t)lay.dim + j] = INFINITY;
        a[1 + 3 * (size_t)lay.dim + j] = -INFINITY;
    }
    return 0;
}

/* Folds (nb, mean_b, m2_b, min_b, max_b, nnz_b) into a (Chan et al.'s pairwise update). */
static void merge_stats(double *a, const double *b, uint32_t d)
{
    double na = a[0], nb = b[0], n = na + nb;
    if (nb == 0)
        return;
    for (uint32_t j = 0; j < d; j++) {
        double delta = b[1 + j] - a[1 + j];
        a[1 + j] += delta * nb / n;
        a[1 + d + j] += b[1 + d + j] + delta * delta * na * nb / n;
        a[1 + 2 * (size_t)d + j] = fmin(a[1 + 2 * (size_t)d + j], b[1 + 2 * (size_t)d + j]);
        a[1 + 3 * (size_t)d + j] = fmax(a[1 + 3 * (size_t)d + j], b[1 + 3 * (size_t)d + j]);
        a[1 + 4 * (size_t)d + j] += b[1 + 4 * (size_t)d + j];
    }
    a[0] = n;
}

/* The statistics of one batch into b (same layout as the accumulator). */
static int batch_stats(const em_ml_data *lay, const em_rec_batch *in, double *b, em_err *err)
{
    uint32_t d = lay->dim;
    double *mean = b + 1, *m2 = mean + d, *mn = m2 + d, *mx = mn + d, *nz = mx + d;
    size_t n = (size_t)in->nrecs, lab = lay->labeled ? 1 : 0, ld = d + lab;
    memset(b, 0, 8 * (1 + 5 * (size_t)d));
    for (uint32_t j = 0; j < d; j++) {
        mn[j] = INFINITY;
        mx[j] = -INFINITY;
    }
    b[0] = (double)n;
    if (!lay->sparse) {
        const double *x = (const double *)in->data + lab;
        for (size_t i = 0; i < n; i++)
            for (uint32_t j = 0; j < d; j++) {
                double v = x[i * ld + j];
                mean[j] += v;
                mn[j] = fmin(mn[j], v);
                mx[j] = fmax(mx[j], v);
                nz[j] += v != 0;
            }
        for (uint32_t j = 0; j < d; j++)
            mean[j] /= (double)n;
        for (size_t i = 0; i < n; i++)
            for (uint32_t j = 0; j < d; j++) {
                double t = x[i * ld + j] - mean[j];
                m2[j] += t * t;
            }
        return 0;
    }
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &r)) {
        em_ml_row row;
        int rc = em_ml_row_view(lay, r.val, &row, err);
        if (rc < 0)
            return rc;
        for (uint32_t q = 0; q < row.sp.nnz; q++) {
            uint32_t j = em_ml_sparse_idx(&row.sp, q);
            double v = em_ml_sparse_val(&row.sp, q);
            mean[j] += v;
            m2[j] += v * v;
            mn[j] = fmin(mn[j], v);
            mx[j] = fmax(mx[j], v);
            nz[j] += v != 0;
        }
    }
    for (uint32_t j = 0; j < d; j++) {
        double s = mean[j];
        mean[j] = s / (double)n;
        m2[j] = fmax(0, m2[j] - s * mean[j]);
        if (nz[j] < (double)n) {
            mn[j] = fmin(mn[j], 0);
            mx[j] = fmax(mx[j], 0);
        }
    }
    return 0;
}

int em__ml_fn_stats(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                    em_err *err)
{
    em_ml_data lay;
    int rc = em_ml_layout_decode(c->blob, &lay, err);
    if (rc < 0)
        return rc;
    if (size != 8 * (1 + 5 * (size_t)lay.dim))
        return em_err_set(err, EM_EINVAL, "ml.linalg.stats: accumulator of %zu bytes", size);
    if (!lay.sparse && (in->kind != EM_REC_FIXED ||
                        in->width != 8 * (lay.dim + (lay.labeled ? 1u : 0u))))
        return em_err_set(err, EM_EINVAL, "ml.linalg.stats: rows are not the layout's");
    double *b = em_malloc(size);
    if (!b)
        return em_err_set(err, EM_ENOMEM, "ml.linalg.stats: out of memory");
    if ((rc = batch_stats(&lay, in, b, err)) == 0)
        merge_stats(acc, b, lay.dim);
    em_free(b);
    return rc;
}

int em__ml_fn_stats_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                          em_err *err)
{
    em_ml_data lay;
    int rc = em_ml_layout_decode(c->blob, &lay, err);
    if (rc < 0)
        return rc;
    if (size != 8 * (1 + 5 * (size_t)lay.dim))
        return em_err_set(err, EM_EINVAL, "ml.linalg.stats: accumulator of %zu bytes", size);
    merge_stats(acc, other, lay.dim);
    return 0;
}

int em__ml_fn_gram(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                   em_err *err)
{
    em_ml_data lay;
    int rc = em_ml_layout_decode(c->blob, &lay, err);
    if (rc < 0)
        return rc;
    uint32_t d = lay.dim;
    size_t lab = lay.labeled ? 1 : 0;
    double *g = acc;
    if (size != 8 * (size_t)d * d)
        return em_err_set(err, EM_EINVAL, "ml.linalg.gram: accumulator of %zu bytes", size);
    if (!lay.sparse) {
        if (in->kind != EM_REC_FIXED || in->width != 8 * (d + lab))
            return em_err_set(err, EM_EINVAL, "ml.linalg.gram: rows are not the layout's");
        em_la_init();
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)in->nrecs, 1.0,
                    (const double *)in->data + lab, (int)(d + lab), 1.0, g, (int)d);
        return 0;
    }
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &r)) {
        em_ml_row row;
        if ((rc = em_ml_row_view(&lay, r.val, &row, err)) < 0)
            return rc;
        for (uint32_t p = 0; p < row.sp.nnz; p++) {
            double vp = em_ml_sparse_val(&row.sp, p);
            double *gr = g + (size_t)em_ml_sparse_idx(&row.sp, p) * d;
            for (uint32_t q = p; q < row.sp.nnz; q++)
                gr[em_ml_sparse_idx(&row.sp, q)] += vp * em_ml_sparse_val(&row.sp, q);
        }
    }
    return 0;
}

int em__ml_fn_sum_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                        em_err *err)
{
    (void)c, (void)err;
    double *a = acc;
    const double *b = other;
    for (size_t i = 0; i < size / 8; i++)
        a[i] += b[i];
    return 0;
}

/* Runs one in-place aggregation of `size` bytes over d's rows into out (size bytes). */
static int aggregate(const em_ml_data *d, size_t size, const char *init, const char *seq,
                     const char *merge, void *out, em_err *err)
{
    uint8_t lay[6];
    em_vbuf res;
    int rc = em_linalg_register();
    if (rc < 0)
        return em_err_set(err, rc, "ml.linalg: a task function name is taken");
    em_ml_layout_encode(d, lay);
    em_agg a = {.size = size, .init = init, .seq = seq, .merge = merge,
                .ctx = em_slice_make(lay, sizeof lay)};
    em_vbuf_init(&res);
    rc = em_rdd_tree_aggregate_acc(d->rows, &a, 2, &res, err);
    if (rc == 0 && res.len != size)
        rc = em_err_set(err, EM_ECORRUPT, "ml.linalg: result of %zu bytes", res.len);
    if (rc == 0)
        memcpy(out, res.data, size);
    em_vbuf_destroy(&res);
    return rc;
}

int em_ml_col_stats(const em_ml_data *d, em_ml_colstats *out, em_err *err)
{
    uint32_t n = d->dim;
    memset(out, 0, sizeof *out);
    if (n == 0)
        return em_err_set(err, EM_EINVAL, "column statistics of 0 columns");
    double *a = em_xmalloc(8 * (1 + 5 * (size_t)n));
    int rc = aggregate(d, 8 * (1 + 5 * (size_t)n), "ml.linalg.stats_init", "ml.linalg.stats",
                       "ml.linalg.stats_merge", a, err);
    if (rc == 0) {
        out->count = (uint64_t)a[0];
        out->dim = n;
        out->mean = em_xmalloc(8 * (size_t)n);
        out->variance = em_xmalloc(8 * (size_t)n);
        out->min = em_xmalloc(8 * (size_t)n);
        out->max = em_xmalloc(8 * (size_t)n);
        out->nnz = em_xmalloc(8 * (size_t)n);
        for (uint32_t j = 0; j < n; j++) {
            out->mean[j] = a[1 + j];
            out->variance[j] = a[0] > 1 ? a[1 + n + j] / (a[0] - 1) : 0;
            out->min[j] = a[0] > 0 ? a[1 + 2 * (size_t)n + j] : 0;
            out->max[j] = a[0] > 0 ? a[1 + 3 * (size_t)n + j] : 0;
            out->nnz[j] = (uint64_t)a[1 + 4 * (size_t)n + j];
        }
    }
    em_free(a);
    return rc;
}

void em_ml_colstats_destroy(em_ml_colstats *s)
{
    em_free(s->mean);
    em_free(s->variance);
    em_free(s->min);
    em_free(s->max);
    em_free(s->nnz);
    memset(s, 0, sizeof *s);
}

int em_ml_gramian(const em_ml_data *d, double *g, em_err *err)
{
    size_t n = d->dim;
    if (n == 0 || n > 65536)
        return em_err_set(err, EM_EINVAL, "Gramian of %zu columns (1..65536)", n);
    int rc = aggregate(d, 8 * n * n, NULL, "ml.linalg.gram", "ml.linalg.sum_merge", g, err);
    if (rc == 0)
        em_la_symmetrize((int)n, g);
    return rc;
}

int em__ml_fn_multiply(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                       em_err *err)
{
    em_ml_data lay;
    (void)index;
    int rc = em_ml_layout_decode(c->blob, &lay, err);
    if (rc < 0)
        return rc;
    uint32_t k = c->blob.n >= 10 ? em_load_le32(c->blob.p + 6) : 0, d = lay.dim;
    size_t lab = lay.labeled ? 1 : 0, w = k + lab;
    if (k == 0 || c->blob.n != 10 + 8 * (size_t)d * k)
        return em_err_set(err, EM_ECORRUPT, "ml.linalg.multiply: bad context");
    double *b = em_malloc(8 * (size_t)d * k), *o = NULL, *row = em_malloc(8 * (d + w));
    size_t ocap = 0;
    if (!b || !row)
        rc = em_err_set(err, EM_ENOMEM, "ml.linalg.multiply: out of memory");
    else
        memcpy(b, c->blob.p + 10, 8 * (size_t)d * k);
    em_rec_batch bt;
    while (rc == 0 && (rc = em_iter_next_batch(in, &bt, err)) == 1) {
        rc = 0;
        if (lay.sparse || bt.kind != EM_REC_FIXED) {
            em_batch_iter it;
            em_rec r;
            em_batch_iter_init_raw(&it, bt.kind, bt.width, bt.data, bt.nbytes);
            while (rc == 0 && em_batch_iter_next(&it, &r)) {
                em_ml_row rv;
                if ((rc = em_ml_row_view(&lay, r.val, &rv, err)) < 0)
                    break;
                double *y = row + d;
                memset(y, 0, 8 * w);
                y[0] = rv.label;
                for (uint32_t q = 0; q < (rv.dense ? d : rv.sp.nnz); q++) {
                    double v;
                    uint32_t j = rv.dense ? q : em_ml_sparse_idx(&rv.sp, q);
                    if (rv.dense)
                        memcpy(&v, rv.dense + 8 * (size_t)q, 8);
                    else
                        v = em_ml_sparse_val(&rv.sp, q);
                    for (uint32_t t = 0; t < k; t++)
                        y[lab + t] += v * b[(size_t)j * k + t];
                }
                rc = em_emit_val(out, em_slice_make(y, 8 * w), err);
            }
            continue;
        }
        size_t n = (size_t)bt.nrecs;
        double *g = em_arr_grow(o, &ocap, n * w, sizeof *o);
        if (!g) {
            rc = em_err_set(err, EM_ENOMEM, "ml.linalg.multiply: out of memory");
            break;
        }
        o = g;
        const double *x = (const double *)bt.data;
        em_la_init();
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)k, (int)d, 1.0,
                    x + lab, (int)(d + lab), b, (int)k, 0.0, o + lab, (int)w);
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (lab)
                o[i * w] = x[i * (d + lab)];
            rc = em_emit_val(out, em_slice_make(o + i * w, 8 * w), err);
        }
    }
    em_free(b);
    em_free(o);
    em_free(row);
    return rc < 0 ? rc : 0;
}

int em_ml_multiply(const em_ml_data *d, const double *b, uint32_t k, em_ml_data *out,
                   em_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = em_linalg_register();
    if (rc < 0)
        return em_err_set(err, rc, "ml.linalg: a task function name is taken");
    if (k == 0 || d->dim == 0)
        return em_err_set(err, EM_EINVAL, "multiply: %u x %u matrix", d->dim, k);
    em_vbuf blob;
    em_vbuf_init(&blob);
    uint8_t lay[6];
    em_ml_layout_encode(d, lay);
    if (em_vbuf_append(&blob, lay, 6) < 0 || em_vbuf_append_u32le(&blob, k) < 0 ||
        em_vbuf_append(&blob, b, 8 * (size_t)d->dim * k) < 0) {
        em_vbuf_destroy(&blob);
        return em_err_set(err, EM_ENOMEM, "multiply: out of memory");
    }
    out->labeled = d->labeled;
    out->dim = k;
    out->nrows = d->nrows;
    out->rows = em_rdd_map_partitions_fixed(d->rows, "ml.linalg.multiply",
                                            em_slice_make(blob.data, blob.len), true,
                                            8 * (k + (d->labeled ? 1 : 0)));
    em_vbuf_destroy(&blob);
    return 0;
}
