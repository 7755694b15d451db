import XCTest
import Devices
import SwiftletCore

/// A tiny virtio driver: builds the descriptor table, available ring and used ring of one
/// split queue in real guest memory, as a guest kernel would.
final class QueueDriver {
    static let ramBase: UInt64 = 0x4000_0000
    static let ramSize: UInt64 = 1 << 20
    static var ramEnd: UInt64 { ramBase + ramSize }

    let memory: GuestMemory
    let size: UInt16
    let config: QueueConfig
    /// Indirect tables from here, buffers from bufferBase.
    let tableBase = QueueDriver.ramBase + 0x3_0000
    let bufferBase = QueueDriver.ramBase + 0x4_0000
    /// Where both sides start (near 65535 for wrap-around tests).
    let startIndex: UInt16
    private(set) var availableIndex: UInt16
    private var nextBuffer: UInt64
    private var nextTable: UInt64

    init(size: UInt16 = 16, startIndex: UInt16 = 0, memory: GuestMemory? = nil) throws {
        self.memory = try memory ?? GuestMemory(regions: [.init(guestBase: QueueDriver.ramBase, size: QueueDriver.ramSize)])
        self.size = size
        config = QueueConfig(size: size, descriptorTable: QueueDriver.ramBase,
                             availableRing: QueueDriver.ramBase + 0x1_0000, usedRing: QueueDriver.ramBase + 0x2_0000)
        self.startIndex = startIndex
        availableIndex = startIndex
        nextBuffer = bufferBase
        nextTable = tableBase
        try self.memory.store(startIndex, at: config.availableRing + 2)
        try self.memory.store(startIndex, at: config.usedRing + 2)
    }

    func queue(indirect: Bool = false, eventIndex: Bool = false, maxSize: UInt16 = 256) throws -> Virtqueue {
        try Virtqueue(config, maxSize: maxSize, indirect: indirect, eventIndex: eventIndex, memory: memory,
                      nextAvailable: startIndex, nextUsed: startIndex)
    }

    /// A fresh buffer of `length` bytes, filled with `fill`.
    func buffer(_ length: UInt32, fill: UInt8 = 0) throws -> UInt64 {
        let address = nextBuffer
        nextBuffer += (UInt64(length) + 15) & ~15
        try memory.write([UInt8](repeating: fill, count: Int(length)), at: address)
        return address
    }

    /// Room for an indirect table of `count` descriptors.
    func table(_ count: Int) -> UInt64 {
        let address = nextTable
        nextTable += UInt64(16 * count)
        return address
    }

    func descriptor(_ index: Int, address: UInt64, length: UInt32, flags: UInt16 = 0, next: UInt16 = 0,
                    table: UInt64? = nil) throws {
        let at = (table ?? config.descriptorTable) + UInt64(16 * index)
        try memory.store(address, at: at)
        try memory.store(length, at: at + 8)
        try memory.store(flags, at: at + 12)
        try memory.store(next, at: at + 14)
    }

    /// Puts `head` in the next available slot and publishes it.
    func makeAvailable(_ head: UInt16) throws {
        try memory.store(head, at: config.availableRing + 4 + 2 * UInt64(availableIndex % size))
        availableIndex &+= 1
        try setAvailableIndex(availableIndex)
    }

    func setAvailableIndex(_ index: UInt16) throws { try memory.store(index, at: config.availableRing + 2) }
    func setAvailableFlags(_ flags: UInt16) throws { try memory.store(flags, at: config.availableRing) }
    func setUsedEvent(_ index: UInt16) throws { try memory.store(index, at: config.availableRing + 4 + 2 * UInt64(size)) }

    var usedIndex: UInt16 { try! memory.load(UInt16.self, at: config.usedRing + 2) }
    var availableEvent: UInt16 { try! memory.load(UInt16.self, at: config.usedRing + 4 + 8 * UInt64(size)) }
    func usedElement(_ index: UInt16) -> (id: UInt32, length: UInt32) {
        let at = config.usedRing + 4 + 8 * UInt64(index % size)
        return (try! memory.load(UInt32.self, at: at), try! memory.load(UInt32.self, at: at + 4))
    }

