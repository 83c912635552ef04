/* engine/exec/sink.c - where a task's records go: the shuffle writer of a map task, or the
 * result operation of a result task (engine/exec/exec.h em_result_op; AGGREGATE_ACC's is in
 * accum.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/exec/exec_int.h"

#define CHUNK_BYTES ((size_t)1 << 20)   /* SAVE_TEXT write size */

/* ---------------------------------------------------------------- map side */

/* A combining hash-partitioned map task adds records in groups of up to PEND_MAX: each is
 * copied (records are borrowed), hashed and its combine slot prefetched, then the group is
 * added, so the slots' cache misses overlap instead of coming one after another. */
#define PEND_MAX 16
#define PEND_BYTES 4096

typedef struct pend_rec {
    uint64_t h;
    uint32_t part;
    uint32_t off;             /* key at pbuf + off, then the value */
    uint32_t klen, vlen;
} pend_rec;

typedef struct map_sink {
    em_task *t;
    const em_plan_node *root;
    em_partitioner part;
    bool have_part;
    bool hash_part;           /* part is a hash partitioner: hash each key once */
    uint32_t rr;              /* ROUND_ROBIN: next reduce partition */
    em_node_combiner comb;
    em_shuffle_writer *w;
    bool batch;               /* hash_part and a map-side combine: group adds */
    uint64_t pmask;           /* hash_part with 2^k > 1 partitions: 2^k - 1, else 0 */
    uint32_t npend;
    size_t pused;
    pend_rec pend[PEND_MAX];
    uint8_t pbuf[PEND_BYTES];
} map_sink;

/* Adds the pending group to the writer. */
static int flush_pending(map_sink *s, em_err *err)
{
    for (uint32_t i = 0; i < s->npend; i++) {
        const pend_rec *q = &s->pend[i];
        em_rec r = {em_slice_make(s->pbuf + q->off, q->klen),
                    em_slice_make(s->pbuf + q->off + q->klen, q->vlen)};
        if (em_shuffle_writer_add_hashed(s->w, q->part, q->h, &r, err) < 0) {
            s->npend = 0;
            s->pused = 0;
            return em__node_err(s->root, err);
        }
    }
    s->t->metrics->records_written += s->npend;
    s->npend = 0;
    s->pused = 0;
    return 0;
}

/* memcpy without a call for the short keys and values of a group (words, ids, counts). */
static inline void copy_small(uint8_t *d, const uint8_t *p, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            d[i] = p[i];
    } else {
        memcpy(d, p, n);
    }
}

/* Queues a record of a batching sink (hash h, partition p); large ones go straight in. */
static int add_pending(map_sink *s, uint32_t p, uint64_t h, const em_rec *r, em_err *err)
{
    size_t n = r->key.n + r->val.n;
    int rc;
    if (s->pused + n > PEND_BYTES && (rc = flush_pending(s, err)) < 0)
        return rc;
    if (n > PEND_BYTES) {
        if (em_shuffle_writer_add_hashed(s->w, p, h, r, err) < 0)
            return em__node_err(s->root, err);
        s->t->metrics->records_written++;
        return 0;
    }
    em_shuffle_writer_prefetch(s->w, p, h);
    pend_rec *q = &s->pend[s->npend++];
    q->h = h;
    q->part = p;
    q->off = (uint32_t)s->pused;
    q->klen = (uint32_t)r->key.n;
    q->vlen = (uint32_t)r->val.n;
    copy_small(s->pbuf + s->pused, r->key.p, r->key.n);
    copy_small(s->pbuf + s->pused + r->key.n, r->val.p, r->val.n);
    s->pused += n;
    return s->npend == PEND_MAX ? flush_pending(s, err) : 0;
}

/* The kind of the shuffle's records, from the first one: plain records of the width the
 * parent declares stay FIXED (repartition of vectors), other plain ones are BYTES. */
static em_rec_kind map_kind(const map_sink *s, bool kv, size_t vlen)
{
    uint32_t w = s->root->parents[0]->width;
    return kv ? EM_REC_KV : w && vlen == w ? EM_REC_FIXED : EM_REC_BYTES;
}

