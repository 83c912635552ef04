/* tests/unit/base/test_loadn.c - em_load_le_n (engine/base/loadn.h): equals the bytes
 * assembled one by one for n = 0..8 at every offset of a 16-byte window, and never reads
 * past p + n into an unmapped page (keys put against a PROT_NONE guard page); em_hash64 of
 * such keys equals em_hash64 of the same bytes elsewhere. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/base/loadn.h"

static uint64_t by_bytes(const uint8_t *p, size_t n)
{
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    return w;
}

Test(loadn, equals_byte_assembly)
{
    uint8_t buf[32];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(0xa5 ^ (i * 37));
    for (size_t off = 0; off < 16; off++)
        for (size_t n = 0; n <= 8; n++)
            cr_assert_eq(em_load_le_n(buf + off, n), by_bytes(buf + off, n), "off %zu n %zu",
                         off, n);
}

Test(loadn, no_read_past_a_guard_page)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(m != MAP_FAILED);
    cr_assert_eq(mprotect(m + pg, pg, PROT_NONE), 0);
    for (size_t i = 0; i < pg; i++)
        m[i] = (uint8_t)(i * 131 + 7);
    for (size_t n = 0; n <= 8; n++) {
        /* the key's last byte is the page's last: one byte more would fault */
        const uint8_t *p = m + pg - n;
        uint8_t copy[16] = {0};
        memcpy(copy, p, n);
        cr_assert_eq(em_load_le_n(p, n), by_bytes(copy, n), "n %zu", n);
    }
    for (size_t n = 0; n <= 24; n++) {
        const uint8_t *p = m + pg - n;
        uint8_t copy[32];
        memcpy(copy, p, n);
        cr_assert_eq(em_hash64(p, n, 0), em_hash64(copy, n, 0), "hash of %zu bytes", n);
    }
    munmap(m, 2 * pg);
}
