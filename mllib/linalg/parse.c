/* mllib/linalg/parse.c - the executors' half of em_ml_read: ml.linalg.parse turns the lines
 * of one text split into dense or sparse rows (rows.h layouts), and ml.linalg.densify
 * makes a sparse row dense.
 *
 * LINES: LIBSVM "label idx:val idx:val ..." (spaces or tabs; 1-based strictly ascending
 * indices; '#' starts a comment; empty and comment-only lines are skipped). CSV/TSV: the
 * first line of every file is the header and is skipped here (load.c read the first file's
 * on the driver); every other non-empty line has exactly ncols numeric fields (spaces
 * around a field allowed).
 * BAD LINES: a counted skip (accumulator) with skip_bad_lines, else the task fails with
 * "FILE:LINE: why: 'text'". The text source hands out lines without positions, so the
 * line number is found only then: the function knows its split's file and start offset
 * (the parse context, linalg_int.h), counts the lines it has seen, and counts the newlines
 * before the split by reading the file up to it (the error path only). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mllib/linalg/linalg_int.h"

typedef struct parse_ctx {
    em_ml_format format;
    bool sparse, labeled, skip;
    uint32_t dim, ncols, label_col, acc;
    uint32_t nfiles, nsplits;
    const uint8_t *files;    /* nfiles x (u32 len, bytes) */
    const uint8_t *splits;   /* nsplits x (u32 file, u64 start) */
    size_t files_n;
} parse_ctx;

static int decode_ctx(em_slice b, parse_ctx *pc, em_err *err)
{
    memset(pc, 0, sizeof *pc);
    if (b.n < 32 || em_load_le32(b.p) != EM__ML_PARSE_MAGIC)
        return em_err_set(err, EM_ECORRUPT, "ml.linalg.parse: bad context");
    pc->format = (em_ml_format)b.p[4];
    pc->sparse = b.p[5];
    pc->labeled = b.p[6];
    pc->skip = b.p[7];
    pc->dim = em_load_le32(b.p + 8);
    pc->ncols = em_load_le32(b.p + 12);
    pc->label_col = em_load_le32(b.p + 16);
    pc->acc = em_load_le32(b.p + 20);
    pc->nfiles = em_load_le32(b.p + 24);
    pc->nsplits = em_load_le32(b.p + 28);
    size_t at = 32;
    pc->files = b.p + at;
    for (uint32_t i = 0; i < pc->nfiles; i++) {
        if (b.n - at < 4 || b.n - at - 4 < em_load_le32(b.p + at))
            return em_err_set(err, EM_ECORRUPT, "ml.linalg.parse: bad file table");
        at += 4 + em_load_le32(b.p + at);
    }
    pc->files_n = at - 32;
    pc->splits = b.p + at;
    if ((b.n - at) / 12 < pc->nsplits || b.n - at != (size_t)12 * pc->nsplits)
        return em_err_set(err, EM_ECORRUPT, "ml.linalg.parse: bad split table");
    bool csv = pc->format == EM_ML_CSV || pc->format == EM_ML_TSV;
    if ((!csv && pc->format != EM_ML_LIBSVM) || (csv && pc->ncols == 0) ||
        (!pc->sparse && pc->dim == 0) || (csv && pc->label_col != EM__ML_NO_LABEL &&
                                          pc->label_col >= pc->ncols))
        return em_err_set(err, EM_ECORRUPT, "ml.linalg.parse: bad options in context");
    return 0;
}

/* The path (copied into buf) and start of split `index`; false when unknown. */
static bool split_of(const parse_ctx *pc, uint32_t index, char *buf, size_t cap,
                     uint64_t *start)
{
    if (index >= pc->nsplits)
        return false;
    const uint8_t *s = pc->splits + (size_t)12 * index;
    uint32_t f = em_load_le32(s);
    *start = em_load_le64(s + 4);
    const uint8_t *p = pc->files;
    for (uint32_t i = 0; i < pc->nfiles; i++) {
        uint32_t len = em_load_le32(p);
        if (i == f) {
            size_t n = len < cap - 1 ? len : cap - 1;
            memcpy(buf, p + 4, n);
            buf[n] = 0;
            return true;
        }
        p += 4 + len;
    }
    return false;
}

