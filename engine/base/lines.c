/* engine/base/lines.c - the one line-aligned splitter: which lines a byte range of a text
 * file owns (em_line_align) and a reader of them (em_lines), for every text reader of the
 * code base (engine/exec/text.c's TEXT_FILE source, mllib/als/ratings.c, mllib's loaders).
 * The split rule and what a line is are stated in base.h.
 *
 * DESIGN: one reusable buffer per reader, filled with pread (or read, for a whole stream)
 * in chunks; lines are found with memchr and handed out as slices of the buffer (no
 * per-line syscall or allocation). A line that crosses the end of the buffer is moved to
 * the front before the next read; a line longer than the buffer doubles it. Reads stop at
 * the range's end, and past it (the last owned line) go on in small steps, so a reader of a
 * range reads little of its neighbour's bytes. A range that starts inside a line skips it
 * lazily, as it reads (no separate scan). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "engine/base/base.h"

#define DEFAULT_CHUNK ((size_t)1 << 20)
#define PAST_END_READ ((size_t)64 << 10)   /* read size while finishing the last line */

static ssize_t pread_retry(int fd, void *p, size_t n, uint64_t off)
{
    ssize_t k;
    do
        k = pread(fd, p, n, (off_t)off);
    while (k < 0 && errno == EINTR);
    return k;
}

int em_line_align(int fd, uint64_t off, const char *path, uint64_t *out, em_err *err)
{
    uint8_t buf[4096];
    if (off == 0) {
        *out = 0;
        return 0;
    }
    for (uint64_t from = off - 1;;) {
        ssize_t k = pread_retry(fd, buf, sizeof buf, from);
        if (k < 0)
            return em_err_set(err, EM_EIO, "%s: read at offset %llu: %s", path,
                              (unsigned long long)from, strerror(errno));
        if (k == 0) {
            *out = from < off ? off : from;   /* no '\n' after off: the file ends at from */
            return 0;
        }
        const uint8_t *nl = memchr(buf, '\n', (size_t)k);
        if (nl) {
            *out = from + (uint64_t)(nl - buf) + 1;
            return 0;
        }
        from += (uint64_t)k;
    }
}

void em_lines_init(em_lines *l, size_t chunk, size_t max_line)
{
    memset(l, 0, sizeof *l);
    l->fd = -1;
    l->chunk = chunk ? chunk : DEFAULT_CHUNK;
    l->max_line = max_line;
}

void em_lines_destroy(em_lines *l)
{
    em_free(l->buf);
    l->buf = NULL;
    l->cap = l->head = l->tail = 0;
}

int em_lines_start(em_lines *l, int fd, const char *path, uint64_t start, uint64_t len,
                   em_err *err)
{
    l->fd = fd;
    l->path = path;
    l->head = l->tail = 0;
    l->buf_off = start;
    l->stream = len == EM_LINES_TO_EOF;
    l->end = l->stream || len > UINT64_MAX - start ? UINT64_MAX : start + len;
    l->lineno = 0;
    l->scanned = 0;
    l->eof = false;
    l->skipping = false;
    if (start > 0 && !l->stream) {
        uint8_t prev;
        ssize_t k = pread_retry(fd, &prev, 1, start - 1);
        if (k < 0)
            return em_err_set(err, EM_EIO, "%s: read at offset %llu: %s", path,
                              (unsigned long long)(start - 1), strerror(errno));
        if (k == 0)
            l->eof = true;        /* the range starts past the end of the file */
        else
            l->skipping = prev != '\n';
    }
    return 0;
}

/* Makes room after buf[tail] (keeping buf[head, tail)): moves the unread bytes to the front,
 * and doubles the buffer when they fill it. */
static int make_room(em_lines *l, em_err *err)
{
    if (l->head > 0) {
        memmove(l->buf, l->buf + l->head, l->tail - l->head);
        l->buf_off += l->head;
        l->tail -= l->head;
        l->head = 0;
    }
    if (l->tail < l->cap)
        return 0;
    if (l->max_line && l->cap >= l->max_line)
        return em_err_set(err, EM_ECORRUPT, "%s: line at offset %llu is longer than %zu "
                          "bytes", l->path, (unsigned long long)l->buf_off, l->max_line);
    size_t ncap = l->cap;
    uint8_t *nb = em_arr_grow(l->buf, &ncap, l->cap ? l->cap + 1 : l->chunk, 1);
    if (!nb)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory for a line buffer at offset "
                          "%llu (%zu bytes)", l->path, (unsigned long long)l->buf_off,
                          l->cap ? l->cap * 2 : l->chunk);
    l->buf = nb;
    l->cap = ncap;
    return 0;
}

