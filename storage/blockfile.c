/* storage/blockfile.c - self-describing block files: checkpoint part files.
 *
 * Unlike the store's .blk files (whose size and batch count the store remembers), a
 * checkpoint part is read back by another process, possibly after the writer died, so it
 * carries its own trailer. Writing and reading both stream one batch at a time, so a
 * partition larger than memory can be checkpointed.
 *
 * FORMAT:
 *   off        size   field
 *     0        ...    engine/data blocks (44-byte header + zstd payload), back to back
 *   S - 32       8    magic "EMCKPT01"
 *   S - 24       8    u64 LE number of blocks
 *   S - 16       8    u64 LE number of records
 *   S - 8        4    u32 LE reserved (0)
 *   S - 4        4    u32 LE crc32c of the 28 trailer bytes before it
 * (S = file size.) The blocks must end exactly at S - 32 and their count and record total
 * must match the trailer, so truncation or extension at a block boundary is caught too. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"

#define TRAILER 32
static const char k_magic[8] = {'E', 'M', 'C', 'K', 'P', 'T', '0', '1'};

struct em_block_file_writer {
    em_file *f;
    char *path;
    int level;
    uint64_t nblocks, nrecs;
    em_vbuf enc;
};

int em_block_file_writer_open(const char *path, int zstd_level, em_block_file_writer **out,
                              em_err *err)
{
    em_block_file_writer *w = em_calloc(1, sizeof *w);
    int rc;
    *out = NULL;
    if (!w || !(w->path = em_strdup(path))) {
        em_free(w);
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", path);
    }
    if ((rc = em_file_create_tmp(path, &w->f, err)) < 0) {
        em_free(w->path);
        em_free(w);
        return rc;
    }
    w->level = zstd_level;   /* 0 = 1: em_block_encode */
    em_vbuf_init(&w->enc);
    *out = w;
    return 0;
}

int em_block_file_writer_add(em_block_file_writer *w, const em_batch *b, em_err *err)
{
    int rc;
    em_vbuf_clear(&w->enc);
    if ((rc = em_block_encode(b, EM_CODEC_ZSTD, w->level, &w->enc, err)) < 0)
        return em_err_prefix(err, "%s: block %llu", w->path, (unsigned long long)w->nblocks);
    if ((rc = em_file_write(w->f, w->enc.data, w->enc.len, err)) < 0)
        return rc;
    w->nblocks++;
    w->nrecs += em_batch_nrecs(b);
    return 0;
}

static void writer_free(em_block_file_writer *w)
{
    em_vbuf_destroy(&w->enc);
    em_free(w->path);
    em_free(w);
}

int em_block_file_writer_commit(em_block_file_writer *w, uint64_t *nrecs, em_err *err)
{
    uint8_t t[TRAILER];
    memcpy(t, k_magic, 8);
    em_store_le64(t + 8, w->nblocks);
    em_store_le64(t + 16, w->nrecs);
    em_store_le32(t + 24, 0);
    em_store_le32(t + 28, em_crc32c(0, t, 28));
    int rc = em_file_write(w->f, t, sizeof t, err);
    if (rc == 0) {
        rc = em_file_commit(w->f, err);   /* fsync + rename; consumes f */
        w->f = NULL;
    }
    if (rc == 0 && nrecs)
        *nrecs = w->nrecs;
    em_file_abort(w->f);
    writer_free(w);
    return rc;
}

void em_block_file_writer_abort(em_block_file_writer *w)
{
    if (!w)
        return;
    em_file_abort(w->f);
    writer_free(w);
}

/* ---------------------------------------------------------------- reading */

struct em_block_file_reader {
    int fd;
    char *path;
    uint64_t data_end, off;
    uint64_t nblocks, nrecs;       /* from the trailer */
    uint64_t seen_blocks, seen_recs;
    uint8_t *buf;
    size_t cap;
};

static int rcorrupt(em_block_file_reader *r, em_err *err, const char *what)
{
    return em_err_set(err, EM_ECORRUPT, "checkpoint file %s: %s", r->path, what);
}

