/* mllib/als/als_int.h - internals shared by the files of mllib/als: the context blob of the
 * ALS task functions, block keys and the names of the registered functions.
 *
 * BYTE ORDER: blobs and block records are written and read with memcpy in host order; ember
 * runs on little-endian hosts only and every process of a job runs the same build. */
#ifndef EMBER_MLLIB_ALS_INT_H
#define EMBER_MLLIB_ALS_INT_H

#include "engine/base/hmap.h"
#include <string.h>

#include "mllib/als/als.h"

#define EM__ALS_MAGIC 0x414c5343u   /* "ALSC" */
#define EM__ALS_BLOCK_MAGIC 0x414c5342u   /* "ALSB" */
#define EM__ALS_OUTL_MAGIC 0x414c534fu    /* "ALSO" */
#define EM__ALS_MAX_BLOCKS 4096
#define EM__ALS_MAX_RANK 512

/* Command-line integers (cli.c, gen.c): v must be a plain decimal integer, digits only (no
 * sign, blanks, "0x", fraction or exponent: "1.5", "0x10", "1e0", "-1" are refused rather
 * than truncated or wrapped), within lo..hi. false otherwise, *out untouched. */
bool em__als_parse_count(const char *v, uint64_t lo, uint64_t hi, uint64_t *out);

/* The fixed part of every ALS function's context blob; followed by
 * u32 key_salt_user[nblk[0]], u32 key_salt_item[nblk[1]] and, when has_yty, the k x k
 * double Gram matrix Y^T Y of the source factors (implicit solves). */
typedef struct em__als_cfg {
    uint32_t magic;
    uint32_t rank;
    uint32_t side;          /* the side this call works on: 0 users, 1 items */
    uint32_t nblk[2];       /* blocks of users, items */
    uint32_t implicit, nonnegative, has_yty;
    int32_t n[2];           /* users, items (dense id bounds) */
    uint64_t seed;
    double lambda, alpha;
} em__als_cfg;

/* A decoded blob: borrowed pointers into the blob bytes (copied where alignment matters). */
typedef struct em__als_ctx {
    em__als_cfg cfg;
    uint32_t salt[2][EM__ALS_MAX_BLOCKS];
    double *yty;            /* em_malloc'd k*k or NULL */
} em__als_ctx;

/* Encodes cfg + salts (+ yty when cfg->has_yty) into out. EM_ENOMEM. */
int em__als_blob(const em__als_cfg *cfg, const uint32_t *const salt[2], const double *yty,
                 em_vbuf *out);
/* Decodes and validates a blob. ctx->yty must be freed with em_free. EM_ECORRUPT. */
int em__als_blob_decode(em_slice blob, em__als_ctx *ctx, em_err *err);

/* The block of entity id on a side: ids are scrambled by a seeded mix before the modulo, so
 * neighbouring (and popular, low-numbered) ids spread over the blocks. */
static inline uint32_t em__als_block_of(uint64_t seed, uint32_t side, int32_t id, uint32_t nblk)
{
    uint64_t salt = (seed * 2 + side + 1) * 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(em_mix64((uint64_t)(uint32_t)id ^ salt) % nblk);
}

/* Block key: u32 big-endian block id, u32 big-endian salt. The salt is chosen on the driver
 * so that the hash partitioner (em_hash64(key, 0) mod nblk, shuffle/shuffle.h) puts block b
 * in partition b: one block per task, no two blocks colliding in one partition. */
