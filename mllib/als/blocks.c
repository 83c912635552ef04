/* mllib/als/blocks.c - the task side of blocked ALS: routing ratings to blocks, building the
 * per-block in-link/out-link structures, shipping factors and solving normal equations.
 *
 * DESIGN (Spark's ALS, "blocked" implementation). Users and items are hashed (after
 * scrambling) into blocks. For each side, a block record holds the block's entities and, in
 * CSR, their ratings with each counterpart encoded as (source block, position in the
 * message that block sends); plus the out-links: per block of the other side, which of this
 * block's entities that block needs. A half-iteration (users from items): item factor
 * blocks joined with item out-links emit one message per (item block, user block) holding
 * each needed factor once; the messages are shuffled to user blocks, cogrouped with the user
 * block records, and each user block solves
 *     (Y_u^T C_u Y_u + [implicit] Y^T Y + lambda n_u I) x_u = Y_u^T C_u p_u
 * (explicit: C_u = I, p_u = r_u; implicit: Hu, Koren, Volinsky, "Collaborative Filtering
 * for Implicit Feedback Datasets", 2008, c = 1 + alpha |r|, p = [r > 0], with the Y^T Y
 * trick: the Gram matrix of all source factors, computed once per half-iteration; lambda n_u:
 * Zhou et al., "Large-scale Parallel Collaborative Filtering for the Netflix Prize", 2008).
 * Normal equations accumulate float factors in double (em_la_rank1_acc) and are solved by
 * Cholesky (LAPACK dposv) or NNLS for non-negative factors.
 *
 * FORMATS (host order, see als_int.h), all values of KV records keyed by a block key:
 *   rating chunk   n x {i32 dst id, i32 src id, f32 rating}
 *   block record   u32 magic "ALSB", u32 n, u32 nnz, u32 nsrc (blocks of the other side),
 *                  u32 idxbits, i32 ids[n] (ascending), u32 ptr[n+1], u32 src[nnz]
 *                  (src block << idxbits | position), f32 r[nnz], u32 ocnt[nsrc],
 *                  u32 oidx[sum ocnt] (out-links: local indices, ascending per block)
 *   out-links      u32 magic "ALSO", u32 nsrc, u32 ocnt[nsrc], u32 oidx[...] (the magic
 *                  tells it from a factor record where the two meet in one partition)
 *   factors        u32 n, u32 k, i32 ids[n], f32 f[n*k] (rows in local order)
 *   message        u32 src block, u32 cnt, u32 k, f32 f[cnt*k]
 * Every reader checks lengths before use: records cross processes through the shuffle. */
#include <math.h>
#include <stdlib.h>

#include "mllib/als/als_int.h"
#include "mllib/linalg/linalg.h"

/* ---------------------------------------------------------------- blob */

int em__als_blob(const em__als_cfg *cfg, const uint32_t *const salt[2], const double *yty,
                 em_vbuf *out)
{
    em_vbuf_clear(out);
    if (em_vbuf_append(out, cfg, sizeof *cfg) < 0 ||
        em_vbuf_append(out, salt[0], cfg->nblk[0] * sizeof(uint32_t)) < 0 ||
        em_vbuf_append(out, salt[1], cfg->nblk[1] * sizeof(uint32_t)) < 0)
        return EM_ENOMEM;
    if (cfg->has_yty &&
        em_vbuf_append(out, yty, (size_t)cfg->rank * cfg->rank * sizeof(double)) < 0)
        return EM_ENOMEM;
    return 0;
}

