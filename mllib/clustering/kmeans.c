/* mllib/clustering/kmeans.c - the executors' half of k-means: the batch distance kernel
 * (one GEMM per batch of dense rows), and the task functions that use it: the Lloyd /
 * cost accumulator, the weighted reservoir pick, k-means|| sampling and prediction.
 *
 * WHY GEMM: for a batch X (n x d) and centres C (k x d), ||x - c||^2 = ||x||^2 - 2 x.c +
 * ||c||^2, so every x.c of the batch is one dgemm (n x k x d) and the argmin needs only
 * ||c||^2 - 2 x.c; ||x||^2 is added for the cost alone. A batch is the ~1 MiB FIXED batch
 * the engine hands out (a row-major matrix), so BLAS sees blocks of thousands of rows. The
 * expansion loses digits when ||x|| is large beside ||x - c||; the reported cost comes from
 * a separate KM_COST pass that sums exact squared differences. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "engine/base/base.h"
#include "mllib/clustering/kmeans_int.h"
#include "mllib/linalg/linalg.h"

void em__km_ctx_encode(const km_ctx *c, uint8_t out[EM__KM_CTX_SIZE])
{
    memset(out, 0, EM__KM_CTX_SIZE);
    em_store_le32(out, EM__KM_MAGIC);
    em_store_le32(out + 4, c->k);
    em_store_le32(out + 8, c->dim);
    out[12] = (uint8_t)c->distance;
    out[13] = c->layout.sparse;
    out[14] = c->layout.labeled;
    out[15] = (uint8_t)c->mode;
    em_store_le32(out + 16, c->bcast);
    em_store_le32(out + 20, c->round);
    em_store_le64(out + 24, c->seed);
    memcpy(out + 32, &c->scale, 8);
}

int em__km_ctx_decode(em_slice b, km_ctx *c, em_err *err)
{
    memset(c, 0, sizeof *c);
    if (b.n != EM__KM_CTX_SIZE || em_load_le32(b.p) != EM__KM_MAGIC || b.p[12] > 1 ||
        b.p[13] > 1 || b.p[14] > 1 || b.p[15] > KM_PICK)
        return em_err_set(err, EM_ECORRUPT, "ml.kmeans: bad task context");
    c->k = em_load_le32(b.p + 4);
    c->dim = em_load_le32(b.p + 8);
    c->distance = (em_kmeans_distance)b.p[12];
    c->layout.sparse = b.p[13];
    c->layout.labeled = b.p[14];
    c->layout.dim = c->dim;
    c->mode = (km_mode)b.p[15];
    c->bcast = em_load_le32(b.p + 16);
    c->round = em_load_le32(b.p + 20);
    c->seed = em_load_le64(b.p + 24);
    memcpy(&c->scale, b.p + 32, 8);
    if (c->dim == 0 || c->k > (1u << 20) || c->dim > (1u << 28))
        return em_err_set(err, EM_ECORRUPT, "ml.kmeans: bad sizes in task context");
    return 0;
}

/* ---------------------------------------------------------------- kernel */

int em__km_assign_dense(const km_centers *C, const double *x, size_t ldx, size_t n,
                        double *dots, uint32_t *best, double *dist, double *xn, size_t *bad)
{
    uint32_t k = C->k, d = C->dim;
    em_la_init();
    /* Blocks of clustering's small k go to the fused kernel (kmeans_kernel.c: no packing,
     * no n x k product in memory); a panel beyond 512 KiB would not stay in cache. */
    size_t panel_n = em__km_fused_panel_size(k, d);
    if (n >= 16 && em__km_fused_ok(k) && panel_n <= 65536) {
        double *panel = em_malloc(8 * panel_n);
        if (panel) {
            int rc = em__km_assign_fused(C, x, ldx, n, panel, best, dist, xn, bad);
            em_free(panel);
            return rc;
        }
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)k, (int)d, 1.0, x,
                (int)ldx, C->c, (int)d, 0.0, dots, (int)k);
    for (size_t i = 0; i < n; i++) {
        const double *xi = x + i * ldx, *di = dots + i * k;
        double s = 0;
        for (uint32_t j = 0; j < d; j++)
            s += xi[j] * xi[j];
        xn[i] = s;
        uint32_t b = 0;
        if (C->distance == EM_KMEANS_EUCLIDEAN) {
            double bv = C->cn[0] - 2 * di[0];
            for (uint32_t c = 1; c < k; c++) {
                double v = C->cn[c] - 2 * di[c];
                if (v < bv) {
                    bv = v;
                    b = c;
                }
            }
            double e = s + bv;
            dist[i] = e > 0 ? e : 0;
        } else {
            if (s <= 0) {
                *bad = i;
                return EM_EINVAL;
            }
            for (uint32_t c = 1; c < k; c++)
                if (di[c] > di[b])
                    b = c;
            double e = 1 - di[b] / sqrt(s);
            dist[i] = e > 0 ? e : 0;
        }
        best[i] = b;
    }
    return 0;
}

