/* mllib/als/records.c - ratings from any dataset of text ids (em_als_ratings_from_triples,
 * the input of `ember als --sql`), the dense-id renumbering of the driver's reader and the
 * hook through which the ember command lends ALS its SQL front end.
 *
 * DESIGN. The same two passes as the file reader (source.c), over records instead of byte
 * ranges: ml.als.triple_ids sends each partition's distinct ids (local order of first
 * appearance) to the driver, which interns them partition after partition; ml.als.triple_map
 * rebuilds the maps from a broadcast and turns every record into a FIXED em_rating. The
 * driver holds the id maps, never a rating.
 *
 * FORMATS (host order, als_int.h BYTE ORDER):
 *   triple record  USER NUL ITEM NUL f32 rating (em_als_triple_encode)
 *   context blob   u32 magic "ALS3", u32 flags (bit 0 skip_bad, bit 1 send bitmaps of
 *                  integer ids: dense detection as source.c's), u32 acc_skipped,
 *                  u32 acc_ratings, u32 maps broadcast id (pass 2; 0 in pass 1)
 *   ids record, maps blob: as source.c's */
#include <math.h>
#include <string.h>

#include "mllib/als/als_int.h"

#define TRI_MAGIC 0x33534c41u   /* "ALS3" */

int em_als_triple_encode(em_vbuf *out, const char *user, size_t ulen, const char *item,
                         size_t ilen, float rating, em_err *err)
{
    if (ulen == 0 || ilen == 0 || ulen > EM_ALS_TRIPLE_MAX_ID || ilen > EM_ALS_TRIPLE_MAX_ID)
        return em_err_set(err, EM_EINVAL, "rating ids of %zu and %zu bytes (1..%d)", ulen, ilen,
                          EM_ALS_TRIPLE_MAX_ID);
    if (memchr(user, '\0', ulen) || memchr(item, '\0', ilen))
        return em_err_set(err, EM_EINVAL, "a rating id holds a NUL byte");
    static const char z = '\0';
    if (em_vbuf_append(out, user, ulen) < 0 || em_vbuf_append(out, &z, 1) < 0 ||
        em_vbuf_append(out, item, ilen) < 0 || em_vbuf_append(out, &z, 1) < 0 ||
        em_vbuf_append(out, &rating, 4) < 0)
        return em_err_set(err, EM_ENOMEM, "rating record");
    return 0;
}

/* A triple record's parts; an error message (no FILE:LINE: the caller adds the place). */
static const char *triple_parse(em_slice v, const char **u, size_t *ul, const char **it,
                                size_t *il, float *r)
{
    const char *p = (const char *)v.p, *end = p + v.n;
    const char *z1 = v.n ? memchr(p, '\0', v.n) : NULL;
    if (!z1)
        return "no NUL after the user id";
    const char *z2 = memchr(z1 + 1, '\0', (size_t)(end - z1 - 1));
    if (!z2)
        return "no NUL after the item id";
    if (end - z2 - 1 != 4)
        return "the rating is not 4 bytes";
    *u = p;
    *ul = (size_t)(z1 - p);
    *it = z1 + 1;
    *il = (size_t)(z2 - z1 - 1);
    memcpy(r, z2 + 1, 4);
    if (*ul == 0 || *il == 0 || *ul > EM_ALS_TRIPLE_MAX_ID || *il > EM_ALS_TRIPLE_MAX_ID)
        return "an empty or too long id";
    if (!isfinite(*r))
        return "the rating is not a finite number";
    return NULL;
}

typedef struct tri_ctx {
    uint32_t skip, acc_skipped, acc_ratings, bcast;
} tri_ctx;

static int tri_decode(em_slice b, tri_ctx *x, em_err *err)
{
    if (b.n != 20 || em__ld32(b.p) != TRI_MAGIC)
        return em_err_set(err, EM_ECORRUPT, "als triples: context blob of %zu bytes", b.n);
    x->skip = em__ld32(b.p + 4);
    x->acc_skipped = em__ld32(b.p + 8);
    x->acc_ratings = em__ld32(b.p + 12);
    x->bcast = em__ld32(b.p + 16);
    return 0;
}

/* Walks the records of one partition: f(ud, user, item, rating) for each good one; a bad one
 * fails naming the record (or is counted with skip). */
static int tri_walk(const tri_ctx *x, uint32_t index, em_iter *in, uint64_t *skipped,
                    int (*f)(void *, const char *, size_t, const char *, size_t, float,
                             em_err *),
                    void *ud, em_err *err)
{
    em_rec rec;
    uint64_t k = 0;
    int rc;
    while ((rc = em_iter_next(in, &rec, err)) == 1) {
        const char *u, *it;
        size_t ul, il;
        float r;
        const char *bad = triple_parse(rec.val, &u, &ul, &it, &il, &r);
        k++;
        if (bad) {
            if (x->skip & 1) {
                (*skipped)++;
                continue;
            }
            return em_err_set(err, EM_ECORRUPT, "rating record %llu of partition %u: %s",
                              (unsigned long long)k, index, bad);
        }
        if ((rc = f(ud, u, ul, it, il, r, err)) < 0)
            return rc;
    }
    return rc;
}

