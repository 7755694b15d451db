import CLinux

/// `--seccomp`: filters that kill the process on a call outside a thread's list (the
/// default), none, or filters that only log such calls (to the kernel's log, for building
/// a list: Cloud Hypervisor's `--seccomp log`).
public enum SeccompMode: String, Equatable, Sendable {
    case on, off, log
}

/// `--seccomp-deny KIND:SYSCALL`: takes a call off a thread kind's list (tightening a
/// list, and how the tests show a violation is caught and reported).
public struct SeccompDenial: Equatable, Sendable {
    public let kind: ThreadKind
    public let syscall: String

    public init(kind: ThreadKind, syscall: String) {
        self.kind = kind
        self.syscall = syscall
    }

    /// "vcpu:ioctl".
    public static func parse(_ text: String) throws(SwiftletError) -> SeccompDenial {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let kinds = ThreadKind.allCases.map { $0.name }.joined(separator: ", ")
        guard parts.count == 2, !parts[1].isEmpty else {
            throw .invalidArgument("--seccomp-deny takes THREAD:SYSCALL (THREAD one of \(kinds)), got '\(text)'")
        }
        guard let kind = ThreadKind(name: String(parts[0])) else {
            throw .invalidArgument("--seccomp-deny: unknown thread kind '\(parts[0])' (one of \(kinds))")
        }
        let name = String(parts[1])
        guard name.withCString({ sl_seccomp_syscall_number($0) }) >= 0 else {
            throw .invalidArgument("--seccomp-deny: '\(name)' is not a system call on this machine")
        }
        guard name != "write" else {
            throw .invalidArgument("--seccomp-deny: write stays allowed (the report of a violation is written with it)")
        }
        return SeccompDenial(kind: kind, syscall: name)
    }
}

/// The process's filters: compiled once at start-up (`prepare`), installed by each thread
/// on itself as it starts (`enter`), before it touches guest- or client-controlled data.
/// Installing is two system calls and allocates nothing, so a failure can only be the
/// kernel's; a thread that cannot install its filter stops the process rather than run
/// unfiltered.
public enum Seccomp {
    nonisolated(unsafe) private static var programs: [sl_seccomp_program] = []

    /// Compiles every thread kind's filter. With `.off` nothing is installed later.
    public static func prepare(_ mode: SeccompMode, denying denials: [SeccompDenial] = []) throws(SwiftletError) {
        release()
        guard mode != .off else { return }
        var compiled: [sl_seccomp_program] = []
        for kind in ThreadKind.allCases {
            let denied = denials.filter { $0.kind == kind }.map { $0.syscall }
            let rules = SeccompPolicy.allowList(for: kind).filter { !denied.contains($0.name) }
            var native: [sl_seccomp_rule] = []
            for rule in rules {
                let number = rule.name.withCString { sl_seccomp_syscall_number($0) }
                guard number >= 0 else { continue }   // not a call on this architecture
                var entry = sl_seccomp_rule()
                entry.syscall = number
                if let condition = rule.condition {
                    entry.has_condition = 1
                    entry.argument = condition.argument
                    entry.mask = condition.mask
                    entry.value = condition.value
                }
                native.append(entry)
            }
            var program = sl_seccomp_program()
            let rc = native.withUnsafeBufferPointer { sl_seccomp_compile($0.baseAddress, $0.count, mode == .log ? 1 : 0, &program) }
            guard rc == 0 else {
                for var done in compiled { sl_seccomp_program_free(&done) }
                throw .system("compiling the seccomp filter of the \(kind.name) thread (libseccomp)", errno: -rc)
            }
            compiled.append(program)
        }
        if mode == .on {
            let rc = sl_seccomp_arm_report()
            guard rc == 0 else { throw .system("sigaction(SIGSYS)", errno: -rc) }
        }
        programs = compiled
    }

    /// Installs `kind`'s filter on the calling thread (nothing if filters are off).
    public static func enter(_ kind: ThreadKind) {
        guard kind.rawValue < programs.count else { return }
        let rc = withUnsafePointer(to: &programs[kind.rawValue]) { program in
            kind.name.withCString { sl_seccomp_install(program, $0) }
        }
        if rc != 0 {
            printError("swiftlet: internal error: cannot install the seccomp filter of the \(kind.name) thread: \(SwiftletError.errnoString(-rc))")
            exit(1)
        }
    }

    public static var isActive: Bool { !programs.isEmpty }

    /// Forgets the compiled programs (tests; threads keep what they installed).
    public static func release() {
        for i in programs.indices { sl_seccomp_program_free(&programs[i]) }
        programs = []
    }
}
