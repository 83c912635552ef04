/* cli/cmd_worker.c - `ember worker`: the standalone cluster's worker daemon
 * (engine/deploy/deploy.h). Runs until SIGINT or SIGTERM, then kills its executors
 * and removes its work directory. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_standalone.h"
#include "engine/deploy/deploy.h"
#include "engine/net/net.h"

#define PREFIX "ember worker"

typedef struct worker_args {
    const char *master, *host, *advertise_host, *memory, *work_dir, *secret_file;
    uint32_t cores, timeout_ms;
} worker_args;

static const em__cli_opt worker_opt[] = {
    EM_CLI_STR("--master", "URL", worker_args, master,
               "the master, ember://HOST:PORT (required)"),
    EM_CLI_NONEMPTY("--host", "H", worker_args, host,
                    "address executors listen on (default 127.0.0.1; 0.0.0.0\n"
                    "or :: for every interface)"),
    EM_CLI_NONEMPTY("--advertise-host", "H", worker_args, advertise_host,
                    "the host the driver and other executors reach its\n"
                    "executors at (default --host; for a wildcard, this\n"
                    "machine's name)"),
    EM_CLI_UINT("--cores", "N", worker_args, cores, 1, 4096,
                "cores to offer (default: all online CPUs)"),
    EM_CLI_SIZE("--memory", "SIZE", worker_args, memory,
                "memory to offer, e.g. 512m, 4g (default 4g)"),
    EM_CLI_STR("--work-dir", "D", worker_args, work_dir,
               "where executors' directories go (default $TMPDIR);\n"
               "a new ember-worker-XXXXXX under it is removed at exit"),
    EM_CLI_UINT("--network-timeout", "MS", worker_args, timeout_ms, 100, 3600000,
                "the master silent this long is lost: its executors\n"
                "are killed and it is called again (default 10000)"),
    EM_CLI_STR("--secret-file", "F", worker_args, secret_file,
               "the cluster secret (else $EMBER_SECRET)"),
};
static const em__cli_opts worker_opts = {PREFIX, worker_opt,
                                         sizeof worker_opt / sizeof worker_opt[0],
                                         em__cli_worker_help};

void em__cli_worker_help(FILE *f)
{
    fprintf(f, "Usage: ember worker --master ember://HOST:7077 [--host H] [--cores N]\n"
               "                    [--memory 4g] [--work-dir D] [--secret-file F]\n"
               "\n"
               "Runs a standalone worker: registers this machine's cores and memory with the\n"
               "master and starts `ember executor` processes for applications on its orders.\n"
               "\n"
               "Options:\n");
    em__cli_print_opts(f, &worker_opts);
    fprintf(f, "\n"
               "Stops on SIGINT/SIGTERM, killing its executors. Exit status: 0 ok, 1 failed,\n"
               "2 usage.\n");
}

int em__cli_worker(int argc, char **argv)
{
    worker_args a = {0};
    char host[EM_NET_HOST_MAX];
    em_err err = EM_ERR_INIT;
    int i = 1, rc;

    if ((rc = em__cli_parse_opts(&worker_opts, EM_CLI_REST_NONE, &a, argc, argv, &i)) >= 0)
        return rc;
    if (!a.master)
        return em__cli_usage_error(PREFIX, PREFIX, "--master ember://HOST:PORT is required");
    em_worker_opts o = {.host = a.host, .advertise_host = a.advertise_host, .cores = a.cores,
                        .work_dir = a.work_dir, .peer_timeout_ms = a.timeout_ms,
                        .memory = a.memory ? (uint64_t)em_parse_size(a.memory) : 0};
    if (em_standalone_parse_url(a.master, host, sizeof host, &o.master_port, &err) < 0)
        return em__cli_usage_error(PREFIX, PREFIX, "--master: %s", err.msg);
    o.master_host = host;
    if (o.cores == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        o.cores = c > 0 ? (uint32_t)c : 1;
    }
    if (o.memory == 0)
        o.memory = (uint64_t)4 << 30;
    char *secret = em_standalone_read_secret(a.secret_file, &err);
    if (!secret)
        return em__cli_fail(PREFIX, "%s", err.msg);
    o.secret = secret;
    rc = em_worker_run(&o, em__cli_stop_on_signals(), &err);
    em_standalone_free_secret(secret);
    return rc < 0 ? em__cli_fail(PREFIX, "%s", err.msg) : EM_CLI_OK;
}
