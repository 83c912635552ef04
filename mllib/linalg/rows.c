/* mllib/linalg/rows.c - the row records of mllib/linalg/rows.h (sparse encoding and views,
 * a record's features whatever the layout) and the "ml.linalg.*" registration table (the
 * loaders' number parser is in parse.c). */
#include <math.h>
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
