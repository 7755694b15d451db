import SwiftletCore
import Synchronization

/// Feature bits of the block device (§5.2.3).
public enum VirtioBlockFeature {
    public static let sizeMax: UInt64 = 1 << 1        // VIRTIO_BLK_F_SIZE_MAX
    public static let segMax: UInt64 = 1 << 2         // VIRTIO_BLK_F_SEG_MAX
    public static let geometry: UInt64 = 1 << 4       // VIRTIO_BLK_F_GEOMETRY
    public static let readOnly: UInt64 = 1 << 5       // VIRTIO_BLK_F_RO
    public static let blockSize: UInt64 = 1 << 6      // VIRTIO_BLK_F_BLK_SIZE
    public static let flush: UInt64 = 1 << 9          // VIRTIO_BLK_F_FLUSH
    public static let topology: UInt64 = 1 << 10      // VIRTIO_BLK_F_TOPOLOGY
    public static let configWCE: UInt64 = 1 << 11     // VIRTIO_BLK_F_CONFIG_WCE
    public static let multiQueue: UInt64 = 1 << 12    // VIRTIO_BLK_F_MQ
    public static let discard: UInt64 = 1 << 13       // VIRTIO_BLK_F_DISCARD
    public static let writeZeroes: UInt64 = 1 << 14   // VIRTIO_BLK_F_WRITE_ZEROES
}

/// struct virtio_blk_config (§5.2.4): byte offsets of the fields, little-endian.
public enum VirtioBlockConfig {
    public static let capacity: UInt64 = 0                  // le64, in 512-byte sectors
    public static let sizeMax: UInt64 = 8                   // le32
    public static let segMax: UInt64 = 12                   // le32
    public static let geometry: UInt64 = 16                 // le16 cylinders, u8 heads, u8 sectors
    public static let blkSize: UInt64 = 20                  // le32
    public static let topology: UInt64 = 24                 // 8 bytes
    public static let writeback: UInt64 = 32                // u8
    public static let numQueues: UInt64 = 34                // le16
    public static let maxDiscardSectors: UInt64 = 36        // le32
    public static let maxDiscardSeg: UInt64 = 40            // le32
    public static let discardSectorAlignment: UInt64 = 44   // le32
    public static let maxWriteZeroesSectors: UInt64 = 48    // le32
    public static let maxWriteZeroesSeg: UInt64 = 52        // le32
    public static let writeZeroesMayUnmap: UInt64 = 56      // u8, then 3 unused bytes
    /// Through unused1; the secure-erase fields after it are not offered and read zero.
    public static let size: UInt64 = 60
}

/// virtio-blk (virtio 1.2 §5.2) over a raw `DiskImage`: one request queue, requests
/// parsed by `BlockRequest` and carried out with preadv/pwritev straight between the
/// guest's buffers and the image (no bounce buffer).
///
/// The capacity is floor(image size / 512): the tail of an image whose size is not a
/// multiple of 512 is invisible to the guest, as with Firecracker, since the guest can
/// only address whole sectors.
public final class BlockDevice: VirtioDevice {
    public static let queueSize: UInt16 = 256
    /// seg_max: data segments per request. The queue size less the header and status
    /// descriptors, so a direct chain always fits (Linux sizes its requests from this).
    public static let segMax: UInt32 = 254
    /// size_max: the largest data segment, so a request carries at most seg_max × size_max
    /// bytes (254 MiB); Linux's default requests are 1.25 MiB at most.
    public static let sizeMax: UInt32 = 1 << 20
    /// Bytes one `process` call moves before it yields the I/O thread (the transport
    /// reschedules the rest), so one busy disk cannot hold the thread for long.
    public static let bytesPerCall: UInt64 = 64 << 20
    /// blk_size: the logical block size the guest should use.
    public static let blockSize: UInt32 = 512
    /// discard_sector_alignment: 4 KiB, the granularity file systems punch holes in.
    public static let discardSectorAlignment: UInt32 = 8

    public var deviceID: UInt32 { VirtioDeviceID.block }
    public let deviceFeatures: UInt64
    public let queueSizes: [UInt16] = [BlockDevice.queueSize]
    /// The ID GET_ID answers: the serial's first 20 bytes, zero-padded.
    public let serial: String

    /// Swapped only by `replace`, under the transport's processing lock.
    public private(set) var image: DiskImage
    /// Whether writes were offered at init: the feature bits cannot change later, so a
    /// disk the guest was told is read-only stays read-only across media changes.
    private let writable: Bool
    private let capacitySectors: Atomic<UInt64>
    private let id: [UInt8]
    /// Without a negotiated FLUSH the driver cannot ask for durability, so the device
    /// must be write-through: the cache is in writeback mode after reset if and only if
    /// VIRTIO_BLK_F_FLUSH is negotiated (§5.2.5).
    private var writeThrough = false

