/* mllib/als/train.c - the driver side of blocked ALS: builds the dataset graph of one
 * training run and iterates (see blocks.c for the per-block work and the formats).
 *
 * DATASETS (k = block key, U/I = user/item block counts):
 *   blk[s]   the block records of side s, built on the driver from its parsed ratings and
 *            broadcast; map_partitions(partition_by(block keys, n_s), take) emits them
 *            HASH(n_s) partitioned with block b in partition b; persisted
 *   out[s]   map_values(blk[s], outlinks): the small out-link part, persisted
 *   fac[s]   (k, factors of block b), HASH(n_s), persisted per half-iteration
 * Half-iteration updating side d from side s = 1 - d:
 *   union(fac[s], out[s])            narrow, zipped (co-partitioned): partition j holds
 *                                    block j's factors and out-links
 *   -> map_partitions(send)          one message per (source block, destination block)
 *   -> partition_by(HASH, n_d)       THE shuffle: factors travel to the blocks that need them
 *   -> union(., blk[d])              narrow, zipped: block b's messages, then its record
 *   -> map_partitions(solve)         new fac[d]; persisted and counted, old one unpersisted
 * No join or cogroup: the engine implements those with a reducer that copies every value
 * (the block records are most of the data) several times per half-iteration.
 * LINEAGE: fac[d] depends on every earlier half-iteration. Every checkpoint_interval
 * iterations the item factors (the source of the next half-iteration) are checkpointed
 * (checkpoint() below), which cuts the lineage. Every intermediate handle is released as
 * soon as something derived from it exists, so when a checkpoint cuts the lineage the
 * shuffles of the iterations before it are deleted (em_rdd_release): a long run keeps at
 * most checkpoint_interval iterations of shuffle files. */
#include <math.h>
#include <stdlib.h>

#include "mllib/als/als_int.h"

typedef struct trainer {
    em_context *sc;
    em__als_cfg cfg;
    uint32_t *salt[2];
    em_rdd *blk[2], *out[2], *fac[2];
    em_vbuf *recs[2];   /* per side: block records built on the driver, until broadcast */
    em_vbuf take[2];    /* per side: the TAKE blob naming the block broadcasts, kept until
                           training ends so a lost block can be rebuilt from its lineage */
} trainer;

static int blob_for(trainer *t, uint32_t side, const double *yty, em_vbuf *b, em_err *err)
{
    em__als_cfg c = t->cfg;
    c.side = side;
    c.has_yty = yty != NULL;
    const uint32_t *const salts[2] = {t->salt[0], t->salt[1]};
    if (em__als_blob(&c, salts, yty, b) < 0)
        return em_err_set(err, EM_ENOMEM, "als: context blob");
    return 0;
}

static int rdd_ok(em_rdd *r, em_err *err)
{
    const em_err *e = em_rdd_error(r);
    return e ? em_err_copy(err, e) : 0;
}

/* Materializes a persisted dataset (and reports a plan error early). */
static int materialize(em_rdd *r, em_err *err)
{
    uint64_t n;
    int rc = rdd_ok(r, err);
    return rc < 0 ? rc : em_rdd_count(r, &n, err);
}

/* Builds the block records of side s on the driver (threads) into t->recs[s]. */
static int build_records(trainer *t, const em_rating *r, size_t n, uint32_t s, em_err *err)
{
    em__als_cfg c = t->cfg;
    c.side = s;
    t->recs[s] = em_xcalloc(c.nblk[s], sizeof *t->recs[s]);
    return em__als_build_blocks(&c, r, n, em_context_default_parallelism(t->sc), t->recs[s],
                                err);
}

static void free_records(trainer *t, uint32_t s)
{
    for (uint32_t b = 0; t->recs[s] && b < t->cfg.nblk[s]; b++)
        em_vbuf_destroy(&t->recs[s][b]);
    em_free(t->recs[s]);
    t->recs[s] = NULL;
}

/* Broadcasts each block record of side s (one broadcast per record with ratings; the engine
 * moves it in pieces); *blob receives the TAKE function's blob (als_int.h). Each record is
 * freed as soon as it is broadcast. */
