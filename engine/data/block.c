/* engine/data/block.c - the block: a batch payload behind a checksummed header, optionally
 * zstd-compressed. The unit of every byte that leaves memory (spills, shuffle files, cached
 * partitions on disk, the wire). FORMAT: engine/data/data.h and docs/data-format.md.
 *
 * Decoding trusts nothing: the header checksum is verified before any header field is used,
 * the stored-bytes checksum before decompression, the decompressed size against the header
 * (and never more than the header's raw size is allocated), then the records are validated.
 * THREADS: any thread (no shared state). */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_decompressBound */
#include <string.h>
#include <zstd.h>

#include "engine/data/data.h"

#define BLOCK_VERSION 1
static const uint8_t g_magic[4] = {'E', 'M', 'B', 'K'};

/* The header fields after checksum and consistency checks. */
typedef struct block_header {
    em_rec_kind kind;
    em_codec codec;
    uint32_t width;
    uint64_t nrecs;
    uint64_t raw;
    uint64_t stored;
    uint32_t payload_crc;
} block_header;

_Static_assert(EM_BLOCK_HEADER_SIZE == 44, "block header layout is pinned by the format");

int em_block_encode(const em_batch *b, em_codec codec, int level, em_vbuf *out, em_err *err)
{
    const uint8_t *raw = em_batch_payload(b);
    size_t n = em_batch_nbytes(b);
    size_t start = out->len;
    if ((uint64_t)n > EM_BLOCK_MAX_RAW)
        return em_err_set(err, EM_EINVAL, "block encode: payload of %zu bytes is over the limit",
                          n);
    if (codec != EM_CODEC_NONE && codec != EM_CODEC_ZSTD)
        return em_err_set(err, EM_EINVAL, "block encode: unknown codec %d", (int)codec);

    size_t bound = codec == EM_CODEC_ZSTD ? ZSTD_compressBound(n) : n;
    size_t room;
    if (!em_size_add(EM_BLOCK_HEADER_SIZE, bound > n ? bound : n, &room) ||
        em_vbuf_reserve(out, room) < 0)
        return em_err_set(err, EM_ENOMEM, "block encode: out of memory (%zu bytes)", n);
    uint8_t *h = out->data + start;
    uint8_t *body = h + EM_BLOCK_HEADER_SIZE;

    size_t stored = n;
    em_codec used = EM_CODEC_NONE;
    if (codec == EM_CODEC_ZSTD && n > 0) {
        size_t z = ZSTD_compress(body, bound, raw, n, level == 0 ? 1 : level);
        if (ZSTD_isError(z))
            return em_err_set(err, EM_EIO, "block encode: zstd: %s", ZSTD_getErrorName(z));
        /* Keep the compressed form only when it shrinks the payload, and only within the
         * bounds every network reader enforces (em_block_decode_net): a block over
         * EM_BLOCK_NET_RATIO_FREE that compresses more than EM_BLOCK_NET_MAX_RATIO times
         * (a 50 MiB record of one repeated byte) would be refused as a bomb, so it is stored
         * raw instead: rare, and correct wherever it goes. */
        bool bomb_like = (uint64_t)n > EM_BLOCK_NET_RATIO_FREE &&
                         (uint64_t)n / EM_BLOCK_NET_MAX_RATIO > (uint64_t)z;
        if (z < n && !bomb_like) {
            stored = z;
            used = EM_CODEC_ZSTD;
        }
    }
    if (used == EM_CODEC_NONE && n > 0)
        memcpy(body, raw, n);

    memcpy(h, g_magic, 4);
    h[4] = BLOCK_VERSION;
    h[5] = (uint8_t)em_batch_kind(b);
    h[6] = (uint8_t)used;
    h[7] = 0;
    em_store_le32(h + 8, em_batch_width(b));
    em_store_le64(h + 12, em_batch_nrecs(b));
    em_store_le64(h + 20, (uint64_t)n);
    em_store_le64(h + 28, (uint64_t)stored);
    em_store_le32(h + 36, em_crc32c(0, body, stored));
    em_store_le32(h + 40, em_crc32c(0, h, 40));
    out->len = start + EM_BLOCK_HEADER_SIZE + stored;
    return 0;
}

/* Smallest payload a batch of nrecs records of the kind can have (rejects absurd counts
 * before any allocation). */
static uint64_t min_payload(em_rec_kind kind, uint32_t width, uint64_t nrecs)
{
    uint64_t per = kind == EM_REC_KV ? 8 : kind == EM_REC_BYTES ? 4 : width;
    uint64_t m;
    return __builtin_mul_overflow(per, nrecs, &m) ? UINT64_MAX : m;
}

