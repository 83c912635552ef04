/* engine/api/actions2.c - tree_aggregate and save_as_text_file.
 *
 * TREE AGGREGATE (Spark's RDD.treeAggregate): every partition is folded from the zero with
 * seq (em.aggregate_partition, keyed by partition index % n1); while the number of
 * partial results n exceeds scale + ceil(n / scale), with scale = max(ceil(P^(1/depth)), 2),
 * n is divided by scale and the partials are re-keyed (key % n, em.tree_rekey) and combined
 * with reduce_by_key(comb) into n partitions. The driver folds the last partials from the
 * zero with comb.
 *
 * SAVE LAYOUT (Hadoop's output committer): tasks write dir/_temporary/0/part-NNNNN (each
 * through a temporary name); when the job succeeds the parts move into dir, _temporary is
 * removed and an empty dir/_SUCCESS is written last, atomically. On failure dir is removed
 * whole, so a reader never sees a half-written output.
 * THREADS: any thread (nodes and handles are made through the locked helpers of rdd.c). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

static pthread_once_t register_once = PTHREAD_ONCE_INIT;

static void register_fns(void)
{
    /* EM_EINVAL when a program registered it already: harmless. */
    (void)em_fn_register("em.tree_rekey", EM_FN_MAP, (void (*)(void))tree_rekey);
}

void em__api_register_fns(void)
{
    pthread_once(&register_once, register_fns);
}

static void put_field(em_vbuf *b, const void *p, size_t n)
{
    if (em_vbuf_append_u32le(b, (uint32_t)n) < 0 || em_vbuf_append(b, p, n) < 0)
        em_panic("tree_aggregate: out of memory building a blob");
}

int em_rdd_tree_aggregate(em_rdd *r, em_slice zero, const char *seq_fn, const char *comb_fn,
                          em_slice ctx, uint32_t depth, em_vbuf *out, em_err *err)
{
    em_reduce_fn seq, comb;
    int rc;
    uint32_t P = r->node->nparts;

    em_vbuf_init(out);
    if (r->node->err.code != 0)
        return em_err_copy(err, &r->node->err);
    if (depth < 1)
        return em_err_set(err, EM_EINVAL, "tree_aggregate: depth %u (>= 1)", depth);
    if ((rc = em__resolve_reduce(seq_fn, &seq, err)) < 0 ||
        (rc = em__resolve_reduce(comb_fn, &comb, err)) < 0)
        return rc;
    uint32_t scale = (uint32_t)ceil(pow((double)P, 1.0 / depth));
    if (scale < 2)
        scale = 2;
    uint32_t n = P;
    if (depth == 1 || !(n > scale + (n + scale - 1) / scale))
        return em_rdd_aggregate(r, zero, seq_fn, comb_fn, ctx, out, err);
    n /= scale;
    em_vbuf blob;
    em_vbuf_init(&blob);
    put_field(&blob, seq_fn, strlen(seq_fn));
    put_field(&blob, zero.p, zero.n);
    put_field(&blob, ctx.p, ctx.n);
    if (em_vbuf_append_u32le(&blob, n) < 0)
        em_panic("tree_aggregate: out of memory building a blob");
    /* Each step's handle is internal: dropped once the next one is built on it, and the
     * last after the job, so the tree's shuffles go when the action returns. */
    em_rdd *cur = em_rdd_map_partitions(r, "em.aggregate_partition",
                                        em_slice_make(blob.data, blob.len), false);
    em_vbuf_destroy(&blob);
    em_rdd *next = em_rdd_reduce_by_key(cur, comb_fn, ctx, n);
    em__rdd_drop(cur);
    cur = next;
    while (n > scale + (n + scale - 1) / scale) {
        n /= scale;
        uint8_t m[4];
        em_store_le32(m, n);
        next = em_rdd_map(cur, "em.tree_rekey", em_slice_make(m, 4));
        em__rdd_drop(cur);
        cur = em_rdd_reduce_by_key(next, comb_fn, ctx, n);
        em__rdd_drop(next);
    }
    em_records recs;
    rc = em_rdd_collect(cur, &recs, err);
    em__rdd_drop(cur);
    if (rc < 0)
        return rc;
    bool has = false;
    rc = em__merge_value(comb, ctx, out, &has, zero, err);
    for (size_t i = 0; rc == 0 && i < recs.n; i++)
        rc = em__merge_value(comb, ctx, out, &has, recs.recs[i].val, err);
    em_records_destroy(&recs);
    if (rc < 0)
        em_vbuf_destroy(out);
    return rc;
}

/* ---------------------------------------------------------------- save_as_text_file */

static bool is_part_name(const char *name)
{
    if (strncmp(name, "part-", 5) != 0 || name[5] == '\0')
        return false;
    return strspn(name + 5, "0123456789") == strlen(name + 5);
}

/* Moves tmp/part-* into dir. */
static int commit_parts(const char *tmp, const char *dir, em_err *err)
{
    DIR *d = opendir(tmp);
    struct dirent *e;
    int rc = 0;
    if (!d)
        return em_err_set(err, EM_EIO, "%s: %s", tmp, strerror(errno));
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!is_part_name(e->d_name))
            continue;
        char *from = em_xasprintf("%s/%s", tmp, e->d_name);
        char *to = em_xasprintf("%s/%s", dir, e->d_name);
        if (rename(from, to) != 0)
            rc = em_err_set(err, EM_EIO, "rename %s -> %s: %s", from, to, strerror(errno));
        em_free(from);
        em_free(to);
    }
    closedir(d);
    return rc;
}

int em_rdd_save_as_text_file(em_rdd *r, const char *dir, em_err *err)
{
    struct stat st;
    int rc;

    if (r->node->err.code != 0)
        return em_err_copy(err, &r->node->err);
    if (stat(dir, &st) == 0)
        return em_err_set(err, EM_EINVAL, "save_as_text_file: output directory '%s' exists",
                          dir);
    char *tmp = em_xasprintf("%s/_temporary/0", dir);
    char *success = em_xasprintf("%s/_SUCCESS", dir);
    char *temporary = em_xasprintf("%s/_temporary", dir);
    if ((rc = em_mkdir_p(tmp, err)) < 0)
        goto out;
    em_result_spec spec = {.op = EM_RESULT_SAVE_TEXT, .path = tmp};
    em_task_result *res = em__run_all(r, &spec, &rc, err);
    em__results_free(res, r->node->nparts);
    if (rc == 0)
        rc = commit_parts(tmp, dir, err);
    if (rc == 0)
        rc = em_rm_rf(temporary, err);
    if (rc == 0)
        rc = em_write_file_atomic(success, "", 0, err);
out:
    if (rc < 0) {
        em_err e2 = EM_ERR_INIT;
        (void)em_rm_rf(dir, &e2);
        em_err_prefix(err, "save_as_text_file %s", dir);
    }
    em_free(tmp);
    em_free(success);
    em_free(temporary);
    return rc;
}
