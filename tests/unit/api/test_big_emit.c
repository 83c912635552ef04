/* tests/unit/api/test_big_emit.c - large records into cached partitions (engine/exec
 * runtime.c's batcher), in local[2]:
 *   - em_emit_big_alloc / em_emit_big_kv: a pair of 6 MiB between small ones, and one of
 *     100 bytes, read back equal and in order from a partition that is cached in memory,
 *     cached and spilled to disk (MEMORY_AND_DISK with 8 MiB), and not cached at all (the
 *     pulled path copies the record and frees the buffer); a buffer not emitted goes back
 *     with em_emit_big_free;
 *   - a big record through em_emit_kv (copied once into its own batch) reads back equal;
 *   - a FIXED dataset of many MiB per partition (its batches past the first are filled in
 *     huge-page buffers) sums the same through batches and records, cached or not, every
 *     batch FIXED of the declared width and 64-byte aligned. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ember.h"

TestSuite(big_emit, .timeout = 240);

static const em_slice none = {NULL, 0};

static uint8_t pat(size_t i, uint32_t part)
{
    return (uint8_t)(i * 7u + part * 13u + (i >> 12));
}

static uint32_t blob_u32(em_slice b, size_t at)
{
    return at + 4 <= b.n ? em_load_le32(b.p + at) : 0;
}

/* EM_FN_PARTITION: per partition p: ("s0", "x"), then key "B" + p (4 bytes) -> `size` bytes
 * of pat(i, p), then ("s1", "y"). blob: u32 size, u32 how (0: em_emit_big_kv, 1: em_emit_kv
 * of a heap copy; 2: as 0, and one more buffer handed back with em_emit_big_free). */
static int tbe_part(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err)
{
    (void)in;
    uint32_t size = blob_u32(c->blob, 0), how = blob_u32(c->blob, 4);
    uint8_t key[4] = {'B', (uint8_t)index, 0, 0};
    int rc = em_emit_kv(out, em_slice_make("s0", 2), em_slice_make("x", 1), err);
    if (rc < 0)
        return rc;
    if (how == 2) {
        void *spare = em_emit_big_alloc(sizeof key, size);
        if (!spare)
            return em_err_set(err, EM_ENOMEM, "spare");
        memset(spare, 1, size);
        em_emit_big_free(spare, sizeof key);
    }
    uint8_t *v = how == 1 ? malloc(size) : em_emit_big_alloc(sizeof key, size + 4096);
    if (!v)
        return em_err_set(err, EM_ENOMEM, "value");
    for (size_t i = 0; i < size; i++)
        v[i] = pat(i, index);
    if (how == 1) {
        rc = em_emit_kv(out, em_slice_make(key, sizeof key), em_slice_make(v, size), err);
        free(v);
    } else {
        rc = em_emit_big_kv(out, em_slice_make(key, sizeof key), v, size, err);
    }
    if (rc < 0)
        return rc;
    return em_emit_kv(out, em_slice_make("s1", 2), em_slice_make("y", 1), err);
}

/* EM_FN_MAP: i64 v -> 12 bytes (u64 v * 3 + 1, u32 v ^ 0x5a5a). */
static int tbe_fixed(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    int64_t v = em_dec_i64(in->val.p);
    uint8_t b[12];
    em_store_le64(b, (uint64_t)v * 3 + 1);
    em_store_le32(b + 8, (uint32_t)v ^ 0x5a5au);
    return em_emit_val(out, em_slice_make(b, sizeof b), err);
}

static uint64_t fixed_hash(const uint8_t *p)
{
    return em_load_le64(p) * 31 + em_load_le32(p + 8);
}

/* EM_FN_PARTITION: sums fixed_hash over the partition (blob u32 mode: 0 batches, 1
 * records); emits u64 sum, u64 count, u64 bad batches (not FIXED 12 or misaligned). */
static int tbe_sum(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                   em_err *err)
{
    (void)index;
    uint64_t s[3] = {0, 0, 0};
    int rc;
    if (blob_u32(c->blob, 0) == 0) {
        em_rec_batch b;
        while ((rc = em_iter_next_batch(in, &b, err)) == 1) {
            if (b.kind != EM_REC_FIXED || b.width != 12 || ((uintptr_t)b.data & 63))
                s[2]++;
            for (uint64_t i = 0; b.kind == EM_REC_FIXED && i < b.nrecs; i++)
                s[0] += fixed_hash(b.data + i * 12);
            s[1] += b.nrecs;
        }
    } else {
        em_rec r;
        while ((rc = em_iter_next(in, &r, err)) == 1) {
            if (r.val.n == 12)
                s[0] += fixed_hash(r.val.p);
            s[1]++;
        }
    }
    if (rc < 0)
        return rc;
    uint8_t o[24];
    for (int k = 0; k < 3; k++)
        em_store_le64(o + k * 8, s[k]);
    return em_emit_val(out, em_slice_make(o, sizeof o), err);
}

static void reg(void)
{
    static const em_fn_entry fns[] = {
        {"tbe_part", EM_FN_PARTITION, EM_FN(tbe_part)},
        {"tbe_fixed", EM_FN_MAP, EM_FN(tbe_fixed)},
        {"tbe_sum", EM_FN_PARTITION, EM_FN(tbe_sum)},
    };
    (void)em_fn_register_table(fns, sizeof fns / sizeof fns[0]);
}

