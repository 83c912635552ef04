/* mllib/mlp/train.c - mini-batch training: optimizers (SGD with momentum, Adam), the
 * learning-rate schedule, one epoch of steps, the validation split and early stopping, and
 * prediction / evaluation in batches. */
#include <math.h>
#include <string.h>

#include "mllib/mlp/mlp_int.h"

#define EVAL_BATCH 1024

void em_mlp_params_defaults(em_mlp_params *p)
{
    if (p->lr <= 0)
        p->lr = p->optim == EM_MLP_SGD ? 0.01 : 1e-3;
    if (p->optim == EM_MLP_SGD && p->momentum <= 0)
        p->momentum = 0.9;
    if (p->beta1 <= 0)
        p->beta1 = 0.9;
    if (p->beta2 <= 0)
        p->beta2 = 0.999;
    if (p->eps <= 0)
        p->eps = 1e-8;
    if (p->batch == 0)
        p->batch = 128;
    if (p->epochs == 0)
        p->epochs = 10;
    if (p->step_epochs == 0)
        p->step_epochs = p->epochs / 3 ? p->epochs / 3 : 1;
    if (p->gamma <= 0)
        p->gamma = 0.1;
}

double em__mlp_lr(const em_mlp_params *p, uint32_t e)
{
    switch (p->sched) {
    case EM_MLP_STEP:
        return p->lr * pow(p->gamma, (double)(e / (p->step_epochs ? p->step_epochs : 1)));
    case EM_MLP_COSINE:
        return p->lr * 0.5 * (1 + cos(M_PI * (double)e / (double)(p->epochs ? p->epochs : 1)));
    default:
        return p->lr;
    }
}

void em__mlp_opt_init(mlp_opt *o, size_t nparams)
{
    o->m1 = em_xcalloc(nparams ? nparams : 1, 4);
    o->m2 = em_xcalloc(nparams ? nparams : 1, 4);
    o->t = 0;
}

void em__mlp_opt_destroy(mlp_opt *o)
{
    em_free(o->m1);
    em_free(o->m2);
    memset(o, 0, sizeof *o);
}

void em__mlp_opt_step(const em_mlp_params *p, double lr, mlp_opt *o, float *w,
                      const float *g, size_t n)
{
    o->t++;
    if (p->optim == EM_MLP_SGD) {
        float mu = (float)p->momentum, r = (float)lr;
        float *v = o->m1;
        for (size_t i = 0; i < n; i++) {
            v[i] = mu * v[i] - r * g[i];
            w[i] += v[i];
        }
        return;
    }
    float b1 = (float)p->beta1, b2 = (float)p->beta2, eps = (float)p->eps;
    /* bias corrections folded into the step: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) */
    double c1 = 1 - pow(p->beta1, (double)o->t), c2 = 1 - pow(p->beta2, (double)o->t);
    float r = (float)(lr * sqrt(c2) / c1), e = (float)(eps * sqrt(c2));
    float *m1 = o->m1, *m2 = o->m2;
    for (size_t i = 0; i < n; i++) {
        m1[i] = b1 * m1[i] + (1 - b1) * g[i];
        m2[i] = b2 * m2[i] + (1 - b2) * g[i] * g[i];
        w[i] -= r * m1[i] / (sqrtf(m2[i]) + e);
    }
}

