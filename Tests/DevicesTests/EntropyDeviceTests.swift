import XCTest
import Devices
import SwiftletCore

/// A random source that fills with a counting pattern and records each request.
final class FakeRandom {
    var requests: [Int] = []
    var fails = false
    private var next: UInt8 = 1

    func fill(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        requests.append(buffer.count)
        if fails { return false }
        for i in 0..<buffer.count {
            buffer[i] = next
            next = next == 255 ? 1 : next + 1
        }
        return true
    }
}

final class EntropyDeviceTests: XCTestCase {
    private func device(_ source: FakeRandom) -> EntropyDevice {
        EntropyDevice(random: { source.fill($0) })
    }

    func testIdentity() {
        let rng = EntropyDevice(random: EntropyDevice.hostRandom)
        XCTAssertEqual(rng.deviceID, 4)
        XCTAssertEqual(rng.deviceFeatures, 0)
        XCTAssertEqual(rng.queueSizes, [256])
        var config = [UInt8](repeating: 0xAA, count: 8)
        config.withUnsafeMutableBytes { rng.readConfig(at: 0, into: $0) }
        XCTAssertEqual(config, [UInt8](repeating: 0, count: 8))
        [UInt8](repeating: 1, count: 4).withUnsafeBytes { rng.writeConfig(at: 0, from: $0) }
    }

    func testHostRandom() {
        var bytes = [UInt8](repeating: 0, count: 4096)
        XCTAssertTrue(bytes.withUnsafeMutableBytes { EntropyDevice.hostRandom($0) })
        XCTAssertGreaterThan(Set(bytes).count, 200, "4 KiB of random bytes use most byte values")
        XCTAssertTrue(EntropyDevice.hostRandom(UnsafeMutableRawBufferPointer(start: nil, count: 0)))
    }

    func testFillsTheWritableBuffers() throws {
        let driver = try QueueDriver()
        let a = try driver.buffer(100), b = try driver.buffer(28)
        try driver.descriptor(0, address: a, length: 100, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: 1)
        try driver.descriptor(1, address: b, length: 28, flags: VIRTQ_DESC_F_WRITE)
        try driver.makeAvailable(0)
        let source = FakeRandom()
        let rng = device(source)
        var queue = try driver.queue(eventIndex: true)
        try rng.process(queue: 0, &queue, memory: driver.memory)
        XCTAssertEqual(driver.usedIndex, 1)
        XCTAssertEqual(driver.usedElement(0).id, 0)
        XCTAssertEqual(driver.usedElement(0).length, 128)
        XCTAssertEqual(driver.bytes(at: a, count: 100) + driver.bytes(at: b, count: 28), [UInt8](1...128))
        XCTAssertEqual(source.requests, [100, 28], "filled in place, one request per segment")
        XCTAssertEqual(rng.bytesGiven, 128)
        XCTAssertEqual(rng.requests, 1)
        XCTAssertEqual(rng.failures, 0)
        XCTAssertFalse(queue.prepareToWait(), "one chain, served")
        XCTAssertEqual(driver.availableEvent, 1, "waits for the next chain")
        XCTAssertTrue(queue.needsInterrupt())
    }

    func testCapsEachChainAt64KiB() throws {
        let driver = try QueueDriver()
        let a = try driver.buffer(40_000, fill: 0xEE), b = try driver.buffer(40_000, fill: 0xEE)
        try driver.descriptor(0, address: a, length: 40_000, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: 1)
        try driver.descriptor(1, address: b, length: 40_000, flags: VIRTQ_DESC_F_WRITE)
        try driver.makeAvailable(0)
        let source = FakeRandom()
        let rng = device(source)
        var queue = try driver.queue()
        try rng.process(queue: 0, &queue, memory: driver.memory)
        XCTAssertEqual(EntropyDevice.maxBytesPerChain, 65536)
        XCTAssertEqual(driver.usedElement(0).length, 65536)
        XCTAssertEqual(source.requests, [40_000, 65536 - 40_000])
        let tail = driver.bytes(at: b + UInt64(65536 - 40_000), count: 80_000 - 65536)
        XCTAssertEqual(tail, [UInt8](repeating: 0xEE, count: 80_000 - 65536), "bytes past the cap untouched")
        XCTAssertEqual(rng.bytesGiven, 65536)
    }

    func testReadableOnlyChainIsUsedEmpty() throws {
        let driver = try QueueDriver()
        try driver.descriptor(3, address: try driver.buffer(16), length: 16)
        try driver.makeAvailable(3)
        let source = FakeRandom()
        let rng = device(source)
        var queue = try driver.queue()
        try rng.process(queue: 0, &queue, memory: driver.memory)
        XCTAssertEqual(driver.usedIndex, 1)
        XCTAssertEqual(driver.usedElement(0).id, 3)
        XCTAssertEqual(driver.usedElement(0).length, 0)
        XCTAssertEqual(source.requests, [])
        XCTAssertEqual(rng.requests, 1)
    }

    func testFailedSourceCompletesEmpty() throws {
        let driver = try QueueDriver()
        try driver.descriptor(0, address: try driver.buffer(16), length: 16, flags: VIRTQ_DESC_F_WRITE)
        try driver.makeAvailable(0)
        try driver.makeAvailable(0)
        let source = FakeRandom()
        source.fails = true
        let rng = device(source)
        var queue = try driver.queue()
        try rng.process(queue: 0, &queue, memory: driver.memory)
        XCTAssertEqual(driver.usedIndex, 2)
        XCTAssertEqual(driver.usedElement(0).length, 0)
        XCTAssertEqual(driver.usedElement(1).length, 0)
        XCTAssertEqual(rng.failures, 2)
        XCTAssertEqual(rng.bytesGiven, 0)
    }

    func testServesEveryAvailableChain() throws {
        let driver = try QueueDriver(size: 8)
        for i in 0..<8 {
            try driver.descriptor(i, address: try driver.buffer(8), length: 8, flags: VIRTQ_DESC_F_WRITE)
            try driver.makeAvailable(UInt16(i))
        }
        let rng = device(FakeRandom())
        var queue = try driver.queue(indirect: true, eventIndex: true)
        try rng.process(queue: 0, &queue, memory: driver.memory)
        XCTAssertEqual(driver.usedIndex, 8)
        XCTAssertEqual(rng.requests, 8)
        XCTAssertEqual(rng.bytesGiven, 64)
        XCTAssertFalse(queue.prepareToWait(), "all eight served in one call (the budget is the queue size)")
        XCTAssertEqual(driver.availableEvent, 8)
    }

    func testMalformedQueueThrows() throws {
        let driver = try QueueDriver()
        try driver.makeAvailable(200)
        let rng = device(FakeRandom())
        var queue = try driver.queue()
        do throws(VirtqueueError) {
            try rng.process(queue: 0, &queue, memory: driver.memory)
            XCTFail("expected a VirtqueueError")
        } catch {
            XCTAssertEqual(error.reason, "descriptor index out of range")
        }
    }
}
