/* mllib/eval/eval.c - the arithmetic of the metrics (mllib/eval/eval.h): the descending
 * walk behind the exact areas, threshold counts, log-loss, the confusion matrix and the
 * regression accumulator; the _local forms; the JSON helpers. The engine's forms
 * (eval_rdd.c) run the same kernels per partition, so both give the same figures.
 *
 * MATH. AUC-ROC is the trapezoidal area under (FPR, TPR) with the points of tied scores
 * merged into one (scikit-learn's roc_auc_score, Spark's areaUnderROC); AUC-PR the
 * trapezoidal area under (recall, precision) starting at (0, precision of the first
 * group), Spark's areaUnderPR. Log-loss (scikit-learn's log_loss) is the mean of
 * -(y log p + (1 - y) log(1 - p)), p clipped to [1e-15, 1 - 1e-15]. Weighted precision,
 * recall and F1 weight each class by its share of the true labels (Spark's weighted*
 * and scikit-learn's average="weighted" with zero_division=0). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/eval/eval_int.h"

#define EVAL_MAX_CLASSES 4096u   /* k x k doubles: 128 MiB */

void em__eval_walk_init(em__eval_walk *w, double positives, double tp0, double fp0)
{
    memset(w, 0, sizeof *w);
    w->positives = positives;
    w->tp = tp0;
    w->fp = fp0;
}

void em__eval_walk_close(em__eval_walk *w)
{
    if (!w->open)
        return;
    double ntp = w->tp + w->gtp, nfp = w->fp + w->gfp;
    w->roc += w->gfp * (w->tp + w->gtp / 2);
    if (w->positives > 0) {
        double p_cur = ntp / (ntp + nfp), r_cur = ntp / w->positives;
        double p_prev = w->tp + w->fp > 0 ? w->tp / (w->tp + w->fp) : p_cur;
        double r_prev = w->tp / w->positives;
        w->pr += (r_cur - r_prev) * (p_prev + p_cur) / 2;
    }
    w->tp = ntp;
    w->fp = nfp;
    w->gtp = w->gfp = 0;
    w->open = false;
}

void em__eval_walk_add(em__eval_walk *w, double score, double label)
{
    if (w->open && score != w->score)
        em__eval_walk_close(w);
    w->open = true;
    w->score = score;
    if (label > 0.5)
        w->gtp += 1;
    else
        w->gfp += 1;
}

int em__eval_bcount(em__eval_bcounts *c, double score, double label, double threshold,
                    em_err *err)
{
    if (label != 0 && label != 1)
        return em_err_set(err, EM_EINVAL, "binary evaluation: label %.17g (labels must be 0 "
                          "or 1)", label);
    if (isnan(score))
        return em_err_set(err, EM_EINVAL, "binary evaluation: a score is NaN (label %g)",
                          label);
    bool pred = score > threshold;
    if (label == 1) {
        c->pos += 1;
        if (pred)
            c->tp += 1;
        else
            c->fn += 1;
    } else {
        c->neg += 1;
        if (pred)
            c->fp += 1;
        else
            c->tn += 1;
    }
    double p = score < 1e-15 ? 1e-15 : score > 1 - 1e-15 ? 1 - 1e-15 : score;
    c->log_loss -= label == 1 ? log(p) : log1p(-p);
    return 0;
}

void em__eval_binary_finish(const em__eval_bcounts *c, bool probabilities,
                            em_eval_binary *out)
{
    double n = c->pos + c->neg, npred = c->tp + c->fp;
    out->count = (uint64_t)n;
    out->positives = (uint64_t)c->pos;
    out->log_loss = probabilities && n > 0 ? c->log_loss / n : NAN;
    out->accuracy = n > 0 ? (c->tp + c->tn) / n : NAN;
    out->precision = npred > 0 ? c->tp / npred : 0;
    out->recall = c->pos > 0 ? c->tp / c->pos : 0;
    out->f1 = out->precision + out->recall > 0
                  ? 2 * out->precision * out->recall / (out->precision + out->recall)
                  : 0;
}

typedef struct sp_pair {
    double score, label;
} sp_pair;

static int by_score_desc(const void *a, const void *b)
{
    double x = ((const sp_pair *)a)->score, y = ((const sp_pair *)b)->score;
    return x > y ? -1 : x < y ? 1 : 0;
}

