/* sql/expr.c - evaluation of bound expressions over one row (and its outer queries' rows).
 *
 * Three-valued logic: AND is false if either side is false, else NULL if either is NULL;
 * OR dually; NOT NULL is NULL; x IN (list) is true on a match, else NULL when x or an item
 * is NULL, else false. A subquery that does not refer to outer columns runs once per
 * statement (its result is cached in the expression node, which lives in the statement
 * arena); a correlated one runs for every row, with the current row as its outer row. */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "sql/sql_int.h"

static int oom(sql_exec *x)
{
    return em__sql_diag(x->diag, EM_ENOMEM, -1, "out of memory");
}

/* ---------------------------------------------------------------- LIKE
 * SQLite's LIKE: % any run, _ one character, ASCII case-insensitive, no escape. */
static bool like_match(const char *p, size_t pn, const char *s, size_t sn)
{
    size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;
    while (si < sn) {
        if (pi < pn && p[pi] == '%') {
            star_p = pi++;
            star_s = si;
        } else if (pi < pn && (p[pi] == '_' ||
                               tolower((unsigned char)p[pi]) == tolower((unsigned char)s[si]))) {
            pi++;
            si++;
        } else if (star_p != (size_t)-1) {
            pi = star_p + 1;
            si = ++star_s;
        } else
            return false;
    }
    while (pi < pn && p[pi] == '%')
        pi++;
    return pi == pn;
}

/* Text form of v in the arena (numbers formatted). */
static int as_text(sql_exec *x, const em_sql_value *v, em_sql_value *out)
{
    if (em__sql_cast(x->arena, v, EM_SQL_TEXT, out) < 0)
        return oom(x);
    return 0;
}

/* ---------------------------------------------------------------- subqueries */
static int subquery_rel(sql_exec *x, const sql_expr *ce, const sql_env *env, sql_rel **rel)
{
    sql_expr *e = (sql_expr *)ce; /* the cache is the node's mutable part */
    if (!e->correlated && e->cached) {
        *rel = e->cache_rel;
        return 0;
    }
    int rc = em__sql_run(x, e->plan, env, rel);
    if (rc < 0)
        return rc;
    if (!e->correlated) {
        e->cache_rel = *rel;
        e->cached = true;
    }
    return 0;
}

/* x IN values (stride apart), three-valued; result in *out. */
static void in_values(const em_sql_value *v, const em_sql_value *vals, size_t n, size_t stride,
                      bool neg, em_sql_value *out)
{
    bool saw_null = false;
    if (n == 0) {
        *out = em__sql_bool(neg);
        return;
    }
    if (v->type == EM_SQL_NULL) {
        *out = em__sql_null();
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int c = em__sql_cmp_sql(v, &vals[i * stride]);
        if (c == 0) {
            *out = em__sql_bool(!neg);
            return;
        }
        saw_null |= c == 2;
    }
    *out = saw_null ? em__sql_null() : em__sql_bool(neg);
}

static int eval_in(sql_exec *x, const sql_expr *e, const sql_env *env, em_sql_value *out)
{
    em_sql_value v;
    int rc = em__sql_eval(x, e->a, env, &v);
    if (rc < 0)
        return rc;
    if (e->kind == E_INSUB) {
        sql_rel *rel;
        if ((rc = subquery_rel(x, e, env, &rel)) < 0)
            return rc;
        in_values(&v, rel->v, rel->n, rel->width, e->neg, out);
        return 0;
    }
    if (e->nargs == 0) {
        *out = em__sql_bool(e->neg);
        return 0;
    }
    if (v.type == EM_SQL_NULL) {
        *out = em__sql_null();
        return 0;
    }
    bool saw_null = false;
    for (uint32_t i = 0; i < e->nargs; i++) {
        em_sql_value it;
        if ((rc = em__sql_eval(x, e->args[i], env, &it)) < 0)
            return rc;
        int c = em__sql_cmp_sql(&v, &it);
        if (c == 0) {
            *out = em__sql_bool(!e->neg);
            return 0;
        }
        saw_null |= c == 2;
    }
    *out = saw_null ? em__sql_null() : em__sql_bool(e->neg);
    return 0;
}

