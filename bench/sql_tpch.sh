#!/usr/bin/env bash
# bench/sql_tpch.sh [BUILD_DIR] - `make bench-sql` (issue 14), side by side in one sitting:
#
# 1. TPC-H Q1, Q3 and Q6 on `ember gen tpch --sf 1` data (SF=... to change; QUERIES="01 03
#    06" from tests/integration/tpch/), in `ember sql --master local[2]` and
#    `--master local-cluster[2,1]`, against the sqlite3 command on a database of the same
#    files with indexes on the keys (built once and kept under BUILD_DIR/bench/, as are
#    the generated files). In this first part each session reads the CSV
#    files of the tables the queries name (CREATE TABLE ... USING csv), then runs the
#    queries one after the other. A query's time is the "Time taken" ember prints for it
#    (wall, the query only); the load is reported apart. sqlite3's time is the wall time
#    of `sqlite3 DB < query` (measure.py), after its database file was read once into the
#    page cache. The answers of both are compared (numbers to a relative 1e-9).
#    Goal (issue 14): each query at least 3x faster in ember than in sqlite3, in both
#    masters (the summary divides by the slower of the two).
#    The same queries then run on ember tables (USING ember: columnar, zstd-compressed part
#    files with min/max per row group; docs/sql.md), converted once from the CSV files by
#    `CREATE TABLE t USING ember OPTIONS (path ...) AS SELECT * FROM csv_t` in
#    local-cluster[2,1] and kept under BUILD_DIR/bench/tpch-sf<N>-ember/ (as sqlite3's
#    database is); the conversion time is reported apart. sqlite3 queries its own loaded
#    database, so a loaded ember table is the like-for-like comparison; CSV is the
#    parse-every-time one. EMBER_TABLES=0 skips this part.
# 2. The sqllogictest core pack (../shared/sqllogictest/core-pack.tgz): total wall time of
#    `ember sql --slt` on every file against bench/sql_slt_sqlite.py, which does the same
#    work per record with Python's sqlite3 module (execute, render, sort, hash, compare)
#    on the same files and the same records (ember's selection: skipif records run,
#    onlyif records are skipped). The Python runner's own overhead counts on sqlite3's
#    side: read its time as an upper bound of sqlite3's.
#
# Every command runs under ../shared/tools/measure.py (wall, CPU, peak RSS, others_cpu_s:
# the CPU seconds other processes used meanwhile; near 0 means a quiet machine).
# SLT=0 skips part 2. Run time on a quiet 2-core machine: about 3 minutes (first run: + ~1 minute to generate
# SF 1 and build the sqlite3 database). Disk: ~1.1 GB of files + ~1.5 GB of database.
set -euo pipefail
source "$(dirname "$0")/common.bash"

sf=${SF:-1}
queries=${QUERIES:-01 03 06}
masters=("local[2]" "local-cluster[2,1]")
qdir=$root/tests/integration/tpch
# TPCH_DATA=DIR and TPCH_DB=FILE use data generated elsewhere (e.g. another build's
# bench/tpch-sf1 and tpch-sf1.sqlite) by path instead of generating it again: the
# schema.sql there may name other paths, so the tables are read from DIR/<table>.tbl.
data=${TPCH_DATA:-$benchdir/tpch-sf$sf}
db=${TPCH_DB:-$benchdir/tpch-sf$sf.sqlite}
work=$(mktemp -d "$benchdir/sql-tpch.XXXXXX")
# run_measured, keeping measure.py's line in $benchdir/LABEL.json for the summary
measured() {
    local label=$1
    run_measured "$@" | tee "$benchdir/$label.json"
    return "${PIPESTATUS[0]}"
}
trap 'rm -rf "$work"' EXIT

if ! command -v sqlite3 >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends sqlite3 >/dev/null
    else
        echo "bench: sqlite3 is missing; run: sudo apt-get install -y sqlite3" >&2
        exit 1
    fi
fi
"$ember" help sql >/dev/null 2>&1 || { echo "bench: ember was built without SQL" >&2; exit 1; }

# ---- data: generated once
if [ ! -f "$data/schema.sql" ]; then
    echo "== generating TPC-H-shaped data, scale $sf"
    run_measured tpch_gen "$ember" gen tpch --sf "$sf" --out "$data"
fi

