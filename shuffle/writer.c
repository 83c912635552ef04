/* shuffle/writer.c - map side of a shuffle: partitioned (optionally combined) records to one
 * data file + one index file per map task.
 *
 * DESIGN
 *   - One em_batch_builder per reduce partition. `buffered` is the sum of their payload
 *     bytes. A builder that reaches EM_BATCH_TARGET_BYTES is encoded as one zstd block and
 *     kept in memory (`held`, at most half the budget) while buffered + held bytes stay
 *     within the budget; past either every held block is appended to the writer's single
 *     spill file. When `buffered` (plus
 *     the combine map's bytes) exceeds the budget, the largest builders are encoded until
 *     `buffered` is at most half the budget, so a flush frees enough to amortise its sort,
 *     and every held block goes to the spill file with them.
 *     (Until 2026-12-07 every block went to the spill file at once, and commit read it all
 *     back: a map task's whole output was written twice and read once however small it
 *     was; ALS's block shuffles at scale 1 wrote and read back 1.3 GB that way.)
 *   - With a combiner, records go into a combining hash map keyed by (partition, key)
 *     (aggmap.c); past the budget, or when growing its table would pass the budget, the map
 *     is drained into the builders (which spill as above) and emptied, keeping its table
 *     when that is at most half the budget, so the same key may leave a map task several
 *     times: the reduce side merges combiners anyway.
 *   - Every spilled or held block is remembered as (partition, offset, length) in the spill
 *     file or in `held`. Commit writes the data file partition by partition: that
 *     partition's spilled blocks in spill order (pread from the spill file), then its held
 *     blocks (all newer: the held ones are spilled together), then its builder's remainder
 *     as a last block. Blocks of a
 *     partition are therefore contiguous and the index is just the partition boundaries.
 *   - Commit order: data and index are both fully written to temporary names, then the data
 *     file is renamed into place, then the index. A reader looks for the index first, so it
 *     never sees an index without its data. Neither is fsynced unless opts->sync: readers
 *     are processes of this machine (the page cache serves them), and a map output lost to
 *     a crash of the machine is recomputed like that of a lost executor. The two fsyncs
 *     were most of a small map task's time on a disk (about 0.8 ms each here).
 *   - Any failure poisons the writer: later calls return the first error.
 * records_written counts records that reached the data file (after map-side combine).
 *
 * SPILL FILE: <dir>/shuffle_<sid>_<mid>.spill.<pid>.<n>, n the first free number (O_EXCL),
 * so two attempts of one map task in one process never share it; removed at commit/free. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shuffle/shuffle_int.h"

#define DEFAULT_BUDGET ((size_t)64 << 20)
#define COPY_CHUNK ((size_t)1 << 20)

typedef struct spill_ent {
    uint32_t part;
    uint64_t off;
    uint64_t len;
} spill_ent;

struct em_shuffle_writer {
    char *dir;
    uint32_t sid, mid, nparts;
    em_rec_kind kind;
    size_t budget;
    int level;
    bool sync;                 /* fsync the files at commit */
    em_batch_builder *bbs;     /* nparts builders */
    size_t buffered;           /* sum of builder payload bytes */
    uint64_t *order;           /* nparts scratch entries for flush_largest */
    bool combine;
    em__aggmap agg;
    int spill_fd;              /* -1 until the first spill */
    char spill_path[4096];
    uint64_t spill_off;
    spill_ent *spills;
    size_t nspills, cap_spills;
    em_vbuf held;              /* encoded blocks not spilled (yet), back to back */
    spill_ent *hblk;           /* their (partition, offset in held, length) */
    size_t nheld, cap_held;
    em_vbuf enc;               /* encoded block / copy buffer */
    uint64_t records;
    uint64_t spill_count, spill_bytes;
    bool poisoned, committed;
    em_err perr;               /* working error; the first error once poisoned */
};

