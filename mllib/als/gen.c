/* mllib/als/gen.c - the Netflix-shaped synthetic rating generator (`ember gen ratings`).
 *
 * SHAPE at scale S: 480,189*S users, 17,770*sqrt(S) items, about 100,480,507*S ratings.
 *  - user activity: log-normal counts, median 96 and mean 209 (mu = ln 96, sigma = 1.247),
 *    scaled together so that the total hits the target, clipped to [1, n_items];
 *  - item popularity: the item of popularity rank r (x = (r + 0.5) / n_items) has weight
 *    exp(-8.33 x^0.45): the top item gets ~0.25% and the median item ~1/10 of the mean count
 *    at full scale (Netflix: 0.25%, median 560 against mean 5,655); ranks are a random
 *    permutation of item ids;
 *  - ratings: r = clip(3.6 + b_u + b_i + p_u . q_i + e, 1, 5) with b_u ~ N(0, 0.43^2),
 *    b_i ~ N(0, 0.4^2), p_u, q_i ~ N(0, 0.497^2 I_8), e ~ N(0, 0.795^2); written with two
 *    decimals (or rounded to stars with --integer); no duplicate (user, item) pairs;
 *  - split: each rating goes to test with probability 0.014, except that every user keeps
 *    one training rating and every item with no training rating gets its test ratings back.
 *
 * WHY hidden rank 8 plus biases: mu + b_u + b_i + p.q has rank 10, so a rank-10 ALS model
 *   without bias terms (Spark's) can reach the noise floor up to estimation error.
 *
 * DETERMINISM: every random number of user u comes from an RNG seeded by (seed, u), and
 * per-item parameters from a seed-derived RNG, so the bytes written depend on the seed and
 * scale only. Threads generate disjoint user ranges into a preallocated array (offsets from
 * the per-user counts, computed sequentially first) and format disjoint ranges; the writer
 * concatenates in user order. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/als/als_int.h"

#define G_RANK 8
#define G_MU 3.6
#define G_SD_BU 0.43
#define G_SD_BI 0.40
#define G_SD_F 0.497
#define G_SD_NOISE 0.795
#define G_TEST_P 0.014

typedef struct grating {
    int32_t item;
    uint16_t centi;      /* rating * 100 */
    uint8_t test;
    uint8_t pad;
} grating;

typedef struct gen {
    const em_gen_ratings_opts *o;
    int64_t nu, ni;
    float *ipar;         /* per item: b_i, q_i[G_RANK] */
    float *upar;         /* per user: b_u, p_u[G_RANK] */
    int32_t *cnt;        /* ratings per user */
    int64_t *off;        /* nu + 1 prefix sums */
    grating *r;
    int32_t *by_rank;    /* item id of popularity rank r */
    double *aprob;       /* alias table over popularity ranks */
    int32_t *alias;
    atomic_long next;    /* next user chunk */
    unsigned nthreads;
} gen;

static void user_rng(em_rng *r, uint64_t seed, int64_t u)
{
    em_rng_seed(r, em_mix64(seed ^ 0x55534552ULL) + (uint64_t)u * 0x9e3779b97f4a7c15ULL);
}

static double clip(double v)
{
    return v < 1.0 ? 1.0 : v > 5.0 ? 5.0 : v;
}

static double hidden(const gen *g, int64_t u, int32_t i)
{
    const float *p = g->upar + u * (G_RANK + 1), *q = g->ipar + (int64_t)i * (G_RANK + 1);
    double s = G_MU + p[0] + q[0];
    for (int k = 1; k <= G_RANK; k++)
        s += (double)p[k] * q[k];
    return s;
}

