/* mllib/decomp/cli.c - `ember ml svd` and `ember ml pca`: read a data set with em_ml_read,
 * decompose it on the engine, print the result (with --json, the last stdout line is one
 * JSON object), and save what was asked for. Both commands share the option parser. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/decomp/decomp.h"

typedef struct dc_opts {
    bool pca;                /* pca, else svd */
    const char *train, *master, *save, *save_rows;
    em_ml_read_opts ro;
    em_svd_opts so;
    bool json;
} dc_opts;

static const char *cmd(const dc_opts *o)
{
    return o->pca ? "pca" : "svd";
}

static void common_help(FILE *f)
{
    fputs("  --train PATH          the rows: a file or a directory of part files\n"
          "  --format F            csv|tsv|libsvm (default: by the file name, else csv)\n"
          "  --label NAME          CSV/TSV: the label column, left out of the matrix\n"
          "  --dim N               LIBSVM: the column count (default: the largest index)\n"
          "  --dense               LIBSVM: dense rows (default sparse)\n"
          "  --skip-bad-lines      count and skip malformed lines instead of failing\n"
          "  --partitions N        at least N partitions (default: default parallelism)\n"
          "  --k K                 how many values / components (required, 1..columns)\n"
          "  --master M            local[N] | local-cluster[E,C] (default local[2])\n"
          "  --json                last stdout line: one JSON object (below)\n"
          "  --help                this text\n",
          f);
}

void em_svd_cli_help(FILE *f)
{
    fputs("Usage: ember ml svd --train PATH --k K [options]\n"
          "\n"
          "Top-k singular values and right singular vectors of the rows as a distributed\n"
          "matrix A (n x d). gramian: A^T A in one pass (dsyrk per batch) and LAPACK's\n"
          "dsyevr on the driver; lanczos: thick-restart Lanczos, one distributed A^T (A x)\n"
          "per step, for wide matrices. auto takes gramian when d <= 2048.\n"
          "\n",
          f);
    common_help(f);
    fputs("  --mode M              auto|gramian|lanczos (default auto)\n"
          "  --rcond X             drop values below X * sigma_1 (default 1e-9; never\n"
          "                        below sqrt(d eps): A^T A squares the condition)\n"
          "  --tol X               lanczos: Ritz residual / theta_1 (default 1e-10)\n"
          "  --ncv N               lanczos: basis size (default max(2k+1, k+20))\n"
          "  --max-products N      lanczos: distributed products allowed\n"
          "  --seed N              lanczos: start vector seed (default 1)\n"
          "  --save DIR            write DIR/metadata.json (values) and DIR/v.csv (d x k)\n"
          "  --save-u DIR          compute U = A V Sigma^-1 and write it as CSV part files\n"
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
    common_help(f);
    fputs("  --save DIR            save the model (metadata.json + arrays.bin)\n"
          "  --transform DIR       write the projected rows (n x k) as CSV part files\n"
          "\n"
          "JSON: explained_variance (ratio per component), variance, k, dim, nrows, load_s,\n"
          "compute_s, total_s\n",
          f);
}

static int usage(const dc_opts *o, const char *fmt, const char *a)
{
    fprintf(stderr, "ember ml %s: ", cmd(o));
    fprintf(stderr, fmt, a);
    fprintf(stderr, " (try 'ember ml %s --help')\n", cmd(o));
    return 2;
}

static bool num(const char *v, double lo, double hi, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= lo && d <= hi))
        return false;
    *out = d;
    return true;
}

static int take_format(dc_opts *o, const char *v)
{
    if (!strcmp(v, "csv")) o->ro.format = EM_ML_CSV;
    else if (!strcmp(v, "tsv")) o->ro.format = EM_ML_TSV;
    else if (!strcmp(v, "libsvm")) o->ro.format = EM_ML_LIBSVM;
    else return usage(o, "--format: expected csv, tsv or libsvm, got '%s'", v);
    return 0;
}

