/* mllib/tuning/tuning.c - search spaces (each estimator's keys and how their values set
 * its parameters) and the result table (CSV, JSON). The search loop is search.c, the MLP
 * trial task trial_mlp.c, the cross-validated LR and ALS units cv.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/tuning/tuning_int.h"

static const char *const mlp_keys[EM_TUNE_NKEYS] = {
    "hidden", "lr", "batch", "wd", "epochs", "act", "dropout", "optim", "momentum"};
static const char *const lr_keys[EM_TUNE_LR_NKEYS] = {"reg", "elastic", "iter"};
static const char *const als_keys[EM_TUNE_ALS_NKEYS] = {"rank", "lambda", "iter", "alpha"};

static const char *const *est_keys(em_tune_estimator est, uint32_t *n)
{
    switch (est) {
    case EM_TUNE_EST_LR:
        *n = EM_TUNE_LR_NKEYS;
        return lr_keys;
    case EM_TUNE_EST_ALS:
        *n = EM_TUNE_ALS_NKEYS;
        return als_keys;
    default:
        *n = EM_TUNE_NKEYS;
        return mlp_keys;
    }
}

const char *em__tune_key_name(em_tune_estimator est, uint32_t k)
{
    uint32_t n;
    const char *const *names = est_keys(est, &n);
    return k < n ? names[k] : "?";
}

const char *em_tune_status_name(em_tune_status s)
{
    return s == EM_TUNE_OK ? "ok" : s == EM_TUNE_CANCELLED ? "cancelled" : "budget";
}

/* ---------------------------------------------------------------- the space */

/* MLP: sets p's field for key from the value text; EM_EINVAL when it does not parse. */
static int apply_mlp(em_tune_key k, const char *v, em_mlp_params *p)
{
    char *e;
    double x;
    unsigned long u;
    switch (k) {
    case EM_TUNE_HIDDEN: {
        p->nhidden = 0;
        if (!strcmp(v, "0"))
            return 0;
        const char *s = v;
        for (;;) {
            if (*s < '0' || *s > '9')
                return EM_EINVAL;
            u = strtoul(s, &e, 10);
            if (u == 0 || u > EM_MLP_MAX_WIDTH || p->nhidden >= EM_MLP_MAX_LAYERS - 1)
                return EM_EINVAL;
            p->hidden[p->nhidden++] = (uint32_t)u;
            if (*e == 0)
                return 0;
            if (*e != '-')
                return EM_EINVAL;
            s = e + 1;
        }
    }
    case EM_TUNE_BATCH:
    case EM_TUNE_EPOCHS:
        if (*v < '0' || *v > '9')
            return EM_EINVAL;
        u = strtoul(v, &e, 10);
        if (*e || u == 0 || u > (k == EM_TUNE_BATCH ? (1ul << 20) : 100000ul))
            return EM_EINVAL;
        if (k == EM_TUNE_BATCH)
            p->batch = (uint32_t)u;
        else
            p->epochs = (uint32_t)u;
        return 0;
    case EM_TUNE_ACT:
        return em_mlp_act_parse(v, &p->act);
    case EM_TUNE_OPTIM:
        if (!strcmp(v, "adam") || !strcmp(v, "sgd")) {
            p->optim = !strcmp(v, "sgd") ? EM_MLP_SGD : EM_MLP_ADAM;
            return 0;
        }
        return EM_EINVAL;
    default:
        x = strtod(v, &e);
        if (!*v || *e || !isfinite(x) || x < 0)
            return EM_EINVAL;
        if (k == EM_TUNE_LR && x > 0)
            p->lr = x;
        else if (k == EM_TUNE_WD)
            p->weight_decay = x;
        else if (k == EM_TUNE_DROPOUT && x < 1)
            p->dropout = x;
        else if (k == EM_TUNE_MOMENTUM && x < 1)
            p->momentum = x;
        else
            return EM_EINVAL;
        return 0;
    }
}


