# GIC checks for the nested arm64 suites (busybox sh in L1; needs lib.sh's vm, pass, fail).

# gic_dump REF SWIFTLET-RUN-ARGS...: `swiftlet run --dump-dtb` to /tmp/REF.dtb (the suites'
# reference trees, GICv3 and GICv2 alike), printed as
# hex between SWIFTLET-DTB-BEGIN/END REF lines for the host half (ci/suite/arm64.host
# compares it with DeviceTrees/REF.dts). Returns non-zero when swiftlet failed.
gic_dump() {
    ref=$1
    shift
    if swiftlet run --kernel /extra/Image "$@" --dump-dtb /tmp/$ref.dtb 2>/tmp/dump.err; then
        echo "SWIFTLET-DTB-BEGIN $ref"
        od -An -v -tx1 /tmp/$ref.dtb
        echo "SWIFTLET-DTB-END $ref"
        pass "--dump-dtb $ref ($(wc -c < /tmp/$ref.dtb) bytes)"
    else
        fail "--dump-dtb $ref: $(cat /tmp/dump.err)"
        return 1
    fi
}

# its_checks TIMEOUT POWER-OFF KERNEL-ARGS...: on a GICv3 L1 (whose KVM always offers the
# ITS device), a Linux guest booted without `quiet` probes the ITS at 0x0808_0000 and
# allocates its tables and each CPU's LPI pending table; and --dump-dtb describes the same
# ITS (its node; the golden comparison of the whole tree is the dump section's).
its_checks() {
    limit=$1 end=$2
    shift 2
    vm its-linux "$limit" "$@" --memory 256 --cpus 2 --cmdline "console=ttyAMA0 panic=-1 swiftlet.test=poweroff"
    expect_ok "Linux with 2 vCPUs, not quiet, boots and powers off (ITS check)" "SWIFTLET-GUEST-UP cpus=2 " "$end"
    tr -d '\r' < "$out" > /tmp/its-linux.log
    for evidence in 'ITS \[mem 0x08080000-0x0809ffff\]' \
                    'ITS@0x0000000008080000: allocated [0-9]* Devices' \
                    'ITS@0x0000000008080000: allocated [0-9]* Interrupt Collections' \
                    'GICv3: using LPI property table' \
                    'GICv3: CPU0: using allocated LPI pending table' \
                    'GICv3: CPU1: using allocated LPI pending table' \
                    'Platform MSI: its@8080000 domain created'; do
        line=$(grep -m 1 "$evidence" /tmp/its-linux.log | sed 's/^\[[ 0-9.]*\] //')
        if [ -n "$line" ]; then pass "the guest's ITS driver: $line"; else fail "the guest's log lacks '$evidence'"; fi
    done
    grep -i -E 'ITS|LPI' /tmp/its-linux.log | grep -i -E 'fail|error|unable|cannot|no ' | while read -r bad; do echo "suite: guest says: $bad"; done
    if swiftlet run --kernel /extra/Image --memory 256 --cpus 2 --dump-dtb /tmp/its.dtb 2>/tmp/its-dump.err &&
       grep -a -q 'its@8080000' /tmp/its.dtb && grep -a -q 'arm,gic-v3-its' /tmp/its.dtb && grep -a -q 'msi-controller' /tmp/its.dtb; then
        pass "--dump-dtb on this GICv3 L1 has the ITS node its@8080000 (arm,gic-v3-its, msi-controller)"
    else
        fail "--dump-dtb on this GICv3 L1 lacks the ITS node: $(cat /tmp/its-dump.err)"
    fi
}
