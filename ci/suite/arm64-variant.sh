# The short arm64 variant suite: runs in an L1 that ci/nested started with --gic and/or
# --cpu (/extra/l1.env says which), to show Swiftlet works with what L1's KVM gives there:
# a vGICv2 (--gic 2), an nVHE KVM (--cpu cortex-a72). Files from ci/suite/prepare are in
# /extra; ci/suite/arm64-variant.host compares the dumped device tree on the host.
. /extra/lib.sh
. /extra/lib-gic.sh
. /extra/l1.env
echo "L1: $(uname -r), $(nproc) CPUs, GICv$L1_GIC, -cpu $L1_CPU; swiftlet: $(swiftlet --version)"
CMDLINE="console=ttyAMA0 quiet panic=-1"
KERNEL="--kernel /extra/Image --initrd /extra/initramfs.cpio.gz"
POWER_OFF="guest powered off (PSCI SYSTEM_OFF)"

# --- L1's KVM is the variant asked for: nVHE on an ARMv8.0 CPU (no VHE), VHE otherwise
kvm_mode=$(dmesg | grep -o -E 'kvm \[[0-9]+\]: [A-Za-z ]*mode initialized successfully' | head -1)
# (Linux 6.1 says "Hyp mode" for nVHE; kernels from about 6.5 say "Hyp nVHE mode".)
case "$L1_CPU" in
    cortex-a53*|cortex-a57*|cortex-a72*) want="Hyp mode initialized successfully" also="Hyp nVHE mode initialized successfully" mode=nVHE ;;
    *) want="VHE mode initialized successfully" also=$want mode=VHE ;;
esac
case "$kvm_mode" in
    *": $want"|*": $also") pass "L1's KVM runs in $mode mode on -cpu $L1_CPU: $kvm_mode" ;;
    *) fail "L1's KVM on -cpu $L1_CPU: wanted '$want' ($mode), dmesg says '$kvm_mode'"; dmesg | grep -i kvm | tail -5 ;;
esac

# --- the GIC Swiftlet picks: GICv2 (no ITS) on a GICv2 L1, GICv3 with its ITS otherwise;
# the dumped tree goes to the host half for the golden comparison
if [ "$L1_GIC" = 2 ]; then
    dmesg | grep -i -E 'GIC|vgic' | head -5
    if gic_dump arm64-gicv2-2cpu-256m --cpus 2 --memory 256 --cmdline "console=ttyAMA0"; then
        if grep -a -q 'arm,cortex-a15-gic' /tmp/arm64-gicv2-2cpu-256m.dtb && ! grep -a -q 'gic-v3' /tmp/arm64-gicv2-2cpu-256m.dtb; then
            pass "on a GICv2 L1 Swiftlet's device tree has a GICv2 (arm,cortex-a15-gic) and no GICv3 or ITS"
        else
            fail "on a GICv2 L1 Swiftlet's device tree is not a plain GICv2"
        fi
    fi
    vm cpus9 30 --kernel /extra/hello-arm64.bin --cpus 9
    expect_error "9 vCPUs refused on a GICv2-only host" "offers only GICv2, which addresses at most 8 vCPUs"
else
    if gic_dump arm64-1cpu-128m --cpus 1 --memory 128 --cmdline "console=ttyAMA0"; then
        if grep -a -q 'arm,gic-v3-its' /tmp/arm64-1cpu-128m.dtb; then pass "on a GICv3 L1 Swiftlet's device tree has a GICv3 with its ITS"
        else fail "on a GICv3 L1 Swiftlet's device tree lacks the ITS"; fi
    fi
fi

# --- guests: a tiny one, and Debian's Linux with 2 vCPUs to its marker and power-off
vm tiny 30 --kernel /extra/hello-arm64.bin --memory 64
expect_ok "tiny guest prints on the PL011 and powers off" "^Hello from a Swiftlet arm64 guest" "$POWER_OFF"
vm linux-2cpu 180 $KERNEL --memory 256 --cpus 2 --cmdline "$CMDLINE swiftlet.test=poweroff"
expect_ok "Linux boots with 2 vCPUs and sees 2 CPUs" "SWIFTLET-GUEST-UP cpus=2 " "$POWER_OFF"
echo "boot-time: arm64 Linux (GICv$L1_GIC L1, -cpu $L1_CPU), 2 vCPUs, 256 MiB, to power-off: $took s"

finish
