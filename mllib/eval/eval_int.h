/* mllib/eval/eval_int.h - what the files of mllib/eval share: the walk over scores in
 * descending order that yields the exact areas (used by the engine's per-partition pass
 * and by the _local form), the confusion/regression kernels, and the task functions. */
#ifndef EMBER_MLLIB_EVAL_EVAL_INT_H
#define EMBER_MLLIB_EVAL_EVAL_INT_H

#include "mllib/eval/eval.h"

/* Cumulative counts over scores visited in DESCENDING order, tie groups closed when the
 * score changes. tp/fp start at the counts of every higher score (the partition's offset,
 * known from the first pass), so a partition's areas add up to the whole curve's:
 *   roc += dFP * (TP_before + dTP / 2)        (trapezoid on (FP, TP); / (P N) at the end)
 *   pr  += (R_cur - R_prev) * (P_prev + P_cur) / 2   on (recall, precision) points,
 * where the point before the very first group is (0, precision of that group), as Spark's
 * BinaryClassificationMetrics.pr() (so the first trapezoid is a rectangle). */
typedef struct em__eval_walk {
    double positives;        /* P of the whole data set (recall's denominator) */
    double tp, fp;           /* counts of scores above the open group */
    double gtp, gfp;         /* the open group */
    double score;            /* the open group's score */
    bool open;
    double roc, pr;          /* unnormalized ROC area; PR area */
} em__eval_walk;

void em__eval_walk_init(em__eval_walk *w, double positives, double tp0, double fp0);
/* label 0 or 1; scores non-increasing between calls. */
void em__eval_walk_add(em__eval_walk *w, double score, double label);
void em__eval_walk_close(em__eval_walk *w);

/* Threshold figures, log-loss sum and the class counts of one run of pairs: the first
 * pass's per-partition record (also the _local form's). Labels must be 0 or 1, scores
 * not NaN: else EM_EINVAL naming the value. */
typedef struct em__eval_bcounts {
    double pos, neg;          /* labels 1 and 0 */
    double tp, fp, tn, fn;    /* at the threshold */
    double log_loss;          /* sum of per-pair losses (clipped probabilities) */
} em__eval_bcounts;
int em__eval_bcount(em__eval_bcounts *c, double score, double label, double threshold,
                    em_err *err);
void em__eval_binary_finish(const em__eval_bcounts *c, bool probabilities,
                            em_eval_binary *out);

/* Regression accumulator: count, SSE, sum of |e|, and the label's mean and M2 (Welford
 * per pair, Chan et al.'s pairwise merge between partitions), so R^2's SST needs no
 * second pass and loses no precision to sum(y^2) - n mean^2 cancellation. */
typedef struct em__eval_reg {
    double n, sse, sae, mean, m2;
} em__eval_reg;
int em__eval_reg_add(em__eval_reg *a, double pred, double label, em_err *err);
void em__eval_reg_merge(em__eval_reg *a, const em__eval_reg *b);
void em__eval_reg_finish(const em__eval_reg *a, em_eval_regression *out);

/* Multiclass: adds one pair to a k x k confusion matrix of doubles (EM_EINVAL naming a
 * label or prediction that is not an integer in [0, k)); the figures from the matrix. */
int em__eval_conf_add(double *conf, uint32_t k, double pred, double label, em_err *err);
int em__eval_multi_finish(const double *conf, uint32_t k, em_eval_multiclass *out,
                          em_err *err);

/* Task functions (eval_rdd.c). */
int em__eval_fn_sort_key(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int em__eval_fn_bcount(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                       em_err *err);
int em__eval_fn_areas(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err);
int em__eval_fn_conf_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                         em_err *err);
int em__eval_fn_max_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                        em_err *err);
int em__eval_fn_max_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                          em_err *err);
int em__eval_fn_sum_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                          em_err *err);
int em__eval_fn_reg_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                        em_err *err);
int em__eval_fn_reg_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                          em_err *err);

/* Reads pair i of a run of 16-byte records (unaligned-safe). */
static inline void em__eval_pair(const uint8_t *p, double *score, double *label)
{
    __builtin_memcpy(score, p, 8);
    __builtin_memcpy(label, p + 8, 8);
}

#endif /* EMBER_MLLIB_EVAL_EVAL_INT_H */
