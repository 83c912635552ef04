/* tests/unit/exec/test_text.c - text file splits: for random files and many split sizes
 * the lines of all splits are exactly the file's lines (CRLF, no trailing newline, empty
 * lines, empty file, long lines); whole_text_files; missing files. */
#include <unistd.h>

#include "tests/unit/exec/exec_test_util.h"

/* Naive line split: '\n' ends a line, one '\r' before it is dropped, a last line without
 * '\n' counts. */
static void naive_lines(const uint8_t *p, size_t n, trecs *out)
{
    size_t s = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\n') {
            size_t e = i > s && p[i - 1] == '\r' ? i - 1 : i;
            trecs_add(out, false, NULL, 0, p + s, e - s);
            s = i + 1;
        }
    if (s < n)
        trecs_add(out, false, NULL, 0, p + s, n - s);
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* Lines of the file read through splits of size `split` spread over nparts partitions. */
static void read_split(tenv *te, const char *path, size_t fsize, uint64_t split, uint32_t np,
                       trecs *out)
{
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *t = tn(g, EM_OP_TEXT_FILE, np, NULL, NULL);
    uint32_t ns = (uint32_t)(fsize / split + 1);
    t->splits = em_xcalloc(ns, sizeof *t->splits);
    t->nsplits = ns;
    for (uint32_t i = 0; i < ns; i++) {
        t->splits[i].path = em_xstrdup(path);
        t->splits[i].start = i * split;
        t->splits[i].len = split;
        t->splits[i].part = (uint32_t)((uint64_t)i * np / ns);
    }
    te_collect(te, t, out);
    em_plan_graph_free(g);
}

Test(text, splits_union_equals_lines, .timeout = 60)
{
    tenv te;
    te_init(&te);
    char path[300];
    snprintf(path, sizeof path, "%s/in.txt", te.dir);
    em_rng rng;
    em_rng_seed(&rng, 1);
    static const char *pieces[] = {"a", "bb", " ", "\n", "\r\n", "\n\n", "\xc3\xa9", "\r", "xyz"};
    for (int file = 0; file < 40; file++) {
        size_t n = file == 0 ? 0 : (size_t)em_rng_below(&rng, 400);
        uint8_t *buf = malloc(n * 3 + 8);
        size_t len = 0;
        for (size_t i = 0; i < n; i++) {
            const char *s = pieces[em_rng_below(&rng, 9)];
            memcpy(buf + len, s, strlen(s));
            len += strlen(s);
        }
        write_file(path, buf, len);
        trecs want = {0};
        naive_lines(buf, len, &want);
        static const uint64_t sizes[] = {1, 2, 3, 5, 7, 16, 64, 1000};
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            trecs got = {0};
            read_split(&te, path, len, sizes[si], 1 + (uint32_t)(si % 3), &got);
            trecs_assert_eq(&got, &want, false, "split lines");
            trecs_free(&got);
        }
        trecs_free(&want);
        free(buf);
    }
    te_destroy(&te);
}

Test(text, long_lines_cross_the_buffer, .timeout = 60)
{
    tenv te;
    te_init(&te);
    char path[300];
    snprintf(path, sizeof path, "%s/long.txt", te.dir);
    size_t len = (3u << 20) + 12345;
    uint8_t *buf = malloc(len);
    em_rng rng;
    em_rng_seed(&rng, 2);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)('a' + em_rng_below(&rng, 26));
    /* one 2.5 MiB line, then short lines around the 1 MiB chunk edges */
    for (size_t i = (5u << 19); i < len; i += 1 + em_rng_below(&rng, 70000))
        buf[i] = '\n';
    write_file(path, buf, len);
    trecs want = {0};
    naive_lines(buf, len, &want);
    static const uint64_t sizes[] = {1u << 20, 777777, 4u << 20};
    for (size_t si = 0; si < 3; si++) {
        trecs got = {0};
        read_split(&te, path, len, sizes[si], 2, &got);
        trecs_assert_eq(&got, &want, false, "long lines");
        trecs_free(&got);
    }
    trecs_free(&want);
    free(buf);
    te_destroy(&te);
}

Test(text, missing_file_is_named)
{
    tenv te;
    te_init(&te);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *t = tn(g, EM_OP_TEXT_FILE, 1, NULL, NULL);
    t->splits = em_xcalloc(1, sizeof *t->splits);
    t->nsplits = 1;
    t->splits[0].path = em_xstrdup("/nonexistent/ember-file.txt");
    t->splits[0].len = 10;
    em_result_spec spec = {.op = EM_RESULT_COUNT};
    em_err err = EM_ERR_INIT;
    char *js = em_stage_encode(t, false, &spec, &err);
    em_task_result res;
    cr_assert_eq(em_exec_run_task(&te.env, js, strlen(js), 0, 0, &res, &err), EM_EIO);
    cr_assert(strstr(res.err.msg, "/nonexistent/ember-file.txt"), "%s", res.err.msg);
    em_task_result_destroy(&res);
    em_free(js);
    em_plan_graph_free(g);
    te_destroy(&te);
}

Test(text, whole_text_files)
{
    tenv te;
    te_init(&te);
    char p1[300], p2[300];
    snprintf(p1, sizeof p1, "%s/a.txt", te.dir);
    snprintf(p2, sizeof p2, "%s/b.txt", te.dir);
    write_file(p1, (const uint8_t *)"hello\nworld", 11);
    write_file(p2, (const uint8_t *)"", 0);
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *t = tn(g, EM_OP_WHOLE_TEXT_FILES, 2, NULL, NULL);
    t->splits = em_xcalloc(2, sizeof *t->splits);
    t->nsplits = 2;
    t->splits[0] = (em_split){em_xstrdup(p1), 0, 11, 1};
    t->splits[1] = (em_split){em_xstrdup(p2), 0, 0, 0};
    trecs got = {0}, want = {0};
    te_collect(&te, t, &got);
    trecs_add(&want, true, p2, strlen(p2), "", 0);
    trecs_add(&want, true, p1, strlen(p1), "hello\nworld", 11);
    trecs_assert_eq(&got, &want, false, "whole files");
    trecs_free(&got);
    trecs_free(&want);
    em_plan_graph_free(g);
    te_destroy(&te);
}
