/* mllib/als/ratings.c - rating files: the id maps and the text readers.
 *
 * FORMATS (one rating a line; CR LF or LF; empty lines skipped):
 *   tsv        user<TAB|SPACE>item<TAB|SPACE>rating[<TAB|SPACE>timestamp]
 *   csv        user,item,rating[,timestamp]; a first line whose rating is not a number is a
 *              header (MovieLens ratings.csv: userId,movieId,rating,timestamp)
 *   movielens  user::item::rating::timestamp (MovieLens 1M/10M ratings.dat)
 *   netflix    "MOVIEID:" starts a movie; then user,rating[,date] lines
 * Ids are arbitrary tokens without separators; they are mapped to dense indices.
 *
 * WHY hand-written parsing: strtod/strtol are locale-aware and need NUL-terminated input; a
 * Netflix-sized file has 100M lines, so number parsing is most of the load time. Files are
 * read in large blocks and lines parsed in place. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/als/als.h"

/* ---------------------------------------------------------------- id map */

#define DIRECT_MAX (1u << 26)   /* integer ids below this use the direct table */

struct em_idmap {
    int32_t *direct;       /* direct[id] = index + 1, 0 = absent */
    size_t direct_cap;
    int64_t *rev;          /* per index: integer id >= 0, or -(arena offset + 1) */
    size_t rev_cap;
    int32_t n;
    int32_t *slots;        /* string hash: index or -1; nslots is a power of two */
    size_t nslots, nstr;
    char *arena;           /* NUL-terminated string ids */
    size_t alen, acap;
};

em_idmap *em_idmap_new(void)
{
    return em_calloc(1, sizeof(em_idmap));
}

void em_idmap_free(em_idmap *m)
{
    if (!m)
        return;
    em_free(m->direct);
    em_free(m->rev);
    em_free(m->slots);
    em_free(m->arena);
    em_free(m);
}

int32_t em_idmap_size(const em_idmap *m)
{
    return m->n;
}

/* Canonical integer token: digits, no leading zero (except "0"), value < DIRECT_MAX. */
static bool token_int(const char *t, size_t n, uint32_t *v)
{
    if (n == 0 || n > 8 || (n > 1 && t[0] == '0'))
        return false;
    uint32_t x = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(t[i] - '0');
        if (d > 9)
            return false;
        x = x * 10 + d;
    }
    if (x >= DIRECT_MAX)
        return false;
    *v = x;
    return true;
}

static const char *str_of(const em_idmap *m, int32_t idx)
{
    return m->arena + (size_t)(-m->rev[idx] - 1);
}

static int32_t str_find(const em_idmap *m, const char *t, size_t n, size_t *slot)
{
    if (!m->nslots)
        return -1;
    size_t mask = m->nslots - 1, h = (size_t)em_hash64(t, n, 7) & mask;
    for (;; h = (h + 1) & mask) {
        int32_t idx = m->slots[h];
        if (idx < 0) {
            *slot = h;
            return -1;
        }
        const char *s = str_of(m, idx);
        if (strncmp(s, t, n) == 0 && s[n] == '\0')
            return idx;
    }
}

int32_t em_idmap_find(const em_idmap *m, const char *tok, size_t n)
{
    uint32_t v;
    size_t slot;
    if (token_int(tok, n, &v))
        return v < m->direct_cap ? m->direct[v] - 1 : -1;
    return str_find(m, tok, n, &slot);
}

static int grow_rev(em_idmap *m, em_err *err)
{
    if ((size_t)m->n < m->rev_cap)
        return 0;
    if (m->n == INT32_MAX)
        return em_err_set(err, EM_EINVAL, "more than %d distinct ids", INT32_MAX);
    size_t cap = m->rev_cap ? m->rev_cap * 2 : 1024;
    int64_t *r = em_realloc(m->rev, cap * sizeof *r);
    if (!r)
        return em_err_set(err, EM_ENOMEM, "id map: %zu ids", cap);
    m->rev = r;
    m->rev_cap = cap;
    return 0;
}

static int rehash(em_idmap *m, em_err *err)
{
    size_t ns = m->nslots ? m->nslots * 2 : 1024;
    int32_t *s = em_malloc(ns * sizeof *s);
    if (!s)
        return em_err_set(err, EM_ENOMEM, "id map: hash of %zu slots", ns);
    memset(s, 0xff, ns * sizeof *s);
    int32_t *old = m->slots;
    m->slots = s;
    m->nslots = ns;
    for (int32_t i = 0; i < m->n; i++) {
        if (m->rev[i] >= 0)
            continue;
        const char *str = str_of(m, i);
        size_t h = (size_t)em_hash64(str, strlen(str), 7) & (ns - 1);
        while (s[h] >= 0)
            h = (h + 1) & (ns - 1);
        s[h] = i;
    }
    em_free(old);
    return 0;
}

