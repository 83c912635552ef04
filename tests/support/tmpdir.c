/* tests/support/tmpdir.c - see tmpdir.h. */
#include "tests/support/tmpdir.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

void em_test_tmpdir(char *dir, size_t n, const char *prefix)
{
    cr_assert((size_t)snprintf(dir, n, "/tmp/%s_XXXXXX", prefix) < n, "prefix %s", prefix);
    cr_assert(mkdtemp(dir), "mkdtemp %s", dir);
}

void em_test_tmpdir_remove(const char *dir)
{
    char cmd[256];
    cr_assert((size_t)snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir) < sizeof cmd);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}
