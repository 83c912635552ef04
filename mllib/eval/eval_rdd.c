/* mllib/eval/eval_rdd.c - the metrics on the engine (mllib/eval/eval.h) and the "ml.eval.*"
 * task functions.
 *
 * BINARY (exact areas): the pairs are keyed by their score (an order-preserving 8-byte
 * encoding) and sorted DESCENDING with sort_by_key, whose range partitioner puts equal
 * scores in one partition, so a tie group never straddles two. Pass 1 (one job) emits one
 * record per partition: its class counts, the threshold counts and the log-loss sum. The
 * driver turns the class counts into each partition's offsets (the positives and negatives
 * of every higher-scored partition). Pass 2 (one job, over the same shuffle output) walks
 * each partition from its offsets and emits its share of the two areas; the driver adds
 * them in partition order. Every count is a double: exact up to 2^53 pairs.
 * MULTICLASS: one tree_aggregate_acc of a k x k confusion matrix (plus, when the class
 * count is not given, one small aggregation for the largest class first).
 * REGRESSION: one tree_aggregate_acc of em__eval_reg.
 *
 * RECORDS: the pairs are 16-byte records (FIXED of width 16, or BYTES of 16 bytes); any
 * other size is EM_EINVAL naming it. Pass records: FIXED, doubles, see fn comments. */
#include <math.h>
#include <string.h>

#include "mllib/eval/eval_int.h"

#define BCOUNT_W 8   /* doubles of a pass-1 record: index, pos, neg, tp, fp, tn, fn, ll */
#define AREAS_W 3    /* doubles of a pass-2 record: index, roc, pr */

static const em_fn_entry eval_fns[] = {
    {"ml.eval.sort_key", EM_FN_MAP, EM_FN(em__eval_fn_sort_key)},
    {"ml.eval.bcount", EM_FN_PARTITION, EM_FN(em__eval_fn_bcount)},
    {"ml.eval.areas", EM_FN_PARTITION, EM_FN(em__eval_fn_areas)},
    {"ml.eval.conf_seq", EM_FN_ACC_SEQ, EM_FN(em__eval_fn_conf_seq)},
    {"ml.eval.max_seq", EM_FN_ACC_SEQ, EM_FN(em__eval_fn_max_seq)},
    {"ml.eval.max_merge", EM_FN_ACC_MERGE, EM_FN(em__eval_fn_max_merge)},
    {"ml.eval.sum_merge", EM_FN_ACC_MERGE, EM_FN(em__eval_fn_sum_merge)},
    {"ml.eval.reg_seq", EM_FN_ACC_SEQ, EM_FN(em__eval_fn_reg_seq)},
    {"ml.eval.reg_merge", EM_FN_ACC_MERGE, EM_FN(em__eval_fn_reg_merge)},
};

int em_eval_register(void)
{
    return em_fn_register_table(eval_fns, sizeof eval_fns / sizeof eval_fns[0]);
}

static int pair_of(em_slice v, double *score, double *label, em_err *err)
{
    if (v.n != 16)
        return em_err_set(err, EM_EINVAL, "evaluation: a pair record of %zu bytes (pairs are "
                          "16 bytes: f64 score, f64 label)", v.n);
    em__eval_pair(v.p, score, label);
    return 0;
}

/* Order-preserving key of a double (memcmp order = numeric order; -0 is 0). */
static void score_key(uint8_t out[8], double s)
{
    uint64_t u;
    if (s == 0)
        s = 0;
    memcpy(&u, &s, 8);
    u = (u >> 63) ? ~u : u ^ 0x8000000000000000ULL;
    em_store_be64(out, u);
}

int em__eval_fn_sort_key(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    double s, l;
    int rc = pair_of(in->val, &s, &l, err);
    if (rc < 0)
        return rc;
    if (isnan(s))
        return em_err_set(err, EM_EINVAL, "binary evaluation: a score is NaN (label %g)", l);
    uint8_t k[8];
    score_key(k, s);
    return em_emit_kv(out, em_slice_make(k, 8), in->val, err);
}

static int emit_doubles(em_emitter *out, const double *v, size_t n, em_err *err)
{
    return em_emit_val(out, em_slice_make(v, 8 * n), err);
}

