/* tests/unit/storage/test_concurrency.c - puts, gets and removes from several threads under
 * a small budget, so eviction, spilling and disk reads interleave. */
#include <pthread.h>
#include <stdatomic.h>

#include "storage_test_util.h"

#define NTHREADS 4
#define NBLOCKS 40
#define REC_N 8
#define REC_SIZE 60
#define BLOCK_BYTES (2 * REC_N * (4 + REC_SIZE))

typedef struct shared {
    em_block_store *bs;
    atomic_int published[NTHREADS][NBLOCKS];   /* 1 once put returned */
    atomic_int failures;
} shared;

typedef struct worker {
    shared *sh;
    uint32_t t;
} worker;

static em_storage_level level_of(uint32_t i)
{
    static const em_storage_level lv[3] = {EM_STORAGE_MEMORY_ONLY, EM_STORAGE_MEMORY_AND_DISK,
                                           EM_STORAGE_DISK_ONLY};
    return lv[i % 3];
}

static uint32_t seed_of(uint32_t t, uint32_t i)
{
    return t * 1000 + i;
}

static void fail(shared *sh, const char *what, uint32_t t, uint32_t i, const char *msg)
{
    fprintf(stderr, "%s rdd_%u_%u: %s\n", what, t, i, msg);
    atomic_fetch_add(&sh->failures, 1);
}

/* Compares without Criterion asserts (they are not meant for worker threads). */
static bool same_payload(const em_batch *b, uint32_t seed)
{
    size_t len;
    uint8_t *p = ref_payload(seed, REC_N, REC_SIZE, &len);
    bool ok = em_batch_nrecs(b) == REC_N && em_batch_nbytes(b) == len &&
              memcmp(em_batch_payload(b), p, len) == 0;
    free(p);
    return ok;
}

static int put_block(em_block_store *bs, em_block_id id, uint32_t seed, em_storage_level lv,
                     em_err *err)
{
    em_batch *v[2];
    size_t len;
    uint8_t *p;

    p = ref_payload(seed, REC_N, REC_SIZE, &len);
    v[0] = em_batch_new_copy(EM_REC_BYTES, 0, REC_N, p, len);
    free(p);
    p = ref_payload(seed + 500, REC_N, REC_SIZE, &len);
    v[1] = em_batch_new_copy(EM_REC_BYTES, 0, REC_N, p, len);
    free(p);
    if (!v[0] || !v[1]) {
        em_batch_unref(v[0]);
        em_batch_unref(v[1]);
        return em_err_set(err, EM_ENOMEM, "test: out of memory");
    }
    return em_block_store_put_take(bs, id, v, 2, lv, err);
}

/* Returns 1 if present and correct, 0 if absent, -1 on a failure. */
static int check_block(em_block_store *bs, em_block_id id, uint32_t seed, em_err *err)
{
    em_batch **v = NULL;
    size_t n = 0;
    int rc = em_block_store_get(bs, id, &v, &n, err);
    if (rc <= 0)
        return rc < 0 ? -1 : 0;
    bool ok = n == 2 && same_payload(v[0], seed) && same_payload(v[1], seed + 500);
    free_batches(v, n);
    return ok ? 1 : -1;
}

