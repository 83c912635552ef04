/* bench/als_kernel.c - micro-benchmark of the ALS solve's Gram kernel (em__als_gram_rows,
 * mllib/als/kernel.c) on the item side's access pattern: NE entities with NR ratings each
 * whose factor rows (stride 8 or 16 floats up to rank 16, RANK floats above: the solve's
 * message buffer) are
 * drawn at random from the first WINDOW of NU rows, gathered a tile of 256 at a time with a
 * prefetch of each row's cache lines as mllib/als/solve.c gather() does (the same
 * em__als_prefetch_row, padded rows from em__als_row_stride). WINDOW 256 keeps
 * the rows in L1 (the kernel's own speed); WINDOW = NU reads 30 MB at random (the item side
 * at Netflix scale).
 * Prints CPU nanoseconds per rating. Usage (bench/als_kernel.sh builds it against a build's
 * static libraries): als_kernel [RANK [NU [WINDOW [MODE [NR]]]]], MODE 0 gather then kernel
 * per tile, 1 gather only (the kernel's share is the difference); NR ratings per entity
 * (default 5600, an item's at Netflix scale; a user has about 200 of 17.7k items).
 * MODE 2 times em__als_chol_solve instead: CPU microseconds per k x k solve, on
 * systems built from the Gram sums of NR random rows plus lambda n I. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench/micro.h"
#include "mllib/als/als_int.h"
#include "mllib/als/kernel.h"

static uint32_t next(void)
{
    return (uint32_t)(micro_next() >> 11);
}

/* MODE 2: 64 systems A = sum of NR rows' y y^T + 0.02 NR I (the rows drawn from f), each
 * solved repeatedly from a fresh copy; the copy's cost is timed apart and subtracted. */
static int chol_bench(int k, const float *f, uint32_t nu, int nr)
{
    enum { NS = 64, REP = 2000 };
    int stride = (int)em__als_row_stride((uint32_t)k);
    size_t kk = (size_t)k;
    double *sys = calloc(NS * kk * (kk + 1), sizeof(double));
    double *a = malloc(kk * kk * sizeof(double)), *b = malloc(kk * sizeof(double));
    if (!sys || !a || !b)
        return 1;
    for (int q = 0; q < NS; q++) {
        double *sa = sys + (size_t)q * kk * (kk + 1), *sb = sa + kk * kk;
        for (int s = 0; s < nr; s++) {
            const float *y = f + (size_t)(next() % nu) * (size_t)stride;
            double r = 1.0 + next() % 5;
            for (size_t i = 0; i < kk; i++) {
                for (size_t j = i; j < kk; j++)
                    sa[i * kk + j] += (double)y[i] * y[j];
                sb[i] += r * y[i];
            }
        }
        for (size_t i = 0; i < kk; i++)
            sa[i * kk + i] += 0.02 * nr;
    }
    double sum = 0, tc = 0, ts = 0;
    for (int pass = 0; pass < 2; pass++) {
        double t0 = micro_cpu_s();
        for (int rep = 0; rep < REP; rep++)
            for (int q = 0; q < NS; q++) {
                const double *sa = sys + (size_t)q * kk * (kk + 1);
                memcpy(a, sa, kk * kk * sizeof(double));
                memcpy(b, sa + kk * kk, kk * sizeof(double));
                if (pass == 1) {
                    em_err err = EM_ERR_INIT;
                    if (em__als_chol_solve(k, a, b, &err) < 0) {
                        fprintf(stderr, "als_kernel: %s\n", err.msg);
                        return 1;
                    }
                }
                sum += b[k - 1];
            }
        *(pass == 0 ? &tc : &ts) = micro_cpu_s() - t0;
    }
    printf("rank %d, cholesky solve: %.3f us per solve (copy %.3f us subtracted; check %.17g)\n",
           k, (ts - tc) * 1e6 / (NS * REP), tc * 1e6 / (NS * REP), sum);
    free(sys);
    free(a);
    free(b);
    return 0;
}

int main(int argc, char **argv)
{
    int k = argc > 1 ? atoi(argv[1]) : 10;
    uint32_t nu = argc > 2 ? (uint32_t)atoi(argv[2]) : 480000;
    uint32_t win = argc > 3 ? (uint32_t)atoi(argv[3]) : nu;
    int mode = argc > 4 ? atoi(argv[4]) : 0;
    enum { T = 256 };
    const int STRIDE = (int)em__als_row_stride((uint32_t)k);
    const int NR = argc > 5 ? atoi(argv[5]) : 5600, NE = (int)(11200000 / (NR > 0 ? NR : 1));
    if (NR < 1 || k < 1 || k > 64 || nu < 1 || win < 1 || win > nu) {
        fprintf(stderr, "usage: als_kernel [RANK (1-64) [NU [WINDOW (<= NU) [MODE [NR]]]]]\n");
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
    static double last[T], ext[65 * 65], tile[T * 68];
    if (mode == 2)
        return chol_bench(k, f, nu, NR);
    double sum = 0, t0 = micro_cpu_s();
    for (int e = 0; e < NE; e++) {
        memset(ext, 0, sizeof ext);
        for (int t = 0; t < NR; t += T) {
            int n = NR - t < T ? NR - t : T;
            for (int s = 0; s < n; s++) {
                yp[s] = f + (size_t)src[(size_t)e * NR + t + s] * STRIDE;
                last[s] = r[(size_t)e * NR + t + s];
                em__als_prefetch_row(yp[s], (size_t)k * 4);   /* as solve.c gather() */
            }
            if (mode == 1)
                ext[0] += yp[n - 1][0] + last[0];
            else
                em__als_gram_rows(k, n, yp, NULL, last, (k + 4) & ~3, tile, ext);
        }
        for (int i = 0; i < (k + 1) * (k + 1); i++)   /* every entry: same bits, same check */
            sum += ext[i] * (1 + i % 7);
    }
    double dt = micro_cpu_s() - t0;
    printf("rank %d, %u rows, window %u, mode %d, %d per entity: %.2f ns per rating (check %.17g)\n", k, nu,
           win, mode, NR, dt * 1e9 / ((double)NE * NR), sum);
    free(f);
    free(src);
    free(r);
    return 0;
}
