/* tests/unit/shuffle/test_hotkey.c - hot keys on the reduce side: GROUP groups far larger than
 * the budget (exact em_list in arrival order, spilled while merging, files removed), the
 * group value stream (em_reducer_next_group / _value) and spill lists, with their error
 * paths (misuse, a corrupt or unwritable file, every allocation failing in turn). */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shuffle_test_util.h"

#define BUDGET ((size_t)64 << 10)

/* Value i: 8-byte index then filler derived from it, `len` bytes in all (len >= 8). */
static size_t make_val(uint8_t *buf, uint64_t i, size_t len)
{
    em_store_le64(buf, i);
    for (size_t j = 8; j < len; j++)
        buf[j] = (uint8_t)(i * 131 + j * 7);
    return len;
}

typedef struct input {
    char (*keys)[16];
    uint8_t (*vals)[256];
    size_t *vlen;
    size_t n;
} input;

/* n records; key "hot<h>" for record i when i % nhot_mod < nhot (and nhot > 0), else one of
 * ncold cold keys; value lengths vary from 8 to 255 bytes. */
static input gen(size_t n, unsigned nhot, unsigned ncold, uint64_t seed)
{
    input in = {calloc(n, 16), calloc(n, 256), calloc(n, sizeof(size_t)), n};
    em_rng rng;
    em_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        uint64_t pick = em_rng_below(&rng, 10);
        if (nhot && (pick < 8 || !ncold))
            snprintf(in.keys[i], 16, "hot%u", (unsigned)em_rng_below(&rng, nhot));
        else
            snprintf(in.keys[i], 16, "cold%04u", (unsigned)em_rng_below(&rng, ncold));
        in.vlen[i] = make_val(in.vals[i], i, 8 + (size_t)em_rng_below(&rng, 248));
    }
    return in;
}

static void input_free(input *in)
{
    free(in->keys);
    free(in->vals);
    free(in->vlen);
}

static em_slice key_of(const input *in, size_t i)
{
    return em_slice_make(in->keys[i], strlen(in->keys[i]));
}

static em_slice val_of(const input *in, size_t i)
{
    return em_slice_make(in->vals[i], in->vlen[i]);
}

static em_reducer *group_reducer(const char *dir, size_t budget, em_reduce_mode mode)
{
    em_reducer_opts o = {.mode = mode, .kind = EM_REC_KV, .mem_budget = budget,
                         .spill_dir = dir};
    if (mode == EM_REDUCE_AGGREGATE)
        o.combiner = &tu_sum_combiner;
    em_err err = EM_ERR_INIT;
    em_reducer *r = em_reducer_new(&o, &err);
    cr_assert(r, "%s", err.msg);
    return r;
}

