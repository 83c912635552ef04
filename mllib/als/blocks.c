/* mllib/als/blocks.c - the task side of blocked ALS: routing ratings to blocks, building the
 * per-block in-link/out-link structures, shipping factors and solving normal equations.
 *
 * DESIGN (Spark's ALS, "blocked" implementation). Users and items are hashed (after
 * scrambling) into blocks. For each side, a block record holds the block's entities and, in
 * CSR, their ratings with each counterpart encoded as (source block, position in the
 * message that block sends); plus the out-links: per block of the other side, which of this
 * block's entities that block needs. A half-iteration (users from items): item factor
 * blocks joined with item out-links emit one message per (item block, user block) holding
 * each needed factor once; the messages are shuffled to user blocks, zipped with the user
 * block records (train.c), and each user block solves
 *     (Y_u^T C_u Y_u + [implicit] Y^T Y + lambda n_u I) x_u = Y_u^T C_u p_u
 * (explicit: C_u = I, p_u = r_u; implicit: Hu, Koren, Volinsky, "Collaborative Filtering
 * for Implicit Feedback Datasets", 2008, c = 1 + alpha |r|, p = [r > 0], with the Y^T Y
 * trick: the Gram matrix of all source factors, computed once per half-iteration; lambda n_u:
 * Zhou et al., "Large-scale Parallel Collaborative Filtering for the Netflix Prize", 2008).
 * Normal equations accumulate float factors in double (em_la_rank1_acc) and are solved by
 * Cholesky (LAPACK dposv) or NNLS for non-negative factors.
 *
 * FORMATS (host order, see als_int.h), all values of KV records keyed by a block key:
 *   block record   u32 magic "ALSB", u32 n, u32 nnz, u32 nsrc (blocks of the other side),
 *                  u32 idxbits, i32 ids[n] (ascending), u32 ptr[n+1], nnz links
 *                  {u32 src (src block << idxbits | position), f32 r} (pairs: the
 *                  build's placement writes one cursor line per row instead of two;
 *                  a row's links in input order, by read chunk first when the block is
 *                  solved chunk by chunk and the row was not nearly in chunk order:
 *                  chunk_order, als_int.h em__als_chunked),
 *                  u32 ocnt[nsrc], u32 oidx[sum ocnt] (out-links: local indices,
 *                  ascending per block)
 *   out-links      u32 magic "ALSO", u32 nsrc, u32 ocnt[nsrc], u32 oidx[...] (the magic
 *                  tells it from a factor record where the two meet in one partition)
 *   factors        u32 n, u32 k, i32 ids[n], f32 f[n*k] (rows in local order)
 *   message        u32 src block, u32 cnt, u32 k, f32 f[cnt*k]
 * Every reader checks lengths before use: records cross processes through the shuffle. */
#include <math.h>
#include <pthread.h>
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

/* ---------------------------------------------------------------- build (driver side)
 * The block records are built on the driver, straight from its parsed ratings, one thread
 * per block: routing the ratings through the shuffle (12 bytes per rating per side, zstd
 * compressed, spilled, merged and decompressed) cost about as much CPU as ten iterations
 * at 100M ratings. Each record is then handed to the executors as a broadcast that the
 * TAKE task emits under the block's key (train.c). */

