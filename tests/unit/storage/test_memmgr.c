/* tests/unit/storage/test_memmgr.c - the unified memory manager with a block store:
 * storage borrows what execution does not use, execution evicts cached blocks (LRU order,
 * MEMORY_AND_DISK spilled, MEMORY_ONLY dropped) but never below the storage floor, cached
 * blocks never push out execution memory, release gives memory back. */
#include "storage_test_util.h"

#define REC_N 10
#define REC_SIZE 96
#define BLOCK (REC_N * (4 + REC_SIZE))   /* 1000 payload bytes per block */

static void put(em_block_store *bs, uint32_t part, em_storage_level level)
{
    em_batch *b = make_batch(part, REC_N, REC_SIZE);
    em_err err = EM_ERR_INIT;
    cr_assert_geq(em_block_store_put_take(bs, rdd_id(1, part), &b, 1, level, &err), 0,
                  "put %u: %s", part, err.msg);
}

static bool in_mem(em_block_store *bs, uint32_t part, uint64_t *nmem)
{
    em_store_stats st;
    em_block_store_stats(bs, &st);
    *nmem = st.nblocks_mem;
    return em_block_store_contains(bs, rdd_id(1, part));
}

typedef struct fixture {
    char *dir;
    em_memory_manager *mm;
    em_block_store *bs;
} fixture;

/* total bytes, floor = total * frac */
static fixture make(size_t total, double frac)
{
    fixture f = {scratch_dir(), em_memory_manager_new(total, frac), NULL};
    cr_assert_not_null(f.mm);
    em_store_opts o = {.mem_budget = 1, .dir = f.dir, .mm = f.mm};   /* mem_budget ignored */
    em_err err = EM_ERR_INIT;
    f.bs = em_block_store_new(&o, &err);
    cr_assert_not_null(f.bs, "%s", err.msg);
    return f;
}

static void destroy(fixture *f)
{
    em_block_store_free(f->bs);
    em_memory_stats st;
    em_memory_stats_get(f->mm, &st);
    cr_assert_eq(st.storage_used, 0, "store freed: storage released");
    em_memory_manager_free(f->mm);
    rm_scratch(f->dir);
}

Test(memmgr, storage_uses_what_execution_does_not, .timeout = 20)
{
    fixture f = make(10 * BLOCK, 0.5);
    em_memory_stats st;
    /* Storage may take all 10 blocks (beyond its floor of 5) while execution is idle. */
    for (uint32_t i = 0; i < 10; i++)
        put(f.bs, i, EM_STORAGE_MEMORY_ONLY);
    em_memory_stats_get(f.mm, &st);
    cr_assert_eq(st.storage_used, 10 * BLOCK);
    cr_assert_eq(st.storage_floor, 5 * BLOCK);
    cr_assert_eq(em_memory_storage_limit(f.mm), 10 * BLOCK);
    /* An 11th block evicts the LRU one (block 0) from storage itself. */
    put(f.bs, 10, EM_STORAGE_MEMORY_ONLY);
    uint64_t nmem;
    cr_assert(!in_mem(f.bs, 0, &nmem));
    cr_assert_eq(nmem, 10);
    destroy(&f);
}

Test(memmgr, execution_evicts_lru_down_to_the_floor, .timeout = 20)
{
    fixture f = make(10 * BLOCK, 0.4);   /* floor: 4 blocks */
    for (uint32_t i = 0; i < 10; i++)
        put(f.bs, i, i % 2 ? EM_STORAGE_MEMORY_AND_DISK : EM_STORAGE_MEMORY_ONLY);
    /* touch 0 and 1: now the LRU order (oldest first) is 2..9, 0, 1 */
    em_batch **v;
    size_t n;
    em_err err = EM_ERR_INIT;
    for (uint32_t i = 0; i < 2; i++) {
        cr_assert_eq(em_block_store_get(f.bs, rdd_id(1, i), &v, &n, &err), 1);
        free_batches(v, n);
    }
    /* 3 blocks' worth: evicts 2, 3, 4 (3 spilled as MEMORY_AND_DISK, 2 and 4 dropped). */
    size_t g = em_memory_acquire_execution(f.mm, 3 * BLOCK);
    cr_assert_eq(g, 3 * BLOCK);
    uint64_t nmem;
    for (uint32_t i = 2; i <= 4; i++)
        cr_assert(!in_mem(f.bs, i, &nmem) || i == 3, "block %u evicted", i);
    cr_assert_eq(nmem, 7);
    cr_assert(em_block_store_contains(f.bs, rdd_id(1, 3)), "MEMORY_AND_DISK went to disk");
    em_store_stats ss;
    em_block_store_stats(f.bs, &ss);
    cr_assert_eq(ss.nblocks_disk, 1);
    cr_assert_eq(ss.mem_bytes, 7 * BLOCK);
    /* Asking for 10 more: only down to the floor (4 blocks) can be evicted -> 3 granted. */
    g = em_memory_acquire_execution(f.mm, 10 * BLOCK);
    cr_assert_eq(g, 3 * BLOCK, "granted %zu", g);
    em_memory_stats st;
    em_memory_stats_get(f.mm, &st);
    cr_assert_eq(st.storage_used, 4 * BLOCK, "the floor is protected");
    cr_assert_eq(st.execution_used, 6 * BLOCK);
    cr_assert_eq(st.storage_evicted_bytes, 6 * BLOCK);
    /* The survivors are the most recently used: 8, 9, 0, 1. */
    for (uint32_t i = 0; i < 10; i++)
        if (i % 2 == 0 || i == 1 || i == 9)
            cr_assert_eq(em_block_store_contains(f.bs, rdd_id(1, i)),
                         i == 0 || i == 1 || i == 8 || i == 9, "block %u", i);
    /* Nothing evictable is left: a further request gets only free memory (none). */
    cr_assert_eq(em_memory_acquire_execution(f.mm, BLOCK), 0);
    em_memory_release_execution(f.mm, 6 * BLOCK);
    em_memory_stats_get(f.mm, &st);
    cr_assert_eq(st.execution_used, 0);
    destroy(&f);
}