    func bytes(at address: UInt64, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { try! memory.read(into: $0, at: address) }
        return out
    }
}

/// The error pop throws, or nil when it does not throw.
func popError(_ queue: inout Virtqueue) -> VirtqueueError? {
    var chain = DescriptorChain()
    do throws(VirtqueueError) {
        _ = try queue.pop(into: &chain)
        return nil
    } catch {
        return error
    }
}

final class VirtqueueTests: XCTestCase {
    private let writable = VIRTQ_DESC_F_WRITE
    private let next = VIRTQ_DESC_F_NEXT
    private let indirectFlag = VIRTQ_DESC_F_INDIRECT

    // MARK: simple chains

    func testEmptyQueuePopsNothing() throws {
        let driver = try QueueDriver()
        var queue = try driver.queue()
        var chain = DescriptorChain()
        XCTAssertFalse(try queue.pop(into: &chain))
        XCTAssertEqual(queue.nextAvailable, 0)
        XCTAssertEqual(queue.size, 16)
    }

    func testReadableOnlyChain() throws {
        let driver = try QueueDriver()
        let a = try driver.buffer(10, fill: 0x11), b = try driver.buffer(6, fill: 0x22)
        try driver.descriptor(0, address: a, length: 10, flags: next, next: 1)
        try driver.descriptor(1, address: b, length: 6)
        try driver.makeAvailable(0)
        var queue = try driver.queue()
        var chain = DescriptorChain()
        XCTAssertTrue(try queue.pop(into: &chain))
        XCTAssertEqual(chain.head, 0)
        XCTAssertEqual(chain.readable, [DescriptorSegment(address: a, length: 10), DescriptorSegment(address: b, length: 6)])
        XCTAssertEqual(chain.writable, [])
        XCTAssertEqual(chain.readableLength, 16)
        var out = [UInt8](repeating: 0, count: 16)
        XCTAssertTrue(out.withUnsafeMutableBytes { chain.read(driver.memory, at: 0, into: $0) })
        XCTAssertEqual(out, [UInt8](repeating: 0x11, count: 10) + [UInt8](repeating: 0x22, count: 6))
        XCTAssertFalse(try queue.pop(into: &chain))
    }

    func testWritableOnlyChain() throws {
        let driver = try QueueDriver()
        let a = try driver.buffer(8), b = try driver.buffer(8)
        try driver.descriptor(5, address: a, length: 8, flags: writable | next, next: 2)
        try driver.descriptor(2, address: b, length: 8, flags: writable)
        try driver.makeAvailable(5)
        var queue = try driver.queue()
        var chain = DescriptorChain()
        XCTAssertTrue(try queue.pop(into: &chain))
        XCTAssertEqual(chain.head, 5)
        XCTAssertEqual(chain.readable, [])
        XCTAssertEqual(chain.writable.map(\.address), [a, b])
        XCTAssertEqual(chain.writableLength, 16)
        let data = [UInt8](1...12)
        XCTAssertTrue(data.withUnsafeBytes { chain.write(driver.memory, at: 2, from: $0) })
        XCTAssertEqual(driver.bytes(at: a, count: 8), [0, 0] + [UInt8](1...6))
        XCTAssertEqual(driver.bytes(at: b, count: 8), [UInt8](7...12) + [0, 0])
    }

    func testMixedChainAndPush() throws {
        let driver = try QueueDriver()
        let header = try driver.buffer(16, fill: 0x33), data = try driver.buffer(512), status = try driver.buffer(1)
        try driver.descriptor(3, address: header, length: 16, flags: next, next: 7)
        try driver.descriptor(7, address: data, length: 512, flags: writable | next, next: 1)
        try driver.descriptor(1, address: status, length: 1, flags: writable)
        try driver.makeAvailable(3)
        var queue = try driver.queue()
        var chain = DescriptorChain()
        XCTAssertTrue(try queue.pop(into: &chain))
        XCTAssertEqual(chain.head, 3)
        XCTAssertEqual(chain.readable, [DescriptorSegment(address: header, length: 16)])
        XCTAssertEqual(chain.writable, [DescriptorSegment(address: data, length: 512), DescriptorSegment(address: status, length: 1)])
        queue.push(head: chain.head, written: 513)
        XCTAssertEqual(driver.usedIndex, 1)
        XCTAssertEqual(queue.nextUsed, 1)
        XCTAssertEqual(driver.usedElement(0).id, 3)
        XCTAssertEqual(driver.usedElement(0).length, 513)
    }

