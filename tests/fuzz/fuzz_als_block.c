/* tests/fuzz/fuzz_als_block.c - ALS's task functions on untrusted partition records: the
 * solve (em__als_fn_solve: factor messages, then a block record) and the training metrics
 * (em__als_fn_eval: a factor record, messages, a block record). Their records cross the
 * shuffle between executors (mllib/als/blocks.c FORMATS), so every length, count, pointer
 * and link in them is checked before use; this drives those checks.
 * Input: 8 header bytes, then records. Header: rank - 1 (mod 64), user blocks - 1 and item
 * blocks - 1 (mod 4), flags (bit 0: the item side, bit 1: implicit, bit 2: eval instead of
 * solve, bit 3: non-negative), u16 LE users - 1, u16 LE items - 1. A record: u8 key (0-3: the key
 * of that block of the side, modulo its blocks; 4-255: a key of that byte's block, out of
 * range), u16 LE value length, the value (cut at the end of the input). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/exec/exec_int.h"
#include "mllib/als/als_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    em__als_cfg cfg = {
        .magic = EM__ALS_MAGIC,
        .rank = 1u + data[0] % 64u,
        .nblk = {1u + data[1] % 4u, 1u + data[2] % 4u},
        .side = data[3] & 1u,
        .implicit = (data[3] >> 1) & 1u,
        .nonnegative = (data[3] >> 3) & 1u,
        .n = {1 + (int32_t)em_load_le16(data + 4), 1 + (int32_t)em_load_le16(data + 6)},
        .seed = 1,
        .lambda = 0.05,
        .alpha = 1.0,
    };
    bool eval = (data[3] >> 2) & 1u;
    if (eval)
        cfg.side = 0;   /* the metrics run over the user blocks */
    cfg.has_yty = cfg.implicit && !eval;
    uint32_t salts[2][4];
    for (int s = 0; s < 2; s++)
        for (uint32_t b = 0; b < cfg.nblk[s]; b++)
            salts[s][b] = em__als_find_salt(b, cfg.nblk[s]);
    const uint32_t *const salt[2] = {salts[0], salts[1]};
    double *yty = calloc((size_t)cfg.rank * cfg.rank, sizeof *yty);
    if (!yty)
        return 0;
    for (uint32_t i = 0; i < cfg.rank; i++)
        yty[i * cfg.rank + i] = 1.0;
    em_vbuf blob;
    em_vbuf_init(&blob);
    em_err err = EM_ERR_INIT;
    em_batch_builder bb;
    em_batch_builder_init(&bb, EM_REC_KV, 0);
    int rc = em__als_blob(&cfg, salt, yty, &blob);
    for (size_t at = 8; rc == 0 && at + 3 <= size;) {
        uint32_t b = data[at] < 4 ? data[at] % cfg.nblk[cfg.side] : data[at];
        size_t len = em_load_le16(data + at + 1);
        at += 3;
        len = len < size - at ? len : size - at;
        uint8_t key[EM__ALS_KEY_LEN];
        em__als_key(key, b, b < cfg.nblk[cfg.side] ? salt[cfg.side][b] : 0);
        rc = em_batch_builder_add_kv(&bb, em_slice_make(key, sizeof key),
                                     em_slice_make(data + at, len), &err);
        at += len;
    }
    em_batch *batch = rc == 0 ? em_batch_builder_finish(&bb, &err) : NULL;
    if (batch) {
        em_batch **arr = malloc(sizeof *arr);
        if (arr) {
            arr[0] = batch;
            em_iter *it = em__batches_iter_new(arr, 1);
            em_emitter out;
            em__emitter_init(&out);
            em_fn_ctx c = {em_slice_make(blob.data, blob.len), NULL};
            if (it)
                (void)(eval ? em__als_fn_eval : em__als_fn_solve)(&c, 0, it, &out, &err);
            em__iter_free(it);
            em__emitter_destroy(&out);
        } else {
            em_batch_unref(batch);
        }
    }
    em_batch_builder_destroy(&bb);
    em_vbuf_destroy(&blob);
    free(yty);
    return 0;
}
