/* mllib/feature/onehot.c - the one-hot encoder (feature.h): fit (category counts from the
 * columns' maxima, one pass of em_ml_col_stats), the row kernel, save and load.
 * OUTPUT COLUMNS: the d - ncols other columns first, in their order (column j becomes j
 * minus the encoded columns before it), then one block per encoded column q of sizes[q]
 * (minus one with drop_last) indicators; category v of column q sets column
 * (d - ncols) + offset_q + v. A sparse row's missing entry of an encoded column is
 * category 0, as its value is 0. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/feature/feature_int.h"
#include "mllib/linalg/matrix.h"
#include "mllib/linalg/model_dir.h"

#define OH_MAX_CATEGORIES (1u << 24)

static uint32_t out_dim(uint32_t dim, uint32_t ncols, const uint32_t *sizes, bool drop_last)
{
    uint64_t n = dim - ncols;
    for (uint32_t q = 0; q < ncols; q++)
        n += sizes[q] - (drop_last ? 1 : 0);
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

int em_ml_onehot_fit(const em_ml_data *d, const uint32_t *cols, uint32_t ncols,
                     bool drop_last, em_ml_onehot *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    if (!d || !d->rows || d->dim == 0 || ncols == 0 || ncols > d->dim)
        return em_err_set(err, EM_EINVAL, "one-hot encoder: no data or no column to encode");
    for (uint32_t q = 0; q < ncols; q++)
        if (cols[q] >= d->dim || (q > 0 && cols[q] <= cols[q - 1]))
            return em_err_set(err, EM_EINVAL, "one-hot encoder: column %u (columns must be "
                              "ascending and below %u)", cols[q] + 1, d->dim);
    em_ml_colstats st;
    int rc = em_ml_col_stats(d, &st, err);
    if (rc < 0)
        return rc;
    uint32_t *sizes = em_xmalloc(4 * (size_t)ncols);
    for (uint32_t q = 0; q < ncols && rc == 0; q++) {
        double mn = st.min[cols[q]], mx = st.max[cols[q]];
        if (!(mn >= 0) || !(mx < OH_MAX_CATEGORIES) || mx != floor(mx))
            rc = em_err_set(err, EM_EINVAL, "one-hot encoder: column %u holds %g (categories "
                            "are integers in [0, %u))", cols[q] + 1, mn < 0 ? mn : mx,
                            OH_MAX_CATEGORIES);
        sizes[q] = (uint32_t)mx + 1;
    }
    em_ml_colstats_destroy(&st);
    if (rc < 0) {
        em_free(sizes);
        return rc;
    }
    *out = (em_ml_onehot){.dim = d->dim, .ncols = ncols, .drop_last = drop_last,
                          .cols = em_xmalloc(4 * (size_t)ncols), .sizes = sizes};
    memcpy(out->cols, cols, 4 * (size_t)ncols);
    out->out_dim = out_dim(d->dim, ncols, sizes, drop_last);
    return 0;
}

static uint32_t par_u32(const ft_ctx *c, size_t i)
{
    return em_load_le32(c->par + 4 + 4 * i);
}

static int push(ft_ent **e, size_t *cap, size_t *n, uint32_t idx, double v, em_err *err)
{
    ft_ent *g = em_arr_grow(*e, cap, *n + 1, sizeof **e);
    if (!g)
        return em_err_set(err, EM_ENOMEM, "one-hot encoder: a row");
    *e = g;
    g[(*n)++] = (ft_ent){idx, v};
    return 0;
}

/* Value of column j of the row (sparse: binary search, 0 when absent). */
static double value_at(const em_ml_row *r, uint32_t j)
{
    if (r->dense)
        return em__ft_f64(r->dense + 8 * (size_t)j);
    uint32_t lo = 0, hi = r->sp.nnz;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2, x = em_ml_sparse_idx(&r->sp, mid);
        if (x == j)
            return em_ml_sparse_val(&r->sp, mid);
        if (x < j)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

int em__ft_onehot_row(const ft_ctx *c, const em_ml_row *r, ft_ent **e, size_t *cap,
                      size_t *n, em_err *err)
{
    uint32_t nc = em_load_le32(c->par), d = c->in.dim, q = 0;
    bool drop = c->flags & 1;
    uint32_t nent = r->dense ? d : r->sp.nnz;
    int rc = 0;
    for (uint32_t i = 0; i < nent && rc == 0; i++) {   /* the other columns */
        uint32_t j = r->dense ? i : em_ml_sparse_idx(&r->sp, i);
        double v = r->dense ? em__ft_f64(r->dense + 8 * (size_t)i) : em_ml_sparse_val(&r->sp, i);
        while (q < nc && par_u32(c, q) < j)
            q++;
        if ((q < nc && par_u32(c, q) == j) || v == 0)
            continue;
        rc = push(e, cap, n, j - q, v, err);
    }
    uint64_t off = d - nc;
    for (q = 0; q < nc && rc == 0; q++) {   /* the blocks */
        uint32_t j = par_u32(c, q), size = par_u32(c, nc + q);
        double v = value_at(r, j);
        if (!(v >= 0 && v < size && v == floor(v)))
            return em_err_set(err, EM_EINVAL, "one-hot encoder: column %u is %.17g (a category "
                              "in [0, %u) expected)", j + 1, v, size);
        uint32_t k = (uint32_t)v;
        if (!(drop && k == size - 1))
            rc = push(e, cap, n, (uint32_t)(off + k), 1, err);
        off += size - (drop ? 1 : 0);
    }
    return rc;
}

int em_ml_onehot_transform(const em_ml_onehot *e, const em_ml_data *in, em_ml_data *out,
                           em_err *err)
{
    if (!in || !in->rows || in->dim != e->dim)
        return em_err_set(err, EM_EINVAL, "one-hot encoder: rows of %u features, fitted on %u",
                          in ? in->dim : 0, e->dim);
    em_vbuf b;
    em_vbuf_init(&b);
    uint8_t h[FT_HDR];
    em__ft_hdr(h, FT_ONEHOT, in, e->drop_last ? 1u : 0u, e->out_dim);
    int rc = em_vbuf_append(&b, h, FT_HDR);
    if (rc == 0)
        rc = em_vbuf_append_u32le(&b, e->ncols);
    for (uint32_t q = 0; rc == 0 && q < e->ncols; q++)
        rc = em_vbuf_append_u32le(&b, e->cols[q]);
    for (uint32_t q = 0; rc == 0 && q < e->ncols; q++)
        rc = em_vbuf_append_u32le(&b, e->sizes[q]);
    if (rc < 0)
        rc = em_err_set(err, EM_ENOMEM, "one-hot encoder: %u columns", e->ncols);
    else
        rc = em__ft_apply(in, &b, true, e->out_dim, out, err);
    em_vbuf_destroy(&b);
    return rc;
}

void em_ml_onehot_destroy(em_ml_onehot *e)
{
    if (!e)
        return;
    em_free(e->cols);
    em_free(e->sizes);
    memset(e, 0, sizeof *e);
}

int em_ml_onehot_save(const em_ml_onehot *e, const char *dir, em_err *err)
{
    json_t *m = json_object();
    json_object_set_new(m, "drop_last", json_boolean(e->drop_last));
    json_object_set_new(m, "num_features", json_integer(e->dim));
    double *v = em_xmalloc(16 * (size_t)e->ncols);
    for (uint32_t q = 0; q < e->ncols; q++) {
        v[q] = e->cols[q];
        v[e->ncols + q] = e->sizes[q];
    }
    em_ml_array a[2] = {{.name = "columns", .data = v, .count = e->ncols},
                        {.name = "sizes", .data = v + e->ncols, .count = e->ncols}};
    int rc = em_ml_model_dir_write(dir, "ember.OneHotEncoderModel", 1, m, a, 2, err);
    em_free(v);
    json_decref(m);
    return rc;
}

int em_ml_onehot_load(const char *dir, em_ml_onehot *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    em_ml_array a[2] = {{.name = "columns", .max_count = 1u << 24},
                        {.name = "sizes", .max_count = 1u << 24}};
    json_t *m = NULL;
    uint64_t d = 0;
    int rc = em_ml_model_dir_read(dir, "ember.OneHotEncoderModel", 1, &m, a, 2, err);
    if (rc < 0)
        return rc;
    json_t *dl = json_object_get(m, "drop_last");
    uint32_t nc = (uint32_t)a[0].count;
    if ((rc = em_ml_meta_u64(dir, m, "num_features", UINT32_MAX, &d, err)) == 0 &&
        (!json_is_boolean(dl) || nc == 0 || a[1].count != nc || nc > d))
        rc = em_err_set(err, EM_ECORRUPT, "%s: drop_last, columns or sizes malformed", dir);
    uint32_t *cols = em_xmalloc(4 * (size_t)(nc ? nc : 1)), *sizes = em_xmalloc(4 * (size_t)(nc ? nc : 1));
    for (uint32_t q = 0; rc == 0 && q < nc; q++) {
        double c = a[0].data[q], s = a[1].data[q];
        if (!(c >= 0 && c < (double)d && c == floor(c)) || (q && c <= a[0].data[q - 1]) ||
            !(s >= 1 && s <= OH_MAX_CATEGORIES && s == floor(s)))
            rc = em_err_set(err, EM_ECORRUPT, "%s: column entry %u (%g, %g categories)", dir, q,
                            c, s);
        cols[q] = (uint32_t)c;
        sizes[q] = (uint32_t)s;
    }
    if (rc == 0) {
        *out = (em_ml_onehot){.dim = (uint32_t)d, .ncols = nc, .cols = cols, .sizes = sizes,
                              .drop_last = json_is_true(dl)};
        out->out_dim = out_dim(out->dim, nc, sizes, out->drop_last);
    } else {
        em_free(cols);
        em_free(sizes);
    }
    em_free(a[0].data);
    em_free(a[1].data);
    json_decref(m);
    return rc;
}
