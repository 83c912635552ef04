/* engine/base/crc32c.c - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum
 * of every block and frame. Uses the SSE4.2 crc32 instruction when the CPU has it, else
 * slicing-by-8 tables (Kounavis & Berry, "A Systematic Approach to Building High Performance
 * Software-based CRC Generators", 2005).
 * THREADS: any thread. The tables and the CPU probe are built once under pthread_once. */
#include <pthread.h>
#include <string.h>

#include "engine/base/base.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <nmmintrin.h>
#define EM_CRC_HAVE_SSE42 1
#endif

#define CRC32C_POLY 0x82F63B78u

/* WHY three lanes: where the crc32 instruction has a latency of 3 cycles and a throughput
 * of one per cycle (Intel's cores since Nehalem), one chain of it runs at a third of its
 * speed. A buffer is taken LANE_BYTES x 3 at a time, the three lanes as independent chains;
 * the CRC is linear (the raw register of A || B is the register of A advanced over |B| zero
 * bytes, xor the register of B started from 0), so the three are joined by advancing over
 * LANE_BYTES zeros twice, which g_shift does with four table lookups. On the Zen 1 class
 * VMs we measure on the instruction is barely pipelined: 5.4-5.7 -> 6.2-6.6 GB/s (4 MiB and
 * 64 KiB buffers, docs/als.md, sixth round). */
#define LANE_BYTES 1024u

/* Filled once by crc_init() (pthread_once), read-only afterwards. g_shift[i][b]: the raw
 * register b << 8i advanced over LANE_BYTES zero bytes. */
static uint32_t g_tab[8][256];
static uint32_t g_shift[4][256];
static bool g_use_hw;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* The raw register c advanced over LANE_BYTES zero bytes (linear in c: four lookups). */
static inline uint32_t shift_lane(uint32_t c)
{
    return g_shift[0][c & 0xff] ^ g_shift[1][(c >> 8) & 0xff] ^ g_shift[2][(c >> 16) & 0xff] ^
           g_shift[3][c >> 24];
}

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
        g_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            g_tab[t][i] = (g_tab[t - 1][i] >> 8) ^ g_tab[0][g_tab[t - 1][i] & 0xff];
    uint32_t basis[32];   /* bit k of the register, advanced over LANE_BYTES zeros */
    for (int k = 0; k < 32; k++) {
        uint32_t c = 1u << k;
        for (uint32_t i = 0; i < LANE_BYTES; i++)
            c = (c >> 8) ^ g_tab[0][c & 0xff];
        basis[k] = c;
    }
    for (int i = 0; i < 4; i++)
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t c = 0;
            for (int j = 0; j < 8; j++)
                if (b >> j & 1)
                    c ^= basis[8 * i + j];
            g_shift[i][b] = c;
        }
#ifdef EM_CRC_HAVE_SSE42
    __builtin_cpu_init();
    g_use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

/* Slicing-by-8 on the pre/post-inverted state. Exported (em__) so tests can check both paths. */
uint32_t em__crc32c_sw(uint32_t crc, const void *p, size_t n);
uint32_t em__crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&g_once, crc_init);
    const uint8_t *s = p;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint32_t lo = c ^ em_load_le32(s);
        uint32_t hi = em_load_le32(s + 4);
        c = g_tab[7][lo & 0xff] ^ g_tab[6][(lo >> 8) & 0xff] ^ g_tab[5][(lo >> 16) & 0xff] ^
            g_tab[4][lo >> 24] ^ g_tab[3][hi & 0xff] ^ g_tab[2][(hi >> 8) & 0xff] ^
            g_tab[1][(hi >> 16) & 0xff] ^ g_tab[0][hi >> 24];
        s += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ g_tab[0][(c ^ *s++) & 0xff];
    return ~c;
}

#ifdef EM_CRC_HAVE_SSE42
/* Needs g_shift: called after crc_init (em_crc32c, or em__crc32c_hw_available in tests). */
uint32_t em__crc32c_hw(uint32_t crc, const void *p, size_t n);
__attribute__((target("sse4.2"))) uint32_t em__crc32c_hw(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t c = ~crc;
    for (; n >= 3 * LANE_BYTES; s += 3 * LANE_BYTES, n -= 3 * LANE_BYTES) {
        uint64_t b = 0, d = 0;
        for (size_t i = 0; i < LANE_BYTES; i += 8) {
            uint64_t w0, w1, w2;
            memcpy(&w0, s + i, 8);
            memcpy(&w1, s + LANE_BYTES + i, 8);
            memcpy(&w2, s + 2 * LANE_BYTES + i, 8);
            c = _mm_crc32_u64(c, w0);
            b = _mm_crc32_u64(b, w1);
            d = _mm_crc32_u64(d, w2);
        }
        c = shift_lane(shift_lane((uint32_t)c) ^ (uint32_t)b) ^ (uint32_t)d;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8); /* unaligned-safe; x86 is little-endian */
        c = _mm_crc32_u64(c, w);
        s += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = _mm_crc32_u8(c32, *s++);
    return ~c32;
}
#endif

/* Returns true when the hardware path is in use (tests skip it otherwise). */
bool em__crc32c_hw_available(void);
bool em__crc32c_hw_available(void)
{
    pthread_once(&g_once, crc_init);
    return g_use_hw;
}

uint32_t em_crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&g_once, crc_init);
#ifdef EM_CRC_HAVE_SSE42
    if (g_use_hw)
        return em__crc32c_hw(crc, p, n);
#endif
    return em__crc32c_sw(crc, p, n);
}
