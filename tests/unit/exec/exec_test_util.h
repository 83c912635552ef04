/* tests/unit/exec/exec_test_util.h - helpers for the plan and exec unit tests: a task
 * environment over temporary directories and a real block store, input blocks, running
 * every partition of a stage (map tasks of shuffles first), and owned record lists to
 * compare against naive references. */
#ifndef EMBER_EXEC_TEST_UTIL_H
#define EMBER_EXEC_TEST_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/exec/exec.h"

/* ---------------------------------------------------------------- owned records */

typedef struct trec {
    bool kv;
    uint8_t *k, *v;
    size_t kn, vn;
} trec;

typedef struct trecs {
    trec *v;
    size_t n, cap;
} trecs;

static inline void trecs_add(trecs *t, bool kv, const void *k, size_t kn, const void *v,
                             size_t vn)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->v = realloc(t->v, t->cap * sizeof *t->v);
    }
    trec *r = &t->v[t->n++];
    r->kv = kv;
    r->kn = kn;
    r->vn = vn;
    r->k = malloc(kn + 1);
    r->v = malloc(vn + 1);
    if (kn)
        memcpy(r->k, k, kn);
    if (vn)
        memcpy(r->v, v, vn);
}

static inline void trecs_add_rec(trecs *t, const em_rec *r)
{
    trecs_add(t, r->key.p != NULL, r->key.p, r->key.n, r->val.p, r->val.n);
}

static inline void trecs_free(trecs *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].k);
        free(t->v[i].v);
    }
    free(t->v);
    memset(t, 0, sizeof *t);
}

static inline int tr_cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    return c ? c : (an > bn) - (an < bn);
}

static inline int trec_cmp(const void *x, const void *y)
{
    const trec *a = x, *b = y;
    if (a->kv != b->kv)
        return a->kv - b->kv;
    int c = tr_cmp_bytes(a->k, a->kn, b->k, b->kn);
    return c ? c : tr_cmp_bytes(a->v, a->vn, b->v, b->vn);
}

/* Asserts that the two lists hold the same records (in order unless sort). */
static inline void trecs_assert_eq(trecs *got, trecs *want, bool sort, const char *what)
{
    if (sort && got->n > 1)   /* qsort(NULL, 0, ...) is undefined */
        qsort(got->v, got->n, sizeof *got->v, trec_cmp);
    if (sort && want->n > 1)
        qsort(want->v, want->n, sizeof *want->v, trec_cmp);
    cr_assert_eq(got->n, want->n, "%s: %zu records, expected %zu", what, got->n, want->n);
    for (size_t i = 0; i < got->n; i++)
        cr_assert(trec_cmp(&got->v[i], &want->v[i]) == 0, "%s: record %zu differs (got %zu/%zu "
                  "bytes kv=%d, want %zu/%zu kv=%d)", what, i, got->v[i].kn, got->v[i].vn,
                  got->v[i].kv, want->v[i].kn, want->v[i].vn, want->v[i].kv);
}

/* ---------------------------------------------------------------- environment */

#define TE_MAX_STATUS 1024

typedef struct tenv {
    char *dir;
    char shuffle_dir[256], spill_dir[256], store_dir[256];
    em_block_store *store;
    em_exec_env env;
    em_map_status st[TE_MAX_STATUS];
    size_t nst;
} tenv;

static inline int te_map_outputs(void *ud, uint32_t sid, uint32_t reduce, em_shuffle_src **srcs,
                                 uint32_t *n, em_err *err)
{
    tenv *te = ud;
    em_shuffle_src *v = em_calloc(te->nst + 1, sizeof *v);
    uint32_t k = 0;
    if (!v)
        return em_err_set(err, EM_ENOMEM, "oom");
    for (size_t i = 0; i < te->nst; i++) {
        if (te->st[i].shuffle_id != sid)
            continue;
        cr_assert_lt(reduce, te->st[i].nparts);
        v[k].map_id = te->st[i].map_id;
        v[k].loc = te->st[i].loc;
        v[k].size = te->st[i].sizes[reduce];
        k++;
    }
    *srcs = v;
    *n = k;
    return 0;
}

static inline void te_init(tenv *te)
{
    em_err err = EM_ERR_INIT;
    memset(te, 0, sizeof *te);
    em_registry_init_builtins();
    te->dir = strdup("/tmp/ember-exec-test-XXXXXX");
    cr_assert(mkdtemp(te->dir));
    snprintf(te->shuffle_dir, sizeof te->shuffle_dir, "%s/shuffle", te->dir);
    snprintf(te->spill_dir, sizeof te->spill_dir, "%s/spill", te->dir);
    snprintf(te->store_dir, sizeof te->store_dir, "%s/store", te->dir);
    cr_assert_eq(em_mkdir_p(te->shuffle_dir, &err), 0);
    cr_assert_eq(em_mkdir_p(te->spill_dir, &err), 0);
    cr_assert_eq(em_mkdir_p(te->store_dir, &err), 0);
    em_store_opts so = {.mem_budget = 64u << 20, .dir = te->store_dir};
    te->store = em_block_store_new(&so, &err);
    cr_assert(te->store, "%s", err.msg);
    te->env.store = te->store;
    te->env.shuffle_dir = te->shuffle_dir;
    te->env.spill_dir = te->spill_dir;
    te->env.exec_id = te->shuffle_dir;   /* the local fetcher's loc is the directory */
    te->env.fetcher = em_fetcher_local();
    te->env.map_outputs = te_map_outputs;
    te->env.ud = te;
    te->env.task_mem_budget = 8u << 20;
    te->env.zstd_level = 1;
}

