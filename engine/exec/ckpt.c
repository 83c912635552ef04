/* engine/exec/ckpt.c - checkpoint iterators: CHECKPOINT_WRITE (passes records through and
 * writes the partition) and CHECKPOINT_FILE (reads a reliable checkpoint's block file, or a
 * local checkpoint's block). */
#include "engine/exec/exec_int.h"

/* ---------------------------------------------------------------- checkpoints
 * CHECKPOINT_WRITE passes its parent's records through unchanged and, as they go by,
 * writes them: a reliable checkpoint streams full batches into a block file (so a partition
 * larger than memory is never held whole) and commits it (trailer, fsync, rename) when the
 * parent ends; a local one collects the partition and puts it into the task's store at
 * MEMORY_AND_DISK when the parent ends. Nothing is committed if the task stops early or
 * fails: the temporary file is removed. */
typedef struct ckw_iter {
    em_iter base;
    const em_plan_node *n;
    em_iter *parent;
    em_task *t;
    uint32_t part;
    em_batcher b;
    em_block_file_writer *w;     /* reliable */
    bool done;
} ckw_iter;

/* Writes the finished batches of the batcher to the file (reliable) and drops them. */
static int ckw_flush(ckw_iter *c, em_err *err)
{
    for (size_t i = 0; i < c->b.n; i++) {
        int rc = em_block_file_writer_add(c->w, c->b.batches[i], err);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < c->b.n; i++)
        em_batch_unref(c->b.batches[i]);
    c->b.n = 0;
    return 0;
}

static int ckw_finish(ckw_iter *c, em_err *err)
{
    em_batch **bs = NULL;
    size_t nb = 0;
    int rc = em__batcher_finish(&c->b, &bs, &nb, err);
    if (rc < 0)
        return rc;
    if (c->n->flags & EM_NODE_LOCAL_CKPT) {
        em_block_id id = {EM_BLOCK_RDD, c->n->ckpt_rdd, c->part, 0};
        if (!c->t->env->store) {
            for (size_t i = 0; i < nb; i++)
                em_batch_unref(bs[i]);
            em_free(bs);
            return em_err_set(err, EM_EINVAL, "local checkpoint without a block store");
        }
        rc = em_block_store_put_take(c->t->env->store, id, bs, nb,
                                     EM_STORAGE_MEMORY_AND_DISK, err);
        em_free(bs);
        return rc < 0 ? em_err_prefix(err, "local checkpoint of partition %u", c->part) : 0;
    }
    for (size_t i = 0; i < nb && rc == 0; i++)
        rc = em_block_file_writer_add(c->w, bs[i], err);
    for (size_t i = 0; i < nb; i++)
        em_batch_unref(bs[i]);
    em_free(bs);
    if (rc == 0)
        rc = em_block_file_writer_commit(c->w, NULL, err);
    else
        em_block_file_writer_abort(c->w);
    c->w = NULL;
    return rc;
}

static int ckw_next(em_iter *it, em_rec *r, em_err *err)
{
    ckw_iter *c = (ckw_iter *)it;
    if (c->done)
        return 0;
    int rc = em_iter_next(c->parent, r, err);
    if (rc == 0) {
        c->done = true;
        return ckw_finish(c, err);
    }
    if (rc < 0)
        return rc;
    if ((rc = em__batcher_add(&c->b, r, err)) < 0)
        return rc;
    if (c->w && c->b.n > 0 && (rc = ckw_flush(c, err)) < 0)
        return rc;
    return 1;
}

static void ckw_free(em_iter *it)
{
    ckw_iter *c = (ckw_iter *)it;
    em_block_file_writer_abort(c->w);
    em__batcher_destroy(&c->b);
    em__iter_free(c->parent);
    em_free(c);
}

