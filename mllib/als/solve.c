/* mllib/als/solve.c - the per-half-iteration task functions of blocked ALS: shipping factors
 * to the blocks that need them (send), solving a block's normal equations (solve), and the
 * Gram matrix Y^T Y of a factor set for implicit feedback (gram, sum). Formats and the math
 * are described at the top of blocks.c. */
#include <math.h>
#include <stdlib.h>

#include "mllib/als/als_int.h"
#include "mllib/als/kernel.h"
#include "mllib/linalg/linalg.h"

typedef struct facview {
    uint32_t n, k;
    const uint8_t *ids, *f;
} facview;

static int fac_view(em_slice v, facview *fv, em_err *err)
{
    if (v.n < 8)
        return em_err_set(err, EM_ECORRUPT, "als: factor record of %zu bytes", v.n);
    fv->n = em__ld32(v.p);
    fv->k = em__ld32(v.p + 4);
    if (fv->k == 0 || fv->k > EM__ALS_MAX_RANK ||
        8 + (uint64_t)fv->n * 4 * (1 + fv->k) != v.n)
        return em_err_set(err, EM_ECORRUPT, "als: factor record of %zu bytes for %u x %u",
                          v.n, fv->n, fv->k);
    fv->ids = v.p + 8;
    fv->f = fv->ids + (size_t)fv->n * 4;
    return 0;
}

/* ---------------------------------------------------------------- send */

static int send_all(const em__als_ctx *x, uint32_t j, const facview *fv, em_slice outl,
                    em_emitter *out, em_err *err)
{
    uint32_t dst = 1 - x->cfg.side, nd = x->cfg.nblk[dst];
    if (outl.n < 8 || em__ld32(outl.p) != EM__ALS_OUTL_MAGIC || em__ld32(outl.p + 4) != nd ||
        outl.n < 8 + (size_t)nd * 4)
        return em_err_set(err, EM_ECORRUPT, "als send: out-links of %zu bytes", outl.n);
    const uint8_t *cnt = outl.p + 8, *idx = cnt + (size_t)nd * 4;
    size_t left = (outl.n - 8 - (size_t)nd * 4) / 4, k = fv->k;
    em_vbuf m;
    em_vbuf_init(&m);
    int rc = 0;
    for (uint32_t d = 0; d < nd && rc == 0; d++) {
        uint32_t c = em__ld32(cnt + (size_t)d * 4);
        if (c == 0)
            continue;
        if (c > left) {
            rc = em_err_set(err, EM_ECORRUPT, "als send: out-links truncated");
            break;
        }
        uint32_t hdr[3] = {j, c, (uint32_t)k};
        em_vbuf_clear(&m);
        if (em_vbuf_reserve(&m, 12 + (size_t)c * k * 4) < 0) {
            rc = em_err_set(err, EM_ENOMEM, "als send: message of %u factors", c);
            break;
        }
        em_vbuf_append(&m, hdr, 12);
        uint8_t *dstp = m.data + 12;
        for (uint32_t t = 0; t < c; t++) {
            uint32_t e = em__ld32(idx + (size_t)t * 4);
            if (e >= fv->n) {
                rc = em_err_set(err, EM_ECORRUPT, "als send: out-link %u of %u", e, fv->n);
                break;
            }
            memcpy(dstp + (size_t)t * k * 4, fv->f + (size_t)e * k * 4, k * 4);
        }
        m.len += (size_t)c * k * 4;
        idx += (size_t)c * 4;
        left -= c;
        uint8_t key[8];
        em__als_key(key, d, x->salt[dst][d]);
        if (rc == 0)
            rc = em_emit_kv(out, em_slice_make(key, 8), em_slice_make(m.data, m.len), err);
    }
    em_vbuf_destroy(&m);
    return rc;
}

/* PARTITION function over union(fac[s], out[s]), zipped: the partition of source block j
 * holds its factor record and its out-links record (either order; the first is copied,
 * since em_iter_next borrows a record only until the next call). */
