/* examples/apitour/fns.c - the user functions of the apitour job library (apitour.h),
 * resolved by name (dlsym in the job library) from the tour's plans. */
#include <errno.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "examples/apitour/apitour.h"

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
