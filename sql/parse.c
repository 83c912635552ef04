/* sql/parse.c - recursive-descent parser from tokens to the syntax tree (sql_int.h).
 *
 * Operator precedence follows SQLite, loosest first: OR; AND; NOT; = == != <> IS IN LIKE
 * BETWEEN; < <= > >=; + -; * / %; ||; unary - +. A NOT met where an operand starts parses
 * at NOT's level (`- NOT 1 + 1` is -(NOT (1 + 1))), as SQLite's grammar does.
 * Every node keeps the offset of its first token, so later errors point at it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/sql_int.h"

typedef struct parser {
    em_arena *a;
    const char *src;
    const sql_tok *t;
    size_t n, i;
    em_sql_diag *diag;
    int depth;
} parser;

/* Height of expression trees and nesting of subqueries: bounds the recursion of the parser,
 * binder, folder and evaluator (each a few frames per level) on untrusted SQL. Every nesting
 * level and every operator of a chain (a + b + c ...) counts one. */
#define MAX_DEPTH 1000

static const char *const reserved[] = {
    "FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "UNION", "EXCEPT",
    "INTERSECT", "JOIN", "INNER", "LEFT", "CROSS", "ON", "USING", "AS", "SELECT", "AND", "OR",
    "NOT", "IS", "IN", "LIKE", "BETWEEN", "CASE", "WHEN", "THEN", "ELSE", "END", "NULL", "ASC",
    "DESC", "BY", "ALL", "DISTINCT", "VALUES", "OUTER", "NATURAL", "RIGHT", "FULL", "EXISTS",
    "CAST", "INTO", "SET", "TABLE", "CREATE", "DROP", "INSERT",
};

static const sql_tok *peek(parser *p)
{
    return &p->t[p->i];
}

static bool is_kw_tok(const sql_tok *t, const char *kw)
{
    return t->kind == TK_IDENT && strcasecmp(t->text, kw) == 0;
}

static bool is_kw(parser *p, const char *kw)
{
    return is_kw_tok(peek(p), kw);
}

static bool is_kw_at(parser *p, size_t k, const char *kw)
{
    return p->i + k < p->n && is_kw_tok(&p->t[p->i + k], kw);
}

static bool accept_kw(parser *p, const char *kw)
{
    if (!is_kw(p, kw))
        return false;
    p->i++;
    return true;
}

static bool is_op(parser *p, const char *op)
{
    return peek(p)->kind == TK_OP && strcmp(peek(p)->text, op) == 0;
}

static bool accept_op(parser *p, const char *op)
{
    if (!is_op(p, op))
        return false;
    p->i++;
    return true;
}

static int syntax_error(parser *p, const char *want)
{
    const sql_tok *t = peek(p);
    if (p->diag->err.code != 0)
        return p->diag->err.code;
    if (t->kind == TK_EOF || (t->kind == TK_OP && t->text[0] == ';'))
        return em__sql_diag(p->diag, EM_EINVAL, t->pos, "syntax error at end of input: expected %s",
                            want);
    return em__sql_diag(p->diag, EM_EINVAL, t->pos, "syntax error at '%s': expected %s", t->text,
                        want);
}

static int expect_kw(parser *p, const char *kw)
{
    return accept_kw(p, kw) ? 0 : syntax_error(p, kw);
}

static int expect_op(parser *p, const char *op)
{
    char want[8];
    if (accept_op(p, op))
        return 0;
    want[0] = '\'';
    strcpy(want + 1, op);
    strcat(want, "'");
    return syntax_error(p, want);
}

static bool is_reserved(const sql_tok *t)
{
    if (t->kind != TK_IDENT)
        return false;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(t->text, reserved[i]) == 0)
            return true;
    return false;
}

/* An identifier (not a reserved word, unless quoted); NULL after setting the error. */
static const char *ident(parser *p, const char *what)
{
    const sql_tok *t = peek(p);
    if ((t->kind == TK_IDENT && !is_reserved(t)) || t->kind == TK_QIDENT) {
        p->i++;
        return t->text;
    }
    syntax_error(p, what);
    return NULL;
}

static void *alloc(parser *p, size_t n)
{
    void *q = em_arena_alloc(p->a, n);
    if (q == NULL)
        em__sql_diag(p->diag, EM_ENOMEM, -1, "out of memory");
    else
        memset(q, 0, n);
    return q;
}

static sql_expr *node(parser *p, int kind, uint32_t pos)
{
    sql_expr *e = alloc(p, sizeof *e);
    if (e != NULL) {
        e->kind = (uint8_t)kind;
        e->pos = pos;
        e->level = -1;
        e->col = -1;
        e->agg = -1;
    }
    return e;
}