/* Pass 1: blob = f64 threshold. Emits {index, pos, neg, tp, fp, tn, fn, log-loss sum}. */
int em__eval_fn_bcount(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                       em_err *err)
{
    if (c->blob.n != 8)
        return em_err_set(err, EM_EINVAL, "ml.eval.bcount: context of %zu bytes", c->blob.n);
    double threshold = em_dec_f64(c->blob.p), s, l;
    em__eval_bcounts bc = {0};
    em_rec r;
    int rc;
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        if ((rc = pair_of(r.val, &s, &l, err)) < 0 ||
            (rc = em__eval_bcount(&bc, s, l, threshold, err)) < 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    double v[BCOUNT_W] = {index, bc.pos, bc.neg, bc.tp, bc.fp, bc.tn, bc.fn, bc.log_loss};
    return emit_doubles(out, v, BCOUNT_W, err);
}

/* Pass 2: blob = f64 positives, u32 nparts, u32 pad, then nparts x {f64 tp0, f64 fp0}.
 * Emits {index, roc share (unnormalized), pr share}. */
int em__eval_fn_areas(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err)
{
    const uint8_t *b = c->blob.p;
    if (c->blob.n < 16)
        return em_err_set(err, EM_EINVAL, "ml.eval.areas: context of %zu bytes", c->blob.n);
    uint32_t nparts = em_load_le32(b + 8);
    if (c->blob.n != 16 + 16 * (size_t)nparts || index >= nparts)
        return em_err_set(err, EM_EINVAL, "ml.eval.areas: context of %zu bytes for %u "
                          "partitions (partition %u)", c->blob.n, nparts, index);
    em__eval_walk w;
    em__eval_walk_init(&w, em_dec_f64(b), em_dec_f64(b + 16 + 16 * (size_t)index),
                       em_dec_f64(b + 24 + 16 * (size_t)index));
    em_rec r;
    double s, l;
    int rc;
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        if ((rc = pair_of(r.val, &s, &l, err)) < 0)
            return rc;
        em__eval_walk_add(&w, s == 0 ? 0.0 : s, l);
    }
    if (rc < 0)
        return rc;
    em__eval_walk_close(&w);
    double v[AREAS_W] = {index, w.roc, w.pr};
    return emit_doubles(out, v, AREAS_W, err);
}

/* Collects a FIXED dataset of per-partition records of w doubles into rows[nparts][w]
 * (indexed by the record's first double). */
static int collect_parts(em_rdd *r, uint32_t nparts, size_t w, double *rows, em_err *err)
{
    em_records recs = {0};
    int rc = em_rdd_collect(r, &recs, err);
    for (size_t i = 0; rc == 0 && i < recs.n; i++) {
        double v[BCOUNT_W];
        if (recs.recs[i].val.n != 8 * w) {
            rc = em_err_set(err, EM_ECORRUPT, "evaluation: a partition result of %zu bytes",
                            recs.recs[i].val.n);
            break;
        }
        memcpy(v, recs.recs[i].val.p, 8 * w);
        if (!(v[0] >= 0 && v[0] < nparts)) {
            rc = em_err_set(err, EM_ECORRUPT, "evaluation: partition %g of %u", v[0], nparts);
            break;
        }
        memcpy(rows + (size_t)v[0] * w, v, 8 * w);
    }
    em_records_destroy(&recs);
    return rc;
}

static int binary_areas(em_rdd *sorted, uint32_t np, const double *bc,
                        const em__eval_bcounts *tot, em_eval_binary *out, em_err *err)
{
    em_vbuf blob;
    em_vbuf_init(&blob);
    uint8_t h[16] = {0};
    em_enc_f64(h, tot->pos);
    em_store_le32(h + 8, np);
    int rc = em_vbuf_append(&blob, h, 16);
    double tp0 = 0, fp0 = 0;
    for (uint32_t p = 0; rc == 0 && p < np; p++) {
        uint8_t o[16];
        em_enc_f64(o, tp0);
        em_enc_f64(o + 8, fp0);
        rc = em_vbuf_append(&blob, o, 16);
        tp0 += bc[(size_t)p * BCOUNT_W + 1];
        fp0 += bc[(size_t)p * BCOUNT_W + 2];
    }
    double *ar = em_calloc(np ? np : 1, 8 * AREAS_W);
    if (rc < 0 || !ar) {
        em_vbuf_destroy(&blob);
        em_free(ar);
        return em_err_set(err, EM_ENOMEM, "binary evaluation: %u partitions", np);
    }
    em_rdd *a = em_rdd_map_partitions_fixed(sorted, "ml.eval.areas",
                                            em_slice_make(blob.data, blob.len), false,
                                            8 * AREAS_W);
    em_vbuf_destroy(&blob);
    rc = collect_parts(a, np, AREAS_W, ar, err);
    em_rdd_release(a);
    double roc = 0, pr = 0;
    for (uint32_t p = 0; p < np; p++) {
        roc += ar[(size_t)p * AREAS_W + 1];
        pr += ar[(size_t)p * AREAS_W + 2];
    }
    em_free(ar);
    out->auc_roc = tot->pos > 0 && tot->neg > 0 ? roc / (tot->pos * tot->neg) : NAN;
    out->auc_pr = tot->pos > 0 ? pr : NAN;
    return rc;
}

