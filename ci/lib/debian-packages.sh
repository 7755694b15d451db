# Debian's kernel and busybox-static for an architecture, fetched with `apt-get download`
# and unpacked once under .build-nested/ (sourced by ci/nested and ci/guest-initramfs).

nested_cache=${nested_cache:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.build-nested}

# The kernel ABI version Debian's metapackage points at, e.g. 6.1.0-56-arm64.
debian_kernel_version() {
    local debarch=$1 suffix=:$1 package
    [ "$debarch" = "$(dpkg --print-architecture)" ] && suffix=
    package=$(apt-cache depends "linux-image-$debarch$suffix" 2>/dev/null | sed -n 's/.*Depends: linux-image-\([0-9][^:]*\).*/\1/p' | head -1)
    [ -n "$package" ] || { echo "nested: error: cannot find Debian's $debarch kernel (apt-get update? dpkg --add-architecture $debarch? run ci/setup)" >&2; return 1; }
    echo "$package"
}

# Prints the directory holding the unpacked kernel and busybox for $1 (arm64|amd64).
debian_root() {
    local debarch=$1 suffix=:$1 kver dir
    [ "$debarch" = "$(dpkg --print-architecture)" ] && suffix=
    kver=$(debian_kernel_version "$debarch") || return 1
    dir=$nested_cache/root-$kver
    if [ ! -f "$dir/.complete" ]; then
        mkdir -p "$nested_cache/downloads"
        rm -rf "$dir"
        (cd "$nested_cache/downloads" && apt-get download -q "linux-image-$kver$suffix" "busybox-static$suffix" >/dev/null 2>&1) ||
            { echo "nested: error: apt-get download of linux-image-$kver and busybox-static ($debarch) failed" >&2; return 1; }
        mkdir -p "$dir"
        dpkg-deb -x "$(ls "$nested_cache"/downloads/linux-image-"$kver"_*_"$debarch".deb | tail -1)" "$dir"
        dpkg-deb -x "$(ls "$nested_cache"/downloads/busybox-static_*_"$debarch".deb | tail -1)" "$dir"
        touch "$dir/.complete"
    fi
    echo "$dir"
}
