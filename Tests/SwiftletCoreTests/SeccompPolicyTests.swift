import CLinux
import Foundation
import XCTest
@testable import SwiftletCore

/// The allow-lists as data (on any host, for both architectures' tables) and a filter
/// installed on a real thread of this process.
final class SeccompPolicyTests: XCTestCase {
    private func number(_ name: String, on arch: Int32) -> Int32 {
        name.withCString { sl_seccomp_syscall_number_arch(arch, $0) }
    }

    func testEveryNameIsASystemCallOfOneOfTheArchitectures() {
        for kind in ThreadKind.allCases {
            for rule in SeccompPolicy.allowList(for: kind) {
                let x86 = number(rule.name, on: Int32(SL_SECCOMP_ARCH_X86_64))
                let arm = number(rule.name, on: Int32(SL_SECCOMP_ARCH_AARCH64))
                XCTAssertTrue(x86 >= 0 || arm >= 0, "\(kind.name): '\(rule.name)' is a system call on neither x86_64 nor aarch64")
            }
        }
    }

    /// aarch64 has only the newer calls (openat, ppoll, epoll_pwait, ...): each thread's list
    /// must name a call each architecture has for what the thread does.
    func testEachArchitectureHasACallForWhatEachThreadDoes() {
        let needs: [ThreadKind: [[String]]] = [
            .main: [["open", "openat"], ["poll", "ppoll"], ["newfstatat", "fstat"], ["unlink", "unlinkat"], ["clone", "clone3"], ["ioctl"], ["socket"]],
            .vcpu: [["ioctl"], ["futex"], ["write"], ["rt_sigreturn"]],
            .io: [["epoll_wait", "epoll_pwait"], ["read"], ["write"], ["pwritev", "pwrite64"], ["accept4"], ["socket"]],
            .console: [["write"], ["futex"], ["poll", "ppoll"]],
            .writer: [["write"], ["futex"], ["poll", "ppoll"]],
        ]
        for arch in [Int32(SL_SECCOMP_ARCH_X86_64), Int32(SL_SECCOMP_ARCH_AARCH64)] {
            for (kind, groups) in needs {
                let names = SeccompPolicy.allowList(for: kind).map(\.name)
                for group in groups {
                    XCTAssertTrue(group.contains { names.contains($0) && number($0, on: arch) >= 0 },
                                  "\(kind.name) on arch \(arch): none of \(group) is allowed and exists there")
                }
            }
        }
    }

    /// A thread spawned by the filtered main thread keeps the main filter: anything the
    /// others allow must be in the main list too, or it would be refused there.
    func testEveryThreadsListIsWithinTheMainThreads() {
        let main = SeccompPolicy.allowList(for: .main)
        for kind in ThreadKind.allCases where kind != .main {
            for rule in SeccompPolicy.allowList(for: kind) {
                XCTAssertTrue(main.contains(rule), "\(kind.name) allows \(rule) but main does not")
            }
        }
    }

    func testWhatNoThreadMayDo() {
        let never = ["execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv", "process_vm_writev",
                     "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "setuid", "setgid", "setresuid",
                     "setresgid", "capset", "init_module", "finit_module", "delete_module", "kexec_load",
                     "kexec_file_load", "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "personality",
                     "reboot", "swapon", "acct", "userfaultfd", "io_uring_setup"]
        for kind in ThreadKind.allCases {
            let rules = SeccompPolicy.allowList(for: kind)
            for name in never {
                XCTAssertFalse(rules.contains { $0.name == name }, "\(kind.name) allows \(name)")
            }
            // ioctl and socket only with their argument checked.
            for rule in rules where rule.name == "ioctl" || rule.name == "socket" {
                XCTAssertNotNil(rule.condition, "\(kind.name) allows \(rule.name) with any argument")
            }
            // A call is either allowed outright or only under conditions, never both.
            for rule in rules where rule.condition == nil {
                XCTAssertFalse(rules.contains { $0.name == rule.name && $0.condition != nil }, "\(kind.name): \(rule.name) both ways")
            }
            XCTAssertEqual(Set(rules.map { "\($0)" }).count, rules.count, "\(kind.name) lists a rule twice")
        }
    }

    func testSocketsAreUnixDomainOnly() {
        for kind in ThreadKind.allCases {
            for rule in SeccompPolicy.allowList(for: kind) where rule.name == "socket" {
                XCTAssertEqual(rule.condition, SyscallRule.Condition(argument: 0, mask: ~0, value: UInt64(AF_UNIX)))
            }
        }
    }

