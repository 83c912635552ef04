/* mllib/decomp/cli.c - `ember ml svd` and `ember ml pca`: read a data set with em_ml_read,
 * decompose it on the engine, print the result (with --json, the last stdout line is one
 * JSON object), and save what was asked for. Both commands share the option parser. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "mllib/decomp/decomp.h"
#include "mllib/linalg/model_dir.h"
#include "mllib/ml_cli.h"

typedef struct dc_opts {
    em_ml_cli c;             /* the shared flags (mllib/ml_cli.h) */
    bool pca;                /* pca, else svd */
    const char *save_rows;
    em_svd_opts so;
} dc_opts;

static const char *cmd(const dc_opts *o)
{
    return o->pca ? "pca" : "svd";
}

static void init_opts(dc_opts *o, bool pca)
{
    memset(o, 0, sizeof *o);
    o->pca = pca;
    o->so.seed = 1;
    em_ml_cli_init(&o->c, cmd(o), EM_ML_CLI_SAVE | EM_ML_CLI_LABEL_OPT | EM_ML_CLI_DIM,
                   EM_ML_AUTO, pca ? em_pca_cli_help : em_svd_cli_help);
    /* A Gramian pass holds the cached rows: give executors room (EMBER_EXECUTOR_MEMORY, the
     * conf file or --conf still decide when set). */
    o->c.executor_memory = "8g";
}

static void common_help(bool pca, FILE *f)
{
    dc_opts o;
    init_opts(&o, pca);
    em_ml_cli_common_help(&o.c, f);
    fputs("  --k K                 how many values / components (required, 1..columns)\n", f);
}

void em_svd_cli_help(FILE *f)
{
    fputs("Usage: ember ml svd --train PATH --k K [options]\n"
          "\n"
          "Top-k singular values and right singular vectors of the rows as a distributed\n"
          "matrix A (n x d). gramian: A^T A in one pass (dsyrk per batch) and LAPACK's\n"
          "dsyevr on the driver; lanczos: thick-restart Lanczos, one distributed A^T (A x)\n"
          "per step, for wide matrices. auto takes gramian when d <= 2048. Except in\n"
          "gramian mode the rows are read into one partition per task slot unless\n"
          "--partitions is given.\n"
          "\n",
          f);
    common_help(false, f);
    fputs("  --mode M              auto|gramian|lanczos (default auto)\n"
          "  --rcond X             drop values below X * sigma_1 (default 1e-9; never\n"
          "                        below sqrt(d eps): A^T A squares the condition)\n"
          "  --tol X               lanczos: Ritz residual / theta_1 (default 1e-10)\n"
          "  --ncv N               lanczos: basis size (default max(2k+1, k+20))\n"
          "  --max-products N      lanczos: distributed products allowed\n"
          "  --seed N              lanczos: start vector seed (default 1)\n"
          "  --save-u DIR          compute U = A V Sigma^-1 and write it as CSV part files\n"
          "  (--save DIR writes the singular values and V: ember.SVDModel, arrays s and v)\n"
          "\n"
          "JSON: singular_values, k, dim, nrows, mode, products, load_s, compute_s, total_s\n",
          f);
}

void em_pca_cli_help(FILE *f)
{
    fputs("Usage: ember ml pca --train PATH --k K [options]\n"
          "\n"
          "Principal components of the rows: the centred covariance in one pass, its top-k\n"
          "eigenvectors (dsyevr), the explained variance ratio of each.\n"
          "\n",
          f);
    common_help(true, f);
    fputs("  --transform DIR       write the projected rows (n x k) as CSV part files\n"
          "\n"
          "JSON: explained_variance (ratio per component), variance, k, dim, nrows, load_s,\n"
          "compute_s, total_s\n",
          f);
}