/* Growable pointer list in the arena (copied on growth; the old copy stays in the arena). */
static int push_ptr(parser *p, void ***arr, uint32_t *n, uint32_t *cap, void *x)
{
    if (*n == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 4;
        void **na = alloc(p, nc * sizeof *na);
        if (na == NULL)
            return EM_ENOMEM;
        if (*n)
            memcpy(na, *arr, *n * sizeof *na);
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = x;
    return 0;
}

static sql_expr *parse_expr(parser *p);
static sql_expr *parse_not(parser *p);
static sql_select *parse_select(parser *p);

/* One more level of nesting; false (error set) past MAX_DEPTH. */
static bool deeper(parser *p)
{
    if (++p->depth <= MAX_DEPTH)
        return true;
    em__sql_diag(p->diag, EM_EINVAL, peek(p)->pos, "expression nested too deeply (max %d)",
                 MAX_DEPTH);
    return false;
}

/* l op r; each operator of a chain adds one level of depth (restored by the chain's loop). */
static sql_expr *binary(parser *p, int kind, int op, sql_expr *l, sql_expr *r)
{
    sql_expr *e;
    if (l == NULL || r == NULL || !deeper(p) || (e = node(p, kind, l->pos)) == NULL)
        return NULL;
    e->op = (uint8_t)op;
    e->a = l;
    e->b = r;
    return e;
}

static sql_expr *lit_number(parser *p, const sql_tok *t)
{
    sql_expr *e = node(p, E_LIT, t->pos);
    if (e == NULL)
        return NULL;
    if (t->kind == TK_INT) {
        errno = 0;
        unsigned long long u = strtoull(t->text, NULL, 10);
        if (errno == 0 && u <= (unsigned long long)INT64_MAX) {
            e->v = em__sql_int((int64_t)u);
            return e;
        }
    }
    e->v = em__sql_dbl(strtod(t->text, NULL));
    return e;
}

/* Function call after its name (the '(' is next). */
static sql_expr *parse_call(parser *p, const sql_tok *name)
{
    static const struct { const char *name; int fn; bool agg; } fns[] = {
        {"abs", FN_ABS, false}, {"coalesce", FN_COALESCE, false}, {"nullif", FN_NULLIF, false},
        {"lower", FN_LOWER, false}, {"upper", FN_UPPER, false}, {"length", FN_LENGTH, false},
        {"substr", FN_SUBSTR, false}, {"substring", FN_SUBSTR, false},
        {"ifnull", FN_IFNULL, false}, {"round", FN_ROUND, false},
        {"count", AG_COUNT, true}, {"sum", AG_SUM, true}, {"avg", AG_AVG, true},
        {"min", AG_MIN, true}, {"max", AG_MAX, true}, {"total", AG_TOTAL, true},
        {"group_concat", AG_GROUP_CONCAT, true},
    };
    int fn = -1;
    bool agg = false;
    for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++)
        if (strcasecmp(name->text, fns[k].name) == 0) {
            fn = fns[k].fn;
            agg = fns[k].agg;
        }
    if (fn < 0) {
        em__sql_diag(p->diag, EM_EPLAN, name->pos, "unknown function '%s'", name->text);
        return NULL;
    }
    p->i += 2; /* name ( */
    sql_expr *e = node(p, agg ? E_AGG : E_FUNC, name->pos);
    if (e == NULL)
        return NULL;
    e->op = (uint8_t)fn;
    e->name = name->text;
    uint32_t cap = 0;
    if (agg && accept_kw(p, "DISTINCT"))
        e->distinct = true;
    else if (agg)
        accept_kw(p, "ALL");
    if (fn == AG_COUNT && !e->distinct && accept_op(p, "*")) {
        /* COUNT(*): no argument */
    } else if (!is_op(p, ")")) {
        do {
            sql_expr *arg = parse_expr(p);
            if (arg == NULL || push_ptr(p, (void ***)&e->args, &e->nargs, &cap, arg) < 0)
                return NULL;
        } while (accept_op(p, ","));
    }
    if (expect_op(p, ")") < 0)
        return NULL;
    /* MIN/MAX with two or more arguments are SQLite's scalar min/max: not supported. */
    if ((agg && fn != AG_COUNT && fn != AG_GROUP_CONCAT && e->nargs != 1) ||
        (fn == AG_COUNT && e->nargs > 1) ||
        (fn == AG_GROUP_CONCAT && (e->nargs < 1 || e->nargs > 2 || (e->distinct && e->nargs > 1))) ||
        ((fn == FN_ABS || fn == FN_LOWER || fn == FN_UPPER || fn == FN_LENGTH) && e->nargs != 1) ||
        ((fn == FN_NULLIF || fn == FN_IFNULL) && e->nargs != 2) ||
        (fn == FN_COALESCE && e->nargs < 1) || (fn == FN_SUBSTR && (e->nargs < 2 || e->nargs > 3)) ||
        (fn == FN_ROUND && (e->nargs < 1 || e->nargs > 2))) {
        em__sql_diag(p->diag, EM_EINVAL, name->pos, "wrong number of arguments to %s()",
                     name->text);
        return NULL;
    }
    if (agg)
        e->a = e->nargs ? e->args[0] : NULL;
    return e;
}

static int cast_type(parser *p, uint8_t *type)
{
    const sql_tok *t = peek(p);
    if (t->kind != TK_IDENT)
        return syntax_error(p, "a type name");
    p->i++;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", t->text);
    if (strcasecmp(buf, "SIGNED") == 0 || strcasecmp(buf, "UNSIGNED") == 0)
        *type = EM_SQL_INT;
    else
        *type = (uint8_t)em__sql_type_from_decl(buf);
    accept_kw(p, "INTEGER"); /* UNSIGNED INTEGER */
    if (accept_op(p, "(")) { /* VARCHAR(10), DECIMAL(10,2) */
        while (!is_op(p, ")") && peek(p)->kind != TK_EOF)
            p->i++;
        if (expect_op(p, ")") < 0)
            return EM_EINVAL;
    }
    return 0;
}

static sql_expr *parse_case(parser *p, uint32_t pos)
{
    sql_expr *e = node(p, E_CASE, pos);
    uint32_t cap = 0;
    if (e == NULL)
        return NULL;
    if (!is_kw(p, "WHEN") && (e->a = parse_expr(p)) == NULL)
        return NULL;
    while (accept_kw(p, "WHEN")) {
        sql_expr *w = parse_expr(p), *th;
        if (w == NULL || expect_kw(p, "THEN") < 0 || (th = parse_expr(p)) == NULL)
            return NULL;
        if (push_ptr(p, (void ***)&e->args, &e->nargs, &cap, w) < 0 ||
            push_ptr(p, (void ***)&e->args, &e->nargs, &cap, th) < 0)
            return NULL;
    }
    if (e->nargs == 0) {
        syntax_error(p, "WHEN");
        return NULL;
    }
    if (accept_kw(p, "ELSE") && (e->b = parse_expr(p)) == NULL)
        return NULL;
    if (expect_kw(p, "END") < 0)
        return NULL;
    return e;
}

/* ( expr ) or ( SELECT ... ) */
static sql_expr *parse_paren(parser *p, uint32_t pos)
{
    sql_expr *e;
    if (is_kw(p, "SELECT")) {
        if ((e = node(p, E_SUBQ, pos)) == NULL || (e->sub = parse_select(p)) == NULL)
            return NULL;
    } else if ((e = parse_expr(p)) == NULL)
        return NULL;
    return expect_op(p, ")") < 0 ? NULL : e;
}

