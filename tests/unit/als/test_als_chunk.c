/* tests/unit/als/test_als_chunk.c - row order of the ALS block records (mllib/als/blocks.c
 * sort_rows) and the chunked solve (mllib/als/solve.c, "Chunked solve").
 *  - Every row of a built block record is sorted by link (equal links by rating bits), and
 *    the record is byte-identical whatever the order of the input ratings: rows of one
 *    rating, of a few (insertion sort) and of more than SORT_SMALL (radix), with repeated
 *    (user, item) pairs, for 1 (links without block bits), 2 and 3 source blocks.
 *  - The chunked solve equals the plain one (every row solved alone) on the same record:
 *    explicit, implicit (with a Y^T Y) and non-negative, at rank 10 (the lanes Gram kernel)
 *    and rank 17 (the tile kernel), with tiny chunks and groups so that rows of every
 *    length (1 rating, a few, several tiles) cross many chunks and groups. The normal
 *    equations are summed per run instead of per tile of 256 ratings, so the double
 *    solutions differ only by rounding (about 1e-15 relative); the factors are stored as
 *    float, so a factor may round to the neighbouring float: the test allows one float ulp
 *    (2^-23 relative) and checks that most factors are bit-identical. Dropping or repeating
 *    one rating of a row moves its factor by about 1e-3 relative and fails it.
 *  - A link past its message is rejected by both paths (EM_ECORRUPT). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/plan/fn.h"
#include "mllib/als/als_int.h"

enum { NU = 900, NI = 60 };

static uint64_t rs;
static uint32_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs >> 20);
}

/* Ratings: item 0 by every user (several tiles), item 1 by one user, items 2..9 by two
 * or three users, the rest at random; user 0 rates items 0 and 10.. six times and some other
 * (user, item) pairs come twice, with other ratings. */
static size_t make_ratings(em_rating *r, uint64_t seed)
{
    size_t n = 0;
    rs = seed | 1;
    for (int u = 0; u < NU; u++)
        r[n++] = (em_rating){u, 0, (float)(1 + rnd() % 5)};
    r[n++] = (em_rating){7, 1, 4.5f};
    for (int i = 2; i < 10; i++)
        for (int q = 0; q < 2 + i % 2; q++)
            r[n++] = (em_rating){(int32_t)(rnd() % NU), i, (float)(1 + rnd() % 5)};
    for (int i = 10; i < NI; i++)
        for (int u = 0; u < NU; u++)
            if (rnd() % 100 < (uint32_t)(i % 7) * 4)
                r[n++] = (em_rating){u, i, (float)(rnd() % 11) * 0.5f};
    for (int i = 0; i < NI; i++)   /* user 0: items 0, 10.. six times (a long user row) */
        for (int q = 0; q < 6 && (i == 0 || i >= 10); q++)
            r[n++] = (em_rating){0, i, 1.0f + 0.5f * (float)q};
    for (int q = 0; q < 40; q++) {   /* repeats of existing pairs, other ratings */
        em_rating d = r[rnd() % n];
        d.rating += 0.25f;
        r[n++] = d;
    }
    return n;
}

static void shuffle(em_rating *r, size_t n)
{
    for (size_t t = n; t > 1; t--) {
        size_t j = rnd() % t;
        em_rating x = r[t - 1];
        r[t - 1] = r[j];
        r[j] = x;
    }
}

static em__als_cfg cfg_for(uint32_t side, uint32_t nblk_src, uint32_t k)
{
    em__als_cfg c = {.magic = EM__ALS_MAGIC, .rank = k, .side = side, .n = {NU, NI},
                     .seed = 3, .lambda = 0.05, .alpha = 2.0};
    c.nblk[side] = 1;
    c.nblk[1 - side] = nblk_src;
    return c;
}

static uint8_t *build(const em__als_cfg *c, const em_rating *r, size_t n, size_t *len)
{
    em__als_seg seg = {r, n};
    uint8_t *rec;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em__als_build_block(c, &seg, 1, 0, &rec, len, &err), 0, "%s", err.msg);
    cr_assert(rec != NULL && *len > 0);
    return rec;
}

