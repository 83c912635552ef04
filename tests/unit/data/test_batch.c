/* tests/unit/data/test_batch.c - builder/iterator round trips for every kind, refcounts,
 * validation of malformed payloads, OOM behaviour of the builder. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/data/data.h"

static em_batch *build_bytes(const char **vals, int n)
{
    em_batch_builder bb;
    em_err err = EM_ERR_INIT;
    em_batch_builder_init(&bb, EM_REC_BYTES, 0);
    for (int i = 0; i < n; i++)
        cr_assert_eq(em_batch_builder_add_val(&bb, em_slice_str(vals[i]), &err), 0);
    em_batch *b = em_batch_builder_finish(&bb, &err);
    em_batch_builder_destroy(&bb);
    cr_assert_not_null(b);
    return b;
}

Test(batch, bytes_roundtrip_with_exact_payload)
{
    const char *vals[] = {"hello", "", "w\xc3\xb6rld \xe2\x82\xac", "\x01\xff\x80"};
    em_batch *b = build_bytes(vals, 4);
    cr_assert_eq(em_batch_kind(b), EM_REC_BYTES);
    cr_assert_eq(em_batch_nrecs(b), 4);
    cr_assert_eq(em_batch_width(b), 0);
    /* Independent reference: the payload bytes spelled out. */
    const uint8_t *p = em_batch_payload(b);
    cr_assert_eq(em_batch_nbytes(b), 4 * 4 + 5 + 0 + 10 + 3);
    cr_assert_eq(em_load_le32(p), 5);
    cr_assert(memcmp(p + 4, "hello", 5) == 0);
    cr_assert_eq(em_load_le32(p + 9), 0);
    cr_assert_eq(em_load_le32(p + 13), 10);
    cr_assert_eq(em_load_le32(p + 27), 3);
    cr_assert_eq(p[31], 0x01);

    em_batch_iter it;
    em_batch_iter_init(&it, b);
    em_rec r;
    for (int i = 0; i < 4; i++) {
        cr_assert(em_batch_iter_next(&it, &r));
        cr_assert_null(r.key.p);
        cr_assert_eq(r.key.n, 0);
        cr_assert(em_slice_eq(r.val, em_slice_str(vals[i])), "record %d", i);
    }
    cr_assert(!em_batch_iter_next(&it, &r));
    cr_assert_eq(em_batch_validate(EM_REC_BYTES, 0, 4, p, em_batch_nbytes(b), NULL), 0);
    em_batch_unref(b);
}

Test(batch, kv_roundtrip_including_empty_key)
{
    em_batch_builder bb;
    em_err err = EM_ERR_INIT;
    em_batch_builder_init(&bb, EM_REC_KV, 0);
    cr_assert_eq(em_batch_builder_add_kv(&bb, em_slice_str("k1"), em_slice_str("v1"), &err), 0);
    em_rec rec = {em_slice_make(NULL, 0), em_slice_str("novalue-key")};
    cr_assert_eq(em_batch_builder_add(&bb, &rec, &err), 0);
    cr_assert_eq(em_batch_builder_add_val(&bb, em_slice_str("v3"), &err), 0);
    cr_assert_eq(em_batch_builder_nbytes(&bb), 3 * 8 + 2 + 2 + 11 + 2);
    em_batch *b = em_batch_builder_finish(&bb, &err);
    cr_assert_eq(bb.nrecs, 0);
    cr_assert_eq(em_batch_builder_nbytes(&bb), 0);
    em_batch_builder_destroy(&bb);

    em_batch_iter it;
    em_rec r;
    em_batch_iter_init(&it, b);
    cr_assert(em_batch_iter_next(&it, &r));
    cr_assert(em_slice_eq(r.key, em_slice_str("k1")) && em_slice_eq(r.val, em_slice_str("v1")));
    cr_assert(em_batch_iter_next(&it, &r));
    cr_assert_eq(r.key.n, 0);
    cr_assert(em_slice_eq(r.val, em_slice_str("novalue-key")));
    cr_assert(em_batch_iter_next(&it, &r));
    cr_assert_eq(r.key.n, 0);
    cr_assert(!em_batch_iter_next(&it, &r));
    cr_assert_eq(em_rec_encoded_size(EM_REC_KV, &r), 8 + 2);
    em_batch_unref(b);
}

