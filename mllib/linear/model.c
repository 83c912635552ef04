/* mllib/linear/model.c - the one linear model type (linear.h): margins, scores and
 * predictions on the driver, prediction pairs on the engine, save and load, and the
 * registration table of "ml.linear.*".
 *
 * PREDICT TASK CONTEXT (blob of ml.linear.predict; 32 bytes LE): u32 magic "EMLP", u8 kind,
 * u8 sparse, u8 family, u8 link, u32 dim, u32 rows, u32 broadcast id, u32 0, f64 threshold.
 * The broadcast holds rows x dim coefficients then rows intercepts (linear_int.h).
 * A partition of dense labeled points is scored a block of rows at a time: the margins of
 * the block are one DGEMV (one row of coefficients) or DGEMM (K rows), read straight from
 * the batch the engine hands out (leading dimension dim + 1: the label comes first). */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "mllib/linalg/linalg.h"
#include "mllib/linalg/model_dir.h"
#include "mllib/linear/linear_int.h"

#define EM__LINP_MAGIC 0x504c4d45u   /* "EMLP" */
#define LINP_CTX_SIZE 32
#define LIN_MODEL_CLASS "ember.LinearModel"
#define LIN_MODEL_VERSION 1

static const em_fn_entry lin_fns[] = {
    {"ml.linear.grad", EM_FN_ACC_SEQ, EM_FN(em__lin_fn_grad)},
    {"ml.linear.sum", EM_FN_ACC_MERGE, EM_FN(em__lin_fn_sum)},
    {"ml.linear.labels", EM_FN_ACC_SEQ, EM_FN(em__lin_fn_labels)},
    {"ml.linear.labels_merge", EM_FN_ACC_MERGE, EM_FN(em__lin_fn_labels_merge)},
    {"ml.linear.moments", EM_FN_ACC_SEQ, EM_FN(em__lin_fn_moments)},
    {"ml.linear.moments_merge", EM_FN_ACC_MERGE, EM_FN(em__lin_fn_moments_merge)},
    {"ml.linear.predict", EM_FN_PARTITION, EM_FN(em__lin_fn_predict)},
};

int em_linear_register(void)
{
    int rc = em_linalg_register();
    if (rc < 0)
        return rc;
    return em_fn_register_table(lin_fns, sizeof lin_fns / sizeof lin_fns[0]);
}

em_linear_model *em_linear_model_new(em_linear_kind kind, uint32_t dim, uint32_t rows)
{
    em_linear_model *m = em_xcalloc(1, sizeof *m);
    m->kind = kind;
    m->dim = dim;
    m->rows = rows ? rows : 1;
    m->coef = em_xcalloc((size_t)m->rows * (dim ? dim : 1), sizeof(double));
    m->intercept = em_xcalloc(m->rows, sizeof(double));
    m->threshold = kind == EM_LINEAR_LOGISTIC ? 0.5 : 0;
    if (kind == EM_LINEAR_GLM) {
        m->family = EM_GLM_GAUSSIAN;
        m->link = EM_GLM_IDENTITY;
    }
    return m;
}

void em_linear_model_free(em_linear_model *m)
{
    if (!m)
        return;
    em_free(m->coef);
    em_free(m->intercept);
    json_decref(m->summary);
    em_free(m);
}

/* ---------------------------------------------------------------- one row */

double em_linear_margin(const em_linear_model *m, const em_ml_row *x, uint32_t r)
{
    const double *w = m->coef + (size_t)r * m->dim;
    double z = m->intercept[r];
    if (x->dense) {
        for (uint32_t j = 0; j < m->dim; j++) {
            double v;
            memcpy(&v, x->dense + 8 * (size_t)j, 8);
            z += v * w[j];
        }
    } else {
        for (uint32_t i = 0; i < x->sp.nnz; i++) {
            uint32_t j = em_ml_sparse_idx(&x->sp, i);
            if (j < m->dim)
                z += em_ml_sparse_val(&x->sp, i) * w[j];
        }
    }
    return z;
}

