/* Frame codec: round trips under every split of the byte stream, and rejection of bad
 * magic, zero and over-cap lengths (before any body byte is buffered). */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/net/net.h"

typedef struct seen {
    int n;
    uint8_t types[16];
    em_vbuf payloads[16];
} seen;

static int on_frame(void *ud, uint8_t type, em_slice payload, em_err *err)
{
    (void)err;
    seen *s = ud;
    cr_assert_lt(s->n, 16);
    s->types[s->n] = type;
    em_vbuf_init(&s->payloads[s->n]);
    em_vbuf_append(&s->payloads[s->n], payload.p, payload.n);
    s->n++;
    return 0;
}

static void seen_destroy(seen *s)
{
    for (int i = 0; i < s->n; i++)
        em_vbuf_destroy(&s->payloads[i]);
}

static void encode_three(em_vbuf *wire)
{
    em_err err = EM_ERR_INIT;
    uint8_t big[5000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    cr_assert_eq(em_frame_encode(wire, EM_FRAME_RPC, "{\"a\":1}", 7, &err), 0);
    cr_assert_eq(em_frame_encode(wire, EM_FRAME_HEARTBEAT, NULL, 0, &err), 0);
    cr_assert_eq(em_frame_encode(wire, EM_FRAME_DATA, big, sizeof big, &err), 0);
}

static void check_three(const seen *s)
{
    cr_assert_eq(s->n, 3);
    cr_assert_eq(s->types[0], EM_FRAME_RPC);
    cr_assert_eq(s->payloads[0].len, 7);
    cr_assert_eq(memcmp(s->payloads[0].data, "{\"a\":1}", 7), 0);
    cr_assert_eq(s->types[1], EM_FRAME_HEARTBEAT);
    cr_assert_eq(s->payloads[1].len, 0);
    cr_assert_eq(s->types[2], EM_FRAME_DATA);
    cr_assert_eq(s->payloads[2].len, 5000);
    for (size_t i = 0; i < 5000; i++)
        cr_assert_eq(s->payloads[2].data[i], (uint8_t)(i * 7));
}

Test(frame, round_trip_whole)
{
    em_vbuf wire;
    em_vbuf_init(&wire);
    encode_three(&wire);
    em_frame_decoder d;
    em_frame_decoder_init(&d, 0);
    seen s = {0};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_frame_decoder_feed(&d, wire.data, wire.len, on_frame, &s, &err), 0);
    check_three(&s);
    seen_destroy(&s);
    em_frame_decoder_destroy(&d);
    em_vbuf_destroy(&wire);
}

Test(frame, round_trip_every_chunk_size)
{
    em_vbuf wire;
    em_vbuf_init(&wire);
    encode_three(&wire);
    for (size_t chunk = 1; chunk <= 64; chunk++) {
        em_frame_decoder d;
        em_frame_decoder_init(&d, 0);
        seen s = {0};
        em_err err = EM_ERR_INIT;
        for (size_t off = 0; off < wire.len; off += chunk) {
            size_t n = wire.len - off < chunk ? wire.len - off : chunk;
            cr_assert_eq(em_frame_decoder_feed(&d, wire.data + off, n, on_frame, &s, &err), 0);
        }
        check_three(&s);
        cr_assert_eq(d.nframes, 3);
        seen_destroy(&s);
        em_frame_decoder_destroy(&d);
    }
    em_vbuf_destroy(&wire);
}

Test(frame, bad_magic_is_rejected_and_poisons)
{
    const uint8_t junk[] = "GET / HTTP/1.1\r\n\r\n";
    em_frame_decoder d;
    em_frame_decoder_init(&d, 0);
    seen s = {0};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_frame_decoder_feed(&d, junk, sizeof junk - 1, on_frame, &s, &err),
                 EM_EPROTO);
    cr_assert(strstr(err.msg, "frame 0") != NULL, "%s", err.msg);
    em_err err2 = EM_ERR_INIT;
    em_vbuf wire;
    em_vbuf_init(&wire);
    encode_three(&wire);
    cr_assert_eq(em_frame_decoder_feed(&d, wire.data, wire.len, on_frame, &s, &err2),
                 EM_EPROTO);
    cr_assert_eq(s.n, 0);
    em_vbuf_destroy(&wire);
    em_frame_decoder_destroy(&d);
}

Test(frame, oversized_length_rejected_before_body)
{
    uint8_t hdr[EM_FRAME_HEADER_SIZE] = {'E', 'M', 'F', 'R', 0, 0, 0, 0, EM_FRAME_DATA};
    em_store_le32(hdr + 4, EM_FRAME_PRELOGIN_MAX + 1);
    em_frame_decoder d;
    em_frame_decoder_init(&d, EM_FRAME_PRELOGIN_MAX);
    seen s = {0};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_frame_decoder_feed(&d, hdr, sizeof hdr, on_frame, &s, &err), EM_EPROTO);
    cr_assert_eq(d.body.cap, 0, "no body bytes may be buffered");
    em_frame_decoder_destroy(&d);
}

