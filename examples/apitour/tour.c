/* examples/apitour/tour.c - every source, transformation and action of engine/ember.h on seeded
 * data, so that runs under different masters can be compared byte for byte:
 *   ember run-example apitour tour WORKDIR [SEED]
 *       writes its inputs under WORKDIR (which must exist), then prints one line per
 *       operation: "name: n=COUNT [records]" (or "h=HASH first=[...]" when long).
 *   ember run-example apitour retry WORKDIR
 *       every task of a 4-partition map fails its first attempt (leaving WORKDIR/fail-P
 *       with the pid of the process it ran in); prints, per partition, whether the retry
 *       ran in another process, and "retry: K of 4 retried on another executor".
 *
 * CANONICAL OUTPUT. Records are printed in the order the engine returns them where that
 * order is defined (sources, narrow transformations of them, union, coalesce without a
 * shuffle, zip_with_index, sort_by_key, sort_by, take, top, take_ordered, partitions of a
 * glom); sorted where Spark leaves it unspecified (the output of a shuffle, group values,
 * lookup). sample/take_sample are deterministic for a seed and a partitioning, so they are
 * printed as they come. Inputs have explicit partition counts, so local[1], local[2] and
 * local-cluster[2,1] must print exactly the same lines. Edge cases on purpose: empty
 * partitions (a 3-record dataset in 5 slices, a union with an empty one), an empty record,
 * a 300 000-byte key, a 1.5 MiB value going through shuffles and a 1.2 MiB text line.
 * Bytes print as 'text' when printable, hex when short, "#LEN:HASH" when longer than 40.
 *
 * Exit status: 0, or 1 when an operation failed unexpectedly (its line says ERROR). */
#include <errno.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "examples/apitour/apitour.h"

int ember_main(em_context *sc, int argc, char **argv);

static const em_slice none = {NULL, 0};

/* ---------------------------------------------------------------- seeded inputs */

static uint64_t g_rng;

static uint64_t rnd(void)   /* splitmix64 */
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint8_t *rnd_letters(size_t n)
{
    uint8_t *p = em_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)('a' + rnd() % 26);
    return p;
}

#define NWORDS 240
#define NKV 300
#define HUGE_KEY 300000
#define BIG_VAL (1536 * 1024)

typedef struct inputs {
    em_rdd *words, *nums, *down, *small, *kv, *big, *other, *empty;
    char words_s[NWORDS][8];
    uint8_t kv_v[NKV][8], *huge_key, *big_val, small_v[3][8], other_v[12][8];
    char kv_k[NKV][4], other_k[12][4];
} inputs;

