/* tests/support/hook/timeout_scale.c - linked into every unit test executable (not part of
 * ember_test_support: nothing references a hook, so a static library would drop it).
 *
 * A Criterion `.timeout` is a hang guard measured in wall-clock seconds, written for a
 * plain build on an idle machine. Sanitizer builds run the same test 3-10x slower, and
 * `make check` on a loaded 2-core CI machine stretches wall time further, so a test that
 * legitimately works for 40 s of CPU can pass its 60 s guard only by luck. Before any
 * test runs (PRE_ALL, in the runner that enforces the timeouts), every suite's and test's
 * timeout is multiplied by EMBER_TEST_TIMEOUT_SCALE: the environment variable when set to
 * a number >= 1, else the value CMake compiled in (3 for EMBER_SANITIZE builds, 1
 * otherwise; tests' ctest TIMEOUT properties use the same factor). Nothing else about the
 * tests changes: a hung test is still stopped, only later. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <criterion/internal/ordered-set.h>
#include <stdlib.h>

#ifndef EMBER_TEST_TIMEOUT_SCALE
#define EMBER_TEST_TIMEOUT_SCALE 1
#endif

static double timeout_scale(void)
{
    const char *v = getenv("EMBER_TEST_TIMEOUT_SCALE");
    char *end;
    double f = v && *v ? strtod(v, &end) : 0;
    if (v && *v && !*end && f >= 1)
        return f;
    return EMBER_TEST_TIMEOUT_SCALE;
}

static void scale(struct criterion_test_extra_data *d, double f)
{
    if (d && d->timeout > 0)
        d->timeout *= f;
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    double f = timeout_scale();
    if (f == 1)
        return;
    FOREACH_SET(struct criterion_suite_set *s, set->suites) {
        scale(s->suite.data, f);
        FOREACH_SET(struct criterion_test *t, s->tests) {
            scale(t->data, f);
        }
    }
}
