/* tests/unit/sched/test_pref.c - cache locality: the preferred (rdd, partition) of a task
 * (em_sched_task_pref) on hand-built plans, and that the scheduler hands it to the backend
 * with every task (a recording backend). Expected values are worked out by hand from the
 * plans built here. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/sched/sched.h"

TestSuite(sched_pref, .timeout = 30);

static em_plan_node *node(em_plan_graph *g, em_op op, uint32_t nparts, em_plan_node *parent)
{
    em_plan_node *n = em_plan_node_new(g, op);
    n->nparts = nparts;
    if (parent)
        em_plan_node_set_parents(n, &parent, 1);
    return n;
}

static em_plan_node *node2(em_plan_graph *g, em_op op, uint32_t nparts, em_plan_node *a,
                           em_plan_node *b)
{
    em_plan_node *n = em_plan_node_new(g, op);
    em_plan_node *ps[2] = {a, b};
    n->nparts = nparts;
    em_plan_node_set_parents(n, ps, 2);
    return n;
}

/* Asserts the preference of partition part of root: want_rdd 0 = none. */
static void check(const em_plan_node *root, bool map_side, uint32_t part, uint32_t want_rdd,
                  uint32_t want_part)
{
    uint32_t rdd = 99, rp = 99;
    bool has = em_sched_task_pref(root, map_side, part, &rdd, &rp);
    cr_assert_eq(has, want_rdd != 0, "node %u part %u: has=%d", root->id, part, has);
    cr_assert_eq(rdd, want_rdd, "node %u part %u: rdd %u, want %u", root->id, part, rdd,
                 want_rdd);
    cr_assert_eq(rp, want_part, "node %u part %u: partition %u, want %u", root->id, part, rp,
                 want_part);
}

Test(sched_pref, narrow_chain_reaches_the_first_cached_node)
{
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *src = node(g, EM_OP_RANGE, 4, NULL);
    em_plan_node *b = node(g, EM_OP_MAP, 4, src);
    b->level = EM_STORAGE_MEMORY_ONLY;
    em_plan_node *a = node(g, EM_OP_FILTER, 4, b);
    a->level = EM_STORAGE_DISK_ONLY;
    em_plan_node *top = node(g, EM_OP_MAP_PARTITIONS, 4, node(g, EM_OP_GLOM, 4,
                             node(g, EM_OP_SAMPLE, 4, node(g, EM_OP_ZIP_WITH_INDEX, 4, a))));
    check(top, false, 2, a->id, 2);       /* a, not b below it */
    check(a, false, 3, a->id, 3);         /* the root itself is cached */
    check(b, false, 0, b->id, 0);
    check(src, false, 1, 0, 0);           /* a source without storage */
    check(node(g, EM_OP_MAP, 4, src), false, 1, 0, 0);
    check(top, false, 4, 0, 0);           /* out of range */
    em_plan_graph_free(g);
}

Test(sched_pref, shuffles_coalesce_and_cartesian_stop_the_walk)
{
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *c = node(g, EM_OP_MAP, 3, node(g, EM_OP_RANGE, 3, NULL));
    c->level = EM_STORAGE_MEMORY_AND_DISK;
    em_plan_node *tag = node(g, EM_OP_TAG, 3, c);
    em_plan_node *sh = node(g, EM_OP_SHUFFLED, 5, tag);
    /* Map side: the map task of map id 2 computes partition 2 of the shuffle's parent. */
    check(sh, true, 2, c->id, 2);
    /* Reduce side: the stage reads the shuffle; nothing cached before it. */
    check(node(g, EM_OP_COGROUP_SPLIT, 5, sh), false, 1, 0, 0);
    check(sh, false, 1, 0, 0);
    check(node(g, EM_OP_COALESCE, 1, c), false, 0, 0, 0);
    check(node2(g, EM_OP_CARTESIAN, 9, c, c), false, 4, 0, 0);
    /* A map side whose root is not a shuffle has no preference. */
    check(c, true, 0, 0, 0);
    /* local_reduce is one-to-one; a cached node after the shuffle is found. */
    em_plan_node *lr = node(g, EM_OP_LOCAL_REDUCE, 5, sh);
    lr->level = EM_STORAGE_MEMORY_ONLY;
    check(node(g, EM_OP_MAP, 5, node(g, EM_OP_LOCAL_REDUCE, 5, lr)), false, 4, lr->id, 4);
    em_plan_graph_free(g);
}

