/// Recognises files that are not bootable kernels for a machine, so a wrong --kernel gets a
/// clear error instead of being run as a raw binary.
public enum ImageFormat: Equatable, CustomStringConvertible {
    case elf, gzip, xz, zstd, bzip2, lz4, cpio, bzImage, arm64Image, peExecutable, unknown

    public static func sniff(_ bytes: [UInt8]) -> ImageFormat {
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + magic.count && Array(bytes[offset..<(offset + magic.count)]) == magic
        }
        if starts([0x41, 0x52, 0x4D, 0x64], at: 56) { return .arm64Image }         // "ARM\x64"
        if starts([0x48, 0x64, 0x72, 0x53], at: 0x202) { return .bzImage }         // "HdrS"
        if starts([0x7F, 0x45, 0x4C, 0x46]) { return .elf }
        if starts([0x1F, 0x8B]) { return .gzip }
        if starts([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) { return .xz }
        if starts([0x28, 0xB5, 0x2F, 0xFD]) { return .zstd }
        if starts([0x42, 0x5A, 0x68]) { return .bzip2 }
        if starts([0x04, 0x22, 0x4D, 0x18]) || starts([0x02, 0x21, 0x4C, 0x18]) { return .lz4 }
        if starts(Array("070701".utf8)) || starts(Array("070702".utf8)) { return .cpio }
        if starts([0x4D, 0x5A]) { return .peExecutable }                           // "MZ"
        return .unknown
    }

    public var description: String {
        switch self {
        case .elf: return "an ELF file (an uncompressed vmlinux?)"
        case .gzip: return "gzip-compressed data"
        case .xz: return "xz-compressed data"
        case .zstd: return "zstd-compressed data"
        case .bzip2: return "bzip2-compressed data"
        case .lz4: return "lz4-compressed data"
        case .cpio: return "a cpio archive (an initramfs?)"
        case .bzImage: return "an x86 bzImage"
        case .arm64Image: return "an arm64 Image"
        case .peExecutable: return "a PE/EFI executable"
        case .unknown: return "a raw binary"
        }
    }

    /// Throws unless `bytes` is `expected` or a raw binary (accepted as such).
    public static func requireBootable(_ bytes: [UInt8], path: String, expected: ImageFormat, name: String) throws(SwiftletError) {
        let format = sniff(bytes)
        guard format == expected || format == .unknown else {
            throw .invalidImage("kernel \(path) is not \(name): it is \(format)")
        }
    }
}
