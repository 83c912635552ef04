/* engine/plan/builtins.c - ember's built-in named functions ("em.*"), registered by
 * em_registry_init_builtins. Semantics are listed in engine/plan/fn.h above em_fn_register.
 *
 * "A record as bytes" is the value of a plain record and em_pair(key, value) of a KV record
 * (engine/ember.h). int64 values are em_enc_i64 (order-preserving), doubles em_enc_f64. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define EM_BUILTINS_X86 1
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "engine/plan/plan_int.h"

/* Appends record r as bytes to out. */
static int rec_bytes(const em_rec *r, em_vbuf *out)
{
    if (!r->key.p)
        return em_vbuf_append(out, r->val.p, r->val.n);
    return em_pair_append(out, &r->key, &r->val);
}

static int need_kv(const char *fn, const em_rec *in, em_err *err)
{
    if (in->key.p)
        return 0;
    return em_err_set(err, EM_EINVAL, "%s: record is not a key-value pair", fn);
}

/* ---------------------------------------------------------------- EM_FN_MAP */

static int b_identity(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    return em_emit(out, in, err);
}

static int b_keys(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    int rc = need_kv("em.keys", in, err);
    return rc < 0 ? rc : em_emit_val(out, in->key, err);
}

static int b_values(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    int rc = need_kv("em.values", in, err);
    return rc < 0 ? rc : em_emit_val(out, in->val, err);
}

static int b_swap(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    int rc = need_kv("em.swap", in, err);
    return rc < 0 ? rc : em_emit_kv(out, in->val, in->key, err);
}

static const uint8_t *one_i64(void)
{
    static const uint8_t one[8] = {0x80, 0, 0, 0, 0, 0, 0, 1};   /* em_enc_i64(1) */
    return one;
}

/* ---------------------------------------------------------------- words
 * Words are maximal runs of bytes other than space, tab, CR and LF. The cost of splitting is
 * per word (about 70 million in 256 MiB of text), and a byte loop spends it on mispredicted
 * loop exits, so each 64 bytes become a bit mask of word bytes (one masked AVX-512BW compare
 * when the CPU has it, chosen at run time; four SSE2 compares otherwise) and words are cut
 * out of the mask with count-trailing-zeros. EMBER_WORD_SCAN=portable forces the SSE2 scan
 * (the tests run both). */

/* Bit i set when p[i] (i < k <= 64) is a word byte. A short block is copied into 64 bytes
 * padded with spaces first, so the compares never read past p + k. */
static uint64_t word_mask_portable(const uint8_t *p, size_t k)
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
        m |= (uint64_t)(p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') << i;
#endif
    return m;
}

#if defined(EM_BUILTINS_X86)
/* The same with one masked 64-byte load (masked lanes do not fault). */
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

static word_mask_fn pick_word_mask(void)
{
    const char *force = getenv("EMBER_WORD_SCAN");
    if (force && strcmp(force, "portable") == 0)
        return word_mask_portable;
#if defined(EM_BUILTINS_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bw"))
        return word_mask_avx512;
#endif
    return word_mask_portable;
}

/* Emits p[from, to) as a plain record, or as the pair (word, em_enc_i64 1). */
static inline int emit_word(em_emitter *out, const uint8_t *p, size_t from, size_t to,
                            bool with_one, em_err *err)
{
    em_slice w = em_slice_make(p + from, to - from);
    return with_one ? em_emit_kv(out, w, em_slice_make(one_i64(), 8), err)
                    : em_emit_val(out, w, err);
}

/* Every word of the record's value, in order; `pend` is the start of a word running into the
 * next 64-byte block. Inlined into its two callers with with_one constant. */
static inline __attribute__((always_inline)) int split_words(const em_rec *in, em_emitter *out,
                                                             bool with_one, em_err *err)
{
    static _Atomic(word_mask_fn) mask_fn;
    word_mask_fn wm = mask_fn;
    const uint8_t *p = in->val.p;
    size_t n = in->val.n, pend = SIZE_MAX;
    int rc;

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
            if ((rc = emit_word(out, p, pend, off + e, with_one, err)) < 0)
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
            if ((rc = emit_word(out, p, off + s, off + e, with_one, err)) < 0)
                return rc;
            m &= ~(uint64_t)0 << e;
        }
    }
    if (pend != SIZE_MAX)
        return emit_word(out, p, pend, n, with_one, err);
    return 0;
}

static int b_split_words(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    return split_words(in, out, false, err);
}

/* em.split_words then em.pair_with_one in one function: a pipeline stage (an emit, a push
 * and a call) less per word. */
