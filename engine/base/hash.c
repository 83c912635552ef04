/* engine/base/hash.c - em_hash64, the hash behind hash partitioning and hash tables.
 *
 * It must give the same value for the same bytes in every process on every machine (a
 * partitioner in one executor and a reader in another must agree), so there is no random or
 * pointer-derived seed; only the caller's seed. Design: one 64-bit lane absorbs 8 bytes at a
 * time; each word is pre-mixed (multiply, rotate, multiply) so that every input bit reaches
 * many state bits, and the lane is rotated and multiply-added between words so that word
 * order matters. The length enters at the start and at the end, and the splitmix64
 * finaliser (em_mix64) gives full avalanche on the result.
 * THREADS: any thread. */
#include "engine/base/base.h"
#include "engine/base/loadn.h"

#define H_K1 0xa0761d6478bd642fULL
#define H_K2 0xe7037ed1a0b428dbULL
#define H_K3 0x8ebc6af09c88c6e3ULL
#define H_K4 0x589965cc75374cc3ULL

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t premix(uint64_t w)
{
    w *= H_K1;
    w = rotl64(w, 31);
    w *= H_K2;
    return w;
}

/* Absorbs one 8-byte word. */
static inline uint64_t absorb8(uint64_t h, uint64_t w)
{
    h ^= premix(w);
    return rotl64(h, 27) * 5 + 0x52dce729ULL;
}

/* Absorbs a tail of 1..7 bytes packed little-endian; its own constant keeps "ab" and "ab\0"
 * apart even before the length is mixed in again at the end. */
static inline uint64_t absorb_tail(uint64_t h, const uint8_t *s, size_t left)
{
    uint64_t w = em_load_le_n(s, left);   /* engine/base/loadn.h: one load when safe */
    h ^= premix(w ^ H_K4);
    return rotl64(h, 29) * 9 + 0x38495ab5ULL;
}

uint64_t em_hash64(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *s = p;
    uint64_t h = seed ^ H_K3 ^ ((uint64_t)n * H_K4);
    /* Keys of up to 16 bytes (ids, words, most shuffle keys) in straight-line code: the
     * same steps as the loop below, without its loop control. */
    if (EM_LIKELY(n <= 16)) {
        if (n >= 8) {
            h = absorb8(h, em_load_le64(s));
            if (n == 16)
                h = absorb8(h, em_load_le64(s + 8));
            else if (n > 8)
                h = absorb_tail(h, s + 8, n - 8);
        } else if (n) {
            h = absorb_tail(h, s, n);
        }
        return em_mix64(h ^ (uint64_t)n);
    }
    size_t left = n;
    while (left >= 8) {
        h = absorb8(h, em_load_le64(s));
        s += 8;
        left -= 8;
    }
    if (left)
        h = absorb_tail(h, s, left);
    h ^= (uint64_t)n;
    return em_mix64(h);
}
