/* engine/data/data.h - records and batches: one format in memory, on the wire and on disk.
 *
 * A partition is a sequence of batches; a batch is a run of records of one kind in ONE
 * contiguous payload buffer. The payload bytes are what a task produces, what the block
 * store caches, what the shuffle writes and what travels between processes; a block is a
 * payload plus a header (kind, counts, checksums) and optional zstd compression.
 *
 * RECORD KINDS and their PAYLOAD FORMAT (little-endian):
 *   EM_REC_BYTES   per record: u32 len, len bytes            (text lines, encoded objects)
 *   EM_REC_KV      per record: u32 klen, u32 vlen, key, val  (the unit of shuffles)
 *   EM_REC_FIXED   per record: `width` bytes, no framing     (a rating is 12 bytes; a dense
 *                  vector of d doubles is width 8*d, so a FIXED batch of vectors is a
 *                  row-major nrecs x d matrix that BLAS takes as is)
 * Rows with a schema (SQL) and columnar batches come as further kinds; the block header has
 * a kind byte and a version for that (docs/data-format.md).
 *
 * THREADS: a finished em_batch is immutable and may be shared by any threads (refcounted);
 * builders and iterators are one thread per object. */
#ifndef EMBER_DATA_H
#define EMBER_DATA_H

#include "engine/base/base.h"

typedef enum em_rec_kind {
    EM_REC_BYTES = 1,
    EM_REC_KV = 2,
    EM_REC_FIXED = 3,
} em_rec_kind;

/* One record, borrowed. BYTES and FIXED records use only `val` (key.p == NULL, key.n == 0);
 * KV records use both. Lifetime: as stated by whoever hands it out (usually until the next
 * call on the iterator that produced it). */
typedef struct em_rec {
    em_slice key;
    em_slice val;
} em_rec;

#define EM_BATCH_MAX_REC_LEN 0x7fffffffu   /* a single key or value is below 2 GiB */
#define EM_BATCH_TARGET_BYTES (1u << 20)   /* builders aim for ~1 MiB payloads */
#define EM_BATCH_ALIGN 64                  /* FIXED payloads start on this boundary */

/* A finished, immutable, refcounted batch. */
typedef struct em_batch em_batch;

em_rec_kind em_batch_kind(const em_batch *b);
uint32_t em_batch_width(const em_batch *b);      /* FIXED only; 0 otherwise */
uint64_t em_batch_nrecs(const em_batch *b);
/* Borrowed: valid while the caller holds a reference to b. A non-empty FIXED payload is
 * EM_BATCH_ALIGN-aligned. */
const uint8_t *em_batch_payload(const em_batch *b);
size_t em_batch_nbytes(const em_batch *b);       /* payload bytes */
em_batch *em_batch_ref(em_batch *b);
void em_batch_unref(em_batch *b);                /* NULL ok */

/* Builds a batch from already-validated payload bytes (copied). NULL on OOM. */
em_batch *em_batch_new_copy(em_rec_kind kind, uint32_t width, uint64_t nrecs,
                            const void *payload, size_t nbytes);
/* As above but adopts `payload` (allocated with em_malloc); frees it on failure too. A
 * FIXED payload that is not EM_BATCH_ALIGN-aligned is copied (once) into one that is. */
em_batch *em_batch_new_take(em_rec_kind kind, uint32_t width, uint64_t nrecs, void *payload,
                            size_t nbytes);
/* As em_batch_new_take for a payload from em_malloc_big (64-byte aligned, so never copied);
 * the batch frees it with em_free_big. */
em_batch *em_batch_new_take_big(em_rec_kind kind, uint32_t width, uint64_t nrecs,
                                void *payload, size_t nbytes);
/* Checks that payload is a well-formed sequence of exactly nrecs records of the kind.
 * Untrusted input: never reads past n. EM_ECORRUPT naming the record index and offset. */
int em_batch_validate(em_rec_kind kind, uint32_t width, uint64_t nrecs, const uint8_t *p,
                      size_t n, em_err *err);

/* Builder: caller-provided struct. Append records, then finish into a batch. */
typedef struct em_batch_builder {
    em_rec_kind kind;
    uint32_t width;
    uint64_t nrecs;
    em_vbuf buf;
} em_batch_builder;

void em_batch_builder_init(em_batch_builder *bb, em_rec_kind kind, uint32_t width);
void em_batch_builder_destroy(em_batch_builder *bb);
/* Appends one record (kind decides which parts are used; FIXED requires val.n == width).
 * EM_EINVAL for a wrong size, EM_ENOMEM on OOM (builder unchanged). */
