/* mllib/ml_cli_common.c - the flags, context, loading and summary every `ember ml ALGO`
 * command shares (mllib/ml_cli.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/deploy/deploy.h"
#include "mllib/linalg/model_dir.h"
#include "mllib/ml_cli.h"
#include "mllib/mllib.h"

static em_conf *make_conf(const em_ml_cli *c);

/* See em_ml_cli_set_sql (mllib/ml_cli.h): written before any command runs. */
static const em_ml_cli_sql_ops *g_sql_ops;

void em_ml_cli_set_sql(const em_ml_cli_sql_ops *ops)
{
    g_sql_ops = ops;
}

void em_ml_cli_init(em_ml_cli *c, const char *algo, unsigned flags, em_ml_format format,
                    void (*help)(FILE *f))
{
    memset(c, 0, sizeof *c);
    c->algo = algo;
    c->flags = flags;
    c->ro.format = format;
    c->help = help;
    c->t0 = em_now_s();
    c->sql.split_seed = 42;
}

void em_ml_cli_common_help(const em_ml_cli *c, FILE *f)
{
    fputs("  --train PATH          data file, directory of part files, or glob\n", f);
    if (c->flags & EM_ML_CLI_TEST)
        fputs("  --test PATH           held-out data for the quality figures (else --train)\n",
              f);
    fputs("  --sql QUERY           train on a query's rows instead of --train: numeric\n"
          "                        columns are features, TEXT columns one-hot encoded\n"
          "                        (docs/sql-ml.md)\n",
          f);
    if (c->flags & EM_ML_CLI_TEST)
        fputs("  --test-sql QUERY      held-out rows from a query (same columns, same mapping)\n"
              "  --split F             with --sql: hold out a share F in (0, 1) of the rows\n"
              "  --split-seed N        the seed of --split (default 42)\n",
              f);
    fputs("  --table NAME=PATH     with --sql: a table from a CSV file with a header line\n"
          "                        (types inferred; .tsv: tab separated); repeatable\n"
          "  --sql-init FILE       with --sql: run FILE's statements first (CREATE TABLE ...\n"
          "                        USING csv OPTIONS (path '...')); repeatable\n"
          "  --features A,B,...    with --sql: the feature columns (default: all but --label)\n"
          "  --nulls P             with --sql: error (default), skip (the row) or nan\n"
          "  --drop-last           with --sql: one-hot columns leave out their least\n"
          "                        frequent value (no collinearity with the intercept)\n",
          f);
    if (c->ro.format == EM_ML_AUTO)
        fputs("  --format F            libsvm, csv or tsv (csv/tsv: a header line; default: by\n"
              "                        the name, .libsvm/.svm libsvm, .tsv tsv, else csv)\n",
              f);
    else
        fprintf(f, "  --format F            libsvm, csv or tsv (csv/tsv: a header line; "
                   "default %s)\n",
                c->ro.format == EM_ML_LIBSVM ? "libsvm"
                : c->ro.format == EM_ML_TSV  ? "tsv"
                                             : "csv");
    if (c->flags & EM_ML_CLI_LABEL)
        fputs("  --label COL           csv/tsv/--sql: the label column (required for them)\n", f);
    if (c->flags & EM_ML_CLI_LABEL_OPT)
        fputs("  --label COL           csv/tsv/--sql: a label column, not a feature\n", f);
    if (c->flags & EM_ML_CLI_DIM) {
        fputs("  --dim D               libsvm: the feature count (default: largest index in "
              "--train)\n",
              f);
        fputs("  --dense               libsvm: hold rows as dense vectors\n", f);
    }
    fputs("  --skip-bad-lines      count and skip malformed lines instead of failing\n"
          "  --partitions N        read into at least N partitions (default: the context's\n"
          "                        default parallelism)\n",
          f);
    if (c->flags & EM_ML_CLI_SAVE)
        fputs("  --save DIR            save the model into DIR (must not exist)\n", f);
    fputs("  --master M            local[N], local-cluster[E,C] (default: the conf file,\n"
          "                        EMBER_MASTER, else local[*])\n"
          "  --conf KEY=VALUE      set a configuration key (repeatable); precedence: defaults\n"
          "                        < conf file < EMBER_* < --conf < flags such as --master\n"
          "  --json                the last stdout line is one JSON object (the summary)\n"
          "  --verbose             progress on stderr\n"
          "  --help, -h            show this help\n",
          f);
}

