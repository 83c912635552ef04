/* mllib/tuning/tuning.h - distributed hyper-parameter search: for MLPs (hidden sizes,
 * learning rate, batch size, weight decay, epochs, activation, dropout, optimizer,
 * momentum), logistic regression (regularization, elastic-net mix, iterations) and ALS
 * (rank, lambda, iterations, alpha) with k-fold cross-validation; explored by grid, seeded
 * random sampling or successive halving.
 *
 * HOW A SEARCH RUNS: a round's trials are units of work ((configuration, fold) pairs),
 * each run as its own job under its own job group (em_set_job_group) by a pool of driver
 * threads, so every result reaches the driver (and the on_unit callback: the live table)
 * as soon as its job ends, and the driver can cancel any of them (em_cancel_job_group).
 *   MLP (em_tune_run): the training and validation sets are broadcast once (dense float
 *   blocks: u64 n, u32 d, u32 0, then n x d floats, then n floats of labels); a trial is a
 *   one-partition job whose map_partitions task trains the network single-threaded
 *   (OpenBLAS with one thread: the cores are the trials') and emits one record: metric,
 *   seconds, executor (host:pid) and weights. As many trials run at once as the context
 *   has task slots (em_context_default_parallelism). A failed or killed trial is a failed
 *   task, retried by the engine (ember.task.maxFailures): exactly one result per trial.
 *   LR and ALS (em_tune_lr_cv, em_tune_als_cv): a unit is one (configuration, fold) fit with
 *   the estimator's own distributed trainer (em_logistic_train, em_als_train), one unit at
 *   a time: every fit already spreads each of its passes over all executor cores, the rows
 *   stay cached on the executors between fits, and ALS allows one training per context at
 *   a time (docs/mllib-tuning.md weighs this against trials as tasks). Folds are seeded and
 *   disjoint: row j of partition p (LR) or rating i (ALS) is in fold
 *   splitmix64(seed ^ position) mod K. A configuration's metric is the mean over its folds.
 * SUCCESSIVE HALVING (Jamieson & Talwalkar 2016): round r of R trains the survivors with
 * budget * eta^(r-R+1) of the budget key (MLP epochs, LR/ALS iterations; at least 1) and
 * keeps the best ceil(n / eta). A round ends early once its outcome is decided: when no
 * unfinished configuration could enter the kept set even at the metric's best possible
 * value (accuracy or AUC 1, RMSE or log-loss 0; ties go to the lower index), the rest of
 * the round's jobs are cancelled. Any search may also give each unit a time budget
 * (trial_budget_s): a unit that runs longer is cancelled and its configuration dropped.
 * Trials are deterministic: a trial's seed is the search seed, so its result does not
 * depend on where, when or how often it ran.
 * THREADS: em_tune_run, em_tune_lr_cv, em_tune_als_cv on a driver thread of their context
 * (they start and join their own threads); the callbacks on that same thread; the rest
 * anywhere. */
#ifndef EMBER_MLLIB_TUNING_TUNING_H
#define EMBER_MLLIB_TUNING_TUNING_H

#include <jansson.h>
#include <stdio.h>

#include "mllib/als/als.h"
#include "mllib/linear/linear.h"
#include "mllib/mlp/mlp.h"

#define EM_TUNE_MAX_VALUES 64     /* values of one key */
#define EM_TUNE_MAX_TRIALS 100000
#define EM_TUNE_MAX_FOLDS 20

/* What is searched; each estimator has its own keys. */
typedef enum em_tune_estimator {
    EM_TUNE_EST_MLP = 0,
    EM_TUNE_EST_LR = 1,
    EM_TUNE_EST_ALS = 2,
} em_tune_estimator;

typedef enum em_tune_key {      /* MLP keys */
    EM_TUNE_HIDDEN = 0,   /* "256-128" = two hidden layers; "0" = none */
    EM_TUNE_LR,
    EM_TUNE_BATCH,
    EM_TUNE_WD,
    EM_TUNE_EPOCHS,
    EM_TUNE_ACT,          /* relu, leaky_relu, sigmoid, tanh */
    EM_TUNE_DROPOUT,
    EM_TUNE_OPTIM,        /* adam, sgd */
    EM_TUNE_MOMENTUM,
    EM_TUNE_NKEYS         /* the most keys of any estimator */
} em_tune_key;

