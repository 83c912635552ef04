/* examples/apitour.c - every source, transformation and action of engine/ember.h on seeded
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

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);
int at_square(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int at_explode(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int at_is_mult(const em_fn_ctx *c, const em_rec *in, em_err *err);
int at_part_stats(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                  em_err *err);
int at_add_bcast(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int at_fmv(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int at_mod7(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int at_reverse(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int at_fmt(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int at_count_acc(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int at_sum(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int at_longest(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int at_list_add(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err);
int at_foreach(const em_fn_ctx *c, uint32_t index, em_iter *in, em_err *err);
int at_fail_once(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

static const em_slice none = {NULL, 0};

/* ---------------------------------------------------------------- user functions */

static int get_i64(em_slice s, int64_t *v, const char *fn, em_err *err)
{
    if (s.n != 8)
        return em_err_set(err, EM_ECORRUPT, "%s: value of %zu bytes (want 8)", fn, s.n);
    *v = em_dec_i64(s.p);
    return 0;
}

static int emit_i64(em_emitter *out, int64_t v, em_err *err)
{
    uint8_t b[8];
    em_enc_i64(b, v);
    return em_emit_val(out, em_slice_make(b, 8), err);
}

/* v -> v*v */
int at_square(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    int64_t v = 0;
    int rc = get_i64(in->val, &v, "at_square", err);
    return rc < 0 ? rc : emit_i64(out, v * v, err);
}

/* v -> v%3 copies of v (none for multiples of 3) */
int at_explode(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    int64_t v = 0;
    int rc = get_i64(in->val, &v, "at_explode", err);
    for (int64_t i = 0; rc == 0 && i < ((v % 3) + 3) % 3; i++)
        rc = emit_i64(out, v, err);
    return rc;
}

/* keeps multiples of the blob's i64 */
int at_is_mult(const em_fn_ctx *c, const em_rec *in, em_err *err)
{
    int64_t v = 0, m = 1;
    int rc = get_i64(in->val, &v, "at_is_mult", err);
    if (rc == 0)
        rc = get_i64(c->blob, &m, "at_is_mult blob", err);
    return rc < 0 ? rc : v % m == 0;
}

/* one "p<index> n=<records> s=<sum of i64 values or of lengths>" record per partition */
int at_part_stats(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                  em_err *err)
{
    (void)c;
    em_rec r;
    int rc;
    uint64_t n = 0;
    int64_t sum = 0;
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        n++;
        sum += r.val.n == 8 ? em_dec_i64(r.val.p) : (int64_t)r.val.n;
    }
    if (rc < 0)
        return rc;
    char s[80];
    int len = snprintf(s, sizeof s, "p%u n=%" PRIu64 " s=%" PRId64, index, n, sum);
    return em_emit_val(out, em_slice_make(s, (size_t)len), err);
}

/* map_values: v -> v + broadcast's first i64 + broadcast length % 1000; blob: u32 id */
int at_add_bcast(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    int64_t v = 0, b;
    uint32_t id;
    em_slice bv;
    if (c->blob.n != 4)
        return em_err_set(err, EM_EINVAL, "at_add_bcast: blob of %zu bytes", c->blob.n);
    memcpy(&id, c->blob.p, 4);
    int rc = get_i64(in->val, &v, "at_add_bcast", err);
    if (rc == 0)
        rc = em_task_broadcast(c->task, id, &bv, err);
    if (rc == 0 && bv.n < 8)
        rc = em_err_set(err, EM_ECORRUPT, "at_add_bcast: broadcast of %zu bytes", bv.n);
    if (rc < 0)
        return rc;
    b = em_dec_i64(bv.p);
    return emit_i64(out, v + b + (int64_t)(bv.n % 1000), err);
}

/* flat_map_values: odd v -> v, v + 1000; even v -> nothing */
int at_fmv(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    int64_t v = 0;
    int rc = get_i64(in->val, &v, "at_fmv", err);
    if (rc == 0 && v % 2 != 0 && (rc = emit_i64(out, v, err)) == 0)
        rc = emit_i64(out, v + 1000, err);
    return rc;
}