static int intern_str(em_idmap *m, const char *t, size_t n, int32_t *out, em_err *err)
{
    size_t slot = 0;
    int32_t idx = str_find(m, t, n, &slot);
    if (idx >= 0) {
        *out = idx;
        return 0;
    }
    if ((m->nstr + 1) * 2 > m->nslots) {
        if (rehash(m, err) < 0)
            return err->code;
        str_find(m, t, n, &slot);
    }
    if (grow_rev(m, err) < 0)
        return err->code;
    if (m->alen + n + 1 > m->acap) {
        size_t cap = (m->acap ? m->acap * 2 : 4096) + n + 1;
        char *a = em_realloc(m->arena, cap);
        if (!a)
            return em_err_set(err, EM_ENOMEM, "id map: %zu bytes of ids", cap);
        m->arena = a;
        m->acap = cap;
    }
    memcpy(m->arena + m->alen, t, n);
    m->arena[m->alen + n] = '\0';
    m->rev[m->n] = -(int64_t)m->alen - 1;
    m->alen += n + 1;
    m->slots[slot] = m->n;
    m->nstr++;
    *out = m->n++;
    return 0;
}

int em_idmap_intern(em_idmap *m, const char *tok, size_t n, int32_t *out, em_err *err)
{
    uint32_t v;
    if (n == 0)
        return em_err_set(err, EM_EINVAL, "empty id");
    if (!token_int(tok, n, &v))
        return intern_str(m, tok, n, out, err);
    if (v < m->direct_cap && m->direct[v]) {
        *out = m->direct[v] - 1;
        return 0;
    }
    if (v >= m->direct_cap) {
        size_t cap = m->direct_cap ? m->direct_cap : 1024;
        while (cap <= v)
            cap *= 2;
        int32_t *d = em_realloc(m->direct, cap * sizeof *d);
        if (!d)
            return em_err_set(err, EM_ENOMEM, "id map: direct table of %zu", cap);
        memset(d + m->direct_cap, 0, (cap - m->direct_cap) * sizeof *d);
        m->direct = d;
        m->direct_cap = cap;
    }
    if (grow_rev(m, err) < 0)
        return err->code;
    m->rev[m->n] = v;
    m->direct[v] = m->n + 1;
    *out = m->n++;
    return 0;
}

const char *em_idmap_name(const em_idmap *m, int32_t idx, char buf[24])
{
    if (idx < 0 || idx >= m->n)
        return NULL;
    if (m->rev[idx] < 0)
        return str_of(m, idx);
    snprintf(buf, 24, "%lld", (long long)m->rev[idx]);
    return buf;
}

/* ---------------------------------------------------------------- rating arrays */

void em_ratings_init(em_ratings *r)
{
    memset(r, 0, sizeof *r);
}

void em_ratings_destroy(em_ratings *r)
{
    em_free(r->recs);
    memset(r, 0, sizeof *r);
}

int em_ratings_push(em_ratings *r, int32_t user, int32_t item, float rating, em_err *err)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4096;
        em_rating *p = em_realloc(r->recs, cap * sizeof *p);
        if (!p)
            return em_err_set(err, EM_ENOMEM, "%zu ratings", cap);
        r->recs = p;
        r->cap = cap;
    }
    r->recs[r->n++] = (em_rating){user, item, rating};
    return 0;
}

int em_ratings_format_parse(const char *s)
{
    static const char *const names[] = {"auto", "tsv", "csv", "movielens", "netflix"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* ---------------------------------------------------------------- parser */

typedef struct parser {
    const char *name;
    em_ratings_format fmt;
    bool skip_bad;
    uint64_t line;           /* number of the line being parsed (1-based) */
    int32_t movie;           /* netflix: current movie index, -1 before the first */
    em_idmap *users, *items;
    em_ratings *out;
} parser;

/* Parses a decimal number [+-]digits[.digits][(e|E)[+-]digits] spanning exactly [p, end). */
static bool parse_num(const char *p, const char *end, double *out)
{
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    double v = 0;
    int digits = 0;
    while (p < end && (unsigned)(*p - '0') <= 9) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (p < end && *p == '.') {
        double scale = 0.1;
        for (p++; p < end && (unsigned)(*p - '0') <= 9; p++, digits++, scale *= 0.1)
            v += (*p - '0') * scale;
    }
    if (!digits)
        return false;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = false;
        if (p < end && (*p == '-' || *p == '+'))
            eneg = *p++ == '-';
        int e = 0, ed = 0;
        while (p < end && (unsigned)(*p - '0') <= 9 && e < 1000) {
            e = e * 10 + (*p++ - '0');
            ed++;
        }
        if (!ed)
            return false;
        v *= pow(10.0, eneg ? -e : e);
    }
    *out = neg ? -v : v;
    return p == end && isfinite(v);
}

enum { MAXF = 6 };

/* Splits [p, end) into fields; returns the count (MAXF + 1 means "too many"). */
static int split(const parser *ps, const char *p, const char *end, const char **fs,
                 const char **fe)
{
    int n = 0;
    if (ps->fmt == EM_RATINGS_TSV) {
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
            if (p == end)
                break;
            if (n == MAXF)
                return MAXF + 1;
            fs[n] = p;
            while (p < end && *p != ' ' && *p != '\t')
                p++;
            fe[n++] = p;
        }
        return n;
    }
    bool dc = ps->fmt == EM_RATINGS_MOVIELENS;
    for (;;) {
        if (n == MAXF)
            return MAXF + 1;
        fs[n] = p;
        const char *q = p;
        while (q < end && !(*q == (dc ? ':' : ',') && (!dc || (q + 1 < end && q[1] == ':'))))
            q++;
        fe[n++] = q;
        if (q == end)
            return n;
        p = q + (dc ? 2 : 1);
    }
}