    func testZeroLengthBuffersAreSkipped() throws {
        let driver = try QueueDriver()
        let a = try driver.buffer(4)
        // A zero-length buffer names no memory, so even an address outside RAM is fine.
        try driver.descriptor(0, address: 0xFFFF_FFFF_FFFF_FFFF, length: 0, flags: next, next: 1)
        try driver.descriptor(1, address: a, length: 4, flags: writable | next, next: 2)
        try driver.descriptor(2, address: 0, length: 0, flags: writable)
        try driver.makeAvailable(0)
        var queue = try driver.queue()
        var chain = DescriptorChain()
        XCTAssertTrue(try queue.pop(into: &chain))
        XCTAssertEqual(chain.readable, [])
        XCTAssertEqual(chain.writable, [DescriptorSegment(address: a, length: 4)])
    }

    func testSeveralChainsInOrder() throws {
        let driver = try QueueDriver(size: 4)
        for i in 0..<4 {
            try driver.descriptor(i, address: try driver.buffer(4), length: 4, flags: writable)
        }
        for head: UInt16 in [2, 0, 3, 1] { try driver.makeAvailable(head) }
        var queue = try driver.queue()
        var chain = DescriptorChain()
        var heads: [UInt16] = []
        while try queue.pop(into: &chain) {
            heads.append(chain.head)
            queue.push(head: chain.head, written: 4)
        }
        XCTAssertEqual(heads, [2, 0, 3, 1])
        XCTAssertEqual(driver.usedIndex, 4)
        XCTAssertEqual((0..<4).map { driver.usedElement($0).id }, [2, 0, 3, 1])
    }

    // MARK: indirect tables

    func testIndirectTable() throws {
        let driver = try QueueDriver()
        let table = driver.table(3)
        let a = try driver.buffer(8, fill: 0x44), b = try driver.buffer(32), c = try driver.buffer(1)
        try driver.descriptor(0, address: a, length: 8, flags: next, next: 2, table: table)
        try driver.descriptor(2, address: b, length: 32, flags: writable | next, next: 1, table: table)
        try driver.descriptor(1, address: c, length: 1, flags: writable, table: table)
        // The WRITE flag of the descriptor naming the table is ignored (§2.7.5.3.2).
        try driver.descriptor(4, address: table, length: 48, flags: indirectFlag | writable)
        try driver.makeAvailable(4)
        var queue = try driver.queue(indirect: true)
        var chain = DescriptorChain()
        XCTAssertTrue(try queue.pop(into: &chain))
        XCTAssertEqual(chain.head, 4)
        XCTAssertEqual(chain.readable, [DescriptorSegment(address: a, length: 8)])
        XCTAssertEqual(chain.writable, [DescriptorSegment(address: b, length: 32), DescriptorSegment(address: c, length: 1)])
        XCTAssertEqual(chain.writableLength, 33)
    }

    func testIndirectTableAfterDirectDescriptors() throws {
        let driver = try QueueDriver()
        let table = driver.table(1)
        let a = try driver.buffer(8), b = try driver.buffer(8)
        try driver.descriptor(0, address: b, length: 8, flags: writable, table: table)
        try driver.descriptor(0, address: a, length: 8, flags: next, next: 1)
        try driver.descriptor(1, address: table, length: 16, flags: indirectFlag)
        try driver.makeAvailable(0)
        var queue = try driver.queue(indirect: true)
        var chain = DescriptorChain()
        XCTAssertTrue(try queue.pop(into: &chain))
        XCTAssertEqual(chain.readable.map(\.address), [a])
        XCTAssertEqual(chain.writable.map(\.address), [b])
    }