static inline void te_destroy(tenv *te)
{
    em_err err = EM_ERR_INIT;
    for (size_t i = 0; i < te->nst; i++)
        em_map_status_destroy(&te->st[i]);
    em_block_store_free(te->store);
    em_rm_rf(te->dir, &err);
    free(te->dir);
}

/* Puts records as the EM_BLOCK_INPUT block of (node, part), split into small batches so
 * that iterators cross batch boundaries. */
static inline void te_put_input(tenv *te, uint32_t node, uint32_t part, em_rec_kind kind,
                                uint32_t width, const em_rec *recs, size_t n)
{
    em_err err = EM_ERR_INIT;
    em_batch *bs[64];
    size_t nb = 0, per = n / 60 + 1;
    for (size_t i = 0; i < n || nb == 0; i += per) {
        em_batch_builder bb;
        em_batch_builder_init(&bb, kind, width);
        for (size_t j = i; j < n && j < i + per; j++)
            cr_assert_eq(em_batch_builder_add(&bb, &recs[j], &err), 0, "%s", err.msg);
        bs[nb] = em_batch_builder_finish(&bb, &err);
        em_batch_builder_destroy(&bb);
        cr_assert(bs[nb]);
        nb++;
        if (n == 0)
            break;
    }
    em_block_id id = {EM_BLOCK_INPUT, node, part, 0};
    cr_assert_eq(em_block_store_put_take(te->store, id, bs, nb, EM_STORAGE_MEMORY_ONLY, &err),
                 0, "%s", err.msg);
}

static inline void te_add_batches(trecs *out, em_batch **bs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        em_batch_iter it;
        em_rec r;
        em_batch_iter_init(&it, bs[i]);
        while (em_batch_iter_next(&it, &r)) {
            if (em_batch_kind(bs[i]) == EM_REC_KV && !r.key.p)
                r.key = em_slice_make("", 0);
            trecs_add_rec(out, &r);
        }
    }
}

/* Runs the map tasks of SHUFFLED node sh (every partition of its parent), recording the
 * map statuses for te_map_outputs. Shuffles feeding the parent's stage must run first. */
static inline void te_run_shuffle(tenv *te, const em_plan_node *sh)
{
    em_err err = EM_ERR_INIT;
    char *js = em_stage_encode(sh, true, NULL, &err);
    cr_assert(js, "%s", err.msg);
    for (uint32_t p = 0; p < sh->parents[0]->nparts; p++) {
        em_task_result res;
        int rc = em_exec_run_task(&te->env, js, strlen(js), p, 0, &res, &err);
        cr_assert_eq(rc, 0, "map task %u: %s", p, err.msg);
        cr_assert(res.is_map);
        cr_assert_lt(te->nst, TE_MAX_STATUS);
        te->st[te->nst] = res.map_status;
        te->st[te->nst].sizes = em_malloc(res.map_status.nparts * sizeof(uint64_t));
        memcpy(te->st[te->nst].sizes, res.map_status.sizes,
               res.map_status.nparts * sizeof(uint64_t));
        te->nst++;
        em_task_result_destroy(&res);
    }
    em_free(js);
}

/* Runs a result stage on every partition of root; appends batches' records (collect/take/
 * top/...) to out in partition order; returns the sum of result counts. */
static inline uint64_t te_run_result(tenv *te, const em_plan_node *root,
                                     const em_result_spec *spec, trecs *out)
{
    em_err err = EM_ERR_INIT;
    uint64_t count = 0;
    char *js = em_stage_encode(root, false, spec, &err);
    cr_assert(js, "%s", err.msg);
    for (uint32_t p = 0; p < root->nparts; p++) {
        em_task_result res;
        int rc = em_exec_run_task(&te->env, js, strlen(js), p, 0, &res, &err);
        cr_assert_eq(rc, 0, "task %u: %s", p, err.msg);
        cr_assert_eq(res.code, 0);
        if (out)
            te_add_batches(out, res.batches, res.nbatches);
        count += res.count;
        em_task_result_destroy(&res);
    }
    em_free(js);
    return count;
}

static inline void te_collect(tenv *te, const em_plan_node *root, trecs *out)
{
    em_result_spec spec = {.op = EM_RESULT_COLLECT};
    te_run_result(te, root, &spec, out);
}

/* ---------------------------------------------------------------- plan building */

static inline em_plan_node *tn(em_plan_graph *g, em_op op, uint32_t nparts, em_plan_node *p0,
                               em_plan_node *p1)
{
    em_plan_node *n = em_plan_node_new(g, op);
    em_plan_node *ps[2] = {p0, p1};
    n->nparts = nparts;
    em_plan_node_set_parents(n, ps, p1 ? 2 : p0 ? 1 : 0);
    return n;
}

static inline void tn_fn(em_plan_node *n, const char *fn, const void *blob, size_t blob_len)
{
    n->fn = em_xstrdup(fn);
    if (blob_len) {
        n->blob = em_xmalloc(blob_len);
        memcpy(n->blob, blob, blob_len);
        n->blob_len = blob_len;
    }
}

/* A SHUFFLED node with hash partitioning. */
static inline em_plan_node *tn_shuffle(em_plan_graph *g, em_plan_node *parent, uint32_t nparts,
                                       uint32_t sid, em_reduce_mode mode, uint32_t flags)
{
    em_plan_node *n = tn(g, EM_OP_SHUFFLED, nparts, parent, NULL);
    n->shuffle_id = sid;
    n->map_part = EM_MAP_PART_HASH;
    n->part.kind = EM_PART_HASH;
    n->part.nparts = nparts;
    n->mode = mode;
    n->flags = flags;
    n->is_kv = true;
    return n;
}

static inline uint8_t *enc64(uint8_t b[8], int64_t v)
{
    em_enc_i64(b, v);
    return b;
}

#endif /* EMBER_EXEC_TEST_UTIL_H */
