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
#include <stddef.h>
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

/* ---------------------------------------------------------------- option tables (opts.c)
 * A command's options are one table of em__cli_opt rows: the option's spelling, its
 * value's placeholder, its help text, the kind of value and the field of the command's
 * argument struct that receives it. em__cli_parse_opts parses argv by the table and
 * em__cli_print_opts prints the help's option list from the same rows, so the help and
 * the parser cannot disagree. --help and -h are understood everywhere and listed last.
 * Rows are written with the EM_CLI_* macros below, which check the field's type. */
typedef enum em__cli_opt_kind {
    EM_CLI_OPT_FLAG,     /* bool, set to true; takes no value */
    EM_CLI_OPT_STR,      /* const char *, borrowed from argv */
    EM_CLI_OPT_NONEMPTY, /* const char *, not "" */
    EM_CLI_OPT_SIZE,     /* const char *, a size em_parse_size takes (512m, 2g) */
    EM_CLI_OPT_UINT,     /* uint16_t, uint32_t or uint64_t: decimal in [min, max] */
    EM_CLI_OPT_CONF,     /* em__cli_confs: KEY=VALUE strings, in order (repeatable) */
} em__cli_opt_kind;

#define EM_CLI_MAX_CONFS 64
typedef struct em__cli_confs {
    const char *kv[EM_CLI_MAX_CONFS];   /* borrowed from argv */
    int n;
} em__cli_confs;

typedef struct em__cli_opt {
    const char *name;      /* "--port" */
    const char *alias;     /* a second spelling ("-q"), or NULL */
    const char *arg;       /* the value's placeholder in the help ("P"); NULL for flags */
    em__cli_opt_kind kind;
    size_t off;            /* offset of the field in the argument struct */
    size_t width;          /* UINT: size of the field (2, 4 or 8) */
    uint64_t min, max;     /* UINT: the allowed range */
    const char *help;      /* one or more lines, separated by '\n' */
} em__cli_opt;

/* The offset of field f of struct T, which must have type `type` (else no compile). */
#define EM__CLI_FIELD(T, f, type) _Generic(&((T *)0)->f, type *: offsetof(T, f))
#define EM__CLI_UWIDTH(T, f) _Generic(&((T *)0)->f, uint16_t *: 2, uint32_t *: 4, uint64_t *: 8)
#define EM_CLI_FLAG(name, alias, T, f, help) \
    {name, alias, NULL, EM_CLI_OPT_FLAG, EM__CLI_FIELD(T, f, bool), 0, 0, 0, help}
#define EM_CLI_STR(name, arg, T, f, help) \
    {name, NULL, arg, EM_CLI_OPT_STR, EM__CLI_FIELD(T, f, const char *), 0, 0, 0, help}
#define EM_CLI_NONEMPTY(name, arg, T, f, help) \
    {name, NULL, arg, EM_CLI_OPT_NONEMPTY, EM__CLI_FIELD(T, f, const char *), 0, 0, 0, help}
#define EM_CLI_SIZE(name, arg, T, f, help) \
    {name, NULL, arg, EM_CLI_OPT_SIZE, EM__CLI_FIELD(T, f, const char *), 0, 0, 0, help}
#define EM_CLI_UINT(name, arg, T, f, lo, hi, help) \
    {name, NULL, arg, EM_CLI_OPT_UINT, offsetof(T, f), EM__CLI_UWIDTH(T, f), lo, hi, help}
#define EM_CLI_CONF(name, arg, T, f, help) \
    {name, NULL, arg, EM_CLI_OPT_CONF, EM__CLI_FIELD(T, f, em__cli_confs), 0, 0, 0, help}

/* A command's table: prefix names the command in messages ("ember master: --port: ...",
 * "Try 'ember master --help'."); help prints the command's whole help (usage, the list
 * from em__cli_print_opts, notes) for --help. */
typedef struct em__cli_opts {
    const char *prefix;
    const em__cli_opt *opt;
    size_t n;
    void (*help)(FILE *f);
} em__cli_opts;

/* What em__cli_parse_opts does with an argument that is none of the table's options. */
typedef enum em__cli_rest {
    EM_CLI_REST_NONE,     /* a usage error: "unknown argument 'X'" (daemons take no operands) */
    EM_CLI_REST_OPERAND,  /* stops at "--" or an operand (not starting with '-'); another
                           * '-' argument is a usage error: "unknown option 'X'" */
    EM_CLI_REST_ANY,      /* stops there: the caller's arguments start (a job's own) */
} em__cli_rest;