/* Vose's alias method over popularity weights. */
static void build_alias(gen *g)
{
    int64_t n = g->ni;
    double *w = em_xmalloc((size_t)n * sizeof *w), sum = 0;
    int32_t *small = em_xmalloc((size_t)n * sizeof *small), *large = em_xmalloc((size_t)n * 4);
    for (int64_t r = 0; r < n; r++)
        sum += w[r] = exp(-8.33 * pow(((double)r + 0.5) / (double)n, 0.45));
    int64_t ns = 0, nl = 0;
    for (int64_t r = 0; r < n; r++) {
        w[r] *= (double)n / sum;
        if (w[r] < 1.0)
            small[ns++] = (int32_t)r;
        else
            large[nl++] = (int32_t)r;
    }
    while (ns && nl) {
        int32_t s = small[--ns], l = large[nl - 1];
        g->aprob[s] = w[s];
        g->alias[s] = l;
        w[l] -= 1.0 - w[s];
        if (w[l] < 1.0) {
            nl--;
            small[ns++] = l;
        }
    }
    while (nl)
        g->aprob[large[--nl]] = 1.0, g->alias[large[nl]] = large[nl];
    while (ns)
        g->aprob[small[--ns]] = 1.0, g->alias[small[ns]] = small[ns];
    em_free(w);
    em_free(small);
    em_free(large);
}

static void setup_items(gen *g)
{
    em_rng r;
    em_rng_seed(&r, em_mix64(g->o->seed ^ 0x4954454dULL));
    for (int64_t i = 0; i < g->ni; i++)
        g->by_rank[i] = (int32_t)i;
    for (int64_t i = g->ni - 1; i > 0; i--) {
        int64_t j = (int64_t)em_rng_below(&r, (uint64_t)i + 1);
        int32_t t = g->by_rank[i];
        g->by_rank[i] = g->by_rank[j];
        g->by_rank[j] = t;
    }
    for (int64_t i = 0; i < g->ni; i++) {
        float *q = g->ipar + i * (G_RANK + 1);
        q[0] = (float)(G_SD_BI * em_rng_gaussian(&r));
        for (int k = 1; k <= G_RANK; k++)
            q[k] = (float)(G_SD_F * em_rng_gaussian(&r));
    }
    build_alias(g);
}

/* Per-user counts: the first draw of each user's RNG, scaled to the target total. */
static void setup_counts(gen *g, int64_t target)
{
    double *base = em_xmalloc((size_t)g->nu * sizeof *base);
    for (int64_t u = 0; u < g->nu; u++) {
        em_rng r;
        user_rng(&r, g->o->seed, u);
        base[u] = exp(log(96.0) + 1.247 * em_rng_gaussian(&r));
    }
    double lo = 0.01, hi = 100.0;
    for (int it = 0; it < 60; it++) {
        double f = sqrt(lo * hi), tot = 0;
        for (int64_t u = 0; u < g->nu; u++)
            tot += fmin(fmax(floor(f * base[u] + 0.5), 1.0), (double)g->ni);
        if (tot < (double)target)
            lo = f;
        else
            hi = f;
    }
    g->off[0] = 0;
    for (int64_t u = 0; u < g->nu; u++) {
        g->cnt[u] = (int32_t)fmin(fmax(floor(hi * base[u] + 0.5), 1.0), (double)g->ni);
        g->off[u + 1] = g->off[u] + g->cnt[u];
    }
    em_free(base);
}

