/* shuffle/runs.c - sorted run files of the reducer: written block by block, read back
 * streaming.
 *
 * FORMAT: a run file is a plain sequence of engine/data blocks (BLOCK FORMAT in data.h) of
 * KV records, zstd-compressed, whose records are in the reducer's key order. No header: the
 * file is private to one reducer and dies with it; every block still carries its checksums,
 * so a disk error is EM_ECORRUPT, not garbage.
 *
 * A reader holds one decoded block at a time, so merging k runs needs about k blocks of
 * memory (~1 MiB each), not the runs.
 *
 * SPILL LISTS (em_spill_list, shuffle.h) reuse the run format for one sequence of values:
 * the first values stay in memory up to the list's budget, FORMAT there: per value a u32
 * length (little-endian) and its bytes, back to back; once one value does not fit, it and
 * every later value go to a run file of KV records with empty keys, in 64 KiB blocks (so a
 * small budget is not dwarfed by the block being built or read). Reading is therefore the
 * memory part, then the file, one block at a time. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shuffle/shuffle_int.h"

int em__run_writer_open(em__run_writer *w, const char *dir, int level, em_err *err)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->level = level;   /* 0 = 1: em_block_encode */
    w->block_bytes = EM_BATCH_TARGET_BYTES;
    em_batch_builder_init(&w->bb, EM_REC_KV, 0);
    em_vbuf_init(&w->enc);
    int pn = snprintf(w->path, sizeof w->path, "%s/ember-run-XXXXXX", dir);
    if (pn < 0 || (size_t)pn >= sizeof w->path) {
        w->path[0] = 0;   /* nothing for em__run_writer_abort to remove */
        return em_err_set(err, EM_EINVAL, "spill dir %s: path too long", dir);
    }
    w->fd = mkstemp(w->path);
    if (w->fd < 0) {
        int e = errno;
        w->path[0] = 0;
        return em_err_set(err, e == ENOSPC ? EM_ENOSPC : EM_EIO, "%s: cannot create run file: %s",
                          dir, strerror(e));
    }
    return 0;
}

static int flush_block(em__run_writer *w, em_err *err)
{
    em_batch *b;
    int rc;

    if (w->bb.nrecs == 0)
        return 0;
    if (!(b = em_batch_builder_finish(&w->bb, err)))
        return err ? err->code : EM_ENOMEM;
    em_vbuf_clear(&w->enc);
    rc = em_block_encode(b, EM_CODEC_ZSTD, w->level, &w->enc, err);
    em_batch_unref(b);
    if (rc < 0)
        return rc;
    if ((rc = em_write_full(w->fd, w->enc.data, w->enc.len, w->path, err)) < 0)
        return rc;
    w->bytes += w->enc.len;
    return 0;
}

int em__run_writer_add(em__run_writer *w, em_slice key, em_slice val, em_err *err)
{
    int rc = em_batch_builder_add_kv(&w->bb, key, val, err);
    if (rc < 0)
        return rc;
    if (em_batch_builder_nbytes(&w->bb) >= w->block_bytes)
        return flush_block(w, err);
    return 0;
}

int em__run_writer_close(em__run_writer *w, em_err *err)
{
    int rc = flush_block(w, err);
    if (close(w->fd) != 0 && rc == 0)
        rc = em_err_set(err, EM_EIO, "%s: close: %s", w->path, strerror(errno));
    w->fd = -1;
    /* Destroy and re-init, so a later em__run_writer_abort (which removes the file) is safe. */
    em_batch_builder_destroy(&w->bb);
    em_vbuf_destroy(&w->enc);
    em_batch_builder_init(&w->bb, EM_REC_KV, 0);
    em_vbuf_init(&w->enc);
    return rc;
}

void em__run_writer_abort(em__run_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    if (w->path[0])
        unlink(w->path);
    w->path[0] = 0;
    em_batch_builder_destroy(&w->bb);
    em_vbuf_destroy(&w->enc);
}

/* ---------------------------------------------------------------- reader */

int em__run_reader_open(em__run_reader *r, const char *path, em_err *err)
{
    struct stat st;

    memset(r, 0, sizeof *r);
    em_vbuf_init(&r->raw);
    r->path = path;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        return em_err_set(err, EM_EIO, "%s: open: %s", path, strerror(errno));
    if (fstat(r->fd, &st) != 0) {
        int rc = em_err_set(err, EM_EIO, "%s: stat: %s", path, strerror(errno));
        close(r->fd);
        r->fd = -1;
        return rc;
    }
    r->size = (uint64_t)st.st_size;
    return 0;
}

