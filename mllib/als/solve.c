/* mllib/als/solve.c - the per-half-iteration task functions of blocked ALS: shipping factors
 * to the blocks that need them (send), solving a block's normal equations (solve), and the
 * Gram matrix Y^T Y of a factor set for implicit feedback (gram, sum). Formats and the math
 * are described at the top of blocks.c. */
#include <math.h>
#include <stdlib.h>

#include "mllib/als/als_int.h"
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
    if (outl.n < 4 || em__ld32(outl.p) != nd || outl.n < 4 + (size_t)nd * 4)
        return em_err_set(err, EM_ECORRUPT, "als send: out-links of %zu bytes", outl.n);
    const uint8_t *cnt = outl.p + 4, *idx = cnt + (size_t)nd * 4;
    size_t left = (outl.n - 4 - (size_t)nd * 4) / 4, k = fv->k;
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
        for (uint32_t t = 0; t < c; t++) {
            uint32_t e = em__ld32(idx + (size_t)t * 4);
            if (e >= fv->n) {
                rc = em_err_set(err, EM_ECORRUPT, "als send: out-link %u of %u", e, fv->n);
                break;
            }
            em_vbuf_append(&m, fv->f + (size_t)e * k * 4, k * 4);
        }
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

int em__als_fn_send(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em__als_ctx *x = em_malloc(sizeof *x);
    em_slice fac, outl;
    bool hf, ho;
    facview fv;
    int rc;
    if (!x)
        return em_err_set(err, EM_ENOMEM, "als send");
    if ((rc = em__als_blob_decode(c->blob, x, err)) < 0)
        goto out;
    if (in->key.n != 8 || em__als_key_block(in->key.p) >= x->cfg.nblk[x->cfg.side]) {
        rc = em_err_set(err, EM_ECORRUPT, "als send: bad block key");
        goto out;
    }
    if ((rc = em_pair_decode(in->val, &fac, &hf, &outl, &ho, err)) < 0)
        goto out;
    if (!hf || !ho) {
        rc = em_err_set(err, EM_ECORRUPT, "als send: factors without out-links");
        goto out;
    }
    if ((rc = fac_view(fac, &fv, err)) == 0)
        rc = send_all(x, em__als_key_block(in->key.p), &fv, outl, out, err);
out:
    em_free(x->yty);
    em_free(x);
    return rc;
}

/* ---------------------------------------------------------------- solve */

typedef struct msgs {
    float **f;           /* per source block: cnt x k factors (aligned copy) or NULL */
    uint32_t *cnt;
    float *all;
} msgs;

static void msgs_free(msgs *m)
{
    em_free(m->f);
    em_free(m->cnt);
    em_free(m->all);
}

/* Copies the factors of every message into one aligned array, indexed by source block. */
static int msgs_load(em_slice list, uint32_t nsrc, uint32_t k, msgs *m, em_err *err)
{
    em_list_iter it;
    em_slice s;
    size_t total = 0;
    int rc;
    m->f = em_calloc(nsrc, sizeof *m->f);
    m->cnt = em_calloc(nsrc, sizeof *m->cnt);
    if (!m->f || !m->cnt)
        return em_err_set(err, EM_ENOMEM, "als solve: messages");
    for (int pass = 0; pass < 2; pass++) {
        if ((rc = em_list_iter_init(&it, list, err)) < 0)
            return rc;
        float *dst = m->all;
        while ((rc = em_list_iter_next(&it, &s, err)) == 1) {
            uint32_t j = s.n >= 12 ? em__ld32(s.p) : UINT32_MAX;
            uint32_t c = s.n >= 12 ? em__ld32(s.p + 4) : 0;
            if (j >= nsrc || em__ld32(s.p + 8) != k || s.n != 12 + (size_t)c * k * 4 ||
                (pass == 0 && m->f[j]))
                return em_err_set(err, EM_ECORRUPT, "als solve: bad or repeated message "
                                  "(%zu bytes)", s.n);
            if (pass == 0) {
                m->f[j] = (float *)1;   /* seen; real pointer set in pass 1 */
                total += (size_t)c * k;
            } else {
                memcpy(dst, s.p + 12, (size_t)c * k * 4);
                m->f[j] = dst;
                m->cnt[j] = c;
                dst += (size_t)c * k;
            }
        }
        if (rc < 0)
            return rc;
        if (pass == 0 && !(m->all = em_malloc(total * sizeof(float) + 4)))
            return em_err_set(err, EM_ENOMEM, "als solve: %zu message floats", total);
    }
    return 0;
}