static void shuffle(uint32_t *perm, size_t n, em_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)em_rng_below(rng, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

double em__mlp_epoch(em_mlp_model *m, mlp_ws *w, mlp_opt *o, const em_mlp_params *p,
                     double lr, const float *X, const float *y, size_t n, const uint8_t *mask,
                     em_rng *rng, uint32_t *perm, float *xb, float *yb)
{
    uint32_t d = m->sizes[0];
    size_t np = em_mlp_nparams(m), bs = p->batch;
    double total = 0;
    shuffle(perm, n, rng);
    for (size_t s = 0; s < n; s += bs) {
        if (p->stop && p->stop(p->stop_ud))
            break;   /* the caller sees the same answer and gives up */
        size_t B = n - s < bs ? n - s : bs;
        for (size_t r = 0; r < B; r++) {
            memcpy(xb + r * d, X + (size_t)perm[s + r] * d, 4 * (size_t)d);
            yb[r] = y[perm[s + r]];
        }
        em__mlp_forward(m, w, xb, B, p->dropout, rng);
        total += em__mlp_backward(m, w, yb, B, p->weight_decay) * (double)B;
        em__mlp_opt_step(p, lr, o, m->params, w->grad, np);
        if (mask)
            for (size_t i = 0; i < np; i++)
                if (!mask[i])
                    m->params[i] = 0;
    }
    return n ? total / (double)n : 0;
}

void em_mlp_predict(const em_mlp_model *m, const float *X, size_t n, float *out, float *probs)
{
    mlp_ws w;
    em__mlp_ws_init(&w, m, n < EVAL_BATCH ? (n ? n : 1) : EVAL_BATCH, false);
    uint32_t d = m->sizes[0], k = m->sizes[m->nlayers];
    for (size_t s = 0; s < n; s += EVAL_BATCH) {
        size_t B = n - s < EVAL_BATCH ? n - s : EVAL_BATCH;
        em__mlp_forward(m, &w, X + s * d, B, 0, NULL);
        const float *o = w.a[m->nlayers];
        if (probs)
            memcpy(probs + s * k, o, 4 * B * k);
        for (size_t r = 0; r < B; r++) {
            if (m->regression) {
                out[s + r] = o[r];
                continue;
            }
            uint32_t best = 0;
            for (uint32_t j = 1; j < k; j++)
                if (o[r * k + j] > o[r * k + best])
                    best = j;
            out[s + r] = (float)best;
        }
    }
    em__mlp_ws_destroy(&w);
}

double em_mlp_evaluate(const em_mlp_model *m, const float *X, const float *y, size_t n,
                       double *loss)
{
    mlp_ws w;
    em__mlp_ws_init(&w, m, n < EVAL_BATCH ? (n ? n : 1) : EVAL_BATCH, false);
    uint32_t d = m->sizes[0], k = m->sizes[m->nlayers];
    double hits = 0, se = 0, ce = 0;
    for (size_t s = 0; s < n; s += EVAL_BATCH) {
        size_t B = n - s < EVAL_BATCH ? n - s : EVAL_BATCH;
        em__mlp_forward(m, &w, X + s * d, B, 0, NULL);
        const float *o = w.a[m->nlayers];
        for (size_t r = 0; r < B; r++) {
            float yr = y[s + r];
            if (m->regression) {
                double e = (double)o[r] - yr;
                se += e * e;
                continue;
            }
            uint32_t best = 0, c = (uint32_t)yr;
            for (uint32_t j = 1; j < k; j++)
                if (o[r * k + j] > o[r * k + best])
                    best = j;
            hits += best == c;
            double pc = c < k ? (double)o[r * k + c] : 0;
            ce -= log(pc > 1e-30 ? pc : 1e-30);
        }
    }
    em__mlp_ws_destroy(&w);
    double dn = n ? (double)n : 1;
    if (loss)
        *loss = m->regression ? se / dn : ce / dn;
    return m->regression ? sqrt(se / dn) : hits / dn;
}

bool em_mlp_better(const em_mlp_model *m, double a, double b)
{
    if (isnan(b))
        return !isnan(a);
    return m->regression ? a < b : a > b;
}

static int check_params(const em_mlp_params *p, em_err *err)
{
    if (!(p->lr > 0) || !isfinite(p->lr))
        return em_err_set(err, EM_EINVAL, "mlp: learning rate %g (> 0)", p->lr);
    if (!(p->dropout >= 0 && p->dropout < 1))
        return em_err_set(err, EM_EINVAL, "mlp: dropout %g ([0, 1))", p->dropout);
    if (!(p->weight_decay >= 0) || !isfinite(p->weight_decay))
        return em_err_set(err, EM_EINVAL, "mlp: weight decay %g (>= 0)", p->weight_decay);
    if (!(p->valid_frac >= 0 && p->valid_frac < 1))
        return em_err_set(err, EM_EINVAL, "mlp: validation fraction %g ([0, 1))",
                          p->valid_frac);
    if (!(p->momentum >= 0 && p->momentum < 1) || !(p->beta1 < 1) || !(p->beta2 < 1))
        return em_err_set(err, EM_EINVAL, "mlp: momentum/beta out of [0, 1)");
    if (p->batch > (1u << 20) || p->epochs > 100000)
        return em_err_set(err, EM_EINVAL, "mlp: batch %u or epochs %u too large", p->batch,
                          p->epochs);
    if ((unsigned)p->act > EM_MLP_TANH || (unsigned)p->optim > EM_MLP_SGD ||
        (unsigned)p->sched > EM_MLP_COSINE)
        return em_err_set(err, EM_EINVAL, "mlp: bad activation, optimizer or schedule");
    return 0;
}

/* The validation rows: xv, or p->valid_rows' (once; *xv keeps them) when they come late. */
static int valid_x(const em_mlp_params *p, const float **xv, em_err *err)
{
    if (*xv || !p->valid_rows)
        return *xv ? 0 : em_err_set(err, EM_EINVAL, "mlp: no validation rows");
    if (!(*xv = p->valid_rows(p->valid_rows_ud, err)))
        return err->code < 0 ? err->code : em_err_set(err, EM_EINVAL, "mlp: no validation rows");
    return 0;
}

/* The training loop proper on (X, y) with validation (xv, yv, nv), from m, in place.
 * EM_ECANCELED when p->stop said so (m then holds a partly trained network), with err
 * unset; another error (late validation rows that failed) with err set. */
static int fit(em_mlp_model *m, const em_mlp_params *p, const uint8_t *mask, const float *X,
               const float *y, size_t n, const float *xv, const float *yv, size_t nv,
               em_err *err)
{
    uint32_t d = m->sizes[0];
    size_t np = em_mlp_nparams(m), bs = p->batch < n ? p->batch : n;
    mlp_ws w;
    mlp_opt o;
    em__mlp_ws_init(&w, m, bs, p->dropout > 0);
    em__mlp_opt_init(&o, np);
    uint32_t *perm = em_xmalloc(4 * n);
    float *xb = em_xmalloc(4 * bs * d), *yb = em_xmalloc(4 * bs);
    float *best = nv && p->patience ? em_xmalloc(4 * np) : NULL;
    em_rng rng;
    em_rng_seed(&rng, p->seed ^ 0x6d6c70u);
    double t0 = em_now_s(), bestv = NAN;
    uint32_t since = 0;
    int rc = 0;
    /* every epoch's validation pass, or (valid_at_end) only the one after the loop */
    bool each = nv && (!p->valid_at_end || best || p->progress);
    m->best_epoch = 0;
    for (uint32_t e = 0; e < p->epochs; e++) {
        m->train_loss = em__mlp_epoch(m, &w, &o, p, em__mlp_lr(p, e), X, y, n, mask, &rng, perm,
                                      xb, yb);
        m->epochs_run = e + 1;
        if (p->stop && p->stop(p->stop_ud)) {
            rc = EM_ECANCELED;
            break;
        }
        if (each && (rc = valid_x(p, &xv, err)) < 0)
            break;
        double v = each ? em_mlp_evaluate(m, xv, yv, nv, NULL) : NAN;
        if (each && em_mlp_better(m, v, bestv)) {
            bestv = v;
            m->best_epoch = e + 1;
            since = 0;
            if (best)
                memcpy(best, m->params, 4 * np);
        } else if (each) {
            since++;
        }
        if (p->progress)
            p->progress(p->progress_ud, e + 1, m->train_loss, v, em_now_s() - t0);
        if (!isfinite(m->train_loss))
            break;
        if (best && since >= p->patience)
            break;
    }
    if (best && m->best_epoch) {
        memcpy(m->params, best, 4 * np);
    }
    m->valid_metric = bestv;
    if (!best && nv && rc == 0 && (rc = valid_x(p, &xv, err)) == 0)
        m->valid_metric = em_mlp_evaluate(m, xv, yv, nv, NULL);
    m->train_s = em_now_s() - t0;
    em_free(best);
    em_free(perm);
    em_free(xb);
    em_free(yb);
    em__mlp_opt_destroy(&o);
    em__mlp_ws_destroy(&w);
    return rc;
}

/* Splits off the validation rows (seeded), or borrows the given ones. Owned copies in *own. */
typedef struct split {
    const float *X, *y, *xv, *yv;
    size_t n, nv;
    float *own;
} split;

static void make_split(const float *X, const float *y, size_t n, uint32_t d, const float *xv,
                       const float *yv, size_t nv, const em_mlp_params *p, split *s)
{
    memset(s, 0, sizeof *s);
    *s = (split){X, y, xv, yv, n, nv, NULL};
    if (nv || p->valid_frac <= 0)
        return;
    size_t hold = (size_t)((double)n * p->valid_frac);
    if (hold == 0 || hold >= n)
        return;
    uint32_t *perm = em_xmalloc(4 * n);
    em_rng rng;
    em_rng_seed(&rng, p->seed ^ 0x73706c6974u);
    shuffle(perm, n, &rng);
    s->own = em_xmalloc(4 * n * ((size_t)d + 1));
    float *tx = s->own, *ty = tx + n * d;
    for (size_t i = 0; i < n; i++) {
        memcpy(tx + i * d, X + (size_t)perm[i] * d, 4 * (size_t)d);
        ty[i] = y[perm[i]];
    }
    em_free(perm);
    s->X = tx;
    s->y = ty;
    s->n = n - hold;
    s->xv = tx + s->n * d;
    s->yv = ty + s->n;
    s->nv = hold;
}

int em_mlp_train_local(const float *X, const float *y, size_t n, uint32_t d,
                       const float *xv, const float *yv, size_t nv, const em_mlp_params *pin,
                       const em_mlp_model *init, em_mlp_model **out, em_err *err)
{
    *out = NULL;
    em_mlp_params p = *pin;
    em_mlp_params_defaults(&p);
    int rc = check_params(&p, err);
    if (rc < 0)
        return rc;
    if (n == 0)
        return em_err_set(err, EM_EINVAL, "mlp: no training rows");
    uint32_t k = 1, sizes[EM_MLP_MAX_LAYERS + 1], nl;
    if (!p.regression) {
        if ((rc = em__mlp_classes(y, n, &k, err)) < 0)
            return rc;
        if (nv) {
            uint32_t kv;
            if ((rc = em__mlp_classes(yv, nv, &kv, err)) < 0)
                return em_err_prefix(err, "validation set"), rc;
            k = kv > k ? kv : k;
        }
        if (p.nclasses) {
            if (k > p.nclasses)
                return em_err_set(err, EM_EINVAL, "mlp: label %u with %u classes", k - 1,
                                  p.nclasses);
            k = p.nclasses;
        }
        if (k < 2)
            k = 2;
    }
    if ((rc = em__mlp_shape(&p, d, k, sizes, &nl, err)) < 0)
        return rc;
    em_mlp_model *m;
    if (init) {
        if (init->nlayers != nl || memcmp(init->sizes, sizes, 4 * ((size_t)nl + 1)) ||
            init->regression != p.regression)
            return em_err_set(err, EM_EINVAL, "mlp: the starting model has another shape");
        m = em_mlp_model_clone(init);
    } else {
        m = em_mlp_model_new(sizes, nl, p.act, p.regression, p.seed);
    }
    split s;
    make_split(X, y, n, d, xv, yv, nv, &p, &s);
    rc = fit(m, &p, NULL, s.X, s.y, s.n, s.xv, s.yv, s.nv, err);
    em_free(s.own);
    if (rc < 0) {
        em_mlp_model_free(m);
        return rc == EM_ECANCELED ? em_err_set(err, rc, "mlp: training stopped (cancelled)")
                                  : rc;
    }
    *out = m;
    return 0;
}

int em_mlp_retrain_masked(em_mlp_model *m, const uint8_t *mask, const float *X, const float *y,
                          size_t n, const float *xv, const float *yv, size_t nv,
                          const em_mlp_params *pin, em_err *err)
{
    em_mlp_params p = *pin;
    em_mlp_params_defaults(&p);
    int rc = check_params(&p, err);
    if (rc < 0)
        return rc;
    if (n == 0)
        return em_err_set(err, EM_EINVAL, "mlp: no training rows");
    split s;
    make_split(X, y, n, m->sizes[0], xv, yv, nv, &p, &s);
    rc = fit(m, &p, mask, s.X, s.y, s.n, s.xv, s.yv, s.nv, err);
    em_free(s.own);
    if (rc == EM_ECANCELED)
        return em_err_set(err, rc, "mlp: retraining stopped (cancelled)");
    return rc < 0 ? rc : 0;
}

void em_mlp_standardize_fit(const float *X, size_t n, uint32_t d, float *mu, float *sd)
{
    double *s = em_xcalloc(2 * (size_t)d, 8), *s2 = s + d;
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < d; j++) {
            double v = X[i * d + j];
            s[j] += v;
            s2[j] += v * v;
        }
    for (uint32_t j = 0; j < d; j++) {
        double m = n ? s[j] / (double)n : 0, var = n ? s2[j] / (double)n - m * m : 0;
        mu[j] = (float)m;
        sd[j] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
    }
    em_free(s);
}

void em_mlp_standardize_apply(float *X, size_t n, uint32_t d, const float *mu, const float *sd)
{
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < d; j++)
            X[i * d + j] = (X[i * d + j] - mu[j]) / sd[j];
}

void em_mlp_fold_standardize(em_mlp_model *m, const float *mu, const float *sd)
{
    uint32_t in = m->sizes[0], out = m->sizes[1];
    float *W = m->params, *b = W + (size_t)in * out;
    for (uint32_t i = 0; i < in; i++)
        for (uint32_t j = 0; j < out; j++) {
            W[(size_t)i * out + j] /= sd[i];
            b[j] -= mu[i] * W[(size_t)i * out + j];
        }
}
