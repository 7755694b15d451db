# The nested arm64 suite: runs in the emulated arm64 L1 (real KVM) with the aarch64 edge
# binary. Files from ci/suite/prepare are in /extra.
. /extra/lib.sh
. /extra/lib-hostile.sh
. /extra/lib-rtc.sh
. /extra/lib-firecracker.sh
. /extra/lib-seccomp.sh
. /extra/lib-jail.sh
. /extra/lib-luks.sh
echo "L1: $(uname -r), $(nproc) CPUs; swiftlet: $(swiftlet --version)"
CMDLINE="console=ttyAMA0 quiet panic=-1"
KERNEL="--kernel /extra/Image --initrd /extra/initramfs.cpio.gz"
# How swiftlet says a run ended (its one stderr line, after "swiftlet: "). With panic=-1 a
# panicking guest resets instead, and the check fails (the checks run swiftlet with
# --no-reboot, lib.sh's SWIFTLET_RUN, so a reset ends it).
POWER_OFF="guest powered off (PSCI SYSTEM_OFF)"

# --- tiny guest: PL011 output, PSCI SYSTEM_OFF
vm tiny 30 --kernel /extra/hello-arm64.bin --memory 64
expect_ok "tiny guest prints on the PL011 and powers off" "^Hello from a Swiftlet arm64 guest" "$POWER_OFF"
# --- 4 vCPUs: the boot vCPU starts each secondary with PSCI CPU_ON; each reports its own
# MPIDR, and CPU_ON of a fifth is refused (INVALID_PARAMETERS)
vm tiny-smp 30 --kernel /extra/smp-arm64.bin --memory 64 --cpus 4
smp_report=$(tr -d '\r' < "$out" | grep -E '^(vCPU|CPU_ON) ' | tr '\n' ';')
if [ "$smp_report" = "vCPU 1 up;vCPU 2 up;vCPU 3 up;CPU_ON 4 refused (PSCI error -2);" ]; then
    expect_ok "tiny guest with 4 vCPUs: each secondary starts on PSCI CPU_ON and reports its MPIDR, a fifth is refused" "^Hello from a Swiftlet arm64 SMP guest" "$POWER_OFF"
else
    fail "tiny guest with 4 vCPUs: reported '$smp_report'"; show
fi

# --- a guest writing garbage over the devices and unclaimed MMIO does not hurt the VMM
vm wild 60 --kernel /extra/wild-arm64.bin --memory 64
expect_ok "wild MMIO over the devices and unclaimed addresses: the VMM survives" "^wild guest survived" "$POWER_OFF"
vm hostile 120 --kernel /extra/hostile-arm64.bin --memory 64
expect_ok "extreme values at every width to every PL011, PL031 and PL061 register: the VMM survives" "^hostile guest survived" "$POWER_OFF"
vm hostile-virtio 120 --kernel /extra/hostile-virtio-arm64.bin --memory 64 --rng
expect_ok "garbage to the virtio-rng transport and queue: every answer as the queue code says, the VMM survives" "^hostile virtio guest survived" "$POWER_OFF"

# --- Debian's kernel + busybox initramfs
vm linux-1cpu 120 $KERNEL --memory 256 --cmdline "$CMDLINE swiftlet.test=poweroff"
expect_ok "Linux boots to the marker and powers off, 1 vCPU" "SWIFTLET-GUEST-UP cpus=1 " "$POWER_OFF"
echo "boot-time: arm64 Linux, 1 vCPU, 256 MiB, to power-off: $took s"
# 128 MiB, Firecracker's default size: the device tree's CMA pool (8 MiB here) replaces
# Debian's built-in 64 MiB, which left too little unmovable memory to unpack the initramfs.
vm linux-128m 120 $KERNEL --memory 128 --cmdline "$CMDLINE swiftlet.test=poweroff"
expect_ok "Linux with 128 MiB unpacks its initramfs and boots (CMA pool scaled to RAM)" "SWIFTLET-GUEST-UP cpus=1 " "$POWER_OFF"
vm_marked linux-2cpu 120 $KERNEL --memory 256 --cpus 2 --cmdline "$CMDLINE swiftlet.test=poweroff"
expect_ok "Linux boots with 2 vCPUs and sees 2 CPUs" "SWIFTLET-GUEST-UP cpus=2 " "$POWER_OFF"
echo "boot-time: arm64 Linux, 2 vCPUs, 256 MiB, to power-off: $took s"
# RTC, from the same boot: the guest's PL031 reads the host's clock
check_rtc /tmp/linux-2cpu.out
# --- the PL031's match interrupt (lib-rtc.sh): a tiny guest reads the ID registers and takes
# SPI 2 one second after programming RTCMR; Linux's rtc-pl031 alarm wakes /dev/rtc0's reader
rtc_tiny_checks 30 "$POWER_OFF"
rtc_linux_checks 120 "$CMDLINE" "$POWER_OFF" $KERNEL