static void *run(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    em_rng rng;

    em_rng_seed(&rng, w->t + 1);
    for (uint32_t i = 0; i < NBLOCKS; i++) {
        em_err err = EM_ERR_INIT;
        if (put_block(sh->bs, rdd_id(w->t, i), seed_of(w->t, i), level_of(i), &err) < 0)
            fail(sh, "put", w->t, i, err.msg);
        atomic_store(&sh->published[w->t][i], 1);
        /* Read a few random published blocks of any thread. */
        for (int k = 0; k < 3; k++) {
            uint32_t t = (uint32_t)em_rng_below(&rng, NTHREADS);
            uint32_t j = (uint32_t)em_rng_below(&rng, NBLOCKS);
            if (!atomic_load(&sh->published[t][j]))
                continue;
            int rc = check_block(sh->bs, rdd_id(t, j), seed_of(t, j), &err);
            if (rc < 0 || (rc == 0 && level_of(j) != EM_STORAGE_MEMORY_ONLY))
                fail(sh, rc < 0 ? "get" : "lost", t, j, err.msg);
        }
    }
    /* All threads also fight over one shared block id. */
    for (int k = 0; k < 30; k++) {
        em_err err = EM_ERR_INIT;
        em_block_id hot = {EM_BLOCK_TEMP, 7, 7, 7};
        if (put_block(sh->bs, hot, 90000 + w->t, level_of((uint32_t)k + w->t), &err) < 0)
            fail(sh, "put hot", w->t, 0, err.msg);
        em_batch **v = NULL;
        size_t n = 0;
        int rc = em_block_store_get(sh->bs, hot, &v, &n, &err);
        if (rc < 0)
            fail(sh, "get hot", w->t, 0, err.msg);
        if (rc == 1) {
            bool ok = false;
            for (uint32_t s = 0; s < NTHREADS && n == 2; s++)
                ok |= same_payload(v[0], 90000 + s) && same_payload(v[1], 90500 + s);
            if (!ok)
                fail(sh, "hot block torn", w->t, 0, "");
            free_batches(v, n);
        }
        if (k % 7 == 3)
            em_block_store_remove(sh->bs, hot);
    }
    return NULL;
}

Test(storage_concurrency, four_threads_put_get_remove, .timeout = 120)
{
    char *dir = scratch_dir();
    em_store_opts o = {.mem_budget = 10 * BLOCK_BYTES, .dir = dir};
    em_err err = EM_ERR_INIT;
    static shared sh;
    worker w[NTHREADS];
    pthread_t th[NTHREADS];

    sh.bs = em_block_store_new(&o, &err);
    cr_assert_not_null(sh.bs, "%s", err.msg);
    for (uint32_t t = 0; t < NTHREADS; t++) {
        w[t] = (worker){&sh, t};
        cr_assert_eq(pthread_create(&th[t], NULL, run, &w[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    cr_assert_eq(atomic_load(&sh.failures), 0, "see stderr");

    /* Every MEMORY_AND_DISK and DISK_ONLY block survived intact. */
    for (uint32_t t = 0; t < NTHREADS; t++) {
        for (uint32_t i = 0; i < NBLOCKS; i++) {
            int rc = check_block(sh.bs, rdd_id(t, i), seed_of(t, i), &err);
            cr_assert_geq(rc, 0, "rdd_%u_%u: %s", t, i, err.msg);
            if (level_of(i) != EM_STORAGE_MEMORY_ONLY)
                cr_assert_eq(rc, 1, "rdd_%u_%u lost", t, i);
        }
    }
    em_store_stats st;
    em_block_store_stats(sh.bs, &st);
    cr_assert_leq(st.mem_bytes, o.mem_budget);
    cr_assert_gt(st.evictions, 0);
    cr_assert_gt(st.disk_writes, 0);
    char blocks[512];
    snprintf(blocks, sizeof blocks, "%s/blocks", dir);
    cr_assert_eq((uint64_t)count_files(blocks), st.nblocks_disk, "no stray or temporary files");

    /* Removing every block empties memory and disk. */
    em_block_id hot = {EM_BLOCK_TEMP, 7, 7, 7};
    em_block_store_remove(sh.bs, hot);
    for (uint32_t t = 0; t < NTHREADS; t++)
        em_block_store_remove_all(sh.bs, EM_BLOCK_RDD, t);
    em_block_store_stats(sh.bs, &st);
    cr_assert_eq(st.mem_bytes, 0);
    cr_assert_eq(st.nblocks_mem, 0);
    cr_assert_eq(st.nblocks_disk, 0);
    cr_assert_eq(st.disk_bytes, 0);
    cr_assert_eq(count_files(blocks), 0);
    em_block_store_free(sh.bs);
    rm_scratch(dir);
}