    func testIndirectTableMayBeUnalignedAndUseItsWholeLength() throws {
        let driver = try QueueDriver()
        let table = driver.table(5) + 4
        for i in 0..<4 {
            try driver.descriptor(i, address: try driver.buffer(2), length: 2, flags: writable | next, next: UInt16(i + 1), table: table)
        }
        try driver.descriptor(4, address: try driver.buffer(2), length: 2, flags: writable, table: table)
        try driver.descriptor(0, address: table, length: 80, flags: indirectFlag)
        try driver.makeAvailable(0)
        var queue = try driver.queue(indirect: true)
        var chain = DescriptorChain()
        XCTAssertTrue(try queue.pop(into: &chain))
        XCTAssertEqual(chain.writable.count, 5)
    }

    // MARK: 16-bit index wrap-around

    func testIndicesWrapFromNearTheTop() throws {
        let driver = try QueueDriver(size: 4, startIndex: 65533)
        for i in 0..<4 { try driver.descriptor(i, address: try driver.buffer(4), length: 4, flags: writable) }
        var queue = try driver.queue()
        var chain = DescriptorChain()
        var heads: [UInt16] = []
        for round in 0..<3 {
            for head: UInt16 in [3, 1] { try driver.makeAvailable(head) }
            while try queue.pop(into: &chain) {
                heads.append(chain.head)
                queue.push(head: chain.head, written: UInt32(round))
            }
        }
        XCTAssertEqual(heads, [3, 1, 3, 1, 3, 1])
        XCTAssertEqual(queue.nextAvailable, 65533 &+ 6)
        XCTAssertEqual(queue.nextUsed, 3)
        XCTAssertEqual(driver.usedIndex, 3)
        // Slot (65533 + 5) % 4 = 2 holds the last entry.
        XCTAssertEqual(driver.usedElement(65533 &+ 5).id, 1)
        XCTAssertEqual(driver.usedElement(65533 &+ 5).length, 2)
    }

    func testIndicesWrapAfter65536Chains() throws {
        let driver = try QueueDriver(size: 8)
        for i in 0..<8 { try driver.descriptor(i, address: try driver.buffer(4), length: 4, flags: writable) }
        var queue = try driver.queue()
        var chain = DescriptorChain()
        var popped = 0
        for _ in 0..<(65536 / 8 + 2) {
            for head in 0..<UInt16(8) { try driver.makeAvailable(head) }
            while try queue.pop(into: &chain) {
                XCTAssertEqual(chain.head, UInt16(popped % 8))
                queue.push(head: chain.head, written: 4)
                popped += 1
            }
        }
        XCTAssertEqual(popped, 65536 + 16)
        XCTAssertEqual(queue.nextAvailable, 16)
        XCTAssertEqual(driver.usedIndex, 16)
    }

    // MARK: notification and interrupt suppression

    func testPrepareToWaitWritesAvailEvent() throws {
        let driver = try QueueDriver()
        try driver.descriptor(0, address: try driver.buffer(4), length: 4, flags: writable)
        var queue = try driver.queue(eventIndex: true)
        var chain = DescriptorChain()
        try driver.makeAvailable(0)
        try driver.makeAvailable(0)
        XCTAssertTrue(try queue.pop(into: &chain))
        XCTAssertTrue(queue.prepareToWait(), "one chain is still available")
        XCTAssertEqual(driver.availableEvent, 1)
        XCTAssertTrue(try queue.pop(into: &chain))
        XCTAssertFalse(try queue.pop(into: &chain))
        XCTAssertFalse(queue.prepareToWait())
        XCTAssertEqual(driver.availableEvent, 2)
    }

    func testPrepareToWaitWithoutEventIndexLeavesAvailEventAlone() throws {
        let driver = try QueueDriver()
        try driver.descriptor(0, address: try driver.buffer(4), length: 4, flags: writable)
        var queue = try driver.queue()
        XCTAssertFalse(queue.prepareToWait())
        try driver.makeAvailable(0)
        XCTAssertTrue(queue.prepareToWait())
        XCTAssertEqual(driver.availableEvent, 0)
    }

    func testNeedsInterruptOnlyAfterPushes() throws {
        let driver = try QueueDriver()
        var queue = try driver.queue()
        XCTAssertFalse(queue.needsInterrupt())
        queue.push(head: 0, written: 0)
        XCTAssertTrue(queue.needsInterrupt())
        XCTAssertFalse(queue.needsInterrupt(), "nothing pushed since the last call")
    }