static int writer_open(map_sink *s, em_rec_kind kind, em_err *err)
{
    const em_exec_env *env = s->t->env;
    const em_plan_node *n = s->root;
    bool combine = (n->flags & EM_NODE_MAP_COMBINE) != 0;
    int rc;
    if (combine && (rc = em__node_combiner_init(&s->comb, s->t, n, err)) < 0)
        return rc;
    em_shuffle_writer_opts o = {
        .dir = env->shuffle_dir,
        .shuffle_id = n->shuffle_id,
        .map_id = s->t->partition,
        .nparts = n->nparts,
        .kind = kind,
        .width = kind == EM_REC_FIXED ? n->parents[0]->width : 0,
        .combiner = combine ? &s->comb.comb : NULL,
        .mem_budget = env->task_mem_budget,
        .zstd_level = env->zstd_level,
        .sync = env->shuffle_sync,
    };
    s->w = em_shuffle_writer_new(&o, err);
    return s->w ? 0 : em__node_err(n, err);
}

static int map_sink_add(map_sink *s, const em_rec *r, em_err *err)
{
    const em_plan_node *n = s->root;
    uint32_t p;
    int rc;
    if (!s->w && (rc = writer_open(s, map_kind(s, r->key.p, r->val.n), err)) < 0)
        return rc;
    if (n->map_part == EM_MAP_PART_ROUND_ROBIN) {
        p = s->rr;
        s->rr = s->rr + 1 == n->nparts ? 0 : s->rr + 1;
    } else {
        if (!r->key.p)
            return em_err_set(err, EM_EINVAL, "shuffled (rdd %u): partitioning by key a "
                              "record that is not a pair", n->id);
        if (s->hash_part) {
            uint64_t h = em_shuffle_key_hash(r->key);
            /* h % nparts; a mask when nparts is a power of two (a 64-bit division costs
             * tens of cycles a record) */
            p = s->pmask ? (uint32_t)(h & s->pmask) : (uint32_t)(h % s->part.nparts);
            if (s->batch)
                return add_pending(s, p, h, r, err);
            if ((rc = em_shuffle_writer_add_hashed(s->w, p, h, r, err)) < 0)
                return em__node_err(n, err);
            s->t->metrics->records_written++;
            return 0;
        }
        p = em_partitioner_part(&s->part, r->key);
    }
    if ((rc = em_shuffle_writer_add(s->w, p, r, err)) < 0)
        return em__node_err(n, err);
    s->t->metrics->records_written++;
    return 0;
}

static int map_sink_push(void *ud, const em_rec *r, em_err *err)
{
    return map_sink_add(ud, r, err);
}

int em__run_map_sink(em_task *t, const em_plan_node *root, em_iter *in, em_task_result *out,
                     em_err *err)
{
    map_sink *s = em_calloc(1, sizeof *s);   /* the pending buffer: not on the stack */
    int rc = 0;
    if (!s)
        return em_err_set(err, EM_ENOMEM, "map task: out of memory");
    s->t = t;
    s->root = root;
    if (root->map_part == EM_MAP_PART_ROUND_ROBIN) {
        s->rr = (uint32_t)(em_mix64(root->seed ^ t->partition) % root->nparts);
    } else {
        if ((rc = em_part_spec_partitioner(&root->part, &s->part, err)) < 0) {
            em__node_err(root, err);
            goto out;
        }
        s->have_part = true;
        s->hash_part = em_partitioner_is_hash(&s->part);
        s->batch = s->hash_part && (root->flags & EM_NODE_MAP_COMBINE);
        uint32_t np = s->part.nparts;
        if (s->hash_part && np > 1 && (np & (np - 1)) == 0)
            s->pmask = np - 1;
    }
    if ((rc = em__iter_drain(in, map_sink_push, s, err)) < 0 ||
        (rc = flush_pending(s, err)) < 0)
        goto out;
    /* No record at all: still commit empty outputs (of the kind the plan expects; a map-side
     * combine means pairs even when the parent is a user function the plan cannot see into). */
    bool kv = root->parents[0]->is_kv || (root->flags & EM_NODE_MAP_COMBINE) != 0;
    if (!s->w && (rc = writer_open(s, map_kind(s, kv, root->parents[0]->width), err)) < 0)
        goto out;
    out->is_map = true;
    if ((rc = em_shuffle_writer_commit(s->w, &out->map_status, err)) < 0) {
        em__node_err(root, err);
        goto out;
    }
    snprintf(out->map_status.loc, sizeof out->map_status.loc, "%s",
             t->env->exec_id ? t->env->exec_id : "");
    t->metrics->shuffle_write_bytes += out->map_status.bytes_written;
    t->metrics->spill_count += out->map_status.spill_count;
    t->metrics->spill_bytes += out->map_status.spill_bytes;
out:
    em_shuffle_writer_free(s->w);
    em__node_combiner_destroy(&s->comb);
    if (s->have_part)
        em_partitioner_destroy(&s->part);
    em_free(s);
    return rc;
}

