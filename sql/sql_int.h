/* sql/sql_int.h - internals shared by the files of sql/: tokens (lex.c), the syntax tree
 * (parse.c), value operations (value.c), expression evaluation (expr.c), the logical plan
 * (plan.c), the local executor (exec_local.c), tables (catalog.c), CSV (csv.c), and the
 * distributed path: stage plans as bytes (serial.c), task functions (dist_fns.c), the
 * driver's executor (exec_dist.c).
 *
 * MEMORY: everything of one statement (tokens, tree, plan, intermediate rows, result rows)
 * lives in one em_arena that the statement's result takes over; tables keep their rows in
 * their own arena. Nothing in a statement arena is freed one by one.
 * THREADS: one statement runs on one thread; a distributed task decodes its own copy of a
 * stage plan into its own arena. */
#ifndef EMBER_SQL_INT_H
#define EMBER_SQL_INT_H

#include "sql/sql.h"

/* ---------------------------------------------------------------- lexer (lex.c) */
typedef enum sql_tok_kind {
    TK_EOF,
    TK_IDENT,   /* bare word (keywords too; the parser tells them apart) */
    TK_QIDENT,  /* "quoted", [bracketed] or `backquoted` identifier: never a keyword */
    TK_STRING,  /* '...' with '' unescaped */
    TK_INT,     /* decimal digits */
    TK_FLOAT,   /* digits with '.' or exponent */
    TK_OP,      /* punctuation: ( ) , . ; + - * / % = == != <> < <= > >= || */
    TK_ERROR,
} sql_tok_kind;

typedef struct sql_tok {
    uint8_t kind;
    uint32_t pos;      /* byte offset in the statement text */
    uint32_t len;      /* bytes in the text */
    const char *text;  /* NUL-terminated value (unquoted/unescaped), in the arena */
} sql_tok;

/* Tokenizes src[0..n) up to the first ';' outside quotes (included as an op token) or the
 * end; returns the tokens (last TK_EOF) in the arena and *end = bytes consumed. On a bad
 * token returns NULL with diag set. */
sql_tok *em__sql_lex(em_arena *a, const char *src, size_t n, size_t *ntok, size_t *end,
                     em_sql_diag *diag);
int em__sql_diag(em_sql_diag *d, int code, int64_t pos, const char *fmt, ...) EM_PRINTF(4, 5);
/* Edit distance (Levenshtein, case-insensitive) for "did you mean" suggestions. */
int em__sql_edit_distance(const char *a, const char *b);

/* ---------------------------------------------------------------- syntax tree (parse.c) */
typedef struct sql_select sql_select;
typedef struct sql_plan sql_plan;

typedef enum sql_expr_kind {
    E_LIT,      /* v */
    E_NAME,     /* [qual.]name, before binding */
    E_COL,      /* bound column: level (0 = this query, 1 = its outer query...), col */
    E_STAR,     /* * or qual.* in a select list or COUNT(*) */
    E_UNARY,    /* op: '-', '+', '!' (NOT), '~' (bitwise not) */
    E_BINARY,   /* op: see sql_binop */
    E_AND,
    E_OR,
    E_ISNULL,   /* a IS [NOT] NULL (neg) */
    E_IS,       /* a IS [NOT] b (neg): NULL-safe equality */
    E_BETWEEN,  /* a [NOT] BETWEEN b AND c */
    E_INLIST,   /* a [NOT] IN (args) */
    E_INSUB,    /* a [NOT] IN (sub) */
    E_EXISTS,   /* [NOT] EXISTS (sub) */
    E_SUBQ,     /* (sub): scalar */
    E_CASE,     /* CASE [a] WHEN args[2i] THEN args[2i+1] ... [ELSE b] END */
    E_CAST,     /* CAST(a AS cast_type) */
    E_FUNC,     /* fn(args): scalar function */
    E_AGG,      /* aggregate fn([DISTINCT] a) or COUNT(*) (a NULL); slot agg */
    E_LIKE,     /* a [NOT] LIKE b */
} sql_expr_kind;

typedef enum sql_binop {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_CONCAT,
    OP_BITAND, OP_BITOR, OP_SHL, OP_SHR,   /* SQLite's integer bit operators */
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
} sql_binop;

