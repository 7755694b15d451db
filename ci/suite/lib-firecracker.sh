# Firecracker's clients against Swiftlet in Firecracker mode (issue 12), sourced by the nested
# suites after lib.sh (pass, fail, show, ended_as, wait_for, wait_or_kill, l1_socat, l1_tap).
# The binary is entered as a link named `firecracker` (argv[0] is how Swiftlet takes
# Firecracker's whole command line and defaults); requests are raw HTTP/1.1 through Debian's
# socat (L1 has no curl). Every check passes or fails with what it saw; none skips quietly.
#
#   firecracker_checks TIMEOUT KERNEL INITRD CMDLINE END BOOT-TIMER-ADDR
#       the Go SDK's and Kata's request sequences, FlushMetrics, --config-file --no-api, a
#       stalled log FIFO, and the boot timer with Debian's kernel (END: the power-off line
#       after "swiftlet: "; BOOT-TIMER-ADDR: the machine's boot-timer page; INITRD may be
#       empty, for a kernel that takes none)
#   boot_timer_tiny_checks TIMEOUT GUEST-BIN END
#       a tiny guest that writes 123 to the boot timer itself (Tests/Guests/boot-timer-*.S)

FC_DIR=/tmp/fc
FC=$FC_DIR/firecracker

# fc_setup: socat in L1 and the `firecracker` link, once.
fc_setup() {
    l1_socat || { echo "suite: no socat in L1"; return 1; }
    mkdir -p $FC_DIR
    [ -L $FC ] || ln -s "$(command -v swiftlet)" $FC
}

# http METHOD PATH [BODY]: one HTTP/1.1 request (Content-Length, Connection: close) over the
# API socket $fc_sock; prints the status code and the body on one line ("000" when nothing
# answered). Bodies are ASCII JSON, so ${#body} is their length in bytes. socat waits up to
# 30 s for the answer after sending (-t): InstanceStart is answered once the VM is built,
# which in the x86_64 L1 takes 1.4-2.7 s (a 66 MB vmlinux read into guest RAM) and was once
# over 5 s.
http() {
    hbody=${3-}
    printf '%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$1" "$2" "${#hbody}" "$hbody" | socat -t 30 -T 30 - UNIX-CONNECT:"$fc_sock" 2>/dev/null | tr -d '\r' |
        awk 'NR == 1 { code = $2; next } inbody { body = body $0; next } $0 == "" { inbody = 1 }
             END { printf "%s %s\n", (code == "" ? "000" : code), body }'
}

# http_many COUNT METHOD PATH: COUNT requests without a body on one keep-alive connection
# (the last with Connection: close); prints how many were answered 200 (the answers run
# together: a body has no newline).
http_many() {
    awk -v n="$1" -v m="$2" -v p="$3" 'BEGIN { for (i = 1; i <= n; i++)
        printf "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n%s\r\n", m, p, (i == n ? "Connection: close\r\n" : "") }' |
        socat -t 30 -T 30 - UNIX-CONNECT:"$fc_sock" 2>/dev/null | grep -o 'HTTP/1.1 200 ' | wc -l
}

# fc_expect WANT WHAT METHOD PATH [BODY]: a request whose status must be WANT; a wrong one
# is remembered in fc_bad (the step and what came back). Sets fc_answer (status and body).
fc_expect() {
    fwant=$1 fwhat=$2
    shift 2
    fc_answer=$(http "$@")
    if [ "${fc_answer%% *}" != "$fwant" ]; then
        fc_bad="$fc_bad; $fwhat ($1 $2): wanted $fwant, got '$fc_answer'"
    fi
    fc_steps=$((fc_steps + 1))
}

# fc_instance_start: PUT /actions InstanceStart, which must answer 204; when it does not, the
# VM will not run, and the firecracker waiting on its API is killed at once (the check fails
# with the answer) rather than waited for until the timeout.
fc_instance_start() {
    fc_expect 204 InstanceStart PUT /actions '{"action_type":"InstanceStart"}'
    [ "${fc_answer%% *}" = 204 ] || kill -KILL $pid 2>/dev/null
}

