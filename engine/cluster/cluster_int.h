/* engine/cluster/cluster_int.h - internals of engine/cluster: the driver-executor protocol
 * messages (docs/cluster.md has every message and field) and their codecs.
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
#ifndef EMBER_CLUSTER_INT_H
#define EMBER_CLUSTER_INT_H

#include "engine/cluster/cluster.h"

#define EM__DATA_HDR 10
#define EM__SEG_CHUNK ((size_t)4 << 20)   /* segment bytes per DATA frame */
#define EM__MAX_NAME 63                   /* exec ids, hosts */

typedef enum em__data_kind {
    EM__DATA_RESULT = 1,    /* a result batch of task id (engine/data block) */
    EM__DATA_BLOCK = 2,     /* a batch of the block of request id (engine/data block) */
    EM__DATA_SEGMENT = 3,   /* a chunk of the shuffle segment of request id */
    EM__DATA_STAGE = 4,     /* the stage JSON of stage id */
} em__data_kind;

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
     * ember.net.compress, ember.shuffle.sync) */
    char *library;               /* owned; NULL = none */
    char sha256[65];
    uint32_t storage_permille;   /* storage floor, 0..1000 */
    uint64_t shuffle_mem;        /* per-task budget in bytes; 0 = executor memory / 4 / cores */
    uint32_t compress;           /* em__wire_compress */
    bool shuffle_sync;           /* fsync shuffle files (optional in the JSON: false) */
    /* launch */
    uint32_t stage, part, attempt;
    bool is_map;
    /* status: the result (batches arrive as DATA frames before it) */
    em_cluster_result res;
    uint32_t nbatches;           /* status, block_reply */
    /* block; drop (type and a only) */
    em_block_id block;
    bool found;                  /* block_reply */
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

/* Reads the secret from a file (contents, trailing newlines stripped): owned string. */
int em__read_secret_file(const char *path, char **out, em_err *err);

#endif /* EMBER_CLUSTER_INT_H */
