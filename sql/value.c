/* sql/value.c - typed SQL values: comparison, hashing, arithmetic, casts, text forms.
 *
 * Semantics follow SQLite so that SQLite can serve as the oracle (docs/sql.md):
 * integer + - * that overflow 64 bits give a double; integer / truncates toward zero;
 * x / 0 and x % 0 are NULL; % of doubles works on their integer parts; text used as a
 * number is read by its leading numeric prefix (0 when none); comparisons involving NULL
 * are NULL; numbers sort before text. */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/sql_int.h"

const char *em_sql_type_name(em_sql_type t)
{
    switch (t) {
    case EM_SQL_NULL: return "NULL";
    case EM_SQL_BOOL: return "BOOLEAN";
    case EM_SQL_INT: return "INTEGER";
    case EM_SQL_DOUBLE: return "DOUBLE";
    case EM_SQL_DATE: return "DATE";
    case EM_SQL_TEXT: return "TEXT";
    }
    return "?";
}

em_sql_type em__sql_type_from_decl(const char *decl)
{
    char up[64];
    size_t i;
    for (i = 0; decl[i] && i < sizeof up - 1; i++)
        up[i] = (char)toupper((unsigned char)decl[i]);
    up[i] = '\0';
    if (strstr(up, "INT"))
        return EM_SQL_INT;
    if (strstr(up, "CHAR") || strstr(up, "CLOB") || strstr(up, "TEXT") || strstr(up, "STRING"))
        return EM_SQL_TEXT;
    if (strstr(up, "BOOL"))
        return EM_SQL_BOOL;
    if (strcmp(up, "DATE") == 0)
        return EM_SQL_DATE;
    if (up[0] == '\0')
        return EM_SQL_NULL; /* no declared type: values stored as given */
    return EM_SQL_DOUBLE;   /* REAL, FLOAT, DOUBLE, DECIMAL, NUMERIC */
}

/* ---------------------------------------------------------------- dates
 * Civil-from-days and days-from-civil (proleptic Gregorian), after H. Hinnant,
 * "chrono-Compatible Low-Level Date Algorithms". */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void em__sql_date_ymd(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

bool em__sql_parse_date(const char *s, size_t n, int64_t *days)
{
    int y = 0, m = 0, d = 0;
    if (n != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (size_t i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (unsigned)(s[i] - '0') > 9)
            return false;
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 2 && d == 29 && !leap)
        return false;
    *days = days_from_civil(y, (unsigned)m, (unsigned)d);
    return true;
}

/* ---------------------------------------------------------------- numbers from text */
em_sql_value em__sql_text_num(const char *s, uint32_t len)
{
    char buf[64];
    size_t i = 0, j;
    while (i < len && isspace((unsigned char)s[i]))
        i++;
    j = i;
    if (j < len && (s[j] == '+' || s[j] == '-'))
        j++;
    size_t digits = j;
    while (j < len && isdigit((unsigned char)s[j]))
        j++;
    bool fl = false;
    size_t nd = j - digits;
    if (j < len && s[j] == '.') {
        size_t k = j + 1;
        while (k < len && isdigit((unsigned char)s[k]))
            k++;
        nd += k - j - 1;
        if (k - j > 1 || nd > 0) {
            fl = true;
            j = k;
        }
    }
    if (nd == 0)
        return em__sql_int(0);
    if (j < len && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < len && (s[k] == '+' || s[k] == '-'))
            k++;
        if (k < len && isdigit((unsigned char)s[k])) {
            while (k < len && isdigit((unsigned char)s[k]))
                k++;
            fl = true;
            j = k;
        }
    }
    if (j - i >= sizeof buf)
        return em__sql_dbl(strtod(s + i, NULL));
    memcpy(buf, s + i, j - i);
    buf[j - i] = '\0';
    if (!fl) {
        char *end;
        long long v = strtoll(buf, &end, 10);
        if (!((v == LLONG_MAX || v == LLONG_MIN) && strlen(buf) > 18))
            return em__sql_int(v);
    }
    return em__sql_dbl(strtod(buf, NULL));
}

/* v as a number (BOOL/INT/DOUBLE kept; text read; date as its day number). */
static em_sql_value as_num(const em_sql_value *v)
{
    if (v->type == EM_SQL_TEXT)
        return em__sql_text_num(v->u.s, v->len);
    if (v->type == EM_SQL_BOOL || v->type == EM_SQL_DATE)
        return em__sql_int(v->u.i);
    return *v;
}

static double num_d(const em_sql_value *v)
{
    return v->type == EM_SQL_DOUBLE ? v->u.d : (double)v->u.i;
}

