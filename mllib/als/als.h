/* mllib/als/als.h - alternating least squares matrix factorisation on the engine (explicit
 * ALS-WR, implicit feedback, non-negative), rating readers, the Netflix-shaped rating
 * generator, the model (predict, recommend, metrics, save/load) and the `ember als` /
 * `ember gen ratings` entry points. docs/als.md describes the algorithm and the formats.
 *
 * THREADS: training runs on the driver thread of its context (one training per context at a
 * time); everything else may be called from any thread on distinct objects. A model is
 * immutable after training or loading and may be read by many threads.
 * OWNERSHIP: stated per function; _new/_free and _init/_destroy follow STYLE.md. */
#ifndef EMBER_MLLIB_ALS_H
#define EMBER_MLLIB_ALS_H

#include <stdint.h>
#include <stdio.h>

#include "engine/ember.h"

/* ---------------------------------------------------------------- ratings
 * A rating as it travels through the engine: one EM_REC_FIXED record of 12 bytes, in host
 * (little-endian on every platform ember supports) byte order. Ids are dense indices. */
typedef struct em_rating {
    int32_t user;   /* dense user index, 0 <= user < n_users */
    int32_t item;   /* dense item index */
    float rating;
} em_rating;
_Static_assert(sizeof(em_rating) == 12, "a rating is a 12-byte FIXED record");
_Static_assert(offsetof(em_rating, rating) == 8, "rating layout");

/* Maps external ids (text tokens) to dense indices 0.. in order of first appearance and
 * back. Canonical non-negative integers (no sign, no leading zero, at most 8 digits) below
 * 2^26 go through a direct table, everything else through a hash table of strings. One
 * thread per object. */
typedef struct em_idmap em_idmap;
em_idmap *em_idmap_new(void);                      /* NULL on OOM */
void em_idmap_free(em_idmap *m);                   /* NULL ok */
int32_t em_idmap_size(const em_idmap *m);
/* The index of token tok[0..n), or -1 when unknown. */
int32_t em_idmap_find(const em_idmap *m, const char *tok, size_t n);
/* The index of tok, adding it when new. EM_ENOMEM; EM_EINVAL past 2^31-1 ids or for an
 * empty token. */
int em_idmap_intern(em_idmap *m, const char *tok, size_t n, int32_t *out, em_err *err);
/* The external id of index idx as a NUL-terminated string: borrowed from m (valid until the
 * next intern) or written into buf; NULL if idx is out of range. */
const char *em_idmap_name(const em_idmap *m, int32_t idx, char buf[24]);

typedef enum em_ratings_format {
    EM_RATINGS_AUTO = 0,     /* by file name and first line */
    EM_RATINGS_TSV = 1,      /* user item rating [timestamp], tab or space separated */
    EM_RATINGS_CSV = 2,      /* user,item,rating[,timestamp], optional header line */
    EM_RATINGS_MOVIELENS = 3,/* user::item::rating::timestamp (ratings.dat) */
    EM_RATINGS_NETFLIX = 4,  /* "MOVIEID:" lines, then user,rating,date */
} em_ratings_format;

/* Parses "tsv", "csv", "movielens", "netflix", "auto"; -1 when unknown. */
int em_ratings_format_parse(const char *s);

typedef struct em_ratings_read_opts {
    em_ratings_format format;
    bool skip_bad_lines;     /* count malformed lines instead of failing */
    /* Dense integer ids are numbered by value: when every user (item) id of a read into
     * empty id maps is a canonical integer and together they are exactly 0..n-1 or 1..n,
     * id v gets index v (v - 1) instead of its order of first appearance, and the
     * executors' reader (em_als_read_ratings) ships no id lists and builds no string map
     * for that side. Each side is decided alone. em_ratings_read itself numbers by first
     * appearance: em_ratings_dense_renumber gives the driver's reader the same numbering. */
    bool dense_ids;
} em_ratings_read_opts;                            /* zero = auto, strict, mapped ids */

