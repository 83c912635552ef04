/* examples/faultjobs.c - small jobs for cluster recovery tests:
 *   ember run-example faultjobs repartition INPUT OUTDIR [SLOW_US]
 *       lines -> round-robin repartition(3) -> (line, 1) -> reduce_by_key -> "line\tcount"
 *   ember run-example faultjobs randkey INPUT OUTDIR [SLOW_US]
 *       lines -> (hash-random key in 0..63, line length) -> reduce_by_key -> "key\tsum"
 *   ember run-example faultjobs abort INPUT
 *       counts the lines, but every task calls abort() after writing "fj_abort: aborting
 *       on purpose" to stderr: the job fails with its executors' cause (issue 16)
 * SLOW_US (default 0): microseconds slept per 1000 input records, so that a test can kill
 * an executor in the middle of a stage. Outputs do not depend on partitioning or on where
 * tasks ran, so every run (with or without failures) must give the same files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);
int fj_slow(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int fj_randkey(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int fj_format(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int fj_abort(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

static _Thread_local uint64_t fj_seen;

/* Identity; sleeps blob-many microseconds every 1000 records. */
int fj_slow(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    if (c->blob.n == 8 && ++fj_seen % 1000 == 0) {
        uint64_t us = (uint64_t)em_dec_i64(c->blob.p);
        if (us)
            usleep((useconds_t)us);
    }
    return em_emit(out, in, err);
}

/* line -> (em_enc_i64(hash(line, partition) % 64), em_enc_i64(length)) */
int fj_randkey(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    uint8_t k[8], v[8];
    uint32_t part = c->task ? em_task_partition(c->task) : 0;
    em_enc_i64(k, (int64_t)(em_hash64(in->val.p, in->val.n, part + 1) % 64));
    em_enc_i64(v, (int64_t)in->val.n);
    return em_emit_kv(out, em_slice_make(k, 8), em_slice_make(v, 8), err);
}

/* (key, i64) -> "key\tvalue"; keys of 8 bytes are printed as numbers. */
int fj_format(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    if (in->val.n != 8)
        return em_err_set(err, EM_ECORRUPT, "fj_format: value of %zu bytes", in->val.n);
    em_vbuf b;
    em_vbuf_init(&b);
    int rc;
    if (in->key.n == 8 && c->blob.n == 1)
        rc = em_vbuf_printf(&b, "%lld", (long long)em_dec_i64(in->key.p));
    else
        rc = em_vbuf_append(&b, in->key.p, in->key.n);
    if (rc == 0)
        rc = em_vbuf_printf(&b, "\t%lld", (long long)em_dec_i64(in->val.p));
    if (rc == 0)
        rc = em_emit_val(out, em_slice_make(b.data, b.len), err);
    else
        rc = em_err_set(err, EM_ENOMEM, "fj_format: out of memory");
    em_vbuf_destroy(&b);
    return rc;
}

/* Kills its process: what a crashing job library does to an executor. */
int fj_abort(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c, (void)in, (void)out, (void)err;
    fprintf(stderr, "fj_abort: aborting on purpose\n");
    fflush(stderr);
    abort();
}

int ember_main(em_context *sc, int argc, char **argv)
{
    em_err err = EM_ERR_INIT;
    if (argc == 3 && strcmp(argv[1], "abort") == 0) {
        uint64_t n = 0;
        em_rdd *r = em_rdd_map(em_text_file(sc, argv[2], 2), "fj_abort",
                               em_slice_make(NULL, 0));
        if (em_rdd_count(r, &n, &err) < 0) {
            fprintf(stderr, "faultjobs: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: faultjobs repartition|randkey INPUT OUTDIR [SLOW_US] | "
                "abort INPUT\n");
        return 2;
    }
    uint8_t slow[8];
    em_enc_i64(slow, argc == 5 ? atoll(argv[4]) : 0);
    bool rr = strcmp(argv[1], "repartition") == 0;
    if (!rr && strcmp(argv[1], "randkey") != 0) {
        fprintf(stderr, "faultjobs: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    em_rdd *lines = em_text_file(sc, argv[2], 4);
    lines = em_rdd_map(lines, "fj_slow", em_slice_make(slow, 8));
    em_rdd *pairs;
    uint8_t numeric = 1;
    if (rr) {
        em_rdd *spread = em_rdd_repartition(lines, 3);
        spread = em_rdd_map(spread, "fj_slow", em_slice_make(slow, 8));
        pairs = em_rdd_map(spread, "em.pair_with_one", em_slice_make(NULL, 0));
    } else {
        pairs = em_rdd_map(lines, "fj_randkey", em_slice_make(NULL, 0));
    }
    em_rdd *sums = em_rdd_reduce_by_key(pairs, "em.sum_i64", em_slice_make(NULL, 0), 2);
    em_rdd *text = em_rdd_map(sums, "fj_format", em_slice_make(&numeric, rr ? 0 : 1));
    if (em_rdd_save_as_text_file(text, argv[3], &err) < 0) {
        fprintf(stderr, "faultjobs: %s\n", err.msg);
        return 1;
    }
    return 0;
}
