/* mllib/als/route.c - the executors' side of building blocks from a ratings dataset
 * (em_als_train_rdd, train.c): ROUTE keys each rating by the block of its user (or item),
 * the engine's partition_by moves the ratings of block b to partition b, and BUILD turns
 * the partition into block b's record where it will be cached.
 *
 * DESIGN: a block record depends only on the ratings of its own entities (blocks.c: the
 * message positions are ranks among the source entities this block links to, the
 * out-links are this block's entities per source block), so each partition builds its
 * record alone, with the same code the driver-side path runs (em__als_build_block).
 * ORDER: partition_by's reduce side streams map output after map output in map order
 * (engine/exec/reduce.c, NO_REDUCE), and ROUTE is a narrow map, so partition b sees its
 * ratings in dataset order: the CSR rows are in the same order as the driver-side build
 * of the same ratings array, and the trained factors are bit-identical.
 *
 * FORMATS: ROUTE's output: key = block key (als_int.h, 8 bytes), value = em_rating[]
 * (12 bytes each, host order), a run of that block's ratings in input order. BUILD's output: (block key, block record) (blocks.c FORMATS). */
#include <math.h>

#include "mllib/als/als_int.h"

/* Route buffers: per destination block, ratings waiting to be emitted as one record. */
typedef struct router {
    em__als_ctx x;
    em_vbuf *buf;          /* [nblk of the side] */
    size_t flush_bytes;    /* a buffer reaching this is emitted */
} router;

static int flush_block(router *rt, uint32_t b, em_emitter *out, em_err *err)
{
    uint32_t s = rt->x.cfg.side;
    uint8_t key[EM__ALS_KEY_LEN];
    if (rt->buf[b].len == 0)
        return 0;
    em__als_key(key, b, rt->x.salt[s][b]);
    int rc = em_emit_kv(out, em_slice_make(key, sizeof key),
                        em_slice_make(rt->buf[b].data, rt->buf[b].len), err);
    em_vbuf_clear(&rt->buf[b]);
    return rc;
}

/* Appends one rating to its block's buffer (emitted when full). */
static int route_one(router *rt, const uint8_t *p, em_emitter *out, em_err *err)
{
    const em__als_cfg *c = &rt->x.cfg;
    em_rating r;
    memcpy(&r, p, sizeof r);
    if (r.user < 0 || r.user >= c->n[0] || r.item < 0 || r.item >= c->n[1] ||
        !isfinite(r.rating))
        return em_err_set(err, EM_EINVAL, "als: rating (%d, %d, %g) out of range (%d users, "
                          "%d items)", r.user, r.item, (double)r.rating, c->n[0], c->n[1]);
    uint32_t s = c->side, b = em__als_block_of(c->seed, s, s ? r.item : r.user, c->nblk[s]);
    if (em_vbuf_append(&rt->buf[b], p, sizeof r) < 0)
        return em_err_set(err, EM_ENOMEM, "als route: buffer of block %u", b);
    return rt->buf[b].len >= rt->flush_bytes ? flush_block(rt, b, out, err) : 0;
}

/* PARTITION over the ratings dataset (FIXED 12-byte em_rating records): the ratings of
 * each side-cfg.side block, in input order, as records (block key, em_rating[]) of at most
 * about flush_bytes (64 MiB over the blocks, 4 KiB..1 MiB each): one shuffle record per
 * thousands of ratings instead of one per rating. Ids out of range and non-finite ratings
 * are EM_EINVAL (bad input, not a bug). */
