/* cli/cmd_slurm.c - `ember slurm`: a standalone cluster for the length of one job inside a
 * Slurm allocation (salloc/sbatch), the way Spark users run start-master/start-worker
 * through srun.
 *
 * FLOW (docs/slurm.md): expand SLURM_JOB_NODELIST with `scontrol show hostnames`; write a
 * fresh random cluster secret to RUN/secret, where RUN is a new directory (0700) under
 * --secret-dir (created 0700, must be this user's and closed to others; default
 * $HOME/.ember/slurm, which every node must see); `srun` one `ember master` on the first
 * node (port 0 unless --port: read back from its "master listening" line) and one
 * `ember slurm worker-task` per node, which offers that node's SLURM_CPUS_ON_NODE and
 * memory and its own address; wait until every worker registered (the master's log);
 * run the job with `ember submit` in this process; then `scancel --signal=TERM` each step
 * (found by its name in squeue; workers kill their executors and remove their
 * directories), cancel what is left after a grace period, and remove RUN (kept, without
 * the secret, when something failed: it holds master.log and workers.log).
 *
 * SECRET: only in RUN/secret (0600) and read there by the master, the workers and the
 * driver through --secret-file: never on a command line or in an environment.
 * STRAYS: each srun runs in its own process group (Ctrl-C at a terminal reaches only this
 * process, which then stops them in order) with PR_SET_PDEATHSIG = SIGTERM, so even a
 * killed `ember slurm` takes its steps with it; the allocation's end kills the rest.
 * THREADS: main thread only, before and after the job; SIGINT/SIGTERM before the job set
 * a flag that every wait polls (during the job cli/interrupt.c cancels it). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_standalone.h"
#include "cli/cmd_slurm.h"
#include "engine/deploy/deploy.h"
#include "engine/net/net.h" /* em_secure_zero */

#define PREFIX    "ember slurm"
#define MAX_NODES 4096

typedef struct slurm_args {
    const char *secret_dir, *worker_memory, *exec_memory, *name;
    uint16_t port, ui_port;
    uint32_t worker_cores, total_cores, exec_cores, start_timeout_s;
    em__cli_confs confs;
    bool quiet, keep_logs;
} slurm_args;

static const em__cli_opt slurm_opt[] = {
    EM_CLI_UINT("--port", "P", slurm_args, port, 0, 65535,
                "the master's port (default 0: any free one)"),
    EM_CLI_UINT("--ui-port", "P", slurm_args, ui_port, 0, 65535,
                "the master's status page on its node's 127.0.0.1\n(default 0: none)"),
    EM_CLI_STR("--secret-dir", "D", slurm_args, secret_dir,
               "per-user directory every node sees, made 0700\n"
               "(default $HOME/.ember/slurm); the run's secret\n"
               "file (0600) and logs go in a new directory there"),
    EM_CLI_UINT("--worker-cores", "N", slurm_args, worker_cores, 1, 4096,
                "cores each worker offers (default: its node's\nSLURM_CPUS_ON_NODE)"),
    EM_CLI_SIZE("--worker-memory", "SIZE", slurm_args, worker_memory,
                "memory each worker offers (default: the node's\n"
                "SLURM_MEM_PER_NODE, else SLURM_MEM_PER_CPU x cores,\nelse 4g)"),
    EM_CLI_UINT("--start-timeout", "S", slurm_args, start_timeout_s, 1, 86400,
                "seconds to wait for the master and all workers\n(default 120)"),
    EM_CLI_FLAG("--keep-logs", NULL, slurm_args, keep_logs,
                "keep the daemons' logs (master.log, workers.log)\n"
                "after a successful run too (always kept on failure)"),
    EM_CLI_SIZE("--executor-memory", "SIZE", slurm_args, exec_memory,
                "as ember submit: memory per executor (default 1g)"),
    EM_CLI_UINT("--total-executor-cores", "N", slurm_args, total_cores, 1, 1u << 20,
                "as ember submit: cores for the application\n(default all)"),
    EM_CLI_UINT("--executor-cores", "N", slurm_args, exec_cores, 1, 4096,
                "as ember submit: cores per executor (default: all\nof a worker's)"),
    EM_CLI_CONF("--conf", "KEY=VALUE", slurm_args, confs,
                "as ember submit: a configuration key (repeatable)"),
    EM_CLI_STR("--name", "NAME", slurm_args, name, "as ember submit: application name"),
    EM_CLI_FLAG("--quiet", "-q", slurm_args, quiet, "only errors on stderr, no progress bar"),
};
static const em__cli_opts slurm_opts = {PREFIX, slurm_opt, sizeof slurm_opt / sizeof slurm_opt[0],
                                        em__cli_slurm_help};

