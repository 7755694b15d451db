import Foundation
import XCTest

/// Paths and helpers shared by the tests that boot real guests on this host's /dev/kvm.
enum TestSupport {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

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

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private final class Marker {}
}
