/* tests/fuzz/fuzz_ml_line.c - the MLlib text loaders' line parser (LIBSVM, CSV, TSV; the
 * code ml.linalg.parse runs on executors) on arbitrary bytes. Input: byte 0 the mode (bits
 * 0-1: 0 LIBSVM, 1 CSV, 2 TSV; bit 2 sparse rows; bit 3 labeled), byte 1 the feature count
 * (dense rows need >= 1), byte 2 the CSV column count, byte 3 the label column (0xff: none),
 * then the line. A row that comes out must have its layout (rows.h): a dense row is
 * 8*(dim + labeled) bytes, a sparse row passes the checked view with indices below dim. */
#include <stdint.h>
#include <stdlib.h>

#include "mllib/linalg/linalg_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    static const em_ml_format fmts[4] = {EM_ML_LIBSVM, EM_ML_CSV, EM_ML_TSV, EM_ML_LIBSVM};
    em__ml_line_opts o = {.format = fmts[data[0] & 3], .sparse = (data[0] & 4) != 0,
                          .labeled = (data[0] & 8) != 0, .dim = data[1], .ncols = data[2],
                          .label_col = data[3] == 0xff ? EM__ML_NO_LABEL : data[3]};
    em_vbuf row;
    em_vbuf_init(&row);
    em_err err = EM_ERR_INIT;
    const char *why = NULL;
    int r = em__ml_parse_line(&o, em_slice_make(data + 4, size - 4), &row, &why, &err);
    if (r == -1 && !why)
        abort();
    if (r == 1) {
        size_t f = o.labeled ? 1 : 0;
        if (!o.sparse || o.format != EM_ML_LIBSVM) {
            if (row.len != 8 * ((size_t)o.dim + f))
                abort();
        } else {
            if (row.len < 8 * f)
                abort();
            em_ml_sparse sp;
            em_slice rec = em_slice_make(row.data + 8 * f, row.len - 8 * f);
            if (em_ml_sparse_view(rec, o.dim, &sp, &err) < 0)
                abort();
        }
    }
    em_vbuf_destroy(&row);
    return 0;
}
