/* bench/als_build.c - micro-benchmark of the executors' block build (em__als_build_block,
 * mllib/als/blocks.c) on Netflix-shaped ratings: 480189 users, 17770 items, NR ratings of
 * which about half fall in block 0 of 2 on each side, item popularity and user activity
 * skewed (a power of a uniform draw, ids scrambled so that popular ones are not
 * neighbours). ORDER 0: random line order (a shuffled file); 1: grouped by user (each
 * user's ratings together, users in id order). The ratings are handed over in chunks of
 * the size the build gathers them in (mllib/als/route.c).
 * Prints CPU seconds per build of block 0, user side then item side.
 * Usage (bench/als_build.sh builds it against a build's static libraries):
 *   als_build [NR_MILLIONS [ORDER [REPS]]]   (defaults 100 0 3) */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/micro.h"
#include "mllib/als/als_int.h"

enum { NU = 480189, NI = 17770, CHUNK = (4 << 20) / 12 };   /* route.c GATHER_CHUNK */

static void die(const char *why)
{
    fprintf(stderr, "als_build: %s\n", why);
    exit(1);
}

static double unit(void)
{
    return (double)(micro_next() >> 11) * (1.0 / 9007199254740992.0);
}

/* A permutation of [0, n): popular (low) draws land on scattered ids. */
static int32_t *scramble(int32_t n)
{
    int32_t *p = malloc((size_t)n * sizeof *p);
    if (!p)
        die("out of memory");
    for (int32_t i = 0; i < n; i++)
        p[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)(micro_next() % (uint64_t)(i + 1)), t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

static int cmp_user(const void *a, const void *b)
{
    const em_rating *x = a, *y = b;
    return (x->user > y->user) - (x->user < y->user);
}

int main(int argc, char **argv)
{
    size_t nr = (size_t)(argc > 1 ? atof(argv[1]) : 100) * 1000000;
    int order = argc > 2 ? atoi(argv[2]) : 0, reps = argc > 3 ? atoi(argv[3]) : 3;
    int32_t *pu = scramble(NU), *pi = scramble(NI);
    em_rating *r = malloc(nr * sizeof *r), *mine = malloc(nr * sizeof *mine);
    if (!r || !mine)
        die("out of memory for the ratings");
    for (size_t t = 0; t < nr; t++) {
        double a = unit(), b = unit();
        r[t].user = pu[(int32_t)(NU * a * a)];
        r[t].item = pi[(int32_t)(NI * b * b * b)];
        r[t].rating = (float)(1 + micro_next() % 5);
    }
    if (order == 1)
        qsort(r, nr, sizeof *r, cmp_user);
    em__als_cfg c = {.magic = EM__ALS_MAGIC, .rank = 10, .nblk = {2, 2}, .n = {NU, NI},
                     .seed = 42, .lambda = 0.02};
    for (int rep = 0; rep < reps; rep++)
        for (uint32_t side = 0; side < 2; side++) {
            c.side = side;
            size_t m = 0;   /* block 0's ratings, as its partition receives them */
            for (size_t t = 0; t < nr; t++)
                if (em__als_block_of(c.seed, side, side ? r[t].item : r[t].user, 2) == 0)
                    mine[m++] = r[t];
            size_t nseg = (m + CHUNK - 1) / CHUNK;
            em__als_seg *seg = malloc((nseg + 1) * sizeof *seg);
            if (!seg)
                die("out of memory");
            for (size_t s = 0; s < nseg; s++) {
                size_t left = m - s * CHUNK;
                seg[s] = (em__als_seg){mine + s * CHUNK, left < CHUNK ? left : CHUNK};
            }
            uint8_t *rec;
            size_t len;
            em_err err = {0};
            double t0 = micro_cpu_s();
            if (em__als_build_block(&c, seg, nseg, 0, &rec, &len, &err) < 0) {
                fprintf(stderr, "als_build: %s\n", err.msg);
                return 1;
            }
            double t1 = micro_cpu_s();
            printf("%s side, %zu ratings, order %s: %.3f CPU s (record %zu bytes)\n",
                   side ? "item" : "user", m, order ? "grouped" : "random", t1 - t0, len);
            em_emit_big_free(rec, EM__ALS_KEY_LEN);
            free(seg);
        }
    free(mine);
    free(r);
    free(pu);
    free(pi);
    return 0;
}
