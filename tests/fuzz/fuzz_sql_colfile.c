/* tests/fuzz/fuzz_sql_colfile.c - untrusted bytes as an ember table part file
 * (sql/colfile.c): the footer is checked, then every column chunk of every row group either
 * decodes into a vector whose values are in range (text inside the vector's buffer and
 * NUL-terminated), or fails cleanly; a scan of every row group calls back once per row. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "sql/colfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_row(void *ud, const em_sql_value *row)
{
    (void)row;
    (*(uint64_t *)ud)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sql_cf f;
    em_err err = EM_ERR_INIT;
    em_arena strings;
    memset(&f, 0, sizeof f);
    em_arena_init(&f.arena, 4096);
    em_arena_init(&strings, 4096);
    f.path = "fuzz.emc";
    if (em__sql_cf_parse(&f, data, size, &err) == 0) {
        for (uint32_t g = 0; g < f.nrg; g++) {
            for (uint32_t c = 0; c < f.ncols; c++) {
                sql_cvec v;
                memset(&v, 0, sizeof v);
                if (em__sql_cf_read(&f, g, c, &v, &err) == 0)
                    for (uint32_t r = 0; r < v.n; r++) {
                        em_sql_value x;
                        em__sql_cvec_get(&v, r, &x);
                        EM_ASSERT(x.type <= EM_SQL_TEXT);
                        if (x.type == EM_SQL_TEXT && v.enc == SQL_CF_TEXT)
                            EM_ASSERT(x.u.s[x.len] == '\0');
                    }
                em__sql_cvec_free(&v);
            }
            uint64_t rows = 0;
            if (em__sql_cf_scan(&f, g, NULL, NULL, 0, &strings, count_row, &rows, NULL, &err) == 0)
                EM_ASSERT(rows == f.rg_rows[g]);
            em_arena_reset(&strings);
        }
    }
    f.map = NULL; /* not mapped: the bytes are the caller's */
    em__sql_cf_close(&f);
    em_arena_destroy(&strings);
    return 0;
}