/* A growable array of ratings (caller-provided struct; zero it or em_ratings_init). */
typedef struct em_ratings {
    em_rating *recs;
    size_t n, cap;
    uint64_t skipped;        /* malformed lines skipped (skip_bad_lines) */
    uint64_t lines;          /* lines read */
} em_ratings;
void em_ratings_init(em_ratings *r);
void em_ratings_destroy(em_ratings *r);
int em_ratings_push(em_ratings *r, int32_t user, int32_t item, float rating, em_err *err);

/* Reads a ratings file (or, for a directory, every regular file in it whose name does not
 * start with '.' or '_', in name order: the Netflix Prize training_set/ layout) and appends
 * to out, mapping ids through users/items (both required, usually shared by train and test
 * files). Errors name the file, line and, where useful, column: EM_EIO, EM_ECORRUPT.
 * Regular files of 8 MiB or more (tsv, csv, movielens; not the Netflix layout) are parsed
 * on min(online CPUs, 8) threads; the environment variable EMBER_PARSE_THREADS=N (1..64)
 * sets the count for files of any size (1 = the calling thread only). Results, counts and
 * error messages never depend on the thread count. */
int em_ratings_read(const char *path, const em_ratings_read_opts *opts, em_idmap *users,
                    em_idmap *items, em_ratings *out, em_err *err);
/* Rating files read on the executors (source.c): the ratings as a dataset of FIXED 12-byte
 * em_rating records with dense ids (persisted; em_als_train_rdd takes it), n ratings,
 * lines read and bad lines skipped. maps_bcast: the id maps' broadcast, dropped by
 * em_als_ratings_release. */
typedef struct em_als_ratings {
    em_rdd *ratings;
    em_rdd *cached;          /* the persisted dataset behind ratings when it is not ratings
                                itself (the one pass's raw ratings under a shift), or NULL */
    uint64_t n, lines, skipped;
    uint32_t maps_bcast;
    uint32_t dense;          /* bit 0: user ids numbered by value (dense_ids), bit 1: items */
} em_als_ratings;
/* Reads path (a file, or a directory's files as em_file_list_expand lists them) as
 * em_ratings_read does, parsing on the executors byte range by byte range: ids are added
 * to users/items (shared by a training and a test read) and numbered exactly as
 * em_ratings_read numbers them; a bad line fails with "FILE:LINE: ..." (or is counted with
 * skip_bad_lines). The Netflix layout too: a range that starts inside a movie's section
 * finds its movie by reading back to the last "MOVIEID:" line before it. The driver holds
 * the id maps, never the ratings. Returns 0, 1 when a file needs the driver's reader (an
 * unreadable first line, one longer than 64 KiB with format auto) with nothing done, or a
 * negative error.
 * *out is zeroed first; release it with em_als_ratings_release. Driver thread. */
int em_als_read_ratings(em_context *sc, const char *path, const em_ratings_read_opts *opts,
                        em_idmap *users, em_idmap *items, em_als_ratings *out, em_err *err);
void em_als_ratings_release(em_context *sc, em_als_ratings *r);   /* zeroed struct ok */
/* Drops the cached copy of the ratings (out->cached, else out->ratings); the handles stay,
 * so a later use recomputes them through their lineage. */
void em_als_ratings_unpersist(em_als_ratings *r);
/* Tests: how many files em_ratings_read has parsed on several threads in this process (a
 * file that fell back to the calling thread does not count). Any thread. */
uint64_t em__ratings_parallel_files(void);
/* The same parser over bytes in memory; `name` is used in error messages. format AUTO looks
 * at the name and the first line. Untrusted input: never asserts, never reads past len. */
int em_ratings_parse(const char *name, const uint8_t *p, size_t len,
                     const em_ratings_read_opts *opts, em_idmap *users, em_idmap *items,
                     em_ratings *out, em_err *err);

/* ---------------------------------------------------------------- generator */

typedef struct em_gen_ratings_opts {
    double scale;            /* 1.0 = Netflix size */
    uint64_t seed;
    const char *out_prefix;  /* writes PREFIX.train.tsv, PREFIX.test.tsv, PREFIX.meta.json */
    bool integer;            /* round ratings to 1..5 stars */
    unsigned threads;        /* 0 = online CPUs; the output never depends on it */
} em_gen_ratings_opts;