Test(als_chunk, rows_sorted_and_independent_of_input_order)
{
    static em_rating r[NU * NI + 6 * NI + 100];
    for (uint32_t side = 0; side < 2; side++)
        for (uint32_t ns = 1; ns <= 3; ns++) {
            size_t n = make_ratings(r, 11 + ns), len, len2;
            em__als_cfg c = cfg_for(side, ns, 4);
            uint8_t *a = build(&c, r, n, &len);
            shuffle(r, n);
            uint8_t *b = build(&c, r, n, &len2);
            cr_assert_eq(len, len2);
            cr_assert(memcmp(a, b, len) == 0, "side %u, %u source blocks: records differ",
                      side, ns);
            em__als_blockview bv;
            em_err err = EM_ERR_INIT;
            cr_assert_eq(em__als_block_view(em_slice_make(a, len), &bv, &err), 0);
            uint32_t longest = 0, singles = 0;
            for (uint32_t e = 0; e < bv.n; e++) {
                uint32_t t0 = em__ld32(bv.ptr + e * 4), t1 = em__ld32(bv.ptr + e * 4 + 4);
                longest = t1 - t0 > longest ? t1 - t0 : longest;
                singles += t1 - t0 == 1;
                for (uint32_t t = t0 + 1; t < t1; t++) {
                    uint32_t p = em__ld32(bv.src + (t - 1) * 4), q = em__ld32(bv.src + t * 4);
                    uint32_t pr = em__ld32(bv.r + (t - 1) * 4), qr = em__ld32(bv.r + t * 4);
                    cr_assert(p < q || (p == q && pr <= qr),
                              "side %u: row %u not in link order at %u", side, e, t);
                }
            }
            cr_assert(longest > 256, "side %u, %u blocks: longest row %u: a row longer than a "
                      "radix sort's threshold and a tile", side, ns, longest);
            if (side == 1)
                cr_assert(singles >= 1, "a row of one rating");
            em_emit_big_free(a, EM__ALS_KEY_LEN);
            em_emit_big_free(b, EM__ALS_KEY_LEN);
        }
}

/* Messages for every source block of a record: cnt = the largest position linked + 1,
 * factors at random in [-0.5, 0.5) (non-negative mode: [0, 1)). */
static uint32_t make_msgs(const em__als_blockview *bv, uint32_t k, bool nonneg, em_vbuf *mb,
                          em_slice *ms)
{
    uint32_t cnt[3] = {0, 0, 0};
    for (uint32_t t = 0; t < bv->nnz; t++) {
        uint32_t enc = em__ld32(bv->src + (size_t)t * 4);
        uint32_t j = bv->idxbits >= 32 ? 0 : enc >> bv->idxbits;
        uint32_t pos = bv->idxbits >= 32 ? enc : enc & ((1u << bv->idxbits) - 1);
        cnt[j] = pos + 1 > cnt[j] ? pos + 1 : cnt[j];
    }
    uint32_t nm = 0;
    for (uint32_t j = 0; j < bv->nsrc; j++) {
        if (!cnt[j])
            continue;
        em_vbuf_init(&mb[nm]);
        uint32_t hdr[3] = {j, cnt[j], k};
        cr_assert_eq(em_vbuf_append(&mb[nm], hdr, 12), 0);
        for (size_t q = 0; q < (size_t)cnt[j] * k; q++) {
            float v = (float)(rnd() % 4096) / 4096.0f - (nonneg ? 0.0f : 0.5f);
            cr_assert_eq(em_vbuf_append(&mb[nm], &v, 4), 0);
        }
        ms[nm] = em_slice_make(mb[nm].data, mb[nm].len);
        nm++;
    }
    return nm;
}

