/* mllib/linear/grad.c - the executors' half of fitting a linear model: losses and
 * gradients of a partition folded into an accumulator (ml.linear.grad), summed in place
 * by tree_aggregate_acc (ml.linear.sum), and the label statistics pass.
 *
 * DENSE BATCHES are labeled points as FIXED records (label, x_1..x_d), i.e. a row-major
 * matrix whose features start one double in, with leading dimension d + 1. A block of up
 * to LIN_BLK rows is handled by BLAS straight from the batch, with no copy:
 *     z = X w + b          (DGEMV; K classes: Z = X W^T, DGEMM)
 *     r_i = d l / d z_i    (a loop over the block: the only per-row work)
 *     g += X^T r           (DGEMV; K classes: G += R^T X, DGEMM)
 * The block (LIN_BLK x d doubles) is read twice while it is still in cache.
 * SPARSE rows go through sparse.c's kernels (z = w . x gathered, then g[idx] += r v
 * scattered; AVX-512 when the CPU has it), which also check the indices.
 * SGD SAMPLING: a row takes part with probability `fraction`, decided by a hash of (seed,
 * iteration, partition, the row's position in its partition), so the draw does not depend
 * on the master, the batch boundaries or which executor runs the task. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "mllib/linalg/linalg.h"
#include "mllib/linear/linear_int.h"

enum { LIN_BLK = 1024 };

void em__lin_ctx_encode(const lin_ctx *c, uint8_t out[EM__LIN_CTX_SIZE])
{
    memset(out, 0, EM__LIN_CTX_SIZE);
    em_store_le32(out, EM__LIN_MAGIC);
    out[4] = (uint8_t)c->loss;
    out[5] = c->sparse;
    out[6] = c->intercept;
    out[7] = c->sampling;
    em_store_le32(out + 8, c->dim);
    em_store_le32(out + 12, c->k);
    em_store_le32(out + 16, c->bcast);
    em_store_le32(out + 20, c->iter);
    em_store_le64(out + 24, c->seed);
    memcpy(out + 32, &c->fraction, 8);
}

int em__lin_ctx_decode(em_slice b, lin_ctx *c, em_err *err)
{
    memset(c, 0, sizeof *c);
    if (b.n != EM__LIN_CTX_SIZE || em_load_le32(b.p) != EM__LIN_MAGIC || b.p[4] < 1 ||
        b.p[4] > LIN_SQUARED || b.p[5] > 1 || b.p[6] > 1 || b.p[7] > 1)
        return em_err_set(err, EM_ECORRUPT, "ml.linear: bad task context");
    c->loss = (lin_loss)b.p[4];
    c->sparse = b.p[5];
    c->intercept = b.p[6];
    c->sampling = b.p[7];
    c->dim = em_load_le32(b.p + 8);
    c->k = em_load_le32(b.p + 12);
    c->bcast = em_load_le32(b.p + 16);
    c->iter = em_load_le32(b.p + 20);
    c->seed = em_load_le64(b.p + 24);
    memcpy(&c->fraction, b.p + 32, 8);
    if (c->dim == 0 || c->dim > (1u << 30) || c->k == 0 || c->k > EM__LIN_MAX_CLASSES ||
        (c->loss != LIN_MULTINOMIAL && c->k != 1) || !(c->fraction > 0 && c->fraction <= 1))
        return em_err_set(err, EM_ECORRUPT, "ml.linear: bad sizes in task context");
    return 0;
}

/* ---------------------------------------------------------------- per-row losses */

/* Loss of one margin and its derivative *r (binary losses and least squares). false when
 * the label is not one the loss takes. */
