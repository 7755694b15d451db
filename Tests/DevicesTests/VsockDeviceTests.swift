import XCTest
import CLinux
@testable import Devices
import SwiftletCore

/// A guest driver for a VsockDevice: an rx queue of fixed 4 KiB buffers, re-posted as they
/// are used, and a tx queue each packet of which is a header buffer and a payload buffer.
final class VsockGuest {
    static let cid: UInt64 = 3
    static let rxBufferSize: UInt32 = 44 + 4096
    let device: VsockDevice
    let rx: QueueDriver
    let tx: QueueDriver
    var rxQueue: Virtqueue
    var txQueue: Virtqueue
    private var rxBuffers: [UInt64] = []
    private var rxSeen: UInt16 = 0
    private var txDescriptor = 0
    private(set) var lastRxProgress: QueueProgress?
    /// Buffers posted: rx holds `rxCount` of them.
    init(device: VsockDevice, rxCount: Int = 32) throws {
        self.device = device
        let memory = { try GuestMemory(regions: [.init(guestBase: QueueDriver.ramBase, size: 16 << 20)]) }
        rx = try QueueDriver(size: 64, memory: try memory())
        tx = try QueueDriver(size: 64, memory: try memory())
        rxQueue = try rx.queue()
        txQueue = try tx.queue()
        for i in 0..<rxCount {
            let address = try rx.buffer(VsockGuest.rxBufferSize)
            rxBuffers.append(address)
            try rx.descriptor(i, address: address, length: VsockGuest.rxBufferSize, flags: VIRTQ_DESC_F_WRITE)
            try rx.makeAvailable(UInt16(i))
        }
    }

    /// Processes rx and returns the packets delivered, re-posting their buffers.
    @discardableResult
    func receive(repost: Bool = true) throws -> [(header: VsockHeader, payload: [UInt8])] {
        lastRxProgress = try device.process(queue: VirtioVsock.receiveQueue, &rxQueue, memory: rx.memory)
        var out: [(VsockHeader, [UInt8])] = []
        while rxSeen != rx.usedIndex {
            let element = rx.usedElement(rxSeen)
            rxSeen &+= 1
            let bytes = rx.bytes(at: rxBuffers[Int(element.id)], count: Int(element.length))
            if let header = bytes.withUnsafeBytes({ VsockHeader($0) }) {
                XCTAssertEqual(Int(header.len), bytes.count - 44, "len matches what was written")
                out.append((header, Array(bytes[44...])))
            } else {
                out.append((VsockHeader(), []))
            }
            if repost { try rx.makeAvailable(UInt16(element.id)) }
        }
        return out
    }

    /// Posts again every rx buffer the device used (after `receive(repost: false)`).
    func repostAll(_ heads: [UInt32]) throws { for head in heads { try rx.makeAvailable(UInt16(head)) } }

    /// Puts a packet on tx (header and payload in separate buffers) without processing.
    func queue(_ header: VsockHeader, payload: [UInt8] = [], headerBytes: [UInt8]? = nil) throws {
        let bytes = headerBytes ?? header.bytes
        let h = try tx.buffer(UInt32(bytes.count))
        try tx.memory.write(bytes, at: h)
        let first = txDescriptor % 64, second = (txDescriptor + 1) % 64
        txDescriptor += 2
        if payload.isEmpty {
            try tx.descriptor(first, address: h, length: UInt32(bytes.count))
        } else {
            let p = try tx.buffer(UInt32(payload.count))
            try tx.memory.write(payload, at: p)
            try tx.descriptor(first, address: h, length: UInt32(bytes.count), flags: VIRTQ_DESC_F_NEXT, next: UInt16(second))
            try tx.descriptor(second, address: p, length: UInt32(payload.count))
        }
        try tx.makeAvailable(UInt16(first))
    }

    func transmit() throws {
        XCTAssertEqual(try device.process(queue: VirtioVsock.transmitQueue, &txQueue, memory: tx.memory), .done)
        XCTAssertEqual(tx.usedIndex, tx.availableIndex, "every tx chain is returned")
    }

    func send(_ header: VsockHeader, payload: [UInt8] = []) throws {
        try queue(header, payload: payload)
        try transmit()
    }