/* key_by: v -> key v mod 7 */
int at_mod7(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    int64_t v = 0;
    int rc = get_i64(in->val, &v, "at_mod7", err);
    return rc < 0 ? rc : emit_i64(out, ((v % 7) + 7) % 7, err);
}

/* sort_by key: the record's bytes reversed */
int at_reverse(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    uint8_t small[64];
    uint8_t *b = in->val.n <= sizeof small ? small : malloc(in->val.n);
    if (!b)
        return em_err_set(err, EM_ENOMEM, "at_reverse: %zu bytes", in->val.n);
    for (size_t i = 0; i < in->val.n; i++)
        b[i] = in->val.p[in->val.n - 1 - i];
    int rc = em_emit_val(out, em_slice_make(b, in->val.n), err);
    if (b != small)
        free(b);
    return rc;
}

/* (key, i64) -> "key\tvalue" */
int at_fmt(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    int64_t v = 0;
    int rc = get_i64(in->val, &v, "at_fmt", err);
    if (rc < 0)
        return rc;
    em_vbuf b;
    em_vbuf_init(&b);
    if (em_vbuf_append(&b, in->key.p, in->key.n) < 0 ||
        em_vbuf_printf(&b, "\t%" PRId64, v) < 0)
        rc = em_err_set(err, EM_ENOMEM, "at_fmt: out of memory");
    else
        rc = em_emit_val(out, em_slice_make(b.data, b.len), err);
    em_vbuf_destroy(&b);
    return rc;
}

/* identity, adding 1 to accumulator (blob: u32 id) per record */
int at_count_acc(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    uint32_t id;
    if (c->blob.n != 4)
        return em_err_set(err, EM_EINVAL, "at_count_acc: blob of %zu bytes", c->blob.n);
    memcpy(&id, c->blob.p, 4);
    em_task_acc_add_i64(c->task, id, 1);
    return em_emit(out, in, err);
}

int at_sum(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    int64_t x = 0, y = 0;
    int rc = get_i64(a, &x, "at_sum", err);
    if (rc == 0)
        rc = get_i64(b, &y, "at_sum", err);
    if (rc < 0)
        return rc;
    uint8_t s[8];
    em_enc_i64(s, x + y);
    return em_vbuf_append(out, s, 8) < 0 ? em_err_set(err, EM_ENOMEM, "at_sum") : 0;
}

/* the longer of a and b; the bytewise larger on a tie (commutative) */
int at_longest(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    size_t m = a.n < b.n ? a.n : b.n;
    int cmp = a.n != b.n ? (a.n > b.n ? 1 : -1) : (m ? memcmp(a.p, b.p, m) : 0);
    em_slice w = cmp >= 0 ? a : b;
    return em_vbuf_append(out, w.p, w.n) < 0 ? em_err_set(err, EM_ENOMEM, "at_longest") : 0;
}

/* combine_by_key merge_value: (em_list, value) -> the list with value appended */
int at_list_add(const em_fn_ctx *c, em_slice a, em_slice b, em_vbuf *out, em_err *err)
{
    (void)c;
    em_list_iter it;
    em_slice item;
    int rc = em_list_iter_init(&it, a, err);
    int64_t off = rc < 0 ? rc : em_list_begin(out);
    if (off < 0)
        return rc < 0 ? rc : em_err_set(err, EM_ENOMEM, "at_list_add");
    uint32_t n = 0;
    while ((rc = em_list_iter_next(&it, &item, err)) == 1) {
        if (em_list_append(out, item) < 0)
            return em_err_set(err, EM_ENOMEM, "at_list_add");
        n++;
    }
    if (rc < 0)
        return rc;
    if (em_list_append(out, b) < 0)
        return em_err_set(err, EM_ENOMEM, "at_list_add");
    em_list_end(out, off, n + 1);
    return 0;
}

