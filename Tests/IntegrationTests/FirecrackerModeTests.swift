import Foundation
import XCTest

/// The binary run under the name `firecracker`, as Firecracker's tools start it: Kata
/// Containers' `--version` check and `--api-sock … --config-file …` start polled with
/// GET / until Running, and `--no-api --config-file`.
final class FirecrackerModeTests: XCTestCase {
    var directory: URL!
    var firecracker: String!

    override func setUpWithError() throws {
        try TestSupport.requireKVM()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-fc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        firecracker = directory.appendingPathComponent("firecracker").path
        try FileManager.default.createSymbolicLink(atPath: firecracker, withDestinationPath: TestSupport.swiftletBinary)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: directory)
    }

    func writeConfig(_ text: String) throws -> String {
        let path = directory.appendingPathComponent("vm.json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Kata reads the second word of the first line, less its "v", as a semantic version
    /// of at least 0.21.1.
    func testVersionLineIsWhatKataParses() throws {
        let result = try TestSupport.run(firecracker, ["--version"])
        XCTAssertEqual(result.status, 0)
        let first = try XCTUnwrap(result.stdout.split(separator: "\n").first)
        let fields = first.split(separator: " ", omittingEmptySubsequences: false)
        XCTAssertEqual(fields.first, "Firecracker")
        let version = try XCTUnwrap(fields.dropFirst().first).dropFirst()   // "v"
        let numbers = version.split(separator: ".").map { Int($0) }
        XCTAssertEqual(numbers.count, 3, String(first))
        XCTAssertFalse(numbers.contains(nil), String(first))
        XCTAssertTrue(result.stdout.contains("swiftlet "), "says which Swiftlet it is: \(result.stdout)")
    }

    func testNoAPIConfigFileBootsAndAResetEndsIt() throws {
        let config = try writeConfig("""
        {"boot-source": {"kernel_image_path": "\(try TestSupport.guestImage("hello-x86_64"))"},
         "machine-config": {"vcpu_count": 1, "mem_size_mib": 32}, "drives": []}
        """)
        let result = try TestSupport.run(firecracker, ["--no-api", "--config-file", config, "--id", "vm-1"], timeout: 30)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("Hello from a Swiftlet x86_64 guest"), result.stdout)
        XCTAssertEqual(result.stderr, TestSupport.i8042ResetEnd, "Firecracker's behaviour: a guest reset ends the VMM")
    }

    func testBadConfigFileIsOneLineAndStatus2() throws {
        let config = try writeConfig(#"{"boot-source": {"kernel_image_path": "/k"}, "balloon": {"amount_mib": 16}}"#)
        let result = try TestSupport.run(firecracker, ["--no-api", "--config-file", config])
        XCTAssertEqual(result.status, 2)
        XCTAssertEqual(result.stderr, "swiftlet: config file \(config): \"balloon\" is not supported: Swiftlet has no balloon device\n")
        let missing = try TestSupport.run(firecracker, ["--no-api", "--config-file", "/no/such.json"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertEqual(missing.stderr, "swiftlet: cannot open config file /no/such.json: No such file or directory\n")
    }

    /// Kata's start: --api-sock and --config-file, then GET / until "Running"; the API
    /// serves the VM the file started (pre-boot resources refused, FlushMetrics taken).
    func testConfigFileWithAPIServesTheStartedVM() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw TestSupport.Failure("curl is not installed: run ci/setup") }
        let config = try writeConfig("""
        {"boot-source": {"kernel_image_path": "\(try TestSupport.guestImage("ticker-x86_64"))"},
         "machine-config": {"vcpu_count": 1, "mem_size_mib": 32, "smt": false}}
        """)
        let socket = directory.appendingPathComponent("fc.sock").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: firecracker)
        process.arguments = ["--api-sock", socket, "--config-file", config, "--id", "kata-sandbox"]
        let errors = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: errors)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        func curl(_ method: String, _ uri: String, _ body: String? = nil) throws -> (status: Int, body: String) {
            var arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", socket, "-X", method, "http://localhost\(uri)"]
            if let body { arguments += ["-H", "Content-Type: application/json", "-d", body] }
            let result = try TestSupport.run("/usr/bin/curl", arguments, timeout: 20)
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }
        var running = false
        let deadline = Date().addingTimeInterval(10)
        while !running && Date() < deadline {
            running = (try? curl("GET", "/"))?.body.contains(#""state":"Running""#) ?? false
            if !running { usleep(10_000) }
        }
        XCTAssertTrue(running, "GET / never said Running")
        XCTAssertTrue(try curl("GET", "/").body.contains(#""id":"kata-sandbox""#))
        let machine = try curl("GET", "/machine-config")
        XCTAssertEqual(machine.status, 200)
        XCTAssertEqual(machine.body, #"{"vcpu_count":1,"mem_size_mib":32,"smt":false,"track_dirty_pages":false,"huge_pages":"None"}"#)
        XCTAssertEqual(try curl("PUT", "/boot-source", #"{"kernel_image_path": "/k"}"#).status, 400)
        XCTAssertEqual(try curl("PATCH", "/machine-config", #"{"vcpu_count": 2}"#).status, 400)
        XCTAssertEqual(try curl("PUT", "/actions", #"{"action_type": "FlushMetrics"}"#).status, 204, "no metrics configured: nothing to write")
        XCTAssertEqual(try curl("PUT", "/actions", #"{"action_type": "SendCtrlAltDel"}"#).status, 204)
        let end = Date().addingTimeInterval(20)
        while process.isRunning && Date() < end { usleep(10_000) }
        XCTAssertFalse(process.isRunning)
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertEqual(String(decoding: try Data(contentsOf: errors), as: UTF8.self), TestSupport.i8042ResetEnd)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket), "the socket goes with the VMM")
    }
}
