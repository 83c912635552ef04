/* examples/aggacc.c - in-place aggregation checked against the old path, for the tests:
 *   ember run-example aggacc [SLOW_US [ROUNDS]]
 * On random inputs (fixed seeds) computes each aggregation both ways and compares bytes:
 *   dense    FIXED rows of D doubles: aggregate_acc (a batch at a time) vs aggregate;
 *   sparse   BYTES rows of (u32 index, f64 value) pairs: aggregate_acc vs aggregate;
 *   bykey    KV (key, f64): aggregate_by_key_acc (sum, count, max; init sets max = -inf) vs
 *            aggregate_by_key with the same zero;
 *   tree     tree_aggregate_acc with small partials (merged on the driver) and with large
 *            ones (2.4 MB accumulators x 16 partitions: a tree on the executors) vs
 *            aggregate_acc and tree_aggregate;
 *   bcast    a driver-side merge (and an old-path combine) that reads a broadcast;
 *   empty    an empty dataset gives the initial accumulator.
 * Values are small integers held in doubles, so every sum is exact whatever the order.
 * SLOW_US (default 0): microseconds slept per 1000 records folded, so that a test can kill an
 * executor mid-aggregate; ROUNDS (default 1): times the whole check runs. Prints one line per
 * check and exits 1 on the first difference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);
int aa_vec_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
               em_err *err);
int aa_vec_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err);
int aa_vec_seq_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int aa_vec_comb_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int aa_kv_init(const em_fn_ctx *c, void *acc, size_t size, em_err *err);
int aa_kv_add(const em_fn_ctx *c, void *acc, size_t size, const em_rec *in, em_err *err);
int aa_kv_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err);
int aa_kv_seq_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int aa_kv_comb_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);

/* Context blob of every function: u32 slow_us, u32 broadcast id (0: none). A function given
 * a broadcast id checks the broadcast holds the f64 1.0 (and fails otherwise). */
typedef struct aa_ctx {
    uint32_t slow_us, bcast;
} aa_ctx;

static aa_ctx get_ctx(const em_fn_ctx *c)
{
    aa_ctx x = {0, 0};
    if (c->blob.n == sizeof x)
        memcpy(&x, c->blob.p, sizeof x);
    return x;
}

static int check_bcast(const em_fn_ctx *c, em_err *err)
{
    aa_ctx x = get_ctx(c);
    em_slice v;
    if (!x.bcast)
        return 0;
    int rc = em_task_broadcast(c->task, x.bcast, &v, err);
    if (rc < 0)
        return rc;
    if (v.n != 8 || em_dec_f64(v.p) != 1.0)
        return em_err_set(err, EM_ECORRUPT, "aggacc: broadcast %u holds the wrong value",
                          x.bcast);
    return 0;
}

static void slow(const em_fn_ctx *c, uint64_t nrecs)
{
    aa_ctx x = get_ctx(c);
    if (x.slow_us)
        usleep((useconds_t)(x.slow_us * nrecs / 1000));
}

/* Adds one record to a vector accumulator of n - 1 sums and a count: a FIXED/BYTES dense
 * row of doubles when its size is 8 * (n - 1), else sparse (u32 index, f64 value) pairs. */
static int vec_add(double *acc, size_t n, em_slice r, em_err *err)
{
    size_t d = n - 1;
    if (r.n == 8 * d) {
        for (size_t i = 0; i < d; i++)
            acc[i] += em_dec_f64(r.p + 8 * i);
    } else {
        if (r.n % 12)
            return em_err_set(err, EM_ECORRUPT, "aggacc: record of %zu bytes", r.n);
        for (size_t k = 0; k < r.n; k += 12) {
            uint32_t ix = em_load_le32(r.p + k);
            if (ix >= d)
                return em_err_set(err, EM_ECORRUPT, "aggacc: index %u", ix);
            acc[ix] += em_dec_f64(r.p + k + 4);
        }
    }
    acc[d] += 1;
    return 0;
}

int aa_vec_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
               em_err *err)
{
    em_batch_iter it;
    em_rec r;
    int rc;
    if (((uintptr_t)acc & 15) || (in->kind == EM_REC_FIXED && ((uintptr_t)in->data & 63)))
        return em_err_set(err, EM_EINVAL, "aggacc: misaligned accumulator or batch");
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    uint64_t n = 0;
    while (em_batch_iter_next(&it, &r)) {
        if ((rc = vec_add(acc, size / 8, r.val, err)) < 0)
            return rc;
        n++;
    }
    if (n != in->nrecs)
        return em_err_set(err, EM_ECORRUPT, "aggacc: batch of %llu records holds %llu",
                          (unsigned long long)in->nrecs, (unsigned long long)n);
    slow(c, n);
    return 0;
}