static int bad(parser *ps, em_err *err, const char *fmt, const char *what, int col,
               const char *s, const char *e)
{
    if (ps->skip_bad) {
        ps->out->skipped++;
        return 0;
    }
    int len = (int)(e - s > 40 ? 40 : e - s);
    if (col > 0)
        return em_err_set(err, EM_ECORRUPT, "%s:%llu: column %d: %s '%.*s'%s", ps->name,
                          (unsigned long long)ps->line, col, what, len, s, fmt);
    return em_err_set(err, EM_ECORRUPT, "%s:%llu: %s '%.*s'%s", ps->name,
                      (unsigned long long)ps->line, what, len, s, fmt);
}

static int add(parser *ps, const char *us, const char *ue, const char *is, const char *ie,
               double r, em_err *err)
{
    int32_t u, it = ps->movie;
    if (em_idmap_intern(ps->users, us, (size_t)(ue - us), &u, err) < 0)
        return em_err_prefix(err, "%s:%llu", ps->name, (unsigned long long)ps->line);
    if (is && em_idmap_intern(ps->items, is, (size_t)(ie - is), &it, err) < 0)
        return em_err_prefix(err, "%s:%llu", ps->name, (unsigned long long)ps->line);
    return em_ratings_push(ps->out, u, it, (float)r, err);
}

static int parse_netflix(parser *ps, const char *p, const char *end, em_err *err)
{
    if (end[-1] == ':') {
        if (end - 1 == p || memchr(p, ',', (size_t)(end - p)))
            return bad(ps, err, "", "bad movie line", 0, p, end);
        return em_idmap_intern(ps->items, p, (size_t)(end - 1 - p), &ps->movie, err) < 0
                   ? em_err_prefix(err, "%s:%llu", ps->name, (unsigned long long)ps->line)
                   : 0;
    }
    const char *fs[MAXF + 1], *fe[MAXF + 1];
    int nf = split(ps, p, end, fs, fe);
    double r;
    if (ps->movie < 0)
        return bad(ps, err, " before any 'MOVIEID:' line", "rating line", 0, p, end);
    if (nf < 2 || nf > 3)
        return bad(ps, err, " (expected user,rating[,date])", "line", 0, p, end);
    if (fs[0] == fe[0])
        return bad(ps, err, "", "empty user id", 1, p, end);
    if (!parse_num(fs[1], fe[1], &r))
        return bad(ps, err, "", "bad rating", 2, fs[1], fe[1]);
    return add(ps, fs[0], fe[0], NULL, NULL, r, err);
}

static int parse_line(parser *ps, const char *p, const char *end, em_err *err)
{
    if (end > p && end[-1] == '\r')
        end--;
    if (end == p)
        return 0;
    if (ps->fmt == EM_RATINGS_NETFLIX)
        return parse_netflix(ps, p, end, err);
    const char *fs[MAXF + 1], *fe[MAXF + 1];
    int nf = split(ps, p, end, fs, fe);
    double r;
    if (nf < 3 || nf > 4)
        return bad(ps, err, " (expected user, item, rating[, timestamp])", "line", 0, p,
                   end);
    bool num = parse_num(fs[2], fe[2], &r);
    if (!num && ps->line == 1 && ps->fmt == EM_RATINGS_CSV)
        return 0;   /* header */
    if (fs[0] == fe[0])
        return bad(ps, err, "", "empty user id", 1, fs[0], fe[0]);
    if (fs[1] == fe[1])
        return bad(ps, err, "", "empty item id", 2, fs[1], fe[1]);
    if (!num)
        return bad(ps, err, "", "bad rating", 3, fs[2], fe[2]);
    return add(ps, fs[0], fe[0], fs[1], fe[1], r, err);
}

