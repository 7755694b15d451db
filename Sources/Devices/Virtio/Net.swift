import CLinux
import SwiftletCore
import Synchronization

/// Feature bits of the network device (virtio 1.2 §5.1.3).
public enum VirtioNetFeature {
    public static let csum: UInt64 = 1 << 0          // VIRTIO_NET_F_CSUM: device takes partial checksums
    public static let guestCsum: UInt64 = 1 << 1     // VIRTIO_NET_F_GUEST_CSUM
    public static let mtu: UInt64 = 1 << 3           // VIRTIO_NET_F_MTU
    public static let mac: UInt64 = 1 << 5           // VIRTIO_NET_F_MAC
    public static let guestTSO4: UInt64 = 1 << 7     // VIRTIO_NET_F_GUEST_TSO4
    public static let guestTSO6: UInt64 = 1 << 8     // VIRTIO_NET_F_GUEST_TSO6
    public static let guestECN: UInt64 = 1 << 9      // VIRTIO_NET_F_GUEST_ECN
    public static let hostTSO4: UInt64 = 1 << 11     // VIRTIO_NET_F_HOST_TSO4
    public static let hostTSO6: UInt64 = 1 << 12     // VIRTIO_NET_F_HOST_TSO6
    public static let hostECN: UInt64 = 1 << 13      // VIRTIO_NET_F_HOST_ECN
    public static let mergeableRxBuffers: UInt64 = 1 << 15  // VIRTIO_NET_F_MRG_RXBUF
    public static let status: UInt64 = 1 << 16       // VIRTIO_NET_F_STATUS
}

/// struct virtio_net_config (§5.1.4): byte offsets, little-endian.
public enum VirtioNetConfig {
    public static let mac: UInt64 = 0                   // u8[6]
    public static let status: UInt64 = 6                // le16
    public static let maxVirtqueuePairs: UInt64 = 8     // le16
    public static let mtu: UInt64 = 10                  // le16
    public static let size: UInt64 = 12
}

public enum VirtioNet {
    /// VIRTIO_NET_S_LINK_UP: the tap is always "up" for the guest; whether it carries
    /// traffic is the host's business.
    public static let statusLinkUp: UInt16 = 1
    public static let headerLength = VirtioNetHeaderLayout.size
    public static let ethernetHeaderLength = 14
    /// The largest frame after the header: a 64 KiB segmentation-offload packet behind an
    /// Ethernet header with a VLAN tag (Firecracker and QEMU allow the same).
    public static let maxFrameLength = 65550
    public static let receiveQueue = 0
    public static let transmitQueue = 1
}

/// The host side of a network device: a tap in the product, a SOCK_SEQPACKET socket pair
/// in tests. One read or write is one frame behind a 12-byte virtio_net_hdr_v1.
public protocol NetBackend: AnyObject {
    var fd: Int32 { get }
    /// TUNSETOFFLOAD with these Tap.offload* bits; false if refused.
    @discardableResult func setOffloads(_ flags: UInt32) -> Bool
}

extension Tap: NetBackend {}

/// virtio-net (virtio 1.2 §5.1) on a tap: queue 0 receives, queue 1 transmits; no control
/// queue. Transmitted frames go from guest memory to the tap with one writev (no copy).
/// A received frame is read once into a host buffer, since its size is unknown until
/// read, and copied once into as many of the driver's buffers as it needs
/// (VIRTIO_NET_F_MRG_RXBUF). Checksum and segmentation offloads pass through the header
/// in both directions when the guest accepts them. Malformed frames are dropped and
/// counted; nothing the guest writes can stop the device for other guests' sake.
public final class NetDevice: VirtioDevice {
    public static let queueSize: UInt16 = 256

    public var deviceID: UInt32 { VirtioDeviceID.network }
    public let deviceFeatures: UInt64
    public let queueSizes: [UInt16] = [NetDevice.queueSize, NetDevice.queueSize]
    public let mac: [UInt8]
    public let mtu: UInt16?
    private let backend: any NetBackend

    // Under the transport's processing lock (process/activate/reset):
    private var negotiated: UInt64 = 0
    /// One received frame (header included), held while the driver has no room for it.
    private let frame: UnsafeMutableRawPointer
    private static let frameCapacity = VirtioNet.headerLength + VirtioNet.maxFrameLength
    private var pendingLength = 0
    private var chain = DescriptorChain()
    /// The chains one received frame fills: head and bytes written.
    private var filled: [(head: UInt16, written: UInt32)] = []
    private let vectors = IOVectors(capacity: IOVectors.limit)
    private let header = UnsafeMutableRawBufferPointer.allocate(byteCount: VirtioNet.headerLength, alignment: 8)

