/* tests/unit/storage/test_disk.c - spilling, DISK_ONLY, corrupt and unwritable files, OOM. */
#include <fcntl.h>

#include "storage_test_util.h"

#define REC_N 10
#define REC_SIZE 96
#define BLOCK_BYTES (REC_N * (4 + REC_SIZE))

static em_block_store *new_store(const char *dir, size_t budget)
{
    em_store_opts o = {.mem_budget = budget, .dir = dir, .zstd_level = 3};
    em_err err = EM_ERR_INIT;
    em_block_store *bs = em_block_store_new(&o, &err);
    cr_assert_not_null(bs, "new: %s", err.msg);
    return bs;
}

/* A block of two batches (seed, seed + 1000); returns put's rc. */
static int put2(em_block_store *bs, em_block_id id, uint32_t seed, em_storage_level level,
                em_err *err)
{
    em_batch *v[2] = {make_batch(seed, REC_N, REC_SIZE), make_batch(seed + 1000, 3, 17)};
    return em_block_store_put_take(bs, id, v, 2, level, err);
}

#define BLOCK2_BYTES (BLOCK_BYTES + 3 * (4 + 17))

static void expect2(em_block_store *bs, em_block_id id, uint32_t seed)
{
    em_batch **v = NULL;
    size_t n = 0;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_block_store_get(bs, id, &v, &n, &err), 1, "get: %s", err.msg);
    cr_assert_eq(n, 2);
    check_batch(v[0], seed, REC_N, REC_SIZE);
    check_batch(v[1], seed + 1000, 3, 17);
    free_batches(v, n);
}

static off_t file_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s", path);
    return st.st_size;
}

Test(storage_disk, memory_and_disk_spills_and_reads_back)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 2 * BLOCK2_BYTES);
    em_block_id A = rdd_id(1, 0), B = rdd_id(1, 1), C = rdd_id(1, 2);
    em_err err = EM_ERR_INIT;
    char path[512];

    cr_assert_eq(put2(bs, A, 1, EM_STORAGE_MEMORY_AND_DISK, &err), 0, "%s", err.msg);
    cr_assert_eq(put2(bs, B, 2, EM_STORAGE_MEMORY_AND_DISK, &err), 0, "%s", err.msg);
    cr_assert_eq(put2(bs, C, 3, EM_STORAGE_MEMORY_AND_DISK, &err), 0, "%s", err.msg);

    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.evictions, 1);
    cr_assert_eq(st.disk_writes, 1);
    cr_assert_eq(st.nblocks_disk, 1);
    cr_assert_eq(st.nblocks_mem, 2);
    cr_assert_eq(st.mem_bytes, 2 * BLOCK2_BYTES);
    block_file(bs, A, path, sizeof path);
    cr_assert_eq((off_t)st.disk_bytes, file_size(path), "A was the victim");
    char blocks[512];
    snprintf(blocks, sizeof blocks, "%s/blocks", dir);
    cr_assert_eq(count_files(blocks), 1);

    expect2(bs, A, 1);   /* from disk; memory is full, so it is not re-cached */
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_mem, 2);
    cr_assert(em_block_store_contains(bs, B));
    cr_assert(em_block_store_contains(bs, C));

    em_block_store_remove(bs, B);
    expect2(bs, A, 1);   /* now it fits: re-cached, and its file kept */
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_mem, 2);
    cr_assert_eq(st.mem_bytes, 2 * BLOCK2_BYTES);
    cr_assert_eq(st.nblocks_disk, 1);
    cr_assert(path_exists(path));

    /* A is now in memory and on disk: evicting it again writes nothing. */
    expect2(bs, C, 3);   /* LRU order: C A */
    cr_assert_eq(put2(bs, B, 4, EM_STORAGE_MEMORY_AND_DISK, &err), 0, "%s", err.msg);
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.evictions, 2);
    cr_assert_eq(st.disk_writes, 1, "A already had its file");
    expect2(bs, A, 1);
    expect2(bs, B, 4);
    expect2(bs, C, 3);
    em_block_store_free(bs);
    rm_scratch(dir);
}

