import SwiftletCore

// The split virtqueue (virtio 1.2 §2.7), device side. The guest owns every byte of the
// three areas and may rewrite them at any moment, so each field is read once, checked,
// and never trusted again: no guest value can trap, hang or reach outside guest RAM.

// Descriptor flags (§2.7.5).
public let VIRTQ_DESC_F_NEXT: UInt16 = 1
public let VIRTQ_DESC_F_WRITE: UInt16 = 2
public let VIRTQ_DESC_F_INDIRECT: UInt16 = 4
// Available ring flags (§2.7.6).
public let VIRTQ_AVAIL_F_NO_INTERRUPT: UInt16 = 1

/// Layout of the split rings (§2.7.5, §2.7.6, §2.7.8), in bytes.
enum SplitRing {
    static let descriptorSize = 16              // struct virtq_desc
    static let descriptorLength = 8             // le64 addr, then le32 len
    static let descriptorFlags = 12             // le16 flags
    static let descriptorNext = 14              // le16 next
    static let descriptorTableAlignment: UInt64 = 16
    static let availableAlignment: UInt64 = 2
    static let usedAlignment: UInt64 = 4
    static let flagsOffset = 0                  // le16 flags, both rings
    static let indexOffset = 2                  // le16 idx, both rings
    static let ringOffset = 4                   // first ring entry, both rings
    static let availableEntrySize = 2           // le16 descriptor index
    static let usedEntrySize = 8                // struct virtq_used_elem { le32 id; le32 len }
}

public struct VirtqueueError: Error, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// What the driver wrote into the transport's queue registers.
public struct QueueConfig: Equatable {
    public var size: UInt16
    public var descriptorTable: UInt64
    /// The driver area.
    public var availableRing: UInt64
    /// The device area.
    public var usedRing: UInt64

    public init(size: UInt16 = 0, descriptorTable: UInt64 = 0, availableRing: UInt64 = 0, usedRing: UInt64 = 0) {
        self.size = size
        self.descriptorTable = descriptorTable
        self.availableRing = availableRing
        self.usedRing = usedRing
    }
}

/// One live queue (one activation). Holds host pointers to the rings: guest RAM never
/// changes during a VM's life, so the pointers checked at init stay valid.
public struct Virtqueue {
    public let size: UInt16
    public let indirect: Bool
    public let eventIndex: Bool
    /// The next available ring slot to consume (free-running, wraps at 2^16).
    public private(set) var nextAvailable: UInt16
    /// The next used ring slot to fill; also the used.idx last published.
    public private(set) var nextUsed: UInt16

    private let memory: GuestMemory
    private let descriptors: UnsafeMutableRawPointer
    private let available: UnsafeMutableRawPointer
    private let used: UnsafeMutableRawPointer
    private let mask: UInt16
    /// used_event sits after the available ring, avail_event after the used ring (§2.7.10).
    private let usedEventOffset: Int
    private let availableEventOffset: Int
    /// The used index at the previous needsInterrupt (vring_need_event's `old`, as in QEMU
    /// and vhost), and whether anything was pushed since.
    private var usedAtLastCheck: UInt16
    private var pushedSinceCheck = false

    /// Checks the driver's configuration. `nextAvailable`/`nextUsed` are for restoring a
    /// queue mid-life (and for tests of index wrap-around); a fresh activation starts at 0.
    public init(_ config: QueueConfig, maxSize: UInt16, indirect: Bool, eventIndex: Bool, memory: GuestMemory,
                nextAvailable: UInt16 = 0, nextUsed: UInt16 = 0) throws(VirtqueueError) {
        let size = config.size
        guard size != 0, size <= maxSize, size & (size &- 1) == 0 else {
            throw VirtqueueError("queue size \(size) is not a power of two in 1...\(maxSize)")
        }
        guard config.descriptorTable % SplitRing.descriptorTableAlignment == 0 else {
            throw VirtqueueError("descriptor table is not 16-byte aligned")
        }
        guard config.availableRing % SplitRing.availableAlignment == 0 else {
            throw VirtqueueError("available ring is not 2-byte aligned")
        }
        guard config.usedRing % SplitRing.usedAlignment == 0 else {
            throw VirtqueueError("used ring is not 4-byte aligned")
        }
        let n = Int(size)
        let usedEventOffset = SplitRing.ringOffset + SplitRing.availableEntrySize * n
        let availableEventOffset = SplitRing.ringOffset + SplitRing.usedEntrySize * n
        guard let descriptors = memory.pointerIfValid(at: config.descriptorTable,
                                                      length: UInt64(SplitRing.descriptorSize * n)) else {
            throw VirtqueueError("descriptor table is not inside guest RAM")
        }
        guard let available = memory.pointerIfValid(at: config.availableRing, length: UInt64(usedEventOffset + 2)) else {
            throw VirtqueueError("available ring is not inside guest RAM")
        }
        guard let used = memory.pointerIfValid(at: config.usedRing, length: UInt64(availableEventOffset + 2)) else {
            throw VirtqueueError("used ring is not inside guest RAM")
        }
        self.size = size
        self.indirect = indirect
        self.eventIndex = eventIndex
        self.nextAvailable = nextAvailable
        self.nextUsed = nextUsed
        self.memory = memory
        self.descriptors = descriptors
        self.available = available
        self.used = used
        self.mask = size &- 1
        self.usedEventOffset = usedEventOffset
        self.availableEventOffset = availableEventOffset
        self.usedAtLastCheck = nextUsed
    }

