/* tests/fuzz/fuzz_index.c - fuzz harness for the shuffle index decoder
 * (em__shuffle_index_decode, FORMAT in shuffle/index.c). A decoded index is walked end to
 * end, as a fetch would, so an out-of-bounds offset table shows up under ASan. */
#include "shuffle/shuffle_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    em__shuffle_index ix;
    em_err err = EM_ERR_INIT;
    uint64_t sum = 0;

    if (em__shuffle_index_decode(data, size, &ix, &err) == 0) {
        for (uint32_t i = 0; i <= ix.nparts; i++)
            sum += em__shuffle_index_off(&ix, i);
        if (em__shuffle_index_off(&ix, ix.nparts) < em__shuffle_index_off(&ix, 0))
            __builtin_trap();   /* decode promised non-decreasing offsets */
    }
    (void)sum;
    return 0;
}