static int b_split_word_pairs(const em_fn_ctx *c, const em_rec *in, em_emitter *out,
                              em_err *err)
{
    (void)c;
    return split_words(in, out, true, err);
}

static int emit_bytes_with(const em_rec *in, em_slice val, em_emitter *out, em_err *err)
{
    if (!in->key.p)
        return em_emit_kv(out, in->val, val, err);
    em_vbuf b;
    em_vbuf_init(&b);
    int rc = rec_bytes(in, &b);
    if (rc < 0)
        rc = em_err_set(err, EM_ENOMEM, "record as bytes: out of memory");
    else
        rc = em_emit_kv(out, em_slice_make(b.data, b.len), val, err);
    em_vbuf_destroy(&b);
    return rc;
}

static int b_pair_with_one(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    return emit_bytes_with(in, em_slice_make(one_i64(), 8), out, err);
}

static int b_pair_with_empty(const em_fn_ctx *c, const em_rec *in, em_emitter *out,
                             em_err *err)
{
    (void)c;
    return emit_bytes_with(in, em_slice_make("", 0), out, err);
}

static int b_key_with_one(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    int rc = need_kv("em.key_with_one", in, err);
    return rc < 0 ? rc : em_emit_kv(out, in->key, em_slice_make(one_i64(), 8), err);
}

static int b_lines_to_pairs(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    const uint8_t *tab = in->val.n ? memchr(in->val.p, '\t', in->val.n) : NULL;
    if (!tab)
        return em_emit_kv(out, in->val, em_slice_make("", 0), err);
    size_t k = (size_t)(tab - in->val.p);
    return em_emit_kv(out, em_slice_make(in->val.p, k),
                      em_slice_make(tab + 1, in->val.n - k - 1), err);
}

/* Emits the record stored in `s`: an em_pair-encoded KV record when the blob is "kv",
 * else a plain record. */
/* Emits the KV record stored as em_pair(key, value) bytes (a "record as bytes"). */
static int emit_stored_pair(const char *fn, em_slice pair, em_emitter *out, em_err *err)
{
    em_slice k, v;
    bool hk, hv;
    int rc = em_pair_decode(pair, &k, &hk, &v, &hv, err);
    if (rc < 0)
        return em_err_prefix(err, "%s", fn);
    if (!hk || !hv)
        return em_err_set(err, EM_ECORRUPT, "%s: stored pair lacks a %s", fn,
                          hk ? "value" : "key");
    if (!k.p)
        k = em_slice_make("", 0);
    return em_emit_kv(out, k, v, err);
}

static int emit_stored(const em_fn_ctx *c, const char *fn, em_slice s, em_emitter *out,
                       em_err *err)
{
    if (c->blob.n == 0)
        return em_emit_val(out, s, err);
    if (c->blob.n != 2 || memcmp(c->blob.p, "kv", 2) != 0)
        return em_err_set(err, EM_EINVAL, "%s: blob must be empty or \"kv\"", fn);
    return emit_stored_pair(fn, s, out, err);
}

static int b_record_from_key(const em_fn_ctx *c, const em_rec *in, em_emitter *out,
                             em_err *err)
{
    int rc = need_kv("em.record_from_key", in, err);
    return rc < 0 ? rc : emit_stored(c, "em.record_from_key", in->key, out, err);
}

static int b_record_from_value(const em_fn_ctx *c, const em_rec *in, em_emitter *out,
                               em_err *err)
{
    int rc = need_kv("em.record_from_value", in, err);
    return rc < 0 ? rc : emit_stored(c, "em.record_from_value", in->val, out, err);
}

/* Appends record r tagged (fn.h): kind byte, then the record as bytes. */
static int tagged_append(const em_rec *r, em_vbuf *out)
{
    uint8_t tag = r->key.p ? 1 : 0;
    if (em_vbuf_append(out, &tag, 1) < 0)
        return EM_ENOMEM;
    return rec_bytes(r, out);
}

static int b_tag_with_empty(const em_fn_ctx *c, const em_rec *in, em_emitter *out,
                            em_err *err)
{
    (void)c;
    em_vbuf b;
    em_vbuf_init(&b);
    int rc = tagged_append(in, &b);
    if (rc < 0)
        rc = em_err_set(err, EM_ENOMEM, "em.tag_with_empty: out of memory");
    else
        rc = em_emit_kv(out, em_slice_make(b.data, b.len), em_slice_make("", 0), err);
    em_vbuf_destroy(&b);
    return rc;
}