    /// Takes the next available chain into `chain` (cleared first). False when the driver
    /// has made none available. Throws when the ring or the chain is malformed; the queue
    /// is then unusable until the driver resets the device.
    ///
    /// Zero-length buffers are skipped: they add no segment and are not bounds-checked
    /// (they name no memory), but they count toward the chain length and the
    /// readable-before-writable order like any descriptor.
    public mutating func pop(into chain: inout DescriptorChain) throws(VirtqueueError) -> Bool {
        chain.clear()
        let pending = loadAvailableIndex() &- nextAvailable
        if pending == 0 { return false }
        guard pending <= size else { throw VirtqueueError("available index jumped past the queue size") }
        // The ring entry and the descriptors were written before avail.idx (§2.7.13.3).
        MemoryFence.acquire()
        let slot = SplitRing.ringOffset + SplitRing.availableEntrySize * Int(nextAvailable & mask)
        let head = UInt16(littleEndian: available.load(fromByteOffset: slot, as: UInt16.self))
        guard head < size else { throw VirtqueueError("descriptor index out of range") }
        chain.head = head
        try walk(from: head, into: &chain)
        nextAvailable &+= 1
        return true
    }

    /// Follows one chain, switching at most once into an indirect table. Each table bounds
    /// the descriptors visited (the queue size, or the indirect table's entry count), which
    /// is what catches loops.
    private func walk(from head: UInt16, into chain: inout DescriptorChain) throws(VirtqueueError) {
        var table = UnsafeRawPointer(descriptors)
        var entries = UInt32(size)
        var budget = entries
        var index = head
        var inIndirectTable = false
        var writableSeen = false
        while true {
            guard budget > 0 else { throw VirtqueueError("descriptor chain loops or exceeds its table") }
            budget -= 1
            let base = SplitRing.descriptorSize * Int(index)
            // Unaligned loads: nothing requires an indirect table to be aligned.
            let address = UInt64(littleEndian: table.loadUnaligned(fromByteOffset: base, as: UInt64.self))
            let length = UInt32(littleEndian: table.loadUnaligned(fromByteOffset: base + SplitRing.descriptorLength, as: UInt32.self))
            let flags = UInt16(littleEndian: table.loadUnaligned(fromByteOffset: base + SplitRing.descriptorFlags, as: UInt16.self))
            let next = UInt16(littleEndian: table.loadUnaligned(fromByteOffset: base + SplitRing.descriptorNext, as: UInt16.self))

            if flags & VIRTQ_DESC_F_INDIRECT != 0 {
                // Its WRITE flag means nothing (§2.7.5.3.2): the table's entries carry their own.
                guard indirect else { throw VirtqueueError("indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC") }
                guard !inIndirectTable else { throw VirtqueueError("indirect descriptor inside an indirect table") }
                guard flags & VIRTQ_DESC_F_NEXT == 0 else { throw VirtqueueError("indirect descriptor with VIRTQ_DESC_F_NEXT") }
                guard length != 0, length % UInt32(SplitRing.descriptorSize) == 0 else {
                    throw VirtqueueError("indirect table length is zero or not a multiple of 16")
                }
                let count = length / UInt32(SplitRing.descriptorSize)
                // No chain may be longer than the queue (§2.7.5.3.1): this bounds the work
                // one chain can ask for.
                guard count <= UInt32(size) else {
                    throw VirtqueueError("indirect table holds more descriptors than the queue size")
                }
                guard let pointer = memory.pointerIfValid(at: address, length: UInt64(length)) else {
                    throw VirtqueueError("indirect table is not inside guest RAM")
                }
                table = UnsafeRawPointer(pointer)
                entries = count
                budget = count
                index = 0
                inIndirectTable = true
                continue
            }

            if flags & VIRTQ_DESC_F_WRITE != 0 {
                writableSeen = true
                if length > 0 {
                    guard memory.contains(address, length: UInt64(length)) else {
                        throw VirtqueueError("descriptor buffer is not inside guest RAM")
                    }
                    chain.writable.append(DescriptorSegment(address: address, length: length))
                    chain.writableLength &+= UInt64(length)
                }
            } else {
                guard !writableSeen else { throw VirtqueueError("device-readable descriptor after a device-writable one") }
                if length > 0 {
                    guard memory.contains(address, length: UInt64(length)) else {
                        throw VirtqueueError("descriptor buffer is not inside guest RAM")
                    }
                    chain.readable.append(DescriptorSegment(address: address, length: length))
                    chain.readableLength &+= UInt64(length)
                }
            }
            guard flags & VIRTQ_DESC_F_NEXT != 0 else { return }
            guard UInt32(next) < entries else { throw VirtqueueError("descriptor index out of range") }
            index = next
        }
    }

