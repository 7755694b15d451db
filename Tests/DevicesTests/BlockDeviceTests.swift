import Foundation
import XCTest
@testable import Devices
import SwiftletCore

/// Guest RAM with a bump allocator, for building descriptor chains by hand.
final class BlockGuest {
    static let base: UInt64 = 0x4000_0000
    let memory: GuestMemory
    private var next = BlockGuest.base

    init(size: UInt64 = 4 << 20) throws {
        memory = try GuestMemory(regions: [.init(guestBase: BlockGuest.base, size: size)])
    }

    /// Copies `bytes` into fresh guest memory (8-byte aligned, with a gap so that a buffer
    /// overrun would be seen) and returns its segment.
    func place(_ bytes: [UInt8]) throws -> DescriptorSegment {
        let address = next
        let stride = (bytes.count + 15) & ~7
        next += UInt64(stride)
        try memory.write(bytes + [UInt8](repeating: 0xEE, count: stride - bytes.count), at: address)
        return DescriptorSegment(address: address, length: UInt32(bytes.count))
    }

    /// A writable buffer of `count` bytes pre-filled with `fill`.
    func reserve(_ count: Int, fill: UInt8 = 0xEE) throws -> DescriptorSegment {
        try place([UInt8](repeating: fill, count: count))
    }

    func bytes(_ segment: DescriptorSegment) throws -> [UInt8] {
        try bytes(at: segment.address, count: Int(segment.length))
    }

    func bytes(at address: UInt64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try memory.read(into: $0, at: address) }
        return bytes
    }
}

func blockHeader(_ type: UInt32, sector: UInt64 = 0, reserved: UInt32 = 0) -> [UInt8] {
    littleEndianBytes(type) + littleEndianBytes(reserved) + littleEndianBytes(sector)
}

func blockRange(sector: UInt64, sectors: UInt32, flags: UInt32 = 0) -> [UInt8] {
    littleEndianBytes(sector) + littleEndianBytes(sectors) + littleEndianBytes(flags)
}

func makeChain(head: UInt16 = 0, readable: [DescriptorSegment], writable: [DescriptorSegment]) -> DescriptorChain {
    var chain = DescriptorChain()
    chain.head = head
    chain.readable = readable
    chain.writable = writable
    chain.readableLength = readable.reduce(0) { $0 + UInt64($1.length) }
    chain.writableLength = writable.reduce(0) { $0 + UInt64($1.length) }
    return chain
}

final class BlockRequestTests: XCTestCase {
    var guest: BlockGuest!

    override func setUpWithError() throws { guest = try BlockGuest() }

    func parse(_ chain: DescriptorChain, capacity: UInt64 = 1024, readOnly: Bool = false) -> BlockRequest? {
        BlockRequest.parse(chain, memory: guest.memory, capacity: capacity, readOnly: readOnly)
    }

    /// header (+ extra readable bytes) in one segment, then `dataLength` writable bytes,
    /// then a 1-byte status segment.
    func simple(_ type: UInt32, sector: UInt64 = 0, readableData: [UInt8] = [], writableData: Int = 0) throws -> DescriptorChain {
        var writable: [DescriptorSegment] = []
        if writableData > 0 { writable.append(try guest.reserve(writableData)) }
        writable.append(try guest.reserve(1))
        return makeChain(readable: [try guest.place(blockHeader(type, sector: sector) + readableData)], writable: writable)
    }

    func status(_ chain: DescriptorChain, capacity: UInt64 = 1024, readOnly: Bool = false) -> UInt8? {
        guard case .fail(let status)? = parse(chain, capacity: capacity, readOnly: readOnly)?.operation else { return nil }
        return status
    }