# fc_start NAME ARGS...: starts `firecracker ARGS` in the background with stdin from
# /dev/null; sets name/out/err (for show), pid and start.
fc_start() {
    name=$1
    shift
    out=/tmp/$name.out err=/tmp/$name.err
    start=$(now)
    $FC "$@" < /dev/null > "$out" 2> "$err" &
    pid=$!
}
# fc_end LIMIT: waits for the started firecracker (SIGKILL after LIMIT s); sets rc and took.
fc_end() { wait_or_kill $pid "$1"; took=$(seconds_since "$start"); }

# fc_ended END: firecracker exited 0 and its last stderr line is "swiftlet: END" (tail -1:
# with a log on stderr or the boot timer there are more lines).
fc_ended() { [ "$rc" = 0 ] && [ "$(tail -n 1 "$err")" = "swiftlet: $1" ]; }

# metric_sum FILE FIELD: FIELD summed over FILE's metrics lines (each reports what was
# counted since the line before it). For fields whose name is unique in a line.
metric_sum() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" | awk '{ s += $1 } END { print s + 0 }'; }

# fc_log_pattern ID [LEVEL]: an extended regexp for the start of a Firecracker log line
# (--show-level, --show-log-origin) with instance id ID, at LEVEL or any level:
# 2026-11-24T09:15:02.123456789 [ID:THREAD:LEVEL:FILE.swift:LINE] message
fc_log_pattern() {
    echo "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9} \\[$1:[^]:]+:${2:-(ERROR|WARN|INFO|DEBUG|TRACE)}:[A-Za-z0-9_./-]+\\.swift:[0-9]+\\] "
}

