/* mllib/bayes/train.c - naive Bayes training on the engine (formulas in bayes.h) and the
 * "ml.bayes.*" registration table.
 *
 * THE PASS: ml.bayes.key (map_partitions) checks every labeled point, naming its partition
 * and row, and keys it by em_enc_i64(label); aggregate_by_key_acc folds the points of a
 * label into an accumulator of dim + 1 doubles (feature sums, then the count: ml.bayes.add)
 * merged in place (ml.bayes.merge); the driver collects the K accumulators. Counts are
 * doubles: exact up to 2^53, like the sums of integer counts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/bayes/bayes_int.h"

#define NB_MAX_CLASSES (1u << 16)
#define NB_MAX_CELLS ((uint64_t)1 << 28)   /* K x d doubles on the driver: 2 GiB */

static const em_fn_entry nb_fns[] = {
    {"ml.bayes.key", EM_FN_PARTITION, EM_FN(em__nb_fn_key)},
    {"ml.bayes.add", EM_FN_ACC_ADD, EM_FN(em__nb_fn_add)},
    {"ml.bayes.merge", EM_FN_ACC_MERGE, EM_FN(em__nb_fn_merge)},
    {"ml.bayes.predict", EM_FN_PARTITION, EM_FN(em__nb_fn_predict)},
    {"ml.bayes.pair_text", EM_FN_MAP, EM_FN(em__nb_fn_pair_text)},
    {"ml.bayes.logloss", EM_FN_PARTITION, EM_FN(em__nb_fn_logloss)},
};

int em_bayes_register(void)
{
    return em_fn_register_table(nb_fns, sizeof nb_fns / sizeof nb_fns[0]);
}

void em_nb_params_init(em_nb_params *p)
{
    memset(p, 0, sizeof *p);
    p->type = EM_NB_MULTINOMIAL;
    p->smoothing = 1;
}

void em__nb_ctx_encode(const nb_ctx *c, uint8_t out[EM__NB_CTX_SIZE])
{
    memset(out, 0, EM__NB_CTX_SIZE);
    out[0] = c->layout.sparse;
    out[1] = (uint8_t)c->type;
    em_store_le32(out + 4, c->layout.dim);
    em_store_le32(out + 8, c->bcast);
}

int em__nb_ctx_decode(em_slice blob, nb_ctx *c, em_err *err)
{
    memset(c, 0, sizeof *c);
    if (blob.n != EM__NB_CTX_SIZE || blob.p[0] > 1 || blob.p[1] > EM_NB_BERNOULLI)
        return em_err_set(err, EM_EINVAL, "ml.bayes: bad context (%zu bytes)", blob.n);
    c->layout.sparse = blob.p[0];
    c->layout.labeled = true;
    c->type = (em_nb_type)blob.p[1];
    c->layout.dim = em_load_le32(blob.p + 4);
    c->bcast = em_load_le32(blob.p + 8);
    return 0;
}

static int bad_feature(const nb_ctx *c, uint32_t part, uint64_t row, uint32_t j, double v,
                       em_err *err)
{
    return em_err_set(err, EM_EINVAL, "partition %u, row %llu: feature %u is %.17g (%s naive "
                      "Bayes needs %s)", part, (unsigned long long)row, j + 1, v,
                      c->type == EM_NB_BERNOULLI ? "Bernoulli" : "multinomial",
                      c->type == EM_NB_BERNOULLI ? "features 0 or 1"
                                                 : "finite non-negative features");
}

static bool feature_ok(em_nb_type t, double v)
{
    return t == EM_NB_BERNOULLI ? (v == 0 || v == 1) : (v >= 0 && v < INFINITY);
}

int em__nb_check_row(const nb_ctx *c, const em_ml_row *r, uint32_t part, uint64_t row,
                     em_err *err)
{
    double l = r->label;
    if (!(l >= 0 && l < 2147483648.0 && l == floor(l)))
        return em_err_set(err, EM_EINVAL, "partition %u, row %llu: label %.17g (naive Bayes "
                          "labels are non-negative integers)", part, (unsigned long long)row,
                          l);
    if (r->dense) {
        for (uint32_t j = 0; j < c->layout.dim; j++) {
            double v;
            memcpy(&v, r->dense + 8 * (size_t)j, 8);
            if (!feature_ok(c->type, v))
                return bad_feature(c, part, row, j, v, err);
        }
        return 0;
    }
    for (uint32_t i = 0; i < r->sp.nnz; i++) {
        double v = em_ml_sparse_val(&r->sp, i);
        if (!feature_ok(c->type, v))
            return bad_feature(c, part, row, em_ml_sparse_idx(&r->sp, i), v, err);
    }
    return 0;
}