int em_ml_cli_usage(em_ml_cli *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ember ml %s: ", c->algo);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (ember ml %s --help)\n", c->algo);
    c->status = 2;
    return 2;
}

const char *em_ml_cli_value(em_ml_cli *c, const char *flag, int argc, char **argv, int *i,
                            bool *bad)
{
    const char *a = argv[*i];
    size_t n = strlen(flag);
    if (strncmp(a, flag, n) != 0)
        return NULL;
    if (a[n] == '=') {
        return a + n + 1;
    }
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        em_ml_cli_usage(c, "%s needs a value", flag);
        *bad = true;
        return NULL;
    }
    return argv[++*i];
}

static bool all_digits(const char *v)
{
    if (!*v)
        return false;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

bool em_ml_cli_u64(em_ml_cli *c, const char *flag, const char *v, uint64_t *out)
{
    errno = 0;
    unsigned long long x = all_digits(v) ? strtoull(v, NULL, 10) : 0;
    if (!all_digits(v) || errno == ERANGE) {
        em_ml_cli_usage(c, "%s wants a non-negative decimal integer, not '%s'", flag, v);
        return false;
    }
    *out = x;
    return true;
}

bool em_ml_cli_u32(em_ml_cli *c, const char *flag, const char *v, uint32_t min, uint32_t max,
                   uint32_t *out)
{
    errno = 0;
    unsigned long long x = all_digits(v) ? strtoull(v, NULL, 10) : 0;
    if (!all_digits(v) || errno == ERANGE || x < min || x > max) {
        em_ml_cli_usage(c, "%s wants an integer in [%u, %u], not '%s'", flag, min, max, v);
        return false;
    }
    *out = (uint32_t)x;
    return true;
}

bool em_ml_cli_f64(em_ml_cli *c, const char *flag, const char *v, double min, double max,
                   double *out)
{
    char *e;
    errno = 0;
    double x = strtod(v, &e);
    if (!*v || *e || errno == ERANGE || !isfinite(x) || x < min || x > max) {
        em_ml_cli_usage(c, "%s wants a number in [%g, %g], not '%s'", flag, min, max, v);
        return false;
    }
    *out = x;
    return true;
}

bool em_ml_cli_choice(em_ml_cli *c, const char *flag, const char *v,
                      const char *const *names, int *out)
{
    for (int k = 0; names[k]; k++)
        if (!strcmp(names[k], v)) {
            *out = k;
            return true;
        }
    char list[256] = "";
    for (int k = 0; names[k]; k++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "", names[k]);
    }
    em_ml_cli_usage(c, "%s: unknown value '%s' (one of: %s)", flag, v, list);
    return false;
}

/* The SQL flags (ml_cli.h em_ml_cli_sql): 1 taken, 0 not one, 2 usage error. */
static int sql_opt(em_ml_cli *c, int argc, char **argv, int *i, bool *bad, const char **v)
{
    static const char *const nulls[] = {"error", "skip", "nan", NULL};
    em_ml_cli_sql *q = &c->sql;
    bool test = (c->flags & EM_ML_CLI_TEST) != 0;
    if (!strcmp(argv[*i], "--drop-last")) {
        q->drop_last = true;
        *v = argv[*i];
    } else if ((*v = em_ml_cli_value(c, "--sql", argc, argv, i, bad)))
        q->query = *v;
    else if (test && (*v = em_ml_cli_value(c, "--test-sql", argc, argv, i, bad)))
        q->test_query = *v;
    else if ((*v = em_ml_cli_value(c, "--features", argc, argv, i, bad)))
        q->features = *v;
    else if ((*v = em_ml_cli_value(c, "--sql-init", argc, argv, i, bad))) {
        if (q->ninit == EM_ML_CLI_MAX_TABLES)
            return em_ml_cli_usage(c, "more than %d --sql-init options", EM_ML_CLI_MAX_TABLES);
        q->init[q->ninit++] = *v;
    } else if ((*v = em_ml_cli_value(c, "--table", argc, argv, i, bad))) {
        if (q->ntables == EM_ML_CLI_MAX_TABLES)
            return em_ml_cli_usage(c, "more than %d --table options", EM_ML_CLI_MAX_TABLES);
        if (!strchr(*v, '=') || **v == '=')
            return em_ml_cli_usage(c, "--table wants NAME=PATH, not '%s'", *v);
        q->tables[q->ntables++] = *v;
    } else if ((*v = em_ml_cli_value(c, "--nulls", argc, argv, i, bad))) {
        if (!em_ml_cli_choice(c, "--nulls", *v, nulls, &q->nulls))
            return 2;
    } else if (test && (*v = em_ml_cli_value(c, "--split", argc, argv, i, bad))) {
        if (!em_ml_cli_f64(c, "--split", *v, 0, 1, &q->split))
            return 2;
        if (q->split <= 0 || q->split >= 1)
            return em_ml_cli_usage(c, "--split wants a share in (0, 1), not '%s'", *v);
    } else if (test && (*v = em_ml_cli_value(c, "--split-seed", argc, argv, i, bad))) {
        if (!em_ml_cli_u64(c, "--split-seed", *v, &q->split_seed))
            return 2;
    }
    if (*bad)
        return 2;
    return *v ? 1 : 0;
}

