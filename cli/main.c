/* cli/main.c - the `ember` command: global options and sub-command dispatch.
 *
 * Each sub-command lives in its own file (run_example.c, gen.c, ...) behind a function
 * declared in cli/cli.h; adding one means one row in `commands` below. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_slurm.h"
#include "cli/cmd_standalone.h"
#include "mllib/als/als.h"
#include "mllib/mllib.h"
#ifdef EMBER_HAVE_SQL   /* set by CMake once sql/ has sources */
#include "mllib/ml_cli.h"
#include "sql/sql.h"    /* em_sql_register: SQL's task functions, as em_ml_register */
#include "sql/sql_ml.h" /* em_sql_ml_cli_ops: the source of `ember ml ALGO --sql` */
#include "sql/sql_als.h" /* em_sql_als_cli_ops: the source of `ember als --sql` */
#endif

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*help)(FILE *f);
} cli_command;

static void gen_help_all(FILE *f)
{
    em__cli_gen_help(f, NULL);
}

static const cli_command commands[] = {
    {"als", "train and evaluate an ALS recommender (explicit or implicit ratings)",
     em__cli_als, em_als_cli_help},
    {"ml", "train and evaluate an MLlib model (ember ml --help lists the algorithms)",
     em__cli_ml, em_ml_cli_help},
    {"tune", "hyper-parameter search: ember tune mlp|lr|als (= ember ml tune ...)",
     em__cli_tune, em__cli_tune_help},
    {"run-example", "run a bundled example job (wordcount, pagerank, kvbench, ...)",
     em__cli_run_example, em__cli_run_example_help},
    {"gen", "generate deterministic test data: text, graph, records, ratings", em__cli_gen, gen_help_all},
    {"master", "run a standalone cluster master", em__cli_master, em__cli_master_help},
    {"worker", "run a standalone cluster worker", em__cli_worker, em__cli_worker_help},
    {"submit", "run a job library on a standalone cluster", em__cli_submit,
     em__cli_submit_help},
    {"executor", "run one executor process of a cluster application", em__cli_executor,
     em__cli_executor_help},
    {"slurm", "run a job on a cluster started through srun in a Slurm allocation",
     em__cli_slurm, em__cli_slurm_help},
#ifdef EMBER_HAVE_SQL
    {"sql", "the SQL shell; also runs SQL scripts and sqllogictest files", em__cli_sql,
     em__cli_sql_help},
#endif
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void main_help(FILE *f)
{
    fprintf(f, "Usage: ember [--help] [--version] COMMAND [ARGS...]\n"
               "\n"
               "ember is a Spark-style dataflow engine in C11.\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-13s %s\n", "help", "show the help of a command: ember help COMMAND");
    fprintf(f, "\n"
               "Options:\n"
               "  --help, -h    show this help and exit\n"
               "  --version     print the version and exit\n"
               "\n"
               "Run 'ember COMMAND --help' for the options of a command.\n"
               "Environment: EMBER_* variables set configuration keys (EMBER_MASTER sets\n"
               "ember.master); EMBER_LOG=debug|info|warn|error sets the log level;\n"
               "EMBER_EXAMPLES_DIR overrides where run-example looks for job libraries.\n");
}

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* `ember help [COMMAND [SUB]]` */
static int help_command(int argc, char **argv)
{
    const cli_command *c;

    if (argc < 2) {
        main_help(stdout);
        return EM_CLI_OK;
    }
    if (strcmp(argv[1], "help") == 0) {
        printf("Usage: ember help [COMMAND [SUBCOMMAND]]\n\nShows the help of a command.\n");
        return EM_CLI_OK;
    }
    c = find_command(argv[1]);
    if (c == NULL)
        return em__cli_usage_error("ember help", "ember", "unknown command '%s'", argv[1]);
    if (strcmp(c->name, "gen") == 0 && argc >= 3) {
        if (!strcmp(argv[2], "ratings") || !strcmp(argv[2], "blobs") ||
            !strcmp(argv[2], "sparse") || !strcmp(argv[2], "tpch")) {   /* their own help */
            char *hv[] = {"gen", argv[2], "--help", NULL};
            return em__cli_gen(3, hv);
        }
        if (strcmp(argv[2], "text") != 0 && strcmp(argv[2], "graph") != 0 &&
            strcmp(argv[2], "records") != 0)
            return em__cli_usage_error("ember help", "ember gen", "unknown generator '%s'",
                                       argv[2]);
        em__cli_gen_help(stdout, argv[2]);
        return EM_CLI_OK;
    }
    c->help(stdout);
    return EM_CLI_OK;
}

int main(int argc, char **argv)
{
    const cli_command *c;

    /* The driver and every executor process (`ember executor`, run by this main too)
     * register the same task functions before any plan is decoded. */
    if (em_ml_register() < 0) {
        fprintf(stderr, "ember: registering MLlib's task functions failed (a name clash)\n");
        return EM_CLI_FAIL;
    }
#ifdef EMBER_HAVE_SQL
    if (em_sql_register() < 0) {
        fprintf(stderr, "ember: registering SQL's task functions failed (a name clash)\n");
        return EM_CLI_FAIL;
    }
    em_ml_cli_set_sql(em_sql_ml_cli_ops());   /* `ember ml ALGO --sql` (docs/sql-ml.md) */
    if (em_sql_als_register() < 0) {
        fprintf(stderr, "ember: registering SQL's task functions failed (a name clash)\n");
        return EM_CLI_FAIL;
    }
    em_als_cli_set_sql(em_sql_als_cli_ops());  /* `ember als --sql` (docs/als.md) */
#endif
    if (argc < 2) {
        main_help(stderr);
        return EM_CLI_USAGE;
    }
    if (em__cli_is_help(argv[1])) {
        main_help(stdout);
        return EM_CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("ember %s\n", EMBER_VERSION);
        return EM_CLI_OK;
    }
    if (strcmp(argv[1], "help") == 0)
        return help_command(argc - 1, argv + 1);
    if (argv[1][0] == '-')
        return em__cli_usage_error("ember", "ember", "unknown option '%s'", argv[1]);
    c = find_command(argv[1]);
    if (c == NULL)
        return em__cli_usage_error("ember", "ember", "unknown command '%s'", argv[1]);
    return c->run(argc - 1, argv + 1);
}
