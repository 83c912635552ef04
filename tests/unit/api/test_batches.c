/* tests/unit/api/test_batches.c - batch access in user functions (em_iter_next_batch) and
 * fixed-width transformations (em_rdd_map_fixed, em_rdd_flat_map_fixed,
 * em_rdd_map_partitions_fixed), in local[2]:
 *   - a partition function summing a FIXED dataset through batches gives the per-record sum,
 *     for widths 8 to 800, cached in memory, spilled to disk (small memory, DISK_ONLY),
 *     checkpointed, after a shuffle, with empty partitions and partitions of one row; every
 *     FIXED batch is checked to be FIXED of the declared width and 64-byte aligned;
 *   - em_iter_next and em_iter_next_batch mixed on one iterator, stored or gathered, and a
 *     partition whose records change kind (the gathered path's pending record);
 *   - runs emitted with em_emit_fixed (1 to 5000 records a call) store the same records in
 *     the same order and the same batches as em_emit_val one at a time, cached or not, and
 *     a run of the wrong width fails like a record of the wrong size;
 *   - a record of the wrong size fails the task with EM_EINVAL naming the node;
 *   - map_partitions over a partition much larger than memory streams it (pulled by a
 *     count and drained into a shuffle), with the process's peak RSS bounded. */
#include <sys/resource.h>
#include <unistd.h>

#include "api_test_util.h"

TestSuite(batches, .timeout = 240);

static const em_slice none = {NULL, 0};

/* ---------------------------------------------------------------- user functions */

/* The width-w vector of v: byte j is (v * 31 + j * 7) mod 256. */
static void vec_of(int64_t v, uint32_t w, uint8_t *out)
{
    for (uint32_t j = 0; j < w; j++)
        out[j] = (uint8_t)((uint64_t)v * 31u + j * 7u);
}

static uint64_t row_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0;
    for (size_t j = 0; j < n; j++)
        h += (uint64_t)p[j] * (j + 1);
    return h;
}

static uint32_t blob_u32(em_slice b, size_t at)
{
    return at + 4 <= b.n ? em_load_le32(b.p + at) : 0;
}

/* EM_FN_MAP: i64 record -> its vector (blob: u32 width; u32 bad value: that record gets
 * one byte less, 0 = none; u32 copies per record). */
