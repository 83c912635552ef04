#!/usr/bin/env bash
# tests/integration/test_sql_dist.sh BUILD_DIR - SQL's distributed path gives the same rows
# as the local path: CSV tables (split into byte ranges, quoted fields, a multiline file)
# with joins (broadcast and shuffle), GROUP BY, ORDER BY, LIMIT, in local[2] and
# local-cluster[2,1] with ember.sql.forceDistributed; bad CSV rows are errors naming file
# and line, or skipped with mode 'dropmalformed'; select1.test of the sqllogictest pack
# passes 100% on the distributed path (its first 200 records in local-cluster[2,1] too).
# Joins on text keys, on two keys, with NULL and repeated keys on the broadcast side.
# Broadcast thresholds: 10 MiB (static broadcasts), 20000 bytes (filtered, pruned sides
# computed first and broadcast, a left one by swapping the sides), 0 (shuffle joins).
set -euo pipefail
build=$(cd "${1:?usage: test_sql_dist.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
ember=$build/bin/ember
[ -x "$ember" ] || { echo "FAIL: $ember not built"; exit 1; }
"$ember" help sql >/dev/null 2>&1 || { echo "SKIP: ember built without SQL"; exit 0; }
tmp=$(mktemp -d /tmp/ember-test-sqld.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# ---- data: 3000 events, 300 users (quoted names with commas and quotes), 4 regions
awk 'BEGIN { print "userId,name,age,region";
             for (i = 1; i <= 300; i++)
                 printf "%d,\"user %d, \"\"x\"\"\",%s,%d\n", i, i, (i % 17 == 0 ? "" : 18 + i % 50), i % 4 }' \
    >"$tmp/users.csv"
awk 'BEGIN { print "userId,action,amount,day";
             for (i = 1; i <= 3000; i++)
                 printf "%d,%d,%.2f,2024-01-%02d\n", 1 + (i * 7) % 320, i % 2, (i % 97) * 1.25, 1 + i % 28 }' \
    >"$tmp/events.csv"
printf 'region,label\n0,"north\nside"\n1,east\n2,"south ""s"""\n' >"$tmp/regions.csv"
# tags: text keys (users' names, repeated), NULL and repeated ages: broadcast build sides
# kept encoded and probed through their Bloom filter and hash table (sql/exec_local.c)
awk 'BEGIN { print "name,age,tag";
             for (i = 1; i <= 40; i++)
                 printf "\"user %d, \"\"x\"\"\",%s,t%d\n", (i % 20) * 7 + 1, (i % 9 == 0 ? "" : 18 + i % 13), i }' \
    >"$tmp/tags.csv"

cat >"$tmp/q.sql" <<EOF
CREATE TABLE users (userId INTEGER, name TEXT, age INTEGER, region INTEGER)
  USING csv OPTIONS (path '$tmp/users.csv', header 'true');
CREATE TABLE events (userId INTEGER, action INTEGER, amount DOUBLE, day DATE)
  USING csv OPTIONS (path '$tmp/events.csv', header 'true');
CREATE TABLE regions (region INTEGER, label TEXT)
  USING csv OPTIONS (path '$tmp/regions.csv', header 'true', multiline 'true');
SELECT count(*), sum(amount), min(day), max(name) FROM events, users WHERE events.userId = users.userId;
SELECT e.action, u.age, u.region FROM users u JOIN events e ON u.userId = e.userId
  WHERE u.age > 60 ORDER BY e.action, u.age, u.region;
SELECT u.region, r.label, count(*), avg(u.age), sum(e.amount) FROM events e
  JOIN users u ON e.userId = u.userId LEFT JOIN regions r ON u.region = r.region
  GROUP BY u.region, r.label ORDER BY 1;
SELECT e.userId, u.name FROM events e LEFT JOIN users u ON e.userId = u.userId
  WHERE u.name IS NULL ORDER BY 1 DESC LIMIT 5;
SELECT userId, count(DISTINCT day), sum(amount) FROM events GROUP BY userId
  HAVING count(*) > 9 ORDER BY 3 DESC, 1 LIMIT 7 OFFSET 2;
SELECT age, count(*) FROM users GROUP BY age ORDER BY age DESC;
SELECT name FROM users WHERE userId IN (SELECT userId FROM events WHERE amount > 119)
  ORDER BY userId LIMIT 4;
SELECT day, action, count(*) FROM events WHERE day BETWEEN DATE '2024-01-05' AND DATE '2024-01-07'
  GROUP BY day, action ORDER BY day DESC, action;
CREATE TABLE tags (name TEXT, age INTEGER, tag TEXT)
  USING csv OPTIONS (path '$tmp/tags.csv', header 'true');
SELECT u.userId, t.tag, t.name FROM users u JOIN tags t ON u.name = t.name ORDER BY 1, 2;
SELECT u.userId, t.tag FROM users u JOIN tags t ON u.age = t.age AND u.region = t.age % 4
  WHERE u.userId > 20 ORDER BY 1, 2;
SELECT count(*), sum(e.amount), min(t.tag) FROM events e JOIN tags t ON e.userId = t.age;
EOF

"$ember" sql --format csv --no-timer -f "$tmp/q.sql" >"$tmp/local.csv" 2>"$tmp/local.err" ||
    fail "local path: $(tail -3 "$tmp/local.err")"