typedef enum sql_fn {
    FN_ABS, FN_COALESCE, FN_NULLIF, FN_LOWER, FN_UPPER, FN_LENGTH, FN_SUBSTR, FN_IFNULL,
    FN_EXTRACT_YEAR, FN_ROUND,
    AG_COUNT, AG_SUM, AG_AVG, AG_MIN, AG_MAX, AG_TOTAL, AG_GROUP_CONCAT,
} sql_fn;

typedef struct sql_expr sql_expr;
struct sql_expr {
    uint8_t kind;        /* sql_expr_kind */
    uint8_t op;          /* sql_binop, unary op char, sql_fn */
    bool neg;            /* NOT variants */
    bool distinct;       /* aggregate DISTINCT */
    bool correlated;     /* subquery refers to an outer query's columns */
    uint8_t cast_type;   /* em_sql_type for CAST */
    uint32_t pos;        /* offset of its first token (errors) */
    em_sql_value v;      /* E_LIT */
    const char *qual, *name; /* E_NAME, E_STAR (qual), E_FUNC/E_AGG (name) */
    sql_expr *a, *b, *c;
    sql_expr **args;
    uint32_t nargs;
    int32_t level, col;  /* E_COL */
    int32_t agg;         /* E_AGG: slot in the aggregate row */
    sql_select *sub;     /* E_INSUB, E_EXISTS, E_SUBQ */
    sql_plan *plan;      /* the bound subquery */
    /* Uncorrelated subquery result, computed once per statement. */
    bool cached;
    em_sql_value cache_v;
    struct sql_rel *cache_rel;
};

typedef enum sql_join_kind { J_COMMA, J_INNER, J_CROSS, J_LEFT } sql_join_kind;

typedef struct sql_from {
    const char *table;   /* NULL for a subquery */
    const char *alias;
    sql_select *sub;
    uint8_t join;        /* how it joins the items before it */
    sql_expr *on;
    uint32_t pos;
} sql_from;

typedef struct sql_order {
    sql_expr *e;
    bool desc;
} sql_order;

typedef enum sql_setop { SET_NONE, SET_UNION, SET_UNION_ALL, SET_EXCEPT, SET_INTERSECT } sql_setop;

struct sql_select {
    bool distinct;
    sql_expr **items;
    const char **aliases;   /* NULL entries for unaliased items */
    const char **texts;     /* each item's source text (column names of unaliased items) */
    uint32_t nitems;
    sql_from *from;
    uint32_t nfrom;
    sql_expr *where;
    sql_expr **group;
    uint32_t ngroup;
    sql_expr *having;
    uint8_t setop;          /* how `next` combines with everything before it */
    sql_select *next;       /* next core of a compound select */
    sql_order *order;       /* of the whole compound */
    uint32_t norder;
    sql_expr *limit, *offset;
    uint32_t pos;
};

typedef struct sql_coldef {
    const char *name;
    uint8_t type;          /* em_sql_type */
    const char *type_text; /* as written */
    uint32_t pos;
} sql_coldef;

typedef enum sql_stmt_kind {
    S_SELECT, S_CREATE, S_CREATE_AS, S_INSERT, S_DROP, S_CREATE_INDEX, S_DROP_INDEX,
    S_SHOW_TABLES, S_DESCRIBE, S_EXPLAIN,
} sql_stmt_kind;

typedef struct sql_stmt {
    uint8_t kind;
    bool if_exists, if_not_exists;
    uint32_t pos;
    const char *table;
    uint32_t table_pos;
    sql_coldef *cols;        /* CREATE */
    uint32_t ncols;
    const char **icols;      /* INSERT column list */
    uint32_t *icol_pos;
    uint32_t nicols;
    sql_expr ***rows;        /* INSERT VALUES */
    uint32_t nrows, rowlen;
    sql_select *select;      /* SELECT, CREATE AS, INSERT SELECT, EXPLAIN */
    const char *csv_path;    /* CREATE ... USING csv OPTIONS (path '...') */
    bool csv_header;         /*   header 'true' */
    char csv_delim;          /*   delimiter ',' */
    bool csv_multiline;      /*   multiline 'true': files read whole, not split */
    bool csv_skip_bad;       /*   mode 'dropmalformed': bad rows skipped and counted */
    bool ember;              /* USING ember OPTIONS (path 'DIR'): columnar files (colfile.c);
                                csv_path is the directory */
    struct sql_stmt *inner;  /* EXPLAIN */
} sql_stmt;