# --- opt-in vCPU features: used where L1's KVM offers them, one clear error where not.
# Whether it does is asked of L1's KVM directly (kvm-cap, not Swiftlet), so each flag has
# exactly one right outcome (ci/nested's arm64 L1 runs with pauth=off, so today --pauth is
# refused and --pmu/--sve are used).
# kvm_has CAP[+CAP...]: L1's KVM answers KVM_CHECK_EXTENSION with a positive value for each.
kvm_has() {
    for c in $(echo "$1" | tr '+' ' '); do
        answer=$(/extra/kvm-cap "$c") && [ "${answer#*=}" -gt 0 ] || return 1
    done
}
for feature in pauth:KVM_CAP_ARM_PTRAUTH_ADDRESS+KVM_CAP_ARM_PTRAUTH_GENERIC:"Address authentication" pmu:KVM_CAP_ARM_PMU_V3:armv8_pmuv3 \
               sve:KVM_CAP_ARM_SVE:"SVE: maximum available vector length"; do
    flag=${feature%%:*} rest=${feature#*:}
    cap=${rest%%:*} evidence=${rest#*:}
    # Not quiet: the guest kernel's log is where the feature shows.
    vm $flag 120 $KERNEL --memory 256 --$flag --cmdline "console=ttyAMA0 panic=-1 swiftlet.test=poweroff"
    if kvm_has $cap; then
        expect_ok "--$flag where L1's KVM has $cap: the guest kernel finds the feature ($evidence)" "$evidence" "$POWER_OFF"
    else
        expect_error "--$flag refused where L1's KVM lacks $cap ($(/extra/kvm-cap $(echo $cap | tr '+' ' ') | tr '\n' ' '))" "this host's KVM has no"
    fi
done

# --- console input: a command on swiftlet's stdin runs in the guest shell
vm_typing linux-shell 120 'echo "GUEST-SAYS-$((6 * 7))"
poweroff -f
' $KERNEL --memory 256 --cmdline "$CMDLINE swiftlet.test=commands"
expect_ok "a command on stdin runs in the guest shell and its output comes back" "GUEST-SAYS-42" "$POWER_OFF"

# --- SIGTERM presses the power key; the guest powers off; swiftlet exits 0
vm_sigterm powerkey 120 $KERNEL --memory 256 --cmdline "$CMDLINE swiftlet.test=powerkey"
expect_ok "SIGTERM presses KEY_POWER (gpio-keys on the PL061) and the guest powers off" "SWIFTLET-GUEST-POWERKEY" "$POWER_OFF"

# --- control API: swiftlet ctl drives configure, start, pause, resume, power key
vm_api api 120 /extra/Image /extra/initramfs.cpio.gz "$CMDLINE swiftlet.test=powerkey"
if [ $api_ok = 1 ]; then expect_ok "swiftlet ctl: configure, start, pause, resume, power key" "SWIFTLET-GUEST-POWERKEY" "$POWER_OFF"; else fail "swiftlet ctl sequence: $api_step"; show; fi

# --- Firecracker's clients (lib-firecracker.sh): the binary as `firecracker`, driven as the Go
# SDK and Kata Containers drive it (raw HTTP through socat), FlushMetrics, --config-file
# --no-api, a log FIFO nobody reads, and the boot timer (Linux's init, then the tiny guest)
firecracker_checks 120 /extra/Image /extra/initramfs.cpio.gz "$CMDLINE" "$POWER_OFF" 0x0B000000
boot_timer_tiny_checks 30 /extra/boot-timer-arm64.bin "$POWER_OFF"

# --- seccomp (lib-seccomp.sh): every thread kind under its filter, and a call outside a
# thread's list kills the VMM with a report (all other checks run with the filters on too)
seccomp_checks 120 "$CMDLINE" "$POWER_OFF"

# --- swiftlet jail (lib-jail.sh): a jailed VMM seen from outside (root, uid, namespaces,
# cgroup), cpu.max and memory.max at work, and the API unable to reach L1's files
jail_checks 120 "$CMDLINE" "$POWER_OFF"
# --- encrypted disks (lib-luks.sh): a LUKS2 volume opened with cryptsetup in L1 is a guest's
# disk; what the guest wrote reads back through the mapping and is not in the backing file
luks_checks 120 "$CMDLINE" "$POWER_OFF"

# --- four Linux guests at once in this L1 (each 192 MiB, 1 vCPU): all reach the marker
vm_many 4 linux-x4 240 "SWIFTLET-GUEST-UP cpus=1 " "$POWER_OFF" $KERNEL --memory 192 --cmdline "$CMDLINE swiftlet.test=poweroff"
if [ "$many_ok" = 4 ]; then pass "4 Linux guests at once all boot and power off (${took} s)"; else fail "4 Linux guests at once: $many_ok of 4 ok"; fi

# --- GICv3 ITS (lib-gic.sh): a guest's ITS driver probes it and allocates LPIs; --dump-dtb has its node
. /extra/lib-gic.sh
its_checks 120 "$POWER_OFF" $KERNEL

# --- --dump-dtb for the reference configurations (ci/suite/arm64.host compares them with
# DeviceTrees/ using dtc on the host; lib-gic.sh's gic_dump)
dd if=/dev/zero of=/tmp/initrd-4m bs=1M count=4 2>/dev/null
dump() { gic_dump "$@" || true; }
dump arm64-1cpu-128m --cpus 1 --memory 128 --cmdline "console=ttyAMA0"
dump arm64-4cpu-1g-initrd --cpus 4 --memory 1024 --initrd /tmp/initrd-4m --cmdline "console=ttyAMA0 quiet"
# Two disks and an rng: the device manager's virtio-mmio nodes (the images need not exist to dump).
dump arm64-2disks-rng --cpus 2 --memory 256 --disk path=/tmp/root.img,id=root --disk path=/tmp/data.img,readonly=on,id=data --rng \
    --cmdline "console=ttyAMA0 root=/dev/vda"

# --- bad input: one clear line, non-zero exit
vm missing 30 --kernel /extra/no-such-Image
expect_error "missing kernel" "cannot open kernel /extra/no-such-Image"
head -c 4000000 /extra/Image > /tmp/Image-truncated
vm truncated 30 --kernel /tmp/Image-truncated
expect_error "truncated Image" "is truncated"
vm small 30 $KERNEL --memory 35
expect_error "memory too small for kernel + initrd" "too small"
vm cpus 30 --kernel /extra/hello-arm64.bin --cpus 124
expect_error "more vCPUs than the redistributor window holds" "redistributor window holds at most 123"
# Crafted Image headers (ci/suite/crafted-images): sizes and offsets are never trusted.
for crafted in huge-image-size:"raise --memory" huge-text-offset:"text_offset" big-endian:"big-endian" \
               image-size-below-file:"bad arm64 Image header" pe-sections-past-end:"is truncated"; do
    case=${crafted%%:*} evidence=${crafted#*:}
    vm crafted-$case 30 --kernel /extra/crafted-$case.Image --memory 64
    expect_bad_input "crafted Image header ($case)" "$evidence"
done
# Paths that are not regular files are refused at once (a FIFO would block a plain open).
mkfifo /tmp/kernel.fifo
vm fifo 30 --kernel /tmp/kernel.fifo
expect_bad_input "a FIFO as the kernel" "is not a regular file"
# A 6 GiB sparse initrd for a 64 MiB guest is refused before a byte of it is read.
dd if=/dev/zero of=/tmp/huge-initrd bs=1 count=0 seek=6G 2>/dev/null
vm huge-initrd 30 --kernel /extra/Image --initrd /tmp/huge-initrd --memory 64
expect_bad_input "a 6 GiB initrd for a 64 MiB guest" "too small"

# --- virtio-blk and virtio-rng (lib.sh's disk_checks): an ext4 root on /dev/vda
# (ci/guest-disk), a read-only disk, a sparse 5 GiB disk, the entropy device, and fsyncs cut
# off by SIGTERM and by SIGKILL; L1 checks the images afterwards
disk_checks 120 "$CMDLINE" "$POWER_OFF" $KERNEL


# --- virtio-net (lib.sh's net_checks): a tap in L1; the guest pings L1 and downloads from
# it, L1 downloads from the guest; a missing, wrong or busy tap is refused
net_checks 120 "$CMDLINE" "$POWER_OFF" $KERNEL
# --- rate limiters (lib.sh's limit_checks): a disk and an interface limited to 4 MiB/s, then lifted
limit_checks 120 "$CMDLINE" "$POWER_OFF" $KERNEL
# --- virtio-vsock (lib.sh's vsock_checks): echoes both ways and 16 connections at once
vsock_checks 120 "$CMDLINE" "$POWER_OFF" $KERNEL
# --- hostile guests (lib-hostile.sh): garbage on virtio-net's queues from a user-space driver;
# the VMM survives and the kernel's driver works afterwards
hostile_net_checks 180 "$CMDLINE" "$POWER_OFF" $KERNEL
hostile_vsock_checks 180 "$CMDLINE" "$POWER_OFF" $KERNEL

# --- guest RAM in huge pages (lib.sh's hugepage_checks): transparent by default, hugetlbfs
# with --hugepages 2M
hugepage_checks 120 "$CMDLINE" "$POWER_OFF" $KERNEL
# --- guest reboot (lib.sh's reboot_checks): three reboots boot the guest again in the same
# process, the power-off after the fourth ends it; --no-reboot ends it at the first
reboot_checks 120 "$CMDLINE" "$POWER_OFF" "guest reset (PSCI SYSTEM_RESET)" $KERNEL

finish
