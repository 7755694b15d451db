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

    // MARK: huge pages

    func testHostAlignmentIsTheLargestHugePageTheRegionSpans() {
        XCTAssertEqual(GuestMemory.hostAlignment(forSize: 64 << 10, pageSize: 4096), 4096, "below 2 MiB: pages")
        XCTAssertEqual(GuestMemory.hostAlignment(forSize: (2 << 20) - 4096, pageSize: 4096), 4096)
        XCTAssertEqual(GuestMemory.hostAlignment(forSize: 2 << 20, pageSize: 4096), 2 << 20)
        XCTAssertEqual(GuestMemory.hostAlignment(forSize: 256 << 20, pageSize: 4096), 2 << 20)
        XCTAssertEqual(GuestMemory.hostAlignment(forSize: (1 << 30) - (2 << 20), pageSize: 4096), 2 << 20)
        XCTAssertEqual(GuestMemory.hostAlignment(forSize: 1 << 30, pageSize: 4096), 1 << 30)
        XCTAssertEqual(GuestMemory.hostAlignment(forSize: 64 << 30, pageSize: 4096), 1 << 30)
        XCTAssertEqual(GuestMemory.hostAlignment(forSize: 1 << 20, pageSize: 64 << 10), 64 << 10, "64 KiB host pages")
    }

    func testAlignedStartIsCongruentToTheGuestBaseAndInsideTheReservation() {
        let twoMiB: UInt64 = 2 << 20
        // arm64 RAM at 1 GiB: a host address on a 2 MiB boundary.
        XCTAssertEqual(GuestMemory.alignedStart(reservation: 0x7f12_3456_7000, guestBase: 0x4000_0000, alignment: twoMiB), 0x7f12_3460_0000)
        // Already aligned: no move.
        XCTAssertEqual(GuestMemory.alignedStart(reservation: 0x7f12_3440_0000, guestBase: 0, alignment: twoMiB), 0x7f12_3440_0000)
        // A guest base that is not itself aligned: the host address agrees with it modulo 2 MiB.
        XCTAssertEqual(GuestMemory.alignedStart(reservation: 0x7f00_0000_0000, guestBase: 0x10_1000, alignment: twoMiB), 0x7f00_0010_1000)
        // Every combination: start in [reservation, reservation + alignment), congruent, page aligned.
        for reservation in stride(from: UInt64(0x7f00_0000_0000), to: 0x7f00_0040_0000, by: 0x3_3000) {
            for guestBase in [UInt64(0), 0x1000, 0x4000_0000, 0x1_0000_0000, 0xFFFF_F000] {
                for alignment in [UInt64(4096), twoMiB, 1 << 30] {
                    let start = GuestMemory.alignedStart(reservation: reservation, guestBase: guestBase, alignment: alignment)
                    XCTAssertGreaterThanOrEqual(start, reservation)
                    XCTAssertLessThanOrEqual(start - reservation, alignment - 4096, "fits a reservation of size + alignment - page")
                    XCTAssertEqual(start % alignment, guestBase % alignment)
                    XCTAssertEqual(start % 4096, 0)
                }
            }
        }
    }

    func testGuestRAMIsMappedCongruentToItsGuestAddress() throws {
        for (base, size) in [(UInt64(0x4000_0000), UInt64(64 << 20)), (0, 6 << 20), (0x1_0000_0000, 2 << 20)] {
            let memory = try GuestMemory(regions: [.init(guestBase: base, size: size)])
            let host = UInt64(UInt(bitPattern: try memory.pointer(at: base, length: 1)))
            XCTAssertEqual(host % (2 << 20), base % (2 << 20), "guest 0x\(hex(base)) at host 0x\(hex(host))")
            try memory.store(UInt64(0x1234), at: base + size - 8)
            XCTAssertEqual(try memory.load(UInt64.self, at: base + size - 8), 0x1234, "the whole region is mapped")
        }
    }

    func testHugetlbWithoutEnoughReservedPagesFailsClearly() throws {
        let meminfo = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        let free = meminfo.split(separator: "\n").first { $0.hasPrefix("HugePages_Free:") }
            .flatMap { UInt64($0.split(separator: " ").last ?? "") } ?? 0
        // One page more than the host has free.
        let size = (free + 1) * GuestMemory.hugetlbPageSize
        XCTAssertThrowsError(try GuestMemory(regions: [.init(guestBase: 0x4000_0000, size: size)], hugePages: .twoMiB)) { error in
            XCTAssertTrue("\(error)".hasPrefix("--hugepages 2M: the host has fewer than \(free + 1) free 2 MiB huge pages"), "\(error)")
        }
        XCTAssertThrowsError(try GuestMemory(regions: [.init(guestBase: 0x4000_0000, size: 3 << 20)], hugePages: .twoMiB),
                             "a size that is not whole 2 MiB pages")
    }
}