/* Newlines in [0, end) of path; -1 on a read error. */
static int64_t count_newlines(const char *path, uint64_t end)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    static const size_t CH = 1 << 20;
    char *buf = em_malloc(CH);
    int64_t nl = 0;
    uint64_t off = 0;
    while (buf && off < end) {
        size_t want = end - off < CH ? (size_t)(end - off) : CH;
        ssize_t k = pread(fd, buf, want, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        for (const char *q = buf; (q = memchr(q, '\n', (size_t)(buf + k - q))) != NULL; q++)
            nl++;
        off += (uint64_t)k;
    }
    bool ok = buf && off == end;
    em_free(buf);
    close(fd);
    return ok ? nl : -1;
}

/* Fails the task for the k-th line (0-based) of split `index`. */
static int bad_line(const parse_ctx *pc, uint32_t index, uint64_t k, const char *why,
                    em_slice line, em_err *err)
{
    char path[512];
    uint64_t start;
    int shown = line.n > 60 ? 60 : (int)line.n;
    const char *more = line.n > 60 ? "..." : "";
    if (!split_of(pc, index, path, sizeof path, &start))
        return em_err_set(err, EM_ECORRUPT, "partition %u, line %llu of its split: %s: "
                          "'%.*s%s'", index, (unsigned long long)k + 1, why, shown,
                          (const char *)line.p, more);
    int64_t nl = start == 0 ? 0 : count_newlines(path, start - 1);
    if (nl < 0)
        return em_err_set(err, EM_ECORRUPT, "%s: line %llu after byte %llu: %s: '%.*s%s'",
                          path, (unsigned long long)k + 1, (unsigned long long)start, why,
                          shown, (const char *)line.p, more);
    uint64_t first = start == 0 ? 1 : 2 + (uint64_t)nl;
    return em_err_set(err, EM_ECORRUPT, "%s:%llu: %s: '%.*s%s'", path,
                      (unsigned long long)(first + k), why, shown, (const char *)line.p, more);
}

/* ---------------------------------------------------------------- numbers
 * WHY not strtod alone: it needs a NUL-terminated string (lines are slices), is slow, and
 * a loaded file is mostly short decimals. Fast path (Clinger, "How to read floating point
 * numbers accurately", 1990): a mantissa m < 2^53 of at most 19 significant digits scaled
 * by 10^e with |e| <= 22 is exact in one multiplication or division, because both
 * operands are exact doubles and IEEE rounds the one operation correctly. Anything else
 * (more digits, larger exponents) goes to strtod on a copy (the C locale: ember never calls
 * setlocale), so every result is strtod's. The digits are scanned once: the caller gets
 * the end of the number and checks what follows it. */
static const double pow10_tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static bool parse_slow(const char *p, const char *end, double *out)
{
    char buf[128];
    size_t n = (size_t)(end - p);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, p, n);
    buf[n] = 0;
    char *e;
    double v = strtod(buf, &e);
    if (e != buf + n || !isfinite(v))
        return false;
    *out = v;
    return true;
}

