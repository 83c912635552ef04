/* bench/micro.h - what the micro-benchmarks built against a build's static libraries share
 * (bench/static.bash builds them): process CPU time and a xorshift64 generator. */
#ifndef EMBER_BENCH_MICRO_H
#define EMBER_BENCH_MICRO_H

#include <stdint.h>
#include <time.h>

static inline double micro_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Marsaglia's xorshift64 (13, 7, 17) on one global state: the same sequence every run. */
static uint64_t micro_rng = 88172645463325252ull;
static inline uint64_t micro_next(void)
{
    micro_rng ^= micro_rng << 13;
    micro_rng ^= micro_rng >> 7;
    micro_rng ^= micro_rng << 17;
    return micro_rng;
}

#endif
