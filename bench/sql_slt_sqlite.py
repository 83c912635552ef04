#!/usr/bin/env python3
"""bench/sql_slt_sqlite.py - the sqlite3 side of `make bench-sql`'s sqllogictest timing: runs
sqllogictest files through Python's sqlite3 module doing the work `ember sql --slt` does per
record (execute, render values by the type letters, sort, hash above the threshold, compare
with the expected values), each file in a fresh in-memory database.

usage: sql_slt_sqlite.py [--engine NAME] FILE...

Records are selected as ember's runner selects them by default (engine name "ember": every
`skipif` record runs, every `onlyif` record is skipped), so both run the same records;
--engine sqlite selects SQLite's own. Prints "FILE: N passed, N failed, N skipped" per file
and a total line, like `ember sql --slt`. Format: ../shared/sqllogictest/README.md."""
import hashlib
import sqlite3
import sys
import time


def render(v, t):
    if v is None:
        return "NULL"
    if t == "I":
        if isinstance(v, str):
            digits = ""
            for i, c in enumerate(v.lstrip()):
                if c.isdigit() or (i == 0 and c in "+-"):
                    digits += c
                else:
                    break
            try:
                return str(int(digits))
            except ValueError:
                return "0"
        return str(int(v))
    if t == "R":
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                v = 0.0
        return "%.3f" % v
    s = str(v) if not isinstance(v, float) else repr(v)
    if s == "":
        return "(empty)"
    return "".join("@" if (ord(c) < 32 or ord(c) == 127) else c for c in s)


def records(lines):
    """Yields (kind, header words, sql, expected lines, line number)."""
    i, n = 0, len(lines)
    cond = []
    while i < n:
        line = lines[i].rstrip("\n")
        words = line.split()
        if not words or words[0].startswith("#"):
            i += 1
            continue
        start = i + 1
        if words[0] in ("skipif", "onlyif"):
            cond.append((words[0], words[1] if len(words) > 1 else ""))
            i += 1
            continue
        if words[0] == "halt":
            yield ("halt", words, "", [], start, cond)
            cond = []
            i += 1
            continue
        if words[0] == "hash-threshold":
            yield ("threshold", words, "", [], start, cond)
            cond = []
            i += 1
            continue
        if words[0] not in ("statement", "query"):
            cond = []
            i += 1
            continue
        i += 1
        sql = []
        while i < n and lines[i].strip() != "" and lines[i].rstrip("\n") != "----":
            sql.append(lines[i].rstrip("\n"))
            i += 1
        expected = []
        if i < n and lines[i].rstrip("\n") == "----":
            i += 1
            while i < n and lines[i].strip() != "":
                expected.append(lines[i].rstrip("\n"))
                i += 1
        yield (words[0], words, "\n".join(sql), expected, start, cond)
        cond = []


def run_file(path, engine):
    db = sqlite3.connect(":memory:", isolation_level=None)
    threshold, passed, failed, skipped = 0, 0, 0, 0
    with open(path) as f:
        lines = f.readlines()
    for kind, words, sql, expected, line, cond in records(lines):
        if kind == "threshold":
            threshold = int(words[1])
            continue
        if any((c == "skipif" and e == engine) or (c == "onlyif" and e != engine)
               for c, e in cond):
            skipped += kind != "halt"
            continue
        if kind == "halt":
            break
        if kind == "statement":
            try:
                db.execute(sql)
                ok = words[1] == "ok"
            except sqlite3.Error:
                ok = words[1] == "error"
            passed, failed = passed + ok, failed + (not ok)
            continue
        types = words[1]
        sort = words[2] if len(words) > 2 else "nosort"
        try:
            rows = db.execute(sql).fetchall()
        except sqlite3.Error:
            failed += 1
            continue
        vals = [[render(v, types[j] if j < len(types) else "T") for j, v in enumerate(r)]
                for r in rows]
        if sort == "rowsort":
            vals.sort()
        flat = [v for r in vals for v in r]
        if sort == "valuesort":
            flat.sort()
        if threshold > 0 and len(flat) > threshold:
            h = hashlib.md5("".join(v + "\n" for v in flat).encode()).hexdigest()
            got = [f"{len(flat)} values hashing to {h}"]
        else:
            got = flat
        want = expected
        if len(expected) == 1 and "values hashing to" in expected[0]:
            if got == flat:   # under the threshold: hash anyway to compare
                h = hashlib.md5("".join(v + "\n" for v in flat).encode()).hexdigest()
                got = [f"{len(flat)} values hashing to {h}"]
        elif len(got) == 1 and "values hashing to" in got[0]:
            want = [f"{len(expected)} values hashing to "
                    + hashlib.md5("".join(v + "\n" for v in expected).encode()).hexdigest()]
        elif expected and len(expected) != len(flat) and all(" " in e for e in expected):
            want = [w for e in expected for w in e.split(" ")]   # rows on one line
        ok = got == want
        passed, failed = passed + ok, failed + (not ok)
    db.close()
    return passed, failed, skipped


def main():
    args = sys.argv[1:]
    engine = "ember"
    if args[:1] == ["--engine"]:
        engine, args = args[1], args[2:]
    if not args:
        sys.exit(__doc__)
    t0 = time.time()
    tp = tf = ts = 0
    for path in args:
        p, f, s = run_file(path, engine)
        print(f"{path}: {p} passed, {f} failed, {s} skipped")
        tp, tf, ts = tp + p, tf + f, ts + s
    print(f"total: {tp} passed, {tf} failed, {ts} skipped ({time.time() - t0:.2f} s)")


if __name__ == "__main__":
    main()
