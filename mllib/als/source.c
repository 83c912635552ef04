/* mllib/als/source.c - rating files read on the executors (em_als_read_ratings) and test
 * metrics computed there (em_als_evaluate_rdd).
 *
 * DESIGN. The driver lists the files, detects each one's format (first line, as
 * em_ratings_read does) and cuts them into byte ranges (SPLITS below); one partition per
 * range. Two passes of the same parser (ratings.c, fast path included) run on the executors:
 *   1. ml.als.read_ids: parses its range into local id maps (numbered in local order of
 *      first appearance) and emits them: one record per range. The driver interns them, range
 *      after range, into the caller's maps: an id new to the maps first appears in the
 *      earliest range holding it, at its local first appearance, so the numbering is exactly
 *      em_ratings_read's (the parallel reader's merge, ratings.c). Lines, skipped lines and
 *      ratings are counted by accumulators; a bad line fails the job with FILE:LINE.
 *   2. ml.als.read: rebuilds the maps from a broadcast (every id is known now), parses its
 *      range again and emits each rating as a FIXED 12-byte em_rating with dense ids.
 * The driver holds the id maps (needed for output) and one record of ids per range while
 * merging, never a rating. Ids travel as text in pass 1 (the distinct ids of a range, not
 * one per rating).
 * SPLITS: each file is cut into pieces of `split` bytes, split = total / (2 x default
 * parallelism) within [1 MiB, 128 MiB], a file's last piece up to 1.1 x split; a range owns
 * the lines starting in it (em_line_align's rule), so every line is parsed exactly once.
 *
 * FORMATS (host order, als_int.h BYTE ORDER):
 *   split record   u32 file, u32 format, u64 start, u64 end, u32 split index
 *   context blob   u32 magic "ALSR", u32 flags (bit 0 skip_bad, bit 1 send bitmaps of
 *                  integer ids: dense detection), u32 acc_lines, u32 acc_skipped,
 *                  u32 acc_ratings, u32 maps broadcast id (pass 2; 0 in pass 1),
 *                  u32 nfiles, then nfiles NUL-terminated paths
 *   ids record     u32 split, u32 n_users, u32 n_items, u32 modes (bit s: side s (0 users,
 *                  1 items) sent as a bitmap), then per bitmap side u32 nbits (max id + 1)
 *                  and ceil(nbits / 8) bytes (bit v: id v occurs), then the ids of the
 *                  other sides NUL-terminated (users then items, in local index order)
 *   maps blob      u32 n_users, u32 n_items, u32 dense flags (bit 0/1: users/items numbered
 *                  by value, bit 2/3: from 1), then the ids of the other sides
 *                  NUL-terminated in index order
 * DENSE IDS (em_ratings_read_opts.dense_ids): a side whose ids are all canonical integers
 * in every range goes as a bitmap; when the union is exactly 0..n-1 or 1..n the side is
 * numbered by value and no list of its ids is ever made, shipped or interned. Otherwise
 * pass 1 runs once more sending lists (the first-appearance numbering needs them).
 *   score blob     u32 magic "ALSE", u32 rank, i32 n_users, i32 n_items, u32 model
 *                  broadcast id (the model: n_users*rank then n_items*rank floats)
 * ONE PASS (dense detection outside the Netflix layout): ml.als.read_raw emits RAW RATINGS,
 * em_rating records whose ids are their integer values (-1: not a canonical integer below
 * EM__IDMAP_DIRECT_MAX), persisted; ml.als.raw_ids turns each partition into its ids
 * record (bitmaps only; a side with a -1 sends nothing and is not dense); ml.als.shift
 * (blob: i32 user base, i32 item base) subtracts the bases of sides numbered from 1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/als/als_int.h"

#define SRC_MAGIC 0x414c5352u     /* "ALSR" */
#define SCORE_MAGIC 0x414c5345u   /* "ALSE" */
#define SPLIT_REC 28
#define SPLIT_MIN ((uint64_t)1 << 20)
#define SPLIT_MAX ((uint64_t)128 << 20)

/* ---------------------------------------------------------------- task side */

typedef struct src_ctx {
    uint32_t skip, acc[3], bcast, nfiles;
    const char **paths;      /* em_malloc'd array pointing into the blob */
} src_ctx;

static int src_decode(em_slice b, src_ctx *x, em_err *err)
{
    x->paths = NULL;
    if (b.n < 28 || em__ld32(b.p) != SRC_MAGIC)
        return em_err_set(err, EM_ECORRUPT, "als read: context blob of %zu bytes", b.n);
    x->skip = em__ld32(b.p + 4);
    for (int i = 0; i < 3; i++)
        x->acc[i] = em__ld32(b.p + 8 + 4 * i);
    x->bcast = em__ld32(b.p + 20);
    x->nfiles = em__ld32(b.p + 24);
    if (x->nfiles == 0 || x->nfiles > (b.n - 28) / 2 ||
        !(x->paths = em_malloc(x->nfiles * sizeof *x->paths)))
        return em_err_set(err, EM_ECORRUPT, "als read: %u files in the context", x->nfiles);
    const char *p = (const char *)b.p + 28, *end = (const char *)b.p + b.n;
    for (uint32_t i = 0; i < x->nfiles; i++) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z) {
            em_free(x->paths);
            x->paths = NULL;
            return em_err_set(err, EM_ECORRUPT, "als read: file list cut short");
        }
        x->paths[i] = p;
        p = z + 1;
    }
    return 0;
}

