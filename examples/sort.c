/* examples/sort.c - sorts lines by the bytes before their first tab (the whole line when it
 * has none), bytewise: `ember run-example sort [--master M] [--executor-memory SIZE] INPUT
 * OUTDIR`. The sort benchmark's shape (`ember gen records`: 10-byte key, tab, value).
 *
 * Plan: text_file -> key_by(sort_key_before_tab) -> sort_by_key (range partitioning by
 * sampled key bounds, then a sort of each partition: external, spilling sorted runs when
 * the task's memory budget is exceeded) -> values (the original line) -> save_as_text_file.
 * The output has as many partitions as the input has splits (Spark's sortByKey default), so
 * part-00000 < part-00001 < ... in key order, and _SUCCESS is written last.
 * stderr gets "sort: N records, spilled B bytes" (the context's spill counter), which the
 * tests use to check that the run really went out of core. */
#include <stdio.h>
#include <string.h>

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);
int sort_key_before_tab(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

/* The key of a line: the bytes before its first tab. */
int sort_key_before_tab(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    const uint8_t *tab = in->val.n ? memchr(in->val.p, '\t', in->val.n) : NULL;
    size_t k = tab ? (size_t)(tab - in->val.p) : in->val.n;
    return em_emit_val(out, em_slice_make(in->val.p, k), err);
}

int ember_main(em_context *sc, int argc, char **argv)
{
    em_err err = EM_ERR_INIT;
    const em_slice none = {NULL, 0};

    if (argc != 3) {
        fprintf(stderr, "usage: sort INPUT OUTDIR\n");
        return 2;
    }
    em_rdd *lines = em_text_file(sc, argv[1], 0);
    em_rdd *keyed = em_rdd_key_by(lines, "sort_key_before_tab", none);
    em_rdd *sorted = em_rdd_sort_by_key(keyed, true, em_rdd_num_partitions(lines));
    em_rdd *out = em_rdd_values(sorted);
    if (em_rdd_save_as_text_file(out, argv[2], &err) < 0) {
        fprintf(stderr, "ember: sort: %s\n", err.msg);
        return 1;
    }
    em_context_stats st;
    em_context_stats_get(sc, &st);
    fprintf(stderr, "sort: %u partitions, spilled %llu bytes\n", em_rdd_num_partitions(out),
            (unsigned long long)st.spill_bytes);
    return 0;
}