/* Emits the record stored tagged in s (untrusted bytes: checked). */
static int emit_tagged(const char *fn, em_slice s, em_emitter *out, em_err *err)
{
    if (s.n == 0)
        return em_err_set(err, EM_ECORRUPT, "%s: empty tagged record", fn);
    em_slice rest = em_slice_make(s.p + 1, s.n - 1);
    if (s.p[0] == 0)
        return em_emit_val(out, rest, err);
    if (s.p[0] != 1)
        return em_err_set(err, EM_ECORRUPT, "%s: bad record tag %u", fn, (unsigned)s.p[0]);
    return emit_stored_pair(fn, rest, out, err);
}

static int b_record_from_tagged_key(const em_fn_ctx *c, const em_rec *in, em_emitter *out,
                                    em_err *err)
{
    (void)c;
    int rc = need_kv("em.record_from_tagged_key", in, err);
    return rc < 0 ? rc : emit_tagged("em.record_from_tagged_key", in->key, out, err);
}

static int b_record_from_tagged_value(const em_fn_ctx *c, const em_rec *in, em_emitter *out,
                                      em_err *err)
{
    (void)c;
    int rc = need_kv("em.record_from_tagged_value", in, err);
    return rc < 0 ? rc : emit_tagged("em.record_from_tagged_value", in->val, out, err);
}

/* ---------------------------------------------------------------- EM_FN_FILTER */

static int b_key_equals(const em_fn_ctx *c, const em_rec *in, em_err *err)
{
    (void)err;
    return in->key.p && em_slice_eq(in->key, c->blob) ? 1 : 0;
}

/* ---------------------------------------------------------------- EM_FN_REDUCE */

static int two_i64(const char *fn, em_slice a, em_slice b, int64_t *x, int64_t *y, em_err *err)
{
    if (a.n != 8 || b.n != 8)
        return em_err_set(err, EM_ECORRUPT, "%s: values must be 8-byte int64 (got %zu and %zu)",
                          fn, a.n, b.n);
    *x = em_dec_i64(a.p);
    *y = em_dec_i64(b.p);
    return 0;
}

static int put_i64(em_vbuf *out, int64_t v, em_err *err)
{
    uint8_t b[8];
    em_enc_i64(b, v);
    if (em_vbuf_append(out, b, 8) < 0)
        return em_err_set(err, EM_ENOMEM, "out of memory");
    return 0;
}

static int b_sum_i64(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    int64_t x = 0, y = 0;
    int rc = two_i64("em.sum_i64", a, b, &x, &y, err);
    /* Wrapping sum (two's complement), like Spark's Long addition. */
    return rc < 0 ? rc : put_i64(out, (int64_t)((uint64_t)x + (uint64_t)y), err);
}

static int b_min_i64(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    int64_t x = 0, y = 0;
    int rc = two_i64("em.min_i64", a, b, &x, &y, err);
    return rc < 0 ? rc : put_i64(out, x < y ? x : y, err);
}

static int b_max_i64(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    int64_t x = 0, y = 0;
    int rc = two_i64("em.max_i64", a, b, &x, &y, err);
    return rc < 0 ? rc : put_i64(out, x > y ? x : y, err);
}

static int b_sum_f64(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    if (a.n != 8 || b.n != 8)
        return em_err_set(err, EM_ECORRUPT,
                          "em.sum_f64: values must be 8-byte doubles (got %zu and %zu)", a.n,
                          b.n);
    uint8_t r[8];
    em_enc_f64(r, em_dec_f64(a.p) + em_dec_f64(b.p));
    if (em_vbuf_append(out, r, 8) < 0)
        return em_err_set(err, EM_ENOMEM, "out of memory");
    return 0;
}

static int put_slice(em_vbuf *out, em_slice s, em_err *err)
{
    if (em_vbuf_append(out, s.p, s.n) < 0)
        return em_err_set(err, EM_ENOMEM, "out of memory");
    return 0;
}

static int b_min_bytes(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    return put_slice(out, em_slice_cmp(a, b) <= 0 ? a : b, err);
}

static int b_max_bytes(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    return put_slice(out, em_slice_cmp(a, b) >= 0 ? a : b, err);
}

static int b_first(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    (void)b;
    return put_slice(out, a, err);
}

