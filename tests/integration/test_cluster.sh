#!/usr/bin/env bash
# tests/integration/test_cluster.sh BUILD_DIR - cluster mode end to end:
#  1. wordcount, pagerank and the faultjobs examples in local-cluster[2,1] give exactly
#     local[2]'s output (part files and stdout), pagerank also with ember.net.compress
#     forced on and off;
#  2. kill -9 of an executor at several points of wordcount, a round-robin repartition and a
#     random-key shuffle (map stages and result stages): every run gives exactly the
#     fault-free output;
#  3. after every run no `ember executor` process and no temporary directory is left (runs
#     use TMPDIR=$tmp/t, which must end up empty);
#  4. an executor started with a wrong secret is refused and exits with status 1.
# (The job library hash check and the canary library are in tests/integration/test_canary.sh.)
source "$(dirname "$0")/cluster_lib.sh" cluster "${1:-}"

# run NAME MASTER OUT ARGS... : runs an example, stdout to $tmp/NAME.stdout
run() {
    local name=$1 master=$2 out=$3
    shift 3
    rm -rf "$out"
    local t0
    t0=$(date +%s.%N)
    if ! TMPDIR=$tmp/t "$ember" run-example --quiet --master "$master" "$@" \
        >"$tmp/$name.stdout" 2>"$tmp/$name.stderr"; then
        fail "$name: failed: $(head -c 600 "$tmp/$name.stderr")"
        return 1
    fi
    echo "$(date +%s.%N) - $t0" | bc >"$tmp/$name.secs"
    check_clean "$name"
}

# at NAME FRACTION: FRACTION of the fault-free cluster run's wall time
at() { echo "scale=2; $(cat "$tmp/$1-cluster.secs") * $2" | bc; }

same_output() {   # NAME WANT_DIR GOT_DIR
    if ! cmp -s <(cat "$2"/part-* | sort) <(cat "$3"/part-* | sort); then
        fail "$1: output differs from the fault-free one"
        diff <(cat "$2"/part-* | sort) <(cat "$3"/part-* | sort) | head -5 || true
    fi
}

"$ember" gen text --mib 6 --seed 1 --out "$tmp/text.txt"
"$ember" gen graph --nodes 300 --edges 3000 --seed 5 --out "$tmp/graph.txt"

# ---------------------------------------------------------------- 1. same results
run wc-local 'local[2]' "$tmp/wc-local" wordcount "$tmp/text.txt" "$tmp/wc-local"
run wc-cluster 'local-cluster[2,1]' "$tmp/wc-cluster" wordcount "$tmp/text.txt" \
    "$tmp/wc-cluster" && {
    same_output wordcount "$tmp/wc-local" "$tmp/wc-cluster"
    cmp -s "$tmp/wc-local.stdout" "$tmp/wc-cluster.stdout" || fail "wordcount: stdout differs"
}
run pr-local 'local[2]' "$tmp/pr-local" pagerank "$tmp/graph.txt" 5 "$tmp/pr-local"
run pr-cluster 'local-cluster[2,1]' "$tmp/pr-cluster" pagerank "$tmp/graph.txt" 5 \
    "$tmp/pr-cluster" && {
    same_output pagerank "$tmp/pr-local" "$tmp/pr-cluster"
    cmp -s "$tmp/pr-local.stdout" "$tmp/pr-cluster.stdout" || fail "pagerank: stdout differs"
}
# Loopback links skip zstd on the wire by default (ember.net.compress=auto); both forced
# settings must give the same results.
for z in true false; do
    EMBER_NET_COMPRESS=$z run "pr-cluster-$z" 'local-cluster[2,1]' "$tmp/pr-cluster-$z" \
        pagerank "$tmp/graph.txt" 5 "$tmp/pr-cluster-$z" && {
        same_output "pagerank (ember.net.compress=$z)" "$tmp/pr-local" "$tmp/pr-cluster-$z"
        cmp -s "$tmp/pr-local.stdout" "$tmp/pr-cluster-$z.stdout" ||
            fail "pagerank (ember.net.compress=$z): stdout differs"
    }
done
if EMBER_NET_COMPRESS=maybe "$ember" run-example --quiet --master 'local-cluster[2,1]' \
    pagerank "$tmp/graph.txt" 1 "$tmp/pr-bad" >/dev/null 2>"$tmp/pr-bad.stderr" ||
    ! grep -q "ember.net.compress" "$tmp/pr-bad.stderr"; then
    fail "ember.net.compress=maybe: expected an error naming the setting"