# ---- sqlite3's database: the same files, indexes on the keys; built once
if [ ! -f "$db" ]; then
    echo "== loading $data into sqlite3 ($db)"
    /usr/bin/python3 - "$data/schema.sql" >"$work/load.sql" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
print("PRAGMA journal_mode = OFF;\nPRAGMA synchronous = OFF;\n.mode csv")
for t, cols, path, d in re.findall(r"CREATE TABLE (\w+) \((.*?)\)\s+USING csv OPTIONS "
                                   r"\(path '((?:[^']|'')*)'.*?delimiter '(.)'\);", text, re.S):
    print(f"CREATE TABLE {t} ({cols});\n.separator '{d}'\n.import '{path}' {t}")
for i, (t, c) in enumerate([("region", "r_regionkey"), ("nation", "n_nationkey"),
                            ("supplier", "s_suppkey"), ("customer", "c_custkey"),
                            ("part", "p_partkey"), ("partsupp", "ps_partkey, ps_suppkey"),
                            ("orders", "o_orderkey"), ("orders", "o_custkey"),
                            ("lineitem", "l_orderkey")]):
    print(f"CREATE INDEX tpch_i{i} ON {t} ({c});")
print("ANALYZE;")
PY
    rm -f "$db.tmp"
    run_measured sqlite_load bash -c "sqlite3 -bail '$db.tmp' <'$work/load.sql'"
    mv "$db.tmp" "$db"
fi

# ---- the queries: ember's script per master (schema of the tables named, then queries),
# sqlite3's translation (DATE 'x' -> 'x', as tests/integration/tpch/compare.py does)
tables=""
for q in $queries; do
    f=$qdir/q$q.sql
    [ -f "$f" ] || { echo "bench: $f not found" >&2; exit 1; }
    tables="$tables $(grep -o -w -E 'region|nation|supplier|customer|part|partsupp|orders|lineitem' "$f" | sort -u | tr '\n' ' ')"
    sed -E "s/DATE '([0-9-]{10})'/'\1'/g" "$f" >"$work/q$q.sqlite.sql"
