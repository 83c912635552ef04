/* mllib/als/model.c - the trained ALS model on the driver: predictions, metrics, the
 * objective, recommendations and the model directory.
 *
 * MODEL DIRECTORY (written as DIR.tmp.<pid>, then renamed onto DIR):
 *   metadata.json     {"class": "ember.als", "version": 2, "rank": k, "n_users": U,
 *                      "n_items": I, "implicit": bool, "user_factors_crc32c": C,
 *                      "item_factors_crc32c": C[, "user_ids_crc32c": C,
 *                      "item_ids_crc32c": C]}: the crc32c (Castagnoli, em_crc32c from 0)
 *                      of each other file, written last and verified on load; version 1
 *                      (no checksums) still loads. Infinite factors never load.
 *   user_factors.bin  U*k little-endian IEEE floats, row-major; a NaN row is a user without
 *                     training ratings (cold start)
 *   item_factors.bin  I*k floats
 *   user_ids.txt, item_ids.txt   optional: the external id of each row, one per line */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/als/als_int.h"
#include "mllib/linalg/linalg.h"

em_als_model *em_als_model_new(int rank, int32_t n_users, int32_t n_items)
{
    em_als_model *m = em_calloc(1, sizeof *m);
    size_t nu, ni;
    if (!m || rank <= 0 || n_users < 0 || n_items < 0 ||
        !em_size_mul((size_t)n_users, (size_t)rank, &nu) ||
        !em_size_mul((size_t)n_items, (size_t)rank, &ni))
        goto fail;
    m->rank = rank;
    m->n_users = n_users;
    m->n_items = n_items;
    m->user_factors = em_malloc(nu * sizeof(float) + 4);
    m->item_factors = em_malloc(ni * sizeof(float) + 4);
    if (!m->user_factors || !m->item_factors)
        goto fail;
    for (size_t i = 0; i < nu; i++)
        m->user_factors[i] = NAN;
    for (size_t i = 0; i < ni; i++)
        m->item_factors[i] = NAN;
    return m;
fail:
    em_als_model_free(m);
    return NULL;
}

void em_als_model_free(em_als_model *m)
{
    if (!m)
        return;
    em_free(m->user_factors);
    em_free(m->item_factors);
    em_free(m);
}

bool em_als_model_has_user(const em_als_model *m, int32_t u)
{
    return u >= 0 && u < m->n_users && !isnan(m->user_factors[(size_t)u * m->rank]);
}

bool em_als_model_has_item(const em_als_model *m, int32_t i)
{
    return i >= 0 && i < m->n_items && !isnan(m->item_factors[(size_t)i * m->rank]);
}

static float dot(const float *a, const float *b, int k)
{
    float s = 0;
    for (int i = 0; i < k; i++)
        s += a[i] * b[i];
    return s;
}

float em_als_predict(const em_als_model *m, int32_t user, int32_t item)
{
    if (!em_als_model_has_user(m, user) || !em_als_model_has_item(m, item))
        return NAN;
    return dot(m->user_factors + (size_t)user * m->rank,
               m->item_factors + (size_t)item * m->rank, m->rank);
}

void em_als_predict_pairs(const em_als_model *m, const em_rating *pairs, size_t n,
                          em_cold_start cold, float *out, size_t *n_out, uint8_t *keep)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        float p = em_als_predict(m, pairs[i].user, pairs[i].item);
        bool k = !(cold == EM_COLD_DROP && isnan(p));
        if (keep)
            keep[i] = k;
        if (k)
            out[o++] = p;
    }
    if (n_out)
        *n_out = o;
}

void em_als_evaluate(const em_als_model *m, const em_rating *r, size_t n, em_cold_start cold,
                     em_als_metrics *out)
{
    double se = 0, ae = 0;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        float p = em_als_predict(m, r[i].user, r[i].item);
        if (isnan(p)) {
            out->cold++;
            continue;
        }
        double d = (double)r[i].rating - p;
        se += d * d;
        ae += fabs(d);
        out->n++;
    }
    bool nan = out->n == 0 || (cold == EM_COLD_NAN && out->cold);
    out->rmse = nan ? NAN : sqrt(se / (double)out->n);
    out->mae = nan ? NAN : ae / (double)out->n;
}

