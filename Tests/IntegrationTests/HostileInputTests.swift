import Foundation
import XCTest

/// Bad input from the user on the real binary: paths that are not regular files (a FIFO
/// would block a plain open), images far larger than the guest, crafted kernel headers.
/// Each gets one line and exit status 2 (or HTTP 400), promptly, without reading the file.
final class HostileInputTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        try TestSupport.requireKVM()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-input-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: directory)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func makeFIFO(_ name: String) throws -> String {
        let fifo = path(name)
        guard mkfifo(fifo, 0o600) == 0 else { throw TestSupport.Failure("mkfifo \(fifo): errno \(errno)") }
        return fifo
    }

    /// `swiftlet run ARGS` must end within 10 s with status 2 and one stderr line matching `expected`.
    func expectBadInput(_ arguments: [String], _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run"] + arguments, timeout: 10)
        XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "one line: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("swiftlet: ") && result.stderr.contains(expected),
                      "\(arguments): wanted '\(expected)', got \(result.stderr)", file: file, line: line)
    }

    func testPathsThatAreNotRegularFilesAreRefusedAtOnce() throws {
        let fifo = try makeFIFO("kernel.fifo")
        let kernel = try TestSupport.guestImage("hello-x86_64")
        try expectBadInput(["--kernel", fifo], "kernel \(fifo) is not a regular file")
        try expectBadInput(["--kernel", "/dev/zero"], "kernel /dev/zero is not a regular file")
        try expectBadInput(["--kernel", directory.path], "is not a regular file")
        try expectBadInput(["--kernel", kernel, "--initrd", fifo], "initrd \(fifo) is not a regular file")
        try expectBadInput(["--kernel", path("missing")], "cannot open kernel")
    }

    func testFIFOKernelThroughTheAPIAnswers400QuicklyAndSIGTERMStillEnds() throws {
        let fifo = try makeFIFO("api-kernel.fifo")
        let vmm = try ControlAPITests.RunningVMM(directory: directory)
        XCTAssertEqual(try curl(vmm.socket, "PUT", "/boot-source", "{\"kernel_image_path\": \"\(fifo)\"}").status, 204)
        let start = Date()
        let answer = try curl(vmm.socket, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}")
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(answer.status, 400, answer.body)
        XCTAssertTrue(answer.body.contains("is not a regular file"), answer.body)
        XCTAssertLessThan(seconds, 2, "InstanceStart with a FIFO kernel took \(seconds) s")
        XCTAssertEqual(try curl(vmm.socket, "GET", "/").status, 200, "the API still answers")
        kill(vmm.process.processIdentifier, SIGTERM)
        XCTAssertEqual(try vmm.waitForExit(seconds: 5), 128 + SIGTERM, vmm.errorText)
        XCTAssertFalse(FileManager.default.fileExists(atPath: vmm.socket), "the socket file is removed on exit")
    }

    func testMultiGiBSparseInitrdIsRefusedBeforeItIsRead() throws {
        let kernel = path("bzImage")
        try Data(syntheticBzImage()).write(to: URL(fileURLWithPath: kernel))
        let initrd = path("huge-initrd")
        _ = FileManager.default.createFile(atPath: initrd, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: initrd))
        try handle.truncate(atOffset: 6 << 30)          // 6 GiB, no blocks
        try handle.close()
        let result = try TestSupport.runMeasuringPeakRSS(TestSupport.swiftletBinary,
                                                         ["run", "--no-reboot", "--kernel", kernel, "--initrd", initrd, "--memory", "16"])
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertTrue(result.stderr.contains("too small for the kernel") && result.stderr.contains("initrd (6144 MiB)"), result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertLessThan(result.peakRSSKiB, 64 * 1024, "peak RSS \(result.peakRSSKiB) KiB")
    }

    func testCraftedBzImageHeadersGiveOneLineAndExit2() throws {
        let cases: [(name: String, bytes: [UInt8], extra: [String], expected: String)] = [
            ("setup-past-end", syntheticBzImage(setupSects: 255, payload: 0x100), [], "is truncated"),
            ("short-header", syntheticBzImage(jump: 0x10), [], "bad setup header"),
            ("header-only", Array(syntheticBzImage().prefix(0x268)), [], "is truncated"),
            ("huge-init-size", syntheticBzImage(initSize: 0xFFFF_FFFF), ["--memory", "64"], "raise --memory"),
            ("no-cmdline-room", syntheticBzImage(cmdlineSize: 0), [], "this kernel accepts at most 0"),
            ("no-64-bit-entry", syntheticBzImage(version: 0xFFFF, xloadflags: 0), [], "no 64-bit entry point"),
            ("old-protocol", syntheticBzImage(version: 0x0100), [], "boot protocol 1.0"),
            ("initrd-max-0", syntheticBzImage(initrdAddressMax: 0), ["--initrd", "INITRD"], "too small"),
        ]
        let initrd = path("initrd")
        try Data(count: 4096).write(to: URL(fileURLWithPath: initrd))
        for crafted in cases {
            let kernel = path(crafted.name)
            try Data(crafted.bytes).write(to: URL(fileURLWithPath: kernel))
            let extra = crafted.extra.map { $0 == "INITRD" ? initrd : $0 }
            try expectBadInput(["--kernel", kernel] + extra, crafted.expected)
        }
    }

    func curl(_ socket: String, _ method: String, _ uri: String, _ body: String? = nil) throws -> (status: Int, body: String) {
        var arguments = ["-s", "-m", "20", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", socket, "-X", method, "http://localhost\(uri)"]
        if let body { arguments += ["-H", "Content-Type: application/json", "-d", body] }
        let result = try TestSupport.run("/usr/bin/curl", arguments, timeout: 25)
        guard let last = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).last, let status = Int(last) else {
            throw TestSupport.Failure("curl \(method) \(uri) failed (\(result.status)): \(result.stderr)")
        }
        return (status, String(result.stdout.dropLast(last.count + 1)))
    }
}

/// A bzImage header as Linux's boot protocol 2.15 has it, then `payload` bytes.
func syntheticBzImage(version: UInt16 = 0x020F, xloadflags: UInt16 = 0x1, cmdlineSize: UInt32 = 2047,
                      initSize: UInt32 = 0x20_0000, initrdAddressMax: UInt32 = 0x7FFF_FFFF,
                      setupSects: UInt8 = 4, jump: UInt8 = 0x6A, payload: Int = 0x1000) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 5 * 512 + payload)
    func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        for i in 0..<MemoryLayout<T>.size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }
    bytes[0x1F1] = setupSects
    put(UInt16(0xAA55), at: 0x1FE)
    bytes[0x200] = 0xEB; bytes[0x201] = jump
    put(UInt32(0x5372_6448), at: 0x202)                     // "HdrS"
    put(version, at: 0x206)
    bytes[0x211] = 0x01                                      // LOADED_HIGH
    put(initrdAddressMax, at: 0x22C)
    put(xloadflags, at: 0x236)
    put(cmdlineSize, at: 0x238)
    put(initSize, at: 0x260)
    return bytes
}