int em__als_blob_decode(em_slice blob, em__als_ctx *ctx, em_err *err)
{
    em__als_cfg *c = &ctx->cfg;
    ctx->yty = NULL;
    if (blob.n < sizeof *c)
        return em_err_set(err, EM_ECORRUPT, "als: context blob of %zu bytes", blob.n);
    memcpy(c, blob.p, sizeof *c);
    if (c->magic != EM__ALS_MAGIC || c->rank == 0 || c->rank > EM__ALS_MAX_RANK ||
        c->side > 1 || c->nblk[0] == 0 || c->nblk[1] == 0 ||
        c->nblk[0] > EM__ALS_MAX_BLOCKS || c->nblk[1] > EM__ALS_MAX_BLOCKS || c->n[0] < 0 ||
        c->n[1] < 0)
        return em_err_set(err, EM_ECORRUPT, "als: bad context blob");
    size_t need = sizeof *c + (c->nblk[0] + c->nblk[1]) * sizeof(uint32_t);
    size_t kk = (size_t)c->rank * c->rank * sizeof(double);
    if (blob.n != need + (c->has_yty ? kk : 0))
        return em_err_set(err, EM_ECORRUPT, "als: context blob of %zu bytes", blob.n);
    memcpy(ctx->salt[0], blob.p + sizeof *c, c->nblk[0] * sizeof(uint32_t));
    memcpy(ctx->salt[1], blob.p + sizeof *c + c->nblk[0] * 4, c->nblk[1] * sizeof(uint32_t));
    if (c->has_yty) {
        if (!(ctx->yty = em_malloc(kk)))
            return em_err_set(err, EM_ENOMEM, "als: Y^T Y");
        memcpy(ctx->yty, blob.p + need, kk);
    }
    return 0;
}

uint32_t em__als_find_salt(uint32_t block, uint32_t nblk)
{
    uint8_t key[8];
    for (uint32_t salt = 0;; salt++) {
        em__als_key(key, block, salt);
        if (em_hash64(key, 8, 0) % nblk == block)
            return salt;
    }
}

/* ---------------------------------------------------------------- route */

enum { CHUNK_BYTES = 1 << 20 };

static int flush_bucket(em__als_ctx *x, uint32_t b, em_vbuf *bk, em_emitter *out, em_err *err)
{
    uint8_t key[8];
    if (!bk->len)
        return 0;
    em__als_key(key, b, x->salt[x->cfg.side][b]);
    int rc = em_emit_kv(out, em_slice_make(key, 8), em_slice_make(bk->data, bk->len), err);
    em_vbuf_clear(bk);
    return rc;
}

int em__als_fn_route(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    em__als_ctx *ctx = em_malloc(sizeof *ctx);
    em_vbuf *bk = NULL;
    em_rec r;
    int rc;
    (void)index;
    if (!ctx)
        return em_err_set(err, EM_ENOMEM, "als route");
    if ((rc = em__als_blob_decode(c->blob, ctx, err)) < 0)
        goto out;
    uint32_t s = ctx->cfg.side, nb = ctx->cfg.nblk[s];
    if (!(bk = em_calloc(nb, sizeof *bk))) {
        rc = em_err_set(err, EM_ENOMEM, "als route: %u buckets", nb);
        goto out;
    }
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        if (r.val.n % 12) {
            rc = em_err_set(err, EM_ECORRUPT, "als route: rating chunk of %zu bytes", r.val.n);
            goto out;
        }
        for (size_t o = 0; o < r.val.n; o += 12) {
            int32_t id[2];
            memcpy(id, r.val.p + o, 8);
            if (id[0] < 0 || id[0] >= ctx->cfg.n[0] || id[1] < 0 || id[1] >= ctx->cfg.n[1]) {
                rc = em_err_set(err, EM_EINVAL, "als: rating (%d, %d) out of range", id[0],
                                id[1]);
                goto out;
            }
            uint32_t b = em__als_block_of(ctx->cfg.seed, s, id[s], nb);
            int32_t rec[2] = {id[s], id[1 - s]};
            if (em_vbuf_append(&bk[b], rec, 8) < 0 ||
                em_vbuf_append(&bk[b], r.val.p + o + 8, 4) < 0) {
                rc = em_err_set(err, EM_ENOMEM, "als route: bucket");
                goto out;
            }
            if (bk[b].len >= CHUNK_BYTES && (rc = flush_bucket(ctx, b, &bk[b], out, err)) < 0)
                goto out;
        }
    }
    for (uint32_t b = 0; rc == 0 && b < nb; b++)
        rc = flush_bucket(ctx, b, &bk[b], out, err);
out:
    for (uint32_t b = 0; bk && b < nb; b++)
        em_vbuf_destroy(&bk[b]);
    em_free(bk);
    if (ctx)
        em_free(ctx->yty);
    em_free(ctx);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- build */

