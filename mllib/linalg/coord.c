/* mllib/linalg/coord.c - IndexedRowMatrix and CoordinateMatrix (matrix.h): conversions
 * between row matrices, indexed rows and coordinate entries, as lazy transformations.
 *
 * BLOBS: ml.linalg.indexed_rows and ml.linalg.entries take the layout of their input rows
 * (em_ml_layout_encode); ml.linalg.row_of_entries takes u32 ncols. An entry value in the
 * grouped form is 12 bytes: u32 column, f64 value. */
#include <stdlib.h>
#include <string.h>

#include "mllib/linalg/linalg_int.h"
#include "mllib/linalg/matrix.h"

/* (row as bytes, em_enc_i64 index) -> (em_enc_i64 index, the row without its label). */
int em__ml_fn_indexed_rows(const em_fn_ctx *c, const em_rec *in, em_emitter *out,
                           em_err *err)
{
    em_ml_data lay;
    int rc = em_ml_layout_decode(c->blob, &lay, err);
    if (rc < 0)
        return rc;
    if (in->val.n != 8)
        return em_err_set(err, EM_ECORRUPT, "ml.linalg.indexed_rows: bad index");
    size_t off = lay.labeled ? 8 : 0;
    if (in->key.n < off)
        return em_err_set(err, EM_ECORRUPT, "ml.linalg.indexed_rows: short row");
    return em_emit_kv(out, in->val, em_slice_make(in->key.p + off, in->key.n - off), err);
}

static int emit_entry(em_emitter *out, uint64_t i, uint64_t j, double v, em_err *err)
{
    uint8_t e[24];
    em_store_le64(e, i);
    em_store_le64(e + 8, j);
    memcpy(e + 16, &v, 8);
    return em_emit_val(out, em_slice_make(e, 24), err);
}

/* (index, row) -> one 24-byte entry per non-zero. */
int em__ml_fn_entries(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em_ml_data lay;
    em_ml_row row;
    int rc = em_ml_layout_decode(c->blob, &lay, err);
    if (rc < 0 || (rc = em_ml_row_view(&lay, in->val, &row, err)) < 0)
        return rc;
    if (in->key.n != 8)
        return em_err_set(err, EM_ECORRUPT, "ml.linalg.entries: bad row index");
    uint64_t i = (uint64_t)em_dec_i64(in->key.p);
    uint32_t n = row.dense ? lay.dim : row.sp.nnz;
    for (uint32_t q = 0; q < n && rc == 0; q++) {
        double v;
        uint32_t j = row.dense ? q : em_ml_sparse_idx(&row.sp, q);
        if (row.dense)
            memcpy(&v, row.dense + 8 * (size_t)q, 8);
        else
            v = em_ml_sparse_val(&row.sp, q);
        if (v != 0)
            rc = emit_entry(out, i, j, v, err);
    }
    return rc;
}

/* entry -> (em_enc_i64 i, u32 j + f64 v). */
int em__ml_fn_entry_key(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    if (in->val.n != 24)
        return em_err_set(err, EM_ECORRUPT, "ml.linalg.entry_key: entry of %zu bytes",
                          in->val.n);
    uint64_t i = em_load_le64(in->val.p), j = em_load_le64(in->val.p + 8);
    if (j > UINT32_MAX - 1 || i > INT64_MAX)
        return em_err_set(err, EM_EINVAL, "ml.linalg.entry_key: index out of range");
    uint8_t k[8], v[12];
    em_enc_i64(k, (int64_t)i);
    em_store_le32(v, (uint32_t)j);
    memcpy(v + 4, in->val.p + 16, 8);
    return em_emit_kv(out, em_slice_make(k, 8), em_slice_make(v, 12), err);
}

static int cmp_entry(const void *a, const void *b)
{
    uint32_t x = em_load_le32(a), y = em_load_le32(b);
    return x < y ? -1 : x > y;
}

