/* tests/support/tmpdir.h - a test's scratch directory: made under /tmp from a name prefix,
 * removed with everything in it; either failing fails the calling test. */
#ifndef EMBER_TESTS_SUPPORT_TMPDIR_H
#define EMBER_TESTS_SUPPORT_TMPDIR_H

#include <stddef.h>

/* dir (n bytes) = a new directory /tmp/PREFIX_XXXXXX. */
void em_test_tmpdir(char *dir, size_t n, const char *prefix);
/* rm -rf dir. */
void em_test_tmpdir_remove(const char *dir);

#endif