static em_ratings_format detect(const char *name, const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n);
    size_t len = nl ? (size_t)(nl - p) : n;
    if (len && p[len - 1] == '\r')
        len--;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (len && p[len - 1] == ':' && !memchr(p, ',', len))
        return EM_RATINGS_NETFLIX;
    for (size_t i = 0; i + 1 < len; i++)
        if (p[i] == ':' && p[i + 1] == ':')
            return EM_RATINGS_MOVIELENS;
    if (memchr(p, ',', len) || strstr(base, ".csv"))
        return EM_RATINGS_CSV;
    return EM_RATINGS_TSV;
}

/* Parses the complete lines of [p, p+len); *used = bytes consumed. With final, a last line
 * without a newline is parsed too. */
static int parse_lines(parser *ps, const char *p, size_t len, bool final, size_t *used,
                       em_err *err)
{
    const char *s = p, *end = p + len;
    if (ps->fmt == EM_RATINGS_AUTO && len)
        ps->fmt = detect(ps->name, p, len);
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl && !final)
            break;
        const char *le = nl ? nl : end;
        ps->line++;
        ps->out->lines++;
        if (memchr(s, '\0', (size_t)(le - s))) {
            int rc = bad(ps, err, "", "NUL byte in line", 0, s, s);
            if (rc < 0)
                return rc;
        } else {
            int rc = parse_line(ps, s, le, err);
            if (rc < 0)
                return rc;
        }
        s = nl ? nl + 1 : end;
    }
    *used = (size_t)(s - p);
    return 0;
}

static void parser_init(parser *ps, const char *name, const em_ratings_read_opts *opts,
                        em_idmap *users, em_idmap *items, em_ratings *out)
{
    memset(ps, 0, sizeof *ps);
    ps->name = name;
    ps->fmt = opts ? opts->format : EM_RATINGS_AUTO;
    ps->skip_bad = opts && opts->skip_bad_lines;
    ps->movie = -1;
    ps->users = users;
    ps->items = items;
    ps->out = out;
}

int em_ratings_parse(const char *name, const uint8_t *p, size_t len,
                     const em_ratings_read_opts *opts, em_idmap *users, em_idmap *items,
                     em_ratings *out, em_err *err)
{
    parser ps;
    size_t used;
    parser_init(&ps, name, opts, users, items, out);
    if (ps.fmt > EM_RATINGS_NETFLIX)
        return em_err_set(err, EM_EINVAL, "%s: unknown format %d", name, (int)ps.fmt);
    return parse_lines(&ps, (const char *)p, len, true, &used, err);
}

enum { READ_BLOCK = 32 << 20 };

static int read_one(const char *path, const em_ratings_read_opts *opts, em_idmap *users,
                    em_idmap *items, em_ratings *out, em_err *err)
{
    parser ps;
    size_t cap = READ_BLOCK, have = 0, used;
    char *buf = NULL;
    int rc = 0, fd = open(path, O_RDONLY);
    if (fd < 0)
        return em_err_set(err, EM_EIO, "%s: %s", path, strerror(errno));
    parser_init(&ps, path, opts, users, items, out);
    if (!(buf = em_malloc(cap))) {
        rc = em_err_set(err, EM_ENOMEM, "%s: read buffer", path);
        goto out;
    }
    for (;;) {
        if (have == cap) {   /* one line longer than the buffer */
            char *nb = em_realloc(buf, cap * 2);
            if (!nb) {
                rc = em_err_set(err, EM_ENOMEM, "%s:%llu: line too long", path,
                                (unsigned long long)ps.line + 1);
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + have, cap - have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = em_err_set(err, EM_EIO, "%s: read: %s", path, strerror(errno));
            goto out;
        }
        have += (size_t)got;
        if ((rc = parse_lines(&ps, buf, have, got == 0, &used, err)) < 0)
            goto out;
        memmove(buf, buf + used, have - used);
        have -= used;
        if (got == 0)
            break;
    }
out:
    em_free(buf);
    close(fd);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int em_ratings_read(const char *path, const em_ratings_read_opts *opts, em_idmap *users,
                    em_idmap *items, em_ratings *out, em_err *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return em_err_set(err, EM_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return read_one(path, opts, users, items, out, err);
    DIR *d = opendir(path);
    if (!d)
        return em_err_set(err, EM_EIO, "%s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.' || de->d_name[0] == '_')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = em_xrealloc(names, cap * sizeof *names);
        }
        names[n++] = em_xasprintf("%s/%s", path, de->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            rc = read_one(names[i], opts, users, items, out, err);
    for (size_t i = 0; i < n; i++)
        em_free(names[i]);
    em_free(names);
    return rc;
}
