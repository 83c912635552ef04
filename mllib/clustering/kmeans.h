/* mllib/clustering/kmeans.h - k-means clustering on the engine (Spark MLlib's KMeans):
 * k-means|| (default), k-means++ or random initialization, then Lloyd iterations whose
 * assignment step is a GEMM per partition batch and whose sums are merged in place by
 * tree_aggregate_acc; euclidean or cosine distance; cost (inertia), predict, save/load.
 *
 * DATA: any em_ml_data (mllib/linalg/rows.h): dense or sparse rows, labeled or not (the
 * label is ignored). Cosine distance needs rows of non-zero norm (a zero row fails the task
 * naming it).
 * DEGENERATE INPUT: an empty cluster keeps its previous centre (Spark's rule); when the data
 * has fewer distinct points than k, every initialization returns only the distinct points
 * it found, so the model has k' < k centres (model->k says how many; Spark does the same).
 * THREADS: train/cost/predict_data on the driver thread of their context; the model is
 * immutable after training and may be read from any thread. */
#ifndef EMBER_MLLIB_CLUSTERING_KMEANS_H
#define EMBER_MLLIB_CLUSTERING_KMEANS_H

#include <stdio.h>

#include "mllib/linalg/rows.h"

typedef enum em_kmeans_init {
    EM_KMEANS_INIT_PARALLEL = 0,   /* k-means|| (Bahmani et al., VLDB 2012) */
    EM_KMEANS_INIT_PLUSPLUS = 1,   /* k-means++ (Arthur & Vassilvitskii, SODA 2007) */
    EM_KMEANS_INIT_RANDOM = 2,     /* k distinct sampled rows */
} em_kmeans_init;

typedef enum em_kmeans_distance {
    EM_KMEANS_EUCLIDEAN = 0,
    EM_KMEANS_COSINE = 1,
} em_kmeans_distance;

typedef struct em_kmeans_params {
    uint32_t k;                  /* clusters wanted, >= 1 */
    uint32_t max_iter;           /* Lloyd iterations; 0 = 20 (Spark's default) */
    double tol;                  /* converged when no centre moved more than tol (distance
                                    measure's own); 0 = until no centre moves at all */
    uint64_t seed;
    em_kmeans_init init;
    em_kmeans_distance distance;
    uint32_t init_steps;         /* k-means|| rounds; 0 = 2 (Spark's default) */
    const double *init_centers;  /* optional: init_k x dim starting centres (overrides init) */
    uint32_t init_k;
    /* optional: called after each Lloyd iteration with the cost of the assignment it made
     * (to the centres it started from) and the seconds since training began. */
    void (*progress)(void *ud, uint32_t iter, double cost, double secs);
    void *progress_ud;
} em_kmeans_params;

typedef struct em_kmeans_model {
    uint32_t k;                  /* centres (may be below the k asked for: header comment) */
    uint32_t dim;
    em_kmeans_distance distance;
    double *centers;             /* k x dim, row-major (cosine: unit vectors) */
    double cost;                 /* training cost: sum of distances (euclidean: squared) to
                                    the nearest centre, computed exactly after training */
    uint32_t iterations;         /* Lloyd iterations run */
    bool converged;
    double init_s, train_s;      /* seconds: initialization, then the Lloyd iterations */
    double *init_centers;        /* the centres Lloyd started from (k x dim) */
} em_kmeans_model;

/* Trains on d (which must stay alive during the call). *out owned by the caller
 * (em_kmeans_model_free). EM_EINVAL for bad parameters or an empty data set. */
int em_kmeans_train(em_context *sc, const em_ml_data *d, const em_kmeans_params *p,
                    em_kmeans_model **out, em_err *err);
void em_kmeans_model_free(em_kmeans_model *m);   /* NULL ok */

/* The nearest centre of one vector of m->dim doubles (any thread). */
uint32_t em_kmeans_predict(const em_kmeans_model *m, const double *x);
/* Sum over d's rows of the distance to the nearest centre (one job). */
int em_kmeans_cost(em_context *sc, const em_kmeans_model *m, const em_ml_data *d,
                   double *cost, em_err *err);
/* A data set of the nearest centre of each row of d, in d's order: FIXED 4-byte records
 * (u32 little-endian). *out is a new dataset handle (release it). The centres travel as a
 * broadcast that lives as long as the context (the dataset may be recomputed any time). */
int em_kmeans_predict_data(em_context *sc, const em_kmeans_model *m, const em_ml_data *d,
                           em_rdd **out, em_err *err);

/* SAVE FORMAT: a model directory (mllib/linalg/model_dir.h) of class "ember.KMeansModel",
 * version 1: metadata fields "k", "dim", "distance": "euclidean"|"cosine", "cost",
 * "iterations", "converged", and the array "centers" (centers.bin: k x dim little-endian
 * doubles, row-major, checksummed). Written into a temporary directory and renamed onto DIR
 * (which must not exist) when complete. */
int em_kmeans_model_save(const em_kmeans_model *m, const char *dir, em_err *err);
int em_kmeans_model_load(const char *dir, em_kmeans_model **out, em_err *err);
/* Decodes the two files' bytes (untrusted; the fuzz harness's entry). */
int em_kmeans_model_decode(const char *name, const uint8_t *meta, size_t meta_n,
                           const uint8_t *centers, size_t centers_n, em_kmeans_model **out,
                           em_err *err);

/* Registers the "ml.kmeans.*" task functions (idempotent; em_kmeans_train calls it). */
int em_kmeans_register(void);

/* `ember ml kmeans` (argv[0] = "kmeans"). */
int em_kmeans_cli_main(int argc, char **argv);
void em_kmeans_cli_help(FILE *f);

#endif /* EMBER_MLLIB_CLUSTERING_KMEANS_H */
