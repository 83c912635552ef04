/* shuffle/fetch.c - reduce side input: fetching segments and decoding them into batches.
 *
 * DESIGN: em_shuffle_read handles one source at a time into one reused buffer, so a reader
 * holds at most one segment in memory. Every failure to get a source's bytes or to decode
 * them becomes EM_EFETCH "shuffle S map M reduce R: <reason>" with the map id reported to
 * the caller: the scheduler re-runs that map task. Errors of the caller's on_batch are not
 * fetch failures and pass through untouched. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shuffle/shuffle_int.h"

/* Turns err into EM_EFETCH prefixed with the ids, unless a fetcher already did both. */
static int fetch_error(em_err *err, uint32_t sid, uint32_t mid, uint32_t reduce)
{
    char prefix[64];

    if (!err)
        return EM_EFETCH;
    snprintf(prefix, sizeof prefix, "shuffle %u map %u reduce %u:", sid, mid, reduce);
    if (err->code != EM_EFETCH || strncmp(err->msg, prefix, strlen(prefix)) != 0)
        em_err_prefix(err, "shuffle %u map %u reduce %u", sid, mid, reduce);
    err->code = EM_EFETCH;
    return EM_EFETCH;
}

/* Opens the data file of map mid of shuffle sid and finds reduce partition reduce's
 * segment in it, [*start, *end), checked against the index and the file's size; *fd is
 * the open file (the caller closes it), dpath its name. Errors carry the reason, without
 * the ids. */