/* Flags of the Lanczos path (svd only). */
static int take_svd(dc_opts *o, const char *a, const char *v)
{
    double d = 0;
    if (!strcmp(a, "--mode")) {
        int m = em_svd_mode_parse(v);
        if (m < 0)
            return usage(o, "--mode: expected auto, gramian or lanczos, got '%s'", v);
        o->so.mode = (em_svd_mode)m;
    } else if (!strcmp(a, "--rcond")) {
        if (!num(v, 0, 1, &d)) return usage(o, "--rcond: expected 0..1, got '%s'", v);
        o->so.rcond = d;
    } else if (!strcmp(a, "--tol")) {
        if (!num(v, 0, 1, &d)) return usage(o, "--tol: expected 0..1, got '%s'", v);
        o->so.tol = d;
    } else if (!strcmp(a, "--ncv")) {
        if (!num(v, 2, 1e6, &d)) return usage(o, "--ncv: expected 2..1000000, got '%s'", v);
        o->so.ncv = (uint32_t)d;
    } else if (!strcmp(a, "--max-products")) {
        if (!num(v, 1, 1e9, &d)) return usage(o, "--max-products: expected >= 1, got '%s'", v);
        o->so.max_products = (uint32_t)d;
    } else if (!strcmp(a, "--seed")) {
        if (!num(v, 0, 1e18, &d)) return usage(o, "--seed: expected >= 0, got '%s'", v);
        o->so.seed = (uint64_t)d;
    } else if (!strcmp(a, "--save-u")) {
        o->save_rows = v;
    } else {
        return usage(o, "unknown flag %s", a);
    }
    return 0;
}

static int take_value(dc_opts *o, const char *a, const char *v)
{
    double d = 0;
    if (!strcmp(a, "--train")) o->train = v;
    else if (!strcmp(a, "--master")) o->master = v;
    else if (!strcmp(a, "--save")) o->save = v;
    else if (!strcmp(a, "--label")) o->ro.label = v;
    else if (!strcmp(a, "--format")) return take_format(o, v);
    else if (!strcmp(a, "--k")) {
        if (!num(v, 1, EM_DECOMP_MAX_DIM, &d) || d != floor(d))
            return usage(o, "--k: expected a whole number >= 1, got '%s'", v);
        o->so.k = (uint32_t)d;
    } else if (!strcmp(a, "--dim")) {
        if (!num(v, 1, EM_DECOMP_MAX_DIM, &d)) return usage(o, "--dim: expected >= 1, got '%s'", v);
        o->ro.dim = (uint32_t)d;
    } else if (!strcmp(a, "--partitions")) {
        if (!num(v, 1, 65536, &d)) return usage(o, "--partitions: expected 1..65536, got '%s'", v);
        o->ro.min_partitions = (uint32_t)d;
    } else if (o->pca && !strcmp(a, "--transform")) o->save_rows = v;
    else if (o->pca) return usage(o, "unknown flag %s", a);
    else return take_svd(o, a, v);
    return 0;
}

/* 0 ok, 2 bad usage, -1 when --help was printed. */
static int parse_args(dc_opts *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            (o->pca ? em_pca_cli_help : em_svd_cli_help)(stdout);
            return -1;
        }
        if (!strcmp(a, "--json")) o->json = true;
        else if (!strcmp(a, "--dense")) o->ro.dense = true;
        else if (!strcmp(a, "--skip-bad-lines")) o->ro.skip_bad_lines = true;
        else if (strncmp(a, "--", 2) != 0) return usage(o, "unexpected argument '%s'", a);
        else {
            const char *eq = strchr(a, '=');
            char flag[64];
            int rc;
            if (eq) {
                snprintf(flag, sizeof flag, "%.*s", (int)(eq - a), a);
                rc = take_value(o, flag, eq + 1);
            } else if (i + 1 >= argc) {
                return usage(o, "%s: missing value", a);
            } else {
                rc = take_value(o, a, argv[++i]);
            }
            if (rc)
                return rc;
        }
    }
    if (!o->train)
        return usage(o, "%s", "--train PATH is required");
    if (!o->so.k)
        return usage(o, "%s", "--k K is required");
    if (!o->ro.format) {
        size_t n = strlen(o->train);
        bool svm = (n > 7 && !strcmp(o->train + n - 7, ".libsvm")) ||
                   (n > 4 && !strcmp(o->train + n - 4, ".svm"));
        bool tsv = n > 4 && !strcmp(o->train + n - 4, ".tsv");
        o->ro.format = svm ? EM_ML_LIBSVM : tsv ? EM_ML_TSV : EM_ML_CSV;
    }
    return 0;
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

