import Synchronization

/// A device on an MMIO or port-I/O bus. Offsets are relative to the device's base, and
/// `data.count` is the access width (1, 2, 4 or 8). Devices are called on vCPU threads, so
/// each one locks its own state; they must not allocate, and must tolerate any offset,
/// width and value a guest may send.
public protocol BusDevice: AnyObject {
    func read(offset: UInt64, data: UnsafeMutableRawBufferPointer)
    func write(offset: UInt64, data: UnsafeRawBufferPointer)
}

/// Accesses to one device on a bus, counted on the vCPU threads (relaxed atomics: no lock,
/// no allocation on the exit path).
public final class AccessCounts {
    public let name: String
    public let base: UInt64
    private let readCount = Atomic<UInt64>(0)
    private let writeCount = Atomic<UInt64>(0)

    init(name: String, base: UInt64) {
        self.name = name
        self.base = base
    }

    @inline(__always) func countRead() { readCount.wrappingAdd(1, ordering: .relaxed) }
    @inline(__always) func countWrite() { writeCount.wrappingAdd(1, ordering: .relaxed) }
    public var reads: UInt64 { readCount.load(ordering: .relaxed) }
    public var writes: UInt64 { writeCount.load(ordering: .relaxed) }
}

/// An address space of devices. Built before the vCPUs start and read-only afterwards, so
/// lookups take no lock; a lookup is a binary search over ranges sorted by base.
public final class Bus {
    public struct Range: Equatable {
        public let base: UInt64
        public let size: UInt64
        public var last: UInt64 { base + (size - 1) }
    }

    private var ranges: [Range] = []
    private var devices: [any BusDevice] = []
    private var counts: [AccessCounts] = []
    public let name: String

    public init(name: String) { self.name = name }

    public var count: Int { ranges.count }

    /// Adds `device` at `[base, base + size)`; overlapping an existing device is refused.
    /// `name` labels its access counts (`--stats`).
    public func insert(_ device: any BusDevice, base: UInt64, size: UInt64, name: String = "") throws(SwiftletError) {
        guard size > 0, base <= UInt64.max - (size - 1) else {
            throw .invalidArgument("\(name) bus: bad range at 0x\(hex(base)) size \(size)")
        }
        let range = Range(base: base, size: size)
        let index = insertionIndex(for: base)
        if index > 0, ranges[index - 1].last >= base {
            throw .invalidArgument("\(name) bus: 0x\(hex(base)) size 0x\(hex(size)) overlaps a device at 0x\(hex(ranges[index - 1].base))")
        }
        if index < ranges.count, range.last >= ranges[index].base {
            throw .invalidArgument("\(name) bus: 0x\(hex(base)) size 0x\(hex(size)) overlaps a device at 0x\(hex(ranges[index].base))")
        }
        ranges.insert(range, at: index)
        devices.insert(device, at: index)
        counts.insert(AccessCounts(name: name, base: base), at: index)
    }

    /// Each device's reads and writes so far, in address order.
    public var accessCounts: [AccessCounts] { counts }

    private func insertionIndex(for base: UInt64) -> Int {
        var low = 0, high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            if ranges[mid].base < base { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Index of the device whose range holds `address`.
    @inline(__always)
    private func index(of address: UInt64) -> Int? {
        var low = 0, high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            let range = ranges[mid]
            if address < range.base { high = mid }
            else if address > range.last { low = mid + 1 }
            else { return mid }
        }
        return nil
    }

    /// Dispatches a read. Returns false when no device holds the whole access; the caller
    /// then answers as the architecture does for unbacked addresses.
    @inline(__always)
    public func read(_ address: UInt64, data: UnsafeMutableRawBufferPointer) -> Bool {
        guard let i = index(of: address), fits(address, data.count, ranges[i]) else { return false }
        counts[i].countRead()
        devices[i].read(offset: address - ranges[i].base, data: data)
        return true
    }

    @inline(__always)
    public func write(_ address: UInt64, data: UnsafeRawBufferPointer) -> Bool {
        guard let i = index(of: address), fits(address, data.count, ranges[i]) else { return false }
        counts[i].countWrite()
        devices[i].write(offset: address - ranges[i].base, data: data)
        return true
    }

    /// An access that starts inside a device but runs past its end is not the device's.
    @inline(__always)
    private func fits(_ address: UInt64, _ length: Int, _ range: Range) -> Bool {
        UInt64(length) <= range.last - address + 1
    }
}
