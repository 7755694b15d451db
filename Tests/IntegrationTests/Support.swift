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

    /// Runs a program (stdout to /dev/null) and reports its peak RSS from wait4's rusage.
    static func runMeasuringPeakRSS(_ executable: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> (status: Int32, stderr: String, peakRSSKiB: Int) {
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-rss-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard rc == 0 else { throw Failure("posix_spawn \(executable): \(rc)") }
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, WNOHANG, &usage) == 0 {
            if Date() > deadline {
                kill(pid, SIGKILL)
                _ = wait4(pid, &status, 0, &usage)
                throw Failure("\(executable) \(arguments) did not finish in \(timeout) s")
            }
            usleep(5_000)
        }
        let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return (exitStatus, stderr, usage.ru_maxrss)
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private final class Marker {}
}