    func testEveryType() throws {
        let read = parse(try simple(VirtioBlockRequestType.input, sector: 7, writableData: 1024))
        XCTAssertEqual(read, BlockRequest(type: 0, operation: .read(sector: 7, length: 1024), statusOffset: 1024))
        let write = parse(try simple(VirtioBlockRequestType.output, sector: 9, readableData: [UInt8](repeating: 1, count: 512)))
        XCTAssertEqual(write, BlockRequest(type: 1, operation: .write(sector: 9, length: 512), statusOffset: 0))
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.flush, sector: 99))?.operation, .flush,
                       "flush ignores the sector")
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.getID, writableData: 20))?.operation, .getID(length: 20))
        let discard = parse(try simple(VirtioBlockRequestType.discard, sector: 1000, readableData: blockRange(sector: 8, sectors: 16)))
        XCTAssertEqual(discard?.operation, .discard(sector: 8, sectors: 16), "the range's sector, not the header's")
        let zeroes = parse(try simple(VirtioBlockRequestType.writeZeroes,
                                      readableData: blockRange(sector: 16, sectors: 8, flags: VirtioBlock.writeZeroesFlagUnmap)))
        XCTAssertEqual(zeroes?.operation, .writeZeroes(sector: 16, sectors: 8, unmap: true))
        let plain = parse(try simple(VirtioBlockRequestType.writeZeroes, readableData: blockRange(sector: 16, sectors: 8)))
        XCTAssertEqual(plain?.operation, .writeZeroes(sector: 16, sectors: 8, unmap: false))
        for type: UInt32 in [2, 3, 5, 7, 9, 10, 12, 14, 15, 16, 0x8000_0000, UInt32.max] {
            let request = parse(try simple(type, writableData: 512))
            XCTAssertEqual(request?.operation, .fail(status: VirtioBlockStatus.unsupported), "type \(type)")
            XCTAssertEqual(request?.type, type)
            XCTAssertEqual(request?.statusOffset, 512)
        }
    }

    func testZeroLengthReadAndWriteAreValid() throws {
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.input, sector: 1024))?.operation, .read(sector: 1024, length: 0))
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.output, sector: 1024))?.operation, .write(sector: 1024, length: 0))
    }

    func testHeaderSpanningSegments() throws {
        let header = blockHeader(VirtioBlockRequestType.output, sector: 0x1_0000_0003)
        let data = [UInt8](repeating: 0x77, count: 1024)
        // 16 header bytes cut 5 + 7 + 4, the last segment also carrying data.
        let bytes = header + data
        let readable = [try guest.place(Array(bytes[0..<5])), try guest.place(Array(bytes[5..<12])),
                        try guest.place(Array(bytes[12..<600])), try guest.place(Array(bytes[600...]))]
        let chain = makeChain(readable: readable, writable: [try guest.reserve(1)])
        XCTAssertEqual(parse(chain, capacity: 0x2_0000_0000)?.operation, .write(sector: 0x1_0000_0003, length: 1024))
        // An IN header split byte by byte, and the status sharing a segment with data.
        let inHeader = blockHeader(VirtioBlockRequestType.input, sector: 5)
        let single = try inHeader.map { try guest.place([$0]) }
        let inChain = makeChain(readable: single, writable: [try guest.reserve(100), try guest.reserve(413)])
        XCTAssertEqual(parse(inChain), BlockRequest(type: 0, operation: .read(sector: 5, length: 512), statusOffset: 512))
    }

    func testDiscardRangeSpanningSegments() throws {
        let bytes = blockHeader(VirtioBlockRequestType.discard) + blockRange(sector: 4, sectors: 4)
        let chain = makeChain(readable: [try guest.place(Array(bytes[0..<20])), try guest.place(Array(bytes[20...]))],
                              writable: [try guest.reserve(1)])
        XCTAssertEqual(parse(chain)?.operation, .discard(sector: 4, sectors: 4))
    }

    func testNoWritableByteCannotBeAnswered() throws {
        let chain = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.flush))], writable: [])
        XCTAssertNil(parse(chain))
        XCTAssertNil(parse(makeChain(readable: [], writable: [])))
    }

    func testShortHeaderIsAnIOError() throws {
        let chain = makeChain(readable: [try guest.place(Array(blockHeader(VirtioBlockRequestType.input)[0..<15]))],
                              writable: [try guest.reserve(513)])
        XCTAssertEqual(parse(chain), BlockRequest(type: nil, operation: .fail(status: VirtioBlockStatus.ioError), statusOffset: 512))
        // The header must be readable: writable bytes do not count.
        let onlyWritable = makeChain(readable: [], writable: [try guest.place(blockHeader(VirtioBlockRequestType.flush) + [0])])
        XCTAssertEqual(status(onlyWritable), VirtioBlockStatus.ioError)
    }

    func testHeaderOutsideGuestMemoryIsAnIOError() {
        let chain = makeChain(readable: [DescriptorSegment(address: 0x1000, length: 16)],
                              writable: [DescriptorSegment(address: BlockGuest.base, length: 1)])
        XCTAssertEqual(status(chain), VirtioBlockStatus.ioError)
    }

    func testLengthsNotWholeSectors() throws {
        for length in [1, 511, 513, 1000] {
            XCTAssertEqual(status(try simple(VirtioBlockRequestType.input, writableData: length)), VirtioBlockStatus.ioError)
            XCTAssertEqual(status(try simple(VirtioBlockRequestType.output, readableData: [UInt8](repeating: 0, count: length))),
                           VirtioBlockStatus.ioError)
        }
        // Discard / write zeroes: the ranges must be whole 16-byte structs, at least one.
        for extra in [0, 8, 15, 17] {
            let chain = try simple(VirtioBlockRequestType.discard, readableData: [UInt8](repeating: 0, count: extra))
            XCTAssertEqual(status(chain), VirtioBlockStatus.ioError, "\(extra) range bytes")
        }
    }

    func testOutOfRangeSectors() throws {
        let capacity: UInt64 = 8
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.input, sector: 7, writableData: 512), capacity: capacity)?.operation,
                       .read(sector: 7, length: 512), "the last sector")
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.input, sector: 7, writableData: 1024), capacity: capacity),
                       VirtioBlockStatus.ioError)
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.input, sector: 8, writableData: 512), capacity: capacity),
                       VirtioBlockStatus.ioError)
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.output, sector: 9), capacity: capacity), VirtioBlockStatus.ioError)
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.discard, readableData: blockRange(sector: 4, sectors: 5)),
                              capacity: capacity), VirtioBlockStatus.ioError)
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.writeZeroes, readableData: blockRange(sector: 4, sectors: 4)),
                             capacity: capacity)?.operation, .writeZeroes(sector: 4, sectors: 4, unmap: false))
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.input, writableData: 512), capacity: 0), VirtioBlockStatus.ioError)
    }

    func testNoOverflowNearUInt64Max() throws {
        // sector * 512 and sector + count would wrap; none of it may pass.
        for sector: UInt64 in [UInt64.max, UInt64.max - 1, UInt64.max >> 9, (UInt64.max >> 9) + 1, 1 << 55, 1 << 63] {
            XCTAssertEqual(status(try simple(VirtioBlockRequestType.input, sector: sector, writableData: 1024)),
                           VirtioBlockStatus.ioError, "sector \(sector)")
            XCTAssertEqual(status(try simple(VirtioBlockRequestType.writeZeroes,
                                             readableData: blockRange(sector: sector, sectors: 0x3F_FFFF))),
                           VirtioBlockStatus.ioError, "sector \(sector)")
        }
        // With a capacity at the very top, the check is still exact.
        let top = UInt64.max
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.input, sector: top - 2, writableData: 1024), capacity: top)?.operation,
                       .read(sector: top - 2, length: 1024))
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.input, sector: top - 1, writableData: 1024), capacity: top),
                       VirtioBlockStatus.ioError)
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.discard, readableData: blockRange(sector: top, sectors: 1)),
                              capacity: top), VirtioBlockStatus.ioError)
    }

    func testRangeLimitsAndFlags() throws {
        let capacity: UInt64 = 1 << 40
        let max = VirtioBlock.maxDiscardSectors
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.discard, readableData: blockRange(sector: 0, sectors: max)),
                             capacity: capacity)?.operation, .discard(sector: 0, sectors: max))
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.discard, readableData: blockRange(sector: 0, sectors: max + 1)),
                              capacity: capacity), VirtioBlockStatus.ioError)
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.writeZeroes,
                                         readableData: blockRange(sector: 0, sectors: VirtioBlock.maxWriteZeroesSectors + 1)),
                              capacity: capacity), VirtioBlockStatus.ioError)
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.discard, readableData: blockRange(sector: 0, sectors: 1, flags: 1))),
                       VirtioBlockStatus.unsupported, "UNMAP means nothing to discard")
        for flags: UInt32 in [2, 3, 0x8000_0000] {
            XCTAssertEqual(status(try simple(VirtioBlockRequestType.writeZeroes,
                                             readableData: blockRange(sector: 0, sectors: 1, flags: flags))),
                           VirtioBlockStatus.unsupported, "flags \(flags)")
        }
        let two = blockRange(sector: 0, sectors: 1) + blockRange(sector: 8, sectors: 1)
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.discard, readableData: two)), VirtioBlockStatus.unsupported,
                       "more ranges than max_discard_seg")
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.writeZeroes, readableData: two)), VirtioBlockStatus.unsupported)
    }

    func testReadOnlyRefusals() throws {
        let data = [UInt8](repeating: 0, count: 512)
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.output, readableData: data), readOnly: true), VirtioBlockStatus.ioError)
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.discard, readableData: blockRange(sector: 0, sectors: 1)), readOnly: true),
                       VirtioBlockStatus.ioError)
        XCTAssertEqual(status(try simple(VirtioBlockRequestType.writeZeroes, readableData: blockRange(sector: 0, sectors: 1)),
                              readOnly: true), VirtioBlockStatus.ioError)
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.input, writableData: 512), readOnly: true)?.operation,
                       .read(sector: 0, length: 512))
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.flush), readOnly: true)?.operation, .flush)
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.getID, writableData: 20), readOnly: true)?.operation, .getID(length: 20))
    }

    func testGetIDLengths() throws {
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.getID, writableData: 64))?.operation, .getID(length: 20))
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.getID, writableData: 5))?.operation, .getID(length: 5))
        XCTAssertEqual(parse(try simple(VirtioBlockRequestType.getID))?.operation, .getID(length: 0))
    }

    func testExtraBytesAreIgnored() throws {
        // Readable bytes after an IN header and writable bytes before an OUT status carry
        // nothing; the status is still the last writable byte.
        let read = try simple(VirtioBlockRequestType.input, readableData: [1, 2, 3], writableData: 512)
        XCTAssertEqual(parse(read)?.operation, .read(sector: 0, length: 512))
        let write = try simple(VirtioBlockRequestType.output, readableData: [UInt8](repeating: 0, count: 512), writableData: 7)
        XCTAssertEqual(parse(write), BlockRequest(type: 1, operation: .write(sector: 0, length: 512), statusOffset: 7))
    }
}