/* A whole decimal number in [lo, hi]; false otherwise. */
static bool whole(const char *v, unsigned long lo, unsigned long hi, uint32_t *out)
{
    char *e;
    if (*v < '0' || *v > '9')
        return false;
    unsigned long u = strtoul(v, &e, 10);
    if (*e || u < lo || u > hi)
        return false;
    *out = (uint32_t)u;
    return true;
}

/* A finite number in [lo, hi] (lo excluded when open); false otherwise. */
static bool real(const char *v, double lo, bool open, double hi, double *out)
{
    char *e;
    double x = strtod(v, &e);
    if (!*v || *e || !isfinite(x) || x < lo || (open && x == lo) || x > hi)
        return false;
    *out = x;
    return true;
}

static int apply_lr(em_tune_lr_key k, const char *v, em_linear_params *p)
{
    uint32_t u;
    bool ok = false;
    if (k == EM_TUNE_LR_REG)
        ok = real(v, 0, false, 1e6, &p->reg_param);
    else if (k == EM_TUNE_LR_ELASTIC)
        ok = real(v, 0, false, 1, &p->elastic_net);
    else if (k == EM_TUNE_LR_ITER && (ok = whole(v, 1, 100000, &u)))
        p->max_iter = u;
    return ok ? 0 : EM_EINVAL;
}

static int apply_als(em_tune_als_key k, const char *v, em_als_params *p)
{
    uint32_t u;
    bool ok = false;
    if (k == EM_TUNE_ALS_RANK && (ok = whole(v, 1, 1024, &u)))
        p->rank = (int)u;
    else if (k == EM_TUNE_ALS_ITER && (ok = whole(v, 1, 100000, &u)))
        p->iterations = (int)u;
    else if (k == EM_TUNE_ALS_LAMBDA)
        ok = real(v, 0, true, 1e6, &p->lambda);
    else if (k == EM_TUNE_ALS_ALPHA)
        ok = real(v, 0, true, 1e6, &p->alpha);
    return ok ? 0 : EM_EINVAL;
}

int em__tune_apply(em_tune_estimator est, uint32_t k, const char *v, em_tune_trial *t)
{
    switch (est) {
    case EM_TUNE_EST_LR:
        return apply_lr((em_tune_lr_key)k, v, &t->lr);
    case EM_TUNE_EST_ALS:
        return apply_als((em_tune_als_key)k, v, &t->als);
    default:
        return apply_mlp((em_tune_key)k, v, &t->p);
    }
}

void em_tune_space_destroy(em_tune_space *s)
{
    for (uint32_t i = 0; i < s->nkeys; i++)
        for (uint32_t j = 0; j < s->nvals[i]; j++)
            em_free(s->vals[i][j]);
    memset(s, 0, sizeof *s);
}

int em_tune_space_parse(const char *text, em_tune_space *s, em_err *err)
{
    return em_tune_space_parse_est(EM_TUNE_EST_MLP, text, s, err);
}

