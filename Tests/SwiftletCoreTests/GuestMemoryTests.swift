import XCTest
@testable import SwiftletCore

final class GuestMemoryTests: XCTestCase {
    let page = GuestMemory.pageSize

    func testRegionOffsetAtEdges() {
        let region = GuestMemory.Region(guestBase: 0x4000_0000, size: 0x1000)
        XCTAssertEqual(region.offset(of: 0x4000_0000, length: 0x1000), 0)
        XCTAssertEqual(region.offset(of: 0x4000_0FFF, length: 1), 0xFFF)
        XCTAssertEqual(region.offset(of: 0x4000_1000, length: 0), 0x1000)
        XCTAssertNil(region.offset(of: 0x4000_0FFF, length: 2), "runs one byte past the end")
        XCTAssertNil(region.offset(of: 0x3FFF_FFFF, length: 1), "starts below the base")
        XCTAssertNil(region.offset(of: 0x4000_0000, length: 0x1001), "longer than the region")
        XCTAssertNil(region.offset(of: 0x4000_1000, length: 1), "starts at the end")
    }

    func testRegionOffsetDoesNotOverflowAtTopOfAddressSpace() {
        let top = GuestMemory.Region(guestBase: UInt64.max - 0xFFF, size: 0x1000)
        XCTAssertEqual(top.offset(of: UInt64.max, length: 1), 0xFFF)
        XCTAssertNil(top.offset(of: UInt64.max, length: 2), "address + length wraps around")
        XCTAssertNil(top.offset(of: UInt64.max - 0xFFF, length: UInt64.max))
        let low = GuestMemory.Region(guestBase: 0, size: 0x1000)
        XCTAssertNil(low.offset(of: 0x800, length: UInt64.max - 0x7FF), "huge length must not wrap to a small end")
        XCTAssertNil(low.offset(of: UInt64.max, length: 2))
    }

    func testAccessesInsideAndOutsideRAM() throws {
        let memory = try GuestMemory(regions: [.init(guestBase: 0x4000_0000, size: 4 * page)])
        try memory.store(UInt32(0xDEAD_BEEF), at: 0x4000_0000 + 4 * page - 4)
        XCTAssertEqual(try memory.load(UInt32.self, at: 0x4000_0000 + 4 * page - 4), 0xDEAD_BEEF)
        XCTAssertThrowsError(try memory.store(UInt64(1), at: 0x4000_0000 + 4 * page - 4)) { error in
            XCTAssertEqual(error as? SwiftletError, .outOfBounds(address: 0x4000_0000 + 4 * page - 4, length: 8))
        }
        XCTAssertThrowsError(try memory.load(UInt8.self, at: 0x3FFF_FFFF))
        XCTAssertThrowsError(try memory.write([1, 2, 3], at: UInt64.max - 1))
        XCTAssertFalse(memory.contains(0, length: 1))
        XCTAssertTrue(memory.contains(0x4000_0000, length: 4 * page))
    }

    func testLittleEndianStores() throws {
        let memory = try GuestMemory(regions: [.init(guestBase: 0, size: page)])
        try memory.store(UInt32(0x1122_3344), at: 0x10)
        var bytes = [UInt8](repeating: 0, count: 4)
        try bytes.withUnsafeMutableBytes { try memory.read(into: $0, at: 0x10) }
        XCTAssertEqual(bytes, [0x44, 0x33, 0x22, 0x11])
    }

    func testAccessMustLieInOneRegion() throws {
        let memory = try GuestMemory(regions: [.init(guestBase: 0, size: page), .init(guestBase: page, size: page)])
        XCTAssertTrue(memory.contains(page - 4, length: 4))
        XCTAssertFalse(memory.contains(page - 4, length: 8), "two host mappings are not contiguous")
        XCTAssertEqual(memory.totalSize, 2 * page)
    }

    func testValidationRejectsBadRegions() {
        XCTAssertThrowsError(try GuestMemory.validate([], pageSize: 4096))
        XCTAssertThrowsError(try GuestMemory.validate([.init(guestBase: 0, size: 0)], pageSize: 4096))
        XCTAssertThrowsError(try GuestMemory.validate([.init(guestBase: 0x800, size: 4096)], pageSize: 4096))
        XCTAssertThrowsError(try GuestMemory.validate([.init(guestBase: 0, size: 4097)], pageSize: 4096))
        XCTAssertThrowsError(try GuestMemory.validate([.init(guestBase: 0, size: 8192), .init(guestBase: 4096, size: 4096)], pageSize: 4096))
        // Page aligned, so only the wrap guard can refuse it: its last page would lie past 2^64.
        XCTAssertThrowsError(try GuestMemory.validate([.init(guestBase: UInt64.max - 4095, size: 8192)], pageSize: 4096)) {
            XCTAssertEqual("\($0)", "guest memory region at 0xfffffffffffff000 runs past the top of the address space")
        }
        // Ending on the last byte of the address space is fine: the guard is not off by one.
        XCTAssertNoThrow(try GuestMemory.validate([.init(guestBase: UInt64.max - 8191, size: 8192)], pageSize: 4096))
        XCTAssertNoThrow(try GuestMemory.validate([.init(guestBase: 0x4000_0000, size: 8192), .init(guestBase: 0, size: 4096)], pageSize: 4096))
        // 64 KiB pages (arm64 hosts may use them): a 4 KiB-aligned region is refused there.
        XCTAssertThrowsError(try GuestMemory.validate([.init(guestBase: 0x1000, size: 0x10000)], pageSize: 0x10000))
    }
}