int em_eval_binary_rdd(em_rdd *pairs, double threshold, bool probabilities,
                       em_eval_binary *out, em_err *err)
{
    int rc;
    memset(out, 0, sizeof *out);
    out->threshold = threshold;
    if ((rc = em_eval_register()) < 0)
        return em_err_set(err, rc, "evaluation: a task function name is taken");
    uint32_t np = em_rdd_num_partitions(pairs);
    em_rdd *keyed = em_rdd_map(pairs, "ml.eval.sort_key", em_slice_make(NULL, 0));
    em_rdd *sorted = em_rdd_sort_by_key(keyed, false, np ? np : 1);
    np = em_rdd_num_partitions(sorted);
    uint8_t tb[8];
    em_enc_f64(tb, threshold);
    em_rdd *counts = em_rdd_map_partitions_fixed(sorted, "ml.eval.bcount",
                                                 em_slice_make(tb, 8), false, 8 * BCOUNT_W);
    double *bc = em_calloc(np ? np : 1, 8 * BCOUNT_W);
    if (!bc)
        rc = em_err_set(err, EM_ENOMEM, "binary evaluation: %u partitions", np);
    else
        rc = collect_parts(counts, np, BCOUNT_W, bc, err);
    em__eval_bcounts tot = {0};
    for (uint32_t p = 0; rc == 0 && p < np; p++) {
        const double *v = bc + (size_t)p * BCOUNT_W;
        tot.pos += v[1], tot.neg += v[2], tot.tp += v[3], tot.fp += v[4];
        tot.tn += v[5], tot.fn += v[6], tot.log_loss += v[7];
    }
    if (rc == 0) {
        em__eval_binary_finish(&tot, probabilities, out);
        rc = binary_areas(sorted, np, bc, &tot, out, err);
    }
    em_free(bc);
    em_rdd_release(counts);
    em_rdd_release(sorted);
    em_rdd_release(keyed);
    return rc;
}

/* ---------------------------------------------------------------- multiclass */

typedef int (*pair_fn)(void *acc, void *ud, double s, double l, em_err *err);

static int each_pair(const em_rec_batch *in, pair_fn fn, void *acc, void *ud, em_err *err)
{
    em_batch_iter it;
    em_rec r;
    double s, l;
    int rc;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &r))
        if ((rc = pair_of(r.val, &s, &l, err)) < 0 || (rc = fn(acc, ud, s, l, err)) < 0)
            return rc;
    return 0;
}

static int max_one(void *acc, void *ud, double s, double l, em_err *err)
{
    (void)ud, (void)err;
    double *m = acc;   /* the largest class + 1 (0: none yet); bad values are left to the
                          confusion pass, which names them */
    if (s >= 0 && s < 4096 && s + 1 > *m)
        *m = floor(s) + 1;
    if (l >= 0 && l < 4096 && l + 1 > *m)
        *m = floor(l) + 1;
    return 0;
}

int em__eval_fn_max_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                        em_err *err)
{
    (void)c;
    if (size != 8)
        return em_err_set(err, EM_EINVAL, "ml.eval.max_seq: accumulator of %zu bytes", size);
    return each_pair(in, max_one, acc, NULL, err);
}

int em__eval_fn_max_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                          em_err *err)
{
    (void)c, (void)size, (void)err;
    double *a = acc;
    const double *b = other;
    if (*b > *a)
        *a = *b;
    return 0;
}

