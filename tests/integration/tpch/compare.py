#!/usr/bin/env python3
"""tests/integration/tpch/compare.py - runs TPC-H queries in `ember sql --format csv` and in
sqlite3 (Python's sqlite3 module) on the same generated files and compares the answers row
by row: integers and text exactly, doubles within a relative tolerance of 1e-9.

usage: compare.py EMBER DATA_DIR QUERY.sql...

DATA_DIR is the output of `ember gen tpch` (schema.sql and the .tbl files). sqlite3 gets the
same column types (DOUBLE columns have REAL affinity, DATE columns keep their text), the
files loaded with the delimiter schema.sql names, and indexes on the keys. Each query file
is translated to sqlite3's dialect first: DATE 'YYYY-MM-DD' becomes the text
'YYYY-MM-DD' (sqlite3 keeps dates as ISO text, which compares in date order) and
EXTRACT(YEAR FROM x) becomes CAST(strftime('%Y', x) AS INTEGER).

ember runs once over schema.sql and all the queries, a marker query before each, so the
CSV stream splits into one result per query. Exit 0 when every query matches, 1 otherwise
(each difference printed). A query whose answer is empty or all NULL
fails too: comparing nothing with nothing proves nothing."""
import csv
import io
import math
import os
import re
import sqlite3
import subprocess
import sys

MARK = "ember-tpch-query-"
INDEXES = [
    ("region", "r_regionkey"), ("nation", "n_nationkey"), ("supplier", "s_suppkey"),
    ("customer", "c_custkey"), ("part", "p_partkey"), ("partsupp", "ps_partkey, ps_suppkey"),
    ("orders", "o_orderkey"), ("orders", "o_custkey"), ("lineitem", "l_orderkey"),
]


def parse_schema(path):
    """[(table, column list, file, delimiter)] from schema.sql's CREATE TABLE statements."""
    text = open(path).read()
    pat = re.compile(r"CREATE TABLE (\w+) \((.*?)\)\s+USING csv OPTIONS \(path '((?:[^']|'')*)'"
                     r".*?delimiter '(.)'\);", re.S)
    return [(t, cols, p.replace("''", "'"), d) for t, cols, p, d in pat.findall(text)]


def load_sqlite(tables):
    db = sqlite3.connect(":memory:")
    for table, cols, path, delim in tables:
        db.execute(f"CREATE TABLE {table} ({cols})")
        ncols = cols.count(",") + 1
        with open(path, newline="") as f:
            rows = csv.reader(f, delimiter=delim, quoting=csv.QUOTE_NONE)
            db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * ncols)})", rows)
    for i, (table, cols) in enumerate(INDEXES):
        db.execute(f"CREATE INDEX tpch_i{i} ON {table} ({cols})")
    db.commit()
    return db


def to_sqlite(sql):
    sql = re.sub(r"\bDATE\s+'(\d{4}-\d{2}-\d{2})'", r"'\1'", sql, flags=re.I)
    return re.sub(r"\bEXTRACT\s*\(\s*YEAR\s+FROM\s+(\w+)\s*\)",
                  r"CAST(strftime('%Y', \1) AS INTEGER)", sql, flags=re.I)


def run_ember(ember, schema, queries):
    """{query index: [rows as lists of CSV fields]} from one `ember sql` run.

    With COMPARE_EMBER_TABLES=DIR every table is first converted to an ember table under DIR
    (CREATE TABLE ... USING ember AS SELECT), dropped and attached again from its files, so
    the queries read the columnar files; COMPARE_EMBER_ARGS adds `ember sql` options (e.g.
    --conf ember.sql.forceDistributed=true)."""
    script = open(schema).read()
    emdir = os.environ.get("COMPARE_EMBER_TABLES")
    if emdir:
        for t in re.findall(r"CREATE TABLE (\w+)", script):
            path = os.path.join(emdir, t).replace("'", "''")
            script += (f"\nCREATE TABLE em_{t} USING ember OPTIONS (path '{path}') AS SELECT * FROM {t};"
                       f"\nDROP TABLE {t};\nCREATE TABLE {t} USING ember OPTIONS (path '{path}');\n")
    for i, q in enumerate(queries):
        script += f"\nSELECT '{MARK}{i}' AS marker;\n" + q.rstrip().rstrip(";") + ";\n"
    extra = os.environ.get("COMPARE_EMBER_ARGS", "").split()
    p = subprocess.run([ember, "sql", "--format", "csv", "--no-timer", *extra], input=script,
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAIL: ember sql exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    results, cur = {}, None
    for rec in csv.reader(io.StringIO(p.stdout, newline="")):
        if len(rec) == 1 and rec[0].startswith(MARK):
            cur = int(rec[0][len(MARK):])
            results[cur] = []
        elif cur is not None and rec != ["marker"]:
            results[cur].append(rec)
    return results


def same(want, got):
    """want: a sqlite3 value; got: ember's CSV field."""
    if want is None:
        return got == ""
    if isinstance(want, int):
        return got == str(want)
    if isinstance(want, float):
        try:
            g = float(got)
        except ValueError:
            return False
        return math.isclose(want, g, rel_tol=1e-9, abs_tol=1e-9)
    return got == str(want)


def compare(name, cur, want, got):
    """Prints the differences of one query; returns their count."""
    header, rows = (got[0], got[1:]) if got else ([], [])
    names = [d[0] for d in cur.description]
    bad = 0
    if header != names:
        print(f"FAIL: {name}: columns {header}, sqlite3 has {names}")
        bad += 1
    if len(rows) != len(want):
        print(f"FAIL: {name}: {len(rows)} rows, sqlite3 has {len(want)}")
        bad += 1
    for i, (w, g) in enumerate(zip(want, rows)):
        g = g or [""]   # a one-column NULL is an empty CSV line
        if len(w) != len(g) or not all(same(a, b) for a, b in zip(w, g)):
            print(f"FAIL: {name}: row {i + 1}: ember {g}, sqlite3 {list(w)}")
            bad += 1
            if bad > 5:
                break
    return bad


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    ember, data, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    tables = parse_schema(f"{data}/schema.sql")
    if len(tables) != 8:
        sys.exit(f"FAIL: {data}/schema.sql: {len(tables)} CREATE TABLE statements, want 8")
    queries = [open(f).read() for f in files]
    got = run_ember(ember, f"{data}/schema.sql", queries)
    db = load_sqlite(tables)
    fails = 0
    for i, (f, q) in enumerate(zip(files, queries)):
        name = f.rsplit("/", 1)[-1]
        cur = db.execute(to_sqlite(q))
        want = cur.fetchall()
        if not any(v is not None for row in want for v in row):
            print(f"FAIL: {name}: the answer is empty or NULL on this data; the comparison "
                  f"would prove nothing (use a larger scale factor)")
            fails += 1
            continue
        if i not in got:
            print(f"FAIL: {name}: no result from ember")
            fails += 1
            continue
        n = compare(name, cur, want, got[i])
        fails += n > 0
        if n == 0:
            print(f"ok: {name}: {len(want)} row(s) match")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
