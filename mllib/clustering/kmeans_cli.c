/* mllib/clustering/kmeans_cli.c - `ember ml kmeans`: load a data set (mllib/linalg
 * loaders), train k-means on the engine, print the cost per iteration and a summary (with
 * --json, the last stdout line is one JSON object), optionally save the model. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/clustering/kmeans.h"
#include "mllib/ml_cli.h"

typedef struct km_opts {
    em_ml_cli c;   /* the shared flags (mllib/ml_cli.h) */
    const char *init_file, *write_init;
    em_kmeans_params p;
} km_opts;

void em_kmeans_cli_help(FILE *f)
{
    em_ml_cli c;
    em_ml_cli_init(&c, "kmeans", EM_ML_CLI_SAVE | EM_ML_CLI_LABEL_OPT | EM_ML_CLI_DIM, EM_ML_AUTO,
                   NULL);
    fputs("Usage: ember ml kmeans --train PATH --k K [options]\n"
          "\n"
          "Clusters the rows of PATH into K clusters (k-means on the engine: k-means||\n"
          "initialization, then Lloyd iterations with a fused distance kernel).\n"
          "\n",
          f);
    em_ml_cli_common_help(&c, f);
    fputs("  --k K                 number of clusters (>= 1)\n"
          "  --max-iter N          Lloyd iterations at most (default 20)\n"
          "  --tol T               stop when no centre moves more than T (default 1e-4;\n"
          "                        0 = until no centre moves)\n"
          "  --seed S              random seed (default 1)\n"
          "  --init M              k-means|| (default), k-means++ or random\n"
          "  --init-file FILE      start from these centres (one per line, comma separated)\n"
          "  --write-init FILE     write the initial centres there (same format)\n"
          "  --distance D          euclidean (default) or cosine\n"
          "\n"
          "JSON: cost, iterations, converged, k, rows, skipped_lines, init_s, train_s,\n"
          "iteration_s, centers, load_s, total_s, peak_rss_mib\n",
          f);
}

