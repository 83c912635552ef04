/* cli/util.c - argument parsing and error printing shared by the sub-commands. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/ember.h"

bool em__cli_parse_u64(const char *prefix, const char *flag, const char *text, uint64_t min,
                       uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = text;
    bool ok = *p != '\0';

    /* Hand-rolled rather than strtoull: strtoull accepts leading spaces, a sign ("-1"
     * wraps to 2^64-1) and stops silently at a suffix ("12x"). */
    for (; ok && *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
            ok = false;
            break;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (ok && v >= min && v <= max) {
        *out = v;
        return true;
    }
    if (ok && v > max)
        fprintf(stderr, "%s: %s: at most %llu, got '%s'\n", prefix, flag, (unsigned long long)max,
                text);
    else if (min >= 1)
        fprintf(stderr, "%s: %s: expected a positive integer, got '%s'\n", prefix, flag, text);
    else
        fprintf(stderr, "%s: %s: expected a non-negative integer, got '%s'\n", prefix, flag, text);
    return false;
}

const char *em__cli_opt_value(const char *prefix, const char *flag, int argc, char **argv, int *i,
                              bool *matched)
{
    const char *a = argv[*i];
    size_t n = strlen(flag);

    *matched = false;
    if (strncmp(a, flag, n) != 0 || (a[n] != '\0' && a[n] != '='))
        return NULL;
    *matched = true;
    if (a[n] == '=') {
        (*i)++;
        return a + n + 1;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s: missing value\n", prefix, flag);
        return NULL;
    }
    *i += 2;
    return argv[*i - 1];
}

bool em__cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int em__cli_fail(const char *prefix, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prefix);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EM_CLI_FAIL;
}

int em__cli_usage_error(const char *prefix, const char *usage_cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prefix);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", usage_cmd);
    return EM_CLI_USAGE;
}

static int set_pairs(em_conf *c, const char *const *kv, bool as_default)
{
    int rc = 0;
    for (; kv && kv[0]; kv += 2)
        if (kv[1])
            rc |= as_default ? em_conf_set_default(c, kv[0], kv[1]) : em_conf_set(c, kv[0], kv[1]);
    return rc;
}

em_conf *em__cli_job_conf(const char *prefix, const char *const *defaults,
                          const char *const *confs, int nconfs, const char *const *overrides,
                          int *status)
{
    em_conf *c = em_conf_new();
    const char *file = getenv("EMBER_CONF_FILE");
    em_err err = EM_ERR_INIT;
    /* Defaults at the lowest priority: the conf file and EMBER_* variables override them
     * (they did not when the commands set their defaults with em_conf_set). */
    int rc = set_pairs(c, defaults, true);

    *status = EM_CLI_USAGE;
    if (file && *file && em_conf_load_file(c, file, &err) < 0) {
        em__cli_fail(prefix, "%s", err.msg);
        em_conf_free(c);
        return NULL;
    }
    em_conf_load_env(c);
    for (int i = 0; i < nconfs; i++) {   /* "k=v", checked by the option parsers */
        const char *eq = strchr(confs[i], '=');
        char *key = em_xasprintf("%.*s", (int)(eq - confs[i]), confs[i]);
        rc |= em_conf_set(c, key, eq + 1);
        em_free(key);
    }
    rc |= set_pairs(c, overrides, false);
    if (rc != 0) {
        *status = em__cli_fail(prefix, "out of memory");
        em_conf_free(c);
        return NULL;
    }
    /* Every setting checked before any work starts: a bad value from any source (flag,
     * --conf, EMBER_*, conf file) is bad usage, exit status 2. */
    if (em_conf_check(c, &err) < 0) {
        if (err.code == EM_EINVAL || err.code == EM_ECORRUPT)
            em__cli_usage_error(prefix, prefix, "%s", err.msg);
        else
            *status = em__cli_fail(prefix, "%s", err.msg);
        em_conf_free(c);
        return NULL;
    }
    *status = EM_CLI_OK;
    return c;
}

/* Signal flag of the daemon commands: written only by the handler below. */
static volatile sig_atomic_t g_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

volatile sig_atomic_t *em__cli_stop_on_signals(void)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_stop_signal);
    signal(SIGTERM, on_stop_signal);
    return &g_stop;
}