static int tb_vec(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    uint8_t buf[1024];
    uint32_t w = blob_u32(c->blob, 0), bad = blob_u32(c->blob, 4), copies = blob_u32(c->blob, 8);
    int64_t v = em_dec_i64(in->val.p);
    vec_of(v, w, buf);
    for (uint32_t k = 0; k < (copies ? copies : 1); k++) {
        int rc = em_emit_val(out, em_slice_make(buf, bad && v == bad ? w - 1 : w), err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* EM_FN_PARTITION: tb_vec over a partition (map_partitions_fixed). */
static int tb_vec_part(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                       em_err *err)
{
    em_rec r;
    int rc;
    (void)index;
    while ((rc = em_iter_next(in, &r, err)) == 1)
        if ((rc = tb_vec(c, &r, out, err)) < 0)
            return rc;
    return rc;
}

/* EM_FN_MAP: even -> KV (v, v), odd -> plain v: a partition whose kind changes. */
static int tb_mixed(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    if (em_dec_i64(in->val.p) % 2 == 0)
        return em_emit_kv(out, in->val, in->val, err);
    return em_emit_val(out, in->val, err);
}

typedef struct sum_state {
    uint64_t sum, count, batches;
} sum_state;

static uint64_t rec_hash(const em_rec *r)
{
    return r->key.p ? row_hash(r->key.p, r->key.n) * 3 + row_hash(r->val.p, r->val.n)
                    : row_hash(r->val.p, r->val.n);
}

/* Folds a batch into s; checks kind, width and alignment against the expected width (0:
 * any kind; else every batch must be FIXED of that width). */
static int fold_batch(sum_state *s, const em_rec_batch *b, uint32_t want_w, em_err *err)
{
    if (b->nrecs == 0)
        return em_err_set(err, EM_EINVAL, "empty batch");
    if (want_w && (b->kind != EM_REC_FIXED || b->width != want_w))
        return em_err_set(err, EM_EINVAL, "batch kind %d width %u, want FIXED %u",
                          (int)b->kind, b->width, want_w);
    if (b->kind == EM_REC_FIXED) {
        if ((uintptr_t)b->data % 64 != 0)
            return em_err_set(err, EM_EINVAL, "FIXED batch data %p not 64-byte aligned",
                              (const void *)b->data);
        if (b->nbytes != b->nrecs * b->width)
            return em_err_set(err, EM_EINVAL, "FIXED batch of %zu bytes", b->nbytes);
        for (uint64_t i = 0; i < b->nrecs; i++)
            s->sum += row_hash(b->data + i * b->width, b->width);
    } else {
        em_batch_iter it;
        em_rec r;
        uint64_t n = 0;
        em_batch_iter_init_raw(&it, b->kind, 0, b->data, b->nbytes);
        while (em_batch_iter_next(&it, &r)) {
            if (b->kind == EM_REC_KV && !r.key.p)
                r.key = em_slice_make((const uint8_t *)"", 0);
            s->sum += rec_hash(&r);
            n++;
        }
        if (n != b->nrecs)
            return em_err_set(err, EM_EINVAL, "batch says %llu records, holds %llu",
                              (unsigned long long)b->nrecs, (unsigned long long)n);
    }
    s->count += b->nrecs;
    s->batches++;
    return 0;
}

/* EM_FN_PARTITION: sums the partition (blob: u32 expected width, u32 mode: 0 batches,
 * 1 records, 2 mixed: 1 record, a batch, 3 records, a batch, ...); emits one plain record
 * of three u64: sum, count, batches. */
static int tb_sum(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                  em_err *err)
{
    uint32_t want_w = blob_u32(c->blob, 0), mode = blob_u32(c->blob, 4);
    sum_state s = {0};
    int rc = 1;
    (void)index;
    for (uint32_t step = 0; rc == 1; step++) {
        bool batch = mode == 0 || (mode == 2 && step % 2 == 1);
        if (batch) {
            em_rec_batch b;
            if ((rc = em_iter_next_batch(in, &b, err)) == 1)
                rc = fold_batch(&s, &b, want_w, err) < 0 ? -1 : 1;
            continue;
        }
        for (uint32_t k = 0; k < (mode == 2 ? 1 + step % 4 : 1) && rc == 1; k++) {
            em_rec r;
            if ((rc = em_iter_next(in, &r, err)) == 1) {
                if (want_w && (r.key.p || r.val.n != want_w))
                    return em_err_set(err, EM_EINVAL, "record of %zu bytes", r.val.n);
                s.sum += rec_hash(&r);
                s.count++;
            }
        }
    }
    if (rc < 0)
        return err->code ? err->code : EM_EINVAL;
    uint8_t res[24];
    em_store_le64(res, s.sum);
    em_store_le64(res + 8, s.count);
    em_store_le64(res + 16, s.batches);
    return em_emit_val(out, em_slice_make(res, 24), err);
}

/* EM_FN_PARTITION: K records of 1000 bytes per input record (blob: u32 K). */
static int tb_blowup(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    static const uint8_t big[1000];
    uint32_t k = blob_u32(c->blob, 0);
    em_rec r;
    int rc;
    (void)index;
    while ((rc = em_iter_next(in, &r, err)) == 1)
        for (uint32_t i = 0; i < k; i++)
            if ((rc = em_emit_val(out, em_slice_make(big, sizeof big), err)) < 0)
                return rc;
    return rc;
}

/* EM_FN_PARTITION: tb_vec's records, `copies` per input record, emitted in runs of up to
 * `run` records with em_emit_fixed (blob: u32 width, u32 bad value: the run holding it is
 * emitted one byte narrower, u32 copies, u32 run). */
static int tb_vec_run(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err)
{
    uint32_t w = blob_u32(c->blob, 0), bad = blob_u32(c->blob, 4);
    uint32_t copies = blob_u32(c->blob, 8), run = blob_u32(c->blob, 12);
    uint8_t *buf = em_malloc((size_t)w * run);
    size_t k = 0;
    bool narrow = false;
    em_rec r;
    int rc;
    (void)index;
    cr_assert_not_null(buf);
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        int64_t v = em_dec_i64(r.val.p);
        narrow = narrow || (bad && v == bad);
        for (uint32_t i = 0; i < copies && rc >= 0; i++) {
            vec_of(v, w, buf + k * w);
            if (++k == run) {
                rc = em_emit_fixed(out, buf, narrow ? w - 1 : w, k, err);
                k = 0;
                narrow = false;
            }
        }
        if (rc < 0)
            break;
    }
    if (rc == 0 && k)
        rc = em_emit_fixed(out, buf, narrow ? w - 1 : w, k, err);
    em_free(buf);
    return rc;
}

static void reg(void)
{
    em_fn_register("tb_vec_run", EM_FN_PARTITION, (void (*)(void))tb_vec_run);
    em_fn_register("tb_vec", EM_FN_MAP, (void (*)(void))tb_vec);
    em_fn_register("tb_vec_part", EM_FN_PARTITION, (void (*)(void))tb_vec_part);
    em_fn_register("tb_mixed", EM_FN_MAP, (void (*)(void))tb_mixed);
    em_fn_register("tb_sum", EM_FN_PARTITION, (void (*)(void))tb_sum);
    em_fn_register("tb_blowup", EM_FN_PARTITION, (void (*)(void))tb_blowup);
}

/* ---------------------------------------------------------------- helpers */

static char g_ckpt[256];

static void remove_ckpt(void)
{
    em_rm_rf(g_ckpt, NULL);   /* ember.checkpoint.cleanup empties it; the root is ours */
}

static em_context *ctx_mem(const char *mem, const char *shuffle_mem)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    reg();
    if (!g_ckpt[0])
        atexit(remove_ckpt);
    snprintf(g_ckpt, sizeof g_ckpt, "/tmp/ember-tb-%d", (int)getpid());
    em_conf_set(c, "ember.master", "local[2]");
    em_conf_set(c, "ember.executor.memory", mem);
    em_conf_set(c, "ember.task.maxFailures", "1");
    em_conf_set(c, "ember.checkpoint.dir", g_ckpt);
    em_conf_set(c, "ember.checkpoint.cleanup", "true");
    if (shuffle_mem)
        em_conf_set(c, "ember.shuffle.memory", shuffle_mem);
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "context: %s", err.msg);
    return sc;
}

