# The nested x86_64 suite: runs in the emulated x86_64 L1 (real kvm-amd with nested SVM)
# with the x86_64 edge binary. Files from ci/suite/prepare are in /extra.
. /extra/lib.sh
. /extra/lib-hostile.sh
. /extra/lib-firecracker.sh
. /extra/lib-seccomp.sh
echo "L1: $(uname -r), $(nproc) CPUs; swiftlet: $(swiftlet --version)"
CMDLINE="console=ttyS0 reboot=k panic=-1 i8042.noaux quiet"
# Most Linux boots use the uncompressed ELF vmlinux (Firecracker's x86_64 kernel format,
# extracted from the bzImage by ci/suite/prepare): the bzImage's decompression costs ~8-10 s
# of every boot under the emulated L1. The bzImage keeps its own boot check and the
# bad-input checks of its setup header.
KERNEL="--kernel /extra/vmlinux --initrd /extra/initramfs.cpio.gz"
BZIMAGE="--kernel /extra/bzImage --initrd /extra/initramfs.cpio.gz"
# How swiftlet says a run ended (its one stderr line, after "swiftlet: "): Linux's poweroff
# is an ACPI soft-off; a panic (panic=-1, reboot=k) pulses the i8042's reset line, as the
# tiny guests do, so Linux checks expect the power-off; a triple fault would name itself.
# The checks run swiftlet with --no-reboot (lib.sh's SWIFTLET_RUN), so a reset ends it.
POWER_OFF="guest powered off (ACPI S5)"
RESET="guest reset (i8042 reset line)"

# --- tiny guest: 16550 output through I/O exits, i8042 reset (the checks run with --no-reboot)
vm tiny 30 --kernel /extra/hello-x86_64.bin --memory 64
expect_ok "tiny guest prints on COM1 and resets through the i8042" "^Hello from a Swiftlet x86_64 guest" "$RESET"

# --- a guest writing garbage to every port and unclaimed MMIO does not hurt the VMM
vm wild 120 --kernel /extra/wild-x86_64.bin --memory 64
expect_ok "wild port I/O and MMIO: the VMM survives" "^wild guest survived" "$RESET"
vm hostile 120 --kernel /extra/hostile-x86_64.bin --memory 64
expect_ok "extreme values at every width to COM1, the i8042 and every CMOS register, string I/O: the VMM survives" "^hostile guest survived" "$RESET"
vm hostile-virtio 120 --kernel /extra/hostile-virtio-x86_64.bin --memory 64 --rng
expect_ok "garbage to the virtio-rng transport and queue: every answer as the queue code says, the VMM survives" "^hostile virtio guest survived" "$RESET"

# --- Debian's kernel + busybox initramfs; the guest's ACPI power-off ends swiftlet with 0
# The same boot from each kernel format, timed: the vmlinux is loaded segment by segment at
# its physical addresses and entered at startup_64; the bzImage decompresses itself first.
vm linux-1cpu 180 $KERNEL --memory 256 --cmdline "$CMDLINE swiftlet.test=poweroff"
expect_ok "Linux from the ELF vmlinux boots to the marker and powers off (ACPI S5), 1 vCPU" "SWIFTLET-GUEST-UP cpus=1 " "$POWER_OFF"
vmlinux_took=$took
vm linux-bzimage 180 $BZIMAGE --memory 256 --cmdline "$CMDLINE swiftlet.test=poweroff"
expect_ok "Linux from the bzImage boots to the marker and powers off (ACPI S5), 1 vCPU" "SWIFTLET-GUEST-UP cpus=1 " "$POWER_OFF"
echo "boot-time: x86_64 Linux, 1 vCPU, 256 MiB, to power-off: vmlinux $vmlinux_took s, bzImage $took s"
vm_marked linux-2cpu 180 $KERNEL --memory 256 --cpus 2 --cmdline "$CMDLINE swiftlet.test=poweroff"
expect_ok "Linux boots with 2 vCPUs and sees 2 CPUs" "SWIFTLET-GUEST-UP cpus=2 " "$POWER_OFF"
echo "boot-time: x86_64 Linux, 2 vCPUs, 256 MiB, to power-off: $took s"
# RTC, from the same boot: the guest's CMOS clock reads the host's clock
check_rtc /tmp/linux-2cpu.out

# --- console input through the 16550's receive FIFO
vm_typing linux-shell 180 'echo "GUEST-SAYS-$((6 * 7))"
poweroff -f
' $KERNEL --memory 256 --cmdline "$CMDLINE swiftlet.test=commands"
expect_ok "a command on stdin runs in the guest shell and its output comes back" "GUEST-SAYS-42" "$POWER_OFF"