    func testNoInterruptFlag() throws {
        let driver = try QueueDriver()
        var queue = try driver.queue()
        try driver.setAvailableFlags(VIRTQ_AVAIL_F_NO_INTERRUPT)
        queue.push(head: 0, written: 0)
        XCTAssertFalse(queue.needsInterrupt())
        try driver.setAvailableFlags(0)
        queue.push(head: 0, written: 0)
        XCTAssertTrue(queue.needsInterrupt())
    }

    func testEventIndexIgnoresNoInterruptFlag() throws {
        let driver = try QueueDriver()
        var queue = try driver.queue(eventIndex: true)
        try driver.setAvailableFlags(VIRTQ_AVAIL_F_NO_INTERRUPT)
        try driver.setUsedEvent(0)
        queue.push(head: 0, written: 0)
        XCTAssertTrue(queue.needsInterrupt(), "with EVENT_IDX only used_event counts")
    }

    func testUsedEventSuppressesUntilCrossed() throws {
        let driver = try QueueDriver()
        var queue = try driver.queue(eventIndex: true)
        // The driver wants an interrupt once the used index passes 4 (entry 4 used).
        try driver.setUsedEvent(4)
        for _ in 0..<3 { queue.push(head: 0, written: 0) }       // used idx 0 -> 3
        XCTAssertFalse(queue.needsInterrupt())
        queue.push(head: 0, written: 0)                            // 3 -> 4: entry 4 not yet used
        XCTAssertFalse(queue.needsInterrupt())
        queue.push(head: 0, written: 0)                            // 4 -> 5: crossed
        XCTAssertTrue(queue.needsInterrupt())
        queue.push(head: 0, written: 0)                            // 5 -> 6: already told
        XCTAssertFalse(queue.needsInterrupt())
        try driver.setUsedEvent(6)
        queue.push(head: 0, written: 0)
        queue.push(head: 0, written: 0)                            // 6 -> 8 crosses 6
        XCTAssertTrue(queue.needsInterrupt())
    }

    func testUsedEventAcrossWrapAround() throws {
        let driver = try QueueDriver(startIndex: 65534)
        var queue = try driver.queue(eventIndex: true)
        try driver.setUsedEvent(65535)
        queue.push(head: 0, written: 0)                            // 65534 -> 65535
        XCTAssertFalse(queue.needsInterrupt())
        queue.push(head: 0, written: 0)                            // 65535 -> 0: crossed
        XCTAssertTrue(queue.needsInterrupt())
    }

    // MARK: hostile rings and chains

    private func assertPopThrows(_ driver: QueueDriver, indirect: Bool = false, _ expected: String,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        var queue = try driver.queue(indirect: indirect)
        let before = queue.nextAvailable
        let error = popError(&queue)
        XCTAssertEqual(error?.reason, expected, file: file, line: line)
        XCTAssertEqual(queue.nextAvailable, before, "a failed pop consumes nothing", file: file, line: line)
    }

    func testAvailableIndexJump() throws {
        let driver = try QueueDriver()
        try driver.setAvailableIndex(17)
        try assertPopThrows(driver, "available index jumped past the queue size")
        try driver.setAvailableIndex(0xFFFF)                        // "behind" the device: also a jump
        try assertPopThrows(driver, "available index jumped past the queue size")
    }

    func testAvailableIndexOfExactlyTheQueueSizeIsFine() throws {
        let driver = try QueueDriver(size: 4)
        for i in 0..<4 { try driver.descriptor(i, address: try driver.buffer(1), length: 1) }
        for head in 0..<UInt16(4) { try driver.makeAvailable(head) }
        var queue = try driver.queue()
        var chain = DescriptorChain()
        var count = 0
        while try queue.pop(into: &chain) { count += 1 }
        XCTAssertEqual(count, 4)
    }

    func testHeadOutOfRange() throws {
        let driver = try QueueDriver()
        try driver.makeAvailable(16)
        try assertPopThrows(driver, "descriptor index out of range")
    }

