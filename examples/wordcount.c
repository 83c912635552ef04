/* examples/wordcount.c - counts words: `ember run-example wordcount INPUT OUTDIR`.
 *
 * Words are maximal runs of bytes other than space, tab, CR and LF (as em.split_words).
 * OUTDIR gets "word<TAB>count" lines (part-NNNNN files, then _SUCCESS); stdout gets the 20
 * most frequent words as "count<TAB>word", most frequent first (ties: larger word bytes
 * first). The counts are cached, so saving them and ranking them share one shuffle.
 *
 * The functions named in the plan (wc_format, wc_count_first) are exported by this job
 * library; executors find them by name. Lines become (word, 1) pairs through the built-in
 * em.split_word_pairs (em.split_words and em.pair_with_one in one function: the map side's
 * cost is per word, about 70 million in 256 MiB of generated text, and it saves a pipeline
 * stage per word). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);
int wc_format(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int wc_count_first(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

static const em_slice no_ctx = {NULL, 0};

/* (word, em_enc_i64 count) -> "word\tcount" */
int wc_format(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    char tail[24];
    uint8_t small[256];
    em_vbuf big;
    int n, rc;

    (void)c;
    if (in->val.n != 8)
        return em_err_set(err, EM_ECORRUPT, "wc_format: count of %zu bytes (want 8)", in->val.n);
    n = snprintf(tail, sizeof tail, "\t%lld", (long long)em_dec_i64(in->val.p));
    if (in->key.n + (size_t)n <= sizeof small) {
        memcpy(small, in->key.p, in->key.n);
        memcpy(small + in->key.n, tail, (size_t)n);
        return em_emit_val(out, em_slice_make(small, in->key.n + (size_t)n), err);
    }
    em_vbuf_init(&big);
    if (em_vbuf_append(&big, in->key.p, in->key.n) < 0 ||
        em_vbuf_append(&big, tail, (size_t)n) < 0) {
        em_vbuf_destroy(&big);
        return em_err_set(err, EM_ENOMEM, "wc_format: out of memory");
    }
    rc = em_emit_val(out, em_slice_make(big.data, big.len), err);
    em_vbuf_destroy(&big);
    return rc;
}

/* (word, count) -> plain record em_enc_i64(count) + word: byte order = count order. */
int wc_count_first(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em_vbuf b;
    int rc;

    (void)c;
    if (in->val.n != 8)
        return em_err_set(err, EM_ECORRUPT, "wc_count_first: count of %zu bytes (want 8)",
                          in->val.n);
    em_vbuf_init(&b);
    if (em_vbuf_append(&b, in->val.p, 8) < 0 || em_vbuf_append(&b, in->key.p, in->key.n) < 0) {
        em_vbuf_destroy(&b);
        return em_err_set(err, EM_ENOMEM, "wc_count_first: out of memory");
    }
    rc = em_emit_val(out, em_slice_make(b.data, b.len), err);
    em_vbuf_destroy(&b);
    return rc;
}

int ember_main(em_context *sc, int argc, char **argv)
{
    em_rdd *lines, *pairs, *counts, *ranked;
    em_records top = {0};
    em_err err = EM_ERR_INIT;

    if (argc != 3) {
        fprintf(stderr, "usage: wordcount INPUT OUTDIR\n");
        return 2;
    }
    lines = em_text_file(sc, argv[1], 0);
    pairs = em_rdd_flat_map(lines, "em.split_word_pairs", no_ctx);
    counts = em_rdd_cache(em_rdd_reduce_by_key(pairs, "em.sum_i64", no_ctx, 0));
    if (em_rdd_save_as_text_file(em_rdd_map(counts, "wc_format", no_ctx), argv[2], &err) < 0)
        goto fail;
    ranked = em_rdd_map(counts, "wc_count_first", no_ctx);
    if (em_rdd_top(ranked, 20, &top, &err) < 0)
        goto fail;
    for (size_t i = 0; i < top.n; i++) {
        const em_slice v = top.recs[i].val;
        printf("%lld\t%.*s\n", (long long)em_dec_i64(v.p), (int)(v.n - 8), (const char *)v.p + 8);
    }
    em_records_destroy(&top);
    return 0;
fail:
    fprintf(stderr, "ember: wordcount: %s\n", err.msg);
    em_records_destroy(&top);
    return 1;
}
