#!/usr/bin/env bash
# tests/integration/test_sql_ml.sh BUILD_DIR - SQL to MLlib end to end (docs/sql-ml.md):
#  1. examples/sql_to_lr prints the same model and accuracy in local[2] and
#     local-cluster[2,1], and recovers the generator's coefficients;
#  2. `ember ml lr --sql ... --test-sql ...` in local-cluster[2,1] equals `ember ml lr
#     --train F --test G` on the same rows written as LIBSVM by Python (same accuracy,
#     coefficients to 1e-7 relative); a TEXT column is one-hot encoded in frequency order
#     and the mapping is in --json and saved beside a --save'd model;
#  3. `ember sql --export-libsvm` writes the rows Python reads back, and training on the
#     export gives the --sql model;
#  4. --split is seeded and disjoint; kmeans takes --sql and --conf; glm trains with
#     --drop-last; a NULL names its column and row (exit 1), --nulls skip counts them; bad
#     usage exits 2.
source "$(dirname "$0")/cluster_lib.sh" sql_ml "${1:-}"
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=512m
d=$tmp/d
mkdir -p "$d"

# 1. the example
ex() { "$ember" run-example --master "$1" --quiet sql_to_lr 3000 40000 5; }
a=$(ex 'local[2]') || fail "sql_to_lr in local[2]"
b=$(ex 'local-cluster[2,1]') || fail "sql_to_lr in local-cluster[2,1]"
[ -n "$a" ] && [ "$a" = "$b" ] || fail "sql_to_lr: local[2] and local-cluster[2,1] differ:
$a
---
$b"
/usr/bin/python3 - "$a" <<'PY' || fail "sql_to_lr quality: $a"
import re, sys
out = sys.argv[1]
c = [float(x) for x in re.search(r"coefficients (\S+) (\S+) (\S+),", out).groups()]
acc = float(re.search(r"accuracy (\S+) on", out).group(1))
for got, want in zip(c, (0.06, 0.15, -0.03)):
    assert abs(got - want) < 0.02, (got, want)
assert acc > 0.7, acc
PY
check_clean sql_to_lr

# 2. --sql against --train on the same rows
/usr/bin/python3 - "$d" <<'PY'
import random, sys
d = sys.argv[1]
r = random.Random(11)
users = []
with open(f"{d}/users.csv", "w") as f:
    f.write("userId,age,plan,score\n")
    for u in range(400):
        age, plan, score = r.randint(18, 80), r.choice(["free"] * 5 + ["pro"] * 3 + ["team"] * 2), round(r.gauss(0, 1), 4)
        users.append((age, plan, score))
        f.write(f"{u},{age},{plan},{score}\n")
ev = []
with open(f"{d}/events.csv", "w") as f:
    f.write("eventId,userId,action\n")
    for e in range(6000):
        u = r.randrange(400)
        age, plan, score = users[u]
        z = 0.05 * (age - 50) + {"free": -0.5, "pro": 0.5, "team": 1.0}[plan] + score
        a = int(r.random() < 1 / (1 + 2.718281828459045 ** -z))
        f.write(f"{e},{u},{a}\n")
        ev.append((e, a, age, plan, score))
# the features as the bridge makes them: age, then plan one-hot in frequency order
cnt = {}
for e, a, age, plan, score in ev:
    if e % 5:
        cnt[plan] = cnt.get(plan, 0) + 1
order = sorted(cnt, key=lambda p: (-cnt[p], p))
open(f"{d}/order.txt", "w").write(",".join(order))
def line(a, age, plan, score):
    x = [float(age)] + [1.0 if plan == p else 0.0 for p in order] + [score]
    return f"{a} " + " ".join(f"{i + 1}:{v!r}" for i, v in enumerate(x) if v != 0) + "\n"
with open(f"{d}/train.svm", "w") as tr, open(f"{d}/test.svm", "w") as te:
    for e, a, age, plan, score in ev:
        (te if e % 5 == 0 else tr).write(line(a, age, plan, score))
PY
q="SELECT e.action, u.age, u.plan, u.score FROM Users u JOIN Events e ON u.userId = e.userId"
cat >"$d/init.sql" <<EOF
CREATE TABLE Events (eventId INTEGER, userId INTEGER, action INTEGER)
  USING csv OPTIONS (path '$d/events.csv', header 'true');
EOF
run() { "$ember" ml lr --json --reg-param 0.001 "$@" | tail -n 1; }
s=$(run --master 'local-cluster[2,1]' --table "Users=$d/users.csv" --sql-init "$d/init.sql" \
    --sql "$q WHERE e.eventId % 5 <> 0 ORDER BY e.eventId" \
    --test-sql "$q WHERE e.eventId % 5 = 0 ORDER BY e.eventId" --label action \
    --save "$d/model") || fail "ember ml lr --sql"
t=$(run --master 'local[2]' --train "$d/train.svm" --test "$d/test.svm" --dim 5) \
    || fail "ember ml lr --train"
/usr/bin/python3 - "$s" "$t" "$(cat "$d/order.txt")" <<'PY' || fail "--sql vs --train: $s / $t"
import json, sys
s, t, order = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3].split(",")
assert s["accuracy"] == t["accuracy"], (s["accuracy"], t["accuracy"])
assert s["rows"] == t["rows"] == 4800 and s["test_count"] == 1200, (s["rows"], t["rows"])
for a, b in zip(s["coefficients"] + [s["intercept"]], t["coefficients"] + [t["intercept"]]):
    assert abs(a - b) <= 1e-7 * max(1, abs(a)), (a, b)
