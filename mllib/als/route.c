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
 * FORMATS: ROUTE's output: key = block key (als_int.h, 8 bytes), value = a run of m of
 * that block's ratings in input order (em_rating, 12 bytes each, host order) stored as
 * 12 BYTE PLANES: plane k (m bytes) holds byte k of every rating, so value[k * m + i] is
 * byte k of rating i. The shuffle compresses every block with zstd: the planes of the high
 * bytes of the ids are nearly constant, so zstd compresses them 3x faster, decompresses them
 * 2-3x faster and smaller than the interleaved records (measured on the scale-0.2 ratings,
 * 1 MiB blocks, level 1: 21 -> 64-70 MB/s compressing, under load; 2.3x -> 3.0x smaller in
 * user order, 1.5x -> 2.1x in random order). BUILD's output: (block key, block record)
 * (blocks.c FORMATS). */
#include <math.h>

#include "mllib/als/als_int.h"

#define RATING_BYTES ((size_t)sizeof(em_rating))
#define ROUTE_RUN 256   /* ratings looked up before any of them is appended (route_batch) */

/* Route buffers: per destination block, ratings waiting to be emitted as one record. */
typedef struct router {
    em__als_ctx x;
    em_vbuf *buf;          /* [nblk of the side] */
    uint16_t *blk;         /* [n of the side]: the block of every id (em__als_block_of) */
    uint8_t *blk8;         /* the same in a byte when the side has at most 256 blocks (then
                            * blk is NULL): 480 KB instead of 960 at Netflix scale, closer
                            * to L2 for the user side's lookups at random */
    size_t flush_bytes;    /* a buffer reaching this is emitted */
    em_vbuf planes;        /* scratch: the byte planes of the record being emitted */
} router;

/* The byte-plane transposes run over every rating twice per side (ROUTE and BUILD): with
 * one byte load and store per byte they were 4-5% of the setup's CPU at scale 1. On x86-64
 * they move 16 ratings at a time through SSE2 unpacks (the baseline ISA: no dispatch),
 * 6-15x faster (1 MiB records, in cache); the scalar loops finish the last up to 16
 * ratings and serve other targets. Both give the same bytes (tests/unit/als). */
#if defined(__SSE2__)
#include <emmintrin.h>
#define PLANES_SIMD 1
/* 4 ratings (12 bytes each at p, p + 12, ...; 4 readable bytes after the last) as three
 * vectors: v[q] holds bytes 4q..4q+3 of the 4 ratings, byte-major: [b(4q) of r0..r3,
 * b(4q+1) of r0..r3, ...]. SSE2 unpacks (the baseline of x86-64). */
static inline void quad_to_cols(const uint8_t *p, __m128i v[3])
{
    __m128i r0 = _mm_loadu_si128((const __m128i *)p);
    __m128i r1 = _mm_loadu_si128((const __m128i *)(p + 12));
    __m128i r2 = _mm_loadu_si128((const __m128i *)(p + 24));
    __m128i r3 = _mm_loadu_si128((const __m128i *)(p + 36));
    __m128i t0 = _mm_unpacklo_epi8(r0, r1), t1 = _mm_unpackhi_epi8(r0, r1);
    __m128i t2 = _mm_unpacklo_epi8(r2, r3), t3 = _mm_unpackhi_epi8(r2, r3);
    v[0] = _mm_unpacklo_epi16(t0, t2);
    v[1] = _mm_unpackhi_epi16(t0, t2);
    v[2] = _mm_unpacklo_epi16(t1, t3);
}

/* 4x4 transpose of 32-bit lanes. */
static inline void tr4(__m128i *a, __m128i *b, __m128i *c, __m128i *d)
{
    __m128i ab0 = _mm_unpacklo_epi32(*a, *b), ab1 = _mm_unpackhi_epi32(*a, *b);
    __m128i cd0 = _mm_unpacklo_epi32(*c, *d), cd1 = _mm_unpackhi_epi32(*c, *d);
    *a = _mm_unpacklo_epi64(ab0, cd0);
    *b = _mm_unpackhi_epi64(ab0, cd0);
    *c = _mm_unpacklo_epi64(ab1, cd1);
    *d = _mm_unpackhi_epi64(ab1, cd1);
}