int em_batch_builder_add(em_batch_builder *bb, const em_rec *r, em_err *err);
int em_batch_builder_add_kv(em_batch_builder *bb, em_slice key, em_slice val, em_err *err);
int em_batch_builder_add_val(em_batch_builder *bb, em_slice val, em_err *err);
/* Makes room for `bytes` of payload at once (best effort: on OOM nothing changes and the
 * adds grow the buffer as usual). A builder that grows from empty to ~1 MiB by doubling
 * copies about 1 MiB and faults in 2 MiB of fresh pages on the way; callers that know how
 * large a batch will be (the previous one reached the target size) skip all of that. */
void em_batch_builder_reserve(em_batch_builder *bb, size_t bytes);
static inline size_t em_batch_builder_nbytes(const em_batch_builder *bb)
{
    return bb->buf.len;
}
/* Moves the contents into a new batch (NULL on OOM, err set) and resets the builder. */
em_batch *em_batch_builder_finish(em_batch_builder *bb, em_err *err);

/* Iterates the records of a batch (or of raw validated payload bytes). */
typedef struct em_batch_iter {
    em_rec_kind kind;
    uint32_t width;
    const uint8_t *p;
    const uint8_t *end;
} em_batch_iter;

void em_batch_iter_init(em_batch_iter *it, const em_batch *b);
void em_batch_iter_init_raw(em_batch_iter *it, em_rec_kind kind, uint32_t width,
                            const uint8_t *p, size_t n);
/* Returns true and fills *r (borrowed from the batch) or false at the end. The payload must
 * have been validated (batches always are). */
bool em_batch_iter_next(em_batch_iter *it, em_rec *r);

/* The iterator runs once per record on every hot path, so callers get this inline body
 * through the macro below; the out-of-line em_batch_iter_next (batch.c) has the same
 * behaviour for anyone taking its address. The bounds checks make it stop (return false)
 * instead of reading past `end` on unvalidated bytes; they cost one predictable branch. */
static inline bool em__batch_iter_next(em_batch_iter *it, em_rec *r)
{
    size_t left = (size_t)(it->end - it->p);
    if (it->kind == EM_REC_FIXED) {
        if (left < it->width || it->width == 0)
            return false;
        r->key = em_slice_make(NULL, 0);
        r->val = em_slice_make(it->p, it->width);
        it->p += it->width;
        return true;
    }
    if (it->kind == EM_REC_KV) {
        if (left < 8)
            return false;
        size_t klen = em_load_le32(it->p), vlen = em_load_le32(it->p + 4);
        if (klen + vlen > left - 8)
            return false;
        r->key = em_slice_make(it->p + 8, klen);
        r->val = em_slice_make(it->p + 8 + klen, vlen);
        it->p += 8 + klen + vlen;
        return true;
    }
    if (it->kind != EM_REC_BYTES || left < 4)
        return false;
    size_t len = em_load_le32(it->p);
    if (len > left - 4)
        return false;
    r->key = em_slice_make(NULL, 0);
    r->val = em_slice_make(it->p + 4, len);
    it->p += 4 + len;
    return true;
}
#define em_batch_iter_next(it, r) em__batch_iter_next((it), (r))

/* Encoded size of one record of the kind (for budgets). */
size_t em_rec_encoded_size(em_rec_kind kind, const em_rec *r);

/* ---------------------------------------------------------------- blocks
 *
 * BLOCK FORMAT (little-endian), the unit on disk and on the wire:
 *   off  size  field
 *     0     4  magic "EMBK"
 *     4     1  version = 1
 *     5     1  record kind
 *     6     1  codec: 0 = none, 1 = zstd
 *     7     1  reserved = 0
 *     8     4  width (FIXED) or 0
 *    12     8  nrecs
 *    20     8  raw payload bytes
 *    28     8  stored bytes (after the codec)
 *    36     4  crc32c of the stored bytes
 *    40     4  crc32c of header bytes 0..39
 *    44     -  stored bytes
 */
#define EM_BLOCK_HEADER_SIZE 44
#define EM_BLOCK_MAX_RAW ((uint64_t)1 << 34)   /* 16 GiB: larger claims are corrupt */

typedef enum em_codec {
    EM_CODEC_NONE = 0,
    EM_CODEC_ZSTD = 1,
} em_codec;

/* zstd levels the engine takes (ember.shuffle.compress.level): 1..22, and the fast levels
 * -1..-100 (`zstd --fast=N` is level -N). */
#define EM_ZSTD_LEVEL_MIN (-100)
#define EM_ZSTD_LEVEL_MAX 22

/* Appends the block encoding of b to out. level: zstd level (0 means 1; negative: a fast
 * level). */
int em_block_encode(const em_batch *b, em_codec codec, int level, em_vbuf *out, em_err *err);
/* Total size of the block starting at p (header + stored bytes) after checking the header
 * magic, version and header checksum; EM_ECORRUPT if n is too short or the header is bad. */
