/* mllib/linalg/rows.c - the row records of mllib/linalg/rows.h (sparse encoding and views,
 * a record's features whatever the layout), the decimal number parser of the loaders, and
 * the "ml.linalg.*" registration table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/linalg/linalg_int.h"

int em_ml_sparse_encode(uint32_t nnz, const uint32_t *idx, const double *val, em_vbuf *out)
{
    size_t n = em_ml_sparse_size(nnz), at = out->len;
    if (em_vbuf_reserve(out, n) < 0)
        return EM_ENOMEM;
    uint8_t *p = out->data + at;
    memset(p, 0, n);
    em_store_le32(p, nnz);
    for (uint32_t i = 0; i < nnz; i++)
        em_store_le32(p + 8 + (size_t)4 * i, idx[i]);
    if (nnz > 0)
        memcpy(p + n - (size_t)8 * nnz, val, (size_t)8 * nnz);
    out->len += n;
    return 0;
}

int em_ml_sparse_view(em_slice rec, uint32_t dim, em_ml_sparse *out, em_err *err)
{
    if (rec.n < 8)
        return em_err_set(err, EM_ECORRUPT, "sparse row: %zu bytes (< 8)", rec.n);
    uint32_t nnz = em_load_le32(rec.p);
    if (nnz > (rec.n - 8) / 12 || em_ml_sparse_size(nnz) != rec.n)
        return em_err_set(err, EM_ECORRUPT, "sparse row: %u entries in %zu bytes", nnz,
                          rec.n);
    out->nnz = nnz;
    out->idx = rec.p + 8;
    out->val = rec.p + rec.n - (size_t)8 * nnz;
    for (uint32_t i = 0; i < nnz; i++) {
        uint32_t j = em_ml_sparse_idx(out, i);
        if ((i > 0 && j <= em_ml_sparse_idx(out, i - 1)) || (dim > 0 && j >= dim))
            return em_err_set(err, EM_ECORRUPT, "sparse row: index %u at entry %u is not "
                              "ascending or not below %u", j, i, dim);
    }
    return 0;
}

int em_ml_row_view(const em_ml_data *layout, em_slice rec, em_ml_row *out, em_err *err)
{
    size_t off = layout->labeled ? 8 : 0;
    memset(out, 0, sizeof *out);
    if (rec.n < off)
        return em_err_set(err, EM_ECORRUPT, "row: %zu bytes", rec.n);
    if (layout->labeled)
        memcpy(&out->label, rec.p, 8);
    if (!layout->sparse) {
        if (rec.n != off + (size_t)8 * layout->dim)
            return em_err_set(err, EM_ECORRUPT, "dense row: %zu bytes, expected %zu", rec.n,
                              off + (size_t)8 * layout->dim);
        out->dense = rec.p + off;
        return 0;
    }
    return em_ml_sparse_view(em_slice_make(rec.p + off, rec.n - off), layout->dim, &out->sp,
                             err);
}

void em_ml_data_release(em_ml_data *d)
{
    if (!d)
        return;
    if (d->rows) {
        em_rdd_unpersist(d->rows);
        em_rdd_release(d->rows);
    }
    d->rows = NULL;
}

void em_ml_layout_encode(const em_ml_data *d, uint8_t out[6])
{
    out[0] = d->sparse;
    out[1] = d->labeled;
    em_store_le32(out + 2, d->dim);
}

int em_ml_layout_decode(em_slice blob, em_ml_data *layout, em_err *err)
{
    memset(layout, 0, sizeof *layout);
    if (blob.n < 6 || blob.p[0] > 1 || blob.p[1] > 1)
        return em_err_set(err, EM_ECORRUPT, "ml.linalg: bad layout blob (%zu bytes)", blob.n);
    layout->sparse = blob.p[0];
    layout->labeled = blob.p[1];
    layout->dim = em_load_le32(blob.p + 2);
    if (!layout->sparse && layout->dim == 0)
        return em_err_set(err, EM_ECORRUPT, "ml.linalg: dense layout of 0 columns");
    return 0;
}

/* ---------------------------------------------------------------- numbers
 * WHY not strtod alone: it needs a NUL-terminated string (lines are slices) and is slow;
 * a loaded file is mostly short decimals. Fast path (Clinger, "How to read floating point
 * numbers accurately", 1990): a mantissa of at most 19 digits below 2^53 scaled by 10^e
 * with |e| <= 22 is exact in one multiplication or division, because both operands are
 * exact doubles and IEEE rounds the one operation correctly. Anything else goes to strtod
 * on a copy (the C locale: ember never calls setlocale). */
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