enum { TILE_MIN = 24 };   /* rows at least this long go through dsyrk */

typedef struct solver {
    const em__als_cfg *c;
    const double *yty;
    double *a, *b, *x, *work;
    double *tile, *cv;        /* max row length x k, and max row length */
} solver;

/* Builds and solves the normal equations of local entity e (see blocks.c for the math);
 * writes rank floats to out. */
static int solve_one(solver *sv, const em__als_blockview *bv, const msgs *m, uint32_t e,
                     float *out, em_err *err)
{
    const em__als_cfg *c = sv->c;
    int k = (int)c->rank;
    size_t kk = (size_t)k * (size_t)k;
    uint32_t t0 = em__ld32(bv->ptr + (size_t)e * 4), t1 = em__ld32(bv->ptr + (size_t)e * 4 + 4);
    uint32_t mask = bv->idxbits >= 32 ? UINT32_MAX : (1u << bv->idxbits) - 1;
    if (t0 > t1 || t1 > bv->nnz)
        return em_err_set(err, EM_ECORRUPT, "als solve: bad row pointers at %u", e);
    if (sv->yty)
        memcpy(sv->a, sv->yty, kk * sizeof(double));
    else
        memset(sv->a, 0, kk * sizeof(double));
    memset(sv->b, 0, (size_t)k * sizeof(double));
    /* Long rows: gather sqrt(w) * y into a double tile and let BLAS do A += T^T T
     * (dsyrk) and b += Y^T c (dgemv); short rows: the fused rank-1 kernel. */
    bool tiled = t1 - t0 >= TILE_MIN;
    double *tile = sv->tile, *cv = sv->cv;
    for (uint32_t t = t0; t < t1; t++) {
        uint32_t enc = em__ld32(bv->src + (size_t)t * 4);
        uint32_t j = bv->idxbits >= 32 ? 0 : enc >> bv->idxbits, pos = enc & mask;
        if (j >= bv->nsrc || !m->f[j] || pos >= m->cnt[j])
            return em_err_set(err, EM_ECORRUPT, "als solve: link (%u, %u) has no factor", j,
                              pos);
        const float *y = m->f[j] + (size_t)pos * (size_t)k;
        double r = em__ldf(bv->r + (size_t)t * 4), w = 1.0, cc = r;
        if (c->implicit) {
            w = c->alpha * fabs(r);   /* confidence - 1 */
            cc = r > 0 ? 1.0 + w : 0.0;
        }
        if (!tiled) {
            em_la_rank1_acc(k, y, w, cc, sv->a, sv->b);
            continue;
        }
        double sw = sqrt(w);
        double *row = tile + (size_t)(t - t0) * (size_t)k;
        for (int q = 0; q < k; q++)
            row[q] = (double)y[q];
        cv[t - t0] = cc / (sw > 0 ? sw : 1.0);
        for (int q = 0; q < k && sw != 1.0; q++)
            row[q] *= sw;
        if (sw == 0)
            cv[t - t0] = 0;
    }
    if (tiled) {
        em_la_syrk_acc(k, (int)(t1 - t0), 1.0, tile, sv->a);
        em_la_gemv_t_acc(k, (int)(t1 - t0), tile, cv, sv->b);
    }
    double reg = c->lambda * (double)(t1 - t0);
    for (int i = 0; i < k; i++)
        sv->a[(size_t)i * (size_t)k + (size_t)i] += reg;
    int rc;
    if (c->nonnegative) {
        rc = em_la_nnls(k, sv->a, sv->b, sv->x, sv->work, err);
    } else {
        rc = em_la_chol_solve(k, sv->a, sv->b, err);
        memcpy(sv->x, sv->b, (size_t)k * sizeof(double));
    }
    if (rc < 0)
        return em_err_prefix(err, "als solve: entity %d",
                             (int)em__ld32(bv->ids + (size_t)e * 4));
    for (int i = 0; i < k; i++)
        out[i] = (float)sv->x[i];
    return 0;
}

