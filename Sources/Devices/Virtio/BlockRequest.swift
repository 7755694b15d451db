import SwiftletCore

// virtio-blk requests (virtio 1.2 §5.2.6): parsing a descriptor chain into what to do,
// with every check a guest value needs and no I/O, so the fuzzer can drive it alone.
//
//     struct virtio_blk_req {
//         le32 type; le32 reserved; le64 sector;    // header, device-readable
//         u8 data[];                                // readable (OUT, DISCARD, WRITE_ZEROES)
//                                                   // or writable (IN, GET_ID)
//         u8 status;                                // the last writable byte
//     };
//
// The driver may split any of it across descriptors however it likes (§2.6.4, "message
// framing"), so nothing here assumes the header or the status has a descriptor of its own.

/// Request types (§5.2.6).
public enum VirtioBlockRequestType {
    public static let input: UInt32 = 0          // VIRTIO_BLK_T_IN
    public static let output: UInt32 = 1         // VIRTIO_BLK_T_OUT
    public static let flush: UInt32 = 4          // VIRTIO_BLK_T_FLUSH
    public static let getID: UInt32 = 8          // VIRTIO_BLK_T_GET_ID
    public static let discard: UInt32 = 11       // VIRTIO_BLK_T_DISCARD
    public static let writeZeroes: UInt32 = 13   // VIRTIO_BLK_T_WRITE_ZEROES
}

/// Status byte values (§5.2.6).
public enum VirtioBlockStatus {
    public static let ok: UInt8 = 0              // VIRTIO_BLK_S_OK
    public static let ioError: UInt8 = 1         // VIRTIO_BLK_S_IOERR
    public static let unsupported: UInt8 = 2     // VIRTIO_BLK_S_UNSUPP
}

/// Sizes and the limits this device advertises in its configuration space.
public enum VirtioBlock {
    /// Sector numbers are always in 512-byte units, whatever blk_size says (§5.2.6).
    public static let sectorSize: UInt64 = 512
    public static let sectorShift: UInt64 = 9
    /// type, reserved, sector.
    public static let headerSize: UInt64 = 16
    /// seg_max × size_max (Block.swift's advertised limits): a longer IN/OUT is an I/O
    /// error, so no request moves more than this.
    public static let maxDataLength = UInt64(BlockDevice.segMax) * UInt64(BlockDevice.sizeMax)
    static let headerType = 0
    static let headerSector = 8
    /// struct virtio_blk_discard_write_zeroes { le64 sector; le32 num_sectors; le32 flags; }
    public static let rangeSize: UInt64 = 16
    static let rangeSector = 0
    static let rangeSectorCount = 8
    static let rangeFlags = 12
    /// VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP: the device may deallocate (write zeroes only).
    public static let writeZeroesFlagUnmap: UInt32 = 1
    /// VIRTIO_BLK_ID_BYTES: GET_ID answers at most this many bytes.
    public static let idBytes: UInt64 = 20
    /// max_discard_sectors and max_write_zeroes_sectors: 2 GiB - 512 per request.
    public static let maxDiscardSectors: UInt32 = 0x3F_FFFF
    public static let maxWriteZeroesSectors: UInt32 = 0x3F_FFFF
    /// max_discard_seg and max_write_zeroes_seg: one range per request, which is all
    /// fallocate takes in one call.
    public static let maxDiscardSegments: UInt32 = 1
    public static let maxWriteZeroesSegments: UInt32 = 1
}

/// What a request asks for, checked against the disk. Data ranges are byte offsets into
/// the chain's writable part (read, getID) or readable part (write), so execution can
/// hand the guest's own buffers to preadv/pwritev.
public enum BlockOperation: Equatable {
    /// Read `length` bytes at `sector` into writable bytes [0, length).
    case read(sector: UInt64, length: UInt64)
    /// Write readable bytes [headerSize, headerSize + length) at `sector`.
    case write(sector: UInt64, length: UInt64)
    case flush
    /// Write the first `length` bytes of the zero-padded device ID into writable [0, length).
    case getID(length: UInt64)
    case discard(sector: UInt64, sectors: UInt32)
    case writeZeroes(sector: UInt64, sectors: UInt32, unmap: Bool)
    /// No I/O: answer with this status (IOERR or UNSUPP).
    case fail(status: UInt8)
}

public struct BlockRequest: Equatable {
    /// The header's type; nil when the chain is too short to hold a header.
    public let type: UInt32?
    public let operation: BlockOperation
    /// Where the status byte goes: the last byte of the writable part.
    public let statusOffset: UInt64

    public init(type: UInt32?, operation: BlockOperation, statusOffset: UInt64) {
        self.type = type
        self.operation = operation
        self.statusOffset = statusOffset
    }

