import SwiftletCore

// Linux x86 boot protocol setup header (Documentation/arch/x86/boot.rst), as file offsets.
private let SETUP_SECTS: Int = 0x1F1
private let BOOT_FLAG: Int = 0x1FE          // 0xAA55
private let JUMP: Int = 0x200               // the byte at 0x201 gives the header's length
private let HEADER_MAGIC: Int = 0x202       // "HdrS"
private let VERSION: Int = 0x206
private let LOADFLAGS: Int = 0x211
private let INITRD_ADDR_MAX: Int = 0x22C
private let KERNEL_ALIGNMENT: Int = 0x230
private let RELOCATABLE: Int = 0x234
private let XLOADFLAGS: Int = 0x236
private let CMDLINE_SIZE: Int = 0x238
private let PREF_ADDRESS: Int = 0x258
private let INIT_SIZE: Int = 0x260

let LOADED_HIGH: UInt8 = 0x01
let XLF_KERNEL_64: UInt16 = 0x01

/// A bzImage: its setup header and where the protected-mode kernel starts in the file.
/// Parsed from the file's first bytes (`ImageHeader`); the kernel itself stays in the file.
public struct BzImage {
    /// The start of the file: at least the whole setup header.
    public let header: [UInt8]
    public let fileSize: UInt64
    public let version: UInt16
    public let setupSize: Int
    public let loadFlags: UInt8
    public let xloadFlags: UInt16
    public let cmdlineSize: UInt32
    public let initrdAddressMax: UInt32
    /// Memory the kernel needs from its load address while decompressing and running.
    public let initSize: UInt32
    /// Setup header bytes [0x1F1, end) to copy into boot_params at the same offsets.
    public let headerEnd: Int

    public static let minimumVersion: UInt16 = 0x020C  // 64-bit entry point (xloadflags)
    /// boot_params holds the setup header up to here (struct setup_header's end).
    static let setupHeaderLimit = 0x290

    /// Where the protected-mode kernel lies in the file.
    public var payloadOffset: UInt64 { UInt64(setupSize) }
    public var payloadSize: UInt64 { fileSize - UInt64(setupSize) }

    public static func isBzImage(_ bytes: [UInt8]) -> Bool {
        bytes.count > 0x264 && readLE32(bytes, at: HEADER_MAGIC) == 0x5372_6448 && readLE16(bytes, at: BOOT_FLAG) == 0xAA55
    }

    public init(_ kernel: ImageHeader) throws(SwiftletError) {
        let bytes = kernel.bytes, path = kernel.path
        guard BzImage.isBzImage(bytes) else {
            throw .invalidImage("kernel \(path) is not a bzImage (no \"HdrS\" boot header)")
        }
        version = readLE16(bytes, at: VERSION)
        guard version >= BzImage.minimumVersion else {
            throw .invalidImage("kernel \(path) uses boot protocol \(version >> 8).\(version & 0xFF); Swiftlet needs 2.12 or later (Linux 3.8+)")
        }
        xloadFlags = readLE16(bytes, at: XLOADFLAGS)
        guard xloadFlags & XLF_KERNEL_64 != 0 else {
            throw .invalidImage("kernel \(path) has no 64-bit entry point (not an x86_64 kernel)")
        }
        loadFlags = bytes[LOADFLAGS]
        guard loadFlags & LOADED_HIGH != 0 else { throw .invalidImage("kernel \(path) is a zImage that loads low; Swiftlet needs a bzImage") }
        var sects = Int(bytes[SETUP_SECTS])
        if sects == 0 { sects = 4 }
        setupSize = (sects + 1) * 512
        guard UInt64(setupSize) < kernel.fileSize else { throw .invalidImage("kernel \(path) is truncated: no kernel after the \(setupSize)-byte setup") }
        // The header's own length (the jump at 0x200) says where it ends, but never past
        // struct setup_header or past the bytes at hand.
        let declaredEnd = JUMP + 2 + Int(bytes[JUMP + 1])
        guard declaredEnd >= INIT_SIZE + 4 else {
            throw .invalidImage("kernel \(path) has a bad setup header (it ends at 0x\(hex(UInt64(declaredEnd))), before init_size)")
        }
        headerEnd = min(declaredEnd, BzImage.setupHeaderLimit, bytes.count)
        cmdlineSize = readLE32(bytes, at: CMDLINE_SIZE)
        initrdAddressMax = readLE32(bytes, at: INITRD_ADDR_MAX)
        initSize = readLE32(bytes, at: INIT_SIZE)
        header = bytes
        fileSize = kernel.fileSize
    }

    /// Bytes of the running kernel past its load address (init_size covers decompression).
    public var footprint: UInt64 { max(UInt64(initSize), payloadSize) }
}
