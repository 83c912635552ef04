/* tests/fuzz/fuzz_linear_model.c - the linear model decoder (metadata.json + coef.bin +
 * intercept.bin) on arbitrary bytes. Input: u16 LE metadata length, u16 LE coef length,
 * then the metadata, the coefficients, and the rest as intercepts. A decoded model must be
 * usable: score a zero row. */
#include <stdint.h>
#include <stdlib.h>

#include "mllib/linear/linear.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t ml = em_load_le16(data), cl = em_load_le16(data + 2);
    data += 4;
    size -= 4;
    if (ml > size || cl > size - ml)
        return 0;
    em_linear_model *m = NULL;
    em_err err = EM_ERR_INIT;
    if (em_linear_model_decode("fuzz", data, ml, data + ml, cl, data + ml + cl,
                               size - ml - cl, &m, &err) == 0) {
        if (!m || m->dim == 0 || m->rows == 0)
            abort();
        uint8_t *x = calloc(m->dim, 8);
        em_ml_row row = {.dense = x};
        if (x)
            (void)em_linear_predict(m, &row);
        free(x);
    }
    em_linear_model_free(m);
    return 0;
}