/* ---------------------------------------------------------------- scalar functions */
static int fn_substr(sql_exec *x, const em_sql_value *args, uint32_t n, em_sql_value *out)
{
    em_sql_value s, st, ln;
    int rc;
    for (uint32_t i = 0; i < n; i++)
        if (args[i].type == EM_SQL_NULL) {
            *out = em__sql_null();
            return 0;
        }
    if ((rc = as_text(x, &args[0], &s)) < 0)
        return rc;
    em__sql_cast(x->arena, &args[1], EM_SQL_INT, &st);
    int64_t len = (int64_t)s.len, start = st.u.i, cnt = len;
    if (n == 3) {
        em__sql_cast(x->arena, &args[2], EM_SQL_INT, &ln);
        cnt = ln.u.i;
    }
    /* SQLite: 1-based; start < 0 counts from the end; start 0 takes one character less */
    if (start < 0) {
        start += len;
        if (start < 0) {
            cnt += start;
            start = 0;
        }
    } else if (start > 0)
        start--;
    else if (n == 3)
        cnt--;
    if (cnt < 0) {
        start += cnt;
        cnt = -cnt;
        if (start < 0) {
            cnt += start;
            start = 0;
        }
    }
    if (start > len)
        start = len;
    if (cnt > len - start)
        cnt = len - start;
    if (cnt < 0)
        cnt = 0;
    return em__sql_text(x->arena, s.u.s + start, (size_t)cnt, out) < 0 ? oom(x) : 0;
}

static int fn_case(sql_exec *x, const em_sql_value *a, bool upper, em_sql_value *out)
{
    em_sql_value s;
    int rc;
    if (a->type == EM_SQL_NULL) {
        *out = *a;
        return 0;
    }
    if ((rc = as_text(x, a, &s)) < 0 || em__sql_text(x->arena, s.u.s, s.len, out) < 0)
        return rc < 0 ? rc : oom(x);
    char *p = (char *)out->u.s;
    for (uint32_t i = 0; i < out->len; i++)
        p[i] = (char)(upper ? toupper((unsigned char)p[i]) : tolower((unsigned char)p[i]));
    return 0;
}

static void fn_abs(const em_sql_value *a, em_sql_value *out)
{
    em_sql_value n = *a;
    if (a->type == EM_SQL_NULL) {
        *out = *a;
        return;
    }
    if (n.type == EM_SQL_TEXT)
        n = em__sql_text_num(n.u.s, n.len);
    if (n.type == EM_SQL_DOUBLE)
        *out = em__sql_dbl(fabs(n.u.d));
    else if (n.u.i == INT64_MIN)
        *out = em__sql_dbl(9223372036854775808.0);
    else
        *out = em__sql_int(n.u.i < 0 ? -n.u.i : n.u.i);
}

static int eval_func(sql_exec *x, const sql_expr *e, const sql_env *env, em_sql_value *out)
{
    em_sql_value args[3];
    int rc;
    if (e->op == FN_COALESCE || e->op == FN_IFNULL) {
        for (uint32_t i = 0; i < e->nargs; i++) {
            if ((rc = em__sql_eval(x, e->args[i], env, out)) < 0)
                return rc;
            if (out->type != EM_SQL_NULL)
                return 0;
        }
        return 0;
    }
    for (uint32_t i = 0; i < e->nargs && i < 3; i++)
        if ((rc = em__sql_eval(x, e->args[i], env, &args[i])) < 0)
            return rc;
    switch (e->op) {
    case FN_ABS: fn_abs(&args[0], out); return 0;
    case FN_NULLIF:
        *out = em__sql_cmp_sql(&args[0], &args[1]) == 0 ? em__sql_null() : args[0];
        return 0;
    case FN_LOWER:
    case FN_UPPER: return fn_case(x, &args[0], e->op == FN_UPPER, out);
    case FN_LENGTH: {
        em_sql_value s;
        if (args[0].type == EM_SQL_NULL) {
            *out = args[0];
            return 0;
        }
        if ((rc = as_text(x, &args[0], &s)) < 0)
            return rc;
        int64_t chars = 0; /* UTF-8 code points */
        for (uint32_t i = 0; i < s.len; i++)
            chars += ((unsigned char)s.u.s[i] & 0xC0) != 0x80;
        *out = em__sql_int(chars);
        return 0;
    }
    case FN_SUBSTR: return fn_substr(x, args, e->nargs, out);
    case FN_ROUND: {
        em_sql_value d, nd = em__sql_int(0);
        if (args[0].type == EM_SQL_NULL || (e->nargs == 2 && args[1].type == EM_SQL_NULL)) {
            *out = em__sql_null();
            return 0;
        }
        em__sql_cast(x->arena, &args[0], EM_SQL_DOUBLE, &d);
        if (e->nargs == 2)
            em__sql_cast(x->arena, &args[1], EM_SQL_INT, &nd);
        double sc = pow(10.0, (double)(nd.u.i < 0 ? 0 : nd.u.i > 30 ? 30 : nd.u.i));
        *out = em__sql_dbl(round(d.u.d * sc) / sc);
        return 0;
    }
    default: { /* FN_EXTRACT_YEAR */
        em_sql_value d;
        int y, m, dd;
        em__sql_cast(x->arena, &args[0], EM_SQL_DATE, &d);
        if (d.type == EM_SQL_NULL) {
            *out = d;
            return 0;
        }
        em__sql_date_ymd(d.u.i, &y, &m, &dd);
        *out = em__sql_int(y);
        return 0;
    }
    }
}