static sql_expr *parse_keyword_primary(parser *p, const sql_tok *t)
{
    sql_expr *e;
    if (is_kw_tok(t, "NULL") || is_kw_tok(t, "TRUE") || is_kw_tok(t, "FALSE")) {
        p->i++;
        if ((e = node(p, E_LIT, t->pos)) != NULL && !is_kw_tok(t, "NULL"))
            e->v = em__sql_bool(is_kw_tok(t, "TRUE"));
        return e;
    }
    if (is_kw_tok(t, "CASE")) {
        p->i++;
        return parse_case(p, t->pos);
    }
    if (is_kw_tok(t, "CAST")) {
        p->i++;
        if (expect_op(p, "(") < 0 || (e = node(p, E_CAST, t->pos)) == NULL ||
            (e->a = parse_expr(p)) == NULL || expect_kw(p, "AS") < 0 ||
            cast_type(p, &e->cast_type) < 0 || expect_op(p, ")") < 0)
            return NULL;
        return e;
    }
    if (is_kw_tok(t, "EXISTS")) {
        p->i++;
        if (expect_op(p, "(") < 0 || (e = node(p, E_EXISTS, t->pos)) == NULL ||
            (e->sub = parse_select(p)) == NULL || expect_op(p, ")") < 0)
            return NULL;
        return e;
    }
    if (is_kw_tok(t, "DATE") && p->t[p->i + 1].kind == TK_STRING) {
        const sql_tok *s = &p->t[p->i + 1];
        int64_t days;
        p->i += 2;
        if (!em__sql_parse_date(s->text, strlen(s->text), &days)) {
            em__sql_diag(p->diag, EM_EINVAL, s->pos, "bad DATE literal '%s' (want YYYY-MM-DD)",
                         s->text);
            return NULL;
        }
        if ((e = node(p, E_LIT, t->pos)) != NULL)
            e->v = (em_sql_value){.type = EM_SQL_DATE, .u.i = days};
        return e;
    }
    if (is_kw_tok(t, "EXTRACT")) {
        p->i++;
        if (expect_op(p, "(") < 0 || expect_kw(p, "YEAR") < 0 || expect_kw(p, "FROM") < 0 ||
            (e = node(p, E_FUNC, t->pos)) == NULL)
            return NULL;
        e->op = FN_EXTRACT_YEAR;
        e->name = "extract";
        if ((e->a = parse_expr(p)) == NULL || expect_op(p, ")") < 0)
            return NULL;
        e->args = &e->a;
        e->nargs = 1;
        return e;
    }
    return NULL; /* not a keyword primary; p->diag untouched */
}

static sql_expr *parse_primary(parser *p)
{
    const sql_tok *t = peek(p);
    sql_expr *e;
    if (t->kind == TK_INT || t->kind == TK_FLOAT) {
        p->i++;
        return lit_number(p, t);
    }
    if (t->kind == TK_STRING) {
        p->i++;
        if ((e = node(p, E_LIT, t->pos)) != NULL)
            e->v = (em_sql_value){.type = EM_SQL_TEXT, .len = (uint32_t)strlen(t->text),
                                  .u.s = t->text};
        return e;
    }
    if (t->kind == TK_OP && t->text[0] == '(') {
        p->i++;
        return parse_paren(p, t->pos);
    }
    if (t->kind == TK_OP && t->text[0] == '*') {
        p->i++;
        return node(p, E_STAR, t->pos);
    }
    if (t->kind == TK_IDENT && (e = parse_keyword_primary(p, t)) != NULL)
        return e;
    if (p->diag->err.code != 0)
        return NULL;
    if (t->kind == TK_IDENT && p->t[p->i + 1].kind == TK_OP && p->t[p->i + 1].text[0] == '(' &&
        !is_reserved(t))
        return parse_call(p, t);
    if ((t->kind == TK_IDENT && !is_reserved(t)) || t->kind == TK_QIDENT) {
        p->i++;
        if ((e = node(p, E_NAME, t->pos)) == NULL)
            return NULL;
        e->name = t->text;
        if (accept_op(p, ".")) {
            e->qual = e->name;
            if (accept_op(p, "*")) {
                e->kind = E_STAR;
                return e;
            }
            if ((e->name = ident(p, "a column name")) == NULL)
                return NULL;
        }
        return e;
    }
    syntax_error(p, "an expression");
    return NULL;
}

static sql_expr *parse_unary(parser *p)
{
    const sql_tok *t = peek(p);
    sql_expr *e, *a;
    if (t->kind == TK_OP && (t->text[0] == '-' || t->text[0] == '+' || t->text[0] == '~') &&
        t->len == 1) {
        p->i++;
        if (++p->depth > MAX_DEPTH) {
            em__sql_diag(p->diag, EM_EINVAL, t->pos, "expression nested too deeply");
            return NULL;
        }
        a = parse_unary(p);
        p->depth--;
        if (a == NULL || (e = node(p, E_UNARY, t->pos)) == NULL)
            return NULL;
        e->op = (uint8_t)t->text[0];
        e->a = a;
        return e;
    }
    if (is_kw_tok(t, "NOT"))
        return parse_not(p);
    return parse_primary(p);
}

static sql_expr *parse_concat_chain(parser *p)
{
    sql_expr *l = parse_unary(p);
    while (l != NULL && accept_op(p, "||"))
        l = binary(p, E_BINARY, OP_CONCAT, l, parse_unary(p));
    return l;
}

static sql_expr *parse_concat(parser *p)
{
    int depth = p->depth;
    sql_expr *e = parse_concat_chain(p);
    p->depth = depth;
    return e;
}

static sql_expr *parse_mul_chain(parser *p)
{
    sql_expr *l = parse_concat(p);
    for (;;) {
        int op = accept_op(p, "*") ? OP_MUL : accept_op(p, "/") ? OP_DIV
                 : accept_op(p, "%") ? OP_MOD : -1;
        if (op < 0 || l == NULL)
            return l;
        l = binary(p, E_BINARY, op, l, parse_concat(p));
    }
}

static sql_expr *parse_mul(parser *p)
{
    int depth = p->depth;
    sql_expr *e = parse_mul_chain(p);
    p->depth = depth;
    return e;
}