[ "$(wc -l <"$tmp/local.csv")" -gt 40 ] || fail "local path: too few rows: $(cat "$tmp/local.csv")"
for master in 'local[2]' 'local-cluster[2,1]'; do
    for bcast in 10485760 20000 0; do   # 20000: sides that turn out small are broadcast
        what="$master broadcast threshold $bcast"
        "$ember" sql --master "$master" --conf ember.sql.forceDistributed=true \
            --conf ember.sql.autoBroadcastJoinThreshold=$bcast --format csv --no-timer \
            -f "$tmp/q.sql" >"$tmp/dist.csv" 2>"$tmp/dist.err" ||
            fail "$what: $(grep -v 'ember warn' "$tmp/dist.err" | tail -3)"
        cmp -s "$tmp/local.csv" "$tmp/dist.csv" ||
            fail "$what: rows differ from the local path: $(diff "$tmp/local.csv" "$tmp/dist.csv" | head -8)"
    done
done

# EXPLAIN names the path and the physical operators
out=$("$ember" sql --conf ember.sql.forceDistributed=true --conf ember.sql.autoBroadcastJoinThreshold=0 \
      --no-timer --format tsv -f <(head -4 "$tmp/q.sql"; echo "EXPLAIN SELECT u.region, count(*)
      FROM events e JOIN users u ON e.userId = u.userId GROUP BY u.region ORDER BY 2 DESC LIMIT 3;"))
for op in 'Distributed path' ShuffleHashJoin 'HashAggregate(partial)' 'HashAggregate(final)' \
          TakeOrdered 'CsvScan(byte ranges) users'; do
    grep -qF "$op" <<<"$out" || fail "EXPLAIN lacks '$op': $out"
done
out=$("$ember" sql --no-timer --format tsv -f <(head -2 "$tmp/q.sql"; echo "EXPLAIN SELECT count(*) FROM users;"))
grep -q 'Distributed path' <<<"$out" && fail "small input without a context took the distributed path"

rc=0
"$ember" sql --conf ember.sql.forceDistributed=maybe --no-timer -e "SELECT 1" >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -q "ember.sql.forceDistributed: expected true or false, got 'maybe'" "$tmp/err" ||
    fail "bad ember.sql.forceDistributed: exit $rc: $(cat "$tmp/err")"

# ---- bad rows: an error naming file and line, or skipped with mode 'dropmalformed'
{ cat "$tmp/events.csv"; echo "7,1,oops,2024-01-02"; echo "8,1,2.5,2024-01-03"; } >"$tmp/bad.csv"
bad="CREATE TABLE b (userId INTEGER, action INTEGER, amount DOUBLE, day DATE) USING csv
  OPTIONS (path '$tmp/bad.csv', header 'true'MODE); SELECT count(*) FROM b;"
rc=0
"$ember" sql --conf ember.sql.forceDistributed=true --no-timer -e "${bad/MODE/}" >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] || fail "bad row: exit $rc, want 1"
grep -q "bad.csv: line 3002: column amount: 'oops' is not a DOUBLE" "$tmp/err" ||
    fail "bad row error: $(grep -v 'ember warn' "$tmp/err" | tail -2)"
out=$("$ember" sql --conf ember.sql.forceDistributed=true --no-timer --format csv \
      -e "${bad/MODE/, mode \'dropmalformed\'}" 2>"$tmp/err") || fail "dropmalformed: $(tail -2 "$tmp/err")"
[ "$(tail -1 <<<"$out" | tr -d '\r')" = 3001 ] || fail "dropmalformed count: $out"
# a quoted line break in a file split into ranges is an error that names the option
rc=0
"$ember" sql --conf ember.sql.forceDistributed=true --no-timer -e "CREATE TABLE r (region INTEGER,
  label TEXT) USING csv OPTIONS (path '$tmp/regions.csv', header 'true'); SELECT * FROM r;" \
    >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -q "regions.csv: line 2: a quoted field holds a line break; add OPTIONS (multiline 'true')" "$tmp/err" ||
    fail "quoted line break without multiline: exit $rc: $(grep -v 'ember warn' "$tmp/err" | tail -2)"

# ---- sqllogictest select1 on the distributed path
pack=$src/../shared/sqllogictest/core-pack.tgz
if [ -f "$pack" ]; then
    mkdir -p "$tmp/slt"
    tar xzf "$pack" -C "$tmp/slt" select1.test
    out=$(cd "$tmp/slt" && "$ember" sql --conf ember.sql.forceDistributed=true --slt select1.test \
          --slt-show 3 2>"$tmp/slt.err" | tail -1)
    grep -q '^total: 1031 passed, 0 failed' <<<"$out" ||
        fail "select1.test distributed: $out $(grep -v 'ember warn' "$tmp/slt.err" | head -3)"
    # its first 200 records (tables, inserts, queries) in local-cluster[2,1] as well
    awk 'BEGIN { RS = ""; ORS = "\n\n" } NR <= 200' "$tmp/slt/select1.test" >"$tmp/slt/s1head.test"
    out=$(cd "$tmp/slt" && "$ember" sql --master 'local-cluster[2,1]' --conf ember.sql.forceDistributed=true \
          --slt s1head.test --slt-show 3 2>"$tmp/slt.err" | tail -1)
    grep -q '^total: 200 passed, 0 failed' <<<"$out" ||
        fail "select1.test head in local-cluster[2,1]: $out $(grep -v 'ember warn' "$tmp/slt.err" | head -3)"
else
    echo "SKIP: $pack not found (select1.test on the distributed path)"
fi
[ "$fails" = 0 ] && echo "PASS: sql distributed" || { echo "$fails failure(s)"; exit 1; }
