import XCTest
@testable import Devices
import SwiftletCore

/// A device that uses every chain it is given with no bytes written, or fails the queue.
final class RecordingDevice: VirtioDevice {
    var deviceID: UInt32 { 4 }
    var deviceFeatures: UInt64 { 1 << 3 }
    var queueSizes: [UInt16] { [16, 8] }
    var activations: [UInt64] = []
    var resets = 0
    var processed = 0
    var failNext = false
    var perCall = Int.max
    var config: [UInt8] = [1, 2, 3, 4]

    func readConfig(at offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count { data[i] = Int(offset) + i < config.count ? config[Int(offset) + i] : 0 }
    }
    func writeConfig(at offset: UInt64, from data: UnsafeRawBufferPointer) {}
    func activate(features: UInt64) { activations.append(features) }
    func process(queue index: Int, _ queue: inout Virtqueue, memory: GuestMemory) throws(VirtqueueError) -> QueueProgress {
        if failNext { throw VirtqueueError("test failure") }
        var chain = DescriptorChain()
        var budget = perCall
        while budget > 0, try queue.pop(into: &chain) {
            queue.push(head: chain.head, written: 0)
            processed += 1
            budget -= 1
        }
        return .done
    }
    func reset() { resets += 1 }
}

// Register offsets (virtio 1.2 §4.2.2).
private let MAGIC: UInt64 = 0x000, VERSION: UInt64 = 0x004, DEVICE_ID: UInt64 = 0x008
private let DEVICE_FEATURES: UInt64 = 0x010, DEVICE_FEATURES_SEL: UInt64 = 0x014
private let DRIVER_FEATURES: UInt64 = 0x020, DRIVER_FEATURES_SEL: UInt64 = 0x024
private let QUEUE_SEL: UInt64 = 0x030, QUEUE_NUM_MAX: UInt64 = 0x034, QUEUE_NUM: UInt64 = 0x038
private let QUEUE_READY: UInt64 = 0x044, QUEUE_NOTIFY: UInt64 = 0x050
private let INTERRUPT_STATUS: UInt64 = 0x060, INTERRUPT_ACK: UInt64 = 0x064, STATUS: UInt64 = 0x070
private let QUEUE_DESC: UInt64 = 0x080, QUEUE_DRIVER: UInt64 = 0x090, QUEUE_DEVICE: UInt64 = 0x0A0
private let SHM_LEN_LOW: UInt64 = 0x0B0, CONFIG_GENERATION: UInt64 = 0x0FC, CONFIG: UInt64 = 0x100

final class MMIOTransportTests: XCTestCase {
    let ramBase: UInt64 = 0x4000_0000
    var memory: GuestMemory!
    var device: RecordingDevice!
    var interrupt: CountingEdgeInterrupt!
    var notified: [Int] = []
    var transport: VirtioMMIOTransport!

    override func setUpWithError() throws {
        memory = try GuestMemory(regions: [.init(guestBase: ramBase, size: 1 << 20)])
        device = RecordingDevice()
        interrupt = CountingEdgeInterrupt()
        notified = []
        transport = VirtioMMIOTransport(device: device, memory: memory, interrupt: interrupt) { [unowned self] in notified.append($0) }
    }

    func read(_ offset: UInt64) -> UInt32 {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { transport.read(offset: offset, data: $0) }
        return value
    }

    func write(_ offset: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { transport.write(offset: offset, data: $0) }
    }

    var status: UInt32 { read(STATUS) }

    func negotiate(_ features: UInt64 = VirtioFeature.version1) {
        write(STATUS, VirtioStatus.acknowledge)
        write(STATUS, VirtioStatus.acknowledge | VirtioStatus.driver)
        write(DRIVER_FEATURES_SEL, 0)
        write(DRIVER_FEATURES, UInt32(truncatingIfNeeded: features))
        write(DRIVER_FEATURES_SEL, 1)
        write(DRIVER_FEATURES, UInt32(truncatingIfNeeded: features >> 32))
        write(STATUS, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK)
    }

    /// Queue 0 with size `size`: desc at +0, avail at +0x1000, used at +0x2000.
    func setUpQueue(size: UInt32 = 8, desc: UInt64? = nil) {
        write(QUEUE_SEL, 0)
        write(QUEUE_NUM, size)
        let base = desc ?? ramBase
        write(QUEUE_DESC, UInt32(truncatingIfNeeded: base)); write(QUEUE_DESC + 4, UInt32(truncatingIfNeeded: base >> 32))
        write(QUEUE_DRIVER, UInt32(ramBase + 0x1000)); write(QUEUE_DRIVER + 4, 0)
        write(QUEUE_DEVICE, UInt32(ramBase + 0x2000)); write(QUEUE_DEVICE + 4, 0)
        write(QUEUE_READY, 1)
    }