/* ---------------------------------------------------------------- result side */

static int rec_bytes(const em_rec *r, em_vbuf *out, em_err *err)
{
    int rc = r->key.p ? em_pair_append(out, &r->key, &r->val)
                      : em_vbuf_append(out, r->val.p, r->val.n);
    return rc < 0 ? em_err_set(err, EM_ENOMEM, "record as bytes: out of memory") : 0;
}

/* One BYTES batch holding one record. */
static int one_record(em_task_result *out, em_slice v, em_err *err)
{
    em_batch_builder bb;
    em_batch_builder_init(&bb, EM_REC_BYTES, 0);
    int rc = em_batch_builder_add_val(&bb, v, err);
    em_batch *b = rc < 0 ? NULL : em_batch_builder_finish(&bb, err);
    em_batch_builder_destroy(&bb);
    if (!b)
        return rc < 0 ? rc : (err && err->code ? err->code : EM_ENOMEM);
    out->batches = em_malloc(sizeof *out->batches);
    if (!out->batches) {
        em_batch_unref(b);
        return em_err_set(err, EM_ENOMEM, "out of memory");
    }
    out->batches[0] = b;
    out->nbatches = 1;
    return 0;
}

static int sink_collect(em_task *t, em_iter *in, uint64_t limit, em_task_result *out,
                        em_err *err)
{
    em_batcher b;
    em_rec r;
    int rc = 0;
    uint64_t n = 0;
    em__batcher_init(&b, 0);
    while (n < limit && (rc = em_iter_next(in, &r, err)) == 1) {
        if ((rc = em__batcher_add(&b, &r, err)) < 0)
            break;
        n++;
    }
    if (rc >= 0)
        rc = em__batcher_finish(&b, &out->batches, &out->nbatches, err);
    em__batcher_destroy(&b);
    t->metrics->records_written += n;
    return rc < 0 ? rc : 0;
}

/* FOLD (zero optional) and AGGREGATE (zero required, treated as empty when absent). */
static int sink_fold(em_task *t, const em_result_spec *res, em_iter *in, bool need_zero,
                     em_task_result *out, em_err *err)
{
    em_any_fn f;
    em_vbuf acc, next;
    em_rec r;
    bool have = res->has_zero || need_zero;
    int rc = em_registry_resolve(res->fn, EM_FN_REDUCE, &f, err);
    if (rc < 0)
        return rc;
    em_reduce_fn fn = (em_reduce_fn)f;
    em_fn_ctx ctx = {res->blob, t};
    em_vbuf_init(&acc);
    em_vbuf_init(&next);
    if (have && em_vbuf_append(&acc, res->zero.p, res->zero.n) < 0) {
        rc = em_err_set(err, EM_ENOMEM, "out of memory");
        goto out;
    }
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        t->metrics->records_written++;
        if (!have) {
            have = true;
            if (em_vbuf_append(&acc, r.val.p, r.val.n) < 0) {
                rc = em_err_set(err, EM_ENOMEM, "out of memory");
                goto out;
            }
            continue;
        }
        em_vbuf_clear(&next);
        if ((rc = fn(&ctx, em_slice_make(acc.data, acc.len), r.val, &next, err)) < 0) {
            em_err_prefix(err, "%s '%s'", res->op == EM_RESULT_FOLD ? "fold" : "aggregate",
                          res->fn);
            goto out;
        }
        em_vbuf tmp = acc;
        acc = next;
        next = tmp;
    }
    if (rc == 0 && have)
        rc = one_record(out, em_slice_make(acc.data ? acc.data : (const uint8_t *)"", acc.len),
                        err);
out:
    em_vbuf_destroy(&acc);
    em_vbuf_destroy(&next);
    return rc;
}

/* TOP: a binary heap of the n best records as bytes; its root is the worst kept one
 * (largest for take_ordered, smallest for top), replaced when a better record comes. */
typedef struct top_heap {
    em_slice *v;     /* owned copies (p allocated with em_malloc) */
    size_t n, cap;
    bool desc;
} top_heap;

/* True when a should sit above b in the heap (a is worse to keep). */
static bool worse(const top_heap *h, em_slice a, em_slice b)
{
    int c = em_slice_cmp(a, b);
    return h->desc ? c < 0 : c > 0;
}

