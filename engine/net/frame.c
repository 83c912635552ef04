/* engine/net/frame.c - frame encoding and the incremental frame decoder.
 *
 * DESIGN: the decoder is a two-state machine (reading the 9-byte header, reading the body).
 * The header is validated (magic, 1 <= length <= cap) before a single body byte is
 * buffered, so a peer can make us allocate at most `cap` bytes, and before login `cap` is
 * EM_FRAME_PRELOGIN_MAX. Frames that arrive whole inside one read are delivered straight
 * from the read buffer without copying. */
#include "engine/net/net.h"

#include <string.h>

static const uint8_t frame_magic[4] = {'E', 'M', 'F', 'R'};

int em_frame_encode(em_vbuf *out, uint8_t type, const void *payload, size_t n, em_err *err)
{
    em_slice part = {payload, n};
    return em_frame_encodev(out, type, &part, 1, err);
}

int em_frame_encodev(em_vbuf *out, uint8_t type, const em_slice *parts, size_t nparts,
                     em_err *err)
{
    return em_frame_encode_head(out, type, parts, nparts, 0, err);
}

int em_frame_encode_head(em_vbuf *out, uint8_t type, const em_slice *parts, size_t nparts,
                         size_t tail, em_err *err)
{
    size_t n = 0;
    for (size_t i = 0; i <= nparts; i++) {
        size_t k = i < nparts ? parts[i].n : tail;
        if (k >= EM_FRAME_MAX_BODY - n)
            return em_err_set(err, EM_EINVAL, "frame payload of %zu bytes exceeds the cap (%u)",
                              n + k, EM_FRAME_MAX_BODY - 1);
        n += k;
    }
    uint8_t hdr[EM_FRAME_HEADER_SIZE];
    memcpy(hdr, frame_magic, 4);
    em_store_le32(hdr + 4, (uint32_t)n + 1);
    hdr[8] = type;
    if (em_vbuf_reserve(out, sizeof hdr + n - tail) < 0)
        return em_err_set(err, EM_ENOMEM, "frame of %zu bytes: out of memory", n);
    em_vbuf_append(out, hdr, sizeof hdr);
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].n)
            em_vbuf_append(out, parts[i].p, parts[i].n);
    return 0;
}

void em_frame_decoder_init(em_frame_decoder *d, uint32_t cap)
{
    memset(d, 0, sizeof *d);
    d->cap = cap ? cap : EM_FRAME_MAX_BODY;
    em_vbuf_init(&d->body);
}

void em_frame_decoder_destroy(em_frame_decoder *d)
{
    em_vbuf_destroy(&d->body);
}

static int poison(em_frame_decoder *d, em_err *err)
{
    d->poisoned = err->code;
    em_err_copy(&d->first_err, err);
    return err->code;
}

/* Validates a complete header; sets d->body_len and, on a sealed stream, starts opening the
 * frame (the header is its AAD; a PRESEALED frame's head starts once its length is read). */
static int check_header(em_frame_decoder *d, em_err *err)
{
    if (memcmp(d->hdr, frame_magic, 4) != 0)
        return em_err_set(err, EM_EPROTO, "frame %llu: bad magic",
                          (unsigned long long)d->nframes);
    uint32_t len = em_load_le32(d->hdr + 4);
    if (len == 0 || len > d->cap)
        return em_err_set(err, EM_EPROTO, "frame %llu: body length %u outside 1..%u",
                          (unsigned long long)d->nframes, len, d->cap);
    d->head_len = 0;
    d->head_done = false;
    d->opened = 0;
    if (d->hdr[8] == EM_FRAME_PRESEALED) {
        if (!d->open)
            return em_err_set(err, EM_EPROTO, "frame %llu: a presealed frame on a plain link",
                              (unsigned long long)d->nframes);
        if (len - 1 < 4 + 1 + EM_AEAD_TAG_LEN)
            return em_err_set(err, EM_EPROTO, "presealed frame %llu: %u payload bytes are "
                              "shorter than its head", (unsigned long long)d->nframes, len - 1);
        d->body_len = len;
        return 0;
    }
    if (d->open && len - 1 < EM_AEAD_TAG_LEN)
        return em_err_set(err, EM_EPROTO, "sealed frame %llu: %u payload bytes are shorter "
                          "than its tag", (unsigned long long)d->nframes, len - 1);
    d->body_len = len;
    return d->open ? em_aead_begin(d->open, d->hdr, sizeof d->hdr, err) : 0;
}