static void make_inputs(em_context *sc, inputs *in)
{
    em_rec w[NWORDS], kv[NKV + 1], small[3], big[6], other[12];
    for (int i = 0; i < NWORDS; i++) {
        snprintf(in->words_s[i], 8, "w%02d", (int)(rnd() % 60));
        w[i] = (em_rec){none, em_slice_str(i == 17 ? "" : in->words_s[i])};
    }
    in->words = em_parallelize(sc, EM_REC_BYTES, 0, w, NWORDS, 4);
    in->nums = em_range(sc, 0, 200, 1, 4);
    in->down = em_range(sc, 100, -50, -7, 3);
    int64_t sv[3] = {5, -3, 12};
    for (int i = 0; i < 3; i++) {
        em_enc_i64(in->small_v[i], sv[i]);
        small[i] = (em_rec){none, em_slice_make(in->small_v[i], 8)};
    }
    in->small = em_parallelize(sc, EM_REC_FIXED, 8, small, 3, 5);   /* 2 empty slices */
    for (int i = 0; i < NKV; i++) {
        snprintf(in->kv_k[i], 4, "k%02d", (int)(rnd() % 25));
        em_enc_i64(in->kv_v[i], (int64_t)(rnd() % 1000) - 500);
        kv[i] = (em_rec){em_slice_make(in->kv_k[i], 3), em_slice_make(in->kv_v[i], 8)};
    }
    in->huge_key = rnd_letters(HUGE_KEY);
    static uint8_t v42[8];
    em_enc_i64(v42, 42);
    kv[NKV] = (em_rec){em_slice_make(in->huge_key, HUGE_KEY), em_slice_make(v42, 8)};
    in->empty = em_parallelize(sc, EM_REC_KV, 0, kv, 0, 1);
    in->kv = em_rdd_union(em_parallelize(sc, EM_REC_KV, 0, kv, NKV + 1, 4), in->empty);
    static const char *bk[6] = {"b0", "b1", "b2", "big", "b3", "b4"};
    static const char *bv[6] = {"v0", "v1", "v2", "", "v3", "v4"};
    in->big_val = rnd_letters(BIG_VAL);
    for (int i = 0; i < 6; i++)
        big[i] = (em_rec){em_slice_str(bk[i]),
                          i == 3 ? em_slice_make(in->big_val, BIG_VAL) : em_slice_str(bv[i])};
    in->big = em_parallelize(sc, EM_REC_KV, 0, big, 6, 3);
    for (int i = 0; i < 12; i++) {
        snprintf(in->other_k[i], 4, "k%02d", i * 3);   /* k00..k33: some only here */
        em_enc_i64(in->other_v[i], i * 100);
        other[i] = (em_rec){em_slice_make(in->other_k[i], 3), em_slice_make(in->other_v[i], 8)};
    }
    other[11] = (em_rec){em_slice_str("big"), em_slice_make(in->other_v[11], 8)};
    in->other = em_parallelize(sc, EM_REC_KV, 0, other, 12, 2);
}

/* WORKDIR/in/text.txt (LF and CRLF lines, an empty line, a 1.2 MiB line) and
 * WORKDIR/in/whole/{a,b,c}.txt plus _skipped and .hidden files. */
static int write_files(const char *wd, char **text, char **whole, em_err *err)
{
    *text = em_xasprintf("%s/in/text.txt", wd);
    *whole = em_xasprintf("%s/in/whole", wd);
    int rc = em_mkdir_p(*whole, err);
    if (rc < 0)
        return rc;
    em_vbuf b;
    em_vbuf_init(&b);
    for (int i = 0; i < 150; i++) {
        if (i == 80) {
            uint8_t *l = rnd_letters(1200 * 1024);
            em_vbuf_append(&b, l, 1200 * 1024);
            em_free(l);
        } else if (i != 50) {
            for (int k = 0; k < 1 + i % 5; k++)
                em_vbuf_printf(&b, "%sw%02d", k ? " " : "", (int)(rnd() % 60));
        }
        em_vbuf_printf(&b, "%s", i % 10 == 3 ? "\r\n" : "\n");
    }
    rc = em_write_file_atomic(*text, b.data, b.len, err);
    static const char *names[5] = {"a.txt", "b.txt", "c.txt", "_skipped", ".hidden"};
    for (int i = 0; rc == 0 && i < 5; i++) {
        em_vbuf_clear(&b);
        em_vbuf_printf(&b, "file %s\nline two %d\n", names[i], (int)(rnd() % 100));
        char *p = em_xasprintf("%s/%s", *whole, names[i]);
        rc = em_write_file_atomic(p, b.data, b.len, err);
        em_free(p);
    }
    em_vbuf_destroy(&b);
    return rc;
}

/* ---------------------------------------------------------------- the tour */

static void tour_sources(em_context *sc, inputs *in, const char *text, const char *whole)
{
    at_collect("parallelize.bytes", in->words, 0);
    at_collect("parallelize.fixed", in->small, VAL_I64);
    at_collect("parallelize.kv", in->kv, VAL_I64);
    at_collect("parallelize.kv_big", in->big, 0);
    at_collect("parallelize.empty", in->empty, 0);
    at_collect("range.up", in->nums, VAL_I64);
    at_collect("range.down", in->down, VAL_I64);
    em_rdd *t = em_text_file(sc, text, 3);
    at_collect("text_file", t, 0);
    at_collect("text_file.lengths", em_rdd_map_partitions(t, "at_part_stats", none, false), 0);
    at_collect("whole_text_files", em_whole_text_files(sc, whole, 2), KEY_PATH | UNORDERED);
}