/* Summary written to PREFIX.meta.json (and returned when out is not NULL). */
typedef struct em_gen_ratings_info {
    int64_t n_users, n_items, n_ratings, n_train, n_test;
    double noise_floor_rmse;     /* hidden model's RMSE on the test set */
    double global_mean_rmse;     /* predicting the training mean */
    double train_mean;
} em_gen_ratings_info;
int em_gen_ratings(const em_gen_ratings_opts *opts, em_gen_ratings_info *out, em_err *err);

/* ---------------------------------------------------------------- training */

typedef struct em_als_params {
    int rank;                    /* factors per user/item (0 = 10) */
    int iterations;              /* full iterations (0 = 10) */
    double lambda;               /* regularisation, times each row's rating count (ALS-WR) */
    bool implicit;               /* implicit feedback (Hu, Koren, Volinsky 2008) */
    double alpha;                /* implicit confidence 1 + alpha*|r| (0 = 1.0) */
    bool nonnegative;            /* non-negative factors (NNLS) */
    uint32_t user_blocks;        /* 0 = default parallelism */
    uint32_t item_blocks;        /* 0 = default parallelism */
    uint64_t seed;               /* initial factors and block hashing */
    int checkpoint_interval;     /* iterations between lineage cuts (0 = 5, < 0 never) */
    int half_iterations;         /* tests: stop after this many half-steps if > 0 */
    /* Optional progress callback after each full iteration (driver thread). */
    void (*progress)(void *ud, int iteration, double seconds);
    void *progress_ud;
    /* Optional: called with progress_ud (driver thread) once the ratings are no longer
     * read: em_als_train, once the block records are built (the caller may free them);
     * em_als_train_rdd, once both sides are routed and before the blocks are built (the
     * caller may unpersist them: the builds then reuse that memory). */
    void (*ratings_done)(void *ud);
    /* Optional: called with progress_ud (driver thread) when a phase before the iterations
     * ends ("blocks built", "user blocks distributed", "item blocks distributed") and after
     * them ("training metrics"), with its seconds. */
    void (*phase)(void *ud, const char *what, double seconds);
    /* Optional: RMSE/MAE of the model on the training ratings, computed on the executors
     * from the block records (no copy of the ratings needed); cold is 0. */
    struct em_als_metrics *train_metrics;
} em_als_params;

/* A trained factorisation. Rows of users/items without training ratings are NaN (cold). */
typedef struct em_als_model {
    int rank;
    int32_t n_users, n_items;
    bool implicit;
    float *user_factors;         /* n_users x rank, row-major */
    float *item_factors;         /* n_items x rank */
} em_als_model;

/* Trains on ratings (borrowed for the call; user < n_users, item < n_items), blocking them
 * on the engine of sc: per-block in-link and out-link structures are built on the driver
 * (threads), broadcast to the executors and persisted there once per side (the ratings are
 * not read after that: see ratings_done), and every half-iteration ships factors
 * to the blocks that need them through the engine's shuffle. *out: new model, free with
 * em_als_model_free. Errors: EM_EINVAL for bad parameters or ids, engine errors as is. */
/* Registers ALS's task functions by name (idempotent; em_als_train calls it, and
 * em_ml_register calls it on every process of a cluster). 0 or EM_EINVAL on a name clash. */
int em_als_register(void);

int em_als_train(em_context *sc, const em_rating *ratings, size_t n, int32_t n_users,
                 int32_t n_items, const em_als_params *params, em_als_model **out,
                 em_err *err);
/* As em_als_train, from a dataset of ratings: `ratings` holds FIXED 12-byte em_rating
 * records (dense ids, 0 <= user < n_users, 0 <= item < n_items; em_rdd_map_fixed and
 * friends make them), from any source. The blocks are built where they live: each rating
 * is keyed by its user block and by its item block, both shuffles' map sides run, then
 * every partition builds and caches its block record (route.c); the driver never holds a
 * rating. `ratings` is read twice (once per side): persist it when computing it is costly;
 * it is borrowed and not needed after ratings_done is called. For the same ratings in the
 * same order, seed and blocks, the model is bit-identical to em_als_train's. Phases
 * reported: "ratings routed to their blocks", "user blocks built", "item blocks built",
 * "training metrics". A rating out of range fails the job
 * with EM_EINVAL naming it. Driver thread. */
