import CLinux

/// The kinds of thread Swiftlet runs, each with an allow-list of its own (Firecracker and
/// Cloud Hypervisor filter per thread the same way). A thread spawned after its parent
/// installed a filter keeps the parent's too, and the kernel applies the stricter of the
/// two: the main thread's list is therefore the union of what every thread needs, and
/// the others narrow it.
public enum ThreadKind: Int, CaseIterable, Sendable {
    /// The main loop: the API server, signals, timers, and building a VM (its background
    /// job keeps this filter: it opens images and creates the VM).
    case main
    /// A vCPU's run loop: KVM_RUN and the devices it reaches by MMIO and port I/O.
    case vcpu
    /// The device I/O thread: virtio queues, disks, taps, vsock, rate-limiter timers.
    case io
    /// The console writer: guest output to stdout.
    case console
    /// A log or metrics writer: lines to a file or a named pipe.
    case writer

    /// As reports and `--seccomp-deny` name it.
    public var name: String {
        switch self {
        case .main: return "main"
        case .vcpu: return "vcpu"
        case .io: return "io"
        case .console: return "console"
        case .writer: return "writer"
        }
    }

    public init?(name: String) {
        guard let kind = ThreadKind.allCases.first(where: { $0.name == name }) else { return nil }
        self = kind
    }
}

/// One allowed system call, by name (resolved per architecture when the filter is
/// compiled; a name the architecture lacks, such as `open` on aarch64, is skipped), with
/// an optional check of one argument: `(argument & mask) == value`. Rules for one call are
/// alternatives.
public struct SyscallRule: Equatable, Sendable {
    public let name: String
    public let condition: Condition?

    public struct Condition: Equatable, Sendable {
        public let argument: UInt32
        public let mask: UInt64
        public let value: UInt64
    }

    public static func allow(_ name: String) -> SyscallRule { SyscallRule(name: name, condition: nil) }

    /// `name` only when its argument `index` equals `value`.
    public static func allow(_ name: String, argument index: UInt32, equals value: UInt64) -> SyscallRule {
        SyscallRule(name: name, condition: Condition(argument: index, mask: ~0, value: value))
    }

    /// `name` only when its argument `index`, masked, equals `value`.
    public static func allow(_ name: String, argument index: UInt32, masked mask: UInt64, equals value: UInt64) -> SyscallRule {
        SyscallRule(name: name, condition: Condition(argument: index, mask: mask, value: value))
    }

    /// ioctl with this request only. The kernel takes the request as a 32-bit int, so only
    /// the low 32 bits are compared (as the kernel sees them).
    public static func ioctl(_ request: UInt) -> SyscallRule {
        SyscallRule(name: "ioctl", condition: Condition(argument: 1, mask: 0xFFFF_FFFF, value: UInt64(request) & 0xFFFF_FFFF))
    }
}

/// The allow-lists. Every name here is checked by the unit tests against both
/// architectures' tables; what each thread really calls was taken from strace and from the
/// kernel's log of `--seccomp=log` runs of the test suites on both architectures.
public enum SeccompPolicy {
    /// What the C and Swift runtimes do on any thread: memory (never executable: no code
    /// is made at run time), locks, time, signals (the vCPU kick returns through
    /// rt_sigreturn; abort() raises with tgkill, to this process only), the thread's end,
    /// and messages to stderr (write: also how eventfds are signalled; poll: waiting for a
    /// full stderr).
    static func runtime(pid: Int32) -> [SyscallRule] {
        [
            "brk", "munmap", "mremap", "madvise",
            "futex", "sched_yield", "nanosleep", "clock_nanosleep", "clock_gettime", "gettimeofday",
            "rt_sigreturn", "rt_sigprocmask", "restart_syscall",
            "getpid", "gettid", "getrandom",
            "write", "poll", "ppoll", "exit", "exit_group",
        ].map(SyscallRule.allow) + [
            .allow("mmap", argument: 2, masked: UInt64(PROT_EXEC), equals: 0),
            .allow("mprotect", argument: 2, masked: UInt64(PROT_EXEC), equals: 0),
            .allow("tgkill", argument: 0, equals: UInt64(UInt32(bitPattern: pid))),
        ]
    }

    /// The KVM requests a vCPU thread makes while the guest runs.
    static var vcpuIoctls: [UInt] {
        [SL_KVM_RUN, SL_KVM_IRQ_LINE, SL_KVM_SET_MP_STATE]
    }

    /// A guest's register writes reach device code on the vCPU thread: a virtio device's
    /// activation and reset (the tap's offloads, watching and unwatching its queues'
    /// eventfds), and the PL031's alarm timer. Found by the arm64 suite; the list is that of
    /// the device I/O thread plus these, until device activation moves off the vCPU.
    static var vcpuDeviceIoctls: [UInt] { [SL_TUNSETOFFLOAD] }

