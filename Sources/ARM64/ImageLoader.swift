import SwiftletCore

/// Where an arm64 kernel goes and where it is entered, from Linux's arm64 booting.rst:
/// an Image has a 64-byte header with text_offset, image_size and flags, and loads at a
/// 2 MiB-aligned base + text_offset; a file without the header is a raw binary.
public struct KernelPlacement: Equatable {
    public let loadAddress: UInt64
    public let entry: UInt64
    /// Bytes the kernel occupies once running (image_size: text, data and BSS).
    public let footprint: UInt64
    public let isImage: Bool
}

public enum ImageLoader {
    static let headerSize = 64
    static let magic: UInt32 = 0x644D_5241           // "ARM\x64" at offset 56
    static let defaultTextOffset: UInt64 = 0x8_0000    // for image_size == 0 (pre-3.17 kernels)
    static let flagBigEndian: UInt64 = 1 << 0

    /// Works out placement for the kernel whose header is `kernel` in RAM at `ramBase` of
    /// `ramSize` bytes. Every size and offset comes from the file, so every sum is checked.
    public static func place(_ kernel: ImageHeader, ramBase: UInt64, ramSize: UInt64) throws(SwiftletError) -> KernelPlacement {
        let path = kernel.path
        guard kernel.fileSize > 0 else { throw .invalidImage("kernel \(path) is empty") }
        try ImageFormat.requireBootable(kernel.bytes, path: path, expected: .arm64Image, name: "an arm64 Image")
        let placement: KernelPlacement
        if kernel.bytes.count >= headerSize && readLE32(kernel.bytes, at: 56) == magic {
            placement = try placeImage(kernel, ramBase: ramBase)
        } else {
            let (load, overflow) = ramBase.addingReportingOverflow(Layout.rawImageOffset)
            guard !overflow else { throw noRoom(ramBase) }
            placement = KernelPlacement(loadAddress: load, entry: load, footprint: kernel.fileSize, isImage: false)
        }
        // Offset from the RAM base (at most 4 MiB) plus the footprint, without overflowing.
        let start = placement.loadAddress - ramBase
        guard placement.footprint <= ramSize, start <= ramSize - placement.footprint else {
            throw .invalidImage("kernel \(path) needs \(mebibytesRoundedUp(saturatingSum(start, placement.footprint))) MiB of guest memory from the RAM base, but the guest has \(mebibytesRoundedUp(ramSize)) MiB (raise --memory)")
        }
        return placement
    }

    static func placeImage(_ kernel: ImageHeader, ramBase: UInt64) throws(SwiftletError) -> KernelPlacement {
        let bytes = kernel.bytes, path = kernel.path
        var textOffset = readLE64(bytes, at: 8)
        let imageSize = readLE64(bytes, at: 16)
        let flags = readLE64(bytes, at: 24)
        guard flags & flagBigEndian == 0 else { throw .invalidImage("kernel \(path) is a big-endian arm64 Image; Swiftlet boots little-endian kernels") }
        if imageSize == 0 { textOffset = defaultTextOffset }
        guard textOffset % 4096 == 0, textOffset < (2 << 20) else {
            throw .invalidImage("kernel \(path) has a bad arm64 Image header (text_offset 0x\(hex(textOffset)))")
        }
        let footprint = imageSize == 0 ? kernel.fileSize : imageSize
        guard imageSize == 0 || kernel.fileSize <= imageSize else {
            throw .invalidImage("kernel \(path) has a bad arm64 Image header (file of \(kernel.fileSize) bytes, image_size \(imageSize))")
        }
        if let needed = peFileSize(bytes, fileSize: kernel.fileSize), needed > kernel.fileSize {
            throw .invalidImage("kernel \(path) is truncated: its PE/COFF sections need \(needed) bytes, the file has \(kernel.fileSize)")
        }
        let alignment: UInt64 = 2 << 20
        guard ramBase <= UInt64.max - (alignment - 1) - textOffset else {
            throw noRoom(ramBase)
        }
        let base = (ramBase + alignment - 1) & ~(alignment - 1)
        let load = base + textOffset
        return KernelPlacement(loadAddress: load, entry: load, footprint: footprint, isImage: true)
    }

    static func noRoom(_ ramBase: UInt64) -> SwiftletError {
        .invalidArgument("RAM base 0x\(hex(ramBase)) leaves no room for a kernel")
    }

    /// Distros' Images carry an EFI stub, i.e. a PE/COFF header whose section table says
    /// how long the file must be: that is how a truncated kernel is caught before booting.
    /// `bytes` is the file's start; sections listed past it (but inside the file) are not
    /// judged, and a table running past the file's end means the file is cut short.
    static func peFileSize(_ bytes: [UInt8], fileSize: UInt64) -> UInt64? {
        guard bytes.count >= headerSize, bytes[0] == 0x4D, bytes[1] == 0x5A else { return nil } // "MZ"
        let pe = Int(readLE32(bytes, at: 0x3C))
        guard pe > 0, pe <= bytes.count - 24, readLE32(bytes, at: pe) == 0x0000_4550 else { return nil }       // "PE\0\0"
        let sectionCount = Int(readLE16(bytes, at: pe + 6))
        let optionalHeaderSize = Int(readLE16(bytes, at: pe + 20))
        let table = pe + 24 + optionalHeaderSize
        var end: UInt64 = 0
        for index in 0..<sectionCount {
            let section = table + index * 40
            guard section + 40 <= bytes.count else {
                // The rest of the table lies past the bytes read: judge what was read.
                return UInt64(section + 40) > fileSize ? UInt64(section + 40) : end
            }
            let rawSize = UInt64(readLE32(bytes, at: section + 16))
            let rawPointer = UInt64(readLE32(bytes, at: section + 20))
            end = max(end, rawPointer + rawSize)
        }
        return end
    }

}