/* Sum over rows with factors of n_row * |f_row|^2 (rows counted from the ratings). */
static double reg_term(const float *f, int32_t rows, int k, const uint32_t *cnt)
{
    double s = 0;
    for (int32_t r = 0; r < rows; r++) {
        const float *x = f + (size_t)r * k;
        if (isnan(x[0]) || !cnt[r])
            continue;
        double q = 0;
        for (int i = 0; i < k; i++)
            q += (double)x[i] * x[i];
        s += cnt[r] * q;
    }
    return s;
}

/* Sum over all users with factors of x_u^T G x_u, G the item Gram matrix (implicit). */
static double all_pairs_term(const em_als_model *m)
{
    int k = m->rank;
    double *g = em_xcalloc((size_t)k * k, sizeof *g), *dummy = em_xcalloc((size_t)k, 8), s = 0;
    for (int32_t i = 0; i < m->n_items; i++)
        if (em_als_model_has_item(m, i))
            em_la_rank1_acc(k, m->item_factors + (size_t)i * k, 1.0, 0.0, g, dummy);
    em_la_symmetrize(k, g);
    for (int32_t u = 0; u < m->n_users; u++) {
        if (!em_als_model_has_user(m, u))
            continue;
        const float *x = m->user_factors + (size_t)u * k;
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++)
                s += (double)x[a] * g[a * k + b] * x[b];
    }
    em_free(g);
    em_free(dummy);
    return s;
}

double em_als_objective(const em_als_model *m, const em_rating *r, size_t n,
                        const em_als_params *p)
{
    uint32_t *cu = em_xcalloc((size_t)m->n_users + 1, 4);
    uint32_t *ci = em_xcalloc((size_t)m->n_items + 1, 4);
    double loss = p->implicit ? all_pairs_term(m) : 0, alpha = p->alpha > 0 ? p->alpha : 1.0;
    for (size_t t = 0; t < n; t++) {
        float s = em_als_predict(m, r[t].user, r[t].item);
        cu[r[t].user]++;
        ci[r[t].item]++;
        if (isnan(s))
            continue;
        if (!p->implicit) {
            loss += ((double)r[t].rating - s) * ((double)r[t].rating - s);
        } else {
            double c = 1.0 + alpha * fabs(r[t].rating), pr = r[t].rating > 0 ? 1.0 : 0.0;
            loss += c * (pr - s) * (pr - s) - (double)s * s;
        }
    }
    loss += p->lambda * (reg_term(m->user_factors, m->n_users, m->rank, cu) +
                         reg_term(m->item_factors, m->n_items, m->rank, ci));
    em_free(cu);
    em_free(ci);
    return loss;
}

/* ---------------------------------------------------------------- top-k */

typedef struct topk {
    int k, n;
    int32_t *id;
    float *sc;
} topk;

/* a ranks below b: lower score, or equal score and higher id. */
static bool worse(float sa, int32_t ia, float sb, int32_t ib)
{
    return sa < sb || (sa == sb && ia > ib);
}

/* Min-heap on (score, -id) of the best k so far. */
static void topk_push(topk *h, int32_t id, float s)
{
    int i;
    if (h->n < h->k) {
        i = h->n++;
        while (i > 0 && worse(s, id, h->sc[(i - 1) / 2], h->id[(i - 1) / 2])) {
            h->sc[i] = h->sc[(i - 1) / 2];
            h->id[i] = h->id[(i - 1) / 2];
            i = (i - 1) / 2;
        }
    } else {
        if (h->k == 0 || !worse(h->sc[0], h->id[0], s, id))
            return;
        i = 0;
        for (;;) {
            int c = 2 * i + 1;
            if (c >= h->n)
                break;
            if (c + 1 < h->n && worse(h->sc[c + 1], h->id[c + 1], h->sc[c], h->id[c]))
                c++;
            if (!worse(h->sc[c], h->id[c], s, id))
                break;
            h->sc[i] = h->sc[c];
            h->id[i] = h->id[c];
            i = c;
        }
    }
    h->sc[i] = s;
    h->id[i] = id;
}

/* Whether topk_push could keep a score s whose id is above every id pushed so far (the
 * callers push rows in ascending order): a full heap keeps only a score above its worst,
 * as an equal score ranks below it by id. The test inline, before the call: nearly every
 * score of a long scan fails it (the ranking metrics of an implicit run at scale 1 spent
 * about a sixth of their CPU calling topk_push to return at once). */
static inline bool topk_wants(const topk *h, float s)
{
    return h->n < h->k || (h->k > 0 && s > h->sc[0]);
}