int em__als_fn_route(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    router *rt = em_calloc(1, sizeof *rt);
    em_rec_batch b;
    int rc;
    if (!rt)
        return em_err_set(err, EM_ENOMEM, "als route");
    if ((rc = em__als_blob_decode(c->blob, &rt->x, err)) < 0)
        goto out;
    uint32_t nb = rt->x.cfg.nblk[rt->x.cfg.side];
    size_t fb = ((size_t)64 << 20) / nb;
    rt->flush_bytes = fb > ((size_t)1 << 20) ? (size_t)1 << 20 : fb < 4096 ? 4096 : fb;
    if (!(rt->buf = em_calloc(nb, sizeof *rt->buf))) {
        rc = em_err_set(err, EM_ENOMEM, "als route: %u buffers", nb);
        goto out;
    }
    while ((rc = em_iter_next_batch(in, &b, err)) == 1) {
        if (b.kind != EM_REC_FIXED || b.width != sizeof(em_rating)) {
            rc = em_err_set(err, EM_EINVAL, "als route: partition %u: ratings must be FIXED "
                            "%zu-byte records (em_rating), got kind %d width %u", index,
                            sizeof(em_rating), (int)b.kind, b.width);
            break;
        }
        for (uint64_t i = 0; i < b.nrecs && rc >= 0; i++)
            rc = route_one(rt, b.data + i * sizeof(em_rating), out, err);
        if (rc < 0)
            break;
    }
    for (uint32_t k = 0; rc >= 0 && k < nb; k++)
        rc = flush_block(rt, k, out, err);
out:
    for (uint32_t k = 0; rt->buf && k < rt->x.cfg.nblk[rt->x.cfg.side]; k++)
        em_vbuf_destroy(&rt->buf[k]);
    em_free(rt->buf);
    em_free(rt->x.yty);
    em_free(rt);
    return rc < 0 ? rc : 0;
}

/* Reads the routed ratings of partition `index` into *r (em_malloc'd, *n of them): every
 * key must name block `index`, every value hold whole ratings. */
static int gather(uint32_t index, em_iter *in, em_rating **r, size_t *n, em_err *err)
{
    size_t cap = 0;
    em_rec rec;
    int rc;
    *r = NULL;
    *n = 0;
    while ((rc = em_iter_next(in, &rec, err)) == 1) {
        size_t m = rec.val.n / sizeof(em_rating);
        if (rec.key.n != EM__ALS_KEY_LEN || em__als_key_block(rec.key.p) != index ||
            rec.val.n % sizeof(em_rating))
            return em_err_set(err, EM_ECORRUPT, "als build: partition %u: record of block "
                              "%u (%zu-byte value)", index,
                              rec.key.n == EM__ALS_KEY_LEN ? em__als_key_block(rec.key.p)
                                                           : UINT32_MAX, rec.val.n);
        if (*n + m > cap) {
            em_rating *p = em_arr_grow(*r, &cap, *n + m, sizeof *p);
            if (!p)
                return em_err_set(err, EM_ENOMEM, "als build: %zu ratings", *n + m);
            *r = p;
        }
        memcpy(*r + *n, rec.val.p, rec.val.n);
        *n += m;
    }
    return rc;
}

/* PARTITION over partition_by(ROUTE): partition b holds the ratings of block b; emits
 * (block key, block record), or nothing when the partition is empty. */
int em__als_fn_build(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    em__als_ctx *x = em_malloc(sizeof *x);
    em_rating *r = NULL;
    size_t n = 0;
    em_vbuf rec;
    int rc;
    em_vbuf_init(&rec);
    if (!x)
        return em_err_set(err, EM_ENOMEM, "als build");
    x->yty = NULL;
    if ((rc = em__als_blob_decode(c->blob, x, err)) < 0 ||
        (rc = gather(index, in, &r, &n, err)) < 0) {
        em_err_prefix(err, "als build: partition %u", index);
        goto out;
    }
    uint32_t s = x->cfg.side;
    if (index >= x->cfg.nblk[s]) {
        rc = em_err_set(err, EM_ECORRUPT, "als build: partition %u of %u blocks", index,
                        x->cfg.nblk[s]);
        goto out;
    }
    if (n == 0)
        goto out;
    if ((rc = em__als_build_block(&x->cfg, r, n, index, &rec, err)) < 0)
        goto out;
    em_free(r);   /* the record is built: the ratings are not needed while emitting */
    r = NULL;
    uint8_t key[EM__ALS_KEY_LEN];
    em__als_key(key, index, x->salt[s][index]);
    if (rec.len)
        rc = em_emit_kv(out, em_slice_make(key, sizeof key), em_slice_make(rec.data, rec.len),
                        err);
out:
    em_vbuf_destroy(&rec);
    em_free(r);
    em_free(x->yty);
    em_free(x);
    return rc;
}
