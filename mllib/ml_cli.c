/* mllib/ml_cli.c - `ember ml ALGO ...`: the table of MLlib's algorithm commands. Adding an
 * algorithm's command means one row in `algos`; the row's main gets argv[0] = ALGO and
 * reports its context through em_ml_cli_context (mllib/mllib.h), so Ctrl-C cancels it.
 * GLOBALS: g_on_context is written by em_ml_cli_run on the command's main thread, before
 * and after the algorithm runs, and read by em_ml_cli_context on the same thread. */
#include <string.h>

#include "mllib/als/als.h"
#include "mllib/bayes/bayes.h"
#include "mllib/clustering/kmeans.h"
#include "mllib/decomp/decomp.h"
#include "mllib/linear/glm.h"
#include "mllib/linear/linear.h"
#include "mllib/mllib.h"
#include "mllib/mlp/mlp.h"
#include "mllib/tuning/tuning.h"

static void (*g_on_context)(em_context *sc);

void em_ml_cli_context(em_context *sc)
{
    if (g_on_context)
        g_on_context(sc);
}

/* ALS's command takes the hook directly. */
static int als_main(int argc, char **argv)
{
    return em_als_cli_run(argc, argv, g_on_context);
}

typedef struct ml_algo {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*help)(FILE *f);
} ml_algo;

static const ml_algo algos[] = {
    {"als", "alternating least squares recommender (same as `ember als`)", als_main,
     em_als_cli_help},
    {"kmeans", "k-means clustering (k-means||, Lloyd with a GEMM kernel)", em_kmeans_cli_main,
     em_kmeans_cli_help},
    {"svd", "top-k singular values and vectors (Gramian or Lanczos)", em_svd_cli_main,
     em_svd_cli_help},
    {"pca", "principal components and explained variance", em_pca_cli_main, em_pca_cli_help},
    {"lr", "logistic regression (binary, multinomial; L-BFGS, OWL-QN, SGD)", em_lr_cli_main,
     em_lr_cli_help},
    {"svm", "linear SVM (squared hinge by L-BFGS, hinge by SGD)", em_svm_cli_main,
     em_svm_cli_help},
    {"nb", "naive Bayes, multinomial or Bernoulli (one pass)", em_nb_cli_main,
     em_nb_cli_help},
    {"linreg", "linear regression: least squares, ridge, lasso, elastic net",
     em_linreg_cli_main, em_linreg_cli_help},
    {"glm", "generalized linear models by IRLS (gaussian, binomial, poisson, gamma)",
     em_glm_cli_main, em_glm_cli_help},
    {"mlp", "neural network (multilayer perceptron), float32 GEMM layers", em_mlp_cli_main,
     em_mlp_cli_help},
    {"tune", "hyper-parameter search: mlp, lr, als (k-fold CV)", em_tune_cli_main,
     em_tune_cli_help},
};
#define NALGOS (sizeof algos / sizeof algos[0])

void em_ml_cli_help(FILE *f)
{
    fprintf(f, "Usage: ember ml ALGO [ARGS...]\n"
               "\n"
               "Trains, evaluates and saves an MLlib model on the engine.\n"
               "\n"
               "Algorithms:\n");
    for (size_t i = 0; i < NALGOS; i++)
        fprintf(f, "  %-10s %s\n", algos[i].name, algos[i].summary);
    fprintf(f, "\nRun 'ember ml ALGO --help' for the options of an algorithm.\n");
}

int em_ml_cli_main(int argc, char **argv)
{
    return em_ml_cli_run(argc, argv, NULL);
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        em_ml_cli_help(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        em_ml_cli_help(stdout);
        return 0;
    }
    for (size_t i = 0; i < NALGOS; i++)
        if (strcmp(algos[i].name, argv[1]) == 0)
            return algos[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ember ml: unknown algorithm '%s' (ember ml --help lists them)\n", argv[1]);
    return 2;
}

int em_ml_cli_run(int argc, char **argv, void (*on_context)(em_context *sc))
{
    g_on_context = on_context;
    int rc = dispatch(argc, argv);
    g_on_context = NULL;
    return rc;
}
