/* bench/als_chunk.c - micro-benchmark of the item side's solve (mllib/als/solve.c): one
 * item block of NI items with NR ratings each, users drawn at random from NU users in 2
 * user blocks (the item side at Netflix scale: 480k users, 5600 ratings per item, user
 * factors 30 MB at rank 10), built by the ALS builder (em__als_build_block: rows sorted by
 * link) and solved by em__als_solve_record with the chunked solve off (every row alone,
 * reading its factors at random) and on (defaults, or CHUNK rows per chunk and GROUP rows
 * per group), alternately, three rounds; NR 0 draws Netflix-like item lengths (lognormal,
 * median 1400, mean 5600). Prints the CPU nanoseconds per rating of each and the largest
 * relative difference of their factors. Build against a Release build's static
 * libraries: cc -O2 -I. bench/als_chunk.c build/lib/libember_ml.a build/lib/libember.a
 * -lm -lpthread -lzstd -lssl -lcrypto -lopenblas -llapacke -ljansson. Usage:
 * als_chunk [RANK [NU [NI [NR [CHUNK [GROUP [MINLEN]]]]]]]. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/plan/fn.h"
#include "mllib/als/als_int.h"

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
    return (uint32_t)(rng >> 16);
}

int main(int argc, char **argv)
{
    uint32_t k = argc > 1 ? (uint32_t)atoi(argv[1]) : 10;
    int32_t nu = argc > 2 ? atoi(argv[2]) : 480000, ni = argc > 3 ? atoi(argv[3]) : 2000;
    uint32_t nr = argc > 4 ? (uint32_t)atoi(argv[4]) : 5600;
    em__als_chunking on = {0}, off = {.off = true};
    on.rows = argc > 5 ? (uint32_t)atoi(argv[5]) : 0;
    on.group = argc > 6 ? (uint32_t)atoi(argv[6]) : 0;
    if (argc > 7) {
        on.set_min_len = true;
        on.min_len = (uint32_t)atoi(argv[7]);
    }
    /* NR 0: Netflix-like lengths, lognormal with median 1400 and mean 5600 (the full-scale
     * file's items: median about 1400, 10% above 16k, 70% of the ratings in items of 10k+) */
    uint32_t *len_of = malloc((size_t)ni * 4);
    size_t n = 0;
    for (int32_t i = 0; i < ni; i++) {
        double u1 = ((double)next() + 1) / 4294967297.0, u2 = (double)next() / 4294967296.0;
        double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
        len_of[i] = nr ? nr : (uint32_t)fmin(exp(log(1400.0) + 1.665 * z) + 1, (double)nu / 2);
        n += len_of[i];
    }
    em_rating *r = malloc(n * sizeof *r);
    if (!r)
        return 1;
    for (size_t t = 0, i = 0; i < (size_t)ni; i++)
        for (uint32_t q = 0; q < len_of[i]; q++, t++)
            r[t] = (em_rating){(int32_t)(next() % (uint32_t)nu), (int32_t)i,
                               (float)(1 + next() % 5)};
    free(len_of);
    printf("%zu ratings\n", n);
    em__als_ctx *x = calloc(1, sizeof *x);
    x->cfg = (em__als_cfg){.magic = EM__ALS_MAGIC, .rank = k, .side = 1, .nblk = {2, 1},
                           .n = {nu, ni}, .seed = 1, .lambda = 0.02};
    em__als_seg seg = {r, n};
    uint8_t *rec;
    size_t len;
    em_err err = EM_ERR_INIT;
    double c0 = cpu_s();
    if (em__als_build_block(&x->cfg, &seg, 1, 0, &rec, &len, &err) < 0) {
        fprintf(stderr, "build: %s\n", err.msg);
        return 1;
    }
    printf("build: %.1f ns per rating\n", (cpu_s() - c0) * 1e9 / (double)n);
    free(r);
    em__als_blockview bv;
    if (em__als_block_view(em_slice_make(rec, len), &bv, &err) < 0)
        return 1;
    uint32_t cnt[2] = {0, 0};
    for (uint32_t t = 0; t < bv.nnz; t++) {
        uint32_t enc = em__ld32(bv.src + (size_t)t * 4), j = enc >> bv.idxbits;
        uint32_t pos = enc & ((1u << bv.idxbits) - 1);
        cnt[j] = pos + 1 > cnt[j] ? pos + 1 : cnt[j];
    }
    em_vbuf mb[2];
    em_slice ms[2];
    for (uint32_t j = 0; j < 2; j++) {
        em_vbuf_init(&mb[j]);
        uint32_t hdr[3] = {j, cnt[j], k};
        em_vbuf_append(&mb[j], hdr, 12);
        for (size_t q = 0; q < (size_t)cnt[j] * k; q++) {
            float v = (float)((double)next() / 4294967296.0 - 0.5);
            em_vbuf_append(&mb[j], &v, 4);
        }
        ms[j] = em_slice_make(mb[j].data, mb[j].len);
    }
    /* ONLY=0 or 1 in the environment: only the plain or the chunked solve (two instances
     * side by side, as the two executors of local-cluster[2,1] solve their item blocks) */
    int only = getenv("ONLY") ? atoi(getenv("ONLY")) : -1;
    em_vbuf out[2];
    em_vbuf_init(&out[0]);
    em_vbuf_init(&out[1]);
    for (int round = 0; round < 3; round++)
        for (int w = only >= 0 ? only : 0; w < 2; w += only >= 0 ? 2 : 1) {
            em_vbuf_clear(&out[w]);
            c0 = cpu_s();
            if (em__als_solve_record(x, em_slice_make(rec, len), ms, 2, w ? &on : &off,
                                     &out[w], &err) < 0) {
                fprintf(stderr, "solve: %s\n", err.msg);
                return 1;
            }
            printf("round %d %s: %.2f ns per rating\n", round, w ? "chunked" : "plain  ",
                   (cpu_s() - c0) * 1e9 / (double)n);
        }
    if (only >= 0)
        return 0;
    double md = 0;
    const float *a = (const float *)(void *)(out[0].data + 8 + (size_t)bv.n * 4);
    const float *b = (const float *)(void *)(out[1].data + 8 + (size_t)bv.n * 4);
    for (size_t q = 0; q < (size_t)bv.n * k; q++) {
        double d = fabs((double)a[q] - b[q]) / (1e-30 + fabs((double)a[q]));
        md = d > md ? d : md;
    }
    printf("largest relative difference: %.3g\n", md);
    em_emit_big_free(rec, EM__ALS_KEY_LEN);
    return 0;
}
