/* engine/net/auth.c - the cryptography of ember's links, every primitive from OpenSSL's
 * libcrypto (no hand-written crypto): SHA-256, HMAC-SHA256 (the handshake proofs),
 * CRYPTO_memcmp, HKDF-SHA256 (the session keys), AES-256-GCM (the frames after login) and
 * the one-shot AEADs of pre-sealed payloads (em_cipher: AES-128-OCB by default, AES-128-GCM,
 * AES-256-GCM; docs/security.md "Ciphers"), plus kernel randomness for the nonces. One code
 * path (aead_start / aead_crypt / aead_end) serves every cipher, given its EVP_CIPHER.
 *
 * SESSION KEYS (docs/security.md)
 *   key(dir) = HKDF-SHA256(ikm = secret, salt = client nonce || server nonce,
 *                          info = "ember v1 c2s" | "ember v1 s2c"), 32 bytes
 *   Both nonces are fresh per connection, so every connection has its own pair of keys and
 *   the two directions never share a key (a frame reflected back to its sender fails).
 * FRAME SEALING: AES-256-GCM, 12-byte IV = 4 zero bytes || 64-bit big-endian sequence
 *   number (the frame's index in its direction, starting at 0), AAD = the 9-byte frame
 *   header, 16-byte tag after the ciphertext. The receiver counts on its own, so a replayed,
 *   dropped, reordered or injected frame decrypts under the wrong IV and fails its tag. */
#include "engine/net/net.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

void em_sha256(const void *p, size_t n, uint8_t out[EM_SHA256_LEN])
{
    unsigned len = EM_SHA256_LEN;
    /* EVP_Digest fails only on allocation failure inside OpenSSL: nothing sensible to
     * return a hash from, and callers compare hashes, so a zero hash cannot match. */
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
        memset(out, 0, EM_SHA256_LEN);
}

void em_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n,
                    uint8_t out[EM_SHA256_LEN])
{
    unsigned len = EM_SHA256_LEN;
    static const uint8_t none;
    if (!HMAC(EVP_sha256(), klen ? key : &none, (int)klen, msg, n, out, &len))
        memset(out, 0, EM_SHA256_LEN);
}

