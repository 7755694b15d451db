import Foundation
import XCTest

/// Paths and helpers shared by the tests that boot real guests on this host's /dev/kvm.
enum TestSupport {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// swiftlet's stderr when an x86_64 guest ends through the i8042's reset line, as the
    /// tiny guests do: exactly this one line.
    static let i8042ResetEnd = "swiftlet: guest reset (i8042 reset line)\n"

    /// The tiny guests from Tests/Guests, assembled by ci/build-guests (run here once).
    static func guestImage(_ name: String) throws -> String {
        _ = buildGuestsOnce
        let path = repositoryRoot.appendingPathComponent(".build-guests/\(name).bin").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw Failure("ci/build-guests did not produce \(path)")
        }
        return path
    }

    private static let buildGuestsOnce: Void = {
        let result = try? run(repositoryRoot.appendingPathComponent("ci/build-guests").path, [])
        if result?.status != 0 { print("ci/build-guests failed: \(result?.stderr ?? "not run")") }
    }()

    /// The swiftlet executable of this build (next to the test bundle).
    static var swiftletBinary: String {
        var url = Bundle(for: Marker.self).bundleURL
        while url.pathExtension == "xctest" || url.lastPathComponent.hasSuffix(".xctest") { url.deleteLastPathComponent() }
        return url.appendingPathComponent("swiftlet").path
    }

    /// /dev/kvm must be there: a KVM test that cannot run fails, it does not skip.
    static func requireKVM() throws {
        guard FileManager.default.isReadableFile(atPath: "/dev/kvm"), FileManager.default.isWritableFile(atPath: "/dev/kvm") else {
            throw Failure("/dev/kvm is missing or not read/writable: these tests boot guests on the host's KVM")
        }
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var seconds: Double
    }

    /// Runs a program with stdin from /dev/null; its output goes to files (no pipe can fill).
    static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let outURL = directory.appendingPathComponent("stdout"), errURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        let start = Date()
        try process.run()
        let deadline = start.addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw Failure("\(executable) \(arguments) did not finish in \(timeout) s")
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                      stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self),
                      seconds: Date().timeIntervalSince(start))
    }

    /// Runs a program (stdin and stdout /dev/null) and reports its peak RSS from wait4's
    /// rusage. Started by a small Python parent: a child's ru_maxrss counts the memory of the
    /// process it was forked or spawned from until its exec, and this test process is large
    /// (and grows as tests run), which would decide the figure instead of the program.
    static func runMeasuringPeakRSS(_ executable: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> (status: Int32, stderr: String, peakRSSKiB: Int) {
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-rss-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        let parent = """
            import os, sys
            pid = os.fork()
            if pid == 0:
                null = os.open("/dev/null", os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                os.dup2(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
                os.execv(sys.argv[2], sys.argv[2:])
            _, status, usage = os.wait4(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            print(code if code >= 0 else 128 - code, usage.ru_maxrss)
            """
        let result = try run("/usr/bin/env", ["python3", "-c", parent, errPath, executable] + arguments, timeout: timeout)
        let fields = result.stdout.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        guard result.status == 0, fields.count == 2 else {
            throw Failure("measuring \(executable)'s peak RSS: python3 exited \(result.status): \(result.stdout) \(result.stderr)")
        }
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return (Int32(fields[0]), stderr, fields[1])
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private final class Marker {}
}