/* Everything the builder allocates, freed on one path. */
typedef struct builder {
    uint32_t *dcnt;      /* per global dst id: ratings; then local index + 1 */
    uint32_t *spos;      /* per global src id: position + 1 in its block's message */
    uint32_t *scnt;      /* per src block: distinct src entities needed */
    uint32_t *fill;      /* per local dst: next CSR slot */
    uint32_t *last;      /* per src block: last local dst + 1 that linked it */
} builder;

static void builder_free(builder *b)
{
    em_free(b->dcnt);
    em_free(b->spos);
    em_free(b->scnt);
    em_free(b->fill);
    em_free(b->last);
}

/* Calls fn(ud, dst, src, rating) for every 12-byte rating of the flat buffer v. */
typedef int (*chunk_fn)(void *ud, int32_t dst, int32_t src, float r, em_err *err);
static int each_rating(em_slice v, chunk_fn fn, void *ud, em_err *err)
{
    int rc = 0;
    if (v.n % 12)
        return em_err_set(err, EM_ECORRUPT, "als build: ratings of %zu bytes", v.n);
    for (size_t o = 0; o < v.n && rc >= 0; o += 12)
        rc = fn(ud, (int32_t)em__ld32(v.p + o), (int32_t)em__ld32(v.p + o + 4),
                em__ldf(v.p + o + 8), err);
    return rc < 0 ? rc : 0;
}

typedef struct build_state {
    em__als_ctx *x;
    builder b;
    uint64_t nnz;
    uint8_t *rec;        /* the record being written */
    uint32_t *ptr, *src; /* aligned scratch copies, copied into rec at the end */
    float *rt;
    uint32_t idxbits;
} build_state;

static int count_one(void *ud, int32_t dst, int32_t src, float r, em_err *err)
{
    build_state *st = ud;
    const em__als_cfg *c = &st->x->cfg;
    (void)r;
    if (dst < 0 || dst >= c->n[c->side] || src < 0 || src >= c->n[1 - c->side])
        return em_err_set(err, EM_ECORRUPT, "als build: id (%d, %d) out of range", dst, src);
    st->b.dcnt[dst]++;
    st->b.spos[src] = 1;
    st->nnz++;
    return 0;
}

static int place_one(void *ud, int32_t dst, int32_t src, float r, em_err *err)
{
    build_state *st = ud;
    const em__als_cfg *c = &st->x->cfg;
    uint32_t e = st->b.dcnt[dst] - 1, slot = st->b.fill[e]++;
    uint32_t j = em__als_block_of(c->seed, 1 - c->side, src, c->nblk[1 - c->side]);
    (void)err;
    st->src[slot] = (st->idxbits < 32 ? j << st->idxbits : 0) | (st->b.spos[src] - 1);
    st->rt[slot] = r;
    return 0;
}

static uint32_t bits_for(uint32_t n)
{
    uint32_t b = 0;
    while ((1u << b) < n)
        b++;
    return b;
}

/* Assigns local indices to dst entities and message positions to src entities. */
static int build_index(build_state *st, uint32_t *n_out, em_err *err)
{
    const em__als_cfg *c = &st->x->cfg;
    uint32_t s = c->side, nsrc = c->nblk[1 - s], n = 0;
    for (int32_t g = 0; g < c->n[s]; g++)
        if (st->b.dcnt[g]) {
            st->ptr[n + 1] = st->b.dcnt[g];
            st->b.dcnt[g] = ++n;   /* local index + 1 */
        }
    st->ptr[0] = 0;
    for (uint32_t e = 0; e < n; e++)
        st->ptr[e + 1] += st->ptr[e];
    uint32_t maxcnt = 0;
    for (int32_t g = 0; g < c->n[1 - s]; g++)
        if (st->b.spos[g]) {
            uint32_t j = em__als_block_of(c->seed, 1 - s, g, nsrc);
            st->b.spos[g] = ++st->b.scnt[j];
            maxcnt = st->b.scnt[j] > maxcnt ? st->b.scnt[j] : maxcnt;
        }
    st->idxbits = 32 - bits_for(nsrc);
    if (st->idxbits < 32 && maxcnt > (1u << st->idxbits))
        return em_err_set(err, EM_EINVAL, "als: %u entities of one block needed by another "
                          "(max %u with %u blocks): use more blocks", maxcnt,
                          1u << st->idxbits, nsrc);
    *n_out = n;
    return 0;
}

