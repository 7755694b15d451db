import Foundation
import XCTest

/// `swiftlet jail` on this host: a tiny guest run jailed as an unprivileged user, checked
/// from outside through /proc/PID (root, user, namespaces, cgroup, environment). The host's
/// cgroup hierarchy is v1, so the test mounts a cgroup2 hierarchy of its own (no
/// controllers: membership only; the limits are the nested arm64 suite's). The jailed VMM
/// must be static (nothing else is in the jail): the x86_64 edge binary, built here once.
final class JailTests: XCTestCase {
    static let uid = "65534", gid = "65533"

    static let edgeBinary: String = {
        let path = TestSupport.repositoryRoot.appendingPathComponent(".build-edge/swiftlet-x86_64").path
        if !FileManager.default.fileExists(atPath: path) {
            let result = try? TestSupport.run(TestSupport.repositoryRoot.appendingPathComponent("ci/build-edge").path, [], timeout: 1800)
            if result?.status != 0 { print("ci/build-edge failed: \(result?.stderr ?? "not run")") }
        }
        return path
    }()

    func requireRoot() throws {
        guard getuid() == 0 else { throw TestSupport.Failure("swiftlet jail must run as root; these tests need root") }
    }

    /// What a jailed guest needs here: root, KVM and the static edge binary. Returns the
    /// guest's kernel (the ticker, which runs until Ctrl-Alt-Del).
    func jailedGuestPrerequisites() throws -> String {
        try requireRoot()
        try TestSupport.requireKVM()
        let kernel = try TestSupport.guestImage("ticker-x86_64")
        guard FileManager.default.fileExists(atPath: JailTests.edgeBinary) else {
            throw TestSupport.Failure("\(JailTests.edgeBinary) is missing (ci/build-edge)")
        }
        return kernel
    }