typedef enum em_tune_lr_key {   /* logistic regression keys (em_linear_params) */
    EM_TUNE_LR_REG = 0,   /* reg_param >= 0 */
    EM_TUNE_LR_ELASTIC,   /* elastic_net in [0, 1] */
    EM_TUNE_LR_ITER,      /* max_iter >= 1 */
    EM_TUNE_LR_NKEYS
} em_tune_lr_key;

typedef enum em_tune_als_key {  /* ALS keys (em_als_params) */
    EM_TUNE_ALS_RANK = 0, /* 1..1024 */
    EM_TUNE_ALS_LAMBDA,   /* > 0 */
    EM_TUNE_ALS_ITER,     /* >= 1 */
    EM_TUNE_ALS_ALPHA,    /* implicit confidence, > 0 */
    EM_TUNE_ALS_NKEYS
} em_tune_als_key;

/* A parsed space: for each key used (an index into the estimator's keys), its values as
 * given (strings, checked). */
typedef struct em_tune_space {
    em_tune_estimator est;
    uint32_t nkeys;
    uint32_t key[EM_TUNE_NKEYS];
    uint32_t nvals[EM_TUNE_NKEYS];
    char *vals[EM_TUNE_NKEYS][EM_TUNE_MAX_VALUES];
} em_tune_space;

/* "key=v1,v2;key=v3" with the estimator's keys (MLP: hidden, lr, batch, wd, epochs, act,
 * dropout, optim, momentum; LR: reg, elastic, iter; ALS: rank, lambda, iter, alpha).
 * EM_EINVAL naming the key or value. em_tune_space_destroy frees it. em_tune_space_parse
 * is em_tune_space_parse_est for the MLP. */
int em_tune_space_parse(const char *text, em_tune_space *s, em_err *err);
int em_tune_space_parse_est(em_tune_estimator est, const char *text, em_tune_space *s,
                            em_err *err);
void em_tune_space_destroy(em_tune_space *s);
/* Number of grid points (saturates at UINT64_MAX). */
uint64_t em_tune_space_size(const em_tune_space *s);

typedef enum em_tune_method {
    EM_TUNE_GRID = 0,
    EM_TUNE_RANDOM = 1,     /* n trials, each key's value drawn uniformly (seeded) */
    EM_TUNE_HALVING = 2,    /* grid points, successive halving */
} em_tune_method;

typedef enum em_tune_status {
    EM_TUNE_OK = 0,
    EM_TUNE_CANCELLED = 1,  /* its round was decided before it finished (or started) */
    EM_TUNE_BUDGET = 2,     /* ran past trial_budget_s and was cancelled */
} em_tune_status;
const char *em_tune_status_name(em_tune_status s);   /* "ok", "cancelled", "budget" */

typedef struct em_tune_trial {
    uint32_t index;          /* 0-based configuration number */
    uint32_t round;          /* 0 for grid/random; halving round */
    char *desc;              /* "hidden=64;lr=0.01" (owned) */
    em_mlp_params p;         /* MLP: the configuration */
    em_linear_params lr;     /* LR: the configuration */
    em_als_params als;       /* ALS: the configuration (callbacks NULL) */
    /* result */
    em_tune_status status;
    double metric;           /* MLP: validation accuracy or RMSE; LR/ALS: mean over folds */
    double train_loss, seconds;   /* seconds: summed over folds */
    uint32_t epochs_run;     /* MLP epochs; LR iterations (fold 0); ALS iterations */
    uint32_t nfolds;         /* LR/ALS: folds with a metric in fold_metric */
    double fold_metric[EM_TUNE_MAX_FOLDS];
    char executor[64];       /* MLP: "host:pid" of the process that ran it; LR/ALS:
                                "distributed" */
} em_tune_trial;

/* One finished unit of work, as the live table shows it. */
typedef struct em_tune_unit {
    uint32_t trial, round, fold;
    em_tune_status status;
    double metric, seconds;
    uint32_t epochs;
    char executor[64];
} em_tune_unit;

