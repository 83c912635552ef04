/* tests/unit/als/test_als_place.c - a block record's CSR order (mllib/als/blocks.c
 * place_pass, chunk_order): every row holds its ratings in input order within each read
 * chunk of the solve when the block is solved chunk by chunk and the row was not nearly
 * in chunk order already (als_int.h em__als_chunk_shift, em__als_chunked; rank 4: all
 * sources fit one chunk, so input order; rank 50 with long item rows: 4096 positions per
 * message and chunk, so several), whichever way they were placed
 * (directly, or scattered by bucket of rows first: blocks of 16384 rows and more, ratings in
 * no order by row), across segments and across the 4M-rating slices of the bucketed way,
 * with slices already in row order among them. Checked against a reference built here
 * from the input: the rows (ascending ids), each row's ratings in order (every rating
 * value distinct) and each link naming the rated entity's block and one position per
 * entity; the out-links (each block's rows linking to a source block, ascending); and the
 * same bytes when the block is built from its own ratings only (the executors' build).
 * Both sides, users 60000 and items 40000 in 2 x 2 blocks, and other block counts for the
 * out-links' two ways. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/als/als_int.h"

enum { NU = 60000, NI = 40000, NBLK = 2 };
static int32_t n_items = NI;   /* items of the current test (at most NI) */

static em_rating *make_ratings(size_t n, uint64_t seed, bool by_user)
{
    em_rating *r = malloc(n * sizeof *r);
    cr_assert_not_null(r);
    em_rng g;
    em_rng_seed(&g, seed);
    for (size_t t = 0; t < n; t++) {
        /* by_user: users ascending (a file grouped by user), items at random */
        r[t].user = by_user ? (int32_t)(t * NU / n) : (int32_t)(em_rng_next(&g) % NU);
        r[t].item = (int32_t)(em_rng_next(&g) % (uint32_t)n_items);
        r[t].rating = 0.0f;   /* numbered below, over all segments */
    }
    return r;
}

/* The out-links against the rows just checked: per src block j, the local rows with a
 * link into j, ascending, each once. */
static void check_outlinks(const em__als_blockview *bv)
{
    uint32_t *seen = calloc(bv->nsrc, sizeof *seen);   /* last row + 1 counted per block */
    uint32_t *want = calloc(bv->nsrc, sizeof *want);
    for (uint32_t e = 0; e < bv->n; e++) {
        uint32_t t0 = em__ld32(bv->ptr + (size_t)e * 4), t1 = em__ld32(bv->ptr + (size_t)e * 4 + 4);
        for (uint32_t t = t0; t < t1; t++) {
            uint32_t enc = em__ld32(bv->src + (size_t)t * EM__ALS_LINK_STRIDE);
            uint32_t j = bv->idxbits >= 32 ? 0 : enc >> bv->idxbits;
            if (seen[j] != e + 1) {
                seen[j] = e + 1;
                want[j]++;
            }
        }
    }
    const uint8_t *o = bv->oidx;
    for (uint32_t j = 0; j < bv->nsrc; j++) {
        cr_assert_eq(em__ld32(bv->ocnt + (size_t)j * 4), want[j], "out-links of block %u", j);
        uint32_t prev = 0;
        for (uint32_t i = 0; i < want[j]; i++, o += 4) {
            uint32_t e = em__ld32(o);
            cr_assert(i == 0 || e > prev, "block %u: out-links not ascending", j);
            prev = e;
            cr_assert_lt(e, bv->n);
            uint32_t t0 = em__ld32(bv->ptr + (size_t)e * 4);
            uint32_t t1 = em__ld32(bv->ptr + (size_t)e * 4 + 4);
            bool links = false;
            for (uint32_t t = t0; t < t1 && !links; t++) {
                uint32_t enc = em__ld32(bv->src + (size_t)t * EM__ALS_LINK_STRIDE);
                links = (bv->idxbits >= 32 ? 0 : enc >> bv->idxbits) == j;
            }
            cr_assert(links, "block %u: out-link to row %u, which has no link there", j, e);
        }
    }
    free(seen);
    free(want);
}

