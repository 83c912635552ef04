/* mllib/feature/scaler.c - the standard and min-max scalers (fit from em_ml_col_stats,
 * one pass), the shared row-mapping task function "ml.feature.map" and the registration
 * table of "ml.feature.*". */
#include <math.h>
#include <string.h>

#include "mllib/feature/feature_int.h"
#include "mllib/linalg/matrix.h"
#include "mllib/linalg/model_dir.h"

static const em_fn_entry ft_fns[] = {
    {"ml.feature.map", EM_FN_MAP, EM_FN(em__ft_fn_map)},
    {"ml.feature.split", EM_FN_PARTITION, EM_FN(em__ft_fn_split)},
};

int em_feature_register(void)
{
    return em_fn_register_table(ft_fns, sizeof ft_fns / sizeof ft_fns[0]);
}

void em__ft_hdr(uint8_t out[FT_HDR], int op, const em_ml_data *in, unsigned flags,
                uint32_t out_dim)
{
    out[0] = (uint8_t)op;
    out[1] = in->sparse;
    out[2] = in->labeled;
    out[3] = (uint8_t)flags;
    em_store_le32(out + 4, in->dim);
    em_store_le32(out + 8, out_dim);
}

static int ctx_decode(em_slice b, ft_ctx *c, em_err *err)
{
    memset(c, 0, sizeof *c);
    if (b.n < FT_HDR || b.p[0] < FT_STD || b.p[0] > FT_HASH || b.p[1] > 1 || b.p[2] > 1)
        return em_err_set(err, EM_EINVAL, "ml.feature.map: bad context (%zu bytes)", b.n);
    c->op = b.p[0];
    c->in.sparse = b.p[1];
    c->in.labeled = b.p[2];
    c->flags = b.p[3];
    c->in.dim = em_load_le32(b.p + 4);
    c->out_dim = em_load_le32(b.p + 8);
    c->par = b.p + FT_HDR;
    c->npar = b.n - FT_HDR;
    size_t want = c->op == FT_STD      ? 16 * (size_t)c->in.dim
                  : c->op == FT_MINMAX ? 16 + 16 * (size_t)c->in.dim
                  : c->op == FT_HASH   ? 0
                  : c->npar >= 4       ? 4 + 8 * (size_t)em_load_le32(c->par)
                                       : 4;
    if (c->npar != want)
        return em_err_set(err, EM_EINVAL, "ml.feature.map: %zu parameter bytes, expected %zu",
                          c->npar, want);
    return 0;
}

/* Standard and min-max scaling of one row into dense (out_dim = in dim doubles) or, for
 * the standard scaler on sparse rows (no centring), the row's own entries scaled. */
static void scale_dense(const ft_ctx *c, const em_ml_row *r, double *x)
{
    uint32_t d = c->in.dim;
    if (r->dense)
        memcpy(x, r->dense, 8 * (size_t)d);
    else {
        memset(x, 0, 8 * (size_t)d);
        for (uint32_t i = 0; i < r->sp.nnz; i++)
            x[em_ml_sparse_idx(&r->sp, i)] = em_ml_sparse_val(&r->sp, i);
    }
    for (uint32_t j = 0; j < d; j++) {
        if (c->op == FT_STD) {
            double m = (c->flags & 1) ? em__ft_f64(c->par + 8 * (size_t)j) : 0;
            double s = em__ft_f64(c->par + 8 * ((size_t)d + j));
            x[j] = (c->flags & 2) ? (s > 0 ? (x[j] - m) / s : 0) : x[j] - m;
        } else {
            double lo = em__ft_f64(c->par), hi = em__ft_f64(c->par + 8);
            double mn = em__ft_f64(c->par + 16 + 8 * (size_t)j);
            double mx = em__ft_f64(c->par + 16 + 8 * ((size_t)d + j));
            x[j] = mx > mn ? (x[j] - mn) / (mx - mn) * (hi - lo) + lo : (lo + hi) / 2;
        }
    }
}

static int emit_sparse(const ft_ctx *c, const em_ml_row *r, const ft_ent *e, size_t n,
                       em_vbuf *b, em_emitter *out, em_err *err)
{
    uint32_t *idx = em_malloc(4 * (n ? n : 1));
    double *val = em_malloc(8 * (n ? n : 1));
    int rc = idx && val ? 0 : em_err_set(err, EM_ENOMEM, "ml.feature.map: a row of %zu", n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        idx[i] = e[i].idx;
        val[i] = e[i].val;
    }
    if (rc == 0 && c->in.labeled)
        rc = em_vbuf_append(b, &r->label, 8);
    if (rc == 0)
        rc = em_ml_sparse_encode((uint32_t)n, idx, val, b);
    if (rc == 0)
        rc = em_emit_val(out, em_slice_make(b->data, b->len), err);
    else if (!err->code)
        rc = em_err_set(err, EM_ENOMEM, "ml.feature.map: a row of %zu", n);
    em_free(idx);
    em_free(val);
    return rc;
}

