import SwiftletCore

/// What goes where for an x86_64 boot, decided before touching KVM or reading the kernel's
/// body: a bzImage's protected-mode kernel at 1 MiB entered at its 64-bit entry (+0x200)
/// with boot_params in %rsi, or a raw binary at 1 MiB entered at its first byte.
public struct X86BootPlan {
    /// The part of the kernel file that goes to `Layout.kernel`.
    public let kernelFileOffset: UInt64
    public let kernelLength: UInt64
    public let entry: UInt64
    public let bzImage: BzImage?
    public let cmdline: [UInt8]          // NUL-terminated
    public let initrd: Range<UInt64>?

    public static let defaultCmdline = "console=ttyS0 reboot=k panic=-1 i8042.noaux i8042.nomux"
    static let startup64Offset: UInt64 = 0x200

    /// What the machine tells the kernel after the user's command line: `pci=off`, because
    /// the machine has no PCI host bridge and Linux would otherwise probe configuration
    /// space through ports 0xCF8/0xCFC (some 33,000 exits to the VMM in one boot, each
    /// 100 µs or more under nesting); then the devices (`virtio_mmio.device=`). A `pci=`
    /// of the user's own is left as it is.
    public static func machineArguments(cmdline: String, devices: String) -> String {
        let userSetsPCI = cmdline.split(separator: " ").contains { $0.hasPrefix("pci=") }
        return ((userSetsPCI ? [] : ["pci=off"]) + (devices.isEmpty ? [] : [devices])).joined(separator: " ")
    }

    /// `deviceArguments` (the device manager's `virtio_mmio.device=` list) follow the
    /// user's command line, and count against the kernel's limit like it.
    public static func make(kernel: ImageHeader, initrdSize: UInt64?, cmdline: String?, deviceArguments: String = "",
                            lowRAMEnd: UInt64) throws(SwiftletError) -> X86BootPlan {
        let base = cmdline ?? defaultCmdline
        let text = deviceArguments.isEmpty ? base : base.isEmpty ? deviceArguments : base + " " + deviceArguments
        guard kernel.fileSize > 0 else { throw .invalidImage("kernel \(kernel.path) is empty") }
        try ImageFormat.requireBootable(kernel.bytes, path: kernel.path, expected: .bzImage, name: "a bzImage")
        guard lowRAMEnd > Layout.kernel else { throw .invalidArgument("guest memory ends below the kernel's load address 0x\(hex(Layout.kernel)); raise --memory") }
        let room = lowRAMEnd - Layout.kernel
        guard BzImage.isBzImage(kernel.bytes) else {
            guard initrdSize == nil else { throw .invalidArgument("--initrd needs a bzImage kernel; \(kernel.path) is a raw binary") }
            guard UInt64(text.utf8.count) < Layout.cmdlineMax else {
                throw .invalidArgument("--cmdline is \(text.utf8.count) bytes; at most \(Layout.cmdlineMax - 1) fit")
            }
            guard kernel.fileSize <= room else {
                throw .invalidImage("kernel \(kernel.path) (\(kernel.fileSize) bytes) does not fit in guest memory at 0x\(hex(Layout.kernel))")
            }
            return X86BootPlan(kernelFileOffset: 0, kernelLength: kernel.fileSize, entry: Layout.kernel, bzImage: nil,
                               cmdline: Array(text.utf8) + [0], initrd: nil)
        }
        let image = try BzImage(kernel)
        guard UInt64(text.utf8.count) <= UInt64(image.cmdlineSize), UInt64(text.utf8.count) < Layout.cmdlineMax else {
            throw .invalidArgument("--cmdline is \(text.utf8.count) bytes; this kernel accepts at most \(image.cmdlineSize)")
        }
        guard image.footprint <= room else {
            throw .invalidImage("kernel \(kernel.path) needs \(mebibytesRoundedUp(saturatingSum(Layout.kernel, image.footprint))) MiB of guest memory; raise --memory")
        }
        let kernelEnd = Layout.kernel + image.footprint
        var initrd: Range<UInt64>?
        if let initrdSize {
            guard initrdSize > 0 else { throw .invalidImage("the initrd is empty") }
            let top = min(lowRAMEnd, UInt64(image.initrdAddressMax) + 1)
            guard initrdSize <= top, (top - initrdSize) & ~0xFFF >= kernelEnd else {
                throw .invalidArgument("guest memory is too small for the kernel (\(mebibytesRoundedUp(image.footprint)) MiB) and the initrd (\(mebibytesRoundedUp(initrdSize)) MiB); raise --memory")
            }
            let start = (top - initrdSize) & ~0xFFF
            initrd = start..<(start + initrdSize)
        }
        return X86BootPlan(kernelFileOffset: image.payloadOffset, kernelLength: image.payloadSize,
                           entry: Layout.kernel + startup64Offset, bzImage: image,
                           cmdline: Array(text.utf8) + [0], initrd: initrd)
    }
}
