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
 * status 0 ok, 1 failure, 2 bad usage; errors on stderr as "ember ml ALGO: ...".
 * CTRL-C: the `ember` command runs `ember ml` through em_ml_cli_run with a hook that
 * cancels the context's jobs on SIGINT (cli/interrupt.c). An algorithm's main calls
 * em_ml_cli_context(sc) right after it makes its context and em_ml_cli_context(NULL)
 * before it frees it; nothing else is needed for Ctrl-C to cancel its jobs cleanly. */
#ifndef EMBER_MLLIB_MLLIB_H
#define EMBER_MLLIB_MLLIB_H

#include <stdio.h>

#include "engine/ember.h"

/* Registers every module's task functions (thread-safe, idempotent). 0, or EM_EINVAL when
 * a name is already registered with another function. */
int em_ml_register(void);

/* `ember ml ...` (argv[0] = "ml"). */
int em_ml_cli_main(int argc, char **argv);
void em_ml_cli_help(FILE *f);
/* As em_ml_cli_main; on_context (NULL = none) is what em_ml_cli_context calls while the
 * algorithm runs. Main thread; one call at a time (the hook is kept for the call). */
int em_ml_cli_run(int argc, char **argv, void (*on_context)(em_context *sc));
/* For algorithms' mains (main thread): tells the command about the context, sc right
 * after em_context_new, NULL before em_context_free. A no-op outside em_ml_cli_run. */
void em_ml_cli_context(em_context *sc);

#endif /* EMBER_MLLIB_MLLIB_H */
