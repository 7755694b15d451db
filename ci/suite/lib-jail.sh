# swiftlet jail (issue 11), sourced by the nested suites after lib.sh: a jailed VMM seen
# from outside (its root, user, namespaces, cgroup, environment, descriptors, rlimits), its
# cgroup's CPU and memory limits at work, and the API unable to reach host files.
#
#   jail_checks TIMEOUT CMDLINE END
#       uses $KERNEL (the suite's --kernel/--initrd); END: the power-off line after "swiftlet: "

JAIL_BASE=/srv/jailer
JAIL_UID=1000
JAIL_GID=1001

# jail_cmd ID [JAIL-FLAGS...]: sets SWIFTLET_RUN to run the VMM jailed as ID (for lib.sh's
# vm, vm_when), after removing what an earlier run of ID left.
jail_cmd() {
    j_id=$1
    shift
    rm -rf "$JAIL_BASE/$j_id"
    [ -d /sys/fs/cgroup/swiftlet/$j_id ] && rmdir /sys/fs/cgroup/swiftlet/$j_id
    SWIFTLET_RUN="swiftlet jail --id $j_id --uid $JAIL_UID --gid $JAIL_GID --chroot-base-dir $JAIL_BASE $* -- --no-reboot"
}

# jail_vmm ID: the jailed VMM's host pid (written by the jail), waiting up to 5 s for it.
jail_vmm() {
    i=0
    while [ ! -s "$JAIL_BASE/$1/swiftlet.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    cat "$JAIL_BASE/$1/swiftlet.pid" 2>/dev/null
}

# jail_inspect ID: what L1 sees of the jailed VMM, one "key=value" a line, into /tmp/jail-seen.txt.
jail_inspect() {
    v=$(jail_vmm "$1")
    {
        echo "vmm=$v"
        echo "root-inode=$(stat -c %d:%i /proc/$v/root/ 2>&1)"
        echo "jail-inode=$(stat -c %d:%i $JAIL_BASE/$1/root/ 2>&1)"
        echo "root-list=$(ls /proc/$v/root/ 2>&1 | tr '\n' ' ')"
        echo "uid=$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' /proc/$v/status)"
        echo "gid=$(awk '$1 == "Gid:" { print $2, $3, $4, $5 }' /proc/$v/status)"
        echo "groups=$(awk '$1 == "Groups:" { $1 = ""; print }' /proc/$v/status | tr -d ' ')"
        echo "nspid=$(awk '$1 == "NSpid:" { print $2, $3 }' /proc/$v/status)"
        echo "mntns=$(readlink /proc/$v/ns/mnt) l1=$(readlink /proc/1/ns/mnt)"
        echo "pidns=$(readlink /proc/$v/ns/pid) l1=$(readlink /proc/1/ns/pid)"
        echo "cgroup=$(cat /proc/$v/cgroup)"
        echo "netns=$(readlink /proc/$v/ns/net) net:[$(stat -L -c %i /run/netns/jail 2>&1)] l1=$(readlink /proc/1/ns/net)"
        echo "environ=$(tr '\0' '\n' < /proc/$v/environ | wc -l)"
        echo "leaked-fd=$(ls -l /proc/$v/fd 2>/dev/null | grep -c lib-jail.sh)"
        echo "nofile=$(awk '/^Max open files/ { print $4, $5 }' /proc/$v/limits)"
        echo "cmdline=$(tr '\0' ' ' < /proc/$v/cmdline)"
        echo "image-link=$(stat -c %i /extra/Image) $(stat -c %i $JAIL_BASE/$1/root/Image 2>&1)"
        echo "disk=$(stat -c %d:%i /tmp/jail-disk.img) $(stat -c %d:%i /proc/$v/root/jail-disk.img 2>&1) $(for f in /proc/$v/fd/*; do stat -L -c %d:%i $f 2>/dev/null; done | grep -c "^$(stat -c %d:%i /tmp/jail-disk.img)$")"
        echo "kvm=$(stat -c '%t:%T %u:%g %a' $JAIL_BASE/$1/root/dev/kvm 2>&1) host=$(stat -c '%t:%T' /dev/kvm)"
        echo "api=$(swiftlet ctl --api-socket $JAIL_BASE/$1/root/run/api.sock GET / 2>&1)"
    } > /tmp/jail-seen.txt
}

# seen KEY: the value jail_inspect recorded.
seen() { sed -n "s/^$1=//p" /tmp/jail-seen.txt; }

# cg_usage ID: the group's cpu.stat usage_usec.
cg_usage() { awk '$1 == "usage_usec" { print $2 }' /sys/fs/cgroup/swiftlet/$1/cpu.stat; }

jail_checks() {
    j_limit=$1 j_cmdline=$2 j_end=$3
    j_saved_run=$SWIFTLET_RUN
    grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
    # A descriptor the jail must not pass on.
    exec 7< /extra/lib-jail.sh

    # --- a jailed Linux guest, inspected from outside while it waits for the power key;
    # then SIGTERM to the jail is passed on to the VMM, which presses the power key.
    # A writable disk on L1's /tmp (a tmpfs: another filesystem than the jail's, so it is
    # bind-mounted in, not hard-linked), given to the VMM's user.
    dd if=/dev/zero of=/tmp/jail-disk.img bs=1M count=4 2>/dev/null
    chown $JAIL_UID:$JAIL_GID /tmp/jail-disk.img
    # A network namespace to join, kept by a bind mount (busybox unshare --net=FILE).
    mkdir -p /run/netns
    [ -e /run/netns/jail ] || { touch /run/netns/jail && unshare --net=/run/netns/jail true; }
    jail_cmd jail-basic --netns /run/netns/jail
    vm_when jail-basic "$j_limit" SWIFTLET-GUEST-WAITING 'jail_inspect jail-basic; kill -TERM $pid' \
        $KERNEL --memory 128 --api-sock /run/api.sock --api-allow uid=0 --disk path=/tmp/jail-disk.img --cmdline "$j_cmdline swiftlet.test=powerkey"
    expect_ok "jail: a jailed Linux guest boots, and SIGTERM to the jail reaches the VMM (power key)" SWIFTLET-GUEST-POWERKEY "$j_end"
    echo "suite: seen from L1: $(tr '\n' ';' < /tmp/jail-seen.txt)"
    j_ok() { if [ "$2" = ok ]; then pass "jail: $1"; else fail "jail: $1"; fi; }
    [ "$(seen root-inode)" = "$(seen jail-inode)" ] && [ -n "$(seen jail-inode)" ] && r=ok || r=bad
    j_ok "the VMM's / is $JAIL_BASE/jail-basic/root (device:inode $(seen root-inode), the jail's $(seen jail-inode))" $r
    [ "$(seen root-list)" = "Image dev initramfs.cpio.gz jail-disk.img run swiftlet " ] && r=ok || r=bad
    j_ok "the VMM's / holds only its files: $(seen root-list)(no old_root, no L1 directories)" $r
    [ "$(seen uid)" = "$JAIL_UID $JAIL_UID $JAIL_UID $JAIL_UID" ] && [ "$(seen gid)" = "$JAIL_GID $JAIL_GID $JAIL_GID $JAIL_GID" ] \
        && [ -z "$(seen groups)" ] && r=ok || r=bad
    j_ok "the VMM runs as uid $(seen uid), gid $(seen gid), groups '$(seen groups)'" $r
    set -- $(seen nspid)
    [ "${2:-}" = 1 ] && [ "$1" = "$(seen vmm)" ] && r=ok || r=bad
    j_ok "the VMM is PID 1 of its own PID namespace (NSpid: $(seen nspid))" $r
    set -- $(seen mntns)
    [ "$1" != "${2#l1=}" ] && r=ok || r=bad
    j_ok "mount namespace $1, L1's ${2#l1=}" $r
    set -- $(seen pidns)
    [ "$1" != "${2#l1=}" ] && r=ok || r=bad
    j_ok "PID namespace $1, L1's ${2#l1=}" $r
    set -- $(seen netns)
    [ "$1" = "${2:-}" ] && [ "$1" != "${3#l1=}" ] && r=ok || r=bad
    j_ok "--netns /run/netns/jail: the VMM's network namespace is $1 (the handle's ${2:-}, L1's ${3#l1=})" $r
    [ "$(seen cgroup)" = "0::/swiftlet/jail-basic" ] && r=ok || r=bad
    j_ok "the VMM's cgroup is $(seen cgroup)" $r
    [ "$(seen environ)" = 0 ] && [ "$(seen leaked-fd)" = 0 ] && [ "$(seen nofile)" = "2048 2048" ] && r=ok || r=bad
    j_ok "no environment ($(seen environ) variables), no inherited descriptor (fd 7: $(seen leaked-fd)), RLIMIT_NOFILE $(seen nofile)" $r
    case "$(seen cmdline)" in "swiftlet run --no-reboot --kernel /Image --initrd /initramfs.cpio.gz "*) r=ok ;; *) r=bad ;; esac
    j_ok "the VMM's arguments name the jail's paths: $(seen cmdline)" $r
    set -- $(seen image-link)
    [ "$1" = "${2:-}" ] && r=ok || r=bad
    j_ok "the kernel is a hard link of /extra/Image (inode $(seen image-link))" $r
    set -- $(seen disk)
    [ "$1" = "${2:-}" ] && [ "${3:-}" = 1 ] && r=ok || r=bad
    j_ok "the disk on L1's /tmp (a tmpfs) is bind-mounted in as /jail-disk.img (device:inode $1, in the jail ${2:-}) and the VMM has it open (${3:-0})" $r
    set -- $(seen kvm)
    [ "$1" = "${4#host=}" ] && [ "$2" = "$JAIL_UID:$JAIL_GID" ] && [ "$3" = 600 ] && r=ok || r=bad
    j_ok "the jail's dev/kvm: device $1 (host ${4#host=}), owner $2, mode $3" $r
    case "$(seen api)" in *'"state":"Running"'*) r=ok ;; *) r=bad ;; esac
    j_ok "the API socket is the jail's /run/api.sock: GET / answers $(seen api)" $r

    # --- bad input: one line, status 2
    SWIFTLET_RUN="swiftlet jail --id jail-bad --uid 0 --gid 0 --" vm jail-root 10 $KERNEL
    expect_bad_input "jail: uid 0 is refused" "would run the VMM as root"
    SWIFTLET_RUN="swiftlet jail --id jail-bad --uid 5 --gid 5 --cpu-max lots --" vm jail-cpu-bad 10 $KERNEL
    expect_bad_input "jail: a bad --cpu-max is refused" "cpu-max takes QUOTA"
    jail_cmd jail-bad
    vm jail-nokernel 10 --kernel /extra/no-such-Image
    expect_bad_input "jail: a missing kernel is refused before anything is made" "kernel /extra/no-such-Image: No such file"
    [ ! -e $JAIL_BASE/jail-bad ] && pass "jail: nothing was created for the refused jail" || fail "jail: $JAIL_BASE/jail-bad exists after a refusal"

    # --- the API cannot reach files outside the jail: /extra/Image and /etc/passwd exist
    # in L1, not in the jail; a log in the jail's /run can be made, one in /extra cannot.
    # The VMM runs as the jail's uid; root (these checks) is admitted with --api-allow, as an operator would.
    jail_cmd jail-api
    $SWIFTLET_RUN --api-sock /run/api.sock --api-allow uid=0 > /tmp/jail-api.out 2> /tmp/jail-api.err &
    j_pid=$!
    j_sock=$JAIL_BASE/jail-api/root/run/api.sock
    i=0
    while [ ! -S $j_sock ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    j_api() { swiftlet ctl --api-socket $j_sock "$@" 2>&1; echo "status=$?"; }
    j_log_out=$(j_api PUT /logger '{"log_path": "/extra/vm.log"}')
    j_log_in=$(j_api PUT /logger '{"log_path": "/run/vm.log"}')
    j_boot=$(j_api PUT /boot-source '{"kernel_image_path": "/extra/Image"}'; j_api PUT /actions '{"action_type": "InstanceStart"}')
    j_passwd=$(j_api PUT /boot-source '{"kernel_image_path": "/etc/passwd"}'; j_api PUT /actions '{"action_type": "InstanceStart"}')
    kill -TERM $j_pid
    name=jail-api
    wait_or_kill $j_pid 15
    echo "suite: API answers: log /extra: $j_log_out | log /run: $j_log_in | /extra/Image: $j_boot | /etc/passwd: $j_passwd" | tr '\n' ' '
    echo
    case "$j_log_out" in *"400 Bad Request"*"/extra/vm.log"*"No such file"*) r=ok ;; *) r=bad ;; esac
    [ -e /extra/vm.log ] && r=bad
    j_ok "PUT /logger with L1's /extra/vm.log: 400 (no /extra in the jail)" $r
    case "$j_log_in" in "status=0") r=ok ;; *) r=bad ;; esac
    [ -f $JAIL_BASE/jail-api/root/run/vm.log ] || r=bad
    j_ok "PUT /logger with /run/vm.log: 204, made in the jail ($JAIL_BASE/jail-api/root/run/vm.log)" $r
    case "$j_boot" in *status=0*"400 Bad Request"*"/extra/Image"*"No such file"*) r=ok ;; *) r=bad ;; esac
    [ -f /extra/Image ] || r=bad
    j_ok "boot source L1's /extra/Image (which exists in L1): InstanceStart answers 400, no such file in the jail" $r
    case "$j_passwd" in *status=0*"400 Bad Request"*"/etc/passwd"*) r=ok ;; *) r=bad ;; esac
    j_ok "boot source /etc/passwd: InstanceStart answers 400" $r

    # --- cpu.max of half a CPU: a guest spinning on both its vCPUs uses 50% +-10% of a CPU
    jail_cmd jail-cpu --cpu-max 0.5
    rm -f /tmp/jail-cpu.txt
    vm_when jail-cpu 180 SWIFTLET-SPIN 'sleep 2; u0=$(cg_usage jail-cpu); t0=$(now); sleep 10; u1=$(cg_usage jail-cpu); t1=$(now); echo "$u0 $u1 $t0 $t1 $(cat /sys/fs/cgroup/swiftlet/jail-cpu/cpu.max)" > /tmp/jail-cpu.txt; kill -KILL $(jail_vmm jail-cpu)' \
        $KERNEL --memory 128 --cpus 2 --cmdline "$j_cmdline swiftlet.test=spin"
    set -- $(cat /tmp/jail-cpu.txt 2>/dev/null) x x x x x x
    j_pct=$(awk -v u0="$1" -v u1="$2" -v t0="$3" -v t1="$4" 'BEGIN { if (t1 > t0) printf "%.1f", (u1 - u0) / 10000 / (t1 - t0); else print "none" }')
    r=bad
    awk -v p="$j_pct" 'BEGIN { exit !(p >= 40 && p <= 60) }' && grep -q 'SWIFTLET-SPIN cpus=2' /tmp/jail-cpu.out && r=ok
    j_ok "cpu.max '$5 $6': a guest spinning on 2 vCPUs used $j_pct% of a CPU over $(awk -v a="$3" -v b="$4" 'BEGIN { print b - a }') s (usage_usec $1 -> $2; 40-60% wanted)" $r
    [ $r = ok ] || show

    # --- memory.max: a guest touching more than its VMM may have is OOM-killed with its VMM
    # alone; a second jailed VM beside it reaches its marker and powers off.
    jail_cmd jail-beside
    j_beside_run=$SWIFTLET_RUN
    jail_cmd jail-oom --memory-max 160M
    $SWIFTLET_RUN $KERNEL --memory 320 --cmdline "$j_cmdline swiftlet.test=fill swiftlet.mib=256" > /tmp/jail-oom.out 2> /tmp/jail-oom.err &
    j_oom_pid=$!
    SWIFTLET_RUN=$j_beside_run vm jail-beside "$j_limit" $KERNEL --memory 256 --cmdline "$j_cmdline swiftlet.test=fill swiftlet.mib=64"
    expect_ok "jail: the VM beside the OOM-killed one fills 64 MiB and powers off" "SWIFTLET-FILL done mib=64" "$j_end"
    name=jail-oom
    wait_or_kill $j_oom_pid "$j_limit"
    j_events=$(tr '\n' ' ' < /sys/fs/cgroup/swiftlet/jail-oom/memory.events)
    j_peak=$(cat /sys/fs/cgroup/swiftlet/jail-oom/memory.peak 2>/dev/null || echo n/a)
    r=bad
    [ "$rc" = 137 ] && grep -q 'SWIFTLET-FILL start mib=256' /tmp/jail-oom.out && ! grep -q 'SWIFTLET-FILL done' /tmp/jail-oom.out \
        && echo "$j_events" | grep -q 'oom_kill [1-9]' && r=ok
    j_ok "memory.max 160M: the VMM whose guest fills 256 MiB is OOM-killed alone (jail status $rc = SIGKILL; memory.events: $j_events)" $r
    [ $r = ok ] || { echo "--- jail-oom stdout (tail)"; tail -n 5 /tmp/jail-oom.out; cat /tmp/jail-oom.err; }

    exec 7<&-
    SWIFTLET_RUN=$j_saved_run
}
