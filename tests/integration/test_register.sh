#!/usr/bin/env bash
# tests/integration/test_register.sh BUILD_DIR - executors that die before the driver has
# all it waits for are replaced, and the job succeeds (issue 9). The driver starts
# executors through EMBER_BIN, here a wrapper named `ember` that runs the real command
# except for one executor:
#  1. local-cluster[2,1], exec-1 is killed (SIGKILL) before it can register: the driver
#     starts exec-3 in its place;
#  2. local-cluster[2,1], exec-1 registers and is killed while the driver still waits for
#     exec-2 (held back by the wrapper until exec-1 is dead): the driver replaces it as it
#     replaces executors lost during a job (before, it waited for the second executor until
#     ember.cluster.registerTimeoutMs and failed: "1 of 2 executors registered");
#  3. a standalone master with two workers, the first executor started by worker 1 is
#     killed before it registers: the master has a worker start another.
# Each run's word counts must equal local mode's, and nothing may be left behind.
# Registration tables (engine/plan/fn.h): the `registered` example keeps its functions
# static and registers them from a table in em_job_register, which the driver and every
# executor call after loading the library:
#  4. it runs in local-cluster[2,1] (and on the standalone cluster of 3) with the output of
#     local[2]; its functions are not exported, so only the table can have found them;
#  5. a table that claims a built-in's name (EMBER_REGISTERED_CLASH=1) stops the command
#     before anything runs, naming em_job_register; `ember ml` and the executors know
#     MLlib's table without a job library (checked by test_als.sh through `ember als`).
source "$(dirname "$0")/cluster_lib.sh" register "${1:-}"
real=$(cd "$(dirname "$ember")" && pwd)/ember
wc_so=$build/lib/ember/examples/wordcount.so
reg_so=$build/lib/ember/examples/registered.so

"$ember" gen text --mib 1 --seed 5 --out "$tmp/text.txt" >/dev/null 2>&1
"$ember" run-example --quiet --master 'local[2]' wordcount "$tmp/text.txt" "$tmp/want" \
    >"$tmp/want.stdout"
cat "$tmp/want"/part-* | sort >"$tmp/want.sorted"

# The wrapper: $WRAP_MODE says what happens to which executor (by its --exec-id).
mkdir -p "$tmp/wrap"
cat >"$tmp/wrap/ember" <<EOF
#!/usr/bin/env bash
id=; prev=
for a in "\$@"; do [ "\$prev" = --exec-id ] && id=\$a; prev=\$a; done
case "\${WRAP_MODE:-}:\$id" in
    before:exec-1|standalone:*-0)
        # the first executor dies before it can connect (once per test dir)
        if mkdir "$tmp/died-\$id" 2>/dev/null; then kill -9 \$\$; fi ;;
    after:exec-2)
        # held back until the test has killed exec-1 (at most 60 s)
        for _ in \$(seq 600); do [ -e "$tmp/go" ] && break; sleep 0.1; done ;;
esac
exec "$real" "\$@"
EOF
chmod +x "$tmp/wrap/ember"

same_output() {   # NAME OUTDIR STDOUT
    cat "$2"/part-* 2>/dev/null | sort >"$tmp/got.sorted"
    cmp -s "$tmp/want.sorted" "$tmp/got.sorted" || fail "$1: saved counts differ from local mode"
    cmp -s "$tmp/want.stdout" "$3" || fail "$1: printed top words differ from local mode"
}

# ---------------------------------------------------------------- 1. killed before registering
rm -rf "$tmp/out1"
if WRAP_MODE=before EMBER_BIN=$tmp/wrap/ember EMBER_LOG=info TMPDIR=$tmp/t \
        "$ember" run-example --master 'local-cluster[2,1]' \
        --conf ember.cluster.registerTimeoutMs=30000 wordcount "$tmp/text.txt" "$tmp/out1" \
        >"$tmp/out1.stdout" 2>"$tmp/out1.err"; then
    same_output before "$tmp/out1" "$tmp/out1.stdout"
    grep -q "exec-1 was killed by signal 9 before registering; replaced" "$tmp/out1.err" ||
        fail "before: no replacement logged: $(grep -i exec- "$tmp/out1.err" | head -5)"
    grep -q "executor exec-3 registered" "$tmp/out1.err" || fail "before: exec-3 never registered"
else
    fail "before: job failed: $(grep -v INFO "$tmp/out1.err" | head -c 600)"
fi
[ -d "$tmp/died-exec-1" ] || fail "before: the wrapper never killed exec-1"
check_clean before

# ---------------------------------------------------------------- 2. killed after registering,
# while the driver waits for the other executor
rm -rf "$tmp/out2" "$tmp/go"
WRAP_MODE=after EMBER_BIN=$tmp/wrap/ember EMBER_LOG=info TMPDIR=$tmp/t \
    "$ember" run-example --master 'local-cluster[2,1]' \
    --conf ember.cluster.registerTimeoutMs=30000 wordcount "$tmp/text.txt" "$tmp/out2" \
    >"$tmp/out2.stdout" 2>"$tmp/out2.err" &
job=$!
victim=
for _ in $(seq 600); do
    # the job's shell may not have opened out2.err yet: a missing file is "not yet"
    victim=$(sed -n 's/.*executor exec-1 registered (pid \([0-9]*\),.*/\1/p' "$tmp/out2.err" \
        2>/dev/null || true)
    [ -n "$victim" ] && break
    sleep 0.1
done
if [ -n "$victim" ]; then
    kill -9 "$victim" 2>/dev/null || fail "after: could not kill exec-1 (pid $victim)"
    for _ in $(seq 100); do grep -q "exec-1 .* lost" "$tmp/out2.err" && break; sleep 0.1; done
