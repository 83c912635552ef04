/* engine/api/aggregate.c - the aggregation actions: reduce, fold, aggregate and
 * tree_aggregate (values merged by em_reduce_fn calls that return a new value), and
 * in-place aggregation with mutable accumulators (fn.h em_acc_*_fn): aggregate_acc and
 * tree_aggregate_acc. (The node of aggregate_by_key_acc, which the tree reuses, is
 * em__acc_node in node.c; the functions the tree runs on executors are in fns.c.)
 *
 * DRIVER-SIDE MERGES follow Spark: reduce/fold/aggregate combine partition results in
 * partition order with the user's function called here; fold and aggregate start from the
 * zero value on the driver too. Every function that runs on the driver gets a driver task
 * (em_exec_driver_task_new), so em_task_broadcast works there and reads the driver's own
 * copy of the value.
 *
 * IN PLACE. aggregate_acc runs an AGGREGATE_ACC result job: each task makes its accumulator
 * on its executor (zero-filled, init), folds its partition into it a batch at a time and
 * returns it. The driver copies the first partition's accumulator into 64-byte aligned
 * memory and merges every other one into it in place, result by result, releasing each
 * result once merged. (The scheduler hands the results over when the job ends; merging each
 * as its task finishes would need a per-result callback in engine/sched.) An empty dataset
 * (no partitions) gives the initial accumulator made on the driver.
 *
 * TREE AGGREGATE (Spark's RDD.treeAggregate): when the partial results are small in total,
 * P x partial size <= TREE_DIRECT_BYTES (32 MiB; for the old signature the zero's size
 * stands for the partial size), the driver merges them at once: no shuffle, no file. (At
 * 4 MiB, a Lanczos product over 100k columns, 20 partials of 800 KB, went through shuffle
 * files and zstd twice per product, ~45 ms more in local-cluster than the direct merge.) Else
 * every partition is folded (em.aggregate_partition / em.aggregate_acc_partition, keyed by
 * partition index % n1); while the number of partials n exceeds scale + ceil(n / scale),
 * with scale = max(ceil(P^(1/depth)), 2), n is divided by scale and the partials are
 * re-keyed (key % n, em.tree_rekey) and combined by key into n partitions (reduce_by_key
 * with comb; for accumulators an EM_NODE_ACC shuffle that merges them in place on both
 * sides). The driver merges the last partials.
 * THREADS: any thread; concurrent actions on one context run as concurrent jobs. */
#include <math.h>
#include <string.h>

#include "engine/api/api_int.h"

/* ---------------------------------------------------------------- tree helpers
 * tree_aggregate(_acc) merges partials on the driver, without a shuffle, up to this many
 * bytes of them in total (partitions x partial size). */
#define TREE_DIRECT_BYTES ((size_t)32 << 20)


static bool tree_is_small(uint32_t nparts, size_t partial)
{
    size_t total;
    return em_size_mul(nparts, partial, &total) && total <= TREE_DIRECT_BYTES;
}

static void put_field(em_vbuf *b, const void *p, size_t n)
{
    if (em_vbuf_append_u32le(b, (uint32_t)n) < 0 || (n && em_vbuf_append(b, p, n) < 0))
        em_panic("tree_aggregate: out of memory building a blob");
}

/* Partitions per tree level, Spark's way: scale = max(ceil(P^(1/depth)), 2). */
static uint32_t tree_scale(uint32_t P, uint32_t depth)
{
    uint32_t scale = (uint32_t)ceil(pow((double)P, 1.0 / depth));
    return scale < 2 ? 2 : scale;
}

static bool tree_goes_on(uint32_t n, uint32_t scale)
{
    return n > scale + (n + scale - 1) / scale;
}

/* ---------------------------------------------------------------- reduce, fold, aggregate */

static int resolve_reduce(const char *fn, em_reduce_fn *out, em_err *err)
{
    em_any_fn f;
    if (!fn)
        return em_err_set(err, EM_EINVAL, "missing function name");
    int rc = em_registry_resolve(fn, EM_FN_REDUCE, &f, err);
    if (rc < 0)
        return rc;
    *out = (em_reduce_fn)f;
    return 0;
}