# fc_sdk_replay LIMIT KERNEL INITRD CMDLINE END: the Go SDK's requests, in its order
# (firecracker-go-sdk's default handlers): the readiness probe GET /machine-config every
# 10 ms until 200, PUT /logger, PUT /metrics, PUT /machine-config, GET /machine-config,
# PUT /boot-source, PUT /drives/rootfs, PUT /network-interfaces/eth0 (on a tap made in L1
# as lib.sh's net checks make theirs), PUT /vsock, InstanceStart. The guest powers off.
fc_sdk_replay() {
    slimit=$1 skernel=$2 sinitrd=$3 scmdline=$4 send=$5
    rm -f $FC_DIR/sdk.sock $FC_DIR/sdk.log $FC_DIR/sdk.metrics $FC_DIR/sdk-v.sock
    dd if=/dev/zero of=$FC_DIR/rootfs.img bs=1M count=8 2>/dev/null
    tap=
    if l1_tap fctap0 10.0.3.1/24; then tap=fctap0; else fail "Go SDK replay: a tap in L1 for PUT /network-interfaces (tun.ko, tunctl, ip)"; fi
    fc_sock=$FC_DIR/sdk.sock fc_bad= fc_steps=0
    fc_start fc-sdk --api-sock $fc_sock --id fc-sdk-1
    polls=0 ready=
    while [ $polls -lt $((slimit * 100)) ] && kill -0 $pid 2>/dev/null; do
        polls=$((polls + 1))
        answer=$(http GET /machine-config)
        [ "${answer%% *}" = 200 ] && { ready=$(seconds_since "$start"); break; }
        sleep 0.01
    done
    [ -n "$ready" ] || fc_bad="$fc_bad; readiness probe: no 200 to GET /machine-config after $polls polls"
    fc_expect 204 logger PUT /logger "{\"log_path\":\"$FC_DIR/sdk.log\",\"level\":\"Debug\",\"show_level\":true,\"show_log_origin\":true}"
    fc_expect 204 metrics PUT /metrics "{\"metrics_path\":\"$FC_DIR/sdk.metrics\"}"
    fc_expect 204 machine-config PUT /machine-config '{"vcpu_count":1,"mem_size_mib":128,"smt":false,"track_dirty_pages":false}'
    fc_expect 200 "machine-config read back" GET /machine-config
    config=$(echo "${fc_answer#* }" | tr -d ' ')
    case "$config" in
        *'"vcpu_count":1,'*'"mem_size_mib":128'*|*'"mem_size_mib":128,'*'"vcpu_count":1'*) ;;
        *) fc_bad="$fc_bad; GET /machine-config after the PUT: '$config', wanted vcpu_count 1 and mem_size_mib 128" ;;
    esac
    fc_expect 204 boot-source PUT /boot-source "{\"kernel_image_path\":\"$skernel\",${sinitrd:+\"initrd_path\":\"$sinitrd\",}\"boot_args\":\"$scmdline swiftlet.test=poweroff\"}"
    fc_expect 204 drive PUT /drives/rootfs "{\"drive_id\":\"rootfs\",\"path_on_host\":\"$FC_DIR/rootfs.img\",\"is_root_device\":false,\"is_read_only\":false}"
    [ -z "$tap" ] || fc_expect 204 network-interface PUT /network-interfaces/eth0 "{\"iface_id\":\"eth0\",\"host_dev_name\":\"$tap\",\"guest_mac\":\"06:00:0a:00:03:02\"}"
    fc_expect 204 vsock PUT /vsock "{\"vsock_id\":\"vsock0\",\"guest_cid\":3,\"uds_path\":\"$FC_DIR/sdk-v.sock\"}"
    fc_instance_start
    fc_end "$slimit"
    if [ -z "$fc_bad" ]; then
        pass "Go SDK replay through 'firecracker --api-sock --id': ready after $polls polls of GET /machine-config at 10 ms ($ready s), $fc_steps requests answered 204/200 as Firecracker does, machine-config read back ($config)"
    else
        fail "Go SDK replay through 'firecracker --api-sock --id'${fc_bad}"
    fi
    if fc_ended "$send" && grep -q "SWIFTLET-GUEST-UP cpus=1 " "$out" && ended_as "$err" "$send"; then
        pass "Go SDK replay: the guest (1 vCPU, 128 MiB, a drive, ${tap:+a tap, }vsock) boots to its marker and powers off; firecracker exits 0 ($took s)"
    else
        fail "Go SDK replay: exit $rc, ended '$(tail -n 1 "$err")', wanted SWIFTLET-GUEST-UP cpus=1 and the one line 'swiftlet: $send'"; show
    fi
    pattern=$(fc_log_pattern fc-sdk-1)
    lines=$(wc -l < $FC_DIR/sdk.log 2>/dev/null || echo 0)
    laid=$(grep -cE "$pattern" $FC_DIR/sdk.log 2>/dev/null)
    if [ "$lines" -gt 0 ] && [ "$laid" = "$lines" ] &&
        grep -qE "$(fc_log_pattern fc-sdk-1 INFO)The API server received a Put request on \"/actions\" with body" $FC_DIR/sdk.log &&
        grep -qE "$(fc_log_pattern fc-sdk-1 DEBUG)The API server answered the Put request on \"/actions\" with 204" $FC_DIR/sdk.log; then
        pass "Go SDK replay: all $lines lines of the PUT /logger file are in Firecracker's layout (id fc-sdk-1, thread, level, origin), with the requests at INFO and their answers at DEBUG: $(grep '/actions' $FC_DIR/sdk.log | head -n 1 | cut -c 1-110)..."
    else
        fail "Go SDK replay: the log file has $lines lines, $laid in Firecracker's layout (wanted all, with an INFO line for PUT /actions and DEBUG lines): $(head -n 2 $FC_DIR/sdk.log 2>/dev/null | tr '\n' '|')"
    fi
    check_exit_metrics "Go SDK replay" $FC_DIR/sdk.metrics
    mlines=$(grep -c '^{"utc_timestamp_ms":' $FC_DIR/sdk.metrics 2>/dev/null)
    devices= want=
    for group in block_rootfs ${tap:+net_eth0}; do
        want="$want $group"
        grep -q "\"$group\":{" $FC_DIR/sdk.metrics && devices="$devices $group"
    done
    if [ "$devices" = "$want" ]; then
        pass "Go SDK replay: the metrics ($mlines lines) have the drive and interface the SDK configured:$devices"
    else
        fail "Go SDK replay: the metrics have groups '$devices', wanted '$want'"
    fi
}