int em__als_fn_send(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err)
{
    em__als_ctx *x = em_malloc(sizeof *x);
    em_vbuf first;
    em_rec r;
    uint8_t key[8];
    uint32_t nrec = 0;
    int rc;
    em_vbuf_init(&first);
    if (!x)
        return em_err_set(err, EM_ENOMEM, "als send");
    if ((rc = em__als_blob_decode(c->blob, x, err)) < 0)
        goto out;
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        if (r.key.n != 8 || em__als_key_block(r.key.p) >= x->cfg.nblk[x->cfg.side] ||
            (nrec > 0 && memcmp(key, r.key.p, 8) != 0) || nrec >= 2) {
            rc = em_err_set(err, EM_ECORRUPT, "als send: partition %u: unexpected record %u",
                            index, nrec);
            goto out;
        }
        if (nrec++ == 0) {
            memcpy(key, r.key.p, 8);
            if (em_vbuf_append(&first, r.val.p, r.val.n) < 0) {
                rc = em_err_set(err, EM_ENOMEM, "als send: %zu bytes", r.val.n);
                goto out;
            }
            continue;
        }
        em_slice a = em_slice_make(first.data, first.len), fac = a, outl = r.val;
        if (a.n >= 4 && em__ld32(a.p) == EM__ALS_OUTL_MAGIC) {
            fac = r.val;
            outl = a;
        }
        facview fv;
        if ((rc = fac_view(fac, &fv, err)) < 0 ||
            (rc = send_all(x, em__als_key_block(key), &fv, outl, out, err)) < 0)
            goto out;
    }
    if (rc == 0 && nrec == 1)
        rc = em_err_set(err, EM_ECORRUPT, "als send: partition %u: factors without out-links "
                        "or the reverse", index);
out:
    em_vbuf_destroy(&first);
    if (x)
        em_free(x->yty);
    em_free(x);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- solve */

/* The factors received by one block, indexed by source block. Rows of rank <= 16 are
 * padded to 8 or 16 floats in a 64-byte aligned buffer, so a factor never straddles two
 * cache lines: the solve's factor reads are random over megabytes (19 MB of user factors
 * per item block at 100M ratings) and a 40-byte row at a random offset touched 1.6 lines
 * on average. */
typedef struct msgs {
    uint32_t nsrc, k, stride;   /* stride: floats per row */
    const float **f;     /* per source block: cnt x stride factors or NULL */
    uint32_t *cnt;
    size_t *off;         /* float offset in buf, SIZE_MAX when no message */
    em_vbuf buf;         /* the copied factors, each message at a multiple of 64 bytes */
    float *al;           /* buf copied to 64-byte aligned memory (em_free_big) */
} msgs;

static void msgs_free(msgs *m)
{
    em_free(m->f);
    em_free(m->cnt);
    em_free(m->off);
    em_vbuf_destroy(&m->buf);
    em_free_big(m->al);
}

static int msgs_init(msgs *m, uint32_t nsrc, uint32_t k, em_err *err)
{
    m->nsrc = nsrc;
    m->k = k;
    m->stride = em__als_row_stride(k);
    em_vbuf_init(&m->buf);
    m->f = em_calloc(nsrc, sizeof *m->f);
    m->cnt = em_calloc(nsrc, sizeof *m->cnt);
    m->off = em_malloc(nsrc * sizeof *m->off);
    if (!m->f || !m->cnt || !m->off)
        return em_err_set(err, EM_ENOMEM, "als solve: messages");
    for (uint32_t j = 0; j < nsrc; j++)
        m->off[j] = SIZE_MAX;
    return 0;
}

