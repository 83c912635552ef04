/* storage/disk.c - a block's disk file: writing it atomically and reading it back verified.
 *
 * FORMAT of <dir>/blocks/<name>.blk: the block's batches, each encoded by em_block_encode
 * (engine/data BLOCK FORMAT: 44-byte header with magic, counts and two crc32c, then the
 * zstd-compressed payload), back to back, nothing else:
 *   off   size                 field
 *     0   44 + stored_0        block of batch 0
 *   ...   44 + stored_i        block of batch i
 * An empty block (no batches) is an empty file.
 *
 * WHY no file header or trailer of our own: every block carries its own checksums, and the
 * store remembers the file size and the batch count of each file it wrote, so a file that
 * was truncated or extended exactly at a block boundary is still caught (the one damage the
 * per-block checksums cannot see). Files are never read by another process.
 *
 * Writing encodes one batch at a time, so at most one batch's encoding is held in memory
 * besides the batches themselves. */
#include "storage/storage_int.h"

int em__storage_write_file(const char *path, em_batch *const *batches, size_t n, int level,
                           uint64_t *file_bytes, em_err *err)
{
    em_file *f = NULL;
    em_vbuf enc;
    int rc;

    em_vbuf_init(&enc);
    if ((rc = em_file_create_tmp(path, &f, err)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        em_vbuf_clear(&enc);
        if ((rc = em_block_encode(batches[i], EM_CODEC_ZSTD, level, &enc, err)) < 0) {
            em_err_prefix(err, "%s: batch %zu", path, i);
            goto out;
        }
        if ((rc = em_file_write(f, enc.data, enc.len, err)) < 0)
            goto out;
    }
    *file_bytes = em_file_offset(f);
    rc = em_file_commit(f, err);   /* consumes f, also on failure */
    f = NULL;
out:
    em_file_abort(f);
    em_vbuf_destroy(&enc);
    return rc;
}

/* Collects decoded batches into a growing array (em_blocks_decode_each callback). */
typedef struct collect {
    em_batch **v;
    size_t n, cap;
    size_t max;          /* batches expected; more is corruption, checked before growing */
} collect;

static int collect_one(void *ud, em_batch *b, em_err *err)
{
    collect *c = ud;

    if (c->n == c->max) {
        em_batch_unref(b);
        return em_err_set(err, EM_ECORRUPT, "more than the %zu batches written", c->max);
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4, bytes;
        if (cap > c->max)
            cap = c->max;
        em_batch **v = NULL;
        if (em_size_mul(cap, sizeof *v, &bytes))
            v = em_realloc(c->v, bytes);
        if (v == NULL) {
            em_batch_unref(b);
            return em_err_set(err, EM_ENOMEM, "out of memory for %zu batches", cap);
        }
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = b;
    return 0;
}

int em__storage_read_file(const char *path, uint64_t expect_bytes, size_t expect_n,
                          em_batch ***out, size_t *n, em_err *err)
{
    collect c = {NULL, 0, 0, expect_n};
    uint8_t *data = NULL;
    size_t len = 0;
    int rc;

    if ((rc = em_read_file(path, &data, &len, err)) < 0)
        goto out;
    if ((uint64_t)len != expect_bytes) {
        rc = em_err_set(err, EM_ECORRUPT, "%s: %zu bytes, %llu were written", path, len,
                        (unsigned long long)expect_bytes);
        goto out;
    }
    if ((rc = em_blocks_decode_each(data, len, collect_one, &c, err)) < 0) {
        em_err_prefix(err, "%s", path);
        goto out;
    }
    if (c.n != expect_n) {
        rc = em_err_set(err, EM_ECORRUPT, "%s: %zu batches, %zu were written", path, c.n,
                        expect_n);
        goto out;
    }
    if (c.v == NULL && (c.v = em_malloc(sizeof *c.v)) == NULL) {   /* an empty block */
        rc = em_err_set(err, EM_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    *out = c.v;
    *n = c.n;
    c.v = NULL;
    c.n = 0;
out:
    for (size_t i = 0; i < c.n; i++)
        em_batch_unref(c.v[i]);
    em_free(c.v);
    em_free(data);
    return rc;
}
