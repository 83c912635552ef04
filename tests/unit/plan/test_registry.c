/* tests/unit/plan/test_registry.c - the function registry's lookup order: registration
 * tables (em_fn_register_table: idempotent, clashes rejected), a job library's
 * em_job_register called by em_registry_add_library, and dlsym in job libraries only (the
 * program's own symbols are not searched). The job library is examples/registered.c, whose
 * functions are static and registered from its table. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/plan/plan.h"

int tr_map(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tr_map(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    return em_emit(out, in, err);
}

static int tr_other(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    (void)in;
    (void)out;
    (void)err;
    return 0;
}

static const em_fn_entry tab[] = {
    {"tr.map", EM_FN_MAP, EM_FN(tr_map)},
    {"tr.other", EM_FN_MAP, EM_FN(tr_other)},
};

Test(registry, tables_are_idempotent_and_reject_clashes)
{
    em_any_fn f;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_fn_register_table(tab, 2), 0);
    cr_assert_eq(em_fn_register_table(tab, 2), 0, "the same table twice is fine");
    cr_assert_eq(em_registry_resolve("tr.other", EM_FN_MAP, &f, &err), 0, "%s", err.msg);
    cr_assert(f == EM_FN(tr_other));
    em_fn_entry other_fn = {"tr.map", EM_FN_MAP, EM_FN(tr_other)};
    cr_assert_eq(em_fn_register_table(&other_fn, 1), EM_EINVAL, "same name, other function");
    em_fn_entry other_kind = {"tr.map", EM_FN_FILTER, EM_FN(tr_map)};
    cr_assert_eq(em_fn_register_table(&other_kind, 1), EM_EINVAL, "same name, other kind");
    /* built-ins are registered before a table, so claiming their names fails at once */
    em_fn_entry builtin = {"em.identity", EM_FN_MAP, EM_FN(tr_map)};
    cr_assert_eq(em_fn_register_table(&builtin, 1), EM_EINVAL);
    em_fn_entry bad[] = {{"", EM_FN_MAP, EM_FN(tr_map)}, {"x", EM_FN_MAP, NULL},
                         {"y", (em_fn_kind)99, EM_FN(tr_map)}};
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(em_fn_register_table(&bad[i], 1), EM_EINVAL, "bad entry %zu", i);
    /* an exported symbol of the program is not a function by name */
    cr_assert_eq(em_registry_resolve("tr_map", EM_FN_MAP, &f, &err), EM_EPLAN);
}

static void *load_registered(void)
{
    const char *bin = getenv("EMBER_TEST_BIN");
    cr_assert_not_null(bin, "EMBER_TEST_BIN is not set");
    char path[4096];
    snprintf(path, sizeof path, "%s/../lib/ember/examples/registered.so", bin);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(h, "dlopen: %s", dlerror());
    return h;
}

Test(registry, job_library_registers_its_table)
{
    void *h = load_registered();
    em_any_fn f;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_registry_resolve("registered.add", EM_FN_REDUCE, &f, &err), EM_EPLAN,
                 "not known before the library is added");
    cr_assert_eq(em_registry_add_library(h, &err), 0, "%s", err.msg);
    cr_assert_eq(em_registry_resolve("registered.add", EM_FN_REDUCE, &f, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(em_registry_resolve("registered.format", EM_FN_MAP, &f, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(em_registry_resolve("registered.add", EM_FN_MAP, &f, &err), EM_EPLAN,
                 "kinds are checked");
    cr_assert_null(dlsym(h, "length_one"), "the table's functions are not exported");
    /* a job library's exported symbols still resolve by name */
    cr_assert_eq(em_registry_resolve("ember_main", EM_FN_MAP, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(em_registry_add_library(h, &err), 0, "adding it twice: %s", err.msg);
}

Test(registry, failing_job_register_is_an_error)
{
    void *h = load_registered();
    em_err err = EM_ERR_INIT;
    setenv("EMBER_REGISTERED_CLASH", "1", 1);
    cr_assert_eq(em_registry_add_library(h, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "em_job_register failed") != NULL, "%s", err.msg);
    em_any_fn f;
    cr_assert_eq(em_registry_resolve("ember_main", EM_FN_MAP, &f, &err), EM_EPLAN,
                 "a library whose registration failed is not searched");
}