static int open_data(const dc_opts *o, dc_run *r, em_err *err)
{
    em_conf *conf = em_conf_new();
    em_conf_set(conf, "ember.master", o->master ? o->master : "local[2]");
    em_conf_set(conf, "ember.app.name", o->pca ? "ember ml pca" : "ember ml svd");
    if (!getenv("EMBER_EXECUTOR_MEMORY"))
        em_conf_set(conf, "ember.executor.memory", "8g");
    r->sc = em_context_new(conf, err);
    em_conf_free(conf);
    if (!r->sc)
        return err->code;
    double t0 = em_now_s();
    int rc = em_ml_read(r->sc, o->train, &o->ro, &r->data, err);
    r->t_load = em_now_s() - t0;
    if (rc == 0)
        fprintf(stderr, "ember ml %s: %llu rows x %u columns (%s%s) read in %.2f s%s\n",
                cmd(o), (unsigned long long)r->data.nrows, r->data.dim,
                r->data.sparse ? "sparse" : "dense", r->data.labeled ? ", labeled" : "",
                r->t_load, r->data.skipped ? "; bad lines skipped" : "");
    return rc;
}

/* Writes rows of `width` doubles as CSV part files under dir. */
static int write_rows(const em_decomp_rows *rows, const char *dir, em_err *err)
{
    em_ml_data d = {.rows = rows->rows, .dim = rows->width};
    return em_ml_write(&d, dir, EM_ML_CSV, err);
}

/* Writes the n files (names[i], bytes) into dir, through dir.tmp.PID renamed at the end:
 * dir appears whole or not at all. EM_EINVAL if dir exists. */
static int write_dir(const char *dir, const char *const *names, em_vbuf *const *files, int n,
                     em_err *err)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return em_err_set(err, EM_EINVAL, "%s: exists", dir);
    char *tmp = em_xasprintf("%s.tmp.%ld", dir, (long)getpid());
    em_err ignore = EM_ERR_INIT;
    int rc = em_mkdir_p(tmp, err);
    for (int i = 0; rc == 0 && i < n; i++) {
        char *p = em_xasprintf("%s/%s", tmp, names[i]);
        rc = em_write_file_atomic(p, files[i]->data ? (const void *)files[i]->data : "",
                                  files[i]->len, err);
        em_free(p);
    }
    if (rc == 0 && rename(tmp, dir) != 0)
        rc = em_err_set(err, EM_EIO, "%s: rename: %s", dir, strerror(errno));
    if (rc < 0)
        em_rm_rf(tmp, &ignore);
    em_free(tmp);
    return rc;
}

/* svd --save: DIR/metadata.json (class ember.svd, k, dim, nrows, mode, singular_values)
 * and DIR/v.csv (d lines of k numbers, 17 significant digits). */