else
    fail "after: exec-1 never registered"
fi
touch "$tmp/go"
if wait "$job"; then
    same_output after "$tmp/out2" "$tmp/out2.stdout"
    grep -q "executor exec-3 registered" "$tmp/out2.err" ||
        fail "after: no replacement registered: $(grep -i exec- "$tmp/out2.err" | head -8)"
else
    fail "after: job failed: $(grep -v INFO "$tmp/out2.err" | head -c 600)"
fi
check_clean after

# ---------------------------------------------------------------- 4. a job library's table
"$ember" run-example --quiet --master 'local[2]' registered "$tmp/text.txt" "$tmp/reg-want" \
    >"$tmp/reg-want.stdout" || fail "registered: local[2] failed"
[ -s "$tmp/reg-want.stdout" ] || fail "registered: local[2] printed nothing"
cat "$tmp/reg-want"/part-* >"$tmp/reg-want.saved"
cmp -s "$tmp/reg-want.saved" "$tmp/reg-want.stdout" || fail "registered: saved and printed differ"
if command -v nm >/dev/null; then
    exported=$(nm -D --defined-only "$reg_so" | awk '$2 == "T" { print $3 }' | sort | tr '\n' ' ')
    [ "$exported" = "em_job_register ember_main " ] ||
        fail "registered: exports more than ember_main and em_job_register: $exported"
fi
same_registered() {   # NAME OUTDIR STDOUT
    cat "$2"/part-* 2>/dev/null | cmp -s "$tmp/reg-want.saved" - ||
        fail "$1: saved lengths differ from local mode"
    cmp -s "$tmp/reg-want.stdout" "$3" || fail "$1: printed lengths differ from local mode"
}
rm -rf "$tmp/out4"
if TMPDIR=$tmp/t "$ember" run-example --quiet --master 'local-cluster[2,1]' registered \
        "$tmp/text.txt" "$tmp/out4" >"$tmp/out4.stdout" 2>"$tmp/out4.err"; then
    same_registered table "$tmp/out4" "$tmp/out4.stdout"
else
    fail "table: local-cluster[2,1] failed: $(head -c 600 "$tmp/out4.err")"
fi
check_clean table

# ---------------------------------------------------------------- 5. a clash in the table
rm -rf "$tmp/out5"
rc=0
EMBER_REGISTERED_CLASH=1 TMPDIR=$tmp/t "$ember" run-example --quiet \
    --master 'local-cluster[2,1]' registered "$tmp/text.txt" "$tmp/out5" \
    >"$tmp/out5.stdout" 2>"$tmp/out5.err" || rc=$?
[ "$rc" = 1 ] || fail "clash: exit status $rc, want 1"
grep -q "registered.so: em_job_register failed" "$tmp/out5.err" ||
    fail "clash: no message naming em_job_register: $(head -c 300 "$tmp/out5.err")"
[ ! -e "$tmp/out5" ] || fail "clash: an output dir was made"
check_clean clash

# ---------------------------------------------------------------- 3. standalone
if [ -f "$wc_so" ] && command -v python3 >/dev/null; then
    free_port() {
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    }
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/secret"
    chmod 600 "$tmp/secret"
    port=$(free_port)
    EMBER_LOG=info "$ember" master --port "$port" --ui-port 0 --secret-file "$tmp/secret" \
        >"$tmp/master.log" 2>&1 &
    for _ in $(seq 100); do grep -q "master listening" "$tmp/master.log" && break; sleep 0.1; done
    for i in 1 2; do
        mkdir -p "$tmp/t/work$i"
        WRAP_MODE=standalone EMBER_BIN=$tmp/wrap/ember EMBER_LOG=info \
            "$ember" worker --master "ember://127.0.0.1:$port" --cores 1 --memory 1g \
            --work-dir "$tmp/t/work$i" --secret-file "$tmp/secret" >"$tmp/worker$i.log" 2>&1 &
    done
    for _ in $(seq 100); do
        [ "$(grep -c "worker .* registered" "$tmp/master.log")" -ge 2 ] && break
        sleep 0.1
    done
    rm -rf "$tmp/out3"
    if EMBER_LOG=info "$ember" submit --master "ember://127.0.0.1:$port" \
            --secret-file "$tmp/secret" --executor-memory 512m --conf ember.ui.port=0 \
            "$wc_so" "$tmp/text.txt" "$tmp/out3" >"$tmp/out3.stdout" 2>"$tmp/out3.err"; then
        same_output standalone "$tmp/out3" "$tmp/out3.stdout"
        ls -d "$tmp"/died-* >/dev/null 2>&1 || fail "standalone: the wrapper killed no executor"
        grep -q "exited with status 137\|killed by signal 9" "$tmp"/worker*.log ||
            fail "standalone: no executor exit was reported"
    else
        fail "standalone: submit failed: $(grep -v INFO "$tmp/out3.err" | head -c 600)"
    fi
    rm -rf "$tmp/out6"
    if "$ember" submit --master "ember://127.0.0.1:$port" --quiet --secret-file "$tmp/secret" \
            --executor-memory 512m --conf ember.ui.port=0 "$reg_so" "$tmp/text.txt" \
            "$tmp/out6" >"$tmp/out6.stdout" 2>"$tmp/out6.err"; then
        same_registered "standalone table" "$tmp/out6" "$tmp/out6.stdout"
    else
        fail "standalone table: submit failed: $(head -c 600 "$tmp/out6.err")"
    fi
    for j in $(jobs -p); do kill -TERM "$j" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp/t/work1" "$tmp/t/work2"
    check_clean standalone
else
    echo "test_register: standalone part skipped ($wc_so not built)"
fi
finish
