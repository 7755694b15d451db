import SwiftletCore

/// The framing shared by the arm64-image and bzimage targets: a fixed 35-byte prefix with
/// the machine's side of the boot, then the start of the kernel file.
///
///     offset  size  field
///     0       1     flags: bit 0 an initrd is given, bit 1 RAM size is raw bytes (else MiB
///                   in the range VMConfig accepts), bit 3 the header bytes are taken as
///                   they are (else cut or zero-padded to what ImageFile.header() reads for
///                   that file size), bit 4 arm64: RAM base from the input (else the layout's)
///     1       8     file size
///     9       8     RAM: bytes (bit 1) or MiB (low 4 bytes, folded into 2...1 TiB)
///     17      8     initrd size
///     25      2     bzimage: command line length (0xFFFF: the default command line)
///     27      8     arm64: RAM base (with flag bit 4)
///     35      ...   the kernel file's first bytes
public struct KernelInput {
    public static let prefixSize = 35
    /// What ImageFile.header() reads at most.
    public static let headerLimit = ImageFile.headerLimit

    public let header: ImageHeader
    public let ramSize: UInt64
    public let initrdSize: UInt64?
    public let cmdline: String?
    public let ramBase: UInt64?

    public init(_ buffer: UnsafeRawBufferPointer) {
        var input = FuzzInput(buffer)
        let flags = input.byte()
        let fileSize = input.uint64()
        let ram = input.uint64()
        ramSize = flags & 0x02 != 0 ? ram : (2 + (ram & 0xFFFF_FFFF) % ((1 << 20) - 1)) << 20
        let initrd = input.uint64()
        initrdSize = flags & 0x01 != 0 ? initrd : nil
        let cmdlineLength = Int(input.uint16())
        cmdline = cmdlineLength == 0xFFFF ? nil : String(repeating: "a", count: cmdlineLength)
        let base = input.uint64()
        ramBase = flags & 0x10 != 0 ? base : nil
        var bytes = input.rest()
        if flags & 0x08 == 0 {
            let count = Int(min(fileSize, UInt64(KernelInput.headerLimit)))
            if bytes.count > count { bytes.removeLast(bytes.count - count) }
            if bytes.count < count { bytes += [UInt8](repeating: 0, count: count - bytes.count) }
        }
        header = ImageHeader(path: "fuzz-kernel", bytes: bytes, fileSize: fileSize)
    }
}