    private let rxFramesCounter = Atomic<UInt64>(0)
    private let rxBytesCounter = Atomic<UInt64>(0)
    private let rxDroppedCounter = Atomic<UInt64>(0)
    private let rxBadBuffersCounter = Atomic<UInt64>(0)
    private let txFramesCounter = Atomic<UInt64>(0)
    private let txBytesCounter = Atomic<UInt64>(0)
    private let txMalformedCounter = Atomic<UInt64>(0)
    private let txDroppedCounter = Atomic<UInt64>(0)
    private let hostErrorsCounter = Atomic<UInt64>(0)

    /// Limit what the guest receives and sends (nil: unlimited, for tests).
    public let receiveLimiter: QueueLimiter?
    public let transmitLimiter: QueueLimiter?
    /// Whether the frame held in `frame` has been charged to the receive limiter.
    private var pendingAdmitted = false

    /// `mac`: 6 bytes (a unicast address); `mtu`: offered to the guest when given.
    public init(backend: any NetBackend, mac: [UInt8], mtu: UInt16?,
                receiveLimiter: QueueLimiter? = nil, transmitLimiter: QueueLimiter? = nil) {
        self.backend = backend
        self.receiveLimiter = receiveLimiter
        self.transmitLimiter = transmitLimiter
        self.mac = mac.count == 6 ? mac : [UInt8](repeating: 0, count: 6)
        self.mtu = mtu
        var features = VirtioNetFeature.mac | VirtioNetFeature.status | VirtioNetFeature.mergeableRxBuffers
            | VirtioNetFeature.csum | VirtioNetFeature.hostTSO4 | VirtioNetFeature.hostTSO6
            | VirtioNetFeature.guestCsum | VirtioNetFeature.guestTSO4 | VirtioNetFeature.guestTSO6
        if mtu != nil { features |= VirtioNetFeature.mtu }
        deviceFeatures = features
        frame = .allocate(byteCount: NetDevice.frameCapacity, alignment: 16)
        filled.reserveCapacity(Int(NetDevice.queueSize))
    }

    deinit {
        frame.deallocate()
        header.deallocate()
    }

    /// Frames and bytes (after the header) given to the guest and sent for it; frames
    /// dropped on receive (bigger than every buffer the driver posted, or shorter than a
    /// header), receive chains too small even for the header, transmitted frames refused
    /// as malformed, frames the tap did not take, and other host read/write errors.
    public var rxFrames: UInt64 { rxFramesCounter.load(ordering: .relaxed) }
    public var rxBytes: UInt64 { rxBytesCounter.load(ordering: .relaxed) }
    public var rxDropped: UInt64 { rxDroppedCounter.load(ordering: .relaxed) }
    public var rxBadBuffers: UInt64 { rxBadBuffersCounter.load(ordering: .relaxed) }
    public var txFrames: UInt64 { txFramesCounter.load(ordering: .relaxed) }
    public var txBytes: UInt64 { txBytesCounter.load(ordering: .relaxed) }
    public var txMalformed: UInt64 { txMalformedCounter.load(ordering: .relaxed) }
    public var txDropped: UInt64 { txDroppedCounter.load(ordering: .relaxed) }
    public var hostErrors: UInt64 { hostErrorsCounter.load(ordering: .relaxed) }

    /// The tap wakes the receive queue when frames arrive; each limiter's timer its queue.
    public var hostEvents: [VirtioHostEvent] {
        var events = [VirtioHostEvent(fd: backend.fd, queue: VirtioNet.receiveQueue, isCounter: false)]
        if let receiveLimiter { events.append(receiveLimiter.hostEvent) }
        if let transmitLimiter { events.append(transmitLimiter.hostEvent) }
        return events
    }

    // MARK: configuration space

    public func readConfig(at offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count {
            let (position, overflow) = offset.addingReportingOverflow(UInt64(i))
            data[i] = overflow ? 0 : configByte(at: position)
        }
    }

    /// Every field is read-only for the driver (the MAC is set by the host; there is no
    /// control queue to change it).
    public func writeConfig(at offset: UInt64, from data: UnsafeRawBufferPointer) {}

