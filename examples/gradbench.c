/* examples/gradbench.c - logistic-loss gradient passes over cached dense rows, in-place
 * aggregation (a batch at a time, BLAS dgemv) against the old per-record aggregate:
 *   ember run-example gradbench [N [D [ITERS [PARTS [MODE]]]]]
 * N rows (1000000) of D features (100) plus a 0/1 label, as FIXED records of 8 * (D + 1)
 * bytes in PARTS partitions (8), cached; ITERS (10) gradient passes per mode; MODE acc, old
 * or both (both). Each pass computes the gradient X^T (sigmoid(X w) - y) and the loss with
 * w in the context blob (as a gradient-descent step would ship it) and prints its wall time;
 * the last line per mode gives the median. With both, the two gradients are compared
 * (relative difference, summation order differs). MODE big instead times ITERS jobs whose
 * accumulator is 8 MiB (1M doubles summed, one row per partition): aggregate_acc (made on
 * the executors) against aggregate with an 8 MiB zero (shipped in every stage JSON). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/ember.h"
#include "mllib/linalg/linalg.h"

int ember_main(em_context *sc, int argc, char **argv);
int gb_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in, em_err *err);
int gb_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err);
int gb_seq_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int gb_comb_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int gb_big_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in, em_err *err);
int gb_big_seq_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);

/* Context blob: the weights, D doubles. Accumulator: D gradient sums, then the loss. */
#define CHUNK 256   /* rows per dgemv pair: z stays in L1 */

int gb_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in, em_err *err)
{
    int d = (int)(c->blob.n / 8), ld = d + 1;
    double *g = acc, z[CHUNK];
    const double *w = (const double *)(const void *)c->blob.p;
    if (in->kind != EM_REC_FIXED || in->width != 8u * (unsigned)ld || size != 8u * (unsigned)ld)
        return em_err_set(err, EM_EINVAL, "gradbench: batch of kind %d width %u", in->kind,
                          in->width);
    em_la_init();
    const double *x = (const double *)(const void *)in->data;
    for (uint64_t r0 = 0; r0 < in->nrecs; r0 += CHUNK) {
        int n = (int)(in->nrecs - r0 < CHUNK ? in->nrecs - r0 : CHUNK);
        const double *xb = x + r0 * (uint64_t)ld;
        cblas_dgemv(CblasRowMajor, CblasNoTrans, n, d, 1.0, xb, ld, w, 1, 0.0, z, 1);
        for (int i = 0; i < n; i++) {
            double y = xb[(size_t)i * ld + d], p = 1.0 / (1.0 + exp(-z[i]));
            g[d] -= y * log(p + 1e-12) + (1 - y) * log(1 - p + 1e-12);
            z[i] = p - y;
        }
        cblas_dgemv(CblasRowMajor, CblasTrans, n, d, 1.0, xb, ld, z, 1, 1.0, g, 1);
    }
    return 0;
}

int gb_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err)
{
    (void)c;
    (void)err;
    double *a = acc;
    const double *o = other;
    for (size_t i = 0; i < size / 8; i++)
        a[i] += o[i];
    return 0;
}

/* The old signature: out = a + the row's contribution, a copied for every row. */
int gb_seq_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    size_t d = c->blob.n / 8;
    double w[1024], row[1025];
    if (d > 1024 || b.n != 8 * (d + 1) || a.n != b.n)
        return em_err_set(err, EM_EINVAL, "gradbench: row of %zu bytes", b.n);
    memcpy(w, c->blob.p, 8 * d);
    memcpy(row, b.p, b.n);
    if (em_vbuf_append(out, a.p, a.n) < 0)
        return em_err_set(err, EM_ENOMEM, "gradbench: out of memory");
    double *g = (double *)(void *)out->data, z = 0;
    for (size_t j = 0; j < d; j++)
        z += row[j] * w[j];
    double y = row[d], p = 1.0 / (1.0 + exp(-z));
    g[d] -= y * log(p + 1e-12) + (1 - y) * log(1 - p + 1e-12);
    for (size_t j = 0; j < d; j++)
        g[j] += (p - y) * row[j];
    return 0;
}

int gb_comb_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    if (a.n != b.n || em_vbuf_append(out, a.p, a.n) < 0)
        return em_err_set(err, EM_EINVAL, "gradbench: combine of %zu and %zu bytes", a.n, b.n);
    double *g = (double *)(void *)out->data;
    for (size_t i = 0; i < a.n / 8; i++)
        g[i] += em_dec_f64(b.p + 8 * i);
    return 0;
}

/* 8 MiB accumulators: a row adds its first value to slot 0. */
int gb_big_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in, em_err *err)
{
    (void)c;
    (void)size;
    (void)err;
    for (uint64_t i = 0; i < in->nrecs; i++)
        ((double *)acc)[0] += 1;
    return 0;
}

int gb_big_seq_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    (void)b;
    if (em_vbuf_append(out, a.p, a.n) < 0)
        return em_err_set(err, EM_ENOMEM, "gradbench: out of memory");
    ((double *)(void *)out->data)[0] += 1;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ITERS passes of one mode; the last gradient in *g (d + 1 doubles, caller frees). */