/* The executors' build sees only the block's own ratings (route.c): built from the
 * segments filtered to the block, the record must be the same bytes. */
static void check_prefiltered(const em__als_cfg *c, const em__als_seg *seg, size_t nseg,
                              uint32_t block, const uint8_t *rec, size_t len)
{
    uint32_t s = c->side;
    em__als_seg *f = calloc(nseg, sizeof *f);
    for (size_t g = 0; g < nseg; g++) {
        em_rating *r = malloc(seg[g].n * sizeof *r + 4);
        size_t m = 0;
        for (size_t t = 0; t < seg[g].n; t++) {
            int32_t d = s ? seg[g].r[t].item : seg[g].r[t].user;
            if (em__als_block_of(c->seed, s, d, c->nblk[s]) == block)
                r[m++] = seg[g].r[t];
        }
        f[g] = (em__als_seg){r, m};
    }
    uint8_t *rec2 = NULL;
    size_t len2 = 0;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em__als_build_block(c, f, nseg, block, &rec2, &len2, &err), 0, "%s", err.msg);
    cr_assert_eq(len2, len);
    cr_assert(memcmp(rec2, rec, len) == 0, "block %u of side %u: the prefiltered build differs",
              block, s);
    em_emit_big_free(rec2, EM__ALS_KEY_LEN);
    for (size_t g = 0; g < nseg; g++)
        free((void *)f[g].r);
    free(f);
}

typedef struct chunk_link {
    uint32_t chunk, at;
} chunk_link;

static int by_chunk(const void *a, const void *b)
{
    const chunk_link *x = a, *y = b;
    return x->chunk != y->chunk ? (x->chunk > y->chunk) - (x->chunk < y->chunk)
                                : (x->at > y->at) - (x->at < y->at);
}

static size_t nearly_sorted;   /* rows left in input order with some descents */

/* A row's m reference ratings and sources, stably ordered by their sources' read chunk,
 * unless the row is nearly in chunk order already (at most one descent per 64 links). */
static void sort_by_chunk(float *want, int32_t *wsrc, size_t m, const em__als_cfg *c,
                          const uint32_t *pos_of)
{
    uint32_t sh = em__als_chunk_shift(c->rank, c->nblk[1 - c->side]);
    chunk_link *o = malloc(m * sizeof *o + 1);
    float *w2 = malloc(m * sizeof *w2 + 1);
    int32_t *s2 = malloc(m * sizeof *s2 + 1);
    size_t desc = 0;
    for (size_t t = 0; t < m; t++) {
        o[t] = (chunk_link){pos_of[wsrc[t]] >> sh, (uint32_t)t};
        desc += t > 0 && o[t].chunk < o[t - 1].chunk;
    }
    nearly_sorted += desc > 0 && desc * 64 <= m;
    if (desc * 64 > m) {
        qsort(o, m, sizeof *o, by_chunk);
        for (size_t t = 0; t < m; t++) {
            w2[t] = want[o[t].at];
            s2[t] = wsrc[o[t].at];
        }
        memcpy(want, w2, m * sizeof *w2);
        memcpy(wsrc, s2, m * sizeof *s2);
    }
    free(o);
    free(w2);
    free(s2);
}

