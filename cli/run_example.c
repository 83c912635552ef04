/* cli/run_example.c - `ember run-example NAME [OPTIONS] [ARGS...]`: loads a job
 * library (an example), builds the configuration and the context, and calls its
 * ember_main.
 *
 * WHERE EXAMPLES ARE. The directories searched, in order (the first that has the file
 * wins): $EMBER_EXAMPLES_DIR (a ':'-separated list; when set, nothing else is searched),
 * else <dir of this binary>/../lib/ember/examples, the build tree's (EMBER_EXAMPLES_BUILD_DIR,
 * compiled in) and the install prefix's (EMBER_EXAMPLES_INSTALL_DIR). In each, NAME.so and CMake's default module name
 * libNAME.so are tried. A NAME containing '/' is a path to a job library.
 *
 * CONFIGURATION, later sources winning: defaults (ember.master = local[2]) < the file in
 * $EMBER_CONF_FILE < EMBER_* environment variables < --conf k=v < --master and
 * --executor-memory. */
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_standalone.h"
#include "engine/ember.h"
#include "engine/plan/plan.h"

#define PREFIX         "ember run-example"
#define DEFAULT_MASTER "local[2]"
#define MAX_DIRS       16

#ifndef EMBER_EXAMPLES_BUILD_DIR
#define EMBER_EXAMPLES_BUILD_DIR ""
#endif
#ifndef EMBER_EXAMPLES_INSTALL_DIR
#define EMBER_EXAMPLES_INSTALL_DIR ""
#endif

typedef struct run_opts {
    const char *name;
    const char *master;
    const char *memory;
    em__cli_confs confs;
    bool quiet, list;
    int job_argc; /* arguments after NAME for the job */
    char **job_argv;
} run_opts;

static const em__cli_opt run_opt[] = {
    EM_CLI_NONEMPTY("--master", "M", run_opts, master,
                    "where to run: local, local[N], local[*] or\n"
                    "local-cluster[E,C] (default local[2]; standalone\n"
                    "clusters: ember submit); sets ember.master,\n"
                    "overrides $EMBER_MASTER"),
    EM_CLI_CONF("--conf", "KEY=VALUE", run_opts, confs,
                "set a configuration key, e.g.\n"
                "ember.default.parallelism=8 (repeatable; later ones win)"),
    EM_CLI_SIZE("--executor-memory", "SIZE", run_opts, memory,
                "memory per executor, e.g. 512m, 2g\n(sets ember.executor.memory)"),
    EM_CLI_FLAG("--quiet", "-q", run_opts, quiet,
                "only errors on stderr (no timing line, log level error)"),
    EM_CLI_FLAG("--list", NULL, run_opts, list, "print every example's name and job library path"),
};
static const em__cli_opts run_opts_table = {PREFIX, run_opt, sizeof run_opt / sizeof run_opt[0],
                                            em__cli_run_example_help};

typedef struct dir_list {
    char *dirs[MAX_DIRS]; /* owned */
    int n;
    char *env_copy; /* owned copy of $EMBER_EXAMPLES_DIR split in place */
} dir_list;

void em__cli_run_example_help(FILE *f)
{
    fprintf(f, "Usage: ember run-example NAME [OPTIONS] [--] [ARGS...]\n"
               "       ember run-example --list\n"
               "\n"
               "Runs the example job NAME (a job library exporting ember_main) with ARGS.\n"
               "Options are recognised before NAME and right after it; the first other\n"
               "argument (or everything after '--') starts the job's own ARGS.\n"
               "\n"
               "Options:\n");
    em__cli_print_opts(f, &run_opts_table);
    fprintf(f, "\n"
               "Examples:\n"
               "  wordcount INPUT OUTDIR            word counts; prints the top 20\n"
               "  pagerank EDGES ITERATIONS OUTDIR  PageRank of a \"src dst\" edge list\n"
               "  kvbench NPAIRS NKEYS              reduce_by_key benchmark\n"
               "  latency [join|treeagg] [RUNS]     small-job latency (median ms)\n"
               "\n"
               "Job libraries are looked up in $EMBER_EXAMPLES_DIR (':'-separated; exclusive\n"
               "when set), else the build tree, the install prefix and ../lib/ember/examples\n"
               "next to this binary, as NAME.so or libNAME.so. NAME may also be a path.\n"
               "Configuration: defaults < $EMBER_CONF_FILE < EMBER_* variables < --conf <\n"
               "--master/--executor-memory. Exit status: 0 ok, 1 job failed, 2 bad usage.\n");
}

/* ---------------------------------------------------------------- finding job libraries */

static void dirs_add(dir_list *d, const char *dir)
{
    if (dir == NULL || *dir == '\0' || d->n == MAX_DIRS)
        return;
    for (int i = 0; i < d->n; i++)
        if (strcmp(d->dirs[i], dir) == 0)
            return;
    d->dirs[d->n++] = em_xstrdup(dir);
}

static void dirs_init(dir_list *d)
{
    const char *env = getenv("EMBER_EXAMPLES_DIR");
    char exe[PATH_MAX];
    ssize_t n;

    memset(d, 0, sizeof *d);
    if (env != NULL && *env != '\0') {
        d->env_copy = em_xstrdup(env);
        for (char *save = NULL, *p = strtok_r(d->env_copy, ":", &save); p != NULL;
             p = strtok_r(NULL, ":", &save))
            dirs_add(d, p);
        return;
    }
    /* Next to this binary first: build/bin/ember finds build/lib/ember/examples and an
     * installed (or relocated) ember finds its own prefix's, never another tree's. */
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            char *rel = em_xasprintf("%s/../lib/ember/examples", exe);
            dirs_add(d, rel);
            em_free(rel);
        }
    }
    dirs_add(d, EMBER_EXAMPLES_BUILD_DIR);
    dirs_add(d, EMBER_EXAMPLES_INSTALL_DIR);
}

