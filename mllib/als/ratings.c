/* mllib/als/ratings.c - rating files: the text readers (the id maps: idmap.c).
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
 * read in blocks and lines parsed in place. Nearly every line of real files is
 * "int<sep>int<sep>decimal[<sep>digits]": fast_line parses those in one pass (ids by SWAR,
 * ratings of the shapes d, d.d, d.dd from a table filled by the general number parser, so
 * the values are bit-identical) and leaves anything else, untouched, to the general path
 * (newline search, split, parse_num), which decides exactly as it always did.
 *
 * DESIGN (parallel reading): a regular file of at least PAR_MIN_BYTES (or any size when
 * EMBER_PARSE_THREADS is set) is cut into T line-aligned byte ranges. Range 0 is parsed by
 * the calling thread straight into the caller's id maps and rating array; range k > 0 by a
 * thread of its own into local id maps (local indices in local first-appearance order) and
 * a local array. Then, in range order, each range's local ids are interned into the caller's
 * maps in their local order: an id new to the global map first appears in the earliest range
 * holding it, at its local first appearance, so this reproduces the sequential numbering
 * exactly. The local arrays are then translated through the resulting tables and copied
 * behind range 0's ratings (by T threads). The result, counts included, is byte-identical to
 * the sequential reader's whatever T is. Anything unusual (an error in any range, the Netflix
 * layout, a first line longer than the detection window) undoes the partial work and reruns
 * the sequential reader, so error messages and their line numbers are exactly its own.
 * Memory: the local arrays (12 bytes a rating of ranges 1..T-1) live until the copy, and a
 * local map's direct table stops at EM__IDMAP_LOCAL_DIRECT_MAX (larger integer ids go to its string
 * hash), so T ranges cost at most T x 16 MiB of tables.
 *
 * RAW MODE (em__ratings_parse_range with rg->raw, the executors' one pass): the same lines
 * take the same paths and give the same counts and messages, but an id is pushed as its
 * value (em__idmap_raw_id: -1 unless a canonical integer below EM__IDMAP_DIRECT_MAX) and no
 * id map is touched: the fast path pushes fast_id's value, add() converts the token. That
 * is exactly rev[index] of a mapped parse into maps without direct_lim (tests/fuzz and
 * test_als_rawparse.c check it), without the map's random reads and writes per rating. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/als/als_int.h"

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

/* Makes room for at least cap ratings. */
static int ratings_reserve(em_ratings *r, size_t cap, em_err *err)
{
    if (cap <= r->cap)
        return 0;
    size_t bytes;
    em_rating *p;
    if (!em_size_mul(cap, sizeof *p, &bytes) || !(p = em_realloc(r->recs, bytes)))
        return em_err_set(err, EM_ENOMEM, "%zu ratings", cap);
    r->recs = p;
    r->cap = cap;
    return 0;
}

static inline int push(em_ratings *r, int32_t user, int32_t item, float rating, em_err *err)
{
    if (EM_UNLIKELY(r->n == r->cap)) {
        em_rating *p = em_arr_grow(r->recs, &r->cap, r->n + 1, sizeof *p);
        if (!p)
            return em_err_set(err, EM_ENOMEM, "%zu ratings", r->n + 1);
        r->recs = p;
    }
    r->recs[r->n++] = (em_rating){user, item, rating};
    return 0;
}

int em_ratings_push(em_ratings *r, int32_t user, int32_t item, float rating, em_err *err)
{
    return push(r, user, item, rating, err);
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
    bool raw;                /* RAW mode (em__ratings_parse_range): ids by value, no maps */
    bool from_start;         /* line counts from the file's first line (not a later range) */
    uint64_t line;           /* number of the line being parsed (1-based) */
    int32_t movie;           /* netflix: current movie index, -1 before the first */
    em_idmap *users, *items;
    em_ratings *out;
    /* Optional (executor ranges): called after each block of lines with out, which it
     * empties (out->n = 0) after taking the ratings, so a range streams. */
    int (*flush)(void *ud, em_ratings *out, em_err *err);
    void *flush_ud;
} parser;

/* Scans digits[.digits] from p (stops at end or the first other byte); adds the number of
 * digits to *digits. The one place decimal mantissas are computed, so the fast and general
 * paths give bit-identical values. */