/* Out-links: per src block j, the local dst entities that rated something in j (ascending).
 * Appends ocnt[nsrc] then the indices grouped by block to out. */
static int build_outlinks(build_state *st, uint32_t n, em_vbuf *out, em_err *err)
{
    uint32_t nsrc = st->x->cfg.nblk[1 - st->x->cfg.side];
    uint32_t *cnt = st->b.scnt, *last = st->b.last, total = 0;
    memset(cnt, 0, nsrc * sizeof *cnt);
    memset(last, 0, nsrc * sizeof *last);
    for (uint32_t e = 0; e < n; e++)
        for (uint32_t t = st->ptr[e]; t < st->ptr[e + 1]; t++) {
            uint32_t j = st->idxbits < 32 ? st->src[t] >> st->idxbits : 0;
            if (last[j] != e + 1) {
                last[j] = e + 1;
                cnt[j]++;
                total++;
            }
        }
    if (em_vbuf_append(out, cnt, nsrc * 4) < 0 || em_vbuf_reserve(out, (size_t)total * 4) < 0)
        return em_err_set(err, EM_ENOMEM, "als build: out-links");
    uint8_t *base = out->data + out->len;
    uint32_t off = 0;
    for (uint32_t j = 0; j < nsrc; j++) {   /* cnt becomes the write cursor of block j */
        uint32_t c = cnt[j];
        cnt[j] = off;
        off += c;
    }
    memset(last, 0, nsrc * sizeof *last);
    for (uint32_t e = 0; e < n; e++)
        for (uint32_t t = st->ptr[e]; t < st->ptr[e + 1]; t++) {
            uint32_t j = st->idxbits < 32 ? st->src[t] >> st->idxbits : 0;
            if (last[j] != e + 1) {
                last[j] = e + 1;
                memcpy(base + (size_t)cnt[j]++ * 4, &e, 4);
            }
        }
    out->len += (size_t)total * 4;
    return 0;
}

static int build_alloc(build_state *st, em_err *err)
{
    const em__als_cfg *c = &st->x->cfg;
    uint32_t nsrc = c->nblk[1 - c->side];
    st->b.dcnt = em_calloc((size_t)c->n[c->side] + 1, 4);
    st->b.spos = em_calloc((size_t)c->n[1 - c->side] + 1, 4);
    st->b.scnt = em_calloc(nsrc, 4);
    st->b.last = em_calloc(nsrc, 4);
    if (!st->b.dcnt || !st->b.spos || !st->b.scnt || !st->b.last)
        return em_err_set(err, EM_ENOMEM, "als build: index of %d + %d ids", c->n[0], c->n[1]);
    return 0;
}

/* Block record from the ratings of one block, a flat array of rating-chunk records
 * (see FORMATS). */