int aa_vec_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err)
{
    int rc = check_bcast(c, err);
    double *a = acc;
    const uint8_t *o = other;
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < size / 8; i++)
        a[i] += em_dec_f64(o + 8 * i);
    return 0;
}

static int copy_to(em_vbuf *out, em_slice a, double **d, em_err *err)
{
    if (em_vbuf_append(out, a.p, a.n) < 0)
        return em_err_set(err, EM_ENOMEM, "aggacc: out of memory");
    *d = (double *)(void *)out->data;
    return 0;
}

int aa_vec_seq_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    double *d = NULL;
    int rc = copy_to(out, a, &d, err);
    if (rc == 0)
        rc = vec_add(d, a.n / 8, b, err);
    slow(c, 1);
    return rc;
}

int aa_vec_comb_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    double *d = NULL;
    int rc = check_bcast(c, err);
    if (rc == 0 && b.n != a.n)
        rc = em_err_set(err, EM_ECORRUPT, "aggacc: %zu and %zu bytes", a.n, b.n);
    if (rc == 0 && (rc = copy_to(out, a, &d, err)) == 0)
        for (size_t i = 0; i < a.n / 8; i++)
            d[i] += em_dec_f64(b.p + 8 * i);
    return rc;
}

/* By key: (sum, count, max) of f64 values. */
int aa_kv_init(const em_fn_ctx *c, void *acc, size_t size, em_err *err)
{
    (void)c;
    if (size != 24)
        return em_err_set(err, EM_EINVAL, "aggacc: by-key accumulator of %zu bytes", size);
    ((double *)acc)[2] = -INFINITY;
    return 0;
}

static void kv_fold(double *a, double v)
{
    a[0] += v;
    a[1] += 1;
    a[2] = v > a[2] ? v : a[2];
}

int aa_kv_add(const em_fn_ctx *c, void *acc, size_t size, const em_rec *in, em_err *err)
{
    if (size != 24 || in->val.n != 8 || !in->key.p || ((uintptr_t)acc & 15))
        return em_err_set(err, EM_EINVAL, "aggacc: by-key add of a %zu-byte value (or to a "
                          "misaligned accumulator)", in->val.n);
    kv_fold(acc, em_dec_f64(in->val.p));
    slow(c, 1);
    return 0;
}

static void kv_merge(double *a, const uint8_t *o)
{
    a[0] += em_dec_f64(o);
    a[1] += em_dec_f64(o + 8);
    double m = em_dec_f64(o + 16);
    a[2] = m > a[2] ? m : a[2];
}

int aa_kv_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size, em_err *err)
{
    (void)c;
    if (size != 24 || ((uintptr_t)acc & 15) || ((uintptr_t)other & 15))
        return em_err_set(err, EM_EINVAL, "aggacc: by-key merge of %zu bytes (or misaligned)",
                          size);
    kv_merge(acc, other);
    return 0;
}

int aa_kv_seq_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    double *d = NULL;
    int rc = copy_to(out, a, &d, err);
    if (rc == 0)
        kv_fold(d, em_dec_f64(b.p));
    slow(c, 1);
    return rc;
}

int aa_kv_comb_old(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    double *d = NULL;
    (void)c;
    int rc = copy_to(out, a, &d, err);
    if (rc == 0)
        kv_merge(d, b.p);
    return rc;
}

/* ---------------------------------------------------------------- data */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return rng_state >> 33;
}

static em_rdd *dense_rows(em_context *sc, size_t n, size_t d, uint32_t parts, uint8_t **buf)
{
    em_rec *recs = calloc(n ? n : 1, sizeof *recs);
    *buf = malloc(n * d * 8 + 1);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++)
            em_enc_f64(*buf + (i * d + j) * 8, (double)((int)(rnd() % 17) - 8));
        recs[i].val = em_slice_make(*buf + i * d * 8, d * 8);
    }
    em_rdd *r = em_parallelize(sc, EM_REC_FIXED, (uint32_t)(d * 8), recs, n, parts);
    free(recs);
    return r;
}

