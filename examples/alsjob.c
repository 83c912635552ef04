/* examples/alsjob.c - ALS as a job library, so that it runs on a standalone cluster:
 *   ember submit --master ember://HOST:7077 alsjob.so TRAIN TEST [RANK ITERATIONS LAMBDA]
 * (`ember als` takes local[N] and local-cluster[E,C] masters only). Reads the ratings on
 * the driver (mllib/als em_ratings_read: "user item rating" lines), trains with seed 1 and
 * prints "train_rmse R" and "test_rmse R" to 9 decimals: the same numbers as in local mode
 * for the same data and parameters (the factors do not depend on where blocks run). */
#include <stdio.h>
#include <stdlib.h>

#include "engine/ember.h"
#include "mllib/als/als.h"

int ember_main(em_context *sc, int argc, char **argv);

/* stderr "alsjob: iteration N done" (tests wait for it to disturb a running job) */
static void progress(void *ud, int it, double secs)
{
    (void)ud, (void)secs;
    fprintf(stderr, "alsjob: iteration %d done\n", it);
}

int ember_main(em_context *sc, int argc, char **argv)
{
    if (argc != 3 && argc != 6) {
        fprintf(stderr, "usage: alsjob TRAIN TEST [RANK ITERATIONS LAMBDA]\n");
        return 2;
    }
    em_als_params p = {.rank = 8, .iterations = 6, .lambda = 0.05, .seed = 1,
                       .progress = progress};
    if (argc == 6) {
        p.rank = atoi(argv[3]);
        p.iterations = atoi(argv[4]);
        p.lambda = atof(argv[5]);
    }
    em_err err = EM_ERR_INIT;
    em_idmap *users = em_idmap_new(), *items = em_idmap_new();
    em_ratings train, test;
    em_ratings_init(&train);
    em_ratings_init(&test);
    em_als_model *m = NULL;
    int rc = users && items ? 0 : em_err_set(&err, EM_ENOMEM, "id maps");
    if (rc == 0)
        rc = em_ratings_read(argv[1], NULL, users, items, &train, &err);
    if (rc == 0)
        rc = em_ratings_read(argv[2], NULL, users, items, &test, &err);
    if (rc == 0)
        rc = em_als_train(sc, train.recs, train.n, em_idmap_size(users), em_idmap_size(items),
                          &p, &m, &err);
    if (rc == 0) {
        em_als_metrics tr, te;
        em_als_evaluate(m, train.recs, train.n, EM_COLD_DROP, &tr);
        em_als_evaluate(m, test.recs, test.n, EM_COLD_DROP, &te);
        printf("train_rmse %.9f\ntest_rmse %.9f\n", tr.rmse, te.rmse);
    } else {
        fprintf(stderr, "alsjob: %s\n", err.msg);
    }
    em_als_model_free(m);
    em_ratings_destroy(&train);
    em_ratings_destroy(&test);
    em_idmap_free(users);
    em_idmap_free(items);
    return rc < 0 ? 1 : 0;
}
