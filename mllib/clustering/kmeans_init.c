/* mllib/clustering/kmeans_init.c - initial centres: k-means|| (Spark's default), k-means++
 * and random, and the k-means|| sampling task (ml.kmeans.sample).
 *
 * K-MEANS|| (Bahmani et al., "Scalable K-Means++", VLDB 2012, as Spark runs it): one row
 * drawn uniformly; then init_steps rounds, each a pass for the total cost phi of the
 * candidates so far and a pass that keeps every row x with probability min(1, l d(x)/phi),
 * l = 2k; the distinct candidates, when more than k, are weighted by the rows nearest to
 * each (one more pass) and reduced to k on the driver by weighted k-means++ followed by at
 * most 30 weighted Lloyd iterations (Spark's LocalKMeans).
 * K-MEANS++ (Arthur & Vassilvitskii, SODA 2007): k passes; each draws one row with
 * probability proportional to its distance to the nearest centre so far (KM_PICK, a
 * weighted reservoir, so one pass per centre).
 * RANDOM: k rows by em_rdd_take_sample without replacement.
 * Every method keeps distinct centres only; when the data has fewer distinct points than
 * k, fewer centres come back (the pick stops when every row is at distance 0). All draws
 * come from streams seeded by (seed, round, partition), so a seed gives the same centres in
 * local and cluster modes. */
#include <math.h>
#include <string.h>

#include "mllib/clustering/kmeans_int.h"

/* One row drawn with weight distance-to-c (uniform when k = 0) into out (dim doubles).
 * *found false when every weight was 0. */
static int pick_one(const km_run *r, const double *c, uint32_t k, uint32_t round, double *out,
                    bool *found, em_err *err)
{
    em_vbuf acc;
    em_vbuf_init(&acc);
    int rc = em__km_pass(r, KM_PICK, c, k, round, 0, &acc, err);
    if (rc == 0) {
        km_pick pk;
        memcpy(&pk, acc.data, sizeof pk);
        *found = pk.found != 0;
        memcpy(out, acc.data + sizeof pk, 8 * (size_t)r->dim);
    }
    em_vbuf_destroy(&acc);
    return rc;
}

static int init_plusplus(const km_run *r, double *c, uint32_t *kout, em_err *err)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->p->k; i++) {
        bool found;
        int rc = pick_one(r, c, n, 1000 + i, c + (size_t)n * r->dim, &found, err);
        if (rc < 0)
            return rc;
        if (!found)
            break;   /* every row sits on a centre: fewer distinct points than k */
        n++;
    }
    *kout = em__km_distinct(c, n, r->dim);
    return 0;
}

static int init_random(const km_run *r, double *c, uint32_t *kout, em_err *err)
{
    em_records rs = {0};
    int rc = em_rdd_take_sample(r->d->rows, false, r->p->k, r->p->seed, &rs, err);
    if (rc < 0)
        return rc;
    uint32_t n = 0;
    for (size_t i = 0; i < rs.n && rc == 0; i++) {
        em_ml_row row;
        if ((rc = em_ml_row_view(r->d, rs.recs[i].val, &row, err)) < 0)
            break;
        double *o = c + (size_t)n++ * r->dim;
        if (row.dense)
            memcpy(o, row.dense, 8 * (size_t)r->dim);
        else {
            memset(o, 0, 8 * (size_t)r->dim);
            for (uint32_t j = 0; j < row.sp.nnz; j++)
                o[em_ml_sparse_idx(&row.sp, j)] = em_ml_sparse_val(&row.sp, j);
        }
    }
    em_records_destroy(&rs);
    *kout = em__km_distinct(c, n, r->dim);
    return rc;
}

/* The rows kept by one k-means|| round, appended to *c (grown; *m rows). */
static int sample_round(const km_run *r, double **c, uint32_t *m, size_t *cap, double phi,
                        uint32_t round, em_err *err)
{
    double *t = em__km_table(*c, *m, r->dim, r->p->distance);
    km_ctx kc = {.k = *m, .dim = r->dim, .round = round, .distance = r->p->distance,
                 .layout = *r->d, .mode = KM_COST, .seed = r->p->seed,
                 .scale = 2.0 * r->p->k / phi};
    kc.bcast = em_broadcast(r->sc, em_slice_make(t, 8 * (size_t)*m * (r->dim + 1)), err);
    em_free(t);
    if (kc.bcast == 0)
        return err->code;
    uint8_t blob[EM__KM_CTX_SIZE];
    em__km_ctx_encode(&kc, blob);
    em_rdd *s = em_rdd_map_partitions_fixed(r->d->rows, "ml.kmeans.sample",
                                            em_slice_make(blob, sizeof blob), false,
                                            8 * r->dim);
    em_records rs = {0};
    int rc = em_rdd_collect(s, &rs, err);
    em_rdd_release(s);
    em_broadcast_destroy(r->sc, kc.bcast);
    if (rc == 0 && rs.n > (1u << 20))
        rc = em_err_set(err, EM_EINVAL, "k-means||: %zu candidates", rs.n);
    for (size_t i = 0; rc == 0 && i < rs.n; i++) {
        double *g = em_arr_xgrow(*c, cap, ((size_t)*m + 1) * r->dim, sizeof **c);
        *c = g;
        memcpy(g + (size_t)(*m)++ * r->dim, rs.recs[i].val.p, 8 * (size_t)r->dim);
    }
    em_records_destroy(&rs);
    return rc;
}

