/* engine/api/appdir.c - owner records of application directories and the removal of
 * the ones left behind by a driver that died (crash, SIGKILL, a second Ctrl-C).
 *
 * FORMAT. <app dir>/owner is one line "<pid> <hostname>\n", written right after mkdtemp.
 * A directory <base>/ember-app-* is stale when all of these hold: it is a real directory
 * (lstat, not a symlink) owned by this user, its owner file names this host, and that
 * pid no longer exists (kill(pid, 0) fails with ESRCH; EPERM means alive, another user's).
 * A directory without a readable owner file is left alone: it may be one being made
 * right now, or one of an older ember. A recycled pid only makes a stale directory look
 * alive, which is safe: it is removed on a later run.
 * THREADS: called by em_context_new on its thread. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/api/api_int.h"

#define OWNER_FILE "owner"

static void host_name(char *buf, size_t n)
{
    if (gethostname(buf, n) != 0)
        snprintf(buf, n, "?");
    buf[n - 1] = '\0';
    for (char *p = buf; *p; p++)   /* one word in the owner line */
        if (*p == ' ' || *p == '\n')
            *p = '_';
}

int em__app_dir_claim(const char *app_dir, em_err *err)
{
    char host[256], *path = em_xasprintf("%s/" OWNER_FILE, app_dir);
    host_name(host, sizeof host);
    FILE *f = fopen(path, "w");
    int rc = 0;
    if (!f || fprintf(f, "%ld %s\n", (long)getpid(), host) < 0 || fclose(f) != 0) {
        rc = em_err_set(err, EM_EIO, "%s: %s", path, strerror(errno));
        if (f)
            (void)fclose(f);
    }
    em_free(path);
    return rc;
}

/* True when dir (a real directory of this user) has an owner file naming a process of
 * this host that is gone. */
static bool is_stale(const char *dir, const char *host)
{
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
        return false;
    char *path = em_xasprintf("%s/" OWNER_FILE, dir);
    FILE *f = fopen(path, "r");
    em_free(path);
    if (!f)
        return false;
    long pid = 0;
    char h[256];
    int n = fscanf(f, "%ld %255s", &pid, h);
    fclose(f);
    if (n != 2 || pid <= 1 || pid == (long)getpid() || strcmp(h, host) != 0)
        return false;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int em__app_dirs_sweep(const char *base)
{
    char host[256];
    int removed = 0;
    DIR *d = opendir(base);
    struct dirent *e;

    if (!d)
        return 0;
    host_name(host, sizeof host);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "ember-app-", 10) != 0)
            continue;
        char *dir = em_xasprintf("%s/%s", base, e->d_name);
        if (is_stale(dir, host)) {
            em_err err = EM_ERR_INIT;
            if (em_rm_rf(dir, &err) == 0) {
                em_log(EM_LOG_INFO, "context: removed %s, left by a driver that is gone", dir);
                removed++;
            } else {
                em_log(EM_LOG_WARN, "context: removing stale %s: %s", dir, err.msg);
            }
        }
        em_free(dir);
    }
    closedir(d);
    return removed;
}