Test(batch, fixed_is_row_major_matrix)
{
    em_batch_builder bb;
    em_err err = EM_ERR_INIT;
    em_batch_builder_init(&bb, EM_REC_FIXED, 16);
    for (int i = 0; i < 10; i++) {
        uint8_t row[16];
        em_enc_f64(row, i * 1.5);
        em_enc_f64(row + 8, -i);
        cr_assert_eq(em_batch_builder_add_val(&bb, em_slice_make(row, 16), &err), 0);
    }
    uint8_t bad[15] = {0};
    cr_assert_eq(em_batch_builder_add_val(&bb, em_slice_make(bad, 15), &err), EM_EINVAL);
    cr_assert_eq(bb.nrecs, 10);
    em_batch *b = em_batch_builder_finish(&bb, &err);
    em_batch_builder_destroy(&bb);
    cr_assert_eq(em_batch_width(b), 16);
    cr_assert_eq(em_batch_nbytes(b), 160);
    const uint8_t *m = em_batch_payload(b);
    cr_assert_eq(em_dec_f64(m + 7 * 16), 10.5);
    cr_assert_eq(em_dec_f64(m + 7 * 16 + 8), -7.0);
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init(&it, b);
    int n = 0;
    while (em_batch_iter_next(&it, &r)) {
        cr_assert_eq(r.val.n, 16);
        cr_assert_eq(r.val.p, m + 16 * n);
        cr_assert_null(r.key.p);
        n++;
    }
    cr_assert_eq(n, 10);
    em_batch_unref(b);
}

Test(batch, empty_batches)
{
    for (int k = EM_REC_BYTES; k <= EM_REC_FIXED; k++) {
        em_batch_builder bb;
        em_err err = EM_ERR_INIT;
        em_batch_builder_init(&bb, (em_rec_kind)k, k == EM_REC_FIXED ? 4 : 0);
        em_batch *b = em_batch_builder_finish(&bb, &err);
        cr_assert_not_null(b);
        cr_assert_eq(em_batch_nrecs(b), 0);
        cr_assert_eq(em_batch_nbytes(b), 0);
        cr_assert_not_null(em_batch_payload(b));
        em_batch_iter it;
        em_rec r;
        em_batch_iter_init(&it, b);
        cr_assert(!em_batch_iter_next(&it, &r));
        cr_assert(!(em_batch_iter_next)(&it, &r));
        em_batch_builder_destroy(&bb);
        em_batch_unref(b);
    }
}

Test(batch, huge_record)
{
    size_t n = (1u << 20) + 12345;
    uint8_t *big = em_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 131);
    em_batch_builder bb;
    em_err err = EM_ERR_INIT;
    em_batch_builder_init(&bb, EM_REC_KV, 0);
    cr_assert_eq(em_batch_builder_add_kv(&bb, em_slice_str("big"), em_slice_make(big, n), &err),
                 0);
    cr_assert_eq(em_batch_builder_add_kv(&bb, em_slice_str("small"), em_slice_str("x"), &err), 0);
    em_batch *b = em_batch_builder_finish(&bb, &err);
    em_batch_builder_destroy(&bb);
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init(&it, b);
    cr_assert((em_batch_iter_next)(&it, &r));
    cr_assert_eq(r.val.n, n);
    cr_assert(memcmp(r.val.p, big, n) == 0);
    cr_assert((em_batch_iter_next)(&it, &r));
    cr_assert(em_slice_eq(r.key, em_slice_str("small")));
    cr_assert(!(em_batch_iter_next)(&it, &r));
    em_batch_unref(b);
    em_free(big);
}