static int broadcast_blocks(trainer *t, uint32_t s, em_vbuf *blob, em_err *err)
{
    uint32_t nb = t->cfg.nblk[s], hdr[2] = {EM__ALS_TAKE_MAGIC, nb};
    em_vbuf *recs = t->recs[s];
    em_vbuf ids;
    em_vbuf_init(&ids);
    int rc = 0;
    em_vbuf_append(blob, hdr, 8);
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t first = (uint32_t)(ids.len / 4);
        em_vbuf_append(blob, &first, 4);
        if (rc == 0 && recs[b].len) {
            uint32_t id = em_broadcast(t->sc, em_slice_make(recs[b].data, recs[b].len), err);
            if (!id)
                rc = err->code ? err->code : em_err_set(err, EM_ENOMEM, "als: broadcast");
            else
                em_vbuf_append(&ids, &id, 4);
        }
        em_vbuf_destroy(&recs[b]);
    }
    uint32_t end = (uint32_t)(ids.len / 4);
    em_vbuf_append(blob, &end, 4);
    if (em_vbuf_append(blob, ids.data, ids.len) < 0 && rc == 0)
        rc = em_err_set(err, EM_ENOMEM, "als: take blob");
    em_vbuf_destroy(&ids);
    free_records(t, s);
    return rc;
}

/* Applies fn (em_broadcast_destroy or em_broadcast_unpersist) to the broadcasts listed in
 * a TAKE blob. */
static void each_broadcast(trainer *t, const em_vbuf *blob,
                           void (*fn)(em_context *sc, uint32_t id))
{
    if (blob->len < 8)
        return;
    size_t nb = em__ld32(blob->data + 4), at = 8 + (nb + 1) * 4;
    for (size_t o = at; o + 4 <= blob->len; o += 4)
        fn(t->sc, em__ld32(blob->data + o));
}

/* The rest of a side once blk[s] is planned: out[s] (the out-links) and, for items, the
 * initial factors, all persisted and materialized. take: the TAKE blob of a driver-built
 * side (its broadcasts are unpersisted on the executors once blk[s] holds the records),
 * NULL for blocks built on the executors. */
static int finish_side(trainer *t, uint32_t s, em_slice bs, const em_vbuf *take, em_err *err)
{
    int rc;
    t->out[s] = em_rdd_persist(em_rdd_map_values(t->blk[s], EM__ALS_FN_OUTLINKS, bs),
                               EM_PERSIST_MEMORY_AND_DISK);
    if ((rc = materialize(t->blk[s], err)) == 0) {
        /* Each executor has what it needs in blk[s]: its fetched copies of the records
         * (the block records' size again) are dropped; the driver keeps its own to rebuild
         * a lost block. */
        if (take)
            each_broadcast(t, take, em_broadcast_unpersist);
        rc = materialize(t->out[s], err);
    }
    if (rc == 0 && s == 1) {
        t->fac[1] = em_rdd_persist(em_rdd_map_values(t->blk[1], EM__ALS_FN_INIT, bs),
                                   EM_PERSIST_MEMORY_AND_DISK);
        rc = materialize(t->fac[1], err);
    }
    return rc;
}

/* blk[s]: partition_by(HASH, n_s) of the block keys (a tiny shuffle that gives the
 * dataset the hash partitioner the zipped unions need), then TAKE emits each block's
 * broadcast record; persisted, with the out-links (and, for items, the initial factors).
 * The broadcasts stay until training ends (em_als_train drops them): a block record lost
 * with its executor is recomputed from them, as Spark recomputes a lost cached partition,
 * at the price of the driver holding the records (~1.6 GB at Netflix scale) meanwhile.
 * The ratings never pass through the shuffle and the driver keeps no parallelized copy. */
