/* engine/api/fns.c - the task functions engine/api's own plans name, which run on
 * executors: em.tree_rekey and em.aggregate_acc_partition (the steps of tree_aggregate and
 * tree_aggregate_acc, aggregate.c). em__api_register_fns registers them once per process,
 * from em_context_new on the driver and from the task backends (backend.c) for executors.
 *
 * Untrusted input: a function's blob arrives in a task's plan, so its layout is checked
 * (EM_ECORRUPT naming the function) before use.
 * THREADS: any thread; registration runs once (pthread_once). */
#include <pthread.h>
#include <string.h>

#include "engine/api/api_int.h"

/* em.tree_rekey (EM_FN_MAP): (em_enc_i64 k, v) -> (em_enc_i64(k mod m), v); blob: u32 m. */
static int tree_rekey(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    if (c->blob.n != 4 || in->key.n != 8)
        return em_err_set(err, EM_ECORRUPT, "em.tree_rekey: blob of %zu bytes, key of %zu",
                          c->blob.n, in->key.n);
    uint32_t m = em_load_le32(c->blob.p);
    int64_t k = em_dec_i64(in->key.p);
    if (m == 0 || k < 0)
        return em_err_set(err, EM_ECORRUPT, "em.tree_rekey: modulus %u, key %lld", m,
                          (long long)k);
    uint8_t key[8];
    em_enc_i64(key, k % (int64_t)m);
    return em_emit_kv(out, em_slice_make(key, 8), in->val, err);
}

/* em.aggregate_acc_partition (EM_FN_PARTITION): folds the partition into an accumulator
 * with an EM_FN_ACC_SEQ function and emits (em_enc_i64(index % scale), accumulator).
 * Blob (little-endian): u32 n + seq name, u32 n + init name (n = 0: none), u32 n + the
 * functions' context, u32 size, u32 width (input FIXED width or 0), u32 scale. */
typedef struct acc_part_blob {
    char seq[256], init[256];
    em_slice ctx;
    uint32_t size, width, scale;
} acc_part_blob;

static int take_name(em_slice *b, char *out, size_t cap, bool optional, em_err *err)
{
    uint32_t n = b->n >= 4 ? em_load_le32(b->p) : 0;
    if (b->n < 4 || n > b->n - 4 || n >= cap || (!optional && n == 0) ||
        memchr(b->p + 4, 0, n))
        return em_err_set(err, EM_ECORRUPT, "em.aggregate_acc_partition: bad function name");
    memcpy(out, b->p + 4, n);
    out[n] = 0;
    b->p += 4 + n;
    b->n -= 4 + n;
    return 0;
}

static int parse_acc_part(em_slice b, acc_part_blob *a, em_err *err)
{
    int rc;
    if ((rc = take_name(&b, a->seq, sizeof a->seq, false, err)) < 0 ||
        (rc = take_name(&b, a->init, sizeof a->init, true, err)) < 0)
        return rc;
    uint32_t n = b.n >= 4 ? em_load_le32(b.p) : 0;
    if (b.n < 4 || n > b.n - 4 || b.n - 4 - n != 12)
        return em_err_set(err, EM_ECORRUPT, "em.aggregate_acc_partition: bad blob");
    a->ctx = em_slice_make(b.p + 4, n);
    a->size = em_load_le32(b.p + 4 + n);
    a->width = em_load_le32(b.p + 8 + n);
    a->scale = em_load_le32(b.p + 12 + n);
    if (a->scale == 0 || a->size == 0 || a->size > EM_BATCH_MAX_REC_LEN)
        return em_err_set(err, EM_ECORRUPT, "em.aggregate_acc_partition: scale %u, size %u",
                          a->scale, a->size);
    return 0;
}

static int aggregate_acc_partition(const em_fn_ctx *c, uint32_t index, em_iter *in,
                                   em_emitter *out, em_err *err)
{
    acc_part_blob a;
    em_any_fn seq, init = NULL;
    em_acc_buf acc;
    int rc;
    if ((rc = parse_acc_part(c->blob, &a, err)) < 0)
        return rc;
    if ((rc = em_registry_resolve(a.seq, EM_FN_ACC_SEQ, &seq, err)) < 0 ||
        (a.init[0] && (rc = em_registry_resolve(a.init, EM_FN_ACC_INIT, &init, err)) < 0))
        return em_err_prefix(err, "em.aggregate_acc_partition");
    em_fn_ctx uc = {a.ctx, c->task};
    if ((rc = em_acc_buf_start(&acc, a.size, (em_acc_init_fn)init, &uc, err)) < 0)
        return rc;
    rc = em_exec_acc_fold((em_acc_seq_fn)seq, &uc, acc.p, acc.size, a.width, in, NULL, err);
    if (rc == 0) {
        uint8_t key[8];
        em_enc_i64(key, (int64_t)(index % a.scale));
        rc = em_emit_kv(out, em_slice_make(key, 8), em_slice_make(acc.p, acc.size), err);
    }
    em_acc_buf_destroy(&acc);
    return rc;
}

static pthread_once_t register_once = PTHREAD_ONCE_INIT;

static void register_fns(void)
{
    /* EM_EINVAL when a program registered it already: harmless. */
    (void)em_fn_register("em.tree_rekey", EM_FN_MAP, (void (*)(void))tree_rekey);
    (void)em_fn_register("em.aggregate_acc_partition", EM_FN_PARTITION,
                         (void (*)(void))aggregate_acc_partition);
}

void em__api_register_fns(void)
{
    pthread_once(&register_once, register_fns);
}

