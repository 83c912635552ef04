/* tests/fuzz/fuzz_mlp_model.c - the MLP model decoder (metadata.json + params.bin or the
 * int8 packed.bin) on arbitrary bytes. Input: u16 LE metadata length, the metadata, then
 * the rest as the array file. A decoded model must be usable: predict one zero row and
 * get a class inside the output layer (or a finite regression output). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "mllib/mlp/mlp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t ml = em_load_le16(data);
    data += 2;
    size -= 2;
    if (ml > size)
        return 0;
    em_mlp_model *m = NULL;
    em_err err = EM_ERR_INIT;
    if (em_mlp_model_decode("fuzz", data, ml, data + ml, size - ml, &m, &err) == 0) {
        if (!m || m->nlayers == 0 || m->nlayers > EM_MLP_MAX_LAYERS)
            abort();
        /* keep the work bounded: only small models are run */
        if (em_mlp_nparams(m) <= (1u << 16)) {
            float *x = calloc(m->sizes[0], sizeof *x), out = -1;
            if (x) {
                em_mlp_predict(m, x, 1, &out, NULL);
                if (!m->regression && !(out >= 0 && out < (float)m->sizes[m->nlayers]))
                    abort();
            }
            free(x);
        }
    }
    em_mlp_model_free(m);
    return 0;
}
