# Hostile-guest checks for the nested suites (busybox sh in L1), sourced after lib.sh (uses
# its vm, expect_ok, pass/fail and l1_tap).

# hostile_net_checks TIMEOUT CMDLINE POWER-OFF KERNEL-ARGS...: a guest on tap0 (L1 10.0.2.1,
# guest 10.0.2.2) in ci/guest-initramfs' hostile mode: with no kernel driver on the device,
# ci/guest-tools/virtio-hostile.c drives virtio-net from user space with garbage rounds
# (bad headers, short/split/oversized frames, malformed rings, a flood, garbage rx buffers,
# handshake and transport garbage; each round ends with a clean reset and an ARP request
# whose reply must arrive) from seed $HOSTILE_SEED (default 1). Swiftlet must survive it:
# the tool finishes (SWIFTLET-HOSTILE-DONE), then the kernel's own virtio-net driver takes
# the device and gets 3 of 3 ping replies from L1, and the guest powers off normally.
hostile_net_checks() {
    hlimit=$1 hcmdline=$2 hpoweroff=$3
    shift 3
    if ! l1_tap tap0 10.0.2.1/24; then fail "a tap in L1 (tun.ko, tunctl, ip)"; return; fi
    hseed=${HOSTILE_SEED:-1}
    vm hostile-net "$hlimit" "$@" --memory 256 --net tap=tap0 \
        --cmdline "$hcmdline swiftlet.test=hostile swiftlet.hostile=net swiftlet.seed=$hseed swiftlet.ip=10.0.2.2/24 swiftlet.peer=10.0.2.1"
    expect_ok "a hostile user-space driver floods virtio-net with garbage (seed $hseed): the VMM survives and the guest powers off" \
        "SWIFTLET-HOSTILE-DONE device=net" "$hpoweroff"
    done_line=$(tr -d '\r' < "$out" | grep '^SWIFTLET-HOSTILE-DONE ' | head -1)
    rounds_ok=$(tr -d '\r' < "$out" | grep -c '^HOSTILE round .* ok$')
    after=$(tr -d '\r' < "$out" | sed -n 's/^SWIFTLET-HOSTILE-AFTER ping received=\([0-9]*\).*/\1/p')
    if [ -n "$done_line" ] && [ "$after" = 3 ]; then
        pass "after the garbage ($rounds_ok rounds, ${done_line#SWIFTLET-HOSTILE-DONE }) the kernel's virtio-net driver resets the device and gets 3 of 3 ping replies from L1"
    else
        fail "hostile virtio-net: $(tr -d '\r' < "$out" | grep -E '^SWIFTLET-HOSTILE-(FAIL|DONE)' | head -1), $rounds_ok rounds ok, ping replies after: '$after' (wanted 3)"
        tr -d '\r' < "$out" | grep '^HOSTILE ' | tail -n 5
    fi
}

# hostile_vsock_checks TIMEOUT CMDLINE POWER-OFF KERNEL-ARGS...: the same for virtio-vsock
# (--vsock cid=3): garbage packets (bogus ops, types, CIDs, lengths past the chain and past
# 64 KiB, truncated and split headers, RW/CREDIT_UPDATE/SHUTDOWN/RST for connections that do
# not exist, a flood of REQUESTs) on its queues from user space; then the kernel's vsock
# driver takes the device and echoes 64 KiB through L1's echo server at host port 6000.
hostile_vsock_checks() {
    hlimit=$1 hcmdline=$2 hpoweroff=$3
    shift 3
    if ! l1_socat; then fail "socat with VSOCK addresses in L1"; return; fi
    hseed=${HOSTILE_SEED:-1}
    rm -f /tmp/hvsock.sock /tmp/hvsock.sock_6000
    socat UNIX-LISTEN:/tmp/hvsock.sock_6000,fork EXEC:cat &
    hserver=$!
    vm hostile-vsock "$hlimit" "$@" --memory 256 --vsock cid=3,socket=/tmp/hvsock.sock \
        --cmdline "$hcmdline swiftlet.test=hostile swiftlet.hostile=vsock swiftlet.seed=$hseed"
    kill $hserver 2>/dev/null
    expect_ok "a hostile user-space driver floods virtio-vsock with garbage (seed $hseed): the VMM survives and the guest powers off" \
        "SWIFTLET-HOSTILE-DONE device=vsock" "$hpoweroff"
    done_line=$(tr -d '\r' < "$out" | grep '^SWIFTLET-HOSTILE-DONE ' | head -1)
    rounds_ok=$(tr -d '\r' < "$out" | grep -c '^HOSTILE round .* ok$')
    after=$(tr -d '\r' < "$out" | sed -n 's/^SWIFTLET-HOSTILE-AFTER vsock-echo=\(.*\)/\1/p')
    if [ -n "$done_line" ] && [ "$after" = intact ]; then
        pass "after the garbage ($rounds_ok rounds, ${done_line#SWIFTLET-HOSTILE-DONE }) the kernel's vsock driver resets the device and echoes 64 KiB through host port 6000 intact"
    else
        fail "hostile virtio-vsock: $(tr -d '\r' < "$out" | grep -E '^SWIFTLET-HOSTILE-(FAIL|DONE)' | head -1), $rounds_ok rounds ok, echo after: '$after' (wanted intact)"
        tr -d '\r' < "$out" | grep '^HOSTILE ' | tail -n 5
    fi
}
