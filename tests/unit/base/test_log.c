/* tests/unit/base/test_log.c - log levels, the sink, the default stderr sink and long
 * messages. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
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
    cr_assert_str_eq(c.last, "shown");
    cr_assert_eq(c.last_level, EM_LOG_ERROR);
    em_log_set_sink(NULL, NULL);
}

/* Without a sink a line goes to stderr as "ember LEVEL: message", filtered by level. */
Test(log, default_sink_writes_stderr, .init = cr_redirect_stderr)
{
    em_log_set_sink(NULL, NULL);
    em_log_set_level(EM_LOG_WARN);
    em_log(EM_LOG_INFO, "hidden");
    em_log(EM_LOG_WARN, "disk %s is %d%% full", "/tmp", 93);
    em_log(EM_LOG_ERROR, "gone");
    fflush(stderr);
    cr_assert_stderr_eq_str("ember warn: disk /tmp is 93% full\nember error: gone\n");
}

/* A message longer than the line buffer is cut, never overflowed. */
Test(log, long_message_truncated)
{
    struct capture c = {0};
    em_log_set_sink(sink, &c);
    em_log_set_level(EM_LOG_DEBUG);
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    em_log(EM_LOG_DEBUG, "%s", big);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(strlen(c.last), sizeof c.last - 1);
    cr_assert_eq(c.last[0], 'x');
    em_log_set_sink(NULL, NULL);
}