static void check_block(const em__als_cfg *c, const em__als_seg *seg, size_t nseg,
                        uint32_t block)
{
    uint32_t s = c->side;
    uint8_t *rec = NULL;
    size_t len = 0;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em__als_build_block(c, seg, nseg, block, &rec, &len, &err), 0, "%s", err.msg);
    cr_assert_not_null(rec);
    em__als_blockview bv;
    cr_assert_eq(em__als_block_view(em_slice_make(rec, len), &bv, &err), 0, "%s", err.msg);

    /* reference: per dst id of this block, its ratings' values in input order */
    size_t nd = (size_t)c->n[s], total = 0;
    size_t *cnt = calloc(nd + 1, sizeof *cnt);
    for (size_t g = 0; g < nseg; g++)
        for (size_t t = 0; t < seg[g].n; t++) {
            int32_t d = s ? seg[g].r[t].item : seg[g].r[t].user;
            if (em__als_block_of(c->seed, s, d, c->nblk[s]) == block) {
                cnt[d + 1]++;
                total++;
            }
        }
    for (size_t d = 0; d < nd; d++)
        cnt[d + 1] += cnt[d];
    float *want = malloc(total * sizeof *want + 4);
    int32_t *wsrc = malloc(total * sizeof *wsrc + 4);
    size_t *fill = malloc(nd * sizeof *fill);
    memcpy(fill, cnt, nd * sizeof *fill);
    for (size_t g = 0; g < nseg; g++)
        for (size_t t = 0; t < seg[g].n; t++) {
            const em_rating *q = &seg[g].r[t];
            int32_t d = s ? q->item : q->user;
            if (em__als_block_of(c->seed, s, d, c->nblk[s]) == block) {
                want[fill[d]] = q->rating;
                wsrc[fill[d]++] = s ? q->user : q->item;
            }
        }
    cr_assert_eq(bv.nnz, total);
    /* each source's position in its block's message (ids ascending among the linked ones)
     * and read chunk; then each row's reference order: by chunk, input order within one */
    uint32_t ns = (uint32_t)c->n[1 - s], nsb = c->nblk[1 - s];
    uint32_t *pos_of = calloc(ns, sizeof *pos_of), *scnt = calloc(nsb, 4);
    for (size_t t = 0; t < total; t++)
        pos_of[wsrc[t]] = 1;
    for (uint32_t g = 0; g < ns; g++)
        if (pos_of[g])
            pos_of[g] = scnt[em__als_block_of(c->seed, 1 - s, (int32_t)g, nsb)]++;
    uint32_t nch = em__als_chunk_count(scnt, nsb, em__als_chunk_shift(c->rank, nsb)), nrows = 0;
    for (size_t d = 0; d < nd; d++)
        nrows += cnt[d + 1] > cnt[d];
    if (em__als_chunked(nrows, total, nch, c->rank))
        for (size_t d = 0; d < nd; d++)
            sort_by_chunk(want + cnt[d], wsrc + cnt[d], cnt[d + 1] - cnt[d], c, pos_of);
    else
        cr_assert(c->rank < 50 || s == 0, "rank 50, item side: expected a chunked block");
    uint32_t e = 0, mask = bv.idxbits >= 32 ? UINT32_MAX : (1u << bv.idxbits) - 1;
    for (size_t d = 0; d < nd; d++) {
        if (cnt[d + 1] == cnt[d])
            continue;
        cr_assert_lt(e, bv.n);
        cr_assert_eq(em__ld32(bv.ids + (size_t)e * 4), (uint32_t)d, "row %u", e);
        uint32_t t0 = em__ld32(bv.ptr + (size_t)e * 4), t1 = em__ld32(bv.ptr + (size_t)e * 4 + 4);
        cr_assert_eq(t1 - t0, cnt[d + 1] - cnt[d], "row of id %zu", d);
        for (uint32_t t = t0; t < t1; t++) {
            size_t w = cnt[d] + (t - t0);
            cr_assert_eq(em__ldf(bv.r + (size_t)t * EM__ALS_LINK_STRIDE), want[w],
                         "rank %u, id %zu: rating %u of its row out of (chunk, input) order",
                         c->rank, d, t - t0);
            uint32_t enc = em__ld32(bv.src + (size_t)t * EM__ALS_LINK_STRIDE), src = (uint32_t)wsrc[w];
            uint32_t j = bv.idxbits >= 32 ? 0 : enc >> bv.idxbits, pos = enc & mask;
            cr_assert_eq(j, em__als_block_of(c->seed, 1 - s, (int32_t)src, c->nblk[1 - s]));
            cr_assert_eq(pos_of[src], pos, "src %u at position %u, not %u", src, pos,
                         pos_of[src]);
        }
        e++;
    }
    cr_assert_eq(e, bv.n);
    check_outlinks(&bv);
    check_prefiltered(c, seg, nseg, block, rec, len);
    em_emit_big_free(rec, EM__ALS_KEY_LEN);
    free(cnt);
    free(want);
    free(wsrc);
    free(fill);
    free(pos_of);
    free(scnt);
}

