/* examples/wordcount.c - counts words: `ember run-example wordcount INPUT OUTDIR`.
 *
 * Words are maximal runs of bytes other than space, tab, CR and LF (as em.split_words).
 * OUTDIR gets "word<TAB>count" lines (part-NNNNN files, then _SUCCESS); stdout gets the 20
 * most frequent words as "count<TAB>word", most frequent first (ties: larger word bytes
 * first). The counts are cached, so saving them and ranking them share one shuffle.
 *
 * The functions named in the plan (wc_split_pairs, wc_format, wc_count_first) are exported
 * by this job library; executors find them by name.
 *
 * DESIGN: the map side's cost is per word (about 70 million words in 256 MiB of generated
 * text), so a line is turned into (word, 1) pairs by one function (wc_split_pairs) rather
 * than em.split_words then em.pair_with_one: that drops a pipeline stage (an emit, a push
 * and a function call) per word. The separator scan takes 64 bytes at a time as a bit mask
 * (AVX-512BW when the CPU has it, chosen at run time, else four SSE2 compares or a byte
 * table), and words are cut out of the mask with count-trailing-zeros. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define WC_X86 1
#endif

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);
int wc_split_pairs(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int wc_format(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int wc_count_first(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

static const em_slice no_ctx = {NULL, 0};

/* ---------------------------------------------------------------- tokenizer */

static inline bool is_sep(uint8_t b)
{
    return b == ' ' || b == '\t' || b == '\r' || b == '\n';
}

/* Bit i set when p[i] (i < k <= 64) is a word byte: the portable scan (a short block is
 * copied into 64 bytes padded with spaces first, so the SIMD compares never read past p + k). */
static uint64_t word_mask_plain(const uint8_t *p, size_t k)
{
    uint64_t m = 0;
#if defined(__SSE2__)
    uint8_t pad[64];
    if (k < 64) {
        memset(pad, ' ', sizeof pad);
        memcpy(pad, p, k);
        p = pad;
    }
    const __m128i sp = _mm_set1_epi8(' '), tb = _mm_set1_epi8('\t');
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
    for (int j = 0; j < 4; j++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * j));
        __m128i s = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, sp), _mm_cmpeq_epi8(x, tb)),
                                 _mm_or_si128(_mm_cmpeq_epi8(x, cr), _mm_cmpeq_epi8(x, lf)));
        m |= (uint64_t)(uint16_t)~_mm_movemask_epi8(s) << (16 * j);
    }
#else
    for (size_t i = 0; i < k; i++)
        m |= (uint64_t)!is_sep(p[i]) << i;
#endif
    return m;
}

#if defined(WC_X86)
/* The same with one masked 64-byte load (no read past p + k: masked lanes do not fault). */
__attribute__((target("avx512bw"))) static uint64_t word_mask_avx512(const uint8_t *p, size_t k)
{
    __mmask64 live = k == 64 ? ~(__mmask64)0 : ((__mmask64)1 << k) - 1;
    __m512i x = _mm512_maskz_loadu_epi8(live, p);
    __mmask64 sep = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(' ')) |
                    _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\t')) |
                    _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\r')) |
                    _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\n'));
    return (uint64_t)(~sep & live);
}
#endif

typedef uint64_t (*word_mask_fn)(const uint8_t *p, size_t k);

/* The scan the CPU allows; EMBER_WC_SCAN=portable forces the SSE2/byte one (tests run both). */
static word_mask_fn pick_word_mask(void)
{
    const char *force = getenv("EMBER_WC_SCAN");
    if (force && strcmp(force, "portable") == 0)
        return word_mask_plain;
#if defined(WC_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bw"))
        return word_mask_avx512;
#endif
    return word_mask_plain;
}

static inline int emit_word(em_emitter *out, const uint8_t *p, size_t from, size_t to,
                            em_err *err)
{
    static const uint8_t one[8] = {0x80, 0, 0, 0, 0, 0, 0, 1};   /* em_enc_i64(1) */
    return em_emit_kv(out, em_slice_make(p + from, to - from), em_slice_make(one, 8), err);
}

/* line -> (word, em_enc_i64(1)) for each word, in order. */
int wc_split_pairs(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    static _Atomic(word_mask_fn) mask_fn;
    word_mask_fn wm = mask_fn;
    const uint8_t *p = in->val.p;
    size_t n = in->val.n, pend = SIZE_MAX;   /* start of a word running into the next block */
    int rc;

    (void)c;
    if (!wm)
        mask_fn = wm = pick_word_mask();
    for (size_t off = 0; off < n; off += 64) {
        size_t k = n - off < 64 ? n - off : 64;
        uint64_t m = wm(p + off, k);   /* lanes >= k are 0 */
        if (pend != SIZE_MAX) {
            uint64_t r = ~m;
            if (!r)
                continue;   /* 64 word bytes: the word goes on */
            unsigned e = (unsigned)__builtin_ctzll(r);
            if ((rc = emit_word(out, p, pend, off + e, err)) < 0)
                return rc;
            pend = SIZE_MAX;
            m &= ~(uint64_t)0 << e;   /* bits below e were that word's */
        }
        while (m) {
            unsigned s = (unsigned)__builtin_ctzll(m);
            uint64_t r = ~m & (~(uint64_t)0 << s);
            if (!r) {
                pend = off + s;   /* runs to bit 63 (k == 64) */
                break;
            }
            unsigned e = (unsigned)__builtin_ctzll(r);
            if ((rc = emit_word(out, p, off + s, off + e, err)) < 0)
                return rc;
            m &= ~(uint64_t)0 << e;
        }
    }
    if (pend != SIZE_MAX)
        return emit_word(out, p, pend, n, err);
    return 0;
}

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
    pairs = em_rdd_flat_map(lines, "wc_split_pairs", no_ctx);
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
