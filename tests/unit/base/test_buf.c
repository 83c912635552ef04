/* tests/unit/base/test_buf.c - slices, vbuf growth and OOM behaviour, em_buf refcounts,
 * arena alignment and chunking, byte-order helpers. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/base/base.h"

Test(slice, cmp_and_eq)
{
    cr_assert_eq(em_slice_cmp(em_slice_str("abc"), em_slice_str("abd")), -1);
    cr_assert_eq(em_slice_cmp(em_slice_str("ab"), em_slice_str("abc")), -1);
    cr_assert_eq(em_slice_cmp(em_slice_str("abc"), em_slice_str("ab")), 1);
    cr_assert_eq(em_slice_cmp(em_slice_str(""), em_slice_str("")), 0);
    cr_assert_eq(em_slice_cmp(em_slice_make("\xff", 1), em_slice_make("\x01", 1)), 1);
    cr_assert(em_slice_eq(em_slice_str("xy"), em_slice_make("xyz", 2)));
    cr_assert(!em_slice_eq(em_slice_str("xy"), em_slice_str("xz")));
    cr_assert(em_slice_eq(em_slice_make(NULL, 0), em_slice_str("")));
}

Test(vbuf, growth_keeps_contents)
{
    em_vbuf b;
    em_vbuf_init(&b);
    cr_assert_null(b.data);
    size_t last_cap = 0;
    int grows = 0;
    for (uint32_t i = 0; i < 100000; i++) {
        cr_assert_eq(em_vbuf_append_u32le(&b, i), 0);
        cr_assert_leq(b.len, b.cap);
        if (b.cap != last_cap) {
            grows++;
            last_cap = b.cap;
        }
    }
    cr_assert_eq(b.len, 400000);
    cr_assert_lt(grows, 40, "growth must be geometric, saw %d reallocations", grows);
    for (uint32_t i = 0; i < 100000; i++)
        cr_assert_eq(em_load_le32(b.data + 4 * i), i);
    em_vbuf_destroy(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
}

Test(vbuf, oom_leaves_buffer_unchanged)
{
    em_vbuf b;
    em_vbuf_init(&b);
    cr_assert_eq(em_vbuf_append(&b, "abc", 3), 0);
    size_t cap = b.cap;
    em_test_fail_alloc_after(0);
    uint8_t big[1024] = {0};
    int rc = em_vbuf_append(&b, big, sizeof big);
    em_test_alloc_reset();
    cr_assert_eq(rc, EM_ENOMEM);
    cr_assert_eq(b.len, 3);
    cr_assert_eq(b.cap, cap);
    cr_assert(memcmp(b.data, "abc", 3) == 0);
    cr_assert_eq(em_vbuf_reserve(&b, SIZE_MAX), EM_ENOMEM);
    em_vbuf_destroy(&b);
}

Test(vbuf, printf_u64_steal)
{
    em_vbuf b;
    em_vbuf_init(&b);
    cr_assert_eq(em_vbuf_printf(&b, "%s=%d", "n", 42), 0);
    cr_assert_eq(em_vbuf_printf(&b, ";%s", "x"), 0);
    cr_assert_eq(b.len, 6);
    cr_assert_str_eq((char *)b.data, "n=42;x");
    cr_assert_eq(em_vbuf_append_u64le(&b, 0x0102030405060708ULL), 0);
    cr_assert_eq(b.data[6], 0x08);
    cr_assert_eq(b.data[13], 0x01);
    size_t len;
    uint8_t *p = em_vbuf_steal(&b, &len);
    cr_assert_eq(len, 14);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    em_free(p);
    em_vbuf_clear(&b);
    em_vbuf_destroy(&b);
}

Test(buf, refcount_and_copy)
{
    em_buf *b = em_buf_new_copy("hello", 5);
    cr_assert_not_null(b);
    cr_assert_eq(em_buf_len(b), 5);
    cr_assert(memcmp(em_buf_data(b), "hello", 5) == 0);
    cr_assert_eq(((uintptr_t)em_buf_data(b)) % 16, 0);
    cr_assert_eq(em_buf_ref(b), b);
    em_buf_unref(b);
    cr_assert(memcmp(em_buf_data(b), "hello", 5) == 0); /* still alive (ASan checks) */
    em_buf_unref(b);
    em_buf_unref(NULL);
}

Test(buf, take_and_oom)
{
    char *p = em_strdup("owned");
    em_buf *b = em_buf_new_take(p, 5);
    cr_assert_eq(em_buf_data(b), (uint8_t *)p);
    em_buf_unref(b); /* frees p too (leak checker would say otherwise) */

    p = em_strdup("owned");
    em_test_fail_alloc_after(0);
    b = em_buf_new_take(p, 5); /* frees p on failure */
    cr_assert_null(b);
    cr_assert_null(em_buf_new(10));
    em_test_alloc_reset();
    b = em_buf_new(0);
    cr_assert_not_null(b);
    cr_assert_eq(em_buf_len(b), 0);
    em_buf_unref(b);
}

Test(arena, alignment_and_big_chunks)
{
    em_arena a;
    em_arena_init(&a, 1024);
    uint8_t *prev = NULL;
    for (size_t i = 1; i < 200; i++) {
        uint8_t *p = em_arena_alloc(&a, i);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % 16, 0);
        memset(p, (int)i, i);
        if (prev)
            cr_assert_eq(prev[0], (uint8_t)(i - 1), "earlier allocation overwritten");
        prev = p;
    }
    size_t before = a.total;
    uint8_t *big = em_arena_alloc(&a, 100000);
    cr_assert_not_null(big);
    memset(big, 7, 100000);
    cr_assert_geq(a.total, before + 100000);
    /* The head keeps serving small allocations after a big one. */
    char *s = em_arena_memdup(&a, "xyz", 4);
    cr_assert_str_eq(s, "xyz");
    cr_assert_eq((uintptr_t)s % 16, 0);
    em_arena_reset(&a);
    cr_assert_eq(a.total, 0);
    cr_assert_null(a.head);
    cr_assert_not_null(em_arena_alloc(&a, 0));
    em_arena_destroy(&a);
}

Test(arena, oom_returns_null)
{
    em_arena a;
    em_arena_init(&a, 0);
    em_test_fail_alloc_after(0);
    cr_assert_null(em_arena_alloc(&a, 10));
    em_test_alloc_reset();
    cr_assert_null(em_arena_alloc(&a, SIZE_MAX - 4));
    em_arena_reset(&a);
}

Test(byteorder, roundtrips)
{
    uint8_t b[8];
    em_store_le64(b, 0x1122334455667788ULL);
    cr_assert_eq(b[0], 0x88);
    cr_assert_eq(em_load_le64(b), 0x1122334455667788ULL);
    em_store_be64(b, 0x1122334455667788ULL);
    cr_assert_eq(b[0], 0x11);
    cr_assert_eq(em_load_be64(b), 0x1122334455667788ULL);
    em_store_le16(b, 0xabcd);
    cr_assert_eq(em_load_le16(b), 0xabcd);
}