Test(sched_pref, unions)
{
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *a = node(g, EM_OP_MAP, 3, node(g, EM_OP_RANGE, 3, NULL));
    em_plan_node *b = node(g, EM_OP_FILTER, 2, node(g, EM_OP_RANGE, 2, NULL));
    a->level = b->level = EM_STORAGE_MEMORY_ONLY;
    /* Plain union: partitions 0..2 are a's, 3..4 are b's 0..1. */
    em_plan_node *u = node2(g, EM_OP_UNION, 5, a, b);
    check(u, false, 1, a->id, 1);
    check(u, false, 3, b->id, 0);
    check(u, false, 4, b->id, 1);
    check(u, false, 5, 0, 0);
    /* ZIP_PARTS: the first parent with a preference, same partition. */
    em_plan_node *plain = node(g, EM_OP_MAP, 2, node(g, EM_OP_RANGE, 2, NULL));
    em_plan_node *z = node2(g, EM_OP_UNION, 2, plain, b);
    z->flags |= EM_NODE_ZIP_PARTS;
    check(z, false, 1, b->id, 1);
    em_plan_node *z2 = node2(g, EM_OP_UNION, 2, plain, plain);
    z2->flags |= EM_NODE_ZIP_PARTS;
    check(z2, false, 0, 0, 0);
    em_plan_graph_free(g);
}

Test(sched_pref, local_checkpoints)
{
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *w = node(g, EM_OP_CHECKPOINT_WRITE, 3, node(g, EM_OP_RANGE, 3, NULL));
    w->flags |= EM_NODE_LOCAL_CKPT;
    w->ckpt_rdd = w->id;
    check(node(g, EM_OP_MAP, 3, w), false, 2, w->id, 2);
    em_plan_node *f = node(g, EM_OP_CHECKPOINT_FILE, 3, NULL);
    f->flags |= EM_NODE_LOCAL_CKPT;
    f->ckpt_rdd = w->id;
    check(node(g, EM_OP_FILTER, 3, f), false, 1, w->id, 1);
    /* A reliable checkpoint (files) has no executor to prefer. */
    em_plan_node *rf = node(g, EM_OP_CHECKPOINT_FILE, 3, NULL);
    check(node(g, EM_OP_MAP, 3, rf), false, 1, 0, 0);
    em_plan_node *rw = node(g, EM_OP_CHECKPOINT_WRITE, 3, node(g, EM_OP_RANGE, 3, NULL));
    check(rw, false, 0, 0, 0);
    em_plan_graph_free(g);
}

/* ---------------------------------------------------------------- through the scheduler */

typedef struct recorder {
    uint32_t ntasks;
    em_task_desc seen[16];
} recorder;

static char *rec_encode(void *self, const em_plan_node *root, bool map_side, const void *res,
                        em_err *err)
{
    (void)self, (void)root, (void)map_side, (void)res, (void)err;
    return em_xstrdup("{}");
}

static int rec_run(void *self, const em_task_desc *tasks, size_t n, em_task_result *results,
                   em_err *err)
{
    recorder *r = self;
    (void)err;
    for (size_t i = 0; i < n; i++) {
        if (r->ntasks < 16)
            r->seen[r->ntasks++] = tasks[i];
        if (tasks[i].is_map) {
            snprintf(results[i].map_status.loc, sizeof results[i].map_status.loc, "here");
            results[i].map_status.nparts = 2;
            results[i].map_status.sizes = em_xcalloc(2, sizeof(uint64_t));
        }
    }
    return 0;
}

static void rec_free(void *self)
{
    (void)self;
}

static const em_task_backend_ops rec_ops = {
    .name = "recorder", .encode_stage = rec_encode, .run_tasks = rec_run, .free = rec_free};

Test(sched_pref, tasks_carry_their_preference)
{
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *c = node(g, EM_OP_MAP, 3, node(g, EM_OP_RANGE, 3, NULL));
    c->level = EM_STORAGE_MEMORY_ONLY;
    em_plan_node *sh = node(g, EM_OP_SHUFFLED, 2, node(g, EM_OP_FILTER, 3, c));
    sh->shuffle_id = 1;
    em_plan_node *final = node(g, EM_OP_MAP, 2, sh);
    recorder r = {0};
    em_map_tracker *t = em_map_tracker_new();
    em_err err = EM_ERR_INIT;
    em_sched_opts o = {.backend = {&rec_ops, &r}, .tracker = t};
    em_sched *s = em_sched_new(&o, &err);
    cr_assert_not_null(s, "%s", err.msg);
    void *payloads[2] = {NULL, NULL};
    cr_assert_eq(em_sched_run_job(s, final, NULL, NULL, 2, payloads, &err), 0, "%s", err.msg);
    cr_assert_eq(r.ntasks, 5, "3 map tasks and 2 result tasks, got %u", r.ntasks);
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert(r.seen[i].is_map);
        cr_assert_eq(r.seen[i].pref_rdd, c->id, "map task %u", i);
        cr_assert_eq(r.seen[i].pref_part, r.seen[i].partition);
    }
    for (uint32_t i = 3; i < 5; i++) {
        cr_assert(!r.seen[i].is_map);
        cr_assert_eq(r.seen[i].pref_rdd, 0, "result task after a shuffle prefers nothing");
    }
    em_sched_free(s);
    em_map_tracker_free(t);
    em_plan_graph_free(g);
}
