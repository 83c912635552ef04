/* mllib/als/ranking.c - the model's ranking metrics and recommend-for-all, computed on the
 * executors (issue 11: "the same for evaluation and recommend-for-all").
 *
 * DESIGN. The model's factors go to the executors as one broadcast (the driver holds the
 * model after training anyway: n_users + n_items rows of `rank` floats, 20 MB at Netflix
 * scale and rank 10).
 *   Ranking metrics (em_als_ranking_metrics_rdd): training and test ratings are keyed by
 *   user and cogrouped, so each user's training items (excluded) and test ratings meet in
 *   one task; ml.als.rank ranks every user of its partition with the driver's code
 *   (em__als_rank_user: the same top-k, the same figures) and sends 4 sums. The driver
 *   adds them up: the same metrics as em_als_ranking_metrics up to the order of the sums.
 *   Recommend-for-all (em_als_recommend_all_rdd): the rows of one side are cut into ranges,
 *   one partition each; ml.als.recall scores its range against every row of the other side
 *   with blocked SGEMM and a heap per row (em__als_top_range, as em_als_recommend_all) and
 *   emits one text line per recommendation, with the external ids when the id maps are
 *   given (broadcast as the reader's maps blob: dense sides as a flag, no list). Nothing
 *   comes back to the driver: the lines are written by the executors (save) or consumed
 *   by whatever job the caller builds on them.
 *
 * FORMATS (host order, als_int.h BYTE ORDER):
 *   rank blob     u32 magic "ALSK", u32 rank, i32 n_users, i32 n_items, u32 model broadcast
 *                 (user then item factors, row-major floats), u32 k
 *   recall blob   the same with magic "ALSA", then u32 side, u32 maps broadcast (0: dense
 *                 indices are printed)
 *   range record  u32 first row, u32 rows
 *   user key      i32 user (ml.als.key_user: a rating keyed by its user) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/als/als_int.h"

#define RANK_MAGIC 0x4b534c41u    /* "ALSK" */
#define RECALL_MAGIC 0x41534c41u  /* "ALSA" */
#define FN_KEY_USER "ml.als.key_user"
#define FN_RANK "ml.als.rank"
#define FN_RECALL "ml.als.recall"

/* The model of a blob's first 24 bytes, borrowing the broadcast. */
static int model_of(const em_fn_ctx *c, uint32_t magic, size_t blen, em_als_model *m,
                    uint32_t *k, em_err *err)
{
    em_slice b = c->blob, mv;
    if (b.n != blen || em__ld32(b.p) != magic)
        return em_err_set(err, EM_ECORRUPT, "als: context blob of %zu bytes", b.n);
    uint32_t rank = em__ld32(b.p + 4);
    int32_t nu = (int32_t)em__ld32(b.p + 8), ni = (int32_t)em__ld32(b.p + 12);
    int rc = em_task_broadcast(c->task, em__ld32(b.p + 16), &mv, err);
    if (rc < 0)
        return rc;
    *k = em__ld32(b.p + 20);
    if (rank == 0 || rank > EM__ALS_MAX_RANK || nu < 0 || ni < 0 || *k == 0 ||
        *k > 1000000 || mv.n != ((size_t)nu + (size_t)ni) * rank * 4 ||
        ((uintptr_t)mv.p & 3))
        return em_err_set(err, EM_ECORRUPT, "als: model of %zu bytes", mv.n);
    *m = (em_als_model){.rank = (int)rank, .n_users = nu, .n_items = ni,
                        .user_factors = (float *)(uintptr_t)mv.p,
                        .item_factors = (float *)(uintptr_t)(mv.p + (size_t)nu * rank * 4)};
    return 0;
}

