/* tests/unit/storage/test_memory.c - block ids, the memory store, LRU eviction, remove. */
#include "storage_test_util.h"

/* One 1000-byte-payload batch: 10 records of 96 bytes (+4 length each). */
#define REC_N 10
#define REC_SIZE 96
#define BLOCK_BYTES (REC_N * (4 + REC_SIZE))

static int put1(em_block_store *bs, em_block_id id, uint32_t seed, em_storage_level level)
{
    em_batch *b = make_batch(seed, REC_N, REC_SIZE);
    em_err err = EM_ERR_INIT;
    int rc = em_block_store_put_take(bs, id, &b, 1, level, &err);
    cr_assert(rc >= 0, "put: %s", err.msg);
    return rc;
}

static void expect1(em_block_store *bs, em_block_id id, uint32_t seed)
{
    em_batch **v = NULL;
    size_t n = 0;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_block_store_get(bs, id, &v, &n, &err), 1, "get: %s", err.msg);
    cr_assert_eq(n, 1);
    check_batch(v[0], seed, REC_N, REC_SIZE);
    free_batches(v, n);
}

static em_block_store *new_store(const char *dir, size_t budget)
{
    em_store_opts o = {.mem_budget = budget, .dir = dir};
    em_err err = EM_ERR_INIT;
    em_block_store *bs = em_block_store_new(&o, &err);
    cr_assert_not_null(bs, "new: %s", err.msg);
    return bs;
}

Test(storage_memory, block_id_names)
{
    char buf[48];
    em_block_id r = {EM_BLOCK_RDD, 3, 7, 9};
    em_block_id b = {EM_BLOCK_BROADCAST, 2, 5, 0};
    em_block_id in = {EM_BLOCK_INPUT, 4, 0, 0};
    em_block_id t = {EM_BLOCK_TEMP, 1, 2, 3};
    em_block_id u = {99, 4294967295u, 4294967295u, 4294967295u};
    cr_assert_str_eq(em_block_id_str(r, buf, sizeof buf), "rdd_3_7");
    cr_assert_str_eq(em_block_id_str(b, buf, sizeof buf), "broadcast_2");
    cr_assert_str_eq(em_block_id_str(in, buf, sizeof buf), "input_4_0");
    cr_assert_str_eq(em_block_id_str(t, buf, sizeof buf), "temp_1_2_3");
    cr_assert_str_eq(em_block_id_str(u, buf, sizeof buf),
                     "blk99_4294967295_4294967295_4294967295");
}

Test(storage_memory, put_get_memory_only)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 1 << 20);
    em_batch *v[3] = {make_batch(1, 5, 10), make_batch(2, 0, 0), make_batch(3, 7, 1)};
    em_batch *mine = em_batch_ref(v[0]);
    em_err err = EM_ERR_INIT;

    cr_assert_eq(em_block_store_put_take(bs, rdd_id(1, 0), v, 3, EM_STORAGE_MEMORY_ONLY,
                                         &err), 0, "%s", err.msg);
    em_batch **out = NULL;
    size_t n = 0;
    cr_assert_eq(em_block_store_get(bs, rdd_id(1, 0), &out, &n, &err), 1, "%s", err.msg);
    cr_assert_eq(n, 3);
    check_batch(out[0], 1, 5, 10);
    check_batch(out[1], 2, 0, 0);
    check_batch(out[2], 3, 7, 1);
    cr_assert_eq(out[0], mine, "memory store hands out the same batch, not a copy");
    free_batches(out, n);
    em_batch_unref(mine);

    cr_assert(em_block_store_contains(bs, rdd_id(1, 0)));
    cr_assert_not(em_block_store_contains(bs, rdd_id(1, 1)));
    out = (em_batch **)&n;   /* must be reset on a miss */
    cr_assert_eq(em_block_store_get(bs, rdd_id(1, 1), &out, &n, &err), 0);
    cr_assert_null(out);
    cr_assert_eq(n, 0);

    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.mem_bytes, 5 * 14 + 0 + 7 * 5);
    cr_assert_eq(st.nblocks_mem, 1);
    cr_assert_eq(st.nblocks_disk, 0);
    cr_assert_eq(st.disk_bytes, 0);
    cr_assert_eq(st.evictions, 0);
    cr_assert_eq(count_files(dir), 1, "only blocks/ in the directory");
    em_block_store_free(bs);
    cr_assert_eq(count_files(dir), 0, "free removes blocks/");
    rm_scratch(dir);
}