/* Checks magic, version and header checksum, then the consistency of the fields. */
static int parse_header(const uint8_t *p, size_t n, block_header *hd, em_err *err)
{
    if (n < EM_BLOCK_HEADER_SIZE)
        return em_err_set(err, EM_ECORRUPT, "truncated header (%zu of %d bytes)", n,
                          EM_BLOCK_HEADER_SIZE);
    if (memcmp(p, g_magic, 4) != 0)
        return em_err_set(err, EM_ECORRUPT, "bad magic 0x%08x", em_load_le32(p));
    if (p[4] != BLOCK_VERSION)
        return em_err_set(err, EM_ECORRUPT, "unsupported block version %u", p[4]);
    uint32_t want = em_load_le32(p + 40), got = em_crc32c(0, p, 40);
    if (want != got)
        return em_err_set(err, EM_ECORRUPT, "header checksum mismatch (stored 0x%08x, computed "
                          "0x%08x)", want, got);
    hd->kind = (em_rec_kind)p[5];
    hd->codec = (em_codec)p[6];
    hd->width = em_load_le32(p + 8);
    hd->nrecs = em_load_le64(p + 12);
    hd->raw = em_load_le64(p + 20);
    hd->stored = em_load_le64(p + 28);
    hd->payload_crc = em_load_le32(p + 36);
    if (hd->kind != EM_REC_BYTES && hd->kind != EM_REC_KV && hd->kind != EM_REC_FIXED)
        return em_err_set(err, EM_ECORRUPT, "unknown record kind %u", p[5]);
    if ((hd->kind == EM_REC_FIXED) != (hd->width != 0))
        return em_err_set(err, EM_ECORRUPT, "width %u does not fit record kind %u", hd->width,
                          p[5]);
    if (p[7] != 0)
        return em_err_set(err, EM_ECORRUPT, "reserved header byte is %u", p[7]);
    if (hd->raw > EM_BLOCK_MAX_RAW || hd->raw > SIZE_MAX - EM_BLOCK_HEADER_SIZE)
        return em_err_set(err, EM_ECORRUPT, "raw size %llu over the limit",
                          (unsigned long long)hd->raw);
    if (min_payload(hd->kind, hd->width, hd->nrecs) > hd->raw)
        return em_err_set(err, EM_ECORRUPT, "%llu records cannot fit in %llu bytes",
                          (unsigned long long)hd->nrecs, (unsigned long long)hd->raw);
    if (hd->codec == EM_CODEC_NONE) {
        if (hd->stored != hd->raw)
            return em_err_set(err, EM_ECORRUPT, "stored size %llu != raw size %llu without codec",
                              (unsigned long long)hd->stored, (unsigned long long)hd->raw);
    } else if (hd->codec == EM_CODEC_ZSTD) {
        if (hd->stored == 0 || hd->stored >= hd->raw)
            return em_err_set(err, EM_ECORRUPT, "zstd stored size %llu vs raw size %llu",
                              (unsigned long long)hd->stored, (unsigned long long)hd->raw);
    } else {
        return em_err_set(err, EM_ECORRUPT, "unknown codec %u", p[6]);
    }
    return 0;
}

int em_block_peek_size(const uint8_t *p, size_t n, size_t *block_size, em_err *err)
{
    block_header hd;
    int rc = parse_header(p, n, &hd, err);
    if (rc < 0)
        return rc;
    /* stored <= raw <= SIZE_MAX - header, so this cannot overflow. */
    *block_size = EM_BLOCK_HEADER_SIZE + (size_t)hd.stored;
    return 0;
}

/* Decompresses the stored bytes into exactly hd->raw bytes (*out, caller frees). Allocates
 * at most hd->raw bytes, and only after zstd's own bound from the frame (block count x block
 * size) shows the frame can really produce that much. */
static int zstd_payload(const block_header *hd, const uint8_t *src, uint8_t **out, em_err *err)
{
    size_t raw = (size_t)hd->raw, n = (size_t)hd->stored;
    unsigned long long fsize = ZSTD_getFrameContentSize(src, n);
    if (fsize == ZSTD_CONTENTSIZE_ERROR || (fsize != ZSTD_CONTENTSIZE_UNKNOWN && fsize != raw))
        return em_err_set(err, EM_ECORRUPT, "zstd frame size does not match raw size %zu", raw);
    unsigned long long bound = ZSTD_decompressBound(src, n);
    if (bound == ZSTD_CONTENTSIZE_ERROR || bound < raw)
        return em_err_set(err, EM_ECORRUPT, "zstd frame cannot produce raw size %zu", raw);
    uint8_t *dst = em_malloc_aligned(EM_BATCH_ALIGN, raw);   /* adopted as is (batch.c) */
    if (!dst)
        return em_err_set(err, EM_ENOMEM, "out of memory decompressing %zu bytes", raw);
    size_t got = ZSTD_decompress(dst, raw, src, n);
    if (ZSTD_isError(got) || got != raw) {
        em_free(dst);
        return em_err_set(err, EM_ECORRUPT, "zstd: %s",
                          ZSTD_isError(got) ? ZSTD_getErrorName(got) : "decoded size differs");
    }
    *out = dst;
    return 0;
}