    func testNextOutOfRange() throws {
        let driver = try QueueDriver()
        try driver.descriptor(0, address: try driver.buffer(1), length: 1, flags: next, next: 0xFFFF)
        try driver.makeAvailable(0)
        try assertPopThrows(driver, "descriptor index out of range")
    }

    func testLoops() throws {
        let driver = try QueueDriver()
        let a = try driver.buffer(1)
        try driver.descriptor(0, address: a, length: 1, flags: next, next: 0)            // self loop
        try driver.makeAvailable(0)
        try assertPopThrows(driver, "descriptor chain loops or exceeds its table")

        let longer = try QueueDriver()
        for i in 0..<16 { try longer.descriptor(i, address: a, length: 1, flags: next, next: UInt16((i + 1) % 16)) }
        try longer.makeAvailable(5)
        try assertPopThrows(longer, "descriptor chain loops or exceeds its table")
    }

    func testChainUsingEveryDescriptorIsFine() throws {
        let driver = try QueueDriver()
        for i in 0..<15 { try driver.descriptor(i, address: try driver.buffer(1), length: 1, flags: next, next: UInt16(i + 1)) }
        try driver.descriptor(15, address: try driver.buffer(1), length: 1)
        try driver.makeAvailable(0)
        var queue = try driver.queue()
        var chain = DescriptorChain()
        XCTAssertTrue(try queue.pop(into: &chain))
        XCTAssertEqual(chain.readable.count, 16)
    }

    func testIndirectLoop() throws {
        let driver = try QueueDriver()
        let table = driver.table(2)
        let a = try driver.buffer(1)
        try driver.descriptor(0, address: a, length: 1, flags: next, next: 1, table: table)
        try driver.descriptor(1, address: a, length: 1, flags: next, next: 0, table: table)
        try driver.descriptor(0, address: table, length: 32, flags: indirectFlag)
        try driver.makeAvailable(0)
        try assertPopThrows(driver, indirect: true, "descriptor chain loops or exceeds its table")
    }

    func testIndirectNextOutsideTheTable() throws {
        let driver = try QueueDriver()
        let table = driver.table(2)
        try driver.descriptor(0, address: try driver.buffer(1), length: 1, flags: next, next: 2, table: table)
        try driver.descriptor(0, address: table, length: 32, flags: indirectFlag)
        try driver.makeAvailable(0)
        try assertPopThrows(driver, indirect: true, "descriptor index out of range")
    }

    func testIndirectWithoutTheFeature() throws {
        let driver = try QueueDriver()
        let table = driver.table(1)
        try driver.descriptor(0, address: try driver.buffer(1), length: 1, table: table)
        try driver.descriptor(0, address: table, length: 16, flags: indirectFlag)
        try driver.makeAvailable(0)
        try assertPopThrows(driver, "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC")
    }

    func testIndirectWithNext() throws {
        let driver = try QueueDriver()
        let table = driver.table(1)
        try driver.descriptor(0, address: try driver.buffer(1), length: 1, table: table)
        try driver.descriptor(0, address: table, length: 16, flags: indirectFlag | next, next: 1)
        try driver.descriptor(1, address: try driver.buffer(1), length: 1)
        try driver.makeAvailable(0)
        try assertPopThrows(driver, indirect: true, "indirect descriptor with VIRTQ_DESC_F_NEXT")
    }

    func testNestedIndirect() throws {
        let driver = try QueueDriver()
        let inner = driver.table(1), outer = driver.table(1)
        try driver.descriptor(0, address: try driver.buffer(1), length: 1, table: inner)
        try driver.descriptor(0, address: inner, length: 16, flags: indirectFlag, table: outer)
        try driver.descriptor(0, address: outer, length: 16, flags: indirectFlag)
        try driver.makeAvailable(0)
        try assertPopThrows(driver, indirect: true, "indirect descriptor inside an indirect table")
    }

