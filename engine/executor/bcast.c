/* engine/executor/bcast.c - broadcast pieces: the PIECE frame header and the executor's
 * assembly of a value from pieces (protocol.h has the format). The pieces come from
 * the network: every header field is checked against the first piece's, each index may
 * arrive once, and on plain links each piece's crc32c must match before it counts. On sealed
 * links the driver sealed each piece once for every executor (PRESEALED frames, net.h;
 * bcast_serve.c): the body is the PIECE header, the value's key and the piece sealed under
 * it (index as nonce, PIECE header as AAD); it is opened straight into the value (no copy),
 * and a piece whose tag fails is EM_EAUTH: the caller closes the link.
 * THREADS: an em__bcast_asm is used by one thread at a time (the executor's loop thread
 * under its lock). */
#include <string.h>

#include "engine/executor/protocol.h"
#include "engine/net/net.h"

void em__piece_hdr(uint8_t out[EM__PIECE_HDR], uint64_t total, uint32_t piece_size,
                   uint32_t index, uint32_t crc)
{
    em_store_le64(out, total);
    em_store_le32(out + 8, piece_size);
    em_store_le32(out + 12, index);
    em_store_le32(out + 16, crc);
}

uint32_t em__piece_count(uint64_t total, uint32_t piece_size)
{
    if (total == 0 || piece_size == 0)
        return 1;
    return (uint32_t)((total + piece_size - 1) / piece_size);
}

/* Sizes the value from the first piece's header. */
static int asm_start(em__bcast_asm *a, uint64_t total, uint32_t psize, em_err *err)
{
    if (total >= EM_BATCH_MAX_REC_LEN)
        return em_err_set(err, EM_EPROTO, "broadcast piece: value of %llu bytes (the limit is "
                          "%u)", (unsigned long long)total, EM_BATCH_MAX_REC_LEN - 1);
    if (psize == 0 || psize > EM__PIECE_MAX)
        return em_err_set(err, EM_EPROTO, "broadcast piece: piece size %u outside 1..%u",
                          psize, EM__PIECE_MAX);
    uint32_t np = em__piece_count(total, psize);
    uint8_t *payload = em_malloc_big((size_t)total + 4);   /* huge pages: few faults */
    uint8_t *have = em_calloc(np, 1);
    if (!payload || !have) {
        em_free_big(payload);
        em_free(have);
        return em_err_set(err, EM_ENOMEM, "broadcast of %llu bytes: out of memory",
                          (unsigned long long)total);
    }
    em_store_le32(payload, (uint32_t)total);
    *a = (em__bcast_asm){.total = total, .piece_size = psize, .npieces = np,
                         .payload = payload, .have = have, .sealed = a->sealed,
                         .link_proved = a->link_proved};
    return 0;
}

int em__bcast_asm_add(em__bcast_asm *a, em_slice body, em_err *err)
{
    if (body.n < EM__PIECE_HDR)
        return em_err_set(err, EM_EPROTO, "broadcast piece of %zu bytes: shorter than its "
                          "header", body.n);
    uint64_t total = em_load_le64(body.p);
    uint32_t psize = em_load_le32(body.p + 8), idx = em_load_le32(body.p + 12);
    uint32_t crc = em_load_le32(body.p + 16);
    int rc;
    if (!a->payload && (rc = asm_start(a, total, psize, err)) < 0)
        return rc;
    if (total != a->total || psize != a->piece_size)
        return em_err_set(err, EM_EPROTO, "broadcast piece %u: size fields differ from the "
                          "first piece's", idx);
    if (idx >= a->npieces)
        return em_err_set(err, EM_EPROTO, "broadcast piece %u of %u: index out of range", idx,
                          a->npieces);
    if (a->have[idx])
        return em_err_set(err, EM_EPROTO, "broadcast piece %u: received twice", idx);
    uint64_t off = (uint64_t)idx * psize;
    uint64_t want = total - off < psize ? total - off : psize;
    size_t extra = a->sealed ? EM_AEAD_KEY_LEN + EM_AEAD_TAG_LEN : 0;   /* key, tag */
    size_t n = body.n - EM__PIECE_HDR - (body.n - EM__PIECE_HDR >= extra ? extra : 0);
    if (body.n - EM__PIECE_HDR < extra || n != want)
        return em_err_set(err, EM_EPROTO, "broadcast piece %u: %zu bytes, expected %llu", idx,
                          body.n - EM__PIECE_HDR, (unsigned long long)(want + extra));
    const uint8_t *p = body.p + EM__PIECE_HDR;
    if (a->sealed) {   /* opened straight into the value */
        const uint8_t *key = p;
        p += EM_AEAD_KEY_LEN;
        /* the crc field names the cipher; it is in the link-sealed head and the AAD */
        if (!em_cipher_known((int)crc))
            return em_err_set(err, EM_EPROTO, "broadcast piece %u: unknown cipher id %u", idx,
                              crc);
        if ((rc = em_aead_open_once((em_cipher)crc, key, idx, body.p, EM__PIECE_HDR, p, a->payload + 4 + off,
                                    n, p + n, err)) < 0)
            return em_err_prefix(err, "broadcast piece %u", idx);
    } else {
        if (!a->link_proved && em_crc32c(0, p, n) != crc)
            return em_err_set(err, EM_ECORRUPT, "broadcast piece %u: checksum mismatch", idx);
        memcpy(a->payload + 4 + off, p, n);
    }
    a->have[idx] = 1;
    a->received++;
    return 0;
}

em_batch *em__bcast_asm_finish(em__bcast_asm *a)
{
    if (!em__bcast_asm_done(a))
        return NULL;
    em_batch *b = em_batch_new_take_big(EM_REC_BYTES, 0, 1, a->payload,
                                        (size_t)a->total + 4);
    a->payload = NULL;
    em__bcast_asm_destroy(a);
    return b;
}

void em__bcast_asm_destroy(em__bcast_asm *a)
{
    if (!a)
        return;
    em_free_big(a->payload);
    em_free(a->have);
    memset(a, 0, sizeof *a);
}