int em__ckpt_write_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                   em_iter **out, em_err *err)
{
    ckw_iter *c = em_xcalloc(1, sizeof *c);
    c->base.next = ckw_next;
    c->base.free = ckw_free;
    c->n = n;
    c->t = t;
    c->part = part;
    em__batcher_init(&c->b, n->width);
    if (!(n->flags & EM_NODE_LOCAL_CKPT)) {
        int rc = em_block_file_writer_open(n->splits[part].path, t->env->zstd_level, &c->w,
                                           err);
        if (rc < 0) {
            em__batcher_destroy(&c->b);
            em_free(c);
            return em_err_prefix(err, "checkpoint of partition %u", part);
        }
    }
    c->parent = parent;
    *out = &c->base;
    return 0;
}

/* CHECKPOINT_FILE (reliable): a block file read one batch at a time. */
typedef struct ckr_iter {
    em_iter base;
    em_block_file_reader *r;
    em_batch *cur;
    em_batch_iter bi;
    uint64_t left;          /* records of cur not handed out yet */
    uint64_t *counter;
} ckr_iter;

static const uint8_t ckr_empty_key[1];

/* Reads the next batch of the file into cur: 1, 0 at the end, <0 on error. */
static int ckr_load(ckr_iter *c, em_err *err)
{
    em_batch_unref(c->cur);
    c->cur = NULL;
    int rc = em_block_file_reader_next(c->r, &c->cur, err);
    if (rc <= 0)
        return rc;
    em_batch_iter_init(&c->bi, c->cur);
    c->left = em_batch_nrecs(c->cur);
    return 1;
}

static int ckr_next(em_iter *it, em_rec *r, em_err *err)
{
    ckr_iter *c = (ckr_iter *)it;
    for (;;) {
        if (c->left && em_batch_iter_next(&c->bi, r)) {
            c->left--;
            if (r->key.p == NULL && c->bi.kind == EM_REC_KV)
                r->key = em_slice_make(ckr_empty_key, 0);
            (*c->counter)++;
            return 1;
        }
        int rc = ckr_load(c, err);
        if (rc <= 0)
            return rc;
    }
}

static int ckr_next_batch(em_iter *it, em_rec_batch *b, em_err *err)
{
    ckr_iter *c = (ckr_iter *)it;
    while (c->left == 0) {
        int rc = ckr_load(c, err);
        if (rc <= 0)
            return rc;
    }
    *c->counter += c->left;
    return em__iter_batch_rest(it, &c->bi, &c->left, b, err);
}

static void ckr_free(em_iter *it)
{
    ckr_iter *c = (ckr_iter *)it;
    em_batch_unref(c->cur);
    em_block_file_reader_close(c->r);
    em_free(c);
}

int em__ckpt_file_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                         em_err *err)
{
    if (n->flags & EM_NODE_LOCAL_CKPT) {
        em_block_id id = {EM_BLOCK_RDD, n->ckpt_rdd, part, 0};
        em_batch **bs = NULL;
        size_t nb = 0;
        char name[48];
        int rc = em__task_get_block(t, id, &bs, &nb, err);
        if (rc < 0)
            return em_err_prefix(err, "local checkpoint (rdd %u)", n->id);
        if (rc == 0)
            return em_err_set(err, EM_ENOTFOUND,
                              "local checkpoint (rdd %u): block %s is lost (local checkpoints "
                              "live in the executors' block stores and do not survive them)",
                              n->id, em_block_id_str(id, name, sizeof name));
        *out = em__batches_iter_new_counted(bs, nb, &t->metrics->records_read);
        return 0;
    }
    ckr_iter *c = em_xcalloc(1, sizeof *c);
    int rc = em_block_file_reader_open(n->splits[part].path, &c->r, err);
    if (rc < 0) {
        em_free(c);
        return rc;
    }
    c->base.next = ckr_next;
    c->base.next_batch = ckr_next_batch;
    c->base.free = ckr_free;
    c->counter = &t->metrics->records_read;
    *out = &c->base;
    return 0;
}