static void tour_narrow(em_context *sc, inputs *in, uint32_t bcast, uint64_t seed)
{
    uint8_t seven[8];
    em_enc_i64(seven, 7);
    at_collect("map", em_rdd_map(in->nums, "at_square", none), VAL_I64);
    at_collect("flat_map", em_rdd_flat_map(in->down, "at_explode", none), VAL_I64);
    at_collect("flat_map.builtin", em_rdd_flat_map(em_rdd_map(in->words, "em.identity", none),
                                                "em.split_words", none), 0);
    at_collect("filter", em_rdd_filter(in->nums, "at_is_mult", em_slice_make(seven, 8)), VAL_I64);
    at_collect("map_partitions", em_rdd_map_partitions(in->small, "at_part_stats", none, false), 0);
    at_collect("map_partitions.kv", em_rdd_map_partitions(in->kv, "at_part_stats", none, true), 0);
    em_slice b = em_slice_make(&bcast, 4);
    at_collect("map_values+broadcast", em_rdd_map_values(in->kv, "at_add_bcast", b), VAL_I64);
    at_collect("flat_map_values", em_rdd_flat_map_values(in->kv, "at_fmv", none), VAL_I64);
    at_collect("key_by", em_rdd_key_by(in->down, "at_mod7", none), KEY_I64 | VAL_I64);
    at_collect("keys", em_rdd_keys(in->kv), 0);
    at_collect("values", em_rdd_values(in->kv), VAL_I64);
    at_collect("union", em_rdd_union(in->small, in->down), VAL_I64);
    at_collect("distinct", em_rdd_distinct(in->words, 3), UNORDERED);
    at_collect("distinct.kv", em_rdd_distinct(em_rdd_union(in->kv, in->kv), 2), VAL_I64 | UNORDERED);
    at_collect("sample", em_rdd_sample(in->nums, false, 0.3, seed), VAL_I64);
    at_collect("sample.replacement", em_rdd_sample(in->nums, true, 0.5, seed + 1), VAL_I64);
    at_collect("sample.kv", em_rdd_sample(in->kv, false, 0.1, seed + 2), VAL_I64);
    at_partitions("glom", in->small, ITEM_I64);
    at_partitions("glom.words", in->words, 0);
    at_collect("cartesian", em_rdd_cartesian(in->small, em_range(sc, 0, 3, 1, 2)),
            KEY_I64 | VAL_I64 | UNORDERED);
    at_collect("zip_with_index", em_rdd_zip_with_index(in->words), VAL_I64);
    at_collect("zip_with_index.empty_parts", em_rdd_zip_with_index(in->small), KEY_I64 | VAL_I64);
    em_rdd *rp = em_rdd_repartition(in->words, 3);
    at_count("repartition.count", rp);
    at_partitions("repartition", rp, VAL_SORT);
    at_partitions("coalesce", em_rdd_coalesce(in->nums, 2, false), ITEM_I64);
    at_partitions("coalesce.small", em_rdd_coalesce(in->small, 2, false), ITEM_I64);
    at_partitions("coalesce.shuffle", em_rdd_coalesce(in->nums, 3, true), ITEM_I64 | VAL_SORT);
}