em_shuffle_writer *em_shuffle_writer_new(const em_shuffle_writer_opts *o, em_err *err)
{
    em_shuffle_writer *w;

    if (!o->dir || o->nparts == 0 || o->nparts > EM_SHUFFLE_MAX_PARTS) {
        em_err_set(err, EM_EINVAL, "shuffle %u map %u: writer needs a dir and 1..%u partitions",
                   o->shuffle_id, o->map_id, EM_SHUFFLE_MAX_PARTS);
        return NULL;
    }
    if (o->kind != EM_REC_BYTES && o->kind != EM_REC_KV && o->kind != EM_REC_FIXED) {
        em_err_set(err, EM_EINVAL, "shuffle %u map %u: bad record kind %d", o->shuffle_id,
                   o->map_id, (int)o->kind);
        return NULL;
    }
    if (o->combiner && (o->kind != EM_REC_KV || !o->combiner->ops ||
                        !o->combiner->ops->merge_value)) {
        em_err_set(err, EM_EINVAL, "shuffle %u map %u: a combiner needs KV records and "
                   "merge_value", o->shuffle_id, o->map_id);
        return NULL;
    }
    w = em_calloc(1, sizeof *w);
    if (!w)
        goto oom;
    w->spill_fd = -1;
    w->sid = o->shuffle_id;
    w->mid = o->map_id;
    w->nparts = o->nparts;
    w->kind = o->kind;
    w->budget = o->mem_budget ? o->mem_budget : DEFAULT_BUDGET;
    w->level = o->zstd_level;   /* 0 = 1: em_block_encode */
    w->sync = o->sync;
    em_vbuf_init(&w->enc);
    em_vbuf_init(&w->held);
    em__aggmap_init(&w->agg, o->combiner, false);
    w->combine = o->combiner != NULL;
    w->dir = em_strdup(o->dir);
    w->bbs = em_calloc(o->nparts, sizeof *w->bbs);
    w->order = em_calloc(o->nparts, sizeof *w->order);
    if (!w->dir || !w->bbs || !w->order)
        goto oom;
    for (uint32_t p = 0; p < o->nparts; p++)
        em_batch_builder_init(&w->bbs[p], o->kind, o->width);
    return w;
oom:
    em_shuffle_writer_free(w);
    em_err_set(err, EM_ENOMEM, "shuffle %u map %u: out of memory creating the writer",
               o->shuffle_id, o->map_id);
    return NULL;
}