    func driverOK() { write(STATUS, status | VirtioStatus.driverOK) }

    /// Makes one readable chain of one descriptor available in queue 0.
    func offerChain(index: UInt16) throws {
        try memory.store(ramBase + 0x3000, at: ramBase)        // desc 0: addr
        try memory.store(UInt32(16), at: ramBase + 8)           // len
        try memory.store(UInt16(0), at: ramBase + 12)           // flags
        try memory.store(UInt16(0), at: ramBase + 0x1000 + 4 + 2 * UInt64(index % 8))
        try memory.store(index &+ 1, at: ramBase + 0x1000 + 2)   // avail.idx
    }

    func testIdentityAndFeaturePages() {
        XCTAssertEqual(read(MAGIC), 0x7472_6976)
        XCTAssertEqual(read(VERSION), 2)
        XCTAssertEqual(read(DEVICE_ID), 4)
        write(DEVICE_FEATURES_SEL, 0)
        XCTAssertEqual(read(DEVICE_FEATURES), 1 << 3 | 1 << 28 | 1 << 29)
        write(DEVICE_FEATURES_SEL, 1)
        XCTAssertEqual(read(DEVICE_FEATURES), 1, "VIRTIO_F_VERSION_1 is bit 32")
        write(DEVICE_FEATURES_SEL, 7)
        XCTAssertEqual(read(DEVICE_FEATURES), 0)
        XCTAssertEqual(read(SHM_LEN_LOW), 0xFFFF_FFFF, "no shared memory regions")
        XCTAssertEqual(read(CONFIG), 0x0403_0201)
        XCTAssertEqual(read(CONFIG + 8), 0, "past the device's config space")
    }

    func testStatusStateMachine() {
        write(STATUS, VirtioStatus.driverOK)
        XCTAssertEqual(status, 0, "DRIVER_OK before ACKNOWLEDGE is refused")
        write(STATUS, VirtioStatus.acknowledge | VirtioStatus.featuresOK)
        XCTAssertEqual(status, 0, "FEATURES_OK before DRIVER is refused")
        write(STATUS, VirtioStatus.acknowledge)
        write(STATUS, VirtioStatus.acknowledge | VirtioStatus.driver)
        write(STATUS, VirtioStatus.driver)
        XCTAssertEqual(status, VirtioStatus.acknowledge | VirtioStatus.driver, "the driver cannot clear bits")
        write(STATUS, status | VirtioStatus.featuresOK)
        XCTAssertEqual(status & VirtioStatus.featuresOK, 0, "no VERSION_1: FEATURES_OK stays clear")
        XCTAssertGreaterThan(transport.refusedWriteCount, 2)
        write(STATUS, 0)
        negotiate(VirtioFeature.version1 | 1 << 40)
        XCTAssertEqual(status & VirtioStatus.featuresOK, 0, "a feature not offered: FEATURES_OK stays clear")
        write(STATUS, 0)
        XCTAssertEqual(device.resets, 2)
        negotiate()
        XCTAssertEqual(status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK)
        write(DRIVER_FEATURES, 0)
        driverOK()
        XCTAssertEqual(device.activations, [VirtioFeature.version1], "features are fixed once FEATURES_OK is set")
    }

    func testQueueRunsAndInterrupts() throws {
        write(QUEUE_SEL, 1)
        XCTAssertEqual(read(QUEUE_NUM_MAX), 8)
        write(QUEUE_SEL, 2)
        XCTAssertEqual(read(QUEUE_NUM_MAX), 0, "no third queue")
        negotiate()
        setUpQueue()
        driverOK()
        XCTAssertEqual(notified, [0, 1], "every queue is looked at once on DRIVER_OK")
        try offerChain(index: 0)
        write(QUEUE_NOTIFY, 0)
        write(QUEUE_NOTIFY, 9)
        XCTAssertEqual(notified, [0, 1, 0], "an index past the queues is refused")
        transport.processQueue(0)
        XCTAssertEqual(device.processed, 1)
        XCTAssertEqual(try memory.load(UInt16.self, at: ramBase + 0x2000 + 2), 1, "used.idx")
        XCTAssertEqual(read(INTERRUPT_STATUS), 1)
        XCTAssertEqual(interrupt.count, 1)
        write(INTERRUPT_ACK, 1)
        XCTAssertEqual(read(INTERRUPT_STATUS), 0)
        transport.processQueue(1)
        XCTAssertEqual(device.processed, 1, "queue 1 was never made ready")
        // A running queue's configuration cannot change.
        write(QUEUE_NUM, 4)
        write(QUEUE_SEL, 0)
        write(QUEUE_READY, 1)
        try offerChain(index: 1)
        transport.processQueue(0)
        XCTAssertEqual(device.processed, 2)
        // Disabling the queue takes it from the device.
        write(QUEUE_READY, 0)
        XCTAssertEqual(read(QUEUE_READY), 0)
        try offerChain(index: 2)
        transport.processQueue(0)
        XCTAssertEqual(device.processed, 2)
    }

