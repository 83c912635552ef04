/* mllib/mlp/net.c - the network itself: shape, initialization, the forward pass (one SGEMM
 * per dense layer), softmax / cross-entropy and MSE, and the backward pass (two SGEMMs per
 * layer: A^T delta for the weights, delta W^T for the layer below).
 *
 * DERIVATIVES are taken from the activation's output h (no pre-activation is kept):
 * ReLU h > 0; leaky ReLU h > 0 ? 1 : 0.01 (the sign of h is that of z); sigmoid h (1 - h);
 * tanh 1 - h^2. Softmax + cross-entropy gives delta = (p - onehot(y)) / B at the output;
 * regression's objective is half the mean squared error, delta = (yhat - y) / B. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "mllib/mlp/mlp_int.h"

#define LEAKY 0.01f

size_t em_mlp_layer_offset(const em_mlp_model *m, uint32_t l)
{
    size_t off = 0;
    for (uint32_t i = 0; i < l && i < m->nlayers; i++)
        off += (size_t)m->sizes[i] * m->sizes[i + 1] + m->sizes[i + 1];
    return off;
}

size_t em_mlp_nparams(const em_mlp_model *m)
{
    return em_mlp_layer_offset(m, m->nlayers);
}

void em_mlp_model_free(em_mlp_model *m)
{
    if (!m)
        return;
    em_free(m->params);
    em_free(m);
}

em_mlp_model *em_mlp_model_clone(const em_mlp_model *m)
{
    em_mlp_model *c = em_xmalloc(sizeof *c);
    *c = *m;
    size_t n = em_mlp_nparams(m);
    c->params = em_xmalloc(4 * (n ? n : 1));
    memcpy(c->params, m->params, 4 * n);
    return c;
}

em_mlp_model *em_mlp_model_new(const uint32_t *sizes, uint32_t nlayers, em_mlp_act act,
                               bool regression, uint64_t seed)
{
    em_mlp_model *m = em_xcalloc(1, sizeof *m);
    m->nlayers = nlayers;
    memcpy(m->sizes, sizes, 4 * ((size_t)nlayers + 1));
    m->act = act;
    m->regression = regression;
    size_t n = em_mlp_nparams(m);
    m->params = em_xcalloc(n ? n : 1, 4);
    em_rng rng;
    em_rng_seed(&rng, seed);
    for (uint32_t l = 0; l < nlayers; l++) {
        float *w = m->params + em_mlp_layer_offset(m, l);
        size_t in = sizes[l], out = sizes[l + 1];
        bool last = l + 1 == nlayers;
        if (!last && (act == EM_MLP_RELU || act == EM_MLP_LEAKY)) {
            double sd = sqrt(2.0 / (double)in);   /* He et al. 2015 */
            for (size_t i = 0; i < in * out; i++)
                w[i] = (float)(sd * em_rng_gaussian(&rng));
        } else {
            double a = sqrt(6.0 / (double)(in + out));   /* Glorot & Bengio 2010 */
            for (size_t i = 0; i < in * out; i++)
                w[i] = (float)(a * (2 * em_rng_double(&rng) - 1));
        }
    }
    return m;
}

static uint32_t max_width(const em_mlp_model *m)
{
    uint32_t w = 1;
    for (uint32_t l = 0; l <= m->nlayers; l++)
        w = m->sizes[l] > w ? m->sizes[l] : w;
    return w;
}

void em__mlp_ws_init(mlp_ws *w, const em_mlp_model *m, size_t cap, bool dropout)
{
    memset(w, 0, sizeof *w);
    w->cap = cap;
    w->dropout = dropout;
    for (uint32_t l = 1; l <= m->nlayers; l++) {
        w->a[l] = em_xmalloc(4 * cap * m->sizes[l]);
        w->h[l] = w->a[l];
        if (dropout && l < m->nlayers) {
            w->h[l] = em_xmalloc(4 * cap * m->sizes[l]);
            w->mask[l] = em_xmalloc(4 * cap * m->sizes[l]);
        }
    }
    size_t mw = max_width(m);
    w->d1 = em_xmalloc(4 * cap * mw);
    w->d2 = em_xmalloc(4 * cap * mw);
    size_t np = em_mlp_nparams(m);
    w->grad = em_xmalloc(4 * (np ? np : 1));
}

