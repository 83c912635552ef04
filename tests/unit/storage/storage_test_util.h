/* tests/unit/storage/storage_test_util.h - helpers shared by the storage unit tests: batches
 * with known contents, a scratch directory, directory listings. Header-only (static), so
 * each test executable gets its own copy. */
#ifndef EMBER_STORAGE_TEST_UTIL_H
#define EMBER_STORAGE_TEST_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"

static inline em_block_id rdd_id(uint32_t rdd, uint32_t part)
{
    em_block_id id = {EM_BLOCK_RDD, rdd, part, 0};
    return id;
}

/* The reference payload of a BYTES batch: nrecs records of recsize bytes whose contents
 * depend on seed (built by hand, independently of the engine/data builder). */
static inline uint8_t *ref_payload(uint32_t seed, uint32_t nrecs, uint32_t recsize, size_t *len)
{
    size_t n = (size_t)nrecs * (4 + recsize);
    uint8_t *p = malloc(n ? n : 1), *q = p;
    for (uint32_t r = 0; r < nrecs; r++) {
        em_store_le32(q, recsize);
        q += 4;
        for (uint32_t j = 0; j < recsize; j++)
            *q++ = (uint8_t)(seed * 31u + r * 7u + j + (seed >> 8));
    }
    *len = n;
    return p;
}

static inline em_batch *make_batch(uint32_t seed, uint32_t nrecs, uint32_t recsize)
{
    size_t len;
    uint8_t *p = ref_payload(seed, nrecs, recsize, &len);
    em_batch *b = em_batch_new_copy(EM_REC_BYTES, 0, nrecs, p, len);
    free(p);
    cr_assert_not_null(b, "make_batch");
    return b;
}

/* Checks that b holds exactly the reference payload for (seed, nrecs, recsize). */
static inline void check_batch(const em_batch *b, uint32_t seed, uint32_t nrecs,
                               uint32_t recsize)
{
    size_t len;
    uint8_t *p = ref_payload(seed, nrecs, recsize, &len);
    cr_assert_eq(em_batch_kind(b), EM_REC_BYTES);
    cr_assert_eq(em_batch_nrecs(b), nrecs);
    cr_assert_eq(em_batch_nbytes(b), len, "nbytes %zu, want %zu", em_batch_nbytes(b), len);
    cr_assert(len == 0 || memcmp(em_batch_payload(b), p, len) == 0, "payload differs");
    free(p);
}

static inline void free_batches(em_batch **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        em_batch_unref(v[i]);
    em_free(v);
}

static inline char *scratch_dir(void)
{
    char *d = strdup("/tmp/ember-storage-test-XXXXXX");
    cr_assert_not_null(mkdtemp(d), "mkdtemp");
    return d;
}

static inline void rm_scratch(char *d)
{
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rm_rf(d, &err), 0, "%s", err.msg);
    free(d);
}

/* Number of directory entries in path other than . and ..; -1 if it cannot be opened. */
static inline int count_files(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static inline bool path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static inline void block_file(em_block_store *bs, em_block_id id, char *buf, size_t n)
{
    char name[64];
    snprintf(buf, n, "%s/blocks/%s.blk", em_block_store_dir(bs),
             em_block_id_str(id, name, sizeof name));
}

#endif /* EMBER_STORAGE_TEST_UTIL_H */
