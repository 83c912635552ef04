/* sql/plan.c - from a SELECT's syntax tree to a logical plan: name binding, constant
 * folding, conjunct splitting, predicate push-down, equi-join keys and join ordering.
 *
 * DESIGN
 * - Scopes: a SELECT core's FROM items form a scope; a subquery's scope points at its
 *   enclosing one. A column binds to (level, offset in the wide row): level 0 is the
 *   current query, level k the k-th enclosing one (a correlated reference). A scope whose
 *   names reach an outer scope is marked correlated; its subquery then runs per outer row.
 * - WHERE and the ON conditions of inner joins are split into conjuncts, each with the set
 *   of FROM items it reads (bit mask; FROM lists are capped at 64 items). A conjunct that
 *   reads one item is pushed into that item's scan; the others are applied at the first
 *   join where all their items are present. Conjuncts `l = r` with l reading only the
 *   joined-so-far side and r only the new item become hash-join keys.
 * - Join order: greedy. Start from the item with the fewest estimated rows (a CSV table not
 *   read yet: its bytes / (8 x columns); each pushed conjunct divides by 4); then join the
 *   smallest item connected to the joined set by an equality conjunct, and only when none is
 *   connected, the smallest item at all (a cartesian product). This is what lets 64-way
 *   comma joins (sqllogictest select5) finish. LEFT JOIN items are joined in written order:
 *   WHERE conjuncts are never pushed into their null-supplying side.
 * - Aggregates: an aggregate query's output rows are "group rows": the group's first wide
 *   row followed by one value per aggregate, so non-aggregate expressions over the group
 *   (also bare columns, as SQLite allows) evaluate on the same offsets. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sql/sql_int.h"

typedef struct sql_item {
    const char *alias;      /* the name qualifying its columns */
    uint32_t off, ncols;
    const char **cols;
    const uint8_t *types;
    sql_plan *leaf;         /* P_SCAN or P_SUBQ */
    uint8_t join;
    sql_expr *on;
    uint32_t npushed;       /* conjuncts pushed into the leaf (row estimates) */
} sql_item;

typedef struct sql_scope {
    struct sql_scope *outer;
    sql_item *items;
    uint32_t nitems, width;
    bool correlated;        /* some name bound in an outer scope */
    uint64_t refmask;       /* items read by the expression being bound */
    sql_expr **aggs;        /* aggregates found while binding (agg queries) */
    uint32_t naggs, capaggs;
} sql_scope;

typedef struct planner {
    em_arena *a;
    sql_catalog *cat;
    em_sql_diag *diag;
} planner;

typedef struct conj {
    sql_expr *e;
    uint64_t mask;
    bool used;
} conj;

static void *alloc(planner *pl, size_t n)
{
    void *p = em_arena_alloc(pl->a, n ? n : 1);
    if (p == NULL)
        em__sql_diag(pl->diag, EM_ENOMEM, -1, "out of memory");
    else
        memset(p, 0, n ? n : 1);
    return p;
}

static sql_plan *new_plan(planner *pl, int kind, sql_plan *in, uint32_t width)
{
    sql_plan *p = alloc(pl, sizeof *p);
    if (p != NULL) {
        p->kind = (uint8_t)kind;
        p->in = in;
        p->width = width;
    }
    return p;
}

static sql_plan *plan_select(planner *pl, sql_select *sel, sql_scope *outer, bool *correlated);

/* ---------------------------------------------------------------- constant folding */
static bool is_foldable(const sql_expr *e)
{
    switch (e->kind) {
    case E_UNARY: case E_BINARY: case E_AND: case E_OR: case E_ISNULL: case E_IS:
    case E_BETWEEN: case E_INLIST: case E_CASE: case E_CAST: case E_FUNC: case E_LIKE:
        return true;
    default:
        return false;
    }
}

int em__sql_fold(em_arena *a, sql_expr *e)
{
    bool all_lit = true;
    sql_expr *kids[3] = {e->a, e->b, e->c};
    if (e->kind == E_INSUB || e->kind == E_SUBQ || e->kind == E_EXISTS)
        return 0;
    for (int i = 0; i < 3; i++)
        if (kids[i] != NULL) {
            em__sql_fold(a, kids[i]);
            all_lit &= kids[i]->kind == E_LIT;
        }
    for (uint32_t i = 0; i < e->nargs; i++) {
        if (e->args[i] == e->a)
            continue;
        em__sql_fold(a, e->args[i]);
        all_lit &= e->args[i]->kind == E_LIT;
    }
    if (!all_lit || !is_foldable(e))
        return 0;
    em_sql_diag d = {EM_ERR_INIT, -1};
    sql_exec x = {.arena = a, .diag = &d};
    em_sql_value v;
    if (em__sql_eval(&x, e, NULL, &v) == 0) {
        e->kind = E_LIT;
        e->v = v;
    }
    return 0;
}

