/* tests/unit/api/test_conf_check.c - configuration precedence and checks: defaults set
 * with em_conf_set_default lose to the conf file and EMBER_* variables, which lose to
 * em_conf_set; unknown ember.* keys are refused with a suggestion; bad values, budgets
 * below the minimums and a local dir whose parent is missing are refused before anything
 * is created; application directories left by a dead process are removed. (Each
 * Criterion test is its own process, so setenv stays inside it.) */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/ember.h"

static char *mkdtemp_dup(void)
{
    char tmpl[] = "/tmp/ember-conf-test-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    return strdup(tmpl);
}

static void rm_rf(const char *p)
{
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rm_rf(p, &err), 0, "%s", err.msg);
}

/* The master a context made from c runs with, as its effective configuration says. */
static char *effective_master(const em_conf *c)
{
    em_err err = EM_ERR_INIT;
    em_context *sc = em_context_new(c, &err);
    cr_assert_not_null(sc, "%s", err.msg);
    char *m = strdup(em_conf_get(em_context_conf(sc), "ember.master"));
    em_context_free(sc);
    return m;
}

Test(conf_check, default_loses_to_env_and_file)
{
    char *dir = mkdtemp_dup();
    char path[512];
    snprintf(path, sizeof path, "%s/ember.conf", dir);
    FILE *f = fopen(path, "w");
    fputs("ember.master local[3]\n", f);
    fclose(f);

    em_conf *c = em_conf_new();
    cr_assert_eq(em_conf_set_default(c, "ember.master", "local[2]"), 0);
    char *m = effective_master(c);
    cr_assert_str_eq(m, "local[2]", "no other source: the default holds");
    free(m);

    setenv("EMBER_CONF_FILE", path, 1);
    m = effective_master(c);
    cr_assert_str_eq(m, "local[3]", "the conf file beats a default");
    free(m);

    setenv("EMBER_MASTER", "local[1]", 1);
    m = effective_master(c);
    cr_assert_str_eq(m, "local[1]", "EMBER_MASTER beats the conf file and a default");
    free(m);

    cr_assert_eq(em_conf_set(c, "ember.master", "local[4]"), 0);
    m = effective_master(c);
    cr_assert_str_eq(m, "local[4]", "em_conf_set (a flag) beats the environment");
    free(m);
    em_conf_free(c);
    unsetenv("EMBER_MASTER");
    unsetenv("EMBER_CONF_FILE");
    rm_rf(dir);
    free(dir);
}

Test(conf_check, bad_env_master_is_refused)
{
    setenv("EMBER_MASTER", "local[zz]", 1);
    em_conf *c = em_conf_new();
    em_conf_set_default(c, "ember.master", "local[2]");
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_conf_check(c, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "ember.master: bad value 'local[zz]'"), "%s", err.msg);
    em_conf_free(c);
}

Test(conf_check, unknown_keys)
{
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_conf_check_key("ember.defualt.parallelism", &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "did you mean 'ember.default.parallelism'"), "%s", err.msg);
    err = (em_err)EM_ERR_INIT;
    cr_assert_eq(em_conf_check_key("ember.completely.else", &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "unknown configuration key 'ember.completely.else'"), "%s",
              err.msg);
    cr_assert(!strstr(err.msg, "did you mean"), "%s", err.msg);
    cr_assert_eq(em_conf_check_key("ember.task.maxFailures", &err), 0);
    cr_assert_eq(em_conf_check_key("myjob.threshold", &err), 0, "user keys are free");
    cr_assert_eq(em_conf_check_key("ember.sql.shuffle.partitions", &err), 0);

    /* Through a context too: an API user's typo is not silently ignored. */
    em_conf *c = em_conf_new();
    em_conf_set(c, "ember.master", "local[1]");
    em_conf_set(c, "ember.executor.memroy", "64m");
    err = (em_err)EM_ERR_INIT;
    cr_assert_null(em_context_new(c, &err));
    cr_assert(strstr(err.msg, "did you mean 'ember.executor.memory'"), "%s", err.msg);
    em_conf_free(c);

    /* EMBER_* variables that are no keys (EMBER_SECRET, ...) are not refused. */
    setenv("EMBER_SOMETHING_ELSE", "1", 1);
    c = em_conf_new();
    em_conf_set(c, "ember.master", "local[1]");
    cr_assert_eq(em_conf_check(c, &err), 0, "%s", err.msg);
    em_conf_free(c);
}