int em_ml_cli_opt(em_ml_cli *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;
    bool bad = false;
    int r;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        if (c->help)
            c->help(stdout);
        c->status = 0;
        return 2;
    }
    if (!strcmp(a, "--json"))
        return c->json = true, 1;
    if (!strcmp(a, "--verbose"))
        return c->verbose = true, 1;
    if (!strcmp(a, "--skip-bad-lines"))
        return c->ro.skip_bad_lines = true, 1;
    if ((c->flags & EM_ML_CLI_DIM) && !strcmp(a, "--dense"))
        return c->ro.dense = true, 1;
    static const char *const formats[] = {"csv", "tsv", "libsvm", NULL};
    int f;
    if ((v = em_ml_cli_value(c, "--train", argc, argv, i, &bad)))
        c->train = v;
    else if ((c->flags & EM_ML_CLI_TEST) && (v = em_ml_cli_value(c, "--test", argc, argv, i, &bad)))
        c->test = v;
    else if ((c->flags & EM_ML_CLI_SAVE) && (v = em_ml_cli_value(c, "--save", argc, argv, i, &bad)))
        c->save = v;
    else if ((v = em_ml_cli_value(c, "--master", argc, argv, i, &bad)))
        c->master = v;
    else if ((v = em_ml_cli_value(c, "--conf", argc, argv, i, &bad))) {
        const char *eq = strchr(v, '=');
        if (!eq || eq == v)
            return em_ml_cli_usage(c, "--conf wants KEY=VALUE, not '%s'", v);
        if (c->nconfs == EM_ML_CLI_MAX_CONF)
            return em_ml_cli_usage(c, "more than %d --conf options", EM_ML_CLI_MAX_CONF);
        c->confs[c->nconfs++] = v;
    } else if ((r = sql_opt(c, argc, argv, i, &bad, &v)) != 0)
        return r;
    else if ((c->flags & (EM_ML_CLI_LABEL | EM_ML_CLI_LABEL_OPT)) &&
             (v = em_ml_cli_value(c, "--label", argc, argv, i, &bad)))
        c->ro.label = v;
    else if ((v = em_ml_cli_value(c, "--partitions", argc, argv, i, &bad))) {
        if (!em_ml_cli_u32(c, "--partitions", v, 1, 65536, &c->ro.min_partitions))
            return 2;
    }
    else if ((c->flags & EM_ML_CLI_DIM) && (v = em_ml_cli_value(c, "--dim", argc, argv, i, &bad))) {
        if (!em_ml_cli_u32(c, "--dim", v, 1, UINT32_MAX - 1, &c->ro.dim))
            return 2;
    } else if ((v = em_ml_cli_value(c, "--format", argc, argv, i, &bad))) {
        if (!em_ml_cli_choice(c, "--format", v, formats, &f))
            return 2;
        c->ro.format = f == 0 ? EM_ML_CSV : f == 1 ? EM_ML_TSV : EM_ML_LIBSVM;
    }
    if (bad)
        return 2;
    return v ? 1 : 0;
}