int em__km_assign_sparse(const km_centers *C, const em_ml_sparse *s, uint32_t *best,
                         double *dist, double *xn)
{
    double nx = 0, bv = 0;
    uint32_t b = 0;
    for (uint32_t i = 0; i < s->nnz; i++) {
        double v = em_ml_sparse_val(s, i);
        nx += v * v;
    }
    *xn = nx;
    if (C->distance == EM_KMEANS_COSINE && nx <= 0)
        return EM_EINVAL;
    for (uint32_t c = 0; c < C->k; c++) {
        const double *cc = C->c + (size_t)c * C->dim;
        double dot = 0;
        for (uint32_t i = 0; i < s->nnz; i++)
            dot += em_ml_sparse_val(s, i) * cc[em_ml_sparse_idx(s, i)];
        double v = C->distance == EM_KMEANS_EUCLIDEAN ? C->cn[c] - 2 * dot : -dot;
        if (c == 0 || v < bv) {
            bv = v;
            b = c;
        }
    }
    double e = C->distance == EM_KMEANS_EUCLIDEAN ? nx + bv : 1 + bv / sqrt(nx);
    *best = b;
    *dist = e > 0 ? e : 0;
    return 0;
}

double em__km_exact(const km_centers *C, const double *x, uint32_t c)
{
    const double *cc = C->c + (size_t)c * C->dim;
    double s = 0;
    if (C->distance == EM_KMEANS_COSINE) {
        double dot = 0, nx = 0;
        for (uint32_t j = 0; j < C->dim; j++) {
            dot += x[j] * cc[j];
            nx += x[j] * x[j];
        }
        s = nx > 0 ? 1 - dot / sqrt(nx) : 0;
        return s > 0 ? s : 0;
    }
    for (uint32_t j = 0; j < C->dim; j++) {
        double t = x[j] - cc[j];
        s += t * t;
    }
    return s;
}

/* ---------------------------------------------------------------- task functions */

/* The centres of the task context's broadcast (an unaligned value is copied into *own). */
int em__km_get_centers(const em_fn_ctx *fc, const km_ctx *c, km_centers *C, double **own,
                        em_err *err)
{
    memset(C, 0, sizeof *C);
    *own = NULL;
    C->k = c->k;
    C->dim = c->dim;
    C->distance = c->distance;
    if (c->k == 0)
        return 0;
    em_slice v;
    int rc = em_task_broadcast(fc->task, c->bcast, &v, err);
    if (rc < 0)
        return rc;
    size_t want = (size_t)8 * c->k * ((size_t)c->dim + 1);
    if (v.n != want)
        return em_err_set(err, EM_ECORRUPT, "ml.kmeans: centres of %zu bytes, expected %zu",
                          v.n, want);
    const double *p = (const double *)v.p;
    if (((uintptr_t)v.p & 7) != 0) {
        if (!(*own = em_malloc(v.n)))
            return em_err_set(err, EM_ENOMEM, "ml.kmeans: out of memory");
        memcpy(*own, v.p, v.n);
        p = *own;
    }
    C->c = p;
    C->cn = p + (size_t)c->k * c->dim;
    return 0;
}

