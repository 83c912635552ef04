/* examples/batchsum.c - batch access (em_iter_next_batch) over FIXED datasets made by the
 * fixed-width transformations, so runs under different masters can be compared:
 *   ember run-example batchsum check [ckpt]
 *       for widths 8, 24, 96 and 800 bytes and datasets cached, cached at DISK_ONLY,
 *       repartitioned (a shuffle), coalesced, checkpointed (with "ckpt"; needs ember.checkpoint.dir) and made by
 *       flat_map_fixed / map_partitions_fixed, sums every record through batches and
 *       through em_iter_next and prints "NAME w=W: records=N sum=S batch=same aligned"
 *       (or "... MISMATCH"), then "batchsum: K mismatch(es)". A task that sees a FIXED
 *       batch that is not FIXED of width W or not 64-byte aligned fails the job.
 *   ember run-example batchsum bench ROWS DIM ITERS PARTS
 *       a logistic-loss gradient pass over ROWS x DIM cached doubles, ITERS times, once
 *       through batches (a row-major matrix per batch) and once record by record; prints
 *       the median seconds per pass of each and the largest difference of the gradients.
 * Exit status: 0, or 1 on a mismatch or a failed job. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);
int bs_vec(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int bs_vec_part(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                em_err *err);
int bs_sum(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err);
int bs_grad(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err);

/* ---------------------------------------------------------------- user functions */

static uint32_t blob_u32(em_slice b, size_t at)
{
    return at + 4 <= b.n ? em_load_le32(b.p + at) : 0;
}

/* i64 v -> W bytes (blob: u32 W, u32 copies). W a multiple of 8: doubles
 * sin(v * 0.001 * (j + 1)); else bytes (v * 31 + j * 7) mod 256. */