static int save_svd(const em_svd_result *r, const char *dir, em_err *err)
{
    json_t *sv = json_array();
    for (uint32_t i = 0; sv && i < r->k; i++)
        json_array_append_new(sv, json_real(r->s[i]));
    json_t *j = json_pack("{s:s,s:i,s:I,s:I,s:I,s:s,s:o}", "class", "ember.svd", "version", 1,
                          "k", (json_int_t)r->k, "dim", (json_int_t)r->dim, "nrows",
                          (json_int_t)r->nrows, "mode", em_svd_mode_name(r->mode),
                          "singular_values", sv);
    char *meta = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    em_vbuf mv, vv;
    em_vbuf_init(&mv);
    em_vbuf_init(&vv);
    int rc = meta && em_vbuf_append(&mv, meta, strlen(meta)) == 0
                 ? 0 : em_err_set(err, EM_ENOMEM, "svd save");
    for (size_t i = 0; rc == 0 && i < r->dim; i++)
        for (uint32_t c = 0; rc == 0 && c < r->k; c++)
            if (em_vbuf_printf(&vv, "%.17g%c", r->v[i * r->k + c], c + 1 < r->k ? ',' : '\n') < 0)
                rc = em_err_set(err, EM_ENOMEM, "svd save");
    const char *const names[2] = {"metadata.json", "v.csv"};
    em_vbuf *const files[2] = {&mv, &vv};
    if (rc == 0)
        rc = write_dir(dir, names, files, 2, err);
    free(meta);
    em_vbuf_destroy(&mv);
    em_vbuf_destroy(&vv);
    return rc;
}

static int run_svd(const dc_opts *o, dc_run *r, em_err *err)
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
    if (o->save && (rc = save_svd(&r->svd, o->save, err)) < 0)
        return rc;
    if (o->save_rows && r->svd.k > 0)
        rc = write_rows(&r->svd.u, o->save_rows, err);
    return rc;
}

static int run_pca(const dc_opts *o, dc_run *r, em_err *err)
{
    double t0 = em_now_s();
    int rc = em_pca_fit(r->sc, &r->data, o->so.k, NULL, &r->pca, err);
    r->t_compute = em_now_s() - t0;
    if (rc < 0)
        return rc;
    fprintf(stderr, "ember ml pca: %u components in %.2f s\n", r->pca->k, r->t_compute);
    if (o->save && (rc = em_pca_model_save(r->pca, o->save, err)) < 0)
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

static void report(const dc_opts *o, const dc_run *r, double total)
{
    uint32_t k = o->pca ? r->pca->k : r->svd.k;
    const double *x = o->pca ? r->pca->explained_variance_ratio : r->svd.s;
    for (uint32_t i = 0; i < k; i++)
        if (o->pca)
            printf("component %u\tratio %.17g\tvariance %.17g\n", i + 1, x[i],
                   r->pca->explained_variance[i]);
        else
            printf("sigma %u\t%.17g\n", i + 1, x[i]);
    if (!o->json)
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
    json_object_set_new(j, "load_s", json_real(r->t_load));
    json_object_set_new(j, "compute_s", json_real(r->t_compute));
    json_object_set_new(j, "total_s", json_real(total));
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(j);
}

static int cli_main(bool pca, int argc, char **argv)
{
    dc_opts o = {.pca = pca, .so = {.seed = 1}};
    dc_run r = {0};
    em_err err = EM_ERR_INIT;
    double t0 = em_now_s();
    int rc = parse_args(&o, argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    if ((rc = open_data(&o, &r, &err)) == 0)
        rc = pca ? run_pca(&o, &r, &err) : run_svd(&o, &r, &err);
    if (rc == 0)
        report(&o, &r, em_now_s() - t0);
    else
        fprintf(stderr, "ember ml %s: %s\n", cmd(&o), err.msg);
    em_decomp_rows_release(r.sc, &r.rows);
    em_svd_result_destroy(r.sc, &r.svd);
    em_pca_model_free(r.pca);
    em_ml_data_release(&r.data);
    em_context_free(r.sc);
    fflush(stdout);
    return rc < 0 ? 1 : 0;
}

int em_svd_cli_main(int argc, char **argv)
{
    return cli_main(false, argc, argv);
}

int em_pca_cli_main(int argc, char **argv)
{
    return cli_main(true, argc, argv);
}
