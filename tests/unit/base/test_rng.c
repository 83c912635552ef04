/* tests/unit/base/test_rng.c - xoshiro256** determinism, ranges and distribution moments. */
#include <criterion/criterion.h>
#include <math.h>

#include "engine/base/base.h"

/* Published outputs of the reference xoshiro256** (Blackman and Vigna) from the state
 * {1, 2, 3, 4}, as other implementations test them (e.g. the Rust crate rand_xoshiro's
 * "reference" test). */
static const uint64_t xoshiro_1234[10] = {
    11520u, 0u, 1509978240u, 1215971899390074240u, 1216172134540287360u,
    607988272756665600u, 16172922978634559625u, 8476171486693032832u,
    10595114339597558777u, 2904607092377533576u,
};

/* Published first outputs of splitmix64 from the state 0: seeding is four splitmix64
 * steps from the seed, so em_rng_seed(0) must yield exactly these state words. */
static const uint64_t splitmix_0[4] = {
    0xe220a8397b1dcdafu, 0x6e789e6aa1b965f4u, 0x06c45d188009454fu, 0xf88bb8a8724c81ecu,
};

Test(rng, matches_published_xoshiro_outputs)
{
    em_rng r = {.s = {1, 2, 3, 4}};
    for (int i = 0; i < 10; i++)
        cr_assert_eq(em_rng_next(&r), xoshiro_1234[i], "output %d", i);
}

Test(rng, seeding_matches_published_splitmix64)
{
    em_rng r;
    em_rng_seed(&r, 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(r.s[i], splitmix_0[i], "state word %d", i);
    cr_assert_eq(em_mix64(0x9e3779b97f4a7c15u), splitmix_0[0]);
}

Test(rng, deterministic_per_seed)
{
    em_rng a, b;
    em_rng_seed(&a, 12345);
    em_rng_seed(&b, 12345);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(em_rng_next(&a), em_rng_next(&b));
    em_rng_seed(&b, 12346);
    cr_assert_neq(em_rng_next(&a), em_rng_next(&b));
}

Test(rng, double_range_and_mean)
{
    em_rng r;
    em_rng_seed(&r, 1);
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double d = em_rng_double(&r);
        cr_assert(d >= 0.0 && d < 1.0);
        sum += d;
    }
    cr_assert(fabs(sum / 100000 - 0.5) < 0.01);
}

Test(rng, below_range_and_uniform)
{
    em_rng r;
    em_rng_seed(&r, 2);
    unsigned counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t x = em_rng_below(&r, 7);
        cr_assert_lt(x, 7);
        counts[x]++;
    }
    for (int i = 0; i < 7; i++)
        cr_assert(counts[i] > 9500 && counts[i] < 10500, "bucket %d: %u", i, counts[i]);
    cr_assert_eq(em_rng_below(&r, 1), 0);
    uint64_t big = (1ULL << 63) + 1;
    for (int i = 0; i < 100; i++)
        cr_assert_lt(em_rng_below(&r, big), big);
}

Test(rng, gaussian_moments)
{
    em_rng r;
    em_rng_seed(&r, 3);
    double s1 = 0, s2 = 0;
    int n = 100000;
    for (int i = 0; i < n; i++) {
        double g = em_rng_gaussian(&r);
        s1 += g;
        s2 += g * g;
    }
    double mean = s1 / n, var = s2 / n - mean * mean;
    cr_assert(fabs(mean) < 0.02, "mean %f", mean);
    cr_assert(fabs(var - 1.0) < 0.03, "var %f", var);
}

static void check_poisson(double lambda)
{
    em_rng r;
    em_rng_seed(&r, (uint64_t)(lambda * 1000) + 7);
    double s1 = 0, s2 = 0;
    int n = 50000;
    for (int i = 0; i < n; i++) {
        double k = em_rng_poisson(&r, lambda);
        s1 += k;
        s2 += k * k;
    }
    double mean = s1 / n, var = s2 / n - mean * mean;
    /* Standard error of the mean is sqrt(lambda/n); allow 5 of them (+ a floor). */
    double tol = 5 * sqrt(lambda / n) + 1e-3;
    cr_assert(fabs(mean - lambda) < tol, "lambda %g: mean %f", lambda, mean);
    cr_assert(fabs(var - lambda) < 0.05 * lambda + 0.01, "lambda %g: var %f", lambda, var);
}

Test(rng, poisson_small_and_large_means)
{
    check_poisson(0.5);
    check_poisson(3.0);
    check_poisson(9.9);
    check_poisson(10.0);
    check_poisson(57.3);
    check_poisson(1000.0);
    em_rng r;
    em_rng_seed(&r, 4);
    cr_assert_eq(em_rng_poisson(&r, 0.0), 0);
}

Test(time, monotonic)
{
    uint64_t a = em_now_ns();
    uint64_t b = em_now_ns();
    cr_assert_geq(b, a);
    cr_assert_gt(em_now_s(), 0.0);
}
