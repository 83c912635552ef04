/* mllib/tuning/tuning.h - distributed hyper-parameter search for MLPs: a search space of
 * lists of values (hidden sizes, learning rate, batch size, weight decay, epochs,
 * activation, dropout, optimizer, momentum), explored by grid, seeded random sampling or
 * successive halving; every trial is one task.
 *
 * HOW A SEARCH RUNS (em_tune_run): the training and validation sets are broadcast once
 * (dense float blocks: u64 n, u32 d, u32 0, then n x d floats, then n floats of labels);
 * each round parallelizes its trial configurations one per partition, so the scheduler
 * spreads them over every executor core, and a map_partitions task trains the trial's
 * network single-threaded (OpenBLAS with one thread: the cores are the trials') and emits
 * one result record: validation metric, seconds, the executor (host:pid) and the weights.
 * A failed or killed trial is a failed task, retried by the engine like any other
 * (ember.task.maxFailures), and the collect returns exactly one result per trial. Grid and
 * random searches are one round (one job); successive halving (Jamieson & Talwalkar 2016)
 * runs rounds as successive jobs: round r trains the survivors for epochs * eta^(r-R+1)
 * epochs (R rounds, at least 1 epoch) and keeps the best 1/eta of them. Trials are
 * deterministic: a trial's seed is the search seed, so its result does not depend on where
 * or how often it ran.
 * THREADS: em_tune_run on the driver thread of its context; the rest anywhere. */
#ifndef EMBER_MLLIB_TUNING_TUNING_H
#define EMBER_MLLIB_TUNING_TUNING_H

#include <jansson.h>
#include <stdio.h>

#include "mllib/mlp/mlp.h"

#define EM_TUNE_MAX_VALUES 64     /* values of one key */
#define EM_TUNE_MAX_TRIALS 100000

typedef enum em_tune_key {
    EM_TUNE_HIDDEN = 0,   /* "256-128" = two hidden layers; "0" = none */
    EM_TUNE_LR,
    EM_TUNE_BATCH,
    EM_TUNE_WD,
    EM_TUNE_EPOCHS,
    EM_TUNE_ACT,          /* relu, leaky_relu, sigmoid, tanh */
    EM_TUNE_DROPOUT,
    EM_TUNE_OPTIM,        /* adam, sgd */
    EM_TUNE_MOMENTUM,
    EM_TUNE_NKEYS
} em_tune_key;

/* A parsed space: for each key used, its values as given (strings, checked). */
typedef struct em_tune_space {
    uint32_t nkeys;
    em_tune_key key[EM_TUNE_NKEYS];
    uint32_t nvals[EM_TUNE_NKEYS];
    char *vals[EM_TUNE_NKEYS][EM_TUNE_MAX_VALUES];
} em_tune_space;

/* "key=v1,v2;key=v3" (keys: hidden, lr, batch, wd, epochs, act, dropout, optim,
 * momentum). EM_EINVAL naming the key or value. em_tune_space_destroy frees it. */
int em_tune_space_parse(const char *text, em_tune_space *s, em_err *err);
void em_tune_space_destroy(em_tune_space *s);
/* Number of grid points (saturates at UINT64_MAX). */
uint64_t em_tune_space_size(const em_tune_space *s);

typedef enum em_tune_method {
    EM_TUNE_GRID = 0,
    EM_TUNE_RANDOM = 1,     /* n trials, each key's value drawn uniformly (seeded) */
    EM_TUNE_HALVING = 2,    /* grid points, successive halving */
} em_tune_method;

typedef struct em_tune_trial {
    uint32_t index;          /* 0-based trial number (halving: the configuration's) */
    uint32_t round;          /* 0 for grid/random; halving round */
    char *desc;              /* "hidden=64;lr=0.01" (owned) */
    em_mlp_params p;
    /* result */
    double metric;           /* validation accuracy or RMSE */
    double train_loss, seconds;
    uint32_t epochs_run;
    char executor[64];       /* "host:pid" of the process that ran it */
} em_tune_trial;

typedef struct em_tune_opts {
    em_tune_method method;
    uint32_t random_trials;  /* RANDOM: trial count */
    uint32_t eta;            /* HALVING: 0 = 3 */
    uint64_t seed;
    em_mlp_params base;      /* values for keys the space leaves out */
    /* optional: called on the driver as each round's results arrive */
    void (*on_round)(void *ud, uint32_t round, const em_tune_trial *t, size_t n);
    void *ud;
} em_tune_opts;

typedef struct em_tune_result {
    em_tune_trial *trials;   /* every trial run, in rounds then index order */
    size_t ntrials;
    size_t best;             /* index into trials */
    em_mlp_model *model;     /* the best trial's network (owned) */
    uint32_t rounds;
} em_tune_result;
void em_tune_result_destroy(em_tune_result *r);

/* The search. X/y (n x d) train, xv/yv (nv rows) validate: both must be non-empty. */
int em_tune_run(em_context *sc, const em_tune_space *s, const em_tune_opts *o, const float *X,
                const float *y, size_t n, uint32_t d, const float *xv, const float *yv,
                size_t nv, em_tune_result *out, em_err *err);

/* The trials table as CSV (index,round,params...,metric,seconds,epochs,executor) and as a
 * JSON array of {params, metric, seconds, epochs, executor, round}. */
int em_tune_write_csv(const em_tune_result *r, const char *path, em_err *err);
json_t *em_tune_trials_json(const em_tune_result *r);

int em_tune_register(void);

/* `ember ml tune` (argv[0] = "tune"). */
int em_tune_cli_main(int argc, char **argv);
void em_tune_cli_help(FILE *f);

#endif /* EMBER_MLLIB_TUNING_TUNING_H */