static void tour_pairs(em_context *sc, inputs *in)
{
    (void)sc;
    uint8_t zero[8], one[8];
    em_enc_i64(zero, 0);
    em_enc_i64(one, 1);
    int fl = VAL_I64 | UNORDERED;
    em_rdd *sums = em_rdd_reduce_by_key(in->kv, "em.sum_i64", none, 3);
    at_collect("reduce_by_key", sums, fl);
    at_collect("reduce_by_key.user", em_rdd_reduce_by_key(in->kv, "at_sum", none, 2), fl);
    at_collect("reduce_by_key.big", em_rdd_reduce_by_key(in->big, "at_longest", none, 2), UNORDERED);
    at_collect("fold_by_key", em_rdd_fold_by_key(in->kv, em_slice_make(one, 8), "em.sum_i64", none,
                                              3), fl);
    at_collect("aggregate_by_key", em_rdd_aggregate_by_key(in->kv, em_slice_make(zero, 8),
                                                        "em.max_i64", "em.sum_i64", none, 2), fl);
    at_collect("combine_by_key", em_rdd_combine_by_key(in->kv, NULL, "em.min_i64", "em.min_i64",
                                                    none, 3), fl);
    at_collect("combine_by_key.lists",
            em_rdd_combine_by_key(in->kv, "em.to_list", "at_list_add", "em.concat_list", none,
                                  2), VAL_LIST | VAL_SORT | ITEM_I64 | UNORDERED);
    at_collect("group_by_key", em_rdd_group_by_key(in->kv, 3),
            VAL_LIST | VAL_SORT | ITEM_I64 | UNORDERED);
    at_collect("group_by_key.big", em_rdd_group_by_key(in->big, 2), VAL_LIST | VAL_SORT | UNORDERED);
    int jf = VAL_PAIR | ITEM_I64 | UNORDERED;
    at_collect("join", em_rdd_join(in->kv, in->other, 3), jf);
    at_collect("left_outer_join", em_rdd_left_outer_join(in->kv, in->other, 2), jf);
    at_collect("right_outer_join", em_rdd_right_outer_join(in->kv, in->other, 2), jf);
    at_collect("full_outer_join", em_rdd_full_outer_join(in->kv, in->other, 4), jf);
    at_collect("join.big", em_rdd_join(in->big, in->other, 2), VAL_PAIR | UNORDERED);
    at_collect("cogroup", em_rdd_cogroup(in->kv, in->other, 2),
            VAL_COGROUP | VAL_SORT | ITEM_I64 | UNORDERED);
    at_collect("sort_by_key.asc", em_rdd_sort_by_key(sums, true, 3), VAL_I64);
    at_collect("sort_by_key.desc", em_rdd_sort_by_key(sums, false, 2), VAL_I64);
    at_collect("sort_by_key.big", em_rdd_sort_by_key(in->big, true, 2), 0);
    em_rdd *dw = em_rdd_distinct(in->words, 2);
    at_collect("sort_by.asc", em_rdd_sort_by(dw, "at_reverse", none, true, 3), 0);
    at_collect("sort_by.desc", em_rdd_sort_by(dw, "at_reverse", none, false, 2), 0);
    at_collect("sort_by.nums", em_rdd_sort_by(in->down, "at_mod7", none, true, 1), VAL_I64);
    em_rdd *h = em_rdd_partition_by(sums, EM_PART_HASH, 4);
    printf("partition_by.hash.partitioner: %d\n", (int)em_rdd_partitioner(h));
    at_partitions("partition_by.hash", h, VAL_SORT);
    em_rdd *rg = em_rdd_partition_by(sums, EM_PART_RANGE, 3);
    printf("partition_by.range.partitioner: %d\n", (int)em_rdd_partitioner(rg));
    at_partitions("partition_by.range", rg, VAL_SORT);
    at_partitions("partition_by.big", em_rdd_partition_by(in->big, EM_PART_HASH, 2), VAL_SORT);
}

