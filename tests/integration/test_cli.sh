#!/usr/bin/env bash
# tests/integration/test_cli.sh BUILD_DIR - the `ember` command's help, argument errors and
# the generators' determinism and formats.
set -euo pipefail
build=${1:?usage: test_cli.sh BUILD_DIR}
ember=$build/bin/ember
[ -x "$ember" ] || { echo "FAIL: $ember not built"; exit 1; }
tmp=$(mktemp -d /tmp/ember-test-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_ok "description" cmd...   (stdout in $tmp/out, stderr in $tmp/err)
expect_ok() {
    local what=$1 rc=0; shift
    "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    [ "$rc" = 0 ] || fail "$what: exit $rc (stderr: $(head -c 300 "$tmp/err"))"
}
# expect_fail "description" STATUS "stderr substring" cmd...
expect_fail() {
    local what=$1 want=$2 msg=$3 rc=0; shift 3
    "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    [ "$rc" = "$want" ] || fail "$what: exit $rc, want $want"
    grep -qF -- "$msg" "$tmp/err" || fail "$what: stderr lacks '$msg': $(head -c 300 "$tmp/err")"
}
mentions() {   # mentions "description" FILE words...
    local what=$1 f=$2; shift 2
    for w in "$@"; do grep -qF -- "$w" "$f" || fail "$what does not mention $w"; done
}

# ---------------------------------------------------------------- help
expect_ok "ember --help" "$ember" --help
mentions "ember --help" "$tmp/out" run-example gen help --help --version
expect_ok "ember -h" "$ember" -h
expect_ok "ember --version" "$ember" --version
grep -Eq '^ember [0-9]+\.[0-9]+\.[0-9]+' "$tmp/out" || fail "--version prints '$(cat "$tmp/out")'"
expect_ok "ember help" "$ember" help
expect_ok "ember help help" "$ember" help help
expect_ok "ember run-example --help" "$ember" run-example --help
mentions "run-example --help" "$tmp/out" --master --conf --executor-memory --quiet --list \
    --help local[2] wordcount pagerank kvbench EMBER_EXAMPLES_DIR
cp "$tmp/out" "$tmp/re-help"
expect_ok "ember help run-example" "$ember" help run-example
cmp -s "$tmp/out" "$tmp/re-help" || fail "help run-example differs from run-example --help"
expect_ok "ember gen --help" "$ember" gen --help
mentions "gen --help" "$tmp/out" text graph records --mib --nodes --edges --seed --out
expect_ok "ember gen text --help" "$ember" gen text --help
mentions "gen text --help" "$tmp/out" --mib --seed --out --help
expect_ok "ember gen graph --help" "$ember" gen graph --help
mentions "gen graph --help" "$tmp/out" --nodes --edges --seed --out --help
expect_ok "ember gen records --help" "$ember" gen records --help
mentions "gen records --help" "$tmp/out" --mib --seed --out --help
expect_ok "ember help gen text" "$ember" help gen text
mentions "help gen text" "$tmp/out" --mib
# The daemons' and job commands' option lists come from their option tables (cli/opts.c):
# each lists its options and --help, and `ember help CMD` prints the same text.
for cmd in "master --host --port --ui-port --secret-file" \
           "worker --master --host --cores --memory --work-dir --secret-file" \
           "executor --driver --exec-id --cores --memory --work-dir --host --secret-file" \
           "submit --master --executor-memory --total-executor-cores --executor-cores --conf --name --secret-file --quiet"; do
    set -- $cmd
    name=$1; shift
    expect_ok "ember $name --help" "$ember" "$name" --help
    mentions "$name --help" "$tmp/out" "$@" "--help, -h" "Options:"
    cp "$tmp/out" "$tmp/re-help"
    expect_ok "ember help $name" "$ember" help "$name"
    cmp -s "$tmp/out" "$tmp/re-help" || fail "help $name differs from $name --help"
    expect_ok "ember $name -h" "$ember" "$name" -h
    cmp -s "$tmp/out" "$tmp/re-help" || fail "$name -h differs from $name --help"
done
expect_ok "ember ml --help" "$ember" ml --help
mentions "ml --help" "$tmp/out" als

# ---------------------------------------------------------------- bad arguments
expect_fail "no command" 2 "Usage:" "$ember"
expect_fail "unknown command" 2 "unknown command 'frobnicate'" "$ember" frobnicate
expect_fail "unknown option" 2 "unknown option '--frob'" "$ember" --frob
expect_fail "help of unknown" 2 "unknown command 'nope'" "$ember" help nope
expect_fail "gen without kind" 2 "Usage:" "$ember" gen
expect_fail "gen unknown kind" 2 "unknown generator 'pictures'" "$ember" gen pictures --out x
expect_fail "--mib 12x" 2 "ember gen text: --mib: expected a positive integer, got '12x'" \
    "$ember" gen text --mib 12x --out "$tmp/x"
expect_fail "--mib -1" 2 "--mib: expected a positive integer, got '-1'" \
    "$ember" gen text --mib -1 --out "$tmp/x"
expect_fail "--mib 0" 2 "--mib: expected a positive integer, got '0'" \
    "$ember" gen text --mib 0 --out "$tmp/x"
expect_fail "--mib ''" 2 "--mib: expected a positive integer, got ''" \
    "$ember" gen text --mib= --out "$tmp/x"
expect_fail "--mib missing value" 2 "--mib: missing value" "$ember" gen text --out "$tmp/x" --mib
expect_fail "--seed 1.5" 2 "--seed: expected a non-negative integer, got '1.5'" \
    "$ember" gen records --mib 1 --seed 1.5 --out "$tmp/x"
expect_fail "--nodes huge" 2 "--nodes: at most 4294967295" \
    "$ember" gen graph --nodes 99999999999 --edges 5 --out "$tmp/x"
expect_fail "--edges missing" 2 "--nodes and --edges are required" \
    "$ember" gen graph --nodes 10 --out "$tmp/x"
expect_fail "--out missing" 2 "--out is required" "$ember" gen text --mib 1
expect_fail "graph flag on text" 2 "unknown option '--nodes'" \
    "$ember" gen text --mib 1 --nodes 3 --out "$tmp/x"
expect_fail "unwritable --out" 1 "cannot create" \
    "$ember" gen text --mib 1 --out "$tmp/no/such/dir/x"
[ ! -e "$tmp/x" ] || fail "a failed gen left $tmp/x behind"
expect_fail "run-example without name" 2 "missing example NAME" "$ember" run-example
expect_fail "run-example unknown option" 2 "unknown option '--bogus'" \
    "$ember" run-example --bogus wordcount
expect_fail "run-example bad --conf" 2 "--conf: expected KEY=VALUE, got 'novalue'" \
    "$ember" run-example --conf novalue wordcount
expect_fail "run-example bad memory" 2 "--executor-memory: expected a size" \
    "$ember" run-example --executor-memory lots wordcount
expect_fail "master bad port" 2 "ember master: --port: at most 65535, got '70000'" \
    "$ember" master --port 70000
expect_fail "master --ui-port=x" 2 "--ui-port: expected a non-negative integer, got 'x'" \
    "$ember" master --ui-port=x
expect_fail "master missing value" 2 "ember master: --secret-file: missing value" \
    "$ember" master --secret-file
expect_fail "master empty host" 2 "--host: empty value" "$ember" master --host=
expect_fail "master operand" 2 "ember master: unknown argument 'now'" "$ember" master now
expect_fail "worker without master" 2 "--master ember://HOST:PORT is required" "$ember" worker
expect_fail "worker bad cores" 2 "--cores: expected a positive integer, got '0'" \
    "$ember" worker --master ember://127.0.0.1:1 --cores 0
expect_fail "worker bad memory" 2 "--memory: expected a size such as 512m or 2g, got 'lots'" \
    "$ember" worker --master ember://127.0.0.1:1 --memory lots
expect_fail "worker bad master" 2 "ember worker: --master:" "$ember" worker --master nowhere
expect_fail "worker unknown option" 2 "unknown option '--frob'" "$ember" worker --frob
expect_fail "executor missing options" 2 "--driver, --exec-id and --cores are required" \
    "$ember" executor --cores 2
expect_fail "executor bad cores" 2 "--cores: at most 1024, got '5000'" \
    "$ember" executor --driver h:1 --exec-id e --cores 5000
expect_fail "submit without master" 2 "--master ember://HOST:PORT is required" \
    "$ember" submit job.so
expect_fail "submit unknown option" 2 "ember submit: unknown option '--frob'" \
    "$ember" submit --master ember://127.0.0.1:1 --frob job.so
expect_fail "submit bad --conf" 2 "--conf: expected KEY=VALUE, got 'k'" \
    "$ember" submit --master ember://127.0.0.1:1 --conf k job.so
expect_fail "submit without job" 2 "missing JOB.so" "$ember" submit --master ember://127.0.0.1:1
expect_fail "ml unknown algorithm" 2 "unknown algorithm 'nope'" "$ember" ml nope
expect_fail "run-example unknown example" 2 "no example named 'no_such_example'" \
    "$ember" run-example no_such_example
EMBER_EXAMPLES_DIR=$tmp expect_fail "run-example empty dir" 2 "no example named 'wordcount'" \
    "$ember" run-example wordcount

# ---------------------------------------------------------------- examples are found
expect_ok "run-example --list" "$ember" run-example --list
mentions "run-example --list" "$tmp/out" wordcount pagerank kvbench
while read -r name path; do
    [ -f "$path" ] || fail "--list: $name -> $path is not a file"
done <"$tmp/out"
expect_fail "wordcount usage" 1 "usage: wordcount INPUT OUTDIR" \
    "$ember" run-example --quiet wordcount
expect_fail "pagerank bad iterations" 1 "ITERATIONS: expected an integer" \
    "$ember" run-example --quiet pagerank in 3x out

# ---------------------------------------------------------------- generators
gen() { "$ember" gen "$@" || fail "ember gen $*"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
gen text --mib 5 --seed 7 --out "$tmp/t1"
gen text --mib 5 --seed 7 --out "$tmp/t2"
gen text --mib 5 --seed 8 --out "$tmp/t3"
EMBER_GEN_THREADS=1 gen text --mib 5 --seed 7 --out "$tmp/t2"
[ "$(sha "$tmp/t1")" = "$(sha "$tmp/t2")" ] || fail "gen text: 1 thread and many differ"
EMBER_GEN_THREADS=3 gen text --mib 5 --seed 7 --out "$tmp/t2"
[ "$(sha "$tmp/t1")" = "$(sha "$tmp/t2")" ] || fail "gen text: 3 threads and many differ"
gen text --mib 5 --seed 7 --out "$tmp/t2"
[ "$(sha "$tmp/t1")" = "$(sha "$tmp/t2")" ] || fail "gen text: same seed, different bytes"
[ "$(sha "$tmp/t1")" != "$(sha "$tmp/t3")" ] || fail "gen text: different seeds, same bytes"
size=$(stat -c %s "$tmp/t1")
[ "$size" -ge $((5 << 20)) ] && [ "$size" -lt $(((5 << 20) + 2000)) ] ||
    fail "gen text --mib 5 wrote $size bytes"
ls "$tmp"/t1.tmp.* >/dev/null 2>&1 && fail "gen text left a temporary file"
LC_ALL=C awk '
    NF < 5 || NF > 20 { printf "line %d has %d words\n", NR, NF; bad = 1; exit }
    /^ | $|  |\t|\r/ { printf "line %d has bad spacing\n", NR; bad = 1; exit }
    END { if (bad) exit 1 }' "$tmp/t1" || fail "gen text: line format"
[ "$(tail -c 1 "$tmp/t1" | od -An -c | tr -d ' ')" = '\n' ] || fail "gen text: no final newline"
LC_ALL=C grep -q $'[\x80-\xff]' "$tmp/t1" || fail "gen text: no multi-byte words"
nwords=$(LC_ALL=C tr -s ' \n' '\n\n' <"$tmp/t1" | LC_ALL=C sort -u | wc -l)
[ "$nwords" -gt 10000 ] && [ "$nwords" -le 50000 ] || fail "gen text: $nwords distinct words"

EMBER_GEN_THREADS=1 gen graph --nodes 50 --edges 2500000 --seed 3 --out "$tmp/g1"
gen graph --nodes 50 --edges 2500000 --seed 3 --out "$tmp/g2"
[ "$(sha "$tmp/g1")" = "$(sha "$tmp/g2")" ] || fail "gen graph: 1 thread and many differ"
gen graph --nodes 1000 --edges 20000 --seed 3 --out "$tmp/g1"
gen graph --nodes 1000 --edges 20000 --seed 3 --out "$tmp/g2"
gen graph --nodes 1000 --edges 20000 --seed 4 --out "$tmp/g3"
[ "$(sha "$tmp/g1")" = "$(sha "$tmp/g2")" ] || fail "gen graph: same seed, different bytes"
[ "$(sha "$tmp/g1")" != "$(sha "$tmp/g3")" ] || fail "gen graph: different seeds, same bytes"
awk 'NF != 2 || $1 !~ /^[0-9]+$/ || $2 !~ /^[0-9]+$/ || $1 >= 1000 || $2 >= 1000 { bad = 1 }
     END { if (bad || NR != 20000) exit 1 }' "$tmp/g1" || fail "gen graph: format"
# power-law-ish: the busiest source has far more than the mean out-degree (20)
top=$(cut -d' ' -f1 "$tmp/g1" | sort | uniq -c | sort -nr | awk 'NR == 1' | awk '{print $1}')
[ "$top" -gt 200 ] || fail "gen graph: max out-degree $top looks uniform"

gen records --mib 2 --seed 9 --out "$tmp/r1"
EMBER_GEN_THREADS=1 gen records --mib 5 --seed 9 --out "$tmp/r1"
gen records --mib 5 --seed 9 --out "$tmp/r2"
[ "$(sha "$tmp/r1")" = "$(sha "$tmp/r2")" ] || fail "gen records: 1 thread and many differ"
gen records --mib 2 --seed 9 --out "$tmp/r1"
gen records --mib 2 --seed 9 --out "$tmp/r2"
gen records --mib 2 --seed 10 --out "$tmp/r3"
[ "$(sha "$tmp/r1")" = "$(sha "$tmp/r2")" ] || fail "gen records: same seed, different bytes"
[ "$(sha "$tmp/r1")" != "$(sha "$tmp/r3")" ] || fail "gen records: different seeds, same bytes"
[ "$(stat -c %s "$tmp/r1")" = $(((2 << 20) / 100 * 100)) ] || fail "gen records: size"
LC_ALL=C awk 'length($0) != 99 || substr($0, 11, 1) != "\t" || $0 ~ /[^\t!-~]/ ||
              index(substr($0, 12), "\t") { bad = 1 } END { if (bad) exit 1 }' "$tmp/r1" ||
    fail "gen records: format"

# The driver's status page address is printed once on stderr (issue 16 item 15), on the
# port it really got; --quiet (ember.ui.showConsoleProgress=false) leaves it out.
printf 'a b a\n' > "$tmp/ui.txt"
uiport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_ok "run-example with a UI" "$ember" run-example --master 'local[1]' \
    --conf "ember.ui.port=$uiport" wordcount "$tmp/ui.txt" "$tmp/ui-out1"
[ "$(grep -c "^ember: Web UI available at http://127.0.0.1:$uiport/$" "$tmp/err")" = 1 ] ||
    fail "run-example: no 'Web UI available at' line for port $uiport: $(head -c 300 "$tmp/err")"
expect_ok "run-example --quiet" "$ember" run-example --quiet --master 'local[1]' \
    --conf "ember.ui.port=$uiport" wordcount "$tmp/ui.txt" "$tmp/ui-out2"
grep -q "Web UI" "$tmp/err" && fail "run-example --quiet printed the UI address"
python3 - "$uiport" "$ember" "$tmp" <<'PY' || fail "a taken UI port: the printed address is not the one served"
import re, socket, subprocess, sys
port, ember, tmp = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(1)   # another application holds the port
r = subprocess.run([ember, "run-example", "--master", "local[1]", "--conf",
                    f"ember.ui.port={port}", "wordcount", f"{tmp}/ui.txt", f"{tmp}/ui-out3"],
                   capture_output=True, text=True, timeout=60)
m = re.findall(r"status page at http://127\.0\.0\.1:(\d+)/ \(the port asked for was taken\)$",
               r.stderr, re.M)
assert r.returncode == 0 and len(m) == 1 and int(m[0]) != port, r.stderr
assert "Web UI available" not in r.stderr, r.stderr   # one line says where, not two
PY

if [ "$fails" -gt 0 ]; then
    echo "test_cli: $fails failure(s)"
    exit 1
fi
echo "test_cli: ok"
