/* tests/fuzz/fuzz_sql_row.c - untrusted bytes as a typed SQL row (em_sql_row_decode):
 * every decoded text must lie inside the input, and a decoded row re-encodes to the same
 * bytes. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "sql/sql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    em_sql_value vals[8];
    em_err err = EM_ERR_INIT;
    size_t used;
    if (size == 0)
        return 0;
    uint32_t ncols = data[0] % 8 + 1;
    if (em_sql_row_decode(data + 1, size - 1, vals, ncols, &used, &err) != 0)
        return 0;
    EM_ASSERT(used <= size - 1);
    for (uint32_t i = 0; i < ncols; i++)
        if (vals[i].type == EM_SQL_TEXT)
            EM_ASSERT((const uint8_t *)vals[i].u.s >= data + 1 &&
                      (const uint8_t *)vals[i].u.s + vals[i].len <= data + size);
    em_vbuf b;
    em_vbuf_init(&b);
    EM_ASSERT(em_sql_row_encode(&b, vals, ncols) == 0);
    EM_ASSERT(b.len == used && memcmp(b.data, data + 1, used) == 0);
    em_vbuf_destroy(&b);
    return 0;
}