typedef struct ids_ud {
    em_idmap *mu, *mi;
    uint64_t n;
} ids_ud;

static int intern_pair(void *ud, const char *u, size_t ul, const char *it, size_t il, float r,
                       em_err *err)
{
    ids_ud *d = ud;
    int32_t a, b;
    (void)r;
    d->n++;
    if (em_idmap_intern(d->mu, u, ul, &a, err) < 0 || em_idmap_intern(d->mi, it, il, &b, err) < 0)
        return err->code;
    return 0;
}

/* PARTITION (pass 1): the partition's ids record (source.c's format, lists only). */
static int fn_triple_ids(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                         em_err *err)
{
    tri_ctx x = {0};   /* set by tri_decode; zeroed for gcc -O2 -Wmaybe-uninitialized */
    em_vbuf b;
    uint64_t skipped = 0;
    ids_ud d = {em_idmap_new(), em_idmap_new(), 0};
    em_vbuf_init(&b);
    int rc = !d.mu || !d.mi ? em_err_set(err, EM_ENOMEM, "als triples: id maps") : 0;
    if (rc == 0 && (rc = tri_decode(c->blob, &x, err)) == 0)
        rc = tri_walk(&x, index, in, &skipped, intern_pair, &d, err);
    if (rc == 0) {   /* modes as source.c's: bit s = side s sent as a bitmap */
        uint32_t hdr[4] = {index, (uint32_t)em_idmap_size(d.mu), (uint32_t)em_idmap_size(d.mi),
                           0};
        int brc = em_vbuf_append(&b, hdr, sizeof hdr) < 0 ? EM_ENOMEM : 0;
        for (int side = 0; brc == 0 && (x.skip & 2) && side < 2; side++)
            if (em__als_put_bitmap(side ? d.mi : d.mu, &b, &brc))
                hdr[3] |= 1u << side;
        if (brc == 0 && !(hdr[3] & 1) && em__als_put_ids(d.mu, &b) < 0)
            brc = EM_ENOMEM;
        if (brc == 0 && !(hdr[3] & 2) && em__als_put_ids(d.mi, &b) < 0)
            brc = EM_ENOMEM;
        if (brc < 0)
            rc = em_err_set(err, EM_ENOMEM, "als triples: ids of partition %u", index);
        else
            memcpy(b.data + 12, &hdr[3], 4);
    }
    if (rc == 0) {
        em_task_acc_add_i64(c->task, x.acc_skipped, (int64_t)skipped);
        em_task_acc_add_i64(c->task, x.acc_ratings, (int64_t)d.n);
        rc = em_emit_val(out, em_slice_make(b.data, b.len), err);
    }
    em_vbuf_destroy(&b);
    em_idmap_free(d.mu);
    em_idmap_free(d.mi);
    return rc;
}

typedef struct map_ud {
    const em_idmap *mu, *mi;
    em_emitter *out;
} map_ud;

static int map_pair(void *ud, const char *u, size_t ul, const char *it, size_t il, float r,
                    em_err *err)
{
    map_ud *d = ud;
    em_rating rt = {em_idmap_find(d->mu, u, ul), em_idmap_find(d->mi, it, il), r};
    if (rt.user < 0 || rt.item < 0)
        return em_err_set(err, EM_EINVAL, "als triples: an id not seen by the first pass "
                          "(did the input change between its two reads?)");
    return em_emit_val(d->out, em_slice_make(&rt, sizeof rt), err);
}

/* PARTITION (pass 2): the partition's ratings with dense ids. */
static int fn_triple_map(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                         em_err *err)
{
    tri_ctx x = {0};   /* set by tri_decode; zeroed for gcc -O2 -Wmaybe-uninitialized */
    em_slice mb;
    uint64_t skipped = 0;
    em_idmap *mu = em_idmap_new(), *mi = em_idmap_new();
    int rc = !mu || !mi ? em_err_set(err, EM_ENOMEM, "als triples: id maps") : 0;
    if (rc == 0 && (rc = tri_decode(c->blob, &x, err)) == 0 &&
        (rc = em_task_broadcast(c->task, x.bcast, &mb, err)) == 0 &&
        (rc = em__als_maps_decode(mb, mu, mi, err)) == 0) {
        map_ud d = {mu, mi, out};
        rc = tri_walk(&x, index, in, &skipped, map_pair, &d, err);
    }
    em_idmap_free(mu);
    em_idmap_free(mi);
    return rc;
}

/* Pass 1 with blob (flags in blob[1]) into users/items: skip_sides, need_lists, dense as
 * em__als_merge_ids; the counts of this pass into out. */