#define EM__ALS_KEY_LEN 8
static inline void em__als_key(uint8_t key[8], uint32_t block, uint32_t salt)
{
    for (int i = 0; i < 4; i++) {
        key[i] = (uint8_t)(block >> (24 - 8 * i));
        key[4 + i] = (uint8_t)(salt >> (24 - 8 * i));
    }
}
static inline uint32_t em__als_key_block(const uint8_t *key)
{
    return (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 | (uint32_t)key[2] << 8 | key[3];
}
uint32_t em__als_find_salt(uint32_t block, uint32_t nblk);

static inline uint32_t em__ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline float em__ldf(const uint8_t *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}

/* Builds the block records of side cfg->side (cfg->n, nblk, seed, side are used) from all
 * ratings, on up to nthreads threads of the calling process: recs[b] (initialised by the
 * caller) receives block b's record, or stays empty when the block has no ratings.
 * EM_EINVAL for out-of-range ids or a block too large for its links, EM_ENOMEM. */
#define EM__ALS_BUILD_THREADS 16
int em__als_build_blocks(const em__als_cfg *cfg, const em_rating *r, size_t n,
                         uint32_t nthreads, em_vbuf *recs, em_err *err);
/* A run of ratings (borrowed). */
typedef struct em__als_seg {
    const em_rating *r;
    size_t n;
} em__als_seg;
/* Builds the record of one block (cfg->side, `block`) from the ratings of seg[0..nseg), in
 * that order, into *rec (from em_emit_big_alloc with a key of EM__ALS_KEY_LEN bytes, *len
 * bytes: emit it with em_emit_big_kv or free it with em_emit_big_free), or *rec NULL
 * when no rating belongs to the block: the executors' builder of em_als_train_rdd, where the
 * segments are one partition's ratings. The same code as em__als_build_blocks, so both
 * paths give byte-identical records for the same ratings in the same order. EM_EINVAL,
 * EM_ENOMEM. */
int em__als_build_block(const em__als_cfg *cfg, const em__als_seg *seg, size_t nseg,
                        uint32_t block, uint8_t **rec, size_t *len, em_err *err);
/* The TAKE function's blob: u32 magic "ALST", u32 nblk, u32 first[nblk + 1] (block b's
 * record is broadcast id[first[b]] when first[b + 1] == first[b] + 1; first[b + 1] ==
 * first[b]: the block has no ratings), u32 id[first[nblk]]. A record of any size is one
 * broadcast: the engine moves it in pieces (docs/cluster.md). */
#define EM__ALS_TAKE_MAGIC 0x414c5354u

/* A validated view of a block record (blocks.c FORMATS); pointers borrow the record. */
/* A block record's links are (u32 src, f32 r) pairs: link t's src at src + t * STRIDE, its
 * rating at r + t * STRIDE. */
#define EM__ALS_LINK_STRIDE 8
typedef struct em__als_blockview {
    uint32_t n, nnz, nsrc, idxbits;
    const uint8_t *ids, *ptr, *src, *r, *ocnt, *oidx;
    size_t olen;             /* bytes of the out-link part (ocnt + oidx) */
} em__als_blockview;

/* Floats per factor row in the solve's message buffer (solve.c msgs): rows of rank <= 16
 * are padded to 8 or 16 floats, so that none straddles two cache lines. */
static inline uint32_t em__als_row_stride(uint32_t k)
{
    return k <= 8 ? 8 : k <= 16 ? 16 : k;
}

/* Read chunks (solve.c, blocks.c): chunk c of a block's received factors is, in every
 * source block's message, the rows at positions [c << shift, (c + 1) << shift), with
 * 2^shift rows per message chosen so that a chunk holds at most EM__ALS_CHUNK_BYTES of
 * factors over all nsrc messages (em__als_chunk_shift). A message lists its rows by
 * ascending id, and ids are hashed evenly over the blocks, so chunk c is about an id
 * range of the whole source side: a row of links in ascending source id (the item side
 * of a file grouped by user) comes out (nearly) in chunk order as placed. The build
 * orders the other rows by chunk (input order within a chunk) and the solve passes over
 * the chunks one at a time, so its random factor reads stay within a few MiB of L3
 * instead of the whole buffer (30 MB of user factors per item block at Netflix scale).
 * Only speed depends on the order: the solve reads every link once whatever its order. */
#define EM__ALS_CHUNK_BYTES ((uint32_t)2 << 20)
static inline uint32_t em__als_chunk_shift(uint32_t k, uint32_t nsrc)
{
    uint64_t row = (uint64_t)em__als_row_stride(k) * 4;
    uint32_t s = 0, jb = 0;
    while (((uint64_t)1 << jb) < nsrc)
        jb++;
    while (((uint64_t)2 << (s + jb)) * row <= EM__ALS_CHUNK_BYTES)
        s++;
    return s;
}
/* The number of chunks of messages of cnt[0..nsrc) rows. */
static inline uint32_t em__als_chunk_count(const uint32_t *cnt, uint32_t nsrc, uint32_t shift)
{
    uint32_t most = 0;
    for (uint32_t j = 0; j < nsrc; j++)
        most = cnt[j] > most ? cnt[j] : most;
    return (uint32_t)(((uint64_t)most + ((uint64_t)1 << shift) - 1) >> shift);
}
/* Whether a block of n entities and nnz links, whose sources make nch chunks, is solved
 * chunk by chunk (the build orders its rows by chunk only then). The chunked solve keeps
 * each entity's sums between passes ((k + 1)(k + 2) / 2 + k doubles), streams them once
 * per chunk and cuts each entity's ratings into one run per chunk: worth it when the
 * sums are small (at most EM__ALS_CHUNK_SUMS bytes), the runs long (64 links on average)
 * and the sums' traffic (nch passes) at most a quarter of the factor bytes the links read.
 * At Netflix scale, rank 10: the item side is (8.9k items per block, 5600 links each, 15
 * chunks, 5.4 MB of sums), the user side is not (17.7k item rows: one chunk). Rank 50:
 * neither (the item side's 59 chunks would stream 98 MB of sums 59 times: 26.9 against
 * 24.4 s per iteration; the user side's sums would take 2.6 GB). */
#define EM__ALS_CHUNK_SUMS ((uint64_t)128 << 20)
/* Doubles kept per entity between chunk passes: the upper triangle of the (k + 1)-square
 * Gram sums, then b. */
static inline size_t em__als_sums_len(uint32_t k)
{
    size_t k1 = (size_t)k + 1;
    return k1 * (k1 + 1) / 2 + k;
}
static inline bool em__als_chunked(uint32_t n, uint64_t nnz, uint32_t nch, uint32_t k)
{
    uint64_t sums = (uint64_t)n * em__als_sums_len(k) * 8;
    return nch > 1 && sums <= EM__ALS_CHUNK_SUMS && nnz >= (uint64_t)64 * n * nch &&
           (uint64_t)4 * nch * sums <= nnz * em__als_row_stride(k) * 4;
}
/* Checks the framing of a block record (not every index: users check those they use). */
int em__als_block_view(em_slice v, em__als_blockview *b, em_err *err);

/* The task functions, registered by name from the table in train.c (em_als_register, which
 * em_ml_register calls on every process, driver and executors alike). Each takes the blob of
 * em__als_blob. */
#define EM__ALS_FN_TAKE "ml.als.take"            /* PARTITION: block keys -> block records */
#define EM__ALS_FN_OUTLINKS "ml.als.outlinks"    /* MAP (values): block -> out-links */
#define EM__ALS_FN_INIT "ml.als.init"            /* MAP (values): block -> initial factors */
#define EM__ALS_FN_SEND "ml.als.send"            /* PARTITION: factors + outlinks -> msgs */
#define EM__ALS_FN_SOLVE "ml.als.solve"          /* PARTITION: msgs + block -> factors */
#define EM__ALS_FN_EVAL "ml.als.eval"            /* PARTITION: factors + msgs + block -> errors */
#define EM__ALS_FN_GRAM "ml.als.gram"            /* MAP: factors -> k x k doubles */
#define EM__ALS_FN_SUM "ml.als.sum"              /* REDUCE: element-wise double sum */
#define EM__ALS_FN_ROUTE "ml.als.route"          /* PARTITION: ratings -> (block key, rating) */
#define EM__ALS_FN_BUILD "ml.als.build"          /* PARTITION: routed ratings -> record */
#define EM__ALS_FN_READ_IDS "ml.als.read_ids"    /* PARTITION: byte range -> its ids */
#define EM__ALS_FN_READ "ml.als.read"            /* PARTITION: byte range -> ratings */
#define EM__ALS_FN_READ_RAW "ml.als.read_raw"    /* PARTITION: byte range -> ids by value */
#define EM__ALS_FN_RAW_IDS "ml.als.raw_ids"      /* PARTITION: ids by value -> ids record */
#define EM__ALS_FN_SHIFT "ml.als.shift"          /* PARTITION: ids by value -> dense ids */
#define EM__ALS_FN_SCORE "ml.als.score"          /* PARTITION: ratings -> error sums */
int em__als_fn_take(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err);
int em__als_fn_outlinks(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int em__als_fn_init(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int em__als_fn_send(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err);
int em__als_fn_solve(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err);
int em__als_fn_eval(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err);
int em__als_fn_gram(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int em__als_fn_route(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err);
int em__als_fn_build(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err);
int em__als_fn_read_ids(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                        em_err *err);
int em__als_fn_read(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err);
int em__als_fn_read_raw(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                        em_err *err);
int em__als_fn_raw_ids(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                       em_err *err);
int em__als_fn_shift(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err);
int em__als_fn_score(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err);
int em__als_fn_sum(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);

/* ---------------------------------------------------------------- executor ranges
 * (ratings.c, used by source.c) */

/* The format path would be parsed with (fmt, or detected from its first line) when a byte
 * range of it can be parsed alone: tsv, csv, movielens or netflix (a range looks back for
 * its movie); EM_RATINGS_AUTO otherwise (an unreadable or empty file, a first line longer
 * than 64 KiB). */
em_ratings_format em__ratings_detect(const char *path, em_ratings_format fmt);

typedef struct em__ratings_range {
    const char *path;
    em_ratings_format fmt;   /* tsv, csv, movielens or netflix (not with raw) */
    bool skip_bad;
    bool raw;                /* RAW mode: ids pushed by value, no id maps (below) */
    uint64_t start, end;     /* nominal byte range: owns the lines starting in it
                                (em_line_align's rule) */
} em__ratings_range;
/* Parses the lines a byte range owns with the driver reader's code (fast path included),
 * interning ids into users/items and pushing ratings to out; flush (may be NULL) is called
 * after each block of lines and may take and empty out. The CSV header rule applies when
 * the range starts the file. A bad line fails with the driver reader's message, its
 * FILE:LINE counted from the start of the file. EM_EIO, EM_ECORRUPT, EM_ENOMEM, flush's.
 * With rg->raw (the one pass, ml.als.read_raw) users and items are not used (may be NULL):
 * each id is pushed as em__idmap_raw_id of its text, which is what rev[index] of a mapped
 * parse into maps without direct_lim holds (-1 for a string). The lines parsed, skipped
 * and rejected, the counts and the messages are the mapped parse's; only ids differ.
 * Formats other than tsv, csv and movielens are refused (EM_EINVAL): a Netflix movie line
 * interns an item of its own. */
int em__ratings_parse_range(const em__ratings_range *rg, em_idmap *users, em_idmap *items,
                            em_ratings *out, int (*flush)(void *, em_ratings *, em_err *),
                            void *ud, em_err *err);

/* ---------------------------------------------------------------- id maps (idmap.c)
 * The map's layout is shared with the rating reader (ratings.c), whose fast path looks
 * known integer ids up in the direct table without a call. */
#define EM__IDMAP_DIRECT_MAX (1u << 26)   /* integer ids below this: the direct table */
#define EM__IDMAP_LOCAL_DIRECT_MAX (1u << 22)   /* the same in a range's local map (16 MiB) */

struct em_idmap {
    int32_t *direct;       /* direct[id] = index + 1, 0 = absent */
    size_t direct_cap;
    uint32_t direct_lim;   /* 0, or (local maps) integer ids >= this go to the string hash */
    int64_t *rev;          /* per index: integer id >= 0, or -(arena offset + 1) */
    size_t rev_cap;
    int32_t n;
    em_hmap strs;          /* string ids: em_hmap (engine/base/hmap.h) of idmap_slot (idmap.c) */
    size_t nstr;
    char *arena;           /* NUL-terminated string ids, in index order */
    size_t alen, acap;
};

/* Whether t[0..n) is a canonical integer id (digits, no leading zero but in "0", value below
 * EM__IDMAP_DIRECT_MAX), the ids kept in the direct table; *v = its value. Shared by the
 * id maps and the rating parser's RAW mode so both draw the integer/string line alike. */
static inline bool em__idmap_token_int(const char *t, size_t n, uint32_t *v)
{
    if (n == 0 || n > 8 || (n > 1 && t[0] == '0'))
        return false;
    uint32_t x = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(t[i] - '0');
        if (d > 9)
            return false;
        x = x * 10 + d;
    }
    if (x >= EM__IDMAP_DIRECT_MAX)
        return false;
    *v = x;
    return true;
}
/* An id as RAW RATINGS carry it (source.c): its value when em__idmap_token_int, else -1. */
static inline int32_t em__idmap_raw_id(const char *t, size_t n)
{
    uint32_t v;
    return em__idmap_token_int(t, n, &v) ? (int32_t)v : -1;
}

/* The index of canonical integer id v (< EM__IDMAP_DIRECT_MAX) whose text is tok[0..n),
 * added when new (past m->direct_lim it goes to the string hash, as tok). EM_ENOMEM. */
int em__idmap_intern_int(em_idmap *m, uint32_t v, const char *tok, size_t n, int32_t *out,
                         em_err *err);
/* Interns the id of index idx of map `from` into m: the merge step of the parallel reader. */
int em__idmap_intern_from(em_idmap *m, const em_idmap *from, int32_t idx, int32_t *out,
                          em_err *err);
/* Forgets every id of index >= n0 (undoes a failed parallel read). Cannot fail. */
void em__idmap_truncate(em_idmap *m, int32_t n0);

/* ---------------------------------------------------------------- dense ids, shared reading
 * (idmap.c, source.c, records.c) */

/* 0 or 1 when m's ids are all canonical integers and exactly base..base+n-1; -1 otherwise
 * (also for an empty map). */
int em__idmap_dense_base(const em_idmap *m);
/* Interns base..base+n-1 into the empty map m (index i = id base + i). EM_ENOMEM. */
int em__idmap_fill_dense(em_idmap *m, int base, int32_t n, em_err *err);
/* When m is dense (em__idmap_dense_base), renumbers it by value and sets *perm (em_malloc'd,
 * m's old size) to the new index of every old index; returns 1. 0 with *perm NULL when m
 * is not dense. EM_ENOMEM. */
int em__idmap_renumber_dense(em_idmap *m, int32_t **perm, em_err *err);

/* source.c's id lists, shared by records.c. FORMATS in source.c. */
int em__als_put_ids(const em_idmap *m, em_vbuf *b);
int em__als_take_ids(em_idmap *m, const char **p, const char *end, uint32_t n, em_err *err);
/* Appends u32 nbits and the bitmap of m's ids when all are canonical integers (true; *rc
 * EM_ENOMEM on failure), else appends nothing and returns false. */
bool em__als_put_bitmap(const em_idmap *m, em_vbuf *b, int *rc);
/* Pass 1's records collected from ids (one per partition, index i first), interned in
 * partition order into users/items; a side whose bit is set in skip_sides is left alone
 * (its maps were filled densely). *need_lists: a side sent a bitmap that did not prove
 * dense (run pass 1 again without bitmaps); NULL when bitmaps were not asked for.
 * *dense (may be NULL): sides filled densely from the bitmaps. */
int em__als_merge_ids(em_rdd *ids, em_idmap *users, em_idmap *items, uint32_t skip_sides,
                      bool *need_lists, uint32_t *dense, em_err *err);
/* The maps blob of pass 2 (u32 n_users, u32 n_items, u32 dense flags: bit 0/1 users/items
 * numbered by value, bit 2/3 their base is 1; then the ids of the other sides) into b, and
 * back into two empty maps. EM_ENOMEM, EM_ECORRUPT. */
int em__als_maps_blob(const em_idmap *users, const em_idmap *items, uint32_t dense,
                      em_vbuf *b);
int em__als_maps_decode(em_slice mb, em_idmap *users, em_idmap *items, em_err *err);

#define EM__ALS_FN_TRIPLE_IDS "ml.als.triple_ids"   /* PARTITION: triples -> their ids */
#define EM__ALS_FN_TRIPLE_MAP "ml.als.triple_map"   /* PARTITION: triples -> ratings */

/* model.c, shared with ranking.c. The top k of `count` rows of side (0: users against the
 * items, 1: items against the users) from row `first`, by blocked SGEMM and a heap per row:
 * ids/scores are count x k (-1 / NaN padding; ties: lower index first). EM_ENOMEM. */
int em__als_top_range(const em_als_model *m, int side, int32_t first, int32_t count, int k,
                      int32_t *ids, float *scores, em_err *err);
/* A side's factor rows (n rows of k floats, borrowed: they must outlive it) laid out again
 * in panels of eight rows for scoring one row of the other side against all of them
 * (model.c, "scoring in panels"). init: EM_ENOMEM; free: any state after init. */
typedef struct em__als_panels {
    float *f;            /* [ceil(n / 8)][k][8], the rows past n zero; NULL without AVX2 */
    const float *rows;
    int32_t n;
    int k;
} em__als_panels;
int em__als_panels_init(em__als_panels *p, const float *rows, int32_t n, int k);
void em__als_panels_free(em__als_panels *p);

/* One user's ranking figures added to acc (precision@k, average precision, NDCG@k): items =
 * the model's item factors in panels, ex = its training items sorted ascending (excluded),
 * te its test ratings (relevant: > 0); ids/sc are k scratch slots. The top k is
 * em_als_recommend_items's, bit for bit. The caller checks the user has factors and a
 * relevant item. */
void em__als_rank_user(const em_als_model *m, const em__als_panels *items, int32_t u,
                       const int32_t *ex, size_t ntr, const em_rating *te, size_t nte, int k,
                       int32_t *ids, float *sc, double acc[3]);

/* ranking.c's task functions (em_als_io_register registers them). */
int em__als_ranking_register(void);

/* Adds up partition results of four doubles each (test scoring, ranking metrics) into acc;
 * EM_ECORRUPT naming `what` for a result of another size. */
int em__als_sum4(const em_records *recs, double acc[4], const char *what, em_err *err);

#endif /* EMBER_MLLIB_ALS_INT_H */