    /// Requests only the main thread makes: opening /dev/kvm, building the VM and its
    /// devices, taps, disks and the terminal.
    static var buildIoctls: [UInt] {
        var requests: [UInt] = [
            SL_KVM_GET_API_VERSION, SL_KVM_CREATE_VM, SL_KVM_CHECK_EXTENSION, SL_KVM_GET_VCPU_MMAP_SIZE,
            SL_KVM_CREATE_VCPU, SL_KVM_SET_USER_MEMORY_REGION, SL_KVM_IRQFD, SL_KVM_IOEVENTFD,
            SL_KVM_CREATE_DEVICE, SL_KVM_SET_DEVICE_ATTR, SL_KVM_HAS_DEVICE_ATTR,
            SL_KVM_GET_ONE_REG, SL_KVM_SET_ONE_REG, SL_KVM_GET_MP_STATE,
            SL_TUNSETIFF, SL_TUNSETVNETHDRSZ, SL_TUNSETOFFLOAD, SL_SIOCGIFMTU, SL_SIOCGIFINDEX, SL_BLKGETSIZE64,
            UInt(TCGETS), UInt(TCSETS), UInt(TIOCGWINSZ),
        ]
        #if arch(x86_64)
        requests += [
            SL_KVM_GET_REGS, SL_KVM_SET_REGS, SL_KVM_GET_SREGS, SL_KVM_SET_SREGS, SL_KVM_GET_FPU, SL_KVM_SET_FPU,
            SL_KVM_GET_SUPPORTED_CPUID, SL_KVM_SET_CPUID2, SL_KVM_GET_MSRS, SL_KVM_SET_MSRS,
            SL_KVM_GET_LAPIC, SL_KVM_SET_LAPIC, SL_KVM_CREATE_IRQCHIP, SL_KVM_CREATE_PIT2,
            SL_KVM_REINJECT_CONTROL, SL_KVM_SET_TSS_ADDR, SL_KVM_SET_IDENTITY_MAP_ADDR,
        ]
        #elseif arch(arm64)
        requests += [SL_KVM_ARM_PREFERRED_TARGET, SL_KVM_ARM_VCPU_INIT, SL_KVM_ARM_VCPU_FINALIZE]
        #endif
        return requests
    }

    /// Sockets are Unix-domain only: the API socket, vsock's host side and the tap's MTU query.
    static let unixSocketsOnly = SyscallRule.allow("socket", argument: 0, equals: UInt64(AF_UNIX))

    /// The device I/O thread: epoll, disk I/O, tap frames, vsock's Unix sockets, timers.
    static let ioCalls: [SyscallRule] = [
        "epoll_wait", "epoll_pwait", "epoll_ctl",
        "read", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "lseek",
        "fsync", "fdatasync", "fallocate",
        "accept4", "connect", "recvfrom", "recvmsg", "sendto", "sendmsg", "shutdown", "getsockopt",
        "close", "fcntl", "timerfd_settime", "timerfd_gettime",
    ].map(SyscallRule.allow) + [unixSocketsOnly]

    /// A writer thread (console, log, metrics) waits for lines and writes them.
    static let writerCalls: [SyscallRule] = ["read", "close"].map(SyscallRule.allow)

    /// The main thread: everything else Swiftlet does, none of what it never does (exec,
    /// ptrace, mount, namespaces, module loading, BPF, keys, network sockets, setuid).
    /// Starting a thread (clone3 and what glibc's new thread does before it installs its own
    /// filter) happens under this one; so does building a VM.
    static let mainCalls: [SyscallRule] = [
        "open", "openat", "close", "fstat", "newfstatat", "unlink", "unlinkat", "umask", "chmod", "fchmodat",
        "fcntl", "epoll_create1", "eventfd2", "signalfd4", "timerfd_create", "timerfd_settime", "timerfd_gettime",
        "bind", "listen", "geteuid", "clone", "clone3", "set_robust_list", "rseq", "sched_getaffinity", "rt_sigaction",
    ].map(SyscallRule.allow) + [
        // Naming a thread, and the no_new_privs and filter a new thread installs.
        .allow("prctl", argument: 0, equals: UInt64(PR_SET_NAME)),
        .allow("prctl", argument: 0, equals: UInt64(PR_SET_NO_NEW_PRIVS)),
        .allow("seccomp", argument: 0, equals: UInt64(SECCOMP_SET_MODE_FILTER)),
    ]

    /// The allow-list of `kind` on this machine, for the process `pid`.
    public static func allowList(for kind: ThreadKind, pid: Int32 = getpid()) -> [SyscallRule] {
        let base = runtime(pid: pid)
        switch kind {
        case .vcpu:
            return base + ioCalls + (vcpuIoctls + vcpuDeviceIoctls).map(SyscallRule.ioctl)
        case .io:
            return base + ioCalls + [SL_KVM_IRQ_LINE].map(SyscallRule.ioctl)
        case .console, .writer:
            return base + writerCalls
        case .main:
            var rules = base + mainCalls
            for rule in ioCalls + writerCalls where !rules.contains(rule) { rules.append(rule) }
            for request in vcpuIoctls + buildIoctls where !rules.contains(.ioctl(request)) { rules.append(.ioctl(request)) }
            return rules
        }
    }
}