/* Sorts the heap best first (in place) and returns the count. */
static int topk_finish(topk *h)
{
    for (int a = 1; a < h->n; a++) {
        float s = h->sc[a];
        int32_t id = h->id[a];
        int b = a - 1;
        for (; b >= 0 && worse(h->sc[b], h->id[b], s, id); b--) {
            h->sc[b + 1] = h->sc[b];
            h->id[b + 1] = h->id[b];
        }
        h->sc[b + 1] = s;
        h->id[b + 1] = id;
    }
    return h->n;
}

/* dot(x, row) of 4 consecutive rows at once: four independent sums, each in dot's order
 * (the same float operations, so the same bits): one dot is a chain of rank dependent
 * additions, and a user's top k over all items waited on them one item at a time (the
 * ranking metrics of an implicit run at scale 1: 40 s, 30-37% of the run's CPU). */
static void dot4(const float *x, const float *rows, int k, float s[4])
{
    const float *a = rows, *b = rows + k, *c = rows + 2 * (size_t)k, *d = rows + 3 * (size_t)k;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int i = 0; i < k; i++) {
        s0 += x[i] * a[i];
        s1 += x[i] * b[i];
        s2 += x[i] * c[i];
        s3 += x[i] * d[i];
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
}

/* Row r's score s offered to h: rows come in ascending order, ex (ascending, cursor *e)
 * lists the excluded ones, and a row without factors (NaN) is never chosen. The one rule
 * of top_against and top_panels. */
static inline void offer(topk *h, int32_t r, float s, const float *rows, int rank,
                         const int32_t *ex, size_t nex, size_t *e)
{
    while (*e < nex && ex[*e] < r)
        (*e)++;
    if ((*e < nex && ex[*e] == r) || isnan(rows[(size_t)r * (size_t)rank]))
        return;
    if (topk_wants(h, s))
        topk_push(h, r, s);
}

static int top_against(const float *x, const float *rows, int32_t nrows, int k, int rank,
                       const int32_t *ex, size_t nex, int32_t *ids, float *scores)
{
    topk h = {.k = k, .id = ids, .sc = scores};
    size_t e = 0;
    int32_t full = nrows & ~3;   /* rows below are scored four at a time */
    float s4[4];
    for (int32_t r = 0; r < nrows; r++) {
        const float *y = rows + (size_t)r * rank;
        if (r < full && (r & 3) == 0)
            dot4(x, y, rank, s4);
        offer(&h, r, r < full ? s4[r & 3] : dot(x, y, rank), rows, rank, ex, nex, &e);
    }
    return topk_finish(&h);
}

/* ---------------------------------------------------------------- scoring in panels
 * The ranking metrics score every user against every item: 8.5 billion scores at scale 1
 * in implicit mode. top_against scores four rows at a time in scalar code; here the items
 * are laid out in panels of eight (panel p holds factor i of rows 8p..8p+7 at
 * [p * k * 8 + i * 8]), so one AVX2 multiply and one add score eight items, and a panel's
 * eight scores are compared with the heap's worst at once: only the few above it are
 * looked at one by one. WHY a multiply then an add, never an FMA (the function's target
 * has no "fma", so the compiler cannot fuse them): each lane then rounds exactly as dot()
 * does, so the scores, the top k and the metrics are the same bits as top_against's. */
/* Where top_panels cannot run (no AVX2), the panels are not made: f stays NULL and top_of
 * scores the rows themselves. */
static bool panels_usable(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    return em_la_simd() >= 2;
#else
    return false;
#endif
}

int em__als_panels_init(em__als_panels *p, const float *rows, int32_t n, int k)
{
    size_t np = ((size_t)(n > 0 ? n : 0) + 7) / 8, len;
    p->n = n > 0 ? n : 0;
    p->k = k;
    p->rows = rows;
    p->f = NULL;
    if (!panels_usable())
        return 0;
    if (!em_size_mul(np, (size_t)k * 8 * sizeof(float), &len) ||
        !(p->f = em_malloc_aligned(32, len + 32)))
        return EM_ENOMEM;
    for (size_t b = 0; b < np; b++)
        for (int i = 0; i < k; i++)
            for (size_t j = 0; j < 8; j++) {
                size_t r = 8 * b + j;
                p->f[(b * (size_t)k + (size_t)i) * 8 + j] =
                    r < (size_t)p->n ? rows[r * (size_t)k + (size_t)i] : 0.0f;
            }
    return 0;
}