static int build_side(trainer *t, uint32_t s, em_err *err)
{
    uint32_t nb = t->cfg.nblk[s];
    em_rec *keys = em_xcalloc(nb, sizeof *keys);
    uint8_t *kb = em_xcalloc(nb, EM__ALS_KEY_LEN);
    em_vbuf b, take;
    em_vbuf_init(&b);
    em_vbuf_init(&take);
    em_vbuf_destroy(&t->take[s]);
    size_t nk = 0;
    int rc = blob_for(t, s, NULL, &b, err);
    if (rc == 0)
        rc = broadcast_blocks(t, s, &take, err);
    if (rc < 0)
        goto out;
    for (uint32_t k = 0; k < nb; k++)
        if (em__ld32(take.data + 8 + (size_t)k * 4) != em__ld32(take.data + 12 + (size_t)k * 4)) {
            em__als_key(kb + (size_t)k * 8, k, t->salt[s][k]);
            keys[nk].key = keys[nk].val = em_slice_make(kb + (size_t)k * 8, 8);
            nk++;
        }
    em_rdd *kr = em_parallelize(t->sc, EM_REC_KV, 0, keys, nk, nb);
    em_rdd *moved = em_rdd_partition_by(kr, EM_PART_HASH, nb);
    t->blk[s] = em_rdd_persist(em_rdd_map_partitions(moved, EM__ALS_FN_TAKE,
                                                     em_slice_make(take.data, take.len), true),
                               EM_PERSIST_MEMORY_AND_DISK);
    em_rdd_release(moved);   /* alive through blk[s] (its lineage, for recovery) */
    em_rdd_release(kr);
    rc = finish_side(t, s, em_slice_make(b.data, b.len), &take, err);
out:
    t->take[s] = take;   /* dropped by em_als_train when training ends */
    em_free(keys);
    em_free(kb);
    em_vbuf_destroy(&b);
    return rc;
}

/* blk[s] built where it lives (route.c), in two steps so that the ratings can be dropped
 * between them. route_side_rdd: ROUTE keys every rating by its side-s block and
 * partition_by(HASH, n_s) moves block b's ratings to partition b (the block key's salt
 * makes the hash land there); the shuffle's map side is run at once
 * (em_rdd_run_map_stages). build_side_rdd: BUILD makes the record in place, partitioning
 * kept; persisted. A lost record is rebuilt through this lineage (the shuffle's map
 * outputs, or the ratings dataset behind them): the driver never holds a rating. */
static int route_side_rdd(trainer *t, em_rdd *ratings, uint32_t s, em_vbuf *b, em_rdd **moved,
                          em_err *err)
{
    int rc = blob_for(t, s, NULL, b, err);
    if (rc < 0)
        return rc;
    em_rdd *routed = em_rdd_map_partitions(ratings, EM__ALS_FN_ROUTE,
                                           em_slice_make(b->data, b->len), false);
    *moved = em_rdd_partition_by(routed, EM_PART_HASH, t->cfg.nblk[s]);
    em_rdd_release(routed);   /* alive through *moved (its lineage, for recovery) */
    if ((rc = rdd_ok(*moved, err)) == 0)
        rc = em_rdd_run_map_stages(*moved, err);
    return rc;
}

static int build_side_rdd(trainer *t, em_rdd *moved, uint32_t s, const em_vbuf *b,
                          em_err *err)
{
    em_slice bs = em_slice_make(b->data, b->len);
    int rc;
    t->blk[s] = em_rdd_persist(em_rdd_map_partitions(moved, EM__ALS_FN_BUILD, bs, true),
                               EM_PERSIST_MEMORY_AND_DISK);
    if ((rc = rdd_ok(t->blk[s], err)) == 0 &&
        em_rdd_num_partitions(t->blk[s]) != t->cfg.nblk[s])
        rc = em_err_set(err, EM_EPLAN, "als: %u block partitions for %u blocks",
                        em_rdd_num_partitions(t->blk[s]), t->cfg.nblk[s]);
    if (rc == 0)
        rc = finish_side(t, s, bs, NULL, err);
    return rc;
}