int em__eval_fn_sum_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                          em_err *err)
{
    (void)c, (void)err;
    double *a = acc;
    const double *b = other;
    for (size_t i = 0; i < size / 8; i++)
        a[i] += b[i];
    return 0;
}

static int conf_one(void *acc, void *ud, double s, double l, em_err *err)
{
    return em__eval_conf_add(acc, *(const uint32_t *)ud, s, l, err);
}

/* blob = u32 k; accumulator k x k doubles (row = label, column = prediction). */
int em__eval_fn_conf_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                         em_err *err)
{
    if (c->blob.n != 4)
        return em_err_set(err, EM_EINVAL, "ml.eval.conf_seq: context of %zu bytes", c->blob.n);
    uint32_t k = em_load_le32(c->blob.p);
    if (size != 8 * (size_t)k * k)
        return em_err_set(err, EM_EINVAL, "ml.eval.conf_seq: accumulator of %zu bytes for %u "
                          "classes", size, k);
    return each_pair(in, conf_one, acc, &k, err);
}

int em_eval_multiclass_rdd(em_rdd *pairs, uint32_t nclasses, em_eval_multiclass *out,
                           em_err *err)
{
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = em_eval_register()) < 0)
        return em_err_set(err, rc, "evaluation: a task function name is taken");
    em_vbuf acc;
    em_vbuf_init(&acc);
    uint32_t k = nclasses;
    if (k == 0) {
        em_agg a = {.size = 8, .seq = "ml.eval.max_seq", .merge = "ml.eval.max_merge"};
        if ((rc = em_rdd_tree_aggregate_acc(pairs, &a, 2, &acc, err)) < 0)
            goto out;
        double m;
        memcpy(&m, acc.data, 8);
        k = m > 0 ? (uint32_t)m : 1;
        em_vbuf_destroy(&acc);
        em_vbuf_init(&acc);
    }
    if (k > 4096) {
        rc = em_err_set(err, EM_EINVAL, "multiclass evaluation: %u classes (max 4096)", k);
        goto out;
    }
    uint8_t kb[4];
    em_store_le32(kb, k);
    em_agg a = {.size = 8 * (size_t)k * k, .seq = "ml.eval.conf_seq",
                .merge = "ml.eval.sum_merge", .ctx = em_slice_make(kb, 4)};
    if ((rc = em_rdd_tree_aggregate_acc(pairs, &a, 2, &acc, err)) < 0)
        goto out;
    if (acc.len != a.size)
        rc = em_err_set(err, EM_ECORRUPT, "multiclass evaluation: result of %zu bytes",
                        acc.len);
    else
        rc = em__eval_multi_finish((const double *)acc.data, k, out, err);
out:
    em_vbuf_destroy(&acc);
    return rc;
}

/* ---------------------------------------------------------------- regression */

static int reg_one(void *acc, void *ud, double s, double l, em_err *err)
{
    (void)ud;
    return em__eval_reg_add(acc, s, l, err);
}

int em__eval_fn_reg_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                        em_err *err)
{
    (void)c;
    if (size != sizeof(em__eval_reg))
        return em_err_set(err, EM_EINVAL, "ml.eval.reg_seq: accumulator of %zu bytes", size);
    return each_pair(in, reg_one, acc, NULL, err);
}

int em__eval_fn_reg_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                          em_err *err)
{
    (void)c, (void)size, (void)err;
    em__eval_reg_merge(acc, other);
    return 0;
}

int em_eval_regression_rdd(em_rdd *pairs, em_eval_regression *out, em_err *err)
{
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = em_eval_register()) < 0)
        return em_err_set(err, rc, "evaluation: a task function name is taken");
    em_vbuf acc;
    em_vbuf_init(&acc);
    em_agg a = {.size = sizeof(em__eval_reg), .seq = "ml.eval.reg_seq",
                .merge = "ml.eval.reg_merge"};
    if ((rc = em_rdd_tree_aggregate_acc(pairs, &a, 2, &acc, err)) == 0) {
        if (acc.len != a.size)
            rc = em_err_set(err, EM_ECORRUPT, "regression evaluation: result of %zu bytes",
                            acc.len);
        else {
            em__eval_reg r;
            memcpy(&r, acc.data, sizeof r);
            em__eval_reg_finish(&r, out);
        }
    }
    em_vbuf_destroy(&acc);
    return rc;
}