/* ---------------------------------------------------------------- binding */
static void suggest(sql_scope *sc, const char *name, char *out, size_t n)
{
    int best = 3;
    const char *bn = NULL;
    for (; sc != NULL; sc = sc->outer)
        for (uint32_t i = 0; i < sc->nitems; i++)
            for (uint32_t c = 0; c < sc->items[i].ncols; c++) {
                int d = em__sql_edit_distance(name, sc->items[i].cols[c]);
                if (d < best && (size_t)d < strlen(name)) {
                    best = d;
                    bn = sc->items[i].cols[c];
                }
            }
    if (bn != NULL)
        snprintf(out, n, " (did you mean '%s'?)", bn);
    else
        out[0] = '\0';
}

static int bind_name(planner *pl, sql_scope *sc, sql_expr *e)
{
    int level = 0;
    for (sql_scope *s = sc; s != NULL; s = s->outer, level++) {
        int found_item = -1, found_col = -1;
        bool qual_seen = false;
        for (uint32_t i = 0; i < s->nitems; i++) {
            sql_item *it = &s->items[i];
            if (e->qual != NULL && (it->alias == NULL || strcasecmp(e->qual, it->alias) != 0))
                continue;
            qual_seen = true;
            for (uint32_t c = 0; c < it->ncols; c++)
                if (strcasecmp(it->cols[c], e->name) == 0) {
                    if (found_item >= 0 && (uint32_t)found_item != i)
                        return em__sql_diag(pl->diag, EM_EPLAN, e->pos,
                                            "column reference '%s' is ambiguous", e->name);
                    if (found_item < 0) {
                        found_item = (int)i;
                        found_col = (int)c;
                    }
                }
        }
        if (found_item >= 0) {
            e->kind = E_COL;
            e->level = level;
            e->col = (int32_t)(s->items[found_item].off + (uint32_t)found_col);
            s->refmask |= (uint64_t)1 << (found_item & 63);
            for (sql_scope *t = sc; t != s; t = t->outer)
                t->correlated = true;
            return 0;
        }
        if (e->qual != NULL && qual_seen)
            break;
    }
    char hint[96];
    if (e->qual != NULL) {
        bool any = false;
        for (sql_scope *s = sc; s != NULL && !any; s = s->outer)
            for (uint32_t i = 0; i < s->nitems; i++)
                any |= s->items[i].alias != NULL && strcasecmp(e->qual, s->items[i].alias) == 0;
        if (!any)
            return em__sql_diag(pl->diag, EM_EPLAN, e->pos, "unknown table '%s' in '%s.%s'",
                                e->qual, e->qual, e->name);
    }
    suggest(sc, e->name, hint, sizeof hint);
    return em__sql_diag(pl->diag, EM_EPLAN, e->pos, "unknown column '%s'%s", e->name, hint);
}

static int bind(planner *pl, sql_scope *sc, sql_expr *e, bool agg_ok);

static int bind_sub(planner *pl, sql_scope *sc, sql_expr *e)
{
    bool corr = false;
    if ((e->plan = plan_select(pl, e->sub, sc, &corr)) == NULL)
        return pl->diag->err.code;
    e->correlated = corr;
    if (e->kind == E_INSUB && e->plan->width != 1)
        return em__sql_diag(pl->diag, EM_EPLAN, e->pos,
                            "subquery in IN returns %u columns (want 1)", e->plan->width);
    if (e->kind == E_SUBQ && e->plan->width != 1)
        return em__sql_diag(pl->diag, EM_EPLAN, e->pos,
                            "scalar subquery returns %u columns (want 1)", e->plan->width);
    return 0;
}

static int bind_agg(planner *pl, sql_scope *sc, sql_expr *e, bool agg_ok)
{
    if (!agg_ok)
        return em__sql_diag(pl->diag, EM_EPLAN, e->pos, "aggregate %s() is not allowed here",
                            e->name);
    for (uint32_t i = 0; i < e->nargs; i++) {
        if (e->args[i]->kind == E_STAR)
            return em__sql_diag(pl->diag, EM_EPLAN, e->args[i]->pos, "'*' is not allowed here");
        if (bind(pl, sc, e->args[i], false) < 0)
            return pl->diag->err.code;
    }
    if (sc->naggs == sc->capaggs) {
        uint32_t nc = sc->capaggs ? sc->capaggs * 2 : 8;
        sql_expr **na = alloc(pl, nc * sizeof *na);
        if (na == NULL)
            return EM_ENOMEM;
        if (sc->naggs)
            memcpy(na, sc->aggs, sc->naggs * sizeof *na);
        sc->aggs = na;
        sc->capaggs = nc;
    }
    e->agg = (int32_t)sc->naggs;
    e->col = (int32_t)(sc->width + sc->naggs);
    sc->aggs[sc->naggs++] = e;
    return 0;
}

