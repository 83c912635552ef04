/* sql/rowcodec.c - the typed row codec and the bytewise-sortable key encoding (formats in
 * sql/sql.h). Distributed stages will shuffle rows in this format; the local executor does
 * not need it. The decoder reads untrusted bytes: every length is checked against what is
 * left (tests/fuzz/fuzz_sql_row.c). */
#include <math.h>
#include <string.h>

#include "sql/sql_int.h"

int em_sql_row_encode(em_vbuf *out, const em_sql_value *vals, uint32_t ncols)
{
    int rc = 0;
    for (uint32_t i = 0; i < ncols && rc == 0; i++) {
        const em_sql_value *v = &vals[i];
        uint8_t tag = v->type, b;
        uint64_t bits;
        if ((rc = em_vbuf_append(out, &tag, 1)) < 0)
            return rc;
        switch (v->type) {
        case EM_SQL_NULL: break;
        case EM_SQL_BOOL:
            b = v->u.i != 0;
            rc = em_vbuf_append(out, &b, 1);
            break;
        case EM_SQL_INT: rc = em_vbuf_append_u64le(out, (uint64_t)v->u.i); break;
        case EM_SQL_DOUBLE:
            memcpy(&bits, &v->u.d, 8);
            rc = em_vbuf_append_u64le(out, bits);
            break;
        case EM_SQL_DATE: rc = em_vbuf_append_u32le(out, (uint32_t)(int32_t)v->u.i); break;
        case EM_SQL_TEXT:
            if ((rc = em_vbuf_append_u32le(out, v->len)) == 0)
                rc = em_vbuf_append(out, v->u.s, v->len);
            break;
        default: return EM_EINVAL;
        }
    }
    return rc;
}

int em_sql_row_decode(const uint8_t *p, size_t n, em_sql_value *vals, uint32_t ncols,
                      size_t *used, em_err *err)
{
    size_t off = 0;
    for (uint32_t i = 0; i < ncols; i++) {
        em_sql_value v = {0};
        if (off >= n)
            return em_err_set(err, EM_ECORRUPT, "sql row: truncated at byte %zu (column %u)",
                              off, i);
        size_t start = off;
        uint8_t tag = p[off++];
        size_t need = tag == EM_SQL_NULL ? 0 : tag == EM_SQL_BOOL ? 1
                      : tag == EM_SQL_INT || tag == EM_SQL_DOUBLE ? 8 : 4;
        if (tag > EM_SQL_TEXT)
            return em_err_set(err, EM_ECORRUPT, "sql row: bad type tag %u at byte %zu", tag,
                              start);
        if (n - off < need)
            return em_err_set(err, EM_ECORRUPT, "sql row: truncated value at byte %zu", start);
        v.type = tag;
        switch (tag) {
        case EM_SQL_BOOL:
            if (p[off] > 1)
                return em_err_set(err, EM_ECORRUPT, "sql row: bad boolean at byte %zu", off);
            v.u.i = p[off];
            break;
        case EM_SQL_INT: v.u.i = (int64_t)em_load_le64(p + off); break;
        case EM_SQL_DOUBLE: {
            uint64_t bits = em_load_le64(p + off);
            memcpy(&v.u.d, &bits, 8);
            break;
        }
        case EM_SQL_DATE: v.u.i = (int32_t)em_load_le32(p + off); break;
        case EM_SQL_TEXT: {
            uint32_t len = em_load_le32(p + off);
            if (len > EM_SQL_MAX_TEXT || n - off - 4 < len)
                return em_err_set(err, EM_ECORRUPT,
                                  "sql row: text of %u bytes at byte %zu exceeds the input", len,
                                  start);
            v.len = len;
            v.u.s = (const char *)p + off + 4;
            need += len;
            break;
        }
        default: break;
        }
        off += need;
        vals[i] = v;
    }
    *used = off;
    return 0;
}

static void put_be64(uint8_t *b, uint64_t x)
{
    for (int i = 7; i >= 0; i--, x >>= 8)
        b[i] = (uint8_t)x;
}

int em_sql_key_encode(em_vbuf *out, const em_sql_value *v, bool desc)
{
    uint8_t buf[17];
    size_t n = 0, start = out->len;
    int rc;
    switch (v->type) {
    case EM_SQL_NULL: buf[n++] = 0x01; break;
    case EM_SQL_BOOL:
    case EM_SQL_INT:
    case EM_SQL_DOUBLE: {
        double d = v->type == EM_SQL_DOUBLE ? v->u.d : (double)v->u.i;
        uint64_t bits;
        if (d == 0.0)
            d = 0.0; /* -0.0 sorts with 0.0 */
        if (isnan(d))
            d = -INFINITY; /* NaN: SQL NULL-like, sorts first among numbers */
        memcpy(&bits, &d, 8);
        bits = (bits >> 63) ? ~bits : bits | ((uint64_t)1 << 63);
        buf[n++] = 0x02;
        put_be64(buf + n, bits);
        n += 8;
        if (v->type != EM_SQL_DOUBLE) {
            /* the integer's distance from its double, so equal doubles still sort */
            int64_t rest = 0;
            if (d < 9223372036854775808.0 && d >= -9223372036854775808.0)
                rest = v->u.i - (int64_t)d;
            else
                rest = v->u.i < 0 ? v->u.i - INT64_MIN : v->u.i - INT64_MAX;
            put_be64(buf + n, (uint64_t)rest ^ ((uint64_t)1 << 63));
            n += 8;
        }
        break;
    }
    case EM_SQL_DATE: {
        uint32_t u = (uint32_t)(int32_t)v->u.i ^ 0x80000000u;
        buf[n++] = 0x03;
        for (int i = 3; i >= 0; i--, u >>= 8)
            buf[n + (size_t)i] = (uint8_t)u;
        n += 4;
        break;
    }
    case EM_SQL_TEXT:
        buf[n++] = 0x04;
        break;
    default: return EM_EINVAL;
    }
    if ((rc = em_vbuf_append(out, buf, n)) < 0)
        return rc;
    if (v->type == EM_SQL_TEXT) {
        static const uint8_t esc[2] = {0x00, 0xFF}, term[2] = {0x00, 0x00};
        for (uint32_t i = 0; i < v->len; i++) {
            rc = v->u.s[i] == '\0' ? em_vbuf_append(out, esc, 2) : em_vbuf_append(out, &v->u.s[i], 1);
            if (rc < 0)
                return rc;
        }
        if ((rc = em_vbuf_append(out, term, 2)) < 0)
            return rc;
    }
    if (desc)
        for (size_t i = start; i < out->len; i++)
            out->data[i] = (uint8_t)~out->data[i];
    return 0;
}