bool em__ml_parse_double(const char *p, const char *end, double *out)
{
    const char *s = p;
    bool neg = false;
    if (s < end && (*s == '-' || *s == '+'))
        neg = *s++ == '-';
    uint64_t m = 0;
    int digits = 0, scale = 0, nd = 0;
    for (; s < end && (unsigned)(*s - '0') < 10; s++, nd++)
        if (digits < 19) {
            m = m * 10 + (uint64_t)(*s - '0');
            digits += m > 0;
        } else
            scale++;
    if (s < end && *s == '.')
        for (s++; s < end && (unsigned)(*s - '0') < 10; s++, nd++)
            if (digits < 19) {
                m = m * 10 + (uint64_t)(*s - '0');
                digits += m > 0;
                scale--;
            }
    if (nd == 0)
        return false;
    if (s < end && (*s == 'e' || *s == 'E')) {
        const char *e = s + 1;
        bool eneg = false;
        int ev = 0, en = 0;
        if (e < end && (*e == '-' || *e == '+'))
            eneg = *e++ == '-';
        for (; e < end && (unsigned)(*e - '0') < 10; e++, en++)
            if (ev < 100000)
                ev = ev * 10 + (*e - '0');
        if (en == 0)
            return false;
        scale += eneg ? -ev : ev;
        s = e;
    }
    if (s != end)
        return false;
    if (digits >= 19 || m >= (1ull << 53) || scale < -22 || scale > 22)
        return parse_slow(p, end, out);
    double v = (double)m;
    v = scale < 0 ? v / pow10_tab[-scale] : v * pow10_tab[scale];
    *out = neg ? -v : v;
    return true;
}

/* ---------------------------------------------------------------- registration */

static const em_fn_entry linalg_fns[] = {
    {"ml.linalg.parse", EM_FN_PARTITION, EM_FN(em__ml_fn_parse)},
    {"ml.linalg.scan", EM_FN_ACC_SEQ, EM_FN(em__ml_fn_scan)},
    {"ml.linalg.scan_merge", EM_FN_ACC_MERGE, EM_FN(em__ml_fn_scan_merge)},
    {"ml.linalg.densify", EM_FN_MAP, EM_FN(em__ml_fn_densify)},
    {"ml.linalg.format", EM_FN_PARTITION, EM_FN(em__ml_fn_format)},
    {"ml.linalg.stats_init", EM_FN_ACC_INIT, EM_FN(em__ml_fn_stats_init)},
    {"ml.linalg.stats", EM_FN_ACC_SEQ, EM_FN(em__ml_fn_stats)},
    {"ml.linalg.stats_merge", EM_FN_ACC_MERGE, EM_FN(em__ml_fn_stats_merge)},
    {"ml.linalg.gram", EM_FN_ACC_SEQ, EM_FN(em__ml_fn_gram)},
    {"ml.linalg.sum_merge", EM_FN_ACC_MERGE, EM_FN(em__ml_fn_sum_merge)},
    {"ml.linalg.multiply", EM_FN_PARTITION, EM_FN(em__ml_fn_multiply)},
    {"ml.linalg.indexed_rows", EM_FN_MAP, EM_FN(em__ml_fn_indexed_rows)},
    {"ml.linalg.entries", EM_FN_MAP, EM_FN(em__ml_fn_entries)},
    {"ml.linalg.entry_key", EM_FN_MAP, EM_FN(em__ml_fn_entry_key)},
    {"ml.linalg.row_of_entries", EM_FN_MAP, EM_FN(em__ml_fn_row_of_entries)},
};

int em_linalg_register(void)
{
    return em_fn_register_table(linalg_fns, sizeof linalg_fns / sizeof linalg_fns[0]);
}
