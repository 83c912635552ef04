/* engine/plan/ops.c - the operator descriptors (em_op_desc, plan.h): for each operation its
 * name, arity and shape, the kind of its main function, and how its own fields are written
 * to stage JSON, read back (untrusted) and checked. Format of the fields: docs/plan-json.md.
 *
 * DESIGN: one table indexed by em_op. json.c encodes and decodes what every node has and
 * calls the descriptor for the rest; the executor's table of iterator constructors
 * (engine/exec/ops.c) is indexed the same way. Adding an op: an em_op value (plan.h), an
 * entry here (with its encode/decode/check when it has fields of its own), a constructor
 * there, and the API function that makes its node. */
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "engine/plan/plan_int.h"

static int dec_sample(const json_t *o, em_plan_node *n, em_err *err);
static int dec_zip(const json_t *o, em_plan_node *n, em_err *err);
static int dec_coalesce(const json_t *o, em_plan_node *n, em_err *err);
static int check_reduce_fns(const em_plan_node *n, bool needed, em_err *err);
static int check_shuffled(const em_plan_node *n, bool is_root, em_err *err);
static int check_checkpoint(const em_plan_node *n, bool is_root, em_err *err);

/* ---------------------------------------------------------------- sources */

static bool enc_range(json_t *o, const em_plan_node *n)
{
    return json_object_set_new(o, "range", json_pack("[I,I,I]", (json_int_t)n->range_start,
                                                     (json_int_t)n->range_end,
                                                     (json_int_t)n->range_step)) == 0;
}

static bool enc_splits(json_t *o, const em_plan_node *n)
{
    char buf[24], lb[24];
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < n->nsplits; i++) {
        const em_split *s = &n->splits[i];
        if (json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:I}", "path", s->path, "start",
                                               em__pj_u64_str(s->start, buf), "len",
                                               em__pj_u64_str(s->len, lb), "part",
                                               (json_int_t)s->part)) < 0)
            break;
    }
    return em__pj_set_arr(o, "splits", a, n->nsplits);
}

static int dec_range(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *a = json_object_get(o, "range");
    if (!json_is_array(a) || json_array_size(a) != 3)
        return em__pj_ferr(err, EM_ECORRUPT, n, "range", "needs [start, end, step]");
    for (int i = 0; i < 3; i++)
        if (!json_is_integer(json_array_get(a, i)))
            return em__pj_ferr(err, EM_ECORRUPT, n, "range", "not an integer");
    n->range_start = json_integer_value(json_array_get(a, 0));
    n->range_end = json_integer_value(json_array_get(a, 1));
    n->range_step = json_integer_value(json_array_get(a, 2));
    if (n->range_step == 0)
        return em__pj_ferr(err, EM_EPLAN, n, "range", "step is 0");
    return 0;
}

static int dec_splits(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *a = json_object_get(o, "splits");
    if (!json_is_array(a))
        return em__pj_ferr(err, EM_ECORRUPT, n, "splits", "missing or not an array");
    size_t ns = json_array_size(a);
    if (ns > EM__PJ_MAX_PARTS * 16u)
        return em__pj_ferr(err, EM_ECORRUPT, n, "splits", "too many splits");
    if (ns && !(n->splits = em_calloc(ns, sizeof *n->splits)))
        return em__pj_ferr(err, EM_ENOMEM, n, "splits", "out of memory");
    for (size_t i = 0; i < ns; i++) {
        json_t *s = json_array_get(a, i);
        em_split *sp = &n->splits[i];
        int rc;
        if (!json_is_object(s))
            return em__pj_ferr(err, EM_ECORRUPT, n, "splits", "item is not an object");
        n->nsplits = (uint32_t)i + 1;
        if ((rc = em__pj_get_str(s, n, "path", &sp->path, err)) < 0)
            return rc;
        if (!sp->path)
            return em__pj_ferr(err, EM_ECORRUPT, n, "splits.path", "missing");
        if ((rc = em__pj_get_u64s(s, n, "start", &sp->start, err)) < 0 ||
            (rc = em__pj_get_u64s(s, n, "len", &sp->len, err)) < 0 ||
            (rc = em__pj_get_u32(s, n, "part", true, 0, n->nparts - 1, &sp->part, err)) < 0)
            return em_err_prefix(err, "split %zu", i);
        if (sp->start + sp->len < sp->start)
            return em__pj_ferr(err, EM_ECORRUPT, n, "splits", "start + len overflows");
    }
    return 0;
}