static double inv_link(em_glm_link link, double z)
{
    switch (link) {
    case EM_GLM_LOG:
        return exp(z);
    case EM_GLM_LOGIT:
        return 1 / (1 + exp(-z));
    case EM_GLM_INVERSE:
        return 1 / z;
    default:
        return z;
    }
}

/* Score from the margins z (rows of them): see em_linear_score. */
static double score_of(const em_linear_model *m, const double *z)
{
    switch (m->kind) {
    case EM_LINEAR_LOGISTIC:
        return 1 / (1 + exp(-z[0]));
    case EM_LINEAR_MULTINOMIAL: {
        uint32_t b = 0;
        for (uint32_t r = 1; r < m->rows; r++)
            if (z[r] > z[b])
                b = r;
        return b;
    }
    case EM_LINEAR_GLM:
        return inv_link(m->link, z[0]);
    default:
        return z[0];
    }
}

static double predict_of(const em_linear_model *m, double s)
{
    switch (m->kind) {
    case EM_LINEAR_LOGISTIC:
    case EM_LINEAR_SVM:
        return s > m->threshold ? 1 : 0;
    default:
        return s;
    }
}

double em_linear_score(const em_linear_model *m, const em_ml_row *x)
{
    double zs[16] = {0}, *z = m->rows <= 16 ? zs : em_xmalloc(sizeof(double) * m->rows);
    for (uint32_t r = 0; r < m->rows; r++)
        z[r] = em_linear_margin(m, x, r);
    double s = score_of(m, z);
    if (z != zs)
        em_free(z);
    return s;
}

double em_linear_predict(const em_linear_model *m, const em_ml_row *x)
{
    return predict_of(m, em_linear_score(m, x));
}

/* ---------------------------------------------------------------- prediction task */

typedef struct pred_ctx {
    em_linear_model m;   /* coef/intercept point into the broadcast (or own copy) */
    bool sparse;
    uint32_t bcast;
} pred_ctx;

static int pred_ctx_decode(const em_fn_ctx *fc, pred_ctx *p, double **own, em_err *err)
{
    em_slice b = fc->blob, v;
    memset(p, 0, sizeof *p);
    *own = NULL;
    if (b.n != LINP_CTX_SIZE || em_load_le32(b.p) != EM__LINP_MAGIC || b.p[4] < 1 ||
        b.p[4] > EM_LINEAR_GLM || b.p[5] > 1 || b.p[6] > EM_GLM_GAMMA || b.p[7] > EM_GLM_INVERSE)
        return em_err_set(err, EM_ECORRUPT, "ml.linear.predict: bad task context");
    p->m.kind = (em_linear_kind)b.p[4];
    p->sparse = b.p[5];
    p->m.family = (em_glm_family)b.p[6];
    p->m.link = (em_glm_link)b.p[7];
    p->m.dim = em_load_le32(b.p + 8);
    p->m.rows = em_load_le32(b.p + 12);
    p->bcast = em_load_le32(b.p + 16);
    memcpy(&p->m.threshold, b.p + 24, 8);
    if (p->m.dim == 0 || p->m.rows == 0 || p->m.rows > EM__LIN_MAX_CLASSES)
        return em_err_set(err, EM_ECORRUPT, "ml.linear.predict: bad sizes in task context");
    int rc = em_task_broadcast(fc->task, p->bcast, &v, err);
    if (rc < 0)
        return rc;
    size_t want = 8 * (size_t)p->m.rows * ((size_t)p->m.dim + 1);
    if (v.n != want)
        return em_err_set(err, EM_ECORRUPT, "ml.linear.predict: model of %zu bytes, "
                          "expected %zu", v.n, want);
    const double *w = (const double *)v.p;
    if (((uintptr_t)v.p & 7) != 0) {
        if (!(*own = em_malloc(v.n)))
            return em_err_set(err, EM_ENOMEM, "ml.linear.predict: out of memory");
        memcpy(*own, v.p, v.n);
        w = *own;
    }
    p->m.coef = (double *)w;
    p->m.intercept = (double *)w + (size_t)p->m.rows * p->m.dim;
    return 0;
}

