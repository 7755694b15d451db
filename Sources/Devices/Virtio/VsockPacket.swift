import SwiftletCore

// virtio-vsock packets (virtio 1.2 §5.10.6): the 44-byte header every packet starts with,
// the spec's constants, and the checks a packet from the guest must pass. Pure: no I/O.

/// VIRTIO_ID_VSOCK (§5).
public let VIRTIO_ID_VSOCK: UInt32 = 19
/// The host's CID (§5.10.4): the guest addresses every packet for the host to it.
public let VIRTIO_VSOCK_CID_HOST: UInt64 = 2
// struct virtio_vsock_hdr.type (§5.10.6).
public let VIRTIO_VSOCK_TYPE_STREAM: UInt16 = 1
// struct virtio_vsock_hdr.op (§5.10.6).
public let VIRTIO_VSOCK_OP_INVALID: UInt16 = 0
public let VIRTIO_VSOCK_OP_REQUEST: UInt16 = 1
public let VIRTIO_VSOCK_OP_RESPONSE: UInt16 = 2
public let VIRTIO_VSOCK_OP_RST: UInt16 = 3
public let VIRTIO_VSOCK_OP_SHUTDOWN: UInt16 = 4
public let VIRTIO_VSOCK_OP_RW: UInt16 = 5
public let VIRTIO_VSOCK_OP_CREDIT_UPDATE: UInt16 = 6
public let VIRTIO_VSOCK_OP_CREDIT_REQUEST: UInt16 = 7
// struct virtio_vsock_hdr.flags for VIRTIO_VSOCK_OP_SHUTDOWN (§5.10.6.5).
public let VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE: UInt32 = 1
public let VIRTIO_VSOCK_SHUTDOWN_F_SEND: UInt32 = 2

public enum VirtioVsock {
    public static let receiveQueue = 0
    public static let transmitQueue = 1
    public static let eventQueue = 2
    /// The largest payload one packet may carry either way (Linux's
    /// VIRTIO_VSOCK_MAX_PKT_BUF_SIZE; Firecracker refuses bigger ones too).
    public static let maxPayload: UInt32 = 64 * 1024
}

/// struct virtio_vsock_config (§5.10.4): byte offsets, little-endian.
public enum VirtioVsockConfig {
    public static let guestCID: UInt64 = 0       // le64
    public static let size: UInt64 = 8
}

/// struct virtio_vsock_hdr (§5.10.6), host byte order; all fields are little-endian on the wire.
public struct VsockHeader: Equatable {
    public static let size = 44
    // Byte offsets.
    static let srcCIDOffset = 0, dstCIDOffset = 8, srcPortOffset = 16, dstPortOffset = 20, lenOffset = 24
    static let typeOffset = 28, opOffset = 30, flagsOffset = 32, bufAllocOffset = 36, fwdCntOffset = 40

    public var srcCID: UInt64 = 0
    public var dstCID: UInt64 = 0
    public var srcPort: UInt32 = 0
    public var dstPort: UInt32 = 0
    public var len: UInt32 = 0
    public var type: UInt16 = 0
    public var op: UInt16 = 0
    public var flags: UInt32 = 0
    public var bufAlloc: UInt32 = 0
    public var fwdCnt: UInt32 = 0

    public init(srcCID: UInt64 = 0, dstCID: UInt64 = 0, srcPort: UInt32 = 0, dstPort: UInt32 = 0, len: UInt32 = 0,
                type: UInt16 = VIRTIO_VSOCK_TYPE_STREAM, op: UInt16 = 0, flags: UInt32 = 0, bufAlloc: UInt32 = 0,
                fwdCnt: UInt32 = 0) {
        self.srcCID = srcCID
        self.dstCID = dstCID
        self.srcPort = srcPort
        self.dstPort = dstPort
        self.len = len
        self.type = type
        self.op = op
        self.flags = flags
        self.bufAlloc = bufAlloc
        self.fwdCnt = fwdCnt
    }