/* ---------------------------------------------------------------- checkpoints */

static bool enc_ckpt(json_t *o, const em_plan_node *n)
{
    return json_object_set_new(o, "ckpt_rdd", json_integer(n->ckpt_rdd)) == 0 &&
           enc_splits(o, n);
}

static int dec_ckpt(const json_t *o, em_plan_node *n, em_err *err)
{
    int rc = em__pj_get_u32(o, n, "ckpt_rdd", true, 0, UINT32_MAX, &n->ckpt_rdd, err);
    return rc < 0 ? rc : dec_splits(o, n, err);
}

/* ---------------------------------------------------------------- narrow ops */

static bool enc_sample(json_t *o, const em_plan_node *n)
{
    char buf[24];
    return json_object_set_new(o, "sample", json_pack("{s:f,s:b}", "fraction",
                                                      n->sample_fraction, "with_replacement",
                                                      n->sample_with_replacement)) == 0 &&
           json_object_set_new(o, "seed", json_string(em__pj_u64_str(n->seed, buf))) == 0;
}

static bool enc_zip(json_t *o, const em_plan_node *n)
{
    char buf[24];
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < n->nparts && n->zip_starts; i++)
        json_array_append_new(a, json_string(em__pj_u64_str(n->zip_starts[i], buf)));
    return em__pj_set_arr(o, "zip_starts", a, n->zip_starts ? n->nparts : 0);
}

static bool enc_coalesce(json_t *o, const em_plan_node *n)
{
    json_t *a = json_array();
    for (uint32_t i = 0; a && i <= n->nparts && n->coalesce_starts; i++)
        json_array_append_new(a, json_integer(n->coalesce_starts[i]));
    return em__pj_set_arr(o, "coalesce_starts", a, n->coalesce_starts ? n->nparts + 1u : 0);
}

static int check_coalesce(const em_plan_node *n, bool is_root, em_err *err)
{
    (void)is_root;
    if (n->coalesce_starts[n->nparts] > n->parents[0]->nparts)
        return em__pj_ferr(err, EM_EPLAN, n, "coalesce_starts",
                           "beyond the parent's partitions");
    return 0;
}

static bool enc_tag(json_t *o, const em_plan_node *n)
{
    return json_object_set_new(o, "tag", json_integer(n->tag)) == 0;
}

static int dec_tag(const json_t *o, em_plan_node *n, em_err *err)
{
    return em__pj_get_u32(o, n, "tag", true, 0, 1, &n->tag, err);
}

static int check_union(const em_plan_node *n, bool is_root, em_err *err)
{
    uint64_t sum = 0;
    (void)is_root;
    for (uint32_t i = 0; i < n->nparents; i++) {
        sum += n->parents[i]->nparts;
        if ((n->flags & EM_NODE_ZIP_PARTS) && n->parents[i]->nparts != n->nparts)
            return em__pj_ferr(err, EM_EPLAN, n, "nparts", "zipped union of unequal parents");
    }
    if (!(n->flags & EM_NODE_ZIP_PARTS) && sum != n->nparts)
        return em__pj_ferr(err, EM_EPLAN, n, "nparts", "not the sum of the parents'");
    return 0;
}

static int check_cartesian(const em_plan_node *n, bool is_root, em_err *err)
{
    (void)is_root;
    if ((uint64_t)n->parents[0]->nparts * n->parents[1]->nparts != n->nparts)
        return em__pj_ferr(err, EM_EPLAN, n, "nparts", "not the product of the parents'");
    return 0;
}

/* ---------------------------------------------------------------- reduce sides */

