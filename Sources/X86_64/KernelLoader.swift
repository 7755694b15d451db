import SwiftletCore

/// What goes where for an x86_64 boot, decided before touching KVM: a bzImage's protected-
/// mode kernel at 1 MiB entered at its 64-bit entry (+0x200) with boot_params in %rsi, or a
/// raw binary at 1 MiB entered at its first byte.
public struct X86BootPlan {
    public let kernelBytes: ArraySlice<UInt8>
    public let entry: UInt64
    public let bzImage: BzImage?
    public let cmdline: [UInt8]          // NUL-terminated
    public let initrd: Range<UInt64>?

    public static let defaultCmdline = "console=ttyS0 reboot=k panic=-1 i8042.noaux i8042.nomux"
    static let startup64Offset: UInt64 = 0x200

    public static func make(kernel: FileContents, initrdSize: UInt64?, cmdline: String?, lowRAMEnd: UInt64) throws(SwiftletError) -> X86BootPlan {
        let text = cmdline ?? defaultCmdline
        guard !kernel.bytes.isEmpty else { throw .invalidImage("kernel \(kernel.path) is empty") }
        try ImageFormat.requireBootable(kernel.bytes, path: kernel.path, expected: .bzImage, name: "a bzImage")
        guard BzImage.isBzImage(kernel.bytes) else {
            guard initrdSize == nil else { throw .invalidArgument("--initrd needs a bzImage kernel; \(kernel.path) is a raw binary") }
            guard Layout.kernel + UInt64(kernel.bytes.count) <= lowRAMEnd else {
                throw .invalidImage("kernel \(kernel.path) (\(kernel.bytes.count) bytes) does not fit in guest memory at 0x\(hex(Layout.kernel))")
            }
            return X86BootPlan(kernelBytes: kernel.bytes[...], entry: Layout.kernel, bzImage: nil,
                               cmdline: Array(text.utf8) + [0], initrd: nil)
        }
        let image = try BzImage(kernel.bytes, path: kernel.path)
        guard UInt64(text.utf8.count) <= UInt64(image.cmdlineSize), UInt64(text.utf8.count) < Layout.cmdlineMax else {
            throw .invalidArgument("--cmdline is \(text.utf8.count) bytes; this kernel accepts at most \(image.cmdlineSize)")
        }
        let kernelEnd = Layout.kernel + image.footprint
        guard kernelEnd <= lowRAMEnd else {
            throw .invalidImage("kernel \(kernel.path) needs \((kernelEnd + (1 << 20) - 1) >> 20) MiB of guest memory; raise --memory")
        }
        var initrd: Range<UInt64>?
        if let initrdSize {
            guard initrdSize > 0 else { throw .invalidImage("the initrd is empty") }
            let top = min(lowRAMEnd, UInt64(image.initrdAddressMax) + 1)
            guard initrdSize <= top, (top - initrdSize) & ~0xFFF >= kernelEnd else {
                throw .invalidArgument("guest memory is too small for the kernel (\((image.footprint + (1 << 20) - 1) >> 20) MiB) and the initrd (\((initrdSize + (1 << 20) - 1) >> 20) MiB); raise --memory")
            }
            let start = (top - initrdSize) & ~0xFFF
            initrd = start..<(start + initrdSize)
        }
        return X86BootPlan(kernelBytes: image.payload, entry: Layout.kernel + startup64Offset, bzImage: image,
                           cmdline: Array(text.utf8) + [0], initrd: initrd)
    }
}