/* Copies the items of list `l` to out; adds their number to *count. */
static int copy_items(em_slice l, em_vbuf *out, uint32_t *count, em_err *err)
{
    em_list_iter it;
    em_slice item;
    int rc = em_list_iter_init(&it, l, err);
    while (rc >= 0 && (rc = em_list_iter_next(&it, &item, err)) == 1) {
        if (*count == UINT32_MAX)
            return em_err_set(err, EM_ECORRUPT, "em.concat_list: more than 2^32-1 items");
        if (em_list_append(out, item) < 0)
            return em_err_set(err, EM_ENOMEM, "em.concat_list: out of memory");
        (*count)++;
    }
    return rc < 0 ? em_err_prefix(err, "em.concat_list") : 0;
}

static int b_concat_list(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    int64_t off = em_list_begin(out);
    if (off < 0)
        return em_err_set(err, EM_ENOMEM, "em.concat_list: out of memory");
    uint32_t count = 0;
    int rc = copy_items(a, out, &count, err);
    if (rc >= 0)
        rc = copy_items(b, out, &count, err);
    if (rc < 0)
        return rc;
    em_list_end(out, off, count);
    return 0;
}

/* ---------------------------------------------------------------- EM_FN_CREATE */

static int b_to_list(const em_fn_ctx *c, em_slice v, em_vbuf *out, em_err *err)
{
    (void)c;
    int64_t off = em_list_begin(out);
    if (off < 0 || em_list_append(out, v) < 0)
        return em_err_set(err, EM_ENOMEM, "em.to_list: out of memory");
    em_list_end(out, off, 1);
    return 0;
}

/* ---------------------------------------------------------------- EM_FN_PARTITION */

static int take_field(em_slice *b, em_slice *f, const char *what, em_err *err)
{
    if (b->n < 4)
        return em_err_set(err, EM_ECORRUPT, "em.aggregate_partition: blob ends before %s",
                          what);
    uint32_t n = em_load_le32(b->p);
    if (n > b->n - 4)
        return em_err_set(err, EM_ECORRUPT,
                          "em.aggregate_partition: %s length %u exceeds the blob", what, n);
    *f = em_slice_make(b->p + 4, n);
    b->p += 4 + n;
    b->n -= 4 + n;
    return 0;
}

typedef struct agg_blob {
    em_slice name, zero, ctx;
    uint32_t scale;
} agg_blob;

static int parse_agg_blob(em_slice b, agg_blob *a, em_err *err)
{
    int rc;
    if ((rc = take_field(&b, &a->name, "the function name", err)) < 0 ||
        (rc = take_field(&b, &a->zero, "the zero value", err)) < 0 ||
        (rc = take_field(&b, &a->ctx, "the function context", err)) < 0)
        return rc;
    if (b.n != 4)
        return em_err_set(err, EM_ECORRUPT, "em.aggregate_partition: blob has %zu bytes "
                          "after the context, expected 4 (scale)", b.n);
    a->scale = em_load_le32(b.p);
    if (a->scale == 0)
        return em_err_set(err, EM_EINVAL, "em.aggregate_partition: scale is 0");
    return 0;
}

static int b_aggregate_partition(const em_fn_ctx *c, uint32_t index, em_iter *in,
                                 em_emitter *out, em_err *err)
{
    agg_blob a;
    char name[256];
    em_any_fn any;
    int rc = parse_agg_blob(c->blob, &a, err);
    if (rc < 0)
        return rc;
    if (a.name.n == 0 || a.name.n >= sizeof name || memchr(a.name.p, 0, a.name.n))
        return em_err_set(err, EM_EINVAL, "em.aggregate_partition: bad function name");
    memcpy(name, a.name.p, a.name.n);
    name[a.name.n] = 0;
    if ((rc = em_registry_resolve(name, EM_FN_REDUCE, &any, err)) < 0)
        return em_err_prefix(err, "em.aggregate_partition");
    em_reduce_fn seq = (em_reduce_fn)any;
    em_fn_ctx sc = {a.ctx, c->task};
    em_vbuf acc, next;
    em_vbuf_init(&acc);
    em_vbuf_init(&next);
    em_rec r;
    if (em_vbuf_append(&acc, a.zero.p, a.zero.n) < 0) {
        rc = em_err_set(err, EM_ENOMEM, "em.aggregate_partition: out of memory");
        goto out;
    }
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        em_vbuf_clear(&next);
        if ((rc = seq(&sc, em_slice_make(acc.data, acc.len), r.val, &next, err)) < 0)
            goto out;
        em_vbuf tmp = acc;
        acc = next;
        next = tmp;
    }
    if (rc < 0)
        goto out;
    uint8_t key[8];
    em_enc_i64(key, (int64_t)(index % a.scale));
    rc = em_emit_kv(out, em_slice_make(key, 8), em_slice_make(acc.data ? acc.data : key,
                                                               acc.len), err);
