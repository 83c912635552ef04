/* engine/base/loadn.h - em_load_le_n: the n <= 8 bytes at p as a little-endian u64 (the
 * bytes past n are 0), for hashing and comparing short keys (words: most are 1..4 bytes).
 *
 * DESIGN: a byte-by-byte assembly costs three loads and a chain of shifts and ORs for each
 * 1..3-byte key. When n >= 1 and the 8 bytes at p lie in one 4 KiB page, a single 8-byte
 * load cannot fault (p[0] is readable, so its page is mapped, and pages are the unit of
 * mapping) and the bytes past n are
 * masked off, so that is what is done; near a page end, or in a sanitizer build (where a
 * read past the object is reported as an error, rightly for the sanitizer's model), the
 * bytes are assembled from loads inside [p, p + n). Both give the same value. */
#ifndef EMBER_BASE_LOADN_H
#define EMBER_BASE_LOADN_H

#include "engine/base/base.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EM__LOADN_OVERREAD 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define EM__LOADN_OVERREAD 0
#endif
#endif
#if !defined(EM__LOADN_OVERREAD) && (defined(__x86_64__) || defined(__aarch64__)) && \
    defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define EM__LOADN_OVERREAD 1
#endif
#ifndef EM__LOADN_OVERREAD
#define EM__LOADN_OVERREAD 0
#endif

/* n <= 8. */
static inline uint64_t em_load_le_n(const uint8_t *p, size_t n)
{
#if EM__LOADN_OVERREAD
    /* n >= 1: p[0] is readable, so p's page is mapped (p itself may be anything at n = 0) */
    if (EM_LIKELY(n != 0 && ((uintptr_t)p & 4095u) <= 4096u - 8u)) {
        uint64_t w;
        __builtin_memcpy(&w, p, 8);
        return n >= 8 ? w : w & (((uint64_t)1 << (8 * n)) - 1);
    }
#endif
    if (n >= 8)
        return em_load_le64(p);
    if (n >= 4)
        return (uint64_t)em_load_le32(p) | (uint64_t)em_load_le32(p + n - 4) << (8 * (n - 4));
    if (n == 0)
        return 0;
    return (uint64_t)p[0] | (uint64_t)p[n / 2] << (8 * (n / 2)) |
           (uint64_t)p[n - 1] << (8 * (n - 1));
}

#endif
