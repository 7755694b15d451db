import CLinux
import SwiftletCore
import Synchronization

/// virtio-vsock (virtio 1.2 §5.10) with Firecracker's host side: stream connections between
/// the guest and host processes over Unix sockets.
///
/// - Host-initiated: a process connects to the listening socket at `udsPath` and writes
///   `CONNECT <guest port>\n`; the device sends REQUEST to that guest port and, on the
///   guest's RESPONSE, answers the process `OK <host port>\n` (a port assigned here, from
///   2^30 up). From then on the socket carries the stream. An RST closes the socket.
/// - Guest-initiated: a REQUEST to host port P connects (non-blocking) to the Unix socket
///   `<udsPath>_P`: RESPONSE when that works, RST when it does not.
///
/// Queues: rx 0 (packets to the guest), tx 1 (from the guest), event 2 (held; the device
/// never sends transport events). Config space: guest_cid (le64). No feature bits.
///
/// Host readiness: the device watches a changing set of sockets (the listener, one per
/// connection), while the I/O thread watches a fixed list registered before it starts. So
/// the device owns an epoll instance of its own (edge-triggered entries for its sockets)
/// and offers that one epoll fd as a host event: an epoll fd is itself pollable and turns
/// readable when any of its entries has an event, so the I/O thread's epoll wakes for it
/// (nested epoll, edge-triggered on the outer side) and processes the rx queue, where
/// `epoll_wait(…, 0)` lists which sockets are ready. The I/O thread stays unchanged and
/// knows nothing of connections coming and going. Each rx pass drains the inner epoll
/// completely, so a later socket event is a fresh edge for the outer one. Readiness the
/// device cannot act on yet (no guest buffers, no guest credit) is remembered per
/// connection (`hostReadable`), not left in the kernel, so nothing busy-loops.
/// The second host event, an eventfd, is the tx path's way to get rx processed: packets
/// the device owes the guest (RESPONSE, RST, CREDIT_UPDATE) go out on the rx queue.
///
/// Data moves without copies where it can: socket → guest with one readv straight into
/// the rx chain's buffers after the header, guest → socket with one sendmsg from the tx
/// chain's buffers. Only what a socket would not take is copied, into the connection's
/// buffer (at most buf_alloc, allocated when first needed); the guest's credit (fwd_cnt)
/// advances only as bytes reach the socket, so a slow host reader slows the guest down
/// instead of blocking the I/O thread. Everything is non-blocking.
///
/// Threads: like every device, `process`/`activate`/`reset` run under the transport's
/// processing lock (so rx and tx never run at once); counters are atomics.
public final class VsockDevice: VirtioDevice {
    public static let queueSize: UInt16 = 256
    public static let defaultMaxConnections = 256
    /// buf_alloc advertised per connection (Firecracker's 256 KiB).
    public static let bufferSize: UInt32 = 256 * 1024
    /// Host ports assigned to host-initiated connections start here (as in Firecracker).
    public static let firstLocalPort: UInt32 = 1 << 30
    /// `CONNECT <port>\n` is at most this long.
    static let connectLineLimit = 32
    /// RSTs to packets of no connection waiting for rx buffers; more are dropped (counted).
    static let orphanResetLimit = 256
    private static let listenerTag = UInt64.max
    private static let eventBatch = 64

    public var deviceID: UInt32 { VIRTIO_ID_VSOCK }
    public let deviceFeatures: UInt64 = 0
    public let queueSizes: [UInt16] = [VsockDevice.queueSize, VsockDevice.queueSize, VsockDevice.queueSize]
    public let guestCID: UInt64
    public let udsPath: String
    public let maxConnections: Int

    private let listenFD: Int32
    private let epollFD: Int32
    private let rxKick: EventNotifier