    /// Gives back the chains popped last, unused, so the next pop returns them again: a
    /// device that cannot serve them yet (a rate limiter said wait, a frame needs more
    /// buffers than are available) leaves them with the driver. The ring entries are read
    /// afresh on the next pop, so nothing read before is trusted again.
    public mutating func undoPop(_ count: Int = 1) {
        nextAvailable &-= UInt16(truncatingIfNeeded: count)
    }

    /// Returns a chain to the driver with `written` bytes stored into its writable part.
    public mutating func push(head: UInt16, written: UInt32) {
        let slot = SplitRing.ringOffset + SplitRing.usedEntrySize * Int(nextUsed & mask)
        used.storeBytes(of: UInt32(head).littleEndian, toByteOffset: slot, as: UInt32.self)
        used.storeBytes(of: written.littleEndian, toByteOffset: slot + 4, as: UInt32.self)
        // The entry must be visible before the index that publishes it.
        MemoryFence.release()
        nextUsed &+= 1
        used.storeBytes(of: nextUsed.littleEndian, toByteOffset: SplitRing.indexOffset, as: UInt16.self)
        pushedSinceCheck = true
    }

    /// Call when pop returned false, before sleeping until the next notification. With
    /// EVENT_IDX, asks the driver to notify once it makes slot `nextAvailable` available,
    /// then looks again: a chain added before the driver saw that request would otherwise
    /// wait for a notification that never comes. True means pop again.
    public mutating func prepareToWait() -> Bool {
        if eventIndex {
            used.storeBytes(of: nextAvailable.littleEndian, toByteOffset: availableEventOffset, as: UInt16.self)
            MemoryFence.full()
        }
        return loadAvailableIndex() != nextAvailable
    }

    /// Like prepareToWait, for a device that has chains available but needs more than
    /// those (a received frame bigger than the buffers posted): with EVENT_IDX, asks to be
    /// notified when the driver makes one more chain available beyond those it has now.
    /// True means the driver already did: look again.
    public mutating func prepareToWaitForMore() -> Bool {
        let seen = loadAvailableIndex()
        if eventIndex {
            used.storeBytes(of: seen.littleEndian, toByteOffset: availableEventOffset, as: UInt16.self)
            MemoryFence.full()
        }
        return loadAvailableIndex() != seen
    }

    /// Call after a batch of pushes: whether the driver wants an interrupt for them.
    public mutating func needsInterrupt() -> Bool {
        guard pushedSinceCheck else { return false }
        pushedSinceCheck = false
        let new = nextUsed
        let old = usedAtLastCheck
        usedAtLastCheck = new
        // The used.idx store must be visible before we read the driver's suppression state,
        // or both sides could decide the other one will act.
        MemoryFence.full()
        if eventIndex {
            let event = UInt16(littleEndian: available.load(fromByteOffset: usedEventOffset, as: UInt16.self))
            return Virtqueue.needEvent(event: event, new: new, old: old)
        }
        let flags = UInt16(littleEndian: available.load(fromByteOffset: SplitRing.flagsOffset, as: UInt16.self))
        return flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0
    }

    /// vring_need_event (§2.7.10): did the index move from `old` to `new` across `event`?
    @inline(__always)
    static func needEvent(event: UInt16, new: UInt16, old: UInt16) -> Bool {
        new &- event &- 1 < new &- old
    }

    @inline(__always)
    private func loadAvailableIndex() -> UInt16 {
        UInt16(littleEndian: available.load(fromByteOffset: SplitRing.indexOffset, as: UInt16.self))
    }
}