# check_exit_metrics WHAT FILE: FILE holds metrics lines (JSON, Firecracker's layout) whose
# vcpu exit counters, summed, are not zero (x86_64: the console's port writes; arm64: MMIO).
check_exit_metrics() {
    mlines=$(grep -c '^{"utc_timestamp_ms":.*}$' "$2" 2>/dev/null)
    all=$(wc -l < "$2" 2>/dev/null || echo 0)
    io_out=$(metric_sum "$2" exit_io_out) mmio_write=$(metric_sum "$2" exit_mmio_write)
    io_in=$(metric_sum "$2" exit_io_in) mmio_read=$(metric_sum "$2" exit_mmio_read)
    uart=$(metric_sum "$2" write_count)
    if [ "${mlines:-0}" -ge 2 ] && [ "$mlines" = "$all" ] && [ $((io_out + mmio_write)) -gt 0 ]; then
        pass "$1: the metrics file has $mlines JSON lines, vcpu exits summed: exit_io_out $io_out, exit_io_in $io_in, exit_mmio_write $mmio_write, exit_mmio_read $mmio_read (uart write_count $uart)"
    else
        fail "$1: the metrics file has $all lines, $mlines JSON lines (wanted 2 or more: start and exit), exit_io_out $io_out + exit_mmio_write $mmio_write (wanted > 0): $(head -c 300 "$2" 2>/dev/null)"
    fi
}

# fc_flush_metrics LIMIT KERNEL INITRD CMDLINE END: with the guest waiting for the power key,
# PUT /actions FlushMetrics answers 204 and the metrics file (--metrics-path) has one more
# line within 1 s; then SIGTERM presses the power key and the guest powers off.
fc_flush_metrics() {
    flimit=$1 fkernel=$2 finitrd=$3 fcmdline=$4 fend=$5
    rm -f $FC_DIR/flush.sock $FC_DIR/flush.metrics
    fc_sock=$FC_DIR/flush.sock fc_bad= fc_steps=0
    fc_start fc-flush --api-sock $fc_sock --id fc-flush --metrics-path $FC_DIR/flush.metrics
    wait_for_socket $fc_sock
    fc_expect 204 boot-source PUT /boot-source "{\"kernel_image_path\":\"$fkernel\",${finitrd:+\"initrd_path\":\"$finitrd\",}\"boot_args\":\"$fcmdline swiftlet.test=powerkey\"}"
    fc_expect 204 machine-config PUT /machine-config '{"vcpu_count":1,"mem_size_mib":256}'
    fc_instance_start
    before= after= waited= answer=
    if wait_for "$out" SWIFTLET-GUEST-WAITING "$flimit" $pid; then
        before=$(wc -l < $FC_DIR/flush.metrics)
        answer=$(http PUT /actions '{"action_type":"FlushMetrics"}')
        t0=$(now) fi=0
        while [ $fi -lt 10 ]; do
            after=$(wc -l < $FC_DIR/flush.metrics)
            [ "$after" -gt "$before" ] && break
            sleep 0.1
            fi=$((fi + 1))
        done
        waited=$(seconds_since "$t0")
        kill -TERM $pid
    fi
    fc_end "$flimit"
    final=$(wc -l < $FC_DIR/flush.metrics 2>/dev/null)
    if [ -z "$fc_bad" ] && [ "${answer%% *}" = 204 ] && [ -n "$before" ] && [ "$after" = $((before + 1)) ]; then
        pass "FlushMetrics with the guest up: 204, and the metrics file went from $before to $after lines within $waited s"
    else
        fail "FlushMetrics: set-up${fc_bad:- ok}; guest waiting: ${before:+yes}; answer '$answer'; metrics lines $before then $after (wanted one more within 1 s)"
    fi
    if fc_ended "$fend" && ended_as "$err" "$fend" && grep -q SWIFTLET-GUEST-POWERKEY "$out" && [ "${final:-0}" -gt "${after:-0}" ]; then
        pass "FlushMetrics: then SIGTERM presses the power key, the guest powers off, firecracker exits 0 and writes its last metrics line ($final lines) ($took s)"
    else
        fail "FlushMetrics, then SIGTERM: exit $rc, ended '$(tail -n 1 "$err")', $final metrics lines at exit (wanted more than $after: one as it stops)"; show
    fi
}

