/* shuffle/shuffle_int.h - internals shared by the files of shuffle/ (and its tests and fuzz
 * harness); no other module includes this.
 *
 * Three pieces live here:
 *   - the index file codec (index.c),
 *   - the combining hash map (aggmap.c), used by the map-side writer (combine by
 *     (partition, key)) and by the reduce-side AGGREGATE reducer (partition always 0),
 *   - sorted run files (runs.c): a run is a file of concatenated zstd KV blocks whose records
 *     are in key order; a run reader streams it back one block at a time. */
#ifndef EMBER_SHUFFLE_INT_H
#define EMBER_SHUFFLE_INT_H

#include "engine/base/hmap.h"
#include "shuffle/shuffle.h"

/* ---------------------------------------------------------------- index (index.c) */

#define EM__SHUFFLE_INDEX_MAGIC "EMIX"
#define EM__SHUFFLE_INDEX_VERSION 1u
/* Bytes of an index file for nparts partitions: 20-byte header, offsets, crc. */
#define EM__SHUFFLE_INDEX_SIZE(nparts) (20u + 8u * ((size_t)(nparts) + 1u) + 4u)

/* A parsed index. `offs` is borrowed from the bytes given to the parser (nparts + 1 little-
 * endian u64 values); read them with em__shuffle_index_off. */
typedef struct em__shuffle_index {
    uint32_t shuffle_id;
    uint32_t map_id;
    uint32_t nparts;
    const uint8_t *offs;
} em__shuffle_index;

/* Validates an index file image (untrusted): size, magic, version, crc, partition count,
 * offsets[0] == 0 and non-decreasing. EM_ECORRUPT naming the reason; *ix untouched on error.
 * Does not allocate. */
int em__shuffle_index_decode(const uint8_t *p, size_t n, em__shuffle_index *ix, em_err *err);
static inline uint64_t em__shuffle_index_off(const em__shuffle_index *ix, uint32_t i)
{
    return em_load_le64(ix->offs + 8 * (size_t)i);
}
/* Removes every file of the n shuffles sids under dir in one directory scan (sorts sids). */
void em__shuffle_remove_many(const char *dir, uint32_t *sids, size_t n);
/* Appends the encoding of an index (offs has nparts + 1 entries) to out. */
int em__shuffle_index_encode(em_vbuf *out, uint32_t sid, uint32_t mid, uint32_t nparts,
                             const uint64_t *offs, em_err *err);

/* ---------------------------------------------------------------- aggmap (aggmap.c) */

/* A combined record that does not fit a slot (key longer than EM__AGG_INLINE_KEY or value
 * not 8 bytes), carved from the map's slab: this header, then klen key bytes, then vpad
 * bytes of padding (0, except for in-place combiners: em_combiner.acc_size, whose value
 * starts 16-byte aligned), then vcap bytes of room for the value, of which vlen are used. */
typedef struct em__agg_entry {
    uint32_t klen;
    uint32_t vlen;
    uint32_t vcap;
    uint32_t vpad;
    uint8_t kv[];
} em__agg_entry;

#define EM__AGG_INLINE_KEY 14u

/* One 32-byte table slot; two per cache line (the table is 64-byte aligned).
 * FORMAT (host order, offsets in bytes):
 *   0  u32 h32     low 32 bits of the table hash (the home slot is h32 & mask)
 *   4  u32 part
 *   8  u8  kind    0 empty, 1 inline (key and 8-byte value here), 2 entry (e)
 *   9  u8  klen    inline key length (0..14)
 *  10  u8  key[14] inline key, zero padded: bytes 8..23 compare as two little-endian u64
 *                  against a probe image built once per lookup
 *  24  8 bytes     inline: the value; entry: em__agg_entry pointer
 * So the common lookup (short key, 8-byte combiner, e.g. wordcount) touches one slot and
 * nothing else. */
typedef struct em__agg_slot {
    uint32_t h32;
    uint32_t part;
    uint8_t kind;
    uint8_t klen;
    uint8_t key[EM__AGG_INLINE_KEY];
    union {
        uint8_t v8[8];
        em__agg_entry *e;
    } u;
} em__agg_slot;