static int map_row(const ft_ctx *c, const em_ml_row *r, em_vbuf *b, em_emitter *out,
                   em_err *err)
{
    ft_ent *e = NULL;
    size_t cap = 0, n = 0;
    int rc;
    if (c->op == FT_ONEHOT || c->op == FT_HASH ||
        (c->op == FT_STD && c->in.sparse)) {
        if (c->op == FT_ONEHOT)
            rc = em__ft_onehot_row(c, r, &e, &cap, &n, err);
        else if (c->op == FT_HASH)
            rc = em__ft_hash_row(c, r, &e, &cap, &n, err);
        else {   /* sparse standard scaling without centring keeps the zeros */
            e = em_arr_grow(NULL, &cap, r->sp.nnz + 1, sizeof *e);
            rc = e ? 0 : em_err_set(err, EM_ENOMEM, "ml.feature.map: a row");
            for (uint32_t i = 0; rc == 0 && i < r->sp.nnz; i++) {
                uint32_t j = em_ml_sparse_idx(&r->sp, i);
                double s = em__ft_f64(c->par + 8 * ((size_t)c->in.dim + j));
                double v = em_ml_sparse_val(&r->sp, i);
                e[n++] = (ft_ent){j, (c->flags & 2) ? (s > 0 ? v / s : 0) : v};
            }
        }
        if (rc == 0)
            rc = emit_sparse(c, r, e, n, b, out, err);
        em_free(e);
        return rc;
    }
    size_t off = c->in.labeled ? 8 : 0;
    if ((rc = em_vbuf_reserve(b, off + 8 * (size_t)c->out_dim)) < 0)
        return em_err_set(err, EM_ENOMEM, "ml.feature.map: a row of %u", c->out_dim);
    if (off)
        memcpy(b->data, &r->label, 8);
    double *x = em_malloc(8 * (size_t)c->in.dim);
    if (!x)
        return em_err_set(err, EM_ENOMEM, "ml.feature.map: a row of %u", c->in.dim);
    scale_dense(c, r, x);
    memcpy(b->data + off, x, 8 * (size_t)c->out_dim);
    em_free(x);
    b->len = off + 8 * (size_t)c->out_dim;
    return em_emit_val(out, em_slice_make(b->data, b->len), err);
}

int em__ft_fn_map(const em_fn_ctx *fc, const em_rec *in, em_emitter *out, em_err *err)
{
    ft_ctx c;
    em_ml_row r;
    int rc = ctx_decode(fc->blob, &c, err);
    if (rc < 0 || (rc = em_ml_row_view(&c.in, in->val, &r, err)) < 0)
        return rc;
    em_vbuf b;
    em_vbuf_init(&b);
    rc = map_row(&c, &r, &b, out, err);
    em_vbuf_destroy(&b);
    return rc;
}

int em__ft_apply(const em_ml_data *in, const em_vbuf *blob, bool sparse_out, uint32_t out_dim,
                 em_ml_data *out, em_err *err)
{
    int rc;
    if ((rc = em_feature_register()) < 0)
        return em_err_set(err, rc, "feature: a task function name is taken");
    em_ml_data o = {.sparse = sparse_out, .labeled = in->labeled, .dim = out_dim,
                    .nrows = in->nrows};
    em_slice ctx = em_slice_make(blob->data, blob->len);
    o.rows = sparse_out
                 ? em_rdd_map(in->rows, "ml.feature.map", ctx)
                 : em_rdd_map_fixed(in->rows, "ml.feature.map", ctx,
                                    8 * (out_dim + (in->labeled ? 1u : 0u)));
    const em_err *e = em_rdd_error(o.rows);
    if (e)
        return em_err_copy(err, e);
    *out = o;
    return 0;
}

static int check_in(const char *what, const em_ml_data *d, uint32_t dim, em_err *err)
{
    if (!d || !d->rows || d->dim == 0)
        return em_err_set(err, EM_EINVAL, "%s: no data", what);
    if (dim && d->dim != dim)
        return em_err_set(err, EM_EINVAL, "%s: rows of %u features, fitted on %u", what,
                          d->dim, dim);
    return 0;
}