static int open_spill(em_shuffle_writer *w, em_err *err)
{
    for (unsigned n = 0; n < 1000; n++) {
        snprintf(w->spill_path, sizeof w->spill_path, "%s/shuffle_%u_%u.spill.%ld.%u", w->dir,
                 w->sid, w->mid, (long)getpid(), n);
        w->spill_fd = open(w->spill_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->spill_fd >= 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    int rc = em_err_set(err, e == ENOSPC ? EM_ENOSPC : EM_EIO, "%s: cannot create: %s",
                        w->spill_path, strerror(e));
    w->spill_path[0] = 0;
    return rc;
}

/* Encodes partition p's builder (if not empty) as one block into w->enc. */
static int encode_part(em_shuffle_writer *w, uint32_t p, em_err *err)
{
    em_batch_builder *bb = &w->bbs[p];
    size_t nbytes = em_batch_builder_nbytes(bb);
    em_batch *b;
    int rc;

    em_vbuf_clear(&w->enc);
    if (bb->nrecs == 0)
        return 0;
    if (!(b = em_batch_builder_finish(bb, err)))
        return err->code ? err->code : EM_ENOMEM;
    w->buffered -= nbytes;
    rc = em_block_encode(b, EM_CODEC_ZSTD, w->level, &w->enc, err);
    em_batch_unref(b);
    return rc;
}

/* Appends the n blocks ents describe to the spill file (opened on first use): len bytes at
 * data, ents[i].off relative to data. */
static int to_spill_file(em_shuffle_writer *w, const uint8_t *data, size_t len,
                         const spill_ent *ents, size_t n, em_err *err)
{
    int rc;
    spill_ent *s = em_arr_grow(w->spills, &w->cap_spills, w->nspills + n, sizeof *s);
    if (!s)
        return em_err_set(err, EM_ENOMEM, "out of memory for %zu spill entries",
                          w->nspills + n);
    w->spills = s;
    if (w->spill_fd < 0 && (rc = open_spill(w, err)) < 0)
        return rc;
    if ((rc = em_write_full(w->spill_fd, data, len, w->spill_path, err)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        w->spills[w->nspills++] = (spill_ent){ents[i].part, w->spill_off + ents[i].off,
                                              ents[i].len};
    w->spill_off += len;
    w->spill_count += n;
    w->spill_bytes += len;
    return 0;
}

/* Appends the held blocks to the spill file, in order. */
static int flush_held(em_shuffle_writer *w, em_err *err)
{
    if (w->nheld == 0)
        return 0;
    int rc = to_spill_file(w, w->held.data, w->held.len, w->hblk, w->nheld, err);
    if (rc == 0) {
        w->nheld = 0;
        em_vbuf_clear(&w->held);
    }
    return rc;
}

/* Room in held for need bytes (need <= cap): its capacity doubles from HELD_MIN as blocks
 * arrive and never passes cap (em_vbuf's x1.5 steps could). WHY not the whole share at
 * once: an executor task's budget is GBs, and a reservation that large sits at the top of
 * the heap, so glibc handed it back to the kernel at every writer's free (the task
 * processes' M_TRIM_THRESHOLD is 1 GiB, engine/base/alloc.c) and the next map task's
 * blocks landed on fresh pages again: ALS's routing at scale 1 reserved 1.5 GB per map
 * task to hold about 50 MB, and took 0.38M more page faults (1.5 GB of 4 KiB pages over
 * the two executors) in a setup of 11-12 s. Grown, held is a few tens of MB, freed below
 * the threshold and reused. */
enum { HELD_MIN = 1 << 20 };

static int held_reserve(em_shuffle_writer *w, size_t need, size_t cap, em_err *err)
{
    if (need <= w->held.cap)
        return 0;
    size_t c = w->held.cap ? w->held.cap : HELD_MIN;
    while (c < need)
        c = c <= cap / 2 ? c * 2 : cap;
    c = c > cap ? cap : c;
    uint8_t *d = em_realloc(w->held.data, c);
    if (!d)
        return em_err_set(err, EM_ENOMEM, "out of memory holding blocks (%zu bytes)", c);
    w->held.data = d;
    w->held.cap = c;
    return 0;
}

/* Encodes partition p's builder as a block and holds it; past the budget every held block
 * goes to the spill file. */
static int spill_part(em_shuffle_writer *w, uint32_t p, em_err *err)
{
    int rc;

    spill_ent *h = em_arr_grow(w->hblk, &w->cap_held, w->nheld + 1, sizeof *h);
    if (!h)
        return em_err_set(err, EM_ENOMEM, "out of memory for %zu held blocks", w->nheld + 1);
    w->hblk = h;
    if ((rc = encode_part(w, p, err)) < 0)
        return rc;
    if (w->enc.len == 0)
        return 0;
    /* held takes at most half the budget, and builders plus held at most all of it */
    size_t cap = w->budget / 2;
    if (w->held.len + w->enc.len > cap && (rc = flush_held(w, err)) < 0)
        return rc;
    if (w->enc.len > cap)   /* a block larger than the share: straight to the file */
        return to_spill_file(w, w->enc.data, w->enc.len, &(spill_ent){p, 0, w->enc.len}, 1,
                             err);
    if ((rc = held_reserve(w, w->held.len + w->enc.len, cap, err)) < 0)
        return rc;
    memcpy(w->held.data + w->held.len, w->enc.data, w->enc.len);
    w->held.len += w->enc.len;
    w->hblk[w->nheld++] = (spill_ent){p, w->held.len - w->enc.len, w->enc.len};
    return w->buffered + w->held.len > w->budget ? flush_held(w, err) : 0;
}

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Spills the largest builders until at most half the budget stays buffered. */
static int flush_largest(em_shuffle_writer *w, em_err *err)
{
    uint32_t n = 0;

    /* Sort keys are (payload bytes << 32 | partition): largest first, no context needed. */
    for (uint32_t p = 0; p < w->nparts; p++)
        if (w->bbs[p].nrecs)
            w->order[n++] = (uint64_t)w->bbs[p].buf.len << 32 | p;
    qsort(w->order, n, sizeof *w->order, cmp_u64_desc);
    for (uint32_t i = 0; i < n && w->buffered > w->budget / 2; i++) {
        int rc = spill_part(w, (uint32_t)w->order[i], err);
        if (rc < 0)
            return rc;
    }
    /* Over the budget memory is what is short: the blocks go to the spill file now (held
     * are only the blocks of builders that filled up while there was room) */
    return flush_held(w, err);
}

/* Appends one record to partition p's builder and spills as the rules say. */
static int add_to_builder(em_shuffle_writer *w, uint32_t p, const em_rec *r, em_err *err)
{
    em_batch_builder *bb = &w->bbs[p];
    size_t before = bb->buf.len;
    int rc = em_batch_builder_add(bb, r, err);

    if (EM_UNLIKELY(rc < 0))
        return rc;
    w->buffered += bb->buf.len - before;
    w->records++;
    if (EM_UNLIKELY(bb->buf.len >= EM_BATCH_TARGET_BYTES))
        return spill_part(w, p, err);
    if (EM_UNLIKELY(w->buffered > w->budget))
        return flush_largest(w, err);
    return 0;
}

/* Moves every combined record into the builders and empties the map; keep_table keeps its
 * slot table for the records to come when that table is at most half the budget (the
 * builders are then flushed to at most the other half). */
static int drain_combiners(em_shuffle_writer *w, bool keep_table, em_err *err)
{
    em__aggmap *m = &w->agg;
    size_t pos = 0;
    uint32_t part;
    em_rec r;
    while (em__aggmap_next(m, &pos, &part, &r)) {
        int rc = add_to_builder(w, part, &r, err);
        if (rc < 0)
            return rc;
    }
    if (keep_table && m->tab.cap * sizeof(em__agg_slot) <= w->budget / 2)
        em__aggmap_clear(m);
    else
        em__aggmap_reset(m);
    return 0;
}

/* Past the budget with a combiner: drain the map, then flush builders down to half. */
static int spill_combiners(em_shuffle_writer *w, em_err *err)
{
    int rc = drain_combiners(w, true, err);
    if (rc == 0 && w->buffered > w->budget / 2)
        rc = flush_largest(w, err);
    return rc;
}

static int poison(em_shuffle_writer *w, int rc, em_err *err)
{
    w->poisoned = true;
    em_err_prefix(&w->perr, "shuffle %u map %u", w->sid, w->mid);
    em_err_copy(err, &w->perr);
    return rc;
}

static int refuse(em_shuffle_writer *w, em_err *err)
{
    if (w->poisoned)
        return em_err_copy(err, &w->perr);
    return em_err_set(err, EM_EINVAL, "shuffle %u map %u: writer already committed", w->sid,
                      w->mid);
}

int em_shuffle_writer_add(em_shuffle_writer *w, uint32_t part, const em_rec *r, em_err *err)
{
    /* The key hash only matters with a combiner (and r->key is only a key for KV). */
    uint64_t h = w->combine ? em_shuffle_key_hash(r->key) : 0;
    return em_shuffle_writer_add_hashed(w, part, h, r, err);
}

int em_shuffle_writer_add_hashed(em_shuffle_writer *w, uint32_t part, uint64_t key_hash,
                                 const em_rec *r, em_err *err)
{
    int rc;

    if (EM_UNLIKELY(w->poisoned || w->committed))
        return refuse(w, err);
    if (EM_UNLIKELY(part >= w->nparts))
        return poison(w, em_err_set(&w->perr, EM_EINVAL, "partition %u out of range (%u)", part,
                                    w->nparts), err);
    if (!w->combine) {
        rc = add_to_builder(w, part, r, &w->perr);
    } else {
        /* A table that would outgrow the budget is not grown: drain first (growing and
         * then draining held old and new table over budget, and the map restarted from
         * its smallest size). */
        size_t grow = em__aggmap_grow_bytes(&w->agg);
        rc = 0;
        if (EM_UNLIKELY(grow) && w->agg.tab.n &&
            w->buffered + em__aggmap_mem(&w->agg) + grow > w->budget)
            rc = spill_combiners(w, &w->perr);
        if (rc == 0)
            rc = em__aggmap_add_hashed(&w->agg, part, key_hash, r, &w->perr);
        if (rc == 0 && w->buffered + em__aggmap_mem(&w->agg) > w->budget)
            rc = spill_combiners(w, &w->perr);
    }
    if (EM_UNLIKELY(rc < 0))
        return poison(w, rc, err);
    return 0;
}

void em_shuffle_writer_prefetch(em_shuffle_writer *w, uint32_t part, uint64_t key_hash)
{
    if (w->combine)
        em__aggmap_prefetch(&w->agg, part, key_hash);
}

/* Copies len bytes at off of the spill file into f. */
static int copy_spilled(em_shuffle_writer *w, em_file *f, uint64_t off, uint64_t len,
                        em_err *err)
{
    em_vbuf_clear(&w->enc);
    if (em_vbuf_reserve(&w->enc, COPY_CHUNK) < 0)
        return em_err_set(err, EM_ENOMEM, "out of memory for the copy buffer");
    while (len > 0) {
        size_t n = len < COPY_CHUNK ? (size_t)len : COPY_CHUNK;
        int rc = em_pread_full(w->spill_fd, w->enc.data, n, off, w->spill_path, err);
        if (rc < 0 || (rc = em_file_write(f, w->enc.data, n, err)) < 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

/* sorted[0..n): the indices of ents in partition order, spill order within a partition
 * (a stable counting sort); first[p] is then where partition p + 1 starts. */
static int by_partition(const spill_ent *ents, size_t n, uint32_t nparts, uint32_t **first,
                        size_t **sorted, em_err *err)
{
    *first = em_calloc((size_t)nparts + 1, sizeof **first);
    *sorted = em_calloc(n ? n : 1, sizeof **sorted);
    if (!*first || !*sorted)
        return em_err_set(err, EM_ENOMEM, "out of memory sorting %zu blocks", n);
    for (size_t i = 0; i < n; i++)
        (*first)[ents[i].part + 1]++;
    for (uint32_t p = 0; p < nparts; p++)
        (*first)[p + 1] += (*first)[p];
    for (size_t i = 0; i < n; i++)
        (*sorted)[(*first)[ents[i].part]++] = i;
    return 0;
}

/* Writes the data file (not yet committed); offs gets the partition boundaries. */
static int write_data(em_shuffle_writer *w, em_file *f, uint64_t *offs, em_err *err)
{
    uint32_t *first = NULL, *hfirst = NULL;
    size_t *sorted = NULL, *hsorted = NULL;
    int rc;

    if ((rc = by_partition(w->spills, w->nspills, w->nparts, &first, &sorted, err)) < 0 ||
        (rc = by_partition(w->hblk, w->nheld, w->nparts, &hfirst, &hsorted, err)) < 0)
        goto out;
    size_t k = 0, kh = 0;
    for (uint32_t p = 0; p < w->nparts; p++) {
        offs[p] = em_file_offset(f);
        for (; k < w->nspills && w->spills[sorted[k]].part == p; k++) {
            const spill_ent *s = &w->spills[sorted[k]];
            if ((rc = copy_spilled(w, f, s->off, s->len, err)) < 0)
                goto out;
        }
        for (; kh < w->nheld && w->hblk[hsorted[kh]].part == p; kh++) {
            const spill_ent *h = &w->hblk[hsorted[kh]];
            if ((rc = em_file_write(f, w->held.data + h->off, h->len, err)) < 0)
                goto out;
        }
        if ((rc = encode_part(w, p, err)) < 0)
            goto out;
        if (w->enc.len && (rc = em_file_write(f, w->enc.data, w->enc.len, err)) < 0)
            goto out;
    }
    offs[w->nparts] = em_file_offset(f);
out:
    em_free(first);
    em_free(sorted);
    em_free(hfirst);
    em_free(hsorted);
    return rc;
}

static int do_commit(em_shuffle_writer *w, em_map_status *st, em_err *err)
{
    char dpath[4096], ipath[4096];
    em_file *df = NULL, *xf = NULL;
    uint64_t *offs = NULL, *sizes = NULL;
    em_vbuf ix;
    int rc;

    em_vbuf_init(&ix);
    if (w->combine && (rc = drain_combiners(w, false, err)) < 0)
        goto out;
    offs = em_calloc((size_t)w->nparts + 1, sizeof *offs);
    sizes = em_calloc(w->nparts, sizeof *sizes);
    if (!offs || !sizes) {
        rc = em_err_set(err, EM_ENOMEM, "out of memory for %u partition offsets", w->nparts);
        goto out;
    }
    em_shuffle_data_path(w->dir, w->sid, w->mid, dpath, sizeof dpath);
    em_shuffle_index_path(w->dir, w->sid, w->mid, ipath, sizeof ipath);
    if ((rc = em_file_create_tmp(dpath, &df, err)) < 0 || (rc = write_data(w, df, offs, err)) < 0)
        goto out;
    if ((rc = em__shuffle_index_encode(&ix, w->sid, w->mid, w->nparts, offs, err)) < 0 ||
        (rc = em_file_create_tmp(ipath, &xf, err)) < 0 ||
        (rc = em_file_write(xf, ix.data, ix.len, err)) < 0)
        goto out;
    rc = em_file_commit_sync(df, w->sync, err);
    df = NULL;
    if (rc < 0)
        goto out;
    rc = em_file_commit_sync(xf, w->sync, err);
    xf = NULL;
    if (rc < 0) {
        unlink(dpath);   /* harmless without its index, but do not leave it behind */
        goto out;
    }
    for (uint32_t p = 0; p < w->nparts; p++)
        sizes[p] = offs[p + 1] - offs[p];
    st->shuffle_id = w->sid;
    st->map_id = w->mid;
    st->nparts = w->nparts;
    st->sizes = sizes;
    sizes = NULL;
    st->records_written = w->records;
    st->bytes_written = offs[w->nparts];
    st->spill_count = w->spill_count;
    st->spill_bytes = w->spill_bytes;
out:
    em_file_abort(df);
    em_file_abort(xf);
    em_free(offs);
    em_free(sizes);
    em_vbuf_destroy(&ix);
    return rc;
}

static void remove_spill(em_shuffle_writer *w)
{
    if (w->spill_fd >= 0)
        close(w->spill_fd);
    w->spill_fd = -1;
    if (w->spill_path[0])
        unlink(w->spill_path);
    w->spill_path[0] = 0;
}

int em_shuffle_writer_commit(em_shuffle_writer *w, em_map_status *st, em_err *err)
{
    if (w->poisoned || w->committed)
        return refuse(w, err);
    int rc = do_commit(w, st, &w->perr);
    remove_spill(w);
    if (rc < 0)
        return poison(w, rc, err);
    w->committed = true;
    return 0;
}

void em_shuffle_writer_free(em_shuffle_writer *w)
{
    if (!w)
        return;
    remove_spill(w);
    if (w->bbs)
        for (uint32_t p = 0; p < w->nparts; p++)
            em_batch_builder_destroy(&w->bbs[p]);
    em_free(w->bbs);
    em_free(w->order);
    em__aggmap_destroy(&w->agg);
    em_free(w->spills);
    em_free(w->hblk);
    em_vbuf_destroy(&w->held);
    em_vbuf_destroy(&w->enc);
    em_free(w->dir);
    em_free(w);
}

void em_map_status_destroy(em_map_status *st)
{
    if (!st)
        return;
    em_free(st->sizes);
    st->sizes = NULL;
}
