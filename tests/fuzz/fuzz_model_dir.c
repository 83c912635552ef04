/* tests/fuzz/fuzz_model_dir.c - the model directory decoders (mllib/linalg/model_dir.h) on
 * arbitrary bytes. Input: u16 LE metadata length, the metadata (parsed as class
 * "ember.FuzzModel", versions 1..3), then the rest as the bytes of every array the
 * metadata lists (each decoded with a cap of 2^20 values). The typed field readers run on
 * what parsed. Seeds: tests/fuzz/corpus/model_dir/. */
#include <stdint.h>
#include <stdlib.h>

#include "mllib/linalg/model_dir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t ml = em_load_le16(data);
    data += 2;
    size -= 2;
    if (ml > size)
        return 0;
    json_t *meta = NULL;
    em_err err = EM_ERR_INIT;
    if (em_ml_model_meta_parse("fuzz", data, ml, "ember.FuzzModel", 3, &meta, &err) != 0)
        return 0;
    const char *key, *s;
    json_t *e;
    json_object_foreach(json_object_get(meta, "arrays"), key, e) {
        em_ml_array a = {.name = key, .max_count = (size_t)1 << 20};
        (void)e;
        if (em_ml_model_array_decode("fuzz", meta, data + ml, size - ml, &a, &err) == 0) {
            if (a.count > a.max_count || (a.count > 0 && !a.data))
                abort();
            double sum = 0;
            for (size_t i = 0; i < a.count; i++)
                sum += a.data[i];
            if (sum != sum && a.count == 0)   /* never: keeps the reads */
                abort();
        }
        em_free(a.data);
    }
    uint64_t u;
    double d;
    em_ml_meta_u64("fuzz", meta, "version", 3, &u, &err);
    em_ml_meta_f64("fuzz", meta, "alpha", &d, &err);
    em_ml_meta_str("fuzz", meta, "name", &s, &err);
    json_decref(meta);
    return 0;
}
