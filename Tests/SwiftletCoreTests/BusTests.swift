import XCTest
@testable import SwiftletCore

/// Records accesses; reads answer a byte pattern of its id.
final class RecordingDevice: BusDevice {
    let id: UInt8
    var reads: [UInt64] = []
    var writes: [(UInt64, [UInt8])] = []
    init(id: UInt8) { self.id = id }
    func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        reads.append(offset)
        for i in 0..<data.count { data[i] = id }
    }
    func write(offset: UInt64, data: UnsafeRawBufferPointer) { writes.append((offset, Array(data))) }
}

final class BusTests: XCTestCase {
    func testDispatchUsesOffsetFromBase() throws {
        let bus = Bus(name: "mmio")
        let a = RecordingDevice(id: 0xA), b = RecordingDevice(id: 0xB)
        try bus.insert(b, base: 0x0900_0000, size: 0x1000)
        try bus.insert(a, base: 0x0800_0000, size: 0x1000)
        var word: UInt32 = 0
        XCTAssertTrue(withUnsafeMutableBytes(of: &word) { bus.read(0x0900_0018, data: $0) })
        XCTAssertEqual(word, 0x0B0B_0B0B)
        XCTAssertEqual(b.reads, [0x18])
        XCTAssertTrue([UInt8(0x41)].withUnsafeBytes { bus.write(0x0800_0FFF, data: $0) })
        XCTAssertEqual(a.writes.first?.0, 0xFFF)
        XCTAssertEqual(a.writes.first?.1, [0x41])
    }

    func testUnmappedAccessIsReported() throws {
        let bus = Bus(name: "mmio")
        let device = RecordingDevice(id: 1)
        try bus.insert(device, base: 0x1000, size: 0x100)
        var byte: UInt8 = 0
        XCTAssertFalse(withUnsafeMutableBytes(of: &byte) { bus.read(0xFFF, data: $0) })
        XCTAssertFalse(withUnsafeMutableBytes(of: &byte) { bus.read(0x1100, data: $0) })
        XCTAssertFalse(withUnsafeMutableBytes(of: &byte) { bus.read(UInt64.max, data: $0) })
        XCTAssertFalse([UInt8](repeating: 0, count: 4).withUnsafeBytes { bus.write(0x10FE, data: $0) },
                       "an access that starts inside but runs past the end is not the device's")
        XCTAssertTrue(device.reads.isEmpty && device.writes.isEmpty)
        XCTAssertFalse(withUnsafeMutableBytes(of: &byte) { Bus(name: "empty").read(0, data: $0) })
    }

    func testOverlapsAreRejected() throws {
        let bus = Bus(name: "pio")
        try bus.insert(RecordingDevice(id: 1), base: 0x3F8, size: 8)
        for (base, size) in [(0x3F8, 8), (0x3F0, 9), (0x3FF, 1), (0x3F9, 2), (0x300, 0x200)] as [(UInt64, UInt64)] {
            XCTAssertThrowsError(try bus.insert(RecordingDevice(id: 2), base: base, size: size), "0x\(String(base, radix: 16))+\(size)")
        }
        XCTAssertNoThrow(try bus.insert(RecordingDevice(id: 3), base: 0x3F0, size: 8))
        XCTAssertNoThrow(try bus.insert(RecordingDevice(id: 4), base: 0x400, size: 8))
        XCTAssertThrowsError(try bus.insert(RecordingDevice(id: 5), base: 0x500, size: 0))
        XCTAssertThrowsError(try bus.insert(RecordingDevice(id: 6), base: UInt64.max, size: 2))
        XCTAssertNoThrow(try bus.insert(RecordingDevice(id: 7), base: UInt64.max, size: 1))
        XCTAssertEqual(bus.count, 4)
    }

    func testManyDevicesFindTheRightOne() throws {
        let bus = Bus(name: "mmio")
        var devices: [RecordingDevice] = []
        for i in 0..<64 {
            let device = RecordingDevice(id: UInt8(i))
            devices.append(device)
            try bus.insert(device, base: 0x0A00_0000 + UInt64((63 - i) * 0x200), size: 0x200)
        }
        for i in 0..<64 {
            var byte: UInt8 = 0xFF
            XCTAssertTrue(withUnsafeMutableBytes(of: &byte) { bus.read(0x0A00_0000 + UInt64(i * 0x200) + 0x1FF, data: $0) })
            XCTAssertEqual(byte, UInt8(63 - i))
        }
    }
}