static em_context *ctx(const char *mem)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    reg();
    em_conf_set(c, "ember.master", "local[2]");
    em_conf_set(c, "ember.executor.memory", mem);
    em_conf_set(c, "ember.task.maxFailures", "1");
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "context: %s", err.msg);
    return sc;
}

/* The records of tbe_part over 2 partitions, checked in order (collect keeps them). */
static void check_part_records(em_rdd *r, uint32_t size, const char *what)
{
    em_records recs;
    em_err err = EM_ERR_INIT;
    int rc = em_rdd_collect(r, &recs, &err);
    cr_assert_eq(rc, 0, "%s: %s", what, err.msg);
    cr_assert_eq(recs.n, 6, "%s: %zu records", what, recs.n);
    for (uint32_t p = 0; p < 2; p++) {
        const em_rec *x = &recs.recs[p * 3];
        cr_assert(x[0].key.n == 2 && !memcmp(x[0].key.p, "s0", 2) && x[0].val.n == 1, "%s", what);
        cr_assert(x[2].key.n == 2 && !memcmp(x[2].key.p, "s1", 2) && x[2].val.n == 1, "%s", what);
        cr_assert_eq(x[1].key.n, 4, "%s", what);
        cr_assert(x[1].key.p[0] == 'B' && x[1].key.p[1] == p, "%s: key of partition %u", what, p);
        cr_assert_eq(x[1].val.n, size, "%s: value of %zu bytes", what, x[1].val.n);
        size_t bad = 0;
        for (size_t i = 0; i < size; i++)
            bad += x[1].val.p[i] != pat(i, p);
        cr_assert_eq(bad, 0, "%s: %zu bytes differ in partition %u", what, bad, p);
    }
    em_records_destroy(&recs);
}

static void run_parts(const char *mem, uint32_t size, uint32_t how, int level)
{
    em_context *sc = ctx(mem);
    em_err err = EM_ERR_INIT;
    uint8_t b[8];
    em_store_le32(b, size);
    em_store_le32(b + 4, how);
    char what[96];
    snprintf(what, sizeof what, "size %u how %u level %d mem %s", size, how, level, mem);
    em_rdd *base = em_parallelize(sc, EM_REC_BYTES, 0, NULL, 0, 2);
    em_rdd *r = em_rdd_map_partitions(base, "tbe_part", em_slice_make(b, sizeof b), false);
    if (level >= 0) {
        em_rdd_persist(r, (em_persist_level)level);
        uint64_t n = 0;
        cr_assert_eq(em_rdd_count(r, &n, &err), 0, "%s: %s", what, err.msg);
        cr_assert_eq(n, 6, "%s", what);
    }
    check_part_records(r, size, what);
    check_part_records(r, size, what);   /* again: from the cache when cached */
    em_rdd_release(r);
    em_rdd_release(base);
    em_context_free(sc);
}

Test(big_emit, big_pairs_read_back_equal_cached_spilled_or_not)
{
    const uint32_t big = (uint32_t)6 << 20;
    for (uint32_t how = 0; how <= 2; how++) {
        run_parts("64m", big, how, EM_PERSIST_MEMORY_ONLY);
        run_parts("64m", big, how, -1);
        run_parts("64m", 100, how, EM_PERSIST_MEMORY_ONLY);
    }
    run_parts("8m", big, 0, EM_PERSIST_MEMORY_AND_DISK);
    run_parts("8m", big, 1, EM_PERSIST_DISK_ONLY);
}

static void sums(em_rdd *r, uint32_t mode, uint64_t out[3])
{
    uint8_t b[4];
    em_store_le32(b, mode);
    em_rdd *s = em_rdd_map_partitions(r, "tbe_sum", em_slice_make(b, 4), false);
    em_records recs;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(s, &recs, &err), 0, "sum: %s", err.msg);
    memset(out, 0, 3 * sizeof *out);
    for (size_t i = 0; i < recs.n; i++)
        for (int k = 0; k < 3; k++)
            out[k] += em_load_le64(recs.recs[i].val.p + k * 8);
    em_records_destroy(&recs);
    em_rdd_release(s);
}

Test(big_emit, fixed_partitions_of_many_mib_sum_the_same)
{
    em_context *sc = ctx("256m");
    const int64_t n = 1500000;   /* 18 MB of 12-byte records over 2 partitions */
    uint64_t want = 0;
    for (int64_t v = 0; v < n; v++) {
        uint8_t b[12];
        em_store_le64(b, (uint64_t)v * 3 + 1);
        em_store_le32(b + 8, (uint32_t)v ^ 0x5a5au);
        want += fixed_hash(b);
    }
    em_rdd *rg = em_range(sc, 0, n, 1, 2);
    em_rdd *f = em_rdd_map_fixed(rg, "tbe_fixed", none, 12);
    for (int cached = 0; cached <= 1; cached++) {
        if (cached)
            em_rdd_persist(f, EM_PERSIST_MEMORY_ONLY);
        for (uint32_t mode = 0; mode <= 1; mode++) {
            uint64_t t[3];
            sums(f, mode, t);
            cr_assert_eq(t[1], (uint64_t)n, "cached %d mode %u: %llu records", cached, mode,
                         (unsigned long long)t[1]);
            cr_assert_eq(t[0], want, "cached %d mode %u: sum differs", cached, mode);
            cr_assert_eq(t[2], 0, "cached %d mode %u: %llu bad batches", cached, mode,
                         (unsigned long long)t[2]);
        }
    }
    em_rdd_release(f);
    em_rdd_release(rg);
    em_context_free(sc);
}
