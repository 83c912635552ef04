/* sql/tpch.h - `ember gen tpch`: a generator of TPC-H-shaped tables as delimited files, so
 * SQL benchmarks and the comparisons with sqlite3 need no downloads (docs/sql-tpch.md).
 *
 * The eight tables of the TPC-H specification (region, nation, supplier, customer, part,
 * partsupp, orders, lineitem) with its keys, cardinalities (scale factor 1: 10,000
 * suppliers, 150,000 customers, 200,000 parts, 800,000 partsupp rows, 1,500,000 orders and
 * about 6,000,000 lineitems) and value distributions, written from the public
 * specification. It is not dbgen: text fields come from ember's own word lists and grammar,
 * and the random streams differ, so the data is TPC-H-shaped, not TPC-H's bytes; query
 * answers differ from the published ones.
 *
 * THREADS: em_sql_tpch_generate may be called from any thread; it runs its own worker
 * threads and returns when they have finished. The output depends only on the options'
 * scale factor, seed and delimiter, never on the number of threads. */
#ifndef EMBER_SQL_TPCH_H
#define EMBER_SQL_TPCH_H

#include <stdint.h>
#include <stdio.h>

#include "engine/base/base.h"

#define EM_SQL_TPCH_NTABLES 8
#define EM_SQL_TPCH_MIN_SF  0.001 /* 10 suppliers: partsupp needs at least 4 */
#define EM_SQL_TPCH_MAX_SF  1000.0

typedef struct em_sql_tpch_opts {
    double sf;            /* scale factor in [EM_SQL_TPCH_MIN_SF, EM_SQL_TPCH_MAX_SF] */
    uint64_t seed;        /* any value; the same seed gives the same bytes */
    char delim;           /* '|' or ','; 0 = '|' */
    uint32_t threads;     /* worker threads; 0 = the online CPUs, at most 8 */
    const char *out_dir;  /* created when missing (one level); borrowed during the call */
} em_sql_tpch_opts;

typedef struct em_sql_tpch_stats {
    uint64_t rows[EM_SQL_TPCH_NTABLES];  /* in the order of em_sql_tpch_table_name */
    uint64_t bytes;                      /* of all table files */
    double seconds;
} em_sql_tpch_stats;

/* Table i's name ("region", ..., "lineitem"), i < EM_SQL_TPCH_NTABLES; static storage. */
const char *em_sql_tpch_table_name(unsigned i);

/* Writes <out_dir>/<table>.tbl for the eight tables (header-less, one row per line, fields
 * separated by the delimiter, no quoting: no generated value holds the delimiter, a quote
 * or a line break) and <out_dir>/schema.sql, CREATE TABLE ... USING csv statements for
 * `ember sql` naming the files by absolute path. Every file is written under a temporary
 * name and renamed when complete; schema.sql comes last, so its presence means every table
 * is complete. On failure nothing new is left in out_dir (files replaced before the
 * failure stay replaced). Returns 0, EM_EINVAL (bad options), EM_EIO (naming the file and
 * the cause) or EM_ENOMEM. stats may be NULL. */
int em_sql_tpch_generate(const em_sql_tpch_opts *o, em_sql_tpch_stats *stats, em_err *err);

/* `ember gen tpch` (argv[0] = "tpch"): parses the options, generates, prints a summary on
 * stdout; returns the exit status (0, 1 failure, 2 usage error). Main thread. */
int em_sql_tpch_cli_main(int argc, char **argv);
void em_sql_tpch_cli_help(FILE *f);

#endif /* EMBER_SQL_TPCH_H */
