/* mllib/ml_cli_common.c - the flags, context, loading and summary every `ember ml ALGO`
 * command shares (mllib/ml_cli.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "engine/deploy/deploy.h"
#include "mllib/linalg/model_dir.h"
#include "mllib/ml_cli.h"
#include "mllib/mllib.h"

static em_conf *make_conf(const em_ml_cli *c);

void em_ml_cli_init(em_ml_cli *c, const char *algo, unsigned flags, em_ml_format format,
                    void (*help)(FILE *f))
{
    memset(c, 0, sizeof *c);
    c->algo = algo;
    c->flags = flags;
    c->ro.format = format;
    c->help = help;
    c->t0 = em_now_s();
}

void em_ml_cli_common_help(const em_ml_cli *c, FILE *f)
{
    fputs("  --train PATH          data file, directory of part files, or glob\n", f);
    if (c->flags & EM_ML_CLI_TEST)
        fputs("  --test PATH           held-out data for the quality figures (else --train)\n",
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
        fputs("  --label COL           csv/tsv: the label column (required for csv/tsv)\n", f);
    if (c->flags & EM_ML_CLI_LABEL_OPT)
        fputs("  --label COL           csv/tsv: a label column, left out of the features\n", f);
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

int em_ml_cli_opt(em_ml_cli *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;
    bool bad = false;
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

int em_ml_cli_finish(em_ml_cli *c)
{
    if (!c->train)
        return em_ml_cli_usage(c, "--train PATH is required");
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
    em_err err = EM_ERR_INIT;
    if (c->save && em_ml_model_dir_check_new(c->save, &err) < 0)
        return em_ml_cli_usage(c, "--save %s", err.msg);
    /* A bad master or setting (flag, conf file or environment) is bad usage, said now. */
    em_conf *conf = make_conf(c);
    int rc = em_conf_check(conf, &err);
    em_conf_free(conf);
    if (rc < 0)
        return em_ml_cli_usage(c, "%s", err.msg);
    return 0;
}

/* The command's settings: --master over everything; the command's defaults under the
 * conf file and the environment (em_conf_set_default). */
static em_conf *make_conf(const em_ml_cli *c)
{
    em_conf *conf = em_conf_new();
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

void em_ml_cli_context_free(em_ml_cli *c, em_context *sc)
{
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