Test(batch, refcount_shared)
{
    const char *vals[] = {"a"};
    em_batch *b = build_bytes(vals, 1);
    cr_assert_eq(em_batch_ref(b), b);
    em_batch_unref(b);
    cr_assert_eq(em_batch_nrecs(b), 1);
    em_batch_unref(b);
    em_batch_unref(NULL);
}

Test(batch, new_copy_and_take)
{
    uint8_t payload[12];
    em_store_le32(payload, 8);
    memcpy(payload + 4, "abcdefgh", 8);
    em_batch *b = em_batch_new_copy(EM_REC_BYTES, 0, 1, payload, sizeof payload);
    cr_assert_neq(em_batch_payload(b), payload);
    cr_assert(memcmp(em_batch_payload(b), payload, 12) == 0);
    em_batch_unref(b);
    uint8_t *p = em_xmalloc(12);
    memcpy(p, payload, 12);
    b = em_batch_new_take(EM_REC_BYTES, 0, 1, p, 12);
    cr_assert_eq(em_batch_payload(b), p);
    em_batch_unref(b);
    p = em_xmalloc(12);
    em_test_fail_alloc_after(0);
    b = em_batch_new_take(EM_REC_BYTES, 0, 1, p, 12); /* frees p on failure */
    cr_assert_null(b);
    cr_assert_null(em_batch_new_copy(EM_REC_BYTES, 0, 1, payload, 12));
    em_test_alloc_reset();
}

Test(batch, validate_rejects_malformed)
{
    em_err err = EM_ERR_INIT;
    uint8_t p[32];
    /* BYTES: one record of 5 bytes */
    em_store_le32(p, 5);
    memcpy(p + 4, "hello", 5);
    cr_assert_eq(em_batch_validate(EM_REC_BYTES, 0, 1, p, 9, &err), 0);
    for (size_t n = 0; n < 9; n++)
        cr_assert_eq(em_batch_validate(EM_REC_BYTES, 0, 1, p, n, &err), EM_ECORRUPT, "n=%zu", n);
    cr_assert_eq(em_batch_validate(EM_REC_BYTES, 0, 1, p, 10, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "trailing") != NULL, "%s", err.msg);
    cr_assert_eq(em_batch_validate(EM_REC_BYTES, 0, 2, p, 9, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "record 1 at offset 9") != NULL, "%s", err.msg);
    em_store_le32(p, 0xffffffffu);
    cr_assert_eq(em_batch_validate(EM_REC_BYTES, 0, 1, p, 9, &err), EM_ECORRUPT);
    em_store_le32(p, 6); /* overlong by one */
    cr_assert_eq(em_batch_validate(EM_REC_BYTES, 0, 1, p, 9, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "record 0 at offset 0") != NULL, "%s", err.msg);

    /* KV: key "ab", value "c" */
    em_store_le32(p, 2);
    em_store_le32(p + 4, 1);
    memcpy(p + 8, "abc", 3);
    cr_assert_eq(em_batch_validate(EM_REC_KV, 0, 1, p, 11, &err), 0);
    for (size_t n = 0; n < 11; n++)
        cr_assert_eq(em_batch_validate(EM_REC_KV, 0, 1, p, n, &err), EM_ECORRUPT);
    em_store_le32(p, 0x80000000u);
    em_store_le32(p + 4, 0x80000000u); /* sum would wrap in 32 bits */
    cr_assert_eq(em_batch_validate(EM_REC_KV, 0, 1, p, 11, &err), EM_ECORRUPT);

    /* FIXED */
    cr_assert_eq(em_batch_validate(EM_REC_FIXED, 4, 8, p, 32, &err), 0);
    cr_assert_eq(em_batch_validate(EM_REC_FIXED, 4, 7, p, 32, &err), EM_ECORRUPT);
    cr_assert_eq(em_batch_validate(EM_REC_FIXED, 0, 0, p, 0, &err), EM_ECORRUPT);
    cr_assert_eq(em_batch_validate(EM_REC_FIXED, 0xffffffffu, UINT64_MAX / 2, p, 32, &err),
                 EM_ECORRUPT);
    cr_assert_eq(em_batch_validate((em_rec_kind)9, 0, 0, p, 0, &err), EM_ECORRUPT);
    /* Zero records, zero bytes is fine for variable kinds. */
    cr_assert_eq(em_batch_validate(EM_REC_KV, 0, 0, NULL, 0, &err), 0);
}