static int bind(planner *pl, sql_scope *sc, sql_expr *e, bool agg_ok)
{
    int rc;
    switch (e->kind) {
    case E_LIT:
    case E_COL:
        return 0;
    case E_NAME:
        return bind_name(pl, sc, e);
    case E_STAR:
        return em__sql_diag(pl->diag, EM_EPLAN, e->pos, "'*' is not allowed here");
    case E_AGG:
        if (e->agg >= 0)
            return 0; /* bound already (shared by GROUP BY number and the select list) */
        return bind_agg(pl, sc, e, agg_ok);
    case E_INSUB:
        if ((rc = bind(pl, sc, e->a, agg_ok)) < 0)
            return rc;
        return bind_sub(pl, sc, e);
    case E_EXISTS:
    case E_SUBQ:
        return bind_sub(pl, sc, e);
    default:
        break;
    }
    sql_expr *kids[3] = {e->a, e->b, e->c};
    for (int i = 0; i < 3; i++)
        if (kids[i] != NULL && (rc = bind(pl, sc, kids[i], agg_ok)) < 0)
            return rc;
    for (uint32_t i = 0; i < e->nargs; i++)
        if (e->args[i] != e->a && (rc = bind(pl, sc, e->args[i], agg_ok)) < 0)
            return rc;
    return 0;
}

/* True when e holds an aggregate of this query (not one inside a subquery). */
static bool has_agg(const sql_expr *e)
{
    if (e == NULL)
        return false;
    if (e->kind == E_AGG)
        return true;
    if (e->kind == E_SUBQ || e->kind == E_EXISTS)
        return false;
    if (has_agg(e->a) || has_agg(e->b) || has_agg(e->c))
        return true;
    for (uint32_t i = 0; i < e->nargs; i++)
        if (has_agg(e->args[i]))
            return true;
    return false;
}

/* Binds e and returns the mask of items it reads (-1 cast on error: check diag). */
static int bind_mask(planner *pl, sql_scope *sc, sql_expr *e, bool agg_ok, uint64_t *mask)
{
    sc->refmask = 0;
    int rc = bind(pl, sc, e, agg_ok);
    *mask = sc->refmask;
    if (rc == 0)
        em__sql_fold(pl->a, e);
    return rc;
}

/* ---------------------------------------------------------------- FROM items */
static int add_item(planner *pl, sql_scope *sc, sql_scope *outer, sql_from *f, uint32_t idx,
                    bool *correlated)
{
    sql_item *it = &sc->items[idx];
    it->off = sc->width;
    it->join = f->join;
    it->on = f->on;
    if (f->sub != NULL) {
        bool corr = false;
        sql_plan *sub = plan_select(pl, f->sub, outer, &corr);
        if (sub == NULL)
            return pl->diag->err.code;
        *correlated |= corr;
        it->alias = f->alias;
        it->ncols = sub->width;
        it->cols = sub->names;
        it->types = sub->types;
        if ((it->leaf = new_plan(pl, P_SUBQ, sub, 0)) == NULL)
            return EM_ENOMEM;
        it->leaf->slice = sub->width;
        it->leaf->label = f->alias ? f->alias : "(subquery)";
    } else {
        sql_table *t = em__sql_catalog_find(pl->cat, f->table);
        if (t == NULL) {
            const char *s = em__sql_catalog_suggest(pl->cat, f->table);
            if (s != NULL)
                return em__sql_diag(pl->diag, EM_EPLAN, f->pos,
                                    "unknown table '%s' (did you mean '%s'?)", f->table, s);
            return em__sql_diag(pl->diag, EM_EPLAN, f->pos, "unknown table '%s'", f->table);
        }
        it->alias = f->alias ? f->alias : t->name;
        it->ncols = t->ncols;
        it->cols = (const char **)t->cols;
        it->types = t->types;
        if ((it->leaf = new_plan(pl, P_SCAN, NULL, 0)) == NULL)
            return EM_ENOMEM;
        it->leaf->table = t;
        it->leaf->label = it->alias;
        it->leaf->slice = t->ncols;
    }
    it->leaf->off = it->off;
    sc->width += it->ncols;
    return 0;
}

/* ---------------------------------------------------------------- joins */
static int push_conj(planner *pl, conj **cs, uint32_t *n, uint32_t *cap, sql_expr *e,
                     uint64_t mask)
{
    if (*n == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 16;
        conj *na = alloc(pl, nc * sizeof *na);
        if (na == NULL)
            return EM_ENOMEM;
        if (*n)
            memcpy(na, *cs, *n * sizeof *na);
        *cs = na;
        *cap = nc;
    }
    (*cs)[(*n)++] = (conj){.e = e, .mask = mask};
    return 0;
}

/* Splits e's AND tree into conjuncts, binding each. */
static int split_bind(planner *pl, sql_scope *sc, sql_expr *e, conj **cs, uint32_t *n,
                      uint32_t *cap)
{
    if (e->kind == E_OR && em__sql_factor_or(pl->a, &e) < 0)
        return em__sql_diag(pl->diag, EM_ENOMEM, -1, "out of memory");
    if (e->kind == E_AND) {
        int rc = split_bind(pl, sc, e->a, cs, n, cap);
        return rc < 0 ? rc : split_bind(pl, sc, e->b, cs, n, cap);
    }
    uint64_t mask;
    if (bind_mask(pl, sc, e, false, &mask) < 0)
        return pl->diag->err.code;
    if (e->kind == E_LIT && em__sql_truth(&e->v) == 1)
        return 0; /* always true: dropped */
    return push_conj(pl, cs, n, cap, e, mask);
}

