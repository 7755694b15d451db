# debian_binary_tree PACKAGE DEBARCH BINARY OUT: a directory tree OUT holding BINARY (a path
# inside PACKAGE, e.g. usr/bin/socat) from Debian's PACKAGE for DEBARCH, its ELF interpreter
# and every shared object it needs (NEEDED, recursively), at the paths the dynamic loader
# looks in; unpacked from `apt-get download`s of the package and its dependencies, cached
# under .build-nested/pkg-root-PACKAGE-DEBARCH. For dynamically linked tools a test needs
# inside an L1 or a guest (socat, for its VSOCK addresses). Sourced; needs readelf.
debian_binary_tree() {
    local package=$1 debarch=$2 binary=$3 out=$4 top root debs packages triplet file needed library interpreter
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    command -v readelf >/dev/null || { echo "debian_binary_tree: readelf is missing (apt-get install binutils)" >&2; return 1; }
    root=$top/.build-nested/pkg-root-$package-$debarch
    debs=$top/.build-nested/pkg-debs-$package-$debarch
    if [ ! -f "$root/.complete" ]; then
        rm -rf "$root" "$debs"
        mkdir -p "$root" "$debs"
        # apt-cache names the host's own architecture's packages without a suffix.
        local query=$package:$debarch filter=":$debarch\$"
        if [ "$debarch" = "$(dpkg --print-architecture)" ]; then query=$package filter='^[a-z0-9][a-z0-9.+-]*$'; fi
        packages=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances "$query" 2>/dev/null | grep -v '^ ' | grep "$filter" | sort -u)
        [ -n "$packages" ] || { echo "debian_binary_tree: no $package for $debarch (apt-get update? run ci/setup)" >&2; return 1; }
        (cd "$debs" && apt-get download -q $packages >/dev/null 2>&1) ||
            { echo "debian_binary_tree: apt-get download of $package:$debarch and its dependencies failed" >&2; return 1; }
        for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
        touch "$root/.complete"
    fi
    triplet=$([ "$debarch" = arm64 ] && echo aarch64 || echo x86_64)
    rm -rf "$out"
    mkdir -p "$out"
    local pending=("$binary")
    local -A seen=()
    while [ ${#pending[@]} -gt 0 ]; do
        file=${pending[0]}
        pending=("${pending[@]:1}")
        [ -z "${seen[$file]:-}" ] || continue
        seen[$file]=1
        [ -e "$root/$file" ] || { echo "debian_binary_tree: $file not found in $package:$debarch" >&2; return 1; }
        mkdir -p "$out/$(dirname "$file")"
        cp -L "$root/$file" "$out/$file"
        interpreter=$(readelf -l "$root/$file" 2>/dev/null | sed -n 's/.*interpreter: \(.*\)]/\1/p')
        if [ -n "$interpreter" ]; then
            mkdir -p "$out/$(dirname "$interpreter")"
            cp -L "$root/$interpreter" "$out/$interpreter"
        fi
        for needed in $(readelf -d "$root/$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            library=
            for dir in lib/$triplet-linux-gnu usr/lib/$triplet-linux-gnu lib usr/lib lib64; do
                if [ -e "$root/$dir/$needed" ]; then library=$dir/$needed; break; fi
            done
            [ -n "$library" ] || { echo "debian_binary_tree: $needed (needed by $file) not found in $package:$debarch's dependencies" >&2; return 1; }
            pending+=("$library")
        done
    done
}