Test(batch, builder_oom_leaves_builder_unchanged)
{
    em_batch_builder bb;
    em_err err = EM_ERR_INIT;
    em_batch_builder_init(&bb, EM_REC_BYTES, 0);
    cr_assert_eq(em_batch_builder_add_val(&bb, em_slice_str("first"), &err), 0);
    size_t before = em_batch_builder_nbytes(&bb);
    uint8_t *big = em_xcalloc(1, 100000);
    em_test_fail_alloc_after(0);
    int rc = em_batch_builder_add_val(&bb, em_slice_make(big, 100000), &err);
    em_batch *b = NULL;
    em_test_alloc_reset();
    cr_assert_eq(rc, EM_ENOMEM);
    cr_assert_eq(bb.nrecs, 1);
    cr_assert_eq(em_batch_builder_nbytes(&bb), before);
    em_test_fail_alloc_after(0);
    b = em_batch_builder_finish(&bb, &err);
    em_test_alloc_reset();
    cr_assert_null(b);
    cr_assert_eq(err.code, EM_ENOMEM);
    em_batch_builder_destroy(&bb);
    em_free(big);
}

Test(batch, raw_iter_stops_on_unvalidated_garbage)
{
    uint8_t p[6];
    em_store_le32(p, 100); /* claims more than there is */
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, EM_REC_BYTES, 0, p, sizeof p);
    cr_assert(!em_batch_iter_next(&it, &r));
    em_batch_iter_init_raw(&it, EM_REC_KV, 0, p, sizeof p);
    cr_assert(!em_batch_iter_next(&it, &r));
    em_batch_iter_init_raw(&it, EM_REC_FIXED, 0, p, sizeof p);
    cr_assert(!em_batch_iter_next(&it, &r));
}

Test(codec, i64_order_matches_numeric_order)
{
    em_rng rng;
    em_rng_seed(&rng, 77);
    int64_t special[] = {INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX};
    for (int t = 0; t < 20000; t++) {
        int64_t a = (int64_t)em_rng_next(&rng), b = (int64_t)em_rng_next(&rng);
        if (t < 36) {
            a = special[t % 6];
            b = special[t / 6];
        } else if (t % 3 == 0) {
            b = a + (int64_t)em_rng_below(&rng, 5) - 2;
        }
        uint8_t ea[8], eb[8];
        em_enc_i64(ea, a);
        em_enc_i64(eb, b);
        int c = memcmp(ea, eb, 8);
        int want = a < b ? -1 : a > b ? 1 : 0;
        cr_assert_eq(c < 0 ? -1 : c > 0 ? 1 : 0, want, "%lld vs %lld", (long long)a,
                     (long long)b);
        cr_assert_eq(em_dec_i64(ea), a);
    }
    uint8_t e[8];
    em_enc_f64(e, -0.25);
    cr_assert_eq(em_dec_f64(e), -0.25);
}

/* Every way a FIXED batch is made gives a 64-byte aligned payload: builders of every size,
 * copies, adoption of unaligned memory (copied), and block decoding with both codecs. */
