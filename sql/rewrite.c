/* sql/rewrite.c - rewrites of predicates before binding.
 *
 * Factoring OR: (c AND p) OR (c AND q) is c AND (p OR q). A condition that every branch of
 * an OR shares (typically a join equality, as in TPC-H Q19) comes out as a conjunct of its
 * own, so the planner can push it down or make it a hash-join key instead of evaluating the
 * whole OR on a cartesian product. A branch left with no condition makes the OR true, so
 * only the shared conditions remain. */
#include <string.h>
#include <strings.h>

#include "sql/sql_int.h"

static bool same_name(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcasecmp(a, b) == 0);
}

/* Structural equality of two unbound expressions (subqueries only when identical). */
static bool expr_equal(const sql_expr *a, const sql_expr *b)
{
    if (a == b)
        return true;
    if (a == NULL || b == NULL || a->kind != b->kind || a->op != b->op || a->neg != b->neg ||
        a->distinct != b->distinct || a->cast_type != b->cast_type || a->nargs != b->nargs)
        return false;
    if (a->sub != NULL || b->sub != NULL)
        return false;
    if (a->kind == E_LIT &&
        (a->v.type != b->v.type || em__sql_cmp_total(&a->v, &b->v) != 0))
        return false;
    if (!same_name(a->qual, b->qual) || !same_name(a->name, b->name))
        return false;
    if (a->kind == E_BINARY && (a->op == OP_EQ || a->op == OP_NE) && expr_equal(a->a, b->b) &&
        expr_equal(a->b, b->a))
        return true; /* x = y is y = x */
    if (!expr_equal(a->a, b->a) || !expr_equal(a->b, b->b) || !expr_equal(a->c, b->c))
        return false;
    for (uint32_t i = 0; i < a->nargs; i++)
        if (a->args[i] != a->a && !expr_equal(a->args[i], b->args[i]))
            return false;
    return true;
}

#define MAX_TERMS 64

/* Flattens a tree of `kind` (E_AND or E_OR) nodes into terms; false past MAX_TERMS. */
static bool flatten(sql_expr *e, int kind, sql_expr **terms, uint32_t *n)
{
    if (e->kind == kind)
        return flatten(e->a, kind, terms, n) && flatten(e->b, kind, terms, n);
    if (*n == MAX_TERMS)
        return false;
    terms[(*n)++] = e;
    return true;
}

static sql_expr *join(em_arena *a, int kind, sql_expr *l, sql_expr *r)
{
    if (l == NULL)
        return r;
    sql_expr *e = em_arena_alloc(a, sizeof *e);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof *e);
    e->kind = (uint8_t)kind;
    e->a = l;
    e->b = r;
    e->pos = l->pos;
    e->level = e->col = e->agg = -1;
    return e;
}

/* True when term t of branch 0 occurs in every other branch. */
static bool shared(sql_expr *t, sql_expr *(*conj)[MAX_TERMS], const uint32_t *nconj,
                   uint32_t nbr)
{
    for (uint32_t b = 1; b < nbr; b++) {
        bool found = false;
        for (uint32_t k = 0; k < nconj[b] && !found; k++)
            found = expr_equal(t, conj[b][k]);
        if (!found)
            return false;
    }
    return true;
}

int em__sql_factor_or(em_arena *a, sql_expr **pe)
{
    sql_expr *e = *pe, *br[MAX_TERMS], *common = NULL, *ors = NULL;
    sql_expr *(*conj)[MAX_TERMS];
    uint32_t nbr = 0, nconj[MAX_TERMS];
    bool some_empty = false;
    if (e->kind != E_OR || !flatten(e, E_OR, br, &nbr))
        return 0;
    conj = em_arena_alloc(a, nbr * sizeof *conj);
    if (conj == NULL)
        return EM_ENOMEM;
    for (uint32_t b = 0; b < nbr; b++) {
        nconj[b] = 0;
        if (!flatten(br[b], E_AND, conj[b], &nconj[b]))
            return 0;
    }
    uint32_t nshared = 0;
    for (uint32_t k = 0; k < nconj[0]; k++)
        if (shared(conj[0][k], conj, nconj, nbr)) {
            if ((common = join(a, E_AND, common, conj[0][k])) == NULL)
                return EM_ENOMEM;
            nshared++;
        }
    if (nshared == 0)
        return 0;
    for (uint32_t b = 0; b < nbr; b++) { /* each branch without the shared terms */
        sql_expr *rest = NULL;
        for (uint32_t k = 0; k < nconj[b]; k++) {
            bool is_shared = false;
            for (uint32_t c = 0; c < nconj[0] && !is_shared; c++)
                is_shared = expr_equal(conj[b][k], conj[0][c]) &&
                            shared(conj[0][c], conj, nconj, nbr);
            if (!is_shared && (rest = join(a, E_AND, rest, conj[b][k])) == NULL)
                return EM_ENOMEM;
        }
        if (rest == NULL)
            some_empty = true;
        else if ((ors = join(a, E_OR, ors, rest)) == NULL)
            return EM_ENOMEM;
    }
    if (!some_empty && (common = join(a, E_AND, common, ors)) == NULL)
        return EM_ENOMEM;
    *pe = common;
    return 0;
}
