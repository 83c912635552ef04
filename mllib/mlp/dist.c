/* mllib/mlp/dist.c - networks on the engine: a dense float copy of a labeled data set on
 * the driver, and data-parallel training with weights averaged each epoch.
 *
 * DATA-PARALLEL EPOCH (em_mlp_train_dist): the weights go out as a broadcast; in each task
 * the accumulator (see ACC below) starts as those weights (init function), every record
 * batch of the partition is converted to floats and trained on for one pass of mini-batch
 * steps (seq function), and two accumulators merge as their row-weighted mean (merge
 * function; associative and commutative: a mean weighted by counts). tree_aggregate_acc
 * brings the mean to the driver, which validates it and starts the next epoch from it.
 * ACC layout (16-byte aligned): double rows, double steps, then np floats of weights, np of
 * the first and np of the second optimizer moments.
 * The task context blob is the dist_ctx struct below, copied bytewise: the driver and its
 * executors run the same build of ember (the job library's sha256 is checked). */
#include <math.h>
#include <string.h>

#include "mllib/mlp/mlp_int.h"

#define DIST_MAGIC 0x4d4c5044u   /* "DPLM" */

typedef struct dist_ctx {
    uint32_t magic, bcast, epoch, partitions;
    uint32_t nlayers, sizes[EM_MLP_MAX_LAYERS + 1];
    uint32_t act, regression, sparse, labeled, dim;
    double lr;
    em_mlp_params p;       /* progress/progress_ud and stop/stop_ud zeroed */
} dist_ctx;

static int ctx_get(const em_fn_ctx *c, dist_ctx *out, em_err *err)
{
    if (c->blob.n != sizeof *out)
        return em_err_set(err, EM_ECORRUPT, "ml.mlp: context of %zu bytes", c->blob.n);
    memcpy(out, c->blob.p, sizeof *out);
    if (out->magic != DIST_MAGIC || out->nlayers == 0 || out->nlayers > EM_MLP_MAX_LAYERS)
        return em_err_set(err, EM_ECORRUPT, "ml.mlp: bad context");
    return 0;
}

static void model_view(const dist_ctx *d, em_mlp_model *m, float *params)
{
    memset(m, 0, sizeof *m);
    m->nlayers = d->nlayers;
    memcpy(m->sizes, d->sizes, sizeof m->sizes);
    m->act = (em_mlp_act)d->act;
    m->regression = d->regression != 0;
    m->params = params;
}

static em_ml_data layout_of(const dist_ctx *d)
{
    return (em_ml_data){.sparse = d->sparse, .labeled = d->labeled, .dim = d->dim};
}

/* Appends a record's features (densified, as floats) to x and its label to y. */
static int row_floats(const em_ml_data *lay, em_slice rec, float *x, float *y, em_err *err)
{
    em_ml_row r;
    int rc = em_ml_row_view(lay, rec, &r, err);
    if (rc < 0)
        return rc;
    *y = (float)r.label;
    if (r.dense) {
        for (uint32_t j = 0; j < lay->dim; j++) {
            double v;
            memcpy(&v, r.dense + 8 * (size_t)j, 8);
            x[j] = (float)v;
        }
    } else {
        memset(x, 0, 4 * (size_t)lay->dim);
        for (uint32_t i = 0; i < r.sp.nnz; i++)
            x[em_ml_sparse_idx(&r.sp, i)] = (float)em_ml_sparse_val(&r.sp, i);
    }
    return 0;
}

/* A batch of records as float rows (*x n x dim, *y n). */
static int batch_floats(const em_ml_data *lay, const em_rec_batch *in, float **x, float **y,
                        size_t *n, em_err *err)
{
    size_t cap = in->nrecs ? in->nrecs : 1;
    *x = em_xmalloc(4 * cap * lay->dim);
    *y = em_xmalloc(4 * cap);
    *n = 0;
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    int rc = 0;
    while (rc == 0 && *n < cap && em_batch_iter_next(&it, &r)) {
        rc = row_floats(lay, r.val, *x + *n * lay->dim, *y + *n, err);
        (*n)++;
    }
    return rc;
}

