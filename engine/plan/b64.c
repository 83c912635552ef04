/* engine/plan/b64.c - base64 (RFC 4648 section 4, with '=' padding) for the binary fields
 * of plan and stage JSON (context blobs, zero values, range bounds). The decoder takes
 * untrusted text: any character outside the alphabet, a length that is not a multiple of
 * 4, misplaced padding or non-zero padding bits are EM_ECORRUPT. */
#include <string.h>

#include "engine/plan/plan.h"

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *em_base64_encode(const uint8_t *p, size_t n)
{
    size_t groups = n / 3 + (n % 3 != 0);
    size_t len;
    if (!em_size_mul(groups, 4, &len) || !em_size_add(len, 1, &len))
        return NULL;
    char *out = em_malloc(len), *o = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = b64_chars[v >> 18];
        *o++ = b64_chars[(v >> 12) & 63];
        *o++ = b64_chars[(v >> 6) & 63];
        *o++ = b64_chars[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = b64_chars[v >> 18];
        *o++ = b64_chars[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    return out;
}

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int em_base64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen, em_err *err)
{
    if (n % 4 != 0)
        return em_err_set(err, EM_ECORRUPT, "base64: length %zu is not a multiple of 4", n);
    size_t pad = 0;
    if (n >= 4 && s[n - 1] == '=')
        pad = s[n - 2] == '=' ? 2 : 1;
    size_t len = n / 4 * 3 - pad;
    uint8_t *buf = em_malloc(len ? len : 1), *o = buf;
    if (!buf)
        return em_err_set(err, EM_ENOMEM, "base64: out of memory (%zu bytes)", len);
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int v[4];
        for (int j = 0; j < 4; j++) {
            v[j] = b64_val((unsigned char)s[i + j]);
            if (v[j] < 0 && !(last && s[i + j] == '=' && j >= 4 - (int)pad)) {
                em_free(buf);
                return em_err_set(err, EM_ECORRUPT, "base64: bad character at offset %zu",
                                  i + j);
            }
        }
        uint32_t w = (uint32_t)(v[0] & 63) << 18 | (uint32_t)(v[1] & 63) << 12 |
                     (uint32_t)(v[2] < 0 ? 0 : v[2]) << 6 | (uint32_t)(v[3] < 0 ? 0 : v[3]);
        size_t k = last ? 3 - pad : 3;
        if (last && ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))) {
            em_free(buf);
            return em_err_set(err, EM_ECORRUPT, "base64: non-zero padding bits at offset %zu",
                              i);
        }
        *o++ = (uint8_t)(w >> 16);
        if (k > 1)
            *o++ = (uint8_t)(w >> 8);
        if (k > 2)
            *o++ = (uint8_t)w;
    }
    *out = buf;
    *outlen = len;
    return 0;
}