Test(memmgr, storage_never_evicts_execution, .timeout = 20)
{
    fixture f = make(10 * BLOCK, 0.5);
    /* Execution holds 8 blocks' worth with storage empty (it may exceed its half). */
    cr_assert_eq(em_memory_acquire_execution(f.mm, 8 * BLOCK), 8 * BLOCK);
    cr_assert_eq(em_memory_storage_limit(f.mm), 2 * BLOCK);
    put(f.bs, 0, EM_STORAGE_MEMORY_ONLY);
    put(f.bs, 1, EM_STORAGE_MEMORY_ONLY);
    /* A third block must evict block 0 (LRU), not execution memory. */
    put(f.bs, 2, EM_STORAGE_MEMORY_ONLY);
    uint64_t nmem;
    cr_assert(!in_mem(f.bs, 0, &nmem));
    cr_assert_eq(nmem, 2);
    em_memory_stats st;
    em_memory_stats_get(f.mm, &st);
    cr_assert_eq(st.execution_used, 8 * BLOCK);
    cr_assert_eq(st.storage_used, 2 * BLOCK);
    /* A MEMORY_AND_DISK block that does not fit goes to disk; MEMORY_ONLY is not stored. */
    em_memory_release_execution(f.mm, 0);
    cr_assert_eq(em_memory_acquire_execution(f.mm, 2 * BLOCK), 0,
                 "storage at 2 blocks, below its floor: nothing for execution");
    em_memory_release_execution(f.mm, 8 * BLOCK);
    cr_assert_eq(em_memory_storage_limit(f.mm), 10 * BLOCK);
    /* With execution gone storage can grow again. */
    for (uint32_t i = 3; i < 11; i++)
        put(f.bs, i, EM_STORAGE_MEMORY_ONLY);
    em_memory_stats_get(f.mm, &st);
    cr_assert_eq(st.storage_used, 10 * BLOCK);
    destroy(&f);
}

Test(memmgr, defaults_and_clamping)
{
    em_memory_manager *mm = em_memory_manager_new(0, 7.0);
    em_memory_stats st;
    em_memory_stats_get(mm, &st);
    cr_assert_eq(st.total, (size_t)256 << 20);
    cr_assert_eq(st.storage_floor, st.total);
    cr_assert_eq(em_memory_acquire_execution(mm, 100), 100);
    em_memory_release_execution(mm, 1000);   /* over-release clamps at 0 */
    em_memory_stats_get(mm, &st);
    cr_assert_eq(st.execution_used, 0);
    em_memory_manager_free(mm);
    em_memory_manager_free(NULL);
}

/* An executor learns the driver's fraction after making its manager: the floor moves,
 * clamped as at creation, and eviction honours the new floor. */
Test(memmgr, storage_fraction_can_change, .timeout = 20)
{
    em_memory_manager *mm = em_memory_manager_new(1000, 0.5);
    em_memory_stats st;
    em_memory_manager_set_storage_fraction(mm, 0.25);
    em_memory_stats_get(mm, &st);
    cr_assert_eq(st.storage_floor, 250);
    em_memory_manager_set_storage_fraction(mm, -3);
    em_memory_stats_get(mm, &st);
    cr_assert_eq(st.storage_floor, 0);
    em_memory_manager_set_storage_fraction(mm, 2);
    em_memory_stats_get(mm, &st);
    cr_assert_eq(st.storage_floor, 1000);
    em_memory_manager_free(mm);

    fixture f = make(10 * BLOCK, 0.5);
    em_memory_manager_set_storage_fraction(f.mm, 0.2);   /* floor: 2 blocks, not 5 */
    for (uint32_t i = 0; i < 10; i++)
        put(f.bs, i, EM_STORAGE_MEMORY_AND_DISK);
    cr_assert_eq(em_memory_acquire_execution(f.mm, 10 * BLOCK), 8 * BLOCK,
                 "eviction stops at the new floor of 2 blocks");
    em_memory_release_execution(f.mm, 8 * BLOCK);
    destroy(&f);
}