typedef struct em__slab_chunk em__slab_chunk;

/* Open-addressing (linear probing) hash map from (part, key) to a combiner value, on the
 * one table of the code base (em_hmap, engine/base/hmap.h): tab holds em__agg_slot slots
 * (used byte: kind), a power-of-two count of them (tab.cap), at most 3/4 full, tab.n of
 * them used; the probe loop is aggmap.c's own. Records live in the slots (inline) or in
 * slab entries the slots point to; both stay put until the next add that grows the table,
 * or reset. order: after em__aggmap_sort, the used slots in key order. One thread per map. */
typedef struct em__aggmap {
    const em_combiner *comb;
    bool values_are_combiners;   /* merge with merge_combiners, never create/merge_value */
    em_hmap tab;
    em__agg_slot **order;        /* tab.n slots in key order once sorted, else NULL */
    em__slab_chunk *chunks;      /* newest first */
    size_t slab_used;            /* bytes handed out by the slab */
    em_vbuf scratch;             /* combiner output */
} em__aggmap;

static inline em__agg_slot *em__aggmap_slots(const em__aggmap *m)
{
    return (em__agg_slot *)(void *)m->tab.slots;
}

void em__aggmap_init(em__aggmap *m, const em_combiner *comb, bool values_are_combiners);
void em__aggmap_destroy(em__aggmap *m);
/* Frees every entry (keeps nothing); the map is empty and usable afterwards. */
void em__aggmap_reset(em__aggmap *m);
/* Empties the map but keeps its slot table (no regrowing from scratch after a drain). */
void em__aggmap_clear(em__aggmap *m);
/* The slot table holds at least EM__AGG_MIN_SLOTS slots and grows (doubles) when more than
 * EM__AGG_LOAD_NUM/EM__AGG_LOAD_DEN of them would be used. */
#define EM__AGG_MIN_SLOTS 64u
#define EM__AGG_LOAD_NUM 3u
#define EM__AGG_LOAD_DEN 4u
/* Bytes the slot table grows by on the next add (any key: the table grows before the
 * lookup), else 0. Inline, as em__aggmap_mem: the writer asks both on every record. */
static inline size_t em__aggmap_grow_bytes(const em__aggmap *m)
{
    if ((m->tab.n + 1) * EM__AGG_LOAD_DEN <= m->tab.cap * EM__AGG_LOAD_NUM)
        return 0;
    return (m->tab.cap ? m->tab.cap : EM__AGG_MIN_SLOTS) * sizeof(em__agg_slot);
}
/* Merges (part, key, val) into the map. Combiner errors pass through; EM_ENOMEM on OOM (the
 * map stays consistent). */
int em__aggmap_add(em__aggmap *m, uint32_t part, em_slice key, em_slice val, em_err *err);
/* As em__aggmap_add for r's key and value, given key_hash == em_hash64(key, 0)
 * (em_shuffle_key_hash). The record goes by pointer: five arguments stay in registers. */
int em__aggmap_add_hashed(em__aggmap *m, uint32_t part, uint64_t key_hash, const em_rec *r,
                          em_err *err);
/* The 32 stored hash bits of (part, key hash); the home slot is their low bits. */
static inline uint32_t em__agg_hash32(uint64_t key_hash, uint32_t part)
{
    uint64_t x = key_hash ^ 0x2545f4914f6cdd1dULL ^ ((uint64_t)part * 0x9e3779b97f4a7c15ULL);
    return (uint32_t)((x * 0xbf58476d1ce4e5b9ULL) >> 32);
}
/* Hints that (part, key_hash) will be added soon: prefetches its home slot.
 * always_inline is load-bearing: GCC models __builtin_prefetch as free of side effects, so
 * an out-of-line copy of this function is found "const" (local-pure-const) and every call
 * to it is deleted as dead code, silently disabling the prefetch (GCC 12 did exactly that
 * in em_shuffle_writer_prefetch, which compiled to a bare `ret`). */
