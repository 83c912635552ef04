/* sql/lex.c - the SQL tokenizer, diagnostics with a caret under the offending token, and
 * the edit distance behind "did you mean".
 *
 * Tokens keep their byte offset in the statement text, so every later error (parse, unknown
 * name) can point at the token. Comments: "-- to end of line" and C-style. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sql/sql_int.h"

int em__sql_diag(em_sql_diag *d, int code, int64_t pos, const char *fmt, ...)
{
    va_list ap;
    d->pos = pos;
    d->err.code = code;
    va_start(ap, fmt);
    vsnprintf(d->err.msg, sizeof d->err.msg, fmt, ap);
    va_end(ap);
    return code;
}

int em_sql_diag_format(em_vbuf *out, const char *sql, size_t len, const em_sql_diag *d)
{
    int rc = em_vbuf_printf(out, "%s", d->err.msg);
    if (rc < 0 || d->pos < 0 || sql == NULL || (size_t)d->pos > len)
        return rc < 0 ? rc : em_vbuf_printf(out, "\n");
    size_t pos = (size_t)d->pos, ls = pos, le = pos;
    unsigned line = 1;
    while (ls > 0 && sql[ls - 1] != '\n')
        ls--;
    while (le < len && sql[le] != '\n' && sql[le] != '\r')
        le++;
    for (size_t i = 0; i < ls; i++)
        line += sql[i] == '\n';
    /* long lines are clipped around the caret: at most 60 bytes before it, 60 after */
    const char *pre = "", *post = "";
    if (pos - ls > 60) {
        ls = pos - 40;
        pre = "...";
    }
    if (le - pos > 60) {
        le = pos + 40;
        post = "...";
    }
    char head[40];
    int hl = snprintf(head, sizeof head, "LINE %u: %s", line, pre);
    if ((rc = em_vbuf_printf(out, "\n%s%.*s%s\n", head, (int)(le - ls), sql + ls, post)) < 0)
        return rc;
    for (size_t i = 0; i < (size_t)hl + (pos - ls); i++) {
        char c = (i >= (size_t)hl && sql[ls + i - hl] == '\t') ? '\t' : ' ';
        if ((rc = em_vbuf_append(out, &c, 1)) < 0)
            return rc;
    }
    return em_vbuf_printf(out, "^\n");
}