/* Parses the tokens of one statement; NULL with diag set on a syntax error. */
sql_stmt *em__sql_parse(em_arena *a, const char *src, const sql_tok *toks, size_t ntok,
                        em_sql_diag *diag);

/* ---------------------------------------------------------------- values (value.c) */
static inline em_sql_value em__sql_null(void) { em_sql_value v = {0}; return v; }
static inline em_sql_value em__sql_int(int64_t i)
{
    em_sql_value v = {.type = EM_SQL_INT, .u.i = i};
    return v;
}
static inline em_sql_value em__sql_dbl(double d)
{
    em_sql_value v = {.type = EM_SQL_DOUBLE, .u.d = d};
    return v;
}
static inline em_sql_value em__sql_bool(bool b)
{
    em_sql_value v = {.type = EM_SQL_BOOL, .u.i = b};
    return v;
}
static inline bool em__sql_is_num(const em_sql_value *v)
{
    return v->type == EM_SQL_INT || v->type == EM_SQL_DOUBLE || v->type == EM_SQL_BOOL;
}
/* Total order for sorting, grouping and DISTINCT: NULL = NULL and sorts first; numbers by
 * value; then dates, then text bytewise. */
int em__sql_cmp_total(const em_sql_value *a, const em_sql_value *b);
/* SQL comparison: NULL when either side is NULL (returns 2), else -1/0/1. A date compared
 * with text parses the text as a date. */
int em__sql_cmp_sql(const em_sql_value *a, const em_sql_value *b);
uint64_t em__sql_hash(const em_sql_value *v, uint64_t seed); /* consistent with cmp_total */
/* Arithmetic and concatenation as SQLite: integer overflow goes to double, x/0 and x%0
 * are NULL, text operands are read as numbers. Strings of || go to the arena. */
int em__sql_binop(em_arena *a, int op, const em_sql_value *x, const em_sql_value *y,
                  em_sql_value *out);
/* Truth value: -1 NULL, 0 false, 1 true (numbers nonzero; text read as a number). */
int em__sql_truth(const em_sql_value *v);
/* Number of text as SQLite reads it (leading numeric prefix; 0 when none). */
em_sql_value em__sql_text_num(const char *s, uint32_t len);
int em__sql_cast(em_arena *a, const em_sql_value *v, int type, em_sql_value *out);
/* A TEXT value of the n bytes at s, copied into a (s may be NULL when n is 0). */
int em__sql_text(em_arena *a, const char *s, size_t n, em_sql_value *out);
/* Parses YYYY-MM-DD into days since 1970-01-01; false when malformed. */
bool em__sql_parse_date(const char *s, size_t n, int64_t *days);
void em__sql_date_ymd(int64_t days, int *y, int *m, int *d);
/* Column type from a declared type name, as SQLite's affinity rules. */
em_sql_type em__sql_type_from_decl(const char *decl);
/* Converts v for storage in a column of type t (SQLite affinity: integral doubles and
 * numeric text become integers in INTEGER columns, and so on). */
int em__sql_coerce(em_arena *a, int t, const em_sql_value *v, em_sql_value *out);
int em__sql_value_dup(em_arena *a, const em_sql_value *v, em_sql_value *out);

/* ---------------------------------------------------------------- logical plan (plan.c)
 * Rows flowing between plan nodes of one SELECT core's FROM clause are "wide": every FROM
 * item has a fixed slice [off, off+width) of the row, so a column binds to one offset
 * whatever order the joins run in; a node fills only the slices of the items it has
 * joined. Above the FROM clause, AGG appends one value per aggregate to the wide row, and
 * PROJECT produces the output columns (visible ones, then hidden sort keys). */