# wait_for_socket PATH: up to 5 s for the API socket to appear.
wait_for_socket() {
    wi=0
    while [ ! -S "$1" ] && [ $wi -lt 50 ]; do sleep 0.1; wi=$((wi + 1)); done
}

# fc_config FILE KERNEL INITRD BOOT-ARGS [EXTRA-SECTIONS]: a Firecracker JSON config file with
# boot-source and machine-config (1 vCPU, 256 MiB), and EXTRA-SECTIONS (JSON members) if given.
fc_config() {
    printf '{\n  "boot-source": {"kernel_image_path": "%s", %s"boot_args": "%s"},\n  "machine-config": {"vcpu_count": 1, "mem_size_mib": 256, "smt": false}%s\n}\n' \
        "$2" "${3:+\"initrd_path\": \"$3\", }" "$4" "${5:+,
  $5}" > "$1"
}

# semver_at_least VERSION MIN: both x.y.z; VERSION >= MIN.
semver_at_least() {
    echo "$1" | grep -qE '^[0-9]+\.[0-9]+\.[0-9]+$' &&
        awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, "."); split(b, y, ".")
            for (i = 1; i <= 3; i++) { if (x[i] + 0 > y[i] + 0) exit 0; if (x[i] + 0 < y[i] + 0) exit 1 } exit 0 }'
}