    /// Parses the first 44 bytes of `bytes`; nil when there are fewer.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= VsockHeader.size, let base = bytes.baseAddress else { return nil }
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        func u16(_ at: Int) -> UInt16 { UInt16(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
        srcCID = u64(VsockHeader.srcCIDOffset)
        dstCID = u64(VsockHeader.dstCIDOffset)
        srcPort = u32(VsockHeader.srcPortOffset)
        dstPort = u32(VsockHeader.dstPortOffset)
        len = u32(VsockHeader.lenOffset)
        type = u16(VsockHeader.typeOffset)
        op = u16(VsockHeader.opOffset)
        flags = u32(VsockHeader.flagsOffset)
        bufAlloc = u32(VsockHeader.bufAllocOffset)
        fwdCnt = u32(VsockHeader.fwdCntOffset)
    }

    /// Writes the 44 bytes at `base`.
    public func serialize(into base: UnsafeMutableRawPointer) {
        base.storeBytes(of: srcCID.littleEndian, toByteOffset: VsockHeader.srcCIDOffset, as: UInt64.self)
        base.storeBytes(of: dstCID.littleEndian, toByteOffset: VsockHeader.dstCIDOffset, as: UInt64.self)
        base.storeBytes(of: srcPort.littleEndian, toByteOffset: VsockHeader.srcPortOffset, as: UInt32.self)
        base.storeBytes(of: dstPort.littleEndian, toByteOffset: VsockHeader.dstPortOffset, as: UInt32.self)
        base.storeBytes(of: len.littleEndian, toByteOffset: VsockHeader.lenOffset, as: UInt32.self)
        base.storeBytes(of: type.littleEndian, toByteOffset: VsockHeader.typeOffset, as: UInt16.self)
        base.storeBytes(of: op.littleEndian, toByteOffset: VsockHeader.opOffset, as: UInt16.self)
        base.storeBytes(of: flags.littleEndian, toByteOffset: VsockHeader.flagsOffset, as: UInt32.self)
        base.storeBytes(of: bufAlloc.littleEndian, toByteOffset: VsockHeader.bufAllocOffset, as: UInt32.self)
        base.storeBytes(of: fwdCnt.littleEndian, toByteOffset: VsockHeader.fwdCntOffset, as: UInt32.self)
    }

    /// The 44 bytes (tests, seeds; the device serializes into a reused buffer).
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: VsockHeader.size)
        out.withUnsafeMutableBytes { serialize(into: $0.baseAddress!) }
        return out
    }

    /// The answer RST to this packet from the guest: addressed back to its sender.
    public func resetReply() -> VsockHeader {
        VsockHeader(srcCID: dstCID, dstCID: srcCID, srcPort: dstPort, dstPort: srcPort, type: VIRTIO_VSOCK_TYPE_STREAM,
                    op: VIRTIO_VSOCK_OP_RST)
    }

    /// Why a packet the guest sent is refused, or nil when it is sound. `payloadRoom` is
    /// the chain's readable bytes after the header.
    public func fault(guestCID: UInt64, payloadRoom: UInt64) -> VsockPacketFault? {
        // Addressing first: a packet not from this guest to the host is not answered at all.
        if srcCID != guestCID { return .badSourceCID }
        if dstCID != VIRTIO_VSOCK_CID_HOST { return .badDestinationCID }
        if len > VirtioVsock.maxPayload { return .lengthTooLarge }
        if UInt64(len) > payloadRoom { return .lengthPastChain }
        if type != VIRTIO_VSOCK_TYPE_STREAM { return .badType }
        if op < VIRTIO_VSOCK_OP_REQUEST || op > VIRTIO_VSOCK_OP_CREDIT_REQUEST { return .badOperation }
        return nil
    }
}

/// A packet from the guest that the device refuses (always counted as malformed).
public enum VsockPacketFault: Equatable, CustomStringConvertible {
    /// Shorter than a header.
    case tooShort
    /// src_cid is not the guest's CID, or dst_cid not the host's: dropped (answering would
    /// address someone the guest is not).
    case badSourceCID, badDestinationCID
    /// len past VirtioVsock.maxPayload or past the chain's readable bytes: dropped.
    case lengthTooLarge, lengthPastChain
    /// An unknown type or op: answered RST (§5.10.6.3: the device replies RST to what it
    /// cannot take), unless the packet is itself an RST.
    case badType, badOperation

    /// Whether the spec has the device answer RST (else the packet is only dropped).
    public var answeredWithReset: Bool { self == .badType || self == .badOperation }

    public var description: String {
        switch self {
        case .tooShort: return "shorter than a header"
        case .badSourceCID: return "src_cid is not the guest's"
        case .badDestinationCID: return "dst_cid is not the host's"
        case .lengthTooLarge: return "len past the largest payload"
        case .lengthPastChain: return "len past the chain"
        case .badType: return "unknown type"
        case .badOperation: return "unknown op"
        }
    }
}