/* ---------------------------------------------------------------- comparison, hashing */
static int cmp_num(const em_sql_value *a, const em_sql_value *b)
{
    if (a->type != EM_SQL_DOUBLE && b->type != EM_SQL_DOUBLE)
        return (a->u.i > b->u.i) - (a->u.i < b->u.i);
    if (a->type == EM_SQL_DOUBLE && b->type == EM_SQL_DOUBLE)
        return (a->u.d > b->u.d) - (a->u.d < b->u.d);
    /* int vs double: exact when the double is within int64 range */
    double d = a->type == EM_SQL_DOUBLE ? a->u.d : b->u.d;
    int64_t i = a->type == EM_SQL_DOUBLE ? b->u.i : a->u.i;
    int r;
    if (isnan(d))
        r = 1;
    else if (d >= 9223372036854775808.0)
        r = -1;
    else if (d < -9223372036854775808.0)
        r = 1;
    else {
        double t = trunc(d);
        int64_t di = (int64_t)t;
        if (i != di)
            r = i < di ? -1 : 1;
        else
            r = d > t ? -1 : d < t ? 1 : 0;
    }
    return a->type == EM_SQL_DOUBLE ? -r : r;
}

static int type_rank(int t)
{
    return t == EM_SQL_NULL ? 0 : t <= EM_SQL_DOUBLE ? 1 : t == EM_SQL_DATE ? 2 : 3;
}

int em__sql_cmp_total(const em_sql_value *a, const em_sql_value *b)
{
    int ra = type_rank(a->type), rb = type_rank(b->type);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (ra) {
    case 0: return 0;
    case 1: return cmp_num(a, b);
    case 2: return (a->u.i > b->u.i) - (a->u.i < b->u.i);
    default: {
        uint32_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->u.s, b->u.s, n);
        if (c != 0)
            return c < 0 ? -1 : 1;
        return (a->len > b->len) - (a->len < b->len);
    }
    }
}

int em__sql_cmp_sql(const em_sql_value *a, const em_sql_value *b)
{
    if (a->type == EM_SQL_NULL || b->type == EM_SQL_NULL)
        return 2;
    if ((a->type == EM_SQL_DATE) != (b->type == EM_SQL_DATE)) {
        const em_sql_value *t = a->type == EM_SQL_DATE ? b : a;
        int64_t days;
        if (t->type == EM_SQL_TEXT && em__sql_parse_date(t->u.s, t->len, &days)) {
            em_sql_value dv = {.type = EM_SQL_DATE, .u.i = days};
            return a->type == EM_SQL_DATE ? em__sql_cmp_total(a, &dv) : em__sql_cmp_total(&dv, b);
        }
    }
    return em__sql_cmp_total(a, b);
}

uint64_t em__sql_hash(const em_sql_value *v, uint64_t seed)
{
    switch (type_rank(v->type)) {
    case 0: return em_mix64(seed ^ 0x9e3779b97f4a7c15ULL);
    case 1:
        if (v->type == EM_SQL_DOUBLE) {
            double d = v->u.d;
            /* equal to an integer: hash as that integer (cmp_total says they are equal) */
            if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == trunc(d))
                return em_mix64(seed + (uint64_t)(int64_t)d);
            uint64_t bits;
            memcpy(&bits, &d, 8);
            return em_mix64(seed ^ bits);
        }
        return em_mix64(seed + (uint64_t)v->u.i);
    case 2: return em_mix64(seed ^ 0x5555 ^ (uint64_t)v->u.i);
    default: return em_hash64(v->u.s, v->len, seed);
    }
}

int em__sql_truth(const em_sql_value *v)
{
    if (v->type == EM_SQL_NULL)
        return -1;
    em_sql_value n = as_num(v);
    return n.type == EM_SQL_DOUBLE ? n.u.d != 0.0 : n.u.i != 0;
}

/* ---------------------------------------------------------------- arithmetic */
int em__sql_text(em_arena *a, const char *s, size_t n, em_sql_value *out)
{
    char *p = em_arena_alloc(a, n + 1);
    if (p == NULL)
        return EM_ENOMEM;
    if (n)   /* an empty text may come as (NULL, 0): a decoded empty string */
        memcpy(p, s, n);
    p[n] = '\0';
    *out = (em_sql_value){.type = EM_SQL_TEXT, .len = (uint32_t)n, .u.s = p};
    return 0;
}

static int concat(em_arena *a, const em_sql_value *x, const em_sql_value *y, em_sql_value *out)
{
    em_vbuf b;
    int rc;
    em_vbuf_init(&b);
    if ((rc = em_sql_value_format(&b, x)) == 0 && (rc = em_sql_value_format(&b, y)) == 0)
        rc = em__sql_text(a, (const char *)b.data, b.len, out);
    em_vbuf_destroy(&b);
    return rc;
}