static inline const char *scan_mantissa(const char *p, const char *end, double *out,
                                        int *digits)
{
    double v = 0;
    int nd = 0;
    while (p < end && (unsigned)(*p - '0') <= 9) {
        v = v * 10 + (*p++ - '0');
        nd++;
    }
    if (p < end && *p == '.') {
        double scale = 0.1;
        for (p++; p < end && (unsigned)(*p - '0') <= 9; p++, nd++, scale *= 0.1)
            v += (*p - '0') * scale;
    }
    *out = v;
    *digits += nd;
    return p;
}

/* Parses a decimal number [+-]digits[.digits][(e|E)[+-]digits] spanning exactly [p, end). */
static bool parse_num(const char *p, const char *end, double *out)
{
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    double v;
    int digits = 0;
    p = scan_mantissa(p, end, &v, &digits);
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

/* Ratings are stored as floats: a finite double beyond FLT_MAX (1e308) would become inf and
 * poison every factor it touches, so the parser refuses it as a bad value of its line. */
#define FLOAT_WHY " overflows a float (|rating| > 3.4e38)"
static bool float_ok(double r)
{
    return fabs(r) <= FLT_MAX;
}

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
    if (ps->raw)   /* never Netflix (is != NULL): em__ratings_parse_range refuses it */
        return push(ps->out, em__idmap_raw_id(us, (size_t)(ue - us)),
                    em__idmap_raw_id(is, (size_t)(ie - is)), (float)r, err);
    if (em_idmap_intern(ps->users, us, (size_t)(ue - us), &u, err) < 0)
        return em_err_prefix(err, "%s:%llu", ps->name, (unsigned long long)ps->line);
    if (is && em_idmap_intern(ps->items, is, (size_t)(ie - is), &it, err) < 0)
        return em_err_prefix(err, "%s:%llu", ps->name, (unsigned long long)ps->line);
    return push(ps->out, u, it, (float)r, err);
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
    if (!float_ok(r))
        return bad(ps, err, FLOAT_WHY, "rating", 2, fs[1], fe[1]);
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
    if (!num && ps->line == 1 && ps->from_start && ps->fmt == EM_RATINGS_CSV)
        return 0;   /* header */
    if (fs[0] == fe[0])
        return bad(ps, err, "", "empty user id", 1, fs[0], fe[0]);
    if (fs[1] == fe[1])
        return bad(ps, err, "", "empty item id", 2, fs[1], fe[1]);
    if (!num)
        return bad(ps, err, "", "bad rating", 3, fs[2], fe[2]);
    if (!float_ok(r))
        return bad(ps, err, FLOAT_WHY, "rating", 3, fs[2], fe[2]);
    return add(ps, fs[0], fe[0], fs[1], fe[1], r, err);
}

/* ---------------------------------------------------------------- fast path */

/* A canonical integer id (em__idmap_token_int's rules) at p; NULL if there is none. The
 * byte after it is not checked. With 8 bytes at hand, ids of 1-7 digits are read with a
 * few 64-bit operations (SWAR: the digits are found by a carry-free byte-wise range test
 * and combined pairwise, then in fours, then in eights); anything else takes the byte
 * loop. */
static inline const char *fast_id(const char *p, const char *end, uint32_t *v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (end - p >= 8) {
        uint64_t t;
        memcpy(&t, p, 8);
        t -= 0x3030303030303030ull;   /* borrows only move up, past the first non-digit */
        uint64_t nd = (t | (t + 0x7676767676767676ull)) & 0x8080808080808080ull;
        unsigned n = nd ? (unsigned)__builtin_ctzll(nd) >> 3 : 8;   /* leading digits */
        if (n == 0 || (n > 1 && *p == '0'))
            return NULL;
        if (n < 8) {
            t <<= 8 * (8 - n);   /* drop the bytes after the digits; zeros lead */
            t = (t * 10 + (t >> 8)) & 0x00ff00ff00ff00ffull;
            t = (t * 100 + (t >> 16)) & 0x0000ffff0000ffffull;
            t = (t * 10000 + (t >> 32)) & 0xffffffffull;
            *v = (uint32_t)t;   /* < 10^7 < EM__IDMAP_DIRECT_MAX */
            return p + n;
        }
    }
#endif
    const char *s = p, *lim = end - p > 8 ? p + 8 : end;
    uint32_t x = 0;
    unsigned d;
    while (p < lim && (d = (unsigned)(*p - '0')) <= 9) {
        x = x * 10 + d;
        p++;
    }
    if (p == s || (*s == '0' && p - s > 1) || x >= EM__IDMAP_DIRECT_MAX)
        return NULL;
    *v = x;
    return p;
}