static size_t acc_np(const dist_ctx *d)
{
    em_mlp_model m;
    model_view(d, &m, NULL);
    return em_mlp_nparams(&m);
}

static int fn_init(const em_fn_ctx *c, void *acc, size_t size, em_err *err)
{
    dist_ctx d;
    int rc = ctx_get(c, &d, err);
    if (rc < 0)
        return rc;
    size_t np = acc_np(&d);
    if (size != 16 + 12 * np)
        return em_err_set(err, EM_ECORRUPT, "ml.mlp: accumulator of %zu bytes", size);
    em_slice w;
    if ((rc = em_task_broadcast(c->task, d.bcast, &w, err)) < 0)
        return rc;
    if (w.n != 4 * np)
        return em_err_set(err, EM_ECORRUPT, "ml.mlp: weights broadcast of %zu bytes", w.n);
    memcpy((uint8_t *)acc + 16, w.p, 4 * np);
    return 0;
}

static int fn_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                  em_err *err)
{
    (void)size;
    dist_ctx d;
    int rc = ctx_get(c, &d, err);
    if (rc < 0)
        return rc;
    em_ml_data lay = layout_of(&d);
    float *x = NULL, *y = NULL;
    size_t n = 0, np = acc_np(&d);
    if ((rc = batch_floats(&lay, in, &x, &y, &n, err)) == 0 && n > 0) {
        double *hdr = acc;
        float *w = (float *)((uint8_t *)acc + 16);
        em_mlp_model m;
        model_view(&d, &m, w);
        for (size_t i = 0; !m.regression && i < n; i++)
            if (!(y[i] >= 0) || y[i] >= (float)d.sizes[d.nlayers] || y[i] != floorf(y[i])) {
                rc = em_err_set(err, EM_EINVAL, "ml.mlp: label %g is not a class 0..%u",
                                (double)y[i], d.sizes[d.nlayers] - 1);
                break;
            }
        if (rc == 0) {
            size_t bs = d.p.batch < n ? d.p.batch : n;
            mlp_ws ws;
            mlp_opt o = {.m1 = w + np, .m2 = w + 2 * np, .t = (uint64_t)hdr[1]};
            em__mlp_ws_init(&ws, &m, bs, d.p.dropout > 0);
            uint32_t *perm = em_xmalloc(4 * n);
            float *xb = em_xmalloc(4 * bs * d.dim), *yb = em_xmalloc(4 * bs);
            em_rng rng;
            em_rng_seed(&rng, d.p.seed ^ ((uint64_t)d.epoch << 32) ^
                                  em_mix64(em_task_partition(c->task) + hdr[0]));
            em__mlp_epoch(&m, &ws, &o, &d.p, d.lr, x, y, n, NULL, &rng, perm, xb, yb);
            hdr[0] += (double)n;
            hdr[1] = (double)o.t;
            em_free(perm);
            em_free(xb);
            em_free(yb);
            em__mlp_ws_destroy(&ws);
        }
    }
    em_free(x);
    em_free(y);
    return rc;
}

static int fn_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err)
{
    (void)c;
    (void)err;
    double *a = acc;
    const double *b = other;
    if (b[0] <= 0)
        return 0;
    if (a[0] <= 0) {
        memcpy(acc, other, size);
        return 0;
    }
    size_t nf = (size - 16) / 4;
    float *wa = (float *)((uint8_t *)acc + 16);
    const float *wb = (const float *)((const uint8_t *)other + 16);
    float fa = (float)(a[0] / (a[0] + b[0])), fb = 1 - fa;
    for (size_t i = 0; i < nf; i++)
        wa[i] = fa * wa[i] + fb * wb[i];
    a[0] += b[0];
    a[1] = a[1] > b[1] ? a[1] : b[1];
    return 0;
}

/* The largest label (checking labels are integers >= 0): acc = one double, -1 at first. */
static int fn_label_init(const em_fn_ctx *c, void *acc, size_t size, em_err *err)
{
    (void)c;
    (void)size;
    (void)err;
    *(double *)acc = -1;
    return 0;
}

