/* tests/fuzz/fuzz_pca_model.c - the PCA model decoder (metadata.json + arrays.bin) on
 * arbitrary bytes. Input: u16 LE metadata length, then the metadata, and the rest as the
 * array file. A model that decodes is used: every array is read once. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "mllib/decomp/decomp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t ml = em_load_le16(data);
    data += 2;
    size -= 2;
    if (ml > size)
        return 0;
    em_pca_model *m = NULL;
    em_err err = EM_ERR_INIT;
    if (em_pca_model_decode("fuzz", data, ml, data + ml, size - ml, &m, &err) == 0) {
        if (!m || m->k == 0 || m->k > m->dim)
            abort();
        double sum = m->total_variance;
        for (size_t i = 0; i < m->dim; i++)
            sum += m->mean[i];
        for (size_t i = 0; i < (size_t)m->k * m->dim; i++)
            sum += m->components[i];
        for (size_t i = 0; i < m->k; i++)
            sum += m->explained_variance[i] + m->explained_variance_ratio[i];
        if (isinf(sum) && sum == 0)   /* never: keeps the reads */
            abort();
    }
    em_pca_model_free(m);
    return 0;
}