void em__mlp_ws_destroy(mlp_ws *w)
{
    for (uint32_t l = 0; l <= EM_MLP_MAX_LAYERS; l++) {
        if (w->h[l] != w->a[l])
            em_free(w->h[l]);
        em_free(w->a[l]);
        em_free(w->mask[l]);
    }
    em_free(w->d1);
    em_free(w->d2);
    em_free(w->grad);
    memset(w, 0, sizeof *w);
}

static void activate(em_mlp_act act, float *z, size_t n)
{
    switch (act) {
    case EM_MLP_RELU:
        for (size_t i = 0; i < n; i++)
            z[i] = z[i] > 0 ? z[i] : 0;
        break;
    case EM_MLP_LEAKY:
        for (size_t i = 0; i < n; i++)
            z[i] = z[i] > 0 ? z[i] : LEAKY * z[i];
        break;
    case EM_MLP_SIGMOID:
        for (size_t i = 0; i < n; i++)
            z[i] = 1.0f / (1.0f + expf(-z[i]));
        break;
    case EM_MLP_TANH:
        for (size_t i = 0; i < n; i++)
            z[i] = tanhf(z[i]);
        break;
    }
}

/* d *= f'(z) given h = f(z). */
static void act_grad(em_mlp_act act, const float *h, float *d, size_t n)
{
    switch (act) {
    case EM_MLP_RELU:
        for (size_t i = 0; i < n; i++)
            d[i] = h[i] > 0 ? d[i] : 0;
        break;
    case EM_MLP_LEAKY:
        for (size_t i = 0; i < n; i++)
            d[i] = h[i] > 0 ? d[i] : LEAKY * d[i];
        break;
    case EM_MLP_SIGMOID:
        for (size_t i = 0; i < n; i++)
            d[i] *= h[i] * (1 - h[i]);
        break;
    case EM_MLP_TANH:
        for (size_t i = 0; i < n; i++)
            d[i] *= 1 - h[i] * h[i];
        break;
    }
}

static void softmax_rows(float *z, size_t B, size_t k)
{
    for (size_t r = 0; r < B; r++) {
        float *p = z + r * k, mx = p[0], s = 0;
        for (size_t j = 1; j < k; j++)
            mx = p[j] > mx ? p[j] : mx;
        for (size_t j = 0; j < k; j++)
            s += (p[j] = expf(p[j] - mx));
        float inv = 1 / s;
        for (size_t j = 0; j < k; j++)
            p[j] *= inv;
    }
}

void em__mlp_forward(const em_mlp_model *m, mlp_ws *w, const float *X, size_t B,
                     double dropout, em_rng *rng)
{
    w->a0 = X;
    const float *in = X;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        int ni = (int)m->sizes[l], no = (int)m->sizes[l + 1];
        const float *W = m->params + em_mlp_layer_offset(m, l);
        const float *b = W + (size_t)ni * no;
        float *z = w->h[l + 1];
        for (size_t r = 0; r < B; r++)
            memcpy(z + r * no, b, 4 * (size_t)no);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, no, ni, 1.0f, in, ni, W,
                    no, 1.0f, z, no);
        size_t cnt = B * (size_t)no;
        if (l + 1 < m->nlayers) {
            activate(m->act, z, cnt);
            if (w->mask[l + 1]) {
                float *mk = w->mask[l + 1], *a = w->a[l + 1];
                float keep = (float)(1 / (1 - dropout));
                for (size_t i = 0; i < cnt; i++) {
                    mk[i] = dropout > 0 && em_rng_double(rng) < dropout ? 0.0f : keep;
                    if (dropout <= 0)
                        mk[i] = 1.0f;
                    a[i] = z[i] * mk[i];
                }
            }
        } else if (!m->regression) {
            softmax_rows(z, B, (size_t)no);
        }
        in = w->a[l + 1];
    }
}