/* The checks every finish makes after the source's own: --save and the settings. */
static int finish_common(em_ml_cli *c)
{
    em_err err = EM_ERR_INIT;
    if (c->save && em_ml_model_dir_check_new(c->save, &err) < 0)
        return em_ml_cli_usage(c, "--save %s", err.msg);
    /* A bad master or setting (flag, --conf, conf file or environment) is bad usage, said
     * now. */
    em_conf *conf = make_conf(c);
    int rc = em_conf_check(conf, &err);
    em_conf_free(conf);
    if (rc < 0)
        return em_ml_cli_usage(c, "%s", err.msg);
    return 0;
}

static int finish_sql(em_ml_cli *c)
{
    const em_ml_cli_sql *q = &c->sql;
    if (!g_sql_ops)
        return em_ml_cli_usage(c, "--sql: this ember was built without SQL");
    if (c->test)
        return em_ml_cli_usage(c, "--test PATH goes with --train (with --sql: --test-sql or "
                                  "--split)");
    if (q->test_query && q->split > 0)
        return em_ml_cli_usage(c, "--test-sql and --split both name the held-out rows: give "
                                  "one");
    if ((c->flags & EM_ML_CLI_LABEL) && !c->ro.label)
        return em_ml_cli_usage(c, "--label COL is required with --sql");
    return finish_common(c);
}

int em_ml_cli_finish(em_ml_cli *c)
{
    const em_ml_cli_sql *q = &c->sql;
    if (!c->train && !q->query)
        return em_ml_cli_usage(c, "--train PATH is required (or --sql QUERY)");
    if (c->train && q->query)
        return em_ml_cli_usage(c, "--train and --sql are two sources of the training rows: "
                                  "give one");
    if (q->query)
        return finish_sql(c);
    if (q->test_query || q->features || q->ninit || q->ntables || q->split > 0 || q->nulls ||
        q->drop_last)
        return em_ml_cli_usage(c, "--test-sql, --features, --sql-init, --table, --nulls, "
                                  "--drop-last and --split go with --sql");
    if (c->ro.format == EM_ML_AUTO) {
        size_t n = strlen(c->train);
        bool svm = (n > 7 && !strcmp(c->train + n - 7, ".libsvm")) ||
                   (n > 4 && !strcmp(c->train + n - 4, ".svm"));
        bool tsv = n > 4 && !strcmp(c->train + n - 4, ".tsv");
        c->ro.format = svm ? EM_ML_LIBSVM : tsv ? EM_ML_TSV : EM_ML_CSV;
    }
    if ((c->flags & EM_ML_CLI_LABEL) && c->ro.format != EM_ML_LIBSVM && !c->ro.label)
        return em_ml_cli_usage(c, "--label COL is required with --format %s",
                               c->ro.format == EM_ML_TSV ? "tsv" : "csv");
    return finish_common(c);
}

/* The command's settings: --master over everything, then --conf; the command's defaults
 * under the conf file and the environment (em_conf_set_default). em_context_new applies
 * the conf file and EMBER_* under what is set here, so the order is docs/cli.md's:
 * defaults < conf file < EMBER_* < --conf < flags. */
static em_conf *make_conf(const em_ml_cli *c)
{
    em_conf *conf = em_conf_new();
    for (uint32_t k = 0; k < c->nconfs; k++) {
        const char *eq = strchr(c->confs[k], '=');
        char *key = em_xasprintf("%.*s", (int)(eq - c->confs[k]), c->confs[k]);
        em_conf_set(conf, key, eq + 1);
        em_free(key);
    }
    if (c->master)
        em_conf_set(conf, "ember.master", c->master);
    if (c->executor_memory)
        em_conf_set_default(conf, "ember.executor.memory", c->executor_memory);
    char *name = em_xasprintf("ember ml %s", c->algo);
    em_conf_set(conf, "ember.app.name", name);
    em_free(name);
    return conf;
}

em_context *em_ml_cli_context_new(em_ml_cli *c, em_err *err)
{
    const char *m = c->master ? c->master : getenv("EMBER_MASTER");
    if (m && !strncmp(m, "ember://", 8) && !c->standalone) {
        char *name = em_xasprintf("ember-ml-%s", c->algo);
        em_standalone_app app = {.name = name, .cluster_secret = getenv("EMBER_SECRET")};
        if (!app.cluster_secret) {
            em_free(name);
            em_err_set(err, EM_EINVAL, "master '%s' needs the cluster secret in EMBER_SECRET", m);
            return NULL;
        }
        c->standalone = em_standalone_install(&app, err);
        em_free(name);
        if (!c->standalone)
            return NULL;
    }
    em_conf *conf = make_conf(c);
    em_context *sc = em_context_new(conf, err);
    em_conf_free(conf);
    if (sc)
        em_ml_cli_context(sc);
    else {
        em_standalone_client_free(c->standalone);
        c->standalone = NULL;
    }
    return sc;
}

