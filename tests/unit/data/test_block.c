/* tests/unit/data/test_block.c - block encode/decode with and without zstd, detection of
 * every flipped byte and every truncation, concatenated blocks, header peeking. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/data/data.h"

static em_batch *kv_batch(int n, int vlen)
{
    em_batch_builder bb;
    em_err err = EM_ERR_INIT;
    em_batch_builder_init(&bb, EM_REC_KV, 0);
    uint8_t *v = em_xmalloc((size_t)vlen + 1);
    for (int i = 0; i < n; i++) {
        char k[16];
        int kn = snprintf(k, sizeof k, "key%d", i);
        for (int j = 0; j < vlen; j++)
            v[j] = (uint8_t)('a' + (i + j) % 7);
        cr_assert_eq(em_batch_builder_add_kv(&bb, em_slice_make(k, (size_t)kn),
                                             em_slice_make(v, (size_t)vlen), &err),
                     0);
    }
    em_free(v);
    em_batch *b = em_batch_builder_finish(&bb, &err);
    em_batch_builder_destroy(&bb);
    return b;
}

static void assert_same(const em_batch *a, const em_batch *b)
{
    cr_assert_eq(em_batch_kind(a), em_batch_kind(b));
    cr_assert_eq(em_batch_width(a), em_batch_width(b));
    cr_assert_eq(em_batch_nrecs(a), em_batch_nrecs(b));
    cr_assert_eq(em_batch_nbytes(a), em_batch_nbytes(b));
    cr_assert(memcmp(em_batch_payload(a), em_batch_payload(b), em_batch_nbytes(a)) == 0);
}

Test(block, roundtrip_none_and_zstd)
{
    em_batch *b = kv_batch(500, 40);
    for (int codec = 0; codec <= 1; codec++) {
        em_vbuf out;
        em_vbuf_init(&out);
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_block_encode(b, (em_codec)codec, 3, &out, &err), 0, "%s", err.msg);
        cr_assert_eq(memcmp(out.data, "EMBK", 4), 0);
        cr_assert_eq(out.data[6], codec, "codec byte");
        cr_assert_eq(em_load_le64(out.data + 20), em_batch_nbytes(b));
        if (codec == 1)
            cr_assert_lt(out.len, em_batch_nbytes(b) / 2, "repetitive data must shrink");
        else
            cr_assert_eq(out.len, EM_BLOCK_HEADER_SIZE + em_batch_nbytes(b));
        size_t size;
        cr_assert_eq(em_block_peek_size(out.data, out.len, &size, &err), 0);
        cr_assert_eq(size, out.len);
        em_batch *d = NULL;
        cr_assert_eq(em_block_decode(out.data, out.len, &d, &err), 0, "%s", err.msg);
        assert_same(b, d);
        em_batch_unref(d);
        em_vbuf_destroy(&out);
    }
    em_batch_unref(b);
}

Test(block, incompressible_falls_back_to_none)
{
    em_batch_builder bb;
    em_err err = EM_ERR_INIT;
    em_batch_builder_init(&bb, EM_REC_FIXED, 8);
    em_rng r;
    em_rng_seed(&r, 1);
    for (int i = 0; i < 64; i++) {
        uint8_t v[8];
        em_store_le64(v, em_rng_next(&r));
        em_batch_builder_add_val(&bb, em_slice_make(v, 8), &err);
    }
    em_batch *b = em_batch_builder_finish(&bb, &err);
    em_batch_builder_destroy(&bb);
    em_vbuf out;
    em_vbuf_init(&out);
    cr_assert_eq(em_vbuf_append(&out, "prefix", 6), 0);
    cr_assert_eq(em_block_encode(b, EM_CODEC_ZSTD, 0, &out, &err), 0);
    cr_assert_eq(out.data[6 + 6], 0, "random data is stored uncompressed");
    cr_assert_eq(em_load_le32(out.data + 6 + 8), 8, "width");
    em_batch *d;
    cr_assert_eq(em_block_decode(out.data + 6, out.len - 6, &d, &err), 0, "%s", err.msg);
    assert_same(b, d);
    em_batch_unref(d);
    em_batch_unref(b);
    em_vbuf_destroy(&out);
}

Test(block, empty_batch)
{
    em_batch_builder bb;
    em_err err = EM_ERR_INIT;
    em_batch_builder_init(&bb, EM_REC_BYTES, 0);
    em_batch *b = em_batch_builder_finish(&bb, &err);
    em_batch_builder_destroy(&bb);
    em_vbuf out;
    em_vbuf_init(&out);
    cr_assert_eq(em_block_encode(b, EM_CODEC_ZSTD, 1, &out, &err), 0);
    cr_assert_eq(out.len, EM_BLOCK_HEADER_SIZE);
    em_batch *d;
    cr_assert_eq(em_block_decode(out.data, out.len, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(em_batch_nrecs(d), 0);
    em_batch_unref(d);
    em_batch_unref(b);
    em_vbuf_destroy(&out);
}

static void every_byte_flip_detected(em_codec codec)
{
    em_batch *b = kv_batch(6, 30);
    em_vbuf out;
    em_vbuf_init(&out);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_block_encode(b, codec, 1, &out, &err), 0);
    cr_assert_eq(out.data[6], codec);
    for (size_t i = 0; i < out.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            out.data[i] ^= (uint8_t)(1u << bit);
            em_batch *d = NULL;
            int rc = em_block_decode(out.data, out.len, &d, &err);
            cr_assert_eq(rc, EM_ECORRUPT, "flip at byte %zu bit %d not detected", i, bit);
            cr_assert_null(d);
            out.data[i] ^= (uint8_t)(1u << bit);
        }
    }
    em_batch *d;
    cr_assert_eq(em_block_decode(out.data, out.len, &d, &err), 0, "restored block decodes");
    em_batch_unref(d);
    em_batch_unref(b);
    em_vbuf_destroy(&out);
}

Test(block, every_flipped_byte_detected_none)
{
    every_byte_flip_detected(EM_CODEC_NONE);
}

Test(block, every_flipped_byte_detected_zstd)
{
    every_byte_flip_detected(EM_CODEC_ZSTD);
}

Test(block, every_truncation_detected)
{
    em_batch *b = kv_batch(20, 10);
    em_vbuf out;
    em_vbuf_init(&out);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_block_encode(b, EM_CODEC_ZSTD, 1, &out, &err), 0);
    for (size_t n = 0; n < out.len; n++) {
        em_batch *d = NULL;
        cr_assert_eq(em_block_decode(out.data, n, &d, &err), EM_ECORRUPT, "length %zu", n);
        cr_assert_null(d);
        size_t size;
        int rc = em_block_peek_size(out.data, n, &size, &err);
        if (n < EM_BLOCK_HEADER_SIZE)
            cr_assert_eq(rc, EM_ECORRUPT);
        else
            cr_assert(rc == 0 && size == out.len);
        cr_assert_eq(em_blocks_decode_each(out.data, n, NULL, NULL, &err),
                     n == 0 ? 0 : EM_ECORRUPT);
    }
    /* One extra byte is an error too for em_block_decode (exactly n bytes). */
    em_vbuf_append(&out, "", 1);
    em_batch *d = NULL;
    cr_assert_eq(em_block_decode(out.data, out.len, &d, &err), EM_ECORRUPT);
    em_batch_unref(b);
    em_vbuf_destroy(&out);
}