static inline bool loss1(lin_loss loss, double z, double y, double *l, double *r)
{
    if (loss == LIN_SQUARED) {
        *r = z - y;
        *l = 0.5 * *r * *r;
        return true;
    }
    if (y != 0 && y != 1)
        return false;
    double t = 2 * y - 1, h = 1 - t * z;
    switch (loss) {
    case LIN_LOGISTIC: {
        /* One exp for both: softplus(z) = max(z, 0) + log1p(e^-|z|), and the sigmoid
         * from the same e^-|z| (never overflows). */
        double e = exp(-fabs(z));
        *l = (z > 0 ? z : 0) + log1p(e) - y * z;
        *r = (z >= 0 ? 1 : e) / (1 + e) - y;
        return true;
    }
    case LIN_HINGE:
        *l = h > 0 ? h : 0;
        *r = h > 0 ? -t : 0;
        return true;
    default:   /* LIN_SQHINGE */
        *l = h > 0 ? h * h : 0;
        *r = h > 0 ? -2 * t * h : 0;
        return true;
    }
}

/* Softmax cross-entropy of K margins (z overwritten by r = p - onehot(y)). */
static inline bool loss_k(uint32_t k, double *z, double y, double *l)
{
    if (!(y >= 0 && y < k && y == floor(y)))
        return false;
    uint32_t c = (uint32_t)y;
    double mx = z[0], s = 0;
    for (uint32_t j = 1; j < k; j++)
        mx = z[j] > mx ? z[j] : mx;
    for (uint32_t j = 0; j < k; j++)
        s += exp(z[j] - mx);
    *l = mx + log(s) - z[c];
    for (uint32_t j = 0; j < k; j++)
        z[j] = exp(z[j] - mx) / s;
    z[c] -= 1;
    return true;
}

static int bad_label(const lin_ctx *c, double y, em_err *err)
{
    if (c->loss == LIN_MULTINOMIAL)
        return em_err_set(err, EM_EINVAL, "ml.linear: label %g is not a class in 0..%u", y,
                          c->k - 1);
    if (c->loss == LIN_SQUARED)
        return em_err_set(err, EM_EINVAL, "ml.linear: label %g is not finite", y);
    return em_err_set(err, EM_EINVAL, "ml.linear: label %g is not 0 or 1 (binary "
                      "classification)", y);
}

/* ---------------------------------------------------------------- the task */

typedef struct lin_task {
    lin_ctx c;
    const double *w, *b;    /* k x dim, k */
    double *acc;            /* head, then g (k x dim), then gb (k) */
    double *z, *r;          /* scratch: LIN_BLK x k each */
    uint64_t salt;          /* sampling: hash of (seed, iteration, partition) */
} lin_task;

static inline bool sampled(const lin_task *t, double pos)
{
    if (!t->c.sampling)
        return true;
    uint64_t h = em_mix64(t->salt ^ (uint64_t)pos);
    return (double)(h >> 11) * 0x1.0p-53 < t->c.fraction;
}

/* One block of n dense rows (x: first feature of the first row; ld apart). */
static int block_dense(lin_task *t, const double *x, size_t ld, size_t n, em_err *err)
{
    uint32_t d = t->c.dim, k = t->c.k;
    double *head = t->acc, *g = t->acc + LIN_ACC_HEAD, *gb = g + (size_t)k * d;
    if (k == 1)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0, x, (int)ld, t->w, 1, 0.0,
                    t->z, 1);
    else
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)k, (int)d, 1.0, x,
                    (int)ld, t->w, (int)d, 0.0, t->z, (int)k);
    double lsum = 0, cnt = 0;
    for (size_t i = 0; i < n; i++) {
        double y = x[i * ld - 1], l = 0, *zi = t->z + i * k, *ri = t->r + i * k;
        bool in = sampled(t, head[2]++);
        for (uint32_t j = 0; j < k; j++)
            zi[j] += t->b[j];
        bool ok = k == 1 ? loss1(t->c.loss, zi[0], y, &l, ri) : loss_k(k, zi, y, &l);
        if (!ok)
            return bad_label(&t->c, y, err);
        if (k > 1)
            memcpy(ri, zi, sizeof(double) * k);
        if (!in) {
            memset(ri, 0, sizeof(double) * k);
            continue;
        }
        lsum += l;
        cnt += 1;
        for (uint32_t j = 0; j < k; j++)
            gb[j] += ri[j];
    }
    head[0] += lsum;
    head[1] += cnt;
    if (k == 1)
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)d, 1.0, x, (int)ld, t->r, 1, 1.0,
                    g, 1);
    else
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)d, (int)n, 1.0, t->r,
                    (int)k, x, (int)ld, 1.0, g, (int)d);
    return 0;
}

