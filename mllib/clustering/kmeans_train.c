/* mllib/clustering/kmeans_train.c - the driver's half of k-means training: one pass over
 * the data (centres broadcast, accumulators merged by tree_aggregate_acc), the Lloyd loop,
 * and the registration table of "ml.kmeans.*".
 *
 * LLOYD STEP: the centres (k x d plus their squared norms) are broadcast; each task folds
 * its batches into an accumulator of k x d sums, k counts and the cost (KM_LLOYD), merged
 * in place; the new centre of a cluster is its mean (cosine: the normalized sum of the
 * normalized rows, Spark's CosineDistanceMeasure). A cluster without rows keeps its centre.
 * CONVERGENCE (Spark's): every centre moved by at most tol under the distance measure
 * (euclidean: ||new - old||, cosine: 1 - cos); tol 0 stops when no centre moved at all. */
#include <math.h>
#include <string.h>

#include "mllib/clustering/kmeans_int.h"

static const em_fn_entry km_fns[] = {
    {"ml.kmeans.seq", EM_FN_ACC_SEQ, EM_FN(em__km_fn_seq)},
    {"ml.kmeans.merge", EM_FN_ACC_MERGE, EM_FN(em__km_fn_merge)},
    {"ml.kmeans.sample", EM_FN_PARTITION, EM_FN(em__km_fn_sample)},
    {"ml.kmeans.predict", EM_FN_PARTITION, EM_FN(em__km_fn_predict)},
};

int em_kmeans_register(void)
{
    return em_fn_register_table(km_fns, sizeof km_fns / sizeof km_fns[0]);
}

double *em__km_table(const double *c, uint32_t k, uint32_t dim, em_kmeans_distance dist)
{
    double *t = em_xmalloc(sizeof(double) * (size_t)k * ((size_t)dim + 1));
    double *cn = t + (size_t)k * dim;
    memcpy(t, c, sizeof(double) * (size_t)k * dim);
    for (uint32_t i = 0; i < k; i++) {
        double *r = t + (size_t)i * dim, s = 0;
        for (uint32_t j = 0; j < dim; j++)
            s += r[j] * r[j];
        if (dist == EM_KMEANS_COSINE && s > 0) {
            double f = 1 / sqrt(s);
            for (uint32_t j = 0; j < dim; j++)
                r[j] *= f;
            s = 1;
        }
        cn[i] = s;
    }
    return t;
}

uint32_t em__km_distinct(double *c, uint32_t k, uint32_t dim)
{
    /* Open addressing on the rows' hashes; keeps the first of equal rows, in order. */
    size_t cap = 16, row = 8 * (size_t)dim;
    while (cap < 2 * (size_t)k)
        cap *= 2;
    uint32_t *slot = em_xmalloc(cap * sizeof *slot);
    memset(slot, 0xff, cap * sizeof *slot);
    uint32_t n = 0;
    for (uint32_t i = 0; i < k; i++) {
        const double *ri = c + (size_t)i * dim;
        size_t h = (size_t)em_hash64(ri, row, 7) & (cap - 1);
        bool dup = false;
        for (; slot[h] != UINT32_MAX; h = (h + 1) & (cap - 1))
            if (!memcmp(c + (size_t)slot[h] * dim, ri, row)) {
                dup = true;
                break;
            }
        if (dup)
            continue;
        memmove(c + (size_t)n * dim, ri, row);
        slot[h] = n++;
    }
    em_free(slot);
    return n;
}

int em__km_pass(const km_run *r, km_mode mode, const double *c, uint32_t k, uint32_t round,
                double scale, em_vbuf *out, em_err *err)
{
    km_ctx kc = {.k = k, .dim = r->dim, .round = round, .distance = r->p->distance,
                 .layout = *r->d, .mode = mode, .seed = r->p->seed, .scale = scale};
    uint8_t blob[EM__KM_CTX_SIZE];
    if (k > 0) {
        double *t = em__km_table(c, k, r->dim, r->p->distance);
        kc.bcast = em_broadcast(r->sc, em_slice_make(t, 8 * (size_t)k * (r->dim + 1)), err);
        em_free(t);
        if (kc.bcast == 0)
            return err->code;
    }
    em__km_ctx_encode(&kc, blob);
    em_agg a = {.size = mode == KM_PICK ? sizeof(km_pick) + 8 * (size_t)r->dim
                                        : 8 * ((size_t)k * r->dim + k + 1),
                .seq = "ml.kmeans.seq", .merge = "ml.kmeans.merge",
                .ctx = em_slice_make(blob, sizeof blob)};
    em_vbuf_destroy(out);   /* the aggregate initializes out itself */
    em_vbuf_init(out);
    int rc = em_rdd_tree_aggregate_acc(r->d->rows, &a, 2, out, err);
    if (kc.bcast)
        em_broadcast_destroy(r->sc, kc.bcast);
    if (rc == 0 && out->len != a.size)
        rc = em_err_set(err, EM_ECORRUPT, "ml.kmeans: result of %zu bytes", out->len);
    return rc;
}

