/* Fuzz harness for the frame decoder: the input is split at a position taken from its first
 * byte and fed in two reads, with the pre-login cap when the second byte is odd, and as a
 * sealed stream (fixed session keys: tags fail, but headers, PRESEALED head lengths and
 * the opening paths run) when its bit 1 is set. */
#include <string.h>

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
    static const uint8_t nonce[32] = {1};
    em_aead *rx = (data[1] & 2) ? em_aead_new("0123456789abcdef-fuzz", 21, nonce, nonce, true,
                                              false, &err)
                                : NULL;
    d.open = rx;
    uint8_t *own = em_xmalloc(n ? n : 1);   /* a sealed stream is opened in place */
    memcpy(own, p, n);
    if (em_frame_decoder_feed(&d, own, split, on_frame, &total, &err) == 0)
        em_frame_decoder_feed(&d, own + split, n - split, on_frame, &total, &err);
    em_frame_decoder_destroy(&d);
    em_aead_free(rx);
    em_free(own);
    return 0;
}
