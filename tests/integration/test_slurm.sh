#!/usr/bin/env bash
# tests/integration/test_slurm.sh BUILD_DIR - `ember slurm` against a real single-node Slurm
# (Debian's slurmctld, slurmd and munge; `make check` installs them).
#
# Everything lives in one temp dir: a munge key and socket, a slurm.conf (cluster
# "embertest", node "localhost" with 2 CPUs, free ports, state/spool/pid/log files here,
# proctrack/linuxproc and task/none, so no cgroups and no systemd), and the daemons run in
# the foreground (-F/-D) as this test's children. Then:
#   * `ember slurm` outside an allocation is a usage error;
#   * salloc + `ember slurm` runs wordcount (master and worker through srun): output equal
#     to local mode, the master saw the worker register and the worker started an
#     executor, the secret file is gone, no worker directory and no process are left;
#   * a job that fails (missing input) exits 1, keeps the daemons' logs, leaves nothing else;
#   * an sbatch script (as docs/slurm.md's) does the same as salloc;
#   * SIGTERM to `ember slurm` during the run: it exits 143 (or 0 had the job already
#     finished) and leaves no process, secret or worker directory behind.
# SKIPs (exit 77) when not root, when the Slurm/munge programs are missing, or when the
# daemons do not come up (e.g. a sandbox without the needed privileges). Every wait has a
# timeout; the EXIT trap cancels the jobs, stops the daemons by pid and removes the dir.
set -euo pipefail

build=$(cd "${1:?usage: test_slurm.sh BUILD_DIR}" && pwd)
ember=$build/bin/ember
wc_so=$build/lib/ember/examples/wordcount.so
export PATH="$PATH:/usr/sbin:/sbin"

skip() { echo "test_slurm: SKIP: $*"; exit 77; }
fail() { echo "test_slurm: FAIL: $*" >&2; exit 1; }

[ -x "$ember" ] || fail "$ember not built"
[ -f "$wc_so" ] || skip "$wc_so not built"
[ "$(id -u)" = 0 ] || skip "not root (the test runs slurmctld, slurmd and munged itself)"
for p in munged slurmctld slurmd salloc sbatch srun scontrol sinfo squeue scancel python3; do
    command -v "$p" >/dev/null || skip "$p not installed (make check installs slurmctld, slurmd, slurm-client and munge)"
done