/* Ratings of the shapes "d", "d.d" and "d.dd" (nearly all real ones), as floats computed by
 * scan_mantissa itself so that the lookup is bit-identical to parsing. Filled once. */
enum { SHORT_RATINGS = 10 + 100 + 1000 };
static float g_short_rating[SHORT_RATINGS];   /* written once under g_short_once */
static pthread_once_t g_short_once = PTHREAD_ONCE_INIT;

static void short_ratings_fill(void)
{
    for (int k = 0; k < SHORT_RATINGS; k++) {
        char s[5];
        int len = k < 10 ? snprintf(s, sizeof s, "%d", k)
                  : k < 110 ? snprintf(s, sizeof s, "%d.%d", (k - 10) / 10, (k - 10) % 10)
                            : snprintf(s, sizeof s, "%d.%02d", (k - 110) / 100, (k - 110) % 100);
        double r;
        int digits = 0;
        scan_mantissa(s, s + len, &r, &digits);
        g_short_rating[k] = (float)r;
    }
}

/* The rating at *pp if it has a short shape followed by a byte that cannot continue a
 * number (5 bytes must be at hand); moves *pp past it. */
static inline bool short_rating(const char **pp, const char *end, float *out)
{
    const char *p = *pp;
    if (end - p < 5)
        return false;
    unsigned d0 = (unsigned)(p[0] - '0'), d1 = (unsigned)(p[2] - '0'),
             d2 = (unsigned)(p[3] - '0');
    int k, len;
    if (d0 > 9)
        return false;
    if (p[1] != '.') {
        if ((unsigned)(p[1] - '0') <= 9)
            return false;
        k = (int)d0, len = 1;
    } else if (d1 > 9) {
        return false;
    } else if (d2 > 9) {
        if (p[3] == '.')
            return false;
        k = 10 + (int)(d0 * 10 + d1), len = 3;
    } else {
        if ((unsigned)(p[4] - '0') <= 9 || p[4] == '.')
            return false;
        k = 110 + (int)(d0 * 100 + d1 * 10 + d2), len = 4;
    }
    *out = g_short_rating[k];
    *pp = p + len;
    return true;
}

/* The separator at p for format fmt (TSV: a run of blanks); the byte after it, or NULL. */
static inline const char *fast_sep(em_ratings_format fmt, const char *p, const char *end)
{
    if (p == end)
        return NULL;
    if (fmt == EM_RATINGS_TSV) {
        if (*p != ' ' && *p != '\t')
            return NULL;
        do
            p++;
        while (p < end && (*p == ' ' || *p == '\t'));
        return p;
    }
    if (fmt == EM_RATINGS_CSV)
        return *p == ',' ? p + 1 : NULL;
    return end - p >= 2 && p[0] == ':' && p[1] == ':' ? p + 2 : NULL;
}

/* Parses the line at *sp if it is "id<sep>id<sep>digits[.digits][<sep>digits]" with
 * canonical integer ids and ends in LF or CR LF before end: the shape of nearly every line
 * of real rating files. Returns 1 and moves *sp past the LF when it did, 0 (nothing done)
 * for any other line, which the general path then parses with the very same outcome.
 * Negative on an intern or allocation error, with the general path's message. */