/* Bytes of the payload that are ciphertext (the rest is the tag). */
static size_t sealed_len(const em_frame_decoder *d)
{
    return d->body_len - 1 - (d->open ? EM_AEAD_TAG_LEN : 0);
}

/* PRESEALED frame, `have` payload bytes at base: reads the head length (then begins, with
 * the frame header and that length as AAD), opens the head as it arrives and checks its
 * tag as soon as the tag is here. The tail is not touched. */
static int open_head(em_frame_decoder *d, uint8_t *base, size_t have, em_err *err)
{
    int rc;
    size_t pay = d->body_len - 1;
    if (d->head_done)
        return 0;
    if (!d->head_len) {
        if (have < 4)
            return 0;
        uint32_t h = em_load_le32(base);
        if (h == 0 || h > EM_PRESEALED_HEAD_MAX || (size_t)h + 4 + EM_AEAD_TAG_LEN > pay)
            return em_err_set(err, EM_EPROTO, "presealed frame %llu: head of %u bytes (1..%u, "
                              "within its %zu payload bytes)", (unsigned long long)d->nframes,
                              h, EM_PRESEALED_HEAD_MAX, pay);
        uint8_t aad[EM_FRAME_HEADER_SIZE + 4];
        memcpy(aad, d->hdr, EM_FRAME_HEADER_SIZE);
        memcpy(aad + EM_FRAME_HEADER_SIZE, base, 4);
        if ((rc = em_aead_begin(d->open, aad, sizeof aad, err)) < 0)
            return rc;
        d->head_len = h;
        d->opened = 4;
    }
    size_t m = 4 + (size_t)d->head_len;
    size_t end = have < m ? have : m;
    if (end > d->opened) {
        if ((rc = em_aead_update(d->open, base + d->opened, base + d->opened, end - d->opened,
                                 err)) < 0)
            return rc;
        d->opened = end;
    }
    if (have >= m + EM_AEAD_TAG_LEN) {
        if ((rc = em_aead_finish(d->open, base + m, err)) < 0)
            return rc;
        d->head_done = true;
    }
    return 0;
}

/* Decrypts, in place, the payload bytes [d->opened, have) that are ciphertext; base is the
 * payload's first byte. Called as bytes arrive, so each piece is decrypted while it is
 * still in cache. */
static int open_upto(em_frame_decoder *d, uint8_t *base, size_t have, em_err *err)
{
    if (d->open && d->hdr[8] == EM_FRAME_PRESEALED)
        return open_head(d, base, have, err);
    size_t m = sealed_len(d);
    size_t end = have < m ? have : m;
    if (!d->open || end <= d->opened)
        return 0;
    int rc = em_aead_update(d->open, base + d->opened, base + d->opened, end - d->opened, err);
    d->opened = end;
    return rc;
}

/* The whole payload (have == body_len - 1 bytes at base) is here: checks the tag of a
 * sealed frame, then hands the plaintext to fn. A PRESEALED frame goes out as DATA: its
 * head moved next to its tail (over the length and the tag). */
