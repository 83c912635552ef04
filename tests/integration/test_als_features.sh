#!/usr/bin/env bash
# tests/integration/test_als_features.sh BUILD_DIR - the ALS inputs and outputs of issues 11
# and 14, end to end in local[2] and local-cluster[2,1]:
#  1. dense integer ids (the generator's 0..n-1) are numbered by value on the executors
#     without an id-map job: the same model (train RMSE to every digit) as the driver's
#     reader, which maps them and renumbers; --map-ids numbers by first appearance;
#  2. `ember als --sql "SELECT ..." --table NAME=PATH` trains the same model as the same
#     ratings read from the file (train RMSE to every digit), --test-sql as --test; integer
#     ids in a query take the dense numbering too, string ids do not (as in a file); bad queries
#     and NULL ratings are errors naming the cause (the row), --skip-bad-lines counts them;
#     the Netflix Prize layout read on the executors gives the driver reader's model;
#  3. implicit feedback: ranking metrics computed on the executors equal the driver's;
#  4. --recommend-all / --recommend-all-items write top-N lists from the executors that
#     agree with `ember als recommend` on a saved model.
source "$(dirname "$0")/cluster_lib.sh" als_features "${1:-}"
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=512m

"$ember" gen ratings --scale 0.002 --seed 5 --out "$tmp/r" 2>/dev/null
field() { sed -n "s/.*\"$2\":\(true\|false\|null\|[-0-9.e][-0-9.e]*\).*/\1/p" <<<"$1"; }
als() {   # MASTER [FLAGS] -> the --json line
    "$ember" als --rank 6 --iterations 3 --lambda 0.05 --master "$@" --json | tail -n 1
}
same() {   # WHAT A B FIELD... (every digit)
    local what=$1 a=$2 b=$3 f
    shift 3
    for f in "$@"; do
        [ -n "$(field "$a" "$f")" ] || fail "$what: no $f in: $a"
        [ "$(field "$a" "$f")" = "$(field "$b" "$f")" ] ||
            fail "$what: $f differs: $(field "$a" "$f") vs $(field "$b" "$f")"
    done
}
close() {   # WHAT A B FIELD... (to 1e-12: sums taken per partition on the executors)
    local what=$1 a=$2 b=$3 f
    shift 3
    for f in "$@"; do
        awk -v a="$(field "$a" "$f")" -v b="$(field "$b" "$f")" \
            'BEGIN { d = a - b; exit !(a != "" && d < 1e-12 && d > -1e-12) }' ||
            fail "$what: $f differs: $(field "$a" "$f") vs $(field "$b" "$f")"
    done
}

# 1. dense ids
for m in 'local[2]' 'local-cluster[2,1]'; do
    ex=$(als "$m" --train "$tmp/r.train.tsv" --test "$tmp/r.test.tsv" 2>"$tmp/d1.err")
    [ "$(field "$ex" dense_user_ids)" = true ] && [ "$(field "$ex" dense_item_ids)" = true ] ||
        fail "$m: dense ids not detected: $ex"
    [ "$(field "$ex" read_on_executors)" = true ] || fail "$m: not read on the executors"
    drv=$(als "$m" --train "$tmp/r.train.tsv" --test "$tmp/r.test.tsv" --driver-read 2>/dev/null)
    same "$m dense: executors vs driver" "$ex" "$drv" train_rmse
    close "$m dense: executors vs driver" "$ex" "$drv" test_rmse
    mapped=$(als "$m" --train "$tmp/r.train.tsv" --test "$tmp/r.test.tsv" --map-ids 2>/dev/null)
    [ "$(field "$mapped" dense_user_ids)" = false ] || fail "$m: --map-ids still dense"
    awk -v a="$(field "$ex" test_rmse)" -v b="$(field "$mapped" test_rmse)" \
        'BEGIN { d = a - b; exit !(d < 0.05 && d > -0.05) }' ||
        fail "$m: --map-ids test RMSE $(field "$mapped" test_rmse) far from $(field "$ex" test_rmse)"
done

