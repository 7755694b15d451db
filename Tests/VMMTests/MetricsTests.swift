import Foundation
import KVM
import XCTest
@testable import Devices
@testable import SwiftletCore
@testable import VMM

/// A network backend that is never read or written in these tests.
private final class IdleBackend: NetBackend {
    let fd: Int32 = -1
    func setOffloads(_ flags: UInt32) -> Bool { true }
}

/// Guest RAM with one read or flush request at a time, for moving a disk's counters.
private final class DiskGuest {
    let memory: GuestMemory
    static let header: UInt64 = 0x4000_0000
    static let data: UInt64 = 0x4000_1000
    static let status: UInt64 = 0x4000_2000

    init() throws { memory = try GuestMemory(regions: [.init(guestBase: 0x4000_0000, size: 1 << 20)]) }

    func execute(_ type: UInt32, on disk: BlockDevice, dataLength: UInt32 = 0) throws {
        var header = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: type.littleEndian) { for i in 0..<4 { header[i] = $0[i] } }
        try memory.write(header, at: DiskGuest.header)
        var chain = DescriptorChain()
        chain.readable = [DescriptorSegment(address: DiskGuest.header, length: 16)]
        if dataLength > 0 { chain.writable.append(DescriptorSegment(address: DiskGuest.data, length: dataLength)) }
        chain.writable.append(DescriptorSegment(address: DiskGuest.status, length: 1))
        chain.readableLength = 16
        chain.writableLength = UInt64(dataLength) + 1
        XCTAssertEqual(disk.execute(chain, memory: memory), dataLength + 1)
    }
}

