import XCTest
import CLinux
@testable import Devices
import SwiftletCore

/// A tap stand-in: one end of a SOCK_SEQPACKET socket pair keeps frame boundaries as a
/// tap does; the test reads and writes frames on the other end.
final class SocketPairBackend: NetBackend {
    let fd: Int32
    let peer: Int32
    var offloads: [UInt32] = []

    init() throws {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &fds) == 0 else { throw SwiftletError.lastSystemError("socketpair") }
        fd = fds[0]
        peer = fds[1]
        _ = sl_fcntl(fd, F_SETFL, O_NONBLOCK)
        _ = sl_fcntl(peer, F_SETFL, O_NONBLOCK)
    }

    deinit {
        close(fd)
        close(peer)
    }

    func setOffloads(_ flags: UInt32) -> Bool {
        offloads.append(flags)
        return true
    }

    /// A frame as the tap would deliver it: header, then payload.
    func deliver(_ bytes: [UInt8]) {
        XCTAssertEqual(bytes.withUnsafeBytes { write(peer, $0.baseAddress, $0.count) }, bytes.count)
    }

    /// The next frame the device sent, or nil.
    func sent() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 70000)
        let n = buffer.withUnsafeMutableBytes { read(peer, $0.baseAddress, $0.count) }
        return n < 0 ? nil : Array(buffer[0..<n])
    }
}

final class NetDeviceTests: XCTestCase {
    private let mac: [UInt8] = [0x06, 0, 0x0a, 0, 2, 2]
    private let writable = VIRTQ_DESC_F_WRITE
    private let next = VIRTQ_DESC_F_NEXT
    private let everything = VirtioNetFeature.csum | VirtioNetFeature.guestCsum | VirtioNetFeature.hostTSO4
        | VirtioNetFeature.hostTSO6 | VirtioNetFeature.guestTSO4 | VirtioNetFeature.mergeableRxBuffers | VirtioFeature.version1

