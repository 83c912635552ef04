/* mllib/clustering/kmeans_cli.c - `ember ml kmeans`: load a data set (mllib/linalg
 * loaders), train k-means on the engine, print the cost per iteration and a summary (with
 * --json, the last stdout line is one JSON object), optionally save the model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/clustering/kmeans.h"

typedef struct km_opts {
    const char *train, *save, *master, *label, *init_file, *write_init;
    em_ml_read_opts ro;
    em_kmeans_params p;
    bool json, verbose;
} km_opts;

void em_kmeans_cli_help(FILE *f)
{
    fputs("Usage: ember ml kmeans --train PATH --k K [options]\n"
          "\n"
          "Clusters the rows of PATH into K clusters (k-means on the engine: k-means||\n"
          "initialization, then Lloyd iterations with a GEMM distance kernel).\n"
          "\n"
          "  --train PATH          data file or directory of part files\n"
          "  --format F            csv (default; header line), tsv, or libsvm\n"
          "  --label COL           csv/tsv: a label column to leave out of the features\n"
          "  --k K                 number of clusters (>= 1)\n"
          "  --max-iter N          Lloyd iterations at most (default 20)\n"
          "  --tol T               stop when no centre moves more than T (default 1e-4;\n"
          "                        0 = until no centre moves)\n"
          "  --seed S              random seed (default 1)\n"
          "  --init M              k-means|| (default), k-means++ or random\n"
          "  --init-file FILE      start from these centres (one per line, comma separated)\n"
          "  --write-init FILE     write the initial centres there (same format)\n"
          "  --distance D          euclidean (default) or cosine\n"
          "  --skip-bad-lines      count and skip malformed lines instead of failing\n"
          "  --save DIR            save the model (DIR must not exist)\n"
          "  --master M            local[N] | local-cluster[E,C] (default local[2])\n"
          "  --json                last stdout line: {cost, iterations, centers, train_s,\n"
          "                        total_s, ...}\n"
          "  --help, -h            show this help\n",
          f);
}

static int usage(const char *fmt, const char *a)
{
    fprintf(stderr, "ember ml kmeans: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, " (ember ml kmeans --help)\n");
    return 2;
}

static bool parse_u32(const char *s, uint32_t *out)
{
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (!*s || *e || s[0] == '-' || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static int set_opt(km_opts *o, const char *a, const char *v)
{
    char *e;
    if (!strcmp(a, "--train"))
        o->train = v;
    else if (!strcmp(a, "--format")) {
        if (!strcmp(v, "csv"))
            o->ro.format = EM_ML_CSV;
        else if (!strcmp(v, "tsv"))
            o->ro.format = EM_ML_TSV;
        else if (!strcmp(v, "libsvm"))
            o->ro.format = EM_ML_LIBSVM;
        else
            return usage("unknown format '%s' (csv, tsv, libsvm)", v);
    } else if (!strcmp(a, "--label"))
        o->label = v;
    else if (!strcmp(a, "--k")) {
        if (!parse_u32(v, &o->p.k) || o->p.k == 0)
            return usage("--k wants a positive integer, not '%s'", v);
    } else if (!strcmp(a, "--max-iter")) {
        if (!parse_u32(v, &o->p.max_iter) || o->p.max_iter == 0)
            return usage("--max-iter wants a positive integer, not '%s'", v);
    } else if (!strcmp(a, "--tol")) {
        o->p.tol = strtod(v, &e);
        if (!*v || *e || !(o->p.tol >= 0) || !isfinite(o->p.tol))
            return usage("--tol wants a number >= 0, not '%s'", v);
    } else if (!strcmp(a, "--seed")) {
        unsigned long long s = strtoull(v, &e, 10);
        if (!*v || *e || v[0] == '-')
            return usage("--seed wants a non-negative integer, not '%s'", v);
        o->p.seed = s;
    } else if (!strcmp(a, "--init")) {
        if (!strcmp(v, "k-means||"))
            o->p.init = EM_KMEANS_INIT_PARALLEL;
        else if (!strcmp(v, "k-means++"))
            o->p.init = EM_KMEANS_INIT_PLUSPLUS;
        else if (!strcmp(v, "random"))
            o->p.init = EM_KMEANS_INIT_RANDOM;
        else
            return usage("unknown --init '%s' (k-means||, k-means++, random)", v);
    } else if (!strcmp(a, "--distance")) {
        if (!strcmp(v, "euclidean"))
            o->p.distance = EM_KMEANS_EUCLIDEAN;
        else if (!strcmp(v, "cosine"))
            o->p.distance = EM_KMEANS_COSINE;
        else
            return usage("unknown --distance '%s' (euclidean, cosine)", v);
    } else if (!strcmp(a, "--init-file"))
        o->init_file = v;
    else if (!strcmp(a, "--write-init"))
        o->write_init = v;
    else if (!strcmp(a, "--save"))
        o->save = v;
    else if (!strcmp(a, "--master"))
        o->master = v;
    else
        return usage("unknown option '%s'", a);
    return -1;
}

/* -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, km_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ro.format = EM_ML_CSV;
    o->p.tol = 1e-4;
    o->p.seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            em_kmeans_cli_help(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        if (!strcmp(a, "--skip-bad-lines")) {
            o->ro.skip_bad_lines = true;
            continue;
        }
        if (i + 1 >= argc)
            return usage("option '%s' needs a value", a);
        int rc = set_opt(o, a, argv[++i]);
        if (rc >= 0)
            return rc;
    }
    if (!o->train)
        return usage("%s", "--train PATH is required");
    if (o->p.k == 0)
        return usage("%s", "--k K is required");
    o->ro.label = o->label;
    return -1;
}

/* Reads centres (one per line, dim comma-separated numbers). */
static int read_centers(const char *path, uint32_t dim, uint32_t kmax, double **out,
                        uint32_t *k, em_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return em_err_set(err, EM_EIO, "%s: cannot open", path);
    double *c = em_xmalloc(8 * (size_t)kmax * dim);
    char line[1 << 16];
    uint32_t n = 0, ln = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        ln++;
        char *p = line, *e;
        if (strspn(p, " \t\r\n") == strlen(p))
            continue;
        if (n == kmax) {
            rc = em_err_set(err, EM_EINVAL, "%s:%u: more than %u centres", path, ln, kmax);
            break;
        }
        for (uint32_t j = 0; j < dim && rc == 0; j++) {
            c[(size_t)n * dim + j] = strtod(p, &e);
            if (e == p || (j + 1 < dim && *e != ','))
                rc = em_err_set(err, EM_EINVAL, "%s:%u: expected %u numbers", path, ln, dim);
            p = e + 1;
        }
        n++;
    }
    fclose(f);
    if (rc == 0 && n == 0)
        rc = em_err_set(err, EM_EINVAL, "%s: no centres", path);
    if (rc < 0) {
        em_free(c);
        return rc;
    }
    *out = c;
    *k = n;
    return 0;
}

