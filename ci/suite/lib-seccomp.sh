# Seccomp per thread (issue 11), sourced by the nested suites after lib.sh. Every other
# check of the suites runs with the filters on too (the default); these show that each
# thread kind runs under its filter and that a call outside a thread's list ends the VMM.
#
#   seccomp_checks TIMEOUT CMDLINE END
#       uses $KERNEL (the suite's --kernel/--initrd); END: the power-off line after "swiftlet: "

# seccomp_threads PID: one line per thread of PID: "comm|Seccomp|Seccomp_filters".
seccomp_threads() {
    for task in /proc/$1/task/*; do
        printf '%s|%s|%s\n' "$(cat $task/comm)" \
            "$(awk '$1 == "Seccomp:" { print $2 }' $task/status)" \
            "$(awk '$1 == "Seccomp_filters:" { print $2 }' $task/status)"
    done
}

seccomp_checks() {
    sc_limit=$1 sc_cmdline=$2 sc_end=$3
    # What this architecture calls its system calls (the report gives the number).
    case "$(uname -m)" in
        aarch64) sc_arch=aarch64 sc_denials="vcpu:ioctl:29 io:epoll_pwait:22 console:futex:98 writer:futex:98 main:ppoll:73" ;;
        *) sc_arch=x86_64 sc_denials="vcpu:ioctl:16 io:epoll_wait:232 console:futex:202 writer:futex:202 main:poll:7" ;;
    esac

    # Each thread kind under a filter while the guest runs: the main thread's, which the
    # threads it starts keep (Seccomp_filters 2 with their own), and the log writer's, which
    # starts before the main thread filters itself.
    rm -f /tmp/sc-threads.txt /tmp/sc.log
    vm_when seccomp-threads "$sc_limit" SWIFTLET-GUEST-WAITING 'seccomp_threads $pid > /tmp/sc-threads.txt; kill -TERM $pid' \
        $KERNEL --memory 128 --log-path /tmp/sc.log --cmdline "$sc_cmdline swiftlet.test=powerkey"
    sc_seen=$(tr '\n' ' ' < /tmp/sc-threads.txt 2>/dev/null)
    sc_bad=
    for want in "swiftlet|2|1" "vcpu 0|2|2" "io|2|2" "console|2|2" "log writer|2|1"; do
        grep -qxF "$want" /tmp/sc-threads.txt 2>/dev/null || sc_bad="$sc_bad '$want'"
    done
    if [ "$rc" = 0 ] && ended_as "$err" "$sc_end" && [ -z "$sc_bad" ]; then
        pass "seccomp: every thread of a running VMM is filtered (comm|Seccomp|filters): $sc_seen(${took} s)"
    else
        fail "seccomp: threads: exit $rc, missing$sc_bad; saw: $sc_seen"
        show
    fi

    # A call each thread kind makes at once, taken off its list: the process dies of SIGSYS
    # (status 159) after one line naming the thread and the call's number.
    for denial in $sc_denials; do
        kind=${denial%%:*} rest=${denial#*:}
        call=${rest%%:*} number=${rest#*:}
        vm seccomp-deny-$kind "$sc_limit" $KERNEL --memory 128 --log-path /tmp/sc-$kind.log \
            --seccomp-deny $kind:$call --cmdline "$sc_cmdline swiftlet.test=poweroff"
        want="swiftlet: seccomp: the $kind thread made system call $number ($sc_arch), which its filter does not allow: the VMM is killed (SIGSYS)"
        if [ "$rc" = 159 ] && [ "$(tail -n 1 "$err")" = "$want" ]; then
            pass "seccomp: --seccomp-deny $kind:$call: the $kind thread's call kills the VMM with SIGSYS (status 159): $want"
        else
            fail "seccomp: --seccomp-deny $kind:$call: exit $rc, wanted 159 and '$want'"
            show
        fi
    done
}