static void gen_user(gen *g, int64_t u, uint32_t *stamp)
{
    em_rng r;
    user_rng(&r, g->o->seed, u);
    (void)em_rng_gaussian(&r);   /* the activity draw, used by setup_counts */
    float *p = g->upar + u * (G_RANK + 1);
    p[0] = (float)(G_SD_BU * em_rng_gaussian(&r));
    for (int k = 1; k <= G_RANK; k++)
        p[k] = (float)(G_SD_F * em_rng_gaussian(&r));
    int32_t c = g->cnt[u], got = 0;
    grating *out = g->r + g->off[u];
    uint32_t tag = (uint32_t)u + 1;
    for (int64_t tries = 0; got < c && tries < 4 * (int64_t)c + 100; tries++) {
        uint64_t x = em_rng_next(&r);
        int32_t rank = (int32_t)(((x >> 32) * (uint64_t)g->ni) >> 32);
        if ((double)(x & 0xffffffffu) * (1.0 / 4294967296.0) >= g->aprob[rank])
            rank = g->alias[rank];
        int32_t item = g->by_rank[rank];
        if (stamp[item] == tag)
            continue;
        stamp[item] = tag;
        out[got++].item = item;
    }
    for (int32_t rank = 0; got < c; rank++)   /* heavy users: fill with popular items */
        if (stamp[g->by_rank[rank]] != tag) {
            stamp[g->by_rank[rank]] = tag;
            out[got++].item = g->by_rank[rank];
        }
    int32_t ntest = 0;
    for (int32_t j = 0; j < c; j++) {
        double v = clip(hidden(g, u, out[j].item) + G_SD_NOISE * em_rng_gaussian(&r));
        v = g->o->integer ? floor(v + 0.5) : floor(v * 100.0 + 0.5) / 100.0;
        out[j].centi = (uint16_t)lrint(v * 100.0);
        out[j].test = em_rng_double(&r) < G_TEST_P;
        ntest += out[j].test;
    }
    if (ntest == c)
        out[0].test = 0;
}

static void *gen_worker(void *arg)
{
    gen *g = arg;
    uint32_t *stamp = em_xcalloc((size_t)g->ni, sizeof *stamp);
    for (;;) {
        int64_t u0 = atomic_fetch_add(&g->next, 1024) , u1 = u0 + 1024;
        if (u0 >= g->nu)
            break;
        for (int64_t u = u0; u < u1 && u < g->nu; u++)
            gen_user(g, u, stamp);
    }
    em_free(stamp);
    return NULL;
}

static void run_threads(gen *g, void *(*fn)(void *), void *arg)
{
    pthread_t th[64];
    unsigned n = g->nthreads;
    for (unsigned t = 1; t < n; t++)
        if (pthread_create(&th[t], NULL, fn, arg) != 0)
            em_panic("gen ratings: cannot start a thread");
    fn(arg);
    for (unsigned t = 1; t < n; t++)
        pthread_join(th[t], NULL);
}

/* Items without any training rating get their test ratings back (user order). */
static void fix_items(gen *g)
{
    uint8_t *has = em_xcalloc((size_t)g->ni, 1);
    int64_t n = g->off[g->nu];
    for (int64_t j = 0; j < n; j++)
        if (!g->r[j].test)
            has[g->r[j].item] = 1;
    for (int64_t j = 0; j < n; j++)
        if (g->r[j].test && !has[g->r[j].item])
            g->r[j].test = 0;
    em_free(has);
}

/* ---------------------------------------------------------------- writing */

typedef struct fmt_job {
    gen *g;
    int64_t u0, u1;
    em_vbuf train, test;
    int rc;
} fmt_job;

static char *put_int(char *p, int64_t v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    while (n)
        *p++ = tmp[--n];
    return p;
}

static int format_range(fmt_job *j)
{
    gen *g = j->g;
    for (int64_t u = j->u0; u < j->u1; u++) {
        for (int64_t k = g->off[u]; k < g->off[u + 1]; k++) {
            em_vbuf *b = g->r[k].test ? &j->test : &j->train;
            if (em_vbuf_reserve(b, 64) < 0)
                return EM_ENOMEM;
            char *p = (char *)b->data + b->len, *s = p;
            p = put_int(p, u);
            *p++ = '\t';
            p = put_int(p, g->r[k].item);
            *p++ = '\t';
            unsigned c = g->r[k].centi;
            *p++ = (char)('0' + c / 100);
            if (!g->o->integer) {
                *p++ = '.';
                *p++ = (char)('0' + c / 10 % 10);
                *p++ = (char)('0' + c % 10);
            }
            *p++ = '\n';
            b->len += (size_t)(p - s);
        }
    }
    return 0;
}

