/* Fuzz harness for the frame decoder: the input is split at a position taken from its first
 * byte and fed in two reads, with the pre-login cap when the second byte is odd. */
#include "engine/net/net.h"

static int on_frame(void *ud, uint8_t type, em_slice payload, em_err *err)
{
    (void)err;
    size_t *total = ud;
    *total += payload.n + type;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t split = data[0] % (size - 1);
    uint32_t cap = (data[1] & 1) ? EM_FRAME_PRELOGIN_MAX : 0;
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    if (split > n)
        split = n;
    em_frame_decoder d;
    em_frame_decoder_init(&d, cap);
    size_t total = 0;
    em_err err = EM_ERR_INIT;
    if (em_frame_decoder_feed(&d, p, split, on_frame, &total, &err) == 0)
        em_frame_decoder_feed(&d, p + split, n - split, on_frame, &total, &err);
    em_frame_decoder_destroy(&d);
    return 0;
}
