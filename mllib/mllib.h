/* mllib/mllib.h - MLlib as a library on the engine: the registration of its task functions
 * and the `ember ml` command.
 *
 * REGISTRATION: every MLlib module keeps its task functions in one em_fn_entry table
 * (engine/plan/fn.h) behind a `em_<module>_register` function, and em_ml_register registers
 * them all. Names are "ml.<module>.<function>". The `ember` command calls em_ml_register
 * before any sub-command, so the driver and every executor process know the same names;
 * a program that links libember_ml and runs an algorithm needs no call of its own (each
 * algorithm's entry point registers its module's table, idempotently).
 *
 * COMMAND: `ember ml ALGO ARGS...` dispatches through the table in mllib/ml_cli.c; each row
 * names an algorithm, a one-line summary, its main (argv[0] = ALGO) and its help. Exit
 * status 0 ok, 1 failure, 2 bad usage; errors on stderr as "ember ml ALGO: ...". */
#ifndef EMBER_MLLIB_MLLIB_H
#define EMBER_MLLIB_MLLIB_H

#include <stdio.h>

/* Registers every module's task functions (thread-safe, idempotent). 0, or EM_EINVAL when
 * a name is already registered with another function. */
int em_ml_register(void);

/* `ember ml ...` (argv[0] = "ml"). */
int em_ml_cli_main(int argc, char **argv);
void em_ml_cli_help(FILE *f);

#endif /* EMBER_MLLIB_MLLIB_H */
