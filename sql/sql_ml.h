/* sql/sql_ml.h - from SQL to MLlib: a query's result as a dataset, turned into labeled
 * points (the layouts of mllib/linalg/rows.h) by naming the label and the feature columns,
 * and exported as LIBSVM text. docs/sql-ml.md.
 *
 * FEATURES: numeric columns (INTEGER, DOUBLE, BOOLEAN as 0/1, DATE as days since
 * 1970-01-01) are one feature each, in column order; a TEXT column is indexed by frequency
 * over the rows it is fitted on (most frequent = 0, ties by the value's bytes, memcmp
 * order) and one-hot encoded: it takes as many consecutive features as it has distinct
 * values. A TEXT label is indexed the same way (label = its index). The mapping (an
 * em_sql_ml_encoding) is kept: applied unchanged to other rows (a test set: a value not
 * seen when fitting sets none of its column's features), printed as JSON, saved beside a
 * model.
 * NULLS: a NULL feature is an error naming the column and the result row (1-based), unless
 * the policy skips the row or keeps the value as NaN (all of a TEXT column's features NaN).
 * A NULL label is an error unless rows are skipped.
 * LAYOUT: dense rows when no feature is one-hot encoded (as the CSV loader), sparse rows
 * otherwise (as the LIBSVM loader); em_sql_ml_opts.layout forces one.
 *
 * The conversion runs on the engine: one job numbers the rows (em_rdd_zip_with_index),
 * one counts the TEXT values (fit, only when there are TEXT columns), and the result is
 * persisted (MEMORY_AND_DISK) and counted by a third, so a NULL error surfaces here, as
 * em_ml_read reports a bad line. Task functions "sql.ml.*" (registered by em_sql_register).
 * THREADS: the driver thread of the context; em_sql_ml_encoding is immutable once made
 * and may be read from any thread. */
#ifndef EMBER_SQL_SQL_ML_H
#define EMBER_SQL_SQL_ML_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/ember.h"
#include "mllib/linalg/rows.h"
#include "sql/sql.h"

/* ---------------------------------------------------------------- results as datasets */

/* A query's result on the engine: rows in the row codec of sql/sql.h (BYTES records, one
 * row each, ncols values) and the result's schema. */
typedef struct em_sql_dataset {
    em_context *sc;        /* borrowed: the context the rows live in */
    em_rdd *rows;          /* owned reference */
    em_rdd *numbered;      /* owned, made on first use: (row, em_enc_i64 row number) */
    uint32_t ncols;
    char **names;          /* ncols column names, owned */
    em_sql_type *types;    /* ncols declared types, owned */
} em_sql_dataset;

/* Runs the statements of sql[0..strlen) in session s; the last one must return rows, and
 * its result becomes *out in nparts partitions (0 = the context's default). Statements
 * before it (CREATE TABLE ...) run for their effect. A bad statement fills *diag (format
 * it with em_sql_diag_format against sql) and returns its code. Driver thread. */
int em_sql_query_dataset(em_context *sc, em_sql_session *s, const char *sql, uint32_t nparts,
                         em_sql_dataset *out, em_sql_diag *diag);
void em_sql_dataset_release(em_sql_dataset *d);   /* zeroes it; NULL fields ok */
/* Index of the column named name (ASCII case-insensitive), or -1. */
int em_sql_dataset_col(const em_sql_dataset *d, const char *name);

/* ---------------------------------------------------------------- labeled points */

typedef enum em_sql_ml_nulls {
    EM_SQL_ML_NULL_ERROR = 0,   /* a NULL is an error naming column and row */
    EM_SQL_ML_NULL_SKIP = 1,    /* rows with a NULL label or feature are left out */
    EM_SQL_ML_NULL_NAN = 2,     /* NULL features become NaN (a NULL label stays an error) */
} em_sql_ml_nulls;

typedef enum em_sql_ml_layout {
    EM_SQL_ML_AUTO = 0,         /* dense unless a TEXT column is one-hot encoded */
    EM_SQL_ML_DENSE = 1,
    EM_SQL_ML_SPARSE = 2,
} em_sql_ml_layout;

typedef struct em_sql_ml_opts {
    const char *label;              /* label column; NULL = unlabeled rows */
    const char *const *features;    /* nfeatures feature columns; NULL = all but the label */
    uint32_t nfeatures;
    em_sql_ml_nulls nulls;
    em_sql_ml_layout layout;
    /* One-hot columns leave out their least frequent value (whose rows get all zeros), so
     * the columns plus an intercept are not collinear (Spark's dropLast; needed by models
     * solved by normal equations, such as glm). Default: every value has a feature. */
    bool drop_last;
    /* A seeded split of the result rows: a row is on the "test" side when
     * hash(seed, row number) / 2^64 < split_fraction (0 = no split). The side is a function
     * of the row number only, so the same query splits the same way on any master. */
    double split_fraction;
    uint64_t split_seed;
} em_sql_ml_opts;                   /* zero = defaults */

