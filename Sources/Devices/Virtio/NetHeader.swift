import SwiftletCore

// struct virtio_net_hdr_v1 (virtio 1.2 §5.1.6), in front of every frame on both queues and
// on the tap (IFF_VNET_HDR with a 12-byte header), little-endian.
enum VirtioNetHeaderLayout {
    static let flags = 0          // u8
    static let gsoType = 1        // u8
    static let hdrLen = 2         // le16
    static let gsoSize = 4        // le16
    static let csumStart = 6      // le16
    static let csumOffset = 8     // le16
    static let numBuffers = 10    // le16
    static let size = 12
}

// virtio_net_hdr flags and gso_type values (§5.1.6).
public let VIRTIO_NET_HDR_F_NEEDS_CSUM: UInt8 = 1
public let VIRTIO_NET_HDR_F_DATA_VALID: UInt8 = 2
public let VIRTIO_NET_HDR_GSO_NONE: UInt8 = 0
public let VIRTIO_NET_HDR_GSO_TCPV4: UInt8 = 1
public let VIRTIO_NET_HDR_GSO_UDP: UInt8 = 3
public let VIRTIO_NET_HDR_GSO_TCPV6: UInt8 = 4
public let VIRTIO_NET_HDR_GSO_ECN: UInt8 = 0x80

/// Why a frame the driver asked to transmit is refused (counted, never trusted further).
public enum NetTransmitFault: Equatable {
    case tooShort, tooLong
    /// Flags other than NEEDS_CSUM (DATA_VALID and RSC_INFO are the device's to set).
    case badFlags
    /// NEEDS_CSUM without VIRTIO_NET_F_CSUM, or a checksum field outside the frame.
    case badChecksumRequest
    /// A segmentation type that was not negotiated, or one without its checksum request.
    case badSegmentation
}

/// The header of one frame, as read once from guest memory.
public struct VirtioNetHeader: Equatable {
    public var flags: UInt8 = 0
    public var gsoType: UInt8 = VIRTIO_NET_HDR_GSO_NONE
    public var hdrLen: UInt16 = 0
    public var gsoSize: UInt16 = 0
    public var csumStart: UInt16 = 0
    public var csumOffset: UInt16 = 0
    public var numBuffers: UInt16 = 0

    public init() {}

    /// From the first 12 bytes of `bytes` (which must hold that many).
    public init(_ bytes: UnsafeRawBufferPointer) {
        typealias L = VirtioNetHeaderLayout
        flags = bytes[L.flags]
        gsoType = bytes[L.gsoType]
        hdrLen = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: L.hdrLen, as: UInt16.self))
        gsoSize = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: L.gsoSize, as: UInt16.self))
        csumStart = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: L.csumStart, as: UInt16.self))
        csumOffset = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: L.csumOffset, as: UInt16.self))
        numBuffers = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: L.numBuffers, as: UInt16.self))
    }

    /// Whether the tap may be handed this frame (`frameLength` bytes after the header),
    /// given the negotiated features: nil if so, else why not. The tap's kernel checks
    /// again; this keeps what the guest could not have negotiated from reaching it at all.
    public func transmitFault(frameLength: Int, features: UInt64) -> NetTransmitFault? {
        guard frameLength >= VirtioNet.ethernetHeaderLength else { return .tooShort }
        guard frameLength <= VirtioNet.maxFrameLength else { return .tooLong }
        guard flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM == 0 else { return .badFlags }
        if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
            guard features & VirtioNetFeature.csum != 0,
                  Int(csumStart) + Int(csumOffset) + 2 <= frameLength else { return .badChecksumRequest }
        }
        let type = gsoType & ~VIRTIO_NET_HDR_GSO_ECN
        guard type != VIRTIO_NET_HDR_GSO_NONE else {
            return gsoType == VIRTIO_NET_HDR_GSO_NONE ? nil : .badSegmentation
        }
        let needed: UInt64
        switch type {
        case VIRTIO_NET_HDR_GSO_TCPV4: needed = VirtioNetFeature.hostTSO4
        case VIRTIO_NET_HDR_GSO_TCPV6: needed = VirtioNetFeature.hostTSO6
        default: return .badSegmentation
        }
        guard features & needed != 0, flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0, gsoSize > 0,
              gsoType & VIRTIO_NET_HDR_GSO_ECN == 0 || features & VirtioNetFeature.hostECN != 0 else {
            return .badSegmentation
        }
        return nil
    }
}