/* foreach_partition: accumulators (blob: u32 count id, u32 sum id) += records, sum */
int at_foreach(const em_fn_ctx *c, uint32_t index, em_iter *in, em_err *err)
{
    (void)index;
    uint32_t ids[2];
    if (c->blob.n != 8)
        return em_err_set(err, EM_EINVAL, "at_foreach: blob of %zu bytes", c->blob.n);
    memcpy(ids, c->blob.p, 8);
    em_rec r;
    int rc;
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        int64_t v = 0;
        if ((rc = get_i64(r.val, &v, "at_foreach", err)) < 0)
            return rc;
        em_task_acc_add_i64(c->task, ids[0], 1);
        em_task_acc_add_f64(c->task, ids[1], (double)v * 0.5);
    }
    return rc;
}

/* retry mode: fails the first attempt of each task, leaving <blob dir>/fail-<partition>
 * with this process's pid; later attempts emit (partition, pid). */
int at_fail_once(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)in;
    uint32_t part = em_task_partition(c->task);
    if (em_task_attempt(c->task) == 0) {
        char path[4200];
        snprintf(path, sizeof path, "%.*s/fail-%u", (int)(c->blob.n < 4000 ? c->blob.n : 4000),
                 (const char *)c->blob.p, part);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
        return em_err_set(err, EM_EIO, "at_fail_once: partition %u fails its first attempt "
                          "(pid %d)", part, (int)getpid());
    }
    uint8_t k[8], v[8];
    em_enc_i64(k, part);
    em_enc_i64(v, getpid());
    return em_emit_kv(out, em_slice_make(k, 8), em_slice_make(v, 8), err);
}

/* ---------------------------------------------------------------- canonical output */

enum {
    VAL_I64 = 0x1,      /* value: decimal i64 */
    VAL_PAIR = 0x2,     /* value: em_pair "(left,right)", '-' for an absent side */
    VAL_LIST = 0x4,     /* value: em_list "[a b c]" */
    VAL_SORT = 0x8,     /* with VAL_LIST/VAL_COGROUP: items sorted */
    VAL_COGROUP = 0x10, /* value: em_pair of two em_lists */
    KEY_I64 = 0x20,     /* key: decimal i64 */
    KEY_PATH = 0x40,    /* key: a path; the work dir prefix printed as $W */
    ITEM_I64 = 0x80,    /* list items and pair sides: decimal i64 */
    UNORDERED = 0x100,  /* the operation's order is unspecified: sort the records */
};

static const char *g_workdir;
static int g_errors;

typedef struct strs {
    char **s;
    size_t n, cap;
} strs;

static void strs_add(strs *l, char *s)
{
    l->s = em_arr_xgrow(l->s, &l->cap, l->n + 1, sizeof *l->s);
    l->s[l->n++] = s;
}