/* Folds one assigned row into a KM_LLOYD / KM_COST accumulator. */
static void fold_row(const km_ctx *c, const km_centers *C, double *acc, const double *x,
                     const em_ml_sparse *sp, uint32_t b, double dist, double xn)
{
    size_t kd = (size_t)c->k * c->dim;
    if (c->mode == KM_COST) {
        acc[kd + c->k] += x ? em__km_exact(C, x, b) : dist;
        return;
    }
    double *s = acc + (size_t)b * c->dim;
    double f = c->distance == EM_KMEANS_COSINE ? 1 / sqrt(xn) : 1;
    if (x)
        for (uint32_t j = 0; j < c->dim; j++)
            s[j] += f * x[j];
    else
        for (uint32_t i = 0; i < sp->nnz; i++)
            s[em_ml_sparse_idx(sp, i)] += f * em_ml_sparse_val(sp, i);
    acc[kd + b] += 1;
    acc[kd + c->k] += dist;
}

static int seq_dense(const km_ctx *c, const km_centers *C, double *acc,
                     const em_rec_batch *in, em_err *err)
{
    size_t ld = (size_t)c->dim + (c->layout.labeled ? 1 : 0), n = (size_t)in->nrecs;
    if (in->kind != EM_REC_FIXED || in->width != 8 * ld)
        return em_err_set(err, EM_EINVAL, "ml.kmeans: rows of %u bytes, expected %zu",
                          in->width, 8 * ld);
    const double *x = (const double *)in->data + (c->layout.labeled ? 1 : 0);
    enum { BLK = 1024 };
    double *dots = em_malloc(sizeof(double) * BLK * (c->k + 2));
    uint32_t *best = em_malloc(sizeof(uint32_t) * BLK);
    int rc = 0;
    if (!dots || !best)
        rc = em_err_set(err, EM_ENOMEM, "ml.kmeans: out of memory");
    for (size_t i0 = 0; rc == 0 && i0 < n; i0 += BLK) {
        size_t m = n - i0 < BLK ? n - i0 : BLK, bad = 0;
        double *dist = dots + (size_t)BLK * c->k, *xn = dist + BLK;
        const double *xb = x + i0 * ld;
        if (em__km_assign_dense(C, xb, ld, m, dots, best, dist, xn, &bad) < 0) {
            rc = em_err_set(err, EM_EINVAL, "ml.kmeans: row %zu of a batch has norm 0 "
                            "(cosine distance needs non-zero rows)", i0 + bad);
            break;
        }
        if (c->mode == KM_LLOYD && em__km_fused_ok(c->k)) {
            /* The sums in SIMD (kmeans_kernel.c); counts and cost here, as fold_row. */
            size_t kd = (size_t)c->k * c->dim;
            em__km_fold_fused(acc, c->dim, xb, ld, m, best,
                              c->distance == EM_KMEANS_COSINE ? xn : NULL);
            for (size_t i = 0; i < m; i++) {
                acc[kd + best[i]] += 1;
                acc[kd + c->k] += dist[i];
            }
        } else
            for (size_t i = 0; i < m; i++)
                fold_row(c, C, acc, xb + i * ld, NULL, best[i], dist[i], xn[i]);
    }
    em_free(dots);
    em_free(best);
    return rc;
}

static int seq_sparse(const km_ctx *c, const km_centers *C, double *acc,
                      const em_rec_batch *in, em_err *err)
{
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &r)) {
        em_ml_row row;
        uint32_t b;
        double dist, xn;
        int rc = em_ml_row_view(&c->layout, r.val, &row, err);
        if (rc < 0)
            return rc;
        if (em__km_assign_sparse(C, &row.sp, &b, &dist, &xn) < 0)
            return em_err_set(err, EM_EINVAL, "ml.kmeans: a row has norm 0 (cosine distance "
                              "needs non-zero rows)");
        fold_row(c, C, acc, NULL, &row.sp, b, dist, xn);
    }
    return 0;
}

/* The weight of one row for KM_PICK: its distance to the nearest centre, or 1 without
 * centres; dense (dim doubles) receives the row's features. */