static sql_expr *parse_add_chain(parser *p)
{
    sql_expr *l = parse_mul(p);
    for (;;) {
        int op = accept_op(p, "+") ? OP_ADD : accept_op(p, "-") ? OP_SUB : -1;
        if (op < 0 || l == NULL)
            return l;
        l = binary(p, E_BINARY, op, l, parse_mul(p));
    }
}

static sql_expr *parse_add(parser *p)
{
    int depth = p->depth;
    sql_expr *e = parse_add_chain(p);
    p->depth = depth;
    return e;
}

static sql_expr *parse_bit_chain(parser *p)
{
    sql_expr *l = parse_add(p);
    for (;;) {
        int op = accept_op(p, "&") ? OP_BITAND : accept_op(p, "|") ? OP_BITOR
                 : accept_op(p, "<<") ? OP_SHL : accept_op(p, ">>") ? OP_SHR : -1;
        if (op < 0 || l == NULL)
            return l;
        l = binary(p, E_BINARY, op, l, parse_add(p));
    }
}

static sql_expr *parse_bit(parser *p)
{
    int depth = p->depth;
    sql_expr *e = parse_bit_chain(p);
    p->depth = depth;
    return e;
}

static sql_expr *parse_cmp_chain(parser *p)
{
    sql_expr *l = parse_bit(p);
    for (;;) {
        int op = accept_op(p, "<") ? OP_LT : accept_op(p, "<=") ? OP_LE
                 : accept_op(p, ">") ? OP_GT : accept_op(p, ">=") ? OP_GE : -1;
        if (op < 0 || l == NULL)
            return l;
        l = binary(p, E_BINARY, op, l, parse_bit(p));
    }
}

static sql_expr *parse_cmp(parser *p)
{
    int depth = p->depth;
    sql_expr *e = parse_cmp_chain(p);
    p->depth = depth;
    return e;
}

/* [NOT] IN ( list | select ) | IN table, after IN. */
static sql_expr *parse_in(parser *p, sql_expr *l, bool neg)
{
    sql_expr *e = node(p, E_INLIST, l->pos);
    uint32_t cap = 0;
    if (e == NULL)
        return NULL;
    e->a = l;
    e->neg = neg;
    if (!accept_op(p, "(")) { /* x IN table (SQLite) */
        const sql_tok *t = peek(p);
        const char *name = ident(p, "'(' or a table name");
        sql_select *s = alloc(p, sizeof *s);
        sql_expr *star = node(p, E_STAR, t->pos);
        if (name == NULL || s == NULL || star == NULL || (s->from = alloc(p, sizeof *s->from)) == NULL ||
            (s->items = alloc(p, sizeof *s->items)) == NULL ||
            (s->aliases = alloc(p, sizeof *s->aliases)) == NULL)
            return NULL;
        s->items[0] = star;
        s->nitems = 1;
        s->from[0].table = name;
        s->from[0].pos = t->pos;
        s->nfrom = 1;
        s->pos = t->pos;
        e->kind = E_INSUB;
        e->sub = s;
        return e;
    }
    if (is_kw(p, "SELECT")) {
        e->kind = E_INSUB;
        if ((e->sub = parse_select(p)) == NULL)
            return NULL;
    } else if (!is_op(p, ")")) {
        do {
            sql_expr *x = parse_expr(p);
            if (x == NULL || push_ptr(p, (void ***)&e->args, &e->nargs, &cap, x) < 0)
                return NULL;
        } while (accept_op(p, ","));
    }
    return expect_op(p, ")") < 0 ? NULL : e;
}

static sql_expr *parse_eq_chain(parser *p)
{
    sql_expr *l = parse_cmp(p), *e;
    while (l != NULL) {
        if (!deeper(p)) /* IS NULL, BETWEEN, IN chains nest without binary() */
            return NULL;
        int op = accept_op(p, "=") || accept_op(p, "==") ? OP_EQ
                 : accept_op(p, "!=") || accept_op(p, "<>") ? OP_NE : -1;
        if (op >= 0) {
            l = binary(p, E_BINARY, op, l, parse_cmp(p));
            continue;
        }
        if (accept_kw(p, "IS")) {
            bool neg = accept_kw(p, "NOT");
            if (accept_kw(p, "NULL")) {
                if ((e = node(p, E_ISNULL, l->pos)) == NULL)
                    return NULL;
                e->a = l;
            } else if ((e = binary(p, E_IS, 0, l, parse_cmp(p))) == NULL)
                return NULL;
            e->neg = neg;
            l = e;
            continue;
        }
        if (accept_kw(p, "ISNULL") || (is_kw(p, "NOTNULL") && (p->i++, true)) ||
            (is_kw(p, "NOT") && is_kw_at(p, 1, "NULL") && (p->i += 2, true))) {
            bool neg = !is_kw_tok(&p->t[p->i - 1], "ISNULL");
            if ((e = node(p, E_ISNULL, l->pos)) == NULL)
                return NULL;
            e->a = l;
            e->neg = neg;
            l = e;
            continue;
        }
        bool neg = false;
        if (is_kw(p, "NOT") && (is_kw_at(p, 1, "IN") || is_kw_at(p, 1, "LIKE") ||
                                is_kw_at(p, 1, "BETWEEN"))) {
            neg = true;
            p->i++;
        }
        if (accept_kw(p, "IN")) {
            l = parse_in(p, l, neg);
        } else if (accept_kw(p, "LIKE")) {
            if ((l = binary(p, E_LIKE, 0, l, parse_cmp(p))) != NULL)
                l->neg = neg;
        } else if (accept_kw(p, "BETWEEN")) {
            sql_expr *lo = parse_cmp(p), *hi;
            if (lo == NULL || expect_kw(p, "AND") < 0 || (hi = parse_cmp(p)) == NULL ||
                (e = node(p, E_BETWEEN, l->pos)) == NULL)
                return NULL;
            e->a = l;
            e->b = lo;
            e->c = hi;
            e->neg = neg;
            l = e;
        } else
            break;
    }
    return l;
}