static void strs_free(strs *l)
{
    for (size_t i = 0; i < l->n; i++)
        em_free(l->s[i]);
    em_free(l->s);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Joins the items with sep (caller frees). */
static char *strs_join(const strs *l, const char *sep)
{
    em_vbuf b;
    em_vbuf_init(&b);
    em_vbuf_printf(&b, "%s", "");
    for (size_t i = 0; i < l->n; i++)
        em_vbuf_printf(&b, "%s%s", i ? sep : "", l->s[i]);
    return (char *)em_vbuf_steal(&b, NULL);
}

static char *r_bytes(em_slice s, bool i64)
{
    if (i64 && s.n == 8)
        return em_xasprintf("%" PRId64, em_dec_i64(s.p));
    if (s.n > 40)
        return em_xasprintf("#%zu:%016" PRIx64, s.n, em_hash64(s.p, s.n, 0));
    bool text = s.n > 0;
    for (size_t i = 0; i < s.n; i++)
        text &= s.p[i] >= 0x20 && s.p[i] < 0x7f && s.p[i] != '\'';
    if (text || s.n == 0)
        return em_xasprintf("'%.*s'", (int)s.n, (const char *)s.p);
    char *h = em_xmalloc(2 * s.n + 3);
    memcpy(h, "0x", 2);
    for (size_t i = 0; i < s.n; i++)
        snprintf(h + 2 + 2 * i, 3, "%02x", s.p[i]);
    return h;
}

static char *r_list(em_slice v, int fl)
{
    em_list_iter it;
    em_slice item;
    em_err err = EM_ERR_INIT;
    strs l = {0};
    if (em_list_iter_init(&it, v, &err) < 0)
        return em_xasprintf("<bad list: %s>", err.msg);
    int rc;
    while ((rc = em_list_iter_next(&it, &item, &err)) == 1)
        strs_add(&l, r_bytes(item, fl & ITEM_I64));
    if ((fl & VAL_SORT) && l.n)
        qsort(l.s, l.n, sizeof *l.s, cmp_str);
    char *j = strs_join(&l, " ");
    char *s = em_xasprintf("[%s%s]", j, rc < 0 ? " <bad item>" : "");
    em_free(j);
    strs_free(&l);
    return s;
}

static char *r_value(em_slice v, int fl)
{
    if (!(fl & (VAL_PAIR | VAL_LIST | VAL_COGROUP)))
        return r_bytes(v, fl & VAL_I64);
    if (fl & VAL_LIST)
        return r_list(v, fl);
    em_slice a, b;
    bool ha, hb;
    em_err err = EM_ERR_INIT;
    if (em_pair_decode(v, &a, &ha, &b, &hb, &err) < 0)
        return em_xasprintf("<bad pair: %s>", err.msg);
    char *x = !ha ? em_xstrdup("-") : (fl & VAL_COGROUP) ? r_list(a, fl) : r_bytes(a, fl & ITEM_I64);
    char *y = !hb ? em_xstrdup("-") : (fl & VAL_COGROUP) ? r_list(b, fl) : r_bytes(b, fl & ITEM_I64);
    char *s = em_xasprintf("(%s,%s)", x, y);
    em_free(x);
    em_free(y);
    return s;
}

static char *r_rec(const em_rec *r, int fl)
{
    char *v = r_value(r->val, fl);
    if (!r->key.p)
        return v;
    char *k;
    size_t wl = g_workdir ? strlen(g_workdir) : 0;
    if ((fl & KEY_PATH) && wl && r->key.n >= wl && memcmp(r->key.p, g_workdir, wl) == 0)
        k = em_xasprintf("$W%.*s", (int)(r->key.n - wl), (const char *)r->key.p + wl);
    else
        k = r_bytes(r->key, fl & KEY_I64);
    char *s = em_xasprintf("(%s:%s)", k, v);
    em_free(k);
    em_free(v);
    return s;
}

/* Prints "name: n=N [all]" or, when long, "name: n=N h=HASH first=[three]". */
static void emit_line(const char *name, const strs *l)
{
    size_t total = 0;
    uint64_t h = 0;
    for (size_t i = 0; i < l->n; i++) {
        total += strlen(l->s[i]) + 1;
        h = em_hash64(l->s[i], strlen(l->s[i]), h + i);
    }
    if (total <= 600) {
        char *j = strs_join(l, " ");
        printf("%s: n=%zu [%s]\n", name, l->n, j);
        em_free(j);
        return;
    }
    strs first = {l->s, l->n < 3 ? l->n : 3, 0};
    char *j = strs_join(&first, " ");
    printf("%s: n=%zu h=%016" PRIx64 " first=[%s]\n", name, l->n, h, j);
    em_free(j);
}

static void report(const char *name, const em_records *r, int fl)
{
    strs l = {0};
    for (size_t i = 0; i < r->n; i++)
        strs_add(&l, r_rec(&r->recs[i], fl));
    if ((fl & UNORDERED) && l.n)
        qsort(l.s, l.n, sizeof *l.s, cmp_str);
    emit_line(name, &l);
    strs_free(&l);
}

static void failed(const char *name, const em_err *err)
{
    printf("%s: ERROR %d\n", name, err->code);
    fprintf(stderr, "apitour: %s: %s\n", name, err->msg);
    g_errors++;
}

/* An operation that must fail with code `want`. */
static void expect_error(const char *name, int rc, int want, const em_err *err)
{
    if (rc == want) {
        printf("%s: error %d (as expected)\n", name, want);
        return;
    }
    printf("%s: ERROR got %d, want %d\n", name, rc, want);
    fprintf(stderr, "apitour: %s: %s\n", name, rc < 0 ? err->msg : "succeeded");
    g_errors++;
}

static void collect(const char *name, em_rdd *r, int fl)
{
    em_records out = {0};
    em_err err = EM_ERR_INIT;
    if (em_rdd_collect(r, &out, &err) < 0)
        failed(name, &err);
    else
        report(name, &out, fl);
    em_records_destroy(&out);
}

/* Collects glom(r): one list per partition, in partition order. */
static void partitions(const char *name, em_rdd *r, int fl)
{
    collect(name, em_rdd_glom(r), VAL_LIST | fl);
}

static void count(const char *name, em_rdd *r)
{
    uint64_t n;
    em_err err = EM_ERR_INIT;
    if (em_rdd_count(r, &n, &err) < 0)
        failed(name, &err);
    else
        printf("%s: %" PRIu64 " (%u partitions)\n", name, n, em_rdd_num_partitions(r));
}

typedef int (*records_action)(em_rdd *r, size_t n, em_records *out, em_err *err);

static void take_like(const char *name, records_action fn, em_rdd *r, size_t n, int fl)
{
    em_records out = {0};
    em_err err = EM_ERR_INIT;
    if (fn(r, n, &out, &err) < 0)
        failed(name, &err);
    else
        report(name, &out, fl);
    em_records_destroy(&out);
}

static void print_value(const char *name, int rc, const em_vbuf *v, bool i64, const em_err *err)
{
    if (rc < 0) {
        failed(name, err);
        return;
    }
    char *s = r_bytes(em_slice_make(v->data, v->len), i64);
    printf("%s: %s\n", name, s);
    em_free(s);
}

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
    collect("parallelize.bytes", in->words, 0);
    collect("parallelize.fixed", in->small, VAL_I64);
    collect("parallelize.kv", in->kv, VAL_I64);
    collect("parallelize.kv_big", in->big, 0);
    collect("parallelize.empty", in->empty, 0);
    collect("range.up", in->nums, VAL_I64);
    collect("range.down", in->down, VAL_I64);
    em_rdd *t = em_text_file(sc, text, 3);
    collect("text_file", t, 0);
    collect("text_file.lengths", em_rdd_map_partitions(t, "at_part_stats", none, false), 0);
    collect("whole_text_files", em_whole_text_files(sc, whole, 2), KEY_PATH | UNORDERED);
}