Test(batch, fixed_payloads_are_64_byte_aligned)
{
    em_err err = EM_ERR_INIT;
    static const uint32_t widths[] = {1, 8, 12, 100, 800};
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        uint32_t w = widths[wi];
        uint8_t rec[800];
        for (uint32_t n = 1; n < 3000; n = n * 3 + 1) {
            em_batch_builder bb;
            em_batch_builder_init(&bb, EM_REC_FIXED, w);
            for (uint32_t i = 0; i < n; i++) {
                memset(rec, (int)i, w);
                cr_assert_eq(em_batch_builder_add_val(&bb, em_slice_make(rec, w), &err), 0);
            }
            em_batch *b = em_batch_builder_finish(&bb, &err);
            em_batch_builder_destroy(&bb);
            cr_assert_not_null(b);
            cr_assert_eq((uintptr_t)em_batch_payload(b) % EM_BATCH_ALIGN, 0, "w %u n %u", w, n);
            cr_assert_eq(em_batch_payload(b)[(size_t)(n - 1) * w], (uint8_t)(n - 1));
            for (int codec = EM_CODEC_NONE; codec <= EM_CODEC_ZSTD; codec++) {
                em_vbuf v;
                em_batch *d = NULL;
                em_vbuf_init(&v);
                cr_assert_eq(em_block_encode(b, (em_codec)codec, 1, &v, &err), 0);
                cr_assert_eq(em_block_decode(v.data, v.len, &d, &err), 0, "%s", err.msg);
                cr_assert_eq((uintptr_t)em_batch_payload(d) % EM_BATCH_ALIGN, 0);
                cr_assert_eq(memcmp(em_batch_payload(d), em_batch_payload(b),
                                    em_batch_nbytes(b)), 0);
                em_batch_unref(d);
                em_vbuf_destroy(&v);
            }
            em_batch *c = em_batch_new_copy(EM_REC_FIXED, w, n, em_batch_payload(b),
                                            em_batch_nbytes(b));
            cr_assert_eq((uintptr_t)em_batch_payload(c) % EM_BATCH_ALIGN, 0);
            em_batch_unref(c);
            em_batch_unref(b);
        }
    }
    /* adopting memory that is not aligned copies it into aligned memory */
    uint8_t *odd = em_malloc(8 * 10);
    for (int i = 0; i < 80; i++)
        odd[i] = (uint8_t)i;
    em_batch *t = em_batch_new_take(EM_REC_FIXED, 8, 10, odd, 80);
    cr_assert_not_null(t);
    cr_assert_eq((uintptr_t)em_batch_payload(t) % EM_BATCH_ALIGN, 0);
    cr_assert_eq(em_batch_payload(t)[79], 79);
    em_batch_unref(t);
}

/* A payload from em_malloc_big is adopted as is (no copy, FIXED stays aligned) and freed
 * through em_free_big with the last reference; OOM on the batch struct frees it too. */
Test(batch, take_big_payload)
{
    size_t n = EM_BIG_MIN * 2;
    long live0 = em_test_big_live();
    uint8_t *p = em_malloc_big(n);
    cr_assert_not_null(p);
    memset(p, 7, n);
    em_batch *b = em_batch_new_take_big(EM_REC_FIXED, 64, n / 64, p, n);
    cr_assert_not_null(b);
    cr_assert_eq(em_batch_payload(b), p, "adopted, not copied");
    cr_assert_eq(em_batch_nbytes(b), n);
    em_batch *r = em_batch_ref(b);
    em_batch_unref(b);
    cr_assert_eq(em_batch_payload(r)[n - 1], 7);
    em_batch_unref(r);
    cr_assert_eq(em_test_big_live(), live0, "payload unmapped with the last reference");

    p = em_malloc_big(n);
    cr_assert_not_null(p);
    em_test_fail_alloc_after(0);
    b = em_batch_new_take_big(EM_REC_BYTES, 0, 0, p, n);
    em_test_alloc_reset();
    cr_assert_null(b);
    cr_assert_eq(em_test_big_live(), live0, "payload freed on OOM");
}
