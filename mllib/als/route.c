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
 * FORMATS: ROUTE's output: key = block key (als_int.h, 8 bytes), value = the 12-byte
 * em_rating. BUILD's output: (block key, block record) (blocks.c FORMATS). */
#include <math.h>

#include "mllib/als/als_int.h"

/* Emits one rating keyed by its block (x->cfg.side). */
static int route_one(const em__als_ctx *x, const uint8_t *p, em_emitter *out, em_err *err)
{
    em_rating r;
    memcpy(&r, p, sizeof r);
    if (r.user < 0 || r.user >= x->cfg.n[0] || r.item < 0 || r.item >= x->cfg.n[1] ||
        !isfinite(r.rating))
        return em_err_set(err, EM_EINVAL, "als: rating (%d, %d, %g) out of range (%d users, "
                          "%d items)", r.user, r.item, (double)r.rating, x->cfg.n[0],
                          x->cfg.n[1]);
    uint32_t s = x->cfg.side, b = em__als_block_of(x->cfg.seed, s, s ? r.item : r.user,
                                                   x->cfg.nblk[s]);
    uint8_t key[EM__ALS_KEY_LEN];
    em__als_key(key, b, x->salt[s][b]);
    return em_emit_kv(out, em_slice_make(key, sizeof key), em_slice_make(p, sizeof r), err);
}

/* PARTITION over the ratings dataset (FIXED 12-byte em_rating records): each rating ->
 * (block key of its side-cfg.side entity, rating). Ids out of range and non-finite
 * ratings are EM_EINVAL (bad input, not a bug). */
int em__als_fn_route(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    em__als_ctx *x = em_malloc(sizeof *x);
    em_rec_batch b;
    int rc;
    if (!x)
        return em_err_set(err, EM_ENOMEM, "als route");
    if ((rc = em__als_blob_decode(c->blob, x, err)) < 0) {
        em_free(x);
        return rc;
    }
    while ((rc = em_iter_next_batch(in, &b, err)) == 1) {
        if (b.kind != EM_REC_FIXED || b.width != sizeof(em_rating)) {
            rc = em_err_set(err, EM_EINVAL, "als route: partition %u: ratings must be FIXED "
                            "%zu-byte records (em_rating), got kind %d width %u", index,
                            sizeof(em_rating), (int)b.kind, b.width);
            break;
        }
        for (uint64_t i = 0; i < b.nrecs && rc >= 0; i++)
            rc = route_one(x, b.data + i * sizeof(em_rating), out, err);
        if (rc < 0)
            break;
    }
    em_free(x->yty);
    em_free(x);
    return rc < 0 ? rc : 0;
}

/* Reads the routed ratings of partition `index` into *r (em_malloc'd, *n of them): every
 * key must name block `index`. */
static int gather(uint32_t index, em_iter *in, em_rating **r, size_t *n, em_err *err)
{
    size_t cap = 0;
    em_rec rec;
    int rc;
    *r = NULL;
    *n = 0;
    while ((rc = em_iter_next(in, &rec, err)) == 1) {
        if (rec.key.n != EM__ALS_KEY_LEN || em__als_key_block(rec.key.p) != index ||
            rec.val.n != sizeof(em_rating))
            return em_err_set(err, EM_ECORRUPT, "als build: partition %u: record of block "
                              "%u (%zu-byte value)", index,
                              rec.key.n == EM__ALS_KEY_LEN ? em__als_key_block(rec.key.p)
                                                           : UINT32_MAX, rec.val.n);
        if (*n == cap) {
            em_rating *p = em_arr_grow(*r, &cap, *n + 1, sizeof *p);
            if (!p)
                return em_err_set(err, EM_ENOMEM, "als build: %zu ratings", *n + 1);
            *r = p;
        }
        memcpy(&(*r)[(*n)++], rec.val.p, sizeof(em_rating));
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
