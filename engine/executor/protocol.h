/* engine/executor/protocol.h - the driver-executor protocol: its messages (docs/cluster.md
 * has every message and field), their codecs, DATA frames and broadcast pieces. The
 * executor process (this module) speaks it with the driver's cluster backend
 * (engine/cluster, above): the two ends of one protocol share this header. The names keep
 * the em__ prefix of internals: nothing outside those two modules (and their tests and
 * fuzz harnesses) uses them.
 *
 * RPC frames carry one JSON object with a "t" (type) field; DATA frames carry bytes behind
 * a 10-byte header:
 *   off  size  field
 *     0     1  kind (em__data_kind)
 *     1     1  flags (bit 0: last chunk of a SEGMENT)
 *     2     8  id (task id, request id or stage id), little-endian
 *    10     -  bytes
 * Everything decoded here comes from the network: every field is checked (type, range,
 * length) and a bad message is EM_EPROTO naming the field. */
#ifndef EMBER_EXECUTOR_PROTOCOL_H
#define EMBER_EXECUTOR_PROTOCOL_H

#include "engine/executor/executor.h"
#include "engine/task/task.h"
#include "storage/storage.h"

#define EM__DATA_HDR 10
#define EM__SEG_CHUNK ((size_t)4 << 20)   /* segment bytes per DATA frame */
#define EM__MAX_NAME 63                   /* exec ids, hosts */
/* Stages an executor keeps (JSON and decoded form): the driver records which it sent to
 * each executor, oldest first, and forgets the oldest past this many; the executor drops
 * its oldest past this many in the order they arrived. Both lists follow the same frames
 * on one connection, so the executor always holds what the driver thinks it holds. */
#define EM__STAGES_KEPT 16

typedef enum em__data_kind {
    EM__DATA_RESULT = 1,    /* a result batch of task id (engine/data block) */
    EM__DATA_BLOCK = 2,     /* a batch of the block of request id (engine/data block) */
    EM__DATA_SEGMENT = 3,   /* a chunk of the shuffle segment of request id */
    EM__DATA_STAGE = 4,     /* the stage JSON of stage id */
    EM__DATA_PIECE = 5,     /* a piece of the broadcast of request id (EM__PIECE_HDR) */
    EM__DATA_BPUSH = 6,     /* a small broadcast value, id = broadcast id, unasked: one
                               PIECE body holding all of it (em__bpush_decode) */
} em__data_kind;
#define EM__DATA_KIND_MAX EM__DATA_BPUSH

/* RESULT frames carry a result block in chunks of at most EM__SEG_CHUNK bytes; flags bit 0
 * marks the last chunk of a block (a block's chunks are consecutive on the connection). */

typedef enum em__msg_type {
    EM__MSG_REGISTER = 1,     /* executor -> driver */
    EM__MSG_REGISTERED,       /* driver -> executor */
    EM__MSG_LAUNCH,           /* driver -> executor */
    EM__MSG_STATUS,           /* executor -> driver */
    EM__MSG_BLOCK,            /* executor -> driver: fetch a block */
    EM__MSG_BLOCK_REPLY,      /* driver -> executor */
    EM__MSG_MAP_OUTPUTS,      /* executor -> driver: where are the map outputs */
    EM__MSG_MAP_OUTPUTS_REPLY,/* driver -> executor */
    EM__MSG_FETCH,            /* executor -> executor: a shuffle segment */
    EM__MSG_FETCH_ERROR,      /* executor -> executor */
    EM__MSG_DROP,             /* driver -> executor: drop blocks (block.type, block.a) */
    EM__MSG_REMOVE_SHUFFLE,   /* driver -> executor: delete the files of shuffle sid */
    EM__MSG_KILL,             /* driver -> executor: stop task id (its job was cancelled) */
    EM__MSG_BCAST,            /* executor -> driver: send pieces [first, first + count) of
                                 broadcast block.a (PIECE frames, or a block_reply error) */
} em__msg_type;

