/* tests/unit/exec/test_taskmem.c - a task with em_exec_env.mem set takes its budget from
 * the memory manager (evicting cached blocks above the storage floor) and gives it back. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/exec/exec.h"

#define MIB ((size_t)1 << 20)

static em_batch *batch_of(size_t bytes)
{
    em_batch_builder bb;
    em_err err = EM_ERR_INIT;
    uint8_t *v = calloc(1, bytes);
    em_batch_builder_init(&bb, EM_REC_BYTES, 0);
    em_rec r = {.val = em_slice_make(v, bytes - 4)};   /* + 4-byte length = bytes */
    cr_assert_eq(em_batch_builder_add(&bb, &r, &err), 0);
    em_batch *b = em_batch_builder_finish(&bb, &err);
    em_batch_builder_destroy(&bb);
    free(v);
    cr_assert_eq(em_batch_nbytes(b), bytes);
    return b;
}

Test(taskmem, task_budget_comes_from_the_manager, .timeout = 30)
{
    char dir[] = "/tmp/ember-taskmem-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    em_memory_manager *mm = em_memory_manager_new(4 * MIB, 0.25);   /* floor 1 MiB */
    em_store_opts o = {.dir = dir, .mm = mm};
    em_err err = EM_ERR_INIT;
    em_block_store *bs = em_block_store_new(&o, &err);
    cr_assert_not_null(bs, "%s", err.msg);
    for (uint32_t i = 0; i < 4; i++) {
        em_batch *b = batch_of(MIB);
        em_block_id id = {EM_BLOCK_RDD, 9, i, 0};
        cr_assert_eq(em_block_store_put_take(bs, id, &b, 1, EM_STORAGE_MEMORY_ONLY, &err), 0);
    }
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *n = em_plan_node_new(g, EM_OP_RANGE);
    n->range_start = 0;
    n->range_end = 1000;
    n->range_step = 1;
    n->nparts = 1;
    n->width = 8;
    em_result_spec spec = {.op = EM_RESULT_COUNT};
    char *json = em_stage_encode(n, false, &spec, &err);
    cr_assert_not_null(json, "%s", err.msg);
    em_exec_env env = {.store = bs, .shuffle_dir = dir, .spill_dir = dir, .exec_id = "t",
                       .task_mem_budget = 2 * MIB, .zstd_level = 1, .mem = mm};
    em_task_result res;
    cr_assert_eq(em_exec_run_task(&env, json, strlen(json), 0, 0, &res, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(res.count, 1000);
    em_memory_stats st;
    em_memory_stats_get(mm, &st);
    cr_assert_eq(st.execution_used, 0, "released at the end of the task");
    cr_assert_eq(st.storage_evicted_bytes, 2 * MIB, "the task evicted two cached blocks");
    cr_assert_eq(st.storage_used, 2 * MIB);
    em_task_result_destroy(&res);
    em_free(json);
    em_plan_graph_free(g);
    em_block_store_free(bs);
    em_memory_manager_free(mm);
    rmdir(dir);
}