typedef enum sql_plan_kind {
    P_ONEROW,    /* one row of width `width` (all NULL): SELECT without FROM */
    P_SCAN,      /* table rows into slice [off, off+tcols) */
    P_SUBQ,      /* the rows of `in` (a sub-plan) into slice [off, ...) */
    P_FILTER,    /* rows of in where pred is true */
    P_JOIN,      /* in x right, keys lkeys[i] = rkeys[i], then pred; LEFT keeps unmatched */
    P_AGG,       /* groups of in by keys; row = representative wide row + aggregates */
    P_PROJECT,   /* exprs over in */
    P_DISTINCT,  /* first row of each distinct prefix of nkeep columns */
    P_SORT,      /* by columns sort_cols (desc flags) */
    P_LIMIT,     /* limit/offset expressions (constant) */
    P_TRIM,      /* first nkeep columns */
    P_SETOP,     /* in op right */
    P_REL,       /* the rows of rel (width `width`): an input of a distributed stage or rows
                    computed before (sql/exec_dist.c); never made by the planner */
} sql_plan_kind;

/* P_AGG modes (sql/exec_dist.c): a partial aggregate emits, per group, the representative
 * wide row and AGG_STATE_VALS state values per aggregate; a final one merges such rows. */
enum { AGG_FULL = 0, AGG_PARTIAL = 1, AGG_FINAL = 2 };
#define AGG_STATE_VALS 5

struct sql_plan {
    uint8_t kind;
    uint8_t join;           /* P_JOIN: J_INNER or J_LEFT */
    uint8_t setop;          /* P_SETOP */
    uint32_t width;         /* values per output row */
    sql_plan *in, *right;
    struct sql_table *table;/* P_SCAN */
    const char *label;      /* P_SCAN/P_SUBQ: alias for EXPLAIN */
    uint32_t off;           /* P_SCAN/P_SUBQ: offset of its slice in the wide row */
    uint32_t slice;         /* P_SCAN/P_SUBQ: width of its slice */
    uint32_t *slice_off;    /* P_JOIN: the slices the right side fills, copied into the */
    uint32_t *slice_len;    /*   left row on a match */
    uint32_t nslices;
    sql_expr *pred;         /* P_SCAN (pushed-down filter), P_FILTER, P_JOIN (residual) */
    sql_expr **lkeys, **rkeys;
    uint32_t nkeys;
    sql_expr **exprs;       /* P_AGG: group keys; P_PROJECT: outputs */
    uint32_t nexprs;
    sql_expr **aggs;        /* P_AGG */
    uint32_t naggs;
    uint32_t nkeep;         /* P_DISTINCT, P_TRIM */
    uint32_t *sort_cols;    /* P_SORT */
    bool *sort_desc;
    uint32_t nsort;
    sql_expr *limit, *offset;
    /* Output column names and declared types (PROJECT and everything above it). */
    const char **names;
    uint8_t *types;
    uint8_t agg_mode;       /* P_AGG: AGG_FULL, AGG_PARTIAL or AGG_FINAL */
    struct sql_rel *rel;    /* P_REL */
    uint32_t input;         /* P_REL in a stage: 0 the partition's rows, 1 the second input
                               (the right side of a shuffle join), 2 + i broadcast id i */
    bool cache_build;       /* P_JOIN: keep the right side's hash table in jcache while the
                               right rows are the same (a chunked stage's broadcast) */
    struct sql_join_cache *jcache;
};

typedef struct sql_catalog sql_catalog;
typedef struct sql_table {
    char *name;
    uint32_t ncols;
    char **cols;
    uint8_t *types;       /* em_sql_type per column */
    char **type_text;
    em_sql_value *rows;   /* nrows * ncols */
    size_t nrows, cap;
    em_arena strings;     /* text of the rows */
    /* CSV tables: where the rows come from. A table whose file is larger than
     * ember.sql.localThreshold is not read at CREATE (rows empty, loaded false) and is
     * scanned by executors; the local path reads it when it needs it. */
    char *csv_path;
    char csv_delim;
    bool csv_header, csv_multiline, csv_skip_bad, loaded;
    uint64_t csv_bytes;
    uint64_t bad_rows;    /* rows skipped (csv_skip_bad) by the last load */
    /* ember tables (USING ember, sql/colfile.c): csv_path is the directory, these its part
     * files and their row groups; csv_bytes is rows x columns x 8 (the planner's guess of
     * bytes, as for CSV files). */
    bool emc;
    char **emc_files;
    uint32_t emc_nfiles;
    uint32_t *emc_nrg;
} sql_table;

