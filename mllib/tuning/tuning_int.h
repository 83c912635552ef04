/* mllib/tuning/tuning_int.h - what the tuning module's files share: the estimator a search
 * runs (an ops table over units of work), the shared search loop, and the space helpers.
 * Private to mllib/tuning/. */
#ifndef EMBER_MLLIB_TUNING_TUNING_INT_H
#define EMBER_MLLIB_TUNING_TUNING_INT_H

#include "mllib/ml_cli.h"
#include "mllib/tuning/tuning.h"

/* An estimator as the search loop sees it. A unit is (configuration, fold); run is called on
 * a pool thread (driver process) with the unit's job group set, and must return
 * EM_ECANCELED (as the engine's actions do) when its jobs were cancelled. */
typedef struct em__tune_est {
    uint32_t nfolds;          /* units per configuration (1: no cross-validation) */
    bool lower;               /* lower metric is better */
    double bound;             /* the metric's best possible value (1 or 0) */
    uint32_t budget_key;      /* the key successive halving sets */
    uint32_t max_budget;      /* its value in the last round */
    uint32_t width;           /* units at once (>= 1) */
    const em_tune_trial *base;  /* LR/ALS values of keys the space leaves out (or NULL) */
    /* sets t's budget key (epochs / iterations) to b */
    void (*set_budget)(em_tune_trial *t, uint32_t b);
    /* fills u->metric, seconds, epochs, executor; *model (may stay NULL) is an owned
     * model of the unit (MLP: the network), freed with model_free */
    int (*run)(void *self, const em_tune_trial *t, uint32_t fold, em_tune_unit *u,
               void **model, em_err *err);
    void (*model_free)(void *model);
    /* optional (NULL: units start in grid order): the unit's estimated cost in any unit
     * (MLP: multiply-adds of its training); a round starts its units most costly first */
    double (*cost)(void *self, const em_tune_trial *t);
    void *self;
} em__tune_est;

/* Runs the search over s with e (search.c): configurations, rounds, the pool, early
 * decisions, budgets; fills out (out->model: the best unit's model, as a void * cast by
 * the caller). */
int em__tune_search(em_context *sc, const em_tune_space *s, const em_tune_opts *o,
                    const em__tune_est *e, em_tune_result *out, void **best_model,
                    em_err *err);

/* Registers cv.c's task functions ("ml.tune.fold"); em_tune_register calls it. */
int em__tune_cv_register(void);

/* Sets the field of the estimator's params in t for key k from the value text; EM_EINVAL
 * when it does not parse (tuning.c). */
int em__tune_apply(em_tune_estimator est, uint32_t k, const char *v, em_tune_trial *t);
/* The estimator's name of key k. */
const char *em__tune_key_name(em_tune_estimator est, uint32_t k);

/* ---------------------------------------------------------------- commands (cli.c) */

/* The live table: on_unit / on_round callbacks (ud: a bool, whether the header is out). */
void em__tune_print_unit(void *ud, const em_tune_trial *t, const em_tune_unit *u);
void em__tune_print_round(void *ud, uint32_t round, const em_tune_trial *t, size_t n);
/* The --json object (best is taken) and the --results files PREFIX.csv, PREFIX.json. */
json_t *em__tune_summary_json(const em_tune_result *res, json_t *best, double search_s);
int em__tune_write_results(const em_tune_result *res, json_t *js, const char *prefix,
                           em_err *err);
/* --search and --trial-budget: as em_ml_cli_value (NULL: another flag); *ok false after a
 * usage error. */
const char *em__tune_cli_search_opt(em_ml_cli *c, em_tune_opts *o, int argc, char **argv,
                                    int *i, bool *bad, bool *ok);
/* `ember ml tune lr|als` (cli_cv.c; argv[0] = "lr" / "als"). */
int em__tune_cv_cli_main(em_tune_estimator est, int argc, char **argv);
void em__tune_cv_cli_help(em_tune_estimator est, FILE *f);

#endif /* EMBER_MLLIB_TUNING_TUNING_INT_H */