typedef struct fmt_round {
    fmt_job *jobs;
    unsigned njobs;
    atomic_uint next;
} fmt_round;

static void *fmt_worker(void *arg)
{
    fmt_round *fr = arg;
    for (unsigned i; (i = atomic_fetch_add(&fr->next, 1)) < fr->njobs;)
        fr->jobs[i].rc = format_range(&fr->jobs[i]);
    return NULL;
}

static int write_files(gen *g, em_file *ftr, em_file *fte, em_err *err)
{
    enum { ROUND = 16 };
    fmt_job jobs[ROUND];
    int64_t per = 1 + (int64_t)(4000000 / (1 + g->off[g->nu] / (g->nu ? g->nu : 1)));
    for (int i = 0; i < ROUND; i++) {
        em_vbuf_init(&jobs[i].train);
        em_vbuf_init(&jobs[i].test);
    }
    int rc = 0;
    for (int64_t u = 0; u < g->nu && rc == 0;) {
        fmt_round fr = {.jobs = jobs, .njobs = 0};
        for (; fr.njobs < ROUND && u < g->nu; fr.njobs++, u += per) {
            fmt_job *j = &jobs[fr.njobs];
            j->g = g;
            j->u0 = u;
            j->u1 = u + per < g->nu ? u + per : g->nu;
            em_vbuf_clear(&j->train);
            em_vbuf_clear(&j->test);
        }
        atomic_init(&fr.next, 0);
        run_threads(g, fmt_worker, &fr);
        for (unsigned i = 0; i < fr.njobs && rc == 0; i++) {
            if (jobs[i].rc < 0)
                rc = em_err_set(err, EM_ENOMEM, "gen ratings: formatting buffer");
            else if ((rc = em_file_write(ftr, jobs[i].train.data, jobs[i].train.len, err)) == 0)
                rc = em_file_write(fte, jobs[i].test.data, jobs[i].test.len, err);
        }
    }
    for (int i = 0; i < ROUND; i++) {
        em_vbuf_destroy(&jobs[i].train);
        em_vbuf_destroy(&jobs[i].test);
    }
    return rc;
}

static void summarize(gen *g, em_gen_ratings_info *info)
{
    double sum = 0, se_h = 0, se_m = 0;
    int64_t ntr = 0, nte = 0;
    for (int64_t j = 0; j < g->off[g->nu]; j++)
        if (!g->r[j].test) {
            sum += g->r[j].centi / 100.0;
            ntr++;
        }
    double mean = ntr ? sum / (double)ntr : 0;
    for (int64_t u = 0; u < g->nu; u++)
        for (int64_t j = g->off[u]; j < g->off[u + 1]; j++)
            if (g->r[j].test) {
                double v = g->r[j].centi / 100.0, h = clip(hidden(g, u, g->r[j].item));
                se_h += (v - h) * (v - h);
                se_m += (v - mean) * (v - mean);
                nte++;
            }
    info->n_users = g->nu;
    info->n_items = g->ni;
    info->n_ratings = g->off[g->nu];
    info->n_train = ntr;
    info->n_test = nte;
    info->train_mean = mean;
    info->noise_floor_rmse = nte ? sqrt(se_h / (double)nte) : 0;
    info->global_mean_rmse = nte ? sqrt(se_m / (double)nte) : 0;
}

static int write_meta(const gen *g, const em_gen_ratings_info *in, em_err *err)
{
    json_t *j = json_pack("{s:s,s:f,s:I,s:b,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:i}",
                          "generator", "ember gen ratings", "scale", g->o->scale, "seed",
                          (json_int_t)g->o->seed, "integer", g->o->integer, "n_users",
                          (json_int_t)in->n_users, "n_items", (json_int_t)in->n_items,
                          "n_ratings", (json_int_t)in->n_ratings, "n_train",
                          (json_int_t)in->n_train, "n_test", (json_int_t)in->n_test,
                          "noise_floor_rmse", in->noise_floor_rmse, "global_mean_rmse",
                          in->global_mean_rmse, "train_mean", in->train_mean, "hidden_rank",
                          G_RANK);
    char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    char *path = em_xasprintf("%s.meta.json", g->o->out_prefix);
    int rc = s ? em_write_file_atomic(path, s, strlen(s), err)
               : em_err_set(err, EM_ENOMEM, "gen ratings: metadata");
    free(s);
    json_decref(j);
    em_free(path);
    return rc;
}

