/* tests/fuzz/fuzz_batch.c - untrusted payloads through em_batch_validate.
 * Input: u8 kind (1..3 after mod), u32le width, u64le nrecs, payload. A valid payload is
 * iterated and must give exactly nrecs records covering exactly the payload. */
#include <stdint.h>
#include <stddef.h>

#include "engine/data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 13)
        return 0;
    em_rec_kind kind = (em_rec_kind)(1 + data[0] % 3);
    uint32_t width = em_load_le32(data + 1);
    uint64_t nrecs = em_load_le64(data + 5);
    const uint8_t *p = data + 13;
    size_t n = size - 13;
    em_err err = EM_ERR_INIT;
    if (em_batch_validate(kind, width, nrecs, p, n, &err) != 0)
        return 0;
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, kind, width, p, n);
    uint64_t count = 0;
    while (em_batch_iter_next(&it, &r)) {
        EM_ASSERT(r.val.p + r.val.n <= p + n);
        count++;
    }
    EM_ASSERT(count == nrecs || (nrecs == 0 && count == 0));
    EM_ASSERT(it.p == it.end);
    return 0;
}