static size_t to_planes_simd(const uint8_t *in, size_t m, uint8_t *out)
{
    size_t i = 0;
    for (; i + 17 <= m; i += 16) {   /* 16 ratings; the 17th keeps the last load inside */
        __m128i g[4][3];
        for (int q = 0; q < 4; q++)
            quad_to_cols(in + (i + 4 * (size_t)q) * RATING_BYTES, g[q]);
        for (int c = 0; c < 3; c++) {
            /* g[q][c] = [b(4c) of ratings 4q..4q+3 | b(4c+1) | b(4c+2) | b(4c+3)] */
            __m128i a = g[0][c], b = g[1][c], d = g[2][c], e = g[3][c];
            tr4(&a, &b, &d, &e);
            _mm_storeu_si128((__m128i *)(out + (4 * (size_t)c) * m + i), a);
            _mm_storeu_si128((__m128i *)(out + (4 * (size_t)c + 1) * m + i), b);
            _mm_storeu_si128((__m128i *)(out + (4 * (size_t)c + 2) * m + i), d);
            _mm_storeu_si128((__m128i *)(out + (4 * (size_t)c + 3) * m + i), e);
        }
    }
    return i;
}

/* The even (lo) and odd (hi) 16-bit words of u: lo in the low 64 bits, hi in the high. */
static inline __m128i deint16(__m128i u)
{
    u = _mm_shufflelo_epi16(u, _MM_SHUFFLE(3, 1, 2, 0));
    u = _mm_shufflehi_epi16(u, _MM_SHUFFLE(3, 1, 2, 0));
    return _mm_shuffle_epi32(u, _MM_SHUFFLE(3, 1, 2, 0));
}

/* Inverse of quad_to_cols: writes the 4 ratings at p (16-byte stores: 4 writable bytes
 * after the last rating). */
static inline void cols_to_quad(const __m128i v[3], uint8_t *p)
{
    __m128i e0 = deint16(v[0]), e1 = deint16(v[1]), e2 = deint16(v[2]);
    __m128i t0 = _mm_unpacklo_epi64(e0, e1), t2 = _mm_unpackhi_epi64(e0, e1);
    __m128i t1 = e2, t3 = _mm_srli_si128(e2, 8);
    __m128i lo = _mm_set1_epi16(0xff);
    __m128i r0 = _mm_packus_epi16(_mm_and_si128(t0, lo), _mm_and_si128(t1, lo));
    __m128i r1 = _mm_packus_epi16(_mm_srli_epi16(t0, 8), _mm_srli_epi16(t1, 8));
    __m128i r2 = _mm_packus_epi16(_mm_and_si128(t2, lo), _mm_and_si128(t3, lo));
    __m128i r3 = _mm_packus_epi16(_mm_srli_epi16(t2, 8), _mm_srli_epi16(t3, 8));
    _mm_storeu_si128((__m128i *)p, r0);
    _mm_storeu_si128((__m128i *)(p + 12), r1);
    _mm_storeu_si128((__m128i *)(p + 24), r2);
    _mm_storeu_si128((__m128i *)(p + 36), r3);
}

static size_t from_planes_simd(const uint8_t *planes, size_t m, size_t i0, size_t n,
                               uint8_t *out)
{
    size_t i = 0;
    for (; i + 17 <= n; i += 16) {
        __m128i g[4][3];
        for (int c = 0; c < 3; c++) {
            const uint8_t *p = planes + (4 * (size_t)c) * m + i0 + i;
            __m128i a = _mm_loadu_si128((const __m128i *)p);
            __m128i b = _mm_loadu_si128((const __m128i *)(p + m));
            __m128i d = _mm_loadu_si128((const __m128i *)(p + 2 * m));
            __m128i e = _mm_loadu_si128((const __m128i *)(p + 3 * m));
            tr4(&a, &b, &d, &e);
            g[0][c] = a;
            g[1][c] = b;
            g[2][c] = d;
            g[3][c] = e;
        }
        for (int q = 0; q < 4; q++)
            cols_to_quad(g[q], out + (i + 4 * (size_t)q) * RATING_BYTES);
    }
    return i;
}
#endif

