/* examples/gradient.c - the compute layer's benchmark: logistic-loss gradient passes over
 * cached dense rows, `ember run-example gradient [--rows N] [--cols D] [--parts P]
 * [--iterations K] [--lr STEP] [--old-path K2]`.
 *
 * DATA (the same formula as bench/gradient_numpy.py, so both see identical numbers):
 *   u(z)      = (splitmix64(z) >> 11) * 2^-53 * 2 - 1          in [-1, 1)
 *   x[i][j]   = u(i * D + j)
 *   wtrue[j]  = u(2^62 + j)
 *   y[i]      = 1 if x[i] . wtrue + 0.5 * u(2^63 + i) > 0 else 0
 * A row is one FIXED record of 8 * (D + 1) bytes: y, then x[i][0..D-1] (doubles, native
 * order), so a cached partition is an n x (D + 1) row-major matrix.
 *
 * ONE ITERATION is em_rdd_aggregate_acc with an accumulator of D + 2 doubles (gradient,
 * loss, rows): per batch of rows, m = X w (dgemv), r = sigmoid(m) - y, grad += X^T r
 * (dgemv), loss += log(1 + exp(m)) - y m; then w -= lr * grad / n on the driver. The
 * weights travel in the context blob (D doubles). --old-path K2 also times K2 iterations
 * of the per-record em_rdd_aggregate (reduce-signature seq copying the accumulator) for
 * comparison. Finally "overhead" times 20 empty-ish jobs (aggregate_acc over 8 cached
 * rows in --parts partitions): the engine's per-job cost.
 *
 * OUTPUT: one line per iteration ("iter K  loss L  S s"), then a JSON object on the last
 * line: rows, cols, parts, load_s, iter_s (median), iter_s_all, old_iter_s (median or
 * null), overhead_ms (median), loss0, loss_last. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "engine/ember.h"
#include "mllib/linalg/linalg.h"

int ember_main(em_context *sc, int argc, char **argv);
int grad_gen(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int grad_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in, em_err *err);
int grad_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err);
int grad_old_seq(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int grad_old_comb(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);

#define MAX_COLS 4096

static double unit(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

/* blob: u32 D. in: em_enc_i64 row index. Emits one row (y, x[0..D-1]). */
int grad_gen(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    double row[MAX_COLS + 1], dot = 0;
    uint32_t d;

    if (c->blob.n != 4 || in->val.n != 8)
        return em_err_set(err, EM_EINVAL, "grad_gen: bad blob or record");
    d = em_load_le32(c->blob.p);
    uint64_t i = (uint64_t)em_dec_i64(in->val.p);
    for (uint32_t j = 0; j < d; j++) {
        row[j + 1] = unit(i * d + j);
        dot += row[j + 1] * unit((1ULL << 62) + j);
    }
    row[0] = dot + 0.5 * unit((1ULL << 63) + i) > 0 ? 1.0 : 0.0;
    return em_emit_val(out, em_slice_make(row, 8 * ((size_t)d + 1)), err);
}

/* Loss of one row with margin m and label y: log(1 + e^m) - y m, computed stably. */
static double logloss(double m, double y)
{
    return (m > 0 ? m + log1p(exp(-m)) : log1p(exp(m))) - y * m;
}

/* blob: w (D doubles). acc: grad[D], loss, rows. */
int grad_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in, em_err *err)
{
    size_t d = c->blob.n / 8, n = in->nrecs, ld = d + 1;
    double *a = acc, *m, w[MAX_COLS];
    const double *x = (const double *)(const void *)in->data;

    if (in->kind != EM_REC_FIXED || in->width != 8 * ld || size != 8 * (d + 2) || d > MAX_COLS)
        return em_err_set(err, EM_EINVAL, "grad_seq: rows of %u bytes, expected %zu",
                          in->width, 8 * ld);
    memcpy(w, c->blob.p, 8 * d);   /* the blob has no alignment guarantee */
    em_la_init();
    if (!(m = malloc(n * sizeof *m)))
        return em_err_set(err, EM_ENOMEM, "grad_seq: out of memory");
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0, x + 1, (int)ld, w, 1, 0.0,
                m, 1);
    double loss = 0;
    for (size_t i = 0; i < n; i++) {
        double y = x[i * ld];
        loss += logloss(m[i], y);
        m[i] = 1.0 / (1.0 + exp(-m[i])) - y;
    }
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)d, 1.0, x + 1, (int)ld, m, 1, 1.0, a,
                1);
    a[d] += loss;
    a[d + 1] += (double)n;
    free(m);
    return 0;
}