static bool enc_mode(json_t *o, const em_plan_node *n)
{
    return json_object_set_new(o, "mode", json_integer(n->mode)) == 0;
}

static int dec_local_reduce(const json_t *o, em_plan_node *n, em_err *err)
{
    uint32_t x;
    int rc = em__pj_get_u32(o, n, "mode", true, 1, 3, &x, err);
    n->mode = (em_reduce_mode)x;
    return rc;
}

static int check_local_reduce(const em_plan_node *n, bool is_root, em_err *err)
{
    (void)is_root;
    return check_reduce_fns(n, n->mode == EM_REDUCE_AGGREGATE, err);
}

static bool enc_shuffled(json_t *o, const em_plan_node *n)
{
    char buf[24];
    return json_object_set_new(o, "shuffle_id", json_integer(n->shuffle_id)) == 0 &&
           json_object_set_new(o, "map_part", json_integer(n->map_part)) == 0 &&
           enc_mode(o, n) &&
           json_object_set_new(o, "seed", json_string(em__pj_u64_str(n->seed, buf))) == 0;
}

static int dec_shuffled(const json_t *o, em_plan_node *n, em_err *err)
{
    uint32_t x;
    int rc;
    if ((rc = em__pj_get_u32(o, n, "shuffle_id", true, 0, UINT32_MAX, &n->shuffle_id,
                             err)) < 0 ||
        (rc = em__pj_get_u32(o, n, "map_part", true, EM_MAP_PART_HASH,
                             EM_MAP_PART_ROUND_ROBIN, &x, err)) < 0)
        return rc;
    n->map_part = (em_map_part)x;
    if ((rc = em__pj_get_u32(o, n, "mode", true, (n->flags & EM_NODE_NO_REDUCE) ? 0 : 1, 3,
                             &x, err)) < 0)
        return rc;
    n->mode = (em_reduce_mode)x;
    return em__pj_get_u64s(o, n, "seed", &n->seed, err);
}

static int dec_sample(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *s = json_object_get(o, "sample");
    json_t *f = s ? json_object_get(s, "fraction") : NULL;
    json_t *w = s ? json_object_get(s, "with_replacement") : NULL;
    if (!json_is_object(s) || !json_is_number(f) || !json_is_boolean(w))
        return em__pj_ferr(err, EM_ECORRUPT, n, "sample", "needs fraction (number) and "
                    "with_replacement (boolean)");
    n->sample_fraction = json_number_value(f);
    n->sample_with_replacement = json_is_true(w);
    if (!isfinite(n->sample_fraction) || n->sample_fraction < 0 ||
        (!n->sample_with_replacement && n->sample_fraction > 1))
        return em__pj_ferr(err, EM_EPLAN, n, "sample.fraction", "out of range");
    return em__pj_get_u64s(o, n, "seed", &n->seed, err);
}

static int dec_zip(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *a = json_object_get(o, "zip_starts");
    if (!json_is_array(a) || json_array_size(a) != n->nparts)
        return em__pj_ferr(err, EM_ECORRUPT, n, "zip_starts", "needs nparts entries");
    if (!(n->zip_starts = em_calloc(n->nparts, sizeof *n->zip_starts)))
        return em__pj_ferr(err, EM_ENOMEM, n, "zip_starts", "out of memory");
    for (uint32_t i = 0; i < n->nparts; i++)
        if (em__pj_parse_u64(json_array_get(a, i), &n->zip_starts[i]) < 0 ||
            (i && n->zip_starts[i] < n->zip_starts[i - 1]))
            return em__pj_ferr(err, EM_ECORRUPT, n, "zip_starts", "bad or decreasing entry");
    return 0;
}