static void tour_reductions(em_context *sc, inputs *in)
{
    em_vbuf v;
    em_err err = EM_ERR_INIT;
    uint8_t zero[8], one[8];
    em_enc_i64(zero, 0);
    em_enc_i64(one, 1);
    em_rdd *eight = em_range(sc, 1, 1001, 1, 8);
    em_vbuf_init(&v);
    at_print_value("reduce", em_rdd_reduce(in->nums, "em.sum_i64", none, &v, &err), &v, true, &err);
    em_vbuf_destroy(&v);
    at_print_value("reduce.user", em_rdd_reduce(in->words, "at_longest", none, &v, &err), &v, false,
                &err);
    em_vbuf_destroy(&v);
    at_print_value("reduce.small", em_rdd_reduce(in->small, "at_sum", none, &v, &err), &v, true,
                &err);
    em_vbuf_destroy(&v);
    at_expect_error("reduce.empty", em_rdd_reduce(em_range(sc, 0, 0, 1, 3), "em.sum_i64", none, &v,
                                               &err), EM_EINVAL, &err);
    em_vbuf_destroy(&v);
    at_print_value("fold", em_rdd_fold(eight, em_slice_make(one, 8), "em.sum_i64", none, &v, &err),
                &v, true, &err);
    em_vbuf_destroy(&v);
    at_print_value("aggregate", em_rdd_aggregate(eight, em_slice_make(zero, 8), "em.max_i64",
                                              "em.sum_i64", none, &v, &err), &v, true, &err);
    em_vbuf_destroy(&v);
    for (uint32_t depth = 1; depth <= 3; depth++) {
        char name[40];
        snprintf(name, sizeof name, "tree_aggregate.depth%u", depth);
        at_print_value(name, em_rdd_tree_aggregate(eight, em_slice_make(zero, 8), "em.max_i64",
                                                "em.sum_i64", none, depth, &v, &err),
                    &v, true, &err);
        em_vbuf_destroy(&v);
    }
    at_count("count.kv", in->kv);
    at_count("count.small", in->small);
    at_count("count.empty", in->empty);
    em_records out = {0};
    if (em_rdd_count_by_key(in->kv, &out, &err) < 0)
        at_failed("count_by_key", &err);
    else
        at_report("count_by_key", &out, VAL_I64 | UNORDERED);
    em_records_destroy(&out);
    if (em_rdd_count_by_value(in->words, &out, &err) < 0)
        at_failed("count_by_value", &err);
    else
        at_report("count_by_value", &out, VAL_I64 | UNORDERED);
    em_records_destroy(&out);
}

static int first_action(em_rdd *r, size_t n, em_records *out, em_err *err)
{
    (void)n;
    return em_rdd_first(r, out, err);
}

static void tour_takes(em_context *sc, inputs *in, uint64_t seed)
{
    em_err err = EM_ERR_INIT;
    at_take_like("take", em_rdd_take, in->words, 7, 0);
    at_take_like("take.across_empty", em_rdd_take, in->small, 3, VAL_I64);
    at_take_like("take.zero", em_rdd_take, in->nums, 0, 0);
    at_take_like("take.kv_all", em_rdd_take, in->kv, 1000, VAL_I64);
    at_take_like("take.big", em_rdd_take, in->big, 4, 0);
    at_take_like("first", first_action, in->kv, 1, VAL_I64);
    at_take_like("first.small", first_action, in->small, 1, VAL_I64);
    em_records out = {0};
    at_expect_error("first.empty", em_rdd_first(in->empty, &out, &err), EM_EINVAL, &err);
    em_records_destroy(&out);
    at_take_like("take_ordered", em_rdd_take_ordered, in->words, 5, 0);
    at_take_like("take_ordered.nums", em_rdd_take_ordered, in->down, 4, VAL_I64);
    at_take_like("top", em_rdd_top, in->words, 5, 0);
    at_take_like("top.nums", em_rdd_top, in->down, 4, VAL_I64);
    at_take_like("top.kv", em_rdd_top, in->kv, 3, 0);
    if (em_rdd_take_sample(in->nums, false, 10, seed, &out, &err) < 0)
        at_failed("take_sample", &err);
    else
        at_report("take_sample", &out, VAL_I64);
    em_records_destroy(&out);
    if (em_rdd_take_sample(in->nums, true, 10, seed, &out, &err) < 0)
        at_failed("take_sample.replacement", &err);
    else
        at_report("take_sample.replacement", &out, VAL_I64);
    em_records_destroy(&out);
    if (em_rdd_take_sample(in->small, false, 10, seed, &out, &err) < 0)
        at_failed("take_sample.more_than_all", &err);
    else
        at_report("take_sample.more_than_all", &out, VAL_I64 | UNORDERED);
    em_records_destroy(&out);
    em_rdd *hashed = em_rdd_partition_by(in->kv, EM_PART_HASH, 4);
    const struct { const char *name; em_rdd *r; em_slice key; } lk[] = {
        {"lookup", in->kv, em_slice_str("k03")},
        {"lookup.partitioned", hashed, em_slice_str("k03")},
        {"lookup.huge_key", hashed, em_slice_make(in->huge_key, HUGE_KEY)},
        {"lookup.missing", hashed, em_slice_str("nope")},
        {"lookup.big", in->big, em_slice_str("big")},
    };
    for (size_t i = 0; i < sizeof lk / sizeof lk[0]; i++) {
        if (em_rdd_lookup(lk[i].r, lk[i].key, &out, &err) < 0)
            at_failed(lk[i].name, &err);
        else
            at_report(lk[i].name, &out, VAL_I64 | UNORDERED);
        em_records_destroy(&out);
    }
    (void)sc;
}

