import SwiftletCore

// One vsock stream connection's state (virtio 1.2 §5.10.6.3-§5.10.6.6), as pure logic: the
// device does the socket I/O and asks this what to send and what a guest packet means.
// Every counter is a wrapping UInt32 as on the wire; values the guest writes (buf_alloc,
// fwd_cnt) only ever enter wrapping arithmetic or clamped comparisons, so nothing the guest
// sends can trap.

/// The packets a connection owes the guest, sent in this order (one per rx chain).
public struct VsockPendingPackets: OptionSet, Equatable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let request = VsockPendingPackets(rawValue: 1 << 0)
    public static let response = VsockPendingPackets(rawValue: 1 << 1)
    public static let reset = VsockPendingPackets(rawValue: 1 << 2)
    public static let shutdown = VsockPendingPackets(rawValue: 1 << 3)
    public static let creditUpdate = VsockPendingPackets(rawValue: 1 << 4)
    public static let creditRequest = VsockPendingPackets(rawValue: 1 << 5)
}

/// What the device must do on the host side after a guest packet.
public enum VsockGuestAction: Equatable {
    /// Nothing beyond what the connection now owes the guest (see `pending`).
    case none
    /// RESPONSE to our REQUEST: tell the host client `OK <host port>\n`.
    case connected
    /// RW: write `len` payload bytes to the host socket (credit already accounted).
    case forward(UInt32)
    /// The guest will send no more: shut the host socket's write side once its buffered
    /// bytes are out.
    case shutdownHostWrite
    /// Close the host socket and forget the connection (an RST from the guest, or one we
    /// must send: then `pending` holds `.reset` and the connection is closed after it).
    case close
}

public struct VsockConnection {
    public enum State: Equatable {
        /// The host asked to connect: our REQUEST goes (or went) to the guest, whose
        /// RESPONSE or RST decides.
        case connecting
        case established
        /// Done: an RST is owed to the guest, or nothing more is.
        case closed
    }

    /// The guest's and the host's port: the connection's key.
    public let guestPort: UInt32
    public let hostPort: UInt32
    public private(set) var state: State
    public private(set) var pending: VsockPendingPackets = []

    /// Our receive buffer for guest data (advertised as buf_alloc): what may wait for the
    /// host socket to take it.
    public let bufAlloc: UInt32
    /// Guest bytes written to the host socket (fwd_cnt), and received from the guest.
    public private(set) var fwdCnt: UInt32 = 0
    public private(set) var rxCnt: UInt32 = 0
    /// fwd_cnt as last told to the guest.
    public private(set) var lastFwdCntSent: UInt32 = 0
    /// The guest's buffer and how much of what we sent it has consumed.
    public private(set) var peerBufAlloc: UInt32 = 0
    public private(set) var peerFwdCnt: UInt32 = 0
    /// Bytes sent to the guest (tx_cnt).
    public private(set) var txCnt: UInt32 = 0

    /// SHUTDOWN flags the guest sent: it will not receive / will not send any more.
    public private(set) var guestWillNotReceive = false
    public private(set) var guestWillNotSend = false
    /// The host side reached end of file: nothing more to read.
    public private(set) var hostEnded = false
    /// A CREDIT_REQUEST went out and the guest has not answered with more credit yet.
    private var creditRequested = false

    /// Send CREDIT_UPDATE once this many forwarded bytes are not yet known to the guest
    /// (a quarter of our buffer): the guest never sees less than three quarters of the
    /// room there really is, so it does not stall on stale credit.
    public var creditUpdateThreshold: UInt32 { max(1, bufAlloc / 4) }

    /// A connection the host client asked for: REQUEST owed to the guest.
    public static func hostInitiated(guestPort: UInt32, hostPort: UInt32, bufAlloc: UInt32) -> VsockConnection {
        var connection = VsockConnection(guestPort: guestPort, hostPort: hostPort, state: .connecting, bufAlloc: bufAlloc)
        connection.pending = .request
        return connection
    }

    /// A connection the guest asked for (its REQUEST) and the host accepted: RESPONSE owed.
    public static func guestInitiated(_ request: VsockHeader, bufAlloc: UInt32) -> VsockConnection {
        var connection = VsockConnection(guestPort: request.srcPort, hostPort: request.dstPort, state: .established,
                                         bufAlloc: bufAlloc)
        connection.updatePeerCredit(request)
        connection.pending = .response
        return connection
    }