out:
    em_vbuf_destroy(&acc);
    em_vbuf_destroy(&next);
    return rc;
}

/* ---------------------------------------------------------------- 8-byte kernels
 * In-place forms of the reducers above for two 8-byte values (what they compute when
 * their size checks pass), for combine maps (em_combiner.merge_value8). */

/* em_enc_i64 / em_dec_i64 as one load or store and a byte swap (the generic forms are byte
 * loops the compiler keeps as loops; these kernels run once per combined record). */
static inline int64_t k_dec_i64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return (int64_t)(__builtin_bswap64(v) ^ 0x8000000000000000ULL);
#else
    return em_dec_i64(p);
#endif
}

static inline void k_enc_i64(uint8_t *p, int64_t x)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v = __builtin_bswap64((uint64_t)x ^ 0x8000000000000000ULL);
    memcpy(p, &v, 8);
#else
    em_enc_i64(p, x);
#endif
}

static void k_sum_i64(uint8_t *acc, const uint8_t *v)
{
    k_enc_i64(acc, (int64_t)((uint64_t)k_dec_i64(acc) + (uint64_t)k_dec_i64(v)));
}

static void k_min_i64(uint8_t *acc, const uint8_t *v)
{
    if (k_dec_i64(v) < k_dec_i64(acc))
        memcpy(acc, v, 8);
}

static void k_max_i64(uint8_t *acc, const uint8_t *v)
{
    if (k_dec_i64(v) > k_dec_i64(acc))
        memcpy(acc, v, 8);
}

static void k_sum_f64(uint8_t *acc, const uint8_t *v)
{
    em_enc_f64(acc, em_dec_f64(acc) + em_dec_f64(v));
}

static void k_first(uint8_t *acc, const uint8_t *v)
{
    (void)acc;
    (void)v;
}

em_merge8_fn em_builtin_merge8(em_any_fn reduce_fn)
{
    static const struct {
        em_reduce_fn fn;
        em_merge8_fn k;
    } tab[] = {
        {b_sum_i64, k_sum_i64}, {b_min_i64, k_min_i64}, {b_max_i64, k_max_i64},
        {b_sum_f64, k_sum_f64}, {b_first, k_first},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if ((em_any_fn)tab[i].fn == reduce_fn)
            return tab[i].k;
    return NULL;
}

/* ---------------------------------------------------------------- registration */

#define REG(name, kind, f) EM_ASSERT(em_fn_register(name, kind, (em_any_fn)(f)) == 0)

void em__plan_register_builtins(void)
{
    REG("em.identity", EM_FN_MAP, b_identity);
    REG("em.keys", EM_FN_MAP, b_keys);
    REG("em.values", EM_FN_MAP, b_values);
    REG("em.swap", EM_FN_MAP, b_swap);
    REG("em.split_words", EM_FN_MAP, b_split_words);
    REG("em.split_word_pairs", EM_FN_MAP, b_split_word_pairs);
    REG("em.pair_with_one", EM_FN_MAP, b_pair_with_one);
    REG("em.key_with_one", EM_FN_MAP, b_key_with_one);
    REG("em.pair_with_empty", EM_FN_MAP, b_pair_with_empty);
    REG("em.lines_to_pairs", EM_FN_MAP, b_lines_to_pairs);
    REG("em.record_from_key", EM_FN_MAP, b_record_from_key);
    REG("em.record_from_value", EM_FN_MAP, b_record_from_value);
    REG("em.tag_with_empty", EM_FN_MAP, b_tag_with_empty);
    REG("em.record_from_tagged_key", EM_FN_MAP, b_record_from_tagged_key);
    REG("em.record_from_tagged_value", EM_FN_MAP, b_record_from_tagged_value);
    REG("em.key_equals", EM_FN_FILTER, b_key_equals);
    REG("em.sum_i64", EM_FN_REDUCE, b_sum_i64);
    REG("em.min_i64", EM_FN_REDUCE, b_min_i64);
    REG("em.max_i64", EM_FN_REDUCE, b_max_i64);
    REG("em.sum_f64", EM_FN_REDUCE, b_sum_f64);
    REG("em.min_bytes", EM_FN_REDUCE, b_min_bytes);
    REG("em.max_bytes", EM_FN_REDUCE, b_max_bytes);
    REG("em.first", EM_FN_REDUCE, b_first);
    REG("em.concat_list", EM_FN_REDUCE, b_concat_list);
    REG("em.to_list", EM_FN_CREATE, b_to_list);
    REG("em.aggregate_partition", EM_FN_PARTITION, b_aggregate_partition);
}
