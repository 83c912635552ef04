/* tests/unit/shuffle/test_cleaner.c - em_shuffle_cleaner (shuffle/cleaner.c): queued
 * shuffles' files are deleted by its thread, exactly those (shuffle 1 never takes 12's or
 * 10's files, other names stay), _wait returns only when everything queued before it is
 * gone, _free finishes what was queued; and map outputs committed with and without
 * `sync` are the same files. */
#include <fcntl.h>
#include <unistd.h>

#include "shuffle_test_util.h"
#include "shuffle/shuffle_int.h"

static void touch(const char *dir, const char *name)
{
    char p[512];
    int n = snprintf(p, sizeof p, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t)n < sizeof p);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "%s", p);
    cr_assert_eq(write(fd, "x", 1), 1);
    close(fd);
}

static bool exists(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* Files of shuffles 1, 10, 12 and 7 (data, index, a temporary name, a spill file), and
 * names that only look alike. */
static void populate(const char *dir)
{
    static const char *const names[] = {
        "shuffle_1_0.data", "shuffle_1_0.index", "shuffle_1_1.data.tmp.99.3",
        "shuffle_1_2.spill.99.0", "shuffle_10_0.data", "shuffle_10_0.index",
        "shuffle_12_0.data", "shuffle_12_0.index", "shuffle_7_0.data", "shuffle_7_0.index",
        "shuffle_1x_0.data", "shuffle__1_0.data", "other_1_0.data",
        "shuffle_99999999999_0.data",
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        touch(dir, names[i]);
}

Test(cleaner, removes_exactly_the_queued_shuffles, .timeout = 30)
{
    char *dir = tu_mkdtemp();
    populate(dir);
    em_shuffle_cleaner *c = em_shuffle_cleaner_new(dir);
    em_shuffle_cleaner_remove(c, 1);
    em_shuffle_cleaner_remove(c, 12);
    em_shuffle_cleaner_wait(c);
    cr_assert(!exists(dir, "shuffle_1_0.data"));
    cr_assert(!exists(dir, "shuffle_1_0.index"));
    cr_assert(!exists(dir, "shuffle_1_1.data.tmp.99.3"));
    cr_assert(!exists(dir, "shuffle_1_2.spill.99.0"));
    cr_assert(!exists(dir, "shuffle_12_0.data"));
    cr_assert(!exists(dir, "shuffle_12_0.index"));
    cr_assert(exists(dir, "shuffle_10_0.data"), "shuffle 1 took shuffle 10's file");
    cr_assert(exists(dir, "shuffle_7_0.index"));
    cr_assert(exists(dir, "shuffle_1x_0.data"));
    cr_assert(exists(dir, "shuffle__1_0.data"));
    cr_assert(exists(dir, "other_1_0.data"));
    cr_assert(exists(dir, "shuffle_99999999999_0.data"));
    cr_assert_eq(tu_count_files(dir), 8);
    em_shuffle_cleaner_free(c);
    tu_rmdir(dir);
}

Test(cleaner, free_finishes_what_was_queued, .timeout = 30)
{
    char *dir = tu_mkdtemp();
    char name[64];
    for (uint32_t sid = 1; sid <= 200; sid++) {
        snprintf(name, sizeof name, "shuffle_%u_0.data", sid);
        touch(dir, name);
        snprintf(name, sizeof name, "shuffle_%u_0.index", sid);
        touch(dir, name);
    }
    em_shuffle_cleaner *c = em_shuffle_cleaner_new(dir);
    for (uint32_t sid = 1; sid <= 200; sid += 2)    /* the odd ones */
        em_shuffle_cleaner_remove(c, sid);
    em_shuffle_cleaner_free(c);
    cr_assert_eq(tu_count_files(dir), 200);
    cr_assert(exists(dir, "shuffle_2_0.data"));
    cr_assert(!exists(dir, "shuffle_199_0.index"));
    tu_rmdir(dir);
}

Test(cleaner, wait_without_work_and_missing_dir, .timeout = 30)
{
    em_shuffle_cleaner *c = em_shuffle_cleaner_new("/nonexistent/ember-cleaner-test");
    em_shuffle_cleaner_wait(c);
    em_shuffle_cleaner_remove(c, 3);       /* no directory: nothing to do, no error */
    em_shuffle_cleaner_wait(c);
    em_shuffle_cleaner_free(c);
    em_shuffle_cleaner_free(NULL);
}

Test(cleaner, remove_files_matches_whole_ids, .timeout = 30)
{
    char *dir = tu_mkdtemp();
    populate(dir);
    em_shuffle_remove_files(dir, 1);
    cr_assert(!exists(dir, "shuffle_1_0.data"));
    cr_assert(exists(dir, "shuffle_10_0.data"));
    cr_assert(exists(dir, "shuffle_12_0.index"));
    cr_assert_eq(tu_count_files(dir), 10);
    tu_rmdir(dir);
}

static void write_one(const char *dir, uint32_t sid, bool sync, em_map_status *st)
{
    em_shuffle_writer_opts o = {.dir = dir, .shuffle_id = sid, .map_id = 0, .nparts = 3,
                                .kind = EM_REC_KV, .sync = sync};
    em_err err = EM_ERR_INIT;
    em_shuffle_writer *w = em_shuffle_writer_new(&o, &err);
    cr_assert(w, "%s", err.msg);
    for (int i = 0; i < 1000; i++) {
        uint8_t k[8], v[8];
        em_enc_i64(k, i % 37);
        em_enc_i64(v, i);
        em_rec r = {em_slice_make(k, 8), em_slice_make(v, 8)};
        cr_assert_eq(em_shuffle_writer_add(w, (uint32_t)(i % 3), &r, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(em_shuffle_writer_commit(w, st, &err), 0, "%s", err.msg);
    em_shuffle_writer_free(w);
}

static void file_bytes(const char *path, uint8_t **p, size_t *n)
{
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_read_file(path, p, n, &err), 0, "%s", err.msg);
}

Test(cleaner, synced_and_unsynced_commits_write_the_same_data, .timeout = 30)
{
    char *dir = tu_mkdtemp();
    em_map_status a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    write_one(dir, 1, false, &a);
    write_one(dir, 2, true, &b);
    cr_assert_eq(a.bytes_written, b.bytes_written);
    for (uint32_t p = 0; p < 3; p++)
        cr_assert_eq(a.sizes[p], b.sizes[p]);
    char pa[512], pb[512];
    uint8_t *da, *db;
    size_t na, nb;
    file_bytes(em_shuffle_data_path(dir, 1, 0, pa, sizeof pa), &da, &na);
    file_bytes(em_shuffle_data_path(dir, 2, 0, pb, sizeof pb), &db, &nb);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(da, db, na), 0);
    em_free(da);
    em_free(db);
    /* data + index each, nothing temporary left */
    cr_assert_eq(tu_count_files(dir), 4);
    em_map_status_destroy(&a);
    em_map_status_destroy(&b);
    tu_rmdir(dir);
}
