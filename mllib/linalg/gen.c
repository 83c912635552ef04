/* mllib/linalg/gen.c - `ember gen blobs` and `ember gen sparse`: deterministic data for
 * the clustering and decomposition benchmarks and tests.
 *
 * BLOBS (scikit-learn's make_blobs): K centres drawn uniformly from [-10, 10]^D, then N
 * rows, row i from cluster i % K, each coordinate centre + std * N(0, 1). Written as CSV
 * (header "f1,...,fD", or "label,f1,..." with --labels: the cluster) or LIBSVM (label =
 * cluster). Values are printed with 6 decimals by integer arithmetic (fast, exact decimal),
 * so every reader sees the same doubles. The true centres go to OUT.centers (one per line).
 * SPARSE: N LIBSVM rows of C columns with exactly Z distinct columns a row (uniform),
 * values N(0, 1) with 6 decimals, label 0 or 1.
 * One random stream per generator seeded by --seed; the file is written under
 * OUT.tmp.<pid> and renamed when complete. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/linalg/gen.h"

typedef struct gen_opts {
    const char *out, *format;
    uint64_t rows, seed;
    uint32_t dim, k, nnz;
    double std;
    bool labels;
} gen_opts;

/* Appends v with 6 decimals ("-12.345678"). */
static char *put_num(char *p, double v)
{
    long long x = llround(v * 1e6);
    if (x < 0) {
        *p++ = '-';
        x = -x;
    }
    char tmp[24];
    int n = 0;
    long long ip = x / 1000000, fp = x % 1000000;
    do
        tmp[n++] = (char)('0' + ip % 10);
    while ((ip /= 10) > 0);
    while (n)
        *p++ = tmp[--n];
    *p++ = '.';
    for (int i = 5; i >= 0; i--) {
        p[i] = (char)('0' + fp % 10);
        fp /= 10;
    }
    return p + 6;
}

static int gen_usage(const char *what, const char *msg)
{
    fprintf(stderr, "ember gen %s: %s (ember gen %s --help)\n", what, msg, what);
    return 2;
}

void em_gen_blobs_cli_help(FILE *f)
{
    fputs("Usage: ember gen blobs --rows N --dim D --k K [--std S] [--seed S]\n"
          "                       [--format csv|libsvm] [--labels] --out FILE\n"
          "       ember gen sparse --rows N --cols C --nnz Z [--seed S] --out FILE\n"
          "\n"
          "blobs: K Gaussian blobs (centres uniform in [-10, 10]^D, standard deviation S,\n"
          "default 1); row i belongs to blob i % K. CSV has a header line (f1..fD; with\n"
          "--labels a first column 'label' holds the blob); LIBSVM rows are labeled by\n"
          "blob. The true centres are written to FILE.centers.\n"
          "sparse: N LIBSVM rows of C columns, Z non-zeros a row (N(0,1) values), label\n"
          "0 or 1. Same arguments, same bytes; the file is replaced atomically.\n",
          f);
}

static int parse(int argc, char **argv, gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->std = 1;
    o->format = "csv";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            em_gen_blobs_cli_help(stdout);
            return 0;
        }
        if (!strcmp(a, "--labels")) {
            o->labels = true;
            continue;
        }
        if (i + 1 >= argc)
            return gen_usage(argv[0], "an option needs a value");
        const char *v = argv[++i];
        char *e;
        unsigned long long u = strtoull(v, &e, 10);
        bool num = *v && !*e && v[0] != '-';
        if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--format"))
            o->format = v;
        else if (!strcmp(a, "--std")) {
            o->std = strtod(v, &e);
            if (*e || !(o->std >= 0))
                return gen_usage(argv[0], "--std wants a number >= 0");
        } else if (!num)
            return gen_usage(argv[0], "unknown option or bad number");
        else if (!strcmp(a, "--rows"))
            o->rows = u;
        else if (!strcmp(a, "--seed"))
            o->seed = u;
        else if (u > (1u << 24))
            return gen_usage(argv[0], "number too large");
        else if (!strcmp(a, "--dim") || !strcmp(a, "--cols"))
            o->dim = (uint32_t)u;
        else if (!strcmp(a, "--k"))
            o->k = (uint32_t)u;
        else if (!strcmp(a, "--nnz"))
            o->nnz = (uint32_t)u;
        else
            return gen_usage(argv[0], "unknown option");
    }
    if (!o->out || o->rows == 0 || o->dim == 0)
        return gen_usage(argv[0], "--out, --rows and --dim/--cols are required");
    bool blobs = !strcmp(argv[0], "blobs");
    if (blobs && (o->k == 0 || (strcmp(o->format, "csv") && strcmp(o->format, "libsvm"))))
        return gen_usage(argv[0], "--k >= 1 and --format csv|libsvm");
    if (!blobs && (o->nnz == 0 || o->nnz > o->dim))
        return gen_usage(argv[0], "--nnz must be in 1..cols");
    return -1;
}

