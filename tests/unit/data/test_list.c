/* tests/unit/data/test_list.c - list and pair encodings: round trips, exact bytes, and
 * malformed inputs (truncations, overlong items, trailing bytes, bad flags). */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/data/data.h"

Test(list, roundtrip_and_bytes)
{
    em_vbuf out;
    em_vbuf_init(&out);
    em_vbuf_append(&out, "XY", 2); /* a list may start mid-buffer */
    int64_t off = em_list_begin(&out);
    cr_assert_eq(off, 2);
    const char *items[] = {"alpha", "", "\xe2\x98\x83 snow"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(em_list_append(&out, em_slice_str(items[i])), 0);
    em_list_end(&out, off, 3);
    cr_assert_eq(out.len, 2 + 4 + 4 * 3 + 5 + 0 + 8);
    cr_assert_eq(em_load_le32(out.data + 2), 3);
    cr_assert_eq(em_load_le32(out.data + 6), 5);

    em_err err = EM_ERR_INIT;
    em_list_iter it;
    em_slice item;
    cr_assert_eq(em_list_iter_init(&it, em_slice_make(out.data + 2, out.len - 2), &err), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(em_list_iter_next(&it, &item, &err), 1);
        cr_assert(em_slice_eq(item, em_slice_str(items[i])));
    }
    cr_assert_eq(em_list_iter_next(&it, &item, &err), 0);
    cr_assert_eq(em_list_iter_next(&it, &item, &err), 0);
    em_vbuf_destroy(&out);
}

Test(list, empty_list)
{
    em_vbuf out;
    em_vbuf_init(&out);
    int64_t off = em_list_begin(&out);
    em_list_end(&out, off, 0);
    em_list_iter it;
    em_slice item;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_list_iter_init(&it, em_slice_make(out.data, out.len), &err), 0);
    cr_assert_eq(em_list_iter_next(&it, &item, &err), 0);
    em_vbuf_destroy(&out);
}

static int walk(const uint8_t *p, size_t n, int *items)
{
    em_err err = EM_ERR_INIT;
    em_list_iter it;
    em_slice item;
    int rc = em_list_iter_init(&it, em_slice_make(p, n), &err);
    *items = 0;
    while (rc == 0 && (rc = em_list_iter_next(&it, &item, &err)) == 1) {
        (*items)++;
        rc = 0;
    }
    return rc;
}

Test(list, malformed)
{
    em_vbuf out;
    em_vbuf_init(&out);
    int64_t off = em_list_begin(&out);
    em_list_append(&out, em_slice_str("abc"));
    em_list_append(&out, em_slice_str("defg"));
    em_list_end(&out, off, 2);
    int items;
    cr_assert_eq(walk(out.data, out.len, &items), 0);
    cr_assert_eq(items, 2);
    for (size_t n = 0; n < out.len; n++)
        cr_assert_eq(walk(out.data, n, &items), EM_ECORRUPT, "truncated to %zu", n);
    /* Count larger than the items present. */
    em_store_le32(out.data, 3);
    cr_assert_eq(walk(out.data, out.len, &items), EM_ECORRUPT);
    /* Count smaller: trailing bytes. */
    em_store_le32(out.data, 1);
    cr_assert_eq(walk(out.data, out.len, &items), EM_ECORRUPT);
    /* Overlong item length. */
    em_store_le32(out.data, 2);
    em_store_le32(out.data + 4, 0xfffffff0u);
    cr_assert_eq(walk(out.data, out.len, &items), EM_ECORRUPT);
    em_vbuf_destroy(&out);
}

Test(pair, roundtrip_all_presence_combinations)
{
    em_slice l = em_slice_str("left side"), r = em_slice_str("R");
    for (int mask = 0; mask < 4; mask++) {
        em_vbuf out;
        em_vbuf_init(&out);
        cr_assert_eq(em_pair_append(&out, mask & 1 ? &l : NULL, mask & 2 ? &r : NULL), 0);
        size_t want = 9 + (mask & 1 ? l.n : 0) + (mask & 2 ? r.n : 0);
        cr_assert_eq(out.len, want);
        cr_assert_eq(out.data[0], mask);
        em_slice gl, gr;
        bool hl, hr;
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_pair_decode(em_slice_make(out.data, out.len), &gl, &hl, &gr, &hr, &err),
                     0);
        cr_assert_eq(hl, (mask & 1) != 0);
        cr_assert_eq(hr, (mask & 2) != 0);
        cr_assert(em_slice_eq(gl, mask & 1 ? l : em_slice_make(NULL, 0)));
        cr_assert(em_slice_eq(gr, mask & 2 ? r : em_slice_make(NULL, 0)));
        em_vbuf_destroy(&out);
    }
    /* Present but empty differs from absent. */
    em_vbuf out;
    em_vbuf_init(&out);
    em_slice empty = em_slice_make("", 0);
    cr_assert_eq(em_pair_append(&out, &empty, NULL), 0);
    em_slice gl, gr;
    bool hl, hr;
    cr_assert_eq(em_pair_decode(em_slice_make(out.data, out.len), &gl, &hl, &gr, &hr, NULL), 0);
    cr_assert(hl && !hr && gl.n == 0);
    em_vbuf_destroy(&out);
}

Test(pair, malformed)
{
    em_vbuf out;
    em_vbuf_init(&out);
    em_slice l = em_slice_str("ab"), r = em_slice_str("cde");
    em_pair_append(&out, &l, &r);
    em_slice gl = {0}, gr = {0};
    bool hl = false, hr = false;
    em_err err = EM_ERR_INIT;
    for (size_t n = 0; n < out.len; n++)
        cr_assert_eq(em_pair_decode(em_slice_make(out.data, n), &gl, &hl, &gr, &hr, &err),
                     EM_ECORRUPT, "truncated to %zu", n);
    cr_assert_null(gl.p, "outputs untouched on error");
    em_vbuf_append(&out, "z", 1);
    cr_assert_eq(em_pair_decode(em_slice_make(out.data, out.len), &gl, &hl, &gr, &hr, &err),
                 EM_ECORRUPT);
    out.len--;
    out.data[0] = 0x07;
    cr_assert_eq(em_pair_decode(em_slice_make(out.data, out.len), &gl, &hl, &gr, &hr, &err),
                 EM_ECORRUPT);
    out.data[0] = 0x02; /* left absent but has length 2 */
    cr_assert_eq(em_pair_decode(em_slice_make(out.data, out.len), &gl, &hl, &gr, &hr, &err),
                 EM_ECORRUPT);
    out.data[0] = 0x03;
    em_store_le32(out.data + 1, 0xffffffffu);
    cr_assert_eq(em_pair_decode(em_slice_make(out.data, out.len), &gl, &hl, &gr, &hr, &err),
                 EM_ECORRUPT);
    em_vbuf_destroy(&out);
}

Test(list, append_oom_leaves_buffer)
{
    em_vbuf out;
    em_vbuf_init(&out);
    em_test_fail_alloc_after(0);
    cr_assert_eq(em_list_begin(&out), EM_ENOMEM);
    em_slice s = em_slice_str("x");
    cr_assert_eq(em_pair_append(&out, &s, NULL), EM_ENOMEM);
    em_test_alloc_reset();
    cr_assert_eq(out.len, 0);
    em_vbuf_destroy(&out);
}