sql_table *em__sql_catalog_find(sql_catalog *c, const char *name);
/* Closest table name to `name` within a small edit distance, or NULL. */
const char *em__sql_catalog_suggest(sql_catalog *c, const char *name);

/* CSV (csv.c): parses one record of p at *off into out[0..*nf) (TEXT pointing into scratch,
 * NULL for empty unquoted fields); 1 at the end of input; EM_ECORRUPT naming the line. */
int em__sql_csv_record(const char *p, size_t n, size_t *off, char delim, em_vbuf *scratch,
                       em_sql_value *out, uint32_t maxf, uint32_t *nf, uint64_t *line,
                       em_err *err);
/* What a CSV reader needs to know of its table (csv.c; also shipped to executors). */
typedef struct sql_csv_spec {
    const char *path, *table;
    uint32_t ncols;
    const uint8_t *types;
    const char *const *cols;
    char delim;
    bool header;     /* the first record of the file names the columns */
    bool multiline;  /* quoted line breaks allowed (the range is a whole file) */
    bool skip_bad;   /* bad rows counted in *bad instead of an error */
    const uint8_t *need; /* NULL, or per column 0 when the query never reads it: such a
                            column is still checked (a bad value is the same error) but
                            given as NULL, and text columns are not even copied */
} sql_csv_spec;
typedef int (*sql_csv_row_fn)(void *ud, const em_sql_value *row);
/* Parses the records of p[0..n) that start in [start, end) (a record under way at start
 * belongs to the range before; the last one may run past end), converting fields to the
 * column types (text into strings) and calling fn per row. Errors name the file and line.
 * Without multiline, a quoted line break is an error (ranges split at line breaks). */
int em__sql_csv_parse(const sql_csv_spec *sp, const char *p, size_t n, size_t start,
                      size_t end, em_arena *strings, sql_csv_row_fn fn, void *ud,
                      uint64_t *bad, em_err *err);
void em__sql_csv_spec_of(const sql_table *t, sql_csv_spec *sp);
/* Appends one row (t->ncols values) to the in-memory table ud (a sql_table *): the row
 * callback of CSV and ember-table loads. 0, or EM_ENOMEM. */
int em__sql_table_append_row(void *ud, const em_sql_value *row);
/* Reads t's CSV file whole into t's rows (t->csv_* options); t->loaded on success. On error
 * t may hold the rows before the bad one. */
int em__sql_csv_load(sql_table *t, em_err *err);

/* ember tables (colfile.c): reads the footers of t->csv_path's part files into t's columns
 * (t->ncols 0) and emc_* fields; writes a result's rows as one part file. */
int em__sql_emc_attach(sql_table *t, em_err *err);
int em__sql_emc_load(sql_table *t, em_err *err);
int em__sql_emc_write_rel(const char *dir, uint32_t part, uint32_t ncols, const uint8_t *types,
                          const char *const *names, const em_sql_value *rows, size_t n,
                          uint64_t *written, em_err *err);

/* Builds the plan of a SELECT (outer: scope of the enclosing query for a subquery, NULL at
 * the top). NULL with diag set on unknown names and misuse. */
struct sql_scope;
sql_plan *em__sql_plan_select(em_arena *a, sql_catalog *cat, sql_select *sel,
                              struct sql_scope *outer, em_sql_diag *diag);
/* Rewrites an OR whose branches share conjuncts, (c AND p) OR (c AND q), into
 * c AND (p OR q) (rewrite.c); *e is replaced, unbound expressions only. */
int em__sql_factor_or(em_arena *a, sql_expr **e);
/* Constant-folds e in place where every operand is a literal. */
int em__sql_fold(em_arena *a, sql_expr *e);
/* Appends the plan as an indented tree (EXPLAIN). */
int em__sql_plan_explain(const sql_plan *p, em_vbuf *out);