Test(storage_memory, empty_block_and_replace)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 1 << 20);
    em_err err = EM_ERR_INIT;
    em_batch **out = NULL;
    size_t n = 7;

    cr_assert_eq(em_block_store_put_take(bs, rdd_id(2, 0), NULL, 0, EM_STORAGE_MEMORY_ONLY,
                                         &err), 0, "%s", err.msg);
    cr_assert_eq(em_block_store_get(bs, rdd_id(2, 0), &out, &n, &err), 1, "%s", err.msg);
    cr_assert_eq(n, 0);
    cr_assert_not_null(out);
    free_batches(out, n);

    put1(bs, rdd_id(2, 0), 5, EM_STORAGE_MEMORY_ONLY);   /* replaces the empty block */
    expect1(bs, rdd_id(2, 0), 5);
    put1(bs, rdd_id(2, 0), 6, EM_STORAGE_MEMORY_ONLY);
    expect1(bs, rdd_id(2, 0), 6);
    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_mem, 1);
    cr_assert_eq(st.mem_bytes, BLOCK_BYTES);
    em_block_store_free(bs);
    rm_scratch(dir);
}

Test(storage_memory, invalid_level_takes_batches)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 1 << 20);
    em_batch *b = make_batch(1, 1, 1);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_block_store_put_take(bs, rdd_id(1, 0), &b, 1, EM_STORAGE_NONE, &err),
                 EM_EINVAL);
    cr_assert(strstr(err.msg, "rdd_1_0") != NULL, "%s", err.msg);
    cr_assert_not(em_block_store_contains(bs, rdd_id(1, 0)));
    em_block_store_free(bs);   /* b was taken: LeakSanitizer would report it otherwise */
    rm_scratch(dir);
}

/* Budget of three blocks: the access pattern, not the insertion order, picks the victim. */
Test(storage_memory, lru_victim_follows_access)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 3 * BLOCK_BYTES);
    em_block_id A = rdd_id(1, 0), B = rdd_id(1, 1), C = rdd_id(1, 2), D = rdd_id(1, 3),
                E = rdd_id(1, 4);

    put1(bs, A, 10, EM_STORAGE_MEMORY_ONLY);
    put1(bs, B, 11, EM_STORAGE_MEMORY_ONLY);
    put1(bs, C, 12, EM_STORAGE_MEMORY_ONLY);
    expect1(bs, A, 10);                      /* order now: A C B (B least recent) */
    put1(bs, D, 13, EM_STORAGE_MEMORY_ONLY); /* evicts B */
    cr_assert(em_block_store_contains(bs, A));
    cr_assert_not(em_block_store_contains(bs, B), "B was least recently used");
    cr_assert(em_block_store_contains(bs, C));
    cr_assert(em_block_store_contains(bs, D));
    expect1(bs, C, 12);                      /* order: C D A */
    put1(bs, E, 14, EM_STORAGE_MEMORY_ONLY); /* evicts A */
    cr_assert_not(em_block_store_contains(bs, A), "A was least recently used");
    cr_assert(em_block_store_contains(bs, C));
    cr_assert(em_block_store_contains(bs, D));
    cr_assert(em_block_store_contains(bs, E));
    expect1(bs, E, 14);

    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.evictions, 2);
    cr_assert_eq(st.nblocks_mem, 3);
    cr_assert_eq(st.mem_bytes, 3 * BLOCK_BYTES);
    cr_assert_eq(st.nblocks_disk, 0);
    cr_assert_eq(st.disk_writes, 0);
    cr_assert_eq(count_files(em_block_store_dir(bs)), 1);
    em_block_store_free(bs);
    rm_scratch(dir);
}

/* A bigger block evicts as many LRU blocks as it needs, and only those. */
Test(storage_memory, evicts_several_for_a_big_block)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 4 * BLOCK_BYTES);
    for (uint32_t i = 0; i < 4; i++)
        put1(bs, rdd_id(1, i), i, EM_STORAGE_MEMORY_ONLY);
    em_batch *big[2] = {make_batch(50, REC_N, REC_SIZE), make_batch(51, REC_N, REC_SIZE)};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_block_store_put_take(bs, rdd_id(2, 0), big, 2, EM_STORAGE_MEMORY_ONLY,
                                         &err), 0, "%s", err.msg);
    cr_assert_not(em_block_store_contains(bs, rdd_id(1, 0)));
    cr_assert_not(em_block_store_contains(bs, rdd_id(1, 1)));
    cr_assert(em_block_store_contains(bs, rdd_id(1, 2)));
    cr_assert(em_block_store_contains(bs, rdd_id(1, 3)));
    cr_assert(em_block_store_contains(bs, rdd_id(2, 0)));
    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.evictions, 2);
    cr_assert_eq(st.mem_bytes, 4 * BLOCK_BYTES);
    em_block_store_free(bs);
    rm_scratch(dir);
}

