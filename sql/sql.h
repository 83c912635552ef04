/* sql/sql.h - ember's SQL front end: a session holding typed in-memory tables, statements
 * parsed, planned and executed, results as typed rows, and the sqllogictest runner.
 *
 * WHAT RUNS WHERE (docs/sql.md): a statement runs on the local path of the driver
 * (sql/exec_local.c: materialized rows in the statement's arena, no scheduler, no files)
 * unless the session has an engine context (em_sql_session_set_context) and its input is
 * larger than ember.sql.localThreshold (or ember.sql.forceDistributed is set): then it runs
 * as engine stages (sql/exec_dist.c) whose tasks ship rows in the row codec below and run
 * the local executor's code over each partition (sql/dist_fns.c).
 *
 * THREADS: a session is used by one thread at a time (one thread per object). The codec
 * functions may be called from any thread.
 * OWNERSHIP: a result owns every row and string it hands out; pointers into it are valid
 * until em_sql_result_free. */
#ifndef EMBER_SQL_H
#define EMBER_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/base.h"

/* ---------------------------------------------------------------- values */

/* The SQL types. BOOL holds 0/1 in u.i and behaves as an integer in arithmetic (SQLite
 * has no boolean type and the sqllogictest oracle is SQLite); DATE holds days since
 * 1970-01-01 in u.i. The order of the constants is the sort order of values of different
 * types (NULL first; BOOL, INT and DOUBLE compare as numbers among themselves). */
typedef enum em_sql_type {
    EM_SQL_NULL = 0,
    EM_SQL_BOOL = 1,
    EM_SQL_INT = 2,
    EM_SQL_DOUBLE = 3,
    EM_SQL_DATE = 4,
    EM_SQL_TEXT = 5,
} em_sql_type;

typedef struct em_sql_value {
    uint8_t type;     /* em_sql_type */
    uint32_t len;     /* TEXT: bytes of u.s (no NUL counted; u.s is NUL-terminated) */
    union {
        int64_t i;    /* BOOL, INT, DATE */
        double d;     /* DOUBLE */
        const char *s;/* TEXT: borrowed from whoever owns the row */
    } u;
} em_sql_value;

const char *em_sql_type_name(em_sql_type t); /* "INTEGER", "DOUBLE", ... */

/* Appends the text form of v as SQLite prints it (NULL as "NULL", doubles with %.15g and
 * a ".0" when integral, dates as YYYY-MM-DD). Any thread. */
int em_sql_value_format(em_vbuf *out, const em_sql_value *v);
/* Writes the shortest decimal form of d that reads back to the same double (at most 17
 * significant digits; "inf", "-inf", "nan" for the non-finite ones) into buf[32]. */
void em_sql_double_shortest(char buf[32], double d);

/* ---------------------------------------------------------------- row codec
 * The typed row format shuffled and stored by distributed stages (and fuzzed: it decodes
 * untrusted bytes).
 *
 * FORMAT of one row (little-endian), per value in column order:
 *   1 byte   type tag (em_sql_type)
 *   NULL     nothing more
 *   BOOL     1 byte (0 or 1)
 *   INT      8 bytes two's complement
 *   DOUBLE   8 bytes IEEE-754 bits
 *   DATE     4 bytes signed days since 1970-01-01
 *   TEXT     4 bytes length L, then L bytes (no NUL)
 * A row carries no column count: the schema travels with the plan. */
int em_sql_row_encode(em_vbuf *out, const em_sql_value *vals, uint32_t ncols);
/* Decodes ncols values from p[0..n) into vals; TEXT values point into p (the caller keeps p
 * alive). *used = bytes consumed. EM_ECORRUPT with the byte offset on bad tags, truncation
 * or a text longer than EM_SQL_MAX_TEXT; vals is then unspecified. */
int em_sql_row_decode(const uint8_t *p, size_t n, em_sql_value *vals, uint32_t ncols,
                      size_t *used, em_err *err);
#define EM_SQL_MAX_TEXT ((uint32_t)1 << 30)

/* Appends a key for v whose bytes sort (memcmp, shorter first) in SQL order: NULL first,
 * then numbers, dates, text. With desc every byte is inverted, so one key can mix ascending
 * and descending columns. Integers and doubles each sort exactly among themselves; a column
 * that mixes both sorts by the numbers converted to double (exact up to 2^53).
 * FORMAT: tag (0x01 NULL, 0x02 number, 0x03 date, 0x04 text); number: 8 bytes big-endian of
 * the double's bits with the sign bit flipped (all bits flipped when negative), then for an
 * integer 8 more bytes of (i - (int64)(double)i) big-endian with the sign flipped, so
 * integers that round to the same double still sort; date: 4 bytes big-endian,
 * sign-flipped; text: the bytes with 0x00 written as 0x00 0xFF, then 0x00 0x00. */
int em_sql_key_encode(em_vbuf *out, const em_sql_value *v, bool desc);

/* ---------------------------------------------------------------- sessions */

typedef struct em_sql_session em_sql_session;

/* An error of one statement: the message in err (its code EM_EINVAL for a bad statement,
 * EM_EPLAN for an unknown name, EM_ENOMEM, EM_EIO), and pos, the byte offset of the
 * offending token in the text given to em_sql_exec (-1 when no token is to blame). */
typedef struct em_sql_diag {
    em_err err;
    int64_t pos;
} em_sql_diag;

/* Appends the diagnostic as a user reads it:
 *   <message>
 *   LINE 2: SELECT nme FROM t
 *                  ^
 * where the line is the statement line holding pos and the caret sits under its token. */
