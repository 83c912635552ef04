/* tests/unit/net/test_presealed.c - payloads sealed once for several peers: the one-shot
 * AES-256-GCM of auth.c (a flipped byte, another nonce, AAD or key fails), and broadcast
 * pieces sealed as the driver seals them (engine/cluster/bcast_serve.c) reassembled by an
 * executor's em__bcast_asm on a sealed link (engine/executor/bcast.c): byte for byte in
 * any order, while a flipped tail byte, a piece moved to another index, a piece of
 * another key or a truncated piece is refused (EM_EAUTH / EM_EPROTO) and nothing of it
 * is kept. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/executor/protocol.h"
#include "engine/net/net.h"

Test(presealed, one_shot_seal_opens_only_unchanged)
{
    uint8_t key[EM_AEAD_KEY_LEN], key2[EM_AEAD_KEY_LEN], msg[1000], ct[1000], out[1000];
    uint8_t tag[EM_AEAD_TAG_LEN], aad[5] = {1, 2, 3, 4, 5};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_random_bytes(key, sizeof key, &err), 0);
    memcpy(key2, key, sizeof key);
    key2[31] ^= 1;
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 17);
    cr_assert_eq(em_aead_seal_once(key, 7, aad, sizeof aad, msg, ct, sizeof msg, tag, &err), 0);
    cr_assert_neq(memcmp(ct, msg, sizeof msg), 0, "the bytes are encrypted");
    cr_assert_eq(em_aead_open_once(key, 7, aad, sizeof aad, ct, out, sizeof ct, tag, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(memcmp(out, msg, sizeof msg), 0);
    /* the same key, nonce, AAD and bytes seal to the same bytes (re-sealing reveals nothing) */
    uint8_t ct2[1000], tag2[EM_AEAD_TAG_LEN];
    cr_assert_eq(em_aead_seal_once(key, 7, aad, sizeof aad, msg, ct2, sizeof msg, tag2, &err),
                 0);
    cr_assert_eq(memcmp(ct, ct2, sizeof ct), 0);
    cr_assert_eq(memcmp(tag, tag2, sizeof tag), 0);
    cr_assert_eq(em_aead_open_once(key, 8, aad, sizeof aad, ct, out, sizeof ct, tag, &err),
                 EM_EAUTH);
    cr_assert_eq(em_aead_open_once(key2, 7, aad, sizeof aad, ct, out, sizeof ct, tag, &err),
                 EM_EAUTH);
    aad[2] ^= 1;
    cr_assert_eq(em_aead_open_once(key, 7, aad, sizeof aad, ct, out, sizeof ct, tag, &err),
                 EM_EAUTH);
    aad[2] ^= 1;
    ct[500] ^= 0x40;
    cr_assert_eq(em_aead_open_once(key, 7, aad, sizeof aad, ct, out, sizeof ct, tag, &err),
                 EM_EAUTH);
    ct[500] ^= 0x40;
    tag[0] ^= 1;
    cr_assert_eq(em_aead_open_once(key, 7, aad, sizeof aad, ct, out, sizeof ct, tag, &err),
                 EM_EAUTH);
}

/* The sealed PIECE body of piece i of v (n bytes, piece size ps) under key, as the driver
 * sends it on a sealed link: PIECE header (crc 0) | key | ciphertext | tag. */
static uint8_t *sealed_piece(const uint8_t *key, const uint8_t *v, size_t n, uint32_t ps,
                             uint32_t i, size_t *len)
{
    size_t off = (size_t)i * ps, k = n - off < ps ? n - off : ps;
    if (n == 0)
        k = 0;
    uint8_t *b = malloc(EM__PIECE_HDR + EM_AEAD_KEY_LEN + k + EM_AEAD_TAG_LEN);
    em__piece_hdr(b, n, ps, i, 0);
    memcpy(b + EM__PIECE_HDR, key, EM_AEAD_KEY_LEN);
    uint8_t *ct = b + EM__PIECE_HDR + EM_AEAD_KEY_LEN;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_aead_seal_once(key, i, b, EM__PIECE_HDR, v + off, ct, k, ct + k, &err), 0);
    *len = EM__PIECE_HDR + EM_AEAD_KEY_LEN + k + EM_AEAD_TAG_LEN;
    return b;
}

static void sealed_roundtrip(size_t n, uint32_t ps)
{
    uint8_t key[EM_AEAD_KEY_LEN];
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_random_bytes(key, sizeof key, &err), 0);
    uint8_t *v = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = (uint8_t)(i * 29 + 3);
    uint32_t np = em__piece_count(n, ps);
    em__bcast_asm a = {.sealed = true};
    for (uint32_t k = 0; k < np; k++) {
        uint32_t i = k % 2 ? np - 1 - k / 2 : k / 2;   /* from both ends */
        size_t len;
        uint8_t *b = sealed_piece(key, v, n, ps, i, &len);
        cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(b, len), &err), 0, "%s", err.msg);
        free(b);
    }
    cr_assert(em__bcast_asm_done(&a));
    em_batch *bt = em__bcast_asm_finish(&a);
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init(&it, bt);
    cr_assert(em_batch_iter_next(&it, &r));
    cr_assert_eq(r.val.n, n);
    cr_assert(n == 0 || memcmp(r.val.p, v, n) == 0);
    em_batch_unref(bt);
    free(v);
}

Test(presealed, sealed_pieces_reassemble_byte_for_byte)
{
    sealed_roundtrip(0, 16);
    sealed_roundtrip(1, 16);
    sealed_roundtrip(64, 16);
    sealed_roundtrip(1000, 64);
    sealed_roundtrip(100001, 4096);
}

Test(presealed, tampered_moved_or_foreign_pieces_are_refused)
{
    uint8_t key[EM_AEAD_KEY_LEN], other[EM_AEAD_KEY_LEN], v[300];
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_random_bytes(key, sizeof key, &err), 0);
    cr_assert_eq(em_random_bytes(other, sizeof other, &err), 0);
    for (size_t i = 0; i < sizeof v; i++)
        v[i] = (uint8_t)i;
    em__bcast_asm a = {.sealed = true};
    size_t len, len1;
    uint8_t *p0 = sealed_piece(key, v, sizeof v, 100, 0, &len);
    /* a flipped ciphertext or tag byte */
    for (size_t at = EM__PIECE_HDR + EM_AEAD_KEY_LEN; at < len; at += 37) {
        p0[at] ^= 1;
        cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(p0, len), &err), EM_EAUTH, "byte %zu",
                     at);
        p0[at] ^= 1;
    }
    /* piece 1's bytes presented as piece 0 (its header rewritten): nonce and AAD differ */
    uint8_t *p1 = sealed_piece(key, v, sizeof v, 100, 1, &len1);
    em__piece_hdr(p1, sizeof v, 100, 0, 0);
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(p1, len1), &err), EM_EAUTH);
    free(p1);
    /* a piece sealed under another value's key but carrying this one's */
    uint8_t *pf = sealed_piece(other, v, sizeof v, 100, 0, &len1);
    memcpy(pf + EM__PIECE_HDR, key, sizeof key);
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(pf, len1), &err), EM_EAUTH);
    free(pf);
    /* truncated: shorter than key + tag, or one byte short */
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(p0, EM__PIECE_HDR + 40), &err),
                 EM_EPROTO);
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(p0, len - 1), &err), EM_EPROTO);
    cr_assert_eq(a.received, 0, "nothing of a refused piece counts");
    /* the untouched piece still goes in */
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(p0, len), &err), 0, "%s", err.msg);
    cr_assert_eq(a.received, 1);
    free(p0);
    em__bcast_asm_destroy(&a);
}