int em_eval_binary_local(const double *score, const double *label, size_t n,
                         double threshold, bool probabilities, em_eval_binary *out,
                         em_err *err)
{
    em__eval_bcounts c = {0};
    memset(out, 0, sizeof *out);
    out->threshold = threshold;
    for (size_t i = 0; i < n; i++) {
        int rc = em__eval_bcount(&c, score[i], label[i], threshold, err);
        if (rc < 0)
            return em_err_prefix(err, "pair %zu", i);
    }
    size_t bytes;
    if (!em_size_mul(n ? n : 1, sizeof(sp_pair), &bytes))
        return em_err_set(err, EM_ENOMEM, "binary evaluation: %zu pairs", n);
    sp_pair *s = em_malloc(bytes);
    if (!s)
        return em_err_set(err, EM_ENOMEM, "binary evaluation: %zu pairs", n);
    for (size_t i = 0; i < n; i++)
        s[i] = (sp_pair){score[i] == 0 ? 0.0 : score[i], label[i]};
    qsort(s, n, sizeof *s, by_score_desc);
    em__eval_walk w;
    em__eval_walk_init(&w, c.pos, 0, 0);
    for (size_t i = 0; i < n; i++)
        em__eval_walk_add(&w, s[i].score, s[i].label);
    em__eval_walk_close(&w);
    em_free(s);
    em__eval_binary_finish(&c, probabilities, out);
    out->auc_roc = c.pos > 0 && c.neg > 0 ? w.roc / (c.pos * c.neg) : NAN;
    out->auc_pr = c.pos > 0 ? w.pr : NAN;
    return 0;
}

/* ---------------------------------------------------------------- regression */

int em__eval_reg_add(em__eval_reg *a, double pred, double label, em_err *err)
{
    if (!isfinite(pred) || !isfinite(label))
        return em_err_set(err, EM_EINVAL, "regression evaluation: prediction %g, label %g "
                          "(both must be finite)", pred, label);
    double e = pred - label;
    a->n += 1;
    a->sse += e * e;
    a->sae += fabs(e);
    double d = label - a->mean;
    a->mean += d / a->n;
    a->m2 += d * (label - a->mean);
    return 0;
}

void em__eval_reg_merge(em__eval_reg *a, const em__eval_reg *b)
{
    if (b->n == 0)
        return;
    if (a->n == 0) {
        *a = *b;
        return;
    }
    double n = a->n + b->n, d = b->mean - a->mean;
    a->m2 += b->m2 + d * d * a->n * b->n / n;
    a->mean += d * b->n / n;
    a->n = n;
    a->sse += b->sse;
    a->sae += b->sae;
}

void em__eval_reg_finish(const em__eval_reg *a, em_eval_regression *out)
{
    memset(out, 0, sizeof *out);
    out->count = (uint64_t)a->n;
    if (a->n == 0) {
        out->mse = out->rmse = out->mae = out->r2 = NAN;
        return;
    }
    out->mse = a->sse / a->n;
    out->rmse = sqrt(out->mse);
    out->mae = a->sae / a->n;
    /* SST = 0 (constant labels): scikit-learn's r2_score convention, 1 for a perfect fit
     * and 0 otherwise, so the figure stays finite (and printable as JSON). */
    out->r2 = a->m2 > 0 ? 1 - a->sse / a->m2 : a->sse == 0 ? 1 : 0;
}

int em_eval_regression_local(const double *pred, const double *label, size_t n,
                             em_eval_regression *out, em_err *err)
{
    em__eval_reg a = {0};
    for (size_t i = 0; i < n; i++) {
        int rc = em__eval_reg_add(&a, pred[i], label[i], err);
        if (rc < 0)
            return em_err_prefix(err, "pair %zu", i);
    }
    em__eval_reg_finish(&a, out);
    return 0;
}

/* ---------------------------------------------------------------- multiclass */

static bool class_index(double v, uint32_t k, uint32_t *out)
{
    if (!(v >= 0) || v >= (double)k || v != floor(v))
        return false;
    *out = (uint32_t)v;
    return true;
}

int em__eval_conf_add(double *conf, uint32_t k, double pred, double label, em_err *err)
{
    uint32_t p, l;
    if (!class_index(label, k, &l))
        return em_err_set(err, EM_EINVAL, "multiclass evaluation: label %.17g is not a class "
                          "in [0, %u)", label, k);
    if (!class_index(pred, k, &p))
        return em_err_set(err, EM_EINVAL, "multiclass evaluation: prediction %.17g is not a "
                          "class in [0, %u)", pred, k);
    conf[(size_t)l * k + p] += 1;
    return 0;
}