static int build_record(build_state *st, em_slice v, em_vbuf *out, em_err *err)
{
    const em__als_cfg *c = &st->x->cfg;
    uint32_t n = 0, nsrc = c->nblk[1 - c->side];
    int rc;
    if ((rc = build_alloc(st, err)) < 0 || (rc = each_rating(v, count_one, st, err)) < 0)
        return rc;
    if (st->nnz >= UINT32_MAX)
        return em_err_set(err, EM_EINVAL, "als: %llu ratings in one block: use more blocks",
                          (unsigned long long)st->nnz);
    st->ptr = em_calloc((size_t)c->n[c->side] + 2, 4);
    st->src = em_malloc(st->nnz * 4 + 4);
    st->rt = em_malloc(st->nnz * 4 + 4);
    if (!st->ptr || !st->src || !st->rt)
        return em_err_set(err, EM_ENOMEM, "als build: %llu ratings",
                          (unsigned long long)st->nnz);
    if ((rc = build_index(st, &n, err)) < 0)
        return rc;
    if (!(st->b.fill = em_malloc((size_t)n * 4 + 4)))
        return em_err_set(err, EM_ENOMEM, "als build: %u entities", n);
    memcpy(st->b.fill, st->ptr, (size_t)n * 4);
    if ((rc = each_rating(v, place_one, st, err)) < 0)
        return rc;
    uint32_t hdr[5] = {EM__ALS_BLOCK_MAGIC, n, (uint32_t)st->nnz, nsrc, st->idxbits};
    if (em_vbuf_reserve(out, 20 + (size_t)n * 8 + 4 + st->nnz * 8) < 0)
        return em_err_set(err, EM_ENOMEM, "als build: record");
    em_vbuf_append(out, hdr, sizeof hdr);
    for (int32_t g = 0; g < c->n[c->side]; g++)   /* ids ascending = local order */
        if (st->b.dcnt[g])
            em_vbuf_append(out, &g, 4);
    em_vbuf_append(out, st->ptr, ((size_t)n + 1) * 4);
    em_vbuf_append(out, st->src, st->nnz * 4);
    em_vbuf_append(out, st->rt, st->nnz * 4);
    return build_outlinks(st, n, out, err);
}

/* PARTITION function over partition_by(routed chunks): partition b holds the rating chunks
 * of block b (records are borrowed until the next one: they are copied into one flat
 * buffer, the only copy the build makes), from which the block record is built and
 * emitted under the block's key. A shuffle that only concatenates, instead of
 * group_by_key, spares the reducer's copy and the em_list of chunks. */
int em__als_fn_build(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    build_state st = {0};
    em_vbuf rec, all;
    em_rec r;
    uint8_t key[8];
    bool any = false;
    int rc;
    em_vbuf_init(&rec);
    em_vbuf_init(&all);
    if (!(st.x = em_malloc(sizeof *st.x)))
        return em_err_set(err, EM_ENOMEM, "als build");
    if ((rc = em__als_blob_decode(c->blob, st.x, err)) < 0)
        goto out;
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        if (r.key.n != 8 || em__als_key_block(r.key.p) >= st.x->cfg.nblk[st.x->cfg.side] ||
            (any && memcmp(key, r.key.p, 8) != 0)) {
            rc = em_err_set(err, EM_ECORRUPT, "als build: partition %u: bad or second block "
                            "key", index);
            goto out;
        }
        if (!any)
            memcpy(key, r.key.p, 8);
        any = true;
        if (em_vbuf_append(&all, r.val.p, r.val.n) < 0) {
            rc = em_err_set(err, EM_ENOMEM, "als build: %zu bytes of ratings", all.len);
            goto out;
        }
    }
    if (rc == 0 && any &&
        (rc = build_record(&st, em_slice_make(all.data, all.len), &rec, err)) == 0)
        rc = em_emit_kv(out, em_slice_make(key, 8), em_slice_make(rec.data, rec.len), err);
out:
    em_vbuf_destroy(&all);
    builder_free(&st.b);
    em_free(st.ptr);
    em_free(st.src);
    em_free(st.rt);
    if (st.x)
        em_free(st.x->yty);
    em_free(st.x);
    em_vbuf_destroy(&rec);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- block record view */

