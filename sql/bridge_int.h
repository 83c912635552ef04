/* sql/bridge_int.h - what the files of the SQL-to-MLlib bridge (sql/bridge*.c) share: the
 * encoding's structure, the task-context formats and the per-value conversions, so the
 * driver (fit, transform) and the tasks (sql.ml.values, sql.ml.encode) read values the
 * same way. Private to sql/bridge*.c and their tests. */
#ifndef EMBER_SQL_BRIDGE_INT_H
#define EMBER_SQL_BRIDGE_INT_H

#include <jansson.h>

#include "sql/sql_ml.h"

/* One column of an encoding: a numeric feature, a one-hot TEXT column, or the label. */
typedef struct sml_col {
    char *name;
    uint8_t type;          /* em_sql_type declared by the query */
    bool text;             /* indexed: TEXT features one-hot, a TEXT label its index */
    uint32_t first;        /* first feature index (features only) */
    uint32_t width;        /* features taken: 1, or nvals (nvals - 1 with drop_last) for
                              a one-hot column */
    uint32_t nvals;        /* indexed values, most frequent first */
    char **vals;           /* nvals NUL-terminated values (may hold NUL bytes: use lens) */
    uint32_t *lens;
    uint32_t *sorted;      /* value indexes in memcmp order of the values (lookup) */
} sml_col;

struct em_sql_ml_encoding {
    bool labeled, sparse;
    bool drop_last;        /* one-hot columns leave out their least frequent value */
    uint8_t nulls;         /* em_sql_ml_nulls */
    uint32_t dim;
    sml_col label;         /* when labeled */
    uint32_t nfeat;
    sml_col *feat;
    char **fnames;         /* dim feature names */
    /* The split fitted on; not in the binary form (the task header carries it). */
    double split_fraction;
    uint64_t split_seed;
};

/* The index of value (p, n) in c, or -1 when it was not seen when fitting. */
int64_t em__sml_lookup(const sml_col *c, const uint8_t *p, size_t n);
/* Builds c->sorted from c->vals (after vals and lens are set). 0 or EM_ENOMEM. */
int em__sml_col_index(sml_col *c);
void em__sml_col_destroy(sml_col *c);
/* Builds e->fnames and the firsts/widths from the columns. 0 or EM_ENOMEM. */
int em__sml_finish(em_sql_ml_encoding *e);

/* The text a TEXT column's value is indexed by: TEXT as it is, other values in their SQL
 * text form (a number in a TEXT column). Appended to b; *p and *n point at it or at v. */
int em__sml_text(const em_sql_value *v, em_vbuf *b, const uint8_t **p, size_t *n);
/* A numeric column's value as a double; false for TEXT. */
bool em__sml_number(const em_sql_value *v, double *out);
/* Whether result row number idx (0-based) is on the test side of a split. */
bool em__sml_is_test(uint64_t idx, double fraction, uint64_t seed);

/* TASK CONTEXT of sql.ml.values and sql.ml.encode (little-endian):
 *   u32 ncols of the rows, u8 side (em_sql_ml_side), 7 bytes 0, f64 split fraction,
 *   u64 split seed, u32 accumulator id (rows skipped; 0 = none),
 *   u32 n, then n u32 column indexes into the row: sql.ml.values reads the TEXT columns
 *   listed (emitting u32 list position + value), sql.ml.encode the label (when labeled)
 *   then every feature column of the encoding, in the encoding's order;
 *   sql.ml.encode: then the encoding (em_sql_ml_encoding_encode). */
typedef struct sml_task {
    uint32_t ncols;
    uint8_t side;
    double fraction;
    uint64_t seed;
    uint32_t acc;
    uint32_t n;
    const uint8_t *cols;   /* n u32 LE, borrowed from the blob */
    em_slice rest;         /* bytes after the column list */
} sml_task;
int em__sml_task_encode(const sml_task *t, const uint32_t *cols, em_vbuf *out);
int em__sml_task_decode(em_slice blob, sml_task *t, em_err *err);

#endif /* EMBER_SQL_BRIDGE_INT_H */