/* acc = fn(acc, v) with em_fn_ctx{blob, t} (t: a driver task); acc = v when !*has (then
 * *has = true). */
static int merge_value(em_reduce_fn fn, em_slice blob, em_task *t, em_vbuf *acc, bool *has,
                       em_slice v, em_err *err)
{
    if (!*has) {
        *has = true;
        em_vbuf_clear(acc);
        if (em_vbuf_append(acc, v.p, v.n) < 0)
            return em_err_set(err, EM_ENOMEM, "merging results");
        return 0;
    }
    em_vbuf out;
    em_fn_ctx c = {blob, t};
    em_vbuf_init(&out);
    int rc = fn(&c, em_slice_make(acc->data, acc->len), v, &out, err);
    if (rc < 0) {
        em_vbuf_destroy(&out);
        return rc;
    }
    em_vbuf_destroy(acc);
    *acc = out;
    return 0;
}

/* Merges the value of every record of every partition result into acc, in order. */
static int merge_results(em_reduce_fn fn, em_slice blob, em_task *t, em_task_result *res,
                         uint32_t np, em_vbuf *acc, bool *has, em_err *err)
{
    for (uint32_t i = 0; i < np; i++)
        for (size_t b = 0; b < res[i].nbatches; b++) {
            em_batch_iter it;
            em_rec rec;
            em_batch_iter_init(&it, res[i].batches[b]);
            while (em_batch_iter_next(&it, &rec)) {
                int rc = merge_value(fn, blob, t, acc, has, rec.val, err);
                if (rc < 0)
                    return em_err_prefix(err, "merging partition %u", i);
            }
        }
    return 0;
}

/* FOLD/AGGREGATE job + driver merge with merge_fn from the zero (if any). */
static int fold_job(em_rdd *r, const em_result_spec *spec, const char *merge_fn, em_slice ctx,
                    const em_slice *zero, em_vbuf *out, em_err *err)
{
    em_reduce_fn fn = NULL;   /* gcc -O2 cannot see resolve_reduce set it */
    bool has = false;
    int rc;

    em_vbuf_init(out);
    if (r->node->err.code != 0)
        return em_err_copy(err, &r->node->err);
    if ((rc = resolve_reduce(merge_fn, &fn, err)) < 0)
        return rc;
    em_task *t = em_exec_driver_task_new(r->sc->store);
    em_task_result *res = NULL;
    if (zero && (rc = merge_value(fn, ctx, t, out, &has, *zero, err)) < 0)
        goto out;
    res = em__run_all(r, spec, &rc, err);
    if (rc == 0)
        rc = merge_results(fn, ctx, t, res, r->node->nparts, out, &has, err);
out:
    em__results_free(res, r->node->nparts);
    em_exec_driver_task_free(t);
    if (rc == 0 && !has)
        rc = em_err_set(err, EM_EINVAL, "reduce of an empty dataset");
    if (rc < 0)
        em_vbuf_destroy(out);
    return rc;
}

int em_rdd_reduce(em_rdd *r, const char *fn, em_slice ctx, em_vbuf *out, em_err *err)
{
    em_result_spec spec = {.op = EM_RESULT_FOLD, .fn = fn, .blob = ctx};
    return fold_job(r, &spec, fn, ctx, NULL, out, err);
}

int em_rdd_fold(em_rdd *r, em_slice zero, const char *fn, em_slice ctx, em_vbuf *out,
                em_err *err)
{
    em_result_spec spec = {.op = EM_RESULT_FOLD, .fn = fn, .blob = ctx, .has_zero = true,
                           .zero = zero};
    return fold_job(r, &spec, fn, ctx, &zero, out, err);
}