/* ---------------------------------------------------------------- execution */
typedef struct sql_rel {      /* materialized rows: n rows of width values */
    uint32_t width;
    size_t n, cap;
    em_sql_value *v;
    /* Or rows still in the row codec (a broadcast bound as the build side of a hash join on
     * columns, sql/dist_fns.c): enc_n bytes, n = 0; the join hashes their keys and decodes
     * a row only when a probe matches it. */
    const uint8_t *enc;
    size_t enc_n;
} sql_rel;

typedef struct sql_env {      /* the row an expression sees, and its outer queries' rows */
    const em_sql_value *row;
    const struct sql_env *outer;
} sql_env;

typedef struct sql_exec {
    em_arena *arena;          /* the statement's */
    em_sql_diag *diag;
} sql_exec;

/* Runs a plan; *out points into the statement arena. */
int em__sql_run(sql_exec *x, const sql_plan *p, const sql_env *outer, sql_rel **out);
/* Frees the join hash tables kept on p's nodes (cache_build). */
void em__sql_plan_free_caches(sql_plan *p);
/* Join p keeps its build side's hash table (cache_build, keys on bare columns). */
bool em__sql_join_keeps_build(const sql_plan *p);
/* Builds that kept table now (before the probe rows are read); x's arena outlives it. */
int em__sql_join_prebuild(sql_exec *x, sql_plan *p);
/* False when p's kept table holds no row whose keys equal keys (p->nkeys values), so an
 * INNER join drops a probe row with these keys; true when it may (or nothing is kept). */
bool em__sql_join_may_match(const sql_plan *p, const em_sql_value *keys);
/* Evaluates e in env. */
int em__sql_eval(sql_exec *x, const sql_expr *e, const sql_env *env, em_sql_value *out);
int em__sql_rel_push(sql_exec *x, sql_rel *r, const em_sql_value *row);

/* ---------------------------------------------------------------- distributed path
 * Stage plans as bytes (serial.c), task functions (dist_fns.c), the driver's executor
 * (exec_dist.c). */
bool em__sql_expr_portable(const sql_expr *e);
/* Encodes p (uncorrelated subqueries are run now, on the driver, and shipped as rows). */
int em__sql_plan_encode(sql_exec *x, const sql_plan *p, em_vbuf *b);
int em__sql_plan_decode(em_arena *a, const uint8_t *p, size_t n, size_t *used, sql_plan **out,
                        em_err *err);
int em__sql_expr_encode(sql_exec *x, const sql_expr *e, em_vbuf *b);
/* Decodes an expression (NULL when encoded absent) whose columns must be below width. */
int em__sql_expr_decode(em_arena *a, const uint8_t *p, size_t n, size_t *used, uint32_t width,
                        sql_expr **out, em_err *err);
int em__sql_value_read(em_arena *a, const uint8_t *p, size_t n, em_sql_value *v, size_t *used,
                       em_err *err);
uint64_t em__sql_hash_row(const em_sql_value *v, uint32_t n);
int em__sql_csv_spec_encode(em_vbuf *b, const sql_csv_spec *sp, uint32_t acc);

/* The distributed path's settings (ember.sql.* keys of the context's configuration). */
typedef struct sql_dist_conf {
    bool force;                 /* ember.sql.forceDistributed */
    uint64_t local_threshold;   /* ember.sql.localThreshold: bytes of input */
    uint64_t bcast_threshold;   /* ember.sql.autoBroadcastJoinThreshold: bytes */
} sql_dist_conf;
int em__sql_dist_conf(struct em_context *sc, sql_dist_conf *c, em_err *err);
/* Estimated bytes of input a plan reads (tables in memory: rows x columns x 16; CSV tables
 * not read: their file size). */
uint64_t em__sql_plan_input_bytes(const sql_plan *p);
/* Runs p on the distributed path: rows out as a local rel, or (rdd_out non-NULL) as a
 * dataset of rows in the row codec. */
int em__sql_dist_run(sql_exec *x, struct em_context *sc, const sql_dist_conf *c,
                     const sql_plan *p, sql_rel **out, struct em_rdd **rdd_out);
/* Appends the physical plan the distributed path would run. */
int em__sql_dist_explain(const sql_dist_conf *c, const sql_plan *p, em_vbuf *out);

#endif
