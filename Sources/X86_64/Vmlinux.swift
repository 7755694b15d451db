import SwiftletCore

// ELF-64 header and program header fields (System V gABI, "ELF Header" and "Program
// Header"; the x86-64 psABI for EM_X86_64), as offsets into the file.
private let EI_CLASS = 4
private let EI_DATA = 5
private let ELFCLASS64: UInt8 = 2
private let ELFDATA2LSB: UInt8 = 1
private let E_TYPE = 0x10
private let E_MACHINE = 0x12
private let E_ENTRY = 0x18
private let E_PHOFF = 0x20
private let E_PHENTSIZE = 0x36
private let E_PHNUM = 0x38
private let ELF64_EHDR_SIZE = 0x40
private let ET_EXEC: UInt16 = 2
private let EM_X86_64: UInt16 = 62
private let P_TYPE = 0x00
private let P_OFFSET = 0x08
private let P_PADDR = 0x18
private let P_FILESZ = 0x20
private let P_MEMSZ = 0x28
private let ELF64_PHDR_SIZE = 56
private let PT_LOAD: UInt32 = 1
/// e_phnum's escape value (the real count then lives in section 0): no kernel needs it,
/// and Linux's vmlinux has about five program headers.
private let MAX_PROGRAM_HEADERS = 64

/// One PT_LOAD segment: `fileSize` bytes from `fileOffset` go to guest-physical `address`,
/// then zeros up to `memorySize`.
public struct KernelSegment: Equatable {
    public let fileOffset: UInt64
    public let fileSize: UInt64
    public let address: UInt64
    public let memorySize: UInt64
    public var end: UInt64 { address + memorySize }
}

/// An uncompressed x86_64 Linux kernel as `make vmlinux` writes it (the format Firecracker
/// boots on x86_64): an ELF executable whose PT_LOAD segments go to their physical addresses
/// (p_paddr) and whose e_entry is the physical address of startup_64. Parsed from the file's
/// first bytes (`ImageHeader`): the program headers must lie there; the segments stay in the
/// file until they are read straight into guest memory.
///
/// Every field is checked against the file and against `ram` (the guest-physical range the
/// segments may occupy: from 1 MiB, above the machine's own boot data, to the end of low RAM).
public struct Vmlinux {
    public let entry: UInt64
    /// Non-empty segments, sorted by address, not overlapping.
    public let segments: [KernelSegment]
    /// Where the highest segment ends: the initrd goes above it.
    public var end: UInt64 { segments.last?.end ?? 0 }

