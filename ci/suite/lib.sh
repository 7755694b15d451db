# Helpers for the nested suites (busybox sh inside the L1). Each check prints PASS or FAIL
# with what it saw; `finish` prints "N passed, N failed" and sets the exit status.
passed=0
failed=0
now() { cut -d' ' -f1 /proc/uptime; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# How the checks start swiftlet: with --no-reboot, so that a guest reset (a panic with
# panic=-1) ends it and a failure shows at once instead of a guest booting again until the
# timeout (reboot_checks sets plain `swiftlet run`). A command, not a function: started with
# `&`, $! must be swiftlet's own pid, which the checks signal and read /proc of.
SWIFTLET_RUN="swiftlet run --no-reboot"

# vm NAME TIMEOUT SWIFTLET-RUN-ARGS...: runs `$SWIFTLET_RUN` with stdin from $VM_STDIN
# (default /dev/null); sets rc, out (stdout file), err (stderr file) and took (seconds).
vm() {
    name=$1 limit=$2
    shift 2
    out=/tmp/$name.out err=/tmp/$name.err
    start=$(now)
    $SWIFTLET_RUN "$@" < "${VM_STDIN:-/dev/null}" > "$out" 2> "$err" &
    pid=$!
    wait_or_kill $pid "$limit"
    took=$(seconds_since "$start")
}

# vm_many COUNT NAME TIMEOUT PATTERN END SWIFTLET-RUN-ARGS...: COUNT swiftlets at once, each
# with its own output files (/tmp/NAME-i.out/.err); sets many_ok to how many exited 0 with
# PATTERN in their output and ended as END says (ended_as), and took to the wall time for
# all of them.
vm_many() {
    count=$1 name=$2 limit=$3 pattern=$4 end=$5
    shift 5
    start=$(now)
    pids=
    i=1
    while [ $i -le "$count" ]; do
        $SWIFTLET_RUN "$@" < /dev/null > /tmp/$name-$i.out 2> /tmp/$name-$i.err &
        pids="$pids $!"
        i=$((i + 1))
    done
    many_ok=0
    i=1
    for p in $pids; do
        wait_or_kill $p "$limit"
        if [ "$rc" = 0 ] && grep -q "$pattern" /tmp/$name-$i.out && ended_as /tmp/$name-$i.err "$end"; then
            many_ok=$((many_ok + 1))
        else
            echo "suite: $name-$i: exit $rc"; tail -n 5 /tmp/$name-$i.out; cat /tmp/$name-$i.err
        fi
        i=$((i + 1))
    done
    took=$(seconds_since "$start")
}

# vm_when NAME TIMEOUT MARKER ACTION SWIFTLET-RUN-ARGS...: like vm, and the moment the
# guest's output shows MARKER, evaluates ACTION (which may use $pid, swiftlet's). Sets
# rc/out/err/took.
vm_when() {
    name=$1 limit=$2 marker=$3 action=$4
    shift 4
    out=/tmp/$name.out err=/tmp/$name.err
    start=$(now)
    $SWIFTLET_RUN "$@" < /dev/null > "$out" 2> "$err" &
    pid=$!
    if wait_for "$out" "$marker" "$limit" $pid; then eval "$action"; fi
    wait_or_kill $pid "$limit"
    took=$(seconds_since "$start")
}

# vm_marked NAME TIMEOUT SWIFTLET-RUN-ARGS...: sets marked_at to L1's clock (date +%s) read
# the moment the guest's SWIFTLET-GUEST-UP line appears, so a check can compare what the
# guest read then with what L1 read then.
vm_marked() {
    marked_at=
    n=$1 l=$2
    shift 2
    vm_when "$n" "$l" SWIFTLET-GUEST-UP 'marked_at=$(date +%s)' "$@"
}

# wait_or_kill PID SECONDS: waits for PID; after SECONDS kills it with SIGKILL, so a hung
# guest or VMM cannot stall the suite. Never SIGTERM: that presses the guest's power button,
# the very event some checks wait for, and a fallback must not produce what a test checks.
# Sets rc (137 after the kill) and timed_out (1 after the kill).
wait_or_kill() {
    n=0 timed_out=0
    while kill -0 "$1" 2>/dev/null && [ $n -lt $(($2 * 10)) ]; do sleep 0.1; n=$((n + 1)); done
    if kill -0 "$1" 2>/dev/null; then
        echo "suite: $name still running after $2 s: SIGKILL (the check fails)"
        timed_out=1
        kill -KILL "$1"
    fi
    wait "$1"
    rc=$?
}

# vm_typing NAME TIMEOUT TEXT SWIFTLET-RUN-ARGS...: like vm, but once the guest prints its
# SWIFTLET-GUEST-UP marker, TEXT is typed on swiftlet's stdin (a FIFO, as from a terminal).
vm_typing() {
    name=$1 limit=$2 text=$3
    shift 3
    out=/tmp/$name.out err=/tmp/$name.err
    rm -f /tmp/$name.in
    mkfifo /tmp/$name.in
    start=$(now)
    $SWIFTLET_RUN "$@" < /tmp/$name.in > "$out" 2> "$err" &
    pid=$!
    exec 3> /tmp/$name.in
    if wait_for "$out" SWIFTLET-GUEST-UP "$limit" $pid; then sleep 1; printf '%s' "$text" >&3; fi
    wait_or_kill $pid "$limit"
    exec 3>&-
    took=$(seconds_since "$start")
}

# vm_sigterm NAME TIMEOUT SWIFTLET-RUN-ARGS...: boots a guest in swiftlet.test=powerkey
# mode and, once it waits for the power button, sends swiftlet SIGTERM. Sets rc/out/err/took.
vm_sigterm() {
    n=$1 l=$2
    shift 2
    vm_when "$n" "$l" SWIFTLET-GUEST-WAITING 'kill -TERM $pid' "$@"
}

# vm_api NAME TIMEOUT KERNEL INITRD BOOT-ARGS: a swiftlet waiting on an API socket, driven
# with `swiftlet ctl`: boot source, machine config (2 vCPUs, 256 MiB), InstanceStart, pause,
# resume (checking the state each time), then SendCtrlAltDel. Each step has its deadline:
# the guest must wait for the power key within TIMEOUT, and end within 60 s of the
# SendCtrlAltDel. Sets rc/out/err/took, and api_ok=0 with api_step naming the first step
# that failed.
vm_api() {
    name=$1 limit=$2
    out=/tmp/$name.out err=/tmp/$name.err sock=/tmp/$name.sock
    start=$(now)
    $SWIFTLET_RUN --api-socket $sock < /dev/null > "$out" 2> "$err" &
    pid=$!
    i=0
    while [ ! -S $sock ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    api_ok=1 api_step=
    api_failed() { [ -z "$api_step" ] && api_step=$1; api_ok=0; }
    ctl() { swiftlet ctl --api-socket $sock "$@" || { echo "suite: swiftlet ctl $* failed"; api_failed "$*"; }; }
    ctl PUT /boot-source "{\"kernel_image_path\": \"$3\", \"initrd_path\": \"$4\", \"boot_args\": \"$5\"}"
    ctl PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256}'
    ctl GET / | grep -q '"state":"Not started"' || api_failed "state Not started"
    ctl PUT /actions '{"action_type": "InstanceStart"}'
    wait_for "$out" SWIFTLET-GUEST-WAITING "$limit" $pid || api_failed "guest waiting for the power key within $limit s"
    ctl PATCH /vm '{"state": "Paused"}'
    ctl GET / | grep -q '"state":"Paused"' || api_failed "state Paused"
    ctl PATCH /vm '{"state": "Resumed"}'
    ctl GET / | grep -q '"state":"Running"' || api_failed "state Running"
    ctl PUT /actions '{"action_type": "SendCtrlAltDel"}'
    wait_or_kill $pid 60
    [ "$timed_out" = 0 ] || api_failed "guest ends within 60 s of SendCtrlAltDel"
    took=$(seconds_since "$start")
}

# show: the end of the last VM's output, for failures.
show() { echo "--- $name stdout (tail)"; tail -n 15 "$out"; echo "--- $name stderr"; cat "$err"; echo "---"; }

# ended_as ERR END: swiftlet's stderr ERR is exactly its one line "swiftlet: END" (e.g.
# END = "guest powered off (PSCI SYSTEM_OFF)"): a power-off and a reset (a guest panic with
# panic=-1) both exit 0, only that line differs.
ended_as() { [ "$(wc -l < "$1")" = 1 ] && [ "$(cat "$1")" = "swiftlet: $2" ]; }

# expect_ok NAME PATTERN END: the last VM exited 0, printed PATTERN and ended as END says
# (ended_as).
expect_ok() {
    ended=$(tail -n 1 "$err")
    if [ "$rc" = 0 ] && grep -q "$2" "$out" && ended_as "$err" "$3"; then
        pass "$1 (${took} s)"
    else
        fail "$1: exit $rc, ended '$ended', wanted '$2' and 'swiftlet: $3'"
        show
    fi
}

# expect_error NAME PATTERN: the last VM failed with exactly one stderr line matching PATTERN.
expect_error() {
    lines=$(wc -l < "$err")
    if [ "$rc" != 0 ] && [ "$lines" = 1 ] && grep -q "$2" "$err"; then pass "$1: $(cat "$err")"; else fail "$1: exit $rc, $lines stderr lines, wanted '$2'"; show; fi
}

# expect_bad_input NAME PATTERN: the last VM exited 2 (bad input) with exactly one stderr
# line matching PATTERN.
expect_bad_input() {
    lines=$(wc -l < "$err")
    if [ "$rc" = 2 ] && [ "$lines" = 1 ] && grep -q "$2" "$err"; then pass "$1: $(cat "$err")"; else fail "$1: exit $rc, $lines stderr lines, wanted status 2 and '$2'"; show; fi
}

# wait_for FILE PATTERN SECONDS [PID]: waits until FILE contains PATTERN; with PID, gives
# up as soon as that process has ended (after one last look at FILE).
wait_for() {
    i=0
    while [ "$i" -lt $(($3 * 10)) ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then grep -q "$2" "$1" 2>/dev/null; return; fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# check_rtc OUTPUT: the guest's RTC (rtc= in its marker line, read just before printing it)
# is within 3 s of L1's clock read when the line appeared (vm_marked's marked_at), whatever
# ran before or after: both readings are taken at the same moment.
check_rtc() {
    guest_time=$(sed -n 's/.*SWIFTLET-GUEST-UP.* rtc=\([0-9]*\).*/\1/p' "$1")
    if [ -n "$guest_time" ] && [ -n "$marked_at" ] && [ $((marked_at - guest_time)) -le 3 ] && [ $((guest_time - marked_at)) -le 1 ]; then
        pass "guest RTC $guest_time vs L1 clock $marked_at when the guest printed it"
    else
        fail "guest RTC '$guest_time' vs L1 clock '$marked_at' when the guest printed it"
    fi
}

# vm_until NAME TIMEOUT MARKER SIGNALS SWIFTLET-RUN-ARGS...: like vm, and once the guest's
# output shows MARKER, sends swiftlet each signal of SIGNALS in turn, 2 s apart (e.g.
# "TERM TERM" or "KILL"). Stops waiting at once if swiftlet ends first (e.g. a refused flag).
# Sets acted=1 if the signals were sent, alive=1 if swiftlet still ran just before the last
# one, and rc/out/err/took. $UNTIL_ACTION, if set, is evaluated at the marker, before the signals.
vm_until() {
    name=$1 limit=$2 marker=$3 signals=$4
    shift 4
    out=/tmp/$name.out err=/tmp/$name.err
    start=$(now)
    $SWIFTLET_RUN "$@" < /dev/null > "$out" 2> "$err" &
    pid=$!
    acted=0 alive=0
    if wait_for "$out" "$marker" "$limit" $pid; then
        acted=1
        [ -z "${UNTIL_ACTION:-}" ] || eval "$UNTIL_ACTION"
        gap=
        for sig in $signals; do
            [ -z "$gap" ] || sleep 2
            gap=1
            if kill -0 $pid 2>/dev/null; then alive=1; else alive=0; fi
            kill -"$sig" $pid 2>/dev/null
        done
    fi
    wait_or_kill $pid 30
    took=$(seconds_since "$start")
}

# guest_arch: the tiny guests' architecture suffix for this L1 (arm64 or x86_64).
guest_arch() { case "$(uname -m)" in aarch64) echo arm64 ;; *) echo x86_64 ;; esac; }

# --- disks (virtio-blk). Images are made in L1's /tmp (a tmpfs, so sparse files stay
# sparse); the ext4 root filesystem comes from the host (ci/guest-disk) in /extra.
# disk_blank PATH SIZE: a sparse disk of zeros, e.g. 5G.
disk_blank() { rm -f "$1"; truncate -s "$2" "$1"; }
# disk_random PATH KIB: KIB KiB of random bytes; prints their md5sum.
disk_random() { dd if=/dev/urandom of="$1" bs=1024 count="$2" 2>/dev/null; md5sum < "$1" | cut -d' ' -f1; }
# md5_of FILE: the md5sum of FILE alone.
md5_of() { md5sum < "$1" | cut -d' ' -f1; }
# sector IMAGE N: the first line of 512-byte sector N of IMAGE.
sector() { dd if="$1" bs=512 skip="$2" count=1 2>/dev/null | head -n 1; }
# l1_ext4: loads loop and ext4 with its dependencies (in dependency order; the .ko files of
# L1's own kernel, from /extra) into L1, once.
l1_ext4() {
    for m in loop crc16 mbcache crc32c_generic jbd2 ext4; do
        grep -q "^$m " /proc/modules && continue
        insmod /extra/$m.ko || { echo "suite: insmod /extra/$m.ko failed"; return 1; }
    done
}
# image_file IMAGE PATH: prints file PATH of the ext4 filesystem in IMAGE, mounted read-only
# through a loop device (with noload when its journal needs recovery: sets image_note).
image_file() {
    image_note=
    l1_ext4 || return 1
    mkdir -p /tmp/mnt
    if ! mount -t ext4 -o ro,loop "$1" /tmp/mnt 2>/dev/null; then
        mount -t ext4 -o ro,loop,noload "$1" /tmp/mnt || return 1
        image_note=" (its journal was not clean: mounted with noload)"
    fi
    cat "/tmp/mnt$2"
    status=$?
    umount /tmp/mnt
    return $status
}
# check_synced IMAGE VALUE: every "SYNCED n" line of the last VM's output must have its
# record "SWIFTLET-REC n VALUE" at sector n of IMAGE. Sets synced (how many lines) and
# missing (the n whose record is not there).
check_synced() {
    synced=0 missing=
    for rec in $(tr -d '\r' < "$out" | sed -n 's/^SYNCED \([0-9]*\)$/\1/p'); do
        synced=$((synced + 1))
        [ "$(sector "$1" "$rec")" = "SWIFTLET-REC $rec $2" ] || missing="$missing $rec"
    done
}

# disk_checks TIMEOUT CMDLINE POWER-OFF KERNEL-ARGS...: (POWER-OFF: how the guest's power-off
# ends swiftlet, for expect_ok) the virtio-blk and virtio-rng checks, the same
# on both architectures. One boot from an ext4 root on /dev/vda (a fresh copy of
# /extra/root.img, ci/guest-disk) with a read-only /dev/vdb, a sparse 5 GiB /dev/vdc and
# --rng runs the disk's readonly, bigdisk, rng and diskwrite steps; L1 then checks each disk
# image. Two more boots write records to /dev/vdb with an fsync each until swiftlet gets
# SIGTERM twice (the power key, which the guest ignores, then "stop at once") or SIGKILL;
# every record the guest saw synced must be in the image.
disk_checks() {
    dlimit=$1 dcmdline=$2 dpoweroff=$3
    shift 3
    value=v$(head -c 8 /proc/sys/kernel/random/uuid)
    cp /extra/root.img /tmp/root.img
    ro_sum=$(disk_random /tmp/ro.img 1024)
    disk_blank /tmp/big.img 5G
    vm disks "$dlimit" "$@" --memory 256 --disk path=/tmp/root.img --disk path=/tmp/ro.img,readonly=on \
        --disk path=/tmp/big.img --rng --cmdline "$dcmdline root=/dev/vda swiftlet.test=readonly,bigdisk,rng,diskwrite swiftlet.value=$value swiftlet.ro=/dev/vdb swiftlet.big=/dev/vdc"
    expect_ok "Linux boots from an ext4 root on virtio-blk /dev/vda (with 2 more disks and --rng) and powers off" "SWIFTLET-DISKWRITE-DONE value=$value" "$dpoweroff"
    ran=no
    grep -q SWIFTLET-DISK-UP "$out" && ran=yes
    # diskwrite: the file the guest wrote is in the image
    want="RESULT-$value-$(printf %s "$value" | md5sum | cut -d' ' -f1)"
    got=$(image_file /tmp/root.img /result 2>&1)
    if [ "$got" = "$want" ] && [ "$(stat -c %s /tmp/root.img)" = "$(stat -c %s /extra/root.img)" ]; then
        pass "the file the guest wrote on /dev/vda is in the image, read through a loop mount in L1$image_note"
    else
        fail "diskwrite: wanted /result = '$want' in /tmp/root.img, found '$got' (guest ran: $ran; size $(stat -c %s /tmp/root.img))"
    fi
    # readonly: the guest's write fails, the image is unchanged, and the guest read it whole
    guest_sum=$(tr -d '\r' < "$out" | sed -n 's/^SWIFTLET-RO-READ md5=\([0-9a-f]*\).*/\1/p')
    if grep -q "SWIFTLET-RO-WRITE-FAILED ro=1" "$out" && [ "$(md5_of /tmp/ro.img)" = "$ro_sum" ] && [ "$guest_sum" = "$ro_sum" ]; then
        pass "readonly=on: the guest sees a read-only disk (VIRTIO_BLK_F_RO), its write to /dev/vdb fails ($(tr -d '\r' < "$out" | sed -n 's/^SWIFTLET-RO-WRITE-FAILED //p')), the image is unchanged, the guest reads it whole intact"
    else
        fail "readonly=on: guest says '$(tr -d '\r' < "$out" | grep 'SWIFTLET-RO-WRITE' | head -1)', guest read md5 '$guest_sum', image md5 $(md5_of /tmp/ro.img), wanted $ro_sum (guest ran: $ran)"
    fi
    # bigdisk: size above 4 GiB, the last sector written by the guest is in the image
    last=$((5 * 1024 * 1024 * 2 - 1))
    got=$(sector /tmp/big.img $last)
    if grep -q "SWIFTLET-BIG-OK size=5368709120 sector=$last" "$out" && [ "$got" = "SWIFTLET-BIG-PATTERN-$value-$last" ] &&
        [ "$(stat -c %s /tmp/big.img)" = 5368709120 ]; then
        pass "a sparse 5 GiB disk: the guest sees 5368709120 bytes, writes and reads back its last sector, and L1 finds it at sector $last of the image"
    else
        fail "5 GiB disk: guest says '$(tr -d '\r' < "$out" | grep 'SWIFTLET-BIG' | head -1)', sector $last of the image holds '$got', image size $(stat -c %s /tmp/big.img) (guest ran: $ran)"
    fi
    # rng: the kernel's hwrng is the virtio device and gives bytes
    rng=$(tr -d '\r' < "$out" | grep '^SWIFTLET-RNG ' | head -1)
    hex=${rng##*hex=}
    if echo "$rng" | grep -q "current=virtio_rng.* bytes=32 " && [ -n "$(echo "$hex" | tr -d '0')" ]; then
        current=${rng#*current=}
        pass "--rng: the guest's hw_random is ${current%% *}, and /dev/hwrng gave 32 bytes"
    else
        fail "--rng: guest says '$rng', wanted current=virtio_rng.N and 32 bytes, not all zero (guest ran: $ran)"
    fi
    # syncs cut off: SIGTERM twice, then SIGKILL
    for signals in "TERM TERM" KILL; do
        tag=$(echo "$signals" | tr 'A-Z ' 'a-z-')
        what="SIG$(echo "$signals" | sed 's/ / then SIG/')"
        value=v$(head -c 8 /proc/sys/kernel/random/uuid)
        cp /extra/root.img /tmp/root.img
        disk_blank /tmp/sync.img 1M
        # While the guest writes, a second VM asking for the same image for writing is refused.
        locked=
        UNTIL_ACTION='$SWIFTLET_RUN --kernel /extra/hello-$(guest_arch).bin --memory 64 --disk path=/tmp/sync.img > /tmp/locked.out 2> /tmp/locked.err; locked=$?'
        vm_until "sync-$tag" "$dlimit" "^SYNCED 3" "$signals" "$@" --memory 256 --disk path=/tmp/root.img --disk path=/tmp/sync.img \
            --cmdline "$dcmdline root=/dev/vda swiftlet.test=syncloop swiftlet.value=$value swiftlet.sync=/dev/vdb"
        UNTIL_ACTION=
        if [ "$locked" = 2 ] && [ "$(wc -l < /tmp/locked.err)" = 1 ] && grep -q "disk image /tmp/sync.img is in use by another VM (locked)" /tmp/locked.err; then
            pass "a second VM asking for the image in use is refused: $(cat /tmp/locked.err)"
        else
            fail "a second VM on the image in use: exit '$locked', wanted 2 and one 'in use' line: $(cat /tmp/locked.err 2>/dev/null)"
        fi
        check_synced /tmp/sync.img "$value"
        note=
        if [ "$acted" = 1 ] && [ "$signals" != KILL ]; then
            if [ "$alive" = 1 ]; then note=", still running after the first"; else note=", gone after the first"; fi
        fi
        if [ "$acted" = 1 ] && [ "$synced" -ge 4 ] && [ -z "$missing" ]; then
            pass "$what during fsyncs to /dev/vdb: swiftlet exits ($rc$note), and all $synced records the guest saw synced are in the image (${took} s)"
        else
            fail "$what during fsyncs to /dev/vdb: signals sent: $acted, exit $rc$note, $synced records reported synced, missing from the image:${missing:- none}"
            show
        fi
    done
    # bad input
    vm disk-missing 30 "$@" --memory 256 --disk path=/tmp/no-such-disk.img
    expect_bad_input "a missing disk image" "disk image /tmp/no-such-disk.img"
    rm -f /tmp/root.img /tmp/ro.img /tmp/big.img /tmp/sync.img
}

# --- network (virtio-net on a tap in L1)
# l1_tap NAME ADDRESS/PREFIX: loads tun into L1 (once) and makes tap NAME with the address, up.
l1_tap() {
    # Static glibc (busybox's wget, httpd) resolves even a numeric address through NSS; with
    # no /etc/nsswitch.conf it tries to load libnss_dns and crashes. Files only, then.
    mkdir -p /etc
    [ -f /etc/nsswitch.conf ] || printf 'hosts: files\nservices: files\npasswd: files\ngroup: files\n' > /etc/nsswitch.conf
    touch /etc/hosts /etc/services /etc/passwd /etc/group
    grep -q "^tun " /proc/modules || insmod /extra/tun.ko || { echo "suite: insmod /extra/tun.ko failed"; return 1; }
    [ -d /sys/class/net/$1 ] && return 0
    tunctl -t "$1" > /dev/null || { echo "suite: tunctl -t $1 failed"; return 1; }
    ip addr add "$2" dev "$1" && ip link set "$1" up
}

# net_checks TIMEOUT CMDLINE POWER-OFF KERNEL-ARGS...: a guest on tap0 (L1 10.0.2.1, guest
# 10.0.2.2, ci/guest-initramfs' net mode) pings L1 and downloads 4 MiB from a TCP server in
# L1 (busybox nc); L1 then downloads 4 MiB from one in the guest; both checksummed. Then the taps' bad
# input: a missing tap, an interface that is not a tap, a tap in use.
net_checks() {
    nlimit=$1 ncmdline=$2 npoweroff=$3
    shift 3
    if ! l1_tap tap0 10.0.2.1/24; then fail "a tap in L1 (tun.ko, tunctl, ip)"; return; fi
    dd if=/dev/urandom of=/tmp/blob bs=1024 count=4096 2>/dev/null
    blob_sum=$(sha256sum < /tmp/blob | cut -d' ' -f1)
    # -e: the server sends the file whatever the client does (plain nc -l < FILE exits at the
    # client's half-close, before it has sent everything).
    nc -l -p 8080 -e cat /tmp/blob &
    server=$!
    mac=06:00:0a:00:02:02
    got_sum= busy=
    # At the marker: L1 downloads from the guest, and a second VM asks for the same tap.
    UNTIL_ACTION='got_sum=$(nc -w 10 10.0.2.2 8080 < /dev/null | sha256sum | cut -d" " -f1)
        $SWIFTLET_RUN --kernel /extra/hello-$(guest_arch).bin --memory 64 --net tap=tap0 > /tmp/busy.out 2> /tmp/busy.err; busy=$?'
    vm_until net "$nlimit" SWIFTLET-NET-SERVING TERM "$@" --memory 256 --net tap=tap0,mac=$mac \
        --cmdline "$ncmdline swiftlet.test=net swiftlet.ip=10.0.2.2/24 swiftlet.peer=10.0.2.1"
    UNTIL_ACTION=
    expect_ok "a guest on virtio-net (tap0) comes up and powers off on the power key" "SWIFTLET-GUEST-POWERKEY" "$npoweroff"
    up=$(tr -d '\r' < "$out" | grep '^SWIFTLET-NET-UP ' | head -1)
    received=$(tr -d '\r' < "$out" | sed -n 's/^SWIFTLET-NET-PING received=\([0-9]*\).*/\1/p')
    if echo "$up" | grep -q "mac=$mac mtu=1500 " && [ "$received" = 3 ]; then
        pass "the guest's eth0 has the MAC given (--net mac=) and L1's MTU, and pings L1 through the tap: 3 of 3 replies ($up)"
    else
        fail "guest network: wanted mac=$mac mtu=1500 and 3 ping replies, guest says '$up', $received replies"
    fi
    guest_get=$(tr -d '\r' < "$out" | sed -n 's/^SWIFTLET-NET-GET sha256=\([0-9a-f]*\) bytes=\([0-9]*\).*/\1 \2/p')
    if [ "$guest_get" = "$blob_sum 4194304" ]; then
        pass "the guest downloads 4 MiB from a server in L1 over virtio-net, checksum verified"
    else
        fail "guest download: wanted '$blob_sum 4194304', guest says '$guest_get'"
    fi
    serving=$(tr -d '\r' < "$out" | sed -n 's/^SWIFTLET-NET-SERVING sha256=\([0-9a-f]*\).*/\1/p')
    if [ -n "$serving" ] && [ "$got_sum" = "$serving" ]; then
        pass "L1 downloads 4 MiB from a server in the guest over virtio-net, checksum verified"
    else
        fail "L1's download from the guest: sha256 '$got_sum', the guest served '$serving'"
    fi
    # bad input: one clear line, exit 2
    vm net-missing 30 --kernel /extra/hello-$(guest_arch).bin --memory 64 --net tap=nosuchtap0
    expect_bad_input "a tap that does not exist" "no network interface 'nosuchtap0'"
    vm net-not-tap 30 --kernel /extra/hello-$(guest_arch).bin --memory 64 --net tap=lo
    expect_bad_input "an interface that is not a tap" "'lo' is not a single-queue tap"
    if [ "$busy" = 2 ] && [ "$(wc -l < /tmp/busy.err)" = 1 ] && grep -q "tap 'tap0' is in use by another process" /tmp/busy.err; then
        pass "a second VM asking for the tap in use is refused: $(cat /tmp/busy.err)"
    else
        fail "a second VM on the tap in use: exit '$busy', wanted 2 and one 'in use' line: $(cat /tmp/busy.err 2>/dev/null)"
    fi
    kill $server 2>/dev/null
}

# limit_checks TIMEOUT CMDLINE POWER-OFF KERNEL-ARGS...: rate limiters. A guest (ci/guest-initramfs'
# limits mode) reads 16 MiB from a disk limited to 4 MiB/s (--disk bw_size=512K,
# bw_refill_time=125) and receives a TCP stream from L1 (netbench) for 4 s on an interface
# whose rx is limited alike;
# each must measure 4 MiB/s ±15%. Then the limits are lifted at runtime (PATCH /drives,
# PATCH /network-interfaces with size 0) and both must run at more than three times that.
limit_checks() {
    llimit=$1 lcmdline=$2 lpoweroff=$3
    shift 3
    if ! l1_tap tap0 10.0.2.1/24; then fail "a tap in L1 (tun.ko, tunctl, ip)"; return; fi
    /extra/netbench server 5201 2> /tmp/netbench.log &
    lserver=$!
    disk_blank /tmp/limit.img 64M
    name=limits out=/tmp/limits.out err=/tmp/limits.err sock=/tmp/limits.sock
    rm -f /tmp/limits.in $sock
    mkfifo /tmp/limits.in
    start=$(now)
    $SWIFTLET_RUN "$@" --memory 256 --api-socket $sock \
        --disk path=/tmp/limit.img,id=limited,bw_size=512K,bw_refill_time=125 \
        --net tap=tap0,id=eth0,rx_bw_size=512K,rx_bw_refill_time=125 \
        --cmdline "$lcmdline swiftlet.test=limits swiftlet.ip=10.0.2.2/24 swiftlet.peer=10.0.2.1 swiftlet.disk=/dev/vda swiftlet.mib=16" \
        < /tmp/limits.in > "$out" 2> "$err" &
    pid=$!
    exec 4> /tmp/limits.in
    lifted=0
    if wait_for "$out" SWIFTLET-LIMIT-WAIT "$llimit" $pid; then
        swiftlet ctl --api-socket $sock PATCH /drives/limited '{"drive_id": "limited", "rate_limiter": {"bandwidth": {"size": 0, "refill_time": 0}}}' &&
            swiftlet ctl --api-socket $sock PATCH /network-interfaces/eth0 '{"iface_id": "eth0", "rx_rate_limiter": {"bandwidth": {"size": 0, "refill_time": 0}}}' &&
            lifted=1
        echo go >&4
    fi
    wait_or_kill $pid "$llimit"
    exec 4>&-
    took=$(seconds_since "$start")
    kill $lserver 2>/dev/null
    expect_ok "rate limits: the guest measures a limited disk and interface, the limits are lifted through the API, it measures again" "SWIFTLET-LIMIT net-unlimited" "$lpoweroff"
    for kind in disk net; do
        limited=$(tr -d '\r' < "$out" | sed -n "s/^SWIFTLET-LIMIT $kind-limited mibps=\([0-9.]*\).*/\1/p")
        unlimited=$(tr -d '\r' < "$out" | sed -n "s/^SWIFTLET-LIMIT $kind-unlimited mibps=\([0-9.]*\).*/\1/p")
        what=$([ $kind = disk ] && echo "a disk read" || echo "receiving on a network interface")
        if [ -n "$limited" ] && awk -v x="$limited" 'BEGIN { exit !(x >= 3.4 && x <= 4.6) }'; then
            pass "$what limited to 4 MiB/s runs at $limited MiB/s (within ±15%)"
        else
            fail "$what limited to 4 MiB/s ran at '$limited' MiB/s, wanted 3.4 to 4.6"
        fi
        if [ "$lifted" = 1 ] && [ -n "$unlimited" ] && awk -v x="$unlimited" 'BEGIN { exit !(x > 12) }'; then
            pass "$what with the limit lifted at runtime (PATCH) runs at $unlimited MiB/s (more than 3× the limit)"
        else
            fail "$what after lifting the limit: PATCH ok: $lifted, '$unlimited' MiB/s, wanted more than 12"
        fi
    done
    rm -f /tmp/limit.img
}

# --- vsock (virtio-vsock, Firecracker's Unix-socket host side)
# l1_socat: Debian's socat (from ci/suite/prepare's socat.tar) in L1, once.
l1_socat() {
    case ":$PATH:" in *:/usr/bin:*) ;; *) PATH=$PATH:/usr/bin ;; esac
    command -v socat > /dev/null || tar -C / -xf /extra/socat.tar || { echo "suite: unpacking socat.tar failed"; return 1; }
    socat -V | grep -q 'WITH_VSOCK 1'
}
# vsock_echo FILE OUT: a host-initiated connection to the guest's port 5000 through the
# device's socket (CONNECT 5000, answered OK <port>): sends FILE, keeps what comes back
# after the OK line in OUT; prints the OK line.
vsock_echo() {
    (printf 'CONNECT 5000\n'; cat "$1") | socat -t 60 -T 60 - UNIX-CONNECT:/tmp/vsock.sock > "$2.raw" 2>/dev/null
    ok=$(head -n 1 "$2.raw")
    tail -c +$((${#ok} + 2)) "$2.raw" > "$2"
    echo "$ok"
}

# vsock_checks TIMEOUT CMDLINE POWER-OFF KERNEL-ARGS...: a guest with --vsock cid=3 (ci/
# guest-initramfs' vsock mode, Debian's socat at both ends): the guest echoes 1 MiB through
# L1's echo server at /tmp/vsock.sock_6000 (guest-initiated), L1 echoes 1 MiB through the
# guest's port 5000 (host-initiated) and then 16 connections of 64 KiB at once, all checked by
# sha256; then the power key. Bad input: a reserved CID, a uds_path that exists.
vsock_checks() {
    vlimit=$1 vcmdline=$2 vpoweroff=$3
    shift 3
    if ! l1_socat; then fail "socat with VSOCK addresses in L1"; return; fi
    rm -f /tmp/vsock.sock /tmp/vsock.sock_6000
    socat UNIX-LISTEN:/tmp/vsock.sock_6000,fork EXEC:cat &
    vserver=$!
    dd if=/dev/urandom of=/tmp/vm1 bs=1024 count=1024 2>/dev/null
    i=1
    while [ $i -le 16 ]; do dd if=/dev/urandom of=/tmp/vc$i bs=1024 count=64 2>/dev/null; i=$((i + 1)); done
    host_ok= many=0 many_bad=
    UNTIL_ACTION='host_ok=$(vsock_echo /tmp/vm1 /tmp/vm1.echo)
        echoes=; i=1; while [ $i -le 16 ]; do vsock_echo /tmp/vc$i /tmp/vc$i.echo > /dev/null & echoes="$echoes $!"; i=$((i + 1)); done
        wait $echoes
        i=1; while [ $i -le 16 ]; do
            if [ "$(md5_of /tmp/vc$i)" = "$(md5_of /tmp/vc$i.echo)" ]; then many=$((many + 1))
            else many_bad="$many_bad #$i: $(head -n 1 /tmp/vc$i.echo.raw | head -c 20 | tr -cd "[:print:]"), $(wc -c < /tmp/vc$i.echo) bytes;"; fi
            i=$((i + 1))
        done'
    vm_until vsock "$vlimit" SWIFTLET-GUEST-WAITING TERM "$@" --memory 256 --vsock cid=3,socket=/tmp/vsock.sock \
        --cmdline "$vcmdline swiftlet.test=vsock"
    UNTIL_ACTION=
    kill $vserver 2>/dev/null
    expect_ok "a guest with virtio-vsock (cid 3) comes up, echoes and powers off on the power key" "SWIFTLET-GUEST-POWERKEY" "$vpoweroff"
    echo_line=$(tr -d '\r' < "$out" | grep '^SWIFTLET-VSOCK-GUEST-ECHO ' | head -1)
    sent=$(echo "$echo_line" | sed -n 's/.*sent=\([0-9a-f]*\).*/\1/p')
    if [ -n "$sent" ] && [ "$echo_line" = "SWIFTLET-VSOCK-GUEST-ECHO sent=$sent got=$sent" ]; then
        pass "guest-initiated vsock: the guest's socat sends 1 MiB to host port 6000 (L1's /tmp/vsock.sock_6000) and gets it back intact"
    else
        fail "guest-initiated vsock echo: guest says '$echo_line'"
    fi
    if echo "$host_ok" | grep -q '^OK [0-9][0-9]*$' && [ "$(md5_of /tmp/vm1)" = "$(md5_of /tmp/vm1.echo)" ]; then
        pass "host-initiated vsock: CONNECT 5000 is answered '$host_ok', 1 MiB echoed by the guest's socat intact"
    else
        fail "host-initiated vsock echo: answer '$host_ok', $(wc -c < /tmp/vm1.echo 2>/dev/null) bytes back"
    fi
    if [ "$many" = 16 ]; then
        pass "16 concurrent host-initiated vsock connections, 64 KiB each, all echoed intact"
    else
        fail "16 concurrent vsock connections: $many of 16 echoed intact;$many_bad"
    fi
    rm -f /tmp/vm1* /tmp/vc*
    # bad input: one clear line, exit 2
    vm vsock-cid 30 --kernel /extra/hello-$(guest_arch).bin --memory 64 --vsock cid=2,socket=/tmp/vsock-bad.sock
    expect_bad_input "a reserved vsock CID" "between 3 and 4294967294"
    touch /tmp/vsock-exists.sock
    vm vsock-exists 30 --kernel /extra/hello-$(guest_arch).bin --memory 64 --vsock cid=3,socket=/tmp/vsock-exists.sock
    expect_bad_input "a vsock uds_path that exists" "vsock uds_path /tmp/vsock-exists.sock already exists"
    rm -f /tmp/vsock-exists.sock
}

# reboot_checks TIMEOUT CMDLINE POWER_OFF RESET KERNEL-ARGS...: a Linux guest that counts
# its boots on a disk (initramfs mode reboot) reboots three times and powers off after the
# fourth boot: swiftlet boots it again in the same process each time and exits 0 at the
# power-off, one stderr line per reboot; with --no-reboot the first reboot ends swiftlet
# (status 0, the one line RESET).
reboot_checks() {
    rlimit=$1 rcmdline=$2 rpoweroff=$3 rreset=$4
    shift 4
    head -c 4096 /dev/zero > /tmp/boots.img
    SWIFTLET_RUN="swiftlet run"
    vm reboots $((rlimit * 4)) "$@" --memory 256 --disk path=/tmp/boots.img --cmdline "$rcmdline swiftlet.test=reboot swiftlet.boots=4"
    SWIFTLET_RUN="swiftlet run --no-reboot"
    counts=$(tr -d '\r' < "$out" | sed -n 's/^SWIFTLET-BOOT count=\([0-9]*\).*/\1/p' | tr '\n' ' ')
    wanted_err=$(printf 'swiftlet: %s; rebooting (boot 2)\nswiftlet: %s; rebooting (boot 3)\nswiftlet: %s; rebooting (boot 4)\nswiftlet: %s' "$rreset" "$rreset" "$rreset" "$rpoweroff")
    if [ "$rc" = 0 ] && [ "$counts" = "1 2 3 4 " ] && [ "$(cat "$err")" = "$wanted_err" ] && [ "$(head -c 8 /tmp/boots.img)" = 00000004 ]; then
        pass "a guest that reboots three times: swiftlet boots it again in the same process each time (boots counted on its disk: $counts) and exits 0 at its power-off after the fourth ($took s)"
    else
        fail "reboot three times, then power off: exit $rc, boots seen '$counts', disk says '$(head -c 8 /tmp/boots.img)'"; show
    fi
    head -c 4096 /dev/zero > /tmp/boots.img
    vm no-reboot "$rlimit" "$@" --memory 256 --disk path=/tmp/boots.img --cmdline "$rcmdline swiftlet.test=reboot swiftlet.boots=4"
    counts=$(tr -d '\r' < "$out" | sed -n 's/^SWIFTLET-BOOT count=\([0-9]*\).*/\1/p' | tr '\n' ' ')
    if [ "$counts" = "1 " ]; then
        expect_ok "--no-reboot: the guest's first reboot ends swiftlet with status 0" "SWIFTLET-BOOT count=1" "$rreset"
    else
        fail "--no-reboot: boots seen '$counts', wanted just the first"; show
    fi
}

# ram_field PID MIB FIELD: FIELD (kB) of swiftlet PID's mapping of MIB MiB (its guest RAM)
# in /proc/PID/smaps, e.g. AnonHugePages or KernelPageSize.
ram_field() {
    awk -v size=$(($2 * 1024)) -v field="$3:" '/^[0-9a-f]+-[0-9a-f]+ / { in_ram = 0 }
        $1 == "Size:" { in_ram = ($2 == size) } in_ram && $1 == field { print $2; exit }' /proc/$1/smaps
}

# hugepage_checks TIMEOUT CMDLINE POWER_OFF KERNEL-ARGS...: guest RAM is placed so that the
# host backs it with transparent huge pages (AnonHugePages of the guest RAM mapping, read
# while the guest waits for the power key); with --hugepages 2M it is in hugetlbfs pages
# L1 reserved (KernelPageSize 2048 kB), and asking for more than are reserved is one line.
hugepage_checks() {
    hlimit=$1 hcmdline=$2 hpoweroff=$3
    shift 3
    thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled)
    UNTIL_ACTION='huge=$(ram_field $pid 256 AnonHugePages)'
    huge=
    vm_until thp "$hlimit" SWIFTLET-GUEST-WAITING TERM "$@" --memory 256 --cmdline "$hcmdline swiftlet.test=powerkey"
    if [ "$rc" = 0 ] && [ "${huge:-0}" -ge 2048 ] && ended_as "$err" "$hpoweroff"; then
        pass "guest RAM in transparent huge pages: ${huge} kB of the 256 MiB mapping are AnonHugePages at the guest's shell (L1's THP: $thp)"
    else
        fail "guest RAM in transparent huge pages: AnonHugePages '${huge}' kB (L1's THP: $thp), exit $rc"; show
    fi
    echo 140 > /proc/sys/vm/nr_hugepages
    reserved=$(sed -n 's/^HugePages_Total: *//p' /proc/meminfo)
    UNTIL_ACTION='page=$(ram_field $pid 256 KernelPageSize); free=$(sed -n "s/^HugePages_Free: *//p" /proc/meminfo)'
    page= free=
    vm_until hugetlb "$hlimit" SWIFTLET-GUEST-WAITING TERM "$@" --memory 256 --hugepages 2M --cmdline "$hcmdline swiftlet.test=powerkey"
    if [ "$rc" = 0 ] && [ "$page" = 2048 ] && ended_as "$err" "$hpoweroff"; then
        pass "--hugepages 2M: the guest's 256 MiB are in 2 MiB hugetlbfs pages (KernelPageSize $page kB; $free of $reserved reserved pages free while it ran) and it boots and powers off"
    else
        fail "--hugepages 2M: KernelPageSize '$page' kB ($reserved pages reserved), exit $rc"; show
    fi
    vm hugetlb-short 30 "$@" --memory 512 --hugepages 2M
    expect_error "--hugepages 2M with fewer pages reserved than the guest needs" "fewer than 256 free 2 MiB huge pages"
    echo 0 > /proc/sys/vm/nr_hugepages
    unset UNTIL_ACTION
}

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}