    func testAJailedTinyGuestSeenFromOutside() throws {
        let kernel = try jailedGuestPrerequisites()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-jail-\(UUID().uuidString.prefix(8))").path
        let base = work + "/jails", cgroup = work + "/cgroup2"
        try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: true)
        let mount = try TestSupport.run("/bin/mount", ["-t", "cgroup2", "none", cgroup])
        XCTAssertEqual(mount.status, 0, "mounting cgroup2: \(mount.stderr)")
        defer {
            _ = try? TestSupport.run("/bin/umount", [cgroup])
            try? FileManager.default.removeItem(atPath: work)
        }
        let id = "itest-\(getpid())"
        // A writable disk on /dev/shm (tmpfs: not the jail's filesystem, so bind-mounted in).
        let disk = "/dev/shm/swiftlet-jail-\(getpid()).img"
        XCTAssertTrue(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        XCTAssertEqual(chown(disk, uid_t(JailTests.uid)!, gid_t(JailTests.gid)!), 0)
        defer { try? FileManager.default.removeItem(atPath: disk) }
        let out = work + "/stdout", err = work + "/stderr"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestSupport.swiftletBinary)
        process.arguments = ["jail", "--id", id, "--uid", JailTests.uid, "--gid", JailTests.gid, "--chroot-base-dir", base,
                             "--cgroup-root", cgroup, "--exec-file", JailTests.edgeBinary, "--rlimit-nofile", "512",
                             "--", "--no-reboot", "--kernel", kernel, "--memory", "16", "--api-sock", "/run/api.sock",
                             "--disk", "path=\(disk)"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        process.environment = ["SECRET": "not for the VMM"]
        // The jail's caller has SIGTERM, SIGINT and SIGHUP blocked, as a process hosting a
        // VMM main loop (this test runner, after others) has: the jail must still pass them on.
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        for signo in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&blocked, signo) }
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        try process.run()
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            _ = try? TestSupport.run("/bin/sh", ["-c", "rmdir \(cgroup)/swiftlet/\(id) \(cgroup)/swiftlet"])
        }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && process.isRunning
                && !((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("tick 2") {
            usleep(50_000)
        }
        let stderrSoFar = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        XCTAssertTrue(process.isRunning, "the jail ended early: \(stderrSoFar)")
        let pidText = try String(contentsOfFile: "\(base)/\(id)/swiftlet.pid", encoding: .utf8)
        let vmm = try XCTUnwrap(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)), pidText)
        XCTAssertNotEqual(vmm, process.processIdentifier, "the VMM is the jail's child, not the jail")

        // Its root is the jail's directory, holding only its files.
        let rootInode = try inode("/proc/\(vmm)/root/"), jailInode = try inode("\(base)/\(id)/root")
        XCTAssertEqual(rootInode, jailInode, "/proc/\(vmm)/root is not \(base)/\(id)/root")
        let listing = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(vmm)/root/").sorted()
        XCTAssertEqual(listing, ["dev", "run", "swiftlet-jail-\(getpid()).img", "swiftlet-x86_64", "ticker-x86_64.bin"])
        XCTAssertEqual(try inode("/proc/\(vmm)/root/swiftlet-jail-\(getpid()).img"), try inode(disk), "the disk is bind-mounted in")
        XCTAssertNotEqual(try inode(disk).split(separator: ":")[0], jailInode.split(separator: ":")[0], "the disk is on another filesystem")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(vmm)/root/dev").sorted(), ["kvm", "net"])
        let kvm = try FileManager.default.attributesOfItem(atPath: "\(base)/\(id)/root/dev/kvm")
        XCTAssertEqual((kvm[.ownerAccountID] as? NSNumber)?.stringValue, JailTests.uid)
        XCTAssertEqual((kvm[.posixPermissions] as? NSNumber)?.intValue, 0o600)

        // Its user, namespaces, cgroup, environment and rlimit.
        let status = try String(contentsOfFile: "/proc/\(vmm)/status", encoding: .utf8)
        XCTAssertEqual(field("Uid:", status), "\(JailTests.uid)\t\(JailTests.uid)\t\(JailTests.uid)\t\(JailTests.uid)")
        XCTAssertEqual(field("Gid:", status), "\(JailTests.gid)\t\(JailTests.gid)\t\(JailTests.gid)\t\(JailTests.gid)")
        XCTAssertEqual(field("Groups:", status), "")
        XCTAssertEqual(field("NSpid:", status), "\(vmm)\t1", "the VMM is PID 1 of a new PID namespace")
        for ns in ["mnt", "pid"] {
            let theirs = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(vmm)/ns/\(ns)")
            let ours = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(ns)")
            XCTAssertNotEqual(theirs, ours, "\(ns) namespace")
        }
        let cgroups = try String(contentsOfFile: "/proc/\(vmm)/cgroup", encoding: .utf8)
        XCTAssertTrue(cgroups.split(separator: "\n").contains("0::/swiftlet/\(id)"), cgroups)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "/proc/\(vmm)/environ")).count, 0, "an empty environment")
        let limits = try String(contentsOfFile: "/proc/\(vmm)/limits", encoding: .utf8)
        XCTAssertTrue(limits.split(separator: "\n").contains { $0.hasPrefix("Max open files") && $0.contains(" 512 ") && $0.contains("512") }, limits)
        let cmdline = try String(contentsOfFile: "/proc/\(vmm)/cmdline", encoding: .utf8).replacingOccurrences(of: "\0", with: " ")
        XCTAssertTrue(cmdline.hasPrefix("swiftlet-x86_64 run --no-reboot --kernel /ticker-x86_64.bin --memory 16 --api-sock /run/api.sock --disk path=/swiftlet-jail-\(getpid()).img --id \(id) "), cmdline)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(base)/\(id)/root/run/api.sock"), "the API socket is in the jail")

        // SIGTERM to the jail reaches the VMM: Ctrl-Alt-Del, the ticker resets, the VMM ends.
        kill(process.processIdentifier, SIGTERM)
        let end = Date().addingTimeInterval(15)
        while process.isRunning && Date() < end { usleep(20_000) }
        if process.isRunning {
            kill(vmm, SIGKILL)
            kill(process.processIdentifier, SIGKILL)
            XCTFail("the jail and its VMM were still running 15 s after SIGTERM (the signal did not get through): killed")
        }
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertEqual(try String(contentsOfFile: err, encoding: .utf8), TestSupport.i8042ResetEnd)
    }

    /// --daemonize: the jail returns 0 once the VMM has exec'd, leaving it in a session of its
    /// own with /dev/null for stdio; a failure in the child after the fork (here setrlimit
    /// past the kernel's nr_open) still reaches the caller as one line and status 1, though
    /// the child's own stderr is /dev/null by then.
    func testDaemonizeDetachesAndStillReportsAFailureAfterTheFork() throws {
        let kernel = try jailedGuestPrerequisites()
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-jail-daemon-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        func jail(_ id: String, _ extra: [String]) throws -> TestSupport.Result {
            try TestSupport.run(TestSupport.swiftletBinary,
                                ["jail", "--id", id, "--uid", JailTests.uid, "--gid", JailTests.gid, "--chroot-base-dir", base,
                                 "--no-cgroup", "--exec-file", JailTests.edgeBinary, "--daemonize"] + extra
                                    + ["--", "--no-reboot", "--kernel", kernel, "--memory", "16"], timeout: 20)
        }
        let failed = try jail("daemon-fails", ["--rlimit-nofile", "1073741824"])
        XCTAssertEqual(failed.status, 1, failed.stderr)
        XCTAssertTrue(failed.stderr.hasPrefix("swiftlet jail: setting RLIMIT_NOFILE to 1073741824"), failed.stderr)
        XCTAssertEqual(failed.stderr.filter { $0 == "\n" }.count, 1, failed.stderr)

        let started = try jail("daemon", [])
        XCTAssertEqual(started.status, 0, started.stderr)
        XCTAssertEqual(started.stderr, "")
        let pidText = try String(contentsOfFile: "\(base)/daemon/swiftlet.pid", encoding: .utf8)
        let vmm = try XCTUnwrap(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)), pidText)
        defer { kill(vmm, SIGKILL) }
        let statLine = try String(contentsOfFile: "/proc/\(vmm)/stat", encoding: .utf8)
        // Fields after the command's closing parenthesis: state, ppid, pgrp, session.
        let fields = statLine[statLine.range(of: ")", options: .backwards)!.upperBound...].split(separator: " ")
        XCTAssertEqual(fields.count > 3 ? String(fields[3]) : "", "\(vmm)", "the VMM leads a session of its own: \(statLine)")
        // Its stdio is the null device (by device number: opened before the jail's root
        // change, the path reads differently from outside).
        var null = stat(), stream = stat()
        XCTAssertEqual(stat("/dev/null", &null), 0)
        for fd in 0...2 {
            XCTAssertEqual(stat("/proc/\(vmm)/fd/\(fd)", &stream), 0)
            XCTAssertTrue(stream.st_mode & S_IFMT == S_IFCHR && stream.st_rdev == null.st_rdev, "fd \(fd) is not /dev/null")
        }
        let cmdline = try String(contentsOfFile: "/proc/\(vmm)/cmdline", encoding: .utf8)
        XCTAssertTrue(cmdline.hasPrefix("swiftlet-x86_64\0run\0"), "the VMM has exec'd: \(cmdline)")
    }

    func testBadInputIsOneLineAndStatus2() throws {
        try requireRoot()
        let kernel = try TestSupport.guestImage("ticker-x86_64")
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-jail-bad-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let common = ["jail", "--id", "bad", "--chroot-base-dir", base, "--no-cgroup"]
        let cases: [([String], String)] = [
            (common + ["--uid", "0", "--gid", "5", "--", "--kernel", kernel], "swiftlet jail: --uid 0 would run the VMM as root"),
            (common + ["--uid", "5", "--gid", "5", "--memory-max", "512M", "--", "--kernel", kernel], "swiftlet jail: --no-cgroup cannot go with"),
            (common + ["--uid", "5", "--gid", "5", "--exec-file", JailTests.edgeBinary, "--", "--kernel", kernel + ".missing"],
             "swiftlet jail: cannot use the kernel \(kernel).missing: No such file or directory"),
            (common + ["--uid", "5", "--gid", "5", "--exec-file", JailTests.edgeBinary, "--", "--kernel", kernel, "--cpus", "x"],
             "swiftlet jail: --cpus needs a positive whole number, got 'x'"),
            (common + ["--uid", "5", "--gid", "5", "--", "--kernel", kernel], "swiftlet jail: --exec-file \(TestSupport.swiftletBinary) is dynamically linked"),
            (common + ["--uid", "5", "--gid", "5", "--exec-file", kernel, "--", "--kernel", kernel], "swiftlet jail: --exec-file \(kernel) is not executable"),
        ]
        for (arguments, expected) in cases {
            let result = try TestSupport.run(TestSupport.swiftletBinary, arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix(expected), "\(arguments): \(result.stderr)")
            XCTAssertEqual(result.stderr.filter { $0 == "\n" }.count, 1, result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: base + "/bad"), "a refused jail made its directory")
        }
        let help = try TestSupport.run(TestSupport.swiftletBinary, ["jail", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("--cpu-max"))
        XCTAssertTrue(try TestSupport.run(TestSupport.swiftletBinary, ["--help"]).stdout.contains("  jail  "))
    }

    func inode(_ path: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw TestSupport.Failure("stat \(path): errno \(errno)") }
        return "\(info.st_dev):\(info.st_ino)"
    }

    func field(_ name: String, _ status: String) -> String? {
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return String(line.dropFirst(name.count)).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }
}
