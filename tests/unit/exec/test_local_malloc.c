/* tests/unit/exec/test_local_malloc.c - the local backend's allocator policy
 * (engine/exec/local.c, local_malloc_policy; docs/cluster.md "Memory reuse"): once a
 * local[2] context runs, a task's big buffer comes from the one malloc arena, never from a
 * fresh mmap that free would unmap, so the next task reuses its pages. Observed through
 * glibc's mallinfo2 (hblkhd: bytes in mmapped chunks) inside the task, not timing.
 * Skipped when a sanitizer replaces malloc (its allocator ignores mallopt). */
#include <malloc.h>

#include "../api/api_test_util.h"
#include "engine/plan/fn.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TLM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TLM_SANITIZED 1
#endif
#endif

int tlm_big(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

/* Allocates and touches 40 MiB (above glibc's 32 MiB cap of the dynamic mmap threshold,
 * so its default policy always mmaps it), frees it, and emits the growth of mmapped bytes
 * seen while it was held, as 8 bytes. */
int tlm_big(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    (void)in;
    size_t n = (size_t)40 << 20;
    size_t before = mallinfo2().hblkhd;
    volatile uint8_t *p = malloc(n);
    if (p == NULL)
        return em_err_set(err, EM_ENOMEM, "tlm_big: 40 MiB");
    for (size_t i = 0; i < n; i += 4096)
        p[i] = (uint8_t)i;
    size_t during = mallinfo2().hblkhd;
    free((void *)p);
    uint64_t grew = during > before ? during - before : 0;
    return em_emit_val(out, em_slice_make(&grew, 8), err);
}

Test(local_malloc, a_tasks_big_buffer_is_not_mmapped, .timeout = 120)
{
#ifdef TLM_SANITIZED
    cr_skip_test("a sanitizer's allocator replaces glibc's malloc");
#else
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_rdd *m = em_rdd_map(em_range(sc, 0, 8, 1, 8), "tlm_big", em_slice_make(NULL, 0));
    em_records rs = {0};
    cr_assert_eq(em_rdd_collect(m, &rs, &err), 0, "%s", err.msg);
    cr_assert_eq(rs.n, 8);
    for (size_t i = 0; i < rs.n; i++) {
        uint64_t grew;
        cr_assert_eq(rs.recs[i].val.n, 8);
        memcpy(&grew, rs.recs[i].val.p, 8);
        cr_assert_eq(grew, 0, "task %zu: its 40 MiB buffer was mmapped (%llu bytes)", i,
                     (unsigned long long)grew);
    }
    em_records_destroy(&rs);
    em_context_free(sc);
#endif
}

static const em_fn_entry test_fns[] = {
    {"tlm_big", EM_FN_MAP, EM_FN(tlm_big)},
};

__attribute__((constructor)) static void register_test_fns(void)
{
    if (em_fn_register_table(test_fns, sizeof test_fns / sizeof test_fns[0]) != 0)
        abort();
}