int em_block_file_reader_open(const char *path, em_block_file_reader **out, em_err *err)
{
    em_block_file_reader *r = em_calloc(1, sizeof *r);
    struct stat st;
    uint8_t t[TRAILER];
    int rc;
    *out = NULL;
    if (!r || !(r->path = em_strdup(path))) {
        em_free(r);
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", path);
    }
    r->fd = -1;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        rc = em_err_set(err, errno == ENOENT ? EM_ENOTFOUND : EM_EIO,
                        "checkpoint file %s: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(r->fd, &st) != 0) {
        rc = em_err_set(err, EM_EIO, "checkpoint file %s: %s", path, strerror(errno));
        goto fail;
    }
    if ((uint64_t)st.st_size < TRAILER) {
        rc = rcorrupt(r, err, "shorter than its trailer (truncated?)");
        goto fail;
    }
    r->data_end = (uint64_t)st.st_size - TRAILER;
    if ((rc = em_pread_full(r->fd, t, TRAILER, r->data_end, path, err)) < 0)
        goto fail;
    if (memcmp(t, k_magic, 8) != 0 || em_load_le32(t + 28) != em_crc32c(0, t, 28) ||
        em_load_le32(t + 24) != 0) {
        rc = rcorrupt(r, err, "bad trailer (truncated, extended or not a checkpoint file)");
        goto fail;
    }
    r->nblocks = em_load_le64(t + 8);
    r->nrecs = em_load_le64(t + 16);
    *out = r;
    return 0;
fail:
    em_block_file_reader_close(r);
    return rc;
}

uint64_t em_block_file_reader_nrecs(const em_block_file_reader *r)
{
    return r->nrecs;
}

int em_block_file_reader_next(em_block_file_reader *r, em_batch **out, em_err *err)
{
    uint8_t hdr[EM_BLOCK_HEADER_SIZE];
    size_t bsize;
    em_batch *b = NULL;
    int rc;
    *out = NULL;
    if (r->off == r->data_end) {
        if (r->seen_blocks != r->nblocks || r->seen_recs != r->nrecs)
            return rcorrupt(r, err, "block or record count differs from the trailer");
        return 0;
    }
    if (r->data_end - r->off < EM_BLOCK_HEADER_SIZE)
        return rcorrupt(r, err, "partial block before the trailer");
    if ((rc = em_pread_full(r->fd, hdr, sizeof hdr, r->off, r->path, err)) < 0)
        return rc;
    if ((rc = em_block_peek_size(hdr, sizeof hdr, &bsize, err)) < 0)
        return em_err_prefix(err, "checkpoint file %s: offset %llu", r->path,
                             (unsigned long long)r->off);
    if (bsize > r->data_end - r->off)
        return rcorrupt(r, err, "block runs past the trailer");
    if (bsize > r->cap) {
        uint8_t *nb = em_realloc(r->buf, bsize);
        if (!nb)
            return em_err_set(err, EM_ENOMEM, "checkpoint file %s: out of memory", r->path);
        r->buf = nb;
        r->cap = bsize;
    }
    if ((rc = em_pread_full(r->fd, r->buf, bsize, r->off, r->path, err)) < 0)
        return rc;
    if ((rc = em_block_decode(r->buf, bsize, &b, err)) < 0)
        return em_err_prefix(err, "checkpoint file %s: offset %llu", r->path,
                             (unsigned long long)r->off);
    r->off += bsize;
    r->seen_blocks++;
    r->seen_recs += em_batch_nrecs(b);
    if (r->seen_blocks > r->nblocks || r->seen_recs > r->nrecs) {
        em_batch_unref(b);
        return rcorrupt(r, err, "more blocks or records than the trailer says");
    }
    *out = b;
    return 1;
}

void em_block_file_reader_close(em_block_file_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    em_free(r->buf);
    em_free(r->path);
    em_free(r);
}