Test(conf_check, memory_minimums)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.executor.memory", "1k");
    cr_assert_eq(em_conf_check(c, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "ember.executor.memory: 1k is below the minimum 1m"), "%s",
              err.msg);
    em_conf_set(c, "ember.executor.memory", "1m");
    em_conf_set(c, "ember.shuffle.memory", "1k");
    cr_assert_eq(em_conf_check(c, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "ember.shuffle.memory: 1k is below the minimum 4k"), "%s",
              err.msg);
    em_conf_set(c, "ember.shuffle.memory", "4k");
    cr_assert_eq(em_conf_check(c, &err), 0, "%s", err.msg);
    em_conf_free(c);
}

Test(conf_check, local_dir_parent_must_exist)
{
    char *dir = mkdtemp_dup();
    char bad[512], ok[512];
    snprintf(bad, sizeof bad, "%s/missing/dir", dir);
    snprintf(ok, sizeof ok, "%s/made", dir);
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[1]");
    em_conf_set(c, "ember.local.dir", bad);
    cr_assert_eq(em_conf_check(c, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "does not exist, nor does its parent"), "%s", err.msg);
    cr_assert_null(em_context_new(c, &err));
    snprintf(bad, sizeof bad, "%s/missing", dir);
    struct stat st;
    cr_assert_neq(stat(bad, &st), 0, "a refused local dir was created");

    em_conf_set(c, "ember.local.dir", ok);   /* parent exists: made, one level */
    em_context *sc = em_context_new(c, &err);
    cr_assert_not_null(sc, "%s", err.msg);
    cr_assert_eq(strncmp(em_context_app_dir(sc), ok, strlen(ok)), 0);
    em_context_free(sc);
    em_conf_free(c);
    rm_rf(dir);
    free(dir);
}

Test(conf_check, stale_app_dirs_are_swept)
{
    char *dir = mkdtemp_dup();
    char stale[512], live[512], foreign[512], path[600];
    char host[256] = "?";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';

    /* A pid that is surely gone: a child that has exited and been reaped. */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);

    snprintf(stale, sizeof stale, "%s/ember-app-stale1", dir);
    snprintf(live, sizeof live, "%s/ember-app-live01", dir);
    snprintf(foreign, sizeof foreign, "%s/ember-app-noown1", dir);
    cr_assert_eq(mkdir(stale, 0700), 0);
    cr_assert_eq(mkdir(live, 0700), 0);
    cr_assert_eq(mkdir(foreign, 0700), 0);
    snprintf(path, sizeof path, "%s/owner", stale);
    FILE *f = fopen(path, "w");
    fprintf(f, "%ld %s\n", (long)dead, host);
    fclose(f);
    snprintf(path, sizeof path, "%s/owner", live);
    f = fopen(path, "w");
    fprintf(f, "%ld %s\n", (long)getppid(), host);   /* alive */
    fclose(f);

    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[1]");
    em_conf_set(c, "ember.local.dir", dir);
    em_context *sc = em_context_new(c, &err);
    cr_assert_not_null(sc, "%s", err.msg);
    struct stat st;
    cr_assert_neq(stat(stale, &st), 0, "the dead process's app dir was not removed");
    cr_assert_eq(stat(live, &st), 0, "a live process's app dir was removed");
    cr_assert_eq(stat(foreign, &st), 0, "a dir without an owner file was removed");
    snprintf(path, sizeof path, "%s/owner", em_context_app_dir(sc));
    cr_assert_eq(stat(path, &st), 0, "the new app dir has no owner file");
    em_context_free(sc);
    em_conf_free(c);
    rm_rf(dir);
    free(dir);
}