int em__eval_multi_finish(const double *conf, uint32_t k, em_eval_multiclass *out,
                          em_err *err)
{
    memset(out, 0, sizeof *out);
    out->nclasses = k;
    out->confusion = em_calloc(k > 0 ? (size_t)k * k : 1, sizeof(uint64_t));
    if (!out->confusion)
        return em_err_set(err, EM_ENOMEM, "multiclass evaluation: %u classes", k);
    double n = 0, correct = 0, wp = 0, wr = 0, wf = 0;
    for (size_t i = 0; i < (size_t)k * k; i++) {
        out->confusion[i] = (uint64_t)conf[i];
        n += conf[i];
    }
    for (uint32_t c = 0; c < k; c++) {
        double tp = conf[(size_t)c * k + c], lab = 0, pred = 0;
        for (uint32_t j = 0; j < k; j++) {
            lab += conf[(size_t)c * k + j];
            pred += conf[(size_t)j * k + c];
        }
        correct += tp;
        if (lab == 0)
            continue;   /* weight 0 */
        double prec = pred > 0 ? tp / pred : 0, rec = tp / lab;
        double f1 = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
        wp += prec * lab;
        wr += rec * lab;
        wf += f1 * lab;
    }
    out->count = (uint64_t)n;
    out->accuracy = n > 0 ? correct / n : NAN;
    out->weighted_precision = n > 0 ? wp / n : NAN;
    out->weighted_recall = n > 0 ? wr / n : NAN;
    out->weighted_f1 = n > 0 ? wf / n : NAN;
    return 0;
}

static uint32_t classes_seen(const double *pred, const double *label, size_t n)
{
    double mx = -1;
    for (size_t i = 0; i < n; i++) {
        if (label[i] > mx)
            mx = label[i];
        if (pred[i] > mx)
            mx = pred[i];
    }
    return mx >= 0 && mx < EVAL_MAX_CLASSES ? (uint32_t)mx + 1 : 0;
}

int em_eval_multiclass_local(const double *pred, const double *label, size_t n,
                             uint32_t nclasses, em_eval_multiclass *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    uint32_t k = nclasses ? nclasses : classes_seen(pred, label, n);
    if (k == 0 && n > 0)
        k = EVAL_MAX_CLASSES;   /* a bad value: the loop below names it */
    if (k > EVAL_MAX_CLASSES)
        return em_err_set(err, EM_EINVAL, "multiclass evaluation: %u classes (max %u)", k,
                          EVAL_MAX_CLASSES);
    double *conf = em_calloc(k > 0 ? (size_t)k * k : 1, sizeof(double));
    if (!conf)
        return em_err_set(err, EM_ENOMEM, "multiclass evaluation: %u classes", k);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if ((rc = em__eval_conf_add(conf, k, pred[i], label[i], err)) < 0)
            em_err_prefix(err, "pair %zu", i);
    if (rc == 0)
        rc = em__eval_multi_finish(conf, k, out, err);
    em_free(conf);
    return rc;
}

void em_eval_multiclass_destroy(em_eval_multiclass *m)
{
    if (!m)
        return;
    em_free(m->confusion);
    m->confusion = NULL;
}

/* ---------------------------------------------------------------- JSON */

static void set_num(json_t *obj, const char *key, double v)
{
    if (isfinite(v))
        json_object_set_new(obj, key, json_real(v));
}

void em_eval_binary_json(const em_eval_binary *m, json_t *obj)
{
    set_num(obj, "accuracy", m->accuracy);
    set_num(obj, "auc", m->auc_roc);
    set_num(obj, "auc_pr", m->auc_pr);
    set_num(obj, "log_loss", m->log_loss);
    set_num(obj, "precision", m->precision);
    set_num(obj, "recall", m->recall);
    set_num(obj, "f1", m->f1);
    json_object_set_new(obj, "test_count", json_integer((json_int_t)m->count));
}

void em_eval_multiclass_json(const em_eval_multiclass *m, json_t *obj)
{
    set_num(obj, "accuracy", m->accuracy);
    set_num(obj, "weighted_precision", m->weighted_precision);
    set_num(obj, "weighted_recall", m->weighted_recall);
    set_num(obj, "weighted_f1", m->weighted_f1);
    json_t *rows = json_array();
    for (uint32_t i = 0; m->confusion && i < m->nclasses; i++) {
        json_t *row = json_array();
        for (uint32_t j = 0; j < m->nclasses; j++)
            json_array_append_new(
                row, json_integer((json_int_t)m->confusion[(size_t)i * m->nclasses + j]));
        json_array_append_new(rows, row);
    }
    json_object_set_new(obj, "confusion", rows);
    json_object_set_new(obj, "test_count", json_integer((json_int_t)m->count));
}

void em_eval_regression_json(const em_eval_regression *m, json_t *obj)
{
    set_num(obj, "rmse", m->rmse);
    set_num(obj, "mse", m->mse);
    set_num(obj, "mae", m->mae);
    set_num(obj, "r2", m->r2);
    json_object_set_new(obj, "test_count", json_integer((json_int_t)m->count));
}