/* Weighted k-means++ on the driver, then weighted Lloyd (Spark's LocalKMeans). */
static void local_kmeans(const km_run *r, const double *pts, const double *w, uint32_t m,
                         double *c, uint32_t k)
{
    uint32_t d = r->dim;
    em_rng g;
    em_rng_seed(&g, em_mix64(r->p->seed ^ 0x6b6d6c6f63616cULL));
    double *cost = em_xmalloc(8 * (size_t)m), *sum = em_xmalloc(8 * ((size_t)k * d + k));
    uint32_t *asg = em_xmalloc(4 * (size_t)m);
    km_centers C = {.k = 1, .dim = d, .distance = r->p->distance, .c = c};
    double tot = 0, acc = 0;
    for (uint32_t j = 0; j < m; j++)
        tot += w[j];
    double u = em_rng_double(&g) * tot;
    uint32_t pick = m - 1;
    for (uint32_t j = 0; j < m; j++)
        if ((acc += w[j]) >= u) {
            pick = j;
            break;
        }
    memcpy(c, pts + (size_t)pick * d, 8 * (size_t)d);
    for (uint32_t j = 0; j < m; j++)
        cost[j] = em__km_exact(&C, pts + (size_t)j * d, 0);
    for (uint32_t i = 1; i < k; i++) {
        double s = 0;
        for (uint32_t j = 0; j < m; j++)
            s += cost[j] * w[j];
        u = em_rng_double(&g) * s;
        pick = (uint32_t)em_rng_below(&g, m);
        acc = 0;
        for (uint32_t j = 0; s > 0 && j < m; j++)
            if ((acc += cost[j] * w[j]) >= u) {
                pick = j;
                break;
            }
        memcpy(c + (size_t)i * d, pts + (size_t)pick * d, 8 * (size_t)d);
        C.k = i + 1;
        for (uint32_t j = 0; j < m; j++) {
            double v = em__km_exact(&C, pts + (size_t)j * d, i);
            cost[j] = v < cost[j] ? v : cost[j];
        }
    }
    for (int it = 0; it < 30; it++) {
        bool changed = false;
        memset(sum, 0, 8 * ((size_t)k * d + k));
        for (uint32_t j = 0; j < m; j++) {
            uint32_t b = 0;
            double bv = 0;
            for (uint32_t i = 0; i < k; i++) {
                double v = em__km_exact(&C, pts + (size_t)j * d, i);
                if (i == 0 || v < bv) {
                    bv = v;
                    b = i;
                }
            }
            changed |= it == 0 || asg[j] != b;
            asg[j] = b;
            for (uint32_t q = 0; q < d; q++)
                sum[(size_t)b * d + q] += w[j] * pts[(size_t)j * d + q];
            sum[(size_t)k * d + b] += w[j];
        }
        if (!changed)
            break;
        for (uint32_t i = 0; i < k; i++) {
            double n = sum[(size_t)k * d + i];
            for (uint32_t q = 0; q < d; q++)
                c[(size_t)i * d + q] = n > 0 ? sum[(size_t)i * d + q] / n
                                             : pts[(size_t)em_rng_below(&g, m) * d + q];
        }
    }
    em_free(cost);
    em_free(sum);
    em_free(asg);
}

static int init_parallel(const km_run *r, double **cp, uint32_t *kout, em_err *err)
{
    size_t cap = 0;
    double *c = em_arr_xgrow(NULL, &cap, r->dim, sizeof *c);
    uint32_t m = 0, k = r->p->k, steps = r->p->init_steps ? r->p->init_steps : 2;
    bool found;
    em_vbuf acc;
    int rc = pick_one(r, NULL, 0, 0, c, &found, err);
    em_vbuf_init(&acc);
    m = rc == 0 && found ? 1 : 0;
    for (uint32_t s = 1; rc == 0 && m > 0 && s <= steps; s++) {
        if ((rc = em__km_pass(r, KM_LLOYD, c, m, 100 + s, 0, &acc, err)) < 0)
            break;
        double phi = ((const double *)acc.data)[(size_t)m * r->dim + m];
        if (phi <= 0)
            break;
        rc = sample_round(r, &c, &m, &cap, phi, s, err);
    }
    m = rc == 0 ? em__km_distinct(c, m, r->dim) : 0;
    if (rc == 0 && m > k && (rc = em__km_pass(r, KM_LLOYD, c, m, 200, 0, &acc, err)) == 0) {
        double *w = em_xmalloc(8 * (size_t)m), *out = em_xmalloc(8 * (size_t)k * r->dim);
        memcpy(w, acc.data + 8 * (size_t)m * r->dim, 8 * (size_t)m);
        local_kmeans(r, c, w, m, out, k);
        em_free(w);
        em_free(c);
        c = out;
        m = em__km_distinct(c, k, r->dim);
    }
    em_vbuf_destroy(&acc);
    if (rc < 0) {
        em_free(c);
        return rc;
    }
    *cp = c;
    *kout = m;
    return 0;
}

int em__km_init(const km_run *r, double **out, uint32_t *kout, em_err *err)
{
    int rc;
    *out = NULL;
    *kout = 0;
    if (r->p->init == EM_KMEANS_INIT_PARALLEL)
        rc = init_parallel(r, out, kout, err);
    else {
        *out = em_xmalloc(8 * (size_t)r->p->k * r->dim);
        rc = r->p->init == EM_KMEANS_INIT_PLUSPLUS ? init_plusplus(r, *out, kout, err)
                                                   : init_random(r, *out, kout, err);
    }
    if (rc == 0 && *kout == 0)
        rc = em_err_set(err, EM_EINVAL, "k-means: the data set is empty");
    if (rc < 0) {
        em_free(*out);
        *out = NULL;
        return em_err_prefix(err, "k-means initialization");
    }
    return 0;
}
