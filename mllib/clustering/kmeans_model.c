/* mllib/clustering/kmeans_model.c - using a k-means model: predict one vector or a data
 * set, the cost of a data set, the k-means|| sampling task, and save/load (the format is
 * in kmeans.h: a mllib/linalg/model_dir.h directory; the decoder takes untrusted bytes and
 * has a fuzz harness, tests/fuzz/fuzz_kmeans_model.c). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mllib/clustering/kmeans_int.h"
#include "mllib/linalg/model_dir.h"

/* ---------------------------------------------------------------- partition functions */

typedef int (*row_cb)(void *ud, const uint8_t *row, bool dense, const em_ml_sparse *sp,
                      uint32_t best, double dist, em_err *err);

/* Assigns every row of a partition (GEMM per block of dense rows) and calls cb for each. */
static int each_assigned(const km_ctx *c, const km_centers *C, em_iter *in, row_cb cb,
                         void *ud, em_err *err)
{
    enum { BLK = 1024 };
    double *dots = em_malloc(sizeof(double) * BLK * ((size_t)c->k + 2));
    uint32_t *best = em_malloc(sizeof(uint32_t) * BLK);
    size_t lab = c->layout.labeled ? 1 : 0, ld = c->dim + lab;
    em_rec_batch b;
    int rc = dots && best ? 0 : em_err_set(err, EM_ENOMEM, "ml.kmeans: out of memory");
    while (rc == 0 && (rc = em_iter_next_batch(in, &b, err)) == 1) {
        rc = 0;
        if (!c->layout.sparse) {
            if (b.kind != EM_REC_FIXED || b.width != 8 * ld) {
                rc = em_err_set(err, EM_EINVAL, "ml.kmeans: rows of %u bytes", b.width);
                break;
            }
            const double *x = (const double *)b.data + lab;
            for (size_t i0 = 0; rc == 0 && i0 < b.nrecs; i0 += BLK) {
                size_t m = b.nrecs - i0 < BLK ? (size_t)b.nrecs - i0 : BLK, bad;
                double *dist = dots + (size_t)BLK * c->k, *xn = dist + BLK;
                if (em__km_assign_dense(C, x + i0 * ld, ld, m, dots, best, dist, xn, &bad)) {
                    rc = em_err_set(err, EM_EINVAL, "ml.kmeans: a row has norm 0");
                    break;
                }
                for (size_t i = 0; rc == 0 && i < m; i++)
                    rc = cb(ud, (const uint8_t *)(x + (i0 + i) * ld), true, NULL, best[i],
                            dist[i], err);
            }
            continue;
        }
        em_batch_iter it;
        em_rec r;
        em_batch_iter_init_raw(&it, b.kind, b.width, b.data, b.nbytes);
        while (rc == 0 && em_batch_iter_next(&it, &r)) {
            em_ml_row row;
            uint32_t bst;
            double dist, xn;
            if ((rc = em_ml_row_view(&c->layout, r.val, &row, err)) < 0)
                break;
            if (em__km_assign_sparse(C, &row.sp, &bst, &dist, &xn) < 0)
                rc = em_err_set(err, EM_EINVAL, "ml.kmeans: a row has norm 0");
            else
                rc = cb(ud, NULL, false, &row.sp, bst, dist, err);
        }
    }
    em_free(dots);
    em_free(best);
    return rc < 0 ? rc : 0;
}

typedef struct sample_ud {
    em_rng g;
    double scale;
    uint32_t dim;
    double *buf;
    em_emitter *out;
} sample_ud;

static int sample_row(void *ud, const uint8_t *row, bool dense, const em_ml_sparse *sp,
                      uint32_t best, double dist, em_err *err)
{
    sample_ud *s = ud;
    (void)best;
    if (em_rng_double(&s->g) >= s->scale * dist)
        return 0;
    if (dense)
        memcpy(s->buf, row, 8 * (size_t)s->dim);
    else {
        memset(s->buf, 0, 8 * (size_t)s->dim);
        for (uint32_t i = 0; i < sp->nnz; i++)
            s->buf[em_ml_sparse_idx(sp, i)] = em_ml_sparse_val(sp, i);
    }
    return em_emit_val(s->out, em_slice_make(s->buf, 8 * (size_t)s->dim), err);
}

