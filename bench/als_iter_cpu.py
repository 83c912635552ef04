#!/usr/bin/python3
"""bench/als_iter_cpu.py LABEL CMD... - CPU seconds per ALS iteration of `ember als`,
executors included: runs CMD (an `ember als ...` command line) and, at each "iteration N
done" line on its stderr, reads the CPU time (utime + stime, plus cutime + cstime of
reaped children) of CMD's process tree from /proc: the driver and, in local-cluster, the
workers and executors it started. Prints one JSON line: label, marks (wall s, tree CPU s,
whole-machine busy CPU s, at each iteration's end), iter_cpu (tree CPU of iterations
2..N: per-iteration cost without the setup, which varies most under load),
iter_machine_busy (the machine's busy CPU over the same spans: how much others ran) and
test_rmse (from --json). On this shared 2-core machine compare builds by iter_cpu, runs
alternated, side by side (docs/als.md "Rank 50")."""
import os, subprocess, sys, time, json

TCK = os.sysconf('SC_CLK_TCK')

def tree_cpu(root):
    procs = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(')') + 2:].split()
        ppid = int(rest[1])
        cpu = sum(int(x) for x in rest[11:15])  # utime stime cutime cstime
        procs[int(d)] = (ppid, cpu)
    kids = {}
    for p, (pp, _) in procs.items():
        kids.setdefault(pp, []).append(p)
    tot, stack = 0, [root]
    while stack:
        p = stack.pop()
        if p in procs:
            tot += procs[p][1]
        stack.extend(kids.get(p, []))
    return tot / TCK

def busy():
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TCK

label = sys.argv[1]
p = subprocess.Popen(sys.argv[2:], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
marks = []
t0, b0 = time.time(), busy()
for line in p.stderr:
    if 'iteration' in line and 'done' in line:
        marks.append((round(time.time() - t0, 2), round(tree_cpu(p.pid), 2), round(busy() - b0, 2)))
out = p.stdout.read()
p.wait()
rmse = None
try:
    rmse = json.loads(out.strip().splitlines()[-1]).get('test_rmse')
except Exception:
    pass
per = [round(marks[i][1] - marks[i - 1][1], 2) for i in range(1, len(marks))]
busy_per = [round(marks[i][2] - marks[i - 1][2], 2) for i in range(1, len(marks))]
print(json.dumps({'label': label, 'marks_wall_cpu_busy': marks, 'iter_cpu': per,
                  'iter_machine_busy': busy_per, 'test_rmse': rmse}))
