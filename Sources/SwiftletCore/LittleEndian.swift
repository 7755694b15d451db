/// Little-endian fields in byte arrays: kernel headers (arm64 Image, bzImage) and the
/// structures Swiftlet writes for guests (boot_params, MP tables). Callers check bounds.
@inline(__always)
public func readLE16(_ bytes: [UInt8], at offset: Int) -> UInt16 {
    UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
}

@inline(__always)
public func readLE32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
    UInt32(readLE16(bytes, at: offset)) | UInt32(readLE16(bytes, at: offset + 2)) << 16
}

@inline(__always)
public func readLE64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    UInt64(readLE32(bytes, at: offset)) | UInt64(readLE32(bytes, at: offset + 4)) << 32
}

@inline(__always)
public func writeLE<T: FixedWidthInteger>(_ value: T, into bytes: inout [UInt8], at offset: Int) {
    for i in 0..<MemoryLayout<T>.size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
}

/// The bytes of `value`, least significant first.
@inline(__always)
public func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: MemoryLayout<T>.size)
    writeLE(value, into: &bytes, at: 0)
    return bytes
}