static int emit_pair(em_emitter *out, double score, double label, em_err *err)
{
    double pr[2] = {score, label};
    return em_emit_val(out, em_slice_make(pr, sizeof pr), err);
}

enum { PRED_BLK = 512 };

/* Margins of n dense rows (ld doubles apart, features after the label) into z (n x rows). */
static void dense_margins(const em_linear_model *m, const double *x, size_t ld, size_t n,
                          double *z)
{
    em_la_init();
    if (m->rows == 1)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)m->dim, 1.0, x, (int)ld,
                    m->coef, 1, 0.0, z, 1);
    else
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)m->rows,
                    (int)m->dim, 1.0, x, (int)ld, m->coef, (int)m->dim, 0.0, z, (int)m->rows);
    for (size_t i = 0; i < n; i++)
        for (uint32_t r = 0; r < m->rows; r++)
            z[i * m->rows + r] += m->intercept[r];
}

static int predict_dense(const pred_ctx *p, const em_rec_batch *b, double *z, em_emitter *out,
                         em_err *err)
{
    size_t ld = (size_t)p->m.dim + 1;
    if (b->kind != EM_REC_FIXED || b->width != 8 * ld)
        return em_err_set(err, EM_EINVAL, "ml.linear.predict: rows of %u bytes, expected %zu",
                          b->width, 8 * ld);
    const double *x = (const double *)b->data;
    for (size_t i0 = 0; i0 < b->nrecs; i0 += PRED_BLK) {
        size_t n = b->nrecs - i0 < PRED_BLK ? b->nrecs - i0 : PRED_BLK;
        dense_margins(&p->m, x + i0 * ld + 1, ld, n, z);
        for (size_t i = 0; i < n; i++) {
            int rc = emit_pair(out, score_of(&p->m, z + i * p->m.rows), x[(i0 + i) * ld], err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int predict_sparse(const pred_ctx *p, const em_rec_batch *b, em_emitter *out,
                          em_err *err)
{
    em_ml_data lay = {.sparse = true, .labeled = true, .dim = p->m.dim};
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, b->kind, b->width, b->data, b->nbytes);
    while (em_batch_iter_next(&it, &r)) {
        em_ml_row row;
        int rc = em_ml_row_view(&lay, r.val, &row, err);
        if (rc < 0 || (rc = emit_pair(out, em_linear_score(&p->m, &row), row.label, err)) < 0)
            return rc;
    }
    return 0;
}

int em__lin_fn_predict(const em_fn_ctx *fc, uint32_t index, em_iter *in, em_emitter *out,
                       em_err *err)
{
    pred_ctx p;
    double *own, *z = NULL;
    em_rec_batch b;
    (void)index;
    int rc = pred_ctx_decode(fc, &p, &own, err);
    if (rc == 0 && !p.sparse &&
        !(z = em_malloc(sizeof(double) * PRED_BLK * p.m.rows)))
        rc = em_err_set(err, EM_ENOMEM, "ml.linear.predict: out of memory");
    while (rc == 0 && (rc = em_iter_next_batch(in, &b, err)) > 0)
        rc = p.sparse ? predict_sparse(&p, &b, out, err) : predict_dense(&p, &b, z, out, err);
    em_free(z);
    em_free(own);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- driver side */

int em_linear_predict_pairs(em_context *sc, const em_linear_model *m, const em_ml_data *d,
                            em_rdd **out, em_err *err)
{
    *out = NULL;
    int rc = em_linear_register();
    if (rc < 0)
        return em_err_set(err, rc, "linear model: a task function name is taken");
    if (!d->labeled)
        return em_err_set(err, EM_EINVAL, "linear model: prediction pairs need labeled data");
    if (d->dim != m->dim)
        return em_err_set(err, EM_EINVAL, "linear model: data of %u features, model of %u",
                          d->dim, m->dim);
    size_t nw = (size_t)m->rows * m->dim;
    double *w = em_xmalloc(sizeof(double) * (nw + m->rows));
    memcpy(w, m->coef, sizeof(double) * nw);
    memcpy(w + nw, m->intercept, sizeof(double) * m->rows);
    uint32_t id = em_broadcast(sc, em_slice_make(w, sizeof(double) * (nw + m->rows)), err);
    em_free(w);
    if (id == 0)
        return err->code;
    uint8_t blob[LINP_CTX_SIZE] = {0};
    em_store_le32(blob, EM__LINP_MAGIC);
    blob[4] = (uint8_t)m->kind;
    blob[5] = d->sparse;
    blob[6] = (uint8_t)m->family;
    blob[7] = (uint8_t)m->link;
    em_store_le32(blob + 8, m->dim);
    em_store_le32(blob + 12, m->rows);
    em_store_le32(blob + 16, id);
    memcpy(blob + 24, &m->threshold, 8);
    *out = em_rdd_map_partitions_fixed(d->rows, "ml.linear.predict",
                                       em_slice_make(blob, sizeof blob), true, 16);
    return 0;
}

/* ---------------------------------------------------------------- save / load */

static const char *const kind_names[] = {NULL, "logistic", "multinomial", "svm",
                                         "regression", "glm"};
static const char *const family_names[] = {"none", "gaussian", "binomial", "poisson",
                                           "gamma"};
static const char *const link_names[] = {"none", "identity", "log", "logit", "inverse"};

static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], s) == 0)
            return i;
    return -1;
}

