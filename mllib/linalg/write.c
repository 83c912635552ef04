/* mllib/linalg/write.c - em_ml_write and the pass ml.linalg.scan that em_ml_read uses to
 * count rows and find the largest sparse index.
 *
 * WRITER: ml.linalg.format turns each partition's rows into text lines (LIBSVM, or CSV/TSV
 * with a header line first in every part file, as Spark's CSV writer does and as
 * em_ml_read expects), and em_rdd_save_as_text_file writes the part files atomically.
 * Numbers are printed with %.17g, which reads back to the same double. */
#include <stdio.h>
#include <string.h>

#include "mllib/linalg/linalg_int.h"

/* Acc: u64 rows, u64 columns (largest index + 1 for sparse rows, dim for dense). */
int em__ml_fn_scan(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                   em_err *err)
{
    em_ml_data lay;
    uint64_t *a = acc;
    int rc = em_ml_layout_decode(c->blob, &lay, err);
    if (rc < 0)
        return rc;
    if (size != 16)
        return em_err_set(err, EM_EINVAL, "ml.linalg.scan: accumulator of %zu bytes", size);
    a[0] += in->nrecs;
    if (!lay.sparse) {
        a[1] = lay.dim > a[1] ? lay.dim : a[1];
        return 0;
    }
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &r)) {
        em_ml_row row;
        if ((rc = em_ml_row_view(&lay, r.val, &row, err)) < 0)
            return rc;
        if (row.sp.nnz > 0) {
            uint64_t top = (uint64_t)em_ml_sparse_idx(&row.sp, row.sp.nnz - 1) + 1;
            a[1] = top > a[1] ? top : a[1];
        }
    }
    return 0;
}

int em__ml_fn_scan_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                         em_err *err)
{
    (void)c;
    (void)err;
    uint64_t *a = acc;
    const uint64_t *b = other;
    if (size != 16)
        return em_err_set(err, EM_EINVAL, "ml.linalg.scan_merge: %zu bytes", size);
    a[0] += b[0];
    a[1] = b[1] > a[1] ? b[1] : a[1];
    return 0;
}

/* Blob: u8 format, then the data's layout (6 bytes). */
static int format_row(em_ml_format fmt, const em_ml_data *lay, const em_ml_row *row,
                      em_vbuf *line)
{
    char sep = fmt == EM_ML_TSV ? '\t' : ',';
    int rc = 0;
    em_vbuf_clear(line);
    if (fmt == EM_ML_LIBSVM) {
        rc = em_vbuf_printf(line, "%.17g", row->label);
        if (row->dense) {
            for (uint32_t j = 0; j < lay->dim && rc == 0; j++) {
                double v;
                memcpy(&v, row->dense + 8 * (size_t)j, 8);
                if (v != 0)
                    rc = em_vbuf_printf(line, " %u:%.17g", j + 1, v);
            }
        } else
            for (uint32_t i = 0; i < row->sp.nnz && rc == 0; i++)
                rc = em_vbuf_printf(line, " %u:%.17g", em_ml_sparse_idx(&row->sp, i) + 1,
                                    em_ml_sparse_val(&row->sp, i));
        return rc;
    }
    if (lay->labeled)
        rc = em_vbuf_printf(line, "%.17g%c", row->label, sep);
    uint32_t next = 0;
    for (uint32_t j = 0; j < lay->dim && rc == 0; j++) {
        double v = 0;
        if (row->dense)
            memcpy(&v, row->dense + 8 * (size_t)j, 8);
        else if (next < row->sp.nnz && em_ml_sparse_idx(&row->sp, next) == j)
            v = em_ml_sparse_val(&row->sp, next++);
        rc = em_vbuf_printf(line, j + 1 < lay->dim ? "%.17g%c" : "%.17g", v, sep);
    }
    return rc;
}

int em__ml_fn_format(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err)
{
    (void)index;
    em_ml_data lay;
    if (c->blob.n != 7)
        return em_err_set(err, EM_ECORRUPT, "ml.linalg.format: bad context");
    em_ml_format fmt = (em_ml_format)c->blob.p[0];
    int rc = em_ml_layout_decode(em_slice_make(c->blob.p + 1, 6), &lay, err);
    if (rc < 0)
        return rc;
    em_vbuf line;
    em_vbuf_init(&line);
    if (fmt != EM_ML_LIBSVM) {
        char sep = fmt == EM_ML_TSV ? '\t' : ',';
        if (lay.labeled)
            rc = em_vbuf_printf(&line, "label%c", sep);
        for (uint32_t j = 0; j < lay.dim && rc == 0; j++)
            rc = em_vbuf_printf(&line, j + 1 < lay.dim ? "f%u%c" : "f%u", j + 1, sep);
        if (rc == 0)
            rc = em_emit_val(out, em_slice_make(line.data, line.len), err);
    }
    em_rec r;
    while (rc >= 0 && (rc = em_iter_next(in, &r, err)) == 1) {
        em_ml_row row;
        if ((rc = em_ml_row_view(&lay, r.val, &row, err)) < 0)
            break;
        if (format_row(fmt, &lay, &row, &line) < 0) {
            rc = em_err_set(err, EM_ENOMEM, "ml.linalg.format: out of memory");
            break;
        }
        rc = em_emit_val(out, em_slice_make(line.data, line.len), err);
    }
    em_vbuf_destroy(&line);
    return rc < 0 ? rc : 0;
}

int em_ml_write(const em_ml_data *d, const char *dir, em_ml_format format, em_err *err)
{
    int rc = em_linalg_register();
    if (rc < 0)
        return em_err_set(err, rc, "ml.linalg: a task function name is taken");
    if (format != EM_ML_CSV && format != EM_ML_TSV && format != EM_ML_LIBSVM)
        return em_err_set(err, EM_EINVAL, "unknown data format %d", (int)format);
    uint8_t blob[7];
    blob[0] = (uint8_t)format;
    em_ml_layout_encode(d, blob + 1);
    em_rdd *text = em_rdd_map_partitions(d->rows, "ml.linalg.format",
                                         em_slice_make(blob, sizeof blob), false);
    rc = em_rdd_save_as_text_file(text, dir, err);
    em_rdd_release(text);
    return rc < 0 ? em_err_prefix(err, "writing %s", dir) : 0;
}
