#!/usr/bin/env bash
# tests/integration/test_tpch.sh BUILD_DIR - `ember gen tpch` and TPC-H queries on its data:
# the generator's usage errors, determinism (same seed, any thread count: same bytes; another
# seed: other bytes), cardinalities and key/date rules at scale 0.03, then the queries of
# tests/integration/tpch/ run in `ember sql --format csv` and in sqlite3 (Python's module)
# on the same files and compared row by row (tpch/compare.py: integers and text exactly,
# doubles to a relative 1e-9). Scale 0.03 is the smallest at which every query below,
# Q19 included, selects rows (compare.py fails a query whose answer is empty or NULL).
set -euo pipefail
build=$(cd "${1:?usage: test_tpch.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
ember=$build/bin/ember
[ -x "$ember" ] || { echo "FAIL: $ember not built"; exit 1; }
"$ember" help sql >/dev/null 2>&1 || { echo "SKIP: ember built without SQL"; exit 0; }
tmp=$(mktemp -d /tmp/ember-test-tpch.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# ---- usage errors: exit 2 and a message naming the cause
usage_case() {   # expected-text args...
    local want=$1 rc=0
    shift
    "$ember" gen tpch "$@" >/dev/null 2>"$tmp/err" || rc=$?
    [ "$rc" = 2 ] || fail "gen tpch $*: exit $rc, want 2"
    grep -q -- "$want" "$tmp/err" || fail "gen tpch $*: no '$want' in: $(cat "$tmp/err")"
}
usage_case "--sf is required" --out "$tmp/x"
usage_case "--out is required" --sf 1
usage_case "--sf: expected a number" --sf 0 --out "$tmp/x"
usage_case "--sf: expected a number" --sf abc --out "$tmp/x"
usage_case "--delimiter: expected" --sf 0.01 --delimiter ';' --out "$tmp/x"
usage_case "--threads: expected" --sf 0.01 --threads 0 --out "$tmp/x"
usage_case "unknown option '--bogus'" --sf 0.01 --bogus 1 --out "$tmp/x"
[ ! -e "$tmp/x" ] || fail "a usage error created the output directory"
"$ember" gen tpch --help | grep -q -- "--delimiter" || fail "gen tpch --help lacks --delimiter"
"$ember" help gen tpch | grep -q -- "--sf N" || fail "ember help gen tpch"
touch "$tmp/file"
rc=0
"$ember" gen tpch --sf 0.01 --out "$tmp/file" 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -q "$tmp/file: cannot create the directory" "$tmp/err" ||
    fail "--out onto a file: exit $rc: $(cat "$tmp/err")"

# ---- determinism: same bytes with 1 and 3 threads, other bytes with another seed
"$ember" gen tpch --sf 0.01 --threads 1 --out "$tmp/a" >/dev/null
"$ember" gen tpch --sf 0.01 --threads 3 --out "$tmp/b" >/dev/null
"$ember" gen tpch --sf 0.01 --seed 2 --delimiter , --out "$tmp/c" >/dev/null
for t in region nation supplier customer part partsupp orders lineitem; do
    cmp -s "$tmp/a/$t.tbl" "$tmp/b/$t.tbl" || fail "$t.tbl differs between 1 and 3 threads"
done
cmp -s "$tmp/a/lineitem.tbl" <(tr , '|' <"$tmp/c/lineitem.tbl") && fail "seed 2 gave seed 1's lineitem"
grep -q "delimiter ','" "$tmp/c/schema.sql" || fail "schema.sql of --delimiter , does not say so"
ls "$tmp/a" | grep -q tmp && fail "temporary files left: $(ls "$tmp/a")"

# ---- scale 0.03: cardinalities and the specification's rules, checked with awk
d=$tmp/sf
out=$("$ember" gen tpch --sf 0.03 --out "$d")
echo "$out"
count() { wc -l <"$d/$1.tbl" | tr -d ' '; }
for want in region:5 nation:25 supplier:300 customer:4500 part:6000 partsupp:24000 orders:45000; do
    t=${want%%:*} n=${want#*:}
    [ "$(count "$t")" = "$n" ] || fail "$t: $(count "$t") rows, want $n"
done
nl=$(count lineitem)
[ "$nl" -gt 160000 ] && [ "$nl" -lt 200000 ] || fail "lineitem: $nl rows, want about 4 per order"
awk -F'|' '
    $11 < "1992-01-02" || $13 > "1998-12-31" { print "date out of range: " $0; exit 1 }
    !($11 < $13) { print "receipt not after ship: " $0; exit 1 }
    $5 < 1 || $5 > 50 || $7 > 0.10 || $8 > 0.08 { print "quantity/discount/tax: " $0; exit 1 }
    ($13 <= "1995-06-17") != ($9 != "N") { print "returnflag: " $0; exit 1 }
    ($11 > "1995-06-17") != ($10 == "O") { print "linestatus: " $0; exit 1 }
    $4 < 1 || $4 > 7 { print "linenumber: " $0; exit 1 }' "$d/lineitem.tbl" ||
    fail "lineitem breaks a rule"
awk -F'|' '($1 - 1) % 32 >= 8 { print "order key not sparse: " $1; exit 1 }
    $2 % 3 == 0 { print "customer key divisible by 3: " $2; exit 1 }' "$d/orders.tbl" ||
    fail "orders break a rule"
# extendedprice = quantity * retailprice of the part
awk -F'|' 'NR == FNR { price[$1] = $8; next }
    { d = $6 - $5 * price[$2]; if (d > 0.005 || d < -0.005) { print "price: " $0; exit 1 } }' \
    "$d/part.tbl" "$d/lineitem.tbl" || fail "lineitem extendedprice is not quantity * retailprice"
# every (partkey, suppkey) of lineitem is in partsupp
awk -F'|' 'NR == FNR { ps[$1 "|" $2] = 1; next }
    !(($2 "|" $3) in ps) { print "not in partsupp: " $2 "|" $3; exit 1 }' \
    "$d/partsupp.tbl" "$d/lineitem.tbl" || fail "lineitem (partkey, suppkey) outside partsupp"

# ---- the queries beside sqlite3
qs=()
for q in 01 03 05 06 10 12 13 14 16 19; do qs+=("$src/tests/integration/tpch/q$q.sql"); done
start=$(date +%s)
python3 "$src/tests/integration/tpch/compare.py" "$ember" "$d" "${qs[@]}" ||
    fail "ember and sqlite3 disagree (above)"
echo "queries compared in $(( $(date +%s) - start )) s"
# The same queries on ember tables (columnar files converted from the CSV tables), scanned
# by tasks in local[2] (forced onto the distributed path) and loaded on the local path.
start=$(date +%s)
COMPARE_EMBER_TABLES=$tmp/emt COMPARE_EMBER_ARGS="--conf ember.sql.forceDistributed=true" \
    python3 "$src/tests/integration/tpch/compare.py" "$ember" "$d" "${qs[@]}" ||
    fail "ember (ember tables, distributed) and sqlite3 disagree (above)"
rm -rf "$tmp/emt"
COMPARE_EMBER_TABLES=$tmp/emt python3 "$src/tests/integration/tpch/compare.py" "$ember" "$d" "${qs[@]}" ||
    fail "ember (ember tables, local path) and sqlite3 disagree (above)"
echo "queries on ember tables compared in $(( $(date +%s) - start )) s"
[ "$fails" = 0 ] && echo "PASS: tpch" || { echo "$fails failure(s)"; exit 1; }
