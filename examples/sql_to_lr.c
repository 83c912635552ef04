/* examples/sql_to_lr.c - Spark SQL's first showcase with MLlib, on ember: a query's rows
 * become labeled points and train a logistic regression, through the C API.
 *
 *   ember run-example sql_to_lr [USERS [EVENTS [SEED]]]     (defaults 2000, 50000, 1)
 *
 * It writes two CSV tables into a temporary directory: Users (userId, age, latitude,
 * longitude) and Events (userId, action), where a user's action is 1 with probability
 * sigmoid(0.06 (age - 45) + 0.15 (latitude - 37) - 0.03 (longitude + 96)); then runs
 *   SELECT e.action, u.age, u.latitude, u.longitude
 *   FROM Users u JOIN Events e ON u.userId = e.userId
 * turns the result into labeled points (label action; sql/sql_ml.h), holds out 20% of
 * the rows with a seeded split, trains L-BFGS logistic regression on the rest, and prints
 * the coefficients and the held-out accuracy (the last line, "accuracy A on N rows").
 * The model does not depend on the master: local[2] and local-cluster[2,1] print the same
 * lines (tests/integration/test_sql_ml.sh). The temporary directory is removed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/ember.h"
#include "mllib/linear/linear.h"
#include "sql/sql_ml.h"

int ember_main(em_context *sc, int argc, char **argv);

static uint64_t next(uint64_t *s)   /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static double unif(uint64_t *s)
{
    return (double)(next(s) >> 11) * 0x1p-53;
}

/* Writes Users and Events into dir; returns 0 or -1 (errno set). */
static int gen_tables(const char *dir, long users, long events, uint64_t seed)
{
    char path[4096];
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    double *score = malloc((size_t)users * sizeof *score);
    snprintf(path, sizeof path, "%s/users.csv", dir);
    FILE *f = score ? fopen(path, "w") : NULL;
    if (!f) {
        free(score);
        return -1;
    }
    fprintf(f, "userId,age,latitude,longitude\n");
    for (long u = 0; u < users; u++) {
        int age = 18 + (int)(unif(&s) * 63);
        double lat = 25 + 24 * unif(&s), lon = -125 + 58 * unif(&s);
        lat = round(lat * 1e4) / 1e4;
        lon = round(lon * 1e4) / 1e4;
        score[u] = 0.06 * (age - 45) + 0.15 * (lat - 37) - 0.03 * (lon + 96);
        fprintf(f, "%ld,%d,%.4f,%.4f\n", u, age, lat, lon);
    }
    int rc = fclose(f);
    snprintf(path, sizeof path, "%s/events.csv", dir);
    if (rc != 0 || !(f = fopen(path, "w"))) {
        free(score);
        return -1;
    }
    fprintf(f, "userId,action\n");
    for (long e = 0; e < events; e++) {
        long u = (long)(next(&s) % (uint64_t)users);
        int action = unif(&s) < 1 / (1 + exp(-score[u]));
        fprintf(f, "%ld,%d\n", u, action);
    }
    free(score);
    return fclose(f);
}

static void remove_tables(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/users.csv", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/events.csv", dir);
    unlink(path);
    rmdir(dir);
}

/* Share of rows of d the model classifies right (rows collected to the driver). */
static int accuracy(const em_linear_model *m, const em_ml_data *d, double *acc, em_err *err)
{
    em_records recs = {0};
    int rc = em_rdd_collect(d->rows, &recs, err);
    size_t right = 0;
    for (size_t i = 0; rc == 0 && i < recs.n; i++) {
        em_ml_row row;
        if ((rc = em_ml_row_view(d, recs.recs[i].val, &row, err)) == 0)
            right += em_linear_predict(m, &row) == row.label;
    }
    *acc = recs.n ? (double)right / (double)recs.n : 0;
    em_records_destroy(&recs);
    return rc;
}

static int train(em_context *sc, em_sql_session *s, const char *dir, em_err *err)
{
    static const char *const query =
        "SELECT e.action, u.age, u.latitude, u.longitude "
        "FROM Users u JOIN Events e ON u.userId = e.userId";
    char *ddl = em_xasprintf(
        "CREATE TABLE Users (userId INTEGER, age INTEGER, latitude DOUBLE, longitude DOUBLE) "
        "USING csv OPTIONS (path '%s/users.csv', header 'true');"
        "CREATE TABLE Events (userId INTEGER, action INTEGER) "
        "USING csv OPTIONS (path '%s/events.csv', header 'true');%s",
        dir, dir, query);
    em_sql_dataset rows = {0};
    em_sql_ml_encoding *enc = NULL;
    em_ml_data tr = {0}, te = {0};
    em_linear_model *m = NULL;
    em_sql_diag diag;
    em_linear_params p = {.reg_param = 1e-4};
    em_sql_ml_opts o = {.label = "action", .split_fraction = 0.2, .split_seed = 7};
    double acc = 0;
    int rc = em_sql_query_dataset(sc, s, ddl, 0, &rows, &diag);
    if (rc < 0)
        *err = diag.err;
    if (rc == 0 && (rc = em_sql_ml_fit(&rows, &o, &enc, err)) == 0 &&
        (rc = em_sql_ml_transform(&rows, enc, EM_SQL_ML_TRAIN, &tr, err)) == 0)
        rc = em_sql_ml_transform(&rows, enc, EM_SQL_ML_TEST, &te, err);
    if (rc == 0)
        rc = em_logistic_train(sc, &tr, &p, &m, err);
    if (rc == 0)
        rc = accuracy(m, &te, &acc, err);
    if (rc == 0) {
        printf("sql_to_lr: %s\n", query);
        printf("sql_to_lr: %llu training rows, %u features (", (unsigned long long)tr.nrows,
               tr.dim);
        for (uint32_t j = 0; j < tr.dim; j++)
            printf("%s%s", j ? ", " : "", em_sql_ml_encoding_feature(enc, j));
        printf(")\nsql_to_lr: coefficients");
        for (uint32_t j = 0; j < m->dim; j++)
            printf(" %.6f", m->coef[j]);
        printf(", intercept %.6f\n", m->intercept[0]);
        printf("sql_to_lr: accuracy %.6f on %llu held-out rows\n", acc,
               (unsigned long long)te.nrows);
    }
    em_linear_model_free(m);
    em_ml_data_release(&tr);
    em_ml_data_release(&te);
    em_sql_ml_encoding_free(enc);
    em_sql_dataset_release(&rows);
    em_free(ddl);
    return rc;
}

int ember_main(em_context *sc, int argc, char **argv)
{
    long users = argc > 1 ? atol(argv[1]) : 2000, events = argc > 2 ? atol(argv[2]) : 50000;
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    if (argc > 4 || users < 1 || users > 10000000 || events < 1 || events > 100000000) {
        fprintf(stderr, "usage: sql_to_lr [USERS [EVENTS [SEED]]] (1..1e7 users, 1..1e8 "
                        "events)\n");
        return 2;
    }
    const char *tmp = getenv("TMPDIR");
    char *dir = em_xasprintf("%s/sql_to_lr.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    em_err err = EM_ERR_INIT;
    int rc = 1;
    if (!mkdtemp(dir) || gen_tables(dir, users, events, seed) != 0) {
        perror("sql_to_lr: writing the tables");
    } else {
        em_sql_session *s = em_sql_session_new(&err);
        rc = s && train(sc, s, dir, &err) == 0 ? 0 : 1;
        if (rc)
            fprintf(stderr, "sql_to_lr: %s\n", err.msg);
        em_sql_session_free(s);
    }
    remove_tables(dir);
    em_free(dir);
    return rc;
}