const char *em__ml_scan_double(const char *p, const char *end, double *out)
{
    const char *s = p, *d;
    bool neg = false;
    unsigned c;
    if (s < end && (*s == '-' || *s == '+'))
        neg = *s++ == '-';
    uint64_t m = 0;
    int scale = 0, any = 0;
    while (s < end && *s == '0')   /* leading zeros are no significant digits */
        s++, any = 1;
    for (d = s; s < end && (c = (unsigned)(*s - '0')) < 10; s++)
        m = m * 10 + c;
    long nd = s - d;   /* significant digits so far (m wraps beyond 19: slow path) */
    any |= nd > 0;
    if (s < end && *s == '.') {
        s++;
        if (nd == 0)
            for (; s < end && *s == '0'; s++)
                scale -= scale > -100000, any = 1;
        for (d = s; s < end && (c = (unsigned)(*s - '0')) < 10; s++)
            m = m * 10 + c;
        scale -= (int)(s - d < 1000 ? s - d : 1000);
        nd += s - d;
        any |= s > d;
    }
    if (!any)
        return NULL;
    if (s < end && (*s == 'e' || *s == 'E')) {
        const char *e = s + 1;
        bool eneg = false;
        int ev = 0;
        if (e < end && (*e == '-' || *e == '+'))
            eneg = *e++ == '-';
        for (d = e; e < end && (c = (unsigned)(*e - '0')) < 10; e++)
            if (ev < 100000)
                ev = ev * 10 + (int)c;
        if (e > d) {   /* else "1e": the number is "1", and 'e' is what follows it */
            scale += eneg ? -ev : ev;
            s = e;
        }
    }
    if (nd > 19 || m >= (1ull << 53) || scale < -22 || scale > 22)
        return parse_slow(p, s, out) ? s : NULL;
    double v = (double)m;
    v = scale < 0 ? v / pow10_tab[-scale] : v * pow10_tab[scale];
    *out = neg ? -v : v;
    return s;
}

bool em__ml_parse_double(const char *p, const char *end, double *out)
{
    return em__ml_scan_double(p, end, out) == end;
}

static inline bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* One LIBSVM line into idx/val (capacity grown in *cap). 1 row, 0 nothing (blank or
 * comment), -1 bad (*why set). */
static int parse_libsvm(const parse_ctx *pc, const char *p, const char *end, double *label,
                        uint32_t **idx, double **val, size_t *cap, uint32_t *nnz,
                        const char **why)
{
    const char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash)
        end = hash;
    while (p < end && is_blank(*p))
        p++;
    while (end > p && (is_blank(end[-1]) || end[-1] == '\r'))
        end--;
    if (p == end)
        return 0;
    const char *t = em__ml_scan_double(p, end, label);
    if (!t || (t < end && !is_blank(*t)))
        return *why = "bad label", -1;
    *nnz = 0;
    for (p = t; p < end;) {
        while (p < end && is_blank(*p))
            p++;
        if (p == end)
            break;
        const char *colon = p;
        uint64_t j = 0;
        for (; colon < end && (unsigned)(*colon - '0') < 10; colon++)
            j = j < 0x100000000ull ? j * 10 + (uint64_t)(*colon - '0') : j;
        if (colon == p || colon == end || *colon != ':')
            return *why = "expected index:value", -1;
        double v;
        t = em__ml_scan_double(colon + 1, end, &v);
        if (!t || (t < end && !is_blank(*t)))
            return *why = "bad value", -1;
        if (j == 0 || j > 0xfffffffeull)
            return *why = "index out of range (indices are 1-based)", -1;
        if (*nnz > 0 && (uint32_t)(j - 1) <= (*idx)[*nnz - 1])
            return *why = "indices not strictly ascending", -1;
        if (pc->dim > 0 && j > pc->dim)
            return *why = "index above the feature count", -1;
        if (*nnz == *cap) {
            size_t c2 = *cap;
            uint32_t *i2 = em_arr_grow(*idx, &c2, *nnz + 1, sizeof **idx);
            if (i2)
                *idx = i2;
            size_t c3 = *cap;
            double *v2 = i2 ? em_arr_grow(*val, &c3, *nnz + 1, sizeof **val) : NULL;
            if (!v2)
                return *why = "out of memory", -2;
            *val = v2;
            *cap = c2 < c3 ? c2 : c3;
        }
        (*idx)[*nnz] = (uint32_t)(j - 1);
        (*val)[(*nnz)++] = v;
        p = t;
    }
    return 1;
}

