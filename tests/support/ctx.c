/* tests/support/ctx.c - see ctx.h. */
#include "tests/support/ctx.h"

#include <criterion/criterion.h>

em_context *em_test_ctx_new(const char *master)
{
    em_conf *c = em_conf_new();
    em_conf_set(c, "ember.master", master);
    em_err err = EM_ERR_INIT;
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert(sc, "%s", err.msg);
    return sc;
}
