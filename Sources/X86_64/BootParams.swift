import SwiftletCore

// struct boot_params ("zero page") offsets (arch/x86/include/uapi/asm/bootparam.h).
private let ACPI_RSDP_ADDR = 0x070 // boot protocol 2.14; older kernels ignore it
private let EXT_RAMDISK_IMAGE = 0x0C0
private let EXT_RAMDISK_SIZE = 0x0C4
private let EXT_CMD_LINE_PTR = 0x0C8
private let E820_ENTRIES = 0x1E8
private let SETUP_HEADER = 0x1F1
private let TYPE_OF_LOADER = 0x210
private let LOADFLAGS = 0x211
private let RAMDISK_IMAGE = 0x218
private let RAMDISK_SIZE = 0x21C
private let HEAP_END_PTR = 0x224
private let CMD_LINE_PTR = 0x228
private let E820_TABLE = 0x2D0
private let E820_MAX_ENTRIES = 128

private let LOADER_UNDEFINED: UInt8 = 0xFF
private let CAN_USE_HEAP: UInt8 = 0x80

public struct E820Entry: Equatable {
    public enum Kind: UInt32 { case ram = 1, reserved = 2 }
    public let address: UInt64
    public let size: UInt64
    public let kind: Kind
}

/// The zero page for Linux's 64-bit boot protocol: the bzImage's setup header, what the
/// loader fills in (command line, initrd), and the e820 memory map.
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
        return page
    }
}