int em__km_fn_sample(const em_fn_ctx *fc, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    km_ctx c;
    km_centers C;
    double *own = NULL;
    int rc = em__km_ctx_decode(fc->blob, &c, err);
    if (rc < 0 || (rc = em__km_get_centers(fc, &c, &C, &own, err)) < 0)
        return rc;
    sample_ud s = {.scale = c.scale, .dim = c.dim, .out = out};
    em_rng_seed(&s.g, em_mix64(c.seed ^ em_mix64(((uint64_t)c.round << 32) | index)));
    if (c.k == 0 || !(s.buf = em_malloc(8 * (size_t)c.dim)))
        rc = em_err_set(err, EM_EINVAL, "ml.kmeans.sample: no centres or out of memory");
    else
        rc = each_assigned(&c, &C, in, sample_row, &s, err);
    em_free(s.buf);
    em_free(own);
    return rc;
}

static int predict_row(void *ud, const uint8_t *row, bool dense, const em_ml_sparse *sp,
                       uint32_t best, double dist, em_err *err)
{
    uint8_t v[4];
    (void)row, (void)dense, (void)sp, (void)dist;
    em_store_le32(v, best);
    return em_emit_val(ud, em_slice_make(v, 4), err);
}

int em__km_fn_predict(const em_fn_ctx *fc, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err)
{
    km_ctx c;
    km_centers C;
    double *own = NULL;
    (void)index;
    int rc = em__km_ctx_decode(fc->blob, &c, err);
    if (rc < 0 || (rc = em__km_get_centers(fc, &c, &C, &own, err)) < 0)
        return rc;
    rc = c.k == 0 ? em_err_set(err, EM_EINVAL, "ml.kmeans.predict: no centres")
                  : each_assigned(&c, &C, in, predict_row, out, err);
    em_free(own);
    return rc;
}

/* ---------------------------------------------------------------- driver side */

uint32_t em_kmeans_predict(const em_kmeans_model *m, const double *x)
{
    km_centers C = {.k = m->k, .dim = m->dim, .distance = m->distance, .c = m->centers};
    uint32_t b = 0;
    double bv = 0;
    for (uint32_t i = 0; i < m->k; i++) {
        double v = em__km_exact(&C, x, i);
        if (i == 0 || v < bv) {
            bv = v;
            b = i;
        }
    }
    return b;
}

int em_kmeans_cost(em_context *sc, const em_kmeans_model *m, const em_ml_data *d,
                   double *cost, em_err *err)
{
    em_kmeans_params p = {.k = m->k, .distance = m->distance};
    km_run r = {.sc = sc, .d = d, .p = &p, .dim = m->dim};
    em_vbuf acc;
    int rc = em_kmeans_register();
    if (rc < 0)
        return em_err_set(err, rc, "k-means: a task function name is taken");
    if (d->dim != m->dim)
        return em_err_set(err, EM_EINVAL, "k-means: data of %u features, model of %u", d->dim,
                          m->dim);
    em_vbuf_init(&acc);
    rc = em__km_pass(&r, KM_COST, m->centers, m->k, 0, 0, &acc, err);
    if (rc == 0)
        *cost = ((const double *)acc.data)[(size_t)m->k * m->dim + m->k];
    em_vbuf_destroy(&acc);
    return rc;
}

int em_kmeans_predict_data(em_context *sc, const em_kmeans_model *m, const em_ml_data *d,
                           em_rdd **out, em_err *err)
{
    int rc = em_kmeans_register();
    *out = NULL;
    if (rc < 0)
        return em_err_set(err, rc, "k-means: a task function name is taken");
    if (d->dim != m->dim)
        return em_err_set(err, EM_EINVAL, "k-means: data of %u features, model of %u", d->dim,
                          m->dim);
    double *t = em__km_table(m->centers, m->k, m->dim, m->distance);
    km_ctx kc = {.k = m->k, .dim = m->dim, .distance = m->distance, .layout = *d,
                 .mode = KM_COST};
    kc.bcast = em_broadcast(sc, em_slice_make(t, 8 * (size_t)m->k * (m->dim + 1)), err);
    em_free(t);
    if (kc.bcast == 0)
        return err->code;
    uint8_t blob[EM__KM_CTX_SIZE];
    em__km_ctx_encode(&kc, blob);
    *out = em_rdd_map_partitions_fixed(d->rows, "ml.kmeans.predict",
                                       em_slice_make(blob, sizeof blob), true, 4);
    return 0;
}

/* ---------------------------------------------------------------- save / load */

static const char *dist_name(em_kmeans_distance d)
{
    return d == EM_KMEANS_COSINE ? "cosine" : "euclidean";
}