struct collect {
    int calls;
    uint64_t recs;
    int stop_after;
};

static int collect_fn(void *ud, em_batch *b, em_err *err)
{
    struct collect *c = ud;
    c->calls++;
    c->recs += em_batch_nrecs(b);
    em_batch_unref(b);
    if (c->stop_after && c->calls == c->stop_after)
        return em_err_set(err, EM_ECANCELED, "stop");
    return 0;
}

Test(block, decode_each_over_concatenation)
{
    em_vbuf out;
    em_vbuf_init(&out);
    em_err err = EM_ERR_INIT;
    size_t offsets[4];
    for (int i = 0; i < 4; i++) {
        em_batch *b = kv_batch(10 * (i + 1), 20);
        offsets[i] = out.len;
        cr_assert_eq(em_block_encode(b, i % 2 ? EM_CODEC_ZSTD : EM_CODEC_NONE, 1, &out, &err),
                     0);
        em_batch_unref(b);
    }
    struct collect c = {0};
    cr_assert_eq(em_blocks_decode_each(out.data, out.len, collect_fn, &c, &err), 0);
    cr_assert_eq(c.calls, 4);
    cr_assert_eq(c.recs, 100);

    struct collect s = {.stop_after = 2};
    cr_assert_eq(em_blocks_decode_each(out.data, out.len, collect_fn, &s, &err), EM_ECANCELED);
    cr_assert_eq(s.calls, 2);

    /* Corrupt the payload of the third block: error names its offset. */
    out.data[offsets[2] + EM_BLOCK_HEADER_SIZE + 3] ^= 0x40;
    struct collect c2 = {0};
    cr_assert_eq(em_blocks_decode_each(out.data, out.len, collect_fn, &c2, &err), EM_ECORRUPT);
    cr_assert_eq(c2.calls, 2);
    char want[64];
    snprintf(want, sizeof want, "block at offset %zu: payload checksum mismatch", offsets[2]);
    cr_assert(strstr(err.msg, want) == err.msg, "%s", err.msg);
    em_vbuf_destroy(&out);
}