/* Y^T Y of the factors of side s (implicit feedback). yty: k*k doubles. */
static int gram(trainer *t, uint32_t s, double *yty, em_err *err)
{
    em_vbuf v;
    em_vbuf_init(&v);
    em_rdd *vals = em_rdd_values(t->fac[s]);
    em_rdd *g = em_rdd_map(vals, EM__ALS_FN_GRAM, em_slice_make(NULL, 0));
    int rc = rdd_ok(g, err);
    if (rc == 0)
        rc = em_rdd_reduce(g, EM__ALS_FN_SUM, em_slice_make(NULL, 0), &v, err);
    em_rdd_release(g);
    em_rdd_release(vals);
    size_t kk = (size_t)t->cfg.rank * t->cfg.rank;
    if (rc == 0 && v.len != kk * 8)
        rc = em_err_set(err, EM_ECORRUPT, "als: Gram matrix of %zu bytes", v.len);
    for (size_t i = 0; rc == 0 && i < kk; i++)
        yty[i] = em_dec_f64(v.data + i * 8);
    em_vbuf_destroy(&v);
    return rc;
}

/* The factors of side s shipped to the blocks of the other side that need them:
 * partition b = the messages for block b (HASH partitioned). NULL when the factor and
 * out-link datasets are not co-partitioned. bs: the blob of side s. */
static em_rdd *messages(trainer *t, uint32_t s, const em_vbuf *bs)
{
    em_rdd *fo = em_rdd_union(t->fac[s], t->out[s]);
    em_rdd *m = em_rdd_map_partitions(fo, EM__ALS_FN_SEND, em_slice_make(bs->data, bs->len),
                                      false);
    em_rdd *sh = em_rdd_num_partitions(fo) == t->cfg.nblk[s]
                     ? em_rdd_partition_by(m, EM_PART_HASH, t->cfg.nblk[1 - s])
                     : NULL;
    em_rdd_release(m);   /* both stay alive as long as sh does */
    em_rdd_release(fo);
    return sh;
}

/* Training RMSE/MAE on the executors: union(union(user factors, messages of the item
 * factors), user block records) -> EVAL per block -> 3 doubles each, added up here. */
static int train_eval(trainer *t, em_als_metrics *out, em_err *err)
{
    em_vbuf bs, bd;
    em_records recs = {0};
    double acc[3] = {0, 0, 0};
    em_rdd *u = NULL;
    em_vbuf_init(&bs);
    em_vbuf_init(&bd);
    int rc = blob_for(t, 1, NULL, &bs, err);
    if (rc == 0)
        rc = blob_for(t, 0, NULL, &bd, err);
    em_rdd *mp = rc == 0 ? messages(t, 1, &bs) : NULL;
    if (rc == 0 && !mp)
        rc = em_err_set(err, EM_EPLAN, "als: item factors and out-links not co-partitioned");
    if (rc < 0)
        goto out;
    em_rdd *fm = em_rdd_union(t->fac[0], mp);
    u = em_rdd_union(fm, t->blk[0]);
    em_rdd_release(fm);   /* fm and mp stay alive through u */
    em_rdd_release(mp);
    if (em_rdd_num_partitions(u) != t->cfg.nblk[0]) {
        rc = em_err_set(err, EM_EPLAN, "als: user factors, messages and blocks are not "
                        "co-partitioned");
        goto out;
    }
    em_rdd *e = em_rdd_map_partitions(u, EM__ALS_FN_EVAL, em_slice_make(bd.data, bd.len),
                                      false);
    if ((rc = rdd_ok(e, err)) == 0)
        rc = em_rdd_collect(e, &recs, err);
    em_rdd_release(e);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < recs.n; i++) {
        if (recs.recs[i].val.n != sizeof acc) {
            rc = em_err_set(err, EM_ECORRUPT, "als eval: %zu-byte result", recs.recs[i].val.n);
            goto out;
        }
        for (int q = 0; q < 3; q++) {
            double v;
            memcpy(&v, recs.recs[i].val.p + q * 8, 8);
            acc[q] += v;
        }
    }
    *out = (em_als_metrics){.rmse = acc[2] > 0 ? sqrt(acc[0] / acc[2]) : NAN,
                            .mae = acc[2] > 0 ? acc[1] / acc[2] : NAN,
                            .n = (uint64_t)acc[2]};
out:
    em_rdd_release(u);
    em_records_destroy(&recs);
    em_vbuf_destroy(&bs);
    em_vbuf_destroy(&bd);
    return rc;
}