static int fast_line(parser *ps, const char **sp, const char *end, em_err *err)
{
    const char *p = *sp, *us = p, *ue, *is, *ie;
    uint32_t uv, iv;
    float rf;
    if (!(p = ue = fast_id(p, end, &uv)) || !(p = is = fast_sep(ps->fmt, p, end)) ||
        !(p = ie = fast_id(p, end, &iv)) || !(p = fast_sep(ps->fmt, p, end)))
        return 0;
    if (!short_rating(&p, end, &rf)) {
        double r;
        int digits = 0;
        p = scan_mantissa(p, end, &r, &digits);
        if (!digits || !(r <= FLT_MAX))
            return 0;   /* the general path names the overflow */
        rf = (float)r;
    }
    if (p < end && *p != '\n' && *p != '\r') {   /* a timestamp of digits */
        const char *t = fast_sep(ps->fmt, p, end);
        if (!t || t == end || (unsigned)(*t - '0') > 9)
            return 0;
        for (p = t; p < end && (unsigned)(*p - '0') <= 9; p++)
            ;
    }
    if (p < end && *p == '\r')
        p++;
    if (p == end || *p != '\n')
        return 0;
    ps->line++;
    ps->out->lines++;
    int32_t u, it;
    if (ps->raw) {   /* fast_id's value is em__idmap_raw_id's: the same rules */
        if (push(ps->out, (int32_t)uv, (int32_t)iv, rf, err) < 0)
            return err->code;
        *sp = p + 1;
        return 1;
    }
    const em_idmap *mu = ps->users, *mi = ps->items;
    if (uv < mu->direct_cap && mu->direct[uv])   /* known ids: no call */
        u = mu->direct[uv] - 1;
    else if (em__idmap_intern_int(ps->users, uv, us, (size_t)(ue - us), &u, err) < 0)
        return em_err_prefix(err, "%s:%llu", ps->name, (unsigned long long)ps->line);
    if (iv < mi->direct_cap && mi->direct[iv])
        it = mi->direct[iv] - 1;
    else if (em__idmap_intern_int(ps->items, iv, is, (size_t)(ie - is), &it, err) < 0)
        return em_err_prefix(err, "%s:%llu", ps->name, (unsigned long long)ps->line);
    if (push(ps->out, u, it, rf, err) < 0)
        return err->code;
    *sp = p + 1;
    return 1;
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
    bool fast = ps->fmt >= EM_RATINGS_TSV && ps->fmt <= EM_RATINGS_MOVIELENS;
    if (fast)
        pthread_once(&g_short_once, short_ratings_fill);
    while (s < end) {
        int rc = fast ? fast_line(ps, &s, end, err) : 0;
        if (rc < 0)
            return rc;
        if (rc > 0)
            continue;
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl && !final)
            break;
        const char *le = nl ? nl : end;
        ps->line++;
        ps->out->lines++;
        if (memchr(s, '\0', (size_t)(le - s)))
            rc = bad(ps, err, "", "NUL byte in line", 0, s, s);
        else
            rc = parse_line(ps, s, le, err);
        if (rc < 0)
            return rc;
        s = nl ? nl + 1 : end;
    }
    *used = (size_t)(s - p);
    return 0;
}

static void parser_init(parser *ps, const char *name, em_ratings_format fmt, bool skip_bad,
                        em_idmap *users, em_idmap *items, em_ratings *out)
{
    memset(ps, 0, sizeof *ps);
    ps->name = name;
    ps->fmt = fmt;
    ps->skip_bad = skip_bad;
    ps->from_start = true;
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
    parser_init(&ps, name, opts ? opts->format : EM_RATINGS_AUTO, opts && opts->skip_bad_lines,
                users, items, out);
    if (ps.fmt > EM_RATINGS_NETFLIX)
        return em_err_set(err, EM_EINVAL, "%s: unknown format %d", name, (int)ps.fmt);
    return parse_lines(&ps, (const char *)p, len, true, &used, err);
}

/* ---------------------------------------------------------------- reading files */

enum {
    READ_BLOCK = 4 << 20,        /* read size of em_lines; a longer line grows its buffer */
    PAR_MIN_BYTES = 8 << 20,     /* smaller files are parsed on the calling thread */
    PAR_MAX_THREADS = 8,         /* default cap (online CPUs beyond it gain nothing) */
    PAR_ENV_MAX_THREADS = 64,    /* cap of EMBER_PARSE_THREADS */
    SCAN_BLOCK = 64 << 10,       /* window for format detection and range boundaries */
};

/* Parses fd through ps: bytes [off, off + len) with pread, or (off < 0) everything read()
 * returns until end of file, in blocks of whole lines from the one line splitter (em_lines,
 * engine/base/base.h). The last line of the range needs no newline. */
static int parse_fd(parser *ps, int fd, int64_t off, uint64_t len, em_err *err)
{
    em_lines l;
    em_slice b;
    size_t used;
    int rc;
    em_lines_init(&l, READ_BLOCK, 0);
    rc = em_lines_start(&l, fd, ps->name, off < 0 ? 0 : (uint64_t)off,
                        off < 0 ? EM_LINES_TO_EOF : len, err);
    while (rc == 0 && (rc = em_lines_block(&l, &b, err)) == 1) {
        rc = parse_lines(ps, (const char *)b.p, b.n, true, &used, err);
        if (rc == 0 && ps->flush)
            rc = ps->flush(ps->flush_ud, ps->out, err);
    }
    em_lines_destroy(&l);
    return rc < 0 ? rc : 0;
}

/* EMBER_PARSE_THREADS when set to 1..PAR_ENV_MAX_THREADS (any file size), else the online
 * CPUs up to PAR_MAX_THREADS for files of PAR_MIN_BYTES or more, else 1. */