bool em_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void em_secure_zero(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

void em_auth_proof(const void *secret, size_t slen, bool server, const uint8_t cnonce[32],
                   const uint8_t snonce[32], uint8_t mode, uint8_t out[EM_SHA256_LEN])
{
    uint8_t msg[12 + 64 + 1];
    memcpy(msg, server ? "ember-server" : "ember-client", 12);
    memcpy(msg + 12, cnonce, 32);
    memcpy(msg + 44, snonce, 32);
    msg[76] = mode;
    em_hmac_sha256(secret, slen, msg, sizeof msg, out);
}

int em_random_bytes(void *out, size_t n, em_err *err)
{
    uint8_t *p = out;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return em_err_set(err, EM_EIO, "getrandom: %s", strerror(errno));
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int em_hkdf_sha256(const void *ikm, size_t ilen, const void *salt, size_t slen,
                   const char *info, uint8_t *out, size_t olen, em_err *err)
{
    EVP_PKEY_CTX *k = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t got = olen;
    int ok = k && EVP_PKEY_derive_init(k) == 1 &&
             EVP_PKEY_CTX_set_hkdf_md(k, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set1_hkdf_salt(k, salt, (int)slen) == 1 &&
             EVP_PKEY_CTX_set1_hkdf_key(k, ikm, (int)ilen) == 1 &&
             EVP_PKEY_CTX_add1_hkdf_info(k, (const unsigned char *)info, (int)strlen(info)) ==
                 1 &&
             EVP_PKEY_derive(k, out, &got) == 1 && got == olen;
    EVP_PKEY_CTX_free(k);
    if (!ok)
        return em_err_set(err, EM_EIO, "HKDF-SHA256 failed (OpenSSL)");
    return 0;
}

/* ---------------------------------------------------------------- AES-256-GCM frames */

struct em_aead {
    EVP_CIPHER_CTX *ctx;     /* key schedule set once; each frame re-inits with its IV */
    uint64_t seq;            /* next frame's sequence number */
    bool seal;               /* direction: seal (send) or open (receive) */
    bool broken;             /* a failed frame poisons the direction */
};

em_aead *em_aead_new(const void *secret, size_t slen, const uint8_t cnonce[32],
                     const uint8_t snonce[32], bool client_to_server, bool seal, em_err *err)
{
    uint8_t salt[64], key[32];
    memcpy(salt, cnonce, 32);
    memcpy(salt + 32, snonce, 32);
    if (em_hkdf_sha256(secret, slen, salt, sizeof salt,
                       client_to_server ? "ember v1 c2s" : "ember v1 s2c", key, sizeof key,
                       err) < 0)
        return NULL;
    em_aead *a = em_calloc(1, sizeof *a);
    if (!a || !(a->ctx = EVP_CIPHER_CTX_new())) {
        em_free(a);
        em_secure_zero(key, sizeof key);
        em_err_set(err, EM_ENOMEM, "AES-GCM context: out of memory");
        return NULL;
    }
    a->seal = seal;
    int ok = seal ? EVP_EncryptInit_ex(a->ctx, EVP_aes_256_gcm(), NULL, key, NULL)
                  : EVP_DecryptInit_ex(a->ctx, EVP_aes_256_gcm(), NULL, key, NULL);
    em_secure_zero(key, sizeof key);
    if (ok != 1) {
        em_aead_free(a);
        em_err_set(err, EM_EIO, "AES-256-GCM init failed (OpenSSL)");
        return NULL;
    }
    return a;
}

void em_aead_free(em_aead *a)
{
    if (!a)
        return;
    EVP_CIPHER_CTX_free(a->ctx);   /* cleanses the key schedule */
    em_free(a);
}

/* ---------------------------------------------------------------- the AEAD steps */

/* OpenSSL's cipher for each em_cipher (net.h); NULL for an unknown id (a byte off the wire). */
static const EVP_CIPHER *cipher_evp(em_cipher c)
{
    switch (c) {
    case EM_CIPHER_AES_128_OCB: return EVP_aes_128_ocb();
    case EM_CIPHER_AES_128_GCM: return EVP_aes_128_gcm();
    case EM_CIPHER_AES_256_GCM: return EVP_aes_256_gcm();
    }
    return NULL;
}

static const struct {
    em_cipher id;
    const char *name;
} cipher_names[] = {
    {EM_CIPHER_AES_128_OCB, "aes-128-ocb"},
    {EM_CIPHER_AES_128_GCM, "aes-128-gcm"},
    {EM_CIPHER_AES_256_GCM, "aes-256-gcm"},
};

const char *em_cipher_name(em_cipher c)
{
    for (size_t i = 0; i < sizeof cipher_names / sizeof *cipher_names; i++)
        if (cipher_names[i].id == c)
            return cipher_names[i].name;
    return "unknown";
}

bool em_cipher_known(int id)
{
    return cipher_evp((em_cipher)id) != NULL;
}

int em_cipher_parse(const char *v, const char *what, em_cipher *out, em_err *err)
{
    if (!v || !*v) {
        *out = EM_CIPHER_DEFAULT;
        return 0;
    }
    for (size_t i = 0; i < sizeof cipher_names / sizeof *cipher_names; i++)
        if (strcasecmp(v, cipher_names[i].name) == 0) {
            *out = cipher_names[i].id;
            return 0;
        }
    return em_err_set(err, EM_EINVAL, "%s: cipher '%s' (one of aes-128-ocb, aes-128-gcm, "
                      "aes-256-gcm)", what, v);
}

/* The three steps of one AEAD message, shared by the frame contexts (em_aead_*, always
 * AES-256-GCM) and the one-shot calls (any em_cipher): the IV is 4 zero bytes ||
 * be64(nonce) (12 bytes: GCM's and OCB's default IV length); evp NULL keeps the context's
 * cipher and key schedule (key NULL then). Each returns false when OpenSSL fails (or, at
 * the end of an open, when the tag does not match). */
static bool aead_start(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *evp, bool seal,
                       const uint8_t *key, uint64_t nonce, const uint8_t *aad, size_t alen)
{
    uint8_t iv[12] = {0};
    em_store_be64(iv + 4, nonce);
    int outl = 0;
    return EVP_CipherInit_ex(ctx, evp, NULL, key, iv, seal) == 1 &&
           (!alen || EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)alen) == 1);
}

/* Adds n bytes; *done = bytes written at out. GCM (a stream mode) writes all n; OCB holds a
 * partial last block back until aead_end, which writes it after them. */
static bool aead_crypt(EVP_CIPHER_CTX *ctx, const uint8_t *in, uint8_t *out, size_t n,
                       size_t *done)
{
    /* EVP lengths are int: at most 1 GiB per call (frames and pieces are far smaller);
     * chunks are multiples of 16, so only the last call can leave a partial block */
    *done = 0;
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n, outl = 0;
        if (EVP_CipherUpdate(ctx, out + *done, &outl, in, chunk) != 1 || outl < 0 ||
            outl > chunk)
            return false;
        in += chunk;
        *done += (size_t)outl;
        n -= (size_t)chunk;
    }
    return true;
}

/* Seal: writes the tag. Open: checks it (tag is only read then). tail receives what the
 * cipher held back (OCB: under 16 bytes; GCM: none), *tlen its length. */
