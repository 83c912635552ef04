/* engine/api/backend.c - where the executor process meets the task runner: the runner
 * em_cluster's executor calls for each launched task (em_exec_run_task), and
 * em_executor_serve, which registers the engine's functions and runs the executor. */
#include <string.h>

#include "engine/api/api_int.h"
#include "engine/cluster/cluster.h"

static int exec_runner(void *ud, const em_cluster_env *ce, const char *json, size_t len,
                       uint32_t partition, uint32_t attempt, em_task_result *out)
{
    (void)ud;
    em_exec_env env = {
        .store = ce->store, .shuffle_dir = ce->shuffle_dir, .spill_dir = ce->spill_dir,
        .exec_id = ce->exec_id, .fetcher = ce->fetcher, .map_outputs = ce->map_outputs,
        .ud = ce->ud, .fetch_block = ce->fetch_block, .task_mem_budget = ce->task_mem_budget,
        .mem = ce->mem,
        .zstd_level = ce->zstd_level,
        .cancel = ce->cancel,
        .shuffle_sync = ce->shuffle_sync,
    };
    em_err err = EM_ERR_INIT;
    em_exec_run_task(&env, json, len, partition, attempt, out, &err);
    if (out->code == 0 && err.code != 0) {
        out->code = err.code;
        em_err_copy(&out->err, &err);
    }
    return out->code;
}

int em_executor_serve(struct em_executor_opts *o, em_err *err)
{
    em_registry_init_builtins();
    em__api_register_fns();
    o->run = exec_runner;
    o->run_ud = NULL;
    return em_executor_run(o, err);
}