    func testIndirectTableLengths() throws {
        for length: UInt32 in [0, 8, 17, 0xFFFF_FFFF] {
            let driver = try QueueDriver()
            try driver.descriptor(0, address: driver.table(2), length: length, flags: indirectFlag)
            try driver.makeAvailable(0)
            try assertPopThrows(driver, indirect: true, "indirect table length is zero or not a multiple of 16")
        }
        // A table longer than the queue (the spec's limit for any chain) is refused, so one
        // chain cannot ask for more than a queue's worth of buffers.
        for entries: UInt32 in [17, 65537] {   // the queue holds 16
            let huge = try QueueDriver()
            try huge.descriptor(0, address: huge.tableBase, length: 16 * entries, flags: indirectFlag)
            try huge.makeAvailable(0)
            try assertPopThrows(huge, indirect: true, "indirect table holds more descriptors than the queue size")
        }
    }

    func testIndirectTableOutsideRAM() throws {
        let cases: [(UInt64, UInt32)] = [
            (0, 16),                                         // below RAM
            (QueueDriver.ramEnd - 16, 32),                   // straddles the end
            (QueueDriver.ramEnd, 16),                        // just past the end
            (0xFFFF_FFFF_FFFF_FFF0, 0x100),                   // the sum would overflow
        ]
        for (address, length) in cases {
            let driver = try QueueDriver()
            try driver.descriptor(0, address: address, length: length, flags: indirectFlag)
            try driver.makeAvailable(0)
            try assertPopThrows(driver, indirect: true, "indirect table is not inside guest RAM")
        }
    }

    func testBufferOutsideRAM() throws {
        let cases: [(UInt64, UInt32, UInt16)] = [
            (0x1000, 1, 0),
            (QueueDriver.ramEnd - 4, 8, writable),
            (QueueDriver.ramEnd, 1, writable),
            (QueueDriver.ramBase, 0xFFFF_FFFF, 0),
            (0xFFFF_FFFF_FFFF_FFFF, 2, writable),
        ]
        for (address, length, flags) in cases {
            let driver = try QueueDriver()
            try driver.descriptor(0, address: address, length: length, flags: flags)
            try driver.makeAvailable(0)
            try assertPopThrows(driver, "descriptor buffer is not inside guest RAM")
        }
        // The last byte of RAM is fine.
        let driver = try QueueDriver()
        try driver.descriptor(0, address: QueueDriver.ramEnd - 1, length: 1, flags: writable)
        try driver.makeAvailable(0)
        var queue = try driver.queue()
        var chain = DescriptorChain()
        XCTAssertTrue(try queue.pop(into: &chain))
    }

    func testBufferOutsideRAMInsideIndirectTable() throws {
        let driver = try QueueDriver()
        let table = driver.table(1)
        try driver.descriptor(0, address: QueueDriver.ramEnd - 1, length: 2, flags: writable, table: table)
        try driver.descriptor(0, address: table, length: 16, flags: indirectFlag)
        try driver.makeAvailable(0)
        try assertPopThrows(driver, indirect: true, "descriptor buffer is not inside guest RAM")
    }

    func testReadableAfterWritable() throws {
        let driver = try QueueDriver()
        try driver.descriptor(0, address: try driver.buffer(1), length: 1, flags: writable | next, next: 1)
        try driver.descriptor(1, address: try driver.buffer(1), length: 1)
        try driver.makeAvailable(0)
        try assertPopThrows(driver, "device-readable descriptor after a device-writable one")

        let indirect = try QueueDriver()
        let table = indirect.table(2)
        try indirect.descriptor(0, address: try indirect.buffer(1), length: 1, flags: writable | next, next: 1, table: table)
        try indirect.descriptor(1, address: 0, length: 0, flags: 0, table: table)   // even when empty
        try indirect.descriptor(0, address: table, length: 32, flags: indirectFlag)
        try indirect.makeAvailable(0)
        try assertPopThrows(indirect, indirect: true, "device-readable descriptor after a device-writable one")
    }

