/* engine/plan/plan.h - lineage nodes, the function registry, and plans <-> JSON.
 *
 * A dataset (em_rdd in the user API) is one em_plan_node. Nodes only record lineage:
 * operation, parents, function names and context blobs, partition count, partitioner.
 * The DAG scheduler (engine/sched) cuts the graph at EM_OP_SHUFFLED nodes into stages; an
 * executor (engine/exec) rebuilds a stage's narrow pipeline from its JSON and streams a
 * partition's records through it.
 *
 * STAGE JSON (em_plan_to_json / em_plan_from_json): the nodes reachable from the stage's
 * root without crossing a shuffle, plus each SHUFFLED node the stage reads (as a leaf: the
 * reduce side reads its shuffle; its parent is not included). Format in docs/plan-json.md:
 *   {"version":1,"root":ID,"nodes":[{"id":..,"op":"map",...,"parents":[ids]},...]}
 * Binary fields (context blobs, zero values, range bounds) are base64.
 *
 * OWNERSHIP: nodes are created and owned by an em_plan_graph (the driver's context holds
 * one; a task's decoded stage is another); freed with the graph. Strings and blobs inside
 * a node are owned by the node.
 * THREADS: a graph is one thread per object while being built; once a job runs, its nodes
 * are read-only for tasks except the fields marked "driver only". The registry is written
 * before contexts start and read-only afterwards. */
#ifndef EMBER_PLAN_H
#define EMBER_PLAN_H

#include "engine/plan/fn.h"

/* The plan records what lower layers will do with a node but needs none of their
 * machinery, so this header includes neither shuffle/ nor storage/: a node's reduce mode
 * and storage level are plain integers holding em_reduce_mode (shuffle/shuffle.h) and
 * em_storage_level (storage/storage.h) values, em_part_spec_partitioner fills an opaque
 * em_partitioner, and em_merge8_fn is repeated below (C11 allows an identical typedef
 * twice; a file that includes both headers fails to compile if they ever differ). */
struct em_partitioner;

typedef enum em_op {
    /* sources */
    EM_OP_PARALLELIZE = 1, /* partitions are EM_BLOCK_INPUT blocks (a = node id, b = part) */
    EM_OP_RANGE,           /* range_start/end/step; partition i gets its slice */
    EM_OP_TEXT_FILE,       /* splits[] */
    EM_OP_WHOLE_TEXT_FILES,/* splits[] (whole files; split.part groups files) */
    /* narrow, one parent, partition i from parent partition i */
    EM_OP_MAP,             /* fn (EM_FN_MAP); flags EM_NODE_VALUES_ONLY / EM_NODE_KEY_BY */
    EM_OP_FILTER,          /* fn (EM_FN_FILTER) */
    EM_OP_MAP_PARTITIONS,  /* fn (EM_FN_PARTITION) */
    EM_OP_SAMPLE,          /* sample_fraction, sample_with_replacement, seed */
    EM_OP_GLOM,
    EM_OP_ZIP_WITH_INDEX,  /* zip_starts[nparts]: index of partition i's first record */
    EM_OP_LOCAL_REDUCE,    /* reduce side of a shuffle without the shuffle: parent is already
                              partitioned as required; same fields as SHUFFLED's reduce side */
    /* narrow, several parents or partitions */
    EM_OP_UNION,           /* parents[]; partition i is parent j's partition i - offset_j;
                              with EM_NODE_ZIP_PARTS all parents have nparts partitions and
                              partition i is the concatenation of every parent's partition i */
    EM_OP_COALESCE,        /* parent partitions [coalesce_starts[i], coalesce_starts[i+1]) */
    EM_OP_CARTESIAN,       /* 2 parents; partition i*n2 + j = parent0 i x parent1 j */
    EM_OP_TAG,             /* KV -> KV with value em_pair(value, absent) for tag 0 or
                              em_pair(absent, value) for tag 1 (cogroup's inputs) */
    EM_OP_COGROUP_SPLIT,   /* GROUP output of tagged values -> (key, em_pair(list0, list1));
                              flags EM_NODE_JOIN_* turn it into join rows instead */
    /* wide */
    EM_OP_SHUFFLED,        /* shuffle dependency on parents[0]: map side partitions by
                              map_part (+ optional map-side combine); reduce side: mode */
    /* additions (out-of-core): checkpoints */
    EM_OP_CHECKPOINT_WRITE,/* narrow, one parent: passes records through and writes the
                              partition to splits[part].path (a block file), or with
                              EM_NODE_LOCAL_CKPT to block rdd_<ckpt_rdd>_<part> in the task's
                              store (MEMORY_AND_DISK) */
    EM_OP_CHECKPOINT_FILE, /* source: partition i read from splits[i].path (block file,
                              split.len = its size), or with EM_NODE_LOCAL_CKPT from block
                              rdd_<ckpt_rdd>_<i> */
    EM_OP__COUNT
} em_op;

