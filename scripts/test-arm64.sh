#!/usr/bin/env bash
# Builds the native core and its C tests for arm64 (NEON kernels, no x86 files) with Debian's cross
# compiler and runs the tests under qemu-user, so the ARM path is checked on an x86 machine.
# Needs the packages gcc-aarch64-linux-gnu and qemu-user (scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

CC=${ARM_CC:-aarch64-linux-gnu-gcc}
QEMU=${ARM_QEMU:-qemu-aarch64}
SYSROOT=${ARM_SYSROOT:-/usr/aarch64-linux-gnu}
OUT=native/build-arm64
CFLAGS="-std=c11 -O2 -g -Wall -Wextra -Wno-unused-parameter -Wshadow -fPIC -pthread -fno-math-errno -D_GNU_SOURCE"

for tool in "$CC" "$QEMU"; do
    command -v "$tool" >/dev/null || { echo "test-arm64: $tool not found (apt-get install gcc-aarch64-linux-gnu qemu-user)" >&2; exit 1; }
done

rm -rf "$OUT" && mkdir -p "$OUT/tests"
objs=()
for src in native/*.c; do
    case "$src" in *_avx2.c|*_avx512.c|*_avx512vnni.c|*_avxvnni.c) continue ;; esac
    obj="$OUT/$(basename "${src%.c}").o"
    $CC $CFLAGS -c "$src" -o "$obj"
    objs+=("$obj")
done
ar rcs "$OUT/libembedd.a" "${objs[@]}"

status=0
for t in native/tests/test_*.c; do
    bin="$OUT/tests/$(basename "${t%.c}")"
    $CC $CFLAGS -Inative "$t" "$OUT/libembedd.a" -lm -o "$bin"
    echo "== arm64 $bin"
    if ! "$QEMU" -L "$SYSROOT" "$bin"; then status=1; fi
done
exit $status