int em_kmeans_model_save(const em_kmeans_model *m, const char *dir, em_err *err)
{
    json_t *meta = json_object();
    json_object_set_new(meta, "k", json_integer(m->k));
    json_object_set_new(meta, "dim", json_integer(m->dim));
    json_object_set_new(meta, "distance", json_string(dist_name(m->distance)));
    json_object_set_new(meta, "cost", json_real(m->cost));
    json_object_set_new(meta, "iterations", json_integer(m->iterations));
    json_object_set_new(meta, "converged", json_boolean(m->converged));
    em_ml_array a = {.name = "centers", .data = m->centers, .count = (size_t)m->k * m->dim};
    int rc = em_ml_model_dir_write(dir, "ember.KMeansModel", 1, meta, &a, 1, err);
    json_decref(meta);
    return rc;
}

/* The fields of a parsed metadata object (model_dir.h checked class, version, arrays). */
static int decode_fields(const char *mname, const json_t *o, em_kmeans_model *m, em_err *err)
{
    uint64_t k, dim, iters;
    const char *dist;
    json_t *conv = json_object_get(o, "converged");
    int rc;
    if ((rc = em_ml_meta_u64(mname, o, "k", 1u << 20, &k, err)) < 0 ||
        (rc = em_ml_meta_u64(mname, o, "dim", 1u << 28, &dim, err)) < 0 ||
        (rc = em_ml_meta_u64(mname, o, "iterations", UINT32_MAX, &iters, err)) < 0 ||
        (rc = em_ml_meta_f64(mname, o, "cost", &m->cost, err)) < 0 ||
        (rc = em_ml_meta_str(mname, o, "distance", &dist, err)) < 0)
        return rc;
    if (k == 0 || dim == 0 || k * dim > ((uint64_t)1 << 27))
        return em_err_set(err, EM_ECORRUPT, "%s: %llu x %llu centres (k, dim >= 1; k x dim <= "
                          "2^27)", mname, (unsigned long long)k, (unsigned long long)dim);
    if (strcmp(dist, "euclidean") && strcmp(dist, "cosine"))
        return em_err_set(err, EM_ECORRUPT, "%s: distance '%s'", mname, dist);
    if (!json_is_boolean(conv))
        return em_err_set(err, EM_ECORRUPT, "%s: field 'converged' is not a boolean", mname);
    m->k = (uint32_t)k;
    m->dim = (uint32_t)dim;
    m->iterations = (uint32_t)iters;
    m->distance = strcmp(dist, "cosine") ? EM_KMEANS_EUCLIDEAN : EM_KMEANS_COSINE;
    m->converged = json_is_true(conv);
    return 0;
}

int em_kmeans_model_decode(const char *name, const uint8_t *meta, size_t meta_n,
                           const uint8_t *centers, size_t centers_n, em_kmeans_model **out,
                           em_err *err)
{
    char *mname = em_xasprintf("%s/metadata.json", name);
    char *cname = em_xasprintf("%s/centers.bin", name);
    json_t *o = NULL;
    em_kmeans_model *m = em_xcalloc(1, sizeof *m);
    em_ml_array a = {.name = "centers"};
    *out = NULL;
    int rc = em_ml_model_meta_parse(mname, meta, meta_n, "ember.KMeansModel", 1, &o, err);
    if (rc == 0)
        rc = decode_fields(mname, o, m, err);
    a.max_count = (size_t)m->k * m->dim;
    if (rc == 0)
        rc = em_ml_model_array_decode(cname, o, centers, centers_n, &a, err);
    if (rc == 0 && a.count != (size_t)m->k * m->dim)
        rc = em_err_set(err, EM_ECORRUPT, "%s: %zu values for %u x %u centres", cname, a.count,
                        m->k, m->dim);
    for (size_t i = 0; rc == 0 && i < a.count; i++)
        if (!isfinite(a.data[i]))
            rc = em_err_set(err, EM_ECORRUPT, "%s: value %zu not finite", cname, i);
    m->centers = a.data;
    if (rc == 0)
        *out = m;
    else
        em_kmeans_model_free(m);
    json_decref(o);
    em_free(mname);
    em_free(cname);
    return rc;
}

int em_kmeans_model_load(const char *dir, em_kmeans_model **out, em_err *err)
{
    char *meta_p = em_xasprintf("%s/metadata.json", dir);
    char *cent_p = em_xasprintf("%s/centers.bin", dir);
    uint8_t *meta = NULL, *cent = NULL;
    size_t mn = 0, cn = 0;
    int rc = em_read_file(meta_p, &meta, &mn, err);
    if (rc == 0)
        rc = em_read_file(cent_p, &cent, &cn, err);
    if (rc == 0)
        rc = em_kmeans_model_decode(dir, meta, mn, cent, cn, out, err);
    em_free(meta);
    em_free(cent);
    em_free(meta_p);
    em_free(cent_p);
    return rc;
}
