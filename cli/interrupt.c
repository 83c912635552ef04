/* cli/interrupt.c - Ctrl-C (SIGINT) or SIGTERM while an `ember` command runs jobs: the
 * first such signal cancels the running job, and any job the program starts afterwards, so that the
 * program's action returns EM_ECANCELED, the command frees its context (executors stop,
 * the application directory and partial outputs go) and exits with status 128 + the
 * signal (130 for SIGINT, 143 for SIGTERM), as shells expect. A second signal exits at once
 * (nothing cleaned up: the user asked twice; the next ember run removes the application
 * directory left behind, engine/api/appdir.c).
 *
 * DESIGN: the handler only counts and writes one byte to a self-pipe (both
 * async-signal-safe). A watcher thread reads the pipe; on an interrupt it prints one line
 * and then calls em_cancel_all_jobs every 50 ms until the command stops watching, because
 * the program may start a new job after its cancelled one returns.
 * GLOBALS (STYLE sec. 8: signal flags): g_sigints is written by the handler; g_pipe and
 * the watcher are written only by em__cli_interrupt_start/stop on the command's main
 * thread, one command per process. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/ember.h"
#include "mllib/als/als.h"
#include "mllib/mllib.h"
#include "mllib/tuning/tuning.h"

static volatile sig_atomic_t g_sigints;
static volatile sig_atomic_t g_signo;    /* the first signal caught */
static int g_pipe[2] = {-1, -1};
static struct sigaction g_old, g_old_term;
static pthread_t g_watcher;
static _Atomic(em_context *) g_sc;
static atomic_bool g_interrupted;
static const char *g_prefix = "ember";
static bool g_watching;                  /* the watcher thread runs */

enum { WAKE_SIGINT = 1, WAKE_STOP = 2 };

static void on_sigint(int sig)
{
    int saved = errno;
    if (++g_sigints > 1) {
        static const char msg[] = "\nember: interrupted again; exiting now\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + sig);
    }
    g_signo = sig;
    char b = WAKE_SIGINT;
    ssize_t w = write(g_pipe[1], &b, 1);
    (void)w;
    errno = saved;
}

/* Reads one wake byte, waiting at most ms (-1: forever); 0 when none came. */
static int read_wake(int ms)
{
    struct pollfd p = {.fd = g_pipe[0], .events = POLLIN};
    char b = 0;
    if (poll(&p, 1, ms) <= 0)
        return 0;
    return read(g_pipe[0], &b, 1) == 1 ? b : 0;
}

static void *watch(void *arg)
{
    (void)arg;
    int w;
    while ((w = read_wake(-1)) != WAKE_STOP) {
        if (w != WAKE_SIGINT)
            continue;
        atomic_store(&g_interrupted, true);
        fprintf(stderr, "\n%s: %s; cancelling the running job (Ctrl-C again exits "
                "at once)\n", g_prefix, g_signo == SIGTERM ? "terminated" : "interrupted");
        do {
            em_context *sc = atomic_load(&g_sc);
            if (sc)
                em_cancel_all_jobs(sc);
        } while ((w = read_wake(50)) != WAKE_STOP);
        break;
    }
    return NULL;
}

