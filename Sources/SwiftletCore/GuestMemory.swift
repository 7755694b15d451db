import CLinux

/// How guest RAM is backed: anonymous memory advised for transparent huge pages (the
/// default), or hugetlbfs pages of 2 MiB the host has reserved (Firecracker's `huge_pages`).
public enum HugePages: Equatable {
    case none
    case twoMiB
}

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
    /// The huge-page sizes of both architectures' 4 KiB-granule page tables (PMD and PUD
    /// blocks), smallest first.
    public static let hugePageSizes: [UInt64] = [2 << 20, 1 << 30]
    public static let hugetlbPageSize: UInt64 = 2 << 20

    /// Maps memory for each region. Regions must be page aligned, non-empty and must not
    /// overlap. With `.none`, anonymous memory placed at a host address congruent to the
    /// region's guest address modulo the largest huge-page size the region spans, and
    /// advised MADV_HUGEPAGE: KVM maps guest RAM in stage-2 (EPT/NPT) blocks only where host
    /// and guest addresses agree modulo the block size, and 4 KiB stage-2 faults dominate a
    /// guest's early boot. With `.twoMiB`, hugetlbfs pages reserved by the host, taken at
    /// mmap time so a shortage is an error now, not a SIGBUS later.
    public init(regions: [Region], hugePages: HugePages = .none) throws(SwiftletError) {
        try GuestMemory.validate(regions, pageSize: hugePages == .twoMiB ? GuestMemory.hugetlbPageSize : GuestMemory.pageSize)
        var mappings: [Mapping] = []
        for region in regions.sorted(by: { $0.guestBase < $1.guestBase }) {
            do throws(SwiftletError) {
                let host = hugePages == .twoMiB ? try GuestMemory.mapHugetlb(region) : try GuestMemory.mapAnonymous(region)
                mappings.append(Mapping(region: region, host: host))
            } catch {
                for mapping in mappings { munmap(mapping.host, Int(mapping.region.size)) }
                throw error
            }
        }
        self.mappings = mappings
    }

    private static func mapAnonymous(_ region: Region) throws(SwiftletError) -> UnsafeMutableRawPointer {
        let alignment = hostAlignment(forSize: region.size, pageSize: pageSize)
        // Reserve enough to place the region at any offset modulo the alignment, then give
        // back the head and the tail.
        let reserved = region.size + alignment - pageSize
        let reservation = mmap(nil, Int(reserved), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let reservation, sl_map_failed(reservation) == 0 else {
            throw .lastSystemError("mmap of \(region.size >> 20) MiB guest RAM")
        }
        let reservationAddress = UInt64(UInt(bitPattern: reservation))
        let start = alignedStart(reservation: reservationAddress, guestBase: region.guestBase, alignment: alignment)
        let head = start - reservationAddress
        if head > 0 { munmap(reservation, Int(head)) }
        let tail = reserved - head - region.size
        if tail > 0 { munmap(reservation + Int(head + region.size), Int(tail)) }
        let host = reservation + Int(head)
        // Where the host has no transparent huge pages this fails, and the RAM still works in
        // 4 KiB pages.
        _ = madvise(host, Int(region.size), MADV_HUGEPAGE)
        return host
    }

    private static func mapHugetlb(_ region: Region) throws(SwiftletError) -> UnsafeMutableRawPointer {
        let host = mmap(nil, Int(region.size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | sl_map_hugetlb_2mb(), -1, 0)
        guard let host, sl_map_failed(host) == 0 else {
            let code = sl_errno()
            if code == ENOMEM || code == EINVAL {
                throw .unsupported("--hugepages 2M: the host has fewer than \(region.size >> 21) free 2 MiB huge pages for \(region.size >> 20) MiB of guest RAM (reserve them with: echo N > /proc/sys/vm/nr_hugepages)")
            }
            throw .system("mmap of \(region.size >> 20) MiB guest RAM in 2 MiB huge pages", errno: code)
        }
        return host
    }

    /// The alignment that lets the host back a region of `size` bytes with the largest
    /// huge page it spans (2 MiB, or 1 GiB from 1 GiB up); the page size below 2 MiB.
    public static func hostAlignment(forSize size: UInt64, pageSize: UInt64) -> UInt64 {
        var alignment = pageSize
        for hugePage in hugePageSizes where size >= hugePage { alignment = hugePage }
        return alignment
    }

    /// The first address at or above `reservation` congruent to `guestBase` modulo
    /// `alignment` (a power of two): less than `alignment` above it, and page aligned when
    /// both addresses are.
    public static func alignedStart(reservation: UInt64, guestBase: UInt64, alignment: UInt64) -> UInt64 {
        reservation &+ ((guestBase &- reservation) & (alignment &- 1))
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
