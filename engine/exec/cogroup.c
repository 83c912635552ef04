/* engine/exec/cogroup.c - COGROUP_SPLIT: a cogroup's groups split into their two sides, and
 * the joins built on it (engine/api/pairs.c: tag both sides, union, GROUP, COGROUP_SPLIT).
 *
 * INPUT: per key, the GROUP node's values are tagged: em_pair(v, absent) from side 0 (left),
 * em_pair(absent, v) from side 1 (right), in arrival order, the two sides mixed. They come
 * from the parent's reducer one at a time when the parent offers a group stream
 * (em_iter.group_stream: a SHUFFLED or LOCAL_REDUCE GROUP node), so no record holding all of
 * a key's values is built; otherwise (a cached GROUP node) from its em_list records.
 *
 * JOINS (any join flag) stream. Per key, each side's values go to a spill list (shuffle.h):
 * in memory up to half the task's budget per side, a temporary file (zstd, checksummed run
 * format) beyond it. Then one output record per pull: for each left value, read back in
 * order, the right list is read back from its start, block by block, so the order within a
 * key is left-major as it always was: (l0,r0), (l0,r1), ..., (l1,r0), ...; with no right
 * value, a left outer join emits (l, absent) per left value, and with no left value a right
 * outer join emits (absent, r) per right value (full outer = both). The product is never
 * held, and with a group stream neither are a key's values: memory per task is the parent
 * reducer's budget plus about one budget here (two half-budget lists, a block being
 * written or read per side). Keys whose values fit stay in memory: no file, one copy of
 * each value. Files: removed when the next key starts, by a failed add or read, and at
 * free; their bytes are added to the task's spill counters at free.
 *
 * COGROUP (no join flag) emits (key, em_pair(em_list of side 0, em_list of side 1)): one
 * record holding the key's values, as the API promises (and as Spark's cogroup, which
 * needs a key's values in memory). */
#include <string.h>

#include "engine/exec/exec_int.h"

#define DEFAULT_BUDGET ((size_t)64 << 20)   /* as the reducer's: task budget 0 */

enum { PH_KEY, PH_INNER, PH_LEFT_ONLY, PH_RIGHT_ONLY };

typedef struct cog_iter {
    em_iter base;
    em_task *t;
    const em_plan_node *n;
    em_iter *parent;
    bool join;                 /* any join flag */
    bool asked;                /* parent's group stream asked for */
    em_reducer *red;           /* the parent's group stream (borrowed), or NULL */
    em_spill_list *side[2];    /* join: this key's values per side */
    em_vbuf l0, l1;            /* cogroup: this key's lists, being built */
    uint32_t n0, n1;           /* cogroup: their item counts */
    em_vbuf key;               /* this key (data never NULL once set: a KV record's key) */
    int phase;
    bool have_left;
    em_slice left;             /* current left value, borrowed from side[0] */
    em_vbuf out;               /* output value */
} cog_iter;

/* Sorts one tagged value to its side. */
static int add_tagged(cog_iter *c, em_slice v, em_err *err)
{
    em_slice a, b;
    bool ha, hb;
    int rc = em_pair_decode(v, &a, &ha, &b, &hb, err);
    if (rc < 0)
        return rc;
    if (c->join) {
        if (ha && (rc = em_spill_list_add(c->side[0], a, err)) < 0)
            return rc;
        if (hb && (rc = em_spill_list_add(c->side[1], b, err)) < 0)
            return rc;
        return 0;
    }
    if ((ha && c->n0 == UINT32_MAX) || (hb && c->n1 == UINT32_MAX))
        return em_err_set(err, EM_EINVAL, "cogroup: a key has more than %u values on a side",
                          UINT32_MAX);
    if ((ha && em_list_append(&c->l0, a) < 0) || (hb && em_list_append(&c->l1, b) < 0))
        return em_err_set(err, EM_ENOMEM, "cogroup: out of memory");
    c->n0 += ha;
    c->n1 += hb;
    return 0;
}

