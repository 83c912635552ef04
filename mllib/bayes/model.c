/* mllib/bayes/model.c - the naive Bayes model: its linear form (bias + W x, bayes.h),
 * prediction of one vector and of a data set on the engine (ml.bayes.predict), and saving
 * and loading through mllib/linalg/model_dir.h.
 *
 * PREDICT ON THE ENGINE: the model's linear form is broadcast once; a task scores a dense
 * batch (a row-major n x (d + 1) matrix, label first) with one DGEMM against W (d x K) and
 * a sparse row with one AXPY-like update of K contiguous weights per entry, then emits
 * (predicted label, true label) pairs. Ties go to the first (smallest) label, as numpy's
 * argmax in scikit-learn. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "mllib/bayes/bayes_int.h"
#include "mllib/linalg/model_dir.h"

#define NB_CLASS "ember.NaiveBayesModel"
#define NB_VERSION 1

void em_nb_model_free(em_nb_model *m)
{
    if (!m)
        return;
    em_free(m->labels);
    em_free(m->pi);
    em_free(m->theta);
    em_free(m->bias);
    em_free(m->wt);
    em_free(m);
}

int em_nb_model_new(em_nb_type type, double smoothing, uint32_t k, uint32_t dim,
                    const double *labels, const double *pi, const double *theta,
                    em_nb_model **out, em_err *err)
{
    *out = NULL;
    if (k == 0 || dim == 0 || (type != EM_NB_MULTINOMIAL && type != EM_NB_BERNOULLI))
        return em_err_set(err, EM_EINVAL, "naive Bayes model: %u classes, %u features, type "
                          "%d", k, dim, (int)type);
    for (uint32_t c = 0; c < k; c++)
        if (!isfinite(labels[c]) || !isfinite(pi[c]) || (c > 0 && !(labels[c] > labels[c - 1])))
            return em_err_set(err, EM_EINVAL, "naive Bayes model: class %u (label %g, log "
                              "prior %g): labels must ascend, values be finite", c,
                              labels[c], pi[c]);
    size_t kd = (size_t)k * dim;
    for (size_t i = 0; i < kd; i++)
        if (!(theta[i] <= 0) || !isfinite(theta[i]) ||
            (type == EM_NB_BERNOULLI && theta[i] == 0))
            return em_err_set(err, EM_EINVAL, "naive Bayes model: theta[%zu] = %g (a log "
                              "probability%s)", i, theta[i],
                              type == EM_NB_BERNOULLI ? " below 0" : "");
    em_nb_model *m = em_calloc(1, sizeof *m);
    if (!m)
        return em_err_set(err, EM_ENOMEM, "naive Bayes model");
    m->type = type;
    m->smoothing = smoothing;
    m->k = k;
    m->dim = dim;
    m->labels = em_malloc(8 * (size_t)k);
    m->pi = em_malloc(8 * (size_t)k);
    m->bias = em_malloc(8 * (size_t)k);
    m->theta = em_malloc(8 * kd);
    m->wt = em_malloc(8 * kd);
    if (!m->labels || !m->pi || !m->bias || !m->theta || !m->wt) {
        em_nb_model_free(m);
        return em_err_set(err, EM_ENOMEM, "naive Bayes model: %u x %u", k, dim);
    }
    memcpy(m->labels, labels, 8 * (size_t)k);
    memcpy(m->pi, pi, 8 * (size_t)k);
    memcpy(m->theta, theta, 8 * kd);
    for (uint32_t c = 0; c < k; c++) {
        double b = pi[c];
        for (uint32_t j = 0; j < dim; j++) {
            double t = theta[(size_t)c * dim + j], w = t;
            if (type == EM_NB_BERNOULLI) {
                double neg = log1p(-exp(t));   /* log(1 - p) */
                b += neg;
                w = t - neg;
            }
            m->wt[(size_t)j * k + c] = w;
        }
        m->bias[c] = b;
    }
    *out = m;
    return 0;
}

/* The winner of k scores and, when probs is set, the softmax of the scores. */
static double finish(const em_nb_model *m, const double *s, double *probs)
{
    uint32_t best = 0;
    for (uint32_t c = 1; c < m->k; c++)
        if (s[c] > s[best])
            best = c;
    if (probs) {
        double z = 0;
        for (uint32_t c = 0; c < m->k; c++)
            z += (probs[c] = exp(s[c] - s[best]));
        for (uint32_t c = 0; c < m->k; c++)
            probs[c] /= z;
    }
    return m->labels[best];
}