int em_tune_space_parse_est(em_tune_estimator est, const char *text, em_tune_space *s,
                            em_err *err)
{
    memset(s, 0, sizeof *s);
    s->est = est;
    uint32_t nnames;
    const char *const *names = est_keys(est, &nnames);
    char *dup = em_xstrdup(text), *save = NULL;
    int rc = 0;
    for (char *part = strtok_r(dup, ";", &save); part && rc == 0;
         part = strtok_r(NULL, ";", &save)) {
        while (*part == ' ')
            part++;
        if (!*part)
            continue;
        char *eq = strchr(part, '=');
        if (!eq) {
            rc = em_err_set(err, EM_EINVAL, "space: '%s' is not key=v1,v2,...", part);
            break;
        }
        *eq = 0;
        int k = -1;
        for (uint32_t i = 0; i < nnames; i++)
            if (!strcmp(part, names[i]))
                k = (int)i;
        if (k < 0) {
            char known[128] = "";
            for (uint32_t i = 0; i < nnames; i++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         i ? ", " : "", names[i]);
            rc = em_err_set(err, EM_EINVAL, "space: unknown key '%s' (%s)", part, known);
            break;
        }
        for (uint32_t i = 0; i < s->nkeys; i++)
            if (s->key[i] == (uint32_t)k)
                rc = em_err_set(err, EM_EINVAL, "space: key '%s' given twice", part);
        if (rc < 0)
            break;
        uint32_t slot = s->nkeys++;
        s->key[slot] = (uint32_t)k;
        char *vs = NULL;
        for (char *v = strtok_r(eq + 1, ",", &vs); v; v = strtok_r(NULL, ",", &vs)) {
            em_tune_trial tmp;
            memset(&tmp, 0, sizeof tmp);
            if (s->nvals[slot] == EM_TUNE_MAX_VALUES) {
                rc = em_err_set(err, EM_EINVAL, "space: more than %d values for '%s'",
                                EM_TUNE_MAX_VALUES, part);
                break;
            }
            if (em__tune_apply(est, (uint32_t)k, v, &tmp) < 0) {
                rc = em_err_set(err, EM_EINVAL, "space: bad value '%s' for '%s'", v, part);
                break;
            }
            s->vals[slot][s->nvals[slot]++] = em_xstrdup(v);
        }
        if (rc == 0 && s->nvals[slot] == 0)
            rc = em_err_set(err, EM_EINVAL, "space: no values for '%s'", part);
    }
    if (rc == 0 && s->nkeys == 0)
        rc = em_err_set(err, EM_EINVAL, "space: empty (want key=v1,v2;key=...)");
    em_free(dup);
    if (rc < 0)
        em_tune_space_destroy(s);
    return rc;
}

uint64_t em_tune_space_size(const em_tune_space *s)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < s->nkeys; i++) {
        if (n > UINT64_MAX / s->nvals[i])
            return UINT64_MAX;
        n *= s->nvals[i];
    }
    return n;
}

void em_tune_result_destroy(em_tune_result *r)
{
    for (size_t i = 0; i < r->ntrials; i++)
        em_free(r->trials[i].desc);
    em_free(r->trials);
    em_mlp_model_free(r->model);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- the table */

int em_tune_write_csv(const em_tune_result *r, const char *path, em_err *err)
{
    em_vbuf b;
    em_vbuf_init(&b);
    em_vbuf_printf(&b, "trial,round,params,status,metric,train_loss,epochs,seconds,folds,"
                   "executor\n");
    for (size_t i = 0; i < r->ntrials; i++) {
        const em_tune_trial *t = &r->trials[i];
        em_vbuf_printf(&b, "%u,%u,\"%s\",%s,", t->index, t->round, t->desc,
                       em_tune_status_name(t->status));
        if (t->status == EM_TUNE_OK)
            em_vbuf_printf(&b, "%.17g,%.17g,", t->metric, t->train_loss);
        else
            em_vbuf_printf(&b, ",,");
        em_vbuf_printf(&b, "%u,%.6f,%u,%s\n", t->epochs_run, t->seconds, t->nfolds,
                       t->executor);
    }
    int rc = em_write_file_atomic(path, b.data, b.len, err);
    em_vbuf_destroy(&b);
    return rc;
}

json_t *em_tune_trials_json(const em_tune_result *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->ntrials; i++) {
        const em_tune_trial *t = &r->trials[i];
        json_t *o = json_object();
        json_object_set_new(o, "trial", json_integer(t->index));
        json_object_set_new(o, "round", json_integer(t->round));
        json_object_set_new(o, "params", json_string(t->desc));
        json_object_set_new(o, "status", json_string(em_tune_status_name(t->status)));
        json_object_set_new(o, "metric", t->status == EM_TUNE_OK && isfinite(t->metric)
                                             ? json_real(t->metric) : json_null());
        json_object_set_new(o, "epochs", json_integer(t->epochs_run));
        json_object_set_new(o, "seconds", json_real(t->seconds));
        json_object_set_new(o, "executor", json_string(t->executor));
        if (t->nfolds) {
            json_t *f = json_array();
            for (uint32_t k = 0; k < t->nfolds; k++)
                json_array_append_new(f, json_real(t->fold_metric[k]));
            json_object_set_new(o, "folds", f);
        }
        json_array_append_new(a, o);
    }
    return a;
}
