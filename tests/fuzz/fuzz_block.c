/* tests/fuzz/fuzz_block.c - untrusted block bytes through em_block_decode (the whole input
 * as one block), em_block_peek_size and em_blocks_decode_each (as a concatenation). Every
 * decoded batch is iterated to the end so that a validation gap shows up as an overread. */
#include <stdint.h>
#include <stddef.h>

#include "engine/data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t walk(em_batch *b)
{
    em_batch_iter it;
    em_rec r;
    uint64_t n = 0, sum = 0;
    em_batch_iter_init(&it, b);
    while (em_batch_iter_next(&it, &r)) {
        n++;
        if (r.key.n)
            sum += r.key.p[r.key.n - 1];
        if (r.val.n)
            sum += r.val.p[r.val.n - 1];
    }
    EM_ASSERT(n == em_batch_nrecs(b)); /* validated batches iterate exactly nrecs records */
    return sum;
}

static int each(void *ud, em_batch *b, em_err *err)
{
    (void)err;
    *(uint64_t *)ud += walk(b);
    em_batch_unref(b);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    em_err err = EM_ERR_INIT;
    em_batch *b = NULL;
    uint64_t sink = 0;
    if (em_block_decode(data, size, &b, &err) == 0) {
        sink += walk(b);
        em_batch_unref(b);
    }
    size_t bs;
    if (em_block_peek_size(data, size, &bs, &err) == 0)
        EM_ASSERT(bs >= EM_BLOCK_HEADER_SIZE);
    (void)em_blocks_decode_each(data, size, each, &sink, &err);
    return 0;
}
