/* tests/unit/shuffle/test_partition.c - hash and range partitioners. */
#include "shuffle_test_util.h"

Test(partition, hash_in_range_and_stable)
{
    em_partitioner p;
    em_rng rng;
    uint8_t key[64];
    uint32_t hist[7] = {0};

    em_partitioner_hash_init(&p, 7);
    cr_assert_eq(p.nparts, 7);
    cr_assert_str_eq(p.ops->name, "hash");
    em_rng_seed(&rng, 1);
    for (int i = 0; i < 2000; i++) {
        size_t n = tu_rand_key(&rng, key, 12);
        em_slice k = em_slice_make(key, n);
        uint32_t part = em_partitioner_part(&p, k);
        cr_assert_lt(part, 7u);
        cr_assert_eq(part, em_partitioner_part(&p, k));
        /* The documented definition, computed independently. */
        cr_assert_eq(part, (uint32_t)(em_hash64(key, n, 0) % 7));
        hist[part]++;
    }
    for (int i = 0; i < 7; i++)
        cr_assert_gt(hist[i], 0u, "partition %d never used", i);
    em_partitioner_destroy(&p);
}

Test(partition, hash_one_partition)
{
    em_partitioner p;
    em_partitioner_hash_init(&p, 1);
    cr_assert_eq(em_partitioner_part(&p, em_slice_str("anything")), 0u);
    cr_assert_eq(em_partitioner_part(&p, em_slice_make(NULL, 0)), 0u);
    em_partitioner_destroy(&p);
}

static uint32_t part_of(const em_partitioner *p, const char *k)
{
    return em_partitioner_part(p, em_slice_str(k));
}

Test(partition, range_bounds_inclusive)
{
    em_slice b[3] = {em_slice_str("b"), em_slice_str("d"), em_slice_str("f")};
    em_partitioner p;
    em_err err = EM_ERR_INIT;

    cr_assert_eq(em_partitioner_range_init(&p, b, 3, false, &err), 0, "%s", err.msg);
    cr_assert_eq(p.nparts, 4);
    cr_assert_eq(part_of(&p, ""), 0u);
    cr_assert_eq(part_of(&p, "a"), 0u);
    cr_assert_eq(part_of(&p, "b"), 0u);     /* bounds are inclusive upper limits */
    cr_assert_eq(part_of(&p, "b\x01"), 1u);
    cr_assert_eq(part_of(&p, "c"), 1u);
    cr_assert_eq(part_of(&p, "d"), 1u);
    cr_assert_eq(part_of(&p, "e"), 2u);
    cr_assert_eq(part_of(&p, "f"), 2u);
    cr_assert_eq(part_of(&p, "ff"), 3u);
    cr_assert_eq(part_of(&p, "\xc3\xa9"), 3u);
    em_partitioner_destroy(&p);
}

Test(partition, range_descending)
{
    em_slice b[3] = {em_slice_str("b"), em_slice_str("d"), em_slice_str("f")};
    em_partitioner p;
    em_err err = EM_ERR_INIT;

    cr_assert_eq(em_partitioner_range_init(&p, b, 3, true, &err), 0, "%s", err.msg);
    cr_assert_eq(part_of(&p, "z"), 0u);     /* largest keys first */
    cr_assert_eq(part_of(&p, "f"), 1u);
    cr_assert_eq(part_of(&p, "e"), 1u);
    cr_assert_eq(part_of(&p, "c"), 2u);
    cr_assert_eq(part_of(&p, "b"), 3u);
    cr_assert_eq(part_of(&p, "a"), 3u);
    em_partitioner_destroy(&p);
}

Test(partition, range_numeric_keys_against_linear_scan)
{
    uint8_t bb[5][8];
    em_slice b[5];
    int64_t bv[5] = {-100, -1, 0, 7, 1000};
    em_partitioner p;
    em_err err = EM_ERR_INIT;
    em_rng rng;

    for (int i = 0; i < 5; i++) {
        em_enc_i64(bb[i], bv[i]);
        b[i] = em_slice_make(bb[i], 8);
    }
    cr_assert_eq(em_partitioner_range_init(&p, b, 5, false, &err), 0);
    em_rng_seed(&rng, 9);
    for (int i = 0; i < 3000; i++) {
        int64_t v = (int64_t)em_rng_below(&rng, 2400) - 1200;
        uint8_t k[8];
        uint32_t want = 0;
        while (want < 5 && v > bv[want])
            want++;
        em_enc_i64(k, v);
        cr_assert_eq(em_partitioner_part(&p, em_slice_make(k, 8)), want, "v=%lld", (long long)v);
    }
    em_partitioner_destroy(&p);
}

Test(partition, range_unsorted_and_empty)
{
    em_slice b[2] = {em_slice_str("x"), em_slice_str("a")};
    em_partitioner p;
    em_err err = EM_ERR_INIT;

    cr_assert_eq(em_partitioner_range_init(&p, b, 2, false, &err), EM_EINVAL);
    cr_assert_eq(err.code, EM_EINVAL);
    cr_assert_eq(em_partitioner_range_init(&p, NULL, 0, false, &err), 0);
    cr_assert_eq(p.nparts, 1);
    cr_assert_eq(part_of(&p, "anything"), 0u);
    em_partitioner_destroy(&p);
}

Test(partition, range_bounds_are_copied)
{
    char k1[] = "m";
    em_slice b[1] = {em_slice_make(k1, 1)};
    em_partitioner p;
    em_err err = EM_ERR_INIT;

    cr_assert_eq(em_partitioner_range_init(&p, b, 1, false, &err), 0);
    k1[0] = 'a';    /* must not affect the partitioner */
    cr_assert_eq(part_of(&p, "c"), 0u);
    cr_assert_eq(part_of(&p, "n"), 1u);
    em_partitioner_destroy(&p);
}
