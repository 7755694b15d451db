import SwiftletCore

/// What goes where for an x86_64 boot, decided before touching KVM or reading the kernel's
/// body. Three kinds of kernel file:
/// - a bzImage: its protected-mode kernel at 1 MiB, entered at its 64-bit entry (+0x200),
///   boot_params built from its setup header;
/// - an ELF vmlinux (uncompressed, Firecracker's x86_64 format): each PT_LOAD segment at its
///   physical address, entered at e_entry (startup_64), boot_params with a setup header
///   Swiftlet writes itself; no decompression in the guest;
/// - a raw binary (tests): at 1 MiB, entered at its first byte, no boot_params.
/// All three enter in 64-bit mode with the same page tables and GDT, boot_params in %rsi.
public struct X86BootPlan {
    public enum Format: Equatable { case bzImage, vmlinux, raw }

    public let format: Format
    /// The parts of the kernel file that go to guest memory, by address, not overlapping.
    public let segments: [KernelSegment]
    public let entry: UInt64
    public let bzImage: BzImage?
    public let cmdline: [UInt8]          // NUL-terminated
    public let initrd: Range<UInt64>?

    /// A vmlinux's boot_params setup header (no file header to copy it from).
    public var setupHeader: SyntheticSetupHeader {
        SyntheticSetupHeader(cmdlineSize: X86BootPlan.vmlinuxCmdlineSize, initrdAddressMax: X86BootPlan.defaultInitrdAddressMax)
    }

    public static let defaultCmdline = "console=ttyS0 reboot=k panic=-1 i8042.noaux i8042.nomux"
    static let startup64Offset: UInt64 = 0x200
    /// Linux x86's COMMAND_LINE_SIZE (2048, NUL included): a vmlinux has no setup header
    /// to say its own cmdline_size, and the kernel cuts what is longer.
    static let vmlinuxCmdlineSize: UInt32 = 2047
    /// The highest initrd address when the kernel does not say (boot.rst: initrd_addr_max
    /// of protocol 2.03 and later kernels without the field's own value).
    static let defaultInitrdAddressMax: UInt32 = 0x7FFF_FFFF

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
        let cmdlineBytes = Array(text.utf8) + [0]
        guard kernel.fileSize > 0 else { throw .invalidImage("kernel \(kernel.path) is empty") }
        // An ELF file is a vmlinux or nothing: never run as a raw binary.
        if !Vmlinux.isELF(kernel.bytes) {
            try ImageFormat.requireBootable(kernel.bytes, path: kernel.path, expected: .bzImage, name: "a bzImage or an x86_64 ELF vmlinux")
        }
        guard lowRAMEnd > Layout.kernel else { throw .invalidArgument("guest memory ends below the kernel's load address 0x\(hex(Layout.kernel)); raise --memory") }
        let room = lowRAMEnd - Layout.kernel
        if Vmlinux.isELF(kernel.bytes) {
            return try vmlinux(kernel, text: text, initrdSize: initrdSize, lowRAMEnd: lowRAMEnd)
        }
        guard BzImage.isBzImage(kernel.bytes) else {
            guard initrdSize == nil else { throw .invalidArgument("--initrd needs a bzImage or vmlinux kernel; \(kernel.path) is a raw binary") }
            guard UInt64(text.utf8.count) < Layout.cmdlineMax else {
                throw .invalidArgument("--cmdline is \(text.utf8.count) bytes; at most \(Layout.cmdlineMax - 1) fit")
            }
            guard kernel.fileSize <= room else {
                throw .invalidImage("kernel \(kernel.path) (\(kernel.fileSize) bytes) does not fit in guest memory at 0x\(hex(Layout.kernel))")
            }
            let whole = KernelSegment(fileOffset: 0, fileSize: kernel.fileSize, address: Layout.kernel, memorySize: kernel.fileSize)
            return X86BootPlan(format: .raw, segments: [whole], entry: Layout.kernel, bzImage: nil, cmdline: cmdlineBytes, initrd: nil)
        }
        let image = try BzImage(kernel)
        guard UInt64(text.utf8.count) <= UInt64(image.cmdlineSize), UInt64(text.utf8.count) < Layout.cmdlineMax else {
            throw .invalidArgument("--cmdline is \(text.utf8.count) bytes; this kernel accepts at most \(image.cmdlineSize)")
        }
        guard image.footprint <= room else {
            throw .invalidImage("kernel \(kernel.path) needs \(mebibytesRoundedUp(saturatingSum(Layout.kernel, image.footprint))) MiB of guest memory; raise --memory")
        }
        let initrd = try initrdRange(initrdSize, above: Layout.kernel + image.footprint, addressMax: image.initrdAddressMax,
                                     lowRAMEnd: lowRAMEnd)
        let payload = KernelSegment(fileOffset: image.payloadOffset, fileSize: image.payloadSize, address: Layout.kernel,
                                    memorySize: image.payloadSize)
        return X86BootPlan(format: .bzImage, segments: [payload], entry: Layout.kernel + startup64Offset, bzImage: image,
                           cmdline: cmdlineBytes, initrd: initrd)
    }

    /// An ELF vmlinux: its segments anywhere from 1 MiB (below lies the machine's boot data:
    /// GDT, boot_params, page tables, command line, MP and ACPI tables) to the end of low RAM.
    static func vmlinux(_ kernel: ImageHeader, text: String, initrdSize: UInt64?, lowRAMEnd: UInt64) throws(SwiftletError) -> X86BootPlan {
        let elf = try Vmlinux(kernel, ram: Layout.kernel..<lowRAMEnd)
        guard UInt64(text.utf8.count) <= UInt64(vmlinuxCmdlineSize) else {
            throw .invalidArgument("--cmdline is \(text.utf8.count) bytes; this kernel accepts at most \(vmlinuxCmdlineSize)")
        }
        let initrd = try initrdRange(initrdSize, above: elf.end, addressMax: defaultInitrdAddressMax, lowRAMEnd: lowRAMEnd)
        return X86BootPlan(format: .vmlinux, segments: elf.segments, entry: elf.entry, bzImage: nil,
                           cmdline: Array(text.utf8) + [0], initrd: initrd)
    }

    /// The initrd as high as the kernel can reach it (the end of low RAM, or initrd_addr_max
    /// when that is lower), page aligned, and never below `kernelEnd`.
    static func initrdRange(_ size: UInt64?, above kernelEnd: UInt64, addressMax: UInt32,
                            lowRAMEnd: UInt64) throws(SwiftletError) -> Range<UInt64>? {
        guard let size else { return nil }
        guard size > 0 else { throw .invalidImage("the initrd is empty") }
        let top = min(lowRAMEnd, UInt64(addressMax) + 1)
        guard size <= top, (top - size) & ~0xFFF >= kernelEnd else {
            throw .invalidArgument("guest memory is too small for the kernel (\(mebibytesRoundedUp(kernelEnd - Layout.kernel)) MiB) and the initrd (\(mebibytesRoundedUp(size)) MiB); raise --memory")
        }
        let start = (top - size) & ~0xFFF
        return start..<(start + size)
    }
}
