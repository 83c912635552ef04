/* mllib/linear/gen_reg.c - `ember gen regression`: deterministic regression data for the
 * linear regression and GLM tests and benchmarks.
 *
 * MODEL: features x_ij ~ N(0, 1); coefficients drawn once from the seed, b_j = u_j c with
 * u_j ~ U(-1, 1); the mean is inverse-link(b0 + x.b) with the family's canonical link, and
 * the label is drawn from the family:
 *   gaussian  identity, b0 = 0.5, c = 1,                y = eta + N(0, noise^2)
 *   binomial  logit,    b0 = 0,   c = sqrt(3 / D),      y ~ Bernoulli(mu)
 *   poisson   log,      b0 = 1,   c = sqrt(0.75 / D),   y ~ Poisson(mu)
 *   gamma     inverse,  b0 = 2,   c = sqrt(0.12 / D),   y ~ Gamma(shape 2, scale mu / 2)
 * (c makes the standard deviation of x.b about 1, 0.5 and 0.2: the means stay moderate and a
 * gamma mean 1 / eta stays positive). Values are written with 6 decimals by integer
 * arithmetic (every reader sees the same doubles); poisson and binomial labels are integers;
 * a gamma label below 1e-6 is written as 0.000001 (a label must be > 0).
 * CSV: header "label,f1,...,fD"; LIBSVM: "y 1:v ... D:v". The true b0, b1..bD go to
 * FILE.coef (one line, comma separated, 17 digits); --test-rows M more rows of the same
 * model (the random stream continued) go to FILE.test. Each file is written under
 * NAME.tmp.<pid> and renamed when complete. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/linear/glm_int.h"

typedef struct reg_opts {
    const char *out, *format;
    uint64_t rows, seed, test_rows;
    uint32_t dim;
    em_glm_family family;
    double noise;
} reg_opts;

void em_gen_regression_cli_help(FILE *f)
{
    fputs("Usage: ember gen regression --rows N --dim D [--family F] [--noise S] [--seed S]\n"
          "                            [--format csv|libsvm] [--test-rows M] --out FILE\n"
          "\n"
          "Rows of D standard normal features and a label drawn from a GLM with the family's\n"
          "canonical link: gaussian (default; identity, noise standard deviation S, default\n"
          "1), binomial (logit), poisson (log) or gamma (inverse, shape 2). CSV has the header\n"
          "label,f1,...,fD. The true intercept and coefficients go to FILE.coef; with\n"
          "--test-rows, M more rows of the same model go to FILE.test (a held-out set). Same\n"
          "arguments, same bytes; the files are replaced atomically.\n",
          f);
}

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

static int usage(const char *msg)
{
    fprintf(stderr, "ember gen regression: %s (ember gen regression --help)\n", msg);
    return 2;
}

static int parse(int argc, char **argv, reg_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->format = "csv";
    o->family = EM_GLM_GAUSSIAN;
    o->noise = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            em_gen_regression_cli_help(stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return usage("an option needs a value");
        const char *v = argv[++i];
        char *e;
        if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--format")) {
            if (strcmp(v, "csv") && strcmp(v, "libsvm"))
                return usage("--format wants csv or libsvm");
            o->format = v;
        } else if (!strcmp(a, "--family")) {
            em_glm_family f;
            for (f = EM_GLM_GAUSSIAN; f <= EM_GLM_GAMMA; f++)
                if (!strcmp(v, em_glm_family_name(f)))
                    break;
            if (f > EM_GLM_GAMMA)
                return usage("--family wants gaussian, binomial, poisson or gamma");
            o->family = f;
        } else if (!strcmp(a, "--noise")) {
            o->noise = strtod(v, &e);
            if (*e || !(o->noise >= 0) || !isfinite(o->noise))
                return usage("--noise wants a number >= 0");
        } else {
            unsigned long long u = strtoull(v, &e, 10);
            if (!*v || *e || v[0] == '-')
                return usage("unknown option or bad number");
            if (!strcmp(a, "--rows"))
                o->rows = u;
            else if (!strcmp(a, "--test-rows"))
                o->test_rows = u;
            else if (!strcmp(a, "--seed"))
                o->seed = u;
            else if (!strcmp(a, "--dim")) {
                if (u > 100000)
                    return usage("--dim wants 1..100000");
                o->dim = (uint32_t)u;
            } else
                return usage("unknown option");
        }
    }
    if (!o->out || o->rows == 0 || o->dim == 0)
        return usage("--out, --rows and --dim are required");
    return -1;
}

/* Gamma(shape a >= 1, scale 1): Marsaglia & Tsang, "A Simple Method for Generating Gamma
 * Variables", ACM TOMS 2000. */
static double gamma_draw(em_rng *g, double a)
{
    double d = a - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (;;) {
        double x = em_rng_gaussian(g), v = 1 + c * x;
        if (v <= 0)
            continue;
        v = v * v * v;
        double u = em_rng_double(g);
        if (u < 1 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1 - v + log(v)))
            return d * v;
    }
}

