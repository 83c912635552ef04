/* engine/exec/text.c - text sources: lines of file splits (TEXT_FILE) and whole files
 * (WHOLE_TEXT_FILES).
 *
 * SPLIT RULE (Hadoop's LineRecordReader): a split [start, start+len) owns every line whose
 * first byte offset s satisfies start <= s < start+len, where a line starts at offset 0 or
 * right after a '\n'. So a split with start > 0 whose previous byte is not '\n' skips the
 * partial line it begins in, and the last line it owns may run past its end. Together the
 * splits of a file yield every line exactly once.
 *
 * LINES: the '\n' and one '\r' before it are stripped; a final line without '\n' counts; a
 * trailing '\n' does not start an empty last line.
 *
 * SPEED: one reusable buffer per iterator, filled with pread in 1 MiB chunks; lines are
 * found with memchr and handed out as slices of the buffer (no per-line syscall or
 * allocation). A line that crosses the end of the buffer is moved to the front before the
 * next read; a line longer than the buffer grows it. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "engine/exec/exec_int.h"

#define CHUNK ((size_t)1 << 20)

typedef struct text_iter {
    em_iter base;
    em_task *t;
    const em_plan_node *n;
    uint32_t part;
    uint32_t next_split;   /* index into n->splits to look at next */
    const char *path;      /* current split's file (borrowed from the node) */
    int fd;                /* -1 when no split is open */
    uint8_t *buf;
    size_t cap, head, tail;   /* unread bytes are buf[head, tail) */
    uint64_t buf_off;         /* file offset of buf[0] */
    uint64_t end;             /* lines starting at or after this offset belong to others */
    bool eof, skipping;
} text_iter;

static void close_split(text_iter *x)
{
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
}

static int open_split(text_iter *x, const em_split *s, em_err *err)
{
    x->path = s->path;
    x->fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (x->fd < 0)
        return em_err_set(err, EM_EIO, "%s: open: %s", s->path, strerror(errno));
    x->head = x->tail = 0;
    x->buf_off = s->start;
    x->end = s->start + s->len;
    x->eof = false;
    x->skipping = false;
    if (s->start > 0) {
        uint8_t prev;
        ssize_t k;
        do
            k = pread(x->fd, &prev, 1, (off_t)(s->start - 1));
        while (k < 0 && errno == EINTR);
        if (k < 0)
            return em_err_set(err, EM_EIO, "%s: read at offset %llu: %s", s->path,
                              (unsigned long long)(s->start - 1), strerror(errno));
        if (k == 0)
            x->eof = true;        /* the split starts past the end of the file */
        else
            x->skipping = prev != '\n';
    }
    return 0;
}

/* Reads more bytes after buf[tail], keeping buf[head, tail). */
static int refill(text_iter *x, em_err *err)
{
    if (x->head > 0) {
        memmove(x->buf, x->buf + x->head, x->tail - x->head);
        x->buf_off += x->head;
        x->tail -= x->head;
        x->head = 0;
    }
    if (x->tail == x->cap) {
        if (x->cap >= (size_t)EM_BATCH_MAX_REC_LEN)
            return em_err_set(err, EM_ECORRUPT, "%s: line at offset %llu is longer than "
                              "2 GiB", x->path, (unsigned long long)x->buf_off);
        size_t ncap = x->cap ? x->cap * 2 : CHUNK;
        uint8_t *nb = em_realloc(x->buf, ncap);
        if (!nb)
            return em_err_set(err, EM_ENOMEM, "%s: out of memory for a %zu-byte line buffer",
                              x->path, ncap);
        x->buf = nb;
        x->cap = ncap;
    }
    size_t want = x->cap - x->tail < CHUNK ? x->cap - x->tail : CHUNK;
    ssize_t k;
    do
        k = pread(x->fd, x->buf + x->tail, want, (off_t)(x->buf_off + x->tail));
    while (k < 0 && errno == EINTR);
    if (k < 0)
        return em_err_set(err, EM_EIO, "%s: read at offset %llu: %s", x->path,
                          (unsigned long long)(x->buf_off + x->tail), strerror(errno));
    if (k == 0)
        x->eof = true;
    x->tail += (size_t)k;
    return 0;
}