Test(storage_disk, memory_and_disk_too_big_goes_to_disk)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, BLOCK_BYTES);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(put2(bs, rdd_id(1, 0), 5, EM_STORAGE_MEMORY_AND_DISK, &err), 0, "%s",
                 err.msg);
    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_mem, 0);
    cr_assert_eq(st.nblocks_disk, 1);
    cr_assert_eq(st.evictions, 0);
    expect2(bs, rdd_id(1, 0), 5);
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_mem, 0, "still does not fit");
    em_block_store_free(bs);
    rm_scratch(dir);
}

Test(storage_disk, disk_only_never_in_memory)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 1 << 20);
    em_block_id A = rdd_id(4, 2);
    em_err err = EM_ERR_INIT;
    char path[512];

    cr_assert_eq(put2(bs, A, 9, EM_STORAGE_DISK_ONLY, &err), 0, "%s", err.msg);
    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.mem_bytes, 0);
    cr_assert_eq(st.nblocks_mem, 0);
    cr_assert_eq(st.nblocks_disk, 1);
    cr_assert_eq(st.disk_writes, 1);
    block_file(bs, A, path, sizeof path);
    cr_assert(strstr(path, "/blocks/rdd_4_2.blk") != NULL, "%s", path);
    cr_assert_eq((off_t)st.disk_bytes, file_size(path));
    cr_assert_lt(st.disk_bytes, BLOCK2_BYTES, "zstd compresses the repetitive payload");

    /* The file is two engine/data blocks back to back. */
    uint8_t *data;
    size_t len, first;
    cr_assert_eq(em_read_file(path, &data, &len, &err), 0, "%s", err.msg);
    cr_assert_eq(em_block_peek_size(data, len, &first, &err), 0, "%s", err.msg);
    cr_assert_lt(first, len);
    em_batch *b0;
    cr_assert_eq(em_block_decode(data, first, &b0, &err), 0, "%s", err.msg);
    check_batch(b0, 9, REC_N, REC_SIZE);
    em_batch_unref(b0);
    em_free(data);

    for (int i = 0; i < 3; i++)
        expect2(bs, A, 9);
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_mem, 0, "reads do not cache DISK_ONLY blocks");
    cr_assert_eq(st.mem_bytes, 0);

    /* Replacing it with a memory block removes the file. */
    cr_assert_eq(put2(bs, A, 10, EM_STORAGE_MEMORY_ONLY, &err), 0, "%s", err.msg);
    cr_assert_not(path_exists(path));
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_disk, 0);
    cr_assert_eq(st.disk_bytes, 0);
    expect2(bs, A, 10);
    em_block_store_free(bs);
    rm_scratch(dir);
}

/* Damages A's file with `damage`, then checks get fails naming the file and drops A. */
static void corrupt_case(void (*damage)(const char *path), int want)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 1 << 20);
    em_block_id A = rdd_id(3, 1);
    em_err err = EM_ERR_INIT;
    char path[512];

    cr_assert_eq(put2(bs, A, 1, EM_STORAGE_DISK_ONLY, &err), 0, "%s", err.msg);
    cr_assert_eq(put2(bs, rdd_id(3, 2), 2, EM_STORAGE_DISK_ONLY, &err), 0, "%s", err.msg);
    block_file(bs, A, path, sizeof path);
    damage(path);

    em_batch **out = NULL;
    size_t n = 0;
    int rc = em_block_store_get(bs, A, &out, &n, &err);
    cr_assert_eq(rc, want, "rc %d (%s): %s", rc, em_errname(rc), err.msg);
    cr_assert_eq(err.code, want);
    cr_assert(strstr(err.msg, path) != NULL, "message names the file: %s", err.msg);
    cr_assert_null(out);
    cr_assert_not(em_block_store_contains(bs, A), "a corrupt block is dropped");
    cr_assert_not(path_exists(path), "and its file removed");
    cr_assert_eq(em_block_store_get(bs, A, &out, &n, &err), 0, "absent afterwards");
    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_disk, 1);
    expect2(bs, rdd_id(3, 2), 2);   /* the other block is untouched */
    em_block_store_free(bs);
    rm_scratch(dir);
}

static void flip_byte_at(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    uint8_t c;
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, &c, 1, off), 1);
    c ^= 0x40;
    cr_assert_eq(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void flip_payload(const char *path)
{
    flip_byte_at(path, EM_BLOCK_HEADER_SIZE + 3);
}

static void flip_header(const char *path)
{
    flip_byte_at(path, 12);   /* nrecs */
}

static void flip_last(const char *path)
{
    flip_byte_at(path, file_size(path) - 1);
}

static void drop_second_block(const char *path)
{
    uint8_t *data;
    size_t len, first;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_read_file(path, &data, &len, &err), 0);
    cr_assert_eq(em_block_peek_size(data, len, &first, &err), 0);
    cr_assert_eq(truncate(path, (off_t)first), 0);   /* a valid file of one block */
    em_free(data);
}