int em_rdd_aggregate(em_rdd *r, em_slice zero, const char *seq_fn, const char *comb_fn,
                     em_slice ctx, em_vbuf *out, em_err *err)
{
    em_reduce_fn seq = NULL;
    int rc = resolve_reduce(seq_fn, &seq, err);
    if (rc < 0) {
        em_vbuf_init(out);
        return r->node->err.code ? em_err_copy(err, &r->node->err) : rc;
    }
    em_result_spec spec = {.op = EM_RESULT_AGGREGATE, .fn = seq_fn, .blob = ctx,
                           .has_zero = true, .zero = zero};
    return fold_job(r, &spec, comb_fn, ctx, &zero, out, err);
}

int em_rdd_tree_aggregate(em_rdd *r, em_slice zero, const char *seq_fn, const char *comb_fn,
                          em_slice ctx, uint32_t depth, em_vbuf *out, em_err *err)
{
    em_reduce_fn seq = NULL, comb = NULL;
    int rc;
    uint32_t P = r->node->nparts;

    em_vbuf_init(out);
    if (r->node->err.code != 0)
        return em_err_copy(err, &r->node->err);
    if (depth < 1)
        return em_err_set(err, EM_EINVAL, "tree_aggregate: depth %u (>= 1)", depth);
    if ((rc = resolve_reduce(seq_fn, &seq, err)) < 0 ||
        (rc = resolve_reduce(comb_fn, &comb, err)) < 0)
        return rc;
    uint32_t scale = tree_scale(P, depth);
    uint32_t n = P;
    if (depth == 1 || !tree_goes_on(n, scale) ||
        tree_is_small(P, zero.n ? zero.n : 1))
        return em_rdd_aggregate(r, zero, seq_fn, comb_fn, ctx, out, err);
    n /= scale;
    em_vbuf blob;
    em_vbuf_init(&blob);
    put_field(&blob, seq_fn, strlen(seq_fn));
    put_field(&blob, zero.p, zero.n);
    put_field(&blob, ctx.p, ctx.n);
    if (em_vbuf_append_u32le(&blob, n) < 0)
        em_panic("tree_aggregate: out of memory building a blob");
    /* Each step's handle is internal: dropped once the next one is built on it, and the
     * last after the job, so the tree's shuffles go when the action returns. */
    em_rdd *cur = em_rdd_map_partitions(r, "em.aggregate_partition",
                                        em_slice_make(blob.data, blob.len), false);
    em_vbuf_destroy(&blob);
    em_rdd *next = em_rdd_reduce_by_key(cur, comb_fn, ctx, n);
    em__rdd_drop(cur);
    cur = next;
    while (tree_goes_on(n, scale)) {
        n /= scale;
        uint8_t m[4];
        em_store_le32(m, n);
        next = em_rdd_map(cur, "em.tree_rekey", em_slice_make(m, 4));
        em__rdd_drop(cur);
        cur = em_rdd_reduce_by_key(next, comb_fn, ctx, n);
        em__rdd_drop(next);
    }
    em_records recs;
    rc = em_rdd_collect(cur, &recs, err);
    em__rdd_drop(cur);
    if (rc < 0)
        return rc;
    bool has = false;
    em_task *t = em_exec_driver_task_new(r->sc->store);
    rc = merge_value(comb, ctx, t, out, &has, zero, err);
    for (size_t i = 0; rc == 0 && i < recs.n; i++)
        rc = merge_value(comb, ctx, t, out, &has, recs.recs[i].val, err);
    em_exec_driver_task_free(t);
    em_records_destroy(&recs);
    if (rc < 0)
        em_vbuf_destroy(out);
    return rc;
}


/* ---------------------------------------------------------------- in place */

