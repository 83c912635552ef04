#!/usr/bin/env bash
# tests/integration/test_sql_slt.sh BUILD_DIR - the SQL front end through the `ember sql`
# command: the sqllogictest core pack (../shared/sqllogictest/core-pack.tgz) must pass at
# least as many records per file as tests/integration/sql_slt_baseline.txt records, and the
# shell's formats, piping and error carets work.
set -euo pipefail
build=$(cd "${1:?usage: test_sql_slt.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
ember=$build/bin/ember
[ -x "$ember" ] || { echo "FAIL: $ember not built"; exit 1; }
"$ember" help sql >/dev/null 2>&1 || { echo "SKIP: ember built without SQL"; exit 0; }
tmp=$(mktemp -d /tmp/ember-test-sql.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# ---- the shell
out=$("$ember" sql --format csv --no-timer -e "CREATE TABLE t (a INTEGER, b TEXT, c DOUBLE);
  INSERT INTO t VALUES (1, 'x,y', 0.1), (2, NULL, 2.0); SELECT a, b, c FROM t ORDER BY a")
want=$'a,b,c\r\n1,"x,y",0.1\r\n2,,2\r\n'
[ "$out"$'\n' = "$want" ] || [ "$out" = "${want%$'\r\n'}" ] || fail "csv output: $(printf %q "$out")"
out=$(printf 'CREATE TABLE t (a INTEGER);\nINSERT INTO t VALUES (3);\n.tables\nSELECT a * 2 AS d FROM t;\n' |
      "$ember" sql --format tsv 2>"$tmp/err")
[ "$out" = $'t\nd\n6' ] || fail "piped statements: $(printf %q "$out")"
grep -q "Fetched 1 row(s)" "$tmp/err" || fail "no timing line on stderr: $(cat "$tmp/err")"
rc=0
"$ember" sql -e "CREATE TABLE users (age INTEGER); SELECT agee FROM users" 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] || fail "unknown column: exit $rc, want 1"
grep -q "did you mean 'age'" "$tmp/err" || fail "no suggestion: $(cat "$tmp/err")"
grep -q '^  *\^$' "$tmp/err" || fail "no caret: $(cat "$tmp/err")"

# ---- the sqllogictest pack
pack=$src/../shared/sqllogictest/core-pack.tgz
if [ ! -f "$pack" ]; then
    echo "SKIP: $pack not found (the slt pack is not in this checkout)"
    exit $((fails > 0))
fi
mkdir -p "$tmp/slt"
tar xzf "$pack" -C "$tmp/slt"
(cd "$tmp/slt" && find . -name '*.test' | sed 's|^\./||' | sort) >"$tmp/files"
start=$(date +%s)
(cd "$tmp/slt" && "$ember" sql --slt $(cat "$tmp/files") --slt-show 3) >"$tmp/slt.out" 2>"$tmp/slt.err" ||
    fail "ember sql --slt exited non-zero: $(tail -3 "$tmp/slt.err")"
echo "sqllogictest pack: $(tail -1 "$tmp/slt.out") in $(( $(date +%s) - start )) s wall"
while read -r file min; do
    case $file in ''|'#'*) continue ;; esac
    got=$(awk -v f="$file:" '$1 == f { print $2 }' "$tmp/slt.out")
    if [ -z "$got" ]; then
        fail "$file: no result line"
    elif [ "$got" -lt "$min" ]; then
        fail "$file: $got records passed, baseline $min"
        grep -F "$file:" "$tmp/slt.err" | head -3
    fi
done <"$src/tests/integration/sql_slt_baseline.txt"
[ "$fails" = 0 ] && echo "PASS: sql" || { echo "$fails failure(s)"; exit 1; }
