/* engine/deploy/spawn.c - starting `ember executor` processes (local-cluster[E,C] drivers):
 * finding the ember command and posix_spawn'ing it with the application's secret in its
 * environment (never on its command line, which other users can read). */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/deploy/deploy.h"
#include "engine/net/net.h"

extern char **environ;

#ifndef EMBER_BUILD_BIN
#define EMBER_BUILD_BIN ""
#endif
#ifndef EMBER_INSTALL_BIN
#define EMBER_INSTALL_BIN ""
#endif

char *em_deploy_ember_bin(const char *given)
{
    if (given && *given)
        return em_xstrdup(given);
    const char *env = getenv("EMBER_BIN");
    if (env && *env)
        return em_xstrdup(env);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        const char *base = strrchr(self, '/');
        base = base ? base + 1 : self;
        if (strcmp(base, "ember") == 0)
            return em_xstrdup(self);
    }
    if (*EMBER_BUILD_BIN && access(EMBER_BUILD_BIN, X_OK) == 0)
        return em_xstrdup(EMBER_BUILD_BIN);
    if (*EMBER_INSTALL_BIN && access(EMBER_INSTALL_BIN, X_OK) == 0)
        return em_xstrdup(EMBER_INSTALL_BIN);
    return NULL;
}

int em_deploy_spawn_executor(const em_deploy_spawn_args *a, pid_t *pid, em_err *err)
{
    char cores[16];
    snprintf(cores, sizeof cores, "%u", a->cores);
    const char *argv[16];
    int k = 0;
    argv[k++] = a->bin;
    argv[k++] = "executor";
    argv[k++] = "--driver";
    argv[k++] = a->driver;
    argv[k++] = "--exec-id";
    argv[k++] = a->exec_id;
    argv[k++] = "--cores";
    argv[k++] = cores;
    if (a->memory) {
        argv[k++] = "--memory";
        argv[k++] = a->memory;
    }
    if (a->work_dir) {
        argv[k++] = "--work-dir";
        argv[k++] = a->work_dir;
    }
    if (a->port && *a->port) {
        argv[k++] = "--port";
        argv[k++] = a->port;
    }
    argv[k] = NULL;

    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = em_xcalloc(nenv + 3, sizeof *envp);
    size_t j = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "EMBER_SECRET=", 13) != 0 &&
            (a->crypto == EM_NET_CRYPTO_ENV ||
             strncmp(environ[i], "EMBER_NETWORK_CRYPTO=", 21) != 0))
            envp[j++] = environ[i];
    char *sec = em_xasprintf("EMBER_SECRET=%s", a->secret);
    envp[j++] = sec;
    /* The executor's links must use the driver's mode (a mismatch fails the login). */
    if (a->crypto != EM_NET_CRYPTO_ENV)
        envp[j++] = a->crypto == EM_NET_CRYPTO_OFF ? "EMBER_NETWORK_CRYPTO=false"
                                                   : "EMBER_NETWORK_CRYPTO=true";
    envp[j] = NULL;
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    /* The child gets default signal handling (a driver may ignore SIGPIPE etc.). */
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    posix_spawnattr_setsigdefault(&attr, &def);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    int rc = posix_spawn(pid, a->bin, NULL, &attr, (char *const *)argv, envp);
    posix_spawnattr_destroy(&attr);
    em_free(sec);
    em_free(envp);
    if (rc != 0)
        return em_err_set(err, EM_EIO, "cannot start executor %s (%s): %s", a->exec_id, a->bin,
                          strerror(rc));
    return 0;
}

void em_deploy_describe_exit(int status, char *buf, size_t n)
{
    if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, n, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, n, "stopped (status 0x%x)", status);
}

const char *em_deploy_signal_name(int sig)
{
    switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    default: return "signal";
    }
}

void em_deploy_log_tail(const char *path, int max_lines, char *buf, size_t n)
{
    if (n == 0)
        return;
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    size_t len = 0;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        size_t want = (size_t)st.st_size < n - 1 ? (size_t)st.st_size : n - 1;
        ssize_t k = pread(fd, buf, want, (off_t)((size_t)st.st_size - want));
        len = k > 0 ? (size_t)k : 0;
    }
    close(fd);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    buf[len] = '\0';
    /* Keep the last max_lines lines: cut after the max_lines-th newline from the end. */
    size_t start = 0;
    int lines = 0;
    for (size_t i = len; i > 0; i--)
        if (buf[i - 1] == '\n' && ++lines == max_lines) {
            start = i;
            break;
        }
    memmove(buf, buf + start, len - start + 1);
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\n')
            *p = '?';
}
