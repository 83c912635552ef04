#!/usr/bin/env bash
# tests/integration/test_probe_conf.sh BUILD_DIR - what a new user hits with bad input
# (issue 16: items 1, 3-7, 13): each probe must end quickly with a non-zero exit (2 for bad
# usage), a message naming the cause, no process left, and no _temporary or application
# directory left. Plus the settings that used to be ignored (EMBER_MASTER, the conf file)
# and the clean-up after SIGTERM and after a driver killed with SIGKILL.
# (Relative paths under `ember submit`: test_submit_paths.sh.)
source "$(dirname "$0")/cluster_lib.sh" probe_conf "${1:-}"
export TMPDIR=$tmp/t            # every application directory goes here (check_clean)
cd "$tmp"
printf 'b a\na c a\n' > in.txt

# probe NAME WANT_RC WANT_MESSAGE CMD... : runs CMD (60 s at most), checks its exit status,
# its stderr, that no output dir "out" (nor its _temporary) exists, and check_clean.
probe() {
    local name=$1 want=$2 msg=$3 rc=0
    shift 3
    timeout 60 "$@" >"$tmp/probe.out" 2>"$tmp/probe.err" || rc=$?
    [ "$rc" = "$want" ] || fail "$name: exit $rc, want $want ($(head -2 "$tmp/probe.err"))"
    grep -qF -- "$msg" "$tmp/probe.err" || fail "$name: stderr lacks '$msg': $(head -3 "$tmp/probe.err")"
    [ ! -e out ] || { fail "$name: output left: $(ls -A out)"; rm -rf out; }
    check_clean "$name"
}

# ---------------------------------------------------------------- settings (items 3-7)
probe "EMBER_MASTER bad" 2 "ember.master: bad value 'local[zz]'" \
    env EMBER_MASTER='local[zz]' "$ember" run-example wordcount in.txt out
probe "--master local[0]" 2 "ember.master: bad value 'local[0]'" \
    "$ember" run-example --master 'local[0]' wordcount in.txt out
probe "misspelled --conf key" 2 "did you mean 'ember.default.parallelism'" \
    "$ember" run-example --conf ember.defualt.parallelism=8 wordcount in.txt out
echo "ember.exector.memory 1g" > bad.conf
probe "misspelled key in the conf file" 2 "did you mean 'ember.executor.memory'" \
    env EMBER_CONF_FILE="$tmp/bad.conf" "$ember" run-example wordcount in.txt out
probe "local dir without parent" 2 "does not exist, nor does its parent" \
    "$ember" run-example --conf "ember.local.dir=$tmp/nonexistent/dir" wordcount in.txt out
[ ! -e "$tmp/nonexistent" ] || fail "ember.local.dir: the missing path was created"
probe "--executor-memory 1k" 2 "ember.executor.memory: 1k is below the minimum 1m" \
    "$ember" run-example --executor-memory 1k wordcount in.txt out
probe "EMBER_SHUFFLE_MEMORY 1k" 2 "ember.shuffle.memory: 1k is below the minimum 4k" \
    env EMBER_SHUFFLE_MEMORY=1k "$ember" run-example wordcount in.txt out
probe "unknown flag" 2 "unknown option '--frob'" "$ember" run-example --frob wordcount
probe "unknown master flag" 2 "unknown option '--frob'" "$ember" master --frob
probe "unknown example" 2 "no example named 'nosuch'" "$ember" run-example nosuch
probe "submit: no job library" 2 "no such job library" \
    "$ember" submit --master ember://127.0.0.1:1 "$tmp/none.so"

# Honoured now: EMBER_MASTER and the conf file over the command's default (local[2]), the
# flag over both.
threads() {   # ENV... -> the "N task threads" of a run
    env "$@" EMBER_LOG=info "$ember" run-example wordcount in.txt out 2>&1 >/dev/null |
        sed -n 's/.*context: \([0-9]*\) task threads.*/\1/p'
    rm -rf out
}
[ "$(threads EMBER_MASTER='local[1]')" = 1 ] || fail "EMBER_MASTER=local[1] ignored"
echo "ember.master = local[3]" > master.conf
[ "$(threads EMBER_CONF_FILE="$tmp/master.conf")" = 3 ] || fail "conf file master ignored"
[ "$(threads EMBER_CONF_FILE="$tmp/master.conf" EMBER_MASTER='local[1]')" = 1 ] ||
    fail "EMBER_MASTER does not beat the conf file"
n=$(env EMBER_MASTER='local[1]' EMBER_LOG=info "$ember" run-example --master 'local[3]' \
    wordcount in.txt out 2>&1 >/dev/null | sed -n 's/.*context: \([0-9]*\) task threads.*/\1/p')
rm -rf out
[ "$n" = 3 ] || fail "--master does not beat EMBER_MASTER (got '$n')"
check_clean "precedence"

# ---------------------------------------------------------------- item 1: a 50 MiB line
python3 -c "open('L','wb').write(b'a'*(50<<20)+b'\n')"
rc=0
timeout 180 "$ember" run-example --quiet --master 'local-cluster[2,1]' sort L out \
    >/dev/null 2>"$tmp/sort.err" || rc=$?
[ $rc = 0 ] || fail "sort of a 50 MiB line: exit $rc: $(tail -3 "$tmp/sort.err")"
[ -f out/_SUCCESS ] && [ ! -e out/_temporary ] || fail "sort of a 50 MiB line: no clean output"
cmp -s <(cat out/part-*) L || fail "sort of a 50 MiB line: wrong output"
rm -rf out L
check_clean "sort of a 50 MiB line"

# ---------------------------------------------------------------- item 13: signals
"$ember" gen text --mib 40 --seed 3 --out big.txt >/dev/null 2>&1
wait_app_dir() {
    for _ in $(seq 200); do
        ls -d "$tmp"/t/ember-app-* >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}
"$ember" run-example --master 'local-cluster[2,1]' wordcount big.txt out >/dev/null 2>"$tmp/term.err" &
pid=$!
wait_app_dir || fail "SIGTERM: the job did not start"
sleep 1
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 143 ] || fail "SIGTERM: exit $rc, want 143 ($(tail -2 "$tmp/term.err"))"
[ ! -e out ] || { fail "SIGTERM: output left: $(ls -A out)"; rm -rf out; }
check_clean "SIGTERM"

"$ember" run-example --master 'local-cluster[2,1]' wordcount big.txt out >/dev/null 2>&1 &
pid=$!
wait_app_dir || fail "SIGKILL: the job did not start"
sleep 1
kill -KILL $pid
wait $pid 2>/dev/null || true
stale=$(ls -d "$tmp"/t/ember-app-* 2>/dev/null || true)
[ -n "$stale" ] || fail "SIGKILL: expected the killed driver's app dir (else this checks nothing)"
rm -rf out           # a killed driver cannot clean its output: the user reruns
for _ in $(seq 50); do [ -z "$(our_executors)" ] && break; sleep 0.1; done
"$ember" run-example --quiet wordcount in.txt out >/dev/null 2>&1 || fail "the run after SIGKILL failed"
rm -rf out
for d in $stale; do [ ! -e "$d" ] || fail "SIGKILL: the next run left the stale $d"; done
check_clean "after SIGKILL"

finish