int grad_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err)
{
    double *a = acc;
    const double *b = other;
    (void)c;
    (void)err;
    for (size_t i = 0; i < size / 8; i++)
        a[i] += b[i];
    return 0;
}

/* The per-record path: a = accumulator (D + 2 doubles), b = one row. */
int grad_old_seq(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    size_t d = c->blob.n / 8;
    double acc[MAX_COLS + 2], row[MAX_COLS + 1], w[MAX_COLS], m = 0;

    if (a.n != 8 * (d + 2) || b.n != 8 * (d + 1) || d > MAX_COLS)
        return em_err_set(err, EM_EINVAL, "grad_old_seq: bad sizes");
    memcpy(w, c->blob.p, 8 * d);
    memcpy(acc, a.p, a.n);
    memcpy(row, b.p, b.n);
    for (size_t j = 0; j < d; j++)
        m += row[j + 1] * w[j];
    double r = 1.0 / (1.0 + exp(-m)) - row[0];
    for (size_t j = 0; j < d; j++)
        acc[j] += r * row[j + 1];
    acc[d] += logloss(m, row[0]);
    acc[d + 1] += 1;
    return em_vbuf_append(out, acc, a.n) < 0 ? em_err_set(err, EM_ENOMEM, "out of memory")
                                              : 0;
}