/* The command's own flag at argv[*i]: 1 taken, 0 not ours, 2 usage error printed. */
static int own_opt(km_opts *o, int argc, char **argv, int *i)
{
    static const char *const inits[] = {"k-means||", "k-means++", "random", NULL};
    static const char *const dists[] = {"euclidean", "cosine", NULL};
    em_ml_cli *c = &o->c;
    bool bad = false, ok = true;
    const char *v;
    int x;
    if ((v = em_ml_cli_value(c, "--k", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--k", v, 1, 1u << 24, &o->p.k);
    else if ((v = em_ml_cli_value(c, "--max-iter", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--max-iter", v, 1, 1u << 30, &o->p.max_iter);
    else if ((v = em_ml_cli_value(c, "--tol", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--tol", v, 0, 1e300, &o->p.tol);
    else if ((v = em_ml_cli_value(c, "--seed", argc, argv, i, &bad)))
        ok = em_ml_cli_u64(c, "--seed", v, &o->p.seed);
    else if ((v = em_ml_cli_value(c, "--init", argc, argv, i, &bad))) {
        if ((ok = em_ml_cli_choice(c, "--init", v, inits, &x)))
            o->p.init = (em_kmeans_init)x;
    } else if ((v = em_ml_cli_value(c, "--distance", argc, argv, i, &bad))) {
        if ((ok = em_ml_cli_choice(c, "--distance", v, dists, &x)))
            o->p.distance = (em_kmeans_distance)x;
    } else if ((v = em_ml_cli_value(c, "--init-file", argc, argv, i, &bad)))
        o->init_file = v;
    else if ((v = em_ml_cli_value(c, "--write-init", argc, argv, i, &bad)))
        o->write_init = v;
    if (bad || !ok)
        return 2;
    return v ? 1 : 0;
}

/* -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, km_opts *o)
{
    memset(o, 0, sizeof *o);
    em_ml_cli_init(&o->c, "kmeans", EM_ML_CLI_SAVE | EM_ML_CLI_LABEL_OPT | EM_ML_CLI_DIM,
                   EM_ML_AUTO, em_kmeans_cli_help);
    o->p.tol = 1e-4;
    o->p.seed = 1;
    for (int i = 1; i < argc; i++) {
        int r = em_ml_cli_opt(&o->c, argc, argv, &i);
        if (r == 0)
            r = own_opt(o, argc, argv, &i);
        if (r == 0)
            r = em_ml_cli_usage(&o->c, "unknown option '%s'", argv[i]);
        if (r == 2)
            return o->c.status;
    }
    if (em_ml_cli_finish(&o->c) != 0)
        return o->c.status;
    if (o->p.k == 0)
        return em_ml_cli_usage(&o->c, "--k K is required");
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

static json_t *centers_json(const em_kmeans_model *m)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < m->k; i++) {
        json_t *row = json_array();
        for (uint32_t j = 0; j < m->dim; j++)
            json_array_append_new(row, json_real(m->centers[(size_t)i * m->dim + j]));
        json_array_append_new(a, row);
    }
    return a;
}

static void print_summary(const km_opts *o, const em_kmeans_model *m, const em_ml_data *d)
{
    printf("k-means: %u centres of %u features, %llu rows, cost %.10g after %u iterations%s "
           "(init %.3f s, Lloyd %.3f s)\n", m->k, m->dim, (unsigned long long)d->nrows,
           m->cost, m->iterations, m->converged ? " (converged)" : "", m->init_s, m->train_s);
    if (d->skipped)
        printf("skipped %llu bad lines\n", (unsigned long long)d->skipped);
    if (!o->c.json)
        return;
    json_t *j = json_pack("{s:f, s:i, s:b, s:i, s:I, s:I, s:f, s:f, s:f, s:o}", "cost", m->cost,
                          "iterations", (int)m->iterations, "converged", (int)m->converged,
                          "k", (int)m->k, "rows", (json_int_t)d->nrows, "skipped_lines",
                          (json_int_t)d->skipped, "init_s", m->init_s, "train_s", m->train_s,
                          "iteration_s", m->iterations ? m->train_s / m->iterations : 0.0,
                          "centers", centers_json(m));
    em_ml_cli_print_json(&o->c, j);
}

static int run(km_opts *o, em_context *sc, em_err *err)
{
    em_ml_data d;
    em_kmeans_model *m = NULL;
    double *init = NULL;
    em_kmeans_params p = o->p;
    int rc = em_ml_cli_load(&o->c, sc, &d, NULL, err);
    if (rc < 0)
        return rc;
    if (o->init_file &&
        (rc = read_centers(o->init_file, d.dim, p.k, &init, &p.init_k, err)) == 0)
        p.init_centers = init;
    p.progress = progress;
    if (rc == 0)
        rc = em_kmeans_train(sc, &d, &p, &m, err);
    if (rc == 0 && o->write_init)
        rc = write_centers(o->write_init, m->init_centers, m->k, m->dim, err);
    if (rc == 0 && o->c.save)
        rc = em_kmeans_model_save(m, o->c.save, err);
    if (rc == 0)
        print_summary(o, m, &d);
    em_kmeans_model_free(m);
    em_free(init);
    em_ml_data_release(&d);
    return rc;
}

int em_kmeans_cli_main(int argc, char **argv)
{
    km_opts o;
    int st = parse_args(argc, argv, &o);
    if (st >= 0)
        return st;
    em_err err = EM_ERR_INIT;
    em_context *sc = em_ml_cli_context_new(&o.c, &err);
    int rc = sc ? run(&o, sc, &err) : err.code;
    em_ml_cli_context_free(&o.c, sc);
    return rc < 0 ? em_ml_cli_fail(&o.c, &err) : 0;
}