/* Copies one message (borrowed from the iterator) into m. */
static int msgs_add(msgs *m, em_slice s, em_err *err)
{
    uint32_t j = s.n >= 12 ? em__ld32(s.p) : UINT32_MAX;
    uint32_t c = s.n >= 12 ? em__ld32(s.p + 4) : 0;
    if (j >= m->nsrc || em__ld32(s.p + 8) != m->k || s.n != 12 + (size_t)c * m->k * 4 ||
        m->off[j] != SIZE_MAX)
        return em_err_set(err, EM_ECORRUPT, "als solve: bad or repeated message (%zu bytes)",
                          s.n);
    size_t at = (m->buf.len + 63) & ~(size_t)63, row = (size_t)m->stride * 4;
    if (em_vbuf_reserve(&m->buf, at - m->buf.len + (size_t)c * row) < 0)
        return em_err_set(err, EM_ENOMEM, "als solve: %u message factors", c);
    memset(m->buf.data + m->buf.len, 0, at - m->buf.len + (size_t)c * row);
    for (uint32_t e = 0; e < c; e++)
        memcpy(m->buf.data + at + e * row, s.p + 12 + (size_t)e * m->k * 4, (size_t)m->k * 4);
    m->off[j] = at / 4;
    m->cnt[j] = c;
    m->buf.len = at + (size_t)c * row;
    return 0;
}

/* Copies the factors to aligned memory and turns the offsets into pointers. The copy is
 * an em_malloc_big buffer: 64-byte aligned and, past a few MiB, on huge pages (reused
 * from task to task), because the solve reads its rows at random: an item block reads
 * nearly every user's row (30 MB at 480k users, rank 10), and with 4 KiB pages almost
 * every read was also a TLB miss; the gather's prefetches stalled on the page walks and
 * were a third of an iteration's CPU time. */
static int msgs_seal(msgs *m, em_err *err)
{
    size_t len = (m->buf.len + 63) & ~(size_t)63;
    if (len && !(m->al = em_malloc_big(len)))
        return em_err_set(err, EM_ENOMEM, "als solve: %zu bytes of factors", len);
    if (len)
        memcpy(m->al, m->buf.data, m->buf.len);
    em_vbuf_destroy(&m->buf);
    for (uint32_t j = 0; j < m->nsrc; j++)
        m->f[j] = m->off[j] == SIZE_MAX ? NULL : m->al + m->off[j];
    return 0;
}

enum { TILE_ROWS = 256 };   /* rows gathered per kernel call (24 KiB at rank 10) */

/* Normal equations by one kernel pass: each rating becomes a tile row [sqrt(w) y, c/sqrt(w)]
 * (explicit: [y, r]) of k + 1 columns, so the upper triangle of T^T T holds Y^T W Y in its
 * first k columns and Y^T C p in column k (em_la_syrk_tile). */
typedef struct solver {
    const em__als_cfg *c;
    const double *yty;
    int k, ld;                /* rank; the tile's leading dimension, round_up(k + 1, 4) */
    double *a, *b, *x, *work;
    double *ext;              /* (k + 1) x (k + 1) upper triangle of T^T T */
    double *tile;             /* TILE_ROWS x ld */
    const float *yp[TILE_ROWS];
    double sc[TILE_ROWS], last[TILE_ROWS];
} solver;

/* The read chunks of a block's messages (als_int.h em__als_chunk_shift): link (j, pos)
 * reads chunk pos >> shift. */
typedef struct chunking {
    uint32_t n, shift;
} chunking;

/* Gathers the factor pointers and kernel inputs of ratings [t0, t1) of a row, stopping at
 * the first link of a chunk after `upto`, and prefetches their rows a tile (TILE_ROWS
 * ratings) ahead of the kernel (kernel.h em__als_prefetch_row). Returns the rows gathered
 * or a negative error. The message tables are read through restrict locals: the stores
 * into sv->yp have the type of m->f's elements and would otherwise force a reload of m->f
 * and m->cnt for every rating. */
