/* mllib/ml_cli.h - what every `ember ml ALGO` command shares, so each algorithm's command
 * is only its own flags and its own work: the data flags (--train, --test, --format,
 * --label, --dim, --dense, --skip-bad-lines), the SQL input (--sql, --test-sql,
 * --sql-init, --table, --features, --nulls, --split, --split-seed), --master, --conf,
 * --save, --json and --verbose;
 * strict parsing of numbers; the context (the master from the flag, else the conf file or
 * EMBER_MASTER, else the engine's default); loading the training and test sets with the
 * same feature count; the checks of output paths before any work; the JSON summary line.
 *
 * A command's main:
 *     em_ml_cli c;
 *     em_ml_cli_init(&c, "lr", EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL, EM_ML_LIBSVM);
 *     for (int i = 1; i < argc; i++) {
 *         int r = em_ml_cli_opt(&c, argc, argv, &i);   // 1 taken, 0 not common, 2 exit
 *         if (r == 1) continue;
 *         if (r == 2) return c.status;                  // usage error printed, or --help
 *         ... the algorithm's own flags (em_ml_cli_value/_u32/_f64/_choice), else
 *         return em_ml_cli_usage(&c, "unknown option '%s'", argv[i]);
 *     }
 *     if (em_ml_cli_finish(&c) != 0) return c.status;   // --train given, --save DIR new
 *     em_context *sc = em_ml_cli_context_new(&c, &err); ...
 *     em_ml_cli_load(&c, sc, &train, &test, &err); ... train ... evaluate ...
 *     em_ml_cli_print_json(&c, obj);                   // adds total_s, peak_rss_mib
 *     em_ml_cli_context_free(&c, sc);
 * Messages read "ember ml ALGO: ..."; usage errors end with "(ember ml ALGO --help)" and
 * exit 2, failures exit 1.
 * THREADS: the command's main thread only. */
#ifndef EMBER_MLLIB_ML_CLI_H
#define EMBER_MLLIB_ML_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mllib/linalg/rows.h"

/* Which optional common flags a command takes (--train, --format, --partitions, --master,
 * --json, --verbose, --skip-bad-lines and --help are always taken). A format of 0 given to
 * em_ml_cli_init means "by the file name": .libsvm or .svm is libsvm, .tsv is tsv, anything
 * else csv (decided by em_ml_cli_finish). */
enum {
    EM_ML_CLI_TEST = 1u << 0,    /* --test PATH */
    EM_ML_CLI_SAVE = 1u << 1,    /* --save DIR */
    EM_ML_CLI_LABEL = 1u << 2,   /* --label COL (csv/tsv: a label column; data is labeled) */
    EM_ML_CLI_DIM = 1u << 3,     /* --dim D (libsvm feature count) and --dense */
    EM_ML_CLI_LABEL_OPT = 1u << 4, /* --label COL, optional: a column left out of the
                                      features (unsupervised commands) */
};

#define EM_ML_CLI_MAX_CONF 64    /* --conf pairs */
#define EM_ML_CLI_MAX_TABLES 32  /* --table and --sql-init, each */

/* The SQL input of a command (--sql and friends; docs/sql-ml.md). */
typedef struct em_ml_cli_sql {
    const char *query;           /* --sql: replaces --train */
    const char *test_query;      /* --test-sql: replaces --test */
    const char *features;        /* --features a,b,c (NULL: all but the label) */
    const char *init[EM_ML_CLI_MAX_TABLES];    /* --sql-init FILE, run in order */
    uint32_t ninit;
    const char *tables[EM_ML_CLI_MAX_TABLES];  /* --table NAME=PATH */
    uint32_t ntables;
    int nulls;                   /* --nulls: 0 error, 1 skip, 2 nan (em_sql_ml_nulls) */
    bool drop_last;              /* --drop-last: one-hot columns drop their rarest value */
    double split;                /* --split F: share of the rows held out (0 = none) */
    uint64_t split_seed;         /* --split-seed N (default 42) */
    void *state;                 /* the source's (the feature mapping), until context_free */
} em_ml_cli_sql;

typedef struct em_ml_cli {
    const char *algo;            /* "lr": messages read "ember ml lr: ..." */
    unsigned flags;              /* EM_ML_CLI_* */
    const char *train, *test, *save, *master;
    const char *confs[EM_ML_CLI_MAX_CONF];   /* --conf KEY=VALUE, borrowed from argv */
    uint32_t nconfs;
    em_ml_cli_sql sql;
    em_ml_read_opts ro;          /* format, label, dim, dense, skip_bad_lines */
    bool json, verbose;
    int status;                  /* exit status when a call returned 2 (0 after --help) */
    double t0;                   /* em_now_s() at em_ml_cli_init */
    double load_s;               /* seconds em_ml_cli_load took */
    void (*help)(FILE *f);       /* the command's help (printed on --help) */
    const char *executor_memory; /* set by the command: ember.executor.memory as a default
                                    (the conf file, EMBER_EXECUTOR_MEMORY win) */
    void *standalone;            /* em_standalone_client while an ember:// context lives */
} em_ml_cli;