/* Rows are numbered from 1 within their partition (the loaders keep file order, so for
 * one file partition p, row r is near line r of split p). */
int em__nb_fn_key(const em_fn_ctx *fc, uint32_t index, em_iter *in, em_emitter *out,
                  em_err *err)
{
    nb_ctx c;
    int rc = em__nb_ctx_decode(fc->blob, &c, err);
    em_rec r;
    uint64_t row = 0;
    while (rc == 0 && (rc = em_iter_next(in, &r, err)) == 1) {
        em_ml_row v;
        uint8_t k[8];
        row++;
        if ((rc = em_ml_row_view(&c.layout, r.val, &v, err)) < 0 ||
            (rc = em__nb_check_row(&c, &v, index, row, err)) < 0)
            return rc;
        em_enc_i64(k, (int64_t)v.label);
        rc = em_emit_kv(out, em_slice_make(k, 8), r.val, err);
    }
    return rc < 0 ? rc : 0;
}

int em__nb_fn_add(const em_fn_ctx *fc, void *acc, size_t size, const em_rec *in, em_err *err)
{
    nb_ctx c;
    em_ml_row v;
    int rc = em__nb_ctx_decode(fc->blob, &c, err);
    if (rc < 0)
        return rc;
    if (size != 8 * ((size_t)c.layout.dim + 1))
        return em_err_set(err, EM_EINVAL, "ml.bayes.add: accumulator of %zu bytes", size);
    if ((rc = em_ml_row_view(&c.layout, in->val, &v, err)) < 0)
        return rc;
    double *s = acc;
    if (v.dense) {
        for (uint32_t j = 0; j < c.layout.dim; j++) {
            double x;
            memcpy(&x, v.dense + 8 * (size_t)j, 8);
            s[j] += x;
        }
    } else {
        for (uint32_t i = 0; i < v.sp.nnz; i++)
            s[em_ml_sparse_idx(&v.sp, i)] += em_ml_sparse_val(&v.sp, i);
    }
    s[c.layout.dim] += 1;
    return 0;
}

int em__nb_fn_merge(const em_fn_ctx *fc, void *acc, const void *other, size_t size,
                    em_err *err)
{
    (void)fc, (void)err;
    double *a = acc;
    const double *b = other;
    for (size_t i = 0; i < size / 8; i++)
        a[i] += b[i];
    return 0;
}

static int check_params(const em_ml_data *d, const em_nb_params *p, em_err *err)
{
    if (!d || !d->rows)
        return em_err_set(err, EM_EINVAL, "naive Bayes: no data");
    if (!d->labeled)
        return em_err_set(err, EM_EINVAL, "naive Bayes: the data has no labels");
    if (d->dim == 0)
        return em_err_set(err, EM_EINVAL, "naive Bayes: rows have no feature");
    if (!(p->smoothing > 0) || !isfinite(p->smoothing))
        return em_err_set(err, EM_EINVAL, "naive Bayes: smoothing %g (must be > 0: a feature "
                          "never seen in a class would have log 0)", p->smoothing);
    if (p->type != EM_NB_MULTINOMIAL && p->type != EM_NB_BERNOULLI)
        return em_err_set(err, EM_EINVAL, "naive Bayes: unknown model type %d", (int)p->type);
    return 0;
}

typedef struct nb_class {
    double label;
    const double *acc;   /* dim sums, then the count */
} nb_class;

static int by_label(const void *a, const void *b)
{
    double x = ((const nb_class *)a)->label, y = ((const nb_class *)b)->label;
    return x < y ? -1 : x > y;
}