static int half_step(trainer *t, uint32_t d, em_err *err)
{
    uint32_t s = 1 - d;
    double *yty = NULL;
    em_vbuf bs, bd;
    em_vbuf_init(&bs);
    em_vbuf_init(&bd);
    int rc = 0;
    if (t->cfg.implicit) {
        yty = em_xmalloc((size_t)t->cfg.rank * t->cfg.rank * sizeof *yty);
        rc = gram(t, s, yty, err);
    }
    if (rc == 0 && (rc = blob_for(t, s, NULL, &bs, err)) == 0)
        rc = blob_for(t, d, yty, &bd, err);
    if (rc < 0)
        goto out;
    /* Both unions zip co-partitioned parents (partition b = block b of each), so send and
     * solve see their block's records side by side without a cogroup, which would copy
     * the block records (the bulk of the data) through a reducer every half-iteration. */
    em_rdd *mp = messages(t, s, &bs);
    em_rdd *mb = mp ? em_rdd_union(mp, t->blk[d]) : NULL;   /* messages, then the block */
    em_rdd_release(mp);   /* alive through mb */
    if (!mb || em_rdd_num_partitions(mb) != t->cfg.nblk[d]) {
        em_rdd_release(mb);
        rc = em_err_set(err, EM_EPLAN, "als: factor, out-link and block datasets are not "
                        "co-partitioned");
        goto out;
    }
    em_rdd *nf = em_rdd_map_partitions(mb, EM__ALS_FN_SOLVE, em_slice_make(bd.data, bd.len),
                                       true);
    em_rdd_release(mb);   /* alive through nf */
    em_rdd_persist(nf, EM_PERSIST_MEMORY_AND_DISK);
    if ((rc = materialize(nf, err)) < 0) {
        em_rdd_release(nf);
        goto out;
    }
    /* The old factors are unpersisted now; they (and the shuffles behind them) stay alive,
     * as lineage, until a checkpoint cuts it and nothing derived from them remains. */
    if (t->fac[d]) {
        em_rdd_unpersist(t->fac[d]);
        em_rdd_release(t->fac[d]);
    }
    t->fac[d] = nf;
out:
    em_free(yty);
    em_vbuf_destroy(&bs);
    em_vbuf_destroy(&bd);
    return rc;
}

/* Cuts the lineage of fac[s]. With ember.checkpoint.dir set: a reliable checkpoint (part
 * files that outlive the executors), persisted. Otherwise the factors are collected to the
 * driver (n x rank floats: 0.7 MB for Netflix's items) and re-parallelized, hash
 * partitioned and persisted: a lost partition is rebuilt from the driver's copy. Either
 * way the old handle is released, so the shuffles of the iterations before are deleted
 * once the next half-iteration no longer derives from them (em_rdd_release). */
static int checkpoint(trainer *t, uint32_t s, em_err *err)
{
    em_rdd *h;
    int rc;
    if (em_conf_get(em_context_conf(t->sc), "ember.checkpoint.dir")) {
        if (!(h = em_rdd_checkpoint(t->fac[s], err)))
            return err->code;
    } else {
        em_records recs = {0};
        if ((rc = em_rdd_collect(t->fac[s], &recs, err)) < 0)
            return rc;
        em_rdd *p = em_parallelize(t->sc, EM_REC_KV, 0, recs.recs, recs.n, t->cfg.nblk[s]);
        h = em_rdd_partition_by(p, EM_PART_HASH, t->cfg.nblk[s]);
        em_rdd_release(p);   /* alive through h */
        em_records_destroy(&recs);
    }
    em_rdd_persist(h, EM_PERSIST_MEMORY_AND_DISK);
    if ((rc = materialize(h, err)) < 0) {
        em_rdd_release(h);
        return rc;
    }
    em_rdd_unpersist(t->fac[s]);
    em_rdd_release(t->fac[s]);
    t->fac[s] = h;
    return 0;
}

