/* engine/base/log.c - leveled logging to a replaceable sink (default: stderr).
 * THREADS: em_log from any thread; the setters before threads start. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/base/base.h"

/* Log sink and level: written only by em_log_set_sink()/em_log_set_level() before threads
 * start (and lazily from EMBER_LOG on first use); read by every em_log call. */
static em_log_sink_fn g_sink;
static void *g_sink_ud;
static atomic_int g_level = -1; /* -1: not yet read from EMBER_LOG */

static int level_from_env(void)
{
    const char *s = getenv("EMBER_LOG");
    if (!s)
        return EM_LOG_WARN;
    if (strcasecmp(s, "debug") == 0)
        return EM_LOG_DEBUG;
    if (strcasecmp(s, "info") == 0)
        return EM_LOG_INFO;
    if (strcasecmp(s, "error") == 0)
        return EM_LOG_ERROR;
    return EM_LOG_WARN;
}

static int current_level(void)
{
    int l = atomic_load_explicit(&g_level, memory_order_relaxed);
    if (EM_UNLIKELY(l < 0)) {
        /* Racing first calls compute the same value, so a plain store is fine. */
        l = level_from_env();
        atomic_store(&g_level, l);
    }
    return l;
}

void em_log_set_sink(em_log_sink_fn fn, void *ud)
{
    g_sink = fn;
    g_sink_ud = ud;
}

void em_log_set_level(em_log_level min_level)
{
    atomic_store(&g_level, (int)min_level);
}

static const char *level_name(em_log_level l)
{
    switch (l) {
    case EM_LOG_DEBUG:
        return "debug";
    case EM_LOG_INFO:
        return "info";
    case EM_LOG_WARN:
        return "warn";
    case EM_LOG_ERROR:
        return "error";
    }
    return "?";
}

void em_log(em_log_level level, const char *fmt, ...)
{
    if ((int)level < current_level())
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_sink) {
        g_sink(g_sink_ud, level, msg);
        return;
    }
    /* One fprintf per line so concurrent lines do not interleave mid-line. */
    fprintf(stderr, "ember %s: %s\n", level_name(level), msg);
}