enum {
    EM_NODE_VALUES_ONLY = 1u << 0,   /* MAP: fn sees in->val only; outputs re-keyed */
    EM_NODE_KEY_BY = 1u << 1,        /* MAP: fn emits the key; output (key, record bytes) */
    EM_NODE_ZIP_PARTS = 1u << 2,     /* UNION of co-partitioned parents */
    EM_NODE_JOIN_INNER = 1u << 3,    /* COGROUP_SPLIT: emit (k, pair(v, w)) for all v, w */
    EM_NODE_JOIN_LEFT = 1u << 4,     /* ... also (k, pair(v, absent)) when no w */
    EM_NODE_JOIN_RIGHT = 1u << 5,    /* ... also (k, pair(absent, w)) when no v */
    EM_NODE_DESCENDING = 1u << 6,    /* SHUFFLED/LOCAL_REDUCE in SORT mode */
    EM_NODE_MAP_COMBINE = 1u << 7,   /* SHUFFLED: combine on the map side (never for GROUP) */
    EM_NODE_NO_REDUCE = 1u << 8,     /* SHUFFLED: reduce side only concatenates (repartition,
                                        partition_by) */
    EM_NODE_TAGGED = 1u << 9,        /* MAP with KEY_BY: the output value is the record
                                        tagged (fn.h "tagged record"), not the record as
                                        bytes; sort_by uses it to restore plain/KV records */
    EM_NODE_LOCAL_CKPT = 1u << 10,   /* CHECKPOINT_*: blocks in the block stores, not files */
    EM_NODE_ACC = 1u << 11,          /* SHUFFLED/LOCAL_REDUCE AGGREGATE with mutable combiners
                                        of acc_size bytes (fn.h em_acc_*_fn): fn = add
                                        (EM_FN_ACC_ADD; NULL: the values are accumulators
                                        already), fn_create = init (EM_FN_ACC_INIT, optional),
                                        fn_merge = merge (EM_FN_ACC_MERGE) */
};

/* How a node's output is partitioned (what a later pair op may rely on). */
typedef struct em_part_spec {
    em_partitioner_kind kind;   /* NONE, HASH or RANGE */
    uint32_t nparts;
    em_slice *bounds;           /* RANGE: nparts-1 sorted upper bounds (owned by the node) */
    uint32_t nbounds;
    bool descending;            /* RANGE */
} em_part_spec;

typedef enum em_map_part {       /* how SHUFFLED's map side picks the reduce partition */
    EM_MAP_PART_HASH = 1,        /* part spec HASH on the key */
    EM_MAP_PART_RANGE = 2,       /* part spec RANGE on the key */
    EM_MAP_PART_ROUND_ROBIN = 3, /* (map partition index seeded start + i) mod nparts */
} em_map_part;

typedef struct em_split {
    char *path;                 /* owned */
    uint64_t start, len;        /* TEXT_FILE: byte range; WHOLE_TEXT_FILES: len = file size */
    uint32_t part;              /* which partition reads it */
} em_split;