static int batch_dense(lin_task *t, const em_rec_batch *in, em_err *err)
{
    size_t ld = (size_t)t->c.dim + 1;
    if (in->kind != EM_REC_FIXED || in->width != 8 * ld)
        return em_err_set(err, EM_EINVAL, "ml.linear: rows of %u bytes, expected %zu "
                          "(labeled dense points of %u features)", in->width, 8 * ld,
                          t->c.dim);
    const double *x = (const double *)in->data + 1;
    for (size_t i0 = 0; i0 < in->nrecs; i0 += LIN_BLK) {
        size_t n = in->nrecs - i0 < LIN_BLK ? (size_t)in->nrecs - i0 : LIN_BLK;
        int rc = block_dense(t, x + i0 * ld, ld, n, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A sparse row the kernels refused (a bad record or index): the view names what is wrong. */
static int bad_row(const lin_task *t, em_slice rec, em_err *err)
{
    em_ml_data lay = {.sparse = true, .labeled = true, .dim = t->c.dim};
    em_ml_row row;
    int rc = em_ml_row_view(&lay, rec, &row, err);
    return rc < 0 ? rc : em_err_set(err, EM_ECORRUPT, "ml.linear: bad sparse row");
}

/* Sparse rows one by one (sparse.c's kernels): margins, loss, gradient. */
static int batch_sparse(lin_task *t, const em_rec_batch *in, em_err *err)
{
    uint32_t d = t->c.dim, k = t->c.k;
    double *head = t->acc, *g = t->acc + LIN_ACC_HEAD, *gb = g + (size_t)k * d;
    double lsum = 0, cnt = 0;
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &r)) {
        double y, l;
        uint32_t nnz;
        const uint8_t *idx, *val;
        if (!em__lin_sparse_rec(r.val, &y, &nnz, &idx, &val))
            return bad_row(t, r.val, err);
        if (!sampled(t, head[2]++))
            continue;
        for (uint32_t j = 0; j < k; j++) {
            double z;
            if (!em__lin_sparse_dot(nnz, idx, val, t->w + (size_t)j * d, d, &z))
                return bad_row(t, r.val, err);
            t->z[j] = z + t->b[j];
        }
        bool ok = k == 1 ? loss1(t->c.loss, t->z[0], y, &l, t->r) : loss_k(k, t->z, y, &l);
        if (!ok)
            return bad_label(&t->c, y, err);
        const double *rr = k == 1 ? t->r : t->z;
        lsum += l;
        cnt += 1;
        for (uint32_t j = 0; j < k; j++) {
            gb[j] += rr[j];
            if (rr[j] != 0)
                em__lin_sparse_axpy(nnz, idx, val, rr[j], g + (size_t)j * d);
        }
    }
    head[0] += lsum;
    head[1] += cnt;
    return 0;
}

/* The coefficients of the context's broadcast (an unaligned value copied into *own). */
static int get_weights(const em_fn_ctx *fc, lin_task *t, double **own, em_err *err)
{
    em_slice v;
    *own = NULL;
    int rc = em_task_broadcast(fc->task, t->c.bcast, &v, err);
    if (rc < 0)
        return rc;
    size_t want = 8 * (size_t)t->c.k * ((size_t)t->c.dim + 1);
    if (v.n != want)
        return em_err_set(err, EM_ECORRUPT, "ml.linear: coefficients of %zu bytes, expected "
                          "%zu", v.n, want);
    const double *w = (const double *)v.p;
    if (((uintptr_t)v.p & 7) != 0) {
        if (!(*own = em_malloc(v.n)))
            return em_err_set(err, EM_ENOMEM, "ml.linear: out of memory");
        memcpy(*own, v.p, v.n);
        w = *own;
    }
    t->w = w;
    t->b = w + (size_t)t->c.k * t->c.dim;
    return 0;
}

int em__lin_fn_grad(const em_fn_ctx *fc, void *acc, size_t size, const em_rec_batch *in,
                    em_err *err)
{
    lin_task t = {.acc = acc};
    double *own = NULL;
    int rc = em__lin_ctx_decode(fc->blob, &t.c, err);
    if (rc < 0)
        return rc;
    size_t want = 8 * (LIN_ACC_HEAD + (size_t)t.c.k * ((size_t)t.c.dim + 1));
    if (size != want)
        return em_err_set(err, EM_EINVAL, "ml.linear: accumulator of %zu bytes, expected %zu",
                          size, want);
    if ((rc = get_weights(fc, &t, &own, err)) < 0)
        return rc;
    if (t.c.sampling)
        t.salt = em_mix64(t.c.seed ^ em_mix64(((uint64_t)t.c.iter << 32) |
                                               em_task_partition(fc->task)));
    size_t nz = t.c.sparse ? 2 * (size_t)t.c.k : 2 * (size_t)LIN_BLK * t.c.k;
    if (!(t.z = em_malloc(sizeof(double) * nz))) {
        em_free(own);
        return em_err_set(err, EM_ENOMEM, "ml.linear: out of memory");
    }
    t.r = t.z + nz / 2;
    em_la_init();
    rc = t.c.sparse ? batch_sparse(&t, in, err) : batch_dense(&t, in, err);
    em_free(t.z);
    em_free(own);
    return rc;
}

int em__lin_fn_sum(const em_fn_ctx *fc, void *acc, const void *other, size_t size,
                   em_err *err)
{
    (void)fc;
    (void)err;
    double *a = acc;
    const double *b = other;
    for (size_t i = 0; i < size / 8; i++)
        a[i] += b[i];
    return 0;
}

/* ---------------------------------------------------------------- labels */

static void fold_label(lin_labels *s, double y)
{
    if (s->count == 0 || y < s->min)
        s->min = y;
    if (s->count == 0 || y > s->max)
        s->max = y;
    s->count += 1;
    if (y != floor(y) || !(y >= 0))
        s->non_integer += 1;
    else if (y < EM__LIN_MAX_CLASSES)
        s->hist[(size_t)y] += 1;
}

int em__lin_fn_labels(const em_fn_ctx *fc, void *acc, size_t size, const em_rec_batch *in,
                      em_err *err)
{
    lin_ctx c;
    int rc = em__lin_ctx_decode(fc->blob, &c, err);
    if (rc < 0)
        return rc;
    if (size != sizeof(lin_labels))
        return em_err_set(err, EM_EINVAL, "ml.linear.labels: accumulator of %zu bytes", size);
    if (!c.sparse) {
        size_t ld = (size_t)c.dim + 1;
        if (in->kind != EM_REC_FIXED || in->width != 8 * ld)
            return em_err_set(err, EM_EINVAL, "ml.linear: rows of %u bytes, expected %zu",
                              in->width, 8 * ld);
        const double *x = (const double *)in->data;
        for (size_t i = 0; i < in->nrecs; i++)
            fold_label(acc, x[i * ld]);
        return 0;
    }
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &r)) {
        double y;
        if (r.val.n < 8)
            return em_err_set(err, EM_ECORRUPT, "ml.linear: labeled point of %zu bytes",
                              r.val.n);
        memcpy(&y, r.val.p, 8);
        fold_label(acc, y);
    }
    return 0;
}