/* Validates a block record's framing (not every index: the solve checks those it uses). */
int em__als_block_view(em_slice v, em__als_blockview *b, em_err *err)
{
    if (v.n < 20 || em__ld32(v.p) != EM__ALS_BLOCK_MAGIC)
        return em_err_set(err, EM_ECORRUPT, "als: bad block record (%zu bytes)", v.n);
    b->n = em__ld32(v.p + 4);
    b->nnz = em__ld32(v.p + 8);
    b->nsrc = em__ld32(v.p + 12);
    b->idxbits = em__ld32(v.p + 16);
    uint64_t need = 20 + (uint64_t)b->n * 8 + 4 + (uint64_t)b->nnz * 8 + (uint64_t)b->nsrc * 4;
    if (b->nsrc == 0 || b->nsrc > EM__ALS_MAX_BLOCKS || b->idxbits > 32 || need > v.n)
        return em_err_set(err, EM_ECORRUPT, "als: block record of %zu bytes (header says "
                          "%llu+)", v.n, (unsigned long long)need);
    b->ids = v.p + 20;
    b->ptr = b->ids + (size_t)b->n * 4;
    b->src = b->ptr + ((size_t)b->n + 1) * 4;
    b->r = b->src + (size_t)b->nnz * 4;
    b->ocnt = b->r + (size_t)b->nnz * 4;
    b->oidx = b->ocnt + (size_t)b->nsrc * 4;
    uint64_t tot = 0;
    for (uint32_t j = 0; j < b->nsrc; j++)
        tot += em__ld32(b->ocnt + (size_t)j * 4);
    if (need + tot * 4 != v.n || em__ld32(b->ptr + (size_t)b->n * 4) != b->nnz)
        return em_err_set(err, EM_ECORRUPT, "als: block record out-links do not add up");
    b->olen = (size_t)b->nsrc * 4 + (size_t)tot * 4;
    return 0;
}

int em__als_fn_outlinks(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em__als_blockview b;
    em_vbuf o;
    (void)c;
    int rc = em__als_block_view(in->val, &b, err);
    if (rc < 0)
        return rc;
    em_vbuf_init(&o);
    if (em_vbuf_append_u32le(&o, EM__ALS_OUTL_MAGIC) < 0 ||
        em_vbuf_append_u32le(&o, b.nsrc) < 0 || em_vbuf_append(&o, b.ocnt, b.olen) < 0)
        rc = em_err_set(err, EM_ENOMEM, "als: out-links");
    else
        rc = em_emit_val(out, em_slice_make(o.data, o.len), err);
    em_vbuf_destroy(&o);
    return rc;
}

void em_als_init_factor(uint64_t seed, int side, int32_t id, int rank, bool nonnegative,
                        float *out)
{
    em_rng r;
    double nrm = 0;
    em_rng_seed(&r, em_mix64(seed ^ (0x494e4954ULL + (uint64_t)side)) +
                        (uint64_t)(uint32_t)id * 0x9e3779b97f4a7c15ULL);
    for (int k = 0; k < rank; k++) {
        double g = em_rng_gaussian(&r);
        out[k] = (float)(nonnegative ? fabs(g) : g);
        nrm += (double)out[k] * out[k];
    }
    nrm = sqrt(nrm);
    for (int k = 0; k < rank && nrm > 0; k++)
        out[k] = (float)(out[k] / nrm);
}

int em__als_fn_init(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em__als_ctx *x = em_malloc(sizeof *x);
    em__als_blockview b;
    em_vbuf o;
    int rc;
    em_vbuf_init(&o);
    if (!x)
        return em_err_set(err, EM_ENOMEM, "als init");
    if ((rc = em__als_blob_decode(c->blob, x, err)) < 0 ||
        (rc = em__als_block_view(in->val, &b, err)) < 0)
        goto out;
    uint32_t k = x->cfg.rank, hdr[2] = {b.n, k};
    size_t fsz = (size_t)b.n * k * 4;
    if (em_vbuf_reserve(&o, 8 + (size_t)b.n * 4 + fsz) < 0) {
        rc = em_err_set(err, EM_ENOMEM, "als init: %u factors", b.n);
        goto out;
    }
    em_vbuf_append(&o, hdr, 8);
    em_vbuf_append(&o, b.ids, (size_t)b.n * 4);
    float *f = (float *)(void *)(o.data + o.len);   /* vbuf data is malloc-aligned */
    for (uint32_t e = 0; e < b.n; e++) {
        float tmp[EM__ALS_MAX_RANK];
        em_als_init_factor(x->cfg.seed, (int)x->cfg.side, (int32_t)em__ld32(b.ids + e * 4),
                           (int)k, x->cfg.nonnegative, tmp);
        memcpy((uint8_t *)f + (size_t)e * k * 4, tmp, (size_t)k * 4);
    }
    o.len += fsz;
    rc = em_emit_val(out, em_slice_make(o.data, o.len), err);
out:
    em_vbuf_destroy(&o);
    em_free(x->yty);
    em_free(x);
    return rc;
}
