/* shuffle/runs.c - sorted run files of the reducer: written block by block, read back
 * streaming.
 *
 * FORMAT: a run file is a plain sequence of engine/data blocks (BLOCK FORMAT in data.h) of
 * KV records, zstd-compressed, whose records are in the reducer's key order. No header: the
 * file is private to one reducer and dies with it; every block still carries its checksums,
 * so a disk error is EM_ECORRUPT, not garbage.
 *
 * A reader holds one decoded block at a time, so merging k runs needs about k blocks of
 * memory (~1 MiB each), not the runs. */
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
    w->level = level > 0 ? level : 1;
    em_batch_builder_init(&w->bb, EM_REC_KV, 0);
    em_vbuf_init(&w->enc);
    if ((size_t)snprintf(w->path, sizeof w->path, "%s/ember-run-XXXXXX", dir) >= sizeof w->path)
        return em_err_set(err, EM_EINVAL, "spill dir %s: path too long", dir);
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
    if (em_batch_builder_nbytes(&w->bb) >= EM_BATCH_TARGET_BYTES)
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

void em__run_reader_close(em__run_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    em_batch_unref(r->batch);
    r->batch = NULL;
    em_vbuf_destroy(&r->raw);
}