static unsigned parse_threads(uint64_t size)
{
    const char *e = getenv("EMBER_PARSE_THREADS");
    if (e && *e) {
        char *q;
        unsigned long v = strtoul(e, &q, 10);
        if (!*q && v >= 1 && v <= PAR_ENV_MAX_THREADS)
            return (unsigned)v;
    }
    if (size < PAR_MIN_BYTES)
        return 1;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > PAR_MAX_THREADS ? PAR_MAX_THREADS : (unsigned)n;
}

/* detect() on the file's first SCAN_BLOCK bytes (size > 0); EM_RATINGS_AUTO when they hold
 * no whole line or cannot be read. */
static em_ratings_format detect_head(const char *path, int fd, uint64_t size)
{
    em_ratings_format fmt = EM_RATINGS_AUTO;
    char *buf = em_malloc(SCAN_BLOCK);
    size_t want = size < SCAN_BLOCK ? (size_t)size : SCAN_BLOCK;
    ssize_t got = buf ? pread(fd, buf, want, 0) : -1;
    if (got == (ssize_t)want && (memchr(buf, '\n', want) || want == size))
        fmt = detect(path, buf, want);
    em_free(buf);
    return fmt;
}

/* The format of the file (opts or detection on its first line) if the parallel reader can
 * take it; EM_RATINGS_AUTO when it cannot (Netflix layout, first line longer than the
 * detection window, unknown format, read error: the sequential reader deals with those). */
static em_ratings_format par_format(const char *path, int fd, uint64_t size,
                                    em_ratings_format fmt)
{
    if (fmt == EM_RATINGS_AUTO)
        fmt = detect_head(path, fd, size);
    return fmt >= EM_RATINGS_TSV && fmt <= EM_RATINGS_MOVIELENS ? fmt : EM_RATINGS_AUTO;
}

/* ---------------------------------------------------------------- executor ranges */

em_ratings_format em__ratings_detect(const char *path, em_ratings_format fmt)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return EM_RATINGS_AUTO;
    em_ratings_format f = EM_RATINGS_AUTO;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        uint64_t size = (uint64_t)st.st_size;
        if (fmt == EM_RATINGS_NETFLIX)
            f = fmt;
        else if (fmt == EM_RATINGS_AUTO)   /* par_format's detection, Netflix allowed */
            f = detect_head(path, fd, size);
        else
            f = par_format(path, fd, size, fmt);
    }
    close(fd);
    return f >= EM_RATINGS_TSV && f <= EM_RATINGS_NETFLIX ? f : EM_RATINGS_AUTO;
}

/* A Netflix movie line as parse_lines and parse_netflix take it (after the '\r' strip):
 * "ID:" with a non-empty ID, no ',' and no NUL byte (parse_lines rejects a line holding
 * one before parsing it); *tn = the ID's length. */
static bool movie_line(const char *p, const char *e, size_t *tn)
{
    if (e > p && e[-1] == '\r')
        e--;
    if (e - p < 2 || e[-1] != ':' || memchr(p, ',', (size_t)(e - p)) ||
        memchr(p, '\0', (size_t)(e - p)))
        return false;
    *tn = (size_t)(e - 1 - p);
    return true;
}

/* The movie a Netflix range starting at line start a belongs to: the last movie line before
 * a, found by reading backwards in windows that double (a movie's section is a few MiB at
 * most in the Netflix Prize data). Interned into items as the driver's reader did when it
 * met that line; *movie stays -1 when no movie line precedes a (the range's rating lines
 * then fail as they would in the whole file). EM_EIO, EM_ENOMEM. */
static int lookback_movie(int fd, uint64_t a, const char *path, em_idmap *items,
                          int32_t *movie, em_err *err)
{
    uint64_t w = SCAN_BLOCK;
    *movie = -1;
    for (;;) {
        uint64_t lo = a > w ? a - w : 0;
        size_t n = (size_t)(a - lo);
        char *buf = em_malloc(n + 1);
        if (!buf)
            return em_err_set(err, EM_ENOMEM, "%s: %zu bytes", path, n);
        ssize_t got = pread(fd, buf, n, (off_t)lo);
        if (got != (ssize_t)n) {
            em_free(buf);
            return em_err_set(err, EM_EIO, "%s: read at %llu failed", path,
                              (unsigned long long)lo);
        }
        /* the complete lines of the window, from the last one back (buf[n-1] is '\n') */
        const char *first = buf;
        if (lo > 0) {
            const char *nl = memchr(buf, '\n', n);
            first = nl ? nl + 1 : buf + n;
        }
        const char *e = buf + n - 1;
        while (e >= first) {
            const char *p = e;
            while (p > first && p[-1] != '\n')
                p--;
            size_t tn;
            if (movie_line(p, e, &tn)) {
                int rc = em_idmap_intern(items, p, tn, movie, err);
                em_free(buf);
                return rc < 0 ? rc : 0;
            }
            e = p - 1;
        }
        em_free(buf);
        if (lo == 0)
            return 0;
        w *= 2;
    }
}