Test(frame, zero_length_rejected)
{
    uint8_t hdr[EM_FRAME_HEADER_SIZE] = {'E', 'M', 'F', 'R', 0, 0, 0, 0, 0};
    em_frame_decoder d;
    em_frame_decoder_init(&d, 0);
    seen s = {0};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_frame_decoder_feed(&d, hdr, sizeof hdr, on_frame, &s, &err), EM_EPROTO);
    em_frame_decoder_destroy(&d);
}

static int fail_second(void *ud, uint8_t type, em_slice payload, em_err *err)
{
    (void)type;
    (void)payload;
    int *count = ud;
    if (++*count == 2)
        return em_err_set(err, EM_EPROTO, "unexpected frame");
    return 0;
}

Test(frame, callback_error_stops_and_poisons)
{
    em_vbuf wire;
    em_vbuf_init(&wire);
    encode_three(&wire);
    em_frame_decoder d;
    em_frame_decoder_init(&d, 0);
    int count = 0;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_frame_decoder_feed(&d, wire.data, wire.len, fail_second, &count, &err),
                 EM_EPROTO);
    cr_assert_eq(count, 2);
    cr_assert_eq(em_frame_decoder_feed(&d, wire.data, 1, fail_second, &count, &err), EM_EPROTO);
    cr_assert_eq(count, 2);
    em_frame_decoder_destroy(&d);
    em_vbuf_destroy(&wire);
}

Test(frame, encode_rejects_oversized_payload)
{
    em_vbuf wire;
    em_vbuf_init(&wire);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_frame_encode(&wire, EM_FRAME_DATA, NULL, EM_FRAME_MAX_BODY, &err),
                 EM_EINVAL);
    cr_assert_eq(wire.len, 0);
    em_vbuf_destroy(&wire);
}

/* Seals every frame of `wire` in place the way a sending connection does (the length
 * grows by the tag, the header is the AAD) into out. */
static void seal_all(const em_vbuf *wire, em_aead *tx, em_vbuf *out)
{
    em_err err = EM_ERR_INIT;
    for (size_t off = 0; off < wire->len;) {
        uint32_t len = em_load_le32(wire->data + off + 4);
        uint8_t hdr[EM_FRAME_HEADER_SIZE];
        memcpy(hdr, wire->data + off, sizeof hdr);
        em_store_le32(hdr + 4, len + EM_AEAD_TAG_LEN);
        size_t m = len - 1;
        uint8_t *body = em_xmalloc(m + EM_AEAD_TAG_LEN);
        cr_assert_eq(em_aead_begin(tx, hdr, sizeof hdr, &err), 0);
        cr_assert_eq(em_aead_update(tx, wire->data + off + sizeof hdr, body, m, &err), 0);
        cr_assert_eq(em_aead_finish(tx, body + m, &err), 0);
        em_vbuf_append(out, hdr, sizeof hdr);
        em_vbuf_append(out, body, m + EM_AEAD_TAG_LEN);
        em_free(body);
        off += sizeof hdr + m;
    }
}

/* A sealed stream decodes under every split, also when big bodies are read into the room
 * the decoder offers (as a connection's reads are); a flipped bit anywhere is EM_EAUTH. */