    /// Reused from request to request (process runs under the transport's lock).
    private var chain = DescriptorChain()
    private let vectors = IOVectors()

    private let requestCounter = Atomic<UInt64>(0)
    private let bytesReadCounter = Atomic<UInt64>(0)
    private let bytesWrittenCounter = Atomic<UInt64>(0)
    private let readCounter = Atomic<UInt64>(0)
    private let writeCounter = Atomic<UInt64>(0)
    private let flushCounter = Atomic<UInt64>(0)
    private let ioErrorCounter = Atomic<UInt64>(0)
    private let unsupportedCounter = Atomic<UInt64>(0)
    private let unanswerableCounter = Atomic<UInt64>(0)

    /// Limits the requests and bytes this disk serves (nil: unlimited, for tests).
    public let limiter: QueueLimiter?

    public init(image: DiskImage, serial: String, limiter: QueueLimiter? = nil) {
        self.limiter = limiter
        self.image = image
        self.serial = serial
        writable = !image.isReadOnly
        capacitySectors = Atomic(image.size >> VirtioBlock.sectorShift)
        var id = Array(serial.utf8.prefix(Int(VirtioBlock.idBytes)))
        id += [UInt8](repeating: 0, count: Int(VirtioBlock.idBytes) - id.count)
        self.id = id
        var features = VirtioBlockFeature.sizeMax | VirtioBlockFeature.segMax | VirtioBlockFeature.blockSize | VirtioBlockFeature.flush
        if writable {
            features |= VirtioBlockFeature.discard | VirtioBlockFeature.writeZeroes
        } else {
            features |= VirtioBlockFeature.readOnly
        }
        deviceFeatures = features
    }

    /// The disk's size in 512-byte sectors, as the guest sees it.
    public var capacity: UInt64 { capacitySectors.load(ordering: .relaxed) }

    /// Chains answered, guest bytes moved, flushes done, requests answered IOERR and
    /// UNSUPP, and chains with no writable byte for a status (returned with 0 written).
    public var requests: UInt64 { requestCounter.load(ordering: .relaxed) }
    public var bytesRead: UInt64 { bytesReadCounter.load(ordering: .relaxed) }
    public var bytesWritten: UInt64 { bytesWrittenCounter.load(ordering: .relaxed) }
    /// Reads and writes done (the metrics' read_count and write_count).
    public var readRequests: UInt64 { readCounter.load(ordering: .relaxed) }
    public var writeRequests: UInt64 { writeCounter.load(ordering: .relaxed) }
    public var flushes: UInt64 { flushCounter.load(ordering: .relaxed) }
    public var ioErrors: UInt64 { ioErrorCounter.load(ordering: .relaxed) }
    public var unsupportedRequests: UInt64 { unsupportedCounter.load(ordering: .relaxed) }
    public var unanswerableChains: UInt64 { unanswerableCounter.load(ordering: .relaxed) }

    /// Media change. The caller holds the transport's processing lock (no request is in
    /// flight) and bumps the config generation; the serial and the features stay.
    /// Returns the image replaced, for the caller to release outside the transport's
    /// locks (closing a file can take a while; a vCPU reading a register must not wait).
    @discardableResult
    public func replace(image: DiskImage) -> DiskImage {
        let old = self.image
        self.image = image
        capacitySectors.store(image.size >> VirtioBlock.sectorShift, ordering: .relaxed)
        return old
    }

    // MARK: configuration space

    public func readConfig(at offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        let capacity = self.capacity
        for i in 0..<data.count {
            let (position, overflow) = offset.addingReportingOverflow(UInt64(i))
            data[i] = overflow ? 0 : configByte(at: position, capacity: capacity)
        }
    }

    /// Every field is read-only for the driver (writeback only exists with CONFIG_WCE,
    /// which is not offered).
    public func writeConfig(at offset: UInt64, from data: UnsafeRawBufferPointer) {}

