/* sql/colfile.c - ember's own columnar table files (CREATE TABLE t USING ember OPTIONS
 * (path 'DIR') [AS SELECT ...]): a table is a directory of part files part-NNNNN.emc, one
 * per partition of the query that wrote it. A query reads them without parsing text: each
 * row group's columns are zstd frames of typed vectors, only the columns the query reads
 * are decompressed, row groups whose min/max rule out a pushed-down comparison are skipped,
 * and such comparisons are evaluated over the vectors (a selection vector) before any row
 * is made. Rows are made at the edge, for the operators above the scan.
 *
 * FORMAT of a part file (little-endian; every offset and length is checked on read):
 *   "EMCOL001"
 *   column chunks, each one zstd frame (or nothing, enc ALLNULL)
 *   footer: u32 ncols; ncols x (u8 declared type, u16 name length, name bytes);
 *           u32 nrg; nrg x (u32 nrows; ncols x chunk)
 *     chunk: u64 offset, u32 compressed bytes, u32 raw bytes, u8 enc, u8 value type,
 *            u8 has min/max, u32 null count, 8 bytes min, 8 bytes max (i64, or f64 bits for
 *            DOUBLE; of the non-NULL values)
 *   trailer: u64 footer offset, u32 footer bytes, "EMCOLEND"
 * Raw chunk encodings (nrows values; NULLs as 0 / empty text with a flag byte):
 *   I64  (INT, BOOL, DATE)  nrows x i64, then nrows null flags when null count > 0
 *   F64  (DOUBLE)           nrows x f64, then the flags likewise
 *   TEXT                    nrows x u32 length, the flags likewise, then the texts, each
 *                           followed by a NUL byte
 *   FOR  (INT, BOOL, DATE)  u8 width w (1, 2 or 4), nrows x w-byte unsigned offsets from
 *                           the chunk's min, then the flags likewise
 *   GEN  (mixed types)      the values in the row codec (sql/sql.h), one after another
 *   ALLNULL                 nothing
 * THREADS: a writer or an open file belongs to one thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "engine/ember.h"
#include "sql/colfile.h"

#define CF_MAGIC "EMCOL001"
#define CF_END "EMCOLEND"
#define CF_CHUNK_DESC 39
#define CF_MAX_COLS 4096
#define CF_MAX_RAW ((uint32_t)1 << 30)

static void enc_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t dec_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---------------------------------------------------------------- writer */
struct sql_cw {
    char *path, *tmp;
    FILE *f;
    uint32_t ncols;
    uint8_t *types;
    char **names;
    em_sql_value *rows;   /* SQL_CF_RG_ROWS x ncols, text in `text` */
    uint32_t n;
    em_arena text;
    em_vbuf raw, footer_rgs;
    void *cbuf;
    size_t ccap;
    uint64_t off;
    uint32_t nrg;
    uint64_t total;
};

void em__sql_cw_abort(sql_cw *w)
{
    if (w == NULL)
        return;
    if (w->f != NULL) {
        fclose(w->f);
        unlink(w->tmp);
    }
    for (uint32_t c = 0; c < w->ncols && w->names != NULL; c++)
        em_free(w->names[c]);
    em_free(w->names);
    em_free(w->types);
    em_free(w->rows);
    em_free(w->cbuf);
    em_free(w->path);
    em_free(w->tmp);
    em_vbuf_destroy(&w->raw);
    em_vbuf_destroy(&w->footer_rgs);
    em_arena_destroy(&w->text);
    em_free(w);
}