    /// Parses the chain against a disk of `capacity` 512-byte sectors. nil when the
    /// chain has no writable byte for the status: such a chain cannot be answered.
    /// Reads guest memory only through the chain (bounds-checked), never traps, and does
    /// every sum so that no guest value can overflow it.
    public static func parse(_ chain: DescriptorChain, memory: GuestMemory, capacity: UInt64,
                             readOnly: Bool) -> BlockRequest? {
        guard chain.writableLength > 0 else { return nil }
        let statusOffset = chain.writableLength - 1
        var header: (UInt64, UInt64) = (0, 0)
        let complete = withUnsafeMutableBytes(of: &header) { chain.read(memory, at: 0, into: $0) }
        guard complete else {
            // Too short for a header (or not in one piece of RAM): nothing to go on.
            return BlockRequest(type: nil, operation: .fail(status: VirtioBlockStatus.ioError),
                                statusOffset: statusOffset)
        }
        let (type, sector) = withUnsafeBytes(of: &header) { raw in
            (UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: VirtioBlock.headerType, as: UInt32.self)),
             UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: VirtioBlock.headerSector, as: UInt64.self)))
        }
        let operation = decode(type: type, sector: sector, chain: chain, memory: memory,
                               capacity: capacity, readOnly: readOnly, statusOffset: statusOffset)
        return BlockRequest(type: type, operation: operation, statusOffset: statusOffset)
    }

    private static func decode(type: UInt32, sector: UInt64, chain: DescriptorChain, memory: GuestMemory,
                               capacity: UInt64, readOnly: Bool, statusOffset: UInt64) -> BlockOperation {
        let ioError = BlockOperation.fail(status: VirtioBlockStatus.ioError)
        // Readable bytes after the header (the header is known to be there).
        let readableData = chain.readableLength - VirtioBlock.headerSize
        switch type {
        case VirtioBlockRequestType.input:
            // Extra readable bytes after the header carry nothing for IN: ignored.
            let length = statusOffset
            guard length % VirtioBlock.sectorSize == 0, length <= VirtioBlock.maxDataLength,
                  fits(sector, sectors: length >> VirtioBlock.sectorShift, capacity) else { return ioError }
            return .read(sector: sector, length: length)
        case VirtioBlockRequestType.output:
            // Writable bytes before the status carry nothing for OUT: ignored.
            guard !readOnly else { return ioError }
            let length = readableData
            guard length % VirtioBlock.sectorSize == 0, length <= VirtioBlock.maxDataLength,
                  fits(sector, sectors: length >> VirtioBlock.sectorShift, capacity) else { return ioError }
            return .write(sector: sector, length: length)
        case VirtioBlockRequestType.flush:
            return .flush
        case VirtioBlockRequestType.getID:
            return .getID(length: min(statusOffset, VirtioBlock.idBytes))
        case VirtioBlockRequestType.discard, VirtioBlockRequestType.writeZeroes:
            guard !readOnly else { return ioError }
            return decodeRange(type: type, chain: chain, memory: memory, capacity: capacity,
                               length: readableData)
        default:
            return .fail(status: VirtioBlockStatus.unsupported)
        }
    }

    /// DISCARD and WRITE_ZEROES: one struct virtio_blk_discard_write_zeroes after the
    /// header. The header's sector is unused (§5.2.6); the range has its own.
    private static func decodeRange(type: UInt32, chain: DescriptorChain, memory: GuestMemory,
                                    capacity: UInt64, length: UInt64) -> BlockOperation {
        let ioError = BlockOperation.fail(status: VirtioBlockStatus.ioError)
        let unsupported = BlockOperation.fail(status: VirtioBlockStatus.unsupported)
        guard length >= VirtioBlock.rangeSize, length % VirtioBlock.rangeSize == 0 else { return ioError }
        // More ranges than max_discard_seg / max_write_zeroes_seg: a driver that ignored
        // the limit gets UNSUPP, as QEMU answers.
        guard length == VirtioBlock.rangeSize else { return unsupported }
        var range: (UInt64, UInt64) = (0, 0)
        let complete = withUnsafeMutableBytes(of: &range) {
            chain.read(memory, at: VirtioBlock.headerSize, into: $0)
        }
        guard complete else { return ioError }
        let (sector, sectors, flags) = withUnsafeBytes(of: &range) { raw in
            (UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: VirtioBlock.rangeSector, as: UInt64.self)),
             UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: VirtioBlock.rangeSectorCount, as: UInt32.self)),
             UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: VirtioBlock.rangeFlags, as: UInt32.self)))
        }
        let isWriteZeroes = type == VirtioBlockRequestType.writeZeroes
        // Unknown flags MUST be answered UNSUPP (§5.2.6.2); UNMAP means nothing to discard.
        let knownFlags = isWriteZeroes ? VirtioBlock.writeZeroesFlagUnmap : 0
        guard flags & ~knownFlags == 0 else { return unsupported }
        let limit = isWriteZeroes ? VirtioBlock.maxWriteZeroesSectors : VirtioBlock.maxDiscardSectors
        guard sectors <= limit, fits(sector, sectors: UInt64(sectors), capacity) else { return ioError }
        if isWriteZeroes {
            return .writeZeroes(sector: sector, sectors: sectors, unmap: flags & VirtioBlock.writeZeroesFlagUnmap != 0)
        }
        return .discard(sector: sector, sectors: sectors)
    }

    /// sector + sectors ≤ capacity, without computing a sum that could wrap.
    @inline(__always)
    static func fits(_ sector: UInt64, sectors: UInt64, _ capacity: UInt64) -> Bool {
        sector <= capacity && sectors <= capacity - sector
    }
}