static int fn_label_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                        em_err *err)
{
    (void)size;
    if (c->blob.n != 12)
        return em_err_set(err, EM_ECORRUPT, "ml.mlp.labels: bad context");
    em_ml_data lay = {.sparse = c->blob.p[0], .labeled = c->blob.p[1],
                      .dim = em_load_le32(c->blob.p + 4)};
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    double *mx = acc;
    while (em_batch_iter_next(&it, &r)) {
        em_ml_row row;
        int rc = em_ml_row_view(&lay, r.val, &row, err);
        if (rc < 0)
            return rc;
        if (!(row.label >= 0) || row.label != floor(row.label) || row.label >= EM_MLP_MAX_WIDTH)
            return em_err_set(err, EM_EINVAL, "ml.mlp: label %g; classification wants 0..K-1",
                              row.label);
        *mx = row.label > *mx ? row.label : *mx;
    }
    return 0;
}

static int fn_label_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                          em_err *err)
{
    (void)c;
    (void)size;
    (void)err;
    double *a = acc;
    const double *b = other;
    *a = *b > *a ? *b : *a;
    return 0;
}

static const em_fn_entry mlp_fns[] = {
    {"ml.mlp.init", EM_FN_ACC_INIT, EM_FN(fn_init)},
    {"ml.mlp.seq", EM_FN_ACC_SEQ, EM_FN(fn_seq)},
    {"ml.mlp.merge", EM_FN_ACC_MERGE, EM_FN(fn_merge)},
    {"ml.mlp.labels_init", EM_FN_ACC_INIT, EM_FN(fn_label_init)},
    {"ml.mlp.labels_seq", EM_FN_ACC_SEQ, EM_FN(fn_label_seq)},
    {"ml.mlp.labels_merge", EM_FN_ACC_MERGE, EM_FN(fn_label_merge)},
};

int em_mlp_register(void)
{
    return em_fn_register_table(mlp_fns, sizeof mlp_fns / sizeof mlp_fns[0]);
}

int em_mlp_collect(const em_ml_data *d, float **X, float **y, size_t *n, em_err *err)
{
    *X = NULL;
    *y = NULL;
    *n = 0;
    if (!d->labeled)
        return em_err_set(err, EM_EINVAL, "mlp: the data set has no labels");
    em_records rs = {0};
    int rc = em_rdd_collect(d->rows, &rs, err);
    if (rc < 0)
        return rc;
    float *x = em_xmalloc(4 * (rs.n ? rs.n : 1) * d->dim), *yy = em_xmalloc(4 * (rs.n ? rs.n : 1));
    for (size_t i = 0; i < rs.n && rc == 0; i++)
        rc = row_floats(d, rs.recs[i].val, x + i * d->dim, yy + i, err);
    if (rc < 0) {
        em_free(x);
        em_free(yy);
    } else {
        *X = x;
        *y = yy;
        *n = rs.n;
    }
    em_records_destroy(&rs);
    return rc;
}

static int max_label(const em_ml_data *d, uint32_t *k, em_err *err)
{
    uint8_t blob[12] = {d->sparse, d->labeled};
    em_store_le32(blob + 4, d->dim);
    em_agg a = {.size = 8, .init = "ml.mlp.labels_init", .seq = "ml.mlp.labels_seq",
                .merge = "ml.mlp.labels_merge", .ctx = em_slice_make(blob, sizeof blob)};
    em_vbuf out;
    em_vbuf_init(&out);
    int rc = em_rdd_aggregate_acc(d->rows, &a, &out, err);
    if (rc == 0) {
        double mx;
        memcpy(&mx, out.data, 8);
        if (mx < 0)
            rc = em_err_set(err, EM_EINVAL, "mlp: no training rows");
        *k = (uint32_t)mx + 1;
    }
    em_vbuf_destroy(&out);
    return rc;
}