/* Parses argv[*i], argv[*i + 1], ... by s's table into the struct at `args`, leaving *i
 * at the first argument not parsed (argc at the end). Values are checked (ranges, sizes,
 * non-empty, KEY=VALUE) and each error names the option. Returns -1 to go on, EM_CLI_OK
 * after printing the help for --help or -h, EM_CLI_USAGE after printing an error. */
int em__cli_parse_opts(const em__cli_opts *s, em__cli_rest rest, void *args, int argc,
                       char **argv, int *i);
/* Prints the table's option list, one aligned "  --name ARG   help" row per option (help
 * lines after the first indented to the column), then --help, -h. */
void em__cli_print_opts(FILE *f, const em__cli_opts *s);

/* Prints "<prefix>: <formatted>\n" to stderr; returns EM_CLI_FAIL. */
int em__cli_fail(const char *prefix, const char *fmt, ...) EM_PRINTF(2, 3);
/* As em__cli_fail plus "Try '<usage_cmd> --help'." and returns EM_CLI_USAGE. */
int em__cli_usage_error(const char *prefix, const char *usage_cmd, const char *fmt, ...)
    EM_PRINTF(3, 4);

/* The configuration of a job the command runs, later sources winning: `defaults` (set
 * with em_conf_set_default) < $EMBER_CONF_FILE < EMBER_* variables < the --conf k=v
 * strings < `overrides` (the command's own flags). Both lists are key, value pairs ended
 * by a NULL key; a NULL value is skipped. Then em_conf_check: unknown ember.* keys, bad
 * values and a missing local dir are caught here, before any work. NULL after printing
 * the error as "<prefix>: ..." with *status the exit status (EM_CLI_USAGE for a bad
 * setting or conf file, EM_CLI_FAIL for out of memory or an unreadable file). */
struct em_conf;
struct em_conf *em__cli_job_conf(const char *prefix, const char *const *defaults,
                                 const char *const *confs, int nconfs,
                                 const char *const *overrides, int *status);

/* For daemons (master, worker): ignores SIGPIPE and makes SIGINT/SIGTERM set the returned
 * flag, which the daemon's run loop polls to stop cleanly. */
volatile sig_atomic_t *em__cli_stop_on_signals(void);

/* Ctrl-C (and SIGTERM) in commands that run jobs (interrupt.c): start watching SIGINT before the
 * context is made (0, or -1 when the watcher cannot start), name the context once it
 * exists, ask whether an interrupt came, stop watching before freeing the context, and
 * restore the old actions after freeing it. The first SIGINT/SIGTERM cancels the running
 * job and every job started later; a second one exits at once. */
struct em_context;
int em__cli_interrupt_start(const char *prefix);
void em__cli_interrupt_set_context(struct em_context *sc);
bool em__cli_interrupted(void);
int em__cli_interrupt_status(void);   /* 128 + the signal: 130 (SIGINT), 143 (SIGTERM) */
void em__cli_interrupt_stop(void);
void em__cli_interrupt_restore(void);

/* Sub-commands. */
int em__cli_run_example(int argc, char **argv);
int em__cli_als(int argc, char **argv);   /* mllib/als's command with Ctrl-C handling */
int em__cli_ml(int argc, char **argv);    /* `ember ml ALGO`, with Ctrl-C handling */
int em__cli_tune(int argc, char **argv);  /* `ember tune mlp ...` = `ember ml tune ...` */
void em__cli_tune_help(FILE *f);
int em__cli_gen(int argc, char **argv);
int em__cli_executor(int argc, char **argv);   /* cmd_executor.c */

/* Help texts (stdout), shared by `CMD --help` and `ember help CMD`. */
void em__cli_run_example_help(FILE *f);
void em__cli_executor_help(FILE *f);
void em__cli_gen_help(FILE *f, const char *what); /* what: NULL, "text", "graph", "records" */
#ifdef EMBER_HAVE_SQL
int em__cli_sql(int argc, char **argv);   /* sql_shell.c: `ember sql` */
void em__cli_sql_help(FILE *f);
#endif

#endif /* EMBER_CLI_H */