static void append_garbage(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_eq(write(fd, "xyz", 3), 3);
    close(fd);
}

static void delete_file(const char *path)
{
    cr_assert_eq(unlink(path), 0);
}

Test(storage_disk, corrupt_payload_byte) { corrupt_case(flip_payload, EM_ECORRUPT); }
Test(storage_disk, corrupt_header_byte) { corrupt_case(flip_header, EM_ECORRUPT); }
Test(storage_disk, corrupt_last_byte) { corrupt_case(flip_last, EM_ECORRUPT); }
Test(storage_disk, truncated_at_block_boundary) { corrupt_case(drop_second_block, EM_ECORRUPT); }
Test(storage_disk, trailing_garbage) { corrupt_case(append_garbage, EM_ECORRUPT); }
Test(storage_disk, missing_file) { corrupt_case(delete_file, EM_ENOTFOUND); }

/* Makes <dir>/blocks unusable: chmod 0500, or (as root, where chmod does not stop writes)
 * replaces it by a regular file so creating a file under it fails with ENOTDIR. */
static void break_blocks_dir(const char *dir)
{
    char blocks[512];
    snprintf(blocks, sizeof blocks, "%s/blocks", dir);
    if (geteuid() != 0) {
        cr_assert_eq(chmod(blocks, 0500), 0);
        return;
    }
    cr_assert_eq(rmdir(blocks), 0, "blocks/ is empty");
    int fd = open(blocks, O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
}

static void fix_blocks_dir(const char *dir)
{
    char blocks[512];
    snprintf(blocks, sizeof blocks, "%s/blocks", dir);
    if (geteuid() != 0) {
        cr_assert_eq(count_files(blocks), 0, "no partial file left");
        cr_assert_eq(chmod(blocks, 0700), 0);
        return;
    }
    struct stat st;
    cr_assert_eq(stat(blocks, &st), 0);
    cr_assert(S_ISREG(st.st_mode) && st.st_size == 0, "nothing written through it");
    cr_assert_eq(unlink(blocks), 0);
    cr_assert_eq(mkdir(blocks, 0700), 0);
}

Test(storage_disk, unwritable_dir_errors_and_leaves_nothing)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 2 * BLOCK2_BYTES);
    em_err err = EM_ERR_INIT;

    /* Two spillable blocks, then the directory breaks. */
    cr_assert_eq(put2(bs, rdd_id(1, 0), 1, EM_STORAGE_MEMORY_AND_DISK, &err), 0);
    cr_assert_eq(put2(bs, rdd_id(1, 1), 2, EM_STORAGE_MEMORY_AND_DISK, &err), 0);
    break_blocks_dir(dir);

    int rc = put2(bs, rdd_id(2, 0), 3, EM_STORAGE_DISK_ONLY, &err);
    cr_assert_lt(rc, 0);
    cr_assert_eq(rc, err.code);
    cr_assert(strstr(err.msg, "/blocks/rdd_2_0.blk") != NULL, "names the path: %s", err.msg);
    cr_assert_not(em_block_store_contains(bs, rdd_id(2, 0)));

    /* Too big for memory: must go to disk, and fails the same way. */
    em_batch *v[3] = {make_batch(1, REC_N, REC_SIZE), make_batch(2, REC_N, REC_SIZE),
                      make_batch(3, REC_N, REC_SIZE)};
    rc = em_block_store_put_take(bs, rdd_id(2, 1), v, 3, EM_STORAGE_MEMORY_AND_DISK, &err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err.msg, "rdd_2_1.blk") != NULL, "%s", err.msg);
    cr_assert_not(em_block_store_contains(bs, rdd_id(2, 1)));

    /* A failed spill drops the victim (the reader recomputes); the put itself succeeds. */
    err = (em_err)EM_ERR_INIT;
    cr_assert_eq(put2(bs, rdd_id(1, 2), 4, EM_STORAGE_MEMORY_AND_DISK, &err), 0, "%s",
                 err.msg);
    cr_assert_not(em_block_store_contains(bs, rdd_id(1, 0)), "victim dropped");
    expect2(bs, rdd_id(1, 1), 2);
    expect2(bs, rdd_id(1, 2), 4);
    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_disk, 0);
    cr_assert_eq(st.disk_bytes, 0);
    cr_assert_eq(st.disk_writes, 0);
    fix_blocks_dir(dir);

    /* Once repaired the store works again. */
    cr_assert_eq(put2(bs, rdd_id(2, 0), 3, EM_STORAGE_DISK_ONLY, &err), 0, "%s", err.msg);
    expect2(bs, rdd_id(2, 0), 3);
    em_block_store_free(bs);
    rm_scratch(dir);
}