    private enum Kind { case free, awaitingConnect, connection }
    private struct Slot {
        var kind = Kind.free
        var fd: Int32 = -1
        /// Bumped at each reuse: an epoll event or stale tag for an earlier occupant is ignored.
        var generation: UInt32 = 0
        var connection: VsockConnection?
        /// The CONNECT line read so far.
        var line: [UInt8] = []
        /// The socket may have bytes (or EOF) for the guest: set by epoll, cleared on EAGAIN.
        var hostReadable = false
        /// In `ready` (an entry may outlive its occupant; it then serves the next one).
        var queued = false
        /// Guest bytes the socket would not take yet.
        var pendingOut: VsockByteRing?
        /// Shut the socket's write side once `pendingOut` is empty; done.
        var shutWriteWhenFlushed = false
        var writeShut = false
    }

    // Under the transport's processing lock:
    private var slots: [Slot]
    private var freeSlots: [Int]
    private var byKey: [UInt64: Int] = [:]
    /// Slots with something for the guest, round-robin.
    private var ready: [Int]
    private var readyHead = 0
    private var readyCount = 0
    private var orphanResets: [VsockHeader] = []
    private var orphanHead = 0
    private var nextLocalPort = VsockDevice.firstLocalPort
    private var rxWorkAdded = false
    private var chain = DescriptorChain()
    private let vectors = IOVectors(capacity: IOVectors.limit)
    private let headerBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: VsockHeader.size, alignment: 8)
    private let events: UnsafeMutablePointer<epoll_event>

    private let packetsFromGuestCounter = Atomic<UInt64>(0)
    private let packetsToGuestCounter = Atomic<UInt64>(0)
    private let bytesFromGuestCounter = Atomic<UInt64>(0)
    private let bytesToGuestCounter = Atomic<UInt64>(0)
    private let connectionsOpenedCounter = Atomic<UInt64>(0)
    private let connectionsClosedCounter = Atomic<UInt64>(0)
    private let connectionsRefusedCounter = Atomic<UInt64>(0)
    private let malformedPacketsCounter = Atomic<UInt64>(0)
    private let resetsSentCounter = Atomic<UInt64>(0)
    private let resetsDroppedCounter = Atomic<UInt64>(0)
    private let rxBadBuffersCounter = Atomic<UInt64>(0)
    private let hostErrorsCounter = Atomic<UInt64>(0)

    /// Listens on `udsPath` (which must not exist yet; mode 0600). `guestCID`: 3 up to
    /// 2^32 - 2 (0-2 and 2^32 - 1 are reserved, §5.10.4). `maxConnections`: connections and
    /// host clients still writing their CONNECT line, together; more are refused.
    public init(guestCID: UInt64, udsPath: String, maxConnections: Int = VsockDevice.defaultMaxConnections) throws(SwiftletError) {
        guard guestCID >= 3, guestCID < 0xFFFF_FFFF else {
            throw .invalidArgument("vsock guest_cid \(guestCID) is reserved (use 3 to 4294967294)")
        }
        guard maxConnections >= 1, maxConnections <= 65536 else {
            throw .invalidArgument("vsock connection limit \(maxConnections) is not in 1...65536")
        }
        guard var address = VsockDevice.address(udsPath) else {
            throw .invalidArgument("vsock uds_path \(udsPath) must be 1 to 107 bytes long")
        }
        var info = stat()
        if lstat(udsPath, &info) == 0 { throw .invalidArgument("vsock uds_path \(udsPath) already exists") }
        self.guestCID = guestCID
        self.udsPath = udsPath
        self.maxConnections = maxConnections

        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw .lastSystemError("epoll_create1") }
        let listener = sl_unix_socket(1)
        guard listener >= 0 else {
            let error = SwiftletError.lastSystemError("socket")
            close(epoll)
            throw error
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        // Owner-only before listen(): until then nobody can connect, whatever the mode was.
        guard bound == 0, chmod(udsPath, 0o600) == 0, listen(listener, 128) == 0 else {
            let error = SwiftletError.invalidArgument("cannot listen on vsock uds_path \(udsPath): \(SwiftletError.errnoString(sl_errno()))")
            if bound == 0 { unlink(udsPath) }
            close(listener)
            close(epoll)
            throw error
        }
        let kick: EventNotifier
        do throws(SwiftletError) {
            kick = try EventNotifier()
        } catch {
            unlink(udsPath)
            close(listener)
            close(epoll)
            throw error
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLET.rawValue
        event.data.u64 = VsockDevice.listenerTag
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event) == 0 else {
            let error = SwiftletError.lastSystemError("epoll_ctl")
            unlink(udsPath)
            close(listener)
            close(epoll)
            throw error
        }
        listenFD = listener
        epollFD = epoll
        rxKick = kick
        slots = [Slot](repeating: Slot(), count: maxConnections)
        freeSlots = Array((0..<maxConnections).reversed())
        ready = [Int](repeating: 0, count: maxConnections)
        byKey.reserveCapacity(maxConnections)
        orphanResets.reserveCapacity(VsockDevice.orphanResetLimit)
        events = .allocate(capacity: VsockDevice.eventBatch)
    }

    deinit {
        closeAll()
        close(listenFD)
        unlink(udsPath)
        close(epollFD)
        headerBuffer.deallocate()
        events.deallocate()
    }

    // MARK: counters

    /// Packets and payload bytes from and to the guest; connections opened (either side
    /// asked and a socket exists), closed, and refused (over the limit, a bad CONNECT
    /// line, nobody listening at `<uds_path>_P`); guest packets refused as malformed; RSTs
    /// sent to the guest and RSTs dropped for want of room; rx chains too small for a
    /// header; host socket errors other than would-block.
    public var packetsFromGuest: UInt64 { packetsFromGuestCounter.load(ordering: .relaxed) }
    public var packetsToGuest: UInt64 { packetsToGuestCounter.load(ordering: .relaxed) }
    public var bytesFromGuest: UInt64 { bytesFromGuestCounter.load(ordering: .relaxed) }
    public var bytesToGuest: UInt64 { bytesToGuestCounter.load(ordering: .relaxed) }
    public var connectionsOpened: UInt64 { connectionsOpenedCounter.load(ordering: .relaxed) }
    public var connectionsClosed: UInt64 { connectionsClosedCounter.load(ordering: .relaxed) }
    public var connectionsRefused: UInt64 { connectionsRefusedCounter.load(ordering: .relaxed) }
    public var malformedPackets: UInt64 { malformedPacketsCounter.load(ordering: .relaxed) }
    public var resetsSent: UInt64 { resetsSentCounter.load(ordering: .relaxed) }
    public var resetsDropped: UInt64 { resetsDroppedCounter.load(ordering: .relaxed) }
    public var rxBadBuffers: UInt64 { rxBadBuffersCounter.load(ordering: .relaxed) }
    public var hostErrors: UInt64 { hostErrorsCounter.load(ordering: .relaxed) }

    /// Connections (and host clients still writing CONNECT) open now. Under the processing
    /// lock, or in tests.
    public var openConnections: Int { maxConnections - freeSlots.count }

    /// Both wake the rx queue: the device's epoll fd (its sockets' readiness, read dry each
    /// time) and the eventfd the tx path signals when it owes the guest a packet.
    public var hostEvents: [VirtioHostEvent] {
        [VirtioHostEvent(fd: epollFD, queue: VirtioVsock.receiveQueue, isCounter: false),
         VirtioHostEvent(fd: rxKick.fd, queue: VirtioVsock.receiveQueue, isCounter: true)]
    }

    // MARK: configuration space

    public func readConfig(at offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count {
            let (position, overflow) = offset.addingReportingOverflow(UInt64(i))
            data[i] = overflow || position >= VirtioVsockConfig.size ? 0 : UInt8(truncatingIfNeeded: guestCID >> (8 * position))
        }
    }

    /// guest_cid is the host's to choose.
    public func writeConfig(at offset: UInt64, from data: UnsafeRawBufferPointer) {}

    // MARK: lifecycle

    public func activate(features: UInt64) {}

    /// The driver went away: every connection closes (host sockets included), the listener stays.
    public func reset() {
        closeAll()
        readyHead = 0
        readyCount = 0
        orphanResets.removeAll(keepingCapacity: true)
        orphanHead = 0
        rxWorkAdded = false
        chain.clear()
    }

    private func closeAll() {
        for index in 0..<slots.count where slots[index].kind != .free { closeSlot(index) }
        for index in 0..<slots.count { slots[index].queued = false }
    }

    // MARK: queues

    @discardableResult
    public func process(queue index: Int, _ queue: inout Virtqueue, memory: GuestMemory) throws(VirtqueueError) -> QueueProgress {
        switch index {
        case VirtioVsock.receiveQueue: return try receive(&queue, memory)
        case VirtioVsock.transmitQueue: return try transmit(&queue, memory)
        // The event queue's buffers are only held: never popped, so `.done` would find them
        // still available and reschedule the queue for ever.
        default: return .waitingOnHost
        }
    }

    // MARK: tx: packets from the guest

    private func transmit(_ queue: inout Virtqueue, _ memory: GuestMemory) throws(VirtqueueError) -> QueueProgress {
        var budget = Int(queue.size)
        while budget > 0, try queue.pop(into: &chain) {
            handle(chain, memory)
            queue.push(head: chain.head, written: 0)
            budget -= 1
        }
        if rxWorkAdded {
            rxWorkAdded = false
            rxKick.notify()
        }
        return .done
    }

    private func handle(_ chain: DescriptorChain, _ memory: GuestMemory) {
        packetsFromGuestCounter.wrappingAdd(1, ordering: .relaxed)
        guard chain.readableLength >= UInt64(VsockHeader.size), chain.read(memory, at: 0, into: headerBuffer),
              let packet = VsockHeader(UnsafeRawBufferPointer(headerBuffer)) else {
            malformedPacketsCounter.wrappingAdd(1, ordering: .relaxed)
            return
        }
        if let fault = packet.fault(guestCID: guestCID, payloadRoom: chain.readableLength - UInt64(VsockHeader.size)) {
            malformedPacketsCounter.wrappingAdd(1, ordering: .relaxed)
            if fault.answeredWithReset && packet.op != VIRTIO_VSOCK_OP_RST { sendOrphanReset(packet.resetReply()) }
            return
        }
        guard let index = byKey[VsockDevice.key(guestPort: packet.srcPort, hostPort: packet.dstPort)] else {
            if packet.op == VIRTIO_VSOCK_OP_REQUEST {
                openGuestConnection(packet)
            } else if packet.op != VIRTIO_VSOCK_OP_RST {
                sendOrphanReset(packet.resetReply())
            }
            return
        }
        switch slots[index].connection!.receive(packet) {
        case .none:
            break
        case .connected:
            connected(index)
        case .forward(let count):
            bytesFromGuestCounter.wrappingAdd(UInt64(count), ordering: .relaxed)
            forward(index, chain, count: count, memory)
        case .shutdownHostWrite:
            slots[index].shutWriteWhenFlushed = true
            flush(index)
        case .close:
            if slots[index].connection!.pending.isEmpty { closeSlot(index); return }
        }
        if slots[index].kind == .connection {
            let connection = slots[index].connection!
            if !connection.pending.isEmpty || (slots[index].hostReadable && connection.canSendData) { markReady(index) }
        }
    }

    /// The guest answered our REQUEST: tell the host client, then relay.
    private func connected(_ index: Int) {
        let line = Array("OK \(slots[index].connection!.hostPort)\n".utf8)
        let sent = line.withUnsafeBytes { send(slots[index].fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        if sent != line.count {
            // A fresh socket's buffer takes a short line at once; failing means the client left.
            hostErrorsCounter.wrappingAdd(1, ordering: .relaxed)
            slots[index].connection!.reset()
            return
        }
        // Bytes the client wrote after its CONNECT line may be waiting already.
        slots[index].hostReadable = true
    }

    /// Guest bytes to the host socket: straight from the chain with one sendmsg; what the
    /// socket does not take waits in the connection's buffer (behind anything already there).
    private func forward(_ index: Int, _ chain: DescriptorChain, count: UInt32, _ memory: GuestMemory) {
        guard !slots[index].connection!.pending.contains(.reset) else { return }
        if let buffer = slots[index].pendingOut, !buffer.isEmpty { flush(index) }
        var offset = UInt64(VsockHeader.size)
        var left = Int(count)
        if slots[index].pendingOut?.isEmpty ?? true {
            vectors.removeAll()
            vectors.append(chain.readable, from: UInt64(VsockHeader.size), count: left, memory: memory)
            let written = sendVectors(slots[index].fd, vectors.current, vectors.currentCount)
            if written < 0 {
                slots[index].connection!.reset()
                return
            }
            slots[index].connection!.forwarded(UInt32(written))
            offset += UInt64(written)
            left -= written
        }
        guard left > 0 else { return }
        if slots[index].pendingOut == nil {
            slots[index].pendingOut = VsockByteRing(capacity: Int(slots[index].connection!.bufAlloc))
        }
        let buffer = slots[index].pendingOut!
        let (a, b) = buffer.freeSpace()
        guard left <= a.count + b.count else { slots[index].connection!.reset(); return }
        let first = min(left, a.count)
        guard chain.read(memory, at: offset, into: UnsafeMutableRawBufferPointer(rebasing: a[0..<first])),
              chain.read(memory, at: offset + UInt64(first), into: UnsafeMutableRawBufferPointer(rebasing: b[0..<(left - first)])) else {
            slots[index].connection!.reset()
            return
        }
        buffer.appended(left)
    }

    /// sendmsg without SIGPIPE or blocking: bytes written, 0 when the socket would block,
    /// -1 on an error (counted).
    private func sendVectors(_ fd: Int32, _ iov: UnsafeMutablePointer<iovec>, _ count: Int32) -> Int {
        guard count > 0 else { return 0 }
        var message = msghdr()
        message.msg_iov = iov
        message.msg_iovlen = Int(count)
        while true {
            let n = sendmsg(fd, &message, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            if n >= 0 { return n }
            let error = sl_errno()
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return 0 }
            if error != EPIPE && error != ECONNRESET { hostErrorsCounter.wrappingAdd(1, ordering: .relaxed) }
            return -1
        }
    }

    /// Writes what the connection's buffer holds, then shuts the socket's write side or
    /// resets the connection if the guest asked for that once all was out.
    private func flush(_ index: Int) {
        guard slots[index].kind == .connection else { return }
        if let buffer = slots[index].pendingOut, !buffer.isEmpty {
            let (a, b) = buffer.contents()
            var iov = (iovec(iov_base: UnsafeMutableRawPointer(mutating: a.baseAddress), iov_len: a.count),
                       iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: b.count))
            let written = withUnsafeMutablePointer(to: &iov) {
                $0.withMemoryRebound(to: iovec.self, capacity: 2) { sendVectors(slots[index].fd, $0, b.count > 0 ? 2 : 1) }
            }
            if written < 0 {
                slots[index].connection!.reset()
                markReady(index)
                return
            }
            buffer.consume(written)
            slots[index].connection!.forwarded(UInt32(written))
        }
        if slots[index].pendingOut?.isEmpty ?? true {
            if slots[index].shutWriteWhenFlushed && !slots[index].writeShut {
                slots[index].writeShut = true
                shutdown(slots[index].fd, Int32(SHUT_WR))
            }
            if slots[index].connection!.closeWhenFlushed { slots[index].connection!.reset() }
        }
        if !slots[index].connection!.pending.isEmpty { markReady(index) }
    }

    private func openGuestConnection(_ request: VsockHeader) {
        guard let index = freeSlots.last else {
            connectionsRefusedCounter.wrappingAdd(1, ordering: .relaxed)
            sendOrphanReset(request.resetReply())
            return
        }
        let fd = VsockDevice.connect(path: "\(udsPath)_\(request.dstPort)")
        guard fd >= 0 else {
            connectionsRefusedCounter.wrappingAdd(1, ordering: .relaxed)
            sendOrphanReset(request.resetReply())
            return
        }
        guard occupy(index, fd: fd, kind: .connection) else {
            connectionsRefusedCounter.wrappingAdd(1, ordering: .relaxed)
            sendOrphanReset(request.resetReply())
            return
        }
        let connection = VsockConnection.guestInitiated(request, bufAlloc: VsockDevice.bufferSize)
        slots[index].connection = connection
        slots[index].hostReadable = true
        byKey[VsockDevice.key(guestPort: connection.guestPort, hostPort: connection.hostPort)] = index
        connectionsOpenedCounter.wrappingAdd(1, ordering: .relaxed)
        markReady(index)
    }

    // MARK: rx: packets to the guest

    private func receive(_ queue: inout Virtqueue, _ memory: GuestMemory) throws(VirtqueueError) -> QueueProgress {
        pollHost()
        var budget = Int(queue.size)
        while budget > 0 {
            if orphanHead < orphanResets.count {
                guard try queue.pop(into: &chain) else { return .done }
                budget -= 1
                if deliver(orphanResets[orphanHead], &queue, memory) {
                    orphanHead += 1
                    resetsSentCounter.wrappingAdd(1, ordering: .relaxed)
                }
                if orphanHead == orphanResets.count {
                    orphanResets.removeAll(keepingCapacity: true)
                    orphanHead = 0
                }
                continue
            }
            guard readyCount > 0 else { return .waitingOnHost }
            let index = ready[readyHead]
            guard slots[index].kind == .connection else {
                dequeueReady()
                continue
            }
            let hasControl = !slots[index].connection!.pending.isEmpty
            let wantsData = slots[index].hostReadable && slots[index].connection!.canSendData
            if !hasControl && !wantsData {
                if slots[index].hostReadable && slots[index].connection!.needCredit() { continue }
                dequeueReady()
                continue
            }
            guard try queue.pop(into: &chain) else { return .done }
            budget -= 1
            if hasControl {
                guard chain.writableLength >= UInt64(VsockHeader.size) else { badBuffer(&queue); continue }
                let packet = slots[index].connection!.nextControlPacket(guestCID: guestCID)!
                _ = deliver(packet, &queue, memory)
                if packet.op == VIRTIO_VSOCK_OP_RST {
                    resetsSentCounter.wrappingAdd(1, ordering: .relaxed)
                    closeSlot(index)
                }
            } else {
                try sendData(index, &queue, memory)
            }
        }
        return .done
    }

    /// One RW packet from the connection's socket: the payload read straight into the
    /// chain after the header. The chain goes back unused when the socket has nothing.
    private func sendData(_ index: Int, _ queue: inout Virtqueue, _ memory: GuestMemory) throws(VirtqueueError) {
        let writable = chain.writableLength
        guard writable > UInt64(VsockHeader.size) else { badBuffer(&queue); return }
        let limit = Int(min(UInt64(slots[index].connection!.peerFree), UInt64(VirtioVsock.maxPayload),
                            writable - UInt64(VsockHeader.size)))
        vectors.removeAll()
        vectors.append(chain.writable, from: UInt64(VsockHeader.size), count: limit, memory: memory)
        var n: Int
        repeat { n = readv(slots[index].fd, vectors.current, vectors.currentCount) } while n < 0 && sl_errno() == EINTR
        if n <= 0 {
            queue.undoPop(1)
            slots[index].hostReadable = false
            if n == 0 {
                slots[index].connection!.hostReachedEnd()
            } else if sl_errno() != EAGAIN && sl_errno() != EWOULDBLOCK {
                hostErrorsCounter.wrappingAdd(1, ordering: .relaxed)
                slots[index].connection!.reset()
            }
            return
        }
        let packet = slots[index].connection!.header(op: VIRTIO_VSOCK_OP_RW, guestCID: guestCID, len: UInt32(n))
        slots[index].connection!.sentToGuest(UInt32(n))
        _ = deliver(packet, &queue, memory, payload: n)
        bytesToGuestCounter.wrappingAdd(UInt64(n), ordering: .relaxed)
        // Round-robin: the next connection's turn.
        dequeueReady()
        markReady(index)
    }

    /// Writes `packet` at the start of the popped chain and publishes it with `payload`
    /// bytes after it. False (chain used up empty) when the chain has no room for a header.
    private func deliver(_ packet: VsockHeader, _ queue: inout Virtqueue, _ memory: GuestMemory, payload: Int = 0) -> Bool {
        packet.serialize(into: headerBuffer.baseAddress!)
        guard chain.write(memory, at: 0, from: UnsafeRawBufferPointer(headerBuffer)) else {
            badBuffer(&queue)
            return false
        }
        queue.push(head: chain.head, written: UInt32(VsockHeader.size + payload))
        packetsToGuestCounter.wrappingAdd(1, ordering: .relaxed)
        return true
    }

    private func badBuffer(_ queue: inout Virtqueue) {
        rxBadBuffersCounter.wrappingAdd(1, ordering: .relaxed)
        queue.push(head: chain.head, written: 0)
    }

    // MARK: host sockets

    /// Drains the device's epoll: accepts clients, reads CONNECT lines, notes readable
    /// sockets and flushes writable ones.
    private func pollHost() {
        while true {
            let n = epoll_wait(epollFD, events, Int32(VsockDevice.eventBatch), 0)
            if n < 0 && sl_errno() == EINTR { continue }
            guard n > 0 else { return }
            for i in 0..<Int(n) {
                let tag = events[i].data.u64
                let flags = events[i].events
                if tag == VsockDevice.listenerTag { acceptClients(); continue }
                let index = Int(tag & 0xFFFF_FFFF)
                guard index < slots.count, slots[index].generation == UInt32(tag >> 32) else { continue }
                switch slots[index].kind {
                case .free: continue
                case .awaitingConnect: readConnectLine(index)
                case .connection:
                    let readable = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue
                    if flags & readable != 0 {
                        slots[index].hostReadable = true
                        markReady(index)
                    }
                    if flags & (EPOLLOUT.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { flush(index) }
                }
            }
            if Int(n) < VsockDevice.eventBatch { return }
        }
    }

    private func acceptClients() {
        while true {
            let fd = sl_accept_nonblocking(listenFD)
            if fd < 0 {
                let error = sl_errno()
                if error == EINTR || error == ECONNABORTED { continue }
                if error != EAGAIN && error != EWOULDBLOCK { hostErrorsCounter.wrappingAdd(1, ordering: .relaxed) }
                return
            }
            guard let index = freeSlots.last else {
                close(fd)
                connectionsRefusedCounter.wrappingAdd(1, ordering: .relaxed)
                continue
            }
            // occupy closes the descriptor itself when epoll refuses it.
            guard occupy(index, fd: fd, kind: .awaitingConnect) else {
                connectionsRefusedCounter.wrappingAdd(1, ordering: .relaxed)
                continue
            }
            readConnectLine(index)
        }
    }

    /// Reads the client's `CONNECT <port>\n` one byte at a time, so the stream bytes after
    /// it stay in the socket for the guest.
    private func readConnectLine(_ index: Int) {
        var byte: UInt8 = 0
        while true {
            let n = read(slots[index].fd, &byte, 1)
            if n < 0 {
                let error = sl_errno()
                if error == EINTR { continue }
                if error == EAGAIN || error == EWOULDBLOCK { return }
                break
            }
            if n == 0 { break }
            if byte == UInt8(ascii: "\n") {
                guard let port = VsockDevice.parseConnect(slots[index].line) else { break }
                slots[index].line = []
                startHostConnection(index, guestPort: port)
                return
            }
            slots[index].line.append(byte)
            if slots[index].line.count >= VsockDevice.connectLineLimit { break }
        }
        // A bad line, a closed or failed socket: no connection.
        connectionsRefusedCounter.wrappingAdd(1, ordering: .relaxed)
        closeSlot(index)
    }

    /// `CONNECT <decimal port>`, nothing else (a trailing CR is tolerated).
    static func parseConnect(_ line: [UInt8]) -> UInt32? {
        let prefix = Array("CONNECT ".utf8)
        var digits = line
        if digits.last == UInt8(ascii: "\r") { digits.removeLast() }
        guard digits.count > prefix.count, Array(digits[0..<prefix.count]) == prefix else { return nil }
        var value: UInt64 = 0
        for byte in digits[prefix.count...] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
            guard value <= UInt64(UInt32.max) else { return nil }
        }
        return UInt32(value)
    }

    private func startHostConnection(_ index: Int, guestPort: UInt32) {
        // A local port free for this guest port (the key must be unique).
        var port = nextLocalPort
        while byKey[VsockDevice.key(guestPort: guestPort, hostPort: port)] != nil {
            port = port == UInt32.max ? VsockDevice.firstLocalPort : port + 1
        }
        nextLocalPort = port == UInt32.max ? VsockDevice.firstLocalPort : port + 1
        slots[index].kind = .connection
        slots[index].connection = .hostInitiated(guestPort: guestPort, hostPort: port, bufAlloc: VsockDevice.bufferSize)
        byKey[VsockDevice.key(guestPort: guestPort, hostPort: port)] = index
        connectionsOpenedCounter.wrappingAdd(1, ordering: .relaxed)
        markReady(index)
    }

    /// Takes free slot `index` for `fd` and watches it. False (fd closed) if epoll refuses.
    private func occupy(_ index: Int, fd: Int32, kind: Kind) -> Bool {
        slots[index].generation &+= 1
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        event.data.u64 = UInt64(slots[index].generation) << 32 | UInt64(index)
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else {
            hostErrorsCounter.wrappingAdd(1, ordering: .relaxed)
            close(fd)
            return false
        }
        freeSlots.removeLast()
        slots[index].kind = kind
        slots[index].fd = fd
        slots[index].line = []
        slots[index].hostReadable = false
        slots[index].shutWriteWhenFlushed = false
        slots[index].writeShut = false
        return true
    }

    /// Closes the slot's socket and forgets its connection. Its `ready` entry, if any,
    /// stays and is skipped (or serves the slot's next occupant).
    private func closeSlot(_ index: Int) {
        guard slots[index].kind != .free else { return }
        if let connection = slots[index].connection {
            byKey[VsockDevice.key(guestPort: connection.guestPort, hostPort: connection.hostPort)] = nil
            connectionsClosedCounter.wrappingAdd(1, ordering: .relaxed)
        }
        close(slots[index].fd)   // also leaves the epoll set
        slots[index].fd = -1
        slots[index].kind = .free
        slots[index].connection = nil
        slots[index].line = []
        slots[index].pendingOut = nil
        slots[index].hostReadable = false
        slots[index].generation &+= 1
        freeSlots.append(index)
    }

    private func markReady(_ index: Int) {
        rxWorkAdded = true
        guard !slots[index].queued else { return }
        slots[index].queued = true
        ready[(readyHead + readyCount) % ready.count] = index
        readyCount += 1
    }

    private func dequeueReady() {
        slots[ready[readyHead]].queued = false
        readyHead = (readyHead + 1) % ready.count
        readyCount -= 1
    }

    private func sendOrphanReset(_ packet: VsockHeader) {
        guard orphanResets.count < VsockDevice.orphanResetLimit else {
            resetsDroppedCounter.wrappingAdd(1, ordering: .relaxed)
            return
        }
        orphanResets.append(packet)
        rxWorkAdded = true
    }

    private static func key(guestPort: UInt32, hostPort: UInt32) -> UInt64 { UInt64(guestPort) << 32 | UInt64(hostPort) }

    static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        return address
    }

    /// A non-blocking connection to the Unix socket at `path`, or -1. A Unix stream
    /// connect completes or fails at once (a full backlog fails with EAGAIN: refused too).
    static func connect(path: String) -> Int32 {
        guard var address = address(path) else { return -1 }
        let fd = sl_unix_socket(1)
        guard fd >= 0 else { return -1 }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { CLinux.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            return -1
        }
        return fd
    }
}
