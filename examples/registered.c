/* examples/registered.c - word lengths, with the job's functions registered from a table:
 * `ember run-example registered INPUT OUTDIR`.
 *
 * Counts the words of INPUT (em.split_words) by length in bytes. OUTDIR gets
 * "length<TAB>count" lines; stdout gets the same lines, shortest length first.
 *
 * REGISTRATION. wordcount's functions are exported symbols that executors find by dlsym in
 * the job library. Here they are static and the library exports em_job_register
 * (engine/plan/fn.h) instead: the driver and every executor call it right after loading
 * the library, and it registers the table below, so the plan's names ("registered.*")
 * resolve on every process without exporting anything but ember_main and em_job_register.
 * With EMBER_REGISTERED_CLASH=1 in the environment the table also claims a built-in's name
 * (em.sum_i64), which shows how a clash fails: em_job_register returns EM_EINVAL and the
 * command stops before running anything (tests/integration/test_register.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);

static const em_slice no_ctx = {NULL, 0};

/* word -> (em_enc_i64 length, em_enc_i64 1) */
static int length_one(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    uint8_t k[8], v[8];
    (void)c;
    em_enc_i64(k, (int64_t)in->val.n);
    em_enc_i64(v, 1);
    return em_emit_kv(out, em_slice_make(k, 8), em_slice_make(v, 8), err);
}

/* a + b of two em_enc_i64 counts */
static int add(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    uint8_t s[8];
    (void)c;
    if (a.n != 8 || b.n != 8)
        return em_err_set(err, EM_ECORRUPT, "registered.add: counts of %zu and %zu bytes "
                          "(want 8)", a.n, b.n);
    em_enc_i64(s, em_dec_i64(a.p) + em_dec_i64(b.p));
    return em_vbuf_append(out, s, 8) < 0 ? em_err_set(err, EM_ENOMEM, "out of memory") : 0;
}

/* (length, count) -> "length\tcount" */
static int format(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    char line[48];
    (void)c;
    if (in->key.n != 8 || in->val.n != 8)
        return em_err_set(err, EM_ECORRUPT, "registered.format: bad record");
    int n = snprintf(line, sizeof line, "%lld\t%lld", (long long)em_dec_i64(in->key.p),
                     (long long)em_dec_i64(in->val.p));
    return em_emit_val(out, em_slice_make(line, (size_t)n), err);
}

static const em_fn_entry fns[] = {
    {"registered.length_one", EM_FN_MAP, EM_FN(length_one)},
    {"registered.add", EM_FN_REDUCE, EM_FN(add)},
    {"registered.format", EM_FN_MAP, EM_FN(format)},
};
static const em_fn_entry clash[] = {{"em.sum_i64", EM_FN_REDUCE, EM_FN(add)}};

int em_job_register(void)
{
    int rc = em_fn_register_table(fns, sizeof fns / sizeof fns[0]);
    const char *c = getenv("EMBER_REGISTERED_CLASH");
    if (rc == 0 && c && strcmp(c, "1") == 0)
        rc = em_fn_register_table(clash, 1);
    return rc;
}

int ember_main(em_context *sc, int argc, char **argv)
{
    em_records lines = {0};
    em_err err = EM_ERR_INIT;

    if (argc != 3) {
        fprintf(stderr, "usage: registered INPUT OUTDIR\n");
        return 2;
    }
    em_rdd *words = em_rdd_flat_map(em_text_file(sc, argv[1], 0), "em.split_words", no_ctx);
    em_rdd *pairs = em_rdd_map(words, "registered.length_one", no_ctx);
    em_rdd *counts = em_rdd_reduce_by_key(pairs, "registered.add", no_ctx, 0);
    em_rdd *sorted = em_rdd_sort_by_key(counts, true, 1);
    em_rdd *text = em_rdd_cache(em_rdd_map(sorted, "registered.format", no_ctx));
    if (em_rdd_save_as_text_file(text, argv[2], &err) < 0 ||
        em_rdd_collect(text, &lines, &err) < 0) {
        fprintf(stderr, "ember: registered: %s\n", err.msg);
        em_records_destroy(&lines);
        return 1;
    }
    for (size_t i = 0; i < lines.n; i++)
        printf("%.*s\n", (int)lines.recs[i].val.n, (const char *)lines.recs[i].val.p);
    em_records_destroy(&lines);
    return 0;
}
