/* tests/fuzz/fuzz_cluster_msg.c - libFuzzer harness for the driver-executor protocol
 * decoders (engine/executor/proto.c, bcast.c): any bytes as a JSON message, as a DATA frame
 * header, as broadcast pieces and as a pushed broadcast must be decoded or rejected without
 * crashing or leaking; a decoded message must re-encode and decode again to the same type. */
#include <stddef.h>
#include <stdint.h>

#include "engine/executor/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    em__msg m;
    em_err err = EM_ERR_INIT;
    if (em__msg_decode(data, size, &m, &err) == 0) {
        em_vbuf v;
        em_vbuf_init(&v);
        if (em__msg_encode(&m, &v, &err) == 0) {
            em__msg again;
            if (em__msg_decode(v.data, v.len, &again, &err) != 0 || again.type != m.type)
                __builtin_trap();
            em__msg_destroy(&again);
        }
        em_vbuf_destroy(&v);
    }
    em__msg_destroy(&m);
    uint8_t kind, flags;
    uint64_t id;
    em_slice body;
    if (em__data_parse((em_slice){data, size}, &kind, &flags, &id, &body, &err) == 0 &&
        kind == EM__DATA_PIECE) {
        /* the body as a sequence of pieces: u32 length prefixes split it */
        em__bcast_asm a = {.sealed = id & 1};   /* odd ids: pieces as on sealed links */
        while (body.n >= 4) {
            uint32_t n = em_load_le32(body.p);
            if (n > body.n - 4)
                n = (uint32_t)(body.n - 4);
            em__bcast_asm_add(&a, em_slice_make(body.p + 4, n), &err);
            body.p += 4 + n;
            body.n -= 4 + n;
        }
        em_batch_unref(em__bcast_asm_finish(&a));
        em__bcast_asm_destroy(&a);
    }
    if (em__data_parse((em_slice){data, size}, &kind, &flags, &id, &body, &err) == 0 &&
        kind == EM__DATA_BPUSH) {
        /* a pushed broadcast, checked as on a plain link and as on a sealed one */
        em_batch *b = NULL;
        if (em__bpush_decode(body, false, &b, &err) == 0)
            em_batch_unref(b);
        b = NULL;
        if (em__bpush_decode(body, true, &b, &err) == 0)
            em_batch_unref(b);
    }
    return 0;
}
