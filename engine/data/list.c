/* engine/data/list.c - lists of byte strings in one value, and pairs of optional byte
 * strings. FORMATS: engine/data/data.h and docs/data-format.md. Decoders take untrusted
 * bytes: every length is checked against what is left.
 * THREADS: any thread (no shared state). */
#include <string.h>

#include "engine/data/data.h"

int64_t em_list_begin(em_vbuf *out)
{
    int64_t off = (int64_t)out->len;
    if (em_vbuf_append_u32le(out, 0) < 0)
        return EM_ENOMEM;
    return off;
}

int em_list_append(em_vbuf *out, em_slice item)
{
    if (item.n > UINT32_MAX)
        return EM_EINVAL;
    if (em_vbuf_reserve(out, 4 + item.n) < 0)
        return EM_ENOMEM;
    em_vbuf_append_u32le(out, (uint32_t)item.n);
    em_vbuf_append(out, item.p, item.n);
    return 0;
}

void em_list_end(em_vbuf *out, int64_t off, uint32_t count)
{
    EM_ASSERT(off >= 0 && (uint64_t)off + 4 <= out->len);
    em_store_le32(out->data + off, count);
}

int em_list_iter_init(em_list_iter *it, em_slice list, em_err *err)
{
    if (list.n < 4)
        return em_err_set(err, EM_ECORRUPT, "list of %zu bytes has no count", list.n);
    it->left = em_load_le32(list.p);
    it->p = list.p + 4;
    it->end = list.p + list.n;
    return 0;
}

int em_list_iter_next(em_list_iter *it, em_slice *item, em_err *err)
{
    size_t rest = (size_t)(it->end - it->p);
    if (it->left == 0) {
        if (rest != 0)
            return em_err_set(err, EM_ECORRUPT, "list has %zu trailing bytes", rest);
        return 0;
    }
    if (rest < 4)
        return em_err_set(err, EM_ECORRUPT, "list item header truncated (%u items left)",
                          it->left);
    size_t len = em_load_le32(it->p);
    if (len > rest - 4)
        return em_err_set(err, EM_ECORRUPT, "list item of %zu bytes, %zu left", len, rest - 4);
    *item = em_slice_make(it->p + 4, len);
    it->p += 4 + len;
    it->left--;
    return 1;
}

int em_pair_append(em_vbuf *out, const em_slice *left, const em_slice *right)
{
    size_t ln = left ? left->n : 0, rn = right ? right->n : 0, total;
    if (ln > UINT32_MAX || rn > UINT32_MAX)
        return EM_EINVAL;
    if (!em_size_add(9 + ln, rn, &total) || em_vbuf_reserve(out, total) < 0)
        return EM_ENOMEM;
    uint8_t flags = (uint8_t)((left ? 1 : 0) | (right ? 2 : 0));
    em_vbuf_append(out, &flags, 1);
    em_vbuf_append_u32le(out, (uint32_t)ln);
    if (ln)
        em_vbuf_append(out, left->p, ln);
    em_vbuf_append_u32le(out, (uint32_t)rn);
    if (rn)
        em_vbuf_append(out, right->p, rn);
    return 0;
}

/* Reads "u32 len, bytes" at *off; advances *off. */
static int pair_side(em_slice pair, size_t *off, em_slice *side, const char *name, em_err *err)
{
    size_t rest = pair.n - *off;
    if (rest < 4)
        return em_err_set(err, EM_ECORRUPT, "pair: %s length truncated at offset %zu", name,
                          *off);
    size_t len = em_load_le32(pair.p + *off);
    if (len > rest - 4)
        return em_err_set(err, EM_ECORRUPT, "pair: %s of %zu bytes, %zu left", name, len,
                          rest - 4);
    *side = em_slice_make(pair.p + *off + 4, len);
    *off += 4 + len;
    return 0;
}

int em_pair_decode(em_slice pair, em_slice *left, bool *has_left, em_slice *right,
                   bool *has_right, em_err *err)
{
    if (pair.n < 1)
        return em_err_set(err, EM_ECORRUPT, "pair: empty");
    uint8_t flags = pair.p[0];
    if (flags & ~3u)
        return em_err_set(err, EM_ECORRUPT, "pair: bad flags 0x%02x", flags);
    size_t off = 1;
    em_slice l, r;
    int rc = pair_side(pair, &off, &l, "left", err);
    if (rc == 0)
        rc = pair_side(pair, &off, &r, "right", err);
    if (rc < 0)
        return rc;
    if (off != pair.n)
        return em_err_set(err, EM_ECORRUPT, "pair: %zu trailing bytes", pair.n - off);
    if ((!(flags & 1) && l.n) || (!(flags & 2) && r.n))
        return em_err_set(err, EM_ECORRUPT, "pair: absent side with non-zero length");
    *left = l;
    *right = r;
    *has_left = flags & 1;
    *has_right = (flags & 2) != 0;
    return 0;
}