m = s["sql"]
assert m["label"] == "action" and m["dim"] == 5 and m["layout"] == "sparse", m
plan = [c for c in m["columns"] if c["name"] == "plan"][0]
assert plan["values"] == order and plan["first"] == 1 and plan["width"] == 3, (plan, order)
assert s["accuracy"] > 0.6, s["accuracy"]
PY
[ -f "$d/model/sql_features.json" ] && [ -f "$d/model/metadata.json" ] \
    || fail "--save: no sql_features.json beside the model"
check_clean "ml lr --sql"

# 3. the LIBSVM export
"$ember" sql --export-libsvm "$d/exp" --label action --table "Users=$d/users.csv" \
    --sql-init "$d/init.sql" --master 'local-cluster[2,1]' \
    -e "$q WHERE e.eventId % 5 <> 0 ORDER BY e.eventId" || fail "ember sql --export-libsvm"
/usr/bin/python3 - "$d" <<'PY' || fail "the export differs from the rows"
import glob, sys
d = sys.argv[1]
def rows(paths):
    out = []
    for p in paths:
        for l in open(p):
            f = l.split()
            out.append((float(f[0]), {int(k): float(v) for k, v in (x.split(":") for x in f[1:])}))
    return out
got = rows(sorted(glob.glob(f"{d}/exp/part-*")))
want = rows([f"{d}/train.svm"])
assert got == want, (len(got), len(want), got[:2], want[:2])
PY
[ -f "$d/exp/_features.json" ] || fail "export: no _features.json"
e=$(run --master 'local[2]' --train "$d/exp" --test "$d/test.svm" --dim 5) || fail "lr on the export"
/usr/bin/python3 -c 'import json,sys; a,b=(json.loads(x) for x in sys.argv[1:]); assert a["accuracy"]==b["accuracy"], (a["accuracy"], b["accuracy"])' "$e" "$s" \
    || fail "training on the export: $e"
check_clean "export"

# 4. split, kmeans, --conf, NULLs and usage
sp() { run --master "$1" --table "Users=$d/users.csv" --sql-init "$d/init.sql" --sql "$q" \
       --label action --split 0.25 --split-seed 3; }
s1=$(sp 'local[2]') && s2=$(sp 'local-cluster[2,1]') || fail "--split"
/usr/bin/python3 - "$s1" "$s2" <<'PY' || fail "--split: $s1 / $s2"
import json, sys
a, b = (json.loads(x) for x in sys.argv[1:])
assert a["rows"] + a["test_count"] == 6000 and 1300 < a["test_count"] < 1700, a
assert (a["rows"], a["test_count"], a["accuracy"]) == (b["rows"], b["test_count"], b["accuracy"])
PY
k=$("$ember" ml kmeans --master 'local-cluster[2,1]' --conf ember.network.crypto=false \
    --table "Users=$d/users.csv" --sql "SELECT age, score FROM Users" --k 3 --json | tail -n 1) \
    || fail "kmeans --sql --conf"
case $k in *'"sql":{'*) ;; *) fail "kmeans --json has no sql mapping: $k" ;; esac
"$ember" ml glm --family binomial --master 'local[2]' --table "Users=$d/users.csv" \
    --sql-init "$d/init.sql" --sql "$q" --label action --drop-last >/dev/null \
    || fail "glm --sql --drop-last"
printf 'id,x,y\n1,1.5,0\n2,,1\n3,2.5,1\n' >"$d/n.csv"
out=$("$ember" ml lr --master 'local[2]' --table "N=$d/n.csv" --sql "SELECT y, x FROM N ORDER BY id" \
      --label y 2>&1) && fail "a NULL feature was accepted"
case $out in *"column 'x': NULL in result row 2"*) ;; *) fail "NULL error: $out" ;; esac
out=$("$ember" ml lr --master 'local[2]' --table "N=$d/n.csv" --sql "SELECT y, x FROM N" \
      --label y --nulls skip 2>&1) || fail "--nulls skip: $out"
case $out in *"skipped 1 rows with a NULL"*) ;; *) fail "--nulls skip count: $out" ;; esac
usage() {   # WHAT ARGS...: exit status 2 and the message names the flag
    local what=$1 rc=0
    shift
    "$ember" ml "$@" >/dev/null 2>"$d/err" || rc=$?
    [ "$rc" = 2 ] || fail "$what: exit $rc, not 2 ($(cat "$d/err"))"
}
usage "--sql with --train" lr --sql "SELECT 1" --train x.svm --label y
usage "--sql without --label" lr --sql "SELECT 1 AS y, 2 AS x"
usage "--split out of range" lr --sql "SELECT 1" --label y --split 1.5
usage "--conf without =" kmeans --conf ember.master --train x.csv --k 2
usage "--conf unknown key" kmeans --conf ember.nope=1 --train x.csv --k 2
usage "--table without =" lr --sql "SELECT 1" --label y --table users.csv
out=$("$ember" ml lr --master 'local[2]' --sql "SELECT agee FROM Users" --label y \
      --table "Users=$d/users.csv" 2>&1) && fail "unknown column accepted"
case $out in *"--sql: unknown column 'agee'"*"did you mean 'age'"*) ;; *) fail "unknown column: $out" ;; esac
check_clean "errors"
finish