static int write_blobs(const gen_opts *o, FILE *f, char *line)
{
    em_rng g;
    em_rng_seed(&g, o->seed);
    double *c = em_xmalloc(8 * (size_t)o->k * o->dim);
    for (size_t i = 0; i < (size_t)o->k * o->dim; i++)
        c[i] = em_rng_double(&g) * 20 - 10;
    bool csv = !strcmp(o->format, "csv");
    if (csv) {
        char *p = line;
        if (o->labels)
            p += sprintf(p, "label,");
        for (uint32_t j = 0; j < o->dim; j++)
            p += sprintf(p, j + 1 < o->dim ? "f%u," : "f%u\n", j + 1);
        fwrite(line, 1, (size_t)(p - line), f);
    }
    for (uint64_t i = 0; i < o->rows; i++) {
        uint32_t b = (uint32_t)(i % o->k);
        char *p = line;
        if (!csv || o->labels)
            p += sprintf(p, csv ? "%u," : "%u", b);
        for (uint32_t j = 0; j < o->dim; j++) {
            double v = c[(size_t)b * o->dim + j] + o->std * em_rng_gaussian(&g);
            if (!csv)
                p += sprintf(p, " %u:", j + 1);
            p = put_num(p, v);
            if (csv)
                *p++ = j + 1 < o->dim ? ',' : '\n';
        }
        if (!csv)
            *p++ = '\n';
        fwrite(line, 1, (size_t)(p - line), f);
    }
    char *cp = em_xasprintf("%s.centers", o->out);
    FILE *cf = fopen(cp, "w");
    for (uint32_t i = 0; cf && i < o->k; i++)
        for (uint32_t j = 0; j < o->dim; j++)
            fprintf(cf, "%.17g%s", c[(size_t)i * o->dim + j], j + 1 < o->dim ? "," : "\n");
    int rc = cf && fclose(cf) == 0 ? 0 : -1;
    em_free(cp);
    em_free(c);
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int write_sparse(const gen_opts *o, FILE *f, char *line)
{
    em_rng g;
    em_rng_seed(&g, o->seed ^ 0x5350415253ULL);
    uint32_t *idx = em_xmalloc(4 * (size_t)o->nnz);
    for (uint64_t i = 0; i < o->rows; i++) {
        uint32_t n = 0;
        while (n < o->nnz) {   /* distinct columns by rejection (nnz << cols typical) */
            uint32_t j = (uint32_t)em_rng_below(&g, o->dim);
            bool dup = false;
            for (uint32_t q = 0; q < n && !dup; q++)
                dup = idx[q] == j;
            if (!dup)
                idx[n++] = j;
        }
        qsort(idx, n, 4, cmp_u32);
        char *p = line + sprintf(line, "%u", (unsigned)em_rng_below(&g, 2));
        for (uint32_t q = 0; q < n; q++) {
            p += sprintf(p, " %u:", idx[q] + 1);
            p = put_num(p, em_rng_gaussian(&g));
        }
        *p++ = '\n';
        fwrite(line, 1, (size_t)(p - line), f);
    }
    em_free(idx);
    return 0;
}

int em_gen_blobs_cli_main(int argc, char **argv)
{
    gen_opts o;
    int st = parse(argc, argv, &o);
    if (st >= 0)
        return st;
    char *tmp = em_xasprintf("%s.tmp.%ld", o.out, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "ember gen %s: cannot create %s\n", argv[0], tmp);
        em_free(tmp);
        return 1;
    }
    static char fbuf[1 << 20];
    setvbuf(f, fbuf, _IOFBF, sizeof fbuf);
    /* a line: label + per value up to 12 index chars, 24 number chars */
    char *line = em_xmalloc(64 + 40 * (size_t)(o.nnz > o.dim ? o.nnz : o.dim));
    int rc = !strcmp(argv[0], "blobs") ? write_blobs(&o, f, line) : write_sparse(&o, f, line);
    em_free(line);
    if (fclose(f) != 0 || rc < 0 || rename(tmp, o.out) != 0) {
        fprintf(stderr, "ember gen %s: writing %s failed\n", argv[0], o.out);
        unlink(tmp);
        em_free(tmp);
        return 1;
    }
    em_free(tmp);
    return 0;
}