static sql_expr *parse_eq(parser *p)
{
    int depth = p->depth;
    sql_expr *e = parse_eq_chain(p);
    p->depth = depth;
    return e;
}

static sql_expr *parse_not(parser *p)
{
    const sql_tok *t = peek(p);
    if (is_kw_tok(t, "NOT")) {
        sql_expr *e, *a;
        p->i++;
        if (++p->depth > MAX_DEPTH) {
            em__sql_diag(p->diag, EM_EINVAL, t->pos, "expression nested too deeply");
            return NULL;
        }
        a = parse_not(p);
        p->depth--;
        if (a == NULL || (e = node(p, E_UNARY, t->pos)) == NULL)
            return NULL;
        e->op = '!';
        e->a = a;
        return e;
    }
    return parse_eq(p);
}

static sql_expr *parse_and_chain(parser *p)
{
    sql_expr *l = parse_not(p);
    while (l != NULL && accept_kw(p, "AND"))
        l = binary(p, E_AND, 0, l, parse_not(p));
    return l;
}

static sql_expr *parse_and(parser *p)
{
    int depth = p->depth;
    sql_expr *e = parse_and_chain(p);
    p->depth = depth;
    return e;
}

static sql_expr *parse_expr(parser *p)
{
    sql_expr *l;
    if (++p->depth > MAX_DEPTH) {
        em__sql_diag(p->diag, EM_EINVAL, peek(p)->pos, "expression nested too deeply");
        return NULL;
    }
    int depth = p->depth;
    l = parse_and(p);
    while (l != NULL && accept_kw(p, "OR"))
        l = binary(p, E_OR, 0, l, parse_and(p));
    p->depth = depth - 1;
    return l;
}

/* ---------------------------------------------------------------- SELECT */

static const char *opt_alias(parser *p)
{
    if (accept_kw(p, "AS"))
        return ident(p, "an alias");
    const sql_tok *t = peek(p);
    if ((t->kind == TK_IDENT && !is_reserved(t)) || t->kind == TK_QIDENT ||
        t->kind == TK_STRING) {
        p->i++;
        return t->text;
    }
    return NULL;
}

static int parse_from_item(parser *p, sql_from *f)
{
    const sql_tok *t = peek(p);
    f->pos = t->pos;
    if (accept_op(p, "(")) {
        if (!is_kw(p, "SELECT"))
            return syntax_error(p, "SELECT (a subquery in FROM)");
        if ((f->sub = parse_select(p)) == NULL || expect_op(p, ")") < 0)
            return EM_EINVAL;
    } else if ((f->table = ident(p, "a table name")) == NULL)
        return EM_EINVAL;
    f->alias = opt_alias(p);
    /* SQLite's index hints: accepted and ignored (there are no indexes) */
    if (is_kw(p, "NOT") && is_kw_at(p, 1, "INDEXED"))
        p->i += 2;
    else if (is_kw(p, "INDEXED") && is_kw_at(p, 1, "BY")) {
        p->i += 2;
        if (ident(p, "an index name") == NULL)
            return EM_EINVAL;
    }
    return p->diag->err.code;
}

static int add_from(parser *p, sql_select *s, uint32_t *cap, const sql_from *f)
{
    if (s->nfrom == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        sql_from *nf = alloc(p, *cap * sizeof *nf);
        if (nf == NULL)
            return EM_ENOMEM;
        if (s->nfrom)
            memcpy(nf, s->from, s->nfrom * sizeof *nf);
        s->from = nf;
    }
    s->from[s->nfrom++] = *f;
    return 0;
}

/* The join operator before an item; 1 at the end of the list. */
static int join_op(parser *p, uint8_t *join)
{
    if (accept_op(p, ","))
        *join = J_COMMA;
    else if (accept_kw(p, "CROSS") || is_kw(p, "JOIN") || accept_kw(p, "INNER"))
        *join = is_kw_tok(&p->t[p->i - 1], "CROSS") ? J_CROSS : J_INNER;
    else if (accept_kw(p, "LEFT")) {
        accept_kw(p, "OUTER");
        *join = J_LEFT;
    } else if (is_kw(p, "NATURAL") || is_kw(p, "RIGHT") || is_kw(p, "FULL"))
        return em__sql_diag(p->diag, EM_EINVAL, peek(p)->pos,
                            "%s JOIN is not supported (use JOIN ... ON)", peek(p)->text);
    else
        return 1;
    if (*join != J_COMMA && expect_kw(p, "JOIN") < 0)
        return EM_EINVAL;
    return 0;
}

/* A FROM list, appended to s->from. A parenthesized join list "( a JOIN b ON ... )" is
 * flattened into it (its first item takes the join written before the parenthesis). */
static int parse_from(parser *p, sql_select *s, uint32_t *cap)
{
    for (uint32_t k = 0;; k++) {
        sql_from f = {0};
        uint32_t first = s->nfrom;
        if (k > 0) {
            int rc = join_op(p, &f.join);
            if (rc == 1)
                return 0;
            if (rc < 0)
                return rc;
        }
        if (is_op(p, "(") && !is_kw_at(p, 1, "SELECT")) {
            if (++p->depth > MAX_DEPTH)
                return em__sql_diag(p->diag, EM_EINVAL, peek(p)->pos, "FROM nested too deeply");
            p->i++;
            if (parse_from(p, s, cap) < 0 || expect_op(p, ")") < 0)
                return EM_EINVAL;
            p->depth--;
            if (s->nfrom > first)
                s->from[first].join = f.join;
        } else if (parse_from_item(p, &f) < 0 || add_from(p, s, cap, &f) < 0)
            return EM_EINVAL;
        if (f.join == J_INNER || f.join == J_LEFT || f.join == J_CROSS) {
            sql_from *last = &s->from[s->nfrom - 1];
            if (accept_kw(p, "ON")) {
                if ((last->on = parse_expr(p)) == NULL)
                    return EM_EINVAL;
            } else if (is_kw(p, "USING"))
                return em__sql_diag(p->diag, EM_EINVAL, peek(p)->pos,
                                    "JOIN ... USING is not supported (use ON)");
            else if (f.join == J_LEFT)
                return syntax_error(p, "ON");
        }
    }
}