static em_slice blob3(uint8_t buf[12], uint32_t a, uint32_t b, uint32_t c)
{
    em_store_le32(buf, a);
    em_store_le32(buf + 4, b);
    em_store_le32(buf + 8, c);
    return em_slice_make(buf, 12);
}

/* Vectors of width w for range(0, n) in nparts partitions, `copies` per value. */
static em_rdd *vectors(em_context *sc, int64_t n, uint32_t nparts, uint32_t w, int how,
                       uint32_t copies)
{
    uint8_t b[12];
    em_rdd *r = em_range(sc, 0, n, 1, nparts);
    em_slice bl = blob3(b, w, 0, copies);
    em_rdd *v = how == 0   ? em_rdd_map_fixed(r, "tb_vec", bl, w)
                : how == 1 ? em_rdd_flat_map_fixed(r, "tb_vec", bl, w)
                           : em_rdd_map_partitions_fixed(r, "tb_vec_part", bl, false, w);
    em_rdd_release(r);
    return v;
}

static uint64_t want_sum(int64_t n, uint32_t w, uint32_t copies)
{
    uint8_t buf[1024];
    uint64_t s = 0;
    for (int64_t v = 0; v < n; v++) {
        vec_of(v, w, buf);
        s += row_hash(buf, w) * copies;
    }
    return s;
}

/* Runs tb_sum over r (mode as tb_sum) and returns the totals. */
static sum_state run_sum(em_rdd *r, uint32_t want_w, uint32_t mode)
{
    uint8_t b[12];
    em_rdd *s = em_rdd_map_partitions(r, "tb_sum", blob3(b, want_w, mode, 0), false);
    em_records recs;
    em_err err = EM_ERR_INIT;
    int rc = em_rdd_collect(s, &recs, &err);
    cr_assert_eq(rc, 0, "sum (mode %u): %s", mode, err.msg);
    sum_state t = {0};
    for (size_t i = 0; i < recs.n; i++) {
        cr_assert_eq(recs.recs[i].val.n, 24);
        t.sum += em_load_le64(recs.recs[i].val.p);
        t.count += em_load_le64(recs.recs[i].val.p + 8);
        t.batches += em_load_le64(recs.recs[i].val.p + 16);
    }
    em_records_destroy(&recs);
    em_rdd_release(s);
    return t;
}

