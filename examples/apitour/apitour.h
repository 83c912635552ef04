/* examples/apitour/apitour.h - what the files of the apitour job library share: its user
 * functions (fns.c), resolved by name from the tour's plans, and the canonical printing of
 * results (print.c) that the tour (tour.c) calls. */
#ifndef EMBER_EXAMPLES_APITOUR_H
#define EMBER_EXAMPLES_APITOUR_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/ember.h"

/* ---------------------------------------------------------------- user functions (fns.c) */
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

/* ---------------------------------------------------------------- canonical output (print.c) */
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

typedef struct strs {
    char **s;
    size_t n, cap;
} strs;

typedef int (*records_action)(em_rdd *r, size_t n, em_records *out, em_err *err);

extern const char *at_workdir;
extern int at_errors;
/* qsort comparator of C strings (char *). */
int at_cmp_str(const void *a, const void *b);
void at_strs_add(strs *l, char *s);
void at_strs_free(strs *l);
void at_emit_line(const char *name, const strs *l);
void at_report(const char *name, const em_records *r, int fl);
void at_failed(const char *name, const em_err *err);
void at_expect_error(const char *name, int rc, int want, const em_err *err);
void at_collect(const char *name, em_rdd *r, int fl);
void at_partitions(const char *name, em_rdd *r, int fl);
void at_count(const char *name, em_rdd *r);
void at_take_like(const char *name, records_action fn, em_rdd *r, size_t n, int fl);
void at_print_value(const char *name, int rc, const em_vbuf *v, bool i64, const em_err *err);

#endif /* EMBER_EXAMPLES_APITOUR_H */