static int parse_expr_list(parser *p, sql_expr ***out, uint32_t *n)
{
    uint32_t cap = 0;
    do {
        sql_expr *e = parse_expr(p);
        if (e == NULL || push_ptr(p, (void ***)out, n, &cap, e) < 0)
            return EM_EINVAL;
    } while (accept_op(p, ","));
    return 0;
}

static sql_select *parse_core(parser *p)
{
    sql_select *s = alloc(p, sizeof *s);
    uint32_t cap = 0, acap = 0, na = 0, tcap = 0, nt = 0;
    if (s == NULL)
        return NULL;
    s->pos = peek(p)->pos;
    if (expect_kw(p, "SELECT") < 0)
        return NULL;
    if (accept_kw(p, "DISTINCT"))
        s->distinct = true;
    else
        accept_kw(p, "ALL");
    do {
        size_t first = p->i;
        sql_expr *e = parse_expr(p);
        const char *alias, *text;
        if (e == NULL)
            return NULL;
        const sql_tok *lt = &p->t[p->i - 1];
        size_t tl = lt->pos + lt->len - p->t[first].pos;
        char *tx = alloc(p, tl + 1);
        if (tx == NULL)
            return NULL;
        memcpy(tx, p->src + p->t[first].pos, tl);
        text = tx;
        if (push_ptr(p, (void ***)&s->texts, &nt, &tcap, (void *)text) < 0)
            return NULL;
        alias = e->kind == E_STAR ? NULL : opt_alias(p);
        if (p->diag->err.code != 0 || push_ptr(p, (void ***)&s->items, &s->nitems, &cap, e) < 0 ||
            push_ptr(p, (void ***)&s->aliases, &na, &acap, (void *)alias) < 0)
            return NULL;
    } while (accept_op(p, ","));
    uint32_t fcap = 0;
    if (accept_kw(p, "FROM") && parse_from(p, s, &fcap) < 0)
        return NULL;
    if (accept_kw(p, "WHERE") && (s->where = parse_expr(p)) == NULL)
        return NULL;
    if (accept_kw(p, "GROUP")) {
        if (expect_kw(p, "BY") < 0 || parse_expr_list(p, &s->group, &s->ngroup) < 0)
            return NULL;
    }
    if (accept_kw(p, "HAVING") && (s->having = parse_expr(p)) == NULL)
        return NULL;
    return s;
}

static int parse_order_limit(parser *p, sql_select *s)
{
    if (accept_kw(p, "ORDER")) {
        uint32_t cap = 0;
        if (expect_kw(p, "BY") < 0)
            return EM_EINVAL;
        do {
            sql_expr *e = parse_expr(p);
            if (e == NULL)
                return EM_EINVAL;
            if (s->norder == cap) {
                cap = cap ? cap * 2 : 4;
                sql_order *no = alloc(p, cap * sizeof *no);
                if (no == NULL)
                    return EM_ENOMEM;
                if (s->norder)
                    memcpy(no, s->order, s->norder * sizeof *no);
                s->order = no;
            }
            s->order[s->norder].e = e;
            s->order[s->norder].desc = accept_kw(p, "DESC");
            if (!s->order[s->norder].desc)
                accept_kw(p, "ASC");
            s->norder++;
        } while (accept_op(p, ","));
    }
    if (accept_kw(p, "LIMIT")) {
        if ((s->limit = parse_expr(p)) == NULL)
            return EM_EINVAL;
        if (accept_kw(p, "OFFSET")) {
            if ((s->offset = parse_expr(p)) == NULL)
                return EM_EINVAL;
        } else if (accept_op(p, ",")) { /* LIMIT offset, count */
            s->offset = s->limit;
            if ((s->limit = parse_expr(p)) == NULL)
                return EM_EINVAL;
        }
    }
    return 0;
}

static sql_select *parse_select(parser *p)
{
    sql_select *first, *last;
    if (++p->depth > MAX_DEPTH) {
        em__sql_diag(p->diag, EM_EINVAL, peek(p)->pos, "query nested too deeply");
        return NULL;
    }
    if ((first = parse_core(p)) == NULL)
        return NULL;
    last = first;
    for (;;) {
        int op = SET_NONE;
        if (accept_kw(p, "UNION"))
            op = accept_kw(p, "ALL") ? SET_UNION_ALL : SET_UNION;
        else if (accept_kw(p, "EXCEPT"))
            op = SET_EXCEPT;
        else if (accept_kw(p, "INTERSECT"))
            op = SET_INTERSECT;
        if (op == SET_NONE)
            break;
        if ((last->next = parse_core(p)) == NULL)
            return NULL;
        last = last->next;
        last->setop = (uint8_t)op;
    }
    if (parse_order_limit(p, first) < 0)
        return NULL;
    p->depth--;
    return first;
}

/* ---------------------------------------------------------------- statements */

/* Column definition: name [type words [(n[, m])]] [constraints...] up to ',' or ')'. */
static int parse_coldef(parser *p, sql_coldef *c)
{
    char decl[128] = "";
    c->pos = peek(p)->pos;
    if ((c->name = ident(p, "a column name")) == NULL)
        return EM_EINVAL;
    while (peek(p)->kind == TK_IDENT && !is_kw(p, "PRIMARY") && !is_kw(p, "NOT") &&
           !is_kw(p, "NULL") && !is_kw(p, "UNIQUE") && !is_kw(p, "DEFAULT") &&
           !is_kw(p, "CHECK") && !is_kw(p, "REFERENCES") && !is_kw(p, "CONSTRAINT")) {
        size_t l = strlen(decl);
        snprintf(decl + l, sizeof decl - l, "%s%s", l ? " " : "", peek(p)->text);
        p->i++;
    }
    if (accept_op(p, "(")) {
        while (!is_op(p, ")") && peek(p)->kind != TK_EOF)
            p->i++;
        if (expect_op(p, ")") < 0)
            return EM_EINVAL;
    }
    c->type_text = em_arena_memdup(p->a, decl, strlen(decl) + 1);
    c->type = (uint8_t)em__sql_type_from_decl(decl);
    /* constraints are accepted and not enforced (docs/sql.md) */
    int depth = 0;
    while (peek(p)->kind != TK_EOF && !(depth == 0 && (is_op(p, ",") || is_op(p, ")")))) {
        depth += is_op(p, "(") - is_op(p, ")");
        p->i++;
    }
    return 0;
}

