/* tests/unit/base/test_log.c - log levels and the sink. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/base/base.h"

struct capture {
    int n;
    em_log_level last_level;
    char last[256];
};

static void sink(void *ud, em_log_level level, const char *msg)
{
    struct capture *c = ud;
    c->n++;
    c->last_level = level;
    strncpy(c->last, msg, sizeof c->last - 1);
}

Test(log, sink_and_level)
{
    struct capture c = {0};
    em_log_set_sink(sink, &c);
    em_log_set_level(EM_LOG_INFO);
    em_log(EM_LOG_DEBUG, "hidden %d", 1);
    cr_assert_eq(c.n, 0);
    em_log(EM_LOG_INFO, "task %d done", 7);
    cr_assert_eq(c.n, 1);
    cr_assert_str_eq(c.last, "task 7 done");
    cr_assert_eq(c.last_level, EM_LOG_INFO);
    em_log_set_level(EM_LOG_ERROR);
    em_log(EM_LOG_WARN, "hidden");
    em_log(EM_LOG_ERROR, "shown");
    cr_assert_eq(c.n, 2);
    em_log_set_sink(NULL, NULL);
    em_log(EM_LOG_ERROR, "to stderr (default sink)");
    cr_assert_eq(c.n, 2);
}