/* Prints each file of dir (sorted names) with its size and hash. */
static void print_dir(const char *name, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        printf("%s: ERROR cannot open the output directory\n", name);
        at_errors++;
        return;
    }
    strs l = {0};
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            at_strs_add(&l, em_xstrdup(e->d_name));
    closedir(d);
    if (l.n)
        qsort(l.s, l.n, sizeof *l.s, at_cmp_str);
    for (size_t i = 0; i < l.n; i++) {
        char *p = em_xasprintf("%s/%s", dir, l.s[i]);
        uint8_t *data = NULL;
        size_t n = 0;
        em_err err = EM_ERR_INIT;
        char *s = em_read_file(p, &data, &n, &err) < 0
                      ? em_xasprintf("%s=unreadable", l.s[i])
                      : em_xasprintf("%s=%zu:%016" PRIx64, l.s[i], n, em_hash64(data, n, 0));
        em_free(data);
        em_free(p);
        em_free(l.s[i]);
        l.s[i] = s;
    }
    at_emit_line(name, &l);
    at_strs_free(&l);
}

static void tour_outputs(em_context *sc, inputs *in, const char *wd)
{
    em_err err = EM_ERR_INIT;
    char *d1 = em_xasprintf("%s/out/words", wd), *d2 = em_xasprintf("%s/out/kv", wd);
    if (em_rdd_save_as_text_file(in->words, d1, &err) < 0)
        at_failed("save_as_text_file", &err);
    else
        print_dir("save_as_text_file", d1);
    if (em_rdd_save_as_text_file(em_rdd_map(em_rdd_reduce_by_key(in->kv, "em.sum_i64", none, 2),
                                            "at_fmt", none), d2, &err) < 0)
        at_failed("save_as_text_file.kv", &err);
    else
        print_dir("save_as_text_file.kv", d2);
    at_expect_error("save_as_text_file.exists", em_rdd_save_as_text_file(in->words, d1, &err),
                 EM_EINVAL, &err);
    em_free(d1);
    em_free(d2);

    uint32_t ids[2] = {em_accumulator_new(sc, "records"), em_accumulator_new(sc, "half_sum")};
    if (em_rdd_foreach_partition(in->down, "at_foreach", em_slice_make(ids, 8), &err) < 0)
        at_failed("foreach_partition", &err);
    else
        printf("foreach_partition: records=%" PRId64 " half_sum=%.1f\n",
               em_accumulator_i64(sc, ids[0]), em_accumulator_f64(sc, ids[1]));
}