double em__mlp_backward(const em_mlp_model *m, mlp_ws *w, const float *y, size_t B,
                        double wd)
{
    uint32_t L = m->nlayers, k = m->sizes[L];
    const float *out = w->a[L];
    float *delta = w->d1, *other = w->d2;
    double loss = 0;
    float invb = 1.0f / (float)B;
    if (m->regression) {
        for (size_t r = 0; r < B; r++) {
            double e = (double)out[r] - (double)y[r];
            loss += 0.5 * e * e;
            delta[r] = (float)e * invb;
        }
    } else {
        for (size_t r = 0; r < B; r++) {
            uint32_t c = (uint32_t)y[r];
            const float *p = out + r * k;
            float *d = delta + r * k;
            for (uint32_t j = 0; j < k; j++)
                d[j] = p[j] * invb;
            d[c] -= invb;
            loss -= log(p[c] > 1e-30f ? (double)p[c] : 1e-30);
        }
    }
    loss /= (double)B;
    for (uint32_t l = L; l-- > 0;) {
        int ni = (int)m->sizes[l], no = (int)m->sizes[l + 1];
        size_t off = em_mlp_layer_offset(m, l);
        const float *W = m->params + off;
        float *gW = w->grad + off, *gb = gW + (size_t)ni * no;
        const float *in = l ? w->a[l] : w->a0;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, no, (int)B, 1.0f, in, ni, delta,
                    no, 0.0f, gW, no);
        if (wd > 0) {
            double s = 0;
            for (size_t i = 0; i < (size_t)ni * no; i++) {
                gW[i] += (float)wd * W[i];
                s += (double)W[i] * W[i];
            }
            loss += 0.5 * wd * s;
        }
        memset(gb, 0, 4 * (size_t)no);
        for (size_t r = 0; r < B; r++) {
            const float *d = delta + r * no;
            for (int j = 0; j < no; j++)
                gb[j] += d[j];
        }
        if (l == 0)
            break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, ni, no, 1.0f, delta, no, W,
                    no, 0.0f, other, ni);
        size_t cnt = B * (size_t)ni;
        if (w->mask[l])
            for (size_t i = 0; i < cnt; i++)
                other[i] *= w->mask[l][i];
        act_grad(m->act, w->h[l], other, cnt);
        float *t = delta;
        delta = other;
        other = t;
    }
    return loss;
}

int em__mlp_shape(const em_mlp_params *p, uint32_t d, uint32_t k, uint32_t *sizes,
                  uint32_t *nlayers, em_err *err)
{
    if (d == 0 || d > EM_MLP_MAX_WIDTH)
        return em_err_set(err, EM_EINVAL, "mlp: %u input features (1..%u)", d,
                          EM_MLP_MAX_WIDTH);
    if (p->nhidden >= EM_MLP_MAX_LAYERS)
        return em_err_set(err, EM_EINVAL, "mlp: %u hidden layers (at most %u)", p->nhidden,
                          EM_MLP_MAX_LAYERS - 1);
    if (k == 0 || k > EM_MLP_MAX_WIDTH)
        return em_err_set(err, EM_EINVAL, "mlp: %u outputs (1..%u)", k, EM_MLP_MAX_WIDTH);
    sizes[0] = d;
    uint64_t np = 0;
    for (uint32_t i = 0; i < p->nhidden; i++) {
        if (p->hidden[i] == 0 || p->hidden[i] > EM_MLP_MAX_WIDTH)
            return em_err_set(err, EM_EINVAL, "mlp: hidden layer %u has %u units (1..%u)",
                              i + 1, p->hidden[i], EM_MLP_MAX_WIDTH);
        sizes[i + 1] = p->hidden[i];
    }
    sizes[p->nhidden + 1] = k;
    for (uint32_t i = 0; i <= p->nhidden; i++)
        np += (uint64_t)sizes[i] * sizes[i + 1] + sizes[i + 1];
    if (np > ((uint64_t)1 << 28))
        return em_err_set(err, EM_EINVAL, "mlp: %llu parameters (at most 2^28)",
                          (unsigned long long)np);
    *nlayers = p->nhidden + 1;
    return 0;
}

int em__mlp_classes(const float *y, size_t n, uint32_t *k, em_err *err)
{
    float mx = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(y[i] >= 0) || y[i] != floorf(y[i]) || y[i] >= (float)EM_MLP_MAX_WIDTH)
            return em_err_set(err, EM_EINVAL,
                              "mlp: row %zu has label %g; classification wants 0..K-1", i + 1,
                              (double)y[i]);
        mx = y[i] > mx ? y[i] : mx;
    }
    *k = (uint32_t)mx + 1;
    return 0;
}

static const char *const act_names[] = {"relu", "leaky_relu", "sigmoid", "tanh"};

int em_mlp_act_parse(const char *s, em_mlp_act *out)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, act_names[i])) {
            *out = (em_mlp_act)i;
            return 0;
        }
    return EM_EINVAL;
}

const char *em_mlp_act_name(em_mlp_act a)
{
    return (unsigned)a < 4 ? act_names[a] : "?";
}
