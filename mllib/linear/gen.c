/* mllib/linear/gen.c - `ember gen classif`: deterministic binary classification data for
 * the linear-model benchmarks and tests: linearly separable up to a known noise.
 *
 * MODEL. A hidden weight vector w* (D values N(0, 1)) and rows x: dense, every coordinate
 * N(0, 1); sparse (--sparse), Z distinct columns drawn uniformly with N(0, 1) values. The
 * margin z = 2 (w* . x) / sqrt(number of non-zeros of w* . x terms) has standard deviation
 * about 2; the label is 1 when z + noise * N(0, 1) > 0, else 0 (default noise 0.5: a Bayes
 * accuracy near 94%, so a good linear model has room to be measured against a weak one).
 * --test-rows M --test-out FILE write a held-out set from the same w* (another stream).
 * Values are printed with 4 decimals by integer arithmetic (fast; every reader parses the
 * same doubles). Streams are seeded by --seed; files are written under FILE.tmp.<pid> and
 * renamed when complete. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/linear/linear.h"

typedef struct cg_opts {
    const char *out, *test_out;
    uint64_t rows, test_rows, seed;
    uint32_t dim, nnz;
    double noise;
    bool sparse, csv;
} cg_opts;

static char *put_num4(char *p, double v)
{
    long long x = llround(v * 1e4);
    if (x < 0) {
        *p++ = '-';
        x = -x;
    }
    char tmp[24];
    int n = 0;
    long long ip = x / 10000, fp = x % 10000;
    do
        tmp[n++] = (char)('0' + ip % 10);
    while ((ip /= 10) > 0);
    while (n)
        *p++ = tmp[--n];
    *p++ = '.';
    for (int i = 3; i >= 0; i--) {
        p[i] = (char)('0' + fp % 10);
        fp /= 10;
    }
    return p + 4;
}

static char *put_u32(char *p, uint32_t v)
{
    char tmp[12];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (n)
        *p++ = tmp[--n];
    return p;
}

void em_gen_classif_cli_help(FILE *f)
{
    fputs("Usage: ember gen classif --rows N --dim D [--sparse --nnz Z] [--format libsvm|csv]\n"
          "                         [--noise S] [--seed S] [--test-rows M --test-out FILE]\n"
          "                         --out FILE\n"
          "\n"
          "Binary classification data (labels 0/1), linearly separable up to noise: a hidden\n"
          "weight vector w*, rows x with N(0,1) values (dense, or Z random columns of D with\n"
          "--sparse), label 1 when 2 w*.x / sqrt(terms) + S N(0,1) > 0 (S default 0.5).\n"
          "CSV has a header line 'label,f1,...,fD' (dense only). Same arguments, same bytes;\n"
          "files are replaced atomically.\n",
          f);
}

static int cg_usage(const char *msg)
{
    fprintf(stderr, "ember gen classif: %s (ember gen classif --help)\n", msg);
    return 2;
}

static int parse_value(cg_opts *o, const char *a, const char *v)
{
    char *e;
    unsigned long long u = strtoull(v, &e, 10);
    bool num = *v && !*e && v[0] != '-';
    if (!strcmp(a, "--out"))
        o->out = v;
    else if (!strcmp(a, "--test-out"))
        o->test_out = v;
    else if (!strcmp(a, "--format")) {
        if (strcmp(v, "csv") && strcmp(v, "libsvm"))
            return cg_usage("--format wants libsvm or csv");
        o->csv = !strcmp(v, "csv");
    } else if (!strcmp(a, "--noise")) {
        o->noise = strtod(v, &e);
        if (!*v || *e || !(o->noise >= 0) || !isfinite(o->noise))
            return cg_usage("--noise wants a number >= 0");
    } else if (!num)
        return cg_usage("unknown option or bad number");
    else if (!strcmp(a, "--rows"))
        o->rows = u;
    else if (!strcmp(a, "--test-rows"))
        o->test_rows = u;
    else if (!strcmp(a, "--seed"))
        o->seed = u;
    else if (u > (1u << 30))
        return cg_usage("number too large");
    else if (!strcmp(a, "--dim"))
        o->dim = (uint32_t)u;
    else if (!strcmp(a, "--nnz"))
        o->nnz = (uint32_t)u;
    else
        return cg_usage("unknown option");
    return -1;
}

static int parse(int argc, char **argv, cg_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->noise = 0.5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            em_gen_classif_cli_help(stdout);
            return 0;
        }
        if (!strcmp(a, "--sparse")) {
            o->sparse = true;
            continue;
        }
        if (i + 1 >= argc)
            return cg_usage("an option needs a value");
        int rc = parse_value(o, a, argv[++i]);
        if (rc >= 0)
            return rc;
    }
    if (!o->out || o->rows == 0 || o->dim == 0)
        return cg_usage("--out, --rows and --dim are required");
    if (o->sparse && (o->nnz == 0 || o->nnz > o->dim))
        return cg_usage("--sparse needs --nnz in 1..dim");
    if (o->sparse && o->csv)
        return cg_usage("--sparse writes libsvm only");
    if (!o->test_rows != !o->test_out)
        return cg_usage("--test-rows and --test-out go together");
    return -1;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* One row into line; returns its end. idx/val: scratch of dim (dense) or nnz entries. */