    private init(guestPort: UInt32, hostPort: UInt32, state: State, bufAlloc: UInt32) {
        self.guestPort = guestPort
        self.hostPort = hostPort
        self.state = state
        self.bufAlloc = bufAlloc
    }

    // MARK: credit

    /// Bytes the guest can still take: peer_buf_alloc - (tx_cnt - peer_fwd_cnt), zero when a
    /// guest claims to have consumed more than we sent or shrank its buffer below what is
    /// in flight.
    public var peerFree: UInt32 {
        let inFlight = txCnt &- peerFwdCnt
        return inFlight >= peerBufAlloc ? 0 : peerBufAlloc - inFlight
    }

    /// Guest bytes received but not yet written to the host socket.
    public var buffered: UInt32 { rxCnt &- fwdCnt }

    private mutating func updatePeerCredit(_ header: VsockHeader) {
        let before = peerFree
        peerBufAlloc = header.bufAlloc
        peerFwdCnt = header.fwdCnt
        if peerFree > before { creditRequested = false }
    }

    /// The host wrote `count` guest bytes to its socket.
    public mutating func forwarded(_ count: UInt32) {
        fwdCnt &+= count
        if fwdCnt &- lastFwdCntSent >= creditUpdateThreshold, state == .established { pending.insert(.creditUpdate) }
    }

    /// `count` payload bytes went to the guest in an RW packet.
    public mutating func sentToGuest(_ count: UInt32) { txCnt &+= count }

    /// The host socket has bytes for the guest but the guest has no credit for them:
    /// ask once (CREDIT_REQUEST) and wait for the guest's CREDIT_UPDATE. True when the
    /// request is newly owed.
    @discardableResult
    public mutating func needCredit() -> Bool {
        guard state == .established, peerFree == 0, !creditRequested else { return false }
        creditRequested = true
        pending.insert(.creditRequest)
        return true
    }

    /// Whether host bytes may go to the guest now (`peerFree` bounds how many).
    public var canSendData: Bool {
        state == .established && !guestWillNotReceive && !hostEnded && peerFree > 0 && !pending.contains(.reset)
    }

    // MARK: packets to the guest

    /// The header of a packet from the host on this connection; it carries our credit, so
    /// a CREDIT_UPDATE is no longer owed once the guest has the current fwd_cnt.
    public mutating func header(op: UInt16, guestCID: UInt64, len: UInt32 = 0, flags: UInt32 = 0) -> VsockHeader {
        lastFwdCntSent = fwdCnt
        pending.remove(.creditUpdate)
        return VsockHeader(srcCID: VIRTIO_VSOCK_CID_HOST, dstCID: guestCID, srcPort: hostPort, dstPort: guestPort, len: len,
                           type: VIRTIO_VSOCK_TYPE_STREAM, op: op, flags: flags, bufAlloc: bufAlloc, fwdCnt: fwdCnt)
    }

    /// The next control packet owed, taken off `pending`; nil when none is.
    public mutating func nextControlPacket(guestCID: UInt64) -> VsockHeader? {
        let op: UInt16
        var flags: UInt32 = 0
        if pending.contains(.request) { pending.remove(.request); op = VIRTIO_VSOCK_OP_REQUEST }
        else if pending.contains(.response) { pending.remove(.response); op = VIRTIO_VSOCK_OP_RESPONSE }
        else if pending.contains(.reset) { pending = []; state = .closed; op = VIRTIO_VSOCK_OP_RST }
        else if pending.contains(.shutdown) {
            pending.remove(.shutdown)
            op = VIRTIO_VSOCK_OP_SHUTDOWN
            // The host reached EOF: it sends no more. Whether it still reads, its socket says.
            flags = VIRTIO_VSOCK_SHUTDOWN_F_SEND
        }
        else if pending.contains(.creditUpdate) { op = VIRTIO_VSOCK_OP_CREDIT_UPDATE }
        else if pending.contains(.creditRequest) { pending.remove(.creditRequest); op = VIRTIO_VSOCK_OP_CREDIT_REQUEST }
        else { return nil }
        return header(op: op, guestCID: guestCID, flags: flags)
    }

