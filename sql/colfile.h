/* sql/colfile.h - ember's columnar table files (sql/colfile.c has the format): a writer
 * of part files, a reader that checks every offset (files are untrusted bytes), and a scan
 * of one row group that evaluates a pushed-down filter's comparisons over typed vectors.
 * Internal to sql/. THREADS: a writer, an open file and a vector belong to one thread. */
#ifndef EMBER_SQL_COLFILE_H
#define EMBER_SQL_COLFILE_H

#include "sql/sql_int.h"

#define SQL_CF_RG_ROWS 65536u   /* rows per row group */

enum { SQL_CF_ALLNULL = 0, SQL_CF_I64 = 1, SQL_CF_F64 = 2, SQL_CF_TEXT = 3, SQL_CF_GEN = 4,
       SQL_CF_FOR = 5 };

typedef struct sql_cw sql_cw;   /* a part file being written (to PATH.tmp, renamed at close) */
sql_cw *em__sql_cw_open(const char *path, uint32_t ncols, const uint8_t *types,
                        const char *const *names, em_err *err);
/* Appends a row (its text is copied). */
int em__sql_cw_row(sql_cw *w, const em_sql_value *row, em_err *err);
/* Writes the last row group and the footer, renames the file into place and frees w
 * (also on error, when the temporary file is removed); *rows = rows written. */
int em__sql_cw_close(sql_cw *w, uint64_t *rows, em_err *err);
void em__sql_cw_abort(sql_cw *w);   /* removes the temporary file; NULL is a no-op */

typedef struct sql_cf_chunk {
    uint64_t off;
    uint32_t clen, rawlen, nnull;
    uint8_t enc, vt;
    bool hasmm;
    int64_t mn, mx;   /* f64 bits for DOUBLE */
} sql_cf_chunk;

typedef struct sql_cvec sql_cvec;
/* A scan's gate: a row whose columns cols[0..n) hold values that fn rejects is skipped
 * before it is built (e.g. join keys that match no row of a broadcast). */
typedef struct sql_cf_gate {
    uint32_t n;
    const uint32_t *cols;
    em_sql_value *vals;   /* n values of scratch (text borrowed from the column vector) */
    bool (*fn)(void *ud, const em_sql_value *vals);
    void *ud;
} sql_cf_gate;

typedef struct sql_cf {   /* an open part file */
    const char *path;
    const uint8_t *map;
    size_t size;
    bool mapped;
    uint32_t ncols;
    uint8_t *types;
    char **names;
    uint32_t nrg;
    uint32_t *rg_rows;
    sql_cf_chunk *chunks; /* nrg x ncols */
    uint64_t rows;
    em_arena arena;
    sql_cvec *vec;          /* scan scratch (em__sql_cf_scan), freed at close */
    uint32_t *sel;
    em_sql_value *row;
    const sql_cf_gate *gate; /* set by the caller for its scans (NULL: none) */
} sql_cf;

/* Maps and checks a part file; EM_ECORRUPT naming the file when it is not one. */
int em__sql_cf_open(sql_cf *f, const char *path, em_err *err);
/* Checks the bytes p[0..n) (kept by the caller) as a part file; f->path and f->arena set
 * by the caller (the fuzz harness). */
int em__sql_cf_parse(sql_cf *f, const uint8_t *p, size_t n, em_err *err);
void em__sql_cf_close(sql_cf *f);

struct sql_cvec {  /* one column of one row group, decompressed */
    uint8_t enc, vt;
    uint32_t n;
    const uint8_t *nulls;  /* NULL: no NULLs */
    const int64_t *i;
    const double *d;
    const uint32_t *len;
    const char *text;
    size_t *toff;
    em_sql_value *gen;
    int64_t *wide;         /* FOR chunks widened */
    void *buf;
    size_t bufcap, toffcap, gencap, widecap; /* buffers kept from one row group to the next */
};
/* Decompresses column c of row group g into v (zeroed before its first use; its buffers
 * are reused, free them with em__sql_cvec_free). */
int em__sql_cf_read(const sql_cf *f, uint32_t g, uint32_t c, sql_cvec *v, em_err *err);
void em__sql_cvec_get(const sql_cvec *v, uint32_t r, em_sql_value *out);
void em__sql_cvec_free(sql_cvec *v);

/* The part files of a table directory, sorted (free with em__sql_cf_list_free). */
int em__sql_cf_list(const char *dir, char ***files, uint32_t *nfiles, em_err *err);
void em__sql_cf_list_free(char **files, uint32_t n);

/* Calls fn with each row of row group g (the file's columns; columns with need[c] == 0 are
 * NULL, not even decompressed) that pred's comparisons of a column (at wide offset off +
 * column) with a number or date literal allow; the rest of pred is the caller's to check.
 * Text is copied into strings. A row group whose min/max rule a comparison out is skipped
 * whole (*skipped counts them). With f->gate, rows it rejects are skipped before fn.
 * fn's error is returned as it is. */
int em__sql_cf_scan(const sql_cf *f, uint32_t g, const uint8_t *need, const sql_expr *pred,
                    uint32_t off, em_arena *strings, sql_csv_row_fn fn, void *ud,
                    uint64_t *skipped, em_err *err);

#endif
