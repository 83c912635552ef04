/* tests/fuzz/fuzz_sql_stage.c - untrusted bytes as a SQL stage plan (em__sql_plan_decode,
 * the blob executors decode in sql.stage): a plan either fails to decode cleanly or is
 * consistent enough to run: it is then run by the local executor over inputs of its leaves'
 * widths (rows of NULL, integer, double and text values), which must not read outside a
 * row (ASan) whatever the plan says. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "sql/sql_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void bind(em_arena *a, sql_plan *p)
{
    if (p == NULL)
        return;
    if (p->kind == P_REL) {
        sql_rel *r = em_arena_alloc(a, sizeof *r);
        em_sql_value *v = em_arena_alloc(a, 3 * (size_t)p->width * sizeof *v);
        if (r == NULL || v == NULL)
            return;
        for (size_t i = 0; i < 3 * (size_t)p->width; i++) {
            switch (i % 4) {
            case 0: v[i] = em__sql_null(); break;
            case 1: v[i] = em__sql_int((int64_t)i - 2); break;
            case 2: v[i] = em__sql_dbl(0.5 * (double)i); break;
            default: em__sql_text(a, "ab", 2, &v[i]);
            }
        }
        *r = (sql_rel){.width = p->width, .n = 3, .cap = 3, .v = v};
        p->rel = r;
        return;
    }
    bind(a, p->in);
    bind(a, p->right);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    em_arena a;
    em_err err = EM_ERR_INIT;
    sql_plan *p = NULL;
    size_t used = 0;
    em_arena_init(&a, 4096);
    if (em__sql_plan_decode(&a, data, size, &used, &p, &err) == 0) {
        EM_ASSERT(used <= size && p != NULL);
        em_sql_diag diag = {0};
        sql_exec x = {.arena = &a, .diag = &diag};
        sql_rel *out;
        bind(&a, p);
        if (p->width <= 64 && em__sql_run(&x, p, NULL, &out) == 0)
            EM_ASSERT(out->width == p->width || p->kind == P_REL);
    }
    em_arena_destroy(&a);
    return 0;
}
