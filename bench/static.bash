# bench/static.bash - sourced (after `set -euo pipefail`) by the micro-benchmark scripts
# (bench/als_kernel.sh, bench/als_build.sh). Sets root (the repository) and tmp (removed on
# exit); static_builds SRC [BUILD_DIR [BASE_BUILD_DIR]] sets builds (BUILD_DIR, default
# build, then BASE_BUILD_DIR if given) and compiles SRC (a bench/*.c, its internal headers
# included from the repository root) against each one's static libraries into $tmp/bin$i.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
static_builds() {
    local src=$1 i b
    shift
    builds=("${1:-$root/build}")
    [ $# -ge 2 ] && builds+=("$2")
    for i in "${!builds[@]}"; do
        b=${builds[$i]}
        cc -O2 -I"$root" -o "$tmp/bin$i" "$root/$src" "$b/lib/libember_ml.a" \
            "$b/lib/libember.a" -lm -lpthread -lzstd -lssl -lcrypto -lopenblas -llapacke \
            -ljansson -luv
    done
}