/* The one split record of this partition into *rg. */
static int src_split(const src_ctx *x, em_iter *in, em__ratings_range *rg, uint32_t *idx,
                     em_err *err)
{
    em_rec r;
    int rc = em_iter_next(in, &r, err);
    if (rc < 0)
        return rc;
    if (rc == 0 || r.val.n != SPLIT_REC || em__ld32(r.val.p) >= x->nfiles)
        return em_err_set(err, EM_ECORRUPT, "als read: bad split record");
    uint32_t fmt = em__ld32(r.val.p + 4);
    if (fmt < EM_RATINGS_TSV || fmt > EM_RATINGS_NETFLIX)
        return em_err_set(err, EM_ECORRUPT, "als read: format %u", fmt);
    *rg = (em__ratings_range){.path = x->paths[em__ld32(r.val.p)],
                              .fmt = (em_ratings_format)fmt, .skip_bad = (x->skip & 1) != 0,
                              .start = em_load_le64(r.val.p + 8),
                              .end = em_load_le64(r.val.p + 16)};
    *idx = em__ld32(r.val.p + 24);
    return 0;
}

/* Pass 1's flush: counts the ratings and drops them. */
static int count_drop(void *ud, em_ratings *out, em_err *err)
{
    (void)err;
    *(uint64_t *)ud += out->n;
    out->n = 0;
    return 0;
}

/* Appends map m's ids (NUL-terminated, index order) to b. */
int em__als_put_ids(const em_idmap *m, em_vbuf *b)
{
    char buf[24];
    for (int32_t i = 0; i < em_idmap_size(m); i++) {
        const char *s = em_idmap_name(m, i, buf);
        if (em_vbuf_append(b, s, strlen(s) + 1) < 0)
            return EM_ENOMEM;
    }
    return 0;
}
#define put_ids em__als_put_ids

/* The bitmap of m's ids when they are all canonical integers below EM__IDMAP_DIRECT_MAX
 * (rev >= 0): appends u32 nbits (max id + 1, 0 for an empty map) and the bits; false
 * (nothing appended) when one id is a string. */
bool em__als_put_bitmap(const em_idmap *m, em_vbuf *b, int *rc)
{
    int64_t hi = -1;
    for (int32_t i = 0; i < m->n; i++) {
        if (m->rev[i] < 0)
            return false;
        hi = m->rev[i] > hi ? m->rev[i] : hi;
    }
    uint32_t nbits = (uint32_t)(hi + 1);
    size_t at = b->len, nb = ((size_t)nbits + 7) / 8;
    if (em_vbuf_append(b, &nbits, 4) < 0 || em_vbuf_reserve(b, nb) < 0) {
        *rc = EM_ENOMEM;
        return true;
    }
    uint8_t *bits = b->data + at + 4;
    memset(bits, 0, nb);
    for (int32_t i = 0; i < m->n; i++)
        bits[m->rev[i] >> 3] |= (uint8_t)(1u << (m->rev[i] & 7));
    b->len = at + 4 + nb;
    return true;
}

/* PARTITION (pass 1) over the split records: emits the range's ids record. */
int em__als_fn_read_ids(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                       em_err *err)
{
    src_ctx x;
    em__ratings_range rg;
    em_ratings r;
    em_vbuf b;
    uint32_t split = 0;
    uint64_t nrat = 0;
    em_idmap *mu = em_idmap_new(), *mi = em_idmap_new();
    em_ratings_init(&r);
    em_vbuf_init(&b);
    int rc = !mu || !mi ? em_err_set(err, EM_ENOMEM, "als read: id maps") : 0;
    if (rc == 0 && (rc = src_decode(c->blob, &x, err)) == 0) {
        if ((rc = src_split(&x, in, &rg, &split, err)) == 0)
            rc = em__ratings_parse_range(&rg, mu, mi, &r, count_drop, &nrat, err);
        em_free(x.paths);
    }
    if (rc == 0) {
        /* modes: bit s set = side s sent as a bitmap (dense detection asked, all integers) */
        uint32_t hdr[4] = {split, (uint32_t)em_idmap_size(mu), (uint32_t)em_idmap_size(mi), 0};
        int brc = 0;
        if (em_vbuf_append(&b, hdr, sizeof hdr) < 0)
            brc = EM_ENOMEM;
        for (int side = 0; brc == 0 && (x.skip & 2) && side < 2; side++)
            if (em__als_put_bitmap(side ? mi : mu, &b, &brc))
                hdr[3] |= 1u << side;
        if (brc == 0 && !(hdr[3] & 1) && put_ids(mu, &b) < 0)
            brc = EM_ENOMEM;
        if (brc == 0 && !(hdr[3] & 2) && put_ids(mi, &b) < 0)
            brc = EM_ENOMEM;
        if (brc < 0)
            rc = em_err_set(err, EM_ENOMEM, "als read: ids of range %u", split);
        else
            memcpy(b.data + 12, &hdr[3], 4);
    }
    if (rc == 0) {
        em_task_acc_add_i64(c->task, x.acc[0], (int64_t)r.lines);
        em_task_acc_add_i64(c->task, x.acc[1], (int64_t)r.skipped);
        em_task_acc_add_i64(c->task, x.acc[2], (int64_t)nrat);
        rc = em_emit_val(out, em_slice_make(b.data, b.len), err);
    }
    (void)index;
    em_vbuf_destroy(&b);
    em_ratings_destroy(&r);
    em_idmap_free(mu);
    em_idmap_free(mi);
    return rc;
}