void em__als_panels_free(em__als_panels *p)
{
    em_free(p->f);
    p->f = NULL;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx2"))) static int top_panels(const float *x, const em__als_panels *p,
                                                      int k, const int32_t *ex, size_t nex,
                                                      int32_t *ids, float *scores)
{
    topk h = {.k = k, .id = ids, .sc = scores};
    size_t e = 0;
    const int rank = p->k;
    const float *f = p->f;
    for (int32_t r0 = 0; r0 < p->n; r0 += 8, f += (size_t)rank * 8) {
        __m256 s = _mm256_setzero_ps();
        for (int i = 0; i < rank; i++)
            s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(x[i]), _mm256_load_ps(f + 8 * i)));
        unsigned m = h.n < h.k ? 0xffu
                               : (unsigned)_mm256_movemask_ps(
                                     _mm256_cmp_ps(s, _mm256_set1_ps(h.sc[0]), _CMP_GT_OQ));
        if (!m)
            continue;
        float sv[8];
        _mm256_storeu_ps(sv, s);
        for (; m; m &= m - 1) {
            int j = __builtin_ctz(m);
            if (r0 + j >= p->n)
                break;
            offer(&h, r0 + j, sv[j], p->rows, rank, ex, nex, &e);
        }
    }
    return topk_finish(&h);
}
#endif

/* The top k of x against the rows p was made of, excluding ex (ascending): top_against's
 * result, bit for bit. */
static int top_of(const float *x, const em__als_panels *p, int k, const int32_t *ex,
                  size_t nex, int32_t *ids, float *scores)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (p->f)
        return top_panels(x, p, k, ex, nex, ids, scores);
#endif
    return top_against(x, p->rows, p->n, k, p->k, ex, nex, ids, scores);
}

int em_als_recommend_items(const em_als_model *m, int32_t user, int k, const int32_t *exclude,
                           size_t n_exclude, int32_t *items, float *scores)
{
    if (!em_als_model_has_user(m, user) || k <= 0)
        return 0;
    return top_against(m->user_factors + (size_t)user * m->rank, m->item_factors, m->n_items,
                       k, m->rank, exclude, n_exclude, items, scores);
}

int em_als_recommend_users(const em_als_model *m, int32_t item, int k, int32_t *users,
                           float *scores)
{
    if (!em_als_model_has_item(m, item) || k <= 0)
        return 0;
    return top_against(m->item_factors + (size_t)item * m->rank, m->user_factors, m->n_users,
                       k, m->rank, NULL, 0, users, scores);
}

int em__als_top_range(const em_als_model *m, int side, int32_t first, int32_t count, int k,
                      int32_t *ids, float *scores, em_err *err)
{
    enum { UB = 256, IB = 2048 };
    int r = m->rank;
    const float *src = side ? m->item_factors : m->user_factors;
    const float *dst = side ? m->user_factors : m->item_factors;
    int32_t ndst = side ? m->n_users : m->n_items;
    float *tile = em_malloc((size_t)UB * IB * sizeof *tile);
    topk *h = em_malloc(UB * sizeof *h);
    if (!tile || !h) {
        em_free(tile);
        em_free(h);
        return em_err_set(err, EM_ENOMEM, "als recommend all");
    }
    for (int32_t u0 = 0; u0 < count; u0 += UB) {
        int nu = count - u0 < UB ? count - u0 : UB;
        for (int a = 0; a < nu; a++)
            h[a] = (topk){.k = k, .id = ids + (size_t)(u0 + a) * k,
                          .sc = scores + (size_t)(u0 + a) * k};
        for (int32_t i0 = 0; i0 < ndst; i0 += IB) {
            int ni = ndst - i0 < IB ? ndst - i0 : IB;
            em_la_sgemm_nt(nu, ni, r, src + (size_t)(first + u0) * r, dst + (size_t)i0 * r,
                           tile);
            for (int a = 0; a < nu; a++)
                for (int b = 0; b < ni; b++) {
                    float s = tile[(size_t)a * ni + b];
                    if (!isnan(s) && topk_wants(&h[a], s))
                        topk_push(&h[a], i0 + b, s);
                }
        }
        for (int a = 0; a < nu; a++)
            for (int c = topk_finish(&h[a]); c < k; c++) {
                h[a].id[c] = -1;
                h[a].sc[c] = NAN;
            }
    }
    em_free(tile);
    em_free(h);
    return 0;
}

int em_als_recommend_all(const em_als_model *m, int k, int32_t *items, float *scores,
                         em_err *err)
{
    return em__als_top_range(m, 0, 0, m->n_users, k, items, scores, err);
}