final class BlockDeviceTests: XCTestCase {
    var directory: URL!
    var guest: BlockGuest!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-blk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        guest = try BlockGuest()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func imagePath(_ name: String = "disk.img", size: Int, fill: UInt8 = 0) throws -> String {
        let path = directory.appendingPathComponent(name).path
        try Data(repeating: fill, count: size).write(to: URL(fileURLWithPath: path))
        return path
    }

    func makeDevice(size: Int = 64 * 512, fill: UInt8 = 0, readOnly: Bool = false, serial: String = "swiftlet-disk-0") throws
        -> (BlockDevice, String) {
        let path = try imagePath(size: size, fill: fill)
        return (BlockDevice(image: try DiskImage.open(path, readOnly: readOnly), serial: serial), path)
    }

    func config(_ device: BlockDevice, at offset: UInt64, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xEE, count: count)
        bytes.withUnsafeMutableBytes { device.readConfig(at: offset, into: $0) }
        return bytes
    }

    func config32(_ device: BlockDevice, _ offset: UInt64) -> UInt32 {
        UInt32(readLE32(config(device, at: offset, count: 4), at: 0))
    }

    func fileBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    // MARK: identity and configuration

    func testFeaturesOfAWritableAndAReadOnlyDisk() throws {
        let (writable, _) = try makeDevice()
        XCTAssertEqual(writable.deviceID, 2)
        XCTAssertEqual(writable.queueSizes, [256])
        XCTAssertEqual(writable.deviceFeatures, VirtioBlockFeature.sizeMax | VirtioBlockFeature.segMax | VirtioBlockFeature.blockSize | VirtioBlockFeature.flush
                       | VirtioBlockFeature.discard | VirtioBlockFeature.writeZeroes)
        XCTAssertEqual(writable.deviceFeatures, (1 << 1) | (1 << 2) | (1 << 6) | (1 << 9) | (1 << 13) | (1 << 14))
        let path = try imagePath("ro.img", size: 4096)
        let readOnly = BlockDevice(image: try DiskImage.open(path, readOnly: true), serial: "")
        XCTAssertEqual(readOnly.deviceFeatures, (1 << 1) | (1 << 2) | (1 << 5) | (1 << 6) | (1 << 9))
    }

    func testConfigSpaceLayout() throws {
        let (device, _) = try makeDevice(size: 6 * 1024 * 1024 * 1024 / 1024)   // 6 MiB
        let bytes = config(device, at: 0, count: Int(VirtioBlockConfig.size))
        XCTAssertEqual(readLE64(bytes, at: 0), 6 * 2048, "capacity in sectors")
        XCTAssertEqual(readLE32(bytes, at: 8), 1 << 20, "size_max: 1 MiB segments")
        XCTAssertEqual(readLE32(bytes, at: 12), 254, "seg_max")
        XCTAssertEqual(readLE32(bytes, at: 16), 0, "geometry: not offered")
        XCTAssertEqual(readLE32(bytes, at: 20), 512, "blk_size")
        XCTAssertEqual(readLE64(bytes, at: 24), 0, "topology: not offered")
        XCTAssertEqual(bytes[32], 0, "writeback: no CONFIG_WCE")
        XCTAssertEqual(bytes[33], 0)
        XCTAssertEqual(readLE16(bytes, at: 34), 1, "num_queues")
        XCTAssertEqual(readLE32(bytes, at: 36), 0x3F_FFFF, "max_discard_sectors")
        XCTAssertEqual(readLE32(bytes, at: 40), 1, "max_discard_seg")
        XCTAssertEqual(readLE32(bytes, at: 44), 8, "discard_sector_alignment")
        XCTAssertEqual(readLE32(bytes, at: 48), 0x3F_FFFF, "max_write_zeroes_sectors")
        XCTAssertEqual(readLE32(bytes, at: 52), 1, "max_write_zeroes_seg")
        XCTAssertEqual(bytes[56], 1, "write_zeroes_may_unmap")
        XCTAssertEqual(Array(bytes[57..<60]), [0, 0, 0])
    }

    func testConfigAnyOffsetAndWidthPastTheEndAndWrites() throws {
        let (device, _) = try makeDevice(size: (5 << 30) / 1024)   // 5 MiB = 10240 sectors = 0x2800
        XCTAssertEqual(config(device, at: 1, count: 2), [0x28, 0x00], "unaligned slice of capacity")
        XCTAssertEqual(config(device, at: 6, count: 8), [0, 0, 0, 0, 0x10, 0, 0xFE, 0], "across capacity, size_max, seg_max")
        XCTAssertEqual(config(device, at: 58, count: 8), [UInt8](repeating: 0, count: 8), "past the end reads zero")
        XCTAssertEqual(config(device, at: 0x1000, count: 4), [0, 0, 0, 0])
        XCTAssertEqual(config(device, at: UInt64.max - 1, count: 8), [UInt8](repeating: 0, count: 8), "no wrap to offset 0")
        [UInt8](repeating: 0xFF, count: 64).withUnsafeBytes { device.writeConfig(at: 0, from: $0) }
        [UInt8](repeating: 0xFF, count: 1).withUnsafeBytes { device.writeConfig(at: 32, from: $0) }
        XCTAssertEqual(config(device, at: 0, count: 8), littleEndianBytes(UInt64(10240)), "writes are ignored")
        XCTAssertEqual(config(device, at: 32, count: 1), [0])
    }

    func testReadOnlyConfigHasNoDiscardFields() throws {
        let path = try imagePath("ro.img", size: 4096)
        let device = BlockDevice(image: try DiskImage.open(path, readOnly: true), serial: "ro")
        XCTAssertEqual(config32(device, 12), 254)
        XCTAssertEqual(config(device, at: 36, count: 24), [UInt8](repeating: 0, count: 24))
    }

    func testCapacityIgnoresATrailingPartialSector() throws {
        let (device, _) = try makeDevice(size: 3 * 512 + 100)
        XCTAssertEqual(device.capacity, 3)
        XCTAssertEqual(readLE64(config(device, at: 0, count: 8), at: 0), 3)
        let tiny = BlockDevice(image: try DiskImage.open(try imagePath("tiny.img", size: 511), readOnly: false), serial: "")
        XCTAssertEqual(tiny.capacity, 0)
    }

    func testCapacityOfAnImageOver4GiB() throws {
        let path = directory.appendingPathComponent("big.img").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil))
        let size: UInt64 = (6 << 30) + 512
        XCTAssertEqual(truncate(path, off_t(size)), 0)
        let device = BlockDevice(image: try DiskImage.open(path, readOnly: false), serial: "big")
        XCTAssertEqual(device.capacity, size / 512)
        XCTAssertEqual(readLE64(config(device, at: 0, count: 8), at: 0), size / 512)
        // A write to the last sector and a read back through the device.
        let last = size / 512 - 1
        let data = [UInt8](repeating: 0x3C, count: 512)
        let write = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.output, sector: last) + data)],
                              writable: [try guest.reserve(1)])
        XCTAssertEqual(device.execute(write, memory: guest.memory), 1)
        XCTAssertEqual(try guest.bytes(write.writable[0]), [VirtioBlockStatus.ok])
        let buffer = try guest.reserve(513)
        let read = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.input, sector: last))], writable: [buffer])
        XCTAssertEqual(device.execute(read, memory: guest.memory), 513)
        XCTAssertEqual(try guest.bytes(buffer), data + [VirtioBlockStatus.ok])
        let past = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.input, sector: last + 1))],
                             writable: [try guest.reserve(513)])
        XCTAssertEqual(device.execute(past, memory: guest.memory), 1)
        XCTAssertEqual(try guest.bytes(at: past.writable[0].address + 512, count: 1), [VirtioBlockStatus.ioError])
    }

    // MARK: requests on a real image

    func testWriteThenReadAcrossOddSegments() throws {
        let (device, path) = try makeDevice(fill: 0x00)
        let data = (0..<2048).map { UInt8(truncatingIfNeeded: $0 * 13 + 1) }
        // OUT: header and the first 100 data bytes share a segment; the rest in uneven pieces.
        let bytes = blockHeader(VirtioBlockRequestType.output, sector: 3) + data
        let readable = [try guest.place(Array(bytes[0..<116])), try guest.place(Array(bytes[116..<1000])),
                        try guest.place(Array(bytes[1000...]))]
        let write = makeChain(head: 4, readable: readable, writable: [try guest.reserve(1)])
        XCTAssertEqual(device.execute(write, memory: guest.memory), 1)
        XCTAssertEqual(try guest.bytes(write.writable[0]), [VirtioBlockStatus.ok])
        XCTAssertEqual(Array(try fileBytes(path)[(3 * 512)..<(3 * 512 + 2048)]), data)
        XCTAssertEqual(device.bytesWritten, 2048)

        // IN: data in three writable segments, the last also holding the status byte.
        let first = try guest.reserve(300), second = try guest.reserve(1000), last = try guest.reserve(749)
        let read = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.input, sector: 3))],
                             writable: [first, second, last])
        XCTAssertEqual(device.execute(read, memory: guest.memory), 2049, "data + status")
        let got = try guest.bytes(first) + guest.bytes(second) + guest.bytes(last)
        XCTAssertEqual(Array(got[0..<2048]), data)
        XCTAssertEqual(got[2048], VirtioBlockStatus.ok)
        XCTAssertEqual(try guest.bytes(at: last.address + 749, count: 1), [0xEE], "nothing written past the chain")
        XCTAssertEqual(device.bytesRead, 2048)
        XCTAssertEqual(device.requests, 2)
        XCTAssertEqual(device.ioErrors, 0)
    }

    func testMoreSegmentsThanIOVMax() throws {
        let (device, path) = try makeDevice(size: 2048 * 512, fill: 0)
        // 1500 data segments of 512 bytes: two preadv/pwritev batches (IOV_MAX is 1024).
        let count = 1500
        var readable = [try guest.place(blockHeader(VirtioBlockRequestType.output, sector: 10))]
        for i in 0..<count { readable.append(try guest.place([UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 512))) }
        XCTAssertEqual(device.execute(makeChain(readable: readable, writable: [try guest.reserve(1)]), memory: guest.memory), 1)
        let file = try fileBytes(path)
        for i in [0, 1, 1023, 1024, 1025, count - 1] {
            XCTAssertEqual(Array(file[((10 + i) * 512)..<((11 + i) * 512)]), [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 512),
                           "sector of segment \(i)")
        }
        var writable: [DescriptorSegment] = []
        for _ in 0..<count { writable.append(try guest.reserve(512)) }
        writable.append(try guest.reserve(1))
        let read = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.input, sector: 10))], writable: writable)
        XCTAssertEqual(device.execute(read, memory: guest.memory), UInt32(count * 512 + 1))
        for i in [0, 1023, 1024, count - 1] {
            XCTAssertEqual(try guest.bytes(writable[i]), [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 512))
        }
        XCTAssertEqual(try guest.bytes(writable[count]), [VirtioBlockStatus.ok])
    }

    func testFlushGetIDDiscardAndWriteZeroes() throws {
        let (device, path) = try makeDevice(fill: 0xAB, serial: "serial-number-longer-than-twenty")
        let flush = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.flush))], writable: [try guest.reserve(1)])
        XCTAssertEqual(device.execute(flush, memory: guest.memory), 1)
        XCTAssertEqual(try guest.bytes(flush.writable[0]), [0])
        XCTAssertEqual(device.flushes, 1)

        let id = try guest.reserve(21)
        let getID = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.getID))], writable: [id])
        XCTAssertEqual(device.execute(getID, memory: guest.memory), 21)
        XCTAssertEqual(try guest.bytes(id), Array("serial-number-longer".utf8) + [0])

        let discard = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.discard)
                                                                 + blockRange(sector: 8, sectors: 8))],
                                writable: [try guest.reserve(1)])
        XCTAssertEqual(device.execute(discard, memory: guest.memory), 1)
        XCTAssertEqual(try guest.bytes(discard.writable[0]), [0])
        let zeroes = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.writeZeroes)
                                                                + blockRange(sector: 20, sectors: 2, flags: 1))],
                               writable: [try guest.reserve(1)])
        XCTAssertEqual(device.execute(zeroes, memory: guest.memory), 1)
        XCTAssertEqual(try guest.bytes(zeroes.writable[0]), [0])
        let file = try fileBytes(path)
        XCTAssertEqual(file.count, 64 * 512)
        XCTAssertEqual(Array(file[(8 * 512)..<(16 * 512)]), [UInt8](repeating: 0, count: 4096))
        XCTAssertEqual(Array(file[(20 * 512)..<(22 * 512)]), [UInt8](repeating: 0, count: 1024))
        XCTAssertEqual(file[16 * 512], 0xAB)
        XCTAssertEqual(file[22 * 512], 0xAB)
        XCTAssertEqual(device.requests, 4)
    }

    func testShortSerialIsZeroPadded() throws {
        let (device, _) = try makeDevice(serial: "vda")
        let id = try guest.reserve(21)
        let getID = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.getID))], writable: [id])
        XCTAssertEqual(device.execute(getID, memory: guest.memory), 21)
        XCTAssertEqual(try guest.bytes(id), Array("vda".utf8) + [UInt8](repeating: 0, count: 17) + [0])
    }

    func testErrorsAreAnsweredAndCounted() throws {
        let (device, path) = try makeDevice(fill: 0x11)
        // Unsupported type.
        let unknown = makeChain(readable: [try guest.place(blockHeader(3))], writable: [try guest.reserve(1)])
        XCTAssertEqual(device.execute(unknown, memory: guest.memory), 1)
        XCTAssertEqual(try guest.bytes(unknown.writable[0]), [VirtioBlockStatus.unsupported])
        // A data buffer outside guest RAM: an I/O error, not a trap.
        let stray = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.output)),
                                         DescriptorSegment(address: 0x1000, length: 512)],
                              writable: [try guest.reserve(1)])
        XCTAssertEqual(device.execute(stray, memory: guest.memory), 1)
        XCTAssertEqual(try guest.bytes(stray.writable[0]), [VirtioBlockStatus.ioError])
        // Past the end.
        let past = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.input, sector: 64))],
                             writable: [try guest.reserve(513)])
        XCTAssertEqual(device.execute(past, memory: guest.memory), 1)
        // No writable byte at all.
        let mute = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.flush))], writable: [])
        XCTAssertEqual(device.execute(mute, memory: guest.memory), 0)
        XCTAssertEqual(device.requests, 3)
        XCTAssertEqual(device.ioErrors, 2)
        XCTAssertEqual(device.unsupportedRequests, 1)
        XCTAssertEqual(device.unanswerableChains, 1)
        XCTAssertEqual(device.flushes, 0)
        XCTAssertEqual(try fileBytes(path), [UInt8](repeating: 0x11, count: 64 * 512))
    }

    func testReadOnlyDiskRefusesWritesButReads() throws {
        let (device, path) = try makeDevice(fill: 0x22, readOnly: true)
        let write = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.output) + [UInt8](repeating: 0, count: 512))],
                              writable: [try guest.reserve(1)])
        XCTAssertEqual(device.execute(write, memory: guest.memory), 1)
        XCTAssertEqual(try guest.bytes(write.writable[0]), [VirtioBlockStatus.ioError])
        let zeroes = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.writeZeroes) + blockRange(sector: 0, sectors: 1))],
                               writable: [try guest.reserve(1)])
        XCTAssertEqual(device.execute(zeroes, memory: guest.memory), 1)
        XCTAssertEqual(try guest.bytes(zeroes.writable[0]), [VirtioBlockStatus.ioError])
        let buffer = try guest.reserve(513)
        let read = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.input))], writable: [buffer])
        XCTAssertEqual(device.execute(read, memory: guest.memory), 513)
        XCTAssertEqual(try guest.bytes(buffer), [UInt8](repeating: 0x22, count: 512) + [0])
        XCTAssertEqual(try fileBytes(path), [UInt8](repeating: 0x22, count: 64 * 512))
    }

    func testReplaceSwapsImageAndCapacityButKeepsSerial() throws {
        let (device, _) = try makeDevice(size: 8 * 512, fill: 1, serial: "keep-me")
        let newPath = try imagePath("new.img", size: 100 * 512, fill: 2)
        device.replace(image: try DiskImage.open(newPath, readOnly: false))
        XCTAssertEqual(device.capacity, 100)
        XCTAssertEqual(readLE64(config(device, at: 0, count: 8), at: 0), 100)
        XCTAssertEqual(device.serial, "keep-me")
        XCTAssertEqual(device.image.path, newPath)
        let buffer = try guest.reserve(513)
        let read = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.input, sector: 99))], writable: [buffer])
        XCTAssertEqual(device.execute(read, memory: guest.memory), 513)
        XCTAssertEqual(try guest.bytes(buffer), [UInt8](repeating: 2, count: 512) + [0])
        device.reset()
        XCTAssertEqual(device.image.path, newPath, "reset keeps the image")
        XCTAssertEqual(device.capacity, 100)
    }

    func testReplacingAReadOnlyDiskWithAWritableOneStaysReadOnly() throws {
        let path = try imagePath("ro.img", size: 4096)
        let device = BlockDevice(image: try DiskImage.open(path, readOnly: true), serial: "")
        device.replace(image: try DiskImage.open(try imagePath("rw.img", size: 4096), readOnly: false))
        let write = makeChain(readable: [try guest.place(blockHeader(VirtioBlockRequestType.output) + [UInt8](repeating: 0, count: 512))],
                              writable: [try guest.reserve(1)])
        XCTAssertEqual(device.execute(write, memory: guest.memory), 1)
        XCTAssertEqual(try guest.bytes(write.writable[0]), [VirtioBlockStatus.ioError], "the guest was told RO")
    }

    // MARK: through a real split virtqueue

    /// A 256-entry split ring in guest memory.
    struct Ring {
        static let size: UInt16 = 256
        let descriptors: UInt64
        let available: UInt64
        let used: UInt64
        var nextDescriptor: UInt16 = 0
        var availableIndex: UInt16 = 0

        init(_ guest: BlockGuest) throws {
            descriptors = try guest.reserve(16 * Int(Ring.size), fill: 0).address
            available = try guest.reserve(6 + 2 * Int(Ring.size), fill: 0).address
            used = try guest.reserve(6 + 8 * Int(Ring.size), fill: 0).address
        }

        var config: QueueConfig {
            QueueConfig(size: Ring.size, descriptorTable: descriptors, availableRing: available, usedRing: used)
        }

        /// Writes the chain's descriptors and makes its head available; returns the head.
        mutating func offer(_ guest: BlockGuest, readable: [DescriptorSegment], writable: [DescriptorSegment]) throws -> UInt16 {
            let head = nextDescriptor
            let all = readable.map { ($0, false) } + writable.map { ($0, true) }
            for (i, (segment, isWritable)) in all.enumerated() {
                let index = nextDescriptor
                nextDescriptor &+= 1
                let base = descriptors + 16 * UInt64(index)
                var flags: UInt16 = isWritable ? VIRTQ_DESC_F_WRITE : 0
                if i < all.count - 1 { flags |= VIRTQ_DESC_F_NEXT }
                try guest.memory.store(segment.address, at: base)
                try guest.memory.store(segment.length, at: base + 8)
                try guest.memory.store(flags, at: base + 12)
                try guest.memory.store(nextDescriptor, at: base + 14)
            }
            try guest.memory.store(head, at: available + 4 + 2 * UInt64(availableIndex % Ring.size))
            availableIndex &+= 1
            try guest.memory.store(availableIndex, at: available + 2)
            return head
        }

        func usedIndex(_ guest: BlockGuest) throws -> UInt16 { try guest.memory.load(UInt16.self, at: used + 2) }

        func usedEntry(_ guest: BlockGuest, _ slot: Int) throws -> (id: UInt32, length: UInt32) {
            let base = used + 4 + 8 * UInt64(slot)
            return (try guest.memory.load(UInt32.self, at: base), try guest.memory.load(UInt32.self, at: base + 4))
        }
    }

    func testProcessThroughAVirtqueue() throws {
        let (device, path) = try makeDevice(fill: 0)
        var ring = try Ring(guest)
        var queue = try Virtqueue(ring.config, maxSize: BlockDevice.queueSize, indirect: false, eventIndex: true,
                                  memory: guest.memory)
        device.activate(features: VirtioBlockFeature.flush | VirtioBlockFeature.segMax)

        let data = [UInt8](repeating: 0x5C, count: 1024)
        let writeStatus = try guest.reserve(1)
        let writeHead = try ring.offer(guest, readable: [try guest.place(blockHeader(VirtioBlockRequestType.output, sector: 2)),
                                                         try guest.place(data)], writable: [writeStatus])
        let readBuffer = try guest.reserve(1025)
        let readHead = try ring.offer(guest, readable: [try guest.place(blockHeader(VirtioBlockRequestType.input, sector: 2))],
                                      writable: [readBuffer])
        let flushStatus = try guest.reserve(1)
        let flushHead = try ring.offer(guest, readable: [try guest.place(blockHeader(VirtioBlockRequestType.flush))],
                                       writable: [flushStatus])
        let muteHead = try ring.offer(guest, readable: [try guest.place(blockHeader(VirtioBlockRequestType.flush))], writable: [])

        try device.process(queue: 0, &queue, memory: guest.memory)

        XCTAssertEqual(try ring.usedIndex(guest), 4)
        XCTAssertEqual(try ring.usedEntry(guest, 0).id, UInt32(writeHead))
        XCTAssertEqual(try ring.usedEntry(guest, 0).length, 1)
        XCTAssertEqual(try ring.usedEntry(guest, 1).id, UInt32(readHead))
        XCTAssertEqual(try ring.usedEntry(guest, 1).length, 1025)
        XCTAssertEqual(try ring.usedEntry(guest, 2).id, UInt32(flushHead))
        XCTAssertEqual(try ring.usedEntry(guest, 2).length, 1)
        XCTAssertEqual(try ring.usedEntry(guest, 3).id, UInt32(muteHead))
        XCTAssertEqual(try ring.usedEntry(guest, 3).length, 0, "unanswerable: used with nothing written")
        XCTAssertEqual(try guest.bytes(writeStatus), [0])
        XCTAssertEqual(try guest.bytes(readBuffer), data + [0])
        XCTAssertEqual(try guest.bytes(flushStatus), [0])
        XCTAssertEqual(Array(try fileBytes(path)[1024..<2048]), data)
        XCTAssertEqual(device.flushes, 1)
        XCTAssertEqual(device.unanswerableChains, 1)
        XCTAssertFalse(queue.prepareToWait(), "all four served")
        XCTAssertEqual(try guest.memory.load(UInt16.self, at: ring.used + 4 + 8 * 256), 4,
                       "avail_event asks for the next chain (EVENT_IDX)")
        XCTAssertTrue(queue.needsInterrupt())

        // Nothing new: process returns at once; a later chain is picked up by the next call.
        try device.process(queue: 0, &queue, memory: guest.memory)
        XCTAssertEqual(try ring.usedIndex(guest), 4)
        let again = try guest.reserve(1)
        _ = try ring.offer(guest, readable: [try guest.place(blockHeader(VirtioBlockRequestType.flush))], writable: [again])
        try device.process(queue: 0, &queue, memory: guest.memory)
        XCTAssertEqual(try ring.usedIndex(guest), 5)
        XCTAssertEqual(device.requests, 4)
        // Other queue indexes are not this device's.
        try device.process(queue: 1, &queue, memory: guest.memory)
    }

    func testMalformedQueueThrows() throws {
        let (device, _) = try makeDevice()
        var ring = try Ring(guest)
        var queue = try Virtqueue(ring.config, maxSize: BlockDevice.queueSize, indirect: false, eventIndex: false,
                                  memory: guest.memory)
        // A descriptor whose buffer lies outside guest RAM: the queue, not the device, refuses it.
        _ = try ring.offer(guest, readable: [DescriptorSegment(address: 0x10, length: 16)], writable: [try guest.reserve(1)])
        XCTAssertThrowsError(try device.process(queue: 0, &queue, memory: guest.memory))
    }
}