static uint32_t model_bcast(em_context *sc, const em_als_model *m, em_err *err)
{
    size_t k = (size_t)m->rank, nu = (size_t)m->n_users, ni = (size_t)m->n_items;
    em_vbuf mv;
    em_vbuf_init(&mv);
    if (em_vbuf_append(&mv, m->user_factors, nu * k * 4) < 0 ||
        em_vbuf_append(&mv, m->item_factors, ni * k * 4) < 0) {
        em_vbuf_destroy(&mv);
        em_err_set(err, EM_ENOMEM, "als: model of %zu bytes", (nu + ni) * k * 4);
        return 0;
    }
    uint32_t id = em_broadcast(sc, em_slice_make(mv.data, mv.len), err);
    em_vbuf_destroy(&mv);
    if (!id && !err->code)
        em_err_set(err, EM_ENOMEM, "als: broadcast of the model");
    return id;
}

/* ---------------------------------------------------------------- ranking metrics */

/* MAP: a FIXED rating -> its user as the key. */
static int fn_key_user(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    if (in->val.n != sizeof(em_rating))
        return em_err_set(err, EM_EINVAL, "als: a rating of %zu bytes", in->val.n);
    return em_emit_val(out, em_slice_make(in->val.p, 4), err);
}

/* The ratings of a list into *r (grown as needed). */
static int list_ratings(em_slice list, em_rating **r, size_t *n, size_t *cap, em_err *err)
{
    em_list_iter it;
    em_slice v;
    int rc = em_list_iter_init(&it, list, err);
    *n = 0;
    while (rc == 0 && (rc = em_list_iter_next(&it, &v, err)) == 1) {
        if (v.n != sizeof(em_rating))
            return em_err_set(err, EM_ECORRUPT, "als rank: a rating of %zu bytes", v.n);
        if (*n == *cap && !(*r = em_arr_grow(*r, cap, *n + 1, sizeof **r)))
            return em_err_set(err, EM_ENOMEM, "als rank: ratings of a user");
        memcpy(&(*r)[(*n)++], v.p, sizeof(em_rating));
        rc = 0;
    }
    return rc;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* PARTITION over (user, (training ratings, test ratings)): 4 doubles (sums of precision,
 * average precision, NDCG; users ranked). */
static int fn_rank(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                   em_err *err)
{
    em_als_model m;
    uint32_t k;
    em_rec rec;
    em_rating *tr = NULL, *te = NULL;
    size_t ntr = 0, nte = 0, ctr = 0, cte = 0;
    int32_t *ex = NULL, *ids = NULL;
    float *sc = NULL;
    double acc[4] = {0, 0, 0, 0};
    em__als_panels items = {0};
    (void)index;
    int rc = model_of(c, RANK_MAGIC, 24, &m, &k, err);
    if (rc == 0 && (!(ids = em_malloc(k * sizeof *ids)) || !(sc = em_malloc(k * sizeof *sc)) ||
                    em__als_panels_init(&items, m.item_factors, m.n_items, m.rank) < 0))
        rc = em_err_set(err, EM_ENOMEM, "als rank: top %u", k);
    while (rc == 0 && (rc = em_iter_next(in, &rec, err)) == 1) {
        em_slice a, b;
        bool ha, hb;
        int32_t u;
        rc = 0;
        if (rec.key.n != 4)
            rc = em_err_set(err, EM_ECORRUPT, "als rank: a key of %zu bytes", rec.key.n);
        else if ((rc = em_pair_decode(rec.val, &a, &ha, &b, &hb, err)) == 0 &&
                 (rc = list_ratings(a, &tr, &ntr, &ctr, err)) == 0)
            rc = list_ratings(b, &te, &nte, &cte, err);
        if (rc < 0)
            break;
        memcpy(&u, rec.key.p, 4);
        bool any = false;
        for (size_t i = 0; i < nte && !any; i++)
            any = te[i].rating > 0;
        if (!any || u < 0 || !em_als_model_has_user(&m, u))
            continue;
        int32_t *nex = em_realloc(ex, (ntr + 1) * sizeof *ex);
        if (!nex) {
            rc = em_err_set(err, EM_ENOMEM, "als rank: %zu training items", ntr);
            break;
        }
        ex = nex;
        for (size_t i = 0; i < ntr; i++)
            ex[i] = tr[i].item;
        qsort(ex, ntr, sizeof *ex, cmp_i32);
        em__als_rank_user(&m, &items, u, ex, ntr, te, nte, (int)k, ids, sc, acc);
        acc[3]++;
    }
    if (rc == 0)
        rc = em_emit_val(out, em_slice_make(acc, sizeof acc), err);
    em_free(tr);
    em_free(te);
    em_free(ex);
    em_free(ids);
    em_free(sc);
    em__als_panels_free(&items);
    return rc;
}

int em_als_ranking_metrics_rdd(em_context *sc, const em_als_model *m, em_rdd *train,
                               em_rdd *test, int k, em_rank_metrics *out, em_err *err)
{
    em_records recs = {0};
    double acc[4] = {0, 0, 0, 0};
    memset(out, 0, sizeof *out);
    if (k <= 0 || k > 1000000)
        return em_err_set(err, EM_EINVAL, "ranking metrics: k = %d", k);
    if (em_als_register() < 0 || em_als_io_register() < 0)
        return em_err_set(err, EM_EINVAL, "als: a task function name is taken");
    uint32_t id = model_bcast(sc, m, err);
    if (!id)
        return err->code;
    uint32_t blob[6] = {RANK_MAGIC, (uint32_t)m->rank, (uint32_t)m->n_users,
                        (uint32_t)m->n_items, id, (uint32_t)k};
    em_rdd *a = em_rdd_key_by(train, FN_KEY_USER, em_slice_make(NULL, 0));
    em_rdd *b = em_rdd_key_by(test, FN_KEY_USER, em_slice_make(NULL, 0));
    em_rdd *g = em_rdd_cogroup(a, b, 0);
    em_rdd *s = em_rdd_map_partitions(g, FN_RANK, em_slice_make(blob, sizeof blob), false);
    int rc = em_rdd_error(s) ? em_err_copy(err, em_rdd_error(s)) : em_rdd_collect(s, &recs, err);
    em_rdd_release(s);
    em_rdd_release(g);
    em_rdd_release(b);
    em_rdd_release(a);
    em_broadcast_destroy(sc, id);
    if (rc == 0)
        rc = em__als_sum4(&recs, acc, "als rank", err);
    em_records_destroy(&recs);
    if (rc < 0)
        return rc;
    out->users = (uint64_t)acc[3];
    if (out->users) {
        out->precision_at_k = acc[0] / acc[3];
        out->map = acc[1] / acc[3];
        out->ndcg_at_k = acc[2] / acc[3];
    }
    return 0;
}

/* ---------------------------------------------------------------- recommend for all */

/* PARTITION over range records: "SRC TAB DST TAB SCORE" lines, best first per row. */
static int fn_recall(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    em_als_model m;
    uint32_t k;
    em_rec rec;
    em_slice mb;
    em_idmap *maps[2] = {NULL, NULL};
    int32_t *ids = NULL;
    float *scores = NULL;
    (void)index;
    int rc = model_of(c, RECALL_MAGIC, 32, &m, &k, err);
    uint32_t side = rc == 0 ? em__ld32(c->blob.p + 24) : 0;
    uint32_t mid = rc == 0 ? em__ld32(c->blob.p + 28) : 0;
    if (rc == 0 && side > 1)
        rc = em_err_set(err, EM_ECORRUPT, "als recall: side %u", side);
    if (rc == 0 && mid) {
        if (!(maps[0] = em_idmap_new()) || !(maps[1] = em_idmap_new()))
            rc = em_err_set(err, EM_ENOMEM, "als recall: id maps");
        else if ((rc = em_task_broadcast(c->task, mid, &mb, err)) == 0)
            rc = em__als_maps_decode(mb, maps[0], maps[1], err);
        if (rc == 0 && (em_idmap_size(maps[0]) != m.n_users ||
                        em_idmap_size(maps[1]) != m.n_items))
            rc = em_err_set(err, EM_ECORRUPT, "als recall: id maps do not fit the model");
    }
    int32_t nsrc = side ? m.n_items : m.n_users;
    while (rc == 0 && (rc = em_iter_next(in, &rec, err)) == 1) {
        rc = 0;
        if (rec.val.n != 8)
            rc = em_err_set(err, EM_ECORRUPT, "als recall: range of %zu bytes", rec.val.n);
        uint32_t first = rc == 0 ? em__ld32(rec.val.p) : 0;
        uint32_t n = rc == 0 ? em__ld32(rec.val.p + 4) : 0;
        if (rc == 0 && (first > (uint32_t)nsrc || n > (uint32_t)nsrc - first))
            rc = em_err_set(err, EM_ECORRUPT, "als recall: rows %u+%u of %d", first, n, nsrc);
        if (rc < 0)
            break;
        if (n == 0)
            continue;
        em_free(ids);
        em_free(scores);
        ids = em_malloc((size_t)n * k * sizeof *ids);
        scores = em_malloc((size_t)n * k * sizeof *scores);
        if (!ids || !scores) {
            rc = em_err_set(err, EM_ENOMEM, "als recall: top %u of %u rows", k, n);
            break;
        }
        if ((rc = em__als_top_range(&m, (int)side, (int32_t)first, (int32_t)n, (int)k, ids,
                                    scores, err)) < 0)
            break;
        for (uint32_t a = 0; rc == 0 && a < n; a++) {
            char sb[24], db[24], line[2 * EM_ALS_TRIPLE_MAX_ID + 128];
            int32_t src = (int32_t)(first + a);
            const char *sn = maps[side] ? em_idmap_name(maps[side], src, sb) : NULL;
            if (!sn)
                snprintf(sb, sizeof sb, "%d", src), sn = sb;
            for (uint32_t q = 0; rc == 0 && q < k && ids[(size_t)a * k + q] >= 0; q++) {
                int32_t dst = ids[(size_t)a * k + q];
                const char *dn = maps[1 - side] ? em_idmap_name(maps[1 - side], dst, db) : NULL;
                if (!dn)
                    snprintf(db, sizeof db, "%d", dst), dn = db;
                int len = snprintf(line, sizeof line, "%s\t%s\t%.9g", sn, dn,
                                   (double)scores[(size_t)a * k + q]);
                if (len < 0 || (size_t)len >= sizeof line)
                    rc = em_err_set(err, EM_EINVAL, "als recall: an id too long to print");
                else
                    rc = em_emit_val(out, em_slice_make(line, (size_t)len), err);
            }
        }
    }
    em_free(ids);
    em_free(scores);
    em_idmap_free(maps[0]);
    em_idmap_free(maps[1]);
    return rc;
}

/* base when index i of m is id i + base for every i (numbered by value), else -1. */
static int identity_base(const em_idmap *m)
{
    if (!m || m->n == 0 || m->nstr || m->rev[0] < 0 || m->rev[0] > 1)
        return -1;
    for (int32_t i = 0; i < m->n; i++)
        if (m->rev[i] != (int64_t)i + m->rev[0])
            return -1;
    return (int)m->rev[0];
}

int em_als_recommend_all_rdd(em_context *sc, const em_als_model *m, int side, int k,
                             const em_idmap *users, const em_idmap *items, em_als_recs *out,
                             em_err *err)
{
    em_vbuf maps;
    memset(out, 0, sizeof *out);
    if (k <= 0 || k > 1000000 || side < 0 || side > 1)
        return em_err_set(err, EM_EINVAL, "recommend for all: k = %d, side %d", k, side);
    if ((users || items) && (!users || !items || em_idmap_size(users) != m->n_users ||
                             em_idmap_size(items) != m->n_items))
        return em_err_set(err, EM_EINVAL, "recommend for all: the id maps do not fit the "
                          "model");
    if (em_als_register() < 0 || em_als_io_register() < 0)
        return em_err_set(err, EM_EINVAL, "als: a task function name is taken");
    if (!(out->bcast[0] = model_bcast(sc, m, err)))
        return err->code;
    if (users) {
        uint32_t dense = (identity_base(users) >= 0 ? 1u : 0u) |
                         (identity_base(items) >= 0 ? 2u : 0u);
        em_vbuf_init(&maps);
        int rc = em__als_maps_blob(users, items, dense, &maps);
        if (rc == 0)
            out->bcast[1] = em_broadcast(sc, em_slice_make(maps.data, maps.len), err);
        em_vbuf_destroy(&maps);
        if (!out->bcast[1]) {
            rc = err->code ? err->code : em_err_set(err, EM_ENOMEM, "als: id maps");
            em_als_recs_release(sc, out);
            return rc;
        }
    }
    /* ranges of the source side: about 2 per core, at least 256 rows each */
    int32_t n = side ? m->n_items : m->n_users;
    uint32_t dp = em_context_default_parallelism(sc);
    int64_t per = n / (int64_t)(2 * (dp ? dp : 1)) + 1;
    per = per < 256 ? 256 : per;
    size_t nr = (size_t)((n + per - 1) / per);
    uint32_t *rg = em_xcalloc(nr + 1, 8);
    em_rec *recs = em_xcalloc(nr + 1, sizeof *recs);
    for (size_t i = 0; i < nr; i++) {
        int64_t a = (int64_t)i * per, b = a + per < n ? a + per : n;
        rg[2 * i] = (uint32_t)a;
        rg[2 * i + 1] = (uint32_t)(b - a);
        recs[i].val = em_slice_make(&rg[2 * i], 8);
    }
    em_rdd *ranges = em_parallelize(sc, EM_REC_BYTES, 0, recs, nr, (uint32_t)(nr ? nr : 1));
    uint32_t blob[8] = {RECALL_MAGIC, (uint32_t)m->rank, (uint32_t)m->n_users,
                        (uint32_t)m->n_items, out->bcast[0], (uint32_t)k, (uint32_t)side,
                        out->bcast[1]};
    out->lines = em_rdd_map_partitions(ranges, FN_RECALL, em_slice_make(blob, sizeof blob),
                                       false);
    em_rdd_release(ranges);
    em_free(rg);
    em_free(recs);
    if (em_rdd_error(out->lines)) {
        int rc = em_err_copy(err, em_rdd_error(out->lines));
        em_als_recs_release(sc, out);
        return rc;
    }
    return 0;
}

void em_als_recs_release(em_context *sc, em_als_recs *r)
{
    em_rdd_release(r->lines);
    for (int i = 0; i < 2; i++)
        if (r->bcast[i])
            em_broadcast_destroy(sc, r->bcast[i]);
    memset(r, 0, sizeof *r);
}

int em_als_recommend_all_save(em_context *sc, const em_als_model *m, int side, int k,
                              const em_idmap *users, const em_idmap *items, const char *dir,
                              em_err *err)
{
    em_als_recs r;
    int rc = em_als_recommend_all_rdd(sc, m, side, k, users, items, &r, err);
    if (rc == 0)
        rc = em_rdd_save_as_text_file(r.lines, dir, err);
    em_als_recs_release(sc, &r);
    return rc;
}

/* ---------------------------------------------------------------- registration */

static const em_fn_entry ranking_fns[] = {
    {FN_KEY_USER, EM_FN_MAP, EM_FN(fn_key_user)},
    {FN_RANK, EM_FN_PARTITION, EM_FN(fn_rank)},
    {FN_RECALL, EM_FN_PARTITION, EM_FN(fn_recall)},
};

int em__als_ranking_register(void)
{
    return em_fn_register_table(ranking_fns, sizeof ranking_fns / sizeof ranking_fns[0]);
}
