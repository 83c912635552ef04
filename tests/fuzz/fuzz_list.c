/* tests/fuzz/fuzz_list.c - untrusted bytes as a list value (em_list_iter) and as a pair
 * (em_pair_decode); items must stay inside the input. */
#include <stdint.h>
#include <stddef.h>

#include "engine/data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    em_err err = EM_ERR_INIT;
    em_slice in = em_slice_make(data, size);
    em_list_iter it;
    if (em_list_iter_init(&it, in, &err) == 0) {
        em_slice item;
        int rc;
        while ((rc = em_list_iter_next(&it, &item, &err)) == 1)
            EM_ASSERT(item.p >= data && item.p + item.n <= data + size);
    }
    em_slice l, r;
    bool hl, hr;
    if (em_pair_decode(in, &l, &hl, &r, &hr, &err) == 0) {
        EM_ASSERT(l.p + l.n <= data + size && r.p + r.n <= data + size);
        EM_ASSERT(hl || l.n == 0);
        EM_ASSERT(hr || r.n == 0);
    }
    return 0;
}
