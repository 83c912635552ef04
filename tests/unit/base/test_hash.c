/* tests/unit/base/test_hash.c - em_hash64: stable values, seed and length sensitivity,
 * bucket uniformity (chi-square) and avalanche. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/base/base.h"

#define NBUCKETS 64

/* Chi-square over NBUCKETS buckets; with 63 degrees of freedom the 99.99% quantile is ~115. */
static double chi_square(const unsigned *counts, unsigned total)
{
    double expect = (double)total / NBUCKETS, chi = 0;
    for (int i = 0; i < NBUCKETS; i++)
        chi += (counts[i] - expect) * (counts[i] - expect) / expect;
    return chi;
}

Test(hash, deterministic_and_seeded)
{
    const char *s = "the quick brown fox";
    uint64_t a = em_hash64(s, strlen(s), 0);
    cr_assert_eq(a, em_hash64(s, strlen(s), 0));
    cr_assert_neq(a, em_hash64(s, strlen(s), 1));
    cr_assert_neq(em_hash64("ab", 2, 0), em_hash64("ab\0", 3, 0));
    cr_assert_neq(em_hash64("", 0, 0), em_hash64("\0", 1, 0));
    cr_assert_neq(em_hash64("abcdefgh12345678", 16, 0), em_hash64("12345678abcdefgh", 16, 0));
    /* Same bytes at different addresses hash the same (no pointer dependence). */
    char buf[64];
    memcpy(buf + 3, s, strlen(s));
    cr_assert_eq(em_hash64(buf + 3, strlen(s), 0), a);
}

Test(hash, pinned_values)
{
    /* Partitioners in different processes must agree; these pin the function. If the hash
     * is ever changed on purpose, every stored hash-partitioned output changes too. */
    cr_assert_eq(em_hash64("", 0, 0), 0x3adc22f1b1c30c39ULL);
    cr_assert_eq(em_hash64("ember", 5, 0), 0xa98b57e98c2533c4ULL);
    cr_assert_eq(em_hash64("0123456789abcdef0123", 20, 42), 0x8367d4d28e82d457ULL);
}

Test(hash, sequential_int_keys_uniform)
{
    unsigned counts[NBUCKETS] = {0};
    const unsigned total = 64000;
    for (uint64_t i = 0; i < total; i++) {
        uint8_t k[8];
        em_store_le64(k, i);
        counts[em_hash64(k, 8, 0) % NBUCKETS]++;
    }
    double chi = chi_square(counts, total);
    cr_assert_lt(chi, 115.0, "chi-square %.1f", chi);
}

Test(hash, short_words_uniform)
{
    unsigned counts[NBUCKETS] = {0};
    unsigned total = 0;
    char w[8];
    for (int a = 'a'; a <= 'z'; a++)
        for (int b = 'a'; b <= 'z'; b++)
            for (int c = 'a'; c <= 'z'; c++) {
                int n = snprintf(w, sizeof w, "%c%c%c", a, b, c);
                counts[(em_hash64(w, (size_t)n, 0) >> 7) % NBUCKETS]++;
                total++;
            }
    double chi = chi_square(counts, total);
    cr_assert_lt(chi, 115.0, "chi-square %.1f", chi);
}

Test(hash, avalanche)
{
    /* Flipping one input bit should flip about half of the output bits. */
    em_rng r;
    em_rng_seed(&r, 5);
    double flips = 0;
    int trials = 0;
    for (int t = 0; t < 200; t++) {
        uint8_t k[24];
        for (int i = 0; i < 24; i++)
            k[i] = (uint8_t)em_rng_next(&r);
        size_t n = 1 + em_rng_below(&r, 24);
        uint64_t h = em_hash64(k, n, 0);
        size_t bit = em_rng_below(&r, n * 8);
        k[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        flips += __builtin_popcountll(h ^ em_hash64(k, n, 0));
        trials++;
    }
    double mean = flips / trials;
    cr_assert(mean > 29.0 && mean < 35.0, "mean flipped bits %.2f", mean);
}

/* An independent, deliberately plain transcription of the hash (byte loops, no overlapping
 * loads, no short-key fast path): em_hash64 must equal it for every length, so the fast
 * paths can never change a partition assignment. */
static uint64_t ref_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t ref_premix(uint64_t w)
{
    return ref_rotl(w * 0xa0761d6478bd642fULL, 31) * 0xe7037ed1a0b428dbULL;
}

static uint64_t ref_hash64(const uint8_t *s, size_t n, uint64_t seed)
{
    uint64_t h = seed ^ 0x8ebc6af09c88c6e3ULL ^ ((uint64_t)n * 0x589965cc75374cc3ULL);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (int b = 7; b >= 0; b--)
            w = w << 8 | s[i + (size_t)b];
        h ^= ref_premix(w);
        h = ref_rotl(h, 27) * 5 + 0x52dce729ULL;
    }
    if (i < n) {
        uint64_t w = 0;
        for (size_t b = n; b > i; b--)
            w = w << 8 | s[b - 1];
        h ^= ref_premix(w ^ 0x589965cc75374cc3ULL);
        h = ref_rotl(h, 29) * 9 + 0x38495ab5ULL;
    }
    h ^= (uint64_t)n;
    h ^= h >> 30;                        /* splitmix64 finaliser */
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

Test(hash, equals_plain_reference_every_length)
{
    em_rng r;
    em_rng_seed(&r, 11);
    uint8_t buf[80 + 7];
    for (size_t n = 0; n <= 80; n++)
        for (int t = 0; t < 20; t++) {
            size_t off = (size_t)t % 8;          /* unaligned starts too */
            for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = (uint8_t)em_rng_next(&r);
            uint64_t seed = t < 10 ? 0 : em_rng_next(&r);
            cr_assert_eq(em_hash64(buf + off, n, seed), ref_hash64(buf + off, n, seed),
                         "length %zu trial %d", n, t);
        }
    cr_assert_eq(ref_hash64((const uint8_t *)"ember", 5, 0), 0xa98b57e98c2533c4ULL);
}