static sql_expr *and_of(planner *pl, sql_expr *a, sql_expr *b)
{
    if (a == NULL)
        return b;
    sql_expr *e = alloc(pl, sizeof *e);
    if (e == NULL)
        return NULL;
    e->kind = E_AND;
    e->a = a;
    e->b = b;
    e->pos = a->pos;
    e->level = e->col = e->agg = -1;
    return e;
}

/* Mask of items the level-0 columns of a bound e read (no subqueries: those give ~0). */
static uint64_t expr_mask(const sql_scope *sc, const sql_expr *e)
{
    uint64_t m = 0;
    if (e == NULL)
        return 0;
    if (e->kind == E_COL && e->level == 0) {
        for (uint32_t i = 0; i < sc->nitems; i++)
            if ((uint32_t)e->col >= sc->items[i].off &&
                (uint32_t)e->col < sc->items[i].off + sc->items[i].ncols)
                return (uint64_t)1 << i;
    }
    if (e->kind == E_INSUB || e->kind == E_SUBQ || e->kind == E_EXISTS)
        return ~(uint64_t)0;
    m |= expr_mask(sc, e->a) | expr_mask(sc, e->b) | expr_mask(sc, e->c);
    for (uint32_t i = 0; i < e->nargs; i++)
        m |= expr_mask(sc, e->args[i]);
    return m;
}

static uint64_t est_rows(const sql_item *it)
{
    const sql_table *t = it->leaf->kind == P_SCAN ? it->leaf->table : NULL;
    uint64_t n = t == NULL ? 100 : t->nrows;
    if (t != NULL && !t->loaded && t->csv_path != NULL) /* left to executors: ~8 bytes a field */
        n = t->csv_bytes / (8 * (uint64_t)(t->ncols ? t->ncols : 1)) + 1;
    return n >> (2 * (it->npushed < 8 ? it->npushed : 8));
}

/* Joins right (filling the items of rmask) to left (items of lmask): equality conjuncts
 * with one side on each become hash keys, the other ready conjuncts the residual. For an
 * inner join only conjuncts touching both sides are taken (the others were applied below);
 * for a LEFT join cs holds just its ON conjuncts. */
static sql_plan *join_plans(planner *pl, sql_scope *sc, sql_plan *left, uint64_t lmask,
                            sql_plan *right, uint64_t rmask, conj *cs, uint32_t nc, int kind)
{
    uint64_t now = lmask | rmask;
    sql_plan *j = new_plan(pl, P_JOIN, left, sc->width);
    uint32_t nkeys = 0;
    if (j == NULL)
        return NULL;
    j->join = (uint8_t)kind;
    j->right = right;
    j->lkeys = alloc(pl, (nc + 1) * sizeof *j->lkeys);
    j->rkeys = alloc(pl, (nc + 1) * sizeof *j->rkeys);
    j->slice_off = alloc(pl, sc->nitems * sizeof *j->slice_off);
    j->slice_len = alloc(pl, sc->nitems * sizeof *j->slice_len);
    if (j->lkeys == NULL || j->rkeys == NULL || j->slice_off == NULL || j->slice_len == NULL)
        return NULL;
    for (uint32_t i = 0; i < sc->nitems; i++)
        if (rmask & ((uint64_t)1 << i)) {
            j->slice_off[j->nslices] = sc->items[i].off;
            j->slice_len[j->nslices++] = sc->items[i].ncols;
        }
    for (uint32_t i = 0; i < nc; i++) {
        conj *c = &cs[i];
        if (c->used || (c->mask & ~now) != 0 || (kind == J_INNER && !(c->mask & rmask)))
            continue;
        c->used = true;
        sql_expr *e = c->e;
        if (e->kind == E_BINARY && e->op == OP_EQ) {
            uint64_t ma = expr_mask(sc, e->a), mb = expr_mask(sc, e->b);
            if (ma && mb && (ma & ~lmask) == 0 && (mb & ~rmask) == 0) {
                j->lkeys[nkeys] = e->a;
                j->rkeys[nkeys++] = e->b;
                continue;
            }
            if (ma && mb && (mb & ~lmask) == 0 && (ma & ~rmask) == 0) {
                j->lkeys[nkeys] = e->b;
                j->rkeys[nkeys++] = e->a;
                continue;
            }
        }
        if ((j->pred = and_of(pl, j->pred, e)) == NULL)
            return NULL;
    }
    j->nkeys = nkeys;
    return j;
}

static sql_plan *join_item(planner *pl, sql_scope *sc, sql_plan *cur, uint64_t avail, uint32_t k,
                           conj *cs, uint32_t nc, int kind)
{
    return join_plans(pl, sc, cur, avail, sc->items[k].leaf, (uint64_t)1 << k, cs, nc, kind);
}

/* Applies the unused conjuncts whose items are all in avail, as one filter. */
static sql_plan *apply_ready(planner *pl, sql_plan *cur, uint64_t avail, conj *cs, uint32_t nc)
{
    sql_expr *pred = NULL;
    for (uint32_t i = 0; i < nc; i++)
        if (!cs[i].used && (cs[i].mask & ~avail) == 0) {
            cs[i].used = true;
            if ((pred = and_of(pl, pred, cs[i].e)) == NULL)
                return NULL;
        }
    if (pred == NULL)
        return cur;
    sql_plan *f = new_plan(pl, P_FILTER, cur, cur->width);
    if (f != NULL)
        f->pred = pred;
    return f;
}