/* One decoded message; which fields are meaningful depends on type (docs/cluster.md). */
typedef struct em__msg {
    int type;
    uint64_t id;                 /* task id (launch, status) or request id */
    /* register */
    char exec_id[EM__MAX_NAME + 1];
    char host[EM__MAX_NAME + 1];
    uint32_t cores, pid;
    uint16_t port;
    /* registered: the job library and the settings executors take from the driver's
     * configuration (ember.memory.storageFraction, ember.shuffle.memory,
     * ember.net.compress, ember.shuffle.sync, ember.shuffle.compress.level) */
    char *library;               /* owned; NULL = none */
    char sha256[65];
    uint32_t storage_permille;   /* storage floor, 0..1000 */
    uint64_t shuffle_mem;        /* per-task budget in bytes; 0 = executor memory / 4 / cores */
    uint32_t compress;           /* em__wire_compress */
    bool shuffle_sync;           /* fsync shuffle files (optional in the JSON: false) */
    int32_t zstd_level;          /* shuffle/spill/disk zstd level, EM_ZSTD_LEVEL_MIN..MAX
                                  * (optional in the JSON; absent or 0 = 1) */
    /* launch */
    uint32_t stage, part, attempt;
    bool is_map;
    /* status: the result (batches arrive as DATA frames before it) */
    em_task_result res;
    uint32_t nbatches;           /* status, block_reply */
    /* block; drop (type and a only) */
    em_block_id block;
    bool found;                  /* block_reply */
    /* bcast: pieces [first, first + count) of broadcast block.a */
    uint32_t first, count;
    /* status: bytes in the executor's block store (memory + disk) */
    uint64_t store_bytes;
    /* map_outputs, fetch; remove_shuffle (sid only) */
    uint32_t sid, mid, reduce;
    /* replies: code and message */
    int code;
    em_err err;
    /* map_outputs_reply: srcs[i].loc points into locs (owned) */
    em_shuffle_src *srcs;
    uint32_t nsrcs;
    char **locs;
    uint32_t nlocs;
} em__msg;

/* ember.net.compress: whether bulk payloads (block replies, task results) are zstd
 * compressed on the wire. AUTO skips it on loopback connections, where it costs CPU on
 * both ends and saves nothing (local-cluster: ALS block records lost ~4 s per side). */
enum em__wire_compress { EM__WIRE_AUTO = 0, EM__WIRE_ALWAYS = 1, EM__WIRE_NEVER = 2 };
static inline em_codec em__wire_codec(uint32_t mode, bool loopback)
{
    return mode == EM__WIRE_NEVER || (mode == EM__WIRE_AUTO && loopback) ? EM_CODEC_NONE
                                                                         : EM_CODEC_ZSTD;
}

void em__msg_destroy(em__msg *m);
/* Encodes m as a JSON object into out (appended, no NUL). */
int em__msg_encode(const em__msg *m, em_vbuf *out, em_err *err);
/* Decodes untrusted JSON bytes into *m (zeroed first; destroy it also on failure). */
int em__msg_decode(const uint8_t *p, size_t n, em__msg *m, em_err *err);

/* DATA frame header. */
void em__data_hdr(uint8_t out[EM__DATA_HDR], uint8_t kind, uint8_t flags, uint64_t id);
int em__data_parse(em_slice frame, uint8_t *kind, uint8_t *flags, uint64_t *id, em_slice *body,
                   em_err *err);