sql_cw *em__sql_cw_open(const char *path, uint32_t ncols, const uint8_t *types,
                        const char *const *names, em_err *err)
{
    sql_cw *w = em_calloc(1, sizeof *w);
    size_t pl = strlen(path);
    if (w == NULL) {
        em_err_set(err, EM_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    em_arena_init(&w->text, 256 * 1024);
    em_vbuf_init(&w->raw);
    em_vbuf_init(&w->footer_rgs);
    w->ncols = ncols;
    w->path = em_strdup(path);
    w->tmp = em_malloc(pl + 8);
    w->types = em_malloc(ncols + 1);
    w->names = em_calloc(ncols + 1, sizeof *w->names);
    w->rows = em_malloc((size_t)SQL_CF_RG_ROWS * ncols * sizeof *w->rows);
    if (w->path == NULL || w->tmp == NULL || w->types == NULL || w->names == NULL ||
        w->rows == NULL) {
        em__sql_cw_abort(w);
        em_err_set(err, EM_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    for (uint32_t c = 0; c < ncols; c++) {
        w->types[c] = types[c];
        if ((w->names[c] = em_strdup(names[c])) == NULL) {
            em__sql_cw_abort(w);
            em_err_set(err, EM_ENOMEM, "%s: out of memory", path);
            return NULL;
        }
    }
    snprintf(w->tmp, pl + 8, "%s.tmp", path);
    if ((w->f = fopen(w->tmp, "wb")) == NULL) {
        em_err_set(err, em_errno_code_open(errno), "%s: cannot create: %s", w->tmp,
                   strerror(errno));
        em__sql_cw_abort(w);
        return NULL;
    }
    if (fwrite(CF_MAGIC, 1, 8, w->f) != 8) {
        em_err_set(err, EM_EIO, "%s: write failed", w->tmp);
        em__sql_cw_abort(w);
        return NULL;
    }
    w->off = 8;
    return w;
}

static int put_u64(em_vbuf *b, uint64_t v)
{
    uint8_t t[8];
    em_enc_i64(t, (int64_t)v);
    return em_vbuf_append(b, t, 8);
}

/* Encodes column c of the buffered rows into w->raw; *enc, *vt, min/max, nulls. */
static int encode_col(sql_cw *w, uint32_t c, uint8_t *enc, uint8_t *vt, uint32_t *nnull,
                      bool *hasmm, int64_t *mn, int64_t *mx)
{
    em_vbuf *b = &w->raw;
    uint8_t t = EM_SQL_NULL;
    bool mixed = false;
    *nnull = 0;
    *hasmm = false;
    for (uint32_t r = 0; r < w->n; r++) {
        const em_sql_value *v = &w->rows[(size_t)r * w->ncols + c];
        if (v->type == EM_SQL_NULL)
            (*nnull)++;
        else if (t == EM_SQL_NULL)
            t = v->type;
        else if (v->type != t)
            mixed = true;
    }
    em_vbuf_clear(b);
    *vt = t;
    if (t == EM_SQL_NULL) {
        *enc = SQL_CF_ALLNULL;
        return 0;
    }
    if (mixed) {
        *enc = SQL_CF_GEN;
        for (uint32_t r = 0; r < w->n; r++)
            if (em_sql_row_encode(b, &w->rows[(size_t)r * w->ncols + c], 1) < 0)
                return EM_ENOMEM;
        return 0;
    }
    *enc = t == EM_SQL_TEXT ? SQL_CF_TEXT : t == EM_SQL_DOUBLE ? SQL_CF_F64 : SQL_CF_I64;
    if (*enc == SQL_CF_I64) { /* offsets from the min in 1, 2 or 4 bytes when they fit */
        int64_t lo = 0, hi = 0;
        bool any = false;
        for (uint32_t r = 0; r < w->n; r++) {
            const em_sql_value *v = &w->rows[(size_t)r * w->ncols + c];
            if (v->type == EM_SQL_NULL)
                continue;
            if (!any || v->u.i < lo)
                lo = v->u.i;
            if (!any || v->u.i > hi)
                hi = v->u.i;
            any = true;
        }
        uint64_t range = (uint64_t)hi - (uint64_t)lo;
        uint8_t wd = range < 0x100 ? 1 : range < 0x10000 ? 2 : range <= 0xffffffffu ? 4 : 0;
        if (wd != 0) {
            *enc = SQL_CF_FOR;
            *hasmm = true;
            *mn = lo;
            *mx = hi;
            if (em_vbuf_append(b, &wd, 1) < 0)
                return EM_ENOMEM;
            for (uint32_t r = 0; r < w->n; r++) {
                const em_sql_value *v = &w->rows[(size_t)r * w->ncols + c];
                uint64_t o = v->type == EM_SQL_NULL ? 0 : (uint64_t)v->u.i - (uint64_t)lo;
                uint8_t ob[4];
                enc_u32(ob, (uint32_t)o);
                if (em_vbuf_append(b, ob, wd) < 0)
                    return EM_ENOMEM;
            }
        }
    }
    for (uint32_t r = 0; r < w->n && *enc != SQL_CF_FOR; r++) {
        const em_sql_value *v = &w->rows[(size_t)r * w->ncols + c];
        bool null = v->type == EM_SQL_NULL;
        int rc;
        if (*enc == SQL_CF_TEXT) {
            uint8_t l[4];
            enc_u32(l, null ? 0 : v->len);
            rc = em_vbuf_append(b, l, 4);
        } else if (*enc == SQL_CF_F64) {
            double d = null ? 0.0 : v->u.d;
            rc = em_vbuf_append(b, &d, 8);
            if (!null && d == d) { /* NaN takes no part in min/max: no skipping then */
                int64_t bits;
                memcpy(&bits, &d, 8);
                double dmn, dmx;
                memcpy(&dmn, mn, 8);
                memcpy(&dmx, mx, 8);
                if (!*hasmm || d < dmn)
                    memcpy(mn, &d, 8);
                if (!*hasmm || d > dmx)
                    memcpy(mx, &d, 8);
                *hasmm = true;
            }
        } else {
            int64_t i = null ? 0 : v->u.i;
            rc = em_vbuf_append(b, &i, 8);
            if (!null) {
                if (!*hasmm || i < *mn)
                    *mn = i;
                if (!*hasmm || i > *mx)
                    *mx = i;
                *hasmm = true;
            }
        }
        if (rc < 0)
            return EM_ENOMEM;
    }
    if (*nnull > 0)
        for (uint32_t r = 0; r < w->n; r++) {
            uint8_t f = w->rows[(size_t)r * w->ncols + c].type == EM_SQL_NULL;
            if (em_vbuf_append(b, &f, 1) < 0)
                return EM_ENOMEM;
        }
    if (*enc == SQL_CF_TEXT)
        for (uint32_t r = 0; r < w->n; r++) {
            const em_sql_value *v = &w->rows[(size_t)r * w->ncols + c];
            if ((v->type != EM_SQL_NULL && em_vbuf_append(b, v->u.s, v->len) < 0) ||
                em_vbuf_append(b, "", 1) < 0)
                return EM_ENOMEM;
        }
    return 0;
}

static int flush_rg(sql_cw *w, em_err *err)
{
    uint8_t h[4];
    if (w->n == 0)
        return 0;
    enc_u32(h, w->n);
    if (em_vbuf_append(&w->footer_rgs, h, 4) < 0)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", w->path);
    for (uint32_t c = 0; c < w->ncols; c++) {
        uint8_t enc, vt, d[CF_CHUNK_DESC];
        uint32_t nnull;
        bool hasmm;
        int64_t mn = 0, mx = 0;
        size_t clen = 0;
        if (encode_col(w, c, &enc, &vt, &nnull, &hasmm, &mn, &mx) < 0)
            return em_err_set(err, EM_ENOMEM, "%s: out of memory", w->path);
        if (w->raw.len > CF_MAX_RAW)
            return em_err_set(err, EM_EINVAL, "%s: a column chunk over %u bytes", w->path,
                              CF_MAX_RAW);
        if (w->raw.len > 0) {
            size_t bound = ZSTD_compressBound(w->raw.len);
            if (bound > w->ccap) {
                void *nb = em_realloc(w->cbuf, bound);
                if (nb == NULL)
                    return em_err_set(err, EM_ENOMEM, "%s: out of memory", w->path);
                w->cbuf = nb;
                w->ccap = bound;
            }
            clen = ZSTD_compress(w->cbuf, w->ccap, w->raw.data, w->raw.len, 1);
            if (ZSTD_isError(clen))
                return em_err_set(err, EM_EIO, "%s: zstd: %s", w->path, ZSTD_getErrorName(clen));
            if (fwrite(w->cbuf, 1, clen, w->f) != clen)
                return em_err_set(err, EM_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
        }
        em_enc_i64(d, (int64_t)w->off);
        enc_u32(d + 8, (uint32_t)clen);
        enc_u32(d + 12, (uint32_t)w->raw.len);
        d[16] = enc;
        d[17] = vt;
        d[18] = hasmm;
        enc_u32(d + 19, nnull);
        em_enc_i64(d + 23, mn);
        em_enc_i64(d + 31, mx);
        w->off += clen;
        if (em_vbuf_append(&w->footer_rgs, d, CF_CHUNK_DESC) < 0)
            return em_err_set(err, EM_ENOMEM, "%s: out of memory", w->path);
    }
    w->nrg++;
    w->n = 0;
    em_arena_reset(&w->text);
    return 0;
}

int em__sql_cw_row(sql_cw *w, const em_sql_value *row, em_err *err)
{
    em_sql_value *dst = &w->rows[(size_t)w->n * w->ncols];
    for (uint32_t c = 0; c < w->ncols; c++) {
        dst[c] = row[c];
        if (row[c].type == EM_SQL_TEXT) {
            char *s = em_arena_alloc(&w->text, (size_t)row[c].len + 1);
            if (s == NULL)
                return em_err_set(err, EM_ENOMEM, "%s: out of memory", w->path);
            memcpy(s, row[c].u.s, row[c].len);
            s[row[c].len] = '\0';
            dst[c].u.s = s;
        }
    }
    w->total++;
    if (++w->n == SQL_CF_RG_ROWS)
        return flush_rg(w, err);
    return 0;
}

int em__sql_cw_close(sql_cw *w, uint64_t *rows, em_err *err)
{
    em_vbuf f;
    int rc = flush_rg(w, err);
    em_vbuf_init(&f);
    uint8_t h[4];
    enc_u32(h, w->ncols);
    if (rc == 0 && em_vbuf_append(&f, h, 4) < 0)
        rc = EM_ENOMEM;
    for (uint32_t c = 0; c < w->ncols && rc == 0; c++) {
        size_t nl = strlen(w->names[c]);
        uint8_t l[3] = {w->types[c], (uint8_t)(nl & 0xff), (uint8_t)(nl >> 8)};
        if (nl > 0xffff || em_vbuf_append(&f, l, 3) < 0 || em_vbuf_append(&f, w->names[c], nl) < 0)
            rc = EM_ENOMEM;
    }
    enc_u32(h, w->nrg);
    if (rc == 0 && (em_vbuf_append(&f, h, 4) < 0 ||
                    em_vbuf_append(&f, w->footer_rgs.data, w->footer_rgs.len) < 0 ||
                    put_u64(&f, w->off) < 0))
        rc = EM_ENOMEM;
    enc_u32(h, (uint32_t)(f.len - 8));
    if (rc == 0 && (em_vbuf_append(&f, h, 4) < 0 || em_vbuf_append(&f, CF_END, 8) < 0))
        rc = EM_ENOMEM;
    if (rc == EM_ENOMEM)
        rc = em_err_set(err, EM_ENOMEM, "%s: out of memory", w->path);
    if (rc == 0 && (fwrite(f.data, 1, f.len, w->f) != f.len || fflush(w->f) != 0))
        rc = em_err_set(err, EM_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
    em_vbuf_destroy(&f);
    if (rc == 0) {
        int c = fclose(w->f);
        w->f = NULL;
        if (c != 0 || rename(w->tmp, w->path) != 0) {
            rc = em_err_set(err, EM_EIO, "%s: cannot finish: %s", w->path, strerror(errno));
            unlink(w->tmp);
        }
    }
    if (rc == 0 && rows != NULL)
        *rows = w->total;
    em__sql_cw_abort(w);
    return rc;
}

/* ---------------------------------------------------------------- reader */
static int corrupt(const sql_cf *f, em_err *err, const char *what)
{
    return em_err_set(err, EM_ECORRUPT, "%s: not an ember table file: %s", f->path, what);
}

int em__sql_cf_parse(sql_cf *f, const uint8_t *p, size_t n, em_err *err)
{
    f->map = p;
    f->size = n;
    if (n < 8 + 20 || memcmp(p, CF_MAGIC, 8) != 0 || memcmp(p + n - 8, CF_END, 8) != 0)
        return corrupt(f, err, "bad magic");
    uint64_t foff = (uint64_t)em_dec_i64(p + n - 20);
    uint32_t flen = dec_u32(p + n - 12);
    if (foff < 8 || foff > n - 20 || flen != n - 20 - foff)
        return corrupt(f, err, "bad footer position");
    const uint8_t *q = p + foff, *qe = p + n - 20;
    if (qe - q < 4)
        return corrupt(f, err, "truncated footer");
    f->ncols = dec_u32(q);
    q += 4;
    if (f->ncols == 0 || f->ncols > CF_MAX_COLS)
        return corrupt(f, err, "bad column count");
    f->types = em_arena_alloc(&f->arena, f->ncols);
    f->names = em_arena_alloc(&f->arena, f->ncols * sizeof *f->names);
    if (f->types == NULL || f->names == NULL)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", f->path);
    for (uint32_t c = 0; c < f->ncols; c++) {
        if (qe - q < 3)
            return corrupt(f, err, "truncated column list");
        f->types[c] = q[0];
        size_t nl = q[1] | (size_t)q[2] << 8;
        q += 3;
        if (f->types[c] > EM_SQL_TEXT || nl == 0 || (size_t)(qe - q) < nl)
            return corrupt(f, err, "bad column");
        if ((f->names[c] = em_arena_alloc(&f->arena, nl + 1)) == NULL)
            return em_err_set(err, EM_ENOMEM, "%s: out of memory", f->path);
        memcpy(f->names[c], q, nl);
        f->names[c][nl] = '\0';
        q += nl;
    }
    if (qe - q < 4)
        return corrupt(f, err, "truncated footer");
    f->nrg = dec_u32(q);
    q += 4;
    size_t per = 4 + (size_t)f->ncols * CF_CHUNK_DESC;
    if (f->nrg > (size_t)(qe - q) / per || (size_t)(qe - q) != f->nrg * per)
        return corrupt(f, err, "bad row group count");
    f->rg_rows = em_arena_alloc(&f->arena, (f->nrg + 1) * sizeof *f->rg_rows);
    f->chunks = em_arena_alloc(&f->arena, ((size_t)f->nrg * f->ncols + 1) * sizeof *f->chunks);
    if (f->rg_rows == NULL || f->chunks == NULL)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", f->path);
    f->rows = 0;
    for (uint32_t g = 0; g < f->nrg; g++) {
        f->rg_rows[g] = dec_u32(q);
        q += 4;
        if (f->rg_rows[g] == 0 || f->rg_rows[g] > SQL_CF_RG_ROWS)
            return corrupt(f, err, "bad row group size");
        f->rows += f->rg_rows[g];
        for (uint32_t c = 0; c < f->ncols; c++, q += CF_CHUNK_DESC) {
            sql_cf_chunk *k = &f->chunks[(size_t)g * f->ncols + c];
            k->off = (uint64_t)em_dec_i64(q);
            k->clen = dec_u32(q + 8);
            k->rawlen = dec_u32(q + 12);
            k->enc = q[16];
            k->vt = q[17];
            k->hasmm = q[18] != 0;
            k->nnull = dec_u32(q + 19);
            k->mn = em_dec_i64(q + 23);
            k->mx = em_dec_i64(q + 31);
            if (k->off < 8 || k->off > foff || k->clen > foff - k->off ||
                k->enc > SQL_CF_FOR || k->vt > EM_SQL_TEXT || k->rawlen > CF_MAX_RAW ||
                k->nnull > f->rg_rows[g] || (k->enc == SQL_CF_ALLNULL) != (k->clen == 0))
                return corrupt(f, err, "bad column chunk");
        }
    }
    return 0;
}

int em__sql_cf_open(sql_cf *f, const char *path, em_err *err)
{
    memset(f, 0, sizeof *f);
    em_arena_init(&f->arena, 4096);
    f->path = em_arena_memdup(&f->arena, path, strlen(path) + 1);
    if (f->path == NULL)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int rc = em_err_set(err, em_errno_code_open(errno), "%s: cannot open: %s", path,
                            strerror(errno));
        if (fd >= 0)
            close(fd);
        em_arena_destroy(&f->arena);
        return rc;
    }
    size_t n = (size_t)st.st_size;
    void *m = n > 0 ? mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED) {
        em_arena_destroy(&f->arena);
        return em_err_set(err, EM_ECORRUPT, "%s: not an ember table file (%s)", path,
                          n == 0 ? "empty" : strerror(errno));
    }
    f->mapped = true;
    int rc = em__sql_cf_parse(f, m, n, err);
    if (rc < 0)
        em__sql_cf_close(f);
    return rc;
}

void em__sql_cf_close(sql_cf *f)
{
    for (uint32_t c = 0; f->vec != NULL && c < f->ncols; c++)
        em__sql_cvec_free(&f->vec[c]);
    em_free(f->vec);
    em_free(f->sel);
    em_free(f->row);
    f->vec = NULL;
    f->sel = NULL;
    f->row = NULL;
    if (f->mapped && f->map != NULL)
        munmap((void *)f->map, f->size);
    f->map = NULL;
    f->mapped = false;
    em_arena_destroy(&f->arena);
}

void em__sql_cvec_free(sql_cvec *v)
{
    em_free(v->buf);
    em_free(v->gen);
    em_free(v->toff);
    em_free(v->wide);
    memset(v, 0, sizeof *v);
}

/* Makes *p at least need bytes (kept between row groups: no page faults per chunk). */
static bool grow(void **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    void *n = em_realloc(*p, need);
    if (n == NULL)
        return false;
    *p = n;
    *cap = need;
    return true;
}

int em__sql_cf_read(const sql_cf *f, uint32_t g, uint32_t c, sql_cvec *v, em_err *err)
{
    const sql_cf_chunk *k = &f->chunks[(size_t)g * f->ncols + c];
    uint32_t n = f->rg_rows[g];
    v->enc = k->enc;
    v->vt = k->vt;
    v->n = n;
    v->nulls = NULL;
    if (k->enc == SQL_CF_ALLNULL)
        return 0;
    unsigned long long fs = ZSTD_getFrameContentSize(f->map + k->off, k->clen);
    if (fs != k->rawlen)
        return corrupt(f, err, "bad column frame");
    if (!grow(&v->buf, &v->bufcap, (size_t)k->rawlen + 8))
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", f->path);
    size_t got = ZSTD_decompress(v->buf, (size_t)k->rawlen + 8, f->map + k->off, k->clen);
    if (ZSTD_isError(got) || got != k->rawlen)
        return corrupt(f, err, "bad column frame");
    const uint8_t *b = v->buf;
    size_t flags = k->nnull > 0 ? n : 0;
    switch (k->enc) {
    case SQL_CF_I64:
    case SQL_CF_F64:
        if (k->rawlen != (size_t)n * 8 + flags || k->vt == EM_SQL_TEXT || k->vt == EM_SQL_NULL ||
            (k->enc == SQL_CF_F64) != (k->vt == EM_SQL_DOUBLE))
            goto bad;
        v->i = (const int64_t *)b;
        v->d = (const double *)b;
        v->nulls = flags ? b + (size_t)n * 8 : NULL;
        break;
    case SQL_CF_FOR: {
        uint8_t w = k->rawlen > 0 ? b[0] : 0;
        if ((w != 1 && w != 2 && w != 4) || k->rawlen != 1 + (size_t)n * w + flags ||
            k->vt == EM_SQL_TEXT || k->vt == EM_SQL_NULL || k->vt == EM_SQL_DOUBLE || !k->hasmm)
            goto bad;
        if (!grow((void **)&v->wide, &v->widecap, ((size_t)n + 1) * 8))
            return em_err_set(err, EM_ENOMEM, "%s: out of memory", f->path);
        const uint8_t *q = b + 1;
        uint64_t base = (uint64_t)k->mn;
        if (w == 1)
            for (uint32_t r = 0; r < n; r++)
                v->wide[r] = (int64_t)(base + q[r]);
        else if (w == 2)
            for (uint32_t r = 0; r < n; r++) {
                uint16_t x;
                memcpy(&x, q + (size_t)r * 2, 2);
                v->wide[r] = (int64_t)(base + x);
            }
        else
            for (uint32_t r = 0; r < n; r++) {
                uint32_t x;
                memcpy(&x, q + (size_t)r * 4, 4);
                v->wide[r] = (int64_t)(base + x);
            }
        v->enc = SQL_CF_I64; /* as a vector: plain integers */
        v->i = v->wide;
        v->nulls = flags ? q + (size_t)n * w : NULL;
        break;
    }
    case SQL_CF_TEXT: {
        if (k->vt != EM_SQL_TEXT || k->rawlen < (size_t)n * 4 + flags)
            goto bad;
        v->len = (const uint32_t *)b;
        v->nulls = flags ? b + (size_t)n * 4 : NULL;
        v->text = (const char *)b + (size_t)n * 4 + flags;
        size_t avail = k->rawlen - ((size_t)n * 4 + flags), at = 0;
        if (!grow((void **)&v->toff, &v->toffcap, ((size_t)n + 1) * sizeof *v->toff))
            return em_err_set(err, EM_ENOMEM, "%s: out of memory", f->path);
        for (uint32_t r = 0; r < n; r++) {
            uint32_t l;
            memcpy(&l, b + (size_t)r * 4, 4);
            if (l >= avail - at || v->text[at + l] != '\0')
                goto bad;
            v->toff[r] = at;
            at += (size_t)l + 1;
        }
        if (at != avail)
            goto bad;
        break;
    }
    case SQL_CF_GEN: {
        size_t off = 0, used;
        if (!grow((void **)&v->gen, &v->gencap, ((size_t)n + 1) * sizeof *v->gen))
            return em_err_set(err, EM_ENOMEM, "%s: out of memory", f->path);
        for (uint32_t r = 0; r < n; r++) {
            em_err e2 = EM_ERR_INIT;
            if (em_sql_row_decode(b + off, k->rawlen - off, &v->gen[r], 1, &used, &e2) < 0)
                goto bad;
            off += used;
        }
        if (off != k->rawlen)
            goto bad;
        break;
    }
    default:
        goto bad;
    }
    return 0;
bad:
    v->enc = SQL_CF_ALLNULL;
    return corrupt(f, err, "bad column chunk contents");
}

void em__sql_cvec_get(const sql_cvec *v, uint32_t r, em_sql_value *out)
{
    *out = em__sql_null();
    if (v->enc == SQL_CF_ALLNULL || (v->nulls != NULL && v->nulls[r]))
        return;
    switch (v->enc) {
    case SQL_CF_I64:
        out->type = v->vt;
        memcpy(&out->u.i, &v->i[r], 8);
        break;
    case SQL_CF_F64:
        out->type = EM_SQL_DOUBLE;
        memcpy(&out->u.d, &v->d[r], 8);
        break;
    case SQL_CF_TEXT:
        out->type = EM_SQL_TEXT;
        memcpy(&out->len, &v->len[r], 4);
        out->u.s = v->text + v->toff[r];
        break;
    default:
        *out = v->gen[r];
        break;
    }
}

/* ---------------------------------------------------------------- tables (directories) */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int em__sql_cf_list(const char *dir, char ***files, uint32_t *nfiles, em_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL;
    uint32_t n = 0, cap = 0;
    *files = NULL;
    *nfiles = 0;
    if (d == NULL)
        return em_err_set(err, em_errno_code_open(errno), "%s: cannot open the table directory: %s",
                          dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 10 || strncmp(e->d_name, "part-", 5) != 0 || strcmp(e->d_name + l - 4, ".emc") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = em_realloc(v, cap * sizeof *nv);
            if (nv == NULL)
                goto oom;
            v = nv;
        }
        size_t pl = strlen(dir) + l + 2;
        if ((v[n] = em_malloc(pl)) == NULL)
            goto oom;
        snprintf(v[n++], pl, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (n > 0)
        qsort(v, n, sizeof *v, name_cmp);
    *files = v;
    *nfiles = n;
    return 0;
oom:
    closedir(d);
    em__sql_cf_list_free(v, n);
    return em_err_set(err, EM_ENOMEM, "%s: out of memory", dir);
}

void em__sql_cf_list_free(char **files, uint32_t n)
{
    for (uint32_t i = 0; i < n && files != NULL; i++)
        em_free(files[i]);
    em_free(files);
}

/* ---------------------------------------------------------------- scans */
typedef struct cf_term {     /* col op lit, over a column of the file */
    uint32_t col;
    uint8_t op;              /* OP_EQ .. OP_GE */
    em_sql_value lit;
} cf_term;

static int flip(int op)
{
    switch (op) {
    case OP_LT: return OP_GT;
    case OP_LE: return OP_GE;
    case OP_GT: return OP_LT;
    case OP_GE: return OP_LE;
    default: return op;
    }
}

static bool lit_ok(const sql_expr *e)
{
    return e->kind == E_LIT && (e->v.type == EM_SQL_INT || e->v.type == EM_SQL_DOUBLE ||
                                e->v.type == EM_SQL_DATE);
}

static bool col_of(const sql_expr *e, uint32_t off, uint32_t ncols, uint32_t *col)
{
    if (e->kind != E_COL || e->level != 0 || e->col < (int32_t)off ||
        (uint32_t)e->col - off >= ncols)
        return false;
    *col = (uint32_t)e->col - off;
    return true;
}

/* Collects the comparisons of column with a number or date literal among the conjuncts of
 * e (the rest stays to the row-wise evaluation, which re-checks every row kept). */
static void terms_of(const sql_expr *e, uint32_t off, uint32_t ncols, cf_term *t, uint32_t *n,
                     uint32_t max)
{
    uint32_t c;
    if (e == NULL || *n + 2 > max)
        return;
    if (e->kind == E_AND) {
        terms_of(e->a, off, ncols, t, n, max);
        terms_of(e->b, off, ncols, t, n, max);
    } else if (e->kind == E_BINARY && e->op >= OP_EQ && e->op <= OP_GE && e->op != OP_NE) {
        if (col_of(e->a, off, ncols, &c) && lit_ok(e->b))
            t[(*n)++] = (cf_term){c, e->op, e->b->v};
        else if (col_of(e->b, off, ncols, &c) && lit_ok(e->a))
            t[(*n)++] = (cf_term){c, (uint8_t)flip(e->op), e->a->v};
    } else if (e->kind == E_BETWEEN && !e->neg && col_of(e->a, off, ncols, &c) && lit_ok(e->b) &&
               lit_ok(e->c)) {
        t[(*n)++] = (cf_term){c, OP_GE, e->b->v};
        t[(*n)++] = (cf_term){c, OP_LE, e->c->v};
    }
}

/* How a term compares with a column chunk of value type vt: 1 as integers (the literal in
 * *li), 2 as doubles (in *ld), 0 not over the vector (left to the rows). */
static int term_kind(const cf_term *t, uint8_t enc, uint8_t vt, int64_t *li, double *ld)
{
    if (enc == SQL_CF_I64 && (vt == EM_SQL_INT || vt == EM_SQL_DATE) && t->lit.type == vt) {
        *li = t->lit.u.i;
        return 1;
    }
    if (enc == SQL_CF_F64 && t->lit.type == EM_SQL_DOUBLE) {
        *ld = t->lit.u.d;
        return *ld == *ld ? 2 : 0;
    }
    if (enc == SQL_CF_F64 && t->lit.type == EM_SQL_INT && t->lit.u.i > -(INT64_C(1) << 53) &&
        t->lit.u.i < (INT64_C(1) << 53)) {
        *ld = (double)t->lit.u.i;
        return 2;
    }
    return 0;
}

/* Narrows sel[0..*ns) by the term over vector v. */
static void term_filter(const cf_term *t, const sql_cvec *v, int kind, int64_t li, double ld,
                        uint32_t *sel, uint32_t *ns)
{
    uint32_t m = 0;
    const uint8_t *nl = v->nulls;
#define CF_LOOP(EXPR)                                                                          \
    for (uint32_t j = 0; j < *ns; j++) {                                                       \
        uint32_t r = sel[j];                                                                   \
        sel[m] = r;                                                                            \
        m += (EXPR) && (nl == NULL || !nl[r]);                                                 \
    }
    if (kind == 1) {
        const int64_t *x = v->i;
        switch (t->op) {
        case OP_EQ: CF_LOOP(x[r] == li); break;
        case OP_LT: CF_LOOP(x[r] < li); break;
        case OP_LE: CF_LOOP(x[r] <= li); break;
        case OP_GT: CF_LOOP(x[r] > li); break;
        default: CF_LOOP(x[r] >= li); break;
        }
    } else {
        const double *x = v->d;
        switch (t->op) {
        case OP_EQ: CF_LOOP(x[r] == ld); break;
        case OP_LT: CF_LOOP(x[r] < ld); break;
        case OP_LE: CF_LOOP(x[r] <= ld); break;
        case OP_GT: CF_LOOP(x[r] > ld); break;
        default: CF_LOOP(x[r] >= ld); break;
        }
    }
#undef CF_LOOP
    *ns = m;
}

/* False when the chunk's min/max show no value satisfies the term. */
static bool term_may_hold(const cf_term *t, const sql_cf_chunk *k)
{
    int64_t li;
    double ld;
    if (k->enc == SQL_CF_ALLNULL)
        return false; /* NULL compares to nothing */
    if (!k->hasmm)
        return true;
    int kind = term_kind(t, k->enc, k->vt, &li, &ld);
    if (kind == 0)
        return true;
    int cmn, cmx;
    if (kind == 1) {
        cmn = k->mn < li ? -1 : k->mn > li;
        cmx = k->mx < li ? -1 : k->mx > li;
    } else {
        double dmn, dmx;
        memcpy(&dmn, &k->mn, 8);
        memcpy(&dmx, &k->mx, 8);
        cmn = dmn < ld ? -1 : dmn > ld;
        cmx = dmx < ld ? -1 : dmx > ld;
    }
    switch (t->op) {
    case OP_EQ: return cmn <= 0 && cmx >= 0;
    case OP_LT: return cmn < 0;
    case OP_LE: return cmn <= 0;
    case OP_GT: return cmx > 0;
    default: return cmx >= 0;
    }
}

int em__sql_cf_scan(const sql_cf *f, uint32_t g, const uint8_t *need, const sql_expr *pred,
                    uint32_t off, em_arena *strings, sql_csv_row_fn fn, void *ud,
                    uint64_t *skipped, em_err *err)
{
    cf_term terms[64];
    uint32_t nt = 0, n, ns;
    int rc = 0;
    if (g >= f->nrg)
        return em_err_set(err, EM_ECORRUPT, "%s: no row group %u", f->path, g);
    n = ns = f->rg_rows[g];
    terms_of(pred, off, f->ncols, terms, &nt, 64);
    for (uint32_t i = 0; i < nt; i++)
        if (!term_may_hold(&terms[i], &f->chunks[(size_t)g * f->ncols + terms[i].col])) {
            if (skipped != NULL)
                (*skipped)++;
            return 0;
        }
    sql_cf *mf = (sql_cf *)f; /* its vectors are scratch, reused row group after row group */
    if (mf->vec == NULL && (mf->vec = em_calloc(f->ncols, sizeof *mf->vec)) == NULL)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", f->path);
    if (mf->sel == NULL && (mf->sel = em_malloc(((size_t)SQL_CF_RG_ROWS + 1) * sizeof *mf->sel)) == NULL)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", f->path);
    if (mf->row == NULL && (mf->row = em_malloc(((size_t)f->ncols + 1) * sizeof *mf->row)) == NULL)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", f->path);
    sql_cvec *vec = mf->vec;
    uint32_t *sel = mf->sel;
    em_sql_value *row = mf->row;
    for (uint32_t c = 0; c < f->ncols && rc == 0; c++)
        if (need == NULL || need[c])
            rc = em__sql_cf_read(f, g, c, &vec[c], err);
        else
            vec[c].enc = SQL_CF_ALLNULL;
    if (rc < 0)
        return rc;
    for (uint32_t r = 0; r < n; r++)
        sel[r] = r;
    for (uint32_t i = 0; i < nt && ns > 0; i++) {
        const sql_cvec *v = &vec[terms[i].col];
        int64_t li;
        double ld;
        int kind = term_kind(&terms[i], v->enc, v->vt, &li, &ld);
        if (kind != 0)
            term_filter(&terms[i], v, kind, li, ld, sel, &ns);
    }
    const sql_cf_gate *gate = f->gate;
    for (uint32_t j = 0; j < ns && rc == 0; j++) {
        if (gate != NULL) {
            for (uint32_t i = 0; i < gate->n; i++)
                em__sql_cvec_get(&vec[gate->cols[i]], sel[j], &gate->vals[i]);
            if (!gate->fn(gate->ud, gate->vals))
                continue;
        }
        for (uint32_t c = 0; c < f->ncols; c++) {
            em__sql_cvec_get(&vec[c], sel[j], &row[c]);
            if (row[c].type == EM_SQL_TEXT) { /* the rows outlive this row group's vectors */
                char *s = em_arena_alloc(strings, (size_t)row[c].len + 1);
                if (s == NULL) {
                    rc = em_err_set(err, EM_ENOMEM, "%s: out of memory", f->path);
                    break;
                }
                memcpy(s, row[c].u.s, row[c].len);
                s[row[c].len] = '\0';
                row[c].u.s = s;
            }
        }
        if (rc == 0)
            rc = fn(ud, row); /* its error is the caller's to name */
    }
    return rc;
}

/* ---------------------------------------------------------------- tables */
int em__sql_emc_attach(sql_table *t, em_err *err)
{
    uint64_t rows = 0;
    if ((t->emc_nrg = em_calloc(t->emc_nfiles + 1, sizeof *t->emc_nrg)) == NULL)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory", t->csv_path);
    for (uint32_t i = 0; i < t->emc_nfiles; i++) {
        sql_cf f;
        int rc = em__sql_cf_open(&f, t->emc_files[i], err);
        if (rc < 0)
            return rc;
        bool same = f.ncols == t->ncols;
        for (uint32_t c = 0; c < f.ncols && same; c++)
            same = f.types[c] == t->types[c] && strcmp(f.names[c], t->cols[c]) == 0;
        t->emc_nrg[i] = f.nrg;
        rows += f.rows;
        em__sql_cf_close(&f);
        if (!same)
            return em_err_set(err, EM_ECORRUPT, "%s: its columns differ from those of %s",
                              t->emc_files[i], t->emc_files[0]);
    }
    t->csv_bytes = rows * t->ncols * 8;
    return 0;
}

int em__sql_emc_load(sql_table *t, em_err *err)
{
    for (uint32_t i = 0; i < t->emc_nfiles; i++) {
        sql_cf f;
        int rc = em__sql_cf_open(&f, t->emc_files[i], err);
        if (rc < 0)
            return rc;
        if (f.ncols != t->ncols)
            rc = em_err_set(err, EM_ECORRUPT, "%s: %u columns, not %u", f.path, f.ncols, t->ncols);
        for (uint32_t g = 0; g < f.nrg && rc == 0; g++)
            if ((rc = em__sql_cf_scan(&f, g, NULL, NULL, 0, &t->strings,
                                      em__sql_table_append_row, t, NULL, err)) < 0 &&
                err->code == 0)
                rc = em_err_set(err, EM_ENOMEM, "%s: out of memory", f.path);
        em__sql_cf_close(&f);
        if (rc < 0)
            return rc;
    }
    t->loaded = true;
    return 0;
}

int em__sql_emc_write_rel(const char *dir, uint32_t part, uint32_t ncols, const uint8_t *types,
                          const char *const *names, const em_sql_value *rows, size_t n,
                          uint64_t *written, em_err *err)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/part-%05u.emc", dir, part) >= sizeof path)
        return em_err_set(err, EM_EINVAL, "%s: path too long", dir);
    sql_cw *w = em__sql_cw_open(path, ncols, types, names, err);
    if (w == NULL)
        return err->code;
    for (size_t i = 0; i < n; i++) {
        int rc = em__sql_cw_row(w, &rows[i * ncols], err);
        if (rc < 0) {
            em__sql_cw_abort(w);
            return rc;
        }
    }
    return em__sql_cw_close(w, written, err);
}