/* True when some unused conjunct links item k to the avail set. */
static bool connected(const conj *cs, uint32_t nc, uint64_t avail, uint32_t k)
{
    uint64_t kb = (uint64_t)1 << k;
    for (uint32_t i = 0; i < nc; i++)
        if (!cs[i].used && (cs[i].mask & kb) && (cs[i].mask & avail) &&
            (cs[i].mask & ~(avail | kb)) == 0)
            return true;
    return false;
}

/* Greedy left-deep join of the items in todo onto cur: the smallest item connected to what
 * is joined by a conjunct first, an unconnected one (a cartesian product) only when none is. */
static sql_plan *plan_greedy(planner *pl, sql_scope *sc, sql_plan *cur, uint64_t *avail,
                             uint64_t todo, conj *cs, uint32_t nc)
{
    while (todo) {
        int best = -1;
        bool best_conn = false;
        for (uint32_t k = 0; k < sc->nitems; k++) {
            if (!(todo & ((uint64_t)1 << k)))
                continue;
            bool conn = cur != NULL && connected(cs, nc, *avail, k);
            if (best < 0 || (conn && !best_conn) ||
                (conn == best_conn && est_rows(&sc->items[k]) < est_rows(&sc->items[best]))) {
                best = (int)k;
                best_conn = conn;
            }
        }
        uint32_t k = (uint32_t)best;
        if (cur == NULL)
            cur = sc->items[k].leaf;
        else if ((cur = join_item(pl, sc, cur, *avail, k, cs, nc, J_INNER)) == NULL)
            return NULL;
        *avail |= (uint64_t)1 << k;
        todo &= ~((uint64_t)1 << k);
        if ((cur = apply_ready(pl, cur, *avail, cs, nc)) == NULL)
            return NULL;
    }
    return cur;
}

/* Items of todo linked to item k through conjuncts over todo's items (its component). */
static uint64_t component(const conj *cs, uint32_t nc, uint64_t todo, uint32_t k)
{
    uint64_t comp = (uint64_t)1 << k, prev = 0;
    while (comp != prev) {
        prev = comp;
        for (uint32_t c = 0; c < nc; c++)
            if (!cs[c].used && (cs[c].mask & comp) && (cs[c].mask & ~todo) == 0)
                comp |= cs[c].mask;
    }
    return comp;
}

/* Plans the inner-join run of items [i, j) onto cur (NULL when it starts the FROM). Items
 * linked by conjuncts form components; each component is joined on its own (greedy), and
 * only then are components multiplied, so a cartesian product never inflates the input of
 * a join that a condition could have shrunk (sqllogictest select4/select5). */
static sql_plan *plan_run(planner *pl, sql_scope *sc, sql_plan *cur, uint64_t *avail,
                          uint32_t i, uint32_t j, conj *cs, uint32_t nc)
{
    /* push single-item conjuncts into the scans of the run */
    for (uint32_t c = 0; c < nc; c++) {
        if (cs[c].used)
            continue;
        for (uint32_t k = i; k < j; k++)
            if (cs[c].mask == ((uint64_t)1 << k) || (cs[c].mask == 0 && cur == NULL && k == i)) {
                sql_item *it = &sc->items[k];
                if ((it->leaf->pred = and_of(pl, it->leaf->pred, cs[c].e)) == NULL)
                    return NULL;
                it->npushed++;
                cs[c].used = true;
                break;
            }
    }
    uint64_t todo = 0;
    for (uint32_t k = i; k < j; k++)
        todo |= (uint64_t)1 << k;
    if (cur != NULL) /* after a LEFT join: extend what is joined */
        return plan_greedy(pl, sc, cur, avail, todo, cs, nc);
    while (todo) {
        uint32_t k = (uint32_t)__builtin_ctzll(todo);
        uint64_t comp = component(cs, nc, todo, k), cavail = 0;
        sql_plan *part = plan_greedy(pl, sc, NULL, &cavail, comp, cs, nc);
        if (part == NULL)
            return NULL;
        todo &= ~comp;
        if (cur == NULL)
            cur = part;
        else if ((cur = join_plans(pl, sc, cur, *avail, part, comp, cs, nc, J_INNER)) == NULL)
            return NULL;
        *avail |= comp;
        if ((cur = apply_ready(pl, cur, *avail, cs, nc)) == NULL)
            return NULL;
    }
    return cur;
}