static bool aead_end(EVP_CIPHER_CTX *ctx, bool seal, uint8_t *tail, size_t *tlen,
                     uint8_t tag[EM_AEAD_TAG_LEN])
{
    int outl = 0;
    bool ok = seal ? EVP_CipherFinal_ex(ctx, tail, &outl) == 1 &&
                         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, EM_AEAD_TAG_LEN,
                                             tag) == 1
                   : EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, EM_AEAD_TAG_LEN, tag) ==
                             1 &&
                         EVP_CipherFinal_ex(ctx, tail, &outl) == 1;
    *tlen = outl > 0 ? (size_t)outl : 0;
    return ok;
}

int em_aead_begin(em_aead *a, const uint8_t *aad, size_t alen, em_err *err)
{
    if (a->broken)
        return em_err_set(err, EM_EAUTH, "link closed after a failed frame");
    if (a->seq == UINT64_MAX)   /* 2^64 frames: unreachable, but never reuse an IV */
        return em_err_set(err, EM_EPROTO, "frame sequence exhausted");
    if (!aead_start(a->ctx, NULL, a->seal, NULL, a->seq++, aad, alen)) {
        a->broken = true;
        return em_err_set(err, EM_EIO, "AES-256-GCM failed (OpenSSL)");
    }
    return 0;
}

int em_aead_update(em_aead *a, const uint8_t *in, uint8_t *out, size_t n, em_err *err)
{
    size_t done;   /* GCM writes every byte at once (the links stream frames in pieces) */
    if (!aead_crypt(a->ctx, in, out, n, &done) || done != n) {
        a->broken = true;
        return em_err_set(err, EM_EIO, "AES-256-GCM failed (OpenSSL)");
    }
    return 0;
}

int em_aead_finish(em_aead *a, uint8_t tag[EM_AEAD_TAG_LEN], em_err *err)
{
    uint8_t none[16];
    size_t tlen;
    if (aead_end(a->ctx, a->seal, none, &tlen, tag) && tlen == 0)
        return 0;
    a->broken = true;
    if (a->seal)
        return em_err_set(err, EM_EIO, "AES-256-GCM failed (OpenSSL)");
    return em_err_set(err, EM_EAUTH,
                      "frame %llu failed authentication (modified, replayed, reordered or "
                      "injected)",
                      (unsigned long long)(a->seq - 1));
}

/* ---------------------------------------------------------------- one-shot AEAD */

/* Seals (seal) or opens n bytes under cipher c and key with nonce (aead_start's IV);
 * opening checks tag before it returns (EM_EAUTH on mismatch); out may equal in. */
static int aead_once(em_cipher c, bool seal, const uint8_t key[EM_AEAD_KEY_LEN],
                     uint64_t nonce, const uint8_t *aad, size_t alen, const uint8_t *in,
                     uint8_t *out, size_t n, uint8_t tag[EM_AEAD_TAG_LEN], em_err *err)
{
    const EVP_CIPHER *evp = cipher_evp(c);
    if (!evp)
        return em_err_set(err, EM_EPROTO, "unknown cipher id %d", (int)c);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return em_err_set(err, EM_ENOMEM, "%s context: out of memory", em_cipher_name(c));
    size_t done = 0, tlen = 0;
    bool ok = aead_start(ctx, evp, seal, key, nonce, aad, alen) &&
              aead_crypt(ctx, in, out, n, &done) && done <= n && n - done < 16;
    bool auth = ok && aead_end(ctx, seal, out + done, &tlen, tag);
    EVP_CIPHER_CTX_free(ctx);   /* cleanses the key schedule */
    if (auth && done + tlen == n)
        return 0;
    if (!ok || seal || (auth && done + tlen != n))
        return em_err_set(err, EM_EIO, "%s failed (OpenSSL)", em_cipher_name(c));
    return em_err_set(err, EM_EAUTH, "failed authentication (modified or misplaced)");
}

int em_aead_seal_once(em_cipher c, const uint8_t key[EM_AEAD_KEY_LEN], uint64_t nonce,
                      const uint8_t *aad, size_t alen, const uint8_t *in, uint8_t *out,
                      size_t n, uint8_t tag[EM_AEAD_TAG_LEN], em_err *err)
{
    return aead_once(c, true, key, nonce, aad, alen, in, out, n, tag, err);
}

int em_aead_open_once(em_cipher c, const uint8_t key[EM_AEAD_KEY_LEN], uint64_t nonce,
                      const uint8_t *aad, size_t alen, const uint8_t *in, uint8_t *out,
                      size_t n, const uint8_t tag[EM_AEAD_TAG_LEN], em_err *err)
{
    uint8_t t[EM_AEAD_TAG_LEN];
    memcpy(t, tag, sizeof t);
    return aead_once(c, false, key, nonce, aad, alen, in, out, n, t, err);
}