/* ---------------------------------------------------------------- the evaluator */
static int eval_logic(sql_exec *x, const sql_expr *e, const sql_env *env, em_sql_value *out)
{
    em_sql_value a, b;
    int rc = em__sql_eval(x, e->a, env, &a);
    if (rc < 0)
        return rc;
    int ta = em__sql_truth(&a);
    bool is_and = e->kind == E_AND;
    if (ta == (is_and ? 0 : 1)) { /* short circuit */
        *out = em__sql_bool(!is_and);
        return 0;
    }
    if ((rc = em__sql_eval(x, e->b, env, &b)) < 0)
        return rc;
    int tb = em__sql_truth(&b);
    if (tb == (is_and ? 0 : 1))
        *out = em__sql_bool(!is_and);
    else if (ta < 0 || tb < 0)
        *out = em__sql_null();
    else
        *out = em__sql_bool(is_and);
    return 0;
}

static int eval_unary(sql_exec *x, const sql_expr *e, const sql_env *env, em_sql_value *out)
{
    em_sql_value a;
    int rc = em__sql_eval(x, e->a, env, &a);
    if (rc < 0)
        return rc;
    if (e->op == '+') {
        *out = a;
        return 0;
    }
    if (e->op == '!') {
        int t = em__sql_truth(&a);
        *out = t < 0 ? em__sql_null() : em__sql_bool(!t);
        return 0;
    }
    if (e->op == '~') {
        em_sql_value i;
        if (a.type == EM_SQL_NULL) {
            *out = a;
            return 0;
        }
        em__sql_cast(x->arena, &a, EM_SQL_INT, &i);
        *out = em__sql_int(~i.u.i);
        return 0;
    }
    em_sql_value zero = em__sql_int(0);
    return em__sql_binop(x->arena, OP_SUB, &zero, &a, out) < 0 ? oom(x) : 0;
}

static int eval_cmp(int op, const em_sql_value *a, const em_sql_value *b, em_sql_value *out)
{
    int c = em__sql_cmp_sql(a, b);
    if (c == 2) {
        *out = em__sql_null();
        return 0;
    }
    bool r;
    switch (op) {
    case OP_EQ: r = c == 0; break;
    case OP_NE: r = c != 0; break;
    case OP_LT: r = c < 0; break;
    case OP_LE: r = c <= 0; break;
    case OP_GT: r = c > 0; break;
    default: r = c >= 0; break;
    }
    *out = em__sql_bool(r);
    return 0;
}

static int eval_case(sql_exec *x, const sql_expr *e, const sql_env *env, em_sql_value *out)
{
    em_sql_value base, w;
    int rc;
    if (e->a != NULL && (rc = em__sql_eval(x, e->a, env, &base)) < 0)
        return rc;
    for (uint32_t i = 0; i + 1 < e->nargs; i += 2) {
        if ((rc = em__sql_eval(x, e->args[i], env, &w)) < 0)
            return rc;
        bool hit = e->a != NULL ? em__sql_cmp_sql(&base, &w) == 0 : em__sql_truth(&w) == 1;
        if (hit)
            return em__sql_eval(x, e->args[i + 1], env, out);
    }
    if (e->b != NULL)
        return em__sql_eval(x, e->b, env, out);
    *out = em__sql_null();
    return 0;
}