# --- SIGTERM sends Ctrl-Alt-Del through the i8042; the guest's init powers off
vm_sigterm cad 180 $KERNEL --memory 256 --cmdline "$CMDLINE swiftlet.test=powerkey"
expect_ok "SIGTERM sends Ctrl-Alt-Del and the guest powers off" "SWIFTLET-GUEST-POWERKEY" "$POWER_OFF"

# --- control API: swiftlet ctl drives configure, start, pause, resume, Ctrl-Alt-Del
vm_api api 180 /extra/vmlinux /extra/initramfs.cpio.gz "$CMDLINE swiftlet.test=powerkey"
if [ $api_ok = 1 ]; then expect_ok "swiftlet ctl: configure, start, pause, resume, Ctrl-Alt-Del" "SWIFTLET-GUEST-POWERKEY" "$POWER_OFF"; else fail "swiftlet ctl sequence: $api_step"; show; fi

# --- Firecracker's clients (lib-firecracker.sh): the binary as `firecracker`, driven as the Go
# SDK and Kata Containers drive it (raw HTTP through socat), FlushMetrics, --config-file
# --no-api, a log FIFO nobody reads, and the boot timer (Linux's init, then the tiny guest)
firecracker_checks 180 /extra/vmlinux /extra/initramfs.cpio.gz "$CMDLINE" "$POWER_OFF" 0xD0000000
boot_timer_tiny_checks 30 /extra/boot-timer-x86_64.bin "$RESET"

# --- seccomp (lib-seccomp.sh): every thread kind under its filter, and a call outside a
# thread's list kills the VMM with a report (all other checks run with the filters on too)
seccomp_checks 180 "$CMDLINE" "$POWER_OFF"

# --- bad input: one clear line, non-zero exit
vm notbz 30 --kernel /extra/initramfs.cpio.gz
expect_bad_input "not a bzImage or vmlinux" "not a bzImage or an x86_64 ELF vmlinux"
vm big 30 $BZIMAGE --memory 16
expect_bad_input "bzImage too large for memory" "raise --memory"
vm big-vmlinux 30 $KERNEL --memory 16
expect_bad_input "vmlinux segment past the end of guest RAM" "segment .* outside guest RAM.*raise --memory"
long=$(head -c 3000 /dev/zero | tr '\0' 'x')
vm cmdline 30 $BZIMAGE --memory 256 --cmdline "$long"
expect_bad_input "cmdline longer than the bzImage accepts" "this kernel accepts at most"
vm cmdline-vmlinux 30 $KERNEL --memory 256 --cmdline "$long"
expect_bad_input "cmdline longer than a vmlinux accepts" "this kernel accepts at most 2047"

# --- virtio-blk and virtio-rng (lib.sh's disk_checks): an ext4 root on /dev/vda
# (ci/guest-disk), a read-only disk, a sparse 5 GiB disk, the entropy device, and fsyncs cut
# off by SIGTERM and by SIGKILL; L1 checks the images afterwards
disk_checks 180 "$CMDLINE" "$POWER_OFF" $KERNEL


# --- virtio-net (lib.sh's net_checks): a tap in L1; the guest pings L1 and downloads from
# it, L1 downloads from the guest; a missing, wrong or busy tap is refused
net_checks 180 "$CMDLINE" "$POWER_OFF" $KERNEL
# --- rate limiters (lib.sh's limit_checks): a disk and an interface limited to 4 MiB/s, then lifted
limit_checks 180 "$CMDLINE" "$POWER_OFF" $KERNEL
# --- virtio-vsock (lib.sh's vsock_checks): echoes both ways and 16 connections at once
vsock_checks 180 "$CMDLINE" "$POWER_OFF" $KERNEL
# --- hostile guests (lib-hostile.sh): garbage on virtio-net's queues from a user-space driver;
# the VMM survives and the kernel's driver works afterwards
hostile_net_checks 300 "$CMDLINE" "$POWER_OFF" $KERNEL
hostile_vsock_checks 300 "$CMDLINE" "$POWER_OFF" $KERNEL

# --- guest RAM in huge pages (lib.sh's hugepage_checks): transparent by default, hugetlbfs
# with --hugepages 2M
hugepage_checks 180 "$CMDLINE" "$POWER_OFF" $KERNEL
# --- guest reboot (lib.sh's reboot_checks): three reboots boot the guest again in the same
# process, the power-off after the fourth ends it; --no-reboot ends it at the first
reboot_checks 180 "$CMDLINE" "$POWER_OFF" "$RESET" $KERNEL

finish