/* Which rows of a split a call takes. */
typedef enum em_sql_ml_side {
    EM_SQL_ML_ALL = 0,
    EM_SQL_ML_TRAIN = 1,            /* rows not on the test side */
    EM_SQL_ML_TEST = 2,
} em_sql_ml_side;

typedef struct em_sql_ml_encoding em_sql_ml_encoding;   /* opaque, immutable */

/* Fits the mapping on d (the training side of the split when there is one): resolves the
 * columns (EM_EPLAN "unknown column 'x' (columns: a, b, c)"), indexes TEXT values by
 * frequency. *out is new (em_sql_ml_encoding_free). */
int em_sql_ml_fit(const em_sql_dataset *d, const em_sql_ml_opts *o, em_sql_ml_encoding **out,
                  em_err *err);
/* Applies enc to d's rows of one side into *out (rows persisted and counted; out->skipped
 * = rows left out for a NULL). d must have enc's columns by name (a test query may order
 * them differently). */
int em_sql_ml_transform(const em_sql_dataset *d, const em_sql_ml_encoding *enc,
                        em_sql_ml_side side, em_ml_data *out, em_err *err);
void em_sql_ml_encoding_free(em_sql_ml_encoding *e);    /* NULL ok */
uint32_t em_sql_ml_encoding_dim(const em_sql_ml_encoding *e);
/* Name of feature i (< dim): the column, or "column=value" for a one-hot feature.
 * Borrowed until the encoding is freed. */
const char *em_sql_ml_encoding_feature(const em_sql_ml_encoding *e, uint32_t i);
/* The mapping as JSON (new reference):
 *   {"label": "action", "label_values": [...] (TEXT label only), "dim": 4,
 *    "layout": "dense"|"sparse", "nulls": "error"|"skip"|"nan",
 *    "columns": [{"name": "age", "type": "INTEGER", "first": 0, "width": 1},
 *                {"name": "city", "type": "TEXT", "first": 1, "width": 3,
 *                 "values": ["SF", "NY", "LA"]}, ...]}
 * where values[k] (the k-th most frequent) is feature first + k. */
struct json_t;   /* jansson's (not included here: cli/sql_shell.c has its own json_* names) */
struct json_t *em_sql_ml_encoding_json(const em_sql_ml_encoding *e);
/* Writes em_sql_ml_encoding_json to path (written to path.tmp, then renamed). */
int em_sql_ml_encoding_save(const em_sql_ml_encoding *e, const char *path, em_err *err);

/* The encoding in task contexts (untrusted bytes: checked; fuzzed by
 * tests/fuzz/fuzz_sql_ml_encoding.c). encode appends to out. */
int em_sql_ml_encoding_encode(const em_sql_ml_encoding *e, em_vbuf *out);
int em_sql_ml_encoding_decode(const uint8_t *p, size_t n, em_sql_ml_encoding **out,
                              em_err *err);

/* Fit and transform in one call: labeled points (or plain rows) from a dataset. *enc may be
 * NULL when the mapping is not wanted. */
int em_sql_ml_points(const em_sql_dataset *d, const em_sql_ml_opts *o, em_ml_data *out,
                     em_sql_ml_encoding **enc, em_err *err);

/* Exports d as LIBSVM text (em_ml_write: dir/part-NNNNN, 1-based indices) with o's label
 * and features; o->label is required. When mapping is not NULL the encoding is saved there
 * as JSON too. */
int em_sql_ml_export_libsvm(const em_sql_dataset *d, const em_sql_ml_opts *o, const char *dir,
                            const char *mapping, em_err *err);

/* ---------------------------------------------------------------- tables for commands */

/* Runs every statement of a file (--sql-init) in s; an error names the file and its line
 * and carries the caret diagnostic in err. */
int em_sql_run_file(em_sql_session *s, const char *path, em_err *err);
/* Creates table name from a CSV file with a header line (--table NAME=PATH): column names
 * from the header, types inferred from the rows (INTEGER when every non-empty field is an
 * integer, DOUBLE when every one is a number, else TEXT), then CREATE TABLE ... USING csv.
 * A ".tsv" file is read tab separated. */
int em_sql_attach_csv(em_sql_session *s, const char *name, const char *path, em_err *err);

/* The SQL source of `ember ml ALGO --sql` (mllib/ml_cli.h em_ml_cli_sql_ops); the ember
 * command installs it with em_ml_cli_set_sql at start. */
const struct em_ml_cli_sql_ops *em_sql_ml_cli_ops(void);

/* `ember sql --export-libsvm DIR --label COL ...` (docs/sql-ml.md): argv as given to
 * `ember sql`. Returns the exit status (0, 1 failure, 2 usage). Main thread. */
int em_sql_ml_export_main(int argc, char **argv);

/* Registers the "sql.ml.*" task functions (idempotent). */
int em_sql_ml_register(void);

#endif /* EMBER_SQL_SQL_ML_H */