static int run_mode(em_rdd *rows, bool acc, int d, int iters, double **g, em_err *err)
{
    double *w = calloc((size_t)d, 8), *t = calloc((size_t)iters, 8);
    size_t size = 8 * ((size_t)d + 1);
    uint8_t *zero = calloc(1, size);
    int rc = 0;
    for (int it = 0; it < iters && rc == 0; it++) {
        for (int j = 0; j < d; j++)
            w[j] = 0.01 * (it + 1) * ((j % 7) - 3);
        em_slice ctx = em_slice_make(w, 8 * (size_t)d);
        em_agg a = {.size = size, .seq = "gb_seq", .merge = "gb_merge", .ctx = ctx};
        em_vbuf out;
        double t0 = now_s();
        rc = acc ? em_rdd_aggregate_acc(rows, &a, &out, err)
                 : em_rdd_aggregate(rows, em_slice_make(zero, size), "gb_seq_old",
                                    "gb_comb_old", ctx, &out, err);
        t[it] = now_s() - t0;
        if (rc == 0) {
            printf("%s iteration %d: %.1f ms (loss %.6g)\n", acc ? "aggregate_acc" : "aggregate",
                   it, 1e3 * t[it], ((double *)(void *)out.data)[d]);
            free(*g);
            *g = malloc(size);
            memcpy(*g, out.data, size);
            em_vbuf_destroy(&out);
        }
    }
    if (rc == 0) {
        qsort(t, (size_t)iters, 8, cmp_d);
        printf("%s: median %.1f ms per iteration over %d\n", acc ? "aggregate_acc" : "aggregate",
               1e3 * t[iters / 2], iters);
    }
    free(w);
    free(t);
    free(zero);
    return rc;
}

static int run_big(em_rdd *rows, int iters, em_err *err)
{
    size_t size = (size_t)8 << 20;
    uint8_t *zero = calloc(1, size);
    double *t = calloc((size_t)iters, 8);
    int rc = 0;
    for (int m = 0; m < 2 && rc == 0; m++) {
        for (int it = 0; it < iters && rc == 0; it++) {
            em_agg a = {.size = size, .seq = "gb_big_seq", .merge = "gb_merge"};
            em_vbuf out;
            double t0 = now_s();
            rc = m == 0 ? em_rdd_aggregate_acc(rows, &a, &out, err)
                        : em_rdd_aggregate(rows, em_slice_make(zero, size), "gb_big_seq_old",
                                           "gb_comb_old", em_slice_make(NULL, 0), &out, err);
            t[it] = now_s() - t0;
            if (rc == 0)
                em_vbuf_destroy(&out);
        }
        qsort(t, (size_t)iters, 8, cmp_d);
        if (rc == 0)
            printf("%s, 8 MiB accumulator: median %.1f ms per job over %d\n",
                   m == 0 ? "aggregate_acc" : "aggregate (8 MiB zero)", 1e3 * t[iters / 2],
                   iters);
    }
    free(zero);
    free(t);
    return rc;
}

static em_rdd *make_rows(em_context *sc, size_t n, int d, uint32_t parts)
{
    size_t ld = (size_t)d + 1;
    double *x = malloc(n * ld * 8);
    em_rec *recs = calloc(n, sizeof *recs);
    uint64_t s = 7;
    for (size_t i = 0; i < n; i++) {
        double z = 0;
        for (int j = 0; j < d; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            x[i * ld + j] = (double)(s >> 11) / 9007199254740992.0 - 0.5;
            z += x[i * ld + j] * ((j % 5) - 2);
        }
        x[i * ld + d] = z > 0 ? 1.0 : 0.0;
        recs[i].val = em_slice_make(x + i * ld, ld * 8);
    }
    em_rdd *r = em_parallelize(sc, EM_REC_FIXED, (uint32_t)(ld * 8), recs, n, parts);
    free(recs);
    free(x);
    return em_rdd_cache(r);
}

int ember_main(em_context *sc, int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atoll(argv[1]) : 1000000;
    int d = argc > 2 ? atoi(argv[2]) : 100, iters = argc > 3 ? atoi(argv[3]) : 10;
    uint32_t parts = argc > 4 ? (uint32_t)atoi(argv[4]) : 8;
    const char *mode = argc > 5 ? argv[5] : "both";
    em_err err = EM_ERR_INIT;
    double *ga = NULL, *go = NULL;
    uint64_t cnt;
    if (d < 1 || d > 1024 || iters < 1) {
        fprintf(stderr, "gradbench: D in 1..1024, ITERS >= 1\n");
        return 2;
    }
    if (strcmp(mode, "big") == 0)
        n = parts;
    em_rdd *rows = make_rows(sc, n, d, parts);
    int rc = em_rdd_count(rows, &cnt, &err);   /* fills the cache */
    if (rc == 0 && strcmp(mode, "big") == 0) {
        rc = run_big(rows, iters, &err);
        mode = "none";
    }
    if (rc == 0 && (strcmp(mode, "acc") == 0 || strcmp(mode, "both") == 0))
        rc = run_mode(rows, true, d, iters, &ga, &err);
    if (rc == 0 && (strcmp(mode, "old") == 0 || strcmp(mode, "both") == 0))
        rc = run_mode(rows, false, d, iters, &go, &err);
    if (rc == 0 && ga && go) {
        double diff = 0, norm = 0;
        for (int j = 0; j <= d; j++) {
            diff = fmax(diff, fabs(ga[j] - go[j]));
            norm = fmax(norm, fabs(go[j]));
        }
        printf("max |acc - old| / max |old| = %.3g\n", diff / norm);
        if (diff > 1e-9 * norm)
            rc = EM_ECORRUPT;
    }
    if (rc < 0)
        fprintf(stderr, "gradbench: %s\n", err.code ? err.msg : "results differ");
    free(ga);
    free(go);
    em_rdd_release(rows);
    return rc < 0 ? 1 : 0;
}