static void tour_narrow(em_context *sc, inputs *in, uint32_t bcast, uint64_t seed)
{
    uint8_t seven[8];
    em_enc_i64(seven, 7);
    collect("map", em_rdd_map(in->nums, "at_square", none), VAL_I64);
    collect("flat_map", em_rdd_flat_map(in->down, "at_explode", none), VAL_I64);
    collect("flat_map.builtin", em_rdd_flat_map(em_rdd_map(in->words, "em.identity", none),
                                                "em.split_words", none), 0);
    collect("filter", em_rdd_filter(in->nums, "at_is_mult", em_slice_make(seven, 8)), VAL_I64);
    collect("map_partitions", em_rdd_map_partitions(in->small, "at_part_stats", none, false), 0);
    collect("map_partitions.kv", em_rdd_map_partitions(in->kv, "at_part_stats", none, true), 0);
    em_slice b = em_slice_make(&bcast, 4);
    collect("map_values+broadcast", em_rdd_map_values(in->kv, "at_add_bcast", b), VAL_I64);
    collect("flat_map_values", em_rdd_flat_map_values(in->kv, "at_fmv", none), VAL_I64);
    collect("key_by", em_rdd_key_by(in->down, "at_mod7", none), KEY_I64 | VAL_I64);
    collect("keys", em_rdd_keys(in->kv), 0);
    collect("values", em_rdd_values(in->kv), VAL_I64);
    collect("union", em_rdd_union(in->small, in->down), VAL_I64);
    collect("distinct", em_rdd_distinct(in->words, 3), UNORDERED);
    collect("distinct.kv", em_rdd_distinct(em_rdd_union(in->kv, in->kv), 2), VAL_I64 | UNORDERED);
    collect("sample", em_rdd_sample(in->nums, false, 0.3, seed), VAL_I64);
    collect("sample.replacement", em_rdd_sample(in->nums, true, 0.5, seed + 1), VAL_I64);
    collect("sample.kv", em_rdd_sample(in->kv, false, 0.1, seed + 2), VAL_I64);
    partitions("glom", in->small, ITEM_I64);
    partitions("glom.words", in->words, 0);
    collect("cartesian", em_rdd_cartesian(in->small, em_range(sc, 0, 3, 1, 2)),
            KEY_I64 | VAL_I64 | UNORDERED);
    collect("zip_with_index", em_rdd_zip_with_index(in->words), VAL_I64);
    collect("zip_with_index.empty_parts", em_rdd_zip_with_index(in->small), KEY_I64 | VAL_I64);
    em_rdd *rp = em_rdd_repartition(in->words, 3);
    count("repartition.count", rp);
    partitions("repartition", rp, VAL_SORT);
    partitions("coalesce", em_rdd_coalesce(in->nums, 2, false), ITEM_I64);
    partitions("coalesce.small", em_rdd_coalesce(in->small, 2, false), ITEM_I64);
    partitions("coalesce.shuffle", em_rdd_coalesce(in->nums, 3, true), ITEM_I64 | VAL_SORT);
}