void em_ml_cli_init(em_ml_cli *c, const char *algo, unsigned flags, em_ml_format format,
                    void (*help)(FILE *f));
/* The help lines of the common flags this command takes, in the house format
 * ("  --train PATH          ..."). */
void em_ml_cli_common_help(const em_ml_cli *c, FILE *f);

/* Parses argv[*i] if it is a common flag (advancing *i past its value): 1 taken, 0 not a
 * common flag (nothing printed), 2 the command must exit with c->status (--help printed,
 * or a usage error printed). */
int em_ml_cli_opt(em_ml_cli *c, int argc, char **argv, int *i);

/* Prints "ember ml ALGO: <fmt...> (ember ml ALGO --help)" on stderr; sets c->status = 2
 * and returns 2. */
int em_ml_cli_usage(em_ml_cli *c, const char *fmt, ...) EM_PRINTF(2, 3);

/* The value of a command's own flag argv[*i] ("--flag V" or "--flag=V"): NULL when
 * argv[*i] is another flag; when it is this flag but the value is missing, prints the
 * usage error and sets *bad. Advances *i past the value. */
const char *em_ml_cli_value(em_ml_cli *c, const char *flag, int argc, char **argv, int *i,
                            bool *bad);
/* Strict values: decimal integers only (no sign, no 0x, no 1e3, no 1.5) in [min, max];
 * finite numbers in [min, max]; one of names (NULL-terminated; *out = its index). False
 * after printing the usage error naming the flag, the value and what is wanted. */
bool em_ml_cli_u32(em_ml_cli *c, const char *flag, const char *v, uint32_t min, uint32_t max,
                   uint32_t *out);
bool em_ml_cli_u64(em_ml_cli *c, const char *flag, const char *v, uint64_t *out);
bool em_ml_cli_f64(em_ml_cli *c, const char *flag, const char *v, double min, double max,
                   double *out);
bool em_ml_cli_choice(em_ml_cli *c, const char *flag, const char *v,
                      const char *const *names, int *out);

/* After parsing: --train or --sql given (not both; the SQL flags only with --sql); --save
 * DIR (if any) does not exist and its parent does
 * (em_ml_model_dir_check_new); the settings the context will run with pass em_conf_check
 * (master, memory sizes, unknown ember.* keys, from flags, conf file or environment).
 * 0, or 2 after printing the error. */
int em_ml_cli_finish(em_ml_cli *c);

/* The context: ember.master from --master when given (else the conf file, EMBER_MASTER or
 * the engine's default apply), ember.app.name "ember ml ALGO"; tells em_ml_cli_context.
 * A standalone master (--master or EMBER_MASTER ember://HOST:PORT) gets the standalone
 * client installed first (engine/deploy), authenticated with EMBER_SECRET, as `ember
 * submit` does; em_ml_cli_context_free removes it. */
em_context *em_ml_cli_context_new(em_ml_cli *c, em_err *err);
void em_ml_cli_context_free(em_ml_cli *c, em_context *sc);   /* NULL ok */

/* Reads --train into *train and, when --test was given, --test into *test with the
 * training set's layout (a LIBSVM test set gets the training set's feature count; a test
 * row with a larger index is an error naming its line). test may be NULL when the command
 * takes no --test; test->rows is NULL when none was given. Prints skipped-line counts on
 * stderr. Sets c->load_s. */
int em_ml_cli_load(em_ml_cli *c, em_context *sc, em_ml_data *train, em_ml_data *test,
                   em_err *err);

/* Prints obj (consumed) as one compact JSON line on stdout, after adding "total_s"
 * (since em_ml_cli_init), "load_s" and "peak_rss_mib" when absent. Only with --json;
 * without it obj is just released. */
void em_ml_cli_print_json(const em_ml_cli *c, json_t *obj);

/* Prints "ember ml ALGO: <err->msg>" and returns 1 (the failure exit status). */
int em_ml_cli_fail(const em_ml_cli *c, const em_err *err);

/* Where --sql reads its rows: SQL sits beside mllib, on top of mllib/linalg (the bridge
 * in sql/sql_ml.h makes labeled points), so mllib cannot call it directly; the ember
 * command installs sql's ops at start (em_ml_cli_set_sql), and without them --sql is an
 * error saying SQL is not built in.
 *   load: reads c->sql.query (and test_query, or the --split) into *train and *test as
 *         em_ml_cli_load does, keeping its feature mapping in c->sql.state;
 *   mapping: the mapping as JSON (new reference), added to the --json line as "sql" and
 *         saved as DIR/sql_features.json beside a --save'd model;
 *   release: frees c->sql.state. */
typedef struct em_ml_cli_sql_ops {
    int (*load)(em_ml_cli *c, em_context *sc, em_ml_data *train, em_ml_data *test,
                em_err *err);
    json_t *(*mapping)(const em_ml_cli *c);
    void (*release)(em_ml_cli *c);
} em_ml_cli_sql_ops;
/* GLOBALS: written once by the ember command's main before any command runs (before
 * threads start); read by em_ml_cli_* on the command's main thread. NULL uninstalls. */
void em_ml_cli_set_sql(const em_ml_cli_sql_ops *ops);

#endif /* EMBER_MLLIB_ML_CLI_H */
