/* SHA-256 and HMAC-SHA256 against published vectors (FIPS 180-4 examples, RFC 4231), and
 * the handshake proofs' properties. */
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
    em_sha256 s;
    uint8_t d[32];
    char h[65];
    em_sha256_init(&s);
    em_sha256_update(&s, msg, n);
    em_sha256_final(&s, d);
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

Test(auth, sha256_streaming_equals_one_shot)
{
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    uint8_t a[32], b[32];
    em_sha256 s;
    em_sha256_init(&s);
    em_sha256_update(&s, buf, sizeof buf);
    em_sha256_final(&s, a);
    em_sha256_init(&s);
    for (size_t i = 0; i < sizeof buf; i += 13)
        em_sha256_update(&s, buf + i, sizeof buf - i < 13 ? sizeof buf - i : 13);
    em_sha256_final(&s, b);
    cr_assert_eq(memcmp(a, b, 32), 0);
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
    em_auth_proof("secret", 6, true, cn, sn, a);
    em_auth_proof("secret", 6, false, cn, sn, b);
    cr_assert(!em_ct_equal(a, b, 32), "server and client proofs must differ");
    em_auth_proof("secret", 6, true, cn, sn, b);
    cr_assert(em_ct_equal(a, b, 32));
    em_auth_proof("secreT", 6, true, cn, sn, b);
    cr_assert(!em_ct_equal(a, b, 32));
    sn[0] ^= 1;
    em_auth_proof("secret", 6, true, cn, sn, b);
    cr_assert(!em_ct_equal(a, b, 32));
}
