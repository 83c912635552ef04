/* tests/unit/base/test_crc32c.c - CRC-32C against published vectors (RFC 3720 B.4) and a
 * bitwise reference, for both the table and the SSE4.2 paths. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/base/base.h"

uint32_t em__crc32c_sw(uint32_t crc, const void *p, size_t n);
bool em__crc32c_hw_available(void);
#if defined(__x86_64__)
uint32_t em__crc32c_hw(uint32_t crc, const void *p, size_t n);
#endif

/* The definition: reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF. */
static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

Test(crc32c, known_vectors)
{
    cr_assert_eq(em_crc32c(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(em__crc32c_sw(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(em_crc32c(0, "", 0), 0);
    uint8_t z[32] = {0}, f[32], inc[32];
    memset(f, 0xff, sizeof f);
    for (int i = 0; i < 32; i++)
        inc[i] = (uint8_t)i;
    cr_assert_eq(em_crc32c(0, z, 32), 0x8A9136AAu);
    cr_assert_eq(em_crc32c(0, f, 32), 0x62A8AB43u);
    cr_assert_eq(em_crc32c(0, inc, 32), 0x46DD794Eu);
}

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_against_bitwise(crc_fn fn)
{
    em_rng r;
    em_rng_seed(&r, 99);
    uint8_t buf[3 * 3 * 1024 + 200];   /* several three-lane stretches (crc32c.c) */
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)em_rng_next(&r);
    for (int trial = 0; trial < 300; trial++) {
        size_t off = em_rng_below(&r, 16);
        size_t n = em_rng_below(&r, sizeof buf - off);
        uint32_t want = crc_bitwise(0, buf + off, n);
        cr_assert_eq(fn(0, buf + off, n), want, "off %zu n %zu", off, n);
        /* Chaining: crc(a||b) == crc(crc(a), b). */
        size_t cut = n ? em_rng_below(&r, n) : 0;
        cr_assert_eq(fn(fn(0, buf + off, cut), buf + off + cut, n - cut), want);
    }
}

Test(crc32c, table_path_matches_definition)
{
    check_against_bitwise(em__crc32c_sw);
}

Test(crc32c, dispatch_matches_definition)
{
    check_against_bitwise(em_crc32c);
}

Test(crc32c, hw_path_matches_definition)
{
#if defined(__x86_64__)
    if (!em__crc32c_hw_available())
        cr_skip_test("no SSE4.2 on this CPU");
    check_against_bitwise(em__crc32c_hw);
#else
    cr_skip_test("not x86-64");
#endif
}