/* ---------------------------------------------------------------- broadcast pieces
 * A broadcast value travels from the driver to an executor in pieces of EM__PIECE_SIZE
 * bytes (the last may be shorter; an empty value is one empty piece). PIECE frame body:
 *   off  size  field
 *     0     8  total value bytes (< EM_BATCH_MAX_REC_LEN)
 *     8     4  piece size (1..EM__PIECE_MAX; the same in every piece of a value)
 *    12     4  piece index
 *    16     4  crc32c of the piece bytes; in a pre-sealed piece the cipher (em_cipher,
 *              net.h), so the AAD binds it
 *    20     -  plain links: the piece bytes. Sealed links (a PRESEALED frame, net.h): the
 *              value's 32-byte key, then the piece sealed once for every executor under
 *              it (that cipher, nonce = index, AAD = bytes 0..19) and its 16-byte tag
 *              (engine/cluster/bcast_serve.c, docs/security.md)
 * The executor asks for a window of pieces and for one more as each arrives, so several
 * are in flight; it assembles them straight into the payload of the one BYTES batch that
 * its block store keeps (docs/cluster.md). */
#define EM__PIECE_HDR 20
#define EM__PIECE_SIZE ((uint32_t)4 << 20)
#define EM__PIECE_MAX ((uint32_t)16 << 20)
#define EM__PIECE_WINDOW 4u          /* pieces an executor keeps in flight */

void em__piece_hdr(uint8_t out[EM__PIECE_HDR], uint64_t total, uint32_t piece_size,
                   uint32_t index, uint32_t crc);
/* Number of pieces of a value (>= 1). */
uint32_t em__piece_count(uint64_t total, uint32_t piece_size);

/* Assembles one broadcast value from pieces arriving in any order (untrusted). */
typedef struct em__bcast_asm {
    uint64_t total;
    uint32_t piece_size, npieces, received;
    uint8_t *payload;            /* 4-byte BYTES length + total bytes (em_malloc_big) */
    uint8_t *have;               /* per piece: received */
    bool sealed;                 /* set by the caller: the link is sealed (em_net_sealed), so
                                    each body is PIECE header | key | piece sealed under the
                                    key | tag (crc 0; bcast.c, docs/security.md) */
    bool link_proved;            /* plain PIECE bodies whose bytes the sealed link's own tag
                                    proved (a pushed broadcast, BPUSH): crc 0, not checked */
} em__bcast_asm;
/* Adds one PIECE frame body (the first one sizes the value). EM_EPROTO for a malformed or
 * inconsistent header, a bad index or a repeated piece; EM_ECORRUPT for a checksum
 * mismatch; EM_ENOMEM. Nothing is kept from a piece that fails. */
int em__bcast_asm_add(em__bcast_asm *a, em_slice body, em_err *err);
static inline bool em__bcast_asm_done(const em__bcast_asm *a)
{
    return a->npieces && a->received == a->npieces;
}
/* The value as one BYTES batch of one record (takes the payload); NULL on OOM. */
em_batch *em__bcast_asm_finish(em__bcast_asm *a);
void em__bcast_asm_destroy(em__bcast_asm *a);     /* zeroed struct ok */

/* ---------------------------------------------------------------- pushed broadcasts
 * A broadcast of at most EM__BPUSH_MAX bytes is pushed to every live executor when it is
 * made (em_cluster_push_broadcast), as one BPUSH frame whose body is a PIECE body (above)
 * of index 0 holding the whole value, so the tasks that read it find it in their
 * executor's store instead of asking the driver (a round trip per executor and value:
 * k-means' centres each iteration). Bigger values are fetched on demand in pieces. */
#define EM__BPUSH_MAX ((size_t)256 << 10)
/* Decodes a BPUSH body (untrusted) into a BYTES batch of one record: EM_EPROTO when it is
 * not one piece holding a whole value of at most EM__BPUSH_MAX bytes, EM_ECORRUPT for a
 * checksum mismatch (sealed: the link's tag proved the bytes, crc 0). */
int em__bpush_decode(em_slice body, bool sealed, em_batch **out, em_err *err);

/* Reads the secret from a file (contents, trailing newlines stripped): owned string. */
int em__read_secret_file(const char *path, char **out, em_err *err);

#endif /* EMBER_EXECUTOR_PROTOCOL_H */
