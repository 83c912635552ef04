/* engine/exec/text.c - text sources: lines of file splits (TEXT_FILE) and whole files
 * (WHOLE_TEXT_FILES).
 *
 * SPLIT RULE and LINES: those of the one line splitter, em_lines (engine/base/base.h,
 * lines.c; Hadoop's LineRecordReader): a split owns the lines that start inside it, the
 * '\n' and one '\r' before it are stripped. A TEXT_FILE iterator keeps one em_lines (so one
 * buffer, 1 MiB reads) for all its splits and hands lines out as slices of its buffer. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "engine/exec/exec_int.h"

typedef struct text_iter {
    em_iter base;
    em_task *t;
    const em_plan_node *n;
    uint32_t part;
    uint32_t next_split;   /* index into n->splits to look at next */
    int fd;                /* -1 when no split is open */
    em_lines lines;        /* the open split's reader */
} text_iter;

static void close_split(text_iter *x)
{
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
}

static int open_split(text_iter *x, const em_split *s, em_err *err)
{
    x->fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (x->fd < 0)
        return em_err_set(err, em_errno_code_open(errno), "%s: open: %s", s->path,
                          strerror(errno));
    return em_lines_start(&x->lines, x->fd, s->path, s->start, s->len, err);
}

static int text_next(em_iter *it, em_rec *r, em_err *err)
{
    text_iter *x = (text_iter *)it;
    for (;;) {
        if (x->fd >= 0) {
            int rc = em_lines_next(&x->lines, &r->val, err);
            if (rc == 1) {
                r->key = em_slice_make(NULL, 0);
                x->t->metrics->records_read++;
            }
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
    em_lines_destroy(&x->lines);
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
    em_lines_init(&x->lines, 0, EM_BATCH_MAX_REC_LEN);
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
