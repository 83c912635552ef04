/* tests/fuzz/fuzz_model.c - the ALS model decoder (metadata.json + factor files) on
 * arbitrary bytes. Input: u16 LE metadata length, u16 LE user-factor length, then the
 * metadata, the user factors, and the rest as item factors. */
#include <stdint.h>
#include <stdlib.h>

#include "mllib/als/als.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t ml = em_load_le16(data), ul = em_load_le16(data + 2);
    data += 4;
    size -= 4;
    if (ml > size || ul > size - ml)
        return 0;
    em_als_model *m = NULL;
    em_err err = EM_ERR_INIT;
    if (em_als_model_decode("fuzz", data, ml, data + ml, ul, data + ml + ul, size - ml - ul,
                            &m, &err) == 0) {
        if (!m || m->rank <= 0)
            abort();
        (void)em_als_predict(m, 0, 0);
        (void)em_als_predict(m, m->n_users - 1, m->n_items - 1);
    }
    em_als_model_free(m);
    return 0;
}
