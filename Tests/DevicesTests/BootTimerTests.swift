import XCTest
@testable import Devices

/// A clock the test sets, and the signals the device sends.
private final class FakeHost {
    var now = BootTimer.Reading(monotonicNanoseconds: 0, cpuNanoseconds: 0)
    var readings = 0
    var signals = 0
}

final class BootTimerTests: XCTestCase {
    private func timer(_ host: FakeHost, origin: BootTimer.Origin = .init(monotonicMicroseconds: 1_000, cpuMicroseconds: 0),
                       armed: Bool = true) -> BootTimer {
        BootTimer(origin: origin, armed: armed, clock: { host.readings += 1; return host.now }, signal: { host.signals += 1 })
    }

    private func write(_ bytes: [UInt8], at offset: UInt64 = 0, to device: BootTimer) {
        bytes.withUnsafeBytes { device.write(offset: offset, data: $0) }
    }

    func testTheFirst123IsTimedFromTheOriginAndReportedOnce() {
        let host = FakeHost()
        let device = timer(host)
        XCTAssertNil(device.takeReport(), "nothing before the guest's write")
        host.now = .init(monotonicNanoseconds: 1_000_000 + 123_456_789, cpuNanoseconds: 45_678_999)
        write([123], to: device)
        XCTAssertEqual(host.signals, 1)
        XCTAssertTrue(device.hasFired)
        // The time is the write's, not the report's.
        host.now = .init(monotonicNanoseconds: 9_000_000_000, cpuNanoseconds: 9_000_000_000)
        let report = device.takeReport()
        XCTAssertEqual(report, BootTime(microseconds: 123_456, cpuMicroseconds: 45_678))
        XCTAssertNil(device.takeReport(), "taken once")
        XCTAssertEqual(report?.message, "Guest-boot-time = 123456 us 123 ms, 45678 CPU us 45 CPU ms")
        XCTAssertEqual(report?.firecrackerMessage, "Guest-boot-time = 123456 us 123 ms,  45678 CPU us 45 CPU ms")
    }

    func testLaterWritesOf123AreCountedNotReported() {
        let host = FakeHost()
        let device = timer(host)
        for _ in 0..<5 { write([123], to: device) }
        XCTAssertEqual(host.readings, 1, "the clocks are read once")
        XCTAssertEqual(host.signals, 1)
        XCTAssertNotNil(device.takeReport())
        write([123], to: device)
        XCTAssertNil(device.takeReport())
        XCTAssertEqual(device.repeatedSignals, 5)
        XCTAssertEqual(device.ignoredWrites, 0)
    }

    func testOtherValuesOffsetsAndWidthsAreIgnoredAndCounted() {
        let host = FakeHost()
        let device = timer(host)
        write([0], to: device)
        write([122], to: device)
        write([0xFF], to: device)
        write([123], at: 1, to: device)
        write([123], at: 0xFFF, to: device)
        write([123, 0], to: device)               // 16-bit write of 123: not a byte
        write([123, 0, 0, 0], to: device)
        write([123, 0, 0, 0, 0, 0, 0, 0], to: device)
        XCTAssertEqual(device.ignoredWrites, 8)
        XCTAssertEqual(host.signals, 0)
        XCTAssertEqual(host.readings, 0)
        XCTAssertFalse(device.hasFired)
        XCTAssertNil(device.takeReport())
        write([123], to: device)
        XCTAssertNotNil(device.takeReport(), "still armed after the noise")
    }

    func testReadsReturnZeroAtAnyWidth() {
        let device = timer(FakeHost())
        write([123], to: device)
        for (offset, width) in [(0, 1), (0, 2), (0, 4), (0, 8), (4, 4), (0xFF8, 8)] as [(UInt64, Int)] {
            var bytes = [UInt8](repeating: 0xAA, count: width)
            bytes.withUnsafeMutableBytes { device.read(offset: offset, data: $0) }
            XCTAssertEqual(bytes, [UInt8](repeating: 0, count: width), "offset \(offset) width \(width)")
        }
    }

    func testAnUnarmedTimerNeverReports() {
        let host = FakeHost()
        let device = timer(host, armed: false)
        write([123], to: device)
        write([123], to: device)
        XCTAssertEqual(host.signals, 0)
        XCTAssertEqual(host.readings, 0)
        XCTAssertNil(device.takeReport())
        XCTAssertFalse(device.hasFired)
        XCTAssertEqual(device.repeatedSignals, 2)
    }

    /// The jailer's origin: CPU since its exec of the VMM plus its own CPU time; a start in
    /// the future (a bogus --start-time-us) gives 0, not a wrapped number.
    func testJailerOriginAndAStartInTheFuture() {
        let host = FakeHost()
        let jailed = timer(host, origin: .init(monotonicMicroseconds: 5_000, cpuMicroseconds: 300, earlierCPUMicroseconds: 700))
        host.now = .init(monotonicNanoseconds: 8_000_000, cpuNanoseconds: 2_300_000)
        write([123], to: jailed)
        XCTAssertEqual(jailed.takeReport(), BootTime(microseconds: 3_000, cpuMicroseconds: 2_700))
        let future = timer(host, origin: .init(monotonicMicroseconds: 9_000_000, cpuMicroseconds: 9_000_000))
        write([123], to: future)
        XCTAssertEqual(future.takeReport(), BootTime(microseconds: 0, cpuMicroseconds: 0))
    }

    /// Several vCPUs writing 123 at once: one is timed, the rest are repeats.
    func testRacingWritersAreTimedOnce() {
        let signals = ManagedAtomicCounter()
        let device = BootTimer(origin: .init(monotonicMicroseconds: 0, cpuMicroseconds: 0), signal: { signals.increment() })
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<1000 { [UInt8(123)].withUnsafeBytes { device.write(offset: 0, data: $0) } }
        }
        XCTAssertEqual(signals.value, 1)
        XCTAssertEqual(device.repeatedSignals, 7999)
        XCTAssertNotNil(device.takeReport())
    }

    func testTheHostClockReadsBothClocks() {
        let first = BootTimer.hostClock()
        var spin: UInt64 = 0
        for i in 0..<200_000 { spin &+= UInt64(i) }
        let second = BootTimer.hostClock()
        XCTAssertGreaterThan(second.monotonicNanoseconds, first.monotonicNanoseconds)
        XCTAssertGreaterThan(first.cpuNanoseconds, 0, "this process has used CPU time (\(spin))")
        XCTAssertGreaterThanOrEqual(second.cpuNanoseconds, first.cpuNanoseconds)
    }

    func testPaddingIsFirecrackersSixColumns() {
        XCTAssertEqual(BootTime.padded(0), "     0")
        XCTAssertEqual(BootTime.padded(12345), " 12345")
        XCTAssertEqual(BootTime.padded(1_234_567), "1234567")
        XCTAssertEqual(BootTime(microseconds: 999, cpuMicroseconds: 5).message, "Guest-boot-time = 999 us 0 ms, 5 CPU us 0 CPU ms")
    }
}

private final class ManagedAtomicCounter {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
