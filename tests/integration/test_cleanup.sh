#!/usr/bin/env bash
# tests/integration/test_cleanup.sh BUILD_DIR - shuffle files are removed when their dataset
# dies (em_rdd_release; docs/shuffle.md "Cleanup"), not only when the application ends.
# The pagerank example releases every handle once the next dataset is built on it and
# checkpoints ranks every CHECKPOINT_EVERY iterations, so at any time at most
# CHECKPOINT_EVERY + 2 shuffles are alive (links' distinct and group_by_key, plus one per
# iteration since the last checkpoint). While a 40-iteration run in local-cluster[2,1]
# goes, a sampler counts the distinct shuffle ids that have files in the executors'
# shuffle dirs; without cleanup it would climb to 42. Checked:
#  1. local checkpoints: the sampled maximum stays within the bound (+4: executors delete
#     dead shuffles on a cleaner thread, off the job's path, so on a busy machine a few dead
#     shuffles may still have files while new ones are written; without cleanup the count
#     climbs to 42, far above the bound), the
#     sampler saw files at all, and the ranks equal a local[2] run without checkpoints;
#  2. reliable checkpoints with ember.checkpoint.cleanup=true: the same bound, at most two
#     checkpoint directories at a time (the new one is written before the old one dies),
#     none left after the run;
#  3. no executor process and no file is left behind (cluster_lib.sh check_clean).
source "$(dirname "$0")/cluster_lib.sh" cleanup "${1:-}"

iters=40
every=5
bound=$((every + 2 + 4))

"$ember" gen graph --nodes 300 --edges 3000 --seed 11 --out "$tmp/edges.txt"

# compare WANT GOT: same nodes, ranks within 1e-9 ("node<TAB>rank" lines)
compare() {
    awk -F '\t' '
        NR == FNR { want[$1] = $2; next }
        { if (!($1 in want)) { if (bad++ < 10) printf "unexpected node %s\n", $1; next }
          d = want[$1] - $2; if (d < 0) d = -d
          if (d > 1e-9 && bad++ < 10) printf "node %s: rank %s, want %s\n", $1, $2, want[$1]
          delete want[$1] }
        END { for (k in want) if (bad++ < 10) printf "missing node %s\n", k
              exit bad > 0 }' "$1" "$2"
}

# live shuffle ids with files in some executor's shuffle dir right now
live_sids() {
    # find fails when a directory goes away under it (the cleaner): not an error here
    { find "$tmp/t" -path '*/ember-exec-*/shuffle/shuffle_*.index' 2>/dev/null || true; } |
        sed 's|.*/shuffle_\([0-9]*\)_[0-9]*\.index$|\1|' | sort -u | wc -l
}

# run NAME EVERY [--conf ...]: pagerank in local-cluster[2,1] under TMPDIR=$tmp/t while
# sampling; sets max_sids, max_ckpts and samples_with_files
run() {
    local name=$1 ck=$2 pid n c
    shift 2
    max_sids=0
    max_ckpts=0
    samples_with_files=0
    TMPDIR=$tmp/t "$ember" run-example --quiet --master 'local-cluster[2,1]' "$@" \
        pagerank "$tmp/edges.txt" "$iters" "$tmp/out-$name" "$ck" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        n=$(live_sids)
        [ "$n" -gt "$max_sids" ] && max_sids=$n
        [ "$n" -gt 0 ] && samples_with_files=$((samples_with_files + 1))
        if [ -d "$tmp/ck" ]; then
            c=$({ find "$tmp/ck" -mindepth 2 -maxdepth 2 -name 'rdd-*' -type d 2>/dev/null ||
                  true; } | wc -l)
            [ "$c" -gt "$max_ckpts" ] && max_ckpts=$c
        fi
        sleep 0.05
    done
    if ! wait "$pid"; then
        fail "$name: pagerank failed: $(head -c 600 "$tmp/$name.err")"
        return
    fi
    [ -f "$tmp/out-$name/_SUCCESS" ] || fail "$name: no _SUCCESS"
    cat "$tmp/out-$name"/part-* | sort >"$tmp/$name.ranks"
    compare "$tmp/want.ranks" "$tmp/$name.ranks" || fail "$name: ranks differ from local[2]"
    echo "$name: at most $max_sids live shuffles sampled ($samples_with_files samples with" \
        "files), at most $max_ckpts checkpoint dirs"
    [ "$max_sids" -le "$bound" ] ||
        fail "$name: $max_sids shuffles had files at once (bound $bound): not cleaned up"
    [ "$samples_with_files" -gt 0 ] || fail "$name: the sampler never saw a shuffle file"
}

# reference: local[2], no checkpoints
if ! "$ember" run-example --quiet --master 'local[2]' pagerank "$tmp/edges.txt" "$iters" \
    "$tmp/out-ref" 0 >/dev/null 2>"$tmp/ref.err"; then
    fail "reference run: $(head -c 600 "$tmp/ref.err")"
    finish
fi
cat "$tmp/out-ref"/part-* | sort >"$tmp/want.ranks"

# ---------------------------------------------------------------- 1. local checkpoints
run local "$every"
check_clean local

# ---------------------------------------------------------------- 2. reliable checkpoints
mkdir -p "$tmp/ck"
run reliable "$every" --conf "ember.checkpoint.dir=$tmp/ck" --conf ember.checkpoint.cleanup=true
[ "$max_ckpts" -ge 1 ] || fail "reliable: the sampler never saw a checkpoint directory"
[ "$max_ckpts" -le 2 ] || fail "reliable: $max_ckpts checkpoint directories at once (max 2)"
left=$(find "$tmp/ck" -mindepth 2 2>/dev/null | head -5)
[ -z "$left" ] || fail "reliable: checkpoint files left: $left"
check_clean reliable

finish
