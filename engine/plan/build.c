/* engine/plan/build.c - setters for whoever builds a plan (the driver's API, engine/api):
 * a node's functions, context blob, zero value and partitioning, each a deep copy into
 * memory the node owns, and the node's plan error.
 *
 * ERRORS: a builder never stops half-way. The first problem met (a function name the
 * registry rejects, a bad argument) is recorded in the node's err, prefixed by the node's
 * name and id, and later ones are dropped: the scheduler refuses to run an invalid node
 * and reports that first cause.
 * THREADS: one thread per node (the builder's). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/plan/plan_int.h"

void em_plan_node_fail(em_plan_node *n, int code, const char *fmt, ...)
{
    if (n->err.code != 0)
        return;
    char msg[EM_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    em_err_set(&n->err, code, "%s [%u]: %s", n->name ? n->name : em_op_name(n->op), n->id, msg);
}

bool em_plan_node_set_fn(em_plan_node *n, char **slot, const char *fn, em_fn_kind kind)
{
    em_any_fn f;
    em_err err = EM_ERR_INIT;
    if (!fn) {
        em_plan_node_fail(n, EM_EINVAL, "missing function name");
        return false;
    }
    if (em_registry_resolve(fn, kind, &f, &err) < 0) {
        em_plan_node_fail(n, err.code, "%s", err.msg);
        return false;
    }
    em_free(*slot);
    *slot = em_xstrdup(fn);
    return true;
}

static uint8_t *dup_bytes(em_slice s)
{
    uint8_t *p = em_xmalloc(s.n ? s.n : 1);
    if (s.n)
        memcpy(p, s.p, s.n);
    return p;
}

void em_plan_node_set_blob(em_plan_node *n, em_slice blob)
{
    em_free(n->blob);
    n->blob = blob.n ? dup_bytes(blob) : NULL;
    n->blob_len = blob.n;
}

void em_plan_node_set_zero(em_plan_node *n, em_slice zero)
{
    em_free(n->zero);
    n->zero = dup_bytes(zero);   /* non-NULL even when empty: "has a zero" */
    n->zero_len = zero.n;
}

void em_plan_node_set_part(em_plan_node *n, const em_part_spec *spec)
{
    for (uint32_t i = 0; i < n->part.nbounds; i++)
        em_free((void *)n->part.bounds[i].p);
    em_free(n->part.bounds);
    n->part = *spec;
    n->part.bounds = NULL;
    n->part.nbounds = 0;
    if (spec->kind != EM_PART_RANGE || spec->nbounds == 0)
        return;
    n->part.bounds = em_xcalloc(spec->nbounds, sizeof *n->part.bounds);
    for (uint32_t i = 0; i < spec->nbounds; i++)
        n->part.bounds[i] = em_slice_make(dup_bytes(spec->bounds[i]), spec->bounds[i].n);
    n->part.nbounds = spec->nbounds;
}