typedef struct em_plan_node em_plan_node;
struct em_plan_node {
    uint32_t id;                 /* unique within the driver's graph; = RDD id */
    em_op op;
    uint32_t flags;              /* EM_NODE_* */
    em_plan_node **parents;      /* nparents entries (owned array, borrowed nodes) */
    uint32_t nparents;
    uint32_t nparts;             /* partitions of this node's output */
    uint32_t width;              /* FIXED width of output records when known, else 0 */
    bool is_kv;                  /* output records are pairs (best knowledge; informative) */
    em_part_spec part;           /* output partitioning */

    /* functions: names resolved at build time (em_registry_resolve), blob shared by all */
    char *fn;                    /* MAP/FILTER/MAP_PARTITIONS fn; combiner merge_value */
    char *fn_create;             /* combiner create (NULL = value is the combiner) */
    char *fn_merge;              /* combiner merge_combiners */
    uint8_t *blob;               /* context blob (owned), blob_len bytes */
    size_t blob_len;
    uint8_t *zero;               /* fold/aggregate zero value (owned), or NULL */
    size_t zero_len;
    uint32_t acc_size;           /* EM_NODE_ACC: accumulator bytes (1..EM_BATCH_MAX_REC_LEN) */

    /* SHUFFLED / LOCAL_REDUCE */
    uint32_t shuffle_id;         /* SHUFFLED: unique per context */
    em_map_part map_part;        /* SHUFFLED map side */
    uint32_t mode;               /* em_reduce_mode of the reduce side (unless
                                    EM_NODE_NO_REDUCE) */

    /* sources and narrow ops */
    int64_t range_start, range_end, range_step;
    em_split *splits;            /* owned array */
    uint32_t nsplits;
    double sample_fraction;
    bool sample_with_replacement;
    uint64_t seed;               /* SAMPLE, ROUND_ROBIN */
    uint64_t *zip_starts;        /* ZIP_WITH_INDEX: nparts entries (owned) */
    uint32_t *coalesce_starts;   /* COALESCE: nparts + 1 entries (owned) */
    uint32_t tag;                /* TAG: 0 or 1 */
    uint32_t ckpt_rdd;           /* CHECKPOINT_* with EM_NODE_LOCAL_CKPT: block rdd id */
    char *ckpt_cleanup_dir;      /* driver only, CHECKPOINT_FILE: directory removed when the
                                    graph is freed (ember.checkpoint.cleanup=true) */

    /* persistence (driver only, copied into stage JSON) */
    uint32_t level;              /* em_storage_level; != EM_STORAGE_NONE: partitions are
                                    cached as EM_BLOCK_RDD blocks */
    /* driver only, never encoded: references that keep the node alive, i.e. unreleased
     * em_rdd handles naming it plus parent links of living nodes naming it (a node listed
     * twice among one child's parents counts twice). engine/api frees the node with
     * em_plan_graph_remove when it drops to 0 (docs/shuffle.md, "Cleanup"). */
    uint32_t refs;

    em_err err;                  /* plan error (code != 0): the node is invalid */
    char *name;                  /* optional label for debug strings ("reduce_by_key") */
};

/* ---------------------------------------------------------------- graphs */

typedef struct em_plan_graph em_plan_graph;
em_plan_graph *em_plan_graph_new(void);
void em_plan_graph_free(em_plan_graph *g);          /* frees every node; NULL ok */
/* New zeroed node with the next id (or `id` when decoding), owned by g. Aborts on OOM. */
em_plan_node *em_plan_node_new(em_plan_graph *g, em_op op);
em_plan_node *em_plan_graph_find(const em_plan_graph *g, uint32_t id);   /* NULL if absent */
/* Frees node n (contents as em_plan_graph_free does, reliable checkpoint cleanup included)
 * and takes it out of g. The caller guarantees nothing points at n any more: no other node
 * lists it as a parent and no job runs. Unknown n (not in g) is a bug (EM_ASSERT). */
