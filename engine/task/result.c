/* engine/task/result.c - ownership of a task result: destroy, take into a heap payload,
 * turn into a failure. */
#include <string.h>

#include "engine/task/task.h"

void em_task_result_destroy(em_task_result *r)
{
    if (!r)
        return;
    em_map_status_destroy(&r->map_status);
    for (size_t i = 0; i < r->nbatches; i++)
        em_batch_unref(r->batches[i]);
    em_free(r->batches);
    em_free(r->acc);
    memset(r, 0, sizeof *r);
}

em_task_result *em_task_result_take(em_task_result *r)
{
    em_task_result *p = em_xmalloc(sizeof *p);
    *p = *r;
    memset(r, 0, sizeof *r);
    return p;
}

void em_task_result_free(em_task_result *r)
{
    if (!r)
        return;
    em_task_result_destroy(r);
    em_free(r);
}

void em_task_result_fail(em_task_result *r, const em_err *err)
{
    char exec_id[sizeof r->exec_id];
    memcpy(exec_id, r->exec_id, sizeof exec_id);
    em_task_result_destroy(r);
    memcpy(r->exec_id, exec_id, sizeof exec_id);
    r->code = err->code ? err->code : EM_EIO;
    em_err_copy(&r->err, err);
}