/* The FROM clause (items already in sc) with WHERE conjuncts cs. */
static sql_plan *plan_from(planner *pl, sql_scope *sc, conj *cs, uint32_t nc)
{
    sql_plan *cur = NULL;
    uint64_t avail = 0;
    uint32_t i = 0;
    while (i < sc->nitems) {
        sql_item *it = &sc->items[i];
        if (it->join == J_LEFT && cur != NULL) {
            conj *oc = NULL;
            uint32_t on = 0, ocap = 0;
            if (it->on != NULL && split_bind(pl, sc, it->on, &oc, &on, &ocap) < 0)
                return NULL;
            for (uint32_t c = 0; c < on; c++) /* ON conjuncts on the right item alone */
                if (oc[c].mask == ((uint64_t)1 << i)) {
                    if ((it->leaf->pred = and_of(pl, it->leaf->pred, oc[c].e)) == NULL)
                        return NULL;
                    oc[c].used = true;
                }
            if ((cur = join_item(pl, sc, cur, avail, i, oc, on, J_LEFT)) == NULL)
                return NULL;
            avail |= (uint64_t)1 << i;
            if ((cur = apply_ready(pl, cur, avail, cs, nc)) == NULL)
                return NULL;
            i++;
            continue;
        }
        uint32_t j = i + 1;
        while (j < sc->nitems && sc->items[j].join != J_LEFT)
            j++;
        if ((cur = plan_run(pl, sc, cur, &avail, i, j, cs, nc)) == NULL)
            return NULL;
        i = j;
    }
    return apply_ready(pl, cur, ~(uint64_t)0, cs, nc);
}

/* ---------------------------------------------------------------- SELECT cores */
static uint8_t expr_type(const sql_scope *sc, const sql_expr *e)
{
    if (e->kind == E_LIT)
        return e->v.type;
    if (e->kind == E_COL && e->level == 0)
        for (uint32_t i = 0; i < sc->nitems; i++)
            if ((uint32_t)e->col >= sc->items[i].off &&
                (uint32_t)e->col < sc->items[i].off + sc->items[i].ncols)
                return sc->items[i].types[e->col - sc->items[i].off];
    if (e->kind == E_CAST)
        return e->cast_type;
    return EM_SQL_NULL;
}

typedef struct core_out {
    sql_expr **exprs;   /* visible then hidden */
    const char **names;
    uint8_t *types;
    uint32_t nvis, n, cap;
} core_out;

static int out_push(planner *pl, core_out *o, sql_expr *e, const char *name, uint8_t type)
{
    if (o->n == o->cap) {
        uint32_t nc = o->cap ? o->cap * 2 : 16;
        sql_expr **ne = alloc(pl, nc * sizeof *ne);
        const char **nn = alloc(pl, nc * sizeof *nn);
        uint8_t *nt = alloc(pl, nc);
        if (ne == NULL || nn == NULL || nt == NULL)
            return EM_ENOMEM;
        if (o->n) {
            memcpy(ne, o->exprs, o->n * sizeof *ne);
            memcpy(nn, o->names, o->n * sizeof *nn);
            memcpy(nt, o->types, o->n);
        }
        o->exprs = ne;
        o->names = nn;
        o->types = nt;
        o->cap = nc;
    }
    o->exprs[o->n] = e;
    o->names[o->n] = name;
    o->types[o->n++] = type;
    return 0;
}

static sql_expr *col_expr(planner *pl, uint32_t col, const char *name, uint32_t pos)
{
    sql_expr *e = alloc(pl, sizeof *e);
    if (e != NULL) {
        e->kind = E_COL;
        e->level = 0;
        e->col = (int32_t)col;
        e->name = name;
        e->pos = pos;
        e->agg = -1;
    }
    return e;
}

/* Expands the select list (stars) and binds it into o. */
static int bind_items(planner *pl, sql_scope *sc, sql_select *s, bool agg, core_out *o)
{
    for (uint32_t i = 0; i < s->nitems; i++) {
        sql_expr *e = s->items[i];
        if (e->kind == E_STAR) {
            bool any = false;
            for (uint32_t k = 0; k < sc->nitems; k++) {
                sql_item *it = &sc->items[k];
                if (e->qual != NULL && (it->alias == NULL || strcasecmp(e->qual, it->alias)))
                    continue;
                any = true;
                for (uint32_t c = 0; c < it->ncols; c++) {
                    sql_expr *ce = col_expr(pl, it->off + c, it->cols[c], e->pos);
                    if (ce == NULL || out_push(pl, o, ce, it->cols[c], it->types[c]) < 0)
                        return EM_ENOMEM;
                }
            }
            if (!any)
                return em__sql_diag(pl->diag, EM_EPLAN, e->pos, e->qual ? "unknown table '%s'"
                                    : "%sSELECT * without FROM", e->qual ? e->qual : "");
            continue;
        }
        uint64_t mask;
        if (bind_mask(pl, sc, e, agg, &mask) < 0)
            return pl->diag->err.code;
        const char *name = s->aliases[i] ? s->aliases[i]
                           : (s->items[i]->kind == E_COL && s->items[i]->name) ? s->items[i]->name
                           : s->texts ? s->texts[i] : "?column?";
        if (out_push(pl, o, e, name, expr_type(sc, e)) < 0)
            return EM_ENOMEM;
    }
    o->nvis = o->n;
    return 0;
}

/* An ORDER BY term as an output column: a number, an output name, or (simple selects) a
 * hidden expression appended to o. Returns the column or -1 with diag set. */
