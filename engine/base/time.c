/* engine/base/time.c - monotonic clocks. THREADS: any thread. */
#include <time.h>

#include "engine/base/base.h"

uint64_t em_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

double em_now_s(void)
{
    return (double)em_now_ns() / 1e9;
}