    static let magic: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]   // "\x7FELF"

    public static func isELF(_ bytes: [UInt8]) -> Bool { bytes.count >= 4 && Array(bytes[0..<4]) == magic }

    public init(_ kernel: ImageHeader, ram: Range<UInt64>) throws(SwiftletError) {
        let bytes = kernel.bytes, path = kernel.path
        func refuse(_ why: String) -> SwiftletError {
            .invalidImage("kernel \(path) is not a bzImage or an x86_64 ELF vmlinux: \(why)")
        }
        guard Vmlinux.isELF(bytes) else { throw refuse("no ELF magic") }
        guard bytes.count >= ELF64_EHDR_SIZE else { throw .invalidImage("kernel \(path) is truncated: \(bytes.count) bytes, less than an ELF-64 header") }
        guard bytes[EI_CLASS] == ELFCLASS64 else { throw refuse("ELF class \(bytes[EI_CLASS]), not 64-bit") }
        guard bytes[EI_DATA] == ELFDATA2LSB else { throw refuse("ELF data encoding \(bytes[EI_DATA]), not little-endian") }
        let machine = readLE16(bytes, at: E_MACHINE)
        guard machine == EM_X86_64 else { throw refuse("ELF machine \(machine)\(Vmlinux.machineName(machine)), not x86_64 (62)") }
        let type = readLE16(bytes, at: E_TYPE)
        guard type == ET_EXEC else { throw refuse("ELF type \(type), not an executable (ET_EXEC)") }

        let phoff = readLE64(bytes, at: E_PHOFF)
        let phentsize = Int(readLE16(bytes, at: E_PHENTSIZE))
        let phnum = Int(readLE16(bytes, at: E_PHNUM))
        guard phentsize == ELF64_PHDR_SIZE else {
            throw .invalidImage("kernel \(path) has program headers of \(phentsize) bytes; ELF-64 has \(ELF64_PHDR_SIZE)")
        }
        guard phnum > 0, phnum <= MAX_PROGRAM_HEADERS else {
            throw .invalidImage("kernel \(path) has \(phnum) program headers; Swiftlet reads 1 to \(MAX_PROGRAM_HEADERS)")
        }
        // phnum * 56 is at most 3584: only phoff can overflow.
        let tableSize = UInt64(phnum * phentsize)
        guard phoff <= UInt64(bytes.count), tableSize <= UInt64(bytes.count) - phoff else {
            let limit = bytes.count < ImageFile.headerLimit ? "its end (\(kernel.fileSize) bytes)" : "its first \(ImageFile.headerLimit) bytes"
            throw .invalidImage("kernel \(path): program headers at 0x\(hex(phoff)) (\(phnum) of \(phentsize) bytes) lie past \(limit)")
        }

        var loads: [KernelSegment] = []
        for index in 0..<phnum {
            let header = Int(phoff) + index * phentsize
            guard readLE32(bytes, at: header + P_TYPE) == PT_LOAD else { continue }
            let segment = KernelSegment(fileOffset: readLE64(bytes, at: header + P_OFFSET),
                                        fileSize: readLE64(bytes, at: header + P_FILESZ),
                                        address: readLE64(bytes, at: header + P_PADDR),
                                        memorySize: readLE64(bytes, at: header + P_MEMSZ))
            let name = "kernel \(path): segment \(index)"
            guard segment.fileSize <= segment.memorySize else {
                throw .invalidImage("\(name) has more file bytes (0x\(hex(segment.fileSize))) than memory bytes (0x\(hex(segment.memorySize)))")
            }
            guard segment.fileOffset <= kernel.fileSize, segment.fileSize <= kernel.fileSize - segment.fileOffset else {
                throw .invalidImage("\(name): file bytes 0x\(hex(segment.fileOffset))+0x\(hex(segment.fileSize)) lie past its end (\(kernel.fileSize) bytes)")
            }
            if segment.memorySize == 0 { continue }
            let (last, overflow) = segment.address.addingReportingOverflow(segment.memorySize - 1)
            guard !overflow else {
                throw .invalidImage("\(name) at 0x\(hex(segment.address)) of 0x\(hex(segment.memorySize)) bytes wraps past the top of the address space")
            }
            guard segment.address >= ram.lowerBound, last < ram.upperBound else {
                // More memory helps only a segment inside the first 3 GiB, above the boot data.
                let more = segment.address >= ram.lowerBound && last < Layout.mmioHoleStart ? "; raise --memory" : ""
                throw .invalidImage("\(name) at 0x\(hex(segment.address))-0x\(hex(last)) lies outside guest RAM for the kernel (0x\(hex(ram.lowerBound))-0x\(hex(ram.upperBound - 1)))\(more)")
            }
            loads.append(segment)
        }
        guard !loads.isEmpty else { throw .invalidImage("kernel \(path) has no PT_LOAD segment to load") }
        loads.sort { $0.address < $1.address }
        for i in loads.indices.dropFirst() where loads[i].address < loads[i - 1].end {
            throw .invalidImage("kernel \(path): segments at 0x\(hex(loads[i - 1].address)) and 0x\(hex(loads[i].address)) overlap")
        }
        let start = readLE64(bytes, at: E_ENTRY)
        // The entry must be loaded code from the file, not a zero-filled tail or a hole.
        guard loads.contains(where: { start >= $0.address && start - $0.address < $0.fileSize }) else {
            throw .invalidImage("kernel \(path): entry point 0x\(hex(start)) is not inside a loaded segment (e_entry must be startup_64's physical address)")
        }
        entry = start
        segments = loads
    }

    /// A hint for ELF files built for another machine (an arm64 vmlinux given to x86_64).
    static func machineName(_ machine: UInt16) -> String {
        switch machine {
        case 3: return " (i386)"
        case 40: return " (arm)"
        case 183: return " (aarch64)"
        case 243: return " (riscv)"
        default: return ""
        }
    }
}