/* Reads more bytes after buf[tail]; sets eof at the end of the file. */
static int refill(em_lines *l, em_err *err)
{
    int rc = make_room(l, err);
    if (rc < 0)
        return rc;
    size_t want = l->cap - l->tail < l->chunk ? l->cap - l->tail : l->chunk;
    uint64_t at = l->buf_off + l->tail;
    ssize_t k;
    if (l->stream) {
        do
            k = read(l->fd, l->buf + l->tail, want);
        while (k < 0 && errno == EINTR);
    } else {
        if (at < l->end && l->end - at < want)
            want = (size_t)(l->end - at);
        else if (at >= l->end && want > PAST_END_READ)
            want = PAST_END_READ;
        k = pread_retry(l->fd, l->buf + l->tail, want, at);
    }
    if (k < 0)
        return em_err_set(err, EM_EIO, "%s: read at offset %llu: %s", l->path,
                          (unsigned long long)at, strerror(errno));
    if (k == 0)
        l->eof = true;
    l->tail += (size_t)k;
    return 0;
}

/* Drops the partial line the range starts in. 1 when done (or more bytes are needed: the
 * caller loops), 0 at the end of the file. */
static int skip_partial(em_lines *l, em_err *err)
{
    const uint8_t *p = l->buf + l->head;
    const uint8_t *nl = l->tail > l->head ? memchr(p, '\n', l->tail - l->head) : NULL;
    if (nl) {
        l->head = (size_t)(nl - l->buf) + 1;
        l->skipping = false;
        l->scanned = 0;
        return 1;
    }
    if (l->eof)
        return 0;
    l->head = l->tail;   /* the skipped partial line need not be kept */
    l->scanned = 0;
    int rc = refill(l, err);
    return rc < 0 ? rc : 1;
}

/* em_lines_next (base.h) when its inline fast path does not apply. */
int em__lines_next_slow(em_lines *l, em_slice *line, em_err *err)
{
    for (;;) {
        if (l->skipping) {
            int rc = skip_partial(l, err);
            if (rc <= 0)
                return rc;
            continue;
        }
        if (l->buf_off + l->head >= l->end)
            return 0;
        const uint8_t *p = l->buf + l->head;
        size_t from = l->head + l->scanned;
        const uint8_t *nl = l->tail > from ? memchr(l->buf + from, '\n', l->tail - from) : NULL;
        if (nl) {
            size_t len = (size_t)(nl - p);
            if (len && p[len - 1] == '\r')
                len--;
            l->head = (size_t)(nl - l->buf) + 1;
            l->scanned = 0;
            l->lineno++;
            *line = em_slice_make(p, len);
            return 1;
        }
        if (l->eof) {
            if (l->head == l->tail)
                return 0;
            *line = em_slice_make(p, l->tail - l->head);
            l->head = l->tail;
            l->scanned = 0;
            l->lineno++;
            return 1;
        }
        l->scanned = l->tail - l->head;   /* a long line: do not search these bytes again */
        int rc = refill(l, err);
        if (rc < 0)
            return rc;
    }
}

/* Index just past the last '\n' of buf[head, tail), or head when there is none. The last
 * newline is usually within a line's length of the end, so a backward scan is short. */
static size_t last_line_end(const em_lines *l)
{
    for (size_t i = l->tail; i > l->head + l->scanned; i--)
        if (l->buf[i - 1] == '\n')
            return i;
    return l->head;
}

int em_lines_block(em_lines *l, em_slice *block, em_err *err)
{
    for (;;) {
        if (l->skipping) {
            int rc = skip_partial(l, err);
            if (rc <= 0)
                return rc;
            continue;
        }
        if (l->buf_off + l->head >= l->end)
            return 0;
        size_t e = last_line_end(l);
        if (e > l->head) {
            if (l->buf_off + e > l->end) {
                /* Lines from the first one starting at or after end are not ours: cut
                 * after the first '\n' at offset >= end - 1 (one exists: buf[e-1]). */
                size_t from = (size_t)(l->end - 1 - l->buf_off);
                const uint8_t *nl = memchr(l->buf + from, '\n', e - from);
                e = (size_t)(nl - l->buf) + 1;
            }
            *block = em_slice_make(l->buf + l->head, e - l->head);
            l->head = e;
            l->scanned = 0;
            return 1;
        }
        if (l->eof) {
            if (l->head == l->tail)
                return 0;
            *block = em_slice_make(l->buf + l->head, l->tail - l->head);
            l->head = l->tail;
            l->scanned = 0;
            return 1;
        }
        l->scanned = l->tail - l->head;   /* a long line: do not search these bytes again */
        int rc = refill(l, err);
        if (rc < 0)
            return rc;
    }
}
