import CLinux
import SwiftletCore

/// libfdt's sequential-write API, one call to one method (as rust-vmm's vm-fdt does):
/// begin/end nodes, add properties, finish. The buffer grows when libfdt runs out of room.
public final class FDTWriter {
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int

    public init(capacity: Int = 0x4000) throws(SwiftletError) {
        self.capacity = capacity
        buffer = .allocate(byteCount: capacity, alignment: 8)
        try check(fdt_create(buffer, Int32(capacity)), "fdt_create")
        try check(fdt_finish_reservemap(buffer), "fdt_finish_reservemap")
    }

    deinit { buffer.deallocate() }

    public func beginNode(_ name: String) throws(SwiftletError) {
        try retry("fdt_begin_node \(name)") { fdt_begin_node($0, name) }
    }

    public func endNode() throws(SwiftletError) {
        try retry("fdt_end_node") { fdt_end_node($0) }
    }

    public func property(_ name: String, bytes: [UInt8]) throws(SwiftletError) {
        try retry("property \(name)") { fdt in
            bytes.withUnsafeBytes { fdt_property(fdt, name, $0.baseAddress, Int32($0.count)) }
        }
    }

    public func property(_ name: String) throws(SwiftletError) {
        try retry("property \(name)") { fdt_property(fdt: $0, name: name) }
    }

    public func property(_ name: String, u32 value: UInt32) throws(SwiftletError) {
        try retry("property \(name)") { sl_fdt_property_u32($0, name, value) }
    }

    public func property(_ name: String, u64 value: UInt64) throws(SwiftletError) {
        try retry("property \(name)") { sl_fdt_property_u64($0, name, value) }
    }

    public func property(_ name: String, string value: String) throws(SwiftletError) {
        try retry("property \(name)") { sl_fdt_property_string($0, name, value) }
    }

    /// A list of strings (e.g. `compatible`), each NUL-terminated.
    public func property(_ name: String, strings: [String]) throws(SwiftletError) {
        var bytes: [UInt8] = []
        for string in strings { bytes.append(contentsOf: string.utf8); bytes.append(0) }
        try property(name, bytes: bytes)
    }

    /// Big-endian 32-bit cells (reg, interrupts, phandle lists).
    public func property(_ name: String, cells: [UInt32]) throws(SwiftletError) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(cells.count * 4)
        for cell in cells { for shift in [24, 16, 8, 0] as [UInt32] { bytes.append(UInt8(truncatingIfNeeded: cell >> shift)) } }
        try property(name, bytes: bytes)
    }

    /// 64-bit values as pairs of cells (reg with #address-cells = #size-cells = 2).
    public func property(_ name: String, u64s: [UInt64]) throws(SwiftletError) {
        var cells: [UInt32] = []
        for value in u64s { cells.append(UInt32(truncatingIfNeeded: value >> 32)); cells.append(UInt32(truncatingIfNeeded: value)) }
        try property(name, cells: cells)
    }

    /// Completes the tree and returns the DTB, packed to its real size.
    public func finish() throws(SwiftletError) -> [UInt8] {
        try retry("fdt_finish") { fdt_finish($0) }
        let size = Int(sl_fdt_totalsize(buffer))
        return [UInt8](UnsafeRawBufferPointer(start: buffer, count: size))
    }

    private func retry(_ what: String, _ body: (UnsafeMutableRawPointer) -> Int32) throws(SwiftletError) {
        var rc = body(buffer)
        while rc == -FDT_ERR_NOSPACE {
            let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: 8)
            guard fdt_resize(buffer, bigger, Int32(capacity * 2)) == 0 else {
                bigger.deallocate()
                throw .invalidArgument("device tree: fdt_resize failed")
            }
            buffer.deallocate()
            buffer = bigger
            capacity *= 2
            rc = body(buffer)
        }
        try check(rc, what)
    }

    private func check(_ rc: Int32, _ what: String) throws(SwiftletError) {
        guard rc >= 0 else {
            throw .invalidArgument("device tree: \(what): \(String(cString: fdt_strerror(rc)))")
        }
    }
}

/// fdt_property with no value (boolean properties such as `interrupt-controller`).
@inline(__always)
private func fdt_property(fdt: UnsafeMutableRawPointer, name: String) -> Int32 {
    fdt_property(fdt, name, nil, 0)
}