static int gather(solver *sv, const em__als_blockview *bv, const msgs *m, const chunking *ck,
                  uint32_t upto, uint32_t t0, uint32_t t1, em_err *err)
{
    const em__als_cfg *c = sv->c;
    int k = sv->k, n = (int)(t1 - t0);
    uint32_t sh = bv->idxbits, mask = sh >= 32 ? UINT32_MAX : (1u << sh) - 1, nsrc = bv->nsrc;
    uint32_t csh = ck->shift;
    const uint8_t *src = bv->src + (size_t)t0 * EM__ALS_LINK_STRIDE;
    const uint8_t *rt = bv->r + (size_t)t0 * EM__ALS_LINK_STRIDE;
    const float *const *restrict f = m->f;
    const uint32_t *restrict cnt = m->cnt;
    const float **restrict yp = sv->yp;
    double *restrict last = sv->last;
    size_t stride = m->stride, rowb = (size_t)k * 4;
    for (int s = 0; s < n; s++) {
        uint32_t enc = em__ld32(src + (size_t)s * EM__ALS_LINK_STRIDE);
        uint32_t j = sh >= 32 ? 0 : enc >> sh, pos = enc & mask;
        if (j >= nsrc || !f[j] || pos >= cnt[j])
            return em_err_set(err, EM_ECORRUPT, "als solve: link (%u, %u) has no factor", j,
                              pos);
        if ((pos >> csh) > upto) {
            n = s;
            break;
        }
        yp[s] = f[j] + (size_t)pos * stride;
        last[s] = em__ldf(rt + (size_t)s * EM__ALS_LINK_STRIDE);
        em__als_prefetch_row(yp[s], rowb);
    }
    if (!c->implicit)
        return n;
    for (int s = 0; s < n; s++) {
        double r = last[s];
        double w = c->alpha * fabs(r), cc = r > 0 ? 1.0 + w : 0.0, sw = sqrt(w);
        sv->sc[s] = sw;
        last[s] = sw > 0 ? cc / sw : 0.0;
        if (sw == 0 && cc != 0)   /* alpha |r| underflowed: add c y to b directly */
            for (int q = 0; q < k; q++)
                sv->b[q] += cc * (double)yp[s][q];
    }
    return n;
}

/* Adds the Gram sums of row links [*t, t1) up to chunk `upto` into sv->ext (and sv->b);
 * advances *t past them. */
static int accumulate(solver *sv, const em__als_blockview *bv, const msgs *m,
                      const chunking *ck, uint32_t upto, uint32_t *t, uint32_t t1, em_err *err)
{
    while (*t < t1) {
        uint32_t te = t1 - *t > TILE_ROWS ? *t + TILE_ROWS : t1;
        int rc = gather(sv, bv, m, ck, upto, *t, te, err);
        if (rc <= 0)
            return rc;
        em__als_gram_rows(sv->k, rc, sv->yp, sv->c->implicit ? sv->sc : NULL, sv->last,
                          sv->ld, sv->tile, sv->ext);
        *t += (uint32_t)rc;
        if (*t < te)   /* stopped at a later chunk */
            return 0;
    }
    return 0;
}

/* Solves the normal equations of local entity e (see blocks.c for the math) from its n
 * ratings' sums in sv->ext and sv->b; writes rank floats to out. */
static int finish_one(solver *sv, const em__als_blockview *bv, uint32_t e, uint32_t n,
                      float *out, em_err *err)
{
    const em__als_cfg *c = sv->c;
    int k = sv->k, rc;
    size_t kk = (size_t)k, k1 = kk + 1;
    double reg = c->lambda * (double)n;
    for (size_t i = 0; i < kk; i++) {
        const double *ei = sv->ext + i * k1;
        double *ai = sv->a + i * kk;
        const double *yi = sv->yty ? sv->yty + i * kk : NULL;
        for (size_t j = i; j < kk; j++)
            ai[j] = ei[j] + (yi ? yi[j] : 0.0);
        ai[i] += reg;
        sv->b[i] += ei[kk];
    }
    if (c->nonnegative) {
        rc = em_la_nnls(k, sv->a, sv->b, sv->x, sv->work, err);
    } else {
        rc = em__als_chol_solve(k, sv->a, sv->b, err);
        memcpy(sv->x, sv->b, kk * sizeof(double));
    }
    if (rc < 0)
        return em_err_prefix(err, "als solve: entity %d",
                             (int)em__ld32(bv->ids + (size_t)e * 4));
    for (int i = 0; i < k; i++)
        out[i] = (float)sv->x[i];
    return 0;
}

