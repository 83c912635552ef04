/* cli/cmd_submit.c - `ember submit`: runs a job library's driver in this process
 * (client deploy mode) against a standalone master, and the job-library loader shared with
 * run-example.
 *
 * FLOW: read the cluster secret, install the standalone client (engine/deploy/deploy.h)
 * so that the context's ember:// master registers the application with the
 * master, load JOB.so, build the configuration (defaults < $EMBER_CONF_FILE < EMBER_*
 * variables < --conf < the flags), create the context (which waits for the first
 * executors), call ember_main, free the context (the master then has the executors killed).
 * ember.job.library names JOB.so, so executors load the same library (hash checked). */
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_standalone.h"
#include "engine/deploy/deploy.h"
#include "engine/plan/plan.h"

#define PREFIX "ember submit"

typedef struct submit_opts {
    const char *master, *memory, *secret_file, *name, *job;
    em__cli_confs confs;
    uint32_t total_cores, exec_cores;
    bool quiet;
    int job_argc;
    char **job_argv;
} submit_opts;

static const em__cli_opt submit_opt[] = {
    EM_CLI_STR("--master", "URL", submit_opts, master,
               "the master, ember://HOST:PORT (required)"),
    EM_CLI_SIZE("--executor-memory", "SIZE", submit_opts, memory,
                "memory per executor, e.g. 512m, 2g (default 1g)"),
    EM_CLI_UINT("--total-executor-cores", "N", submit_opts, total_cores, 1, 1u << 20,
                "cores for the whole application (default all)"),
    EM_CLI_UINT("--executor-cores", "N", submit_opts, exec_cores, 1, 4096,
                "cores per executor (default: all of a worker's\nfree cores)"),
    EM_CLI_CONF("--conf", "KEY=VALUE", submit_opts, confs,
                "a configuration key (repeatable), e.g.\nember.eventLog.enabled=true"),
    EM_CLI_STR("--name", "NAME", submit_opts, name,
               "application name (default: JOB's file name)"),
    EM_CLI_STR("--secret-file", "F", submit_opts, secret_file,
               "the cluster secret (else $EMBER_SECRET)"),
    EM_CLI_FLAG("--quiet", "-q", submit_opts, quiet, "only errors on stderr, no progress bar"),
};
static const em__cli_opts submit_opts_table = {PREFIX, submit_opt,
                                               sizeof submit_opt / sizeof submit_opt[0],
                                               em__cli_submit_help};

int em__cli_load_job(const char *path, const char *what, em_job_main_fn *out)
{
    /* RTLD_GLOBAL: the job's exported functions must be visible to name lookups. */
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (h == NULL)
        return em__cli_fail("ember", "cannot load job '%s': %s", what, dlerror());
    *(void **)out = dlsym(h, "ember_main");
    if (*out == NULL)
        return em__cli_fail("ember", "%s: no ember_main symbol (is it a job library?)", path);
    em_err err = EM_ERR_INIT;
    if (em_registry_add_library(h, &err) < 0)
        return em__cli_fail("ember", "job library %s: %s", path, err.msg);
    return 0;
}

void em__cli_submit_help(FILE *f)
{
    fprintf(f, "Usage: ember submit --master ember://HOST:7077 [OPTIONS] JOB.so [ARGS...]\n"
               "\n"
               "Runs the job library JOB.so (exporting ember_main) with ARGS; the driver runs\n"
               "in this process, executors on the cluster's workers.\n"
               "\n"
               "Options:\n");
    em__cli_print_opts(f, &submit_opts_table);
    fprintf(f, "\n"
               "Exit status: 0 ok, 1 the job failed, 2 bad usage.\n");
}

/* Returns -1 to go on, else an exit status. Options come before JOB.so ("--" ends them). */
static int parse_opts(int argc, char **argv, submit_opts *o)
{
    int i = 1, rc;
    memset(o, 0, sizeof *o);
    if ((rc = em__cli_parse_opts(&submit_opts_table, EM_CLI_REST_OPERAND, o, argc, argv, &i)) >=
        0)
        return rc;
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    if (i < argc)
        o->job = argv[i++];
    if (!o->master)
        return em__cli_usage_error(PREFIX, PREFIX, "--master ember://HOST:PORT is required");
    if (strncmp(o->master, "ember://", 8) != 0)
        return em__cli_usage_error(PREFIX, PREFIX, "--master: expected ember://HOST:PORT, got "
                                   "'%s' (use run-example for local masters)", o->master);
    if (!o->job)
        return em__cli_usage_error(PREFIX, PREFIX, "missing JOB.so");
    o->job_argc = argc - i;
    o->job_argv = argv + i;
    return -1;
}