int em_linear_model_save(const em_linear_model *m, const char *dir, em_err *err)
{
    if (m->kind < EM_LINEAR_LOGISTIC || m->kind > EM_LINEAR_GLM)
        return em_err_set(err, EM_EINVAL, "%s: linear model of unknown kind %d", dir, m->kind);
    json_t *meta = json_pack("{s:s, s:I, s:I, s:f, s:s, s:s}", "kind", kind_names[m->kind],
                             "dim", (json_int_t)m->dim, "rows", (json_int_t)m->rows,
                             "threshold", m->threshold, "family",
                             family_names[m->family <= EM_GLM_GAMMA ? m->family : 0], "link",
                             link_names[m->link <= EM_GLM_INVERSE ? m->link : 0]);
    if (!meta)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", dir);
    if (m->summary)
        json_object_set(meta, "summary", m->summary);
    em_ml_array arr[] = {
        {.name = "coef", .data = m->coef, .count = (size_t)m->rows * m->dim},
        {.name = "intercept", .data = m->intercept, .count = m->rows},
    };
    int rc = em_ml_model_dir_write(dir, LIN_MODEL_CLASS, LIN_MODEL_VERSION, meta, arr, 2, err);
    json_decref(meta);
    return rc;
}

/* The fields of metadata.json into a new model (arrays not yet attached). */
static int meta_to_model(const char *dir, const json_t *meta, em_linear_model **out,
                         em_err *err)
{
    const char *kind, *fam, *link;
    uint64_t dim, rows;
    double thr;
    int rc, k, f, l;
    if ((rc = em_ml_meta_str(dir, meta, "kind", &kind, err)) < 0 ||
        (rc = em_ml_meta_u64(dir, meta, "dim", 1u << 30, &dim, err)) < 0 ||
        (rc = em_ml_meta_u64(dir, meta, "rows", EM__LIN_MAX_CLASSES, &rows, err)) < 0 ||
        (rc = em_ml_meta_f64(dir, meta, "threshold", &thr, err)) < 0 ||
        (rc = em_ml_meta_str(dir, meta, "family", &fam, err)) < 0 ||
        (rc = em_ml_meta_str(dir, meta, "link", &link, err)) < 0)
        return rc;
    if ((k = name_index(kind_names, 6, kind)) < 0)
        return em_err_set(err, EM_ECORRUPT, "%s: metadata.json: unknown kind '%s'", dir, kind);
    if ((f = name_index(family_names, 5, fam)) < 0 || (l = name_index(link_names, 5, link)) < 0)
        return em_err_set(err, EM_ECORRUPT, "%s: metadata.json: unknown family or link", dir);
    if (dim == 0 || rows == 0 || (k != EM_LINEAR_MULTINOMIAL && rows != 1) ||
        (k == EM_LINEAR_GLM && (f == 0 || l == 0)))
        return em_err_set(err, EM_ECORRUPT, "%s: metadata.json: %s model of %llu x %llu "
                          "coefficients", dir, kind, (unsigned long long)rows,
                          (unsigned long long)dim);
    em_linear_model *m = em_xcalloc(1, sizeof *m);
    m->kind = (em_linear_kind)k;
    m->dim = (uint32_t)dim;
    m->rows = (uint32_t)rows;
    m->threshold = thr;
    m->family = (em_glm_family)f;
    m->link = (em_glm_link)l;
    json_t *s = json_object_get(meta, "summary");
    if (s)
        m->summary = json_incref(s);
    *out = m;
    return 0;
}