/* Interns n NUL-terminated ids from *p (advanced) into m. */
int em__als_take_ids(em_idmap *m, const char **p, const char *end, uint32_t n, em_err *err)
{
    for (uint32_t i = 0; i < n; i++) {
        const char *z = memchr(*p, '\0', (size_t)(end - *p));
        int32_t v;
        if (!z)
            return em_err_set(err, EM_ECORRUPT, "als read: id list cut short");
        if (em_idmap_intern(m, *p, (size_t)(z - *p), &v, err) < 0)
            return err->code;
        *p = z + 1;
    }
    return 0;
}

int em__als_maps_blob(const em_idmap *users, const em_idmap *items, uint32_t dense,
                      em_vbuf *b)
{
    uint32_t hdr[3] = {(uint32_t)em_idmap_size(users), (uint32_t)em_idmap_size(items), dense};
    for (int side = 0; side < 2; side++)
        if ((dense >> side & 1) && em__idmap_dense_base(side ? items : users) == 1)
            hdr[2] |= 4u << side;
    if (em_vbuf_append(b, hdr, sizeof hdr) < 0 ||
        (!(dense & 1) && put_ids(users, b) < 0) || (!(dense & 2) && put_ids(items, b) < 0))
        return EM_ENOMEM;
    return 0;
}