/* `ember slurm worker-task`: what srun runs on every node. */
typedef struct task_args {
    const char *master, *secret_file, *memory;
    uint32_t cores;
} task_args;

static void task_help(FILE *f);
static const em__cli_opt task_opt[] = {
    EM_CLI_STR("--master", "URL", task_args, master, "the master, ember://HOST:PORT (required)"),
    EM_CLI_STR("--secret-file", "F", task_args, secret_file, "the cluster secret (required)"),
    EM_CLI_UINT("--cores", "N", task_args, cores, 1, 4096,
                "cores to offer (default SLURM_CPUS_ON_NODE)"),
    EM_CLI_SIZE("--memory", "SIZE", task_args, memory,
                "memory to offer (default from SLURM_MEM_PER_NODE)"),
};
static const em__cli_opts task_opts = {PREFIX " worker-task", task_opt,
                                       sizeof task_opt / sizeof task_opt[0], task_help};

void em__cli_slurm_help(FILE *f)
{
    fprintf(f, "Usage: ember slurm [OPTIONS] JOB.so [ARGS...]\n"
               "\n"
               "Inside a Slurm allocation (salloc or an sbatch script): starts a standalone\n"
               "master on the allocation's first node and one worker on every node through\n"
               "srun, runs JOB.so against them as `ember submit` does (the driver runs in\n"
               "this process), and stops master and workers when the job ends, fails or is\n"
               "interrupted (SIGINT/SIGTERM).\n"
               "\n"
               "Options:\n");
    em__cli_print_opts(f, &slurm_opts);
    fprintf(f, "\n"
               "Needs SLURM_JOB_ID and SLURM_JOB_NODELIST (set by salloc/sbatch), and srun,\n"
               "scontrol, squeue and scancel on PATH. The cluster secret is made fresh for\n"
               "the run and lives only in a 0600 file under --secret-dir, removed at the\n"
               "end. The ember executable and JOB.so must be at the same path on every\n"
               "node. The driver listens on this node's address (SLURMD_NODENAME, else the\n"
               "host name) unless --conf ember.driver.host=ADDR. srun runs `ember slurm\n"
               "worker-task` on each node (an internal mode). See docs/slurm.md for an\n"
               "sbatch script. Exit status: 0 ok, 1 failed, 2 usage, 130/143 interrupted.\n");
}

static void task_help(FILE *f)
{
    fprintf(f, "Usage: ember slurm worker-task --master ember://HOST:PORT --secret-file F\n"
               "                              [--cores N] [--memory SIZE]\n"
               "\n"
               "Internal: what `ember slurm` has srun run on each allocated node. Runs an\n"
               "`ember worker` that listens on this node's address (SLURMD_NODENAME,\n"
               "resolved) and offers its Slurm share of cores and memory.\n"
               "\n"
               "Options:\n");
    em__cli_print_opts(f, &task_opts);
}

/* ---------------------------------------------------------------- signals */

/* GLOBALS (STYLE sec. 8: signal flags): written by on_stop only; polled by the waits. */
static volatile sig_atomic_t g_stop_sig;

static void on_stop(int sig)
{
    if (!g_stop_sig)
        g_stop_sig = sig;
}

/* ---------------------------------------------------------------- small helpers */

/* em__cli_fail for functions that return -1. */
static int failed(const char *fmt, ...) EM_PRINTF(1, 2);
static int failed(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PREFIX ": ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

/* The first IPv4 address of `name` as a literal in out (the URLs and --host values built
 * here take no IPv6 literal). -1 after an error message. */
static int resolve_ipv4(const char *name, char *out, size_t cap)
{
    em_err err = EM_ERR_INIT;
    if (em_net_resolve_ip(name, true, out, cap, &err) < 0)
        return failed("%s", err.msg);
    return 0;
}

/* A decimal environment variable in [1, max], or 0 when unset or not one. Slurm writes
 * SLURM_CPUS_ON_NODE as "8" and SLURM_MEM_PER_NODE as megabytes ("16000"). */
static uint64_t env_u64(const char *var, uint64_t max)
{
    const char *s = getenv(var);
    char *end;
    if (!s || !*s)
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0 || v > max)
        return 0;
    return v;
}