/* (i, em_list of entries) -> (i, sparse row), duplicates summed. */
int em__ml_fn_row_of_entries(const em_fn_ctx *c, const em_rec *in, em_emitter *out,
                             em_err *err)
{
    (void)c;
    em_list_iter it;
    em_slice item;
    int rc = em_list_iter_init(&it, in->val, err);
    if (rc < 0)
        return rc;
    uint8_t *e = em_malloc(12 * ((size_t)it.left + 1));
    uint32_t *idx = em_malloc(4 * ((size_t)it.left + 1));
    double *val = em_malloc(8 * ((size_t)it.left + 1));
    size_t n = 0;
    if (!e || !idx || !val)
        rc = em_err_set(err, EM_ENOMEM, "ml.linalg.row_of_entries: out of memory");
    while (rc == 0 && (rc = em_list_iter_next(&it, &item, err)) == 1) {
        rc = 0;
        if (item.n != 12) {
            rc = em_err_set(err, EM_ECORRUPT, "ml.linalg.row_of_entries: bad entry");
            break;
        }
        memcpy(e + 12 * n++, item.p, 12);
    }
    uint32_t m = 0;
    if (rc == 0) {
        qsort(e, n, 12, cmp_entry);
        for (size_t q = 0; q < n; q++) {
            uint32_t j = em_load_le32(e + 12 * q);
            double v;
            memcpy(&v, e + 12 * q + 4, 8);
            if (m > 0 && idx[m - 1] == j)
                val[m - 1] += v;
            else {
                idx[m] = j;
                val[m++] = v;
            }
        }
        em_vbuf row;
        em_vbuf_init(&row);
        rc = em_ml_sparse_encode(m, idx, val, &row) < 0
                 ? em_err_set(err, EM_ENOMEM, "ml.linalg.row_of_entries: out of memory")
                 : em_emit_kv(out, in->key, em_slice_make(row.data, row.len), err);
        em_vbuf_destroy(&row);
    }
    em_free(e);
    em_free(idx);
    em_free(val);
    return rc;
}

void em_ml_matrix_release(em_ml_matrix *m)
{
    if (m && m->rdd)
        em_rdd_release(m->rdd);
    if (m)
        m->rdd = NULL;
}

int em_ml_to_indexed(const em_ml_data *d, em_ml_matrix *out, em_err *err)
{
    uint8_t lay[6];
    int rc = em_linalg_register();
    memset(out, 0, sizeof *out);
    if (rc < 0)
        return em_err_set(err, rc, "ml.linalg: a task function name is taken");
    em_ml_layout_encode(d, lay);
    em_rdd *z = em_rdd_zip_with_index(d->rows);
    out->kind = EM_ML_INDEXED_ROWS;
    out->rdd = em_rdd_map(z, "ml.linalg.indexed_rows", em_slice_make(lay, 6));
    em_rdd_release(z);
    out->layout = *d;
    out->layout.rows = NULL;
    out->layout.labeled = false;
    out->nrows = d->nrows;
    out->ncols = d->dim;
    const em_err *e = em_rdd_error(out->rdd);
    return e ? em_err_copy(err, e) : 0;
}

int em_ml_indexed_to_coordinate(const em_ml_matrix *m, em_ml_matrix *out, em_err *err)
{
    uint8_t lay[6];
    memset(out, 0, sizeof *out);
    if (m->kind != EM_ML_INDEXED_ROWS)
        return em_err_set(err, EM_EINVAL, "not an indexed row matrix");
    em_ml_layout_encode(&m->layout, lay);
    out->kind = EM_ML_COORDINATE;
    out->rdd = em_rdd_flat_map_fixed(m->rdd, "ml.linalg.entries", em_slice_make(lay, 6), 24);
    out->nrows = m->nrows;
    out->ncols = m->ncols;
    const em_err *e = em_rdd_error(out->rdd);
    return e ? em_err_copy(err, e) : 0;
}

int em_ml_coordinate_to_indexed(const em_ml_matrix *m, em_ml_matrix *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    if (m->kind != EM_ML_COORDINATE)
        return em_err_set(err, EM_EINVAL, "not a coordinate matrix");
    em_rdd *kv = em_rdd_map(m->rdd, "ml.linalg.entry_key", em_slice_make(NULL, 0));
    em_rdd *g = em_rdd_group_by_key(kv, 0);
    out->kind = EM_ML_INDEXED_ROWS;
    out->rdd = em_rdd_map(g, "ml.linalg.row_of_entries", em_slice_make(NULL, 0));
    em_rdd_release(kv);
    em_rdd_release(g);
    out->layout = (em_ml_data){.sparse = true, .dim = m->ncols};
    out->nrows = m->nrows;
    out->ncols = m->ncols;
    const em_err *e = em_rdd_error(out->rdd);
    return e ? em_err_copy(err, e) : 0;
}

int em_ml_indexed_to_rows(const em_ml_matrix *m, em_ml_data *out, em_err *err)
{
    memset(out, 0, sizeof *out);
    if (m->kind != EM_ML_INDEXED_ROWS)
        return em_err_set(err, EM_EINVAL, "not an indexed row matrix");
    *out = m->layout;
    out->nrows = m->nrows;
    em_rdd *v = em_rdd_values(m->rdd);
    /* dense rows go back to FIXED records, so batches are matrices again */
    out->rows = m->layout.sparse ? v
                                 : em_rdd_map_fixed(v, "em.identity", em_slice_make(NULL, 0),
                                                    8 * m->layout.dim);
    if (!m->layout.sparse)
        em_rdd_release(v);
    const em_err *e = em_rdd_error(out->rows);
    return e ? em_err_copy(err, e) : 0;
}