static int write_centers(const char *path, const double *c, uint32_t k, uint32_t dim,
                         em_err *err)
{
    em_vbuf b;
    em_vbuf_init(&b);
    for (uint32_t i = 0; i < k; i++)
        for (uint32_t j = 0; j < dim; j++)
            em_vbuf_printf(&b, "%.17g%s", c[(size_t)i * dim + j], j + 1 < dim ? "," : "\n");
    int rc = em_write_file_atomic(path, b.data, b.len, err);
    em_vbuf_destroy(&b);
    return rc;
}

static void progress(void *ud, uint32_t it, double cost, double secs)
{
    (void)ud;
    printf("iteration %u: cost %.10g, %.3f s\n", it, cost, secs);
    fflush(stdout);
}

static void print_summary(const km_opts *o, const em_kmeans_model *m, const em_ml_data *d,
                          double load_s, double total_s)
{
    printf("k-means: %u centres of %u features, %llu rows, cost %.10g after %u iterations%s "
           "(init %.3f s, Lloyd %.3f s)\n", m->k, m->dim, (unsigned long long)d->nrows,
           m->cost, m->iterations, m->converged ? " (converged)" : "", m->init_s, m->train_s);
    if (d->skipped)
        printf("skipped %llu bad lines\n", (unsigned long long)d->skipped);
    if (!o->json)
        return;
    printf("{\"cost\": %.17g, \"iterations\": %u, \"converged\": %s, \"k\": %u, \"rows\": %llu, "
           "\"skipped_lines\": %llu, \"init_s\": %.6f, \"train_s\": %.6f, \"iteration_s\": %.6f, "
           "\"load_s\": %.6f, \"total_s\": %.6f, \"centers\": [",
           m->cost, m->iterations, m->converged ? "true" : "false", m->k,
           (unsigned long long)d->nrows, (unsigned long long)d->skipped, m->init_s,
           m->train_s, m->iterations ? m->train_s / m->iterations : 0.0, load_s, total_s);
    for (uint32_t i = 0; i < m->k; i++) {
        printf(i ? ", [" : "[");
        for (uint32_t j = 0; j < m->dim; j++)
            printf(j ? ", %.17g" : "%.17g", m->centers[(size_t)i * m->dim + j]);
        printf("]");
    }
    printf("]}\n");
}

static int run(const km_opts *o, em_context *sc, double t0, em_err *err)
{
    em_ml_data d;
    em_kmeans_model *m = NULL;
    double *init = NULL;
    em_kmeans_params p = o->p;
    int rc = em_ml_read(sc, o->train, &o->ro, &d, err);
    if (rc < 0)
        return rc;
    double load_s = em_now_s() - t0;
    if (o->init_file &&
        (rc = read_centers(o->init_file, d.dim, p.k, &init, &p.init_k, err)) == 0)
        p.init_centers = init;
    p.progress = progress;
    if (rc == 0)
        rc = em_kmeans_train(sc, &d, &p, &m, err);
    if (rc == 0 && o->write_init)
        rc = write_centers(o->write_init, m->init_centers, m->k, m->dim, err);
    if (rc == 0 && o->save)
        rc = em_kmeans_model_save(m, o->save, err);
    if (rc == 0)
        print_summary(o, m, &d, load_s, em_now_s() - t0);
    em_kmeans_model_free(m);
    em_free(init);
    em_ml_data_release(&d);
    return rc;
}

int em_kmeans_cli_main(int argc, char **argv)
{
    km_opts o;
    double t0 = em_now_s();
    int st = parse_args(argc, argv, &o);
    if (st >= 0)
        return st;
    em_conf *conf = em_conf_new();
    em_conf_set(conf, "ember.master", o.master ? o.master : "local[2]");
    em_conf_set(conf, "ember.app.name", "ember ml kmeans");
    em_err err = EM_ERR_INIT;
    em_context *sc = em_context_new(conf, &err);
    em_conf_free(conf);
    int rc = sc ? run(&o, sc, t0, &err) : err.code;
    em_context_free(sc);
    if (rc < 0) {
        fprintf(stderr, "ember ml kmeans: %s\n", err.msg);
        return 1;
    }
    return 0;
}
