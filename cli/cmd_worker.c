/* cli/cmd_worker.c - `ember worker`: the standalone cluster's worker daemon
 * (engine/cluster/standalone.h). Runs until SIGINT or SIGTERM, then kills its executors
 * and removes its work directory. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_standalone.h"
#include "engine/cluster/standalone.h"

#define PREFIX "ember worker"

void em__cli_worker_help(FILE *f)
{
    fprintf(f, "Usage: ember worker --master ember://HOST:7077 [--host H] [--cores N]\n"
               "                    [--memory 4g] [--work-dir D] [--secret-file F]\n"
               "\n"
               "Runs a standalone worker: registers this machine's cores and memory with the\n"
               "master and starts `ember executor` processes for applications on its orders.\n"
               "\n"
               "Options:\n"
               "  --master URL      the master, ember://HOST:PORT (required)\n"
               "  --host H          address executors listen on (default 127.0.0.1)\n"
               "  --cores N         cores to offer (default: all online CPUs)\n"
               "  --memory SIZE     memory to offer, e.g. 512m, 4g (default 4g)\n"
               "  --work-dir D      where executors' directories go (default $TMPDIR);\n"
               "                    a new ember-worker-XXXXXX under it is removed at exit\n"
               "  --secret-file F   the cluster secret (else $EMBER_SECRET)\n"
               "  --help, -h        show this help\n"
               "\n"
               "Stops on SIGINT/SIGTERM, killing its executors. Exit status: 0 ok, 1 failed,\n"
               "2 usage.\n");
}

int em__cli_worker(int argc, char **argv)
{
    em_worker_opts o = {0};
    const char *secret_file = NULL, *master = NULL, *v;
    char host[256];
    em_err err = EM_ERR_INIT;
    uint64_t n;
    bool m;

    for (int i = 1; i < argc;) {
        if (em__cli_is_help(argv[i])) {
            em__cli_worker_help(stdout);
            return EM_CLI_OK;
        }
        if ((v = em__cli_opt_value(PREFIX, "--master", argc, argv, &i, &m)) || m) {
            if (!v)
                return EM_CLI_USAGE;
            master = v;
        } else if ((v = em__cli_opt_value(PREFIX, "--host", argc, argv, &i, &m)) || m) {
            if (!v || !*v)
                return v ? em__cli_usage_error(PREFIX, PREFIX, "--host: empty") : EM_CLI_USAGE;
            o.host = v;
        } else if ((v = em__cli_opt_value(PREFIX, "--cores", argc, argv, &i, &m)) || m) {
            if (!v || !em__cli_parse_u64(PREFIX, "--cores", v, 1, 4096, &n))
                return EM_CLI_USAGE;
            o.cores = (uint32_t)n;
        } else if ((v = em__cli_opt_value(PREFIX, "--memory", argc, argv, &i, &m)) || m) {
            if (!v)
                return EM_CLI_USAGE;
            if (em_parse_size(v) <= 0)
                return em__cli_usage_error(PREFIX, PREFIX,
                                           "--memory: expected a size such as 512m or 4g, "
                                           "got '%s'", v);
            o.memory = (uint64_t)em_parse_size(v);
        } else if ((v = em__cli_opt_value(PREFIX, "--work-dir", argc, argv, &i, &m)) || m) {
            if (!v)
                return EM_CLI_USAGE;
            o.work_dir = v;
        } else if ((v = em__cli_opt_value(PREFIX, "--secret-file", argc, argv, &i, &m)) || m) {
            if (!v)
                return EM_CLI_USAGE;
            secret_file = v;
        } else {
            return em__cli_usage_error(PREFIX, PREFIX, "unknown argument '%s'", argv[i]);
        }
    }
    if (!master)
        return em__cli_usage_error(PREFIX, PREFIX, "--master ember://HOST:PORT is required");
    if (em_standalone_parse_url(master, host, sizeof host, &o.master_port, &err) < 0)
        return em__cli_usage_error(PREFIX, PREFIX, "--master: %s", err.msg);
    o.master_host = host;
    if (o.cores == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        o.cores = c > 0 ? (uint32_t)c : 1;
    }
    if (o.memory == 0)
        o.memory = (uint64_t)4 << 30;
    char *secret = em_standalone_read_secret(secret_file, &err);
    if (!secret)
        return em__cli_fail(PREFIX, "%s", err.msg);
    o.secret = secret;
    int rc = em_worker_run(&o, em__cli_stop_on_signals(), &err);
    em_free(secret);
    return rc < 0 ? em__cli_fail(PREFIX, "%s", err.msg) : EM_CLI_OK;
}