/* One CSV/TSV line into out (label first when labeled, then the features). 1 row, 0
 * blank, -1 bad. */
static int parse_csv(const parse_ctx *pc, const char *p, const char *end, double *out,
                     const char **why)
{
    char sep = pc->format == EM_ML_TSV ? '\t' : ',';
    while (end > p && end[-1] == '\r')
        end--;
    const char *q = p;
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    if (q == end)
        return 0;
    uint32_t col = 0, f = pc->labeled ? 1 : 0;
    for (;; col++) {
        const char *e = memchr(p, sep, (size_t)(end - p));
        const char *fe = e ? e : end;
        if (col >= pc->ncols)
            return *why = "more fields than the header", -1;
        const char *a = p, *b = fe;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        double v;
        if (!em__ml_parse_double(a, b, &v))
            return *why = "bad number", -1;
        if (col == pc->label_col)
            out[0] = v;
        else
            out[f++] = v;
        if (!e)
            break;
        p = e + 1;
    }
    if (col + 1 != pc->ncols)
        return *why = "fewer fields than the header", -1;
    return 1;
}

typedef struct parse_state {
    uint32_t *idx;
    double *val, *row;
    size_t cap;
    em_vbuf rec;
} parse_state;

/* Parses one line into its row record (*rec, pointing into st): 1 a row, 0 a skipped line
 * (empty, comment), -1 a bad line (*why says why), <0 an error. */
static int row_of(const parse_ctx *pc, parse_state *st, em_slice line, const char **why,
                  em_slice *rec, em_err *err)
{
    const char *p = (const char *)line.p, *end = p + line.n;
    int r;
    if (pc->format == EM_ML_LIBSVM) {
        uint32_t nnz = 0;
        double label;
        r = parse_libsvm(pc, p, end, &label, &st->idx, &st->val, &st->cap, &nnz, why);
        if (r == -2)
            return em_err_set(err, EM_ENOMEM, "ml.linalg.parse: out of memory");
        if (r <= 0)
            return r;
        if (!pc->sparse) {
            size_t f = pc->labeled ? 1 : 0;
            memset(st->row, 0, sizeof(double) * (pc->dim + f));
            if (pc->labeled)
                st->row[0] = label;
            for (uint32_t i = 0; i < nnz; i++)
                st->row[f + st->idx[i]] = st->val[i];
            *rec = em_slice_make(st->row, 8 * (pc->dim + f));
            return 1;
        }
        em_vbuf_clear(&st->rec);
        if ((pc->labeled && em_vbuf_append(&st->rec, &label, 8) < 0) ||
            em_ml_sparse_encode(nnz, st->idx, st->val, &st->rec) < 0)
            return em_err_set(err, EM_ENOMEM, "ml.linalg.parse: out of memory");
        *rec = em_slice_make(st->rec.data, st->rec.len);
        return 1;
    }
    r = parse_csv(pc, p, end, st->row, why);
    if (r <= 0)
        return r;
    *rec = em_slice_make(st->row, 8 * ((size_t)pc->dim + (pc->labeled ? 1 : 0)));
    return 1;
}

/* Parses one line and emits its row. 0 ok or skipped, -1 a bad line, <0 error. */
static int parse_one(const parse_ctx *pc, parse_state *st, em_slice line, const char **why,
                     em_emitter *out, em_err *err)
{
    em_slice rec;
    int r = row_of(pc, st, line, why, &rec, err);
    if (r <= 0)
        return r;
    return em_emit_val(out, rec, err) < 0 ? err->code : 1;
}