static void check_sides(em__als_seg *seg, size_t nseg, uint32_t nbu, uint32_t nbi,
                        uint32_t rank)
{
    float v = 1.0f;   /* distinct values, exact in a float below 2^24 */
    for (size_t g = 0; g < nseg; g++)
        for (size_t t = 0; t < seg[g].n; t++, v += 1.0f)
            ((em_rating *)seg[g].r)[t].rating = v;
    em__als_cfg c = {.magic = EM__ALS_MAGIC, .rank = rank, .nblk = {nbu, nbi},
                     .n = {NU, n_items}, .seed = 3, .lambda = 0.1};
    for (uint32_t s = 0; s < 2; s++) {
        c.side = s;
        for (uint32_t b = 0; b < c.nblk[s]; b++)
            check_block(&c, seg, nseg, b);
    }
}

static void check_both_sides(em__als_seg *seg, size_t nseg, uint32_t rank)
{
    check_sides(seg, nseg, NBLK, NBLK, rank);
}

/* Out-links with one source block (no block bits), 32 (the per-row mask's widest) and 33
 * (the general loop), a few blocks each. */
Test(als_place, outlinks_for_any_number_of_blocks, .timeout = 300)
{
    size_t n = 300000;
    em__als_seg seg = {make_ratings(n, 30, false), n};
    check_sides(&seg, 1, 1, 32, 4);
    check_sides(&seg, 1, 33, 3, 4);
    free((void *)seg.r);
}

/* Random order over three segments, the first past one 4M-rating slice; rank 4 (one read
 * chunk: input order). */
Test(als_place, random_order_rows_keep_input_order, .timeout = 300)
{
    size_t n[3] = {((size_t)1 << 22) + 300000, 1000, 250000};
    em__als_seg seg[3];
    for (int g = 0; g < 3; g++)
        seg[g] = (em__als_seg){make_ratings(n[g], 10 + (uint64_t)g, false), n[g]};
    check_both_sides(seg, 3, 4);
    for (int g = 0; g < 3; g++)
        free((void *)seg[g].r);
}

/* A segment grouped by user (its slices in row order on the user side) between two in
 * random order; rank 50 and 100 items, so the item blocks (50 items of about 9900
 * ratings) are solved chunk by chunk (4096 positions of each of the 2 messages per read
 * chunk: 30000 users per block make 8) and their rows ordered by chunk; the user blocks'
 * are not (als_int.h em__als_chunked). */
Test(als_place, grouped_and_random_segments, .timeout = 300)
{
    size_t n[3] = {200000, 700000, 90000};
    em__als_seg seg[3];
    n_items = 100;
    for (int g = 0; g < 3; g++)
        seg[g] = (em__als_seg){make_ratings(n[g], 20 + (uint64_t)g, g == 1), n[g]};
    check_both_sides(seg, 3, 50);
    n_items = NI;
    for (int g = 0; g < 3; g++)
        free((void *)seg[g].r);
}

/* All grouped by user, rank 50, 100 items: each item row is in ascending user id, which
 * crosses the two messages' chunk boundaries at slightly different ids: a few descents,
 * and the row stays in input order (the build leaves nearly sorted rows alone). */
Test(als_place, grouped_rows_stay_in_input_order, .timeout = 300)
{
    size_t n = 1000000;
    n_items = 100;
    nearly_sorted = 0;
    em__als_seg seg = {make_ratings(n, 40, true), n};
    check_both_sides(&seg, 1, 50);
    cr_assert_gt(nearly_sorted, 0, "no row had descents: the case is not exercised");
    n_items = NI;
    free((void *)seg.r);
}
