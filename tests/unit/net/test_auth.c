/* SHA-256, HMAC-SHA256 and HKDF (OpenSSL) against published vectors (FIPS 180-4, RFC 4231,
 * RFC 5869), the handshake proofs' properties, and AES-GCM frame sealing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/net/net.h"

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void check_sha(const void *msg, size_t n, const char *want)
{
    uint8_t d[32];
    char h[65];
    em_sha256(msg, n, d);
    hex(d, 32, h);
    cr_assert_str_eq(h, want);
}

Test(auth, sha256_vectors)
{
    check_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_sha(m, strlen(m), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* RFC 5869, test case 1. */
Test(auth, hkdf_rfc5869)
{
    uint8_t ikm[22], salt[13], out[42];
    char info[11], h[85];
    memset(ikm, 0x0b, sizeof ikm);
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (char)(0xf0 + i);
    info[10] = '\0';
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_hkdf_sha256(ikm, sizeof ikm, salt, sizeof salt, info, out, sizeof out, &err),
                 0, "%s", err.msg);
    hex(out, sizeof out, h);
    cr_assert_str_eq(h, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5"
                        "b887185865");
}

/* Seals one message (header as AAD) with s, opens it with o; returns open's result. */
static int seal_open(em_aead *s, em_aead *o, uint8_t *msg, size_t n, int flip)
{
    uint8_t hdr[9] = "EMFRxxxxT", tag[16];
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_aead_begin(s, hdr, 9, &err), 0);
    cr_assert_eq(em_aead_update(s, msg, msg, n, &err), 0);
    cr_assert_eq(em_aead_finish(s, tag, &err), 0);
    if (flip >= 0)
        msg[flip] ^= 1;
    int rc = em_aead_begin(o, hdr, 9, &err);
    if (rc == 0)
        rc = em_aead_update(o, msg, msg, n, &err);
    if (rc == 0)
        rc = em_aead_finish(o, tag, &err);
    return rc;
}

Test(auth, aead_round_trip_tamper_replay_and_direction)
{
    uint8_t cn[32], sn[32];
    em_err err = EM_ERR_INIT;
    em_random_bytes(cn, 32, &err);
    em_random_bytes(sn, 32, &err);
    const char *k = "0123456789abcdef-secret";
    em_aead *cs = em_aead_new(k, strlen(k), cn, sn, true, true, &err);    /* client seals */
    em_aead *so = em_aead_new(k, strlen(k), cn, sn, true, false, &err);   /* server opens */
    cr_assert(cs && so, "%s", err.msg);
    uint8_t msg[100], orig[100];
    for (int i = 0; i < 100; i++)
        msg[i] = orig[i] = (uint8_t)i;
    cr_assert_eq(seal_open(cs, so, msg, sizeof msg, -1), 0);
    cr_assert_eq(memcmp(msg, orig, sizeof msg), 0, "plaintext restored");
    cr_assert_eq(seal_open(cs, so, msg, sizeof msg, -1), 0, "second frame (seq 1)");
    /* a flipped bit fails, and the direction stays closed after */
    cr_assert_eq(seal_open(cs, so, msg, sizeof msg, 7), EM_EAUTH);
    cr_assert_eq(seal_open(cs, so, msg, sizeof msg, -1), EM_EAUTH);
    em_aead_free(so);

    /* a skipped (dropped or replayed) sequence number fails */
    so = em_aead_new(k, strlen(k), cn, sn, true, false, &err);
    em_aead *cs2 = em_aead_new(k, strlen(k), cn, sn, true, true, &err);
    uint8_t hdr[9] = "EMFRxxxxT", tag[16];
    em_aead_begin(cs2, hdr, 9, &err);   /* frame 0 sealed and never delivered */
    em_aead_finish(cs2, tag, &err);
    cr_assert_eq(seal_open(cs2, so, msg, sizeof msg, -1), EM_EAUTH, "frame 1 read as frame 0");
    em_aead_free(so);
    em_aead_free(cs2);

    /* the other direction's key does not open it (no reflection) */
    em_aead *ro = em_aead_new(k, strlen(k), cn, sn, false, false, &err);
    em_aead *cs3 = em_aead_new(k, strlen(k), cn, sn, true, true, &err);
    cr_assert_eq(seal_open(cs3, ro, msg, sizeof msg, -1), EM_EAUTH);
    em_aead_free(ro);
    em_aead_free(cs3);
    em_aead_free(cs);
}

Test(auth, hmac_rfc4231)
{
    uint8_t key[20], out[32];
    char h[65];
    memset(key, 0x0b, sizeof key);
    em_hmac_sha256(key, 20, "Hi There", 8, out);
    hex(out, 32, h);
    cr_assert_str_eq(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    em_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out);
    hex(out, 32, h);
    cr_assert_str_eq(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    uint8_t longkey[131];
    memset(longkey, 0xaa, sizeof longkey);
    const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
    em_hmac_sha256(longkey, sizeof longkey, msg, strlen(msg), out);
    hex(out, 32, h);
    cr_assert_str_eq(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

Test(auth, proofs_depend_on_side_secret_and_nonces)
{
    uint8_t cn[32], sn[32], a[32], b[32];
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_random_bytes(cn, 32, &err), 0);
    cr_assert_eq(em_random_bytes(sn, 32, &err), 0);
    cr_assert(!em_ct_equal(cn, sn, 32));
    em_auth_proof("secret", 6, true, cn, sn, 1, a);
    em_auth_proof("secret", 6, false, cn, sn, 1, b);
    cr_assert(!em_ct_equal(a, b, 32), "server and client proofs must differ");
    em_auth_proof("secret", 6, true, cn, sn, 1, b);
    cr_assert(em_ct_equal(a, b, 32));
    em_auth_proof("secret", 6, true, cn, sn, 0, b);
    cr_assert(!em_ct_equal(a, b, 32), "the link mode is covered (no downgrade)");
    em_auth_proof("secreT", 6, true, cn, sn, 1, b);
    cr_assert(!em_ct_equal(a, b, 32));
    sn[0] ^= 1;
    em_auth_proof("secret", 6, true, cn, sn, 1, b);
    cr_assert(!em_ct_equal(a, b, 32));
}
