/* examples/apitour/print.c - canonical printing of the tour's results (see tour.c, CANONICAL
 * OUTPUT): records, lists, pairs and paths as text, one line per operation. */
#include <errno.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "examples/apitour/apitour.h"

const char *at_workdir;   /* the tour's work directory, printed as $W */
int at_errors;            /* unexpected errors so far */


void at_strs_add(strs *l, char *s)
{
    l->s = em_arr_xgrow(l->s, &l->cap, l->n + 1, sizeof *l->s);
    l->s[l->n++] = s;
}

void at_strs_free(strs *l)
{
    for (size_t i = 0; i < l->n; i++)
        em_free(l->s[i]);
    em_free(l->s);
    memset(l, 0, sizeof *l);
}

int at_cmp_str(const void *a, const void *b)
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
        at_strs_add(&l, r_bytes(item, fl & ITEM_I64));
    if ((fl & VAL_SORT) && l.n)
        qsort(l.s, l.n, sizeof *l.s, at_cmp_str);
    char *j = strs_join(&l, " ");
    char *s = em_xasprintf("[%s%s]", j, rc < 0 ? " <bad item>" : "");
    em_free(j);
    at_strs_free(&l);
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
    size_t wl = at_workdir ? strlen(at_workdir) : 0;
    if ((fl & KEY_PATH) && wl && r->key.n >= wl && memcmp(r->key.p, at_workdir, wl) == 0)
        k = em_xasprintf("$W%.*s", (int)(r->key.n - wl), (const char *)r->key.p + wl);
    else
        k = r_bytes(r->key, fl & KEY_I64);
    char *s = em_xasprintf("(%s:%s)", k, v);
    em_free(k);
    em_free(v);
    return s;
}

/* Prints "name: n=N [all]" or, when long, "name: n=N h=HASH first=[three]". */
void at_emit_line(const char *name, const strs *l)
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

void at_report(const char *name, const em_records *r, int fl)
{
    strs l = {0};
    for (size_t i = 0; i < r->n; i++)
        at_strs_add(&l, r_rec(&r->recs[i], fl));
    if ((fl & UNORDERED) && l.n)
        qsort(l.s, l.n, sizeof *l.s, at_cmp_str);
    at_emit_line(name, &l);
    at_strs_free(&l);
}

void at_failed(const char *name, const em_err *err)
{
    printf("%s: ERROR %d\n", name, err->code);
    fprintf(stderr, "apitour: %s: %s\n", name, err->msg);
    at_errors++;
}

/* An operation that must fail with code `want`. */
void at_expect_error(const char *name, int rc, int want, const em_err *err)
{
    if (rc == want) {
        printf("%s: error %d (as expected)\n", name, want);
        return;
    }
    printf("%s: ERROR got %d, want %d\n", name, rc, want);
    fprintf(stderr, "apitour: %s: %s\n", name, rc < 0 ? err->msg : "succeeded");
    at_errors++;
}

void at_collect(const char *name, em_rdd *r, int fl)
{
    em_records out = {0};
    em_err err = EM_ERR_INIT;
    if (em_rdd_collect(r, &out, &err) < 0)
        at_failed(name, &err);
    else
        at_report(name, &out, fl);
    em_records_destroy(&out);
}

/* Collects glom(r): one list per partition, in partition order. */
void at_partitions(const char *name, em_rdd *r, int fl)
{
    at_collect(name, em_rdd_glom(r), VAL_LIST | fl);
}

void at_count(const char *name, em_rdd *r)
{
    uint64_t n;
    em_err err = EM_ERR_INIT;
    if (em_rdd_count(r, &n, &err) < 0)
        at_failed(name, &err);
    else
        printf("%s: %" PRIu64 " (%u partitions)\n", name, n, em_rdd_num_partitions(r));
}


void at_take_like(const char *name, records_action fn, em_rdd *r, size_t n, int fl)
{
    em_records out = {0};
    em_err err = EM_ERR_INIT;
    if (fn(r, n, &out, &err) < 0)
        at_failed(name, &err);
    else
        at_report(name, &out, fl);
    em_records_destroy(&out);
}

void at_print_value(const char *name, int rc, const em_vbuf *v, bool i64, const em_err *err)
{
    if (rc < 0) {
        at_failed(name, err);
        return;
    }
    char *s = r_bytes(em_slice_make(v->data, v->len), i64);
    printf("%s: %s\n", name, s);
    em_free(s);
}