done
tables=$(echo "$tables" | tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' '|')
/usr/bin/python3 - "$data/schema.sql" "${tables%|}" >"$work/ember.sql" <<'PY'
import os, re, sys
text, keep = open(sys.argv[1]).read(), set(sys.argv[2].split("|"))
data = os.path.dirname(os.path.abspath(sys.argv[1]))
for stmt in re.findall(r"CREATE TABLE .*?;\n", text, re.S):
    t = stmt.split()[2]
    if t in keep:   # the file of the table next to schema.sql, wherever it was generated
        path = os.path.join(data, os.path.basename(re.search(r"path '((?:[^']|'')*)'", stmt)[1]))
        print(re.sub(r"path '(?:[^']|'')*'", lambda m: "path '" + path.replace("'", "''") + "'", stmt), end="")
PY
for q in $queries; do   # a marker query before each splits the CSV output per query
    printf "SELECT 'ember-bench-query-%s' AS marker;\n" "$q" >>"$work/ember.sql"
    cat "$qdir/q$q.sql" >>"$work/ember.sql"
done
nload=$(grep -c '^CREATE TABLE' "$work/ember.sql")

for m in "${masters[@]}"; do
    label=sql_tpch_ember_$(echo "$m" | tr -c 'a-z0-9\n' '_')
    echo "== ember sql --master $m: load ${tables%|}, then Q$(echo $queries | sed 's/ / Q/g')"
    measured "$label" "$ember" sql --master "$m" --format csv -f "$work/ember.sql"
done
# ---- ember tables: converted once (conversion timed apart), then the same queries
emdir=${TPCH_EMBER:-$benchdir/tpch-sf$sf-ember}
ember_tables=${EMBER_TABLES:-1}
if [ "$ember_tables" = 1 ]; then
    if [ ! -f "$emdir/converted.json" ]; then
        rm -rf "$emdir.tmp"
        mkdir -p "$emdir.tmp"
        { grep -A1 '^CREATE TABLE' "$work/ember.sql" | grep -v '^--$'
          for t in $(echo "${tables%|}" | tr '|' ' '); do
              printf "CREATE TABLE em_%s USING ember OPTIONS (path '%s') AS SELECT * FROM %s;\n" \
                  "$t" "$emdir.tmp/$t" "$t"
          done; } >"$work/convert.sql"
        echo "== converting ${tables%|} to ember tables under $emdir (once)"
        run_measured sql_tpch_convert "$ember" sql --master "local-cluster[2,1]" -f "$work/convert.sql" \
            | tee "$emdir.tmp/converted.json"
        rm -rf "$emdir"
        mv "$emdir.tmp" "$emdir"
        sed -i "s|$emdir.tmp|$emdir|g" "$emdir/converted.json"
    fi
    cp "$emdir/converted.json" "$benchdir/sql_tpch_convert.json"
    for t in $(echo "${tables%|}" | tr '|' ' '); do
        printf "CREATE TABLE %s USING ember OPTIONS (path '%s');\n" "$t" "$emdir/$t"
    done >"$work/ember_tables.sql"
    grep -v '^CREATE TABLE\|^  USING csv' "$work/ember.sql" >>"$work/ember_tables.sql"
    for m in "${masters[@]}"; do
        label=sql_tpch_emtab_$(echo "$m" | tr -c 'a-z0-9\n' '_')
        echo "== ember sql --master $m on ember tables: Q$(echo $queries | sed 's/ / Q/g')"
        measured "$label" "$ember" sql --master "$m" --format csv -f "$work/ember_tables.sql"
    done
fi
cat "$db" >/dev/null   # into the page cache, as ember's CSV files are after generation
for q in $queries; do
    echo "== sqlite3 Q$q"
    measured "sql_tpch_sqlite_q$q" bash -c "sqlite3 -csv -header '$db' <'$work/q$q.sqlite.sql'"
done

# ---- the sqllogictest pack
pack=$root/../shared/sqllogictest/core-pack.tgz
slt_ok=0
if [ "${SLT:-1}" = 0 ]; then
    echo "== sqllogictest part skipped (SLT=0)"
elif [ -f "$pack" ]; then
    mkdir -p "$work/slt"
    tar xzf "$pack" -C "$work/slt"
    (cd "$work/slt" && find . -name '*.test' | sed 's|^\./||' | sort) >"$work/slt.files"
    echo "== sqllogictest core pack: ember sql --slt"
    measured sql_slt_ember bash -c "cd '$work/slt' && '$ember' sql --slt \$(cat '$work/slt.files') --slt-show 0"
    echo "== sqllogictest core pack: sqlite3 (bench/sql_slt_sqlite.py)"
    measured sql_slt_sqlite bash -c "cd '$work/slt' && /usr/bin/python3 '$root/bench/sql_slt_sqlite.py' \$(cat '$work/slt.files')"
    slt_ok=1
else
    echo "bench: $pack not found; the sqllogictest part is skipped" >&2
fi

# ---- the summary
/usr/bin/python3 - "$benchdir" "$sf" "$nload" "$slt_ok" "$ember_tables" $queries <<'PY'
import csv, io, json, math, re, sys
bench, sf, nload, slt_ok, emt, qs = (sys.argv[1], sys.argv[2], int(sys.argv[3]),
                                     sys.argv[4] == "1", sys.argv[5] == "1", sys.argv[6:])
MARK = "ember-bench-query-"

def runinfo(label):   # measure.py's JSON line, kept by run_measured's caller
    return json.loads(open(f"{bench}/{label}.json").read())

def ember_side(label, nload=nload):
    """(load seconds, {query: seconds}, {query: rows}) of one ember session."""
    err = open(f"{bench}/{label}.run0.err").read()
    times = [float(t) for t in re.findall(r"Time taken: ([0-9.]+) s", err)]
    out = open(f"{bench}/{label}.run0.out", newline="").read()
    res, cur = {}, None
    for rec in csv.reader(io.StringIO(out)):
        if len(rec) == 1 and rec[0].startswith(MARK):
            cur = rec[0][len(MARK):]
            res[cur] = []
        elif cur is not None and rec != ["marker"]:
            res[cur].append(rec or [""])
    qt = {q: times[nload + 2 * i + 1] for i, q in enumerate(qs) if nload + 2 * i + 1 < len(times)}
    return sum(times[:nload]), qt, res

def same_rows(a, b):
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if len(x) != len(y):
            return False
        for u, v in zip(x, y):
            try:
                if not math.isclose(float(u), float(v), rel_tol=1e-9, abs_tol=1e-9):
                    return False
            except ValueError:
                if u != v:
                    return False
    return True

masters = ["local[2]", "local-cluster[2,1]"]

def query_table(prefix, load_word, suffix):
    """The per-query table of the sessions labelled prefix + master, against sqlite3,
    then a line per session."""
    labels = [prefix + re.sub(r"[^a-z0-9]", "_", m) for m in masters]
    em = {m: ember_side(l) for m, l in zip(masters, labels)}
    share = {m: runinfo(l)["cpu_s"] / runinfo(l)["wall_s"] for m, l in zip(masters, labels)}
    print(f"{'query':6}{'local[2]':>10}{'local-cl.':>11}{'sqlite3':>9}{'sqlite3/ember':>15}"
          f"{'goal 3x':>9}  answers   CPU s: ember (est.) sqlite3")
    for q in qs:
        s_info = runinfo(f"sql_tpch_sqlite_q{q}")
        s_rows = [r for r in csv.reader(io.StringIO(open(f"{bench}/sql_tpch_sqlite_q{q}.run0.out",
                                                         newline="").read())) if r]
        e1, e2 = em[masters[0]][1].get(q, float("nan")), em[masters[1]][1].get(q, float("nan"))
        slower = max(e1, e2)   # the goal holds in both masters
        ok = all(same_rows(em[m][2].get(q, []), s_rows) for m in masters)
        ratio = s_info["wall_s"] / slower if slower > 0 else float("inf")
        print(f"Q{q:5}{e1:10.3f}{e2:11.3f}{s_info['wall_s']:9.3f}{ratio:14.2f}x"
              f"{'met' if ratio >= 3 else 'NOT met':>9}  {'same' if ok else 'DIFFER':8}"
              f"{e1 * share[masters[0]]:15.2f}{s_info['cpu_s']:8.2f}")
    for m, l in zip(masters, labels):
        i = runinfo(l)
        print(f"ember {m}{suffix}: {load_word} {em[m][0]:.2f} s; whole session {i['wall_s']:.2f} s "
              f"wall, {i['cpu_s']:.2f} s CPU, peak RSS {i['max_rss_kb'] / 1024:.0f} MiB, "
              f"others_cpu_s {i['others_cpu_s']}")

print(f"\nTPC-H-shaped scale {sf}: wall seconds per query (ember: its 'Time taken', the query "
      f"only; sqlite3: the process)")
query_table("sql_tpch_ember_", "CSV load", "")
print("(sqlite3/ember: sqlite3's time over the slower of ember's two masters; ember's CPU "
      "per query is estimated as its 'Time taken' x the session's CPU/wall: read the wall "
      "columns on a quiet machine)")
if emt:
    print(f"\nThe same on ember tables (USING ember: columnar files, converted once; sqlite3 "
          f"reads its own loaded database, so this is the like-for-like comparison)")
    query_table("sql_tpch_emtab_", "attach", " on ember tables")
    c = runinfo("sql_tpch_convert")
    print(f"conversion CSV -> ember tables (once, local-cluster[2,1], not in the times above): "
          f"{c['wall_s']:.2f} s wall, {c['cpu_s']:.2f} s CPU, others_cpu_s {c['others_cpu_s']}")
cpu = sum(runinfo(f"sql_tpch_sqlite_q{q}")["cpu_s"] for q in qs)
oth = sum(runinfo(f"sql_tpch_sqlite_q{q}")["others_cpu_s"] for q in qs)
print(f"sqlite3: {cpu:.2f} s CPU over the queries, others_cpu_s {oth:.2f}")
if slt_ok:
    e, s = runinfo("sql_slt_ember"), runinfo("sql_slt_sqlite")
    tot = lambda l: open(f"{bench}/{l}.run0.out").read().strip().splitlines()[-1]
    print(f"\nsqllogictest core pack: ember {e['wall_s']:.2f} s wall ({e['cpu_s']:.2f} s CPU, "
          f"others {e['others_cpu_s']}), sqlite3 {s['wall_s']:.2f} s wall ({s['cpu_s']:.2f} s "
          f"CPU, others {s['others_cpu_s']}): sqlite3/ember {s['wall_s'] / e['wall_s']:.2f}x")
    print(f"  ember:   {tot('sql_slt_ember')}\n  sqlite3: {tot('sql_slt_sqlite')}")
PY