static int order_col(planner *pl, sql_scope *sc, core_out *o, sql_expr *e, bool agg, bool compound)
{
    if (e->kind == E_LIT && e->v.type == EM_SQL_INT) {
        if (e->v.u.i < 1 || e->v.u.i > (int64_t)o->nvis)
            return em__sql_diag(pl->diag, EM_EPLAN, e->pos,
                                "ORDER BY term %lld out of range (1..%u)", (long long)e->v.u.i,
                                o->nvis), -1;
        return (int)e->v.u.i - 1;
    }
    if (e->kind == E_NAME && e->qual == NULL)
        for (uint32_t i = 0; i < o->nvis; i++)
            if (o->names[i] != NULL && strcasecmp(o->names[i], e->name) == 0)
                return (int)i;
    if (compound)
        return em__sql_diag(pl->diag, EM_EPLAN, e->pos,
                            "ORDER BY term of a compound SELECT must name an output column"), -1;
    uint64_t mask;
    if (bind_mask(pl, sc, e, agg, &mask) < 0)
        return -1;
    if (out_push(pl, o, e, NULL, EM_SQL_NULL) < 0)
        return -1;
    return (int)o->n - 1;
}

/* One SELECT core up to its PROJECT (and DISTINCT). Fills o; order terms of a simple select
 * are bound here (sort_cols) since they may read the FROM scope. */
static sql_plan *plan_core(planner *pl, sql_select *s, sql_scope *outer, bool *correlated,
                           core_out *o, sql_select *order_of)
{
    sql_scope sc = {.outer = outer};
    conj *cs = NULL;
    uint32_t nc = 0, ccap = 0;
    sql_plan *cur;

    if (s->nfrom > 64) {
        em__sql_diag(pl->diag, EM_EPLAN, s->from[64].pos, "at most 64 tables in one FROM");
        return NULL;
    }
    if ((sc.items = alloc(pl, (s->nfrom + 1) * sizeof *sc.items)) == NULL)
        return NULL;
    for (uint32_t i = 0; i < s->nfrom; i++, sc.nitems++)
        if (add_item(pl, &sc, outer, &s->from[i], i, correlated) < 0)
            return NULL;
    for (uint32_t i = 0; i < sc.nitems; i++)
        sc.items[i].leaf->width = sc.width; /* leaves produce wide rows */
    bool agg = s->ngroup > 0 || has_agg(s->having);
    for (uint32_t i = 0; i < s->nitems && !agg; i++)
        agg = has_agg(s->items[i]);
    for (uint32_t i = 0; i < (order_of ? order_of->norder : 0) && !agg; i++)
        agg = has_agg(order_of->order[i].e);
    /* WHERE and inner ON conditions */
    if (s->where != NULL && split_bind(pl, &sc, s->where, &cs, &nc, &ccap) < 0)
        return NULL;
    for (uint32_t i = 1; i < sc.nitems; i++)
        if (sc.items[i].join != J_LEFT && sc.items[i].on != NULL &&
            split_bind(pl, &sc, sc.items[i].on, &cs, &nc, &ccap) < 0)
            return NULL;
    if (sc.nitems == 0) {
        if ((cur = new_plan(pl, P_ONEROW, NULL, 0)) == NULL)
            return NULL;
        cur = apply_ready(pl, cur, ~(uint64_t)0, cs, nc);
    } else
        cur = plan_from(pl, &sc, cs, nc);
    if (cur == NULL)
        return NULL;
    /* GROUP BY terms: a number or an alias names a select item */
    for (uint32_t i = 0; i < s->ngroup; i++) {
        sql_expr *g = s->group[i];
        if (g->kind == E_LIT && g->v.type == EM_SQL_INT && g->v.u.i >= 1 &&
            g->v.u.i <= (int64_t)s->nitems && s->items[g->v.u.i - 1]->kind != E_STAR)
            s->group[i] = g = s->items[g->v.u.i - 1];
        uint64_t mask;
        if (bind_mask(pl, &sc, g, false, &mask) < 0)
            return NULL;
    }
    if (bind_items(pl, &sc, s, agg, o) < 0)
        return NULL;
    sql_expr *having = s->having;
    uint64_t hmask;
    if (having != NULL && bind_mask(pl, &sc, having, true, &hmask) < 0)
        return NULL;
    if (order_of != NULL && order_of->next == NULL)
        for (uint32_t i = 0; i < order_of->norder; i++)
            if (order_col(pl, &sc, o, order_of->order[i].e, agg, false) < 0)
                return NULL;
    if (agg) {
        sql_plan *g = new_plan(pl, P_AGG, cur, sc.width + sc.naggs);
        if (g == NULL)
            return NULL;
        g->exprs = s->group;
        g->nexprs = s->ngroup;
        g->aggs = sc.aggs;
        g->naggs = sc.naggs;
        cur = g;
        if (having != NULL) {
            if ((cur = new_plan(pl, P_FILTER, cur, cur->width)) == NULL)
                return NULL;
            cur->pred = having;
        }
    } else if (having != NULL) {
        em__sql_diag(pl->diag, EM_EPLAN, having->pos, "HAVING without GROUP BY or aggregates");
        return NULL;
    }
    *correlated |= sc.correlated;
    sql_plan *pr = new_plan(pl, P_PROJECT, cur, o->n);
    if (pr == NULL)
        return NULL;
    pr->exprs = o->exprs;
    pr->nexprs = o->n;
    pr->names = o->names;
    pr->types = o->types;
    if (s->distinct) {
        if ((pr = new_plan(pl, P_DISTINCT, pr, o->n)) == NULL)
            return NULL;
        pr->nkeep = o->nvis;
    }
    return pr;
}