/* m ratings, interleaved at in, as byte planes at out (FORMATS). */
static void to_planes(const uint8_t *in, size_t m, uint8_t *out)
{
    size_t i = 0;
#ifdef PLANES_SIMD
    i = to_planes_simd(in, m, out);
#endif
    for (size_t k = 0; k < RATING_BYTES; k++) {
        uint8_t *o = out + k * m;
        const uint8_t *p = in + k;
        for (size_t j = i; j < m; j++)
            o[j] = p[j * RATING_BYTES];
    }
}

/* Ratings i0 .. i0 + n of a record of m ratings in byte planes, interleaved into out. */
static void from_planes(const uint8_t *planes, size_t m, size_t i0, size_t n, uint8_t *out)
{
    size_t i = 0;
#ifdef PLANES_SIMD
    i = from_planes_simd(planes, m, i0, n, out);
#endif
    for (size_t k = 0; k < RATING_BYTES; k++) {
        const uint8_t *p = planes + k * m + i0;
        uint8_t *o = out + k;
        for (size_t j = i; j < n; j++)
            o[j * RATING_BYTES] = p[j];
    }
}

static int flush_block(router *rt, uint32_t b, em_emitter *out, em_err *err)
{
    uint32_t s = rt->x.cfg.side;
    uint8_t key[EM__ALS_KEY_LEN];
    size_t len = rt->buf[b].len;
    if (len == 0)
        return 0;
    em_vbuf_clear(&rt->planes);
    if (em_vbuf_reserve(&rt->planes, len) < 0)
        return em_err_set(err, EM_ENOMEM, "als route: %zu bytes", len);
    to_planes(rt->buf[b].data, len / RATING_BYTES, rt->planes.data);
    em__als_key(key, b, rt->x.salt[s][b]);
    int rc = em_emit_kv(out, em_slice_make(key, sizeof key),
                        em_slice_make(rt->planes.data, len), err);
    em_vbuf_clear(&rt->buf[b]);
    return rc;
}

/* Routes the n ratings at p into their blocks' buffers, a buffer emitted when it reaches
 * flush_bytes. The ratings go in runs of ROUTE_RUN: every rating of a run is checked and
 * its block looked up first, then the run is appended. The user side's block table (2
 * bytes per user: 960 KB at Netflix scale) is read at random when the file is not grouped
 * by user; looked up one rating at a time, between appends whose stores the compiler must
 * assume may change the router, each lookup waited for the one before (9 ns per rating in
 * random order), while a run's lookups are independent loads that overlap. */
/* Ids within the sides' counts and a finite rating. */
static inline bool rating_ok(const em_rating *r, int32_t nu, int32_t ni)
{
    return (uint32_t)r->user < (uint32_t)nu && (uint32_t)r->item < (uint32_t)ni &&
           isfinite(r->rating);
}