/* The links [*t0, *t1) of row e, checked against the record (who: "solve" or "eval"). */
static int check_ptr(const em__als_blockview *bv, uint32_t e, const char *who, uint32_t *t0,
                     uint32_t *t1, em_err *err)
{
    *t0 = em__ld32(bv->ptr + (size_t)e * 4);
    *t1 = em__ld32(bv->ptr + (size_t)e * 4 + 4);
    if (*t0 > *t1 || *t1 > bv->nnz)
        return em_err_set(err, EM_ECORRUPT, "als %s: bad row pointers at %u", who, e);
    return 0;
}

/* One chunk: every entity, its ratings tile by tile, then its solve. */
static int solve_rows(solver *sv, const em__als_blockview *bv, const msgs *m,
                      const chunking *ck, float *f, em_err *err)
{
    size_t k1 = (size_t)sv->k + 1;
    int rc = 0;
    for (uint32_t e = 0; e < bv->n && rc == 0; e++) {
        uint32_t t0, t1;
        if ((rc = check_ptr(bv, e, "solve", &t0, &t1, err)) < 0)
            break;
        memset(sv->ext, 0, k1 * k1 * sizeof(double));
        memset(sv->b, 0, (k1 - 1) * sizeof(double));
        uint32_t t = t0;
        if ((rc = accumulate(sv, bv, m, ck, UINT32_MAX, &t, t1, err)) == 0)
            rc = finish_one(sv, bv, e, t1 - t0, f + (size_t)e * (k1 - 1), err);
    }
    return rc;
}

/* Several chunks: a pass over every entity per chunk, each entity's sums kept between the
 * passes as its upper triangle and its b (acc), then the solves. The passes read each
 * chunk's factors (2 MiB) at random from L3 rather than the whole buffer from memory:
 * rank 10, item side at 480k users, two processes at once, 23.9 -> 14.5 ns per rating
 * (bench/als_kernel.c, WINDOW 32768 against 480000). */
static int solve_chunked(solver *sv, const em__als_blockview *bv, const msgs *m,
                         const chunking *ck, float *f, em_err *err)
{
    size_t k = (size_t)sv->k, k1 = k + 1, per = em__als_sums_len((uint32_t)k), nt = per - k;
    uint32_t n = bv->n, *cur = em_malloc((size_t)n * 4 + 4);
    double *acc = em_calloc((size_t)n * per + 1, sizeof(double)), *b0 = sv->b;
    int rc = 0;
    if (!cur || !acc) {
        rc = em_err_set(err, EM_ENOMEM, "als solve: sums of %u entities", n);
        goto out;
    }
    for (uint32_t e = 0; e < n && rc == 0; e++) {
        uint32_t t1;
        rc = check_ptr(bv, e, "solve", &cur[e], &t1, err);
    }
    for (uint32_t c = 0; c < ck->n && rc == 0; c++) {
        uint32_t upto = c + 1 == ck->n ? UINT32_MAX : c;
        for (uint32_t e = 0; e < n; e++) {
            uint32_t t1 = em__ld32(bv->ptr + (size_t)e * 4 + 4), t = cur[e];
            if (t == t1)
                continue;
            double *ae = acc + (size_t)e * per;
            memset(sv->ext, 0, k1 * k1 * sizeof(double));
            sv->b = ae + nt;
            if ((rc = accumulate(sv, bv, m, ck, upto, &t, t1, err)) < 0)
                break;
            if (t == cur[e])
                continue;
            cur[e] = t;
            for (size_t i = 0, q = 0; i < k1; i++)
                for (size_t j = i; j < k1; j++)
                    ae[q++] += sv->ext[i * k1 + j];
        }
    }
    sv->b = b0;
    for (uint32_t e = 0; e < n && rc == 0; e++) {
        const double *ae = acc + (size_t)e * per;
        for (size_t i = 0, q = 0; i < k1; i++)
            for (size_t j = i; j < k1; j++)
                sv->ext[i * k1 + j] = ae[q++];
        memcpy(sv->b, ae + nt, k * sizeof(double));
        uint32_t t0 = em__ld32(bv->ptr + (size_t)e * 4);
        rc = finish_one(sv, bv, e, em__ld32(bv->ptr + (size_t)e * 4 + 4) - t0, f + (size_t)e * k,
                        err);
    }
out:
    em_free(cur);
    em_free(acc);
    return rc;
}

