/* sql/explain.c - EXPLAIN: a plan as an indented tree, one node per line, with its
 * expressions printed back as SQL (bound columns by name, or #offset in the wide row). */
#include <stdio.h>

#include "sql/sql_int.h"

static const char *const binops[] = {"+", "-", "*", "/", "%", "||", "&", "|", "<<", ">>", "=", "<>", "<", "<=", ">", ">="};
static const char *const fns[] = {"abs", "coalesce", "nullif", "lower", "upper", "length",
                                  "substr", "ifnull", "extract_year", "round", "count", "sum",
                                  "avg", "min", "max", "total", "group_concat"};

static int pexpr(em_vbuf *b, const sql_expr *e);

static int pargs(em_vbuf *b, const sql_expr *e)
{
    int rc = 0;
    for (uint32_t i = 0; i < e->nargs && rc == 0; i++) {
        if (i && (rc = em_vbuf_printf(b, ", ")) < 0)
            return rc;
        rc = pexpr(b, e->args[i]);
    }
    return rc;
}

static int pexpr(em_vbuf *b, const sql_expr *e)
{
    int rc;
    switch (e->kind) {
    case E_LIT:
        if (e->v.type == EM_SQL_TEXT)
            return em_vbuf_printf(b, "'%.*s'", (int)e->v.len, e->v.u.s);
        return em_sql_value_format(b, &e->v);
    case E_COL:
        if (e->name)
            return em_vbuf_printf(b, "%s%s%s%s", e->level ? "outer." : "", e->qual ? e->qual : "",
                                  e->qual ? "." : "", e->name);
        return em_vbuf_printf(b, "#%d", e->col);
    case E_NAME: return em_vbuf_printf(b, "%s", e->name);
    case E_STAR: return em_vbuf_printf(b, "*");
    case E_UNARY:
        if ((rc = em_vbuf_printf(b, e->op == '!' ? "NOT " : "%c", e->op)) < 0)
            return rc;
        return pexpr(b, e->a);
    case E_BINARY:
    case E_AND:
    case E_OR:
    case E_IS:
    case E_LIKE:
        if ((rc = em_vbuf_printf(b, "(")) < 0 || (rc = pexpr(b, e->a)) < 0)
            return rc;
        if ((rc = em_vbuf_printf(b, " %s%s ", e->kind == E_BINARY ? binops[e->op]
                                 : e->kind == E_AND ? "AND" : e->kind == E_OR ? "OR"
                                 : e->kind == E_IS ? "IS" : "LIKE",
                                 e->neg ? " NOT" : "")) < 0 || (rc = pexpr(b, e->b)) < 0)
            return rc;
        return em_vbuf_printf(b, ")");
    case E_ISNULL:
        if ((rc = pexpr(b, e->a)) < 0)
            return rc;
        return em_vbuf_printf(b, e->neg ? " IS NOT NULL" : " IS NULL");
    case E_BETWEEN:
        if ((rc = pexpr(b, e->a)) < 0 || (rc = em_vbuf_printf(b, e->neg ? " NOT BETWEEN " : " BETWEEN ")) < 0 ||
            (rc = pexpr(b, e->b)) < 0 || (rc = em_vbuf_printf(b, " AND ")) < 0)
            return rc;
        return pexpr(b, e->c);
    case E_INLIST:
        if ((rc = pexpr(b, e->a)) < 0 || (rc = em_vbuf_printf(b, e->neg ? " NOT IN (" : " IN (")) < 0 ||
            (rc = pargs(b, e)) < 0)
            return rc;
        return em_vbuf_printf(b, ")");
    case E_INSUB:
        if ((rc = pexpr(b, e->a)) < 0)
            return rc;
        return em_vbuf_printf(b, "%s(subquery%s)", e->neg ? " NOT IN " : " IN ",
                              e->correlated ? ", correlated" : "");
    case E_EXISTS: return em_vbuf_printf(b, "%sEXISTS(subquery)", e->neg ? "NOT " : "");
    case E_SUBQ: return em_vbuf_printf(b, "(subquery%s)", e->correlated ? ", correlated" : "");
    case E_CASE:
        if ((rc = em_vbuf_printf(b, "CASE")) < 0)
            return rc;
        if (e->a && ((rc = em_vbuf_printf(b, " ")) < 0 || (rc = pexpr(b, e->a)) < 0))
            return rc;
        for (uint32_t i = 0; i + 1 < e->nargs; i += 2)
            if ((rc = em_vbuf_printf(b, " WHEN ")) < 0 || (rc = pexpr(b, e->args[i])) < 0 ||
                (rc = em_vbuf_printf(b, " THEN ")) < 0 || (rc = pexpr(b, e->args[i + 1])) < 0)
                return rc;
        if (e->b && ((rc = em_vbuf_printf(b, " ELSE ")) < 0 || (rc = pexpr(b, e->b)) < 0))
            return rc;
        return em_vbuf_printf(b, " END");
    case E_CAST:
        if ((rc = em_vbuf_printf(b, "CAST(")) < 0 || (rc = pexpr(b, e->a)) < 0)
            return rc;
        return em_vbuf_printf(b, " AS %s)", em_sql_type_name(e->cast_type));
    case E_FUNC:
    case E_AGG:
        if ((rc = em_vbuf_printf(b, "%s(%s", fns[e->op], e->distinct ? "DISTINCT " : "")) < 0)
            return rc;
        if (e->kind == E_AGG && e->a == NULL)
            rc = em_vbuf_printf(b, "*");
        else
            rc = pargs(b, e);
        return rc < 0 ? rc : em_vbuf_printf(b, ")");
    default: return em_vbuf_printf(b, "?");
    }
}