Test(storage_memory, memory_only_larger_than_budget_not_stored)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 2 * BLOCK_BYTES);
    put1(bs, rdd_id(1, 0), 1, EM_STORAGE_MEMORY_ONLY);
    put1(bs, rdd_id(1, 1), 2, EM_STORAGE_MEMORY_ONLY);

    em_batch *big[3] = {make_batch(7, REC_N, REC_SIZE), make_batch(8, REC_N, REC_SIZE),
                        make_batch(9, REC_N, REC_SIZE)};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_block_store_put_take(bs, rdd_id(9, 0), big, 3, EM_STORAGE_MEMORY_ONLY,
                                         &err), 0, "not stored is not an error: %s", err.msg);
    cr_assert_not(em_block_store_contains(bs, rdd_id(9, 0)));
    em_batch **out = NULL;
    size_t n = 0;
    cr_assert_eq(em_block_store_get(bs, rdd_id(9, 0), &out, &n, &err), 0);
    /* Nothing was evicted for a block that could never fit. */
    expect1(bs, rdd_id(1, 0), 1);
    expect1(bs, rdd_id(1, 1), 2);
    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.evictions, 0);
    cr_assert_eq(st.nblocks_mem, 2);
    cr_assert_eq(st.mem_bytes, 2 * BLOCK_BYTES);
    cr_assert_eq(st.nblocks_disk, 0);
    cr_assert_eq(count_files(em_block_store_dir(bs)), 1);
    em_block_store_free(bs);
    rm_scratch(dir);
}

Test(storage_memory, remove_and_remove_all)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 3 * BLOCK_BYTES);
    char blocks[512];
    snprintf(blocks, sizeof blocks, "%s/blocks", dir);

    /* rdd 1: partitions 0..5, a mix of memory, spilled and disk-only blocks. */
    for (uint32_t p = 0; p < 6; p++)
        put1(bs, rdd_id(1, p), p, p == 5 ? EM_STORAGE_DISK_ONLY : EM_STORAGE_MEMORY_AND_DISK);
    put1(bs, rdd_id(2, 0), 20, EM_STORAGE_DISK_ONLY);
    em_block_id bc = {EM_BLOCK_BROADCAST, 1, 0, 0};
    put1(bs, bc, 30, EM_STORAGE_MEMORY_ONLY);
    em_block_id other = {EM_BLOCK_INPUT, 1, 0, 0};   /* same a, other type */
    put1(bs, other, 31, EM_STORAGE_DISK_ONLY);

    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_gt(st.nblocks_disk, 2, "some of rdd 1 spilled");
    cr_assert_eq(count_files(blocks), (int)st.nblocks_disk);

    em_block_store_remove_all(bs, EM_BLOCK_RDD, 1);
    for (uint32_t p = 0; p < 6; p++)
        cr_assert_not(em_block_store_contains(bs, rdd_id(1, p)), "partition %u", p);
    expect1(bs, rdd_id(2, 0), 20);
    expect1(bs, bc, 30);
    expect1(bs, other, 31);
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_disk, 2);
    cr_assert_eq(count_files(blocks), 2, "rdd 1 files removed");

    em_block_store_remove(bs, rdd_id(2, 0));
    em_block_store_remove(bs, rdd_id(2, 0));   /* absent: no-op */
    em_block_store_remove(bs, rdd_id(77, 0));
    em_block_store_remove(bs, bc);
    cr_assert_not(em_block_store_contains(bs, rdd_id(2, 0)));
    cr_assert_not(em_block_store_contains(bs, bc));
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_disk, 1);
    cr_assert_eq(st.nblocks_mem, 0);
    cr_assert_eq(st.mem_bytes, 0);
    cr_assert_eq(count_files(blocks), 1);
    em_block_store_free(bs);
    rm_scratch(dir);
}

/* Many blocks: the map grows and remove_all still finds every partition. */
Test(storage_memory, many_blocks_remove_all)
{
    char *dir = scratch_dir();
    em_block_store *bs = new_store(dir, 1 << 20);
    for (uint32_t p = 0; p < 400; p++) {
        em_batch *b = make_batch(p, 1, 4);
        cr_assert_eq(em_block_store_put_take(bs, rdd_id(p % 2, p), &b, 1,
                                             EM_STORAGE_MEMORY_ONLY, NULL), 0);
    }
    em_block_store_remove_all(bs, EM_BLOCK_RDD, 0);
    for (uint32_t p = 0; p < 400; p++)
        cr_assert_eq(em_block_store_contains(bs, rdd_id(p % 2, p)), p % 2 == 1, "p=%u", p);
    em_store_stats st;
    em_block_store_stats(bs, &st);
    cr_assert_eq(st.nblocks_mem, 200);
    cr_assert_eq(st.mem_bytes, 200 * 8);
    em_block_store_free(bs);
    rm_scratch(dir);
}

Test(storage_memory, default_dir_under_tmpdir)
{
    char *tmp = scratch_dir();
    setenv("TMPDIR", tmp, 1);
    em_err err = EM_ERR_INIT;
    em_block_store *bs = em_block_store_new(NULL, &err);
    cr_assert_not_null(bs, "%s", err.msg);
    const char *d = em_block_store_dir(bs);
    cr_assert_eq(strncmp(d, tmp, strlen(tmp)), 0, "%s under %s", d, tmp);
    cr_assert(strstr(d, "/ember-") != NULL, "%s", d);
    put1(bs, rdd_id(1, 0), 1, EM_STORAGE_DISK_ONLY);
    cr_assert_eq(count_files(tmp), 1);
    em_block_store_free(bs);
    cr_assert_eq(count_files(tmp), 0, "a directory the store created is removed");
    rm_scratch(tmp);
}