int bs_vec(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    uint8_t buf[4096];
    uint32_t w = blob_u32(c->blob, 0), copies = blob_u32(c->blob, 4);
    int64_t v = em_dec_i64(in->val.p);
    if (w == 0 || w > sizeof buf)
        return em_err_set(err, EM_EINVAL, "bs_vec: width %u", w);
    for (uint32_t j = 0; j < w; j++)
        buf[j] = (uint8_t)((uint64_t)v * 31u + j * 7u);
    if (w % 8 == 0)
        for (uint32_t j = 0; j < w / 8; j++)
            em_enc_f64(buf + 8 * j, sin((double)v * 0.001 * (j + 1)));
    for (uint32_t k = 0; k < (copies ? copies : 1); k++) {
        int rc = em_emit_val(out, em_slice_make(buf, w), err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int bs_vec_part(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                em_err *err)
{
    em_rec r;
    int rc;
    (void)index;
    while ((rc = em_iter_next(in, &r, err)) == 1)
        if ((rc = bs_vec(c, &r, out, err)) < 0)
            return rc;
    return rc;
}

static uint64_t row_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0;
    for (size_t j = 0; j < n; j++)
        h += (uint64_t)p[j] * (j + 1);
    return h;
}

/* Sums the partition (blob: u32 width, u32 1 = through batches); emits u64 sum, u64 n. */
int bs_sum(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err)
{
    uint32_t w = blob_u32(c->blob, 0), batches = blob_u32(c->blob, 4);
    uint64_t sum = 0, n = 0;
    int rc;
    (void)index;
    if (batches) {
        em_rec_batch b;
        while ((rc = em_iter_next_batch(in, &b, err)) == 1) {
            if (b.kind != EM_REC_FIXED || b.width != w || (uintptr_t)b.data % 64 != 0)
                return em_err_set(err, EM_EINVAL, "batch of kind %d width %u at %p (want "
                                  "FIXED %u, 64-byte aligned)", (int)b.kind, b.width,
                                  (const void *)b.data, w);
            for (uint64_t i = 0; i < b.nrecs; i++)
                sum += row_hash(b.data + i * w, w);
            n += b.nrecs;
        }
    } else {
        em_rec r;
        while ((rc = em_iter_next(in, &r, err)) == 1) {
            sum += row_hash(r.val.p, r.val.n);
            n++;
        }
    }
    if (rc < 0)
        return rc;
    uint8_t res[16];
    em_store_le64(res, sum);
    em_store_le64(res + 8, n);
    return em_emit_val(out, em_slice_make(res, 16), err);
}

/* Logistic-loss gradient of one partition: sum over rows x of (sigmoid(x . w) - y) x with
 * y = 1 when x[0] > 0, else 0. Blob: u32 1 = through batches, then d doubles of w.
 * Emits d doubles. */
static void grad_rows(const double *x, uint64_t rows, uint32_t d, const double *w, double *g)
{
    for (uint64_t i = 0; i < rows; i++, x += d) {
        double dot = 0;
        for (uint32_t j = 0; j < d; j++)
            dot += x[j] * w[j];
        double e = 1.0 / (1.0 + exp(-dot)) - (x[0] > 0 ? 1.0 : 0.0);
        for (uint32_t j = 0; j < d; j++)
            g[j] += e * x[j];
    }
}

int bs_grad(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err)
{
    uint32_t batches = blob_u32(c->blob, 0), d = (uint32_t)((c->blob.n - 4) / 8);
    double *w = malloc(d * sizeof *w), *g = calloc(d, sizeof *g);
    int rc;
    (void)index;
    if (!w || !g) {
        free(w);
        free(g);
        return em_err_set(err, EM_ENOMEM, "bs_grad: out of memory");
    }
    memcpy(w, c->blob.p + 4, d * sizeof *w);
    if (batches) {
        em_rec_batch b;
        while ((rc = em_iter_next_batch(in, &b, err)) == 1)
            grad_rows((const double *)(const void *)b.data, b.nrecs, d, w, g);
    } else {
        em_rec r;
        while ((rc = em_iter_next(in, &r, err)) == 1) {
            double x[512];
            memcpy(x, r.val.p, d * sizeof *x);
            grad_rows(x, 1, d, w, g);
        }
    }
    if (rc == 0)
        rc = em_emit_val(out, em_slice_make(g, d * sizeof *g), err);
    free(w);
    free(g);
    return rc;
}

/* ---------------------------------------------------------------- check */

static int sum_of(em_rdd *r, uint32_t w, uint32_t batches, uint64_t *sum, uint64_t *n)
{
    uint8_t b[8];
    em_store_le32(b, w);
    em_store_le32(b + 4, batches);
    em_rdd *s = em_rdd_map_partitions(r, "bs_sum", em_slice_make(b, 8), false);
    em_records recs;
    em_err err = EM_ERR_INIT;
    int rc = em_rdd_collect(s, &recs, &err);
    *sum = *n = 0;
    if (rc < 0)
        printf("ERROR: %s\n", err.msg);
    for (size_t i = 0; rc == 0 && i < recs.n; i++) {
        *sum += em_load_le64(recs.recs[i].val.p);
        *n += em_load_le64(recs.recs[i].val.p + 8);
    }
    em_records_destroy(&recs);
    em_rdd_release(s);
    return rc;
}

static int report(const char *name, em_rdd *r, uint32_t w)
{
    uint64_t s1, n1, s2, n2;
    if (sum_of(r, w, 1, &s1, &n1) < 0 || sum_of(r, w, 0, &s2, &n2) < 0) {
        printf("%s w=%u: ERROR\n", name, w);
        return 1;
    }
    bool same = s1 == s2 && n1 == n2;
    printf("%s w=%u: records=%" PRIu64 " sum=%" PRIu64 " batch=%s\n", name, w, n2, s2,
           same ? "same aligned" : "MISMATCH");
    return same ? 0 : 1;
}

static em_rdd *vectors(em_context *sc, int64_t n, uint32_t parts, uint32_t w, int how)
{
    uint8_t b[8];
    em_store_le32(b, w);
    em_store_le32(b + 4, how == 0 ? 1 : 2);
    em_slice bl = em_slice_make(b, 8);
    em_rdd *r = em_range(sc, 0, n, 1, parts);
    em_rdd *v = how == 0   ? em_rdd_map_fixed(r, "bs_vec", bl, w)
                : how == 1 ? em_rdd_flat_map_fixed(r, "bs_vec", bl, w)
                           : em_rdd_map_partitions_fixed(r, "bs_vec_part", bl, false, w);
    em_rdd_release(r);
    return v;
}

static int check(em_context *sc, const char *ckpt)
{
    static const uint32_t widths[] = {8, 24, 96, 800};
    int bad = 0;
    em_err err = EM_ERR_INIT;
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
        uint32_t w = widths[i];
        em_rdd *v = em_rdd_cache(vectors(sc, 3001, 6, w, 0));
        bad += report("cached", v, w);
        em_rdd *e = em_rdd_cache(vectors(sc, 3, 5, w, 0));   /* empty partitions */
        bad += report("cached.sparse", e, w);
        em_rdd *d = em_rdd_persist(vectors(sc, 2000, 4, w, 1), EM_PERSIST_DISK_ONLY);
        bad += report("flat_map.disk_only", d, w);
        em_rdd *p = em_rdd_cache(vectors(sc, 1000, 3, w, 2));
        bad += report("map_partitions.cached", p, w);
        em_rdd *s = em_rdd_repartition(v, 4);
        bad += report("repartitioned", s, w);
        em_rdd *c = em_rdd_coalesce(s, 2, false);
        bad += report("repartitioned.coalesced", c, w);
        if (ckpt) {
            em_rdd *k = em_rdd_checkpoint(d, &err);
            if (!k) {
                printf("checkpoint w=%u: ERROR %s\n", w, err.msg);
                bad++;
            } else {
                bad += report("checkpointed", k, w);
                em_rdd_release(k);
            }
        }
        em_rdd_release(c);
        em_rdd_release(s);
        em_rdd_release(p);
        em_rdd_release(d);
        em_rdd_release(e);
        em_rdd_release(v);
    }
    printf("batchsum: %d mismatch(es)\n", bad);
    return bad ? 1 : 0;
}

/* ---------------------------------------------------------------- bench */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One gradient pass; g gets the sum of the partitions' gradients. */
static int grad_pass(em_rdd *x, uint32_t batches, const double *w, uint32_t d, double *g)
{
    size_t bl = 4 + (size_t)d * 8;
    uint8_t *blob = malloc(bl);
    em_store_le32(blob, batches);
    memcpy(blob + 4, w, (size_t)d * 8);
    em_rdd *m = em_rdd_map_partitions(x, "bs_grad", em_slice_make(blob, bl), false);
    em_records recs;
    em_err err = EM_ERR_INIT;
    int rc = em_rdd_collect(m, &recs, &err);
    memset(g, 0, (size_t)d * 8);
    for (size_t i = 0; rc == 0 && i < recs.n; i++)
        for (uint32_t j = 0; j < d; j++)
            g[j] += em_dec_f64(recs.recs[i].val.p + 8 * j);
    if (rc < 0)
        fprintf(stderr, "batchsum: %s\n", err.msg);
    em_records_destroy(&recs);
    em_rdd_release(m);
    free(blob);
    return rc;
}

static int bench(em_context *sc, int64_t rows, uint32_t d, int iters, uint32_t parts)
{
    if (d == 0 || d > 512 || iters < 1)
        return 2;
    em_rdd *x = em_rdd_cache(vectors(sc, rows, parts, 8 * d, 0));
    uint64_t n;
    em_err err = EM_ERR_INIT;
    if (em_rdd_count(x, &n, &err) < 0) {
        fprintf(stderr, "batchsum: %s\n", err.msg);
        return 1;
    }
    double *w = calloc(d, 8), *g[2] = {calloc(d, 8), calloc(d, 8)};
    double *t[2] = {calloc((size_t)iters, 8), calloc((size_t)iters, 8)};
    for (uint32_t j = 0; j < d; j++)
        w[j] = 0.01 * (j % 7);
    int rc = 0;
    for (int it = 0; it < iters && rc == 0; it++)
        for (uint32_t mode = 0; mode < 2 && rc == 0; mode++) {
            double t0 = now_s();
            rc = grad_pass(x, 1 - mode, w, d, g[mode]);
            t[mode][it] = now_s() - t0;
        }
    double diff = 0;
    for (uint32_t j = 0; j < d; j++)
        diff = fmax(diff, fabs(g[0][j] - g[1][j]));
    qsort(t[0], (size_t)iters, 8, cmp_d);
    qsort(t[1], (size_t)iters, 8, cmp_d);
    printf("bench rows=%" PRId64 " dim=%u parts=%u: batches %.4f s/pass, records %.4f s/pass "
           "(medians of %d), max |grad difference| %.3g\n", rows, d, parts, t[0][iters / 2],
           t[1][iters / 2], iters, diff);
    free(w);
    free(g[0]);
    free(g[1]);
    free(t[0]);
    free(t[1]);
    em_rdd_release(x);
    return rc < 0 ? 1 : 0;
}

int ember_main(em_context *sc, int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "check") == 0 && argc <= 3)
        return check(sc, argc == 3 ? argv[2] : NULL);
    if (argc == 6 && strcmp(argv[1], "bench") == 0)
        return bench(sc, strtoll(argv[2], NULL, 10), (uint32_t)strtoul(argv[3], NULL, 10),
                     atoi(argv[4]), (uint32_t)strtoul(argv[5], NULL, 10));
    fprintf(stderr, "usage: batchsum check [ckpt] | batchsum bench ROWS DIM ITERS PARTS\n");
    return 2;
}