    private func configByte(at offset: UInt64, capacity: UInt64) -> UInt8 {
        typealias C = VirtioBlockConfig
        func field<T: FixedWidthInteger>(_ value: T, at start: UInt64) -> UInt8 {
            UInt8(truncatingIfNeeded: value >> (8 * (offset - start)))
        }
        switch offset {
        case C.capacity..<(C.capacity + 8): return field(capacity, at: C.capacity)
        case C.sizeMax..<(C.sizeMax + 4): return field(BlockDevice.sizeMax, at: C.sizeMax)
        case C.segMax..<(C.segMax + 4): return field(BlockDevice.segMax, at: C.segMax)
        case C.blkSize..<(C.blkSize + 4): return field(BlockDevice.blockSize, at: C.blkSize)
        // num_queues is only meaningful with MQ; QEMU fills it in anyway.
        case C.numQueues..<(C.numQueues + 2): return field(UInt16(queueSizes.count), at: C.numQueues)
        default: break
        }
        // geometry, topology and writeback belong to features not offered: zero.
        guard writable else { return 0 }
        switch offset {
        case C.maxDiscardSectors..<(C.maxDiscardSectors + 4):
            return field(VirtioBlock.maxDiscardSectors, at: C.maxDiscardSectors)
        case C.maxDiscardSeg..<(C.maxDiscardSeg + 4):
            return field(VirtioBlock.maxDiscardSegments, at: C.maxDiscardSeg)
        case C.discardSectorAlignment..<(C.discardSectorAlignment + 4):
            return field(BlockDevice.discardSectorAlignment, at: C.discardSectorAlignment)
        case C.maxWriteZeroesSectors..<(C.maxWriteZeroesSectors + 4):
            return field(VirtioBlock.maxWriteZeroesSectors, at: C.maxWriteZeroesSectors)
        case C.maxWriteZeroesSeg..<(C.maxWriteZeroesSeg + 4):
            return field(VirtioBlock.maxWriteZeroesSegments, at: C.maxWriteZeroesSeg)
        case C.writeZeroesMayUnmap: return 1
        default: return 0
        }
    }

    // MARK: lifecycle

    public func activate(features: UInt64) {
        writeThrough = features & VirtioBlockFeature.flush == 0
    }

    /// The rate limiter's timer resumes the queue.
    public var hostEvents: [VirtioHostEvent] { limiter.map { [$0.hostEvent] } ?? [] }

    public func reset() {
        // Counters are the host's statistics and survive a guest reset; the image stays.
        writeThrough = false
        chain.clear()
        vectors.removeAll()
    }

    // MARK: requests

    @discardableResult
    public func process(queue index: Int, _ queue: inout Virtqueue, memory: GuestMemory) throws(VirtqueueError) -> QueueProgress {
        guard index == 0 else { return .done }
        // One queue's worth per call: the transport calls again while more are available,
        // so a guest that keeps its queue full cannot hold the I/O thread.
        var budget = Int(queue.size)
        let moved = bytesRead &+ bytesWritten
        while budget > 0, bytesRead &+ bytesWritten &- moved < BlockDevice.bytesPerCall, try queue.pop(into: &chain) {
            if let limiter, !limiter.admit(bytes: BlockDevice.dataLength(of: chain)) {
                // Over the limit: the request stays with the driver until the timer fires.
                queue.undoPop()
                return .waitingOnHost
            }
            queue.push(head: chain.head, written: execute(chain, memory: memory))
            budget -= 1
        }
        return .done
    }

    /// What a request costs in bandwidth: its buffers less the header and the status byte
    /// (the data a read or write moves; a few bytes for the other requests).
    static func dataLength(of chain: DescriptorChain) -> UInt64 {
        let total = chain.readableLength &+ chain.writableLength
        let overhead = VirtioBlock.headerSize + 1
        return total > overhead ? total - overhead : 0
    }

    /// Parses and carries out one chain; returns the bytes written into its writable part,
    /// the status byte included (0 when no status could be written). `process` calls it
    /// for each popped chain; tests and the fuzzer call it with chains they built.
    public func execute(_ chain: DescriptorChain, memory: GuestMemory) -> UInt32 {
        guard let request = BlockRequest.parse(chain, memory: memory, capacity: capacity,
                                               readOnly: !writable || image.isReadOnly) else {
            unanswerableCounter.wrappingAdd(1, ordering: .relaxed)
            return 0
        }
        requestCounter.wrappingAdd(1, ordering: .relaxed)
        var data: UInt64 = 0
        let status = perform(request.operation, chain, memory, dataWritten: &data)
        switch status {
        case VirtioBlockStatus.ioError: ioErrorCounter.wrappingAdd(1, ordering: .relaxed)
        case VirtioBlockStatus.unsupported: unsupportedCounter.wrappingAdd(1, ordering: .relaxed)
        default: break
        }
        var byte = status
        let stored = withUnsafeBytes(of: &byte) { chain.write(memory, at: request.statusOffset, from: $0) }
        guard stored else {
            // Only a status byte outside one piece of guest RAM gets here; the driver
            // learns nothing, as with a chain that has no writable byte.
            unanswerableCounter.wrappingAdd(1, ordering: .relaxed)
            return 0
        }
        // The used length is a u32; a read of more than 4 GiB (possible only in theory)
        // reports the most it can.
        return UInt32(clamping: data + 1)
    }