int em_mlp_train_dist(em_context *sc, const em_ml_data *d, uint32_t nclasses,
                      const float *xv, const float *yv, size_t nv, const em_mlp_params *pin,
                      em_mlp_model **out, em_err *err)
{
    *out = NULL;
    int rc;
    if ((rc = em_mlp_register()) < 0)
        return em_err_set(err, rc, "mlp: a task function name is taken");
    if (!d->labeled)
        return em_err_set(err, EM_EINVAL, "mlp: the data set has no labels");
    em_mlp_params p = *pin;
    em_mlp_params_defaults(&p);
    p.progress = NULL;
    p.progress_ud = NULL;
    p.stop = NULL;
    p.stop_ud = NULL;
    p.valid_rows = NULL;
    p.valid_rows_ud = NULL;
    uint32_t k = 1;
    if (!p.regression) {
        if (!nclasses && (rc = max_label(d, &nclasses, err)) < 0)
            return rc;
        k = nclasses < 2 ? 2 : nclasses;
    }
    dist_ctx dc = {.magic = DIST_MAGIC, .act = p.act, .regression = p.regression,
                   .sparse = d->sparse, .labeled = d->labeled, .dim = d->dim, .p = p};
    if ((rc = em__mlp_shape(&p, d->dim, k, dc.sizes, &dc.nlayers, err)) < 0)
        return rc;
    em_mlp_model *m = em_mlp_model_new(dc.sizes, dc.nlayers, p.act, p.regression, p.seed);
    size_t np = em_mlp_nparams(m);
    float *best = nv && p.patience ? em_xmalloc(4 * np) : NULL;
    double t0 = em_now_s(), bestv = NAN;
    uint32_t since = 0;
    em_vbuf acc;
    em_vbuf_init(&acc);
    for (uint32_t e = 0; e < p.epochs && rc == 0; e++) {
        dc.epoch = e;
        dc.lr = em__mlp_lr(&p, e);
        dc.bcast = em_broadcast(sc, em_slice_make(m->params, 4 * np), err);
        if (dc.bcast == 0) {
            rc = err->code;
            break;
        }
        em_agg a = {.size = 16 + 12 * np, .init = "ml.mlp.init", .seq = "ml.mlp.seq",
                    .merge = "ml.mlp.merge", .ctx = em_slice_make(&dc, sizeof dc)};
        em_vbuf_destroy(&acc);
        em_vbuf_init(&acc);
        rc = em_rdd_tree_aggregate_acc(d->rows, &a, 2, &acc, err);
        em_broadcast_destroy(sc, dc.bcast);
        if (rc == 0 && acc.len != a.size)
            rc = em_err_set(err, EM_ECORRUPT, "ml.mlp: result of %zu bytes", acc.len);
        if (rc < 0) {
            em_err_prefix(err, "mlp epoch %u", e + 1);
            break;
        }
        double rows;
        memcpy(&rows, acc.data, 8);
        if (rows <= 0) {
            rc = em_err_set(err, EM_EINVAL, "mlp: no training rows");
            break;
        }
        memcpy(m->params, acc.data + 16, 4 * np);
        m->epochs_run = e + 1;
        double v = nv ? em_mlp_evaluate(m, xv, yv, nv, NULL) : NAN;
        if (nv && em_mlp_better(m, v, bestv)) {
            bestv = v;
            m->best_epoch = e + 1;
            since = 0;
            if (best)
                memcpy(best, m->params, 4 * np);
        } else if (nv) {
            since++;
        }
        if (pin->progress)
            pin->progress(pin->progress_ud, e + 1, NAN, v, em_now_s() - t0);
        if (best && since >= p.patience)
            break;
    }
    em_vbuf_destroy(&acc);
    if (best && m->best_epoch)
        memcpy(m->params, best, 4 * np);
    em_free(best);
    m->valid_metric = best || !nv ? bestv : em_mlp_evaluate(m, xv, yv, nv, NULL);
    m->train_loss = NAN;
    m->train_s = em_now_s() - t0;
    if (rc < 0) {
        em_mlp_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
