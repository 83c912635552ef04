/* sql/tpch_cli.c - `ember gen tpch`: options, help and the summary of sql/tpch.c's
 * generator. Messages go to stderr as "ember gen tpch: ..."; exit 2 on usage errors. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sql/tpch.h"

#define PREFIX "ember gen tpch"

void em_sql_tpch_cli_help(FILE *f)
{
    fprintf(f,
            "Usage: ember gen tpch --sf N --out DIR [--seed S] [--delimiter C] [--threads T]\n"
            "\n"
            "Writes the eight tables of a TPC-H-shaped database (region, nation, supplier,\n"
            "customer, part, partsupp, orders, lineitem) as DIR/<table>.tbl: header-less,\n"
            "one row per line, fields separated by the delimiter, never quoted. Keys,\n"
            "cardinalities and value distributions follow the TPC-H specification; text\n"
            "fields come from ember's own word lists (docs/sql-tpch.md). DIR/schema.sql\n"
            "holds CREATE TABLE ... USING csv statements for `ember sql` (absolute paths);\n"
            "it is written last. Every file is written under a temporary name and renamed\n"
            "when complete. The bytes depend on --sf, --seed and --delimiter only.\n"
            "\n"
            "  --sf N          scale factor, %g..%g (1: 6M lineitems, about 1 GiB)\n"
            "  --out DIR       output directory (created when missing)\n"
            "  --seed S        random seed, a non-negative integer (default 1)\n"
            "  --delimiter C   field delimiter, '|' (default) or ','\n"
            "  --threads T     generator threads, 1..64 (default: online CPUs, at most 8)\n"
            "  --help, -h      show this help\n"
            "\n"
            "Example:\n"
            "  ember gen tpch --sf 0.01 --out /tmp/tpch\n"
            "  (echo '.read /tmp/tpch/schema.sql'; echo 'SELECT count(*) FROM lineitem;') |\n"
            "      ember sql\n",
            EM_SQL_TPCH_MIN_SF, EM_SQL_TPCH_MAX_SF);
}

static int usage(const char *fmt, ...) EM_PRINTF(1, 2);
static int usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PREFIX ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'ember gen tpch --help'.\n");
    va_end(ap);
    return 2;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *v)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || x > max)
        return false;
    *v = x;
    return true;
}

/* One option and its value; returns -1 to go on, else the exit status. */
static int take(em_sql_tpch_opts *o, bool *have_sf, const char *opt, const char *v)
{
    uint64_t x;
    if (strcmp(opt, "--sf") == 0) {
        char *end;
        errno = 0;
        o->sf = strtod(v, &end);
        if (errno != 0 || end == v || *end != '\0' || !isfinite(o->sf) ||
            o->sf < EM_SQL_TPCH_MIN_SF || o->sf > EM_SQL_TPCH_MAX_SF)
            return usage("--sf: expected a number in [0.001, 1000], got '%s'", v);
        *have_sf = true;
    } else if (strcmp(opt, "--out") == 0) {
        if (*v == '\0')
            return usage("--out: expected a directory, got '%s'", v);
        o->out_dir = v;
    } else if (strcmp(opt, "--seed") == 0) {
        if (!parse_u64(v, UINT64_MAX, &o->seed))
            return usage("--seed: expected a non-negative integer, got '%s'", v);
    } else if (strcmp(opt, "--delimiter") == 0) {
        if (strcmp(v, "|") != 0 && strcmp(v, ",") != 0)
            return usage("--delimiter: expected '|' or ',', got '%s'", v);
        o->delim = v[0];
    } else if (strcmp(opt, "--threads") == 0) {
        if (!parse_u64(v, 64, &x) || x == 0)
            return usage("--threads: expected an integer in 1..64, got '%s'", v);
        o->threads = (uint32_t)x;
    } else
        return usage("unknown option '%s'", opt);
    return -1;
}

int em_sql_tpch_cli_main(int argc, char **argv)
{
    em_sql_tpch_opts o = {.seed = 1, .delim = '|'};
    bool have_sf = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        char opt[32];
        int rc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            em_sql_tpch_cli_help(stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0)
            return usage("unexpected argument '%s'", a);
        if (eq != NULL) {   /* --flag=value */
            size_t n = (size_t)(eq - a) < sizeof opt - 1 ? (size_t)(eq - a) : sizeof opt - 1;
            memcpy(opt, a, n);
            opt[n] = '\0';
            rc = take(&o, &have_sf, opt, eq + 1);
        } else if (i + 1 >= argc) {
            return usage("%s: missing value", a);
        } else
            rc = take(&o, &have_sf, a, argv[++i]);
        if (rc >= 0)
            return rc;
    }
    if (!have_sf)
        return usage("--sf is required");
    if (o.out_dir == NULL)
        return usage("--out is required");

    em_sql_tpch_stats st;
    em_err err = EM_ERR_INIT;
    if (em_sql_tpch_generate(&o, &st, &err) < 0) {
        fprintf(stderr, PREFIX ": %s\n", err.msg);
        return 1;
    }
    uint64_t rows = 0;
    for (unsigned t = 0; t < EM_SQL_TPCH_NTABLES; t++)
        rows += st.rows[t];
    printf("tpch sf %g: %llu rows (lineitem %llu, orders %llu), %.1f MiB in %s in %.2f s\n",
           o.sf, (unsigned long long)rows, (unsigned long long)st.rows[7],
           (unsigned long long)st.rows[6], (double)st.bytes / (1 << 20), o.out_dir, st.seconds);
    return 0;
}
