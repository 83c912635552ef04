/* engine/base/rng.c - random numbers for sampling, initialisation and tests.
 * Generator: xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number
 * generators", 2018), seeded by running splitmix64 over the seed, as the authors recommend.
 * THREADS: one thread per em_rng. */
#include <math.h>

#include "engine/base/base.h"

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

void em_rng_seed(em_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        r->s[i] = em_mix64(x);
    }
    /* The all-zero state is a fixed point; splitmix64 cannot produce it for all four words,
     * but guard anyway. */
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
        r->s[0] = 1;
}

uint64_t em_rng_next(em_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double em_rng_double(em_rng *r)
{
    /* The top 53 bits scaled by 2^-53: every value is a multiple of 2^-53 in [0, 1). */
    return (double)(em_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t em_rng_below(em_rng *r, uint64_t n)
{
    EM_ASSERT(n > 0);
    /* Rejection: accept x only from the largest multiple of n below 2^64, so every residue
     * is equally likely. threshold = 2^64 mod n; rejects with probability < n / 2^64. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = em_rng_next(r);
        if (x >= threshold)
            return x % n;
    }
}

double em_rng_gaussian(em_rng *r)
{
    /* Marsaglia's polar method; the second variate is dropped to keep em_rng stateless
     * beyond xoshiro (and sequences reproducible whatever the call mix). */
    for (;;) {
        double u = 2.0 * em_rng_double(r) - 1.0;
        double v = 2.0 * em_rng_double(r) - 1.0;
        double s = u * u + v * v;
        if (s > 0.0 && s < 1.0)
            return u * sqrt(-2.0 * log(s) / s);
    }
}

/* PTRS: transformed rejection with squeeze (Hörmann, "The transformed rejection method for
 * generating Poisson random variables", Insurance: Mathematics and Economics 12, 1993).
 * Constant expected time for mean >= 10. */
static uint32_t poisson_ptrs(em_rng *r, double mean)
{
    double slam = sqrt(mean), loglam = log(mean);
    double b = 0.931 + 2.53 * slam;
    double a = -0.059 + 0.02483 * b;
    double invalpha = 1.1239 + 1.1328 / (b - 3.4);
    double vr = 0.9277 - 3.6224 / (b - 2.0);
    for (;;) {
        double u = em_rng_double(r) - 0.5;
        double v = em_rng_double(r);
        double us = 0.5 - fabs(u);
        double k = floor((2.0 * a / us + b) * u + mean + 0.43);
        if (us >= 0.07 && v <= vr)
            return k > (double)UINT32_MAX ? UINT32_MAX : (uint32_t)k;
        if (k < 0.0 || (us < 0.013 && v > us))
            continue;
        if (log(v) + log(invalpha) - log(a / (us * us) + b) <=
            -mean + k * loglam - lgamma(k + 1.0))
            return k > (double)UINT32_MAX ? UINT32_MAX : (uint32_t)k;
    }
}

uint32_t em_rng_poisson(em_rng *r, double mean)
{
    if (!(mean > 0.0)) /* also catches NaN */
        return 0;
    if (mean >= 10.0)
        return poisson_ptrs(r, mean);
    /* Knuth: multiply uniforms until the product drops below e^-mean; O(mean) draws. */
    double limit = exp(-mean), prod = em_rng_double(r);
    uint32_t k = 0;
    while (prod > limit) {
        k++;
        prod *= em_rng_double(r);
    }
    return k;
}