int em_block_peek_size(const uint8_t *p, size_t n, size_t *block_size, em_err *err);
/* Decodes one block (exactly n bytes) into a new batch: verifies checksums, decompresses,
 * validates the records. EM_ECORRUPT with the reason; *out untouched on error. */
int em_block_decode(const uint8_t *p, size_t n, em_batch **out, em_err *err);
/* Decodes a sequence of concatenated blocks, calling fn for each batch (the callee takes
 * the reference). Stops at the first error (fn's non-zero return is passed through). */
int em_blocks_decode_each(const uint8_t *p, size_t n,
                          int (*fn)(void *ud, em_batch *b, em_err *err), void *ud,
                          em_err *err);

/* Blocks received from another process (task results, block replies, shuffle segments)
 * are decoded with tighter bounds, checked on the header before anything is allocated, so
 * a small frame cannot make the receiver allocate much (a decompression bomb):
 *   raw size <= EM_BLOCK_NET_MAX_RAW, and a zstd block over EM_BLOCK_NET_RATIO_FREE raw
 *   bytes expands at most EM_BLOCK_NET_MAX_RATIO times its stored size.
 * Writers never exceed them: batches are far smaller than 1 GiB, and em_block_encode stores
 * a block raw rather than past the ratio (a huge record of one repeated byte does compress
 * that far) (docs/security.md). EM_ECORRUPT naming the bound. */
#define EM_BLOCK_NET_MAX_RAW ((uint64_t)1 << 30)       /* 1 GiB */
#define EM_BLOCK_NET_RATIO_FREE ((uint64_t)64 << 20)   /* 64 MiB */
#define EM_BLOCK_NET_MAX_RATIO 1024u
int em_block_decode_net(const uint8_t *p, size_t n, em_batch **out, em_err *err);
int em_blocks_decode_each_net(const uint8_t *p, size_t n,
                              int (*fn)(void *ud, em_batch *b, em_err *err), void *ud,
                              em_err *err);
/* As em_block_peek_size, with the network bounds above. */
int em_block_peek_size_net(const uint8_t *p, size_t n, size_t *block_size, em_err *err);

/* ---------------------------------------------------------------- value codecs
 * Helpers for common record encodings, so user functions and built-ins agree. */

/* Order-preserving int64: big-endian with the sign bit flipped, so memcmp order equals
 * numeric order (used for keys of ranges and sorts). */
static inline void em_enc_i64(uint8_t out[8], int64_t v)
{
    em_store_be64(out, (uint64_t)v ^ 0x8000000000000000ULL);
}
static inline int64_t em_dec_i64(const uint8_t in[8])
{
    return (int64_t)(em_load_be64(in) ^ 0x8000000000000000ULL);
}
/* Little-endian IEEE double (values, not keys). */
static inline void em_enc_f64(uint8_t out[8], double v)
{
    uint64_t u;
    __builtin_memcpy(&u, &v, 8);
    em_store_le64(out, u);
}
static inline double em_dec_f64(const uint8_t in[8])
{
    uint64_t u = em_load_le64(in);
    double v;
    __builtin_memcpy(&v, &u, 8);
    return v;
}

/* A list of byte strings in one value (group_by_key values, glom, cogroup):
 *   u32 count, then per item u32 len + bytes. */
/* Build: off = em_list_begin(out) (reserves the count; EM_ENOMEM as a negative return),
 * em_list_append() per item, then em_list_end(out, off, count). */
int64_t em_list_begin(em_vbuf *out);
int em_list_append(em_vbuf *out, em_slice item);
void em_list_end(em_vbuf *out, int64_t off, uint32_t count);
typedef struct em_list_iter {
    const uint8_t *p, *end;
    uint32_t left;
} em_list_iter;
/* EM_ECORRUPT if the header is short. */
int em_list_iter_init(em_list_iter *it, em_slice list, em_err *err);
/* 1 and *item, 0 at the end, EM_ECORRUPT on a malformed item. */
int em_list_iter_next(em_list_iter *it, em_slice *item, em_err *err);

/* ---------------------------------------------------------------- pairs
 * em_pair: one value holding two optional byte strings (join values, "records as bytes").
 * FORMAT: u8 flags (bit 0 left present, bit 1 right present), u32 left len, left,
 * u32 right len, right (absent sides have length 0). */
int em_pair_append(em_vbuf *out, const em_slice *left, const em_slice *right); /* NULL=absent */
/* EM_ECORRUPT for a malformed pair; *left and *right are borrowed from `pair`. */
int em_pair_decode(em_slice pair, em_slice *left, bool *has_left, em_slice *right,
                   bool *has_right, em_err *err);

#endif /* EMBER_DATA_H */