    func testGarbageRingsNeverTrap() throws {
        // Deterministic noise over the descriptor table and the available ring: every pop
        // either yields a chain whose segments lie in RAM or throws.
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random() -> UInt64 {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
            return seed
        }
        for round in 0..<300 {
            let driver = try QueueDriver(size: 8)
            for i in 0..<8 {
                let address = round % 2 == 0 ? QueueDriver.ramBase + random() % QueueDriver.ramSize : random()
                try driver.descriptor(i, address: address, length: UInt32(truncatingIfNeeded: random() % 4096),
                                      flags: UInt16(truncatingIfNeeded: random() & 7), next: UInt16(random() % 10),
                                      table: nil)
            }
            for _ in 0..<Int(random() % 6) { try driver.makeAvailable(UInt16(random() % 9)) }
            var queue = try driver.queue(indirect: round % 3 != 0, eventIndex: round % 5 == 0)
            var chain = DescriptorChain()
            var pops = 0
            while pops < 20 {
                pops += 1
                do {
                    guard try queue.pop(into: &chain) else { break }
                } catch {
                    break
                }
                for segment in chain.readable + chain.writable {
                    XCTAssertTrue(driver.memory.contains(segment.address, length: UInt64(segment.length)))
                }
                queue.push(head: chain.head, written: 0)
            }
        }
    }

    // MARK: configuration

    private func configError(_ config: QueueConfig, maxSize: UInt16 = 256) throws -> String? {
        let memory = try GuestMemory(regions: [.init(guestBase: QueueDriver.ramBase, size: QueueDriver.ramSize)])
        do throws(VirtqueueError) {
            _ = try Virtqueue(config, maxSize: maxSize, indirect: true, eventIndex: true, memory: memory)
            return nil
        } catch {
            return error.reason
        }
    }

    func testConfigValidation() throws {
        let base = QueueDriver.ramBase
        let good = QueueConfig(size: 256, descriptorTable: base, availableRing: base + 0x1000, usedRing: base + 0x2000)
        XCTAssertNil(try configError(good))
        func with(_ change: (inout QueueConfig) -> Void) -> QueueConfig {
            var config = good
            change(&config)
            return config
        }
        for size: UInt16 in [0, 3, 100, 255] {
            XCTAssertEqual(try configError(with { $0.size = size }), "queue size \(size) is not a power of two in 1...256")
        }
        XCTAssertEqual(try configError(with { $0.size = 512 }), "queue size 512 is not a power of two in 1...256")
        XCTAssertEqual(try configError(good, maxSize: 128), "queue size 256 is not a power of two in 1...128")
        XCTAssertNil(try configError(with { $0.size = 1 }))
        XCTAssertEqual(try configError(with { $0.descriptorTable += 8 }), "descriptor table is not 16-byte aligned")
        XCTAssertEqual(try configError(with { $0.availableRing += 1 }), "available ring is not 2-byte aligned")
        XCTAssertEqual(try configError(with { $0.usedRing += 2 }), "used ring is not 4-byte aligned")
        XCTAssertNil(try configError(with { $0.descriptorTable += 16; $0.availableRing += 2; $0.usedRing += 4 }))

        XCTAssertEqual(try configError(with { $0.descriptorTable = 0 }), "descriptor table is not inside guest RAM")
        XCTAssertEqual(try configError(with { $0.availableRing = 0x1000 }), "available ring is not inside guest RAM")
        XCTAssertEqual(try configError(with { $0.usedRing = 0xFFFF_FFFF_FFFF_FFFC }), "used ring is not inside guest RAM")
        let end = QueueDriver.ramEnd
        // Each area exactly at the end of RAM fits; one step further straddles it.
        XCTAssertNil(try configError(with { $0.descriptorTable = end - 16 * 256 }))
        XCTAssertEqual(try configError(with { $0.descriptorTable = end - 16 * 256 + 16 }), "descriptor table is not inside guest RAM")
        XCTAssertNil(try configError(with { $0.availableRing = end - (6 + 2 * 256) }))
        XCTAssertEqual(try configError(with { $0.availableRing = end - (6 + 2 * 256) + 2 }), "available ring is not inside guest RAM")
        XCTAssertNil(try configError(with { $0.usedRing = end - (6 + 8 * 256) - 2 }))   // 4-aligned below the end
        XCTAssertEqual(try configError(with { $0.usedRing = end - (6 + 8 * 256) + 2 }), "used ring is not inside guest RAM")
    }

    func testErrorDescription() {
        XCTAssertEqual(VirtqueueError("x").description, "x")
        XCTAssertEqual("\(VirtqueueError("descriptor index out of range"))", "descriptor index out of range")
    }
}
