import CLinux
import Foundation
import XCTest

/// The seccomp filters of a real VMM process on this host's KVM: each thread under its own
/// (as the kernel shows it), and a call outside a thread's list ending the process with one
/// line that names the thread and the call.
final class SeccompTests: XCTestCase {
    override func setUpWithError() throws { try TestSupport.requireKVM() }

    private var directory: URL!

    override func setUp() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-seccomp-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: directory) }

    /// Each task's comm and its Seccomp and Seccomp_filters lines.
    private func threads(of pid: Int32) -> [(name: String, mode: String, filters: String)] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { task in
            guard let comm = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8),
                  let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8) else { return nil }
            func field(_ name: String) -> String {
                status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                    .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) } ?? "?"
            }
            return (comm.trimmingCharacters(in: .newlines), field("Seccomp"), field("Seccomp_filters"))
        }
    }

    /// The ticker guest runs until its keyboard byte: main, vcpu 0, io, console and the
    /// log writer are all up. Threads started by the filtered main thread hold its filter
    /// and their own (2); the log writer starts before the main thread filters itself (1).
    func testEveryThreadRunsUnderItsOwnFilter() throws {
        let kernel = try TestSupport.guestImage("ticker-x86_64")
        let log = directory.appendingPathComponent("log").path
        let vmm = try ControlAPITests.RunningVMM(directory: directory,
                                                 extraArguments: ["--kernel", kernel, "--memory", "16", "--log-path", log])
        let deadline = Date().addingTimeInterval(10)
        while !vmm.outputText.contains("tick 2") && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(vmm.outputText.contains("tick 2"), "the guest runs: \(vmm.outputText)")
        let seen = threads(of: vmm.process.processIdentifier)
        let expected: [(String, String)] = [("swiftlet", "1"), ("vcpu 0", "2"), ("io", "2"), ("console", "2"), ("log writer", "1")]
        for (name, filters) in expected {
            let thread = seen.first { $0.name == name }
            XCTAssertNotNil(thread, "no thread \(name) in \(seen)")
            XCTAssertEqual(thread?.mode, "2", "\(name) runs under a seccomp filter")
            XCTAssertEqual(thread?.filters, filters, "\(name)'s filters")
        }
        vmm.process.terminate()   // SIGTERM: Ctrl-Alt-Del, and the ticker resets
        XCTAssertEqual(try vmm.waitForExit(seconds: 10), 0, vmm.errorText)
    }

    /// For each thread kind, a call it makes at once taken off its list: the process dies of
    /// SIGSYS after one line naming the thread and the call.
    func testACallOutsideAThreadsListKillsTheProcessWithAReport() throws {
        let kernel = try TestSupport.guestImage("hello-x86_64")
        let log = directory.appendingPathComponent("log").path
        for (kind, call) in [("vcpu", "ioctl"), ("io", "epoll_wait"), ("console", "futex"), ("writer", "futex"), ("main", "poll")] {
            let result = try TestSupport.run(TestSupport.swiftletBinary,
                                             ["run", "--no-reboot", "--kernel", kernel, "--memory", "16", "--log-path", log,
                                              "--seccomp-deny", "\(kind):\(call)"], timeout: 20)
            let number = call.withCString { sl_seccomp_syscall_number($0) }
            XCTAssertEqual(result.status, SIGSYS, "\(kind):\(call): \(result.stderr)")
            XCTAssertEqual(result.stderr.split(separator: "\n").last.map(String.init),
                           "swiftlet: seccomp: the \(kind) thread made system call \(number) (x86_64), which its filter does not allow: the VMM is killed (SIGSYS)",
                           "\(kind):\(call)")
        }
    }

    func testFiltersOffOrLoggingOnlyRunTheGuest() throws {
        let kernel = try TestSupport.guestImage("hello-x86_64")
        for mode in ["off", "log"] {
            let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", kernel, "--memory", "16", "--seccomp", mode])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(result.stdout, "Hello from a Swiftlet x86_64 guest\n")
        }
        let bad = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--kernel", kernel, "--seccomp-deny", "gpu:ioctl"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertEqual(bad.stderr, "swiftlet: --seccomp-deny: unknown thread kind 'gpu' (one of main, vcpu, io, console, writer)\n")
        let write = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--kernel", kernel, "--seccomp-deny", "io:write"])
        XCTAssertEqual(write.status, 2)
        XCTAssertEqual(write.stderr, "swiftlet: --seccomp-deny: write stays allowed (the report of a violation is written with it)\n")
    }
}