static em_rdd *sparse_rows(em_context *sc, size_t n, size_t d, uint32_t parts, uint8_t **buf)
{
    em_rec *recs = calloc(n ? n : 1, sizeof *recs);
    *buf = malloc(n * 8 * 12 + 1);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nnz = rnd() % 8, start = off;   /* 0..7 pairs: empty rows too */
        for (size_t k = 0; k < nnz; k++, off += 12) {
            em_store_le32(*buf + off, (uint32_t)(rnd() % d));
            em_enc_f64(*buf + off + 4, (double)(rnd() % 9));
        }
        recs[i].val = em_slice_make(*buf + start, off - start);
    }
    em_rdd *r = em_parallelize(sc, EM_REC_BYTES, 0, recs, n, parts);
    free(recs);
    return r;
}

static em_rdd *kv_rows(em_context *sc, size_t n, uint32_t parts, uint8_t **buf)
{
    em_rec *recs = calloc(n ? n : 1, sizeof *recs);
    *buf = malloc(n * 16 + 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = *buf + 16 * i;
        snprintf((char *)p, 8, "k%03u", (unsigned)(rnd() % 97));
        em_enc_f64(p + 8, (double)((int)(rnd() % 101) - 50));
        recs[i].key = em_slice_make(p, strlen((char *)p));
        recs[i].val = em_slice_make(p + 8, 8);
    }
    em_rdd *r = em_parallelize(sc, EM_REC_KV, 0, recs, n, parts);
    free(recs);
    return r;
}

/* ---------------------------------------------------------------- checks */

static int failed;

static void same(const char *what, int rc1, const em_vbuf *a, int rc2, const em_vbuf *b,
                 const em_err *err)
{
    if (rc1 < 0 || rc2 < 0) {
        printf("%s: FAILED: %s\n", what, err->msg);
        failed = 1;
    } else if (a->len != b->len || memcmp(a->data, b->data, a->len) != 0) {
        printf("%s: DIFFERENT (%zu vs %zu bytes)\n", what, a->len, b->len);
        failed = 1;
    } else {
        printf("%s: equal\n", what);
    }
}