/* ---------------------------------------------------------------- standard scaler */

int em_ml_std_scaler_fit(const em_ml_data *d, bool with_mean, bool with_std,
                         em_ml_std_scaler *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    em_ml_colstats st;
    int rc = check_in("standard scaler", d, 0, err);
    if (rc < 0 || (rc = em_ml_col_stats(d, &st, err)) < 0)
        return rc;
    out->dim = d->dim;
    out->with_mean = with_mean;
    out->with_std = with_std;
    out->mean = em_xmalloc(8 * (size_t)d->dim);
    out->std = em_xmalloc(8 * (size_t)d->dim);
    for (uint32_t j = 0; j < d->dim; j++) {
        out->mean[j] = st.mean[j];
        out->std[j] = sqrt(st.variance[j]);
    }
    em_ml_colstats_destroy(&st);
    return 0;
}

int em_ml_std_scaler_transform(const em_ml_std_scaler *s, const em_ml_data *in,
                               em_ml_data *out, em_err *err)
{
    int rc = check_in("standard scaler", in, s->dim, err);
    if (rc < 0)
        return rc;
    if (in->sparse && s->with_mean)
        return em_err_set(err, EM_EINVAL, "standard scaler: with_mean on sparse rows (centring"
                          " makes every entry non-zero; densify first or leave with_mean off)");
    em_vbuf b;
    em_vbuf_init(&b);
    uint8_t h[FT_HDR];
    em__ft_hdr(h, FT_STD, in, (s->with_mean ? 1u : 0u) | (s->with_std ? 2u : 0u), s->dim);
    if (em_vbuf_append(&b, h, FT_HDR) < 0 || em_vbuf_append(&b, s->mean, 8 * (size_t)s->dim) ||
        em_vbuf_append(&b, s->std, 8 * (size_t)s->dim) < 0)
        rc = em_err_set(err, EM_ENOMEM, "standard scaler: %u features", s->dim);
    else
        rc = em__ft_apply(in, &b, in->sparse, s->dim, out, err);
    em_vbuf_destroy(&b);
    return rc;
}

void em_ml_std_scaler_destroy(em_ml_std_scaler *s)
{
    if (!s)
        return;
    em_free(s->mean);
    em_free(s->std);
    memset(s, 0, sizeof *s);
}

int em_ml_std_scaler_save(const em_ml_std_scaler *s, const char *dir, em_err *err)
{
    json_t *m = json_object();
    json_object_set_new(m, "with_mean", json_boolean(s->with_mean));
    json_object_set_new(m, "with_std", json_boolean(s->with_std));
    json_object_set_new(m, "num_features", json_integer(s->dim));
    em_ml_array a[2] = {{.name = "mean", .data = s->mean, .count = s->dim},
                        {.name = "std", .data = s->std, .count = s->dim}};
    int rc = em_ml_model_dir_write(dir, "ember.StandardScalerModel", 1, m, a, 2, err);
    json_decref(m);
    return rc;
}

static int meta_bool(const char *dir, const json_t *m, const char *key, bool *out, em_err *err)
{
    json_t *v = json_object_get(m, key);
    if (!json_is_boolean(v))
        return em_err_set(err, EM_ECORRUPT, "%s: field '%s' missing or not a boolean", dir, key);
    *out = json_is_true(v);
    return 0;
}

/* Reads a model of `cls` whose two arrays have num_features values each. */
static int load2(const char *dir, const char *cls, em_ml_array *a, json_t **meta,
                 uint32_t *dim, em_err *err)
{
    uint64_t d = 0;
    a[0].max_count = a[1].max_count = UINT32_MAX;
    int rc = em_ml_model_dir_read(dir, cls, 1, meta, a, 2, err);
    if (rc < 0)
        return rc;
    if ((rc = em_ml_meta_u64(dir, *meta, "num_features", UINT32_MAX, &d, err)) == 0 &&
        (d == 0 || a[0].count != d || a[1].count != d))
        rc = em_err_set(err, EM_ECORRUPT, "%s: arrays of %zu and %zu values for %llu features",
                        dir, a[0].count, a[1].count, (unsigned long long)d);
    if (rc < 0) {
        json_decref(*meta);
        *meta = NULL;
        em_free(a[0].data);
        em_free(a[1].data);
        return rc;
    }
    *dim = (uint32_t)d;
    return 0;
}

