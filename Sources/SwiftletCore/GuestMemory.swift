import CLinux

/// Guest RAM: one or more host mappings, each at a guest-physical base. Every access goes
/// through `pointer(at:length:)`, which refuses any range not wholly inside one region,
/// so no guest-supplied address or length can reach host memory outside guest RAM.
public final class GuestMemory {
    public struct Region: Equatable {
        public let guestBase: UInt64
        public let size: UInt64

        public init(guestBase: UInt64, size: UInt64) {
            self.guestBase = guestBase
            self.size = size
        }

        /// Offset of `address` into this region if `[address, address + length)` lies
        /// inside it. Written so that no sum can overflow at the top of the address space.
        @inline(__always)
        public func offset(of address: UInt64, length: UInt64) -> UInt64? {
            guard address >= guestBase, length <= size else { return nil }
            let offset = address - guestBase
            guard offset <= size - length else { return nil }
            return offset
        }

        public var lastAddress: UInt64 { guestBase + (size - 1) }
    }

    public struct Mapping {
        public let region: Region
        public let host: UnsafeMutableRawPointer
    }

    public let mappings: [Mapping]
    public static let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    /// Maps anonymous memory for each region. Regions must be page aligned, non-empty
    /// and must not overlap.
    public init(regions: [Region]) throws(SwiftletError) {
        try GuestMemory.validate(regions, pageSize: GuestMemory.pageSize)
        var mappings: [Mapping] = []
        for region in regions.sorted(by: { $0.guestBase < $1.guestBase }) {
            let host = mmap(nil, Int(region.size), PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            guard let host, sl_map_failed(host) == 0 else {
                let error = SwiftletError.lastSystemError("mmap of \(region.size >> 20) MiB guest RAM")
                for mapping in mappings { munmap(mapping.host, Int(mapping.region.size)) }
                throw error
            }
            mappings.append(Mapping(region: region, host: host))
        }
        self.mappings = mappings
    }

    deinit {
        for mapping in mappings { munmap(mapping.host, Int(mapping.region.size)) }
    }

    public static func validate(_ regions: [Region], pageSize: UInt64) throws(SwiftletError) {
        guard !regions.isEmpty else { throw .invalidArgument("guest memory needs at least one region") }
        let sorted = regions.sorted(by: { $0.guestBase < $1.guestBase })
        for (index, region) in sorted.enumerated() {
            guard region.size > 0, region.size % pageSize == 0, region.guestBase % pageSize == 0 else {
                throw .invalidArgument("guest memory region at 0x\(hex(region.guestBase)) of \(region.size) bytes is not page aligned (page size \(pageSize))")
            }
            guard region.guestBase <= UInt64.max - (region.size - 1) else {
                throw .invalidArgument("guest memory region at 0x\(hex(region.guestBase)) runs past the top of the address space")
            }
            if index > 0 {
                let previous = sorted[index - 1]
                guard previous.lastAddress < region.guestBase else {
                    throw .invalidArgument("guest memory regions at 0x\(hex(previous.guestBase)) and 0x\(hex(region.guestBase)) overlap")
                }
            }
        }
    }

    public var totalSize: UInt64 { mappings.reduce(0) { $0 + $1.region.size } }

    /// Host pointer for `[address, address + length)`, or nil when that range is not wholly
    /// inside one region. Allocation free; safe on the exit path.
    @inline(__always)
    public func pointerIfValid(at address: UInt64, length: UInt64) -> UnsafeMutableRawPointer? {
        for mapping in mappings {
            if let offset = mapping.region.offset(of: address, length: length) {
                return mapping.host + Int(offset)
            }
        }
        return nil
    }

    public func pointer(at address: UInt64, length: UInt64) throws(SwiftletError) -> UnsafeMutableRawPointer {
        guard let pointer = pointerIfValid(at: address, length: length) else {
            throw .outOfBounds(address: address, length: length)
        }
        return pointer
    }

    public func contains(_ address: UInt64, length: UInt64) -> Bool {
        pointerIfValid(at: address, length: length) != nil
    }

    public func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws(SwiftletError) {
        let destination = try pointer(at: address, length: UInt64(bytes.count))
        if let base = bytes.baseAddress { destination.copyMemory(from: base, byteCount: bytes.count) }
    }

    public func write(_ bytes: [UInt8], at address: UInt64) throws(SwiftletError) {
        let destination = try pointer(at: address, length: UInt64(bytes.count))
        bytes.withUnsafeBytes { if let base = $0.baseAddress { destination.copyMemory(from: base, byteCount: $0.count) } }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at address: UInt64) throws(SwiftletError) {
        let source = try pointer(at: address, length: UInt64(buffer.count))
        if let base = buffer.baseAddress { base.copyMemory(from: source, byteCount: buffer.count) }
    }

    /// Stores a fixed-width integer little-endian (both guest architectures are little-endian).
    public func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws(SwiftletError) {
        let destination = try pointer(at: address, length: UInt64(MemoryLayout<T>.size))
        destination.storeBytes(of: value.littleEndian, as: T.self)
    }

    public func load<T: FixedWidthInteger>(_ type: T.Type, at address: UInt64) throws(SwiftletError) -> T {
        let source = try pointer(at: address, length: UInt64(MemoryLayout<T>.size))
        return T(littleEndian: source.loadUnaligned(as: T.self))
    }
}