/* Batches, records and mixed all give the reference sum and count. */
static void check_sums(em_rdd *r, uint32_t w, int64_t n, uint32_t copies, const char *what)
{
    uint64_t want = want_sum(n, w, copies);
    for (uint32_t mode = 0; mode < 3; mode++) {
        sum_state t = run_sum(r, w, mode);
        cr_assert_eq(t.count, (uint64_t)n * copies, "%s w=%u mode %u: count %llu", what, w,
                     mode, (unsigned long long)t.count);
        cr_assert_eq(t.sum, want, "%s w=%u mode %u: sum differs", what, w, mode);
    }
}

static const uint32_t widths[] = {8, 24, 100, 800};

/* ---------------------------------------------------------------- tests */

Test(batches, cached_fixed_sums_match_for_every_width_and_shape)
{
    em_context *sc = ctx_mem("64m", NULL);
    static const struct { int64_t n; uint32_t parts; } shapes[] = {
        {3000, 4}, {3, 8} /* empty partitions */, {4, 4} /* one row each */, {0, 2}};
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++)
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            em_rdd *v = vectors(sc, shapes[si].n, shapes[si].parts, widths[wi], 0, 1);
            check_sums(v, widths[wi], shapes[si].n, 1, "uncached");   /* gathered */
            em_rdd_cache(v);
            check_sums(v, widths[wi], shapes[si].n, 1, "cached");     /* stored */
            em_rdd_release(v);
        }
    em_context_free(sc);
}

Test(batches, flat_map_and_map_partitions_fixed_stay_fixed_through_cache_and_shuffle)
{
    em_context *sc = ctx_mem("64m", NULL);
    for (int how = 1; how <= 2; how++)
        for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
            em_rdd *v = vectors(sc, 1500, 3, widths[wi], how, 2);
            cr_assert_eq(em_rdd_num_partitions(v), 3);
            em_rdd_cache(v);
            check_sums(v, widths[wi], 1500, 2, how == 1 ? "flat_map cached" : "mp cached");
            em_rdd *s = em_rdd_repartition(v, 5);
            check_sums(s, widths[wi], 1500, 2, "after a shuffle");
            em_rdd *c = em_rdd_coalesce(s, 2, false);
            em_rdd_cache(c);
            check_sums(c, widths[wi], 1500, 2, "coalesced, cached");
            em_rdd_release(c);
            em_rdd_release(s);
            em_rdd_release(v);
        }
    em_context_free(sc);
}

Test(batches, spilled_and_disk_only_and_checkpointed_stay_fixed)
{
    em_context *sc = ctx_mem("6m", "1m");
    em_err err = EM_ERR_INIT;
    /* 20000 x 800 bytes = 16 MB: more than the memory; MEMORY_AND_DISK spills */
    em_rdd *v = vectors(sc, 20000, 8, 800, 0, 1);
    em_rdd_persist(v, EM_PERSIST_MEMORY_AND_DISK);
    check_sums(v, 800, 20000, 1, "memory and disk");
    em_rdd *d = vectors(sc, 5000, 4, 24, 0, 1);
    em_rdd_persist(d, EM_PERSIST_DISK_ONLY);
    check_sums(d, 24, 5000, 1, "disk only");
    em_rdd *s = em_rdd_repartition(d, 3);   /* the shuffle spills too (1m) */
    check_sums(s, 24, 5000, 1, "disk only, shuffled");
    em_rdd *ck = em_rdd_checkpoint(v, &err);
    cr_assert_not_null(ck, "checkpoint: %s", err.msg);
    check_sums(ck, 800, 20000, 1, "checkpoint file");
    em_rdd_release(ck);
    em_rdd_release(s);
    em_rdd_release(d);
    em_rdd_release(v);
    em_context_free(sc);
}