/* ORDER BY, LIMIT/OFFSET and the trimming of hidden columns over p. */
static sql_plan *plan_tail(planner *pl, sql_select *sel, sql_plan *p, core_out *o,
                           const uint32_t *cols)
{
    if (sel->norder > 0) {
        sql_plan *s = new_plan(pl, P_SORT, p, p->width);
        if (s == NULL || (s->sort_cols = alloc(pl, sel->norder * sizeof *s->sort_cols)) == NULL ||
            (s->sort_desc = alloc(pl, sel->norder)) == NULL)
            return NULL;
        for (uint32_t i = 0; i < sel->norder; i++) {
            s->sort_cols[i] = cols[i];
            s->sort_desc[i] = sel->order[i].desc;
        }
        s->nsort = sel->norder;
        p = s;
    }
    if (sel->limit != NULL || sel->offset != NULL) {
        sql_scope none = {0};
        uint64_t m;
        if ((sel->limit && bind_mask(pl, &none, sel->limit, false, &m) < 0) ||
            (sel->offset && bind_mask(pl, &none, sel->offset, false, &m) < 0))
            return NULL;
        if ((p = new_plan(pl, P_LIMIT, p, p->width)) == NULL)
            return NULL;
        p->limit = sel->limit;
        p->offset = sel->offset;
    }
    if (p->width > o->nvis) {
        if ((p = new_plan(pl, P_TRIM, p, o->nvis)) == NULL)
            return NULL;
        p->nkeep = o->nvis;
    }
    p->names = o->names;
    p->types = o->types;
    return p;
}

static sql_plan *plan_select(planner *pl, sql_select *sel, sql_scope *outer, bool *correlated)
{
    core_out o = {0};
    uint32_t *cols = alloc(pl, (sel->norder + 1) * sizeof *cols);
    sql_plan *p;
    if (cols == NULL)
        return NULL;
    if (sel->next == NULL) {
        if ((p = plan_core(pl, sel, outer, correlated, &o, sel)) == NULL)
            return NULL;
        /* order terms were appended after the visible items, in order, unless they named
         * an output column: recover each term's column */
        uint32_t hidden = o.nvis;
        for (uint32_t i = 0; i < sel->norder; i++) {
            sql_expr *e = sel->order[i].e;
            int c = -1;
            if (e->kind == E_LIT && e->v.type == EM_SQL_INT)
                c = (int)e->v.u.i - 1;
            else if (e->kind == E_NAME && e->qual == NULL)
                for (uint32_t k = 0; k < o.nvis && c < 0; k++)
                    if (o.names[k] != NULL && strcasecmp(o.names[k], e->name) == 0)
                        c = (int)k;
            cols[i] = c >= 0 ? (uint32_t)c : hidden++;
        }
        return plan_tail(pl, sel, p, &o, cols);
    }
    /* compound: cores left to right, each projected to its visible columns */
    if ((p = plan_core(pl, sel, outer, correlated, &o, NULL)) == NULL)
        return NULL;
    for (sql_select *s = sel->next; s != NULL; s = s->next) {
        core_out ro = {0};
        sql_plan *r = plan_core(pl, s, outer, correlated, &ro, NULL);
        if (r == NULL)
            return NULL;
        if (ro.nvis != o.nvis) {
            em__sql_diag(pl->diag, EM_EPLAN, s->pos,
                         "SELECTs to the left and right of %s do not have the same number of "
                         "result columns (%u and %u)",
                         s->setop == SET_EXCEPT ? "EXCEPT" : s->setop == SET_INTERSECT
                         ? "INTERSECT" : "UNION", o.nvis, ro.nvis);
            return NULL;
        }
        sql_plan *so = new_plan(pl, P_SETOP, p, o.nvis);
        if (so == NULL)
            return NULL;
        so->right = r;
        so->setop = s->setop;
        so->names = o.names;
        so->types = o.types;
        p = so;
    }
    for (uint32_t i = 0; i < sel->norder; i++) {
        int c = order_col(pl, NULL, &o, sel->order[i].e, false, true);
        if (c < 0)
            return NULL;
        cols[i] = (uint32_t)c;
    }
    return plan_tail(pl, sel, p, &o, cols);
}

sql_plan *em__sql_plan_select(em_arena *a, sql_catalog *cat, sql_select *sel,
                              struct sql_scope *outer, em_sql_diag *diag)
{
    planner pl = {.a = a, .cat = cat, .diag = diag};
    bool corr = false;
    return plan_select(&pl, sel, outer, &corr);
}