static int bernoulli_bad(double v, uint32_t j, em_err *err)
{
    return em_err_set(err, EM_EINVAL, "naive Bayes (Bernoulli): feature %u is %g (must be 0 "
                      "or 1)", j + 1, v);
}

static double *scores_new(const em_nb_model *m, em_err *err)
{
    double *s = em_malloc(8 * (size_t)m->k);
    if (!s)
        em_err_set(err, EM_ENOMEM, "naive Bayes: %u scores", m->k);
    return s;
}

int em_nb_predict(const em_nb_model *m, const double *x, double *label, double *probs,
                  em_err *err)
{
    double *s = scores_new(m, err);
    if (!s)
        return err->code;
    memcpy(s, m->bias, 8 * (size_t)m->k);
    for (uint32_t j = 0; j < m->dim; j++) {
        if (x[j] == 0)
            continue;
        if (m->type == EM_NB_BERNOULLI && x[j] != 1) {
            em_free(s);
            return bernoulli_bad(x[j], j, err);
        }
        const double *w = m->wt + (size_t)j * m->k;
        for (uint32_t c = 0; c < m->k; c++)
            s[c] += x[j] * w[c];
    }
    *label = finish(m, s, probs);
    em_free(s);
    return 0;
}

/* Scores of one sparse row into s (k doubles). */
static int score_sparse(const em_nb_model *m, const em_ml_sparse *sp, const uint32_t *idx,
                        const double *val, uint32_t nnz, double *s, em_err *err)
{
    memcpy(s, m->bias, 8 * (size_t)m->k);
    for (uint32_t i = 0; i < nnz; i++) {
        uint32_t j = sp ? em_ml_sparse_idx(sp, i) : idx[i];
        double v = sp ? em_ml_sparse_val(sp, i) : val[i];
        if (j >= m->dim)
            return em_err_set(err, EM_EINVAL, "naive Bayes: feature %u of a model of %u", j + 1,
                              m->dim);
        if (m->type == EM_NB_BERNOULLI && v != 0 && v != 1)
            return bernoulli_bad(v, j, err);
        const double *w = m->wt + (size_t)j * m->k;
        for (uint32_t c = 0; c < m->k; c++)
            s[c] += v * w[c];
    }
    return 0;
}

/* Scores of one viewed row (dense or sparse) into s (k doubles). */
static int score_row(const em_nb_model *m, const em_ml_row *v, double *s, em_err *err)
{
    if (!v->dense)
        return score_sparse(m, &v->sp, NULL, NULL, v->sp.nnz, s, err);
    memcpy(s, m->bias, 8 * (size_t)m->k);
    for (uint32_t j = 0; j < m->dim; j++) {
        double x;
        memcpy(&x, v->dense + 8 * (size_t)j, 8);
        if (x == 0)
            continue;
        if (m->type == EM_NB_BERNOULLI && x != 1)
            return bernoulli_bad(x, j, err);
        const double *w = m->wt + (size_t)j * m->k;
        for (uint32_t c = 0; c < m->k; c++)
            s[c] += x * w[c];
    }
    return 0;
}

int em_nb_predict_sparse(const em_nb_model *m, uint32_t nnz, const uint32_t *idx,
                         const double *val, double *label, double *probs, em_err *err)
{
    double *s = scores_new(m, err);
    if (!s)
        return err->code;
    int rc = score_sparse(m, NULL, idx, val, nnz, s, err);
    if (rc == 0)
        *label = finish(m, s, probs);
    em_free(s);
    return rc;
}

/* ---------------------------------------------------------------- on the engine */

int em__nb_model_encode(const em_nb_model *m, em_vbuf *out, em_err *err)
{
    uint8_t h[16] = {0};
    em_store_le32(h, (uint32_t)m->type);
    em_store_le32(h + 4, m->k);
    em_store_le32(h + 8, m->dim);
    if (em_vbuf_append(out, h, 16) < 0 || em_vbuf_append(out, m->labels, 8 * (size_t)m->k) < 0 ||
        em_vbuf_append(out, m->bias, 8 * (size_t)m->k) < 0 ||
        em_vbuf_append(out, m->wt, 8 * (size_t)m->k * m->dim) < 0)
        return em_err_set(err, EM_ENOMEM, "naive Bayes: encoding the model");
    return 0;
}

