/* tests/support/sql.h - running a script of SQL statements in a unit test. */
#ifndef EMBER_TESTS_SUPPORT_SQL_H
#define EMBER_TESTS_SUPPORT_SQL_H

#include "engine/ember.h"
#include "sql/sql.h"

/* Runs every statement of sql in s; when out is not NULL it holds, as text (cells followed
 * by '|', rows by '\n'), the rows of the last statement that returned columns. The first
 * failing statement's code, with d set; 0 when all ran. */
int em_test_sql_exec_all(em_sql_session *s, const char *sql, em_vbuf *out, em_sql_diag *d);

/* em_test_sql_exec_all that fails the calling test with the statement's error. */
void em_test_sql_run(em_sql_session *s, const char *sql, em_vbuf *out);

#endif