/* 1 + a line of the open split, 0 when the split has no more lines, <0 on error. */
static int split_line(text_iter *x, em_rec *r, em_err *err)
{
    for (;;) {
        if (!x->skipping && x->buf_off + x->head >= x->end)
            return 0;
        uint8_t *p = x->buf + x->head;
        uint8_t *nl = x->tail > x->head ? memchr(p, '\n', x->tail - x->head) : NULL;
        if (nl && x->skipping) {
            x->head = (size_t)(nl - x->buf) + 1;
            x->skipping = false;
            continue;
        }
        if (nl) {
            size_t len = (size_t)(nl - p);
            if (len && p[len - 1] == '\r')
                len--;
            x->head = (size_t)(nl - x->buf) + 1;
            r->key = em_slice_make(NULL, 0);
            r->val = em_slice_make(p, len);
            return 1;
        }
        if (x->eof) {
            if (x->skipping || x->head == x->tail)
                return 0;
            r->key = em_slice_make(NULL, 0);
            r->val = em_slice_make(p, x->tail - x->head);
            x->head = x->tail;
            return 1;
        }
        if (x->skipping)
            x->head = x->tail;   /* the skipped partial line need not be kept */
        int rc = refill(x, err);
        if (rc < 0)
            return rc;
    }
}

static int text_next(em_iter *it, em_rec *r, em_err *err)
{
    text_iter *x = (text_iter *)it;
    for (;;) {
        if (x->fd >= 0) {
            int rc = split_line(x, r, err);
            if (rc == 1)
                x->t->metrics->records_read++;
            if (rc != 0)
                return rc;
            close_split(x);
        }
        while (x->next_split < x->n->nsplits && x->n->splits[x->next_split].part != x->part)
            x->next_split++;
        if (x->next_split >= x->n->nsplits)
            return 0;
        int rc = open_split(x, &x->n->splits[x->next_split++], err);
        if (rc < 0)
            return rc;
    }
}

static void text_free(em_iter *it)
{
    text_iter *x = (text_iter *)it;
    close_split(x);
    em_free(x->buf);
    em_free(x);
}

int em__text_file_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                      em_err *err)
{
    (void)err;
    text_iter *x = em_xcalloc(1, sizeof *x);
    x->base.next = text_next;
    x->base.free = text_free;
    x->t = t;
    x->n = n;
    x->part = part;
    x->fd = -1;
    *out = &x->base;
    return 0;
}

/* ---------------------------------------------------------------- whole files */

typedef struct whole_iter {
    em_iter base;
    em_task *t;
    const em_plan_node *n;
    uint32_t part, next_split;
    uint8_t *content;
} whole_iter;

static int whole_next(em_iter *it, em_rec *r, em_err *err)
{
    whole_iter *w = (whole_iter *)it;
    em_free(w->content);
    w->content = NULL;
    while (w->next_split < w->n->nsplits && w->n->splits[w->next_split].part != w->part)
        w->next_split++;
    if (w->next_split >= w->n->nsplits)
        return 0;
    const em_split *s = &w->n->splits[w->next_split++];
    size_t len = 0;
    int rc = em_read_file(s->path, &w->content, &len, err);
    if (rc < 0)
        return rc;
    if (len > EM_BATCH_MAX_REC_LEN)
        return em_err_set(err, EM_EINVAL, "%s: %zu bytes is too large for one record",
                          s->path, len);
    w->t->metrics->records_read++;
    r->key = em_slice_str(s->path);
    r->val = em_slice_make(w->content ? w->content : (const uint8_t *)"", len);
    return 1;
}

static void whole_free(em_iter *it)
{
    whole_iter *w = (whole_iter *)it;
    em_free(w->content);
    em_free(w);
}

int em__whole_text_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter **out,
                       em_err *err)
{
    (void)err;
    whole_iter *w = em_xcalloc(1, sizeof *w);
    w->base.next = whole_next;
    w->base.free = whole_free;
    w->t = t;
    w->n = n;
    w->part = part;
    *out = &w->base;
    return 0;
}