static em_sql_value int_arith(int op, int64_t x, int64_t y)
{
    int64_t r;
    switch (op) {
    case OP_ADD:
        if (__builtin_add_overflow(x, y, &r))
            return em__sql_dbl((double)x + (double)y);
        return em__sql_int(r);
    case OP_SUB:
        if (__builtin_sub_overflow(x, y, &r))
            return em__sql_dbl((double)x - (double)y);
        return em__sql_int(r);
    case OP_MUL:
        if (__builtin_mul_overflow(x, y, &r))
            return em__sql_dbl((double)x * (double)y);
        return em__sql_int(r);
    case OP_DIV:
        if (y == 0)
            return em__sql_null();
        if (x == INT64_MIN && y == -1)
            return em__sql_dbl(9223372036854775808.0);
        return em__sql_int(x / y);
    default: /* OP_MOD */
        if (y == 0)
            return em__sql_null();
        if (y == -1)
            return em__sql_int(0);
        return em__sql_int(x % y);
    }
}

/* SQLite's & | << >>: a negative shift count shifts the other way; shifting 64 or more
 * bits gives 0 (or -1 for a negative number shifted right). */
static int64_t bit_op(int op, int64_t x, int64_t y)
{
    if (op == OP_BITAND)
        return x & y;
    if (op == OP_BITOR)
        return x | y;
    if (y < 0) {
        op = op == OP_SHL ? OP_SHR : OP_SHL;
        y = y == INT64_MIN ? 64 : -y;
    }
    if (y >= 64)
        return op == OP_SHR && x < 0 ? -1 : 0;
    if (op == OP_SHL)
        return (int64_t)((uint64_t)x << y);
    return x >> y; /* arithmetic on gcc/clang, as SQLite relies on */
}

int em__sql_binop(em_arena *a, int op, const em_sql_value *x, const em_sql_value *y,
                  em_sql_value *out)
{
    if (x->type == EM_SQL_NULL || y->type == EM_SQL_NULL) {
        *out = em__sql_null();
        return 0;
    }
    if (op == OP_CONCAT)
        return concat(a, x, y, out);
    if (op >= OP_BITAND && op <= OP_SHR) {
        em_sql_value ix, iy;
        em__sql_cast(a, x, EM_SQL_INT, &ix);
        em__sql_cast(a, y, EM_SQL_INT, &iy);
        *out = em__sql_int(bit_op(op, ix.u.i, iy.u.i));
        return 0;
    }
    em_sql_value nx = as_num(x), ny = as_num(y);
    if (nx.type != EM_SQL_DOUBLE && ny.type != EM_SQL_DOUBLE) {
        *out = int_arith(op, nx.u.i, ny.u.i);
        return 0;
    }
    double dx = num_d(&nx), dy = num_d(&ny);
    switch (op) {
    case OP_ADD: *out = em__sql_dbl(dx + dy); break;
    case OP_SUB: *out = em__sql_dbl(dx - dy); break;
    case OP_MUL: *out = em__sql_dbl(dx * dy); break;
    case OP_DIV: *out = dy == 0.0 ? em__sql_null() : em__sql_dbl(dx / dy); break;
    default: { /* SQLite's % works on the integer parts */
        if (!(dx > -9.2e18 && dx < 9.2e18 && dy > -9.2e18 && dy < 9.2e18)) {
            *out = em__sql_null();
            break;
        }
        int64_t ix = (int64_t)dx, iy = (int64_t)dy;
        *out = iy == 0 ? em__sql_null() : em__sql_dbl((double)(iy == -1 ? 0 : ix % iy));
    }
    }
    if (out->type == EM_SQL_DOUBLE && isnan(out->u.d))
        *out = em__sql_null();
    return 0;
}