/* USING csv OPTIONS (path '...', header 'true', delimiter ','), after USING. */
static int parse_using(parser *p, sql_stmt *st)
{
    if (accept_kw(p, "ember")) { /* columnar files: OPTIONS (path 'DIR') only */
        st->ember = true;
        if (expect_kw(p, "OPTIONS") < 0 || expect_op(p, "(") < 0)
            return EM_EINVAL;
        const sql_tok *k = peek(p), *v;
        if ((k->kind != TK_IDENT && k->kind != TK_QIDENT) || strcasecmp(k->text, "path") != 0)
            return syntax_error(p, "path (the only option of USING ember)");
        p->i++;
        accept_op(p, "=");
        if ((v = peek(p))->kind != TK_STRING)
            return syntax_error(p, "a directory ('...')");
        p->i++;
        st->csv_path = v->text;
        return expect_op(p, ")");
    }
    if (!accept_kw(p, "csv"))
        return syntax_error(p, "csv or ember (the table sources)");
    st->csv_delim = ',';
    if (expect_kw(p, "OPTIONS") < 0 || expect_op(p, "(") < 0)
        return EM_EINVAL;
    do {
        const sql_tok *k = peek(p), *v;
        if (k->kind != TK_IDENT && k->kind != TK_QIDENT)
            return syntax_error(p, "an option name (path, header, delimiter, multiline, mode)");
        p->i++;
        accept_op(p, "=");
        v = peek(p);
        if (v->kind != TK_STRING && v->kind != TK_IDENT)
            return syntax_error(p, "an option value ('...')");
        p->i++;
        if (strcasecmp(k->text, "path") == 0)
            st->csv_path = v->text;
        else if (strcasecmp(k->text, "header") == 0) {
            if (strcasecmp(v->text, "true") != 0 && strcasecmp(v->text, "false") != 0)
                return em__sql_diag(p->diag, EM_EINVAL, v->pos, "header: expected 'true' or 'false'");
            st->csv_header = strcasecmp(v->text, "true") == 0;
        } else if (strcasecmp(k->text, "delimiter") == 0 || strcasecmp(k->text, "sep") == 0) {
            const char *d = strcmp(v->text, "\\t") == 0 ? "\t" : v->text;
            if (strlen(d) != 1 || d[0] == '"' || d[0] == '\n' || d[0] == '\r')
                return em__sql_diag(p->diag, EM_EINVAL, v->pos,
                                    "delimiter: expected one character other than '\"' and line breaks");
            st->csv_delim = d[0];
        } else if (strcasecmp(k->text, "multiline") == 0) {
            if (strcasecmp(v->text, "true") != 0 && strcasecmp(v->text, "false") != 0)
                return em__sql_diag(p->diag, EM_EINVAL, v->pos, "multiline: expected 'true' or 'false'");
            st->csv_multiline = strcasecmp(v->text, "true") == 0;
        } else if (strcasecmp(k->text, "mode") == 0) {
            if (strcasecmp(v->text, "failfast") != 0 && strcasecmp(v->text, "dropmalformed") != 0)
                return em__sql_diag(p->diag, EM_EINVAL, v->pos,
                                    "mode: expected 'failfast' or 'dropmalformed'");
            st->csv_skip_bad = strcasecmp(v->text, "dropmalformed") == 0;
        } else
            return em__sql_diag(p->diag, EM_EINVAL, k->pos,
                                "unknown csv option '%s' (path, header, delimiter, multiline, mode)",
                                k->text);
    } while (accept_op(p, ","));
    if (expect_op(p, ")") < 0)
        return EM_EINVAL;
    if (st->csv_path == NULL)
        return em__sql_diag(p->diag, EM_EINVAL, st->table_pos, "USING csv needs OPTIONS (path '...')");
    return 0;
}

static int parse_create_table(parser *p, sql_stmt *st)
{
    uint32_t cap = 0;
    if (accept_kw(p, "IF")) {
        if (expect_kw(p, "NOT") < 0 || expect_kw(p, "EXISTS") < 0)
            return EM_EINVAL;
        st->if_not_exists = true;
    }
    st->table_pos = peek(p)->pos;
    if ((st->table = ident(p, "a table name")) == NULL)
        return EM_EINVAL;
    if (is_kw(p, "USING")) { /* USING ember OPTIONS (...) [AS SELECT]: columns from the files */
        p->i++;
        if (!is_kw(p, "ember"))
            return syntax_error(p, "ember (a csv table names its columns first)");
        if (parse_using(p, st) < 0)
            return EM_EINVAL;
        st->kind = S_CREATE;
        if (!accept_kw(p, "AS"))
            return 0;
    }
    if (st->ember || accept_kw(p, "AS")) {
        st->kind = S_CREATE_AS;
        return (st->select = parse_select(p)) == NULL ? EM_EINVAL : 0;
    }
    st->kind = S_CREATE;
    if (expect_op(p, "(") < 0)
        return EM_EINVAL;
    do {
        if (is_kw(p, "PRIMARY") || is_kw(p, "UNIQUE") || is_kw(p, "CONSTRAINT") ||
            is_kw(p, "CHECK") || is_kw(p, "FOREIGN")) { /* table constraint: skipped */
            int depth = 0;
            while (peek(p)->kind != TK_EOF && !(depth == 0 && (is_op(p, ",") || is_op(p, ")")))) {
                depth += is_op(p, "(") - is_op(p, ")");
                p->i++;
            }
            continue;
        }
        if (st->ncols == cap) {
            cap = cap ? cap * 2 : 8;
            sql_coldef *nc = alloc(p, cap * sizeof *nc);
            if (nc == NULL)
                return EM_ENOMEM;
            if (st->ncols)
                memcpy(nc, st->cols, st->ncols * sizeof *nc);
            st->cols = nc;
        }
        if (parse_coldef(p, &st->cols[st->ncols++]) < 0)
            return EM_EINVAL;
    } while (accept_op(p, ","));
    if (expect_op(p, ")") < 0)
        return EM_EINVAL;
    if (accept_kw(p, "USING") && parse_using(p, st) < 0)
        return EM_EINVAL;
    if (st->ember)
        return em__sql_diag(p->diag, EM_EINVAL, st->table_pos,
                            "USING ember takes its columns from its files: CREATE TABLE %s "
                            "USING ember OPTIONS (path '...') [AS SELECT ...]", st->table);
    if (st->ncols == 0)
        return em__sql_diag(p->diag, EM_EINVAL, st->table_pos, "table '%s' has no columns",
                            st->table);
    return 0;
}