/// The limits that bound what one request, one chain and one call can make the device do.
final class BlockWorkBoundsTests: XCTestCase {
    func testARequestLongerThanSegMaxTimesSizeMaxIsAnIOError() throws {
        let memory = try GuestMemory(regions: [.init(guestBase: 0x4000_0000, size: 1 << 20)])
        var header = [UInt8](repeating: 0, count: 16)   // IN at sector 0
        header[0] = 0
        try memory.write(header, at: 0x4000_0000)
        var chain = DescriptorChain()
        chain.readable = [DescriptorSegment(address: 0x4000_0000, length: 16)]
        chain.readableLength = 16
        // 255 writable segments of 1 MiB all over the same guest buffer, then the status byte.
        let data = DescriptorSegment(address: 0x4000_1000, length: UInt32(1 << 20) - 0x2000)
        chain.writable = [DescriptorSegment](repeating: data, count: 300) + [DescriptorSegment(address: 0x4000_0100, length: 1)]
        chain.writableLength = UInt64(data.length) * 300 + 1
        let request = try XCTUnwrap(BlockRequest.parse(chain, memory: memory, capacity: UInt64.max >> 9, readOnly: false))
        XCTAssertEqual(request.operation, .fail(status: VirtioBlockStatus.ioError), "more than 254 MiB in one request")
        XCTAssertEqual(VirtioBlock.maxDataLength, 254 << 20)
    }
}
