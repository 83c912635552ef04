/* examples/bcast.c - broadcasts, large task results and large context blobs, as a check
 * and as a benchmark (tests/integration/test_broadcast.sh runs the checks):
 *   ember run-example bcast check
 *       broadcasts of 0 B, 1 B, 64 MiB + 1 and SIZE_MB (default 200) MiB: every task's
 *       crc32c of the value equals the driver's; each executor fetches each value once
 *       (em_context_stats.broadcast_fetches), also with several tasks per executor, and
 *       none at all of 256 KiB or less (pushed to every executor when made);
 *       a 40 MiB value read by one executor first and by the others after it;
 *       after em_broadcast_destroy the executors' block stores are empty again
 *       (executor_store_bytes); then a task result of SIZE_MB MiB, byte-identical.
 *   ember run-example bcast bench MIB REPS
 *       broadcast MIB MiB and run a 2-task job reading it (one task per executor in
 *       local-cluster[2,1]), REPS times; prints the median job time, a no-broadcast job's
 *       time, and MB/s per executor.
 *   ember run-example bcast blob MB ITERS
 *       a 32-task job whose function has an MB-megabyte context blob (different bytes each
 *       time), ITERS times, beside the same job with a 1-byte blob; prints both medians.
 *   ember run-example bcast hugeblob MB
 *       a fold whose zero value (MB MiB) would make its stage JSON too large for one frame
 *       if it were inline: it travels beside the JSON ("zero_ref", like context blobs), so
 *       the fold succeeds; exit 0 when its result is the zero value, byte for byte.
 * Exit status 0 when every check passed; 1 and a line saying which failed otherwise. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);
int bc_check(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err);
int bc_touch(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err);
int bc_big(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err);
int bc_blob(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err);
int bc_longer(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);

#define MIB ((size_t)1 << 20)
/* Broadcasts up to this size reach the executors when made (em_cluster_push_broadcast,
 * EM__BPUSH_MAX in engine/executor/protocol.h): no executor fetches them. */
#define PUSHED_MAX ((size_t)256 << 10)

/* n deterministic bytes (xorshift64 seeded by seed) into p. */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
    for (; i < n; i++)
        p[i] = (uint8_t)(x >> (8 * (i % 8)));
}

static uint32_t blob_u32(em_slice b)
{
    uint32_t v = 0;
    if (b.n == 4)
        memcpy(&v, b.p, 4);
    return v;
}

/* Emits (crc32c, length) of broadcast blob_u32(ctx) as 12 bytes. */
int bc_check(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err)
{
    (void)index;
    (void)in;
    em_slice v;
    int rc = em_task_broadcast(c->task, blob_u32(c->blob), &v, err);
    if (rc < 0)
        return rc;
    uint8_t rec[12];
    uint32_t crc = em_crc32c(0, v.p, v.n);
    uint64_t n = v.n;
    memcpy(rec, &crc, 4);
    memcpy(rec + 4, &n, 8);
    return em_emit_val(out, em_slice_make(rec, sizeof rec), err);
}

/* Reads broadcast blob_u32(ctx) and emits its length only (the benchmark's task). */
int bc_touch(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err)
{
    (void)index;
    (void)in;
    em_slice v;
    int rc = em_task_broadcast(c->task, blob_u32(c->blob), &v, err);
    if (rc < 0)
        return rc;
    uint64_t n = v.n;
    return em_emit_val(out, em_slice_make(&n, 8), err);
}

/* Partition 0 emits one record of the blob's u64 bytes (fill seeded by the size). */
int bc_big(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err)
{
    (void)in;
    uint64_t n = 0;
    if (c->blob.n == 8)
        memcpy(&n, c->blob.p, 8);
    if (index != 0)
        return 0;
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        return em_err_set(err, EM_ENOMEM, "bc_big: %" PRIu64 " bytes", n);
    fill(p, n, n);
    int rc = em_emit_val(out, em_slice_make(p, n), err);
    free(p);
    return rc;
}

/* Emits the context blob's length and first byte (so the blob is needed). */
int bc_blob(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out, em_err *err)
{
    (void)index;
    (void)in;
    uint64_t v[2] = {c->blob.n, c->blob.n ? c->blob.p[0] : 0};
    return em_emit_val(out, em_slice_make(v, sizeof v), err);
}