/* Solves every entity of one block; out receives the factor record. */
static int solve_block(const em__als_ctx *x, em_slice blk, const msgs *m, em_vbuf *out,
                       em_err *err)
{
    em__als_blockview bv;
    size_t k = x->cfg.rank, k1 = k + 1;
    solver *sv = em_calloc(1, sizeof *sv);   /* 6 KiB of gather scratch: not on the stack */
    chunking ck = {0};
    int rc = 0;
    if (!sv)
        return em_err_set(err, EM_ENOMEM, "als solve");
    *sv = (solver){.c = &x->cfg, .yty = x->yty, .k = (int)k, .ld = (int)((k1 + 3) & ~(size_t)3)};
    if ((rc = em__als_block_view(blk, &bv, err)) < 0)
        goto out;
    if (bv.nsrc != m->nsrc) {
        rc = em_err_set(err, EM_ECORRUPT, "als solve: block of %u source blocks, %u expected",
                        bv.nsrc, m->nsrc);
        goto out;
    }
    sv->a = em_malloc((k * k + 2 * k + k1 * k1) * sizeof(double) +
                      em_la_nnls_work_size((int)k) * 8);
    sv->tile = em_calloc((size_t)TILE_ROWS * (size_t)sv->ld, sizeof(double));
    uint32_t hdr[2] = {bv.n, (uint32_t)k};
    if (!sv->a || !sv->tile || em_vbuf_reserve(out, 8 + (size_t)bv.n * 4 * (1 + k)) < 0) {
        rc = em_err_set(err, EM_ENOMEM, "als solve: %u x %zu factors", bv.n, k);
        goto out;
    }
    sv->b = sv->a + k * k;
    sv->x = sv->b + k;
    sv->ext = sv->x + k;
    sv->work = sv->ext + k1 * k1;
    em_vbuf_append(out, hdr, 8);
    em_vbuf_append(out, bv.ids, (size_t)bv.n * 4);
    float *f = (float *)(void *)(out->data + out->len);   /* offset 8 + 4n: 4-aligned */
    ck.shift = em__als_chunk_shift((uint32_t)k, m->nsrc);
    ck.n = em__als_chunk_count(m->cnt, m->nsrc, ck.shift);
    if (em__als_chunked(bv.n, bv.nnz, ck.n, (uint32_t)k)) {
        rc = solve_chunked(sv, &bv, m, &ck, f, err);
    } else {
        rc = solve_rows(sv, &bv, m, &ck, f, err);
    }
    out->len += (size_t)bv.n * k * 4;
out:
    em_free(sv->a);
    em_free(sv->tile);
    em_free(sv);
    return rc;
}

/* PARTITION function over union(messages partitioned to the destination blocks, blk[d]),
 * zipped: the messages of block b (copied, they are small) come first, then its block
 * record, which is solved while still borrowed: the persisted block record is never
 * copied. Emits (block key, factor record). */