static void tour_pairs(em_context *sc, inputs *in)
{
    (void)sc;
    uint8_t zero[8], one[8];
    em_enc_i64(zero, 0);
    em_enc_i64(one, 1);
    int fl = VAL_I64 | UNORDERED;
    em_rdd *sums = em_rdd_reduce_by_key(in->kv, "em.sum_i64", none, 3);
    collect("reduce_by_key", sums, fl);
    collect("reduce_by_key.user", em_rdd_reduce_by_key(in->kv, "at_sum", none, 2), fl);
    collect("reduce_by_key.big", em_rdd_reduce_by_key(in->big, "at_longest", none, 2), UNORDERED);
    collect("fold_by_key", em_rdd_fold_by_key(in->kv, em_slice_make(one, 8), "em.sum_i64", none,
                                              3), fl);
    collect("aggregate_by_key", em_rdd_aggregate_by_key(in->kv, em_slice_make(zero, 8),
                                                        "em.max_i64", "em.sum_i64", none, 2), fl);
    collect("combine_by_key", em_rdd_combine_by_key(in->kv, NULL, "em.min_i64", "em.min_i64",
                                                    none, 3), fl);
    collect("combine_by_key.lists",
            em_rdd_combine_by_key(in->kv, "em.to_list", "at_list_add", "em.concat_list", none,
                                  2), VAL_LIST | VAL_SORT | ITEM_I64 | UNORDERED);
    collect("group_by_key", em_rdd_group_by_key(in->kv, 3),
            VAL_LIST | VAL_SORT | ITEM_I64 | UNORDERED);
    collect("group_by_key.big", em_rdd_group_by_key(in->big, 2), VAL_LIST | VAL_SORT | UNORDERED);
    int jf = VAL_PAIR | ITEM_I64 | UNORDERED;
    collect("join", em_rdd_join(in->kv, in->other, 3), jf);
    collect("left_outer_join", em_rdd_left_outer_join(in->kv, in->other, 2), jf);
    collect("right_outer_join", em_rdd_right_outer_join(in->kv, in->other, 2), jf);
    collect("full_outer_join", em_rdd_full_outer_join(in->kv, in->other, 4), jf);
    collect("join.big", em_rdd_join(in->big, in->other, 2), VAL_PAIR | UNORDERED);
    collect("cogroup", em_rdd_cogroup(in->kv, in->other, 2),
            VAL_COGROUP | VAL_SORT | ITEM_I64 | UNORDERED);
    collect("sort_by_key.asc", em_rdd_sort_by_key(sums, true, 3), VAL_I64);
    collect("sort_by_key.desc", em_rdd_sort_by_key(sums, false, 2), VAL_I64);
    collect("sort_by_key.big", em_rdd_sort_by_key(in->big, true, 2), 0);
    em_rdd *dw = em_rdd_distinct(in->words, 2);
    collect("sort_by.asc", em_rdd_sort_by(dw, "at_reverse", none, true, 3), 0);
    collect("sort_by.desc", em_rdd_sort_by(dw, "at_reverse", none, false, 2), 0);
    collect("sort_by.nums", em_rdd_sort_by(in->down, "at_mod7", none, true, 1), VAL_I64);
    em_rdd *h = em_rdd_partition_by(sums, EM_PART_HASH, 4);
    printf("partition_by.hash.partitioner: %d\n", (int)em_rdd_partitioner(h));
    partitions("partition_by.hash", h, VAL_SORT);
    em_rdd *rg = em_rdd_partition_by(sums, EM_PART_RANGE, 3);
    printf("partition_by.range.partitioner: %d\n", (int)em_rdd_partitioner(rg));
    partitions("partition_by.range", rg, VAL_SORT);
    partitions("partition_by.big", em_rdd_partition_by(in->big, EM_PART_HASH, 2), VAL_SORT);
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
    print_value("reduce", em_rdd_reduce(in->nums, "em.sum_i64", none, &v, &err), &v, true, &err);
    em_vbuf_destroy(&v);
    print_value("reduce.user", em_rdd_reduce(in->words, "at_longest", none, &v, &err), &v, false,
                &err);
    em_vbuf_destroy(&v);
    print_value("reduce.small", em_rdd_reduce(in->small, "at_sum", none, &v, &err), &v, true,
                &err);
    em_vbuf_destroy(&v);
    expect_error("reduce.empty", em_rdd_reduce(em_range(sc, 0, 0, 1, 3), "em.sum_i64", none, &v,
                                               &err), EM_EINVAL, &err);
    em_vbuf_destroy(&v);
    print_value("fold", em_rdd_fold(eight, em_slice_make(one, 8), "em.sum_i64", none, &v, &err),
                &v, true, &err);
    em_vbuf_destroy(&v);
    print_value("aggregate", em_rdd_aggregate(eight, em_slice_make(zero, 8), "em.max_i64",
                                              "em.sum_i64", none, &v, &err), &v, true, &err);
    em_vbuf_destroy(&v);
    for (uint32_t depth = 1; depth <= 3; depth++) {
        char name[40];
        snprintf(name, sizeof name, "tree_aggregate.depth%u", depth);
        print_value(name, em_rdd_tree_aggregate(eight, em_slice_make(zero, 8), "em.max_i64",
                                                "em.sum_i64", none, depth, &v, &err),
                    &v, true, &err);
        em_vbuf_destroy(&v);
    }
    count("count.kv", in->kv);
    count("count.small", in->small);
    count("count.empty", in->empty);
    em_records out = {0};
    if (em_rdd_count_by_key(in->kv, &out, &err) < 0)
        failed("count_by_key", &err);
    else
        report("count_by_key", &out, VAL_I64 | UNORDERED);
    em_records_destroy(&out);
    if (em_rdd_count_by_value(in->words, &out, &err) < 0)
        failed("count_by_value", &err);
    else
        report("count_by_value", &out, VAL_I64 | UNORDERED);
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
    take_like("take", em_rdd_take, in->words, 7, 0);
    take_like("take.across_empty", em_rdd_take, in->small, 3, VAL_I64);
    take_like("take.zero", em_rdd_take, in->nums, 0, 0);
    take_like("take.kv_all", em_rdd_take, in->kv, 1000, VAL_I64);
    take_like("take.big", em_rdd_take, in->big, 4, 0);
    take_like("first", first_action, in->kv, 1, VAL_I64);
    take_like("first.small", first_action, in->small, 1, VAL_I64);
    em_records out = {0};
    expect_error("first.empty", em_rdd_first(in->empty, &out, &err), EM_EINVAL, &err);
    em_records_destroy(&out);
    take_like("take_ordered", em_rdd_take_ordered, in->words, 5, 0);
    take_like("take_ordered.nums", em_rdd_take_ordered, in->down, 4, VAL_I64);
    take_like("top", em_rdd_top, in->words, 5, 0);
    take_like("top.nums", em_rdd_top, in->down, 4, VAL_I64);
    take_like("top.kv", em_rdd_top, in->kv, 3, 0);
    if (em_rdd_take_sample(in->nums, false, 10, seed, &out, &err) < 0)
        failed("take_sample", &err);
    else
        report("take_sample", &out, VAL_I64);
    em_records_destroy(&out);
    if (em_rdd_take_sample(in->nums, true, 10, seed, &out, &err) < 0)
        failed("take_sample.replacement", &err);
    else
        report("take_sample.replacement", &out, VAL_I64);
    em_records_destroy(&out);
    if (em_rdd_take_sample(in->small, false, 10, seed, &out, &err) < 0)
        failed("take_sample.more_than_all", &err);
    else
        report("take_sample.more_than_all", &out, VAL_I64 | UNORDERED);
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
            failed(lk[i].name, &err);
        else
            report(lk[i].name, &out, VAL_I64 | UNORDERED);
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
        g_errors++;
        return;
    }
    strs l = {0};
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            strs_add(&l, em_xstrdup(e->d_name));
    closedir(d);
    if (l.n)
        qsort(l.s, l.n, sizeof *l.s, cmp_str);
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
    emit_line(name, &l);
    strs_free(&l);
}