static double now_s(void)
{
    return (double)em_now_ns() / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs fn over nparts partitions with ctx and collects; returns records or -1. */
static int run_job(em_context *sc, uint32_t nparts, const char *fn, em_slice ctx,
                   em_records *out, em_err *err)
{
    em_rdd *r = em_range(sc, 0, nparts, 1, nparts);
    em_rdd *m = em_rdd_map_partitions(r, fn, ctx, false);
    int rc = em_rdd_collect(m, out, err);
    em_rdd_release(m);
    em_rdd_release(r);
    return rc;
}

static int failf(const char *what, const em_err *err)
{
    printf("bcast: FAILED: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    return 1;
}

/* Broadcasts n bytes of fill(seed); *crc = their crc32c. The id, 0 on failure (err set). */
static uint32_t broadcast_filled(em_context *sc, size_t n, uint64_t seed, uint32_t *crc,
                                 em_err *err)
{
    uint8_t *val = malloc(n ? n : 1);
    if (!val) {
        em_err_set(err, EM_ENOMEM, "out of memory for %zu bytes", n);
        return 0;
    }
    fill(val, n, seed);
    *crc = em_crc32c(0, val, n);
    uint32_t id = em_broadcast(sc, em_slice_make(val, n), err);
    free(val);
    return id;
}

/* Each of the nparts bc_check results (crc32c, length of the task's view) is (want, n). */
static bool views_ok(const em_records *rs, size_t nparts, uint32_t want, uint64_t n)
{
    if (rs->n != nparts)
        return false;
    for (size_t i = 0; i < rs->n; i++) {
        uint32_t crc;
        uint64_t len;
        memcpy(&crc, rs->recs[i].val.p, 4);
        memcpy(&len, rs->recs[i].val.p + 4, 8);
        if (crc != want || len != n)
            return false;
    }
    return true;
}

/* Broadcasts n bytes, checks every task's view on nparts partitions, destroys it. */
static int check_one(em_context *sc, size_t n, uint32_t nparts, uint64_t nexec)
{
    em_err err = EM_ERR_INIT;
    uint32_t want;
    em_context_stats s0, s1;
    em_context_stats_get(sc, &s0);
    uint32_t id = broadcast_filled(sc, n, n + 7, &want, &err);
    if (!id)
        return failf("em_broadcast", &err);
    em_records rs = {0};
    char what[128];
    snprintf(what, sizeof what, "broadcast of %zu bytes on %u tasks", n, nparts);
    if (run_job(sc, nparts, "bc_check", em_slice_make(&id, 4), &rs, &err) < 0)
        return failf(what, &err);
    int bad = !views_ok(&rs, nparts, want, n);
    em_records_destroy(&rs);
    if (bad)
        return failf(what, NULL);
    em_context_stats_get(sc, &s1);
    uint64_t fetches = s1.broadcast_fetches - s0.broadcast_fetches;
    if (nexec && fetches != (n <= PUSHED_MAX ? 0 : nexec)) {
        printf("bcast: FAILED: %s: %" PRIu64 " fetches by %" PRIu64 " executors\n", what,
               fetches, nexec);
        return 1;
    }
    em_broadcast_destroy(sc, id);
    printf("bcast: %s: ok (%" PRIu64 " fetches)\n", what, fetches);
    return 0;
}

/* A value one executor reads alone first (a 1-task job) and the others after it (an
 * 8-task job): the later fetches find the driver's few sealed pieces moved on past the
 * first ones (sealed links), so their pieces are sealed again for them; every task's view
 * must still be the value, and each executor fetches it once. */
static int check_lagging(em_context *sc, uint64_t nexec)
{
    em_err err = EM_ERR_INIT;
    size_t n = 40 * MIB + 3;   /* 11 pieces of 4 MiB: more than the driver keeps sealed */
    uint32_t want;
    em_context_stats s0, s1;
    em_context_stats_get(sc, &s0);
    uint32_t id = broadcast_filled(sc, n, 99, &want, &err);
    if (!id)
        return failf("em_broadcast (lagging)", &err);
    uint32_t nparts[2] = {1, 8};
    for (int j = 0; j < 2; j++) {
        em_records rs = {0};
        if (run_job(sc, nparts[j], "bc_check", em_slice_make(&id, 4), &rs, &err) < 0)
            return failf("lagging executor: job", &err);
        int bad = !views_ok(&rs, nparts[j], want, n);
        em_records_destroy(&rs);
        if (bad)
            return failf("lagging executor: a task saw other bytes", NULL);
    }
    em_context_stats_get(sc, &s1);
    uint64_t fetches = s1.broadcast_fetches - s0.broadcast_fetches;
    if (nexec && fetches != nexec) {
        printf("bcast: FAILED: lagging executor: %" PRIu64 " fetches by %" PRIu64
               " executors\n", fetches, nexec);
        return 1;
    }
    em_broadcast_destroy(sc, id);
    printf("bcast: broadcast of %zu bytes read by one executor, then the others: ok (%" PRIu64
           " fetches)\n", n, fetches);
    return 0;
}

static int check_big_result(em_context *sc, size_t n)
{
    em_err err = EM_ERR_INIT;
    uint64_t n64 = n;
    em_records rs = {0};
    if (run_job(sc, 2, "bc_big", em_slice_make(&n64, 8), &rs, &err) < 0)
        return failf("large task result", &err);
    uint8_t *val = malloc(n ? n : 1);
    fill(val, n, n);
    int bad = rs.n != 1 || rs.recs[0].val.n != n ||
              em_crc32c(0, rs.recs[0].val.p, n) != em_crc32c(0, val, n);
    free(val);
    em_records_destroy(&rs);
    if (bad)
        return failf("large task result: bytes differ", NULL);
    printf("bcast: task result of %zu bytes: ok\n", n);
    return 0;
}

static int check(em_context *sc, size_t big_mib)
{
    em_err err = EM_ERR_INIT;
    em_records rs = {0};
    uint32_t none = 0;
    /* warm up: both executors have run a task (and report their store size) */
    if (run_job(sc, 4, "bc_blob", em_slice_make(&none, 4), &rs, &err) < 0)
        return failf("warm-up job", &err);
    em_records_destroy(&rs);
    em_context_stats st;
    em_context_stats_get(sc, &st);
    uint64_t nexec = st.executors;
    size_t sizes[] = {0, 1, 64 * MIB + 1, big_mib * MIB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (check_one(sc, sizes[i], 8, nexec))
            return 1;
    if (check_lagging(sc, nexec))
        return 1;
    /* after destroy, a job later the executors hold no broadcast bytes */
    if (run_job(sc, 4, "bc_blob", em_slice_make(&none, 4), &rs, &err) < 0)
        return failf("job after destroy", &err);
    em_records_destroy(&rs);
    em_context_stats_get(sc, &st);
    if (nexec && st.executor_store_bytes != 0) {
        printf("bcast: FAILED: executors hold %" PRIu64 " bytes after destroy\n",
               st.executor_store_bytes);
        return 1;
    }
    printf("bcast: executors' stores empty after destroy: ok\n");
    return check_big_result(sc, big_mib * MIB);
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static int bench(em_context *sc, size_t mib, int reps)
{
    em_err err = EM_ERR_INIT;
    size_t n = mib * MIB;
    uint8_t *val = malloc(n);
    fill(val, n, 1);
    double *tb = calloc((size_t)reps, sizeof *tb), *t0 = calloc((size_t)reps, sizeof *t0);
    double *tc = calloc((size_t)reps, sizeof *tc);
    em_records rs = {0};
    uint32_t none = 0;
    for (int r = -1; r < reps; r++) {   /* r = -1: warm-up */
        double a = now_s();
        if (run_job(sc, 2, "bc_blob", em_slice_make(&none, 4), &rs, &err) < 0)
            return failf("bench: empty job", &err);
        em_records_destroy(&rs);
        double b = now_s();
        uint32_t id = em_broadcast(sc, em_slice_make(val, n), &err);
        double b2 = now_s();
        if (!id || run_job(sc, 2, "bc_touch", em_slice_make(&id, 4), &rs, &err) < 0)
            return failf("bench: broadcast job", &err);
        em_records_destroy(&rs);
        double c = now_s();
        em_broadcast_destroy(sc, id);
        printf("bcast bench: %s %zu MiB: em_broadcast %.1f ms, job reading it %.1f ms, "
               "empty job %.1f ms\n", r < 0 ? "warm-up" : "rep", mib, (b2 - b) * 1e3,
               (c - b2) * 1e3, (b - a) * 1e3);
        if (r >= 0) {
            t0[r] = b - a;
            tb[r] = c - b2;
            tc[r] = b2 - b;
        }
    }
    double mb = median(tb, reps), m0 = median(t0, reps), mc = median(tc, reps);
    printf("bcast bench: %zu MiB: em_broadcast %.1f ms, job reading it %.1f ms (medians of "
           "%d), empty job %.1f ms: %.0f MB/s per executor\n", mib, mc * 1e3, mb * 1e3, reps,
           m0 * 1e3, (double)n / 1e6 / mb);
    free(tc);
    free(val);
    free(tb);
    free(t0);
    return 0;
}

static int blob(em_context *sc, size_t mb, int iters)
{
    em_err err = EM_ERR_INIT;
    size_t n = mb * 1000000;
    uint8_t *b = malloc(n ? n : 1);
    fill(b, n, 3);
    double *tb = calloc((size_t)iters, sizeof *tb), *t0 = calloc((size_t)iters, sizeof *t0);
    em_records rs = {0};
    for (int r = -1; r < iters; r++) {
        double a = now_s();
        if (run_job(sc, 32, "bc_blob", em_slice_make(b, 1), &rs, &err) < 0)
            return failf("blob: small job", &err);
        em_records_destroy(&rs);
        double m = now_s();
        if (n)
            b[n - 1] = (uint8_t)r;   /* a new blob each time: nothing cached helps */
        if (run_job(sc, 32, "bc_blob", em_slice_make(b, n), &rs, &err) < 0)
            return failf("blob: job", &err);
        em_records_destroy(&rs);
        double c = now_s();
        if (r >= 0) {
            t0[r] = m - a;
            tb[r] = c - m;
        }
    }
    printf("bcast blob: 32 tasks: %zu MB blob %.1f ms, 1-byte blob %.1f ms (medians of %d)\n",
           mb, median(tb, iters) * 1e3, median(t0, iters) * 1e3, iters);
    free(b);
    free(tb);
    free(t0);
    return 0;
}

/* Fold function: the longer of a and b (a on a tie). */
int bc_longer(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    em_slice w = b.n > a.n ? b : a;
    if (em_vbuf_reserve(out, w.n) < 0)
        return em_err_set(err, EM_ENOMEM, "bc_longer: %zu bytes", w.n);
    memcpy(out->data + out->len, w.p, w.n);
    out->len += w.n;
    return 0;
}

/* A fold whose zero value is mb MiB: its result must be the zero value. */
static int hugeblob(em_context *sc, size_t mb)
{
    em_err err = EM_ERR_INIT;
    size_t n = mb * MIB;
    uint8_t *b = malloc(n ? n : 1);
    fill(b, n, 11);
    em_vbuf out;
    em_vbuf_init(&out);
    em_rdd *r = em_range(sc, 0, 2, 1, 2);
    int rc = em_rdd_fold(r, em_slice_make(b, n), "bc_longer", em_slice_make(NULL, 0), &out,
                         &err);
    bool same = rc == 0 && out.len == n && (n == 0 || memcmp(out.data, b, n) == 0);
    em_rdd_release(r);
    em_vbuf_destroy(&out);
    free(b);
    if (rc < 0)
        return failf("hugeblob: fold", &err);
    if (!same)
        return failf("hugeblob: the fold's result is not its zero value", NULL);
    printf("bcast hugeblob: fold with a %zu MiB zero value: ok\n", mb);
    return 0;
}

int ember_main(em_context *sc, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "check") == 0)
        return check(sc, argc >= 3 ? (size_t)atoll(argv[2]) : 200);
    if (argc == 4 && strcmp(argv[1], "bench") == 0)
        return bench(sc, (size_t)atoll(argv[2]), atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "blob") == 0)
        return blob(sc, (size_t)atoll(argv[2]), atoi(argv[3]));
    if (argc == 3 && strcmp(argv[1], "hugeblob") == 0)
        return hugeblob(sc, (size_t)atoll(argv[2]));
    fprintf(stderr, "usage: bcast check [SIZE_MB] | bench MIB REPS | blob MB ITERS | "
                    "hugeblob MIB\n");
    return 2;
}