static void sift_down(top_heap *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && worse(h, h->v[l], h->v[m]))
            m = l;
        if (r < h->n && worse(h, h->v[r], h->v[m]))
            m = r;
        if (m == i)
            return;
        em_slice tmp = h->v[i];
        h->v[i] = h->v[m];
        h->v[m] = tmp;
        i = m;
    }
}

static void sift_up(top_heap *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(h, h->v[i], h->v[p]))
            return;
        em_slice tmp = h->v[i];
        h->v[i] = h->v[p];
        h->v[p] = tmp;
        i = p;
    }
}

static int top_offer(top_heap *h, uint64_t limit, em_slice s, em_err *err)
{
    if (h->n == limit && !worse(h, h->v[0], s))
        return 0;
    uint8_t *copy = em_malloc(s.n ? s.n : 1);
    if (!copy)
        return em_err_set(err, EM_ENOMEM, "top: out of memory");
    if (s.n)
        memcpy(copy, s.p, s.n);
    if (h->n == limit) {
        em_free((void *)h->v[0].p);
        h->v[0] = em_slice_make(copy, s.n);
        sift_down(h, 0);
        return 0;
    }
    em_slice *nv = em_arr_grow(h->v, &h->cap, h->n + 1, sizeof *nv);
    if (!nv) {
        em_free(copy);
        return em_err_set(err, EM_ENOMEM, "top: out of memory");
    }
    h->v = nv;
    h->v[h->n] = em_slice_make(copy, s.n);
    sift_up(h, h->n++);
    return 0;
}

static int sink_top(em_task *t, const em_result_spec *res, em_iter *in, em_task_result *out,
                    em_err *err)
{
    top_heap h = {.desc = res->descending};
    em_vbuf tmp;
    em_rec r;
    int rc;
    em_vbuf_init(&tmp);
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        t->metrics->records_written++;
        if (res->n == 0)
            continue;
        em_vbuf_clear(&tmp);
        if ((rc = rec_bytes(&r, &tmp, err)) < 0 ||
            (rc = top_offer(&h, res->n, em_slice_make(tmp.data, tmp.len), err)) < 0)
            break;
    }
    /* Pop the heap from the worst: fills the output from the back. */
    size_t total = h.n;
    em_slice *sorted = rc == 0 ? em_malloc((total ? total : 1) * sizeof *sorted) : NULL;
    if (rc == 0 && !sorted)
        rc = em_err_set(err, EM_ENOMEM, "top: out of memory");
    for (size_t k = total; rc == 0 && k > 0; k--) {
        sorted[k - 1] = h.v[0];
        h.v[0] = h.v[--h.n];
        sift_down(&h, 0);
    }
    em_batcher b;
    em__batcher_init(&b, 0);
    for (size_t k = 0; rc == 0 && k < total; k++) {
        em_rec o = {em_slice_make(NULL, 0), sorted[k]};
        rc = em__batcher_add(&b, &o, err);
    }
    if (rc == 0)
        rc = em__batcher_finish(&b, &out->batches, &out->nbatches, err);
    em__batcher_destroy(&b);
    if (sorted)
        for (size_t k = 0; k < total; k++)
            em_free((void *)sorted[k].p);
    for (size_t k = 0; k < h.n; k++)
        em_free((void *)h.v[k].p);
    em_free(sorted);
    em_free(h.v);
    em_vbuf_destroy(&tmp);
    return rc;
}