int grad_old_comb(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    double acc[MAX_COLS + 2];
    (void)c;
    if (a.n != b.n || a.n > sizeof acc)
        return em_err_set(err, EM_EINVAL, "grad_old_comb: bad sizes");
    memcpy(acc, a.p, a.n);
    for (size_t i = 0; i < a.n / 8; i++)
        acc[i] += ((const double *)b.p)[i];
    return em_vbuf_append(out, acc, a.n) < 0 ? em_err_set(err, EM_ENOMEM, "out of memory")
                                              : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct opts {
    long long rows, cols, parts, iters, old_iters;
    double lr;
} opts;

static int parse_opts(int argc, char **argv, opts *o)
{
    *o = (opts){1000000, 100, 8, 10, 0, 1.0};
    for (int i = 1; i < argc; i++) {
        long long *dst = NULL;
        if (i + 1 >= argc)
            return fprintf(stderr, "gradient: %s needs a value\n", argv[i]), -1;
        if (!strcmp(argv[i], "--rows"))
            dst = &o->rows;
        else if (!strcmp(argv[i], "--cols"))
            dst = &o->cols;
        else if (!strcmp(argv[i], "--parts"))
            dst = &o->parts;
        else if (!strcmp(argv[i], "--iterations"))
            dst = &o->iters;
        else if (!strcmp(argv[i], "--old-path"))
            dst = &o->old_iters;
        else if (!strcmp(argv[i], "--lr")) {
            char *end;
            o->lr = strtod(argv[++i], &end);
            if (*end || !(o->lr > 0))
                return fprintf(stderr, "gradient: --lr must be a positive number\n"), -1;
            continue;
        } else
            return fprintf(stderr, "gradient: unknown option %s\n", argv[i]), -1;
        char *end;
        *dst = strtoll(argv[++i], &end, 10);
        if (*end || argv[i][0] < '0' || argv[i][0] > '9' || *dst < 0 ||
            (dst != &o->old_iters && *dst == 0))
            return fprintf(stderr, "gradient: %s must be a positive integer\n", argv[i - 1]),
                   -1;
    }
    if (o->cols > MAX_COLS || o->parts > 100000 || o->iters > 10000)
        return fprintf(stderr, "gradient: --cols at most %d\n", MAX_COLS), -1;
    return 0;
}

/* One in-place gradient pass; fills acc (D + 2 doubles). */
static int pass_acc(em_rdd *data, const double *w, size_t d, double *acc, em_err *err)
{
    em_agg a = {8 * (d + 2), NULL, "grad_seq", "grad_merge", em_slice_make(w, 8 * d)};
    em_vbuf out = {0};
    int rc = em_rdd_aggregate_acc(data, &a, &out, err);
    if (rc == 0 && out.len == a.size)
        memcpy(acc, out.data, a.size);
    else if (rc == 0)
        rc = em_err_set(err, EM_EINVAL, "aggregate returned %zu bytes", out.len);
    em_vbuf_destroy(&out);
    return rc;
}

static int pass_old(em_rdd *data, const double *w, size_t d, double *acc, em_err *err)
{
    em_vbuf out = {0};
    memset(acc, 0, 8 * (d + 2));
    int rc = em_rdd_aggregate(data, em_slice_make(acc, 8 * (d + 2)), "grad_old_seq",
                              "grad_old_comb", em_slice_make(w, 8 * d), &out, err);
    if (rc == 0 && out.len == 8 * (d + 2))
        memcpy(acc, out.data, out.len);
    else if (rc == 0)
        rc = em_err_set(err, EM_EINVAL, "aggregate returned %zu bytes", out.len);
    em_vbuf_destroy(&out);
    return rc;
}

static int overhead_ms(em_context *sc, uint32_t parts, double *out, em_err *err)
{
    uint8_t blob[4];
    double w[1] = {0}, acc[3], t[20];
    em_store_le32(blob, 1);
    em_rdd *tiny = em_rdd_map_fixed(em_range(sc, 0, 8, 1, parts), "grad_gen",
                                    em_slice_make(blob, 4), 16);
    uint64_t n;
    if (em_rdd_count(em_rdd_cache(tiny), &n, err) < 0)
        return err->code;
    for (int i = 0; i < 20; i++) {
        double t0 = em_now_s();
        if (pass_acc(tiny, w, 1, acc, err) < 0)
            return err->code;
        t[i] = (em_now_s() - t0) * 1e3;
    }
    *out = median(t, 20);
    em_rdd_release(tiny);
    return 0;
}

int ember_main(em_context *sc, int argc, char **argv)
{
    opts o;
    em_err err = EM_ERR_INIT;
    uint8_t blob[4];
    uint64_t n;

    if (parse_opts(argc, argv, &o) < 0)
        return 2;
    size_t d = (size_t)o.cols;
    double *w = calloc(d, sizeof *w), *acc = calloc(d + 2, sizeof *acc);
    double *ts = calloc((size_t)o.iters + (size_t)o.old_iters + 1, sizeof *ts);
    double loss0 = 0, loss = 0, old_med = -1, ovh = 0;
    if (!w || !acc || !ts)
        return fprintf(stderr, "gradient: out of memory\n"), 1;
    em_store_le32(blob, (uint32_t)d);
    double t0 = em_now_s();
    em_rdd *data = em_rdd_map_fixed(em_range(sc, 0, o.rows, 1, (uint32_t)o.parts), "grad_gen",
                                    em_slice_make(blob, 4), (uint32_t)(8 * (d + 1)));
    if (em_rdd_count(em_rdd_cache(data), &n, &err) < 0)
        goto fail;
    double load_s = em_now_s() - t0;
    printf("loaded %llu rows x %zu columns in %lld partitions: %.2f s\n", (unsigned long long)n,
           d, o.parts, load_s);
    for (long long it = 0; it < o.iters; it++) {
        double s = em_now_s();
        if (pass_acc(data, w, d, acc, &err) < 0)
            goto fail;
        ts[it] = em_now_s() - s;
        loss = acc[d] / acc[d + 1];
        if (it == 0)
            loss0 = loss;
        for (size_t j = 0; j < d; j++)
            w[j] -= o.lr * acc[j] / acc[d + 1];
        printf("iter %lld  loss %.6f  %.4f s\n", it + 1, loss, ts[it]);
    }
    double iter_med = median(ts, (int)o.iters);
    if (o.old_iters > 0) {
        for (long long it = 0; it < o.old_iters; it++) {
            double s = em_now_s();
            if (pass_old(data, w, d, acc, &err) < 0)
                goto fail;
            ts[it] = em_now_s() - s;
            printf("old path %lld  loss %.6f  %.4f s\n", it + 1, acc[d] / acc[d + 1], ts[it]);
        }
        old_med = median(ts, (int)o.old_iters);
    }
    if (overhead_ms(sc, (uint32_t)o.parts, &ovh, &err) < 0)
        goto fail;
    char old[32] = "null";
    if (old_med >= 0)
        snprintf(old, sizeof old, "%.4f", old_med);
    printf("{\"rows\": %llu, \"cols\": %zu, \"parts\": %lld, \"load_s\": %.3f, "
           "\"iter_s\": %.4f, \"old_iter_s\": %s, \"overhead_ms\": %.3f, "
           "\"loss0\": %.9f, \"loss_last\": %.9f}\n",
           (unsigned long long)n, d, o.parts, load_s, iter_med, old, ovh, loss0, loss);
    free(w), free(acc), free(ts);
    return 0;
fail:
    fprintf(stderr, "ember: gradient: %s\n", err.msg);
    free(w), free(acc), free(ts);
    return 1;
}