/* Reads and decodes the block at r->off into r->batch. */
static int load_block(em__run_reader *r, em_err *err)
{
    uint8_t hdr[EM_BLOCK_HEADER_SIZE];
    size_t bsize;
    int rc;

    if (r->size - r->off < EM_BLOCK_HEADER_SIZE)
        return em_err_set(err, EM_ECORRUPT, "%s: offset %llu: truncated block header", r->path,
                          (unsigned long long)r->off);
    if ((rc = em_pread_full(r->fd, hdr, sizeof hdr, r->off, r->path, err)) < 0)
        return rc;
    if ((rc = em_block_peek_size(hdr, sizeof hdr, &bsize, err)) < 0)
        return em_err_prefix(err, "%s: offset %llu", r->path, (unsigned long long)r->off);
    if (bsize > r->size - r->off)
        return em_err_set(err, EM_ECORRUPT, "%s: offset %llu: block of %zu bytes past the end",
                          r->path, (unsigned long long)r->off, bsize);
    em_vbuf_clear(&r->raw);
    if (em_vbuf_reserve(&r->raw, bsize) < 0)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory for a %zu-byte block", r->path,
                          bsize);
    if ((rc = em_pread_full(r->fd, r->raw.data, bsize, r->off, r->path, err)) < 0)
        return rc;
    r->raw.len = bsize;
    if ((rc = em_block_decode(r->raw.data, bsize, &r->batch, err)) < 0)
        return em_err_prefix(err, "%s: offset %llu", r->path, (unsigned long long)r->off);
    if (em_batch_kind(r->batch) != EM_REC_KV) {
        em_batch_unref(r->batch);
        r->batch = NULL;
        return em_err_set(err, EM_ECORRUPT, "%s: offset %llu: not a KV block", r->path,
                          (unsigned long long)r->off);
    }
    r->off += bsize;
    em_batch_iter_init(&r->it, r->batch);
    return 0;
}

int em__run_reader_next(em__run_reader *r, em_rec *rec, em_err *err)
{
    for (;;) {
        if (r->batch && em_batch_iter_next(&r->it, rec))
            return 1;
        em_batch_unref(r->batch);
        r->batch = NULL;
        if (r->off >= r->size)
            return 0;
        int rc = load_block(r, err);
        if (rc < 0)
            return rc;
    }
}

void em__run_reader_rewind(em__run_reader *r)
{
    em_batch_unref(r->batch);
    r->batch = NULL;
    r->off = 0;
}

void em__run_reader_close(em__run_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    em_batch_unref(r->batch);
    r->batch = NULL;
    em_vbuf_destroy(&r->raw);
}

/* ---------------------------------------------------------------- spill lists */

#define SPILL_LIST_BLOCK ((size_t)64 << 10)

struct em_spill_list {
    char *dir;
    size_t budget;         /* bytes of mem (lengths included) before the file is used */
    int level;
    em_vbuf mem;           /* the first values (FORMAT in the file header) */
    uint64_t count;        /* values since reset */
    bool in_file;          /* w is open or holds a closed file: later values are there */
    bool reading;          /* rewound at least once since reset: no more adds */
    bool rd_open;
    size_t off;            /* next value in mem */
    em__run_writer w;
    em__run_reader rd;     /* over w.path */
    int failed;            /* first error of a failed add or read, 0 = none */
    em_err ferr;
    uint64_t spill_count, spill_bytes;
};

em_spill_list *em_spill_list_new(const char *spill_dir, size_t mem_budget, int zstd_level,
                                 em_err *err)
{
    if (!spill_dir) {
        em_err_set(err, EM_EINVAL, "spill list: no spill directory");
        return NULL;
    }
    em_spill_list *l = em_calloc(1, sizeof *l);
    if (!l || !(l->dir = em_strdup(spill_dir))) {
        em_free(l);
        em_err_set(err, EM_ENOMEM, "spill list: out of memory");
        return NULL;
    }
    l->budget = mem_budget;
    l->level = zstd_level;
    l->w.fd = -1;
    l->rd.fd = -1;
    em_vbuf_init(&l->mem);
    return l;
}