static int sink_save_text(em_task *t, const em_result_spec *res, em_iter *in,
                          em_task_result *out, em_err *err)
{
    char *path = em_xasprintf("%s/part-%05u", res->path ? res->path : ".", t->partition);
    em_file *f = NULL;
    em_vbuf buf;
    em_rec r;
    int rc;
    em_vbuf_init(&buf);
    if ((rc = em_file_create_tmp(path, &f, err)) < 0)
        goto out;
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        bool ok = true;
        if (r.key.p)
            ok = em_vbuf_append(&buf, r.key.p, r.key.n) == 0 &&
                 em_vbuf_append(&buf, "\t", 1) == 0;
        ok = ok && em_vbuf_append(&buf, r.val.p, r.val.n) == 0 &&
             em_vbuf_append(&buf, "\n", 1) == 0;
        if (!ok) {
            rc = em_err_set(err, EM_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        out->count++;
        t->metrics->records_written++;
        if (buf.len >= CHUNK_BYTES) {
            if ((rc = em_file_write(f, buf.data, buf.len, err)) < 0)
                goto out;
            em_vbuf_clear(&buf);
        }
    }
    if (rc < 0 || (buf.len && (rc = em_file_write(f, buf.data, buf.len, err)) < 0))
        goto out;
    rc = em_file_commit(f, err);
    f = NULL;
out:
    em_file_abort(f);
    em_vbuf_destroy(&buf);
    em_free(path);
    return rc;
}

static int sink_foreach(em_task *t, const em_result_spec *res, em_iter *in, em_err *err)
{
    em_any_fn f;
    int rc = em_registry_resolve(res->fn, EM_FN_FOREACH, &f, err);
    if (rc < 0)
        return rc;
    em_fn_ctx ctx = {res->blob, t};
    if ((rc = ((em_foreach_fn)f)(&ctx, t->partition, in, err)) < 0)
        return em_err_prefix(err, "foreach_partition '%s'", res->fn);
    return 0;
}

/* Reservoir sampling (Vitter's algorithm R): after i records every one is kept with
 * probability n / i. */
static int sink_sample_keys(em_task *t, const em_result_spec *res, em_iter *in,
                            em_task_result *out, em_err *err)
{
    em_rng rng;
    em_slice *keep = NULL;
    size_t nkeep = 0;
    em_rec r;
    int rc;
    em_rng_seed(&rng, em_mix64(res->seed ^ t->partition));
    uint64_t cap = res->n < (1u << 24) ? res->n : (1u << 24);
    if (cap && !(keep = em_calloc((size_t)cap, sizeof *keep)))
        return em_err_set(err, EM_ENOMEM, "sample keys: out of memory");
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        em_slice k = r.key.p ? r.key : r.val;
        if (k.n > EM_SAMPLE_KEY_MAX)
            k.n = EM_SAMPLE_KEY_MAX;   /* a prefix bounds as well (exec.h) */
        uint64_t i = out->count++;
        uint64_t j = i < cap ? i : em_rng_below(&rng, i + 1);
        if (j >= cap)
            continue;
        uint8_t *copy = em_malloc(k.n ? k.n : 1);
        if (!copy) {
            rc = em_err_set(err, EM_ENOMEM, "sample keys: out of memory");
            break;
        }
        if (k.n)
            memcpy(copy, k.p, k.n);
        if (j < nkeep)
            em_free((void *)keep[j].p);
        else
            nkeep++;
        keep[j] = em_slice_make(copy, k.n);
    }
    em_batcher b;
    em__batcher_init(&b, 0);
    for (size_t k = 0; rc == 0 && k < nkeep; k++) {
        em_rec o = {em_slice_make(NULL, 0), keep[k]};
        rc = em__batcher_add(&b, &o, err);
    }
    if (rc == 0)
        rc = em__batcher_finish(&b, &out->batches, &out->nbatches, err);
    em__batcher_destroy(&b);
    for (size_t k = 0; k < nkeep; k++)
        em_free((void *)keep[k].p);
    em_free(keep);
    return rc;
}

int em__run_result_sink(em_task *t, const em_result_spec *res, uint32_t width, em_iter *in,
                        em_task_result *out, em_err *err)
{
    em_rec r;
    int rc;
    switch (res->op) {
    case EM_RESULT_COLLECT: return sink_collect(t, in, UINT64_MAX, out, err);
    case EM_RESULT_TAKE: return sink_collect(t, in, res->n, out, err);
    case EM_RESULT_COUNT:
        while ((rc = em_iter_next(in, &r, err)) == 1)
            out->count++;
        t->metrics->records_written += out->count;
        return rc;
    case EM_RESULT_FOLD: return sink_fold(t, res, in, false, out, err);
    case EM_RESULT_AGGREGATE: return sink_fold(t, res, in, true, out, err);
    case EM_RESULT_TOP: return sink_top(t, res, in, out, err);
    case EM_RESULT_SAVE_TEXT: return sink_save_text(t, res, in, out, err);
    case EM_RESULT_FOREACH: return sink_foreach(t, res, in, err);
    case EM_RESULT_SAMPLE_KEYS: return sink_sample_keys(t, res, in, out, err);
    case EM_RESULT_AGGREGATE_ACC: return em__sink_aggregate_acc(t, res, width, in, out, err);
    }
    return em_err_set(err, EM_EPLAN, "unknown result op %d", (int)res->op);
}