# fc_kata_replay LIMIT KERNEL INITRD CMDLINE END: Kata Containers' sequence:
# `firecracker --version` (the second word of its first line, less "v", a semver >= 0.21.1),
# a JSON config file (boot-source, machine-config, drives, logger, metrics) started with
# `--api-sock --config-file`, GET / polled until "state" is "Running", PATCH /drives/{id}
# with a new path_on_host (a block device's media change, as Kata hot-plugs a container's
# rootfs), then SIGTERM: the guest (powerkey mode) powers off and firecracker exits 0.
fc_kata_replay() {
    klimit=$1 kkernel=$2 kinitrd=$3 kcmdline=$4 kend=$5
    line=$($FC --version 2>&1 | head -n 1)
    version=$(echo "$line" | awk '{ print $2 }')
    version=${version#v}
    if semver_at_least "$version" 0.21.1; then
        pass "Kata's version check: 'firecracker --version' says '$line': $version is a semver >= 0.21.1"
    else
        fail "Kata's version check: 'firecracker --version' says '$line', second word less v is '$version', wanted a semver >= 0.21.1"
    fi
    rm -f $FC_DIR/kata.sock $FC_DIR/kata.log $FC_DIR/kata.metrics
    dd if=/dev/zero of=$FC_DIR/kata-a.img bs=1M count=4 2>/dev/null
    dd if=/dev/zero of=$FC_DIR/kata-b.img bs=1M count=8 2>/dev/null
    fc_config $FC_DIR/kata.json "$kkernel" "$kinitrd" "$kcmdline swiftlet.test=powerkey" \
        "\"drives\": [{\"drive_id\": \"drive_0\", \"path_on_host\": \"$FC_DIR/kata-a.img\", \"is_root_device\": false, \"is_read_only\": false}],
  \"logger\": {\"log_path\": \"$FC_DIR/kata.log\", \"level\": \"Debug\", \"show_level\": true, \"show_log_origin\": true},
  \"metrics\": {\"metrics_path\": \"$FC_DIR/kata.metrics\"}"
    fc_sock=$FC_DIR/kata.sock fc_bad= fc_steps=0
    fc_start fc-kata --api-sock $fc_sock --id fc-kata --config-file $FC_DIR/kata.json
    polls=0 state=
    while [ $polls -lt $((klimit * 10)) ] && kill -0 $pid 2>/dev/null; do
        polls=$((polls + 1))
        answer=$(http GET /)
        state=$(echo "$answer" | sed -n 's/.*"state": *"\([^"]*\)".*/\1/p')
        [ "${answer%% *}" = 200 ] && [ "$state" = Running ] && break
        sleep 0.1
    done
    [ "$state" = Running ] || fc_bad="$fc_bad; GET / never said Running after $polls polls (last: '$answer')"
    patched= vmconfig=
    if wait_for "$out" SWIFTLET-GUEST-WAITING "$klimit" $pid; then
        fc_expect 204 "media change" PATCH /drives/drive_0 "{\"drive_id\":\"drive_0\",\"path_on_host\":\"$FC_DIR/kata-b.img\"}"
        fc_expect 200 "vm config" GET /vm/config
        vmconfig=$fc_answer
        echo "$vmconfig" | grep -q "\"path_on_host\": *\"$FC_DIR/kata-b.img\"" && patched=1
        kill -TERM $pid
    else
        fc_bad="$fc_bad; the guest never waited for the power key"
    fi
    fc_end "$klimit"
    if [ -z "$fc_bad" ] && [ -n "$patched" ]; then
        pass "Kata replay: --api-sock --config-file, GET / said Running after $polls polls, PATCH /drives/drive_0 to a new path_on_host 204 and GET /vm/config shows it"
    else
        fail "Kata replay${fc_bad}; GET /vm/config after the PATCH: '$(echo "$vmconfig" | cut -c 1-300)'"
    fi
    if fc_ended "$kend" && ended_as "$err" "$kend" && grep -q SWIFTLET-GUEST-POWERKEY "$out"; then
        pass "Kata replay: SIGTERM presses the power key, the guest powers off, firecracker exits 0 ($took s); its log has $(wc -l < $FC_DIR/kata.log) lines, its metrics $(wc -l < $FC_DIR/kata.metrics)"
    else
        fail "Kata replay, SIGTERM: exit $rc, ended '$(tail -n 1 "$err")', wanted SWIFTLET-GUEST-POWERKEY and the one line 'swiftlet: $kend'"; show
    fi
}

# fc_no_api LIMIT KERNEL INITRD CMDLINE END BOOT-TIMER-ADDR: `--config-file F --no-api`
# (with an --api-sock, which --no-api overrides, as in Firecracker): the guest boots and
# powers off, and neither that socket nor Firecracker's default /run/firecracker.socket
# appears. Its init writes 123 to the boot timer's address, which without --boot-timer is
# unclaimed MMIO: no Guest-boot-time line either.
fc_no_api() {
    nlimit=$1 nkernel=$2 ninitrd=$3 ncmdline=$4 nend=$5 naddr=$6
    rm -f $FC_DIR/noapi.sock
    default_before=no
    [ -e /run/firecracker.socket ] && default_before=yes
    fc_config $FC_DIR/noapi.json "$nkernel" "$ninitrd" "$ncmdline swiftlet.test=poweroff swiftlet.boottimer=$naddr"
    fc_start fc-no-api --api-sock $FC_DIR/noapi.sock --config-file $FC_DIR/noapi.json --no-api
    sockets=
    if wait_for "$out" SWIFTLET-GUEST-UP "$nlimit" $pid; then
        [ -e $FC_DIR/noapi.sock ] && sockets="$sockets $FC_DIR/noapi.sock"
        [ $default_before = no ] && [ -e /run/firecracker.socket ] && sockets="$sockets /run/firecracker.socket"
    fi
    fc_end "$nlimit"
    if fc_ended "$nend" && ended_as "$err" "$nend" && grep -q "SWIFTLET-GUEST-UP cpus=1 " "$out" && [ -z "$sockets" ]; then
        pass "--config-file --no-api: the guest boots from the file and powers off, firecracker exits 0, no API socket exists while it runs; without --boot-timer its write to $naddr is unclaimed MMIO (no Guest-boot-time line) ($took s)"
    else
        fail "--config-file --no-api: exit $rc, ended '$(tail -n 1 "$err")', sockets seen while the guest was up:${sockets:- none}"; show
    fi
}

# fc_stalled_log LIMIT KERNEL INITRD CMDLINE END: --log-path on a FIFO nobody reads (Swiftlet
# opens it read-write, so the open does not wait for a reader) at Debug, and 2000 API
# requests (GET /machine-config on one keep-alive connection: two log lines each) while the
# guest boots: every request is answered, the guest reaches its marker and powers off on
# the power key, and the metrics count the log lines dropped (missed_log_count > 0).
fc_stalled_log() {
    llimit=$1 lkernel=$2 linitrd=$3 lcmdline=$4 lend=$5
    rm -f $FC_DIR/stall.sock $FC_DIR/stall.fifo $FC_DIR/stall.metrics
    mkfifo $FC_DIR/stall.fifo
    fc_sock=$FC_DIR/stall.sock fc_bad= fc_steps=0
    fc_start fc-stall --api-sock $fc_sock --id fc-stall --log-path $FC_DIR/stall.fifo --level Debug --show-level \
        --show-log-origin --metrics-path $FC_DIR/stall.metrics
    wait_for_socket $fc_sock
    fc_expect 204 boot-source PUT /boot-source "{\"kernel_image_path\":\"$lkernel\",${linitrd:+\"initrd_path\":\"$linitrd\",}\"boot_args\":\"$lcmdline swiftlet.test=powerkey\"}"
    fc_expect 204 machine-config PUT /machine-config '{"vcpu_count":1,"mem_size_mib":256}'
    fc_instance_start
    t0=$(now)
    answered=$(http_many 2000 GET /machine-config)
    busy=$(seconds_since "$t0")
    during=no
    grep -q SWIFTLET-GUEST-UP "$out" || during=yes
    if wait_for "$out" SWIFTLET-GUEST-WAITING "$llimit" $pid; then kill -TERM $pid; fi
    fc_end "$llimit"
    missed=$(metric_sum $FC_DIR/stall.metrics missed_log_count)
    dropped=$(grep 'log lines were dropped' "$err")
    if [ -z "$fc_bad" ] && [ "$answered" = 2000 ] && fc_ended "$lend" && grep -q "SWIFTLET-GUEST-POWERKEY" "$out" && [ "$missed" -gt 0 ]; then
        pass "a stalled log FIFO (nobody reads it, Debug): 2000 of 2000 requests answered in $busy s (guest still booting when they were done: $during), the guest reaches its marker and powers off, missed_log_count sums to $missed; stderr: '${dropped#swiftlet: }' ($took s)"
    else
        fail "a stalled log FIFO: set-up${fc_bad:- ok}; $answered of 2000 requests answered; exit $rc, ended '$(tail -n 1 "$err")'; missed_log_count sum $missed (wanted > 0)"; show
    fi
    rm -f $FC_DIR/stall.fifo
}

# fc_boot_timer LIMIT KERNEL INITRD CMDLINE END ADDR: `--boot-timer` with the guest's init
# writing 123 to ADDR (swiftlet.boottimer=ADDR, just before its marker): exactly one
# "swiftlet: Guest-boot-time = N us N ms, N CPU us N CPU ms" line on stderr, right before
# the end line. fc_no_api boots the same guest without --boot-timer: its write goes to
# unclaimed MMIO (the config has no virtio device, so on x86_64 no window is at ADDR).
fc_boot_timer() {
    blimit=$1 bkernel=$2 binitrd=$3 bcmdline=$4 bend=$5 baddr=$6
    fc_config $FC_DIR/timer.json "$bkernel" "$binitrd" "$bcmdline swiftlet.test=poweroff swiftlet.boottimer=$baddr"
    fc_start fc-boot-timer --config-file $FC_DIR/timer.json --no-api --boot-timer
    fc_end "$blimit"
    check_boot_time_line "--boot-timer (Linux's init writes 123 to $baddr)" "SWIFTLET-GUEST-UP cpus=1 " "$bend"
}

# check_boot_time_line WHAT MARKER END: the last run exited 0 with MARKER in its output, and
# its stderr is exactly the boot-time line and then the end line (the ms are the us / 1000).
check_boot_time_line() {
    timeline=$(grep -c '^swiftlet: Guest-boot-time = ' "$err")
    first=$(head -n 1 "$err")
    us=$(echo "$first" | sed -n 's/^swiftlet: Guest-boot-time = \([0-9]*\) us \([0-9]*\) ms, \([0-9]*\) CPU us \([0-9]*\) CPU ms$/\1 \2 \3 \4/p')
    if fc_ended "$3" && [ "$(wc -l < "$err")" = 2 ] && [ "$timeline" = 1 ] && [ -n "$us" ] && grep -q "$2" "$out" &&
        echo "$us" | awk '{ exit !(int($1 / 1000) == $2 && int($3 / 1000) == $4 && $1 > 0) }'; then
        pass "$1: exactly one '${first#swiftlet: }' line on stderr, before the end line ($took s)"
    else
        fail "$1: exit $rc, $timeline Guest-boot-time lines, stderr '$(tr '\n' '|' < "$err")', wanted one such line and then 'swiftlet: $3'"; show
    fi
}

# boot_timer_tiny_checks LIMIT GUEST-BIN END: a tiny guest that writes 123 to the boot timer,
# reads it back (0), writes 123 again and a 16-bit 123, prints "boot timer signalled, read 0"
# and ends (END): with --boot-timer one Guest-boot-time line (the repeat and the 16-bit write
# are not reported); without, the accesses are unclaimed MMIO and the guest still ends.
boot_timer_tiny_checks() {
    tlimit=$1 tbin=$2 tend=$3
    vm boot-timer-tiny "$tlimit" --kernel "$tbin" --memory 64 --boot-timer
    check_boot_time_line "--boot-timer with a tiny guest ($(basename "$tbin")): the first 123 reported, reads give 0" "^boot timer signalled, read 0" "$tend"
    vm boot-timer-tiny-off "$tlimit" --kernel "$tbin" --memory 64
    expect_ok "without --boot-timer the tiny guest's boot-timer accesses are unclaimed MMIO and it runs to its end ($(tr -d '\r' < "$out" | grep '^boot timer' | head -n 1))" "^boot timer signalled, read " "$tend"
}

# firecracker_checks TIMEOUT KERNEL INITRD CMDLINE END BOOT-TIMER-ADDR: all of the above with
# Debian's kernel and the CI initramfs.
firecracker_checks() {
    if ! fc_setup; then fail "Firecracker's clients: socat in L1 and a 'firecracker' link"; return; fi
    fc_sdk_replay "$1" "$2" "$3" "$4" "$5"
    fc_flush_metrics "$1" "$2" "$3" "$4" "$5"
    fc_kata_replay "$1" "$2" "$3" "$4" "$5"
    fc_no_api "$1" "$2" "$3" "$4" "$5" "$6"
    fc_stalled_log "$1" "$2" "$3" "$4" "$5"
    fc_boot_timer "$1" "$2" "$3" "$4" "$5" "$6"
    rm -f $FC_DIR/*.img
}
