/* shuffle/index.c - index file of one map task's shuffle output, and the file names.
 *
 * FORMAT (little-endian)
 *   off   size          field
 *     0   4             magic "EMIX"
 *     4   4             version = 1
 *     8   4             shuffle id
 *    12   4             map id
 *    16   4             nparts (1..EM_SHUFFLE_MAX_PARTS)
 *    20   8*(nparts+1)  offsets into the .data file: offsets[0] = 0, non-decreasing,
 *                       offsets[nparts] = data file size; partition i is the byte range
 *                       [offsets[i], offsets[i+1]), a sequence of engine/data blocks
 *   end   4             crc32c of all preceding bytes
 *
 * WHY separate from the data file: a reducer reads two offsets to find its byte range and
 * fetches exactly that; nobody scans the data file. The index is committed after the data
 * file, so a reader that finds an index always finds the data it describes.
 *
 * The ids are inside the index so that a misplaced or renamed file is detected instead of
 * silently serving another map task's bytes. */
#include <stdio.h>
#include <string.h>

#include "shuffle/shuffle_int.h"

int em__shuffle_index_decode(const uint8_t *p, size_t n, em__shuffle_index *ix, em_err *err)
{
    uint32_t nparts, crc;

    if (n < EM__SHUFFLE_INDEX_SIZE(1))
        return em_err_set(err, EM_ECORRUPT, "index: %zu bytes, too short", n);
    if (memcmp(p, EM__SHUFFLE_INDEX_MAGIC, 4) != 0)
        return em_err_set(err, EM_ECORRUPT, "index: bad magic");
    if (em_load_le32(p + 4) != EM__SHUFFLE_INDEX_VERSION)
        return em_err_set(err, EM_ECORRUPT, "index: unknown version %u", em_load_le32(p + 4));
    nparts = em_load_le32(p + 16);
    if (nparts == 0 || nparts > EM_SHUFFLE_MAX_PARTS)
        return em_err_set(err, EM_ECORRUPT, "index: %u partitions (1..%u)", nparts,
                          EM_SHUFFLE_MAX_PARTS);
    if (n != EM__SHUFFLE_INDEX_SIZE(nparts))
        return em_err_set(err, EM_ECORRUPT, "index: %zu bytes, %u partitions need %zu", n,
                          nparts, (size_t)EM__SHUFFLE_INDEX_SIZE(nparts));
    crc = em_crc32c(0, p, n - 4);
    if (crc != em_load_le32(p + n - 4))
        return em_err_set(err, EM_ECORRUPT, "index: checksum mismatch (stored %08x, computed %08x)",
                          em_load_le32(p + n - 4), crc);
    const uint8_t *offs = p + 20;
    if (em_load_le64(offs) != 0)
        return em_err_set(err, EM_ECORRUPT, "index: offsets[0] is not 0");
    for (uint32_t i = 0; i < nparts; i++) {
        uint64_t a = em_load_le64(offs + 8 * (size_t)i);
        uint64_t b = em_load_le64(offs + 8 * (size_t)i + 8);
        if (b < a)
            return em_err_set(err, EM_ECORRUPT, "index: offsets[%u] = %llu < offsets[%u] = %llu",
                              i + 1, (unsigned long long)b, i, (unsigned long long)a);
    }
    ix->shuffle_id = em_load_le32(p + 8);
    ix->map_id = em_load_le32(p + 12);
    ix->nparts = nparts;
    ix->offs = offs;
    return 0;
}

int em__shuffle_index_encode(em_vbuf *out, uint32_t sid, uint32_t mid, uint32_t nparts,
                             const uint64_t *offs, em_err *err)
{
    size_t n = EM__SHUFFLE_INDEX_SIZE(nparts), start = out->len;
    uint8_t *p;

    if (em_vbuf_reserve(out, n) < 0)
        return em_err_set(err, EM_ENOMEM, "index: out of memory for %zu bytes", n);
    p = out->data + start;
    memcpy(p, EM__SHUFFLE_INDEX_MAGIC, 4);
    em_store_le32(p + 4, EM__SHUFFLE_INDEX_VERSION);
    em_store_le32(p + 8, sid);
    em_store_le32(p + 12, mid);
    em_store_le32(p + 16, nparts);
    for (uint32_t i = 0; i <= nparts; i++)
        em_store_le64(p + 20 + 8 * (size_t)i, offs[i]);
    em_store_le32(p + n - 4, em_crc32c(0, p, n - 4));
    out->len = start + n;
    return 0;
}

/* ---------------------------------------------------------------- file names */

const char *em_shuffle_data_path(const char *dir, uint32_t sid, uint32_t mid, char *buf,
                                 size_t n)
{
    snprintf(buf, n, "%s/shuffle_%u_%u.data", dir, sid, mid);
    return buf;
}

const char *em_shuffle_index_path(const char *dir, uint32_t sid, uint32_t mid, char *buf,
                                  size_t n)
{
    snprintf(buf, n, "%s/shuffle_%u_%u.index", dir, sid, mid);
    return buf;
}

/* Every file of shuffle sid starts with "shuffle_<sid>_": data, index, their temporary
 * names and the writers' spill files (cleaner.c matches the whole number, so shuffle 1
 * never matches 12). */
void em_shuffle_remove_files(const char *dir, uint32_t sid)
{
    em__shuffle_remove_many(dir, &sid, 1);
}
