#!/usr/bin/env bash
# tests/integration/test_job_build.sh BUILD_DIR - docs/cli.md "Writing a job" is true: the job
# source and both compile lines are taken from the document itself (the blocks after the
# <!-- job-source --> and <!-- job-build: ... --> markers), compiled the documented way
# against the build tree (BUILD/ember.pc) and against an install (cmake --install into a
# temp prefix), and each library is run with `ember run-example ./linecount.so`; the printed
# count must be the right one. Nothing is left behind (the temp dir goes on exit).
set -euo pipefail
build=$(cd "${1:?usage: test_job_build.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
doc=$src/docs/cli.md
command -v pkg-config >/dev/null || { echo "test_job_build: SKIP (no pkg-config)"; exit 0; }
command -v cc >/dev/null || { echo "test_job_build: SKIP (no cc)"; exit 0; }
t=$(mktemp -d /tmp/ember-test-job_build.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail() { echo "test_job_build: FAIL: $*"; exit 1; }

# The fenced block after the marker line MARKER in docs/cli.md.
block() {
    awk -v m="$1" 'found == 0 && index($0, m) == 1 { found = 1; next }
                   found == 1 && /^```/ { found = 2; next }
                   found == 2 && /^```/ { exit }
                   found == 2 { print }' "$doc"
}
block '<!-- job-source: linecount.c -->' > "$t/linecount.c"
[ -s "$t/linecount.c" ] || fail "no job source in docs/cli.md"
printf 'ember one\nnothing\nember two ember\nlast\n' > "$t/input.txt"
export EMBER_LOG=error

run_way() {   # WAY PREFIX_OR_BUILD
    local way=$1 dir=$2 script
    mkdir -p "$t/$way"
    cp "$t/linecount.c" "$t/input.txt" "$t/$way/"
    script=$(block "<!-- job-build: $way -->")
    [ -n "$script" ] || fail "$way: no build block in docs/cli.md"
    script=${script//PREFIX/$dir}
    script=${script//BUILD/$dir}
    (cd "$t/$way" && bash -euo pipefail -c "$script") > "$t/$way/out" 2> "$t/$way/err" ||
        { cat "$t/$way/err"; fail "$way: the documented commands failed"; }
    grep -qx "2 lines contain 'ember'" "$t/$way/out" ||
        { cat "$t/$way/out" "$t/$way/err"; fail "$way: wrong output"; }
}

# Build tree: BUILD/ember.pc must name existing directories.
inc=$(PKG_CONFIG_PATH=$build pkg-config --variable=includedir ember)
lib=$(PKG_CONFIG_PATH=$build pkg-config --variable=libdir ember)
[ -f "$inc/engine/ember.h" ] || fail "build-tree ember.pc: includedir $inc has no engine/ember.h"
[ -e "$lib/libember.so" ] || fail "build-tree ember.pc: libdir $lib has no libember.so"
run_way build-tree "$build"

# Installed: a temp prefix (LD_LIBRARY_PATH: the prefix is not on the loader's path).
cmake --install "$build" --prefix "$t/prefix" > "$t/install.log" 2>&1 ||
    { tail "$t/install.log"; fail "cmake --install"; }
LD_LIBRARY_PATH=$t/prefix/lib run_way installed "$t/prefix"
echo "test_job_build: ok (build tree and installed prefix)"