/* A header whose fields lie but whose header checksum is recomputed must still be caught. */
static int decode_with_header_edit(int off, uint64_t v, int width)
{
    em_batch *b = kv_batch(3, 5);
    em_vbuf out;
    em_vbuf_init(&out);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_block_encode(b, EM_CODEC_NONE, 1, &out, &err), 0);
    if (width == 1)
        out.data[off] = (uint8_t)v;
    else if (width == 4)
        em_store_le32(out.data + off, (uint32_t)v);
    else
        em_store_le64(out.data + off, v);
    em_store_le32(out.data + 40, em_crc32c(0, out.data, 40));
    em_batch *d = NULL;
    int rc = em_block_decode(out.data, out.len, &d, &err);
    em_batch_unref(d);
    em_batch_unref(b);
    em_vbuf_destroy(&out);
    return rc;
}

Test(block, lying_header_fields)
{
    cr_assert_eq(decode_with_header_edit(4, 2, 1), EM_ECORRUPT);            /* version */
    cr_assert_eq(decode_with_header_edit(5, 7, 1), EM_ECORRUPT);            /* kind */
    cr_assert_eq(decode_with_header_edit(5, EM_REC_BYTES, 1), EM_ECORRUPT); /* other kind */
    cr_assert_eq(decode_with_header_edit(6, 1, 1), EM_ECORRUPT);            /* codec */
    cr_assert_eq(decode_with_header_edit(6, 9, 1), EM_ECORRUPT);
    cr_assert_eq(decode_with_header_edit(7, 1, 1), EM_ECORRUPT);            /* reserved */
    cr_assert_eq(decode_with_header_edit(8, 4, 4), EM_ECORRUPT);            /* width on KV */
    cr_assert_eq(decode_with_header_edit(12, 4, 8), EM_ECORRUPT);           /* nrecs */
    cr_assert_eq(decode_with_header_edit(12, UINT64_MAX, 8), EM_ECORRUPT);
    cr_assert_eq(decode_with_header_edit(20, 1ULL << 40, 8), EM_ECORRUPT);  /* raw */
    cr_assert_eq(decode_with_header_edit(28, 1ULL << 40, 8), EM_ECORRUPT);  /* stored */
    cr_assert_eq(decode_with_header_edit(36, 0, 4), EM_ECORRUPT);           /* payload crc */
}

Test(block, oversized_raw_claim_rejected_before_allocating)
{
    em_batch *b = kv_batch(200, 100);
    em_vbuf out;
    em_vbuf_init(&out);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_block_encode(b, EM_CODEC_ZSTD, 1, &out, &err), 0);
    cr_assert_eq(out.data[6], EM_CODEC_ZSTD);
    em_store_le64(out.data + 20, (uint64_t)1 << 33);
    em_store_le32(out.data + 40, em_crc32c(0, out.data, 40));
    em_batch *d = NULL;
    em_test_fail_alloc_after(0); /* any allocation would turn this into EM_ENOMEM */
    int rc = em_block_decode(out.data, out.len, &d, &err);
    em_test_alloc_reset();
    cr_assert_eq(rc, EM_ECORRUPT, "%s", err.msg);
    cr_assert_null(d);
    em_batch_unref(b);
    em_vbuf_destroy(&out);
}

Test(block, decode_survives_oom)
{
    em_batch *b = kv_batch(50, 30);
    em_vbuf out;
    em_vbuf_init(&out);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_block_encode(b, EM_CODEC_ZSTD, 1, &out, &err), 0);
    for (int n = 0;; n++) {
        em_batch *d = NULL;
        em_test_fail_alloc_after(n);
        int rc = em_block_decode(out.data, out.len, &d, &err);
        em_test_alloc_reset();
        if (rc == 0) {
            assert_same(b, d);
            em_batch_unref(d);
            break;
        }
        cr_assert_eq(rc, EM_ENOMEM, "allocation %d: %s", n, err.msg);
        cr_assert_null(d);
    }
    em_batch_unref(b);
    em_vbuf_destroy(&out);
}
