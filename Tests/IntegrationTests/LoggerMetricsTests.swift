import Foundation
import XCTest

/// The logger and the metrics end to end on this host's KVM, configured the ways
/// Firecracker's tools configure them (flags, PUT /logger, PUT /metrics, FlushMetrics),
/// including destinations nobody reads.
final class LoggerMetricsTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        try TestSupport.requireKVM()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-lm-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: directory)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// Firecracker's log line: UTC time to the nanosecond, [id:thread(:LEVEL)(:file:line)], message.
    static func layout(id: String, level: Bool, origin: Bool) -> String {
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9} \\[\(id):(main|vcpu [0-9]+)"
            + (level ? ":(ERROR|WARN|INFO|DEBUG|TRACE)" : "") + (origin ? ":[A-Za-z0-9_]+/[A-Za-z0-9_+]+\\.swift:[0-9]+" : "")
            + "\\] [^\\n]+$"
    }

    func assertLayout(_ lines: [String], id: String, level: Bool, origin: Bool, file: StaticString = #filePath, line: UInt = #line) {
        let pattern = LoggerMetricsTests.layout(id: id, level: level, origin: origin)
        XCTAssertFalse(lines.isEmpty, "no log lines", file: file, line: line)
        for text in lines where text.range(of: pattern, options: .regularExpression) == nil {
            XCTFail("not in Firecracker's layout: \(text)", file: file, line: line)
        }
    }

    /// Every metrics line, parsed: each must be one JSON object.
    func metricsLines(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        let content = text(path)
        XCTAssertTrue(content.hasSuffix("\n"), "lines end whole", file: file, line: line)
        return try content.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "not a JSON object: \($0)", file: file, line: line)
        }
    }

    /// A counter summed over every line (each line reports what was counted since the last).
    func total(_ lines: [[String: Any]], _ group: String, _ field: String) -> UInt64 {
        lines.reduce(0) { $0 + ((($1[group] as? [String: Any])?[field] as? NSNumber)?.uint64Value ?? 0) }
    }

    /// A copy of an exit-cost guest (Tests/Guests/exits-*.S) that loops `count` times.
    func exitsGuest(_ name: String, count: UInt32) throws -> String {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try TestSupport.guestImage(name))))
        withUnsafeBytes(of: count.littleEndian) { bytes.replaceSubrange((bytes.count - 4)..., with: $0) }
        let copy = path("\(name)-\(count).bin")
        try Data(bytes).write(to: URL(fileURLWithPath: copy))
        return copy
    }

    // MARK: from the command line

    /// After a boot, the metrics file holds one JSON object per line (the first written as
    /// the VM started, the last at exit) whose vcpu counters add up to the guest's exits,
    /// exactly as --stats counts them; stderr is unchanged.
    func testMetricsAfterABootCountTheGuestsExits() throws {
        for (guest, count, group) in [("exits-pio-x86_64", UInt32(1000), "exit_io_out"), ("exits-mmio-x86_64", UInt32(100), "exit_mmio_write")] {
            let metrics = path("\(guest).json")
            let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", try exitsGuest(guest, count: count),
                                                                          "--memory", "32", "--metrics-path", metrics])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(result.stderr, TestSupport.i8042ResetEnd, "the metrics add nothing to stderr")
            let lines = try metricsLines(metrics)
            XCTAssertGreaterThanOrEqual(lines.count, 2, "a line as the VM starts and one at exit")
            for line in lines {
                for key in ["utc_timestamp_ms", "api_server", "block", "uart", "latencies_us", "logger", "net", "vcpu", "vsock", "entropy"] {
                    XCTAssertNotNil(line[key], "\(guest): no \(key)")
                }
            }
            let resetWrite: UInt64 = 1   // the i8042 reset is a port write
            if group == "exit_io_out" {
                XCTAssertEqual(total(lines, "vcpu", "exit_io_out"), UInt64(count) + resetWrite, guest)
            } else {
                XCTAssertEqual(total(lines, "vcpu", "exit_mmio_write"), UInt64(count), guest)
                XCTAssertEqual(total(lines, "vcpu", "exit_io_out"), resetWrite, guest)
            }
            XCTAssertGreaterThan(total([lines[0]], "api_server", "process_startup_time_us"), 0, "the first line reports the startup time")
            XCTAssertEqual(total(lines, "logger", "missed_metrics_count"), 0)
        }
    }

    /// Guest reboots build a new VM each time, whose counters start from zero: the metrics
    /// keep what each old VM counted, so the totals are every boot's, to the exit. They let
    /// go of the old VM before the next is built, or its disk would still be locked.
    func testCountsSurviveGuestReboots() throws {
        let metrics = path("reboots.json"), out = path("out"), err = path("err"), disk = path("disk.img")
        _ = FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20))
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestSupport.swiftletBinary)
        process.arguments = ["run", "--kernel", try TestSupport.guestImage("hello-x86_64"), "--memory", "32", "--disk", "path=\(disk)",
                             "--metrics-path", metrics]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let hello = "Hello from a Swiftlet x86_64 guest\n"
        func boots() -> Int { text(out).components(separatedBy: hello).count - 1 }
        let deadline = Date().addingTimeInterval(30)
        while boots() < 5 && process.isRunning && Date() < deadline { usleep(5_000) }
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 128 + SIGINT, text(err))
        let printed = UInt64(text(out).utf8.count), booted = UInt64(boots())
        XCTAssertGreaterThanOrEqual(booted, 5)
        let lines = try metricsLines(metrics)
        XCTAssertEqual(total(lines, "uart", "write_count"), printed, "every boot's console bytes")
        // A port write per byte, and one (the i8042 reset) per boot that ended; the signal
        // may land between a write's exit and its byte reaching the console.
        let writes = total(lines, "vcpu", "exit_io_out")
        XCTAssertGreaterThanOrEqual(writes, printed + booted - 1)
        XCTAssertLessThanOrEqual(writes, printed + booted + 1)
    }

    /// --log-path with every flag: Firecracker's layout, the VM's life at Info, and the
    /// first unclaimed port and MMIO access each once at Warning (the wild guest makes
    /// 131,000 of them); stderr is unchanged.
    func testLogFileHasFirecrackersLayoutAndTheFirstOfEachMisbehaviour() throws {
        let log = path("vm.log")
        let result = try TestSupport.run(TestSupport.swiftletBinary, [
            "run", "--no-reboot", "--kernel", try TestSupport.guestImage("wild-x86_64"), "--memory", "32", "--id", "wild-1",
            "--log-path", log, "--level", "Debug", "--show-level", "--show-log-origin",
        ], timeout: 120)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, TestSupport.i8042ResetEnd)
        let lines = text(log).split(separator: "\n").map(String.init)
        assertLayout(lines, id: "wild-1", level: true, origin: true)
        let warnings = lines.filter { $0.contains(":WARN:") }
        XCTAssertEqual(warnings.count, 2, "\(warnings)")
        XCTAssertEqual(warnings.filter { $0.contains("[wild-1:vcpu 0:WARN:VMM/VCPURunner.swift:") && $0.contains("I/O port") }.count, 1)
        XCTAssertEqual(warnings.filter { $0.contains("MMIO") && $0.hasSuffix("which no device claims, was dropped; later ones are only counted") }.count, 1)
        XCTAssertTrue(lines.contains { $0.contains(":main:INFO:swiftlet/Controller.swift:") && $0.contains("] Building the VM: 1 vCPU, 32 MiB, kernel ") })
        XCTAssertTrue(lines.last?.hasSuffix("] The VMM is exiting with status 0: guest reset (i8042 reset line)") ?? false, lines.last ?? "")
    }

    /// A destination that cannot be opened is bad input: one line, status 2, whichever
    /// way it was given.
    func testPathsThatCannotBeOpenedAreOneLineAndStatus2() throws {
        let kernel = try TestSupport.guestImage("hello-x86_64")
        let bad = path("no/such/dir/file")
        for (flag, writer) in [("--log-path", "logger"), ("--metrics-path", "metrics")] {
            let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--kernel", kernel, flag, bad])
            XCTAssertEqual(result.status, 2, result.stderr)
            XCTAssertEqual(result.stderr, "swiftlet: \(writer): cannot open \(bad): No such file or directory\n")
        }
        let config = path("vm.json")
        try #"{"boot-source": {"kernel_image_path": "\#(kernel)"}, "logger": {"log_path": "\#(bad)", "level": "Info"}}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--config-file", config])
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertEqual(result.stderr, "swiftlet: logger: cannot open \(bad): No such file or directory\n")
    }

    // MARK: through the API

    /// What Firecracker's Go SDK does: PUT /logger and PUT /metrics before the boot. Bad
    /// paths answer 400 with the reason; FlushMetrics writes a line at once; the requests
    /// after PUT /logger are in the log in Firecracker's layout.
    func testTheAPIConfiguresBothAndFlushMetricsWritesAtOnce() throws {
        let vmm = try ControlAPITests.RunningVMM(directory: directory)
        let api = try UnixHTTPClient(path: vmm.socket)
        let log = path("api.log"), metrics = path("api-metrics.json")
        let badLogger = try api.request("PUT", "/logger", #"{"log_path": "/no/such/dir/log"}"#)
        XCTAssertEqual(badLogger.status, 400)
        XCTAssertEqual(badLogger.body, #"{"fault_message":"logger: cannot open /no/such/dir/log: No such file or directory"}"#)
        XCTAssertEqual(try api.request("PUT", "/metrics", #"{"metrics_path": "/no/such/dir/m"}"#).status, 400)
        XCTAssertEqual(try api.request("PUT", "/logger", #"{"log_path": "\#(log)", "show_level": true}"#).status, 204)
        XCTAssertEqual(try api.request("PUT", "/metrics", #"{"metrics_path": "\#(metrics)"}"#).status, 204)
        XCTAssertEqual(try api.request("PUT", "/metrics", #"{"metrics_path": "\#(metrics)"}"#).status, 400, "once per process")
        XCTAssertEqual(try api.request("PUT", "/boot-source", #"{"kernel_image_path": "\#(try TestSupport.guestImage("ticker-x86_64"))"}"#).status, 204)
        XCTAssertEqual(try api.request("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 32}"#).status, 204)
        XCTAssertEqual(try api.request("PUT", "/actions", #"{"action_type": "InstanceStart"}"#).status, 204)

        func lineCount() -> Int { text(metrics).split(separator: "\n").count }
        func waitForLines(_ count: Int) -> Bool {
            let deadline = Date().addingTimeInterval(2)
            while lineCount() < count && Date() < deadline { usleep(5_000) }
            return lineCount() == count
        }
        XCTAssertTrue(waitForLines(1), "the start writes the first line: \(lineCount())")
        XCTAssertEqual(try api.request("PUT", "/actions", #"{"action_type": "FlushMetrics"}"#).status, 204)
        XCTAssertTrue(waitForLines(2), "FlushMetrics writes a line at once: \(lineCount())")
        XCTAssertEqual(try api.request("PATCH", "/vm", #"{"state": "Paused"}"#).status, 204)
        XCTAssertEqual(try api.request("PATCH", "/vm", #"{"state": "Resumed"}"#).status, 204)
        XCTAssertEqual(try api.request("PUT", "/actions", #"{"action_type": "FlushMetrics"}"#).status, 204)
        XCTAssertTrue(waitForLines(3))
        XCTAssertEqual(try api.request("PUT", "/actions", #"{"action_type": "SendCtrlAltDel"}"#).status, 204)
        XCTAssertEqual(try vmm.waitForExit(seconds: 20), 0, vmm.errorText)
        XCTAssertEqual(vmm.errorText, TestSupport.i8042ResetEnd)

        let lines = try metricsLines(metrics)
        XCTAssertEqual(lines.count, 4, "the start's, two flushes' and the exit's")
        let latencies = try XCTUnwrap(lines[2]["latencies_us"] as? [String: NSNumber])
        XCTAssertGreaterThan(latencies["pause_vm"]?.uint64Value ?? 0, 0)
        XCTAssertGreaterThan(total(lines, "uart", "write_count"), 0, "the ticker's console output")
        XCTAssertGreaterThan(total(lines, "vcpu", "exit_io_in"), 0, "the ticker polls the i8042")

        let logLines = text(log).split(separator: "\n").map(String.init)
        assertLayout(logLines, id: "swiftlet-\(vmm.process.processIdentifier)", level: true, origin: false)
        for expected in [#":INFO] The API server received a Put request on "/actions" with body "{\"action_type\": \"FlushMetrics\"}"."#,
                         #":INFO] The API server received a Patch request on "/vm" with body "{\"state\": \"Paused\"}"."#,
                         ":INFO] The VM is paused (in ", ":INFO] The VM is resumed (in ",
                         ":INFO] The VMM is exiting with status 0: guest reset (i8042 reset line)"] {
            XCTAssertTrue(logLines.contains { $0.contains(expected) }, "no line with \(expected) in \(logLines)")
        }
        XCTAssertTrue(logLines.contains { $0.contains(":WARN] Received Error. Status code: 400 Bad Request. Message: the metrics are configured already") })
    }

    // MARK: destinations nobody reads

    /// A log FIFO nobody reads: the VMM answers every request and the guest runs to its
    /// end; the lines that did not fit are dropped, counted in the metrics as they go and
    /// said at exit, and with those still in the pipe they add up to every line logged.
    func testAStalledLogFIFONeverBlocksTheVMMAndEveryDroppedLineIsCounted() throws {
        let fifo = path("log.fifo"), metrics = path("metrics.json")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        // Held open so that what reached the pipe can be read after the VMM is gone.
        let pipe = open(fifo, O_RDWR | O_NONBLOCK)
        XCTAssertGreaterThanOrEqual(pipe, 0)
        defer { close(pipe) }
        let vmm = try ControlAPITests.RunningVMM(directory: directory, extraArguments: ["--log-path", fifo, "--metrics-path", metrics])
        let api = try UnixHTTPClient(path: vmm.socket)
        let requests = 3000   // ~110 bytes of log each: far more than the pipe and the ring hold
        let start = Date()
        for _ in 0..<requests { XCTAssertEqual(try api.request("GET", "/").status, 200) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 30, "a stalled log must not slow the API down")
        XCTAssertEqual(try api.request("PUT", "/boot-source", #"{"kernel_image_path": "\#(try TestSupport.guestImage("hello-x86_64"))"}"#).status, 204)
        XCTAssertEqual(try api.request("PUT", "/actions", #"{"action_type": "InstanceStart"}"#).status, 204)
        XCTAssertEqual(try vmm.waitForExit(seconds: 20), 0, vmm.errorText)
        XCTAssertEqual(vmm.outputText, "Hello from a Swiftlet x86_64 guest\n")

        let stderr = vmm.errorText.split(separator: "\n").map(String.init)
        XCTAssertEqual(stderr.count, 2, vmm.errorText)
        XCTAssertEqual(stderr.last, "swiftlet: guest reset (i8042 reset line)")
        let dropped = try XCTUnwrap(stderr.first.flatMap { line -> UInt64? in
            guard line.hasSuffix(" log lines were dropped: the log destination did not keep up") else { return nil }
            return UInt64(line.dropFirst("swiftlet: ".count).prefix { $0 != " " })
        }, vmm.errorText)
        let counted = total(try metricsLines(metrics), "logger", "missed_log_count")
        XCTAssertGreaterThan(counted, 0, "the metrics count dropped lines as they go")
        XCTAssertLessThanOrEqual(counted, dropped, "the exit's count includes the metrics' counts")

        var inPipe = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(pipe, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            inPipe += buffer[0..<n].filter { $0 == 0x0A }.count
        }
        XCTAssertGreaterThan(inPipe, 0)
        // Every request's line, plus the VMM's own few (start, build, exit): written or counted.
        let logged = UInt64(inPipe) + dropped
        XCTAssertGreaterThanOrEqual(logged, UInt64(requests + 2), "written \(inPipe), dropped \(dropped)")
        XCTAssertLessThanOrEqual(logged, UInt64(requests + 20), "written \(inPipe), dropped \(dropped)")
    }

    /// A metrics FIFO nobody reads: FlushMetrics answers at once, 500 once a line finds no
    /// room, the API still answers and the VMM ends on time.
    func testAStalledMetricsFIFONeverBlocksTheVMM() throws {
        let fifo = path("metrics.fifo")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let vmm = try ControlAPITests.RunningVMM(directory: directory, extraArguments: ["--metrics-path", fifo])
        let api = try UnixHTTPClient(path: vmm.socket)
        XCTAssertEqual(try api.request("PUT", "/boot-source", #"{"kernel_image_path": "\#(try TestSupport.guestImage("ticker-x86_64"))"}"#).status, 204)
        XCTAssertEqual(try api.request("PUT", "/actions", #"{"action_type": "InstanceStart"}"#).status, 204)
        var refused: (status: Int, body: String)?
        for _ in 0..<2000 {
            let answer = try api.request("PUT", "/actions", #"{"action_type": "FlushMetrics"}"#)
            if answer.status != 204 { refused = answer; break }
        }
        let answer = try XCTUnwrap(refused, "every line found room in a pipe nobody reads")
        XCTAssertEqual(answer.status, 500)
        XCTAssertTrue(answer.body.contains("the metrics destination is not keeping up"), answer.body)
        XCTAssertEqual(try api.request("GET", "/").status, 200)
        XCTAssertEqual(try api.request("PUT", "/actions", #"{"action_type": "SendCtrlAltDel"}"#).status, 204)
        let stopping = Date()
        XCTAssertEqual(try vmm.waitForExit(seconds: 20), 0, vmm.errorText)
        XCTAssertLessThan(Date().timeIntervalSince(stopping), 10)
        XCTAssertTrue(vmm.errorText.hasSuffix("metrics lines were dropped: the metrics destination did not keep up\n\(TestSupport.i8042ResetEnd)"),
                      vmm.errorText)
    }
}

/// A keep-alive HTTP/1.1 client on a Unix socket: many requests in a row without a
/// process per request.
final class UnixHTTPClient {
    private let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupport.Failure("socket: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw TestSupport.Failure("connect \(path): \(errno)")
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func request(_ method: String, _ uri: String, _ body: String? = nil) throws -> (status: Int, body: String) {
        var head = "\(method) \(uri) HTTP/1.1\r\nHost: localhost\r\n"
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        let bytes = Array((head + "\r\n" + (body ?? "")).utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestSupport.Failure("send: \(errno)") }
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if let response = UnixHTTPClient.complete(received) { return response }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw TestSupport.Failure("\(method) \(uri): the connection ended (\(errno)) after \(received.count) bytes") }
            received += buffer[0..<n]
        }
    }

    /// The response in `bytes`, once its head and its Content-Length of body are there.
    private static func complete(_ bytes: [UInt8]) -> (status: Int, body: String)? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<($0 + 4)]) == separator }) else { return nil }
        let head = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(head[0].split(separator: " ").dropFirst().first ?? "") ?? 0
        let length = head.dropFirst().compactMap { line -> Int? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
            return Int(parts[1].trimmingCharacters(in: .whitespaces))
        }.first ?? 0
        guard bytes.count >= end + 4 + length else { return nil }
        return (status, String(decoding: bytes[(end + 4)..<(end + 4 + length)], as: UTF8.self))
    }
}