Test(storage_disk, new_fails_on_bad_dir)
{
    char *dir = scratch_dir();
    char file[512], bad[600];
    snprintf(file, sizeof file, "%s/plain", dir);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    snprintf(bad, sizeof bad, "%s/sub", file);
    em_store_opts o = {.dir = bad};
    em_err err = EM_ERR_INIT;
    cr_assert_null(em_block_store_new(&o, &err));
    cr_assert_lt(err.code, 0);
    cr_assert(strstr(err.msg, file) != NULL, "names the path: %s", err.msg);
    cr_assert_eq(count_files(dir), 1);
    rm_scratch(dir);
}

/* OOM loop over put (memory, disk, spill paths) and get-from-disk: every failure is a clean
 * EM_ENOMEM, the store stays consistent, and LeakSanitizer sees no leak at exit. */
static void oom_loop(em_storage_level level, size_t budget, bool spill)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, budget);
    em_err err = EM_ERR_INIT;
    int n;

    if (spill)
        cr_assert_eq(put2(bs, rdd_id(1, 0), 1, EM_STORAGE_MEMORY_AND_DISK, &err), 0);
    for (n = 0;; n++) {
        em_batch *v[2] = {make_batch(7, REC_N, REC_SIZE), make_batch(1007, 3, 17)};
        em_err e2 = EM_ERR_INIT;
        em_test_fail_alloc_after(n);
        int rc = em_block_store_put_take(bs, rdd_id(2, 0), v, 2, level, &e2);
        em_test_alloc_reset();
        if (rc == 0)
            break;
        cr_assert_eq(rc, EM_ENOMEM, "allocation %d: rc=%d %s", n, rc, e2.msg);
        cr_assert_eq(e2.code, EM_ENOMEM);
        cr_assert_not(em_block_store_contains(bs, rdd_id(2, 0)), "allocation %d", n);
        cr_assert_lt(n, 10000);
    }
    expect2(bs, rdd_id(2, 0), 7);
    /* A spill that ran out of memory drops its victim (the put still succeeds); a victim
     * that is still there must be intact. */
    if (spill && em_block_store_contains(bs, rdd_id(1, 0)))
        expect2(bs, rdd_id(1, 0), 1);

    for (n = 0;; n++) {
        em_batch **out = NULL;
        size_t nout = 0;
        em_err e2 = EM_ERR_INIT;
        em_test_fail_alloc_after(n);
        int rc = em_block_store_get(bs, rdd_id(2, 0), &out, &nout, &e2);
        em_test_alloc_reset();
        if (rc == 1) {
            cr_assert_eq(nout, 2);
            check_batch(out[0], 7, REC_N, REC_SIZE);
            free_batches(out, nout);
            break;
        }
        cr_assert_eq(rc, EM_ENOMEM, "get allocation %d: rc=%d %s", n, rc, e2.msg);
        cr_assert(em_block_store_contains(bs, rdd_id(2, 0)), "OOM does not drop a block");
        cr_assert_lt(n, 10000);
    }
    em_block_store_free(bs);
    rm_scratch(dir);
}

Test(storage_disk, oom_put_memory_only, .timeout = 60)
{
    oom_loop(EM_STORAGE_MEMORY_ONLY, 1 << 20, false);
}

Test(storage_disk, oom_put_disk_only, .timeout = 60)
{
    oom_loop(EM_STORAGE_DISK_ONLY, 1 << 20, false);
}

Test(storage_disk, oom_put_with_spill, .timeout = 60)
{
    oom_loop(EM_STORAGE_MEMORY_AND_DISK, BLOCK2_BYTES, true);
}
