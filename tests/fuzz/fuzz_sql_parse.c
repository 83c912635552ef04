/* tests/fuzz/fuzz_sql_parse.c - untrusted SQL text through the lexer and parser, and (as
 * EXPLAIN) through name binding and planning against a session with a few tables. Plans
 * are not executed, so a fuzzed cartesian product cannot make a run slow. Errors must be
 * clean: a diagnostic whose position lies inside the input. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "sql/sql_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_diag(const em_sql_diag *d, size_t size)
{
    EM_ASSERT(d->err.code < 0);
    EM_ASSERT(d->pos >= -1 && d->pos <= (int64_t)size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *src = (const char *)data;
    em_arena a;
    em_sql_diag d = {EM_ERR_INIT, -1};
    size_t ntok, end;
    em_arena_init(&a, 4096);
    sql_tok *toks = em__sql_lex(&a, src, size, &ntok, &end, &d);
    if (toks == NULL)
        check_diag(&d, size);
    else if (em__sql_parse(&a, src, toks, ntok, &d) == NULL)
        check_diag(&d, size);
    em_arena_destroy(&a);

    static const char setup[] = "CREATE TABLE t1 (a INTEGER, b TEXT, c DOUBLE);"
                                "CREATE TABLE t2 (a INTEGER, d DATE);";
    em_err err = EM_ERR_INIT;
    em_sql_session *s = em_sql_session_new(&err);
    size_t off = 0, used;
    em_sql_result *r = NULL;
    if (s == NULL)
        return 0;
    while (off < sizeof setup - 1) {
        EM_ASSERT(em_sql_exec(s, setup + off, sizeof setup - 1 - off, &used, &r, &d) == 0);
        em_sql_result_free(r);
        off += used;
    }
    em_vbuf q;
    em_vbuf_init(&q);
    if (em_vbuf_printf(&q, "EXPLAIN ") == 0 && em_vbuf_append(&q, data, size) == 0) {
        /* only the first statement: later ones would run unplanned work for real */
        int rc = em_sql_exec(s, (const char *)q.data, q.len, &used, &r, &d);
        if (rc < 0)
            check_diag(&d, q.len);
        em_sql_result_free(r);
    }
    em_vbuf_destroy(&q);
    em_sql_session_free(s);
    return 0;
}