int em_als_train_rdd(em_context *sc, em_rdd *ratings, int32_t n_users, int32_t n_items,
                     const em_als_params *params, em_als_model **out, em_err *err);
/* The initial factor of entity `id` of side 0 (users) or 1 (items): seeded per entity, so
 * it does not depend on blocking (tests use it for dense references). */
void em_als_init_factor(uint64_t seed, int side, int32_t id, int rank, bool nonnegative,
                        float *out);

/* ---------------------------------------------------------------- model */

em_als_model *em_als_model_new(int rank, int32_t n_users, int32_t n_items); /* NaN rows */
void em_als_model_free(em_als_model *m);           /* NULL ok */
bool em_als_model_has_user(const em_als_model *m, int32_t u);
bool em_als_model_has_item(const em_als_model *m, int32_t i);
/* x_u . y_i, or NaN when either is unknown (cold start) or out of range. */
float em_als_predict(const em_als_model *m, int32_t user, int32_t item);

typedef enum em_cold_start { EM_COLD_NAN = 0, EM_COLD_DROP = 1 } em_cold_start;
/* Predicts every pair into out[n] (NaN for cold pairs); with DROP, cold pairs are left
 * out and out holds *n_out predictions in input order (pairs[i] kept: keep[i] = 1 if
 * keep is not NULL). */
void em_als_predict_pairs(const em_als_model *m, const em_rating *pairs, size_t n,
                          em_cold_start cold, float *out, size_t *n_out, uint8_t *keep);

typedef struct em_als_metrics {
    double rmse, mae;
    uint64_t n;                  /* pairs scored */
    uint64_t cold;               /* pairs without a prediction */
} em_als_metrics;
/* RMSE/MAE over ratings. Cold pairs: DROP skips them, NAN makes rmse/mae NaN when any is
 * cold (Spark's semantics: NaN propagates). */
void em_als_evaluate(const em_als_model *m, const em_rating *r, size_t n, em_cold_start cold,
                     em_als_metrics *out);
/* The training objective: explicit sum (r - x.y)^2 + lambda (sum n_u |x_u|^2 + sum n_i
 * |y_i|^2); implicit sum over ALL pairs of c_ui (p_ui - x.y)^2 + the same regulariser,
 * computed with the Gram-matrix trick. */
double em_als_objective(const em_als_model *m, const em_rating *r, size_t n,
                        const em_als_params *p);

/* As em_als_evaluate over a ratings dataset (FIXED 12-byte em_rating records), computed on
 * the executors: the model's factors are broadcast and each partition sums its errors.
 * EM_ENOMEM, engine errors. Driver thread. */
int em_als_evaluate_rdd(em_context *sc, const em_als_model *m, em_rdd *ratings,
                        em_cold_start cold, em_als_metrics *out, em_err *err);

/* Top-k items for user u by score (ties: lower index first), excluding items in `exclude`
 * (sorted ascending, may be NULL). Returns the count written (<= k); 0 for a cold user. */
int em_als_recommend_items(const em_als_model *m, int32_t user, int k, const int32_t *exclude,
                           size_t n_exclude, int32_t *items, float *scores);
/* Top-k users for item i. */
int em_als_recommend_users(const em_als_model *m, int32_t item, int k, int32_t *users,
                           float *scores);
/* Top-k items for every user with blocked SGEMM and a heap per user: items/scores are
 * n_users x k (-1 / NaN padding for cold users). EM_ENOMEM. */
int em_als_recommend_all(const em_als_model *m, int k, int32_t *items, float *scores,
                         em_err *err);

typedef struct em_rank_metrics {
    double precision_at_k, map, ndcg_at_k;
    uint64_t users;              /* users with at least one relevant test item */
} em_rank_metrics;
/* Ranking quality of an (implicit) model: relevant items of a user are its test items with
 * rating > 0; items seen in train (sorted by user; may be NULL) are excluded. */