static int list_fail(em_spill_list *l, int rc, em_err *err)
{
    if (l->in_file)
        em__run_writer_abort(&l->w);   /* closes and removes the file */
    l->in_file = false;
    if (l->rd_open)
        em__run_reader_close(&l->rd);
    l->rd_open = false;
    l->failed = rc;
    em_err_copy(&l->ferr, err);
    return rc;
}

int em_spill_list_add(em_spill_list *l, em_slice v, em_err *err)
{
    int rc;
    if (l->failed)
        return em_err_copy(err, &l->ferr);
    if (l->reading)
        return em_err_set(err, EM_EINVAL, "spill list: add after reading started");
    if (v.n > UINT32_MAX)
        return em_err_set(err, EM_EINVAL, "spill list: value of %zu bytes", v.n);
    if (!l->in_file && l->mem.len + 4 + v.n <= l->budget) {
        if (em_vbuf_append_u32le(&l->mem, (uint32_t)v.n) < 0 ||
            (v.n && em_vbuf_append(&l->mem, v.p, v.n) < 0))
            return list_fail(l, em_err_set(err, EM_ENOMEM, "spill list: out of memory "
                                           "for a %zu-byte value", v.n), err);
        l->count++;
        return 0;
    }
    if (!l->in_file) {
        if ((rc = em__run_writer_open(&l->w, l->dir, l->level, err)) < 0) {
            em__run_writer_abort(&l->w);   /* frees the builder; no file was made */
            return list_fail(l, rc, err);
        }
        l->w.block_bytes = SPILL_LIST_BLOCK;
        l->in_file = true;
    }
    if ((rc = em__run_writer_add(&l->w, em_slice_make(NULL, 0), v, err)) < 0)
        return list_fail(l, rc, err);
    l->count++;
    return 0;
}

uint64_t em_spill_list_count(const em_spill_list *l)
{
    return l->count;
}

bool em_spill_list_is_spilled(const em_spill_list *l)
{
    return l->in_file;
}

int em_spill_list_rewind(em_spill_list *l, em_err *err)
{
    int rc;
    if (l->failed)
        return em_err_copy(err, &l->ferr);
    l->off = 0;
    if (!l->reading) {
        l->reading = true;
        if (l->in_file) {
            if ((rc = em__run_writer_close(&l->w, err)) < 0)
                return list_fail(l, rc, err);
            l->spill_count++;
            l->spill_bytes += l->w.bytes;
            if ((rc = em__run_reader_open(&l->rd, l->w.path, err)) < 0) {
                l->rd_open = true;   /* open() leaves rd closable */
                return list_fail(l, rc, err);
            }
            l->rd_open = true;
        }
        return 0;
    }
    if (l->rd_open)
        em__run_reader_rewind(&l->rd);
    return 0;
}

int em_spill_list_next(em_spill_list *l, em_slice *v, em_err *err)
{
    if (l->failed)
        return em_err_copy(err, &l->ferr);
    if (!l->reading)
        return em_err_set(err, EM_EINVAL, "spill list: next before rewind");
    if (l->off < l->mem.len) {
        uint32_t n = em_load_le32(l->mem.data + l->off);
        *v = em_slice_make(l->mem.data + l->off + 4, n);
        l->off += 4 + (size_t)n;
        return 1;
    }
    if (!l->rd_open)
        return 0;
    em_rec rec;
    int rc = em__run_reader_next(&l->rd, &rec, err);
    if (rc < 0)
        return list_fail(l, rc, err);
    if (rc == 1)
        *v = rec.val;
    return rc;
}

void em_spill_list_reset(em_spill_list *l)
{
    if (l->rd_open)
        em__run_reader_close(&l->rd);
    if (l->in_file)
        em__run_writer_abort(&l->w);
    l->rd_open = l->in_file = l->reading = false;
    l->failed = 0;
    l->count = 0;
    l->off = 0;
    em_vbuf_clear(&l->mem);
}

void em_spill_list_spills(const em_spill_list *l, uint64_t *count, uint64_t *bytes)
{
    *count = l->spill_count;
    *bytes = l->spill_bytes;
}

void em_spill_list_free(em_spill_list *l)
{
    if (!l)
        return;
    em_spill_list_reset(l);
    em_vbuf_destroy(&l->mem);
    em_free(l->dir);
    em_free(l);
}