void em_plan_graph_remove(em_plan_graph *g, em_plan_node *n);
/* Sets node->parents to a copy of the array. */
void em_plan_node_set_parents(em_plan_node *n, em_plan_node *const *parents, uint32_t np);

/* ---------------------------------------------------------------- building nodes
 * Setters for a plan's builder (engine/plan/build.c; one thread per node). Each copies its
 * argument into memory the node owns (replacing what was there); errors go into n->err,
 * the first one winning, so a builder never stops half-way. */

/* Sets n's plan error "<name or op> [<id>]: <message>" unless it has one already. */
void em_plan_node_fail(em_plan_node *n, int code, const char *fmt, ...) EM_PRINTF(3, 4);
/* Resolves fn as kind (em_registry_resolve) and stores a copy in *slot (n->fn, fn_create or
 * fn_merge). A NULL or unresolvable name fails the node instead; returns whether it
 * resolved. */
bool em_plan_node_set_fn(em_plan_node *n, char **slot, const char *fn, em_fn_kind kind);
void em_plan_node_set_blob(em_plan_node *n, em_slice blob);   /* empty: no blob */
void em_plan_node_set_zero(em_plan_node *n, em_slice zero);   /* empty still "has a zero" */
/* Deep copy of a partitioning spec (RANGE bounds included) into n->part. */
void em_plan_node_set_part(em_plan_node *n, const em_part_spec *spec);
/* ---------------------------------------------------------------- operator descriptors
 * Everything the plan layer knows about an operation is in its descriptor, one entry of
 * one table (engine/plan/ops.c), indexed by em_op: its name in JSON, arity, shape, main
 * function kind, how its own fields are written to and read from stage JSON, and its plan
 * check. The executor keeps a parallel table of iterator constructors (engine/exec/ops.c),
 * so adding an operation is an em_op value, a descriptor here, a constructor there and the
 * API function that makes the node (docs/architecture.md, "Operators as descriptors").
 * Sources (reading no parent: range, parallelize, text files, whole files, checkpoint
 * files) are the descriptors with `source` set. */
struct json_t;
typedef struct em_op_desc {
    const char *name;           /* "map", "shuffled", ...: the "op" field of plan JSON */
    uint32_t min_parents, max_parents;   /* arity checked by the decoder */
    bool source;                /* reads no parent: a source format */
    bool wide;                  /* a shuffle dependency: cuts stages (SHUFFLED) */
    bool one_to_one;            /* partition i is computed from its only parent's
                                   partition i (same nparts); the plan checker and the
                                   scheduler's cache-locality walk go by it */
    em_fn_kind fn_kind;         /* kind `fn` must resolve to (required), 0: none or checked
                                   by `check` */
    /* Optional: writes the op's own fields into node object o; false on OOM. */
    bool (*encode)(struct json_t *o, const em_plan_node *n);
    /* Optional: reads them from o (untrusted: EM_ECORRUPT/EM_EPLAN naming node and
     * field). Parents are not linked yet. */
    int (*decode)(const struct json_t *o, em_plan_node *n, em_err *err);
    /* Optional: checks with parents linked, after arity, one-to-one partition counts and
     * fn_kind have been checked. is_root: the node is the stage's root. */
    int (*check)(const em_plan_node *n, bool is_root, em_err *err);
} em_op_desc;
/* The descriptor of op; an op outside the table gets a descriptor named "unknown" with no
 * valid arity (never NULL). */
const em_op_desc *em_op_desc_get(em_op op);
const char *em_op_name(em_op op);                   /* em_op_desc_get(op)->name */
bool em_op_one_to_one(em_op op);                    /* em_op_desc_get(op)->one_to_one */
/* Equal partitioning (kind, nparts, bounds, direction): a pair op on such a parent needs
 * no shuffle. NONE is never equal to anything. */