int em__als_fn_solve(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    em__als_ctx *x = em_malloc(sizeof *x);
    msgs m = {0};
    em_vbuf o;
    em_rec r;
    bool done = false;
    uint32_t nmsg = 0;
    int rc;
    em_vbuf_init(&o);
    em_vbuf_init(&m.buf);
    if (!x)
        return em_err_set(err, EM_ENOMEM, "als solve");
    if ((rc = em__als_blob_decode(c->blob, x, err)) < 0 ||
        (rc = msgs_init(&m, x->cfg.nblk[1 - x->cfg.side], x->cfg.rank, err)) < 0)
        goto out;
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        if (done || r.key.n != 8 || em__als_key_block(r.key.p) >= x->cfg.nblk[x->cfg.side]) {
            rc = em_err_set(err, EM_ECORRUPT, "als solve: partition %u: %s", index,
                            done ? "record after the block record" : "bad block key");
            goto out;
        }
        if (r.val.n < 4 || em__ld32(r.val.p) != EM__ALS_BLOCK_MAGIC) {
            if ((rc = msgs_add(&m, r.val, err)) < 0)
                goto out;
            nmsg++;
            continue;
        }
        if ((rc = msgs_seal(&m, err)) < 0 ||
            (rc = solve_block(x, r.val, &m, &o, err)) < 0 ||
            (rc = em_emit_kv(out, r.key, em_slice_make(o.data, o.len), err)) < 0)
            goto out;
        done = true;
    }
    if (rc == 0 && !done && nmsg)
        rc = em_err_set(err, EM_ECORRUPT, "als solve: partition %u: %u messages and no block "
                        "record", index, nmsg);
out:
    em_vbuf_destroy(&o);
    msgs_free(&m);
    if (x)
        em_free(x->yty);
    em_free(x);
    return rc < 0 ? rc : 0;
}

/* PARTITION function over union(union(fac[0], messages of the final item factors),
 * blk[0]), zipped: block b's user factors (copied), its messages (copied), then its block
 * record (borrowed). Emits 3 doubles: the sum of squared and of absolute errors of the
 * block's training ratings, and their count (the driver adds them up: train RMSE without
 * keeping the ratings on the driver). */
enum { EVAL_AHEAD = 16 };   /* links between a factor row's prefetch and its use */

static inline uint32_t link_at(const em__als_blockview *bv, uint32_t t)
{
    return em__ld32(bv->src + (size_t)t * EM__ALS_LINK_STRIDE);
}

/* The factor row that link enc (a block record's, idxbits sh) names in m, or NULL when
 * it names none (a source block out of m's range, without a message, or a position past
 * its message). */
static inline const float *msgs_row(const msgs *m, uint32_t sh, uint32_t enc)
{
    uint32_t j = sh >= 32 ? 0 : enc >> sh, pos = sh >= 32 ? enc : enc & ((1u << sh) - 1);
    return j < m->nsrc && m->f[j] && pos < m->cnt[j] ? m->f[j] + (size_t)pos * m->stride
                                                    : NULL;
}

