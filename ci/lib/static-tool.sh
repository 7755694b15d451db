# build_static_tool ARCH SOURCE OUT: compiles the C program SOURCE into a static binary OUT
# for ARCH (arm64 or x86_64), with the Swift toolchain's clang: x86_64 against this host's
# glibc, arm64 against the sysroot of ci/setup's SDK bundle (libc.a, crt files, libgcc and
# the kernel headers from Debian's arm64 packages). Sourced by ci/bench-blk, ci/bench-net and
# ci/suite/prepare.
build_static_tool() {
    local arch=$1 source=$2 out=$3 top clang sysroot
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    clang=$(dirname "$(readlink -f "$(command -v swift)")")/clang
    [ -x "$clang" ] || { echo "build_static_tool: $clang not found (the Swift toolchain's clang)" >&2; return 1; }
    local cflags=(-O2 -Wall -Wextra -Werror -static -fuse-ld=lld)
    if [ "$arch" = arm64 ]; then
        sysroot=$top/.sdk/swiftlet-edge.artifactbundle/aarch64/sysroot
        [ -f "$sysroot/usr/lib/aarch64-linux-gnu/libc.a" ] || "$top/ci/setup" --sdk-only >&2
        [ -f "$sysroot/usr/lib/aarch64-linux-gnu/libc.a" ] || { echo "build_static_tool: no arm64 sysroot at $sysroot (run ci/setup)" >&2; return 1; }
        cflags+=(--target=aarch64-linux-gnu "--sysroot=$sysroot")
    fi
    "$clang" "${cflags[@]}" -o "$out" "$source" || { echo "build_static_tool: building $source for $arch failed" >&2; return 1; }
    case "$(file -b "$out" 2>/dev/null || echo unknown)" in
        *statically\ linked*|unknown) ;;
        *) echo "build_static_tool: $out is not statically linked: $(file -b "$out")" >&2; return 1 ;;
    esac
}
