/* tests/unit/api/test_denied.c - unreadable inputs (issue 16 item 11): a directory or file
 * the process may not read is "permission denied" (EM_EACCES) naming it, never "matches no
 * file", and a task that meets one fails the job at its first attempt instead of being
 * retried ember.task.maxFailures times. Root reads everything, so the tests drop to
 * uid/gid 65534 (nobody) first when run as root (each Criterion test is its own process). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/api/api_test_util.h"

static char g_dir[64];

/* A 0755 temp dir holding d/part-0 ("a b\n"), then privileges dropped when root. */
static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/em_denied_XXXXXX");
    cr_assert(mkdtemp(g_dir));
    cr_assert_eq(chmod(g_dir, 0755), 0);
    char p[128];
    snprintf(p, sizeof p, "%s/d", g_dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/d/part-0", g_dir);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fputs("a b\n", f);
    fclose(f);
    cr_assert_eq(chmod(p, 0644), 0);
    if (geteuid() == 0)   /* so that the unprivileged child may chmod it */
        cr_assert_eq(chown(p, 65534, 65534), 0);
}

static void drop_root(void)
{
    if (geteuid() == 0) {
        cr_assert_eq(setgid(65534), 0);
        cr_assert_eq(setuid(65534), 0);
    }
}

/* The parent (still root, or the owner) restores modes and removes the fixture. */
static void cleanup(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx %s 2>/dev/null; rm -rf %s", g_dir, g_dir);
    if (system(cmd) != 0)
        cr_log_warn("cleanup of %s failed", g_dir);
}

Test(denied, unreadable_directory_is_permission_denied, .init = setup, .fini = cleanup)
{
    char d[128];
    snprintf(d, sizeof d, "%s/d", g_dir);
    cr_assert_eq(chmod(d, 0), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {   /* the child drops root; the parent can still clean up */
        drop_root();
        em_file_list fl;
        em_err err = EM_ERR_INIT;
        int rc = em_file_list_expand(d, &fl, &err);
        _exit(rc == EM_EACCES && strstr(err.msg, "Permission denied") &&
                      strstr(err.msg, "/d") && !strstr(err.msg, "matches no file")
                  ? 0 : 1);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "listing an unreadable dir");
}

Test(denied, unreadable_file_in_glob_is_permission_denied, .init = setup, .fini = cleanup)
{
    char f[128], g[128];
    snprintf(f, sizeof f, "%s/d/part-0", g_dir);
    snprintf(g, sizeof g, "%s/d/part-*", g_dir);
    cr_assert_eq(chmod(f, 0), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        drop_root();
        em_file_list fl;
        em_err err = EM_ERR_INIT;
        int rc = em_file_list_expand(g, &fl, &err);
        _exit(rc == EM_EACCES && strstr(err.msg, "part-0") ? 0 : 1);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "glob over an unreadable file");
}

/* The file is readable when the plan is made and not when the task runs: one attempt. */
Test(denied, task_permission_denied_is_not_retried, .init = setup, .fini = cleanup)
{
    char f[128], d[128];
    snprintf(f, sizeof f, "%s/d/part-0", g_dir);
    snprintf(d, sizeof d, "%s/d", g_dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        drop_root();
        em_context *sc = tu_ctx(NULL);
        em_rdd *r = em_text_file(sc, d, 1);
        uint64_t n = 0;
        em_err err = EM_ERR_INIT;
        int ok = chmod(f, 0) == 0;   /* the child owns the file (setup) */
        int rc = em_rdd_count(r, &n, &err);
        em_context_stats stats;
        em_context_stats_get(sc, &stats);
        ok = ok && rc == EM_EACCES && stats.tasks_run == 1 && strstr(err.msg, "not retried") &&
             strstr(err.msg, "part-0");
        if (!ok)
            fprintf(stderr, "rc %d tasks %llu: %s\n", rc, (unsigned long long)stats.tasks_run,
                    err.msg);
        em_context_free(sc);
        _exit(ok ? 0 : 1);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "one attempt, EM_EACCES");
}