static int deliver(em_frame_decoder *d, uint8_t *base, em_frame_fn fn, void *ud, em_err *err)
{
    uint8_t type = d->hdr[8];
    size_t m = sealed_len(d);
    int rc;
    if (d->open && type == EM_FRAME_PRESEALED) {
        size_t pay = d->body_len - 1;
        if ((rc = open_head(d, base, pay, err)) < 0)
            return rc;
        size_t skip = 4 + EM_AEAD_TAG_LEN;
        memmove(base + skip, base + 4, d->head_len);
        base += skip;
        m = pay - skip;
        type = EM_FRAME_DATA;
        d->head_len = 0;
        d->head_done = false;
    } else if (d->open && ((rc = open_upto(d, base, m, err)) < 0 ||
                           (rc = em_aead_finish(d->open, base + m, err)) < 0)) {
        return rc;
    }
    d->nframes++;
    d->hdr_have = 0;
    d->body_len = 0;
    return fn(ud, type, em_slice_make(m ? base : NULL, m), err);
}

size_t em_frame_decoder_room(em_frame_decoder *d, size_t min, uint8_t **where)
{
    if (d->poisoned || d->hdr_have < EM_FRAME_HEADER_SIZE || d->body_len <= 1)
        return 0;
    size_t want = d->body_len - 1 - d->body.len;
    if (want < min || em_vbuf_reserve(&d->body, want) < 0)
        return 0;
    *where = d->body.data + d->body.len;
    return want;
}

int em_frame_decoder_feed(em_frame_decoder *d, const uint8_t *p, size_t n, em_frame_fn fn,
                          void *ud, em_err *err)
{
    if (d->poisoned)
        return em_err_copy(err, &d->first_err);
    /* Bytes a read put where em_frame_decoder_room said: they are the body's next bytes,
     * already in place (no copy). */
    if (n > 0 && d->body.data && p == d->body.data + d->body.len && d->body_len > 1 &&
        d->hdr_have == EM_FRAME_HEADER_SIZE) {
        size_t want = d->body_len - 1 - d->body.len;
        if (n > want) {
            em_err_set(err, EM_EINVAL, "frame %llu: %zu bytes placed where %zu fit",
                       (unsigned long long)d->nframes, n, want);
            return poison(d, err);
        }
        d->body.len += n;
        int rc = d->body.len == d->body_len - 1
                     ? deliver(d, d->body.data, fn, ud, err)
                     : open_upto(d, d->body.data, d->body.len, err);
        return rc < 0 ? poison(d, err) : 0;
    }
    while (n > 0) {
        if (d->hdr_have < EM_FRAME_HEADER_SIZE) {
            size_t take = EM_FRAME_HEADER_SIZE - d->hdr_have;
            if (take > n)
                take = n;
            memcpy(d->hdr + d->hdr_have, p, take);
            d->hdr_have += (uint32_t)take;
            p += take;
            n -= take;
            if (d->hdr_have < EM_FRAME_HEADER_SIZE)
                break;
            if (check_header(d, err) < 0)
                return poison(d, err);
            em_vbuf_clear(&d->body);
            if (d->body_len == 1 && deliver(d, NULL, fn, ud, err) < 0)   /* type byte only */
                return poison(d, err);
            continue;
        }
        /* Body: bytes after the type byte (hdr[8]). */
        size_t want = d->body_len - 1 - d->body.len;
        if (d->body.len == 0 && n >= want) {
            /* Whole body in this read: no copy. A sealed one is opened in place: the
             * caller's read buffer is its own (net.h). */
            if (deliver(d, (uint8_t *)p, fn, ud, err) < 0)
                return poison(d, err);
            p += want;
            n -= want;
            continue;
        }
        size_t take = want < n ? want : n;
        if (em_vbuf_append(&d->body, p, take) < 0) {
            em_err_set(err, EM_ENOMEM, "frame %llu: out of memory for %u bytes",
                       (unsigned long long)d->nframes, d->body_len);
            return poison(d, err);
        }
        p += take;
        n -= take;
        int rc = d->body.len == d->body_len - 1 ? deliver(d, d->body.data, fn, ud, err)
                                                 : open_upto(d, d->body.data, d->body.len, err);
        if (rc < 0)
            return poison(d, err);
    }
    return 0;
}