/* Solves every entity of one block; out receives the factor record. */
static int solve_block(const em__als_ctx *x, em_slice blk, em_slice msglist, em_vbuf *out,
                       em_err *err)
{
    em__als_blockview bv;
    msgs m = {0};
    solver sv = {.c = &x->cfg, .yty = x->yty};
    size_t k = x->cfg.rank;
    int rc;
    if ((rc = em__als_block_view(blk, &bv, err)) < 0 ||
        (rc = msgs_load(msglist, bv.nsrc, (uint32_t)k, &m, err)) < 0)
        goto out;
    sv.a = em_malloc((k * k + 2 * k) * sizeof(double) + em_la_nnls_work_size((int)k) * 8);
    uint32_t hdr[2] = {bv.n, (uint32_t)k};
    if (!sv.a || em_vbuf_reserve(out, 8 + (size_t)bv.n * 4 * (1 + k)) < 0) {
        rc = em_err_set(err, EM_ENOMEM, "als solve: %u x %zu factors", bv.n, k);
        goto out;
    }
    sv.b = sv.a + k * k;
    sv.x = sv.b + k;
    sv.work = sv.x + k;
    uint32_t maxrow = 0;
    for (uint32_t e = 0; e < bv.n; e++) {
        uint32_t len = em__ld32(bv.ptr + (size_t)e * 4 + 4) - em__ld32(bv.ptr + (size_t)e * 4);
        maxrow = len > maxrow && len <= bv.nnz ? len : maxrow;
    }
    sv.tile = em_malloc(((size_t)maxrow * k + maxrow + 1) * sizeof(double));
    if (!sv.tile) {
        rc = em_err_set(err, EM_ENOMEM, "als solve: tile of %u rows", maxrow);
        goto out;
    }
    sv.cv = sv.tile + (size_t)maxrow * k;
    em_vbuf_append(out, hdr, 8);
    em_vbuf_append(out, bv.ids, (size_t)bv.n * 4);
    float *f = (float *)(void *)(out->data + out->len);   /* offset 8 + 4n: 4-aligned */
    for (uint32_t e = 0; e < bv.n && rc == 0; e++)
        rc = solve_one(&sv, &bv, &m, e, f + (size_t)e * k, err);
    out->len += (size_t)bv.n * k * 4;
out:
    em_free(sv.a);
    em_free(sv.tile);
    msgs_free(&m);
    return rc;
}

/* Value: em_pair(em_list of the block record, em_list of the messages) from cogroup. */
int em__als_fn_solve(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em__als_ctx *x = em_malloc(sizeof *x);
    em_slice bl, ml, blk;
    bool hb, hm;
    em_list_iter it;
    em_vbuf o;
    int rc;
    em_vbuf_init(&o);
    if (!x)
        return em_err_set(err, EM_ENOMEM, "als solve");
    if ((rc = em__als_blob_decode(c->blob, x, err)) < 0 ||
        (rc = em_pair_decode(in->val, &bl, &hb, &ml, &hm, err)) < 0 ||
        (rc = em_list_iter_init(&it, bl, err)) < 0)
        goto out;
    if (it.left != 1) {
        /* Messages to a block without ratings cannot happen; a block without messages
         * cannot either (each of its entities has a rating). */
        rc = em_err_set(err, EM_ECORRUPT, "als solve: %u block records for one key", it.left);
        goto out;
    }
    if ((rc = em_list_iter_next(&it, &blk, err)) < 0)
        goto out;
    if ((rc = solve_block(x, blk, ml, &o, err)) == 0)
        rc = em_emit_val(out, em_slice_make(o.data, o.len), err);
out:
    em_vbuf_destroy(&o);
    if (x)
        em_free(x->yty);
    em_free(x);
    return rc;
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