static int parse_insert(parser *p, sql_stmt *st)
{
    uint32_t cap = 0, pcap = 0, npos = 0;
    st->kind = S_INSERT;
    if (expect_kw(p, "INTO") < 0)
        return EM_EINVAL;
    st->table_pos = peek(p)->pos;
    if ((st->table = ident(p, "a table name")) == NULL)
        return EM_EINVAL;
    if (accept_op(p, "(")) {
        do {
            uint32_t pos = peek(p)->pos;
            const char *c = ident(p, "a column name");
            if (c == NULL || push_ptr(p, (void ***)&st->icols, &st->nicols, &cap, (void *)c) < 0)
                return EM_EINVAL;
            if (npos == pcap) {
                pcap = pcap ? pcap * 2 : 8;
                uint32_t *np = alloc(p, pcap * sizeof *np);
                if (np == NULL)
                    return EM_ENOMEM;
                if (npos)
                    memcpy(np, st->icol_pos, npos * sizeof *np);
                st->icol_pos = np;
            }
            st->icol_pos[npos++] = pos;
        } while (accept_op(p, ","));
        if (expect_op(p, ")") < 0)
            return EM_EINVAL;
    }
    if (is_kw(p, "SELECT"))
        return (st->select = parse_select(p)) == NULL ? EM_EINVAL : 0;
    if (expect_kw(p, "VALUES") < 0)
        return EM_EINVAL;
    uint32_t rcap = 0;
    do {
        sql_expr **row = NULL;
        uint32_t n = 0;
        uint32_t pos = peek(p)->pos;
        if (expect_op(p, "(") < 0 || parse_expr_list(p, &row, &n) < 0 || expect_op(p, ")") < 0)
            return EM_EINVAL;
        if (st->nrows > 0 && n != st->rowlen)
            return em__sql_diag(p->diag, EM_EINVAL, pos,
                                "VALUES rows differ in length (%u and %u values)", st->rowlen, n);
        st->rowlen = n;
        if (push_ptr(p, (void ***)&st->rows, &st->nrows, &rcap, row) < 0)
            return EM_ENOMEM;
    } while (accept_op(p, ","));
    return 0;
}

static int parse_stmt_body(parser *p, sql_stmt *st)
{
    st->pos = peek(p)->pos;
    if (is_kw(p, "SELECT")) {
        st->kind = S_SELECT;
        return (st->select = parse_select(p)) == NULL ? EM_EINVAL : 0;
    }
    if (accept_kw(p, "CREATE")) {
        if (accept_kw(p, "TABLE"))
            return parse_create_table(p, st);
        accept_kw(p, "UNIQUE");
        if (!accept_kw(p, "INDEX"))
            return syntax_error(p, "TABLE or INDEX");
        st->kind = S_CREATE_INDEX;
        if (ident(p, "an index name") == NULL || expect_kw(p, "ON") < 0)
            return EM_EINVAL;
        st->table_pos = peek(p)->pos;
        if ((st->table = ident(p, "a table name")) == NULL || expect_op(p, "(") < 0)
            return EM_EINVAL;
        while (!is_op(p, ")") && peek(p)->kind != TK_EOF)
            p->i++;
        return expect_op(p, ")");
    }
    if (accept_kw(p, "DROP")) {
        bool index = accept_kw(p, "INDEX");
        if (!index && expect_kw(p, "TABLE") < 0)
            return EM_EINVAL;
        st->kind = index ? S_DROP_INDEX : S_DROP;
        if (accept_kw(p, "IF")) {
            if (expect_kw(p, "EXISTS") < 0)
                return EM_EINVAL;
            st->if_exists = true;
        }
        st->table_pos = peek(p)->pos;
        return (st->table = ident(p, index ? "an index name" : "a table name")) == NULL ? EM_EINVAL
                                                                                        : 0;
    }
    if (accept_kw(p, "INSERT"))
        return parse_insert(p, st);
    if (accept_kw(p, "SHOW")) {
        st->kind = S_SHOW_TABLES;
        return expect_kw(p, "TABLES");
    }
    if (accept_kw(p, "DESCRIBE") || accept_kw(p, "DESC")) {
        st->kind = S_DESCRIBE;
        accept_kw(p, "TABLE");
        st->table_pos = peek(p)->pos;
        return (st->table = ident(p, "a table name")) == NULL ? EM_EINVAL : 0;
    }
    if (accept_kw(p, "EXPLAIN")) {
        st->kind = S_EXPLAIN;
        if (!is_kw(p, "SELECT"))
            return syntax_error(p, "SELECT");
        return (st->select = parse_select(p)) == NULL ? EM_EINVAL : 0;
    }
    return syntax_error(p, "a statement (SELECT, CREATE, INSERT, DROP, SHOW, DESCRIBE, EXPLAIN)");
}

sql_stmt *em__sql_parse(em_arena *a, const char *src, const sql_tok *toks, size_t ntok,
                        em_sql_diag *diag)
{
    parser p = {.a = a, .src = src, .t = toks, .n = ntok, .i = 0, .diag = diag};
    sql_stmt *st = alloc(&p, sizeof *st);
    if (st == NULL)
        return NULL;
    if (parse_stmt_body(&p, st) < 0)
        return NULL;
    accept_op(&p, ";");
    if (peek(&p)->kind != TK_EOF) {
        syntax_error(&p, "end of statement");
        return NULL;
    }
    return st;
}
