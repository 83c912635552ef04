/* cli/cmd_executor.c - `ember executor`: one executor process of a cluster-mode
 * application. Started by the driver (local-cluster[E,C]) or by a standalone worker; it
 * connects to the driver, runs tasks until the driver goes away, then removes its work
 * directory and exits. The secret comes from EMBER_SECRET or --secret-file, never from
 * the command line (other users can read command lines). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/cluster/cluster.h"
#include "engine/ember.h"
#include "engine/net/net.h"

#define PFX "ember executor"

typedef struct exec_args {
    const char *driver, *exec_id, *memory, *work_dir, *host, *advertise_host, *port,
        *secret_file;
    uint32_t cores;
} exec_args;

static const em__cli_opt exec_opt[] = {
    EM_CLI_STR("--driver", "HOST:PORT", exec_args, driver, "the driver's address (required)"),
    EM_CLI_STR("--exec-id", "ID", exec_args, exec_id,
               "this executor's name in the application, 1..63 bytes\n(required)"),
    EM_CLI_UINT("--cores", "C", exec_args, cores, 1, 1024, "task threads, 1..1024 (required)"),
    EM_CLI_SIZE("--memory", "SIZE", exec_args, memory,
                "block store budget, e.g. 512m or 2g (default 1g); tasks\n"
                "get a quarter of it, shared between task threads"),
    EM_CLI_STR("--work-dir", "DIR", exec_args, work_dir,
               "where its ember-exec-XXXXXX directory is made (default\n"
               "$TMPDIR or /tmp); removed on exit"),
    EM_CLI_STR("--host", "H", exec_args, host,
               "listen host of its shuffle server (default 127.0.0.1;\n"
               "0.0.0.0 or :: for every interface)"),
    EM_CLI_STR("--advertise-host", "H", exec_args, advertise_host,
               "the host the driver and other executors are told\n"
               "(default --host; for a wildcard --host, this machine's name)"),
    EM_CLI_STR("--port", "P", exec_args, port,
               "its shuffle server's port or range LO-HI (default any)"),
    EM_CLI_STR("--secret-file", "FILE", exec_args, secret_file,
               "read the application's secret from FILE (default: the\n"
               "EMBER_SECRET environment variable)"),
};
static const em__cli_opts exec_opts = {PFX, exec_opt, sizeof exec_opt / sizeof exec_opt[0],
                                       em__cli_executor_help};

void em__cli_executor_help(FILE *f)
{
    fprintf(f,
            "Usage: ember executor --driver HOST:PORT --exec-id ID --cores C [OPTIONS]\n"
            "\n"
            "Runs one executor of a cluster-mode application: connects to the driver,\n"
            "registers, runs the tasks it is sent on C task threads and serves its shuffle\n"
            "outputs to other executors. Exits when the driver connection closes. Normally\n"
            "started by the driver (local-cluster[E,C]) or by a standalone worker. MLlib's\n"
            "functions are registered at start; a job library the driver names is loaded\n"
            "(and its em_job_register called) only when its sha256 equals the driver's.\n"
            "\n"
            "Options:\n");
    em__cli_print_opts(f, &exec_opts);
    fprintf(f,
            "\n"
            "Exit status: 0 when the driver closed the connection, 1 on errors (bad secret,\n"
            "unreachable driver, library mismatch), 2 on bad usage.\n");
}

int em__cli_executor(int argc, char **argv)
{
    exec_args a = {0};
    int i = 1, rc;
    if ((rc = em__cli_parse_opts(&exec_opts, EM_CLI_REST_NONE, &a, argc, argv, &i)) >= 0)
        return rc;
    if (!a.driver || !a.exec_id || !a.cores)
        return em__cli_usage_error(PFX, PFX, "--driver, --exec-id and --cores are required");
    char dhost[EM_NET_HOST_MAX];
    uint16_t dport, plo = 0, phi = 0;
    em_err aerr = EM_ERR_INIT;
    if (em_net_addr_split(a.driver, dhost, sizeof dhost, &dport, 0, &aerr) < 0)
        return em__cli_usage_error(PFX, PFX, "--driver: %s", aerr.msg);
    if (a.port && em_net_port_range_parse(a.port, "--port", &plo, &phi, &aerr) < 0)
        return em__cli_usage_error(PFX, PFX, "%s", aerr.msg);
    if (!*a.exec_id || strlen(a.exec_id) > 63)
        return em__cli_usage_error(PFX, PFX, "--exec-id: 1..63 bytes");
    int64_t mem = a.memory ? em_parse_size(a.memory) : 0;
    char *secret = NULL;
    em_err err = EM_ERR_INIT;
    if (a.secret_file) {
        uint8_t *buf;
        size_t n;
        if (em_read_file(a.secret_file, &buf, &n, &err) < 0)
            return em__cli_fail(PFX, "secret file: %s", err.msg);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        secret = em_xmalloc(n + 1);
        memcpy(secret, buf, n);
        secret[n] = '\0';
        em_free(buf);
    } else if (getenv("EMBER_SECRET")) {
        secret = em_xstrdup(getenv("EMBER_SECRET"));
        unsetenv("EMBER_SECRET");   /* a job's subprocesses must not inherit it */
    }
    if (!secret || strlen(secret) < 16) {
        em_free(secret);
        return em__cli_fail(PFX, "no secret of at least 16 bytes (set EMBER_SECRET or "
                                 "--secret-file)");
    }
    signal(SIGPIPE, SIG_IGN);
    /* Ctrl-C in a terminal reaches the whole foreground process group, local-cluster
     * executors included: the driver cancels its job and then closes the connection,
     * which is how an executor stops (its work dir goes with it). */
    signal(SIGINT, SIG_IGN);
    em_executor_opts o = {.driver_host = dhost, .driver_port = dport, .exec_id = a.exec_id,
                          .cores = a.cores, .memory = (size_t)mem, .work_dir = a.work_dir,
                          .host = a.host, .advertise_host = a.advertise_host, .port_lo = plo,
                          .port_hi = phi, .secret = secret};
    rc = em_executor_serve(&o, &err);
    em_free(secret);
    if (rc < 0)
        return em__cli_fail(PFX, "%s: %s", a.exec_id, err.msg);
    return EM_CLI_OK;
}
