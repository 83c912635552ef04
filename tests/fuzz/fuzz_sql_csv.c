/* tests/fuzz/fuzz_sql_csv.c - untrusted bytes as CSV records (em__sql_csv_record): every
 * record either parses with its fields inside the scratch buffer, or fails cleanly; the
 * reader always moves forward. The first byte picks the delimiter. */
#include <stdint.h>
#include <stddef.h>

#include "sql/sql_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delims[] = {',', '\t', ';', '|'};
    em_sql_value f[64];
    em_vbuf scratch;
    em_err err = EM_ERR_INIT;
    size_t off = 1;
    uint64_t line = 1;
    uint32_t nf;
    if (size == 0)
        return 0;
    char delim = delims[data[0] % 4];
    em_vbuf_init(&scratch);
    for (;;) {
        size_t before = off;
        int rc = em__sql_csv_record((const char *)data, size, &off, delim, &scratch, f, 64, &nf,
                                    &line, &err);
        if (rc != 0)
            break;
        EM_ASSERT(off > before && off <= size && nf >= 1 && nf <= 64);
        for (uint32_t i = 0; i < nf; i++)
            EM_ASSERT(f[i].type == EM_SQL_NULL ||
                      ((const uint8_t *)f[i].u.s >= scratch.data &&
                       (const uint8_t *)f[i].u.s + f[i].len < scratch.data + scratch.len));
    }
    em_vbuf_destroy(&scratch);
    return 0;
}
