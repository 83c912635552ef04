/* engine/api/sources.c - dataset sources: parallelize, range, text_file, whole_text_files.
 *
 * PARALLELIZE copies the driver's records into EM_BLOCK_INPUT blocks (a = node id, b =
 * partition) at MEMORY_AND_DISK, so they are never silently dropped; slice i holds records
 * [i*n/p, (i+1)*n/p).
 *
 * TEXT SPLITS (Hadoop's FileInputFormat rule, as Spark's textFile uses it):
 *   goal  = total bytes / max(min_parts, 1)      (min_parts 0 = min(default parallelism, 2))
 *   split = max(1 byte, min(goal, 32 MiB))
 * each file is cut into split-sized pieces while more than 1.1 splits remain (the last piece
 * takes the rest); every piece is its own partition; an empty file is one empty piece. The
 * executor's line reader owns the lines that start inside its piece (Hadoop's rule).
 * THREADS: any thread (nodes and handles are made through the locked helpers of node.c). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/api/api_int.h"

#define SPLIT_MAX ((uint64_t)32 << 20)

/* ---------------------------------------------------------------- parallelize, range */

static int build_slice(em_rec_kind kind, uint32_t width, const em_rec *recs, size_t lo,
                       size_t hi, em_batch ***out, size_t *nout, em_err *err)
{
    em_batch_builder bb;
    em_batch **bs = NULL;
    size_t nb = 0;
    int rc = 0;

    em_batch_builder_init(&bb, kind, width);
    for (size_t i = lo; i <= hi; i++) {
        bool last = i == hi;
        if (!last && (rc = em_batch_builder_add(&bb, &recs[i], err)) < 0) {
            em_err_prefix(err, "record %zu", i);
            break;
        }
        if (last ? (bb.nrecs > 0 || nb == 0) : em_batch_builder_nbytes(&bb) >= EM_BATCH_TARGET_BYTES) {
            em_batch *b = em_batch_builder_finish(&bb, err);
            if (!b) {
                rc = err->code ? err->code : EM_ENOMEM;
                break;
            }
            bs = em_xrealloc(bs, (nb + 1) * sizeof *bs);
            bs[nb++] = b;
        }
    }
    em_batch_builder_destroy(&bb);
    if (rc < 0) {
        for (size_t i = 0; i < nb; i++)
            em_batch_unref(bs[i]);
        em_free(bs);
        return rc;
    }
    *out = bs;
    *nout = nb;
    return 0;
}

em_rdd *em_parallelize(em_context *sc, em_rec_kind kind, uint32_t width, const em_rec *recs,
                       size_t n, uint32_t nparts)
{
    em_plan_node *pn = em__node_new(sc, EM_OP_PARALLELIZE, NULL, 0, "parallelize");
    em_rdd *r = em__rdd_wrap(sc, pn);
    uint32_t p = nparts ? nparts : sc->default_par;

    pn->nparts = p;
    pn->is_kv = kind == EM_REC_KV;
    pn->width = kind == EM_REC_FIXED ? width : 0;
    if (kind != EM_REC_BYTES && kind != EM_REC_KV && kind != EM_REC_FIXED) {
        em_plan_node_fail(pn, EM_EINVAL, "record kind %d", (int)kind);
        return r;
    }
    if ((kind == EM_REC_FIXED && width == 0) || (n > 0 && !recs)) {
        em_plan_node_fail(pn, EM_EINVAL, "FIXED records need a width; records need an array");
        return r;
    }
    for (uint32_t i = 0; i < p; i++) {
        size_t lo = (size_t)((unsigned __int128)i * n / p);
        size_t hi = (size_t)((unsigned __int128)(i + 1) * n / p);
        em_batch **bs;
        size_t nb;
        em_err err = EM_ERR_INIT;
        em_block_id id = {EM_BLOCK_INPUT, pn->id, i, 0};
        if (build_slice(kind, width, recs, lo, hi, &bs, &nb, &err) < 0) {
            em_plan_node_fail(pn, err.code, "slice %u: %s", i, err.msg);
            return r;
        }
        int rc = em_block_store_put_take(sc->store, id, bs, nb, EM_STORAGE_MEMORY_AND_DISK, &err);
        em_free(bs);
        if (rc < 0) {
            em_plan_node_fail(pn, err.code, "slice %u: %s", i, err.msg);
            return r;
        }
    }
    return r;
}