/* Checks the em_agg of an action: size in range, functions of the right kinds. */
static int check_agg(const em_agg *a, em_fn_kind seq_kind, em_acc_merge_fn *merge,
                     em_acc_init_fn *init, em_err *err)
{
    em_any_fn f;
    int rc;
    if (!a)
        return em_err_set(err, EM_EINVAL, "in-place aggregation: no em_agg");
    if (a->size == 0 || a->size > EM_BATCH_MAX_REC_LEN)
        return em_err_set(err, EM_EINVAL, "in-place aggregation: accumulator size %zu "
                          "(1 .. %u)", a->size, EM_BATCH_MAX_REC_LEN);
    if (!a->seq || !a->merge)
        return em_err_set(err, EM_EINVAL, "in-place aggregation: missing %s function",
                          a->seq ? "merge" : "seq");
    if ((rc = em_registry_resolve(a->seq, seq_kind, &f, err)) < 0 ||
        (rc = em_registry_resolve(a->merge, EM_FN_ACC_MERGE, &f, err)) < 0)
        return rc;
    *merge = (em_acc_merge_fn)f;
    *init = NULL;
    if (a->init) {
        if ((rc = em_registry_resolve(a->init, EM_FN_ACC_INIT, &f, err)) < 0)
            return rc;
        *init = (em_acc_init_fn)f;
    }
    return 0;
}

/* The driver's accumulator: the first partial copied in, the others merged in place. */
typedef struct acc_merger {
    em_acc_merge_fn merge;
    em_fn_ctx ctx;               /* the em_agg's blob and a driver task */
    em_acc_buf acc, scratch;
} acc_merger;

static int merger_add(acc_merger *m, size_t size, em_slice v, em_err *err)
{
    int rc;
    if (v.n != size)
        return em_err_set(err, EM_ECORRUPT, "partial accumulator of %zu bytes where %zu are "
                          "expected", v.n, size);
    if (!m->acc.p) {
        if ((rc = em_acc_buf_init(&m->acc, size, err)) < 0)
            return rc;
        memcpy(m->acc.p, v.p, size);
        return 0;
    }
    if ((rc = em_acc_merge_any(m->merge, &m->ctx, &m->acc, v.p, &m->scratch, err)) < 0)
        return em_err_prefix(err, "merge");
    return 0;
}

/* Appends the merged accumulator (or, when nothing came, the initial one) to out. */
static int merger_finish(acc_merger *m, const em_agg *a, em_acc_init_fn init, em_vbuf *out,
                         em_err *err)
{
    int rc;
    if (!m->acc.p && (rc = em_acc_buf_start(&m->acc, a->size, init, &m->ctx, err)) < 0)
        return rc;
    if (em_vbuf_append(out, m->acc.p, m->acc.size) < 0)
        return em_err_set(err, EM_ENOMEM, "aggregate_acc: out of memory for the result");
    return 0;
}

static void merger_destroy(acc_merger *m)
{
    em_exec_driver_task_free(m->ctx.task);
    em_acc_buf_destroy(&m->acc);
    em_acc_buf_destroy(&m->scratch);
}

/* Merges every task's accumulator (one FIXED record each), freeing each result once used. */
static int merge_acc_results(acc_merger *m, size_t size, em_task_result *res, uint32_t np,
                             em_err *err)
{
    for (uint32_t i = 0; i < np; i++) {
        em_task_result *tr = &res[i];
        if (tr->nbatches != 1 || em_batch_nrecs(tr->batches[0]) != 1 ||
            em_batch_kind(tr->batches[0]) != EM_REC_FIXED)
            return em_err_set(err, EM_ECORRUPT, "aggregate_acc: partition %u returned %zu "
                              "batches, not one accumulator", i, tr->nbatches);
        em_slice v = em_slice_make(em_batch_payload(tr->batches[0]),
                                   em_batch_nbytes(tr->batches[0]));
        int rc = merger_add(m, size, v, err);
        if (rc < 0)
            return em_err_prefix(err, "aggregate_acc: partition %u", i);
        em_task_result_destroy(tr);
    }
    return 0;
}

int em_rdd_aggregate_acc(em_rdd *r, const em_agg *a, em_vbuf *out, em_err *err)
{
    acc_merger m = {0};
    em_acc_init_fn init;
    int rc;
    em_vbuf_init(out);
    if (r->node->err.code != 0)
        return em_err_copy(err, &r->node->err);
    if ((rc = check_agg(a, EM_FN_ACC_SEQ, &m.merge, &init, err)) < 0)
        return rc;
    em_result_spec spec = {.op = EM_RESULT_AGGREGATE_ACC, .fn = a->seq, .blob = a->ctx,
                           .fn_init = a->init, .acc_size = a->size};
    m.ctx = (em_fn_ctx){a->ctx, em_exec_driver_task_new(r->sc->store)};
    em_task_result *res = em__run_all(r, &spec, &rc, err);
    if (rc == 0)
        rc = merge_acc_results(&m, a->size, res, r->node->nparts, err);
    em__results_free(res, r->node->nparts);
    if (rc == 0)
        rc = merger_finish(&m, a, init, out, err);
    merger_destroy(&m);
    if (rc < 0)
        em_vbuf_destroy(out);
    return rc;
}