int em__lin_fn_labels_merge(const em_fn_ctx *fc, void *acc, const void *other, size_t size,
                            em_err *err)
{
    lin_labels *a = acc;
    const lin_labels *b = other;
    (void)fc;
    (void)err;
    (void)size;
    if (b->count == 0)
        return 0;
    if (a->count == 0 || b->min < a->min)
        a->min = b->min;
    if (a->count == 0 || b->max > a->max)
        a->max = b->max;
    a->count += b->count;
    a->non_integer += b->non_integer;
    for (size_t i = 0; i < EM__LIN_MAX_CLASSES; i++)
        a->hist[i] += b->hist[i];
    return 0;
}

/* ---------------------------------------------------------------- driver side */

int em__lin_label_stats(const em_ml_data *d, lin_labels *out, em_err *err)
{
    lin_ctx c = {.loss = LIN_LOGISTIC, .sparse = d->sparse, .dim = d->dim, .k = 1,
                 .fraction = 1};
    uint8_t blob[EM__LIN_CTX_SIZE];
    em__lin_ctx_encode(&c, blob);
    em_agg a = {.size = sizeof(lin_labels), .seq = "ml.linear.labels",
                .merge = "ml.linear.labels_merge", .ctx = em_slice_make(blob, sizeof blob)};
    em_vbuf v;
    em_vbuf_init(&v);
    int rc = em_rdd_tree_aggregate_acc(d->rows, &a, 2, &v, err);
    if (rc == 0 && v.len != sizeof *out)
        rc = em_err_set(err, EM_ECORRUPT, "ml.linear.labels: result of %zu bytes", v.len);
    if (rc == 0)
        memcpy(out, v.data, sizeof *out);
    em_vbuf_destroy(&v);
    return rc;
}