/* Copies the collected factor records of side s into the model's rows. */
static int extract(trainer *t, uint32_t s, float *rows, em_err *err)
{
    em_records recs = {0};
    int rc = em_rdd_collect(t->fac[s], &recs, err);
    size_t k = t->cfg.rank;
    for (size_t i = 0; rc == 0 && i < recs.n; i++) {
        em_slice v = recs.recs[i].val;
        uint32_t n = v.n >= 8 ? em__ld32(v.p) : 0;
        if (v.n < 8 || em__ld32(v.p + 4) != k || v.n != 8 + (size_t)n * 4 * (1 + k)) {
            rc = em_err_set(err, EM_ECORRUPT, "als: collected factor record of %zu bytes", v.n);
            break;
        }
        for (uint32_t e = 0; e < n; e++) {
            int32_t id = (int32_t)em__ld32(v.p + 8 + (size_t)e * 4);
            if (id < 0 || id >= t->cfg.n[s]) {
                rc = em_err_set(err, EM_ECORRUPT, "als: factor for id %d", id);
                break;
            }
            memcpy(rows + (size_t)id * k, v.p + 8 + (size_t)n * 4 + (size_t)e * k * 4, k * 4);
        }
    }
    em_records_destroy(&recs);
    return rc;
}

static int check_params(const em_als_params *p, size_t n, int32_t nu, int32_t ni, em_err *err)
{
    if (p->rank < 0 || p->rank > EM__ALS_MAX_RANK)
        return em_err_set(err, EM_EINVAL, "als: rank %d (1..%d)", p->rank, EM__ALS_MAX_RANK);
    if (p->iterations < 0 || !(p->lambda >= 0) || !(p->alpha >= 0) || p->half_iterations < 0)
        return em_err_set(err, EM_EINVAL, "als: iterations %d, lambda %g, alpha %g",
                          p->iterations, p->lambda, p->alpha);
    if (p->user_blocks > EM__ALS_MAX_BLOCKS || p->item_blocks > EM__ALS_MAX_BLOCKS)
        return em_err_set(err, EM_EINVAL, "als: at most %d blocks", EM__ALS_MAX_BLOCKS);
    if (nu <= 0 || ni <= 0 || n == 0)
        return em_err_set(err, EM_EINVAL, "als: no ratings (%d users, %d items)", nu, ni);
    return 0;
}

/* Ids are checked once on the driver so that a bad id is EM_EINVAL, not a failed task. */
static int check_ids(const em_rating *r, size_t n, int32_t nu, int32_t ni, em_err *err)
{
    for (size_t t = 0; t < n; t++)
        if (r[t].user < 0 || r[t].user >= nu || r[t].item < 0 || r[t].item >= ni ||
            !isfinite(r[t].rating))
            return em_err_set(err, EM_EINVAL, "als: rating %zu (%d, %d, %g) out of range "
                              "(%d users, %d items)", t, r[t].user, r[t].item,
                              (double)r[t].rating, nu, ni);
    return 0;
}

static const em_fn_entry als_fns[] = {
    {EM__ALS_FN_TAKE, EM_FN_PARTITION, EM_FN(em__als_fn_take)},
    {EM__ALS_FN_OUTLINKS, EM_FN_MAP, EM_FN(em__als_fn_outlinks)},
    {EM__ALS_FN_INIT, EM_FN_MAP, EM_FN(em__als_fn_init)},
    {EM__ALS_FN_SEND, EM_FN_PARTITION, EM_FN(em__als_fn_send)},
    {EM__ALS_FN_SOLVE, EM_FN_PARTITION, EM_FN(em__als_fn_solve)},
    {EM__ALS_FN_EVAL, EM_FN_PARTITION, EM_FN(em__als_fn_eval)},
    {EM__ALS_FN_GRAM, EM_FN_MAP, EM_FN(em__als_fn_gram)},
    {EM__ALS_FN_SUM, EM_FN_REDUCE, EM_FN(em__als_fn_sum)},
    {EM__ALS_FN_ROUTE, EM_FN_PARTITION, EM_FN(em__als_fn_route)},
    {EM__ALS_FN_BUILD, EM_FN_PARTITION, EM_FN(em__als_fn_build)},
    {EM__ALS_FN_READ_IDS, EM_FN_PARTITION, EM_FN(em__als_fn_read_ids)},
    {EM__ALS_FN_READ, EM_FN_PARTITION, EM_FN(em__als_fn_read)},
    {EM__ALS_FN_READ_RAW, EM_FN_PARTITION, EM_FN(em__als_fn_read_raw)},
    {EM__ALS_FN_RAW_IDS, EM_FN_PARTITION, EM_FN(em__als_fn_raw_ids)},
    {EM__ALS_FN_SHIFT, EM_FN_PARTITION, EM_FN(em__als_fn_shift)},
    {EM__ALS_FN_SCORE, EM_FN_PARTITION, EM_FN(em__als_fn_score)},
};

