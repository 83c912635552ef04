/* cli/cmd_master.c - `ember master`: the standalone cluster's master daemon
 * (engine/cluster/standalone.h). Runs until SIGINT or SIGTERM. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_standalone.h"
#include "engine/cluster/standalone.h"

#define PREFIX "ember master"

void em__cli_master_help(FILE *f)
{
    fprintf(f, "Usage: ember master [--host H] [--port 7077] [--ui-port 8080] "
               "[--secret-file F]\n"
               "\n"
               "Runs the standalone cluster master: workers register with it, `ember submit`\n"
               "registers applications, and it has workers start executors for them.\n"
               "\n"
               "Options:\n"
               "  --host H          address to listen on (default 127.0.0.1)\n"
               "  --port P          cluster port (default 7077; 0 = any, printed)\n"
               "  --ui-port P       status page port (default 8080; 0 = no page)\n"
               "  --secret-file F   the cluster secret (else $EMBER_SECRET; >= 16 bytes);\n"
               "                    workers and drivers must hold the same one\n"
               "  --help, -h        show this help\n"
               "\n"
               "Prints 'master listening on ember://H:P' when ready. Status page: / (HTML)\n"
               "and /json. Stops on SIGINT/SIGTERM. Exit status: 0 ok, 1 failed, 2 usage.\n");
}

/* Shared by master and worker: parses a port option value. */
static bool port_value(const char *flag, const char *v, uint16_t *out)
{
    uint64_t p;
    if (!em__cli_parse_u64(PREFIX, flag, v, 0, 65535, &p))
        return false;
    *out = (uint16_t)p;
    return true;
}

int em__cli_master(int argc, char **argv)
{
    em_master_opts o = {.port = EM_STANDALONE_DEFAULT_PORT,
                        .ui_port = EM_STANDALONE_DEFAULT_UI_PORT};
    const char *secret_file = NULL, *v;
    uint16_t ui = EM_STANDALONE_DEFAULT_UI_PORT;
    em_err err = EM_ERR_INIT;
    bool m;

    for (int i = 1; i < argc;) {
        if (em__cli_is_help(argv[i])) {
            em__cli_master_help(stdout);
            return EM_CLI_OK;
        }
        if ((v = em__cli_opt_value(PREFIX, "--host", argc, argv, &i, &m)) || m) {
            if (!v || !*v)
                return v ? em__cli_usage_error(PREFIX, PREFIX, "--host: empty") : EM_CLI_USAGE;
            o.host = v;
        } else if ((v = em__cli_opt_value(PREFIX, "--port", argc, argv, &i, &m)) || m) {
            if (!v || !port_value("--port", v, &o.port))
                return EM_CLI_USAGE;
        } else if ((v = em__cli_opt_value(PREFIX, "--ui-port", argc, argv, &i, &m)) || m) {
            if (!v || !port_value("--ui-port", v, &ui))
                return EM_CLI_USAGE;
            o.ui_port = ui;
        } else if ((v = em__cli_opt_value(PREFIX, "--secret-file", argc, argv, &i, &m)) || m) {
            if (!v)
                return EM_CLI_USAGE;
            secret_file = v;
        } else {
            return em__cli_usage_error(PREFIX, PREFIX, "unknown argument '%s'", argv[i]);
        }
    }
    char *secret = em_standalone_read_secret(secret_file, &err);
    if (!secret)
        return em__cli_fail(PREFIX, "%s", err.msg);
    o.secret = secret;
    int rc = em_master_run(&o, em__cli_stop_on_signals(), &err);
    em_free(secret);
    return rc < 0 ? em__cli_fail(PREFIX, "%s", err.msg) : EM_CLI_OK;
}