static em_conf *build_conf(const submit_opts *o, const char *job_path, const char *name,
                           int *status)
{
    const char *const defaults[] = {"ember.ui.port", "4040", NULL};
    const char *const overrides[] = {"ember.master", o->master,
                                     "ember.job.library", job_path,
                                     "ember.app.name", name,
                                     "ember.executor.memory", o->memory,
                                     "ember.ui.showConsoleProgress", o->quiet ? "false" : NULL,
                                     NULL};
    return em__cli_job_conf(PREFIX, defaults, o->confs.kv, o->confs.n, overrides, status);
}

int em__cli_run_job(const char *path, const char *name, const char *kind, em_conf *conf,
                    int job_argc, char **job_argv, bool quiet)
{
    em_job_main_fn job_main;
    em_context *sc = NULL;
    em_err err = EM_ERR_INIT;
    char **argv = NULL;
    int rc = EM_CLI_FAIL, jrc;
    double t0;

    if (!conf)
        return EM_CLI_FAIL;
    if (em__cli_load_job(path, name, &job_main) != 0)
        goto out;
    if (!em_conf_get(conf, "ember.job.library") &&
        em_conf_set(conf, "ember.job.library", path) != 0) {
        em__cli_fail("ember", "out of memory");
        goto out;
    }
    if (em__cli_interrupt_start("ember") != 0)
        em_log(EM_LOG_WARN, "ember: cannot watch for Ctrl-C");
    if (!(sc = em_context_new(conf, &err))) {
        if (!em__cli_interrupted())
            em__cli_fail("ember", "%s", err.code ? err.msg : "cannot create the context");
        goto out;
    }
    em__cli_interrupt_set_context(sc);
    if (em__cli_interrupted())
        goto out;
    argv = em_xcalloc((size_t)job_argc + 2, sizeof *argv);
    argv[0] = (char *)name;
    for (int i = 0; i < job_argc; i++)
        argv[i + 1] = job_argv[i];
    t0 = em_now_s();
    if ((jrc = job_main(sc, job_argc + 1, argv)) != 0) {
        if (!em__cli_interrupted())
            em__cli_fail("ember", "%s '%s' failed (exit code %d)", kind, name, jrc);
        goto out;
    }
    if (!quiet)
        fprintf(stderr, "ember: %s finished in %.3f s\n", name, em_now_s() - t0);
    rc = EM_CLI_OK;
out:
    em__cli_interrupt_stop();
    em_context_free(sc);
    if (em__cli_interrupted()) {
        fprintf(stderr, "ember: %s '%s' interrupted\n", kind, name);
        rc = em__cli_interrupt_status();
    }
    em__cli_interrupt_restore();
    em_conf_free(conf);
    em_free(argv);
    /* The library stays loaded: task threads are gone, but atexit handlers or cached
     * function pointers of the runtime may still point into it. */
    return rc;
}

int em__cli_submit(int argc, char **argv)
{
    submit_opts o;
    em_err err = EM_ERR_INIT;
    int rc;

    if ((rc = parse_opts(argc, argv, &o)) >= 0)
        return rc;
    if (o.quiet)
        em_log_set_level(EM_LOG_ERROR);
    char *path = realpath(o.job, NULL);
    if (!path)   /* bad usage: checked before the secret, as every argument */
        return em__cli_usage_error(PREFIX, PREFIX, "%s: no such job library", o.job);
    char *secret = em_standalone_read_secret(o.secret_file, &err);
    if (!secret) {
        free(path);
        return em__cli_fail(PREFIX, "%s", err.msg);
    }
    /* Default name: the file name without directory, "lib" prefix and ".so". */
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (!strncmp(base, "lib", 3) && strlen(base) > 6)
        base += 3;
    char *name = o.name ? em_xstrdup(o.name) : em_xstrdup(base);
    if (!o.name && strlen(name) > 3 && !strcmp(name + strlen(name) - 3, ".so"))
        name[strlen(name) - 3] = '\0';
    em_standalone_app app = {.name = name, .total_cores = o.total_cores,
                             .executor_cores = o.exec_cores, .cluster_secret = secret,
                             .executor_memory = o.memory ? (uint64_t)em_parse_size(o.memory)
                                                         : 0};
    em_conf *conf = build_conf(&o, path, name, &rc);   /* bad settings: before any work */
    if (conf)   /* the master passes it to the workers starting executors */
        app.executor_port = em_conf_get(conf, "ember.blockManager.port");
    em_standalone_client *cl = NULL;
    if (conf) {
        signal(SIGPIPE, SIG_IGN);
        cl = em_standalone_install(&app, &err);
        if (!cl) {
            rc = em__cli_fail(PREFIX, "%s", err.msg);
            em_conf_free(conf);
        } else {
            rc = em__cli_run_job(path, name, "job", conf, o.job_argc, o.job_argv, o.quiet);
        }
    }
    em_standalone_client_free(cl);
    free(path);
    em_free(name);
    em_standalone_free_secret(secret);
    return rc;
}