# 2. --sql: a .tsv table with a header line
{ printf 'uid\tmovie\tstars\n'; cat "$tmp/r.train.tsv"; } >"$tmp/train.tsv"
{ printf 'uid\tmovie\tstars\n'; cat "$tmp/r.test.tsv"; } >"$tmp/test.tsv"
awk -F'\t' '{ printf "u%s\tm%s\t%s\n", $1, $2, $3 }' "$tmp/r.train.tsv" >"$tmp/s.tsv"
{ printf 'u\ti\tr\n'; cat "$tmp/s.tsv"; } >"$tmp/sh.tsv"
for m in 'local[2]' 'local-cluster[2,1]'; do
    file=$(als "$m" --train "$tmp/r.train.tsv" --test "$tmp/r.test.tsv" 2>/dev/null)
    sql=$(als "$m" --sql "SELECT uid, movie, stars FROM r" --table "r=$tmp/train.tsv" \
        --test-sql "SELECT uid, movie, stars FROM t" --table "t=$tmp/test.tsv" 2>"$tmp/sql.err") ||
        fail "$m: --sql failed: $(tail -c 400 "$tmp/sql.err")"
    same "$m --sql vs file" "$file" "$sql" train_rmse n_train n_test
    close "$m --sql vs file" "$file" "$sql" test_rmse test_mae
    grep -q "read on the executors from --sql" "$tmp/sql.err" || fail "$m: --sql message"
    # string ids: first-appearance numbering, as the same strings in a file
    strf=$(als "$m" --train "$tmp/s.tsv" 2>/dev/null)
    str=$(als "$m" --sql "SELECT u, i, r FROM s" --table "s=$tmp/sh.tsv" 2>"$tmp/sql2.err") ||
        fail "$m: --sql with text ids failed: $(tail -c 400 "$tmp/sql2.err")"
    [ "$(field "$str" dense_user_ids)" = false ] || fail "$m: text ids taken as dense"
    same "$m --sql text ids vs file" "$strf" "$str" train_rmse n_train
done
# a filter in the query: the same as the filtered file
awk -F'\t' '$3 >= 2' "$tmp/r.train.tsv" >"$tmp/ge2.tsv"
a=$(als 'local[2]' --train "$tmp/ge2.tsv" --map-ids 2>/dev/null)
b=$(als 'local[2]' --sql "SELECT uid, movie, stars FROM r WHERE stars >= 2" \
    --table "r=$tmp/train.tsv" --map-ids 2>/dev/null)
same "--sql WHERE vs filtered file" "$a" "$b" train_rmse n_train

# errors: usage, unknown names with a caret, a NULL rating named by row or skipped
"$ember" als --sql "SELECT 1" --train x >/dev/null 2>"$tmp/e1" && fail "--sql with --train accepted"
grep -q -- "--sql and --train" "$tmp/e1" || fail "--sql + --train: $(cat "$tmp/e1")"
"$ember" als --sql "SELECT uid, movie, nope FROM r" --table "r=$tmp/train.tsv" \
    --master 'local[2]' >/dev/null 2>"$tmp/e2" && fail "unknown column accepted"
grep -q "nope" "$tmp/e2" && grep -q '\^' "$tmp/e2" || fail "unknown column: $(cat "$tmp/e2")"
"$ember" als --sql "SELECT uid, movie FROM r" --table "r=$tmp/train.tsv" \
    --master 'local[2]' >/dev/null 2>"$tmp/e3" && fail "two columns accepted"
grep -q "ALS takes three" "$tmp/e3" || fail "two columns: $(cat "$tmp/e3")"
{ printf 'uid,movie,stars\n1,2,3\n4,5,\n6,7,1.5\n1,7,2\n'; } >"$tmp/nulls.csv"
"$ember" als --sql "SELECT uid, movie, stars FROM n" --table "n=$tmp/nulls.csv" \
    --master 'local[2]' --iterations 1 >/dev/null 2>"$tmp/e4" && fail "NULL rating accepted"
grep -q "the rating is NULL" "$tmp/e4" || fail "NULL rating: $(cat "$tmp/e4")"
ok=$("$ember" als --sql "SELECT uid, movie, stars FROM n" --table "n=$tmp/nulls.csv" \
    --master 'local[2]' --iterations 1 --skip-bad-lines --json 2>"$tmp/e5" | tail -n 1) ||
    fail "--skip-bad-lines with a NULL: $(cat "$tmp/e5")"
