/* tests/unit/base/test_file.c - atomic writes (commit/abort leave no .tmp), whole-file reads
 * and their errors, pread/write helpers, mkdir -p / rm -rf, size strings. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/base/base.h"

static char g_dir[64];

static void setup(void)
{
    strcpy(g_dir, "/tmp/ember_base_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void)
{
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rm_rf(g_dir, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_neq(stat(g_dir, &st), 0);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

TestSuite(file, .init = setup, .fini = teardown);

Test(file, commit_makes_file_appear_whole)
{
    char *path = em_xasprintf("%s/out.bin", g_dir);
    em_err err = EM_ERR_INIT;
    em_file *f;
    cr_assert_eq(em_file_create_tmp(path, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(em_file_write(f, "hello ", 6, &err), 0);
    cr_assert_eq(access(path, F_OK), -1, "final name must not exist before commit");
    cr_assert_eq(em_file_write(f, "world", 5, &err), 0);
    cr_assert_eq(em_file_offset(f), 11);
    cr_assert_eq(em_file_commit(f, &err), 0, "%s", err.msg);

    uint8_t *data;
    size_t len;
    cr_assert_eq(em_read_file(path, &data, &len, &err), 0, "%s", err.msg);
    cr_assert_eq(len, 11);
    cr_assert(memcmp(data, "hello world", 11) == 0);
    em_free(data);
    cr_assert_eq(count_entries(g_dir), 1, "no .tmp file may remain");
    em_free(path);
}

Test(file, abort_removes_tmp)
{
    char *path = em_xasprintf("%s/gone.bin", g_dir);
    em_err err = EM_ERR_INIT;
    em_file *f;
    cr_assert_eq(em_file_create_tmp(path, &f, &err), 0);
    cr_assert_eq(em_file_write(f, "x", 1, &err), 0);
    cr_assert_eq(count_entries(g_dir), 1);
    em_file_abort(f);
    em_file_abort(NULL);
    cr_assert_eq(count_entries(g_dir), 0);
    em_free(path);
}

Test(file, atomic_write_replaces)
{
    char *path = em_xasprintf("%s/a", g_dir);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_write_file_atomic(path, "first", 5, &err), 0);
    cr_assert_eq(em_write_file_atomic(path, "2", 1, &err), 0);
    uint8_t *data;
    size_t len;
    cr_assert_eq(em_read_file(path, &data, &len, &err), 0);
    cr_assert_eq(len, 1);
    cr_assert_eq(data[0], '2');
    em_free(data);
    cr_assert_eq(count_entries(g_dir), 1);
    /* Empty file reads as length 0. */
    cr_assert_eq(em_write_file_atomic(path, "", 0, &err), 0);
    cr_assert_eq(em_read_file(path, &data, &len, &err), 0);
    cr_assert_eq(len, 0);
    em_free(data);
    em_free(path);
}

Test(file, create_in_missing_dir_fails)
{
    char *path = em_xasprintf("%s/no/such/dir/f", g_dir);
    em_err err = EM_ERR_INIT;
    em_file *f = NULL;
    cr_assert_lt(em_file_create_tmp(path, &f, &err), 0);
    cr_assert_null(f);
    cr_assert(strstr(err.msg, "no/such/dir") != NULL, "%s", err.msg);
    em_free(path);
}

Test(file, read_errors_name_path)
{
    char *path = em_xasprintf("%s/missing.txt", g_dir);
    em_err err = EM_ERR_INIT;
    uint8_t *data = NULL;
    size_t len = 0;
    cr_assert_eq(em_read_file(path, &data, &len, &err), EM_ENOTFOUND);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "No such file") != NULL, "%s", err.msg);
    cr_assert_null(data);
    /* A directory cannot be read as a file. */
    cr_assert_eq(em_read_file(g_dir, &data, &len, &err), EM_EIO);
    cr_assert(strstr(err.msg, g_dir) != NULL, "%s", err.msg);
    em_free(path);
}

Test(file, read_survives_oom)
{
    char *path = em_xasprintf("%s/oom", g_dir);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_write_file_atomic(path, "abcdef", 6, &err), 0);
    for (int n = 0;; n++) {
        uint8_t *data = NULL;
        size_t len = 0;
        em_test_fail_alloc_after(n);
        int rc = em_read_file(path, &data, &len, &err);
        em_test_alloc_reset();
        if (rc == 0) {
            cr_assert_eq(len, 6);
            em_free(data);
            break;
        }
        cr_assert_eq(rc, EM_ENOMEM, "allocation %d: %d", n, rc);
    }
    em_free(path);
}

Test(file, pread_full_and_short)
{
    char *path = em_xasprintf("%s/p", g_dir);
    em_err err = EM_ERR_INIT;
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(em_write_full(fd, "0123456789", 10, path, &err), 0);
    char got[4];
    cr_assert_eq(em_pread_full(fd, got, 4, 3, path, &err), 0);
    cr_assert(memcmp(got, "3456", 4) == 0);
    cr_assert_eq(em_pread_full(fd, got, 4, 8, path, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    close(fd);
    cr_assert_eq(em_pread_full(fd, got, 4, 0, path, &err), EM_EIO);
    cr_assert_eq(em_write_full(fd, "x", 1, path, &err), EM_EIO);
    em_free(path);
}

Test(file, mkdir_p_and_rm_rf)
{
    char *deep = em_xasprintf("%s/a/b/c", g_dir);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_mkdir_p(deep, &err), 0, "%s", err.msg);
    cr_assert_eq(em_mkdir_p(deep, &err), 0, "existing dir is fine");
    char *file = em_xasprintf("%s/f", deep);
    cr_assert_eq(em_write_file_atomic(file, "x", 1, &err), 0);
    cr_assert_lt(em_mkdir_p(file, &err), 0, "a file is not a directory");
    char *a = em_xasprintf("%s/a", g_dir);
    cr_assert_eq(em_rm_rf(a, &err), 0, "%s", err.msg);
    cr_assert_eq(access(a, F_OK), -1);
    cr_assert_eq(em_rm_rf(a, &err), 0, "missing path is not an error");
    em_free(a);
    em_free(file);
    em_free(deep);
}

Test(parse_size, table)
{
    struct {
        const char *s;
        int64_t want;
    } cases[] = {
        {"1024", 1024},
        {"0", 0},
        {"64k", 65536},
        {"64K", 65536},
        {"512m", 512LL << 20},
        {"4g", 4LL << 30},
        {"4G", 4LL << 30},
        {"1.5g", 3LL << 29},
        {"0.5k", 512},
        {"2MiB", 2LL << 20},
        {"2mb", 2LL << 20},
        {"3t", 3LL << 40},
        {"100b", 100},
        {"8388607t", 8388607LL << 40},
        {"8388608t", -1}, /* 2^63: overflows int64 */
        {"99999999999999999999", -1},
        {"", -1},
        {"-1", -1},
        {"-4g", -1},
        {"abc", -1},
        {"4x", -1},
        {"4gb!", -1},
        {" 4g", -1},
        {"4 g", -1},
        {"1.5", -1},
        {"1.", -1},
        {".5g", -1},
        {"k", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(em_parse_size(cases[i].s), cases[i].want, "\"%s\": got %lld want %lld",
                     cases[i].s, (long long)em_parse_size(cases[i].s),
                     (long long)cases[i].want);
    cr_assert_eq(em_parse_size(NULL), -1);
}