static int pick_weight(const km_ctx *c, const km_centers *C, const em_ml_row *row,
                       double *dense, double *dots, double *w)
{
    uint32_t b;
    double xn;
    size_t bad;
    if (row->dense)
        memcpy(dense, row->dense, 8 * (size_t)c->dim);
    else {
        memset(dense, 0, 8 * (size_t)c->dim);
        for (uint32_t i = 0; i < row->sp.nnz; i++)
            dense[em_ml_sparse_idx(&row->sp, i)] = em_ml_sparse_val(&row->sp, i);
    }
    *w = 1;
    if (C->k == 0)
        return 0;
    if (row->dense)
        return em__km_assign_dense(C, dense, c->dim, 1, dots, &b, w, &xn, &bad);
    return em__km_assign_sparse(C, &row->sp, &b, w, &xn);
}

/* KM_PICK: offers every row of the batch to the reservoir. The random stream is seeded by
 * (seed, round, partition) and kept in the accumulator between batches, so the pick does
 * not depend on where the partition runs. */
static int seq_pick(const em_fn_ctx *fc, const km_ctx *c, const km_centers *C, uint8_t *acc,
                    const em_rec_batch *in, em_err *err)
{
    km_pick *pk = (km_pick *)acc;
    double *point = (double *)(acc + sizeof *pk);
    em_rng g;
    if (!pk->seeded) {
        em_rng_seed(&g, em_mix64(c->seed ^ em_mix64(((uint64_t)c->round << 32) |
                                                    em_task_partition(fc->task))));
        pk->seeded = 1;
    } else
        memcpy(g.s, pk->rng, sizeof g.s);
    double *dense = em_malloc(8 * ((size_t)c->dim + c->k + 1));
    if (!dense)
        return em_err_set(err, EM_ENOMEM, "ml.kmeans: out of memory");
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    int rc = 0;
    while (rc == 0 && em_batch_iter_next(&it, &r)) {
        em_ml_row row;
        double w;
        if ((rc = em_ml_row_view(&c->layout, r.val, &row, err)) < 0)
            break;
        if (pick_weight(c, C, &row, dense, dense + c->dim, &w) < 0) {
            rc = em_err_set(err, EM_EINVAL, "ml.kmeans: a row has norm 0 (cosine distance "
                            "needs non-zero rows)");
            break;
        }
        double u = 1 - em_rng_double(&g);   /* (0, 1] */
        if (w > 0) {
            double key = log(u) / w;
            if (!pk->found || key > pk->key) {
                pk->found = 1;
                pk->key = key;
                memcpy(point, dense, 8 * (size_t)c->dim);
            }
        }
    }
    em_free(dense);
    memcpy(pk->rng, g.s, sizeof g.s);
    return rc;
}

int em__km_fn_seq(const em_fn_ctx *fc, void *acc, size_t size, const em_rec_batch *in,
                  em_err *err)
{
    km_ctx c;
    km_centers C;
    double *own;
    int rc = em__km_ctx_decode(fc->blob, &c, err);
    if (rc < 0)
        return rc;
    size_t want = c.mode == KM_PICK ? sizeof(km_pick) + 8 * (size_t)c.dim
                                    : 8 * ((size_t)c.k * c.dim + c.k + 1);
    if (size != want)
        return em_err_set(err, EM_EINVAL, "ml.kmeans: accumulator of %zu bytes, expected %zu",
                          size, want);
    if ((rc = em__km_get_centers(fc, &c, &C, &own, err)) < 0)
        return rc;
    if (c.mode == KM_PICK)
        rc = seq_pick(fc, &c, &C, acc, in, err);
    else if (c.k == 0)
        rc = em_err_set(err, EM_EINVAL, "ml.kmeans: no centres");
    else if (c.layout.sparse)
        rc = seq_sparse(&c, &C, acc, in, err);
    else
        rc = seq_dense(&c, &C, acc, in, err);
    em_free(own);
    return rc;
}

int em__km_fn_merge(const em_fn_ctx *fc, void *acc, const void *other, size_t size,
                    em_err *err)
{
    km_ctx c;
    int rc = em__km_ctx_decode(fc->blob, &c, err);
    if (rc < 0)
        return rc;
    if (c.mode == KM_PICK) {
        km_pick *a = acc;
        const km_pick *b = other;
        if (b->found && (!a->found || b->key > a->key))
            memcpy(acc, other, size);
        return 0;
    }
    double *a = acc;
    const double *b = other;
    for (size_t i = 0; i < size / 8; i++)
        a[i] += b[i];
    return 0;
}