static char *make_row(const cg_opts *o, const double *w, em_rng *g, uint32_t *idx, double *val,
                      char *line)
{
    uint32_t n = o->sparse ? o->nnz : o->dim;
    double z = 0;
    if (o->sparse) {
        for (uint32_t q = 0; q < n;) {   /* distinct columns by rejection (nnz << dim) */
            uint32_t j = (uint32_t)em_rng_below(g, o->dim);
            bool dup = false;
            for (uint32_t t = 0; t < q && !dup; t++)
                dup = idx[t] == j;
            if (!dup)
                idx[q++] = j;
        }
        qsort(idx, n, 4, cmp_u32);
    }
    for (uint32_t q = 0; q < n; q++) {
        uint32_t j = o->sparse ? idx[q] : q;
        val[q] = round(em_rng_gaussian(g) * 1e4) / 1e4;   /* the value as written */
        z += w[j] * val[q];
    }
    z = 2 * z / sqrt((double)n) + o->noise * em_rng_gaussian(g);
    char *p = line;
    *p++ = z > 0 ? '1' : '0';
    for (uint32_t q = 0; q < n; q++) {
        if (o->csv)
            *p++ = ',';
        else {
            *p++ = ' ';
            p = put_u32(p, (o->sparse ? idx[q] : q) + 1);
            *p++ = ':';
        }
        p = put_num4(p, val[q]);
    }
    *p++ = '\n';
    return p;
}

static int write_set(const cg_opts *o, const double *w, const char *path, uint64_t rows,
                     uint64_t seed)
{
    char *tmp = em_xasprintf("%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "ember gen classif: cannot create %s\n", tmp);
        em_free(tmp);
        return 1;
    }
    static char fbuf[1 << 20];
    setvbuf(f, fbuf, _IOFBF, sizeof fbuf);
    uint32_t n = o->sparse ? o->nnz : o->dim;
    char *line = em_xmalloc(16 + 24 * (size_t)n);
    uint32_t *idx = em_xmalloc(4 * (size_t)n);
    double *val = em_xmalloc(8 * (size_t)n);
    em_rng g;
    em_rng_seed(&g, seed);
    if (o->csv) {
        fputs("label", f);
        for (uint32_t j = 0; j < o->dim; j++)
            fprintf(f, ",f%u", j + 1);
        fputc('\n', f);
    }
    for (uint64_t i = 0; i < rows; i++) {
        char *e = make_row(o, w, &g, idx, val, line);
        fwrite(line, 1, (size_t)(e - line), f);
    }
    em_free(line);
    em_free(idx);
    em_free(val);
    int rc = 0;
    if (ferror(f) | (fclose(f) != 0) || rename(tmp, path) != 0) {
        fprintf(stderr, "ember gen classif: writing %s failed\n", path);
        unlink(tmp);
        rc = 1;
    }
    em_free(tmp);
    return rc;
}

int em_gen_classif_cli_main(int argc, char **argv)
{
    cg_opts o;
    int st = parse(argc, argv, &o);
    if (st >= 0)
        return st;
    em_rng g;
    em_rng_seed(&g, em_mix64(o.seed ^ 0x434c415353ULL));
    double *w = em_xmalloc(8 * (size_t)o.dim);
    for (uint32_t j = 0; j < o.dim; j++)
        w[j] = em_rng_gaussian(&g);
    int rc = write_set(&o, w, o.out, o.rows, em_mix64(o.seed + 1));
    if (rc == 0 && o.test_out)
        rc = write_set(&o, w, o.test_out, o.test_rows, em_mix64(o.seed + 2));
    em_free(w);
    return rc;
}