/* A view of the broadcast model (arrays copied where unaligned: the broadcast buffer is
 * only byte-aligned in general). */
static int model_view(em_slice b, const nb_ctx *c, em_nb_model *m, em_err *err)
{
    memset(m, 0, sizeof *m);
    if (b.n < 16)
        return em_err_set(err, EM_ECORRUPT, "ml.bayes.predict: model of %zu bytes", b.n);
    m->type = (em_nb_type)em_load_le32(b.p);
    m->k = em_load_le32(b.p + 4);
    m->dim = em_load_le32(b.p + 8);
    if (m->k == 0 || m->dim != c->layout.dim ||
        b.n != 16 + 8 * ((size_t)2 * m->k + (size_t)m->k * m->dim))
        return em_err_set(err, EM_ECORRUPT, "ml.bayes.predict: model of %zu bytes (%u classes,"
                          " %u features; data has %u)", b.n, m->k, m->dim, c->layout.dim);
    size_t n = b.n - 16;
    double *all = em_malloc(n);
    if (!all)
        return em_err_set(err, EM_ENOMEM, "ml.bayes.predict: model of %zu bytes", b.n);
    memcpy(all, b.p + 16, n);
    m->labels = all;
    m->bias = all + m->k;
    m->wt = all + 2 * (size_t)m->k;
    return 0;
}

static int emit_pair(em_emitter *out, double pred, double label, em_err *err)
{
    double v[2] = {pred, label};
    return em_emit_val(out, em_slice_make(v, 16), err);
}