fi
for mode in repartition randkey; do
    slow=5000
    [ $mode = randkey ] && slow=20000
    run "$mode-local" 'local[2]' "$tmp/$mode-local" faultjobs $mode "$tmp/text.txt" \
        "$tmp/$mode-local" $slow
    run "$mode-cluster" 'local-cluster[2,1]' "$tmp/$mode-cluster" faultjobs $mode \
        "$tmp/text.txt" "$tmp/$mode-cluster" $slow &&
        same_output "$mode" "$tmp/$mode-local" "$tmp/$mode-cluster"
done

# ---------------------------------------------------------------- 2. kill -9 in a loop
# kill_run NAME DELAY WANT_DIR ARGS... : kills one executor DELAY seconds into the run
kill_run() {
    local name=$1 delay=$2 want=$3 out=$tmp/kill-out
    shift 3
    local args=() try killed
    for a in "$@"; do args+=("${a//@OUT@/$out}"); done
    # A busy machine makes run times vary: when the job ended before the kill, run it again
    # with half the delay (at most three tries), so the loop really kills executors.
    for try in 1 2 3; do
        rm -rf "$out"
        TMPDIR=$tmp/t "$ember" run-example --quiet --master 'local-cluster[2,1]' "${args[@]}" \
            >"$tmp/kill.stdout" 2>"$tmp/kill.stderr" &
        local job=$!
        sleep "$delay"
        local victim
        victim=$(our_executors | head -1)
        killed=0
        if [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null; then killed=1; fi
        if ! wait "$job"; then
            fail "$name (kill at ${delay}s): job failed: $(head -c 600 "$tmp/kill.stderr")"
        else
            same_output "$name (kill at ${delay}s)" "$want" "$out"
            if [ -f "$want.stdout" ]; then
                cmp -s "$want.stdout" "$tmp/kill.stdout" || fail "$name (kill at ${delay}s): stdout"
            fi
        fi
        check_clean "$name (kill at ${delay}s)"
        [ $killed = 1 ] && break
        delay=$(awk -v d="$delay" 'BEGIN { printf "%.3f", d / 2 }')
    done
    kills=$((kills + killed))
}
kills=0
for f in 0.15 0.4 0.6 0.8; do
    kill_run wordcount "$(at wc $f)" "$tmp/wc-local" wordcount "$tmp/text.txt" @OUT@
done
for f in 0.2 0.5 0.75; do
    kill_run repartition "$(at repartition $f)" "$tmp/repartition-local" faultjobs repartition "$tmp/text.txt" \
        @OUT@ 5000
done
for f in 0.2 0.5 0.75; do
    kill_run randkey "$(at randkey $f)" "$tmp/randkey-local" faultjobs randkey "$tmp/text.txt" @OUT@ 20000
done

[ $kills -ge 7 ] || fail "only $kills of 10 runs had an executor to kill (jobs too fast?)"

# ---------------------------------------------------------------- 4. wrong secret
TMPDIR=$tmp/t "$ember" run-example --quiet --master 'local-cluster[1,1]' faultjobs randkey \
    "$tmp/text.txt" "$tmp/slow-out" 20000 >/dev/null 2>&1 &
job=$!
addr=""
for _ in $(seq 100); do
    addr=$( { pgrep -af "ember executor --driver .* --work-dir $tmp/t/" || true; } | head -1 |
        sed -n 's/.*--driver \([^ ]*\).*/\1/p')
    [ -n "$addr" ] && break
    sleep 0.1
done
if [ -z "$addr" ]; then
    fail "wrong secret: no driver address found"
else
    set +e
    EMBER_SECRET=not-the-secret-of-this-app timeout 20 "$ember" executor --driver "$addr" \
        --exec-id rogue --cores 1 --work-dir "$tmp/rogue" >"$tmp/rogue.out" 2>&1
    rc=$?
    set -e
    [ $rc = 1 ] || fail "wrong secret: executor exit status $rc (want 1)"
    grep -q "secret" "$tmp/rogue.out" || fail "wrong secret: no clear error: $(cat "$tmp/rogue.out")"
    EMBER_SECRET=short timeout 20 "$ember" executor --driver "$addr" --exec-id rogue \
        --cores 1 >/dev/null 2>&1 && fail "a 5-byte secret was accepted"
fi
wait "$job" || fail "wrong secret: the application failed"
check_clean "wrong secret"
rm -rf "$tmp/rogue"

finish