static int triple_pass1(em_context *sc, em_rdd *recs, uint32_t blob[5], uint32_t skip_sides,
                        bool *need_lists, uint32_t *dense, em_idmap *users, em_idmap *items,
                        em_als_ratings *out, em_err *err)
{
    int64_t s0 = em_accumulator_i64(sc, blob[2]), n0 = em_accumulator_i64(sc, blob[3]);
    em_rdd *ids = em_rdd_map_partitions(recs, EM__ALS_FN_TRIPLE_IDS,
                                        em_slice_make(blob, 5 * sizeof *blob), false);
    int rc = em__als_merge_ids(ids, users, items, skip_sides, need_lists, dense, err);
    em_rdd_release(ids);
    out->skipped = (uint64_t)(em_accumulator_i64(sc, blob[2]) - s0);
    out->n = (uint64_t)(em_accumulator_i64(sc, blob[3]) - n0);
    out->lines = out->n + out->skipped;
    return rc;
}

int em_als_ratings_from_triples(em_context *sc, em_rdd *recs,
                                const em_ratings_read_opts *opts, em_idmap *users,
                                em_idmap *items, em_als_ratings *out, em_err *err)
{
    em_vbuf maps;
    uint32_t bcast = 0, dense = 0;
    memset(out, 0, sizeof *out);
    if (em_als_register() < 0 || em_als_io_register() < 0)
        return em_err_set(err, EM_EINVAL, "als: a task function name is taken");
    bool skip_bad = opts && opts->skip_bad_lines, again = false;
    bool detect = opts && opts->dense_ids && em_idmap_size(users) == 0 &&
                  em_idmap_size(items) == 0;
    uint32_t acc_s = em_accumulator_new(sc, "ml.als.skipped_records");
    uint32_t acc_n = em_accumulator_new(sc, "ml.als.ratings");
    uint32_t blob[5] = {TRI_MAGIC, (skip_bad ? 1u : 0u) | (detect ? 2u : 0u), acc_s, acc_n, 0};
    int rc = triple_pass1(sc, recs, blob, 0, detect ? &again : NULL, &dense, users, items, out,
                          err);
    if (rc == 0 && again) {   /* a side did not prove dense: its lists, in order */
        blob[1] = skip_bad ? 1u : 0u;
        rc = triple_pass1(sc, recs, blob, dense, NULL, NULL, users, items, out, err);
    }
    if (rc < 0)
        return rc;
    out->dense = dense;
    em_vbuf_init(&maps);
    if (em__als_maps_blob(users, items, dense, &maps) < 0) {
        em_vbuf_destroy(&maps);
        return em_err_set(err, EM_ENOMEM, "als triples: id maps");
    }
    bcast = em_broadcast(sc, em_slice_make(maps.data, maps.len), err);
    em_vbuf_destroy(&maps);
    if (!bcast)
        return err->code ? err->code : em_err_set(err, EM_ENOMEM, "als triples: broadcast");
    blob[4] = bcast;
    out->ratings = em_rdd_persist(
        em_rdd_map_partitions_fixed(recs, EM__ALS_FN_TRIPLE_MAP, em_slice_make(blob, sizeof blob),
                                    false, sizeof(em_rating)),
        EM_PERSIST_MEMORY_AND_DISK);
    out->maps_bcast = bcast;
    if (em_rdd_error(out->ratings)) {
        rc = em_err_copy(err, em_rdd_error(out->ratings));
        em_als_ratings_release(sc, out);
    }
    return rc;
}

/* ---------------------------------------------------------------- dense renumbering */

int em_ratings_dense_renumber(em_ratings *r, em_idmap *users, em_idmap *items,
                              uint32_t *dense, em_err *err)
{
    int32_t *perm[2] = {NULL, NULL};
    uint32_t d = 0;
    int rc = 0;
    for (int side = 0; rc >= 0 && side < 2; side++)
        if ((rc = em__idmap_renumber_dense(side ? items : users, &perm[side], err)) == 1)
            d |= 1u << side;
    if (rc >= 0) {
        rc = 0;
        for (size_t i = 0; i < r->n; i++) {
            if (perm[0])
                r->recs[i].user = perm[0][r->recs[i].user];
            if (perm[1])
                r->recs[i].item = perm[1][r->recs[i].item];
        }
    }
    em_free(perm[0]);
    em_free(perm[1]);
    if (dense)
        *dense = rc == 0 ? d : 0;
    return rc;
}

/* ---------------------------------------------------------------- registration, SQL hook */

static const em_fn_entry io_fns[] = {
    {EM__ALS_FN_TRIPLE_IDS, EM_FN_PARTITION, EM_FN(fn_triple_ids)},
    {EM__ALS_FN_TRIPLE_MAP, EM_FN_PARTITION, EM_FN(fn_triple_map)},
};

int em_als_io_register(void)
{
    int rc = em_fn_register_table(io_fns, sizeof io_fns / sizeof io_fns[0]);
    return rc < 0 ? rc : em__als_ranking_register();
}

static const em_als_sql_ops *sql_ops;

void em_als_cli_set_sql(const em_als_sql_ops *ops)
{
    sql_ops = ops;
}

const em_als_sql_ops *em__als_sql_ops(void);
const em_als_sql_ops *em__als_sql_ops(void)
{
    return sql_ops;
}