/* A dense batch: rows of 1 + dim doubles (label first), scored by one DGEMM per chunk. */
static int predict_dense(const em_nb_model *m, const em_rec_batch *b, double *s, size_t chunk,
                         em_emitter *out, em_err *err)
{
    size_t w = (size_t)m->dim + 1;
    const double *x = (const double *)b->data;
    for (size_t r0 = 0; r0 < b->nrecs; r0 += chunk) {
        size_t n = b->nrecs - r0 < chunk ? b->nrecs - r0 : chunk;
        const double *xr = x + r0 * w;
        for (size_t i = 0; i < n; i++) {
            memcpy(s + i * m->k, m->bias, 8 * (size_t)m->k);
            for (uint32_t j = 0; m->type == EM_NB_BERNOULLI && j < m->dim; j++) {
                double v = xr[i * w + 1 + j];
                if (v != 0 && v != 1)
                    return bernoulli_bad(v, j, err);
            }
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m->k, (int)m->dim,
                    1.0, xr + 1, (int)w, m->wt, (int)m->k, 1.0, s, (int)m->k);
        for (size_t i = 0; i < n; i++) {
            int rc = emit_pair(out, finish(m, s + i * m->k, NULL), xr[i * w], err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* ml.bayes.predict: blob = nb_ctx with the model's broadcast id. */
int em__nb_fn_predict(const em_fn_ctx *fc, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err)
{
    (void)index;
    nb_ctx c;
    em_slice bs;
    em_nb_model m;
    int rc = em__nb_ctx_decode(fc->blob, &c, err);
    if (rc < 0 || (rc = em_task_broadcast(fc->task, c.bcast, &bs, err)) < 0 ||
        (rc = model_view(bs, &c, &m, err)) < 0)
        return rc;
    size_t chunk = 256;
    double *s = em_malloc(8 * chunk * m.k);
    if (!s) {
        em_free(m.labels);
        return em_err_set(err, EM_ENOMEM, "ml.bayes.predict: scores");
    }
    em_rec_batch b;
    while ((rc = em_iter_next_batch(in, &b, err)) == 1) {
        if (b.kind == EM_REC_FIXED && !c.layout.sparse && b.width == 8 * (m.dim + 1) &&
            ((uintptr_t)b.data & 7) == 0) {
            if ((rc = predict_dense(&m, &b, s, chunk, out, err)) < 0)
                break;
            continue;
        }
        em_batch_iter it;
        em_rec r;
        em_batch_iter_init_raw(&it, b.kind, b.width, b.data, b.nbytes);
        while (rc >= 0 && em_batch_iter_next(&it, &r)) {
            em_ml_row v;
            if ((rc = em_ml_row_view(&c.layout, r.val, &v, err)) < 0)
                break;
            rc = score_row(&m, &v, s, err);
            if (rc >= 0)
                rc = emit_pair(out, finish(&m, s, NULL), v.label, err);
        }
        if (rc < 0)
            break;
        rc = 0;
    }
    em_free(s);
    em_free(m.labels);
    return rc < 0 ? rc : 0;
}

/* ml.bayes.pair_text: a prediction pair -> the predicted label as text (integers print
 * without a fraction: labels are integers). */
int em__nb_fn_pair_text(const em_fn_ctx *fc, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)fc;
    double p;
    char buf[40];
    if (in->val.n != 16)
        return em_err_set(err, EM_EINVAL, "ml.bayes.pair_text: a record of %zu bytes",
                          in->val.n);
    memcpy(&p, in->val.p, 8);
    int n = snprintf(buf, sizeof buf, "%.17g", p);
    return em_emit_val(out, em_slice_make(buf, (size_t)n), err);
}

int em_nb_predict_pairs(em_context *sc, const em_nb_model *m, const em_ml_data *d,
                        em_rdd **out, uint32_t *bcast, em_err *err)
{
    int rc;
    *out = NULL;
    *bcast = 0;
    if ((rc = em_bayes_register()) < 0)
        return em_err_set(err, rc, "naive Bayes: a task function name is taken");
    if (!d->labeled || d->dim != m->dim)
        return em_err_set(err, EM_EINVAL, "naive Bayes: predicting %s data of %u features "
                          "with a model of %u", d->labeled ? "labeled" : "unlabeled", d->dim,
                          m->dim);
    em_vbuf v;
    em_vbuf_init(&v);
    if ((rc = em__nb_model_encode(m, &v, err)) < 0) {
        em_vbuf_destroy(&v);
        return rc;
    }
    nb_ctx c = {.layout = {.sparse = d->sparse, .labeled = true, .dim = d->dim},
                .type = m->type};
    c.bcast = em_broadcast(sc, em_slice_make(v.data, v.len), err);
    em_vbuf_destroy(&v);
    if (c.bcast == 0)
        return err->code;
    uint8_t blob[EM__NB_CTX_SIZE];
    em__nb_ctx_encode(&c, blob);
    *out = em_rdd_map_partitions_fixed(d->rows, "ml.bayes.predict",
                                       em_slice_make(blob, sizeof blob), false, 16);
    *bcast = c.bcast;
    return 0;
}

/* ml.bayes.logloss: blob = nb_ctx with the model's broadcast id. Emits one record per
 * partition: {sum of -log p(true label | row), rows}, p the posterior clipped to
 * [1e-15, 1 - 1e-15] (scikit-learn's log_loss; a label the model never saw has p = 0). */
int em__nb_fn_logloss(const em_fn_ctx *fc, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err)
{
    (void)index;
    nb_ctx c;
    em_slice bs;
    em_nb_model m;
    int rc = em__nb_ctx_decode(fc->blob, &c, err);
    if (rc < 0 || (rc = em_task_broadcast(fc->task, c.bcast, &bs, err)) < 0 ||
        (rc = model_view(bs, &c, &m, err)) < 0)
        return rc;
    double *s = em_malloc(16 * (size_t)m.k), acc[2] = {0, 0};
    em_rec r;
    if (!s)
        rc = em_err_set(err, EM_ENOMEM, "ml.bayes.logloss: scores");
    while (s && (rc = em_iter_next(in, &r, err)) == 1) {
        em_ml_row v;
        if ((rc = em_ml_row_view(&c.layout, r.val, &v, err)) < 0 ||
            (rc = score_row(&m, &v, s, err)) < 0)
            break;
        finish(&m, s, s + m.k);
        double p = 0;
        for (uint32_t k = 0; k < m.k; k++)
            if (m.labels[k] == v.label)
                p = s[m.k + k];
        p = p < 1e-15 ? 1e-15 : p > 1 - 1e-15 ? 1 - 1e-15 : p;
        acc[0] -= log(p);
        acc[1] += 1;
    }
    if (rc == 0)
        rc = em_emit_val(out, em_slice_make(acc, 16), err);
    em_free(s);
    em_free(m.labels);
    return rc < 0 ? rc : 0;
}

int em_nb_log_loss(em_context *sc, const em_nb_model *m, const em_ml_data *d, double *out,
                   em_err *err)
{
    em_rdd *pairs;
    uint32_t bc;
    *out = NAN;
    int rc = em_nb_predict_pairs(sc, m, d, &pairs, &bc, err);   /* checks, broadcast */
    if (rc < 0)
        return rc;
    em_rdd_release(pairs);
    nb_ctx c = {.layout = {.sparse = d->sparse, .labeled = true, .dim = d->dim},
                .type = m->type, .bcast = bc};
    uint8_t blob[EM__NB_CTX_SIZE];
    em__nb_ctx_encode(&c, blob);
    em_rdd *parts = em_rdd_map_partitions_fixed(d->rows, "ml.bayes.logloss",
                                                em_slice_make(blob, sizeof blob), false, 16);
    em_records recs = {0};
    rc = em_rdd_collect(parts, &recs, err);
    double sum = 0, n = 0;
    for (size_t i = 0; rc == 0 && i < recs.n; i++) {
        double v[2];
        memcpy(v, recs.recs[i].val.p, 16);
        sum += v[0];
        n += v[1];
    }
    if (rc == 0 && n > 0)
        *out = sum / n;
    em_records_destroy(&recs);
    em_rdd_release(parts);
    em_broadcast_destroy(sc, bc);
    return rc;
}

/* ---------------------------------------------------------------- save and load */

int em_nb_model_save(const em_nb_model *m, const char *dir, em_err *err)
{
    json_t *meta = json_object();
    json_object_set_new(meta, "model_type",
                        json_string(m->type == EM_NB_BERNOULLI ? "bernoulli" : "multinomial"));
    json_object_set_new(meta, "smoothing", json_real(m->smoothing));
    json_object_set_new(meta, "num_classes", json_integer(m->k));
    json_object_set_new(meta, "num_features", json_integer(m->dim));
    em_ml_array a[3] = {{.name = "labels", .data = m->labels, .count = m->k},
                        {.name = "pi", .data = m->pi, .count = m->k},
                        {.name = "theta", .data = m->theta, .count = (size_t)m->k * m->dim}};
    int rc = em_ml_model_dir_write(dir, NB_CLASS, NB_VERSION, meta, a, 3, err);
    json_decref(meta);
    return rc;
}

int em_nb_model_load(const char *dir, em_nb_model **out, em_err *err)
{
    json_t *meta = NULL;
    *out = NULL;
    em_ml_array a[3] = {{.name = "labels", .max_count = 1u << 16},
                        {.name = "pi", .max_count = 1u << 16},
                        {.name = "theta", .max_count = (size_t)1 << 28}};
    int rc = em_ml_model_dir_read(dir, NB_CLASS, NB_VERSION, &meta, a, 3, err);
    if (rc < 0)
        return rc;
    const char *type;
    uint64_t k = 0, d = 0;
    double lam = 0;
    if ((rc = em_ml_meta_str(dir, meta, "model_type", &type, err)) < 0 ||
        (rc = em_ml_meta_u64(dir, meta, "num_classes", 1u << 16, &k, err)) < 0 ||
        (rc = em_ml_meta_u64(dir, meta, "num_features", UINT32_MAX, &d, err)) < 0 ||
        (rc = em_ml_meta_f64(dir, meta, "smoothing", &lam, err)) < 0)
        goto out;
    if (strcmp(type, "multinomial") != 0 && strcmp(type, "bernoulli") != 0) {
        rc = em_err_set(err, EM_ECORRUPT, "%s: model_type '%s'", dir, type);
        goto out;
    }
    if (k == 0 || d == 0 || a[0].count != k || a[1].count != k || a[2].count != k * d) {
        rc = em_err_set(err, EM_ECORRUPT, "%s: arrays of %zu, %zu and %zu values for %llu "
                        "classes x %llu features", dir, a[0].count, a[1].count, a[2].count,
                        (unsigned long long)k, (unsigned long long)d);
        goto out;
    }
    rc = em_nb_model_new(type[0] == 'b' ? EM_NB_BERNOULLI : EM_NB_MULTINOMIAL, lam,
                         (uint32_t)k, (uint32_t)d, a[0].data, a[1].data, a[2].data, out, err);
    if (rc < 0) {
        em_err_prefix(err, "%s", dir);
        rc = EM_ECORRUPT;
        err->code = rc;
    }
out:
    json_decref(meta);
    for (int i = 0; i < 3; i++)
        em_free(a[i].data);
    return rc;
}