int em__als_maps_decode(em_slice mb, em_idmap *users, em_idmap *items, em_err *err)
{
    if (mb.n < 12)
        return em_err_set(err, EM_ECORRUPT, "als read: id maps of %zu bytes", mb.n);
    const char *p = (const char *)mb.p + 12, *end = (const char *)mb.p + mb.n;
    uint32_t fl = em__ld32(mb.p + 8);
    for (int side = 0; side < 2; side++) {
        em_idmap *m = side ? items : users;
        uint32_t n = em__ld32(mb.p + 4 * side);
        int rc;
        if (fl >> side & 1) {
            if (n > EM__IDMAP_DIRECT_MAX - 1)
                return em_err_set(err, EM_ECORRUPT, "als read: %u dense ids", n);
            rc = em__idmap_fill_dense(m, (fl >> (2 + side) & 1) ? 1 : 0, (int32_t)n, err);
        } else
            rc = em__als_take_ids(m, &p, end, n, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

typedef struct emit_ud {
    em_emitter *out;
    int32_t nu, ni;   /* the maps' sizes: a rating past them names an id the maps lacked */
} emit_ud;

static int emit_ratings(void *ud, em_ratings *r, em_err *err)
{
    emit_ud *e = ud;
    for (size_t i = 0; i < r->n; i++)
        if (r->recs[i].user >= e->nu || r->recs[i].item >= e->ni)
            return em_err_set(err, EM_EINVAL, "als read: an id not seen by the first pass "
                              "(did the file change while it was read?)");
    int rc = em_emit_fixed(e->out, r->recs, sizeof *r->recs, r->n, err);
    r->n = 0;
    return rc;
}

/* PARTITION (pass 2) over the split records: the range's ratings with dense ids. */
int em__als_fn_read(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                   em_err *err)
{
    src_ctx x;
    em__ratings_range rg;
    em_ratings r;
    em_slice mb;
    uint32_t split;
    em_idmap *mu = em_idmap_new(), *mi = em_idmap_new();
    em_ratings_init(&r);
    int rc = !mu || !mi ? em_err_set(err, EM_ENOMEM, "als read: id maps") : 0;
    if (rc == 0 && (rc = src_decode(c->blob, &x, err)) == 0) {
        if ((rc = em_task_broadcast(c->task, x.bcast, &mb, err)) == 0)
            rc = em__als_maps_decode(mb, mu, mi, err);
        if (rc == 0 && (rc = src_split(&x, in, &rg, &split, err)) == 0) {
            emit_ud e = {out, em_idmap_size(mu), em_idmap_size(mi)};
            rc = em__ratings_parse_range(&rg, mu, mi, &r, emit_ratings, &e, err);
        }
        em_free(x.paths);
    }
    (void)index;
    em_ratings_destroy(&r);
    em_idmap_free(mu);
    em_idmap_free(mi);
    return rc;
}

/* ---------------------------------------------------------------- one pass for dense ids */

typedef struct raw_ud {
    em_emitter *out;
    uint64_t n;
} raw_ud;

/* The RAW mode parser (em__ratings_range.raw) has pushed each id as its value already, so
 * the ratings go out as they are: no id map is made or read. The engine takes records one
 * at a time (engine/plan/fn.h has no emit of a run of FIXED records). */
static int emit_raw(void *ud, em_ratings *r, em_err *err)
{
    raw_ud *e = ud;
    int rc = em_emit_fixed(e->out, r->recs, sizeof *r->recs, r->n, err);
    e->n += r->n;
    r->n = 0;
    return rc;
}

/* PARTITION (the one pass, RAW RATINGS) over the split records: the range's ratings with
 * each id as its integer value (-1 for an id that is not a canonical integer below
 * EM__IDMAP_DIRECT_MAX: em__idmap_raw_id, exactly what the local maps' rev[] held when this
 * pass interned ids); lines, skipped lines and ratings counted as in pass 1. */
int em__als_fn_read_raw(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                        em_err *err)
{
    src_ctx x;
    em__ratings_range rg;
    em_ratings r;
    uint32_t split = 0;
    raw_ud e = {out, 0};
    em_ratings_init(&r);
    int rc = src_decode(c->blob, &x, err);
    if (rc == 0) {
        if ((rc = src_split(&x, in, &rg, &split, err)) == 0) {
            rg.raw = true;
            rc = em__ratings_parse_range(&rg, NULL, NULL, &r, emit_raw, &e, err);
        }
        em_free(x.paths);
    }
    if (rc == 0) {
        em_task_acc_add_i64(c->task, x.acc[0], (int64_t)r.lines);
        em_task_acc_add_i64(c->task, x.acc[1], (int64_t)r.skipped);
        em_task_acc_add_i64(c->task, x.acc[2], (int64_t)e.n);
    }
    (void)index;
    em_ratings_destroy(&r);
    return rc;
}

/* The ids seen of one side of a partition: a bitmap while they are all integers. */
typedef struct side_ids {
    uint8_t *bits;
    size_t cap;     /* bytes of bits, zeroed */
    int64_t hi;     /* the largest id, -1 for none */
    int32_t last;   /* the id just seen; ids are >= -1 */
    bool str;       /* an id that is not an integer: no bitmap */
} side_ids;

/* A bitmap grown to hold byte k (zeroed past cap), returned by value: the loop's sides keep
 * no address taken, so their fields stay in registers. bits NULL when out of memory (the
 * old bitmap is then the caller's to free). */
typedef struct side_bits {
    uint8_t *bits;
    size_t cap;
} side_bits;

static __attribute__((noinline)) side_bits side_grow(uint8_t *bits, size_t cap, size_t k)
{
    size_t ncap = cap;
    uint8_t *g = em_arr_grow(bits, &ncap, k + 1, 1);
    if (g)
        memset(g + cap, 0, ncap - cap);
    return (side_bits){g, ncap};
}

/* Records id; false when out of memory. The two sides are separate locals of the caller's
 * loop: kept in arrays indexed by side, every rating's loads of hi and last waited on the
 * previous rating's stores to them. */
static inline __attribute__((always_inline)) bool side_mark(side_ids *s, int32_t id)
{
    /* A run of one id (a file grouped by user) sets its bit once: setting it again and
     * again made every rating wait for the previous one's store. */
    if (id == s->last)
        return true;
    s->last = id;
    if (id < 0 || s->str) {
        s->str = true;
        return true;
    }
    size_t k = (size_t)id >> 3;
    if (EM_UNLIKELY(k >= s->cap)) {
        side_bits g = side_grow(s->bits, s->cap, k);
        if (!g.bits)
            return false;
        s->bits = g.bits;
        s->cap = g.cap;
    }
    s->bits[k] |= (uint8_t)(1u << (id & 7));
    s->hi = id > s->hi ? id : s->hi;
    return true;
}

/* PARTITION over RAW RATINGS: the partition's ids record (FORMATS) with a bitmap for each
 * side whose ids are all integers, nothing for the other (its lists would need the parse:
 * the caller reads the files again). The ids of a range's ratings are exactly its local
 * maps' (outside the Netflix layout an id is interned only with a rating), so the bitmaps
 * are pass 1's. */
int em__als_fn_raw_ids(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                       em_err *err)
{
    em_rec_batch b;
    side_ids sd[2] = {{NULL, 0, -1, -2, false}, {NULL, 0, -1, -2, false}};
    em_vbuf v;
    int rc;
    (void)c;
    em_vbuf_init(&v);
    while ((rc = em_iter_next_batch(in, &b, err)) == 1) {
        if (b.kind != EM_REC_FIXED || b.width != sizeof(em_rating)) {
            rc = em_err_set(err, EM_ECORRUPT, "als read: raw ratings of width %u", b.width);
            goto out;
        }
        side_ids u = sd[0], it = sd[1];   /* in registers through the batch */
        bool ok = true;
        for (uint64_t i = 0; i < b.nrecs && ok; i++) {
            int32_t id[2];
            memcpy(id, b.data + i * sizeof(em_rating), 8);
            ok = side_mark(&u, id[0]) && side_mark(&it, id[1]);
        }
        sd[0] = u;
        sd[1] = it;
        if (!ok) {
            rc = em_err_set(err, EM_ENOMEM, "als read: an id bitmap of range %u", index);
            goto out;
        }
    }
    if (rc < 0)
        goto out;
    uint32_t hdr[4] = {index, 0, 0, (sd[0].str ? 0u : 1u) | (sd[1].str ? 0u : 2u)};
    rc = em_vbuf_append(&v, hdr, sizeof hdr) < 0 ? EM_ENOMEM : 0;
    for (int s = 0; rc == 0 && s < 2; s++) {
        uint32_t nbits = (uint32_t)(sd[s].hi + 1);
        if (!sd[s].str && (em_vbuf_append(&v, &nbits, 4) < 0 ||
                           (nbits && em_vbuf_append(&v, sd[s].bits, ((size_t)nbits + 7) / 8) < 0)))
            rc = EM_ENOMEM;
    }
    rc = rc < 0 ? em_err_set(err, EM_ENOMEM, "als read: ids of range %u", index)
                : em_emit_val(out, em_slice_make(v.data, v.len), err);
out:
    em_free(sd[0].bits);
    em_free(sd[1].bits);
    em_vbuf_destroy(&v);
    return rc;
}

/* PARTITION over RAW RATINGS of dense sides: the ratings with dense indices (value minus
 * the side's base; blob: i32 user base, i32 item base). */
int em__als_fn_shift(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    em_rec_batch b;
    int rc;
    (void)index;
    if (c->blob.n != 8)
        return em_err_set(err, EM_ECORRUPT, "als read: shift blob of %zu bytes", c->blob.n);
    int32_t base[2] = {(int32_t)em__ld32(c->blob.p), (int32_t)em__ld32(c->blob.p + 4)};
    while ((rc = em_iter_next_batch(in, &b, err)) == 1) {
        if (b.kind != EM_REC_FIXED || b.width != sizeof(em_rating))
            return em_err_set(err, EM_ECORRUPT, "als read: raw ratings of width %u", b.width);
        for (uint64_t i = 0; i < b.nrecs; i++) {
            em_rating q;
            memcpy(&q, b.data + i * sizeof q, sizeof q);
            q.user -= base[0];
            q.item -= base[1];
            if ((rc = em_emit_val(out, em_slice_make(&q, sizeof q), err)) < 0)
                return rc;
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- test metrics */

/* PARTITION over FIXED ratings: (squared error, absolute error, scored, cold) as 4 doubles,
 * with the model broadcast (score blob). */
int em__als_fn_score(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err)
{
    em_slice b = c->blob, mv;
    em_rec_batch rb;
    double acc[4] = {0, 0, 0, 0};
    int rc;
    (void)index;
    if (b.n != 20 || em__ld32(b.p) != SCORE_MAGIC)
        return em_err_set(err, EM_ECORRUPT, "als score: context blob of %zu bytes", b.n);
    uint32_t k = em__ld32(b.p + 4);
    int32_t nu = (int32_t)em__ld32(b.p + 8), ni = (int32_t)em__ld32(b.p + 12);
    if ((rc = em_task_broadcast(c->task, em__ld32(b.p + 16), &mv, err)) < 0)
        return rc;
    if (k == 0 || nu < 0 || ni < 0 || mv.n != ((size_t)nu + (size_t)ni) * k * 4)
        return em_err_set(err, EM_ECORRUPT, "als score: model of %zu bytes", mv.n);
    em_als_model m = {.rank = (int)k, .n_users = nu, .n_items = ni,
                      .user_factors = (float *)(uintptr_t)mv.p,
                      .item_factors = (float *)(uintptr_t)(mv.p + (size_t)nu * k * 4)};
    while ((rc = em_iter_next_batch(in, &rb, err)) == 1) {
        if (rb.kind != EM_REC_FIXED || rb.width != sizeof(em_rating))
            return em_err_set(err, EM_EINVAL, "als score: ratings must be FIXED 12-byte "
                              "records");
        for (uint64_t i = 0; i < rb.nrecs; i++) {
            em_rating r;
            memcpy(&r, rb.data + i * sizeof r, sizeof r);
            float p = em_als_predict(&m, r.user, r.item);
            if (isnan(p)) {
                acc[3]++;
                continue;
            }
            double d = (double)r.rating - p;
            acc[0] += d * d;
            acc[1] += fabs(d);
            acc[2]++;
        }
    }
    if (rc < 0)
        return rc;
    return em_emit_val(out, em_slice_make(acc, sizeof acc), err);
}

/* ---------------------------------------------------------------- driver side */

/* The split records of fl (formats in fmts) into recs/buf; returns the count. */
static size_t make_splits(const em_file_list *fl, const em_ratings_format *fmts, uint32_t dp,
                          uint8_t **buf)
{
    uint64_t total = 0, split;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < fl->n; i++)
        total += fl->sizes[i];
    split = total / (2 * (uint64_t)(dp ? dp : 1));
    split = split < SPLIT_MIN ? SPLIT_MIN : split > SPLIT_MAX ? SPLIT_MAX : split;
    *buf = NULL;
    for (size_t f = 0; f < fl->n; f++) {
        if (fl->sizes[f] == 0)
            continue;
        for (uint64_t off = 0; off < fl->sizes[f];) {
            uint64_t end = fl->sizes[f] - off > split + split / 10 ? off + split : fl->sizes[f];
            *buf = em_arr_xgrow(*buf, &cap, (n + 1) * SPLIT_REC, 1);
            uint8_t *p = *buf + n * SPLIT_REC;
            uint32_t hdr[2] = {(uint32_t)f, (uint32_t)fmts[f]}, idx = (uint32_t)n;
            memcpy(p, hdr, 8);
            em_store_le64(p + 8, off);
            em_store_le64(p + 16, end);
            memcpy(p + 24, &idx, 4);
            n++;
            off = end;
        }
    }
    return n;
}

static void src_blob(const em_file_list *fl, uint32_t skip, const uint32_t acc[3],
                     uint32_t bcast, em_vbuf *b)
{
    uint32_t hdr[7] = {SRC_MAGIC, skip, acc[0], acc[1], acc[2], bcast, (uint32_t)fl->n};
    em_vbuf_clear(b);
    em_vbuf_append(b, hdr, sizeof hdr);
    for (size_t i = 0; i < fl->n; i++)
        em_vbuf_append(b, fl->paths[i], strlen(fl->paths[i]) + 1);
}

/* One pass-1 record's parts: the bitmaps (bits NULL when the side sent a list) and the
 * start of its lists. */
typedef struct ids_rec {
    uint32_t n[2], modes, nbits[2];
    const uint8_t *bits[2];
    const char *lists, *end;
} ids_rec;

static int ids_rec_parse(em_slice v, size_t i, ids_rec *r, em_err *err)
{
    if (v.n < 16 || em__ld32(v.p) != i)
        return em_err_set(err, EM_ECORRUPT, "als read: ids record %zu", i);
    r->n[0] = em__ld32(v.p + 4);
    r->n[1] = em__ld32(v.p + 8);
    r->modes = em__ld32(v.p + 12);
    size_t off = 16;
    for (int s = 0; s < 2; s++) {
        r->bits[s] = NULL;
        r->nbits[s] = 0;
        if (!(r->modes >> s & 1))
            continue;
        if (v.n - off < 4)
            return em_err_set(err, EM_ECORRUPT, "als read: ids record %zu cut short", i);
        r->nbits[s] = em__ld32(v.p + off);
        size_t nb = ((size_t)r->nbits[s] + 7) / 8;
        if (r->nbits[s] > EM__IDMAP_DIRECT_MAX || v.n - off - 4 < nb)
            return em_err_set(err, EM_ECORRUPT, "als read: ids record %zu: bitmap", i);
        r->bits[s] = v.p + off + 4;
        off += 4 + nb;
    }
    r->lists = (const char *)v.p + off;
    r->end = (const char *)v.p + v.n;
    return 0;
}

/* The union of the sides' bitmaps: dense sides filled into their maps (bit in *dense). */
static int union_dense(const em_records *recs, int side, em_idmap *m, uint32_t *dense,
                       bool *need_lists, em_err *err)
{
    uint32_t nbits = 0;
    ids_rec r;
    int rc = 0;
    for (size_t i = 0; i < recs->n; i++) {
        if ((rc = ids_rec_parse(recs->recs[i].val, i, &r, err)) < 0)
            return rc;
        if (!r.bits[side]) {   /* a range held a string id: not dense */
            *need_lists = true;
            return 0;
        }
        nbits = r.nbits[side] > nbits ? r.nbits[side] : nbits;
    }
    if (nbits == 0)
        return 0;   /* no ids at all */
    size_t nb = ((size_t)nbits + 7) / 8;
    uint8_t *u = em_calloc(nb, 1);
    if (!u)
        return em_err_set(err, EM_ENOMEM, "als read: bitmap of %u ids", nbits);
    for (size_t i = 0; i < recs->n; i++) {
        ids_rec_parse(recs->recs[i].val, i, &r, err);
        for (size_t k = 0; k < ((size_t)r.nbits[side] + 7) / 8; k++)
            u[k] |= r.bits[side][k];
    }
    uint64_t cnt = 0;
    for (size_t k = 0; k < nb; k++)
        cnt += (uint64_t)__builtin_popcount(u[k]);
    int base = (u[0] & 1) ? 0 : (u[0] & 2) ? 1 : -1;
    em_free(u);
    /* ids within 0..nbits-1, the top one set: dense when every one from base up is there */
    if (base >= 0 && cnt == (uint64_t)nbits - (uint64_t)base) {
        if ((rc = em__idmap_fill_dense(m, base, (int32_t)cnt, err)) < 0)
            return rc;
        *dense |= 1u << side;
    } else
        *need_lists = true;
    return 0;
}

int em__als_merge_ids(em_rdd *ids, em_idmap *users, em_idmap *items, uint32_t skip_sides,
                      bool *need_lists, uint32_t *dense, em_err *err)
{
    em_records recs = {0};
    uint32_t dn = 0;
    bool again = false;
    int rc = em_rdd_error(ids) ? em_err_copy(err, em_rdd_error(ids))
                               : em_rdd_collect(ids, &recs, err);
    for (int side = 0; rc == 0 && need_lists && side < 2; side++)
        if (!(skip_sides >> side & 1))
            rc = union_dense(&recs, side, side ? items : users, &dn, &again, err);
    if (rc == 0 && need_lists)
        *need_lists = again;
    for (size_t i = 0; rc == 0 && !again && i < recs.n; i++) {   /* collect keeps order */
        ids_rec r;
        if ((rc = ids_rec_parse(recs.recs[i].val, i, &r, err)) < 0)
            break;
        const char *p = r.lists;
        for (int side = 0; rc == 0 && side < 2; side++) {
            if (r.bits[side])
                continue;   /* sent as a bitmap: the side is dense (or skipped) */
            em_idmap *m = side ? items : users;
            if ((skip_sides | dn) >> side & 1) {   /* filled densely: walk past the list */
                for (uint32_t k = 0; rc == 0 && k < r.n[side]; k++) {
                    const char *z = memchr(p, '\0', (size_t)(r.end - p));
                    if (!z)
                        rc = em_err_set(err, EM_ECORRUPT, "als read: id list cut short");
                    else
                        p = z + 1;
                }
            } else
                rc = em__als_take_ids(m, &p, r.end, r.n[side], err);
        }
    }
    if (dense)
        *dense = dn;
    em_records_destroy(&recs);
    return rc;
}

/* Pass 1 over the splits: every range's ids, interned in range order into users/items. */
static int merge_ids(em_rdd *splits, em_slice blob, em_idmap *users, em_idmap *items,
                     uint32_t skip_sides, bool *need_lists, uint32_t *dense, em_err *err)
{
    em_rdd *ids = em_rdd_map_partitions(splits, EM__ALS_FN_READ_IDS, blob, false);
    int rc = em__als_merge_ids(ids, users, items, skip_sides, need_lists, dense, err);
    em_rdd_release(ids);
    return rc;
}

/* Whether dense detection may read the files once (read_raw): not in the Netflix layout,
 * where a movie line (or a range's look-back) interns an item that may have no rating in
 * the range, so its bitmap could not be made from the ratings. */
static bool one_pass(const em_ratings_format *fmts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fmts[i] == EM_RATINGS_NETFLIX)
            return false;
    return true;
}

/* Dense detection in one pass over the files: RAW RATINGS persisted (*raw), their ids
 * records (bitmaps) merged as pass 1's. When a side does not prove dense (*again), *raw
 * is released (NULL) and the caller reads the files again as before; otherwise the
 * ratings are *raw's, ids shifted by the sides' bases, and no second parse is needed. */
static int read_raw(em_rdd *splits, em_slice blob, em_idmap *users, em_idmap *items,
                    bool *again, uint32_t *dense, em_rdd **raw, em_err *err)
{
    *raw = em_rdd_persist(em_rdd_map_partitions_fixed(splits, EM__ALS_FN_READ_RAW, blob,
                                                      false, sizeof(em_rating)),
                          EM_PERSIST_MEMORY_AND_DISK);
    em_rdd *ids = em_rdd_map_partitions(*raw, EM__ALS_FN_RAW_IDS, em_slice_make(NULL, 0),
                                        false);
    int rc = em__als_merge_ids(ids, users, items, 0, again, dense, err);
    em_rdd_release(ids);
    if (rc < 0 || *again) {
        em_rdd_release(*raw);   /* unpersists it */
        *raw = NULL;
    }
    return rc;
}

/* Detects every file's format; false when one needs the driver reader. */
static bool formats(const em_file_list *fl, const em_ratings_read_opts *o,
                    em_ratings_format *fmts)
{
    for (size_t i = 0; i < fl->n; i++) {
        fmts[i] = fl->sizes[i] ? em__ratings_detect(fl->paths[i], o ? o->format
                                                                    : EM_RATINGS_AUTO)
                               : EM_RATINGS_TSV;
        if (fmts[i] == EM_RATINGS_AUTO)
            return false;
    }
    return true;
}

int em_als_read_ratings(em_context *sc, const char *path, const em_ratings_read_opts *opts,
                        em_idmap *users, em_idmap *items, em_als_ratings *out, em_err *err)
{
    em_file_list fl;
    em_vbuf blob, maps;
    uint8_t *sp = NULL;
    em_rec *recs = NULL;
    uint32_t acc[3] = {0, 0, 0}, bcast = 0;
    em_rdd *splits = NULL, *raw = NULL;
    memset(out, 0, sizeof *out);
    if (em_als_register() < 0)
        return em_err_set(err, EM_EINVAL, "als: a task function name is taken");
    int rc = em_file_list_expand(path, &fl, err);
    if (rc < 0)
        return rc;
    em_vbuf_init(&blob);
    em_vbuf_init(&maps);
    em_ratings_format *fmts = em_xcalloc(fl.n + 1, sizeof *fmts);
    if (!formats(&fl, opts, fmts)) {
        rc = 1;
        goto out;
    }
    size_t ns = make_splits(&fl, fmts, em_context_default_parallelism(sc), &sp);
    recs = em_xcalloc(ns + 1, sizeof *recs);
    for (size_t i = 0; i < ns; i++)
        recs[i].val = em_slice_make(sp + i * SPLIT_REC, SPLIT_REC);
    splits = em_parallelize(sc, EM_REC_BYTES, 0, recs, ns, (uint32_t)(ns ? ns : 1));
    for (int i = 0; i < 3; i++)
        acc[i] = em_accumulator_new(sc, i == 0 ? "ml.als.lines" : i == 1
                                                                  ? "ml.als.skipped_lines"
                                                                  : "ml.als.ratings");
    /* Dense detection (dense_ids, empty maps): the ranges send bitmaps of integer ids
     * instead of id lists; a side that does not prove dense is read again as lists. */
    bool detect = opts && opts->dense_ids && em_idmap_size(users) == 0 &&
                  em_idmap_size(items) == 0;
    bool again = false;
    uint32_t skip = (opts && opts->skip_bad_lines) ? 1u : 0u, dense = 0;
    src_blob(&fl, skip | (detect ? 2u : 0u), acc, 0, &blob);
    if (detect && one_pass(fmts, fl.n)) {
        rc = read_raw(splits, em_slice_make(blob.data, blob.len), users, items, &again,
                      &dense, &raw, err);
    } else
        rc = merge_ids(splits, em_slice_make(blob.data, blob.len), users, items, 0,
                       detect ? &again : NULL, &dense, err);
    if (rc < 0)
        goto out;
    if (again) {   /* the accumulators count the second pass again: zero them by reading */
        int64_t before[3];
        for (int i = 0; i < 3; i++)
            before[i] = em_accumulator_i64(sc, acc[i]);
        src_blob(&fl, skip, acc, 0, &blob);
        if ((rc = merge_ids(splits, em_slice_make(blob.data, blob.len), users, items, dense,
                            NULL, NULL, err)) < 0)
            goto out;
        out->lines = (uint64_t)(em_accumulator_i64(sc, acc[0]) - before[0]);
        out->skipped = (uint64_t)(em_accumulator_i64(sc, acc[1]) - before[1]);
        out->n = (uint64_t)(em_accumulator_i64(sc, acc[2]) - before[2]);
    } else {
        out->lines = (uint64_t)em_accumulator_i64(sc, acc[0]);
        out->skipped = (uint64_t)em_accumulator_i64(sc, acc[1]);
        out->n = (uint64_t)em_accumulator_i64(sc, acc[2]);
    }
    out->dense = dense;
    if (em__als_maps_blob(users, items, dense, &maps) < 0) {
        rc = em_err_set(err, EM_ENOMEM, "als read: id maps");
        goto out;
    }
    if (!(bcast = em_broadcast(sc, em_slice_make(maps.data, maps.len), err))) {
        rc = err->code ? err->code : em_err_set(err, EM_ENOMEM, "als read: broadcast");
        goto out;
    }
    if (raw) {   /* the one pass's ratings: ids by value, shifted where a side is from 1 */
        int32_t base[2] = {0, 0};
        for (int side = 0; side < 2; side++)
            if (dense >> side & 1)
                base[side] = em__idmap_dense_base(side ? items : users);
        out->ratings = base[0] || base[1]
                           ? em_rdd_map_partitions_fixed(raw, EM__ALS_FN_SHIFT,
                                                         em_slice_make(base, sizeof base),
                                                         false, sizeof(em_rating))
                           : raw;
        if (out->ratings != raw)
            out->cached = raw;   /* the shift is not persisted: raw is what holds memory */
        raw = NULL;
    } else {
        src_blob(&fl, skip, acc, bcast, &blob);
        out->ratings = em_rdd_persist(
            em_rdd_map_partitions_fixed(splits, EM__ALS_FN_READ,
                                        em_slice_make(blob.data, blob.len), false,
                                        sizeof(em_rating)),
            EM_PERSIST_MEMORY_AND_DISK);
    }
    out->maps_bcast = bcast;
    bcast = 0;
    rc = em_rdd_error(out->ratings) ? em_err_copy(err, em_rdd_error(out->ratings)) : 0;
out:
    if (rc < 0) {
        em_rdd_release(out->ratings);
        em_rdd_release(out->cached);
        out->ratings = out->cached = NULL;
        em_err_prefix(err, "reading %s", path);
    }
    if (bcast)
        em_broadcast_destroy(sc, bcast);
    em_rdd_release(raw);      /* alive through out->ratings, if used */
    em_rdd_release(splits);   /* alive through out->ratings */
    em_free(recs);
    em_free(sp);
    em_free(fmts);
    em_vbuf_destroy(&blob);
    em_vbuf_destroy(&maps);
    em_file_list_destroy(&fl);
    return rc;
}

void em_als_ratings_unpersist(em_als_ratings *r)
{
    em_rdd_unpersist(r->cached ? r->cached : r->ratings);
}

void em_als_ratings_release(em_context *sc, em_als_ratings *r)
{
    em_rdd_release(r->ratings);
    em_rdd_release(r->cached);
    if (r->maps_bcast)
        em_broadcast_destroy(sc, r->maps_bcast);
    memset(r, 0, sizeof *r);
}

int em_als_evaluate_rdd(em_context *sc, const em_als_model *m, em_rdd *ratings,
                        em_cold_start cold, em_als_metrics *out, em_err *err)
{
    size_t k = (size_t)m->rank, nu = (size_t)m->n_users, ni = (size_t)m->n_items;
    em_vbuf mv;
    em_records recs = {0};
    double acc[4] = {0, 0, 0, 0};
    memset(out, 0, sizeof *out);
    if (em_als_register() < 0)
        return em_err_set(err, EM_EINVAL, "als: a task function name is taken");
    em_vbuf_init(&mv);
    if (em_vbuf_append(&mv, m->user_factors, nu * k * 4) < 0 ||
        em_vbuf_append(&mv, m->item_factors, ni * k * 4) < 0) {
        em_vbuf_destroy(&mv);
        return em_err_set(err, EM_ENOMEM, "als score: model of %zu bytes", (nu + ni) * k * 4);
    }
    uint32_t id = em_broadcast(sc, em_slice_make(mv.data, mv.len), err);
    em_vbuf_destroy(&mv);
    if (!id)
        return err->code ? err->code : em_err_set(err, EM_ENOMEM, "als score: broadcast");
    uint32_t blob[5] = {SCORE_MAGIC, (uint32_t)k, (uint32_t)nu, (uint32_t)ni, id};
    em_rdd *s = em_rdd_map_partitions(ratings, EM__ALS_FN_SCORE,
                                      em_slice_make(blob, sizeof blob), false);
    int rc = em_rdd_error(s) ? em_err_copy(err, em_rdd_error(s)) : em_rdd_collect(s, &recs, err);
    em_rdd_release(s);
    em_broadcast_destroy(sc, id);
    if (rc == 0)
        rc = em__als_sum4(&recs, acc, "als score", err);
    em_records_destroy(&recs);
    if (rc < 0)
        return rc;
    out->n = (uint64_t)acc[2];
    out->cold = (uint64_t)acc[3];
    bool nan = out->n == 0 || (cold == EM_COLD_NAN && out->cold);
    out->rmse = nan ? NAN : sqrt(acc[0] / acc[2]);
    out->mae = nan ? NAN : acc[1] / acc[2];
    return 0;
}

/* Adds up partition results of four doubles each (host order) into acc. */
int em__als_sum4(const em_records *recs, double acc[4], const char *what, em_err *err)
{
    for (size_t i = 0; i < recs->n; i++) {
        if (recs->recs[i].val.n != 4 * sizeof(double))
            return em_err_set(err, EM_ECORRUPT, "%s: %zu-byte result", what,
                              recs->recs[i].val.n);
        for (int q = 0; q < 4; q++) {
            double v;
            memcpy(&v, recs->recs[i].val.p + q * 8, 8);
            acc[q] += v;
        }
    }
    return 0;
}
