# Helpers for the nested suites (busybox sh inside the L1). Each check prints PASS or FAIL
# with what it saw; `finish` prints "N passed, N failed" and sets the exit status.
passed=0
failed=0
now() { cut -d' ' -f1 /proc/uptime; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# vm NAME TIMEOUT SWIFTLET-RUN-ARGS...: runs `swiftlet run` with stdin from $VM_STDIN
# (default /dev/null); sets rc, out (stdout file), err (stderr file) and took (seconds).
vm() {
    name=$1 limit=$2
    shift 2
    out=/tmp/$name.out err=/tmp/$name.err
    start=$(now)
    swiftlet run "$@" < "${VM_STDIN:-/dev/null}" > "$out" 2> "$err" &
    pid=$!
    wait_or_kill $pid "$limit"
    took=$(seconds_since "$start")
}

# vm_many COUNT NAME TIMEOUT PATTERN SWIFTLET-RUN-ARGS...: COUNT swiftlets at once, each
# with its own output files (/tmp/NAME-i.out/.err); sets many_ok to how many exited 0 with
# PATTERN in their output, and took to the wall time for all of them.
vm_many() {
    count=$1 name=$2 limit=$3 pattern=$4
    shift 4
    start=$(now)
    pids=
    i=1
    while [ $i -le "$count" ]; do
        swiftlet run "$@" < /dev/null > /tmp/$name-$i.out 2> /tmp/$name-$i.err &
        pids="$pids $!"
        i=$((i + 1))
    done
    many_ok=0
    i=1
    for p in $pids; do
        wait_or_kill $p "$limit"
        if [ "$rc" = 0 ] && grep -q "$pattern" /tmp/$name-$i.out; then
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
    swiftlet run "$@" < /dev/null > "$out" 2> "$err" &
    pid=$!
    if wait_for "$out" "$marker" "$limit"; then eval "$action"; fi
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

# wait_or_kill PID SECONDS: waits for PID; after SECONDS sends SIGTERM (the guest's power
# button), 40 s later SIGKILL, so a hung guest or VMM cannot stall the suite. Sets rc.
wait_or_kill() {
    n=0
    while kill -0 "$1" 2>/dev/null && [ $n -lt $(($2 * 10)) ]; do sleep 0.1; n=$((n + 1)); done
    if kill -0 "$1" 2>/dev/null; then
        echo "suite: $name still running after $2 s: SIGTERM"
        kill -TERM "$1"
        n=0
        while kill -0 "$1" 2>/dev/null && [ $n -lt 400 ]; do sleep 0.1; n=$((n + 1)); done
        kill -0 "$1" 2>/dev/null && { echo "suite: $name ignored SIGTERM for 40 s: SIGKILL"; kill -KILL "$1"; }
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
    swiftlet run "$@" < /tmp/$name.in > "$out" 2> "$err" &
    pid=$!
    exec 3> /tmp/$name.in
    if wait_for "$out" SWIFTLET-GUEST-UP "$limit"; then sleep 1; printf '%s' "$text" >&3; fi
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
# resume (checking the state each time), then SendCtrlAltDel. Sets rc/out/err/took, and
# api_ok=0 when a request failed.
vm_api() {
    name=$1 limit=$2
    out=/tmp/$name.out err=/tmp/$name.err sock=/tmp/$name.sock
    start=$(now)
    swiftlet run --api-socket $sock < /dev/null > "$out" 2> "$err" &
    pid=$!
    i=0
    while [ ! -S $sock ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    api_ok=1
    ctl() { swiftlet ctl --api-socket $sock "$@" || { echo "suite: swiftlet ctl $* failed"; api_ok=0; }; }
    ctl PUT /boot-source "{\"kernel_image_path\": \"$3\", \"initrd_path\": \"$4\", \"boot_args\": \"$5\"}"
    ctl PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256}'
    ctl GET / | grep -q '"state":"Not started"' || api_ok=0
    ctl PUT /actions '{"action_type": "InstanceStart"}'
    wait_for "$out" SWIFTLET-GUEST-WAITING "$limit" || api_ok=0
    ctl PATCH /vm '{"state": "Paused"}'
    ctl GET / | grep -q '"state":"Paused"' || api_ok=0
    ctl PATCH /vm '{"state": "Resumed"}'
    ctl GET / | grep -q '"state":"Running"' || api_ok=0
    ctl PUT /actions '{"action_type": "SendCtrlAltDel"}'
    wait_or_kill $pid 120
    took=$(seconds_since "$start")
}

# show: the end of the last VM's output, for failures.
show() { echo "--- $name stdout (tail)"; tail -n 15 "$out"; echo "--- $name stderr"; cat "$err"; echo "---"; }

# expect_ok NAME PATTERN: the last VM exited 0 and printed PATTERN.
expect_ok() {
    if [ "$rc" = 0 ] && grep -q "$2" "$out"; then pass "$1 (${took} s)"; else fail "$1: exit $rc, wanted '$2'"; show; fi
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

# wait_for FILE PATTERN SECONDS: waits until FILE contains PATTERN.
wait_for() {
    i=0
    while [ "$i" -lt $(($3 * 10)) ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
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

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}