static void tour_persist(em_context *sc, inputs *in)
{
    static const em_persist_level levels[3] = {EM_PERSIST_MEMORY_ONLY,
                                               EM_PERSIST_MEMORY_AND_DISK, EM_PERSIST_DISK_ONLY};
    em_err err = EM_ERR_INIT;
    for (int i = 0; i < 3; i++) {
        uint32_t acc = em_accumulator_new(sc, "computed");
        em_rdd *r = em_rdd_map(in->nums, "at_count_acc", em_slice_make(&acc, 4));
        em_rdd_persist(r, levels[i]);
        uint64_t n1 = 0, n2 = 0;
        em_vbuf v;
        em_vbuf_init(&v);
        int rc = em_rdd_count(r, &n1, &err);
        if (rc == 0)
            rc = em_rdd_reduce(r, "em.sum_i64", none, &v, &err);
        if (rc == 0)
            rc = em_rdd_count(r, &n2, &err);
        char name[32];
        snprintf(name, sizeof name, "persist.level%d", (int)levels[i]);
        int64_t computed = em_accumulator_i64(sc, acc);
        if (rc < 0) {
            at_failed(name, &err);
        } else {
            /* Each record is computed exactly once while cached: in local mode the block
             * store is shared; in cluster mode the scheduler runs a task on the executor
             * holding its cached partition (cache locality; the test sets a long
             * ember.locality.wait so that a busy machine does not make a task run
             * elsewhere, which would recompute it there). */
            printf("%s: count=%" PRIu64 "/%" PRIu64 " sum=%" PRId64 " computed=%" PRId64 "\n",
                   name, n1, n2, em_dec_i64(v.data), computed);
        }
        em_vbuf_destroy(&v);
        em_rdd_unpersist(r);
        if (em_rdd_count(r, &n1, &err) < 0)
            at_failed(name, &err);
        else
            printf("%s.unpersisted: count=%" PRIu64 " computed=%" PRId64 "\n", name, n1,
                   em_accumulator_i64(sc, acc) - computed);
    }
    /* A cached pair dataset read by a result stage and by a shuffle's map stage: every
     * record is computed once (the map tasks run where the cached partitions are). */
    uint32_t acc = em_accumulator_new(sc, "computed");
    em_rdd *kv = em_rdd_cache(em_rdd_map(in->kv, "at_count_acc", em_slice_make(&acc, 4)));
    uint64_t n1 = 0, n2 = 0;
    if (em_rdd_count(kv, &n1, &err) < 0 ||
        em_rdd_count(em_rdd_reduce_by_key(kv, "em.sum_i64", none, 3), &n2, &err) < 0)
        at_failed("persist.shuffled", &err);
    else
        printf("persist.shuffled: count=%" PRIu64 " keys=%" PRIu64 " computed=%" PRId64 "\n",
               n1, n2, em_accumulator_i64(sc, acc));
    em_rdd_unpersist(kv);
    em_rdd *c = em_rdd_cache(em_rdd_map(in->big, "em.identity", none));
    at_count("cache.big", c);
    at_collect("cache.big.collect", c, 0);
    const char *ckdir = em_conf_get(em_context_conf(sc), "ember.checkpoint.dir");
    em_rdd *sq = em_rdd_map(in->small, "at_square", none);
    if (ckdir) {
        em_rdd *ck = em_rdd_checkpoint(sq, &err);
        if (!ck)
            at_failed("checkpoint", &err);
        else {
            printf("checkpoint.depth: %u\n", em_rdd_lineage_depth(ck));
            at_collect("checkpoint", ck, VAL_I64);
        }
    } else {
        printf("checkpoint: skipped (no ember.checkpoint.dir)\n");
    }
    em_rdd *lc = em_rdd_local_checkpoint(em_rdd_map(in->nums, "at_square", none), &err);
    if (!lc)
        at_failed("local_checkpoint", &err);
    else {
        printf("local_checkpoint.depth: %u\n", em_rdd_lineage_depth(lc));
        at_collect("local_checkpoint", lc, VAL_I64);
    }
}

