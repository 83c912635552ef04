/* tests/unit/executor/test_bcast.c - broadcast pieces (engine/executor/bcast.c) and the
 * `bcast` message: a value split into PIECE frame bodies is reassembled byte for byte from
 * pieces in any order (0 bytes, 1 byte, a piece boundary, a short last piece); a
 * corrupted piece is EM_ECORRUPT and a malformed, inconsistent, out-of-range or repeated
 * piece is EM_EPROTO, never a crash; `bcast` round-trips and rejects bad fields; a pushed
 * broadcast (BPUSH) decodes or is rejected the same way. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/executor/protocol.h"

/* The PIECE body of piece i of value v (n bytes) with piece size ps; caller frees. */
static uint8_t *piece(const uint8_t *v, size_t n, uint32_t ps, uint32_t i, size_t *len)
{
    size_t off = (size_t)i * ps, k = n - off < ps ? n - off : ps;
    if (n == 0)
        k = 0;
    uint8_t *b = malloc(EM__PIECE_HDR + k + 1);
    em__piece_hdr(b, n, ps, i, em_crc32c(0, v + off, k));
    memcpy(b + EM__PIECE_HDR, v + off, k);
    *len = EM__PIECE_HDR + k;
    return b;
}

static void roundtrip(size_t n, uint32_t ps, bool reverse)
{
    uint8_t *v = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = (uint8_t)(i * 131 + 7);
    uint32_t np = em__piece_count(n, ps);
    em__bcast_asm a = {0};
    em_err err = EM_ERR_INIT;
    for (uint32_t k = 0; k < np; k++) {
        uint32_t i = reverse ? np - 1 - k : k;
        size_t len;
        uint8_t *b = piece(v, n, ps, i, &len);
        cr_assert(!em__bcast_asm_done(&a));
        cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(b, len), &err), 0, "%s", err.msg);
        free(b);
    }
    cr_assert(em__bcast_asm_done(&a));
    em_batch *bt = em__bcast_asm_finish(&a);
    cr_assert_not_null(bt);
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init(&it, bt);
    cr_assert(em_batch_iter_next(&it, &r));
    cr_assert_eq(r.val.n, n);
    cr_assert(n == 0 || memcmp(r.val.p, v, n) == 0);
    cr_assert(!em_batch_iter_next(&it, &r));
    em_batch_unref(bt);
    em__bcast_asm_destroy(&a);
    free(v);
}

Test(bcast, values_reassemble_byte_for_byte)
{
    roundtrip(0, 16, false);
    roundtrip(1, 16, false);
    roundtrip(16, 16, true);
    roundtrip(17, 16, true);
    roundtrip(1000, 7, true);
    roundtrip(1000, 7, false);
    cr_assert_eq(em__piece_count(0, EM__PIECE_SIZE), 1);
    cr_assert_eq(em__piece_count(EM__PIECE_SIZE, EM__PIECE_SIZE), 1);
    cr_assert_eq(em__piece_count(EM__PIECE_SIZE + 1, EM__PIECE_SIZE), 2);
}

/* Adds body b to a fresh assembly of a 40-byte value (piece size 16) after its piece 0. */
static int add_after_first(uint8_t *b, size_t len, em_err *err)
{
    uint8_t v[40];
    memset(v, 5, sizeof v);
    size_t l0;
    uint8_t *p0 = piece(v, sizeof v, 16, 0, &l0);
    em__bcast_asm a = {0};
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(p0, l0), err), 0);
    free(p0);
    int rc = em__bcast_asm_add(&a, em_slice_make(b, len), err);
    em__bcast_asm_destroy(&a);
    return rc;
}

Test(bcast, bad_pieces_are_errors)
{
    uint8_t v[40];
    memset(v, 5, sizeof v);
    size_t len;
    em_err err = EM_ERR_INIT;
    /* a flipped bit in the bytes: checksum */
    uint8_t *b = piece(v, sizeof v, 16, 1, &len);
    b[EM__PIECE_HDR + 3] ^= 1;
    cr_assert_eq(add_after_first(b, len, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "checksum"), "%s", err.msg);
    free(b);
    /* index out of range, repeated piece, wrong length, inconsistent sizes, short header */
    b = piece(v, sizeof v, 16, 1, &len);
    em_store_le32(b + 12, 3);
    cr_assert_eq(add_after_first(b, len, &err), EM_EPROTO);
    em_store_le32(b + 12, 0);
    cr_assert_eq(add_after_first(b, len, &err), EM_EPROTO);
    em_store_le32(b + 12, 1);
    cr_assert_eq(add_after_first(b, len - 1, &err), EM_EPROTO);
    em_store_le64(b, 41);
    cr_assert_eq(add_after_first(b, len, &err), EM_EPROTO);
    em_store_le64(b, 40);
    em_store_le32(b + 8, 8);
    cr_assert_eq(add_after_first(b, len, &err), EM_EPROTO);
    cr_assert_eq(add_after_first(b, 10, &err), EM_EPROTO);
    free(b);
    /* first pieces with absurd sizes are refused before anything is allocated */
    em__bcast_asm a = {0};
    uint8_t h[EM__PIECE_HDR];
    em__piece_hdr(h, (uint64_t)1 << 40, 16, 0, 0);
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(h, sizeof h), &err), EM_EPROTO);
    em__piece_hdr(h, 10, 0, 0, 0);
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(h, sizeof h), &err), EM_EPROTO);
    em__piece_hdr(h, 10, EM__PIECE_MAX + 1, 0, 0);
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(h, sizeof h), &err), EM_EPROTO);
    cr_assert_null(a.payload);
    em__bcast_asm_destroy(&a);
}