int em__ml_parse_line(const em__ml_line_opts *o, em_slice line, em_vbuf *row,
                      const char **why, em_err *err)
{
    parse_ctx pc = {.format = o->format, .sparse = o->sparse, .labeled = o->labeled,
                    .dim = o->dim, .ncols = o->ncols, .label_col = o->label_col};
    bool csv = pc.format == EM_ML_CSV || pc.format == EM_ML_TSV;
    if ((!csv && pc.format != EM_ML_LIBSVM) || (csv && pc.ncols == 0) ||
        (!pc.sparse && pc.dim == 0) ||
        (csv && pc.label_col != EM__ML_NO_LABEL && pc.label_col >= pc.ncols))
        return em_err_set(err, EM_EINVAL, "ml.linalg.parse: bad options");
    parse_state st = {0};
    if (!(st.row = em_malloc(sizeof(double) * ((size_t)pc.dim + 1 + pc.ncols))))
        return em_err_set(err, EM_ENOMEM, "ml.linalg.parse: out of memory");
    em_vbuf_init(&st.rec);
    em_slice rec = {0};
    int r = row_of(&pc, &st, line, why, &rec, err);
    if (r == 1) {
        em_vbuf_clear(row);
        if (em_vbuf_append(row, rec.p, rec.n) < 0)
            r = em_err_set(err, EM_ENOMEM, "ml.linalg.parse: out of memory");
    }
    em_free(st.row);
    em_free(st.idx);
    em_free(st.val);
    em_vbuf_destroy(&st.rec);
    return r;
}

int em__ml_fn_parse(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err)
{
    parse_ctx pc;
    parse_state st = {0};
    int rc = decode_ctx(c->blob, &pc, err);
    if (rc < 0)
        return rc;
    char path[8];
    uint64_t start = 1;
    bool has = split_of(&pc, index, path, sizeof path, &start);
    bool header = (pc.format == EM_ML_CSV || pc.format == EM_ML_TSV) && has && start == 0;
    size_t ncells = (size_t)pc.dim + 1 + pc.ncols;
    if (!(st.row = em_malloc(sizeof(double) * ncells)))
        return em_err_set(err, EM_ENOMEM, "ml.linalg.parse: out of memory");
    em_vbuf_init(&st.rec);
    em_rec r;
    uint64_t k = 0;
    int64_t skipped = 0;
    for (; (rc = em_iter_next(in, &r, err)) == 1; k++) {
        if (k == 0 && header)
            continue;
        const char *why = NULL;
        rc = parse_one(&pc, &st, r.val, &why, out, err);
        if (rc == -1) {
            if (!pc.skip) {
                rc = bad_line(&pc, index, k, why, r.val, err);
                break;
            }
            skipped++;
            rc = 0;
        }
        if (rc < 0)
            break;
    }
    if (rc >= 0 && skipped > 0 && pc.acc > 0)
        em_task_acc_add_i64(c->task, pc.acc, skipped);
    em_free(st.row);
    em_free(st.idx);
    em_free(st.val);
    em_vbuf_destroy(&st.rec);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- densify
 * Blob: the layout of the output (em_ml_layout_encode: dense, its labeled flag and dim);
 * the input is the sparse layout with the same labeled flag. */
int em__ml_fn_densify(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em_ml_data lay;
    int rc = em_ml_layout_decode(c->blob, &lay, err);
    if (rc < 0)
        return rc;
    em_ml_data sp = lay;
    sp.sparse = true;
    em_ml_row row;
    if ((rc = em_ml_row_view(&sp, in->val, &row, err)) < 0)
        return rc;
    size_t f = lay.labeled ? 1 : 0, w = (size_t)lay.dim + f;
    double stackbuf[256], *v = w <= 256 ? stackbuf : em_malloc(8 * w);
    if (!v)
        return em_err_set(err, EM_ENOMEM, "ml.linalg.densify: out of memory");
    memset(v, 0, 8 * w);
    if (lay.labeled)
        v[0] = row.label;
    for (uint32_t i = 0; i < row.sp.nnz; i++)
        v[f + em_ml_sparse_idx(&row.sp, i)] = em_ml_sparse_val(&row.sp, i);
    rc = em_emit_val(out, em_slice_make(v, 8 * w), err);
    if (v != stackbuf)
        em_free(v);
    return rc;
}