Test(batches, parallelized_fixed_input_hands_out_aligned_batches)
{
    em_context *sc = ctx_mem("64m", NULL);
    uint8_t *bytes = malloc(2000 * 100);
    em_rec *recs = calloc(2000, sizeof *recs);
    for (int i = 0; i < 2000; i++) {
        vec_of(i, 100, bytes + i * 100);
        recs[i].val = em_slice_make(bytes + i * 100, 100);
    }
    em_rdd *p = em_parallelize(sc, EM_REC_FIXED, 100, recs, 2000, 5);
    check_sums(p, 100, 2000, 1, "parallelized");
    em_rdd_release(p);
    free(recs);
    free(bytes);
    em_context_free(sc);
}

Test(batches, kind_changes_keep_the_pending_record)
{
    em_context *sc = ctx_mem("64m", NULL);
    em_rdd *r = em_range(sc, 0, 1001, 1, 3);
    em_rdd *m = em_rdd_map(r, "tb_mixed", none);
    uint64_t want = 0;
    for (int64_t v = 0; v < 1001; v++) {
        uint8_t b[8];
        em_enc_i64(b, v);
        want += v % 2 == 0 ? row_hash(b, 8) * 4 : row_hash(b, 8);
    }
    for (uint32_t mode = 0; mode < 3; mode++) {
        sum_state t = run_sum(m, 0, mode);
        cr_assert_eq(t.count, 1001);
        cr_assert_eq(t.sum, want, "mode %u", mode);
        if (mode == 0)
            cr_assert_eq(t.batches, 1001, "every record changes kind: one batch each");
    }
    em_rdd_release(m);
    em_rdd_release(r);
    em_context_free(sc);
}

static void expect_width_error(em_rdd *v, const char *name)
{
    em_records recs;
    em_err err = EM_ERR_INIT;
    int rc = em_rdd_collect(v, &recs, &err);
    cr_assert_eq(rc, EM_EINVAL, "%s: rc %d (%s)", name, rc, err.msg);
    cr_assert_not_null(strstr(err.msg, name), "%s: %s", name, err.msg);
    cr_assert_not_null(strstr(err.msg, "width 24"), "%s: %s", name, err.msg);
}

static em_slice blob4(uint8_t buf[16], uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    blob3(buf, a, b, c);
    em_store_le32(buf + 12, d);
    return em_slice_make(buf, 16);
}

/* Every record of r in order equals vec_of(v) for v = 0, 0, ... (copies each), n values. */
static void check_order(em_rdd *r, uint32_t w, int64_t n, uint32_t copies, const char *what)
{
    uint8_t want[1024];
    em_records recs;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(r, &recs, &err), 0, "%s: %s", what, err.msg);
    cr_assert_eq(recs.n, (size_t)n * copies, "%s: %zu records", what, recs.n);
    for (size_t i = 0; i < recs.n; i++) {
        vec_of((int64_t)(i / copies), w, want);
        cr_assert_eq(recs.recs[i].val.n, w, "%s: record %zu of %zu bytes", what, i,
                     recs.recs[i].val.n);
        cr_assert(memcmp(recs.recs[i].val.p, want, w) == 0, "%s w=%u: record %zu differs",
                  what, w, i);
    }
    em_records_destroy(&recs);
}

Test(batches, runs_from_em_emit_fixed_store_what_single_records_store)
{
    em_context *sc = ctx_mem("256m", NULL);
    static const uint32_t runs[] = {1, 7, 1000, 5000};
    const int64_t n = 6000;   /* 2 partitions: up to 2.4 MB each, several big batches at 800 */
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++)
        for (size_t ri = 0; ri < sizeof runs / sizeof *runs; ri++) {
            uint32_t w = widths[wi];
            uint8_t b[16];
            em_rdd *src = em_range(sc, 0, n, 1, 2);
            em_rdd *one = em_rdd_map_partitions_fixed(src, "tb_vec_part", blob3(b, w, 0, 2),
                                                      false, w);
            em_rdd *run = em_rdd_map_partitions_fixed(src, "tb_vec_run",
                                                      blob4(b, w, 0, 2, runs[ri]), false, w);
            check_order(run, w, n, 2, "runs, uncached");
            em_rdd_cache(one);
            em_rdd_cache(run);
            check_order(run, w, n, 2, "runs, cached");
            check_sums(run, w, n, 2, "runs, cached");
            sum_state a = run_sum(one, w, 0), c = run_sum(run, w, 0);
            cr_assert_eq(c.batches, a.batches, "w=%u run %u: %llu batches against %llu", w,
                         runs[ri], (unsigned long long)c.batches,
                         (unsigned long long)a.batches);
            em_rdd_release(run);
            em_rdd_release(one);
            em_rdd_release(src);
        }
    em_context_free(sc);
}