/* The command's own flag at argv[*i]: 1 taken, 0 not ours, 2 usage error printed. */
static int own_opt(dc_opts *o, int argc, char **argv, int *i)
{
    static const char *const modes[] = {"auto", "gramian", "lanczos", NULL};
    em_ml_cli *c = &o->c;
    bool bad = false, ok = true;
    const char *v;
    int m;
    if ((v = em_ml_cli_value(c, "--k", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--k", v, 1, EM_DECOMP_MAX_DIM, &o->so.k);
    else if (o->pca && (v = em_ml_cli_value(c, "--transform", argc, argv, i, &bad)))
        o->save_rows = v;
    else if (o->pca)
        v = NULL;
    else if ((v = em_ml_cli_value(c, "--mode", argc, argv, i, &bad))) {
        if ((ok = em_ml_cli_choice(c, "--mode", v, modes, &m)))
            o->so.mode = (em_svd_mode)em_svd_mode_parse(v);
    } else if ((v = em_ml_cli_value(c, "--rcond", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--rcond", v, 0, 1, &o->so.rcond);
    else if ((v = em_ml_cli_value(c, "--tol", argc, argv, i, &bad)))
        ok = em_ml_cli_f64(c, "--tol", v, 0, 1, &o->so.tol);
    else if ((v = em_ml_cli_value(c, "--ncv", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--ncv", v, 2, 1000000, &o->so.ncv);
    else if ((v = em_ml_cli_value(c, "--max-products", argc, argv, i, &bad)))
        ok = em_ml_cli_u32(c, "--max-products", v, 1, 1000000000, &o->so.max_products);
    else if ((v = em_ml_cli_value(c, "--seed", argc, argv, i, &bad)))
        ok = em_ml_cli_u64(c, "--seed", v, &o->so.seed);
    else if ((v = em_ml_cli_value(c, "--save-u", argc, argv, i, &bad)))
        o->save_rows = v;
    if (bad || !ok)
        return 2;
    return v ? 1 : 0;
}

/* -1 to go on, else the exit status. */
static int parse_args(dc_opts *o, int argc, char **argv)
{
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
    if (!o->so.k)
        return em_ml_cli_usage(&o->c, "--k K is required");
    /* Lanczos makes one job per product, each task returning a partial of 8 d bytes: with
     * one partition per task slot (unless --partitions says otherwise) a product costs one
     * task and one partial per slot, not one per 32 MiB text split (local-cluster: one
     * round trip per executor and product). */
    if (!o->pca && o->so.mode != EM_SVD_GRAMIAN && o->c.ro.min_partitions == 0)
        o->c.ro.coalesce = true;
    return -1;
}

/* ---------------------------------------------------------------- running */

typedef struct dc_run {
    em_context *sc;
    em_ml_data data;
    double t_load, t_compute;
    em_svd_result svd;
    em_pca_model *pca;
    em_decomp_rows rows;
} dc_run;

static int open_data(dc_opts *o, dc_run *r, em_err *err)
{
    r->sc = em_ml_cli_context_new(&o->c, err);
    if (!r->sc)
        return err->code;
    int rc = em_ml_cli_load(&o->c, r->sc, &r->data, NULL, err);
    r->t_load = o->c.load_s;
    if (rc == 0)
        fprintf(stderr, "ember ml %s: %llu rows x %u columns (%s%s) read in %.2f s\n", cmd(o),
                (unsigned long long)r->data.nrows, r->data.dim,
                r->data.sparse ? "sparse" : "dense", r->data.labeled ? ", labeled" : "",
                r->t_load);
    return rc;
}

/* Writes rows of `width` doubles as CSV part files under dir. */
static int write_rows(const em_decomp_rows *rows, const char *dir, em_err *err)
{
    em_ml_data d = {.rows = rows->rows, .dim = rows->width};
    return em_ml_write(&d, dir, EM_ML_CSV, err);
}

/* svd --save: a model directory (mllib/linalg/model_dir.h) of class ember.SVDModel:
 * metadata k, dim, nrows, mode; arrays s (k singular values) and v (dim x k, row-major). */
static int save_svd(const em_svd_result *r, const char *dir, em_err *err)
{
    json_t *meta = json_pack("{s:I, s:I, s:I, s:s}", "k", (json_int_t)r->k, "dim",
                             (json_int_t)r->dim, "nrows", (json_int_t)r->nrows, "mode",
                             em_svd_mode_name(r->mode));
    em_ml_array arr[2] = {{.name = "s", .data = r->s, .count = r->k},
                          {.name = "v", .data = r->v, .count = (size_t)r->dim * r->k}};
    int rc = em_ml_model_dir_write(dir, "ember.SVDModel", 1, meta, arr, 2, err);
    json_decref(meta);
    return rc;
}

static int run_svd(dc_opts *o, dc_run *r, em_err *err)
{
    em_svd_opts so = o->so;
    so.compute_u = o->save_rows != NULL;
    double t0 = em_now_s();
    int rc = em_svd(r->sc, &r->data, &so, &r->svd, err);
    r->t_compute = em_now_s() - t0;
    if (rc < 0)
        return rc;
    fprintf(stderr, "ember ml svd: %u values (%s, %u distributed passes, %u restarts) in "
            "%.2f s\n", r->svd.k, em_svd_mode_name(r->svd.mode), r->svd.products,
            r->svd.restarts, r->t_compute);
    if (r->svd.k < so.k)
        fprintf(stderr, "ember ml svd: %u of %u values were below rcond %.3g x sigma_1 and "
                "were dropped\n", so.k - r->svd.k, so.k, r->svd.rcond);
    if (o->c.save && (rc = save_svd(&r->svd, o->c.save, err)) < 0)
        return rc;
    if (o->save_rows && r->svd.k > 0)
        rc = write_rows(&r->svd.u, o->save_rows, err);
    return rc;
}

static int run_pca(dc_opts *o, dc_run *r, em_err *err)
{
    double t0 = em_now_s();
    int rc = em_pca_fit(r->sc, &r->data, o->so.k, NULL, &r->pca, err);
    r->t_compute = em_now_s() - t0;
    if (rc < 0)
        return rc;
    fprintf(stderr, "ember ml pca: %u components in %.2f s\n", r->pca->k, r->t_compute);
    if (o->c.save && (rc = em_pca_model_save(r->pca, o->c.save, err)) < 0)
        return rc;
    if (o->save_rows && (rc = em_pca_transform(r->sc, r->pca, &r->data, &r->rows, err)) == 0)
        rc = write_rows(&r->rows, o->save_rows, err);
    return rc;
}

static json_t *jarray(const double *x, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_real(x[i]));
    return a;
}

static void report(const dc_opts *o, const dc_run *r)
{
    uint32_t k = o->pca ? r->pca->k : r->svd.k;
    const double *x = o->pca ? r->pca->explained_variance_ratio : r->svd.s;
    for (uint32_t i = 0; i < k; i++)
        if (o->pca)
            printf("component %u\tratio %.17g\tvariance %.17g\n", i + 1, x[i],
                   r->pca->explained_variance[i]);
        else
            printf("sigma %u\t%.17g\n", i + 1, x[i]);
    if (!o->c.json)
        return;
    json_t *j = json_object();
    json_object_set_new(j, o->pca ? "explained_variance" : "singular_values", jarray(x, k));
    if (o->pca)
        json_object_set_new(j, "variance", jarray(r->pca->explained_variance, k));
    json_object_set_new(j, "k", json_integer(k));
    json_object_set_new(j, "dim", json_integer(r->data.dim));
    json_object_set_new(j, "nrows", json_integer((json_int_t)r->data.nrows));
    if (!o->pca) {
        json_object_set_new(j, "mode", json_string(em_svd_mode_name(r->svd.mode)));
        json_object_set_new(j, "products", json_integer(r->svd.products));
    }
    json_object_set_new(j, "compute_s", json_real(r->t_compute));
    em_ml_cli_print_json(&o->c, j);
}

static int cli_main(bool pca, int argc, char **argv)
{
    dc_opts o;
    dc_run r = {0};
    em_err err = EM_ERR_INIT;
    init_opts(&o, pca);
    int rc = parse_args(&o, argc, argv);
    if (rc >= 0)
        return rc;
    if ((rc = open_data(&o, &r, &err)) == 0)
        rc = pca ? run_pca(&o, &r, &err) : run_svd(&o, &r, &err);
    if (rc == 0)
        report(&o, &r);
    em_decomp_rows_release(r.sc, &r.rows);
    em_svd_result_destroy(r.sc, &r.svd);
    em_pca_model_free(r.pca);
    em_ml_data_release(&r.data);
    em_ml_cli_context_free(&o.c, r.sc);
    fflush(stdout);
    return rc < 0 ? em_ml_cli_fail(&o.c, &err) : 0;
}

int em_svd_cli_main(int argc, char **argv)
{
    return cli_main(false, argc, argv);
}

int em_pca_cli_main(int argc, char **argv)
{
    return cli_main(true, argc, argv);
}