    func testBadQueueMarksNeedsResetAndResetRecovers() throws {
        for (size, desc) in [(UInt32(3), ramBase), (0, ramBase), (32, ramBase), (8, UInt64(0xFFFF_F000)), (8, ramBase + 8)] {
            negotiate()
            setUpQueue(size: size, desc: desc)
            driverOK()
            XCTAssertNotEqual(status & VirtioStatus.deviceNeedsReset, 0, "size \(size) desc 0x\(String(desc, radix: 16))")
            XCTAssertEqual(read(INTERRUPT_STATUS) & 2, 2, "a configuration-change interrupt tells the driver")
            XCTAssertNotNil(transport.lastNeedsResetReason)
            write(STATUS, 0)
            XCTAssertEqual(status, 0)
            XCTAssertEqual(read(INTERRUPT_STATUS), 0)
            write(QUEUE_SEL, 0)
            XCTAssertEqual(read(QUEUE_READY), 0, "reset returns the queue to its initial state")
        }
        XCTAssertEqual(transport.needsResetCount, 5)
        XCTAssertTrue(device.activations.isEmpty)
        negotiate()
        setUpQueue()
        driverOK()
        XCTAssertEqual(status & VirtioStatus.deviceNeedsReset, 0)
        try offerChain(index: 0)
        transport.processQueue(0)
        XCTAssertEqual(device.processed, 1, "usable again after the reset")
    }

    func testMalformedChainMarksNeedsResetAndStopsTheQueue() throws {
        negotiate()
        setUpQueue()
        driverOK()
        try memory.store(UInt16(100), at: ramBase + 0x1000 + 2)   // avail.idx jumps past the queue size
        transport.processQueue(0)
        XCTAssertNotEqual(status & VirtioStatus.deviceNeedsReset, 0)
        XCTAssertEqual(device.processed, 0)
        transport.processQueue(0)
        XCTAssertEqual(device.processed, 0, "no work after NEEDS_RESET until the driver resets")
        write(STATUS, status | VirtioStatus.failed)
        XCTAssertEqual(transport.needsResetCount, 1)
    }

    func testABusyQueueIsRescheduledNotDrainedInOneGo() throws {
        device.perCall = 1
        negotiate(VirtioFeature.version1 | VirtioFeature.ringEventIndex)
        setUpQueue()
        driverOK()
        notified = []
        for index in UInt16(0)..<3 {
            try memory.store(UInt16(0), at: ramBase + 0x1000 + 4 + 2 * UInt64(index))
        }
        try memory.store(ramBase + 0x3000, at: ramBase)
        try memory.store(UInt32(16), at: ramBase + 8)
        try memory.store(UInt16(3), at: ramBase + 0x1000 + 2)    // three chains (all desc 0)
        transport.processQueue(0)
        XCTAssertEqual(device.processed, 1)
        XCTAssertEqual(notified, [0], "the rest waits for the I/O thread's next turn")
        transport.processQueue(0)
        transport.processQueue(0)
        XCTAssertEqual(device.processed, 3)
        XCTAssertEqual(notified, [0, 0], "nothing left: no more turns")
        XCTAssertEqual(try memory.load(UInt16.self, at: ramBase + 0x2000 + 4 + 8 * 8), 3, "avail_event follows the queue")
    }

    func testConfigurationChangeBumpsTheGeneration() {
        let before = read(CONFIG_GENERATION)
        transport.changeConfiguration { device.config = [9, 9, 9, 9] }
        XCTAssertEqual(read(CONFIG_GENERATION), before &+ 1)
        XCTAssertEqual(read(CONFIG), 0x0909_0909)
        XCTAssertEqual(read(INTERRUPT_STATUS), 2)
        XCTAssertEqual(interrupt.count, 1)
    }
}
