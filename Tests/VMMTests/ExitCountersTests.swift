import KVM
import XCTest
@testable import SwiftletCore
@testable import VMM

/// A device that answers zeros and ignores writes.
private final class NullDevice: BusDevice {
    func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) { for i in 0..<data.count { data[i] = 0 } }
    func write(offset: UInt64, data: UnsafeRawBufferPointer) {}
}

final class ExitCountersTests: XCTestCase {
    func testExitsAreCountedByKindAndAccessesByDevice() throws {
        let counters = ExitCounters()
        let mmio = Bus(name: "mmio"), pio = Bus(name: "pio")
        try mmio.insert(NullDevice(), base: 0x0900_0000, size: 0x1000, name: "PL011 UART")
        try mmio.insert(NullDevice(), base: 0x0901_0000, size: 0x1000, name: "PL031 RTC")
        var word: UInt32 = 0
        for _ in 0..<3 {
            withUnsafeMutableBytes(of: &word) { data in
                counters.count(.mmioRead(address: 0x0900_0018, data: data))
                _ = mmio.read(0x0900_0018, data: data)
            }
        }
        [UInt8(0x41)].withUnsafeBytes { data in
            counters.count(.mmioWrite(address: 0x0900_0000, data: data))
            _ = mmio.write(0x0900_0000, data: data)
            // Outside every device: counted as an exit and as unclaimed, not as a device access.
            counters.count(.mmioWrite(address: 0x0800_0000, data: data))
            if !mmio.write(0x0800_0000, data: data) { counters.countUnclaimedMMIO() }
        }
        counters.count(.interrupted)
        counters.count(.systemEvent(.shutdown))
        counters.count(.runFailed(errno: 4))
        counters.count(.malformed)
        counters.countMalformedExit()

        XCTAssertEqual(counters.exits(.mmioRead), 3)
        XCTAssertEqual(counters.exits(.mmioWrite), 2)
        XCTAssertEqual(counters.exits(.failure), 1)
        XCTAssertEqual(counters.totalExits, 8, "a malformed exit is counted apart")
        XCTAssertEqual(counters.report(buses: [mmio, pio]), [
            "8 exits: mmio-read 3, mmio-write 2, pio-in 0, pio-out 0, interrupted 1, halt 0, shutdown 0, system-event 1, failure 1",
            "unclaimed mmio 1, unclaimed pio 0, malformed exits 1",
            "mmio 0x9000000 PL011 UART: 3 reads, 1 writes",
        ], "the RTC, which no access reached, is left out")
    }
}