/* Saves the --sql feature mapping beside a model the command saved. */
static void save_mapping(em_ml_cli *c)
{
    struct stat st;
    if (!c->save || !c->sql.state || stat(c->save, &st) != 0 || !S_ISDIR(st.st_mode))
        return;
    json_t *m = g_sql_ops->mapping(c);
    char *path = em_xasprintf("%s/sql_features.json", c->save);
    char *tmp = em_xasprintf("%s.tmp", path);
    if (!m || json_dump_file(m, tmp, JSON_INDENT(1)) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "ember ml %s: %s: cannot write the SQL feature mapping\n", c->algo,
                path);
        unlink(tmp);
    }
    json_decref(m);
    em_free(tmp);
    em_free(path);
}

void em_ml_cli_context_free(em_ml_cli *c, em_context *sc)
{
    if (c->sql.state) {
        save_mapping(c);
        g_sql_ops->release(c);
    }
    if (sc) {
        em_ml_cli_context(NULL);
        em_context_free(sc);
    }
    em_standalone_client_free(c->standalone);
    c->standalone = NULL;
}

int em_ml_cli_load(em_ml_cli *c, em_context *sc, em_ml_data *train, em_ml_data *test,
                   em_err *err)
{
    double t = em_now_s();
    memset(train, 0, sizeof *train);
    if (test)
        memset(test, 0, sizeof *test);
    if (c->sql.query) {
        int r = g_sql_ops->load(c, sc, train, test, err);
        c->load_s = em_now_s() - t;
        if (r == 0 && test && test->rows)   /* commands say "test" when c->test is set */
            c->test = c->sql.test_query ? "--test-sql" : "--split";
        return r;
    }
    int rc = em_ml_read(sc, c->train, &c->ro, train, err);
    if (rc == 0 && train->skipped)
        fprintf(stderr, "ember ml %s: %s: skipped %llu bad lines\n", c->algo, c->train,
                (unsigned long long)train->skipped);
    if (rc == 0 && test && c->test) {
        em_ml_read_opts ro = c->ro;
        ro.dim = train->dim;
        rc = em_ml_read(sc, c->test, &ro, test, err);
        if (rc == 0 && test->dim != train->dim)
            rc = em_err_set(err, EM_EINVAL, "%s: %u features, the training set has %u",
                            c->test, test->dim, train->dim);
        if (rc == 0 && test->skipped)
            fprintf(stderr, "ember ml %s: %s: skipped %llu bad lines\n", c->algo, c->test,
                    (unsigned long long)test->skipped);
    }
    if (rc < 0) {
        em_ml_data_release(train);
        if (test)
            em_ml_data_release(test);
    }
    c->load_s = em_now_s() - t;
    return rc;
}

void em_ml_cli_print_json(const em_ml_cli *c, json_t *obj)
{
    if (!obj)
        return;
    if (c->json) {
        json_t *m = c->sql.state && g_sql_ops ? g_sql_ops->mapping(c) : NULL;
        if (m)
            json_object_set_new(obj, "sql", m);
        if (!json_object_get(obj, "load_s"))
            json_object_set_new(obj, "load_s", json_real(c->load_s));
        if (!json_object_get(obj, "total_s"))
            json_object_set_new(obj, "total_s", json_real(em_now_s() - c->t0));
        struct rusage ru;
        if (!json_object_get(obj, "peak_rss_mib") && getrusage(RUSAGE_SELF, &ru) == 0)
            json_object_set_new(obj, "peak_rss_mib", json_real((double)ru.ru_maxrss / 1024.0));
        char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (s) {
            printf("%s\n", s);
            fflush(stdout);
            free(s);
        }
    }
    json_decref(obj);
}

int em_ml_cli_fail(const em_ml_cli *c, const em_err *err)
{
    fprintf(stderr, "ember ml %s: %s\n", c->algo, err->msg);
    return 1;
}