/* The model from its parsed metadata and verified arrays (taken: freed on error). */
static int from_parts(const char *dir, json_t *meta, em_ml_array *arr, em_linear_model **out,
                      em_err *err)
{
    em_linear_model *m = NULL;
    int rc = meta_to_model(dir, meta, &m, err);
    if (rc < 0)
        goto fail;
    if (arr[0].count != (size_t)m->rows * m->dim || arr[1].count != m->rows) {
        rc = em_err_set(err, EM_ECORRUPT, "%s: coef.bin/intercept.bin: %zu and %zu values "
                        "for %u x %u coefficients", dir, arr[0].count, arr[1].count, m->rows,
                        m->dim);
        goto fail;
    }
    for (int a = 0; a < 2; a++)
        for (size_t i = 0; i < arr[a].count; i++)
            if (!isfinite(arr[a].data[i])) {
                rc = em_err_set(err, EM_ECORRUPT, "%s: %s.bin: value %zu is not finite", dir,
                                arr[a].name, i);
                goto fail;
            }
    m->coef = arr[0].data;
    m->intercept = arr[1].data;
    json_decref(meta);
    *out = m;
    return 0;
fail:
    em_free(arr[0].data);
    em_free(arr[1].data);
    em_linear_model_free(m);
    json_decref(meta);
    return rc;
}

int em_linear_model_load(const char *dir, em_linear_model **out, em_err *err)
{
    json_t *meta = NULL;
    em_ml_array arr[] = {{.name = "coef", .max_count = (size_t)1 << 30},
                         {.name = "intercept", .max_count = EM__LIN_MAX_CLASSES}};
    *out = NULL;
    int rc = em_ml_model_dir_read(dir, LIN_MODEL_CLASS, LIN_MODEL_VERSION, &meta, arr, 2, err);
    if (rc < 0)
        return rc;
    return from_parts(dir, meta, arr, out, err);
}

int em_linear_model_decode(const char *name, const uint8_t *meta, size_t meta_n,
                           const uint8_t *coef, size_t coef_n, const uint8_t *icpt,
                           size_t icpt_n, em_linear_model **out, em_err *err)
{
    json_t *mj = NULL;
    em_ml_array arr[] = {{.name = "coef", .max_count = (size_t)1 << 30},
                         {.name = "intercept", .max_count = EM__LIN_MAX_CLASSES}};
    *out = NULL;
    int rc = em_ml_model_meta_parse(name, meta, meta_n, LIN_MODEL_CLASS, LIN_MODEL_VERSION,
                                    &mj, err);
    if (rc == 0)
        rc = em_ml_model_array_decode(name, mj, coef, coef_n, &arr[0], err);
    if (rc == 0)
        rc = em_ml_model_array_decode(name, mj, icpt, icpt_n, &arr[1], err);
    if (rc < 0) {
        em_free(arr[0].data);
        em_free(arr[1].data);
        json_decref(mj);
        return rc;
    }
    return from_parts(name, mj, arr, out, err);
}