static void check_modes(uint32_t k)
{
    static em_rating r[NU * NI + 6 * NI + 100];
    for (uint32_t ns = 1; ns <= 3; ns++)
        for (int mode = 0; mode < 3; mode++) {   /* explicit, implicit, non-negative */
            size_t n = make_ratings(r, 100 + ns), len;
            em__als_ctx *x = calloc(1, sizeof *x);
            x->cfg = cfg_for(1, ns, k);
            x->cfg.implicit = mode == 1;
            x->cfg.nonnegative = mode == 2;
            if (mode == 1) {   /* a Y^T Y: identity / 2 */
                x->cfg.has_yty = 1;
                x->yty = calloc((size_t)k * k, sizeof *x->yty);
                for (uint32_t q = 0; q < k; q++)
                    x->yty[q * k + q] = 0.5;
            }
            uint8_t *rec = build(&x->cfg, r, n, &len);
            em__als_blockview bv;
            em_err err = EM_ERR_INIT;
            cr_assert_eq(em__als_block_view(em_slice_make(rec, len), &bv, &err), 0);
            em_vbuf mb[3];
            em_slice ms[3];
            uint32_t nm = make_msgs(&bv, k, mode == 2, mb, ms);
            em__als_chunking off = {.off = true};
            em__als_chunking tunes[3] = {
                {.rows = 7, .set_min_len = true, .min_len = 0, .group = 5},
                {.rows = 100, .set_min_len = true, .min_len = 40, .group = 3},
                {.rows = 0, .group = 0},   /* the defaults: one chunk per block here */
            };
            em_vbuf plain;
            em_vbuf_init(&plain);
            cr_assert_eq(em__als_solve_record(x, em_slice_make(rec, len), ms, nm, &off,
                                              &plain, &err), 0, "%s", err.msg);
            for (int tu = 0; tu < 3; tu++) {
                em_vbuf ch;
                em_vbuf_init(&ch);
                cr_assert_eq(em__als_solve_record(x, em_slice_make(rec, len), ms, nm,
                                                  &tunes[tu], &ch, &err), 0, "%s", err.msg);
                cr_assert_eq(ch.len, plain.len);
                cr_assert(memcmp(ch.data, plain.data, 8 + (size_t)bv.n * 4) == 0);
                const float *a = (const float *)(void *)(plain.data + 8 + (size_t)bv.n * 4);
                const float *b = (const float *)(void *)(ch.data + 8 + (size_t)bv.n * 4);
                size_t same = 0, tot = (size_t)bv.n * k;
                for (size_t q = 0; q < tot; q++) {
                    double d = fabs((double)a[q] - b[q]);
                    cr_assert(isfinite(a[q]) && d <= ldexp(fabs((double)a[q]), -23) + 1e-30,
                              "rank %u, %u blocks, mode %d, tuning %d: factor %zu: %.9g "
                              "against %.9g", k, ns, mode, tu, q, a[q], b[q]);
                    same += a[q] == b[q];
                }
                cr_assert(same * 10 >= tot * 9, "only %zu of %zu factors bit-identical", same,
                          tot);
                em_vbuf_destroy(&ch);
            }
            em_vbuf_destroy(&plain);
            for (uint32_t q = 0; q < nm; q++)
                em_vbuf_destroy(&mb[q]);
            em_emit_big_free(rec, EM__ALS_KEY_LEN);
            free(x->yty);
            free(x);
        }
}

Test(als_chunk, chunked_solve_equals_plain_rank10, .timeout = 120)
{
    check_modes(10);
}

Test(als_chunk, chunked_solve_equals_plain_rank17, .timeout = 120)
{
    check_modes(17);
}

Test(als_chunk, link_past_its_message_is_rejected_by_both_paths)
{
    static em_rating r[NU * NI + 6 * NI + 100];
    size_t n = make_ratings(r, 7), len;
    em__als_ctx *x = calloc(1, sizeof *x);
    x->cfg = cfg_for(1, 2, 10);
    uint8_t *rec = build(&x->cfg, r, n, &len);
    em__als_blockview bv;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em__als_block_view(em_slice_make(rec, len), &bv, &err), 0);
    em_vbuf mb[3];
    em_slice ms[3];
    uint32_t nm = make_msgs(&bv, 10, false, mb, ms);
    /* the last rating of item 0 (linking into source block 1) now points past its message */
    uint32_t t = em__ld32(bv.ptr + 4) - 1, bad = (1u << bv.idxbits) | ((1u << bv.idxbits) - 1);
    memcpy((uint8_t *)bv.src + (size_t)t * 4, &bad, 4);
    em__als_chunking tunes[2] = {{.off = true}, {.rows = 7, .set_min_len = true}};
    for (int tu = 0; tu < 2; tu++) {
        em_vbuf o;
        em_vbuf_init(&o);
        err = (em_err)EM_ERR_INIT;
        cr_assert_eq(em__als_solve_record(x, em_slice_make(rec, len), ms, nm, &tunes[tu], &o,
                                          &err), EM_ECORRUPT, "path %d", tu);
        cr_assert(strstr(err.msg, "has no factor"), "%s", err.msg);
        em_vbuf_destroy(&o);
    }
    for (uint32_t q = 0; q < nm; q++)
        em_vbuf_destroy(&mb[q]);
    em_emit_big_free(rec, EM__ALS_KEY_LEN);
    free(x);
}
