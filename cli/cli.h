/* cli/cli.h - internals shared by the files of the `ember` command (cli/).
 *
 * Every sub-command is a function `int em__cli_<name>(int argc, char **argv)` that gets
 * its arguments with argv[0] = the sub-command's name, prints its own errors as
 * "ember <cmd>: <message>" (or "ember: <message>") on stderr, and returns the process
 * exit status (0 ok, 1 failure, 2 bad usage). Nothing here is thread-safe: the command
 * parses its arguments on the main thread before any work starts. */
#ifndef EMBER_CLI_H
#define EMBER_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/base/base.h"

#ifndef EMBER_VERSION
#define EMBER_VERSION "0.1.0"
#endif

/* Exit statuses of the command. */
enum { EM_CLI_OK = 0, EM_CLI_FAIL = 1, EM_CLI_USAGE = 2, EM_CLI_INTERRUPTED = 130 };

/* Strict unsigned parse: decimal digits only (no sign, no spaces, no suffix), value in
 * [min, max]. On failure prints "<prefix>: <flag>: expected a positive integer, got
 * '<text>'" (or the allowed range) to stderr and returns false. */
bool em__cli_parse_u64(const char *prefix, const char *flag, const char *text, uint64_t min,
                       uint64_t max, uint64_t *out);

/* Returns the value of option `flag` at argv[*i] ("--flag VALUE" or "--flag=VALUE") and
 * advances *i past it; NULL (and prints an error) when the value is missing. Returns NULL
 * without printing when argv[*i] is not this flag. `*matched` tells which case. */
const char *em__cli_opt_value(const char *prefix, const char *flag, int argc, char **argv, int *i,
                              bool *matched);

bool em__cli_is_help(const char *arg); /* "--help" or "-h" */

/* Prints "<prefix>: <formatted>\n" to stderr; returns EM_CLI_FAIL. */
int em__cli_fail(const char *prefix, const char *fmt, ...) EM_PRINTF(2, 3);
/* As em__cli_fail plus "Try '<usage_cmd> --help'." and returns EM_CLI_USAGE. */
int em__cli_usage_error(const char *prefix, const char *usage_cmd, const char *fmt, ...)
    EM_PRINTF(3, 4);

/* The configuration of a job the command runs, later sources winning: `defaults` <
 * $EMBER_CONF_FILE < EMBER_* variables < the --conf k=v strings < `overrides` (the
 * command's own flags). Both lists are key, value pairs ended by a NULL key; a NULL value
 * is skipped. NULL (after printing the error) on a bad file or out of memory. */
struct em_conf;
struct em_conf *em__cli_job_conf(const char *const *defaults, const char *const *confs,
                                 int nconfs, const char *const *overrides);

/* For daemons (master, worker): ignores SIGPIPE and makes SIGINT/SIGTERM set the returned
 * flag, which the daemon's run loop polls to stop cleanly. */
volatile sig_atomic_t *em__cli_stop_on_signals(void);

/* Ctrl-C in commands that run jobs (interrupt.c): start watching SIGINT before the
 * context is made (0, or -1 when the watcher cannot start), name the context once it
 * exists, ask whether an interrupt came, stop watching before freeing the context, and
 * restore the old SIGINT action after freeing it. The first SIGINT cancels the running
 * job and every job started later; a second one exits with status 130 at once. */
struct em_context;
int em__cli_interrupt_start(const char *prefix);
void em__cli_interrupt_set_context(struct em_context *sc);
bool em__cli_interrupted(void);
void em__cli_interrupt_stop(void);
void em__cli_interrupt_restore(void);

/* Sub-commands. */
int em__cli_run_example(int argc, char **argv);
int em__cli_als(int argc, char **argv);   /* mllib/als's command with Ctrl-C handling */
int em__cli_gen(int argc, char **argv);

/* Help texts (stdout), shared by `CMD --help` and `ember help CMD`. */
void em__cli_run_example_help(FILE *f);
void em__cli_gen_help(FILE *f, const char *what); /* what: NULL, "text", "graph", "records" */

#endif /* EMBER_CLI_H */