t=$(mktemp -d /tmp/ember-slurm-test-XXXXXX)
chmod 755 "$t"
pids=()
cleanup() {
    local rc=$?
    if [ -f "$t/slurm.conf" ]; then
        SLURM_CONF=$t/slurm.conf timeout 10 scancel --partition=embertest >/dev/null 2>&1 || true
        for _ in $(seq 50); do
            [ -z "$(SLURM_CONF=$t/slurm.conf timeout 5 squeue -h 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    # Daemons in reverse order of start (slurmd, slurmctld, munged).
    for ((k = ${#pids[@]} - 1; k >= 0; k--)); do kill -TERM "${pids[k]}" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for f in "$t"/log/*.log "$t"/*.err "$t"/*.out "$t"/sec/*/*.log; do
            [ -f "$f" ] && { echo "== $f"; tail -15 "$f"; }
        done
    fi
    rm -rf "$t"
    exit $rc
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- munge
mkdir -p "$t/munge" "$t/state" "$t/spool" "$t/log" "$t/sec" "$t/tmp" "$t/home"
chmod 700 "$t/sec" "$t/state" "$t/spool"
chmod 711 "$t/munge"
head -c 1024 /dev/urandom > "$t/munge/munge.key"
chmod 400 "$t/munge/munge.key"
munged -F -f --num-threads=4 --socket="$t/munge/socket" --key-file="$t/munge/munge.key" \
    --pid-file="$t/munge/munged.pid" --seed-file="$t/munge/seed" \
    --log-file="$t/log/munged.log" >"$t/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$t/munge/socket" ] && break; sleep 0.1; done
[ -S "$t/munge/socket" ] || skip "munged did not start: $(tail -3 "$t/log/munged.out")"

# ---------------------------------------------------------------- slurm.conf
ctld_port=$(free_port)
slurmd_port=$(free_port)
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
cat > "$t/slurm.conf" <<EOF
ClusterName=embertest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$t/munge/socket
StateSaveLocation=$t/state
SlurmdSpoolDir=$t/spool
SlurmctldPidFile=$t/slurmctld.pid
SlurmdPidFile=$t/slurmd.pid
SlurmctldLogFile=$t/log/slurmctld.log
SlurmdLogFile=$t/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MailProg=/bin/true
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=embertest Nodes=localhost Default=YES MaxTime=10 State=UP
EOF
export SLURM_CONF=$t/slurm.conf
unset SLURM_JOB_ID SLURM_JOBID SLURM_JOB_NODELIST SLURM_NODELIST EMBER_SECRET

# ---------------------------------------------------------------- the daemons
slurmctld -D -i -f "$t/slurm.conf" >"$t/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -N localhost -f "$t/slurm.conf" >"$t/log/slurmd.out" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 100); do   # 20 s
    state=$(timeout 5 sinfo -h -n localhost -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
done
[ "$state" = idle ] || skip "the Slurm daemons did not come up (node state '${state:-none}'): $(tail -3 "$t/log/slurmd.out" "$t/log/slurmctld.out" | tr '\n' ' ')"
echo "test_slurm: slurmctld and slurmd up (ports $ctld_port, $slurmd_port) after ${SECONDS}s"

# ---------------------------------------------------------------- usage outside an allocation
set +e
"$ember" slurm "$wc_so" x y >"$t/noalloc.out" 2>"$t/noalloc.err"
rc=$?
set -e
[ $rc = 2 ] || fail "outside an allocation: exit $rc, want 2"
grep -q "not inside a Slurm allocation" "$t/noalloc.err" || fail "unclear: $(cat "$t/noalloc.err")"

# ---------------------------------------------------------------- local mode reference
"$ember" gen text --mib 1 --seed 7 --out "$t/input.txt" >/dev/null 2>&1
"$ember" run-example --quiet --master 'local[2]' wordcount "$t/input.txt" "$t/out_local" \
    >"$t/local.txt" 2>"$t/local.err"

check_run() {   # NAME: the run's output equals local mode; nothing left behind
    local name=$1
    cmp "$t/local.txt" "$t/$name.txt" || fail "$name: printed output differs from local mode"
    diff <(cat "$t"/out_local/part-* | sort) <(cat "$t/out_$name"/part-* | sort) >/dev/null \
        || fail "$name: saved output differs from local mode"
    check_clean "$name"
}
check_clean() {   # NAME: no secret, no worker directory, no process of ours
    local name=$1
    [ -z "$(find "$t/sec" "$t/home" -name secret)" ] || fail "$name: the secret file was left: $(find "$t/sec" "$t/home" -name secret)"
    [ -z "$(ls -A "$t/tmp")" ] || fail "$name: left in TMPDIR: $(ls "$t/tmp")"
    local left=""
    for _ in $(seq 50); do
        left=$(pgrep -f -- "$t/(sec|home)/" || true)
        [ -z "$left" ] && break
        sleep 0.1
    done
    [ -z "$left" ] || fail "$name: processes left: $(ps -o pid,args -p "$(echo $left | tr ' ' ,)")"
}

# ---------------------------------------------------------------- salloc
TMPDIR=$t/tmp timeout 120 salloc --nodes=1 --cpus-per-task=2 --time=5 --job-name=ember-salloc \
    "$ember" slurm --secret-dir "$t/sec" --start-timeout 60 --keep-logs --quiet \
    --executor-memory 512m --conf ember.ui.port=0 \
    "$wc_so" "$t/input.txt" "$t/out_salloc" >"$t/salloc.txt" 2>"$t/salloc.err" \
    || fail "salloc ember slurm failed: $(tail -5 "$t/salloc.err")"
logs=$(ls -d "$t"/sec/job* | head -1)
grep -q "registered with" "$logs/master.log" || fail "salloc: the master saw no worker"
grep -q "started executor" "$logs/workers.log" || fail "salloc: the worker started no executor"
grep -q "ember://127.0.0.1:" "$logs/master.log" || fail "salloc: the master did not listen on the node's address"
check_run salloc
echo "test_slurm: salloc run ok (${SECONDS}s)"
rm -rf "$t"/sec/job*

# ---------------------------------------------------------------- a failing job
set +e
TMPDIR=$t/tmp timeout 120 salloc --nodes=1 --cpus-per-task=2 --time=5 --job-name=ember-fail \
    "$ember" slurm --secret-dir "$t/sec" --start-timeout 60 --quiet --conf ember.ui.port=0 \
    "$wc_so" "$t/no-such-input.txt" "$t/out_fail" >"$t/fail.txt" 2>"$t/fail.err"
rc=$?
set -e
[ $rc = 1 ] || fail "a failing job: exit $rc, want 1: $(tail -5 "$t/fail.err")"
grep -q "the daemons' logs are in $t/sec/job" "$t/fail.err" || fail "failing job: logs not kept: $(cat "$t/fail.err")"
check_clean fail
rm -rf "$t"/sec/job*
echo "test_slurm: failing job ok (${SECONDS}s)"

# ---------------------------------------------------------------- sbatch (docs/slurm.md)
cat > "$t/job.sbatch" <<EOF
#!/bin/bash
#SBATCH --job-name=ember-wordcount
#SBATCH --nodes=1
#SBATCH --cpus-per-task=2
#SBATCH --time=5
#SBATCH --output=$t/sbatch.out
#SBATCH --error=$t/sbatch.err
export TMPDIR=$t/tmp HOME=$t/home   # the secret goes under \$HOME/.ember/slurm
exec "$ember" slurm --start-timeout 60 --quiet \\
    --executor-memory 512m --conf ember.ui.port=0 \\
    "$wc_so" "$t/input.txt" "$t/out_sbatch"
EOF
# sbatch --wait polls at growing intervals (seconds): poll squeue instead, then read the
# job's exit code from scontrol (the record stays MinJobAge, 300 s).
jobid=$(timeout 30 sbatch --parsable "$t/job.sbatch" 2>"$t/sbatch.submit") \
    || fail "sbatch failed: $(cat "$t/sbatch.submit")"
jobid=${jobid%%;*}
for _ in $(seq 600); do   # 120 s
    [ -z "$(timeout 5 squeue -h -j "$jobid" 2>/dev/null)" ] && break
    sleep 0.2
done
[ -z "$(timeout 5 squeue -h -j "$jobid" 2>/dev/null)" ] || fail "sbatch job $jobid still running after 120 s"
exitcode=$(timeout 5 scontrol show job "$jobid" | sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p')
[ "$exitcode" = 0:0 ] || fail "sbatch job $jobid: ExitCode=$exitcode: $(tail -5 "$t/sbatch.err")"
cp "$t/sbatch.out" "$t/sbatch.txt"
check_run sbatch
[ "$(stat -c %a "$t/home/.ember/slurm")" = 700 ] || fail "sbatch: \$HOME/.ember/slurm is not 0700"
[ -z "$(ls -A "$t/home/.ember/slurm")" ] || fail "sbatch: left in the secret dir: $(ls "$t/home/.ember/slurm")"
echo "test_slurm: sbatch run ok (${SECONDS}s)"

# ---------------------------------------------------------------- SIGTERM mid-run
"$ember" gen text --mib 8 --seed 8 --out "$t/input8.txt" >/dev/null 2>&1
set +e
TMPDIR=$t/tmp timeout 120 salloc --nodes=1 --cpus-per-task=2 --time=5 --job-name=ember-term \
    "$ember" slurm --secret-dir "$t/sec" --start-timeout 60 --conf ember.ui.port=0 \
    "$wc_so" "$t/input8.txt" "$t/out_term" >"$t/term.txt" 2>"$t/term.err" &
salloc_pid=$!
set -e
for _ in $(seq 600); do   # 60 s: until the cluster is up
    grep -q "worker(s) registered" "$t/term.err" && break
    kill -0 "$salloc_pid" 2>/dev/null || break
    sleep 0.1
done
grep -q "worker(s) registered" "$t/term.err" || fail "SIGTERM run: the cluster did not come up"
slurm_pid=$(pgrep -f -- "^$ember slurm --secret-dir $t/sec" | head -1 || true)
[ -n "$slurm_pid" ] && kill -TERM "$slurm_pid"
set +e
wait "$salloc_pid"
rc=$?
set -e
[ $rc = 143 ] || [ $rc = 0 ] || fail "SIGTERM run: exit $rc, want 143"
[ $rc = 0 ] && echo "test_slurm: NOTE: the job finished before SIGTERM arrived"
check_clean term
[ ! -e "$t/out_term" ] || [ $rc = 0 ] || fail "SIGTERM run: a cancelled job left its output"

echo "test_slurm: SIGTERM run ok: exit $rc (${SECONDS}s)"
echo "test_slurm: PASS"