static int dec_coalesce(const json_t *o, em_plan_node *n, em_err *err)
{
    json_t *a = json_object_get(o, "coalesce_starts");
    if (!json_is_array(a) || json_array_size(a) != (size_t)n->nparts + 1)
        return em__pj_ferr(err, EM_ECORRUPT, n, "coalesce_starts", "needs nparts + 1 entries");
    if (!(n->coalesce_starts = em_calloc((size_t)n->nparts + 1, sizeof(uint32_t))))
        return em__pj_ferr(err, EM_ENOMEM, n, "coalesce_starts", "out of memory");
    for (uint32_t i = 0; i <= n->nparts; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > EM__PJ_MAX_PARTS)
            return em__pj_ferr(err, EM_ECORRUPT, n, "coalesce_starts", "bad entry");
        n->coalesce_starts[i] = (uint32_t)json_integer_value(v);
        if (i && n->coalesce_starts[i] < n->coalesce_starts[i - 1])
            return em__pj_ferr(err, EM_EPLAN, n, "coalesce_starts", "not monotone");
    }
    return 0;
}

static int check_reduce_fns(const em_plan_node *n, bool needed, em_err *err)
{
    int rc;
    if (n->flags & EM_NODE_ACC) {
        if (!needed)
            return em__pj_ferr(err, EM_EPLAN, n, "flags", "accumulators need aggregate mode");
        if ((rc = em__pj_resolve(n, "fn", n->fn, EM_FN_ACC_ADD, false, err)) < 0 ||
            (rc = em__pj_resolve(n, "fn_create", n->fn_create, EM_FN_ACC_INIT, false, err)) < 0)
            return rc;
        return em__pj_resolve(n, "fn_merge", n->fn_merge, EM_FN_ACC_MERGE, true, err);
    }
    if ((rc = em__pj_resolve(n, "fn", n->fn, EM_FN_REDUCE, needed, err)) < 0 ||
        (rc = em__pj_resolve(n, "fn_create", n->fn_create, EM_FN_CREATE, false, err)) < 0)
        return rc;
    return em__pj_resolve(n, "fn_merge", n->fn_merge, EM_FN_REDUCE, false, err);
}

static int check_shuffled(const em_plan_node *n, bool is_root, em_err *err)
{
    if (n->nparents > (is_root ? 1u : 0u))
        return em__pj_ferr(err, EM_EPLAN, n, "parents", "a shuffled node has a parent only as the "
                    "root of a map stage");
    if (n->map_part != EM_MAP_PART_ROUND_ROBIN &&
        (n->part.kind != (n->map_part == EM_MAP_PART_HASH ? EM_PART_HASH : EM_PART_RANGE) ||
         n->part.nparts != n->nparts))
        return em__pj_ferr(err, EM_EPLAN, n, "part", "does not match map_part and nparts");
    if (n->nparts > EM_SHUFFLE_MAX_PARTS)
        return em__pj_ferr(err, EM_EPLAN, n, "nparts", "more than the shuffle's maximum");
    bool agg = !(n->flags & EM_NODE_NO_REDUCE) && n->mode == EM_REDUCE_AGGREGATE;
    if ((n->flags & EM_NODE_MAP_COMBINE) && !agg)
        return em__pj_ferr(err, EM_EPLAN, n, "flags", "map-side combine needs aggregate mode");
    return check_reduce_fns(n, agg, err);
}

/* Checkpoint nodes: a reliable one has exactly one split per partition, in order (arity and,
 * for checkpoint_write, the parent's partition count are checked by the descriptor). */
static int check_checkpoint(const em_plan_node *n, bool is_root, em_err *err)
{
    (void)is_root;
    if (n->flags & EM_NODE_LOCAL_CKPT)
        return n->nsplits == 0 ? 0 : em__pj_ferr(err, EM_ECORRUPT, n, "splits", "local checkpoint");
    if (n->nsplits != n->nparts)
        return em__pj_ferr(err, EM_ECORRUPT, n, "splits", "not one per partition");
    for (uint32_t i = 0; i < n->nsplits; i++)
        if (n->splits[i].part != i)
            return em__pj_ferr(err, EM_ECORRUPT, n, "splits.part", "out of order");
    return 0;
}

/* ---------------------------------------------------------------- the table */

/* Arities: exactly one parent; one or more; n1 to n2. */
#define ONE .min_parents = 1, .max_parents = 1
#define ARITY(lo, hi) .min_parents = (lo), .max_parents = (hi)