    /// Owe the guest an RST and close (a host socket error, a guest breaking the protocol).
    public mutating func reset() {
        guard state != .closed else { return }
        pending = .reset
    }

    /// The host socket reached end of file: SHUTDOWN(SEND) owed to the guest.
    public mutating func hostReachedEnd() {
        guard !hostEnded, state == .established else { return }
        hostEnded = true
        pending.insert(.shutdown)
    }

    // MARK: packets from the guest

    /// A sound packet (VsockHeader.fault said nil) from the guest on this connection.
    public mutating func receive(_ packet: VsockHeader) -> VsockGuestAction {
        if state == .closed { return .close }
        // An RST is on its way to the guest: nothing it sends meanwhile matters.
        if pending.contains(.reset) { return .none }
        updatePeerCredit(packet)
        switch packet.op {
        case VIRTIO_VSOCK_OP_RST:
            state = .closed
            pending = []
            return .close
        case VIRTIO_VSOCK_OP_RESPONSE:
            guard state == .connecting else { reset(); return .close }
            state = .established
            return .connected
        case VIRTIO_VSOCK_OP_RW:
            guard state == .established, !guestWillNotSend else { reset(); return .close }
            // More than the credit we gave: the guest broke the protocol (§5.10.6.3.1).
            guard UInt64(buffered) + UInt64(packet.len) <= UInt64(bufAlloc) else { reset(); return .close }
            rxCnt &+= packet.len
            return packet.len == 0 ? .none : .forward(packet.len)
        case VIRTIO_VSOCK_OP_SHUTDOWN:
            guard state == .established else { reset(); return .close }
            if packet.flags & VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE != 0 { guestWillNotReceive = true }
            let newlyNotSending = packet.flags & VIRTIO_VSOCK_SHUTDOWN_F_SEND != 0 && !guestWillNotSend
            if newlyNotSending { guestWillNotSend = true }
            if guestWillNotReceive && guestWillNotSend {
                // Both ways shut: the guest waits for our RST (§5.10.6.6). Buffered bytes
                // still go out first; `closeWhenFlushed` says when.
                return .shutdownHostWrite
            }
            return newlyNotSending ? .shutdownHostWrite : .none
        case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
            return .none
        case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
            if state == .established { pending.insert(.creditUpdate) }
            return .none
        case VIRTIO_VSOCK_OP_REQUEST:
            // A second REQUEST for a live connection: the guest lost track of it.
            reset()
            return .close
        default:
            reset()
            return .close
        }
    }

    /// Once the guest shut both ways and every buffered byte is out: time for our RST.
    public var closeWhenFlushed: Bool { guestWillNotReceive && guestWillNotSend && buffered == 0 && state == .established }
}

/// A byte ring holding guest data the host socket would not take yet (at most a
/// connection's buf_alloc). Allocated when first needed.
public final class VsockByteRing {
    public let capacity: Int
    private let storage: UnsafeMutableRawPointer
    private var start = 0
    public private(set) var count = 0

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        storage = .allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    public var free: Int { capacity - count }
    public var isEmpty: Bool { count == 0 }

    /// The free space as at most two buffers, in order (fill them, then `appended`).
    public func freeSpace() -> (UnsafeMutableRawBufferPointer, UnsafeMutableRawBufferPointer) {
        let end = (start + count) % capacity
        if count == capacity { return (.init(start: storage, count: 0), .init(start: storage, count: 0)) }
        if end >= start {
            return (.init(start: storage + end, count: capacity - end), .init(start: storage, count: start))
        }
        return (.init(start: storage + end, count: start - end), .init(start: storage, count: 0))
    }

    public func appended(_ n: Int) { count += min(n, free) }

    /// The bytes held, as at most two buffers, in order.
    public func contents() -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
        let first = min(count, capacity - start)
        return (.init(start: storage + start, count: first), .init(start: storage, count: count - first))
    }

    public func consume(_ n: Int) {
        let n = min(n, count)
        start = (start + n) % capacity
        count -= n
        if count == 0 { start = 0 }
    }

    public func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count <= free else { return false }
        let (a, b) = freeSpace()
        let first = min(a.count, bytes.count)
        if first > 0 { a.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: first) }
        if bytes.count > first { b.baseAddress!.copyMemory(from: bytes.baseAddress! + first, byteCount: bytes.count - first) }
        appended(bytes.count)
        return true
    }
}