Test(frame, sealed_stream_opens_under_every_split)
{
    static const char *secret = "0123456789abcdef-frame";
    uint8_t cn[32] = {1}, sn[32] = {2};
    em_err err = EM_ERR_INIT;
    em_vbuf wire, sealed;
    em_vbuf_init(&wire);
    em_vbuf_init(&sealed);
    encode_three(&wire);
    for (size_t chunk = 1; chunk <= 4101; chunk += chunk < 40 ? 1 : 1000) {
        for (int use_room = 0; use_room < 2; use_room++) {
            em_aead *tx = em_aead_new(secret, strlen(secret), cn, sn, true, true, &err);
            em_aead *rx = em_aead_new(secret, strlen(secret), cn, sn, true, false, &err);
            cr_assert(tx && rx, "%s", err.msg);
            em_vbuf_clear(&sealed);
            seal_all(&wire, tx, &sealed);
            em_frame_decoder d;
            em_frame_decoder_init(&d, 0);
            d.open = rx;
            seen s = {0};
            for (size_t off = 0; off < sealed.len;) {
                size_t n = sealed.len - off < chunk ? sealed.len - off : chunk;
                uint8_t *room = NULL;
                size_t k = use_room ? em_frame_decoder_room(&d, 1, &room) : 0;
                if (k) {   /* "read" into the decoder's own buffer */
                    n = n < k ? n : k;
                    memcpy(room, sealed.data + off, n);
                    cr_assert_eq(em_frame_decoder_feed(&d, room, n, on_frame, &s, &err), 0,
                                 "%s", err.msg);
                } else {
                    uint8_t *copy = em_xmalloc(n);   /* feed may decrypt in place */
                    memcpy(copy, sealed.data + off, n);
                    cr_assert_eq(em_frame_decoder_feed(&d, copy, n, on_frame, &s, &err), 0,
                                 "%s", err.msg);
                    em_free(copy);
                }
                off += n;
            }
            check_three(&s);
            seen_destroy(&s);
            em_frame_decoder_destroy(&d);
            em_aead_free(tx);
            em_aead_free(rx);
        }
    }
    /* tampering: one bit of the big frame's ciphertext */
    em_aead *tx = em_aead_new(secret, strlen(secret), cn, sn, true, true, &err);
    em_aead *rx = em_aead_new(secret, strlen(secret), cn, sn, true, false, &err);
    em_vbuf_clear(&sealed);
    seal_all(&wire, tx, &sealed);
    sealed.data[sealed.len - 100] ^= 4;
    em_frame_decoder d;
    em_frame_decoder_init(&d, 0);
    d.open = rx;
    seen s = {0};
    cr_assert_eq(em_frame_decoder_feed(&d, sealed.data, sealed.len, on_frame, &s, &err),
                 EM_EAUTH);
    cr_assert_eq(s.n, 2, "the frames before the tampered one were delivered");
    seen_destroy(&s);
    em_frame_decoder_destroy(&d);
    em_aead_free(tx);
    em_aead_free(rx);
    em_vbuf_destroy(&wire);
    em_vbuf_destroy(&sealed);
}

/* Builds a sealed PRESEALED frame as a sending connection does: head sealed by tx (AAD =
 * the header and the head length), the tail appended as it is. */
static void presealed_frame(em_vbuf *out, em_aead *tx, const void *head, uint32_t h,
                            const void *tail, size_t tn)
{
    em_err err = EM_ERR_INIT;
    uint8_t pre[EM_FRAME_HEADER_SIZE + 4];
    memcpy(pre, "EMFR", 4);
    em_store_le32(pre + 4, (uint32_t)(1 + 4 + h + EM_AEAD_TAG_LEN + tn));
    pre[8] = EM_FRAME_PRESEALED;
    em_store_le32(pre + EM_FRAME_HEADER_SIZE, h);
    uint8_t *body = em_xmalloc(h + EM_AEAD_TAG_LEN);
    cr_assert_eq(em_aead_begin(tx, pre, sizeof pre, &err), 0);
    cr_assert_eq(em_aead_update(tx, head, body, h, &err), 0);
    cr_assert_eq(em_aead_finish(tx, body + h, &err), 0);
    em_vbuf_append(out, pre, sizeof pre);
    em_vbuf_append(out, body, h + EM_AEAD_TAG_LEN);
    em_vbuf_append(out, tail, tn);
    em_free(body);
}

/* A PRESEALED frame between two sealed frames decodes under every split (and with room
 * reads) into a DATA frame of head || tail; the frames around it keep their order. */
