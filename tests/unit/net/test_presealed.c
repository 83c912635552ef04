/* tests/unit/net/test_presealed.c - payloads sealed once for several peers: the one-shot
 * AEADs of auth.c, each cipher (a flipped byte, another nonce, AAD or key fails; lengths
 * that are not whole blocks, which OCB holds back until its end), and broadcast
 * pieces sealed as the driver seals them (engine/cluster/bcast_serve.c) reassembled by an
 * executor's em__bcast_asm on a sealed link (engine/executor/bcast.c): byte for byte in
 * any order, while a flipped tail byte, a piece moved to another index, a piece of
 * another key, a piece claiming another or an unknown cipher or a truncated piece is
 * refused (EM_EAUTH / EM_EPROTO) and nothing of it is kept. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/executor/protocol.h"
#include "engine/net/net.h"

static const em_cipher ciphers[] = {EM_CIPHER_AES_128_OCB, EM_CIPHER_AES_128_GCM,
                                    EM_CIPHER_AES_256_GCM};
#define NCIPHERS (sizeof ciphers / sizeof *ciphers)

static void one_shot(em_cipher c)
{
    uint8_t key[EM_AEAD_KEY_LEN], key2[EM_AEAD_KEY_LEN], msg[1000], ct[1000], out[1000];
    uint8_t tag[EM_AEAD_TAG_LEN], aad[5] = {1, 2, 3, 4, 5};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_random_bytes(key, sizeof key, &err), 0);
    memcpy(key2, key, sizeof key);
    key2[c == EM_CIPHER_AES_256_GCM ? 31 : 15] ^= 1;
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 17);
    cr_assert_eq(em_aead_seal_once(c, key, 7, aad, sizeof aad, msg, ct, sizeof msg, tag, &err), 0);
    cr_assert_neq(memcmp(ct, msg, sizeof msg), 0, "the bytes are encrypted");
    cr_assert_eq(em_aead_open_once(c, key, 7, aad, sizeof aad, ct, out, sizeof ct, tag, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(memcmp(out, msg, sizeof msg), 0);
    /* the same key, nonce, AAD and bytes seal to the same bytes (re-sealing reveals nothing) */
    uint8_t ct2[1000], tag2[EM_AEAD_TAG_LEN];
    cr_assert_eq(em_aead_seal_once(c, key, 7, aad, sizeof aad, msg, ct2, sizeof msg, tag2, &err),
                 0);
    cr_assert_eq(memcmp(ct, ct2, sizeof ct), 0);
    cr_assert_eq(memcmp(tag, tag2, sizeof tag), 0);
    cr_assert_eq(em_aead_open_once(c, key, 8, aad, sizeof aad, ct, out, sizeof ct, tag, &err),
                 EM_EAUTH);
    cr_assert_eq(em_aead_open_once(c, key2, 7, aad, sizeof aad, ct, out, sizeof ct, tag, &err),
                 EM_EAUTH);
    aad[2] ^= 1;
    cr_assert_eq(em_aead_open_once(c, key, 7, aad, sizeof aad, ct, out, sizeof ct, tag, &err),
                 EM_EAUTH);
    aad[2] ^= 1;
    ct[500] ^= 0x40;
    cr_assert_eq(em_aead_open_once(c, key, 7, aad, sizeof aad, ct, out, sizeof ct, tag, &err),
                 EM_EAUTH);
    ct[500] ^= 0x40;
    tag[0] ^= 1;
    cr_assert_eq(em_aead_open_once(c, key, 7, aad, sizeof aad, ct, out, sizeof ct, tag, &err),
                 EM_EAUTH);
    tag[0] ^= 1;
    /* every length up to three blocks, in place, each byte of the tail checked */
    for (size_t n = 0; n <= 48; n++) {
        uint8_t buf[48];
        memcpy(buf, msg, n);
        cr_assert_eq(em_aead_seal_once(c, key, n, aad, sizeof aad, buf, buf, n, tag, &err), 0,
                     "%s: %s", em_cipher_name(c), err.msg);
        cr_assert(n == 0 || memcmp(buf, msg, n) != 0);
        cr_assert_eq(em_aead_open_once(c, key, n, aad, sizeof aad, buf, buf, n, tag, &err), 0,
                     "%s %zu: %s", em_cipher_name(c), n, err.msg);
        cr_assert(n == 0 || memcmp(buf, msg, n) == 0, "%s %zu", em_cipher_name(c), n);
        if (n > 0) {
            em_aead_seal_once(c, key, n, aad, sizeof aad, buf, buf, n, tag, &err);
            buf[n - 1] ^= 1;   /* the last (held-back) byte is authenticated too */
            cr_assert_eq(em_aead_open_once(c, key, n, aad, sizeof aad, buf, buf, n, tag, &err),
                         EM_EAUTH, "%s %zu", em_cipher_name(c), n);
        }
    }
}

Test(presealed, one_shot_seal_opens_only_unchanged)
{
    for (size_t i = 0; i < NCIPHERS; i++)
        one_shot(ciphers[i]);
}