int em_ml_std_scaler_load(const char *dir, em_ml_std_scaler *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    em_ml_array a[2] = {{.name = "mean"}, {.name = "std"}};
    json_t *m;
    uint32_t d;
    bool wm = false, ws = false;
    int rc = load2(dir, "ember.StandardScalerModel", a, &m, &d, err);
    if (rc < 0)
        return rc;
    if ((rc = meta_bool(dir, m, "with_mean", &wm, err)) < 0 ||
        (rc = meta_bool(dir, m, "with_std", &ws, err)) < 0) {
        em_free(a[0].data);
        em_free(a[1].data);
    } else {
        *out = (em_ml_std_scaler){.dim = d, .with_mean = wm, .with_std = ws, .mean = a[0].data,
                                  .std = a[1].data};
    }
    json_decref(m);
    return rc;
}

/* ---------------------------------------------------------------- min-max scaler */

int em_ml_minmax_scaler_fit(const em_ml_data *d, double lo, double hi,
                            em_ml_minmax_scaler *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return em_err_set(err, EM_EINVAL, "min-max scaler: range [%g, %g] (min < max)", lo, hi);
    em_ml_colstats st;
    int rc = check_in("min-max scaler", d, 0, err);
    if (rc < 0 || (rc = em_ml_col_stats(d, &st, err)) < 0)
        return rc;
    *out = (em_ml_minmax_scaler){.dim = d->dim, .lo = lo, .hi = hi,
                                 .data_min = em_xmalloc(8 * (size_t)d->dim),
                                 .data_max = em_xmalloc(8 * (size_t)d->dim)};
    memcpy(out->data_min, st.min, 8 * (size_t)d->dim);
    memcpy(out->data_max, st.max, 8 * (size_t)d->dim);
    em_ml_colstats_destroy(&st);
    return 0;
}

int em_ml_minmax_scaler_transform(const em_ml_minmax_scaler *s, const em_ml_data *in,
                                  em_ml_data *out, em_err *err)
{
    int rc = check_in("min-max scaler", in, s->dim, err);
    if (rc < 0)
        return rc;
    em_vbuf b;
    em_vbuf_init(&b);
    uint8_t h[FT_HDR];
    double r[2] = {s->lo, s->hi};
    em__ft_hdr(h, FT_MINMAX, in, 0, s->dim);
    if (em_vbuf_append(&b, h, FT_HDR) < 0 || em_vbuf_append(&b, r, 16) < 0 ||
        em_vbuf_append(&b, s->data_min, 8 * (size_t)s->dim) < 0 ||
        em_vbuf_append(&b, s->data_max, 8 * (size_t)s->dim) < 0)
        rc = em_err_set(err, EM_ENOMEM, "min-max scaler: %u features", s->dim);
    else
        rc = em__ft_apply(in, &b, false, s->dim, out, err);
    em_vbuf_destroy(&b);
    return rc;
}

void em_ml_minmax_scaler_destroy(em_ml_minmax_scaler *s)
{
    if (!s)
        return;
    em_free(s->data_min);
    em_free(s->data_max);
    memset(s, 0, sizeof *s);
}

int em_ml_minmax_scaler_save(const em_ml_minmax_scaler *s, const char *dir, em_err *err)
{
    json_t *m = json_object();
    json_object_set_new(m, "min", json_real(s->lo));
    json_object_set_new(m, "max", json_real(s->hi));
    json_object_set_new(m, "num_features", json_integer(s->dim));
    em_ml_array a[2] = {{.name = "data_min", .data = s->data_min, .count = s->dim},
                        {.name = "data_max", .data = s->data_max, .count = s->dim}};
    int rc = em_ml_model_dir_write(dir, "ember.MinMaxScalerModel", 1, m, a, 2, err);
    json_decref(m);
    return rc;
}

int em_ml_minmax_scaler_load(const char *dir, em_ml_minmax_scaler *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    em_ml_array a[2] = {{.name = "data_min"}, {.name = "data_max"}};
    json_t *m;
    uint32_t d;
    double lo = 0, hi = 0;
    int rc = load2(dir, "ember.MinMaxScalerModel", a, &m, &d, err);
    if (rc < 0)
        return rc;
    if ((rc = em_ml_meta_f64(dir, m, "min", &lo, err)) < 0 ||
        (rc = em_ml_meta_f64(dir, m, "max", &hi, err)) < 0 ||
        (!(lo < hi) && (rc = em_err_set(err, EM_ECORRUPT, "%s: range [%g, %g]", dir, lo, hi)))) {
        em_free(a[0].data);
        em_free(a[1].data);
    } else {
        *out = (em_ml_minmax_scaler){.dim = d, .lo = lo, .hi = hi, .data_min = a[0].data,
                                     .data_max = a[1].data};
    }
    json_decref(m);
    return rc;
}