static int route_batch(router *rt, const uint8_t *p, size_t n, em_emitter *out, em_err *err)
{
    const em__als_cfg *c = &rt->x.cfg;
    const int32_t nu = c->n[0], ni = c->n[1];
    const bool item = c->side != 0;
    const uint16_t *blk = rt->blk;
    const uint8_t *blk8 = rt->blk8;
    uint16_t bid[ROUTE_RUN];
    for (size_t i0 = 0; i0 < n; i0 += ROUTE_RUN) {
        size_t m = n - i0 < ROUTE_RUN ? n - i0 : ROUTE_RUN;
        const uint8_t *q = p + i0 * RATING_BYTES;
        bool bad = false;
        for (size_t k = 0; k < m; k++) {
            em_rating r;
            memcpy(&r, q + k * RATING_BYTES, sizeof r);
            bool ok = rating_ok(&r, nu, ni);
            bad |= !ok;
            int32_t g = ok ? (item ? r.item : r.user) : 0;
            bid[k] = blk8 ? blk8[g] : blk[g];
        }
        for (size_t k = 0; bad && k < m; k++) {
            em_rating r;
            memcpy(&r, q + k * RATING_BYTES, sizeof r);
            if (!rating_ok(&r, nu, ni))
                return em_err_set(err, EM_EINVAL, "als: rating (%d, %d, %g) out of range "
                                  "(%d users, %d items)", r.user, r.item, (double)r.rating,
                                  nu, ni);
        }
        for (size_t k = 0; k < m; k++) {
            em_vbuf *b = &rt->buf[bid[k]];
            /* a buffer is emitted at flush_bytes: one reserve makes room for all its
             * ratings */
            if (b->cap - b->len < RATING_BYTES &&
                em_vbuf_reserve(b, rt->flush_bytes + RATING_BYTES) < 0)
                return em_err_set(err, EM_ENOMEM, "als route: buffer of block %u", bid[k]);
            /* the rating is loaded whole, and the buffer's end read once, before anything
             * is stored: a store through the byte pointer may alias the buffer's fields,
             * and each reload after it waited on that store */
            uint64_t lo;
            uint32_t hi;
            memcpy(&lo, q + k * RATING_BYTES, 8);
            memcpy(&hi, q + k * RATING_BYTES + 8, 4);
            uint8_t *dst = b->data + b->len;
            size_t len = b->len + RATING_BYTES;
            memcpy(dst, &lo, 8);
            memcpy(dst + 8, &hi, 4);
            b->len = len;
            int rc = len >= rt->flush_bytes ? flush_block(rt, bid[k], out, err) : 0;
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* PARTITION over the ratings dataset (FIXED 12-byte em_rating records): the ratings of
 * each side-cfg.side block, in input order, as records (block key, ratings in byte
 * planes: FORMATS) of at most about flush_bytes (64 MiB over the blocks, 4 KiB..1 MiB each): one shuffle record per
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
    int32_t nid = rt->x.cfg.n[rt->x.cfg.side];
    rt->buf = em_calloc(nb, sizeof *rt->buf);
    /* [0] is read for a bad rating */
    if (nb <= 256)
        rt->blk8 = em_calloc((size_t)nid + 1, 1);
    else
        rt->blk = em_calloc((size_t)nid + 1, sizeof *rt->blk);
    if (!rt->buf || (!rt->blk && !rt->blk8)) {
        rc = em_err_set(err, EM_ENOMEM, "als route: %u buffers, %d block ids", nb, nid);
        goto out;
    }
    _Static_assert(EM__ALS_MAX_BLOCKS <= 65536, "block ids fit 16 bits");
    /* blocks <= EM__ALS_MAX_BLOCKS fit 16 bits; a table lookup instead of a hash and a
     * 64-bit division per rating */
    for (int32_t g = 0; g < nid; g++) {
        uint32_t bk = em__als_block_of(rt->x.cfg.seed, rt->x.cfg.side, g, nb);
        if (rt->blk8)
            rt->blk8[g] = (uint8_t)bk;
        else
            rt->blk[g] = (uint16_t)bk;
    }
    while ((rc = em_iter_next_batch(in, &b, err)) == 1) {
        if (b.kind != EM_REC_FIXED || b.width != sizeof(em_rating)) {
            rc = em_err_set(err, EM_EINVAL, "als route: partition %u: ratings must be FIXED "
                            "%zu-byte records (em_rating), got kind %d width %u", index,
                            sizeof(em_rating), (int)b.kind, b.width);
            break;
        }
        rc = route_batch(rt, b.data, b.nrecs, out, err);
        if (rc < 0)
            break;
    }
    for (uint32_t k = 0; rc >= 0 && k < nb; k++)
        rc = flush_block(rt, k, out, err);
out:
    for (uint32_t k = 0; rt->buf && k < rt->x.cfg.nblk[rt->x.cfg.side]; k++)
        em_vbuf_destroy(&rt->buf[k]);
    em_free(rt->buf);
    em_free(rt->blk);
    em_free(rt->blk8);
    em_vbuf_destroy(&rt->planes);
    em_free(rt->x.yty);
    em_free(rt);
    return rc < 0 ? rc : 0;
}

/* The routed ratings of a partition, gathered into chunks of GATHER_CHUNK ratings (4 MiB
 * of heap each), so that no copy is made as they grow.
 * WHY the heap and not em_malloc_big: until 2026-12-08 this comment said the chunks were
 * big buffers that took over the dropped batches of the cached ratings (kept mappings,
 * engine/base/alloc.c), but EM_BIG_MIN / 12 ratings are 4 bytes short of EM_BIG_MIN, so
 * every chunk had come from the heap all along. Rounded up to be big buffers, and with
 * them the heap's high-water mark down from about 700 to 155 MB per executor, both block
 * builds took 0.2-0.3 s longer each at scale 1 in random order (three runs of each,
 * alternated; docs/als.md, "Fresh memory on these VMs"): on these VMs what costs is guest
 * memory the process has not used lately, and the heap that the first build grows is what
 * the second one reuses. */
#define GATHER_CHUNK (((size_t)4 << 20) / sizeof(em_rating))
typedef struct gathered {
    em__als_seg *seg;       /* seg[i].r: chunk i (em_rating *), seg[i].n ratings in it */
    size_t nseg, cap;
} gathered;

static void gathered_free(gathered *g)
{
    for (size_t i = 0; i < g->nseg; i++)
        em_free((void *)(uintptr_t)g->seg[i].r);
    em_free(g->seg);
    memset(g, 0, sizeof *g);
}

/* Appends the m ratings of a routed value (byte planes at p) to g. EM_ENOMEM. */
static int gathered_add(gathered *g, const uint8_t *p, size_t m, em_err *err)
{
    for (size_t i0 = 0; i0 < m;) {
        if (g->nseg == 0 || g->seg[g->nseg - 1].n == GATHER_CHUNK) {
            em__als_seg *s = em_arr_grow(g->seg, &g->cap, g->nseg + 1, sizeof *s);
            if (!s)
                return em_err_set(err, EM_ENOMEM, "als build: chunk list");
            g->seg = s;
            void *c = em_malloc(GATHER_CHUNK * sizeof(em_rating));
            if (!c)
                return em_err_set(err, EM_ENOMEM, "als build: chunk of %zu ratings",
                                  GATHER_CHUNK);
            g->seg[g->nseg++] = (em__als_seg){c, 0};
        }
        em__als_seg *s = &g->seg[g->nseg - 1];
        size_t k = GATHER_CHUNK - s->n < m - i0 ? GATHER_CHUNK - s->n : m - i0;
        from_planes(p, m, i0, k, (uint8_t *)(uintptr_t)(s->r + s->n));
        s->n += k;
        i0 += k;
    }
    return 0;
}

/* Reads the routed ratings of partition `index` into g: every key must name block
 * `index`, every value hold whole ratings. */
static int gather(uint32_t index, em_iter *in, gathered *g, size_t *n, em_err *err)
{
    em_rec rec;
    int rc;
    *n = 0;
    while ((rc = em_iter_next(in, &rec, err)) == 1) {
        size_t m = rec.val.n / sizeof(em_rating);
        if (rec.key.n != EM__ALS_KEY_LEN || em__als_key_block(rec.key.p) != index ||
            rec.val.n % sizeof(em_rating))
            return em_err_set(err, EM_ECORRUPT, "als build: partition %u: record of block "
                              "%u (%zu-byte value)", index,
                              rec.key.n == EM__ALS_KEY_LEN ? em__als_key_block(rec.key.p)
                                                           : UINT32_MAX, rec.val.n);
        if ((rc = gathered_add(g, rec.val.p, m, err)) < 0)
            return rc;
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
    gathered g = {0};
    size_t n = 0, len = 0;
    uint8_t *rec = NULL;
    int rc;
    if (!x)
        return em_err_set(err, EM_ENOMEM, "als build");
    x->yty = NULL;
    if ((rc = em__als_blob_decode(c->blob, x, err)) < 0 ||
        (rc = gather(index, in, &g, &n, err)) < 0) {
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
    if ((rc = em__als_build_block(&x->cfg, g.seg, g.nseg, index, &rec, &len, err)) < 0)
        goto out;
    gathered_free(&g);   /* the record is built: the ratings are not needed while emitting */
    uint8_t key[EM__ALS_KEY_LEN];
    em__als_key(key, index, x->salt[s][index]);
    if (len) {   /* the record becomes the cached batch as it is (no copy) */
        rc = em_emit_big_kv(out, em_slice_make(key, sizeof key), rec, len, err);
        rec = NULL;
    }
out:
    em_emit_big_free(rec, EM__ALS_KEY_LEN);
    gathered_free(&g);
    em_free(x->yty);
    em_free(x);
    return rc;
}
