/* bench/als_kernel.c - micro-benchmark of the ALS solve's Gram kernel (em__als_gram_rows,
 * mllib/als/kernel.c) on the item side's access pattern: NE entities with NR ratings each
 * whose factor rows (stride 16 floats, as the solve's message buffer at ranks 9-16) are
 * drawn at random from the first WINDOW of NU rows, gathered a tile of 256 at a time with a
 * prefetch per row as mllib/als/solve.c gather() does. WINDOW 256 keeps the rows in L1 (the
 * kernel's own speed); WINDOW = NU reads 30 MB at random (the item side at Netflix scale).
 * Prints CPU nanoseconds per rating. Usage (bench/als_kernel.sh builds it against a build's
 * static libraries): als_kernel [RANK [NU [WINDOW [MODE [NR]]]]], MODE 0 gather then kernel
 * per tile, 1 gather only (the kernel's share is the difference); NR ratings per entity
 * (default 5600, an item's at Netflix scale; a user has about 200 of 17.7k items). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "mllib/als/kernel.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

int main(int argc, char **argv)
{
    int k = argc > 1 ? atoi(argv[1]) : 10;
    uint32_t nu = argc > 2 ? (uint32_t)atoi(argv[2]) : 480000;
    uint32_t win = argc > 3 ? (uint32_t)atoi(argv[3]) : nu;
    int mode = argc > 4 ? atoi(argv[4]) : 0;
    enum { T = 256, STRIDE = 16 };
    const int NR = argc > 5 ? atoi(argv[5]) : 5600, NE = (int)(11200000 / (NR > 0 ? NR : 1));
    if (NR < 1 || k < 1 || k > STRIDE || nu < 1 || win < 1 || win > nu) {
        fprintf(stderr, "usage: als_kernel [RANK (1-16) [NU [WINDOW (<= NU) [MODE [NR]]]]]\n");
        return 2;
    }
    size_t huge = (size_t)2 << 20, bytes = ((size_t)nu * STRIDE * 4 + huge - 1) & ~(huge - 1);
    float *f = aligned_alloc(huge, bytes);
    uint32_t *src = malloc((size_t)NE * NR * 4);
    float *r = malloc((size_t)NE * NR * 4);
    if (!f || !src || !r) {
        fprintf(stderr, "als_kernel: out of memory\n");
        return 1;
    }
    madvise(f, bytes, MADV_HUGEPAGE);   /* as em_malloc_big */
    for (size_t i = 0; i < (size_t)nu * STRIDE; i++)
        f[i] = (float)(next() % 1000) * 1e-3f;
    for (size_t i = 0; i < (size_t)NE * NR; i++) {
        src[i] = next() % win;
        r[i] = 1.0f + (float)(next() % 5);
    }
    static const float *yp[T];
    static double last[T], ext[17 * 17], tile[T * 20];
    double sum = 0, t0 = cpu_s();
    for (int e = 0; e < NE; e++) {
        memset(ext, 0, sizeof ext);
        for (int t = 0; t < NR; t += T) {
            int n = NR - t < T ? NR - t : T;
            for (int s = 0; s < n; s++) {
                yp[s] = f + (size_t)src[(size_t)e * NR + t + s] * STRIDE;
                last[s] = r[(size_t)e * NR + t + s];
                __builtin_prefetch(yp[s], 0, 3);
            }
            if (mode == 1)
                ext[0] += yp[n - 1][0] + last[0];
            else
                em__als_gram_rows(k, n, yp, NULL, last, (k + 4) & ~3, tile, ext);
        }
        sum += ext[0];
    }
    double dt = cpu_s() - t0;
    printf("rank %d, %u rows, window %u, mode %d, %d per entity: %.2f ns per rating (check %.17g)\n", k, nu,
           win, mode, NR, dt * 1e9 / ((double)NE * NR), sum);
    free(f);
    free(src);
    free(r);
    return 0;
}