static int plist(em_vbuf *b, const char *head, sql_expr *const *es, uint32_t n)
{
    int rc = em_vbuf_printf(b, " %s[", head);
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (i && (rc = em_vbuf_printf(b, ", ")) < 0)
            return rc;
        rc = pexpr(b, es[i]);
    }
    return rc < 0 ? rc : em_vbuf_printf(b, "]");
}

static int node_line(const sql_plan *p, em_vbuf *b)
{
    static const char *const setops[] = {"", "UNION", "UNION ALL", "EXCEPT", "INTERSECT"};
    int rc = 0;
    switch (p->kind) {
    case P_ONEROW: return em_vbuf_printf(b, "OneRow");
    case P_SCAN:
        if (!p->table->loaded && p->table->csv_path) /* scanned by executors */
            rc = em_vbuf_printf(b, "Scan %s (csv, %llu bytes)", p->label,
                                (unsigned long long)p->table->csv_bytes);
        else
            rc = em_vbuf_printf(b, "Scan %s (%zu rows)", p->label, p->table->nrows);
        break;
    case P_SUBQ: rc = em_vbuf_printf(b, "Subquery %s", p->label); break;
    case P_FILTER: rc = em_vbuf_printf(b, "Filter"); break;
    case P_JOIN:
        rc = em_vbuf_printf(b, "%s%sJoin", p->nkeys ? "Hash" : "NestedLoop",
                            p->join == J_LEFT ? "Left" : "");
        if (rc == 0 && p->nkeys && (rc = plist(b, "left keys ", p->lkeys, p->nkeys)) == 0)
            rc = plist(b, "right keys ", p->rkeys, p->nkeys);
        break;
    case P_AGG:
        if ((rc = em_vbuf_printf(b, "Aggregate")) == 0 && p->nexprs)
            rc = plist(b, "group ", p->exprs, p->nexprs);
        if (rc == 0)
            rc = plist(b, "aggs ", p->aggs, p->naggs);
        return rc;
    case P_PROJECT:
        if ((rc = em_vbuf_printf(b, "Project")) == 0)
            rc = plist(b, "", p->exprs, p->nexprs);
        return rc;
    case P_DISTINCT: return em_vbuf_printf(b, "Distinct (first %u columns)", p->nkeep);
    case P_SORT:
        rc = em_vbuf_printf(b, "Sort [");
        for (uint32_t i = 0; i < p->nsort && rc == 0; i++)
            rc = em_vbuf_printf(b, "%s#%u%s", i ? ", " : "", p->sort_cols[i],
                                p->sort_desc[i] ? " DESC" : "");
        return rc < 0 ? rc : em_vbuf_printf(b, "]");
    case P_LIMIT:
        if ((rc = em_vbuf_printf(b, "Limit")) == 0 && p->limit)
            if ((rc = em_vbuf_printf(b, " ")) == 0)
                rc = pexpr(b, p->limit);
        if (rc == 0 && p->offset && (rc = em_vbuf_printf(b, " offset ")) == 0)
            rc = pexpr(b, p->offset);
        return rc;
    case P_TRIM: return em_vbuf_printf(b, "Trim (first %u columns)", p->nkeep);
    case P_SETOP: return em_vbuf_printf(b, "%s", setops[p->setop]);
    }
    if (rc == 0 && p->pred != NULL && (rc = em_vbuf_printf(b, " where ")) == 0)
        rc = pexpr(b, p->pred);
    return rc;
}

static int explain(const sql_plan *p, em_vbuf *b, int depth)
{
    int rc = em_vbuf_printf(b, "%*s%s", depth * 2, "", depth ? "-> " : "");
    if (rc < 0 || (rc = node_line(p, b)) < 0 || (rc = em_vbuf_printf(b, "\n")) < 0)
        return rc;
    if (p->in != NULL && (rc = explain(p->in, b, depth + 1)) < 0)
        return rc;
    if (p->right != NULL && (rc = explain(p->right, b, depth + 1)) < 0)
        return rc;
    return 0;
}

int em__sql_plan_explain(const sql_plan *p, em_vbuf *out)
{
    return explain(p, out, 0);
}
