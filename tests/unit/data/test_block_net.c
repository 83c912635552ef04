/* tests/unit/data/test_block_net.c - the network bounds of block decoding (data.h): a
 * decompression bomb (a 2 GiB zstd frame of zeros in a ~64 KiB block, well formed with
 * valid checksums: the driver would have taken it as a task result) is refused from its
 * header, and the process stays under 100 MiB above where it started; raw claims over the
 * network cap are refused; real blocks still decode. The same bomb inside a shuffle segment
 * that a peer serves (em_shuffle_read's remote path) fails the fetch the same way. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "engine/data/data.h"
#include "shuffle/shuffle.h"

/* Resident set size in KiB (VmRSS of /proc/self/status). */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* A well-formed FIXED-width block whose payload is `raw` zero bytes, zstd-compressed in a
 * stream (never holding the raw bytes). */
static void bomb(uint64_t raw, em_vbuf *out)
{
    ZSTD_CCtx *z = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setPledgedSrcSize(z, raw);
    static uint8_t zeros[1 << 20];
    size_t cap = 1 << 20;
    uint8_t *dst = em_xmalloc(cap);
    em_vbuf body;
    em_vbuf_init(&body);
    for (uint64_t left = raw;;) {
        size_t take = left < sizeof zeros ? (size_t)left : sizeof zeros;
        left -= take;
        ZSTD_inBuffer in = {zeros, take, 0};
        ZSTD_EndDirective mode = left ? ZSTD_e_continue : ZSTD_e_end;
        size_t rem;
        do {
            ZSTD_outBuffer o = {dst, cap, 0};
            rem = ZSTD_compressStream2(z, &o, &in, mode);
            cr_assert(!ZSTD_isError(rem));
            em_vbuf_append(&body, dst, o.pos);
        } while (mode == ZSTD_e_end ? rem != 0 : in.pos < in.size);
        if (!left)
            break;
    }
    ZSTD_freeCCtx(z);
    em_free(dst);
    uint8_t h[EM_BLOCK_HEADER_SIZE] = {'E', 'M', 'B', 'K', 1, EM_REC_FIXED, EM_CODEC_ZSTD, 0};
    em_store_le32(h + 8, 8);
    em_store_le64(h + 12, raw / 8);
    em_store_le64(h + 20, raw);
    em_store_le64(h + 28, body.len);
    em_store_le32(h + 36, em_crc32c(0, body.data, body.len));
    em_store_le32(h + 40, em_crc32c(0, h, 40));
    em_vbuf_clear(out);
    em_vbuf_append(out, h, sizeof h);
    em_vbuf_append(out, body.data, body.len);
    em_vbuf_destroy(&body);
}

Test(block_net, zstd_bomb_is_refused_without_allocating, .timeout = 120)
{
    em_vbuf v;
    em_vbuf_init(&v);
    bomb((uint64_t)2 << 30, &v);
    cr_assert_lt(v.len, 200u << 10, "the bomb is small: %zu bytes", v.len);
    long before = rss_kib();
    em_err err = EM_ERR_INIT;
    em_batch *b = NULL;
    cr_assert_eq(em_block_decode_net(v.data, v.len, &b, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "network cap") || strstr(err.msg, "bomb"), "%s", err.msg);
    size_t size;
    cr_assert_eq(em_block_peek_size_net(v.data, v.len, &size, &err), EM_ECORRUPT);
    cr_assert_eq(em_blocks_decode_each_net(v.data, v.len, NULL, NULL, &err), EM_ECORRUPT);
    long after = rss_kib();
    cr_assert_lt(after - before, 100 << 10, "RSS grew by %ld KiB", after - before);
    /* Under the 1 GiB cap but 1024:1 past 64 MiB: refused by the ratio. */
    bomb((uint64_t)512 << 20, &v);
    cr_assert_eq(em_block_decode_net(v.data, v.len, &b, &err), EM_ECORRUPT);
    cr_assert(strstr(err.msg, "bomb"), "%s", err.msg);
    cr_assert_lt(rss_kib() - before, 100 << 10);
    em_vbuf_destroy(&v);
}

Test(block_net, real_and_small_blocks_decode)
{
    em_vbuf v;
    em_vbuf_init(&v);
    bomb((uint64_t)16 << 20, &v);   /* 16 MiB of zeros: below the ratio-free size */
    em_err err = EM_ERR_INIT;
    em_batch *b = NULL;
    cr_assert_eq(em_block_decode_net(v.data, v.len, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(em_batch_nbytes(b), 16u << 20);
    em_batch_unref(b);
    em_vbuf_destroy(&v);
}

/* A fetcher that answers every fetch with the bytes of `self`: what a hostile peer
 * executor can put in a SEGMENT reply (its size agreeing with the map status it gave). */
static int serve_bytes(void *self, const char *loc, uint32_t sid, uint32_t mid,
                       uint32_t reduce, uint64_t size, em_vbuf *out, em_err *err)
{
    (void)loc, (void)sid, (void)mid, (void)reduce, (void)size;
    const em_vbuf *seg = self;
    return em_vbuf_append(out, seg->data, seg->len) < 0
               ? em_err_set(err, EM_ENOMEM, "out of memory")
               : 0;
}

static int count_batch(void *ud, em_batch *b, em_err *err)
{
    (void)err;
    (*(int *)ud)++;
    em_batch_unref(b);
    return 0;
}

Test(block_net, bomb_in_a_fetched_shuffle_segment_is_refused, .timeout = 120)
{
    em_vbuf seg, v;
    em_vbuf_init(&seg);
    em_vbuf_init(&v);
    bomb((uint64_t)1 << 20, &v);   /* a real 1 MiB block first: it is passed on */
    em_vbuf_append(&seg, v.data, v.len);
    bomb((uint64_t)2 << 30, &v);   /* then 2 GiB of zeros in ~64 KiB */
    em_vbuf_append(&seg, v.data, v.len);
    static const em_fetcher_ops ops = {serve_bytes};
    em_fetcher f = {&ops, &seg};
    em_shuffle_src src = {7, "127.0.0.1:1", seg.len};
    long before = rss_kib();
    em_err err = EM_ERR_INIT;
    int nb = 0;
    uint32_t failed = 0;
    cr_assert_eq(em_shuffle_read(&f, 3, 0, &src, 1, count_batch, &nb, &failed, &err),
                 EM_EFETCH, "%s", err.msg);
    cr_assert_eq(failed, 7);
    cr_assert_eq(nb, 1, "the real block before the bomb was passed on");
    cr_assert(strstr(err.msg, "network cap") || strstr(err.msg, "bomb"), "%s", err.msg);
    long after = rss_kib();
    cr_assert_lt(after - before, 100 << 10, "RSS grew by %ld KiB", after - before);
    em_vbuf_destroy(&v);
    em_vbuf_destroy(&seg);
}
