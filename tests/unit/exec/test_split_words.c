/* tests/unit/exec/test_split_words.c - em.split_words and em.split_word_pairs (64-byte
 * masks: AVX-512BW when the CPU has it, SSE2 with EMBER_WORD_SCAN=portable) against a naive
 * byte-at-a-time splitter, on random lines whose words and separator runs straddle the
 * 64-byte steps. Criterion runs each test in its own process, so each picks its scan anew. */
#include "engine/exec/exec_int.h"
#include "tests/unit/exec/exec_test_util.h"

static bool is_sep(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void naive_split(const uint8_t *p, size_t n, bool pairs, trecs *out)
{
    static const uint8_t one[8] = {0x80, 0, 0, 0, 0, 0, 0, 1};   /* em_enc_i64(1) */
    size_t i = 0;
    while (i < n) {
        while (i < n && is_sep(p[i]))
            i++;
        size_t w = i;
        while (i < n && !is_sep(p[i]))
            i++;
        if (i > w && pairs)
            trecs_add(out, true, p + w, i - w, one, sizeof one);
        else if (i > w)
            trecs_add(out, false, NULL, 0, p + w, i - w);
    }
}

static void check_random_lines(const char *fn, bool pairs)
{
    static const uint8_t alpha[] = {'a', 'b', ' ', ' ', '\t', '\r', '\n', 0xc3, 0xa9, 0,
                                    'z', 'q', 0x0b, 0x20, 0xff, 'x'};
    em_any_fn f;
    em_err err = EM_ERR_INIT;
    em_registry_init_builtins();
    cr_assert_eq(em_registry_resolve(fn, EM_FN_MAP, &f, &err), 0);
    em_rng rng;
    em_rng_seed(&rng, 77);
    for (int round = 0; round < 3000; round++) {
        uint8_t line[300];
        size_t n = (size_t)em_rng_below(&rng, sizeof line + 1);
        /* mostly words of 1..20 bytes (1..150: across blocks) between runs of separators, sometimes pure noise */
        bool noise = round % 4 == 0;
        for (size_t i = 0; i < n;) {
            if (noise) {
                line[i++] = alpha[em_rng_below(&rng, sizeof alpha)];
                continue;
            }
            size_t w = 1 + (size_t)em_rng_below(&rng, round % 5 == 1 ? 150 : 20);
            for (size_t k = 0; k < w && i < n; k++)
                line[i++] = (uint8_t)('a' + em_rng_below(&rng, 26));
            size_t s = 1 + (size_t)em_rng_below(&rng, round % 3 ? 2 : 18);
            for (size_t k = 0; k < s && i < n; k++)
                line[i++] = (uint8_t)" \t\r\n"[em_rng_below(&rng, 4)];
        }
        /* a copy of exactly n bytes, so ASan sees any read past the record */
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, line, n);
        em_emitter e;
        em__emitter_init(&e);
        em_rec in = {em_slice_make(NULL, 0), em_slice_make(n ? copy : NULL, n)};
        em_fn_ctx ctx = {em_slice_make(NULL, 0), NULL};
        cr_assert_eq(((em_map_fn)f)(&ctx, &in, &e, &err), 0);
        trecs got = {0}, want = {0};
        size_t off = 0;
        em_rec r;
        while (em__emitter_read(&e, &off, &r))
            trecs_add_rec(&got, &r);
        naive_split(copy, n, pairs, &want);
        trecs_assert_eq(&got, &want, false, fn);
        trecs_free(&got);
        trecs_free(&want);
        em__emitter_destroy(&e);
        free(copy);
    }
}

Test(split_words, matches_naive_on_random_lines)
{
    check_random_lines("em.split_words", false);
}

Test(split_words, pairs_match_naive_on_random_lines)
{
    check_random_lines("em.split_word_pairs", true);
}

Test(split_words, portable_scan_matches_naive)
{
    setenv("EMBER_WORD_SCAN", "portable", 1);
    check_random_lines("em.split_words", false);
    check_random_lines("em.split_word_pairs", true);
}