static void feed(em_reducer *r, const input *in)
{
    em_err err = EM_ERR_INIT;
    for (size_t i = 0; i < in->n; i++) {
        em_rec rec = {key_of(in, i), val_of(in, i)};
        cr_assert_eq(em_reducer_add(r, &rec, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(em_reducer_finish(r, &err), 0, "%s", err.msg);
}

/* Checks that `vals` (count values, in order) are exactly the values of key k in arrival
 * order, and returns the bytes they total. */
static size_t check_values(const input *in, em_slice k, const em_slice *vals, size_t count)
{
    size_t j = 0, bytes = 0;
    for (size_t i = 0; i < in->n; i++) {
        if (!em_slice_eq(key_of(in, i), k))
            continue;
        cr_assert_lt(j, count, "key %.*s: too few values", (int)k.n, (const char *)k.p);
        cr_assert(em_slice_eq(vals[j], val_of(in, i)), "key %.*s: value %zu differs",
                  (int)k.n, (const char *)k.p, j);
        bytes += vals[j].n;
        j++;
    }
    cr_assert_eq(j, count, "key %.*s: %zu values, want %zu", (int)k.n, (const char *)k.p,
                 count, j);
    return bytes;
}

/* Reads every GROUP record: ascending keys, each list exact; returns the number of keys and
 * the bytes of the largest group. */
static size_t check_groups(em_reducer *r, const input *in, size_t *largest)
{
    em_err err = EM_ERR_INIT;
    em_rec out;
    em_vbuf prev;
    size_t nkeys = 0, cap = 1024;
    em_slice *vals = malloc(cap * sizeof *vals);
    int rc;
    em_vbuf_init(&prev);
    *largest = 0;
    while ((rc = em_reducer_next(r, &out, &err)) == 1) {
        if (nkeys)
            cr_assert_lt(em_slice_cmp(em_slice_make(prev.data, prev.len), out.key), 0);
        em_vbuf_clear(&prev);
        em_vbuf_append(&prev, out.key.p, out.key.n);
        em_list_iter li;
        em_slice v;
        size_t count = 0;
        cr_assert_eq(em_list_iter_init(&li, out.val, &err), 0, "%s", err.msg);
        while ((rc = em_list_iter_next(&li, &v, &err)) == 1) {
            if (count == cap)
                vals = realloc(vals, (cap *= 2) * sizeof *vals);
            vals[count++] = v;
        }
        cr_assert_eq(rc, 0, "%s", err.msg);
        size_t bytes = check_values(in, out.key, vals, count);
        if (bytes > *largest)
            *largest = bytes;
        nkeys++;
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    free(vals);
    em_vbuf_destroy(&prev);
    return nkeys;
}

static int cmp_str16(const void *a, const void *b)
{
    return strcmp(a, b);
}

static size_t distinct_keys(const input *in)
{
    char(*k)[16] = malloc(in->n * 16);
    size_t d = 0;
    memcpy(k, in->keys, in->n * 16);
    qsort(k, in->n, 16, cmp_str16);
    for (size_t i = 0; i < in->n; i++)
        d += i == 0 || strcmp(k[i - 1], k[i]) != 0;
    free(k);
    return d;
}

TestSuite(hotkey, .timeout = 60);

Test(hotkey, one_key_eight_budgets)
{
    char *dir = tu_mkdtemp();
    input in = gen(4096, 1, 0, 1);   /* ~540 KiB of values, all under "hot0" */
    size_t total = 0, largest;
    for (size_t i = 0; i < in.n; i++)
        total += in.vlen[i];
    cr_assert_gt(total, 8 * BUDGET);
    em_reducer *r = group_reducer(dir, BUDGET, EM_REDUCE_GROUP);
    feed(r, &in);
    cr_assert_eq(check_groups(r, &in, &largest), 1);
    cr_assert_eq(largest, total);
    em_reducer_stats st;
    em_reducer_stats_get(r, &st);
    cr_assert_eq(st.hot_groups, 1);
    cr_assert_gt(st.spill_count, 1);   /* runs and the hot group's file */
    cr_assert_gt(st.spill_bytes, 0);
    cr_assert_eq(st.records_out, 1);
    cr_assert_eq(tu_count_files(dir), 0, "files left after the output ended");
    em_reducer_free(r);
    input_free(&in);
    tu_rmdir(dir);
}

Test(hotkey, hot_and_cold_keys_mixed)
{
    char *dir = tu_mkdtemp();
    input in = gen(12000, 3, 400, 2);
    size_t largest;
    em_reducer *r = group_reducer(dir, BUDGET, EM_REDUCE_GROUP);
    feed(r, &in);
    cr_assert_eq(check_groups(r, &in, &largest), distinct_keys(&in));
    cr_assert_gt(largest, 4 * BUDGET);
    em_reducer_stats st;
    em_reducer_stats_get(r, &st);
    cr_assert_eq(st.hot_groups, 3);
    cr_assert_gt(st.spill_bytes, 0);
    cr_assert_eq(tu_count_files(dir), 0);
    em_reducer_free(r);
    input_free(&in);
    tu_rmdir(dir);
}

/* The group stream gives the same values as the records; values not taken are skipped. */
static void stream_case(size_t budget)
{
    char *dir = tu_mkdtemp();
    input in = gen(6000, 2, 50, 3);
    em_reducer *r = group_reducer(dir, budget, EM_REDUCE_GROUP);
    em_err err = EM_ERR_INIT;
    em_slice key, v;
    size_t cap = 8192, nkeys = 0;
    em_slice *vals = malloc(cap * sizeof *vals);
    em_vbuf *copies = calloc(cap, sizeof *copies);
    int rc;
    feed(r, &in);
    while ((rc = em_reducer_next_group(r, &key, &err)) == 1) {
        size_t count = 0;
        /* Every third key: take one value only (the rest must be skipped). */
        while ((nkeys % 3 != 2 || count < 1) &&
               (rc = em_reducer_next_value(r, &v, &err)) == 1) {
            cr_assert_lt(count, cap);
            em_vbuf_clear(&copies[count]);   /* v is borrowed until the next call */
            em_vbuf_append(&copies[count], v.p, v.n);
            vals[count] = em_slice_make(copies[count].data, v.n);
            count++;
        }
        cr_assert_geq(rc, 0, "%s", err.msg);
        if (nkeys % 3 != 2)
            check_values(&in, key, vals, count);
        else
            cr_assert_eq(count, 1);
        nkeys++;
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(nkeys, distinct_keys(&in));
    cr_assert_eq(em_reducer_next_value(r, &v, &err), 0);
    em_reducer_stats st;
    em_reducer_stats_get(r, &st);
    cr_assert_eq(st.hot_groups, 0, "the stream never assembles a group");
    cr_assert_eq(st.records_out, nkeys);
    for (size_t i = 0; i < cap; i++)
        em_vbuf_destroy(&copies[i]);
    free(copies);
    free(vals);
    em_reducer_free(r);
    cr_assert_eq(tu_count_files(dir), 0);
    input_free(&in);
    tu_rmdir(dir);
}

Test(hotkey, group_stream_spilled) { stream_case(BUDGET); }
Test(hotkey, group_stream_in_memory) { stream_case(0); }

Test(hotkey, group_stream_misuse)
{
    char *dir = tu_mkdtemp();
    em_err err = EM_ERR_INIT;
    em_slice k;
    em_reducer *g = group_reducer(dir, 0, EM_REDUCE_GROUP);
    cr_assert_eq(em_reducer_next_group(g, &k, &err), EM_EINVAL, "before finish");
    em_reducer_free(g);
    em_reducer *s = group_reducer(dir, 0, EM_REDUCE_SORT);
    cr_assert_eq(em_reducer_finish(s, &err), 0);
    cr_assert_eq(em_reducer_next_group(s, &k, &err), EM_EINVAL, "SORT has no groups");
    cr_assert_eq(em_reducer_next_value(s, &k, &err), EM_EINVAL);
    em_reducer_free(s);
    tu_rmdir(dir);
}

/* The spill directory disappears after the runs were opened: the hot group's file cannot
 * be made, which is EM_EIO naming the directory; the reducer stays failed. */
Test(hotkey, hot_spill_unwritable)
{
    char *dir = tu_mkdtemp();
    input in = gen(4096, 1, 0, 4);
    em_reducer *r = group_reducer(dir, BUDGET, EM_REDUCE_GROUP);
    em_err err = EM_ERR_INIT;
    em_rec out;
    feed(r, &in);
    em_rm_rf(dir, &err);
    int rc = em_reducer_next(r, &out, &err);
    cr_assert_eq(rc, EM_EIO, "rc %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, dir), "%s", err.msg);
    cr_assert_eq(em_reducer_next(r, &out, &err), EM_EIO, "poisoned");
    em_reducer_free(r);
    input_free(&in);
    free(dir);
}

/* Every allocation of the output side failing in turn: a clean EM_ENOMEM each time, no file
 * left once the reducer is freed, and the exact groups once nothing fails. */
Test(hotkey, group_output_survives_every_oom, .timeout = 120)
{
    char *dir = tu_mkdtemp();
    input in = gen(1500, 1, 5, 5);
    for (long n = 0;; n++) {
        em_reducer *r = group_reducer(dir, 16 << 10, EM_REDUCE_GROUP);
        em_err err = EM_ERR_INIT;
        em_rec out;
        int rc;
        feed(r, &in);
        em_test_fail_alloc_after(n);
        while ((rc = em_reducer_next(r, &out, &err)) == 1)
            ;
        em_test_alloc_reset();
        if (rc == 0) {
            em_reducer_free(r);
            r = group_reducer(dir, 16 << 10, EM_REDUCE_GROUP);
            feed(r, &in);
            size_t largest;
            cr_assert_eq(check_groups(r, &in, &largest), distinct_keys(&in));
            em_reducer_free(r);
            break;
        }
        cr_assert_eq(rc, EM_ENOMEM, "allocation %ld: rc %d (%s)", n, rc, err.msg);
        em_reducer_free(r);
        cr_assert_eq(tu_count_files(dir), 0, "allocation %ld: files left", n);
    }
    input_free(&in);
    tu_rmdir(dir);
}

/* ---------------------------------------------------------------- spill lists */

static em_spill_list *list_new(const char *dir, size_t budget)
{
    em_err err = EM_ERR_INIT;
    em_spill_list *l = em_spill_list_new(dir, budget, 0, &err);
    cr_assert(l, "%s", err.msg);
    return l;
}

/* Reads l from the start and checks it holds values 0..n-1 of make_val (length 8 + i%300,
 * every 7th empty). */
static void check_list(em_spill_list *l, size_t n)
{
    em_err err = EM_ERR_INIT;
    uint8_t want[320];
    em_slice v;
    size_t i = 0;
    int rc;
    cr_assert_eq(em_spill_list_rewind(l, &err), 0, "%s", err.msg);
    while ((rc = em_spill_list_next(l, &v, &err)) == 1) {
        size_t len = i % 7 == 6 ? 0 : make_val(want, i, 8 + i % 300);
        cr_assert_eq(v.n, len, "value %zu", i);
        cr_assert(len == 0 || memcmp(v.p, want, len) == 0, "value %zu", i);
        i++;
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(i, n);
}

static void fill_list(em_spill_list *l, size_t n)
{
    em_err err = EM_ERR_INIT;
    uint8_t buf[320];
    for (size_t i = 0; i < n; i++) {
        size_t len = i % 7 == 6 ? 0 : make_val(buf, i, 8 + i % 300);
        cr_assert_eq(em_spill_list_add(l, em_slice_make(len ? buf : NULL, len), &err), 0,
                     "%s", err.msg);
    }
}

static void list_case(size_t budget, bool spills)
{
    char *dir = tu_mkdtemp();
    em_spill_list *l = list_new(dir, budget);
    em_err err = EM_ERR_INIT;
    uint64_t count, bytes;
    fill_list(l, 3000);
    cr_assert_eq(em_spill_list_count(l), 3000);
    cr_assert_eq(em_spill_list_is_spilled(l), spills);
    check_list(l, 3000);
    check_list(l, 3000);   /* read back any number of times */
    cr_assert_eq(em_spill_list_add(l, em_slice_make("x", 1), &err), EM_EINVAL);
    em_spill_list_spills(l, &count, &bytes);
    cr_assert_eq(count, spills ? 1 : 0);
    cr_assert_eq(bytes > 0, spills);
    cr_assert_eq(tu_count_files(dir), spills ? 1 : 0);
    em_spill_list_reset(l);
    cr_assert_eq(tu_count_files(dir), 0, "reset removes the file");
    fill_list(l, 10);   /* usable again */
    check_list(l, 10);
    em_spill_list_free(l);
    cr_assert_eq(tu_count_files(dir), 0);
    tu_rmdir(dir);
}

Test(hotkey, spill_list_in_memory) { list_case(1 << 20, false); }
Test(hotkey, spill_list_partly_spilled) { list_case(16 << 10, true); }
Test(hotkey, spill_list_all_in_file) { list_case(0, true); }

Test(hotkey, spill_list_misuse)
{
    char *dir = tu_mkdtemp();
    em_spill_list *l = list_new(dir, 0);
    em_err err = EM_ERR_INIT;
    em_slice v;
    cr_assert_eq(em_spill_list_next(l, &v, &err), EM_EINVAL, "next before rewind");
    cr_assert_eq(em_spill_list_rewind(l, &err), 0);
    cr_assert_eq(em_spill_list_next(l, &v, &err), 0, "empty");
    em_spill_list_free(l);
    em_spill_list_free(NULL);
    cr_assert_null(em_spill_list_new(NULL, 0, 0, &err));
    cr_assert_eq(err.code, EM_EINVAL);
    tu_rmdir(dir);
}

/* The one file in dir (the list's). */
static void only_file(const char *dir, char *path, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    path[0] = 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            snprintf(path, n, "%s/%s", dir, e->d_name);
    closedir(d);
    cr_assert(path[0], "no file in %s", dir);
}

Test(hotkey, spill_list_corrupt_file)
{
    char *dir = tu_mkdtemp(), path[600];
    em_spill_list *l = list_new(dir, 0);
    em_err err = EM_ERR_INIT;
    em_slice v;
    int rc;
    fill_list(l, 2000);
    cr_assert_eq(em_spill_list_rewind(l, &err), 0, "%s", err.msg);
    only_file(dir, path, sizeof path);
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, "\xff\xff\xff\xff", 4, 100), 4);   /* inside the first block */
    close(fd);
    while ((rc = em_spill_list_next(l, &v, &err)) == 1)
        ;
    cr_assert_eq(rc, EM_ECORRUPT, "rc %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
    cr_assert_eq(em_spill_list_next(l, &v, &err), EM_ECORRUPT, "stays failed");
    cr_assert_eq(tu_count_files(dir), 0, "a failed list removes its file");
    em_spill_list_free(l);
    tu_rmdir(dir);
}

Test(hotkey, spill_list_unwritable_dir)
{
    char *dir = tu_mkdtemp(), sub[600];
    snprintf(sub, sizeof sub, "%s/missing", dir);
    em_spill_list *l = list_new(sub, 8);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_spill_list_add(l, em_slice_make("ab", 2), &err), 0, "fits in memory");
    int rc = em_spill_list_add(l, em_slice_make("too long", 8), &err);
    cr_assert_eq(rc, EM_EIO, "rc %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, sub), "%s", err.msg);
    cr_assert_eq(em_spill_list_add(l, em_slice_make("c", 1), &err), EM_EIO, "stays failed");
    em_spill_list_reset(l);
    cr_assert_eq(em_spill_list_add(l, em_slice_make("c", 1), &err), 0, "usable after reset");
    em_spill_list_free(l);
    tu_rmdir(dir);
}