static int gen_alloc(gen *g, int64_t target, em_err *err)
{
    g->ipar = em_malloc((size_t)g->ni * (G_RANK + 1) * sizeof(float));
    g->upar = em_malloc((size_t)g->nu * (G_RANK + 1) * sizeof(float));
    g->cnt = em_malloc((size_t)g->nu * sizeof(int32_t));
    g->off = em_malloc((size_t)(g->nu + 1) * sizeof(int64_t));
    g->by_rank = em_malloc((size_t)g->ni * sizeof(int32_t));
    g->aprob = em_malloc((size_t)g->ni * sizeof(double));
    g->alias = em_malloc((size_t)g->ni * sizeof(int32_t));
    if (!g->ipar || !g->upar || !g->cnt || !g->off || !g->by_rank || !g->aprob || !g->alias)
        return em_err_set(err, EM_ENOMEM, "gen ratings: %lld users", (long long)g->nu);
    setup_items(g);
    setup_counts(g, target);
    g->r = em_malloc((size_t)g->off[g->nu] * sizeof(grating) + 1);
    if (!g->r)
        return em_err_set(err, EM_ENOMEM, "gen ratings: %lld ratings",
                          (long long)g->off[g->nu]);
    return 0;
}

int em_gen_ratings(const em_gen_ratings_opts *o, em_gen_ratings_info *out, em_err *err)
{
    gen g = {.o = o};
    em_gen_ratings_info info = {0};
    em_file *ftr = NULL, *fte = NULL;
    char *ptr = NULL, *pte = NULL;
    int rc;
    if (!(o->scale > 0 && o->scale <= 100) || !o->out_prefix)
        return em_err_set(err, EM_EINVAL, "gen ratings: scale %g (0 < S <= 100)", o->scale);
    g.nu = llround(480189.0 * o->scale);
    g.ni = llround(17770.0 * sqrt(o->scale));
    g.nu = g.nu < 2 ? 2 : g.nu;
    g.ni = g.ni < 2 ? 2 : g.ni;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    g.nthreads = o->threads ? o->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
    g.nthreads = g.nthreads > 64 ? 64 : g.nthreads;
    if ((rc = gen_alloc(&g, llround(100480507.0 * o->scale), err)) < 0)
        goto out;
    atomic_init(&g.next, 0);
    run_threads(&g, gen_worker, &g);
    fix_items(&g);
    summarize(&g, &info);
    ptr = em_xasprintf("%s.train.tsv", o->out_prefix);
    pte = em_xasprintf("%s.test.tsv", o->out_prefix);
    if ((rc = em_file_create_tmp(ptr, &ftr, err)) < 0 ||
        (rc = em_file_create_tmp(pte, &fte, err)) < 0 ||
        (rc = write_files(&g, ftr, fte, err)) < 0)
        goto out;
    rc = em_file_commit(ftr, err);
    ftr = NULL;
    if (rc == 0)
        rc = em_file_commit(fte, err);
    fte = NULL;
    if (rc == 0)
        rc = write_meta(&g, &info, err);
    if (rc == 0 && out)
        *out = info;
out:
    em_file_abort(ftr);
    em_file_abort(fte);
    em_free(ptr);
    em_free(pte);
    em_free(g.ipar);
    em_free(g.upar);
    em_free(g.cnt);
    em_free(g.off);
    em_free(g.r);
    em_free(g.by_rank);
    em_free(g.aprob);
    em_free(g.alias);
    return rc;
}

