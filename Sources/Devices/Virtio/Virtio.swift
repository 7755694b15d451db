import SwiftletCore

// Virtio 1.2 constants shared by the transport and the devices (the spec's names).

/// Device IDs (virtio 1.2 §5).
public enum VirtioDeviceID {
    public static let network: UInt32 = 1
    public static let block: UInt32 = 2
    public static let entropy: UInt32 = 4

    /// As log lines name the device.
    public static func name(_ id: UInt32) -> String {
        switch id {
        case network: return "virtio-net"
        case block: return "virtio-blk"
        case entropy: return "virtio-rng"
        case VIRTIO_ID_VSOCK: return "virtio-vsock"
        default: return "virtio device \(id)"
        }
    }
}

/// Device status bits (§2.1).
public enum VirtioStatus {
    public static let acknowledge: UInt32 = 1
    public static let driver: UInt32 = 2
    public static let driverOK: UInt32 = 4
    public static let featuresOK: UInt32 = 8
    public static let deviceNeedsReset: UInt32 = 0x40
    public static let failed: UInt32 = 0x80
}

/// Feature bits independent of the device type (§6).
public enum VirtioFeature {
    public static let ringIndirectDescriptors: UInt64 = 1 << 28   // VIRTIO_RING_F_INDIRECT_DESC
    public static let ringEventIndex: UInt64 = 1 << 29            // VIRTIO_RING_F_EVENT_IDX
    public static let version1: UInt64 = 1 << 32                  // VIRTIO_F_VERSION_1
}

/// One guest buffer of a descriptor chain, already checked to lie wholly inside guest RAM.
public struct DescriptorSegment: Equatable {
    public let address: UInt64
    public let length: UInt32

    public init(address: UInt64, length: UInt32) {
        self.address = address
        self.length = length
    }
}

/// A popped descriptor chain: its head index (for the used ring) and its buffers, the
/// device-readable ones first, then the device-writable ones (§2.7.4.2 requires that order;
/// the queue refuses chains that break it). Reused from chain to chain, so walking a queue
/// allocates only while the arrays grow to their working size.
public struct DescriptorChain {
    public var head: UInt16 = 0
    public var readable: [DescriptorSegment] = []
    public var writable: [DescriptorSegment] = []
    /// Sums of the segment lengths (fewer than 2^17 segments of under 4 GiB each: the queue
    /// size plus one indirect table of at most 65536 entries, so no overflow in UInt64).
    public var readableLength: UInt64 = 0
    public var writableLength: UInt64 = 0

    public init() {}

    public mutating func clear() {
        head = 0
        readable.removeAll(keepingCapacity: true)
        writable.removeAll(keepingCapacity: true)
        readableLength = 0
        writableLength = 0
    }

    /// Copies `buffer.count` bytes starting at byte `offset` of the readable part into
    /// `buffer` (the bytes may span segments). False if the readable part is too short.
    public func read(_ memory: GuestMemory, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        DescriptorChain.copy(memory, readable, total: readableLength, at: offset, count: buffer.count) { pointer, done, n in
            (buffer.baseAddress! + done).copyMemory(from: pointer, byteCount: n)
        }
    }

    /// Copies `bytes` into the writable part starting at byte `offset`. False if the
    /// writable part is too short.
    public func write(_ memory: GuestMemory, at offset: UInt64, from bytes: UnsafeRawBufferPointer) -> Bool {
        DescriptorChain.copy(memory, writable, total: writableLength, at: offset, count: bytes.count) { pointer, done, n in
            pointer.copyMemory(from: bytes.baseAddress! + done, byteCount: n)
        }
    }

    private static func copy(_ memory: GuestMemory, _ segments: [DescriptorSegment], total: UInt64, at offset: UInt64,
                             count: Int, _ body: (UnsafeMutableRawPointer, Int, Int) -> Void) -> Bool {
        guard count > 0 else { return true }
        guard offset <= total, UInt64(count) <= total - offset else { return false }
        var skip = offset
        var done = 0
        for segment in segments where done < count {
            let length = UInt64(segment.length)
            if skip >= length { skip -= length; continue }
            let n = Int(min(length - skip, UInt64(count - done)))
            guard let pointer = memory.pointerIfValid(at: segment.address &+ skip, length: UInt64(n)) else { return false }
            body(pointer, done, n)
            done += n
            skip = 0
        }
        return done == count
    }
}

extension IOVectors {
    /// Adds vectors for bytes [offset, offset + count) of `segments` (a chain's readable or
    /// writable part) as they lie in guest memory, cut at both ends, for one readv/writev
    /// straight into or out of the guest's buffers. Returns the bytes added: fewer than
    /// `count` when the segments end first, one is not in guest RAM, or the vectors fill.
    @discardableResult
    public func append(_ segments: [DescriptorSegment], from offset: UInt64, count: Int, memory: GuestMemory) -> Int {
        var skip = offset
        var room = count
        for segment in segments where room > 0 {
            let length = UInt64(segment.length)
            if skip >= length { skip -= length; continue }
            let n = Int(min(length - skip, UInt64(room)))
            guard let pointer = memory.pointerIfValid(at: segment.address &+ skip, length: UInt64(n)),
                  append(pointer, length: n) else { break }
            room -= n
            skip = 0
        }
        return count - room
    }
}
