/* cli/cmd_master.c - `ember master`: the standalone cluster's master daemon
 * (engine/deploy/deploy.h). Runs until SIGINT or SIGTERM. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_standalone.h"
#include "engine/deploy/deploy.h"

#define PREFIX "ember master"

typedef struct master_args {
    const char *host, *advertise_host, *secret_file, *ui_host;
    uint16_t port, ui_port;
    uint32_t timeout_ms;
} master_args;

static const em__cli_opt master_opt[] = {
    EM_CLI_NONEMPTY("--host", "H", master_args, host,
                    "address to listen on: a name, an IPv4 or IPv6 address,\n"
                    "0.0.0.0 or :: for every interface (default 127.0.0.1)"),
    EM_CLI_NONEMPTY("--advertise-host", "H", master_args, advertise_host,
                    "the host printed in the master URL for workers and\n"
                    "drivers (default --host; for a wildcard, this machine's name)"),
    EM_CLI_UINT("--port", "P", master_args, port, 0, 65535,
                "cluster port (default 7077; 0 = any, printed)"),
    EM_CLI_UINT("--ui-port", "P", master_args, ui_port, 0, 65535,
                "status page port (default 8080; 0 = no page)"),
    EM_CLI_NONEMPTY("--ui-host", "H", master_args, ui_host,
                    "address of the status page (default 127.0.0.1: it needs no secret)"),
    EM_CLI_UINT("--network-timeout", "MS", master_args, timeout_ms, 100, 3600000,
                "a worker or driver silent this long is lost (heartbeats\n"
                "every second; default 10000): a dead link gives no FIN"),
    EM_CLI_STR("--secret-file", "F", master_args, secret_file,
               "the cluster secret (else $EMBER_SECRET; >= 16 bytes);\n"
               "workers and drivers must hold the same one"),
};
static const em__cli_opts master_opts = {PREFIX, master_opt,
                                         sizeof master_opt / sizeof master_opt[0],
                                         em__cli_master_help};

void em__cli_master_help(FILE *f)
{
    fprintf(f, "Usage: ember master [--host H] [--advertise-host H] [--port 7077] "
               "[--ui-port 8080]\n"
               "                    [--ui-host H] [--secret-file F]\n"
               "\n"
               "Runs the standalone cluster master: workers register with it, `ember submit`\n"
               "registers applications, and it has workers start executors for them.\n"
               "\n"
               "Options:\n");
    em__cli_print_opts(f, &master_opts);
    fprintf(f, "\n"
               "Prints 'master listening on ember://H:P' when ready. Status page: / (HTML)\n"
               "and /json. Stops on SIGINT/SIGTERM. Exit status: 0 ok, 1 failed, 2 usage.\n");
}

int em__cli_master(int argc, char **argv)
{
    master_args a = {.port = EM_STANDALONE_DEFAULT_PORT,
                     .ui_port = EM_STANDALONE_DEFAULT_UI_PORT};
    em_err err = EM_ERR_INIT;
    int i = 1, rc;

    if ((rc = em__cli_parse_opts(&master_opts, EM_CLI_REST_NONE, &a, argc, argv, &i)) >= 0)
        return rc;
    char *secret = em_standalone_read_secret(a.secret_file, &err);
    if (!secret)
        return em__cli_fail(PREFIX, "%s", err.msg);
    em_master_opts o = {.host = a.host, .advertise_host = a.advertise_host, .port = a.port,
                        .ui_port = a.ui_port, .peer_timeout_ms = a.timeout_ms,
                        .ui_host = a.ui_host, .secret = secret};
    rc = em_master_run(&o, em__cli_stop_on_signals(), &err);
    em_standalone_free_secret(secret);
    return rc < 0 ? em__cli_fail(PREFIX, "%s", err.msg) : EM_CLI_OK;
}