    /// The request's I/O; returns the status and sets the data bytes stored into the
    /// writable part (reads and GET_ID).
    private func perform(_ operation: BlockOperation, _ chain: DescriptorChain, _ memory: GuestMemory,
                         dataWritten: inout UInt64) -> UInt8 {
        do throws(SwiftletError) {
            switch operation {
            case .fail(let status):
                return status
            case .read(let sector, let length):
                try transfer(chain.writable, from: 0, length: length, sector: sector, write: false, memory)
                bytesReadCounter.wrappingAdd(length, ordering: .relaxed)
                readCounter.wrappingAdd(1, ordering: .relaxed)
                dataWritten = length
            case .write(let sector, let length):
                try transfer(chain.readable, from: VirtioBlock.headerSize, length: length, sector: sector,
                             write: true, memory)
                bytesWrittenCounter.wrappingAdd(length, ordering: .relaxed)
                writeCounter.wrappingAdd(1, ordering: .relaxed)
                if writeThrough { try image.flush() }
            case .flush:
                try image.flush()
                flushCounter.wrappingAdd(1, ordering: .relaxed)
            case .getID(let length):
                let done = id.withUnsafeBytes { bytes in
                    chain.write(memory, at: 0, from: UnsafeRawBufferPointer(rebasing: bytes[0..<Int(length)]))
                }
                guard done else { return VirtioBlockStatus.ioError }
                dataWritten = length
            case .discard(let sector, let sectors):
                try image.discard(offset: sector << VirtioBlock.sectorShift,
                                  length: UInt64(sectors) << VirtioBlock.sectorShift)
                if writeThrough { try image.flush() }
            case .writeZeroes(let sector, let sectors, let unmap):
                try image.writeZeroes(offset: sector << VirtioBlock.sectorShift,
                                      length: UInt64(sectors) << VirtioBlock.sectorShift, unmap: unmap)
                if writeThrough { try image.flush() }
            }
        } catch {
            // The host's I/O error (EIO, ENOSPC, a buffer outside guest RAM): the guest
            // sees IOERR and decides; the VMM carries on.
            return VirtioBlockStatus.ioError
        }
        return VirtioBlockStatus.ok
    }

    /// Moves `length` bytes between the image at `sector` and bytes [start, start + length)
    /// of `segments`, with iovecs pointing into guest memory, at most IOV_MAX per call.
    /// A segment that straddles the range's ends (the header, the status byte) is cut.
    private func transfer(_ segments: [DescriptorSegment], from start: UInt64, length: UInt64, sector: UInt64,
                          write: Bool, _ memory: GuestMemory) throws(SwiftletError) {
        guard length > 0 else { return }
        // sector ≤ capacity ≤ size / 512, so this cannot overflow.
        var position = sector << VirtioBlock.sectorShift
        var skip = start
        var remaining = length
        vectors.removeAll()
        for segment in segments where remaining > 0 {
            let segmentLength = UInt64(segment.length)
            if skip >= segmentLength { skip -= segmentLength; continue }
            let n = min(segmentLength - skip, remaining)
            // The queue checked the segment lies in RAM; wrapping arithmetic keeps even a
            // segment that broke that promise from trapping (pointerIfValid refuses it).
            guard let pointer = memory.pointerIfValid(at: segment.address &+ skip, length: n) else {
                throw .outOfBounds(address: segment.address &+ skip, length: n)
            }
            if vectors.isFull {
                try move(write, at: position)
                position += vectors.byteCount
                vectors.removeAll()
            }
            vectors.append(pointer, length: Int(n))
            skip = 0
            remaining -= n
        }
        // The parser sized the data from these very segments; a shortfall is a bug, not
        // the guest's, but still only an I/O error.
        guard remaining == 0 else { throw .outOfBounds(address: 0, length: remaining) }
        try move(write, at: position)
        vectors.removeAll()
    }

    @inline(__always)
    private func move(_ write: Bool, at position: UInt64) throws(SwiftletError) {
        if write { try image.pwritev(vectors, at: position) } else { try image.preadv(vectors, at: position) }
    }
}