Test(bcast, message_roundtrip_and_bad_fields)
{
    em__msg in = {.type = EM__MSG_BCAST, .id = 9, .block = {EM_BLOCK_BROADCAST, 77, 0, 0},
                  .first = 5, .count = 4}, out;
    em_vbuf v;
    em_err err = EM_ERR_INIT;
    em_vbuf_init(&v);
    cr_assert_eq(em__msg_encode(&in, &v, &err), 0, "%s", err.msg);
    cr_assert_eq(em__msg_decode(v.data, v.len, &out, &err), 0, "%s", err.msg);
    cr_assert_eq(out.type, EM__MSG_BCAST);
    cr_assert_eq(out.block.a, 77);
    cr_assert_eq(out.block.type, EM_BLOCK_BROADCAST);
    cr_assert_eq(out.first, 5);
    cr_assert_eq(out.count, 4);
    em__msg_destroy(&out);
    em_vbuf_destroy(&v);
    const char *bad[] = {
        "{\"t\":\"bcast\",\"id\":1,\"bcast\":2,\"first\":0,\"count\":0}",
        "{\"t\":\"bcast\",\"id\":1,\"bcast\":2,\"first\":0,\"count\":1025}",
        "{\"t\":\"bcast\",\"id\":1,\"bcast\":-2,\"first\":0,\"count\":1}",
        "{\"t\":\"bcast\",\"id\":1,\"first\":0,\"count\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        em__msg m;
        cr_assert_eq(em__msg_decode((const uint8_t *)bad[i], strlen(bad[i]), &m, &err),
                     EM_EPROTO, "%s", bad[i]);
        em__msg_destroy(&m);
    }
    /* a PIECE DATA frame header parses; kind 6 does not */
    uint8_t f[EM__DATA_HDR + 1] = {0};
    uint8_t kind, flags;
    uint64_t id;
    em_slice body;
    em__data_hdr(f, EM__DATA_PIECE, 0, 3);
    cr_assert_eq(em__data_parse(em_slice_make(f, sizeof f), &kind, &flags, &id, &body, &err), 0);
    cr_assert_eq(kind, EM__DATA_PIECE);
    f[0] = EM__DATA_KIND_MAX + 1;
    cr_assert_eq(em__data_parse(em_slice_make(f, sizeof f), &kind, &flags, &id, &body, &err),
                 EM_EPROTO);
}

/* A pushed broadcast (BPUSH body: one piece holding the whole value) decodes to the value;
 * a value split in two pieces, a piece index other than 0, a value over EM__BPUSH_MAX, a
 * short body and a bad checksum are errors; a sealed link skips the checksum. */
Test(bcast, pushed_values)
{
    enum { N = 1000 };
    uint8_t v[N];
    for (size_t i = 0; i < N; i++)
        v[i] = (uint8_t)(i * 17 + 3);
    em_err err = EM_ERR_INIT;
    size_t sizes[] = {0, 1, N};
    for (size_t s = 0; s < 3; s++) {
        size_t len;
        uint8_t *b = piece(v, sizes[s], EM__PIECE_SIZE, 0, &len);
        em_batch *bt = NULL;
        cr_assert_eq(em__bpush_decode(em_slice_make(b, len), false, &bt, &err), 0, "%s",
                     err.msg);
        em_batch_iter it;
        em_rec r;
        em_batch_iter_init(&it, bt);
        cr_assert(em_batch_iter_next(&it, &r));
        cr_assert_eq(r.val.n, sizes[s]);
        cr_assert(sizes[s] == 0 || memcmp(r.val.p, v, sizes[s]) == 0);
        em_batch_unref(bt);
        free(b);
    }
    size_t len;
    em_batch *bt = NULL;
    uint8_t *b = piece(v, N, 600, 0, &len);   /* the first of two pieces */
    cr_assert_eq(em__bpush_decode(em_slice_make(b, len), false, &bt, &err), EM_EPROTO);
    cr_assert_null(bt);
    cr_assert(strstr(err.msg, "pushed broadcast"), "%s", err.msg);
    free(b);
    b = piece(v, N, EM__PIECE_SIZE, 0, &len);
    em_store_le32(b + 12, 1);   /* index 1 */
    cr_assert_eq(em__bpush_decode(em_slice_make(b, len), false, &bt, &err), EM_EPROTO);
    em_store_le32(b + 12, 0);
    cr_assert_eq(em__bpush_decode(em_slice_make(b, EM__PIECE_HDR - 1), false, &bt, &err),
                 EM_EPROTO);
    cr_assert_eq(em__bpush_decode(em_slice_make(b, len - 1), false, &bt, &err), EM_EPROTO);
    b[EM__PIECE_HDR + 5] ^= 1;   /* a flipped bit: the crc catches it on a plain link */
    cr_assert_eq(em__bpush_decode(em_slice_make(b, len), false, &bt, &err), EM_ECORRUPT);
    em_store_le32(b + 16, 0);    /* sealed: crc 0, the tag proved the bytes */
    cr_assert_eq(em__bpush_decode(em_slice_make(b, len), true, &bt, &err), 0, "%s", err.msg);
    em_batch_unref(bt);
    free(b);
    size_t big = EM__BPUSH_MAX + 1;
    uint8_t *bv = calloc(1, big);
    b = piece(bv, big, EM__PIECE_SIZE, 0, &len);
    bt = NULL;
    cr_assert_eq(em__bpush_decode(em_slice_make(b, len), false, &bt, &err), EM_EPROTO);
    cr_assert_null(bt);
    free(b);
    free(bv);
}