/* ---------------------------------------------------------------- casts */
int em__sql_cast(em_arena *a, const em_sql_value *v, int type, em_sql_value *out)
{
    if (v->type == EM_SQL_NULL || type == EM_SQL_NULL) {
        *out = *v;
        return 0;
    }
    switch (type) {
    case EM_SQL_INT:
    case EM_SQL_BOOL: {
        em_sql_value n = as_num(v);
        int64_t i;
        if (n.type == EM_SQL_DOUBLE) {
            double d = n.u.d;
            i = isnan(d) ? 0 : d >= 9223372036854775807.0 ? INT64_MAX
                : d <= -9223372036854775808.0 ? INT64_MIN : (int64_t)d;
        } else
            i = n.u.i;
        *out = type == EM_SQL_BOOL ? em__sql_bool(i != 0) : em__sql_int(i);
        return 0;
    }
    case EM_SQL_DOUBLE: {
        em_sql_value n = as_num(v);
        *out = em__sql_dbl(num_d(&n));
        return 0;
    }
    case EM_SQL_DATE: {
        int64_t days;
        if (v->type == EM_SQL_DATE) {
            *out = *v;
            return 0;
        }
        if (v->type == EM_SQL_TEXT && em__sql_parse_date(v->u.s, v->len, &days)) {
            *out = (em_sql_value){.type = EM_SQL_DATE, .u.i = days};
            return 0;
        }
        *out = em__sql_null();
        return 0;
    }
    default: { /* TEXT */
        em_vbuf b;
        int rc;
        if (v->type == EM_SQL_TEXT) {
            *out = *v;
            return 0;
        }
        em_vbuf_init(&b);
        if ((rc = em_sql_value_format(&b, v)) == 0)
            rc = em__sql_text(a, (const char *)b.data, b.len, out);
        em_vbuf_destroy(&b);
        return rc;
    }
    }
}

int em__sql_value_dup(em_arena *a, const em_sql_value *v, em_sql_value *out)
{
    if (v->type != EM_SQL_TEXT) {
        *out = *v;
        return 0;
    }
    return em__sql_text(a, v->u.s, v->len, out);
}

/* Text that is entirely a number (spaces around allowed). */
static bool text_is_numeric(const em_sql_value *v)
{
    const char *s = v->u.s;
    size_t i = 0, n = v->len, digits = 0;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < n && isdigit((unsigned char)s[i]))
        i++, digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && isdigit((unsigned char)s[i]); i++)
            digits++;
    if (digits == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !isdigit((unsigned char)s[i]))
            return false;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    }
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    return i == n;
}

int em__sql_coerce(em_arena *a, int t, const em_sql_value *v, em_sql_value *out)
{
    em_sql_value x = *v;
    switch (t) {
    case EM_SQL_INT:
    case EM_SQL_DOUBLE:
        if (x.type == EM_SQL_TEXT && text_is_numeric(&x))
            x = em__sql_text_num(x.u.s, x.len);
        if (x.type == EM_SQL_BOOL)
            x = em__sql_int(x.u.i);
        if (t == EM_SQL_INT && x.type == EM_SQL_DOUBLE && x.u.d == trunc(x.u.d) &&
            x.u.d >= -9223372036854775808.0 && x.u.d < 9223372036854775808.0)
            x = em__sql_int((int64_t)x.u.d);
        else if (t == EM_SQL_DOUBLE && x.type == EM_SQL_INT)
            x = em__sql_dbl((double)x.u.i);
        break;
    case EM_SQL_TEXT:
        if (x.type == EM_SQL_INT || x.type == EM_SQL_DOUBLE)
            return em__sql_cast(a, &x, EM_SQL_TEXT, out);
        break;
    case EM_SQL_DATE:
        if (x.type == EM_SQL_TEXT)
            return em__sql_cast(a, &x, EM_SQL_DATE, out);
        break;
    case EM_SQL_BOOL:
        if (x.type == EM_SQL_INT)
            x = em__sql_bool(x.u.i != 0);
        break;
    default:
        break;
    }
    return em__sql_value_dup(a, &x, out);
}

/* ---------------------------------------------------------------- text forms */
void em_sql_double_shortest(char buf[32], double d)
{
    if (isnan(d)) {
        strcpy(buf, "nan");
        return;
    }
    if (isinf(d)) {
        strcpy(buf, d < 0 ? "-inf" : "inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

int em_sql_value_format(em_vbuf *out, const em_sql_value *v)
{
    switch (v->type) {
    case EM_SQL_NULL: return em_vbuf_printf(out, "NULL");
    case EM_SQL_BOOL:
    case EM_SQL_INT: return em_vbuf_printf(out, "%lld", (long long)v->u.i);
    case EM_SQL_DOUBLE: {
        char buf[40];
        double d = v->u.d;
        if (isinf(d))
            return em_vbuf_printf(out, d < 0 ? "-Inf" : "Inf");
        snprintf(buf, sizeof buf, "%.15g", d);
        if (strspn(buf, "-0123456789") == strlen(buf))
            strcat(buf, ".0");
        return em_vbuf_printf(out, "%s", buf);
    }
    case EM_SQL_DATE: {
        int y, m, dd;
        em__sql_date_ymd(v->u.i, &y, &m, &dd);
        return em_vbuf_printf(out, "%04d-%02d-%02d", y, m, dd);
    }
    default: return em_vbuf_append(out, v->u.s, v->len);
    }
}