int em_als_ranking_metrics(const em_als_model *m, const em_rating *train, size_t n_train,
                           const em_rating *test, size_t n_test, int k, em_rank_metrics *out,
                           em_err *err);

/* Saves the model as a directory (written to DIR.tmp.<pid> and renamed):
 *   metadata.json        {"class":"ember.als","version":2,"rank":..,"n_users":..,
 *                         "n_items":..,"implicit":..,"user_factors_crc32c":..,
 *                         "item_factors_crc32c":..[,"user_ids_crc32c":..,
 *                         "item_ids_crc32c":..]}: crc32c (em_crc32c from 0) of each file
 *   user_factors.bin     n_users*rank little-endian floats (NaN rows = cold)
 *   item_factors.bin     n_items*rank floats
 *   user_ids.txt, item_ids.txt   external ids, one a line (when id maps are given)
 * EM_EINVAL if dir exists. */
int em_als_model_save(const em_als_model *m, const char *dir, const em_idmap *users,
                      const em_idmap *items, em_err *err);
/* Loads a model directory; users/items (may be NULL) receive the id maps if present.
 * EM_ECORRUPT naming the file for any inconsistency: a checksum mismatch (version 2), an
 * infinite factor (any version; version 1 models, without checksums, still load). */
int em_als_model_load(const char *dir, em_als_model **out, em_idmap **users,
                      em_idmap **items, em_err *err);
/* The decoder behind load (untrusted bytes; the fuzz target). */
int em_als_model_decode(const char *name, const uint8_t *meta, size_t meta_len,
                        const uint8_t *uf, size_t uf_len, const uint8_t *itf, size_t if_len,
                        em_als_model **out, em_err *err);

/* ---------------------------------------------------------------- command line
 * Exit status 0 ok, 1 failure, 2 bad usage; errors on stderr as "ember als: ...". */
int em_als_cli_main(int argc, char **argv);        /* ember als ... (argv[0] = "als") */
/* As em_als_cli_main; on_context (NULL = none) is called with the context right after it is
 * made and with NULL right before it is freed (the `ember` command cancels its jobs on
 * Ctrl-C through it). */
int em_als_cli_run(int argc, char **argv, void (*on_context)(em_context *sc));
int em_gen_ratings_cli_main(int argc, char **argv);/* ember gen ratings ... (argv[0]="ratings") */
void em_als_cli_help(FILE *f);
void em_gen_ratings_cli_help(FILE *f);

/* ---------------------------------------------------------------- more inputs (issue 11, 14)
 * records.c: ratings from any dataset of text ids, dense-id renumbering, the SQL hook. */

/* Registers the task functions of records.c and ranking.c (idempotent; em_ml_register calls
 * it on every process). 0 or EM_EINVAL on a name clash. */
int em_als_io_register(void);

/* Renumbers the ids of r (read by em_ratings_read into users/items, empty before the read)
 * by value where a side's ids are dense integers (0..n-1 or 1..n; em_ratings_read_opts
 * dense_ids): the same numbering em_als_read_ratings gives with dense_ids. *dense (may be
 * NULL): bit 0 users renumbered, bit 1 items. EM_ENOMEM. */
int em_ratings_dense_renumber(em_ratings *r, em_idmap *users, em_idmap *items,
                              uint32_t *dense, em_err *err);

/* A rating with text ids as a record of a dataset (BYTES records): USER NUL ITEM NUL then the
 * rating as a 4-byte float in host order (als_int.h BYTE ORDER). Ids are 1..1024 bytes. */
#define EM_ALS_TRIPLE_MAX_ID 1024
/* Appends one such record to out. EM_EINVAL for an empty or too long id, EM_ENOMEM. */
int em_als_triple_encode(em_vbuf *out, const char *user, size_t ulen, const char *item,
                         size_t ilen, float rating, em_err *err);