    private func frame(_ length: Int, seed: UInt8 = 1) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) }
    }

    private func header(flags: UInt8 = 0, gso: UInt8 = 0, gsoSize: UInt16 = 0, csumStart: UInt16 = 0, csumOffset: UInt16 = 0) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 12)
        bytes[0] = flags
        bytes[1] = gso
        writeLE(gsoSize, into: &bytes, at: 4)
        writeLE(csumStart, into: &bytes, at: 6)
        writeLE(csumOffset, into: &bytes, at: 8)
        return bytes
    }

    func testIdentityAndConfiguration() throws {
        let backend = try SocketPairBackend()
        let net = NetDevice(backend: backend, mac: mac, mtu: 1400)
        XCTAssertEqual(net.deviceID, 1)
        XCTAssertEqual(net.queueSizes, [256, 256])
        for feature in [VirtioNetFeature.mac, VirtioNetFeature.status, VirtioNetFeature.mergeableRxBuffers, VirtioNetFeature.mtu,
                        VirtioNetFeature.csum, VirtioNetFeature.guestCsum, VirtioNetFeature.hostTSO4, VirtioNetFeature.guestTSO6] {
            XCTAssertNotEqual(net.deviceFeatures & feature, 0, "feature \(feature)")
        }
        var config = [UInt8](repeating: 0xAA, count: 14)
        config.withUnsafeMutableBytes { net.readConfig(at: 0, into: $0) }
        XCTAssertEqual(config, mac + [1, 0] + [1, 0] + [0x78, 0x05] + [0, 0], "mac, status LINK_UP, one queue pair, mtu 1400")
        [UInt8](repeating: 0xFF, count: 6).withUnsafeBytes { net.writeConfig(at: 0, from: $0) }
        config.withUnsafeMutableBytes { net.readConfig(at: UInt64.max - 2, into: $0) }
        XCTAssertEqual(config, [UInt8](repeating: 0, count: 14), "offsets that wrap read zero")
        XCTAssertEqual(NetDevice(backend: backend, mac: mac, mtu: nil).deviceFeatures & VirtioNetFeature.mtu, 0)
    }

    func testOffloadsFollowTheGuestsFeatures() throws {
        XCTAssertEqual(NetDevice.tapOffloads(for: 0), 0)
        XCTAssertEqual(NetDevice.tapOffloads(for: VirtioNetFeature.guestTSO4), 0, "TSO without checksum offload is not passed on")
        XCTAssertEqual(NetDevice.tapOffloads(for: VirtioNetFeature.guestCsum), Tap.offloadChecksum)
        XCTAssertEqual(NetDevice.tapOffloads(for: VirtioNetFeature.guestCsum | VirtioNetFeature.guestTSO4 | VirtioNetFeature.guestTSO6),
                       Tap.offloadChecksum | Tap.offloadTSO4 | Tap.offloadTSO6)
        let backend = try SocketPairBackend()
        let net = NetDevice(backend: backend, mac: mac, mtu: nil)
        net.activate(features: everything)
        net.reset()
        XCTAssertEqual(backend.offloads, [Tap.offloadChecksum | Tap.offloadTSO4, 0], "set on activation, cleared on reset")
    }

    // MARK: transmit

    /// Puts a frame in a two-descriptor chain at `head`, split at `split`.
    private func offerTransmit(_ driver: QueueDriver, head: Int, _ bytes: [UInt8], split: Int) throws {
        let a = try driver.buffer(UInt32(split)), b = try driver.buffer(UInt32(bytes.count - split))
        try driver.memory.write(Array(bytes[0..<split]), at: a)
        try driver.memory.write(Array(bytes[split...]), at: b)
        try driver.descriptor(head, address: a, length: UInt32(split), flags: next, next: UInt16(head + 1))
        try driver.descriptor(head + 1, address: b, length: UInt32(bytes.count - split))
        try driver.makeAvailable(UInt16(head))
    }

    func testTransmitSendsEachFrameWholeFromGuestMemory() throws {
        let backend = try SocketPairBackend()
        let net = NetDevice(backend: backend, mac: mac, mtu: nil)
        net.activate(features: everything)
        let driver = try QueueDriver()
        let first = header() + frame(60), second = header(flags: 1, csumStart: 34, csumOffset: 16) + frame(1500, seed: 9)
        try offerTransmit(driver, head: 0, first, split: 5)        // the header split across buffers
        try offerTransmit(driver, head: 2, second, split: 100)
        var queue = try driver.queue()
        XCTAssertEqual(try net.process(queue: VirtioNet.transmitQueue, &queue, memory: driver.memory), .done)
        XCTAssertEqual(backend.sent(), first)
        XCTAssertEqual(backend.sent(), second)
        XCTAssertNil(backend.sent())
        XCTAssertEqual(driver.usedIndex, 2)
        XCTAssertEqual(driver.usedElement(1).id, 2)
        XCTAssertEqual(driver.usedElement(1).length, 0)
        XCTAssertEqual(net.txFrames, 2)
        XCTAssertEqual(net.txBytes, 1560)
        XCTAssertEqual(net.txMalformed, 0)
    }

    func testMalformedFramesAreDroppedAndCounted() throws {
        let backend = try SocketPairBackend()
        let net = NetDevice(backend: backend, mac: mac, mtu: nil)
        net.activate(features: VirtioFeature.version1 | VirtioNetFeature.mergeableRxBuffers)   // no offloads negotiated
        let driver = try QueueDriver()
        let bad: [[UInt8]] = [
            header() + frame(13),                                          // shorter than an Ethernet header
            header(flags: 2) + frame(60),                                  // DATA_VALID is the device's flag
            header(flags: 1, csumStart: 50, csumOffset: 10) + frame(60),   // checksum offload not negotiated
            header(gso: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1448) + frame(3000),  // TSO not negotiated
            Array(header().prefix(8)),                                     // not even a header
        ]
        for (index, bytes) in bad.enumerated() { try offerTransmit(driver, head: 2 * index, bytes, split: 4) }
        var queue = try driver.queue()
        try net.process(queue: VirtioNet.transmitQueue, &queue, memory: driver.memory)
        XCTAssertNil(backend.sent(), "nothing reached the tap")
        XCTAssertEqual(net.txMalformed, UInt64(bad.count))
        XCTAssertEqual(driver.usedIndex, UInt16(bad.count), "every chain is returned")
        XCTAssertEqual(net.txFrames, 0)
    }

    func testHeaderChecks() {
        let all = everything | VirtioNetFeature.hostECN
        var h = VirtioNetHeader()
        XCTAssertNil(h.transmitFault(frameLength: 14, features: 0))
        XCTAssertEqual(h.transmitFault(frameLength: 13, features: 0), .tooShort)
        XCTAssertEqual(h.transmitFault(frameLength: VirtioNet.maxFrameLength + 1, features: all), .tooLong)
        h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM
        h.csumStart = 65535
        h.csumOffset = 65535
        XCTAssertEqual(h.transmitFault(frameLength: 1000, features: all), .badChecksumRequest, "no overflow on the sum")
        h.csumStart = 34
        h.csumOffset = 16
        XCTAssertNil(h.transmitFault(frameLength: 1000, features: all))
        h.gsoType = VIRTIO_NET_HDR_GSO_TCPV6
        XCTAssertEqual(h.transmitFault(frameLength: 1000, features: all), .badSegmentation, "gso_size 0")
        h.gsoSize = 1440
        XCTAssertNil(h.transmitFault(frameLength: 1000, features: all))
        XCTAssertEqual(h.transmitFault(frameLength: 1000, features: all & ~VirtioNetFeature.hostTSO6), .badSegmentation)
        h.gsoType = VIRTIO_NET_HDR_GSO_UDP
        XCTAssertEqual(h.transmitFault(frameLength: 1000, features: all), .badSegmentation, "UFO is not offered")
        h.gsoType = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN
        XCTAssertNil(h.transmitFault(frameLength: 1000, features: all))
        XCTAssertEqual(h.transmitFault(frameLength: 1000, features: everything), .badSegmentation, "ECN not negotiated")
        h.flags = 0
        XCTAssertEqual(h.transmitFault(frameLength: 1000, features: all), .badSegmentation, "segmentation needs a checksum request")
        var raw = [UInt8](repeating: 0, count: 12)
        raw[0] = 1; raw[1] = 4; raw[2] = 0x36; raw[4] = 0xA0; raw[5] = 5; raw[6] = 34; raw[8] = 16; raw[10] = 3
        let parsed = raw.withUnsafeBytes { VirtioNetHeader($0) }
        XCTAssertEqual([UInt64(parsed.flags), UInt64(parsed.gsoType), UInt64(parsed.hdrLen), UInt64(parsed.gsoSize),
                        UInt64(parsed.csumStart), UInt64(parsed.csumOffset), UInt64(parsed.numBuffers)], [1, 4, 0x36, 1440, 34, 16, 3])
    }

    // MARK: receive

    /// Posts `count` receive buffers of `length` bytes, one descriptor each; returns their addresses.
    private func postReceive(_ driver: QueueDriver, from head: Int, count: Int, length: UInt32) throws -> [UInt64] {
        var addresses: [UInt64] = []
        for i in 0..<count {
            let address = try driver.buffer(length)
            try driver.descriptor(head + i, address: address, length: length, flags: writable)
            try driver.makeAvailable(UInt16(head + i))
            addresses.append(address)
        }
        return addresses
    }

    func testReceiveSpreadsAFrameOverMergeableBuffers() throws {
        let backend = try SocketPairBackend()
        let net = NetDevice(backend: backend, mac: mac, mtu: nil)
        net.activate(features: everything)
        let driver = try QueueDriver()
        let buffers = try postReceive(driver, from: 0, count: 3, length: 2048)
        let payload = frame(3000)
        backend.deliver(header(flags: 2) + payload)
        var queue = try driver.queue(eventIndex: true)
        XCTAssertEqual(try net.process(queue: VirtioNet.receiveQueue, &queue, memory: driver.memory), .waitingOnHost, "the tap ran dry")
        XCTAssertEqual(driver.usedIndex, 2)
        XCTAssertEqual(driver.usedElement(0).length, 2048)
        XCTAssertEqual(driver.usedElement(1).length, 3012 - 2048)
        let received = driver.bytes(at: buffers[0], count: 2048) + driver.bytes(at: buffers[1], count: 3012 - 2048)
        XCTAssertEqual(received[0], 2, "the tap's header flags reach the guest")
        XCTAssertEqual(Array(received[10..<12]), [2, 0], "num_buffers = 2")
        XCTAssertEqual(Array(received[12...]), payload)
        XCTAssertEqual(net.rxFrames, 1)
        XCTAssertEqual(net.rxBytes, 3000)
    }

    func testAFrameWaitsForEnoughBuffersThenArrivesWhole() throws {
        let backend = try SocketPairBackend()
        let net = NetDevice(backend: backend, mac: mac, mtu: nil)
        net.activate(features: everything)
        let driver = try QueueDriver()
        var queue = try driver.queue(eventIndex: true)
        backend.deliver(header() + frame(3000))
        XCTAssertEqual(try net.process(queue: VirtioNet.receiveQueue, &queue, memory: driver.memory), .done, "no buffers at all")
        _ = try postReceive(driver, from: 0, count: 1, length: 2048)
        XCTAssertEqual(try net.process(queue: VirtioNet.receiveQueue, &queue, memory: driver.memory), .needsMoreBuffers)
        XCTAssertEqual(driver.usedIndex, 0, "nothing published while the frame does not fit")
        XCTAssertFalse(queue.prepareToWaitForMore())
        XCTAssertEqual(driver.availableEvent, 1, "the driver is asked to notify at its next buffer")
        _ = try postReceive(driver, from: 1, count: 1, length: 2048)
        XCTAssertEqual(try net.process(queue: VirtioNet.receiveQueue, &queue, memory: driver.memory), .waitingOnHost)
        XCTAssertEqual(driver.usedIndex, 2)
        XCTAssertEqual(net.rxFrames, 1)
        XCTAssertEqual(net.rxDropped, 0)
    }

    func testWithoutMergeableBuffersATooBigFrameIsDroppedAndTheBufferKept() throws {
        let backend = try SocketPairBackend()
        let net = NetDevice(backend: backend, mac: mac, mtu: nil)
        net.activate(features: VirtioFeature.version1)
        let driver = try QueueDriver()
        let buffers = try postReceive(driver, from: 0, count: 1, length: 1526)
        backend.deliver(header() + frame(3000))
        backend.deliver(header() + frame(100, seed: 5))
        var queue = try driver.queue()
        try net.process(queue: VirtioNet.receiveQueue, &queue, memory: driver.memory)
        XCTAssertEqual(net.rxDropped, 1)
        XCTAssertEqual(driver.usedIndex, 1)
        XCTAssertEqual(driver.usedElement(0).length, 112)
        XCTAssertEqual(driver.bytes(at: buffers[0] + 12, count: 100), frame(100, seed: 5))
        XCTAssertEqual(Array(driver.bytes(at: buffers[0] + 10, count: 2)), [1, 0], "num_buffers = 1")
    }

    func testAFrameNoQueueCanHoldIsDropped() throws {
        let backend = try SocketPairBackend()
        let net = NetDevice(backend: backend, mac: mac, mtu: nil)
        net.activate(features: everything)
        let driver = try QueueDriver(size: 4)
        _ = try postReceive(driver, from: 0, count: 4, length: 64)
        backend.deliver(header() + frame(1000))
        backend.deliver(header() + frame(40))
        var queue = try driver.queue()
        XCTAssertEqual(try net.process(queue: VirtioNet.receiveQueue, &queue, memory: driver.memory), .waitingOnHost)
        XCTAssertEqual(net.rxDropped, 1, "4 × 64 bytes can never hold 1012")
        XCTAssertEqual(net.rxFrames, 1, "the next frame still gets through")
        XCTAssertEqual(driver.usedIndex, 1)
    }

    func testBuffersTooSmallForTheHeaderAreCountedAndReturned() throws {
        let backend = try SocketPairBackend()
        let net = NetDevice(backend: backend, mac: mac, mtu: nil)
        net.activate(features: everything)
        let driver = try QueueDriver()
        _ = try postReceive(driver, from: 0, count: 1, length: 4)
        let good = try postReceive(driver, from: 1, count: 1, length: 2048)
        backend.deliver(header() + frame(100))
        var queue = try driver.queue()
        try net.process(queue: VirtioNet.receiveQueue, &queue, memory: driver.memory)
        XCTAssertEqual(net.rxBadBuffers, 1)
        XCTAssertEqual(driver.usedIndex, 2)
        XCTAssertEqual(driver.usedElement(0).length, 0)
        XCTAssertEqual(driver.usedElement(1).length, 112)
        XCTAssertEqual(driver.bytes(at: good[0] + 12, count: 100), frame(100))
        XCTAssertEqual(Array(driver.bytes(at: good[0] + 10, count: 2)), [1, 0])
    }

    func testResetDropsTheFrameHeldForTheOldDriver() throws {
        let backend = try SocketPairBackend()
        let net = NetDevice(backend: backend, mac: mac, mtu: nil)
        net.activate(features: everything)
        let driver = try QueueDriver()
        var queue = try driver.queue()
        backend.deliver(header() + frame(100))
        XCTAssertEqual(try net.process(queue: VirtioNet.receiveQueue, &queue, memory: driver.memory), .done)
        net.reset()
        XCTAssertEqual(net.rxDropped, 1)
        net.activate(features: everything)
        _ = try postReceive(driver, from: 0, count: 1, length: 2048)
        XCTAssertEqual(try net.process(queue: VirtioNet.receiveQueue, &queue, memory: driver.memory), .waitingOnHost)
        XCTAssertEqual(driver.usedIndex, 0)
    }
}
