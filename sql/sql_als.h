/* sql/sql_als.h - `ember als --sql`: a query's result as ALS ratings (the hook of
 * mllib/als/als.h em_als_cli_set_sql). docs/als.md "Ratings from SQL".
 *
 * The query's three columns are user, item and rating: ids INTEGER or TEXT (an INTEGER id
 * travels as its decimal text, so 7 and '7' are one id), the rating INTEGER, DOUBLE or
 * BOOLEAN. Each result row becomes one triple record (em_als_triple_encode) in the task
 * function "sql.als.triples" (registered by em_sql_als_register); the records are persisted
 * and counted once, so a NULL surfaces before training, as an error naming the row, or is
 * counted with skip_bad. */
#ifndef EMBER_SQL_SQL_ALS_H
#define EMBER_SQL_SQL_ALS_H

#include "mllib/als/als.h"

/* The ops `ember` installs with em_als_cli_set_sql. */
const em_als_sql_ops *em_sql_als_cli_ops(void);
/* Registers "sql.als.triples" (idempotent); every process, before contexts exist. */
int em_sql_als_register(void);

#endif /* EMBER_SQL_SQL_ALS_H */
