/* tests/unit/base/test_err.c - em_err reports, error names, prefixes and truncation. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "engine/base/base.h"

Test(err, set_formats_and_returns_code)
{
    em_err e = EM_ERR_INIT;
    int rc = em_err_set(&e, EM_ECORRUPT, "block at offset %d: %s", 1234, "bad crc");
    cr_assert_eq(rc, EM_ECORRUPT);
    cr_assert_eq(e.code, EM_ECORRUPT);
    cr_assert_str_eq(e.msg, "block at offset 1234: bad crc");
    cr_assert_eq(em_err_set(NULL, EM_EIO, "x"), EM_EIO);
}

Test(err, prefix_prepends_and_truncates_at_end)
{
    em_err e = EM_ERR_INIT;
    em_err_set(&e, EM_EIO, "read failed");
    cr_assert_eq(em_err_prefix(&e, "file %s", "a.bin"), EM_EIO);
    cr_assert_str_eq(e.msg, "file a.bin: read failed");

    char longmsg[400];
    memset(longmsg, 'x', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    em_err_set(&e, EM_EIO, "%s", longmsg);
    cr_assert_eq(strlen(e.msg), EM_ERR_MSG_MAX - 1);
    em_err_prefix(&e, "ctx");
    cr_assert_eq(strlen(e.msg), EM_ERR_MSG_MAX - 1);
    cr_assert(strncmp(e.msg, "ctx: xxx", 8) == 0);
}

Test(err, copy_and_clear)
{
    em_err a = EM_ERR_INIT, b = EM_ERR_INIT;
    em_err_set(&a, EM_ENOTFOUND, "no such block rdd_1_2");
    cr_assert_eq(em_err_copy(&b, &a), EM_ENOTFOUND);
    cr_assert_str_eq(b.msg, "no such block rdd_1_2");
    cr_assert_eq(em_err_copy(NULL, &a), EM_ENOTFOUND);
    em_err_clear(&b);
    cr_assert_eq(b.code, 0);
    cr_assert_str_eq(b.msg, "");
}

Test(err, names_and_strings_from_table)
{
    cr_assert_str_eq(em_strerror(EM_ENOMEM), "out of memory");
    cr_assert_str_eq(em_errname(EM_ENOMEM), "ENOMEM");
    cr_assert_str_eq(em_errname(EM_ETIMEDOUT), "ETIMEDOUT");
    cr_assert_str_eq(em_strerror(EM_ECORRUPT), "corrupt or malformed data");
    cr_assert_str_eq(em_strerror(-999), "unknown error");
    cr_assert_str_eq(em_errname(42), "unknown error");
    cr_assert_eq(EM_ETIMEDOUT, -13);
}

Test(err, assert_aborts, .signal = SIGABRT)
{
    int x = 1;
    EM_ASSERT(x == 2);
}

Test(err, panic_aborts, .signal = SIGABRT)
{
    em_panic("lost %s", "everything");
}
