#!/usr/bin/env bash
# tests/integration/test_probe_ml.sh BUILD_DIR - what a new user hits with ALS, the generator,
# inputs and executors (issue 16 items 7-12, 15, 16): each bad input below must exit non-zero
# (2 for usage), print a message naming the cause, and leave no process, no _temporary, no
# model .tmp dir and no ember-app-* dir behind ($TMPDIR is $tmp/t, checked after each probe).
# Then the good paths the fixes added: ember als recommend on a saved model, EMBER_MASTER
# honoured by ember als, ember help gen ratings, the load line's counts.
source "$(dirname "$0")/cluster_lib.sh" probe_ml "${1:-}"
ember=$(cd "$(dirname "$ember")" && pwd)/ember
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=256m
unset EMBER_MASTER EMBER_CONF_FILE
cd "$tmp"

# probe NAME WANT_RC MESSAGE CMD... : exit WANT_RC, stderr holds MESSAGE, nothing left.
probe() {
    local what=$1 want=$2 msg=$3 rc=0; shift 3
    timeout 120 "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    [ "$rc" = "$want" ] || fail "$what: exit $rc, want $want: $(head -c 300 "$tmp/err")"
    grep -qF -- "$msg" "$tmp/err" || fail "$what: stderr lacks '$msg': $(head -c 300 "$tmp/err")"
    check_clean "$what"
    left=$(find "$tmp" -maxdepth 3 \( -name _temporary -o -name '*.tmp.*' \) 2>/dev/null)
    [ -z "$left" ] || fail "$what: left $left"
}

"$ember" gen ratings --scale 0.002 --seed 5 --out r 2>/dev/null
head -40 r.train.tsv > small.tsv

# ---------------------------------------------------------------- item 7: integer flags
for v in 1.5 0x10 " 3" -1 99999999999999999999 ""; do
    probe "--rank '$v'" 2 "--rank: expected an integer in 1..512, got '$v'" \
        "$ember" als --train small.tsv --rank "$v"
done
probe "--iterations 1e0" 2 "--iterations: expected an integer" \
    "$ember" als --train small.tsv --iterations 1e0
probe "--blocks 2.0" 2 "--blocks: expected an integer" "$ember" als --train small.tsv --blocks 2.0
probe "--seed -1" 2 "--seed: expected an integer" "$ember" als --train small.tsv --seed -1
probe "--top 0" 2 "--top: expected an integer in 1..1000000, got '0'" \
    "$ember" als --train small.tsv --top 0
probe "unknown flag last" 2 "unknown flag --bogus" "$ember" als --train small.tsv --bogus
probe "gen --seed -1" 2 "--seed: expected a non-negative integer, got '-1'" \
    "$ember" gen ratings --seed -1 --out g
probe "gen --threads -1" 2 "--threads: expected an integer in 1..64, got '-1'" \
    "$ember" gen ratings --threads -1 --out g
probe "gen --threads 1.5" 2 "--threads: expected an integer in 1..64, got '1.5'" \
    "$ember" gen ratings --threads 1.5 --out g
probe "gen unknown flag" 2 "unknown flag '--sede'" "$ember" gen ratings --sede 1 --out g
[ ! -e g.train.tsv ] || fail "gen wrote output despite a usage error"

# ---------------------------------------------------------------- item 9: --save checked first
mkdir exists
probe "--save existing" 2 "--save exists: already exists" \
    "$ember" als --train r.train.tsv --save exists
grep -q "iteration" "$tmp/err" && fail "--save existing: trained before refusing"
probe "--save no parent" 2 "parent directory nodir does not exist" \
    "$ember" als --train r.train.tsv --save nodir/m

# ---------------------------------------------------------------- item 10: float overflow
{ head -3 small.tsv; printf '5\t465\t1e308\n'; tail -3 small.tsv; } > over.tsv
probe "rating 1e308" 1 "over.tsv:4: column 3: rating '1e308' overflows a float" \
    "$ember" als --train over.tsv --iterations 1
"$ember" als --train over.tsv --iterations 1 --skip-bad-lines >/dev/null 2>"$tmp/err" ||
    fail "--skip-bad-lines did not skip 1e308: $(head -c 300 "$tmp/err")"
grep -q "1 bad lines skipped" "$tmp/err" || fail "skipped line not counted: $(cat "$tmp/err")"
check_clean "skip 1e308"

# ---------------------------------------------------------------- item 11: permission denied
# Root reads everything: the probes run as nobody then (setpriv), on a world-readable copy.
as_user=()
if [ "$(id -u)" = 0 ]; then
    if command -v setpriv >/dev/null; then
        as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    fi