Test(presealed, ciphers_differ_and_parse)
{
    uint8_t key[EM_AEAD_KEY_LEN] = {9}, msg[64] = {1}, ct[3][64], tag[EM_AEAD_TAG_LEN];
    em_err err = EM_ERR_INIT;
    for (size_t i = 0; i < NCIPHERS; i++)
        cr_assert_eq(em_aead_seal_once(ciphers[i], key, 1, NULL, 0, msg, ct[i], 64, tag, &err),
                     0);
    cr_assert_neq(memcmp(ct[0], ct[1], 64), 0);
    cr_assert_neq(memcmp(ct[1], ct[2], 64), 0);
    /* opened under another cipher: refused */
    em_aead_seal_once(EM_CIPHER_AES_128_OCB, key, 1, NULL, 0, msg, ct[0], 64, tag, &err);
    cr_assert_eq(em_aead_open_once(EM_CIPHER_AES_128_GCM, key, 1, NULL, 0, ct[0], ct[1], 64,
                                   tag, &err), EM_EAUTH);
    cr_assert_eq(em_aead_open_once((em_cipher)77, key, 1, NULL, 0, ct[0], ct[1], 64, tag, &err),
                 EM_EPROTO);
    em_cipher c;
    cr_assert_eq(em_cipher_parse(NULL, "k", &c, &err), 0);
    cr_assert_eq(c, EM_CIPHER_DEFAULT);
    for (size_t i = 0; i < NCIPHERS; i++) {
        cr_assert_eq(em_cipher_parse(em_cipher_name(ciphers[i]), "k", &c, &err), 0);
        cr_assert_eq(c, ciphers[i]);
        cr_assert(em_cipher_known((int)ciphers[i]));
    }
    cr_assert_eq(em_cipher_parse("AES-256-GCM", "k", &c, &err), 0);
    cr_assert_eq(c, EM_CIPHER_AES_256_GCM);
    cr_assert_eq(em_cipher_parse("chacha", "ember.network.crypto.cipher", &c, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "ember.network.crypto.cipher"), "%s", err.msg);
    cr_assert(!em_cipher_known(0) && !em_cipher_known(4));
}

/* The sealed PIECE body of piece i of v (n bytes, piece size ps) under key and cipher c, as
 * the driver sends it on a sealed link: PIECE header (crc field = c) | key | ciphertext |
 * tag. */
static uint8_t *sealed_piece(em_cipher c, const uint8_t *key, const uint8_t *v, size_t n,
                             uint32_t ps, uint32_t i, size_t *len)
{
    size_t off = (size_t)i * ps, k = n - off < ps ? n - off : ps;
    if (n == 0)
        k = 0;
    uint8_t *b = malloc(EM__PIECE_HDR + EM_AEAD_KEY_LEN + k + EM_AEAD_TAG_LEN);
    em__piece_hdr(b, n, ps, i, (uint32_t)c);
    memcpy(b + EM__PIECE_HDR, key, EM_AEAD_KEY_LEN);
    uint8_t *ct = b + EM__PIECE_HDR + EM_AEAD_KEY_LEN;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_aead_seal_once(c, key, i, b, EM__PIECE_HDR, v + off, ct, k, ct + k, &err), 0);
    *len = EM__PIECE_HDR + EM_AEAD_KEY_LEN + k + EM_AEAD_TAG_LEN;
    return b;
}

static void sealed_roundtrip(em_cipher c, size_t n, uint32_t ps)
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
        uint8_t *b = sealed_piece(c, key, v, n, ps, i, &len);
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
    for (size_t i = 0; i < NCIPHERS; i++) {
        sealed_roundtrip(ciphers[i], 0, 16);
        sealed_roundtrip(ciphers[i], 1, 16);
        sealed_roundtrip(ciphers[i], 64, 16);
        sealed_roundtrip(ciphers[i], 1000, 64);
        sealed_roundtrip(ciphers[i], 100001, 4096);
        sealed_roundtrip(ciphers[i], 100001, 4099);   /* pieces not whole blocks */
    }
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
    em_cipher c = EM_CIPHER_DEFAULT;
    uint8_t *p0 = sealed_piece(c, key, v, sizeof v, 100, 0, &len);
    /* a flipped ciphertext or tag byte */
    for (size_t at = EM__PIECE_HDR + EM_AEAD_KEY_LEN; at < len; at += 37) {
        p0[at] ^= 1;
        cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(p0, len), &err), EM_EAUTH, "byte %zu",
                     at);
        p0[at] ^= 1;
    }
    /* piece 1's bytes presented as piece 0 (its header rewritten): nonce and AAD differ */
    uint8_t *p1 = sealed_piece(c, key, v, sizeof v, 100, 1, &len1);
    em__piece_hdr(p1, sizeof v, 100, 0, (uint32_t)c);
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(p1, len1), &err), EM_EAUTH);
    free(p1);
    /* a piece sealed under another value's key but carrying this one's */
    uint8_t *pf = sealed_piece(c, other, v, sizeof v, 100, 0, &len1);
    memcpy(pf + EM__PIECE_HDR, key, sizeof key);
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(pf, len1), &err), EM_EAUTH);
    free(pf);
    /* the cipher field changed (a downgrade): another cipher fails its tag (the field is
     * in the AAD too), an unknown one is refused before any AES */
    em_store_le32(p0 + 16, EM_CIPHER_AES_256_GCM);
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(p0, len), &err), EM_EAUTH);
    em_store_le32(p0 + 16, 99);
    cr_assert_eq(em__bcast_asm_add(&a, em_slice_make(p0, len), &err), EM_EPROTO);
    cr_assert(strstr(err.msg, "unknown cipher"), "%s", err.msg);
    em_store_le32(p0 + 16, (uint32_t)c);
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
