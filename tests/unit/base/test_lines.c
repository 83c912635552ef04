/* tests/unit/base/test_lines.c - the line-aligned splitter (em_line_align, em_lines): every
 * cut of a file into ranges yields each line exactly once, in order, with both the line
 * and the block interface; CR LF, a last line without '\n', lines longer than the buffer,
 * empty lines, line numbers, streams (pipes), the max_line limit and read errors. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/base/base.h"

static char g_path[64];

static int write_tmp(const char *text, size_t n)
{
    strcpy(g_path, "/tmp/ember_lines_XXXXXX");
    int fd = mkstemp(g_path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    return fd;
}

/* The lines of text by the rule of base.h, joined by '|' into out. */
static void expected(const char *text, size_t n, char *out)
{
    size_t k = 0, s = 0;
    out[0] = 0;
    while (s < n) {
        const char *nl = memchr(text + s, '\n', n - s);
        size_t e = nl ? (size_t)(nl - text) : n, len = e - s;
        if (nl && len && text[e - 1] == '\r')
            len--;
        memcpy(out + k, text + s, len);
        k += len;
        out[k++] = '|';
        s = nl ? e + 1 : n;
    }
    out[k] = 0;
}

/* Appends the lines of range [a, b) to out ('|' after each), by lines or by blocks. */
static void read_range(em_lines *l, int fd, uint64_t a, uint64_t b, bool blocks, char *out)
{
    em_err err = EM_ERR_INIT;
    size_t k = strlen(out);
    em_slice s;
    int rc;
    cr_assert_eq(em_lines_start(l, fd, g_path, a, b - a, &err), 0, "%s", err.msg);
    if (!blocks) {
        uint64_t nlines = 0;
        while ((rc = em_lines_next(l, &s, &err)) == 1) {
            cr_assert_eq(l->lineno, ++nlines);
            memcpy(out + k, s.p, s.n);
            k += s.n;
            out[k++] = '|';
        }
    } else {
        while ((rc = em_lines_block(l, &s, &err)) == 1) {
            cr_assert_gt(s.n, 0);
            char tmp[512], lines[512];
            memcpy(tmp, s.p, s.n);
            expected(tmp, s.n, lines);
            size_t m = strlen(lines);
            memcpy(out + k, lines, m);
            k += m;
        }
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    out[k] = 0;
}

/* Every cut of text into three ranges [0,i) [i,j) [j,n) (and ranges past the end), with a
 * tiny buffer (chunk 4: lines cross and outgrow it) and the default one. */
static void check_all_cuts(const char *text)
{
    size_t n = strlen(text);
    char want[512], got[512];
    int fd = write_tmp(text, n);
    expected(text, n, want);
    for (int mode = 0; mode < 4; mode++) {
        em_lines l;
        em_lines_init(&l, mode & 1 ? 4 : 0, 0);
        for (size_t i = 0; i <= n; i++)
            for (size_t j = i; j <= n + 1; j++) {
                got[0] = 0;
                read_range(&l, fd, 0, i, mode & 2, got);
                read_range(&l, fd, i, j, mode & 2, got);
                read_range(&l, fd, j, n + 3, mode & 2, got);
                cr_assert_str_eq(got, want, "cut %zu %zu mode %d of \"%s\"", i, j, mode, text);
            }
        em_lines_destroy(&l);
    }
    close(fd);
    unlink(g_path);
}

Test(lines, every_cut_yields_every_line_once)
{
    check_all_cuts("alpha\nbeta\ngamma\n");
    check_all_cuts("a\r\nbb\r\n\r\nccc");
    check_all_cuts("\n\nx\n\n");
    check_all_cuts("one long line of forty bytes or so, no nl");
    check_all_cuts("short\na line much longer than the tiny buffer of four bytes\nz\r\n");
    check_all_cuts("");
    check_all_cuts("\r\n");
}

Test(lines, align_finds_line_starts)
{
    const char *text = "ab\ncd\n\nef";
    int fd = write_tmp(text, strlen(text));
    em_err err = EM_ERR_INIT;
    uint64_t want[] = {0, 3, 3, 3, 6, 6, 6, 7, 9, 9, 10, 11};
    for (uint64_t off = 0; off < 12; off++) {
        uint64_t out = 99;
        cr_assert_eq(em_line_align(fd, off, g_path, &out, &err), 0, "%s", err.msg);
        cr_assert_eq(out, want[off], "align(%llu) = %llu", (unsigned long long)off,
                     (unsigned long long)out);
    }
    close(fd);
    unlink(g_path);
}

Test(lines, stream_reads_a_pipe)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    const char *text = "x,1\r\ny,2\nlast";
    cr_assert_eq(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
    close(p[1]);
    em_lines l;
    em_err err = EM_ERR_INIT;
    em_slice s;
    em_lines_init(&l, 2, 0);
    cr_assert_eq(em_lines_start(&l, p[0], "pipe", 0, EM_LINES_TO_EOF, &err), 0);
    const char *want[] = {"x,1", "y,2", "last"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(em_lines_next(&l, &s, &err), 1, "%s", err.msg);
        cr_assert_eq(s.n, strlen(want[i]));
        cr_assert_eq(memcmp(s.p, want[i], s.n), 0);
        cr_assert_eq(l.lineno, (uint64_t)i + 1);
    }
    cr_assert_eq(em_lines_next(&l, &s, &err), 0);
    em_lines_destroy(&l);
    close(p[0]);
}

Test(lines, max_line_is_an_error)
{
    const char *text = "ok\nthis line is far too long\n";
    int fd = write_tmp(text, strlen(text));
    em_lines l;
    em_err err = EM_ERR_INIT;
    em_slice s;
    em_lines_init(&l, 4, 8);
    cr_assert_eq(em_lines_start(&l, fd, g_path, 0, strlen(text), &err), 0);
    cr_assert_eq(em_lines_next(&l, &s, &err), 1);
    cr_assert_eq(em_lines_next(&l, &s, &err), EM_ECORRUPT);
    cr_assert_not_null(strstr(err.msg, "longer than 8 bytes"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, g_path), "%s", err.msg);
    em_lines_destroy(&l);
    close(fd);
    unlink(g_path);
}

Test(lines, oom_growing_the_buffer)
{
    const char *text = "0123456789abcdef\n";
    int fd = write_tmp(text, strlen(text));
    em_lines l;
    em_err err = EM_ERR_INIT;
    em_slice s;
    em_lines_init(&l, 4, 0);
    cr_assert_eq(em_lines_start(&l, fd, g_path, 0, strlen(text), &err), 0);
    em_test_fail_alloc_after(1);   /* the first buffer, then no doubling */
    int rc = em_lines_next(&l, &s, &err);
    em_test_alloc_reset();
    cr_assert_eq(rc, EM_ENOMEM);
    cr_assert_not_null(strstr(err.msg, g_path), "%s", err.msg);
    em_lines_destroy(&l);
    close(fd);
    unlink(g_path);
}

Test(lines, read_error_names_the_file)
{
    em_lines l;
    em_err err = EM_ERR_INIT;
    em_slice s;
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    em_lines_init(&l, 0, 0);
    cr_assert_eq(em_lines_start(&l, fd, "/tmp", 0, 100, &err), 0);
    cr_assert_eq(em_lines_next(&l, &s, &err), EM_EIO);
    cr_assert_not_null(strstr(err.msg, "/tmp"), "%s", err.msg);
    uint64_t out;
    cr_assert_eq(em_line_align(fd, 5, "/tmp", &out, &err), EM_EIO);
    em_lines_destroy(&l);
    close(fd);
}