Test(batches, wrong_size_records_fail_naming_the_node)
{
    em_context *sc = ctx_mem("64m", NULL);
    uint8_t b[12];
    em_rdd *r = em_range(sc, 0, 100, 1, 2);
    em_rdd *a = em_rdd_map_fixed(r, "tb_vec", blob3(b, 24, 77, 1), 24);
    em_rdd *f = em_rdd_flat_map_fixed(r, "tb_vec", blob3(b, 24, 77, 2), 24);
    em_rdd *p = em_rdd_map_partitions_fixed(r, "tb_vec_part", blob3(b, 24, 77, 1), false, 24);
    em_rdd *kv = em_rdd_map_fixed(r, "tb_mixed", none, 8);
    expect_width_error(a, "map_fixed");
    expect_width_error(f, "flat_map_fixed");
    expect_width_error(p, "map_partitions_fixed");
    for (int cached = 0; cached < 2; cached++) {   /* a run of 23-byte records */
        uint8_t b4[16];
        em_rdd *q = em_rdd_map_partitions_fixed(r, "tb_vec_run", blob4(b4, 24, 77, 1, 10),
                                                false, 24);
        if (cached)
            em_rdd_cache(q);
        expect_width_error(q, "map_partitions_fixed");
        em_rdd_release(q);
    }
    em_records recs;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(kv, &recs, &err), EM_EINVAL, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "pair"), "%s", err.msg);
    em_rdd *z = em_rdd_map_fixed(r, "tb_vec", blob3(b, 24, 0, 1), 0);
    cr_assert_eq(em_rdd_count(z, &(uint64_t){0}, &err), EM_EINVAL, "width 0: %s", err.msg);
    em_rdd_release(z);
    em_rdd_release(kv);
    em_rdd_release(p);
    em_rdd_release(f);
    em_rdd_release(a);
    em_rdd_release(r);
    em_context_free(sc);
}

#ifdef __SANITIZE_ADDRESS__
/* ASan keeps freed blocks in a quarantine (256 MB by default) that counts in the RSS; a
 * small one lets the peak RSS measure what the engine holds. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=8";
}
#endif

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

Test(batches, map_partitions_streams_a_partition_larger_than_memory)
{
    em_context *sc = ctx_mem("32m", "4m");
    em_err err = EM_ERR_INIT;
    uint8_t b[12];
    /* one partition of 1000 records x 200 outputs of 1000 bytes = 200 MB */
    em_rdd *r = em_range(sc, 0, 1000, 1, 1);
    em_rdd *m = em_rdd_map_partitions(r, "tb_blowup", blob3(b, 200, 0, 0), false);
    long before = peak_rss_kb();
    uint64_t n = 0;
    cr_assert_eq(em_rdd_count(m, &n, &err), 0, "count (pulled): %s", err.msg);
    cr_assert_eq(n, 200000);
    em_rdd *s = em_rdd_repartition(m, 64);   /* drained into the shuffle writer */
    cr_assert_eq(em_rdd_count(s, &n, &err), 0, "repartition (drained): %s", err.msg);
    cr_assert_eq(n, 200000);
    long grown_mb = (peak_rss_kb() - before) / 1024;
    cr_assert_lt(grown_mb, 120, "peak RSS grew by %ld MB for 200 MB of output", grown_mb);
    /* a take stops reading early: the producer is told to stop */
    em_records recs;
    cr_assert_eq(em_rdd_take(m, 3, &recs, &err), 0, "take: %s", err.msg);
    cr_assert_eq(recs.n, 3);
    em_records_destroy(&recs);
    em_rdd_release(s);
    em_rdd_release(m);
    em_rdd_release(r);
    em_context_free(sc);
}