int em__shuffle_segment_open(const char *dir, uint32_t sid, uint32_t mid, uint32_t reduce,
                             int *fd, uint64_t *start, uint64_t *end, char *dpath,
                             size_t dcap, em_err *err)
{
    char ipath[4096];
    uint8_t *ibytes = NULL;
    size_t ilen = 0;
    em__shuffle_index ix;
    int rc;
    struct stat st;

    *fd = -1;
    em_shuffle_index_path(dir, sid, mid, ipath, sizeof ipath);
    em_shuffle_data_path(dir, sid, mid, dpath, dcap);
    if ((rc = em_read_file(ipath, &ibytes, &ilen, err)) < 0)
        goto out;
    if ((rc = em__shuffle_index_decode(ibytes, ilen, &ix, err)) < 0) {
        em_err_prefix(err, "%s", ipath);
        goto out;
    }
    if (ix.shuffle_id != sid || ix.map_id != mid) {
        rc = em_err_set(err, EM_ECORRUPT, "%s: index belongs to shuffle %u map %u", ipath,
                        ix.shuffle_id, ix.map_id);
        goto out;
    }
    if (reduce >= ix.nparts) {
        rc = em_err_set(err, EM_ECORRUPT, "%s: reduce partition %u of %u", ipath, reduce,
                        ix.nparts);
        goto out;
    }
    *start = em__shuffle_index_off(&ix, reduce);
    *end = em__shuffle_index_off(&ix, reduce + 1);
    if ((*fd = open(dpath, O_RDONLY | O_CLOEXEC)) < 0 || fstat(*fd, &st) != 0) {
        rc = em_err_set(err, EM_EIO, "%s: %s", dpath, strerror(errno));
        goto out;
    }
    if (*end > (uint64_t)st.st_size) {
        rc = em_err_set(err, EM_ECORRUPT, "%s: segment [%llu, %llu) past the end of the file "
                        "(%llu bytes)", dpath, (unsigned long long)*start,
                        (unsigned long long)*end, (unsigned long long)st.st_size);
        goto out;
    }
    if (*end - *start > SIZE_MAX / 2)
        rc = em_err_set(err, EM_ENOMEM, "%s: a %llu-byte segment", dpath,
                        (unsigned long long)(*end - *start));
out:
    if (rc < 0 && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    em_free(ibytes);
    return rc;
}

/* The body of em_shuffle_fetch_local; errors carry the reason, without the ids. */
static int fetch_local(const char *dir, uint32_t sid, uint32_t mid, uint32_t reduce,
                       em_vbuf *out, em_err *err)
{
    char dpath[4096];
    uint64_t start = 0, end = 0;
    int fd, rc = em__shuffle_segment_open(dir, sid, mid, reduce, &fd, &start, &end, dpath,
                                          sizeof dpath, err);
    if (rc < 0)
        return rc;
    if (em_vbuf_reserve(out, (size_t)(end - start)) < 0)
        rc = em_err_set(err, EM_ENOMEM, "%s: out of memory for a %llu-byte segment", dpath,
                        (unsigned long long)(end - start));
    else if ((rc = em_pread_full(fd, out->data + out->len, (size_t)(end - start), start,
                                 dpath, err)) == 0)
        out->len += (size_t)(end - start);
    close(fd);
    return rc;
}

int em__shuffle_fetch_fail(int rc, uint32_t sid, uint32_t mid, uint32_t reduce, em_err *err)
{
    if (rc != EM_ENOMEM)
        return fetch_error(err, sid, mid, reduce);
    em_err_prefix(err, "shuffle %u map %u reduce %u", sid, mid, reduce);
    return rc;
}

int em_shuffle_fetch_local(const char *dir, uint32_t sid, uint32_t mid, uint32_t reduce,
                           em_vbuf *out, em_err *err)
{
    int rc = fetch_local(dir, sid, mid, reduce, out, err);
    return rc < 0 ? em__shuffle_fetch_fail(rc, sid, mid, reduce, err) : rc;
}

static int local_fetch(void *self, const char *loc, uint32_t sid, uint32_t mid, uint32_t reduce,
                       uint64_t size, em_vbuf *out, em_err *err)
{
    (void)self;
    (void)size;   /* compared by em_shuffle_read once read */
    return em_shuffle_fetch_local(loc, sid, mid, reduce, out, err);
}

static const em_fetcher_ops local_ops = {local_fetch};

em_fetcher em_fetcher_local(void)
{
    em_fetcher f = {&local_ops, NULL};
    return f;
}

/* ---------------------------------------------------------------- reading */

typedef struct read_ctx {
    int (*on_batch)(void *ud, em_batch *b, em_err *err);
    void *ud;
    bool user_failed;   /* the error came from on_batch */
} read_ctx;

static int pass_batch(void *ud, em_batch *b, em_err *err)
{
    read_ctx *c = ud;
    int rc = c->on_batch(c->ud, b, err);
    if (rc != 0)
        c->user_failed = true;
    return rc;
}

int em_shuffle_read(const em_fetcher *f, uint32_t sid, uint32_t reduce,
                    const em_shuffle_src *srcs, uint32_t nsrcs,
                    int (*on_batch)(void *ud, em_batch *b, em_err *err), void *ud,
                    uint32_t *failed_map, em_err *err)
{
    em_vbuf buf;
    read_ctx ctx = {on_batch, ud, false};
    int rc = 0;

    em_vbuf_init(&buf);
    for (uint32_t i = 0; i < nsrcs && rc == 0; i++) {
        const em_shuffle_src *s = &srcs[i];
        if (s->size == 0)
            continue;
        em_vbuf_clear(&buf);
        rc = f->ops->fetch(f->self, s->loc, sid, s->map_id, reduce, s->size, &buf, err);
        if (rc == EM_ENOMEM)
            break;
        if (rc == 0 && buf.len != s->size)
            rc = em_err_set(err, EM_EFETCH, "%s: segment is %zu bytes, map status says %llu",
                            s->loc, buf.len, (unsigned long long)s->size);
        if (rc == 0) {
            /* Bytes from another process get the network bounds (data.h). */
            rc = f->ops == &local_ops
                     ? em_blocks_decode_each(buf.data, buf.len, pass_batch, &ctx, err)
                     : em_blocks_decode_each_net(buf.data, buf.len, pass_batch, &ctx, err);
            if (rc != 0 && ctx.user_failed)
                break;
            if (rc == EM_ENOMEM)
                break;
        }
        if (rc != 0) {
            if (failed_map)
                *failed_map = s->map_id;
            rc = fetch_error(err, sid, s->map_id, reduce);
        }
    }
    em_vbuf_destroy(&buf);
    return rc;
}