int em__sql_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int row[64];
    if (la >= 63 || lb >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static bool is_ident_start(int c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static bool is_ident_char(int c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Length of the operator at s (0 when none). */
static size_t op_len(const char *s, size_t n)
{
    static const char *const two[] = {"==", "!=", "<>", "<=", ">=", "||", "<<", ">>"};
    if (n >= 2)
        for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
            if (s[0] == two[i][0] && s[1] == two[i][1])
                return 2;
    return strchr("(),.;+-*/%=<>&|~", s[0]) != NULL && s[0] != '\0' ? 1 : 0;
}

/* Scans a quoted token starting at src[i] (quote q, closing cq); doubled closers escape. */
static int scan_quoted(em_arena *a, const char *src, size_t n, size_t *i, char cq, sql_tok *t,
                       em_sql_diag *diag)
{
    size_t start = *i, j = *i + 1, end = j;
    /* find the closing quote first, so the buffer is the token's size, not the input's */
    while (end < n && !(src[end] == cq && !(end + 1 < n && src[end + 1] == cq && cq != ']')))
        end += (end + 1 < n && src[end] == cq && src[end + 1] == cq) ? 2 : 1;
    char *buf = em_arena_alloc(a, end - start + 1);
    size_t k = 0;
    if (buf == NULL)
        return em__sql_diag(diag, EM_ENOMEM, -1, "out of memory");
    for (;;) {
        if (j >= n)
            return em__sql_diag(diag, EM_EINVAL, (int64_t)start, "unterminated %s",
                                cq == '\'' ? "string" : "quoted identifier");
        if (src[j] == cq) {
            if (j + 1 < n && src[j + 1] == cq && cq != ']') {
                buf[k++] = cq;
                j += 2;
                continue;
            }
            j++;
            break;
        }
        buf[k++] = src[j++];
    }
    buf[k] = '\0';
    t->text = buf;
    t->len = (uint32_t)(j - start);
    *i = j;
    return 0;
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
}

/* Scans a blob literal x'4142' into a TK_STRING of its bytes (blobs are text here). */
static int scan_blob(em_arena *a, const char *src, size_t n, size_t *i, sql_tok *t,
                     em_sql_diag *diag)
{
    size_t start = *i, j = start + 2, k = 0;
    char *buf = em_arena_alloc(a, (n - start) / 2 + 1);
    if (buf == NULL)
        return em__sql_diag(diag, EM_ENOMEM, -1, "out of memory");
    while (j < n && src[j] != '\'') {
        int hi = hexval((unsigned char)src[j]), lo = j + 1 < n ? hexval((unsigned char)src[j + 1]) : -1;
        if (hi < 0 || lo < 0)
            return em__sql_diag(diag, EM_EINVAL, (int64_t)start,
                                "malformed blob literal (want an even number of hex digits)");
        buf[k++] = (char)(hi * 16 + lo);
        j += 2;
    }
    if (j >= n)
        return em__sql_diag(diag, EM_EINVAL, (int64_t)start, "unterminated blob literal");
    buf[k] = '\0';
    t->kind = TK_STRING;
    t->text = buf;
    t->len = (uint32_t)(j + 1 - start);
    *i = j + 1;
    return 0;
}

/* Scans a number: digits [. digits] [e[+-]digits], or . digits. */
static void scan_number(const char *src, size_t n, size_t *i, sql_tok *t)
{
    size_t j = *i;
    bool fl = false;
    while (j < n && isdigit((unsigned char)src[j]))
        j++;
    if (j < n && src[j] == '.') {
        fl = true;
        j++;
        while (j < n && isdigit((unsigned char)src[j]))
            j++;
    }
    if (j < n && (src[j] == 'e' || src[j] == 'E')) {
        size_t k = j + 1;
        if (k < n && (src[k] == '+' || src[k] == '-'))
            k++;
        if (k < n && isdigit((unsigned char)src[k])) {
            fl = true;
            j = k;
            while (j < n && isdigit((unsigned char)src[j]))
                j++;
        }
    }
    t->kind = fl ? TK_FLOAT : TK_INT;
    t->len = (uint32_t)(j - *i);
    *i = j;
}

/* Skips blanks and comments from *i; EM_EINVAL on an unterminated block comment. */
static int skip_space(const char *src, size_t n, size_t *i, em_sql_diag *diag)
{
    size_t j = *i;
    for (;;) {
        while (j < n && isspace((unsigned char)src[j]))
            j++;
        if (j + 1 < n && src[j] == '-' && src[j + 1] == '-') {
            while (j < n && src[j] != '\n')
                j++;
            continue;
        }
        if (j + 1 < n && src[j] == '/' && src[j + 1] == '*') {
            size_t start = j;
            j += 2;
            while (j + 1 < n && !(src[j] == '*' && src[j + 1] == '/'))
                j++;
            if (j + 1 >= n)
                return em__sql_diag(diag, EM_EINVAL, (int64_t)start, "unterminated comment");
            j += 2;
            continue;
        }
        break;
    }
    *i = j;
    return 0;
}

/* Scans the token at src[*i] (not a blank) into t. */
static int scan_token(em_arena *a, const char *src, size_t n, size_t *i, sql_tok *t,
                      em_sql_diag *diag)
{
    size_t start = *i;
    int c = (unsigned char)src[start];
    t->pos = (uint32_t)start;
    if ((c == 'x' || c == 'X') && start + 1 < n && src[start + 1] == '\'')
        return scan_blob(a, src, n, i, t, diag);
    if (c == '\'' || c == '"' || c == '`' || c == '[') {
        t->kind = c == '\'' ? TK_STRING : TK_QIDENT;
        return scan_quoted(a, src, n, i, c == '[' ? ']' : (char)c, t, diag);
    }
    if (isdigit(c) || (c == '.' && start + 1 < n && isdigit((unsigned char)src[start + 1])))
        scan_number(src, n, i, t);
    else if (is_ident_start(c)) {
        size_t j = start;
        while (j < n && is_ident_char((unsigned char)src[j]))
            j++;
        t->kind = TK_IDENT;
        t->len = (uint32_t)(j - start);
        *i = j;
    } else {
        size_t l = op_len(src + start, n - start);
        if (l == 0)
            return em__sql_diag(diag, EM_EINVAL, (int64_t)start, "unexpected character '%c'",
                                isprint(c) ? c : '?');
        t->kind = TK_OP;
        t->len = (uint32_t)l;
        *i = start + l;
    }
    char *txt = em_arena_alloc(a, t->len + 1);
    if (txt == NULL)
        return em__sql_diag(diag, EM_ENOMEM, -1, "out of memory");
    memcpy(txt, src + start, t->len);
    txt[t->len] = '\0';
    t->text = txt;
    return 0;
}

sql_tok *em__sql_lex(em_arena *a, const char *src, size_t n, size_t *ntok, size_t *end,
                     em_sql_diag *diag)
{
    sql_tok *toks = NULL;
    size_t cnt = 0, cap = 0, i = 0;
    sql_tok *res = NULL;

    for (;;) {
        if (skip_space(src, n, &i, diag) < 0)
            goto out;
        if (cnt + 1 >= cap) {
            sql_tok *nt = em_arr_grow(toks, &cap, cnt + 2, sizeof *toks);
            if (nt == NULL) {
                em__sql_diag(diag, EM_ENOMEM, -1, "out of memory");
                goto out;
            }
            toks = nt;
        }
        sql_tok *t = &toks[cnt];
        memset(t, 0, sizeof *t);
        if (i >= n) {
            t->kind = TK_EOF;
            t->pos = (uint32_t)n;
            t->text = "";
            cnt++;
            break;
        }
        if (scan_token(a, src, n, &i, t, diag) < 0)
            goto out;
        cnt++;
        if (t->kind == TK_OP && t->text[0] == ';')
            break;
    }
    /* the ';' (if any) stays as the last real token; an EOF follows it */
    if (toks[cnt - 1].kind != TK_EOF) {
        toks[cnt].kind = TK_EOF;
        toks[cnt].pos = (uint32_t)i;
        toks[cnt].text = "";
        toks[cnt].len = 0;
        cnt++;
    }
    res = em_arena_memdup(a, toks, cnt * sizeof *toks);
    if (res == NULL)
        em__sql_diag(diag, EM_ENOMEM, -1, "out of memory");
    *ntok = cnt;
    *end = i;
out:
    if (res == NULL)
        *end = i;
    em_free(toks);
    return res;
}