int em_als_register(void)
{
    return em_fn_register_table(als_fns, sizeof als_fns / sizeof als_fns[0]);
}

static int setup(trainer *t, const em_als_params *p, int32_t nu, int32_t ni)
{
    uint32_t dp = em_context_default_parallelism(t->sc);
    em__als_cfg c = {
        .magic = EM__ALS_MAGIC,
        .rank = (uint32_t)(p->rank ? p->rank : 10),
        .nblk = {p->user_blocks ? p->user_blocks : dp, p->item_blocks ? p->item_blocks : dp},
        .implicit = p->implicit,
        .nonnegative = p->nonnegative,
        .n = {nu, ni},
        .seed = p->seed,
        .lambda = p->lambda,
        .alpha = p->alpha > 0 ? p->alpha : 1.0,
    };
    t->cfg = c;
    for (int s = 0; s < 2; s++) {
        t->salt[s] = em_xmalloc(c.nblk[s] * sizeof(uint32_t));
        for (uint32_t b = 0; b < c.nblk[s]; b++)
            t->salt[s][b] = em__als_find_salt(b, c.nblk[s]);
    }
    return 0;
}

/* Reports a phase that began at *t0 and restarts the clock. */
static void phase_done(const em_als_params *p, const char *what, double *t0)
{
    double now = em_now_s();
    if (p->phase)
        p->phase(p->progress_ud, what, now - *t0);
    *t0 = now;
}

static int iterate(trainer *t, const em_als_params *p, em_err *err)
{
    int iters = p->iterations ? p->iterations : 10;
    int halves = p->half_iterations ? p->half_iterations : 2 * iters;
    int every = p->checkpoint_interval ? p->checkpoint_interval : 5;
    double t0 = em_now_s();
    for (int h = 0; h < halves; h++) {
        int rc = half_step(t, (uint32_t)(h % 2), err);
        if (rc < 0)
            return em_err_prefix(err, "iteration %d", h / 2 + 1);
        if (h % 2 == 1) {
            int it = h / 2 + 1;
            if (every > 0 && it % every == 0 && h + 1 < halves &&
                (rc = checkpoint(t, 1, err)) < 0)
                return rc;
            if (p->progress)
                p->progress(p->progress_ud, it, em_now_s() - t0);
        }
    }
    return 0;
}