int em_sql_diag_format(em_vbuf *out, const char *sql, size_t len, const em_sql_diag *d);

em_sql_session *em_sql_session_new(em_err *err); /* NULL on OOM */
void em_sql_session_free(em_sql_session *s);     /* NULL ok; frees every table */

typedef struct em_sql_result em_sql_result;

/* Parses and runs the first statement of sql[0..len) (up to its ';' or the end). On
 * success returns 0, sets *consumed to the bytes used (statement and ';'), and *out to a
 * new result (free with em_sql_result_free), or NULL when only blanks or comments were
 * left. On failure returns a negative EM_E* with *diag filled, *consumed set past the
 * failed statement when its end could be found, and the session unchanged.
 * Thread: one thread per session. */
int em_sql_exec(em_sql_session *s, const char *sql, size_t len, size_t *consumed,
                em_sql_result **out, em_sql_diag *diag);

void em_sql_result_free(em_sql_result *r); /* NULL ok */
/* Columns: 0 for statements that return no rows (CREATE, INSERT, ...). */
uint32_t em_sql_result_ncols(const em_sql_result *r);
const char *em_sql_result_col_name(const em_sql_result *r, uint32_t col); /* borrowed */
em_sql_type em_sql_result_col_type(const em_sql_result *r, uint32_t col); /* declared type */
size_t em_sql_result_nrows(const em_sql_result *r);
/* Row i as ncols values; borrowed until em_sql_result_free. */
const em_sql_value *em_sql_result_row(const em_sql_result *r, size_t i);
/* Rows inserted, for INSERT and CREATE TABLE AS; 0 otherwise. */
uint64_t em_sql_result_changes(const em_sql_result *r);

/* Table names of the session, sorted; *n set. Borrowed until the next statement. */
const char *const *em_sql_session_tables(em_sql_session *s, size_t *n);
/* Appends CREATE TABLE text for table name; EM_EPLAN when it does not exist. */
int em_sql_session_schema(em_sql_session *s, const char *name, em_vbuf *out, em_err *err);

/* The rows of r as a dataset of BYTES records, one row each in the row codec format above
 * (decode with em_sql_row_decode and em_sql_result_ncols columns), split into nparts slices
 * (0 = the engine's default). The rows are copied: r may be freed afterwards. NULL with err
 * set on OOM or a result without columns. Driver thread. */
struct em_context;
struct em_rdd;
struct em_rdd *em_sql_result_to_rdd(struct em_context *sc, const em_sql_result *r,
                                    uint32_t nparts, em_err *err);

/* Gives the session an engine context for the distributed path (docs/sql.md "What runs
 * where"): statements whose input is larger than ember.sql.localThreshold bytes (or every
 * statement, with ember.sql.forceDistributed=true in sc's configuration) then run as engine
 * stages on sc. sc is borrowed and must outlive the session's use of it; NULL returns the
 * session to the local path only. Driver thread. */
void em_sql_session_set_context(em_sql_session *s, struct em_context *sc);

/* Runs the query of sql[0..len) (one SELECT, up to its ';') in session s and returns its
 * result as a dataset: BYTES records, one per row, in the row codec format above. The
 * result's columns are described by *schema, a result without rows (read it with
 * em_sql_result_ncols, em_sql_result_col_name and em_sql_result_col_type; free it with
 * em_sql_result_free). sc runs the dataset's jobs; when the session has no context yet,
 * sc becomes its context (em_sql_session_set_context). On the local path the rows are
 * computed on the driver and parallelized into the default number of slices; on the
 * distributed path the dataset is the query's last stage, not collected. Release it with
 * em_rdd_release. NULL on failure, with *schema NULL and diag set (EM_EINVAL for a statement
 * that is not a query or returns no columns, as em_sql_exec otherwise). Driver thread. */
struct em_rdd *em_sql_query_rdd(em_sql_session *s, struct em_context *sc, const char *sql,
                                size_t len, em_sql_result **schema, em_sql_diag *diag);

/* ---------------------------------------------------------------- sqllogictest
 * Runs a sqllogictest script (format in docs/sql.md and ../shared/sqllogictest/README.md)
 * in a fresh session. Every record counts as passed or failed; a failed record is reported
 * through opts->report (may be NULL). EM_EIO when the file cannot be read. */
typedef struct em_sql_slt_opts {
    /* The engine name skipif/onlyif compare with; NULL = "ember" (then every skipif record
     * runs and every onlyif record is skipped). */
    const char *engine;
    void (*report)(void *ud, const char *path, uint64_t line, const char *msg);
    void *ud;
    /* An engine context for the script's session (em_sql_session_set_context), so that
     * ember.sql.forceDistributed runs its queries on the distributed path; NULL = local. */
    struct em_context *sc;
} em_sql_slt_opts;
typedef struct em_sql_slt_stats {
    uint64_t passed, failed, skipped;
} em_sql_slt_stats;
int em_sql_slt_run(const char *path, const em_sql_slt_opts *opts, em_sql_slt_stats *st,
                   em_err *err);

/* Registers SQL's task functions with the engine (engine/plan/fn.h: sql.stage, sql.sort_key),
 * on the driver and on every executor, before any plan is decoded and before em_context_new
 * of a context the distributed path uses; the `ember` command calls it at start. Idempotent.
 * Returns 0 or a negative EM_E* code. Any thread, before contexts exist. */
int em_sql_register(void);

#endif