int em__lin_pass(em_context *sc, const em_ml_data *d, const lin_ctx *c0, const double *w,
                 const double *b, double *acc, em_err *err)
{
    lin_ctx c = *c0;
    size_t nw = (size_t)c.k * c.dim;
    double *wb = em_malloc(sizeof(double) * (nw + c.k));
    if (!wb)
        return em_err_set(err, EM_ENOMEM, "ml.linear: out of memory");
    memcpy(wb, w, sizeof(double) * nw);
    memcpy(wb + nw, b, sizeof(double) * c.k);
    c.bcast = em_broadcast(sc, em_slice_make(wb, sizeof(double) * (nw + c.k)), err);
    em_free(wb);
    if (c.bcast == 0)
        return err->code;
    uint8_t blob[EM__LIN_CTX_SIZE];
    em__lin_ctx_encode(&c, blob);
    size_t size = 8 * (LIN_ACC_HEAD + nw + c.k);
    em_agg a = {.size = size, .seq = "ml.linear.grad", .merge = "ml.linear.sum",
                .ctx = em_slice_make(blob, sizeof blob)};
    /* Depth 1 sends every task's accumulator to the driver: for up to 64 MiB in all
     * (e.g. 21 partitions of a 100k-feature gradient) that is cheaper than the shuffle a
     * deeper tree writes to disk on every pass; beyond it, a tree of depth 2 (Spark's). */
    uint64_t total = (uint64_t)em_rdd_num_partitions(d->rows) * size;
    uint32_t depth = total <= ((uint64_t)64 << 20) ? 1 : 2;
    em_vbuf v;
    em_vbuf_init(&v);
    int rc = em_rdd_tree_aggregate_acc(d->rows, &a, depth, &v, err);
    em_broadcast_destroy(sc, c.bcast);
    if (rc == 0 && v.len != size)
        rc = em_err_set(err, EM_ECORRUPT, "ml.linear: result of %zu bytes", v.len);
    if (rc == 0)
        memcpy(acc, v.data, size);
    em_vbuf_destroy(&v);
    return rc;
}