/* aggregate_acc (and tree_aggregate_acc at depth 2) vs the old aggregate. */
static void check_vec(const char *what, em_rdd *r, size_t d, aa_ctx x)
{
    em_err err = EM_ERR_INIT;
    em_vbuf a, b, t;
    em_slice ctx = em_slice_make(&x, sizeof x);
    em_agg g = {.size = 8 * (d + 1), .seq = "aa_vec_seq", .merge = "aa_vec_merge", .ctx = ctx};
    uint8_t *zero = calloc(1, g.size);
    int rc1 = em_rdd_aggregate_acc(r, &g, &a, &err);
    int rc2 = rc1 < 0 ? 0
                      : em_rdd_aggregate(r, em_slice_make(zero, g.size), "aa_vec_seq_old",
                                         "aa_vec_comb_old", ctx, &b, &err);
    if (rc1 < 0)
        em_vbuf_init(&b);
    same(what, rc1, &a, rc2, &b, &err);
    em_vbuf_destroy(&b);
    char name[64];
    snprintf(name, sizeof name, "%s tree_aggregate_acc", what);
    rc2 = em_rdd_tree_aggregate_acc(r, &g, 2, &t, &err);
    same(name, rc1, &a, rc2, &t, &err);
    em_vbuf_destroy(&t);
    snprintf(name, sizeof name, "%s tree_aggregate", what);
    rc2 = em_rdd_tree_aggregate(r, em_slice_make(zero, g.size), "aa_vec_seq_old",
                                "aa_vec_comb_old", ctx, 2, &t, &err);
    same(name, rc1, &a, rc2, &t, &err);
    em_vbuf_destroy(&t);
    em_vbuf_destroy(&a);
    free(zero);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted "key=sum,count,max" lines of a by-key result. */
static char *kv_text(em_rdd *r, em_err *err)
{
    em_records recs;
    if (em_rdd_collect(r, &recs, err) < 0)
        return NULL;
    char **lines = calloc(recs.n + 1, sizeof *lines);
    size_t total = 1;
    for (size_t i = 0; i < recs.n; i++) {
        char buf[128];
        const uint8_t *v = recs.recs[i].val.p;
        snprintf(buf, sizeof buf, "%.*s=%g,%g,%g\n", (int)recs.recs[i].key.n,
                 (const char *)recs.recs[i].key.p, em_dec_f64(v), em_dec_f64(v + 8),
                 em_dec_f64(v + 16));
        lines[i] = strdup(buf);
        total += strlen(buf);
    }
    qsort(lines, recs.n, sizeof *lines, cmp_str);
    char *s = calloc(1, total);
    for (size_t i = 0; i < recs.n; i++) {
        strcat(s, lines[i]);
        free(lines[i]);
    }
    free(lines);
    em_records_destroy(&recs);
    return s;
}

static void check_bykey(em_context *sc, em_rdd *r, aa_ctx x)
{
    em_err err = EM_ERR_INIT;
    em_slice ctx = em_slice_make(&x, sizeof x);
    em_agg g = {.size = 24, .init = "aa_kv_init", .seq = "aa_kv_add", .merge = "aa_kv_merge",
                .ctx = ctx};
    uint8_t zero[24] = {0};
    em_enc_f64(zero + 16, -INFINITY);
    (void)sc;
    em_rdd *na = em_rdd_aggregate_by_key_acc(r, &g, 3);
    em_rdd *ob = em_rdd_aggregate_by_key(r, em_slice_make(zero, 24), "aa_kv_seq_old",
                                         "aa_kv_comb_old", ctx, 3);
    char *a = kv_text(na, &err), *b = a ? kv_text(ob, &err) : NULL;
    if (!a || !b) {
        printf("bykey: FAILED: %s\n", err.msg);
        failed = 1;
    } else if (strcmp(a, b) != 0) {
        printf("bykey: DIFFERENT\n");
        failed = 1;
    } else {
        printf("bykey: equal (%zu bytes of results)\n", strlen(a));
    }
    free(a);
    free(b);
    em_rdd_release(na);
    em_rdd_release(ob);
}

static void check_empty(em_context *sc)
{
    em_err err = EM_ERR_INIT;
    em_vbuf a;
    em_rdd *r = em_parallelize(sc, EM_REC_KV, 0, NULL, 0, 4);
    em_agg g = {.size = 24, .init = "aa_kv_init", .seq = "aa_vec_seq", .merge = "aa_kv_merge"};
    int rc = em_rdd_aggregate_acc(r, &g, &a, &err);
    if (rc < 0 || a.len != 24 || em_dec_f64(a.data) != 0 || em_dec_f64(a.data + 16) != -INFINITY) {
        printf("empty: FAILED: %s\n", rc < 0 ? err.msg : "not the initial accumulator");
        failed = 1;
    } else {
        printf("empty: initial accumulator\n");
    }
    em_vbuf_destroy(&a);
    em_rdd_release(r);
}

static void one_round(em_context *sc, uint32_t slow_us, uint32_t bcast)
{
    uint8_t *b1, *b2, *b3, *b4;
    aa_ctx x = {slow_us, 0}, xb = {slow_us, bcast};
    rng_state = 42;
    em_rdd *dense = em_rdd_cache(dense_rows(sc, 20000, 16, 8, &b1));
    check_vec("dense", dense, 16, x);
    check_vec("dense, merge reads a broadcast", dense, 16, xb);
    em_rdd *sparse = sparse_rows(sc, 20000, 50, 6, &b2);
    check_vec("sparse", sparse, 50, x);
    /* 16 partitions x 2.4 MB accumulators: 38 MB of partials, more than the driver merges
     * directly (32 MiB, engine/api/aggregate.c), so a tree on the executors */
    em_rdd *wide = sparse_rows(sc, 2000, 300000, 16, &b3);
    check_vec("sparse, large accumulators", wide, 300000, x);
    em_rdd *kv = kv_rows(sc, 30000, 5, &b4);
    check_bykey(sc, kv, x);
    check_empty(sc);
    em_rdd_release(dense);
    em_rdd_release(sparse);
    em_rdd_release(wide);
    em_rdd_release(kv);
    free(b1);
    free(b2);
    free(b3);
    free(b4);
}

int ember_main(em_context *sc, int argc, char **argv)
{
    uint32_t slow_us = argc > 1 ? (uint32_t)atoi(argv[1]) : 0;
    int rounds = argc > 2 ? atoi(argv[2]) : 1;
    em_err err = EM_ERR_INIT;
    uint8_t one[8];
    em_enc_f64(one, 1.0);
    uint32_t bcast = em_broadcast(sc, em_slice_make(one, 8), &err);
    if (!bcast) {
        fprintf(stderr, "aggacc: broadcast: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < rounds && !failed; i++)
        one_round(sc, slow_us, bcast);
    printf(failed ? "aggacc: DIFFERENCES\n" : "aggacc: all equal\n");
    return failed;
}