static int set_key(cog_iter *c, em_slice k, em_err *err)
{
    em_vbuf_clear(&c->key);
    if (em_vbuf_reserve(&c->key, k.n) < 0 || em_vbuf_append(&c->key, k.p, k.n) < 0)
        return em_err_set(err, EM_ENOMEM, "cogroup: out of memory for a %zu-byte key", k.n);
    return 0;
}

/* Reads the next key's values into the sides: 1, or 0 at the end. */
static int load_values(cog_iter *c, em_err *err)
{
    em_slice v;
    int rc;
    if (c->red) {
        em_slice k;
        if ((rc = em_reducer_next_group(c->red, &k, err)) <= 0 || (rc = set_key(c, k, err)) < 0)
            return rc;
        while ((rc = em_reducer_next_value(c->red, &v, err)) == 1)
            if ((rc = add_tagged(c, v, err)) < 0)
                return rc;
        return rc < 0 ? rc : 1;
    }
    em_rec in;
    em_list_iter li;
    if ((rc = em_iter_next(c->parent, &in, err)) <= 0)
        return rc;
    if (!in.key.p)
        return em_err_set(err, EM_EINVAL, "input record is not a pair");
    if ((rc = set_key(c, in.key, err)) < 0 || (rc = em_list_iter_init(&li, in.val, err)) < 0)
        return rc;
    while ((rc = em_list_iter_next(&li, &v, err)) == 1)
        if ((rc = add_tagged(c, v, err)) < 0)
            return rc;
    return rc < 0 ? rc : 1;
}

/* Starts the next key: 1, or 0 at the end. Joins then stream it (phases); a cogroup's record
 * is complete in c->out. */
static int next_key(cog_iter *c, em_err *err)
{
    int64_t o0 = 0, o1 = 0;
    int rc;
    if (c->join) {
        em_spill_list_reset(c->side[0]);
        em_spill_list_reset(c->side[1]);
    } else {
        em_vbuf_clear(&c->l0);
        em_vbuf_clear(&c->l1);
        c->n0 = c->n1 = 0;
        if ((o0 = em_list_begin(&c->l0)) < 0 || (o1 = em_list_begin(&c->l1)) < 0)
            return em_err_set(err, EM_ENOMEM, "cogroup: out of memory");
    }
    if ((rc = load_values(c, err)) <= 0)
        return rc;
    if (c->join) {
        c->have_left = false;
        c->phase = PH_INNER;
        if ((rc = em_spill_list_rewind(c->side[0], err)) < 0 ||
            (rc = em_spill_list_rewind(c->side[1], err)) < 0)
            return rc;
        return 1;
    }
    em_list_end(&c->l0, o0, c->n0);
    em_list_end(&c->l1, o1, c->n1);
    em_vbuf_clear(&c->out);
    em_slice a = em_slice_make(c->l0.data, c->l0.len), b = em_slice_make(c->l1.data, c->l1.len);
    if (em_pair_append(&c->out, &a, &b) < 0)
        return em_err_set(err, EM_ENOMEM, "cogroup: out of memory");
    return 1;
}

static int emit(cog_iter *c, const em_slice *l, const em_slice *r, em_rec *out, em_err *err)
{
    em_vbuf_clear(&c->out);
    if (em_pair_append(&c->out, l, r) < 0)
        return em_err_set(err, EM_ENOMEM, "join: out of memory");
    out->key = em_slice_make(c->key.data, c->key.len);
    out->val = em_slice_make(c->out.data, c->out.len);
    return 1;
}

/* The inner product of the current key, one pair per call: 1, or 0 when done. */
static int inner_next(cog_iter *c, em_rec *out, em_err *err)
{
    em_slice r;
    int rc;
    if (em_spill_list_count(c->side[0]) == 0 || em_spill_list_count(c->side[1]) == 0)
        return 0;
    for (;;) {
        if (!c->have_left) {
            if ((rc = em_spill_list_next(c->side[0], &c->left, err)) <= 0)
                return rc;
            c->have_left = true;
            if ((rc = em_spill_list_rewind(c->side[1], err)) < 0)
                return rc;
        }
        if ((rc = em_spill_list_next(c->side[1], &r, err)) < 0)
            return rc;
        if (rc == 1)
            return emit(c, &c->left, &r, out, err);
        c->have_left = false;
    }
}