/* New centres from a KM_LLOYD accumulator; returns how far the farthest centre moved. */
static double update(const km_run *r, double *c, uint32_t k, const double *acc)
{
    uint32_t d = r->dim;
    const double *cnt = acc + (size_t)k * d;
    double moved = 0;
    for (uint32_t i = 0; i < k; i++) {
        if (cnt[i] == 0)
            continue;   /* empty cluster: keeps its centre */
        const double *s = acc + (size_t)i * d;
        double *ci = c + (size_t)i * d, nn = 0, m = 0, dot = 0, on = 0;
        double f = 1 / cnt[i];
        for (uint32_t j = 0; j < d; j++)
            nn += (s[j] * f) * (s[j] * f);
        if (r->p->distance == EM_KMEANS_COSINE && nn > 0)
            f /= sqrt(nn);
        for (uint32_t j = 0; j < d; j++) {
            double v = s[j] * f;
            m += (v - ci[j]) * (v - ci[j]);
            dot += v * ci[j];
            on += ci[j] * ci[j];
            ci[j] = v;
        }
        double mv = r->p->distance == EM_KMEANS_COSINE
                        ? (on > 0 ? 1 - dot / sqrt(on) : 1)
                        : sqrt(m);
        if (m > 0 && mv <= 0)
            mv = 1e-300;   /* moved, however little */
        moved = mv > moved ? mv : moved;
    }
    return moved;
}

static int lloyd(const km_run *r, em_kmeans_model *m, em_err *err)
{
    uint32_t maxit = r->p->max_iter ? r->p->max_iter : 20;
    em_vbuf acc;
    int rc = 0;
    double t0 = em_now_s();
    em_vbuf_init(&acc);
    for (uint32_t it = 1; it <= maxit; it++) {
        if ((rc = em__km_pass(r, KM_LLOYD, m->centers, m->k, it, 0, &acc, err)) < 0) {
            em_err_prefix(err, "k-means iteration %u", it);
            break;
        }
        const double *a = (const double *)acc.data;
        double cost = a[(size_t)m->k * m->dim + m->k];
        double moved = update(r, m->centers, m->k, a);
        m->iterations = it;
        if (r->p->progress)
            r->p->progress(r->p->progress_ud, it, cost, em_now_s() - t0);
        if (moved <= r->p->tol) {
            m->converged = true;
            break;
        }
    }
    em_vbuf_destroy(&acc);
    return rc;
}

static int check_params(const em_ml_data *d, const em_kmeans_params *p, em_err *err)
{
    if (!d || !d->rows)
        return em_err_set(err, EM_EINVAL, "k-means: no data");
    if (p->k == 0 || p->k > 100000)
        return em_err_set(err, EM_EINVAL, "k-means: k = %u (1..100000)", p->k);
    if (d->dim == 0)
        return em_err_set(err, EM_EINVAL, "k-means: rows have no feature");
    if ((uint64_t)p->k * d->dim > ((uint64_t)1 << 27))
        return em_err_set(err, EM_EINVAL, "k-means: k x features = %llu is too large",
                          (unsigned long long)p->k * d->dim);
    if (!(p->tol >= 0) || p->distance > EM_KMEANS_COSINE || p->init > EM_KMEANS_INIT_RANDOM)
        return em_err_set(err, EM_EINVAL, "k-means: bad tolerance, distance or init");
    if (p->init_centers && (p->init_k == 0 || p->init_k > p->k))
        return em_err_set(err, EM_EINVAL, "k-means: %u initial centres for k = %u", p->init_k,
                          p->k);
    return 0;
}

int em_kmeans_train(em_context *sc, const em_ml_data *d, const em_kmeans_params *p,
                    em_kmeans_model **out, em_err *err)
{
    int rc;
    *out = NULL;
    if ((rc = em_kmeans_register()) < 0)
        return em_err_set(err, rc, "k-means: a task function name is taken");
    if ((rc = check_params(d, p, err)) < 0)
        return rc;
    km_run r = {.sc = sc, .d = d, .p = p, .dim = d->dim};
    em_kmeans_model *m = em_xcalloc(1, sizeof *m);
    m->dim = d->dim;
    m->distance = p->distance;
    double t0 = em_now_s();
    if (p->init_centers) {
        m->k = p->init_k;
        m->centers = em_xmalloc(8 * (size_t)m->k * m->dim);
        memcpy(m->centers, p->init_centers, 8 * (size_t)m->k * m->dim);
    } else if ((rc = em__km_init(&r, &m->centers, &m->k, err)) < 0)
        goto fail;
    if (p->distance == EM_KMEANS_COSINE) {
        double *t = em__km_table(m->centers, m->k, m->dim, p->distance);
        memcpy(m->centers, t, 8 * (size_t)m->k * m->dim);
        em_free(t);
    }
    m->init_centers = em_xmalloc(8 * (size_t)m->k * m->dim);
    memcpy(m->init_centers, m->centers, 8 * (size_t)m->k * m->dim);
    double t1 = em_now_s();
    m->init_s = t1 - t0;
    if ((rc = lloyd(&r, m, err)) < 0)
        goto fail;
    m->train_s = em_now_s() - t1;
    if ((rc = em_kmeans_cost(sc, m, d, &m->cost, err)) < 0)
        goto fail;
    *out = m;
    return 0;
fail:
    em_kmeans_model_free(m);
    return rc;
}

void em_kmeans_model_free(em_kmeans_model *m)
{
    if (!m)
        return;
    em_free(m->centers);
    em_free(m->init_centers);
    em_free(m);
}
