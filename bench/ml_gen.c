/* bench/ml_gen.c - the generated matrices of the SVD and PCA benchmarks, written both as
 * text for ember (CSV, LIBSVM) and as raw little-endian arrays for numpy/scipy, with the
 * same numbers: every value is an integer multiple of 1e-6 printed with six decimals, so
 * the text parses to exactly the double in the array (k / 1e6 is correctly rounded, as is
 * strtod of its decimal). Built by bench/ml_pca.sh and bench/ml_svd.sh with `cc -O2`.
 *
 *   ml_gen dense ROWS COLS SEED OUT.csv OUT.bin
 *       x = mu + diag(s) z + W y: z (COLS) and y (5) standard normal, s_j = 0.3 + 3 * 0.95^j,
 *       W fixed COLS x 5 normal * 0.5, mu_j = 10 sin(j): a covariance with a decaying
 *       spectrum and some correlation, far from the origin. OUT.bin: ROWS x COLS doubles.
 *   ml_gen sparse ROWS COLS NNZ SEED OUT.libsvm OUT_PREFIX
 *       Rows drawn from 40 "topics" (popularity ~ 1 / (t + 1)^0.8), NNZ draws a row: 60%
 *       from the topic's 400-column vocabulary (Zipf-like: position 400 u^2), the rest
 *       uniform; repeats merged; values in [1, 2). A low-rank signal under sparse noise, as
 *       in documents x terms. OUT_PREFIX.{indptr (int64), indices (int32), data (f64)}.bin
 *       is the CSR matrix; the LIBSVM rows have label 0 and 1-based indices. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_s[4];

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next(void)   /* xoshiro256** */
{
    uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return r;
}

static void seed(uint64_t s)
{
    for (int i = 0; i < 4; i++) {   /* splitmix64 */
        uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        rng_s[i] = z ^ (z >> 31);
    }
}

static double unif(void)
{
    return (double)(next() >> 11) * (1.0 / 9007199254740992.0);
}

static double normal(void)
{
    double u = unif(), v = unif();
    return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

static double quantize(double x)
{
    return nearbyint(x * 1e6) / 1e6;
}

static FILE *open_w(const char *p)
{
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(1);
    }
    setvbuf(f, NULL, _IOFBF, 1 << 22);
    return f;
}

static void close_w(FILE *f, const char *p)
{
    if (ferror(f) || fclose(f) != 0) {
        perror(p);
        exit(1);
    }
}

static int dense(long rows, int cols, uint64_t sd, const char *csv, const char *bin)
{
    enum { F = 5 };
    double *w = malloc(sizeof *w * cols * F), *x = malloc(sizeof *x * cols);
    seed(sd);
    for (int i = 0; i < cols * F; i++)
        w[i] = 0.5 * normal();
    FILE *fc = open_w(csv), *fb = open_w(bin);
    for (int j = 0; j < cols; j++)
        fprintf(fc, "%sf%d", j ? "," : "", j + 1);
    fputc('\n', fc);
    for (long r = 0; r < rows; r++) {
        double y[F];
        for (int q = 0; q < F; q++)
            y[q] = normal();
        for (int j = 0; j < cols; j++) {
            double v = 10 * sin(j) + (0.3 + 3 * pow(0.95, j)) * normal();
            for (int q = 0; q < F; q++)
                v += w[j * F + q] * y[q];
            x[j] = quantize(v);
            fprintf(fc, j + 1 < cols ? "%.6f," : "%.6f\n", x[j]);
        }
        fwrite(x, sizeof *x, cols, fb);
    }
    close_w(fc, csv);
    close_w(fb, bin);
    free(w);
    free(x);
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static FILE *open_part(const char *prefix, const char *what)
{
    char p[4096];
    snprintf(p, sizeof p, "%s.%s.bin", prefix, what);
    return open_w(p);
}

static int sparse(long rows, uint32_t cols, int nnz, uint64_t sd, const char *svm,
                  const char *prefix)
{
    enum { T = 40, V = 400 };
    uint32_t *vocab = malloc(sizeof *vocab * T * V), *idx = malloc(sizeof *idx * nnz);
    double cum[T], tot = 0;
    seed(sd);
    for (int t = 0; t < T; t++)
        cum[t] = (tot += pow(t + 1.0, -0.8));
    for (int i = 0; i < T * V; i++)
        vocab[i] = (uint32_t)(next() % cols);
    FILE *fs = open_w(svm), *fp = open_part(prefix, "indptr"), *fi = open_part(prefix, "indices");
    FILE *fd = open_part(prefix, "data");
    int64_t ptr = 0;
    fwrite(&ptr, sizeof ptr, 1, fp);
    for (long r = 0; r < rows; r++) {
        double u = unif() * tot;
        int t = 0;
        while (t < T - 1 && cum[t] < u)
            t++;
        for (int e = 0; e < nnz; e++) {
            double a = unif();
            idx[e] = unif() < 0.6 ? vocab[t * V + (int)(V * a * a)] : (uint32_t)(next() % cols);
        }
        qsort(idx, nnz, sizeof *idx, cmp_u32);
        fputc('0', fs);
        for (int e = 0; e < nnz; e++) {
            if (e && idx[e] == idx[e - 1])
                continue;
            double v = (1000000 + (double)(next() % 1000000)) / 1e6;
            int32_t i32 = (int32_t)idx[e];
            fprintf(fs, " %u:%.6f", idx[e] + 1, v);
            fwrite(&i32, 4, 1, fi);
            fwrite(&v, 8, 1, fd);
            ptr++;
        }
        fputc('\n', fs);
        fwrite(&ptr, sizeof ptr, 1, fp);
    }
    close_w(fs, svm);
    close_w(fp, "indptr");
    close_w(fi, "indices");
    close_w(fd, "data");
    free(vocab);
    free(idx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && !strcmp(argv[1], "dense"))
        return dense(atol(argv[2]), atoi(argv[3]), strtoull(argv[4], NULL, 10), argv[5],
                     argv[6]);
    if (argc == 8 && !strcmp(argv[1], "sparse"))
        return sparse(atol(argv[2]), (uint32_t)atol(argv[3]), atoi(argv[4]),
                      strtoull(argv[5], NULL, 10), argv[6], argv[7]);
    fprintf(stderr, "usage: ml_gen dense ROWS COLS SEED OUT.csv OUT.bin\n"
                    "       ml_gen sparse ROWS COLS NNZ SEED OUT.libsvm OUT_PREFIX\n");
    return 2;
}