bool em_part_spec_equal(const em_part_spec *a, const em_part_spec *b);
/* Makes an em_partitioner (shuffle/shuffle.h) for a HASH or RANGE spec. */
int em_part_spec_partitioner(const em_part_spec *s, struct em_partitioner *out, em_err *err);

/* ---------------------------------------------------------------- JSON
 * Encodes the stage rooted at `root`: nodes reachable without crossing a SHUFFLED node
 * (SHUFFLED nodes are included as leaves, without parents). With map_side = true the root is
 * a SHUFFLED node whose MAP side the stage runs: the root is included with its parent
 * pipeline. Returns a NUL-terminated string (caller frees with em_free) or NULL + err. */
char *em_plan_to_json(const em_plan_node *root, bool map_side, em_err *err);
/* Decodes a stage into a new graph (untrusted input: every field checked, EM_ECORRUPT or
 * EM_EPLAN naming the node and field; unknown function names are EM_EPLAN). *root is
 * borrowed from *out. */
int em_plan_from_json(const char *json, size_t len, em_plan_graph **out, em_plan_node **root,
                      em_err *err);

/* ---------------------------------------------------------------- registry */

typedef void (*em_any_fn)(void);
/* Resolves a function name: registered functions first (kind must match: EM_EPLAN if not),
 * then dlsym in the loaded job libraries (not in the program). EM_EPLAN naming the function
 * when nothing matches. */
int em_registry_resolve(const char *name, em_fn_kind kind, em_any_fn *out, em_err *err);
/* Registers ember's built-in functions (idempotent; called by em_context_new and by the
 * executor at start). */
void em_registry_init_builtins(void);
/* Adds a job library (dlopen'ed by the caller; it stays loaded) to the places names are
 * looked up in, after registering ember's built-ins and calling the library's
 * em_job_register when it exports one (engine/plan/fn.h). 0, or its error (the library is
 * then not added). Driver and executors call it alike. */
int em_registry_add_library(void *dl_handle, em_err *err);
typedef void (*em_merge8_fn)(uint8_t *acc, const uint8_t *v);   /* as in shuffle/shuffle.h */
/* The 8-byte in-place kernel of a built-in EM_FN_REDUCE function (em.sum_i64, em.min_i64,
 * em.max_i64, em.sum_f64, em.first), given the function em_registry_resolve returned; NULL
 * for any other function. For two 8-byte values the kernel computes exactly what the
 * function appends (see em_combiner.merge_value8). */
em_merge8_fn em_builtin_merge8(em_any_fn reduce_fn);

/* ---------------------------------------------------------------- additions (plan module)
 * Helpers shared with engine/exec's stage JSON. */

/* The op named `name` ("map", ...), or 0 when unknown. */
em_op em_op_from_name(const char *name);
/* Base64 (RFC 4648, padded). encode: NUL-terminated string, caller em_free's it; NULL on
 * OOM. decode: untrusted input; EM_ECORRUPT for a bad character or length; *out is a new
 * buffer (caller em_free's it; non-NULL even for 0 bytes). */
char *em_base64_encode(const uint8_t *p, size_t n);
int em_base64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen, em_err *err);
/* As em_plan_to_json / em_plan_from_json but on a jansson value (json_t), so a stage JSON
 * can embed the plan object. to: new reference or NULL + err. from: `v` borrowed. */
struct json_t;
struct json_t *em_plan_to_json_value(const em_plan_node *root, bool map_side, em_err *err);
/* As em_plan_to_json_value, leaving out the context blobs ("blob") of blob_out bytes or
 * more: engine/exec ships those beside the stage JSON ("blob_ref", exec.h). */
struct json_t *em_plan_to_json_value_ext(const em_plan_node *root, bool map_side,
                                         size_t blob_out, em_err *err);
int em_plan_from_json_value(const struct json_t *v, em_plan_graph **out, em_plan_node **root,
                            em_err *err);

#endif /* EMBER_PLAN_H */