/* Outer joins: side s's values with the other side absent, when the other side is empty
 * (side s was rewound at the start of the key and not read since). */
static int unmatched_next(cog_iter *c, int s, em_rec *out, em_err *err)
{
    uint32_t flag = s == 0 ? EM_NODE_JOIN_LEFT : EM_NODE_JOIN_RIGHT;
    em_slice v;
    int rc;
    if (!(c->n->flags & flag) || em_spill_list_count(c->side[1 - s]) != 0)
        return 0;
    if ((rc = em_spill_list_next(c->side[s], &v, err)) <= 0)
        return rc;
    return s == 0 ? emit(c, &v, NULL, out, err) : emit(c, NULL, &v, out, err);
}

static int cog_step(cog_iter *c, em_rec *out, em_err *err)
{
    int rc;
    for (;;) {
        switch (c->phase) {
        case PH_KEY:
            if ((rc = next_key(c, err)) <= 0)
                return rc;
            if (!c->join) {
                out->key = em_slice_make(c->key.data, c->key.len);
                out->val = em_slice_make(c->out.data, c->out.len);
                return 1;
            }
            break;
        case PH_INNER:
            if ((rc = inner_next(c, out, err)) != 0)
                return rc;
            c->phase = PH_LEFT_ONLY;
            break;
        case PH_LEFT_ONLY:
            if ((rc = unmatched_next(c, 0, out, err)) != 0)
                return rc;
            c->phase = PH_RIGHT_ONLY;
            break;
        default:
            if ((rc = unmatched_next(c, 1, out, err)) != 0)
                return rc;
            c->phase = PH_KEY;
        }
    }
}

static int cog_next(em_iter *it, em_rec *out, em_err *err)
{
    cog_iter *c = (cog_iter *)it;
    int rc;
    if (!c->asked && c->parent->group_stream) {
        if ((rc = c->parent->group_stream(c->parent, &c->red, err)) < 0)
            return rc;   /* the parent named itself */
    }
    c->asked = true;
    if ((rc = cog_step(c, out, err)) < 0)
        return em__node_err(c->n, err);
    return rc;
}

static void cog_free(em_iter *it)
{
    cog_iter *c = (cog_iter *)it;
    for (int s = 0; s < 2; s++) {
        if (!c->side[s])
            continue;
        uint64_t n, bytes;
        em_spill_list_spills(c->side[s], &n, &bytes);
        c->t->metrics->spill_count += n;
        c->t->metrics->spill_bytes += bytes;
        em_spill_list_free(c->side[s]);
    }
    em__iter_free(c->parent);
    em_vbuf_destroy(&c->l0);
    em_vbuf_destroy(&c->l1);
    em_vbuf_destroy(&c->key);
    em_vbuf_destroy(&c->out);
    em_free(c);
}

int em__cogroup_split_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                          em_iter **out, em_err *err)
{
    (void)part;
    const em_exec_env *env = t->env;
    size_t budget = env->task_mem_budget ? env->task_mem_budget : DEFAULT_BUDGET;
    cog_iter *c = em_xcalloc(1, sizeof *c);
    c->base.next = cog_next;
    c->base.free = cog_free;
    c->t = t;
    c->n = n;
    c->join = (n->flags & (EM_NODE_JOIN_INNER | EM_NODE_JOIN_LEFT | EM_NODE_JOIN_RIGHT)) != 0;
    for (int s = 0; c->join && s < 2; s++)
        if (!(c->side[s] = em_spill_list_new(env->spill_dir, budget / 2, env->zstd_level,
                                             err))) {
            cog_free(&c->base);   /* parent still NULL: it stays with the caller */
            return em__node_err(n, err);
        }
    c->parent = parent;
    *out = &c->base;
    return 0;
}