em_rdd *em_range(em_context *sc, int64_t start, int64_t end, int64_t step, uint32_t nparts)
{
    em_plan_node *n = em__node_new(sc, EM_OP_RANGE, NULL, 0, "range");
    n->nparts = nparts ? nparts : sc->default_par;
    n->range_start = start;
    n->range_end = end;
    n->range_step = step;
    n->width = 8;
    if (step == 0)
        em_plan_node_fail(n, EM_EINVAL, "step 0");
    return em__rdd_wrap(sc, n);
}

/* ---------------------------------------------------------------- input files */


static uint32_t min_parts_of(em_context *sc, uint32_t min_parts)
{
    if (min_parts)
        return min_parts;
    return sc->default_par < 2 ? sc->default_par : 2;
}

static void add_split(em_plan_node *n, const char *path, uint64_t start, uint64_t len,
                      uint32_t part)
{
    n->splits = em_xrealloc(n->splits, (n->nsplits + 1) * sizeof *n->splits);
    /* Absolute: executors (ember submit) resolve paths in their own working directory. */
    n->splits[n->nsplits++] = (em_split){em__api_abs_path(path), start, len, part};
}

em_rdd *em_text_file(em_context *sc, const char *path, uint32_t min_parts)
{
    em_plan_node *n = em__node_new(sc, EM_OP_TEXT_FILE, NULL, 0, "text_file");
    em_file_list fl;
    em_err err = EM_ERR_INIT;

    n->nparts = 1;
    if (em_file_list_expand(path, &fl, &err) < 0) {
        em_plan_node_fail(n, err.code, "%s", err.msg);
        return em__rdd_wrap(sc, n);
    }
    uint64_t total = 0;
    for (size_t i = 0; i < fl.n; i++)
        total += fl.sizes[i];
    uint64_t goal = total / min_parts_of(sc, min_parts);
    uint64_t split = goal < SPLIT_MAX ? goal : SPLIT_MAX;
    if (split == 0)
        split = 1;
    for (size_t i = 0; i < fl.n; i++) {
        uint64_t off = 0, rem = fl.sizes[i];
        /* Hadoop's SPLIT_SLOP: cut while more than 1.1 splits remain. */
        while ((double)rem / (double)split > 1.1) {
            add_split(n, fl.paths[i], off, split, n->nsplits);
            off += split;
            rem -= split;
        }
        if (rem > 0 || fl.sizes[i] == 0)
            add_split(n, fl.paths[i], off, rem, n->nsplits);
    }
    n->nparts = n->nsplits;
    em_file_list_destroy(&fl);
    return em__rdd_wrap(sc, n);
}

em_rdd *em_whole_text_files(em_context *sc, const char *path, uint32_t min_parts)
{
    em_plan_node *n = em__node_new(sc, EM_OP_WHOLE_TEXT_FILES, NULL, 0, "whole_text_files");
    em_file_list fl;
    em_err err = EM_ERR_INIT;

    n->nparts = 1;
    n->is_kv = true;
    if (em_file_list_expand(path, &fl, &err) < 0) {
        em_plan_node_fail(n, err.code, "%s", err.msg);
        return em__rdd_wrap(sc, n);
    }
    uint32_t p = min_parts_of(sc, min_parts);
    if (p > fl.n)
        p = (uint32_t)fl.n;
    for (size_t i = 0; i < fl.n; i++)
        add_split(n, fl.paths[i], 0, fl.sizes[i], (uint32_t)((uint64_t)i * p / fl.n));
    n->nparts = p;
    em_file_list_destroy(&fl);
    return em__rdd_wrap(sc, n);
}