final class MetricsTests: XCTestCase {
    private var directory: URL!
    private var readEnd: Int32 = -1
    private var writeEnd: Int32 = -1

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-metrics-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        (readEnd, writeEnd) = (fds[0], fds[1])
        _ = fcntl(readEnd, F_SETFL, O_NONBLOCK)
    }

    override func tearDownWithError() throws {
        close(readEnd)
        close(writeEnd)
        try? FileManager.default.removeItem(at: directory)
    }

    private func disk(_ id: String) throws -> BlockDevice {
        let path = directory.appendingPathComponent("\(UInt32.random(in: 0...UInt32.max)).img").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(count: 1 << 20)))
        return BlockDevice(image: try DiskImage.open(path, readOnly: false), serial: id)
    }

    /// A metrics writer on the test's pipe.
    private func metrics(logger: Logger = Logger(fd: -1), interval: Int64 = Metrics.defaultIntervalMilliseconds) throws -> Metrics {
        let metrics = Metrics(logger: logger, intervalMilliseconds: interval)
        try metrics.configure(fd: writeEnd, closesDescriptor: false)
        return metrics
    }

    /// The lines written so far, as text.
    private func writtenLines(_ metrics: Metrics) -> [String] {
        XCTAssertTrue(metrics.waitUntilWritten(milliseconds: 5000))
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        XCTAssertTrue(text.isEmpty || text.hasSuffix("\n"))
        return text.split(separator: "\n").map(String.init)
    }

    private func parse(_ line: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    /// Flushes and returns the one line written, parsed.
    private func flushed(_ metrics: Metrics) throws -> [String: Any] {
        XCTAssertEqual(metrics.flush(), .queued)
        let lines = writtenLines(metrics)
        XCTAssertEqual(lines.count, 1)
        return try parse(try XCTUnwrap(lines.first))
    }

    private func group(_ object: [String: Any], _ name: String) throws -> [String: UInt64] {
        let members = try XCTUnwrap(object[name] as? [String: Any], "no group \(name)")
        return members.mapValues { ($0 as? NSNumber)?.uint64Value ?? .max }
    }

    // MARK: layout

    func testALineIsOneJSONObjectInFirecrackersLayout() throws {
        let exits = ExitCounters()
        let net = NetDevice(backend: IdleBackend(), mac: [2, 0, 0, 0, 0, 1], mtu: nil)
        let entropy = EntropyDevice(random: { _ in true })
        let metrics = try metrics()
        let start = ProcessTimestamp(monotonicMicroseconds: 1_000, cpuMicroseconds: 500)
        metrics.recordStartup(since: start, now: ProcessTimestamp(monotonicMicroseconds: 51_000, cpuMicroseconds: 20_500))
        metrics.attach(MetricsSources(exits: exits, disks: [("rootfs", try disk("rootfs")), ("data", try disk("data"))],
                                      networkInterfaces: [("eth0", net)], entropy: entropy))
        // The first attach writes a line at once (Firecracker's first line, as its VM starts).
        let lines = writtenLines(metrics)
        XCTAssertEqual(lines.count, 1)
        let line = try XCTUnwrap(lines.first)
        let object = try parse(line)

        let order = ["utc_timestamp_ms", "api_server", "block_data", "block_rootfs", "block", "uart", "latencies_us",
                     "logger", "net_eth0", "net", "vcpu", "vsock", "entropy"]
        XCTAssertEqual(Set(object.keys), Set(order))
        let positions = order.map { line.range(of: "\"\($0)\":")!.lowerBound }
        XCTAssertEqual(positions, positions.sorted(), "groups in Firecracker's order, devices by id")
        XCTAssertTrue(line.hasPrefix("{\"utc_timestamp_ms\":"))

        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let timestamp = try XCTUnwrap((object["utc_timestamp_ms"] as? NSNumber)?.uint64Value)
        XCTAssertLessThan(max(now, timestamp) - min(now, timestamp), 10_000)

        XCTAssertEqual(try group(object, "api_server"), ["process_startup_time_us": 50_000, "process_startup_time_cpu_us": 20_000])
        let zeros = { (fields: [StaticString]) in Dictionary(uniqueKeysWithValues: fields.map { ($0.description, UInt64(0)) }) }
        for name in ["block_data", "block_rootfs", "block"] { XCTAssertEqual(try group(object, name), zeros(Metrics.blockFields), name) }
        for name in ["net_eth0", "net"] { XCTAssertEqual(try group(object, name), zeros(Metrics.netFields), name) }
        XCTAssertEqual(try group(object, "vcpu"), zeros(Metrics.vcpuFields))
        XCTAssertEqual(try group(object, "vsock"), zeros(Metrics.vsockFields), "no vsock device: zeros, as Firecracker has")
        XCTAssertEqual(try group(object, "entropy"), zeros(Metrics.entropyFields))
        XCTAssertEqual(try group(object, "uart"), zeros(Metrics.uartFields))
        XCTAssertEqual(try group(object, "logger"), zeros(Metrics.loggerFields))
        XCTAssertEqual(try group(object, "latencies_us"), ["pause_vm": 0, "resume_vm": 0])
        XCTAssertEqual(Array(Metrics.vcpuFields.map { $0.description }),
                       ["exit_io_in", "exit_io_out", "exit_mmio_read", "exit_mmio_write", "failures"])
    }

    func testNamesAreEscapedSoTheLineStillParses() throws {
        let metrics = try metrics()
        let id = "odd \"id\" \\ with\ttab\nnewline\u{1} and ü"
        metrics.attach(MetricsSources(disks: [(id, try disk("odd"))]))
        let object = try parse(try XCTUnwrap(writtenLines(metrics).first))
        XCTAssertNotNil(object["block_" + id])
    }

    // MARK: counters

    func testVcpuCountersComeFromExitCountersAsDeltasSinceTheLastLine() throws {
        let exits = ExitCounters()
        var word: UInt32 = 0
        func exit(_ exit: (UnsafeMutableRawPointer) -> VCPUExit, times: Int) {
            withUnsafeMutableBytes(of: &word) { data in for _ in 0..<times { exits.count(exit(data.baseAddress!)) } }
        }
        exit({ .portIn(port: 0x3F8, size: 1, count: 1, data: $0) }, times: 3)
        exit({ .portOut(port: 0x3F8, size: 1, count: 1, data: UnsafeRawPointer($0)) }, times: 4)
        exit({ .mmioRead(address: 0x0900_0000, data: UnsafeMutableRawBufferPointer(start: $0, count: 4)) }, times: 5)
        exit({ .mmioWrite(address: 0x0900_0000, data: UnsafeRawBufferPointer(start: $0, count: 4)) }, times: 6)
        exit({ _ in .runFailed(errno: EFAULT) }, times: 1)
        exit({ _ in .internalError(suberror: 1) }, times: 1)
        exit({ _ in .halt }, times: 7)   // no Firecracker field of its own

        let metrics = try metrics()
        let start = ProcessTimestamp(monotonicMicroseconds: 0, cpuMicroseconds: 0)
        metrics.recordStartup(since: start, now: ProcessTimestamp(monotonicMicroseconds: 1234, cpuMicroseconds: 56))
        metrics.recordPause(microseconds: 789)
        metrics.attach(MetricsSources(exits: exits))
        let first = try parse(try XCTUnwrap(writtenLines(metrics).first))
        XCTAssertEqual(try group(first, "vcpu"), ["exit_io_in": 3, "exit_io_out": 4, "exit_mmio_read": 5, "exit_mmio_write": 6, "failures": 2])

        exit({ .portIn(port: 0x3F8, size: 1, count: 1, data: $0) }, times: 2)
        let second = try flushed(metrics)
        XCTAssertEqual(try group(second, "vcpu"), ["exit_io_in": 2, "exit_io_out": 0, "exit_mmio_read": 0, "exit_mmio_write": 0, "failures": 0],
                       "counters report what was counted since the last line")
        let third = try flushed(metrics)
        XCTAssertEqual(try group(third, "vcpu")["exit_io_in"], 0)
        // Values are the latest, every time.
        for line in [first, second, third] {
            XCTAssertEqual(try group(line, "api_server"), ["process_startup_time_us": 1234, "process_startup_time_cpu_us": 56])
            XCTAssertEqual(try group(line, "latencies_us"), ["pause_vm": 789, "resume_vm": 0])
        }
    }

    func testDisksAreReportedOneByOneAndSummed() throws {
        let guest = try DiskGuest()
        let rootfs = try disk("rootfs"), data = try disk("data")
        let metrics = try metrics()
        metrics.attach(MetricsSources(disks: [("rootfs", rootfs), ("data", data)]))
        _ = writtenLines(metrics)
        try guest.execute(VirtioBlockRequestType.input, on: rootfs, dataLength: 512)
        try guest.execute(VirtioBlockRequestType.flush, on: rootfs)
        try guest.execute(VirtioBlockRequestType.input, on: data, dataLength: 1024)
        try guest.execute(VirtioBlockRequestType.input, on: data, dataLength: 512)
        try guest.execute(99, on: data)   // unsupported
        let line = try flushed(metrics)
        let root = try group(line, "block_rootfs"), second = try group(line, "block_data"), sum = try group(line, "block")
        XCTAssertEqual(root["read_count"], 1)
        XCTAssertEqual(root["read_bytes"], 512)
        XCTAssertEqual(root["flush_count"], 1)
        XCTAssertEqual(second["read_count"], 2)
        XCTAssertEqual(second["read_bytes"], 1536)
        XCTAssertEqual(second["invalid_reqs_count"], 1)
        for field in Metrics.blockFields.map({ $0.description }) {
            XCTAssertEqual(sum[field], root[field]! + second[field]!, field)
        }
        XCTAssertEqual(sum["read_count"], 3)
        XCTAssertEqual(try group(try flushed(metrics), "block")["read_count"], 0)
    }

    func testARebootKeepsWhatTheOldVMCounted() throws {
        let metrics = try metrics()
        let before = ExitCounters()
        metrics.attach(MetricsSources(exits: before))
        _ = writtenLines(metrics)
        for _ in 0..<5 { before.count(.halt); before.count(.failEntry(hardwareReason: 0)) }
        XCTAssertEqual(try group(try flushed(metrics), "vcpu")["failures"], 5)
        for _ in 0..<2 { before.count(.unknown(reason: 99)) }
        // The guest reset: the old VM's threads are joined, a new VM comes with new counters.
        metrics.detach()
        let after = ExitCounters()
        after.count(.runFailed(errno: EIO))
        metrics.attach(MetricsSources(exits: after))
        XCTAssertEqual(writtenLines(metrics).count, 0, "only the first attach writes a line at once")
        XCTAssertEqual(try group(try flushed(metrics), "vcpu")["failures"], 3, "2 from the old VM, 1 from the new")
        XCTAssertEqual(try group(try flushed(metrics), "vcpu")["failures"], 0)
    }

    func testALineThatCannotBeQueuedKeepsItsCountsForTheNext() throws {
        let exits = ExitCounters()
        // A ring too small for any line: as if the destination had stalled for long.
        let metrics = Metrics(logger: Logger(fd: -1), capacity: 64)
        try metrics.configure(fd: writeEnd, closesDescriptor: false)
        metrics.attach(MetricsSources(exits: exits))
        for _ in 0..<4 { exits.count(.failEntry(hardwareReason: 1)) }
        XCTAssertEqual(metrics.flush(), .dropped)
        let (line, _) = metrics.render(utcTimestampMilliseconds: 0)
        let object = try parse(String(decoding: line, as: UTF8.self))
        XCTAssertEqual(try group(object, "vcpu")["failures"], 4, "nothing was reported yet")
        XCTAssertEqual(try group(object, "logger")["missed_metrics_count"], 2, "the first attach's line and the flush")
        XCTAssertEqual(metrics.finish(milliseconds: 1000), 2)
    }

    func testLoggerAndConsoleCounts() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]) }
        let logger = Logger(fd: fds[1], capacity: 256)
        logger.info(String(repeating: "z", count: 300))   // longer than the ring: dropped
        logger.info(String(repeating: "z", count: 300))
        let console = try ConsoleOutput(fd: fds[1], capacity: 4)
        for byte in "hello, world".utf8 { console.write(byte) }   // more than 4 bytes at once: some may drop
        console.finish(milliseconds: 5000)
        let metrics = try metrics(logger: logger)
        metrics.console = console
        XCTAssertEqual(metrics.flush(), .queued)
        let line = try parse(try XCTUnwrap(writtenLines(metrics).first))
        XCTAssertEqual(try group(line, "logger")["missed_log_count"], 2)
        let uart = try group(line, "uart")
        XCTAssertEqual(uart["write_count"], 12)
        XCTAssertEqual(uart["missed_write_count"], console.droppedBytes)
        let next = try flushed(metrics)
        XCTAssertEqual(try group(next, "logger")["missed_log_count"], 0)
        XCTAssertEqual(try group(next, "uart")["write_count"], 0)
        logger.finish(milliseconds: 1000)
        close(fds[1])
    }

    // MARK: when lines are written

    func testNothingIsWrittenBeforeADestinationIsConfigured() {
        let metrics = Metrics(logger: Logger(fd: -1))
        XCTAssertEqual(metrics.flush(), .notConfigured)
        metrics.attach(MetricsSources(exits: ExitCounters()))
        XCTAssertNil(metrics.nextDeadline)
        XCTAssertFalse(metrics.isConfigured)
    }

    func testTheMainLoopDrivesThePeriod() throws {
        let metrics = try metrics(interval: 60_000)
        let deadline = try XCTUnwrap(metrics.nextDeadline)
        XCTAssertGreaterThan(deadline, monotonicMilliseconds() + 59_000)
        XCTAssertEqual(metrics.pollDescriptors().count, 0)
        metrics.handleEvents([], now: deadline - 1)
        XCTAssertEqual(writtenLines(metrics).count, 0)
        metrics.handleEvents([], now: deadline)
        XCTAssertEqual(writtenLines(metrics).count, 1)
        XCTAssertEqual(metrics.nextDeadline, deadline + 60_000)
        // A main loop held up for several periods writes one line, not a burst.
        metrics.handleEvents([], now: deadline + 500_000)
        XCTAssertEqual(writtenLines(metrics).count, 1)
        XCTAssertEqual(metrics.nextDeadline, deadline + 500_001)
        // FlushMetrics writes at once and leaves the period alone.
        XCTAssertEqual(metrics.flush(), .queued)
        XCTAssertEqual(writtenLines(metrics).count, 1)
        XCTAssertEqual(metrics.nextDeadline, deadline + 500_001)
    }

    func testANamedPipeWithNoReaderYetTakesLines() throws {
        let fifo = directory.appendingPathComponent("metrics.fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let metrics = Metrics(logger: Logger(fd: -1))
        try metrics.configure(path: fifo)
        XCTAssertEqual(metrics.flush(), .queued)
        XCTAssertTrue(metrics.waitUntilWritten(milliseconds: 5000), "the pipe holds the line until a reader comes")
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        defer { close(reader) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { read(reader, $0.baseAddress, $0.count) }
        XCTAssertGreaterThan(n, 0)
        let line = String(decoding: buffer[0..<max(n, 0)], as: UTF8.self)
        XCTAssertTrue(line.hasSuffix("}\n"))
        XCTAssertNotNil(try parse(line)["vcpu"])
        XCTAssertEqual(metrics.finish(milliseconds: 1000), 0)
    }

    // MARK: startup

    /// The jailer's times, where given, are when the process started; its parent's CPU
    /// time counts as startup too (Firecracker adds it).
    func testTheProcessStartIsTheJailersWhenItPassedIt() throws {
        let measured = ProcessTimestamp(monotonicMicroseconds: 5_000, cpuMicroseconds: 700)
        let own = ProcessTimestamp.processStart(measured: measured, jailer: nil)
        XCTAssertEqual(own.monotonicMicroseconds, 5_000)
        XCTAssertEqual(own.cpuMicroseconds, 700)
        let jailed = ProcessTimestamp.processStart(
            measured: measured, jailer: ProcessStartTimes(startTimeUs: 1_000, startCPUTimeUs: 100, parentCPUTimeUs: 40))
        XCTAssertEqual(jailed.monotonicMicroseconds, 1_000)
        XCTAssertEqual(jailed.cpuMicroseconds, 60)
        let metrics = Metrics(logger: Logger(fd: -1))
        metrics.recordStartup(since: jailed, now: ProcessTimestamp(monotonicMicroseconds: 9_000, cpuMicroseconds: 500))
        let object = try parse(String(decoding: metrics.render(utcTimestampMilliseconds: 0).line, as: UTF8.self))
        XCTAssertEqual(try group(object, "api_server"), ["process_startup_time_us": 8_000, "process_startup_time_cpu_us": 440])
    }
}