static int tour(em_context *sc, const char *wd, uint64_t seed)
{
    em_err err = EM_ERR_INIT;
    char *text = NULL, *whole = NULL;
    g_rng = seed;
    int rc = write_files(wd, &text, &whole, &err);
    if (rc < 0) {
        fprintf(stderr, "apitour: inputs: %s\n", err.msg);
        em_free(text);
        em_free(whole);
        return 1;
    }
    inputs *in = em_xcalloc(1, sizeof *in);
    make_inputs(sc, in);
    /* A broadcast larger than a block batch: its first 8 bytes are an i64. */
    size_t bn = 2u << 20;
    uint8_t *bv = rnd_letters(bn);
    em_enc_i64(bv, 1000);
    uint32_t bcast = em_broadcast(sc, em_slice_make(bv, bn), &err);
    em_free(bv);
    if (!bcast)
        at_failed("broadcast", &err);
    tour_sources(sc, in, text, whole);
    tour_narrow(sc, in, bcast, seed);
    tour_pairs(sc, in);
    tour_reductions(sc, in);
    tour_takes(sc, in, seed);
    tour_outputs(sc, in, wd);
    tour_persist(sc, in);
    em_broadcast_destroy(sc, bcast);
    em_free(in->huge_key);
    em_free(in->big_val);
    em_free(in);
    em_free(text);
    em_free(whole);
    printf("apitour: %d unexpected error(s)\n", at_errors);
    return at_errors ? 1 : 0;
}

/* ---------------------------------------------------------------- retry mode */

static int retry(em_context *sc, const char *wd)
{
    em_err err = EM_ERR_INIT;
    em_rdd *r = em_rdd_map(em_range(sc, 0, 4, 1, 4), "at_fail_once", em_slice_str(wd));
    em_records out = {0};
    if (em_rdd_collect(r, &out, &err) < 0) {
        fprintf(stderr, "apitour retry: %s\n", err.msg);
        return 1;
    }
    int elsewhere = 0;
    for (size_t i = 0; i < out.n; i++) {
        int64_t part = em_dec_i64(out.recs[i].key.p), pid = em_dec_i64(out.recs[i].val.p);
        char *p = em_xasprintf("%s/fail-%" PRId64, wd, part);
        FILE *f = fopen(p, "r");
        long failed_pid = -1;
        if (!f || fscanf(f, "%ld", &failed_pid) != 1)
            failed_pid = -1;
        if (f)
            fclose(f);
        em_free(p);
        bool other = failed_pid > 0 && failed_pid != pid;
        elsewhere += other;
        printf("retry part %" PRId64 ": attempt 0 failed in pid %ld, attempt 1 ran in pid %"
               PRId64 " (%s)\n", part, failed_pid, pid, other ? "elsewhere" : "same process");
    }
    printf("retry: %d of %zu retried on another executor\n", elsewhere, out.n);
    em_records_destroy(&out);
    return 0;
}

int ember_main(em_context *sc, int argc, char **argv)
{
    if (argc < 3 || argc > 4 || (strcmp(argv[1], "tour") != 0 && strcmp(argv[1], "retry") != 0)) {
        fprintf(stderr, "usage: apitour tour WORKDIR [SEED] | apitour retry WORKDIR\n");
        return 2;
    }
    char *wd = realpath(argv[2], NULL);
    if (!wd) {
        fprintf(stderr, "apitour: %s: %s\n", argv[2], strerror(errno));
        return 2;
    }
    at_workdir = wd;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = strcmp(argv[1], "retry") == 0
                 ? retry(sc, wd)
                 : tour(sc, wd, argc == 4 ? strtoull(argv[3], NULL, 10) : 1);
    at_workdir = NULL;
    free(wd);
    return rc;
}
