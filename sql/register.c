/* sql/register.c - em_sql_register (sql/sql.h). SQL runs on the local path only today
 * (docs/sql.md), so it has no task functions to register; the distributed operators will
 * be listed here as a table, as mllib/register.c lists its modules. */
#include "sql/sql.h"

int em_sql_register(void)
{
    return 0;
}