/* Everything after the blocks: iterations, training metrics, the model. */
static int train_rest(trainer *t, const em_als_params *params, em_als_model **out,
                      em_err *err)
{
    em_als_model *m = NULL;
    int rc;
    double t0;
    if ((rc = iterate(t, params, err)) < 0)
        return rc;
    t0 = em_now_s();
    if (params->train_metrics && t->fac[0]) {
        if ((rc = train_eval(t, params->train_metrics, err)) < 0)
            return rc;
        phase_done(params, "training metrics", &t0);
    }
    if (!(m = em_als_model_new((int)t->cfg.rank, t->cfg.n[0], t->cfg.n[1])))
        return em_err_set(err, EM_ENOMEM, "als: model of %d + %d rows", t->cfg.n[0],
                          t->cfg.n[1]);
    m->implicit = params->implicit;
    if ((t->fac[0] && (rc = extract(t, 0, m->user_factors, err)) < 0) ||
        (rc = extract(t, 1, m->item_factors, err)) < 0) {
        em_als_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

static void trainer_destroy(trainer *t)
{
    for (int s = 0; s < 2; s++) {   /* releasing unpersists and deletes the shuffles */
        em_rdd_release(t->fac[s]);
        em_rdd_release(t->out[s]);
        em_rdd_release(t->blk[s]);
        em_free(t->salt[s]);
        free_records(t, (uint32_t)s);
        each_broadcast(t, &t->take[s], em_broadcast_destroy);
        em_vbuf_destroy(&t->take[s]);
    }
}

int em_als_train(em_context *sc, const em_rating *ratings, size_t n, int32_t n_users,
                 int32_t n_items, const em_als_params *params, em_als_model **out,
                 em_err *err)
{
    trainer t = {.sc = sc};
    int rc;
    *out = NULL;
    if (em_als_register() < 0)
        return em_err_set(err, EM_EINVAL, "als: a task function name is already registered "
                          "with another function");
    if ((rc = check_params(params, n, n_users, n_items, err)) < 0 ||
        (rc = check_ids(ratings, n, n_users, n_items, err)) < 0)
        return rc;
    setup(&t, params, n_users, n_items);
    double t0 = em_now_s();
    /* Both sides' records are built before anything runs, so the caller can free the
     * ratings before the executors receive the records (the peak of the build). */
    if ((rc = build_records(&t, ratings, n, 0, err)) < 0 ||
        (rc = build_records(&t, ratings, n, 1, err)) < 0)
        goto out;
    if (params->ratings_done)
        params->ratings_done(params->progress_ud);
    phase_done(params, "blocks built", &t0);
    if ((rc = build_side(&t, 0, err)) < 0)
        goto out;
    phase_done(params, "user blocks distributed", &t0);
    if ((rc = build_side(&t, 1, err)) < 0)
        goto out;
    phase_done(params, "item blocks distributed", &t0);
    rc = train_rest(&t, params, out, err);
out:
    trainer_destroy(&t);
    return rc;
}

int em_als_train_rdd(em_context *sc, em_rdd *ratings, int32_t n_users, int32_t n_items,
                     const em_als_params *params, em_als_model **out, em_err *err)
{
    trainer t = {.sc = sc};
    int rc;
    *out = NULL;
    if (em_als_register() < 0)
        return em_err_set(err, EM_EINVAL, "als: a task function name is already registered "
                          "with another function");
    if ((rc = check_params(params, 1, n_users, n_items, err)) < 0 ||
        (rc = rdd_ok(ratings, err)) < 0)
        return rc;
    setup(&t, params, n_users, n_items);
    double t0 = em_now_s();
    em_vbuf blob[2];
    em_rdd *moved[2] = {NULL, NULL};
    em_vbuf_init(&blob[0]);
    em_vbuf_init(&blob[1]);
    /* Both sides routed before either is built: the caller's ratings_done then drops the
     * ratings (an executor's share of them: 0.6 GB at Netflix scale) before the builds
     * gather their copies (route.c GATHER_CHUNK) and map their records, which the kept
     * mappings of the dropped batches make room for (engine/base/alloc.c): the peak over
     * the processes fell from 4.1 to 2.9 GiB at scale 1 (docs/als.md). */
    if ((rc = route_side_rdd(&t, ratings, 0, &blob[0], &moved[0], err)) < 0 ||
        (rc = route_side_rdd(&t, ratings, 1, &blob[1], &moved[1], err)) < 0)
        goto out;
    if (params->ratings_done)
        params->ratings_done(params->progress_ud);
    phase_done(params, "ratings routed to their blocks", &t0);
    if ((rc = build_side_rdd(&t, moved[0], 0, &blob[0], err)) < 0)
        goto out;
    phase_done(params, "user blocks built", &t0);
    if ((rc = build_side_rdd(&t, moved[1], 1, &blob[1], err)) < 0)
        goto out;
    phase_done(params, "item blocks built", &t0);
    rc = train_rest(&t, params, out, err);
out:
    for (int s = 0; s < 2; s++) {   /* alive through blk[s], if built */
        em_rdd_release(moved[s]);
        em_vbuf_destroy(&blob[s]);
    }
    trainer_destroy(&t);
    return rc;
}