    /// A packet from the guest on connection (guestPort, hostPort) with the guest's credit.
    func packet(_ op: UInt16, guestPort: UInt32, hostPort: UInt32, len: UInt32 = 0, flags: UInt32 = 0,
                bufAlloc: UInt32 = 64 * 1024, fwdCnt: UInt32 = 0) -> VsockHeader {
        VsockHeader(srcCID: VsockGuest.cid, dstCID: 2, srcPort: guestPort, dstPort: hostPort, len: len,
                    type: VIRTIO_VSOCK_TYPE_STREAM, op: op, flags: flags, bufAlloc: bufAlloc, fwdCnt: fwdCnt)
    }
}

final class VsockDeviceTests: XCTestCase {
    private var directory = ""
    private var uds: String { directory + "/v.sock" }

    override func setUpWithError() throws {
        var template = Array("/tmp/swiftlet-vsock-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        XCTAssertNotNil(made)
        directory = String(cString: made!)
    }

    override func tearDown() {
        _ = try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: host-side helpers

    private func connectClient(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard var address = VsockDevice.address(path) else { throw SwiftletError.invalidArgument(path) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { close(fd); throw SwiftletError.lastSystemError("connect \(path)") }
        _ = sl_fcntl(fd, F_SETFL, O_NONBLOCK)
        return fd
    }

    private func listenServer(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = VsockDevice.address(path)!
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(fd, 16), 0)
        return fd
    }

    private func write(_ fd: Int32, _ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    }

    /// What the socket holds now (nonblocking), and whether it reached end of file.
    private func drain(_ fd: Int32, limit: Int = 1 << 20) -> (bytes: [UInt8], eof: Bool) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n == 0 { return (out, true) }
            if n < 0 { break }
            out += buffer[0..<n]
        }
        return (out, false)
    }

    private func pattern(_ count: Int, seed: UInt32) -> [UInt8] {
        var x = seed | 1
        return (0..<count).map { _ in
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            return UInt8(truncatingIfNeeded: x)
        }
    }

    private func checksum(_ bytes: [UInt8]) -> UInt64 {
        bytes.reduce(UInt64(0xcbf29ce484222325)) { ($0 ^ UInt64($1)) &* 0x100000001b3 }
    }