static int cmp_ui(const void *a, const void *b)
{
    const em_rating *x = a, *y = b;
    if (x->user != y->user)
        return x->user < y->user ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

/* Sorted copy of r, and per-user start offsets into it (n_users + 1). */
static int by_user(const em_rating *r, size_t n, int32_t nu, em_rating **sorted,
                   size_t **start)
{
    *sorted = em_malloc(n * sizeof **sorted + 1);
    *start = em_calloc((size_t)nu + 2, sizeof **start);
    if (!*sorted || !*start)
        return EM_ENOMEM;
    memcpy(*sorted, r, n * sizeof *r);
    qsort(*sorted, n, sizeof *r, cmp_ui);
    for (size_t i = 0; i < n; i++)
        if ((*sorted)[i].user >= 0 && (*sorted)[i].user < nu)
            (*start)[(*sorted)[i].user + 1]++;
    for (int32_t u = 0; u < nu; u++)
        (*start)[u + 1] += (*start)[u];
    return 0;
}

void em__als_rank_user(const em_als_model *m, const em__als_panels *items, int32_t u,
                       const int32_t *ex, size_t ntr, const em_rating *te, size_t nte, int k,
                       int32_t *ids, float *sc, double acc[3])
{
    size_t nrel = 0;
    for (size_t i = 0; i < nte; i++)
        nrel += te[i].rating > 0;
    int got = top_of(m->user_factors + (size_t)u * m->rank, items, k, ex, ntr, ids, sc);
    double hits = 0, ap = 0, dcg = 0, idcg = 0;
    for (int i = 0; i < got; i++) {
        bool rel = false;
        for (size_t t = 0; t < nte && !rel; t++)
            rel = te[t].item == ids[i] && te[t].rating > 0;
        if (rel) {
            hits++;
            ap += hits / (i + 1);
            dcg += 1.0 / log2(i + 2.0);
        }
    }
    for (size_t i = 0; i < nrel && i < (size_t)k; i++)
        idcg += 1.0 / log2((double)i + 2.0);
    acc[0] += hits / k;
    acc[1] += ap / (double)(nrel < (size_t)k ? nrel : (size_t)k);
    acc[2] += dcg / idcg;
}

int em_als_ranking_metrics(const em_als_model *m, const em_rating *train, size_t n_train,
                           const em_rating *test, size_t n_test, int k, em_rank_metrics *out,
                           em_err *err)
{
    em_rating *tr = NULL, *te = NULL;
    size_t *str = NULL, *ste = NULL;
    int32_t *ids = em_malloc((size_t)(k > 0 ? k : 1) * 4), *ex = NULL;
    float *sc = em_malloc((size_t)(k > 0 ? k : 1) * 4);
    double acc[3] = {0};
    em__als_panels items = {0};
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (k <= 0)
        rc = em_err_set(err, EM_EINVAL, "ranking metrics: k = %d", k);
    else if (!ids || !sc || by_user(train, train ? n_train : 0, m->n_users, &tr, &str) < 0 ||
             by_user(test, n_test, m->n_users, &te, &ste) < 0 ||
             !(ex = em_malloc((train ? n_train : 0) * 4 + 4)) ||
             em__als_panels_init(&items, m->item_factors, m->n_items, m->rank) < 0)
        rc = em_err_set(err, EM_ENOMEM, "ranking metrics");
    for (int32_t u = 0; rc == 0 && u < m->n_users; u++) {
        size_t a = ste[u], b = ste[u + 1];
        bool any = false;
        for (size_t i = a; i < b; i++)
            any = any || te[i].rating > 0;
        if (!any || !em_als_model_has_user(m, u))
            continue;
        for (size_t i = str[u]; i < str[u + 1]; i++)
            ex[i - str[u]] = tr[i].item;
        em__als_rank_user(m, &items, u, ex, str[u + 1] - str[u], te + a, b - a, k, ids, sc,
                          acc);
        out->users++;
    }
    if (out->users) {
        out->precision_at_k = acc[0] / (double)out->users;
        out->map = acc[1] / (double)out->users;
        out->ndcg_at_k = acc[2] / (double)out->users;
    }
    em_free(tr);
    em_free(te);
    em_free(str);
    em_free(ste);
    em_free(ids);
    em_free(sc);
    em_free(ex);
    em__als_panels_free(&items);
    return rc;
}