/* Newlines in [0, end) of fd; -1 on a read error. */
static int64_t newlines_before(int fd, uint64_t end)
{
    char *buf = em_malloc(SCAN_BLOCK);
    int64_t n = 0;
    for (uint64_t off = 0; buf && off < end;) {
        size_t want = end - off < SCAN_BLOCK ? (size_t)(end - off) : SCAN_BLOCK;
        ssize_t got = pread(fd, buf, want, (off_t)off);
        if (got <= 0) {
            n = -1;
            break;
        }
        for (const char *q = buf; (q = memchr(q, '\n', (size_t)(buf + got - q))); q++)
            n++;
        off += (uint64_t)got;
    }
    em_free(buf);
    return buf ? n : -1;
}

static int drop_all(void *ud, em_ratings *out, em_err *err)
{
    (void)ud;
    (void)err;
    out->n = 0;
    return 0;
}

int em__ratings_parse_range(const em__ratings_range *rg, em_idmap *users, em_idmap *items,
                            em_ratings *out, int (*flush)(void *, em_ratings *, em_err *),
                            void *ud, em_err *err)
{
    struct stat st;
    parser ps;
    uint64_t a = 0, b = 0;
    /* RAW mode has no maps: a Netflix movie line (or a detection that could find one)
     * would need them to intern its item. */
    if (rg->raw && !(rg->fmt >= EM_RATINGS_TSV && rg->fmt <= EM_RATINGS_MOVIELENS))
        return em_err_set(err, EM_EINVAL, "%s: raw mode takes tsv, csv or movielens, not "
                          "format %d", rg->path, (int)rg->fmt);
    int rc, fd = open(rg->path, O_RDONLY);
    if (fd < 0)
        return em_err_set(err, EM_EIO, "%s: %s", rg->path, strerror(errno));
    if (fstat(fd, &st) < 0) {
        rc = em_err_set(err, EM_EIO, "%s: %s", rg->path, strerror(errno));
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size, end = rg->end < size ? rg->end : size;
    if ((rg->start > 0 && rg->start < size &&
         (rc = em_line_align(fd, rg->start, rg->path, &a, err)) < 0) ||
        (end < size && (rc = em_line_align(fd, end, rg->path, &b, err)) < 0))
        goto out;
    if (rg->start >= size)
        a = size;
    if (end >= size)
        b = size;
    rc = 0;
    if (b <= a)
        goto out;
    parser_init(&ps, rg->path, rg->fmt, rg->skip_bad, users, items, out);
    ps.raw = rg->raw;
    ps.from_start = a == 0;
    ps.flush = flush;
    ps.flush_ud = ud;
    int32_t movie = -1;   /* Netflix: the movie whose section the range starts in */
    if (rg->fmt == EM_RATINGS_NETFLIX && a > 0 &&
        (rc = lookback_movie(fd, a, rg->path, items, &movie, err)) < 0)
        goto out;
    ps.movie = movie;
    if ((rc = parse_fd(&ps, fd, (int64_t)a, b - a, err)) == EM_ECORRUPT && a > 0) {
        /* A bad line: its number counted from the range start is not the file's. Count
         * the lines before the range and parse it again (the same line fails the same
         * way), so the message names FILE:LINE as the driver's reader does. */
        int64_t nl = newlines_before(fd, a);
        em_err again = EM_ERR_INIT;
        size_t n0 = out->n;
        if (nl >= 0) {
            parser_init(&ps, rg->path, rg->fmt, rg->skip_bad, users, items, out);
            ps.raw = rg->raw;
            ps.from_start = false;
            ps.line = (uint64_t)nl;
            ps.flush = drop_all;
            ps.movie = movie;
            if (parse_fd(&ps, fd, (int64_t)a, b - a, &again) == EM_ECORRUPT)
                em_err_copy(err, &again);
        }
        out->n = n0;
    }
out:
    close(fd);
    return rc;
}

/* ---------------------------------------------------------------- parallel reading */

/* One byte range of a file and what its thread made of it. Range 0 parses into the caller's
 * maps and array; range k > 0 into its own (users, items, r). */
typedef struct chunk {
    int fd;
    uint64_t off, len;       /* starts at a line start; ends after a '\n' or at end of file */
    parser ps;
    em_idmap *users, *items; /* range k > 0: local maps, freed by par_free */
    em_ratings r;            /* range k > 0: local ratings with local indices */
    int32_t *tu, *ti;        /* range k > 0: local index -> caller's index */
    size_t dst;              /* range k > 0: where its ratings go in the caller's array */
    int rc;
    em_err err;
} chunk;

/* Translation work of one thread: ratings [lo, hi) of ranges 1.. laid end to end. */
typedef struct xlate {
    chunk *c;
    unsigned nc;
    size_t lo, hi;
    em_rating *recs;         /* the caller's array */
} xlate;

static void *chunk_main(void *arg)
{
    chunk *c = arg;
    c->rc = parse_fd(&c->ps, c->fd, (int64_t)c->off, c->len, &c->err);
    return NULL;
}

static void *xlate_main(void *arg)
{
    const xlate *x = arg;
    size_t base = 0;
    for (unsigned k = 1; k < x->nc; k++) {
        const chunk *c = &x->c[k];
        size_t lo = x->lo > base ? x->lo - base : 0, hi = x->hi - base;
        if (hi > c->r.n)
            hi = c->r.n;
        for (size_t j = lo; j < hi; j++) {
            const em_rating *s = &c->r.recs[j];
            x->recs[c->dst + j] = (em_rating){c->tu[s->user], c->ti[s->item], s->rating};
        }
        base += c->r.n;
        if (base >= x->hi)
            break;
    }
    return NULL;
}

/* Runs fn(args[t]) for t < n: t = 0 on the calling thread, the others on threads of their
 * own (or on the calling thread when a thread cannot be started). */
static void run_all(void *(*fn)(void *), void *args, size_t size, unsigned n)
{
    pthread_t th[PAR_ENV_MAX_THREADS];
    bool started[PAR_ENV_MAX_THREADS] = {false};
    for (unsigned t = 1; t < n; t++)
        started[t] = pthread_create(&th[t], NULL, fn, (char *)args + t * size) == 0;
    fn(args);
    for (unsigned t = 1; t < n; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            fn((char *)args + t * size);
    }
}

static void par_free(chunk *c, unsigned n)
{
    for (unsigned k = 1; k < n; k++) {
        em_idmap_free(c[k].users);
        em_idmap_free(c[k].items);
        em_ratings_destroy(&c[k].r);
        em_free(c[k].tu);
        em_free(c[k].ti);
    }
    em_free(c);
}

/* Start of byte range k of n over [0, size) before line alignment. */
static uint64_t nominal(uint64_t size, unsigned n, unsigned k)
{
    return size / n * k + size % n * k / n;
}

/* Cuts [0, size) into n line-aligned ranges (some possibly empty) and sets up their parsers.
 * -1 on a read error or OOM (the caller falls back to the sequential reader). */
static int par_setup(chunk *c, unsigned n, int fd, uint64_t size, const char *path,
                     em_ratings_format fmt, bool skip, em_idmap *users, em_idmap *items,
                     em_ratings *out)
{
    uint64_t start = 0;
    for (unsigned k = 0; k < n; k++) {
        uint64_t end = size, b = k + 1 < n ? nominal(size, n, k + 1) : size;
        if (b <= start)
            end = start;
        else if (b < size && em_line_align(fd, b, path, &end, NULL) < 0)
            return -1;
        c[k].fd = fd;
        c[k].off = start;
        c[k].len = end - start;
        start = end;
        if (k == 0) {
            parser_init(&c[k].ps, path, fmt, skip, users, items, out);
            continue;
        }
        if (!(c[k].users = em_idmap_new()) || !(c[k].items = em_idmap_new()))
            return -1;
        c[k].users->direct_lim = c[k].items->direct_lim = EM__IDMAP_LOCAL_DIRECT_MAX;
        parser_init(&c[k].ps, path, fmt, skip, c[k].users, c[k].items, &c[k].r);
        c[k].ps.from_start = false;
    }
    return 0;
}

/* Interns every range's local ids into the caller's maps, in range order, then translates
 * and appends the ranges' ratings to out (n threads). -1 on any failure. */
static int par_merge(chunk *c, unsigned n, em_idmap *users, em_idmap *items, em_ratings *out)
{
    em_err err = EM_ERR_INIT;
    size_t total = out->n;
    for (unsigned k = 1; k < n; k++) {
        int32_t nu = c[k].users->n, ni = c[k].items->n;
        if (!(c[k].tu = em_malloc(((size_t)nu + 1) * sizeof *c[k].tu)) ||
            !(c[k].ti = em_malloc(((size_t)ni + 1) * sizeof *c[k].ti)))
            return -1;
        for (int32_t j = 0; j < nu; j++)
            if (em__idmap_intern_from(users, c[k].users, j, &c[k].tu[j], &err) < 0)
                return -1;
        for (int32_t j = 0; j < ni; j++)
            if (em__idmap_intern_from(items, c[k].items, j, &c[k].ti[j], &err) < 0)
                return -1;
        c[k].dst = total;
        total += c[k].r.n;
        out->lines += c[k].r.lines;
        out->skipped += c[k].r.skipped;
    }
    if (ratings_reserve(out, total, &err) < 0)
        return -1;
    xlate x[PAR_ENV_MAX_THREADS];
    size_t all = total - out->n;
    unsigned nx = all < (1u << 16) ? 1 : n;
    for (unsigned t = 0; t < nx; t++)
        x[t] = (xlate){c, n, all / nx * t, t + 1 < nx ? all / nx * (t + 1) : all, out->recs};
    run_all(xlate_main, x, sizeof *x, nx);
    out->n = total;
    return 0;
}

/* Test hook: files read_par has read; any thread adds to it (atomically). */
static atomic_uint_fast64_t par_files;

uint64_t em__ratings_parallel_files(void)
{
    return atomic_load_explicit(&par_files, memory_order_relaxed);
}

/* Reads the regular file fd (size bytes) on n threads. 0 when done; 1 when it did not (a
 * format it does not take, any error or failure): out and the maps are then as they were,
 * and the caller runs the sequential reader, which reports errors in its own words. */
static int read_par(const char *path, int fd, uint64_t size, unsigned n,
                    const em_ratings_read_opts *opts, em_idmap *users, em_idmap *items,
                    em_ratings *out)
{
    em_ratings_format fmt = par_format(path, fd, size, opts ? opts->format : EM_RATINGS_AUTO);
    chunk *c;
    if (fmt == EM_RATINGS_AUTO || !(c = em_calloc(n, sizeof *c)))
        return 1;
    size_t n0 = out->n;
    uint64_t lines0 = out->lines, skipped0 = out->skipped;
    int32_t nu0 = users->n, ni0 = items->n;
    int rc = par_setup(c, n, fd, size, path, fmt, opts && opts->skip_bad_lines, users, items,
                       out);
    if (rc == 0) {
        run_all(chunk_main, c, sizeof *c, n);
        for (unsigned k = 0; k < n; k++)
            if (c[k].rc < 0)
                rc = -1;
    }
    if (rc == 0)
        rc = par_merge(c, n, users, items, out);
    if (rc < 0) {
        out->n = n0;
        out->lines = lines0;
        out->skipped = skipped0;
        em__idmap_truncate(users, nu0);
        em__idmap_truncate(items, ni0);
    }
    par_free(c, n);
    if (rc == 0)
        atomic_fetch_add_explicit(&par_files, 1, memory_order_relaxed);
    return rc < 0 ? 1 : 0;
}

/* ---------------------------------------------------------------- files and directories */

static int read_one(const char *path, const em_ratings_read_opts *opts, em_idmap *users,
                    em_idmap *items, em_ratings *out, em_err *err)
{
    parser ps;
    struct stat st;
    int rc, fd = open(path, O_RDONLY);
    if (fd < 0)
        return em_err_set(err, EM_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        unsigned n = parse_threads((uint64_t)st.st_size);
        if (n > 1 && read_par(path, fd, (uint64_t)st.st_size, n, opts, users, items, out) == 0) {
            close(fd);
            return 0;
        }
    }
    /* read_par used pread only: fd is still at offset 0 */
    parser_init(&ps, path, opts ? opts->format : EM_RATINGS_AUTO, opts && opts->skip_bad_lines,
                users, items, out);
    rc = parse_fd(&ps, fd, -1, 0, err);
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
        names = em_arr_xgrow(names, &cap, n + 1, sizeof *names);
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
