/* examples/latency.c - small-job latency benchmark: `ember run-example latency [MODE] [RUNS]`.
 *
 * MODE join (default): a 12-task job on small data, SQL's
 *   SELECT a.k, SUM(a.v + b.v) FROM a JOIN b USING (k) GROUP BY a.k ORDER BY a.k
 * as datasets: a = 1000 (k = i mod 100, v = i) pairs in 2 partitions, b = 100 (k, v = 2k)
 * pairs in 2 partitions; join (2 partitions: 4 map tasks), map_values lat_add (va + vb),
 * reduce_by_key em.sum_i64 (2 map tasks), sort_by_key (its sampling job: 2 tasks; then 2 map
 * tasks and 2 result tasks), collect: 12 tasks in 2 jobs.
 * MODE treeagg: tree_aggregate (em.sum_i64, depth 2) of range(0, 32000) in 32 partitions.
 *
 * Every run builds the plan again (new shuffles) and releases it afterwards, so each run
 * writes and deletes its own shuffle files, as a program running one small query after
 * another does. The first 5 runs warm up and are not counted. Prints one line per statistic
 * ("median_ms<TAB>X", "p90_ms", "min_ms", "runs") and "check<TAB>ok" (or FAILED and exit 1
 * when a result is wrong). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);
int lat_add(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

#define NA 1000
#define NB 100
#define WARMUP 5

/* (k, em_pair(va, vb)) -> (k, em_enc_i64(va + vb)) */
int lat_add(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em_slice a, b;
    bool has_a, has_b;
    uint8_t v[8];

    (void)c;
    if (em_pair_decode(in->val, &a, &has_a, &b, &has_b, err) < 0)
        return err->code;
    if (!has_a || !has_b || a.n != 8 || b.n != 8)
        return em_err_set(err, EM_ECORRUPT, "lat_add: value is not a pair of 8-byte integers");
    em_enc_i64(v, em_dec_i64(a.p) + em_dec_i64(b.p));
    return em_emit_kv(out, in->key, em_slice_make(v, 8), err);
}

static em_rdd *pairs(em_context *sc, size_t n, int64_t vmul)
{
    em_rec *recs = calloc(n, sizeof *recs);
    uint8_t *bytes = calloc(n, 16);
    em_rdd *r;

    if (!recs || !bytes) {
        free(recs);
        free(bytes);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        em_enc_i64(bytes + 16 * i, (int64_t)(i % NB));
        em_enc_i64(bytes + 16 * i + 8, (int64_t)(i % NB) * vmul + (vmul ? 0 : (int64_t)i));
        recs[i].key = em_slice_make(bytes + 16 * i, 8);
        recs[i].val = em_slice_make(bytes + 16 * i + 8, 8);
    }
    r = em_parallelize(sc, EM_REC_KV, 0, recs, n, 2);
    free(recs);
    free(bytes);
    return r;
}

/* Expected SUM(a.v + b.v) for key k: a holds i = k, k + 100, ... (10 values), b holds 2k. */
static int64_t want_sum(int64_t k)
{
    int64_t s = 0;
    for (int64_t i = k; i < NA; i += NB)
        s += i + 2 * k;
    return s;
}

static bool check_join(const em_records *res)
{
    if (res->n != NB)
        return false;
    for (size_t i = 0; i < res->n; i++) {
        const em_rec *r = &res->recs[i];
        if (r->key.n != 8 || r->val.n != 8 || em_dec_i64(r->key.p) != (int64_t)i ||
            em_dec_i64(r->val.p) != want_sum((int64_t)i))
            return false;
    }
    return true;
}

static int run_join(em_context *sc, bool *ok, em_err *err)
{
    em_rdd *a = pairs(sc, NA, 0), *b = pairs(sc, NB, 2);
    if (!a || !b)
        return em_err_set(err, EM_ENOMEM, "latency: out of memory");
    em_rdd *j = em_rdd_join(a, b, 2);
    em_rdd *s = em_rdd_map_values(j, "lat_add", em_slice_make(NULL, 0));
    em_rdd *g = em_rdd_reduce_by_key(s, "em.sum_i64", em_slice_make(NULL, 0), 2);
    em_rdd *o = em_rdd_sort_by_key(g, true, 2);
    em_records res = {0};
    int rc = em_rdd_collect(o, &res, err);
    if (rc == 0)
        *ok = check_join(&res);
    em_records_destroy(&res);
    em_rdd *all[] = {o, g, s, j, b, a};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        em_rdd_release(all[i]);
    return rc;
}

static int run_treeagg(em_context *sc, bool *ok, em_err *err)
{
    const int64_t n = 32000;
    uint8_t zero[8];
    em_vbuf out;
    em_enc_i64(zero, 0);
    em_vbuf_init(&out);
    em_rdd *r = em_range(sc, 0, n, 1, 32);
    int rc = em_rdd_tree_aggregate(r, em_slice_make(zero, 8), "em.sum_i64", "em.sum_i64",
                                   em_slice_make(NULL, 0), 2, &out, err);
    if (rc == 0)
        *ok = out.len == 8 && em_dec_i64(out.data) == n * (n - 1) / 2;
    em_vbuf_destroy(&out);
    em_rdd_release(r);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int ember_main(em_context *sc, int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "join";
    int runs = argc > 2 ? atoi(argv[2]) : 200;
    int (*run)(em_context *, bool *, em_err *) = NULL;
    em_err err = EM_ERR_INIT;
    bool all_ok = true;

    if (strcmp(mode, "join") == 0)
        run = run_join;
    else if (strcmp(mode, "treeagg") == 0)
        run = run_treeagg;
    if (!run || argc > 3 || runs < 1 || runs > 1000000) {
        fprintf(stderr, "usage: latency [join|treeagg] [RUNS >= 1]\n");
        return 2;
    }
    double *ms = calloc((size_t)runs, sizeof *ms);
    if (!ms)
        return 1;
    for (int i = -WARMUP; i < runs; i++) {
        bool ok = false;
        double t0 = em_now_s();
        if (run(sc, &ok, &err) < 0) {
            fprintf(stderr, "ember: latency: %s\n", err.msg);
            free(ms);
            return 1;
        }
        if (i >= 0)
            ms[i] = (em_now_s() - t0) * 1e3;
        all_ok = all_ok && ok;
    }
    qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
    printf("mode\t%s\nruns\t%d\nmedian_ms\t%.3f\np90_ms\t%.3f\nmin_ms\t%.3f\ncheck\t%s\n", mode,
           runs, ms[runs / 2], ms[(runs * 9) / 10 < runs ? (runs * 9) / 10 : runs - 1], ms[0],
           all_ok ? "ok" : "FAILED");
    free(ms);
    return all_ok ? 0 : 1;
}