/* The node's memory share in bytes from Slurm's variables (cores: the worker's cores). */
static uint64_t slurm_memory(uint32_t cores)
{
    uint64_t mb = env_u64("SLURM_MEM_PER_NODE", (uint64_t)1 << 40);
    if (!mb)
        mb = env_u64("SLURM_MEM_PER_CPU", (uint64_t)1 << 30) * cores;
    return mb ? mb << 20 : (uint64_t)4 << 30;
}

/* The fewest CPUs the job has on any of its nodes, from SLURM_JOB_CPUS_PER_NODE ("8",
 * "8(x3),4": counts with repeats); SLURM_CPUS_ON_NODE, else 1, when unset or malformed.
 * srun's --cpus-per-task for the workers: one value for every node. */
static uint32_t job_min_cpus(void)
{
    const char *s = getenv("SLURM_JOB_CPUS_PER_NODE");
    unsigned long min = 0;
    while (s && *s) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0)
            break;
        if (!min || v < min)
            min = v;
        s = end;
        if (*s == '(')
            s = strchr(s, ')') ? strchr(s, ')') + 1 : "";
        if (*s == ',')
            s++;
    }
    if (!min)
        min = (unsigned long)env_u64("SLURM_CPUS_ON_NODE", 4096);
    return min && min <= 4096 ? (uint32_t)min : 1;
}

/* This node's name as Slurm knows it (SLURMD_NODENAME in steps and batch scripts), else
 * the host name. */
static const char *this_node(char *buf, size_t cap)
{
    const char *n = getenv("SLURMD_NODENAME");
    if (n && *n)
        return n;
    if (gethostname(buf, cap) != 0) {
        snprintf(buf, cap, "localhost");
    }
    buf[cap - 1] = '\0';
    return buf;
}

/* ---------------------------------------------------------------- worker-task */

static int run_worker_task(int argc, char **argv)
{
    task_args a = {0};
    char node_buf[256], host[INET_ADDRSTRLEN], mhost[256];
    em_err err = EM_ERR_INIT;
    int i = 1, rc;

    if ((rc = em__cli_parse_opts(&task_opts, EM_CLI_REST_NONE, &a, argc, argv, &i)) >= 0)
        return rc;
    if (!a.master || !a.secret_file)
        return em__cli_usage_error(PREFIX " worker-task", PREFIX " worker-task",
                                   "--master and --secret-file are required");
    em_worker_opts o = {.cores = a.cores};
    if (em_standalone_parse_url(a.master, mhost, sizeof mhost, &o.master_port, &err) < 0)
        return em__cli_usage_error(PREFIX " worker-task", PREFIX " worker-task", "--master: %s",
                                   err.msg);
    o.master_host = mhost;
    if (resolve_ipv4(this_node(node_buf, sizeof node_buf), host, sizeof host) < 0)
        return EM_CLI_FAIL;
    o.host = host;
    if (!o.cores)
        o.cores = (uint32_t)env_u64("SLURM_CPUS_ON_NODE", 4096);
    if (!o.cores) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        o.cores = c > 0 ? (uint32_t)c : 1;
    }
    o.memory = a.memory ? (uint64_t)em_parse_size(a.memory) : slurm_memory(o.cores);
    char *secret = em_standalone_read_secret(a.secret_file, &err);
    if (!secret)
        return em__cli_fail(PREFIX " worker-task", "%s", err.msg);
    o.secret = secret;
    rc = em_worker_run(&o, em__cli_stop_on_signals(), &err);
    em_standalone_free_secret(secret);
    return rc < 0 ? em__cli_fail(PREFIX " worker-task", "%s", err.msg) : EM_CLI_OK;
}

/* ---------------------------------------------------------------- child processes */

/* One run: its directory and files, the master's address, the two srun steps. */
typedef struct slurm_run {
    char *run_dir, *secret, *master_log, *workers_log;
    char master_name[48], workers_name[48]; /* the steps' names (srun --job-name) */
    char master_ip[INET_ADDRSTRLEN];
    uint16_t master_port;
    pid_t master_pid, workers_pid;
    size_t nnodes;
} slurm_run;

/* Starts argv (searched on PATH) in its own process group with stdin /dev/null, stdout
 * and stderr to out_fd (or a pipe whose read end goes to *pipe_rd when out_fd < 0), and
 * SIGTERM when this process dies. The pid, or -1 after an error message. Called before
 * any thread exists (fork then only copies this one). */
