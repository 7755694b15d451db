import SwiftletCore

// struct boot_params ("zero page") offsets (arch/x86/include/uapi/asm/bootparam.h).
private let ACPI_RSDP_ADDR = 0x070 // boot protocol 2.14; older kernels ignore it
private let EXT_RAMDISK_IMAGE = 0x0C0
private let EXT_RAMDISK_SIZE = 0x0C4
private let EXT_CMD_LINE_PTR = 0x0C8
private let E820_ENTRIES = 0x1E8
private let SETUP_HEADER = 0x1F1
private let BOOT_FLAG = 0x1FE
private let HEADER = 0x202
private let VERSION = 0x206
private let TYPE_OF_LOADER = 0x210
private let LOADFLAGS = 0x211
private let RAMDISK_IMAGE = 0x218
private let RAMDISK_SIZE = 0x21C
private let HEAP_END_PTR = 0x224
private let CMD_LINE_PTR = 0x228
private let INITRD_ADDR_MAX = 0x22C
private let KERNEL_ALIGNMENT = 0x230
private let XLOADFLAGS = 0x236
private let CMDLINE_SIZE = 0x238
private let E820_TABLE = 0x2D0
private let E820_MAX_ENTRIES = 128

private let LOADER_UNDEFINED: UInt8 = 0xFF
private let CAN_USE_HEAP: UInt8 = 0x80
private let BOOT_FLAG_MAGIC: UInt16 = 0xAA55
private let HEADER_MAGIC: UInt32 = 0x5372_6448  // "HdrS"

public struct E820Entry: Equatable {
    public enum Kind: UInt32 { case ram = 1, reserved = 2 }
    public let address: UInt64
    public let size: UInt64
    public let kind: Kind
}

/// The setup header a vmlinux gets: an ELF file has none, so Swiftlet writes the fields
/// the kernel proper reads or that describe this boot truthfully.
public struct SyntheticSetupHeader {
    /// 2.15: the protocol whose fields Swiftlet fills (acpi_rsdp_addr is 2.14's).
    public static let version: UInt16 = 0x020F
    /// CONFIG_PHYSICAL_ALIGN's x86_64 default; only relocating loaders act on it.
    public static let kernelAlignment: UInt32 = 0x20_0000
    public let cmdlineSize: UInt32
    public let initrdAddressMax: UInt32
}

/// The zero page for Linux's 64-bit boot protocol: the bzImage's setup header (or, for a
/// vmlinux, one written here), what the loader fills in (command line, initrd), and the
/// e820 memory map.
public enum BootParams {
    /// Where the low 640 KiB end: the MP table lives in the last KiB (the "EBDA").
    public static let ebdaStart: UInt64 = 0x9_FC00
    public static let biosEnd: UInt64 = 0x10_0000

    public static func e820(ram: [GuestMemory.Region]) -> [E820Entry] {
        var entries: [E820Entry] = [
            E820Entry(address: 0, size: ebdaStart, kind: .ram),
            E820Entry(address: ebdaStart, size: biosEnd - ebdaStart, kind: .reserved),
        ]
        for region in ram {
            let start = max(region.guestBase, biosEnd)
            let end = region.guestBase + region.size
            if end > start { entries.append(E820Entry(address: start, size: end - start, kind: .ram)) }
        }
        return entries
    }

    public static func make(image: BzImage, cmdlineAddress: UInt64, initrd: Range<UInt64>?,
                            e820: [E820Entry], acpiRSDP: UInt64? = nil) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: 4096)
        for offset in SETUP_HEADER..<image.headerEnd { page[offset] = image.header[offset] }
        fill(&page, cmdlineAddress: cmdlineAddress, initrd: initrd, e820: e820, acpiRSDP: acpiRSDP)
        return page
    }

    public static func make(vmlinux header: SyntheticSetupHeader, cmdlineAddress: UInt64, initrd: Range<UInt64>?,
                            e820: [E820Entry], acpiRSDP: UInt64? = nil) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: 4096)
        writeLE(BOOT_FLAG_MAGIC, into: &page, at: BOOT_FLAG)
        writeLE(HEADER_MAGIC, into: &page, at: HEADER)
        writeLE(SyntheticSetupHeader.version, into: &page, at: VERSION)
        // The kernel sits where it was linked to run (LOADED_HIGH: at 1 MiB or above) and
        // was entered at its 64-bit entry.
        page[LOADFLAGS] = LOADED_HIGH
        writeLE(XLF_KERNEL_64, into: &page, at: XLOADFLAGS)
        writeLE(header.initrdAddressMax, into: &page, at: INITRD_ADDR_MAX)
        writeLE(SyntheticSetupHeader.kernelAlignment, into: &page, at: KERNEL_ALIGNMENT)
        writeLE(header.cmdlineSize, into: &page, at: CMDLINE_SIZE)
        fill(&page, cmdlineAddress: cmdlineAddress, initrd: initrd, e820: e820, acpiRSDP: acpiRSDP)
        return page
    }

    /// What the loader fills in for any kernel: loader type, heap, command line, initrd,
    /// the RSDP and the e820 map.
    private static func fill(_ page: inout [UInt8], cmdlineAddress: UInt64, initrd: Range<UInt64>?,
                             e820: [E820Entry], acpiRSDP: UInt64?) {
        page[TYPE_OF_LOADER] = LOADER_UNDEFINED
        page[LOADFLAGS] |= CAN_USE_HEAP
        writeLE(UInt32(0xFE00), into: &page, at: HEAP_END_PTR)
        writeLE(UInt32(truncatingIfNeeded: cmdlineAddress), into: &page, at: CMD_LINE_PTR)
        writeLE(UInt32(truncatingIfNeeded: cmdlineAddress >> 32), into: &page, at: EXT_CMD_LINE_PTR)
        if let initrd {
            writeLE(UInt32(truncatingIfNeeded: initrd.lowerBound), into: &page, at: RAMDISK_IMAGE)
            writeLE(UInt32(truncatingIfNeeded: initrd.lowerBound >> 32), into: &page, at: EXT_RAMDISK_IMAGE)
            let size = UInt64(initrd.count)
            writeLE(UInt32(truncatingIfNeeded: size), into: &page, at: RAMDISK_SIZE)
            writeLE(UInt32(truncatingIfNeeded: size >> 32), into: &page, at: EXT_RAMDISK_SIZE)
        }
        // Tells Linux where the RSDP is, so it need not scan the BIOS area for it.
        if let acpiRSDP { writeLE(acpiRSDP, into: &page, at: ACPI_RSDP_ADDR) }
        let entries = e820.prefix(E820_MAX_ENTRIES)
        page[E820_ENTRIES] = UInt8(entries.count)
        for (i, entry) in entries.enumerated() {
            let base = E820_TABLE + i * 20
            writeLE(entry.address, into: &page, at: base)
            writeLE(entry.size, into: &page, at: base + 8)
            writeLE(entry.kind.rawValue, into: &page, at: base + 16)
        }
    }
}
