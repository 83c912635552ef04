/* sql/register.c - em_sql_register (sql/sql.h). SQL runs on the local path only today
 * (docs/sql.md), so it has no task functions to register; the distributed operators will
 * be listed here as a table, as mllib/register.c lists its modules. */
#include "sql/sql.h"
#include "sql/sql_ml.h"

int em_sql_register(void)
{
    return em_sql_ml_register();   /* the labeled-point bridge's tasks (sql/bridge_task.c) */
}
