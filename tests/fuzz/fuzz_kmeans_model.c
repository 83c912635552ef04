/* tests/fuzz/fuzz_kmeans_model.c - the k-means model decoder (metadata.json + centers.bin)
 * on arbitrary bytes. Input: u16 LE metadata length, the metadata, then the rest as the
 * centres file. A decoded model must be usable: predict on a zero vector. */
#include <stdint.h>
#include <stdlib.h>

#include "mllib/clustering/kmeans.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t ml = em_load_le16(data);
    data += 2;
    size -= 2;
    if (ml > size)
        return 0;
    em_kmeans_model *m = NULL;
    em_err err = EM_ERR_INIT;
    if (em_kmeans_model_decode("fuzz", data, ml, data + ml, size - ml, &m, &err) == 0) {
        if (!m || m->k == 0 || m->dim == 0)
            abort();
        double *x = calloc(m->dim, sizeof *x);
        if (x && em_kmeans_predict(m, x) >= m->k)
            abort();
        free(x);
    }
    em_kmeans_model_free(m);
    return 0;
}
