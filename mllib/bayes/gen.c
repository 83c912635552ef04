/* mllib/bayes/gen.c - `ember gen counts`: LIBSVM rows of word counts for the naive Bayes
 * benchmark and tests (a bag-of-words corpus in the shape multinomial naive Bayes models).
 *
 * MODEL. Column j has a base weight 1 / (r_j + 1)^1.1, r a seeded permutation of the
 * columns (Zipf-like word frequencies); class c reweights it by exp(z_c,j / 2), z ~ N(0, 1),
 * and normalizes: p_c. Row i has label c = i mod K and Z tokens drawn independently from
 * p_c (Walker's alias method, one table per class: O(1) a token); the row lists the
 * distinct columns drawn, ascending, with their counts ("c j:count ..."), so a row has at
 * most Z entries and its counts sum to Z.
 * DETERMINISM: one xoshiro stream seeded by --seed, used in a fixed order: the same
 * arguments give the same bytes on every machine. The file is written as OUT.tmp.<pid>
 * and renamed onto OUT when complete. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/bayes/bayes.h"

typedef struct counts_opts {
    const char *out;
    uint64_t rows, seed;
    uint32_t cols, classes, nnz;
} counts_opts;

void em_nb_gen_counts_help(FILE *f)
{
    fputs("Usage: ember gen counts --rows N --cols D --classes K --nnz Z [--seed S] --out FILE\n"
          "\n"
          "Writes N LIBSVM rows of non-negative integer counts (a bag-of-words corpus):\n"
          "row i has label i mod K and Z tokens drawn from class K's multinomial over D\n"
          "columns (Zipf-like base frequencies reweighted per class), listed as distinct\n"
          "ascending columns with their counts. Same arguments, same bytes; the file is\n"
          "replaced atomically.\n"
          "\n"
          "  --rows N      rows (>= 1)\n"
          "  --cols D      columns (1..16777216)\n"
          "  --classes K   classes (1..1000)\n"
          "  --nnz Z       tokens a row (1..100000)\n"
          "  --seed S      random seed (default 1)\n"
          "  --out FILE    output file\n"
          "  --help, -h    show this help\n",
          f);
}

static int usage(const char *msg, const char *v)
{
    fprintf(stderr, "ember gen counts: %s%s%s (ember gen counts --help)\n", msg, v ? " " : "",
            v ? v : "");
    return 2;
}

static int parse(int argc, char **argv, counts_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            em_nb_gen_counts_help(stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return usage("option needs a value:", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--out")) {
            o->out = v;
            continue;
        }
        char *e;
        errno = 0;
        unsigned long long u = strtoull(v, &e, 10);
        if (!*v || *e || v[0] == '-' || v[0] == '+' || errno)
            return usage("wants a non-negative decimal integer:", v);
        if (!strcmp(a, "--rows") && u >= 1)
            o->rows = u;
        else if (!strcmp(a, "--seed"))
            o->seed = u;
        else if (!strcmp(a, "--cols") && u >= 1 && u <= (1u << 24))
            o->cols = (uint32_t)u;
        else if (!strcmp(a, "--classes") && u >= 1 && u <= 1000)
            o->classes = (uint32_t)u;
        else if (!strcmp(a, "--nnz") && u >= 1 && u <= 100000)
            o->nnz = (uint32_t)u;
        else
            return usage("unknown option or value out of range:", a);
    }
    if (!o->out || !o->rows || !o->cols || !o->classes || !o->nnz)
        return usage("--rows, --cols, --classes, --nnz and --out are required", NULL);
    return -1;
}

/* Walker's alias table for p (n weights, any positive scale): prob[j] in [0, 1], alias[j]. */
static void alias_build(const double *w, uint32_t n, double *prob, uint32_t *alias,
                        uint32_t *work)
{
    double tot = 0;
    for (uint32_t j = 0; j < n; j++)
        tot += w[j];
    uint32_t *small = work, *large = work + n, ns = 0, nl = 0;
    for (uint32_t j = 0; j < n; j++) {
        prob[j] = w[j] * n / tot;
        alias[j] = j;
        if (prob[j] < 1)
            small[ns++] = j;
        else
            large[nl++] = j;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], l = large[nl - 1];
        alias[s] = l;
        prob[l] -= 1 - prob[s];
        if (prob[l] < 1) {
            nl--;
            small[ns++] = l;
        }
    }
    while (nl)
        prob[large[--nl]] = 1;
    while (ns)
        prob[small[--ns]] = 1;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int write_counts(const counts_opts *o, FILE *f)
{
    em_rng g;
    em_rng_seed(&g, o->seed);
    size_t d = o->cols, kd = (size_t)o->classes * d;
    double *base = em_xmalloc(8 * d), *w = em_xmalloc(8 * d), *prob = em_xmalloc(8 * kd);
    uint32_t *perm = em_xmalloc(4 * d), *alias = em_xmalloc(4 * kd);
    uint32_t *work = em_xmalloc(8 * d), *tok = em_xmalloc(4 * (size_t)o->nnz);
    for (uint32_t j = 0; j < d; j++)
        perm[j] = j;
    for (uint32_t j = (uint32_t)d - 1; j > 0; j--) {   /* Fisher-Yates */
        uint32_t r = (uint32_t)em_rng_below(&g, j + 1), t = perm[j];
        perm[j] = perm[r];
        perm[r] = t;
    }
    for (uint32_t j = 0; j < d; j++)
        base[perm[j]] = 1 / pow(j + 1.0, 1.1);
    for (uint32_t c = 0; c < o->classes; c++) {
        for (uint32_t j = 0; j < d; j++)
            w[j] = base[j] * exp(0.5 * em_rng_gaussian(&g));
        alias_build(w, (uint32_t)d, prob + c * d, alias + c * d, work);
    }
    int rc = 0;
    for (uint64_t i = 0; i < o->rows && rc == 0; i++) {
        uint32_t c = (uint32_t)(i % o->classes);
        const double *pc = prob + c * d;
        const uint32_t *ac = alias + c * d;
        for (uint32_t t = 0; t < o->nnz; t++) {
            uint32_t j = (uint32_t)em_rng_below(&g, d);
            tok[t] = em_rng_double(&g) < pc[j] ? j : ac[j];
        }
        qsort(tok, o->nnz, 4, cmp_u32);
        if (fprintf(f, "%u", c) < 0)
            rc = -1;
        for (uint32_t t = 0; t < o->nnz && rc == 0;) {
            uint32_t e = t;
            while (e < o->nnz && tok[e] == tok[t])
                e++;
            if (fprintf(f, " %u:%u", tok[t] + 1, e - t) < 0)
                rc = -1;
            t = e;
        }
        if (rc == 0 && fputc('\n', f) == EOF)
            rc = -1;
    }
    em_free(base);
    em_free(w);
    em_free(prob);
    em_free(perm);
    em_free(alias);
    em_free(work);
    em_free(tok);
    return rc;
}

int em_nb_gen_counts_main(int argc, char **argv)
{
    counts_opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    char *tmp = em_xasprintf("%s.tmp.%ld", o.out, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "ember gen counts: %s: %s\n", tmp, strerror(errno));
        em_free(tmp);
        return 1;
    }
    char *buf = em_xmalloc((size_t)1 << 20);
    setvbuf(f, buf, _IOFBF, (size_t)1 << 20);
    rc = write_counts(&o, f);
    if (fclose(f) != 0)
        rc = -1;
    em_free(buf);
    if (rc == 0 && rename(tmp, o.out) != 0)
        rc = -1;
    if (rc != 0) {
        fprintf(stderr, "ember gen counts: writing %s: %s\n", o.out, strerror(errno));
        unlink(tmp);
    }
    em_free(tmp);
    return rc == 0 ? 0 : 1;
}