    func testVCPUThreadsMakeOnlyTheRunLoopsKVMRequests() {
        let requests = SeccompPolicy.allowList(for: .vcpu).filter { $0.name == "ioctl" }.compactMap(\.condition?.value)
        XCTAssertEqual(Set(requests), Set([SL_KVM_RUN, SL_KVM_IRQ_LINE, SL_KVM_SET_MP_STATE, SL_TUNSETOFFLOAD].map { UInt64($0) & 0xFFFF_FFFF }))
        let ioRequests = SeccompPolicy.allowList(for: .io).filter { $0.name == "ioctl" }.compactMap(\.condition?.value)
        XCTAssertEqual(ioRequests, [UInt64(SL_KVM_IRQ_LINE)])
        for kind in [ThreadKind.console, .writer] {
            XCTAssertFalse(SeccompPolicy.allowList(for: kind).contains { $0.name == "ioctl" }, kind.name)
        }
        // Only the main thread (building the VM) creates one, opens files or binds sockets.
        for kind in ThreadKind.allCases where kind != .main {
            let rules = SeccompPolicy.allowList(for: kind)
            XCTAssertFalse(rules.contains(.ioctl(SL_KVM_CREATE_VM)), kind.name)
            XCTAssertFalse(rules.contains(.ioctl(SL_TUNSETIFF)), kind.name)
            for name in ["open", "openat", "bind", "listen", "clone", "clone3", "mknodat", "unlink", "unlinkat"] {
                XCTAssertFalse(rules.contains { $0.name == name }, "\(kind.name) allows \(name)")
            }
        }
    }

    func testDenialsParse() throws {
        XCTAssertEqual(try SeccompDenial.parse("vcpu:ioctl"), SeccompDenial(kind: .vcpu, syscall: "ioctl"))
        XCTAssertEqual(try SeccompDenial.parse("writer:futex"), SeccompDenial(kind: .writer, syscall: "futex"))
        let bad: [(String, String)] = [
            ("gpu:ioctl", "--seccomp-deny: unknown thread kind 'gpu' (one of main, vcpu, io, console, writer)"),
            ("vcpu:", "--seccomp-deny takes THREAD:SYSCALL (THREAD one of main, vcpu, io, console, writer), got 'vcpu:'"),
            ("vcpu", "--seccomp-deny takes THREAD:SYSCALL (THREAD one of main, vcpu, io, console, writer), got 'vcpu'"),
            ("vcpu:ioctl:1", "--seccomp-deny takes THREAD:SYSCALL (THREAD one of main, vcpu, io, console, writer), got 'vcpu:ioctl:1'"),
            ("io:no_such_call", "--seccomp-deny: 'no_such_call' is not a system call on this machine"),
            ("io:write", "--seccomp-deny: write stays allowed (the report of a violation is written with it)"),
        ]
        for (text, message) in bad {
            XCTAssertThrowsError(try SeccompDenial.parse(text), text) { error in
                XCTAssertEqual((error as? SwiftletError)?.description, message)
                XCTAssertEqual((error as? SwiftletError)?.isBadInput, true)
            }
        }
    }

    func testCommandLine() throws {
        func config(_ arguments: [String]) throws -> VMConfig {
            guard case .run(let config) = try RunOptions.parse(["--kernel", "/k"] + arguments) else { throw SwiftletError.invalidArgument("not a run") }
            return config
        }
        XCTAssertEqual(try config([]).seccomp, .on, "on by default")
        XCTAssertEqual(try config(["--seccomp", "off"]).seccomp, .off)
        XCTAssertEqual(try config(["--seccomp=log"]).seccomp, .log)
        XCTAssertEqual(try config(["--no-seccomp"]).seccomp, .off)
        XCTAssertEqual(try config(["--seccomp-deny", "io:read", "--seccomp-deny=vcpu:ioctl"]).seccompDenials,
                       [SeccompDenial(kind: .io, syscall: "read"), SeccompDenial(kind: .vcpu, syscall: "ioctl")])
        XCTAssertThrowsError(try config(["--seccomp", "strict"])) { error in
            XCTAssertEqual("\(error)", "--seccomp takes on, off or log, got 'strict'")
        }
    }

    /// The filter on a real thread: the kernel shows it in the thread's status (Seccomp: 2),
    /// and the thread, which may no longer open files, still runs what its list allows.
    func testAThreadInstallsItsFilter() throws {
        try Seccomp.prepare(.on)
        defer { Seccomp.release() }
        XCTAssertTrue(Seccomp.isActive)
        let installed = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        var task = ""
        let thread = try SwiftletCore.Thread.spawn {
            task = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")) ?? "?"
            Seccomp.enter(.writer)
            installed.signal()
            release.wait()
        }
        installed.wait()
        let status = try String(contentsOfFile: "/proc/\(task)/status", encoding: .utf8)
        release.signal()
        thread.join()
        XCTAssertTrue(status.contains("\nSeccomp:\t2\n"), status)
        let own = try String(contentsOfFile: "/proc/thread-self/status", encoding: .utf8)
        XCTAssertTrue(own.contains("\nSeccomp:\t0\n"), "the test's own thread stays unfiltered")
    }

    func testLogModeCompilesEveryFilterAndOffCompilesNone() throws {
        try Seccomp.prepare(.log)
        XCTAssertTrue(Seccomp.isActive)
        try Seccomp.prepare(.off)
        XCTAssertFalse(Seccomp.isActive)
        try Seccomp.prepare(.on, denying: [SeccompDenial(kind: .main, syscall: "openat")])
        XCTAssertTrue(Seccomp.isActive)
        Seccomp.release()
    }
}