/* ---------------------------------------------------------------- command line */

void em_gen_ratings_cli_help(FILE *f)
{
    fputs("Usage: ember gen ratings --scale S --seed N --out PREFIX [--integer] [--threads T]\n"
          "\n"
          "Generates Netflix-shaped explicit ratings: 480,189*S users, 17,770*sqrt(S) items,\n"
          "about 100,480,507*S ratings from a hidden rank-8 model with user and item biases\n"
          "plus noise, clipped to 1..5.\n"
          "Writes PREFIX.train.tsv and PREFIX.test.tsv (user TAB item TAB rating, 0-based ids;\n"
          "a ~1.4% test split whose users and items all appear in training) and PREFIX.meta.json\n"
          "(shape, noise-floor RMSE of the hidden model, global-mean RMSE).\n"
          "\n"
          "  --scale S      size relative to the Netflix Prize data (0 < S <= 100; default 1)\n"
          "  --seed N       random seed (default 1); same seed, same bytes\n"
          "  --out PREFIX   output path prefix (required)\n"
          "  --integer      round ratings to whole stars (default: two decimals)\n"
          "  --threads T    generator threads, 1..64 (default: online CPUs); output does not\n"
          "                 depend on it\n"
          "  --help         this text\n",
          f);
}

int em_gen_ratings_cli_main(int argc, char **argv)
{
    em_gen_ratings_opts o = {.scale = 1.0, .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            em_gen_ratings_cli_help(stdout);
            return 0;
        } else if (strcmp(a, "--integer") == 0) {
            o.integer = true;
            continue;
        } else if (strcmp(a, "--scale") && strcmp(a, "--seed") && strcmp(a, "--threads") &&
                   strcmp(a, "--out")) {
            fprintf(stderr, "ember gen ratings: unknown %s '%s' (try --help)\n",
                    strncmp(a, "--", 2) ? "argument" : "flag", a);
            return 2;
        } else if (!v) {
            fprintf(stderr, "ember gen ratings: %s: missing value\n", a);
            return 2;
        }
        i++;
        /* Integers are strict decimal (no sign, fraction or exponent): "--seed -1" or
         * "--threads -1" are refused, not wrapped to 2^64-1. */
        uint64_t n = 0;
        bool ok = true;
        const char *want = "";
        if (strcmp(a, "--scale") == 0) {
            char *end = NULL;
            o.scale = strtod(v, &end);
            ok = end != v && !*end && o.scale > 0 && o.scale <= 100;
            want = "a number in (0, 100]";
        } else if (strcmp(a, "--seed") == 0) {
            ok = em__als_parse_count(v, 0, UINT64_MAX, &n);
            o.seed = n;
            want = "a non-negative integer";
        } else if (strcmp(a, "--threads") == 0) {
            ok = em__als_parse_count(v, 1, 64, &n);
            o.threads = (unsigned)n;
            want = "an integer in 1..64";
        } else {
            o.out_prefix = v;
            ok = *v != '\0';
            want = "a path prefix";
        }
        if (!ok) {
            fprintf(stderr, "ember gen ratings: %s: expected %s, got '%s'\n", a, want, v);
            return 2;
        }
    }
    if (!o.out_prefix) {
        fprintf(stderr, "ember gen ratings: --out PREFIX is required (try --help)\n");
        return 2;
    }
    em_err err = EM_ERR_INIT;
    em_gen_ratings_info info;
    double t0 = em_now_s();
    if (em_gen_ratings(&o, &info, &err) < 0) {
        fprintf(stderr, "ember gen ratings: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "ember gen ratings: %lld users, %lld items, %lld ratings (%lld test) in "
            "%.1f s; noise floor RMSE %.4f, global mean RMSE %.4f\n",
            (long long)info.n_users, (long long)info.n_items, (long long)info.n_ratings,
            (long long)info.n_test, em_now_s() - t0, info.noise_floor_rmse,
            info.global_mean_rmse);
    return 0;
}
