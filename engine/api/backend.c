/* engine/api/backend.c - em_executor_serve: registers the engine's task functions (the
 * built-ins and the API's own) and runs an executor process (engine/executor), which then
 * runs its tasks with engine/exec directly. */
#include "engine/api/api_int.h"
#include "engine/executor/executor.h"

int em_executor_serve(struct em_executor_opts *o, em_err *err)
{
    em_registry_init_builtins();
    em__api_register_fns();
    return em_executor_run(o, err);
}
