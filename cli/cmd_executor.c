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

int em__cli_executor(int argc, char **argv);
void em__cli_executor_help(FILE *f);

#define PFX "ember executor"

void em__cli_executor_help(FILE *f)
{
    fprintf(f,
            "Usage: ember executor --driver HOST:PORT --exec-id ID --cores C [OPTIONS]\n"
            "\n"
            "Runs one executor of a cluster-mode application: connects to the driver,\n"
            "registers, runs the tasks it is sent on C task threads and serves its shuffle\n"
            "outputs to other executors. Exits when the driver connection closes. Normally\n"
            "started by the driver (local-cluster[E,C]) or by a standalone worker.\n"
            "\n"
            "Options:\n"
            "  --driver HOST:PORT   the driver's address (required)\n"
            "  --exec-id ID         this executor's name in the application, 1..63 bytes\n"
            "                       (required)\n"
            "  --cores C            task threads, 1..1024 (required)\n"
            "  --memory SIZE        block store budget, e.g. 512m or 2g (default 1g); tasks\n"
            "                       get a quarter of it, shared between task threads\n"
            "  --work-dir DIR       where its ember-exec-XXXXXX directory is made (default\n"
            "                       $TMPDIR or /tmp); removed on exit\n"
            "  --host H             listen host of its shuffle server (default 127.0.0.1)\n"
            "  --secret-file FILE   read the application's secret from FILE (default: the\n"
            "                       EMBER_SECRET environment variable)\n"
            "  --help, -h           show this help and exit\n"
            "\n"
            "The job library the driver names is loaded only when its sha256 equals the\n"
            "driver's. Exit status: 0 when the driver closed the connection, 1 on errors\n"
            "(bad secret, unreachable driver, library mismatch), 2 on bad usage.\n");
}

static bool split_hostport(const char *s, char *host, size_t n, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= n)
        return false;
    uint64_t p;
    if (!em__cli_parse_u64(PFX, "--driver", colon + 1, 1, 65535, &p))
        return false;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (uint16_t)p;
    return true;
}

int em__cli_executor(int argc, char **argv)
{
    const char *driver = NULL, *exec_id = NULL, *cores_s = NULL, *memory = NULL;
    const char *work = NULL, *host = NULL, *secret_file = NULL;
    struct {
        const char *flag;
        const char **slot;
    } flags[] = {{"--driver", &driver},     {"--exec-id", &exec_id}, {"--cores", &cores_s},
                 {"--memory", &memory},     {"--work-dir", &work},   {"--host", &host},
                 {"--secret-file", &secret_file}};
    for (int i = 1; i < argc;) {
        if (em__cli_is_help(argv[i])) {
            em__cli_executor_help(stdout);
            return EM_CLI_OK;
        }
        bool matched = false;
        for (size_t k = 0; k < sizeof flags / sizeof flags[0] && !matched; k++) {
            const char *v = em__cli_opt_value(PFX, flags[k].flag, argc, argv, &i, &matched);
            if (matched && !v)
                return EM_CLI_USAGE;
            if (matched)
                *flags[k].slot = v;
        }
        if (!matched)
            return em__cli_usage_error(PFX, PFX, "unknown argument '%s'", argv[i]);
    }
    if (!driver || !exec_id || !cores_s)
        return em__cli_usage_error(PFX, PFX, "--driver, --exec-id and --cores are required");
    char dhost[256];
    uint16_t dport;
    uint64_t cores;
    if (!split_hostport(driver, dhost, sizeof dhost, &dport))
        return em__cli_usage_error(PFX, PFX, "--driver: expected HOST:PORT, got '%s'", driver);
    if (!em__cli_parse_u64(PFX, "--cores", cores_s, 1, 1024, &cores))
        return EM_CLI_USAGE;
    if (!*exec_id || strlen(exec_id) > 63)
        return em__cli_usage_error(PFX, PFX, "--exec-id: 1..63 bytes");
    int64_t mem = 0;
    if (memory && (mem = em_parse_size(memory)) <= 0)
        return em__cli_usage_error(PFX, PFX, "--memory: bad size '%s'", memory);
    char *secret = NULL;
    em_err err = EM_ERR_INIT;
    if (secret_file) {
        uint8_t *buf;
        size_t n;
        if (em_read_file(secret_file, &buf, &n, &err) < 0)
            return em__cli_fail(PFX, "secret file: %s", err.msg);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        secret = em_xmalloc(n + 1);
        memcpy(secret, buf, n);
        secret[n] = '\0';
        em_free(buf);
    } else if (getenv("EMBER_SECRET")) {
        secret = em_xstrdup(getenv("EMBER_SECRET"));
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
    em_executor_opts o = {.driver_host = dhost, .driver_port = dport, .exec_id = exec_id,
                          .cores = (uint32_t)cores, .memory = (size_t)mem, .work_dir = work,
                          .host = host, .secret = secret};
    int rc = em_executor_serve(&o, &err);
    em_free(secret);
    if (rc < 0)
        return em__cli_fail(PFX, "%s: %s", exec_id, err.msg);
    return EM_CLI_OK;
}