/* Everything the builder allocates, freed on one path. */
typedef struct builder {
    uint32_t *dcnt;      /* per global dst id: ratings; then local index + 1 */
    uint32_t *spos;      /* per global src id: nonzero when linked; after build_index the
                          * link (block, position in its block's message) */
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

typedef struct build_state {
    const em__als_cfg *c;
    const em__als_seg *seg;  /* the ratings, in segments (borrowed) */
    size_t nseg;
    const uint32_t *dblk;    /* block of every dst id of this side */
    const uint32_t *sblk;    /* block of every src id (of the other side) */
    uint32_t block;          /* the block being built */
    builder b;
    uint64_t nnz;
    uint32_t *ptr, *src;     /* point into the record being written */
    float *rt;
    uint32_t idxbits;
    bool all;                /* every rating of seg is this block's (count_pass) */
} build_state;

/* (dst, src) of a rating for the side being built. */
static inline void dst_src(uint32_t side, const em_rating *q, int32_t *dst, int32_t *src)
{
    *dst = side ? q->item : q->user;
    *src = side ? q->user : q->item;
}

static int count_pass(build_state *st, em_err *err)
{
    const em__als_cfg *c = st->c;
    uint32_t side = c->side, block = st->block;
    /* locals: stores through st would alias the tables and keep every count in memory */
    const uint32_t *dblk = st->dblk;
    uint32_t *dcnt = st->b.dcnt, *spos = st->b.spos;
    int32_t nd = c->n[side], ns = c->n[1 - side];
    size_t before = 0, nnz = 0;
    for (size_t g = 0; g < st->nseg; before += st->seg[g++].n) {
        const em_rating *in = st->seg[g].r;
        for (size_t t = 0; t < st->seg[g].n; t++) {
            int32_t dst, src;
            dst_src(side, &in[t], &dst, &src);
            if (dst < 0 || dst >= nd || src < 0 || src >= ns)
                return em_err_set(err, EM_EINVAL, "als build: rating %zu (%d, %d) out of "
                                  "range", before + t, dst, src);
            if (dblk[dst] != block)
                continue;
            dcnt[dst]++;
            spos[src] = 1;
            nnz++;
        }
    }
    st->nnz = nnz;
    st->all = nnz == before;
    return 0;
}

/* Puts one rating of local dst entity e into its row's next CSR slot. */
static inline void place_one(build_state *st, uint32_t e, uint32_t enc, float r)
{
    uint32_t slot = st->b.fill[e]++;
    st->src[2 * (size_t)slot] = enc;
    st->rt[2 * (size_t)slot] = r;
}

/* The link of src entity g (build_index made spos[g] the link of every linked g). */
static inline uint32_t link_of(const build_state *st, int32_t g)
{
    return st->b.spos[g];
}

/* Placement in input order, rating by rating; all: every rating is this block's (the
 * executors' build), so the block lookup is skipped. */
static inline void place_in_order(build_state *st, const em_rating *in, size_t n, bool all)
{
    uint32_t side = st->c->side;
    for (size_t t = 0; t < n; t++) {
        int32_t dst, src;
        dst_src(side, &in[t], &dst, &src);
        if (all || st->dblk[dst] == st->block)
            place_one(st, st->b.dcnt[dst] - 1, link_of(st, src), in[t].rating);
    }
}

/* One body, specialized by the compiler for a constant all, so the executors' build carries
 * no per-rating test (CPU per scale-1 block measured the same as two written-out loops). */
static void place_direct(build_state *st, const em_rating *in, size_t n)
{
    if (st->all)
        place_in_order(st, in, n, true);
    else
        place_in_order(st, in, n, false);
}

/* WHY bucketed placement: a row's next slot is a write cursor, and with the ratings in no
 * order by dst (the user side of a file in random line order; any side whose rows are long
 * and interleaved) every rating writes to another row's cursor: at 240k rows per block the
 * cursors' cache lines were 30 MB (15 MB since the links are (src, r) pairs), so nearly
 * every write missed the caches (user blocks of a random-order file: 9.2 s against 4.8 s
 * for the file grouped by user, Zen 1 class machine). So the ratings go a slice at a time:
 * stably scattered by bucket of about 2^PLACE_BUCKET_BITS rows (their cursors 64 KiB,
 * within L2), then placed bucket by bucket. A bucket is a range of global ids, not of local
 * rows: the scatter then reads no per-id table at random (the local index is looked up in
 * the last pass, within the bucket's range; 1.9-2.0 -> 1.3-1.6 CPU s for a 49M-rating user
 * block in random order at scale 1). The order within a row stays the input order (a stable
 * scatter), so the record is the same bytes. Slices whose head is nearly in row order are
 * placed directly, as are blocks of few rows (their cursors mostly fit the caches: the 8.9k
 * rows of an item block at scale 1 write 570 KB of cursor lines; bucketing them measured
 * no faster). */
enum {
    PLACE_BUCKET_BITS = 10,          /* 1024 rows per bucket */
    PLACE_MIN_ROWS = 16384,          /* fewer rows: direct (1 MiB of cursors) */
    PLACE_SLICE = 1 << 22            /* ratings per slice: 4M, 64 MiB of scratch */
};

typedef struct place_rec {
    uint32_t d, enc;   /* global dst id, link */
    float r;
} place_rec;

static void place_bucketed(build_state *st, uint32_t shift, const em_rating *in, size_t cnt,
                           uint32_t *ebuf, place_rec *tmp, uint32_t *bpos)
{
    uint32_t side = st->c->side, nb = ((uint32_t)st->c->n[side] >> shift) + 1;
    for (size_t a = 0; a < cnt; a += PLACE_SLICE) {
        size_t m = cnt - a < PLACE_SLICE ? cnt - a : PLACE_SLICE;
        const em_rating *q = in + a;
        /* a probe of the slice's head: (nearly) in row order, as the side a file is
         * grouped by (a block's segments join the runs of several map tasks), goes
         * directly, in one pass: its cursors advance in step */
        size_t probe = m < 4096 ? m : 4096, desc = 0, seen = 0;
        int32_t prev = -1;
        for (size_t t = 0; t < probe; t++) {
            int32_t dst, src;
            dst_src(side, &q[t], &dst, &src);
            if (st->dblk[dst] == st->block) {
                desc += dst < prev;
                prev = dst;
                seen++;
            }
        }
        if (desc * 64 <= seen) {
            place_direct(st, q, m);
            continue;
        }
        /* buckets of global ids (local indices ascend with them): the scatter reads no
         * per-id table at random, the rows' local indices are looked up bucket by bucket */
        memset(bpos, 0, (size_t)(nb + 1) * sizeof *bpos);
        for (size_t t = 0; t < m; t++) {
            int32_t dst, src;
            dst_src(side, &q[t], &dst, &src);
            uint32_t d = st->all || st->dblk[dst] == st->block ? (uint32_t)dst : UINT32_MAX;
            ebuf[t] = d;
            if (d != UINT32_MAX)
                bpos[(d >> shift) + 1]++;
        }
        for (uint32_t b = 0; b < nb; b++)   /* bpos[b] = where bucket b starts */
            bpos[b + 1] += bpos[b];
        for (size_t t = 0; t < m; t++) {
            uint32_t d = ebuf[t];
            if (d == UINT32_MAX)
                continue;
            int32_t dst, src;
            dst_src(side, &q[t], &dst, &src);
            tmp[bpos[d >> shift]++] = (place_rec){d, link_of(st, src), q[t].rating};
        }
        size_t total = bpos[nb - 1];   /* after the scatter: the end of the last bucket */
        for (size_t k = 0; k < total; k++)
            place_one(st, st->b.dcnt[tmp[k].d] - 1, tmp[k].enc, tmp[k].r);
    }
}

/* Places the ratings of the block's n local rows into CSR order (input order within a
 * row). */
static void place_pass(build_state *st, uint32_t n)
{
    size_t most = 0;
    for (size_t g = 0; g < st->nseg; g++)
        most = st->seg[g].n > most ? st->seg[g].n : most;
    size_t sl = most < PLACE_SLICE ? most : PLACE_SLICE;
    uint32_t *ebuf = NULL, *bpos = NULL;
    place_rec *tmp = NULL;
    /* a bucket spans 2^shift global ids, about PLACE_BUCKET rows of this block's n among
     * the side's nd ids (hashed evenly over the blocks) */
    uint32_t nd = (uint32_t)st->c->n[st->c->side], shift = PLACE_BUCKET_BITS;
    while (shift < 31 && ((uint64_t)n << (shift + 1 - PLACE_BUCKET_BITS)) <= nd)
        shift++;
    if (n >= PLACE_MIN_ROWS) {
        ebuf = em_malloc(sl * sizeof *ebuf + 4);
        tmp = em_malloc(sl * sizeof *tmp + 4);
        bpos = em_malloc((((size_t)nd >> shift) + 2) * sizeof *bpos);
    }
    bool bucketed = ebuf && tmp && bpos;   /* out of memory: the direct way */
    for (size_t g = 0; g < st->nseg; g++)
        if (bucketed)
            place_bucketed(st, shift, st->seg[g].r, st->seg[g].n, ebuf, tmp, bpos);
        else
            place_direct(st, st->seg[g].r, st->seg[g].n);
    em_free(ebuf);
    em_free(tmp);
    em_free(bpos);
}

/* Orders each row's links by read chunk (als_int.h em__als_chunk_shift), stably: a counting
 * sort per row. Nothing to do when the solve will not go chunk by chunk
 * (em__als_chunked: the user side at Netflix scale), nor for a row nearly in chunk order
 * already (at most one descent per 64 links: a row in ascending source id, as the item
 * side of a file grouped by user, descends only where the messages' chunk boundaries
 * fall at slightly different ids; the solve then reads such a link one pass late, from
 * the chunk before). Out of memory leaves the input order, which the solve reads as
 * correctly, only slower. Needs scnt (per source block: its message's rows) as
 * build_index left it.
 * WHY four quarters: a row's links fall in a few chunks, so consecutive links mostly bump
 * the same counter or cursor, and each increment waited on the store of the one before
 * (about 9 ns per link, 0.45 s per item block at scale 1). Each quarter of the row has
 * its own counts and cursors, and the quarters are walked side by side: four independent
 * chains. Quarter q's links of a chunk go after those of quarters < q: still stable. */
enum { ORDER_LANES = 4 };

static void chunk_order(build_state *st, uint32_t n)
{
    const em__als_cfg *c = st->c;
    uint32_t nsrc = c->nblk[1 - c->side], sh = em__als_chunk_shift(c->rank, nsrc);
    uint32_t mask = st->idxbits >= 32 ? UINT32_MAX : (1u << st->idxbits) - 1, most = 0;
    uint32_t nch = em__als_chunk_count(st->b.scnt, nsrc, sh);
    if (!em__als_chunked(n, st->nnz, nch, c->rank))
        return;
    for (uint32_t e = 0; e < n; e++)
        most = st->ptr[e + 1] - st->ptr[e] > most ? st->ptr[e + 1] - st->ptr[e] : most;
    uint32_t *at = em_malloc((size_t)nch * ORDER_LANES * 4);
    uint32_t *ch = at ? em_malloc((size_t)most * 4 + 4) : NULL;
    uint64_t *tmp = ch ? em_malloc((size_t)most * 8 + 8) : NULL;
    for (uint32_t e = 0; tmp && e < n; e++) {
        uint32_t t0 = st->ptr[e], m = st->ptr[e + 1] - t0, desc = 0;
        uint32_t *lk = st->src + 2 * (size_t)t0;   /* (src, r) pairs */
        for (uint32_t t = 0; t < m; t++) {
            ch[t] = (lk[2 * (size_t)t] & mask) >> sh;
            desc += t > 0 && ch[t] < ch[t - 1];
        }
        if ((uint64_t)desc * 64 <= m)
            continue;
        /* quarters [q * w, (q + 1) * w), the last one to m */
        uint32_t w = m / ORDER_LANES, lo[ORDER_LANES];
        for (uint32_t q = 0; q < ORDER_LANES; q++)
            lo[q] = q * w;
        memset(at, 0, (size_t)nch * ORDER_LANES * 4);
        for (uint32_t i = 0; i < w; i++)
            for (uint32_t q = 0; q < ORDER_LANES; q++)
                at[q * nch + ch[lo[q] + i]]++;
        for (uint32_t t = ORDER_LANES * w; t < m; t++)
            at[(ORDER_LANES - 1) * nch + ch[t]]++;
        for (uint32_t k = 0, run = 0; k < nch; k++)   /* counts become cursors */
            for (uint32_t q = 0; q < ORDER_LANES; q++) {
                uint32_t v = at[q * nch + k];
                at[q * nch + k] = run;
                run += v;
            }
        for (uint32_t i = 0; i < w; i++)   /* a pair is copied whole (may be 4-aligned) */
            for (uint32_t q = 0; q < ORDER_LANES; q++) {
                uint32_t t = lo[q] + i;
                memcpy(&tmp[at[q * nch + ch[t]]++], lk + 2 * (size_t)t, 8);
            }
        for (uint32_t t = ORDER_LANES * w; t < m; t++)
            memcpy(&tmp[at[(ORDER_LANES - 1) * nch + ch[t]]++], lk + 2 * (size_t)t, 8);
        memcpy(lk, tmp, (size_t)m * 8);
    }
    em_free(tmp);
    em_free(ch);
    em_free(at);
}

static uint32_t bits_for(uint32_t n)
{
    uint32_t b = 0;
    while ((1u << b) < n)
        b++;
    return b;
}

/* Assigns local indices to dst entities (n of them) and message positions to src
 * entities; fills ptr[0..n]. */
static int build_index(build_state *st, em_err *err)
{
    const em__als_cfg *c = st->c;
    uint32_t s = c->side, nsrc = c->nblk[1 - s], e = 0;
    st->ptr[0] = 0;
    for (int32_t g = 0; g < c->n[s]; g++)
        if (st->b.dcnt[g]) {
            st->ptr[e + 1] = st->ptr[e] + st->b.dcnt[g];
            st->b.dcnt[g] = ++e;   /* local index + 1 */
        }
    uint32_t maxcnt = 0;
    for (int32_t g = 0; g < c->n[1 - s]; g++)
        if (st->b.spos[g]) {
            uint32_t j = st->sblk[g];
            st->b.spos[g] = ++st->b.scnt[j];
            maxcnt = st->b.scnt[j] > maxcnt ? st->b.scnt[j] : maxcnt;
        }
    st->idxbits = 32 - bits_for(nsrc);
    if (st->idxbits < 32 && maxcnt > (1u << st->idxbits))
        return em_err_set(err, EM_EINVAL, "als: %u entities of one block needed by another "
                          "(max %u with %u blocks): use more blocks", maxcnt,
                          1u << st->idxbits, nsrc);
    /* spos[g] becomes g's link (its block's index, its position in that block's message):
     * the placement then reads one table per rating instead of two (sblk and spos, each of
     * the other side's size: for the item side, 2 x 1.9 MB read at random at scale 1) */
    for (int32_t g = 0; g < c->n[1 - s]; g++)
        if (st->b.spos[g])
            st->b.spos[g] = (st->idxbits < 32 ? st->sblk[g] << st->idxbits : 0) |
                            (st->b.spos[g] - 1);
    return 0;
}

/* build_outlinks for at most 32 src blocks, the same bytes: one pass over the links makes
 * each row's set of src blocks (a bit mask, kept in st->b.fill, which the placement no
 * longer needs) and the per-block counts, a second pass over the n masks writes the rows.
 * The general loop passes over every link twice, with a branch per link (a fifth of the
 * build's CPU with 2 blocks per side at scale 1). */
static size_t outlinks_masked(build_state *st, uint32_t n, uint8_t *p)
{
    uint32_t nsrc = st->c->nblk[1 - st->c->side], sh = st->idxbits, total = 0;
    uint32_t *cnt = st->b.scnt, *mask = st->b.fill;
    const uint32_t *src = st->src, *ptr = st->ptr;   /* link t at src[2 t] (FORMATS) */
    for (uint32_t e = 0; e < n; e++) {
        uint32_t m = 0;
        for (uint32_t t = ptr[e]; t < ptr[e + 1]; t++)
            m |= 1u << (src[2 * (size_t)t] >> sh);
        mask[e] = m;
        for (uint32_t b = m; b; b &= b - 1)
            cnt[__builtin_ctz(b)]++;
    }
    memcpy(p, cnt, nsrc * 4);
    uint8_t *base = p + (size_t)nsrc * 4;
    for (uint32_t j = 0; j < nsrc; j++) {   /* cnt becomes the write cursor of block j */
        uint32_t c = cnt[j];
        cnt[j] = total;
        total += c;
    }
    for (uint32_t e = 0; e < n; e++)
        for (uint32_t b = mask[e]; b; b &= b - 1)
            memcpy(base + (size_t)cnt[__builtin_ctz(b)]++ * 4, &e, 4);
    return (size_t)nsrc * 4 + (size_t)total * 4;
}

/* Out-links: per src block j, the local dst entities that rated something in j (ascending).
 * Writes ocnt[nsrc] then the indices grouped by block at p (space reserved); returns the
 * bytes written. */
static size_t build_outlinks(build_state *st, uint32_t n, uint8_t *p)
{
    uint32_t nsrc = st->c->nblk[1 - st->c->side];
    uint32_t *cnt = st->b.scnt, *last = st->b.last, total = 0;
    memset(cnt, 0, nsrc * sizeof *cnt);
    if (nsrc <= 32 && st->idxbits < 32)
        return outlinks_masked(st, n, p);
    memset(last, 0, nsrc * sizeof *last);
    for (uint32_t e = 0; e < n; e++)
        for (uint32_t t = st->ptr[e]; t < st->ptr[e + 1]; t++) {
            uint32_t j = st->idxbits < 32 ? st->src[2 * (size_t)t] >> st->idxbits : 0;
            if (last[j] != e + 1) {
                last[j] = e + 1;
                cnt[j]++;
                total++;
            }
        }
    memcpy(p, cnt, nsrc * 4);
    uint8_t *base = p + (size_t)nsrc * 4;
    uint32_t off = 0;
    for (uint32_t j = 0; j < nsrc; j++) {   /* cnt becomes the write cursor of block j */
        uint32_t c = cnt[j];
        cnt[j] = off;
        off += c;
    }
    memset(last, 0, nsrc * sizeof *last);
    for (uint32_t e = 0; e < n; e++)
        for (uint32_t t = st->ptr[e]; t < st->ptr[e + 1]; t++) {
            uint32_t j = st->idxbits < 32 ? st->src[2 * (size_t)t] >> st->idxbits : 0;
            if (last[j] != e + 1) {
                last[j] = e + 1;
                memcpy(base + (size_t)cnt[j]++ * 4, &e, 4);
            }
        }
    return (size_t)nsrc * 4 + (size_t)total * 4;
}

static int build_alloc(build_state *st, em_err *err)
{
    const em__als_cfg *c = st->c;
    uint32_t nsrc = c->nblk[1 - c->side];
    st->b.dcnt = em_calloc((size_t)c->n[c->side] + 1, 4);
    st->b.spos = em_calloc((size_t)c->n[1 - c->side] + 1, 4);
    st->b.scnt = em_calloc(nsrc, 4);
    st->b.last = em_calloc(nsrc, 4);
    if (!st->b.dcnt || !st->b.spos || !st->b.scnt || !st->b.last)
        return em_err_set(err, EM_ENOMEM, "als build: index of %d + %d ids", c->n[0], c->n[1]);
    return 0;
}

/* Where a record is written: appended to vb, or (vb NULL) into a new em_malloc_big buffer
 * (huge pages: the CSR placement writes at random over the whole record, and with 4 KiB
 * pages every first touch is a fault and most writes a TLB miss). */
typedef struct rec_out {
    em_vbuf *vb;
    uint8_t *big;
    size_t len;
} rec_out;

/* The block record of st->block (see FORMATS), written in place into out: the CSR arrays
 * point into the record, so the build needs no scratch copy of the ratings. An empty
 * block leaves out empty. */
static int build_record(build_state *st, rec_out *out, em_err *err)
{
    const em__als_cfg *c = st->c;
    uint32_t n = 0, nsrc = c->nblk[1 - c->side];
    int rc;
    if ((rc = build_alloc(st, err)) < 0 || (rc = count_pass(st, err)) < 0)
        return rc;
    if (st->nnz == 0)
        return 0;
    if (st->nnz >= UINT32_MAX)
        return em_err_set(err, EM_EINVAL, "als: %llu ratings in one block: use more blocks",
                          (unsigned long long)st->nnz);
    for (int32_t g = 0; g < c->n[c->side]; g++)
        n += st->b.dcnt[g] != 0;
    /* out-links: at most one index per (entity, source block) and per rating */
    uint64_t olinks = (uint64_t)n * nsrc < st->nnz ? (uint64_t)n * nsrc : st->nnz;
    size_t need = 20 + (size_t)n * 8 + 4 + (size_t)st->nnz * 8 + (size_t)nsrc * 4 +
                  (size_t)olinks * 4;
    uint8_t *base = NULL;
    if (out->vb && em_vbuf_reserve(out->vb, need) == 0)
        base = out->vb->data + out->vb->len;   /* malloc-aligned: the arrays are 4-aligned */
    else if (!out->vb)   /* emitted as it is (em_emit_big_kv): no copy into the cache */
        base = out->big = em_emit_big_alloc(EM__ALS_KEY_LEN, need);
    if (!base || !(st->b.fill = em_malloc((size_t)n * 4 + 4)))
        return em_err_set(err, EM_ENOMEM, "als build: record of %zu bytes", need);
    uint32_t *ids = (uint32_t *)(void *)(base + 20);
    st->ptr = ids + n;
    st->src = st->ptr + n + 1;
    st->rt = (float *)(void *)(st->src + 1);
    if ((rc = build_index(st, err)) < 0)
        return rc;
    for (int32_t g = 0, e = 0; g < c->n[c->side]; g++)   /* ids ascending = local order */
        if (st->b.dcnt[g])
            ids[e++] = (uint32_t)g;
    memcpy(st->b.fill, st->ptr, (size_t)n * 4);
    place_pass(st, n);
    chunk_order(st, n);
    uint32_t hdr[5] = {EM__ALS_BLOCK_MAGIC, n, (uint32_t)st->nnz, nsrc, st->idxbits};
    memcpy(base, hdr, sizeof hdr);
    size_t len = 20 + (size_t)n * 8 + 4 + (size_t)st->nnz * 8;
    len += build_outlinks(st, n, base + len);
    if (out->vb)
        out->vb->len += len;
    else
        out->len = len;
    return 0;
}

typedef struct build_job {
    const em__als_cfg *c;
    const em_rating *r;
    size_t n;
    const uint32_t *dblk, *sblk;
    em_vbuf *recs;
    uint32_t next, nthreads;   /* thread i builds blocks i, i + nthreads, ... */
    em_err err[EM__ALS_BUILD_THREADS];
    int rc[EM__ALS_BUILD_THREADS];
} build_job;

typedef struct build_arg {
    build_job *job;
    uint32_t i;
} build_arg;

static void *build_thread(void *p)
{
    build_arg *a = p;
    build_job *j = a->job;
    for (uint32_t b = a->i; b < j->c->nblk[j->c->side] && j->rc[a->i] == 0; b += j->nthreads) {
        em__als_seg seg = {j->r, j->n};
        build_state st = {.c = j->c, .seg = &seg, .nseg = 1, .dblk = j->dblk,
                          .sblk = j->sblk, .block = b};
        rec_out ro = {.vb = &j->recs[b]};
        j->rc[a->i] = build_record(&st, &ro, &j->err[a->i]);
        builder_free(&st.b);
    }
    return NULL;
}

/* The block of every id of both sides (dst side s, src side 1 - s), em_malloc'd. */
static int block_tables(const em__als_cfg *c, uint32_t **dblk, uint32_t **sblk, em_err *err)
{
    uint32_t s = c->side;
    *dblk = em_malloc((size_t)c->n[s] * 4 + 4);
    *sblk = em_malloc((size_t)c->n[1 - s] * 4 + 4);
    if (!*dblk || !*sblk) {
        em_free(*dblk);
        em_free(*sblk);
        return em_err_set(err, EM_ENOMEM, "als build: %d + %d block ids", c->n[s], c->n[1 - s]);
    }
    for (int32_t g = 0; g < c->n[s]; g++)
        (*dblk)[g] = em__als_block_of(c->seed, s, g, c->nblk[s]);
    for (int32_t g = 0; g < c->n[1 - s]; g++)
        (*sblk)[g] = em__als_block_of(c->seed, 1 - s, g, c->nblk[1 - s]);
    return 0;
}

int em__als_build_block(const em__als_cfg *c, const em__als_seg *seg, size_t nseg,
                        uint32_t block, uint8_t **rec, size_t *len, em_err *err)
{
    uint32_t *dblk, *sblk;
    *rec = NULL;
    *len = 0;
    int rc = block_tables(c, &dblk, &sblk, err);
    if (rc < 0)
        return rc;
    build_state st = {.c = c, .seg = seg, .nseg = nseg, .dblk = dblk, .sblk = sblk,
                      .block = block};
    rec_out ro = {0};
    rc = build_record(&st, &ro, err);
    if (rc < 0 || ro.len == 0) {
        em_emit_big_free(ro.big, EM__ALS_KEY_LEN);
        ro.big = NULL;
        ro.len = 0;
    }
    *rec = ro.big;
    *len = ro.len;
    builder_free(&st.b);
    em_free(dblk);
    em_free(sblk);
    return rc;
}

int em__als_build_blocks(const em__als_cfg *c, const em_rating *r, size_t n,
                         uint32_t nthreads, em_vbuf *recs, em_err *err)
{
    uint32_t s = c->side, nb = c->nblk[s];
    build_job job = {.c = c, .r = r, .n = n, .recs = recs};
    build_arg args[EM__ALS_BUILD_THREADS];
    pthread_t th[EM__ALS_BUILD_THREADS];
    uint32_t *dblk, *sblk;
    int rc = block_tables(c, &dblk, &sblk, err);
    if (rc < 0)
        return rc;
    job.dblk = dblk;
    job.sblk = sblk;
    nthreads = nthreads < 1 ? 1 : nthreads > EM__ALS_BUILD_THREADS ? EM__ALS_BUILD_THREADS
                                                                   : nthreads;
    job.nthreads = nthreads < nb ? nthreads : nb;
    uint32_t started = 0;
    for (uint32_t i = 0; i < job.nthreads; i++) {
        job.err[i] = (em_err)EM_ERR_INIT;
        args[i] = (build_arg){&job, i};
    }
    for (uint32_t i = 1; i < job.nthreads; i++, started++)   /* thread 0 is this one */
        if (pthread_create(&th[i], NULL, build_thread, &args[i]) != 0)
            break;
    for (uint32_t i = started + 1; i < job.nthreads; i++)    /* not started: run here */
        build_thread(&args[i]);
    build_thread(&args[0]);
    for (uint32_t i = 1; i <= started; i++)
        pthread_join(th[i], NULL);
    for (uint32_t i = 0; i < job.nthreads && rc == 0; i++)
        if (job.rc[i] < 0)
            rc = em_err_copy(err, &job.err[i]);
    em_free(dblk);
    em_free(sblk);
    return rc;
}

/* Emits the record of block b under key: broadcast id, as the executor holds it (no copy
 * until the emitter's). */
static int take_one(const em_fn_ctx *c, uint32_t id, em_slice key, uint32_t b,
                    em_emitter *out, em_err *err)
{
    em_slice v = {0};
    em__als_blockview bv;
    int rc = em_task_broadcast(c->task, id, &v, err);
    if (rc == 0 && (rc = em__als_block_view(v, &bv, err)) == 0)
        rc = em_emit_kv(out, key, v, err);
    return rc < 0 ? em_err_prefix(err, "als take: block %u", b) : 0;
}

/* PARTITION function over partition_by(block keys): emits, under each block key, the
 * block record the driver broadcast for it (blob: als_int.h). */
int em__als_fn_take(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err)
{
    em_slice bl = c->blob;
    em_rec r;
    int rc;
    uint32_t nb = bl.n >= 8 ? em__ld32(bl.p + 4) : 0;
    size_t at = 8 + ((size_t)nb + 1) * 4;
    if (bl.n < 8 || em__ld32(bl.p) != EM__ALS_TAKE_MAGIC || nb == 0 ||
        nb > EM__ALS_MAX_BLOCKS || bl.n < at || bl.n != at + (size_t)em__ld32(bl.p + at - 4) * 4)
        return em_err_set(err, EM_ECORRUPT, "als take: context blob of %zu bytes", bl.n);
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        uint32_t b = r.key.n == 8 ? em__als_key_block(r.key.p) : UINT32_MAX;
        uint32_t f0 = b < nb ? em__ld32(bl.p + 8 + (size_t)b * 4) : 0;
        uint32_t f1 = b < nb ? em__ld32(bl.p + 12 + (size_t)b * 4) : 0;
        if (f0 >= f1 || f1 - f0 != 1 || f1 > (bl.n - at) / 4)
            return em_err_set(err, EM_ECORRUPT, "als take: partition %u: bad block key or "
                              "broadcast list", index);
        if ((rc = take_one(c, em__ld32(bl.p + at + (size_t)f0 * 4), r.key, b, out, err)) < 0)
            return rc;
    }
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
    b->r = b->src + 4;
    b->ocnt = b->src + (size_t)b->nnz * EM__ALS_LINK_STRIDE;
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