static const em_op_desc g_ops[EM_OP__COUNT] = {
    /* sources */
    [EM_OP_PARALLELIZE] = {.name = "parallelize", .source = true},
    [EM_OP_RANGE] = {.name = "range", .source = true, .encode = enc_range, .decode = dec_range},
    [EM_OP_TEXT_FILE] = {.name = "text_file", .source = true, .encode = enc_splits,
                         .decode = dec_splits},
    [EM_OP_WHOLE_TEXT_FILES] = {.name = "whole_text_files", .source = true,
                                .encode = enc_splits, .decode = dec_splits},
    [EM_OP_CHECKPOINT_FILE] = {.name = "checkpoint_file", .source = true, .encode = enc_ckpt,
                               .decode = dec_ckpt, .check = check_checkpoint},
    /* narrow, one-to-one */
    [EM_OP_MAP] = {.name = "map", ONE, .one_to_one = true, .fn_kind = EM_FN_MAP},
    [EM_OP_FILTER] = {.name = "filter", ONE, .one_to_one = true, .fn_kind = EM_FN_FILTER},
    [EM_OP_MAP_PARTITIONS] = {.name = "map_partitions", ONE, .one_to_one = true,
                              .fn_kind = EM_FN_PARTITION},
    [EM_OP_SAMPLE] = {.name = "sample", ONE, .one_to_one = true, .encode = enc_sample,
                      .decode = dec_sample},
    [EM_OP_GLOM] = {.name = "glom", ONE, .one_to_one = true},
    [EM_OP_ZIP_WITH_INDEX] = {.name = "zip_with_index", ONE, .one_to_one = true,
                              .encode = enc_zip, .decode = dec_zip},
    [EM_OP_LOCAL_REDUCE] = {.name = "local_reduce", ONE, .one_to_one = true,
                            .encode = enc_mode, .decode = dec_local_reduce,
                            .check = check_local_reduce},
    [EM_OP_TAG] = {.name = "tag", ONE, .one_to_one = true, .encode = enc_tag,
                   .decode = dec_tag},
    [EM_OP_COGROUP_SPLIT] = {.name = "cogroup_split", ONE, .one_to_one = true},
    [EM_OP_CHECKPOINT_WRITE] = {.name = "checkpoint_write", ONE, .one_to_one = true,
                                .encode = enc_ckpt, .decode = dec_ckpt,
                                .check = check_checkpoint},
    /* narrow, several parents or partitions */
    [EM_OP_UNION] = {.name = "union", ARITY(1, EM__PJ_MAX_NODES), .check = check_union},
    [EM_OP_COALESCE] = {.name = "coalesce", ONE, .encode = enc_coalesce,
                        .decode = dec_coalesce, .check = check_coalesce},
    [EM_OP_CARTESIAN] = {.name = "cartesian", ARITY(2, 2), .check = check_cartesian},
    /* wide: a parent only as the root of a map stage (check_shuffled) */
    [EM_OP_SHUFFLED] = {.name = "shuffled", ARITY(0, 1), .wide = true, .encode = enc_shuffled,
                        .decode = dec_shuffled, .check = check_shuffled},
};

/* What an op outside the table gets: no arity fits (max < min), so decoding fails. */
static const em_op_desc g_unknown = {.name = "unknown", .min_parents = 1, .max_parents = 0};

const em_op_desc *em_op_desc_get(em_op op)
{
    if ((int)op <= 0 || op >= EM_OP__COUNT || !g_ops[op].name)
        return &g_unknown;
    return &g_ops[op];
}

const char *em_op_name(em_op op)
{
    return em_op_desc_get(op)->name;
}

bool em_op_one_to_one(em_op op)
{
    return em_op_desc_get(op)->one_to_one;
}

em_op em_op_from_name(const char *name)
{
    for (int i = 1; i < EM_OP__COUNT; i++)
        if (g_ops[i].name && strcmp(g_ops[i].name, name) == 0)
            return (em_op)i;
    return (em_op)0;
}