static int eval_between(sql_exec *x, const sql_expr *e, const sql_env *env, em_sql_value *out)
{
    em_sql_value a, lo, hi, c1, c2;
    int rc;
    if ((rc = em__sql_eval(x, e->a, env, &a)) < 0 || (rc = em__sql_eval(x, e->b, env, &lo)) < 0 ||
        (rc = em__sql_eval(x, e->c, env, &hi)) < 0)
        return rc;
    eval_cmp(OP_GE, &a, &lo, &c1);
    eval_cmp(OP_LE, &a, &hi, &c2);
    int t1 = em__sql_truth(&c1), t2 = em__sql_truth(&c2);
    int t = (t1 == 0 || t2 == 0) ? 0 : (t1 < 0 || t2 < 0) ? -1 : 1;
    if (t >= 0 && e->neg)
        t = !t;
    *out = t < 0 ? em__sql_null() : em__sql_bool(t);
    return 0;
}

static int eval_like(sql_exec *x, const sql_expr *e, const sql_env *env, em_sql_value *out)
{
    em_sql_value a, b, ta, tb;
    int rc;
    if ((rc = em__sql_eval(x, e->a, env, &a)) < 0 || (rc = em__sql_eval(x, e->b, env, &b)) < 0)
        return rc;
    if (a.type == EM_SQL_NULL || b.type == EM_SQL_NULL) {
        *out = em__sql_null();
        return 0;
    }
    if ((rc = as_text(x, &a, &ta)) < 0 || (rc = as_text(x, &b, &tb)) < 0)
        return rc;
    *out = em__sql_bool(like_match(tb.u.s, tb.len, ta.u.s, ta.len) != e->neg);
    return 0;
}

static int eval_subq(sql_exec *x, const sql_expr *e, const sql_env *env, em_sql_value *out)
{
    sql_rel *rel;
    int rc = subquery_rel(x, e, env, &rel);
    if (rc < 0)
        return rc;
    if (e->kind == E_EXISTS)
        *out = em__sql_bool((rel->n > 0) != e->neg);
    else
        *out = rel->n > 0 ? rel->v[0] : em__sql_null(); /* SQLite: the first row */
    return 0;
}

int em__sql_eval(sql_exec *x, const sql_expr *e, const sql_env *env, em_sql_value *out)
{
    em_sql_value a, b;
    int rc;
    switch (e->kind) {
    case E_LIT: *out = e->v; return 0;
    case E_COL: {
        const sql_env *en = env;
        for (int32_t l = 0; l < e->level; l++)
            en = en->outer;
        *out = en->row[e->col];
        return 0;
    }
    case E_AGG: *out = env->row[e->col]; return 0;
    case E_UNARY: return eval_unary(x, e, env, out);
    case E_BINARY:
        if ((rc = em__sql_eval(x, e->a, env, &a)) < 0 || (rc = em__sql_eval(x, e->b, env, &b)) < 0)
            return rc;
        if (e->op >= OP_EQ)
            return eval_cmp(e->op, &a, &b, out);
        return em__sql_binop(x->arena, e->op, &a, &b, out) < 0 ? oom(x) : 0;
    case E_AND:
    case E_OR: return eval_logic(x, e, env, out);
    case E_ISNULL:
        if ((rc = em__sql_eval(x, e->a, env, &a)) < 0)
            return rc;
        *out = em__sql_bool((a.type == EM_SQL_NULL) != e->neg);
        return 0;
    case E_IS:
        if ((rc = em__sql_eval(x, e->a, env, &a)) < 0 || (rc = em__sql_eval(x, e->b, env, &b)) < 0)
            return rc;
        if (a.type == EM_SQL_NULL || b.type == EM_SQL_NULL)
            *out = em__sql_bool((a.type == b.type) != e->neg);
        else
            *out = em__sql_bool((em__sql_cmp_sql(&a, &b) == 0) != e->neg);
        return 0;
    case E_BETWEEN: return eval_between(x, e, env, out);
    case E_INLIST:
    case E_INSUB: return eval_in(x, e, env, out);
    case E_EXISTS:
    case E_SUBQ: return eval_subq(x, e, env, out);
    case E_CASE: return eval_case(x, e, env, out);
    case E_CAST:
        if ((rc = em__sql_eval(x, e->a, env, &a)) < 0)
            return rc;
        return em__sql_cast(x->arena, &a, e->cast_type, out) < 0 ? oom(x) : 0;
    case E_FUNC: return eval_func(x, e, env, out);
    case E_LIKE: return eval_like(x, e, env, out);
    default:
        return em__sql_diag(x->diag, EM_EPLAN, e->pos, "expression cannot be evaluated here");
    }
}