static void dirs_destroy(dir_list *d)
{
    for (int i = 0; i < d->n; i++)
        em_free(d->dirs[i]);
    em_free(d->env_copy);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Returns the path of NAME's job library (caller frees) or NULL. */
static char *find_example(const dir_list *d, const char *name)
{
    if (strchr(name, '/') != NULL)
        return is_file(name) ? em_xstrdup(name) : NULL;
    for (int i = 0; i < d->n; i++) {
        static const char *const forms[] = {"%s/%s.so", "%s/lib%s.so"};
        for (size_t f = 0; f < 2; f++) {
            char *p = em_xasprintf(forms[f], d->dirs[i], name);
            if (is_file(p))
                return p;
            em_free(p);
        }
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Prints "NAME  PATH" per example, sorted by name; the first directory wins on a clash. */
static int list_examples(const dir_list *d)
{
    char **names = NULL;
    size_t n = 0, cap = 0;

    for (int i = 0; i < d->n; i++) {
        DIR *dir = opendir(d->dirs[i]);
        struct dirent *e;
        if (dir == NULL)
            continue;
        while ((e = readdir(dir)) != NULL) {
            size_t len = strlen(e->d_name);
            const char *base = e->d_name;
            if (len <= 3 || strcmp(e->d_name + len - 3, ".so") != 0)
                continue;
            if (strncmp(base, "lib", 3) == 0 && len > 6) {
                base += 3;
                len -= 3;
            }
            names = em_arr_xgrow(names, &cap, n + 1, sizeof *names);
            names[n++] = em_strndup(base, len - 3);
            if (names[n - 1] == NULL)
                n--;
        }
        closedir(dir);
    }
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        char *path = find_example(d, names[i]);
        if (path != NULL)
            printf("%-16s %s\n", names[i], path);
        em_free(path);
    }
    for (size_t i = 0; i < n; i++)
        em_free(names[i]);
    em_free(names);
    if (n == 0) {
        fprintf(stderr, PREFIX ": no job libraries found in:");
        for (int i = 0; i < d->n; i++)
            fprintf(stderr, " %s", d->dirs[i]);
        fprintf(stderr, "\n");
        return EM_CLI_FAIL;
    }
    return EM_CLI_OK;
}

/* ---------------------------------------------------------------- arguments */

/* Returns -1 to go on, else an exit status. Options are read before NAME (an unknown one
 * is an error) and right after it (an unknown one starts the job's arguments); "--" ends
 * them, and the argument after it is NAME when none came before. */
static int parse_opts(int argc, char **argv, run_opts *o)
{
    int i = 1, rc;

    memset(o, 0, sizeof *o);
    if ((rc = em__cli_parse_opts(&run_opts_table, EM_CLI_REST_OPERAND, o, argc, argv, &i)) >= 0)
        return rc;
    bool dashdash = i < argc && strcmp(argv[i], "--") == 0;
    if (dashdash)
        i++;
    if (i < argc)
        o->name = argv[i++];
    if (!dashdash && o->name) {
        if ((rc = em__cli_parse_opts(&run_opts_table, EM_CLI_REST_ANY, o, argc, argv, &i)) >= 0)
            return rc;
        if (i < argc && strcmp(argv[i], "--") == 0)
            i++;
    }
    o->job_argc = argc - i;
    o->job_argv = argv + i;
    if (!o->list && o->name == NULL)
        return em__cli_usage_error(PREFIX, PREFIX, "missing example NAME");
    return -1;
}

/* defaults < $EMBER_CONF_FILE < EMBER_* < --conf < --master/--executor-memory */
static em_conf *build_conf(const run_opts *o, int *status)
{
    const char *const defaults[] = {"ember.master", DEFAULT_MASTER,
                                    "ember.ui.port", "4040",   /* Spark's status page */
                                    NULL};
    const char *const overrides[] = {"ember.master", o->master,
                                     "ember.executor.memory", o->memory,
                                     "ember.ui.showConsoleProgress", o->quiet ? "false" : NULL,
                                     NULL};
    return em__cli_job_conf(PREFIX, defaults, o->confs.kv, o->confs.n, overrides, status);
}

/* ---------------------------------------------------------------- running */

int em__cli_run_example(int argc, char **argv)
{
    run_opts o;
    dir_list dirs;
    char *path = NULL;
    int rc;

    if ((rc = parse_opts(argc, argv, &o)) >= 0)
        return rc;
    if (o.quiet)
        em_log_set_level(EM_LOG_ERROR);
    dirs_init(&dirs);
    if (o.list) {
        rc = list_examples(&dirs);
        goto out;
    }
    path = find_example(&dirs, o.name);
    if (path == NULL) {
        fprintf(stderr, "ember: no example named '%s' (searched:", o.name);
        for (int i = 0; i < dirs.n; i++)
            fprintf(stderr, " %s", dirs.dirs[i]);
        fprintf(stderr, "); try 'ember run-example --list'\n");
        rc = EM_CLI_USAGE;   /* a wrong NAME is bad usage, as an unknown command */
        goto out;
    }
    em_conf *conf = build_conf(&o, &rc);
    if (conf)
        rc = em__cli_run_job(path, o.name, "example", conf, o.job_argc, o.job_argv, o.quiet);
out:
    em_free(path);
    dirs_destroy(&dirs);
    return rc;
}