/* Ratings from a dataset of triple records (any source: a SQL result, another job's output),
 * mapped through users/items on the executors as em_als_read_ratings maps a file: pass 1
 * sends each partition's distinct ids (in its order of first appearance) to the driver,
 * which interns them partition after partition (so the numbering is the order of first
 * appearance in the dataset's order), pass 2 maps every record with the maps broadcast.
 * A malformed record fails with "rating record R of partition P: ..." (or is counted in
 * out->skipped with opts->skip_bad_lines); opts->dense_ids as for files (then the model
 * is the one a file of the same lines gives); opts->format is not used; opts may be NULL.
 * recs is borrowed (computed twice: persist it when costly).
 * *out as em_als_read_ratings (release with em_als_ratings_release). Driver thread. */
int em_als_ratings_from_triples(em_context *sc, em_rdd *recs,
                                const em_ratings_read_opts *opts, em_idmap *users,
                                em_idmap *items, em_als_ratings *out, em_err *err);

/* `ember als --sql`: SQL sits beside mllib (sql/ links ember_ml), so ALS cannot call it;
 * the ember command installs sql's implementation at start (em_als_cli_set_sql; without
 * it --sql is an error saying SQL is not built in). query runs the statements of q->query
 * in a session holding the --table NAME=PATH tables and the --sql-init files, and turns the
 * result's three columns (user, item, rating: INTEGER or TEXT ids, a numeric rating) into
 * triple records *out (persisted; release with em_rdd_release). A NULL id or rating fails
 * naming the result row, or is counted in *skipped with q->skip_bad. */
typedef struct em_als_sql_query {
    const char *query;
    const char *const *tables;   /* NAME=PATH */
    uint32_t ntables;
    const char *const *init;     /* SQL files run first */
    uint32_t ninit;
    bool skip_bad;
} em_als_sql_query;
typedef struct em_als_sql_ops {
    int (*query)(em_context *sc, const em_als_sql_query *q, em_rdd **out, uint64_t *skipped,
                 em_err *err);
} em_als_sql_ops;
/* GLOBALS: written once by the ember command's main before any command runs. */
void em_als_cli_set_sql(const em_als_sql_ops *ops);

/* ---------------------------------------------------------------- on the executors
 * ranking.c: metrics and recommendations computed partition by partition on the executors
 * with the model's factors broadcast (docs/als.md "Recommend for all"). Driver thread. */

/* As em_als_ranking_metrics over datasets of FIXED em_rating records (train: the items
 * excluded; test: the relevant ones), computed on the executors: the ratings are grouped by
 * user (cogroup) and every user is ranked where its group lands. The same figures as the
 * driver's function up to the order of the floating-point sums. EM_EINVAL for k outside
 * 1..1000000, engine errors. */
int em_als_ranking_metrics_rdd(em_context *sc, const em_als_model *m, em_rdd *train,
                               em_rdd *test, int k, em_rank_metrics *out, em_err *err);

/* Recommend-for-all as a dataset of text lines, "SRC TAB DST TAB SCORE" (score %.9g), the k
 * best DST rows of every SRC row best first (ties: lower index first; rows without factors
 * get no line): side 0 = items for every user (Spark's recommendForAllUsers), 1 = users for
 * every item (recommendForAllItems). Ids are the external ones when users and items are
 * given (both, sized as the model), else the dense indices. Computed on the executors by
 * blocked SGEMM over ranges of rows; nothing is gathered on the driver. *out holds the lines
 * and the broadcasts they need: release with em_als_recs_release after the last action. */
typedef struct em_als_recs {
    em_rdd *lines;
    uint32_t bcast[2];
} em_als_recs;
int em_als_recommend_all_rdd(em_context *sc, const em_als_model *m, int side, int k,
                             const em_idmap *users, const em_idmap *items, em_als_recs *out,
                             em_err *err);
void em_als_recs_release(em_context *sc, em_als_recs *r);   /* zeroed struct ok */
/* em_als_recommend_all_rdd written to dir (dir/part-NNNNN by the executors, then
 * dir/_SUCCESS; EM_EINVAL if dir exists). */
int em_als_recommend_all_save(em_context *sc, const em_als_model *m, int side, int k,
                              const em_idmap *users, const em_idmap *items, const char *dir,
                              em_err *err);

#endif /* EMBER_MLLIB_ALS_H */
