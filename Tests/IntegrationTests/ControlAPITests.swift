import Foundation
import XCTest

/// The control API end to end on this host's KVM: a ticker guest driven by curl, by a Python
/// standard-library client, and bombarded with malformed requests.
final class ControlAPITests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        try TestSupport.requireKVM()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-api-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A swiftlet waiting on an API socket, its stdout going to a file.
    final class RunningVMM {
        let process = Process()
        let socket: String
        let output: URL
        let errors: URL

        init(directory: URL, extraArguments: [String] = []) throws {
            socket = directory.appendingPathComponent("api.sock").path
            output = directory.appendingPathComponent("stdout")
            errors = directory.appendingPathComponent("stderr")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: TestSupport.swiftletBinary)
            process.arguments = ["run", "--no-reboot", "--api-socket", socket] + extraArguments
            process.standardOutput = try FileHandle(forWritingTo: output)
            process.standardError = try FileHandle(forWritingTo: errors)
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(10)
            while !FileManager.default.fileExists(atPath: socket) && Date() < deadline { usleep(10_000) }
            guard FileManager.default.fileExists(atPath: socket) else { throw TestSupport.Failure("the API socket never appeared") }
        }

        var outputText: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
        var errorText: String { (try? String(contentsOf: errors, encoding: .utf8)) ?? "" }

        func waitForExit(seconds: Double) throws -> Int32 {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning {
                process.terminate()
                throw TestSupport.Failure("swiftlet did not exit within \(seconds) s")
            }
            return process.terminationStatus
        }

        deinit { if process.isRunning { process.terminate() } }
    }

    func curl(_ socket: String, _ method: String, _ uri: String, _ body: String? = nil) throws -> (status: Int, body: String) {
        var arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", socket, "-X", method, "http://localhost\(uri)"]
        if let body { arguments += ["-H", "Content-Type: application/json", "-d", body] }
        let result = try TestSupport.run("/usr/bin/curl", arguments, timeout: 20)
        guard result.status == 0, let last = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).last, let status = Int(last) else {
            throw TestSupport.Failure("curl failed (\(result.status)): \(result.stderr)")
        }
        return (status, String(result.stdout.dropLast(last.count + 1)))
    }

    func waitForGrowth(_ vmm: RunningVMM, beyond count: Int, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if vmm.outputText.utf8.count > count { return true }
            usleep(50_000)
        }
        return false
    }

    func testCurlDrivesConfigureStartPauseResumeShutdown() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw TestSupport.Failure("curl is not installed: run ci/setup") }
        let kernel = try TestSupport.guestImage("ticker-x86_64")
        let vmm = try RunningVMM(directory: directory)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/boot-source", #"{"kernel_image_path": "\#(kernel)"}"#).status, 204)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 32}"#).status, 204)
        let config = try curl(vmm.socket, "GET", "/vm/config")
        XCTAssertEqual(config.status, 200)
        XCTAssertTrue(config.body.contains(#""mem_size_mib":32"#), config.body)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/actions", #"{"action_type": "InstanceStart"}"#).status, 204)
        XCTAssertTrue(waitForGrowth(vmm, beyond: 0, seconds: 10), "guest output after start")
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/boot-source", #"{"kernel_image_path": "/x"}"#).status, 400, "pre-boot only")

        XCTAssertEqual(try curl(vmm.socket, "PATCH", "/vm", #"{"state": "Paused"}"#).status, 204)
        XCTAssertTrue(try curl(vmm.socket, "GET", "/").body.contains(#""state":"Paused""#))
        let pausedAt = vmm.outputText.utf8.count
        Thread.sleep(forTimeInterval: 1.5)
        XCTAssertEqual(vmm.outputText.utf8.count, pausedAt, "no guest output while paused")
        XCTAssertEqual(try curl(vmm.socket, "PATCH", "/vm", #"{"state": "Resumed"}"#).status, 204)
        XCTAssertTrue(waitForGrowth(vmm, beyond: pausedAt, seconds: 10), "output continues after resume")

        XCTAssertEqual(try curl(vmm.socket, "PUT", "/actions", #"{"action_type": "SendCtrlAltDel"}"#).status, 204)
        XCTAssertEqual(try vmm.waitForExit(seconds: 20), 0, vmm.errorText)
        XCTAssertEqual(vmm.errorText, TestSupport.i8042ResetEnd, "the guest's own i8042 reset ended it")
        XCTAssertTrue(vmm.outputText.hasSuffix("key pressed, resetting\n"), vmm.outputText)
    }

    /// Drives through the API: configured before start (a root device and a read-only one),
    /// shown in GET /vm/config, and media change after start — to another image, to the same
    /// image again (it keeps its lock), and refusals that change nothing.
    func testDrivesConfiguredAndMediaChangedThroughTheAPI() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw TestSupport.Failure("curl is not installed: run ci/setup") }
        let kernel = try TestSupport.guestImage("ticker-x86_64")
        let root = directory.appendingPathComponent("root.img").path, data = directory.appendingPathComponent("data.img").path
        let other = directory.appendingPathComponent("other.img").path
        for path in [root, data, other] { XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(count: 1 << 20))) }
        let vmm = try RunningVMM(directory: directory)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/boot-source", #"{"kernel_image_path": "\#(kernel)", "boot_args": "console=ttyS0"}"#).status, 204)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 32}"#).status, 204)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/drives/data", #"{"drive_id": "data", "path_on_host": "\#(data)", "is_root_device": false, "is_read_only": true}"#).status, 204)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "\#(root)", "is_root_device": true}"#).status, 204)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/drives/second", #"{"drive_id": "second", "path_on_host": "\#(other)", "is_root_device": true}"#).status, 400, "one root device")
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/entropy", "{}").status, 204)
        let before = try curl(vmm.socket, "GET", "/vm/config").body
        XCTAssertTrue(before.contains(#""drives":[{"drive_id":"rootfs","path_on_host":"\#(root)","is_root_device":true"#), before)
        XCTAssertTrue(before.contains(#""entropy":{"rate_limiter":null}"#), before)
        XCTAssertEqual(try curl(vmm.socket, "PATCH", "/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "\#(other)"}"#).status, 400, "media change needs a running VM")
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/actions", #"{"action_type": "InstanceStart"}"#).status, 204)
        XCTAssertTrue(waitForGrowth(vmm, beyond: 0, seconds: 10), "guest output after start")

        // The running VM holds its writable image: another VMM cannot open it for writing.
        let second = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", kernel, "--memory", "32", "--disk", "path=\(root)"], timeout: 20)
        XCTAssertEqual(second.status, 2)
        XCTAssertTrue(second.stderr.contains("is in use by another VM (locked)"), second.stderr)

        XCTAssertEqual(try curl(vmm.socket, "PATCH", "/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "\#(other)"}"#).status, 204)
        XCTAssertTrue(try curl(vmm.socket, "GET", "/vm/config").body.contains(#""path_on_host":"\#(other)""#))
        // The same file again (Firecracker clients do this after growing it): keeps its lock.
        XCTAssertEqual(truncate(other, 2 << 20), 0)
        XCTAssertEqual(try curl(vmm.socket, "PATCH", "/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "\#(other)"}"#).status, 204)
        // The old image is free again; the new one is held.
        let freed = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", try TestSupport.guestImage("hello-x86_64"), "--memory", "32", "--disk", "path=\(root)"], timeout: 20)
        XCTAssertEqual(freed.status, 0, "root.img was released by the media change: \(freed.stderr)")
        let held = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", kernel, "--memory", "32", "--disk", "path=\(other)"], timeout: 20)
        XCTAssertEqual(held.status, 2, held.stderr)

        let missing = try curl(vmm.socket, "PATCH", "/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "/no/such.img"}"#)
        XCTAssertEqual(missing.status, 400)
        XCTAssertTrue(missing.body.contains("cannot open disk image /no/such.img"), missing.body)
        XCTAssertEqual(try curl(vmm.socket, "PATCH", "/drives/nope", #"{"drive_id": "nope", "path_on_host": "\#(root)"}"#).status, 400)
        XCTAssertTrue(try curl(vmm.socket, "GET", "/vm/config").body.contains(#""path_on_host":"\#(other)""#), "a refused change changes nothing")

        XCTAssertEqual(try curl(vmm.socket, "PUT", "/actions", #"{"action_type": "SendCtrlAltDel"}"#).status, 204)
        XCTAssertEqual(try vmm.waitForExit(seconds: 20), 0, vmm.errorText)
        XCTAssertEqual(vmm.errorText, TestSupport.i8042ResetEnd, "the guest's own i8042 reset ended it")
    }

    /// An InstanceStart that fails on its second disk leaves nothing behind: the first
    /// disk's image is not held, and a corrected configuration starts.
    func testAFailedStartReleasesWhatItOpened() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw TestSupport.Failure("curl is not installed: run ci/setup") }
        let kernel = try TestSupport.guestImage("hello-x86_64")
        let good = directory.appendingPathComponent("good.img").path
        XCTAssertTrue(FileManager.default.createFile(atPath: good, contents: Data(count: 1 << 20)))
        let vmm = try RunningVMM(directory: directory)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/boot-source", #"{"kernel_image_path": "\#(kernel)"}"#).status, 204)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/drives/good", #"{"drive_id": "good", "path_on_host": "\#(good)", "is_root_device": false}"#).status, 204)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/drives/bad", #"{"drive_id": "bad", "path_on_host": "\#(directory.path)", "is_root_device": false}"#).status, 204)
        let start = try curl(vmm.socket, "PUT", "/actions", #"{"action_type": "InstanceStart"}"#)
        XCTAssertEqual(start.status, 400)
        XCTAssertTrue(start.body.contains("is a directory") || start.body.contains("Is a directory"), start.body)
        let other = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", kernel, "--memory", "32", "--disk", "path=\(good)"], timeout: 20)
        XCTAssertEqual(other.status, 0, "the first disk was released after the failed start: \(other.stderr)")
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/drives/bad", #"{"drive_id": "bad", "path_on_host": "\#(good)", "is_root_device": false, "is_read_only": true}"#).status, 204)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/drives/good", #"{"drive_id": "good", "path_on_host": "\#(good)", "is_root_device": false, "is_read_only": true}"#).status, 204)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/actions", #"{"action_type": "InstanceStart"}"#).status, 204, "two read-only users of one image")
        XCTAssertEqual(try vmm.waitForExit(seconds: 20), 0, vmm.errorText)
        XCTAssertEqual(vmm.errorText, TestSupport.i8042ResetEnd, "the guest's own i8042 reset ended it")
    }

    func testPythonStandardLibraryClient() throws {
        let kernel = try TestSupport.guestImage("ticker-x86_64")
        let vmm = try RunningVMM(directory: directory)
        let script = TestSupport.repositoryRoot.appendingPathComponent("Tests/IntegrationTests/api_client.py").path
        let result = try TestSupport.run("/usr/bin/env", ["python3", script, vmm.socket, kernel, vmm.output.path], timeout: 60)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertEqual(try vmm.waitForExit(seconds: 20), 0, vmm.errorText)
        XCTAssertEqual(vmm.errorText, TestSupport.i8042ResetEnd, "the guest's own i8042 reset ended it")
        XCTAssertTrue(vmm.outputText.hasSuffix("key pressed, resetting\n"))
    }

    func testSwiftletCtlErrorsAndExitCodes() throws {
        let vmm = try RunningVMM(directory: directory)
        let ok = try TestSupport.run(TestSupport.swiftletBinary, ["ctl", "--api-socket", vmm.socket, "GET", "/"])
        XCTAssertEqual(ok.status, 0)
        XCTAssertTrue(ok.stdout.contains(#""state":"Not started""#), ok.stdout)
        let bad = try TestSupport.run(TestSupport.swiftletBinary, ["ctl", "--api-socket", vmm.socket, "PUT", "/machine-config", "{"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.hasPrefix("swiftlet ctl: 400 Bad Request: "), bad.stderr)
        let missing = try TestSupport.run(TestSupport.swiftletBinary, ["ctl", "--api-socket", vmm.socket, "GET", "/nope"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.hasPrefix("swiftlet ctl: 404"), missing.stderr)
        let usage = try TestSupport.run(TestSupport.swiftletBinary, ["ctl", "GET", "/"])
        XCTAssertEqual(usage.status, 2)
        let noServer = try TestSupport.run(TestSupport.swiftletBinary, ["ctl", "--api-socket", directory.appendingPathComponent("none.sock").path, "GET", "/"])
        XCTAssertEqual(noServer.status, 1)
        XCTAssertTrue(noServer.stderr.contains("cannot connect"), noServer.stderr)
        // SIGTERM before boot: no guest to press the power button of, so the main loop stops
        // at once and swiftlet exits 128 + 15 (VMExit.signal). A crash, or dying of the signal
        // itself, is no exit at all: Process reports an uncaught signal.
        vmm.process.terminate()
        XCTAssertEqual(try vmm.waitForExit(seconds: 10), 128 + SIGTERM, vmm.errorText)
        XCTAssertEqual(vmm.process.terminationReason, .exit, "exited by itself, not killed by the signal")
        XCTAssertTrue(vmm.errorText.hasSuffix("swiftlet: stopped by signal 15\n"), vmm.errorText)
    }

    /// Raw bytes to the socket, then a half-close; returns what came back, and whether the
    /// server closed the connection (rather than 2 s passing with it open): an orderly close,
    /// or a reset when it closed with bytes of ours unread (after refusing a huge body).
    func exchange(_ socketPath: String, _ bytes: [UInt8]) throws -> (text: String, closed: Bool) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupport.Failure("socket") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in socketPath.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else { throw TestSupport.Failure("connect: \(errno)") }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { response += buffer[0..<n]; continue }
            return (String(decoding: response, as: UTF8.self), n == 0 || errno == ECONNRESET)
        }
    }

    /// What the server did with one connection's bytes, after our half-close.
    enum Outcome: Equatable, CustomStringConvertible {
        /// An answer with this status, then the server closed the connection.
        case answered(Int)
        /// The server closed the connection without a byte of answer.
        case closedWithoutAnswer
        /// Anything else: silence with the connection still open, or an answer left open.
        case other(String)

        init(_ exchanged: (text: String, closed: Bool)) {
            let statusLine = exchanged.text.components(separatedBy: "\r\n")[0]
            let fields = statusLine.split(separator: " ")
            if exchanged.text.isEmpty {
                self = exchanged.closed ? .closedWithoutAnswer : .other("no answer, and the connection still open after 2 s")
            } else if exchanged.closed, fields.count >= 2, fields[0] == "HTTP/1.1", let status = Int(fields[1]) {
                self = .answered(status)
            } else {
                self = .other("'\(statusLine.prefix(60))', connection \(exchanged.closed ? "closed" : "still open")")
            }
        }

        var description: String {
            switch self {
            case .answered(let status): return "\(status), then closed"
            case .closedWithoutAnswer: return "closed without an answer"
            case .other(let what): return what
            }
        }
    }

    /// Each malformed request gets the 4xx the server gives it today, then the connection is
    /// closed; incomplete input is closed without an answer when the client half-closes (the
    /// server waits for the rest of a request, never guesses); and after each, a good request
    /// on a new connection is served.
    func testMalformedRequestsGet4xxAndTheServerKeepsServing() throws {
        let vmm = try RunningVMM(directory: directory)
        let good = Array("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
        var cases: [(name: String, bytes: [UInt8], expect: Outcome)] = []
        func add(_ name: String, _ bytes: [UInt8], _ expect: Outcome) { cases.append((name, bytes, expect)) }
        func add(_ text: String, _ expect: Outcome) { add(String(text.prefix(50)), Array(text.utf8), expect) }
        // Refused by the router (the VM is not configured yet): bad or out-of-range bodies,
        // actions and states not allowed before start.
        let bodies = ["{", "}", "[]", "null", "1", "\"x\"", #"{"vcpu_count": "2", "mem_size_mib": 32}"#,
                      #"{"vcpu_count": 2.5, "mem_size_mib": 32}"#, #"{"vcpu_count": -1, "mem_size_mib": 32}"#,
                      #"{"vcpu_count": 1}"#, #"{"vcpu_count": 1, "mem_size_mib": 32, "x": 1}"#,
                      #"{"vcpu_count": 99999999999999999999, "mem_size_mib": 32}"#, #"{"vcpu_count": 1, "vcpu_count": 1, "mem_size_mib": 32}"#,
                      String(repeating: "[", count: 100) + String(repeating: "]", count: 100), "{\"a\":\"\u{1}\"}", "\u{FEFF}{}",
                      #"{"vcpu_count": 1, "mem_size_mib": 0}"#, #"{"vcpu_count": true, "mem_size_mib": 32}"#, "{'a': 1}", "{\"a\" 1}"]
        for body in bodies {
            add("PUT /machine-config HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)", .answered(400))
        }
        for body in ["{}", #"{"kernel_image_path": 5}"#, #"{"kernel_image_path": ""}"#, #"{"initrd_path": "/x"}"#, #"{"kernel_image_path": "/k", "boot_args": []}"#] {
            add("PUT /boot-source HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)", .answered(400))
        }
        for body in [#"{"action_type": "Reboot"}"#, #"{"action_type": "SendCtrlAltDel"}"#, #"{}"#, #"{"action_type": 1}"#] {
            add("PUT /actions HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)", .answered(400))
        }
        for body in [#"{"state": "Paused"}"#, #"{"state": "Sleeping"}"#] {
            add("PATCH /vm HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)", .answered(400))
        }
        // Request lines: unknown paths 404, wrong methods 405 (methods are case-sensitive),
        // and malformed lines 400 from the parser.
        let lines: [(String, Int)] = [
            ("GET /nope HTTP/1.1", 404), ("DELETE / HTTP/1.1", 405), ("POST /vm HTTP/1.1", 405), ("PUT / HTTP/1.1", 405),
            ("GET /boot-source HTTP/1.1", 405), ("GET / HTTP/2.0", 400), ("GET / HTTP/1.1 extra", 400), ("GET  / HTTP/1.1", 400),
            ("GET", 400), ("/ HTTP/1.1", 400), ("G\u{1}T / HTTP/1.1", 400), ("GET http://x/ HTTP/1.1", 400), ("GET / FTP/1.1", 400),
            ("get / HTTP/1.1", 405), ("PATCH /boot-source HTTP/1.1", 405), ("GET /vm HTTP/1.1", 405),
        ]
        for (line, status) in lines { add("\(line)\r\nContent-Length: 0\r\n\r\n", .answered(status)) }
        let headerAbuse: [(String, Int)] = [
            ("Content-Length: -1", 400), ("Content-Length: abc", 400), ("Content-Length: 1, 2", 400), ("Transfer-Encoding: chunked", 411),
            ("Transfer-Encoding: gzip", 400), ("Expect: magic", 417), ("Bad Header: x", 400), (": empty", 400), ("X\u{7F}: y", 400),
            ("Content-Length: 99999999", 413), ("Content-Length: 10\r\nContent-Length: 11", 400),
        ]
        for (header, status) in headerAbuse { add("PUT /machine-config HTTP/1.1\r\n\(header)\r\n\r\n", .answered(status)) }
        add("PUT /machine-config HTTP/1.1\r\n\r\n{}", .answered(411))                                   // no length
        add("body of 70000 bytes", Array("PUT /machine-config HTTP/1.1\r\nContent-Length: 70000\r\n\r\n".utf8) + [UInt8](repeating: 0x41, count: 70000),
            .answered(413))
        add("100 headers, never ended", Array(("GET / HTTP/1.1\r\n" + String(repeating: "X-Pad: \(String(repeating: "p", count: 100))\r\n", count: 100)).utf8),
            .answered(431))
        add("GET / HTTP/1.1\r\nX: \(String(repeating: "y", count: 9000))\r\n\r\n", .answered(431))
        add("GET / HTTP/1.1\r\n" + String(repeating: "A: b\r\n", count: 70) + "\r\n", .answered(431))
        add("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", .answered(400))
        add("binary with CRLFs", [0xFF, 0xFE, 0x00, 0x41, 0x0D, 0x0A, 0x0D, 0x0A], .answered(400))
        // Incomplete: no end of the head (bare LFs do not end one), or a body cut short.
        add("PUT /machine-config HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"vcpu", .closedWithoutAnswer)   // truncated body
        add("GET / HTTP/1.1\nHost: x\n\n", .closedWithoutAnswer)
        add("64 NULs", [UInt8](repeating: 0, count: 64), .closedWithoutAnswer)
        add("GET / HTTP/1.1\r", .closedWithoutAnswer)                                                          // slowloris-style partials
        add("GET / HT", .closedWithoutAnswer)
        add("PUT /machine-config HTTP/1.1\r\nContent-Length: 5\r\n", .closedWithoutAnswer)
        var seed: UInt64 = 0x5eed
        while cases.count < 110 {
            var junk = [UInt8]()
            for _ in 0..<(Int(seed % 200) + 1) {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                junk.append(UInt8(truncatingIfNeeded: seed >> 33))
            }
            junk += Array("\r\n\r\n".utf8)
            add("random junk \(cases.count)", junk, .answered(400))
        }
        XCTAssertGreaterThanOrEqual(cases.count, 100)
        for (index, testCase) in cases.enumerated() {
            let outcome = Outcome(try exchange(vmm.socket, testCase.bytes))
            XCTAssertEqual(outcome, testCase.expect, "case \(index): \(testCase.name.debugDescription)")
            let next = try exchange(vmm.socket, good).text
            XCTAssertTrue(next.hasPrefix("HTTP/1.1 200 OK"), "case \(index): the next good request failed: \(next.prefix(80))")
        }
        // A client that sends half a request and stalls is not answered and does not block others.
        let staller = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in vmm.socket.utf8.enumerated() { raw[i] = b } }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(staller, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        _ = "GET / HTTP/1.1\r\nHo".withCString { send(staller, $0, 18, Int32(MSG_NOSIGNAL)) }
        XCTAssertTrue(try exchange(vmm.socket, good).text.hasPrefix("HTTP/1.1 200 OK"))
        close(staller)
        XCTAssertTrue(vmm.process.isRunning)
        vmm.process.terminate()
        XCTAssertEqual(try vmm.waitForExit(seconds: 10), 128 + SIGTERM, vmm.errorText)
    }

    func testTerminalRawModeEscapeAndRestore() throws {
        let kernel = try TestSupport.guestImage("ticker-x86_64")
        let script = TestSupport.repositoryRoot.appendingPathComponent("Tests/IntegrationTests/terminal_test.py").path
        let result = try TestSupport.run("/usr/bin/env", ["python3", script, TestSupport.swiftletBinary, kernel, directory.path], timeout: 60)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("settings restored"), result.stdout)
    }
}