    private func configByte(at offset: UInt64) -> UInt8 {
        typealias C = VirtioNetConfig
        func field(_ value: UInt16, at start: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: value >> (8 * (offset - start))) }
        switch offset {
        case C.mac..<(C.mac + 6): return mac[Int(offset - C.mac)]
        case C.status..<(C.status + 2): return field(VirtioNet.statusLinkUp, at: C.status)
        case C.maxVirtqueuePairs..<(C.maxVirtqueuePairs + 2): return field(1, at: C.maxVirtqueuePairs)
        case C.mtu..<(C.mtu + 2): return mtu.map { field($0, at: C.mtu) } ?? 0
        default: return 0
        }
    }

    // MARK: lifecycle

    public func activate(features: UInt64) {
        negotiated = features
        backend.setOffloads(NetDevice.tapOffloads(for: features))
    }

    /// What the tap may hand the guest: partial checksums once the driver takes them
    /// (GUEST_CSUM), and segmentation offloads it negotiated on top of that.
    public static func tapOffloads(for features: UInt64) -> UInt32 {
        guard features & VirtioNetFeature.guestCsum != 0 else { return 0 }
        var flags = Tap.offloadChecksum
        if features & VirtioNetFeature.guestTSO4 != 0 { flags |= Tap.offloadTSO4 }
        if features & VirtioNetFeature.guestTSO6 != 0 { flags |= Tap.offloadTSO6 }
        if features & VirtioNetFeature.guestECN != 0, flags & (Tap.offloadTSO4 | Tap.offloadTSO6) != 0 { flags |= Tap.offloadTSOECN }
        return flags
    }

    public func reset() {
        // A frame held for the old driver is dropped; counters are the host's and stay.
        if pendingLength > 0 { rxDroppedCounter.wrappingAdd(1, ordering: .relaxed) }
        pendingLength = 0
        pendingAdmitted = false
        negotiated = 0
        backend.setOffloads(0)
        chain.clear()
        filled.removeAll(keepingCapacity: true)
        vectors.removeAll()
    }

    // MARK: queues

    @discardableResult
    public func process(queue index: Int, _ queue: inout Virtqueue, memory: GuestMemory) throws(VirtqueueError) -> QueueProgress {
        switch index {
        case VirtioNet.receiveQueue: return try receive(&queue, memory)
        case VirtioNet.transmitQueue: return try transmit(&queue, memory)
        default: return .done
        }
    }

    /// Moves frames from the tap into the driver's buffers, at most a queue's worth per
    /// call. Stops when the tap is empty (its readiness brings us back) or the driver has
    /// no room (its next buffer does).
    private func receive(_ queue: inout Virtqueue, _ memory: GuestMemory) throws(VirtqueueError) -> QueueProgress {
        var budget = Int(queue.size)
        while budget > 0 {
            if pendingLength == 0 {
                let n = read(backend.fd, frame, NetDevice.frameCapacity)
                if n < 0 {
                    let error = sl_errno()
                    if error == EINTR { continue }
                    if error != EAGAIN { hostErrorsCounter.wrappingAdd(1, ordering: .relaxed) }
                    return .waitingOnHost
                }
                // A tap may report a frame longer than the buffer it truncated it into
                // (tun_put_user counts what it would have written): such a frame is cut, drop it.
                guard n >= VirtioNet.headerLength + VirtioNet.ethernetHeaderLength, n <= NetDevice.frameCapacity else {
                    // Nothing a guest could use (an empty read from a tap going away, say).
                    rxDroppedCounter.wrappingAdd(1, ordering: .relaxed)
                    if n == 0 { return .waitingOnHost }
                    budget -= 1
                    continue
                }
                pendingLength = n
                pendingAdmitted = false
            }
            if !pendingAdmitted, let receiveLimiter {
                // Charged once per frame, however often it waits for buffers. Over the
                // limit, the frame waits here and the tap is not read meanwhile: its queue
                // fills and the host drops, as a slow link would.
                guard receiveLimiter.admit(bytes: UInt64(pendingLength - VirtioNet.headerLength)) else { return .waitingOnHost }
                pendingAdmitted = true
            }
            switch try deliverPending(&queue, memory) {
            case .delivered:
                budget -= 1
            case .dropped:
                budget -= 1
            case .noBuffers:
                return .done
            case .needsMoreBuffers:
                return .needsMoreBuffers
            }
        }
        return .done
    }

    private enum Delivery { case delivered, dropped, noBuffers, needsMoreBuffers }

    /// Copies the pending frame into as many chains as it takes (one without mergeable
    /// buffers), then publishes them together with num_buffers set. If the driver has not
    /// posted enough room, the chains go back untouched and the frame waits; if even a
    /// queue full of its buffers could not hold it, or (without mergeable buffers) one
    /// buffer cannot, the frame is dropped.
    private func deliverPending(_ queue: inout Virtqueue, _ memory: GuestMemory) throws(VirtqueueError) -> Delivery {
        let mergeable = negotiated & VirtioNetFeature.mergeableRxBuffers != 0
        filled.removeAll(keepingCapacity: true)
        var copied = 0
        var numBuffersAt: UnsafeMutableRawPointer?
        while copied < pendingLength {
            // However the driver plays its ring (unusable chains, an index it keeps moving),
            // one frame takes at most a queue's worth of chains.
            guard filled.count < Int(queue.size) else {
                queue.undoPop(filled.count)
                return drop()
            }
            guard try queue.pop(into: &chain) else {
                queue.undoPop(filled.count)
                if filled.count >= Int(queue.size) { return drop() }
                return filled.isEmpty ? .noBuffers : .needsMoreBuffers
            }
            if numBuffersAt == nil {
                // The header goes whole into the first buffer, where num_buffers is set
                // once the count is known. A chain without room for it cannot start a frame.
                guard let first = chain.writable.first, first.length >= UInt32(VirtioNet.headerLength),
                      let pointer = memory.pointerIfValid(at: first.address, length: UInt64(VirtioNet.headerLength)) else {
                    rxBadBuffersCounter.wrappingAdd(1, ordering: .relaxed)
                    filled.append((chain.head, 0))
                    continue
                }
                numBuffersAt = pointer + VirtioNetHeaderLayout.numBuffers
            }
            let n = Int(min(chain.writableLength, UInt64(pendingLength - copied)))
            if !mergeable && n < pendingLength {
                // One buffer per frame, and this one is too small: drop the frame, keep
                // the buffer for the next (chains skipped as unusable are used up).
                queue.undoPop(1)
                flushFilled(&queue)
                return drop()
            }
            guard chain.write(memory, at: 0, from: UnsafeRawBufferPointer(start: frame + copied, count: n)) else {
                // The queue checked every segment; only a bug gets here. Give the chain back empty.
                rxBadBuffersCounter.wrappingAdd(1, ordering: .relaxed)
                filled.append((chain.head, 0))
                continue
            }
            filled.append((chain.head, UInt32(n)))
            copied += n
        }
        if let numBuffersAt {
            let count = UInt16(truncatingIfNeeded: filled.count(where: { $0.written > 0 }))
            numBuffersAt.storeBytes(of: count.littleEndian, as: UInt16.self)
        }
        flushFilled(&queue)
        rxFramesCounter.wrappingAdd(1, ordering: .relaxed)
        rxBytesCounter.wrappingAdd(UInt64(pendingLength - VirtioNet.headerLength), ordering: .relaxed)
        pendingLength = 0
        return .delivered
    }

    private func drop() -> Delivery {
        rxDroppedCounter.wrappingAdd(1, ordering: .relaxed)
        pendingLength = 0
        return .dropped
    }

    private func flushFilled(_ queue: inout Virtqueue) {
        for entry in filled { queue.push(head: entry.head, written: entry.written) }
        filled.removeAll(keepingCapacity: true)
    }

    /// Sends each available frame to the tap, at most a queue's worth per call.
    private func transmit(_ queue: inout Virtqueue, _ memory: GuestMemory) throws(VirtqueueError) -> QueueProgress {
        var budget = Int(queue.size)
        while budget > 0, try queue.pop(into: &chain) {
            let frameBytes = chain.readableLength > UInt64(VirtioNet.headerLength) ? chain.readableLength - UInt64(VirtioNet.headerLength) : 0
            if let transmitLimiter, !transmitLimiter.admit(bytes: frameBytes) {
                queue.undoPop()
                return .waitingOnHost
            }
            send(chain, memory)
            queue.push(head: chain.head, written: 0)
            budget -= 1
        }
        return .done
    }

    /// One frame: its header checked against what was negotiated, then written from
    /// guest memory to the tap as it lies in the chain's buffers.
    private func send(_ chain: DescriptorChain, _ memory: GuestMemory) {
        let total = chain.readableLength
        guard total >= UInt64(VirtioNet.headerLength), chain.read(memory, at: 0, into: header) else {
            txMalformedCounter.wrappingAdd(1, ordering: .relaxed)
            return
        }
        let frameLength = Int(clamping: total - UInt64(VirtioNet.headerLength))
        if VirtioNetHeader(UnsafeRawBufferPointer(header)).transmitFault(frameLength: frameLength, features: negotiated) != nil {
            txMalformedCounter.wrappingAdd(1, ordering: .relaxed)
            return
        }
        vectors.removeAll()
        // The checks above bound the frame to 64 KiB: `total` fits an Int.
        guard vectors.append(chain.readable, from: 0, count: Int(total), memory: memory) == Int(total) else {
            txMalformedCounter.wrappingAdd(1, ordering: .relaxed)
            return
        }
        while true {
            let n = writev(backend.fd, vectors.current, vectors.currentCount)
            if n >= 0 { break }
            switch sl_errno() {
            case EINTR: continue
            // The tap's queue is full, or its link is down: the frame is lost, as on a wire.
            case EAGAIN, ENOBUFS, EIO: txDroppedCounter.wrappingAdd(1, ordering: .relaxed)
            // The tap's kernel refused the header or the frame.
            case EINVAL, EFAULT: txMalformedCounter.wrappingAdd(1, ordering: .relaxed)
            default: hostErrorsCounter.wrappingAdd(1, ordering: .relaxed)
            }
            return
        }
        txFramesCounter.wrappingAdd(1, ordering: .relaxed)
        txBytesCounter.wrappingAdd(UInt64(frameLength), ordering: .relaxed)
    }
}