[ "$(field "$ok" n_train)" = 3 ] || fail "NULL row not skipped: $ok"
grep -q "1 bad lines skipped" "$tmp/e5" || fail "skipped NULL row not counted: $(cat "$tmp/e5")"

# the Netflix Prize layout (movies 1..n, grouped by movie), read on the executors (several
# ranges cut inside sections) = read by the driver
sort -t$'\t' -k2,2n -s "$tmp/r.train.tsv" | awk -F'\t' '
    NR == 1 || $2 != last { printf "%d:\n", $2 + 1; last = $2 } { printf "%s,%s,2005-01-01\n", $1, $3 }' \
    >"$tmp/netflix.txt"
nfx=$(als 'local-cluster[2,1]' --train "$tmp/netflix.txt" --conf ember.default.parallelism=4 \
    2>"$tmp/nf.err") || fail "netflix on the executors: $(tail -c 400 "$tmp/nf.err")"
grep -q "read on the executors" "$tmp/nf.err" || fail "netflix layout not read on the executors"
[ "$(field "$nfx" dense_item_ids)" = true ] || fail "netflix movies 1..n not dense: $nfx"
nfd=$(als 'local-cluster[2,1]' --train "$tmp/netflix.txt" --conf ember.default.parallelism=4 \
    --driver-read 2>/dev/null)
same "netflix: executors vs driver" "$nfx" "$nfd" train_rmse n_train

# 3. implicit feedback: ranking metrics on the executors = on the driver
for m in 'local-cluster[2,1]'; do
    ex=$(als "$m" --train "$tmp/r.train.tsv" --test "$tmp/r.test.tsv" --implicit 2>/dev/null)
    drv=$(als "$m" --train "$tmp/r.train.tsv" --test "$tmp/r.test.tsv" --implicit --driver-read \
        2>/dev/null)
    [ "$(field "$ex" read_on_executors)" = true ] || fail "implicit: not read on the executors"
    close "$m implicit: executors vs driver" "$ex" "$drv" train_rmse test_rmse
    for f in precision_at_k map ndcg_at_k; do
        awk -v a="$(field "$ex" $f)" -v b="$(field "$drv" $f)" \
            'BEGIN { d = a - b; exit !(a > 0 && d < 1e-9 && d > -1e-9) }' ||
            fail "$m implicit $f: executors $(field "$ex" $f), driver $(field "$drv" $f)"
    done
done

# 4. recommend for all, against `ember als recommend` on the saved model
"$ember" als --train "$tmp/r.train.tsv" --rank 6 --iterations 4 --master 'local-cluster[2,1]' \
    --top 5 --save "$tmp/model" --recommend-all "$tmp/recs" \
    --recommend-all-items "$tmp/irecs" 2>"$tmp/rec.err" ||
    fail "--recommend-all failed: $(tail -c 400 "$tmp/rec.err")"
[ -f "$tmp/recs/_SUCCESS" ] && [ -f "$tmp/irecs/_SUCCESS" ] || fail "no _SUCCESS in the outputs"
users=$(cut -f1 "$tmp/r.train.tsv" | sort -u | wc -l)
items=$(cut -f2 "$tmp/r.train.tsv" | sort -u | wc -l)
[ "$(cat "$tmp"/recs/part-* | wc -l)" = $((users * 5)) ] ||
    fail "recommend-all: $(cat "$tmp"/recs/part-* | wc -l) lines for $users users"
[ "$(cat "$tmp"/irecs/part-* | wc -l)" = $((items * 5)) ] ||
    fail "recommend-all-items: $(cat "$tmp"/irecs/part-* | wc -l) lines for $items items"
for u in 0 17 $((users - 1)); do
    want=$("$ember" als recommend --model "$tmp/model" --user "$u" --top 5 | cut -f3)
    got=$(cat "$tmp"/recs/part-* | awk -F'\t' -v u="$u" '$1 == u { print $2 }')
    [ "$want" = "$got" ] || fail "user $u: recommend-all [$got], recommend [$want]"
done
"$ember" als --train "$tmp/r.train.tsv" --recommend-all "$tmp/recs" --master 'local[2]' \
    >/dev/null 2>"$tmp/e6" && fail "--recommend-all into an existing directory accepted"
grep -q "already exists" "$tmp/e6" || fail "existing --recommend-all dir: $(cat "$tmp/e6")"

check_clean "als_features"
finish "ok"
