/* engine/api/actions.c - actions: each runs a job through the scheduler with a result spec
 * and merges the partitions' results on the driver (collect, count, take, top, take_sample,
 * lookup, foreach). The aggregations (reduce, fold, aggregate, tree_aggregate and the
 * in-place *_acc ones) are in aggregate.c, save_as_text_file in save.c.
 *
 * DRIVER-SIDE MERGES follow Spark: take scans partition 0 first and then up to 4x as many
 * partitions per round.
 * THREADS: any thread; concurrent actions on one context run as concurrent jobs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api/api_int.h"

/* Records of every partition's result, in partition order. */
static int gather(em_task_result *res, uint32_t np, em_records *out, em_err *err)
{
    for (uint32_t i = 0; i < np; i++) {
        int rc = em__records_add_batches(out, res[i].batches, res[i].nbatches, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int em_rdd_collect(em_rdd *r, em_records *out, em_err *err)
{
    em_result_spec spec = {.op = EM_RESULT_COLLECT};
    int rc;
    memset(out, 0, sizeof *out);
    em_task_result *res = em__run_all(r, &spec, &rc, err);
    if (rc == 0)
        rc = gather(res, r->node->nparts, out, err);
    em__results_free(res, r->node->nparts);
    if (rc < 0)
        em_records_destroy(out);
    return rc;
}

int em_rdd_count(em_rdd *r, uint64_t *out, em_err *err)
{
    em_result_spec spec = {.op = EM_RESULT_COUNT};
    int rc;
    *out = 0;
    em_task_result *res = em__run_all(r, &spec, &rc, err);
    for (uint32_t i = 0; rc == 0 && i < r->node->nparts; i++)
        *out += res[i].count;
    em__results_free(res, r->node->nparts);
    return rc;
}

static int count_by(em_rdd *r, const char *pair_fn, em_records *out, em_err *err)
{
    em_slice none = em_slice_make(NULL, 0);
    em_rdd *m = em_rdd_map(r, pair_fn, none);
    em_rdd *c = em_rdd_reduce_by_key(m, "em.sum_i64", none, 0);
    int rc = em_rdd_collect(c, out, err);
    em__rdd_drop(c);   /* its shuffle goes with it */
    em__rdd_drop(m);
    return rc;
}

int em_rdd_count_by_key(em_rdd *r, em_records *out, em_err *err)
{
    return count_by(r, "em.key_with_one", out, err);
}

int em_rdd_count_by_value(em_rdd *r, em_records *out, em_err *err)
{
    return count_by(r, "em.pair_with_one", out, err);
}

/* ---------------------------------------------------------------- take, top */

int em_rdd_take(em_rdd *r, size_t n, em_records *out, em_err *err)
{
    uint32_t np = r->node->nparts, scanned = 0;
    int rc = 0;

    memset(out, 0, sizeof *out);
    if (r->node->err.code != 0)
        return em_err_copy(err, &r->node->err);
    while (out->n < n && scanned < np && rc == 0) {
        uint64_t want = 1;
        if (scanned > 0) {
            /* Spark: 4x when nothing found yet, else estimate from the rate so far. */
            want = (uint64_t)scanned * 4;
            if (out->n > 0) {
                double est = ceil(1.5 * (double)n * scanned / (double)out->n) - scanned;
                if (est < (double)want)
                    want = est < 1 ? 1 : (uint64_t)est;
            }
        }
        uint32_t k = (uint32_t)(want < np - scanned ? want : np - scanned);
        uint32_t *parts = em_xcalloc(k, sizeof *parts);
        for (uint32_t i = 0; i < k; i++)
            parts[i] = scanned + i;
        em_result_spec spec = {.op = EM_RESULT_TAKE, .n = n - out->n};
        em_task_result *res = em_xcalloc(k, sizeof *res);
        rc = em__run_job(r, &spec, parts, k, res, err);
        for (uint32_t i = 0; rc == 0 && i < k; i++)
            rc = em__records_add(out, res[i].batches, res[i].nbatches, n, err);
        em__results_free(res, k);
        em_free(parts);
        scanned += k;
    }
    if (rc < 0)
        em_records_destroy(out);
    return rc;
}

int em_rdd_first(em_rdd *r, em_records *out, em_err *err)
{
    int rc = em_rdd_take(r, 1, out, err);
    if (rc == 0 && out->n == 0)
        rc = em_err_set(err, EM_EINVAL, "first of an empty dataset");
    if (rc < 0)
        em_records_destroy(out);
    return rc;
}

static int cmp_rec_asc(const void *a, const void *b)
{
    return em_slice_cmp(((const em_rec *)a)->val, ((const em_rec *)b)->val);
}

static int cmp_rec_desc(const void *a, const void *b)
{
    return -cmp_rec_asc(a, b);
}

static int top_job(em_rdd *r, size_t n, bool descending, em_records *out, em_err *err)
{
    em_result_spec spec = {.op = EM_RESULT_TOP, .n = n, .descending = descending};
    int rc;
    memset(out, 0, sizeof *out);
    if (n == 0)
        return r->node->err.code ? em_err_copy(err, &r->node->err) : 0;
    em_task_result *res = em__run_all(r, &spec, &rc, err);
    if (rc == 0)
        rc = gather(res, r->node->nparts, out, err);
    em__results_free(res, r->node->nparts);
    if (rc < 0) {
        em_records_destroy(out);
        return rc;
    }
    if (out->n > 1)
        qsort(out->recs, out->n, sizeof *out->recs, descending ? cmp_rec_desc : cmp_rec_asc);
    if (out->n > n)
        out->n = n;
    return 0;
}

int em_rdd_take_ordered(em_rdd *r, size_t n, em_records *out, em_err *err)
{
    return top_job(r, n, false, out, err);
}

int em_rdd_top(em_rdd *r, size_t n, em_records *out, em_err *err)
{
    return top_job(r, n, true, out, err);
}

/* ---------------------------------------------------------------- take_sample */

/* Spark's SamplingUtils.computeFractionForSampleSize. */
static double sample_fraction(size_t num, uint64_t total, bool with_replacement)
{
    double s = (double)num, t = (double)total;
    if (with_replacement) {
        double sd = s < 6 ? 12 : s < 16 ? 9 : 6;   /* PoissonBounds.numStd */
        return fmax(s + sd * sqrt(s), 1e-10) / t;
    }
    double fr = s / t, gamma = -log(1e-4) / t;
    return fmin(1.0, fmax(1e-10, fr + gamma + sqrt(gamma * gamma + 2 * gamma * fr)));
}

static void shuffle_recs(em_records *out, em_rng *rng)
{
    for (size_t i = out->n; i > 1; i--) {
        size_t j = (size_t)em_rng_below(rng, i);
        em_rec t = out->recs[i - 1];
        out->recs[i - 1] = out->recs[j];
        out->recs[j] = t;
    }
}

int em_rdd_take_sample(em_rdd *r, bool with_replacement, size_t n, uint64_t seed,
                       em_records *out, em_err *err)
{
    uint64_t total;
    em_rng rng;
    int rc;

    memset(out, 0, sizeof *out);
    if (r->node->err.code != 0)
        return em_err_copy(err, &r->node->err);
    if (n == 0)
        return 0;
    if ((rc = em_rdd_count(r, &total, err)) < 0 || total == 0)
        return rc;
    em_rng_seed(&rng, seed);
    if (!with_replacement && n >= total) {
        if ((rc = em_rdd_collect(r, out, err)) == 0)
            shuffle_recs(out, &rng);
        return rc;
    }
    double fraction = sample_fraction(n, total, with_replacement);
    for (int iter = 0; iter < 1000; iter++) {
        em_rdd *s = em_rdd_sample(r, with_replacement, fraction, em_rng_next(&rng));
        em_records_destroy(out);
        rc = em_rdd_collect(s, out, err);
        em__rdd_drop(s);
        if (rc < 0)
            return rc;
        if (out->n >= n)
            break;
        em_log(EM_LOG_INFO, "take_sample: %zu of %zu records sampled; sampling again", out->n,
               n);
    }
    shuffle_recs(out, &rng);
    if (out->n > n)
        out->n = n;
    return 0;
}

/* ---------------------------------------------------------------- lookup, foreach */

/* lookup through f = r filtered to key. */
static int lookup_in(em_rdd *r, em_rdd *f, em_slice key, em_records *out, em_err *err)
{
    uint32_t part = 0;
    bool one = false;
    int rc;

    memset(out, 0, sizeof *out);
    if (f->node->err.code != 0)
        return em_err_copy(err, &f->node->err);
    if (r->node->part.kind != EM_PART_NONE) {
        em_partitioner p;
        if ((rc = em_part_spec_partitioner(&r->node->part, &p, err)) < 0)
            return rc;
        part = em_partitioner_part(&p, key);
        em_partitioner_destroy(&p);
        one = part < r->node->nparts;
    }
    if (!one) {
        rc = em_rdd_collect(f, out, err);
    } else {
        em_result_spec spec = {.op = EM_RESULT_COLLECT};
        em_task_result res;
        memset(&res, 0, sizeof res);
        rc = em__run_job(f, &spec, &part, 1, &res, err);
        if (rc == 0)
            rc = em__records_add_batches(out, res.batches, res.nbatches, err);
        em_task_result_destroy(&res);
        if (rc < 0)
            em_records_destroy(out);
    }
    for (size_t i = 0; i < out->n; i++)
        out->recs[i].key = em_slice_make(NULL, 0);
    return rc;
}

int em_rdd_lookup(em_rdd *r, em_slice key, em_records *out, em_err *err)
{
    em_rdd *f = em_rdd_filter(r, "em.key_equals", key);
    int rc = lookup_in(r, f, key, out, err);
    em__rdd_drop(f);
    return rc;
}

int em_rdd_foreach_partition(em_rdd *r, const char *fn, em_slice ctx, em_err *err)
{
    em_any_fn f;
    int rc;
    if (r->node->err.code != 0)
        return em_err_copy(err, &r->node->err);
    if (!fn)
        return em_err_set(err, EM_EINVAL, "foreach_partition: missing function name");
    if ((rc = em_registry_resolve(fn, EM_FN_FOREACH, &f, err)) < 0)
        return rc;
    em_result_spec spec = {.op = EM_RESULT_FOREACH, .fn = fn, .blob = ctx};
    em_task_result *res = em__run_all(r, &spec, &rc, err);
    em__results_free(res, r->node->nparts);
    return rc;
}