/* The model from the K collected accumulators (Spark's NaiveBayes.trainWithLabelCheck). */
static int build(const em_nb_params *p, uint32_t dim, nb_class *cls, uint32_t k,
                 em_nb_model **out, em_err *err)
{
    double *labels = em_malloc(8 * (size_t)k), *pi = em_malloc(8 * (size_t)k);
    double *theta = em_malloc(8 * (size_t)k * dim);
    int rc = 0;
    if (!labels || !pi || !theta) {
        rc = em_err_set(err, EM_ENOMEM, "naive Bayes: a model of %u x %u", k, dim);
        goto out;
    }
    qsort(cls, k, sizeof *cls, by_label);
    double n = 0, lam = p->smoothing;
    for (uint32_t c = 0; c < k; c++)
        n += cls[c].acc[dim];
    double pi_den = log(n + k * lam);
    for (uint32_t c = 0; c < k; c++) {
        const double *s = cls[c].acc;
        double *t = theta + (size_t)c * dim, den;
        labels[c] = cls[c].label;
        pi[c] = log(s[dim] + lam) - pi_den;
        if (p->type == EM_NB_MULTINOMIAL) {
            double tot = 0;
            for (uint32_t j = 0; j < dim; j++)
                tot += s[j];
            den = log(tot + dim * lam);
        } else {
            den = log(s[dim] + 2 * lam);
        }
        for (uint32_t j = 0; j < dim; j++)
            t[j] = log(s[j] + lam) - den;
    }
    rc = em_nb_model_new(p->type, p->smoothing, k, dim, labels, pi, theta, out, err);
out:
    em_free(labels);
    em_free(pi);
    em_free(theta);
    return rc;
}

int em_nb_train(const em_ml_data *d, const em_nb_params *p, em_nb_model **out,
                em_err *err)
{
    int rc;
    *out = NULL;
    if ((rc = em_bayes_register()) < 0)
        return em_err_set(err, rc, "naive Bayes: a task function name is taken");
    if ((rc = check_params(d, p, err)) < 0)
        return rc;
    nb_ctx c = {.layout = {.sparse = d->sparse, .labeled = true, .dim = d->dim},
                .type = p->type};
    uint8_t blob[EM__NB_CTX_SIZE];
    em__nb_ctx_encode(&c, blob);
    em_rdd *keyed = em_rdd_map_partitions(d->rows, "ml.bayes.key",
                                          em_slice_make(blob, sizeof blob), false);
    em_agg a = {.size = 8 * ((size_t)d->dim + 1), .seq = "ml.bayes.add",
                .merge = "ml.bayes.merge", .ctx = em_slice_make(blob, sizeof blob)};
    em_rdd *sums = em_rdd_aggregate_by_key_acc(keyed, &a, 0);
    em_records recs = {0};
    nb_class *cls = NULL;
    if ((rc = em_rdd_collect(sums, &recs, err)) < 0)
        goto out;
    if (recs.n == 0) {
        rc = em_err_set(err, EM_EINVAL, "naive Bayes: the training set is empty");
        goto out;
    }
    if (recs.n > NB_MAX_CLASSES || (uint64_t)recs.n * d->dim > NB_MAX_CELLS) {
        rc = em_err_set(err, EM_EINVAL, "naive Bayes: %zu classes x %u features is too "
                        "large", recs.n, d->dim);
        goto out;
    }
    cls = em_xcalloc(recs.n, sizeof *cls);
    for (size_t i = 0; i < recs.n; i++) {
        const em_rec *r = &recs.recs[i];
        if (r->key.n != 8 || r->val.n != a.size) {
            rc = em_err_set(err, EM_ECORRUPT, "naive Bayes: a class sum of %zu bytes", r->val.n);
            goto out;
        }
        cls[i].label = (double)em_dec_i64(r->key.p);
        cls[i].acc = (const double *)r->val.p;   /* KV values of 8*(d+1) bytes: copy below */
    }
    /* The records' values are not necessarily 8-byte aligned: copy them into one array. */
    double *al = em_malloc(a.size * recs.n);
    if (!al) {
        rc = em_err_set(err, EM_ENOMEM, "naive Bayes: %zu class sums", recs.n);
        goto out;
    }
    for (size_t i = 0; i < recs.n; i++) {
        memcpy(al + i * (d->dim + 1), recs.recs[i].val.p, a.size);
        cls[i].acc = al + i * (d->dim + 1);
    }
    rc = build(p, d->dim, cls, (uint32_t)recs.n, out, err);
    em_free(al);
out:
    em_free(cls);
    em_records_destroy(&recs);
    em_rdd_release(sums);
    em_rdd_release(keyed);
    return rc;
}