static pid_t spawn(char *const *argv, int out_fd, int *pipe_rd)
{
    int p[2] = {-1, -1};
    pid_t parent = getpid();
    if (out_fd < 0) {
        if (pipe2(p, O_CLOEXEC) != 0)
            return failed("pipe: %s", strerror(errno));
        out_fd = p[1];
    }
    pid_t pid = fork();
    if (pid < 0) {
        em__cli_fail(PREFIX, "fork: %s", strerror(errno));
        if (p[0] >= 0) {
            close(p[0]);
            close(p[1]);
        }
        return -1;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        int in = open("/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
            _exit(127);
        execvp(argv[0], argv);
        dprintf(2, "ember slurm: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (p[0] >= 0) {
        close(p[1]);
        *pipe_rd = p[0];
    }
    return pid;
}

/* Waits for pid at most timeout_ms (polling); its status in *status, 0 when it ended,
 * 1 when not yet. */
static int wait_ms(pid_t pid, int timeout_ms, int *status)
{
    for (int waited = 0;; waited += 20) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return 0;
        if (waited >= timeout_ms)
            return 1;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static char *run_capture(char *const *argv);

/* The ids ("JOB.STEP") of this job's steps named names[0..n-1], from one squeue call, in
 * ids[] (new strings; NULL when not found). */
static void step_ids(const char *job_id, const char *const *names, char **ids, int n)
{
    char jobs[64];
    snprintf(jobs, sizeof jobs, "--jobs=%s", job_id);
    char *argv[] = {"squeue", "--steps", jobs, "--noheader", "--format=%i %j", NULL};
    char *out = run_capture(argv);
    for (int k = 0; k < n; k++)
        ids[k] = NULL;
    if (!out)
        return;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *sp = strchr(line, ' ');
        for (int k = 0; sp && k < n; k++)
            if (!ids[k] && strcmp(sp + 1, names[k]) == 0) {
                *sp = '\0';
                ids[k] = em_xstrdup(line);
                break;
            }
    }
    em_free(out);
}

/* Stops the workers' and the master's steps: `scancel --signal=TERM JOB.STEP...` delivers
 * SIGTERM to the steps' processes, so that workers kill their executors and remove their
 * directories (a SIGTERM to srun itself would cancel its step with SIGKILL at once). An
 * srun still running 15 s later gets SIGTERM (its step is cancelled), then SIGKILL to its
 * process group. */
static void stop_steps(slurm_run *r, const char *job_id)
{
    pid_t pids[2] = {r->workers_pid, r->master_pid};
    const char *names[2] = {r->workers_name, r->master_name};
    char *ids[2] = {NULL, NULL}, *argv[5] = {"scancel", "--signal=TERM", NULL, NULL, NULL};
    int st, n = 2;
    for (int k = 0; k < 2; k++)
        if (pids[k] > 0 && waitpid(pids[k], &st, WNOHANG) == pids[k])
            pids[k] = 0;
    if (pids[0] <= 0 && pids[1] <= 0)
        return;
    step_ids(job_id, names, ids, n);
    for (int k = 0, a = 2; k < 2; k++)
        if (pids[k] > 0 && ids[k])
            argv[a++] = ids[k];
    if (argv[2]) {
        char *out = run_capture(argv);
        em_free(out);
    }
    for (int k = 0; k < 2; k++) {
        if (pids[k] <= 0)
            continue;
        if (ids[k] && !wait_ms(pids[k], 15000, &st))
            continue;
        fprintf(stderr, "ember slurm: step %s %s; cancelling it\n", names[k],
                ids[k] ? "did not stop within 15 s of SIGTERM" : "was not found in squeue");
        kill(pids[k], SIGTERM);
        if (!wait_ms(pids[k], 10000, &st))
            continue;
        fprintf(stderr, "ember slurm: step %s did not stop; killing srun\n", names[k]);
        kill(-pids[k], SIGKILL);
        wait_ms(pids[k], 5000, &st);
    }
    em_free(ids[0]);
    em_free(ids[1]);
}

/* Reads `cmd` (argv) output to the end into a new string, at most 1 MiB, 30 s. NULL after
 * an error message (a failed command's output is printed). */
static char *run_capture(char *const *argv)
{
    int rd = -1, st = 0;
    pid_t pid = spawn(argv, -1, &rd);
    if (pid < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = em_xmalloc(cap);
    double t_end = em_now_s() + 30;
    for (;;) {
        struct pollfd pf = {.fd = rd, .events = POLLIN};
        int left = (int)((t_end - em_now_s()) * 1000);
        if (left <= 0 || poll(&pf, 1, left) == 0) {
            em__cli_fail(PREFIX, "%s did not answer within 30 s", argv[0]);
            kill(-pid, SIGKILL);
            n = SIZE_MAX;
            break;
        }
        if (n + 1 >= cap) {
            if (cap >= (1u << 20)) {
                em__cli_fail(PREFIX, "%s printed over 1 MiB", argv[0]);
                kill(-pid, SIGKILL);
                n = SIZE_MAX;
                break;
            }
            cap *= 2;
            buf = em_xrealloc(buf, cap);
        }
        ssize_t r = read(rd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(rd);
    waitpid(pid, &st, 0);
    if (n == SIZE_MAX) {
        em_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        em__cli_fail(PREFIX, "%s %s failed: %s", argv[0], argv[1], buf);
        em_free(buf);
        return NULL;
    }
    return buf;
}

/* ---------------------------------------------------------------- the run directory */

/* Makes dir (and its parent when missing) 0700 and checks that it is this user's and
 * closed to group and others: the secret goes in it. */
static int make_private_dir(const char *dir)
{
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        if (errno == ENOENT) {
            char *parent = em_xstrdup(dir), *slash = strrchr(parent, '/');
            int rc = -1;
            if (slash && slash != parent) {
                *slash = '\0';
                if (mkdir(parent, 0700) == 0 || errno == EEXIST)
                    rc = mkdir(dir, 0700) == 0 ? 0 : -1;
            }
            em_free(parent);
            if (rc != 0)
                return failed("cannot create %s: %s", dir, strerror(errno));
        } else {
            return failed("cannot create %s: %s", dir, strerror(errno));
        }
    }
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return failed("%s is not a directory", dir);
    if (st.st_uid != geteuid() || (st.st_mode & 077))
        return failed("%s must be yours and closed to others (chmod 700 %s)", dir, dir);
    return 0;
}

/* Writes a new random secret (64 hex digits) to path, created 0600 (O_EXCL). */
static int write_secret(const char *path)
{
    unsigned char raw[32];
    char hex[65];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return failed("getrandom: %s", strerror(errno));
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int ok = fd >= 0 && write(fd, hex, 64) == 64 && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    em_secure_zero(raw, sizeof raw);
    em_secure_zero(hex, sizeof hex);
    if (!ok)
        return failed("cannot write %s: %s", path, strerror(e));
    return 0;
}

/* ---------------------------------------------------------------- waiting for the daemons */

/* The whole of a small log file (at most 4 MiB) as a string; "" when unreadable. */
static char *slurp(const char *path)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    em_err err = EM_ERR_INIT;
    if (em_read_file(path, &buf, &n, &err) < 0 || !buf)
        return em_xstrdup("");
    char *s = em_xmalloc(n + 1);
    memcpy(s, buf, n);
    s[n] = '\0';
    em_free(buf);
    return s;
}

static size_t count_lines_with(const char *text, const char *needle)
{
    size_t k = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        k++;
    return k;
}

/* Prints the last lines of a log to stderr, after a failure. */
static void print_tail(const char *path)
{
    char *s = slurp(path);
    size_t n = strlen(s), lines = 0;
    const char *start = s;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == '\n' && ++lines > 12) {
            start = s + i;
            break;
        }
    fprintf(stderr, "ember slurm: %s ends with:\n%s", path, start);
    em_free(s);
}

/* Polls the master's log until it listens (reads its port) and nworkers workers have
 * registered, or the timeout, a signal or a step's end. 0 or -1 after a message. */
static int wait_ready(slurm_run *r, uint32_t timeout_s)
{
    double t_end = em_now_s() + timeout_s;
    int st;
    for (;;) {
        char *log = slurp(r->master_log);
        const char *l = strstr(log, "master listening on ember://");
        if (l && !r->master_port) {
            const char *colon = strchr(l + 28, ':');
            unsigned long p = colon ? strtoul(colon + 1, NULL, 10) : 0;
            if (p > 0 && p < 65536)
                r->master_port = (uint16_t)p;
        }
        size_t reg = count_lines_with(log, "registered with");
        em_free(log);
        if (r->master_port && r->workers_pid > 0 && reg >= r->nnodes)
            return 0;
        if (r->master_port && r->workers_pid == 0)
            return 0; /* the caller starts the workers now */
        if (g_stop_sig)
            return failed("%s while starting the cluster",
                          g_stop_sig == SIGINT ? "interrupted" : "terminated");
        if (waitpid(r->master_pid, &st, WNOHANG) == r->master_pid) {
            r->master_pid = 0;
            print_tail(r->master_log);
            return failed("the master's srun step ended before the cluster "
                          "was up");
        }
        if (r->workers_pid > 0 && waitpid(r->workers_pid, &st, WNOHANG) == r->workers_pid) {
            r->workers_pid = 0;
            print_tail(r->workers_log);
            return failed("the workers' srun step ended before the cluster "
                          "was up");
        }
        if (em_now_s() > t_end) {
            print_tail(r->master_port ? r->workers_log : r->master_log);
            return failed("%s within %u s (--start-timeout)",
                          r->master_port ? "not every worker registered"
                                         : "the master did not start",
                          timeout_s);
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---------------------------------------------------------------- the command */

/* The submit argv: submit --master URL --secret-file F [forwarded options] -- JOB ARGS. */
static char **submit_argv(const slurm_args *a, const slurm_run *r, const char *driver_host,
                          int job_argc, char **job_argv, int *argc_out, char ***owned)
{
    char **v = em_xcalloc((size_t)job_argc + 2 * EM_CLI_MAX_CONFS + 32, sizeof *v);
    char **own = em_xcalloc(8, sizeof *own);
    int n = 0, k = 0;
    v[n++] = "submit";
    v[n++] = "--master";
    v[n++] = own[k++] = em_xasprintf("ember://%s:%u", r->master_ip, r->master_port);
    v[n++] = "--secret-file";
    v[n++] = r->secret;
    if (a->exec_memory) {
        v[n++] = "--executor-memory";
        v[n++] = (char *)a->exec_memory;
    }
    if (a->total_cores) {
        v[n++] = "--total-executor-cores";
        v[n++] = own[k++] = em_xasprintf("%u", a->total_cores);
    }
    if (a->exec_cores) {
        v[n++] = "--executor-cores";
        v[n++] = own[k++] = em_xasprintf("%u", a->exec_cores);
    }
    if (a->name) {
        v[n++] = "--name";
        v[n++] = (char *)a->name;
    }
    if (a->quiet)
        v[n++] = "--quiet";
    if (driver_host) {
        v[n++] = "--conf";
        v[n++] = own[k++] = em_xasprintf("ember.driver.host=%s", driver_host);
    }
    for (int i = 0; i < a->confs.n; i++) {
        v[n++] = "--conf";
        v[n++] = (char *)a->confs.kv[i];
    }
    v[n++] = "--";
    for (int i = 0; i < job_argc; i++)
        v[n++] = job_argv[i];
    *argc_out = n;
    *owned = own;
    return v;
}

static bool confs_set(const slurm_args *a, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < a->confs.n; i++)
        if (!strncmp(a->confs.kv[i], key, kl) && a->confs.kv[i][kl] == '=')
            return true;
    return getenv("EMBER_DRIVER_HOST") != NULL;
}

/* Starts master and workers; 0 when all registered. */
static int start_cluster(const slurm_args *a, slurm_run *r, char **nodes, char *self_exe)
{
    char port[8], ui[8], nn[24], cpus[48];
    snprintf(port, sizeof port, "%u", a->port);
    snprintf(ui, sizeof ui, "%u", a->ui_port);
    int mfd = open(r->master_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int wfd = open(r->workers_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (mfd < 0 || wfd < 0) {
        if (mfd >= 0)
            close(mfd);
        if (wfd >= 0)
            close(wfd);
        return failed("cannot create the logs in %s: %s", r->run_dir, strerror(errno));
    }
    /* --overlap: the steps share the allocation's CPUs with each other and the batch
     * step; --cpu-bind=none: a worker's executors use all its node's share. EMBER_LOG:
     * info at least for the master (its "registered" lines are what wait_ready counts),
     * the user's level or info for the workers (their logs say which executors ran). */
    const char *lvl = getenv("EMBER_LOG");
    char *mexport =
        em_xasprintf("--export=ALL,EMBER_LOG=%s", lvl && !strcmp(lvl, "debug") ? "debug" : "info");
    char *wexport = em_xasprintf("--export=ALL,EMBER_LOG=%s", lvl && *lvl ? lvl : "info");
    char mname[64], wname[64];
    snprintf(mname, sizeof mname, "--job-name=%s", r->master_name);
    snprintf(wname, sizeof wname, "--job-name=%s", r->workers_name);
    char *margv[] = {"srun",
                     "--overlap",
                     mname,
                     "--nodes=1",
                     "--ntasks=1",
                     "--cpu-bind=none",
                     "--kill-on-bad-exit=1",
                     mexport,
                     "-w",
                     nodes[0],
                     self_exe,
                     "master",
                     "--host",
                     r->master_ip,
                     "--port",
                     port,
                     "--ui-port",
                     ui,
                     "--secret-file",
                     r->secret,
                     NULL};
    r->master_pid = spawn(margv, mfd, NULL);
    close(mfd);
    em_free(mexport);
    if (r->master_pid < 0 || wait_ready(r, a->start_timeout_s ? a->start_timeout_s : 120) < 0) {
        close(wfd);
        em_free(wexport);
        return -1;
    }
    char url[64];
    snprintf(url, sizeof url, "ember://%s:%u", r->master_ip, r->master_port);
    snprintf(nn, sizeof nn, "%zu", r->nnodes);
    /* --cpus-per-task: the worker's share of the node, so that a task plugin binding CPUs
     * leaves them all to it (Slurm's own default is 1 CPU per task). */
    snprintf(cpus, sizeof cpus, "--cpus-per-task=%u", job_min_cpus());
    char wcores[16], *wargv[26];
    int n = 0;
    wargv[n++] = "srun";
    wargv[n++] = "--overlap";
    wargv[n++] = wname;
    wargv[n++] = "--nodes";
    wargv[n++] = nn;
    wargv[n++] = "--ntasks";
    wargv[n++] = nn;
    wargv[n++] = "--ntasks-per-node=1";
    wargv[n++] = cpus;
    wargv[n++] = "--cpu-bind=none";
    wargv[n++] = "--kill-on-bad-exit=0";
    wargv[n++] = wexport;
    wargv[n++] = self_exe;
    wargv[n++] = "slurm";
    wargv[n++] = "worker-task";
    wargv[n++] = "--master";
    wargv[n++] = url;
    wargv[n++] = "--secret-file";
    wargv[n++] = r->secret;
    if (a->worker_cores) {
        snprintf(wcores, sizeof wcores, "%u", a->worker_cores);
        wargv[n++] = "--cores";
        wargv[n++] = wcores;
    }
    if (a->worker_memory) {
        wargv[n++] = "--memory";
        wargv[n++] = (char *)a->worker_memory;
    }
    wargv[n] = NULL;
    r->workers_pid = spawn(wargv, wfd, NULL);
    close(wfd);
    em_free(wexport);
    if (r->workers_pid < 0)
        return -1;
    return wait_ready(r, a->start_timeout_s ? a->start_timeout_s : 120);
}

static void rm_run_dir(slurm_run *r, bool keep_logs)
{
    if (r->secret)
        unlink(r->secret);
    if (!r->run_dir)
        return;
    if (keep_logs) {
        fprintf(stderr, "ember slurm: the daemons' logs are in %s\n", r->run_dir);
        return;
    }
    unlink(r->master_log);
    unlink(r->workers_log);
    rmdir(r->run_dir);
}

int em__cli_slurm(int argc, char **argv)
{
    slurm_args a = {0};
    slurm_run r = {0};
    char **nodes = NULL, *hostnames = NULL, *self_exe = NULL, *dir = NULL;
    char node_buf[256], driver_ip[INET_ADDRSTRLEN];
    int i = 1, rc;

    if (argc >= 2 && strcmp(argv[1], "worker-task") == 0)
        return run_worker_task(argc - 1, argv + 1);
    if ((rc = em__cli_parse_opts(&slurm_opts, EM_CLI_REST_OPERAND, &a, argc, argv, &i)) >= 0)
        return rc;
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    if (i >= argc)
        return em__cli_usage_error(PREFIX, PREFIX, "missing JOB.so");
    if (access(argv[i], R_OK) != 0)
        return em__cli_usage_error(PREFIX, PREFIX, "%s: no such job library", argv[i]);
    const char *job_id = getenv("SLURM_JOB_ID"), *nodelist = getenv("SLURM_JOB_NODELIST");
    if (!job_id || !*job_id || !nodelist || !*nodelist)
        return em__cli_usage_error(PREFIX, PREFIX,
                                   "not inside a Slurm allocation "
                                   "(SLURM_JOB_ID and SLURM_JOB_NODELIST are unset): run it "
                                   "from an sbatch script or a salloc shell");
    /* A secret of the user's environment would travel to every step with srun's
     * --export=ALL: this run makes its own. */
    unsetenv("EMBER_SECRET");

    struct sigaction sa = {.sa_handler = on_stop}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    signal(SIGPIPE, SIG_IGN);
    rc = EM_CLI_FAIL;

    char *scontrol_argv[] = {"scontrol", "show", "hostnames", (char *)nodelist, NULL};
    if (!(hostnames = run_capture(scontrol_argv)))
        goto out;
    nodes = em_xcalloc(MAX_NODES + 1, sizeof *nodes);
    for (char *save = NULL, *t = strtok_r(hostnames, " \t\r\n", &save); t;
         t = strtok_r(NULL, " \t\r\n", &save)) {
        if (r.nnodes == MAX_NODES) {
            em__cli_fail(PREFIX, "over %d nodes in SLURM_JOB_NODELIST", MAX_NODES);
            goto out;
        }
        nodes[r.nnodes++] = t;
    }
    if (r.nnodes == 0) {
        em__cli_fail(PREFIX, "scontrol show hostnames '%s' listed no node", nodelist);
        goto out;
    }
    if (resolve_ipv4(nodes[0], r.master_ip, sizeof r.master_ip) < 0)
        goto out;
    bool own_driver_host = !confs_set(&a, "ember.driver.host");
    if (own_driver_host &&
        resolve_ipv4(this_node(node_buf, sizeof node_buf), driver_ip, sizeof driver_ip) < 0)
        goto out;
    if (!(self_exe = realpath("/proc/self/exe", NULL))) {
        em__cli_fail(PREFIX, "cannot find the ember executable: %s", strerror(errno));
        goto out;
    }

    /* The run directory: --secret-dir/JOBID.STEP-PID, 0700, holding secret and logs. */
    if (a.secret_dir) {
        dir = em_xstrdup(a.secret_dir);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            em__cli_fail(PREFIX, "HOME is unset: give --secret-dir D");
            goto out;
        }
        /* ~/.ember is made 0700 when missing; only ~/.ember/slurm must be private. */
        char *ember_dir = em_xasprintf("%s/.ember", home);
        if (mkdir(ember_dir, 0700) != 0 && errno != EEXIST) {
            em__cli_fail(PREFIX, "cannot create %s: %s", ember_dir, strerror(errno));
            em_free(ember_dir);
            goto out;
        }
        em_free(ember_dir);
        dir = em_xasprintf("%s/.ember/slurm", home);
    }
    if (make_private_dir(dir) < 0)
        goto out;
    r.run_dir = em_xasprintf("%s/job%s-%d", dir, job_id, (int)getpid());
    if (mkdir(r.run_dir, 0700) != 0) {
        em__cli_fail(PREFIX, "cannot create %s: %s", r.run_dir, strerror(errno));
        em_free(r.run_dir);
        r.run_dir = NULL;
        goto out;
    }
    snprintf(r.master_name, sizeof r.master_name, "ember-master-%d", (int)getpid());
    snprintf(r.workers_name, sizeof r.workers_name, "ember-workers-%d", (int)getpid());
    r.secret = em_xasprintf("%s/secret", r.run_dir);
    r.master_log = em_xasprintf("%s/master.log", r.run_dir);
    r.workers_log = em_xasprintf("%s/workers.log", r.run_dir);
    if (write_secret(r.secret) < 0)
        goto out;
    if (!a.quiet)
        fprintf(stderr, "ember slurm: job %s, %zu node(s), master on %s (%s); logs in %s\n", job_id,
                r.nnodes, nodes[0], r.master_ip, r.run_dir);
    if (start_cluster(&a, &r, nodes, self_exe) < 0)
        goto out;
    if (!a.quiet)
        fprintf(stderr, "ember slurm: master ember://%s:%u, %zu worker(s) registered\n",
                r.master_ip, r.master_port, r.nnodes);

    if (g_stop_sig) /* came after the last wait */
        goto out;
    /* The job: ember submit in this process. Its interrupt handling (cli/interrupt.c)
     * replaces on_stop for the job's length and restores it after. */
    int sargc;
    char **owned = NULL;
    char **sargv =
        submit_argv(&a, &r, own_driver_host ? driver_ip : NULL, argc - i, argv + i, &sargc, &owned);
    rc = em__cli_submit(sargc, sargv);
    for (int k = 0; owned[k]; k++)
        em_free(owned[k]);
    em_free(owned);
    em_free(sargv);

out:
    stop_steps(&r, job_id);
    if (g_stop_sig && (rc == EM_CLI_OK || rc == EM_CLI_FAIL)) /* stopped before the job */
        rc = 128 + g_stop_sig;
    rm_run_dir(&r, (rc != EM_CLI_OK || a.keep_logs) && r.master_log != NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    em_free(r.run_dir);
    em_free(r.secret);
    em_free(r.master_log);
    em_free(r.workers_log);
    em_free(nodes);
    em_free(hostnames);
    em_free(dir);
    free(self_exe);
    return rc;
}