typedef struct em_tune_opts {
    em_tune_method method;
    uint32_t random_trials;  /* RANDOM: trial count */
    uint32_t eta;            /* HALVING: 0 = 3 */
    uint64_t seed;
    em_mlp_params base;      /* MLP: values for keys the space leaves out */
    uint32_t width;          /* units at once: 0 = MLP: twice the default parallelism (one
                                unit per core running, one queued: its job is set up while
                                the core is busy), or the default parallelism with a
                                trial_budget_s (a queued unit's clock would run); LR/ALS 1 */
    double trial_budget_s;   /* > 0: cancel a unit running longer than this */
    /* optional, on the calling thread: each unit as its result arrives (the live table),
     * and each round's configurations once it ends (t[i].status says which finished) */
    void (*on_unit)(void *ud, const em_tune_trial *t, const em_tune_unit *u);
    void (*on_round)(void *ud, uint32_t round, const em_tune_trial *t, size_t n);
    void *ud;
} em_tune_opts;

typedef struct em_tune_result {
    em_tune_trial *trials;   /* every configuration of every round, in rounds then index
                                order (cancelled ones too, with their status) */
    size_t ntrials;
    size_t best;             /* index into trials */
    em_mlp_model *model;     /* MLP: the best trial's network (owned); NULL for LR/ALS */
    uint32_t rounds;
    uint64_t units_run, units_cancelled;
} em_tune_result;
void em_tune_result_destroy(em_tune_result *r);

/* The MLP search. X/y (n x d) train, xv/yv (nv rows) validate: both must be non-empty. */
int em_tune_run(em_context *sc, const em_tune_space *s, const em_tune_opts *o, const float *X,
                const float *y, size_t n, uint32_t d, const float *xv, const float *yv,
                size_t nv, em_tune_result *out, em_err *err);

/* LR cross-validation metrics: accuracy and AUC higher is better, log-loss lower. AUC and
 * log-loss need binary labels (0/1). */
typedef enum em_tune_lr_metric {
    EM_TUNE_ACCURACY = 0,
    EM_TUNE_LOGLOSS = 1,
    EM_TUNE_AUC = 2,
} em_tune_lr_metric;

/* K-fold cross-validated search of logistic regression over labeled data d (borrowed):
 * base holds the values of keys the space leaves out (max_iter: the halving budget).
 * 2 <= folds <= EM_TUNE_MAX_FOLDS. out->model is NULL: refit the best trial's lr params
 * on all the data (the command does). */
int em_tune_lr_cv(em_context *sc, const em_tune_space *s, const em_tune_opts *o,
                  const em_linear_params *base, em_tune_lr_metric metric, uint32_t folds,
                  const em_ml_data *d, em_tune_result *out, em_err *err);
/* K-fold cross-validated search of ALS over n ratings (borrowed); the metric is the RMSE
 * of the held-out fold's ratings (pairs with a user or item unseen in the fold's training
 * part are left out, Spark's coldStartStrategy "drop"). */
int em_tune_als_cv(em_context *sc, const em_tune_space *s, const em_tune_opts *o,
                   const em_als_params *base, uint32_t folds, const em_rating *r, size_t n,
                   int32_t n_users, int32_t n_items, em_tune_result *out, em_err *err);
/* The fold (0..folds-1) of position pos under seed: splitmix64(seed ^ pos) mod folds. */
uint32_t em_tune_fold_of(uint64_t seed, uint64_t pos, uint32_t folds);

/* The trials table as CSV (trial,round,params,status,metric,train_loss,epochs,seconds,
 * folds,executor) and as a JSON array of {trial, round, params, status, metric (null when
 * none), epochs, seconds, executor[, folds: [per-fold metrics]]}. */
int em_tune_write_csv(const em_tune_result *r, const char *path, em_err *err);
json_t *em_tune_trials_json(const em_tune_result *r);

int em_tune_register(void);

/* `ember ml tune [mlp|lr|als]` (argv[0] = "tune"; no estimator = mlp). */
int em_tune_cli_main(int argc, char **argv);
void em_tune_cli_help(FILE *f);

#endif /* EMBER_MLLIB_TUNING_TUNING_H */