/* The network bounds (data.h) on a parsed header. */
static int check_net(const block_header *hd, em_err *err)
{
    if (hd->raw > EM_BLOCK_NET_MAX_RAW)
        return em_err_set(err, EM_ECORRUPT, "raw size %llu over the network cap (%llu)",
                          (unsigned long long)hd->raw,
                          (unsigned long long)EM_BLOCK_NET_MAX_RAW);
    if (hd->codec == EM_CODEC_ZSTD && hd->raw > EM_BLOCK_NET_RATIO_FREE &&
        hd->raw / EM_BLOCK_NET_MAX_RATIO > hd->stored)
        return em_err_set(err, EM_ECORRUPT,
                          "raw size %llu is over %u times the stored size %llu (a "
                          "decompression bomb?)",
                          (unsigned long long)hd->raw, EM_BLOCK_NET_MAX_RATIO,
                          (unsigned long long)hd->stored);
    return 0;
}

static int decode(const uint8_t *p, size_t n, bool net, em_batch **out, em_err *err)
{
    block_header hd;
    int rc = parse_header(p, n, &hd, err);
    if (rc == 0 && net)
        rc = check_net(&hd, err);
    if (rc < 0)
        return rc;
    if (hd.stored != (uint64_t)(n - EM_BLOCK_HEADER_SIZE))
        return em_err_set(err, EM_ECORRUPT, "block is %zu bytes, header says %llu", n,
                          (unsigned long long)(EM_BLOCK_HEADER_SIZE + hd.stored));
    const uint8_t *body = p + EM_BLOCK_HEADER_SIZE;
    uint32_t crc = em_crc32c(0, body, (size_t)hd.stored);
    if (crc != hd.payload_crc)
        return em_err_set(err, EM_ECORRUPT,
                          "payload checksum mismatch (stored 0x%08x, computed 0x%08x)",
                          hd.payload_crc, crc);
    em_batch *b;
    if (hd.codec == EM_CODEC_ZSTD) {
        uint8_t *raw = NULL;
        rc = zstd_payload(&hd, body, &raw, err);
        if (rc < 0)
            return rc;
        rc = em_batch_validate(hd.kind, hd.width, hd.nrecs, raw, (size_t)hd.raw, err);
        if (rc < 0) {
            em_free(raw);
            return rc;
        }
        b = em_batch_new_take(hd.kind, hd.width, hd.nrecs, raw, (size_t)hd.raw);
    } else {
        rc = em_batch_validate(hd.kind, hd.width, hd.nrecs, body, (size_t)hd.raw, err);
        if (rc < 0)
            return rc;
        b = em_batch_new_copy(hd.kind, hd.width, hd.nrecs, body, (size_t)hd.raw);
    }
    if (!b)
        return em_err_set(err, EM_ENOMEM, "out of memory for a batch of %llu bytes",
                          (unsigned long long)hd.raw);
    *out = b;
    return 0;
}

int em_block_decode(const uint8_t *p, size_t n, em_batch **out, em_err *err)
{
    return decode(p, n, false, out, err);
}

int em_block_decode_net(const uint8_t *p, size_t n, em_batch **out, em_err *err)
{
    return decode(p, n, true, out, err);
}

int em_block_peek_size_net(const uint8_t *p, size_t n, size_t *block_size, em_err *err)
{
    block_header hd;
    int rc = parse_header(p, n, &hd, err);
    if (rc == 0)
        rc = check_net(&hd, err);
    if (rc < 0)
        return rc;
    *block_size = EM_BLOCK_HEADER_SIZE + (size_t)hd.stored;
    return 0;
}

static int decode_each(const uint8_t *p, size_t n, bool net,
                       int (*fn)(void *ud, em_batch *b, em_err *err), void *ud, em_err *err)
{
    size_t off = 0;
    while (off < n) {
        size_t size;
        int rc = em_block_peek_size(p + off, n - off, &size, err);
        if (rc == 0 && size > n - off)
            rc = em_err_set(err, EM_ECORRUPT, "truncated: needs %zu bytes, %zu left", size,
                            n - off);
        em_batch *b = NULL;
        if (rc == 0)
            rc = decode(p + off, size, net, &b, err);
        if (rc < 0)
            return em_err_prefix(err, "block at offset %zu", off);
        rc = fn(ud, b, err);
        if (rc != 0)
            return rc;
        off += size;
    }
    return 0;
}

int em_blocks_decode_each(const uint8_t *p, size_t n,
                          int (*fn)(void *ud, em_batch *b, em_err *err), void *ud, em_err *err)
{
    return decode_each(p, n, false, fn, ud, err);
}

int em_blocks_decode_each_net(const uint8_t *p, size_t n,
                              int (*fn)(void *ud, em_batch *b, em_err *err), void *ud,
                              em_err *err)
{
    return decode_each(p, n, true, fn, ud, err);
}