static void tour_outputs(em_context *sc, inputs *in, const char *wd)
{
    em_err err = EM_ERR_INIT;
    char *d1 = em_xasprintf("%s/out/words", wd), *d2 = em_xasprintf("%s/out/kv", wd);
    if (em_rdd_save_as_text_file(in->words, d1, &err) < 0)
        failed("save_as_text_file", &err);
    else
        print_dir("save_as_text_file", d1);
    if (em_rdd_save_as_text_file(em_rdd_map(em_rdd_reduce_by_key(in->kv, "em.sum_i64", none, 2),
                                            "at_fmt", none), d2, &err) < 0)
        failed("save_as_text_file.kv", &err);
    else
        print_dir("save_as_text_file.kv", d2);
    expect_error("save_as_text_file.exists", em_rdd_save_as_text_file(in->words, d1, &err),
                 EM_EINVAL, &err);
    em_free(d1);
    em_free(d2);

    uint32_t ids[2] = {em_accumulator_new(sc, "records"), em_accumulator_new(sc, "half_sum")};
    if (em_rdd_foreach_partition(in->down, "at_foreach", em_slice_make(ids, 8), &err) < 0)
        failed("foreach_partition", &err);
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
            failed(name, &err);
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
            failed(name, &err);
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
        failed("persist.shuffled", &err);
    else
        printf("persist.shuffled: count=%" PRIu64 " keys=%" PRIu64 " computed=%" PRId64 "\n",
               n1, n2, em_accumulator_i64(sc, acc));
    em_rdd_unpersist(kv);
    em_rdd *c = em_rdd_cache(em_rdd_map(in->big, "em.identity", none));
    count("cache.big", c);
    collect("cache.big.collect", c, 0);
    const char *ckdir = em_conf_get(em_context_conf(sc), "ember.checkpoint.dir");
    em_rdd *sq = em_rdd_map(in->small, "at_square", none);
    if (ckdir) {
        em_rdd *ck = em_rdd_checkpoint(sq, &err);
        if (!ck)
            failed("checkpoint", &err);
        else {
            printf("checkpoint.depth: %u\n", em_rdd_lineage_depth(ck));
            collect("checkpoint", ck, VAL_I64);
        }
    } else {
        printf("checkpoint: skipped (no ember.checkpoint.dir)\n");
    }
    em_rdd *lc = em_rdd_local_checkpoint(em_rdd_map(in->nums, "at_square", none), &err);
    if (!lc)
        failed("local_checkpoint", &err);
    else {
        printf("local_checkpoint.depth: %u\n", em_rdd_lineage_depth(lc));
        collect("local_checkpoint", lc, VAL_I64);
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
        failed("broadcast", &err);
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
    printf("apitour: %d unexpected error(s)\n", g_errors);
    return g_errors ? 1 : 0;
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
    g_workdir = wd;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = strcmp(argv[1], "retry") == 0
                 ? retry(sc, wd)
                 : tour(sc, wd, argc == 4 ? strtoull(argv[3], NULL, 10) : 1);
    g_workdir = NULL;
    free(wd);
    return rc;
}