__attribute__((always_inline)) static inline void em__aggmap_prefetch(const em__aggmap *m,
                                                                     uint32_t part,
                                                                     uint64_t key_hash)
{
    if (m->tab.cap)
        __builtin_prefetch(&em__aggmap_slots(m)[em__agg_hash32(key_hash, part) &
                                                (m->tab.cap - 1)], 0, 3);
}
/* Approximate bytes held: slab bytes in use plus the tables. */
static inline size_t em__aggmap_mem(const em__aggmap *m)
{
    return m->slab_used + m->tab.cap * sizeof(em__agg_slot) +
           (m->order ? m->tab.n * sizeof *m->order : 0);
}
/* Iterates the records in table order (any order): 1 with *part and *r (borrowed until the
 * next add or reset) and *pos advanced, 0 at the end. Start with *pos = 0. */
int em__aggmap_next(const em__aggmap *m, size_t *pos, uint32_t *part, em_rec *r);
/* Sorts the records by key (memcmp order, shorter first), then by part, for
 * em__aggmap_at. Adds are invalid afterwards: only em__aggmap_at, next and reset. EM_ENOMEM
 * when the order array cannot be allocated (the map is unchanged). */
int em__aggmap_sort(em__aggmap *m, em_err *err);
/* Record i (< tab.n) in sorted order, after em__aggmap_sort. */
void em__aggmap_at(const em__aggmap *m, size_t i, uint32_t *part, em_rec *r);

/* ---------------------------------------------------------------- runs (runs.c) */

/* Sorted-run file writer: records appended in key order are cut into blocks of about
 * block_bytes, zstd-encoded and written to a fresh file in dir (mkstemp). */
typedef struct em__run_writer {
    int fd;
    char path[512];
    int level;
    size_t block_bytes;    /* payload bytes per block; open sets EM_BATCH_TARGET_BYTES, a
                              caller with a small budget may lower it before the first add */
    uint64_t bytes;        /* file size so far */
    em_batch_builder bb;
    em_vbuf enc;
} em__run_writer;

int em__run_writer_open(em__run_writer *w, const char *dir, int level, em_err *err);
int em__run_writer_add(em__run_writer *w, em_slice key, em_slice val, em_err *err);
/* Flushes the last block and closes the file (the file stays, path names it). */
int em__run_writer_close(em__run_writer *w, em_err *err);
/* Closes (if open) and removes the file. */
void em__run_writer_abort(em__run_writer *w);

/* Streams a run file back one block at a time. */
typedef struct em__run_reader {
    int fd;
    const char *path;      /* borrowed */
    uint64_t off;
    uint64_t size;
    em_batch *batch;       /* current block, NULL before the first/after the last */
    em_batch_iter it;
    em_vbuf raw;
} em__run_reader;

int em__run_reader_open(em__run_reader *r, const char *path, em_err *err);
/* 1 and *rec (valid until the next call), 0 at the end, <0 on error (EM_ECORRUPT/EM_EIO). */
int em__run_reader_next(em__run_reader *r, em_rec *rec, em_err *err);
/* Starts again at the first record (no I/O until the next em__run_reader_next). */
void em__run_reader_rewind(em__run_reader *r);
void em__run_reader_close(em__run_reader *r);

/* Segment access shared by the local fetch and the shuffle server (fetch.c).
 * em__shuffle_segment_open: opens map mid's data file (*fd, closed by the caller; dpath its
 * name) and finds reduce partition reduce's segment [*start, *end), checked against the
 * index and the file's size; errors carry the reason without the ids.
 * em__shuffle_fetch_fail: the fetch contract for such an error: EM_EFETCH prefixed
 * "shuffle S map M reduce R", or EM_ENOMEM prefixed the same. */
int em__shuffle_segment_open(const char *dir, uint32_t sid, uint32_t mid, uint32_t reduce,
                             int *fd, uint64_t *start, uint64_t *end, char *dpath,
                             size_t dcap, em_err *err);
int em__shuffle_fetch_fail(int rc, uint32_t sid, uint32_t mid, uint32_t reduce, em_err *err);

#endif /* EMBER_SHUFFLE_INT_H */