    /// Host-initiated handshake to guest port `port`: the host port assigned.
    private func handshake(_ guest: VsockGuest, client: Int32, port: UInt32) throws -> UInt32 {
        XCTAssertEqual(write(client, Array("CONNECT \(port)\n".utf8)), "CONNECT \(port)\n".utf8.count)
        let packets = try guest.receive()
        XCTAssertEqual(packets.count, 1)
        let request = try XCTUnwrap(packets.first?.header)
        XCTAssertEqual(request.op, VIRTIO_VSOCK_OP_REQUEST)
        XCTAssertEqual(request.srcCID, 2)
        XCTAssertEqual(request.dstCID, VsockGuest.cid)
        XCTAssertEqual(request.dstPort, port)
        XCTAssertEqual(request.type, VIRTIO_VSOCK_TYPE_STREAM)
        XCTAssertGreaterThanOrEqual(request.srcPort, VsockDevice.firstLocalPort)
        XCTAssertEqual(request.bufAlloc, VsockDevice.bufferSize)
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_RESPONSE, guestPort: port, hostPort: request.srcPort))
        XCTAssertEqual(String(decoding: drain(client).bytes, as: UTF8.self), "OK \(request.srcPort)\n")
        return request.srcPort
    }

    // MARK: tests

    func testIdentityConfigurationAndInitChecks() throws {
        let device = try VsockDevice(guestCID: 0x1_0000_0007 & 0xFFFF_FFFF, udsPath: uds)
        XCTAssertEqual(device.deviceID, 19)
        XCTAssertEqual(device.deviceFeatures, 0)
        XCTAssertEqual(device.queueSizes.count, 3)
        var config = [UInt8](repeating: 0xAA, count: 12)
        config.withUnsafeMutableBytes { device.readConfig(at: 0, into: $0) }
        XCTAssertEqual(config, [7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "guest_cid le64, then zeros")
        [UInt8](repeating: 0xFF, count: 8).withUnsafeBytes { device.writeConfig(at: 0, from: $0) }
        config.withUnsafeMutableBytes { device.readConfig(at: 4, into: $0) }
        XCTAssertEqual(config, [UInt8](repeating: 0, count: 12), "read-only; high half and past the end are zero")
        config.withUnsafeMutableBytes { device.readConfig(at: UInt64.max - 1, into: $0) }
        XCTAssertEqual(config, [UInt8](repeating: 0, count: 12))
        let events = device.hostEvents
        XCTAssertEqual(events.count, 2)
        XCTAssertEqual(events.map(\.queue), [0, 0])
        XCTAssertEqual(events.map(\.isCounter), [false, true])
        var info = stat()
        XCTAssertEqual(lstat(uds, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        XCTAssertThrowsError(try VsockDevice(guestCID: 3, udsPath: uds)) { error in
            XCTAssertTrue((error as? SwiftletError)?.isBadInput ?? false, "an existing path: \(error)")
        }
        XCTAssertThrowsError(try VsockDevice(guestCID: 2, udsPath: directory + "/other.sock"))
        XCTAssertThrowsError(try VsockDevice(guestCID: 0xFFFF_FFFF, udsPath: directory + "/other.sock"))
    }

    func testTheEventQueueIsHeldNotRescheduled() throws {
        // Linux posts event buffers at probe; the device never uses them. Answering `.done`
        // would make the transport find them available and reschedule the queue for ever.
        let device = try VsockDevice(guestCID: 3, udsPath: uds)
        let driver = try QueueDriver()
        for head in 0..<8 {
            let buffer = try driver.buffer(8)
            try driver.descriptor(head, address: buffer, length: 8, flags: VIRTQ_DESC_F_WRITE)
            try driver.makeAvailable(UInt16(head))
        }
        var queue = try driver.queue(eventIndex: true)
        XCTAssertEqual(try device.process(queue: 2, &queue, memory: driver.memory), .waitingOnHost)
        XCTAssertEqual(queue.nextAvailable, 0, "the buffers stay with the device, untouched")
        XCTAssertEqual(driver.usedIndex, 0)
    }

    func testDeinitUnlinksTheSocket() throws {
        var device: VsockDevice? = try VsockDevice(guestCID: 3, udsPath: uds)
        XCTAssertNotNil(device)
        var info = stat()
        XCTAssertEqual(lstat(uds, &info), 0)
        device = nil
        XCTAssertNotEqual(lstat(uds, &info), 0, "uds_path removed")
    }

    func testHostInitiatedHandshakeAndDataBothWays() throws {
        let device = try VsockDevice(guestCID: VsockGuest.cid, udsPath: uds)
        let guest = try VsockGuest(device: device)
        let client = try connectClient(uds)
        defer { close(client) }
        // Before CONNECT, nothing reaches the guest; the device's epoll fd is readable.
        var ready = pollfd(fd: device.hostEvents[0].fd, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&ready, 1, 1000), 1, "the epoll fd wakes the I/O thread")
        let hostPort = try handshake(guest, client: client, port: 1234)
        XCTAssertEqual(device.connectionsOpened, 1)

        // Host to guest, in one small write: one RW packet.
        XCTAssertEqual(write(client, Array("hello".utf8)), 5)
        let packets = try guest.receive()
        XCTAssertEqual(packets.count, 1)
        XCTAssertEqual(packets[0].header.op, VIRTIO_VSOCK_OP_RW)
        XCTAssertEqual(packets[0].header.srcPort, hostPort)
        XCTAssertEqual(packets[0].header.dstPort, 1234)
        XCTAssertEqual(packets[0].payload, Array("hello".utf8))
        XCTAssertEqual(guest.lastRxProgress, .waitingOnHost, "socket dry")

        // Guest to host.
        let greeting = Array("hi from the guest".utf8)
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_RW, guestPort: 1234, hostPort: hostPort, len: UInt32(greeting.count)),
                       payload: greeting)
        XCTAssertEqual(drain(client).bytes, greeting)
        XCTAssertEqual(device.bytesFromGuest, UInt64(greeting.count))
        XCTAssertEqual(device.bytesToGuest, 5)
    }

    func testLargeTransfersBothWaysFollowCredit() throws {
        let device = try VsockDevice(guestCID: VsockGuest.cid, udsPath: uds)
        let guest = try VsockGuest(device: device)
        let client = try connectClient(uds)
        defer { close(client) }
        let guestPort: UInt32 = 77
        let hostPort = try handshake(guest, client: client, port: guestPort)

        // Host -> guest, 300 KiB against a guest buffer of 16 KiB: the device stops at the
        // credit, asks for more once, and continues on each CREDIT_UPDATE.
        let guestBuffer: UInt32 = 16 * 1024
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_CREDIT_UPDATE, guestPort: guestPort, hostPort: hostPort, bufAlloc: guestBuffer))
        let down = pattern(300 * 1024, seed: 7)
        var written = 0
        var received: [UInt8] = []
        var consumed: UInt32 = 0
        var creditRequests = 0
        var rounds = 0
        while received.count < down.count && rounds < 10_000 {
            rounds += 1
            if written < down.count {
                let n = write(client, Array(down[written..<min(down.count, written + 32 * 1024)]))
                if n > 0 { written += n }
            }
            for (header, payload) in try guest.receive() {
                if header.op == VIRTIO_VSOCK_OP_CREDIT_REQUEST { creditRequests += 1; continue }
                XCTAssertEqual(header.op, VIRTIO_VSOCK_OP_RW)
                XCTAssertLessThanOrEqual(payload.count, 4096, "one rx buffer each")
                received += payload
            }
            let inFlight = UInt32(received.count) &- consumed
            XCTAssertLessThanOrEqual(inFlight, guestBuffer, "never past the guest's credit")
            // The guest's application reads everything, and says so.
            consumed = UInt32(truncatingIfNeeded: received.count)
            try guest.send(guest.packet(VIRTIO_VSOCK_OP_CREDIT_UPDATE, guestPort: guestPort, hostPort: hostPort,
                                        bufAlloc: guestBuffer, fwdCnt: consumed))
        }
        XCTAssertEqual(received.count, down.count)
        XCTAssertEqual(checksum(received), checksum(down))
        XCTAssertEqual(received, down)

        // Guest -> host, 1 MiB in 16 KiB packets: more than the socket holds, so the device
        // buffers, stops advancing fwd_cnt, and sends CREDIT_UPDATE as the host reads.
        let up = pattern(1 << 20, seed: 99)
        var sent = 0
        var hostFwdCnt: UInt32 = 0
        var hostBufAlloc = VsockDevice.bufferSize
        var got: [UInt8] = []
        var updates = 0
        rounds = 0
        while got.count < up.count && rounds < 10_000 {
            rounds += 1
            // The guest sends only what the device's credit allows.
            var free = Int(hostBufAlloc) - (sent - Int(hostFwdCnt))
            while sent < up.count && free > 0 {
                let n = min(16 * 1024, free, up.count - sent)
                try guest.queue(guest.packet(VIRTIO_VSOCK_OP_RW, guestPort: guestPort, hostPort: hostPort, len: UInt32(n),
                                             bufAlloc: guestBuffer, fwdCnt: consumed), payload: Array(up[sent..<(sent + n)]))
                sent += n
                free -= n
                if guest.tx.availableIndex &- guest.tx.usedIndex >= 16 { try guest.transmit() }
            }
            try guest.transmit()
            got += drain(client, limit: 48 * 1024).bytes
            for (header, _) in try guest.receive() {
                XCTAssertEqual(header.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE)
                updates += 1
                hostFwdCnt = header.fwdCnt
                hostBufAlloc = header.bufAlloc
            }
        }
        XCTAssertEqual(got.count, up.count)
        XCTAssertEqual(checksum(got), checksum(up))
        XCTAssertGreaterThan(updates, 0, "credit updates let the guest go on")
        XCTAssertEqual(device.malformedPackets, 0)
        XCTAssertEqual(device.resetsSent, 0)
        XCTAssertLessThanOrEqual(creditRequests, 64)
    }

    func testGuestInitiatedConnectionAndRefusal() throws {
        let device = try VsockDevice(guestCID: VsockGuest.cid, udsPath: uds)
        let guest = try VsockGuest(device: device)
        let server = listenServer(uds + "_5000")
        defer { close(server) }
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_REQUEST, guestPort: 40000, hostPort: 5000))
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_REQUEST, guestPort: 40001, hostPort: 5001))
        var kick = pollfd(fd: device.hostEvents[1].fd, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&kick, 1, 0), 1, "tx woke rx through the eventfd")
        let packets = try guest.receive()
        XCTAssertEqual(packets.map(\.header.op), [VIRTIO_VSOCK_OP_RST, VIRTIO_VSOCK_OP_RESPONSE], "refusals go first")
        XCTAssertEqual(packets[0].header.dstPort, 40001)
        XCTAssertEqual(packets[0].header.srcPort, 5001)
        XCTAssertEqual(packets[1].header.dstPort, 40000)
        XCTAssertEqual(packets[1].header.srcPort, 5000)
        XCTAssertEqual(device.connectionsRefused, 1)
        XCTAssertEqual(device.connectionsOpened, 1)
        let peer = accept(server, nil, nil)
        XCTAssertGreaterThanOrEqual(peer, 0)
        defer { close(peer) }
        _ = sl_fcntl(peer, F_SETFL, O_NONBLOCK)
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_RW, guestPort: 40000, hostPort: 5000, len: 4), payload: [1, 2, 3, 4])
        XCTAssertEqual(drain(peer).bytes, [1, 2, 3, 4])
        XCTAssertEqual(write(peer, [9, 8, 7]), 3)
        let reply = try guest.receive()
        XCTAssertEqual(reply.first?.header.op, VIRTIO_VSOCK_OP_RW)
        XCTAssertEqual(reply.first?.payload, [9, 8, 7])
    }

    func testShutdownBothDirectionsThenReset() throws {
        let device = try VsockDevice(guestCID: VsockGuest.cid, udsPath: uds)
        let guest = try VsockGuest(device: device)
        let client = try connectClient(uds)
        defer { close(client) }
        let hostPort = try handshake(guest, client: client, port: 10)
        // The guest will send no more: the client sees end of file, and can still write.
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_SHUTDOWN, guestPort: 10, hostPort: hostPort, flags: VIRTIO_VSOCK_SHUTDOWN_F_SEND))
        XCTAssertTrue(drain(client).eof, "write side shut")
        XCTAssertEqual(write(client, [5, 5]), 2)
        var packets = try guest.receive()
        XCTAssertEqual(packets.first?.header.op, VIRTIO_VSOCK_OP_RW)
        XCTAssertEqual(packets.first?.payload, [5, 5])
        // The client will send no more: the guest gets SHUTDOWN(SEND).
        XCTAssertEqual(shutdown(client, Int32(SHUT_WR)), 0)
        packets = try guest.receive()
        XCTAssertEqual(packets.map(\.header.op), [VIRTIO_VSOCK_OP_SHUTDOWN])
        XCTAssertEqual(packets.first?.header.flags, VIRTIO_VSOCK_SHUTDOWN_F_SEND)
        XCTAssertEqual(device.openConnections, 1)
        // The guest shuts both ways: the device answers RST and closes.
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_SHUTDOWN, guestPort: 10, hostPort: hostPort, flags: 3))
        packets = try guest.receive()
        XCTAssertEqual(packets.map(\.header.op), [VIRTIO_VSOCK_OP_RST])
        XCTAssertEqual(device.openConnections, 0)
        XCTAssertEqual(device.connectionsClosed, 1)
        XCTAssertEqual(device.resetsSent, 1)
        XCTAssertEqual(write(client, [1]), -1, "the socket is closed")
    }

    func testGuestResetClosesTheClientAndStrayPacketsGetReset() throws {
        let device = try VsockDevice(guestCID: VsockGuest.cid, udsPath: uds)
        let guest = try VsockGuest(device: device)
        let client = try connectClient(uds)
        defer { close(client) }
        let hostPort = try handshake(guest, client: client, port: 11)
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_RST, guestPort: 11, hostPort: hostPort))
        XCTAssertTrue(drain(client).eof)
        XCTAssertEqual(device.openConnections, 0)
        XCTAssertTrue(try guest.receive().isEmpty, "an RST is not answered")
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_RW, guestPort: 11, hostPort: hostPort, len: 1), payload: [0])
        let packets = try guest.receive()
        XCTAssertEqual(packets.map(\.header.op), [VIRTIO_VSOCK_OP_RST], "data for no connection")
        // A client refused by the guest: RST to the REQUEST closes it.
        let second = try connectClient(uds)
        defer { close(second) }
        XCTAssertEqual(write(second, Array("CONNECT 12\n".utf8)), 11)
        let request = try XCTUnwrap(try guest.receive().first?.header)
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_RST, guestPort: 12, hostPort: request.srcPort))
        XCTAssertTrue(drain(second).eof)
        // A bad CONNECT line.
        let third = try connectClient(uds)
        defer { close(third) }
        XCTAssertEqual(write(third, Array("HELLO\n".utf8)), 6)
        XCTAssertTrue(try guest.receive().isEmpty)
        XCTAssertTrue(drain(third).eof)
        XCTAssertEqual(device.connectionsRefused, 1)
    }

    func testManyConcurrentConnectionsAndTheLimit() throws {
        let device = try VsockDevice(guestCID: VsockGuest.cid, udsPath: uds, maxConnections: 20)
        let guest = try VsockGuest(device: device, rxCount: 48)
        var clients: [Int32] = []
        defer { clients.forEach { close($0) } }
        for i in 0..<20 {
            let client = try connectClient(uds)
            clients.append(client)
            XCTAssertEqual(write(client, Array("CONNECT \(2000 + i)\n".utf8)), "CONNECT \(2000 + i)\n".utf8.count)
        }
        let requests = try guest.receive().map(\.header)
        XCTAssertEqual(requests.count, 20)
        XCTAssertEqual(Set(requests.map(\.dstPort)), Set((0..<20).map { UInt32(2000 + $0) }))
        XCTAssertEqual(Set(requests.map(\.srcPort)).count, 20, "distinct host ports")
        var hostPorts: [UInt32: UInt32] = [:]
        for request in requests {
            hostPorts[request.dstPort] = request.srcPort
            try guest.queue(guest.packet(VIRTIO_VSOCK_OP_RESPONSE, guestPort: request.dstPort, hostPort: request.srcPort))
        }
        try guest.transmit()
        // Over the limit: a 21st client is closed, a guest REQUEST is answered RST.
        let extra = try connectClient(uds)
        defer { close(extra) }
        try guest.send(guest.packet(VIRTIO_VSOCK_OP_REQUEST, guestPort: 1, hostPort: 1))
        let refusals = try guest.receive()
        XCTAssertEqual(refusals.map(\.header.op), [VIRTIO_VSOCK_OP_RST])
        XCTAssertTrue(drain(extra).eof)
        XCTAssertEqual(device.connectionsRefused, 2)
        // Each connection carries its own bytes, both ways.
        for (i, client) in clients.enumerated() {
            let port = UInt32(2000 + i)
            XCTAssertEqual(String(decoding: drain(client).bytes, as: UTF8.self), "OK \(hostPorts[port]!)\n")
            let bytes = pattern(1000 + i, seed: UInt32(i + 1))
            try guest.queue(guest.packet(VIRTIO_VSOCK_OP_RW, guestPort: port, hostPort: hostPorts[port]!, len: UInt32(bytes.count)),
                            payload: bytes)
            XCTAssertEqual(write(client, [UInt8(i)]), 1)
        }
        try guest.transmit()
        for (i, client) in clients.enumerated() {
            XCTAssertEqual(drain(client).bytes, pattern(1000 + i, seed: UInt32(i + 1)), "client \(i)")
        }
        var fromHost: [UInt32: [UInt8]] = [:]
        for (header, payload) in try guest.receive() where header.op == VIRTIO_VSOCK_OP_RW {
            fromHost[header.dstPort, default: []] += payload
        }
        XCTAssertEqual(fromHost.count, 20)
        for i in 0..<20 { XCTAssertEqual(fromHost[UInt32(2000 + i)], [UInt8(i)]) }
        XCTAssertEqual(device.openConnections, 20)
    }

    func testMalformedPacketsAreCountedNeverTrap() throws {
        let device = try VsockDevice(guestCID: VsockGuest.cid, udsPath: uds)
        let guest = try VsockGuest(device: device)
        let good = guest.packet(VIRTIO_VSOCK_OP_REQUEST, guestPort: 5, hostPort: 6)
        var badOp = good; badOp.op = 99
        var badType = good; badType.type = 2
        var badSource = good; badSource.srcCID = 4
        var badDestination = good; badDestination.dstCID = 3
        var pastChain = good; pastChain.op = VIRTIO_VSOCK_OP_RW; pastChain.len = 10
        var tooLarge = good; tooLarge.op = VIRTIO_VSOCK_OP_RW; tooLarge.len = UInt32.max
        var resetBadType = good; resetBadType.op = VIRTIO_VSOCK_OP_RST; resetBadType.type = 7
        try guest.queue(badOp)
        try guest.queue(badType)
        try guest.queue(badSource)
        try guest.queue(badDestination)
        try guest.queue(pastChain, payload: [1, 2, 3])
        try guest.queue(tooLarge, payload: [1])
        try guest.queue(resetBadType)
        try guest.queue(good, headerBytes: Array(good.bytes[0..<20]))   // shorter than a header
        try guest.transmit()
        XCTAssertEqual(device.malformedPackets, 8)
        XCTAssertEqual(device.packetsFromGuest, 8)
        let replies = try guest.receive()
        XCTAssertEqual(replies.map(\.header.op), [VIRTIO_VSOCK_OP_RST, VIRTIO_VSOCK_OP_RST], "bad op and type are answered")
        XCTAssertEqual(replies.map(\.header.dstCID), [VsockGuest.cid, VsockGuest.cid])
        XCTAssertEqual(device.resetsSent, 2)
        XCTAssertEqual(device.openConnections, 0)
        XCTAssertEqual(device.connectionsRefused, 0, "nothing reached the connect path")
    }

    func testRxWaitsForBuffersAndTooSmallBuffersAreCounted() throws {
        let device = try VsockDevice(guestCID: VsockGuest.cid, udsPath: uds)
        let guest = try VsockGuest(device: device, rxCount: 0)
        let client = try connectClient(uds)
        defer { close(client) }
        XCTAssertEqual(write(client, Array("CONNECT 3\n".utf8)), 10)
        XCTAssertTrue(try guest.receive().isEmpty)
        XCTAssertEqual(guest.lastRxProgress, .done, "work waits for the driver's buffers")
        // A buffer too small for a header is used up empty and counted; a good one carries the REQUEST.
        let small = try guest.rx.buffer(16), big = try guest.rx.buffer(4140)
        try guest.rx.descriptor(0, address: small, length: 16, flags: VIRTQ_DESC_F_WRITE)
        try guest.rx.descriptor(1, address: big, length: 4140, flags: VIRTQ_DESC_F_WRITE)
        try guest.rx.makeAvailable(0)
        try guest.rx.makeAvailable(1)
        _ = try device.process(queue: VirtioVsock.receiveQueue, &guest.rxQueue, memory: guest.rx.memory)
        XCTAssertEqual(device.rxBadBuffers, 1)
        XCTAssertEqual(guest.rx.usedIndex, 2)
        XCTAssertEqual(guest.rx.usedElement(0).length, 0)
        XCTAssertEqual(guest.rx.usedElement(1).length, 44)
        let header = guest.rx.bytes(at: big, count: 44).withUnsafeBytes { VsockHeader($0) }
        XCTAssertEqual(header?.op, VIRTIO_VSOCK_OP_REQUEST)
        XCTAssertEqual(header?.dstPort, 3)
    }

    func testResetClosesConnectionsButKeepsListening() throws {
        let device = try VsockDevice(guestCID: VsockGuest.cid, udsPath: uds)
        var guest = try VsockGuest(device: device)
        let client = try connectClient(uds)
        defer { close(client) }
        _ = try handshake(guest, client: client, port: 21)
        let waiting = try connectClient(uds)   // still to write its CONNECT line
        defer { close(waiting) }
        _ = try guest.receive()
        XCTAssertEqual(device.openConnections, 2)
        device.reset()
        XCTAssertEqual(device.openConnections, 0)
        XCTAssertTrue(drain(client).eof)
        XCTAssertTrue(drain(waiting).eof)
        guest = try VsockGuest(device: device)
        let again = try connectClient(uds)
        defer { close(again) }
        _ = try handshake(guest, client: again, port: 22)
        XCTAssertEqual(device.openConnections, 1)
    }
}