int em__als_fn_eval(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err)
{
    em__als_ctx *x = em_malloc(sizeof *x);
    msgs m = {0};
    em_vbuf fac;
    em_rec r;
    double acc[3] = {0, 0, 0};
    bool have = false, done = false;
    int rc;
    em_vbuf_init(&fac);
    em_vbuf_init(&m.buf);
    if (!x)
        return em_err_set(err, EM_ENOMEM, "als eval");
    if ((rc = em__als_blob_decode(c->blob, x, err)) < 0 ||
        (rc = msgs_init(&m, x->cfg.nblk[1], x->cfg.rank, err)) < 0)
        goto out;
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        if (done || r.key.n != 8) {
            rc = em_err_set(err, EM_ECORRUPT, "als eval: partition %u: unexpected record",
                            index);
            goto out;
        }
        if (!have) {   /* the factor record comes first */
            have = true;
            if (em_vbuf_append(&fac, r.val.p, r.val.n) < 0) {
                rc = em_err_set(err, EM_ENOMEM, "als eval: %zu bytes", r.val.n);
                goto out;
            }
            continue;
        }
        if (r.val.n < 4 || em__ld32(r.val.p) != EM__ALS_BLOCK_MAGIC) {
            if ((rc = msgs_add(&m, r.val, err)) < 0)
                goto out;
            continue;
        }
        em__als_blockview bv;
        facview fv;
        if ((rc = msgs_seal(&m, err)) < 0 || (rc = em__als_block_view(r.val, &bv, err)) < 0 ||
            (rc = fac_view(em_slice_make(fac.data, fac.len), &fv, err)) < 0)
            goto out;
        if (fv.n != bv.n || fv.k != x->cfg.rank) {
            rc = em_err_set(err, EM_ECORRUPT, "als eval: %u factors for %u users", fv.n, bv.n);
            goto out;
        }
        uint32_t sh = bv.idxbits, mask = sh >= 32 ? UINT32_MAX : (1u << sh) - 1, k = fv.k;
        /* WHY this shape: one running sum per product made every rating wait for k
         * dependent additions, and the totals lived in memory (acc escapes): 19 ns per
         * rating at rank 10. Now the row's factor is widened once, the dot product runs
         * in two independent sums and the totals in registers; the factor row of the
         * link EVAL_AHEAD on is prefetched (the rows are read at random). */
        double se = 0, sa = 0;
        for (uint32_t e = 0; e < bv.n; e++) {
            double xu[EM__ALS_MAX_RANK];
            for (uint32_t q = 0; q < k; q++)
                xu[q] = em__ldf(fv.f + ((size_t)e * k + q) * 4);
            uint32_t t0, t1;
            if ((rc = check_ptr(&bv, e, "eval", &t0, &t1, err)) < 0)
                goto out;
            for (uint32_t t = t0; t < t1; t++) {
                const float *ya = t + EVAL_AHEAD < bv.nnz
                                      ? msgs_row(&m, sh, link_at(&bv, t + EVAL_AHEAD))
                                      : NULL;
                if (ya)   /* the row of the link EVAL_AHEAD on */
                    __builtin_prefetch(ya, 0, 3);
                uint32_t enc = link_at(&bv, t);
                const float *y = msgs_row(&m, sh, enc);
                if (!y) {
                    rc = em_err_set(err, EM_ECORRUPT, "als eval: link (%u, %u) has no factor",
                                    sh >= 32 ? 0 : enc >> sh, enc & mask);
                    goto out;
                }
                double p0 = 0, p1 = 0;
                uint32_t q = 0;
                for (; q + 2 <= k; q += 2) {
                    p0 += xu[q] * y[q];
                    p1 += xu[q + 1] * y[q + 1];
                }
                if (q < k)
                    p0 += xu[q] * y[q];
                double d = em__ldf(bv.r + (size_t)t * EM__ALS_LINK_STRIDE) - (p0 + p1);
                se += d * d;
                sa += fabs(d);
            }
            acc[2] += t1 - t0;
        }
        acc[0] += se;
        acc[1] += sa;
        done = true;
    }
    if (rc == 0 && done)
        rc = em_emit_val(out, em_slice_make(acc, sizeof acc), err);
out:
    em_vbuf_destroy(&fac);
    msgs_free(&m);
    if (x)
        em_free(x->yty);
    em_free(x);
    return rc < 0 ? rc : 0;
}

int em__als_fn_gram(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    facview fv;
    (void)c;
    int rc = fac_view(in->val, &fv, err);
    if (rc < 0)
        return rc;
    size_t k = fv.k;
    double *g = em_calloc(k * k + 1, sizeof *g), dummy[EM__ALS_MAX_RANK];
    if (!g)
        return em_err_set(err, EM_ENOMEM, "als gram");
    for (uint32_t e = 0; e < fv.n; e++) {
        float row[EM__ALS_MAX_RANK];
        memcpy(row, fv.f + (size_t)e * k * 4, k * 4);
        em_la_rank1_acc((int)k, row, 1.0, 0.0, g, dummy);
    }
    rc = em_emit_val(out, em_slice_make(g, k * k * sizeof *g), err);
    em_free(g);
    return rc;
}

int em__als_fn_sum(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    if (a.n != b.n || a.n % 8)
        return em_err_set(err, EM_ECORRUPT, "als sum: %zu and %zu bytes", a.n, b.n);
    if (em_vbuf_reserve(out, a.n) < 0)
        return em_err_set(err, EM_ENOMEM, "als sum");
    for (size_t i = 0; i < a.n; i += 8) {
        uint8_t v[8];
        em_enc_f64(v, em_dec_f64(a.p + i) + em_dec_f64(b.p + i));
        em_vbuf_append(out, v, 8);
    }
    return 0;
}