int em__cli_interrupt_start(const char *prefix)
{
    if (pipe(g_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        fcntl(g_pipe[i], F_SETFD, FD_CLOEXEC);   /* not inherited by executors */
    g_prefix = prefix ? prefix : "ember";
    g_sigints = 0;
    g_signo = 0;
    atomic_store(&g_interrupted, false);
    atomic_store(&g_sc, NULL);
    if (pthread_create(&g_watcher, NULL, watch, NULL) != 0) {
        close(g_pipe[0]);
        close(g_pipe[1]);
        g_pipe[0] = g_pipe[1] = -1;
        return -1;
    }
    g_watching = true;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &g_old);
    sigaction(SIGTERM, &sa, &g_old_term);
    return 0;
}

void em__cli_interrupt_set_context(em_context *sc)
{
    atomic_store(&g_sc, sc);
}

bool em__cli_interrupted(void)
{
    return atomic_load(&g_interrupted) || g_sigints > 0;
}

int em__cli_interrupt_status(void)
{
    return g_signo == SIGTERM ? 128 + SIGTERM : EM_CLI_INTERRUPTED;
}

void em__cli_interrupt_stop(void)
{
    if (!g_watching)
        return;
    g_watching = false;
    atomic_store(&g_sc, NULL);   /* the context is about to be freed */
    char b = WAKE_STOP;
    ssize_t w = write(g_pipe[1], &b, 1);
    (void)w;
    pthread_join(g_watcher, NULL);
    /* The handler stays until the context is gone: a second Ctrl-C during the clean-up
     * still exits at once. The caller restores it with em__cli_interrupt_restore. */
}

void em__cli_interrupt_restore(void)
{
    if (g_pipe[1] < 0)
        return;
    sigaction(SIGINT, &g_old, NULL);
    sigaction(SIGTERM, &g_old_term, NULL);
    close(g_pipe[0]);
    close(g_pipe[1]);
    g_pipe[0] = g_pipe[1] = -1;
}

/* ---------------------------------------------------------------- ember als, ember ml */

/* The hook MLlib's commands call with their context (NULL: about to be freed). */
static void ml_context(em_context *sc)
{
    if (sc)
        em__cli_interrupt_set_context(sc);
    else
        em__cli_interrupt_stop();
}

/* Runs an MLlib command (`run` gets ml_context as its context hook) with Ctrl-C handling:
 * the first SIGINT cancels its jobs, and the command then exits with status 130. */
static int run_ml(const char *prefix, int (*run)(int, char **, void (*)(em_context *)),
                  int argc, char **argv)
{
    if (em__cli_interrupt_start(prefix) != 0)
        em_log(EM_LOG_WARN, "%s: cannot watch for Ctrl-C", prefix);
    int rc = run(argc, argv, ml_context);
    em__cli_interrupt_stop();   /* no-op when ml_context stopped it already */
    if (em__cli_interrupted()) {
        fprintf(stderr, "%s: interrupted\n", prefix);
        rc = em__cli_interrupt_status();
    }
    em__cli_interrupt_restore();
    return rc;
}

int em__cli_als(int argc, char **argv)
{
    return run_ml("ember als", em_als_cli_run, argc, argv);
}

int em__cli_ml(int argc, char **argv)
{
    return run_ml("ember ml", em_ml_cli_run, argc, argv);
}

void em__cli_tune_help(FILE *f)
{
    fputs("Usage: ember tune mlp|lr|als [ARGS...]   (the same commands as `ember ml tune\n"
          "       mlp|lr|als`; ember tune lr --help, ember tune als --help)\n\n", f);
    em_tune_cli_help(f);
}

/* `ember tune ESTIMATOR ARGS...`, Spark-style spelling of a search: runs `ember ml tune
 * ESTIMATOR ARGS...` (mlp, lr or als). */
int em__cli_tune(int argc, char **argv)
{
    if (argc < 2 || em__cli_is_help(argv[1])) {
        em__cli_tune_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? EM_CLI_USAGE : EM_CLI_OK;
    }
    if (strcmp(argv[1], "mlp") != 0 && strcmp(argv[1], "lr") != 0 &&
        strcmp(argv[1], "als") != 0) {
        fprintf(stderr, "ember tune: unknown estimator '%s' (mlp, lr or als)\n", argv[1]);
        return EM_CLI_USAGE;
    }
    char **av = em_xcalloc((size_t)argc + 2, sizeof *av);
    av[0] = (char *)"ml";
    av[1] = (char *)"tune";
    for (int i = 1; i < argc; i++)
        av[i + 1] = argv[i];
    int rc = em__cli_ml(argc + 1, av);
    em_free(av);
    return rc;
}
