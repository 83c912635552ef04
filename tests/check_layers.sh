#!/usr/bin/env bash
# tests/check_layers.sh SRC_DIR - fails when an #include "..." points up the module stack or
# into another module's private *_int.h (STYLE.md section 13, docs/architecture.md).
#
# Levels (a file may include its own level's module and anything lower):
#   0 engine/base   1 engine/data   2 storage, engine/net   3 shuffle   4 engine/plan
#   5 engine/task (the task types every layer above shares)
#   6 engine/sched, engine/exec   7 engine/executor, engine/ui   8 engine/deploy
#   9 engine/cluster (the driver's backend over executor processes)
#   10 engine/api, engine/ember.h   11 sql, mllib   12 cli, examples, tests
# engine/plan/fn.h belongs to plan (4), so engine/ember.h may include it. A folder under
# engine/ that is not listed counts as level 10.
# Modules on levels 2, 6 and 7 may not include each other (sched reaches executors through
# the backend interface of engine/task, wired by api/). Nothing under engine/ may include
# sql/ or mllib/ (levels say so). A module's *_int.h is for files of that module only, plus
# its unit tests (tests/unit/<module>/, where <module> is the folder's last name: base, plan,
# storage, ...) and fuzz harnesses (tests/fuzz/, which exercise internal decoders).
# Includes are resolved from the repository root (how ember includes), or next to the
# including file when that file exists; includes of unknown paths are not checked.
# Prints every violation as file:line: text, then exits 1 if there was any.
set -euo pipefail

src=${1:?usage: check_layers.sh SRC_DIR}
cd "$src"

# module PATH -> "level module" ("" when the path is not part of the stack)
module_of() {
    local p=$1
    case $p in
        engine/base/*) echo "0 engine/base" ;;
        engine/data/*) echo "1 engine/data" ;;
        storage/*) echo "2 storage" ;;
        engine/net/*) echo "2 engine/net" ;;
        shuffle/*) echo "3 shuffle" ;;
        engine/plan/*) echo "4 engine/plan" ;;
        engine/task/*) echo "5 engine/task" ;;
        engine/sched/*) echo "6 engine/sched" ;;
        engine/exec/*) echo "6 engine/exec" ;;
        engine/executor/*) echo "7 engine/executor" ;;
        engine/ui/*) echo "7 engine/ui" ;;
        engine/deploy/*) echo "8 engine/deploy" ;;
        engine/cluster/*) echo "9 engine/cluster" ;;
        engine/api/*|engine/ember.h) echo "10 engine/api" ;;
        # any other file under engine/ (a module not yet in this map) sits below sql and
        # mllib, so it may not include them either
        engine/*/*) echo "10 $(echo "$p" | cut -d/ -f1-2)" ;;
        engine/*) echo "10 engine" ;;
        sql/*) echo "11 sql" ;;
        mllib/*/*) echo "11 mllib/$(echo "$p" | cut -d/ -f2)" ;;
        mllib/*) echo "11 mllib" ;;
        examples/*) echo "12 examples" ;;
        tests/*) echo "12 tests" ;;
        cli/*) echo "12 cli" ;;
        *) echo "" ;;
    esac
}

violations=0
report() {
    echo "$1:$2: $3"
    violations=$((violations + 1))
}

while IFS= read -r file; do
    file=${file#./}
    read -r flevel fmod <<<"$(module_of "$file")" || true
    [ -n "${flevel:-}" ] || continue
    while IFS=: read -r line text; do
        inc=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$text")
        [ -n "$inc" ] || continue
        target=$inc
        dir=$(dirname "$file")
        if [ ! -e "$inc" ] && [ -e "$dir/$inc" ]; then
            target=$(realpath -m --relative-to=. "$dir/$inc")
        fi
        read -r tlevel tmod <<<"$(module_of "$target")" || true
        [ -n "${tlevel:-}" ] || continue
        [ "$tmod" = "$fmod" ] && continue
        if [[ $target == *_int.h ]]; then
            allowed=0
            case $file in
                tests/fuzz/*) allowed=1 ;;
                tests/unit/*/*)
                    udir=$(echo "$file" | cut -d/ -f3)
                    [ "${tmod##*/}" = "$udir" ] && allowed=1
                    ;;
            esac
            [ $allowed = 1 ] && continue
            report "$file" "$line" "includes $target, private to $tmod: $text"
            continue
        fi
        if [ "$tlevel" -gt "$flevel" ]; then
            report "$file" "$line" "$fmod (level $flevel) includes $tmod (level $tlevel), up the stack: $text"
        elif [ "$tlevel" -eq "$flevel" ] && { [ "$flevel" = 2 ] || [ "$flevel" = 6 ] || [ "$flevel" = 7 ]; }; then
            report "$file" "$line" "$fmod includes its peer $tmod (level $flevel): $text"
        fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
done < <(find engine shuffle storage sql mllib examples tests cli -type f \( -name '*.c' -o -name '*.h' \) \
             -not -path 'tests/fuzz/corpus/*' 2>/dev/null | sort)

if [ "$violations" -gt 0 ]; then
    echo "check_layers: $violations include(s) break the layering (docs/architecture.md)" >&2
    exit 1
fi
echo "check_layers: ok"
