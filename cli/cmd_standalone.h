/* cli/cmd_standalone.h - the standalone-cluster sub-commands of `ember` (master,
 * worker, submit) and the job-library loader they share with run-example.
 * Conventions of cli/cli.h (argv[0] = sub-command, exit status 0/1/2). */
#ifndef EMBER_CLI_CMD_STANDALONE_H
#define EMBER_CLI_CMD_STANDALONE_H

#include <stdio.h>

#include "engine/ember.h"

int em__cli_master(int argc, char **argv);
int em__cli_worker(int argc, char **argv);
int em__cli_submit(int argc, char **argv);
void em__cli_master_help(FILE *f);
void em__cli_worker_help(FILE *f);
void em__cli_submit_help(FILE *f);

/* Loads the job library at path (RTLD_NOW | RTLD_GLOBAL, so its exported functions are
 * visible to name lookups), registers it with the function registry and returns its
 * ember_main in *out. On failure prints "ember: ..." naming `what` (the example's name or
 * the path) and returns EM_CLI_FAIL; 0 otherwise. The library stays loaded for the
 * process's life (task threads or atexit handlers may still point into it). */
int em__cli_load_job(const char *path, const char *what, em_job_main_fn *out);
/* Loads the job library at `path`, creates the context from conf (taken, freed here; its
 * ember.job.library defaults to path so executors load the same library), calls
 * ember_main with argv[0] = name and the job's arguments, prints "<kind> '<name>' failed"
 * or, unless quiet, the run time. Returns the command's exit status. run-example and
 * submit share it. */
int em__cli_run_job(const char *path, const char *name, const char *kind, em_conf *conf,
                    int job_argc, char **job_argv, bool quiet);

#endif /* EMBER_CLI_CMD_STANDALONE_H */