fi
if [ "$(id -u)" != 0 ] || [ ${#as_user[@]} -gt 0 ]; then
    chmod 755 "$tmp" "$tmp/t"
    chmod 1777 "$tmp/t"
    mkdir -p locked open && cp small.tsv locked/part-0 && cp small.tsv open/part-0
    chmod 000 locked
    chmod 000 open/part-0
    chmod 755 open
    probe "unreadable dir" 1 "input path 'locked': Permission denied" \
        "${as_user[@]}" "$ember" run-example wordcount locked wc-out
    probe "unreadable file" 1 "open/part-0: Permission denied" \
        "${as_user[@]}" "$ember" run-example wordcount open wc-out2
    grep -q "matches no file" "$tmp/err" && fail "unreadable input reported as 'matches no file'"
    chmod 755 locked open/part-0
    chmod 755 "$tmp/t"
    rm -rf "$tmp/t"/* 2>/dev/null || true
else
    echo "test_probe_ml: permission probes skipped (root without setpriv)"
fi

# ---------------------------------------------------------------- item 12: damaged model
"$ember" als --train r.train.tsv --iterations 2 --rank 4 --save model >/dev/null 2>"$tmp/err" ||
    fail "training and saving: $(tail -c 300 "$tmp/err")"
grep -q '"item_factors_crc32c"' model/metadata.json || fail "no checksum in metadata.json"
u=$(head -1 model/user_ids.txt)
"$ember" als recommend --model model --user "$u" --top 3 >"$tmp/rec" 2>"$tmp/err" ||
    fail "recommend: $(cat "$tmp/err")"
[ "$(grep -c "^recommend	$u	" "$tmp/rec")" = 3 ] || fail "recommend printed: $(cat "$tmp/rec")"
grep -qi "inf\|nan" "$tmp/rec" && fail "recommend scores not finite: $(cat "$tmp/rec")"
cp -r model damaged
python3 - damaged/item_factors.bin <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(37); b = f.read(1); f.seek(37); f.write(bytes([b[0] ^ 0x7f]))
PY
probe "flipped factor byte" 1 "damaged/item_factors.bin: checksum mismatch" \
    "$ember" als recommend --model damaged --user "$u"
probe "unknown user" 1 "user 'no-such-user' is not in the model" \
    "$ember" als recommend --model model --user no-such-user
probe "recommend usage" 2 "--model DIR and --user USER are required" \
    "$ember" als recommend --model model

# ---------------------------------------------------------------- item 16 and 3: masters, help
probe "als ember://" 2 "'ember submit'" "$ember" als --train small.tsv --master ember://127.0.0.1:1
probe "EMBER_MASTER bad" 2 "ember.master: bad value 'local[zz]'" \
    env EMBER_MASTER='local[zz]' "$ember" als --train small.tsv --iterations 1
probe "run-example ember://" 1 "run the job with 'ember submit" \
    "$ember" run-example --master ember://127.0.0.1:1 wordcount small.tsv wc3
EMBER_LOG=info EMBER_MASTER='local[1]' "$ember" als --train small.tsv --iterations 1 \
    >/dev/null 2>"$tmp/err" || fail "als with EMBER_MASTER=local[1]: $(tail -c 300 "$tmp/err")"
grep -q "context: 1 task threads" "$tmp/err" || fail "EMBER_MASTER ignored by ember als"
grep -q "items) in [0-9.]* s;" "$tmp/err" || fail "load line: $(grep loaded "$tmp/err")"
# The shuffle's zstd level reaches the executors (registration): ember als's default -3,
# or the user's; 0 and 23 are refused with the key's name.
EMBER_LOG=info "$ember" als --train small.tsv --iterations 1 --master 'local-cluster[2,1]' \
    >/dev/null 2>"$tmp/err" || fail "als local-cluster: $(tail -c 300 "$tmp/err")"
[ "$(grep -c 'task threads.*zstd level -3$' "$tmp/err")" = 2 ] ||
    fail "executors' zstd level (want -3 twice): $(grep 'zstd level' "$tmp/err")"
EMBER_LOG=info "$ember" als --train small.tsv --iterations 1 --master 'local-cluster[2,1]' \
    --conf ember.shuffle.compress.level=7 >/dev/null 2>"$tmp/err" ||
    fail "als level 7: $(tail -c 300 "$tmp/err")"
[ "$(grep -c 'task threads.*zstd level 7$' "$tmp/err")" = 2 ] ||
    fail "executors' zstd level (want 7 twice): $(grep 'zstd level' "$tmp/err")"
probe "zstd level 0" 2 "ember.shuffle.compress.level: bad value '0'" \
    "$ember" als --train small.tsv --iterations 1 --conf ember.shuffle.compress.level=0
probe "zstd level 23" 2 "ember.shuffle.compress.level: bad value '23'" \
    "$ember" als --train small.tsv --iterations 1 --conf ember.shuffle.compress.level=23
"$ember" help gen ratings >"$tmp/out" 2>&1 || fail "ember help gen ratings: $(cat "$tmp/out")"
grep -q "Usage: ember gen ratings" "$tmp/out" || fail "ember help gen ratings: $(head -2 "$tmp/out")"
# Item 15: the driver's status page says where it is, loudly when its port was taken.
printf 'a b a\n' > words.txt
python3 -c 'import socket,time,sys
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(1); print(s.getsockname()[1], flush=True)
time.sleep(60)' > busy.port &
busy=$!
for _ in $(seq 50); do [ -s busy.port ] && break; sleep 0.1; done
"$ember" run-example --conf "ember.ui.port=$(cat busy.port)" wordcount words.txt wc-ui     >/dev/null 2>"$tmp/err" || fail "run-example with a busy UI port: $(tail -c 300 "$tmp/err")"
kill "$busy" 2>/dev/null || true
grep -Eq "status page at http://127.0.0.1:[0-9]+/ \(the port asked for was taken\)" "$tmp/err" ||
    fail "the moved status page is not announced: $(head -c 300 "$tmp/err")"
check_clean "good paths"
finish "ok"
