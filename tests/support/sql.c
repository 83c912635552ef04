/* tests/support/sql.c - see sql.h. */
#include "tests/support/sql.h"

#include <criterion/criterion.h>
#include <string.h>

int em_test_sql_exec_all(em_sql_session *s, const char *sql, em_vbuf *out, em_sql_diag *d)
{
    size_t len = strlen(sql), off = 0;
    while (off < len) {
        em_sql_result *r = NULL;
        size_t used;
        int rc = em_sql_exec(s, sql + off, len - off, &used, &r, d);
        if (rc < 0)
            return rc;
        off += used;
        if (r == NULL)
            continue;
        if (out != NULL && em_sql_result_ncols(r) > 0) {
            em_vbuf_clear(out);
            for (size_t i = 0; i < em_sql_result_nrows(r); i++) {
                for (uint32_t c = 0; c < em_sql_result_ncols(r); c++) {
                    em_sql_value_format(out, &em_sql_result_row(r, i)[c]);
                    em_vbuf_append(out, "|", 1);
                }
                em_vbuf_append(out, "\n", 1);
            }
        }
        em_sql_result_free(r);
    }
    return 0;
}

void em_test_sql_run(em_sql_session *s, const char *sql, em_vbuf *out)
{
    em_sql_diag d;
    cr_assert_eq(em_test_sql_exec_all(s, sql, out, &d), 0, "%s: %s", sql, d.err.msg);
}