/* The first tree level's input: every partition folded, keyed by index % n. */
static em_rdd *acc_partials(em_rdd *r, const em_agg *a, uint32_t n)
{
    em_vbuf blob;
    em_vbuf_init(&blob);
    put_field(&blob, a->seq, strlen(a->seq));
    put_field(&blob, a->init, a->init ? strlen(a->init) : 0);
    put_field(&blob, a->ctx.p, a->ctx.n);
    if (em_vbuf_append_u32le(&blob, (uint32_t)a->size) < 0 ||
        em_vbuf_append_u32le(&blob, r->node->width) < 0 ||
        em_vbuf_append_u32le(&blob, n) < 0)
        em_panic("tree_aggregate_acc: out of memory building a blob");
    em_rdd *p = em_rdd_map_partitions(r, "em.aggregate_acc_partition",
                                      em_slice_make(blob.data, blob.len), false);
    em_vbuf_destroy(&blob);
    return p;
}

/* The tree on the executors: returns its last level (an internal handle the caller drops
 * once collected). */
static em_rdd *acc_tree(em_rdd *r, const em_agg *a, uint32_t scale)
{
    uint32_t n = r->node->nparts / scale;
    em_rdd *cur = acc_partials(r, a, n);
    em_rdd *next = em__rdd_wrap(r->sc, em__acc_node(cur, a, NULL, n, "tree_aggregate_acc"));
    em__rdd_drop(cur);
    cur = next;
    while (tree_goes_on(n, scale)) {
        n /= scale;
        uint8_t m[4];
        em_store_le32(m, n);
        next = em_rdd_map(cur, "em.tree_rekey", em_slice_make(m, 4));
        em__rdd_drop(cur);
        cur = em__rdd_wrap(r->sc, em__acc_node(next, a, NULL, n, "tree_aggregate_acc"));
        em__rdd_drop(next);
    }
    return cur;
}

int em_rdd_tree_aggregate_acc(em_rdd *r, const em_agg *a, uint32_t depth, em_vbuf *out,
                              em_err *err)
{
    acc_merger m = {0};
    em_acc_init_fn init;
    em_records recs;
    int rc;
    uint32_t P = r->node->nparts;
    em_vbuf_init(out);
    if (r->node->err.code != 0)
        return em_err_copy(err, &r->node->err);
    if (depth < 1)
        return em_err_set(err, EM_EINVAL, "tree_aggregate_acc: depth %u (>= 1)", depth);
    if ((rc = check_agg(a, EM_FN_ACC_SEQ, &m.merge, &init, err)) < 0)
        return rc;
    uint32_t scale = tree_scale(P, depth);
    if (depth == 1 || !tree_goes_on(P, scale) || tree_is_small(P, a->size))
        return em_rdd_aggregate_acc(r, a, out, err);
    em_rdd *last = acc_tree(r, a, scale);
    rc = em_rdd_collect(last, &recs, err);
    em__rdd_drop(last);
    if (rc < 0)
        return rc;
    m.ctx = (em_fn_ctx){a->ctx, em_exec_driver_task_new(r->sc->store)};
    for (size_t i = 0; rc == 0 && i < recs.n; i++)
        rc = merger_add(&m, a->size, recs.recs[i].val, err);
    em_records_destroy(&recs);
    if (rc == 0)
        rc = merger_finish(&m, a, init, out, err);
    merger_destroy(&m);
    if (rc < 0)
        em_vbuf_destroy(out);
    return rc;
}
