/* tests/fuzz/fuzz_ratings.c - the text rating readers on arbitrary bytes. The first byte
 * picks the format (mod 5: auto, tsv, csv, movielens, netflix) and bit 7 skip-bad-lines;
 * the rest is the file. Any outcome but a crash, a sanitizer report or an out-of-range
 * index is fine. */
#include <stdint.h>
#include <stdlib.h>

#include "mllib/als/als.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    em_ratings_read_opts o = {.format = (em_ratings_format)(data[0] % 5),
                              .skip_bad_lines = (data[0] & 0x80) != 0};
    em_idmap *u = em_idmap_new(), *i = em_idmap_new();
    em_ratings r;
    em_err err = EM_ERR_INIT;
    em_ratings_init(&r);
    if (u && i &&
        em_ratings_parse("fuzz.txt", data + 1, size - 1, &o, u, i, &r, &err) == 0) {
        for (size_t t = 0; t < r.n; t++)
            if (r.recs[t].user < 0 || r.recs[t].user >= em_idmap_size(u) ||
                r.recs[t].item < 0 || r.recs[t].item >= em_idmap_size(i))
                abort();
        char buf[24];
        for (int32_t k = 0; k < em_idmap_size(u); k++)
            if (!em_idmap_name(u, k, buf))
                abort();
    }
    em_ratings_destroy(&r);
    em_idmap_free(u);
    em_idmap_free(i);
    return 0;
}