Test(frame, presealed_frame_delivered_as_head_then_tail)
{
    static const char *secret = "0123456789abcdef-frame";
    uint8_t cn[32] = {3}, sn[32] = {4};
    em_err err = EM_ERR_INIT;
    uint8_t head[52], tail[70000];
    for (size_t i = 0; i < sizeof head; i++)
        head[i] = (uint8_t)(i + 1);
    for (size_t i = 0; i < sizeof tail; i++)
        tail[i] = (uint8_t)(i * 13);
    em_vbuf wire, plain;
    em_vbuf_init(&wire);
    em_vbuf_init(&plain);
    for (size_t chunk = 1; chunk <= 70001; chunk += chunk < 80 ? 1 : 7001) {
        for (int use_room = 0; use_room < 2; use_room++) {
            em_aead *tx = em_aead_new(secret, strlen(secret), cn, sn, false, true, &err);
            em_aead *rx = em_aead_new(secret, strlen(secret), cn, sn, false, false, &err);
            cr_assert(tx && rx, "%s", err.msg);
            em_vbuf_clear(&wire);
            em_vbuf_clear(&plain);
            cr_assert_eq(em_frame_encode(&plain, EM_FRAME_RPC, "{}", 2, &err), 0);
            seal_all(&plain, tx, &wire);
            presealed_frame(&wire, tx, head, sizeof head, tail, sizeof tail);
            em_vbuf_clear(&plain);
            cr_assert_eq(em_frame_encode(&plain, EM_FRAME_RPC, "[]", 2, &err), 0);
            seal_all(&plain, tx, &wire);
            em_frame_decoder d;
            em_frame_decoder_init(&d, 0);
            d.open = rx;
            seen s = {0};
            for (size_t off = 0; off < wire.len;) {
                size_t n = wire.len - off < chunk ? wire.len - off : chunk;
                uint8_t *room = NULL;
                size_t k = use_room ? em_frame_decoder_room(&d, 1, &room) : 0;
                uint8_t *at = k ? room : em_xmalloc(n);
                n = k && n > k ? k : n;
                memcpy(at, wire.data + off, n);
                cr_assert_eq(em_frame_decoder_feed(&d, at, n, on_frame, &s, &err), 0, "%s",
                             err.msg);
                if (!k)
                    em_free(at);
                off += n;
            }
            cr_assert_eq(s.n, 3);
            cr_assert_eq(s.types[0], EM_FRAME_RPC);
            cr_assert_eq(s.types[1], EM_FRAME_DATA);
            cr_assert_eq(s.payloads[1].len, sizeof head + sizeof tail);
            cr_assert_eq(memcmp(s.payloads[1].data, head, sizeof head), 0);
            cr_assert_eq(memcmp(s.payloads[1].data + sizeof head, tail, sizeof tail), 0);
            cr_assert_eq(s.types[2], EM_FRAME_RPC);
            cr_assert_eq(memcmp(s.payloads[2].data, "[]", 2), 0);
            seen_destroy(&s);
            em_frame_decoder_destroy(&d);
            em_aead_free(tx);
            em_aead_free(rx);
        }
    }
    em_vbuf_destroy(&wire);
    em_vbuf_destroy(&plain);
}

/* Feeds one PRESEALED frame (after `mutate` changed byte `at` of it) to a fresh sealed
 * decoder; returns feed's result and the frames delivered in *n. */
static int feed_mutated(size_t at, uint8_t xor, bool plain_link, int *n)
{
    static const char *secret = "0123456789abcdef-frame";
    uint8_t cn[32] = {5}, sn[32] = {6};
    em_err err = EM_ERR_INIT;
    uint8_t head[40] = {7}, tail[300] = {9};
    em_aead *tx = em_aead_new(secret, strlen(secret), cn, sn, true, true, &err);
    em_aead *rx = em_aead_new(secret, strlen(secret), cn, sn, true, false, &err);
    em_vbuf wire;
    em_vbuf_init(&wire);
    presealed_frame(&wire, tx, head, sizeof head, tail, sizeof tail);
    if (at < wire.len)
        wire.data[at] ^= xor;
    em_frame_decoder d;
    em_frame_decoder_init(&d, 0);
    d.open = plain_link ? NULL : rx;
    seen s = {0};
    int rc = em_frame_decoder_feed(&d, wire.data, wire.len, on_frame, &s, &err);
    *n = s.n;
    seen_destroy(&s);
    em_frame_decoder_destroy(&d);
    em_vbuf_destroy(&wire);
    em_aead_free(tx);
    em_aead_free(rx);
    return rc;
}

/* The head is proved like any sealed frame: a flip in the header's type, the head length,
 * the head or its tag is refused and nothing is delivered; the tail is the application's
 * to prove (its flip passes here, and bcast's own tag refuses it: test_presealed.c). A
 * PRESEALED frame on a plain link is a protocol error. */
Test(frame, presealed_head_is_authenticated)
{
    int n, rc;
    cr_assert_eq(feed_mutated(SIZE_MAX, 0, false, &n), 0);
    cr_assert_eq(n, 1);
    rc = feed_mutated(8, 2, false, &n);   /* type 19 -> 17: opened as a whole sealed frame */
    cr_assert(rc == EM_EAUTH, "type flip: %d", rc);
    cr_assert_eq(n, 0);
    rc = feed_mutated(9, 1, false, &n);   /* head length 40 -> 41 */
    cr_assert(rc == EM_EAUTH, "length flip: %d", rc);
    cr_assert_eq(n, 0);
    rc = feed_mutated(11, 0x80, false, &n);   /* head length huge */
    cr_assert(rc == EM_EPROTO, "huge head length: %d", rc);
    cr_assert_eq(n, 0);
    for (size_t at = 13; at < 13 + 40 + EM_AEAD_TAG_LEN; at += 7) {
        rc = feed_mutated(at, 0x10, false, &n);
        cr_assert(rc == EM_EAUTH, "head byte %zu: %d", at, rc);
        cr_assert_eq(n, 0);
    }
    cr_assert_eq(feed_mutated(13 + 40 + EM_AEAD_TAG_LEN + 5, 1, false, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(feed_mutated(SIZE_MAX, 0, true, &n), EM_EPROTO);
    cr_assert_eq(n, 0);
}