static double label_draw(const reg_opts *o, em_rng *g, double eta)
{
    double mu = em__glm_linkinv(em_glm_canonical_link(o->family), eta);
    switch (o->family) {
    case EM_GLM_GAUSSIAN:
        return mu + o->noise * em_rng_gaussian(g);
    case EM_GLM_BINOMIAL:
        return em_rng_double(g) < mu ? 1 : 0;
    case EM_GLM_POISSON:
        return em_rng_poisson(g, mu);
    case EM_GLM_GAMMA:
        return fmax(gamma_draw(g, 2) * mu / 2, 1e-6);
    }
    return 0;
}

static int write_rows(const reg_opts *o, em_rng *g, uint64_t rows, FILE *f, const double *b,
                      char *line, double *x)
{
    bool csv = !strcmp(o->format, "csv");
    bool integer = o->family == EM_GLM_POISSON || o->family == EM_GLM_BINOMIAL;
    if (csv) {
        char *p = line + sprintf(line, "label");
        for (uint32_t j = 0; j < o->dim; j++)
            p += sprintf(p, ",f%u", j + 1);
        *p++ = '\n';
        fwrite(line, 1, (size_t)(p - line), f);
    }
    for (uint64_t i = 0; i < rows; i++) {
        double eta = b[0];
        for (uint32_t j = 0; j < o->dim; j++) {
            /* rounded first, so the label's mean is that of the features written */
            x[j] = (double)llround(em_rng_gaussian(g) * 1e6) / 1e6;
            eta += b[1 + j] * x[j];
        }
        double y = label_draw(o, g, eta);
        char *p = line;
        if (integer)
            p += sprintf(p, "%.0f", y);
        else
            p = put_num(p, y);
        for (uint32_t j = 0; j < o->dim; j++) {
            if (csv)
                *p++ = ',';
            else
                p += sprintf(p, " %u:", j + 1);
            p = put_num(p, x[j]);
        }
        *p++ = '\n';
        if (fwrite(line, 1, (size_t)(p - line), f) != (size_t)(p - line))
            return -1;
    }
    return 0;
}

/* Writes rows rows into path through path.tmp.<pid>, renamed when complete. */
static int write_file(const reg_opts *o, const char *path, em_rng *g, uint64_t rows,
                      const double *b, char *line, double *x)
{
    char *tmp = em_xasprintf("%s.tmp.%ld", path, (long)getpid());
    int rc = -1;
    FILE *f = fopen(tmp, "w");
    if (f) {
        static char fbuf[1 << 20];
        setvbuf(f, fbuf, _IOFBF, sizeof fbuf);
        rc = write_rows(o, g, rows, f, b, line, x);
        if (fclose(f) != 0)
            rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc < 0)
        unlink(tmp);
    em_free(tmp);
    return rc;
}

int em_gen_regression_cli_main(int argc, char **argv)
{
    reg_opts o;
    int st = parse(argc, argv, &o);
    if (st >= 0)
        return st;
    em_rng g;
    em_rng_seed(&g, o.seed);
    double *b = em_xmalloc(8 * ((size_t)o.dim + 1));
    static const double b0[] = {0, 0.5, 0, 1, 2}, c2[] = {0, 0, 3, 0.75, 0.12};
    double c = o.family == EM_GLM_GAUSSIAN ? 1 : sqrt(c2[o.family] / o.dim);
    b[0] = b0[o.family];
    for (uint32_t j = 0; j < o.dim; j++)
        b[1 + j] = (em_rng_double(&g) * 2 - 1) * c;
    char *line = em_xmalloc(64 + 40 * (size_t)o.dim);
    double *x = em_xmalloc(8 * (size_t)o.dim);
    char *cpath = em_xasprintf("%s.coef", o.out), *tpath = em_xasprintf("%s.test", o.out);
    em_rng_seed(&g, o.seed ^ 0x524547ULL);
    int rc = write_file(&o, o.out, &g, o.rows, b, line, x);
    if (rc == 0 && o.test_rows)
        rc = write_file(&o, tpath, &g, o.test_rows, b, line, x);
    char *ctmp = em_xasprintf("%s.tmp.%ld", cpath, (long)getpid());
    FILE *cf = rc == 0 ? fopen(ctmp, "w") : NULL;
    if (cf) {
        for (uint32_t j = 0; j <= o.dim; j++)
            fprintf(cf, "%.17g%s", b[j], j < o.dim ? "," : "\n");
        if (fclose(cf) != 0 || rename(ctmp, cpath) != 0)
            rc = -1;
    } else {
        rc = -1;
    }
    if (rc < 0) {
        fprintf(stderr, "ember gen regression: writing %s failed\n", o.out);
        unlink(ctmp);
    }
    em_free(ctmp);
    em_free(cpath);
    em_free(tpath);
    em_free(line);
    em_free(x);
    em_free(b);
    return rc < 0 ? 1 : 0;
}
